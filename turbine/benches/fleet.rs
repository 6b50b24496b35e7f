//! The turbine under a fleet's load: by default 1,000 instances of 20 commands each, every
//! instance sending its 20 `HystrixCommand` lines (Hystrix 1.5's 48 fields) and a `ping: `
//! every 500 ms, all generated in this process on loopback.
//!
//! ```text
//! cargo bench -p hystrix-turbine --bench fleet -- [--instances N] [--commands N]
//!     [--seconds N] [--warmup N] [--probes N]
//! ```
//!
//! The release `turbine` binary runs as a child process (`--config` with a file-discovered
//! cluster; its log goes to `target/tmp/fleet/turbine.log`). Once `/clusters` shows every
//! instance connected, and after the warm-up, the window measures:
//!
//! - **CPU** of the turbine: utime + stime from `/proc/<pid>/stat` over wall time, in cores;
//! - **resident memory**: `VmRSS` (sampled every second: end, min and max of the window) and
//!   `VmHWM` (the peak since start) from `/proc/<pid>/status`;
//! - **lag**: `--probes` instances (spread over the stagger) also send a command `Probe<k>`
//!   that only they report, whose `rollingCountSuccess` is the time the line was written (ms
//!   since the bench's epoch). A client of `/turbine.stream` takes, for each `Probe<k>` event,
//!   lag = time received - that value: how old the newest probe line in the output is. The
//!   probe repeats every 500 ms and the turbine writes every key once per `interval_ms`
//!   (1,000 ms), so with no delay of its own the lag is spread over 0..500 ms (p99 ~ 500 ms);
//!   anything above that is the turbine's (or the machine's) delay;
//! - the **input rate**, from `/clusters` (`totals.messages`), against the expected
//!   instances x (commands x 2 + probes);
//! - the generator's own CPU (its runtime's threads, `fleet-gen`, from
//!   `/proc/self/task/*/stat`) and the whole bench process's, for context: on a 2-core machine
//!   the generator and the turbine share the cores.
//!
//! The generator is a multi-thread tokio runtime with one worker: one listener answers
//! `GET /hystrix.stream?i=N` for every instance N; each tick's 20 lines are encoded once and
//! the same bytes written to every instance (the probe instances add their own line);
//! instance N writes at N/instances of the 500 ms period, so the writes are spread.
//!
//! Clock ticks (`getconf CLK_TCK`) are read once, 100 if that fails. The open-files limit is
//! raised to the hard limit (through `prlimit`) when the soft one is too low for the fleet.
#![allow(clippy::disallowed_methods)] // the wall clock is what this measures

use std::{
    collections::HashMap,
    fmt::Write as _,
    fs,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    runtime::Runtime,
    sync::watch,
    time::{MissedTickBehavior, timeout},
};

/// How often every instance sends its commands.
const PERIOD: Duration = Duration::from_millis(500);
/// The generator runtime's thread name (at most 15 bytes: `/proc/*/comm`).
const GEN_THREAD: &str = "fleet-gen";

// ===== options =====

#[derive(Clone, Copy, Debug)]
struct Opts {
    instances: usize,
    commands: usize,
    seconds: u64,
    warmup: u64,
    probes: usize,
    /// Run by `cargo test` (no `--bench`): a small fleet, checked for function, not figures.
    smoke: bool,
}

