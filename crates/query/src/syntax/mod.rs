//! From query pairs to [`QueryParams`]: reserved keys, embed paths, filters, trees, ordering and
//! paging, with PostgREST's PGRST100 messages on malformed input.

pub(crate) mod cursor;
pub(crate) mod filter;
pub mod headers;
pub(crate) mod select;

use cursor::{Cursor, SyntaxError};

use crate::ast::{Field, Filter, LogicOperator, LogicTree, OrderTerm, SelectItem};
use crate::error::QueryError;

/// The query string of one request, typed; `path` is the chain of embed labels a parameter
/// applies to (empty for the top level).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryParams {
    /// `select=`; `None` means `*`.
    pub select: Option<Vec<SelectItem>>,
    /// Column filters.
    pub filters: Vec<(Vec<String>, Filter)>,
    /// `or=`/`and=` trees.
    pub trees: Vec<(Vec<String>, LogicTree)>,
    /// `order=` terms.
    pub orders: Vec<(Vec<String>, Vec<OrderTerm>)>,
    /// `limit=`.
    pub limits: Vec<(Vec<String>, i64)>,
    /// `offset=`.
    pub offsets: Vec<(Vec<String>, i64)>,
    /// `columns=` (writes).
    pub columns: Option<Vec<String>>,
    /// `on_conflict=` (upserts).
    pub on_conflict: Option<Vec<String>>,
    /// Function arguments of an RPC called by GET or HEAD.
    pub rpc_args: Vec<(String, String)>,
}

fn parse_error(what: &str, value: &str, error: &SyntaxError) -> QueryError {
    QueryError::parse(what, value, error.column, error.details())
}

/// Types the decoded query pairs. `rpc_read` is true for RPC GET/HEAD, where a parameter whose
/// value is not a filter expression is a function argument.
pub fn parse_params(pairs: &[(String, String)], rpc_read: bool) -> Result<QueryParams, QueryError> {
    let mut params = QueryParams::default();
    for (key, value) in pairs {
        match key.as_str() {
            "select" => {
                if params.select.is_none() {
                    let items = select::parse_select(value)
                        .map_err(|e| parse_error("select parameter", value, &e))?;
                    params.select = Some(items);
                }
                continue;
            }
            "columns" => {
                if params.columns.is_none() {
                    params.columns = Some(
                        name_list(value)
                            .map_err(|e| parse_error("columns parameter", value, &e))?,
                    );
                }
                continue;
            }
            "on_conflict" => {
                if params.on_conflict.is_none() {
                    params.on_conflict = Some(
                        name_list(value)
                            .map_err(|e| parse_error("on_conflict parameter", value, &e))?,
                    );
                }
                continue;
            }
            _ => {}
        }
        let (path, field) = split_key(key).map_err(|e| parse_error("tree path", key, &e))?;
        let last = field.path.is_empty().then_some(field.name.as_str());
        match last {
            Some("order") => {
                let terms =
                    filter::parse_order(value).map_err(|e| parse_error("order", value, &e))?;
                params.orders.push((path, terms));
            }
            Some("limit") => {
                // PostgREST ignores a limit that is not a number.
                if let Ok(limit) = value.trim().parse::<i64>() {
                    if limit < 0 {
                        return Err(QueryError::range(
                            "Limit should be greater than or equal to zero.",
                        ));
                    }
                    params.limits.push((path, limit));
                }
            }
            Some("offset") => {
                if let Ok(offset) = value.trim().parse::<i64>()
                    && offset >= 0
                {
                    params.offsets.push((path, offset));
                }
            }
            Some(word @ ("or" | "and")) => {
                let operator = if word == "or" {
                    LogicOperator::Or
                } else {
                    LogicOperator::And
                };
                let (path, negated) = match path.split_last() {
                    Some((not, rest)) if not == "not" => (rest.to_vec(), true),
                    _ => (path, false),
                };
                let prefix = if negated {
                    format!("not.{word}")
                } else {
                    word.to_owned()
                };
                let tree = filter::parse_logic_tree(operator, negated, value).map_err(|e| {
                    let shifted = SyntaxError {
                        column: e.column + prefix.chars().count(),
                        ..e
                    };
                    parse_error("logic tree", &format!("{prefix}{value}"), &shifted)
                })?;
                params.trees.push((path, tree));
            }
            _ => match filter::parse_filter_value(value) {
                Ok((negated, operation)) => {
                    params.filters.push((
                        path,
                        Filter {
                            field,
                            negated,
                            operation,
                        },
                    ));
                }
                Err(_) if rpc_read && path.is_empty() && field.path.is_empty() => {
                    params.rpc_args.push((field.name, value.clone()));
                }
                Err(error) => return Err(parse_error("filter", value, &error)),
            },
        }
    }
    Ok(params)
}

