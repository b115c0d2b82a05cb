//! The shared claims extractor (REST, Storage and Realtime use it) with ES256 signing keys,
//! extra trusted keys and the usual rejections.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use manifold_auth::keys::{sign_hs256, unix_now};
use manifold_auth::signing::{SigningKeys, generate_es256_jwk};
use manifold_auth::{GatewayError, JwtError};
use manifold_config::{AuthConfig, Secret};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::Api;

fn signer(jwk: &Value) -> SigningKeys {
    SigningKeys::from_config(&AuthConfig {
        signing_keys: Some(Secret::new(json!([jwk]).to_string())),
        ..AuthConfig::default()
    })
    .unwrap()
}

fn claims(extra: Value) -> Value {
    let now = unix_now();
    let mut claims = json!({"sub": "00000000-0000-0000-0000-000000000001", "role": "authenticated",
        "aud": "authenticated", "iat": now, "exp": now + 600});
    for (key, value) in extra.as_object().unwrap() {
        claims[key] = value.clone();
    }
    claims
}

#[tokio::test]
async fn es256_tokens_verify_everywhere_and_bad_tokens_are_rejected() {
    let current = generate_es256_jwk("current").unwrap();
    let foreign = generate_es256_jwk("migrated").unwrap();
    let mut foreign_public = foreign.clone();
    foreign_public.as_object_mut().unwrap().remove("d");
    let api = Api::start_with(|config| {
        config.auth.signing_keys =
            Some(Secret::new(json!({"keys": [current.clone()]}).to_string()));
        config.auth.trusted_jwks = Some(json!({"keys": [foreign_public]}).to_string());
        config.rest.jwt_aud = Some("authenticated".into());
    })
    .await;

    // Sign-up issues an ES256 token with the key's kid, and the JWK set publishes its public half.
    let session = api.sign_up("es256@example.com", "password-1").await;
    let access = session["access_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(access).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    assert_eq!(header.kid.as_deref(), Some("current"));
    let jwks = api
        .call(Method::GET, "/auth/v1/.well-known/jwks.json", None, None)
        .await;
    assert_eq!(jwks.status, 200);
    assert_eq!(jwks.headers["cache-control"], "public, max-age=600");
    let keys = jwks.body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kid"], "current");
    assert!(keys[0].get("d").is_none());
    let user = api
        .call(Method::GET, "/auth/v1/user", None, Some(access))
        .await;
    assert_eq!(user.status, 200, "{}", user.body);

    let gatekeeper = &api.server.state.gatekeeper;
    let caller = |token: &str| gatekeeper.caller(None, Some(&format!("Bearer {token}")));
    let accepted = caller(access).unwrap();
    assert_eq!(accepted.role(), "authenticated");
    assert_eq!(accepted.claims()["email"], "es256@example.com");
    // A key of a project being migrated, trusted through the configured JWKS.
    let migrated = signer(&foreign).sign(&claims(json!({})), "unused").unwrap();
    assert!(caller(&migrated).is_ok());
    // The legacy HS256 secret keeps working next to the asymmetric key.
    let secret = &api.server.keys.jwt_secret;
    assert!(caller(&sign_hs256(&claims(json!({})), secret).unwrap()).is_ok());

    // Unknown key: a kid nobody configured, or the right kid with another key.
    let stranger = generate_es256_jwk("stranger").unwrap();
    let unknown = signer(&stranger)
        .sign(&claims(json!({})), "unused")
        .unwrap();
    assert_eq!(
        caller(&unknown).unwrap_err(),
        GatewayError::Jwt(JwtError::NoKey)
    );
    let impostor = generate_es256_jwk("current").unwrap();
    let forged = signer(&impostor)
        .sign(&claims(json!({})), "unused")
        .unwrap();
    assert_eq!(
        caller(&forged).unwrap_err(),
        GatewayError::Jwt(JwtError::Signature)
    );
    // alg none.
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims(json!({"role": "service_role"})).to_string())
    );
    assert_eq!(
        caller(&none).unwrap_err(),
        GatewayError::Jwt(JwtError::Algorithm)
    );
    // Expired.
    let expired = signer(&current)
        .sign(&claims(json!({"exp": unix_now() - 3600})), "unused")
        .unwrap();
    assert_eq!(
        caller(&expired).unwrap_err(),
        GatewayError::Jwt(JwtError::Expired)
    );
    // Wrong audience.
    let wrong_aud = signer(&current)
        .sign(&claims(json!({"aud": "someone-else"})), "unused")
        .unwrap();
    assert_eq!(
        caller(&wrong_aud).unwrap_err(),
        GatewayError::Jwt(JwtError::Audience)
    );

    // Over HTTP, REST refuses each of them with 401 before looking at the relation.
    for token in [&unknown, &forged, &none, &expired, &wrong_aud] {
        let response = reqwest::Client::new()
            .get(api.server.endpoint("/rest/v1/anything"))
            .header("apikey", api.anon_key())
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401);
    }
    // /auth/v1/user answers GoTrue's 403 bad_jwt.
    let bad = api
        .call(Method::GET, "/auth/v1/user", None, Some(&unknown))
        .await;
    assert_eq!(bad.status, 403);
    assert_eq!(bad.body["code"], "bad_jwt");
}

#[tokio::test]
async fn hs256_by_default_with_an_empty_key_set() {
    let api = Api::start().await;
    let session = api.sign_up("hs@example.com", "password-1").await;
    let header = jsonwebtoken::decode_header(session["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::HS256);
    let jwks = api
        .call(Method::GET, "/auth/v1/.well-known/jwks.json", None, None)
        .await;
    assert_eq!(jwks.body, json!({"keys": []}));
    // The claim set GoTrue issues.
    let token = session["access_token"].as_str().unwrap();
    let claims = api
        .server
        .state
        .gatekeeper
        .verifier()
        .verify(token)
        .unwrap();
    for name in [
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "email",
        "phone",
        "app_metadata",
        "user_metadata",
        "role",
        "aal",
        "amr",
        "session_id",
        "is_anonymous",
    ] {
        assert!(claims.contains_key(name), "missing claim {name}");
    }
    assert_eq!(claims["aud"], "authenticated");
    assert_eq!(claims["aal"], "aal1");
    assert_eq!(claims["amr"][0]["method"], "password");
    assert_eq!(claims["phone"], "");
}
