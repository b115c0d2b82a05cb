//! Deciding which subscriber may see which change, for a whole batch at once. A table's SELECT
//! policies for a role become a [`plan::Plan`]; a compiled plan answers every (row image,
//! identity) pair of the batch in one query run as the role, with each identity's settings as a
//! column; a plan that cannot be compiled, or a compiled query that fails (a policy raising for
//! one identity's claims), is answered per identity with the real settings applied, so an error
//! only ever denies the identity it belongs to. Row images are the committed ones from the WAL,
//! turned back into a typed row by `jsonb_populate_record`.

mod compile;
mod plan;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures_util::future::join_all;
use manifold_db::{Access, RequestContext, RequestInfo};

pub(crate) use plan::Plan;

use crate::changes::catalog::{Catalog, Table};
use crate::error::StoreError;

/// The `search_path` subscriber checks run with, the same as an API request's default.
pub(crate) const SEARCH_PATH: &str = "public, extensions";

const ROLE_SQL: &str =
    "select set_config('role', $1::text, true), set_config('search_path', $2::text, true)";

/// Applies an identity's settings, in order, as the REST layer does.
const SETTINGS_SQL: &str =
    "select set_config(s.key, s.value, true) from json_each_text($1::text::json) as s";

// The batch query: pairs of (row, identity) indexes. Each row image is rebuilt as the table's
// row type once (`__rt_r`), each identity's settings and the policy parts that depend on the
// identity alone once (`__rt_s`: `__rt_h0`, `__rt_h1`, …), then the policy is evaluated per pair
// in an EXISTS whose only relation is that row, aliased with the table's own name (how policy
// text refers to it). PostgreSQL resolves an unqualified name at the innermost level first, so
// the table's columns can never collide with the helper columns outside (a table with columns
// `c`, `s` or `__rt_row` is fine); the helpers are only reachable qualified, as the compiled
// predicate writes them (`__rt_s.__rt_settings`, `__rt_s.__rt_h0`).
const COMPILED_ROWS: &str = "with __rt_r as materialized (select (__rt_x.__rt_i - 1)::int4 \
     as __rt_row, jsonb_populate_record(null::";
const COMPILED_SUBS: &str = ", __rt_x.__rt_doc) as __rt_rec \
     from jsonb_array_elements($1::text::jsonb) with ordinality as __rt_x(__rt_doc, __rt_i)), \
     __rt_s as materialized (select __rt_s.__rt_sub, __rt_s.__rt_settings";
const COMPILED_PAIRS: &str = " from (select (__rt_y.__rt_j - 1)::int4 as __rt_sub, \
     __rt_y.__rt_doc as __rt_settings \
     from jsonb_array_elements($2::text::jsonb) with ordinality as __rt_y(__rt_doc, __rt_j)) \
     as __rt_s) \
     select __rt_p.__rt_row, __rt_p.__rt_sub \
     from unnest($3::int4[], $4::int4[]) as __rt_p(__rt_row, __rt_sub) \
     join __rt_r on __rt_r.__rt_row = __rt_p.__rt_row \
     join __rt_s on __rt_s.__rt_sub = __rt_p.__rt_sub \
     where exists (select from (select (__rt_r.__rt_rec).*) as ";

// Each identity's hoisted values (the select list goes before this).
const CLASSES_FROM: &str = "] from (select (__rt_y.__rt_j - 1)::int4 as __rt_sub, \
     __rt_y.__rt_doc as __rt_settings \
     from jsonb_array_elements($1::text::jsonb) with ordinality as __rt_y(__rt_doc, __rt_j)) \
     as __rt_s";

/// Largest (rows × classes) table of a batch kept dense.
const MAX_DENSE_PAIRS: usize = 1 << 22;

/// Identities whose class a plan remembers; past this the memory starts over.
const MAX_CACHED_CLASSES: usize = 100_000;

const SINGLE_HEAD: &str = "select (__rt_c.__rt_index - 1)::int4 from \
     jsonb_array_elements($1::text::jsonb) with ordinality as __rt_c(__rt_doc, __rt_index) \
     where exists (select from jsonb_populate_record(null::";
const SINGLE_ROW: &str = ", __rt_c.__rt_doc) as ";
const WHERE_OPEN: &str = " where (";
const WHERE_CLOSE: &str = "))";

