#![allow(clippy::unwrap_used)]
//! Runs the examples `http_client`, `parallel` and `config_reload` as processes, with short
//! durations, and checks what they print: each shows a behaviour of the library that could
//! break (a stale answer while the upstream fails, a degraded page as fast as the slower call,
//! an edit of the configuration file taking effect or being refused).
//!
//! The examples' binaries must be built first (see `common/binaries.rs`): a missing binary,
//! or one older than the sources it is built from, fails the test with that advice rather
//! than check old code.

use std::{
    io::Read,
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use tokio::time::Instant;

#[path = "common/binaries.rs"]
mod binaries;

use binaries::example;

/// What an example printed.
struct Output {
    stdout: String,
    stderr: String,
}

/// Runs the example `name` with `args`, killing it and failing if it runs longer than
/// `limit`; fails unless it exits successfully.
fn run(name: &str, args: &[&str], limit: Duration) -> Output {
    let path = example(name);
    let mut child = Command::new(&path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut text = String::new();
            pipe.read_to_string(&mut text).unwrap();
            text
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().unwrap()));
    let stderr = read_all(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let output = Output {
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    match status {
        None => panic!(
            "{name} {args:?} did not finish within {limit:?} and was killed; it printed:\n{}\n{}",
            output.stdout, output.stderr
        ),
        Some(status) => assert!(
            status.success(),
            "{name} {args:?} exited with {status}; it printed:\n{}\n{}",
            output.stdout,
            output.stderr
        ),
    }
    output
}

/// The whole number right after `label` in `text`.
fn number_after(text: &str, label: &str) -> u64 {
    let rest = &text[text
        .find(label)
        .unwrap_or_else(|| panic!("no {label:?} in {text:?}"))
        + label.len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number after {label:?} in {text:?}"))
}

/// One call of the `http_client` example: `<t>s upstream <mode> circuit <state> <symbol>
/// <outcome> <detail>`.
struct Call<'a> {
    upstream: &'a str,
    outcome: &'a str,
    line: &'a str,
}

fn calls(stdout: &str) -> Vec<Call<'_>> {
    stdout
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            (words.get(1) == Some(&"upstream")).then(|| Call {
                upstream: words[2],
                outcome: words[6],
                line,
            })
        })
        .collect()
}

#[test]
fn http_client_serves_stale_answers_while_the_upstream_fails() {
    let out = run("http_client", &["--seconds", "6"], Duration::from_secs(30)).stdout;
    let calls = calls(&out);
    assert!(calls.len() > 20, "too few calls:\n{out}");
    let count = |outcome: &str| calls.iter().filter(|c| c.outcome == outcome).count() as u64;

    let first_failing = calls
        .iter()
        .position(|c| c.upstream != "healthy")
        .unwrap_or_else(|| panic!("the upstream never failed:\n{out}"));
    let last_failing = calls.iter().rposition(|c| c.upstream != "healthy").unwrap();
    assert!(
        calls[..first_failing].iter().all(|c| c.outcome == "fresh"),
        "every answer before the outage is fresh:\n{out}"
    );
    assert!(
        calls[first_failing..=last_failing]
            .iter()
            .any(|c| c.outcome == "stale" && c.line.contains(" s ago)")),
        "the cache answers during the outage:\n{out}"
    );
    assert!(
        !calls
            .iter()
            .any(|c| c.upstream == "500s" && c.outcome == "fresh"),
        "a 500 is never passed off as a fresh answer:\n{out}"
    );
    assert!(
        calls[last_failing + 1..]
            .iter()
            .any(|c| c.outcome == "fresh"),
        "fresh answers again once the upstream recovered:\n{out}"
    );
    assert!(
        calls.iter().any(|c| c.outcome == "fallback"
            && c.line.contains("NVDA")
            && c.line.contains("yesterday's close")),
        "a symbol never cached gets the fallback's answer:\n{out}"
    );
    assert!(
        calls
            .iter()
            .any(|c| c.outcome == "error" && c.line.contains("no closing price for ACME")),
        "nothing cached and no fallback value: an error:\n{out}"
    );

    let summary = out
        .lines()
        .find(|l| l.starts_with("summary:"))
        .unwrap_or_else(|| panic!("no summary:\n{out}"));
    assert_eq!(
        number_after(summary, "summary:"),
        count("fresh"),
        "{summary}"
    );
    assert_eq!(number_after(summary, "fresh,"), count("stale"), "{summary}");
    assert_eq!(
        number_after(summary, "the stale cache served"),
        count("stale"),
        "every stale answer came from the cache: {summary}"
    );
}

/// The lines of the `parallel` example's scenario `n`.
fn scenario(stdout: &str, n: u32) -> &str {
    let start = stdout
        .find(&format!("scenario {n}:"))
        .unwrap_or_else(|| panic!("no scenario {n}:\n{stdout}"));
    let rest = &stdout[start..];
    let end = rest.find("\n\n").unwrap_or(rest.len());
    &rest[..end]
}

/// The latencies a scenario reports: (total, the slower call, the sum of both).
fn latencies(scenario: &str) -> (u64, u64, u64) {
    let line = scenario
        .lines()
        .find(|l| l.trim_start().starts_with("latency"))
        .unwrap_or_else(|| panic!("no latency in {scenario}"));
    (
        number_after(line, "total"),
        number_after(line, "the slower call"),
        number_after(line, "one after the other:"),
    )
}

