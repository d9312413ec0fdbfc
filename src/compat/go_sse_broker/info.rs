//! `/info {device? | uid? | address?}`: who is online, in go-sse-broker's
//! shapes, read from the registry (the API or the metrics token).
//!
//! - `device` (with `uid` to pick one user's device; alone, the device of
//!   that name seen most recently): `{online, device_id, device_name, uid,
//!   login_time, instance_address, device_address, last_touch_time,
//!   last_frame_id}`;
//! - `uid`: `{online, uid, login_time, last_touch_time, devices: [...]}`;
//! - `address` (or the README's `ip`): this node's `{online, version,
//!   address, start_time, device_count}`;
//! - nothing: `{instance_count, user_count, device_count, instances}`.
//!
//! In a cluster every live node is an instance (its advertised address,
//! `cluster.advertisedAddr`, from its heartbeat record) and the counts,
//! users and devices are the whole cluster's; a device on another node
//! shows that node's address as `instance_address` and an empty
//! `last_frame_id` (only its node knows it). Redis away: 503. Times are
//! `"YYYY-MM-DD HH:MM:SS"`, in UTC (the original used its local zone).
//! `last_touch_time` of a connected device is now (its stream is open and
//! heartbeats); `last_frame_id` is the id of the last event it was sent (a
//! resume cursor, text, where the original had a number); `device_id` is a
//! stable opaque id of the user's device (it was the MD5 of the name alone).

use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::Broker;
use super::auth::Need;
use super::envelope::{Envelope, Failure};
use super::params::Params;
use crate::http::error::ApiError;
use crate::http::remote::Remote;
use crate::hub::{AppCounts, Listed, Selector};
use crate::identity::claims::check_name;
use crate::model::now_ms;

/// Most devices listed for one user.
const MAX_DEVICES: usize = 1000;

pub(super) async fn info(
    State(b): State<Arc<Broker>>,
    Remote(peer): Remote,
    request: Request,
) -> Response {
    let started = Instant::now();
    let params = match b.admit(Need::Monitor, peer, request, started).await {
        Ok(params) => params,
        Err(answer) => return answer,
    };
    let outcome = b.info(&params).await;
    Envelope::new(started, outcome).into_response()
}

impl Broker {
    async fn info(&self, params: &Params) -> Result<Value, Failure> {
        for key in ["uid", "device"] {
            if let Some(name) = params.get(key) {
                check_name(name).map_err(|why| Failure::bad_request(format!("{key} {why}")))?;
            }
        }
        if let Some(device) = params.get("device") {
            return self.device_info(params.get("uid"), device).await;
        }
        if let Some(uid) = params.get("uid") {
            return self.user_info(uid).await;
        }
        let counts = self.counts().await?;
        if let Some(address) = params.get("address").or_else(|| params.get("ip")) {
            return Ok(self.instance_info(Some(address), &counts));
        }
        let instances = self.instances(&counts);
        Ok(json!({
            "instance_count": instances.len(),
            "user_count": counts.users,
            "device_count": counts.connections,
            "instances": instances,
        }))
    }

    async fn counts(&self) -> Result<AppCounts, Failure> {
        self.state
            .hub
            .app_counts(&self.app)
            .await
            .map_err(|e| Failure::from(ApiError::from(e)))
    }

    async fn device_info(&self, uid: Option<&str>, device: &str) -> Result<Value, Failure> {
        let users: Vec<Arc<str>> = match uid {
            Some(uid) => vec![Arc::from(uid)],
            None => self.devices.users(device),
        };
        for user in &users {
            let page = self
                .state
                .hub
                .connection_page(Some(Selector::Device(&self.app, user, device)), None, 1)
                .await
                .map_err(|e| Failure::from(ApiError::from(e)))?;
            if let Some(conn) = page.connections.first() {
                let mut info = self.describe(conn);
                info["online"] = json!(true);
                return Ok(info);
            }
        }
        let uid = uid.unwrap_or_default();
        Ok(json!({
            "online": false,
            "device_id": if uid.is_empty() { String::new() } else { device_id(&self.app, uid, device) },
            "device_name": device,
            "uid": uid,
            "login_time": "",
            "instance_address": "",
            "device_address": "",
            "last_touch_time": "",
            "last_frame_id": "",
        }))
    }

