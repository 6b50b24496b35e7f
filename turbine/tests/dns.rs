#![allow(clippy::unwrap_used)]
//! SRV discovery against a real `dnsmasq` started by each test on a free loopback port, and
//! restarted on that port with other records to change the fleet. A missing `dnsmasq` fails
//! the tests: `scripts/test.sh` installs it.
//!
//! These tests run in real time (a real server ignores tokio's paused time); every wait is
//! bounded, and refreshes are about a second.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use hystrix_turbine::discovery::{Discovered, Discovery, Health, SrvConfig};
use tokio::{sync::watch, time::Instant};

/// The SRV name every test looks up.
const SRV: &str = "_hystrix._tcp.api.test";

// ---------------------------------------------------------------------------------------------
// A real dnsmasq.

#[path = "common/dnsmasq.rs"]
mod dnsmasq;

use dnsmasq::{Dnsmasq, free_port};

/// The records of instances `n`: SRV `instN.api.test:808N`, address `127.0.0.N`.
fn fleet(instances: &[u8]) -> Vec<String> {
    instances
        .iter()
        .flat_map(|n| {
            [
                format!("--srv-host={SRV},inst{n}.api.test,808{n}"),
                format!("--host-record=inst{n}.api.test,127.0.0.{n}"),
            ]
        })
        .collect()
}

/// The records of a fleet that is gone: the hosts are there, the SRV name is not (NXDOMAIN).
fn no_srv() -> Vec<String> {
    vec!["--host-record=inst1.api.test,127.0.0.1".to_owned()]
}

// ---------------------------------------------------------------------------------------------
// Discovery.

/// Discovery of [`SRV`] on `server`, every second, with `grace`.
fn discover(server: SocketAddr, grace: Duration) -> watch::Receiver<Discovered> {
    discover_with(server, |config| config.grace = grace)
}

/// Discovery of [`SRV`] on `server`, refreshing every second but as `tune` says.
fn discover_with(
    server: SocketAddr,
    tune: impl FnOnce(&mut SrvConfig),
) -> watch::Receiver<Discovered> {
    let mut config = SrvConfig::new(SRV);
    config.nameservers = vec![server];
    config.min_refresh = Duration::from_secs(1);
    config.max_refresh = Duration::from_secs(1);
    tune(&mut config);
    Discovery::Srv(config).spawn()
}

/// The endpoints' names and addresses.
fn endpoints(found: &Discovered) -> Vec<(String, Option<IpAddr>)> {
    found
        .endpoints
        .iter()
        .map(|e| (e.name.clone(), e.addr))
        .collect()
}

/// The endpoints of instances `n` of [`fleet`].
fn expected(instances: &[u8]) -> Vec<(String, Option<IpAddr>)> {
    instances
        .iter()
        .map(|n| {
            (
                format!("inst{n}.api.test:808{n}"),
                Some(IpAddr::from([127, 0, 0, *n])),
            )
        })
        .collect()
}

/// Waits until what is found satisfies `ok`, at most `within`; panics with the last state.
async fn wait_for(
    rx: &mut watch::Receiver<Discovered>,
    within: Duration,
    what: &str,
    ok: impl Fn(&Discovered) -> bool,
) -> Discovered {
    let deadline = Instant::now() + within;
    loop {
        {
            let seen = rx.borrow_and_update();
            if ok(&seen) {
                return seen.clone();
            }
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(changed) => changed.expect("the discovery task ended"),
            Err(_) => panic!(
                "not {what} within {within:?}; last seen: {:?}",
                *rx.borrow()
            ),
        }
    }
}

/// Waits until instances `n` of [`fleet`] are found, healthy.
async fn wait_for_fleet(
    rx: &mut watch::Receiver<Discovered>,
    within: Duration,
    instances: &[u8],
) -> Discovered {
    let want = expected(instances);
    wait_for(rx, within, &format!("{want:?}"), |found| {
        found.health == Health::Ok && endpoints(found) == want
    })
    .await
}

