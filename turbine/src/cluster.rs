//! One cluster at run time: its discovery, a reader per instance, the aggregate, and the
//! frame of merged events published every tick.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::{BufMut, Bytes, BytesMut};
use hystrix_stream::encode::{current_time_millis, write_i64};
use serde::Serialize;
use tokio::{
    sync::{mpsc, watch},
    time::{Instant, MissedTickBehavior},
};

use crate::{
    aggregate::{Aggregator, HostId, Mode},
    discovery::{Discovered, Discovery, Endpoint},
    upstream::{self, AbortOnDrop, Batch, InstanceStatus, UpstreamSettings},
};

/// How often a `meta` event is written: about every 3 s, as Turbine 1.x.
const META_EVERY: Duration = Duration::from_secs(3);
/// A host counts in `reportingHostsLast10Seconds` if it sent data this recently.
const REPORTING_WINDOW: Duration = Duration::from_secs(10);

/// What a cluster task needs.
#[derive(Debug)]
pub(crate) struct ClusterSpec {
    pub(crate) name: String,
    pub(crate) discovery: Discovery,
    pub(crate) source: String,
    pub(crate) mode: Mode,
    pub(crate) upstream: Arc<UpstreamSettings>,
    pub(crate) interval: Duration,
    pub(crate) stale_after: Duration,
    pub(crate) max_keys: usize,
}

/// What the server reads of a running cluster.
#[derive(Debug)]
pub(crate) struct ClusterHandle {
    /// The last frame: every key's merged event (and a `meta` event every 3 s).
    pub(crate) frames: watch::Receiver<Bytes>,
    pub(crate) view: Arc<Mutex<ClusterView>>,
    _task: AbortOnDrop<()>,
}

impl ClusterHandle {
    /// Starts the cluster on the current runtime.
    pub(crate) fn spawn(spec: ClusterSpec) -> Self {
        let (frames_tx, frames) = watch::channel(Bytes::new());
        let view = Arc::new(Mutex::new(ClusterView {
            name: spec.name.clone(),
            mode: spec.mode,
            discovery: DiscoveryView {
                kind: spec.discovery.kind(),
                source: spec.source.clone(),
                health: "pending",
                error: None,
                refreshed_ms_ago: None,
            },
            keys: 0,
            keys_dropped: 0,
            totals: Totals::default(),
            instances: Vec::new(),
        }));
        let task = tokio::spawn(run(spec, frames_tx, view.clone()));
        Self {
            frames,
            view,
            _task: AbortOnDrop(task),
        }
    }

    /// A copy of the cluster's state as of its last tick.
    pub(crate) fn view(&self) -> ClusterView {
        self.view.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A cluster's state, as `/clusters` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterView {
    /// The cluster's name.
    pub name: String,
    /// How it merges.
    #[serde(serialize_with = "mode_name")]
    pub mode: Mode,
    /// How its instances are found.
    pub discovery: DiscoveryView,
    /// (type, name) keys reported now.
    pub keys: usize,
    /// Messages dropped for the key cap, so far.
    pub keys_dropped: u64,
    /// What every instance, present or past, has done so far.
    pub totals: Totals,
    /// Its instances.
    pub instances: Vec<InstanceView>,
}

fn mode_name<S: serde::Serializer>(mode: &Mode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match mode {
        Mode::Turbine1 => "turbine1",
        Mode::Turbine2 => "turbine2",
    })
}

/// Counts over a cluster's instances, those removed included.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Totals {
    /// Messages received.
    pub messages: u64,
    /// Lines refused.
    pub parse_errors: u64,
    /// Streams opened.
    pub connects: u64,
    /// Connections failed or ended.
    pub failures: u64,
}

impl Totals {
    fn add(&mut self, status: &InstanceStatus) {
        self.messages += status.messages();
        self.parse_errors += status.parse_errors();
        self.connects += status.connects();
        self.failures += status.failures();
    }
}

