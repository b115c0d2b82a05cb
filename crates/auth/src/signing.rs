//! Asymmetric signing keys (ES256/RS256) and extra trusted public keys, read from JWK sets as the
//! Supabase CLI writes them (`signing_keys_path`). The first private key signs user access tokens;
//! every configured signing key's public half is published at `/.well-known/jwks.json`; trusted
//! keys only verify.

use std::path::Path;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use manifold_config::AuthConfig;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// Why the configured keys could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key file could not be read.
    #[error("cannot read key file {path}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not a JSON JWK set.
    #[error("{what} is not a JSON array of JWKs or a {{\"keys\": [...]}} object")]
    Format {
        /// Which setting.
        what: &'static str,
    },
    /// One key is unusable.
    #[error("{what}: key {index}: {reason}")]
    Key {
        /// Which setting.
        what: &'static str,
        /// Position in the set.
        index: usize,
        /// What is wrong.
        reason: String,
    },
}

/// A public key that verifies tokens: its `kid`, algorithm and key material.
#[derive(Clone)]
pub struct PublicKey {
    /// Key id, matched against the token header's `kid`.
    pub kid: Option<String>,
    /// The one algorithm this key verifies.
    pub algorithm: Algorithm,
    /// The key.
    pub key: DecodingKey,
}

struct Signer {
    kid: String,
    algorithm: Algorithm,
    key: EncodingKey,
}

/// The configured asymmetric keys. Empty when none are configured: tokens are then HS256 with
/// the project secret and the published JWK set is empty, as Supabase's legacy mode.
#[derive(Default)]
pub struct SigningKeys {
    signer: Option<Signer>,
    published: Vec<Value>,
    verifying: Vec<PublicKey>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeys")
            .field(
                "signer",
                &self.signer.as_ref().map(|s| (&s.kid, s.algorithm)),
            )
            .field("published", &self.published.len())
            .field("verifying", &self.verifying.len())
            .finish()
    }
}

impl SigningKeys {
    /// Reads `signing_keys(_path)` and `trusted_jwks(_path)` from the settings.
    pub fn from_config(config: &AuthConfig) -> Result<Self, KeyError> {
        let mut keys = Self::default();
        let signing = read_setting(
            config.signing_keys.as_ref().map(|s| s.expose().to_owned()),
            config.signing_keys_path.as_deref(),
        )?;
        if let Some(text) = signing {
            for (index, jwk) in parse_set(&text, "auth.signing_keys")?.iter().enumerate() {
                keys.add_signing_jwk(jwk, index)?;
            }
        }
        let trusted = read_setting(
            config.trusted_jwks.clone(),
            config.trusted_jwks_path.as_deref(),
        )?;
        if let Some(text) = trusted {
            for (index, jwk) in parse_set(&text, "auth.trusted_jwks")?.iter().enumerate() {
                keys.verifying
                    .push(public_key(jwk, "auth.trusted_jwks", index)?);
            }
        }
        Ok(keys)
    }

    /// The public JWK set served at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> Value {
        json!({ "keys": self.published })
    }

    /// Every public key that verifies tokens (published and trusted).
    pub fn verification_keys(&self) -> &[PublicKey] {
        &self.verifying
    }

    /// The `kid` and algorithm user tokens are signed with, when asymmetric keys are configured.
    pub fn current(&self) -> Option<(&str, Algorithm)> {
        self.signer
            .as_ref()
            .map(|signer| (signer.kid.as_str(), signer.algorithm))
    }

    /// Signs `claims` with the current asymmetric key, or HS256 with `secret` without one.
    pub fn sign(
        &self,
        claims: &Value,
        secret: &str,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        match &self.signer {
            Some(signer) => {
                let mut header = Header::new(signer.algorithm);
                header.kid = Some(signer.kid.clone());
                jsonwebtoken::encode(&header, claims, &signer.key)
            }
            None => crate::keys::sign_hs256(claims, secret),
        }
    }

    fn add_signing_jwk(&mut self, jwk: &Map<String, Value>, index: usize) -> Result<(), KeyError> {
        const WHAT: &str = "auth.signing_keys";
        let fail = |reason: &str| KeyError::Key {
            what: WHAT,
            index,
            reason: reason.to_owned(),
        };
        let public = public_jwk(jwk).map_err(|reason| fail(&reason))?;
        let verifying = public_key(&public, WHAT, index)?;
        if jwk.contains_key("d") && self.signer.is_none() {
            let key = private_key(jwk).map_err(|reason| fail(&reason))?;
            self.signer = Some(Signer {
                kid: verifying.kid.clone().unwrap_or_default(),
                algorithm: verifying.algorithm,
                key,
            });
        }
        self.published.push(Value::Object(public));
        self.verifying.push(verifying);
        Ok(())
    }
}