#[test]
fn parallel_calls_degrade_one_part_and_take_the_slower_time() {
    let out = run("parallel", &["--rounds", "1"], Duration::from_secs(20)).stdout;

    let healthy = scenario(&out, 1);
    assert!(healthy.contains("GetUser    ok"), "{healthy}");
    assert!(healthy.contains("GetOrders  ok"), "{healthy}");
    assert!(healthy.contains("[complete]"), "{healthy}");
    let (total, slower, sum) = latencies(healthy);
    assert!(
        total < sum && total >= slower && total < slower + 100,
        "concurrent calls take as long as the slower one (~200 ms), not the sum (~320 ms):\n{healthy}"
    );

    let orders_down = scenario(&out, 2);
    assert!(orders_down.contains("GetUser    ok"), "{orders_down}");
    assert!(
        orders_down.contains("GetOrders  fallback") && orders_down.contains("(the call: Failed)"),
        "{orders_down}"
    );
    assert!(
        orders_down.contains("page       Ada Lovelace, 0 recent orders")
            && orders_down.contains("[degraded: orders]"),
        "the user is kept, the orders are the fallback's:\n{orders_down}"
    );

    let user_hangs = scenario(&out, 3);
    assert!(
        user_hangs.contains("GetUser    fallback") && user_hangs.contains("(the call: TimedOut)"),
        "{user_hangs}"
    );
    assert!(
        user_hangs.contains("page       guest, 2 recent orders")
            && user_hangs.contains("[degraded: profile]"),
        "the orders are kept, the user is the fallback's:\n{user_hangs}"
    );
    let (total, slower, sum) = latencies(user_hangs);
    assert!(
        total < sum && total < slower + 100,
        "the page waits for GetUser's timeout (300 ms), not for the sum:\n{user_hangs}"
    );

    let both_down = scenario(&out, 4);
    assert!(
        both_down.contains("[degraded: profile, orders]"),
        "{both_down}"
    );
}

/// A phase summary of the `config_reload` example: `phase N (<settings>): ok A, failed B,
/// timed out C, short-circuited D, rejected E`.
struct Phase<'a> {
    settings: &'a str,
    ok: u64,
    failed: u64,
    timed_out: u64,
    short_circuited: u64,
}

fn phases(stdout: &str) -> Vec<Phase<'_>> {
    stdout
        .lines()
        .filter_map(|line| {
            let (head, counts) = line.split_once("): ")?;
            let (_, settings) = head.split_once(" (")?;
            head.contains(" phase ").then(|| Phase {
                settings,
                ok: number_after(counts, "ok"),
                failed: number_after(counts, "failed"),
                timed_out: number_after(counts, "timed out"),
                short_circuited: number_after(counts, "short-circuited"),
            })
        })
        .collect()
}

#[test]
fn config_reload_applies_edits_and_refuses_an_invalid_file() {
    let Output { stdout, stderr } = run(
        "config_reload",
        &["--seconds", "6"],
        Duration::from_secs(30),
    );
    let phases = phases(&stdout);
    assert_eq!(phases.len(), 6, "six phases:\n{stdout}");
    let [as_written, timeout, strict, refused, forced, back] = &phases[..] else {
        unreachable!()
    };

    assert!(
        as_written
            .settings
            .starts_with("threshold 50%, timeout 500 ms"),
        "{stdout}"
    );
    assert!(
        as_written.ok > 0 && as_written.failed > 0,
        "the load runs:\n{stdout}"
    );
    assert_eq!(
        (as_written.timed_out, as_written.short_circuited),
        (0, 0),
        "30% of errors, under the 50% threshold, and nothing near 500 ms:\n{stdout}"
    );

    assert!(timeout.settings.contains("timeout 50 ms"), "{stdout}");
    assert!(
        timeout.timed_out > 0,
        "the 50 ms timeout applies to the running command:\n{stdout}"
    );

    assert!(strict.settings.starts_with("threshold 20%"), "{stdout}");
    assert!(
        strict.short_circuited > 0,
        "short-circuits begin once the threshold is 20%:\n{stdout}"
    );

    let key = "command.GetInventory.circuit_breaker_error_threshold_percentage";
    let refusal = stdout
        .lines()
        .find(|l| l.contains("refused:"))
        .unwrap_or_else(|| panic!("the invalid file was not refused:\n{stdout}"));
    assert!(
        refusal.contains(key) && refusal.contains("not 150"),
        "{refusal}"
    );
    assert!(
        refused.settings.starts_with("threshold 20%"),
        "the previous file stays in force:\n{stdout}"
    );
    assert!(
        stderr.contains("Hystrix configuration refused") && stderr.contains(key),
        "the watch refuses the invalid file too:\n{stderr}"
    );

    assert!(forced.settings.ends_with("force_open true"), "{stdout}");
    assert!(
        forced.short_circuited > 0 && forced.ok + forced.failed + forced.timed_out <= 10,
        "forced open, only calls already running complete:\n{stdout}"
    );

    assert!(
        back.settings
            .starts_with("threshold 50%, timeout 500 ms, force_open false"),
        "{stdout}"
    );
    assert!(stdout.contains("done in"), "{stdout}");
}
