//! The schema-cache model: relations, columns, relationships, functions.

use std::collections::HashMap;
use std::fmt;

use crate::ident::Ident;

/// A type as SQL text for casts (`integer`, `text[]`, `public.bottle_status`), taken from the
/// catalog's `format_type`. Only the cache makes one, so a type name from a request can reach SQL
/// only after it was found in the catalog.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SqlType(String);

impl SqlType {
    pub(crate) fn from_catalog(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The SQL text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SqlType({})", self.0)
    }
}

/// A column default expression as the catalog prints it (`nextval('public.t_id_seq'::regclass)`,
/// `now()`). Only the cache makes one; it reaches SQL only for `Prefer: missing=default`.
#[derive(Clone, PartialEq, Eq)]
pub struct SqlExpr(String);

impl SqlExpr {
    pub(crate) fn from_catalog(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The SQL text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SqlExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SqlExpr({})", self.0)
    }
}

/// `schema.name` of a relation or function.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QualifiedName {
    /// Schema.
    pub schema: Ident,
    /// Name.
    pub name: Ident,
}

impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// What kind of relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelationKind {
    /// Ordinary table.
    Table,
    /// Partitioned table.
    PartitionedTable,
    /// View.
    View,
    /// Materialized view.
    MaterializedView,
    /// Foreign table.
    ForeignTable,
}

impl RelationKind {
    pub(crate) fn from_relkind(kind: &str) -> Self {
        match kind {
            "p" => Self::PartitionedTable,
            "v" => Self::View,
            "m" => Self::MaterializedView,
            "f" => Self::ForeignTable,
            _ => Self::Table,
        }
    }

    /// Views and materialized views.
    pub fn is_view(self) -> bool {
        matches!(self, Self::View | Self::MaterializedView)
    }
}

/// How a column's type behaves in filters and JSON paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// `json`.
    Json,
    /// `jsonb`.
    Jsonb,
    /// `tsvector`.
    TsVector,
    /// Any array.
    Array,
    /// Any range or multirange.
    Range,
    /// Composite.
    Composite,
    /// Everything else.
    Scalar,
}

impl ValueKind {
    pub(crate) fn from_catalog(base_type: &str, category: &str) -> Self {
        match (base_type, category) {
            ("json", _) => Self::Json,
            ("jsonb", _) => Self::Jsonb,
            ("tsvector", _) => Self::TsVector,
            (_, "A") => Self::Array,
            (_, "R") => Self::Range,
            (_, "C") => Self::Composite,
            _ => Self::Scalar,
        }
    }

    /// `json` or `jsonb`.
    pub fn is_json(self) -> bool {
        matches!(self, Self::Json | Self::Jsonb)
    }
}

/// One column of a relation.
#[derive(Debug, Clone)]
pub struct Column {
    /// Name, case preserved.
    pub name: Ident,
    /// Attribute number (positions skip dropped columns).
    pub attnum: i16,
    /// Type for casting request values.
    pub sql_type: SqlType,
    /// Type with modifiers, as `format_type` shows it.
    pub display_type: String,
    /// Behaviour in filters and paths.
    pub kind: ValueKind,
    /// Nullable.
    pub nullable: bool,
    /// Default expression, for display.
    pub default: Option<String>,
    /// Default expression, for SQL.
    pub default_expr: Option<SqlExpr>,
    /// Identity or generated: never written by clients.
    pub generated: bool,
    /// Character limit.
    pub max_length: Option<i32>,
    /// Enum labels.
    pub enum_values: Vec<String>,
    /// Comment.
    pub description: Option<String>,
}

/// A table, view or other relation of an exposed schema.
#[derive(Debug, Clone)]
pub struct Relation {
    /// pg_class oid.
    pub oid: u32,
    /// Schema and name.
    pub qualified: QualifiedName,
    /// Kind.
    pub kind: RelationKind,
    /// Columns in table order.
    pub columns: Vec<Column>,
    pub(crate) column_index: HashMap<String, usize>,
    /// Primary-key column names (inferred from base tables for views).
    pub primary_key: Vec<String>,
    /// Accepts INSERT.
    pub insertable: bool,
    /// Accepts UPDATE.
    pub updatable: bool,
    /// Accepts DELETE.
    pub deletable: bool,
    /// Comment.
    pub description: Option<String>,
}

impl Relation {
    /// Schema identifier.
    pub fn schema(&self) -> &Ident {
        &self.qualified.schema
    }

