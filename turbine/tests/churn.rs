#![allow(clippy::unwrap_used)]
//! The turbine under churn, end to end: a real `dnsmasq` publishes the SRV records of the
//! test's own upstreams (SSE streams on loopback ports, each sending known counts every
//! 150 ms), a turbine started in-process discovers them, and `/turbine.stream` is read whole
//! frame by frame while instances are killed and restarted, records change, and the name
//! server goes away and comes back.
//!
//! After each phase settles, every key of the stream must equal what the model of the merge
//! (`common/model.rs`) computes from what the live, discovered instances sent; while a phase
//! changes, every key must be one the states before or after explain (nothing doubled, nothing
//! lost); and the turbine must hold exactly one connection to each instance it reads, none to
//! the others.
//!
//! Real time (a real server ignores tokio's paused time); every wait is bounded.

mod common;

#[path = "common/dnsmasq.rs"]
mod dnsmasq;

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    time::Duration,
};

use common::{
    Response, Running, Upstream, command,
    model::{Model, normalize},
};
use dnsmasq::Dnsmasq;
use hystrix_turbine::{ClusterView, aggregate::Mode};
use serde_json::Value;
use tokio::{net::TcpListener, time::Instant};

/// The SRV name of the fleet.
const SRV: &str = "_hystrix._tcp.api.test";
/// How often an instance sends its counts.
const EVERY: Duration = Duration::from_millis(150);
/// The longest a phase may take to settle.
const SETTLE: Duration = Duration::from_secs(15);
/// How long a settled phase must stay as expected (at least one frame more).
const STEADY: Duration = Duration::from_millis(500);

// ---------------------------------------------------------------------------------------------
// The fleet.

/// One instance: `instN.api.test` at a loopback port, sending a key every instance has
/// (`Get`) and one of its own (`OnlyN`). Its counts change with each restart, as a restarted
/// process's do: `rollingCountSuccess` of `Get` is `generation * 10^(n-1)`, so that a sum
/// shows which instances count, and in which generation.
struct Instance {
    n: u8,
    port: u16,
    generation: i64,
    upstream: Option<Upstream>,
}

impl Instance {
    async fn start(n: u8) -> Self {
        let upstream = Upstream::start().await;
        let mut instance = Self {
            n,
            port: upstream.addr.port(),
            generation: 1,
            upstream: None,
        };
        instance.serve(upstream);
        instance
    }

    fn serve(&mut self, mut upstream: Upstream) {
        // Both keys in one write, so that they arrive (and expire) together.
        let [get, own] = self.lines();
        upstream.repeat(format!("{get}\n\ndata: {own}"), EVERY);
        self.upstream = Some(upstream);
    }

    /// What it sends now: `Get` and `OnlyN`, as `data:` lines.
    fn lines(&self) -> [String; 2] {
        let n = i64::from(self.n);
        [
            command("Get", self.success(), n, n % 2 == 0),
            command(&format!("Only{n}"), self.generation, n, false),
        ]
    }

    /// `rollingCountSuccess` of its `Get`.
    fn success(&self) -> i64 {
        self.generation * 10_i64.pow(u32::from(self.n) - 1)
    }

    /// How the turbine names it: the SRV target and port.
    fn name(&self) -> String {
        format!("inst{}.api.test:{}", self.n, self.port)
    }

    fn upstream(&self) -> &Upstream {
        self.upstream.as_ref().expect("the instance is running")
    }

    /// Stops the process: its listener and every connection close.
    fn kill(&mut self) {
        assert!(self.upstream.take().is_some(), "inst{} is running", self.n);
    }

    /// Starts it again on its port, with fresh counts.
    async fn restart(&mut self) {
        assert!(self.upstream.is_none(), "inst{} is running", self.n);
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        // The killed listener is closed once its task is dropped: moments after the kill.
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(addr).await {
                Ok(listener) => break listener,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(e) => panic!("cannot listen on {addr} again: {e}"),
            }
        };
        self.generation += 1;
        self.serve(Upstream::serve(listener, "200 OK"));
    }
}