/// A first answer comes quickly.
const FIRST: Duration = Duration::from_secs(5);
/// A change is seen within a few refreshes of a second.
const FEW_REFRESHES: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// Tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_are_found_with_their_addresses() {
    let server = Dnsmasq::start(&fleet(&[1, 2]));
    let mut rx = discover(server.addr(), SrvConfig::DEFAULT_GRACE);
    let found = wait_for_fleet(&mut rx, FIRST, &[1, 2]).await;
    let first = &found.endpoints[0];
    assert_eq!((first.host.as_str(), first.port), ("inst1.api.test", 8081));
    assert_eq!(first.socket_addr(), Some("127.0.0.1:8081".parse().unwrap()));
    assert!(found.refreshed.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_are_looked_up_or_left_for_the_connection() {
    // `alias` is not in the additional section (a CNAME): its address is looked up.
    // `inst3` has no address at all: kept, to be resolved at connection time.
    let mut records = fleet(&[1]);
    records.extend([
        format!("--srv-host={SRV},alias.api.test,8085"),
        "--cname=alias.api.test,inst2.api.test".to_owned(),
        "--host-record=inst2.api.test,127.0.0.2".to_owned(),
        format!("--srv-host={SRV},inst3.api.test,8083"),
    ]);
    let server = Dnsmasq::start(&records);
    let mut rx = discover(server.addr(), SrvConfig::DEFAULT_GRACE);
    let want = vec![
        (
            "alias.api.test:8085".to_owned(),
            Some(IpAddr::from([127, 0, 0, 2])),
        ),
        (
            "inst1.api.test:8081".to_owned(),
            Some(IpAddr::from([127, 0, 0, 1])),
        ),
        ("inst3.api.test:8083".to_owned(), None),
    ];
    wait_for(&mut rx, FIRST, "the three targets", |found| {
        found.health == Health::Ok && endpoints(found) == want
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_added_and_removed() {
    let mut server = Dnsmasq::start(&fleet(&[1, 2]));
    let mut rx = discover(server.addr(), SrvConfig::DEFAULT_GRACE);
    wait_for_fleet(&mut rx, FIRST, &[1, 2]).await;

    server.restart(&fleet(&[1, 2, 3]));
    wait_for_fleet(&mut rx, FEW_REFRESHES, &[1, 2, 3]).await;

    server.restart(&fleet(&[2, 3]));
    wait_for_fleet(&mut rx, FEW_REFRESHES, &[2, 3]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nxdomain_keeps_the_last_instances_during_the_grace_period() {
    let mut server = Dnsmasq::start(&fleet(&[1, 2]));
    let mut rx = discover(server.addr(), SrvConfig::DEFAULT_GRACE);
    let good = wait_for_fleet(&mut rx, FIRST, &[1, 2]).await;

    server.restart(&no_srv());
    let stale = wait_for(&mut rx, FEW_REFRESHES, "stale", |found| {
        matches!(found.health, Health::Stale { .. })
    })
    .await;
    assert_eq!(
        stale.health.error(),
        Some("_hystrix._tcp.api.test: no SRV records (NXDOMAIN)")
    );
    assert_eq!(
        endpoints(&stale),
        expected(&[1, 2]),
        "the last good instances"
    );
    assert_eq!(stale.refreshed, good.refreshed, "when they were last found");

    // Retries that fail alike are no news.
    let quiet = tokio::time::timeout(Duration::from_millis(2_500), rx.changed()).await;
    assert!(
        quiet.is_err(),
        "a receiver heard of a retry: {:?}",
        *rx.borrow()
    );

    server.restart(&fleet(&[1, 2, 3]));
    wait_for_fleet(&mut rx, FEW_REFRESHES, &[1, 2, 3]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nxdomain_after_the_grace_period_empties_the_list() {
    let mut server = Dnsmasq::start(&fleet(&[1]));
    let mut rx = discover(server.addr(), Duration::from_secs(2));
    wait_for_fleet(&mut rx, FIRST, &[1]).await;

    server.restart(&no_srv());
    let failed = wait_for(&mut rx, Duration::from_secs(8), "failed", |found| {
        matches!(found.health, Health::Failed { .. })
    })
    .await;
    assert_eq!(
        failed.health.error(),
        Some("_hystrix._tcp.api.test: no SRV records (NXDOMAIN)")
    );
    assert!(failed.endpoints.is_empty(), "{failed:?}");

    server.restart(&fleet(&[2]));
    wait_for_fleet(&mut rx, FEW_REFRESHES, &[2]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_without_srv_records_is_a_failure() {
    // The name exists (a TXT record) but has no SRV records: NOERROR, no data.
    let server = Dnsmasq::start(&[format!("--txt-record={SRV},not a fleet")]);
    let mut rx = discover(server.addr(), SrvConfig::DEFAULT_GRACE);
    let failed = wait_for(&mut rx, FIRST, "failed", |found| {
        matches!(found.health, Health::Failed { .. })
    })
    .await;
    assert_eq!(
        failed.health.error(),
        Some("_hystrix._tcp.api.test: no SRV records (NODATA)")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_of_dot_means_no_instances() {
    // RFC 2782: "the service is decidedly not available at this domain" — a good answer.
    let mut server = Dnsmasq::start(&fleet(&[1]));
    let mut rx = discover(server.addr(), SrvConfig::DEFAULT_GRACE);
    wait_for_fleet(&mut rx, FIRST, &[1]).await;

    server.restart(&[format!("--srv-host={SRV}")]);
    wait_for(&mut rx, FEW_REFRESHES, "ok without instances", |found| {
        found.health == Health::Ok && found.endpoints.is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_second_ttl_shows_a_change_within_seconds() {
    let mut server = Dnsmasq::start(&fleet(&[1, 2]));
    let mut rx = discover_with(server.addr(), |config| {
        config.max_refresh = SrvConfig::DEFAULT_MAX_REFRESH;
    });
    wait_for_fleet(&mut rx, FIRST, &[1, 2]).await;

    server.restart(&fleet(&[1]));
    wait_for_fleet(&mut rx, Duration::from_secs(3), &[1]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_refresh_is_a_floor_under_the_ttl() {
    let mut server = Dnsmasq::start(&fleet(&[1]));
    let mut rx = discover_with(server.addr(), |config| {
        config.min_refresh = Duration::from_secs(30);
        config.max_refresh = SrvConfig::DEFAULT_MAX_REFRESH;
    });
    wait_for_fleet(&mut rx, FIRST, &[1]).await;

    server.restart(&fleet(&[1, 2]));
    let changed = tokio::time::timeout(Duration::from_secs(3), rx.changed()).await;
    assert!(
        changed.is_err(),
        "looked up again before min_refresh: {:?}",
        *rx.borrow()
    );
    assert_eq!(endpoints(&rx.borrow()), expected(&[1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ttl_sets_the_refresh_between_the_bounds() {
    // TTL 5 s, bounds [1 s, 60 s]: the next look-up is 5 s after the first.
    let mut server = Dnsmasq::stopped();
    server.run_with_ttl(5, &fleet(&[1]));
    let mut rx = discover_with(server.addr(), |config| {
        config.max_refresh = SrvConfig::DEFAULT_MAX_REFRESH;
    });
    wait_for_fleet(&mut rx, FIRST, &[1]).await;
    let first = Instant::now();

    server.stop();
    server.run_with_ttl(5, &fleet(&[1, 2]));
    let early = tokio::time::timeout(Duration::from_secs(3), rx.changed()).await;
    assert!(
        early.is_err(),
        "looked up again before the TTL: {:?}",
        *rx.borrow()
    );
    wait_for_fleet(&mut rx, Duration::from_secs(5), &[1, 2]).await;
    assert!(
        first.elapsed() >= Duration::from_secs(4),
        "{:?}",
        first.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_refresh_is_a_ceiling_over_the_ttl() {
    // TTL one hour, max_refresh 1 s: neither the TTL nor the resolver's cache holds the
    // change back.
    let mut server = Dnsmasq::stopped();
    server.run_with_ttl(3_600, &fleet(&[1]));
    let mut rx = discover(server.addr(), SrvConfig::DEFAULT_GRACE);
    wait_for_fleet(&mut rx, FIRST, &[1]).await;

    server.stop();
    server.run_with_ttl(3_600, &fleet(&[2]));
    wait_for_fleet(&mut rx, Duration::from_secs(3), &[2]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_name_server_fails_then_recovers() {
    let port = free_port();
    let mut rx = discover(
        SocketAddr::from(([127, 0, 0, 1], port)),
        SrvConfig::DEFAULT_GRACE,
    );
    let failed = wait_for(&mut rx, Duration::from_secs(10), "failed", |found| {
        matches!(found.health, Health::Failed { .. })
    })
    .await;
    let error = failed.health.error().unwrap();
    assert!(error.starts_with("_hystrix._tcp.api.test: "), "{error}");
    assert!(failed.endpoints.is_empty());

    // The task lives on, retrying, and finds the fleet once a server answers.
    let _server = Dnsmasq::start_on(port, &fleet(&[1]));
    wait_for_fleet(&mut rx, Duration::from_secs(8), &[1]).await;
}
