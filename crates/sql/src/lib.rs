//! The vocabulary shared by the query translator and the database layer: the schema cache (what
//! the database contains), [`Ident`] (a name the cache vouches for) and [`Statement`] (SQL text
//! plus bind values). No I/O here.

pub mod cache;
mod ident;
mod statement;

pub use cache::{SchemaCache, SqlType};
pub use ident::Ident;
pub use statement::{BindValue, Statement};