/// A discovery's state.
#[derive(Clone, Debug, Serialize)]
pub struct DiscoveryView {
    /// `static`, `file` or `srv`.
    pub kind: &'static str,
    /// The SRV name, the file, or the list.
    pub source: String,
    /// `pending`, `ok`, `stale` (look-ups fail, the last good set is kept) or `failed`.
    pub health: &'static str,
    /// Why look-ups fail.
    pub error: Option<String>,
    /// Milliseconds since the instances were last found.
    pub refreshed_ms_ago: Option<u64>,
}

/// An instance's state.
#[derive(Clone, Debug, Serialize)]
pub struct InstanceView {
    /// How the instance is known.
    pub name: String,
    /// `stale` when its last message is older than the stale timeout (its data no longer
    /// counts), otherwise `connected` (its stream is open) or `retrying` (reconnecting; its
    /// last data still counts).
    pub state: &'static str,
    /// Milliseconds since its last message, if any.
    pub last_data_ms_ago: Option<u64>,
    /// Messages received.
    pub messages: u64,
    /// Lines refused.
    pub parse_errors: u64,
    /// Streams opened.
    pub connects: u64,
    /// Connections failed or ended.
    pub failures: u64,
    /// The last failure or refused line.
    pub last_error: Option<String>,
}

/// One instance being read.
struct Running {
    host: HostId,
    endpoint: Endpoint,
    status: Arc<InstanceStatus>,
    last_data: Option<Instant>,
    _task: AbortOnDrop<()>,
}

struct State {
    spec: ClusterSpec,
    aggregator: Aggregator,
    running: HashMap<String, Running>,
    hosts: HashMap<HostId, String>,
    next_host: HostId,
    tx: mpsc::Sender<Batch>,
    last_meta: Option<Instant>,
    buf: BytesMut,
    /// What removed instances had done.
    retired: Totals,
}

