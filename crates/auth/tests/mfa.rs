//! TOTP codes are single-use: a code stays valid for its whole 30 s step (and the step on either
//! side), so the factor remembers the last step it accepted.

use manifold_auth::keys::unix_now;
use reqwest::Method;
use serde_json::json;
use totp_rs::{Builder, Secret, Totp};

use crate::common::{Api, Reply};

const STEP_SECS: u64 = 30;

/// A fresh challenge of `factor`, answered with `code`.
async fn challenge_and_verify(api: &Api, access: &str, factor: &str, code: &str) -> Reply {
    let challenge = api
        .call(
            Method::POST,
            &format!("/auth/v1/factors/{factor}/challenge"),
            Some(json!({})),
            Some(access),
        )
        .await;
    assert_eq!(challenge.status, 200, "{}", challenge.body);
    api.call(
        Method::POST,
        &format!("/auth/v1/factors/{factor}/verify"),
        Some(json!({"challenge_id": challenge.body["id"], "code": code})),
        Some(access),
    )
    .await
}

fn authenticator(secret: &str) -> Totp {
    Builder::new()
        .with_secret(Secret::try_from_base32(secret).unwrap())
        .with_account_name("totp@example.com".to_owned())
        .with_issuer(Some("manifold".to_owned()))
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_totp_code_verifies_once_even_through_a_fresh_challenge() {
    let api = Api::start().await;
    let session = api.sign_up("totp@example.com", "password-1").await;
    let access = session["access_token"].as_str().unwrap();
    let enrolled = api
        .call(
            Method::POST,
            "/auth/v1/factors",
            Some(json!({"factor_type": "totp", "friendly_name": "phone"})),
            Some(access),
        )
        .await;
    assert_eq!(enrolled.status, 200, "{}", enrolled.body);
    let factor = enrolled.body["id"].as_str().unwrap();
    let totp = authenticator(enrolled.body["totp"]["secret"].as_str().unwrap());
    let now = unix_now();
    let code = totp.generate(now).to_string();

    let first = challenge_and_verify(&api, access, factor, &code).await;
    assert_eq!(first.status, 200, "{}", first.body);

    let replayed = challenge_and_verify(&api, access, factor, &code).await;
    assert_eq!(replayed.status, 422, "{}", replayed.body);
    assert_eq!(replayed.body["code"], "mfa_verification_failed");
    // A code of an earlier step is refused too once a later one was accepted.
    let earlier = totp.generate(now - STEP_SECS).to_string();
    let refused = challenge_and_verify(&api, access, factor, &earlier).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(refused.body["code"], "mfa_verification_failed");

    // The next step's code (within the accepted skew) is new, so it passes.
    let next = totp.generate(now + STEP_SECS).to_string();
    let second = challenge_and_verify(&api, access, factor, &next).await;
    assert_eq!(second.status, 200, "{}", second.body);
    let recorded = api
        .scalar_i64("select last_totp_step from auth.mfa_factors")
        .await;
    assert_eq!(recorded, i64::try_from(now / STEP_SECS + 1).unwrap());
}
