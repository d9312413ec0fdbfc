//! The start-up check that no two claimants route one path on one
//! listener: a profile against sser's own routes on the main listener, and
//! profiles against each other wherever they share a listener. axum would
//! panic on such a router; this names both claimants and the keys to
//! change instead.
//!
//! Paths compare in axum's terms: `/a/{x}` and `/a/{y}` are one route
//! (parameter names do not matter), `/a/{x}` and `/a/b` are two.

use std::net::SocketAddr;

use super::{About, CompatError, Placement};

/// Which listener a path is routed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listener {
    Main,
    /// An own address; profiles on port 0 never share (`index` tells them
    /// apart).
    Own {
        addr: SocketAddr,
        index: usize,
    },
}

impl Listener {
    fn describe(&self) -> String {
        match self {
            Listener::Main => "the main listener (server.addr)".to_string(),
            Listener::Own { addr, .. } => format!("the listener on {addr}"),
        }
    }
}

/// Who routes a path.
#[derive(Debug, Clone, Copy)]
enum Claimant {
    /// sser's own route (`http::paths`).
    Native(&'static str),
    Profile(About),
}

struct Claim {
    listener: Listener,
    /// The path as routed (prefix included), parameters unnamed.
    shape: String,
    /// The path as written, for messages.
    path: String,
    claimant: Claimant,
}

/// Checks the profiles' placements against the main listener's `native`
/// paths and each other.
pub(super) fn check(
    profiles: &[(About, &Placement)],
    native: &[&'static str],
    main_addr: SocketAddr,
) -> Result<(), CompatError> {
    let mut claims: Vec<Claim> = native
        .iter()
        .map(|path| Claim {
            listener: Listener::Main,
            shape: shape(path),
            path: path.to_string(),
            claimant: Claimant::Native(path),
        })
        .collect();
    for (index, (about, placement)) in profiles.iter().enumerate() {
        let (listener, prefix) = match placement {
            Placement::Main { prefix } => (Listener::Main, prefix.as_str()),
            Placement::Own { addr } if *addr == main_addr && addr.port() != 0 => {
                return Err(CompatError::Conflict(format!(
                    "{key}.addr ({env}_ADDR) is {addr}, the main listener's own address (server.addr / PORT): to serve {name} there, unset {key}.addr and set {key}.enabled (and {key}.prefix if its paths clash)",
                    key = about.key,
                    env = about.env,
                    name = about.name,
                )));
            }
            Placement::Own { addr } => {
                let index = if addr.port() == 0 { index } else { 0 };
                (Listener::Own { addr: *addr, index }, "")
            }
        };
        for path in about.paths {
            let full = routed(prefix, path);
            claims.push(Claim {
                listener,
                shape: shape(&full),
                path: full,
                claimant: Claimant::Profile(*about),
            });
        }
    }
    for (i, later) in claims.iter().enumerate() {
        let Some(earlier) = claims[..i]
            .iter()
            .find(|c| c.listener == later.listener && c.shape == later.shape)
        else {
            continue;
        };
        return Err(CompatError::Conflict(message(earlier, later)));
    }
    Ok(())
}

/// Where `path` ends up under `prefix` (axum's `nest`: `/` is the prefix
/// itself).
fn routed(prefix: &str, path: &str) -> String {
    match (prefix, path) {
        ("", path) => path.to_string(),
        (prefix, "/") => prefix.to_string(),
        (prefix, path) => format!("{prefix}{path}"),
    }
}

/// `path` with its parameters unnamed: `/a/{x}/{*rest}` → `/a/{}/{*}`.
fn shape(path: &str) -> String {
    path.split('/')
        .map(|segment| match segment.strip_prefix('{') {
            Some(param) if param.starts_with('*') => "{*}",
            Some(_) => "{}",
            None => segment,
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn message(earlier: &Claim, later: &Claim) -> String {
    let Claimant::Profile(about) = later.claimant else {
        // Native routes come first and never clash with each other.
        return format!("{} is routed twice", later.path);
    };
    let fix = |a: &About| {
        format!(
            "give {key} a prefix ({key}.prefix / {env}_PREFIX) or its own address ({key}.addr / {env}_ADDR)",
            key = a.key,
            env = a.env
        )
    };
    let on = later.listener.describe();
    match earlier.claimant {
        Claimant::Native(path) => {
            let dashboard = matches!(path, "/" | "/favicon.ico" | "/assets/{file}");
            format!(
                "{key} ({name}) claims {full} on {on}, which sser itself serves ({path}{what}): {fix}{off}",
                key = about.key,
                name = about.name,
                full = later.path,
                what = if dashboard { ", the dashboard" } else { "" },
                fix = fix(&about),
                off = if dashboard {
                    ", or turn the dashboard off (server.dashboard / SSER_DASHBOARD_ENABLED = false)"
                } else {
                    ""
                },
            )
        }
        Claimant::Profile(first) => format!(
            "{a} ({a_name}) and {b} ({b_name}) both claim {path} on {on}: {fix}",
            a = first.key,
            a_name = first.name,
            b = about.key,
            b_name = about.name,
            path = later.path,
            fix = fix(&about),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: About = About {
        name: "a-seed",
        key: "compat.a",
        env: "SSER_COMPAT_A",
        paths: &["/", "/health", "/events/{id}"],
        own_cors: false,
    };
    const B: About = About {
        name: "b-seed",
        key: "compat.b",
        env: "SSER_COMPAT_B",
        paths: &["/events/{topic}", "/send"],
        own_cors: false,
    };
    const C: About = About {
        name: "c-seed",
        key: "compat.c",
        env: "SSER_COMPAT_C",
        paths: &["/pubsubs/{x}"],
        own_cors: false,
    };
    const NATIVE: &[&str] = &["/", "/healthz", "/api/v1/pubsubs/{id}"];

    fn main_at(prefix: &str) -> Placement {
        Placement::Main {
            prefix: prefix.to_string(),
        }
    }

    fn own(addr: &str) -> Placement {
        Placement::Own {
            addr: addr.parse().unwrap(),
        }
    }

    fn run(profiles: &[(About, Placement)]) -> Result<(), String> {
        let placed: Vec<(About, &Placement)> = profiles.iter().map(|(a, p)| (*a, p)).collect();
        check(&placed, NATIVE, "127.0.0.1:8889".parse().unwrap()).map_err(|e| e.to_string())
    }

    #[test]
    fn a_profile_at_the_root_clashes_with_the_dashboard() {
        let err = run(&[(A, main_at(""))]).unwrap_err();
        assert!(
            err.contains("compat.a (a-seed) claims / on the main listener"),
            "{err}"
        );
        assert!(
            err.contains("compat.a.prefix / SSER_COMPAT_A_PREFIX"),
            "{err}"
        );
        assert!(err.contains("compat.a.addr / SSER_COMPAT_A_ADDR"), "{err}");
        assert!(err.contains("server.dashboard"), "{err}");
        run(&[(A, main_at("/a"))]).unwrap();
        run(&[(A, own("127.0.0.1:0"))]).unwrap();
        // The prefix itself can hit a native path.
        let err = run(&[(A, main_at("/healthz"))]).unwrap_err();
        assert!(err.contains("claims /healthz"), "{err}");
    }

    #[test]
    fn parameters_do_not_tell_routes_apart() {
        let err = run(&[(A, main_at("/x")), (B, main_at("/x"))]).unwrap_err();
        assert!(
            err.contains("compat.a (a-seed) and compat.b (b-seed) both claim /x/events/{topic}"),
            "{err}"
        );
        assert!(err.contains("give compat.b a prefix"), "{err}");
        let err = run(&[(C, main_at("/api/v1"))]).unwrap_err();
        assert!(err.contains("/api/v1/pubsubs/{id}"), "{err}");
        run(&[(A, main_at("/x")), (B, main_at("/y"))]).unwrap();
    }

    #[test]
    fn own_listeners_clash_only_at_one_address() {
        let err = run(&[(A, own("127.0.0.1:9001")), (B, own("127.0.0.1:9001"))]).unwrap_err();
        assert!(err.contains("on the listener on 127.0.0.1:9001"), "{err}");
        run(&[(A, own("127.0.0.1:9001")), (B, own("127.0.0.1:9002"))]).unwrap();
        // Port 0: each its own listener.
        run(&[(A, own("127.0.0.1:0")), (B, own("127.0.0.1:0"))]).unwrap();
        // Apart from the main listener, the root is free.
        run(&[(A, own("127.0.0.1:9001")), (B, main_at(""))]).unwrap();
        let err = run(&[(A, own("127.0.0.1:8889"))]).unwrap_err();
        assert!(err.contains("the main listener's own address"), "{err}");
    }

    #[test]
    fn shapes_and_prefixes() {
        assert_eq!(shape("/a/{x}/b/{*rest}"), "/a/{}/b/{*}");
        assert_eq!(routed("", "/"), "/");
        assert_eq!(routed("/ns", "/"), "/ns");
        assert_eq!(routed("/ns", "/sse"), "/ns/sse");
    }
}
