//! `compat.gosse.*`: the goSSE profile's own keys, beside the placement
//! keys every profile has; and goSSE's own environment variables, read in
//! its terms when the profile is on.
//!
//! Passwords never stay in memory as they were given: an account in YAML
//! carries an argon2 or bcrypt hash (a plain password there is refused),
//! and the accounts goSSE read from `SSE_CLIENT_USERNAME` / `_PASSWORD`
//! (and `SSE_BROADCASTER_*`, `SSE_ADMIN_*`, the older `SSE_USERNAME` /
//! `SSE_PASSWORD`) are hashed with argon2id here, as they are read.

use std::collections::{HashMap, HashSet};

use argon2::password_hash::PasswordHasher;
use serde::{Deserialize, Serialize};

use super::load::{ConfigError, lookup};
use super::profile_mount::{ProfileMount, check_prefix};
use super::values::ListenAddr;
use super::{Config, Count, Flag, Span};
use crate::secret::Secret;

/// `compat.gosse`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GosseConfig {
    /// `SSER_COMPAT_GOSSE_ENABLED`.
    pub enabled: Flag,
    /// `SSER_COMPAT_GOSSE_PREFIX`.
    pub prefix: String,
    /// `SSER_COMPAT_GOSSE_ADDR` (goSSE listened on `SSE_PORT`, 80).
    pub addr: Option<ListenAddr>,
    /// The native application goSSE's users belong to: their tokens name
    /// it, and `/api/v1/send` with `"app"` set to it reaches them.
    pub app: String,
    /// Who may log in (`POST /login`), each with a role.
    pub accounts: Vec<GosseAccount>,
    /// The one browser origin allowed, with credentials (goSSE's
    /// `ALLOWED_ORIGIN`); empty: no cross-origin browser access.
    pub allowed_origin: Option<String>,
    /// Lifetime of a login's token and cookie (goSSE: one hour).
    pub token_ttl: Span,
    /// Send the `sse_token` cookie with `Secure` (HTTPS only).
    pub cookie_secure: Flag,
    /// The cookie's `SameSite`: `lax` (pages on the same site, any port or
    /// sub-domain), `strict`, or `none` (any site; needs `cookieSecure`).
    pub cookie_same_site: SameSite,
    /// Each event type (`GET /events?type=…`) is a topic whose id is this
    /// prefix and the type.
    pub type_topic_prefix: String,
    /// Most event types in use at once (topics with the prefix), so that
    /// clients cannot make topics without end.
    pub max_types: Count,
}

/// One goSSE account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GosseAccount {
    pub username: String,
    /// An argon2 PHC string (`$argon2id$…`, what `sser --hash-password`
    /// prints) or a bcrypt hash (`$2b$…`, as `htpasswd -B` makes).
    pub password_hash: Secret,
    pub role: GosseRole,
}

/// What an account may do: every role may log in and open streams;
/// broadcasters and admins may broadcast; admins may stop the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GosseRole {
    Client,
    Broadcaster,
    Admin,
}

/// See [`GosseConfig::cookie_same_site`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SameSite {
    Lax,
    Strict,
    None,
}

impl Default for GosseConfig {
    fn default() -> Self {
        GosseConfig {
            enabled: Flag(false),
            prefix: String::new(),
            addr: None,
            app: "gosse".to_string(),
            accounts: Vec::new(),
            allowed_origin: None,
            token_ttl: Span(std::time::Duration::from_secs(3600)),
            cookie_secure: Flag(false),
            cookie_same_site: SameSite::Lax,
            type_topic_prefix: "gosse-".to_string(),
            max_types: Count(100),
        }
    }
}

/// goSSE's account variables: (username, password, role).
const ENV_ACCOUNTS: [(&str, &str, GosseRole); 4] = [
    (
        "SSE_CLIENT_USERNAME",
        "SSE_CLIENT_PASSWORD",
        GosseRole::Client,
    ),
    (
        "SSE_BROADCASTER_USERNAME",
        "SSE_BROADCASTER_PASSWORD",
        GosseRole::Broadcaster,
    ),
    ("SSE_ADMIN_USERNAME", "SSE_ADMIN_PASSWORD", GosseRole::Admin),
    // goSSE's first versions had one account that did everything a
    // broadcaster does.
    ("SSE_USERNAME", "SSE_PASSWORD", GosseRole::Broadcaster),
];

const KEY: &str = "compat.gosse";

