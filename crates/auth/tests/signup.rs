//! Sign-up with the address of an existing account that is not confirmed yet: GoTrue never
//! updates such a user ("we can't be sure of their claimed identity"), so nobody can take it over
//! by signing up with a password of their own, even with autoconfirm on.

use reqwest::Method;
use serde_json::json;

use crate::common::Api;

const HELD: &str = "held@example.com";

async fn sign_in(api: &Api, email: &str, password: &str) -> crate::common::Reply {
    api.post(
        "/auth/v1/token?grant_type=password",
        json!({"email": email, "password": password}),
    )
    .await
}

#[tokio::test]
async fn signing_up_over_an_unconfirmed_account_keeps_its_password_and_starts_no_session() {
    // No SMTP: autoconfirm is on, which must not confirm an account someone else created.
    let api = Api::start().await;
    let created = api
        .admin(
            Method::POST,
            "/auth/v1/admin/users",
            Some(json!({"email": HELD, "password": "admin-chose-1"})),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let hash_sql = "select encrypted_password from auth.users where email = 'held@example.com'";
    let hash_before = api.scalar_text(hash_sql).await;

    let signup = api
        .post(
            "/auth/v1/signup",
            json!({"email": "Held@Example.com", "password": "attacker-pw-1",
                   "data": {"name": "mallory"}}),
        )
        .await;
    assert_eq!(signup.status, 200, "{}", signup.body);
    assert!(signup.body.get("access_token").is_none(), "{}", signup.body);
    assert_eq!(signup.body["id"], created.body["id"]);
    assert_eq!(signup.body["user_metadata"], json!({}));
    assert!(signup.body.get("email_confirmed_at").is_none());
    assert_eq!(api.scalar_text(hash_sql).await, hash_before);
    assert_eq!(
        api.scalar_i64("select count(*) from auth.users where email_confirmed_at is not null")
            .await,
        0
    );
    assert_eq!(
        api.scalar_i64("select count(*) from auth.sessions").await,
        0
    );

    let attacker = sign_in(&api, HELD, "attacker-pw-1").await;
    assert_eq!(attacker.status, 400, "{}", attacker.body);
    assert_eq!(attacker.body["code"], "invalid_credentials");
    let owner = sign_in(&api, HELD, "admin-chose-1").await;
    assert_eq!(owner.status, 400, "{}", owner.body);
    assert_eq!(owner.body["code"], "email_not_confirmed");

    // The confirmation went to the address instead, under the 60 s resend floor.
    let mails = api.mailbox(HELD).await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0]["type"], "signup");
    let again = api
        .post(
            "/auth/v1/signup",
            json!({"email": HELD, "password": "attacker-pw-2"}),
        )
        .await;
    assert_eq!(again.status, 429, "{}", again.body);
    assert_eq!(again.body["code"], "over_email_send_rate_limit");

    // Whoever reads that inbox confirms the account, which keeps the password it was made with.
    let confirmed = api
        .post(
            "/auth/v1/verify",
            json!({"type": "signup", "email": HELD, "token": mails[0]["otp"]}),
        )
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    assert_eq!(sign_in(&api, HELD, "admin-chose-1").await.status, 200);
    assert_eq!(sign_in(&api, HELD, "attacker-pw-1").await.status, 400);
}

#[tokio::test]
async fn an_invited_address_cannot_be_claimed_by_signing_up() {
    let invited_sql = "select count(*) from auth.users where email = 'held@example.com' \
                       and coalesce(encrypted_password, '') = '' and email_confirmed_at is null";

    // Autoconfirm on: the address counts as registered.
    let api = Api::start().await;
    let invite = api
        .admin(
            Method::POST,
            "/auth/v1/invite",
            Some(json!({"email": HELD})),
        )
        .await;
    assert_eq!(invite.status, 200, "{}", invite.body);
    let signup = api
        .post(
            "/auth/v1/signup",
            json!({"email": HELD, "password": "attacker-pw-1"}),
        )
        .await;
    assert_eq!(signup.status, 422, "{}", signup.body);
    assert_eq!(signup.body["code"], "user_already_exists");
    assert_eq!(api.scalar_i64(invited_sql).await, 1);
    assert_eq!(
        api.scalar_i64("select count(*) from auth.sessions").await,
        0
    );

    // Autoconfirm off: the enumeration-safe fake user, and no second email to the invitee.
    let api = Api::start_with(|config| config.auth.mailer_autoconfirm = Some(false)).await;
    let invite = api
        .admin(
            Method::POST,
            "/auth/v1/invite",
            Some(json!({"email": HELD})),
        )
        .await;
    assert_eq!(invite.status, 200, "{}", invite.body);
    let signup = api
        .post(
            "/auth/v1/signup",
            json!({"email": HELD, "password": "attacker-pw-1"}),
        )
        .await;
    assert_eq!(signup.status, 200, "{}", signup.body);
    assert_ne!(signup.body["id"], invite.body["id"]);
    assert_eq!(signup.body["identities"], json!([]));
    assert_eq!(api.scalar_i64(invited_sql).await, 1);
    let kinds: Vec<_> = api
        .mailbox(HELD)
        .await
        .iter()
        .map(|mail| mail["type"].clone())
        .collect();
    assert_eq!(kinds, vec![json!("invite")]);
}
