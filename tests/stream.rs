//! Real commands and pools, published by their registry, read back from `/hystrix.stream`
//! and from Prometheus.
#![allow(clippy::unwrap_used)]

use std::io;

use http_body_util::BodyExt;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_hystrix::{
    Command, HystrixStream, IsolationStrategy, PrometheusExporter, Registry, ThreadPoolConfig,
};

/// The `data:` lines of the first tick of `/hystrix.stream`, parsed.
async fn first_tick(registry: &Registry) -> Vec<serde_json::Value> {
    let router = HystrixStream::new()
        .registry(registry.metrics().clone())
        .router();
    let res = router
        .oneshot(
            http::Request::get("/hystrix.stream")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    let frame = body.frame().await.unwrap().unwrap().into_data().unwrap();
    let text = std::str::from_utf8(&frame).unwrap();
    text.split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .map(|json| serde_json::from_str(json).unwrap())
        .collect()
}

#[tokio::test]
async fn commands_and_pools_of_a_registry_reach_the_stream_and_prometheus() {
    let registry = Registry::new();
    let ok = Command::builder("GetUser")
        .group("Users")
        .registry(&registry)
        .build()
        .unwrap();
    let mut users = ok.layer(service_fn(|x: u64| async move { Ok::<_, io::Error>(x) }));
    for i in 0..3 {
        users.ready().await.unwrap().call(i).await.unwrap();
    }
    let failing = Command::builder("Charge")
        .group("Payments")
        .registry(&registry)
        .build()
        .unwrap();
    let mut payments = failing.layer(service_fn(|_: u64| async {
        Err::<u64, _>(io::Error::other("declined"))
    }));
    let _ = payments.ready().await.unwrap().call(1).await;
    failing.command().circuit().force_open();
    let idle_pool = Command::builder::<u64, u64>("Idle")
        .group("Other")
        .thread_pool(ThreadPoolConfig::default())
        .registry(&registry)
        .build()
        .unwrap();
    let busy_pool = Command::builder("Report")
        .group("Reports")
        .thread_pool(ThreadPoolConfig::default())
        .registry(&registry)
        .build()
        .unwrap();
    let mut reports = busy_pool.layer(service_fn(|x: u64| async move { Ok::<_, io::Error>(x) }));
    reports.ready().await.unwrap().call(1).await.unwrap();
    assert_eq!(
        idle_pool.command().settings().isolation,
        IsolationStrategy::Thread
    );

    let lines = first_tick(&registry).await;
    let command = |name: &str| {
        lines
            .iter()
            .find(|l| l["type"] == "HystrixCommand" && l["name"] == name)
            .unwrap_or_else(|| panic!("no line for {name}: {lines:?}"))
    };
    let user = command("GetUser");
    assert_eq!(user["group"], "Users");
    assert_eq!(user["rollingCountSuccess"], 3);
    assert_eq!(user["isCircuitBreakerOpen"], false);
    assert_eq!(
        user["propertyValue_executionIsolationStrategy"],
        "SEMAPHORE"
    );
    let charge = command("Charge");
    assert_eq!(charge["rollingCountFailure"], 1);
    assert_eq!(charge["rollingCountFallbackMissing"], 1);
    assert_eq!(charge["isCircuitBreakerOpen"], true);
    assert_eq!(charge["propertyValue_circuitBreakerForceOpen"], true);
    assert_eq!(
        command("Report")["propertyValue_executionIsolationStrategy"],
        "THREAD"
    );
    command("Idle");
    let pools: Vec<_> = lines
        .iter()
        .filter(|l| l["type"] == "HystrixThreadPool")
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(pools, ["Reports"], "a pool appears once it has run a task");

    let exposition = PrometheusExporter::new(registry.metrics().clone()).render();
    let line = exposition
        .lines()
        .find(|l| {
            l.starts_with("hystrix_command_events_total")
                && l.contains("command=\"GetUser\"")
                && l.contains("event=\"success\"")
        })
        .unwrap_or_else(|| panic!("{exposition}"));
    assert!(line.ends_with(" 3"), "{line}");
    assert!(
        exposition
            .lines()
            .any(|l| l.starts_with("hystrix_command_circuit_open")
                && l.contains("command=\"Charge\"")
                && l.ends_with(" 1")),
        "{exposition}"
    );

    // Another registry publishes only its own.
    let other = Registry::new();
    let _ = Command::builder::<u64, u64>("Elsewhere")
        .registry(&other)
        .build()
        .unwrap();
    let names: Vec<_> = first_tick(&other)
        .await
        .iter()
        .map(|l| l["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["Elsewhere"]);
}
