//! Two commands called concurrently and joined into one answer, each with its own fallback.
//!
//! A user's page needs two dependencies: `GetUser` (the profile) and `GetOrders` (the recent
//! orders). Both are asked at once and the page is assembled when both have answered, as
//! Hystrix users did with RxJava's `zip`: the page takes as long as the slower call, not as
//! long as both, and a failure of one dependency degrades the page instead of failing it, since
//! each command answers with its own fallback (a guest profile, no orders).
//!
//! The dependencies are simulated (`tower::service_fn` with `tokio::time::sleep`); the
//! example runs four scenarios: both healthy, `GetOrders` failing, `GetUser` hanging past its
//! 300 ms timeout, and both down. For each it prints what each command answered and how long
//! it took, the page, and the total latency against what the same calls would have cost one
//! after the other.
//!
//! ```text
//! cargo run --example parallel
//! cargo run --example parallel -- --rounds 6    # repeats the scenarios: GetOrders fails in
//!                                                # half its calls and its circuit ends up open
//! ```

#[path = "common/cli.rs"]
mod cli;

use clap::Parser as _;

use std::{
    error::Error,
    fmt,
    future::Future,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::time::{Instant, sleep};
use tower::{Layer, ServiceExt, service_fn};
use tower_hystrix::{
    BoxError, BreakerConfig, Command, CommandError, Failure, FailureKind, HystrixEventType as Ev,
    Registry,
};

#[derive(Clone, Debug)]
struct User {
    id: u64,
    name: String,
}

#[derive(Clone, Debug)]
struct Order {
    id: u64,
    total_cents: u64,
}

/// What a command answered: its dependency's value, or its fallback's and why.
#[derive(Debug)]
enum Reply<T> {
    Fresh(T),
    Fallback(T, FailureKind),
}

/// How a simulated dependency behaves, set per scenario.
#[derive(Clone, Copy, Debug)]
enum Behaviour {
    /// Answers after this long.
    Healthy(Duration),
    /// Fails after this long.
    Failing(Duration),
    /// Does not answer for a minute.
    Hanging,
}

impl fmt::Display for Behaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Healthy(d) => write!(f, "answers in {} ms", d.as_millis()),
            Self::Failing(d) => write!(f, "fails in {} ms", d.as_millis()),
            Self::Hanging => f.write_str("hangs"),
        }
    }
}

/// A dependency's switch, shared by the example and the simulated service.
#[derive(Clone)]
struct Dependency {
    name: &'static str,
    behaviour: Arc<Mutex<Behaviour>>,
}

impl Dependency {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            behaviour: Arc::new(Mutex::new(Behaviour::Healthy(Duration::ZERO))),
        }
    }

    fn set(&self, behaviour: Behaviour) {
        *self
            .behaviour
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = behaviour;
    }

    /// Waits as the dependency would, then answers with `value` or fails.
    async fn respond<T>(&self, value: T) -> Result<T, BoxError> {
        let behaviour = *self
            .behaviour
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match behaviour {
            Behaviour::Healthy(latency) => {
                sleep(latency).await;
                Ok(value)
            }
            Behaviour::Failing(latency) => {
                sleep(latency).await;
                Err(format!("{}: connection reset by peer", self.name).into())
            }
            Behaviour::Hanging => {
                sleep(Duration::from_secs(60)).await;
                Ok(value)
            }
        }
    }
}

/// Runs `call` and measures how long it took.
async fn timed<T>(call: impl Future<Output = T>) -> (T, Duration) {
    let start = Instant::now();
    let out = call.await;
    (out, start.elapsed())
}

fn describe<T>(
    result: &Result<Reply<T>, CommandError>,
    show: impl Fn(&T) -> String,
) -> (&'static str, String) {
    match result {
        Ok(Reply::Fresh(v)) => ("ok", show(v)),
        Ok(Reply::Fallback(v, why)) => ("fallback", format!("{} (the call: {why:?})", show(v))),
        Err(e) => ("error", e.to_string()),
    }
}

