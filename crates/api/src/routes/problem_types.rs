//! What a problem's `type` resolves to: `GET /problems` lists the
//! catalogue ([`crate::catalogue`]), `GET /problems/{code}` serves one entry
//! as JSON, or as a small self-contained HTML page for a browser that
//! followed the link (`Accept: text/html`). No token needed: a client that
//! was refused must be able to read why.

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::Route;
use crate::catalogue::{self, ProblemType, ProblemTypes};
use crate::error::ApiError;
use crate::extract::Ids;

async fn list() -> Json<ProblemTypes> {
    Json(catalogue::all())
}

async fn one(headers: HeaderMap, Ids(code): Ids<String>) -> Response {
    let Some(entry) = catalogue::lookup(&code) else {
        return ApiError::NotFound(format!("problem type {code}")).into_response();
    };
    let mut response = if wants_html(&headers) {
        let mut r = html(&entry).into_response();
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        // The page needs nothing from anywhere: say so to the browser.
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'"),
        );
        r
    } else {
        Json(entry).into_response()
    };
    response.headers_mut().insert(header::VARY, HeaderValue::from_static("accept"));
    response
}

/// Whether `Accept` names `text/html` (not with `q=0`): what a browser
/// following the `type` link sends.
fn wants_html(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let html = parts.next().is_some_and(|t| t.eq_ignore_ascii_case("text/html"));
        let refused = parts.any(|p| p.replace(' ', "").eq_ignore_ascii_case("q=0"));
        html && !refused
    })
}

/// `&`, `<`, `>`, `"` and `'` as entities.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn html(p: &ProblemType) -> String {
    let mut rows = String::new();
    for m in &p.members {
        let when = if m.always { "" } else { " (some answers)" };
        rows.push_str(&format!("<li><code>{}</code>{when}: {}</li>\n", escape(&m.name), escape(&m.description)));
    }
    for h in &p.headers {
        rows.push_str(&format!("<li>header <code>{}</code>: {}</li>\n", escape(&h.name), escape(&h.description)));
    }
    let members = if rows.is_empty() { String::new() } else { format!("<h2>Members</h2>\n<ul>\n{rows}</ul>\n") };
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title} ({status})</title>\n\
         <style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;\
         line-height:1.5}}code{{background:#eee;padding:0 .2rem}}</style>\n</head>\n<body>\n\
         <h1>{title}</h1>\n<p>Status <strong>{status}</strong>, code <code>{code}</code>, type <code>{uri}</code>.</p>\n\
         <p>{summary}</p>\n{members}<h2>What to do</h2>\n<p>{todo}</p>\n\
         <p><a href=\"/problems\">Every problem type</a> (JSON).</p>\n</body>\n</html>\n",
        title = escape(&p.title),
        status = p.status,
        code = escape(&p.code),
        uri = escape(&p.type_uri),
        summary = escape(&p.summary),
        todo = escape(&p.what_to_do),
    )
}

/// The problem-type routes (no token needed).
pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::new(Method::GET, "/problems", "list_problem_types", get(list))
            .summary("Every problem type: its code, status, members, headers and what a client should do")
            .response::<ProblemTypes>(200),
        Route::new(Method::GET, "/problems/{code}", "get_problem_type", get(one))
            .summary(
                "What a problem's `type` (`/problems/<code>`) means and what to do; `http-<status>` resolves \
                 to the generic entry; an HTML page for `Accept: text/html`",
            )
            .response::<ProblemType>(200)
            .html_too(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_on_the_page_is_escaped() {
        let mut p = catalogue::lookup("exceeds-award").expect("exceeds-award");
        p.summary = "<script>alert('x')</script> & \"more\"".into();
        let page = html(&p);
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;more&quot;"), "{page}");
    }

    #[test]
    fn a_browser_gets_html_and_a_client_json() {
        let accept = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_static(v));
            h
        };
        assert!(wants_html(&accept("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")));
        assert!(!wants_html(&accept("application/json")));
        assert!(!wants_html(&accept("text/html;q=0, application/json")));
        assert!(!wants_html(&HeaderMap::new()));
    }
}
