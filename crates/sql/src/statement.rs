//! SQL text with `$n` placeholders and the values that fill them.

use crate::cache::{SqlExpr, SqlType};
use crate::ident::{Ident, push_quoted};

/// One bound value. Each kind renders its own placeholder cast (`$1::text`, `$2::int8`), so the
/// server always knows the parameter type and the client never has to guess it; callers cast
/// further to the column type from the schema cache (`$1::text::uuid`).
#[derive(Debug, Clone, PartialEq)]
pub enum BindValue {
    /// A text value (filter values, JSON bodies, claims).
    Text(String),
    /// SQL NULL of type text.
    Null,
    /// A 64-bit integer (limits, offsets, counts).
    Int(i64),
    /// A boolean.
    Bool(bool),
}

impl BindValue {
    fn placeholder_cast(&self) -> &'static str {
        match self {
            Self::Text(_) | Self::Null => "::text",
            Self::Int(_) => "::int8",
            Self::Bool(_) => "::bool",
        }
    }
}

impl From<String> for BindValue {
    fn from(value: String) -> Self {
        Self::Text(value)
    }
}

impl From<&str> for BindValue {
    fn from(value: &str) -> Self {
        Self::Text(value.to_owned())
    }
}

impl From<Option<String>> for BindValue {
    fn from(value: Option<String>) -> Self {
        value.map_or(Self::Null, Self::Text)
    }
}

impl From<i64> for BindValue {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl From<bool> for BindValue {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

/// SQL text and its bind values, in placeholder order. Text only grows through
/// [`Statement::push_sql`] (static fragments), [`Statement::push_ident`] (cache names) and
/// [`Statement::push_bind`] (placeholders), so request data can never be spliced into SQL.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Statement {
    text: String,
    binds: Vec<BindValue>,
}

impl Statement {
    /// An empty statement.
    pub fn new() -> Self {
        Self::default()
    }

    /// A statement made of one fixed fragment.
    pub fn from_static(fragment: &'static str) -> Self {
        let mut statement = Self::new();
        statement.push_sql(fragment);
        statement
    }

    /// `prefix` followed by `statement` (e.g. `explain (…) ` before a query); placeholders keep
    /// their numbers.
    pub fn prefixed(prefix: &'static str, statement: Statement) -> Statement {
        Statement {
            text: format!("{prefix}{}", statement.text),
            binds: statement.binds,
        }
    }

    /// Appends fixed SQL; `&'static str` keeps request data out of the text.
    pub fn push_sql(&mut self, fragment: &'static str) {
        self.text.push_str(fragment);
    }

    /// Appends a quoted name that the schema cache vouches for.
    pub fn push_ident(&mut self, ident: &Ident) {
        push_quoted(&mut self.text, ident.as_str());
    }

    /// Appends `schema.name`, both quoted.
    pub fn push_qualified(&mut self, schema: &Ident, name: &Ident) {
        self.push_ident(schema);
        self.text.push('.');
        self.push_ident(name);
    }

    /// Appends a generated alias such as `t3`: a fixed prefix and a number, never request text.
    pub fn push_alias(&mut self, prefix: &'static str, number: usize) {
        self.text.push_str(prefix);
        self.text.push_str(&number.to_string());
    }

    /// Appends a default expression the schema cache vouches for.
    pub fn push_expr(&mut self, expr: &SqlExpr) {
        self.text.push('(');
        self.text.push_str(expr.as_str());
        self.text.push(')');
    }

    /// Appends a type the schema cache vouches for, e.g. after `::`.
    pub fn push_type(&mut self, sql_type: &SqlType) {
        self.text.push_str(sql_type.as_str());
    }

    /// Appends the next placeholder, typed by the value kind (`$3::text`), and keeps the value.
    pub fn push_bind(&mut self, value: impl Into<BindValue>) {
        let value = value.into();
        let cast = value.placeholder_cast();
        self.binds.push(value);
        self.text.push('$');
        self.text.push_str(&self.binds.len().to_string());
        self.text.push_str(cast);
    }

    /// The SQL text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The bind values in placeholder order.
    pub fn binds(&self) -> &[BindValue] {
        &self.binds
    }

    /// True when nothing has been written yet.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_are_numbered_and_typed() {
        let mut statement = Statement::from_static("select ");
        statement.push_bind("x");
        statement.push_sql(", ");
        statement.push_bind(3_i64);
        statement.push_sql(", ");
        statement.push_bind(None::<String>);
        assert_eq!(statement.text(), "select $1::text, $2::int8, $3::text");
        assert_eq!(
            statement.binds(),
            &[
                BindValue::Text("x".into()),
                BindValue::Int(3),
                BindValue::Null
            ]
        );
    }

    #[test]
    fn identifiers_are_quoted() {
        let mut statement = Statement::from_static("select ");
        statement.push_qualified(
            &Ident::from_catalog("public"),
            &Ident::from_catalog("My\"T"),
        );
        assert_eq!(statement.text(), "select \"public\".\"My\"\"T\"");
    }
}
