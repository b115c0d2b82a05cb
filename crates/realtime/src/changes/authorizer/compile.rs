//! Compiling a table's SELECT policies into one set-based predicate: the settings the API
//! would put in `request.jwt.claims`, `request.jwt.claim.sub`, … become fields of a
//! subscribers relation (`__rt_s.__rt_settings ->> 'name'`), simple SQL helpers such as
//! `auth.uid()` or `app.current_org_id()` are inlined from their bodies, and whatever cannot be
//! proven to read nothing but the row, the role and those settings is refused, so the caller
//! falls back to evaluating per identity. All text handled here comes from the catalog
//! (`pg_get_expr`, `pg_proc`), never from a client.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

use sqlparser::ast::{
    CastKind, DataType, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, ObjectName,
    ObjectNamePart, Query, SelectItem, SetExpr, Statement, Value, Visit, VisitMut, Visitor,
    VisitorMut, visit_expressions, visit_expressions_mut, visit_relations,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

/// Inlining deeper than this is refused (recursive helpers).
const MAX_INLINE_DEPTH: usize = 8;

/// Builtins whose result depends on session state the compiled query does not reproduce.
const SESSION_BUILTINS: &[&str] = &[
    "set_config",
    "session_user",
    "pg_backend_pid",
    "txid_current",
];

/// Constructs sqlparser parses as functions though they are syntax, not `pg_proc` entries.
const SYNTAX_FUNCTIONS: &[&str] = &[
    "coalesce",
    "nullif",
    "greatest",
    "least",
    "current_user",
    "current_role",
    "user",
    "current_date",
    "current_time",
    "current_timestamp",
    "localtime",
    "localtimestamp",
    "current_schema",
    "current_catalog",
];

/// Why a policy cannot be compiled (it is then evaluated per identity).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not compilable: {0}")]
pub(crate) struct NotCompilable(pub(crate) String);

fn refuse<T>(reason: impl Into<String>) -> Result<T, NotCompilable> {
    Err(NotCompilable(reason.into()))
}

/// A function as the catalog describes it.
#[derive(Debug, Clone)]
pub(crate) struct FunctionDef {
    /// `pg_catalog` function.
    pub(crate) builtin: bool,
    pub(crate) immutable: bool,
    /// SQL language, not SECURITY DEFINER, no SET clause, not volatile, not STRICT with args.
    pub(crate) inlinable: bool,
    /// `prosrc` or the SQL-standard body.
    pub(crate) body: Option<String>,
    pub(crate) return_type: String,
    pub(crate) arg_types: Vec<String>,
    pub(crate) arg_names: Vec<String>,
}

/// `(schema or "", name)` → every overload.
pub(crate) type FunctionDefs = HashMap<(String, String), Vec<FunctionDef>>;

/// Parses catalog expression text.
pub(crate) fn parse_expr(text: &str) -> Result<Expr, NotCompilable> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(text)
        .and_then(|mut parser| parser.parse_expr())
        .or_else(|error| refuse(format!("unparsable expression: {error}")))
}

fn parse_type(text: &str) -> Result<DataType, NotCompilable> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(text)
        .and_then(|mut parser| parser.parse_data_type())
        .or_else(|error| refuse(format!("unparsable type {text}: {error}")))
}

/// `(schema, name)` of a call; unqualified names are looked up in `pg_catalog`.
pub(crate) fn function_key(name: &ObjectName) -> Option<(String, String)> {
    let parts: Vec<&str> = name
        .0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => Some(ident.value.as_str()),
            ObjectNamePart::Function(_) => None,
        })
        .collect::<Option<_>>()?;
    match parts[..] {
        [name] => Some((String::new(), name.to_owned())),
        [schema, name] => Some((schema.to_owned(), name.to_owned())),
        _ => None,
    }
}

/// Function names an expression (or an inlinable body) calls, to fetch before compiling.
pub(crate) fn called_functions(expr: &Expr) -> Vec<(String, String)> {
    let mut names = Vec::new();
    let _ = visit_expressions(expr, |node| {
        if let Expr::Function(function) = node
            && let Some(key) = function_key(&function.name)
            && !SYNTAX_FUNCTIONS.contains(&key.1.to_ascii_lowercase().as_str())
        {
            names.push(key);
        }
        ControlFlow::<()>::Continue(())
    });
    names
}

