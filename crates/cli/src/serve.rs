//! `grantlog serve` and `grantlog demo`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use api::{AppState, Bootstrap, Config};
use clap::{Args, ValueEnum};
use tracing_subscriber::EnvFilter;

use crate::output;

/// Log line format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable.
    Text,
    /// One JSON object per line.
    Json,
}

/// Flags of `serve` and `demo`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "GRANTLOG_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Where the log, the views and the tokens live (with
    /// `--database-url`, only this server's views).
    #[arg(long, env = "GRANTLOG_DATA_DIR", default_value = "./grantlog-data")]
    pub data_dir: PathBuf,
    /// Keep the log and the tokens in PostgreSQL
    /// (`postgres://user@host:port/database`), shared by every server given
    /// the same URL; without it, the data directory's SQLite files.
    #[arg(long, env = "GRANTLOG_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Load the NCTCR demo scenario first (into an empty log only).
    #[arg(long, env = "GRANTLOG_DEMO")]
    pub demo: bool,
    /// Requests per second per token (bursts up to the same number); 0 disables.
    #[arg(long, env = "GRANTLOG_RATE_LIMIT_PER_SECOND", default_value_t = 1_000)]
    pub rate_limit_per_second: u32,
    /// Largest request body.
    #[arg(long, env = "GRANTLOG_REQUEST_BODY_BYTES_MAX", default_value_t = 64 * 1024)]
    pub request_body_bytes_max: usize,
    /// Longest time to produce a response.
    #[arg(long, env = "GRANTLOG_REQUEST_TIMEOUT_MS", default_value_t = 10_000)]
    pub request_timeout_ms: u64,
    /// The admin token to create on the first start (else a random one is
    /// written to <data-dir>/admin-token).
    #[arg(long, env = "GRANTLOG_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Most bytes of serialised views the view cache keeps.
    #[arg(long, env = "GRANTLOG_VIEW_CACHE_BYTES_MAX", default_value_t = api::routes::views::VIEW_CACHE_BYTES_MAX)]
    pub view_cache_bytes_max: usize,
    /// Most facts of grant ledgers kept in memory (a fact is a budget line,
    /// an expenditure, a commitment, a milestone, ...: about 500 bytes);
    /// other ledgers are read from views.sqlite when needed.
    #[arg(long, env = "GRANTLOG_LEDGER_CACHE_FACTS_MAX", default_value_t = projections::LEDGER_CACHE_FACTS_MAX)]
    pub ledger_cache_facts_max: usize,
    /// Most events of grant state the command handler keeps in memory;
    /// grants used least recently are read again from the log when next
    /// used.
    #[arg(long, env = "GRANTLOG_GRANT_CACHE_EVENTS_MAX", default_value_t = domain::handler::GRANT_CACHE_EVENTS_MAX)]
    pub grant_cache_events_max: usize,
    /// Longest time from a request head's first byte to its end; past it
    /// the connection is closed.
    #[arg(long, env = "GRANTLOG_HEADER_READ_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_read_timeout_ms: u64,
    /// Longest time a keep-alive connection may sit idle (no request in
    /// flight, no byte received) before it is closed.
    #[arg(long, env = "GRANTLOG_IDLE_TIMEOUT_MS", default_value_t = 60_000)]
    pub idle_timeout_ms: u64,
    /// Most connections open at once; further clients wait to be accepted
    /// until one closes.
    #[arg(long, env = "GRANTLOG_CONNECTIONS_MAX", default_value_t = 512)]
    pub connections_max: usize,
    /// Log format (filter with RUST_LOG).
    #[arg(long, env = "GRANTLOG_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Mark the dashboard's session cookie `Secure`: set it when users reach
    /// the server over HTTPS through a proxy (a request saying
    /// `X-Forwarded-Proto: https` gets it anyway).
    #[arg(long, env = "GRANTLOG_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// Serve the dashboard's files from this directory instead of the ones
    /// built into the binary (for working on the page; reloaded per request).
    #[arg(long, env = "GRANTLOG_DASHBOARD_DIR")]
    pub dashboard_dir: Option<PathBuf>,
    /// Answer with gzip when the client accepts it (live streams and tiny
    /// answers are never compressed); `--compression false` turns it off.
    #[arg(long, env = "GRANTLOG_COMPRESSION", default_value_t = true, action = clap::ArgAction::Set)]
    pub compression: bool,
    /// An origin whose pages may call the API from a browser (CORS), as the
    /// browser sends it: `https://dash.example.org` or `http://localhost:5173`,
    /// or `*` for any. Repeat the flag (or separate with commas) for more.
    /// None by default: no cross-origin call is allowed.
    #[arg(long = "cors-allow-origin", env = "GRANTLOG_CORS_ALLOW_ORIGINS", value_delimiter = ',', value_parser = cors_origin)]
    pub cors_allow_origins: Vec<String>,
    /// Fault injection for tests of a full disk: a file holding the
    /// read-model file's page cap (`max_page_count`), re-read while serving.
    #[arg(long, env = "GRANTLOG_VIEWS_PAGES_MAX_FILE", hide = true)]
    pub views_pages_max_file: Option<PathBuf>,
}

