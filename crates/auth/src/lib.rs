//! Authentication shared by every API: project keys, JWT signing and verification (HS256 and
//! ES256/RS256 with a JWK set), the gateway's `apikey` rule, the caller (role + claims) each
//! request runs as, and the GoTrue-compatible `/auth/v1` API.

pub mod api;
pub mod gateway;
pub mod jwt;
pub mod keys;
pub mod signing;

pub use gateway::{ApiKeyRole, Caller, Gatekeeper, GatewayError};
pub use jwt::{JwtError, JwtVerifier};
pub use keys::ProjectKeys;
