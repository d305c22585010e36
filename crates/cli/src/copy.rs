//! `grantlog copy --from SRC --to DST`: the whole log moved to another
//! file or backend exactly as recorded (every position, version, time, text
//! and hash), through [`EventStore::import`], then verified where it landed.

use anyhow::Context as _;
use clap::Args;
use store::import::whole_commands;
use store::{EventStore, Head, Position, READ_EVENTS_MAX, VerifyOutcome};

use crate::audit::{bar, verdict, verify_store};
use crate::location::{Location, create_log_at, open_log_at};
use crate::output;

/// Flags of `copy`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The log to copy: a data directory or a postgres:// URL.
    #[arg(long, env = "GRANTLOG_COPY_FROM", hide_env_values = true)]
    pub from: String,
    /// Where to copy it: a data directory (created if missing) or a
    /// postgres:// URL. Must hold no events.
    #[arg(long, env = "GRANTLOG_COPY_TO", hide_env_values = true)]
    pub to: String,
}

/// Runs `copy`; `Ok(false)` when the copy does not verify or its head is
/// not the source's.
pub async fn run(args: CopyArgs) -> anyhow::Result<bool> {
    let (from, to) = (Location::parse(&args.from), Location::parse(&args.to));
    anyhow::ensure!(from != to, "--from and --to are the same log ({from})");
    let source = open_log_at(&from).await?;
    let target = create_log_at(&to).await?;
    let outcome = copy(source.as_ref(), target.as_ref(), &from, &to).await;
    source.close().await;
    target.close().await;
    let (source_head, verified) = outcome?;
    let (ok, line) = verdict(&verified);
    output::line(&line);
    if !ok {
        return Ok(false);
    }
    let copied = match verified {
        VerifyOutcome::Intact { head, .. } => head,
        VerifyOutcome::Broken { .. } => None,
    };
    if copied != source_head {
        let show = |h: Option<Head>| h.map_or_else(|| "-".to_owned(), |h| h.to_string());
        output::line(&format!("bad: the copy's head {} is not the source's head {}", show(copied), show(source_head)));
        return Ok(false);
    }
    Ok(true)
}

/// Copies every event up to the source's head as it is at the start, in
/// pages, never splitting one command's events between two imports;
/// verifies the target. Returns the source's head and the verdict.
async fn copy(
    source: &dyn EventStore,
    target: &dyn EventStore,
    from: &Location,
    to: &Location,
) -> anyhow::Result<(Option<Head>, VerifyOutcome)> {
    if let Some(head) = target.head().await? {
        anyhow::bail!("{to} already holds a log (head {head}): copy writes only into an empty log");
    }
    let source_head = source.head().await.with_context(|| format!("reading {from}"))?;
    let total = source_head.map_or(0, |h| h.position.0);
    let progress = bar(total);
    progress.set_message("copying");
    let mut after = Position::START;
    while after.0 < total {
        let mut page = source.read_raw(after, READ_EVENTS_MAX).await.with_context(|| format!("reading {from}"))?;
        page.retain(|e| e.position.0 <= total);
        let Some(last) = page.last() else {
            anyhow::bail!("{from} ended at position {after}, before its head {total}");
        };
        // A page that stops before the head may end inside a command's
        // events; they go in the next import, whole.
        if last.position.0 < total {
            page.truncate(whole_commands(&page));
        }
        let next = page.last().map_or(after, |e| e.position);
        target.import(page).await.with_context(|| format!("importing into {to} after position {after}"))?;
        after = next;
        progress.set_position(after.0);
    }
    progress.finish_and_clear();
    let verified = verify_store(target, "verifying the copy").await?;
    Ok((source_head, verified))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use serde_json::json;
    use store::{EventMetadata, ExpectedVersion, NewEvent, StreamId};
    use store_sqlite::SqliteStore;

    use super::*;

    async fn log_with(dir: &std::path::Path, n: u64) -> Arc<dyn EventStore> {
        let store: Arc<dyn EventStore> = Arc::new(SqliteStore::open(dir.join("events.sqlite")).await.unwrap());
        for i in 0..n {
            let meta = EventMetadata { command_id: Some(uuid_of(i)), ..EventMetadata::default() };
            let batch = (0..3).map(|k| NewEvent::new("Tested", 1, json!({"n": i, "k": k}), meta.clone())).collect();
            store.append(&StreamId::parse(format!("s-{}", i % 3)).unwrap(), ExpectedVersion::Any, batch).await.unwrap();
        }
        store
    }

    fn uuid_of(i: u64) -> uuid::Uuid {
        uuid::Uuid::from_u64_pair(0x0190_0000_0000_7000, 0x8000_0000_0000_0000 | i)
    }

    #[tokio::test]
    async fn a_copy_has_the_source_head_and_a_non_empty_target_is_refused_untouched() {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        let source = log_with(&a, 40).await;
        let (from, to) = (Location::DataDir(a.clone()), Location::DataDir(b.clone()));
        let target = create_log_at(&to).await.unwrap();
        let (head, verified) = copy(source.as_ref(), target.as_ref(), &from, &to).await.unwrap();
        assert_eq!(verified, VerifyOutcome::Intact { events: 120, head });
        assert_eq!(target.head().await.unwrap(), head);
        let again = copy(source.as_ref(), target.as_ref(), &from, &to).await.unwrap_err().to_string();
        assert!(again.contains("already holds a log"), "{again}");
        assert_eq!(target.head().await.unwrap(), head);
        source.close().await;
        target.close().await;
    }
}
