//! The `select=` grammar: columns, `*`, aliases, casts, JSON paths, aggregates and embedded
//! resources with hints, join types and spreads, nested to any depth.

use super::cursor::{Cursor, SyntaxError};
use crate::ast::{AggregateFunction, EmbedSelect, FieldSelect, JoinType, SelectItem};

/// Embeds nest at most this deep; deeper requests are refused rather than recursed into.
const MAX_DEPTH: usize = 32;

/// Parses a whole `select` value.
pub(crate) fn parse_select(text: &str) -> Result<Vec<SelectItem>, SyntaxError> {
    let mut cursor = Cursor::new(text);
    let items = items(&mut cursor, 0)?;
    cursor.skip_blanks();
    if !cursor.at_end() {
        return Err(cursor.error(&["\",\"", "end of input"]));
    }
    Ok(items)
}

fn items(cursor: &mut Cursor, depth: usize) -> Result<Vec<SelectItem>, SyntaxError> {
    let mut items = Vec::new();
    loop {
        cursor.skip_blanks();
        // `rel()` selects nothing: the embed only filters.
        if depth > 0 && items.is_empty() && cursor.peek() == Some(')') {
            return Ok(items);
        }
        items.push(item(cursor, depth)?);
        cursor.skip_blanks();
        if !cursor.eat(",") {
            return Ok(items);
        }
    }
}

fn item(cursor: &mut Cursor, depth: usize) -> Result<SelectItem, SyntaxError> {
    if cursor.eat("*") {
        return Ok(SelectItem::Star);
    }
    if cursor.eat("...") {
        let target = cursor.name()?;
        return embed(cursor, depth, target, None, true);
    }
    let alias = alias(cursor);
    cursor.skip_blanks();
    if cursor.starts_with("count()") {
        cursor.eat("count()");
        return Ok(SelectItem::Field(FieldSelect {
            field: None,
            alias,
            cast: None,
            aggregate: Some(AggregateFunction::Count),
            aggregate_cast: cast(cursor)?,
        }));
    }
    let field = cursor.field()?;
    if field.path.is_empty() && matches!(cursor.peek(), Some('!' | '(')) {
        return embed(cursor, depth, field.name, alias, false);
    }
    let cast = cast(cursor)?;
    let mut aggregate = None;
    let mut aggregate_cast = None;
    if cursor.peek() == Some('.') {
        cursor.bump();
        let name = cursor.name()?;
        aggregate = Some(
            AggregateFunction::from_name(&name)
                .ok_or_else(|| cursor.error(&["count()", "sum()", "avg()", "min()", "max()"]))?,
        );
        cursor.expect("()")?;
        aggregate_cast = cast_after(cursor)?;
    }
    Ok(SelectItem::Field(FieldSelect {
        field: Some(field),
        alias,
        cast,
        aggregate,
        aggregate_cast,
    }))
}

/// `name:` (but not `name::type`); nothing is consumed when there is no alias.
fn alias(cursor: &mut Cursor) -> Option<String> {
    let saved = cursor.clone();
    match cursor.name() {
        Ok(name) if cursor.peek() == Some(':') && cursor.peek_at(1) != Some(':') => {
            cursor.bump();
            Some(name)
        }
        _ => {
            *cursor = saved;
            None
        }
    }
}

fn cast(cursor: &mut Cursor) -> Result<Option<String>, SyntaxError> {
    if !cursor.eat("::") {
        return Ok(None);
    }
    type_name(cursor).map(Some)
}

fn cast_after(cursor: &mut Cursor) -> Result<Option<String>, SyntaxError> {
    cast(cursor)
}

fn type_name(cursor: &mut Cursor) -> Result<String, SyntaxError> {
    let mut name = String::new();
    while let Some(ch) = cursor.peek() {
        if ch.is_alphanumeric() || matches!(ch, '_' | ' ' | '[' | ']') {
            name.push(ch);
            cursor.bump();
        } else {
            break;
        }
    }
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(cursor.error(&["cast type"]));
    }
    Ok(trimmed.to_owned())
}

