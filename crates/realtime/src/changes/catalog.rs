//! What the pipeline needs to know about a published table: columns with their types (how
//! values become JSON and compare in filters), primary key, RLS flags, and per role which
//! columns may be selected. Read from the catalog on first use and kept until DDL happens.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use deadpool_postgres::Pool;

use super::filter::Comparison;
use super::value::{ElementKind, JsonKind};
use crate::error::StoreError;

const TABLE_SQL: &str = "select n.nspname::text, c.relname::text, c.relrowsecurity, \
     c.relforcerowsecurity from pg_class c join pg_namespace n on n.oid = c.relnamespace \
     where c.oid = $1::int8::oid";

const COLUMNS_SQL: &str = "select a.attname::text, t.typname::text, a.atttypid::int8, \
     b.oid::int8, (b.typcategory = 'A' and b.typelem <> 0), b.typelem::int8 \
     from pg_attribute a join pg_type t on t.oid = a.atttypid \
     join pg_type b on b.oid = case when t.typtype = 'd' then t.typbasetype else t.oid end \
     where a.attrelid = $1::int8::oid and a.attnum > 0 and not a.attisdropped \
     order by a.attnum";

const KEY_SQL: &str = "select a.attname::text from pg_index i \
     join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey) \
     where i.indrelid = $1::int8::oid and i.indisprimary \
     order by array_position(i.indkey::int2[], a.attnum)";

const ROLE_SQL: &str = "select coalesce(bool_or(r.rolbypassrls or r.rolsuper), false), \
     coalesce(bool_or(pg_has_role($2::text, c.relowner, 'USAGE')), false), \
     coalesce(bool_or(has_table_privilege($2::text, c.oid, 'SELECT')), false) \
     from pg_class c, pg_roles r where c.oid = $1::int8::oid and r.rolname = $2::text";

const COLUMN_PRIVILEGES_SQL: &str = "select has_column_privilege($2::text, a.attrelid, a.attnum, 'SELECT') \
     from pg_attribute a where a.attrelid = $1::int8::oid and a.attnum > 0 \
     and not a.attisdropped order by a.attnum";

const PUBLISHED_SQL: &str = "select c.oid::int8 from pg_publication_tables p \
     join pg_namespace n on n.nspname = p.schemaname \
     join pg_class c on c.relnamespace = n.oid and c.relname = p.tablename \
     where p.pubname = $1::text and ($2::text = '*' or p.schemaname = $2::text) \
     and ($3::text = '*' or p.tablename = $3::text) order by 1";

const CAST_SQL: &str = "select realtime.cast_text($1::text, $2::int8::oid)";

/// A column of a published table.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub(crate) name: String,
    /// `pg_type.typname`, what `columns[].type` shows.
    pub(crate) type_name: String,
    pub(crate) type_oid: u32,
    pub(crate) json: JsonKind,
    pub(crate) comparison: Comparison,
}

/// A published table.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub(crate) oid: u32,
    pub(crate) schema: String,
    pub(crate) name: String,
    pub(crate) columns: Vec<Column>,
    /// Indexes of the primary-key columns.
    pub(crate) key: Vec<usize>,
    pub(crate) rls_enabled: bool,
    pub(crate) rls_forced: bool,
}

impl Table {
    /// The index of a column by name.
    pub(crate) fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|column| column.name == name)
    }
}

/// What one role may see of a table, before row policies.
#[derive(Debug, Clone)]
pub(crate) struct RoleAccess {
    /// Per column: SELECT privilege.
    pub(crate) selectable: Vec<bool>,
    /// Row security does not apply (BYPASSRLS, superuser, or owner of an unforced table).
    pub(crate) bypasses_rls: bool,
    /// The role can read the primary key, the least a change needs to be delivered.
    pub(crate) sees_key: bool,
}

/// Catalog lookups through the admin pool, cached until [`Catalog::invalidate`].
#[derive(Debug)]
pub(crate) struct Catalog {
    pool: Pool,
    tables: Mutex<HashMap<u32, Arc<Table>>>,
    access: Mutex<HashMap<(u32, String), Arc<RoleAccess>>>,
}

impl Catalog {
    pub(crate) fn new(pool: Pool) -> Self {
        Self {
            pool,
            tables: Mutex::default(),
            access: Mutex::default(),
        }
    }

