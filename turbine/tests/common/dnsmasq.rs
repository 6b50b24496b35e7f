//! A real `dnsmasq` for tests: started on a free loopback port with the records a test gives,
//! restarted with others, killed on drop. A missing `dnsmasq` fails the test: `scripts/test.sh`
//! installs it. Shared by the turbine's DNS tests and the end-to-end tests of the workspace.
#![allow(dead_code, unreachable_pub)]

use std::{
    net::{SocketAddr, TcpListener, UdpSocket},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

/// A `dnsmasq` answering for a domain (`api.test` unless said otherwise) on a loopback port,
/// killed on drop.
pub struct Dnsmasq {
    child: Option<Child>,
    port: u16,
    domain: String,
}

impl Dnsmasq {
    /// Starts a server on a free port with `records` (dnsmasq options, see [`fleet`]).
    pub fn start(records: &[String]) -> Self {
        Self::start_on(free_port(), records)
    }

    /// Starts a server for `domain` on a free port with `records`.
    pub fn for_domain(domain: &str, records: &[String]) -> Self {
        let mut server = Self::stopped();
        server.domain = domain.to_owned();
        server.run(records);
        server
    }

    /// A server for `api.test` on a free port, not started yet ([`run`](Self::run) starts it).
    pub fn stopped() -> Self {
        Self {
            child: None,
            port: free_port(),
            domain: "api.test".to_owned(),
        }
    }

    /// Starts a server on `port` with `records`.
    pub fn start_on(port: u16, records: &[String]) -> Self {
        let mut server = Self::stopped();
        server.port = port;
        server.run(records);
        server
    }

    /// The address to ask.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Stops the server and starts it again on the same port with other records.
    pub fn restart(&mut self, records: &[String]) {
        self.stop();
        self.run(records);
    }

    /// Starts the server with `records` (TTL 1 s), and waits until it answers.
    pub fn run(&mut self, records: &[String]) {
        self.run_with_ttl(1, records);
    }

    /// Starts the server with `records` and `ttl` for them, and waits until it answers.
    pub fn run_with_ttl(&mut self, ttl: u32, records: &[String]) {
        assert!(self.child.is_none(), "dnsmasq is running");
        let binary = dnsmasq_binary();
        let child = Command::new(&binary)
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--pid-file",
            ])
            .args(["--no-resolv", "--no-hosts", "--log-facility=-"])
            .args(["--bind-interfaces", "--listen-address=127.0.0.1"])
            .arg(format!("--port={}", self.port))
            .arg(format!("--local=/{}/", self.domain))
            .arg(format!("--local-ttl={ttl}"))
            .args(records)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}): install the Debian package dnsmasq \
                     (scripts/test.sh does)",
                    binary.display()
                )
            });
        self.child = Some(child);
        self.wait_until_it_answers();
    }

    /// Waits (a few seconds at most) until the server answers a query.
    fn wait_until_it_answers(&mut self) {
        let deadline = Duration::from_secs(5);
        let mut waited = Duration::ZERO;
        while !answers(self.port) {
            let child = self.child.as_mut().unwrap();
            if child.try_wait().unwrap().is_some() {
                let output = self.child.take().unwrap().wait_with_output().unwrap();
                panic!(
                    "dnsmasq exited at start ({}): {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            assert!(
                waited < deadline,
                "dnsmasq did not answer within {deadline:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
            waited += Duration::from_millis(20);
        }
    }

    /// Kills the server and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `dnsmasq` from the `PATH`, or from the sbin directories a user's `PATH` may lack.
pub fn dnsmasq_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into(), "/usr/local/sbin".into()])
        .map(|dir| dir.join("dnsmasq"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| "dnsmasq".into())
}

/// A loopback port free for both UDP and TCP (dnsmasq takes both).
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Whether a DNS server on `port` answers a query (any answer: NXDOMAIN is one).
fn answers(port: u16) -> bool {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    // Header: id, recursion desired, one question.
    let mut query = vec![0x4a, 0x17, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in "inst1.api.test".split('.') {
        query.push(u8::try_from(label.len()).unwrap());
        query.extend(label.as_bytes());
    }
    query.extend([0, 0, 1, 0, 1]); // The root, type A, class IN.
    let mut reply = [0; 512];
    socket.send_to(&query, ("127.0.0.1", port)).is_ok()
        && socket
            .recv(&mut reply)
            .is_ok_and(|n| n >= 12 && reply[..2] == query[..2])
}
