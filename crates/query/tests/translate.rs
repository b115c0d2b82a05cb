//! Table-driven tests of the translator: request in, SQL text and binds out, and every parse
//! error with its code. The schema cache is built from a hand-written catalog document.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use manifold_query::{
    Method, RestInput, Settings, parse, translate_call, translate_read, translate_write,
};
use manifold_sql::{BindValue, SchemaCache};
use serde_json::{Value, json};

fn column(rel: u32, num: i16, name: &str, type_sql: &str, base: &str, category: &str) -> Value {
    json!({
        "rel_oid": rel.to_string(), "num": num, "name": name, "type_sql": type_sql,
        "type_display": type_sql, "base_type": base, "category": category, "nullable": true,
        "default_expr": null, "is_identity": false, "is_generated": false, "max_length": null,
        "enum_values": null, "description": null,
    })
}

fn cache() -> SchemaCache {
    let relation = |oid: u32, name: &str| {
        json!({"oid": oid.to_string(), "schema": "public", "name": name, "kind": "r",
               "description": null, "updatable_flags": 28, "view_definition": null})
    };
    let catalog = json!({
        "relations": [relation(1, "customers"), relation(2, "bottles")],
        "columns": [
            column(1, 1, "id", "integer", "int4", "N"),
            column(1, 2, "name", "text", "text", "S"),
            column(1, 3, "CustomerListID", "text", "text", "S"),
            column(2, 1, "id", "integer", "int4", "N"),
            column(2, 2, "serial", "text", "text", "S"),
            column(2, 3, "customer_id", "integer", "int4", "N"),
            column(2, 4, "meta", "jsonb", "jsonb", "U"),
            column(2, 5, "tags", "text[]", "_text", "A"),
        ],
        "keys": [
            {"rel_oid": "1", "kind": "p", "name": "customers_pkey", "column_nums": [1], "columns": ["id"]},
            {"rel_oid": "2", "kind": "p", "name": "bottles_pkey", "column_nums": [1], "columns": ["id"]},
        ],
        "foreign_keys": [{
            "name": "bottles_customer_id_fkey", "rel_oid": "2", "ref_oid": "1",
            "schema": "public", "table_name": "bottles", "ref_schema": "public", "ref_table": "customers",
            "column_nums": [3], "columns": ["customer_id"], "ref_column_nums": [1], "ref_columns": ["id"],
        }],
        "functions": [{
            "oid": "9", "schema": "public", "name": "add", "description": null, "volatility": "i",
            "returns_set": false, "return_type": "integer", "return_kind": "b", "return_rel_oid": null,
            "is_variadic": false, "default_count": 0, "settings": [],
            "args": [
                {"name": "a", "type_sql": "integer", "mode": "i"},
                {"name": "b", "type_sql": "integer", "mode": "i"},
            ],
        }, {
            "oid": "10", "schema": "public", "name": "echo", "description": null, "volatility": "i",
            "returns_set": false, "return_type": "jsonb", "return_kind": "b", "return_rel_oid": null,
            "is_variadic": false, "default_count": 0, "settings": [],
            "args": [{"name": "", "type_sql": "jsonb", "mode": "i"}],
        }, {
            "oid": "14", "schema": "public", "name": "square", "description": null, "volatility": "i",
            "returns_set": false, "return_type": "integer", "return_kind": "b", "return_rel_oid": null,
            "is_variadic": false, "default_count": 0, "settings": [],
            "args": [{"name": "", "type_sql": "integer", "mode": "i"}],
        }, {
            "oid": "11", "schema": "public", "name": "retire", "description": null, "volatility": "v",
            "returns_set": true, "return_type": "bottles", "return_kind": "c", "return_rel_oid": "2",
            "is_variadic": false, "default_count": 0, "settings": [],
            "args": [{"name": "customer", "type_sql": "integer", "mode": "i"}],
        }, {
            "oid": "12", "schema": "public", "name": "stamp", "description": null, "volatility": "v",
            "returns_set": false, "return_type": "integer", "return_kind": "b", "return_rel_oid": null,
            "is_variadic": false, "default_count": 0, "settings": [],
            "args": [],
        }, {
            "oid": "13", "schema": "public", "name": "total", "description": null, "volatility": "i",
            "returns_set": false, "return_type": "integer", "return_kind": "b", "return_rel_oid": null,
            "is_variadic": true, "default_count": 0, "settings": [],
            "args": [{"name": "numbers", "type_sql": "integer[]", "mode": "v"}],
        }],
        "types": [
            {"oid": "23", "schema": "pg_catalog", "name": "int4", "type_sql": "integer", "array_sql": "integer[]"},
            {"oid": "25", "schema": "pg_catalog", "name": "text", "type_sql": "text", "array_sql": "text[]"},
        ],
        "role_settings": [],
    });
    SchemaCache::build(&["public".into()], &catalog.to_string(), &[]).unwrap()
}

