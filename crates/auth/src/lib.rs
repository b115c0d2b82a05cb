//! Authentication shared by every API: project keys, JWT verification, the gateway's `apikey`
//! rule and the caller (role + claims) each request runs as.

pub mod api;
pub mod gateway;
pub mod jwt;
pub mod keys;

pub use gateway::{ApiKeyRole, Caller, Gatekeeper, GatewayError};
pub use jwt::{JwtError, JwtVerifier};
pub use keys::ProjectKeys;
