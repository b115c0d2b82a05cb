//! The schema cache: everything the translator needs to know about the database, built from one
//! catalog introspection. It is immutable; a reload builds a new one and swaps it whole.

pub mod catalog;
mod model;
mod relationship;

use std::collections::HashMap;

pub use catalog::{Catalog, INTROSPECTION_SQL, ViewColumnOrigin};
pub use model::{
    Cardinality, Column, Function, FunctionParam, Junction, QualifiedName, Relation, RelationKind,
    Relationship, ReturnType, SqlExpr, SqlType, ValueKind, Volatility,
};

use crate::ident::Ident;
use relationship::{Derivation, resolve_lineage, view_primary_key};

/// SQL spellings of built-in types that are not their catalog names.
const TYPE_ALIASES: &[(&str, &str)] = &[
    ("int", "int4"),
    ("integer", "int4"),
    ("smallint", "int2"),
    ("bigint", "int8"),
    ("real", "float4"),
    ("float", "float8"),
    ("double precision", "float8"),
    ("decimal", "numeric"),
    ("boolean", "bool"),
    ("character varying", "varchar"),
    ("character", "bpchar"),
    ("char", "bpchar"),
    ("time without time zone", "time"),
    ("time with time zone", "timetz"),
    ("timestamp without time zone", "timestamp"),
    ("timestamp with time zone", "timestamptz"),
];

/// Why a catalog document could not be turned into a cache.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The introspection JSON did not have the expected shape.
    #[error("schema introspection returned an unexpected document")]
    Document(#[from] serde_json::Error),
}

/// Everything known about the exposed schemas.
#[derive(Debug, Default)]
pub struct SchemaCache {
    schemas: Vec<String>,
    relations: HashMap<(String, String), Relation>,
    relationships: HashMap<(String, String), Vec<Relationship>>,
    functions: HashMap<(String, String), Vec<Function>>,
    types: HashMap<String, (SqlType, Option<SqlType>)>,
    role_settings: HashMap<String, Vec<(String, String)>>,
}

impl SchemaCache {
    /// Builds the cache from the introspection document and the view-column origins.
    pub fn build(
        schemas: &[String],
        catalog_json: &str,
        origins: &[ViewColumnOrigin],
    ) -> Result<Self, CacheError> {
        let catalog: Catalog = serde_json::from_str(catalog_json)?;
        Ok(Self::from_catalog(schemas, catalog, origins))
    }

    /// Builds the cache from an already parsed catalog.
    pub fn from_catalog(
        schemas: &[String],
        catalog: Catalog,
        origins: &[ViewColumnOrigin],
    ) -> Self {
        let lineage = resolve_lineage(origins);
        let mut by_oid = relations_by_oid(&catalog);
        let view_keys: Vec<(u32, Vec<String>)> = by_oid
            .values()
            .filter(|relation| relation.kind.is_view())
            .map(|view| (view.oid, view_primary_key(view, &catalog.keys, &lineage)))
            .collect();
        for (oid, key) in view_keys {
            if let Some(view) = by_oid.get_mut(&oid) {
                view.primary_key = key;
            }
        }
        let derived = Derivation {
            relations: &by_oid,
            foreign_keys: &catalog.foreign_keys,
            keys: &catalog.keys,
            lineage: &lineage,
        }
        .relationships();
        let mut relationships: HashMap<(String, String), Vec<Relationship>> = HashMap::new();
        for relationship in derived {
            relationships
                .entry(key_of(&relationship.source))
                .or_default()
                .push(relationship);
        }
        // Deterministic candidate order for ambiguity errors and hints.
        for list in relationships.values_mut() {
            list.sort_by(|a, b| {
                (&a.target, &a.constraint, a.forward).cmp(&(&b.target, &b.constraint, b.forward))
            });
        }
        let functions = functions_by_name(&catalog, &by_oid);
        let relations = by_oid
            .into_values()
            .map(|relation| (key_of(&relation.qualified), relation))
            .collect();
        Self {
            schemas: schemas.to_vec(),
            relations,
            relationships,
            functions,
            types: types_by_name(&catalog),
            role_settings: role_settings(&catalog),
        }
    }

    /// The exposed schemas; the first is the default.
    pub fn schemas(&self) -> &[String] {
        &self.schemas
    }

    /// A relation of an exposed schema, by exact name.
    pub fn relation(&self, schema: &str, name: &str) -> Option<&Relation> {
        self.relations.get(&(schema.to_owned(), name.to_owned()))
    }

