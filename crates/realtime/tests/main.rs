//! Database tests of realtime: a real server, a real replication slot per test, a websocket
//! client speaking the Phoenix protocol.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub,
    reason = "tests: failing loudly is the point"
)]

mod changes;
mod domain;
mod durable;
mod socket;
mod support;
