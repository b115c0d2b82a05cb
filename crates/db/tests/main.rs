//! Database tests of manifold-db against the test run's throwaway cluster.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod domain;
mod migrations;
mod policy_lint;
mod request;
mod schema_cache;
mod seed;