fn input<'a>(method: Method, path: &'a str, query: &'a str) -> RestInput<'a> {
    RestInput {
        method: Some(method),
        path,
        query,
        ..RestInput::default()
    }
}

fn text(binds: &[BindValue]) -> Vec<String> {
    binds
        .iter()
        .map(|bind| match bind {
            BindValue::Text(t) => t.clone(),
            BindValue::Int(n) => n.to_string(),
            BindValue::Bool(b) => b.to_string(),
            BindValue::Null => "NULL".into(),
        })
        .collect()
}

fn read_sql(query: &str) -> (String, Vec<String>) {
    let cache = cache();
    let settings = Settings::default();
    let request = parse(&input(Method::Get, "/bottles", query), &settings).unwrap();
    let translated = translate_read(&request, &cache, &settings).unwrap();
    (
        translated.statement.text().to_owned(),
        text(translated.statement.binds()),
    )
}

const TAIL: &str = " as body, nullif(current_setting('response.headers', true), '') as response_headers, \
    nullif(current_setting('response.status', true), '') as response_status, null::int8 as inserted, \
    null::text as location from pgrst_source";

#[test]
fn select_columns_with_a_filter_and_paging() {
    let (sql, binds) =
        read_sql("select=id,serial&id=eq.7&order=serial.desc.nullslast&limit=5&offset=10");
    assert_eq!(
        sql,
        format!(
            "with pgrst_source as (select json_build_object($1::text, t0.\"id\", $2::text, t0.\"serial\") as pgrst_row \
             from \"public\".\"bottles\" as t0 where t0.\"id\" = $3::text::integer order by t0.\"serial\" desc nulls last \
             limit $4::int8 offset $5::int8) select null::int8 as total, count(*)::int8 as page, \
             coalesce(json_agg(pgrst_source.pgrst_row), '[]'::json)::text{TAIL}"
        )
    );
    assert_eq!(binds, ["id", "serial", "7", "5", "10"]);
}

