//! The signed-in user's endpoints: `GET/PUT /user`, `POST /logout`, `GET /reauthenticate`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::Auth;
use super::db::{Tx, begin, binds, col, query};
use super::error::AuthError;
use super::links::{self, EmailKind, PkceParams, TokenKind, token_hash};
use super::mail::Mail;
use super::request::{Body, Params, UserToken};
use super::session::authenticated_user;
use super::users::{self, UserRecord};
use super::{password, redirect};

/// `GET /user`.
pub(crate) async fn get_user(
    State(auth): State<Arc<Auth>>,
    token: UserToken,
) -> Result<Json<Value>, AuthError> {
    let tx = begin(&auth.db).await?;
    let user = authenticated_user(&tx, token.user_id, token.session_id).await?;
    tx.commit().await?;
    Ok(Json(user.json))
}

/// The `PUT /user` body.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct UpdateBody {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    current_password: Option<String>,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    app_metadata: Option<Value>,
    #[serde(flatten)]
    pkce: PkceParams,
}

async fn has_verified_factor(tx: &Tx, user_id: Uuid) -> Result<bool, AuthError> {
    let row = tx
        .one(&query(
            "select exists (select 1 from auth.mfa_factors where user_id = $1::uuid \
               and status = 'verified')",
            binds![user_id.to_string()],
        ))
        .await?;
    col(&row, 0)
}

fn insufficient_aal() -> AuthError {
    AuthError::new(
        StatusCode::UNAUTHORIZED,
        "insufficient_aal",
        "AAL2 session is required to update email or password when MFA is enabled.",
    )
}

/// `PUT /user`: metadata merge, password change (revoking the other sessions), email change
/// with confirmation mails.
pub(crate) async fn update_user(
    State(auth): State<Arc<Auth>>,
    params: Params,
    token: UserToken,
    Body(body): Body<UpdateBody>,
) -> Result<Json<Value>, AuthError> {
    let settings = auth.settings();
    if body.app_metadata.is_some() {
        return Err(AuthError::forbidden(
            "not_admin",
            "Updating app_metadata requires admin privileges",
        ));
    }
    if body.phone.as_deref().is_some_and(|phone| !phone.is_empty()) {
        return Err(AuthError::unprocessable(
            "phone_provider_disabled",
            "Unsupported phone provider",
        ));
    }
    let new_password = body
        .password
        .clone()
        .filter(|password| !password.is_empty());
    let new_hash = match &new_password {
        Some(password) => {
            password::check_new(settings, password)?;
            Some(password::hash(password).await?)
        }
        None => None,
    };
    let pkce = body.pkce.pkce()?;
    let redirect_to = redirect::resolve(settings, params.get("redirect_to"));

    let tx = begin(&auth.db).await?;
    let user = authenticated_user(&tx, token.user_id, token.session_id).await?;
    if let Some(data) = body.data.as_ref().filter(|data| data.is_object()) {
        users::merge_user_metadata(&tx, user.id, data).await?;
    }
    if let (Some(password), Some(hash)) = (&new_password, &new_hash) {
        if user.email.is_empty() && user.phone.is_empty() {
            return Err(AuthError::validation(
                "Updating password of an anonymous user without an email or phone is not allowed",
            ));
        }
        if token.aal() != "aal2" && has_verified_factor(&tx, user.id).await? {
            return Err(insufficient_aal());
        }
        let nonce = body.nonce.as_deref().filter(|nonce| !nonce.is_empty());
        // GoTrue's secure password change: a session signed in over 24 hours ago must prove
        // the user is still there with the nonce from `/reauthenticate`.
        if settings.update_password_require_reauthentication
            && !session_is_recent(&tx, token.session_id).await?
        {
            let nonce = nonce.ok_or_else(|| {
                AuthError::bad_request(
                    "reauthentication_needed",
                    "Password update requires reauthentication",
                )
            })?;
            check_nonce(&auth, &tx, &user, nonce).await?;
        } else if let Some(nonce) = nonce {
            check_nonce(&auth, &tx, &user, nonce).await?;
        }
        if !user.password_hash.is_empty() {
            // A PKCE recovery session has proven the inbox instead: it may set a password
            // without knowing the old one, as GoTrue.
            if settings.update_password_require_current_password
                && !is_recovery_session(&tx, token.session_id).await?
            {
                check_current_password(body.current_password.as_deref(), &user).await?;
            }
            if password::verify(password, &user.password_hash).await? {
                return Err(AuthError::unprocessable(
                    "same_password",
                    "New password should be different from the old password.",
                ));
            }
        }
        users::set_password(&tx, user.id, hash).await?;
        // A password change signs out every other session, as GoTrue.
        tx.exec(&query(
            "delete from auth.sessions where user_id = $1::uuid \
               and ($2::uuid is null or id <> $2::uuid)",
            binds![
                user.id.to_string(),
                token.session_id.map(|id| id.to_string())
            ],
        ))
        .await?;
    }
    if let Some(raw) = body.email.as_deref().filter(|email| !email.is_empty()) {
        let email = users::normalize_email(raw).ok_or_else(users::invalid_email)?;
        if email != user.email {
            if users::email_taken(&tx, &email, Some(user.id)).await? {
                return Err(AuthError::unprocessable(
                    "email_exists",
                    "A user with this email address has already been registered",
                ));
            }
            if token.aal() != "aal2" && has_verified_factor(&tx, user.id).await? {
                return Err(insufficient_aal());
            }
            auth.email_limit.check(&email)?;
            start_email_change(&auth, &tx, &user, &email, &redirect_to, pkce.as_ref()).await?;
        }
    }
    let updated = users::by_id(&tx, user.id)
        .await?
        .ok_or_else(|| AuthError::internal("user vanished"))?;
    tx.commit().await?;
    Ok(Json(updated.json))
}