/// `rel.sub.col->x` → (`[rel, sub]`, `col->x`). Quoted segments may contain dots.
fn split_key(key: &str) -> Result<(Vec<String>, Field), SyntaxError> {
    let mut cursor = Cursor::new(key);
    let mut path = Vec::new();
    loop {
        let field = cursor.field()?;
        if field.path.is_empty() && cursor.eat(".") {
            path.push(field.name);
            continue;
        }
        if !cursor.at_end() {
            return Err(cursor.error(&["\".\"", "end of input"]));
        }
        return Ok((path, field));
    }
}

/// `"a","b"` or `a,b`.
fn name_list(value: &str) -> Result<Vec<String>, SyntaxError> {
    let mut cursor = Cursor::new(value);
    let mut names = Vec::new();
    loop {
        cursor.skip_blanks();
        names.push(cursor.name()?);
        cursor.skip_blanks();
        if cursor.eat(",") {
            continue;
        }
        if !cursor.at_end() {
            return Err(cursor.error(&["\",\"", "end of input"]));
        }
        return Ok(names);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::{Operation, SimpleOperator};

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn reserved_keys_paths_and_filters() {
        let params = parse_params(
            &pairs(&[
                ("select", "id,rel(x)"),
                ("select", "ignored"),
                ("id", "gt.1"),
                ("id", "lt.5"),
                ("rel.flag", "eq.true"),
                ("rel.or", "(x.eq.1)"),
                ("not.and", "(a.eq.1,b.eq.2)"),
                ("order", "id.desc"),
                ("rel.order", "x"),
                ("limit", "10"),
                ("rel.limit", "3"),
                ("offset", "20"),
                ("limit", "abc"),
                ("meta->>color", "eq.red"),
                ("columns", "\"a\",\"b c\""),
                ("on_conflict", "id"),
            ]),
            false,
        )
        .unwrap();
        assert_eq!(params.select.as_ref().unwrap().len(), 2);
        assert_eq!(params.filters.len(), 4);
        assert_eq!(params.filters[2].0, vec!["rel".to_owned()]);
        assert_eq!(params.filters[3].1.field.path.len(), 1);
        assert_eq!(params.trees.len(), 2);
        assert_eq!(params.trees[0].0, vec!["rel".to_owned()]);
        assert!(matches!(
            params.trees[1].1,
            LogicTree::Node {
                negated: true,
                operator: LogicOperator::And,
                ..
            }
        ));
        assert_eq!(params.orders.len(), 2);
        assert_eq!(
            params.limits,
            vec![(vec![], 10), (vec!["rel".to_owned()], 3)]
        );
        assert_eq!(params.offsets, vec![(vec![], 20)]);
        assert_eq!(params.columns, Some(vec!["a".to_owned(), "b c".to_owned()]));
        assert_eq!(params.on_conflict, Some(vec!["id".to_owned()]));
    }

    #[test]
    fn postgrest_parse_messages() {
        let error = parse_params(&pairs(&[("id", "0")]), false).unwrap_err();
        assert_eq!(error.code, "PGRST100");
        assert_eq!(
            error.message,
            "\"failed to parse filter (0)\" (line 1, column 1)"
        );
        assert_eq!(
            error.details,
            "unexpected \"0\" expecting \"not\" or operator (eq, gt, ...)"
        );

        let error = parse_params(&pairs(&[("order", "id.asc.nullslasttt")]), false).unwrap_err();
        assert_eq!(
            error.message,
            "\"failed to parse order (id.asc.nullslasttt)\" (line 1, column 17)"
        );

        let error = parse_params(&pairs(&[("or", "()")]), false).unwrap_err();
        assert_eq!(
            error.message,
            "\"failed to parse logic tree (or())\" (line 1, column 4)"
        );

        let error = parse_params(&pairs(&[("limit", "-1")]), false).unwrap_err();
        assert_eq!((error.status, error.code), (416, "PGRST103"));
        assert_eq!(
            error.details,
            "Limit should be greater than or equal to zero."
        );
    }

    #[test]
    fn rpc_reads_take_non_filters_as_arguments() {
        let params =
            parse_params(&pairs(&[("a", "1"), ("b", "{1,2}"), ("col", "eq.3")]), true).unwrap();
        assert_eq!(
            params.rpc_args,
            vec![("a".into(), "1".into()), ("b".into(), "{1,2}".into())]
        );
        assert_eq!(params.filters.len(), 1);
        assert!(
            matches!(&params.filters[0].1.operation, Operation::Simple(SimpleOperator::Eq, v) if v == "3")
        );
    }
}
