//! Identities (our API only, issue 11): `--to users` and `--to app` of
//! `fanout`, `--identities` of `idle`.
//!
//! N identities are users `u0` … `u<N-1>` of one application named after
//! the run's seed, each with its own token minted by the server
//! (`POST /api/v1/tokens` with the API token, so the server needs an
//! identity key, e.g. `SSER_JWT_SECRET`). Subscriber i streams as user i
//! (`GET /api/v1/stream`: its application's and its user's inboxes). The
//! "topics" of the [`Target`] are where sends go: one per user
//! (`{"users": ["u<i>"]}`), or one for the whole application (no `users`).
//! Minting runs over a few keep-alive connections before anything is
//! measured, and its time is reported apart.

use std::sync::Arc;
use std::time::Instant;

use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::http::{Conn, Url, build_request, connect};
use crate::target::{Address, Mode, Target, TargetSpec, TopicRef, parse_header};

/// Keep-alive connections that mint tokens at once.
const MINTERS: usize = 8;

/// A token's lifetime: longer than any run.
const TOKEN_TTL_SECS: u64 = 6 * 3600;

impl Target {
    /// Mints `identities` tokens and describes where sends go (`to`).
    /// Returns the target and how long minting took, in seconds.
    pub async fn identities(
        spec: &TargetSpec,
        to: Address,
        identities: usize,
    ) -> Result<(Target, f64), String> {
        if spec.subscribe_url.is_some() || spec.publish_url.is_some() {
            return Err("identities (--to users|app, --identities) need our API (--url)".into());
        }
        let api_token = spec
            .api_token
            .clone()
            .ok_or("--api-token (or SSER_API_ACCESS_TOKEN) is needed to mint identity tokens")?;
        let base = spec.url.trim_end_matches('/').to_string();
        let api = Url::parse(&format!("{base}/api/v1/tokens"))?;
        let run: u32 = StdRng::seed_from_u64(spec.seed).r#gen();
        let app = format!("bench{run:08x}");
        let t0 = Instant::now();
        let tokens = mint(&api, &api_token, &app, identities).await?;
        let mint_secs = t0.elapsed().as_secs_f64();

        let mut stream_headers = spec
            .sub_headers
            .iter()
            .map(|h| parse_header(h))
            .collect::<Result<Vec<_>, _>>()?;
        if !stream_headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("accept"))
        {
            stream_headers.push(("Accept".into(), "text/event-stream".into()));
        }
        let mut pub_headers = spec
            .pub_headers
            .iter()
            .map(|h| parse_header(h))
            .collect::<Result<Vec<_>, _>>()?;
        pub_headers.push(("Authorization".into(), format!("Bearer {api_token}")));
        pub_headers.push(("Content-Type".into(), "application/json".into()));
        let send = Url::parse(&format!("{base}/api/v1/send"))?;
        let stream = Url::parse(&format!("{base}/api/v1/stream"))?;
        // The payload is the message, a JSON string (it holds no quote or
        // backslash), delivered as its raw text.
        let sends: Vec<(String, String)> = match to {
            Address::Users => (0..identities)
                .map(|i| format!(r#"{{"app":"{app}","users":["u{i}"],"message":""#))
                .map(|prefix| (prefix, "\"}".to_string()))
                .collect(),
            Address::App => vec![(format!(r#"{{"app":"{app}","message":""#), "\"}".into())],
            Address::Topics => return Err("topics are not identities".into()),
        };
        let topics = sends
            .into_iter()
            .enumerate()
            .map(|(i, body)| TopicRef {
                name: if to == Address::App {
                    app.clone()
                } else {
                    format!("u{i}")
                },
                sub_path: stream.path.clone(),
                sub_headers: stream_headers.clone(),
                pub_path: send.path.clone(),
                body: Some(body),
            })
            .collect();
        Ok((
            Target {
                mode: Mode::Identity { tokens },
                sub_url: stream,
                sub_via: Vec::new(),
                pub_url: send,
                pub_headers,
                body_prefix: String::new(),
                body_suffix: String::new(),
                topics,
            },
            mint_secs,
        ))
    }
}

/// Mints a token for each of users `u0` … `u<n-1>` of `app`, in order.
async fn mint(url: &Url, api_token: &str, app: &str, n: usize) -> Result<Vec<String>, String> {
    let url = Arc::new(url.clone());
    let auth = Arc::new(vec![
        ("Authorization".to_string(), format!("Bearer {api_token}")),
        ("Content-Type".to_string(), "application/json".to_string()),
    ]);
    let workers = MINTERS.min(n.max(1));
    let mut tasks = Vec::with_capacity(workers);
    for w in 0..workers {
        let (url, auth, app) = (url.clone(), auth.clone(), app.to_string());
        tasks.push(tokio::spawn(async move {
            let mut minted = Vec::new();
            let mut conn: Option<Conn> = None;
            for i in (w..n).step_by(workers) {
                let body = format!(r#"{{"user":"u{i}","app":"{app}","ttl":{TOKEN_TTL_SECS}}}"#);
                let req = build_request("POST", &url, &url.path, &auth, Some(body.as_bytes()));
                if conn.is_none() {
                    let stream = connect(url.addr, None)
                        .await
                        .map_err(|e| format!("mint: connect: {e}"))?;
                    conn = Some(Conn::new(stream, 4096));
                }
                let Some(c) = conn.as_mut() else {
                    return Err("mint: no connection".to_string());
                };
                let (head, body) = c.roundtrip(&req).await.map_err(|e| format!("mint: {e}"))?;
                if head.status != 201 && head.status != 200 {
                    return Err(format!(
                        "mint a token (POST /api/v1/tokens; the server needs an identity key, \
                         e.g. SSER_JWT_SECRET): HTTP {} {}",
                        head.status,
                        String::from_utf8_lossy(&body)
                    ));
                }
                if !head.keep_alive {
                    conn = None;
                }
                let v: serde_json::Value =
                    serde_json::from_slice(&body).map_err(|e| format!("mint body: {e}"))?;
                let token = v["token"].as_str().ok_or("mint: no token in the answer")?;
                minted.push((i, token.to_string()));
            }
            Ok::<_, String>(minted)
        }));
    }
    let mut tokens = vec![String::new(); n];
    for t in tasks {
        let minted = t.await.map_err(|e| format!("mint task: {e}"))??;
        for (i, token) in minted {
            tokens[i] = token;
        }
    }
    Ok(tokens)
}