/// The page, assembled from whatever each command answered, fallbacks included, and which
/// of its parts are degraded.
fn page(
    user: &Result<Reply<User>, CommandError>,
    orders: &Result<Reply<Vec<Order>>, CommandError>,
) -> String {
    let mut degraded = Vec::new();
    let name = match user {
        Ok(Reply::Fresh(user)) => user.name.as_str(),
        Ok(Reply::Fallback(user, _)) => {
            degraded.push("profile");
            user.name.as_str()
        }
        Err(_) => {
            degraded.push("profile");
            "?"
        }
    };
    let orders: &[Order] = match orders {
        Ok(Reply::Fresh(orders)) => orders,
        Ok(Reply::Fallback(orders, _)) => {
            degraded.push("orders");
            orders
        }
        Err(_) => {
            degraded.push("orders");
            &[]
        }
    };
    let cents: u64 = orders.iter().map(|o| o.total_cents).sum();
    format!(
        "{name}, {} recent orders, ${}.{:02}  [{}]",
        orders.len(),
        cents / 100,
        cents % 100,
        if degraded.is_empty() {
            "complete".to_owned()
        } else {
            format!("degraded: {}", degraded.join(", "))
        }
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let rounds = cli::Rounds::parse().rounds;
    cli::log_warnings();

    let registry = Registry::new();
    let user_service = Dependency::new("user-service");
    let order_service = Dependency::new("order-service");

    let get_user = Command::builder("GetUser")
        .group("Users")
        .timeout(Duration::from_millis(300))
        .request_view(|id: &u64| *id)
        .fallback(|id: u64, failure: Failure| async move {
            let guest = User {
                id,
                name: "guest".into(),
            };
            Ok::<_, BoxError>(Reply::Fallback(guest, failure.kind()))
        })
        .registry(&registry)
        .build()?
        .layer(service_fn({
            let dependency = user_service.clone();
            move |id: u64| {
                let dependency = dependency.clone();
                async move {
                    let user = User {
                        id,
                        name: "Ada Lovelace".into(),
                    };
                    dependency.respond(user).await.map(Reply::Fresh)
                }
            }
        }));

    let get_orders = Command::builder("GetOrders")
        .group("Orders")
        .timeout(Duration::from_millis(400))
        // Trips after 10 requests with half of them failed, so that `--rounds 6` shows it.
        .breaker(BreakerConfig {
            request_volume_threshold: 10,
            ..BreakerConfig::default()
        })
        .fallback(|(), failure: Failure| async move {
            Ok::<_, BoxError>(Reply::Fallback(Vec::new(), failure.kind()))
        })
        .registry(&registry)
        .build()?
        .layer(service_fn({
            let dependency = order_service.clone();
            move |user: u64| {
                let dependency = dependency.clone();
                async move {
                    let orders = vec![
                        Order {
                            id: user * 100 + 1,
                            total_cents: 4_250,
                        },
                        Order {
                            id: user * 100 + 2,
                            total_cents: 1_999,
                        },
                    ];
                    dependency.respond(orders).await.map(Reply::Fresh)
                }
            }
        }));

    let ms = Duration::from_millis;
    let scenarios = [
        (
            "both healthy",
            Behaviour::Healthy(ms(120)),
            Behaviour::Healthy(ms(200)),
        ),
        (
            "the order service fails",
            Behaviour::Healthy(ms(120)),
            Behaviour::Failing(ms(30)),
        ),
        (
            "the user service hangs",
            Behaviour::Hanging,
            Behaviour::Healthy(ms(200)),
        ),
        ("both down", Behaviour::Failing(ms(10)), Behaviour::Hanging),
    ];

    println!(
        "GetUser (timeout 300 ms) and GetOrders (timeout 400 ms), called at once and joined into one page."
    );
    let mut user_id = 7;
    for round in 1..=rounds {
        for (n, (name, user_behaviour, order_behaviour)) in scenarios.iter().enumerate() {
            user_service.set(*user_behaviour);
            order_service.set(*order_behaviour);
            println!();
            if rounds > 1 {
                print!("round {round}, ");
            }
            println!(
                "scenario {}: {name} (user service {user_behaviour}, order service {order_behaviour})",
                n + 1
            );

            let start = Instant::now();
            // Both calls at once; the page waits for both, whatever each answers.
            let ((user, user_took), (orders, orders_took)) = tokio::join!(
                timed(get_user.clone().oneshot(user_id)),
                timed(get_orders.clone().oneshot(user_id)),
            );
            let total = start.elapsed();

            let (outcome, detail) = describe(&user, |u: &User| format!("{} (#{})", u.name, u.id));
            println!(
                "  GetUser    {outcome:<8} {:>4} ms  {detail}",
                user_took.as_millis()
            );
            let (outcome, detail) = describe(&orders, |o: &Vec<Order>| {
                let ids: Vec<String> = o.iter().map(|o| format!("#{}", o.id)).collect();
                format!("{} orders [{}]", o.len(), ids.join(", "))
            });
            println!(
                "  GetOrders  {outcome:<8} {:>4} ms  {detail}",
                orders_took.as_millis()
            );

            println!("  page       {}", page(&user, &orders));
            println!(
                "  latency    total {} ms, the slower call {} ms; one after the other: {} ms",
                total.as_millis(),
                user_took.max(orders_took).as_millis(),
                (user_took + orders_took).as_millis()
            );
            user_id += 1;
        }
    }

    println!();
    for (command, name) in [
        (get_user.command(), "GetUser"),
        (get_orders.command(), "GetOrders"),
    ] {
        let counts = command.snapshot().cumulative;
        println!(
            "{name:<9}  {} succeeded, {} failed, {} timed out, {} short-circuited; {} answered by the fallback; circuit {}",
            counts.get(Ev::Success),
            counts.get(Ev::Failure),
            counts.get(Ev::Timeout),
            counts.get(Ev::ShortCircuited),
            counts.get(Ev::FallbackSuccess),
            command.circuit().state(),
        );
    }
    Ok(())
}
