//! Rendering plans into statements.

mod expr;
mod read;

pub use read::{BodyKind, render_read};
