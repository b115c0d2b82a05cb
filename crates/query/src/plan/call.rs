//! Planning RPC calls: choosing the overload by argument names, typing the arguments, and
//! planning set-returning results like a read.

use manifold_sql::cache::{Function, Relation, ReturnType};

use super::{Planner, ReadPlan};
use crate::error::{ErrorKind, QueryError};
use crate::fuzzy::{LOOSE, STRICT, best_match};
use crate::input::Method;
use crate::request::ApiRequest;

/// How arguments reach the function.
#[derive(Debug, Clone)]
pub enum CallArgs {
    /// No arguments.
    None,
    /// POST: a JSON object whose keys name these parameters (indices into `params`).
    Json {
        /// The body.
        text: String,
        /// Parameters given, in the function's order.
        params: Vec<usize>,
    },
    /// GET/HEAD: text values per parameter (several for a variadic one).
    Text(Vec<(usize, Vec<String>)>),
    /// The whole body for a function with one unnamed `json`/`jsonb` parameter.
    Single(String),
}

/// The result shape.
#[derive(Debug, Clone)]
pub enum CallResult<'c> {
    /// `void`: 204.
    Void,
    /// A scalar or array value; `set` for `SETOF`.
    Scalar {
        /// `SETOF`.
        set: bool,
    },
    /// Rows, planned like a read of `relation` (select, filters, order, embeds).
    Rows {
        /// `SETOF`/`TABLE`.
        set: bool,
        /// The read over the results.
        plan: ReadPlan<'c>,
    },
}

/// A planned call.
#[derive(Debug, Clone)]
pub struct CallPlan<'c> {
    /// The function.
    pub function: &'c Function,
    /// Its arguments.
    pub args: CallArgs,
    /// What it returns.
    pub result: CallResult<'c>,
}

impl<'c> Planner<'c> {
    /// Plans `POST|GET|HEAD /rpc/<name>`.
    pub(crate) fn call(
        &self,
        schema: &str,
        name: &str,
        request: &ApiRequest<'_>,
    ) -> Result<CallPlan<'c>, QueryError> {
        let post = request.method == Method::Post;
        let body_object = if post {
            post_object(request.body)?
        } else {
            None
        };
        let keys: Vec<String> = match (&body_object, post) {
            (Some(object), true) => object.keys().cloned().collect(),
            (None, true) => Vec::new(),
            (_, false) => {
                let mut keys: Vec<String> = Vec::new();
                for (key, _) in &request.params.rpc_args {
                    if !keys.contains(key) {
                        keys.push(key.clone());
                    }
                }
                keys
            }
        };
        let candidates = self.cache.functions(schema, name);
        // A body that is not an object (`[1,2]`, `"x"`) can only be the single unnamed json
        // argument.
        let named: Vec<&'c Function> = if post && body_object.is_none() {
            Vec::new()
        } else {
            candidates.iter().filter(|f| accepts(f, &keys)).collect()
        };
        let (function, args) = match named.as_slice() {
            [function] => {
                let args = if keys.is_empty() {
                    CallArgs::None
                } else if post {
                    CallArgs::Json {
                        text: String::from_utf8_lossy(request.body).into_owned(),
                        params: positions(function, &keys),
                    }
                } else {
                    CallArgs::Text(
                        positions(function, &keys)
                            .into_iter()
                            .map(|index| {
                                let param = &function.params[index];
                                let values: Vec<String> = request
                                    .params
                                    .rpc_args
                                    .iter()
                                    .filter(|(key, _)| *key == param.name)
                                    .map(|(_, value)| value.clone())
                                    .collect();
                                (index, values)
                            })
                            .collect(),
                    )
                };
                (*function, args)
            }
            [] => {
                let single = post
                    .then(|| candidates.iter().find(|f| takes_whole_body(f)))
                    .flatten();
                match single {
                    Some(function) => {
                        let text = String::from_utf8_lossy(request.body).into_owned();
                        let text = if text.trim().is_empty() {
                            "{}".to_owned()
                        } else {
                            text
                        };
                        (function, CallArgs::Single(text))
                    }
                    None => return Err(self.function_not_found(schema, name, &keys, post)),
                }
            }
            many => return Err(ambiguous(schema, name, many)),
        };
        let result = match &function.returns {
            ReturnType::Void => CallResult::Void,
            ReturnType::Scalar { set, .. } => CallResult::Scalar { set: *set },
            ReturnType::Composite { relation, set } => {
                let rows: &'c Relation = match relation {
                    Some(table) => self.cache.relation_of(table).ok_or_else(|| {
                        QueryError::not_implemented(
                            "functions returning rows of an unexposed table",
                        )
                    })?,
                    None => function.result_columns.as_ref().ok_or_else(|| {
                        QueryError::not_implemented(
                            "functions returning SETOF record without OUT parameters",
                        )
                    })?,
                };
                let plan = self.read(rows, request.params.select.as_deref(), &request.params)?;
                CallResult::Rows { set: *set, plan }
            }
        };
        Ok(CallPlan {
            function,
            args,
            result,
        })
    }

    fn function_not_found(
        &self,
        schema: &str,
        name: &str,
        keys: &[String],
        post: bool,
    ) -> QueryError {
        let mut sorted = keys.to_vec();
        sorted.sort();
        let (message_part, details_part) = match sorted.as_slice() {
            [] => (
                " without parameters".to_owned(),
                " without parameters".to_owned(),
            ),
            [one] => (format!("({one})"), format!(" with parameter {one}")),
            many => (
                format!("({})", many.join(", ")),
                format!(" with parameters {}", many.join(", ")),
            ),
        };
        let fallback = if post {
            " or with a single unnamed json/jsonb parameter"
        } else {
            ""
        };
        let overloads = self.cache.functions(schema, name);
        let hint = if overloads.is_empty() {
            let names: Vec<&str> = self
                .cache
                .functions_in(schema)
                .map(|f| f.qualified.name.as_str())
                .collect();
            best_match(name, names, STRICT).map(|(found, _)| {
                format!("Perhaps you meant to call the function {schema}.{found}")
            })
        } else {
            let signatures: Vec<String> = overloads
                .iter()
                .map(|f| {
                    let mut params: Vec<&str> = f.params.iter().map(|p| p.name.as_str()).collect();
                    params.sort_unstable();
                    format!("({})", params.join(", "))
                })
                .collect();
            let wanted = format!("({})", sorted.join(", "));
            best_match(&wanted, signatures.iter().map(String::as_str), LOOSE).map(|(found, _)| {
                format!("Perhaps you meant to call the function {schema}.{name}{found}")
            })
        };
        QueryError::new(
            404,
            "PGRST202",
            format!("Could not find the function {schema}.{name}{message_part} in the schema cache"),
        )
        .with_details(format!(
            "Searched for the function {schema}.{name}{details_part}{fallback}, but no matches were found in the schema cache."
        ))
        .with_hint(hint.map_or(serde_json::Value::Null, serde_json::Value::String))
        .kind(ErrorKind::UnknownName)
    }
}

