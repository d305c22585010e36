//! What every handler shares: the log, the command handler, the projector,
//! the history cache, tokens, limits, the last chain verification.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use domain::handler::Handler;
use projections::{HistoryCache, Projector};
use store::EventStore;

use crate::auth::{Principal, RateLimiter, Role, Tokens};
use crate::backend::API_REMEDY;
use crate::dto::LastVerification;
use crate::error::ApiError;
use crate::routes::views::ViewCache;

/// How long a graceful stop waits for the views to reach their file.
pub const VIEWS_FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

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
    /// Most facts of grant ledgers the projector keeps in memory (others
    /// are read from the views file when needed).
    pub ledger_cache_facts_max: usize,
    /// Most events of grant state the command handler keeps in memory
    /// (grants used least recently are evicted, and read again from the
    /// log when next used).
    pub grant_cache_events_max: usize,
    /// Longest request target (path and query).
    pub request_uri_bytes_max: usize,
    /// Most bytes of request header fields.
    pub request_headers_bytes_max: usize,
    /// Most request header fields.
    pub request_headers_max: usize,
    /// A fault-injection hook for tests of a full disk: a file holding the
    /// read-model file's page cap (`PRAGMA max_page_count`), re-read every
    /// [`VIEWS_PAGES_MAX_POLL_MS`]; empty, `none` or missing lifts the cap.
    pub views_pages_max_file: Option<PathBuf>,
    /// The shared log and API data in PostgreSQL (`postgres://...`); `None`
    /// for the data directory's SQLite files. The read models stay in the
    /// data directory either way: each server keeps its own.
    pub database_url: Option<String>,
    /// Mark the dashboard's session cookie `Secure` (the server is reached
    /// over TLS through a proxy); it is also marked when a request says
    /// `X-Forwarded-Proto: https`.
    pub secure_cookies: bool,
    /// Serve the dashboard's files from this directory instead of the
    /// copies built into the binary (for working on the page).
    pub dashboard_dir: Option<PathBuf>,
    /// Compress answers with gzip for clients that accept it (never a live
    /// stream, never a tiny answer).
    pub compression: bool,
    /// Origins (`https://host[:port]`, or `*` for any) whose pages may call
    /// the API from a browser (CORS). Empty: none, the default.
    pub cors_allow_origins: Vec<String>,
}

/// How often [`Config::views_pages_max_file`] is re-read.
pub const VIEWS_PAGES_MAX_POLL_MS: u64 = 50;

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
            ledger_cache_facts_max: projections::LEDGER_CACHE_FACTS_MAX,
            grant_cache_events_max: domain::handler::GRANT_CACHE_EVENTS_MAX,
            request_uri_bytes_max: crate::problems::REQUEST_URI_BYTES_MAX,
            request_headers_bytes_max: crate::problems::REQUEST_HEADERS_BYTES_MAX,
            request_headers_max: crate::problems::REQUEST_HEADERS_MAX,
            views_pages_max_file: None,
            database_url: None,
            secure_cookies: false,
            dashboard_dir: None,
            compression: true,
            cors_allow_origins: Vec::new(),
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
    /// The data directory, held for as long as the server runs.
    _dir_lock: crate::files::DirLock,
    config: Config,
    store: Arc<dyn EventStore>,
    handler: Handler,
    projector: Projector,
    history: HistoryCache,
    tokens: Arc<Tokens>,
    rate_limiter: RateLimiter,
    views: ViewCache,
    shutdown: tokio::sync::watch::Sender<bool>,
    /// The last chain verification run on this server.
    last_verification: std::sync::Mutex<Option<LastVerification>>,
}

/// Why a data directory cannot be opened. It always names the file, and
/// says what to do when the file cannot be derived from the log.
#[derive(Debug, thiserror::Error)]
#[error("{}: {detail}{}", file.display(), remedy.map(|r| format!(". {r}")).unwrap_or_default())]
pub struct OpenError {
    /// The file (or directory) at fault.
    pub file: PathBuf,
    /// What failed.
    pub detail: String,
    /// What the operator can do.
    pub remedy: Option<&'static str>,
}

/// What to do when the read-model file cannot be opened.
const VIEWS_REMEDY: &str = "The views are derived from the log: fix the disk or permissions, or move the file \
    aside (or run `grantlog rebuild-views`) to rebuild it";

/// What to do when another process holds the data directory.
const LOCK_REMEDY: &str = "Stop it first, or give this one another --data-dir (servers sharing one log in \
    PostgreSQL each need a data directory of their own)";

fn open_error(file: PathBuf, detail: impl std::fmt::Display, remedy: &'static str) -> OpenError {
    OpenError { file, detail: detail.to_string(), remedy: Some(remedy) }
}

/// An API error's own detail (an internal one's is not in its `Display`).
pub(crate) fn api_detail(e: &ApiError) -> String {
    match e {
        ApiError::Internal(detail) => detail.clone(),
        other => other.to_string(),
    }
}

/// Shared state: cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

/// The name of the bootstrap admin token.
pub const ADMIN_TOKEN_NAME: &str = "admin";

