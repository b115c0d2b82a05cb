//! postgres_changes end to end against a real server and slot: payload shapes, tenant
//! isolation by RLS (DELETE included), and SUBSCRIBED meaning "no later commit is missed".

use manifold_testkit::{TestDb, TestServer};
use serde_json::{Value, json};

use crate::support::{Client, drop_slot, server, slot_name};

const ORG_A: &str = "00000000-0000-0000-0000-00000000000a";
const ORG_B: &str = "00000000-0000-0000-0000-00000000000b";

const FIXTURE: &str = "
create table public.rt_items (
  id int8 primary key,
  org uuid not null,
  name text,
  tags text[],
  meta jsonb,
  at timestamptz,
  done boolean default false
);
alter table public.rt_items replica identity full;
alter table public.rt_items enable row level security;
create policy rt_items_members on public.rt_items for select to authenticated
  using (org = (auth.jwt() ->> 'organization_id')::uuid);
alter publication supabase_realtime add table public.rt_items;
";

async fn setup() -> (TestDb, String) {
    let db = TestDb::create().await;
    db.execute(FIXTURE).await;
    (db, slot_name())
}

fn member_token(server: &TestServer, org: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    server.jwt(&json!({
        "sub": "10000000-0000-0000-0000-000000000001",
        "role": "authenticated",
        "organization_id": org,
        "exp": exp,
    }))
}

#[tokio::test]
async fn insert_update_delete_arrive_with_the_supabase_payload() {
    let (db, slot) = setup().await;
    let server = server(&db, &slot, |_| {}).await;
    let token = member_token(&server, ORG_A);
    let mut client = Client::connect(&server.url, &server.keys.anon_key, "2.0.0").await;
    let binding = json!({"event": "*", "schema": "public", "table": "rt_items"});
    let (_, reply) = client
        .join(
            "realtime:items",
            json!({"postgres_changes": [binding], "private": false}),
            Some(&token),
        )
        .await;
    assert_eq!(reply["status"], "ok");
    let echoed = &reply["response"]["postgres_changes"][0];
    assert_eq!(echoed["event"], "*");
    assert_eq!(echoed["table"], "rt_items");
    assert!(echoed.get("filter").is_none(), "absent keys stay absent");
    let id = echoed["id"].as_u64().unwrap();
    let system = client.expect(|f| f[3] == "system").await;
    assert_eq!(system[4]["message"], "Subscribed to PostgreSQL");
    assert_eq!(system[4]["status"], "ok");

    let admin = db.admin().await;
    // Another tenant's row first: it must never arrive, so the first change seen is ours.
    admin
        .execute(
            "insert into rt_items (id, org, name) values (10, $1::text::uuid, 'theirs')",
            &[&ORG_B],
        )
        .await
        .unwrap();
    admin
        .execute(
            "insert into rt_items (id, org, name, tags, meta, at) values \
             (1, $1::text::uuid, 'a', '{x,\"y z\"}', '{\"k\": [1, true]}', '2025-01-02 03:04:05.5+00')",
            &[&ORG_A],
        )
        .await
        .unwrap();
    let insert = client.change("realtime:items").await;
    assert_eq!(insert["ids"], json!([id]));
    let data = &insert["data"];
    assert_eq!(data["schema"], "public");
    assert_eq!(data["table"], "rt_items");
    assert_eq!(data["type"], "INSERT");
    assert_eq!(data["errors"], Value::Null);
    assert!(data.get("old_record").is_none());
    let stamp = data["commit_timestamp"].as_str().unwrap();
    assert!(stamp.len() == 24 && stamp.ends_with('Z'), "{stamp}");
    assert_eq!(
        data["columns"],
        json!([
            {"name": "id", "type": "int8"}, {"name": "org", "type": "uuid"},
            {"name": "name", "type": "text"}, {"name": "tags", "type": "_text"},
            {"name": "meta", "type": "jsonb"}, {"name": "at", "type": "timestamptz"},
            {"name": "done", "type": "bool"}
        ])
    );
    assert_eq!(
        data["record"],
        json!({"id": 1, "org": ORG_A, "name": "a", "tags": ["x", "y z"], "meta": {"k": [1, true]},
               "at": "2025-01-02T03:04:05.5+00:00", "done": false})
    );

    admin
        .execute("update rt_items set name = 'b' where id = 1", &[])
        .await
        .unwrap();
    let update = client.change("realtime:items").await;
    assert_eq!(update["data"]["type"], "UPDATE");
    assert_eq!(update["data"]["record"]["name"], "b");
    assert_eq!(update["data"]["old_record"]["name"], "a");

    admin
        .execute("delete from rt_items where id = 10", &[])
        .await
        .unwrap();
    admin
        .execute("delete from rt_items where id = 1", &[])
        .await
        .unwrap();
    let delete = client.change("realtime:items").await;
    assert_eq!(delete["data"]["type"], "DELETE");
    assert_eq!(delete["data"]["old_record"]["id"], 1);
    assert!(delete["data"].get("record").is_none());
    // The other organization's insert and delete never reached this subscriber.
    assert!(
        client
            .unconsumed()
            .iter()
            .all(|f| f[3] != "postgres_changes"),
        "{:?}",
        client.unconsumed()
    );
    drop(server);
    drop_slot(&db, &slot).await;
}

