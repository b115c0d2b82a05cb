//! Users in `auth.users` (+ their email identity): lookups, creation and metadata, read into
//! [`UserRecord`] with GoTrue's User JSON built by `auth.manifold_user_json`.

use manifold_db::Row;
use serde_json::{Value, json};
use uuid::Uuid;

use super::db::{Tx, binds, col, query};
use super::error::AuthError;

/// Columns read for a [`UserRecord`], from `auth.users u`.
macro_rules! user_columns {
    () => {
        "u.id, coalesce(u.email, ''), coalesce(u.phone, ''), coalesce(u.encrypted_password, ''), \
         u.email_confirmed_at is not null, coalesce(u.banned_until > now(), false), \
         u.deleted_at is not null, u.is_anonymous, coalesce(nullif(u.role, ''), 'authenticated'), \
         coalesce(nullif(u.aud, ''), 'authenticated'), coalesce(u.raw_app_meta_data, '{}'::jsonb), \
         coalesce(u.raw_user_meta_data, '{}'::jsonb), auth.manifold_user_json(u), \
         u.invited_at is not null"
    };
}
pub(crate) use user_columns;

/// Number of columns [`user_columns!`] yields.
pub(crate) const USER_COLUMN_COUNT: usize = 14;

/// GoTrue's instance id for every row (single-tenant).
pub(crate) const INSTANCE_ID: &str = "00000000-0000-0000-0000-000000000000";

/// One user as the API needs it.
#[derive(Debug, Clone)]
pub(crate) struct UserRecord {
    pub(crate) id: Uuid,
    pub(crate) email: String,
    pub(crate) phone: String,
    pub(crate) password_hash: String,
    pub(crate) email_confirmed: bool,
    pub(crate) banned: bool,
    pub(crate) deleted: bool,
    pub(crate) is_anonymous: bool,
    pub(crate) role: String,
    pub(crate) aud: String,
    pub(crate) app_metadata: Value,
    pub(crate) user_metadata: Value,
    /// GoTrue's User JSON.
    pub(crate) json: Value,
    /// Created by an invitation (`invited_at` is set).
    pub(crate) invited: bool,
}

impl UserRecord {
    /// Reads the [`user_columns!`] starting at column `offset`.
    pub(crate) fn from_row(row: &Row, offset: usize) -> Result<Self, AuthError> {
        Ok(Self {
            id: col(row, offset)?,
            email: col(row, offset + 1)?,
            phone: col(row, offset + 2)?,
            password_hash: col(row, offset + 3)?,
            email_confirmed: col(row, offset + 4)?,
            banned: col(row, offset + 5)?,
            deleted: col(row, offset + 6)?,
            is_anonymous: col(row, offset + 7)?,
            role: col(row, offset + 8)?,
            aud: col(row, offset + 9)?,
            app_metadata: col(row, offset + 10)?,
            user_metadata: col(row, offset + 11)?,
            json: col(row, offset + 12)?,
            invited: col(row, offset + 13)?,
        })
    }
}

/// The user with `id`, if any.
pub(crate) async fn by_id(tx: &Tx, id: Uuid) -> Result<Option<UserRecord>, AuthError> {
    let row = tx
        .opt(&query(
            concat!(
                "select ",
                user_columns!(),
                " from auth.users u where u.id = $1::uuid"
            ),
            binds![id.to_string()],
        ))
        .await?;
    row.map(|row| UserRecord::from_row(&row, 0)).transpose()
}

/// The user with `id`, locked for the rest of the transaction.
pub(crate) async fn by_id_for_update(tx: &Tx, id: Uuid) -> Result<Option<UserRecord>, AuthError> {
    let row = tx
        .opt(&query(
            concat!(
                "select ",
                user_columns!(),
                " from auth.users u where u.id = $1::uuid for update"
            ),
            binds![id.to_string()],
        ))
        .await?;
    row.map(|row| UserRecord::from_row(&row, 0)).transpose()
}

