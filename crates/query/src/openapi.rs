//! The OpenAPI (Swagger 2.0) document at `GET /rest/v1/`, generated from the schema cache as
//! PostgREST does: a path per table, view and function, a definition per relation, and the
//! reusable query parameters.

use manifold_sql::SchemaCache;
use manifold_sql::cache::{Column, Function, Relation, ReturnType, ValueKind, Volatility};
use serde_json::{Map, Value, json};

/// The document for `schema`. `host` is the request's `Host`, when known.
pub fn openapi(cache: &SchemaCache, schema: &str, host: Option<&str>) -> Value {
    let mut relations: Vec<&Relation> = cache.relations_in(schema).collect();
    relations.sort_by(|a, b| a.name().cmp(b.name()));
    let mut functions: Vec<&Function> = cache.functions_in(schema).collect();
    functions.sort_by(|a, b| a.qualified.name.cmp(&b.qualified.name));

    let mut paths = Map::new();
    paths.insert(
        "/".into(),
        json!({"get": {
            "produces": ["application/openapi+json", "application/json"],
            "summary": "OpenAPI description (this document)",
            "tags": ["Introspection"],
            "responses": {"200": {"description": "OK"}},
        }}),
    );
    let mut definitions = Map::new();
    let mut parameters = common_parameters();
    for relation in &relations {
        let name = relation.name().as_str();
        definitions.insert(name.into(), definition(cache, relation));
        paths.insert(format!("/{name}"), relation_path(relation, &mut parameters));
    }
    for function in &functions {
        paths.insert(
            format!("/rpc/{}", function.qualified.name),
            function_path(function),
        );
    }
    let mut document = json!({
        "swagger": "2.0",
        "info": {
            "title": "Manifold REST API",
            "description": format!("PostgREST-compatible API for the {schema} schema"),
            "version": env!("CARGO_PKG_VERSION"),
        },
        "basePath": "/rest/v1",
        "schemes": ["http", "https"],
        "consumes": ["application/json", "application/vnd.pgrst.object+json", "text/csv"],
        "produces": ["application/json", "application/vnd.pgrst.object+json", "text/csv"],
        "paths": paths,
        "definitions": definitions,
        "parameters": parameters,
    });
    if let (Some(host), Value::Object(map)) = (host, &mut document) {
        map.insert("host".into(), Value::String(host.to_owned()));
    }
    document
}

fn common_parameters() -> Map<String, Value> {
    let header = |name: &str, description: &str, values: &[&str]| {
        json!({"name": name, "in": "header", "description": description, "required": false,
               "type": "string", "enum": values})
    };
    let query = |name: &str, description: &str| json!({"name": name, "in": "query", "description": description, "required": false, "type": "string"});
    let mut parameters = Map::new();
    parameters.insert("select".into(), query("select", "Filtering Columns"));
    parameters.insert("order".into(), query("order", "Ordering"));
    parameters.insert("offset".into(), query("offset", "Limiting and Pagination"));
    parameters.insert("limit".into(), query("limit", "Limiting and Pagination"));
    parameters.insert(
        "range".into(),
        json!({"name": "Range", "in": "header", "description": "Limiting and Pagination", "required": false, "type": "string"}),
    );
    parameters.insert(
        "rangeUnit".into(),
        json!({"name": "Range-Unit", "in": "header", "description": "Limiting and Pagination", "required": false, "type": "string", "default": "items"}),
    );
    parameters.insert(
        "preferCount".into(),
        header("Prefer", "Preference", &["count=none"]),
    );
    parameters.insert(
        "preferReturn".into(),
        header(
            "Prefer",
            "Preference",
            &["return=representation", "return=minimal", "return=none"],
        ),
    );
    parameters.insert(
        "preferPost".into(),
        header(
            "Prefer",
            "Preference",
            &[
                "return=representation",
                "return=minimal",
                "return=none",
                "resolution=ignore-duplicates",
                "resolution=merge-duplicates",
            ],
        ),
    );
    parameters
}

fn relation_path(relation: &Relation, parameters: &mut Map<String, Value>) -> Value {
    let name = relation.name().as_str();
    let body_ref = format!("body.{name}");
    parameters.insert(
        body_ref.clone(),
        json!({"name": name, "in": "body", "required": false, "description": name,
               "schema": {"$ref": format!("#/definitions/{name}")}}),
    );
    let mut filters = Vec::new();
    for column in &relation.columns {
        let key = format!("rowFilter.{name}.{}", column.name);
        parameters.insert(
            key.clone(),
            json!({"name": column.name.as_str(), "in": "query", "required": false, "type": "string", "format": column.display_type}),
        );
        filters.push(json!({"$ref": format!("#/parameters/{key}")}));
    }
    let refs = |names: &[&str]| -> Vec<Value> {
        names
            .iter()
            .map(|n| json!({"$ref": format!("#/parameters/{n}")}))
            .collect()
    };
    let tags = json!([name]);
    let mut operations = Map::new();
    let mut get_params = filters.clone();
    get_params.extend(refs(&[
        "select",
        "order",
        "range",
        "rangeUnit",
        "offset",
        "limit",
        "preferCount",
    ]));
    operations.insert(
        "get".into(),
        json!({"tags": tags, "parameters": get_params, "responses": {
            "200": {"description": "OK", "schema": {"type": "array", "items": {"$ref": format!("#/definitions/{name}")}}},
            "206": {"description": "Partial Content"},
        }}),
    );
    if relation.insertable {
        let mut post_params = refs(&[body_ref.as_str(), "select"]);
        post_params.extend(refs(&["preferPost"]));
        operations.insert(
            "post".into(),
            json!({"tags": tags, "parameters": post_params, "responses": {"201": {"description": "Created"}}}),
        );
    }
    if relation.updatable {
        let mut patch_params = filters.clone();
        patch_params.extend(refs(&[body_ref.as_str(), "preferReturn"]));
        operations.insert(
            "patch".into(),
            json!({"tags": tags, "parameters": patch_params, "responses": {"204": {"description": "No Content"}}}),
        );
    }
    if relation.deletable {
        let mut delete_params = filters;
        delete_params.extend(refs(&["preferReturn"]));
        operations.insert(
            "delete".into(),
            json!({"tags": tags, "parameters": delete_params, "responses": {"204": {"description": "No Content"}}}),
        );
    }
    Value::Object(operations)
}

