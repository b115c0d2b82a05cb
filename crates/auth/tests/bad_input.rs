//! Malformed requests to every `/auth/v1` route answer a GoTrue-shaped 4xx, never a 5xx.

use reqwest::Method;
use serde_json::Value;

use crate::common::Api;

/// Bodies that are not what any handler expects: broken JSON, wrong types, odd values.
const BODIES: &[&str] = &[
    "{",
    "[]",
    "null",
    "\"text\"",
    "42",
    r#"{"email": 5, "password": ["x"]}"#,
    r#"{"email": "a@b.c", "password": null, "data": "not-an-object"}"#,
    r#"{"email": "not an email", "password": "password-1", "type": "nonsense"}"#,
    r#"{"email": "a@b.c\u0000", "token": "\u0000", "type": "email"}"#,
    r#"{"refresh_token": 7, "auth_code": {}, "code_verifier": []}"#,
    r#"{"token_hash": "zz", "type": "magiclink", "email": "a@b.c"}"#,
    r#"{"code_challenge": "abc", "code_challenge_method": "md5", "email": "a@b.c"}"#,
    r#"{"factor_type": "smoke", "friendly_name": 3, "challenge_id": "nope", "code": 1}"#,
    r#"{"ban_duration": "forever", "app_metadata": 3, "user_metadata": [], "email": ""}"#,
    r#"{"type": "signup", "email": "x@example.com", "password": 1}"#,
    r#"{"phone": "+1 555", "password": "password-1", "channel": "pigeon"}"#,
];

const ROUTES: &[(Method, &str)] = &[
    (Method::POST, "/auth/v1/signup"),
    (Method::POST, "/auth/v1/token?grant_type=password"),
    (Method::POST, "/auth/v1/token?grant_type=refresh_token"),
    (Method::POST, "/auth/v1/token?grant_type=pkce"),
    (Method::POST, "/auth/v1/token?grant_type=teleport"),
    (Method::POST, "/auth/v1/token"),
    (Method::POST, "/auth/v1/verify"),
    (Method::POST, "/auth/v1/otp"),
    (
        Method::POST,
        "/auth/v1/otp?redirect_to=http://localhost:3000/%00",
    ),
    (Method::POST, "/auth/v1/magiclink"),
    (Method::POST, "/auth/v1/recover"),
    (Method::POST, "/auth/v1/resend"),
    (Method::PUT, "/auth/v1/user"),
    (Method::POST, "/auth/v1/logout?scope=nowhere"),
    (Method::POST, "/auth/v1/factors"),
    (Method::POST, "/auth/v1/factors/not-a-uuid/challenge"),
    (Method::POST, "/auth/v1/factors/not-a-uuid/verify"),
    (Method::DELETE, "/auth/v1/factors/not-a-uuid"),
];

const ADMIN_ROUTES: &[(Method, &str)] = &[
    (Method::POST, "/auth/v1/admin/users"),
    (Method::GET, "/auth/v1/admin/users?page=-1&per_page=abc"),
    (Method::GET, "/auth/v1/admin/users/not-a-uuid"),
    (Method::PUT, "/auth/v1/admin/users/not-a-uuid"),
    (
        Method::PUT,
        "/auth/v1/admin/users/00000000-0000-0000-0000-000000000000",
    ),
    (Method::DELETE, "/auth/v1/admin/users/not-a-uuid"),
    (Method::GET, "/auth/v1/admin/users/not-a-uuid/factors"),
    (
        Method::DELETE,
        "/auth/v1/admin/users/00000000-0000-0000-0000-000000000000/factors/x",
    ),
    (Method::POST, "/auth/v1/admin/generate_link"),
    (Method::POST, "/auth/v1/invite"),
    (Method::GET, "/auth/v1/admin/mailbox?email=%ZZ"),
    (
        Method::GET,
        "/auth/v1/admin/mailbox?email=a%00b@example.com",
    ),
    (Method::GET, "/auth/v1/admin/oauth/clients"),
];

/// A 4xx with a GoTrue error body; lenient routes may also accept the input (2xx).
fn assert_handled(what: &str, status: u16, body: &Value) {
    assert!(status < 500, "{what}: status {status}, body {body}");
    if status >= 400 {
        assert_client_error(what, status, body);
    }
}

fn assert_client_error(what: &str, status: u16, body: &Value) {
    assert!(
        (400..500).contains(&status),
        "{what}: status {status}, body {body}"
    );
    assert!(
        body["code"].is_string() || body["error"].is_string(),
        "{what}: not a GoTrue error body: {body}"
    );
}

#[tokio::test]
async fn malformed_requests_get_a_4xx_with_an_error_code() {
    let api = Api::start_with(|config| {
        // Every request here comes from one IP: measure the handlers, not the limiter.
        let limits = &mut config.auth.rate_limit;
        limits.token_per_5min = 0;
        limits.signup_per_5min = 0;
        limits.verify_per_5min = 0;
        limits.email_requests_per_5min = 0;
        limits.user_update_per_5min = 0;
        limits.mfa_per_minute = 0;
    })
    .await;
    let session = api.sign_up("fuzz@example.com", "password-1").await;
    let user_token = session["access_token"].as_str().unwrap().to_owned();
    let service = api.service_key();

    let mut requests = Vec::new();
    for (method, path) in ROUTES {
        requests.push((method.clone(), *path, Some(user_token.as_str())));
    }
    for (method, path) in ADMIN_ROUTES {
        requests.push((method.clone(), *path, Some(service.as_str())));
    }
    for (method, path, bearer) in requests {
        for body in BODIES {
            let reply = api.call_raw(method.clone(), path, body, bearer).await;
            let what = format!("{method} {path} {body}");
            // Broken JSON never gets past a route that reads a body.
            if *body == "{" && matches!(method, Method::POST | Method::PUT) {
                assert_client_error(&what, reply.status, &reply.body);
            } else {
                assert_handled(&what, reply.status, &reply.body);
            }
        }
    }

    // Broken bearer tokens on user routes: 401/403, never a 5xx.
    for bearer in ["", "x", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.", "Basic abc"] {
        let reply = api
            .call(Method::GET, "/auth/v1/user", None, Some(bearer))
            .await;
        assert_client_error(
            &format!("GET /user with {bearer:?}"),
            reply.status,
            &reply.body,
        );
    }
    // The user still works after all of that.
    let me = api
        .call(Method::GET, "/auth/v1/user", None, Some(&user_token))
        .await;
    assert_eq!(me.status, 200, "{}", me.body);
}
