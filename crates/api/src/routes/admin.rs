//! Admin calls: programmes and tokens.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use domain::programme::ProgrammeCommand;

use super::{ADMINS, Route};
use crate::AppState;
use crate::apidb::Revoked;
use crate::auth::{self, Principal};
use crate::dto::{self, CommandAnswer};
use crate::error::{ApiError, FieldError};
use crate::json::Body;
use crate::routes::commands::{Write, idempotent};

async fn create_programme(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    meta: super::RouteMeta,
    headers: HeaderMap,
    Body(b, digest): Body<dto::CreateProgramme>,
) -> Result<Response, ApiError> {
    let w = Write::new(&principal, &headers, "/api/v1/programmes".into(), digest, &b, meta);
    let programme = b.id.clone();
    let command = ProgrammeCommand::Create { programme_id: b.id.clone(), name: b.name.clone() };
    idempotent(&w, |key| {
        let issued = w.issued(command, key.as_deref(), None);
        let state = state.clone();
        async move { Ok(state.handler().execute_programme(&programme, &issued).await?) }
    })
    .await
}

async fn create_token(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    meta: super::RouteMeta,
    Body(b, _): Body<dto::CreateToken>,
) -> Result<Response, ApiError> {
    if let Some(at) = b.expires_at
        && at <= chrono::Utc::now()
    {
        return Err(ApiError::InvalidBody(vec![FieldError {
            pointer: "/expires_at".into(),
            detail: format!("{} is not in the future", at.to_rfc3339()),
        }]));
    }
    let new = Principal { name: b.name.clone(), role: b.role, programmes: b.programmes.iter().cloned().collect() };
    // From here the token may be stored: no timeout may answer for it.
    crate::write_submitted();
    let token = state
        .tokens()
        .create_expiring(new, principal.name.as_str(), None, b.expires_at)
        .await?
        .ok_or_else(|| ApiError::Exists(format!("token {} (names are compared without regard to case)", b.name)))?;
    tracing::info!(name = %b.name, role = b.role.as_str(), "token created");
    let answer =
        dto::TokenCreated { name: b.name, role: b.role, programmes: b.programmes, token, expires_at: b.expires_at };
    Ok((meta.status_code(), Json(answer)).into_response())
}

async fn list_tokens(State(state): State<AppState>) -> Result<Json<dto::TokenList>, ApiError> {
    let tokens = state.tokens().list().await?.iter().map(auth::info).collect::<Result<_, _>>()?;
    Ok(Json(dto::TokenList { tokens }))
}

async fn revoke_token(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    meta: super::RouteMeta,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    // The revocation may be stored from here: no timeout may answer for it.
    crate::write_submitted();
    match state.tokens().revoke(&name, principal.name.as_str()).await? {
        Revoked::Unknown => Err(ApiError::NotFound(format!("token {name}"))),
        Revoked::Now => {
            tracing::info!(%name, by = %principal.name, "token revoked");
            Ok(meta.status_code().into_response())
        }
        Revoked::Already => Ok(meta.status_code().into_response()),
    }
}

/// The admin routes.
pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::new(Method::POST, "/api/v1/programmes", "create_programme", post(create_programme))
            .summary("Create a programme")
            .roles(ADMINS)
            .request::<dto::CreateProgramme>()
            .response::<CommandAnswer>(201)
            .problems(&[409, 422, 507]),
        Route::new(Method::POST, "/api/v1/tokens", "create_token", post(create_token))
            .summary("Create a bearer token (shown once), optionally expiring at `expires_at`")
            .roles(ADMINS)
            .request::<dto::CreateToken>()
            .response::<dto::TokenCreated>(201)
            .problems(&[409]),
        Route::new(Method::GET, "/api/v1/tokens", "list_tokens", get(list_tokens))
            .summary("Every token: name, role, programmes, created, last used (to a minute), expiry, revocation; never the secret")
            .roles(ADMINS)
            .response::<dto::TokenList>(200),
        Route::new(Method::DELETE, "/api/v1/tokens/{name}", "revoke_token", delete(revoke_token))
            .summary("Revoke a token (name in any case): refused with 401 from the next request on; the row is kept")
            .roles(ADMINS)
            .no_content(),
    ]
}
