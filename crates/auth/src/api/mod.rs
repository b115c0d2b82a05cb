//! The GoTrue-compatible `/auth/v1` API that supabase-js's `auth.*` calls: sign-up and sign-in,
//! sessions with rotating refresh tokens, the user endpoints, email flows (verify, OTP, recovery,
//! PKCE), MFA with TOTP, the admin API, JWKS and settings. Contract: `compat/auth-storage.md`.

mod admin;
mod admin_links;
mod db;
mod email_flows;
mod error;
mod hook;
mod limits;
mod links;
mod mail;
mod meta;
mod mfa;
mod password;
mod redirect;
mod refresh;
mod request;
mod session;
mod signup;
mod token;
mod user;
mod users;
mod verify;

use std::net::IpAddr;
use std::sync::Arc;

use axum::Router;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{MethodRouter, any, delete, get, post, put};
use manifold_config::{AuthConfig, Config};
use manifold_db::Db;

pub use error::AuthError;
pub use mail::MailConfigError;

use crate::Gatekeeper;
use crate::gateway::require_api_key;
use limits::{FIVE_MINUTES, IpLimit, KeyedLimit, ONE_HOUR, ONE_MINUTE, per_ip};
use mail::Mailer;

/// The audience of user tokens (GoTrue's `JWT_AUD`).
const AUDIENCE: &str = "authenticated";

/// What the `/auth/v1` handlers share.
#[derive(Clone, Debug)]
pub struct AuthState {
    /// The API pool.
    pub db: Db,
    /// Keys, token verification and role rules.
    pub gatekeeper: Arc<Gatekeeper>,
    /// Settings.
    pub config: Arc<Config>,
}

/// The handlers' state: the shared parts plus what is derived from the settings once.
#[derive(Debug)]
pub(crate) struct Auth {
    pub(crate) db: Db,
    pub(crate) gatekeeper: Arc<Gatekeeper>,
    pub(crate) config: Arc<Config>,
    pub(crate) mailer: Result<Mailer, String>,
    /// `<public url>/auth/v1`, the base of links in emails.
    pub(crate) external_url: String,
    /// `iss` of access tokens.
    pub(crate) issuer: String,
    /// Mail-sending endpoints, per email address.
    pub(crate) email_limit: KeyedLimit<String>,
    /// Anonymous sign-ups, per client IP.
    pub(crate) anonymous_limit: KeyedLimit<IpAddr>,
}

impl Auth {
    fn new(state: AuthState) -> Self {
        let settings = &state.config.auth;
        let mailer = Mailer::new(
            settings.smtp.as_ref(),
            settings.rate_limit.email_sent_per_hour,
        )
        .map_err(|error| {
            tracing::error!(%error, "smtp settings are unusable; auth mail will fail");
            error.to_string()
        });
        let external_url = format!("{}/auth/v1", state.config.api.public_url());
        let limits = &settings.rate_limit;
        Self {
            issuer: settings
                .jwt_issuer
                .clone()
                .unwrap_or_else(|| external_url.clone()),
            external_url,
            mailer,
            email_limit: KeyedLimit::new(
                limits.email_requests_per_5min,
                FIVE_MINUTES,
                limits.burst,
            ),
            anonymous_limit: KeyedLimit::new(limits.anonymous_per_hour, ONE_HOUR, limits.burst),
            db: state.db,
            gatekeeper: state.gatekeeper,
            config: state.config,
        }
    }

    /// The `[auth]` settings.
    pub(crate) fn settings(&self) -> &AuthConfig {
        &self.config.auth
    }

    /// The mailer, or 500 when the SMTP settings are broken.
    pub(crate) fn mailer(&self) -> Result<&Mailer, AuthError> {
        self.mailer
            .as_ref()
            .map_err(|error| AuthError::internal(format!("mailer unavailable: {error}")))
    }
}

