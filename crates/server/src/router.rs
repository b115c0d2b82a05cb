//! The one router serving `/rest/v1`, `/auth/v1`, `/storage/v1` and `/realtime/v1`, with request
//! ids, tracing, CORS and panic containment around everything.

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use manifold_auth::gateway::require_api_key;
use serde_json::json;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::health::health;
use crate::state::AppState;

/// How long browsers may cache a preflight answer, as Supabase's gateway.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(86_400);

/// Response headers browsers may read: PostgREST's (counts, locations), GoTrue's (API version,
/// pagination) and Storage's (TUS, ETag, disposition).
const EXPOSED_HEADERS: &[&str] = &[
    "content-range",
    "content-location",
    "content-type",
    "content-profile",
    "location",
    "range-unit",
    "preference-applied",
    "x-request-id",
    "x-supabase-api-version",
    "x-total-count",
    "link",
    "etag",
    "content-disposition",
    "upload-offset",
    "upload-length",
    "upload-expires",
    "tus-resumable",
    "tus-version",
    "tus-extension",
    "tus-max-size",
];

/// The whole HTTP API. Tests build the same router.
pub fn app(state: AppState) -> Router {
    let gateway = from_fn_with_state(state.gatekeeper.clone(), require_api_key);
    let rest = manifold_rest::router(state.rest()).layer(gateway);
    let auth = manifold_auth::api::router(state.auth());
    // Storage checks tokens itself (public buckets need none), as Supabase's gateway leaves it.
    let storage = manifold_storage::router(state.storage());
    let realtime = manifold_realtime::router(state.realtime());
    let cors = cors_layer(&state.config.api.cors_allowed_origins);
    let request_id = HeaderName::from_static("x-request-id");

    Router::new()
        .route("/health", get(health))
        .with_state(state)
        .merge(rest)
        .merge(auth)
        .merge(storage)
        .merge(realtime)
        .fallback(not_found)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                .layer(TraceLayer::new_for_http())
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(CatchPanicLayer::custom(panic_response))
                .layer(cors),
        )
}

fn cors_layer(allowed: &[String]) -> CorsLayer {
    let origin = if allowed.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            allowed
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(origin)
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers(
            EXPOSED_HEADERS
                .iter()
                .map(|name| HeaderName::from_static(name))
                .collect::<Vec<_>>(),
        )
        .max_age(PREFLIGHT_MAX_AGE)
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"message": "no Route matched with those values"})),
    )
        .into_response()
}

fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("request handler panicked");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        axum::Json(json!({"message": "internal server error"})),
    )
        .into_response()
}
