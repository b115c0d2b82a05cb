//! MFA with TOTP (totp-rs): `POST /factors` (enroll, with an SVG QR code), `/challenge`,
//! `/verify` (upgrades the session to `aal2` and answers a new session), `DELETE` (unenroll).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use http::StatusCode;
use qrcodegen::{QrCode, QrCodeEcc};
use rand::RngCore as _;
use serde::Deserialize;
use serde_json::{Value, json};
use totp_rs::{Builder, Secret, Totp};
use uuid::Uuid;

use super::Auth;
use super::db::{Tx, begin, binds, col, query};
use super::error::AuthError;
use super::request::{Body, Client, UserToken};
use super::session::{self, authenticated_user, new_refresh_token};
use super::users::{INSTANCE_ID, UserRecord};
use crate::keys::unix_now;

/// RFC 6238 recommends 160-bit secrets.
const SECRET_BYTES: usize = 20;

/// The `POST /factors` body.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct EnrollBody {
    #[serde(default)]
    factor_type: Option<String>,
    #[serde(default)]
    friendly_name: Option<String>,
    #[serde(default)]
    issuer: Option<String>,
}

/// The `POST /factors/{id}/verify` body.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct VerifyBody {
    #[serde(default)]
    challenge_id: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

fn parse_id(raw: &str) -> Result<Uuid, AuthError> {
    Uuid::parse_str(raw)
        .map_err(|_| AuthError::not_found("mfa_factor_not_found", "Factor not found"))
}

/// The user of an MFA request; anonymous users may not use MFA.
async fn mfa_user(tx: &Tx, token: &UserToken) -> Result<UserRecord, AuthError> {
    let user = authenticated_user(tx, token.user_id, token.session_id).await?;
    if user.is_anonymous {
        return Err(AuthError::forbidden(
            "no_authorization",
            "Anonymous users cannot use MFA",
        ));
    }
    Ok(user)
}

fn totp(secret_base32: &str, account: &str, issuer: &str) -> Result<Totp, AuthError> {
    let secret = Secret::try_from_base32(secret_base32).map_err(AuthError::internal)?;
    Builder::new()
        .with_secret(secret)
        .with_account_name(account.replace(':', ""))
        .with_issuer(Some(issuer.replace(':', "")))
        .build()
        .map_err(AuthError::internal)
}

/// The QR code of `uri` as SVG text (auth-js prefixes it with a data URL header).
fn qr_svg(uri: &str) -> Result<String, AuthError> {
    let code = QrCode::encode_text(uri, QrCodeEcc::Medium).map_err(AuthError::internal)?;
    let border = 4;
    let size = code.size() + border * 2;
    let mut path = String::new();
    for y in 0..code.size() {
        for x in 0..code.size() {
            if code.get_module(x, y) {
                path.push_str(&format!("M{},{}h1v1h-1z", x + border, y + border));
            }
        }
    }
    Ok(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" viewBox=\"0 0 {size} {size}\" \
         stroke=\"none\"><rect width=\"100%\" height=\"100%\" fill=\"#FFFFFF\"/>\
         <path d=\"{path}\" fill=\"#000000\"/></svg>"
    ))
}

/// `POST /factors`.
pub(crate) async fn enroll(
    State(auth): State<Arc<Auth>>,
    token: UserToken,
    Body(body): Body<EnrollBody>,
) -> Result<Json<Value>, AuthError> {
    match body.factor_type.as_deref() {
        Some("totp") => {}
        Some("phone") => {
            return Err(AuthError::unprocessable(
                "mfa_phone_enroll_not_enabled",
                "MFA enroll is disabled for Phone",
            ));
        }
        Some("webauthn") => {
            return Err(AuthError::unprocessable(
                "mfa_webauthn_enroll_not_enabled",
                "MFA enroll is disabled for WebAuthn",
            ));
        }
        _ => {
            return Err(AuthError::validation(
                "factor_type needs to be totp, phone or webauthn",
            ));
        }
    }
    let tx = begin(&auth.db).await?;
    let user = mfa_user(&tx, &token).await?;
    let friendly_name = body.friendly_name.unwrap_or_default();
    let row = tx
        .one(&query(
            "select count(*), count(*) filter (where $2 <> '' and friendly_name = $2) \
             from auth.mfa_factors where user_id = $1::uuid",
            binds![user.id.to_string(), friendly_name.clone()],
        ))
        .await?;
    let enrolled: i64 = col(&row, 0)?;
    let same_name: i64 = col(&row, 1)?;
    if usize::try_from(enrolled).unwrap_or(usize::MAX) >= auth.settings().mfa_max_enrolled_factors {
        return Err(AuthError::unprocessable(
            "too_many_enrolled_mfa_factors",
            "Maximum number of enrolled factors reached, unenroll to continue",
        ));
    }
    if same_name > 0 {
        return Err(AuthError::unprocessable(
            "mfa_factor_name_conflict",
            format!(
                "A factor with the friendly name \"{friendly_name}\" for this user already exists"
            ),
        ));
    }
    let issuer = body
        .issuer
        .filter(|issuer| !issuer.is_empty())
        .or_else(|| {
            url::Url::parse(&auth.settings().site_url)
                .ok()
                .and_then(|url| url.host_str().map(str::to_owned))
        })
        .unwrap_or_else(|| "manifold".to_owned());
    let mut secret = vec![0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut secret);
    let secret_base32 = Secret::from(secret).to_base32();
    let account = if user.email.is_empty() {
        &user.phone
    } else {
        &user.email
    };
    let uri = totp(&secret_base32, account, &issuer)?
        .to_url()
        .map_err(AuthError::internal)?;
    let row = tx
        .one(&query(
            "insert into auth.mfa_factors (id, user_id, friendly_name, factor_type, status, \
               created_at, updated_at, secret) \
             values (gen_random_uuid(), $1::uuid, $2, 'totp', 'unverified', now(), now(), $3) \
             returning id",
            binds![
                user.id.to_string(),
                friendly_name.clone(),
                secret_base32.clone()
            ],
        ))
        .await?;
    let id: Uuid = col(&row, 0)?;
    tx.commit().await?;
    Ok(Json(json!({
        "id": id,
        "type": "totp",
        "friendly_name": friendly_name,
        "totp": {"qr_code": qr_svg(&uri)?, "secret": secret_base32, "uri": uri},
    })))
}