impl Opts {
    /// `--instances N --commands N --seconds N --warmup N --probes N` (or `--key=N`); other
    /// arguments (criterion's `--bench`, filters) are ignored.
    fn parse() -> Self {
        let mut opts = Self {
            instances: 1_000,
            commands: 20,
            seconds: 30,
            warmup: 10,
            probes: 10,
            smoke: !std::env::args().any(|a| a == "--bench"),
        };
        if opts.smoke {
            // `cargo test --all-targets` runs this once: 20 instances for 2 s.
            (
                opts.instances,
                opts.commands,
                opts.seconds,
                opts.warmup,
                opts.probes,
            ) = (20, 5, 2, 1, 2);
        }
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let (key, inline) = match arg.split_once('=') {
                Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                None => (arg.clone(), None),
            };
            if !matches!(
                key.as_str(),
                "--instances" | "--commands" | "--seconds" | "--warmup" | "--probes"
            ) {
                continue;
            }
            let Some(n) = inline
                .or_else(|| args.next())
                .and_then(|v| v.parse::<u64>().ok())
            else {
                fail(&format!("{key} needs a number"));
            };
            match key.as_str() {
                "--instances" => opts.instances = n as usize,
                "--commands" => opts.commands = n as usize,
                "--seconds" => opts.seconds = n,
                "--warmup" => opts.warmup = n,
                _ => opts.probes = n as usize,
            }
        }
        if opts.instances == 0 || opts.instances > 60_000 || opts.commands == 0 {
            fail("--instances must be 1..=60000 and --commands at least 1");
        }
        if opts.seconds == 0 {
            fail("--seconds must be at least 1");
        }
        opts.probes = opts.probes.min(opts.instances);
        opts
    }

    /// The probe instance `i` reports, if any: probes are spread over the instances (and so
    /// over the stagger).
    fn probe_of(&self, i: usize) -> Option<usize> {
        if self.probes == 0 {
            return None;
        }
        let step = self.instances / self.probes;
        (i % step == 0 && i / step < self.probes).then_some(i / step)
    }

    /// Data lines per second the fleet sends.
    fn expected_rate(&self) -> f64 {
        (self.instances * self.commands + self.probes) as f64 / PERIOD.as_secs_f64()
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("fleet: {msg}");
    std::process::exit(2)
}