fn definition(cache: &SchemaCache, relation: &Relation) -> Value {
    let foreign: Vec<(String, String, String)> = cache
        .relationships_from(&relation.qualified)
        .iter()
        .filter(|r| r.forward && r.columns.len() == 1 && r.junction.is_none())
        .map(|r| {
            (
                r.columns[0].0.as_str().to_owned(),
                r.target.name.as_str().to_owned(),
                r.columns[0].1.as_str().to_owned(),
            )
        })
        .collect();
    let mut properties = Map::new();
    let mut required = Vec::new();
    for column in &relation.columns {
        let mut property = json_type(column);
        let mut notes = Vec::new();
        if relation
            .primary_key
            .iter()
            .any(|key| key == column.name.as_str())
        {
            notes.push("This is a Primary Key.<pk/>".to_owned());
        }
        for (fk_column, table, target) in &foreign {
            if fk_column == column.name.as_str() {
                notes.push(format!("This is a Foreign Key to `{table}.{target}`.<fk table='{table}' column='{target}'/>"));
            }
        }
        let mut description = column.description.clone().unwrap_or_default();
        if !notes.is_empty() {
            if !description.is_empty() {
                description.push_str("\n\n");
            }
            description.push_str("Note:\n");
            description.push_str(&notes.join("\n"));
        }
        if let Value::Object(map) = &mut property {
            map.insert("format".into(), Value::String(column.display_type.clone()));
            if !description.is_empty() {
                map.insert("description".into(), Value::String(description));
            }
            if let Some(default) = &column.default {
                map.insert("default".into(), Value::String(default.clone()));
            }
            if !column.enum_values.is_empty() {
                map.insert("enum".into(), json!(column.enum_values));
            }
            if let Some(max) = column.max_length {
                map.insert("maxLength".into(), json!(max));
            }
        }
        if !column.nullable && column.default.is_none() && !column.generated {
            required.push(Value::String(column.name.as_str().to_owned()));
        }
        properties.insert(column.name.as_str().to_owned(), property);
    }
    let mut definition = json!({"type": "object", "properties": properties});
    if !required.is_empty()
        && let Value::Object(map) = &mut definition
    {
        map.insert("required".into(), Value::Array(required));
    }
    if let (Some(description), Value::Object(map)) = (&relation.description, &mut definition) {
        map.insert("description".into(), Value::String(description.clone()));
    }
    definition
}

fn json_type(column: &Column) -> Value {
    match column.kind {
        ValueKind::Json | ValueKind::Jsonb => json!({}),
        ValueKind::Array => json!({"type": "array", "items": {"type": "string"}}),
        _ => json!({"type": scalar_type(column.sql_type.as_str())}),
    }
}

fn scalar_type(type_sql: &str) -> &'static str {
    match type_sql {
        "smallint" | "integer" | "bigint" => "integer",
        "numeric" | "real" | "double precision" => "number",
        "boolean" => "boolean",
        _ => "string",
    }
}

fn function_path(function: &Function) -> Value {
    let name = function.qualified.name.as_str();
    let mut properties = Map::new();
    let mut required = Vec::new();
    for param in &function.params {
        if param.name.is_empty() {
            continue;
        }
        properties.insert(
            param.name.clone(),
            json!({"type": scalar_type(param.sql_type.as_str()), "format": param.sql_type.as_str()}),
        );
        if !param.has_default {
            required.push(Value::String(param.name.clone()));
        }
    }
    let tags = json!(["(rpc) ".to_owned() + name]);
    let body = json!([{"in": "body", "name": "args", "required": true,
        "schema": {"type": "object", "properties": properties, "required": required}}]);
    let responses = match &function.returns {
        ReturnType::Void => json!({"204": {"description": "No Content"}}),
        _ => json!({"200": {"description": "OK"}}),
    };
    let mut operations = Map::new();
    operations.insert(
        "post".into(),
        json!({"tags": tags, "summary": function.description, "parameters": body, "responses": responses}),
    );
    if function.volatility != Volatility::Volatile {
        let query: Vec<Value> = function
            .params
            .iter()
            .filter(|p| !p.name.is_empty())
            .map(|p| json!({"name": p.name, "in": "query", "required": !p.has_default, "type": "string", "format": p.sql_type.as_str()}))
            .collect();
        operations.insert(
            "get".into(),
            json!({"tags": tags, "parameters": query, "responses": responses}),
        );
    }
    Value::Object(operations)
}
