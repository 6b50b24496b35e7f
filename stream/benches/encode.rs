//! The metrics stream's costs: encoding one tick, and the server's CPU per tick with 1 and
//! with 100 connected clients.
//!
//! `encode/*`: one `/hystrix.stream` tick of 1,000 commands and 100 pools, from reports taken
//! beforehand (`tick`) and with the registry read first, from real `CommandMetrics`
//! (`snapshot_and_tick`).
//!
//! `serve/*`: a server thread (one current-thread runtime: accepting, encoding, writing) serves
//! the stream on loopback to clients that read and discard everything on another thread. Each
//! iteration is one tick of the stream; the figure is the **server thread's CPU time** per tick
//! (from `/proc/self/task/<tid>/schedstat`), so the clients' reading is not counted. The
//! `per_connection` rows give each client a router of its own (its own frame cache), which is
//! what encoding per connection, as Hystrix ≤ 1.5.3, costs. After criterion's report, the
//! process's CPU per tick (clients included) and the frames each client received per tick are
//! printed per row (1.00: every client got every tick).
#![allow(missing_docs)] // criterion's macros generate undocumented public functions

use std::{
    collections::BTreeMap,
    fs,
    hint::black_box,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    thread,
    time::Duration,
};

use axum::Router;
use criterion::{Criterion, Throughput, criterion_group};
use hystrix_core::{
    CircuitStatus, Clock, CommandKey, CommandMetrics, CommandReport, CommandSettingsReport,
    CommandSource, HystrixEventType as Ev, MetricsConfig, ThreadPoolKey, ThreadPoolMetrics,
    ThreadPoolReport, ThreadPoolSettingsReport, ThreadPoolSource,
};
use hystrix_stream::{
    HystrixStream, MetricsRegistry,
    encode::{Encoder, current_time_millis},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

// ===== registries =====

struct Command(CommandMetrics);

impl CommandSource for Command {
    fn key(&self) -> &CommandKey {
        self.0.key()
    }
    fn report(&self) -> CommandReport {
        CommandReport {
            metrics: self.0.snapshot(),
            circuit: CircuitStatus::Closed,
            settings: CommandSettingsReport::default(),
        }
    }
}

struct Pool(ThreadPoolReport);

impl ThreadPoolSource for Pool {
    fn key(&self) -> &ThreadPoolKey {
        &self.0.key
    }
    fn report(&self) -> ThreadPoolReport {
        self.0.clone()
    }
}

fn pool_report(i: usize) -> ThreadPoolReport {
    ThreadPoolReport {
        key: format!("Pool{i:03}").into(),
        metrics: ThreadPoolMetrics {
            active_count: 3,
            queue_size: 1,
            pool_size: 10,
            largest_pool_size: 10,
            core_pool_size: 10,
            maximum_pool_size: 10,
            completed_task_count: 123_456,
            task_count: 123_460,
            rolling_executed: 4_321,
            rolling_rejected: 2,
            rolling_max_active: 7,
            queue_size_rejection_threshold: 5,
        },
        settings: ThreadPoolSettingsReport::default(),
    }
}

/// `commands` commands with real metrics (events and latencies recorded) and `pools` pools
/// that have completed tasks.
fn registry(commands: usize, pools: usize) -> MetricsRegistry {
    let registry = MetricsRegistry::new();
    for i in 0..commands {
        let metrics = CommandMetrics::with_clock(
            format!("Service{:02}GetResource{i:04}", i % 37),
            format!("Service{:02}", i % 37),
            format!("Pool{:03}", i % pools.max(1)),
            MetricsConfig::default(),
            Clock::system(),
        );
        for n in 0..200u64 {
            metrics.mark(if n % 50 == 0 {
                Ev::Timeout
            } else {
                Ev::Success
            });
            metrics.record_latencies(
                Duration::from_millis(n % 97),
                Duration::from_millis(n % 97 + 1),
            );
        }
        registry.register_command(Arc::new(Command(metrics)));
    }
    for i in 0..pools {
        registry.register_pool(Arc::new(Pool(pool_report(i))));
    }
    registry
}

// ===== encode =====

fn encode(c: &mut Criterion) {
    let registry = registry(1_000, 100);
    let commands = registry.command_reports();
    let pools = registry.pool_reports();
    let mut encoder = Encoder::new();
    let size = encoder
        .metrics_tick(&commands, &pools, current_time_millis())
        .len();

    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Bytes(size as u64));
    group.bench_function("tick/1000_commands_100_pools", |b| {
        b.iter(|| {
            encoder.metrics_tick(
                black_box(&commands),
                black_box(&pools),
                black_box(1_700_000_000_000),
            )
        })
    });
    group.bench_function("snapshot_and_tick/1000_commands_100_pools", |b| {
        b.iter(|| {
            let commands = registry.command_reports();
            let pools = registry.pool_reports();
            encoder.metrics_tick(&commands, &pools, current_time_millis())
        })
    });
    group.finish();
}

// ===== serve =====

/// The server thread's CPU time so far, in ns (user and system: the first field of
/// `schedstat`, the time on a CPU, exact to the ns, where `stat`'s utime and stime are sampled
/// per clock tick).
fn thread_cpu_ns(tid: u32) -> u64 {
    fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The process's CPU time so far, in ns.
fn process_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// A server on a thread of its own; the thread's id, for its CPU time.
fn start_server(router: Router) -> (SocketAddr, u32) {
    let (tx, rx) = mpsc::channel();
    let spawned = thread::Builder::new()
        .name("stream-server".into())
        .spawn(move || {
            let tid = fs::read_link("/proc/thread-self")
                .ok()
                .and_then(|p| p.file_name()?.to_str()?.parse().ok())
                .unwrap_or(0);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("runtime: {e}"));
            rt.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0")
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
                let _ = tx.send((addr, tid));
                let _ = axum::serve(listener, router).await;
            });
        });
    spawned.unwrap_or_else(|e| panic!("server thread: {e}"));
    rx.recv().unwrap_or_else(|e| panic!("server thread: {e}"))
}

