//! `grantlog-scale build`: a data directory whose log holds about N events
//! over G grants, every event decided and recorded by the domain's own
//! command handler (so the projector, `grantlog verify` and the server take
//! it as they take any log).
//!
//! The store takes one command per append (an append carries one command
//! id), so there is no batch of many commands to give it: the commands go
//! through [`Handler::execute`] from many concurrent tasks, and the store's
//! writer group-commits them. Each task builds one grant at a time with a
//! handler of its own, dropped when the grant is done, so the build's memory
//! does not grow with the log.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use chrono::{Days, NaiveDate};
use domain::grant::{AwardGrant, GrantCommand};
use domain::handler::{Handler, Issued};
use domain::programme::ProgrammeCommand;
use events::{
    ActorId, CategoryCode, Currency, ExpenditureId, GrantId, LineId, Money, ProgrammeId, RuleSetId, WorkstreamCode,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use store::EventStore;
use store_sqlite::SqliteStore;

use crate::note;

/// The file in the data directory that says what was built.
pub const MANIFEST: &str = "scale.json";
/// The programme of every built grant.
pub const PROGRAMME: &str = "scale";
/// The one workstream and line of every grant.
const WORKSTREAM: &str = "WS1";
const CATEGORY: &str = "PER";
/// The first `incurred_on`, and how many days the expenditures spread over.
const INCURRED_FIRST: (i32, u32, u32) = (2022, 1, 1);
const INCURRED_DAYS: u64 = 4 * 365;

/// What a build made, kept in the data directory for `measure` and tests.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// The admin token `measure` starts the server with (created on its
    /// first start).
    pub admin_token: String,
    /// Events in the log after the build.
    pub events: u64,
    /// The line every expenditure is on.
    pub line: String,
    /// The grants, in order.
    pub grants: Vec<BuiltGrant>,
    /// Seconds the build took, and its rate.
    pub seconds: f64,
    /// Events per second of the build.
    pub events_per_second: f64,
}

/// One built grant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuiltGrant {
    /// Its id.
    pub id: String,
    /// Expenditures recorded on its line.
    pub expenditures: u64,
    /// Their sum in EUR (what the line's `spent` must show).
    pub spent: Decimal,
}

impl Manifest {
    /// Reads the manifest of a built data directory.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!("reading {} (was the directory made by `grantlog-scale build`?)", path.display())
        })?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// How to build.
#[derive(Debug, Clone)]
pub struct BuildArgs {
    /// The data directory (must not hold a log yet).
    pub dir: PathBuf,
    /// About how many events.
    pub events: u64,
    /// Over how many grants.
    pub grants: usize,
    /// Concurrent tasks issuing commands.
    pub tasks: usize,
}

fn id<T, E: std::fmt::Display>(parse: impl FnOnce(String) -> Result<T, E>, text: impl Into<String>) -> Result<T> {
    let text = text.into();
    parse(text.clone()).map_err(|e| anyhow!("{text}: {e}"))
}

/// Expenditure `i`'s amount in cents: 1.00 to 900.99 EUR, varied so that a
/// wrong sum shows.
fn cents(grant: usize, i: u64) -> i64 {
    100 + ((i.wrapping_mul(7919) + grant as u64 * 104_729) % 90_000) as i64
}

/// Builds the data directory; returns what it made.
pub async fn build(args: &BuildArgs) -> Result<Manifest> {
    if args.grants == 0 {
        bail!("--grants must be at least 1");
    }
    let setup_events = 3_u64;
    let per_grant = args.events.saturating_sub(1) / args.grants as u64;
    if per_grant <= setup_events {
        bail!("--events {} over {} grants leaves no room for expenditures: give more events", args.events, args.grants);
    }
    std::fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
    let log = args.dir.join("events.sqlite");
    if log.exists() {
        bail!("{} exists already: build into a new directory", log.display());
    }
    let store = Arc::new(SqliteStore::open(&log).await.with_context(|| format!("opening {}", log.display()))?);
    let outcome = build_into(args, Arc::clone(&store) as Arc<dyn EventStore>, per_grant - setup_events).await;
    store.close().await;
    let manifest = outcome?;
    let text = serde_json::to_string_pretty(&manifest)?;
    std::fs::write(args.dir.join(MANIFEST), text).context("writing the manifest")?;
    Ok(manifest)
}

