//! The dashboard's configuration file (`Config::from_toml`), and its allow-list entries.
//!
//! Checked: no panic; relative paths are taken from the file's directory.
#![no_main]

use hystrix_dashboard::{Config, allow::AllowList};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = Config::from_toml(text, "/etc/hystrix/dashboard.toml") else {
        return;
    };
    for path in [&config.turbine_config, &config.ca_file]
        .into_iter()
        .flatten()
    {
        assert!(
            path.is_absolute(),
            "{} was not made absolute",
            path.display()
        );
    }
    if let Ok(list) = AllowList::parse(&config.allow) {
        assert!(list.origins().len() <= config.allow.len());
    }
});
