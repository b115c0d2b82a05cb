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
    /// Whether the database could not answer right now (retry later), as opposed to a
    /// statement it refused (a policy that raised, a bad literal): no connection, a broken
    /// one, and the SQLSTATEs of connection exceptions (08), serialization failures and
    /// deadlocks (40), insufficient resources (53), server shutdown (57P01–57P05) and system
    /// errors (58).
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            Self::Pool(_) => true,
            Self::UnknownRelation(_) => false,
            Self::Postgres(error) => match error.as_db_error() {
                None => true,
                Some(db) => {
                    let code = db.code().code();
                    ["08", "40", "53", "58"]
                        .iter()
                        .any(|class| code.starts_with(class))
                        || matches!(code, "57P01" | "57P02" | "57P03" | "57P04" | "57P05")
                }
            },
        }
    }

    /// PostgreSQL's own message for user-caused errors (bad filter values), if any.
    pub(crate) fn database_message(&self) -> Option<&str> {
        match self {
            Self::Postgres(error) => error.as_db_error().map(|db| db.message()),
            _ => None,
        }
    }
}
