//! How `/auth/v1` talks to PostgreSQL: every request runs as `supabase_auth_admin` (the owner of
//! the `auth` schema, as GoTrue connects on Supabase) in one transaction, with statements written
//! as static templates whose `$n` placeholders become typed binds.

use manifold_db::{Access, Db, RequestContext, RequestInfo, RequestTx, Row};
use manifold_sql::{BindValue, Statement};

use super::error::AuthError;

/// The role `/auth/v1` statements run as.
const AUTH_ROLE: &str = "supabase_auth_admin";
/// Claims of the auth service's own transactions (no end user).
const AUTH_CLAIMS: &str = r#"{"role":"supabase_auth_admin"}"#;

/// Builds a statement from a static template: each `$n` becomes a typed placeholder for
/// `binds[n - 1]` (cast further in the template, e.g. `$1::uuid`). The text stays static: only
/// slices of `template` are appended, so request data can only ever be a bind.
pub(crate) fn query(template: &'static str, binds: &[BindValue]) -> Statement {
    let mut statement = Statement::new();
    let bytes = template.as_bytes();
    let mut start = 0;
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'$' && bytes.get(index + 1).is_some_and(u8::is_ascii_digit) {
            let digits_end = bytes[index + 1..]
                .iter()
                .position(|b| !b.is_ascii_digit())
                .map_or(bytes.len(), |offset| index + 1 + offset);
            let number: usize = template[index + 1..digits_end].parse().unwrap_or(0);
            statement.push_sql(&template[start..index]);
            match number.checked_sub(1).and_then(|n| binds.get(n)) {
                Some(value) => statement.push_bind(value.clone()),
                // A template naming a bind it was not given is a programming error: make the
                // statement fail loudly in the database rather than bind the wrong value.
                None => statement.push_sql("$0"),
            }
            start = digits_end;
            index = digits_end;
        } else {
            index += 1;
        }
    }
    statement.push_sql(&template[start..]);
    statement
}

/// Bind values from a list of expressions of different types.
macro_rules! binds {
    ($($value:expr),* $(,)?) => {
        &[$(manifold_sql::BindValue::from($value)),*]
    };
}
pub(crate) use binds;

/// The context of the auth service's own transactions.
fn context() -> RequestContext {
    RequestContext::new(
        AUTH_ROLE,
        "auth, extensions".to_owned(),
        RequestInfo {
            claims: AUTH_CLAIMS.to_owned(),
            ..RequestInfo::default()
        },
        Access::ReadWrite,
    )
}

/// Opens a transaction as the auth role.
pub(crate) async fn begin(db: &Db) -> Result<Tx, AuthError> {
    Ok(Tx(db.begin(&context()).await?))
}

/// Runs one statement in its own transaction (one round trip).
pub(crate) async fn run(db: &Db, statement: &Statement) -> Result<Vec<Row>, AuthError> {
    Ok(db.run(&context(), statement).await?)
}

/// An auth transaction; dropping it rolls back.
pub(crate) struct Tx(RequestTx);

impl Tx {
    /// At most one row.
    pub(crate) async fn opt(&self, statement: &Statement) -> Result<Option<Row>, AuthError> {
        Ok(self.0.query_opt(statement).await?)
    }

    /// Exactly one row.
    pub(crate) async fn one(&self, statement: &Statement) -> Result<Row, AuthError> {
        Ok(self.0.query_one(statement).await?)
    }

    /// Runs a statement for its effect.
    pub(crate) async fn exec(&self, statement: &Statement) -> Result<(), AuthError> {
        self.0.query(statement).await?;
        Ok(())
    }

    /// Commits.
    pub(crate) async fn commit(self) -> Result<(), AuthError> {
        Ok(self.0.commit().await?)
    }
}

/// Reads column `index` of `row`; a type mismatch is a bug on our side (500).
pub(crate) fn col<'r, T: tokio_postgres::types::FromSql<'r>>(
    row: &'r Row,
    index: usize,
) -> Result<T, AuthError> {
    row.try_get(index).map_err(AuthError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_become_typed_placeholders() {
        let statement = query(
            "select $1::uuid, $2, $1 where x = $3",
            binds!["a", 2_i64, true],
        );
        assert_eq!(
            statement.text(),
            "select $1::text::uuid, $2::int8, $3::text where x = $4::bool"
        );
        assert_eq!(statement.binds().len(), 4);
        assert_eq!(query("select 1", &[]).text(), "select 1");
    }
}
