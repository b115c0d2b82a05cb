//! One-time tokens as GoTrue stores them (lower-hex SHA-224 of `email + code` in the user's token
//! column and in `auth.one_time_tokens`), the `/verify` links that carry them, PKCE flow states
//! (`pkce_` links answered with `?code=`), and the 60 s per-address resend floor.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng as _;
use serde::Deserialize;
use sha2::{Digest, Sha224, Sha256};
use uuid::Uuid;

use super::Auth;
use super::db::{Tx, binds, col, query};
use super::error::AuthError;
use super::mail::Mail;

/// Prefix of link tokens that belong to a PKCE flow.
pub(crate) const PKCE_PREFIX: &str = "pkce_";

/// Which token column of `auth.users` (and `one_time_token_type`) a token lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    Confirmation,
    Recovery,
    EmailChangeNew,
    EmailChangeCurrent,
    Reauthentication,
}

impl TokenKind {
    /// The `auth.one_time_token_type` value.
    pub(crate) fn type_name(self) -> &'static str {
        match self {
            Self::Confirmation => "confirmation_token",
            Self::Recovery => "recovery_token",
            Self::EmailChangeNew => "email_change_token_new",
            Self::EmailChangeCurrent => "email_change_token_current",
            Self::Reauthentication => "reauthentication_token",
        }
    }
}

/// An email GoTrue sends, with its token kind, `/verify` type, subject and the
/// authentication method a PKCE flow records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EmailKind {
    Signup,
    Invite,
    Magiclink,
    Recovery,
    EmailChangeNew,
    EmailChangeCurrent,
    Reauthentication,
}

impl EmailKind {
    fn token(self) -> TokenKind {
        match self {
            Self::Signup | Self::Invite => TokenKind::Confirmation,
            Self::Magiclink | Self::Recovery => TokenKind::Recovery,
            Self::EmailChangeNew => TokenKind::EmailChangeNew,
            Self::EmailChangeCurrent => TokenKind::EmailChangeCurrent,
            Self::Reauthentication => TokenKind::Reauthentication,
        }
    }

    /// The `type` of the `/verify` link.
    pub(crate) fn verify_type(self) -> &'static str {
        match self {
            Self::Signup => "signup",
            Self::Invite => "invite",
            Self::Magiclink => "magiclink",
            Self::Recovery => "recovery",
            Self::EmailChangeNew | Self::EmailChangeCurrent => "email_change",
            Self::Reauthentication => "reauthentication",
        }
    }

    fn subject(self) -> &'static str {
        match self {
            Self::Signup => "Confirm Your Signup",
            Self::Invite => "You have been invited",
            Self::Magiclink => "Your Magic Link",
            Self::Recovery => "Reset Your Password",
            Self::EmailChangeNew | Self::EmailChangeCurrent => "Confirm Email Change",
            Self::Reauthentication => "Confirm reauthentication",
        }
    }

    /// The `authentication_method` a PKCE flow records (and the session's amr after exchange).
    pub(crate) fn flow_method(self) -> &'static str {
        match self {
            Self::Signup => "email/signup",
            Self::Invite => "invite",
            Self::Magiclink => "magiclink",
            Self::Recovery => "recovery",
            Self::EmailChangeNew | Self::EmailChangeCurrent => "email_change",
            Self::Reauthentication => "reauthentication",
        }
    }
}

/// A PKCE challenge sent with a request that emails a link.
#[derive(Debug, Clone)]
pub(crate) struct Pkce {
    pub(crate) challenge: String,
    pub(crate) method: &'static str,
}

/// PKCE fields of request bodies (auth-js sends them as null in implicit flow).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PkceParams {
    #[serde(default)]
    pub(crate) code_challenge: Option<String>,
    #[serde(default)]
    pub(crate) code_challenge_method: Option<String>,
}

impl PkceParams {
    /// The challenge, if a PKCE flow was asked for; methods are case-insensitive.
    pub(crate) fn pkce(&self) -> Result<Option<Pkce>, AuthError> {
        let challenge = self.code_challenge.as_deref().filter(|c| !c.is_empty());
        let method = self
            .code_challenge_method
            .as_deref()
            .filter(|m| !m.is_empty());
        match (challenge, method) {
            (None, None) => Ok(None),
            (Some(challenge), Some(method)) => {
                let method = match method.to_ascii_lowercase().as_str() {
                    "s256" => "s256",
                    "plain" => "plain",
                    _ => {
                        return Err(AuthError::validation("Code challenge method not supported"));
                    }
                };
                if !(43..=128).contains(&challenge.len()) {
                    return Err(AuthError::validation(
                        "code challenge has to be between 43 and 128 characters",
                    ));
                }
                Ok(Some(Pkce {
                    challenge: challenge.to_owned(),
                    method,
                }))
            }
            _ => Err(AuthError::validation(
                "PKCE flow requires code_challenge_method and code_challenge",
            )),
        }
    }
}

