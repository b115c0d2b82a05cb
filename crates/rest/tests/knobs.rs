use manifold_testkit::{TestDb, TestServer};
use serde_json::{Value, json};

const FIXTURE: &str = "
create table public.sales (id int primary key, region text not null, amount numeric not null);
insert into public.sales select g, case when g % 2 = 0 then 'north' else 'south' end, g from generate_series(1, 10) g;
create schema api;
grant usage on schema api to anon, authenticated, service_role;
create table api.things (id int primary key, label text);
insert into api.things values (1, 'in api');
grant select on api.things to anon, authenticated, service_role;
create function public.check_client() returns void language plpgsql as $$
begin
  if current_setting('request.headers', true)::json ->> 'x-client' = 'blocked' then
    raise exception 'blocked client' using errcode = 'PT403';
  end if;
end $$;
create table public.logbook (id serial primary key, entry text);
";

async fn serve(adjust: impl FnOnce(&mut manifold_testkit::Config)) -> (TestDb, TestServer) {
    let db = TestDb::create().await;
    db.execute(FIXTURE).await;
    let server = TestServer::start_with(&db, adjust).await;
    (db, server)
}

async fn get(
    server: &TestServer,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut request = reqwest::Client::new()
        .get(server.endpoint(path))
        .header("apikey", &server.keys.service_role_key);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        headers,
    )
}

#[tokio::test]
async fn max_rows_caps_reads() {
    let (_db, server) = serve(|config| config.rest.max_rows = Some(3)).await;
    let (status, body, headers) = get(
        &server,
        "/rest/v1/sales?select=id&order=id",
        &[("prefer", "count=exact")],
    )
    .await;
    assert_eq!(status, 206);
    assert_eq!(body, json!([{"id": 1}, {"id": 2}, {"id": 3}]));
    assert_eq!(headers["content-range"], "0-2/10");
}

#[tokio::test]
async fn aggregates_are_refused_by_default_and_group_when_enabled() {
    let (_db, server) = serve(|_| {}).await;
    let (status, body, _) = get(&server, "/rest/v1/sales?select=region,amount.sum()", &[]).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "PGRST123");

    let (_db, server) = serve(|config| config.rest.aggregates_enabled = true).await;
    let (status, body, _) = get(
        &server,
        "/rest/v1/sales?select=region,total:amount.sum(),count()&order=region",
        &[],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!([{"region": "north", "total": 30, "count": 5}, {"region": "south", "total": 25, "count": 5}])
    );
}

#[tokio::test]
async fn pre_request_runs_in_every_request_transaction() {
    let (_db, server) =
        serve(|config| config.rest.pre_request = Some("public.check_client".into())).await;
    let (status, _, _) = get(
        &server,
        "/rest/v1/sales?select=id&limit=1",
        &[("x-client", "fine")],
    )
    .await;
    assert_eq!(status, 200);
    let (status, body, _) = get(
        &server,
        "/rest/v1/sales?select=id&limit=1",
        &[("x-client", "blocked")],
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(body["message"], "blocked client");
}

#[tokio::test]
async fn extra_schemas_are_chosen_by_profile() {
    let (_db, server) =
        serve(|config| config.rest.schemas = vec!["public".into(), "api".into()]).await;
    let (status, body, headers) =
        get(&server, "/rest/v1/things", &[("accept-profile", "api")]).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!([{"id": 1, "label": "in api"}]));
    assert_eq!(headers["content-profile"], "api");
    let (status, body, _) = get(&server, "/rest/v1/things", &[]).await;
    assert_eq!(status, 404, "public is the default profile");
    assert_eq!(body["code"], "PGRST205");
}

#[tokio::test]
async fn tx_end_rollback_keeps_nothing() {
    let (db, server) = serve(|config| config.rest.tx_end = manifold_testkit::TxEnd::Rollback).await;
    let response = reqwest::Client::new()
        .post(server.endpoint("/rest/v1/logbook"))
        .header("apikey", &server.keys.service_role_key)
        .header("prefer", "return=representation")
        .json(&json!({"entry": "written"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let rows: i64 = db
        .admin()
        .await
        .query_one("select count(*) from public.logbook", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn role_claim_key_and_audience() {
    let (_db, server) = serve(|config| {
        config.rest.jwt_role_claim_key = ".app_metadata.role".into();
        config.rest.jwt_aud = Some("manifold".into());
    })
    .await;
    let nested = server.jwt(&json!({"app_metadata": {"role": "service_role"}, "aud": "manifold"}));
    let (status, _, _) = get(
        &server,
        "/rest/v1/sales?select=id&limit=1",
        &[("authorization", &format!("Bearer {nested}"))],
    )
    .await;
    assert_eq!(status, 200);
    let wrong = server.jwt(&json!({"role": "service_role", "aud": "elsewhere"}));
    let (status, body, headers) = get(
        &server,
        "/rest/v1/sales",
        &[("authorization", &format!("Bearer {wrong}"))],
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"code": "PGRST303", "details": null, "hint": null, "message": "JWT not in audience"})
    );
    assert_eq!(
        headers["www-authenticate"],
        "Bearer error=\"invalid_token\", error_description=\"JWT not in audience\""
    );
}

#[tokio::test]
async fn an_unknown_table_created_after_start_is_found_by_a_reload() {
    let (db, server) = serve(|_| {}).await;
    db.execute("create table public.brand_new (id int); insert into public.brand_new values (1);")
        .await;
    // No notification needed: the miss itself reloads the cache once.
    let (status, body, _) = get(&server, "/rest/v1/brand_new", &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!([{"id": 1}]));
}

#[tokio::test]
async fn plans_are_served_only_when_enabled() {
    let (_db, server) = serve(|_| {}).await;
    let accept = "application/vnd.pgrst.plan+json; for=\"application/json\"; options=;";
    let (status, body, _) = get(&server, "/rest/v1/sales?id=eq.1", &[("accept", accept)]).await;
    assert_eq!(status, 406);
    assert_eq!(body["code"], "PGRST107");

    let (_db, server) = serve(|config| config.rest.plan_enabled = true).await;
    let (status, body, headers) =
        get(&server, "/rest/v1/sales?id=eq.1", &[("accept", accept)]).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/vnd.pgrst.plan+json")
    );
    assert!(body[0]["Plan"]["Node Type"].is_string(), "{body}");
    let (status, body, _) = get(
        &server,
        "/rest/v1/sales?id=eq.1",
        &[("accept", "application/vnd.pgrst.plan+text; options=analyze")],
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.as_str().unwrap().contains("actual time"), "{body}");
}
