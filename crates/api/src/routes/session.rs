//! The dashboard's sign-in: `POST`, `GET` and `DELETE /api/v1/session`
//! (see [`crate::session`]). These routes take no bearer token: the first
//! takes one in its body, the others the session cookie.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use chrono::{DateTime, Utc};

use super::Route;
use crate::AppState;
use crate::apidb::SessionRow;
use crate::auth::{Principal, digest};
use crate::dto::{OpenSession, SessionInfo};
use crate::error::ApiError;
use crate::json::Body;
use crate::session;

fn info(principal: &Principal, row: &SessionRow) -> Result<SessionInfo, ApiError> {
    let expires_at = DateTime::parse_from_rfc3339(&row.expires_at)
        .map_err(|e| ApiError::Internal(format!("stored session expiry {:?}: {e}", row.expires_at)))?
        .with_timezone(&Utc);
    Ok(SessionInfo {
        name: principal.name.clone(),
        role: principal.role,
        programmes: principal.programmes.iter().cloned().collect(),
        csrf_token: row.csrf.clone(),
        expires_at,
    })
}

async fn open(
    State(state): State<AppState>,
    headers: HeaderMap,
    Body(b, _): Body<OpenSession>,
) -> Result<Response, ApiError> {
    // Signing in is a write a browser makes: never from another site.
    session::same_origin(&headers)?;
    let secret = b.token.trim();
    let principal = state.tokens().authenticate_fresh(secret).await.ok_or(ApiError::Unauthorized)?;
    state.rate_limiter().take(principal.name.as_str())?;
    let (cookie, row) = session::new_session(digest(secret), Utc::now());
    crate::write_submitted();
    state.tokens().data().insert_session(row.clone()).await?;
    tracing::info!(actor = principal.name.as_str(), "session opened");
    let body = info(&principal, &row)?;
    let set_cookie = session::set_cookie(&cookie, session::secure(&state, &headers))?;
    Ok((
        StatusCode::CREATED,
        [
            (header::SET_COOKIE, set_cookie),
            (header::CACHE_CONTROL, "no-store".parse().map_err(|_| ApiError::Internal("header".into()))?),
        ],
        Json(body),
    )
        .into_response())
}

async fn show(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let row = session::current(&state, &headers).await?.ok_or(ApiError::Unauthorized)?;
    let principal = state.tokens().authenticate_digest_fresh(&row.token_digest).await.ok_or(ApiError::Unauthorized)?;
    let body = info(&principal, &row)?;
    Ok(([(header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"))], Json(body)).into_response())
}

async fn close(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let secure = session::secure(&state, &headers);
    if let Some(row) = session::current(&state, &headers).await? {
        session::check_csrf(&row, &Method::DELETE, &headers)?;
        crate::write_submitted();
        state.tokens().data().delete_session(row.digest).await?;
    }
    // Without a current session there is nothing to end: the cookie is
    // cleared all the same.
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, session::clear_cookie(secure))]).into_response())
}

/// The session routes.
pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::new(Method::POST, "/api/v1/session", "open_session", post(open))
            .summary("Sign in: exchange a token for an HttpOnly session cookie (for the dashboard)")
            .request::<OpenSession>()
            .problems(&[401, 429])
            .response::<SessionInfo>(201),
        Route::new(Method::GET, "/api/v1/session", "get_session", get(show))
            .summary("The session the cookie names: who, and the CSRF token its writes carry")
            .response::<SessionInfo>(200)
            .session_only(),
        Route::new(Method::DELETE, "/api/v1/session", "close_session", delete(close))
            .summary("Sign out: end the session on the server and clear the cookie (needs X-CSRF-Token)")
            .no_content()
            .session_only()
            .problems(&[403]),
    ]
}
