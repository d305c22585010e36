//! What every handler shares: the log, the command handler, the projector,
//! the history cache, tokens, limits.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use domain::handler::Handler;
use projections::{HistoryCache, Projector};
use store::{EventStore, SqliteStore};

use crate::apidb::ApiDb;
use crate::auth::{Principal, RateLimiter, Role, Tokens};
use crate::error::ApiError;
use crate::routes::views::ViewCache;

/// Limits and settings of a server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the files live.
    pub data_dir: PathBuf,
    /// Largest request body.
    pub request_body_bytes_max: usize,
    /// Longest time to produce a response.
    pub request_timeout_ms: u64,
    /// Requests per second per token (0: no limit).
    pub rate_limit_per_second: u32,
    /// Longest wait for `min_position`.
    pub min_position_wait_ms: u64,
    /// The admin token to create on first start (else a random one).
    pub admin_token: Option<String>,
    /// Most bytes of serialised views kept in the view cache.
    pub view_cache_bytes_max: usize,
    /// Longest request target (path and query).
    pub request_uri_bytes_max: usize,
    /// Most bytes of request header fields.
    pub request_headers_bytes_max: usize,
    /// Most request header fields.
    pub request_headers_max: usize,
}

impl Config {
    /// Defaults for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            request_body_bytes_max: 64 * 1024,
            request_timeout_ms: 10_000,
            rate_limit_per_second: 1_000,
            min_position_wait_ms: 3_000,
            admin_token: None,
            view_cache_bytes_max: crate::routes::views::VIEW_CACHE_BYTES_MAX,
            request_uri_bytes_max: crate::problems::REQUEST_URI_BYTES_MAX,
            request_headers_bytes_max: crate::problems::REQUEST_HEADERS_BYTES_MAX,
            request_headers_max: crate::problems::REQUEST_HEADERS_MAX,
        }
    }
}

/// What the first start of an empty data directory created.
#[derive(Debug, Clone)]
pub enum Bootstrap {
    /// Tokens existed already.
    Existing,
    /// The admin token came from the configuration.
    Configured,
    /// A random admin token, written to this file (mode 0600).
    Generated {
        /// The token.
        token: String,
        /// Where it was written.
        path: PathBuf,
    },
}

#[derive(Debug)]
struct Inner {
    config: Config,
    store: Arc<SqliteStore>,
    handler: Handler,
    projector: Projector,
    history: HistoryCache,
    tokens: Arc<Tokens>,
    rate_limiter: RateLimiter,
    views: ViewCache,
    shutdown: tokio::sync::watch::Sender<bool>,
}

/// Shared state: cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

/// The name of the bootstrap admin token.
pub const ADMIN_TOKEN_NAME: &str = "admin";

impl AppState {
    /// Opens the data directory (creating it), starts the projector and
    /// bootstraps the admin token.
    pub async fn open(config: Config) -> Result<(Self, Bootstrap), ApiError> {
        let dir = config.data_dir.clone();
        crate::files::prepare_data_dir(&dir).map_err(|e| ApiError::Internal(format!("{}: {e}", dir.display())))?;
        let store = Arc::new(SqliteStore::open(dir.join("events.sqlite")).await?);
        let dyn_store: Arc<dyn EventStore> = store.clone();
        let projector = Projector::start(Arc::clone(&dyn_store), dir.join("views.sqlite")).await?;
        let db = ApiDb::open(&dir.join("api.sqlite"))?;
        let tokens = Tokens::load(db.clone()).await?;
        let bootstrap = bootstrap(&tokens, &config, &dir).await?;
        let views = ViewCache::new(config.view_cache_bytes_max);
        let inner = Inner {
            rate_limiter: RateLimiter::new(config.rate_limit_per_second),
            handler: Handler::new(Arc::clone(&dyn_store)),
            history: HistoryCache::new(dyn_store, projections::history::HISTORY_EVENTS_MAX),
            config,
            store,
            projector,
            tokens,
            views,
            shutdown: tokio::sync::watch::channel(false).0,
        };
        Ok((Self(Arc::new(inner)), bootstrap))
    }

    /// Tells long-lived responses (live streams) to end, so that a graceful
    /// shutdown does not wait for them forever.
    pub fn begin_shutdown(&self) {
        self.0.shutdown.send_replace(true);
    }

    /// Resolves once [`AppState::begin_shutdown`] was called.
    pub fn shutting_down(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.shutdown.subscribe();
        async move {
            let _ = rx.wait_for(|down| *down).await;
        }
    }

    /// Flushes and closes the log (after the server stopped serving).
    pub async fn close(&self) {
        self.0.store.close().await;
    }

    /// Limits and settings.
    pub fn config(&self) -> &Config {
        &self.0.config
    }

    /// The event log.
    pub fn store(&self) -> Arc<dyn EventStore> {
        self.0.store.clone()
    }

    /// The SQLite log itself (for raw reads: the audit export).
    pub fn sqlite(&self) -> &Arc<SqliteStore> {
        &self.0.store
    }

    /// The command handler.
    pub fn handler(&self) -> &Handler {
        &self.0.handler
    }

    /// The projector.
    pub fn projector(&self) -> &Projector {
        &self.0.projector
    }

    /// Grants' decoded histories, for `known_at`.
    pub fn history(&self) -> &HistoryCache {
        &self.0.history
    }

    /// The tokens.
    pub fn tokens(&self) -> &Arc<Tokens> {
        &self.0.tokens
    }

    /// Serialised live views.
    pub fn views(&self) -> &ViewCache {
        &self.0.views
    }

    /// The per-token rate limit.
    pub fn rate_limiter(&self) -> &RateLimiter {
        &self.0.rate_limiter
    }
}

async fn bootstrap(tokens: &Tokens, config: &Config, dir: &Path) -> Result<Bootstrap, ApiError> {
    if !tokens.is_empty() {
        return Ok(Bootstrap::Existing);
    }
    let admin = Principal {
        name: events::ActorId::parse(ADMIN_TOKEN_NAME).map_err(|e| ApiError::Internal(e.to_string()))?,
        role: Role::Admin,
        programmes: Default::default(),
    };
    let configured = config.admin_token.clone().filter(|t| !t.is_empty());
    let was_configured = configured.is_some();
    let Some(token) = tokens.create(admin, "bootstrap", configured).await? else {
        return Ok(Bootstrap::Existing);
    };
    if was_configured {
        return Ok(Bootstrap::Configured);
    }
    let path = dir.join("admin-token");
    write_private(&path, &token).map_err(|e| ApiError::Internal(format!("{}: {e}", path.display())))?;
    Ok(Bootstrap::Generated { token, path })
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}
