//! DNS SRV discovery (hickory-resolver).
//!
//! Each round asks the name servers for the SRV records of the name and publishes one endpoint
//! per record: `target:port`, with the target's address taken from the additional section of
//! the answer, else looked up (A, then AAAA), else left for the connection to resolve. The
//! resolver's cache is emptied before each round, so a refresh always asks the servers again.
//! The next round comes after the smallest TTL of the records used, kept within
//! [`SrvConfig::min_refresh`] and [`SrvConfig::max_refresh`].
//!
//! A round fails on NXDOMAIN, on an answer without SRV records (NODATA: an empty fleet is far
//! more likely a typo or a broken zone than a decision, so it is not taken as "no instances"),
//! on a server error and when no server answers. Within [`SrvConfig::grace`] of the last good
//! answer the endpoints stay, with [`Health::Stale`]; after it (or when nothing was ever found)
//! there are none, with [`Health::Failed`]. Failing rounds are retried every `min_refresh`.
//! The way for a zone to say "no instances" is a record whose target is `.` (RFC 2782): that
//! is a good answer without endpoints.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use futures_util::StreamExt;
use hickory_resolver::{
    TokioResolver,
    config::{LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig},
    lookup::Lookup,
    net::{DnsError, NetError, runtime::TokioRuntimeProvider},
    proto::{
        op::ResponseCode,
        rr::{Name, RData, Record},
    },
};
use tokio::{sync::watch, time::Instant};

use super::{Discovered, Endpoint, Health};

/// Where and how to look up a cluster's SRV records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrvConfig {
    /// The SRV name, such as `_hystrix._tcp.api.example`.
    pub name: String,
    /// The name servers to ask (UDP, then TCP); empty for the system's (`/etc/resolv.conf`).
    pub nameservers: Vec<SocketAddr>,
    /// The shortest time between two look-ups, whatever the records' TTL.
    pub min_refresh: Duration,
    /// The longest time between two look-ups, whatever the records' TTL.
    pub max_refresh: Duration,
    /// How long the last good answer is kept while look-ups fail.
    pub grace: Duration,
}

impl SrvConfig {
    /// Default shortest refresh: 1 s.
    pub const DEFAULT_MIN_REFRESH: Duration = Duration::from_secs(1);
    /// Default longest refresh: 60 s.
    pub const DEFAULT_MAX_REFRESH: Duration = Duration::from_secs(60);
    /// Default grace period: 5 minutes.
    pub const DEFAULT_GRACE: Duration = Duration::from_secs(300);

    /// Looks `name` up with the system's name servers and the default timings.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            nameservers: Vec::new(),
            min_refresh: Self::DEFAULT_MIN_REFRESH,
            max_refresh: Self::DEFAULT_MAX_REFRESH,
            grace: Self::DEFAULT_GRACE,
        }
    }
}

/// How long one query waits for a name server.
const TIMEOUT: Duration = Duration::from_secs(2);
/// How many times a query is tried (across the name servers) before the look-up fails.
const ATTEMPTS: usize = 2;
/// How many targets missing from the additional section are looked up at once.
const TARGET_LOOKUPS: usize = 8;

/// What a good round found.
#[derive(Debug)]
struct Found {
    /// One endpoint per SRV record (but those of target `.`).
    endpoints: Vec<Endpoint>,
    /// The smallest TTL of the records used.
    ttl: Duration,
    /// The targets without an address, with why.
    unresolved: Vec<(String, String)>,
}

/// Looks the SRV records up until every receiver is gone, and publishes what they say.
pub(super) async fn run(config: SrvConfig, tx: watch::Sender<Discovered>) {
    let mut resolver = None;
    loop {
        let outcome = tokio::select! {
            outcome = look_up(&mut resolver, &config) => outcome,
            () = tx.closed() => return,
        };
        let wait = publish(&tx, &config, outcome, Instant::now());
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = tx.closed() => return,
        }
    }
}

