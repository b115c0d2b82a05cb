//! Filter values (`[not.]op[(any|all)][(config)].value`), `in` lists, logic trees
//! (`or=(a.eq.1,and(b.gt.2,c.is.null))`) and `order` terms.

use super::cursor::{Cursor, SyntaxError};
use crate::ast::{
    Direction, Filter, FtsOperator, IsValue, LogicOperator, LogicTree, Nulls, Operation, OrderTerm,
    Quantifier, SimpleOperator,
};

/// Logic trees nest at most this deep.
const MAX_TREE_DEPTH: usize = 64;

/// Where a filter value ends: the rest of the parameter, or the next `,`/`)` inside a tree.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    Parameter,
    Tree,
}

/// Parses the value of a filter parameter: `[not.]operation`.
pub(crate) fn parse_filter_value(text: &str) -> Result<(bool, Operation), SyntaxError> {
    let mut cursor = Cursor::new(text);
    let result = operation(&mut cursor, Context::Parameter)?;
    if !cursor.at_end() {
        return Err(cursor.error(&["end of input"]));
    }
    Ok(result)
}

fn operation(cursor: &mut Cursor, context: Context) -> Result<(bool, Operation), SyntaxError> {
    let negated = cursor.eat("not.");
    let saved = cursor.clone();
    let mut name = String::new();
    while let Some(ch) = cursor.peek().filter(char::is_ascii_lowercase) {
        name.push(ch);
        cursor.bump();
    }
    let operation = match name.as_str() {
        "in" => {
            cursor.expect(".")?;
            Operation::In(list(cursor)?)
        }
        "is" => {
            cursor.expect(".")?;
            let value = if cursor.eat_ignore_case("not_null") {
                IsValue::NotNull
            } else if cursor.eat_ignore_case("null") {
                IsValue::Null
            } else if cursor.eat_ignore_case("true") {
                IsValue::True
            } else if cursor.eat_ignore_case("false") {
                IsValue::False
            } else if cursor.eat_ignore_case("unknown") {
                IsValue::Unknown
            } else {
                return Err(cursor.error(&["null", "not_null", "true", "false", "unknown"]));
            };
            Operation::Is(value)
        }
        _ => {
            if let Some(fts) = FtsOperator::from_name(&name) {
                let config = if cursor.eat("(") {
                    let config = cursor.name()?;
                    cursor.expect(")")?;
                    Some(config)
                } else {
                    None
                };
                cursor.expect(".")?;
                Operation::Fts(fts, config, value(cursor, context)?)
            } else if let Some(op) = SimpleOperator::from_name(&name) {
                let quantifier = if cursor.eat("(any)") {
                    Some(Quantifier::Any)
                } else if cursor.eat("(all)") {
                    Some(Quantifier::All)
                } else {
                    None
                };
                cursor.expect(".")?;
                let value = value(cursor, context)?;
                match quantifier {
                    Some(q) if op.quantifiable() => Operation::Quantified(op, q, value),
                    Some(_) => return Err(saved.error(&["operator"])),
                    None => Operation::Simple(op, value),
                }
            } else if negated {
                return Err(saved.error(&["operator (eq, gt, ...)"]));
            } else {
                return Err(saved.error(&["\"not\"", "operator (eq, gt, ...)"]));
            }
        }
    };
    Ok((negated, operation))
}

/// A value: the rest of a parameter, or (in a tree) up to the next `,` or `)`, where a
/// double-quoted value may contain them and `{…}` array literals may contain commas.
fn value(cursor: &mut Cursor, context: Context) -> Result<String, SyntaxError> {
    if context == Context::Parameter {
        return Ok(cursor.rest());
    }
    if cursor.peek() == Some('"') {
        return cursor.quoted();
    }
    let mut out = String::new();
    let mut braces = 0usize;
    while let Some(ch) = cursor.peek() {
        match ch {
            '{' => braces += 1,
            '}' => braces = braces.saturating_sub(1),
            ',' | ')' if braces == 0 => break,
            _ => {}
        }
        out.push(ch);
        cursor.bump();
    }
    Ok(out)
}

