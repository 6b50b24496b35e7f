//! A program of the workspace run as a child process: started, its first line read (where the
//! programs announce their address), killed on drop.
#![allow(dead_code, unreachable_pub)]

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
};

/// A child process killed on drop, with the first line it printed.
pub struct Process {
    child: Child,
    /// The first line it printed on stdout.
    pub first_line: String,
}

impl Process {
    /// Starts `binary` with `args`, and waits for its first line on stdout. Its stderr is the
    /// test's.
    pub fn start(binary: &Path, args: &[String]) -> Self {
        let mut child = Command::new(binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first_line = String::new();
        stdout.read_line(&mut first_line).unwrap();
        assert!(
            !first_line.is_empty(),
            "{} exited without a word: {:?}",
            binary.display(),
            child.wait()
        );
        // Keep reading, so that the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut line = String::new();
            while stdout.read_line(&mut line).is_ok_and(|n| n > 0) {
                line.clear();
            }
        });
        Self { child, first_line }
    }

    /// The `http://...` the process announced on its first line, without a trailing `/`.
    pub fn url(&self) -> String {
        let start = self.first_line.find("http://").unwrap_or_else(|| {
            panic!("no URL in {:?}", self.first_line);
        });
        self.first_line[start..]
            .trim()
            .trim_end_matches('/')
            .to_owned()
    }

    /// The address of that URL.
    pub fn addr(&self) -> SocketAddr {
        let url = self.url();
        let authority = url["http://".len()..].split('/').next().unwrap_or_default();
        authority
            .parse()
            .unwrap_or_else(|_| panic!("no address in {:?}", self.first_line))
    }

    /// Its resident memory (`VmRSS`), in KiB; 0 once it is gone.
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    }

    /// Kills it and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}