    /// Every relation of one schema.
    pub fn relations_in<'a>(&'a self, schema: &'a str) -> impl Iterator<Item = &'a Relation> + 'a {
        self.relations
            .values()
            .filter(move |relation| relation.schema().as_str() == schema)
    }

    /// The relation a qualified name denotes.
    pub fn relation_of(&self, name: &QualifiedName) -> Option<&Relation> {
        self.relations.get(&key_of(name))
    }

    /// Every way to embed something from `source`.
    pub fn relationships_from(&self, source: &QualifiedName) -> &[Relationship] {
        self.relationships
            .get(&key_of(source))
            .map_or(&[], Vec::as_slice)
    }

    /// Overloads of a function.
    pub fn functions(&self, schema: &str, name: &str) -> &[Function] {
        self.functions
            .get(&(schema.to_owned(), name.to_owned()))
            .map_or(&[], Vec::as_slice)
    }

    /// Every function of one schema.
    pub fn functions_in<'a>(&'a self, schema: &'a str) -> impl Iterator<Item = &'a Function> + 'a {
        self.functions
            .iter()
            .filter(move |((s, _), _)| s == schema)
            .flat_map(|(_, overloads)| overloads.iter())
    }

    /// Resolves a type name written in a request (`int`, `text[]`, `public.my_enum`) to a type
    /// the catalog knows. Unknown names give `None`.
    pub fn cast_type(&self, written: &str) -> Option<SqlType> {
        let normalized = written
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        let (base, is_array) = match normalized.strip_suffix("[]") {
            Some(base) => (base.trim_end().to_owned(), true),
            None => (normalized, false),
        };
        let canonical = TYPE_ALIASES
            .iter()
            .find(|(alias, _)| *alias == base)
            .map_or(base.as_str(), |(_, name)| name);
        let (scalar, array) = self.types.get(canonical)?;
        if is_array {
            array.clone()
        } else {
            Some(scalar.clone())
        }
    }

    /// `ALTER ROLE … SET` values for `role` (database-specific ones win), as PostgREST applies
    /// them inside each request.
    pub fn role_settings(&self, role: &str) -> &[(String, String)] {
        self.role_settings.get(role).map_or(&[], Vec::as_slice)
    }
}

fn key_of(name: &QualifiedName) -> (String, String) {
    (
        name.schema.as_str().to_owned(),
        name.name.as_str().to_owned(),
    )
}

fn relations_by_oid(catalog: &Catalog) -> HashMap<u32, Relation> {
    let mut relations: HashMap<u32, Relation> = catalog
        .relations
        .iter()
        .map(|rel| {
            let kind = RelationKind::from_relkind(&rel.kind);
            let flags = rel.updatable_flags;
            let is_table = !kind.is_view();
            let relation = Relation {
                oid: rel.oid,
                qualified: QualifiedName {
                    schema: Ident::from_catalog(rel.schema.clone()),
                    name: Ident::from_catalog(rel.name.clone()),
                },
                kind,
                columns: Vec::new(),
                column_index: HashMap::new(),
                primary_key: Vec::new(),
                insertable: is_table || flags & 8 != 0,
                updatable: is_table || flags & 4 != 0,
                deletable: is_table || flags & 16 != 0,
                description: rel.description.clone(),
            };
            (rel.oid, relation)
        })
        .collect();
    for column in &catalog.columns {
        let Some(relation) = relations.get_mut(&column.rel_oid) else {
            continue;
        };
        relation
            .column_index
            .insert(column.name.clone(), relation.columns.len());
        relation.columns.push(Column {
            name: Ident::from_catalog(column.name.clone()),
            attnum: column.num,
            sql_type: SqlType::from_catalog(column.type_sql.clone()),
            display_type: column.type_display.clone(),
            kind: ValueKind::from_catalog(&column.base_type, &column.category),
            nullable: column.nullable,
            default: column.default_expr.clone(),
            default_expr: column.default_expr.clone().map(SqlExpr::from_catalog),
            generated: column.is_generated,
            max_length: column.max_length,
            enum_values: column.enum_values.clone().unwrap_or_default(),
            description: column.description.clone(),
        });
    }
    for key in catalog.keys.iter().filter(|key| key.kind == "p") {
        if let Some(relation) = relations.get_mut(&key.rel_oid) {
            relation.primary_key = key.columns.clone();
        }
    }
    relations
}