/// `POST /factors/{id}/challenge`.
pub(crate) async fn challenge(
    State(auth): State<Arc<Auth>>,
    Path(factor_id): Path<String>,
    client: Client,
    token: UserToken,
) -> Result<Json<Value>, AuthError> {
    let factor_id = parse_id(&factor_id)?;
    let tx = begin(&auth.db).await?;
    let user = mfa_user(&tx, &token).await?;
    let row = tx
        .opt(&query(
            "with factor as ( \
               update auth.mfa_factors set last_challenged_at = clock_timestamp(), updated_at = now() \
               where id = $1::uuid and user_id = $2::uuid returning id) \
             insert into auth.mfa_challenges (id, factor_id, created_at, ip_address) \
             select gen_random_uuid(), factor.id, now(), coalesce($3::inet, '0.0.0.0'::inet) \
             from factor \
             returning id, extract(epoch from created_at)::int8 + $4",
            binds![
                factor_id.to_string(),
                user.id.to_string(),
                client.ip_text(),
                auth.settings().mfa_challenge_expiry_secs as i64
            ],
        ))
        .await?
        .ok_or_else(|| AuthError::not_found("mfa_factor_not_found", "Factor not found"))?;
    let id: Uuid = col(&row, 0)?;
    let expires_at: i64 = col(&row, 1)?;
    tx.commit().await?;
    Ok(Json(
        json!({"id": id, "type": "totp", "expires_at": expires_at}),
    ))
}