/// `paths.len()` clients on a thread of their own, reading and discarding, until dropped.
struct Clients {
    received: Arc<AtomicU64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Clients {
    fn connect(addr: SocketAddr, paths: Vec<String>) -> Self {
        let received = Arc::new(AtomicU64::new(0));
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let counter = received.clone();
        let thread = thread::Builder::new()
            .name("stream-clients".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap_or_else(|e| panic!("runtime: {e}"));
                rt.block_on(async move {
                    let mut tasks = Vec::new();
                    for path in paths {
                        let mut socket = TcpStream::connect(addr)
                            .await
                            .unwrap_or_else(|e| panic!("{e}"));
                        let request = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n");
                        socket
                            .write_all(request.as_bytes())
                            .await
                            .unwrap_or_else(|e| panic!("{e}"));
                        let counter = counter.clone();
                        tasks.push(tokio::spawn(async move {
                            let mut buf = vec![0u8; 256 * 1024];
                            while let Ok(n) = socket.read(&mut buf).await {
                                if n == 0 {
                                    break;
                                }
                                counter.fetch_add(n as u64, Ordering::Relaxed);
                            }
                        }));
                    }
                    let _ = ready_tx.send(());
                    let _ = stopped.await;
                    for task in tasks {
                        task.abort();
                    }
                });
            });
        let thread = thread.unwrap_or_else(|e| panic!("client thread: {e}"));
        let _ = ready_rx.recv();
        Self {
            received,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Totals over every iteration of one `serve` row, warm-up included.
#[derive(Default, Debug, Clone, Copy)]
struct Tally {
    ticks: u64,
    thread_ns: u64,
    process_ns: u64,
    received: u64,
    frame: u64,
    clients: u64,
}

static TALLIES: Mutex<BTreeMap<String, Tally>> = Mutex::new(BTreeMap::new());

const TICK: Duration = Duration::from_millis(100);

fn serve_row(c: &mut Criterion, commands: usize, pools: usize, clients: usize, shared: bool) {
    let registry = registry(commands, pools);
    let frame = Encoder::new()
        .metrics_tick(&registry.command_reports(), &registry.pool_reports(), 0)
        .len() as u64;
    let stream = HystrixStream::new()
        .registry(registry)
        .interval(TICK)
        .max_connections(1_000);
    let (router, paths): (Router, Vec<String>) = if shared {
        (stream.router(), vec!["/hystrix.stream".to_owned(); clients])
    } else {
        let mut router = Router::new();
        let mut paths = Vec::new();
        for i in 0..clients {
            router = router.nest(&format!("/c{i}"), stream.router());
            paths.push(format!("/c{i}/hystrix.stream"));
        }
        (router, paths)
    };
    let (addr, tid) = start_server(router);
    let clients_running = Clients::connect(addr, paths);
    // Let every client get its first frame.
    for _ in 0..1_000 {
        if stream.open_connections() >= clients {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    thread::sleep(TICK * 3);

    let name = format!(
        "serve/{commands}_commands/{clients}_{}",
        if shared {
            "clients"
        } else {
            "clients_per_connection"
        }
    );
    let mut group = c.benchmark_group("serve");
    group.sample_size(10);
    group.bench_function(name.trim_start_matches("serve/"), |b| {
        b.iter_custom(|iters| {
            let ns0 = thread_cpu_ns(tid);
            let p0 = process_cpu_ns();
            let r0 = clients_running.received.load(Ordering::Relaxed);
            thread::sleep(TICK * iters as u32);
            let ns1 = thread_cpu_ns(tid);
            let p1 = process_cpu_ns();
            let r1 = clients_running.received.load(Ordering::Relaxed);
            let mut tallies = TALLIES.lock().unwrap_or_else(|e| e.into_inner());
            let t = tallies.entry(name.clone()).or_default();
            t.ticks += iters;
            t.thread_ns += ns1 - ns0;
            t.process_ns += p1 - p0;
            t.received += r1 - r0;
            t.frame = frame;
            t.clients = clients as u64;
            Duration::from_nanos(ns1 - ns0)
        })
    });
    group.finish();
    drop(clients_running);
}

fn serve(c: &mut Criterion) {
    for (commands, pools) in [(1_000, 100), (100, 10)] {
        serve_row(c, commands, pools, 1, true);
        serve_row(c, commands, pools, 100, true);
        serve_row(c, commands, pools, 100, false);
    }
}

fn report() {
    let tallies = TALLIES.lock().unwrap_or_else(|e| e.into_inner());
    println!(
        "\n{:<52} {:>10} {:>10} {:>10}",
        "per tick (totals over the row, warm-up included)", "server ms", "process ms", "frames/cl"
    );
    for (name, t) in tallies.iter() {
        let ticks = t.ticks.max(1) as f64;
        println!(
            "{:<52} {:>10.3} {:>10.3} {:>10.2}",
            name,
            t.thread_ns as f64 / ticks / 1e6,
            t.process_ns as f64 / ticks / 1e6,
            t.received as f64 / (t.frame.max(1) * t.clients.max(1)) as f64 / ticks,
        );
    }
}

criterion_group!(benches, encode, serve);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    report();
}
