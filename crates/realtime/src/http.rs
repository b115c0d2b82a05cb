//! The HTTP side of realtime: `POST /realtime/v1/api/broadcast` (a batch, what realtime-js
//! falls back to), `POST /realtime/v1/api/broadcast/{topic}/events/{event}` (`httpSend`), and
//! the replication status for operators.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use manifold_auth::Caller;
use manifold_auth::gateway::bearer_token;
use serde_json::{Value, json};

use crate::RealtimeState;
use crate::hub::TopicKey;
use crate::private::{topic_identity, writable};
use crate::protocol::{BroadcastBody, UserBroadcast};
use crate::runtime::runtime_for;
use crate::socket::token::verify;

/// Most messages one batch may carry.
const MAX_BATCH: usize = 100;

fn message(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(json!({ "message": text }))).into_response()
}

/// Bearer token first, then the `apikey` header or query parameter.
fn caller(
    state: &RealtimeState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Option<Caller> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_token)
        .map(str::to_owned);
    let apikey = headers
        .get("apikey")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .or_else(|| params.get("apikey").cloned());
    let token = bearer.or(apikey)?;
    verify(&state.gatekeeper, &token).ok().map(|v| v.caller)
}

async fn send(
    state: &RealtimeState,
    caller: &Caller,
    name: &str,
    private: bool,
    message: UserBroadcast,
) {
    let runtime = runtime_for(state);
    if private && caller.role() != "service_role" {
        let identity = topic_identity(caller.role(), caller.claims_json(), name);
        let allowed = writable(runtime.catalog.pool(), name, &identity, "broadcast")
            .await
            .unwrap_or(false);
        // Denied private messages are dropped silently (still 202), as Supabase does.
        if !allowed {
            return;
        }
    }
    let key = TopicKey {
        topic: format!("realtime:{name}"),
        private,
    };
    runtime.hub.broadcast(&key, None, &message);
}

/// `POST /realtime/v1/api/broadcast` with `{"messages":[{topic, event, payload, private}]}`.
pub(crate) async fn broadcast_batch(
    State(state): State<RealtimeState>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(caller) = caller(&state, &headers, &params) else {
        return message(StatusCode::UNAUTHORIZED, "Unauthorized");
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Request body must be JSON",
        );
    };
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "`messages` must be a list",
        );
    };
    if messages.len() > MAX_BATCH {
        return message(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many messages to broadcast, please reduce the batch size",
        );
    }
    let limit = state.config.realtime.max_payload_bytes;
    let mut valid = Vec::with_capacity(messages.len());
    for item in messages {
        let (Some(topic), Some(event)) = (
            item.get("topic").and_then(Value::as_str),
            item.get("event").and_then(Value::as_str),
        ) else {
            return message(
                StatusCode::UNPROCESSABLE_ENTITY,
                "every message needs a `topic` and an `event`",
            );
        };
        let payload = item.get("payload").cloned().unwrap_or(Value::Null);
        if payload.to_string().len() > limit {
            return message(StatusCode::PAYLOAD_TOO_LARGE, "Payload too large");
        }
        let topic = topic.strip_prefix("realtime:").unwrap_or(topic).to_owned();
        let private = item
            .get("private")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        valid.push((topic, private, event.to_owned(), payload));
    }
    for (topic, private, event, payload) in valid {
        let message = UserBroadcast {
            event,
            body: BroadcastBody::Json(payload),
            meta: None,
        };
        send(&state, &caller, &topic, private, message).await;
    }
    StatusCode::ACCEPTED.into_response()
}

/// `POST /realtime/v1/api/broadcast/{topic}/events/{event}`: JSON or binary body.
pub(crate) async fn broadcast_one(
    State(state): State<RealtimeState>,
    Path((topic, event)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(caller) = caller(&state, &headers, &params) else {
        return message(StatusCode::UNAUTHORIZED, "Unauthorized");
    };
    if body.len() > state.config.realtime.max_payload_bytes {
        return message(StatusCode::PAYLOAD_TOO_LARGE, "Payload too large");
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_none_or(|value| value.contains("json"));
    let body = if is_json {
        match serde_json::from_slice::<Value>(&body) {
            Ok(value) => BroadcastBody::Json(value),
            Err(_) => {
                return message(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Request body must be JSON",
                );
            }
        }
    } else {
        BroadcastBody::Binary(body)
    };
    let private = params.get("private").is_some_and(|value| value == "true");
    let topic = topic.strip_prefix("realtime:").unwrap_or(&topic).to_owned();
    let message = UserBroadcast {
        event,
        body,
        meta: None,
    };
    send(&state, &caller, &topic, private, message).await;
    StatusCode::ACCEPTED.into_response()
}

/// `GET /realtime/v1/api/replication`: the slot, its lag and past resets (service role).
pub(crate) async fn replication_status(
    State(state): State<RealtimeState>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    match caller(&state, &headers, &params) {
        Some(caller) if caller.role() == "service_role" => {
            let status = runtime_for(&state).replication.status().await;
            axum::Json(status).into_response()
        }
        _ => message(StatusCode::UNAUTHORIZED, "Unauthorized"),
    }
}
