//! A command's settings changed at runtime by editing its TOML file, without a restart.
//!
//! The example writes a configuration file (in a temporary directory), loads it into a
//! `Registry` with `load_file`, starts `watch` on it (the file is read again every 100 ms,
//! and put in force when it changed), and builds the command `GetInventory` in that registry.
//! A load of 100 requests a second runs against a dependency that fails 30% of the requests and
//! answers one in ten slowly (100 ms, the others in 5 to 20 ms). Then the file is edited, six times over the run, and
//! each phase prints what the command does under the settings in force:
//!
//! 1. as written: 50% error threshold, 500 ms timeout. 30% of errors: the circuit stays closed.
//! 2. `execution_isolation_thread_timeout_in_milliseconds` 500 -> 50: the slow tenth now
//!    times out (40% of errors, still under the threshold).
//! 3. `circuit_breaker_error_threshold_percentage` 50 -> 20: the circuit opens, and requests
//!    are short-circuited (rejected at once, the dependency not called).
//! 4. an invalid edit (a threshold of 150%): refused with an error naming the property, by
//!    the watch (a warning on stderr) and by an explicit `reload()`, whose error is printed;
//!    the 20% threshold stays in force.
//! 5. `circuit_breaker_force_open = true`: every request is short-circuited.
//! 6. back to the file as written (force_open false, 50%, 500 ms): the circuit closes again
//!    after its next successful trial.
//!
//! Each edit is written to a sibling file and renamed over the watched one, so that the
//! watch never reads a half-written file.
//!
//! ```text
//! cargo run --example config_reload                 # 10 seconds
//! cargo run --example config_reload -- --seconds 30
//! ```

#[path = "common/cli.rs"]
mod cli;

use clap::Parser as _;

use std::{
    error::Error,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::time::{Instant, interval, sleep};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_hystrix::{
    BoxError, Command, CommandService, CommandSettings, ErrorKind, HystrixEventType as Ev,
    Registry, breaker::Mode,
};

const COMMAND: &str = "GetInventory";

/// The settings this example edits; the rest of the file stays as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Edit {
    threshold: u8,
    timeout_ms: u64,
    force_open: bool,
}

impl Edit {
    const AS_WRITTEN: Self = Self {
        threshold: 50,
        timeout_ms: 500,
        force_open: false,
    };

    fn toml(&self) -> String {
        format!(
            "# Hystrix settings of the config_reload example; edited while it runs.\n\
             [command.{COMMAND}]\n\
             execution_isolation_thread_timeout_in_milliseconds = {}\n\
             circuit_breaker_error_threshold_percentage = {}\n\
             circuit_breaker_force_open = {}\n\
             circuit_breaker_request_volume_threshold = 10\n\
             circuit_breaker_sleep_window_in_milliseconds = 500\n",
            self.timeout_ms, self.threshold, self.force_open
        )
    }

    /// Whether `settings` are these.
    fn in_force(&self, settings: &CommandSettings) -> bool {
        settings.timeout == Some(Duration::from_millis(self.timeout_ms))
            && settings.breaker.error_threshold_percentage == self.threshold
            && settings.breaker.force_open == self.force_open
    }
}

/// Writes `text` to a sibling of `path` and renames it over `path`: a reader sees the old
/// file or the new one, never half of it.
fn replace_file(path: &Path, text: &str) -> std::io::Result<()> {
    let next = path.with_extension("toml.next");
    std::fs::write(&next, text)?;
    std::fs::rename(&next, path)
}

/// The outcomes of the calls of one phase.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    timed_out: AtomicU64,
    short_circuited: AtomicU64,
    rejected: AtomicU64,
}

