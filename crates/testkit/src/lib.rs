//! Test support shared by every crate's database tests.
//!
//! - [`cluster`]: one throwaway PostgreSQL for the whole test run (all nextest processes of one
//!   run share it, keyed by `NEXTEST_RUN_ID`; plain `cargo test` gets one per process), started
//!   from the installed binaries as the `postgres` OS user when running as root, with a template
//!   database holding every migration. It stops and its directory is removed when the run ends.
//! - [`TestDb::create`]: a fresh database per test, copied from the template.
//! - [`TestServer::start`]: the real router on 127.0.0.1:0 against a test database.
//! - [`mint_jwt`]: tokens signed with a test server's secret.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test support: failing loudly is the point"
)]

mod cluster;
mod server;

pub use cluster::{TestCluster, TestDb, cluster, free_port};
pub use manifold_config::{Config, EtagAlgorithm, TxEnd};
pub use server::{TestServer, mint_jwt};
