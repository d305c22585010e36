//! Bearer tokens, roles, programme scopes and the per-token rate limit.
//!
//! A token is 32 random bytes (`glt_` + 64 hex digits), stored only as its
//! SHA-256. A presented token is hashed, looked up by its digest and
//! compared in constant time; revoked and expired tokens are refused. Tokens are never logged:
//! the `Authorization` header is marked sensitive and only the name is put
//! on spans.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use events::{ActorId, ProgrammeId};
use rand::RngCore;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;
pub use crate::tokens::{LAST_USED_EVERY, TOKENS_RELOAD_EVERY, Tokens, info, new_row};

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
        // Authenticated once, by the route table's role check, per request.
        if let Some(principal) = parts.extensions.get::<Arc<Principal>>() {
            return Ok(Arc::clone(principal));
        }
        // A bearer token when one is sent; else the dashboard's session
        // cookie (whose writes need the session's CSRF token).
        let principal = match parts.headers.get(header::AUTHORIZATION) {
            Some(value) => {
                let secret = value
                    .to_str()
                    .ok()
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .map(str::trim)
                    .ok_or(ApiError::Unauthorized)?;
                state.tokens().authenticate_fresh(secret).await.ok_or(ApiError::Unauthorized)?
            }
            None => crate::session::principal(state, parts).await?.ok_or(ApiError::Unauthorized)?,
        };
        state.rate_limiter().take(principal.name.as_str())?;
        tracing::Span::current().record("actor", principal.name.as_str());
        Ok(principal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apidb::{ApiData, SqliteApiData};

    #[tokio::test]
    async fn a_token_is_stored_hashed_and_found_by_its_secret_only() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteApiData::open(&dir.path().join("api.sqlite")).unwrap();
        let tokens = Tokens::load(Arc::new(db.clone())).await.unwrap();
        let p = Principal { name: ActorId::parse("pm").unwrap(), role: Role::Manager, programmes: BTreeSet::new() };
        let secret = tokens.create(p.clone(), "admin", None).await.unwrap().unwrap();
        assert!(tokens.create(p, "admin", None).await.unwrap().is_none(), "a name is used once");
        assert_eq!(tokens.authenticate(&secret).unwrap().name.as_str(), "pm");
        assert!(tokens.authenticate("glt_nope").is_none());
        let stored = db.tokens().await.unwrap();
        assert_eq!(stored[0].digest, digest(&secret));
        assert!(!stored[0].programmes.contains(&secret));
        // A restart finds it again.
        let again = Tokens::load(Arc::new(db)).await.unwrap();
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