fn limited(route: MethodRouter<Arc<Auth>>, limit: Option<IpLimit>) -> MethodRouter<Arc<Auth>> {
    match limit {
        Some(limit) => route.layer(from_fn(move |request, next| {
            limit.clone().middleware(request, next)
        })),
        None => route,
    }
}

/// Routes for `/auth/v1/…`. The gateway's `apikey` rule applies to all of them except the
/// browser-facing ones Supabase's gateway leaves open (`/verify`, `/callback`, `/authorize`,
/// `/.well-known/jwks.json`). Errors are rendered in the format the request asked for.
pub fn router(state: AuthState) -> Router {
    let gateway = from_fn_with_state(state.gatekeeper.clone(), require_api_key);
    let auth = Arc::new(Auth::new(state));
    let rate = auth.settings().rate_limit.clone();
    let header = rate.ip_header.as_deref();
    let limit = |count: u32, period| per_ip(count, period, rate.burst, header);

    let open = Router::new()
        .route(
            "/auth/v1/verify",
            limited(
                get(verify::verify_link).post(verify::verify_otp),
                limit(rate.verify_per_5min, FIVE_MINUTES),
            ),
        )
        .route("/auth/v1/callback", get(meta::callback))
        .route("/auth/v1/authorize", get(meta::authorize))
        .route("/auth/v1/.well-known/jwks.json", get(meta::jwks));

    let email = |route: MethodRouter<Arc<Auth>>| {
        limited(route, limit(rate.email_requests_per_5min, FIVE_MINUTES))
    };
    let keyed = Router::new()
        .route("/auth/v1/health", get(meta::health))
        .route("/auth/v1/settings", get(meta::settings))
        .route(
            "/auth/v1/signup",
            limited(
                post(signup::signup),
                limit(rate.signup_per_5min, FIVE_MINUTES),
            ),
        )
        .route(
            "/auth/v1/token",
            limited(post(token::token), limit(rate.token_per_5min, FIVE_MINUTES)),
        )
        .route(
            "/auth/v1/user",
            get(user::get_user).merge(limited(
                put(user::update_user),
                limit(rate.user_update_per_5min, FIVE_MINUTES),
            )),
        )
        .route("/auth/v1/logout", post(user::logout))
        .route("/auth/v1/reauthenticate", email(get(user::reauthenticate)))
        .route("/auth/v1/otp", email(post(email_flows::otp)))
        .route("/auth/v1/magiclink", email(post(email_flows::magiclink)))
        .route("/auth/v1/recover", email(post(email_flows::recover)))
        .route("/auth/v1/resend", email(post(email_flows::resend)))
        .route("/auth/v1/factors", post(mfa::enroll))
        .route(
            "/auth/v1/factors/{factor_id}/challenge",
            limited(post(mfa::challenge), limit(rate.mfa_per_minute, ONE_MINUTE)),
        )
        .route(
            "/auth/v1/factors/{factor_id}/verify",
            limited(post(mfa::verify), limit(rate.mfa_per_minute, ONE_MINUTE)),
        )
        .route("/auth/v1/factors/{factor_id}", delete(mfa::unenroll))
        .route("/auth/v1/invite", post(admin_links::invite))
        .route("/auth/v1/admin/users", get(admin::list).post(admin::create))
        .route(
            "/auth/v1/admin/users/{user_id}",
            get(admin::get).put(admin::update).delete(admin::remove),
        )
        .route(
            "/auth/v1/admin/users/{user_id}/factors",
            get(admin::factors),
        )
        .route(
            "/auth/v1/admin/users/{user_id}/factors/{factor_id}",
            delete(admin::delete_factor),
        )
        .route(
            "/auth/v1/admin/generate_link",
            post(admin_links::generate_link),
        )
        .route("/auth/v1/admin/mailbox", get(admin_links::mailbox))
        .route("/auth/v1/{*path}", any(meta::not_found))
        .layer(gateway);

    open.merge(keyed)
        .layer(from_fn(error::error_format))
        .with_state(auth)
}