/// `POST /factors/{id}/verify`: checks the TOTP code against the challenge and answers the
/// session upgraded to `aal2` (same session id, new refresh token, `totp` in `amr`).
pub(crate) async fn verify(
    State(auth): State<Arc<Auth>>,
    Path(factor_id): Path<String>,
    token: UserToken,
    Body(body): Body<VerifyBody>,
) -> Result<Json<Value>, AuthError> {
    let factor_id = parse_id(&factor_id)?;
    let challenge_id = body
        .challenge_id
        .as_deref()
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or_else(|| AuthError::validation("challenge_id must be a UUID"))?;
    let code = body.code.unwrap_or_default();
    let session_id = token
        .session_id
        .ok_or_else(|| AuthError::forbidden("session_not_found", "The token has no session"))?;
    let tx = begin(&auth.db).await?;
    let user = mfa_user(&tx, &token).await?;
    let row = tx
        .opt(&query(
            "select f.secret, c.verified_at is not null, \
               c.created_at < now() - make_interval(secs => $4) \
             from auth.mfa_factors f join auth.mfa_challenges c on c.factor_id = f.id \
             where f.id = $1::uuid and f.user_id = $2::uuid and c.id = $3::uuid \
             for update of c",
            binds![
                factor_id.to_string(),
                user.id.to_string(),
                challenge_id.to_string(),
                auth.settings().mfa_challenge_expiry_secs as i64
            ],
        ))
        .await?
        .ok_or_else(|| {
            AuthError::not_found("mfa_factor_not_found", "Factor or challenge not found")
        })?;
    let secret: Option<String> = col(&row, 0)?;
    let used: bool = col(&row, 1)?;
    let expired: bool = col(&row, 2)?;
    if used || expired {
        return Err(AuthError::unprocessable(
            "mfa_challenge_expired",
            format!(
                "MFA challenge {challenge_id} has expired, verify against another challenge or create a new challenge."
            ),
        ));
    }
    let totp = totp(secret.as_deref().unwrap_or(""), &user.email, "manifold")?;
    let invalid_code =
        || AuthError::unprocessable("mfa_verification_failed", "Invalid TOTP code entered");
    let step = totp
        .check(code.trim(), unix_now())
        .ok_or_else(invalid_code)?;
    // A code stays valid for its whole step (and the skew around it), so it must be spent once
    // accepted: the factor remembers the last step it accepted and refuses that one and any
    // earlier one, even through a fresh challenge. The conditional update is atomic, so two
    // concurrent verifications of one code cannot both pass.
    let step = i64::try_from(step).map_err(AuthError::internal)?;
    let recorded = tx
        .opt(&query(
            "update auth.mfa_factors set last_totp_step = $2 \
             where id = $1::uuid and (last_totp_step is null or last_totp_step < $2) \
             returning id",
            binds![factor_id.to_string(), step],
        ))
        .await?;
    if recorded.is_none() {
        return Err(invalid_code());
    }
    let refresh_token = new_refresh_token();
    tx.exec(&query(
        "with challenge as ( \
           update auth.mfa_challenges set verified_at = now() where id = $3::uuid), \
         factor as ( \
           update auth.mfa_factors set status = 'verified', updated_at = now() where id = $1::uuid), \
         upgraded as ( \
           update auth.sessions set aal = 'aal2', factor_id = $1::uuid, updated_at = now() \
           where id = $4::uuid), \
         amr as ( \
           insert into auth.mfa_amr_claims (id, session_id, created_at, updated_at, \
             authentication_method) \
           values (gen_random_uuid(), $4::uuid, now(), now(), 'totp') \
           on conflict (session_id, authentication_method) do update set updated_at = now()), \
         revoked as ( \
           update auth.refresh_tokens set revoked = true, updated_at = now() \
           where session_id = $4::uuid and revoked is not true) \
         insert into auth.refresh_tokens (instance_id, token, user_id, revoked, parent, session_id, \
           created_at, updated_at) \
         values ($5::uuid, $6, $2, false, null, $4::uuid, now(), now())",
        binds![
            factor_id.to_string(),
            user.id.to_string(),
            challenge_id.to_string(),
            session_id.to_string(),
            INSTANCE_ID,
            refresh_token.clone(),
        ],
    ))
    .await?;
    let response =
        session::respond(&auth, &tx, user.id, session_id, refresh_token, "mfa/totp").await?;
    tx.commit().await?;
    Ok(Json(response))
}

/// `DELETE /factors/{id}` → `{id}`. A verified factor can only be removed from an `aal2`
/// session, so a stolen `aal1` session cannot strip the second factor.
pub(crate) async fn unenroll(
    State(auth): State<Arc<Auth>>,
    Path(factor_id): Path<String>,
    token: UserToken,
) -> Result<Json<Value>, AuthError> {
    let factor_id = parse_id(&factor_id)?;
    let tx = begin(&auth.db).await?;
    let user = mfa_user(&tx, &token).await?;
    let row = tx
        .opt(&query(
            "select status::text from auth.mfa_factors where id = $1::uuid and user_id = $2::uuid",
            binds![factor_id.to_string(), user.id.to_string()],
        ))
        .await?
        .ok_or_else(|| AuthError::not_found("mfa_factor_not_found", "Factor not found"))?;
    let status: String = col(&row, 0)?;
    if status == "verified" && token.aal() != "aal2" {
        return Err(AuthError::new(
            StatusCode::UNAUTHORIZED,
            "insufficient_aal",
            "AAL2 required to unenroll verified factor",
        ));
    }
    delete_factor(&tx, factor_id).await?;
    tx.commit().await?;
    Ok(Json(json!({"id": factor_id})))
}

/// Deletes a factor; sessions it upgraded fall back to `aal1`.
pub(crate) async fn delete_factor(tx: &Tx, factor_id: Uuid) -> Result<(), AuthError> {
    tx.exec(&query(
        "with downgraded as ( \
           update auth.sessions set aal = 'aal1', factor_id = null, updated_at = now() \
           where factor_id = $1::uuid) \
         delete from auth.mfa_factors where id = $1::uuid",
        binds![factor_id.to_string()],
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totp_round_trip_and_qr() {
        let secret = Secret::from(vec![7u8; SECRET_BYTES]).to_base32();
        let totp = totp(&secret, "a@b.io", "manifold").unwrap();
        let now = unix_now();
        let code = totp.generate(now).to_string();
        assert!(totp.check(&code, now).is_some());
        assert!(
            totp.to_url()
                .unwrap()
                .starts_with("otpauth://totp/manifold:a%40b.io?")
        );
        let svg = qr_svg("otpauth://totp/x").unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("<path"));
    }
}