/// One round: the resolver (built on the first round that can), a fresh SRV look-up, and the
/// targets' addresses.
async fn look_up(
    resolver: &mut Option<TokioResolver>,
    config: &SrvConfig,
) -> Result<Found, String> {
    let resolver = match resolver {
        Some(resolver) => resolver,
        None => resolver.insert(
            build_resolver(config).map_err(|e| format!("{}: no resolver: {e}", config.name))?,
        ),
    };
    resolver.clear_cache();
    let answer = resolver
        .srv_lookup(config.name.as_str())
        .await
        .map_err(|e| describe(&config.name, "SRV", &e))?;
    found(resolver, &config.name, &answer).await
}

/// A resolver for `config`'s name servers (UDP and TCP to each), or the system's.
fn build_resolver(config: &SrvConfig) -> Result<TokioResolver, NetError> {
    let mut builder = if config.nameservers.is_empty() {
        TokioResolver::builder_tokio()?
    } else {
        let servers = config
            .nameservers
            .iter()
            .copied()
            .map(name_server)
            .collect();
        let mut builder = TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(servers),
            TokioRuntimeProvider::default(),
        );
        // Only the servers given answer, not `/etc/hosts`.
        builder.options_mut().use_hosts_file = ResolveHosts::Never;
        builder
    };
    let options = builder.options_mut();
    options.timeout = TIMEOUT;
    options.attempts = ATTEMPTS;
    options.ip_strategy = LookupIpStrategy::Ipv4thenIpv6;
    builder.build()
}

/// A name server asked over UDP and TCP on `addr`'s port (hickory's constructors take the
/// protocols' default port, 53).
fn name_server(addr: SocketAddr) -> NameServerConfig {
    let mut server = NameServerConfig::udp_and_tcp(addr.ip());
    for connection in &mut server.connections {
        connection.port = addr.port();
    }
    server
}

/// The endpoints of an SRV answer, with the targets missing from its additional section looked
/// up.
async fn found(resolver: &TokioResolver, name: &str, answer: &Lookup) -> Result<Found, String> {
    let records: Vec<(&Name, u16, u32)> = answer
        .answers()
        .iter()
        .filter_map(|record| match &record.data {
            RData::SRV(srv) => Some((&srv.target, srv.port, record.ttl)),
            _ => None,
        })
        .collect();
    let Some(srv_ttl) = records.iter().map(|&(_, _, ttl)| ttl).min() else {
        return Err(format!("{name}: no SRV records in the answer"));
    };
    // Owned targets: a stream of borrowed ones makes the task's future not `Send` (rustc
    // cannot prove the closures general over the borrow's lifetime).
    let targets: Vec<(Name, u16)> = records
        .into_iter()
        .filter(|(target, _, _)| !target.is_root())
        .map(|(target, port, _)| (target.clone(), port))
        .collect();
    let additionals = answer.additionals();
    let resolved: Vec<_> = futures_util::stream::iter(targets)
        .map(|(target, port)| endpoint(resolver, additionals, target, port))
        .buffered(TARGET_LOOKUPS)
        .collect()
        .await;
    let mut found = Found {
        endpoints: Vec::with_capacity(resolved.len()),
        ttl: Duration::from_secs(srv_ttl.into()),
        unresolved: Vec::new(),
    };
    for (endpoint, address) in resolved {
        match address {
            Ok(ttl) => found.ttl = found.ttl.min(Duration::from_secs(ttl.into())),
            Err(error) => found.unresolved.push((endpoint.name.clone(), error)),
        }
        found.endpoints.push(endpoint);
    }
    Ok(found)
}

