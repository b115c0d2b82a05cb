//! The `manifold` server: one process serving the Supabase APIs over PostgreSQL. `main.rs` parses
//! the command line; everything else lives here so tests run the same router.

mod banner;
mod health;
mod router;
pub mod secrets;
pub mod seed;
pub mod start;
mod state;

pub use router::app;
pub use start::{build_state, prepare, serve};
pub use state::AppState;
