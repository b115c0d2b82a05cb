//! `[auth]`: JWT secret, API keys, roles and the GoTrue-compatible `/auth/v1` settings (signing
//! keys, sign-up rules, password policy, mail, rate limits, the access-token hook, MFA).

use std::path::PathBuf;

use serde::Deserialize;

use crate::Secret;

/// JWT, API-key and `/auth/v1` settings. Unset keys are generated on first run and stored in the
/// data dir. Names follow GoTrue's (`GOTRUE_…`) and the Supabase CLI's `[auth]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HS256 secret shared by every service (a migrated Supabase project keeps its own).
    pub jwt_secret: Option<Secret>,
    /// Legacy anon JWT key.
    pub anon_key: Option<Secret>,
    /// Legacy service_role JWT key.
    pub service_role_key: Option<Secret>,
    /// Opaque `sb_publishable_…` key, mapped to the anon role.
    pub publishable_key: Option<Secret>,
    /// Opaque `sb_secret_…` key, mapped to the service_role role.
    pub secret_key: Option<Secret>,
    /// Database roles a JWT may name in its role claim.
    pub allowed_roles: Vec<String>,
    /// Access-token lifetime in seconds (GoTrue caps it at one week).
    pub jwt_expiry_secs: u64,
    /// `iss` of issued access tokens; defaults to `<api.external_url>/auth/v1`.
    pub jwt_issuer: Option<String>,
    /// Asymmetric signing keys as a JWK set file (the Supabase CLI's `signing_keys_path`): a JSON
    /// array of private JWKs or `{"keys": [...]}`. The first key signs user tokens (ES256 or
    /// RS256); every key is published at `/auth/v1/.well-known/jwks.json`, so keep a rotated-out
    /// key listed until the tokens it signed have expired.
    pub signing_keys_path: Option<PathBuf>,
    /// The same as `signing_keys_path`, inline (JSON text).
    pub signing_keys: Option<Secret>,
    /// Extra public keys every API trusts (a JWK set file), e.g. the keys of a project being
    /// migrated here. They verify tokens but are never used to sign or published.
    pub trusted_jwks_path: Option<PathBuf>,
    /// The same as `trusted_jwks_path`, inline (JSON text).
    pub trusted_jwks: Option<String>,
    /// Where links in emails lead when `redirect_to` is absent or not allowed (`SITE_URL`).
    pub site_url: String,
    /// Further allowed `redirect_to` targets; `*` matches within a path segment or host label,
    /// `**` matches anything (`URI_ALLOW_LIST`).
    pub uri_allow_list: Vec<String>,
    /// Refuse new sign-ups (`DISABLE_SIGNUP`).
    pub disable_signup: bool,
    /// Allow email sign-up and sign-in (`EXTERNAL_EMAIL_ENABLED`).
    pub email_enabled: bool,
    /// Confirm emails at sign-up without a mail round trip (`MAILER_AUTOCONFIRM`). Unset: on when
    /// no SMTP server is configured, off otherwise.
    pub mailer_autoconfirm: Option<bool>,
    /// Allow `signInAnonymously` (`EXTERNAL_ANONYMOUS_USERS_ENABLED`).
    pub anonymous_sign_ins: bool,
    /// Shortest password accepted (`PASSWORD_MIN_LENGTH`).
    pub password_min_length: usize,
    /// Character classes a password must contain: `""`, `letters_digits`,
    /// `lower_upper_letters_digits` or `lower_upper_letters_digits_symbols`, as the Supabase CLI.
    pub password_requirements: String,
    /// Rotate refresh tokens and revoke the family on late reuse
    /// (`SECURITY_REFRESH_TOKEN_ROTATION_ENABLED`).
    pub refresh_token_rotation: bool,
    /// Seconds a used refresh token may still be presented (`SECURITY_REFRESH_TOKEN_REUSE_INTERVAL`).
    pub refresh_token_reuse_interval_secs: u64,
    /// A password change from a session older than 24 hours needs the nonce mailed by
    /// `/reauthenticate` (`SECURITY_UPDATE_PASSWORD_REQUIRE_REAUTHENTICATION`, the Supabase CLI's
    /// `secure_password_change`).
    pub update_password_require_reauthentication: bool,
    /// A password change needs the current password, except in a PKCE recovery session
    /// (`SECURITY_UPDATE_PASSWORD_REQUIRE_CURRENT_PASSWORD`).
    pub update_password_require_current_password: bool,
    /// Lifetime of email links and codes in seconds (`MAILER_OTP_EXP`).
    pub otp_expiry_secs: u64,
    /// Digits of email codes (`MAILER_OTP_LENGTH`).
    pub otp_length: usize,
    /// Seconds between two emails to one address (`SMTP_MAX_FREQUENCY`).
    pub email_max_frequency_secs: u64,
    /// Outgoing mail; unset: the built-in dev mailbox stores (and logs) messages instead.
    pub smtp: Option<SmtpConfig>,
    /// Per-IP (and per-email) request limits.
    pub rate_limit: RateLimitConfig,
    /// SQL function run before every access token is issued: `schema.function` or Supabase's
    /// `pg-functions://postgres/schema/function`. It receives `{user_id, claims,
    /// authentication_method}` and returns `{claims}` (or `{error: {http_code, message}}`).
    pub custom_access_token_hook: Option<String>,
    /// Most MFA factors one user may enroll.
    pub mfa_max_enrolled_factors: usize,
    /// Seconds an MFA challenge stays valid.
    pub mfa_challenge_expiry_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            anon_key: None,
            service_role_key: None,
            publishable_key: None,
            secret_key: None,
            allowed_roles: vec![
                "anon".to_owned(),
                "authenticated".to_owned(),
                "service_role".to_owned(),
            ],
            jwt_expiry_secs: 3600,
            jwt_issuer: None,
            signing_keys_path: None,
            signing_keys: None,
            trusted_jwks_path: None,
            trusted_jwks: None,
            site_url: "http://localhost:3000".to_owned(),
            uri_allow_list: Vec::new(),
            disable_signup: false,
            email_enabled: true,
            mailer_autoconfirm: None,
            anonymous_sign_ins: false,
            password_min_length: 6,
            password_requirements: String::new(),
            refresh_token_rotation: true,
            refresh_token_reuse_interval_secs: 10,
            update_password_require_reauthentication: false,
            update_password_require_current_password: false,
            otp_expiry_secs: 86_400,
            otp_length: 6,
            email_max_frequency_secs: 60,
            smtp: None,
            rate_limit: RateLimitConfig::default(),
            custom_access_token_hook: None,
            mfa_max_enrolled_factors: 10,
            mfa_challenge_expiry_secs: 300,
        }
    }
}

