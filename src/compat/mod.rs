//! Compatibility profiles: the APIs of the other seeds (sse-notification-
//! service, goSSE, go-sse-broker) served by this server, so that a team
//! moves by changing a host name and a config file, not its clients.
//!
//! A profile is a thin HTTP skin over the native model: its tokens become
//! `identity::Identity`s, its streams are the hub's identity connections
//! (`hub::Hub::connect`), its sends are `hub::Hub::send`, its listings come
//! from the registry. No profile has a hub or delivery logic of its own.
//!
//! # Adding a profile
//!
//! A profile module `compat/<name>/` exposes three things:
//! - `pub struct <Name>Settings`: its tunables, built by `lib.rs` from
//!   `compat.<name>.*` (only `lib.rs` reads `Config`);
//! - `pub const ABOUT: About`: its name, config key, environment prefix and
//!   the axum paths it routes ([`About::paths`], for the conflict check);
//! - `pub fn router(ctx: Context, settings: <Name>Settings) -> axum::Router`
//!   with those routes and no fallback (the listener supplies the JSON 404).
//!
//! Then: a field in [`Profiles`], one `plan.push(…)` line in [`mount`], its
//! config file `config/compat_<name>.rs` with the placement keys
//! (`config::ProfileMount`), and its rows in `lib.rs`'s `compat_profiles`.
//!
//! # Where a profile is served
//!
//! Each enabled profile has a [`Placement`]: on the main listener under a
//! prefix (`""`: the original's exact paths at the root), or on a listener
//! of its own (`compat.<name>.addr`), served by the same accept loop
//! (`serve::serve`) with the same connection caps, timeouts, middleware and
//! graceful shutdown as the main one. Profiles given the same address share
//! one listener. Before anything is bound, every (listener, path) claimed by
//! a profile is checked against sser's own routes and the other profiles
//! ([`conflicts`]): a clash stops start-up with a message naming both
//! claimants and the keys to change.

mod conflicts;
pub mod go_sse_broker;
pub mod gosse;
pub mod notification_service;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::http::{self, AppState, HttpSettings};
use crate::serve;

/// What every profile's handlers reach: the native server's state (hub,
/// identity tokens, API token, presence, metrics), shared, not copied.
#[derive(Clone)]
pub struct Context {
    pub state: Arc<AppState>,
    /// The server's shutdown: cancelling it stops the server gracefully
    /// (goSSE's `/admin/stop`).
    pub shutdown: CancellationToken,
}

/// Who a profile is, for the conflict check and start-up messages.
#[derive(Debug, Clone, Copy)]
pub struct About {
    /// The original's name (`sse-notification-service`), for logs.
    pub name: &'static str,
    /// Its configuration section (`compat.notificationService`).
    pub key: &'static str,
    /// Its environment prefix (`SSER_COMPAT_NOTIFICATION_SERVICE`).
    pub env: &'static str,
    /// Every path its router routes, in axum syntax (`/connections/{app}`).
    pub paths: &'static [&'static str],
    /// Its router answers CORS itself (with the original's rules), so the
    /// listener's CORS layer leaves its paths alone
    /// (`http::HttpSettings::cors_exempt`). Only for paths without `{…}`.
    pub own_cors: bool,
}

/// Where an enabled profile is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// On the main listener, its paths under `prefix` (`""` or `/x`, no
    /// trailing slash; checked by `config`).
    Main { prefix: String },
    /// On a listener of its own, at its exact paths.
    Own { addr: SocketAddr },
}

/// An enabled profile: where, and with what settings.
#[derive(Debug, Clone)]
pub struct Enabled<S> {
    pub placement: Placement,
    pub settings: S,
}

/// Every profile, `None` when disabled (`lib.rs` fills it from `compat.*`).
#[derive(Debug, Clone, Default)]
pub struct Profiles {
    pub notification_service: Option<Enabled<notification_service::NotificationServiceSettings>>,
    pub go_sse_broker: Option<Enabled<go_sse_broker::GoSseBrokerSettings>>,
    pub gosse: Option<Enabled<gosse::GosseSettings>>,
}

/// Why the profiles could not be mounted (a start-up error).
#[derive(Debug, thiserror::Error)]
pub enum CompatError {
    /// Two claimants of one path on one listener; the message names both
    /// and the keys to change.
    #[error("{0}")]
    Conflict(String),
    #[error("cannot listen on {addr} ({key}.addr / {env}_ADDR): {source}")]
    Bind {
        addr: SocketAddr,
        key: &'static str,
        env: &'static str,
        source: std::io::Error,
    },
}

/// One profile ready to mount.
struct Planned {
    about: About,
    placement: Placement,
    router: Router,
}

/// The profiles, checked and bound: the routers for the main listener and
/// the listeners of their own. [`Mounted::nest_into`] and [`Mounted::serve`]
/// put them to work.
#[derive(Default)]
pub struct Mounted {
    main: Vec<(String, Router)>,
    /// Request paths on the main listener whose profile answers CORS.
    main_cors_exempt: Vec<String>,
    own: Vec<OwnListener>,
}

