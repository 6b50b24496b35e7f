//! Discovery from a file of endpoints, re-read when it changes.

use std::{path::PathBuf, time::Duration};

use tokio::{sync::watch, time::Instant};

use super::{Discovered, Endpoint, Health};

/// How often the file's metadata is looked at.
const POLL: Duration = Duration::from_secs(1);

/// Reads the endpoints of a file: one per line, `host:port` or a URL; blank lines and what
/// follows `#` are ignored. Errors name the line.
pub fn read_endpoints(text: &str) -> Result<Vec<Endpoint>, String> {
    let mut endpoints = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        endpoints.push(Endpoint::parse(line).map_err(|e| format!("line {}: {e}", n + 1))?);
    }
    Ok(endpoints)
}

/// Loads `path`, with the file named in the error.
pub(super) async fn load(path: &std::path::Path) -> Result<Vec<Endpoint>, String> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    read_endpoints(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Re-reads the file whenever its length or modification time changes. A file that cannot be
/// read or has a bad line keeps the last good endpoints, with the error in the health.
pub(super) async fn run(path: PathBuf, tx: watch::Sender<Discovered>) {
    let mut last_seen = None;
    let mut ticker = tokio::time::interval(POLL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = tx.closed() => return,
        }
        let stamp = tokio::fs::metadata(&path)
            .await
            .map(|m| (m.len(), m.modified().ok()))
            .map_err(|e| e.to_string());
        if last_seen.as_ref() == Some(&stamp) {
            continue;
        }
        last_seen = Some(stamp);
        match load(&path).await {
            Ok(endpoints) => {
                tracing::info!(file = %path.display(), instances = endpoints.len(), "instances read");
                tx.send_replace(Discovered::found(endpoints, Instant::now()));
            }
            Err(error) => {
                tracing::warn!(%error, "instances file not read; keeping the last good list");
                tx.send_modify(|d| {
                    d.health = if d.refreshed.is_some() {
                        Health::Stale { error }
                    } else {
                        Health::Failed { error }
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_comments_and_errors() {
        let text = "# fleet\n127.0.0.1:8080\n\n  api-2:8081  # second\nhttp://t:1/turbine.stream?cluster=x\n";
        let names: Vec<_> = read_endpoints(text)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(
            names,
            [
                "127.0.0.1:8080",
                "api-2:8081",
                "http://t:1/turbine.stream?cluster=x"
            ]
        );
        let err = read_endpoints("a:1\nnot an endpoint\n").unwrap_err();
        assert!(err.starts_with("line 2: "), "{err}");
    }
}
