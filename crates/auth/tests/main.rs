//! Database and HTTP tests of manifold-auth: the real router on a test database.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod bad_input;
mod claims;
mod codes;
mod common;
mod flows;
mod hook;
mod keys;
mod limits;
mod links;
mod logout;
mod mfa;
mod refresh;
mod rls;
mod signup;
mod smtp;