/// The single expression a SQL function body returns: `select <expr>` or `RETURN <expr>`,
/// with no FROM, WHERE or anything else that could change its meaning when inlined.
pub(crate) fn body_expression(body: &str) -> Result<Expr, NotCompilable> {
    let trimmed = body.trim().trim_end_matches(';').trim();
    let lowered = trimmed.to_ascii_lowercase();
    if let Some(rest) = lowered.strip_prefix("return") {
        let offset = trimmed.len() - rest.len();
        return parse_expr(&trimmed[offset..]);
    }
    let statement = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(trimmed)
        .and_then(|mut parser| parser.parse_statement())
        .or_else(|error| refuse(format!("unparsable body: {error}")))?;
    let Statement::Query(query) = statement else {
        return refuse("body is not a query");
    };
    let plain = format!("{query}") == format!("{}", query.body);
    let SetExpr::Select(select) = *query.body else {
        return refuse("body is not a simple select");
    };
    let simple = plain
        && select.from.is_empty()
        && select.selection.is_none()
        && select.having.is_none()
        && select.distinct.is_none()
        && select.projection.len() == 1;
    if !simple {
        return refuse("body is more than one expression");
    }
    match select.projection.into_iter().next() {
        Some(SelectItem::UnnamedExpr(expr)) | Some(SelectItem::ExprWithAlias { expr, .. }) => {
            Ok(expr)
        }
        _ => refuse("body does not select an expression"),
    }
}

/// Rewrites one policy expression; `settings` are the names the subscribers relation carries.
pub(crate) struct Compiler<'a> {
    pub(crate) functions: &'a FunctionDefs,
    pub(crate) settings: &'a HashSet<String>,
}