/// Longest type prefix, so that a type has room in a 64-character topic id.
const MAX_PREFIX_LEN: usize = 32;

/// Reads goSSE's own variables when the profile is on, and makes sure the
/// identity layer can sign its tokens. Runs before the sections are
/// checked, so the identity section sees `SSE_APP_KEY` as its secret.
pub(super) fn apply_original_terms(
    config: &mut Config,
    env: &HashMap<String, String>,
) -> Result<(), ConfigError> {
    if !config.compat.gosse.mount().enabled {
        return Ok(());
    }
    let identity = &mut config.identity;
    if identity.secret.as_ref().is_some_and(Secret::is_empty) {
        identity.secret = None;
    }
    match env.get("SSE_APP_KEY") {
        Some(key) if key.is_empty() => {
            return Err(ConfigError(
                "SSE_APP_KEY is set but empty: goSSE would sign tokens anyone can forge; set it to a long random secret, or unset it and set identity.secret (SSER_JWT_SECRET)".into(),
            ));
        }
        // identity.secret (SSER_JWT_SECRET) wins when both are set.
        Some(key) if identity.secret.is_none() => identity.secret = Some(Secret::new(key)),
        _ => {}
    }
    identity.enabled = Flag(true);
    let can_sign =
        identity.secret.is_some() || identity.keys.iter().any(|k| k.private_key.is_some());
    let verifies_only = !identity.keys.is_empty() || identity.jwks.source_count() > 0;
    if !can_sign && (verifies_only || config.app_env != "development") {
        return Err(ConfigError(
            "compat.gosse signs its logins' tokens: set SSE_APP_KEY or identity.secret (SSER_JWT_SECRET), or an identity.keys entry with a privateKey".into(),
        ));
    }
    for (field, name) in [
        ("user", &identity.claims.user),
        ("app", &identity.claims.app),
        ("device", &identity.claims.device),
        ("topics", &identity.claims.topics),
    ] {
        if name == "username" {
            return Err(ConfigError(format!(
                "identity.claims.{field} is \"username\", the claim goSSE's tokens carry the account in; choose another name while compat.gosse is on"
            )));
        }
    }
    let gosse = &mut config.compat.gosse;
    let ttl = gosse.token_ttl.0;
    let max = config.identity.mint.max_ttl.0;
    if ttl.is_zero() || ttl > max {
        return Err(ConfigError(format!(
            "compat.gosse.tokenTtl ({}) must be more than 0 and at most identity.mint.maxTtl ({})",
            humantime::format_duration(ttl),
            humantime::format_duration(max)
        )));
    }
    if gosse.allowed_origin.is_none()
        && let Some(origin) = lookup(env, "ALLOWED_ORIGIN")
    {
        gosse.allowed_origin = Some(origin.to_string());
    }
    for (user_var, password_var, role) in ENV_ACCOUNTS {
        match (lookup(env, user_var), lookup(env, password_var)) {
            (None, None) => {}
            (Some(username), Some(password)) => gosse.accounts.push(GosseAccount {
                username: username.to_string(),
                password_hash: hash_password(password)
                    .map_err(|e| ConfigError(format!("{password_var}: {e}")))?,
                role,
            }),
            _ => {
                return Err(ConfigError(format!(
                    "set both {user_var} and {password_var}, or neither"
                )));
            }
        }
    }
    Ok(())
}

/// An argon2id hash (random salt, default parameters) of `password`.
fn hash_password(password: &str) -> Result<Secret, String> {
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| Secret::new(&hash.to_string()))
        .map_err(|e| format!("cannot hash the password: {e}"))
}

impl GosseConfig {
    /// Where the profile is served.
    pub fn mount(&self) -> ProfileMount {
        ProfileMount::new(self.enabled, &self.prefix, self.addr)
    }