/// The dnsmasq options publishing instances `discovered` of `fleet` (numbered from 1).
fn records(fleet: &[Instance], discovered: &[u8]) -> Vec<String> {
    discovered
        .iter()
        .flat_map(|&n| {
            let port = fleet[usize::from(n) - 1].port;
            [
                format!("--srv-host={SRV},inst{n}.api.test,{port}"),
                format!("--host-record=inst{n}.api.test,127.0.0.1"),
            ]
        })
        .collect()
}

/// A turbine reading the fleet of `dns` as cluster `api`: frames every 100 ms, discovery
/// every second (the records' TTL), a host's data dropped after `stale_after_ms` of silence,
/// the last good set of instances kept `grace_ms` while look-ups fail.
async fn turbine(dns: &Dnsmasq, stale_after_ms: u64, grace_ms: u64) -> Running {
    Running::start(&format!(
        "interval_ms = 100\n\
         stale_after_ms = {stale_after_ms}\n\
         idle_timeout_ms = 5000\n\
         [clusters.api]\n\
         srv = \"{SRV}\"\n\
         nameservers = [\"{}\"]\n\
         srv_min_refresh_ms = 1000\n\
         srv_max_refresh_ms = 5000\n\
         srv_grace_ms = {grace_ms}\n",
        dns.addr()
    ))
    .await
}

fn cluster(turbine: &Running) -> ClusterView {
    turbine.turbine.clusters().remove(0)
}

// ---------------------------------------------------------------------------------------------
// What the stream should say.

/// (type, name).
type Key = (String, String);
/// One tick of the stream: every key's merged event, normalized (counts as objects).
type Frame = BTreeMap<Key, Value>;

/// What the model of the merge makes of what `instances` send (each its current generation).
fn expected<'a>(instances: impl IntoIterator<Item = &'a Instance>) -> Frame {
    let mut model = Model::new(Mode::Turbine1, usize::MAX);
    let mut success = 0;
    let mut hosts = 0;
    for instance in instances {
        for line in instance.lines() {
            assert!(model.update(u64::from(instance.n), 0, &line));
        }
        success += instance.success();
        hosts += 1;
    }
    let frame: Frame = model
        .output()
        .into_iter()
        .map(|(key, merged)| (key, normalize(&merged)))
        .collect();
    // The model against a plain sum of what was sent.
    if hosts > 0 {
        let get = &frame[&key("Get")];
        assert_eq!(get["rollingCountSuccess"], success, "{get}");
        assert_eq!(get["reportingHosts"], hosts, "{get}");
    }
    frame
}

/// The instances `ns` of `fleet`, for [`expected`].
fn pick<'a>(fleet: &'a [Instance], ns: &[u8]) -> impl Iterator<Item = &'a Instance> {
    ns.iter().map(|&n| &fleet[usize::from(n) - 1])
}

/// What the stream may say while instances `ns` connect one by one: any subset of them.
fn subsets(fleet: &[Instance], ns: &[u8]) -> Vec<Frame> {
    (0..1u32 << ns.len())
        .map(|mask| {
            let some: Vec<u8> = (0..ns.len())
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| ns[i])
                .collect();
            expected(pick(fleet, &some))
        })
        .collect()
}

fn key(name: &str) -> Key {
    ("HystrixCommand".to_owned(), name.to_owned())
}

/// The figures that tell states apart, one key per line.
fn summary(frame: &Frame) -> String {
    let mut out = String::new();
    for ((_, name), v) in frame {
        let _ = write!(
            out,
            "\n    {name}: reportingHosts={} rollingCountSuccess={} errorCount={} requestCount={}",
            v["reportingHosts"], v["rollingCountSuccess"], v["errorCount"], v["requestCount"]
        );
    }
    if frame.is_empty() {
        out.push_str("\n    (no key)");
    }
    out
}

