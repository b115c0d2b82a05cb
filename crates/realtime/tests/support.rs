//! A minimal realtime client speaking serializer 2.0.0, and helpers for servers with their own
//! replication slot.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use manifold_config::Config;
use manifold_testkit::{TestDb, TestServer};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for an expected frame.
pub const WAIT: Duration = Duration::from_secs(15);

/// A unique slot name for one test.
pub fn slot_name() -> String {
    format!("rt_test_{}", uuid_like())
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Starts a server on `db` with its own slot; `adjust` may change more settings.
pub async fn server(db: &TestDb, slot: &str, adjust: impl FnOnce(&mut Config)) -> TestServer {
    let slot = slot.to_owned();
    TestServer::start_with(db, move |config| {
        config.realtime.slot_name = slot;
        adjust(config);
    })
    .await
}

/// Drops a test slot once its reader has let go of it.
pub async fn drop_slot(db: &TestDb, slot: &str) {
    let admin = db.admin().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let row = admin
            .query_opt(
                "select active from pg_replication_slots where slot_name = $1",
                &[&slot],
            )
            .await
            .unwrap();
        match row {
            None => return,
            Some(row) if !row.get::<_, bool>(0) => {
                admin
                    .execute("select pg_drop_replication_slot($1)", &[&slot])
                    .await
                    .unwrap();
                return;
            }
            Some(_) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "slot {slot} stayed active"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// A websocket client.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_ref: u64,
    seen: VecDeque<Value>,
}

impl Client {
    /// Connects to `/realtime/v1/websocket` with `apikey` and serializer `vsn`.
    pub async fn connect(base_url: &str, apikey: &str, vsn: &str) -> Client {
        let url = format!(
            "{}/realtime/v1/websocket?apikey={apikey}&vsn={vsn}",
            base_url.replacen("http", "ws", 1)
        );
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Client {
            ws,
            next_ref: 1,
            seen: VecDeque::new(),
        }
    }

    /// Sends `[join_ref, ref, topic, event, payload]`; returns the ref.
    pub async fn push(
        &mut self,
        join_ref: Option<&str>,
        topic: &str,
        event: &str,
        payload: Value,
    ) -> String {
        let reference = self.next_ref.to_string();
        self.next_ref += 1;
        let join_ref = join_ref
            .map(str::to_owned)
            .unwrap_or_else(|| reference.clone());
        let frame = json!([join_ref, reference, topic, event, payload]).to_string();
        self.ws.send(Message::text(frame)).await.unwrap();
        reference
    }

    /// Sends a text frame as is (serializer 1.0.0 objects, malformed input).
    pub async fn send_raw(&mut self, text: String) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    /// Joins `topic` with `config`; returns (join_ref, reply payload).
    pub async fn join(
        &mut self,
        topic: &str,
        config: Value,
        token: Option<&str>,
    ) -> (String, Value) {
        let mut payload = json!({ "config": config });
        if let Some(token) = token {
            payload["access_token"] = json!(token);
        }
        let reference = self.next_ref.to_string();
        self.push(None, topic, "phx_join", payload).await;
        let reply = self
            .expect(|f| f[3] == "phx_reply" && f[1] == reference.as_str())
            .await;
        (reference, reply[4].clone())
    }

    /// The next frame matching `wanted` (earlier non-matching frames are kept for later).
    pub async fn expect(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        if let Some(index) = self.seen.iter().position(&wanted) {
            return self.seen.remove(index).unwrap();
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("expected frame did not arrive in time")
                .expect("socket closed")
                .unwrap();
            let Message::Text(text) = frame else { continue };
            let value: Value = serde_json::from_str(text.as_str()).unwrap();
            if wanted(&value) {
                return value;
            }
            self.seen.push_back(value);
        }
    }

    /// The raw socket, for tests that read frames themselves.
    pub fn socket(&mut self) -> &mut WebSocketStream<MaybeTlsStream<TcpStream>> {
        &mut self.ws
    }

    /// Frames received so far that no `expect` consumed.
    pub fn unconsumed(&self) -> &VecDeque<Value> {
        &self.seen
    }

    /// The next postgres_changes frame on `topic`.
    pub async fn change(&mut self, topic: &str) -> Value {
        let topic = topic.to_owned();
        let frame = self
            .expect(|f| f[3] == "postgres_changes" && f[2] == topic.as_str())
            .await;
        frame[4].clone()
    }
}
