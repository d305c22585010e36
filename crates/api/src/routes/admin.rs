//! Admin calls: programmes and tokens.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use domain::programme::ProgrammeCommand;

use super::{ADMINS, Route};
use crate::AppState;
use crate::auth::Principal;
use crate::dto::{self, CommandAnswer};
use crate::error::ApiError;
use crate::json::Body;
use crate::routes::commands::{Write, idempotent};

async fn create_programme(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    headers: HeaderMap,
    Body(b, digest): Body<dto::CreateProgramme>,
) -> Result<Response, ApiError> {
    principal.require(ADMINS)?;
    let w = Write::new(&principal, &headers, "/api/v1/programmes".into(), digest, &b).created();
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
    Body(b, _): Body<dto::CreateToken>,
) -> Result<Response, ApiError> {
    principal.require(ADMINS)?;
    let new = Principal { name: b.name.clone(), role: b.role, programmes: b.programmes.iter().cloned().collect() };
    let token = state
        .tokens()
        .create(new, principal.name.as_str(), None)
        .await?
        .ok_or_else(|| ApiError::Exists(format!("token {}", b.name)))?;
    tracing::info!(name = %b.name, role = b.role.as_str(), "token created");
    let answer = dto::TokenCreated { name: b.name, role: b.role, programmes: b.programmes, token };
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// The admin routes.
pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::new(Method::POST, "/api/v1/programmes", "create_programme", post(create_programme))
            .summary("Create a programme")
            .roles(ADMINS)
            .request::<dto::CreateProgramme>()
            .response::<CommandAnswer>(201),
        Route::new(Method::POST, "/api/v1/tokens", "create_token", post(create_token))
            .summary("Create a bearer token (shown once)")
            .roles(ADMINS)
            .request::<dto::CreateToken>()
            .response::<dto::TokenCreated>(201),
    ]
}