// ===== the generator =====

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Appends `data: {…}\n\n`: one `HystrixCommand` line of Hystrix 1.5 (the 48 fields of the
/// wire-format spec §2.1, in its order).
fn command_line(out: &mut String, name: &str, group: &str, time: u64, success: i64, failure: i64) {
    let total = success + failure;
    let pct = if total > 0 { failure * 100 / total } else { 0 };
    let mean = 5 + success % 7;
    let _ = write!(
        out,
        concat!(
            r#"data: {{"type":"HystrixCommand","name":"{name}","group":"{group}","currentTime":{time},"#,
            r#""isCircuitBreakerOpen":false,"errorPercentage":{pct},"errorCount":{failure},"requestCount":{total},"#,
            r#""rollingCountBadRequests":0,"rollingCountCollapsedRequests":0,"rollingCountEmit":0,"#,
            r#""rollingCountExceptionsThrown":0,"rollingCountFailure":{failure},"rollingCountFallbackEmit":0,"#,
            r#""rollingCountFallbackFailure":0,"rollingCountFallbackMissing":0,"rollingCountFallbackRejection":0,"#,
            r#""rollingCountFallbackSuccess":{failure},"rollingCountResponsesFromCache":0,"#,
            r#""rollingCountSemaphoreRejected":0,"rollingCountShortCircuited":0,"rollingCountSuccess":{success},"#,
            r#""rollingCountThreadPoolRejected":0,"rollingCountTimeout":0,"currentConcurrentExecutionCount":1,"#,
            r#""rollingMaxConcurrentExecutionCount":4,"latencyExecute_mean":{mean},"#,
            r#""latencyExecute":{{"0":1,"25":3,"50":{mean},"75":9,"90":14,"95":20,"99":45,"99.5":60,"100":120}},"#,
            r#""latencyTotal_mean":{total_mean},"#,
            r#""latencyTotal":{{"0":1,"25":3,"50":{total_mean},"75":10,"90":15,"95":21,"99":47,"99.5":62,"100":125}},"#,
            r#""propertyValue_circuitBreakerRequestVolumeThreshold":20,"#,
            r#""propertyValue_circuitBreakerSleepWindowInMilliseconds":5000,"#,
            r#""propertyValue_circuitBreakerErrorThresholdPercentage":50,"#,
            r#""propertyValue_circuitBreakerForceOpen":false,"propertyValue_circuitBreakerForceClosed":false,"#,
            r#""propertyValue_circuitBreakerEnabled":true,"propertyValue_executionIsolationStrategy":"THREAD","#,
            r#""propertyValue_executionIsolationThreadTimeoutInMilliseconds":1000,"#,
            r#""propertyValue_executionTimeoutInMilliseconds":1000,"#,
            r#""propertyValue_executionIsolationThreadInterruptOnTimeout":true,"#,
            r#""propertyValue_executionIsolationThreadPoolKeyOverride":null,"#,
            r#""propertyValue_executionIsolationSemaphoreMaxConcurrentRequests":10,"#,
            r#""propertyValue_fallbackIsolationSemaphoreMaxConcurrentRequests":10,"#,
            r#""propertyValue_metricsRollingStatisticalWindowInMilliseconds":10000,"#,
            r#""propertyValue_requestCacheEnabled":true,"propertyValue_requestLogEnabled":true,"#,
            r#""reportingHosts":1,"threadPool":"{group}"}}"#,
            "\n\n"
        ),
        name = name,
        group = group,
        time = time,
        pct = pct,
        failure = failure,
        total = total,
        success = success,
        mean = mean,
        total_mean = mean + 1,
    );
}

/// One tick of the commands every instance reports, and the heart-beat.
fn encode_block(commands: usize, tick: u64) -> Bytes {
    let mut out = String::with_capacity(commands * 2_200 + 8);
    let time = wall_ms();
    for c in 0..commands {
        let success = 1_000 + ((tick as i64 * 7 + c as i64 * 13) % 500);
        let failure = (tick as i64 + c as i64) % 5;
        command_line(
            &mut out,
            &format!("Cmd{c:02}"),
            &format!("Group{}", c % 5),
            time,
            success,
            failure,
        );
    }
    out.push_str("ping: \n\n");
    Bytes::from(out)
}

#[derive(Debug, Default)]
struct GenCounters {
    accepted: AtomicU64,
    open: AtomicU64,
    writes: AtomicU64,
    bad_requests: AtomicU64,
}

struct GenShared {
    opts: Opts,
    epoch: Instant,
    block: watch::Receiver<Bytes>,
    counters: Arc<GenCounters>,
}

struct Generator {
    addr: SocketAddr,
    counters: Arc<GenCounters>,
    runtime: Runtime,
}

impl Generator {
    fn start(opts: Opts, epoch: Instant) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(GEN_THREAD)
            .enable_all()
            .build()
            .unwrap_or_else(|e| fail(&format!("generator runtime: {e}")));
        let counters = Arc::new(GenCounters::default());
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .unwrap_or_else(|e| fail(&format!("generator listener: {e}")));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| fail(&format!("generator listener: {e}")));
        let (block_tx, block) = watch::channel(encode_block(opts.commands, 0));
        // Encodes each tick once, at the start of the period; instances write it staggered.
        runtime.spawn(async move {
            let mut ticker = tokio::time::interval_at((epoch + PERIOD).into(), PERIOD);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
            for tick in 1.. {
                ticker.tick().await;
                block_tx.send_replace(encode_block(opts.commands, tick));
            }
        });
        let shared = Arc::new(GenShared {
            opts,
            epoch,
            block,
            counters: counters.clone(),
        });
        runtime.spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((socket, _)) => {
                        shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
                        tokio::spawn(instance(socket, shared.clone()));
                    }
                    // Out of file descriptors, say: wait, then take the next one.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        Self {
            addr,
            counters,
            runtime,
        }
    }
}