/// Prefix of every helper relation the checks wrap around a row; a table named like one would
/// shadow it inside the EXISTS, so such a table is checked per identity instead.
const HELPER_PREFIX: &str = "__rt_";

/// The authorizer could not reach a verdict: the database did not answer. Nothing about the
/// batch was decided, so nothing may be delivered or confirmed yet.
#[derive(Debug, thiserror::Error)]
#[error("authorization is unavailable")]
pub(crate) struct Unavailable(#[source] pub(crate) StoreError);

/// Who a subscriber is to the database: role and the settings a request would carry.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Identity {
    pub(crate) role: String,
    settings: Vec<(String, String)>,
    settings_json: String,
}

impl Identity {
    /// The identity of `role` with these claims (JSON object text, `role` included), with the
    /// same settings a REST request sets, plus `extra` (e.g. `realtime.topic`).
    pub(crate) fn new(role: &str, claims_json: String, extra: &[(&str, &str)]) -> Self {
        let info = RequestInfo {
            claims: claims_json,
            method: "GET".to_owned(),
            path: "/realtime/v1".to_owned(),
            headers: "{}".to_owned(),
            cookies: "{}".to_owned(),
        };
        let mut settings =
            RequestContext::new(role, SEARCH_PATH.to_owned(), info, Access::ReadOnly).settings;
        settings.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let object: serde_json::Map<String, serde_json::Value> = settings
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        Self {
            role: role.to_owned(),
            settings_json: serde_json::Value::Object(object).to_string(),
            settings,
        }
    }

    /// The settings as one JSON object (name → value).
    pub(crate) fn settings_json(&self) -> &str {
        &self.settings_json
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.settings.iter().map(|(name, _)| name.as_str())
    }
}

/// Policy plans per (table, role), and their evaluation.
#[derive(Debug)]
pub(crate) struct Authorizer {
    catalog: Arc<Catalog>,
    plans: Mutex<HashMap<(u32, String), Arc<Plan>>>,
}

impl Authorizer {
    pub(crate) fn new(catalog: Arc<Catalog>) -> Self {
        Self {
            catalog,
            plans: Mutex::default(),
        }
    }

    /// Forgets every plan, after DDL (policies, grants, functions may have changed).
    pub(crate) fn invalidate(&self) {
        if let Ok(mut plans) = self.plans.lock() {
            plans.clear();
        }
    }

    /// Forgets the plans of one table (its relation changed in the WAL).
    pub(crate) fn forget(&self, oid: u32) {
        if let Ok(mut plans) = self.plans.lock() {
            plans.retain(|(table, _), _| *table != oid);
        }
    }

    /// The plan of `table` for `role`.
    pub(crate) async fn plan(&self, table: &Table, role: &str) -> Result<Arc<Plan>, StoreError> {
        let key = (table.oid, role.to_owned());
        if let Some(plan) = self.plans.lock().ok().and_then(|p| p.get(&key).cloned()) {
            return Ok(plan);
        }
        let access = self.catalog.access(table, role).await?;
        let settings: HashSet<String> = Identity::new(role, "{}".into(), &[])
            .names()
            .map(str::to_owned)
            .collect();
        let mut client = self.catalog.pool().get().await?;
        let plan = Arc::new(plan::build(&mut client, table, role, &access, &settings).await?);
        if let Ok(mut plans) = self.plans.lock() {
            plans.insert(key, plan.clone());
        }
        Ok(plan)
    }