fn functions_by_name(
    catalog: &Catalog,
    relations: &HashMap<u32, Relation>,
) -> HashMap<(String, String), Vec<Function>> {
    let mut functions: HashMap<(String, String), Vec<Function>> = HashMap::new();
    for func in &catalog.functions {
        let inputs: Vec<_> = func
            .args
            .iter()
            .filter(|arg| matches!(arg.mode.as_str(), "i" | "b" | "v"))
            .collect();
        let has_outputs = func
            .args
            .iter()
            .any(|arg| matches!(arg.mode.as_str(), "o" | "b" | "t"));
        let defaults_from = inputs
            .len()
            .saturating_sub(usize::try_from(func.default_count).unwrap_or(0));
        let params = inputs
            .iter()
            .enumerate()
            .map(|(index, arg)| FunctionParam {
                name: arg.name.clone(),
                ident: (!arg.name.is_empty()).then(|| Ident::from_catalog(arg.name.clone())),
                sql_type: SqlType::from_catalog(arg.type_sql.clone()),
                has_default: index >= defaults_from,
                variadic: arg.mode == "v",
            })
            .collect();
        let returns = match (func.return_type.as_str(), func.return_kind.as_str()) {
            ("void", _) => ReturnType::Void,
            (_, "c") => ReturnType::Composite {
                relation: func
                    .return_rel_oid
                    .and_then(|oid| relations.get(&oid))
                    .map(|relation| relation.qualified.clone()),
                set: func.returns_set,
            },
            ("record", _) if has_outputs || func.return_kind == "p" => ReturnType::Composite {
                relation: None,
                set: func.returns_set,
            },
            (type_sql, _) => ReturnType::Scalar {
                sql_type: SqlType::from_catalog(type_sql.to_owned()),
                set: func.returns_set,
            },
        };
        let volatility = match func.volatility.as_str() {
            "i" => Volatility::Immutable,
            "s" => Volatility::Stable,
            _ => Volatility::Volatile,
        };
        let settings = func
            .settings
            .iter()
            .filter_map(|entry| entry.split_once('='))
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
        let outputs: Vec<_> = func
            .args
            .iter()
            .filter(|arg| matches!(arg.mode.as_str(), "o" | "b" | "t"))
            .collect();
        let result_columns = (!outputs.is_empty()).then(|| {
            let mut relation = Relation {
                oid: 0,
                qualified: QualifiedName {
                    schema: Ident::from_catalog(func.schema.clone()),
                    name: Ident::from_catalog(func.name.clone()),
                },
                kind: RelationKind::View,
                columns: Vec::new(),
                column_index: HashMap::new(),
                primary_key: Vec::new(),
                insertable: false,
                updatable: false,
                deletable: false,
                description: None,
            };
            for (index, arg) in outputs.iter().enumerate() {
                let base = arg.type_sql.trim_end_matches("[]");
                let category = if arg.type_sql.ends_with("[]") {
                    "A"
                } else {
                    ""
                };
                relation
                    .column_index
                    .insert(arg.name.clone(), relation.columns.len());
                relation.columns.push(Column {
                    name: Ident::from_catalog(arg.name.clone()),
                    attnum: i16::try_from(index + 1).unwrap_or(i16::MAX),
                    sql_type: SqlType::from_catalog(arg.type_sql.clone()),
                    display_type: arg.type_sql.clone(),
                    kind: ValueKind::from_catalog(base, category),
                    nullable: true,
                    default: None,
                    default_expr: None,
                    generated: false,
                    max_length: None,
                    enum_values: Vec::new(),
                    description: None,
                });
            }
            relation
        });
        functions
            .entry((func.schema.clone(), func.name.clone()))
            .or_default()
            .push(Function {
                oid: func.oid,
                qualified: QualifiedName {
                    schema: Ident::from_catalog(func.schema.clone()),
                    name: Ident::from_catalog(func.name.clone()),
                },
                params,
                returns,
                volatility,
                settings,
                description: func.description.clone(),
                result_columns,
            });
    }
    functions
}

fn types_by_name(catalog: &Catalog) -> HashMap<String, (SqlType, Option<SqlType>)> {
    let mut types = HashMap::new();
    // Unqualified names prefer pg_catalog, as the default search_path does.
    let mut ordered: Vec<_> = catalog.types.iter().collect();
    ordered.sort_by_key(|t| (t.schema != "pg_catalog", t.schema.clone(), t.name.clone()));
    for t in ordered {
        let entry = (
            SqlType::from_catalog(t.type_sql.clone()),
            t.array_sql.clone().map(SqlType::from_catalog),
        );
        types
            .entry(t.name.to_lowercase())
            .or_insert_with(|| entry.clone());
        types.insert(format!("{}.{}", t.schema, t.name).to_lowercase(), entry);
    }
    types
}

fn role_settings(catalog: &Catalog) -> HashMap<String, Vec<(String, String)>> {
    let mut ordered: Vec<_> = catalog.role_settings.iter().collect();
    // Cluster-wide settings first, so database-specific ones override them.
    ordered.sort_by_key(|entry| entry.database_specific);
    let mut settings: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for entry in ordered {
        let list = settings.entry(entry.role.clone()).or_default();
        for (name, value) in entry.settings.iter().filter_map(|s| s.split_once('=')) {
            list.retain(|(existing, _)| existing != name);
            list.push((name.to_owned(), value.to_owned()));
        }
    }
    settings
}
