//! Sending [`BindValue`]s to PostgreSQL without boxing each one.

use std::error::Error;

use manifold_sql::BindValue;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

/// A borrowed bind value as a tokio-postgres parameter. The statement text types each
/// placeholder (`$1::text`, `$2::int8`, `$3::bool`), so the server-side type always matches.
#[derive(Debug)]
pub(crate) struct Param<'a>(pub(crate) &'a BindValue);

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match self.0 {
            BindValue::Text(text) => text.as_str().to_sql(ty, out),
            BindValue::Null => Ok(IsNull::Yes),
            BindValue::Int(number) => number.to_sql(ty, out),
            BindValue::Bool(flag) => flag.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        <&str as ToSql>::accepts(ty) || *ty == Type::INT8 || *ty == Type::BOOL
    }

    to_sql_checked!();
}

/// The parameters of a statement, ready for `query`.
pub(crate) fn params(binds: &[BindValue]) -> Vec<Param<'_>> {
    binds.iter().map(Param).collect()
}

/// The parameter slice tokio-postgres expects.
pub(crate) fn as_refs<'a>(params: &'a [Param<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    params
        .iter()
        .map(|param| param as &(dyn ToSql + Sync))
        .collect()
}
