//! `GET /realtime/v1/websocket`: the key is checked before upgrading (a 401 JSON answer
//! otherwise), then one session task reads frames and one writer task owns the sink.

mod join;
mod session;
pub(crate) mod token;

use std::collections::HashMap;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::mpsc;

use crate::RealtimeState;
use crate::protocol::Vsn;
use crate::runtime::runtime_for;

/// Frames beyond the payload limit that a socket may still carry (envelope, topic, refs).
const FRAME_OVERHEAD: usize = 64 * 1024;

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

/// The upgrade handler.
pub(crate) async fn websocket(
    State(state): State<RealtimeState>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(vsn) = Vsn::parse(params.get("vsn").map(String::as_str)) else {
        return refuse(StatusCode::BAD_REQUEST, "Unsupported serializer version");
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let apikey = params
        .get("apikey")
        .cloned()
        .or_else(|| header("apikey"))
        .or_else(|| header("x-api-key"))
        .unwrap_or_default();
    if let Err(error) = token::verify(&state.gatekeeper, &apikey) {
        return refuse(StatusCode::UNAUTHORIZED, &error.to_string());
    }
    let runtime = runtime_for(&state);
    if runtime.shutdown.is_cancelled() {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "RealtimeRestarting");
    }
    let limit = state.config.realtime.max_payload_bytes + FRAME_OVERHEAD;
    upgrade
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| serve(runtime, socket, vsn, apikey))
}

async fn serve(
    runtime: std::sync::Arc<crate::runtime::Runtime>,
    socket: WebSocket,
    vsn: Vsn,
    apikey: String,
) {
    let (sink, stream) = socket.split();
    let queue_size = runtime.state.config.realtime.socket_queue.max(16);
    let (queue, queued) = mpsc::channel(queue_size);
    let (control, controlled) = mpsc::channel(64);
    let writer = runtime.tracker.spawn(write(sink, queued, controlled));
    session::Session::new(runtime, vsn, apikey, queue, control)
        .run(stream)
        .await;
    let _ = writer.await;
}

/// The only task that writes to the socket, so frames leave in the order they were queued.
/// Control frames (closing a slow consumer) go first.
async fn write(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut queued: mpsc::Receiver<Message>,
    mut controlled: mpsc::Receiver<Message>,
) {
    loop {
        let message = tokio::select! {
            biased;
            control = controlled.recv() => match control {
                Some(message) => message,
                None => break,
            },
            next = queued.recv() => match next {
                Some(message) => message,
                None => break,
            },
        };
        let closing = matches!(message, Message::Close(_));
        if sink.send(message).await.is_err() || closing {
            break;
        }
    }
    let _ = sink.close().await;
}
