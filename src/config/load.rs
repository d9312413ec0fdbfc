//! How the layers are read: the `.env` file, the YAML files with SSER's
//! `${VAR}` / `${VAR:default}` placeholders, environment variables taken
//! literally, and figment's errors turned into one line naming the key.
//!
//! The order of the layers is decided in `mod.rs`; this file only reads them.

use std::collections::HashMap;
use std::path::Path;

use figment::Figment;
use figment::providers::{Format, Serialized, Yaml};
use figment::value::{Dict, Value};

/// Why the configuration could not be loaded. The message names the key (and
/// the environment variable, where one sets it).
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

/// The environment the configuration sees: the process environment, over
/// the `.env` file in the working directory (which fills in only what the
/// real environment leaves unset).
pub(super) fn environment() -> Result<HashMap<String, String>, ConfigError> {
    let mut env: HashMap<String, String> = HashMap::new();
    match dotenvy::from_path_iter(".env") {
        Ok(iter) => {
            for item in iter {
                let (k, v) = item.map_err(|e| ConfigError(format!(".env: {e}")))?;
                env.insert(k, v);
            }
        }
        Err(e) if e.not_found() => {}
        Err(e) => return Err(ConfigError(format!(".env: {e}"))),
    }
    env.extend(std::env::vars());
    Ok(env)
}

/// Merges `base.yaml`, then `<app_env>.yaml`, from `config_dir` (each only
/// if present) over `figment`.
pub(super) fn merge_files(
    mut figment: Figment,
    config_dir: &Path,
    app_env: &str,
    env: &HashMap<String, String>,
) -> Result<Figment, ConfigError> {
    for file in ["base.yaml".to_string(), format!("{app_env}.yaml")] {
        if let Some(dict) = read_yaml(&config_dir.join(&file), env)? {
            figment = figment.merge(Serialized::defaults(dict));
        }
    }
    Ok(figment)
}

/// Merges every set variable of `env_vars` (name → key) over `figment`, as
/// literal text.
pub(super) fn merge_env(
    mut figment: Figment,
    env: &HashMap<String, String>,
    env_vars: &[(&'static str, &'static str)],
) -> Figment {
    for (var, key) in env_vars {
        if let Some(value) = lookup(env, var) {
            figment = figment.merge((*key, value));
        }
    }
    figment
}

/// Reads one YAML file (a missing file is fine) and expands SSER-style
/// `${VAR}` / `${VAR:default}` placeholders in its string values. Expansion
/// happens after parsing, so the substituted text is never re-read as YAML.
fn read_yaml(path: &Path, env: &HashMap<String, String>) -> Result<Option<Dict>, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ConfigError(format!("{}: {e}", path.display()))),
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    let dict: Dict = Figment::from(Yaml::string(&text))
        .extract()
        .map_err(|e| ConfigError(format!("{}: {}", path.display(), e)))?;
    Ok(Some(
        dict.into_iter()
            .map(|(k, v)| (k, expand_value(v, env)))
            .collect(),
    ))
}

/// An environment variable's value; empty counts as unset, as in SSER's
/// `.env` template where unused names are left blank.
pub(super) fn lookup<'a>(env: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    env.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

fn expand_value(value: Value, env: &HashMap<String, String>) -> Value {
    match value {
        Value::String(tag, s) => Value::String(tag, expand_placeholders(&s, env)),
        Value::Dict(tag, d) => Value::Dict(
            tag,
            d.into_iter()
                .map(|(k, v)| (k, expand_value(v, env)))
                .collect(),
        ),
        Value::Array(tag, a) => {
            Value::Array(tag, a.into_iter().map(|v| expand_value(v, env)).collect())
        }
        other => other,
    }
}

/// `${NAME}` → the variable or ""; `${NAME:default}` → the variable or `default`.
fn expand_placeholders(s: &str, env: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        out.push_str(&rest[..start]);
        let inner = &rest[start + 2..start + len];
        let (name, default) = inner.split_once(':').unwrap_or((inner, ""));
        out.push_str(lookup(env, name.trim()).unwrap_or(default));
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out
}

/// Turns figment's error into one line that names the configuration key and,
/// where one sets it, the environment variable.
pub(super) fn describe(e: &figment::Error, env_vars: &[(&str, &str)]) -> ConfigError {
    let key = e.path.join(".");
    let var = env_vars
        .iter()
        .filter(|(_, k)| *k == key)
        .map(|(v, _)| *v)
        .next();
    let what = e.kind.to_string();
    ConfigError(match (key.is_empty(), var) {
        (true, _) => what,
        (false, Some(var)) => format!("{key} ({var}): {what}"),
        (false, None) => format!("{key}: {what}"),
    })
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, env};

    #[test]
    fn env_values_are_literal_and_win() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("base.yaml"),
            "server:\n  addr: ${PORT:7000}\npubsub:\n  apiAccessToken: from-yaml\n  historySize: 5\n",
        )
        .unwrap();
        let c = Config::from_sources(
            dir.path(),
            &env(&[
                ("SSER_API_ACCESS_TOKEN", "a#b 007"),
                ("SSER_METRICS_ACCESS_TOKEN", "007"),
                ("SSER_LETSENCYRPT_EMAIL", "me@example.com"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.addr.0.port(), 7000);
        assert!(c.pubsub.api_access_token.unwrap().matches("a#b 007"));
        assert!(c.pubsub.metrics_access_token.unwrap().matches("007"));
        assert_eq!(c.pubsub.history_size.0, 5);
        assert_eq!(c.server.ssl.letsencrypt_email, "me@example.com");
    }

    #[test]
    fn placeholder_uses_environment_and_env_file_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("base.yaml"),
            "server:\n  addr: ${PORT:7000}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("staging.yaml"),
            "server:\n  addr: 127.0.0.1:7100\n",
        )
        .unwrap();
        let c = Config::from_sources(
            dir.path(),
            &env(&[
                ("APP_ENV", "staging"),
                ("SSER_API_ACCESS_TOKEN", "x"),
                ("SSER_METRICS_ACCESS_TOKEN", "y"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.addr.to_string(), "127.0.0.1:7100");
        let c = Config::from_sources(
            dir.path(),
            &env(&[
                ("APP_ENV", "staging"),
                ("PORT", ":7200"),
                ("SSER_API_ACCESS_TOKEN", "x"),
                ("SSER_METRICS_ACCESS_TOKEN", "y"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.addr.to_string(), "0.0.0.0:7200");
    }

    #[test]
    fn bad_values_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let err = Config::from_sources(dir.path(), &env(&[("PORT", "eighty")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.addr (PORT)"), "{err}");
        let err = Config::from_sources(dir.path(), &env(&[("SSER_SSL_ENABLED", "maybe")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("SSER_SSL_ENABLED"), "{err}");
        let err = Config::from_sources(dir.path(), &env(&[("SSER_MAX_JSON_DEPTH", "0")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("server.maxJsonDepth (SSER_MAX_JSON_DEPTH)"),
            "{err}"
        );
    }
}
