//! What Supabase's API gateway does in front of PostgREST and GoTrue, done here: the `apikey`
//! must be a known key, an opaque key stands for the anon or service role, and the bearer token
//! (a user session, or the key itself) decides the caller's role and claims.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, Uri, header};
use manifold_config::Config;
use manifold_query::{form_decode, query_pairs};
use serde_json::{Map, Value, json};

use crate::jwt::{JwtError, JwtVerifier};
use crate::keys::ProjectKeys;
use crate::signing::{KeyError, SigningKeys};

/// Which known key an `apikey` (or bearer) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKeyRole {
    /// The anon JWT key or the publishable key.
    Anon,
    /// The service_role JWT key or the secret key.
    Service,
}

/// The known key a request presented at the gateway, if any; set by [`require_api_key`].
#[derive(Debug, Clone, Copy)]
pub struct PresentedKey(pub Option<ApiKeyRole>);

/// Why the gateway or the token check refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// No `apikey` header or query parameter.
    #[error("No API key found in request")]
    MissingApiKey,
    /// An `apikey` that is not one of the project's keys.
    #[error("Invalid API key")]
    InvalidApiKey,
    /// The bearer token did not verify.
    #[error(transparent)]
    Jwt(#[from] JwtError),
    /// The token names a role outside the allow-list.
    #[error("role \"{0}\" is not allowed")]
    RoleNotAllowed(String),
}

impl GatewayError {
    /// The gateway's own 401 body (Kong/hosted wording), for the apikey errors.
    fn gateway_response(&self) -> Option<Response> {
        let body = match self {
            Self::MissingApiKey => json!({
                "message": "No API key found in request",
                "hint": "No `apikey` request header or url param was found.",
            }),
            Self::InvalidApiKey => json!({
                "message": "Invalid API key",
                "hint": "Double check your Supabase `anon` or `service_role` API key.",
            }),
            _ => return None,
        };
        Some((StatusCode::UNAUTHORIZED, axum::Json(body)).into_response())
    }
}

/// The role and claims a request runs as.
#[derive(Debug, Clone)]
pub struct Caller {
    role: String,
    claims: Map<String, Value>,
    is_anon: bool,
}

impl Caller {
    /// The database role to switch to.
    pub fn role(&self) -> &str {
        &self.role
    }

    /// The claims, with `role` set.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// The claims as JSON text for `request.jwt.claims`.
    pub fn claims_json(&self) -> String {
        Value::Object(self.claims.clone()).to_string()
    }

    /// True when running as the anon role; a permission error is then 401 rather than 403.
    pub fn is_anon(&self) -> bool {
        self.is_anon
    }

    /// The `sub` claim, if any.
    pub fn subject(&self) -> Option<&str> {
        self.claims.get("sub").and_then(Value::as_str)
    }
}

/// Decides who a request is: holds the project keys, the verifier and the role rules.
#[derive(Debug, Clone)]
pub struct Gatekeeper {
    keys: ProjectKeys,
    anon_claims: Map<String, Value>,
    service_claims: Map<String, Value>,
    verifier: JwtVerifier,
    require_apikey: bool,
    role_claim_path: Vec<String>,
    anon_role: String,
    allowed_roles: Vec<String>,
    signing: std::sync::Arc<Result<SigningKeys, KeyError>>,
}

