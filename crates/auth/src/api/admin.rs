//! The admin API (service role only, else 403 `not_admin`): users CRUD with GoTrue's pagination
//! headers, and factors. Links, invites and the dev mailbox are in `admin_links`.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::Auth;
use super::db::{Tx, begin, binds, col, query};
use super::error::AuthError;
use super::request::{Admin, Body, Params};
use super::users::{self, NewUser, UserRecord};
use super::{mfa, password};

const DEFAULT_PER_PAGE: i64 = 50;
const MAX_PER_PAGE: i64 = 1000;

/// The body of `POST /admin/users` and `PUT /admin/users/{id}`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AdminUserBody {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    password_hash: Option<String>,
    #[serde(default)]
    email_confirm: Option<bool>,
    #[serde(default)]
    user_metadata: Option<Value>,
    #[serde(default)]
    app_metadata: Option<Value>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    ban_duration: Option<String>,
}

impl AdminUserBody {
    /// The bcrypt hash to store: a new password hashed, or an imported hash.
    async fn password_hash(&self, auth: &Auth) -> Result<Option<String>, AuthError> {
        let password = self.password.as_deref().filter(|p| !p.is_empty());
        let imported = self.password_hash.as_deref().filter(|h| !h.is_empty());
        match (password, imported) {
            (Some(_), Some(_)) => Err(AuthError::validation(
                "Only a password or a password hash should be provided",
            )),
            (Some(password), None) => {
                password::check_new(auth.settings(), password)?;
                Ok(Some(password::hash(password).await?))
            }
            (None, Some(hash)) if password::is_bcrypt(hash) => Ok(Some(hash.to_owned())),
            (None, Some(_)) => Err(AuthError::validation(
                "Invalid password hash format: only bcrypt ($2a$, $2b$, $2y$) hashes are supported",
            )),
            (None, None) => Ok(None),
        }
    }
}

pub(super) fn user_not_found() -> AuthError {
    AuthError::not_found("user_not_found", "User not found")
}

fn parse_user_id(raw: &str) -> Result<Uuid, AuthError> {
    Uuid::parse_str(raw)
        .map_err(|_| AuthError::not_found("validation_failed", "user_id must be an UUID"))
}

/// Parses a Go duration (`24h`, `1h30m`, `90s`, `500ms`) as GoTrue's `ban_duration`.
fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_end..];
    }
    Some(Duration::from_secs_f64(total))
}

async fn apply_ban(tx: &Tx, user_id: Uuid, ban: Option<&str>) -> Result<(), AuthError> {
    let Some(ban) = ban.filter(|ban| !ban.is_empty()) else {
        return Ok(());
    };
    let seconds = if ban == "none" {
        None
    } else {
        let duration = parse_go_duration(ban)
            .ok_or_else(|| AuthError::validation("invalid format for ban duration"))?;
        Some(duration.as_secs() as i64)
    };
    tx.exec(&query(
        "update auth.users set banned_until = case when $2::int8 is null then null \
           else now() + make_interval(secs => $2::int8) end, updated_at = now() \
         where id = $1::uuid",
        binds![user_id.to_string(), seconds.map(|s| s.to_string())],
    ))
    .await?;
    if seconds.is_some() {
        // A banned user is signed out everywhere.
        tx.exec(&query(
            "delete from auth.sessions where user_id = $1::uuid",
            binds![user_id.to_string()],
        ))
        .await?;
    }
    Ok(())
}

pub(super) async fn reload(tx: &Tx, id: Uuid) -> Result<UserRecord, AuthError> {
    users::by_id(tx, id).await?.ok_or_else(user_not_found)
}

/// `POST /admin/users`.
pub(crate) async fn create(
    State(auth): State<Arc<Auth>>,
    _admin: Admin,
    Body(body): Body<AdminUserBody>,
) -> Result<Json<Value>, AuthError> {
    let email = body.email.as_deref().filter(|e| !e.is_empty());
    let phone = body.phone.as_deref().filter(|p| !p.is_empty());
    let email = match (email, phone) {
        (None, None) => {
            return Err(AuthError::validation(
                "Unable to validate request: email or phone is required",
            ));
        }
        (None, Some(_)) => {
            return Err(AuthError::unprocessable(
                "phone_provider_disabled",
                "Phone users are not supported",
            ));
        }
        (Some(email), _) => users::normalize_email(email).ok_or_else(users::invalid_email)?,
    };
    let id = body.id.as_deref().map(parse_user_id).transpose()?;
    let hash = body.password_hash(&auth).await?;
    let tx = begin(&auth.db).await?;
    if users::email_taken(&tx, &email, None).await? {
        return Err(AuthError::unprocessable(
            "email_exists",
            "A user with this email address has already been registered",
        ));
    }
    let user = users::create(
        &tx,
        NewUser {
            id,
            email: Some(email),
            password_hash: hash,
            email_confirmed: body.email_confirm.unwrap_or(false),
            role: body.role.clone().filter(|role| !role.is_empty()),
            app_metadata: body.app_metadata.clone(),
            user_metadata: body.user_metadata.clone(),
            ..NewUser::default()
        },
    )
    .await?;
    apply_ban(&tx, user.id, body.ban_duration.as_deref()).await?;
    let user = reload(&tx, user.id).await?;
    tx.commit().await?;
    Ok(Json(user.json))
}