/// The endpoint of one SRV record, and the TTL of its address (or why it has none).
async fn endpoint(
    resolver: &TokioResolver,
    additionals: &[Record],
    target: Name,
    port: u16,
) -> (Endpoint, Result<u32, String>) {
    let host = target.to_ascii();
    let address = match address_in(additionals, &target) {
        Some(address) => Ok(address),
        None => resolve(resolver, &target)
            .await
            .map_err(|e| describe(host.trim_end_matches('.'), "address", &e)),
    };
    match address {
        Ok((ip, ttl)) => (Endpoint::resolved(&host, port, Some(ip)), Ok(ttl)),
        Err(error) => (Endpoint::resolved(&host, port, None), Err(error)),
    }
}

/// The address of `target` among `records`, with its TTL: the lowest IPv4 address, or the
/// lowest IPv6 one when it has none. The lowest, not the first, so that servers that rotate
/// their records do not make the endpoint change at each refresh.
fn address_in(records: &[Record], target: &Name) -> Option<(IpAddr, u32)> {
    records
        .iter()
        .filter(|record| record.name == *target)
        .filter_map(|record| Some((record.data.ip_addr()?, record.ttl)))
        .min_by_key(|&(ip, _)| ip)
}

/// Looks `target`'s address up (A, then AAAA): the lowest of the answer, whose owner may be
/// another name when `target` is an alias.
async fn resolve(resolver: &TokioResolver, target: &Name) -> Result<(IpAddr, u32), NetError> {
    let lookup = resolver.lookup_ip(target.clone()).await?;
    lookup
        .as_lookup()
        .answers()
        .iter()
        .filter_map(|record| Some((record.data.ip_addr()?, record.ttl)))
        .min_by_key(|&(ip, _)| ip)
        .ok_or(NetError::Message("no address in the answer"))
}

/// What a failed look-up of the `kind` records of `name` means, for the health and the logs.
fn describe(name: &str, kind: &str, error: &NetError) -> String {
    match error {
        NetError::Dns(DnsError::NoRecordsFound(no_records)) => {
            format!(
                "{name}: no {kind} records ({})",
                rcode(no_records.response_code)
            )
        }
        NetError::Dns(DnsError::ResponseCode(code)) => {
            format!("{name}: the name server answered {}", rcode(*code))
        }
        NetError::Timeout => format!("{name}: no answer from the name servers (timed out)"),
        other => format!("{name}: {kind} look-up failed: {other}"),
    }
}

/// A response code as `dig` shows it.
fn rcode(code: ResponseCode) -> String {
    match code {
        // No error, but no records: the name exists without SRV records.
        ResponseCode::NoError => "NODATA".to_owned(),
        ResponseCode::NXDomain => "NXDOMAIN".to_owned(),
        ResponseCode::ServFail => "SERVFAIL".to_owned(),
        ResponseCode::Refused => "REFUSED".to_owned(),
        ResponseCode::FormErr => "FORMERR".to_owned(),
        ResponseCode::NotImp => "NOTIMP".to_owned(),
        other => format!("{other} (rcode {})", u16::from(other)),
    }
}

/// Publishes the outcome of a round (receivers hear of it only when the endpoints or the
/// health changed) and returns how long to wait before the next one.
fn publish(
    tx: &watch::Sender<Discovered>,
    config: &SrvConfig,
    outcome: Result<Found, String>,
    now: Instant,
) -> Duration {
    match outcome {
        Ok(found) => {
            let wait = refresh_after(found.ttl, config);
            let next = Discovered::found(found.endpoints, now);
            tx.send_if_modified(|current| {
                log_found(&config.name, current, &next, &found.unresolved);
                replace(current, next)
            });
            wait
        }
        Err(error) => {
            tx.send_if_modified(|current| {
                let next = after_failure(current, error, now, config.grace);
                log_failure(&config.name, current, &next);
                replace(current, next)
            });
            config.min_refresh
        }
    }
}

/// The time until the next round after a good one: the TTL, within the configured bounds (the
/// shortest wins should they cross).
fn refresh_after(ttl: Duration, config: &SrvConfig) -> Duration {
    ttl.min(config.max_refresh).max(config.min_refresh)
}

