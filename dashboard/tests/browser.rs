//! The dashboard's pages in a real headless Chromium, reading real streams on loopback.
//! Each scenario writes a screenshot under `target/dashboard-screenshots/`.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Mutex;

use common::{browser::Browser, command, dashboard, feed::Feed, pool};

/// One browser at a time: two cores.
static SERIAL: Mutex<()> = Mutex::const_new(());

const TICK: Duration = Duration::from_millis(200);
const WAIT: Duration = Duration::from_secs(15);

fn lines(values: &[Value]) -> Vec<String> {
    values.iter().map(Value::to_string).collect()
}

/// The monitor page's URL for one stream, in Hystrix's single-stream form.
fn monitor(base: &str, stream: &str, title: &str) -> String {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("stream", stream)
        .append_pair("title", title)
        .finish();
    format!("{base}/monitor?{query}")
}

/// The texts of the circuits' cards, in page order, as `name`.
const CARD_NAMES: &str =
    "return Array.from(document.querySelectorAll('#circuits_0 .card')).map(c => c.dataset.name)";

fn card_text(name: &str, css: &str) -> String {
    format!(
        "const c = document.querySelector('#circuits_0 .card[data-name=\"{name}\"][data-rendered]'); \
         return c ? c.querySelector('{css}').textContent : null"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_page_opens_the_monitor_with_hystrix_streams_parameter() {
    let _serial = SERIAL.lock().await;
    let feed = Feed::start(TICK, false).await;
    feed.set(lines(&[command("Start", 7, 0, false)]));
    let (_dashboard, base) = dashboard(&[feed.addr.to_string()]).await;
    let browser = Browser::start().await;

    browser.goto(&format!("{base}/")).await;
    assert_eq!(browser.client.title().await.unwrap(), "Hystrix Dashboard");
    let form = [
        (".stream-row .stream", feed.url()),
        (".stream-row .title", "orders".to_owned()),
        (".stream-row .delay", "500".to_owned()),
    ];
    for (css, value) in &form {
        browser
            .client
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap()
            .send_keys(value)
            .await
            .unwrap();
    }
    browser.screenshot("start-page").await;
    browser.click("#monitor").await;
    browser
        .wait_for(
            WAIT,
            "the monitor page",
            "return location.pathname === '/monitor'",
        )
        .await;
    let url = browser.client.current_url().await.unwrap();
    let streams = url
        .query_pairs()
        .find(|(k, _)| k == "streams")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let streams: Value = serde_json::from_str(&streams).unwrap();
    assert_eq!(
        streams,
        json!([{ "name": "orders", "stream": feed.url(), "delay": "500" }])
    );
    browser
        .wait_for(WAIT, "the circuit", &card_text("Start", ".counter-success"))
        .await;
    assert_eq!(browser.text("#stream_0 h2").await, "Hystrix Stream: orders");
    let errors = browser.console_errors(&[]).await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuits_and_pools_show_what_the_stream_sent() {
    let _serial = SERIAL.lock().await;
    let feed = Feed::start(TICK, false).await;
    let mut open = command("PaymentGateway", 0, 0, true);
    open["rollingCountShortCircuited"] = json!(42);
    open["rollingCountFallbackSuccess"] = json!(42);
    open["propertyValue_circuitBreakerForceOpen"] = json!(true);
    let mut busy = command("Inventory", 90, 10, false);
    busy["rollingCountTimeout"] = json!(3);
    busy["rollingCountThreadPoolRejected"] = json!(2);
    busy["rollingCountBadRequests"] = json!(1);
    feed.set(lines(&[
        open,
        busy,
        pool("Inventory", 100, 0),
        json!({"type": "meta", "name": "meta", "reportingHostsLast10Seconds": 1}),
        json!({"type": "HystrixCommand", "name": "Incomplete"}),
    ]));
    let (_dashboard, base) = dashboard(&[feed.addr.to_string()]).await;
    let browser = Browser::start().await;
    browser.goto(&monitor(&base, &feed.url(), "shop")).await;

    browser
        .wait_for(
            WAIT,
            "both circuits",
            "return document.querySelectorAll('#circuits_0 .card[data-rendered]').length === 2 && document.querySelectorAll('#pools_0 .card[data-rendered]').length === 1",
        )
        .await;
    let status = browser
        .eval(&card_text("PaymentGateway", ".status"), vec![])
        .await;
    assert_eq!(status, "Circuit Forced Open ");
    let colour = browser
        .eval(
            "const s = document.querySelector('#circuits_0 .card[data-name=\"PaymentGateway\"] .status span'); \
             return getComputedStyle(s).color",
            vec![],
        )
        .await;
    assert_eq!(colour, "rgb(208, 0, 0)", "the open status is red");
    assert_eq!(
        browser
            .eval(&card_text("PaymentGateway", ".counter-short"), vec![])
            .await,
        "42"
    );
    let expected = [
        (".counter-success", "90"),
        (".counter-failure", "10"),
        (".counter-timeout", "3"),
        (".counter-rejected", "2"),
        (".counter-bad", "1"),
        (".counter-short", "0"),
        (".err", "10 %"),
        (".rate-cluster", "Cluster: 10/s"),
        (".rate-host", "Host: 10/s"),
        (".status", "Circuit Closed "),
        (".stat-hosts", "1"),
        (".stat-median", "10ms"),
        (".stat-p90", "20ms"),
        (".stat-p99", "40ms"),
        (".stat-p995", "50ms"),
        (".stat-mean", "12ms"),
    ];
    for (css, text) in expected {
        assert_eq!(
            browser.eval(&card_text("Inventory", css), vec![]).await,
            text,
            "{css}"
        );
    }
    // The pool: 100 executions over a 10 s window.
    let pool_text = browser.text("#pools_0 .card").await;
    assert!(pool_text.contains("Cluster: 10/s"), "{pool_text}");
    assert!(
        pool_text.contains("Executions\n100") || pool_text.contains("Executions 100"),
        "{pool_text}"
    );
    // The incomplete command was dropped, and said so.
    browser
        .wait_for(WAIT, "the meta event's host count", "return document.querySelector('#stream_0 .conn-text').textContent.includes('1 host(s) reporting')")
        .await;
    browser
        .wait_for(WAIT, "the dropped event", "return document.querySelector('#stream_0 .conn-text').textContent.includes('Key Missing')")
        .await;
    browser.screenshot("circuits-and-pools").await;
    let errors = browser.console_errors(&[]).await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turbine_1_and_2_aggregates_give_the_same_rates_and_mixed_states() {
    let _serial = SERIAL.lock().await;
    // Three hosts with 10 s windows, 300 requests in all, one host open: as Turbine 1.x sums
    // it (window 30000, booleans counted in a JSON string) and as Turbine 2.x does (window
    // "10000", counts as objects).
    let mut t1 = command("Agg", 270, 30, false);
    t1["reportingHosts"] = json!(3);
    t1["propertyValue_metricsRollingStatisticalWindowInMilliseconds"] = json!(30000);
    t1["isCircuitBreakerOpen"] = json!("{\"false\":2,\"true\":1}");
    t1["errorPercentage"] = json!(30);
    t1["latencyExecute"]["99"] = json!(120);
    let mut t2 = t1.clone();
    t2["propertyValue_metricsRollingStatisticalWindowInMilliseconds"] = json!("10000");
    t2["isCircuitBreakerOpen"] = json!({"false": 2, "true": 1});
    t2["propertyValue_executionIsolationStrategy"] = json!("THREAD");
    let mut p1 = pool("AggPool", 600, 6);
    p1["reportingHosts"] = json!(3);
    p1["propertyValue_metricsRollingStatisticalWindowInMilliseconds"] = json!(30000);
    p1["propertyValue_queueSizeRejectionThreshold"] = json!(15);
    let mut p2 = p1.clone();
    p2["propertyValue_metricsRollingStatisticalWindowInMilliseconds"] = json!("10000");
    p2["propertyValue_queueSizeRejectionThreshold"] = json!("5");
    let turbine1 = Feed::start(TICK, true).await;
    turbine1.set(lines(&[t1, p1]));
    let turbine2 = Feed::start(TICK, true).await;
    turbine2.set(lines(&[t2, p2]));
    let (_dashboard, base) = dashboard(&[]).await;
    let browser = Browser::start().await;
    // Both streams send CORS headers: the page reads them directly.
    let streams = json!([
        {"name": "turbine 1.x", "stream": turbine1.url(), "direct": true},
        {"name": "turbine 2.x", "stream": turbine2.url(), "direct": true},
    ]);
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("streams", &streams.to_string())
        .finish();
    browser.goto(&format!("{base}/monitor?{query}")).await;
    for i in 0..2 {
        let card = format!("#circuits_{i} .card[data-name=\"Agg\"][data-rendered]");
        browser
            .wait_for(
                WAIT,
                "the pool",
                &format!("return document.querySelector('#pools_{i} .card[data-rendered]')"),
            )
            .await;
        let text = browser
            .wait_for(
                WAIT,
                "the aggregate",
                &format!("const c = document.querySelector('{card}'); return c && c.textContent"),
            )
            .await;
        let text = text.as_str().unwrap();
        for part in [
            "Cluster: 30/s",
            "Host: 10/s",
            "10 %",
            "Open 1",
            "Closed 2",
            "99th40ms",
        ] {
            assert!(text.contains(part), "stream {i}: `{part}` not in {text}");
        }
        let pool = browser.text(&format!("#pools_{i} .card")).await;
        for part in ["Cluster: 60/s", "Host: 20/s"] {
            assert!(pool.contains(part), "stream {i}: `{part}` not in {pool}");
        }
        assert!(
            pool.contains("Queue Size\n5") || pool.contains("Queue Size 5"),
            "{pool}"
        );
    }
    browser.screenshot("turbine-aggregates").await;
    let errors = browser.console_errors(&[]).await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sorting_reorders_and_the_filter_hides() {
    let _serial = SERIAL.lock().await;
    let feed = Feed::start(TICK, false).await;
    feed.set(lines(&[
        command("Bravo", 500, 0, false),
        command("Alpha", 100, 0, false),
        command("Charlie", 50, 50, false),
        command("Delta", 900, 100, false),
    ]));
    let (_dashboard, base) = dashboard(&[feed.addr.to_string()]).await;
    let browser = Browser::start().await;
    browser.goto(&monitor(&base, &feed.url(), "sorting")).await;
    browser
        .wait_for(
            WAIT,
            "four circuits",
            "return document.querySelectorAll('#circuits_0 .card[data-rendered]').length === 4",
        )
        .await;
    // Error then Volume (the default): Charlie 50 %, Delta 10 %, then by volume.
    let order = browser
        .wait_for(WAIT, "the default order", &format!("const o = (function(){{{CARD_NAMES}}})(); return o.join() === 'Charlie,Delta,Bravo,Alpha' && o"))
        .await;
    assert_eq!(order, json!(["Charlie", "Delta", "Bravo", "Alpha"]));
    browser
        .click("#stream_0 .sort button[data-sort=alphabetical]")
        .await;
    assert_eq!(
        browser.eval(CARD_NAMES, vec![]).await,
        json!(["Alpha", "Bravo", "Charlie", "Delta"])
    );
    // Choosing it again reverses it.
    browser
        .click("#stream_0 .sort button[data-sort=alphabetical]")
        .await;
    assert_eq!(
        browser.eval(CARD_NAMES, vec![]).await,
        json!(["Delta", "Charlie", "Bravo", "Alpha"])
    );
    browser
        .click("#stream_0 .sort button[data-sort=volume]")
        .await;
    assert_eq!(
        browser.eval(CARD_NAMES, vec![]).await,
        json!(["Delta", "Bravo", "Alpha", "Charlie"])
    );
    browser.screenshot("sorted-by-volume").await;

    let filter = browser
        .client
        .find(fantoccini::Locator::Css("#filter"))
        .await
        .unwrap();
    filter.send_keys("ha").await.unwrap();
    let visible = "return Array.from(document.querySelectorAll('#circuits_0 .card')).filter(c => !c.hidden).map(c => c.dataset.name)";
    assert_eq!(
        browser.eval(visible, vec![]).await,
        json!(["Alpha", "Charlie"])
    );
    filter.clear().await.unwrap();
    filter.send_keys(" ").await.unwrap();
    assert_eq!(
        browser
            .eval(visible, vec![])
            .await
            .as_array()
            .unwrap()
            .len(),
        4
    );

    // A click on a circuit opens its last minutes as charts.
    browser
        .click("#circuits_0 .card[data-name=\"Charlie\"]")
        .await;
    browser
        .wait_for(WAIT, "the detail charts", "return document.getElementById('detail').open && document.querySelectorAll('#detail polyline').length === 3")
        .await;
    assert_eq!(browser.text("#detail-name").await, "Charlie");
    browser
        .wait_for(WAIT, "points in the charts", "return Array.from(document.querySelectorAll('#detail polyline')).every(p => p.getAttribute('points').trim().split(' ').length >= 2)")
        .await;
    let error_chart = browser.text("#chart-error").await;
    assert!(error_chart.contains("last 50 %"), "{error_chart}");
    browser.screenshot("circuit-detail").await;
    browser.click("#detail-close").await;
    assert_eq!(
        browser
            .eval("return document.getElementById('detail').open", vec![])
            .await,
        json!(false)
    );
    let errors = browser.console_errors(&[]).await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_refuses_an_origin_not_allowed_and_the_page_says_why() {
    let _serial = SERIAL.lock().await;
    let allowed = Feed::start(TICK, false).await;
    allowed.set(lines(&[command("Allowed", 5, 0, false)]));
    let other = Feed::start(TICK, false).await;
    other.set(lines(&[command("Secret", 5, 0, false)]));
    let (dashboard, base) = dashboard(&[allowed.addr.to_string()]).await;
    let browser = Browser::start().await;
    let streams = json!([
        {"name": "allowed", "stream": allowed.url()},
        {"name": "not allowed", "stream": other.url()},
    ]);
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("streams", &streams.to_string())
        .finish();
    browser.goto(&format!("{base}/monitor?{query}")).await;
    let why = browser
        .wait_for(
            WAIT,
            "the refusal",
            "const t = document.querySelector('#stream_1 .conn-text').textContent; return t.includes('HTTP 403') && t",
        )
        .await;
    assert!(
        why.as_str().unwrap().contains("is not an allowed origin"),
        "{why}"
    );
    assert_eq!(
        browser
            .eval(
                "return document.querySelector('#stream_1 .conn').dataset.state",
                vec![]
            )
            .await,
        "reconnecting"
    );
    assert_eq!(
        browser
            .eval(
                "return document.querySelectorAll('#circuits_1 .card').length",
                vec![]
            )
            .await,
        0
    );
    // The allowed stream flows through the proxy beside it.
    browser
        .wait_for(WAIT, "the allowed stream", "return document.querySelectorAll('#circuits_0 .card[data-name=\"Allowed\"]').length === 1")
        .await;
    assert_eq!(dashboard.proxied_streams(), 1);
    browser.screenshot("proxy-refused").await;
    // The browser reports the refused stream's 403 itself, and nothing else.
    let errors = browser.console_errors(&["403"]).await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_reconnects_when_the_stream_comes_back() {
    let _serial = SERIAL.lock().await;
    let feed = Feed::start(TICK, true).await;
    feed.set(lines(&[command("Before", 1, 0, false)]));
    let (_dashboard, base) = dashboard(&[]).await;
    let browser = Browser::start().await;
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("stream", &feed.url())
        .append_pair("direct", "1")
        .finish();
    browser.goto(&format!("{base}/monitor?{query}")).await;
    browser
        .wait_for(WAIT, "the first data", "return document.querySelectorAll('#circuits_0 .card').length === 1 && document.querySelector('#stream_0 .conn').dataset.state === 'connected'")
        .await;
    let stopped = feed.stop().await;
    browser
        .wait_for(
            WAIT,
            "the lost connection",
            "return document.querySelector('#stream_0 .conn').dataset.state !== 'connected'",
        )
        .await;
    browser.screenshot("reconnecting").await;
    let feed = Feed::restart(stopped).await;
    feed.set(lines(&[
        command("Before", 1, 0, false),
        command("After", 2, 0, false),
    ]));
    browser
        .wait_for(Duration::from_secs(30), "the data after the restart", "return document.querySelectorAll('#circuits_0 .card[data-name=\"After\"]').length === 1 && document.querySelector('#stream_0 .conn').dataset.state === 'connected'")
        .await;
    let text = browser.text("#stream_0 .conn-text").await;
    assert!(text.starts_with("connected · last message"), "{text}");
    // The lost connection is reported by the browser; nothing else.
    let errors = browser.console_errors(&["hystrix.stream"]).await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    browser.close().await;
}