impl Compiler<'_> {
    /// The rewritten expression.
    pub(crate) fn compile(&self, expr: &Expr) -> Result<Expr, NotCompilable> {
        self.rewrite(expr.clone(), 0)
    }

    fn rewrite(&self, mut expr: Expr, depth: usize) -> Result<Expr, NotCompilable> {
        if depth > MAX_INLINE_DEPTH {
            return refuse("helpers nest too deeply");
        }
        let mut failure = None;
        let _ = visit_expressions_mut(&mut expr, |node| {
            match self.rewrite_node(node, depth) {
                Ok(Some(replacement)) => *node = replacement,
                Ok(None) => {}
                Err(error) => {
                    failure = Some(error);
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        });
        match failure {
            Some(error) => Err(error),
            None => Ok(expr),
        }
    }

    fn rewrite_node(&self, node: &Expr, depth: usize) -> Result<Option<Expr>, NotCompilable> {
        let Expr::Function(function) = node else {
            return Ok(None);
        };
        let Some((schema, name)) = function_key(&function.name) else {
            return refuse("unusual function name");
        };
        let lowered = name.to_ascii_lowercase();
        if function.over.is_some() || function.filter.is_some() {
            return refuse("window or aggregate call");
        }
        if schema.is_empty() && SESSION_BUILTINS.contains(&lowered.as_str()) {
            return refuse(format!("{lowered} depends on the session"));
        }
        if schema.is_empty() && SYNTAX_FUNCTIONS.contains(&lowered.as_str()) {
            return Ok(None);
        }
        let args = plain_args(&function.args)?;
        if (schema.is_empty() || schema == "pg_catalog") && lowered == "current_setting" {
            return self.setting(&args).map(Some);
        }
        let overloads = self
            .functions
            .get(&(schema.clone(), name.clone()))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let matching: Vec<&FunctionDef> = overloads
            .iter()
            .filter(|def| def.arg_types.len() == args.len())
            .collect();
        if !overloads.is_empty() && overloads.iter().all(|def| def.builtin) {
            return Ok(None);
        }
        let [def] = matching[..] else {
            return refuse(format!("cannot resolve {schema}.{name}"));
        };
        if def.inlinable
            && let Some(body) = &def.body
        {
            return self.inline(def, body, &args, depth).map(Some);
        }
        if def.immutable {
            return Ok(None);
        }
        refuse(format!("{schema}.{name} may read session state"))
    }

    /// `current_setting('name' [, missing_ok])` → the subscriber's value of that setting.
    fn setting(&self, args: &[Expr]) -> Result<Expr, NotCompilable> {
        let Some(name) = args.first().and_then(string_literal) else {
            return refuse("current_setting with a computed name");
        };
        let missing_ok = args
            .get(1)
            .is_some_and(|arg| bool_literal(arg) == Some(true));
        if !self.settings.contains(&name) && !missing_ok {
            return refuse(format!("setting {name} is not provided"));
        }
        let mut expr = parse_expr("(__rt_s.__rt_settings ->> $1)")?;
        let _ = visit_expressions_mut(&mut expr, |node| {
            if matches!(node, Expr::Value(value) if matches!(value.value, Value::Placeholder(_))) {
                *node = Expr::value(Value::SingleQuotedString(name.clone()));
            }
            ControlFlow::<()>::Continue(())
        });
        Ok(expr)
    }

    fn inline(
        &self,
        def: &FunctionDef,
        body: &str,
        args: &[Expr],
        depth: usize,
    ) -> Result<Expr, NotCompilable> {
        let mut body = body_expression(body)?;
        let mut typed_args = Vec::with_capacity(args.len());
        for (arg, type_name) in args.iter().zip(&def.arg_types) {
            typed_args.push(cast(arg.clone(), parse_type(type_name)?));
        }
        let _ = visit_expressions_mut(&mut body, |node| {
            let position = match node {
                Expr::Value(value) => match &value.value {
                    Value::Placeholder(text) => text
                        .strip_prefix('$')
                        .and_then(|n| n.parse::<usize>().ok())
                        .and_then(|n| n.checked_sub(1)),
                    _ => None,
                },
                Expr::Identifier(ident) => def.arg_names.iter().position(|n| n == &ident.value),
                _ => None,
            };
            if let Some(arg) = position.and_then(|index| typed_args.get(index)) {
                *node = arg.clone();
            }
            ControlFlow::<()>::Continue(())
        });
        let body = self.rewrite(body, depth + 1)?;
        Ok(cast(body, parse_type(&def.return_type)?))
    }
}

fn cast(expr: Expr, data_type: DataType) -> Expr {
    Expr::Nested(Box::new(Expr::Cast {
        kind: CastKind::DoubleColon,
        expr: Box::new(Expr::Nested(Box::new(expr))),
        data_type,
        format: None,
    }))
}

fn plain_args(args: &FunctionArguments) -> Result<Vec<Expr>, NotCompilable> {
    match args {
        FunctionArguments::None => Ok(Vec::new()),
        FunctionArguments::Subquery(_) => refuse("subquery argument"),
        FunctionArguments::List(list) => {
            if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
                return refuse("aggregate clauses");
            }
            list.args
                .iter()
                .map(|arg| match arg {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) => Ok(expr.clone()),
                    _ => refuse("named or wildcard argument"),
                })
                .collect()
        }
    }
}

fn unwrap_casts(expr: &Expr) -> &Expr {
    match expr {
        Expr::Cast { expr, .. } | Expr::Nested(expr) => unwrap_casts(expr),
        other => other,
    }
}

