//! The durable slot: a server that stops and starts again delivers what was committed while
//! it was down to the clients that rejoin; a slot too far behind is reset and reported.

use std::time::Duration;

use manifold_auth::ProjectKeys;
use manifold_config::{AuthConfig, Config};
use manifold_db::schema_cache::SchemaCacheStore;
use manifold_db::{Db, create_pool};
use manifold_testkit::TestDb;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::support::{Client, drop_slot, slot_name};

const FIXTURE: &str = "
create table public.rt_orders (id int8 primary key, note text);
alter publication supabase_realtime add table public.rt_orders;
create table public.rt_scratch (id int8, filler text);
";

/// A server this test can stop and wait for, like a process exit.
struct Running {
    url: String,
    keys: ProjectKeys,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn start(db: &TestDb, adjust: impl FnOnce(&mut Config)) -> Running {
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

    /// Stops the server and waits until realtime confirmed and let go of its slot.
    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

async fn subscribe(client: &mut Client) {
    let binding = json!({"event": "INSERT", "schema": "public", "table": "rt_orders"});
    let (_, reply) = client
        .join(
            "realtime:orders",
            json!({"postgres_changes": [binding]}),
            None,
        )
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
}

#[tokio::test]
async fn changes_committed_while_the_server_was_down_arrive_after_restart() {
    let db = TestDb::create().await;
    db.execute(FIXTURE).await;
    let slot = slot_name();
    let settings = |slot: String| {
        move |config: &mut Config| {
            config.realtime.slot_name = slot;
            config.realtime.resume_grace_ms = 5_000;
        }
    };
    let first = Running::start(&db, settings(slot.clone())).await;
    let mut client = Client::connect(&first.url, &first.keys.service_role_key, "2.0.0").await;
    subscribe(&mut client).await;
    db.execute("insert into rt_orders values (1, 'before')")
        .await;
    assert_eq!(
        client.change("realtime:orders").await["data"]["record"]["id"],
        1
    );
    first.stop().await;

    db.execute("insert into rt_orders values (2, 'while down'), (3, 'while down')")
        .await;

    let second = Running::start(&db, settings(slot.clone())).await;
    let mut client = Client::connect(&second.url, &second.keys.service_role_key, "2.0.0").await;
    subscribe(&mut client).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let change = client.change("realtime:orders").await;
        ids.push(change["data"]["record"]["id"].as_i64().unwrap());
    }
    assert_eq!(ids, [2, 3]);
    db.execute("insert into rt_orders values (4, 'after')")
        .await;
    assert_eq!(
        client.change("realtime:orders").await["data"]["record"]["id"],
        4
    );
    second.stop().await;
    drop_slot(&db, &slot).await;
}

#[tokio::test]
async fn a_slot_too_far_behind_is_reset_and_reported() {
    let db = TestDb::create().await;
    db.execute(FIXTURE).await;
    let slot = slot_name();
    let settings = |slot: String| {
        move |config: &mut Config| {
            config.realtime.slot_name = slot;
            config.realtime.max_slot_lag_bytes = 1024 * 1024;
        }
    };
    let first = Running::start(&db, settings(slot.clone())).await;
    let mut client = Client::connect(&first.url, &first.keys.service_role_key, "2.0.0").await;
    subscribe(&mut client).await;
    first.stop().await;

    // Several megabytes of WAL while nobody reads the slot.
    db.execute(
        "insert into rt_scratch select g, repeat('x', 500) from generate_series(1, 20000) g",
    )
    .await;

    let second = Running::start(&db, settings(slot.clone())).await;
    let http = reqwest::Client::new();
    let status_url = format!("{}/realtime/v1/api/replication", second.url);
    let mut status = Value::Null;
    for _ in 0..200 {
        status = http
            .get(&status_url)
            .header("apikey", &second.keys.service_role_key)
            .header(
                "authorization",
                format!("Bearer {}", second.keys.service_role_key),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["resets"].as_array().is_some_and(|r| !r.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resets = status["resets"].as_array().expect("status lists resets");
    assert_eq!(resets.len(), 1, "{status}");
    assert!(resets[0]["lag_bytes"].as_i64().unwrap() > 1024 * 1024);
    // Anonymous callers do not see operator status.
    let denied = http
        .get(&status_url)
        .header("apikey", &second.keys.anon_key)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);

    // A fresh slot serves new subscribers.
    let mut client = Client::connect(&second.url, &second.keys.service_role_key, "2.0.0").await;
    subscribe(&mut client).await;
    db.execute("insert into rt_orders values (7, 'fresh')")
        .await;
    assert_eq!(
        client.change("realtime:orders").await["data"]["record"]["id"],
        7
    );
    second.stop().await;
    drop_slot(&db, &slot).await;
}