#[tokio::test]
async fn bad_tables_and_filters_are_reported_as_system_errors() {
    let (db, slot) = setup().await;
    let server = server(&db, &slot, |_| {}).await;
    let mut client = Client::connect(&server.url, &server.keys.service_role_key, "1.0.0").await;
    let bindings = json!([
        {"event": "INSERT", "schema": "public", "table": "not_published"},
        {"event": "INSERT", "schema": "public", "table": "rt_items", "filter": "id=foo.1"},
        {"event": "INSERT", "schema": "public", "table": "rt_items", "filter": "id=eq.abc"},
    ]);
    let reference = "1";
    let frame = json!({"topic": "realtime:bad", "event": "phx_join", "ref": reference,
                       "join_ref": reference, "payload": {"config": {"postgres_changes": bindings}}});
    client.send_raw(frame.to_string()).await;
    let reply = client.expect(|f| f["event"] == "phx_reply").await;
    assert_eq!(reply["payload"]["status"], "ok");
    assert_eq!(
        reply["payload"]["response"]["postgres_changes"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let mut messages = Vec::new();
    for _ in 0..3 {
        let system = client.expect(|f| f["event"] == "system").await;
        assert_eq!(system["payload"]["status"], "error");
        assert_eq!(system["payload"]["extension"], "postgres_changes");
        messages.push(system["payload"]["message"].as_str().unwrap().to_owned());
    }
    assert!(
        messages[0].starts_with("Unable to subscribe to changes"),
        "{messages:?}"
    );
    assert!(
        messages[1].starts_with("Error parsing `filter` params"),
        "{messages:?}"
    );
    assert!(
        messages[2].contains("invalid input syntax for type bigint"),
        "{messages:?}"
    );
    drop(server);
    drop_slot(&db, &slot).await;
}

#[tokio::test]
async fn a_write_committed_right_after_subscribed_is_delivered_every_time() {
    let (db, slot) = setup().await;
    let server = server(&db, &slot, |config| {
        config.realtime.max_joins_per_second = 100_000;
    })
    .await;
    let mut client = Client::connect(&server.url, &server.keys.service_role_key, "2.0.0").await;
    let admin = db.admin().await;
    // The test cluster runs with synchronous_commit off, where WAL reaches the walsender only
    // at the WAL writer's next flush (up to 200 ms); flushing at commit keeps 1000 trials short.
    admin
        .execute("set synchronous_commit = on", &[])
        .await
        .unwrap();
    let insert = admin
        .prepare("insert into rt_items (id, org) values ($1, $2::text::uuid)")
        .await
        .unwrap();
    for trial in 0..1000_i64 {
        let topic = format!("realtime:trial-{trial}");
        let binding = json!({"event": "INSERT", "schema": "public", "table": "rt_items",
                             "filter": format!("id=eq.{trial}")});
        let (join_ref, reply) = client
            .join(&topic, json!({"postgres_changes": [binding]}), None)
            .await;
        assert_eq!(reply["status"], "ok", "trial {trial}: {reply}");
        admin.execute(&insert, &[&trial, &ORG_A]).await.unwrap();
        let change = client.change(&topic).await;
        assert_eq!(change["data"]["record"]["id"], trial, "trial {trial}");
        client
            .push(Some(&join_ref), &topic, "phx_leave", json!({}))
            .await;
        client
            .expect(|f| f[3] == "phx_close" && f[2] == topic.as_str())
            .await;
    }
    drop(server);
    drop_slot(&db, &slot).await;
}
