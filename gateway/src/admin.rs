//! The admin HTTP API: the worker registry, health, metrics, status and
//! reload. It listens on `--admin-listen` (loopback by default) and has no
//! authentication of its own: expose it only where operators are trusted.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;

use crate::gateway::Gateway;
use crate::reload::Reloader;

#[derive(Clone)]
struct AppState {
    gateway: Arc<Gateway>,
    reloader: Arc<Reloader>,
}

/// Serve the admin API on `listener` forever.
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    reloader: Arc<Reloader>,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/api/v1/workers", get(workers))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route("/reload", post(reload))
        .with_state(AppState { gateway, reloader });
    axum::serve(listener, app).await
}

async fn workers(
    State(app): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let team = query.get("team").map(String::as_str);
    Json(app.gateway.registry.list(team)).into_response()
}

async fn healthz(State(app): State<AppState>) -> Response {
    if app.gateway.is_listening() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response()
    }
}

async fn metrics(State(app): State<AppState>) -> Response {
    let digest = app.gateway.policy().digest().to_string();
    let body = app
        .gateway
        .metrics
        .render(&app.gateway.registry, &digest, app.gateway.audit());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

async fn status(State(app): State<AppState>) -> Response {
    Json(app.reloader.status(&app.gateway)).into_response()
}

async fn reload(State(app): State<AppState>) -> Response {
    let reloader = app.reloader.clone();
    match reloader.reload("http").await {
        Ok(()) => (
            StatusCode::OK,
            Json(serde_json::json!({"result": "success"})),
        )
            .into_response(),
        Err(e) => {
            let body = serde_json::json!({"result": "failure", "error": e});
            (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
        }
    }
}
