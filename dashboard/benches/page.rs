//! The page's work per update: how long the monitor page spends (in its message handlers, the
//! frame that renders them and the style and layout that render causes, measured in the page
//! with `performance.now()`) on one tick of a stream of N circuits, in a real headless
//! Chromium. Painting is not included.
//!
//! `cargo bench -p hystrix-dashboard --bench page -- --seconds 20` measures 200 circuits (the
//! target: under 16 ms, one frame) and, in the same run, 50 circuits for comparison, and
//! prints the medians. Without `--bench` (as `cargo test --all-targets` runs it) it checks,
//! briefly, that the measurement works.

#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use serde_json::Value;

use common::{browser::Browser, command, feed::Feed, pool};

const TICK: Duration = Duration::from_millis(1000);

struct Figures {
    circuits: usize,
    updates: usize,
    /// Handlers, render, style and layout.
    median_ms: f64,
    /// Handlers and render only (the page's own script).
    script_median_ms: f64,
    p90_ms: f64,
    max_ms: f64,
    per_message_us: f64,
    /// Of all the time measured: message handlers, render, style and layout (%).
    share: [f64; 3],
}

/// Lines of `circuits` commands and a tenth as many pools, with counts that move with `tick`.
fn tick_lines(circuits: usize, tick: u64) -> Vec<String> {
    let mut lines = Vec::with_capacity(circuits + circuits / 10);
    for i in 0..circuits as u64 {
        let success = 100 + (i * 37 + tick * 11) % 900;
        let failure = (i * 7 + tick * 3) % 40;
        let mut line = command(&format!("Command{i:03}"), success, failure, i % 17 == 0);
        line["latencyExecute"]["99"] = Value::from(20 + (i + tick) % 80);
        lines.push(line.to_string());
    }
    for i in 0..(circuits / 10) as u64 {
        lines.push(
            pool(
                &format!("Pool{i:02}"),
                50 + (i + tick) % 200,
                (i + tick) % 3,
            )
            .to_string(),
        );
    }
    lines
}

async fn measure(
    browser: &Browser,
    base: &str,
    circuits: usize,
    warmup: Duration,
    seconds: Duration,
) -> Figures {
    let feed = Feed::start(TICK, true).await;
    feed.set(tick_lines(circuits, 0));
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("stream", &feed.url())
        .append_pair("direct", "1")
        .finish();
    browser.goto(&format!("{base}/monitor?{query}")).await;
    let ready =
        format!("return document.querySelectorAll('#circuits_0 .card').length === {circuits}");
    browser
        .wait_for(Duration::from_secs(30), "every circuit", &ready)
        .await;
    let mut tick = 1;
    let mut elapsed = Duration::ZERO;
    let mut cleared = false;
    while elapsed < warmup + seconds {
        if !cleared && elapsed >= warmup {
            browser
                .eval(
                    "const p = window.hystrixDashboard.perf; p.frames.length = 0; \
                     p.includeLayout = true",
                    vec![],
                )
                .await;
            cleared = true;
        }
        feed.set(tick_lines(circuits, tick));
        tick += 1;
        tokio::time::sleep(TICK).await;
        elapsed += TICK;
    }
    let frames = browser
        .eval("return window.hystrixDashboard.perf.frames", vec![])
        .await;
    feed.stop().await;
    // An update is the frames that handle one tick's burst of messages: frames less than
    // 300 ms after the first of the burst (ticks are 1 s apart).
    let mut updates: Vec<(f64, u64, f64)> = Vec::new();
    let mut parts = [0.0f64; 3];
    let mut burst_start = f64::NEG_INFINITY;
    for frame in frames.as_array().unwrap() {
        let at = frame["at"].as_f64().unwrap();
        let ms = frame["ms"].as_f64().unwrap();
        let messages = frame["messages"].as_u64().unwrap();
        if messages == 0 {
            continue;
        }
        if at - burst_start > 300.0 {
            burst_start = at;
            updates.push((0.0, 0, 0.0));
        }
        for (part, key) in parts.iter_mut().zip(["handlers", "render", "layout"]) {
            *part += frame[key].as_f64().unwrap_or(0.0);
        }
        let last = updates.last_mut().unwrap();
        last.0 += ms;
        last.2 +=
            frame["handlers"].as_f64().unwrap_or(0.0) + frame["render"].as_f64().unwrap_or(0.0);
        last.1 += messages;
    }
    let expected = (circuits + circuits / 10) as u64;
    let complete = || updates.iter().filter(|u| u.1 >= expected);
    let mut full: Vec<f64> = complete().map(|u| u.0).collect();
    let mut script: Vec<f64> = complete().map(|u| u.2).collect();
    script.sort_by(f64::total_cmp);
    assert!(!full.is_empty(), "no full update measured: {updates:?}");
    full.sort_by(f64::total_cmp);
    let total: f64 = parts.iter().sum();
    let share = parts.map(|p| 100.0 * p / total.max(f64::MIN_POSITIVE));
    let median = full[full.len() / 2];
    Figures {
        circuits,
        updates: full.len(),
        median_ms: median,
        script_median_ms: script[script.len() / 2],
        p90_ms: full[(full.len() * 9 / 10).min(full.len() - 1)],
        max_ms: *full.last().unwrap(),
        per_message_us: median * 1000.0 / expected as f64,
        share,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bench = args.iter().any(|a| a == "--bench");
    let seconds = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (_dashboard, base) = common::dashboard(&[]).await;
        let browser = Browser::start().await;
        let runs: Vec<(usize, Duration, Duration)> = if bench {
            let s = Duration::from_secs(seconds);
            vec![
                (200, Duration::from_secs(5), s),
                (50, Duration::from_secs(5), s),
            ]
        } else {
            vec![(20, Duration::from_secs(1), Duration::from_secs(3))]
        };
        for (circuits, warmup, span) in runs {
            let f = measure(&browser, &base, circuits, warmup, span).await;
            println!(
                "page/update/{} circuits (+{} pools): script median {:.2} ms; with style and \
                 layout median {:.2} ms, p90 {:.2} ms, max {:.2} ms over {} updates; {:.1} us \
                 per message; handlers / render / layout {:.0} / {:.0} / {:.0} %",
                f.circuits,
                f.circuits / 10,
                f.script_median_ms,
                f.median_ms,
                f.p90_ms,
                f.max_ms,
                f.updates,
                f.per_message_us,
                f.share[0],
                f.share[1],
                f.share[2]
            );
        }
        browser.close().await;
    });
}