fn read_setting(inline: Option<String>, path: Option<&Path>) -> Result<Option<String>, KeyError> {
    if let Some(text) = inline.filter(|text| !text.trim().is_empty()) {
        return Ok(Some(text));
    }
    match path {
        Some(path) => std::fs::read_to_string(path)
            .map(Some)
            .map_err(|source| KeyError::Read {
                path: path.display().to_string(),
                source,
            }),
        None => Ok(None),
    }
}

fn parse_set(text: &str, what: &'static str) -> Result<Vec<Map<String, Value>>, KeyError> {
    let value: Value = serde_json::from_str(text).map_err(|_| KeyError::Format { what })?;
    let list = match value {
        Value::Array(list) => list,
        Value::Object(mut object) => match object.remove("keys") {
            Some(Value::Array(list)) => list,
            _ => return Err(KeyError::Format { what }),
        },
        _ => return Err(KeyError::Format { what }),
    };
    list.into_iter()
        .map(|item| match item {
            Value::Object(map) => Ok(map),
            _ => Err(KeyError::Format { what }),
        })
        .collect()
}

fn text<'j>(jwk: &'j Map<String, Value>, name: &str) -> Result<&'j str, String> {
    jwk.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("missing `{name}`"))
}

/// The public members of a signing JWK, in the shape WebCrypto imports (`key_ops: ["verify"]`).
fn public_jwk(jwk: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    let kty = text(jwk, "kty")?;
    let mut public = Map::new();
    let (alg, members): (&str, &[&str]) = match kty {
        "EC" => {
            if text(jwk, "crv")? != "P-256" {
                return Err("only EC keys on P-256 (ES256) are supported".into());
            }
            ("ES256", &["crv", "x", "y"])
        }
        "RSA" => ("RS256", &["n", "e"]),
        other => {
            return Err(format!(
                "unsupported key type `{other}`; use EC P-256 or RSA"
            ));
        }
    };
    if let Some(given) = jwk.get("alg").and_then(Value::as_str)
        && given != alg
    {
        return Err(format!("`alg` {given} does not match the key type"));
    }
    public.insert("kty".into(), json!(kty));
    for member in members {
        public.insert((*member).into(), json!(text(jwk, member)?));
    }
    let kid = match jwk.get("kid").and_then(Value::as_str) {
        Some(kid) => kid.to_owned(),
        None => thumbprint(&public),
    };
    public.insert("kid".into(), json!(kid));
    public.insert("alg".into(), json!(alg));
    public.insert("use".into(), json!("sig"));
    public.insert("key_ops".into(), json!(["verify"]));
    public.insert("ext".into(), json!(true));
    Ok(public)
}

/// A stable key id for a JWK without one: a hash of its public members.
fn thumbprint(public: &Map<String, Value>) -> String {
    let digest = Sha256::digest(Value::Object(public.clone()).to_string().as_bytes());
    hex::encode(&digest[..8])
}

