//! The typed request: what the query string, headers and path said, before anything is looked
//! up in the schema cache.

/// `->` (JSON) or `->>` (text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrow {
    /// `->`: the result stays JSON.
    Json,
    /// `->>`: the result is text.
    Text,
}

/// A JSON object key or array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonKey {
    /// Object key.
    Name(String),
    /// Array index (negative counts from the end).
    Index(i64),
}

/// One `->key` step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonStep {
    /// Arrow kind.
    pub arrow: Arrow,
    /// Key or index.
    pub key: JsonKey,
}

/// A column, possibly followed by a JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Column (or, in trees, embed) name.
    pub name: String,
    /// JSON path steps.
    pub path: Vec<JsonStep>,
}

impl Field {
    /// The output key PostgREST gives a selected field: the last key name of its path, else the
    /// column name.
    pub fn default_label(&self) -> String {
        self.path
            .iter()
            .rev()
            .find_map(|step| match &step.key {
                JsonKey::Name(name) => Some(name.clone()),
                JsonKey::Index(_) => None,
            })
            .unwrap_or_else(|| self.name.clone())
    }
}

/// Aggregate functions allowed in `select`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateFunction {
    /// `count()` or `col.count()`.
    Count,
    /// `sum()`.
    Sum,
    /// `avg()`.
    Avg,
    /// `min()`.
    Min,
    /// `max()`.
    Max,
}

impl AggregateFunction {
    /// By name.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "count" => Self::Count,
            "sum" => Self::Sum,
            "avg" => Self::Avg,
            "min" => Self::Min,
            "max" => Self::Max,
            _ => return None,
        })
    }

    /// The SQL call opening, e.g. `sum(`.
    pub fn sql_call(self) -> &'static str {
        match self {
            Self::Count => "count(",
            Self::Sum => "sum(",
            Self::Avg => "avg(",
            Self::Min => "min(",
            Self::Max => "max(",
        }
    }

    /// The default output key.
    pub fn name(self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::Sum => "sum",
            Self::Avg => "avg",
            Self::Min => "min",
            Self::Max => "max",
        }
    }
}

/// A selected column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSelect {
    /// Column and JSON path; `None` for a bare `count()`.
    pub field: Option<Field>,
    /// `alias:`.
    pub alias: Option<String>,
    /// `::type` before any aggregate.
    pub cast: Option<String>,
    /// `.sum()` and friends.
    pub aggregate: Option<AggregateFunction>,
    /// `::type` after the aggregate.
    pub aggregate_cast: Option<String>,
}

/// `!inner` / `!left`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinType {
    /// Parents without a matching embedded row are removed.
    Inner,
    /// The default: parents stay, the embed is null or `[]`.
    Left,
}

/// An embedded resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedSelect {
    /// Relation, constraint or column name written before `(`.
    pub target: String,
    /// `alias:`.
    pub alias: Option<String>,
    /// `!hint`.
    pub hint: Option<String>,
    /// `!inner` / `!left`.
    pub join: Option<JoinType>,
    /// `...` spread.
    pub spread: bool,
    /// What to select from it.
    pub items: Vec<SelectItem>,
}

impl EmbedSelect {
    /// The key of the embed in the output, also how filters address it.
    pub fn label(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.target)
    }
}

/// One item of `select=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectItem {
    /// `*`.
    Star,
    /// A column.
    Field(FieldSelect),
    /// An embedded resource.
    Embed(EmbedSelect),
}

/// Comparison and pattern operators that take one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimpleOperator {
    /// `eq`.
    Eq,
    /// `neq`.
    Neq,
    /// `gt`.
    Gt,
    /// `gte`.
    Gte,
    /// `lt`.
    Lt,
    /// `lte`.
    Lte,
    /// `like`.
    Like,
    /// `ilike`.
    Ilike,
    /// `match`.
    Match,
    /// `imatch`.
    Imatch,
    /// `isdistinct`.
    IsDistinct,
    /// `cs`.
    Contains,
    /// `cd`.
    ContainedBy,
    /// `ov`.
    Overlaps,
    /// `sl`.
    StrictlyLeft,
    /// `sr`.
    StrictlyRight,
    /// `nxr`.
    NotExtendsRight,
    /// `nxl`.
    NotExtendsLeft,
    /// `adj`.
    Adjacent,
}