    /// For each `(row, identity)` pair, whether that identity may see that row image. `rows`
    /// are JSON objects of the full row; every identity has `role`. A policy that raises for
    /// some claims denies those identities only; [`Unavailable`] means the database could not
    /// answer at all (retry later, never treat it as a denial).
    pub(crate) async fn authorize(
        &self,
        table: &Table,
        role: &str,
        rows: &[String],
        identities: &[Arc<Identity>],
        pairs: &[(usize, usize)],
    ) -> Result<Vec<bool>, Unavailable> {
        let plan = match self.plan(table, role).await {
            Ok(plan) => plan,
            Err(error) if error.is_transient() => return Err(Unavailable(error)),
            Err(error) => {
                // A table dropped meanwhile, or a catalog the checks cannot read: nothing can
                // be shown, and retrying would not change that.
                tracing::warn!(%error, table = %table.name, "no authorization plan; denied");
                return Ok(vec![false; pairs.len()]);
            }
        };
        let shadowed = table.name.starts_with(HELPER_PREFIX);
        match plan.as_ref() {
            Plan::AllowAll => Ok(vec![true; pairs.len()]),
            Plan::DenyAll => Ok(vec![false; pairs.len()]),
            Plan::Compiled {
                predicate,
                hoisted,
                original,
                classes,
            } if !shadowed => match self
                .by_class(
                    table,
                    role,
                    predicate,
                    hoisted,
                    classes.as_deref(),
                    rows,
                    identities,
                    pairs,
                )
                .await
            {
                Ok(allowed) => Ok(allowed),
                Err(error) if error.is_transient() => Err(Unavailable(error)),
                Err(error) => {
                    tracing::debug!(%error, table = %table.name, "compiled check failed; per identity");
                    self.per_identity(table, original, rows, identities, pairs)
                        .await
                }
            },
            Plan::Compiled { original, .. } | Plan::PerIdentity { original } => {
                self.per_identity(table, original, rows, identities, pairs)
                    .await
            }
        }
    }

    /// The compiled check asked once per (row, class of identities): identities whose hoisted
    /// parts have equal values are indistinguishable to the predicate (it reads the identity
    /// through those parts only), so one of them answers for all. With 1,000 subscribers of 50
    /// organizations a batch asks about 50 classes instead of 1,000 identities.
    #[allow(clippy::too_many_arguments, reason = "one batch's inputs")]
    async fn by_class(
        &self,
        table: &Table,
        role: &str,
        predicate: &str,
        hoisted: &[String],
        classes: Option<&Mutex<HashMap<String, String>>>,
        rows: &[String],
        identities: &[Arc<Identity>],
        pairs: &[(usize, usize)],
    ) -> Result<Vec<bool>, StoreError> {
        let class_of = self
            .classes(role, predicate, hoisted, classes, identities)
            .await?;
        let mut representatives: Vec<Arc<Identity>> = Vec::new();
        let mut representative_of: HashMap<&str, usize> = HashMap::new();
        let sub_class: Vec<usize> = identities
            .iter()
            .zip(&class_of)
            .map(|(identity, class)| {
                *representative_of.entry(class.as_str()).or_insert_with(|| {
                    representatives.push(identity.clone());
                    representatives.len() - 1
                })
            })
            .collect();
        // (row, class) → index of the reduced pair: a dense table while it is small (a batch
        // has up to a million pairs; hashing each would cost more than the query saves).
        let width = representatives.len().max(1);
        let cells = rows.len().saturating_mul(width);
        let mut reduced: Vec<(usize, usize)> = Vec::new();
        let mut dense = vec![usize::MAX; if cells <= MAX_DENSE_PAIRS { cells } else { 0 }];
        let mut sparse: HashMap<(usize, usize), usize> = HashMap::new();
        let mapping: Vec<usize> = pairs
            .iter()
            .map(|&(row, sub)| {
                let class = sub_class.get(sub).copied().unwrap_or(0);
                let slot = if dense.is_empty() {
                    sparse.entry((row, class)).or_insert(usize::MAX)
                } else {
                    match dense.get_mut(row * width + class) {
                        Some(slot) => slot,
                        None => return usize::MAX,
                    }
                };
                if *slot == usize::MAX {
                    reduced.push((row, class));
                    *slot = reduced.len() - 1;
                }
                *slot
            })
            .collect();
        let verdicts = self
            .compiled(
                table,
                role,
                predicate,
                hoisted,
                rows,
                &representatives,
                &reduced,
            )
            .await?;
        Ok(mapping
            .iter()
            .map(|&index| verdicts.get(index).copied().unwrap_or(false))
            .collect())
    }

