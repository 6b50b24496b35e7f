//! What the small examples share: their one option, and their warnings on stderr.
#![allow(dead_code, unreachable_pub)]

const ABOUT: &str = "An example of tower-hystrix: what it shows is at the head of its source.";

/// `--seconds N`: how long the example runs (each has its default).
#[derive(clap::Parser)]
#[command(about = ABOUT)]
pub struct Seconds {
    /// How long to run, in seconds.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub seconds: Option<u64>,
}

/// `--rounds N`: how many times the example runs its scenarios (default 1).
#[derive(clap::Parser)]
#[command(about = ABOUT)]
pub struct Rounds {
    /// How many times to run each scenario.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub rounds: u64,
}

/// Sends the library's warnings (a refused reload, a tripped circuit) to stderr.
pub fn log_warnings() {
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_max_level(tracing::Level::WARN)
        .init();
}
