//! The demo's load generator: product pages of every instance at a steady rate, with a tally
//! of what came back.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use http_body_util::{BodyExt, Empty};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use tokio::{sync::Semaphore, task::JoinHandle, time::MissedTickBehavior};

/// Requests in flight per instance at most; a tick finding them all busy is skipped.
const MAX_IN_FLIGHT: usize = 64;

/// What the load generator saw.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Pages answered 2xx.
    pub(crate) ok: AtomicU64,
    /// Pages answered otherwise (the catalog has no fallback).
    pub(crate) errors: AtomicU64,
    /// Requests that got no answer at all.
    pub(crate) unreachable: AtomicU64,
    /// Ticks skipped because too many requests were in flight.
    pub(crate) skipped: AtomicU64,
    /// Prices served fresh, stale (the last good one) or by the fallback.
    pub(crate) price_fresh: AtomicU64,
    pub(crate) price_stale: AtomicU64,
    pub(crate) price_fallback: AtomicU64,
    /// Other parts of pages served by fallbacks (reviews, stock).
    pub(crate) other_fallbacks: AtomicU64,
}

impl Tally {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn page(&self, body: &[u8]) {
        let Ok(page) = serde_json::from_slice::<serde_json::Value>(body) else {
            return;
        };
        match page["price_source"].as_str() {
            Some("fresh") => Self::add(&self.price_fresh),
            Some("stale") => Self::add(&self.price_stale),
            Some("fallback") => Self::add(&self.price_fallback),
            _ => {}
        }
        for part in ["reviews_source", "stock_source"] {
            if page[part] == "fallback" {
                Self::add(&self.other_fallbacks);
            }
        }
    }

    /// A snapshot of the counters, in declaration order.
    pub(crate) fn read(&self) -> [u64; 8] {
        [
            &self.ok,
            &self.errors,
            &self.unreachable,
            &self.skipped,
            &self.price_fresh,
            &self.price_stale,
            &self.price_fallback,
            &self.other_fallbacks,
        ]
        .map(|c| c.load(Ordering::Relaxed))
    }
}

/// Requests `/product/{1..=50}` of each instance `rps` times a second until aborted.
pub(crate) fn start(instances: &[SocketAddr], rps: u32, tally: Arc<Tally>) -> Vec<JoinHandle<()>> {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_secs(1)));
    let client: Client<_, Empty<bytes::Bytes>> =
        Client::builder(TokioExecutor::new()).build(connector);
    let period = Duration::from_secs(1) / rps.max(1);
    instances
        .iter()
        .map(|&addr| {
            let (client, tally) = (client.clone(), tally.clone());
            tokio::spawn(async move {
                let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
                let mut ticks = tokio::time::interval(period);
                ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
                loop {
                    ticks.tick().await;
                    let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                        Tally::add(&tally.skipped);
                        continue;
                    };
                    let (client, tally) = (client.clone(), tally.clone());
                    let id = fastrand::u32(1..=50);
                    tokio::spawn(async move {
                        let _permit = permit;
                        let uri = format!("http://{addr}/product/{id}");
                        let Ok(uri) = uri.parse::<http::Uri>() else {
                            return;
                        };
                        let answer = tokio::time::timeout(Duration::from_secs(5), async {
                            let res = client.get(uri).await?;
                            let status = res.status();
                            let body = res.into_body().collect().await?.to_bytes();
                            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, body))
                        })
                        .await;
                        match answer {
                            Ok(Ok((status, body))) if status.is_success() => {
                                Tally::add(&tally.ok);
                                tally.page(&body);
                            }
                            Ok(Ok(_)) => Tally::add(&tally.errors),
                            _ => Tally::add(&tally.unreachable),
                        }
                    });
                }
            })
        })
        .collect()
}
