//! Path and query extractors whose failures are problem+json like every
//! other error.

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};

/// Path parameters; an invalid id is a 404 (no such thing can exist).
#[derive(Debug)]
pub struct Ids<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Ids<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(Ids(v)),
            Err(e) => Err(ApiError::NotFound(format!("resource ({})", e.body_text()))),
        }
    }
}

/// Query parameters; unknown or malformed ones are a 400 naming them.
#[derive(Debug)]
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::try_from_uri(&parts.uri) {
            Ok(Query(v)) => Ok(Params(v)),
            Err(e) => {
                let detail = e.body_text();
                Err(ApiError::InvalidQuery(vec![FieldError { pointer: pointer_of(&detail), detail }]))
            }
        }
    }
}

/// `?name` for the first backquoted or named field in serde's message.
fn pointer_of(detail: &str) -> String {
    let named = detail
        .split('`')
        .nth(1)
        .or_else(|| detail.split("field ").nth(1).and_then(|r| r.split([' ', ',', ':']).next()));
    match named {
        Some(name) if !name.is_empty() => format!("?{name}"),
        _ => "?".to_owned(),
    }
}
