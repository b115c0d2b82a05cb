//! Planning: every name in the request is resolved against the schema cache into a tree of
//! [`ReadPlan`]s. Unknown names fail here, before the database is touched.

mod call;
mod embed;
mod mutate;

pub use call::{CallArgs, CallPlan, CallResult};

pub use mutate::{WriteKind, WritePlan};

use manifold_sql::SchemaCache;
use manifold_sql::cache::{Column, Relation, Relationship, SqlType};

use crate::ast::{
    AggregateFunction, Direction, EmbedSelect, FieldSelect, Filter, IsValue, JoinType, JsonStep,
    LogicOperator, LogicTree, Nulls, Operation, OrderTerm, SelectItem,
};
use crate::error::{ErrorKind, QueryError};
use crate::fuzzy::{STRICT, best_match};
use crate::syntax::QueryParams;

/// A column expression: column, JSON path, cast, aggregate.
#[derive(Debug, Clone)]
pub struct ValuePlan<'c> {
    /// The column; `None` for a bare `count()`.
    pub column: Option<&'c Column>,
    /// JSON path steps.
    pub path: Vec<JsonStep>,
    /// Cast before any aggregate.
    pub cast: Option<SqlType>,
    /// Aggregate function.
    pub aggregate: Option<AggregateFunction>,
    /// Cast after the aggregate.
    pub aggregate_cast: Option<SqlType>,
}

/// One output of a plan level, in select order.
#[derive(Debug, Clone)]
pub enum ItemPlan<'c> {
    /// A key and its value.
    Value {
        /// Output key.
        label: String,
        /// The value.
        value: ValuePlan<'c>,
    },
    /// An embedded resource under its label (index into `embeds`).
    Embed(usize),
    /// A spread embed: its outputs are lifted into this level (index into `embeds`).
    Spread(usize),
}

/// A condition on one plan level.
#[derive(Debug, Clone)]
pub enum ConditionPlan<'c> {
    /// A column filter.
    Filter {
        /// Column and JSON path tested.
        column: &'c Column,
        /// JSON path.
        path: Vec<JsonStep>,
        /// `not.`.
        negated: bool,
        /// The test.
        operation: Operation,
    },
    /// `rel=is.null` / `rel=not.is.null` on an embed (index into `embeds`).
    EmbedIsNull {
        /// The embed.
        embed: usize,
        /// True for `is.null`.
        is_null: bool,
    },
    /// An `and`/`or` tree.
    Tree {
        /// Operator.
        operator: LogicOperator,
        /// `not.`.
        negated: bool,
        /// Children.
        children: Vec<ConditionPlan<'c>>,
    },
}

/// What an `order` term sorts by.
#[derive(Debug, Clone)]
pub enum OrderSource<'c> {
    /// A column of this level.
    Column(&'c Column, Vec<JsonStep>),
    /// A column of a to-one embed (index into `embeds`).
    Related(usize, &'c Column, Vec<JsonStep>),
}

/// One `order` term, resolved.
#[derive(Debug, Clone)]
pub struct OrderPlan<'c> {
    /// What to sort by.
    pub source: OrderSource<'c>,
    /// Direction.
    pub direction: Option<Direction>,
    /// Null placement.
    pub nulls: Option<Nulls>,
}

/// An embedded resource.
#[derive(Debug, Clone)]
pub struct EmbedPlan<'c> {
    /// Output key (alias or target).
    pub label: String,
    /// The name written before `(` (filters may still use it when an alias is set).
    pub target: String,
    /// How it joins.
    pub relationship: &'c Relationship,
    /// `!inner`, or a `not.is.null` filter on it.
    pub inner: bool,
    /// `...` spread.
    pub spread: bool,
    /// `rel()`: selected for filtering only, not output.
    pub emit: bool,
    /// What to read from it.
    pub plan: ReadPlan<'c>,
}

/// One level of a read: a relation with its outputs, conditions, order, paging and embeds.
#[derive(Debug, Clone)]
pub struct ReadPlan<'c> {
    /// The relation read.
    pub relation: &'c Relation,
    /// Outputs.
    pub items: Vec<ItemPlan<'c>>,
    /// Conditions, ANDed.
    pub conditions: Vec<ConditionPlan<'c>>,
    /// Sort order.
    pub order: Vec<OrderPlan<'c>>,
    /// `limit`.
    pub limit: Option<i64>,
    /// `offset`.
    pub offset: Option<i64>,
    /// Embedded resources.
    pub embeds: Vec<EmbedPlan<'c>>,
}

impl ReadPlan<'_> {
    /// True when any output aggregates (the level is then grouped by its other outputs).
    pub fn is_grouped(&self) -> bool {
        self.items
            .iter()
            .any(|item| matches!(item, ItemPlan::Value { value, .. } if value.aggregate.is_some()))
    }

    /// The embed a parameter path segment names: by label, or (as PostgREST before v16 still
    /// allows) by its relation name when that is unambiguous.
    fn embed_index(&self, name: &str) -> Option<usize> {
        if let Some(index) = self.embeds.iter().position(|embed| embed.label == name) {
            return Some(index);
        }
        let mut by_target = self
            .embeds
            .iter()
            .enumerate()
            .filter(|(_, embed)| embed.target == name);
        match (by_target.next(), by_target.next()) {
            (Some((index, _)), None) => Some(index),
            _ => None,
        }
    }
}