async fn build_into(args: &BuildArgs, store: Arc<dyn EventStore>, expenditures: u64) -> Result<Manifest> {
    let started = Instant::now();
    let today = chrono::Utc::now().date_naive();
    let first_day =
        NaiveDate::from_ymd_opt(INCURRED_FIRST.0, INCURRED_FIRST.1, INCURRED_FIRST.2).ok_or_else(|| anyhow!("date"))?;
    let programme = id(ProgrammeId::parse, PROGRAMME)?;
    let admin = id(ActorId::parse, "admin")?;
    let create = Issued::new(
        ProgrammeCommand::Create { programme_id: programme.clone(), name: "Scale benchmark".into() },
        admin,
        first_day,
    )
    .effective(first_day);
    Handler::new(Arc::clone(&store))
        .execute_programme(&programme, &create)
        .await
        .map_err(|e| anyhow!("creating programme {PROGRAMME}: {e}"))?;
    let done = Arc::new(AtomicU64::new(1));
    let next = Arc::new(AtomicUsize::new(0));
    let context = Arc::new(Plan { programme, today, first_day, expenditures });
    let total = 1 + args.grants as u64 * (expenditures + 3);
    let progress = {
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            tick.tick().await;
            loop {
                tick.tick().await;
                let n = done.load(Ordering::Relaxed);
                let seconds = started.elapsed().as_secs_f64();
                note(&format!(
                    "grantlog-scale build: {n} of {total} events ({:.1}%) in {seconds:.0} s, {:.0} events/s",
                    100.0 * n as f64 / total as f64,
                    n as f64 / seconds
                ));
            }
        })
    };
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.tasks.max(1) {
        let (store, done, next, plan, grants) =
            (Arc::clone(&store), Arc::clone(&done), Arc::clone(&next), Arc::clone(&context), args.grants);
        tasks.spawn(async move {
            let mut built = Vec::new();
            loop {
                let g = next.fetch_add(1, Ordering::Relaxed);
                if g >= grants {
                    return Ok::<_, anyhow::Error>(built);
                }
                built.push((g, plan.grant(Arc::clone(&store), g, &done).await?));
            }
        });
    }
    let mut grants: Vec<(usize, BuiltGrant)> = Vec::with_capacity(args.grants);
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(built)) => grants.extend(built),
            Ok(Err(e)) => {
                failure.get_or_insert(e);
                tasks.abort_all();
            }
            Err(e) if e.is_cancelled() => {}
            Err(e) => {
                failure.get_or_insert(anyhow!("a build task failed: {e}"));
                tasks.abort_all();
            }
        }
    }
    progress.abort();
    if let Some(e) = failure {
        return Err(e);
    }
    grants.sort_by_key(|(g, _)| *g);
    let head = store.head().await?.map_or(0, |h| h.position.0);
    let seconds = started.elapsed().as_secs_f64();
    let events_per_second = head as f64 / seconds;
    note(&format!("grantlog-scale build: {head} events in {seconds:.1} s = {events_per_second:.0} events/s"));
    Ok(Manifest {
        // Two v7 ids: 148 random bits (the crate has no v4 feature here).
        admin_token: format!("{}{}", uuid::Uuid::now_v7().simple(), uuid::Uuid::now_v7().simple()),
        events: head,
        line: format!("{WORKSTREAM}-{CATEGORY}"),
        grants: grants.into_iter().map(|(_, b)| b).collect(),
        seconds,
        events_per_second,
    })
}

/// What every grant gets.
#[derive(Debug)]
struct Plan {
    programme: ProgrammeId,
    today: NaiveDate,
    first_day: NaiveDate,
    expenditures: u64,
}

impl Plan {
    /// Awards grant `g`, defines its workstream, opens its line, records its
    /// expenditures; counts the events recorded into `done`.
    async fn grant(&self, store: Arc<dyn EventStore>, g: usize, done: &AtomicU64) -> Result<BuiltGrant> {
        let handler = Handler::new(store);
        let grant = id(GrantId::parse, format!("scale-g{g:05}"))?;
        let finance = id(ActorId::parse, "fo-scale")?;
        let manager = id(ActorId::parse, "pm-scale")?;
        let eur = |text: &str| Money::parse(text, Currency::EUR).map_err(|e| anyhow!("{text}: {e}"));
        let workstream = id(WorkstreamCode::parse, WORKSTREAM)?;
        let category = id(CategoryCode::parse, CATEGORY)?;
        let line = id(LineId::parse, format!("{WORKSTREAM}-{CATEGORY}"))?;
        let award = AwardGrant {
            grant_id: grant.clone(),
            programme_id: self.programme.clone(),
            funder: "FNR".into(),
            title: format!("Scale benchmark grant {g}"),
            acronym: format!("SCALE{g}"),
            beneficiary: "org-scale".into(),
            award: eur("1000000000.00")?,
            start: self.first_day,
            end: NaiveDate::from_ymd_opt(2030, 12, 31).ok_or_else(|| anyhow!("date"))?,
            rule_set: id(RuleSetId::parse, "FNR-2022")?,
            indirect_rate: None,
        };
        let set_up = [
            (finance, GrantCommand::Award(award)),
            (
                manager.clone(),
                GrantCommand::DefineWorkstream { code: workstream.clone(), title: "Scale".into(), lead: None },
            ),
            (manager.clone(), GrantCommand::OpenBudgetLine { workstream, category, amount: eur("800000000.00")? }),
        ];
        for (actor, command) in set_up {
            let name = command.name();
            let issued = Issued::new(command, actor, self.today).effective(self.first_day);
            let result = handler.execute(&grant, &issued).await.map_err(|e| anyhow!("grant {grant}: {name}: {e}"))?;
            done.fetch_add(result.events.len() as u64, Ordering::Relaxed);
        }
        let mut spent = Decimal::ZERO;
        for i in 0..self.expenditures {
            let amount = Decimal::new(cents(g, i), 2);
            spent += amount;
            let incurred_on = self
                .first_day
                .checked_add_days(Days::new(i % INCURRED_DAYS))
                .ok_or_else(|| anyhow!("incurred_on out of range"))?;
            let command = GrantCommand::RecordExpenditure {
                expenditure_id: id(ExpenditureId::parse, format!("E{i}"))?,
                line: line.clone(),
                amount: Money::new(amount, Currency::EUR).map_err(|e| anyhow!("{amount}: {e}"))?,
                conversion: None,
                incurred_on,
                supplier: "sup-scale".into(),
                invoice: format!("INV-{g}-{i}"),
                commitment: None,
                correction_of: None,
            };
            let issued = Issued::new(command, manager.clone(), self.today);
            let result =
                handler.execute(&grant, &issued).await.map_err(|e| anyhow!("grant {grant}: expenditure E{i}: {e}"))?;
            done.fetch_add(result.events.len() as u64, Ordering::Relaxed);
        }
        Ok(BuiltGrant { id: grant.to_string(), expenditures: self.expenditures, spent })
    }
}