impl Gatekeeper {
    /// Builds the gatekeeper from the project keys and settings. Asymmetric signing keys and
    /// trusted JWKS from `[auth]` join the verifier; if they cannot be read the error is logged
    /// and kept, so `/auth/v1` refuses to issue tokens instead of silently falling back to HS256
    /// (`manifold start` checks them first with [`SigningKeys::from_config`]).
    pub fn new(keys: ProjectKeys, config: &Config) -> Self {
        let mut verifier = JwtVerifier::hs256(&keys.jwt_secret, config.rest.jwt_aud.clone());
        let signing = SigningKeys::from_config(&config.auth);
        match &signing {
            Ok(signing) => {
                for key in signing.verification_keys() {
                    verifier.add_public_key(key.clone());
                }
            }
            Err(error) => tracing::error!(%error, "auth signing keys are unusable"),
        }
        // Opaque keys stand for the legacy keys' claims, as the hosted gateway swaps them for
        // an internal JWT. Legacy keys that do not verify (misconfigured) still map to a role.
        let claims_of = |key: &str, role: &str| {
            let mut claims = verifier.verify(key).unwrap_or_default();
            claims.insert("role".into(), Value::String(role.into()));
            claims
        };
        Self {
            anon_claims: claims_of(&keys.anon_key, "anon"),
            service_claims: claims_of(&keys.service_role_key, "service_role"),
            keys,
            verifier,
            require_apikey: config.api.require_apikey,
            role_claim_path: parse_claim_path(&config.rest.jwt_role_claim_key),
            anon_role: config.rest.anon_role.clone(),
            allowed_roles: config.auth.allowed_roles.clone(),
            signing: std::sync::Arc::new(signing),
        }
    }

    /// The asymmetric signing keys, or why they could not be loaded.
    pub fn signing_keys(&self) -> Result<&SigningKeys, &KeyError> {
        self.signing.as_ref().as_ref()
    }

    /// The token verifier, shared by every API.
    pub fn verifier(&self) -> &JwtVerifier {
        &self.verifier
    }

    /// The project keys.
    pub fn keys(&self) -> &ProjectKeys {
        &self.keys
    }

    /// The role a known key stands for.
    pub fn api_key_role(&self, key: &str) -> Option<ApiKeyRole> {
        let keys = &self.keys;
        if constant_time_eq(key, &keys.anon_key) || constant_time_eq(key, &keys.publishable_key) {
            Some(ApiKeyRole::Anon)
        } else if constant_time_eq(key, &keys.service_role_key)
            || constant_time_eq(key, &keys.secret_key)
        {
            Some(ApiKeyRole::Service)
        } else {
            None
        }
    }

    /// The gateway rule: a present key must be known; a missing key is refused unless
    /// `require_apikey` is off.
    pub fn check_api_key(&self, apikey: Option<&str>) -> Result<Option<ApiKeyRole>, GatewayError> {
        match apikey.filter(|key| !key.is_empty()) {
            Some(key) => self
                .api_key_role(key)
                .map(Some)
                .ok_or(GatewayError::InvalidApiKey),
            None if self.require_apikey => Err(GatewayError::MissingApiKey),
            None => Ok(None),
        }
    }

    /// Who the request is: the bearer token when it is a user JWT, the key's role when the
    /// bearer is a known key or absent, anon when nothing was presented.
    pub fn caller(
        &self,
        key: Option<ApiKeyRole>,
        authorization: Option<&str>,
    ) -> Result<Caller, GatewayError> {
        let bearer = authorization.and_then(bearer_token);
        let claims = match bearer {
            Some(token) => match self.api_key_role(token) {
                Some(role) => self.key_claims(role),
                None => self.verifier.verify(token)?,
            },
            None => match key {
                Some(role) => self.key_claims(role),
                None => Map::new(),
            },
        };
        self.caller_from_claims(claims)
    }

    /// Who the request is, from already verified claims (e.g. a realtime access token).
    pub fn caller_from_claims(
        &self,
        mut claims: Map<String, Value>,
    ) -> Result<Caller, GatewayError> {
        let role = claim_at(&claims, &self.role_claim_path)
            .and_then(Value::as_str)
            .filter(|role| !role.is_empty())
            .unwrap_or(&self.anon_role)
            .to_owned();
        if !self.allowed_roles.contains(&role) {
            return Err(GatewayError::RoleNotAllowed(role));
        }
        claims.insert("role".into(), Value::String(role.clone()));
        Ok(Caller {
            is_anon: role == self.anon_role,
            role,
            claims,
        })
    }

