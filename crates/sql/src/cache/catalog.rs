//! What the catalog introspection returns: one JSON document, read into these plain structs and
//! then assembled into a [`super::SchemaCache`].

use serde::{Deserialize, Deserializer};

/// Reads relations, columns, keys, foreign keys, functions, types and role settings of the
/// exposed schemas as one JSON document. `$1` is a JSON array of schema names. Run it with
/// `search_path = pg_catalog` so every type and view definition outside the catalog comes back
/// schema-qualified.
pub const INTROSPECTION_SQL: &str = r#"
with exposed as (
  select json_array_elements_text($1::text::json) as name
),
rels as (
  select c.oid, n.nspname as schema, c.relname as name, c.relkind::text as kind,
         obj_description(c.oid, 'pg_class') as description,
         pg_relation_is_updatable(c.oid::regclass, true) as updatable_flags,
         case when c.relkind in ('v', 'm') then pg_get_viewdef(c.oid) end as view_definition
  from pg_class c
  join pg_namespace n on n.oid = c.relnamespace
  where c.relkind in ('r', 'v', 'm', 'f', 'p')
    and not c.relispartition
    and n.nspname::text in (select name from exposed)
),
cols as (
  select a.attrelid as rel_oid, a.attnum as num, a.attname as name,
         format_type(a.atttypid, null) as type_sql,
         format_type(a.atttypid, a.atttypmod) as type_display,
         coalesce(bt.typname, t.typname) as base_type,
         coalesce(bt.typcategory, t.typcategory)::text as category,
         not a.attnotnull as nullable,
         pg_get_expr(d.adbin, d.adrelid) as default_expr,
         a.attidentity::text <> '' as is_identity,
         a.attgenerated::text <> '' as is_generated,
         case when a.atttypmod > 4 and coalesce(bt.typcategory, t.typcategory) = 'S'
              then a.atttypmod - 4 end as max_length,
         (select array_agg(e.enumlabel::text order by e.enumsortorder)
            from pg_enum e where e.enumtypid = coalesce(bt.oid, t.oid)) as enum_values,
         col_description(a.attrelid, a.attnum) as description
  from pg_attribute a
  join rels r on r.oid = a.attrelid
  join pg_type t on t.oid = a.atttypid
  left join pg_type bt on t.typtype = 'd' and bt.oid = t.typbasetype
  left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
  where a.attnum > 0 and not a.attisdropped
),
keys as (
  select con.conrelid as rel_oid, con.contype::text as kind, con.conname as name,
         array(select k.num from unnest(con.conkey) with ordinality k(num, ord) order by k.ord)
           as column_nums,
         array(select a.attname::text
                 from unnest(con.conkey) with ordinality k(num, ord)
                 join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.num
                 order by k.ord) as columns
  from pg_constraint con
  join pg_class c on c.oid = con.conrelid
  join pg_namespace cn on cn.oid = c.relnamespace
  where con.contype in ('p', 'u')
    and cn.nspname not in ('pg_catalog', 'information_schema')
),
fks as (
  select con.conname as name, con.conrelid as rel_oid, con.confrelid as ref_oid,
         cn.nspname as schema, c.relname as table_name,
         rn.nspname as ref_schema, rc.relname as ref_table,
         array(select k.num from unnest(con.conkey) with ordinality k(num, ord) order by k.ord)
           as column_nums,
         array(select a.attname::text
                 from unnest(con.conkey) with ordinality k(num, ord)
                 join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.num
                 order by k.ord) as columns,
         array(select k.num from unnest(con.confkey) with ordinality k(num, ord) order by k.ord)
           as ref_column_nums,
         array(select a.attname::text
                 from unnest(con.confkey) with ordinality k(num, ord)
                 join pg_attribute a on a.attrelid = con.confrelid and a.attnum = k.num
                 order by k.ord) as ref_columns
  from pg_constraint con
  join pg_class c on c.oid = con.conrelid
  join pg_namespace cn on cn.oid = c.relnamespace
  join pg_class rc on rc.oid = con.confrelid
  join pg_namespace rn on rn.oid = rc.relnamespace
  where con.contype = 'f'
    and cn.nspname not in ('pg_catalog', 'information_schema')
),
funcs as (
  select p.oid, n.nspname as schema, p.proname as name,
         obj_description(p.oid, 'pg_proc') as description,
         p.provolatile::text as volatility,
         p.proretset as returns_set,
         format_type(p.prorettype, null) as return_type,
         rt.typtype::text as return_kind,
         case when rt.typtype = 'c' then rt.typrelid end as return_rel_oid,
         p.provariadic <> 0 as is_variadic,
         p.pronargdefaults as default_count,
         coalesce(p.proconfig, '{}') as settings,
         coalesce((
           select json_agg(json_build_object(
                    'name', coalesce(p.proargnames[a.ord], ''),
                    'type_sql', format_type(a.typ, null),
                    'mode', coalesce(p.proargmodes[a.ord]::text, 'i')) order by a.ord)
           from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[])) with ordinality a(typ, ord)
         ), '[]') as args
  from pg_proc p
  join pg_namespace n on n.oid = p.pronamespace
  join pg_type rt on rt.oid = p.prorettype
  where p.prokind = 'f' and n.nspname::text in (select name from exposed)
),
types as (
  select t.oid, n.nspname as schema, t.typname as name, format_type(t.oid, null) as type_sql,
         case when t.typarray <> 0 then format_type(t.typarray, null) end as array_sql
  from pg_type t
  join pg_namespace n on n.oid = t.typnamespace
  where t.typisdefined
    and t.typtype in ('b', 'd', 'e', 'r', 'm', 'c')
    and t.typcategory <> 'A'
    and (n.nspname::text in (select name from exposed) or n.nspname in ('pg_catalog', 'extensions', 'public'))
    and not (n.nspname = 'pg_catalog' and t.typtype = 'c')
),
role_settings as (
  select r.rolname as role, s.setdatabase <> 0 as database_specific, s.setconfig as settings
  from pg_db_role_setting s
  join pg_roles r on r.oid = s.setrole
  where s.setdatabase in (0, (select oid from pg_database where datname = current_database()))
)
select json_build_object(
  'relations', (select coalesce(json_agg(rels), '[]') from rels),
  'columns', (select coalesce(json_agg(cols order by rel_oid, num), '[]') from cols),
  'keys', (select coalesce(json_agg(keys), '[]') from keys),
  'foreign_keys', (select coalesce(json_agg(fks), '[]') from fks),
  'functions', (select coalesce(json_agg(funcs), '[]') from funcs),
  'types', (select coalesce(json_agg(types), '[]') from types),
  'role_settings', (select coalesce(json_agg(role_settings), '[]') from role_settings)
)::text
"#;