impl AuthConfig {
    /// Whether sign-ups confirm the email at once: as configured, else only without SMTP (mail
    /// could never arrive otherwise).
    pub fn autoconfirm(&self) -> bool {
        self.mailer_autoconfirm.unwrap_or(self.smtp.is_none())
    }
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// TLS from the first byte (port 465).
    Implicit,
    /// Plain connection upgraded with STARTTLS (port 587); refused if the server cannot.
    Starttls,
    /// No encryption (a local relay or a test server only).
    None,
}

/// An SMTP server for outgoing mail (`SMTP_*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Server host name.
    pub host: String,
    /// Server port.
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// Login user, if the server needs one.
    #[serde(default)]
    pub user: Option<String>,
    /// Login password.
    #[serde(default)]
    pub pass: Option<Secret>,
    /// Sender address (`SMTP_ADMIN_EMAIL`).
    pub admin_email: String,
    /// Sender display name.
    #[serde(default)]
    pub sender_name: Option<String>,
    /// Transport security.
    #[serde(default = "default_smtp_tls")]
    pub tls: SmtpTls,
}

fn default_smtp_port() -> u16 {
    587
}

fn default_smtp_tls() -> SmtpTls {
    SmtpTls::Starttls
}

/// Request limits as GoTrue's (`RATE_LIMIT_*`), in requests per period per client IP; the bucket
/// refills evenly over the period and holds at most `burst` requests. `0` switches a limit off.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Header holding the client IP when a trusted proxy sits in front (first address of a
    /// comma-separated list). Unset: the TCP peer address.
    pub ip_header: Option<String>,
    /// Largest burst of any bucket.
    pub burst: u32,
    /// `/token` (sign-in, refresh, PKCE exchange) per 5 minutes.
    pub token_per_5min: u32,
    /// `/verify` per 5 minutes.
    pub verify_per_5min: u32,
    /// `/signup` per 5 minutes.
    pub signup_per_5min: u32,
    /// Anonymous sign-ups per hour.
    pub anonymous_per_hour: u32,
    /// Each of `/otp`, `/magiclink`, `/recover`, `/resend`, `/reauthenticate` per 5 minutes, per
    /// IP and per email address.
    pub email_requests_per_5min: u32,
    /// `PUT /user` per 5 minutes.
    pub user_update_per_5min: u32,
    /// MFA challenge and verify per minute.
    pub mfa_per_minute: u32,
    /// Emails sent through SMTP per hour, in total (the dev mailbox is not limited).
    pub email_sent_per_hour: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            ip_header: None,
            burst: 30,
            token_per_5min: 150,
            verify_per_5min: 30,
            signup_per_5min: 30,
            anonymous_per_hour: 30,
            email_requests_per_5min: 30,
            user_update_per_5min: 30,
            mfa_per_minute: 15,
            email_sent_per_hour: 30,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autoconfirm_defaults_on_only_without_smtp() {
        let mut config = AuthConfig::default();
        assert!(config.autoconfirm());
        config.smtp = Some(SmtpConfig {
            host: "mail".into(),
            port: 587,
            user: None,
            pass: None,
            admin_email: "a@b.c".into(),
            sender_name: None,
            tls: SmtpTls::Starttls,
        });
        assert!(!config.autoconfirm());
        config.mailer_autoconfirm = Some(true);
        assert!(config.autoconfirm());
    }

    #[test]
    fn nested_sections_parse() {
        let config: AuthConfig = toml::from_str(
            "site_url = \"http://app\"\n[smtp]\nhost = \"mail\"\nadmin_email = \"a@b.c\"\n\
             [rate_limit]\ntoken_per_5min = 0\n",
        )
        .unwrap();
        assert_eq!(config.site_url, "http://app");
        let smtp = config.smtp.unwrap();
        assert_eq!((smtp.port, smtp.tls), (587, SmtpTls::Starttls));
        assert_eq!(config.rate_limit.token_per_5min, 0);
        assert_eq!(config.rate_limit.verify_per_5min, 30);
    }
}