impl SimpleOperator {
    /// By URL name.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "eq" => Self::Eq,
            "neq" => Self::Neq,
            "gt" => Self::Gt,
            "gte" => Self::Gte,
            "lt" => Self::Lt,
            "lte" => Self::Lte,
            "like" => Self::Like,
            "ilike" => Self::Ilike,
            "match" => Self::Match,
            "imatch" => Self::Imatch,
            "isdistinct" => Self::IsDistinct,
            "cs" => Self::Contains,
            "cd" => Self::ContainedBy,
            "ov" => Self::Overlaps,
            "sl" => Self::StrictlyLeft,
            "sr" => Self::StrictlyRight,
            "nxr" => Self::NotExtendsRight,
            "nxl" => Self::NotExtendsLeft,
            "adj" => Self::Adjacent,
            _ => return None,
        })
    }

    /// The SQL operator, with spaces.
    pub fn sql(self) -> &'static str {
        match self {
            Self::Eq => " = ",
            Self::Neq => " <> ",
            Self::Gt => " > ",
            Self::Gte => " >= ",
            Self::Lt => " < ",
            Self::Lte => " <= ",
            Self::Like => " like ",
            Self::Ilike => " ilike ",
            Self::Match => " ~ ",
            Self::Imatch => " ~* ",
            Self::IsDistinct => " is distinct from ",
            Self::Contains => " @> ",
            Self::ContainedBy => " <@ ",
            Self::Overlaps => " && ",
            Self::StrictlyLeft => " << ",
            Self::StrictlyRight => " >> ",
            Self::NotExtendsRight => " &< ",
            Self::NotExtendsLeft => " &> ",
            Self::Adjacent => " -|- ",
        }
    }

    /// Operators that accept the `(any)` / `(all)` modifier.
    pub fn quantifiable(self) -> bool {
        matches!(
            self,
            Self::Eq
                | Self::Gt
                | Self::Gte
                | Self::Lt
                | Self::Lte
                | Self::Like
                | Self::Ilike
                | Self::Match
                | Self::Imatch
        )
    }

    /// `like` and `ilike` read `*` as `%`.
    pub fn is_like(self) -> bool {
        matches!(self, Self::Like | Self::Ilike)
    }
}

/// `(any)` or `(all)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantifier {
    /// `op any(array)`.
    Any,
    /// `op all(array)`.
    All,
}

/// The value of `is.`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsValue {
    /// `is.null`.
    Null,
    /// `is.not_null`.
    NotNull,
    /// `is.true`.
    True,
    /// `is.false`.
    False,
    /// `is.unknown`.
    Unknown,
}

/// Full-text search flavours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FtsOperator {
    /// `fts`: `to_tsquery`.
    Fts,
    /// `plfts`: `plainto_tsquery`.
    Plain,
    /// `phfts`: `phraseto_tsquery`.
    Phrase,
    /// `wfts`: `websearch_to_tsquery`.
    Websearch,
}

impl FtsOperator {
    /// By URL name.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "fts" => Self::Fts,
            "plfts" => Self::Plain,
            "phfts" => Self::Phrase,
            "wfts" => Self::Websearch,
            _ => return None,
        })
    }

    /// The query-building function call opening, e.g. `to_tsquery(`.
    pub fn sql_call(self) -> &'static str {
        match self {
            Self::Fts => "to_tsquery(",
            Self::Plain => "plainto_tsquery(",
            Self::Phrase => "phraseto_tsquery(",
            Self::Websearch => "websearch_to_tsquery(",
        }
    }
}

/// What a filter tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// `op.value`.
    Simple(SimpleOperator, String),
    /// `op(any).{a,b}` / `op(all).{a,b}`: the value is an array literal.
    Quantified(SimpleOperator, Quantifier, String),
    /// `in.(a,b)`.
    In(Vec<String>),
    /// `is.null` and friends.
    Is(IsValue),
    /// `fts(config).query`.
    Fts(FtsOperator, Option<String>, String),
}

/// `field=[not.]operation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// The column (or embed, for `is.null`).
    pub field: Field,
    /// `not.`.
    pub negated: bool,
    /// The test.
    pub operation: Operation,
}

/// `and` / `or`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogicOperator {
    /// `and`.
    And,
    /// `or`.
    Or,
}

/// A logic tree from `or=(…)` / `and=(…)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogicTree {
    /// A nested `[not.]and(…)` / `[not.]or(…)`.
    Node {
        /// `and` or `or`.
        operator: LogicOperator,
        /// `not.`.
        negated: bool,
        /// Children.
        children: Vec<LogicTree>,
    },
    /// A filter.
    Leaf(Filter),
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `asc`.
    Asc,
    /// `desc`.
    Desc,
}

/// Null placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nulls {
    /// `nullsfirst`.
    First,
    /// `nullslast`.
    Last,
}

/// One `order=` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderTerm {
    /// `rel(col)`: order by a column of a to-one embed.
    pub relation: Option<String>,
    /// The column and JSON path.
    pub field: Field,
    /// Direction, when given.
    pub direction: Option<Direction>,
    /// Null placement, when given.
    pub nulls: Option<Nulls>,
}
