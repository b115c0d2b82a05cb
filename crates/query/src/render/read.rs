//! The read statement. One row comes back: total count (when asked), page size, the finished
//! body as text, and the `response.headers`/`response.status` settings.
//!
//! Each embed is a `left join lateral` whose subquery yields the embed's JSON (`v`), a marker
//! (`x`, null when nothing matched) for `!inner` and `is.null` filters, the columns of a spread
//! (`c0`, `c1`, …) and the columns a parent orders by (`o0`, …).

use std::collections::BTreeSet;

use manifold_sql::Statement;
use manifold_sql::cache::Relationship;

use super::expr::{push_condition, push_path, push_value};
use crate::ast::{Direction, Nulls};
use crate::plan::{ConditionPlan, ItemPlan, OrderSource, ReadPlan, ValuePlan};

/// `json_build_object` takes at most 100 arguments: 50 key/value pairs per call.
const PAIRS_PER_OBJECT: usize = 50;

/// The body the statement builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// A JSON array of objects.
    Array {
        /// `json_strip_nulls`.
        strip_nulls: bool,
    },
    /// The first object (the caller checks there was exactly one row).
    Object {
        /// `json_strip_nulls`.
        strip_nulls: bool,
    },
    /// CSV: a header line and one line per row.
    Csv,
    /// No body (HEAD).
    None,
}

/// Whether and how the statement counts the matching rows into `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// `total` is null.
    None,
    /// `count(*)` over every matching row, ignoring paging.
    Exact,
    /// `count(*)` over at most this many matching rows (`count=estimated` below db-max-rows).
    UpTo(i64),
}

/// One output of a level after spreads are lifted: a key and where its value comes from.
enum Output<'p, 'c> {
    Value(&'p ValuePlan<'c>),
    /// Embed `index`'s JSON; arrays default to `[]`.
    Embed {
        index: usize,
        to_many: bool,
    },
    /// Column `position` of spread embed `index`.
    Lifted {
        index: usize,
        position: usize,
        to_many: bool,
    },
}

fn outputs<'p, 'c>(plan: &'p ReadPlan<'c>) -> Vec<(String, Output<'p, 'c>)> {
    let mut list = Vec::new();
    for item in &plan.items {
        match item {
            ItemPlan::Value { label, value } => list.push((label.clone(), Output::Value(value))),
            ItemPlan::Embed(index) => {
                let embed = &plan.embeds[*index];
                let to_many = !embed.relationship.cardinality.is_to_one();
                list.push((
                    embed.label.clone(),
                    Output::Embed {
                        index: *index,
                        to_many,
                    },
                ));
            }
            ItemPlan::Spread(index) => {
                let embed = &plan.embeds[*index];
                let to_many = !embed.relationship.cardinality.is_to_one();
                for (position, (label, _)) in outputs(&embed.plan).into_iter().enumerate() {
                    list.push((
                        label,
                        Output::Lifted {
                            index: *index,
                            position,
                            to_many,
                        },
                    ));
                }
            }
        }
    }
    list
}

/// How a level's select list looks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// The top level: `<row> as pgrst_row`.
    Root(BodyKind),
    /// A to-one embed: `<object> as v, true as x`.
    One,
    /// A to-many embed: `json_agg` over the rows.
    Many,
    /// A to-one spread: `c0, c1, …, true as x`.
    SpreadOne,
    /// A to-many spread: `json_agg` per column.
    SpreadMany,
    /// Filtering only: `true as x`, at most one row.
    Marker,
    /// Counting: `1`, no order or paging.
    Count,
}

struct Renderer {
    stmt: Statement,
    next_alias: usize,
    root_source: RootSource,
}

/// Where the top level reads its rows from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootSource {
    /// The plan's relation itself.
    Relation,
    /// A CTE written earlier in the statement (mutation results, function results).
    Cte(&'static str),
}

