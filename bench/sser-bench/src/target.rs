//! What is being measured: our (= SSER's) API, or any SSE server described by
//! URL templates. Both end up as a list of topics, each with a subscribe path
//! and headers and a publish path, so the scenarios never care which.
//! Identities (our API's `GET /api/v1/stream` and `POST /api/v1/send`,
//! set up in [`crate::identity`]) fit the same shape: a "topic" is where a
//! send goes (one user, or the whole application), and subscriber i is
//! identity i.

use std::net::IpAddr;

use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::http::{Conn, Url, build_request, connect};

#[derive(Debug, Clone)]
pub struct TopicRef {
    pub name: String,
    pub sub_path: String,
    pub sub_headers: Vec<(String, String)>,
    pub pub_path: String,
    /// This topic's own publish body around the payload (a send names its
    /// user in the body); `None`: the target's.
    pub body: Option<(String, String)>,
}

/// Where events go and who follows them.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Address {
    /// Topics: subscriber i follows topic i mod T (`--topics`).
    #[default]
    Topics,
    /// Identities: subscriber i is user i of one application on
    /// `GET /api/v1/stream`; each event is a `POST /api/v1/send` to one user.
    Users,
    /// The same identities; each event is a send to the whole application.
    App,
}

#[derive(Debug, Clone)]
pub enum Mode {
    /// Our API (and the original SSER's): topics are created with the API
    /// token and deleted at the end.
    Sser { api_token: String },
    /// URL templates with `{topic}`; topics are just names.
    Generic,
    /// Our API's identities: subscriber i streams with its own token.
    Identity { tokens: Vec<String> },
    /// Our API, one topic someone else created and will delete
    /// ([`Target::existing_topic`]).
    Existing,
}

#[derive(Debug, Clone)]
pub struct Target {
    pub mode: Mode,
    pub sub_url: Url,
    /// Other nodes of a cluster subscribers are spread over (empty: all on
    /// `sub_url`).
    pub sub_via: Vec<std::net::SocketAddr>,
    pub pub_url: Url,
    pub pub_headers: Vec<(String, String)>,
    /// The publish body around the payload: `prefix + payload + suffix`.
    pub body_prefix: String,
    pub body_suffix: String,
    pub topics: Vec<TopicRef>,
}

pub struct TargetSpec {
    pub url: String,
    pub api_token: Option<String>,
    pub subscribe_url: Option<String>,
    /// Base URLs of cluster nodes to spread subscribers over (our API).
    pub subscribe_via: Vec<String>,
    pub publish_url: Option<String>,
    pub body: Option<String>,
    pub pub_headers: Vec<String>,
    pub sub_headers: Vec<String>,
    pub seed: u64,
    /// Create persistent topics (our API): measures the durable publish path.
    pub persist: bool,
}

pub(crate) fn parse_header(h: &str) -> Result<(String, String), String> {
    let (k, v) = h
        .split_once(':')
        .ok_or_else(|| format!("a header is 'Name: value', got {h:?}"))?;
    Ok((k.trim().to_string(), v.trim().to_string()))
}

/// Placeholders a template may use.
fn fill(template: &str, topic: &str) -> String {
    template.replace("{topic}", topic)
}

impl Target {
    /// Where subscriber `i` connects.
    pub fn sub_addr(&self, i: usize) -> std::net::SocketAddr {
        match self.sub_via.len() {
            0 => self.sub_url.addr,
            n => self.sub_via[i % n],
        }
    }

