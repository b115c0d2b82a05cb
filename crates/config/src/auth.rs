//! `[auth]`: JWT secret, API keys, roles and GoTrue settings.

use serde::Deserialize;

use crate::Secret;

/// JWT and API-key settings. Unset keys are generated on first run and stored in the data dir.
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
    /// Access-token lifetime in seconds.
    pub jwt_expiry_secs: u64,
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
        }
    }
}