/// The POST body as an object (an empty body is `{}`); other JSON (an array, a scalar) gives
/// `None`: only a single unnamed json parameter can take it, so the write-body rules (matching
/// keys in arrays) do not apply here.
fn post_object(
    body: &[u8],
) -> Result<Option<serde_json::Map<String, serde_json::Value>>, QueryError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Some(serde_json::Map::new()));
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(object)) => Ok(Some(object)),
        Ok(_) => Ok(None),
        Err(_) => Err(invalid_json()),
    }
}

/// True when `keys` can call `function` by name: every key names a parameter and every
/// parameter without a default is given. Unnamed parameters have no name to give, so a key
/// never matches one (`""` included) and a function with a required unnamed parameter is
/// callable only through the single-json fallback.
fn accepts(function: &Function, keys: &[String]) -> bool {
    let named = |param: &&manifold_sql::cache::FunctionParam| {
        param.ident.is_some() && !param.name.is_empty()
    };
    keys.iter().all(|key| {
        function
            .params
            .iter()
            .filter(named)
            .any(|param| param.name == *key)
    }) && function
        .params
        .iter()
        .filter(|param| !param.has_default)
        .all(|param| named(&param) && keys.contains(&param.name))
}

fn takes_whole_body(function: &Function) -> bool {
    matches!(function.params.as_slice(), [param]
        if param.name.is_empty() && matches!(param.sql_type.as_str(), "json" | "jsonb"))
}

fn positions(function: &Function, keys: &[String]) -> Vec<usize> {
    function
        .params
        .iter()
        .enumerate()
        .filter(|(_, p)| keys.contains(&p.name))
        .map(|(i, _)| i)
        .collect()
}

fn invalid_json() -> QueryError {
    QueryError::new(400, "PGRST102", "Empty or invalid json").kind(ErrorKind::BadRequest)
}

fn ambiguous(schema: &str, name: &str, candidates: &[&Function]) -> QueryError {
    let described: Vec<String> = candidates
        .iter()
        .map(|f| {
            let params: Vec<String> = f
                .params
                .iter()
                .map(|p| format!("{} => {}", p.name, p.sql_type.as_str()))
                .collect();
            format!("{schema}.{name}({})", params.join(", "))
        })
        .collect();
    QueryError::new(
        300,
        "PGRST203",
        format!("Could not choose the best candidate function between: {}", described.join(", ")),
    )
    .with_hint("Try renaming the parameters or the function itself in the database so function overloading can be resolved")
}