    /// Creates (our API) or names (generic) `count` topics.
    pub async fn setup(spec: &TargetSpec, count: usize) -> Result<Target, String> {
        let mut sub_headers = spec
            .sub_headers
            .iter()
            .map(|h| parse_header(h))
            .collect::<Result<Vec<_>, _>>()?;
        // What EventSource sends; nchan answers 403 without it.
        if !sub_headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("accept"))
        {
            sub_headers.push(("Accept".into(), "text/event-stream".into()));
        }
        let mut pub_headers = spec
            .pub_headers
            .iter()
            .map(|h| parse_header(h))
            .collect::<Result<Vec<_>, _>>()?;
        let generic = spec.subscribe_url.is_some() || spec.publish_url.is_some();
        if generic {
            let sub = spec
                .subscribe_url
                .as_deref()
                .ok_or("--publish-url needs --subscribe-url")?;
            let publ = spec
                .publish_url
                .as_deref()
                .ok_or("--subscribe-url needs --publish-url")?;
            let sub_url = Url::parse(&sub.replace("{topic}", "x"))?;
            let pub_url = Url::parse(&publ.replace("{topic}", "x"))?;
            let body = spec.body.clone().unwrap_or_else(|| "{payload}".into());
            let (prefix, suffix) = split_body(&body)?;
            // Names differ per seed, so runs with different seeds never see
            // each other's buffered messages.
            let mut rng = StdRng::seed_from_u64(spec.seed);
            let run: u32 = rng.r#gen();
            let topics = (0..count)
                .map(|i| {
                    let name = format!("b{run:08x}t{i}");
                    TopicRef {
                        sub_path: Url::parse(&fill(sub, &name))
                            .map(|u| u.path)
                            .unwrap_or_default(),
                        pub_path: Url::parse(&fill(publ, &name))
                            .map(|u| u.path)
                            .unwrap_or_default(),
                        sub_headers: sub_headers.clone(),
                        body: None,
                        name,
                    }
                })
                .collect();
            return Ok(Target {
                mode: Mode::Generic,
                sub_url,
                sub_via: Vec::new(),
                pub_url,
                pub_headers,
                body_prefix: prefix,
                body_suffix: suffix,
                topics,
            });
        }
        let api_token = spec
            .api_token
            .clone()
            .ok_or("--api-token (or SSER_API_ACCESS_TOKEN) is needed to create topics")?;
        let base = spec.url.trim_end_matches('/').to_string();
        let url = Url::parse(&format!("{base}/api/v1/pubsubs"))?;
        pub_headers.push(("Authorization".into(), format!("Bearer {api_token}")));
        pub_headers.push(("Content-Type".into(), "application/json".into()));
        let body = spec
            .body
            .clone()
            .unwrap_or_else(|| r#"{"event":{"message":"{payload}"}}"#.into());
        let (prefix, suffix) = split_body(&body)?;
        let mut conn = Conn::new(
            connect(url.addr, None)
                .await
                .map_err(|e| format!("cannot connect to {base}: {e}"))?,
            8192,
        );
        let auth = vec![
            ("Authorization".to_string(), format!("Bearer {api_token}")),
            ("Content-Type".to_string(), "application/json".to_string()),
        ];
        let create: &[u8] = if spec.persist {
            br#"{"pubsub":{"persist":true}}"#
        } else {
            b"{}"
        };
        let req = build_request("POST", &url, &url.path, &auth, Some(create));
        let mut topics = Vec::with_capacity(count);
        for _ in 0..count {
            let (head, body) = conn
                .roundtrip(&req)
                .await
                .map_err(|e| format!("create topic: {e}"))?;
            if head.status != 201 && head.status != 200 {
                return Err(format!(
                    "create topic: HTTP {} {}",
                    head.status,
                    String::from_utf8_lossy(&body)
                ));
            }
            if !head.keep_alive {
                conn = Conn::new(
                    connect(url.addr, None).await.map_err(|e| e.to_string())?,
                    8192,
                );
            }
            let v: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| format!("create topic body: {e}"))?;
            let id = v["pubsub"]["id"]
                .as_str()
                .ok_or("no pubsub.id")?
                .to_string();
            let token = v["pubsub"]["token"]
                .as_str()
                .ok_or("no pubsub.token")?
                .to_string();
            let mut headers = sub_headers.clone();
            headers.push(("Authorization".into(), format!("Bearer {token}")));
            topics.push(TopicRef {
                sub_path: format!("{}/{id}/events", url.path),
                pub_path: format!("{}/{id}/events", url.path),
                sub_headers: headers,
                body: None,
                name: id,
            });
        }
        let sub_via = parse_via(&spec.subscribe_via)?;
        if !sub_via.is_empty() {
            // Topics created on one node reach the others through Redis.
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        Ok(Target {
            mode: Mode::Sser { api_token },
            sub_via,
            sub_url: url.clone(),
            pub_url: url,
            pub_headers,
            body_prefix: prefix,
            body_suffix: suffix,
            topics,
        })
    }