fn string_literal(expr: &Expr) -> Option<String> {
    match unwrap_casts(expr) {
        Expr::Value(value) => match &value.value {
            Value::SingleQuotedString(text) => Some(text.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn bool_literal(expr: &Expr) -> Option<bool> {
    match unwrap_casts(expr) {
        Expr::Value(value) => match &value.value {
            Value::Boolean(flag) => Some(*flag),
            _ => None,
        },
        _ => None,
    }
}

/// True when `expr` reads the subscriber's settings and nothing else that varies: no column of
/// the row (a bare or qualified name other than `__rt_s.__rt_settings`), no subquery.
fn identity_only(expr: &Expr) -> bool {
    let mut check = IdentityOnly {
        reads_settings: false,
    };
    expr.visit(&mut check).is_continue() && check.reads_settings
}

struct IdentityOnly {
    reads_settings: bool,
}

impl Visitor for IdentityOnly {
    type Break = ();

    fn pre_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
        ControlFlow::Break(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        match expr {
            Expr::CompoundIdentifier(parts)
                if parts.len() == 2
                    && parts[0].value == "__rt_s"
                    && parts[1].value == "__rt_settings" =>
            {
                self.reads_settings = true;
                ControlFlow::Continue(())
            }
            Expr::Identifier(_)
            | Expr::CompoundIdentifier(_)
            | Expr::CompoundFieldAccess { .. }
            | Expr::Exists { .. }
            | Expr::Subquery(_) => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        }
    }
}

/// Replaces the largest parts of compiled expressions that depend on the subscriber alone
/// (e.g. `nullif(((__rt_s.__rt_settings ->> 'request.jwt.claims'))::jsonb ->> 'org', '')::uuid`)
/// with columns `__rt_s.__rt_h<n>` the batch query computes once per subscriber instead of once
/// per (row, subscriber) pair; `hoisted[n]` is the expression of column n. Equal parts share a
/// column.
pub(crate) struct Hoister {
    pub(crate) hoisted: Vec<String>,
}

impl Hoister {
    pub(crate) fn hoist(&mut self, mut expr: Expr) -> Expr {
        let _ = VisitMut::visit(&mut expr, self);
        expr
    }
}

impl VisitorMut for Hoister {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if identity_only(expr) {
            let text = expr.to_string();
            let index = match self.hoisted.iter().position(|known| *known == text) {
                Some(index) => index,
                None => {
                    self.hoisted.push(text);
                    self.hoisted.len() - 1
                }
            };
            *expr = Expr::CompoundIdentifier(vec![
                Ident::new("__rt_s"),
                Ident::new(format!("__rt_h{index}")),
            ]);
        }
        ControlFlow::Continue(())
    }
}

/// Syntax functions whose value changes with time.
const TIME_FUNCTIONS: &[&str] = &[
    "current_date",
    "current_time",
    "current_timestamp",
    "localtime",
    "localtimestamp",
];

/// True when a hoisted part's value depends on the subscriber's settings and nothing else
/// (every function it calls is immutable), so it may be remembered across batches. A part that
/// reads the clock (`now()`, `current_timestamp`: a token's `exp` checked against the time) is
/// computed again for every batch.
pub(crate) fn settings_only(text: &str, functions: &FunctionDefs) -> bool {
    let Ok(expr) = parse_expr(text) else {
        return false;
    };
    let outcome = visit_expressions(&expr, |node| {
        if let Expr::Function(function) = node {
            let Some((schema, name)) = function_key(&function.name) else {
                return ControlFlow::Break(());
            };
            let lowered = name.to_ascii_lowercase();
            if schema.is_empty() && SYNTAX_FUNCTIONS.contains(&lowered.as_str()) {
                if TIME_FUNCTIONS.contains(&lowered.as_str()) {
                    return ControlFlow::Break(());
                }
                return ControlFlow::Continue(());
            }
            let immutable = functions.get(&(schema, name)).is_some_and(|overloads| {
                !overloads.is_empty() && overloads.iter().all(|def| def.immutable)
            });
            if !immutable {
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    });
    outcome.is_continue()
}

/// Relations an expression reads (subqueries), as written.
pub(crate) fn relations(expr: &Expr) -> Vec<String> {
    let mut names = Vec::new();
    let _ = visit_relations(expr, |name| {
        names.push(name.to_string());
        ControlFlow::<()>::Continue(())
    });
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql_fn(body: &str, return_type: &str) -> FunctionDef {
        FunctionDef {
            builtin: false,
            immutable: false,
            inlinable: true,
            body: Some(body.to_owned()),
            return_type: return_type.to_owned(),
            arg_types: Vec::new(),
            arg_names: Vec::new(),
        }
    }

    #[test]
    fn hoists_only_what_depends_on_the_subscriber_alone() {
        let expr = parse_expr(
            "(org = nullif(((__rt_s.__rt_settings ->> 'request.jwt.claims'))::jsonb ->> 'org', '')::uuid) \
             OR (owner = ((__rt_s.__rt_settings ->> 'request.jwt.claims'))::jsonb ->> 'sub') \
             OR (level > length(__rt_s.__rt_settings ->> 'x') + level) \
             OR exists (select 1 from shares s where s.who = (__rt_s.__rt_settings ->> 'y') and s.id = id) \
             OR (__rt_s.__rt_settings ->> 'request.jwt.claims') IS NULL",
        )
        .unwrap();
        let mut hoister = Hoister {
            hoisted: Vec::new(),
        };
        let text = hoister.hoist(expr).to_string();
        assert_eq!(
            hoister.hoisted,
            vec![
                "nullif(((__rt_s.__rt_settings ->> 'request.jwt.claims'))::JSONB ->> 'org', '')::UUID",
                "((__rt_s.__rt_settings ->> 'request.jwt.claims'))::JSONB ->> 'sub'",
                "length(__rt_s.__rt_settings ->> 'x')",
                "(__rt_s.__rt_settings ->> 'y')",
                "(__rt_s.__rt_settings ->> 'request.jwt.claims') IS NULL",
            ]
        );
        assert!(text.contains("org = __rt_s.__rt_h0"), "{text}");
        assert!(text.contains("level > __rt_s.__rt_h2 + level"), "{text}");
        assert!(
            text.contains("s.who = __rt_s.__rt_h3 AND s.id = id"),
            "{text}"
        );
        assert!(!text.contains("__rt_settings"), "{text}");
    }

    #[test]
    fn inlines_helpers_into_subscriber_settings() {
        let mut functions = FunctionDefs::new();
        functions.insert(
            ("auth".into(), "jwt".into()),
            vec![sql_fn(
                "select coalesce(nullif(current_setting('request.jwt.claim', true), ''), \
                 nullif(current_setting('request.jwt.claims', true), ''))::jsonb",
                "jsonb",
            )],
        );
        functions.insert(
            ("".into(), "nullif".into()),
            vec![FunctionDef {
                builtin: true,
                ..sql_fn("", "text")
            }],
        );
        let settings: HashSet<String> = ["request.jwt.claims".to_owned()].into();
        let compiler = Compiler {
            functions: &functions,
            settings: &settings,
        };
        let policy =
            parse_expr("(org_id = ((auth.jwt() ->> 'organization_id'::text))::uuid)").unwrap();
        let compiled = compiler.compile(&policy).unwrap().to_string();
        assert!(compiled.contains("__rt_s.__rt_settings ->> 'request.jwt.claims'"));
        assert!(!compiled.contains("auth.jwt"));
        assert!(!compiled.contains("current_setting"));
    }

    #[test]
    fn refuses_what_it_cannot_prove() {
        let mut functions = FunctionDefs::new();
        let mut definer = sql_fn("select 1", "int4");
        definer.inlinable = false;
        functions.insert(("app".into(), "org".into()), vec![definer]);
        let settings = HashSet::new();
        let compiler = Compiler {
            functions: &functions,
            settings: &settings,
        };
        for text in [
            "(org_id = app.org())",
            "(current_setting('app.x') = 'y')",
            "(x = current_setting(name))",
            "(unknown.fn() = 1)",
        ] {
            assert!(
                compiler.compile(&parse_expr(text).unwrap()).is_err(),
                "{text}"
            );
        }
    }

    #[test]
    fn bodies_must_be_single_expressions() {
        assert!(body_expression("select 1 from t").is_err());
        assert!(body_expression("select 1, 2").is_err());
        assert_eq!(
            body_expression(" select ($1 + 1) ; ").unwrap().to_string(),
            "($1 + 1)"
        );
        assert_eq!(
            body_expression("RETURN (a * 2)").unwrap().to_string(),
            "(a * 2)"
        );
    }
}
