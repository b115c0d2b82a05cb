//! postgres_changes end to end against a real server and slot: payload shapes (key-only old
//! records, exact numerics), tenant isolation by RLS (DELETE included), SUBSCRIBED meaning "no
//! later commit is missed", subscriptions following DDL, changes held (not lost) while the
//! database cannot authorize them, and huge transactions reported.

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

/// Joins `topic` with one binding and waits for "Subscribed to PostgreSQL".
async fn subscribe(client: &mut Client, topic: &str, binding: Value, token: Option<&str>) {
    let (_, reply) = client
        .join(topic, json!({"postgres_changes": [binding]}), token)
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
    let topic = topic.to_owned();
    let system = client
        .expect(|f| f[3] == "system" && f[2] == topic.as_str())
        .await;
    assert_eq!(system[4]["message"], "Subscribed to PostgreSQL", "{system}");
}

#[tokio::test]
async fn old_record_holds_only_the_primary_key_without_replica_identity_full() {
    let (db, slot) = setup().await;
    db.execute(
        "create table public.rt_plain (id int8 primary key, note text, qty int);
         grant select on public.rt_plain to anon;
         alter publication supabase_realtime add table public.rt_plain;",
    )
    .await;
    let server = server(&db, &slot, |_| {}).await;
    let mut client = Client::connect(&server.url, &server.keys.anon_key, "2.0.0").await;
    let binding = json!({"event": "*", "schema": "public", "table": "rt_plain"});
    subscribe(&mut client, "realtime:plain", binding, None).await;
    db.execute(
        "insert into rt_plain values (1, 'a', 1);
         update rt_plain set note = 'b' where id = 1;
         update rt_plain set id = 2 where id = 1;
         delete from rt_plain where id = 2;",
    )
    .await;
    let insert = client.change("realtime:plain").await;
    assert_eq!(
        insert["data"]["record"],
        json!({"id": 1, "note": "a", "qty": 1})
    );
    let update = client.change("realtime:plain").await;
    assert_eq!(
        update["data"]["record"],
        json!({"id": 1, "note": "b", "qty": 1})
    );
    assert_eq!(update["data"]["old_record"], json!({"id": 1}));
    let rekey = client.change("realtime:plain").await;
    assert_eq!(
        rekey["data"]["record"],
        json!({"id": 2, "note": "b", "qty": 1})
    );
    assert_eq!(rekey["data"]["old_record"], json!({"id": 1}));
    let delete = client.change("realtime:plain").await;
    assert_eq!(delete["data"]["type"], "DELETE");
    assert_eq!(delete["data"]["old_record"], json!({"id": 2}));
    assert!(delete["data"].get("record").is_none());
    drop(server);
    drop_slot(&db, &slot).await;
}

#[tokio::test]
async fn numerics_keep_every_digit_in_policies_and_payloads() {
    let (db, slot) = setup().await;
    db.execute(
        "create table public.rt_precise (id int8 primary key, org uuid not null, amount numeric,
           amounts numeric[], doc jsonb);
         alter table public.rt_precise enable row level security;
         create policy rt_precise_above on public.rt_precise for select to authenticated
           using (org = (auth.jwt() ->> 'organization_id')::uuid and amount > 0.1);
         grant select on public.rt_precise to authenticated;
         alter publication supabase_realtime add table public.rt_precise;",
    )
    .await;
    let server = server(&db, &slot, |_| {}).await;
    let token = member_token(&server, ORG_A);
    let mut client = Client::connect(&server.url, &server.keys.anon_key, "2.0.0").await;
    let binding = json!({"event": "INSERT", "schema": "public", "table": "rt_precise"});
    subscribe(&mut client, "realtime:precise", binding, Some(&token)).await;
    let admin = db.admin().await;
    // Through f64 both amounts would be 0.1, which the policy refuses.
    admin
        .execute(
            "insert into rt_precise values
               (1, $1::text::uuid, 0.1, null, null),
               (2, $1::text::uuid, 0.100000000000000000001,
                '{123456789012345678901234567890.5,NULL}', '{\"n\": 0.30000000000000000000000001}')",
            &[&ORG_A],
        )
        .await
        .unwrap();
    let text = client
        .expect_text(|f| f[3] == "postgres_changes" && f[2] == "realtime:precise")
        .await;
    let frame: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(frame[4]["data"]["record"]["id"], 2, "{text}");
    for exact in [
        r#""amount":0.100000000000000000001"#,
        r#""amounts":[123456789012345678901234567890.5,null]"#,
        r#""doc":{"n": 0.30000000000000000000000001}"#,
    ] {
        assert!(text.contains(exact), "{exact} in {text}");
    }
    drop(server);
    drop_slot(&db, &slot).await;
}