/// What to publish after a failed round: the last good endpoints within `grace` of when they
/// were found, else none.
fn after_failure(current: &Discovered, error: String, now: Instant, grace: Duration) -> Discovered {
    match current.refreshed {
        Some(at) if now.saturating_duration_since(at) < grace => Discovered {
            endpoints: current.endpoints.clone(),
            health: Health::Stale { error },
            refreshed: current.refreshed,
        },
        refreshed => Discovered {
            endpoints: Arc::from(Vec::new()),
            health: Health::Failed { error },
            refreshed,
        },
    }
}

/// Puts `next` in place of `current`, and tells whether receivers should hear of it: when the
/// endpoints or the health changed (a later `refreshed` alone is no news).
fn replace(current: &mut Discovered, next: Discovered) -> bool {
    let changed = current.endpoints != next.endpoints || current.health != next.health;
    *current = next;
    changed
}

/// Logs what changed with a good round: recovery, the endpoints, targets newly unresolved.
fn log_found(name: &str, current: &Discovered, next: &Discovered, unresolved: &[(String, String)]) {
    if matches!(current.health, Health::Stale { .. } | Health::Failed { .. }) {
        tracing::info!(srv = name, "SRV look-ups work again");
    }
    if current.endpoints != next.endpoints || current.health == Health::Pending {
        tracing::info!(
            srv = name,
            instances = next.endpoints.len(),
            "instances found"
        );
    }
    for (endpoint, error) in unresolved {
        let known = current
            .endpoints
            .iter()
            .any(|e| e.name == *endpoint && e.addr.is_none());
        if !known {
            tracing::warn!(
                srv = name,
                %endpoint,
                %error,
                "SRV target has no address; it will be resolved at each connection"
            );
        }
    }
}

/// Logs a failed round when the health changes (not at every retry).
fn log_failure(name: &str, current: &Discovered, next: &Discovered) {
    if current.health == next.health {
        return;
    }
    let error = next.health.error().unwrap_or_default();
    match next.health {
        Health::Stale { .. } => tracing::warn!(
            srv = name,
            %error,
            instances = next.endpoints.len(),
            "SRV look-up failed; keeping the last instances for the grace period"
        ),
        _ => tracing::warn!(
            srv = name,
            %error,
            "SRV look-up failed and no good answer is recent enough: no instances"
        ),
    }
}

#[cfg(test)]
mod tests {
    use hickory_resolver::{
        net::NoRecords,
        proto::{
            op::Query,
            rr::{
                RecordType,
                rdata::{A, AAAA, CNAME},
            },
        },
    };

    use super::*;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn record(owner: &str, ttl: u32, data: RData) -> Record {
        Record::from_rdata(name(owner), ttl, data)
    }

    fn good(at: Instant) -> Discovered {
        Discovered::found(vec![Endpoint::resolved("inst1.api.test.", 8081, None)], at)
    }

    #[test]
    fn addresses_from_the_additional_section() {
        let v6 = RData::AAAA(AAAA::new(0xfd00, 0, 0, 0, 0, 0, 0, 1));
        let records = [
            record("other.api.test.", 5, RData::A(A::new(10, 0, 0, 1))),
            record("INST1.api.test.", 7, v6.clone()),
            record("inst1.api.test.", 9, RData::A(A::new(127, 0, 0, 9))),
            record("inst1.api.test.", 8, RData::A(A::new(127, 0, 0, 2))),
            record(
                "inst1.api.test.",
                3,
                RData::CNAME(CNAME(name("x.api.test."))),
            ),
            record("inst2.api.test.", 4, v6),
        ];
        let v4 = address_in(&records, &name("inst1.api.test."));
        assert_eq!(v4, Some((IpAddr::from([127, 0, 0, 2]), 8)));
        let only_v6 = address_in(&records, &name("inst2.api.test."));
        assert_eq!(
            only_v6.map(|(ip, ttl)| (ip.is_ipv6(), ttl)),
            Some((true, 4))
        );
        assert_eq!(address_in(&records, &name("inst3.api.test.")), None);
    }

