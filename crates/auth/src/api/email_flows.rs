//! Endpoints that email a link and a code: `/otp` (magic link or sign-up), `/magiclink` (legacy),
//! `/recover` (always `{}`, so addresses cannot be probed) and `/resend`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Auth;
use super::db::begin;
use super::error::AuthError;
use super::links::{self, EmailKind, PkceParams};
use super::redirect;
use super::request::{Body, Params};
use super::users::{self, NewUser};

/// Body of `/otp`, `/magiclink`, `/recover` and `/resend` (captcha fields ignored).
#[derive(Debug, Deserialize)]
pub(crate) struct EmailBody {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default = "default_true")]
    create_user: bool,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(flatten)]
    pkce: PkceParams,
}

impl Default for EmailBody {
    fn default() -> Self {
        Self {
            email: None,
            phone: None,
            data: None,
            create_user: true,
            kind: None,
            pkce: PkceParams::default(),
        }
    }
}

fn default_true() -> bool {
    true
}

impl EmailBody {
    /// The normalised email; phone requests are refused (no SMS provider).
    fn email(&self) -> Result<String, AuthError> {
        if self.phone.as_deref().is_some_and(|phone| !phone.is_empty())
            && self.email.as_deref().is_none_or(str::is_empty)
        {
            return Err(AuthError::unprocessable(
                "phone_provider_disabled",
                "Unsupported phone provider",
            ));
        }
        let raw = self
            .email
            .as_deref()
            .filter(|email| !email.is_empty())
            .ok_or_else(|| AuthError::validation("An email address or phone number is required"))?;
        users::normalize_email(raw).ok_or_else(users::invalid_email)
    }
}

/// `POST /otp`: a magic link for an existing user; for a new one (when `create_user`), the
/// user is created and gets the sign-up confirmation. Both carry a code usable with
/// `verifyOtp({type: "email"})`.
pub(crate) async fn otp(
    State(auth): State<Arc<Auth>>,
    params: Params,
    Body(body): Body<EmailBody>,
) -> Result<Json<Value>, AuthError> {
    passwordless(&auth, &params, body).await
}

/// `POST /magiclink`: the legacy name of `/otp` with `create_user`.
pub(crate) async fn magiclink(
    State(auth): State<Arc<Auth>>,
    params: Params,
    Body(mut body): Body<EmailBody>,
) -> Result<Json<Value>, AuthError> {
    body.create_user = true;
    passwordless(&auth, &params, body).await
}

async fn passwordless(
    auth: &Auth,
    params: &Params,
    body: EmailBody,
) -> Result<Json<Value>, AuthError> {
    let email = body.email()?;
    let pkce = body.pkce.pkce()?;
    auth.email_limit.check(&email)?;
    let redirect_to = redirect::resolve(auth.settings(), params.get("redirect_to"));
    let tx = begin(&auth.db).await?;
    let (user_id, kind) = match users::by_email(&tx, &email).await? {
        Some(user) => (user.id, EmailKind::Magiclink),
        None => {
            if !body.create_user {
                return Err(AuthError::unprocessable(
                    "otp_disabled",
                    "Signups not allowed for otp",
                ));
            }
            if auth.settings().disable_signup {
                return Err(AuthError::unprocessable(
                    "signup_disabled",
                    "Signups not allowed for this instance",
                ));
            }
            let user = users::create(
                &tx,
                NewUser {
                    email: Some(email.clone()),
                    user_metadata: body.data,
                    ..NewUser::default()
                },
            )
            .await?;
            (user.id, EmailKind::Signup)
        }
    };
    links::send(
        auth,
        &tx,
        user_id,
        &email,
        kind,
        &redirect_to,
        pkce.as_ref(),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(json!({})))
}

/// `POST /recover`: `{}` whether or not the address has an account.
pub(crate) async fn recover(
    State(auth): State<Arc<Auth>>,
    params: Params,
    Body(body): Body<EmailBody>,
) -> Result<Json<Value>, AuthError> {
    let email = body.email()?;
    let pkce = body.pkce.pkce()?;
    auth.email_limit.check(&email)?;
    let redirect_to = redirect::resolve(auth.settings(), params.get("redirect_to"));
    let tx = begin(&auth.db).await?;
    if let Some(user) = users::by_email(&tx, &email).await? {
        links::send(
            &auth,
            &tx,
            user.id,
            &email,
            EmailKind::Recovery,
            &redirect_to,
            pkce.as_ref(),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Json(json!({})))
}

/// `POST /resend {type: signup|email_change, email}`.
pub(crate) async fn resend(
    State(auth): State<Arc<Auth>>,
    params: Params,
    Body(body): Body<EmailBody>,
) -> Result<Json<Value>, AuthError> {
    let kind = body.kind.clone().unwrap_or_default();
    if matches!(kind.as_str(), "sms" | "phone_change") {
        return Err(AuthError::unprocessable(
            "phone_provider_disabled",
            "Unsupported phone provider",
        ));
    }
    if !matches!(kind.as_str(), "signup" | "email_change") {
        return Err(AuthError::validation(
            "Missing one of these types: signup, email_change, sms, phone_change",
        ));
    }
    let email = body.email()?;
    let pkce = body.pkce.pkce()?;
    auth.email_limit.check(&email)?;
    let redirect_to = redirect::resolve(auth.settings(), params.get("redirect_to"));
    let tx = begin(&auth.db).await?;
    if kind == "signup" {
        if let Some(user) = users::by_email(&tx, &email).await?
            && !user.email_confirmed
        {
            links::send(
                &auth,
                &tx,
                user.id,
                &email,
                EmailKind::Signup,
                &redirect_to,
                pkce.as_ref(),
            )
            .await?;
        }
    } else if let Some(user) = users::by_email(&tx, &email).await?
        && let Some(new_email) = user.json["new_email"].as_str().map(str::to_owned)
    {
        links::send(
            &auth,
            &tx,
            user.id,
            &new_email,
            EmailKind::EmailChangeNew,
            &redirect_to,
            pkce.as_ref(),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Json(json!({})))
}