    fn key_claims(&self, role: ApiKeyRole) -> Map<String, Value> {
        match role {
            ApiKeyRole::Anon => self.anon_claims.clone(),
            ApiKeyRole::Service => self.service_claims.clone(),
        }
    }
}

/// Middleware for `/rest/v1` and `/auth/v1`: enforces the `apikey` rule, removes the `apikey`
/// query parameter (PostgREST would read it as a filter) and records which key was presented.
pub async fn require_api_key(
    State(gatekeeper): State<std::sync::Arc<Gatekeeper>>,
    mut request: Request,
    next: Next,
) -> Response {
    let from_header = api_key_header(request.headers());
    let from_query = request.uri().query().and_then(api_key_param);
    let presented = from_header.or(from_query.clone());
    let role = match gatekeeper.check_api_key(presented.as_deref()) {
        Ok(role) => role,
        Err(error) => {
            return error
                .gateway_response()
                .unwrap_or_else(|| StatusCode::UNAUTHORIZED.into_response());
        }
    };
    if from_query.is_some()
        && let Some(uri) = without_api_key_param(request.uri())
    {
        *request.uri_mut() = uri;
    }
    request.extensions_mut().insert(PresentedKey(role));
    next.run(request).await
}

fn api_key_header(headers: &HeaderMap) -> Option<String> {
    headers
        .get("apikey")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

fn api_key_param(query: &str) -> Option<String> {
    query_pairs(query)
        .into_iter()
        .find(|(key, _)| key == "apikey")
        .map(|(_, value)| value)
}

fn without_api_key_param(uri: &Uri) -> Option<Uri> {
    let query = uri.query()?;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let key = pair.split('=').next().unwrap_or_default();
            form_decode(key) != "apikey"
        })
        .collect();
    let path_and_query = if kept.is_empty() {
        uri.path().to_owned()
    } else {
        format!("{}?{}", uri.path(), kept.join("&"))
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = path_and_query.parse().ok();
    Uri::from_parts(parts).ok()
}

/// The token of an `Authorization: Bearer <token>` header; the scheme is case-insensitive.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Splits PostgREST's `jwt-role-claim-key` (`.role`, `.app_metadata.role`, `."a.b".role`).
fn parse_claim_path(spec: &str) -> Vec<String> {
    let mut segments = Vec::new();
    let mut rest = spec.trim();
    while let Some(after_dot) = rest.strip_prefix('.') {
        if let Some(quoted) = after_dot.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            segments.push(quoted[..end].to_owned());
            rest = quoted.get(end + 1..).unwrap_or("");
        } else {
            let end = after_dot.find('.').unwrap_or(after_dot.len());
            segments.push(after_dot[..end].to_owned());
            rest = &after_dot[end..];
        }
    }
    segments
}

fn claim_at<'c>(claims: &'c Map<String, Value>, path: &[String]) -> Option<&'c Value> {
    let (first, rest) = path.split_first()?;
    rest.iter()
        .try_fold(claims.get(first)?, |value, segment| match value {
            Value::Object(map) => map.get(segment),
            Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        })
}

/// Compares two keys without leaking where they differ through timing.
fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The `Authorization` header as text.
pub fn authorization_header(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
}

#[cfg(test)]
mod tests {
    use manifold_config::AuthConfig;

    use super::*;
    use crate::keys::sign_hs256;

    fn gatekeeper(require_apikey: bool) -> Gatekeeper {
        let mut config = Config::default();
        config.api.require_apikey = require_apikey;
        let keys = ProjectKeys::generate(&AuthConfig::default()).unwrap();
        Gatekeeper::new(keys, &config)
    }

