//! The tokens a server accepts: in memory, looked up by digest, backed by
//! `api.sqlite`; their lifecycle (expiry, revocation, last use) and the
//! background tasks that keep them true: the `last_used_at` writer and the
//! reload of tokens another process (`grantlog token`) changed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use events::ActorId;
use subtle::ConstantTimeEq;

use crate::apidb::{ApiData, Inserted, Revoked, TokenRow};
use crate::auth::{Principal, Role, digest, new_secret};
use crate::error::ApiError;

/// How often a token's use is written to `last_used_at` at most: uses in
/// between are coalesced, so `last_used_at` is accurate to this.
pub const LAST_USED_EVERY: Duration = Duration::from_secs(60);

/// How often the server looks for tokens created or revoked by another
/// process (`grantlog token` on the same data directory): it checks SQLite's
/// `data_version`, a cheap read, and reloads the table only when it moved.
pub const TOKENS_RELOAD_EVERY: Duration = Duration::from_secs(1);

/// How often a live stream (SSE) checks that its token is still accepted.
pub const STREAM_TOKEN_CHECK_EVERY: Duration = Duration::from_secs(1);

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
    db: Arc<dyn ApiData>,
    known: RwLock<HashMap<[u8; 32], Arc<Known>>>,
    /// Held across a change of the table and of `known` (create, revoke,
    /// reload), so that a reload never puts back what a revocation took
    /// away, nor drops a token just created.
    changes: tokio::sync::Mutex<()>,
    uses: tokio::sync::mpsc::Sender<(String, String)>,
    /// The data version last read in (see [`ApiData::data_version`]).
    seen: AtomicI64,
    /// When the last check of an unknown secret against the table began:
    /// one check at a time, shared by every miss that arrived before it.
    miss_checked: tokio::sync::Mutex<Option<std::time::Instant>>,
}

impl Tokens {
    /// Loads every stored token and starts the background tasks: the
    /// `last_used_at` writer and the reload of tokens changed by another
    /// process. Both end when the `Tokens` is dropped.
    pub async fn load(db: Arc<dyn ApiData>) -> Result<Arc<Self>, ApiError> {
        // The version first: a change made while reading is then seen.
        let version = db.data_version().await?;
        let known = Self::read(db.as_ref()).await?;
        let (uses, rx) = tokio::sync::mpsc::channel(LAST_USED_QUEUE_MAX);
        let tokens = Arc::new(Self {
            db: Arc::clone(&db),
            known: RwLock::new(known),
            changes: tokio::sync::Mutex::new(()),
            uses,
            seen: AtomicI64::new(version),
            miss_checked: tokio::sync::Mutex::new(None),
        });
        tokio::spawn(write_last_used(db, rx));
        tokio::spawn(reload(Arc::downgrade(&tokens)));
        Ok(tokens)
    }

