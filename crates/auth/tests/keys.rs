//! Signing and trusted keys read from files (`signing_keys_path`, `trusted_jwks_path`), with an
//! RS256 signing key: the tokens it signs verify with the published JWK set, as supabase-js's
//! `getClaims` does, and through every API's claims extractor.

use std::path::PathBuf;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use manifold_auth::keys::unix_now;
use manifold_auth::signing::{SigningKeys, generate_es256_jwk};
use manifold_config::{AuthConfig, Secret};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::Api;

/// A throwaway RSA key pair (generated for these tests, never used elsewhere).
const RS256_KEY_FILE: &str = "tests/fixtures/rs256_test_signing_key.json";

/// Members of a published key that would expose the private half.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "k"];

/// Writes `contents` to a new file in the temp dir, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(contents: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("manifold-jwks-{}.json", uuid::Uuid::new_v4()));
        std::fs::write(&path, contents).unwrap();
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test]
async fn an_rs256_key_file_signs_tokens_that_the_published_jwks_verifies() {
    let key_file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(RS256_KEY_FILE);
    let migrated = generate_es256_jwk("migrated").unwrap();
    let mut migrated_public = migrated.clone();
    migrated_public.as_object_mut().unwrap().remove("d");
    let trusted = TempFile::new(&json!({"keys": [migrated_public]}).to_string());
    let trusted_path = trusted.0.clone();
    let api = Api::start_with(|config| {
        config.auth.signing_keys_path = Some(key_file);
        config.auth.trusted_jwks_path = Some(trusted_path);
    })
    .await;

    let session = api.sign_up("rsa@example.com", "password-1").await;
    let access = session["access_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(access).unwrap();
    assert_eq!(
        (header.alg, header.kid.as_deref()),
        (Algorithm::RS256, Some("rs256-test"))
    );

    let jwks = api
        .call(Method::GET, "/auth/v1/.well-known/jwks.json", None, None)
        .await;
    assert_eq!(jwks.status, 200, "{}", jwks.body);
    let keys = jwks.body["keys"].as_array().unwrap();
    // Only the signing key is published; trusted keys verify but are never listed.
    assert_eq!(keys.len(), 1, "{}", jwks.body);
    let published = keys[0].as_object().unwrap();
    assert_eq!(published["kid"], "rs256-test");
    assert_eq!(published["kty"], "RSA");
    assert_eq!(published["alg"], "RS256");
    assert_eq!(published["key_ops"], json!(["verify"]));
    for member in PRIVATE_MEMBERS {
        assert!(!published.contains_key(*member), "{member} published");
    }

    // Verified with nothing but the published key, as a client would.
    let mut public: serde_json::Map<String, Value> = published.clone();
    public.retain(|name, _| matches!(name.as_str(), "kty" | "kid" | "alg" | "use" | "n" | "e"));
    let jwk: Jwk = serde_json::from_value(Value::Object(public)).unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&["authenticated"]);
    let decoded =
        jsonwebtoken::decode::<Value>(access, &DecodingKey::from_jwk(&jwk).unwrap(), &validation)
            .unwrap();
    assert_eq!(decoded.claims["sub"], session["user"]["id"]);
    assert_eq!(decoded.claims["email"], "rsa@example.com");

    // The server accepts it too: GoTrue's user route and the claims extractor of every API.
    let user = api
        .call(Method::GET, "/auth/v1/user", None, Some(access))
        .await;
    assert_eq!(user.status, 200, "{}", user.body);
    let gatekeeper = &api.server.state.gatekeeper;
    let caller = |token: &str| gatekeeper.caller(None, Some(&format!("Bearer {token}")));
    assert_eq!(caller(access).unwrap().role(), "authenticated");

    // A token of the key trusted from the file passes the extractor; a stranger's does not.
    let now = unix_now();
    let claims = json!({"sub": "00000000-0000-0000-0000-000000000002", "role": "authenticated",
        "aud": "authenticated", "iat": now, "exp": now + 600});
    let sign_with = |jwk: &Value| {
        SigningKeys::from_config(&AuthConfig {
            signing_keys: Some(Secret::new(json!([jwk]).to_string())),
            ..AuthConfig::default()
        })
        .unwrap()
        .sign(&claims, "unused")
        .unwrap()
    };
    assert!(caller(&sign_with(&migrated)).is_ok());
    let stranger = generate_es256_jwk("stranger").unwrap();
    assert!(caller(&sign_with(&stranger)).is_err());
}

#[tokio::test]
async fn an_unreadable_key_file_is_an_error_naming_the_file() {
    let missing =
        std::env::temp_dir().join(format!("manifold-absent-{}.json", uuid::Uuid::new_v4()));
    let error = SigningKeys::from_config(&AuthConfig {
        signing_keys_path: Some(missing.clone()),
        ..AuthConfig::default()
    })
    .unwrap_err();
    assert!(
        error.to_string().contains(&missing.display().to_string()),
        "{error}"
    );
}
