//! Path and query extractors whose failures are problem+json like every
//! other error.

use axum::extract::{FromRequestParts, Path};
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
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        match serde_path_to_error::deserialize::<_, T>(de) {
            Ok(v) => Ok(Params(v)),
            Err(e) => {
                let detail = format!("Failed to deserialize query string: {}", e.inner());
                // The path names a field that is there; serde names an unknown one in its message.
                let path = e.path().to_string();
                let pointer = if path.is_empty() || path == "." { pointer_of(&detail) } else { format!("?{path}") };
                Err(ApiError::InvalidQuery(vec![FieldError { pointer, detail }]))
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
