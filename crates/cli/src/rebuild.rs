//! `grantlog rebuild-views`: the read models (`views.sqlite`) rebuilt from
//! the log offline, with the same projector the server runs: the file is
//! opened and checked (moved aside when it cannot be trusted), caught up
//! with the log, then rebuilt from the log and compared by digest.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use projections::{Opened, Projector};
use store::EventStore;

use crate::output;
use crate::replay::open_log;

/// How often the catch-up progress bar is refreshed.
const PROGRESS_REFRESH_MS: u64 = 100;

/// Flags of `rebuild-views`.
#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// The data directory. Stop the server first; on a running server use
    /// `POST /api/v1/admin/rebuild-views` instead.
    #[arg(long, env = "GRANTLOG_DATA_DIR", default_value = "./grantlog-data")]
    pub data_dir: PathBuf,
    /// The shared log in PostgreSQL (`postgres://user@host:port/database`);
    /// without it, the data directory's `events.sqlite`.
    #[arg(long, env = "GRANTLOG_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

fn bar(total: u64, message: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} events ({per_sec}, {eta})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message);
    bar
}

/// Runs `rebuild-views`; `Ok(false)` when the file was not what the log
/// says (moved aside, or its views differed): it has been rebuilt either way.
pub async fn run(args: RebuildArgs) -> anyhow::Result<bool> {
    let store = open_log(&args.data_dir, args.database_url.as_deref()).await?;
    // A server on this directory writes the same views file: refuse (after
    // a short wait, for one that is stopping) rather than fight over it.
    let locking = args.data_dir.clone();
    let _lock = tokio::task::spawn_blocking(move || api::files::lock_data_dir(&locking)).await?.map_err(|e| {
        anyhow::anyhow!(
            "{}: {e}. Stop the server first, or use `POST /api/v1/admin/rebuild-views` on it",
            e.path().display()
        )
    })?;
    let dyn_store: Arc<dyn EventStore> = store.clone();
    let head = dyn_store.head().await?.map_or(0, |h| h.position.0);
    let path = projections::views_path(&args.data_dir);
    let projector = Projector::start(dyn_store, &path).await.with_context(|| format!("opening {}", path.display()))?;
    let mut sound = true;
    if let Opened::MovedAside { moved_to, reason } = projector.opened() {
        output::line(&format!(
            "{} could not be trusted ({reason}); moved it to {}",
            path.display(),
            moved_to.display()
        ));
        sound = false;
    }
    let catching_up = bar(head, "catching up");
    while projector.wait_for(head, Duration::from_millis(PROGRESS_REFRESH_MS)).await.is_err() {
        if let projections::Status::Failed { position, error } = projector.status() {
            anyhow::bail!("the views stopped at position {position}: {error}");
        }
        catching_up.set_position(projector.position());
    }
    catching_up.finish_and_clear();
    let rebuilding = bar(head, "rebuilding");
    let tick = rebuilding.clone();
    let report = projector.rebuild(Utc::now().date_naive(), move |_, position| tick.set_position(position)).await?;
    rebuilding.finish_and_clear();
    drop(projector);
    store.close().await;
    let verdict = if report.equal() {
        "equal: the views were what the log says"
    } else {
        sound = false;
        "DIFFERENT: the views were not what the log says; the rebuilt ones replace them"
    };
    output::line(&format!(
        "rebuilt {} from {} events up to position {}: live digest {}, rebuilt digest {}: {verdict}",
        path.display(),
        report.events,
        report.position,
        report.live_digest,
        report.rebuilt_digest
    ));
    Ok(sound)
}