    /// Name identifier.
    pub fn name(&self) -> &Ident {
        &self.qualified.name
    }

    /// A column by exact name.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.column_index
            .get(name)
            .map(|&index| &self.columns[index])
    }
}

/// How many rows an embedded resource yields per parent row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cardinality {
    /// Parent has a foreign key to the target: object or null.
    ManyToOne,
    /// Target has a foreign key to the parent: array.
    OneToMany,
    /// A foreign key whose columns are also a unique key: object or null, either side.
    OneToOne,
    /// Through a junction table: array.
    ManyToMany,
}

impl Cardinality {
    /// To-one embeds are objects (or null); the others are arrays.
    pub fn is_to_one(self) -> bool {
        matches!(self, Self::ManyToOne | Self::OneToOne)
    }

    /// PostgREST's name, as used in error details.
    pub fn label(self) -> &'static str {
        match self {
            Self::ManyToOne => "many-to-one",
            Self::OneToMany => "one-to-many",
            Self::OneToOne => "one-to-one",
            Self::ManyToMany => "many-to-many",
        }
    }
}

/// The junction of a many-to-many relationship.
#[derive(Debug, Clone)]
pub struct Junction {
    /// The junction table.
    pub relation: QualifiedName,
    /// Its foreign key to the source.
    pub source_constraint: String,
    /// Its foreign key to the target.
    pub target_constraint: String,
    /// (junction column, source column) pairs.
    pub source_columns: Vec<(Ident, Ident)>,
    /// (junction column, target column) pairs.
    pub target_columns: Vec<(Ident, Ident)>,
}

/// A way to embed `target` from `source`.
#[derive(Debug, Clone)]
pub struct Relationship {
    /// The relation embedding.
    pub source: QualifiedName,
    /// The embedded relation.
    pub target: QualifiedName,
    /// Shape of the embed.
    pub cardinality: Cardinality,
    /// The foreign key's name (for M2M: the junction table's name).
    pub constraint: String,
    /// (source column, target column) pairs of the join, for direct relationships.
    pub columns: Vec<(Ident, Ident)>,
    /// The junction of a many-to-many relationship.
    pub junction: Option<Junction>,
    /// True when the foreign key is declared on the source (many-to-one, or the owning side of
    /// a one-to-one).
    pub forward: bool,
}

impl Relationship {
    /// A relationship of a table with itself.
    pub fn is_self(&self) -> bool {
        self.source == self.target
    }
}

/// Function volatility.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Volatility {
    /// `IMMUTABLE`.
    Immutable,
    /// `STABLE`.
    Stable,
    /// `VOLATILE`.
    Volatile,
}

/// An input parameter of a function.
#[derive(Debug, Clone)]
pub struct FunctionParam {
    /// Name; empty for an unnamed parameter.
    pub name: String,
    /// Quoted-ready name (when named).
    pub ident: Option<Ident>,
    /// Type.
    pub sql_type: SqlType,
    /// Has a default, so it may be omitted.
    pub has_default: bool,
    /// The VARIADIC parameter.
    pub variadic: bool,
}

/// What a function returns.
#[derive(Debug, Clone)]
pub enum ReturnType {
    /// `void`.
    Void,
    /// A scalar (or array) value, `setof` when `set`.
    Scalar {
        /// The type.
        sql_type: SqlType,
        /// `SETOF`.
        set: bool,
    },
    /// Rows: a table type, `TABLE(...)`, OUT parameters or `record`.
    Composite {
        /// The table whose row type it returns, which allows embedding from the result.
        relation: Option<QualifiedName>,
        /// `SETOF`/`TABLE`.
        set: bool,
    },
}

/// A function of an exposed schema.
#[derive(Debug, Clone)]
pub struct Function {
    /// pg_proc oid.
    pub oid: u32,
    /// Schema and name.
    pub qualified: QualifiedName,
    /// Input parameters in order.
    pub params: Vec<FunctionParam>,
    /// Return shape.
    pub returns: ReturnType,
    /// Volatility.
    pub volatility: Volatility,
    /// `SET` clauses.
    pub settings: Vec<(String, String)>,
    /// Comment.
    pub description: Option<String>,
    /// The columns of rows returned through OUT or TABLE parameters, as a relation so results
    /// can be selected, filtered and ordered like a table's.
    pub result_columns: Option<Relation>,
}