fn embed(
    cursor: &mut Cursor,
    depth: usize,
    target: String,
    alias: Option<String>,
    spread: bool,
) -> Result<SelectItem, SyntaxError> {
    if depth >= MAX_DEPTH {
        return Err(cursor.error(&["a shallower embedding"]));
    }
    let mut hint = None;
    let mut join = None;
    while cursor.eat("!") {
        let word = cursor.name()?;
        match word.as_str() {
            "inner" if join.is_none() => join = Some(JoinType::Inner),
            "left" if join.is_none() => join = Some(JoinType::Left),
            _ if hint.is_none() => hint = Some(word),
            _ => return Err(cursor.error(&["\"(\""])),
        }
    }
    cursor.expect("(")?;
    let items = items(cursor, depth + 1)?;
    cursor.skip_blanks();
    cursor.expect(")")?;
    Ok(SelectItem::Embed(EmbedSelect {
        target,
        alias,
        hint,
        join,
        spread,
        items,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::{Arrow, Field, JsonKey, JsonStep};

    fn field(name: &str) -> Option<Field> {
        Some(Field {
            name: name.into(),
            path: vec![],
        })
    }

    fn plain(name: &str) -> SelectItem {
        SelectItem::Field(FieldSelect {
            field: field(name),
            alias: None,
            cast: None,
            aggregate: None,
            aggregate_cast: None,
        })
    }

    #[test]
    fn columns_aliases_casts_and_paths() {
        let items =
            parse_select("id,serial:serial_no,size::text,meta->color,c:data->>\"odd key\"::int")
                .unwrap();
        assert_eq!(items[0], plain("id"));
        assert_eq!(
            items[1],
            SelectItem::Field(FieldSelect {
                alias: Some("serial".into()),
                ..unwrap_field(plain("serial_no"))
            })
        );
        assert_eq!(
            items[2],
            SelectItem::Field(FieldSelect {
                cast: Some("text".into()),
                ..unwrap_field(plain("size"))
            })
        );
        let SelectItem::Field(meta) = &items[3] else {
            panic!()
        };
        assert_eq!(
            meta.field.as_ref().unwrap().path,
            vec![JsonStep {
                arrow: Arrow::Json,
                key: JsonKey::Name("color".into())
            }]
        );
        let SelectItem::Field(odd) = &items[4] else {
            panic!()
        };
        assert_eq!(odd.alias.as_deref(), Some("c"));
        assert_eq!(odd.cast.as_deref(), Some("int"));
    }

    fn unwrap_field(item: SelectItem) -> FieldSelect {
        match item {
            SelectItem::Field(field) => field,
            _ => panic!("not a field"),
        }
    }

    #[test]
    fn embeds_with_hints_join_types_spread_and_nesting() {
        let items = parse_select(
            "id,customer:customers!inner(name,orgs(*)),r:rentals!rentals_bottle_fkey!left(),...owner(owner_name:name)",
        )
        .unwrap();
        let SelectItem::Embed(customer) = &items[1] else {
            panic!()
        };
        assert_eq!(customer.target, "customers");
        assert_eq!(customer.alias.as_deref(), Some("customer"));
        assert_eq!(customer.join, Some(JoinType::Inner));
        assert_eq!(customer.items.len(), 2);
        let SelectItem::Embed(orgs) = &customer.items[1] else {
            panic!()
        };
        assert_eq!(orgs.items, vec![SelectItem::Star]);
        let SelectItem::Embed(rentals) = &items[2] else {
            panic!()
        };
        assert_eq!(rentals.hint.as_deref(), Some("rentals_bottle_fkey"));
        assert_eq!(rentals.join, Some(JoinType::Left));
        assert!(rentals.items.is_empty());
        let SelectItem::Embed(owner) = &items[3] else {
            panic!()
        };
        assert!(owner.spread);
    }

    #[test]
    fn aggregates() {
        let items =
            parse_select("count(),total:amount.sum(),amount.avg()::int,price::numeric.max()")
                .unwrap();
        let fields: Vec<FieldSelect> = items.into_iter().map(unwrap_field).collect();
        assert_eq!(fields[0].aggregate, Some(AggregateFunction::Count));
        assert!(fields[0].field.is_none());
        assert_eq!(fields[1].aggregate, Some(AggregateFunction::Sum));
        assert_eq!(fields[1].alias.as_deref(), Some("total"));
        assert_eq!(fields[2].aggregate_cast.as_deref(), Some("int"));
        assert_eq!(fields[3].cast.as_deref(), Some("numeric"));
        assert_eq!(fields[3].aggregate, Some(AggregateFunction::Max));
    }

    #[test]
    fn blanks_around_commas_are_tolerated() {
        assert_eq!(
            parse_select("id , name").unwrap(),
            vec![plain("id"), plain("name")]
        );
    }

    #[test]
    fn malformed_selects_point_at_the_problem() {
        let error = parse_select("id,(").unwrap_err();
        assert_eq!(error.column, 4);
        let error = parse_select("rel(id").unwrap_err();
        assert_eq!(error.unexpected, "unexpected end of input");
        assert!(parse_select("a.nope()").is_err());
        assert!(parse_select("x!a!b!c(*)").is_err());
    }
}