struct OwnListener {
    names: Vec<&'static str>,
    listener: TcpListener,
    router: Router,
    /// Its paths whose profile answers CORS.
    cors_exempt: Vec<String>,
}

/// The request paths of `about` under `prefix`, when it answers CORS itself.
fn cors_exempt(about: &About, prefix: &str) -> Vec<String> {
    match about.own_cors {
        true => about.paths.iter().map(|p| format!("{prefix}{p}")).collect(),
        false => Vec::new(),
    }
}

/// Builds every enabled profile, checks that no two claimants share a path
/// on one listener (`native`: the main listener's own paths,
/// `http::paths`), and binds the profiles' own listeners. `main_addr` is
/// the main listener's address (an own address equal to it is refused).
pub fn mount(
    ctx: &Context,
    profiles: Profiles,
    native: &[&'static str],
    main_addr: SocketAddr,
) -> Result<Mounted, CompatError> {
    let mut plan = Vec::new();
    if let Some(p) = profiles.notification_service {
        let router = notification_service::router(ctx.clone(), p.settings);
        plan.push(Planned {
            about: notification_service::ABOUT,
            placement: p.placement,
            router,
        });
    }
    if let Some(p) = profiles.go_sse_broker {
        let router = go_sse_broker::router(ctx.clone(), p.settings);
        plan.push(Planned {
            about: go_sse_broker::ABOUT,
            placement: p.placement,
            router,
        });
    }
    if let Some(p) = profiles.gosse {
        let router = gosse::router(ctx.clone(), p.settings);
        plan.push(Planned {
            about: gosse::ABOUT,
            placement: p.placement,
            router,
        });
    }
    let placed: Vec<(About, &Placement)> = plan.iter().map(|p| (p.about, &p.placement)).collect();
    conflicts::check(&placed, native, main_addr)?;

    let mut mounted = Mounted::default();
    for p in plan {
        tracing::info!(profile = p.about.name, placement = ?p.placement, "compatibility profile");
        match p.placement {
            Placement::Main { prefix } => {
                mounted
                    .main_cors_exempt
                    .extend(cors_exempt(&p.about, &prefix));
                mounted.main.push((prefix, p.router));
            }
            Placement::Own { addr } => {
                // One listener per address; port 0 (tests) is always new.
                let shared = (addr.port() != 0)
                    .then(|| {
                        mounted
                            .own
                            .iter_mut()
                            .find(|o| o.listener.local_addr().ok() == Some(addr))
                    })
                    .flatten();
                match shared {
                    Some(own) => {
                        own.names.push(p.about.name);
                        own.cors_exempt.extend(cors_exempt(&p.about, ""));
                        own.router = std::mem::take(&mut own.router).merge(p.router);
                    }
                    None => {
                        let listener = serve::listen(addr).map_err(|source| CompatError::Bind {
                            addr,
                            key: p.about.key,
                            env: p.about.env,
                            source,
                        })?;
                        mounted.own.push(OwnListener {
                            names: vec![p.about.name],
                            listener,
                            router: p.router,
                            cors_exempt: cors_exempt(&p.about, ""),
                        });
                    }
                }
            }
        }
    }
    Ok(mounted)
}

impl Mounted {
    /// The main listener's request paths whose profile answers CORS itself
    /// (for `http::HttpSettings::cors_exempt`).
    pub fn main_cors_exempt(&self) -> Vec<String> {
        self.main_cors_exempt.clone()
    }

    /// `routes` (the main listener's, before its middleware) with the
    /// profiles placed on the main listener added under their prefixes.
    pub fn nest_into(&mut self, mut routes: Router) -> Router {
        for (prefix, router) in self.main.drain(..) {
            routes = match prefix.as_str() {
                "" => routes.merge(router),
                prefix => routes.nest(prefix, router),
            };
        }
        routes
    }

    /// Each profile with a listener of its own (`About::name`), and that
    /// listener's bound address.
    pub fn addrs(&self) -> Vec<(&'static str, SocketAddr)> {
        self.own
            .iter()
            .filter_map(|o| Some((o.names.clone(), o.listener.local_addr().ok()?)))
            .flat_map(|(names, addr)| names.into_iter().map(move |name| (name, addr)))
            .collect()
    }

    /// Serves each own listener until `shutdown`, through the main
    /// listener's accept loop and connection registry (`conns`: one set of
    /// caps for every listener) and with its middleware (`settings`).
    /// Completes when all have stopped and their connections closed.
    pub fn serve(
        self,
        settings: &HttpSettings,
        shutdown: CancellationToken,
        conns: Arc<serve::Connections>,
    ) -> impl Future<Output = std::io::Result<()>> + Send + 'static {
        let serves: Vec<_> = self
            .own
            .into_iter()
            .map(|own| {
                let settings = HttpSettings {
                    cors_exempt: own.cors_exempt,
                    ..settings.clone()
                };
                let app = http::layers(own.router.fallback(http::error::not_found), &settings);
                serve::serve(
                    own.listener,
                    app,
                    serve::Plain,
                    shutdown.clone(),
                    conns.clone(),
                )
            })
            .collect();
        async move {
            futures_util::future::try_join_all(serves).await?;
            Ok(())
        }
    }
}