/// How [`render_select`] shapes the statement.
pub struct SelectOptions<'a> {
    /// The body to build.
    pub body: BodyKind,
    /// Count the matching rows.
    pub count: Count,
    /// Where the top level reads from.
    pub source: RootSource,
    /// Writes the `inserted` and `location` output columns (each preceded by `, `); reads leave
    /// them null.
    pub extra: &'a dyn Fn(&mut Statement),
}

/// Renders a read of `plan` (paging already final on the root).
pub fn render_read(plan: &ReadPlan<'_>, body: BodyKind, count: Count) -> Statement {
    let mut stmt = Statement::from_static("with ");
    render_select(
        &mut stmt,
        plan,
        &SelectOptions {
            body,
            count,
            source: RootSource::Relation,
            extra: &null_extras,
        },
    );
    stmt
}

/// `explain (format json) select 1 from … where …`: the count query of `plan`, for the planner's
/// row estimate (`count=planned|estimated`).
pub fn render_count_plan(plan: &ReadPlan<'_>) -> Statement {
    let mut r = Renderer {
        stmt: Statement::from_static("explain (format json) "),
        next_alias: 0,
        root_source: RootSource::Relation,
    };
    r.level(plan, Shape::Count, None, &[]);
    r.stmt
}

/// `, null::int8 as inserted, null::text as location`: the result columns reads do not use.
pub fn null_extras(stmt: &mut Statement) {
    stmt.push_sql(", null::int8 as inserted, null::text as location");
}

/// Appends `pgrst_source as (…) select total, page, body, response_headers, response_status,
/// inserted, location from pgrst_source` to a statement that already holds `with` and any
/// earlier CTEs.
pub fn render_select(stmt: &mut Statement, plan: &ReadPlan<'_>, options: &SelectOptions<'_>) {
    let mut r = Renderer {
        stmt: std::mem::take(stmt),
        next_alias: 0,
        root_source: options.source,
    };
    r.stmt.push_sql("pgrst_source as (");
    r.level(plan, Shape::Root(options.body), None, &[]);
    r.stmt.push_sql(") select ");
    if options.count == Count::None {
        r.stmt.push_sql("null::int8");
    } else {
        r.stmt.push_sql("(select count(*) from (");
        r.level(plan, Shape::Count, None, &[]);
        if let Count::UpTo(most) = options.count {
            r.stmt.push_sql(" limit ");
            r.stmt.push_bind(most);
        }
        r.stmt.push_sql(") as pgrst_count)::int8");
    }
    r.stmt.push_sql(" as total, count(*)::int8 as page, ");
    r.body(plan, options.body);
    r.stmt.push_sql(
        " as body, nullif(current_setting('response.headers', true), '') as response_headers, \
         nullif(current_setting('response.status', true), '') as response_status",
    );
    (options.extra)(&mut r.stmt);
    r.stmt.push_sql(" from pgrst_source");
    *stmt = r.stmt;
}

/// Which embeds a level's conditions or `!inner` flags depend on.
fn filtering_embeds(plan: &ReadPlan<'_>) -> BTreeSet<usize> {
    fn walk(condition: &ConditionPlan<'_>, out: &mut BTreeSet<usize>) {
        match condition {
            ConditionPlan::EmbedIsNull { embed, .. } => {
                out.insert(*embed);
            }
            ConditionPlan::Tree { children, .. } => children.iter().for_each(|c| walk(c, out)),
            ConditionPlan::Filter { .. } => {}
        }
    }
    let mut out: BTreeSet<usize> = plan
        .embeds
        .iter()
        .enumerate()
        .filter(|(_, e)| e.inner)
        .map(|(i, _)| i)
        .collect();
    plan.conditions.iter().for_each(|c| walk(c, &mut out));
    out
}

impl Renderer {
    fn fresh(&mut self) -> usize {
        let alias = self.next_alias;
        self.next_alias += 1;
        alias
    }

