//! Helpers shared by the thread-pool tests (real threads, real time, every wait bounded).
#![allow(dead_code, clippy::unwrap_used)]

use std::{
    sync::{Arc, Condvar, Mutex},
    time::Duration,
};

/// Blocks a thread synchronously, as a hung blocking client would, until opened or 10 s.
#[derive(Clone, Default)]
pub(crate) struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    pub(crate) fn block(&self) {
        let (open, cv) = &*self.0;
        let guard = open.lock().unwrap();
        let _ = cv
            .wait_timeout_while(guard, Duration::from_secs(10), |open| !*open)
            .unwrap();
    }

    pub(crate) fn open(&self) {
        *self.0.0.lock().unwrap() = true;
        self.0.1.notify_all();
    }
}

/// Waits until `f` holds, checking every 10 ms for at most 5 s.
pub(crate) async fn eventually(what: &str, f: impl Fn() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}
