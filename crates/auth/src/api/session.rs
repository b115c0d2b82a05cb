//! Sessions as GoTrue issues them: an `auth.sessions` row per sign-in with its `amr` claims and
//! a first refresh token, and the access token (full claim set, custom hook, HS256 or the
//! configured ES256/RS256 key) wrapped in the session JSON supabase-js stores.

use http::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use super::Auth;
use super::db::{Tx, binds, col, query};
use super::error::AuthError;
use super::request::Client;
use super::users::{INSTANCE_ID, UserRecord, user_columns};
use crate::keys::unix_now;

/// GoTrue caps access-token lifetime at one week.
const MAX_JWT_EXPIRY_SECS: u64 = 7 * 24 * 3600;
/// Length of a classic GoTrue refresh token.
const REFRESH_TOKEN_LEN: usize = 12;
const REFRESH_TOKEN_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A new random refresh token (12 lower-case alphanumerics, as GoTrue's v1 tokens).
pub(crate) fn new_refresh_token() -> String {
    use rand::Rng as _;
    let mut rng = rand::rng();
    (0..REFRESH_TOKEN_LEN)
        .map(|_| {
            let index = rng.random_range(0..REFRESH_TOKEN_ALPHABET.len());
            char::from(REFRESH_TOKEN_ALPHABET[index])
        })
        .collect()
}

/// Starts a session for `user` signed in with `method` (`password`, `otp`, `anonymous`, …) and
/// returns the session JSON. Runs inside the caller's transaction.
pub(crate) async fn start(
    auth: &Auth,
    tx: &Tx,
    user: &UserRecord,
    method: &str,
    client: &Client,
) -> Result<Value, AuthError> {
    let refresh_token = new_refresh_token();
    let row = tx
        .one(&query(
            "with s as ( \
               insert into auth.sessions (id, user_id, created_at, updated_at, aal, user_agent, ip) \
               values (gen_random_uuid(), $1::uuid, now(), now(), 'aal1', $2, $3::inet) \
               returning id), \
             a as ( \
               insert into auth.mfa_amr_claims (id, session_id, created_at, updated_at, \
                 authentication_method) \
               select gen_random_uuid(), s.id, now(), now(), $4 from s), \
             r as ( \
               insert into auth.refresh_tokens (instance_id, token, user_id, revoked, parent, \
                 session_id, created_at, updated_at) \
               select $5::uuid, $6, $1, false, null, s.id, now(), now() from s), \
             u as (update auth.users set last_sign_in_at = now(), updated_at = now() \
                   where id = $1::uuid), \
             i as (update auth.identities set last_sign_in_at = now() where user_id = $1::uuid) \
             select s.id from s",
            binds![
                user.id.to_string(),
                client.user_agent.clone(),
                client.ip_text(),
                method,
                INSTANCE_ID,
                refresh_token.clone(),
            ],
        ))
        .await?;
    let session_id: Uuid = col(&row, 0)?;
    respond(auth, tx, user.id, session_id, refresh_token, method).await
}

/// Columns that follow [`user_columns!`] when a session is answered: the session's `aal` and
/// its `amr` claims, from `auth.sessions s`.
macro_rules! session_columns {
    () => {
        "coalesce(s.aal::text, 'aal1'), \
         coalesce((select jsonb_agg(jsonb_build_object('method', c.authentication_method, \
           'timestamp', extract(epoch from c.updated_at)::int8) order by c.updated_at desc) \
           from auth.mfa_amr_claims c where c.session_id = s.id), '[]'::jsonb)"
    };
}
pub(crate) use session_columns;

/// The session JSON for an existing session and refresh token: reloads the user (with this
/// sign-in's timestamps) and the session's `aal`/`amr`, then signs a new access token.
pub(crate) async fn respond(
    auth: &Auth,
    tx: &Tx,
    user_id: Uuid,
    session_id: Uuid,
    refresh_token: String,
    method: &str,
) -> Result<Value, AuthError> {
    let row = tx
        .opt(&query(
            concat!(
                "select ",
                user_columns!(),
                ", ",
                session_columns!(),
                " from auth.users u join auth.sessions s on s.user_id = u.id \
                 where u.id = $1::uuid and s.id = $2::uuid"
            ),
            binds![user_id.to_string(), session_id.to_string()],
        ))
        .await?
        .ok_or_else(|| AuthError::forbidden("session_not_found", "Session not found"))?;
    respond_with(auth, tx, &row, 0, session_id, refresh_token, method).await
}

/// The session JSON from a row holding [`user_columns!`] then [`session_columns!`] at `offset`.
pub(crate) async fn respond_with(
    auth: &Auth,
    tx: &Tx,
    row: &manifold_db::Row,
    offset: usize,
    session_id: Uuid,
    refresh_token: String,
    method: &str,
) -> Result<Value, AuthError> {
    let user = UserRecord::from_row(row, offset)?;
    let aal: String = col(row, offset + super::users::USER_COLUMN_COUNT)?;
    let amr: Value = col(row, offset + super::users::USER_COLUMN_COUNT + 1)?;
    let (access_token, expires_in, expires_at) =
        access_token(auth, tx, &user, session_id, &aal, amr, method).await?;
    Ok(json!({
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": expires_in,
        "expires_at": expires_at,
        "refresh_token": refresh_token,
        "user": user.json,
    }))
}

/// Signs an access token with GoTrue's claims, after the custom-access-token hook (if any).
/// Returns the token, its lifetime and its expiry.
pub(crate) async fn access_token(
    auth: &Auth,
    tx: &Tx,
    user: &UserRecord,
    session_id: Uuid,
    aal: &str,
    amr: Value,
    method: &str,
) -> Result<(String, u64, u64), AuthError> {
    let expires_in = auth
        .settings()
        .jwt_expiry_secs
        .clamp(1, MAX_JWT_EXPIRY_SECS);
    let issued_at = unix_now();
    let expires_at = issued_at + expires_in;
    let claims = json!({
        "iss": auth.issuer,
        "sub": user.id.to_string(),
        "aud": user.aud,
        "exp": expires_at,
        "iat": issued_at,
        "email": user.email,
        "phone": user.phone,
        "app_metadata": user.app_metadata,
        "user_metadata": user.user_metadata,
        "role": user.role,
        "aal": aal,
        "amr": amr,
        "session_id": session_id.to_string(),
        "is_anonymous": user.is_anonymous,
    });
    let Value::Object(claims) = claims else {
        return Err(AuthError::internal("claims are an object"));
    };
    let claims = super::hook::custom_claims(auth, tx, user.id, claims, method).await?;
    let expires_at = claims
        .get("exp")
        .and_then(Value::as_u64)
        .unwrap_or(expires_at);
    let keys = auth
        .gatekeeper
        .signing_keys()
        .map_err(|error| AuthError::internal(format!("signing keys unusable: {error}")))?;
    let token = keys
        .sign(&Value::Object(claims), &auth.gatekeeper.keys().jwt_secret)
        .map_err(AuthError::internal)?;
    Ok((token, expires_at.saturating_sub(issued_at), expires_at))
}

/// Checks that the token's session still exists and belongs to its subject, and loads the
/// user: 403 `user_not_found` / `session_not_found` as GoTrue's authenticated routes.
pub(crate) async fn authenticated_user(
    tx: &Tx,
    user_id: Uuid,
    session_id: Option<Uuid>,
) -> Result<UserRecord, AuthError> {
    let row = tx
        .opt(&query(
            concat!(
                "select ",
                user_columns!(),
                ", $2::uuid is null or exists (select 1 from auth.sessions s \
                   where s.id = $2::uuid and s.user_id = u.id) \
                 from auth.users u where u.id = $1::uuid"
            ),
            binds![user_id.to_string(), session_id.map(|id| id.to_string())],
        ))
        .await?;
    let Some(row) = row else {
        return Err(AuthError::forbidden(
            "user_not_found",
            "User from sub claim in JWT does not exist",
        ));
    };
    let user = UserRecord::from_row(&row, 0)?;
    let session_exists: bool = col(&row, super::users::USER_COLUMN_COUNT)?;
    if user.deleted {
        return Err(AuthError::forbidden(
            "user_not_found",
            "User from sub claim in JWT does not exist",
        ));
    }
    if !session_exists {
        return Err(AuthError::forbidden(
            "session_not_found",
            "Session from session_id claim in JWT does not exist",
        ));
    }
    if user.banned {
        return Err(AuthError::forbidden("user_banned", "User is banned"));
    }
    Ok(user)
}

/// 400 `user_banned`, as sign-in and refresh answer for a banned user.
pub(crate) fn banned() -> AuthError {
    AuthError::new(StatusCode::BAD_REQUEST, "user_banned", "User is banned")
}

/// Adds `key` to a JSON object (used for `weak_password` on a sign-in response).
pub(crate) fn with_field(mut session: Value, key: &str, value: Value) -> Value {
    if let Some(object) = session.as_object_mut() {
        object.insert(key.to_owned(), value);
    }
    session
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_look_like_gotrue_v1() {
        let token = new_refresh_token();
        assert_eq!(token.len(), 12);
        assert!(token.bytes().all(|b| REFRESH_TOKEN_ALPHABET.contains(&b)));
        assert_ne!(token, new_refresh_token());
    }
}