    /// Writes a full `select … from … where …` for one level. `link` joins it to its parent;
    /// `order_outputs` are (index, column, path) values the parent orders by.
    fn level(
        &mut self,
        plan: &ReadPlan<'_>,
        shape: Shape,
        link: Option<(&Relationship, usize)>,
        order_outputs: &[(usize, &ValuePlan<'_>)],
    ) {
        match shape {
            Shape::Many | Shape::SpreadMany => {
                let inner_alias = self.fresh();
                let list = outputs(plan);
                self.stmt.push_sql("select ");
                if shape == Shape::Many {
                    self.stmt.push_sql("json_agg(");
                    self.stmt.push_alias("s", inner_alias);
                    self.stmt.push_sql(".v) as v, ");
                } else {
                    for position in 0..list.len() {
                        self.stmt.push_sql("json_agg(");
                        self.stmt.push_alias("s", inner_alias);
                        self.stmt.push_sql(".");
                        self.stmt.push_alias("c", position);
                        self.stmt.push_sql(") as ");
                        self.stmt.push_alias("c", position);
                        self.stmt.push_sql(", ");
                    }
                }
                self.stmt.push_sql("bool_or(true) as x from (");
                let inner_shape = if shape == Shape::Many {
                    Shape::One
                } else {
                    Shape::SpreadOne
                };
                self.rows(plan, inner_shape, link, order_outputs, true);
                self.stmt.push_sql(") as ");
                self.stmt.push_alias("s", inner_alias);
            }
            _ => self.rows(plan, shape, link, order_outputs, true),
        }
    }

    /// The row-level select of a level (with paging when `paged`).
    fn rows(
        &mut self,
        plan: &ReadPlan<'_>,
        shape: Shape,
        link: Option<(&Relationship, usize)>,
        order_outputs: &[(usize, &ValuePlan<'_>)],
        paged: bool,
    ) {
        let alias = self.fresh();
        let needed = filtering_embeds(plan);
        let lateral_embeds: Vec<usize> = match shape {
            Shape::Marker | Shape::Count => needed.iter().copied().collect(),
            _ => (0..plan.embeds.len())
                .filter(|i| {
                    plan.embeds[*i].emit || needed.contains(i) || related_order_uses(plan, *i)
                })
                .collect(),
        };
        let embed_aliases: Vec<(usize, usize)> =
            lateral_embeds.iter().map(|&i| (i, self.fresh())).collect();
        let alias_of = |index: usize| -> usize {
            embed_aliases
                .iter()
                .find(|(i, _)| *i == index)
                .map_or(0, |(_, a)| *a)
        };

        self.stmt.push_sql("select ");
        self.select_list(plan, shape, alias, &alias_of, order_outputs);
        self.stmt.push_sql(" from ");
        match (link, self.root_source) {
            (None, RootSource::Cte(name)) => self.stmt.push_sql(name),
            _ => self
                .stmt
                .push_qualified(plan.relation.schema(), plan.relation.name()),
        }
        self.stmt.push_sql(" as ");
        self.stmt.push_alias("t", alias);
        let junction_alias = match link {
            Some((relationship, _)) => self.junction_join(relationship, alias),
            None => None,
        };
        for &(index, embed_alias) in &embed_aliases {
            let embed = &plan.embeds[index];
            let to_many = !embed.relationship.cardinality.is_to_one();
            let child_shape = match shape {
                Shape::Marker | Shape::Count => Shape::Marker,
                _ if !embed.emit => Shape::Marker,
                _ => match (embed.spread, to_many) {
                    (false, false) => Shape::One,
                    (false, true) => Shape::Many,
                    (true, false) => Shape::SpreadOne,
                    (true, true) => Shape::SpreadMany,
                },
            };
            let related: Vec<(usize, ValuePlan<'_>)> = plan
                .order
                .iter()
                .enumerate()
                .filter_map(|(position, order)| match &order.source {
                    OrderSource::Related(i, column, path) if *i == index => Some((
                        position,
                        ValuePlan {
                            column: Some(column),
                            path: path.clone(),
                            cast: None,
                            aggregate: None,
                            aggregate_cast: None,
                        },
                    )),
                    _ => None,
                })
                .collect();
            let related_refs: Vec<(usize, &ValuePlan<'_>)> = related
                .iter()
                .map(|(position, value)| (*position, value))
                .collect();
            self.stmt.push_sql(" left join lateral (");
            self.level(
                &embed.plan,
                child_shape,
                Some((embed.relationship, alias)),
                &related_refs,
            );
            self.stmt.push_sql(") as ");
            self.stmt.push_alias("e", embed_alias);
            self.stmt.push_sql(" on true");
        }

        let mut first = true;
        let mut and = |stmt: &mut Statement| {
            stmt.push_sql(if first { " where " } else { " and " });
            first = false;
        };
        if let Some((relationship, parent_alias)) = link {
            and(&mut self.stmt);
            self.link_condition(relationship, alias, parent_alias, junction_alias);
        }
        for condition in &plan.conditions {
            and(&mut self.stmt);
            push_condition(&mut self.stmt, alias, &alias_of, condition);
        }
        for (index, embed) in plan.embeds.iter().enumerate() {
            if embed.inner {
                and(&mut self.stmt);
                self.stmt.push_alias("e", alias_of(index));
                self.stmt.push_sql(".x is not null");
            }
        }
        if plan.is_grouped() && shape != Shape::Marker {
            self.group_by(plan, alias);
        }
        if matches!(shape, Shape::Count) {
            return;
        }
        if shape == Shape::Marker {
            self.stmt.push_sql(" limit 1");
            return;
        }
        self.order_by(plan, alias, &alias_of);
        if paged {
            if let Some(limit) = plan.limit {
                self.stmt.push_sql(" limit ");
                self.stmt.push_bind(limit);
            }
            if let Some(offset) = plan.offset.filter(|offset| *offset > 0) {
                self.stmt.push_sql(" offset ");
                self.stmt.push_bind(offset);
            }
        }
    }

    fn select_list(
        &mut self,
        plan: &ReadPlan<'_>,
        shape: Shape,
        alias: usize,
        alias_of: &dyn Fn(usize) -> usize,
        order_outputs: &[(usize, &ValuePlan<'_>)],
    ) {
        let list = outputs(plan);
        match shape {
            Shape::Root(BodyKind::None) | Shape::Count => self.stmt.push_sql("1"),
            Shape::Marker => self.stmt.push_sql("true as x"),
            Shape::Root(BodyKind::Csv) => {
                self.stmt.push_sql("row(");
                for (position, (_, output)) in list.iter().enumerate() {
                    if position > 0 {
                        self.stmt.push_sql(", ");
                    }
                    self.output(output, alias, alias_of);
                }
                self.stmt.push_sql(")::text as pgrst_row");
            }
            Shape::Root(_) | Shape::One | Shape::Many => {
                self.object(&list, alias, alias_of);
                self.stmt.push_sql(if matches!(shape, Shape::Root(_)) {
                    " as pgrst_row"
                } else {
                    " as v, true as x"
                });
            }
            Shape::SpreadOne | Shape::SpreadMany => {
                for (position, (_, output)) in list.iter().enumerate() {
                    self.output(output, alias, alias_of);
                    self.stmt.push_sql(" as ");
                    self.stmt.push_alias("c", position);
                    self.stmt.push_sql(", ");
                }
                self.stmt.push_sql("true as x");
            }
        }
        for (position, value) in order_outputs {
            self.stmt.push_sql(", ");
            push_value(&mut self.stmt, alias, value);
            self.stmt.push_sql(" as ");
            self.stmt.push_alias("o", *position);
        }
    }

    /// `json_build_object(k1, v1, …)`, chunked through jsonb for more than 50 keys.
    fn object(
        &mut self,
        list: &[(String, Output<'_, '_>)],
        alias: usize,
        alias_of: &dyn Fn(usize) -> usize,
    ) {
        if list.is_empty() {
            self.stmt.push_sql("json_build_object()");
            return;
        }
        let chunks: Vec<&[(String, Output<'_, '_>)]> = list.chunks(PAIRS_PER_OBJECT).collect();
        let chunked = chunks.len() > 1;
        if chunked {
            self.stmt.push_sql("(");
        }
        for (index, chunk) in chunks.iter().enumerate() {
            if index > 0 {
                self.stmt.push_sql(" || ");
            }
            self.stmt.push_sql(if chunked {
                "jsonb_build_object("
            } else {
                "json_build_object("
            });
            for (position, (label, output)) in chunk.iter().enumerate() {
                if position > 0 {
                    self.stmt.push_sql(", ");
                }
                self.stmt.push_bind(label.as_str());
                self.stmt.push_sql(", ");
                self.output(output, alias, alias_of);
            }
            self.stmt.push_sql(")");
        }
        if chunked {
            self.stmt.push_sql(")::json");
        }
    }

    fn output(&mut self, output: &Output<'_, '_>, alias: usize, alias_of: &dyn Fn(usize) -> usize) {
        match output {
            Output::Value(value) => push_value(&mut self.stmt, alias, value),
            Output::Embed { index, to_many } => {
                if *to_many {
                    self.stmt.push_sql("coalesce(");
                }
                self.stmt.push_alias("e", alias_of(*index));
                self.stmt.push_sql(".v");
                if *to_many {
                    self.stmt.push_sql(", '[]'::json)");
                }
            }
            Output::Lifted {
                index,
                position,
                to_many,
            } => {
                if *to_many {
                    self.stmt.push_sql("coalesce(");
                }
                self.stmt.push_alias("e", alias_of(*index));
                self.stmt.push_sql(".");
                self.stmt.push_alias("c", *position);
                if *to_many {
                    self.stmt.push_sql(", '[]'::json)");
                }
            }
        }
    }

    /// For many-to-many links: `join <junction> as tJ on tJ.<col> = tN.<col> …`.
    fn junction_join(&mut self, relationship: &Relationship, alias: usize) -> Option<usize> {
        let junction = relationship.junction.as_ref()?;
        let junction_alias = self.fresh();
        self.stmt.push_sql(" join ");
        self.stmt
            .push_qualified(&junction.relation.schema, &junction.relation.name);
        self.stmt.push_sql(" as ");
        self.stmt.push_alias("t", junction_alias);
        self.stmt.push_sql(" on ");
        for (position, (junction_column, target_column)) in
            junction.target_columns.iter().enumerate()
        {
            if position > 0 {
                self.stmt.push_sql(" and ");
            }
            self.stmt.push_alias("t", junction_alias);
            self.stmt.push_sql(".");
            self.stmt.push_ident(junction_column);
            self.stmt.push_sql(" = ");
            self.stmt.push_alias("t", alias);
            self.stmt.push_sql(".");
            self.stmt.push_ident(target_column);
        }
        Some(junction_alias)
    }

    fn link_condition(
        &mut self,
        relationship: &Relationship,
        alias: usize,
        parent: usize,
        junction: Option<usize>,
    ) {
        let pairs: Vec<(usize, &manifold_sql::Ident, &manifold_sql::Ident)> =
            match (&relationship.junction, junction) {
                (Some(j), Some(junction_alias)) => j
                    .source_columns
                    .iter()
                    .map(|(junction_column, source_column)| {
                        (junction_alias, junction_column, source_column)
                    })
                    .collect(),
                _ => relationship
                    .columns
                    .iter()
                    .map(|(source, target)| (alias, target, source))
                    .collect(),
            };
        for (position, (child_alias, child_column, parent_column)) in pairs.into_iter().enumerate()
        {
            if position > 0 {
                self.stmt.push_sql(" and ");
            }
            self.stmt.push_alias("t", child_alias);
            self.stmt.push_sql(".");
            self.stmt.push_ident(child_column);
            self.stmt.push_sql(" = ");
            self.stmt.push_alias("t", parent);
            self.stmt.push_sql(".");
            self.stmt.push_ident(parent_column);
        }
    }

    fn group_by(&mut self, plan: &ReadPlan<'_>, alias: usize) {
        let keys: Vec<&ValuePlan<'_>> = plan
            .items
            .iter()
            .filter_map(|item| match item {
                ItemPlan::Value { value, .. } if value.aggregate.is_none() => Some(value),
                _ => None,
            })
            .collect();
        if keys.is_empty() {
            return;
        }
        self.stmt.push_sql(" group by ");
        for (position, value) in keys.into_iter().enumerate() {
            if position > 0 {
                self.stmt.push_sql(", ");
            }
            push_value(&mut self.stmt, alias, value);
        }
    }

    fn order_by(&mut self, plan: &ReadPlan<'_>, alias: usize, alias_of: &dyn Fn(usize) -> usize) {
        for (position, order) in plan.order.iter().enumerate() {
            self.stmt
                .push_sql(if position == 0 { " order by " } else { ", " });
            match &order.source {
                OrderSource::Column(column, path) => {
                    push_path(&mut self.stmt, alias, column, path, true)
                }
                OrderSource::Related(index, _, _) => {
                    self.stmt.push_alias("e", alias_of(*index));
                    self.stmt.push_sql(".");
                    self.stmt.push_alias("o", position);
                }
            }
            match order.direction {
                Some(Direction::Asc) => self.stmt.push_sql(" asc"),
                Some(Direction::Desc) => self.stmt.push_sql(" desc"),
                None => {}
            }
            match order.nulls {
                Some(Nulls::First) => self.stmt.push_sql(" nulls first"),
                Some(Nulls::Last) => self.stmt.push_sql(" nulls last"),
                None => {}
            }
        }
    }

    fn body(&mut self, plan: &ReadPlan<'_>, body: BodyKind) {
        let (open, close) = match body {
            BodyKind::Array { strip_nulls: true } | BodyKind::Object { strip_nulls: true } => {
                ("json_strip_nulls(", ")")
            }
            _ => ("", ""),
        };
        match body {
            BodyKind::None => self.stmt.push_sql("null::text"),
            BodyKind::Array { .. } => {
                self.stmt.push_sql(open);
                self.stmt
                    .push_sql("coalesce(json_agg(pgrst_source.pgrst_row), '[]'::json)");
                self.stmt.push_sql(close);
                self.stmt.push_sql("::text");
            }
            BodyKind::Object { .. } => {
                self.stmt.push_sql("coalesce((");
                self.stmt.push_sql(open);
                self.stmt.push_sql("json_agg(pgrst_source.pgrst_row) -> 0");
                self.stmt.push_sql(close);
                self.stmt.push_sql(")::text, '')");
            }
            BodyKind::Csv => {
                self.stmt
                    .push_sql("case when count(*) = 0 then chr(10) else concat_ws(',', ");
                for (position, (label, _)) in outputs(plan).iter().enumerate() {
                    if position > 0 {
                        self.stmt.push_sql(", ");
                    }
                    self.stmt.push_bind(label.as_str());
                }
                self.stmt.push_sql(
                    ") || chr(10) || string_agg(substr(pgrst_row, 2, length(pgrst_row) - 2), chr(10)) end",
                );
            }
        }
    }
}

fn related_order_uses(plan: &ReadPlan<'_>, index: usize) -> bool {
    plan.order
        .iter()
        .any(|order| matches!(order.source, OrderSource::Related(i, _, _) if i == index))
}
