//! A circuit breaker in front of a dependency that fails in waves.
//!
//! The dependency is healthy for 4 s, then fails every request for 9 s, then recovers, and so
//! on. Watch the circuit trip when the errors reach 50% of at least 20 requests, reject at once
//! while open, let one trial through after each 2 s sleep window (re-opening while the
//! dependency still fails), and close when it is back.
//!
//! ```text
//! cargo run --example breaker                 # 24 seconds
//! cargo run --example breaker -- --seconds 60
//! ```

#[path = "common/cli.rs"]
mod cli;

use clap::Parser as _;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::time::{Instant, interval, sleep};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_hystrix::breaker::{
    BoxError, BreakerConfig, Circuit, CircuitBreakerLayer, ShortCircuited,
};

/// The dependency's schedule: healthy, then failing, repeating every `period`.
#[derive(Clone, Copy)]
struct Waves {
    start: Instant,
    healthy: Duration,
    failing: Duration,
}

impl Waves {
    fn failing_now(&self) -> bool {
        let period = self.healthy + self.failing;
        let t = self.start.elapsed().as_millis() % period.as_millis();
        t >= self.healthy.as_millis()
    }
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    short_circuited: AtomicU64,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let seconds = cli::Seconds::parse().seconds.unwrap_or(24);
    cli::log_warnings();

    let waves = Waves {
        start: Instant::now(),
        healthy: Duration::from_secs(4),
        failing: Duration::from_secs(9),
    };
    // Hystrix's defaults, with a shorter sleep window so the demo shows several trials.
    let circuit = Circuit::new(
        "FlakyDependency",
        BreakerConfig {
            sleep_window: Duration::from_secs(2),
            ..BreakerConfig::default()
        },
    )?;
    let dependency = service_fn(move |n: u64| async move {
        sleep(Duration::from_millis(2)).await;
        if waves.failing_now() {
            Err::<u64, BoxError>(format!("request {n}: dependency unavailable").into())
        } else {
            Ok(n)
        }
    });
    let svc = CircuitBreakerLayer::new(circuit.clone()).layer(dependency);

    println!(
        "A breaker in front of a dependency healthy for {:?}, then failing for {:?}, for {seconds} s.",
        waves.healthy, waves.failing
    );
    let mut transitions = circuit.subscribe();
    tokio::spawn(async move {
        while let Ok(t) = transitions.recv().await {
            println!(
                "{:>6.1}s  transition {} -> {}  ({:?})",
                waves.start.elapsed().as_secs_f64(),
                t.from,
                t.to,
                t.reason
            );
        }
    });

    let tally = Arc::new(Tally::default());
    let load = {
        let tally = tally.clone();
        async move {
            let mut tick = interval(Duration::from_millis(10));
            for n in 0.. {
                tick.tick().await;
                let mut svc = svc.clone();
                let tally = tally.clone();
                tokio::spawn(async move {
                    let counter = match svc.ready().await {
                        Ok(svc) => match svc.call(n).await {
                            Ok(_) => &tally.ok,
                            Err(e) if e.is::<ShortCircuited>() => &tally.short_circuited,
                            Err(_) => &tally.failed,
                        },
                        Err(_) => &tally.failed,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                });
            }
        }
    };
    let report = {
        let (tally, circuit) = (tally.clone(), circuit.clone());
        async move {
            let mut tick = interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                println!(
                    "{:>6.1}s  {:<9} dependency {:<7} window: {:<32} ok {:>5}  failed {:>5}  short-circuited {:>5}",
                    waves.start.elapsed().as_secs_f64(),
                    circuit.state().as_str(),
                    if waves.failing_now() {
                        "FAILING"
                    } else {
                        "healthy"
                    },
                    circuit.health().to_string(),
                    tally.ok.load(Ordering::Relaxed),
                    tally.failed.load(Ordering::Relaxed),
                    tally.short_circuited.load(Ordering::Relaxed),
                );
            }
        }
    };

    tokio::select! {
        _ = load => {}
        _ = report => {}
        _ = sleep(Duration::from_secs(seconds)) => {}
        _ = tokio::signal::ctrl_c() => println!("interrupted"),
    }
    println!(
        "done: {} ok, {} failed, {} short-circuited (rejected at once, never reaching the dependency)",
        tally.ok.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
        tally.short_circuited.load(Ordering::Relaxed)
    );
    Ok(())
}
