//! Coalescing of concurrent identical requests: one execution, every caller gets its result.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::sync::watch;

use hystrix_core::CommandKey;

use crate::{CommandError, cache::BoxFuture};

type Outcome<Res> = Option<Result<Res, CommandError>>;

/// Joins a request to the execution in flight for its key, or makes it the leader.
pub(crate) trait Coalesce<Res>: Send + Sync {
    fn join(&self, key: &str) -> Joined<Res>;
}

pub(crate) enum Joined<Res> {
    /// Execute, then publish the result to the followers.
    Leader(Box<dyn Lead<Res> + Send>),
    /// Wait for the leader's result.
    Follower(BoxFuture<Result<Res, CommandError>>),
}

pub(crate) trait Lead<Res> {
    /// Hands the result to the followers; returns how many there were.
    fn publish(self: Box<Self>, result: &Result<Res, CommandError>) -> u64;
}

/// The executions in flight, by key.
pub(crate) struct Coalescer<Res> {
    command: CommandKey,
    inflight: Arc<Mutex<HashMap<String, Slot<Res>>>>,
}

struct Slot<Res> {
    rx: watch::Receiver<Outcome<Res>>,
    followers: Arc<AtomicU64>,
}

impl<Res> Coalescer<Res> {
    pub(crate) fn new(command: CommandKey) -> Self {
        Self {
            command,
            inflight: Arc::default(),
        }
    }
}

impl<Res: Clone + Send + Sync + 'static> Coalesce<Res> for Coalescer<Res> {
    fn join(&self, key: &str) -> Joined<Res> {
        let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = inflight.get(key) {
            slot.followers.fetch_add(1, Ordering::Relaxed);
            let mut rx = slot.rx.clone();
            let command = self.command.clone();
            return Joined::Follower(Box::pin(async move {
                match rx.wait_for(Option::is_some).await {
                    Ok(outcome) => outcome
                        .as_ref()
                        .cloned()
                        .unwrap_or_else(|| Err(CommandError::coalesced_lost(command.clone()))),
                    // The leader's task ended without a result: it panicked.
                    Err(_) => Err(CommandError::coalesced_lost(command.clone())),
                }
            }));
        }
        let (tx, rx) = watch::channel(None);
        let followers = Arc::new(AtomicU64::new(0));
        inflight.insert(
            key.to_owned(),
            Slot {
                rx,
                followers: followers.clone(),
            },
        );
        Joined::Leader(Box::new(Leader {
            inflight: self.inflight.clone(),
            key: key.to_owned(),
            tx: Some(tx),
            followers,
        }))
    }
}

struct Leader<Res> {
    inflight: Arc<Mutex<HashMap<String, Slot<Res>>>>,
    key: String,
    tx: Option<watch::Sender<Outcome<Res>>>,
    followers: Arc<AtomicU64>,
}

impl<Res> Leader<Res> {
    fn leave(&mut self) {
        self.inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}

impl<Res: Clone> Lead<Res> for Leader<Res> {
    fn publish(mut self: Box<Self>, result: &Result<Res, CommandError>) -> u64 {
        // Later requests start a new execution: they must not see a result older than they are.
        self.leave();
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Some(result.clone()));
        }
        self.followers.load(Ordering::Relaxed)
    }
}

impl<Res> Drop for Leader<Res> {
    fn drop(&mut self) {
        if self.tx.is_some() {
            self.leave();
        }
    }
}