impl AppState {
    /// Opens the data directory (creating it), starts the projector (which
    /// moves a read-model file it cannot trust aside and rebuilds it) and
    /// bootstraps the admin token. An error names the file at fault.
    pub async fn open(config: Config) -> Result<(Self, Bootstrap), OpenError> {
        let dir = config.data_dir.clone();
        let prepared = match config.database_url {
            Some(_) => crate::files::prepare_views_dir(&dir),
            None => crate::files::prepare_data_dir(&dir),
        };
        prepared.map_err(|e| OpenError { file: dir.clone(), detail: e.to_string(), remedy: None })?;
        let locking = dir.clone();
        let dir_lock = tokio::task::spawn_blocking(move || crate::files::lock_data_dir(&locking))
            .await
            .map_err(|e| OpenError { file: dir.join(crate::files::LOCK_FILE), detail: e.to_string(), remedy: None })?
            .map_err(|e| OpenError { file: e.path().to_owned(), detail: e.to_string(), remedy: Some(LOCK_REMEDY) })?;
        let database_url = config.database_url.as_deref();
        let store = crate::backend::open_log(&dir, database_url, true).await?;
        let dyn_store = Arc::clone(&store);
        let views = projections::views_path(&dir);
        let projector = Projector::start_with(Arc::clone(&dyn_store), &views, config.ledger_cache_facts_max)
            .await
            .map_err(|e| match e {
                projections::ProjectionError::File { path, detail } => open_error(path, detail, VIEWS_REMEDY),
                other => open_error(views, other, VIEWS_REMEDY),
            })?;
        let api_data = crate::backend::open_api_data(&dir, database_url).await?;
        let api_file = match database_url {
            Some(url) => PathBuf::from(store_postgres::redacted_url(url)),
            None => dir.join("api.sqlite"),
        };
        let api_failed = |e: ApiError| open_error(api_file.clone(), api_detail(&e), API_REMEDY);
        let tokens = Tokens::load(api_data).await.map_err(api_failed)?;
        let bootstrap = bootstrap(&tokens, &config, &dir).await.map_err(api_failed)?;
        let shared = database_url.is_some();
        let pages_max_file = config.views_pages_max_file.clone();
        let views = ViewCache::new(config.view_cache_bytes_max);
        let inner = Inner {
            _dir_lock: dir_lock,
            rate_limiter: RateLimiter::new(config.rate_limit_per_second),
            // On a shared database other servers append too: the handler
            // reads what it has not seen before deciding.
            handler: if shared {
                Handler::shared(Arc::clone(&dyn_store))
            } else {
                Handler::new(Arc::clone(&dyn_store))
            }
            .with_cache_events_max(config.grant_cache_events_max),
            history: HistoryCache::new(dyn_store, projections::history::HISTORY_EVENTS_MAX),
            config,
            store,
            projector,
            tokens,
            views,
            shutdown: tokio::sync::watch::channel(false).0,
            last_verification: std::sync::Mutex::new(None),
        };
        let state = Self(Arc::new(inner));
        if let Some(file) = pages_max_file {
            tokio::spawn(follow_pages_max(Arc::downgrade(&state.0), file));
        }
        Ok((state, bootstrap))
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

    /// Flushes the views to their file (bounded by [`VIEWS_FLUSH_WAIT`]:
    /// derived data, caught up from the log at the next start if it could
    /// not be written) and closes the log, after the server stopped serving.
    pub async fn close(&self) {
        if let Err(e) = self.0.projector.flush(VIEWS_FLUSH_WAIT).await {
            tracing::warn!(error = %e, "the views file is behind the log at the stop; the next start catches it up");
        }
        self.0.store.close().await;
    }

    /// Limits and settings.
    pub fn config(&self) -> &Config {
        &self.0.config
    }

    /// Where the log is: `postgres` (a database shared by servers) or
    /// `sqlite` (the data directory's file).
    pub fn backend(&self) -> &'static str {
        if self.0.config.database_url.is_some() { "postgres" } else { "sqlite" }
    }

    /// The event log.
    pub fn store(&self) -> Arc<dyn EventStore> {
        self.0.store.clone()
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

    /// Remembers a chain verification's outcome for the operator's summary.
    pub fn set_last_verification(&self, outcome: LastVerification) {
        *self.0.last_verification.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
    }

    /// The last chain verification run on this server, if any.
    pub fn last_verification(&self) -> Option<LastVerification> {
        self.0.last_verification.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The per-token rate limit.
    pub fn rate_limiter(&self) -> &RateLimiter {
        &self.0.rate_limiter
    }
}

/// Applies the page cap written in `file` to the read-model file whenever
/// it changes, for as long as the server runs (see
/// [`Config::views_pages_max_file`]).
async fn follow_pages_max(state: std::sync::Weak<Inner>, file: PathBuf) {
    let mut current: Option<u64> = None;
    loop {
        let Some(state) = state.upgrade() else { return };
        let text = tokio::fs::read_to_string(&file).await.unwrap_or_default();
        let wanted = text.trim().parse::<u64>().ok();
        if wanted != current {
            tracing::warn!(file = %file.display(), pages_max = ?wanted, "test hook: read model file page cap changed");
            state.projector.set_pages_max(wanted);
            current = wanted;
        }
        drop(state);
        tokio::time::sleep(std::time::Duration::from_millis(VIEWS_PAGES_MAX_POLL_MS)).await;
    }
}

async fn bootstrap(tokens: &Arc<Tokens>, config: &Config, dir: &Path) -> Result<Bootstrap, ApiError> {
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