fn public_key(
    jwk: &Map<String, Value>,
    what: &'static str,
    index: usize,
) -> Result<PublicKey, KeyError> {
    let fail = |reason: String| KeyError::Key {
        what,
        index,
        reason,
    };
    let mut jwk = jwk.clone();
    // jsonwebtoken's JWK type does not know every optional member WebCrypto writes.
    jwk.retain(|key, _| {
        matches!(
            key.as_str(),
            "kty" | "kid" | "alg" | "use" | "key_ops" | "crv" | "x" | "y" | "n" | "e"
        )
    });
    let algorithm = match (
        jwk.get("kty").and_then(Value::as_str),
        jwk.get("crv").and_then(Value::as_str),
        jwk.get("alg").and_then(Value::as_str),
    ) {
        (_, _, Some(alg)) => alg
            .parse::<Algorithm>()
            .map_err(|_| fail(format!("unsupported alg `{alg}`")))?,
        (Some("EC"), Some("P-256"), None) => Algorithm::ES256,
        (Some("EC"), Some("P-384"), None) => Algorithm::ES384,
        (Some("RSA"), _, None) => Algorithm::RS256,
        (Some("OKP"), _, None) => Algorithm::EdDSA,
        _ => return Err(fail("cannot tell the key's algorithm".into())),
    };
    if matches!(
        algorithm,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    ) {
        return Err(fail("symmetric keys cannot be listed here".into()));
    }
    let parsed: Jwk = serde_json::from_value(Value::Object(jwk.clone()))
        .map_err(|error| fail(format!("not a valid JWK: {error}")))?;
    let key = DecodingKey::from_jwk(&parsed).map_err(|error| fail(error.to_string()))?;
    Ok(PublicKey {
        kid: jwk.get("kid").and_then(Value::as_str).map(str::to_owned),
        algorithm,
        key,
    })
}

fn decode_member(jwk: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(text(jwk, name)?.trim_end_matches('='))
        .map_err(|_| format!("`{name}` is not base64url"))
}

fn private_key(jwk: &Map<String, Value>) -> Result<EncodingKey, String> {
    match text(jwk, "kty")? {
        "EC" => {
            let d = decode_member(jwk, "d")?;
            let mut point = vec![4u8];
            point.extend(decode_member(jwk, "x")?);
            point.extend(decode_member(jwk, "y")?);
            let pair = EcdsaKeyPair::from_private_key_and_public_key(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &d,
                &point,
            )
            .map_err(|_| "the EC private key does not match its public point".to_owned())?;
            let pkcs8 = pair
                .to_pkcs8v1()
                .map_err(|_| "cannot encode the EC key".to_owned())?;
            Ok(EncodingKey::from_ec_der(pkcs8.as_ref()))
        }
        "RSA" => {
            let mut members = Vec::new();
            for name in ["n", "e", "d", "p", "q", "dp", "dq", "qi"] {
                members.push(decode_member(jwk, name)?);
            }
            let der = rsa_private_key_der(&members);
            aws_lc_rs::rsa::KeyPair::from_der(&der)
                .map_err(|_| "the RSA private key is inconsistent".to_owned())?;
            Ok(EncodingKey::from_rsa_der(&der))
        }
        other => Err(format!("unsupported key type `{other}`")),
    }
}

/// PKCS#1 `RSAPrivateKey` DER from the JWK members n, e, d, p, q, dp, dq, qi.
fn rsa_private_key_der(members: &[Vec<u8>]) -> Vec<u8> {
    let mut body = der_integer(&[0]);
    for member in members {
        body.extend(der_integer(member));
    }
    der_tagged(0x30, &body)
}

fn der_integer(bytes: &[u8]) -> Vec<u8> {
    let trimmed: &[u8] = {
        let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
        &bytes[start..]
    };
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    // A leading 1 bit would make the integer negative.
    if trimmed.first().is_none_or(|&b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(trimmed);
    der_tagged(0x02, &content)
}

fn der_tagged(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let len_bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | len_bytes.len() as u8);
        out.extend(len_bytes);
    }
    out.extend_from_slice(content);
    out
}

