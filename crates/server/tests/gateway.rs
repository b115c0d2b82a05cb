use manifold_testkit::{TestDb, TestServer};
use serde_json::{Value, json};

async fn get(url: &str, headers: &[(&str, &str)]) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = reqwest::Client::new().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, headers, body)
}

#[tokio::test]
async fn a_request_without_apikey_gets_supabase_401() {
    let db = TestDb::create().await;
    let server = TestServer::start(&db).await;
    let (status, headers, body) = get(&server.endpoint("/rest/v1/bottles?select=*"), &[]).await;
    assert_eq!(status, 401);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        body,
        json!({
            "message": "No API key found in request",
            "hint": "No `apikey` request header or url param was found.",
        })
    );
    // The same rule guards /auth/v1.
    let (status, _, _) = get(&server.endpoint("/auth/v1/settings"), &[]).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn an_unknown_apikey_is_refused() {
    let db = TestDb::create().await;
    let server = TestServer::start(&db).await;
    let (status, _, body) = get(
        &server.endpoint("/rest/v1/bottles"),
        &[("apikey", "sb_publishable_wrong")],
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["message"], "Invalid API key");
}

#[tokio::test]
async fn every_project_key_passes_the_gateway_in_header_or_query() {
    let db = TestDb::create().await;
    let server = TestServer::start(&db).await;
    let keys = &server.keys;
    // Past the gateway, an unknown table is a 404 from the REST layer itself.
    for key in [
        &keys.anon_key,
        &keys.publishable_key,
        &keys.service_role_key,
        &keys.secret_key,
    ] {
        let (status, _, _) = get(
            &server.endpoint("/rest/v1/no_such_table"),
            &[("apikey", key)],
        )
        .await;
        assert_eq!(status, 404, "key {key} was refused");
        let url = server.endpoint(&format!("/rest/v1/no_such_table?apikey={key}"));
        let (status, _, _) = get(&url, &[]).await;
        assert_eq!(status, 404, "key {key} as a query parameter was refused");
    }
}

#[tokio::test]
async fn require_apikey_off_lets_keyless_requests_through() {
    let db = TestDb::create().await;
    let server = TestServer::start_with(&db, |config| config.api.require_apikey = false).await;
    let (status, _, _) = get(&server.endpoint("/rest/v1/no_such_table"), &[]).await;
    assert_eq!(status, 404);
    // No key and no token runs as anon; a bare bearer JWT is enough and runs as its role, as
    // with standalone PostgREST. The RPC reports the role each request ran as.
    db.execute(
        "create function public.whoami() returns text language sql stable \
         as $$ select current_user::text $$; \
         notify pgrst, 'reload schema';",
    )
    .await;
    let (status, _, body) = get(&server.endpoint("/rest/v1/rpc/whoami"), &[]).await;
    assert_eq!((status, body), (200, json!("anon")));
    let token = server.jwt(&json!({"role": "authenticated", "sub": "u-1"}));
    let (status, _, body) = get(
        &server.endpoint("/rest/v1/rpc/whoami"),
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await;
    assert_eq!((status, body), (200, json!("authenticated")));
    // A present but wrong key is still refused.
    let (status, _, _) = get(
        &server.endpoint("/rest/v1/no_such_table"),
        &[("apikey", "nope")],
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn cors_preflight_from_a_browser_origin_succeeds() {
    let db = TestDb::create().await;
    let server = TestServer::start(&db).await;
    let response = reqwest::Client::new()
        .request(
            reqwest::Method::OPTIONS,
            server.endpoint("/rest/v1/bottles?select=*"),
        )
        .header("origin", "http://localhost:3000")
        .header("access-control-request-method", "PATCH")
        .header(
            "access-control-request-headers",
            "apikey,authorization,x-client-info,prefer,content-profile",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let headers = response.headers();
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert_eq!(
        headers["access-control-allow-headers"],
        "apikey,authorization,x-client-info,prefer,content-profile"
    );
    let methods = headers["access-control-allow-methods"].to_str().unwrap();
    for method in ["GET", "POST", "PATCH", "DELETE", "PUT"] {
        assert!(methods.contains(method), "{methods}");
    }
    assert_eq!(headers["access-control-max-age"], "86400");

    // Actual responses expose Content-Range so browsers can read counts.
    let (_, headers, _) = get(
        &server.endpoint("/rest/v1/bottles"),
        &[
            ("origin", "http://localhost:3000"),
            ("apikey", &server.keys.anon_key),
        ],
    )
    .await;
    let exposed = headers["access-control-expose-headers"].to_str().unwrap();
    assert!(exposed.contains("content-range"), "{exposed}");
    assert!(exposed.contains("x-supabase-api-version"), "{exposed}");
}

#[tokio::test]
async fn health_and_unknown_paths_answer_json_with_request_ids() {
    let db = TestDb::create().await;
    let server = TestServer::start(&db).await;
    let (status, headers, body) = get(&server.endpoint("/health"), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    assert!(headers.contains_key("x-request-id"));
    let (status, headers, body) = get(&server.endpoint("/nope"), &[]).await;
    assert_eq!(status, 404);
    assert!(body.is_object());
    assert!(headers.contains_key("x-request-id"));
    // A caller-supplied request id is kept.
    let (_, headers, _) = get(&server.endpoint("/health"), &[("x-request-id", "abc-123")]).await;
    assert_eq!(headers["x-request-id"], "abc-123");
}
