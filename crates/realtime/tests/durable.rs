//! The durable slot: a server that stops and starts again delivers what was committed while
//! it was down to the clients that rejoin; a slot too far behind is reset and reported.

use std::time::Duration;

use manifold_config::Config;
use manifold_testkit::TestDb;
use serde_json::{Value, json};

use crate::support::{Client, Running, drop_slot, slot_name};

const FIXTURE: &str = "
create table public.rt_orders (id int8 primary key, note text);
alter publication supabase_realtime add table public.rt_orders;
create table public.rt_scratch (id int8, filler text);
";

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

#[tokio::test]
async fn the_running_watchdog_resets_a_lagging_slot_and_tells_open_channels() {
    let db = TestDb::create().await;
    db.execute(FIXTURE).await;
    let slot = slot_name();
    let slot_for_config = slot.clone();
    let running = Running::start(&db, move |config| {
        config.realtime.slot_name = slot_for_config;
        config.realtime.max_slot_lag_bytes = 256 * 1024;
        config.realtime.slot_check_interval_ms = 100;
    })
    .await;
    let mut client = Client::connect(&running.url, &running.keys.service_role_key, "2.0.0").await;
    subscribe(&mut client).await;

    // Megabytes of WAL in one go: the confirmed position trails by far more than the limit
    // at the next check, while the server runs and the channel is open.
    db.execute(
        "insert into rt_scratch select g, repeat('x', 500) from generate_series(1, 20000) g",
    )
    .await;
    let reported = client
        .expect(|f| f[3] == "system" && f[4]["status"] == "error")
        .await;
    assert_eq!(reported[2], "realtime:orders");
    assert_eq!(reported[4]["extension"], "postgres_changes");
    assert_eq!(
        reported[4]["message"],
        "Replication slot was reset because it fell too far behind: changes may have been missed"
    );

    // The report comes once the lagging slot is gone; a join made now waits for the fresh
    // stream, which then delivers.
    let binding = json!({"event": "INSERT", "schema": "public", "table": "rt_orders"});
    let (_, reply) = client
        .join(
            "realtime:orders-again",
            json!({"postgres_changes": [binding]}),
            None,
        )
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
    db.execute("insert into rt_orders values (100, 'after')")
        .await;
    let change = client.change("realtime:orders-again").await;
    assert_eq!(change["data"]["record"]["note"], "after");
    running.stop().await;
    drop_slot(&db, &slot).await;
}
