//! Everything that talks to PostgreSQL: the API pool and per-request transactions, migrations,
//! SQLSTATE mapping, and the embedded cluster supervisor.

pub mod bootstrap;
pub mod embedded;
mod error;
pub mod migrate;
mod param;
mod pool;
mod request;
pub mod schema_cache;
pub mod seed;

pub use error::{DbError, status_for_sqlstate};
pub use pool::{connect, create_pool};
pub use request::{Access, Db, RequestContext, RequestInfo, RequestTx};
pub use tokio_postgres::Row;