    #[test]
    fn apikey_rules() {
        let gate = gatekeeper(true);
        let keys = gate.keys().clone();
        assert_eq!(gate.check_api_key(None), Err(GatewayError::MissingApiKey));
        assert_eq!(
            gate.check_api_key(Some("nope")),
            Err(GatewayError::InvalidApiKey)
        );
        assert_eq!(
            gate.check_api_key(Some(&keys.anon_key)),
            Ok(Some(ApiKeyRole::Anon))
        );
        assert_eq!(
            gate.check_api_key(Some(&keys.publishable_key)),
            Ok(Some(ApiKeyRole::Anon))
        );
        assert_eq!(
            gate.check_api_key(Some(&keys.secret_key)),
            Ok(Some(ApiKeyRole::Service))
        );
        assert_eq!(gatekeeper(false).check_api_key(None), Ok(None));
    }

    #[test]
    fn opaque_bearer_maps_to_the_key_role() {
        let gate = gatekeeper(true);
        let keys = gate.keys().clone();
        let bearer = format!("Bearer {}", keys.publishable_key);
        let caller = gate.caller(Some(ApiKeyRole::Anon), Some(&bearer)).unwrap();
        assert_eq!(caller.role(), "anon");
        assert!(caller.is_anon());
        let bearer = format!("bearer {}", keys.secret_key);
        let caller = gate.caller(Some(ApiKeyRole::Anon), Some(&bearer)).unwrap();
        assert_eq!(caller.role(), "service_role");
        assert_eq!(caller.claims()["iss"], "supabase");
    }

    #[test]
    fn user_jwt_decides_the_role() {
        let gate = gatekeeper(true);
        let token = sign_hs256(
            &serde_json::json!({"sub": "abc", "role": "authenticated"}),
            &gate.keys().jwt_secret,
        )
        .unwrap();
        let caller = gate
            .caller(Some(ApiKeyRole::Anon), Some(&format!("Bearer {token}")))
            .unwrap();
        assert_eq!(caller.role(), "authenticated");
        assert_eq!(caller.subject(), Some("abc"));
        assert!(!caller.is_anon());
    }

    #[test]
    fn no_key_no_bearer_is_anon_and_disallowed_roles_fail() {
        let gate = gatekeeper(false);
        let caller = gate.caller(None, None).unwrap();
        assert_eq!(caller.role(), "anon");
        assert_eq!(caller.claims_json(), r#"{"role":"anon"}"#);
        let token = sign_hs256(
            &serde_json::json!({"role": "postgres"}),
            &gate.keys().jwt_secret,
        )
        .unwrap();
        assert_eq!(
            gate.caller(None, Some(&format!("Bearer {token}")))
                .unwrap_err(),
            GatewayError::RoleNotAllowed("postgres".into())
        );
        assert!(matches!(
            gate.caller(None, Some("Bearer not-a-jwt")),
            Err(GatewayError::Jwt(JwtError::Parts(1)))
        ));
    }

    #[test]
    fn nested_role_claim_paths() {
        assert_eq!(parse_claim_path(".role"), ["role"]);
        assert_eq!(
            parse_claim_path(".app_metadata.role"),
            ["app_metadata", "role"]
        );
        assert_eq!(
            parse_claim_path(".\"https://x.io\".role"),
            ["https://x.io", "role"]
        );
        let claims = serde_json::json!({"app_metadata": {"role": "authenticated"}});
        let claims = claims.as_object().unwrap();
        assert_eq!(
            claim_at(claims, &parse_claim_path(".app_metadata.role")),
            Some(&Value::String("authenticated".into()))
        );
    }

    #[test]
    fn apikey_param_is_stripped() {
        let uri: Uri = "/rest/v1/t?select=*&apikey=abc&id=eq.1".parse().unwrap();
        assert_eq!(
            without_api_key_param(&uri).unwrap(),
            "/rest/v1/t?select=*&id=eq.1"
        );
        let uri: Uri = "/rest/v1/t?apikey=abc".parse().unwrap();
        assert_eq!(without_api_key_param(&uri).unwrap(), "/rest/v1/t");
        assert_eq!(api_key_param("a=1&apikey=sb%5Fx"), Some("sb_x".into()));
    }
}