    /// Checks the keys that need no other section (when the profile is on).
    pub(super) fn check(&mut self) -> Result<(), ConfigError> {
        check_prefix(KEY, &mut self.prefix)?;
        if !self.mount().enabled {
            return Ok(());
        }
        if crate::identity::claims::check_name(&self.app).is_err() {
            return Err(ConfigError(format!(
                "compat.gosse.app = {:?} must be 1-256 bytes without control characters",
                self.app
            )));
        }
        if self.accounts.is_empty() {
            return Err(ConfigError(
                "compat.gosse is on but has no account: set compat.gosse.accounts, or goSSE's SSE_CLIENT_USERNAME/SSE_CLIENT_PASSWORD and SSE_BROADCASTER_USERNAME/SSE_BROADCASTER_PASSWORD".into(),
            ));
        }
        let mut seen = HashSet::new();
        for (i, account) in self.accounts.iter().enumerate() {
            if account.username.is_empty() {
                return Err(ConfigError(format!(
                    "compat.gosse.accounts[{i}].username must not be empty"
                )));
            }
            if !seen.insert(account.username.as_str()) {
                return Err(ConfigError(format!(
                    "compat.gosse.accounts[{i}].username {:?} is given twice (accounts and goSSE's SSE_*_USERNAME variables share one list)",
                    account.username
                )));
            }
            check_hash(account.password_hash.expose()).map_err(|reason| {
                ConfigError(format!("compat.gosse.accounts[{i}].passwordHash {reason}"))
            })?;
        }
        self.allowed_origin = self
            .allowed_origin
            .take()
            .map(|o| o.trim().trim_end_matches('/').to_string())
            .filter(|o| !o.is_empty());
        if let Some(origin) = &self.allowed_origin {
            check_origin(origin).map_err(|reason| {
                ConfigError(format!(
                    "compat.gosse.allowedOrigin (ALLOWED_ORIGIN) = {origin:?} {reason}"
                ))
            })?;
        }
        if self.cookie_same_site == SameSite::None && !self.cookie_secure.0 {
            return Err(ConfigError(
                "compat.gosse.cookieSameSite none needs compat.gosse.cookieSecure: true (browsers drop a SameSite=None cookie without Secure)".into(),
            ));
        }
        let prefix = &self.type_topic_prefix;
        if prefix.is_empty()
            || prefix.len() > MAX_PREFIX_LEN
            || !crate::model::TopicId::is_valid(prefix)
        {
            return Err(ConfigError(format!(
                "compat.gosse.typeTopicPrefix = {prefix:?} must be 1-{MAX_PREFIX_LEN} characters of A-Z a-z 0-9 _ -"
            )));
        }
        if self.max_types.0 == 0 {
            return Err(ConfigError(
                "compat.gosse.maxTypes must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// An argon2 PHC string or a bcrypt hash, well-formed; never a password.
fn check_hash(text: &str) -> Result<(), &'static str> {
    const WHAT: &str = "must be an argon2 hash ($argon2id$…, from `sser --hash-password`) or a bcrypt hash ($2b$…, from `htpasswd -nB`), never a plain password";
    if text.starts_with("$argon2") {
        return argon2::password_hash::phc::PasswordHash::new(text)
            .map(|_| ())
            .map_err(|_| WHAT);
    }
    if ["$2a$", "$2b$", "$2x$", "$2y$"]
        .iter()
        .any(|p| text.starts_with(p))
    {
        return text
            .parse::<bcrypt::HashParts>()
            .map(|_| ())
            .map_err(|_| WHAT);
    }
    Err(WHAT)
}

/// A browser origin: `http(s)://host[:port]`, nothing after it. `*` would
/// give every web page the user's cookie, so it is refused.
fn check_origin(origin: &str) -> Result<(), &'static str> {
    if origin == "*" {
        return Err(
            "is a wildcard: the sse_token cookie needs one named origin (as goSSE's README says, a wildcard won't work)",
        );
    }
    let url =
        url::Url::parse(origin).map_err(|_| "is not an origin such as https://app.example.com")?;
    let bare = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() || !bare {
        return Err("must be scheme://host[:port] only, such as https://app.example.com");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, GosseRole, env};

    fn load(pairs: &[(&str, &str)]) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        Config::from_sources(dir.path(), &env(pairs)).map_err(|e| e.to_string())
    }

    #[test]
    fn off_by_default_and_original_variables_alone_change_nothing() {
        let c = load(&[("SSE_APP_KEY", "k"), ("SSE_CLIENT_USERNAME", "u")]).unwrap();
        assert!(!c.compat.gosse.mount().enabled);
        assert!(
            c.identity.secret.is_none(),
            "SSE_APP_KEY is read only for goSSE"
        );
    }

    #[test]
    fn original_variables_become_hashed_accounts_and_the_key() {
        let c = load(&[
            ("SSER_COMPAT_GOSSE_ENABLED", "true"),
            ("SSE_APP_KEY", "0123456789abcdef0123456789abcdef"),
            ("SSE_CLIENT_USERNAME", "front"),
            ("SSE_CLIENT_PASSWORD", "front-pw"),
            ("SSE_ADMIN_USERNAME", "root"),
            ("SSE_ADMIN_PASSWORD", "root-pw"),
            ("ALLOWED_ORIGIN", "https://app.example.com/"),
        ])
        .unwrap();
        let g = &c.compat.gosse;
        assert!(c.identity.is_on());
        assert!(
            c.identity
                .secret
                .as_ref()
                .unwrap()
                .matches("0123456789abcdef0123456789abcdef")
        );
        let roles: Vec<_> = g
            .accounts
            .iter()
            .map(|a| (a.username.as_str(), a.role))
            .collect();
        assert_eq!(
            roles,
            [("front", GosseRole::Client), ("root", GosseRole::Admin)]
        );
        for account in &g.accounts {
            let hash = account.password_hash.expose();
            assert!(hash.starts_with("$argon2id$"), "{hash}");
            // Not "pw": a random salt in base64 holds that pair about
            // once in sixty runs, which made this test flaky.
            assert!(!hash.contains("front-pw") && !hash.contains("root-pw"));
        }
        assert_eq!(g.allowed_origin.as_deref(), Some("https://app.example.com"));
        let printed = serde_json::to_string(&c).unwrap();
        assert!(!printed.contains("$argon2") && !printed.contains("front-pw"));
    }

    #[test]
    fn refuses_an_empty_key_plain_passwords_and_half_accounts() {
        let on = ("SSER_COMPAT_GOSSE_ENABLED", "true");
        let user = ("SSE_CLIENT_USERNAME", "front");
        let password = ("SSE_CLIENT_PASSWORD", "pw");
        let err = load(&[on, ("SSE_APP_KEY", ""), user, password]).unwrap_err();
        assert!(err.contains("SSE_APP_KEY is set but empty"), "{err}");
        let err = load(&[on, ("APP_ENV", "production"), user, password]).unwrap_err();
        assert!(err.contains("set SSE_APP_KEY or identity.secret"), "{err}");
        let err = load(&[on, ("SSE_APP_KEY", "k"), user]).unwrap_err();
        assert!(err.contains("SSE_CLIENT_PASSWORD"), "{err}");
        let err = load(&[on, ("SSE_APP_KEY", "k")]).unwrap_err();
        assert!(err.contains("no account"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("base.yaml"),
            "compat:\n  gosse:\n    enabled: true\n    accounts:\n      - {username: a, passwordHash: hunter2, role: client}\n",
        )
        .unwrap();
        let err = Config::from_sources(dir.path(), &env(&[("SSE_APP_KEY", "k")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("compat.gosse.accounts[0].passwordHash"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn accepts_argon2_and_bcrypt_hashes_and_checks_the_origin() {
        let dir = tempfile::tempdir().unwrap();
        let bcrypt = bcrypt::hash("pw", 4).unwrap();
        std::fs::write(
            dir.path().join("base.yaml"),
            format!(
                "compat:\n  gosse:\n    enabled: true\n    allowedOrigin: '*'\n    accounts:\n      - {{username: a, passwordHash: '{bcrypt}', role: broadcaster}}\n"
            ),
        )
        .unwrap();
        let err = Config::from_sources(dir.path(), &env(&[("SSE_APP_KEY", "k")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("wildcard"), "{err}");
        let c = Config::from_sources(
            dir.path(),
            &env(&[
                ("SSE_APP_KEY", "k"),
                ("SSER_COMPAT_GOSSE_ALLOWED_ORIGIN", "http://127.0.0.1:3000"),
            ]),
        )
        .unwrap();
        assert_eq!(c.compat.gosse.accounts[0].role, GosseRole::Broadcaster);
        let err = load(&[
            ("SSER_COMPAT_GOSSE_ENABLED", "true"),
            ("SSE_APP_KEY", "k"),
            ("SSE_USERNAME", "a"),
            ("SSE_PASSWORD", "b"),
            ("SSER_COMPAT_GOSSE_ALLOWED_ORIGIN", "https://a.example/path"),
        ])
        .unwrap_err();
        assert!(err.contains("scheme://host"), "{err}");
        let err = load(&[
            ("SSER_COMPAT_GOSSE_ENABLED", "true"),
            ("SSE_APP_KEY", "k"),
            ("SSE_USERNAME", "a"),
            ("SSE_PASSWORD", "b"),
            ("SSER_COMPAT_GOSSE_TOKEN_TTL", "30d"),
        ])
        .unwrap_err();
        assert!(err.contains("identity.mint.maxTtl"), "{err}");
    }
}
