//! The dashboard in a real headless Chromium, pointed at the live `/hystrix.stream` of an
//! application whose breaker is forced open (through the dashboard's proxy, as a stream with
//! no CORS headers is read): the page shows that circuit open, in red, with the counters the
//! stream sent. A screenshot is written under `target/dashboard-screenshots/`.
#![allow(clippy::unwrap_used)]

#[path = "../dashboard/tests/common/browser.rs"]
mod browser;

use std::{io, time::Duration};

use http_body_util::BodyExt;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use hystrix_dashboard::{Dashboard, allow::AllowList};
use serde_json::Value;
use tower::{Layer, ServiceExt, service_fn};
use tower_hystrix::{Command, HystrixStream, Registry};

use browser::Browser;

const WAIT: Duration = Duration::from_secs(20);

/// The latest `data:` line of `name` in the stream at `url`, read over HTTP.
async fn stream_line(url: &str, name: &str) -> Value {
    let client =
        Client::builder(TokioExecutor::new()).build_http::<http_body_util::Empty<bytes::Bytes>>();
    let response = client.get(url.parse().unwrap()).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut text = String::new();
    let read = async {
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                text.push_str(std::str::from_utf8(&data).unwrap());
            }
            let found = text
                .split("\n\n")
                .filter_map(|event| event.strip_prefix("data: "))
                .filter_map(|json| serde_json::from_str::<Value>(json).ok())
                .find(|line| line["name"] == name);
            if let Some(line) = found {
                return line;
            }
        }
        panic!("the stream ended without {name}");
    };
    tokio::time::timeout(WAIT, read).await.unwrap()
}

fn card(name: &str, css: &str) -> String {
    format!(
        "const c = document.querySelector('#circuits_0 .card[data-name=\"{name}\"][data-rendered]'); \
         const e = c && c.querySelector('{css}'); return e ? e.textContent : null"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_open_circuit_shows_open_in_red_with_the_streams_counters() {
    // The application: two commands, one forced open by its configuration.
    let registry = Registry::new();
    registry
        .load_str("[command.PaymentGateway]\ncircuit_breaker_force_open = true\n")
        .unwrap();
    let payments = Command::builder("PaymentGateway")
        .group("Payments")
        .registry(&registry)
        .fallback(|_: (), _| async { Ok::<_, io::Error>("cached receipt") })
        .build()
        .unwrap();
    let users = Command::builder("GetUser")
        .group("Users")
        .registry(&registry)
        .build()
        .unwrap();
    for _ in 0..7 {
        let out = payments
            .layer(service_fn(|_: ()| async { Ok::<_, io::Error>("paid") }))
            .oneshot(())
            .await
            .unwrap();
        assert_eq!(
            out, "cached receipt",
            "short-circuited, the fallback answers"
        );
    }
    for i in 0..5u64 {
        users
            .layer(service_fn(|x: u64| async move { Ok::<_, io::Error>(x) }))
            .oneshot(i)
            .await
            .unwrap();
    }
    let stream = HystrixStream::new().registry(registry.metrics().clone());
    let app = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_addr = app.local_addr().unwrap();
    tokio::spawn(stream.serve(app));
    let stream_url = format!("http://{app_addr}/hystrix.stream");

    // The dashboard, allowed to reach the application.
    let dashboard = Dashboard::builder()
        .allow(AllowList::parse([app_addr.to_string()]).unwrap())
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(dashboard.clone().serve(listener));

    let browser = Browser::start().await;
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("stream", &stream_url)
        .append_pair("title", "payments app")
        .finish();
    browser.goto(&format!("{base}/monitor?{query}")).await;
    browser
        .wait_for(
            WAIT,
            "the forced-open circuit",
            &card("PaymentGateway", ".counter-short"),
        )
        .await;

    let sent = stream_line(&stream_url, "PaymentGateway").await;
    assert_eq!(sent["isCircuitBreakerOpen"], true);
    assert_eq!(sent["propertyValue_circuitBreakerForceOpen"], true);
    assert_eq!(sent["rollingCountShortCircuited"], 7);
    let shown = |css: &'static str| {
        let script = card("PaymentGateway", css);
        let browser = &browser;
        async move { browser.eval(&script, vec![]).await }
    };
    assert_eq!(shown(".status").await, "Circuit Forced Open ");
    let colour = browser
        .eval(
            "const s = document.querySelector('#circuits_0 .card[data-name=\"PaymentGateway\"] .status .open'); \
             return getComputedStyle(s).color",
            vec![],
        )
        .await;
    assert_eq!(colour, "rgb(208, 0, 0)", "the open circuit is red");
    for (css, field) in [
        (".counter-short", "rollingCountShortCircuited"),
        (".counter-success", "rollingCountSuccess"),
        (".counter-failure", "rollingCountFailure"),
        (".counter-timeout", "rollingCountTimeout"),
        (".counter-bad", "rollingCountBadRequests"),
    ] {
        assert_eq!(shown(css).await, sent[field].to_string(), "{css} / {field}");
    }
    assert_eq!(shown(".stat-hosts").await, "1");

    let healthy = stream_line(&stream_url, "GetUser").await;
    assert_eq!(healthy["rollingCountSuccess"], 5);
    assert_eq!(
        browser
            .eval(&card("GetUser", ".counter-success"), vec![])
            .await,
        "5"
    );
    assert_eq!(
        browser.eval(&card("GetUser", ".status"), vec![]).await,
        "Circuit Closed "
    );
    assert_eq!(dashboard.proxied_streams(), 1, "read through the proxy");
    browser.screenshot("forced-open-app").await;
    let errors = browser.console_errors(&[]).await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    browser.close().await;
}