/// True when the session started less than 24 hours ago (GoTrue's window for changing the
/// password without reauthentication).
async fn session_is_recent(tx: &Tx, session_id: Option<Uuid>) -> Result<bool, AuthError> {
    let Some(session_id) = session_id else {
        return Ok(false);
    };
    let row = tx
        .one(&query(
            "select exists (select 1 from auth.sessions where id = $1::uuid \
               and created_at > now() - interval '24 hours')",
            binds![session_id.to_string()],
        ))
        .await?;
    col(&row, 0)
}

/// True when the session was started by a PKCE password recovery (amr `recovery`).
async fn is_recovery_session(tx: &Tx, session_id: Option<Uuid>) -> Result<bool, AuthError> {
    let Some(session_id) = session_id else {
        return Ok(false);
    };
    let row = tx
        .one(&query(
            "select exists (select 1 from auth.mfa_amr_claims where session_id = $1::uuid \
               and authentication_method = 'recovery')",
            binds![session_id.to_string()],
        ))
        .await?;
    col(&row, 0)
}

/// 400 `current_password_required` without it, 400 `current_password_invalid` when wrong;
/// GoTrue sends the same message for both.
async fn check_current_password(current: Option<&str>, user: &UserRecord) -> Result<(), AuthError> {
    const MESSAGE: &str = "Current password required when setting new password.";
    let current = current
        .filter(|current| !current.is_empty())
        .ok_or_else(|| AuthError::bad_request("current_password_required", MESSAGE))?;
    if password::verify(current, &user.password_hash).await? {
        Ok(())
    } else {
        Err(AuthError::bad_request("current_password_invalid", MESSAGE))
    }
}

