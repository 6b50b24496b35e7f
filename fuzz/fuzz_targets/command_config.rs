//! tower-hystrix's configuration file through a `Registry`: loaded, the commands it names
//! built under it, then a second file (after a `\n%%\n` line, or the same one) applied to
//! those commands, as a reload does.
//!
//! Checked: no panic; a file that loads lets every command it names be built (the registry
//! checks tables of commands not built yet so that a bad value is refused at load); a file
//! loads into a registry holding built commands exactly when it loads into an empty one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_hystrix::{Command, Registry};

/// The most commands built per input.
const MAX_COMMANDS: usize = 8;

fn command_keys(text: &str) -> Vec<String> {
    let Ok(table) = toml::from_str::<toml::Table>(text) else {
        return Vec::new();
    };
    match table.get("command") {
        Some(toml::Value::Table(commands)) => commands.keys().take(MAX_COMMANDS).cloned().collect(),
        _ => Vec::new(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (first, second) = text.split_once("\n%%\n").unwrap_or((text, text));
    let registry = Registry::new();
    if registry.load_str(first).is_err() {
        return;
    }
    let mut keys = command_keys(first);
    keys.push("Fuzz".into());
    for key in &keys {
        if let Err(e) = Command::builder::<(), ()>(key.as_str())
            .registry(&registry)
            .build()
        {
            panic!("{key} cannot be built under a file that loaded: {e}");
        }
    }
    let fresh = Registry::new().load_str(second);
    let applied = registry.load_str(second);
    assert_eq!(
        fresh.is_ok(),
        applied.is_ok(),
        "loaded into an empty registry: {fresh:?}; with commands built: {applied:?}"
    );
});