    async fn user_info(&self, uid: &str) -> Result<Value, Failure> {
        let page = self
            .state
            .hub
            .connection_page(Some(Selector::User(&self.app, uid)), None, MAX_DEVICES)
            .await
            .map_err(|e| Failure::from(ApiError::from(e)))?;
        let Some(first) = page.connections.iter().map(|c| c.opened_at_ms()).min() else {
            return Ok(json!({
                "online": false,
                "uid": uid,
                "login_time": "",
                "last_touch_time": "",
                "devices": [],
            }));
        };
        let devices: Vec<Value> = page.connections.iter().map(|c| self.describe(c)).collect();
        Ok(json!({
            "online": true,
            "uid": uid,
            "login_time": broker_time(first),
            "last_touch_time": broker_time(now_ms()),
            "devices": devices,
        }))
    }

    /// Every instance: this node, and in a cluster every other live node.
    fn instances(&self, counts: &AppCounts) -> Vec<Value> {
        let mut out = vec![self.instance_info(None, counts)];
        let cluster = &self.state.hub.metrics().cluster;
        if cluster.is_on() {
            let this = cluster.this_node();
            for node in cluster.nodes().into_iter().filter(|n| n.id != this) {
                out.push(self.other_instance(&node, counts));
            }
        }
        out
    }

    /// This node, when `address` is absent or names it; in a cluster, the
    /// live node whose advertised address it names.
    fn instance_info(&self, address: Option<&str>, counts: &AppCounts) -> Value {
        let names = |addr: &str| {
            address
                .is_none_or(|a| a == addr || addr.rsplit_once(':').is_some_and(|(ip, _)| ip == a))
        };
        let ours = &self.settings.instance_address;
        if !names(ours) {
            let cluster = &self.state.hub.metrics().cluster;
            let this = cluster.this_node();
            let other = cluster
                .nodes()
                .into_iter()
                .find(|n| n.id != this && cluster.is_on() && names(&n.addr));
            if let Some(node) = other {
                return self.other_instance(&node, counts);
            }
            return json!({
                "online": false,
                "version": "",
                "address": address,
                "start_time": "",
                "device_count": 0,
            });
        }
        let (_, devices) = self.state.hub.connections().app_counts(&self.app);
        json!({
            "online": true,
            "version": env!("CARGO_PKG_VERSION"),
            "address": ours,
            "start_time": broker_time(self.started_ms),
            "device_count": devices,
        })
    }

    /// Another live node of the cluster.
    fn other_instance(&self, node: &crate::metrics::NodeSeen, counts: &AppCounts) -> Value {
        let devices = counts
            .nodes
            .iter()
            .find(|(id, _, _)| *id == node.id)
            .map_or(0, |(_, _, n)| *n);
        json!({
            "online": true,
            "version": env!("CARGO_PKG_VERSION"),
            "address": node.addr,
            "start_time": broker_time(node.started_ms),
            "device_count": devices,
        })
    }

    /// One connected device, in the original's `Device` shape.
    fn describe(&self, conn: &Listed) -> Value {
        let (user, device) = conn
            .owner()
            .map(|(_, user, device)| (user.to_string(), device.unwrap_or_default().to_string()))
            .unwrap_or_default();
        json!({
            "device_id": device_id(&self.app, &user, &device),
            "device_name": device,
            "uid": user,
            "login_time": broker_time(conn.opened_at_ms()),
            "instance_address": conn.node_addr().unwrap_or(&self.settings.instance_address),
            "device_address": conn.remote().unwrap_or_default(),
            "last_touch_time": broker_time(now_ms()),
            "last_frame_id": conn.last_event_id().unwrap_or_default(),
        })
    }
}

/// A stable opaque id for a user's device: 32 hex digits, as long as the
/// original's MD5 of the name, but of the (application, user, device).
pub(super) fn device_id(app: &str, user: &str, device: &str) -> String {
    let mut hash = Sha256::new();
    for part in [app, user, device] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hash.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Unix ms as go-sse-broker wrote times: `2024-09-12 09:57:59` (UTC).
pub(super) fn broker_time(ms: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replacen('T', " ", 1)
        .trim_end_matches('Z')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_ids_look_like_the_originals() {
        assert_eq!(broker_time(1_726_135_079_000), "2024-09-12 09:57:59");
        let id = device_id("default", "sssxyd", "xuyd");
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(id, device_id("default", "other", "xuyd"), "scoped by user");
        assert_eq!(id, device_id("default", "sssxyd", "xuyd"), "stable");
    }
}
