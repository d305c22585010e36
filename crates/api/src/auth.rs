//! Bearer tokens, roles, programme scopes and the per-token rate limit.
//!
//! A token is 32 random bytes (`glt_` + 64 hex digits), stored only as its
//! SHA-256. A presented token is hashed, looked up by its digest and
//! compared in constant time; revoked and expired tokens are refused. Tokens are never logged:
//! the `Authorization` header is marked sensitive and only the name is put
//! on spans.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use events::{ActorId, ProgrammeId};
use rand::RngCore;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::apidb::{ApiDb, Inserted, Revoked, TokenRow};
use crate::error::ApiError;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything.
    Admin,
    /// Writes and reads the grants of its programmes.
    Manager,
    /// Reads everything: views, history, the log, verification, export.
    Auditor,
    /// Reads the views of its programmes.
    Viewer,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Admin, Role::Manager, Role::Auditor, Role::Viewer];

    /// Its wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::Auditor => "auditor",
            Role::Viewer => "viewer",
        }
    }

    /// The role of a wire name.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// The caller, as its token says.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The token's name: the actor recorded on every event it writes.
    pub name: ActorId,
    /// Its role.
    pub role: Role,
    /// The programmes a manager or viewer may see.
    pub programmes: BTreeSet<ProgrammeId>,
}

impl Principal {
    /// Refuses (403) unless the role is one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) { Ok(()) } else { Err(ApiError::Forbidden) }
    }

    /// Whether the caller sees the programme's grants at all.
    pub fn sees(&self, programme: &ProgrammeId) -> bool {
        match self.role {
            Role::Admin | Role::Auditor => true,
            Role::Manager | Role::Viewer => self.programmes.contains(programme),
        }
    }
}

/// A new token's secret and its digest.
pub fn new_secret() -> (String, [u8; 32]) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!("glt_{}", hex::encode(bytes));
    let digest = digest(&secret);
    (secret, digest)
}

/// SHA-256 of a presented token.
pub fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// How often a token's use is written to `last_used_at` at most: uses in
/// between are coalesced, so `last_used_at` is accurate to this.
pub const LAST_USED_EVERY: Duration = Duration::from_secs(60);

/// How often the server looks for tokens created or revoked by another
/// process (`grantlog token` on the same data directory): it checks SQLite's
/// `data_version`, a cheap read, and reloads the table only when it moved.
pub const TOKENS_RELOAD_EVERY: Duration = Duration::from_secs(1);

/// Uses queued for the `last_used_at` writer at most; more are dropped
/// (and written at the next use after [`LAST_USED_EVERY`]).
const LAST_USED_QUEUE_MAX: usize = 1_024;

/// A token as the server holds it.
#[derive(Debug)]
struct Known {
    principal: Arc<Principal>,
    expires_at: Option<DateTime<Utc>>,
    revoked: AtomicBool,
    /// Unix seconds of the last use sent to the writer (0: none yet).
    last_used_sent: AtomicI64,
}

/// The tokens in memory, backed by the API database. Looked up by digest
/// (a SHA-256 of 32 random bytes: a lookup's timing says nothing useful),
/// then compared in constant time.
#[derive(Debug)]
pub struct Tokens {
    db: ApiDb,
    known: RwLock<HashMap<[u8; 32], Arc<Known>>>,
    uses: tokio::sync::mpsc::Sender<(String, String)>,
}

impl Tokens {
    /// Loads every stored token and starts the background tasks: the
    /// `last_used_at` writer and the reload of tokens changed by another
    /// process. Both end when the `Tokens` is dropped.
    pub async fn load(db: ApiDb) -> Result<Arc<Self>, ApiError> {
        // The version first: a change made while reading is then seen.
        let version = db.data_version().await?;
        let known = Self::read(&db).await?;
        let (uses, rx) = tokio::sync::mpsc::channel(LAST_USED_QUEUE_MAX);
        let tokens = Arc::new(Self { db: db.clone(), known: RwLock::new(known), uses });
        tokio::spawn(write_last_used(db, rx));
        tokio::spawn(reload(Arc::downgrade(&tokens), version));
        Ok(tokens)
    }

    async fn read(db: &ApiDb) -> Result<HashMap<[u8; 32], Arc<Known>>, ApiError> {
        let mut known = HashMap::new();
        for row in db.tokens().await? {
            let entry = Known {
                principal: Arc::new(principal_of(&row)?),
                expires_at: parse_time(&row, row.expires_at.as_deref())?,
                revoked: AtomicBool::new(row.revoked_at.is_some()),
                last_used_sent: AtomicI64::new(0),
            };
            known.insert(row.digest, Arc::new(entry));
        }
        Ok(known)
    }

