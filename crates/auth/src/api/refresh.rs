//! `grant_type=refresh_token`: rotation with parent/child rows, GoTrue's reuse rules and family
//! revocation. Refreshes of one session are serialised by locking the session row; the token's
//! state is read only after that lock, in a new statement, so it is never stale.
//!
//! Presenting an already revoked token:
//! 1. it is the parent of the session's active token: that child is returned again (a tab that
//!    lost the first answer, or two tabs refreshing at once);
//! 2. else, revoked less than the reuse interval ago (and the family is still alive): a fresh
//!    child is issued;
//! 3. else every token of the session is revoked and the request fails with
//!    `refresh_token_already_used`; the revocation is committed even though the request errors.

use serde_json::Value;
use uuid::Uuid;

use super::Auth;
use super::db::{Tx, begin, binds, col, query};
use super::error::AuthError;
use super::request::Client;
use super::session::{self, banned as banned_error, new_refresh_token, session_columns};
use super::users::{INSTANCE_ID, user_columns};

/// Passed to the access-token hook as the authentication method of a refresh.
const REFRESH_METHOD: &str = "token_refresh";

fn not_found() -> AuthError {
    AuthError::bad_request(
        "refresh_token_not_found",
        "Invalid Refresh Token: Refresh Token Not Found",
    )
}

/// Exchanges a refresh token for a new session JSON.
pub(crate) async fn grant(
    auth: &Auth,
    client: &Client,
    presented: Option<String>,
) -> Result<Value, AuthError> {
    let presented =
        presented
            .filter(|token| !token.is_empty())
            .ok_or_else(|| AuthError::OAuth {
                error: "invalid_request",
                description: "refresh_token required".into(),
            })?;
    let tx = begin(&auth.db).await?;
    // One statement finds the token's session and locks it; that lock serialises every refresh
    // of the session. Without a row, a second look tells a missing token from a missing session.
    let Some(row) = tx
        .opt(&query(
            "select t.id, s.id, coalesce(u.banned_until > now(), false), u.deleted_at is not null, \
               s.not_after is not null and s.not_after < now() \
             from auth.refresh_tokens t \
               join auth.sessions s on s.id = t.session_id \
               join auth.users u on u.id = s.user_id \
             where t.token = $1 for update of s",
            binds![presented.clone()],
        ))
        .await?
    else {
        return Err(missing_token_or_session(&tx, &presented).await);
    };
    let token_id: i64 = col(&row, 0)?;
    let session_id: Uuid = col(&row, 1)?;
    let banned: bool = col(&row, 2)?;
    let deleted: bool = col(&row, 3)?;
    let expired: bool = col(&row, 4)?;
    if deleted {
        return Err(not_found());
    }
    if banned {
        return Err(banned_error());
    }
    if expired {
        return Err(AuthError::bad_request(
            "session_expired",
            "Invalid Refresh Token: Session Expired",
        ));
    }

    // Read after the session lock, in a new statement (a new snapshot): a concurrent refresh
    // of this session has committed by now and its effects are visible. The same row carries
    // the user and session the answer needs; a rotation changes neither.
    let state = tx
        .one(&query(
            concat!(
                "select t.revoked is true, t.updated_at > now() - make_interval(secs => $3), \
                   a.token, a.parent, ",
                user_columns!(),
                ", ",
                session_columns!(),
                " from auth.refresh_tokens t \
                 join auth.sessions s on s.id = $2::uuid \
                 join auth.users u on u.id = s.user_id \
                 left join lateral (select r.token, r.parent from auth.refresh_tokens r \
                   where r.session_id = $2::uuid and r.revoked is false \
                   order by r.id desc limit 1) a on true \
                 where t.id = $1::int8"
            ),
            binds![
                token_id,
                session_id.to_string(),
                auth.settings().refresh_token_reuse_interval_secs as i64
            ],
        ))
        .await?;
    let revoked: bool = col(&state, 0)?;
    let within_reuse_interval: bool = col(&state, 1)?;
    let active_token: Option<String> = col(&state, 2)?;
    let active_parent: Option<String> = col(&state, 3)?;
    let user_id: Uuid = col(&state, 4)?;

    let issued = if !revoked {
        rotate(&tx, user_id, session_id, token_id, &presented, client).await?
    } else if active_parent.as_deref() == Some(presented.as_str())
        && let Some(active) = active_token
    {
        touch_session(&tx, session_id, client).await?;
        active
    } else if active_token.is_some()
        && (within_reuse_interval || !auth.settings().refresh_token_rotation)
    {
        rotate(&tx, user_id, session_id, token_id, &presented, client).await?
    } else {
        revoke_family(tx, session_id).await?;
        return Err(AuthError::bad_request(
            "refresh_token_already_used",
            "Invalid Refresh Token: Already Used",
        ));
    };
    let response =
        session::respond_with(auth, &tx, &state, 4, session_id, issued, REFRESH_METHOD).await?;
    tx.commit().await?;
    Ok(response)
}

/// Why the locking lookup found nothing: an unknown token, or a token whose session is gone.
async fn missing_token_or_session(tx: &Tx, presented: &str) -> AuthError {
    let known = tx
        .opt(&query(
            "select 1 from auth.refresh_tokens where token = $1",
            binds![presented],
        ))
        .await;
    match known {
        Ok(Some(_)) => AuthError::bad_request("session_not_found", "Session not found"),
        Ok(None) => not_found(),
        Err(error) => error,
    }
}

/// Revokes `token_id` and inserts its child; returns the child.
async fn rotate(
    tx: &Tx,
    user_id: Uuid,
    session_id: Uuid,
    token_id: i64,
    parent: &str,
    client: &Client,
) -> Result<String, AuthError> {
    let child = new_refresh_token();
    tx.exec(&query(
        "with revoked as ( \
           update auth.refresh_tokens set revoked = true, updated_at = now() \
           where id = $1::int8 and revoked is not true), \
         child as ( \
           insert into auth.refresh_tokens (instance_id, token, user_id, revoked, parent, \
             session_id, created_at, updated_at) \
           values ($2::uuid, $3, $4, false, $5, $6::uuid, now(), now())), \
         touched as ( \
           update auth.sessions set refreshed_at = now() at time zone 'utc', updated_at = now(), \
             user_agent = coalesce($7, user_agent), ip = coalesce($8::inet, ip) \
           where id = $6::uuid) \
         select 1",
        binds![
            token_id,
            INSTANCE_ID,
            child.clone(),
            user_id.to_string(),
            parent,
            session_id.to_string(),
            client.user_agent.clone(),
            client.ip_text(),
        ],
    ))
    .await?;
    Ok(child)
}

async fn touch_session(tx: &Tx, session_id: Uuid, client: &Client) -> Result<(), AuthError> {
    tx.exec(&query(
        "update auth.sessions set refreshed_at = now() at time zone 'utc', updated_at = now(), \
           user_agent = coalesce($2, user_agent), ip = coalesce($3::inet, ip) \
         where id = $1::uuid",
        binds![
            session_id.to_string(),
            client.user_agent.clone(),
            client.ip_text()
        ],
    ))
    .await
}

/// Revokes every live token of the session and commits, so the revocation survives the error
/// the caller is about to return.
async fn revoke_family(tx: Tx, session_id: Uuid) -> Result<(), AuthError> {
    tx.exec(&query(
        "update auth.refresh_tokens set revoked = true, updated_at = now() \
         where session_id = $1::uuid and revoked is not true",
        binds![session_id.to_string()],
    ))
    .await?;
    tracing::warn!(%session_id, "refresh token reused after the reuse interval; session tokens revoked");
    tx.commit().await
}
