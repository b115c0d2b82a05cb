//! Tests of the manifold server: the gateway in-process, and the real binary's lifecycle.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod gateway;
mod lifecycle;
