//! Emailed links and codes: the first half of an email change, and PKCE links bound to the
//! request that sent them.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::common::Api;

const OLD: &str = "old@example.com";
const NEW: &str = "new@example.com";

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn latest(mails: &[Value], kind: &str) -> Value {
    mails
        .iter()
        .find(|mail| mail["type"] == kind)
        .cloned()
        .unwrap_or_else(|| panic!("no {kind} mail in {mails:?}"))
}

#[tokio::test]
async fn the_first_half_of_an_email_change_answers_code_200_as_a_string() {
    let api = Api::start().await;
    let session = api.sign_up(OLD, "password-1").await;
    let access = session["access_token"].as_str().unwrap();
    let changed = api
        .call(
            Method::PUT,
            "/auth/v1/user",
            Some(json!({"email": NEW})),
            Some(access),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    let to_new = latest(&api.mailbox(NEW).await, "email_change");
    let half = api
        .post(
            "/auth/v1/verify",
            json!({"type": "email_change", "email": NEW, "token": to_new["otp"]}),
        )
        .await;
    assert_eq!(half.status, 200, "{}", half.body);
    // GoTrue: `"code": strconv.Itoa(http.StatusOK)`.
    assert_eq!(
        half.body,
        json!({
            "msg": "Confirmation link accepted. Please proceed to confirm link sent to the other email",
            "code": "200",
        })
    );
}

#[tokio::test]
async fn each_pkce_link_yields_the_code_of_the_request_that_sent_it() {
    let api = Api::start().await;
    let session = api.sign_up(OLD, "password-1").await;
    let access = session["access_token"].as_str().unwrap();
    let (verifier_a, verifier_b) = ("a".repeat(64), "b".repeat(64));

    // Request A (this device): an email change in PKCE flow mails the current and the new
    // address, each link with its own flow state.
    let changed = api
        .call(
            Method::PUT,
            "/auth/v1/user",
            Some(
                json!({"email": NEW, "code_challenge": challenge(&verifier_a),
                        "code_challenge_method": "s256"}),
            ),
            Some(access),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    let to_current = latest(&api.mailbox(OLD).await, "email_change");

    // Request B (another device), past the resend floor: the link to the new address again,
    // with a PKCE flow of its own. Both requests are now pending with the same flow method.
    api.db
        .execute("update auth.users set email_change_sent_at = now() - interval '2 minutes'")
        .await;
    let resent = api
        .post(
            "/auth/v1/resend",
            json!({"type": "email_change", "email": OLD, "code_challenge": challenge(&verifier_b),
                   "code_challenge_method": "s256"}),
        )
        .await;
    assert_eq!(resent.status, 200, "{}", resent.body);
    assert_eq!(
        api.scalar_i64("select count(*) from auth.flow_state").await,
        3
    );
    let to_new = latest(&api.mailbox(NEW).await, "email_change");

    let pending = api.follow_link(to_new["link"].as_str().unwrap()).await;
    assert!(
        pending.fragment().unwrap_or("").starts_with("message="),
        "{pending}"
    );
    // The older link, from request A, completes the change: its code belongs to request A.
    let done = api.follow_link(to_current["link"].as_str().unwrap()).await;
    let code = done
        .query_pairs()
        .find(|(name, _)| name == "code")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_else(|| panic!("no code in {done}"));
    let exchange = |verifier: &str| {
        api.post(
            "/auth/v1/token?grant_type=pkce",
            json!({"auth_code": code, "code_verifier": verifier}),
        )
    };
    let other = exchange(&verifier_b).await;
    assert_eq!(other.status, 400, "{}", other.body);
    assert_eq!(other.body["code"], "bad_code_verifier");
    let own = exchange(&verifier_a).await;
    assert_eq!(own.status, 200, "{}", own.body);
    assert_eq!(own.body["user"]["email"], NEW);
}