impl Tally {
    fn count(&self, result: Result<(), ErrorKind>) {
        let counter = match result {
            Ok(()) => &self.ok,
            Err(ErrorKind::TimedOut) => &self.timed_out,
            Err(ErrorKind::ShortCircuited) => &self.short_circuited,
            Err(ErrorKind::SemaphoreRejected | ErrorKind::ThreadPoolRejected) => &self.rejected,
            Err(_) => &self.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn line(&self) -> String {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "ok {}, failed {}, timed out {}, short-circuited {}, rejected {}",
            load(&self.ok),
            load(&self.failed),
            load(&self.timed_out),
            load(&self.short_circuited),
            load(&self.rejected)
        )
    }

    fn reset(&self) {
        for c in [
            &self.ok,
            &self.failed,
            &self.timed_out,
            &self.short_circuited,
            &self.rejected,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// The circuit's state, or FORCED_OPEN when the settings force it open whatever its state.
fn circuit_state(command: &Command) -> &'static str {
    match command.circuit().mode() {
        Mode::ForcedOpen => "FORCED_OPEN",
        _ => command.circuit().state().as_str(),
    }
}

/// The settings in force, in the file's words.
fn describe(command: &Command) -> String {
    let settings = command.settings();
    format!(
        "threshold {}%, timeout {}, force_open {}",
        settings.breaker.error_threshold_percentage,
        settings
            .timeout
            .map_or("off".to_owned(), |t| format!("{} ms", t.as_millis())),
        command.circuit().mode() == Mode::ForcedOpen,
    )
}

/// The run's phases, each under one version of the file.
struct Run {
    start: Instant,
    command: Command,
    /// The outcomes of the calls since the current phase began.
    tally: Arc<Tally>,
    /// How long each phase lasts.
    phase: Duration,
    /// Phases begun so far.
    phases: u32,
}

impl Run {
    fn secs(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// Starts the next phase: resets the tally and says what the phase shows.
    fn begin(&mut self, what: &str) {
        self.phases += 1;
        self.tally.reset();
        println!("\n{:>6.2}s  phase {}: {what}", self.secs(), self.phases);
    }

    /// Lets the load run for the phase, printing the tally twice a second, then the phase's
    /// summary.
    async fn observe(&self) {
        let end = Instant::now() + self.phase;
        let mut tick = interval(Duration::from_millis(500));
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = tokio::time::sleep_until(end) => break,
            }
            if end.saturating_duration_since(Instant::now()) < Duration::from_millis(100) {
                continue; // the phase's summary is next
            }
            println!(
                "{:>6.2}s    circuit {:<11} {}",
                self.secs(),
                circuit_state(&self.command),
                self.tally.line()
            );
        }
        println!(
            "{:>6.2}s  phase {} ({}): {}",
            self.secs(),
            self.phases,
            describe(&self.command),
            self.tally.line()
        );
    }

    /// Edits the file and waits for the watch to put the edit in force.
    async fn edit(&self, path: &Path, change: &str, edit: Edit) -> Result<(), Box<dyn Error>> {
        println!("{:>6.2}s  edit: {change}", self.secs());
        let written = Instant::now();
        replace_file(path, &edit.toml())?;
        while !edit.in_force(&self.command.settings()) {
            if written.elapsed() > Duration::from_secs(5) {
                return Err(format!("the edit was not applied within 5 s: {change}").into());
            }
            sleep(Duration::from_millis(5)).await;
        }
        println!(
            "{:>6.2}s  in force {} ms after the edit, without a restart: {}",
            self.secs(),
            written.elapsed().as_millis(),
            describe(&self.command)
        );
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let seconds = cli::Seconds::parse().seconds.unwrap_or(10);
    if seconds < 3 {
        eprintln!("config_reload: --seconds must be at least 3");
        std::process::exit(2);
    }
    // The watch reports what it refuses with `tracing`, at `warn`.
    cli::log_warnings();

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("hystrix.toml");
    replace_file(&path, &Edit::AS_WRITTEN.toml())?;
    println!(
        "{} as written:\n{}",
        path.display(),
        Edit::AS_WRITTEN.toml()
    );

    let registry = Registry::new();
    registry.load_file(&path)?;
    let _watch = registry.watch(Duration::from_millis(100));

    // The dependency: request n fails when n % 10 is 2, 5 or 8 (30%), takes 100 ms when it is
    // 0 and 5 to 20 ms otherwise.
    let dependency = service_fn(|n: u64| async move {
        let latency = if n % 10 == 0 { 100 } else { 5 + n * 7 % 16 };
        sleep(Duration::from_millis(latency)).await;
        if matches!(n % 10, 2 | 5 | 8) {
            Err::<u64, BoxError>(format!("request {n}: inventory service unavailable").into())
        } else {
            Ok(n)
        }
    });
    // No timeout or breaker settings in code: they come from the file (whose
    // `[command.GetInventory]` table would win over code anyway).
    let layer = Command::builder(COMMAND)
        .group("Inventory")
        .semaphore(50) // room for the load's 10 or so concurrent calls
        .registry(&registry)
        .build()?;
    let command = layer.command().clone();
    let service: CommandService<_, u64, u64> = layer.layer(dependency);

    let start = Instant::now();
    let mut transitions = command.circuit().subscribe();
    tokio::spawn(async move {
        while let Ok(t) = transitions.recv().await {
            println!(
                "{:>6.2}s    circuit {} -> {} ({:?})",
                start.elapsed().as_secs_f64(),
                t.from,
                t.to,
                t.reason
            );
        }
    });

    let tally = Arc::new(Tally::default());
    let load = tokio::spawn({
        let tally = tally.clone();
        async move {
            let mut tick = interval(Duration::from_millis(10));
            for n in 0.. {
                tick.tick().await;
                let mut svc = service.clone();
                let tally = tally.clone();
                tokio::spawn(async move {
                    let result = match svc.ready().await {
                        Ok(svc) => svc.call(n).await,
                        Err(e) => Err(e),
                    };
                    tally.count(result.map(drop).map_err(|e| e.kind()));
                });
            }
        }
    });

    let mut run = Run {
        start,
        command: command.clone(),
        tally,
        phase: Duration::from_secs(seconds) / 6,
        phases: 0,
    };

    run.begin("the file as written; 30% of requests fail, under the 50% threshold");
    run.observe().await;

    let slow = Edit {
        timeout_ms: 50,
        ..Edit::AS_WRITTEN
    };
    run.edit(
        &path,
        "execution_isolation_thread_timeout_in_milliseconds 500 -> 50",
        slow,
    )
    .await?;
    run.begin("a 50 ms timeout: the 100 ms requests time out");
    run.observe().await;

    let strict = Edit {
        threshold: 20,
        ..slow
    };
    run.edit(
        &path,
        "circuit_breaker_error_threshold_percentage 50 -> 20",
        strict,
    )
    .await?;
    run.begin("a 20% threshold: the circuit opens, requests are short-circuited");
    run.observe().await;

    println!(
        "{:>6.2}s  edit: circuit_breaker_error_threshold_percentage 20 -> 150 (invalid)",
        run.secs()
    );
    replace_file(
        &path,
        &Edit {
            threshold: 150,
            ..strict
        }
        .toml(),
    )?;
    match registry.reload() {
        Ok(()) => println!(
            "{:>6.2}s  accepted, unexpectedly: {}",
            run.secs(),
            describe(&command)
        ),
        Err(e) => println!(
            "{:>6.2}s  refused: {e}\n{:>6.2}s  the property at fault: {}; still in force: {}",
            run.secs(),
            run.secs(),
            e.key().unwrap_or("?"),
            describe(&command)
        ),
    }
    run.begin("the invalid file refused: the 20% threshold stays in force");
    run.observe().await;

    let forced = Edit {
        force_open: true,
        ..strict
    };
    run.edit(&path, "circuit_breaker_force_open false -> true", forced)
        .await?;
    run.begin("forced open: every request is short-circuited");
    run.observe().await;

    run.edit(
        &path,
        "back to the file as written (force_open false, threshold 50, timeout 500)",
        Edit::AS_WRITTEN,
    )
    .await?;
    run.begin("as written again: the circuit closes after a successful trial");
    run.observe().await;

    load.abort();
    let counts = command.snapshot().cumulative;
    println!(
        "\ndone in {:.1} s, one command and one registry throughout: {} requests, {} short-circuited",
        run.secs(),
        counts.get(Ev::Success)
            + counts.get(Ev::Failure)
            + counts.get(Ev::Timeout)
            + counts.get(Ev::ShortCircuited)
            + counts.get(Ev::SemaphoreRejected),
        counts.get(Ev::ShortCircuited),
    );
    Ok(())
}