    /// Each identity's class: the text of its hoisted values, from the cache or computed in one
    /// query for those not seen yet. An identity whose values cannot be computed (a helper
    /// raising for its claims) is a class of its own, so the batch query fails as it would have
    /// and is answered per identity.
    async fn classes(
        &self,
        role: &str,
        predicate: &str,
        hoisted: &[String],
        cache: Option<&Mutex<HashMap<String, String>>>,
        identities: &[Arc<Identity>],
    ) -> Result<Vec<String>, StoreError> {
        let own_class = |identity: &Identity| format!("\u{0}{}", identity.settings_json());
        if predicate.contains("__rt_s.__rt_settings") {
            // Read other than through hoisted parts: every identity may differ.
            return Ok(identities.iter().map(|i| own_class(i)).collect());
        }
        if hoisted.is_empty() {
            // The predicate does not depend on the identity at all.
            return Ok(vec![String::new(); identities.len()]);
        }
        let mut known: Vec<Option<String>> = match cache {
            Some(cache) => {
                let cache = lock_classes(cache);
                identities
                    .iter()
                    .map(|identity| cache.get(identity.settings_json()).cloned())
                    .collect()
            }
            None => vec![None; identities.len()],
        };
        let missing: Vec<usize> = (0..identities.len())
            .filter(|&index| known[index].is_none())
            .collect();
        if !missing.is_empty() {
            let mut sql = String::from("select __rt_s.__rt_sub, array[");
            for (index, expr) in hoisted.iter().enumerate() {
                if index > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("(({expr}))::text"));
            }
            sql.push_str(CLASSES_FROM);
            let subs_json = json_array(
                missing
                    .iter()
                    .filter_map(|&index| identities.get(index))
                    .map(|identity| identity.settings_json()),
            );
            let computed = async {
                let mut client = self.catalog.pool().get().await?;
                let transaction = client.transaction().await?;
                transaction.query(ROLE_SQL, &[&role, &SEARCH_PATH]).await?;
                let statement = transaction.prepare_cached(&sql).await?;
                let rows = transaction.query(&statement, &[&subs_json]).await?;
                transaction.commit().await?;
                Ok::<_, StoreError>(rows)
            }
            .await;
            match computed {
                Ok(rows) => {
                    let mut cache = cache.map(lock_classes);
                    if let Some(cache) = &mut cache
                        && cache.len() > MAX_CACHED_CLASSES
                    {
                        cache.clear();
                    }
                    for row in rows {
                        let position: i32 = row.get(0);
                        let values: Vec<Option<String>> = row.get(1);
                        let Some(&index) =
                            usize::try_from(position).ok().and_then(|p| missing.get(p))
                        else {
                            continue;
                        };
                        let class = serde_json::to_string(&values).unwrap_or_default();
                        if let (Some(cache), Some(identity)) = (&mut cache, identities.get(index)) {
                            cache.insert(identity.settings_json().to_owned(), class.clone());
                        }
                        known[index] = Some(class);
                    }
                }
                Err(error) if error.is_transient() => return Err(error),
                Err(error) => {
                    tracing::debug!(%error, "hoisted parts failed for some identity; classes of one");
                }
            }
        }
        Ok(identities
            .iter()
            .zip(known)
            .map(|(identity, class)| class.unwrap_or_else(|| own_class(identity)))
            .collect())
    }

    #[allow(clippy::too_many_arguments, reason = "one batch's inputs")]
    async fn compiled(
        &self,
        table: &Table,
        role: &str,
        predicate: &str,
        hoisted: &[String],
        rows: &[String],
        identities: &[Arc<Identity>],
        pairs: &[(usize, usize)],
    ) -> Result<Vec<bool>, StoreError> {
        let mut sql = String::from(COMPILED_ROWS);
        push_table(&mut sql, table);
        sql.push_str(COMPILED_SUBS);
        for (index, expr) in hoisted.iter().enumerate() {
            sql.push_str(&format!(", ({expr}) as __rt_h{index}"));
        }
        sql.push_str(COMPILED_PAIRS);
        push_quoted(&mut sql, &table.name);
        sql.push_str(WHERE_OPEN);
        sql.push_str(predicate);
        sql.push_str(WHERE_CLOSE);
        let rows_json = json_array(rows.iter().map(String::as_str));
        let subs_json = json_array(identities.iter().map(|i| i.settings_json()));
        let (row_indexes, sub_indexes): (Vec<i32>, Vec<i32>) = pairs
            .iter()
            .map(|&(row, sub)| (index_i32(row), index_i32(sub)))
            .unzip();
        let mut client = self.catalog.pool().get().await?;
        let transaction = client.transaction().await?;
        transaction.query(ROLE_SQL, &[&role, &SEARCH_PATH]).await?;
        let statement = transaction.prepare_cached(&sql).await?;
        let visible = transaction
            .query(
                &statement,
                &[&rows_json, &subs_json, &row_indexes, &sub_indexes],
            )
            .await?;
        transaction.commit().await?;
        let allowed: HashSet<(i32, i32)> =
            visible.iter().map(|row| (row.get(0), row.get(1))).collect();
        Ok(row_indexes
            .iter()
            .zip(&sub_indexes)
            .map(|(row, sub)| allowed.contains(&(*row, *sub)))
            .collect())
    }

    async fn per_identity(
        &self,
        table: &Table,
        original: &str,
        rows: &[String],
        identities: &[Arc<Identity>],
        pairs: &[(usize, usize)],
    ) -> Result<Vec<bool>, Unavailable> {
        let mut wanted: HashMap<usize, Vec<usize>> = HashMap::new();
        for &(row, sub) in pairs {
            wanted.entry(sub).or_default().push(row);
        }
        let mut sql = String::from(SINGLE_HEAD);
        push_table(&mut sql, table);
        sql.push_str(SINGLE_ROW);
        push_quoted(&mut sql, &table.name);
        sql.push_str(WHERE_OPEN);
        sql.push_str(original);
        sql.push_str(WHERE_CLOSE);
        let checks = wanted.iter().map(|(&sub, row_indexes)| {
            let sql = &sql;
            async move {
                let Some(identity) = identities.get(sub) else {
                    return Ok((sub, HashSet::new()));
                };
                let docs = json_array(
                    row_indexes
                        .iter()
                        .filter_map(|&i| rows.get(i).map(String::as_str)),
                );
                match self.single(sql, identity, &docs).await {
                    Ok(visible) => Ok((
                        sub,
                        visible
                            .iter()
                            .filter_map(|&i| row_indexes.get(usize::try_from(i).ok()?).copied())
                            .collect::<HashSet<usize>>(),
                    )),
                    Err(error) if error.is_transient() => Err(Unavailable(error)),
                    Err(error) => {
                        // A policy that raises for these claims hides the change from this
                        // identity only.
                        tracing::warn!(%error, table = %table.name, "policy check failed for one identity");
                        Ok((sub, HashSet::new()))
                    }
                }
            }
        });
        let mut visible: HashMap<usize, HashSet<usize>> = HashMap::new();
        for checked in join_all(checks).await {
            let (sub, rows) = checked?;
            visible.insert(sub, rows);
        }
        Ok(pairs
            .iter()
            .map(|(row, sub)| visible.get(sub).is_some_and(|rows| rows.contains(row)))
            .collect())
    }

    async fn single(
        &self,
        sql: &str,
        identity: &Identity,
        docs: &str,
    ) -> Result<Vec<i32>, StoreError> {
        let mut client = self.catalog.pool().get().await?;
        let transaction = client.transaction().await?;
        transaction
            .query(SETTINGS_SQL, &[&identity.settings_json()])
            .await?;
        let statement = transaction.prepare_cached(sql).await?;
        let rows = transaction.query(&statement, &[&docs]).await?;
        transaction.commit().await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }
}

fn lock_classes(
    cache: &Mutex<HashMap<String, String>>,
) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
    cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn index_i32(index: usize) -> i32 {
    i32::try_from(index).unwrap_or(i32::MAX)
}

/// Joins JSON texts into a JSON array text.
pub(crate) fn json_array<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::from("[");
    for (index, item) in items.enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push_str(item);
    }
    out.push(']');
    out
}

/// `"schema"."table"`, both catalog names.
fn push_table(sql: &mut String, table: &Table) {
    push_quoted(sql, &table.schema);
    sql.push('.');
    push_quoted(sql, &table.name);
}

/// Appends a catalog name as a quoted identifier.
fn push_quoted(sql: &mut String, name: &str) {
    sql.push('"');
    sql.push_str(&name.replace('"', "\"\""));
    sql.push('"');
}
