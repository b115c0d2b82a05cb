//! Identifiers that may appear in SQL text.

use std::fmt;

/// A table, column, schema or function name taken from the database catalog. There is no public
/// constructor: only the schema cache (and trusted constants in this crate) make one, so request
/// text can never become an identifier without being looked up first.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ident(String);

impl Ident {
    /// Builds an identifier from catalog data. Crate-private on purpose.
    pub(crate) fn from_catalog(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    /// The name as stored in the catalog (case preserved).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name quoted for SQL text: `"a ""b"""`.
    pub fn quoted(&self) -> String {
        let mut out = String::with_capacity(self.0.len() + 2);
        push_quoted(&mut out, &self.0);
        out
    }
}

/// Appends `name` as a double-quoted SQL identifier.
pub(crate) fn push_quoted(out: &mut String, name: &str) {
    out.push('"');
    for ch in name.chars() {
        if ch == '"' {
            out.push('"');
        }
        out.push(ch);
    }
    out.push('"');
}

impl fmt::Debug for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ident({:?})", self.0)
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_case_and_doubles_quotes() {
        assert_eq!(
            Ident::from_catalog("CustomerListID").quoted(),
            "\"CustomerListID\""
        );
        assert_eq!(Ident::from_catalog("a\"b").quoted(), "\"a\"\"b\"");
    }
}