/// `(a,"b,c",d)`: elements end at `,` or `)` unless double-quoted.
fn list(cursor: &mut Cursor) -> Result<Vec<String>, SyntaxError> {
    cursor.expect("(")?;
    let mut items = Vec::new();
    if cursor.eat(")") {
        return Ok(items);
    }
    loop {
        if cursor.peek() == Some('"') {
            items.push(cursor.quoted()?);
        } else {
            let mut item = String::new();
            while let Some(ch) = cursor.peek().filter(|c| !matches!(c, ',' | ')')) {
                item.push(ch);
                cursor.bump();
            }
            items.push(item);
        }
        if cursor.eat(",") {
            continue;
        }
        cursor.expect(")")?;
        return Ok(items);
    }
}

/// Parses the value of `or=` / `and=` (and their `not.` forms): `(term,term,…)`.
pub(crate) fn parse_logic_tree(
    operator: LogicOperator,
    negated: bool,
    text: &str,
) -> Result<LogicTree, SyntaxError> {
    let mut cursor = Cursor::new(text);
    let children = tree_children(&mut cursor, 0)?;
    if !cursor.at_end() {
        return Err(cursor.error(&["end of input"]));
    }
    Ok(LogicTree::Node {
        operator,
        negated,
        children,
    })
}

fn tree_children(cursor: &mut Cursor, depth: usize) -> Result<Vec<LogicTree>, SyntaxError> {
    if depth > MAX_TREE_DEPTH {
        return Err(cursor.error(&["a shallower logic tree"]));
    }
    cursor.expect("(")?;
    let mut children = Vec::new();
    loop {
        cursor.skip_blanks();
        children.push(tree_term(cursor, depth)?);
        cursor.skip_blanks();
        if cursor.eat(",") {
            continue;
        }
        cursor.expect(")")?;
        return Ok(children);
    }
}

fn tree_term(cursor: &mut Cursor, depth: usize) -> Result<LogicTree, SyntaxError> {
    let saved = cursor.clone();
    let negated = cursor.eat("not.");
    for (word, operator) in [("and(", LogicOperator::And), ("or(", LogicOperator::Or)] {
        if cursor.starts_with(word) {
            cursor.eat(&word[..word.len() - 1]);
            let children = tree_children(cursor, depth + 1)?;
            return Ok(LogicTree::Node {
                operator,
                negated,
                children,
            });
        }
    }
    *cursor = saved;
    let field = cursor.field()?;
    if !cursor.eat(".") {
        return Err(cursor.error(&["\".\""]));
    }
    let (negated, operation) = operation(cursor, Context::Tree)?;
    Ok(LogicTree::Leaf(Filter {
        field,
        negated,
        operation,
    }))
}

