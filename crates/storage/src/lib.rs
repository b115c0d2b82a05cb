//! The Supabase Storage API at `/storage/v1`: bucket and object rows in PostgreSQL, read and
//! written as the caller so row-level security on `storage.buckets` / `storage.objects` decides,
//! and object bytes in `object_store` (local directory or S3), streamed both ways.

mod access;
mod blob;
mod bucket;
mod download;
mod drain;
mod error;
mod limits;
mod list;
mod local_read;
mod local_write;
mod names;
mod objects;
mod request;
mod route;
mod sign;
mod sql;
mod staging;
mod upload;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use manifold_auth::Gatekeeper;
use manifold_config::Config;
use manifold_db::Db;

pub use error::StorageError;

use crate::blob::Blobs;
use crate::request::Incoming;
use crate::route::Route;

/// What the `/storage/v1` handlers share.
#[derive(Clone, Debug)]
pub struct StorageState {
    /// The API pool.
    pub db: Db,
    /// Keys, token verification and role rules.
    pub gatekeeper: Arc<Gatekeeper>,
    /// Settings.
    pub config: Arc<Config>,
    /// Directory for locally stored objects (under the data dir).
    pub local_root: PathBuf,
}

/// The state handlers run with: the shared parts plus the opened object store.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) db: Db,
    pub(crate) gatekeeper: Arc<Gatekeeper>,
    pub(crate) config: Arc<Config>,
    blobs: Option<Blobs>,
}

impl App {
    /// The object store; absent only when its configuration could not be opened at startup.
    pub(crate) fn blobs(&self) -> Result<&Blobs, StorageError> {
        self.blobs.as_ref().ok_or_else(|| {
            StorageError::Internal("the object store could not be opened at startup".into())
        })
    }
}

/// Routes for `/storage/v1/…`. The object store is opened here; if that fails (a bad S3
/// endpoint, an unwritable directory) the error is logged and object routes answer 500.
pub fn router(state: StorageState) -> Router {
    let blobs = match Blobs::from_config(&state.config.storage, &state.local_root) {
        Ok(blobs) => Some(blobs),
        Err(error) => {
            tracing::error!(%error, "cannot open the storage backend; object routes will fail");
            None
        }
    };
    let app = Arc::new(App {
        db: state.db,
        gatekeeper: state.gatekeeper,
        config: state.config,
        blobs,
    });
    Router::new()
        .route("/storage/v1/{*path}", any(dispatch))
        .with_state(app)
}

async fn dispatch(State(app): State<Arc<App>>, request: Request) -> Response {
    let (incoming, body, route) = match Incoming::from_request(request) {
        Ok(parsed) => parsed,
        Err(error) => return error.into_response(),
    };
    // Upload bodies are streamed by the handler; if it refuses early, what it left unread is
    // drained before answering (see `drain`).
    let (body, unread) = if matches!(
        route,
        Route::Upload(_) | Route::Update(_) | Route::SignedUpload(_)
    ) {
        let announced = incoming
            .header(http::header::CONTENT_LENGTH)
            .and_then(|value| value.parse().ok());
        let shared = drain::SharedBody::new(body, announced);
        (shared.body(), Some(shared))
    } else {
        (body, None)
    };
    let result = match route {
        Route::Status => Ok(request::text_response("")),
        Route::Version => Ok(request::text_response(env!("CARGO_PKG_VERSION"))),
        Route::ListBuckets => bucket::list(&app, incoming).await,
        Route::CreateBucket => bucket::create(&app, incoming, body).await,
        Route::GetBucket(id) => bucket::get(&app, incoming, id).await,
        Route::UpdateBucket(id) => bucket::update(&app, incoming, body, id).await,
        Route::DeleteBucket(id) => bucket::delete(&app, incoming, id).await,
        Route::EmptyBucket(id) => bucket::empty(&app, incoming, id).await,
        Route::List(bucket) => list::list_v1(&app, incoming, body, bucket).await,
        Route::ListV2(bucket) => list::list_v2(&app, incoming, body, bucket).await,
        Route::Move => objects::move_object(&app, incoming, body).await,
        Route::Copy => objects::copy_object(&app, incoming, body).await,
        Route::SignMany(bucket) => sign::sign_many(&app, incoming, body, bucket).await,
        Route::Sign(path) => sign::sign_one(&app, incoming, body, path).await,
        Route::SignedDownload(path) => sign::signed_download(&app, incoming, path).await,
        Route::SignUpload(path) => sign::sign_upload(&app, incoming, path).await,
        Route::SignedUpload(path) => sign::signed_upload(&app, incoming, body, path).await,
        Route::Info(path, access) => download::info(&app, incoming, path, access).await,
        Route::Download(path, access) => download::download(&app, incoming, path, access).await,
        Route::Upload(path) => {
            upload::upload(&app, incoming, body, path, upload::Mode::Create).await
        }
        Route::Update(path) => {
            upload::upload(&app, incoming, body, path, upload::Mode::Update).await
        }
        Route::DeleteObject(path) => objects::delete_one(&app, incoming, path).await,
        Route::RemoveMany(bucket) => objects::remove_many(&app, incoming, body, bucket).await,
    };
    if let Some(unread) = unread.filter(|_| result.is_err()) {
        unread.drain().await;
    }
    result.unwrap_or_else(IntoResponse::into_response)
}