/// One connection to `/hystrix.stream?i=N`: Hystrix's response, then instance N's lines
/// every period, at N/instances of the period.
async fn instance(mut socket: TcpStream, shared: Arc<GenShared>) {
    let _ = socket.set_nodelay(true);
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return;
        }
        match timeout(Duration::from_secs(10), socket.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let target = head.split_whitespace().nth(1).unwrap_or("");
    let Some(query) = target
        .strip_prefix("/hystrix.stream")
        .filter(|_| head.starts_with("GET "))
    else {
        shared.counters.bad_requests.fetch_add(1, Ordering::Relaxed);
        let _ = socket
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
        return;
    };
    let i: usize = query
        .trim_start_matches('?')
        .split('&')
        .find_map(|kv| kv.strip_prefix("i="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let response = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream;charset=UTF-8\r\n\
                    Cache-Control: no-cache, no-store, max-age=0, must-revalidate\r\n\
                    Pragma: no-cache\r\nConnection: close\r\n\r\n";
    if socket.write_all(response.as_bytes()).await.is_err() {
        return;
    }
    let counters = &shared.counters;
    counters.open.fetch_add(1, Ordering::Relaxed);

    // Instance i's ticks: epoch + offset + k * PERIOD, the first one still to come.
    let n = shared.opts.instances;
    let offset = PERIOD * (i % n) as u32 / n as u32;
    let elapsed = shared.epoch.elapsed().saturating_sub(offset);
    let periods = (elapsed.as_nanos() / PERIOD.as_nanos()) as u32 + 1;
    let start = shared.epoch + offset + PERIOD * periods;
    let mut ticker = tokio::time::interval_at(start.into(), PERIOD);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let probe = shared.opts.probe_of(i).map(|k| format!("Probe{k}"));
    let mut block_rx = shared.block.clone();
    let mut line = String::new();
    let mut out = Vec::new();
    loop {
        ticker.tick().await;
        let block = block_rx.borrow_and_update().clone();
        let written = match &probe {
            None => socket.write_all(&block).await,
            Some(name) => {
                line.clear();
                let sent = shared.epoch.elapsed().as_millis() as i64;
                command_line(&mut line, name, "Probe", wall_ms(), sent, 0);
                out.clear();
                out.extend_from_slice(line.as_bytes());
                out.extend_from_slice(&block);
                socket.write_all(&out).await
            }
        };
        if written.is_err() {
            break;
        }
        counters.writes.fetch_add(1, Ordering::Relaxed);
    }
    counters.open.fetch_sub(1, Ordering::Relaxed);
}

// ===== the turbine =====

/// The turbine child, killed when dropped (a panic included).
struct TurbineProcess {
    child: Child,
}

impl TurbineProcess {
    fn spawn(config: &Path, log: &Path) -> Self {
        let log_file =
            fs::File::create(log).unwrap_or_else(|e| fail(&format!("{}: {e}", log.display())));
        let stdout = log_file
            .try_clone()
            .unwrap_or_else(|e| fail(&format!("{}: {e}", log.display())));
        let child = Command::new(env!("CARGO_BIN_EXE_turbine"))
            .arg("--config")
            .arg(config)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| fail(&format!("{}: {e}", env!("CARGO_BIN_EXE_turbine"))));
        Self { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if the child is gone.
    fn exited(&mut self) -> Option<String> {
        self.child
            .try_wait()
            .ok()
            .flatten()
            .map(|status| status.to_string())
    }
}

impl Drop for TurbineProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ===== /proc =====

/// `getconf CLK_TCK`, or 100.
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|&t| t > 0.0)
        .unwrap_or(100.0)
}

/// (comm, utime + stime in clock ticks, threads) from a `stat` file.
fn read_stat(path: &str) -> Option<(String, u64, u64)> {
    let text = fs::read_to_string(path).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    // Fields from the 3rd (state) on; utime and stime are the 14th and 15th, threads the 20th.
    let fields: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let threads: u64 = fields.get(17)?.parse().ok()?;
    Some((comm, utime + stime, threads))
}

/// A `kB` line of `/proc/<pid>/status`, in KiB.
fn status_kib(pid: u32, key: &str) -> Option<u64> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU ticks of this process's generator threads.
fn generator_ticks() -> u64 {
    let Ok(tasks) = fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| read_stat(&format!("{}/stat", t.path().display())))
        .filter(|(comm, _, _)| comm == GEN_THREAD)
        .map(|(_, ticks, _)| ticks)
        .sum()
}

