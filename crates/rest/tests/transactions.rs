//! Writes and calls whose transaction must end by the result: singular and max-affected refusals
//! roll back, `tx=rollback` keeps nothing; `missing=default`; planned and estimated counts.

use manifold_testkit::{TestDb, TestServer};
use reqwest::Method;
use serde_json::{Value, json};

const FIXTURE: &str = "
create table public.ledger (id int primary key, entry text not null);
create function public.log_entries(n int) returns setof public.ledger language sql as $$
  insert into public.ledger
  select coalesce((select max(id) from public.ledger), 0) + g, 'entry ' || g
  from generate_series(1, n) g
  returning *
$$;
create function public.log_one(entry text) returns int language sql as $$
  insert into public.ledger
  values (coalesce((select max(id) from public.ledger), 0) + 1, entry)
  returning id
$$;
create table public.tickets (
  id serial primary key,
  label text not null,
  priority int not null default 3,
  note text default 'none'
);
create table public.readings (id int primary key, value int not null);
insert into public.readings select g, g from generate_series(1, 10) g;
analyze public.readings;
insert into public.readings select g, g from generate_series(11, 15) g;
";

struct Answer {
    status: u16,
    body: Value,
    headers: reqwest::header::HeaderMap,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

async fn serve(adjust: impl FnOnce(&mut manifold_testkit::Config)) -> (TestDb, TestServer) {
    let db = TestDb::create().await;
    db.execute(FIXTURE).await;
    let server = TestServer::start_with(&db, adjust).await;
    (db, server)
}

async fn send(
    server: &TestServer,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Answer {
    let mut request = reqwest::Client::new()
        .request(method, server.endpoint(path))
        .header("apikey", &server.keys.service_role_key);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    Answer {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        headers,
    }
}

async fn ledger(db: &TestDb) -> Vec<String> {
    db.admin()
        .await
        .query("select entry from public.ledger order by id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

const SINGLE: (&str, &str) = ("accept", "application/vnd.pgrst.object+json");

#[tokio::test]
async fn a_volatile_call_refused_as_singular_rolls_back_its_writes() {
    let (db, server) = serve(|_| {}).await;
    let refused = send(
        &server,
        Method::POST,
        "/rest/v1/rpc/log_entries",
        &[SINGLE],
        Some(r#"{"n": 2}"#),
    )
    .await;
    assert_eq!(refused.status, 406);
    assert_eq!(
        refused.body,
        json!({"code": "PGRST116", "details": "The result contains 2 rows", "hint": null,
               "message": "Cannot coerce the result to a single JSON object"})
    );
    assert_eq!(ledger(&db).await, Vec::<String>::new());

    let one = send(
        &server,
        Method::POST,
        "/rest/v1/rpc/log_entries",
        &[SINGLE],
        Some(r#"{"n": 1}"#),
    )
    .await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body, json!({"id": 1, "entry": "entry 1"}));
    assert_eq!(ledger(&db).await, ["entry 1"]);
}

#[tokio::test]
async fn a_call_with_tx_rollback_answers_and_keeps_nothing() {
    let (db, server) = serve(|_| {}).await;
    let answer = send(
        &server,
        Method::POST,
        "/rest/v1/rpc/log_one",
        &[("prefer", "tx=rollback")],
        Some(r#"{"entry": "draft"}"#),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, json!(1));
    assert_eq!(answer.header("preference-applied"), Some("tx=rollback"));
    assert_eq!(ledger(&db).await, Vec::<String>::new());

    let kept = send(
        &server,
        Method::POST,
        "/rest/v1/rpc/log_one",
        &[("prefer", "tx=commit")],
        Some(r#"{"entry": "final"}"#),
    )
    .await;
    assert_eq!(kept.status, 200);
    assert_eq!(kept.header("preference-applied"), Some("tx=commit"));
    assert_eq!(ledger(&db).await, ["final"]);
}

#[tokio::test]
async fn max_affected_limits_calls_and_rolls_them_back() {
    let (db, server) = serve(|_| {}).await;
    let strict = [("prefer", "handling=strict, max-affected=2")];
    let refused = send(
        &server,
        Method::POST,
        "/rest/v1/rpc/log_entries",
        &strict,
        Some(r#"{"n": 3}"#),
    )
    .await;
    assert_eq!(refused.status, 400);
    assert_eq!(
        refused.body,
        json!({"code": "PGRST124", "details": "The query affects 3 rows", "hint": null,
               "message": "Query result exceeds max-affected preference constraint"})
    );
    assert_eq!(ledger(&db).await, Vec::<String>::new());

    let allowed = send(
        &server,
        Method::POST,
        "/rest/v1/rpc/log_entries",
        &strict,
        Some(r#"{"n": 2}"#),
    )
    .await;
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.body.as_array().map(Vec::len), Some(2));
    assert_eq!(
        allowed.header("preference-applied"),
        Some("handling=strict, max-affected=2")
    );
    assert_eq!(ledger(&db).await, ["entry 1", "entry 2"]);

    let scalar = send(
        &server,
        Method::POST,
        "/rest/v1/rpc/log_one",
        &strict,
        Some(r#"{"entry": "x"}"#),
    )
    .await;
    assert_eq!(scalar.status, 400);
    assert_eq!(scalar.body["code"], "PGRST128");
    assert_eq!(ledger(&db).await, ["entry 1", "entry 2"]);
}

#[tokio::test]
async fn max_affected_does_not_limit_inserts() {
    let (db, server) = serve(|_| {}).await;
    let answer = send(
        &server,
        Method::POST,
        "/rest/v1/ledger",
        &[("prefer", "handling=strict, max-affected=1")],
        Some(r#"[{"id": 1, "entry": "a"}, {"id": 2, "entry": "b"}, {"id": 3, "entry": "c"}]"#),
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.header("preference-applied"), None);
    assert_eq!(ledger(&db).await, ["a", "b", "c"]);
}

#[tokio::test]
async fn missing_default_applies_to_a_single_object_with_columns() {
    let (_db, server) = serve(|_| {}).await;
    let answer = send(
        &server,
        Method::POST,
        "/rest/v1/tickets?columns=label,priority,note&select=label,priority,note",
        &[("prefer", "missing=default, return=representation")],
        Some(r#"{"label": "leak", "note": null}"#),
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    // An explicit null stays null; only absent keys take the default.
    assert_eq!(
        answer.body,
        json!([{"label": "leak", "priority": 3, "note": null}])
    );
    assert_eq!(
        answer.header("preference-applied"),
        Some("return=representation, missing=default")
    );

    let nulls = send(
        &server,
        Method::POST,
        "/rest/v1/tickets?columns=label,priority",
        &[],
        Some(r#"{"label": "leak"}"#),
    )
    .await;
    assert_eq!(nulls.status, 400, "missing=null is the default");
    assert_eq!(nulls.body["code"], "23502");
}

#[tokio::test]
async fn defaults_are_evaluated_only_for_rows_that_lack_the_key() {
    let (db, server) = serve(|_| {}).await;
    let answer = send(
        &server,
        Method::POST,
        "/rest/v1/tickets?columns=id,label&select=id,label",
        &[("prefer", "missing=default, return=representation")],
        Some(r#"[{"id": 100, "label": "a"}, {"id": 101, "label": "b"}, {"label": "c"}]"#),
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    // The serial's sequence advanced once, for the one row without an id.
    assert_eq!(
        answer.body,
        json!([{"id": 100, "label": "a"}, {"id": 101, "label": "b"}, {"id": 1, "label": "c"}])
    );
    let next: i64 = db
        .admin()
        .await
        .query_one("select nextval('public.tickets_id_seq')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(next, 2);

    let patched = send(
        &server,
        Method::PATCH,
        "/rest/v1/tickets?id=eq.100&columns=label,note&select=id,label,note",
        &[("prefer", "missing=default, return=representation")],
        Some(r#"{"label": "renamed"}"#),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(
        patched.body,
        json!([{"id": 100, "label": "renamed", "note": "none"}])
    );
    assert_eq!(
        patched.header("preference-applied"),
        Some("return=representation, missing=default")
    );
}

#[tokio::test]
async fn planned_counts_come_from_the_planner() {
    let (_db, server) = serve(|_| {}).await;
    // 15 rows, but the statistics were taken at 10.
    let exact = send(
        &server,
        Method::GET,
        "/rest/v1/readings?select=id&limit=2",
        &[("prefer", "count=exact")],
        None,
    )
    .await;
    assert_eq!(exact.header("content-range"), Some("0-1/15"));
    let planned = send(
        &server,
        Method::GET,
        "/rest/v1/readings?select=id&limit=2",
        &[("prefer", "count=planned")],
        None,
    )
    .await;
    assert_eq!(planned.status, 206);
    assert_eq!(planned.body, json!([{"id": 1}, {"id": 2}]));
    assert_eq!(planned.header("content-range"), Some("0-1/10"));
    assert_eq!(planned.header("preference-applied"), Some("count=planned"));
    // Below db-max-rows an estimated count is exact.
    let estimated = send(
        &server,
        Method::GET,
        "/rest/v1/readings?select=id&limit=2",
        &[("prefer", "count=estimated")],
        None,
    )
    .await;
    assert_eq!(estimated.header("content-range"), Some("0-1/15"));
    assert_eq!(
        estimated.header("preference-applied"),
        Some("count=estimated")
    );
}

#[tokio::test]
async fn estimated_counts_beyond_max_rows_use_the_planner() {
    let (_db, server) = serve(|config| config.rest.max_rows = Some(3)).await;
    let answer = send(
        &server,
        Method::GET,
        "/rest/v1/readings?select=id",
        &[("prefer", "count=estimated")],
        None,
    )
    .await;
    assert_eq!(answer.status, 206);
    assert_eq!(answer.body, json!([{"id": 1}, {"id": 2}, {"id": 3}]));
    assert_eq!(answer.header("content-range"), Some("0-2/10"));
    assert_eq!(answer.header("preference-applied"), Some("count=estimated"));
}

#[tokio::test]
async fn the_root_serves_only_reads() {
    let (_db, server) = serve(|_| {}).await;
    let document = send(&server, Method::GET, "/rest/v1/", &[], None).await;
    assert_eq!(document.status, 200);
    assert_eq!(document.body["swagger"], "2.0");
    for method in [Method::POST, Method::PATCH, Method::PUT, Method::DELETE] {
        let answer = send(&server, method.clone(), "/rest/v1/", &[], Some("{}")).await;
        assert_eq!(answer.status, 405, "{method}");
        assert_eq!(answer.body["code"], "PGRST117", "{method}");
    }
}
