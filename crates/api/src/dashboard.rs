//! The dashboard: static files built into the binary (see `build.rs`),
//! served at `/` (the page) and `/dashboard/<path>` (its modules and
//! styles). Nothing is fetched from elsewhere: the Content-Security-Policy
//! allows this origin only. With `--dashboard-dir` the files are read from
//! that directory on each request instead (for working on the page).

use std::path::{Path, PathBuf};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/dashboard_assets.rs"));
}

/// The page's policy: scripts, styles, images and connections from this
/// origin only; never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Every embedded file: its path under `dashboard/` and its bytes.
pub fn assets() -> &'static [(&'static str, &'static [u8])] {
    embedded::ASSETS
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The path's segments when it names a file inside the directory: no
/// empty, `.` or `..` segment, no backslash or NUL.
fn safe(path: &str) -> Option<Vec<&str>> {
    let parts: Vec<&str> = path.split('/').collect();
    let bad = |p: &&str| p.is_empty() || *p == "." || *p == ".." || p.contains(['\\', '\0', ':']);
    if parts.iter().any(bad) { None } else { Some(parts) }
}

fn from_dir(dir: &Path, parts: &[&str]) -> Option<Vec<u8>> {
    let path: PathBuf = parts.iter().fold(dir.to_path_buf(), |p, s| p.join(s));
    std::fs::read(path).ok()
}

fn file(state: &AppState, name: &str) -> Option<std::borrow::Cow<'static, [u8]>> {
    let parts = safe(name)?;
    match &state.config().dashboard_dir {
        Some(dir) => from_dir(dir, &parts).map(std::borrow::Cow::Owned),
        None => assets().iter().find(|(n, _)| *n == name).map(|(_, bytes)| std::borrow::Cow::Borrowed(*bytes)),
    }
}

fn serve(state: &AppState, headers: &HeaderMap, name: &str) -> Response {
    let Some(bytes) = file(state, name) else {
        return ApiError::NotFound(format!("dashboard file {name}")).into_response();
    };
    let tag = format!("\"{}\"", &hex::encode(Sha256::digest(&bytes))[..32]);
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut response =
        if matches { StatusCode::NOT_MODIFIED.into_response() } else { bytes.into_owned().into_response() };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(name)));
    if let Ok(tag) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, tag);
    }
    // Revalidated on every load (cheap with the ETag), so a new build's page
    // is never mixed with an old build's modules.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// `GET /`: the page.
pub async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    serve(&state, &headers, "index.html")
}

/// `GET /dashboard/{*path}`: a module, style sheet or image of the page.
pub async fn asset(State(state): State<AppState>, headers: HeaderMap, UrlPath(path): UrlPath<String>) -> Response {
    serve(&state, &headers, &path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_inside_the_directory_are_served() {
        assert_eq!(safe("app.js"), Some(vec!["app.js"]));
        assert_eq!(safe("pages/grant.js"), Some(vec!["pages", "grant.js"]));
        for bad in ["../secret", "a/../../b", "/etc/passwd", "a//b", "a\\b", "./a", "c:x", "a/"] {
            assert_eq!(safe(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_page_is_built_in() {
        let names: Vec<&str> = assets().iter().map(|(n, _)| *n).collect();
        assert!(names.contains(&"index.html"), "{names:?}");
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("pages/grant.js"), "text/javascript; charset=utf-8");
    }
}
