//! The custom-access-token hook, as Supabase's `pg-functions://` hooks: a SQL function receives
//! `{user_id, claims, authentication_method}` and returns `{claims}` (which replace the token's
//! claims) or `{error: {http_code, message}}`. Any failure fails the sign-in with a clear message.

use http::StatusCode;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::Auth;
use super::db::{Tx, binds, col, query};
use super::error::AuthError;

/// Claims the hook may change but not remove: without them clients and RLS break.
const REQUIRED_CLAIMS: &[&str] = &["sub", "aud", "exp", "iat", "role", "aal", "session_id"];

/// `schema.function` from `schema.function` or `pg-functions://<db>/<schema>/<function>`.
pub(crate) fn function_name(setting: &str) -> Option<String> {
    let setting = setting.trim();
    let name = match setting.strip_prefix("pg-functions://") {
        Some(rest) => {
            let mut parts = rest.split('/');
            let (_database, schema, function) = (parts.next()?, parts.next()?, parts.next()?);
            if parts.next().is_some() {
                return None;
            }
            format!("{schema}.{function}")
        }
        None => setting.to_owned(),
    };
    let valid = name.split('.').count() <= 2
        && name.split('.').all(|part| {
            !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        });
    valid.then_some(name)
}

/// Runs the hook when one is configured and returns the claims to sign.
pub(crate) async fn custom_claims(
    auth: &Auth,
    tx: &Tx,
    user_id: Uuid,
    claims: Map<String, Value>,
    method: &str,
) -> Result<Map<String, Value>, AuthError> {
    let Some(setting) = auth.settings().custom_access_token_hook.as_deref() else {
        return Ok(claims);
    };
    let failed = |detail: String| {
        AuthError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unexpected_failure",
            format!("Error running hook URI: {setting}: {detail}"),
        )
    };
    let name = function_name(setting).ok_or_else(|| failed("invalid function name".into()))?;
    let event = json!({
        "user_id": user_id.to_string(),
        "claims": claims,
        "authentication_method": method,
    });
    let row = tx
        .one(&query(
            "select auth.manifold_run_hook($1, $2::jsonb)",
            binds![name, event.to_string()],
        ))
        .await
        .map_err(|error| match &error {
            // The hook's own `raise` (or a missing function) is the project's code: show it.
            AuthError::Db(db) if db.db_error().is_some() => failed(
                db.db_error()
                    .map(|e| e.message().to_owned())
                    .unwrap_or_default(),
            ),
            _ => error,
        })?;
    let output: Option<Value> = col(&row, 0)?;
    interpret(output).map_err(|problem| match problem {
        HookProblem::Declined { status, message } => {
            let code = if status.is_server_error() {
                "unexpected_failure"
            } else {
                "unknown"
            };
            AuthError::new(status, code, message)
        }
        HookProblem::Invalid(detail) => failed(detail.into()),
    })
}

enum HookProblem {
    Declined { status: StatusCode, message: String },
    Invalid(&'static str),
}

fn interpret(output: Option<Value>) -> Result<Map<String, Value>, HookProblem> {
    let Some(Value::Object(mut output)) = output else {
        return Err(HookProblem::Invalid("the hook must return a jsonb object"));
    };
    if let Some(error) = output.remove("error").filter(|error| !error.is_null()) {
        let status = error
            .get("http_code")
            .and_then(Value::as_u64)
            .and_then(|code| u16::try_from(code).ok())
            .and_then(|code| StatusCode::from_u16(code).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("The access token hook refused the sign-in")
            .to_owned();
        return Err(HookProblem::Declined { status, message });
    }
    let Some(Value::Object(claims)) = output.remove("claims") else {
        return Err(HookProblem::Invalid(
            "the hook's output has no `claims` object",
        ));
    };
    if REQUIRED_CLAIMS
        .iter()
        .any(|name| !claims.contains_key(*name))
    {
        return Err(HookProblem::Invalid(
            "the hook's claims lack a required claim (sub, aud, exp, iat, role, aal, session_id)",
        ));
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names() {
        assert_eq!(
            function_name("pg-functions://postgres/public/custom_access_token_hook").as_deref(),
            Some("public.custom_access_token_hook")
        );
        assert_eq!(function_name("public.hook").as_deref(), Some("public.hook"));
        assert_eq!(function_name("hook").as_deref(), Some("hook"));
        assert!(function_name("public.hook(); drop table x").is_none());
        assert!(function_name("a.b.c").is_none());
    }

    #[test]
    fn outputs() {
        let claims = json!({"sub": "s", "aud": "a", "exp": 1, "iat": 1, "role": "r", "aal": "aal1",
            "session_id": "x", "org": 1});
        assert_eq!(
            interpret(Some(json!({"claims": claims}))).ok().unwrap()["org"],
            1
        );
        assert!(matches!(
            interpret(Some(json!({"error": {"http_code": 403, "message": "no"}}))),
            Err(HookProblem::Declined {
                status: StatusCode::FORBIDDEN,
                ..
            })
        ));
        assert!(matches!(
            interpret(Some(json!({"claims": {"sub": "s"}}))),
            Err(HookProblem::Invalid(_))
        ));
        assert!(matches!(interpret(None), Err(HookProblem::Invalid(_))));
    }
}
