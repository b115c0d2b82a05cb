//! A minimal realtime client speaking serializer 2.0.0, and helpers for servers with their own
//! replication slot.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use manifold_auth::ProjectKeys;
use manifold_config::{AuthConfig, Config};
use manifold_db::schema_cache::SchemaCacheStore;
use manifold_db::{Db, create_pool};
use manifold_testkit::{TestDb, TestServer};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

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

/// A server a test can stop and wait for, like a process exit.
pub struct Running {
    pub url: String,
    pub keys: ProjectKeys,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Starts a server on `db` with the default settings changed by `adjust`.
    pub async fn start(db: &TestDb, adjust: impl FnOnce(&mut Config)) -> Running {
        let mut config = Config::default();
        adjust(&mut config);
        let keys = ProjectKeys::generate(&AuthConfig::default()).unwrap();
        let pool = create_pool(&db.api_url, 4, Duration::from_secs(10)).unwrap();
        let api = Db::new(pool);
        let cache = SchemaCacheStore::load(&db.admin_url, config.rest.schemas.clone(), api.clone())
            .await
            .unwrap();
        let state = manifold_server::build_state(config, api, cache, &db.admin_url, keys.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(manifold_server::serve(listener, state, shutdown.clone()));
        Running {
            url,
            keys,
            shutdown,
            task,
        }
    }

    /// Stops the server and waits until realtime confirmed and let go of its slot; a stop that
    /// does not finish within [`WAIT`] fails the test.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the server did not finish shutting down")
            .unwrap()
            .unwrap();
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

    /// Like [`Client::expect`] for frames still to come, but returns the frame's text as
    /// sent (for checks on the exact JSON, e.g. number digits).
    pub async fn expect_text(&mut self, wanted: impl Fn(&Value) -> bool) -> String {
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
                return text.as_str().to_owned();
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
