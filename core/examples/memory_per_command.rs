//! Measures the memory one command's metrics take: a `CommandMetrics` (a rolling counter of
//! every event type over 10 s / 10 buckets, execution and total latency percentiles over 60 s /
//! 6 buckets, a concurrency gauge) and a circuit's health cache, every bucket written to at
//! least once.
//!
//! It builds 10,000 such sets and reads the process's resident memory before and after
//! (Linux: /proc/self/statm), next to the size computed from the allocations.
//!
//! ```text
//! cargo run --release -p hystrix-core --example memory_per_command
//! ```

use std::time::Duration;

use hystrix_core::{
    CommandMetrics, HealthCache, HystrixEventType, ManualClock, MetricsConfig, RollingCounter,
    RollingPercentile, RollingWindow,
};

const COMMANDS: usize = 10_000;

fn resident_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn main() {
    let clock = ManualClock::new();
    let origin = clock.now();
    let before = resident_bytes();
    let mut all = Vec::with_capacity(COMMANDS);
    for i in 0..COMMANDS {
        let metrics = CommandMetrics::with_clock(
            format!("Command{i}"),
            "Group",
            "Group",
            MetricsConfig::default(),
            clock.clock(),
        );
        all.push((
            metrics,
            HealthCache::new(Duration::from_millis(500), origin),
        ));
    }
    // Touch every bucket of every window: a minute and a bit of traffic.
    for _ in 0..70 {
        for (m, _) in &all {
            let _running = m.executing();
            m.mark(HystrixEventType::Success);
            m.record_latencies(Duration::from_millis(7), Duration::from_millis(9));
        }
        clock.advance(Duration::from_secs(1));
    }
    let after = resident_bytes();

    let counter = RollingCounter::<HystrixEventType>::memory_bytes(RollingWindow::COUNTS);
    let percentile = RollingPercentile::memory_bytes(RollingWindow::PERCENTILES);
    let health = std::mem::size_of::<HealthCache>();
    println!("computed per command (the windows; keys and handles come on top):");
    println!("  rolling counter (19 events, 10 s / 10 buckets): {counter:>7} bytes");
    println!("  latency, execution and total (60 s / 6 b.):    {percentile:>7} bytes");
    println!("  health cache:                                   {health:>7} bytes");
    println!(
        "  total:                                          {:>7} bytes",
        counter + percentile + health
    );
    match (before, after) {
        (Some(b), Some(a)) => println!(
            "measured: resident memory grew {} KiB for {COMMANDS} commands = {} bytes per command",
            (a - b) / 1024,
            (a - b) / COMMANDS
        ),
        _ => println!("measured: /proc/self/statm is not readable on this system"),
    }
    drop(all);
}
