//! Measures the memory one command's metrics take: a rolling counter of every event type
//! (10 s / 10 buckets), execution and total latency percentiles (60 s / 6 buckets) and a
//! health cache, every bucket written to at least once.
//!
//! It builds 10,000 such sets and reads the process's resident memory before and after
//! (Linux: /proc/self/statm), next to the size computed from the allocations.
//!
//! ```text
//! cargo run --release -p hystrix-core --example memory_per_command
//! ```

use std::time::Duration;

use hystrix_core::{
    HealthCache, HystrixEventType, ManualClock, RollingCounter, RollingPercentile, RollingWindow,
};

const COMMANDS: usize = 10_000;

struct CommandMetrics {
    _counter: RollingCounter<HystrixEventType>,
    _execute: RollingPercentile,
    _total: RollingPercentile,
    _health: HealthCache,
}

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
    for _ in 0..COMMANDS {
        all.push(CommandMetrics {
            _counter: RollingCounter::new(RollingWindow::COUNTS, origin),
            _execute: RollingPercentile::new(RollingWindow::PERCENTILES, origin),
            _total: RollingPercentile::new(RollingWindow::PERCENTILES, origin),
            _health: HealthCache::new(Duration::from_millis(500), origin),
        });
    }
    // Touch every bucket of every window: a minute and a bit of traffic.
    for _ in 0..70 {
        for m in &all {
            m._counter.increment(HystrixEventType::Success, clock.now());
            m._counter.update_max(3, clock.now());
            m._execute.record(Duration::from_millis(7), clock.now());
            m._total.record(Duration::from_millis(9), clock.now());
        }
        clock.advance(Duration::from_secs(1));
    }
    let after = resident_bytes();

    let counter = RollingCounter::<HystrixEventType>::memory_bytes(RollingWindow::COUNTS);
    let percentile = RollingPercentile::memory_bytes(RollingWindow::PERCENTILES);
    let health = std::mem::size_of::<HealthCache>();
    println!("computed per command:");
    println!("  rolling counter (19 events, 10 s / 10 buckets): {counter:>7} bytes");
    println!(
        "  latency percentiles x2 (60 s / 6 buckets):      {:>7} bytes",
        2 * percentile
    );
    println!("  health cache:                                   {health:>7} bytes");
    println!(
        "  total:                                          {:>7} bytes",
        counter + 2 * percentile + health
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
