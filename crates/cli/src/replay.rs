//! `grantlog replay`: a grant's budget or timeline as it was, folded from
//! the log with the same fold and view functions the server uses.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, ValueEnum};
use events::{GrantId, Money};
use projections::{BudgetView, TimelineView};
use store::EventStore;

use crate::output;

/// Which view.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum View {
    /// Budget lines and totals.
    Budget,
    /// Milestones, periods, amendments.
    Timeline,
}

/// Flags of `replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The data directory.
    #[arg(long, env = "GRANTLOG_DATA_DIR", default_value = "./grantlog-data")]
    pub data_dir: PathBuf,
    /// The shared log in PostgreSQL (`postgres://user@host:port/database`);
    /// without it, the data directory's `events.sqlite`.
    #[arg(long, env = "GRANTLOG_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// The grant.
    #[arg(long)]
    pub grant: String,
    /// The view.
    #[arg(long, value_enum)]
    pub view: View,
    /// Count facts effective on or before this business date (YYYY-MM-DD).
    #[arg(long, value_parser = business_date)]
    pub as_of: Option<NaiveDate>,
    /// Count only what had been recorded by this instant (RFC 3339).
    #[arg(long)]
    pub known_at: Option<DateTime<Utc>>,
    /// The day statuses and elapsed time are relative to (default: as_of, else today).
    #[arg(long, value_parser = business_date)]
    pub today: Option<NaiveDate>,
    /// Print the view as JSON (the API's shape) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// A business date exactly as the API reads one (YYYY-MM-DD, 1900-01-01 to 2199-12-31).
fn business_date(text: &str) -> Result<NaiveDate, String> {
    events::bounds::parse_date(text).map_err(|e| e.to_string())
}

/// Opens an existing log: PostgreSQL at `database_url`, else the data
/// directory's (never created here).
pub async fn open_log(data_dir: &std::path::Path, database_url: Option<&str>) -> anyhow::Result<Arc<dyn EventStore>> {
    Ok(api::backend::open_log(data_dir, database_url, false).await?)
}

/// Runs `replay`.
pub async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let grant = GrantId::parse(args.grant.clone()).map_err(|e| anyhow::anyhow!("--grant: {e}"))?;
    let store = open_log(&args.data_dir, args.database_url.as_deref()).await?;
    let ledger = projections::as_known_at(store.as_ref(), &grant, args.known_at).await?;
    let today = args.today.or(args.as_of).unwrap_or_else(|| Utc::now().date_naive());
    let text = match args.view {
        View::Budget => {
            let view = projections::budget(&ledger, args.as_of, today).map_err(|e| anyhow::anyhow!("{grant}: {e}"))?;
            if args.json { serde_json::to_string_pretty(&view)? } else { budget_table(&view) }
        }
        View::Timeline => {
            let view =
                projections::timeline(&ledger, args.as_of, today).map_err(|e| anyhow::anyhow!("{grant}: {e}"))?;
            if args.json { serde_json::to_string_pretty(&view)? } else { timeline_table(&view) }
        }
    };
    store.close().await;
    output::line(&text);
    Ok(())
}

fn amount(m: &Money) -> String {
    // Thousands separators for reading; the JSON keeps the exact string.
    let text = m.amount().to_string();
    let (sign, digits) = text.strip_prefix('-').map_or(("", text.as_str()), |d| ("-", d));
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    if frac.is_empty() { format!("{sign}{grouped}") } else { format!("{sign}{grouped}.{frac}") }
}

/// Left-aligns the first column, right-aligns the others.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| if i == 0 { format!("{c:<w$}") } else { format!("{c:>w$}") })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = vec![line(header.iter().map(|h| (*h).to_owned()).collect())];
    out.push(widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "));
    out.extend(rows.iter().map(|r| line(r.clone())));
    out.join("\n")
}

fn budget_table(v: &BudgetView) -> String {
    let as_of = v.as_of.map_or_else(|| "everything recorded".to_owned(), |d| d.to_string());
    let mut out = vec![
        format!("grant {} ({}), as of {as_of}, log position {}", v.grant, v.currency, v.position),
        format!(
            "award {}  allocated {}  unallocated {}",
            amount(&v.award),
            amount(&v.allocated),
            amount(&v.unallocated)
        ),
        format!(
            "spent {} (indirect {} at {} on a base of {})  committed {}  available {}",
            amount(&v.spent),
            amount(&v.indirect.accrued),
            v.indirect.rate,
            amount(&v.indirect.base),
            amount(&v.committed),
            amount(&v.available)
        ),
        format!("spent {}% at {}% of time elapsed: burn index {}", v.spent_pct, v.time_elapsed_pct, v.burn_index),
        String::new(),
    ];
    let rows: Vec<Vec<String>> = v
        .lines
        .iter()
        .map(|l| {
            vec![
                l.line.to_string(),
                amount(&l.original),
                amount(&l.reallocated_in),
                amount(&l.reallocated_out),
                amount(&l.current),
                amount(&l.committed),
                amount(&l.spent),
                amount(&l.available),
                format!("{}%", l.spent_pct),
                if l.overspent { "OVERSPENT".into() } else { String::new() },
            ]
        })
        .collect();
    out.push(table(
        &["line", "original", "in", "out", "current", "committed", "spent", "available", "spent %", ""],
        &rows,
    ));
    out.join("\n")
}

fn timeline_table(v: &TimelineView) -> String {
    let as_of = v.as_of.map_or_else(|| "everything recorded".to_owned(), |d| d.to_string());
    let mut out = vec![
        format!(
            "grant {}, {} to {} (effective end {}), as of {as_of}, today {}",
            v.grant, v.start, v.end, v.effective_end, v.today
        ),
        String::new(),
    ];
    let rows: Vec<Vec<String>> = v
        .milestones
        .iter()
        .map(|m| {
            vec![
                m.id.to_string(),
                m.workstream.to_string(),
                m.baseline_due.to_string(),
                m.current_due.to_string(),
                m.achieved_on.map(|d| d.to_string()).unwrap_or_default(),
                serde_json::to_value(m.status).ok().and_then(|s| s.as_str().map(str::to_owned)).unwrap_or_default(),
                m.slip_days.to_string(),
                m.reschedules.to_string(),
                if m.beyond_end { "beyond end".into() } else { String::new() },
            ]
        })
        .collect();
    out.push(table(&["milestone", "ws", "baseline", "due", "achieved", "status", "slip", "resched", ""], &rows));
    out.join("\n")
}
