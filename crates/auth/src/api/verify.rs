//! `/verify`: POST (a code with the email, or a token hash → session) and GET (the email link →
//! 303 to `redirect_to` with the session in the fragment, or `?code=` for PKCE links; errors as
//! fragment parameters too).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::Auth;
use super::db::{Tx, begin, binds, col, query};
use super::error::AuthError;
use super::links::{PKCE_PREFIX, flow_id, token_hash};
use super::request::{Body, Client, Params};
use super::users::{self, UserRecord};
use super::{redirect, session};

const EMAIL_CHANGE_PENDING: &str =
    "Confirmation link accepted. Please proceed to confirm link sent to the other email";

/// The `POST /verify` body (auth-js spreads its options in: unknown fields are ignored).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct VerifyBody {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    token_hash: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
}

/// Token kinds a verification type accepts, and the PKCE authentication method it records.
fn kinds_for(verify_type: &str) -> Option<(&'static [&'static str], &'static str)> {
    Some(match verify_type {
        "signup" => (&["confirmation_token"], "email/signup"),
        "invite" => (&["confirmation_token"], "invite"),
        "magiclink" => (&["recovery_token"], "magiclink"),
        "recovery" => (&["recovery_token"], "recovery"),
        "email" => (&["confirmation_token", "recovery_token"], "email/signup"),
        "email_change" => (
            &["email_change_token_new", "email_change_token_current"],
            "email_change",
        ),
        _ => return None,
    })
}

fn otp_expired() -> AuthError {
    AuthError::forbidden("otp_expired", "Token has expired or is invalid")
}

/// How a verified token was found.
enum Lookup {
    /// A code typed by the user, with the address it was sent to.
    Code { email: String, code: String },
    /// The hash from a link (or `verifyOtp({token_hash})`).
    Hash(String),
}

/// What verifying did.
enum Outcome {
    /// The user is confirmed / recovered / changed: a session may start.
    Verified(Box<UserRecord>),
    /// One half of a two-address email change; the other link is still needed.
    EmailChangePending,
}

/// Finds the token, applies its effect and spends it.
async fn verify_token(
    auth: &Auth,
    tx: &Tx,
    verify_type: &str,
    lookup: Lookup,
) -> Result<Outcome, AuthError> {
    let (kinds, _) = kinds_for(verify_type).ok_or_else(otp_expired)?;
    let kinds_text = kinds.join(",");
    let (hash, relates_to) = match lookup {
        Lookup::Code { email, code } => (token_hash(&email, &code), Some(email)),
        Lookup::Hash(hash) => (hash, None),
    };
    let row = tx
        .opt(&query(
            "select t.user_id, t.token_type::text from auth.one_time_tokens t \
               join auth.users u on u.id = t.user_id \
             where t.token_hash = $1 and t.token_type::text = any(string_to_array($2, ',')) \
               and ($3::text is null or lower(t.relates_to) = lower($3)) \
               and t.created_at > (now() at time zone 'utc') - make_interval(secs => $4) \
               and $1 = case t.token_type \
                 when 'confirmation_token' then u.confirmation_token \
                 when 'recovery_token' then u.recovery_token \
                 when 'email_change_token_new' then u.email_change_token_new \
                 when 'email_change_token_current' then u.email_change_token_current \
                 else null end \
             order by t.created_at desc limit 1 for update of u",
            binds![
                hash,
                kinds_text,
                relates_to,
                auth.settings().otp_expiry_secs as i64
            ],
        ))
        .await?
        .ok_or_else(otp_expired)?;
    let user_id: Uuid = col(&row, 0)?;
    let token_type: String = col(&row, 1)?;
    tx.exec(&query(
        "delete from auth.one_time_tokens where user_id = $1::uuid and token_type::text = $2",
        binds![user_id.to_string(), token_type.clone()],
    ))
    .await?;
    match token_type.as_str() {
        "confirmation_token" => users::confirm_email(tx, user_id).await?,
        "recovery_token" => {
            tx.exec(&query(
                "update auth.users set recovery_token = '', updated_at = now() \
                 where id = $1::uuid",
                binds![user_id.to_string()],
            ))
            .await?;
            // Following a recovery or magic link proves the address.
            users::confirm_email(tx, user_id).await?;
        }
        _ => {
            if !finish_email_change(tx, user_id, &token_type).await? {
                return Ok(Outcome::EmailChangePending);
            }
        }
    }
    let user = users::by_id(tx, user_id).await?.ok_or_else(otp_expired)?;
    if user.banned {
        return Err(session::banned());
    }
    Ok(Outcome::Verified(Box::new(user)))
}

