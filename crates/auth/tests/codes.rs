//! Error codes that depend on settings, on the PKCE state or on the session: disabled providers
//! and sign-ups, `no_authorization`, the PKCE codes, the password-change guards
//! (`reauthentication_needed`, `current_password_*`), MFA enroll limits, `email_address_invalid`,
//! `request_entity_too_large` and `session_expired`.

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

#[tokio::test]
async fn password_change_guards_answer_their_codes() {
    let api = Api::start_with(|config| {
        config.auth.update_password_require_reauthentication = true;
        config.auth.update_password_require_current_password = true;
    })
    .await;
    let session = api.sign_up("guarded@example.com", "password-1").await;
    let access = session["access_token"].as_str().unwrap();
    let update = |body: Value| api.call(Method::PUT, "/auth/v1/user", Some(body), Some(access));

    // A fresh session needs no nonce, but the current password.
    let missing = update(json!({"password": "password-2"})).await;
    assert_eq!(missing.status, 400, "{}", missing.body);
    assert_eq!(missing.body["code"], "current_password_required");
    let wrong = update(json!({"password": "password-2", "current_password": "nope-nope"})).await;
    assert_eq!(wrong.status, 400, "{}", wrong.body);
    assert_eq!(wrong.body["code"], "current_password_invalid");

    // A session signed in over 24 hours ago must reauthenticate first.
    api.db
        .execute("update auth.sessions set created_at = now() - interval '25 hours'")
        .await;
    let stale = update(json!({"password": "password-2", "current_password": "password-1"})).await;
    assert_eq!(stale.status, 400, "{}", stale.body);
    assert_eq!(stale.body["code"], "reauthentication_needed");
    let unsent = update(
        json!({"password": "password-2", "current_password": "password-1",
                               "nonce": "123456"}),
    )
    .await;
    assert_eq!(unsent.status, 400, "{}", unsent.body);
    assert_eq!(unsent.body["code"], "reauthentication_not_valid");
    let sent = api
        .call(Method::GET, "/auth/v1/reauthenticate", None, Some(access))
        .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let nonce = api.mailbox("guarded@example.com").await[0]["otp"].clone();
    let changed = update(
        json!({"password": "password-2", "current_password": "password-1",
                                "nonce": nonce}),
    )
    .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    let signed_in = api
        .post(
            "/auth/v1/token?grant_type=password",
            json!({"email": "guarded@example.com", "password": "password-2"}),
        )
        .await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
}

#[tokio::test]
async fn disabled_providers_limits_and_bad_addresses_answer_their_codes() {
    let api = Api::start_with(|config| config.auth.mfa_max_enrolled_factors = 1).await;
    let session = api.sign_up("codes@example.com", "password-1").await;
    let access = session["access_token"].as_str().unwrap();

    // MFA: only TOTP can be enrolled, and only up to the configured number of factors.
    let enroll = |body: Value| api.call(Method::POST, "/auth/v1/factors", Some(body), Some(access));
    for (factor_type, code) in [
        ("phone", "mfa_phone_enroll_not_enabled"),
        ("webauthn", "mfa_webauthn_enroll_not_enabled"),
    ] {
        let refused = enroll(json!({"factor_type": factor_type})).await;
        assert_eq!(refused.status, 422, "{}", refused.body);
        assert_eq!(refused.body["code"], code);
    }
    let first = enroll(json!({"factor_type": "totp", "friendly_name": "one"})).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let second = enroll(json!({"factor_type": "totp", "friendly_name": "two"})).await;
    assert_eq!(second.status, 422, "{}", second.body);
    assert_eq!(second.body["code"], "too_many_enrolled_mfa_factors");

    // An address SMTP could not deliver to, caught by the mailer's own check.
    let undeliverable = api
        .post("/auth/v1/otp", json!({"email": "a..b@example.com"}))
        .await;
    assert_eq!(undeliverable.status, 400, "{}", undeliverable.body);
    assert_eq!(undeliverable.body["code"], "email_address_invalid");
    assert_eq!(
        api.scalar_i64("select count(*) from auth.users where email = 'a..b@example.com'")
            .await,
        0
    );

    // Request bodies over 1 MiB.
    let padding = "x".repeat(1024 * 1024 + 1);
    let huge = api
        .post(
            "/auth/v1/signup",
            json!({"email": "big@example.com", "password": "password-1", "data": {"pad": padding}}),
        )
        .await;
    assert_eq!(huge.status, 413, "{}", huge.body);
    assert_eq!(huge.body["code"], "request_entity_too_large");

    // A session past its `not_after` cannot be refreshed.
    api.db
        .execute("update auth.sessions set not_after = now() - interval '1 minute'")
        .await;
    let expired = api
        .refresh(session["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(expired.status, 400, "{}", expired.body);
    assert_eq!(expired.body["code"], "session_expired");

    // Email sign-up and sign-in switched off.
    let closed = Api::start_with(|config| config.auth.email_enabled = false).await;
    let signup = closed
        .post(
            "/auth/v1/signup",
            json!({"email": "off@example.com", "password": "password-1"}),
        )
        .await;
    assert_eq!(signup.status, 400, "{}", signup.body);
    assert_eq!(signup.body["code"], "email_provider_disabled");
    let sign_in = closed
        .post(
            "/auth/v1/token?grant_type=password",
            json!({"email": "off@example.com", "password": "password-1"}),
        )
        .await;
    assert_eq!(sign_in.status, 400, "{}", sign_in.body);
    assert_eq!(sign_in.body["code"], "email_provider_disabled");
}
