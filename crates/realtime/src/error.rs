//! Errors of realtime's own database work (catalog, authorizer, private channels, slot).

/// A failed catalog, authorization or slot query.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// PostgreSQL refused or the connection broke.
    #[error("database error")]
    Postgres(#[from] tokio_postgres::Error),
    /// No admin connection could be had.
    #[error("no database connection available")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// A relation OID that does not exist (dropped meanwhile).
    #[error("relation {0} does not exist")]
    UnknownRelation(u32),
}

impl StoreError {
    /// PostgreSQL's own message for user-caused errors (bad filter values), if any.
    pub(crate) fn database_message(&self) -> Option<&str> {
        match self {
            Self::Postgres(error) => error.as_db_error().map(|db| db.message()),
            _ => None,
        }
    }
}
