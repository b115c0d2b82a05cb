//! `POST /token?grant_type=password|refresh_token|pkce`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::Auth;
use super::db::{begin, binds, col, query, run};
use super::error::AuthError;
use super::links::verifier_matches;
use super::request::{Body, Client, Params};
use super::users::{self, UserRecord, user_columns};
use super::{password, refresh, session};

/// How long a PKCE auth code may be exchanged after it was issued, as GoTrue's.
const FLOW_STATE_EXPIRY_SECS: i64 = 300;

/// The union of the grant types' body fields (captcha fields are ignored).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct TokenBody {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    auth_code: Option<String>,
    #[serde(default)]
    code_verifier: Option<String>,
}

/// `POST /token`.
pub(crate) async fn token(
    State(auth): State<Arc<Auth>>,
    client: Client,
    params: Params,
    Body(body): Body<TokenBody>,
) -> Result<Json<Value>, AuthError> {
    let response = match params.get("grant_type") {
        Some("password") => password_grant(&auth, &client, body).await?,
        Some("refresh_token") => refresh::grant(&auth, &client, body.refresh_token).await?,
        Some("pkce") => pkce_grant(&auth, &client, body).await?,
        Some(other) => {
            return Err(AuthError::validation(format!(
                "unsupported_grant_type: {other} is not supported by this server"
            )));
        }
        None => return Err(AuthError::validation("unsupported_grant_type")),
    };
    Ok(Json(response))
}

fn invalid_credentials() -> AuthError {
    AuthError::bad_request("invalid_credentials", "Invalid login credentials")
}

async fn password_grant(auth: &Auth, client: &Client, body: TokenBody) -> Result<Value, AuthError> {
    let email = body.email.filter(|email| !email.trim().is_empty());
    let phone = body.phone.filter(|phone| !phone.trim().is_empty());
    if email.is_none() && phone.is_none() {
        return Err(AuthError::validation("missing email or phone"));
    }
    let password = body.password.unwrap_or_default();
    // Phone sign-in is not offered: such a user cannot exist, so the answer is the generic one.
    let user = match email {
        Some(email) if auth.settings().email_enabled => {
            let rows = run(
                &auth.db,
                &query(
                    concat!(
                        "select ",
                        user_columns!(),
                        " from auth.users u where lower(u.email) = lower($1) \
                         and u.is_sso_user = false and u.deleted_at is null \
                         order by u.created_at limit 1"
                    ),
                    binds![email.trim()],
                ),
            )
            .await?;
            rows.first()
                .map(|row| UserRecord::from_row(row, 0))
                .transpose()?
        }
        Some(_) => {
            return Err(AuthError::bad_request(
                "email_provider_disabled",
                "Email logins are disabled",
            ));
        }
        None => None,
    };
    // bcrypt runs for unknown users too, on a dummy hash: same time, same answer.
    let stored = user.as_ref().map_or("", |user| user.password_hash.as_str());
    let matched = !password.is_empty() && password::verify(&password, stored).await?;
    let user = match user {
        Some(user) if matched => user,
        _ => return Err(invalid_credentials()),
    };
    if user.banned {
        return Err(session::banned());
    }
    if !user.email_confirmed {
        return Err(AuthError::bad_request(
            "email_not_confirmed",
            "Email not confirmed",
        ));
    }
    let rehash = if password::needs_rehash(&user.password_hash) {
        Some(password::hash(&password).await?)
    } else {
        None
    };
    let tx = begin(&auth.db).await?;
    if let Some(hash) = rehash {
        users::set_password(&tx, user.id, &hash).await?;
    }
    let response = session::start(auth, &tx, &user, "password", client).await?;
    tx.commit().await?;
    // A password that the current policy would refuse still signs in, with a warning.
    Ok(match password::weakness(auth.settings(), &password) {
        Some(AuthError::WeakPassword { message, reasons }) => session::with_field(
            response,
            "weak_password",
            json!({"message": message, "reasons": reasons}),
        ),
        _ => response,
    })
}

async fn pkce_grant(auth: &Auth, client: &Client, body: TokenBody) -> Result<Value, AuthError> {
    let auth_code = body.auth_code.filter(|code| !code.is_empty());
    let verifier = body.code_verifier.filter(|verifier| !verifier.is_empty());
    let (Some(auth_code), Some(verifier)) = (auth_code, verifier) else {
        return Err(AuthError::validation(
            "invalid request: both auth code and code verifier should be non-empty",
        ));
    };
    let tx = begin(&auth.db).await?;
    let row = tx
        .opt(&query(
            "select id, user_id, code_challenge_method::text, code_challenge, \
               authentication_method, \
               coalesce(auth_code_issued_at, created_at) < now() - make_interval(secs => $2) \
             from auth.flow_state where auth_code = $1 for update",
            binds![auth_code, FLOW_STATE_EXPIRY_SECS],
        ))
        .await?
        .ok_or_else(|| {
            AuthError::not_found(
                "flow_state_not_found",
                "invalid flow state, no valid flow state found",
            )
        })?;
    let flow_id: Uuid = col(&row, 0)?;
    let user_id: Option<Uuid> = col(&row, 1)?;
    let method: String = col(&row, 2)?;
    let challenge: String = col(&row, 3)?;
    let authentication_method: String = col(&row, 4)?;
    let expired: bool = col(&row, 5)?;
    if expired {
        return Err(AuthError::unprocessable(
            "flow_state_expired",
            "invalid flow state, flow state has expired",
        ));
    }
    if !verifier_matches(&method, &challenge, &verifier) {
        return Err(AuthError::bad_request(
            "bad_code_verifier",
            "code challenge does not match previously saved code verifier",
        ));
    }
    let user_id = user_id.ok_or_else(|| {
        AuthError::not_found("flow_state_not_found", "invalid flow state, no user")
    })?;
    let user = users::by_id(&tx, user_id)
        .await?
        .ok_or_else(|| AuthError::not_found("user_not_found", "User not found"))?;
    if user.banned {
        return Err(session::banned());
    }
    tx.exec(&query(
        "delete from auth.flow_state where id = $1::uuid",
        binds![flow_id.to_string()],
    ))
    .await?;
    let amr = match authentication_method.as_str() {
        "email/signup" => "otp",
        other => other,
    };
    let response = session::start(auth, &tx, &user, amr, client).await?;
    tx.commit().await?;
    Ok(response)
}