fn cors_origin(origin: &str) -> Result<String, String> {
    api::cors::parse_origin(origin.trim()).map(|_| origin.trim().to_owned())
}

fn init_logs(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only for a person at a terminal: a file, a pipe or a journal
    // gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Runs the server until SIGTERM or SIGINT, then finishes in-flight
/// requests, ends live streams and closes the log.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logs(args.log_format);
    let mut config = Config::new(&args.data_dir);
    config.rate_limit_per_second = args.rate_limit_per_second;
    config.request_body_bytes_max = args.request_body_bytes_max;
    config.request_timeout_ms = args.request_timeout_ms;
    config.admin_token = args.admin_token.clone();
    config.view_cache_bytes_max = args.view_cache_bytes_max;
    config.ledger_cache_facts_max = args.ledger_cache_facts_max;
    config.grant_cache_events_max = args.grant_cache_events_max;
    config.views_pages_max_file = args.views_pages_max_file.clone();
    config.database_url = args.database_url.clone();
    config.secure_cookies = args.secure_cookies;
    config.dashboard_dir = args.dashboard_dir.clone();
    config.compression = args.compression;
    config.cors_allow_origins = args.cors_allow_origins.clone();
    let (state, bootstrap) =
        AppState::open(config).await.with_context(|| format!("opening {}", args.data_dir.display()))?;
    let demo = if args.demo { crate::serve::demo(&state).await? } else { None };
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let base = format!("http://{addr}");
    match &bootstrap {
        Bootstrap::Generated { token, path } => {
            output::line(&format!("admin token (also in {}): {token}", path.display()));
        }
        Bootstrap::Configured => tracing::info!("admin token taken from GRANTLOG_ADMIN_TOKEN"),
        Bootstrap::Existing => {}
    }
    if let Some(tokens) = demo {
        let head = state.store().head().await?.map_or(0, |h| h.position.0);
        print_tour(&base, &tokens, &bootstrap, head);
    }
    // The stop signals are taken over before the server says it listens: a
    // SIGTERM sent as soon as that line appears (by a supervisor, or a
    // test) must stop it gracefully, not kill it with the default action.
    let stop = Stop::listen()?;
    tracing::info!(%addr, data_dir = %args.data_dir.display(), "serving");
    output::line(&format!("grantlog listening on {base}"));
    output::line(&format!("dashboard: {base}/ (sign in with a token)"));
    let app = api::app(state.clone());
    let stopping = state.clone();
    let limits = crate::http::Limits {
        header_read_timeout: Duration::from_millis(args.header_read_timeout_ms),
        idle_timeout: Duration::from_millis(args.idle_timeout_ms),
        connections_max: args.connections_max,
    };
    crate::http::serve(listener, app, limits, async move {
        stop.wait().await;
        tracing::info!("stopping: finishing requests in flight");
        stopping.begin_shutdown();
    })
    .await
    .context("serving")?;
    state.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// The signals that stop the server (SIGTERM, SIGINT), registered.
struct Stop {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl Stop {
    /// Takes the stop signals over from their default action (ending the
    /// process) from now on.
    fn listen() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
            let interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
            Ok(Self { term, interrupt })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Resolves when one of them arrives.
    async fn wait(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {},
            _ = self.interrupt.recv() => {},
        }
        #[cfg(not(unix))]
        {
            let _ = &mut self;
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Tokens the demo created.
#[derive(Debug)]
pub struct DemoTokens {
    manager: Option<String>,
}

/// Loads the NCTCR scenario through the command handler the API uses, and
/// creates a manager token for the scenario's programme manager.
pub async fn demo(state: &AppState) -> anyhow::Result<Option<DemoTokens>> {
    if state.store().head().await?.is_some() {
        tracing::info!("the log is not empty: the demo scenario is not loaded again");
        return Ok(Some(DemoTokens { manager: None }));
    }
    tracing::info!("loading the NCTCR scenario");
    domain::scenario::nctcr(state.handler()).await.map_err(|e| anyhow::anyhow!("loading the scenario: {e}"))?;
    let manager = api::auth::Principal {
        name: events::ActorId::parse(domain::scenario::MANAGER)?,
        role: api::auth::Role::Manager,
        programmes: [events::ProgrammeId::parse(domain::scenario::PROGRAMME)?].into_iter().collect(),
    };
    let manager = state.tokens().create(manager, "demo", None).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Some(DemoTokens { manager }))
}

/// The lines `demo` prints to try the API. They must work pasted into any
/// shell: the token is written out (the server's own environment is not the
/// user's), and the write's suggested ids and position follow the log's
/// head, so the lines also work on a demo started again on the same data.
fn print_tour(base: &str, tokens: &DemoTokens, bootstrap: &Bootstrap, head: u64) {
    let grant = domain::scenario::GRANT;
    if let Some(m) = &tokens.manager {
        output::line(&format!("manager token ({}): {m}", domain::scenario::MANAGER));
    }
    let token = match (&tokens.manager, bootstrap) {
        (Some(manager), _) => manager.clone(),
        (None, Bootstrap::Generated { token, .. }) => token.clone(),
        (None, Bootstrap::Configured) => "'<the value of GRANTLOG_ADMIN_TOKEN>'".into(),
        (None, Bootstrap::Existing) => "'<the manager token printed when the demo first ran>'".into(),
    };
    let next = head + 1;
    let auth = "-H \"Authorization: Bearer $T\"";
    output::line("try, in any shell:");
    output::line(&format!("  T={token}"));
    output::line(&format!("  G={base}/api/v1/grants/{grant}"));
    output::line(&format!("  curl -s {auth} \"$G/budget?as_of=2022-09-30\""));
    output::line(&format!("  curl -s {auth} \"$G/timeline\""));
    output::line(&format!(
        "  curl -s {auth} -H 'Content-Type: application/json' -H 'Idempotency-Key: demo-{next}' \
         -X POST \"$G/expenditures\" -d '{{\"id\": \"E-DEMO-{next}\", \"line\": \"FP1-CON\", \
         \"amount\": {{\"amount\": \"120.00\", \"currency\": \"EUR\"}}, \"incurred_on\": \"2022-12-01\", \
         \"supplier\": \"SUP-LAB\", \"invoice\": \"INV-DEMO-{next}\"}}'"
    ));
    output::line(&format!("  # that write answers \"position\": {next}; this read waits until the budget includes it"));
    output::line(&format!("  curl -s {auth} \"$G/budget?min_position={next}\""));
    output::line(&format!("  curl -s {auth} \"$G/history?order=desc&limit=5\""));
    output::line(&format!("  curl -sN {auth} \"$G/events/stream\""));
}
