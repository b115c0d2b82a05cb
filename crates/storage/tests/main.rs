//! Storage tests against a throwaway PostgreSQL: the schema and its helpers, row/blob
//! consistency (including a killed server), and the S3 backend against a real S3-protocol
//! server on loopback.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: failing loudly is the point"
)]

mod consistency;
mod s3;
mod schema;
mod support;
mod uploads;