/// The (non-SSO) user with this email, case-insensitively, as GoTrue's login lookup.
pub(crate) async fn by_email(tx: &Tx, email: &str) -> Result<Option<UserRecord>, AuthError> {
    let row = tx
        .opt(&query(
            concat!(
                "select ",
                user_columns!(),
                " from auth.users u where lower(u.email) = lower($1) and u.is_sso_user = false \
                 and u.deleted_at is null order by u.created_at limit 1"
            ),
            binds![email],
        ))
        .await?;
    row.map(|row| UserRecord::from_row(&row, 0)).transpose()
}

/// A user to create.
#[derive(Debug, Default)]
pub(crate) struct NewUser {
    pub(crate) id: Option<Uuid>,
    pub(crate) email: Option<String>,
    pub(crate) password_hash: Option<String>,
    pub(crate) email_confirmed: bool,
    pub(crate) invited: bool,
    pub(crate) anonymous: bool,
    pub(crate) role: Option<String>,
    pub(crate) app_metadata: Option<Value>,
    pub(crate) user_metadata: Option<Value>,
}

/// Creates a user and, when it has an email, its `email` identity (as GoTrue: provider id =
/// user id). `app_metadata` gets GoTrue's `provider`/`providers`.
pub(crate) async fn create(tx: &Tx, new: NewUser) -> Result<UserRecord, AuthError> {
    let provider = if new.anonymous { "anonymous" } else { "email" };
    let mut app_metadata = match new.app_metadata {
        Some(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    app_metadata.insert("provider".into(), json!(provider));
    app_metadata.insert("providers".into(), json!([provider]));
    let user_metadata = match new.user_metadata {
        Some(value @ Value::Object(_)) => value,
        _ => json!({}),
    };
    let row = tx
        .one(&query(
            "insert into auth.users (instance_id, id, aud, role, email, encrypted_password, \
               email_confirmed_at, invited_at, confirmation_token, recovery_token, \
               email_change_token_new, email_change, email_change_token_current, phone_change, \
               phone_change_token, reauthentication_token, raw_app_meta_data, raw_user_meta_data, \
               is_super_admin, created_at, updated_at, is_anonymous) \
             values ($1::uuid, coalesce($2::uuid, gen_random_uuid()), 'authenticated', \
               coalesce($3, 'authenticated'), lower($4), $5, case when $6 then now() end, \
               case when $7 then now() end, '', '', '', '', '', '', '', '', $8::jsonb, $9::jsonb, \
               false, now(), now(), $10) \
             returning id",
            binds![
                INSTANCE_ID,
                new.id.map(|id| id.to_string()),
                new.role,
                new.email.clone(),
                new.password_hash,
                new.email_confirmed,
                new.invited,
                serde_json::Value::Object(app_metadata).to_string(),
                user_metadata.to_string(),
                new.anonymous,
            ],
        ))
        .await
        .map_err(map_unique_email)?;
    let id: Uuid = col(&row, 0)?;
    if new.email.is_some() {
        tx.exec(&query(
            "insert into auth.identities (provider_id, user_id, identity_data, provider, \
               last_sign_in_at, created_at, updated_at) \
             select u.id::text, u.id, jsonb_build_object('sub', u.id::text, 'email', u.email, \
               'email_verified', u.email_confirmed_at is not null, 'phone_verified', false), \
               'email', null, now(), now() \
             from auth.users u where u.id = $1::uuid",
            binds![id.to_string()],
        ))
        .await?;
    }
    by_id(tx, id)
        .await?
        .ok_or_else(|| AuthError::internal("created user vanished"))
}

/// A unique violation on the email index means the address is taken (a concurrent sign-up).
fn map_unique_email(error: AuthError) -> AuthError {
    match &error {
        AuthError::Db(db) if db.sqlstate() == Some("23505") => AuthError::unprocessable(
            "email_exists",
            "A user with this email address has already been registered",
        ),
        _ => error,
    }
}

/// Marks the email confirmed (and the email identity verified).
pub(crate) async fn confirm_email(tx: &Tx, id: Uuid) -> Result<(), AuthError> {
    tx.exec(&query(
        "with confirmed as ( \
           update auth.users set email_confirmed_at = coalesce(email_confirmed_at, now()), \
             confirmation_token = '', updated_at = now() \
           where id = $1::uuid returning id) \
         update auth.identities set identity_data = identity_data || '{\"email_verified\": true}', \
           updated_at = now() \
         where user_id = $1::uuid and provider = 'email'",
        binds![id.to_string()],
    ))
    .await
}

/// Merges `data` into `raw_user_meta_data`; keys set to null are removed (GoTrue's merge).
pub(crate) async fn merge_user_metadata(tx: &Tx, id: Uuid, data: &Value) -> Result<(), AuthError> {
    tx.exec(&query(
        "update auth.users set raw_user_meta_data = coalesce( \
           (select jsonb_object_agg(e.key, e.value) \
              from jsonb_each(coalesce(raw_user_meta_data, '{}'::jsonb) || $2::jsonb) as e \
             where e.value <> 'null'::jsonb), '{}'::jsonb), updated_at = now() \
         where id = $1::uuid",
        binds![id.to_string(), data.to_string()],
    ))
    .await
}

/// Merges `data` into `raw_app_meta_data` the same way.
pub(crate) async fn merge_app_metadata(tx: &Tx, id: Uuid, data: &Value) -> Result<(), AuthError> {
    tx.exec(&query(
        "update auth.users set raw_app_meta_data = coalesce( \
           (select jsonb_object_agg(e.key, e.value) \
              from jsonb_each(coalesce(raw_app_meta_data, '{}'::jsonb) || $2::jsonb) as e \
             where e.value <> 'null'::jsonb), '{}'::jsonb), updated_at = now() \
         where id = $1::uuid",
        binds![id.to_string(), data.to_string()],
    ))
    .await
}

/// Sets a new password hash.
pub(crate) async fn set_password(tx: &Tx, id: Uuid, hash: &str) -> Result<(), AuthError> {
    tx.exec(&query(
        "update auth.users set encrypted_password = $2, updated_at = now() where id = $1::uuid",
        binds![id.to_string(), hash],
    ))
    .await
}

/// True when another user already has this email.
pub(crate) async fn email_taken(
    tx: &Tx,
    email: &str,
    except: Option<Uuid>,
) -> Result<bool, AuthError> {
    let row = tx
        .one(&query(
            "select exists (select 1 from auth.users where lower(email) = lower($1) \
               and is_sso_user = false and ($2::uuid is null or id <> $2::uuid))",
            binds![email, except.map(|id| id.to_string())],
        ))
        .await?;
    col(&row, 0)
}

/// The user's email, normalised as GoTrue stores it; `None` when not plausibly an address.
pub(crate) fn normalize_email(raw: &str) -> Option<String> {
    let email = raw.trim().to_lowercase();
    let (local, domain) = email.split_once('@')?;
    let plausible = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.contains(char::is_whitespace)
        && !domain.contains('@')
        && email.len() <= 255;
    plausible.then_some(email)
}

/// 400 `validation_failed` for a malformed address, with GoTrue's message.
pub(crate) fn invalid_email() -> AuthError {
    AuthError::validation("Unable to validate email address: invalid format")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_lowercased_and_checked() {
        assert_eq!(
            normalize_email(" Ann@Example.COM ").as_deref(),
            Some("ann@example.com")
        );
        assert!(normalize_email("ann").is_none());
        assert!(normalize_email("ann@localhost").is_none());
        assert!(normalize_email("a b@x.io").is_none());
        assert!(normalize_email("@x.io").is_none());
    }
}
