//! `GET /realtime/v1/websocket`: the key is checked before upgrading (a 401 JSON answer
//! otherwise), then one session task reads frames and one writer task owns the sink.

mod join;
mod session;
pub(crate) mod token;

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::RealtimeState;
use crate::protocol::Vsn;
use crate::runtime::runtime_for;

/// Frames beyond the payload limit that a socket may still carry (envelope, topic, refs).
const FRAME_OVERHEAD: usize = 64 * 1024;
/// How long the writer keeps delivering after shutdown began.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(1);
/// How long the closing handshake may take once the writer stops.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

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
    let config = &runtime.state.config.realtime;
    let queue_size = config.socket_queue.max(16);
    let (queue, queued) = mpsc::channel(queue_size);
    let (control, controlled) = mpsc::channel(64);
    let writer_gone = CancellationToken::new();
    let writer = Writer {
        sink,
        queued,
        controlled,
        send_timeout: Duration::from_millis(config.send_timeout_ms.max(1)),
        shutdown: runtime.shutdown.clone(),
        gone: writer_gone.clone(),
    };
    let writer = runtime.tracker.spawn(writer.run());
    session::Session::new(runtime, vsn, apikey, queue, control, writer_gone)
        .run(stream)
        .await;
    let _ = writer.await;
}

/// Queued frames written to a socket at once, at most.
const WRITE_BATCH: usize = 64;

/// The only task that writes to the socket, so frames leave in the order they were queued.
/// Control frames (closing a slow consumer) go first.
struct Writer {
    sink: futures_util::stream::SplitSink<WebSocket, Message>,
    queued: mpsc::Receiver<Message>,
    controlled: mpsc::Receiver<Message>,
    send_timeout: Duration,
    shutdown: CancellationToken,
    /// Cancelled when the writer stops, so the session ends with it.
    gone: CancellationToken,
}

impl Writer {
    async fn run(mut self) {
        // After shutdown a client gets a moment to take its last frames and the close; one
        // that does not read is dropped then, so shutdown never waits on a client.
        let shutdown = self.shutdown.clone();
        let stop = async move {
            shutdown.cancelled().await;
            tokio::time::sleep(SHUTDOWN_FLUSH).await;
        };
        tokio::pin!(stop);
        loop {
            let message = tokio::select! {
                biased;
                () = &mut stop => break,
                control = self.controlled.recv() => match control {
                    Some(message) => message,
                    None => break,
                },
                next = self.queued.recv() => match next {
                    Some(message) => message,
                    None => break,
                },
            };
            let mut closing = matches!(message, Message::Close(_));
            // Frames already queued behind this one go out with it in one write: under load a
            // socket gets several changes per batch, and a write per frame would cost a system
            // call each.
            let mut frames = vec![message];
            while !closing && frames.len() < WRITE_BATCH {
                match self.queued.try_recv() {
                    Ok(next) => {
                        closing = matches!(next, Message::Close(_));
                        frames.push(next);
                    }
                    Err(_) => break,
                }
            }
            let sink = &mut self.sink;
            let write = async move {
                for frame in frames {
                    sink.feed(frame).await?;
                }
                sink.flush().await
            };
            // A client whose TCP window stays shut would block the write forever: it is closed
            // after the send timeout like any other dead peer.
            let sent = tokio::select! {
                () = &mut stop => false,
                sent = tokio::time::timeout(self.send_timeout, write) => {
                    if sent.is_err() {
                        tracing::info!("closed a realtime socket whose client stopped reading");
                    }
                    matches!(sent, Ok(Ok(())))
                }
            };
            if !sent || closing {
                break;
            }
        }
        self.gone.cancel();
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.sink.close()).await;
    }
}
