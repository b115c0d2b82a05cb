//! `/rest/v1` against a real database with PostgREST's configuration knobs changed.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod knobs;
mod transactions;
