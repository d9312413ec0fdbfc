//! Configuration loading, for any YAML files and environment.
//!
//! The input is text in three parts separated by NUL bytes:
//! `base.yaml` NUL `<APP_ENV>.yaml` NUL environment (`NAME=value` lines,
//! `APP_ENV` among them). The files are written to a private directory and
//! loaded through `Config::from_sources`, the loader `main` uses, so YAML
//! parsing, `${VAR:default}` placeholders, environment overrides, value
//! parsing and validation all run. It must never panic, and every error must
//! name what was wrong: a configuration key, an environment variable,
//! `APP_ENV` or the file that does not parse.
#![no_main]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{LazyLock, OnceLock};

use libfuzzer_sys::fuzz_target;
use sser::config::{Config, ENV_VARS};

/// The configuration's top-level sections (`server`, `pubsub`, ...), read
/// from the type itself so a new section needs no change here; an error
/// names its key's path from one of them.
static SECTIONS: LazyLock<Vec<String>> =
    LazyLock::new(|| match serde_json::to_value(Config::default()) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => panic!("Config serialises to an object"),
    });

fuzz_target!(|input: &[u8]| {
    let mut parts = input.splitn(3, |&b| b == 0);
    let base = parts.next().unwrap_or_default();
    let env_yaml = parts.next();
    let env_text = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let env: HashMap<String, String> = env_text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();

    let dir = scratch_dir();
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("scratch directory");
    std::fs::write(dir.join("base.yaml"), base).expect("write base.yaml");
    let app_env = env
        .get("APP_ENV")
        .filter(|v| !v.is_empty())
        .map_or("development", String::as_str);
    // A name the loader will refuse (or cannot be a file name) gets no file.
    if let Some(text) = env_yaml
        && !app_env.contains(['/', '\\', '\0'])
        && !app_env.starts_with('.')
    {
        let _ = std::fs::write(dir.join(format!("{app_env}.yaml")), text);
    }

    match Config::from_sources(dir, &env) {
        Ok(config) => {
            // What validation promises the rest of the server.
            assert!(config.pubsub.api_access_token.is_some());
            assert!(config.pubsub.metrics_access_token.is_some());
            assert!((8192..=1 << 20).contains(&config.server.max_header_size.0));
            assert!(!config.pubsub.tick_frequency.0.is_zero());
        }
        Err(e) => {
            let message = e.to_string();
            let what = message
                .strip_prefix("configuration error: ")
                .unwrap_or_else(|| panic!("unexpected error shape: {message}"));
            let names_something = SECTIONS.iter().any(|s| what.starts_with(s.as_str()))
                || what.starts_with("APP_ENV")
                || what.starts_with(&*dir.to_string_lossy())
                || ENV_VARS.iter().any(|(var, _)| what.contains(var));
            assert!(names_something, "error names no key: {message}");
        }
    }
});

/// One directory per fuzzing process, rewritten for every input; in memory
/// (`/dev/shm`) where there is one, since creating files on a journaling
/// file system made the disk, not the loader, the bottleneck (240 runs/s).
fn scratch_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = PathBuf::from("/dev/shm");
        let parent = if shm.is_dir() {
            shm
        } else {
            std::env::temp_dir()
        };
        parent.join(format!("sser-fuzz-config-{}", std::process::id()))
    })
}