/// Planning context.
pub(crate) struct Planner<'c> {
    pub(crate) cache: &'c SchemaCache,
    pub(crate) aggregates_enabled: bool,
}

impl<'c> Planner<'c> {
    /// The relation a request names, or PGRST205 with a suggestion.
    pub(crate) fn relation(&self, schema: &str, name: &str) -> Result<&'c Relation, QueryError> {
        self.cache.relation(schema, name).ok_or_else(|| {
            let names = self.cache.relations_in(schema).map(|r| r.name().as_str());
            let hint = best_match(name, names, STRICT)
                .map(|(found, _)| {
                    serde_json::Value::String(format!(
                        "Perhaps you meant the table '{schema}.{found}'"
                    ))
                })
                .unwrap_or(serde_json::Value::Null);
            QueryError::new(
                404,
                "PGRST205",
                format!("Could not find the table '{schema}.{name}' in the schema cache"),
            )
            .with_hint(hint)
            .kind(ErrorKind::UnknownName)
        })
    }

    /// Plans a read of `relation` with the request's query string.
    pub(crate) fn read(
        &self,
        relation: &'c Relation,
        select: Option<&[SelectItem]>,
        params: &QueryParams,
    ) -> Result<ReadPlan<'c>, QueryError> {
        let default = [SelectItem::Star];
        let mut plan = self.level(relation, select.unwrap_or(&default))?;
        for (path, filter) in &params.filters {
            let node = descend(&mut plan, path)?;
            let condition = self.condition_for_filter(node, filter)?;
            if let ConditionPlan::EmbedIsNull {
                embed,
                is_null: false,
            } = condition
            {
                node.embeds[embed].inner = true;
            }
            node.conditions.push(condition);
        }
        for (path, tree) in &params.trees {
            let node = descend(&mut plan, path)?;
            let condition = self.condition_for_tree(node, tree)?;
            node.conditions.push(condition);
        }
        for (path, terms) in &params.orders {
            let node = descend(&mut plan, path)?;
            for term in terms {
                let order = self.order_term(node, term)?;
                node.order.push(order);
            }
        }
        for (path, limit) in &params.limits {
            descend(&mut plan, path)?.limit = Some(*limit);
        }
        for (path, offset) in &params.offsets {
            descend(&mut plan, path)?.offset = Some(*offset);
        }
        Ok(plan)
    }

    fn level(
        &self,
        relation: &'c Relation,
        items: &[SelectItem],
    ) -> Result<ReadPlan<'c>, QueryError> {
        let mut plan = ReadPlan {
            relation,
            items: Vec::new(),
            conditions: Vec::new(),
            order: Vec::new(),
            limit: None,
            offset: None,
            embeds: Vec::new(),
        };
        for item in items {
            match item {
                SelectItem::Star => {
                    for column in &relation.columns {
                        plan.items.push(ItemPlan::Value {
                            label: column.name.as_str().to_owned(),
                            value: ValuePlan {
                                column: Some(column),
                                path: Vec::new(),
                                cast: None,
                                aggregate: None,
                                aggregate_cast: None,
                            },
                        });
                    }
                }
                SelectItem::Field(field) => {
                    let (label, value) = self.field(relation, field)?;
                    plan.items.push(ItemPlan::Value { label, value });
                }
                SelectItem::Embed(embed) => {
                    let planned = self.embed(relation, embed)?;
                    let index = plan.embeds.len();
                    let item = if planned.spread {
                        ItemPlan::Spread(index)
                    } else {
                        ItemPlan::Embed(index)
                    };
                    if planned.emit {
                        plan.items.push(item);
                    }
                    plan.embeds.push(planned);
                }
            }
        }
        if plan.is_grouped() && !plan.embeds.is_empty() {
            return Err(QueryError::not_implemented(
                "Aggregates are not implemented together with embedded resources.",
            ));
        }
        Ok(plan)
    }

    fn field(
        &self,
        relation: &'c Relation,
        field: &FieldSelect,
    ) -> Result<(String, ValuePlan<'c>), QueryError> {
        if field.aggregate.is_some() && !self.aggregates_enabled {
            return Err(QueryError::aggregates_disabled());
        }
        let column = match &field.field {
            Some(f) => Some(column(relation, &f.name)?),
            None => None,
        };
        let label = match (&field.alias, &field.field, field.aggregate) {
            (Some(alias), _, _) => alias.clone(),
            (None, _, Some(aggregate)) => aggregate.name().to_owned(),
            (None, Some(f), None) => f.default_label(),
            (None, None, None) => "count".to_owned(),
        };
        Ok((
            label,
            ValuePlan {
                column,
                path: field
                    .field
                    .as_ref()
                    .map(|f| f.path.clone())
                    .unwrap_or_default(),
                cast: field
                    .cast
                    .as_deref()
                    .map(|t| self.cast_type(t))
                    .transpose()?,
                aggregate: field.aggregate,
                aggregate_cast: field
                    .aggregate_cast
                    .as_deref()
                    .map(|t| self.cast_type(t))
                    .transpose()?,
            },
        ))
    }

    fn cast_type(&self, written: &str) -> Result<SqlType, QueryError> {
        self.cache.cast_type(written).ok_or_else(|| {
            QueryError::new(400, "42704", format!("type \"{written}\" does not exist"))
                .kind(ErrorKind::UnknownName)
        })
    }

    fn embed(
        &self,
        parent: &'c Relation,
        select: &EmbedSelect,
    ) -> Result<EmbedPlan<'c>, QueryError> {
        let relationship = embed::resolve(self.cache, parent, select)?;
        let target = self
            .cache
            .relation_of(&relationship.target)
            .ok_or_else(|| {
                self.relation(
                    relationship.target.schema.as_str(),
                    relationship.target.name.as_str(),
                )
                .err()
                .unwrap_or_else(QueryError::invalid_path)
            })?;
        let plan = self.level(target, &select.items)?;
        Ok(EmbedPlan {
            label: select.label().to_owned(),
            target: select.target.clone(),
            relationship,
            inner: select.join == Some(JoinType::Inner),
            spread: select.spread,
            emit: !select.items.is_empty(),
            plan,
        })
    }

    fn condition_for_filter(
        &self,
        node: &ReadPlan<'c>,
        filter: &Filter,
    ) -> Result<ConditionPlan<'c>, QueryError> {
        if filter.field.path.is_empty()
            && let Some(embed) = node.embed_index(&filter.field.name)
            && let Operation::Is(value @ (IsValue::Null | IsValue::NotNull)) = filter.operation
        {
            let is_null = (value == IsValue::Null) != filter.negated;
            return Ok(ConditionPlan::EmbedIsNull { embed, is_null });
        }
        // A column of the same name wins; otherwise an embed takes only `is.null` tests.
        if filter.field.path.is_empty()
            && node.relation.column(&filter.field.name).is_none()
            && node.embed_index(&filter.field.name).is_some()
        {
            return Err(QueryError::embed_filter(&filter.field.name));
        }
        Ok(ConditionPlan::Filter {
            column: column(node.relation, &filter.field.name)?,
            path: filter.field.path.clone(),
            negated: filter.negated,
            operation: filter.operation.clone(),
        })
    }

    fn condition_for_tree(
        &self,
        node: &ReadPlan<'c>,
        tree: &LogicTree,
    ) -> Result<ConditionPlan<'c>, QueryError> {
        match tree {
            LogicTree::Leaf(filter) => self.condition_for_filter(node, filter),
            LogicTree::Node {
                operator,
                negated,
                children,
            } => Ok(ConditionPlan::Tree {
                operator: *operator,
                negated: *negated,
                children: children
                    .iter()
                    .map(|child| self.condition_for_tree(node, child))
                    .collect::<Result<_, _>>()?,
            }),
        }
    }

    fn order_term(
        &self,
        node: &ReadPlan<'c>,
        term: &OrderTerm,
    ) -> Result<OrderPlan<'c>, QueryError> {
        let source = match &term.relation {
            None => OrderSource::Column(
                column(node.relation, &term.field.name)?,
                term.field.path.clone(),
            ),
            Some(label) => {
                let index = node
                    .embed_index(label)
                    .ok_or_else(|| QueryError::not_embedded(label))?;
                let embed = &node.embeds[index];
                if !embed.relationship.cardinality.is_to_one() {
                    return Err(QueryError::related_order_not_to_one(
                        node.relation.name().as_str(),
                        label,
                    ));
                }
                OrderSource::Related(
                    index,
                    column(embed.plan.relation, &term.field.name)?,
                    term.field.path.clone(),
                )
            }
        };
        Ok(OrderPlan {
            source,
            direction: term.direction,
            nulls: term.nulls,
        })
    }
}

/// The plan level a parameter path names (`rel.sub`), or PGRST108.
fn descend<'p, 'c>(
    plan: &'p mut ReadPlan<'c>,
    path: &[String],
) -> Result<&'p mut ReadPlan<'c>, QueryError> {
    let mut node = plan;
    for label in path {
        let index = node
            .embed_index(label)
            .ok_or_else(|| QueryError::not_embedded(label))?;
        node = &mut node.embeds[index].plan;
    }
    Ok(node)
}

/// A column by name, or PostgreSQL's 42703 as PostgREST passes it through.
fn column<'c>(relation: &'c Relation, name: &str) -> Result<&'c Column, QueryError> {
    relation
        .column(name)
        .ok_or_else(|| unknown_column(relation, name))
}

/// PostgreSQL's "column … does not exist", as PostgREST passes it through (400).
pub(crate) fn unknown_column(relation: &Relation, name: &str) -> QueryError {
    QueryError::new(
        400,
        "42703",
        format!("column {}.{name} does not exist", relation.name()),
    )
    .kind(ErrorKind::UnknownName)
}