/// True when `verifier` answers `challenge` with `method`.
pub(crate) fn verifier_matches(method: &str, challenge: &str, verifier: &str) -> bool {
    match method {
        "s256" => URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == challenge,
        "plain" => verifier == challenge,
        _ => false,
    }
}

/// GoTrue's token hash: lower-hex SHA-224 of `email + code`.
pub(crate) fn token_hash(email: &str, code: &str) -> String {
    hex::encode(Sha224::digest(format!("{email}{code}").as_bytes()))
}

/// A random numeric code of `length` digits.
pub(crate) fn numeric_code(length: usize) -> String {
    let mut rng = rand::rng();
    (0..length.clamp(6, 10))
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

/// Refuses a new email of `kind` within the resend floor: 429 `over_email_send_rate_limit`.
pub(crate) async fn check_resend_floor(
    auth: &Auth,
    tx: &Tx,
    user_id: Uuid,
    kind: TokenKind,
) -> Result<(), AuthError> {
    let row = tx
        .one(&query(
            "select coalesce(ceil(extract(epoch from (case $2 \
                 when 'confirmation_token' then confirmation_sent_at \
                 when 'recovery_token' then recovery_sent_at \
                 when 'email_change_token_new' then email_change_sent_at \
                 when 'email_change_token_current' then email_change_sent_at \
                 when 'reauthentication_token' then reauthentication_sent_at end) \
               + make_interval(secs => $3) - now()))::int8, 0) \
             from auth.users where id = $1::uuid",
            binds![
                user_id.to_string(),
                kind.type_name(),
                auth.settings().email_max_frequency_secs as i64
            ],
        ))
        .await?;
    let wait: i64 = col(&row, 0)?;
    if wait > 0 {
        return Err(AuthError::email_throttled(wait));
    }
    Ok(())
}

/// Stores a new token of `kind` for the user (replacing the previous one) and returns its code
/// and hash.
pub(crate) async fn issue(
    auth: &Auth,
    tx: &Tx,
    user_id: Uuid,
    kind: TokenKind,
    relates_to: &str,
) -> Result<(String, String), AuthError> {
    let code = numeric_code(auth.settings().otp_length);
    let hash = token_hash(relates_to, &code);
    tx.exec(&query(
        "with users_update as ( \
           update auth.users set \
             confirmation_token = case when $2 = 'confirmation_token' then $3 else confirmation_token end, \
             confirmation_sent_at = case when $2 = 'confirmation_token' then now() else confirmation_sent_at end, \
             recovery_token = case when $2 = 'recovery_token' then $3 else recovery_token end, \
             recovery_sent_at = case when $2 = 'recovery_token' then now() else recovery_sent_at end, \
             email_change_token_new = case when $2 = 'email_change_token_new' then $3 else email_change_token_new end, \
             email_change_token_current = case when $2 = 'email_change_token_current' then $3 else email_change_token_current end, \
             email_change_sent_at = case when $2 in ('email_change_token_new', 'email_change_token_current') then now() else email_change_sent_at end, \
             reauthentication_token = case when $2 = 'reauthentication_token' then $3 else reauthentication_token end, \
             reauthentication_sent_at = case when $2 = 'reauthentication_token' then now() else reauthentication_sent_at end, \
             updated_at = now() \
           where id = $1::uuid returning id) \
         insert into auth.one_time_tokens (id, user_id, token_type, token_hash, relates_to, \
           created_at, updated_at) \
         values (gen_random_uuid(), $1::uuid, $2::auth.one_time_token_type, $3, $4, \
           now() at time zone 'utc', now() at time zone 'utc') \
         on conflict (user_id, token_type) do update set token_hash = excluded.token_hash, \
           relates_to = excluded.relates_to, created_at = excluded.created_at, \
           updated_at = excluded.updated_at",
        binds![user_id.to_string(), kind.type_name(), hash.clone(), relates_to],
    ))
    .await?;
    Ok((code, hash))
}

/// The id of the PKCE flow state recorded with the link token whose hash is `hash`. Deriving it
/// from the hash binds each link to its own flow: with several pending requests (other devices,
/// other kinds of email), a link yields the code of the request that sent it, never merely the
/// newest flow of that user.
pub(crate) fn flow_id(hash: &str) -> Uuid {
    let digest = Sha256::digest(format!("manifold flow_state {hash}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// Records the PKCE flow of a link about to be sent, under [`flow_id`] of its token hash.
pub(crate) async fn create_flow(
    tx: &Tx,
    user_id: Uuid,
    hash: &str,
    pkce: &Pkce,
    method: &str,
) -> Result<(), AuthError> {
    tx.exec(&query(
        "insert into auth.flow_state (id, user_id, auth_code, code_challenge_method, code_challenge, \
           provider_type, created_at, updated_at, authentication_method) \
         values ($1::uuid, $2::uuid, gen_random_uuid()::text, \
           $3::auth.code_challenge_method, $4, 'email', now(), now(), $5)",
        binds![
            flow_id(hash).to_string(),
            user_id.to_string(),
            pkce.method,
            pkce.challenge.clone(),
            method
        ],
    ))
    .await
}

/// The `/verify` link for a token.
pub(crate) fn verify_link(
    auth: &Auth,
    link_token: &str,
    verify_type: &str,
    redirect_to: &str,
) -> String {
    let mut url = format!("{}/verify", auth.external_url);
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("token", link_token)
        .append_pair("type", verify_type)
        .append_pair("redirect_to", redirect_to)
        .finish();
    url.push('?');
    url.push_str(&query);
    url
}

/// What [`prepare`] produced: the code, its hash and the link.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub(crate) code: String,
    pub(crate) hash: String,
    pub(crate) link: String,
}

/// Issues the token for an email of `kind` to `address` (the user's email, or the new one for
/// an email change), records a PKCE flow when asked, and builds the link. Sends nothing.
pub(crate) async fn prepare(
    auth: &Auth,
    tx: &Tx,
    user_id: Uuid,
    address: &str,
    kind: EmailKind,
    redirect_to: &str,
    pkce: Option<&Pkce>,
) -> Result<Prepared, AuthError> {
    let (code, hash) = issue(auth, tx, user_id, kind.token(), address).await?;
    let link_token = match pkce {
        Some(pkce) => {
            create_flow(tx, user_id, &hash, pkce, kind.flow_method()).await?;
            format!("{PKCE_PREFIX}{hash}")
        }
        None => hash.clone(),
    };
    let link = verify_link(auth, &link_token, kind.verify_type(), redirect_to);
    Ok(Prepared { code, hash, link })
}

/// Sends an email of `kind` after the resend floor check.
pub(crate) async fn send(
    auth: &Auth,
    tx: &Tx,
    user_id: Uuid,
    address: &str,
    kind: EmailKind,
    redirect_to: &str,
    pkce: Option<&Pkce>,
) -> Result<(), AuthError> {
    check_resend_floor(auth, tx, user_id, kind.token()).await?;
    let prepared = prepare(auth, tx, user_id, address, kind, redirect_to, pkce).await?;
    let link = (kind != EmailKind::Reauthentication).then_some(prepared.link);
    auth.mailer()?
        .send(
            tx,
            Mail {
                to: address.to_owned(),
                subject: kind.subject(),
                kind: kind.verify_type(),
                otp: prepared.code,
                link,
            },
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_gotrue() {
        // sha224("a@b.io123456")
        assert_eq!(token_hash("a@b.io", "123456").len(), 56);
        assert_eq!(
            token_hash("", ""),
            "d14a028c2a3a2bc9476102bb288234c415a2b01f828ea62ac5b3e42f"
        );
    }

    #[test]
    fn pkce_methods() {
        let verifier = "a".repeat(64);
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        assert!(verifier_matches("s256", &challenge, &verifier));
        assert!(!verifier_matches("s256", &challenge, "b"));
        assert!(verifier_matches("plain", &verifier, &verifier));
        let params = PkceParams {
            code_challenge: Some(challenge),
            code_challenge_method: Some("S256".into()),
        };
        assert_eq!(params.pkce().unwrap().unwrap().method, "s256");
        assert!(PkceParams::default().pkce().unwrap().is_none());
    }

    #[test]
    fn each_token_hash_has_its_own_flow_id() {
        let first = flow_id(&token_hash("a@b.io", "123456"));
        assert_eq!(first, flow_id(&token_hash("a@b.io", "123456")));
        assert_ne!(first, flow_id(&token_hash("a@b.io", "654321")));
        assert_eq!(first.get_version(), Some(uuid::Version::Custom));
    }

    #[test]
    fn codes_are_digits() {
        let code = numeric_code(6);
        assert_eq!(code.len(), 6);
        assert!(code.bytes().all(|b| b.is_ascii_digit()));
    }
}