    async fn read(db: &dyn ApiData) -> Result<HashMap<[u8; 32], Arc<Known>>, ApiError> {
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
        let _change = self.changes.lock().await;
        let fresh = Self::read(self.db.as_ref()).await?;
        let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
        for (digest, entry) in &fresh {
            if let Some(old) = known.get(digest) {
                entry.last_used_sent.store(old.last_used_sent.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        }
        *known = fresh;
        Ok(())
    }

    /// [`Tokens::authenticate`], and for a secret this server does not know,
    /// a look at the table first when it changed since it was last read: a
    /// token made a moment ago by another server or `grantlog token` is
    /// accepted at once, not a second later. Concurrent misses share one
    /// check (so unknown secrets cost at most one cheap query at a time).
    pub async fn authenticate_fresh(&self, secret: &str) -> Option<Arc<Principal>> {
        self.authenticate_digest_fresh(&digest(secret)).await
    }

    /// [`Tokens::authenticate_fresh`] of a token known by its digest (a
    /// browser session's token).
    pub async fn authenticate_digest_fresh(&self, presented: &[u8; 32]) -> Option<Arc<Principal>> {
        if let Some(principal) = self.authenticate_digest(presented) {
            return Some(principal);
        }
        let presented = *presented;
        if self.known.read().unwrap_or_else(|e| e.into_inner()).contains_key(&presented) {
            return None; // known, and revoked or expired
        }
        let arrived = std::time::Instant::now();
        let mut checked = self.miss_checked.lock().await;
        if checked.is_none_or(|at| at < arrived) {
            *checked = Some(std::time::Instant::now());
            if let Err(e) = self.reload_if_changed().await {
                tracing::warn!(error = ?e, "could not check the tokens for a change");
            }
        }
        drop(checked);
        self.authenticate_digest(&presented)
    }

    /// Reads the tokens again if the table changed since they were read.
    async fn reload_if_changed(&self) -> Result<bool, ApiError> {
        let version = self.db.data_version().await?;
        if version == self.seen.load(Ordering::Acquire) {
            return Ok(false);
        }
        self.refresh().await?;
        self.seen.store(version, Ordering::Release);
        Ok(true)
    }

    /// The API's data the tokens are kept in (sessions live there too).
    pub fn data(&self) -> &Arc<dyn ApiData> {
        &self.db
    }

    /// Whether any token exists (the bootstrap creates the first).
    pub fn is_empty(&self) -> bool {
        self.known.read().unwrap_or_else(|e| e.into_inner()).is_empty()
    }

    /// The principal of a presented secret, if it is known, not revoked and
    /// not expired. Its use is queued for `last_used_at`, never waited for.
    pub fn authenticate(&self, secret: &str) -> Option<Arc<Principal>> {
        self.authenticate_digest(&digest(secret))
    }

    /// [`Tokens::authenticate`] of a token known by its digest.
    pub fn authenticate_digest(&self, presented: &[u8; 32]) -> Option<Arc<Principal>> {
        let entry = {
            let known = self.known.read().unwrap_or_else(|e| e.into_inner());
            let (stored, entry) = known.get_key_value(presented)?;
            if !bool::from(stored.ct_eq(presented)) {
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
        self: &Arc<Self>,
        principal: Principal,
        created_by: &str,
        secret: Option<String>,
    ) -> Result<Option<String>, ApiError> {
        self.create_expiring(principal, created_by, secret, None).await
    }

    /// Creates a token that stops being accepted at `expires_at`. The work
    /// runs in a task of its own: a request cancelled (timed out, or its
    /// client gone) cannot leave the table and the server disagreeing.
    pub async fn create_expiring(
        self: &Arc<Self>,
        principal: Principal,
        created_by: &str,
        secret: Option<String>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<Option<String>, ApiError> {
        let (this, created_by) = (Arc::clone(self), created_by.to_owned());
        tokio::spawn(async move { this.create_now(principal, &created_by, secret, expires_at).await })
            .await
            .map_err(|e| ApiError::Internal(format!("creating a token: {e}")))?
    }

    async fn create_now(
        &self,
        principal: Principal,
        created_by: &str,
        secret: Option<String>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<Option<String>, ApiError> {
        let _change = self.changes.lock().await;
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
    /// Runs in a task of its own, like [`Tokens::create_expiring`].
    pub async fn revoke(self: &Arc<Self>, name: &str, by: &str) -> Result<Revoked, ApiError> {
        let (this, name, by) = (Arc::clone(self), name.to_owned(), by.to_owned());
        tokio::spawn(async move { this.revoke_now(&name, &by).await })
            .await
            .map_err(|e| ApiError::Internal(format!("revoking a token: {e}")))?
    }

    async fn revoke_now(&self, name: &str, by: &str) -> Result<Revoked, ApiError> {
        let _change = self.changes.lock().await;
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

    /// Whether a token named `name` (exactly) is still accepted: known, not
    /// revoked, not expired.
    pub fn accepts(&self, name: &ActorId) -> bool {
        let now = Utc::now();
        let known = self.known.read().unwrap_or_else(|e| e.into_inner());
        known.values().any(|e| {
            e.principal.name == *name && !e.revoked.load(Ordering::Acquire) && e.expires_at.is_none_or(|at| at > now)
        })
    }

    /// Resolves once the token named `name` is no longer accepted (revoked
    /// here or by another process, or expired): a live stream opened with it
    /// ends then, within [`STREAM_TOKEN_CHECK_EVERY`].
    pub fn withdrawn(self: &Arc<Self>, name: ActorId) -> impl Future<Output = ()> + Send + 'static {
        let tokens = Arc::downgrade(self);
        async move {
            loop {
                tokio::time::sleep(STREAM_TOKEN_CHECK_EVERY).await;
                match tokens.upgrade() {
                    Some(t) if t.accepts(&name) => {}
                    _ => return,
                }
            }
        }
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
async fn write_last_used(db: Arc<dyn ApiData>, mut rx: tokio::sync::mpsc::Receiver<(String, String)>) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, LAST_USED_QUEUE_MAX).await > 0 {
        let uses = std::mem::take(&mut batch);
        let count = uses.len();
        if let Err(e) = db.record_last_used(uses).await {
            tracing::warn!(error = ?e, count, "could not record tokens' last use");
        }
    }
}

/// Reloads the tokens when another process changed them.
async fn reload(tokens: std::sync::Weak<Tokens>) {
    loop {
        tokio::time::sleep(TOKENS_RELOAD_EVERY).await;
        let Some(tokens) = tokens.upgrade() else { return };
        match tokens.reload_if_changed().await {
            Ok(true) => tracing::info!("tokens reloaded: another process changed them"),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = ?e, "could not check the tokens for a change"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apidb::{ApiData, SqliteApiData};

    fn viewer(name: &str) -> Principal {
        Principal { name: ActorId::parse(name).unwrap(), role: Role::Viewer, programmes: Default::default() }
    }

    #[tokio::test]
    async fn revoked_and_expired_tokens_are_refused_and_names_differ_by_more_than_case() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteApiData::open(&dir.path().join("api.sqlite")).unwrap();
        let tokens = Tokens::load(Arc::new(db.clone())).await.unwrap();
        let secret = tokens.create(viewer("Ops"), "admin", None).await.unwrap().unwrap();
        assert!(tokens.create(viewer("OPS"), "admin", None).await.unwrap().is_none());
        assert!(tokens.authenticate(&secret).is_some());
        assert_eq!(tokens.revoke("ops", "admin").await.unwrap(), Revoked::Now);
        assert!(tokens.authenticate(&secret).is_none(), "refused at once");
        let soon = Utc::now() + chrono::Duration::milliseconds(300);
        let brief = tokens.create_expiring(viewer("brief"), "admin", None, Some(soon)).await.unwrap().unwrap();
        assert!(tokens.authenticate(&brief).is_some());
        // A restart knows both.
        let again = Tokens::load(Arc::new(db)).await.unwrap();
        assert!(again.authenticate(&secret).is_none());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while again.authenticate(&brief).is_some() {
            assert!(std::time::Instant::now() < deadline, "an expired token still accepted");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A revocation whose request is cut short (timed out, or its client
    /// gone) once it has started still takes effect here, not only in the
    /// file: the server refuses the token, as the file says.
    #[tokio::test]
    async fn a_revocation_cut_short_still_refuses_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteApiData::open(&dir.path().join("api.sqlite")).unwrap();
        let tokens = Tokens::load(Arc::new(db.clone())).await.unwrap();
        let mut cut = 0;
        for i in 0..20 {
            let name = format!("cut-{i}");
            let secret = tokens.create(viewer(&name), "admin", None).await.unwrap().unwrap();
            // Polled once, then dropped: the caller's future is gone.
            if futures_util::FutureExt::now_or_never(tokens.revoke(&name, "admin")).is_none() {
                cut += 1;
            }
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !db.tokens().await.unwrap().iter().any(|r| r.name == name && r.revoked_at.is_some()) {
                assert!(std::time::Instant::now() < deadline, "{name}: the revocation never reached the file");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            while tokens.authenticate(&secret).is_some() {
                assert!(std::time::Instant::now() < deadline, "{name}: revoked in the file, still accepted");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        assert!(cut > 0, "no revocation was cut short");
    }
}