    #[test]
    fn errors_name_the_srv_name_and_the_cause() {
        let query = Query::query(name("_hystrix._tcp.api.test."), RecordType::SRV);
        let none = |code| {
            NetError::from(DnsError::NoRecordsFound(NoRecords::new(
                query.clone(),
                code,
            )))
        };
        let srv = "_hystrix._tcp.api.test";
        assert_eq!(
            describe(srv, "SRV", &none(ResponseCode::NXDomain)),
            "_hystrix._tcp.api.test: no SRV records (NXDOMAIN)"
        );
        assert_eq!(
            describe(srv, "SRV", &none(ResponseCode::NoError)),
            "_hystrix._tcp.api.test: no SRV records (NODATA)"
        );
        let servfail = NetError::from(DnsError::ResponseCode(ResponseCode::ServFail));
        assert_eq!(
            describe(srv, "SRV", &servfail),
            "_hystrix._tcp.api.test: the name server answered SERVFAIL"
        );
        assert_eq!(
            describe(srv, "SRV", &NetError::Timeout),
            "_hystrix._tcp.api.test: no answer from the name servers (timed out)"
        );
    }

    #[test]
    fn refresh_follows_the_ttl_within_bounds() {
        let mut config = SrvConfig::new("_x._tcp.example");
        config.min_refresh = Duration::from_secs(2);
        config.max_refresh = Duration::from_secs(30);
        let secs = |s| Duration::from_secs(s);
        assert_eq!(refresh_after(secs(0), &config), secs(2));
        assert_eq!(refresh_after(secs(10), &config), secs(10));
        assert_eq!(refresh_after(secs(86_400), &config), secs(30));
        config.max_refresh = secs(1);
        assert_eq!(
            refresh_after(secs(10), &config),
            secs(2),
            "crossed bounds: the floor wins"
        );
    }

    #[test]
    fn failures_keep_the_endpoints_for_the_grace_period_only() {
        let t0 = Instant::now();
        let grace = Duration::from_secs(10);
        let last = good(t0);

        let stale = after_failure(&last, "e1".into(), t0 + Duration::from_secs(9), grace);
        assert_eq!(stale.health, Health::Stale { error: "e1".into() });
        assert_eq!(stale.endpoints, last.endpoints);
        assert_eq!(stale.refreshed, Some(t0));

        let failed = after_failure(&stale, "e2".into(), t0 + grace, grace);
        assert_eq!(failed.health, Health::Failed { error: "e2".into() });
        assert!(failed.endpoints.is_empty());
        assert_eq!(
            failed.refreshed,
            Some(t0),
            "still when they were last found"
        );

        let never = after_failure(&Discovered::default(), "e3".into(), t0, grace);
        assert_eq!(never.health, Health::Failed { error: "e3".into() });
    }

    #[test]
    fn only_endpoints_and_health_are_news() {
        let t0 = Instant::now();
        let mut current = good(t0);
        let later = t0 + Duration::from_secs(1);
        assert!(
            !replace(&mut current, good(later)),
            "a refresh that found the same"
        );
        assert_eq!(current.refreshed, Some(later), "refreshed all the same");
        let stale = after_failure(&current, "e".into(), later, Duration::from_secs(5));
        assert!(replace(&mut current, stale.clone()));
        assert!(!replace(&mut current, stale), "the same failure again");
        let moved = Discovered::found(
            vec![Endpoint::resolved("inst1.api.test", 8082, None)],
            later,
        );
        assert!(replace(&mut current, moved));
    }

    #[test]
    fn name_servers_keep_their_port() {
        let server = name_server("127.0.0.1:5353".parse().unwrap());
        assert_eq!(server.ip, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(server.connections.len(), 2, "UDP and TCP");
        assert!(server.connections.iter().all(|c| c.port == 5353));
    }
}