/// `GET /admin/users?page=&per_page=` with `X-Total-Count` and GoTrue's `Link` header.
pub(crate) async fn list(
    State(auth): State<Arc<Auth>>,
    _admin: Admin,
    params: Params,
) -> Result<(HeaderMap, Json<Value>), AuthError> {
    let number = |name: &str, default: i64| {
        params
            .get(name)
            .and_then(|value| value.parse::<i64>().ok())
            .filter(|value| *value > 0)
            .unwrap_or(default)
    };
    let page = number("page", 1);
    let per_page = number("per_page", DEFAULT_PER_PAGE).min(MAX_PER_PAGE);
    let filter = params.get("filter").map(str::to_owned);
    let tx = begin(&auth.db).await?;
    let row = tx
        .one(&query(
            "select (select count(*) from auth.users u where $3::text is null \
                 or u.email ilike '%' || $3 || '%'), \
               coalesce((select jsonb_agg(page.body order by page.created_at desc, page.id) from ( \
                 select auth.manifold_user_json(u) as body, u.created_at, u.id from auth.users u \
                 where $3::text is null or u.email ilike '%' || $3 || '%' \
                 order by u.created_at desc, u.id limit $1 offset $2) page), '[]'::jsonb)",
            binds![per_page, (page - 1).saturating_mul(per_page), filter],
        ))
        .await?;
    tx.commit().await?;
    let total: i64 = col(&row, 0)?;
    let users: Value = col(&row, 1)?;
    let mut headers = HeaderMap::new();
    headers.insert("x-total-count", HeaderValue::from(total));
    let last = ((total + per_page - 1) / per_page).max(1);
    // auth-js reads the digit after the first `=` and JSON-parses the quoted rel, so `page`
    // comes first and rel stays quoted, as GoTrue writes it.
    let link = |page: i64, rel: &str| {
        format!("</auth/v1/admin/users?page={page}&per_page={per_page}>; rel=\"{rel}\"")
    };
    let mut links = Vec::new();
    if page < last {
        links.push(link(page + 1, "next"));
    }
    links.push(link(last, "last"));
    if let Ok(value) = HeaderValue::from_str(&links.join(", ")) {
        headers.insert("link", value);
    }
    Ok((
        headers,
        Json(json!({"users": users, "aud": super::AUDIENCE})),
    ))
}

/// `GET /admin/users/{id}`.
pub(crate) async fn get(
    State(auth): State<Arc<Auth>>,
    _admin: Admin,
    Path(user_id): Path<String>,
) -> Result<Json<Value>, AuthError> {
    let id = parse_user_id(&user_id)?;
    let tx = begin(&auth.db).await?;
    let user = reload(&tx, id).await?;
    tx.commit().await?;
    Ok(Json(user.json))
}

/// `PUT /admin/users/{id}`: email (set directly), password or hash, confirmation, metadata
/// (merged), role, ban.
pub(crate) async fn update(
    State(auth): State<Arc<Auth>>,
    _admin: Admin,
    Path(user_id): Path<String>,
    Body(body): Body<AdminUserBody>,
) -> Result<Json<Value>, AuthError> {
    let id = parse_user_id(&user_id)?;
    let hash = body.password_hash(&auth).await?;
    let tx = begin(&auth.db).await?;
    let user = users::by_id_for_update(&tx, id)
        .await?
        .ok_or_else(user_not_found)?;
    if let Some(raw) = body.email.as_deref().filter(|e| !e.is_empty()) {
        let email = users::normalize_email(raw).ok_or_else(users::invalid_email)?;
        if email != user.email {
            if users::email_taken(&tx, &email, Some(id)).await? {
                return Err(AuthError::unprocessable(
                    "email_exists",
                    "A user with this email address has already been registered",
                ));
            }
            tx.exec(&query(
                "with changed as ( \
                   update auth.users set email = $2, email_change = '', updated_at = now() \
                   where id = $1::uuid) \
                 update auth.identities set identity_data = identity_data \
                   || jsonb_build_object('email', $2) \
                 where user_id = $1::uuid and provider = 'email'",
                binds![id.to_string(), email],
            ))
            .await?;
        }
    }
    if let Some(hash) = &hash {
        users::set_password(&tx, id, hash).await?;
    }
    if body.email_confirm == Some(true) {
        users::confirm_email(&tx, id).await?;
    }
    if let Some(data) = body.user_metadata.as_ref().filter(|v| v.is_object()) {
        users::merge_user_metadata(&tx, id, data).await?;
    }
    if let Some(data) = body.app_metadata.as_ref().filter(|v| v.is_object()) {
        users::merge_app_metadata(&tx, id, data).await?;
    }
    if let Some(role) = body.role.as_deref().filter(|role| !role.is_empty()) {
        tx.exec(&query(
            "update auth.users set role = $2, updated_at = now() where id = $1::uuid",
            binds![id.to_string(), role],
        ))
        .await?;
    }
    apply_ban(&tx, id, body.ban_duration.as_deref()).await?;
    let user = reload(&tx, id).await?;
    tx.commit().await?;
    Ok(Json(user.json))
}

