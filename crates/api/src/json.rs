//! The JSON body extractor: a size limit, a depth limit, unknown fields
//! refused (the DTOs `deny_unknown_fields`), and every failure as the same
//! problem shape with a JSON pointer to the field at fault.

use axum::body::to_bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;
use sha2::Digest;

use crate::AppState;
use crate::error::{ApiError, FieldError};

/// Deepest nesting of arrays and objects accepted in a body.
pub const JSON_DEPTH_MAX: usize = 32;

/// Least excess read and dropped before answering 413.
pub const DRAIN_BYTES_MIN: usize = 1 << 20;

/// A JSON body of type `T`, checked as above, with the SHA-256 of its bytes
/// (the idempotency fingerprint).
#[derive(Debug)]
pub struct Body<T>(pub T, pub [u8; 32]);

impl<T: DeserializeOwned> FromRequest<AppState> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes_max = state.config().request_body_bytes_max;
        let json_content = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json") || v.contains("+json"));
        let declared_too_large = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .is_some_and(|n| n > bytes_max);
        if declared_too_large {
            // Read (and drop) a bounded excess first, so that a client still
            // sending gets the 413 rather than a broken pipe.
            let _ = to_bytes(req.into_body(), bytes_max.saturating_mul(4).max(DRAIN_BYTES_MIN)).await;
            return Err(ApiError::PayloadTooLarge { bytes_max });
        }
        let bytes = to_bytes(req.into_body(), bytes_max).await.map_err(|_| ApiError::PayloadTooLarge { bytes_max })?;
        // An action without fields may be sent without a body at all.
        if bytes.is_empty() {
            return parse(b"{}").map(|value| Body(value, sha2::Sha256::digest(b"{}").into()));
        }
        if !json_content {
            return Err(ApiError::InvalidBody(vec![FieldError {
                pointer: String::new(),
                detail: "expected Content-Type: application/json".into(),
            }]));
        }
        let digest = sha2::Sha256::digest(&bytes).into();
        parse(&bytes).map(|value| Body(value, digest))
    }
}

/// Parses a body: depth first (so a deep body never reaches serde's
/// recursion), then the typed value, naming the field at fault.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if depth(bytes) > JSON_DEPTH_MAX {
        return Err(ApiError::JsonTooDeep { depth_max: JSON_DEPTH_MAX });
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let mut pointer = pointer(e.path());
        let detail = e.inner().to_string();
        // serde names an unknown or a missing field only in its message:
        // point at it.
        let named = ["unknown field `", "missing field `"]
            .iter()
            .find_map(|prefix| detail.strip_prefix(prefix))
            .and_then(|rest| rest.split('`').next());
        if let Some(field) = named
            && !pointer.ends_with(&format!("/{field}"))
        {
            pointer = format!("{}/{}", pointer.trim_end_matches('/'), field);
        }
        ApiError::InvalidBody(vec![FieldError { pointer, detail }])
    })
}

fn pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("/{index}")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                out.push('/');
                out.push_str(&key.replace('~', "~0").replace('/', "~1"));
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// The deepest nesting of `[` and `{` outside strings (malformed input gets
/// a best-effort number; serde reports what is wrong with it).
fn depth(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // fields are read by serde only
    struct Inner {
        amount: events::Money,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        id: String,
        cost: Inner,
    }

    fn pointer_of(body: &str) -> (String, String) {
        match parse::<Outer>(body.as_bytes()) {
            Err(ApiError::InvalidBody(errors)) => (errors[0].pointer.clone(), errors[0].detail.clone()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_number_for_money_names_the_field() {
        let (pointer, _) = pointer_of(r#"{"id": "x", "cost": {"amount": {"amount": 1.5, "currency": "EUR"}}}"#);
        assert_eq!(pointer, "/cost/amount/amount");
    }

    #[test]
    fn a_missing_field_is_named() {
        let (pointer, detail) = pointer_of(r#"{"id": "x", "cost": {}}"#);
        assert_eq!(pointer, "/cost/amount", "{detail}");
    }

    #[test]
    fn an_unknown_field_is_named() {
        let (pointer, detail) =
            pointer_of(r#"{"id": "x", "cost": {"amount": {"amount": "1.50", "currency": "EUR"}, "actor": "me"}}"#);
        assert_eq!(pointer, "/cost/actor", "{detail}");
    }

    #[test]
    fn depth_is_counted_outside_strings() {
        assert_eq!(depth(br#"{"a": "[[[[{{{{", "b": [[1]]}"#), 3);
        let deep = format!("{}{}", "[".repeat(JSON_DEPTH_MAX + 1), "]".repeat(JSON_DEPTH_MAX + 1));
        assert!(matches!(parse::<serde_json::Value>(deep.as_bytes()), Err(ApiError::JsonTooDeep { .. })));
        let fine = format!("{}{}", "[".repeat(JSON_DEPTH_MAX), "]".repeat(JSON_DEPTH_MAX));
        assert!(parse::<serde_json::Value>(fine.as_bytes()).is_ok());
    }
}
