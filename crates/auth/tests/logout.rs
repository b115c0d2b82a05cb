//! `POST /logout?scope=…` on the wire: 204 with an empty body for each scope (auth-js sends no
//! body), and which sessions each scope ends.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::Api;

const EMAIL: &str = "logout@example.com";
const PASSWORD: &str = "password-1";

/// Signs in once more: a new session; returns its access and refresh tokens.
async fn device(api: &Api) -> (String, String) {
    let reply = api
        .post(
            "/auth/v1/token?grant_type=password",
            json!({"email": EMAIL, "password": PASSWORD}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let text = |name: &str| reply.body[name].as_str().unwrap().to_owned();
    (text("access_token"), text("refresh_token"))
}

/// `POST /logout` exactly as auth-js sends it: no body, JSON content type.
async fn logout(api: &Api, access: &str, scope: Option<&str>) -> (u16, String) {
    let path = match scope {
        Some(scope) => format!("/auth/v1/logout?scope={scope}"),
        None => "/auth/v1/logout".to_owned(),
    };
    let response = reqwest::Client::new()
        .post(api.server.endpoint(&path))
        .header("apikey", api.anon_key())
        .header("authorization", format!("Bearer {access}"))
        .header("x-supabase-api-version", "2024-01-01")
        .header("content-type", "application/json;charset=UTF-8")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn sessions(api: &Api) -> i64 {
    api.scalar_i64("select count(*) from auth.sessions").await
}

#[tokio::test]
async fn logout_answers_204_for_each_scope_and_ends_the_right_sessions() {
    let api = Api::start().await;
    api.sign_up(EMAIL, PASSWORD).await;
    let (a, a_refresh) = device(&api).await;
    let (b, b_refresh) = device(&api).await;
    let (c, _) = device(&api).await;
    assert_eq!(sessions(&api).await, 4);

    // local: only the caller's session.
    assert_eq!(logout(&api, &a, Some("local")).await, (204, String::new()));
    assert_eq!(sessions(&api).await, 3);
    let gone = api.refresh(&a_refresh).await;
    assert_eq!(gone.status, 400, "{}", gone.body);
    assert_eq!(gone.body["code"], "refresh_token_not_found");

    // others: every session but the caller's.
    assert_eq!(logout(&api, &b, Some("others")).await, (204, String::new()));
    assert_eq!(sessions(&api).await, 1);
    let kept = api.refresh(&b_refresh).await;
    assert_eq!(kept.status, 200, "{}", kept.body);
    let user = api.call(Method::GET, "/auth/v1/user", None, Some(&c)).await;
    assert_eq!(user.status, 403, "{}", user.body);
    assert_eq!(user.body["code"], "session_not_found");

    // global (the default without a scope): all of them.
    let (d, _) = device(&api).await;
    assert_eq!(sessions(&api).await, 2);
    assert_eq!(logout(&api, &d, None).await, (204, String::new()));
    assert_eq!(sessions(&api).await, 0);

    // A bad scope is refused before anything is deleted.
    let (e, _) = device(&api).await;
    let (status, body) = logout(&api, &e, Some("everyone")).await;
    assert_eq!(status, 400);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["code"], "validation_failed");
    assert_eq!(sessions(&api).await, 1);
}
