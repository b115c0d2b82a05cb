//! The vocabulary shared by the query translator and the database layer: [`Statement`] (SQL text
//! plus bind values) and [`Ident`] (a name the schema cache vouches for). No I/O here.

mod ident;
mod statement;

pub use ident::Ident;
pub use statement::{BindValue, Statement};