    /// Reads the table again, keeping what is known of recent uses.
    async fn refresh(&self) -> Result<(), ApiError> {
        let fresh = Self::read(&self.db).await?;
        let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
        for (digest, entry) in &fresh {
            if let Some(old) = known.get(digest) {
                entry.last_used_sent.store(old.last_used_sent.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        }
        *known = fresh;
        Ok(())
    }

    /// Whether any token exists (the bootstrap creates the first).
    pub fn is_empty(&self) -> bool {
        self.known.read().unwrap_or_else(|e| e.into_inner()).is_empty()
    }

    /// The principal of a presented secret, if it is known, not revoked and
    /// not expired. Its use is queued for `last_used_at`, never waited for.
    pub fn authenticate(&self, secret: &str) -> Option<Arc<Principal>> {
        let presented = digest(secret);
        let entry = {
            let known = self.known.read().unwrap_or_else(|e| e.into_inner());
            let (stored, entry) = known.get_key_value(&presented)?;
            if !bool::from(stored.ct_eq(&presented)) {
                return None;
            }
            Arc::clone(entry)
        };
        let now = Utc::now();
        if entry.revoked.load(Ordering::Acquire) || entry.expires_at.is_some_and(|at| at <= now) {
            return None;
        }
        let secs = now.timestamp();
        let sent = entry.last_used_sent.load(Ordering::Relaxed);
        let every = i64::try_from(LAST_USED_EVERY.as_secs()).unwrap_or(i64::MAX);
        if secs.saturating_sub(sent) >= every
            && entry.last_used_sent.compare_exchange(sent, secs, Ordering::AcqRel, Ordering::Relaxed).is_ok()
        {
            let _ = self.uses.try_send((entry.principal.name.to_string(), now.to_rfc3339()));
        }
        Some(Arc::clone(&entry.principal))
    }

    /// Creates a token; `Ok(None)` if the name is taken in any case.
    pub async fn create(
        &self,
        principal: Principal,
        created_by: &str,
        secret: Option<String>,
    ) -> Result<Option<String>, ApiError> {
        self.create_expiring(principal, created_by, secret, None).await
    }

    /// Creates a token that stops being accepted at `expires_at`.
    pub async fn create_expiring(
        &self,
        principal: Principal,
        created_by: &str,
        secret: Option<String>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<Option<String>, ApiError> {
        let (secret, row) = new_row(&principal, created_by, secret, expires_at)?;
        if self.db.insert_token(row.clone()).await? == Inserted::NameTaken {
            return Ok(None);
        }
        let entry = Known {
            principal: Arc::new(principal),
            expires_at,
            revoked: AtomicBool::new(false),
            last_used_sent: AtomicI64::new(0),
        };
        self.known.write().unwrap_or_else(|e| e.into_inner()).insert(row.digest, Arc::new(entry));
        Ok(Some(secret))
    }

    /// Revokes a token by name (any case): refused from the next request on.
    pub async fn revoke(&self, name: &str, by: &str) -> Result<Revoked, ApiError> {
        let revoked = self.db.revoke_token(name.to_owned(), by.to_owned()).await?;
        if revoked != Revoked::Unknown {
            let known = self.known.read().unwrap_or_else(|e| e.into_inner());
            for entry in known.values() {
                if entry.principal.name.as_str().eq_ignore_ascii_case(name) {
                    entry.revoked.store(true, Ordering::Release);
                }
            }
        }
        Ok(revoked)
    }

    /// Every stored token (never a secret).
    pub async fn list(&self) -> Result<Vec<TokenRow>, ApiError> {
        self.db.tokens().await
    }
}

/// A new token's row (and its secret: `secret`, else a random one).
pub fn new_row(
    principal: &Principal,
    created_by: &str,
    secret: Option<String>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(String, TokenRow), ApiError> {
    let (secret, digest) = match secret {
        Some(s) => {
            let d = digest(&s);
            (s, d)
        }
        None => new_secret(),
    };
    let programmes = serde_json::to_string(&principal.programmes).map_err(|e| ApiError::Internal(e.to_string()))?;
    let row = TokenRow {
        name: principal.name.to_string(),
        role: principal.role.as_str().into(),
        programmes,
        digest,
        expires_at: expires_at.map(|t| t.to_rfc3339()),
        created_at: Utc::now().to_rfc3339(),
        created_by: created_by.to_owned(),
        last_used_at: None,
        revoked_at: None,
        revoked_by: None,
    };
    Ok((secret, row))
}

/// Writes queued uses, in batches; a failure (a full disk) is logged, never
/// answered: a request never waits for or fails on `last_used_at`.
async fn write_last_used(db: ApiDb, mut rx: tokio::sync::mpsc::Receiver<(String, String)>) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, LAST_USED_QUEUE_MAX).await > 0 {
        let uses = std::mem::take(&mut batch);
        let count = uses.len();
        if let Err(e) = db.record_last_used(uses).await {
            tracing::warn!(error = ?e, count, "could not record tokens' last use");
        }
    }
}

/// Reloads the tokens when another process changed the file.
async fn reload(tokens: std::sync::Weak<Tokens>, mut seen: i64) {
    loop {
        tokio::time::sleep(TOKENS_RELOAD_EVERY).await;
        let Some(tokens) = tokens.upgrade() else { return };
        match tokens.db.data_version().await {
            Ok(version) if version == seen => {}
            Ok(version) => match tokens.refresh().await {
                Ok(()) => {
                    tracing::info!("tokens reloaded: api.sqlite was changed by another process");
                    seen = version;
                }
                Err(e) => tracing::warn!(error = ?e, "could not reload the tokens"),
            },
            Err(e) => tracing::warn!(error = ?e, "could not check api.sqlite for changes"),
        }
    }
}

fn principal_of(row: &TokenRow) -> Result<Principal, ApiError> {
    let bad = |what: &str| ApiError::Internal(format!("stored token {:?}: bad {what}", row.name));
    Ok(Principal {
        name: ActorId::parse(row.name.clone()).map_err(|_| bad("name"))?,
        role: Role::parse(&row.role).ok_or_else(|| bad("role"))?,
        programmes: serde_json::from_str(&row.programmes).map_err(|_| bad("programmes"))?,
    })
}

/// A stored token as listed (never its secret).
pub fn info(row: &TokenRow) -> Result<crate::dto::TokenInfo, ApiError> {
    let principal = principal_of(row)?;
    let created_at = parse_time(row, Some(&row.created_at))?.unwrap_or_default();
    Ok(crate::dto::TokenInfo {
        name: row.name.clone(),
        role: principal.role,
        programmes: principal.programmes.into_iter().collect(),
        created_at,
        created_by: row.created_by.clone(),
        last_used_at: parse_time(row, row.last_used_at.as_deref())?,
        expires_at: parse_time(row, row.expires_at.as_deref())?,
        revoked_at: parse_time(row, row.revoked_at.as_deref())?,
        revoked_by: row.revoked_by.clone(),
    })
}

fn parse_time(row: &TokenRow, text: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    text.map(|t| {
        DateTime::parse_from_rfc3339(t)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| ApiError::Internal(format!("stored token {:?}: bad time {t:?}", row.name)))
    })
    .transpose()
}

/// A token bucket per token name: `per_second` requests a second, bursts
/// up to `per_second`.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: u32,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// A limiter; 0 disables it.
    pub fn new(per_second: u32) -> Self {
        Self { per_second, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one request's allowance, or says how long to wait.
    pub fn take(&self, name: &str) -> Result<(), ApiError> {
        if self.per_second == 0 {
            return Ok(());
        }
        let rate = f64::from(self.per_second);
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, last) = buckets.entry(name.to_owned()).or_insert((rate, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(rate);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            let wait = ((1.0 - *tokens) / rate).ceil().max(1.0);
            Err(ApiError::RateLimited { retry_after_secs: wait as u64 })
        }
    }
}

impl FromRequestParts<AppState> for Arc<Principal> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let secret = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(ApiError::Unauthorized)?;
        let principal = state.tokens().authenticate(secret).ok_or(ApiError::Unauthorized)?;
        state.rate_limiter().take(principal.name.as_str())?;
        tracing::Span::current().record("actor", principal.name.as_str());
        Ok(principal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_token_is_stored_hashed_and_found_by_its_secret_only() {
        let dir = tempfile::tempdir().unwrap();
        let db = ApiDb::open(&dir.path().join("api.sqlite")).unwrap();
        let tokens = Tokens::load(db.clone()).await.unwrap();
        let p = Principal { name: ActorId::parse("pm").unwrap(), role: Role::Manager, programmes: BTreeSet::new() };
        let secret = tokens.create(p.clone(), "admin", None).await.unwrap().unwrap();
        assert!(tokens.create(p, "admin", None).await.unwrap().is_none(), "a name is used once");
        assert_eq!(tokens.authenticate(&secret).unwrap().name.as_str(), "pm");
        assert!(tokens.authenticate("glt_nope").is_none());
        let stored = db.tokens().await.unwrap();
        assert_eq!(stored[0].digest, digest(&secret));
        assert!(!stored[0].programmes.contains(&secret));
        // A restart finds it again.
        let again = Tokens::load(db).await.unwrap();
        assert_eq!(again.authenticate(&secret).unwrap().role, Role::Manager);
    }

    #[test]
    fn the_rate_limit_answers_with_a_wait() {
        let limiter = RateLimiter::new(2);
        assert!(limiter.take("a").is_ok());
        assert!(limiter.take("a").is_ok());
        assert!(matches!(limiter.take("a"), Err(ApiError::RateLimited { retry_after_secs: 1 })));
        assert!(limiter.take("b").is_ok(), "buckets are per token");
        assert!(RateLimiter::new(0).take("a").is_ok());
    }
}