/// The soft and hard limits on open files.
fn nofile() -> Option<(u64, u64)> {
    let limits = fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut values = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .map(|v| {
            if v == "unlimited" {
                Some(u64::MAX)
            } else {
                v.parse().ok()
            }
        });
    Some((values.next()??, values.next()??))
}

/// Makes sure this process (and so the turbine, which inherits it) may open `needed` files.
fn raise_nofile(needed: u64) {
    let Some((soft, hard)) = nofile() else {
        return;
    };
    if soft >= needed {
        return;
    }
    if hard >= needed {
        let _ = Command::new("prlimit")
            .arg(format!("--pid={}", std::process::id()))
            .arg(format!("--nofile={hard}:{hard}"))
            .status();
    }
    match nofile() {
        Some((soft, _)) if soft >= needed => {}
        _ => fail(&format!(
            "{needed} open files needed, the limit is {soft} (hard {hard}): run `ulimit -n {needed}` first"
        )),
    }
}

// ===== HTTP client =====

async fn get(addr: SocketAddr, path: &str) -> Result<(StatusCode, Incoming), String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let request = Request::get(path)
        .header("host", addr.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("GET {path}: {e}"))?;
    Ok((response.status(), response.into_body()))
}

async fn get_json(addr: SocketAddr, path: &str) -> Result<Value, String> {
    let fetch = async {
        let (status, body) = get(addr, path).await?;
        let body = body
            .collect()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?
            .to_bytes();
        if status != StatusCode::OK {
            return Err(format!("GET {path}: {status}"));
        }
        serde_json::from_slice(&body).map_err(|e| format!("GET {path}: {e}"))
    };
    timeout(Duration::from_secs(10), fetch)
        .await
        .map_err(|_| format!("GET {path}: no answer in 10 s"))?
}

/// What `/clusters` says of the cluster `default`.
#[derive(Clone, Debug, Default)]
struct ClusterState {
    instances: usize,
    connected: usize,
    messages: u64,
    parse_errors: u64,
    connects: u64,
    failures: u64,
    keys: u64,
    last_error: Option<String>,
}

async fn cluster_state(addr: SocketAddr) -> Result<ClusterState, String> {
    let json = get_json(addr, "/clusters").await?;
    let cluster = json["clusters"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "default"))
        .ok_or("/clusters: no cluster `default`")?;
    let instances = cluster["instances"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    let totals = &cluster["totals"];
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    Ok(ClusterState {
        instances: instances.len(),
        connected: instances
            .iter()
            .filter(|i| i["state"] == "connected")
            .count(),
        messages: n(&totals["messages"]),
        parse_errors: n(&totals["parse_errors"]),
        connects: n(&totals["connects"]),
        failures: n(&totals["failures"]),
        keys: n(&cluster["keys"]),
        last_error: instances
            .iter()
            .find_map(|i| i["last_error"].as_str().map(str::to_owned)),
    })
}

// ===== the lag client =====

#[derive(Debug, Default)]
struct Observed {
    /// (received at, lag), ms since the epoch.
    lags: Vec<(u64, i64)>,
    /// Probe events whose value was the one of the previous event of that probe.
    repeats: Vec<u64>,
    last: HashMap<String, i64>,
    /// (received at, reportingHosts of `Cmd00`): one per frame.
    hosts: Vec<(u64, i64)>,
    /// Times the stream ended or failed.
    breaks: Vec<String>,
}