/// Whether each key of `frame` is as in one of `states` (absent included): what a frame may
/// be while the stream moves between those states (keys are merged independently, so one
/// may move before another). A value none of them has is a number doubled or lost.
fn explained(frame: &Frame, states: &[&Frame]) -> Result<(), String> {
    let keys: BTreeSet<&Key> = states
        .iter()
        .flat_map(|s| s.keys())
        .chain(frame.keys())
        .collect();
    for key in keys {
        let got = frame.get(key);
        if !states.iter().any(|s| s.get(key) == got) {
            let got = got.map_or_else(|| "absent".to_owned(), Value::to_string);
            return Err(format!(
                "{}: {got} is in none of the states the stream moves between",
                key.1
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The stream, frame by frame.

/// `/turbine.stream?cluster=api` cut into frames. A frame is written whole at each tick, its
/// keys in order, with a `meta` event at its end every 3 s: a frame ends at a `meta` event, a
/// ping, or a key not after the one before.
struct Frames {
    stream: Response,
    building: Frame,
    last: Option<Key>,
    /// When the first line of the frame being read came.
    building_since: Option<Instant>,
    /// When the first line of the last frame returned came.
    since: Option<Instant>,
}

impl Frames {
    async fn open(turbine: &Running) -> Self {
        let stream = Response::get(turbine.addr, "/turbine.stream?cluster=api").await;
        assert_eq!(stream.status, 200);
        Self {
            stream,
            building: Frame::new(),
            last: None,
            building_since: None,
            since: None,
        }
    }

    /// The next whole frame, within `within`. An empty aggregate sends only a `meta` event
    /// every 3 s: an empty frame.
    async fn next(&mut self, within: Duration) -> Option<Frame> {
        let deadline = Instant::now() + within;
        loop {
            let line = self
                .stream
                .line(deadline.saturating_duration_since(Instant::now()))
                .await?;
            if line == ": ping" {
                if !self.building.is_empty() {
                    return Some(self.take());
                }
                continue;
            }
            let Some(json) = line.strip_prefix("data: ") else {
                continue;
            };
            let value: Value = serde_json::from_str(json).unwrap();
            if value["type"] == "meta" {
                return Some(self.take());
            }
            let key = (
                value["type"].as_str().unwrap().to_owned(),
                value["name"].as_str().unwrap().to_owned(),
            );
            let done = self.last.as_ref().is_some_and(|last| key <= *last);
            let frame = done.then(|| self.take());
            let value = normalize(&value);
            assert!(value.get("currentTime").is_none(), "{value}");
            self.last = Some(key.clone());
            self.building.insert(key, value);
            self.building_since.get_or_insert_with(Instant::now);
            if let Some(frame) = frame {
                return Some(frame);
            }
        }
    }

    fn take(&mut self) -> Frame {
        self.last = None;
        self.since = self.building_since.take().or_else(|| Some(Instant::now()));
        std::mem::take(&mut self.building)
    }

    /// Reads frames until one equals `want`, each frame before it explained by `from` and
    /// `want`, then the frames of [`STEADY`] more, which must equal `want`. Returns when
    /// `want` came; panics after [`SETTLE`] with the last frame seen.
    async fn settle<'a>(
        &mut self,
        what: &str,
        from: impl IntoIterator<Item = &'a Frame>,
        want: &'a Frame,
    ) -> Instant {
        let deadline = Instant::now() + SETTLE;
        let mut states: Vec<&Frame> = from.into_iter().collect();
        let from = states.len();
        states.push(want);
        let mut last = None;
        loop {
            let Some(frame) = self
                .next(deadline.saturating_duration_since(Instant::now()))
                .await
            else {
                panic!(
                    "{what}: not settled within {SETTLE:?}\n  expected:{}\n  last seen:{}",
                    summary(want),
                    last.as_ref()
                        .map_or_else(|| " (no frame)".to_owned(), summary)
                );
            };
            if frame == *want {
                break;
            }
            if let Err(e) = explained(&frame, &states) {
                panic!(
                    "{what}: {e}\n  frame:{}\n  expected:{}\n  moving from:{}",
                    summary(&frame),
                    summary(want),
                    states[..from]
                        .iter()
                        .map(|s| summary(s))
                        .collect::<String>()
                );
            }
            last = Some(frame);
        }
        let reached = Instant::now();
        self.steady(what, want).await;
        reached
    }

    /// The frames of the next [`STEADY`] (one at least) equal `want`.
    async fn steady(&mut self, what: &str, want: &Frame) {
        let start = Instant::now();
        while start.elapsed() < STEADY {
            let frame = self
                .next(Duration::from_secs(5))
                .await
                .unwrap_or_else(|| panic!("{what}: the stream stopped"));
            assert!(
                frame == *want,
                "{what}: changed after settling\n  frame:{}\n  expected:{}",
                summary(&frame),
                summary(want)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The connections.

/// Waits until the turbine reads exactly the instances `discovered` — `connected` to those
/// running, `stale` for those killed — and each running upstream has one connection open if
/// discovered, none otherwise. Panics after [`SETTLE`] with what is seen.
async fn wait_fleet(what: &str, turbine: &Running, fleet: &[Instance], discovered: &[u8]) {
    let mut want: Vec<(String, &str)> = pick(fleet, discovered)
        .map(|i| {
            let state = if i.upstream.is_some() {
                "connected"
            } else {
                "stale"
            };
            (i.name(), state)
        })
        .collect();
    want.sort();
    let want_open: Vec<(u8, usize)> = fleet
        .iter()
        .filter(|i| i.upstream.is_some())
        .map(|i| (i.n, usize::from(discovered.contains(&i.n))))
        .collect();
    let deadline = Instant::now() + SETTLE;
    loop {
        let view = cluster(turbine);
        let seen: Vec<(String, &str)> = view
            .instances
            .iter()
            .map(|i| (i.name.clone(), i.state))
            .collect();
        let open: Vec<(u8, usize)> = fleet
            .iter()
            .filter_map(|i| Some((i.n, i.upstream.as_ref()?.open())))
            .collect();
        if seen == want && open == want_open {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the turbine's instances are {seen:?}, expected {want:?}; \
             connections open per instance {open:?}, expected {want_open:?}\n{view:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// For each `(n, accepted, connects)`: instance `n` (as running now) accepted that many
/// connections, and the turbine's reader of it (a new one each time it is discovered again)
/// opened that many streams: one per start of either side, no duplicate.
fn assert_connections(
    what: &str,
    turbine: &Running,
    fleet: &[Instance],
    counts: &[(u8, usize, u64)],
) {
    let view = cluster(turbine);
    for &(n, accepted, connects) in counts {
        let instance = &fleet[usize::from(n) - 1];
        assert_eq!(
            instance.upstream().accepted(),
            accepted,
            "{what}: connections accepted by inst{n}\n{view:#?}"
        );
        let seen = view
            .instances
            .iter()
            .find(|i| i.name == instance.name())
            .unwrap_or_else(|| panic!("{what}: inst{n} is not read\n{view:#?}"));
        assert_eq!(
            seen.connects, connects,
            "{what}: streams the turbine opened to inst{n}\n{view:#?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_instances_leave_after_stale_after_and_return_on_their_port() {
    const STALE_MS: u64 = 2_500;
    let stale = Duration::from_millis(STALE_MS);
    let mut fleet = vec![
        Instance::start(1).await,
        Instance::start(2).await,
        Instance::start(3).await,
    ];
    let dns = Dnsmasq::start(&records(&fleet, &[1, 2, 3]));
    let turbine = turbine(&dns, STALE_MS, 300_000).await;
    let mut frames = Frames::open(&turbine).await;

    let all = expected(&fleet);
    frames
        .settle("three instances", &subsets(&fleet, &[1, 2, 3]), &all)
        .await;
    wait_fleet("three instances", &turbine, &fleet, &[1, 2, 3]).await;
    assert_connections(
        "three instances",
        &turbine,
        &fleet,
        &[(1, 1, 1), (2, 1, 1), (3, 1, 1)],
    );

    // inst2 dies. Its last data counts until it is stale_after old, then goes.
    fleet[1].kill();
    let killed = Instant::now();
    while killed.elapsed() < stale / 2 {
        let frame = frames.next(Duration::from_secs(5)).await.unwrap();
        if killed.elapsed() < stale / 2 {
            assert!(
                frame == all,
                "inst2's last data went before stale_after ({:?} after the kill)\n  frame:{}\n  \
                 expected:{}",
                killed.elapsed(),
                summary(&frame),
                summary(&all)
            );
        }
    }
    let without_2 = expected(pick(&fleet, &[1, 3]));
    let gone_after = frames.settle("inst2 killed", [&all], &without_2).await - killed;
    assert!(
        gone_after >= stale / 2 && gone_after < stale + Duration::from_secs(2),
        "inst2's data went {gone_after:?} after the kill, stale_after is {stale:?}"
    );
    // Still discovered, so still listed, as stale; the others untouched.
    wait_fleet("inst2 killed", &turbine, &fleet, &[1, 2, 3]).await;
    assert_connections("inst2 killed", &turbine, &fleet, &[(1, 1, 1), (3, 1, 1)]);

    // inst2 comes back on its port with fresh counts: they count once, the old ones not at
    // all.
    fleet[1].restart().await;
    let back = expected(&fleet);
    assert_ne!(back, all);
    frames.settle("inst2 restarted", [&without_2], &back).await;
    wait_fleet("inst2 restarted", &turbine, &fleet, &[1, 2, 3]).await;
    assert_connections(
        "inst2 restarted",
        &turbine,
        &fleet,
        &[(1, 1, 1), (2, 1, 2), (3, 1, 1)],
    );

    // inst3 bounces, back well within stale_after: the stream goes from its old counts to its
    // new ones without ever losing it or counting it twice.
    fleet[2].kill();
    fleet[2].restart().await;
    let bounced = expected(&fleet);
    frames.settle("inst3 bounced", [&back], &bounced).await;
    wait_fleet("inst3 bounced", &turbine, &fleet, &[1, 2, 3]).await;
    assert_connections(
        "inst3 bounced",
        &turbine,
        &fleet,
        &[(1, 1, 1), (2, 1, 2), (3, 1, 2)],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_changes_add_and_remove_instances_at_once() {
    // Every instance keeps sending throughout, and stale_after is far beyond the test: an
    // instance's numbers can only leave because it left discovery.
    let mut fleet = Vec::new();
    for n in 1..=4 {
        fleet.push(Instance::start(n).await);
    }
    let mut dns = Dnsmasq::start(&records(&fleet, &[1, 2]));
    let turbine = turbine(&dns, 60_000, 300_000).await;
    let mut frames = Frames::open(&turbine).await;

    let first = expected(pick(&fleet, &[1, 2]));
    frames
        .settle("inst1 and inst2", &subsets(&fleet, &[1, 2]), &first)
        .await;
    wait_fleet("inst1 and inst2", &turbine, &fleet, &[1, 2]).await;

    // inst3 is added.
    dns.restart(&records(&fleet, &[1, 2, 3]));
    let added = expected(pick(&fleet, &[1, 2, 3]));
    frames.settle("inst3 added", [&first], &added).await;
    wait_fleet("inst3 added", &turbine, &fleet, &[1, 2, 3]).await;

    // inst2 is removed and inst4 added in one change: inst2's numbers leave at once although
    // it still sends, and its connection is closed.
    dns.restart(&records(&fleet, &[1, 3, 4]));
    let changed = Instant::now();
    let swapped = expected(pick(&fleet, &[1, 3, 4]));
    let took = frames
        .settle(
            "inst2 removed, inst4 added",
            [&added, &expected(pick(&fleet, &[1, 3]))],
            &swapped,
        )
        .await
        - changed;
    // The records' TTL is 1 s: a few refreshes at most.
    assert!(
        took < Duration::from_secs(8),
        "the change took {took:?} to show"
    );
    wait_fleet("inst2 removed, inst4 added", &turbine, &fleet, &[1, 3, 4]).await;

    // inst2 comes back under the same name: read afresh, counted once.
    dns.restart(&records(&fleet, &[1, 2, 3, 4]));
    let all = expected(&fleet);
    frames.settle("inst2 back", [&swapped], &all).await;
    wait_fleet("inst2 back", &turbine, &fleet, &[1, 2, 3, 4]).await;
    assert_connections(
        "inst2 back",
        &turbine,
        &fleet,
        &[(1, 1, 1), (2, 2, 1), (3, 1, 1), (4, 1, 1)],
    );
    let view = cluster(&turbine);
    assert_eq!(view.discovery.health, "ok", "{view:#?}");
    assert_eq!(view.keys, 5, "Get and Only1..4: {view:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_server_down_keeps_the_last_instances_then_changes_show() {
    let mut fleet = Vec::new();
    for n in 1..=3 {
        fleet.push(Instance::start(n).await);
    }
    let mut dns = Dnsmasq::start(&records(&fleet, &[1, 2]));
    let turbine = turbine(&dns, 2_500, 300_000).await;
    let mut frames = Frames::open(&turbine).await;
    let both = expected(pick(&fleet, &[1, 2]));
    frames
        .settle("inst1 and inst2", &subsets(&fleet, &[1, 2]), &both)
        .await;
    wait_fleet("inst1 and inst2", &turbine, &fleet, &[1, 2]).await;

    // The name server goes. Until look-ups are seen failing (some 6 s: the resolver's
    // timeouts), and 3 s more, frames keep coming, each the whole of both instances, and
    // their connections are untouched.
    dns.stop();
    let down = Instant::now();
    let mut stale_at = None;
    loop {
        let Some(frame) = frames.next(Duration::from_secs(2)).await else {
            panic!(
                "no frame for 2 s, {:?} after the name server stopped: the instances went\n{:#?}",
                down.elapsed(),
                cluster(&turbine)
            );
        };
        assert!(
            frame == both,
            "{:?} after the name server stopped:\n  frame:{}\n  expected:{}",
            down.elapsed(),
            summary(&frame),
            summary(&both)
        );
        let view = cluster(&turbine);
        if stale_at.is_none() && view.discovery.health == "stale" {
            stale_at = Some(down.elapsed());
        }
        match stale_at {
            Some(at) if down.elapsed() > at + Duration::from_secs(3) => break,
            Some(_) => {}
            None => assert!(
                down.elapsed() < SETTLE,
                "look-ups not seen failing: {view:#?}"
            ),
        }
    }
    wait_fleet("name server down", &turbine, &fleet, &[1, 2]).await;
    assert_connections(
        "name server down",
        &turbine,
        &fleet,
        &[(1, 1, 1), (2, 1, 1)],
    );
    let view = cluster(&turbine);
    assert!(
        view.discovery
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with(SRV)),
        "{view:#?}"
    );

    // It comes back with inst1 gone and inst3 new.
    dns.run(&records(&fleet, &[2, 3]));
    let after = expected(pick(&fleet, &[2, 3]));
    frames
        .settle(
            "name server back",
            [&both, &expected(pick(&fleet, &[2]))],
            &after,
        )
        .await;
    wait_fleet("name server back", &turbine, &fleet, &[2, 3]).await;
    assert_connections(
        "name server back",
        &turbine,
        &fleet,
        &[(2, 1, 1), (3, 1, 1)],
    );
    assert_eq!(cluster(&turbine).discovery.health, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_zone_past_the_grace_period_empties_the_cluster() {
    const GRACE_MS: u64 = 5_000;
    let grace = Duration::from_millis(GRACE_MS);
    let mut fleet = Vec::new();
    for n in 1..=2 {
        fleet.push(Instance::start(n).await);
    }
    let mut dns = Dnsmasq::start(&records(&fleet, &[1, 2]));
    let turbine = turbine(&dns, 2_500, GRACE_MS).await;
    let mut frames = Frames::open(&turbine).await;
    let both = expected(&fleet);
    frames
        .settle("inst1 and inst2", &subsets(&fleet, &[1, 2]), &both)
        .await;
    wait_fleet("inst1 and inst2", &turbine, &fleet, &[1, 2]).await;

    // The zone loses the SRV name (NXDOMAIN, answered at once, unlike a server that is
    // gone): the instances are kept, and counted whole, for the grace period; then they go
    // with their numbers and connections.
    let broken = Instant::now();
    dns.restart(&["--host-record=inst1.api.test,127.0.0.1".to_owned()]);
    let mut stale_seen = false;
    let mut kept = Duration::ZERO;
    let first_change = loop {
        let frame = frames.next(SETTLE).await.expect("frames keep coming");
        stale_seen |= cluster(&turbine).discovery.health == "stale";
        if frame != both {
            break frame;
        }
        // When it began: its end is only seen when the next frame (or a ping) comes.
        kept = frames.since.unwrap() - broken;
        assert!(kept < SETTLE, "the grace period never ended");
    };
    // The last good look-up was at most a refresh (1 s) before the break; frames come every
    // 100 ms.
    assert!(
        kept >= grace - Duration::from_millis(1_500),
        "the instances were last counted {kept:?} after the zone broke, the grace period is \
         {grace:?}"
    );
    assert!(stale_seen, "the discovery was never seen stale");
    let empty = Frame::new();
    explained(&first_change, &[&both, &empty]).unwrap();
    frames.settle("grace period over", [&both], &empty).await;
    wait_fleet("grace period over", &turbine, &fleet, &[]).await;
    let view = cluster(&turbine);
    assert_eq!(
        (view.discovery.health, view.keys),
        ("failed", 0),
        "{view:#?}"
    );
    assert!(
        view.discovery
            .error
            .as_deref()
            .is_some_and(|e| e.contains("NXDOMAIN")),
        "{view:#?}"
    );

    // The records are back: both are read again, afresh.
    dns.restart(&records(&fleet, &[1, 2]));
    frames
        .settle("records back", &subsets(&fleet, &[1, 2]), &both)
        .await;
    wait_fleet("records back", &turbine, &fleet, &[1, 2]).await;
    assert_connections("records back", &turbine, &fleet, &[(1, 2, 1), (2, 2, 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshed_ms_ago_counts_from_the_last_look_up() {
    // A fleet that does not change, looked up every second (TTL 1 s).
    let fleet = vec![Instance::start(1).await];
    let dns = Dnsmasq::start(&records(&fleet, &[1]));
    let turbine = turbine(&dns, 2_500, 300_000).await;
    let mut frames = Frames::open(&turbine).await;
    frames
        .settle("inst1", &subsets(&fleet, &[1]), &expected(&fleet))
        .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let view = cluster(&turbine);
    assert_eq!(view.discovery.health, "ok", "{view:#?}");
    let ago = view.discovery.refreshed_ms_ago.unwrap();
    assert!(
        ago < 2_500,
        "look-ups every second, but the instances were last found {ago} ms ago, says \
         /clusters\n{view:#?}"
    );
}