/// Parses `order=`: `col[.asc|.desc][.nullsfirst|.nullslast]`, `rel(col)…`, JSON paths.
pub(crate) fn parse_order(text: &str) -> Result<Vec<OrderTerm>, SyntaxError> {
    let mut cursor = Cursor::new(text);
    let mut terms = Vec::new();
    loop {
        cursor.skip_blanks();
        let first = cursor.field()?;
        let (relation, field) = if first.path.is_empty() && cursor.eat("(") {
            let field = cursor.field()?;
            cursor.expect(")")?;
            (Some(first.name), field)
        } else {
            (None, first)
        };
        let mut direction = None;
        let mut nulls = None;
        while cursor.eat(".") {
            if direction.is_none() && nulls.is_none() && cursor.eat("asc") {
                direction = Some(Direction::Asc);
            } else if direction.is_none() && nulls.is_none() && cursor.eat("desc") {
                direction = Some(Direction::Desc);
            } else if nulls.is_none() && cursor.eat("nullsfirst") {
                nulls = Some(Nulls::First);
            } else if nulls.is_none() && cursor.eat("nullslast") {
                nulls = Some(Nulls::Last);
            } else {
                return Err(cursor.error(&[
                    "\"asc\"",
                    "\"desc\"",
                    "\"nullsfirst\"",
                    "\"nullslast\"",
                ]));
            }
        }
        terms.push(OrderTerm {
            relation,
            field,
            direction,
            nulls,
        });
        cursor.skip_blanks();
        if cursor.eat(",") {
            continue;
        }
        if !cursor.at_end() {
            return Err(cursor.error(&["\",\"", "end of input"]));
        }
        return Ok(terms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::{Arrow, Field, JsonKey, JsonStep};

    #[test]
    fn simple_values_take_the_whole_rest() {
        assert_eq!(
            parse_filter_value("eq.a.b,(c)").unwrap(),
            (
                false,
                Operation::Simple(SimpleOperator::Eq, "a.b,(c)".into())
            )
        );
        assert_eq!(
            parse_filter_value("not.like.*x*").unwrap(),
            (true, Operation::Simple(SimpleOperator::Like, "*x*".into()))
        );
        assert_eq!(
            parse_filter_value("eq.").unwrap().1,
            Operation::Simple(SimpleOperator::Eq, String::new())
        );
    }

    #[test]
    fn lists_quantifiers_is_and_fts() {
        assert_eq!(
            parse_filter_value("in.(\"a,b\",c,\"d(e)\",1)").unwrap().1,
            Operation::In(vec!["a,b".into(), "c".into(), "d(e)".into(), "1".into()])
        );
        assert_eq!(
            parse_filter_value("in.()").unwrap().1,
            Operation::In(vec![])
        );
        assert_eq!(
            parse_filter_value("like(all).{a%,%b}").unwrap().1,
            Operation::Quantified(SimpleOperator::Like, Quantifier::All, "{a%,%b}".into())
        );
        assert_eq!(
            parse_filter_value("is.NULL").unwrap().1,
            Operation::Is(IsValue::Null)
        );
        assert_eq!(
            parse_filter_value("is.not_null").unwrap().1,
            Operation::Is(IsValue::NotNull)
        );
        assert_eq!(
            parse_filter_value("wfts(english).'fat' & 'cat'").unwrap().1,
            Operation::Fts(
                FtsOperator::Websearch,
                Some("english".into()),
                "'fat' & 'cat'".into()
            )
        );
    }

    #[test]
    fn bad_operators_are_errors() {
        assert!(parse_filter_value("foo.1").is_err());
        assert!(parse_filter_value("is.maybe").is_err());
        assert!(parse_filter_value("cs(any).{1}").is_err());
        assert!(parse_filter_value("in.(1,2").is_err());
    }

    #[test]
    fn trees_nest_and_quote() {
        let tree = parse_logic_tree(
            LogicOperator::Or,
            false,
            "(age.eq.14,not.and(age.gte.11,age.lte.17),name.eq.\"a,b\",tags.cs.{x,y},k.in.(1,2),rel.is.null)",
        )
        .unwrap();
        let LogicTree::Node { children, .. } = tree else {
            panic!()
        };
        assert_eq!(children.len(), 6);
        assert!(
            matches!(&children[1], LogicTree::Node { operator: LogicOperator::And, negated: true, children } if children.len() == 2)
        );
        assert!(
            matches!(&children[2], LogicTree::Leaf(Filter { operation: Operation::Simple(_, v), .. }) if v == "a,b")
        );
        assert!(
            matches!(&children[3], LogicTree::Leaf(Filter { operation: Operation::Simple(_, v), .. }) if v == "{x,y}")
        );
        assert!(
            matches!(&children[4], LogicTree::Leaf(Filter { operation: Operation::In(items), .. }) if items.len() == 2)
        );
        assert!(parse_logic_tree(LogicOperator::And, false, "(a.eq.1").is_err());
        assert!(parse_logic_tree(LogicOperator::And, false, "a.eq.1").is_err());
    }

    #[test]
    fn order_terms() {
        let terms =
            parse_order("a,b.desc.nullsfirst,rel(c).asc,data->>age.desc,d.nullslast").unwrap();
        assert_eq!(terms.len(), 5);
        assert_eq!(terms[1].direction, Some(Direction::Desc));
        assert_eq!(terms[1].nulls, Some(Nulls::First));
        assert_eq!(terms[2].relation.as_deref(), Some("rel"));
        assert_eq!(
            terms[2].field,
            Field {
                name: "c".into(),
                path: vec![]
            }
        );
        assert_eq!(
            terms[3].field.path,
            vec![JsonStep {
                arrow: Arrow::Text,
                key: JsonKey::Name("age".into())
            }]
        );
        assert_eq!(terms[4].nulls, Some(Nulls::Last));
        assert!(parse_order("a.sideways").is_err());
    }
}
