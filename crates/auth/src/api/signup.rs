//! `POST /signup`: email + password sign-up (a session with autoconfirm, else the bare user and a
//! confirmation email) and anonymous sign-in (no email or phone), with GoTrue's
//! enumeration-safe answers.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::Auth;
use super::db::begin;
use super::error::AuthError;
use super::links::{self, EmailKind, PkceParams};
use super::request::{Body, Client, Params};
use super::users::{self, NewUser};
use super::{password, redirect, session};

/// The sign-up request body (phone, channel and captcha fields are accepted and ignored).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct SignupBody {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    data: Option<Value>,
    #[serde(flatten)]
    pkce: PkceParams,
}

fn present(value: Option<String>) -> Option<String> {
    value.filter(|text| !text.trim().is_empty())
}

/// `POST /signup`.
pub(crate) async fn signup(
    State(auth): State<Arc<Auth>>,
    client: Client,
    params: Params,
    Body(body): Body<SignupBody>,
) -> Result<Json<Value>, AuthError> {
    if auth.settings().disable_signup {
        return Err(AuthError::unprocessable(
            "signup_disabled",
            "Signups not allowed for this instance",
        ));
    }
    let email = present(body.email.clone());
    let phone = present(body.phone.clone());
    match (email, phone) {
        (None, None) => anonymous(&auth, &client, body.data).await,
        (Some(_), Some(_)) => Err(AuthError::validation(
            "Only an email address or phone number should be provided on signup.",
        )),
        (None, Some(_)) => Err(AuthError::unprocessable(
            "phone_provider_disabled",
            "Phone signups are disabled",
        )),
        (Some(email), None) => with_email(&auth, &client, &params, email, body).await,
    }
}

async fn anonymous(
    auth: &Auth,
    client: &Client,
    data: Option<Value>,
) -> Result<Json<Value>, AuthError> {
    if !auth.settings().anonymous_sign_ins {
        return Err(AuthError::unprocessable(
            "anonymous_provider_disabled",
            "Anonymous sign-ins are disabled",
        ));
    }
    if let Some(ip) = client.ip {
        auth.anonymous_limit.check(&ip)?;
    }
    let tx = begin(&auth.db).await?;
    let user = users::create(
        &tx,
        NewUser {
            anonymous: true,
            user_metadata: data,
            ..NewUser::default()
        },
    )
    .await?;
    let session = session::start(auth, &tx, &user, "anonymous", client).await?;
    tx.commit().await?;
    Ok(Json(session))
}

async fn with_email(
    auth: &Auth,
    client: &Client,
    params: &Params,
    email: String,
    body: SignupBody,
) -> Result<Json<Value>, AuthError> {
    let settings = auth.settings();
    if !settings.email_enabled {
        return Err(AuthError::bad_request(
            "email_provider_disabled",
            "Email signups are disabled",
        ));
    }
    let email = users::normalize_email(&email).ok_or_else(users::invalid_email)?;
    let password = present(body.password.clone())
        .ok_or_else(|| AuthError::validation("Signup requires a valid password"))?;
    password::check_new(settings, &password)?;
    let pkce = body.pkce.pkce()?;
    let autoconfirm = settings.autoconfirm();
    if !autoconfirm {
        auth.email_limit.check(&email)?;
    }
    let redirect_to = redirect::resolve(settings, params.get("redirect_to"));
    // bcrypt before the transaction, so no pooled connection waits on it.
    let hash = password::hash(&password).await?;

    let tx = begin(&auth.db).await?;
    let user = match users::by_email(&tx, &email).await? {
        // An invited address counts as registered: the invitee accepts through the invite
        // link, never by signing up with a password of their choosing.
        Some(existing) if existing.email_confirmed || existing.invited => {
            if autoconfirm {
                return Err(AuthError::unprocessable(
                    "user_already_exists",
                    "User already registered",
                ));
            }
            // Without autoconfirm GoTrue answers as for a new user, so sign-up cannot be used to
            // find out which addresses have accounts.
            return Ok(Json(obfuscated_user(&email, body.data)));
        }
        Some(existing) => {
            // An unconfirmed account (signed up earlier, or created by an admin without
            // `email_confirm`). As GoTrue: "do not update the user because we can't be sure of
            // their claimed identity". The password and data stay as they are, no session is
            // issued even with autoconfirm, and the confirmation is mailed again so the owner
            // of the address can confirm it.
            if autoconfirm {
                auth.email_limit.check(&email)?;
            }
            existing
        }
        None => {
            let user = users::create(
                &tx,
                NewUser {
                    email: Some(email.clone()),
                    password_hash: Some(hash),
                    email_confirmed: autoconfirm,
                    user_metadata: body.data,
                    ..NewUser::default()
                },
            )
            .await?;
            if autoconfirm {
                let session = session::start(auth, &tx, &user, "password", client).await?;
                tx.commit().await?;
                return Ok(Json(session));
            }
            user
        }
    };
    links::send(
        auth,
        &tx,
        user.id,
        &email,
        EmailKind::Signup,
        &redirect_to,
        pkce.as_ref(),
    )
    .await?;
    let user = users::by_id(&tx, user.id)
        .await?
        .ok_or_else(|| AuthError::internal("user vanished"))?;
    tx.commit().await?;
    Ok(Json(user.json))
}

/// What GoTrue answers for an already registered address when autoconfirm is off: a plausible
/// user with a random id and no identities.
fn obfuscated_user(email: &str, data: Option<Value>) -> Value {
    let now = chrono_now();
    json!({
        "id": Uuid::new_v4(),
        "aud": "authenticated",
        "role": "authenticated",
        "email": email,
        "phone": "",
        "confirmation_sent_at": now,
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": data.unwrap_or_else(|| json!({})),
        "identities": [],
        "created_at": now,
        "updated_at": now,
        "is_anonymous": false,
    })
}

/// The current time in GoTrue's format, computed without a date library.
fn chrono_now() -> String {
    let secs = crate::keys::unix_now();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.000000Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a calendar date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn fake_user_has_no_identities() {
        let user = obfuscated_user("a@b.io", None);
        assert_eq!(user["identities"], json!([]));
        assert_eq!(user["email"], "a@b.io");
    }
}