async fn run(spec: ClusterSpec, frames: watch::Sender<Bytes>, view: Arc<Mutex<ClusterView>>) {
    let mut discovered = spec.discovery.clone().spawn();
    let (tx, mut rx) = mpsc::channel::<Batch>(1024);
    let mut ticker = tokio::time::interval(spec.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut state = State {
        aggregator: Aggregator::new(spec.mode).max_keys(spec.max_keys),
        spec,
        running: HashMap::new(),
        hosts: HashMap::new(),
        next_host: 0,
        tx,
        last_meta: None,
        buf: BytesMut::new(),
        retired: Totals::default(),
    };
    let mut discovery = discovered.borrow_and_update().clone();
    state.reconcile(&discovery);
    loop {
        tokio::select! {
            changed = discovered.changed() => {
                if changed.is_err() {
                    tracing::warn!(cluster = %state.spec.name, "discovery stopped");
                    return;
                }
                discovery = discovered.borrow_and_update().clone();
                state.reconcile(&discovery);
            }
            Some(batch) = rx.recv() => state.receive(batch),
            _ = ticker.tick() => {
                let now = Instant::now();
                // A good look-up that changed nothing updates `refreshed` without notifying:
                // read it, so that the view's age of the last look-up is true.
                discovery.refreshed = discovered.borrow().refreshed;
                state.expire(now);
                if frames.receiver_count() > 0 {
                    frames.send_replace(state.frame(now));
                }
                *view.lock().unwrap_or_else(|e| e.into_inner()) = state.view(&discovery, now);
            }
        }
    }
}

impl State {
    /// Starts readers for new endpoints, stops those of endpoints gone (with their data).
    fn reconcile(&mut self, discovered: &Discovered) {
        let wanted: HashMap<&str, &Endpoint> = discovered
            .endpoints
            .iter()
            .map(|e| (e.name.as_str(), e))
            .collect();
        let gone: Vec<String> = self
            .running
            .iter()
            .filter(|(name, running)| wanted.get(name.as_str()) != Some(&&running.endpoint))
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            if let Some(running) = self.running.remove(&name) {
                self.hosts.remove(&running.host);
                self.aggregator.remove_host(running.host);
                self.retired.add(&running.status);
                tracing::info!(cluster = %self.spec.name, instance = %name, "instance removed");
            }
        }
        for (name, endpoint) in wanted {
            if self.running.contains_key(name) {
                continue;
            }
            let host = self.next_host;
            self.next_host += 1;
            let status = Arc::new(InstanceStatus::default());
            let task = tokio::spawn(upstream::run(
                endpoint.clone(),
                host,
                self.spec.upstream.clone(),
                status.clone(),
                self.tx.clone(),
            ));
            tracing::info!(cluster = %self.spec.name, instance = %name, "instance added");
            self.hosts.insert(host, name.to_owned());
            self.running.insert(
                name.to_owned(),
                Running {
                    host,
                    endpoint: endpoint.clone(),
                    status,
                    last_data: None,
                    _task: AbortOnDrop(task),
                },
            );
        }
    }

    fn receive(&mut self, batch: Batch) {
        // A batch read before its instance was removed is dropped with it.
        let Some(name) = self.hosts.get(&batch.host) else {
            return;
        };
        let now = Instant::now();
        if let Some(running) = self.running.get_mut(name) {
            running.last_data = Some(now);
        }
        for message in batch.messages {
            self.aggregator.update(batch.host, now, message);
        }
    }

    fn expire(&mut self, now: Instant) {
        if let Some(before) = now.checked_sub(self.spec.stale_after) {
            self.aggregator.expire(before);
        }
    }

    /// Every key's merged event, and a `meta` event when one is due.
    fn frame(&mut self, now: Instant) -> Bytes {
        self.buf.clear();
        self.aggregator.write(&mut self.buf);
        let due = self
            .last_meta
            .is_none_or(|at| now.saturating_duration_since(at) >= META_EVERY);
        if due {
            self.last_meta = Some(now);
            let reporting = self
                .running
                .values()
                .filter(|r| {
                    r.last_data
                        .is_some_and(|at| now.saturating_duration_since(at) <= REPORTING_WINDOW)
                })
                .count();
            self.buf.put_slice(
                b"data: {\"type\":\"meta\",\"name\":\"meta\",\"reportingHostsLast10Seconds\":",
            );
            write_i64(&mut self.buf, reporting as i64);
            self.buf.put_slice(b",\"timestamp\":");
            write_i64(&mut self.buf, current_time_millis() as i64);
            self.buf.put_slice(b"}\n\n");
        }
        self.buf.split().freeze()
    }

    fn view(&self, discovered: &Discovered, now: Instant) -> ClusterView {
        let ms = |at: Instant| now.saturating_duration_since(at).as_millis() as u64;
        let mut instances: Vec<InstanceView> = self
            .running
            .iter()
            .map(|(name, r)| {
                let stale = r
                    .last_data
                    .is_some_and(|at| now.saturating_duration_since(at) > self.spec.stale_after);
                let state = match (stale, r.status.connected()) {
                    (true, _) => "stale",
                    (false, true) => "connected",
                    (false, false) => "retrying",
                };
                InstanceView {
                    name: name.clone(),
                    state,
                    last_data_ms_ago: r.last_data.map(ms),
                    messages: r.status.messages(),
                    parse_errors: r.status.parse_errors(),
                    connects: r.status.connects(),
                    failures: r.status.failures(),
                    last_error: r.status.last_error(),
                }
            })
            .collect();
        instances.sort_by(|a, b| a.name.cmp(&b.name));
        let mut totals = self.retired;
        for running in self.running.values() {
            totals.add(&running.status);
        }
        ClusterView {
            name: self.spec.name.clone(),
            mode: self.spec.mode,
            discovery: DiscoveryView {
                kind: self.spec.discovery.kind(),
                source: self.spec.source.clone(),
                health: discovered.health.as_str(),
                error: discovered.health.error().map(str::to_owned),
                refreshed_ms_ago: discovered.refreshed.map(ms),
            },
            keys: self.aggregator.len(),
            keys_dropped: self.aggregator.dropped(),
            totals,
            instances,
        }
    }
}
