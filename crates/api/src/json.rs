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
        let content_type =
            req.headers().get(header::CONTENT_TYPE).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
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
        match content_type {
            Some(given) if is_json(&given) => {}
            given => {
                return Err(ApiError::UnsupportedMediaType {
                    given: given.unwrap_or_default().chars().take(100).collect(),
                });
            }
        }
        let digest = sha2::Sha256::digest(&bytes).into();
        parse(&bytes).map(|value| Body(value, digest))
    }
}

/// Whether a `Content-Type` is JSON: `application/json`, in any case,
/// with at most a `charset=utf-8` parameter (quoted or not). Anything else
/// (`application/jsonfoo`, `application/evil+json`, `text/json`) is not.
pub fn is_json(content_type: &str) -> bool {
    let mut parts = content_type.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return false;
    }
    parts.all(|param| match param.split_once('=') {
        Some((name, value)) => {
            name.trim().eq_ignore_ascii_case("charset")
                && matches!(value.trim().trim_matches('"').to_ascii_lowercase().as_str(), "utf-8" | "utf8")
        }
        None => param.trim().is_empty(),
    })
}

/// Parses a body: depth first (so a deep body never reaches serde's
/// recursion), then the typed value, naming the field at fault, then that
/// nothing but white space follows the one JSON value.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if depth(bytes) > JSON_DEPTH_MAX {
        return Err(ApiError::JsonTooDeep { depth_max: JSON_DEPTH_MAX });
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = typed(de)?;
    de.end().map_err(|e| {
        ApiError::InvalidBody(vec![FieldError {
            pointer: String::new(),
            detail: format!("the body must be one JSON value and nothing after it: {e}"),
        }])
    })?;
    Ok(value)
}

fn typed<T: DeserializeOwned>(de: &mut serde_json::Deserializer<serde_json::de::SliceRead<'_>>) -> Result<T, ApiError> {
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
    use proptest::prop_assert;
    use proptest::prop_assert_eq;
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
    fn one_json_value_and_nothing_after_it() {
        assert!(parse::<serde_json::Value>(b"{\"a\": 1}  \r\n\t").is_ok());
        for bad in [&b"{\"a\": 1}GARBAGE"[..], b"{} {}", b"{}\x00", b"[1] ]", b"{}//"] {
            match parse::<serde_json::Value>(bad) {
                Err(ApiError::InvalidBody(errors)) => assert_eq!(errors[0].pointer, ""),
                other => panic!("{:?} gave {other:?}", String::from_utf8_lossy(bad)),
            }
        }
    }

    #[test]
    fn only_application_json_with_a_utf8_charset_is_json() {
        for good in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
            "application/json;",
        ] {
            assert!(is_json(good), "{good} refused");
        }
        for bad in [
            "application/jsonfoo",
            "application/evil+json",
            "application/json-seq",
            "text/json",
            "application/json; charset=latin1",
            "application/json; boundary=x",
            "text/plain",
            "",
            "application/json, text/plain",
        ] {
            assert!(!is_json(bad), "{bad} accepted");
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics_on_any_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = parse::<serde_json::Value>(&bytes);
            let _ = parse::<Outer>(&bytes);
        }

        #[test]
        fn parse_accepts_exactly_one_value(text in "[\\[\\]{}\"a-z0-9:, ]{0,40}") {
            let serde_says = serde_json::from_str::<serde_json::Value>(&text).is_ok();
            prop_assert_eq!(parse::<serde_json::Value>(text.as_bytes()).is_ok(), serde_says);
        }

        #[test]
        fn a_strict_money_body_parses_only_what_the_pattern_allows(amount in "[-+0-9._eE ]{0,16}") {
            let body = format!(r#"{{"id":"x","cost":{{"amount":{{"amount":"{amount}","currency":"EUR"}}}}}}"#);
            let pattern = regex::Regex::new(events::bounds::AMOUNT_PATTERN).unwrap();
            if parse::<Strict>(body.as_bytes()).is_ok() {
                prop_assert!(pattern.is_match(&amount), "{} accepted", amount);
            }
        }
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct StrictInner {
        #[serde(deserialize_with = "crate::input::money")]
        amount: events::Money,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Strict {
        id: String,
        cost: StrictInner,
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
