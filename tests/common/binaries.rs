//! The binaries cargo built for this test run (examples, the workspace's binaries), found
//! under `target/<profile>/`, and refused when older than their sources, so that a test never
//! checks old code.
//!
//! `cargo test` builds them, but `cargo test --test NAME` and `cargo test --all-targets`
//! (which builds examples as test harnesses only) do not; `scripts/test.sh` runs
//! `cargo build --workspace --examples --bins --all-features` first.
#![allow(dead_code, unreachable_pub)]

use std::{
    path::{Path, PathBuf},
    time::SystemTime,
};

/// The library sources every binary of the workspace is built from.
const LIBRARIES: [&str; 5] = [
    "src",
    "core/src",
    "breaker/src",
    "bulkhead/src",
    "stream/src",
];

/// `target/<profile>`: a test is `target/<profile>/deps/<name>-<hash>`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("unexpected test binary location: {}", exe.display()))
        .to_path_buf()
}

/// The newest modification time of the Rust file `path`, or of the Rust files under it.
fn newest(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.is_dir() {
        std::fs::read_dir(path)
            .ok()?
            .filter_map(|entry| newest(&entry.ok()?.path()))
            .max()
    } else {
        (path.extension()? == "rs").then(|| meta.modified().unwrap())
    }
}

/// `target/<profile>/<path>`, built from `sources` (paths from the workspace's root, beside
/// the libraries) as they are now.
pub fn built(path: &str, sources: &[&str]) -> PathBuf {
    let binary = profile_dir().join(format!("{path}{}", std::env::consts::EXE_SUFFIX));
    let built = match std::fs::metadata(&binary) {
        Ok(meta) => meta.modified().unwrap(),
        Err(_) => panic!(
            "{} is missing: run `cargo build --workspace --examples --bins --all-features` \
             first (scripts/test.sh does)",
            binary.display()
        ),
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for source in sources.iter().chain(&LIBRARIES) {
        let source = root.join(source);
        assert!(
            newest(&source).is_none_or(|t| t <= built),
            "{} is older than {}: run `cargo build --workspace --examples --bins \
             --all-features` first",
            binary.display(),
            source.display()
        );
    }
    binary
}

/// The example `name`: `examples/NAME.rs` or `examples/NAME/`, and the shared modules it
/// includes (`#[path = "common/..."]`).
pub fn example(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let single = format!("examples/{name}.rs");
    let dir = format!("examples/{name}");
    let mut sources = vec![single.clone(), dir.clone()];
    for (file, base) in [
        (single.clone(), "examples".to_owned()),
        (format!("{dir}/main.rs"), dir.clone()),
    ] {
        let Ok(text) = std::fs::read_to_string(root.join(&file)) else {
            continue;
        };
        for included in text.split("#[path = \"").skip(1) {
            if let Some(path) = included.split('"').next() {
                sources.push(format!("{base}/{path}"));
            }
        }
    }
    let sources: Vec<&str> = sources.iter().map(String::as_str).collect();
    built(&dir, &sources)
}
