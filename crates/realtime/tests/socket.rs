//! The websocket surface: the key checked before upgrading, heartbeats, the configurable limits
//! with their error texts, `select` lists and column privileges in payloads, and a slow
//! consumer that is closed without stalling anyone else.

use futures_util::StreamExt;
use manifold_testkit::{TestDb, TestServer};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Client, WAIT, drop_slot, server, slot_name};

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