/// Records the pending address and mails the new one (and, for a confirmed current address,
/// the current one too: GoTrue's secure email change needs both confirmed).
async fn start_email_change(
    auth: &Auth,
    tx: &Tx,
    user: &UserRecord,
    new_email: &str,
    redirect_to: &str,
    pkce: Option<&links::Pkce>,
) -> Result<(), AuthError> {
    links::check_resend_floor(auth, tx, user.id, TokenKind::EmailChangeNew).await?;
    tx.exec(&query(
        "update auth.users set email_change = $2, email_change_confirm_status = 0, \
           email_change_token_current = '', updated_at = now() where id = $1::uuid",
        binds![user.id.to_string(), new_email],
    ))
    .await?;
    let mut mails = vec![(new_email.to_owned(), EmailKind::EmailChangeNew)];
    if !user.email.is_empty() && user.email_confirmed {
        mails.push((user.email.clone(), EmailKind::EmailChangeCurrent));
    }
    let mailer = auth.mailer()?;
    for (address, kind) in mails {
        let prepared = links::prepare(auth, tx, user.id, &address, kind, redirect_to, pkce).await?;
        mailer
            .send(
                tx,
                Mail {
                    to: address,
                    subject: "Confirm Email Change",
                    kind: "email_change",
                    otp: prepared.code,
                    link: Some(prepared.link),
                },
            )
            .await?;
    }
    Ok(())
}

/// Checks a reauthentication nonce sent by `GET /reauthenticate`, then spends it.
async fn check_nonce(
    auth: &Auth,
    tx: &Tx,
    user: &UserRecord,
    nonce: &str,
) -> Result<(), AuthError> {
    let row = tx
        .one(&query(
            "select reauthentication_token = $2 \
               and reauthentication_sent_at > now() - make_interval(secs => $3) \
             from auth.users where id = $1::uuid",
            binds![
                user.id.to_string(),
                token_hash(&user.email, nonce),
                auth.settings().otp_expiry_secs as i64
            ],
        ))
        .await?;
    let valid: Option<bool> = col(&row, 0)?;
    if valid != Some(true) {
        return Err(AuthError::bad_request(
            "reauthentication_not_valid",
            "Requires reauthentication",
        ));
    }
    tx.exec(&query(
        "with cleared as (update auth.users set reauthentication_token = '' where id = $1::uuid) \
         delete from auth.one_time_tokens where user_id = $1::uuid \
           and token_type = 'reauthentication_token'",
        binds![user.id.to_string()],
    ))
    .await
}

/// `POST /logout?scope=global|local|others` → 204.
pub(crate) async fn logout(
    State(auth): State<Arc<Auth>>,
    params: Params,
    token: UserToken,
) -> Result<StatusCode, AuthError> {
    let scope = params.get("scope").unwrap_or("global");
    if !matches!(scope, "global" | "local" | "others") {
        return Err(AuthError::validation(
            "Unsupported logout scope, must be one of: global, local, others",
        ));
    }
    let tx = begin(&auth.db).await?;
    authenticated_user(&tx, token.user_id, token.session_id).await?;
    tx.exec(&query(
        "delete from auth.sessions where user_id = $1::uuid and case $3 \
           when 'local' then id = $2::uuid \
           when 'others' then id is distinct from $2::uuid \
           else true end",
        binds![
            token.user_id.to_string(),
            token.session_id.map(|id| id.to_string()),
            scope
        ],
    ))
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /reauthenticate`: mails a nonce for a later `PUT /user {password, nonce}`.
pub(crate) async fn reauthenticate(
    State(auth): State<Arc<Auth>>,
    token: UserToken,
) -> Result<Json<Value>, AuthError> {
    let tx = begin(&auth.db).await?;
    let user = authenticated_user(&tx, token.user_id, token.session_id).await?;
    if user.email.is_empty() {
        return Err(AuthError::validation(
            "Reauthentication requires the user to have an email or a phone number",
        ));
    }
    auth.email_limit.check(&user.email)?;
    let site = auth.settings().site_url.clone();
    links::send(
        &auth,
        &tx,
        user.id,
        &user.email,
        EmailKind::Reauthentication,
        &site,
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(Json(json!({})))
}