#[test]
fn filter_operators_render_typed_binds() {
    let cases: &[(&str, &str, &[&str])] = &[
        ("id=neq.1", "t0.\"id\" <> $3::text::integer", &["1"]),
        (
            "serial=like.A*",
            "t0.\"serial\" like $3::text::text",
            &["A%"],
        ),
        (
            "serial=ilike(any).{a*,b*}",
            "t0.\"serial\" ilike any($3::text::text[])",
            &["{a%,b%}"],
        ),
        (
            "id=in.(1,\"2\")",
            "t0.\"id\" = any($3::text::integer[])",
            &[r#"{"1","2"}"#],
        ),
        ("customer_id=is.null", "t0.\"customer_id\" is null", &[]),
        ("id=not.gt.5", "not (t0.\"id\" > $3::text::integer)", &["5"]),
        (
            "tags=cs.{a,b}",
            "t0.\"tags\" @> $3::text::text[]",
            &["{a,b}"],
        ),
        (
            "meta->>color=eq.red",
            "(t0.\"meta\" ->> $3::text) = $4::text",
            &["color", "red"],
        ),
        (
            "meta->size=gt.3",
            "(t0.\"meta\" -> $3::text) > $4::text::jsonb",
            &["size", "3"],
        ),
        (
            "serial=wfts(english).cat",
            "to_tsvector($3::text::regconfig, t0.\"serial\") @@ websearch_to_tsquery($4::text::regconfig, $5::text)",
            &["english", "english", "cat"],
        ),
        (
            "or=(id.eq.1,and(serial.eq.x,id.lt.3))",
            "(t0.\"id\" = $3::text::integer or (t0.\"serial\" = $4::text::text and t0.\"id\" < $5::text::integer))",
            &["1", "x", "3"],
        ),
    ];
    for (query, condition, values) in cases {
        let (sql, binds) = read_sql(&format!("select=id,serial&{query}"));
        assert!(
            sql.contains(&format!(" where {condition}")),
            "{query}: {sql}"
        );
        let tail: Vec<String> = binds[2..2 + values.len()].to_vec();
        assert_eq!(tail, *values, "{query}");
    }
}

#[test]
fn embeds_are_lateral_joins() {
    let (sql, binds) = read_sql("select=serial,owner:customers!inner(name)&owner.name=eq.Acme");
    assert_eq!(
        sql,
        format!(
            "with pgrst_source as (select json_build_object($1::text, t0.\"serial\", $2::text, e1.v) as pgrst_row \
             from \"public\".\"bottles\" as t0 left join lateral (select json_build_object($3::text, t2.\"name\") as v, true as x \
             from \"public\".\"customers\" as t2 where t2.\"id\" = t0.\"customer_id\" and t2.\"name\" = $4::text::text) as e1 on true \
             where e1.x is not null limit $5::int8) select null::int8 as total, count(*)::int8 as page, \
             coalesce(json_agg(pgrst_source.pgrst_row), '[]'::json)::text{TAIL}"
        )
    );
    assert_eq!(binds, ["serial", "owner", "name", "Acme", "1000"]);
}

#[test]
fn to_many_embeds_aggregate_and_counts_count() {
    let cache = cache();
    let settings = Settings::default();
    let mut request = input(
        Method::Get,
        "/customers",
        "select=name,bottles(serial)&bottles.order=id&bottles.limit=2",
    );
    request.prefer = vec!["count=exact"];
    let parsed = parse(&request, &settings).unwrap();
    let sql = translate_read(&parsed, &cache, &settings)
        .unwrap()
        .statement
        .text()
        .to_owned();
    assert!(sql.contains(
        "left join lateral (select json_agg(s2.v) as v, bool_or(true) as x from (select json_build_object($3::text, t3.\"serial\") as v, true as x \
         from \"public\".\"bottles\" as t3 where t3.\"customer_id\" = t0.\"id\" order by t3.\"id\" limit $4::int8) as s2) as e1 on true"
    ), "{sql}");
    assert!(sql.contains("select (select count(*) from (select 1 from \"public\".\"customers\" as t4) as pgrst_count)::int8 as total"), "{sql}");
    assert!(sql.contains("coalesce(e1.v, '[]'::json)"), "{sql}");
}

#[test]
fn mixed_case_identifiers_keep_their_case() {
    let cache = cache();
    let settings = Settings::default();
    let request = parse(
        &input(
            Method::Get,
            "/customers",
            "select=CustomerListID&CustomerListID=eq.80000007-1",
        ),
        &settings,
    )
    .unwrap();
    let sql = translate_read(&request, &cache, &settings)
        .unwrap()
        .statement
        .text()
        .to_owned();
    assert!(
        sql.contains("t0.\"CustomerListID\" = $2::text::text"),
        "{sql}"
    );
}

#[test]
fn inserts_bind_the_body_once() {
    let cache = cache();
    let settings = Settings::default();
    let mut request = input(Method::Post, "/customers", "");
    request.body = br#"{"id": 1, "name": "Acme"}"#;
    let parsed = parse(&request, &settings).unwrap();
    let write = translate_write(&parsed, &cache, &settings).unwrap();
    assert!(!write.returning);
    assert_eq!(
        write.statement.text(),
        "with pgrst_payload as (select case when json_typeof(pgrst_json) = 'array' then pgrst_json else json_build_array(pgrst_json) end \
         as pgrst_rows from (select $1::text::json as pgrst_json) as pgrst_input) insert into \"public\".\"customers\" as pgrst_target \
         (\"id\", \"name\") select pgrst_body.\"id\", pgrst_body.\"name\" from json_populate_recordset(null::\"public\".\"customers\", \
         (select pgrst_rows from pgrst_payload)) as pgrst_body"
    );
    assert_eq!(
        text(write.statement.binds()),
        [r#"{"id": 1, "name": "Acme"}"#]
    );
}

#[test]
fn upserts_patches_and_deletes() {
    let cache = cache();
    let settings = Settings::default();
    let mut upsert = input(Method::Post, "/customers", "on_conflict=name");
    upsert.body = br#"[{"id": 1, "name": "Acme"}]"#;
    upsert.prefer = vec!["resolution=merge-duplicates"];
    let write = translate_write(&parse(&upsert, &settings).unwrap(), &cache, &settings).unwrap();
    assert!(write.statement.text().contains(
        " on conflict (\"name\") do update set \"id\" = excluded.\"id\", \"name\" = excluded.\"name\" returning pgrst_target.*, (pgrst_target.xmax = 0) as pgrst_inserted"
    ), "{}", write.statement.text());

    let mut patch = input(Method::Patch, "/customers", "id=eq.3");
    patch.body = br#"{"name": "New"}"#;
    let write = translate_write(&parse(&patch, &settings).unwrap(), &cache, &settings).unwrap();
    assert!(write.statement.text().ends_with(
        "update \"public\".\"customers\" as t0 set \"name\" = pgrst_body.\"name\" from (select * from json_populate_record(null::\"public\".\"customers\", \
         (select pgrst_rows -> 0 from pgrst_payload))) as pgrst_body where t0.\"id\" = $2::text::integer"
    ), "{}", write.statement.text());

    let delete = input(Method::Delete, "/customers", "name=in.(a,b)");
    let write = translate_write(&parse(&delete, &settings).unwrap(), &cache, &settings).unwrap();
    assert_eq!(
        write.statement.text(),
        "delete from \"public\".\"customers\" as t0 where t0.\"name\" = any($1::text::text[])"
    );
}

#[test]
fn calls_type_their_arguments() {
    let cache = cache();
    let settings = Settings::default();
    let mut post = input(Method::Post, "/rpc/add", "");
    post.body = br#"{"a": 1, "b": 2}"#;
    let call = translate_call(&parse(&post, &settings).unwrap(), &cache, &settings).unwrap();
    assert!(call.read_only, "IMMUTABLE functions run read-only");
    assert!(call.statement.text().starts_with(
        "with pgrst_args as (select * from json_to_record($1::text::json) as pgrst_input(\"a\" integer, \"b\" integer)), \
         pgrst_call as materialized (select \"public\".\"add\"(\"a\" => pgrst_args.\"a\", \"b\" => pgrst_args.\"b\") as pgrst_scalar from pgrst_args)"
    ), "{}", call.statement.text());
    let get = input(Method::Get, "/rpc/add", "a=1&b=2");
    let call = translate_call(&parse(&get, &settings).unwrap(), &cache, &settings).unwrap();
    assert!(
        call.statement.text().starts_with(
            "with pgrst_args as (select $1::text::integer as \"a\", $2::text::integer as \"b\")"
        ),
        "{}",
        call.statement.text()
    );
}

#[test]
fn every_request_error_has_its_code_and_status() {
    let cache = cache();
    let settings = Settings::default();
    let cases: &[(Method, &str, &str, &str, u16, &str)] = &[
        (Method::Get, "/bottles", "id=foo.1", "", 400, "PGRST100"),
        (Method::Get, "/bottles", "select=id,(", "", 400, "PGRST100"),
        (
            Method::Get,
            "/bottles",
            "order=id.sideways",
            "",
            400,
            "PGRST100",
        ),
        (Method::Get, "/bottles", "or=(id.eq.1", "", 400, "PGRST100"),
        (Method::Get, "/bottles", "limit=-1", "", 416, "PGRST103"),
        (Method::Get, "/bottles", "nope.id=eq.1", "", 400, "PGRST108"),
        (Method::Get, "/bottles", "select=nope", "", 400, "42703"),
        (
            Method::Get,
            "/bottles",
            "select=id::nonsense",
            "",
            400,
            "42704",
        ),
        (Method::Get, "/bottle", "", "", 404, "PGRST205"),
        (
            Method::Get,
            "/bottles",
            "select=customers(name)&order=customers(nope)",
            "",
            400,
            "42703",
        ),
        (
            Method::Get,
            "/customers",
            "select=bottles(serial)&order=bottles(serial)",
            "",
            400,
            "PGRST118",
        ),
        (
            Method::Get,
            "/bottles",
            "select=serial,nope(id)",
            "",
            400,
            "PGRST200",
        ),
        (
            Method::Get,
            "/bottles",
            "select=count()",
            "",
            400,
            "PGRST123",
        ),
        (Method::Get, "/a/b/c", "", "", 404, "PGRST125"),
        (Method::Patch, "/rpc/add", "", "{}", 405, "PGRST101"),
        (Method::Post, "/customers", "", "{oops", 400, "PGRST102"),
        (
            Method::Post,
            "/customers",
            "",
            r#"[{"id":1},{"name":"x"}]"#,
            400,
            "PGRST102",
        ),
        (
            Method::Post,
            "/customers",
            "",
            r#"{"zzz":1,"aaa":2}"#,
            400,
            "PGRST204",
        ),
        (
            Method::Put,
            "/customers",
            "name=eq.x",
            r#"{"name":"x"}"#,
            405,
            "PGRST105",
        ),
        (
            Method::Put,
            "/customers",
            "id=eq.1",
            r#"{"id":2}"#,
            400,
            "PGRST115",
        ),
        (Method::Post, "/rpc/add", "", r#"{"a":1}"#, 404, "PGRST202"),
        // An empty key never names an unnamed parameter (it used to render broken SQL).
        (
            Method::Post,
            "/rpc/square",
            "",
            r#"{"":2}"#,
            404,
            "PGRST202",
        ),
        (Method::Post, "/rpc/add", "", "[1,", 400, "PGRST102"),
        (
            Method::Get,
            "/customers",
            "select=id,bottles(id)&bottles=eq.1",
            "",
            400,
            "PGRST120",
        ),
        (
            Method::Get,
            "/customers",
            "select=id,bottles(id)&or=(bottles.gt.1,id.eq.1)",
            "",
            400,
            "PGRST120",
        ),
        (Method::Get, "/rpc/nope", "", "", 404, "PGRST202"),
    ];
    for (method, path, query, body, status, code) in cases {
        let mut request = input(*method, path, query);
        request.body = body.as_bytes();
        let result = parse(&request, &settings).and_then(|parsed| match parsed.target {
            manifold_query::Target::Function(_) => {
                translate_call(&parsed, &cache, &settings).map(|_| ())
            }
            _ if matches!(method, Method::Get | Method::Head) => {
                translate_read(&parsed, &cache, &settings).map(|_| ())
            }
            _ => translate_write(&parsed, &cache, &settings).map(|_| ()),
        });
        let error = result.expect_err(&format!("{method:?} {path}?{query} should fail"));
        assert_eq!(
            (error.status, error.code),
            (*status, *code),
            "{method:?} {path}?{query}: {}",
            error.message
        );
    }
}

#[test]
fn unknown_columns_in_payloads_report_the_first_alphabetically() {
    let cache = cache();
    let settings = Settings::default();
    let mut request = input(Method::Post, "/customers", "");
    request.body = br#"{"zzz": 1, "aaa": 2}"#;
    let error =
        translate_write(&parse(&request, &settings).unwrap(), &cache, &settings).unwrap_err();
    assert_eq!(
        error.message,
        "Could not find the 'aaa' column of 'customers' in the schema cache"
    );
}

fn call_with(
    method: Method,
    path: &str,
    query: &str,
    body: &str,
    prefer: &[&str],
) -> Result<manifold_query::TranslatedCall, manifold_query::QueryError> {
    let cache = cache();
    let settings = Settings::default();
    let mut request = input(method, path, query);
    request.body = body.as_bytes();
    request.prefer = prefer.to_vec();
    translate_call(&parse(&request, &settings)?, &cache, &settings)
}

#[test]
fn a_single_unnamed_json_parameter_takes_any_json_body() {
    for body in ["[1,2]", r#"{"a": 1}"#, r#"{"": 1}"#, "{}", "\"text\"", "3"] {
        let call = call_with(Method::Post, "/rpc/echo", "", body, &[]).unwrap();
        assert_eq!(
            call.statement.text(),
            "with pgrst_args as (select $1::text::jsonb as pgrst_body), pgrst_call as materialized \
             (select \"public\".\"echo\"(pgrst_args.pgrst_body) as pgrst_scalar from pgrst_args), \
             pgrst_source as (select * from pgrst_call) select null::int8 as total, count(*)::int8 as page, \
             coalesce((json_agg(pgrst_scalar) -> 0)::text, 'null'), nullif(current_setting('response.headers', true), '') \
             as response_headers, nullif(current_setting('response.status', true), '') as response_status, \
             null::int8 as inserted, null::text as location from pgrst_source",
            "{body}"
        );
        assert_eq!(text(call.statement.binds()), [body]);
    }
    // A function with named parameters never takes an array.
    let error = call_with(Method::Post, "/rpc/add", "", "[1,2]", &[]).unwrap_err();
    assert_eq!((error.status, error.code), (404, "PGRST202"));
}

#[test]
fn calls_that_may_write_are_checked_before_commit() {
    let plain = call_with(Method::Post, "/rpc/retire", "", r#"{"customer": 1}"#, &[]).unwrap();
    assert!(!plain.read_only && !plain.checked && !plain.rollback);

    let mut single = input(Method::Post, "/rpc/retire", "");
    single.body = br#"{"customer": 1}"#;
    single.accept = Some("application/vnd.pgrst.object+json");
    let settings = Settings::default();
    let call = translate_call(&parse(&single, &settings).unwrap(), &cache(), &settings).unwrap();
    assert!(
        call.checked,
        "a singular result of a volatile function is checked in the tx"
    );
    assert!(!call.rollback);

    let limited = call_with(
        Method::Post,
        "/rpc/retire",
        "",
        r#"{"customer": 1}"#,
        &["handling=strict, max-affected=1"],
    )
    .unwrap();
    assert!(limited.checked);
    let manifold_query::CallReply::Rows(reply) = &limited.reply else {
        panic!("set-returning calls answer rows");
    };
    assert_eq!(reply.max_affected, Some(1));
    assert_eq!(reply.applied, ["handling=strict, max-affected=1"]);
    // Without strict handling, max-affected is ignored.
    let lenient = call_with(
        Method::Post,
        "/rpc/retire",
        "",
        r#"{"customer": 1}"#,
        &["max-affected=1"],
    )
    .unwrap();
    assert!(!lenient.checked);

    let rolled_back = call_with(Method::Post, "/rpc/stamp", "", "{}", &["tx=rollback"]).unwrap();
    assert!(rolled_back.checked && rolled_back.rollback);
    let manifold_query::CallReply::Value { applied, .. } = &rolled_back.reply else {
        panic!("a scalar call answers a value");
    };
    assert_eq!(applied, &["tx=rollback"]);

    let error = call_with(
        Method::Post,
        "/rpc/stamp",
        "",
        "{}",
        &["handling=strict", "max-affected=1"],
    )
    .unwrap_err();
    assert_eq!((error.status, error.code), (400, "PGRST128"));
}

#[test]
fn variadic_arguments_over_get() {
    let repeated = call_with(Method::Get, "/rpc/total", "numbers=1&numbers=2", "", &[]).unwrap();
    assert!(repeated.statement.text().starts_with(
        "with pgrst_args as (select $1::text::integer[] as \"numbers\"), pgrst_call as materialized \
         (select \"public\".\"total\"(variadic \"numbers\" => pgrst_args.\"numbers\")"
    ), "{}", repeated.statement.text());
    assert_eq!(text(repeated.statement.binds()), ["{\"1\",\"2\"}"]);
    let literal = call_with(Method::Get, "/rpc/total", "numbers=%7B1,2,3%7D", "", &[]).unwrap();
    assert_eq!(text(literal.statement.binds()), ["{1,2,3}"]);
    let one = call_with(Method::Get, "/rpc/total", "numbers=4", "", &[]).unwrap();
    assert_eq!(text(one.statement.binds()), ["{\"4\"}"]);
}

fn write_with(
    method: Method,
    path: &str,
    query: &str,
    body: &str,
    prefer: &[&str],
) -> manifold_query::TranslatedWrite {
    let cache = cache();
    let settings = Settings::default();
    let mut request = input(method, path, query);
    request.body = body.as_bytes();
    request.prefer = prefer.to_vec();
    translate_write(&parse(&request, &settings).unwrap(), &cache, &settings).unwrap()
}

#[test]
fn max_affected_limits_only_updates_and_deletes() {
    let prefer = ["handling=strict, max-affected=1"];
    let insert = write_with(
        Method::Post,
        "/customers",
        "",
        r#"[{"id":1},{"id":2}]"#,
        &prefer,
    );
    assert!(!insert.checked);
    assert_eq!(insert.reply.max_affected, None);
    assert!(
        insert.reply.applied.is_empty(),
        "{:?}",
        insert.reply.applied
    );
    let update = write_with(
        Method::Patch,
        "/customers",
        "id=gt.1",
        r#"{"name":"x"}"#,
        &prefer,
    );
    assert!(update.checked);
    assert_eq!(update.reply.max_affected, Some(1));
    assert_eq!(update.reply.applied, ["handling=strict, max-affected=1"]);
}

#[test]
fn missing_default_fills_absent_keys_with_the_column_default_per_row() {
    let prefer = ["missing=default"];
    for body in [r#"{"name": "x"}"#, r#"[{"name": "x"}, {"id": 3}]"#] {
        let write = write_with(Method::Post, "/customers", "columns=id,name", body, &prefer);
        assert_eq!(write.reply.applied, ["missing=default"], "{body}");
        let sql = write.statement.text();
        // No column of this catalog has a default, so the body's value (or null) is written.
        assert!(
            sql.contains(
                "select pgrst_body.\"id\", pgrst_body.\"name\" from json_array_elements((select pgrst_rows from pgrst_payload)) \
                 with ordinality as pgrst_elem, lateral json_populate_record(null::\"public\".\"customers\", pgrst_elem.value) \
                 as pgrst_body order by pgrst_elem.ordinality"
            ),
            "{sql}"
        );
    }
    let without = write_with(Method::Post, "/customers", "", r#"{"name": "x"}"#, &[]);
    assert!(without.reply.applied.is_empty());
}

#[test]
fn planned_and_estimated_counts_explain_the_count_query() {
    let cache = cache();
    let settings = Settings::default();
    let mut request = input(Method::Get, "/bottles", "select=id&id=gt.1");
    request.prefer = vec!["count=planned"];
    let read = translate_read(&parse(&request, &settings).unwrap(), &cache, &settings).unwrap();
    let planned = read.planned_count.expect("planned counts explain");
    assert_eq!(
        planned.statement.text(),
        "explain (format json) select 1 from \"public\".\"bottles\" as t0 where t0.\"id\" > $1::text::integer"
    );
    assert!(planned.applies_to(None));
    assert!(read.statement.text().contains("select null::int8 as total"));
    assert_eq!(read.reply.applied, ["count=planned"]);

    request.prefer = vec!["count=estimated"];
    let read = translate_read(&parse(&request, &settings).unwrap(), &cache, &settings).unwrap();
    let estimated = read.planned_count.expect("estimated counts may explain");
    // Exact up to db-max-rows (1000), so the count stops after 1001 rows.
    assert!(read.statement.text().contains(
        "(select count(*) from (select 1 from \"public\".\"bottles\" as t1 where t1.\"id\" > $4::text::integer limit $5::int8) as pgrst_count)::int8 as total"
    ), "{}", read.statement.text());
    assert_eq!(
        text(read.statement.binds()).last().map(String::as_str),
        Some("1001")
    );
    assert!(!estimated.applies_to(Some(1000)));
    assert!(estimated.applies_to(Some(1001)));
    assert_eq!(read.reply.applied, ["count=estimated"]);

    let plan = json!([{"Plan": {"Node Type": "Seq Scan", "Plan Rows": 1234.0}}]);
    assert_eq!(manifold_query::planned_total(&plan, 10), Some(1234));
    assert_eq!(manifold_query::planned_total(&plan, 2000), Some(2000));
    assert_eq!(manifold_query::planned_total(&json!({}), 0), None);
}