/// A new ES256 signing key as a private JWK with `kid`, e.g. for tests or `manifold` tooling.
pub fn generate_es256_jwk(kid: &str) -> Result<Value, KeyError> {
    let fail = |reason: &str| KeyError::Key {
        what: "generated key",
        index: 0,
        reason: reason.to_owned(),
    };
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
        .map_err(|_| fail("key generation failed"))?;
    let d: aws_lc_rs::encoding::EcPrivateKeyBin<'static> =
        aws_lc_rs::encoding::AsBigEndian::as_be_bytes(&pair.private_key())
            .map_err(|_| fail("cannot export the private scalar"))?;
    let public = aws_lc_rs::signature::KeyPair::public_key(&pair)
        .as_ref()
        .to_vec();
    let (x, y) = public
        .get(1..33)
        .zip(public.get(33..65))
        .ok_or_else(|| fail("unexpected public key encoding"))?;
    Ok(json!({
        "kty": "EC",
        "crv": "P-256",
        "alg": "ES256",
        "kid": kid,
        "use": "sig",
        "key_ops": ["sign", "verify"],
        "d": URL_SAFE_NO_PAD.encode(d.as_ref()),
        "x": URL_SAFE_NO_PAD.encode(x),
        "y": URL_SAFE_NO_PAD.encode(y),
    }))
}

#[cfg(test)]
mod tests {
    use manifold_config::Secret;

    use super::*;
    use crate::jwt::JwtVerifier;

    fn config_with(keys: Value) -> AuthConfig {
        AuthConfig {
            signing_keys: Some(Secret::new(keys.to_string())),
            ..AuthConfig::default()
        }
    }

    #[test]
    fn no_keys_means_hs256_and_an_empty_set() {
        let keys = SigningKeys::from_config(&AuthConfig::default()).unwrap();
        assert_eq!(keys.jwks(), json!({"keys": []}));
        assert!(keys.current().is_none());
        let token = keys
            .sign(&json!({"sub": "x"}), "s".repeat(32).as_str())
            .unwrap();
        assert_eq!(
            jsonwebtoken::decode_header(&token).unwrap().alg,
            Algorithm::HS256
        );
    }

    #[test]
    fn es256_key_signs_and_publishes_only_public_members() {
        let old = generate_es256_jwk("old").unwrap();
        let mut old_public = old.clone();
        old_public.as_object_mut().unwrap().remove("d");
        let new = generate_es256_jwk("new").unwrap();
        let keys =
            SigningKeys::from_config(&config_with(json!({"keys": [new, old_public]}))).unwrap();
        assert_eq!(keys.current(), Some(("new", Algorithm::ES256)));
        let published = keys.jwks();
        let list = published["keys"].as_array().unwrap();
        assert_eq!(list.len(), 2);
        for key in list {
            assert!(key.get("d").is_none(), "private member published");
            assert_eq!(key["key_ops"], json!(["verify"]));
        }
        let token = keys
            .sign(&json!({"sub": "u"}), "unused-secret-unused-secret-unused")
            .unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(
            (header.alg, header.kid.as_deref()),
            (Algorithm::ES256, Some("new"))
        );

        let mut verifier = JwtVerifier::hs256("unused-secret-unused-secret-unused", None);
        for key in keys.verification_keys() {
            verifier.add_public_key(key.clone());
        }
        assert_eq!(verifier.verify(&token).unwrap()["sub"], "u");
        // A token of the rotated-out key still verifies while that key stays listed.
        let old_only = SigningKeys::from_config(&config_with(json!([old]))).unwrap();
        let old_token = old_only.sign(&json!({"sub": "o"}), "x").unwrap();
        assert_eq!(verifier.verify(&old_token).unwrap()["sub"], "o");
    }

    #[test]
    fn bad_sets_are_reported() {
        assert!(matches!(
            SigningKeys::from_config(&config_with(json!("nope"))),
            Err(KeyError::Format { .. })
        ));
        assert!(matches!(
            SigningKeys::from_config(&config_with(json!([{"kty": "oct", "k": "abc"}]))),
            Err(KeyError::Key { .. })
        ));
    }

    #[test]
    fn rsa_der_integers_are_positive() {
        assert_eq!(der_integer(&[0x80]), vec![0x02, 0x02, 0x00, 0x80]);
        assert_eq!(der_integer(&[0, 0, 5]), vec![0x02, 0x01, 0x05]);
        assert_eq!(der_tagged(0x30, &[0; 200])[..3], [0x30, 0x81, 200]);
    }
}
