//! Error codes that depend on settings or on the PKCE state: `anonymous_provider_disabled`,
//! `signup_disabled`, `no_authorization`, `bad_code_verifier` and `flow_state_expired`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::common::Api;

#[tokio::test]
async fn disabled_sign_ups_and_a_missing_bearer_have_their_codes() {
    // Anonymous sign-ins are off by default.
    let api = Api::start().await;
    let anonymous = api.post("/auth/v1/signup", json!({"data": {}})).await;
    assert_eq!(anonymous.status, 422, "{}", anonymous.body);
    assert_eq!(anonymous.body["code"], "anonymous_provider_disabled");

    // No bearer at all on a user route: 401 no_authorization (the apikey alone is not a user).
    let response = reqwest::Client::new()
        .get(api.server.endpoint("/auth/v1/user"))
        .header("apikey", api.anon_key())
        .header("x-supabase-api-version", "2024-01-01")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "no_authorization");

    let closed = Api::start_with(|config| config.auth.disable_signup = true).await;
    let refused = closed
        .post(
            "/auth/v1/signup",
            json!({"email": "late@example.com", "password": "password-1"}),
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(refused.body["code"], "signup_disabled");
    let settings = closed
        .call(Method::GET, "/auth/v1/settings", None, None)
        .await;
    assert_eq!(settings.body["disable_signup"], true);
}

#[tokio::test]
async fn pkce_exchange_checks_the_verifier_and_the_code_age() {
    let api = Api::start().await;
    api.sign_up("pkce@example.com", "password-1").await;
    let verifier = "a".repeat(112);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let sent = api
        .post(
            "/auth/v1/recover",
            json!({"email": "pkce@example.com", "code_challenge": challenge,
                   "code_challenge_method": "s256"}),
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.body);

    let service = api.service_key();
    let mailbox = api
        .call(
            Method::GET,
            "/auth/v1/admin/mailbox?email=pkce@example.com",
            None,
            Some(&service),
        )
        .await;
    let link = mailbox.body[0]["link"].as_str().unwrap().to_owned();
    assert!(link.contains("token=pkce_"), "{link}");
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // The test server listens on port 0, so the link names no reachable host: keep its path.
    let path = &link[link.find("/auth/v1/verify").unwrap()..];
    let followed = no_redirects
        .get(api.server.endpoint(path))
        .send()
        .await
        .unwrap();
    assert_eq!(followed.status().as_u16(), 303);
    let location = reqwest::Url::parse(followed.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(name, _)| name == "code")
        .map(|(_, value)| value.into_owned())
        .unwrap();

    let exchange = |verifier: String| {
        api.post(
            "/auth/v1/token?grant_type=pkce",
            json!({"auth_code": code, "code_verifier": verifier}),
        )
    };
    let wrong = exchange("b".repeat(112)).await;
    assert_eq!(wrong.status, 400, "{}", wrong.body);
    assert_eq!(wrong.body["code"], "bad_code_verifier");
    let empty = exchange(String::new()).await;
    assert_eq!(empty.status, 400);
    assert_eq!(empty.body["code"], "validation_failed");

    // The failed attempt did not spend the code; age it past the 5 minutes it is valid for.
    api.db
        .admin()
        .await
        .execute(
            "update auth.flow_state set auth_code_issued_at = now() - interval '6 minutes' \
             where auth_code = $1",
            &[&code],
        )
        .await
        .unwrap();
    let expired = exchange(verifier).await;
    assert_eq!(expired.status, 422, "{}", expired.body);
    assert_eq!(expired.body["code"], "flow_state_expired");
}
