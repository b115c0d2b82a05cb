//! The websocket surface: the key checked before upgrading, heartbeats, the configurable limits
//! with their error texts, `select` lists and column privileges in payloads, and a slow
//! consumer that is closed without stalling anyone else, a client that stops reading (closed
//! after the send timeout, and never holding up shutdown), joins that do not wait for
//! replication, and private channels without any `realtime.messages` policy.

use futures_util::StreamExt;
use manifold_testkit::{TestDb, TestServer};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Client, Running, WAIT, drop_slot, server, slot_name};

fn token(server: &TestServer, role: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    server.jwt(&json!({"sub": "20000000-0000-0000-0000-000000000002", "role": role, "exp": exp}))
}

#[tokio::test]
async fn a_bad_key_is_refused_with_json_before_the_upgrade_and_heartbeats_are_answered() {
    let db = TestDb::create().await;
    let slot = slot_name();
    let server = server(&db, &slot, |_| {}).await;
    let http = reqwest::Client::new();
    let url = server.endpoint("/realtime/v1/websocket");
    for (query, message) in [
        ("vsn=2.0.0", "API key is missing"),
        (
            "apikey=nope&vsn=2.0.0",
            "The token provided is not a valid JWT",
        ),
    ] {
        let response = http
            .get(format!("{url}?{query}"))
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{query}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({ "error": message }));
    }
    let expired = server.jwt(&json!({"role": "anon", "exp": 1_000_000_000}));
    let response = http
        .get(format!("{url}?apikey={expired}&vsn=2.0.0"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("Token has expired"),
        "{body}"
    );

    let mut client = Client::connect(&server.url, &server.keys.anon_key, "2.0.0").await;
    client
        .send_raw(r#"[null,"hb1","phoenix","heartbeat",{}]"#.to_owned())
        .await;
    let reply = client
        .expect(|f| f[3] == "phx_reply" && f[1] == "hb1")
        .await;
    assert_eq!(
        reply,
        json!([null, "hb1", "phoenix", "phx_reply", {"status": "ok", "response": {}}])
    );
    drop(server);
    drop_slot(&db, &slot).await;
}

#[tokio::test]
async fn channel_join_and_payload_limits_answer_with_supabase_errors() {
    let db = TestDb::create().await;
    let slot = slot_name();
    let server = server(&db, &slot, |config| {
        config.realtime.max_channels_per_socket = 2;
        config.realtime.max_payload_bytes = 1024;
    })
    .await;
    let mut client = Client::connect(&server.url, &server.keys.anon_key, "2.0.0").await;
    let (join_ref, reply) = client
        .join("realtime:one", json!({"broadcast": {"ack": true}}), None)
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
    let (_, reply) = client.join("realtime:two", json!({}), None).await;
    assert_eq!(reply["status"], "ok", "{reply}");
    let (_, reply) = client.join("realtime:three", json!({}), None).await;
    assert_eq!(
        reply,
        json!({"status": "error", "response": {"reason": "ChannelRateLimitReached: Too many channels"}})
    );
    // Rejoining a joined topic replaces it, so it does not count as one more channel.
    let (join_ref_again, reply) = client
        .join("realtime:one", json!({"broadcast": {"ack": true}}), None)
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
    assert_ne!(join_ref, join_ref_again);

    let big = "x".repeat(2048);
    let reference = client
        .push(
            Some(&join_ref_again),
            "realtime:one",
            "broadcast",
            json!({"type": "broadcast", "event": "big", "payload": {"data": big}}),
        )
        .await;
    let reply = client
        .expect(|f| f[3] == "phx_reply" && f[1] == reference.as_str())
        .await;
    assert_eq!(
        reply[4],
        json!({"status": "error", "response": {"error": "payload_size_exceeded"}})
    );
    let reference = client
        .push(
            Some(&join_ref_again),
            "realtime:one",
            "broadcast",
            json!({"type": "broadcast", "event": "small", "payload": {"data": "ok"}}),
        )
        .await;
    let reply = client
        .expect(|f| f[3] == "phx_reply" && f[1] == reference.as_str())
        .await;
    assert_eq!(reply[4], json!({"status": "ok", "response": {}}));
    drop(server);
    drop_slot(&db, &slot).await;
}

#[tokio::test]
async fn joins_beyond_the_per_second_limit_are_refused() {
    let db = TestDb::create().await;
    let slot = slot_name();
    let server = server(&db, &slot, |config| {
        config.realtime.max_joins_per_second = 3;
    })
    .await;
    let mut client = Client::connect(&server.url, &server.keys.anon_key, "2.0.0").await;
    // The first join starts the replication reader, which may take longer than the window.
    let (_, reply) = client.join("realtime:warm", json!({}), None).await;
    assert_eq!(reply["status"], "ok", "{reply}");
    let mut references = Vec::new();
    for n in 0..4 {
        let topic = format!("realtime:burst-{n}");
        references.push(
            client
                .push(None, &topic, "phx_join", json!({"config": {}}))
                .await,
        );
    }
    let mut statuses = Vec::new();
    for reference in &references {
        let reply = client
            .expect(|f| f[3] == "phx_reply" && f[1] == reference.as_str())
            .await;
        statuses.push(reply[4].clone());
    }
    assert_eq!(statuses[0]["status"], "ok", "{statuses:?}");
    assert_eq!(
        statuses[3],
        json!({"status": "error", "response": {"reason": "ClientJoinRateLimitReached: Too many joins per second"}})
    );
    drop(server);
    drop_slot(&db, &slot).await;
}

#[tokio::test]
async fn select_lists_and_column_privileges_shape_the_payload() {
    let db = TestDb::create().await;
    db.execute(
        "create table public.rt_cols (id int8 primary key, name text, note text, secret text);
         revoke select on public.rt_cols from authenticated;
         grant select (id, name, note) on public.rt_cols to authenticated;
         alter publication supabase_realtime add table public.rt_cols;",
    )
    .await;
    let slot = slot_name();
    let server = server(&db, &slot, |_| {}).await;
    let token = token(&server, "authenticated");
    let mut client = Client::connect(&server.url, &server.keys.anon_key, "2.0.0").await;
    let narrow =
        json!({"event": "INSERT", "schema": "public", "table": "rt_cols", "select": ["name"]});
    let wide = json!({"event": "INSERT", "schema": "public", "table": "rt_cols"});
    let (_, reply) = client
        .join(
            "realtime:cols",
            json!({"postgres_changes": [narrow, wide]}),
            Some(&token),
        )
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
    let narrow_id = reply["response"]["postgres_changes"][0]["id"].clone();
    let wide_id = reply["response"]["postgres_changes"][1]["id"].clone();
    assert_eq!(
        reply["response"]["postgres_changes"][0]["select"],
        json!(["name"])
    );
    client
        .expect(|f| f[3] == "system" && f[4]["message"] == "Subscribed to PostgreSQL")
        .await;
    db.execute("insert into rt_cols values (1, 'n', 'x', 'hidden')")
        .await;
    let mut by_ids = std::collections::HashMap::new();
    for _ in 0..2 {
        let change = client.change("realtime:cols").await;
        by_ids.insert(change["ids"].to_string(), change["data"].clone());
    }
    let narrow_data = &by_ids[&json!([narrow_id]).to_string()];
    assert_eq!(
        narrow_data["columns"],
        json!([{"name": "id", "type": "int8"}, {"name": "name", "type": "text"}])
    );
    assert_eq!(narrow_data["record"], json!({"id": 1, "name": "n"}));
    let wide_data = &by_ids[&json!([wide_id]).to_string()];
    assert_eq!(
        wide_data["record"],
        json!({"id": 1, "name": "n", "note": "x"}),
        "a column the role may not select never appears"
    );
    assert_eq!(wide_data["columns"].as_array().unwrap().len(), 3);

    // A select list naming a column the role cannot read is refused with a system error.
    let hidden =
        json!({"event": "INSERT", "schema": "public", "table": "rt_cols", "select": ["secret"]});
    let (_, reply) = client
        .join(
            "realtime:hidden",
            json!({"postgres_changes": [hidden]}),
            Some(&token),
        )
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
    let system = client
        .expect(|f| f[3] == "system" && f[2] == "realtime:hidden")
        .await;
    assert_eq!(system[4]["status"], "error", "{system}");
    drop(server);
    drop_slot(&db, &slot).await;
}

#[tokio::test]
async fn a_slow_consumer_is_closed_and_never_stalls_the_others() {
    const MESSAGES: usize = 300;
    let db = TestDb::create().await;
    let slot = slot_name();
    let server = server(&db, &slot, |config| {
        config.realtime.socket_queue = 16;
    })
    .await;
    let config = json!({"broadcast": {"self": false}});
    let mut fast = Client::connect(&server.url, &server.keys.anon_key, "2.0.0").await;
    let (_, reply) = fast.join("realtime:flood", config.clone(), None).await;
    assert_eq!(reply["status"], "ok");
    let mut slow = Client::connect(&server.url, &server.keys.anon_key, "2.0.0").await;
    let (_, reply) = slow.join("realtime:flood", config, None).await;
    assert_eq!(reply["status"], "ok");

    // 300 messages of ~100 KB: far more than the socket buffers and the 16-frame queue of a
    // client that does not read. Each one is sent only after the fast client has it.
    let http = reqwest::Client::new();
    let filler = "y".repeat(100 * 1024);
    for n in 0..MESSAGES {
        let response = http
            .post(server.endpoint("/realtime/v1/api/broadcast"))
            .header("apikey", &server.keys.service_role_key)
            .json(&json!({"messages": [{"topic": "flood", "event": "m", "payload": {"n": n, "filler": filler}}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let got = fast
            .expect(|f| f[3] == "broadcast" && f[2] == "realtime:flood")
            .await;
        assert_eq!(
            got[4]["payload"]["n"], n,
            "the fast client gets every message in order"
        );
    }

    // The slow client now reads what is left: some broadcasts, then the system error and
    // phx_close, then the socket closes.
    let mut broadcasts = 0;
    let mut saw_error = false;
    let mut saw_close = false;
    let deadline = tokio::time::Instant::now() + WAIT;
    let ws = slow.socket();
    while let Ok(Some(frame)) = tokio::time::timeout_at(deadline, ws.next()).await {
        let Ok(Message::Text(text)) = frame else {
            continue;
        };
        let frame: Value = serde_json::from_str(text.as_str()).unwrap();
        match frame[3].as_str() {
            Some("broadcast") => broadcasts += 1,
            Some("system") => {
                assert_eq!(frame[4]["status"], "error");
                assert!(
                    frame[4]["message"]
                        .as_str()
                        .unwrap()
                        .starts_with("Too many messages queued"),
                    "{frame}"
                );
                saw_error = true;
            }
            Some("phx_close") => saw_close = true,
            _ => {}
        }
    }
    assert!(
        saw_error && saw_close,
        "the slow client was told and closed"
    );
    assert!(
        broadcasts < MESSAGES,
        "the slow client was closed, not buffered forever"
    );
    assert!(
        tokio::time::Instant::now() < deadline,
        "the slow socket was closed by the server"
    );
    drop(server);
    drop_slot(&db, &slot).await;
}

/// Broadcasts ~100 KB messages on `topic` by HTTP, `count` of them.
async fn flood(url: &str, service_key: &str, topic: &str, count: usize) {
    let http = reqwest::Client::new();
    let filler = "z".repeat(100 * 1024);
    for n in 0..count {
        let response = http
            .post(format!("{url}/realtime/v1/api/broadcast"))
            .header("apikey", service_key)
            .json(&json!({"messages": [{"topic": topic, "event": "m", "payload": {"n": n, "filler": filler}}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
    }
}

#[tokio::test]
async fn shutdown_completes_while_a_client_has_stopped_reading() {
    let db = TestDb::create().await;
    let slot = slot_name();
    let running = Running::start(&db, |config| {
        config.realtime.slot_name = slot.clone();
        // Only shutdown itself may end the stalled writer: no send timeout, no overflow.
        config.realtime.send_timeout_ms = 3_600_000;
        config.realtime.socket_queue = 100_000;
    })
    .await;
    let mut stalled = Client::connect(&running.url, &running.keys.anon_key, "2.0.0").await;
    let (_, reply) = stalled.join("realtime:stall", json!({}), None).await;
    assert_eq!(reply["status"], "ok");
    // 30 MB for a client that reads nothing: far more than the socket buffers hold, so the
    // writer is stuck in a send when shutdown begins.
    flood(&running.url, &running.keys.service_role_key, "stall", 300).await;
    running.stop().await;
    drop(stalled);
    drop_slot(&db, &slot).await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_after_the_send_timeout() {
    let db = TestDb::create().await;
    let slot = slot_name();
    let server = server(&db, &slot, |config| {
        config.realtime.send_timeout_ms = 300;
        // The queue never overflows here: only the send timeout can close the socket.
        config.realtime.socket_queue = 100_000;
    })
    .await;
    let watch_config = |key: &str| json!({"presence": {"key": key, "enabled": true}});
    let mut observer = Client::connect(&server.url, &server.keys.anon_key, "2.0.0").await;
    let (_, reply) = observer
        .join("realtime:watch", watch_config("observer"), None)
        .await;
    assert_eq!(reply["status"], "ok");
    let mut stalled = Client::connect(&server.url, &server.keys.anon_key, "2.0.0").await;
    let (join_ref, reply) = stalled
        .join("realtime:watch", watch_config("stalled"), None)
        .await;
    assert_eq!(reply["status"], "ok");
    let track = stalled
        .push(
            Some(&join_ref),
            "realtime:watch",
            "presence",
            json!({"type": "presence", "event": "track", "payload": {"at": 1}}),
        )
        .await;
    stalled
        .expect(|f| f[3] == "phx_reply" && f[1] == track.as_str())
        .await;
    observer
        .expect(|f| f[3] == "presence_diff" && f[4]["joins"].get("stalled").is_some())
        .await;
    let (_, reply) = stalled.join("realtime:stall", json!({}), None).await;
    assert_eq!(reply["status"], "ok");

    // Flood the stalled client until the server gives up on it: its presence then leaves.
    const LIMIT: usize = 3000;
    let flooding = flood(&server.url, &server.keys.service_role_key, "stall", LIMIT);
    let left =
        observer.expect(|f| f[3] == "presence_diff" && f[4]["leaves"].get("stalled").is_some());
    tokio::select! {
        () = flooding => panic!("{LIMIT} messages sent and the stalled client is still open"),
        left = left => assert_eq!(left[2], "realtime:watch"),
    }
    // What the client can still read is what was in flight; then the socket ends.
    let ws = stalled.socket();
    let mut received = 0;
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("the stalled socket was closed by the server")
        {
            Some(Ok(Message::Text(_))) => received += 1,
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break,
        }
    }
    assert!(received < LIMIT, "the client was closed, not served late");
    drop(server);
    drop_slot(&db, &slot).await;
}

#[tokio::test]
async fn broadcast_and_presence_joins_never_wait_for_replication() {
    let db = TestDb::create().await;
    // An invalid slot name: the replication stream can never start, and a join that waited
    // for it would wait a day.
    let server = TestServer::start_with(&db, |config| {
        config.realtime.slot_name = "not a valid slot".to_owned();
        config.realtime.join_sync_timeout_ms = 86_400_000;
    })
    .await;
    let mut client = Client::connect(&server.url, &server.keys.anon_key, "2.0.0").await;
    let config = json!({"broadcast": {"self": true}, "presence": {"key": "me", "enabled": true}});
    let (join_ref, reply) = client.join("realtime:lobby", config, None).await;
    assert_eq!(reply["status"], "ok");
    assert_eq!(reply["response"], json!({"postgres_changes": []}));
    let state = client.expect(|f| f[3] == "presence_state").await;
    assert_eq!(state[4], json!({}));
    client
        .push(
            Some(&join_ref),
            "realtime:lobby",
            "broadcast",
            json!({"type": "broadcast", "event": "hi", "payload": {"n": 1}}),
        )
        .await;
    let echoed = client.expect(|f| f[3] == "broadcast").await;
    assert_eq!(echoed[4]["payload"], json!({"n": 1}));
}

#[tokio::test]
async fn a_private_channel_is_refused_while_realtime_messages_has_no_policy() {
    let db = TestDb::create().await;
    let admin = db.admin().await;
    let policies: i64 = admin
        .query_one(
            "select count(*) from pg_policies where schemaname = 'realtime' and tablename = 'messages'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        policies, 0,
        "the migrations ship no realtime.messages policy"
    );
    let slot = slot_name();
    let server = server(&db, &slot, |_| {}).await;
    let mut client = Client::connect(&server.url, &server.keys.anon_key, "2.0.0").await;
    let user = token(&server, "authenticated");
    for (topic, key) in [
        ("realtime:ops", Some(user.as_str())),
        ("realtime:ops-anon", None),
    ] {
        let (_, reply) = client.join(topic, json!({"private": true}), key).await;
        assert_eq!(reply["status"], "error", "{topic}: {reply}");
        let name = topic.strip_prefix("realtime:").unwrap();
        assert_eq!(
            reply["response"]["reason"],
            format!(
                "Unauthorized: You do not have permissions to read from this Channel topic: {name}"
            )
        );
    }
    // The service role bypasses row security, as on Supabase.
    let (_, reply) = client
        .join(
            "realtime:ops",
            json!({"private": true}),
            Some(&server.keys.service_role_key),
        )
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
    drop(server);
    drop_slot(&db, &slot).await;
}
