//! `grantlog token create|list|revoke`: tokens of a data directory, offline.
//!
//! It opens `api.sqlite` directly (WAL, with a busy timeout), so it is safe
//! beside a running server: a server checks the file for changes made by
//! another process every second (`api::auth::TOKENS_RELOAD_EVERY`) and
//! reloads its tokens, so a token revoked here is refused by the server
//! within about a second, and one created here is accepted as soon.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use api::apidb::{ApiData, Inserted, Revoked, SqliteApiData};
use api::apidb_pg::PostgresApiData;
use api::auth::{self, Principal, Role};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use events::{ActorId, ProgrammeId};

use crate::output;

/// `grantlog token ...`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Where the log, the views and the tokens live.
    #[arg(long, env = "GRANTLOG_DATA_DIR", default_value = "./grantlog-data", global = true)]
    pub data_dir: PathBuf,
    /// The tokens in PostgreSQL (`postgres://...`), shared by the servers
    /// of that database; without it, the data directory's `api.sqlite`.
    #[arg(long, env = "GRANTLOG_DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token and print its secret (shown once).
    Create {
        /// Its name (the actor on its events); unique without regard to case.
        #[arg(long)]
        name: String,
        /// admin, manager, auditor or viewer.
        #[arg(long)]
        role: String,
        /// A programme a manager or viewer may see (repeat for more).
        #[arg(long = "programme")]
        programmes: Vec<String>,
        /// When it stops being accepted (RFC 3339, in the future).
        #[arg(long)]
        expires_at: Option<DateTime<Utc>>,
    },
    /// List the tokens, one JSON object a line (never a secret).
    List,
    /// Revoke a token by name (any case); its row is kept.
    Revoke {
        /// The token's name.
        #[arg(long)]
        name: String,
        /// Who revokes it, recorded as `revoked_by`.
        #[arg(long, default_value = "cli")]
        by: String,
    },
}

/// Runs a token command; `false` when the token to revoke does not exist.
pub async fn run(args: TokenArgs) -> anyhow::Result<bool> {
    let db: std::sync::Arc<dyn ApiData> = match args.database_url.as_deref() {
        Some(url) => std::sync::Arc::new(
            PostgresApiData::connect(url)
                .await
                .map_err(|e| anyhow::anyhow!("{}: {e:?}", store_postgres::redacted_url(url)))?,
        ),
        None => {
            let path = args.data_dir.join("api.sqlite");
            let creating = matches!(args.command, TokenCommand::Create { .. });
            if creating {
                api::files::prepare_data_dir(&args.data_dir).with_context(|| args.data_dir.display().to_string())?;
            } else if !path.is_file() {
                bail!("{} does not exist: no tokens here (is --data-dir right?)", path.display());
            }
            std::sync::Arc::new(SqliteApiData::open(&path).map_err(|e| anyhow::anyhow!("{}: {e:?}", path.display()))?)
        }
    };
    match args.command {
        TokenCommand::Create { name, role, programmes, expires_at } => {
            create(db.as_ref(), name, &role, programmes, expires_at).await?;
            Ok(true)
        }
        TokenCommand::List => {
            for row in db.tokens().await.map_err(|e| anyhow::anyhow!("{e:?}"))? {
                let info = auth::info(&row).map_err(|e| anyhow::anyhow!("{e:?}"))?;
                output::line(&serde_json::to_string(&info)?);
            }
            Ok(true)
        }
        TokenCommand::Revoke { name, by } => {
            match db.revoke_token(name.clone(), by).await.map_err(|e| anyhow::anyhow!("{e:?}"))? {
                Revoked::Now => {
                    output::line(&format!("revoked {name}"));
                    Ok(true)
                }
                Revoked::Already => {
                    output::line(&format!("{name} was revoked already"));
                    Ok(true)
                }
                Revoked::Unknown => {
                    output::error(&format!("no token named {name}"));
                    Ok(false)
                }
            }
        }
    }
}

async fn create(
    db: &dyn ApiData,
    name: String,
    role: &str,
    programmes: Vec<String>,
    expires_at: Option<DateTime<Utc>>,
) -> anyhow::Result<()> {
    let Some(role) = Role::parse(role) else { bail!("--role {role:?}: one of admin, manager, auditor, viewer") };
    if let Some(at) = expires_at
        && at <= Utc::now()
    {
        bail!("--expires-at {}: not in the future", at.to_rfc3339());
    }
    let name = ActorId::parse(name).map_err(|e| anyhow::anyhow!("--name: {e}"))?;
    let programmes = programmes
        .into_iter()
        .map(ProgrammeId::parse)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("--programme: {e}"))?;
    let principal = Principal { name: name.clone(), role, programmes };
    let (secret, row) = auth::new_row(&principal, "cli", None, expires_at).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    match db.insert_token(row).await.map_err(|e| anyhow::anyhow!("{e:?}"))? {
        Inserted::Yes => {
            output::line(&secret);
            Ok(())
        }
        Inserted::NameTaken => bail!("a token named {name} exists already (names are compared without regard to case)"),
    }
}
