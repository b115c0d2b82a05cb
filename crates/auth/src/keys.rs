//! The project's JWT secret and the four API keys supabase-js users expect.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use manifold_config::{AuthConfig, Secret};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Lifetime of generated legacy API keys (as Supabase's: about ten years).
const API_KEY_LIFETIME_SECS: u64 = 10 * 365 * 24 * 3600;
/// Issuer of generated legacy API keys, as Supabase's.
const API_KEY_ISSUER: &str = "supabase";
/// The `ref` claim of generated keys: the project reference of a local instance.
const PROJECT_REF: &str = "manifold";

/// JWT secret plus legacy (JWT) and new-style (opaque) API keys.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProjectKeys {
    /// HS256 secret shared by every service.
    pub jwt_secret: String,
    /// Legacy anon key: a JWT with `role: anon`.
    pub anon_key: String,
    /// Legacy service key: a JWT with `role: service_role`.
    pub service_role_key: String,
    /// `sb_publishable_…`, mapped to the anon role.
    pub publishable_key: String,
    /// `sb_secret_…`, mapped to the service_role role.
    pub secret_key: String,
}

impl ProjectKeys {
    /// Generates any key not given in `config`. A configured secret without configured legacy
    /// keys gets legacy keys signed with it, so a migrated project keeps working.
    pub fn generate(config: &AuthConfig) -> Result<Self, jsonwebtoken::errors::Error> {
        let jwt_secret = config
            .jwt_secret
            .as_ref()
            .map_or_else(|| random_token(32), |secret| secret.expose().to_owned());
        let now = unix_now();
        let legacy_key = |role: &str| {
            sign_hs256(
                &json!({
                    "iss": API_KEY_ISSUER,
                    "ref": PROJECT_REF,
                    "role": role,
                    "iat": now,
                    "exp": now + API_KEY_LIFETIME_SECS,
                }),
                &jwt_secret,
            )
        };
        let anon_key = match &config.anon_key {
            Some(key) => key.expose().to_owned(),
            None => legacy_key("anon")?,
        };
        let service_role_key = match &config.service_role_key {
            Some(key) => key.expose().to_owned(),
            None => legacy_key("service_role")?,
        };
        Ok(Self {
            publishable_key: exposed_or(&config.publishable_key, || {
                format!("sb_publishable_{}", random_token(24))
            }),
            secret_key: exposed_or(&config.secret_key, || {
                format!("sb_secret_{}", random_token(24))
            }),
            jwt_secret,
            anon_key,
            service_role_key,
        })
    }

    /// Replaces stored values with configured ones, so config always wins over the data dir. A
    /// configured secret that differs from the stored one re-signs the legacy keys that are not
    /// configured themselves: keys signed with the old secret would no longer verify.
    pub fn with_overrides(self, config: &AuthConfig) -> Result<Self, jsonwebtoken::errors::Error> {
        let secret_changed = config
            .jwt_secret
            .as_ref()
            .is_some_and(|secret| secret.expose() != self.jwt_secret);
        if secret_changed {
            return Self::generate(&AuthConfig {
                publishable_key: Some(Secret::new(exposed_or(&config.publishable_key, || {
                    self.publishable_key.clone()
                }))),
                secret_key: Some(Secret::new(exposed_or(&config.secret_key, || {
                    self.secret_key.clone()
                }))),
                ..config.clone()
            });
        }
        Ok(Self {
            jwt_secret: self.jwt_secret,
            anon_key: exposed_or(&config.anon_key, || self.anon_key.clone()),
            service_role_key: exposed_or(&config.service_role_key, || {
                self.service_role_key.clone()
            }),
            publishable_key: exposed_or(&config.publishable_key, || self.publishable_key.clone()),
            secret_key: exposed_or(&config.secret_key, || self.secret_key.clone()),
        })
    }
}

fn exposed_or(value: &Option<Secret>, generate: impl FnOnce() -> String) -> String {
    value
        .as_ref()
        .map_or_else(generate, |secret| secret.expose().to_owned())
}

/// Signs `claims` with HS256 and `secret`.
pub fn sign_hs256(claims: &Value, secret: &str) -> Result<String, jsonwebtoken::errors::Error> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
}

/// `bytes` random bytes, base64url without padding.
pub fn random_token(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buffer);
    URL_SAFE_NO_PAD.encode(buffer)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::JwtVerifier;

    #[test]
    fn generated_keys_verify_with_the_generated_secret() {
        let keys = ProjectKeys::generate(&AuthConfig::default()).unwrap();
        assert!(keys.jwt_secret.len() >= 32);
        assert!(keys.publishable_key.starts_with("sb_publishable_"));
        assert!(keys.secret_key.starts_with("sb_secret_"));
        let verifier = JwtVerifier::hs256(&keys.jwt_secret, None);
        assert_eq!(verifier.verify(&keys.anon_key).unwrap()["role"], "anon");
        assert_eq!(
            verifier.verify(&keys.service_role_key).unwrap()["role"],
            "service_role"
        );
    }

    #[test]
    fn configured_values_win() {
        let config = AuthConfig {
            jwt_secret: Some(Secret::new("x".repeat(40))),
            publishable_key: Some(Secret::new("sb_publishable_mine")),
            ..AuthConfig::default()
        };
        let keys = ProjectKeys::generate(&config).unwrap();
        assert_eq!(keys.jwt_secret, "x".repeat(40));
        assert_eq!(keys.publishable_key, "sb_publishable_mine");
        let stored = ProjectKeys::generate(&AuthConfig::default()).unwrap();
        let merged = stored.clone().with_overrides(&config).unwrap();
        assert_eq!(merged.jwt_secret, "x".repeat(40));
        assert_eq!(merged.publishable_key, "sb_publishable_mine");
        assert_eq!(merged.secret_key, stored.secret_key);
        // The legacy keys were re-signed with the configured secret.
        let verifier = JwtVerifier::hs256(&"x".repeat(40), None);
        assert_eq!(verifier.verify(&merged.anon_key).unwrap()["role"], "anon");
    }
}
