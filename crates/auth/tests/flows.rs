//! Error formats and a few flows at the HTTP level (the supabase-js suite covers the rest).

use reqwest::Method;
use serde_json::json;

use crate::common::Api;

#[tokio::test]
async fn errors_in_the_2024_format_with_echo_and_in_the_legacy_format() {
    let api = Api::start().await;
    api.sign_up("format@example.com", "password-1").await;
    let modern = api
        .post(
            "/auth/v1/token?grant_type=password",
            json!({"email": "format@example.com", "password": "nope-nope"}),
        )
        .await;
    assert_eq!(modern.status, 400);
    assert_eq!(modern.headers["x-supabase-api-version"], "2024-01-01");
    assert_eq!(
        modern.body,
        json!({"code": "invalid_credentials", "message": "Invalid login credentials"})
    );

    let legacy = reqwest::Client::new()
        .post(api.server.endpoint("/auth/v1/token?grant_type=password"))
        .header("apikey", api.anon_key())
        .json(&json!({"email": "format@example.com", "password": "nope-nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(legacy.status().as_u16(), 400);
    assert!(legacy.headers().get("x-supabase-api-version").is_none());
    assert_eq!(legacy.headers()["x-sb-error-code"], "invalid_credentials");
    let body: serde_json::Value = legacy.json().await.unwrap();
    assert_eq!(
        body,
        json!({"code": 400, "error_code": "invalid_credentials", "msg": "Invalid login credentials"})
    );

    let weak = api
        .post(
            "/auth/v1/signup",
            json!({"email": "weak@example.com", "password": "123"}),
        )
        .await;
    assert_eq!(weak.status, 422);
    assert_eq!(weak.body["code"], "weak_password");
    assert_eq!(weak.body["weak_password"]["reasons"], json!(["length"]));

    let again = api
        .post(
            "/auth/v1/signup",
            json!({"email": "FORMAT@example.com", "password": "password-2"}),
        )
        .await;
    assert_eq!(again.status, 422);
    assert_eq!(again.body["code"], "user_already_exists");

    // An empty body on POST (auth-js logout) is fine; a user route without a user token is not.
    let anon_user = api.call(Method::GET, "/auth/v1/user", None, None).await;
    assert_eq!(anon_user.status, 403);
    assert_eq!(anon_user.body["code"], "bad_jwt");
    let not_admin = api
        .call(Method::GET, "/auth/v1/admin/users", None, None)
        .await;
    assert_eq!(not_admin.status, 403);
    assert_eq!(not_admin.body["code"], "not_admin");
    let service = api.service_key();
    let listed = api
        .call(
            Method::GET,
            "/auth/v1/admin/users?page=&per_page=",
            None,
            Some(&service),
        )
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.headers["x-total-count"], "1");
    assert_eq!(
        listed.headers["link"],
        "</auth/v1/admin/users?page=1&per_page=50>; rel=\"last\""
    );
}

#[tokio::test]
async fn a_bcrypt_hash_imported_from_gotrue_signs_in() {
    let api = Api::start().await;
    let service = api.service_key();
    // `$2a$10$` as GoTrue writes; generated here for "imported-pw".
    let hash = bcrypt::hash("imported-pw", 10)
        .unwrap()
        .replacen("$2b$", "$2a$", 1);
    let created = api
        .call(
            Method::POST,
            "/auth/v1/admin/users",
            Some(json!({"email": "imported@example.com", "password_hash": hash, "email_confirm": true})),
            Some(&service),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    assert_eq!(created.body["app_metadata"]["provider"], "email");
    let signed_in = api
        .post(
            "/auth/v1/token?grant_type=password",
            json!({"email": "Imported@Example.com", "password": "imported-pw"}),
        )
        .await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
}