/// The whole introspection result.
#[derive(Debug, Deserialize)]
pub struct Catalog {
    /// Tables, views, materialized views, foreign and partitioned tables.
    pub relations: Vec<CatalogRelation>,
    /// Their columns, ordered by relation and position.
    pub columns: Vec<CatalogColumn>,
    /// Primary-key and unique constraints of all user tables.
    pub keys: Vec<CatalogKey>,
    /// Foreign keys between user tables (either end may be outside the exposed schemas).
    pub foreign_keys: Vec<CatalogForeignKey>,
    /// Functions in the exposed schemas.
    pub functions: Vec<CatalogFunction>,
    /// Types usable in `::casts`.
    pub types: Vec<CatalogType>,
    /// `ALTER ROLE … SET` settings.
    pub role_settings: Vec<CatalogRoleSettings>,
}

/// One relation.
#[derive(Debug, Deserialize)]
pub struct CatalogRelation {
    /// pg_class oid.
    #[serde(deserialize_with = "oid")]
    pub oid: u32,
    /// Schema name.
    pub schema: String,
    /// Relation name.
    pub name: String,
    /// `relkind`: r, v, m, f or p.
    pub kind: String,
    /// `COMMENT ON`.
    pub description: Option<String>,
    /// `pg_relation_is_updatable` bits: 4 insert, 8 update, 16 delete.
    pub updatable_flags: i32,
    /// `pg_get_viewdef` for views.
    pub view_definition: Option<String>,
}

/// One column.
#[derive(Debug, Deserialize)]
pub struct CatalogColumn {
    /// Owning relation oid.
    #[serde(deserialize_with = "oid")]
    pub rel_oid: u32,
    /// Attribute number.
    pub num: i16,
    /// Column name.
    pub name: String,
    /// Type for casts, without modifiers, schema-qualified outside pg_catalog.
    pub type_sql: String,
    /// Type with modifiers, for display.
    pub type_display: String,
    /// Type name (of the base type for domains).
    pub base_type: String,
    /// `typcategory` of the (base) type.
    pub category: String,
    /// Nullable.
    pub nullable: bool,
    /// Default expression.
    pub default_expr: Option<String>,
    /// Identity column.
    pub is_identity: bool,
    /// Generated column.
    pub is_generated: bool,
    /// Character limit of varchar/char columns.
    pub max_length: Option<i32>,
    /// Labels of an enum type.
    pub enum_values: Option<Vec<String>>,
    /// `COMMENT ON COLUMN`.
    pub description: Option<String>,
}