    /// One topic that already exists on our API (created by a script, so
    /// several processes share it): `id` to publish to, `token` to subscribe
    /// with. Nothing is created here and [`Target::teardown`] leaves it.
    pub fn existing_topic(spec: &TargetSpec, id: &str, token: &str) -> Result<Target, String> {
        let api_token = spec
            .api_token
            .clone()
            .ok_or("--api-token (or SSER_API_ACCESS_TOKEN) is needed to publish")?;
        let base = spec.url.trim_end_matches('/').to_string();
        let url = Url::parse(&format!("{base}/api/v1/pubsubs"))?;
        let body = spec
            .body
            .clone()
            .unwrap_or_else(|| r#"{"event":{"message":"{payload}"}}"#.into());
        let (prefix, suffix) = split_body(&body)?;
        let pub_headers = vec![
            ("Authorization".into(), format!("Bearer {api_token}")),
            ("Content-Type".into(), "application/json".into()),
        ];
        let sub_headers = vec![
            ("Accept".into(), "text/event-stream".into()),
            ("Authorization".into(), format!("Bearer {token}")),
        ];
        Ok(Target {
            mode: Mode::Existing,
            sub_via: parse_via(&spec.subscribe_via)?,
            topics: vec![TopicRef {
                name: id.to_string(),
                sub_path: format!("{}/{id}/events", url.path),
                pub_path: format!("{}/{id}/events", url.path),
                sub_headers,
                body: None,
            }],
            sub_url: url.clone(),
            pub_url: url,
            pub_headers,
            body_prefix: prefix,
            body_suffix: suffix,
        })
    }

    /// The request subscriber `subscriber` opens to follow `topics`: its
    /// identity's stream, or [`Target::subscribe_request_many`].
    pub fn subscribe_request_for(
        &self,
        subscriber: usize,
        topics: &[usize],
    ) -> Result<Vec<u8>, String> {
        match &self.mode {
            Mode::Identity { tokens } => {
                let token = tokens
                    .get(subscriber)
                    .ok_or("more subscribers than identities")?;
                Ok(self.identity_stream_request(token))
            }
            _ => self.subscribe_request_many(topics),
        }
    }

    /// `GET /api/v1/stream` as the identity holding `token`.
    fn identity_stream_request(&self, token: &str) -> Vec<u8> {
        let Some(any) = self.topics.first() else {
            return Vec::new();
        };
        let mut headers = any.sub_headers.clone();
        headers.push(("Authorization".into(), format!("Bearer {token}")));
        build_request("GET", &self.sub_url, &any.sub_path, &headers, None)
    }

    pub fn subscribe_request(&self, topic: usize) -> Vec<u8> {
        let t = &self.topics[topic];
        build_request("GET", &self.sub_url, &t.sub_path, &t.sub_headers, None)
    }

    /// One connection following `topics`: the topic's own request for one,
    /// our API's multi-topic subscribe (`GET /api/v1/events?topic=…` with the
    /// API token) for several.
    pub fn subscribe_request_many(&self, topics: &[usize]) -> Result<Vec<u8>, String> {
        match (topics, &self.mode) {
            ([topic], _) => Ok(self.subscribe_request(*topic)),
            (_, Mode::Generic | Mode::Existing) => Err(
                "following several topics on one connection needs topics this run created".into(),
            ),
            (_, Mode::Identity { .. }) => {
                Err("an identity follows its own streams, not a list of topics".into())
            }
            (_, Mode::Sser { api_token }) => {
                let base = self.sub_url.path.trim_end_matches("/pubsubs");
                let query: Vec<String> = topics
                    .iter()
                    .map(|&t| format!("topic={}", self.topics[t].name))
                    .collect();
                let path = format!("{base}/events?{}", query.join("&"));
                let mut headers: Vec<(String, String)> = self.topics[topics[0]]
                    .sub_headers
                    .iter()
                    .filter(|(k, _)| !k.eq_ignore_ascii_case("authorization"))
                    .cloned()
                    .collect();
                headers.push(("Authorization".into(), format!("Bearer {api_token}")));
                Ok(build_request("GET", &self.sub_url, &path, &headers, None))
            }
        }
    }

    pub fn publish_request(&self, topic: usize, payload: &str) -> Vec<u8> {
        let t = &self.topics[topic];
        let (prefix, suffix) = t
            .body
            .as_ref()
            .map_or((&self.body_prefix, &self.body_suffix), |(p, s)| (p, s));
        let mut body = String::with_capacity(prefix.len() + payload.len() + suffix.len());
        body.push_str(prefix);
        body.push_str(payload);
        body.push_str(suffix);
        build_request(
            "POST",
            &self.pub_url,
            &t.pub_path,
            &self.pub_headers,
            Some(body.as_bytes()),
        )
    }

    /// Deletes the topics this run created (our API only).
    pub async fn teardown(&self) {
        let Mode::Sser { api_token } = &self.mode else {
            return;
        };
        let Ok(stream) = connect(self.pub_url.addr, None).await else {
            return;
        };
        let mut conn = Conn::new(stream, 4096);
        let auth = vec![("Authorization".to_string(), format!("Bearer {api_token}"))];
        for t in &self.topics {
            let path = format!("{}/{}", self.pub_url.path, t.name);
            let req = build_request("DELETE", &self.pub_url, &path, &auth, None);
            match conn.roundtrip(&req).await {
                Ok((head, _)) if head.keep_alive => {}
                _ => match connect(self.pub_url.addr, None).await {
                    Ok(s) => conn = Conn::new(s, 4096),
                    Err(_) => return,
                },
            }
        }
    }
}

/// `--subscribe-via` base URLs as socket addresses.
fn parse_via(bases: &[String]) -> Result<Vec<std::net::SocketAddr>, String> {
    bases
        .iter()
        .map(|base| {
            Url::parse(&format!("{}/", base.trim_end_matches('/')))
                .map(|u| u.addr)
                .map_err(|e| format!("--subscribe-via {base}: {e}"))
        })
        .collect()
}

pub(crate) fn split_body(body: &str) -> Result<(String, String), String> {
    let (p, s) = body
        .split_once("{payload}")
        .ok_or("the body template must contain {payload}")?;
    Ok((p.to_string(), s.to_string()))
}

/// Source addresses for connection `i`: `127.0.0.1` when `spread` is 0 or 1
/// (no explicit bind), else one of `spread` addresses in 127.1.0.0/16.
pub fn source_ip(i: usize, spread: usize) -> Option<IpAddr> {
    if spread <= 1 {
        return None;
    }
    let n = (i % spread) as u32 + 1;
    Some(IpAddr::V4(std::net::Ipv4Addr::new(
        127,
        1,
        (n >> 8) as u8,
        (n & 0xff) as u8,
    )))
}