/// Reads `/turbine.stream` until `until`, noting every probe's lag.
async fn follow(addr: SocketAddr, epoch: Instant, until: Instant, seen: Arc<Mutex<Observed>>) {
    let note_break = |why: String| {
        seen.lock()
            .unwrap_or_else(|e| e.into_inner())
            .breaks
            .push(why);
    };
    while Instant::now() < until {
        let mut body = match get(addr, "/turbine.stream").await {
            Ok((StatusCode::OK, body)) => body,
            Ok((status, _)) => {
                note_break(format!("/turbine.stream: {status}"));
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(e) => {
                note_break(e);
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let mut pending: Vec<u8> = Vec::new();
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let frame = match timeout(left, body.frame()).await {
                Err(_) => return,
                Ok(None) => {
                    note_break("/turbine.stream ended".into());
                    break;
                }
                Ok(Some(Err(e))) => {
                    note_break(format!("/turbine.stream: {e}"));
                    break;
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let now = epoch.elapsed().as_millis() as u64;
            pending.extend_from_slice(&data);
            let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            let mut start = 0;
            while let Some(end) = pending[start..].iter().position(|&b| b == b'\n') {
                observe(&pending[start..start + end], now, &mut seen);
                start += end + 1;
            }
            pending.drain(..start);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn observe(line: &[u8], now: u64, seen: &mut Observed) {
    let Some(json) = line.strip_prefix(b"data: ") else {
        return;
    };
    let Ok(event) = serde_json::from_slice::<Value>(json) else {
        return;
    };
    let Some(name) = event["name"].as_str() else {
        return;
    };
    if name == "Cmd00" {
        let hosts = event["reportingHosts"].as_i64().unwrap_or(-1);
        seen.hosts.push((now, hosts));
    } else if name.starts_with("Probe") {
        let Some(sent) = event["rollingCountSuccess"].as_i64() else {
            return;
        };
        if seen.last.insert(name.to_owned(), sent) == Some(sent) {
            seen.repeats.push(now);
        }
        seen.lags.push((now, now as i64 - sent));
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

// ===== the run =====

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

/// The `WARN` and `ERROR` lines of the turbine's log: their count and the first few.
fn log_problems(log: &Path) -> (usize, Vec<String>) {
    let text = fs::read_to_string(log).unwrap_or_default();
    let bad: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR ") || l.contains("panicked"))
        .collect();
    let first = bad
        .iter()
        .take(5)
        .map(|l| l.chars().take(200).collect())
        .collect();
    (bad.len(), first)
}

fn main() {
    let opts = Opts::parse();
    // The generator holds one socket per instance, and so does the turbine (which inherits
    // the limit); some more for the listeners, clients and files.
    raise_nofile(opts.instances as u64 + 256);
    let tck = clock_ticks();
    let epoch = Instant::now();

    let generator = Generator::start(opts, epoch);

    // The instances file and the configuration, under target/tmp/fleet.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fleet");
    fs::create_dir_all(&dir).unwrap_or_else(|e| fail(&format!("{}: {e}", dir.display())));
    let mut list = String::new();
    for i in 0..opts.instances {
        let _ = writeln!(list, "http://{}/hystrix.stream?i={i}", generator.addr);
    }
    let instances_file = dir.join("instances.txt");
    fs::write(&instances_file, list)
        .unwrap_or_else(|e| fail(&format!("{}: {e}", instances_file.display())));
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| fail(&format!("no free port: {e}")));
    let config = format!(
        "listen = \"{listen}\"\n\n[clusters.default]\nfile = \"{}\"\n",
        instances_file.display()
    );
    let config_file = dir.join("turbine.toml");
    fs::write(&config_file, config)
        .unwrap_or_else(|e| fail(&format!("{}: {e}", config_file.display())));
    let log = dir.join("turbine.log");

    let mut turbine = TurbineProcess::spawn(&config_file, &log);
    let pid = turbine.pid();
    println!(
        "fleet: {} instances x {} commands every {} ms (+{} probes), generator on {}, turbine pid {pid} on {listen}",
        opts.instances,
        opts.commands,
        PERIOD.as_millis(),
        opts.probes,
        generator.addr,
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("runtime: {e}")));
    runtime.block_on(async {
        // Every instance connected, within a bound.
        let connect_bound = Duration::from_secs(30) + Duration::from_millis(30) * opts.instances as u32;
        let waiting = Instant::now();
        let mut state = ClusterState::default();
        loop {
            if let Some(status) = turbine.exited() {
                fail(&format!("the turbine exited ({status}); see {}", log.display()));
            }
            match cluster_state(listen).await {
                Ok(s) => state = s,
                Err(_) if waiting.elapsed() < Duration::from_secs(10) => {} // still starting
                Err(e) => fail(&format!("{e}; see {}", log.display())),
            }
            if state.connected >= opts.instances || waiting.elapsed() > connect_bound {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        println!(
            "fleet: {}/{} instances connected after {:.1} s{}",
            state.connected,
            opts.instances,
            waiting.elapsed().as_secs_f64(),
            if state.connected < opts.instances { " (NOT ALL: going on)" } else { "" },
        );

        let warmup = Duration::from_secs(opts.warmup);
        let window = Duration::from_secs(opts.seconds);
        let seen = Arc::new(Mutex::new(Observed::default()));
        let follow_until = Instant::now() + warmup + window + Duration::from_millis(500);
        let follower = tokio::spawn(follow(listen, epoch, follow_until, seen.clone()));
        tokio::time::sleep(warmup).await;

        // The window.
        let before = cluster_state(listen)
            .await
            .unwrap_or_else(|e| fail(&format!("{e}; see {}", log.display())));
        let w0 = Instant::now();
        let w0_ms = epoch.elapsed().as_millis() as u64;
        let cpu0 = read_stat(&format!("/proc/{pid}/stat")).map_or(0, |s| s.1);
        let gen0 = generator_ticks();
        let self0 = read_stat("/proc/self/stat").map_or(0, |s| s.1);
        let writes0 = generator.counters.writes.load(Ordering::Relaxed);
        let accepted0 = generator.counters.accepted.load(Ordering::Relaxed);
        let (mut rss_min, mut rss_max) = (u64::MAX, 0u64);
        let mut rss_first = None;
        let mut rss_samples = Vec::new();
        for _ in 0..opts.seconds {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Some(status) = turbine.exited() {
                fail(&format!("the turbine exited ({status}); see {}", log.display()));
            }
            if let Some(rss) = status_kib(pid, "VmRSS") {
                rss_first.get_or_insert(rss);
                rss_samples.push(rss);
                rss_min = rss_min.min(rss);
                rss_max = rss_max.max(rss);
            }
        }
        let wall = w0.elapsed().as_secs_f64();
        let w1_ms = epoch.elapsed().as_millis() as u64;
        let (_, cpu1, threads) = read_stat(&format!("/proc/{pid}/stat")).unwrap_or_default();
        let gen1 = generator_ticks();
        let self1 = read_stat("/proc/self/stat").map_or(0, |s| s.1);
        let writes1 = generator.counters.writes.load(Ordering::Relaxed);
        let accepted1 = generator.counters.accepted.load(Ordering::Relaxed);
        let rss = status_kib(pid, "VmRSS").unwrap_or(0);
        let hwm = status_kib(pid, "VmHWM").unwrap_or(0);
        let after = cluster_state(listen)
            .await
            .unwrap_or_else(|e| fail(&format!("{e}; see {}", log.display())));
        let _ = follower.await;

        // Figures.
        let cores = |ticks: u64| ticks as f64 / tck / wall;
        let cpu = cores(cpu1.saturating_sub(cpu0));
        let rate = after.messages.saturating_sub(before.messages) as f64 / wall;
        let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        let in_window = |at: u64| (w0_ms..=w1_ms).contains(&at);
        let mut lags: Vec<i64> = seen
            .lags
            .iter()
            .filter(|(at, _)| in_window(*at))
            .map(|&(_, lag)| lag)
            .collect();
        let half = w0_ms + (w1_ms - w0_ms) / 2;
        let mut first: Vec<i64> = seen
            .lags
            .iter()
            .filter(|(at, _)| in_window(*at) && *at < half)
            .map(|&(_, l)| l)
            .collect();
        let mut second: Vec<i64> = seen
            .lags
            .iter()
            .filter(|(at, _)| in_window(*at) && *at >= half)
            .map(|&(_, l)| l)
            .collect();
        lags.sort_unstable();
        first.sort_unstable();
        second.sort_unstable();
        let repeats = seen.repeats.iter().filter(|&&at| in_window(at)).count();
        let hosts: Vec<i64> = seen
            .hosts
            .iter()
            .filter(|(at, _)| in_window(*at))
            .map(|&(_, h)| h)
            .collect();
        let breaks = seen.breaks.len();
        let p = |v: &[i64], q| percentile(v, q);
        let (p50, p99, max) = (p(&lags, 50.0), p(&lags, 99.0), lags.last().copied().unwrap_or(0));

        println!();
        println!(
            "fleet: {} instances x {} commands at {:.0} Hz (+{} probes); {:.1} s window after {} s warm-up",
            opts.instances,
            opts.commands,
            1.0 / PERIOD.as_secs_f64(),
            opts.probes,
            wall,
            opts.warmup,
        );
        println!(
            "  input      {:.0} lines/s (expected {:.0}); {}/{} connected at the end ({} listed); in the window: {} connects, {} failures, {} parse errors; {} keys",
            rate,
            opts.expected_rate(),
            after.connected,
            opts.instances,
            after.instances,
            after.connects.saturating_sub(before.connects),
            after.failures.saturating_sub(before.failures),
            after.parse_errors.saturating_sub(before.parse_errors),
            after.keys,
        );
        if let Some(e) = &after.last_error {
            println!("             an instance's last error: {e}");
        }
        println!(
            "  turbine    CPU {:.3} cores; RSS {:.1} MiB (window {:.1}..{:.1}, first {:.1}); peak RSS {:.1} MiB; {} threads",
            cpu,
            mib(rss),
            mib(if rss_min == u64::MAX { 0 } else { rss_min }),
            mib(rss_max),
            mib(rss_first.unwrap_or(0)),
            mib(hwm),
            threads,
        );
        // Ten points of the window's RSS, to tell growth from noise.
        let step = rss_samples.len().div_ceil(10).max(1);
        let trend: Vec<String> = rss_samples
            .iter()
            .enumerate()
            .filter(|(i, _)| i % step == step - 1 || *i + 1 == rss_samples.len())
            .map(|(_, &kib)| format!("{:.1}", mib(kib)))
            .collect();
        println!("             RSS every {step} s (MiB): {}", trend.join(" "));
        println!(
            "  lag        p50 {p50} ms, p99 {p99} ms, max {max} ms (n = {}; p99 first half {} ms, second half {} ms; {} repeated values)",
            lags.len(),
            p(&first, 99.0),
            p(&second, 99.0),
            repeats,
        );
        println!(
            "  output     {} frames; reportingHosts of Cmd00 {}..{}; {} stream breaks",
            hosts.len(),
            hosts.iter().min().copied().unwrap_or(0),
            hosts.iter().max().copied().unwrap_or(0),
            breaks,
        );
        println!(
            "  generator  CPU {:.3} cores ({GEN_THREAD} threads), bench process {:.3} cores; {:.0} writes/s (expected {:.0}); {} accepted in the window",
            cores(gen1.saturating_sub(gen0)),
            cores(self1.saturating_sub(self0)),
            writes1.saturating_sub(writes0) as f64 / wall,
            opts.instances as f64 / PERIOD.as_secs_f64(),
            accepted1.saturating_sub(accepted0),
        );
        println!(
            "  targets    CPU < 1 core: {}; RSS < 256 MiB: {}; p99 lag < 1.5 s: {}",
            verdict(cpu < 1.0),
            verdict(mib(hwm.max(rss_max)) < 256.0),
            verdict(!lags.is_empty() && p99 < 1_500),
        );
        let (problems, shown) = log_problems(&log);
        println!(
            "  log        {}: {problems} WARN/ERROR lines",
            log.display()
        );
        for line in shown {
            println!("             {line}");
        }
        if generator.counters.bad_requests.load(Ordering::Relaxed) > 0 {
            println!("  note       the generator got requests for other paths");
        }
        if opts.smoke && (after.connected != opts.instances || lags.is_empty() || rate == 0.0) {
            fail("test mode: the fleet did not flow through the turbine (see above)");
        }
    });
    drop(turbine);
    generator.runtime.shutdown_background();
}