/// Applies one confirmed half of an email change; true once the change is complete.
async fn finish_email_change(tx: &Tx, user_id: Uuid, token_type: &str) -> Result<bool, AuthError> {
    let row = tx
        .one(&query(
            "update auth.users set \
               email_change_token_new = case when $2 = 'email_change_token_new' then '' \
                 else email_change_token_new end, \
               email_change_token_current = case when $2 = 'email_change_token_current' then '' \
                 else email_change_token_current end, \
               email_change_confirm_status = email_change_confirm_status + 1, \
               updated_at = now() \
             where id = $1::uuid \
             returning coalesce(email_change_token_new, '') = '' \
               and coalesce(email_change_token_current, '') = ''",
            binds![user_id.to_string(), token_type],
        ))
        .await?;
    let complete: bool = col(&row, 0)?;
    if !complete {
        return Ok(false);
    }
    tx.exec(&query(
        "with changed as ( \
           update auth.users set email = email_change, email_change = '', \
             email_change_confirm_status = 0, email_change_sent_at = null, \
             email_confirmed_at = now(), is_anonymous = false, \
             raw_app_meta_data = coalesce(raw_app_meta_data, '{}'::jsonb) \
               || jsonb_build_object( \
                    'provider', coalesce(raw_app_meta_data ->> 'provider', 'email'), \
                    'providers', (select jsonb_agg(distinct p) from jsonb_array_elements_text( \
                      coalesce(raw_app_meta_data -> 'providers', '[]'::jsonb) || '[\"email\"]'::jsonb) p)), \
             updated_at = now() \
           where id = $1::uuid returning id, email) \
         insert into auth.identities (provider_id, user_id, identity_data, provider, created_at, \
           updated_at) \
         select c.id::text, c.id, jsonb_build_object('sub', c.id::text, 'email', c.email, \
           'email_verified', true, 'phone_verified', false), 'email', now(), now() from changed c \
         on conflict (provider_id, provider) do update set \
           identity_data = auth.identities.identity_data || excluded.identity_data, \
           updated_at = now()",
        binds![user_id.to_string()],
    ))
    .await?;
    Ok(true)
}

/// `POST /verify`.
pub(crate) async fn verify_otp(
    State(auth): State<Arc<Auth>>,
    client: Client,
    Body(body): Body<VerifyBody>,
) -> Result<Json<Value>, AuthError> {
    let verify_type = body
        .kind
        .filter(|kind| !kind.is_empty())
        .ok_or_else(|| AuthError::validation("Verify requires a verification type"))?;
    let token = body.token.filter(|token| !token.is_empty());
    let hash = body.token_hash.filter(|hash| !hash.is_empty());
    let email = body.email.filter(|email| !email.is_empty());
    let phone = body.phone.filter(|phone| !phone.is_empty());
    let lookup = match (token, hash) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(AuthError::validation(
                "Verify requires either a token or a token hash",
            ));
        }
        (None, Some(hash)) => {
            if email.is_some() || phone.is_some() {
                return Err(AuthError::validation(
                    "Only the token_hash and type should be provided",
                ));
            }
            Lookup::Hash(hash)
        }
        (Some(code), None) => match (email, phone) {
            (Some(email), _) => Lookup::Code {
                email: users::normalize_email(&email).ok_or_else(users::invalid_email)?,
                code,
            },
            (None, Some(_)) => return Err(otp_expired()),
            (None, None) => {
                return Err(AuthError::validation(
                    "Verify requires an email or a phone number",
                ));
            }
        },
    };
    if matches!(verify_type.as_str(), "sms" | "phone_change") {
        return Err(otp_expired());
    }
    if kinds_for(&verify_type).is_none() {
        return Err(AuthError::validation(format!(
            "Unsupported verification type {verify_type}"
        )));
    }
    let tx = begin(&auth.db).await?;
    match verify_token(&auth, &tx, &verify_type, lookup).await? {
        Outcome::Verified(user) => {
            let session = session::start(&auth, &tx, &user, "otp", &client).await?;
            tx.commit().await?;
            Ok(Json(session))
        }
        Outcome::EmailChangePending => {
            tx.commit().await?;
            Ok(Json(json!({"msg": EMAIL_CHANGE_PENDING, "code": "200"})))
        }
    }
}

fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn encode_pairs(pairs: &[(&str, &str)]) -> String {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        serializer.append_pair(key, value);
    }
    serializer.finish()
}

fn error_redirect(target: &str, pkce: bool, error: &AuthError) -> Response {
    let description = error.to_string();
    let params = encode_pairs(&[
        ("error", "access_denied"),
        ("error_code", error.code()),
        ("error_description", &description),
        ("sb", ""),
    ]);
    let base = without_fragment(target);
    let location = if pkce {
        format!("{}{params}#{params}", with_query_separator(base))
    } else {
        format!("{base}#{params}")
    };
    see_other(&location)
}

fn without_fragment(target: &str) -> &str {
    target.split('#').next().unwrap_or(target)
}

fn with_query_separator(base: &str) -> String {
    if base.contains('?') {
        format!("{base}&")
    } else {
        format!("{base}?")
    }
}

/// `GET /verify?token=…&type=…&redirect_to=…`: the link in an email (a browser navigation, no
/// apikey). Always answers 303.
pub(crate) async fn verify_link(
    State(auth): State<Arc<Auth>>,
    client: Client,
    params: Params,
) -> Response {
    let target = redirect::resolve(auth.settings(), params.get("redirect_to"));
    let token = params.get("token").unwrap_or("");
    let pkce = token.starts_with(PKCE_PREFIX);
    let verify_type = params.get("type").unwrap_or("");
    match follow_link(&auth, &client, token, verify_type, &target).await {
        Ok(location) => see_other(&location),
        Err(error) => {
            if error.status().is_server_error() {
                tracing::error!(%error, "email link verification failed");
            }
            let shown = if error.code() == "otp_expired" {
                AuthError::forbidden("otp_expired", "Email link is invalid or has expired")
            } else {
                error
            };
            error_redirect(&target, pkce, &shown)
        }
    }
}

async fn follow_link(
    auth: &Auth,
    client: &Client,
    token: &str,
    verify_type: &str,
    target: &str,
) -> Result<String, AuthError> {
    let (_, flow_method) = kinds_for(verify_type).ok_or_else(otp_expired)?;
    let (hash, pkce) = match token.strip_prefix(PKCE_PREFIX) {
        Some(hash) => (hash, true),
        None => (token, false),
    };
    if hash.is_empty() {
        return Err(otp_expired());
    }
    let tx = begin(&auth.db).await?;
    let outcome = verify_token(auth, &tx, verify_type, Lookup::Hash(hash.to_owned())).await?;
    let base = without_fragment(target);
    let location = match outcome {
        Outcome::EmailChangePending => {
            let params = encode_pairs(&[("message", EMAIL_CHANGE_PENDING), ("sb", "")]);
            format!("{base}#{params}")
        }
        Outcome::Verified(user) if pkce => {
            // The flow recorded with this very link, not the user's newest one.
            let row = tx
                .opt(&query(
                    "update auth.flow_state set auth_code_issued_at = now(), updated_at = now() \
                     where id = $1::uuid and user_id = $2::uuid and authentication_method = $3 \
                     returning auth_code",
                    binds![flow_id(hash).to_string(), user.id.to_string(), flow_method],
                ))
                .await?
                .ok_or_else(|| {
                    AuthError::not_found("flow_state_not_found", "No PKCE flow state found")
                })?;
            let code: String = col(&row, 0)?;
            format!(
                "{}{}",
                with_query_separator(base),
                encode_pairs(&[("code", &code)])
            )
        }
        Outcome::Verified(user) => {
            let session = session::start(auth, &tx, &user, "otp", client).await?;
            let text = |key: &str| match &session[key] {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            let params = encode_pairs(&[
                ("access_token", &text("access_token")),
                ("expires_at", &text("expires_at")),
                ("expires_in", &text("expires_in")),
                ("refresh_token", &text("refresh_token")),
                ("token_type", "bearer"),
                ("type", verify_type),
                ("sb", ""),
            ]);
            format!("{base}#{params}")
        }
    };
    tx.commit().await?;
    Ok(location)
}