#[tokio::test]
async fn subscriptions_are_resolved_again_when_columns_are_dropped() {
    let (db, slot) = setup().await;
    db.execute(
        "create table public.rt_shift (id int8 primary key, a text, b text, c text);
         alter publication supabase_realtime add table public.rt_shift;",
    )
    .await;
    let server = server(&db, &slot, |_| {}).await;
    let mut client = Client::connect(&server.url, &server.keys.service_role_key, "2.0.0").await;
    let binding = json!({"event": "INSERT", "schema": "public", "table": "rt_shift",
                         "filter": "b=eq.yes", "select": ["id", "b"]});
    subscribe(&mut client, "realtime:shift", binding, None).await;
    let admin = db.admin().await;
    admin
        .execute("insert into rt_shift values (1, 'x', 'yes', 'no')", &[])
        .await
        .unwrap();
    let first = client.change("realtime:shift").await;
    assert_eq!(first["data"]["record"], json!({"id": 1, "b": "yes"}));

    // `b` and `c` move one position left: the filter and the select list follow the names.
    db.execute(
        "alter table rt_shift drop column a;
         insert into rt_shift values (2, 'no', 'yes');
         insert into rt_shift values (3, 'yes', 'no');",
    )
    .await;
    let next = client.change("realtime:shift").await;
    assert_eq!(next["data"]["record"], json!({"id": 3, "b": "yes"}));
    assert_eq!(
        next["data"]["columns"],
        json!([{"name": "id", "type": "int8"}, {"name": "b", "type": "text"}])
    );

    // Dropping the filtered column ends the subscription with a system error.
    db.execute(
        "alter table rt_shift drop column b;
         insert into rt_shift values (4, 'yes');",
    )
    .await;
    let system = client
        .expect(|f| f[3] == "system" && f[4]["status"] == "error")
        .await;
    assert_eq!(system[4]["extension"], "postgres_changes");
    assert_eq!(system[4]["message"], "invalid column for filter b");
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
async fn changes_are_held_while_the_database_cannot_authorize_them_then_delivered() {
    let (db, slot) = setup().await;
    // A policy whose check fails the way an unavailable database does (serialization failure)
    // while `rt_gate.down` is set.
    db.execute(
        "create table public.rt_gate (down boolean not null);
         insert into public.rt_gate values (false);
         grant select on public.rt_gate to authenticated;
         create function public.rt_gate_open() returns boolean language plpgsql stable as $$
         begin
           if (select down from public.rt_gate) then
             raise exception 'database unavailable' using errcode = 'serialization_failure';
           end if;
           return true;
         end $$;
         create table public.rt_guarded (id int8 primary key, note text);
         alter table public.rt_guarded enable row level security;
         create policy rt_guarded_gate on public.rt_guarded for select to authenticated
           using (public.rt_gate_open());
         grant select on public.rt_guarded to authenticated;
         alter publication supabase_realtime add table public.rt_guarded;",
    )
    .await;
    let server = server(&db, &slot, |_| {}).await;
    let token = member_token(&server, ORG_A);
    let mut client = Client::connect(&server.url, &server.keys.anon_key, "2.0.0").await;
    let binding = json!({"event": "INSERT", "schema": "public", "table": "rt_guarded"});
    subscribe(&mut client, "realtime:guarded", binding, Some(&token)).await;
    let admin = db.admin().await;
    admin
        .execute("insert into rt_guarded values (1, 'before')", &[])
        .await
        .unwrap();
    assert_eq!(
        client.change("realtime:guarded").await["data"]["record"]["id"],
        1
    );

    db.execute(
        "update rt_gate set down = true;
         insert into rt_guarded values (2, 'during');",
    )
    .await;
    let held = client
        .expect(|f| f[3] == "system" && f[4]["status"] == "error")
        .await;
    assert_eq!(held[4]["extension"], "postgres_changes");
    assert!(
        held[4]["message"]
            .as_str()
            .unwrap()
            .starts_with("Too many database timeouts"),
        "{held}"
    );
    assert!(
        client
            .unconsumed()
            .iter()
            .all(|f| f[3] != "postgres_changes"),
        "nothing undecided was delivered: {:?}",
        client.unconsumed()
    );
    admin
        .execute("update rt_gate set down = false", &[])
        .await
        .unwrap();
    let delivered = client.change("realtime:guarded").await;
    assert_eq!(
        delivered["data"]["record"],
        json!({"id": 2, "note": "during"})
    );
    drop(server);
    drop_slot(&db, &slot).await;
}

#[tokio::test]
async fn changes_past_the_per_transaction_limit_are_reported() {
    let (db, slot) = setup().await;
    db.execute(
        "create table public.rt_bulk (id int8 primary key);
         alter publication supabase_realtime add table public.rt_bulk;",
    )
    .await;
    let server = server(&db, &slot, |_| {}).await;
    let mut client = Client::connect(&server.url, &server.keys.service_role_key, "2.0.0").await;
    // The filter wants a row past the limit, so it is among the changes reported.
    let binding = json!({"event": "INSERT", "schema": "public", "table": "rt_bulk",
                         "filter": "id=eq.100003"});
    subscribe(&mut client, "realtime:bulk", binding, None).await;
    db.execute("insert into rt_bulk select g from generate_series(1, 100003) g")
        .await;
    let system = client
        .expect(|f| f[3] == "system" && f[4]["status"] == "error")
        .await;
    assert_eq!(system[4]["extension"], "postgres_changes");
    assert_eq!(
        system[4]["message"],
        "Transaction too large: 3 changes to public.rt_bulk past the first 100000 of one \
         transaction were not delivered"
    );
    drop(server);
    drop_slot(&db, &slot).await;
}