    /// The admin pool (authorizer, private channels).
    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Forgets everything, after DDL.
    pub(crate) fn invalidate(&self) {
        if let Ok(mut tables) = self.tables.lock() {
            tables.clear();
        }
        if let Ok(mut access) = self.access.lock() {
            access.clear();
        }
    }

    /// Forgets one table (its relation changed in the WAL).
    pub(crate) fn forget(&self, oid: u32) {
        if let Ok(mut tables) = self.tables.lock() {
            tables.remove(&oid);
        }
        if let Ok(mut access) = self.access.lock() {
            access.retain(|(table, _), _| *table != oid);
        }
    }

    /// A table by OID.
    pub(crate) async fn table(&self, oid: u32) -> Result<Arc<Table>, StoreError> {
        if let Some(table) = self.tables.lock().ok().and_then(|t| t.get(&oid).cloned()) {
            return Ok(table);
        }
        let client = self.pool.get().await?;
        let oid_param = i64::from(oid);
        let row = client
            .query_opt(TABLE_SQL, &[&oid_param])
            .await?
            .ok_or(StoreError::UnknownRelation(oid))?;
        let columns = client
            .query(COLUMNS_SQL, &[&oid_param])
            .await?
            .iter()
            .map(|row| {
                let base = oid_of(row.get(3));
                let json = if row.get::<_, bool>(4) {
                    JsonKind::Array(ElementKind::of_base_oid(oid_of(row.get(5))))
                } else {
                    ElementKind::of_base_oid(base).scalar()
                };
                Column {
                    name: row.get(0),
                    type_name: row.get(1),
                    type_oid: oid_of(row.get(2)),
                    json,
                    comparison: Comparison::of_oid(base),
                }
            })
            .collect::<Vec<_>>();
        let key_names: Vec<String> = client
            .query(KEY_SQL, &[&oid_param])
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let key = key_names
            .iter()
            .filter_map(|name| columns.iter().position(|c| &c.name == name))
            .collect();
        let table = Arc::new(Table {
            oid,
            schema: row.get(0),
            name: row.get(1),
            columns,
            key,
            rls_enabled: row.get(2),
            rls_forced: row.get(3),
        });
        if let Ok(mut tables) = self.tables.lock() {
            tables.insert(oid, table.clone());
        }
        Ok(table)
    }

    /// What `role` may see of `table`.
    pub(crate) async fn access(
        &self,
        table: &Table,
        role: &str,
    ) -> Result<Arc<RoleAccess>, StoreError> {
        let cache_key = (table.oid, role.to_owned());
        if let Some(found) = self
            .access
            .lock()
            .ok()
            .and_then(|a| a.get(&cache_key).cloned())
        {
            return Ok(found);
        }
        let client = self.pool.get().await?;
        let oid_param = i64::from(table.oid);
        let row = client.query_one(ROLE_SQL, &[&oid_param, &role]).await?;
        let (bypass, owner, _table_select): (bool, bool, bool) =
            (row.get(0), row.get(1), row.get(2));
        let selectable: Vec<bool> = client
            .query(COLUMN_PRIVILEGES_SQL, &[&oid_param, &role])
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let sees_key = !table.key.is_empty()
            && table
                .key
                .iter()
                .all(|&index| selectable.get(index).copied().unwrap_or(false));
        let access = Arc::new(RoleAccess {
            bypasses_rls: bypass || (owner && !table.rls_forced),
            selectable,
            sees_key,
        });
        if let Ok(mut cache) = self.access.lock() {
            cache.insert(cache_key, access.clone());
        }
        Ok(access)
    }

    /// OIDs of the published tables matching `schema`/`table` (`*` matches any).
    pub(crate) async fn published(
        &self,
        publication: &str,
        schema: &str,
        table: &str,
    ) -> Result<Vec<u32>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(PUBLISHED_SQL, &[&publication, &schema, &table])
            .await?;
        Ok(rows.iter().map(|row| oid_of(row.get(0))).collect())
    }

    /// The canonical text of `value` as `type_oid`, or PostgreSQL's message when it does
    /// not convert (shown to the subscriber).
    pub(crate) async fn canonical(&self, value: &str, type_oid: u32) -> Result<String, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(CAST_SQL, &[&value, &i64::from(type_oid)])
            .await?;
        Ok(row.get(0))
    }
}

fn oid_of(value: i64) -> u32 {
    u32::try_from(value).unwrap_or_default()
}
