//! The demo's DNS server: hickory-server on a loopback port, authoritative for `demo.`, with
//! one SRV record per instance of the storefront and an A record for each target.

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use hickory_server::{
    Server,
    net::runtime::TokioRuntimeProvider,
    proto::rr::{
        LowerName, Name, RData, Record,
        rdata::{A, SOA, SRV},
    },
    store::in_memory::InMemoryZoneHandler,
    zone_handler::{AxfrPolicy, Catalog, ZoneType},
};
use tokio::net::{TcpListener, UdpSocket};

/// The zone the demo's records live in.
pub(crate) const ZONE: &str = "demo.";
/// The SRV name of the storefront cluster, as the turbine asks for it.
pub(crate) const SRV_NAME: &str = "_hystrix._tcp.storefront.demo.";
/// The records' TTL: the turbine re-resolves this often.
const TTL: u32 = 5;

/// A running DNS server.
pub(crate) struct Dns {
    addr: SocketAddr,
    server: Server<Catalog>,
}

impl Dns {
    /// Serves `instances` (their stream ports) as `SRV_NAME`, on UDP and TCP of one loopback
    /// port (`port` 0 picks one).
    pub(crate) async fn start(port: u16, instances: &[u16]) -> Result<Self, String> {
        let origin = Name::from_ascii(ZONE).map_err(|e| e.to_string())?;
        let mut zone = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
            origin.clone(),
            ZoneType::Primary,
            AxfrPolicy::Deny,
        );
        let serial = 1;
        for record in records(&origin, serial, instances)? {
            if !zone.upsert_mut(record, serial) {
                return Err("a record was refused by the zone".into());
            }
        }
        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::new(&origin), vec![Arc::new(zone)]);

        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, port))
            .await
            .map_err(|e| format!("DNS server: cannot bind 127.0.0.1:{port}/udp: {e}"))?;
        let addr = udp.local_addr().map_err(|e| e.to_string())?;
        let mut server = Server::new(catalog);
        server.register_socket(udp);
        // TCP on the same port, for clients that retry truncated answers over it; a port
        // taken over TCP only costs that.
        if let Ok(tcp) = TcpListener::bind(addr).await {
            server.register_listener(tcp, Duration::from_secs(5), 64);
        }
        Ok(Self { addr, server })
    }

    /// The server's address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving.
    pub(crate) async fn stop(mut self) {
        let _ = self.server.shutdown_gracefully().await;
    }
}

fn name(s: &str) -> Result<Name, String> {
    Name::from_ascii(s).map_err(|e| format!("{s}: {e}"))
}

fn records(origin: &Name, serial: u32, instances: &[u16]) -> Result<Vec<Record>, String> {
    let soa = SOA::new(
        name("ns.demo.")?,
        name("hostmaster.demo.")?,
        serial,
        60,
        60,
        600,
        TTL,
    );
    let mut records = vec![Record::from_rdata(origin.clone(), TTL, RData::SOA(soa))];
    let srv = name(SRV_NAME)?;
    // A target name per instance, all on loopback.
    for (i, port) in instances.iter().enumerate() {
        let target = name(&format!("storefront-{}.demo.", i + 1))?;
        records.push(Record::from_rdata(
            srv.clone(),
            TTL,
            RData::SRV(SRV::new(0, 0, *port, target.clone())),
        ));
        records.push(Record::from_rdata(
            target,
            TTL,
            RData::A(A::from(Ipv4Addr::LOCALHOST)),
        ));
    }
    Ok(records)
}
