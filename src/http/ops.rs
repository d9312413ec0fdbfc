//! Operational endpoints: liveness, readiness and SSER's JSON metrics.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::principal::Principal;

/// `GET /healthz`: the process is up and answering.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 when every readiness check passes, else 503 with the
/// failing checks, so a load balancer stops sending traffic.
pub async fn readyz(State(state): State<Arc<AppState>>) -> (StatusCode, Json<Value>) {
    let ready = state.readiness.is_ready();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if ready { "ready" } else { "unavailable" },
            "checks": state.readiness.snapshot(),
        })),
    )
}

/// `GET /api/v1/metrics`: `{"metrics":[{"name","value"}...]}`, SSER's seven
/// names first, always in the same order; in a cluster also `cluster`
/// (`stats::cluster_json`), absent on a single node so SSER's shape stays.
pub async fn metrics(
    principal: Principal,
    State(state): State<Arc<AppState>>,
) -> Result<Json<Value>, ApiError> {
    principal.monitor()?;
    let metrics = state.hub.metrics();
    let samples = metrics.samples(state.hub.topic_counts());
    if !metrics.cluster.is_on() {
        return Ok(Json(json!({ "metrics": samples })));
    }
    let cluster = super::stats::cluster_json(&metrics.cluster);
    Ok(Json(json!({ "metrics": samples, "cluster": cluster })))
}