/// A primary-key or unique constraint of any user table.
#[derive(Debug, Deserialize)]
pub struct CatalogKey {
    /// Relation oid.
    #[serde(deserialize_with = "oid")]
    pub rel_oid: u32,
    /// `p` or `u`.
    pub kind: String,
    /// Constraint name.
    pub name: String,
    /// Attribute numbers in key order.
    pub column_nums: Vec<i16>,
    /// Column names in key order.
    pub columns: Vec<String>,
}

/// A foreign key.
#[derive(Debug, Deserialize)]
pub struct CatalogForeignKey {
    /// Constraint name.
    pub name: String,
    /// Referencing relation oid.
    #[serde(deserialize_with = "oid")]
    pub rel_oid: u32,
    /// Referenced relation oid.
    #[serde(deserialize_with = "oid")]
    pub ref_oid: u32,
    /// Referencing schema.
    pub schema: String,
    /// Referencing table.
    pub table_name: String,
    /// Referenced schema.
    pub ref_schema: String,
    /// Referenced table.
    pub ref_table: String,
    /// Referencing attribute numbers.
    pub column_nums: Vec<i16>,
    /// Referencing column names.
    pub columns: Vec<String>,
    /// Referenced attribute numbers.
    pub ref_column_nums: Vec<i16>,
    /// Referenced column names.
    pub ref_columns: Vec<String>,
}

/// A function.
#[derive(Debug, Deserialize)]
pub struct CatalogFunction {
    /// pg_proc oid.
    #[serde(deserialize_with = "oid")]
    pub oid: u32,
    /// Schema name.
    pub schema: String,
    /// Function name.
    pub name: String,
    /// `COMMENT ON FUNCTION`.
    pub description: Option<String>,
    /// `i`, `s` or `v`.
    pub volatility: String,
    /// `RETURNS SETOF` / `TABLE`.
    pub returns_set: bool,
    /// Return type for casts.
    pub return_type: String,
    /// `typtype` of the return type (`c` composite, `p` pseudo, …).
    pub return_kind: String,
    /// Relation of a composite return type.
    #[serde(deserialize_with = "optional_oid")]
    pub return_rel_oid: Option<u32>,
    /// Has a VARIADIC parameter.
    pub is_variadic: bool,
    /// Number of input parameters with defaults (the last ones).
    pub default_count: i16,
    /// `SET` clauses as `name=value`.
    pub settings: Vec<String>,
    /// All parameters in order.
    pub args: Vec<CatalogArg>,
}

/// One function parameter.
#[derive(Debug, Deserialize)]
pub struct CatalogArg {
    /// Name, empty when unnamed.
    pub name: String,
    /// Type for casts.
    pub type_sql: String,
    /// `i` in, `o` out, `b` inout, `v` variadic, `t` table column.
    pub mode: String,
}

/// A type usable in casts.
#[derive(Debug, Deserialize)]
pub struct CatalogType {
    /// pg_type oid.
    #[serde(deserialize_with = "oid")]
    pub oid: u32,
    /// Schema name.
    pub schema: String,
    /// `typname`.
    pub name: String,
    /// Type for casts.
    pub type_sql: String,
    /// Its array type for casts.
    pub array_sql: Option<String>,
}

/// `ALTER ROLE … SET` values of one role.
#[derive(Debug, Deserialize)]
pub struct CatalogRoleSettings {
    /// Role name.
    pub role: String,
    /// True for `ALTER ROLE … IN DATABASE`.
    pub database_specific: bool,
    /// `name=value` entries.
    pub settings: Vec<String>,
}

/// Where one view column comes from: found by preparing the view's definition and reading the
/// table oid and attribute number PostgreSQL reports for each result column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct ViewColumnOrigin {
    /// The view.
    pub view_oid: u32,
    /// Position of the view column (1-based).
    pub view_column: i16,
    /// The relation the column is taken from.
    pub source_oid: u32,
    /// Its attribute number there.
    pub source_column: i16,
}

/// `oid` values arrive as JSON strings from `json_agg`; accept numbers too.
fn oid<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(u32),
        Text(String),
    }
    match Raw::deserialize(deserializer)? {
        Raw::Number(number) => Ok(number),
        Raw::Text(text) => text.parse().map_err(serde::de::Error::custom),
    }
}

fn optional_oid<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    struct Wrapper(#[serde(deserialize_with = "oid")] u32);
    Ok(Option::<Wrapper>::deserialize(deserializer)?.map(|Wrapper(value)| value))
}
