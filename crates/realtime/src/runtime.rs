//! Realtime's process-wide parts (topics, subscriptions, catalog, authorizer, the replication
//! reader), shared by the router and the background task of one server. `RealtimeState` is
//! built by the server as a plain struct, so the parts are found through its `config` Arc,
//! which both `router` and `start` receive clones of.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::StreamExt;
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::RealtimeState;
use crate::changes::authorizer::Authorizer;
use crate::changes::catalog::Catalog;
use crate::changes::pipeline::PipelineParts;
use crate::changes::registry::Registry;
use crate::changes::replication::Replication;
use crate::hub::Hub;

/// How long a realtime admin query waits for a connection.
const POOL_TIMEOUT: Duration = Duration::from_secs(10);
/// Wait before re-listening after the DDL listener lost its connection.
const LISTEN_RETRY: Duration = Duration::from_secs(1);

/// Everything realtime keeps for one server.
#[derive(Debug)]
pub(crate) struct Runtime {
    pub(crate) state: RealtimeState,
    pub(crate) hub: Arc<Hub>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) authorizer: Arc<Authorizer>,
    pub(crate) replication: Arc<Replication>,
    /// Cancelled when the server shuts down: sockets close, the reader confirms and stops.
    pub(crate) shutdown: CancellationToken,
    pub(crate) tracker: TaskTracker,
}

type Runtimes = Mutex<HashMap<usize, Arc<Runtime>>>;

fn runtimes() -> &'static Runtimes {
    static RUNTIMES: OnceLock<Runtimes> = OnceLock::new();
    RUNTIMES.get_or_init(Runtimes::default)
}

fn key_of(state: &RealtimeState) -> usize {
    Arc::as_ptr(&state.config) as usize
}

/// The runtime of the server `state` belongs to, created on first use.
pub(crate) fn runtime_for(state: &RealtimeState) -> Arc<Runtime> {
    let mut all = match runtimes().lock() {
        Ok(all) => all,
        Err(poisoned) => poisoned.into_inner(),
    };
    all.entry(key_of(state))
        .or_insert_with(|| Arc::new(Runtime::new(state.clone())))
        .clone()
}

/// Forgets the runtime of a server that stopped.
pub(crate) fn forget(state: &RealtimeState) {
    if let Ok(mut all) = runtimes().lock() {
        all.remove(&key_of(state));
    }
}

/// The default slot name: one slot per database, so servers of different databases on one
/// cluster never share one.
fn default_slot(admin_url: &str) -> String {
    let database = admin_url
        .parse::<tokio_postgres::Config>()
        .ok()
        .and_then(|config| config.get_dbname().map(str::to_owned))
        .unwrap_or_else(|| "postgres".to_owned());
    let cleaned: String = database
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let mut slot = format!("manifold_realtime_{cleaned}");
    slot.truncate(63);
    slot
}

impl Runtime {
    fn new(state: RealtimeState) -> Self {
        let config = state.config.realtime.clone();
        let admin_url = state.admin_url.expose().to_owned();
        // The pool is created lazily: no connection opens until realtime is used.
        let pool = manifold_db::create_pool(
            &admin_url,
            config.authorizer_connections.max(1),
            POOL_TIMEOUT,
        )
        .unwrap_or_else(|_| {
            manifold_db::create_pool("postgresql://invalid", 1, POOL_TIMEOUT)
                .expect("a pool over a constant URL can be built")
        });
        let catalog = Arc::new(Catalog::new(pool));
        let authorizer = Arc::new(Authorizer::new(catalog.clone()));
        let hub = Arc::new(Hub::default());
        let registry = Arc::new(Registry::default());
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let slot = if config.slot_name.is_empty() {
            default_slot(&admin_url)
        } else {
            config.slot_name.clone()
        };
        let parts = PipelineParts {
            catalog: catalog.clone(),
            authorizer: authorizer.clone(),
            registry: registry.clone(),
            hub: hub.clone(),
        };
        let replication = Replication::new(
            parts,
            config,
            admin_url,
            slot,
            shutdown.clone(),
            tracker.clone(),
        );
        Self {
            state,
            hub,
            registry,
            catalog,
            authorizer,
            replication,
            shutdown,
            tracker,
        }
    }

    /// Drops cached catalog knowledge whenever DDL happens (the schema's event triggers send
    /// `NOTIFY pgrst`), so new policies, grants and columns apply to the next change.
    pub(crate) async fn listen_for_ddl(self: Arc<Self>) {
        while !self.shutdown.is_cancelled() {
            if let Err(error) = self.listen_once().await {
                tracing::debug!(%error, "realtime DDL listener lost its connection");
            }
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                () = tokio::time::sleep(LISTEN_RETRY) => {}
            }
        }
    }

    async fn listen_once(&self) -> Result<(), tokio_postgres::Error> {
        let config: tokio_postgres::Config = self.state.admin_url.expose().parse()?;
        let (client, mut connection) = config.connect(tokio_postgres::NoTls).await?;
        let (notify, mut notified) = tokio::sync::mpsc::channel(16);
        let driver = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(_)) => {
                        let _ = notify.try_send(());
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        client.execute("listen pgrst", &[]).await?;
        // Anything cached before the listener was up may be stale.
        self.invalidate();
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => break,
                received = notified.recv() => match received {
                    Some(()) => self.invalidate(),
                    None => break,
                },
            }
        }
        driver.abort();
        Ok(())
    }

    fn invalidate(&self) {
        self.catalog.invalidate();
        self.authorizer.invalidate();
    }
}