/// The `DELETE /admin/users/{id}` body.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct DeleteBody {
    #[serde(default)]
    should_soft_delete: bool,
}

/// `DELETE /admin/users/{id}` → `{}`. Hard delete cascades to sessions, identities and
/// factors; soft delete keeps the row (`deleted_at`), frees the address and signs out.
pub(crate) async fn remove(
    State(auth): State<Arc<Auth>>,
    _admin: Admin,
    Path(user_id): Path<String>,
    Body(body): Body<DeleteBody>,
) -> Result<Json<Value>, AuthError> {
    let id = parse_user_id(&user_id)?;
    let tx = begin(&auth.db).await?;
    reload(&tx, id).await?;
    if body.should_soft_delete {
        tx.exec(&query(
            "with gone_sessions as (delete from auth.sessions where user_id = $1::uuid), \
               gone_identities as (delete from auth.identities where user_id = $1::uuid), \
               gone_factors as (delete from auth.mfa_factors where user_id = $1::uuid) \
             update auth.users set deleted_at = now(), email = null, phone = null, \
               encrypted_password = '', confirmation_token = '', recovery_token = '', \
               email_change_token_new = '', email_change_token_current = '', \
               reauthentication_token = '', email_change = '', updated_at = now() \
             where id = $1::uuid",
            binds![id.to_string()],
        ))
        .await?;
    } else {
        tx.exec(&query(
            "delete from auth.users where id = $1::uuid",
            binds![id.to_string()],
        ))
        .await?;
    }
    tx.commit().await?;
    Ok(Json(json!({})))
}

/// `GET /admin/users/{id}/factors`.
pub(crate) async fn factors(
    State(auth): State<Arc<Auth>>,
    _admin: Admin,
    Path(user_id): Path<String>,
) -> Result<Json<Value>, AuthError> {
    let id = parse_user_id(&user_id)?;
    let tx = begin(&auth.db).await?;
    reload(&tx, id).await?;
    let row = tx
        .one(&query(
            "select coalesce(jsonb_agg(auth.manifold_factor_json(f) order by f.created_at), \
               '[]'::jsonb) from auth.mfa_factors f where f.user_id = $1::uuid",
            binds![id.to_string()],
        ))
        .await?;
    tx.commit().await?;
    Ok(Json(col(&row, 0)?))
}

/// `DELETE /admin/users/{id}/factors/{factor_id}` → the deleted factor.
pub(crate) async fn delete_factor(
    State(auth): State<Arc<Auth>>,
    _admin: Admin,
    Path((user_id, factor_id)): Path<(String, String)>,
) -> Result<Json<Value>, AuthError> {
    let id = parse_user_id(&user_id)?;
    let factor_id = Uuid::parse_str(&factor_id)
        .map_err(|_| AuthError::not_found("mfa_factor_not_found", "Factor not found"))?;
    let tx = begin(&auth.db).await?;
    let row = tx
        .opt(&query(
            "select auth.manifold_factor_json(f) from auth.mfa_factors f \
             where f.id = $1::uuid and f.user_id = $2::uuid",
            binds![factor_id.to_string(), id.to_string()],
        ))
        .await?
        .ok_or_else(|| AuthError::not_found("mfa_factor_not_found", "Factor not found"))?;
    let factor: Value = col(&row, 0)?;
    mfa::delete_factor(&tx, factor_id).await?;
    tx.commit().await?;
    Ok(Json(factor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("24h"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_go_duration("1h30m"), Some(Duration::from_secs(5_400)));
        assert_eq!(
            parse_go_duration("1.5s"),
            Some(Duration::from_millis(1_500))
        );
        assert_eq!(parse_go_duration("100ms"), Some(Duration::from_millis(100)));
        assert_eq!(parse_go_duration("forever"), None);
        assert_eq!(parse_go_duration(""), None);
    }
}
