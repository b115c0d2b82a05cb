//! Admin endpoints that issue email links: `POST /admin/generate_link` (the link and code
//! without sending), `POST /invite`, and `GET /admin/mailbox`, the dev mailbox reader.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Auth;
use super::admin::{reload, user_not_found};
use super::db::{Tx, begin, binds, col, query};
use super::error::AuthError;
use super::links::{self, EmailKind};
use super::request::{Admin, Body, Params};
use super::users::{self, NewUser, UserRecord};
use super::{password, redirect};

/// Most dev-mailbox messages returned at once.
const MAILBOX_LIMIT: i64 = 50;

/// The `POST /admin/generate_link` and `POST /invite` body.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct LinkBody {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    new_email: Option<String>,
    #[serde(default)]
    redirect_to: Option<String>,
}

/// Finds the user for an invite or sign-up link, creating it when new; a confirmed address
/// is 422 `email_exists`.
async fn invitee(
    tx: &Tx,
    email: &str,
    password_hash: Option<String>,
    data: Option<Value>,
    invited: bool,
) -> Result<UserRecord, AuthError> {
    match users::by_email(tx, email).await? {
        Some(user) if user.email_confirmed => Err(AuthError::unprocessable(
            "email_exists",
            "A user with this email address has already been registered",
        )),
        Some(user) => Ok(user),
        None => {
            users::create(
                tx,
                NewUser {
                    email: Some(email.to_owned()),
                    password_hash,
                    invited,
                    user_metadata: data,
                    ..NewUser::default()
                },
            )
            .await
        }
    }
}

/// `POST /admin/generate_link`: the link and code an email would carry, without sending it;
/// the user's fields are flattened into the answer, as GoTrue.
pub(crate) async fn generate_link(
    State(auth): State<Arc<Auth>>,
    _admin: Admin,
    params: Params,
    Body(body): Body<LinkBody>,
) -> Result<Json<Value>, AuthError> {
    let raw_email = body.email.as_deref().unwrap_or("");
    let email = users::normalize_email(raw_email).ok_or_else(users::invalid_email)?;
    let requested = params.get("redirect_to").or(body.redirect_to.as_deref());
    let redirect_to = redirect::resolve(auth.settings(), requested);
    let kind_name = body.kind.clone().unwrap_or_default();
    let hash = match body.password.as_deref().filter(|p| !p.is_empty()) {
        Some(password) => {
            password::check_new(auth.settings(), password)?;
            Some(password::hash(password).await?)
        }
        None => None,
    };
    let tx = begin(&auth.db).await?;
    let (user, kind, address) = match kind_name.as_str() {
        "signup" => {
            if hash.is_none() {
                return Err(AuthError::validation(
                    "Password is required for signup links",
                ));
            }
            let user = invitee(&tx, &email, hash, body.data.clone(), false).await?;
            (user, EmailKind::Signup, email.clone())
        }
        "invite" => {
            let user = invitee(&tx, &email, None, body.data.clone(), true).await?;
            (user, EmailKind::Invite, email.clone())
        }
        "magiclink" | "recovery" => {
            let user = users::by_email(&tx, &email)
                .await?
                .ok_or_else(user_not_found)?;
            let kind = if kind_name == "magiclink" {
                EmailKind::Magiclink
            } else {
                EmailKind::Recovery
            };
            (user, kind, email.clone())
        }
        "email_change_current" | "email_change_new" => {
            let user = users::by_email(&tx, &email)
                .await?
                .ok_or_else(user_not_found)?;
            let new_email = body
                .new_email
                .as_deref()
                .and_then(users::normalize_email)
                .ok_or_else(|| AuthError::validation("new_email is required"))?;
            if users::email_taken(&tx, &new_email, Some(user.id)).await? {
                return Err(AuthError::unprocessable(
                    "email_exists",
                    "A user with this email address has already been registered",
                ));
            }
            tx.exec(&query(
                "update auth.users set email_change = $2, email_change_confirm_status = 0, \
                   email_change_token_new = '', email_change_token_current = '' \
                 where id = $1::uuid",
                binds![user.id.to_string(), new_email.clone()],
            ))
            .await?;
            if kind_name == "email_change_new" {
                (user, EmailKind::EmailChangeNew, new_email)
            } else {
                (user, EmailKind::EmailChangeCurrent, email.clone())
            }
        }
        _ => {
            return Err(AuthError::validation(
                "Invalid link type: signup, invite, magiclink, recovery, email_change_current or email_change_new",
            ));
        }
    };
    let prepared = links::prepare(&auth, &tx, user.id, &address, kind, &redirect_to, None).await?;
    let user = reload(&tx, user.id).await?;
    tx.commit().await?;
    let mut response = user.json;
    if let Some(object) = response.as_object_mut() {
        object.insert("action_link".into(), json!(prepared.link));
        object.insert("email_otp".into(), json!(prepared.code));
        object.insert("hashed_token".into(), json!(prepared.hash));
        object.insert("redirect_to".into(), json!(redirect_to));
        object.insert("verification_type".into(), json!(kind_name));
    }
    Ok(Json(response))
}

/// `POST /invite {email, data}`: creates (or re-invites) the user and mails the invite.
pub(crate) async fn invite(
    State(auth): State<Arc<Auth>>,
    _admin: Admin,
    params: Params,
    Body(body): Body<LinkBody>,
) -> Result<Json<Value>, AuthError> {
    let raw_email = body.email.as_deref().unwrap_or("");
    let email = users::normalize_email(raw_email).ok_or_else(users::invalid_email)?;
    let redirect_to = redirect::resolve(auth.settings(), params.get("redirect_to"));
    let tx = begin(&auth.db).await?;
    let user = invitee(&tx, &email, None, body.data.clone(), true).await?;
    tx.exec(&query(
        "update auth.users set invited_at = coalesce(invited_at, now()) where id = $1::uuid",
        binds![user.id.to_string()],
    ))
    .await?;
    links::send(
        &auth,
        &tx,
        user.id,
        &email,
        EmailKind::Invite,
        &redirect_to,
        None,
    )
    .await?;
    let user = reload(&tx, user.id).await?;
    tx.commit().await?;
    Ok(Json(user.json))
}

/// `GET /admin/mailbox?email=…`: the newest messages of the dev mailbox (no SMTP configured),
/// so flows that need an emailed code are testable.
pub(crate) async fn mailbox(
    State(auth): State<Arc<Auth>>,
    _admin: Admin,
    params: Params,
) -> Result<Json<Value>, AuthError> {
    let email = params.get("email").map(str::to_owned);
    let tx = begin(&auth.db).await?;
    let row = tx
        .one(&query(
            "select coalesce(jsonb_agg(jsonb_build_object('id', m.id, \
               'created_at', auth.manifold_time(m.created_at), 'to', m.recipient, \
               'subject', m.subject, 'type', m.kind, 'body', m.body, 'otp', m.otp, \
               'link', m.link) order by m.id desc), '[]'::jsonb) \
             from (select * from auth.dev_mailbox \
                   where $1::text is null or lower(recipient) = lower($1) \
                   order by id desc limit $2) m",
            binds![email, MAILBOX_LIMIT],
        ))
        .await?;
    tx.commit().await?;
    Ok(Json(col(&row, 0)?))
}
