//! `MANIFOLD_*` environment overrides: `MANIFOLD_SECTION__KEY=value` sets `[section] key`.

use toml::{Table, Value};

use crate::ConfigError;

const PREFIX: &str = "MANIFOLD_";
/// Top-level keys an override may start with; anything else is a typo worth reporting.
const KNOWN_ROOTS: &[&str] = &[
    "data_dir", "api", "database", "auth", "rest", "storage", "realtime",
];
/// Variables with the prefix that are not settings (log filter, test harness).
const NOT_SETTINGS: &[&str] = &["MANIFOLD_LOG", "MANIFOLD_TEST_"];

/// Applies every `MANIFOLD_*` variable (and the `DATABASE_URL` alias) to `table`.
pub(crate) fn apply_overrides(
    table: &mut Table,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let mut database_url_alias = None;
    for (name, value) in vars {
        if name == "DATABASE_URL" {
            database_url_alias = Some(value);
            continue;
        }
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        if NOT_SETTINGS.iter().any(|skip| name.starts_with(skip)) {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        if !KNOWN_ROOTS.contains(&path[0].as_str()) || path.iter().any(String::is_empty) {
            return Err(ConfigError::UnknownEnv(name));
        }
        set_path(table, &path, parse_value(&value), &name)?;
    }
    if let Some(url) = database_url_alias.filter(|url| !url.is_empty()) {
        let database = section(table, "database", "DATABASE_URL")?;
        database.entry("url").or_insert(Value::String(url));
    }
    Ok(())
}

/// Reads an override as a bool, integer or TOML array when it clearly is one, else a string.
fn parse_value(raw: &str) -> Value {
    let trimmed = raw.trim();
    match trimmed {
        "true" => return Value::Boolean(true),
        "false" => return Value::Boolean(false),
        _ => {}
    }
    if let Ok(number) = trimmed.parse::<i64>() {
        return Value::Integer(number);
    }
    if trimmed.starts_with('[')
        && let Ok(mut table) = toml::from_str::<Table>(&format!("v = {trimmed}"))
        && let Some(array) = table.remove("v")
    {
        return array;
    }
    Value::String(raw.to_owned())
}

fn section<'t>(table: &'t mut Table, key: &str, var: &str) -> Result<&'t mut Table, ConfigError> {
    match table
        .entry(key)
        .or_insert_with(|| Value::Table(Table::new()))
    {
        Value::Table(inner) => Ok(inner),
        _ => Err(ConfigError::UnknownEnv(var.to_owned())),
    }
}

fn set_path(
    table: &mut Table,
    path: &[String],
    value: Value,
    var: &str,
) -> Result<(), ConfigError> {
    match path {
        [] => Err(ConfigError::UnknownEnv(var.to_owned())),
        [last] => {
            table.insert(last.clone(), value);
            Ok(())
        }
        [first, rest @ ..] => set_path(section(table, first, var)?, rest, value, var),
    }
}
