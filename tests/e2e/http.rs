//! HTTP conventions a client relies on: gzip when asked for (never on a
//! live stream), and cross-origin calls only from the origins listed.

use std::io::Read;
use std::time::Duration;

use reqwest::StatusCode;

use crate::harness::{ADMIN_TOKEN, Server};

const BUDGET: &str = "/api/v1/grants/nctcr-2022/budget";

/// `GET url` with the admin token and `headers`.
async fn get(http: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = http.get(url).bearer_auth(ADMIN_TOKEN);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

#[tokio::test]
async fn answers_are_gzipped_for_clients_that_ask_and_live_streams_never_are() {
    let server = Server::start_with(&["demo"]);
    let http = reqwest::Client::new();
    let base = server.api().base().to_owned();
    for path in ["/openapi.json", BUDGET] {
        let plain = get(&http, &format!("{base}{path}"), &[]).await;
        assert_eq!(plain.status(), StatusCode::OK);
        assert!(plain.headers().get("content-encoding").is_none(), "{path}: gzip unasked");
        let plain = plain.bytes().await.unwrap();
        let zipped = get(&http, &format!("{base}{path}"), &[("accept-encoding", "gzip")]).await;
        assert_eq!(zipped.status(), StatusCode::OK);
        assert_eq!(zipped.headers()["content-encoding"], "gzip", "{path}");
        assert!(zipped.headers()["vary"].to_str().unwrap().to_lowercase().contains("accept-encoding"), "{path}");
        let zipped = zipped.bytes().await.unwrap();
        assert!(zipped.len() * 3 < plain.len(), "{path}: {} gzipped bytes for {}", zipped.len(), plain.len());
        assert_eq!(gunzip(&zipped), plain.to_vec(), "{path}: the same answer once unzipped");
    }
    let mut stream = get(&http, &format!("{base}/api/v1/events/stream"), &[("accept-encoding", "gzip")]).await;
    assert_eq!(stream.status(), StatusCode::OK);
    assert!(stream.headers().get("content-encoding").is_none(), "a live stream is never buffered into gzip");
    let first = tokio::time::timeout(Duration::from_secs(10), stream.chunk()).await.unwrap().unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("id:"), "events arrive as text: {first:?}");
}

#[tokio::test]
async fn cross_origin_calls_are_allowed_only_from_the_origins_listed() {
    let http = reqwest::Client::new();
    let preflight = |base: String, origin: &'static str| {
        let http = http.clone();
        async move {
            http.request(reqwest::Method::OPTIONS, format!("{base}{BUDGET}"))
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "authorization, idempotency-key, if-match, content-type")
                .send()
                .await
                .unwrap()
        }
    };
    // Off by default: no origin is allowed.
    let closed = Server::start_with(&["demo"]);
    let answer = preflight(closed.api().base().to_owned(), "https://dash.example.org").await;
    assert!(answer.headers().get("access-control-allow-origin").is_none(), "{:?}", answer.headers());

    let open = Server::start_with(&["demo", "--cors-allow-origin", "https://dash.example.org"]);
    let base = open.api().base().to_owned();
    let answer = preflight(base.clone(), "https://dash.example.org").await;
    assert!(answer.status().is_success(), "{}", answer.status());
    assert_eq!(answer.headers()["access-control-allow-origin"], "https://dash.example.org");
    let allowed = answer.headers()["access-control-allow-headers"].to_str().unwrap().to_lowercase();
    for h in ["authorization", "idempotency-key", "if-match", "content-type"] {
        assert!(allowed.contains(h), "{h} in {allowed}");
    }
    let other = preflight(base.clone(), "https://evil.example.net").await;
    assert!(other.headers().get("access-control-allow-origin").is_none(), "{:?}", other.headers());
    // The real call: the page may read the answer and its ETag.
    let read = get(&http, &format!("{base}{BUDGET}"), &[("origin", "https://dash.example.org")]).await;
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(read.headers()["access-control-allow-origin"], "https://dash.example.org");
    assert!(read.headers()["access-control-expose-headers"].to_str().unwrap().to_lowercase().contains("etag"));
}

#[test]
fn an_origin_that_is_not_one_stops_the_server_with_the_reason() {
    let (code, _, stderr) = crate::harness::run_bounded(
        std::process::Command::new(crate::harness::binary()).args([
            "serve",
            "--cors-allow-origin",
            "dash.example.org/app",
        ]),
        Duration::from_secs(30),
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("https://"), "{stderr}");
}

/// Starts and stops each run of [`a_sigterm_as_soon_as_the_server_listens_stops_it_gracefully`].
const SIGTERM_CYCLES: usize = 20;

/// A SIGTERM sent as soon as the server prints its listening line stops it
/// gracefully (exit status 0) every time: the stop signals are taken over
/// before that line. (Before, they were taken when the server first waited
/// for them, after it had built its routes, and a SIGTERM in between ended
/// the process with the signal's default action: seen once in CI.)
#[tokio::test]
async fn a_sigterm_as_soon_as_the_server_listens_stops_it_gracefully() {
    let mut server = Server::start();
    server.stop();
    for _ in 0..SIGTERM_CYCLES {
        server.start_again();
        server.stop();
    }
    assert_eq!(server.starts() as usize, SIGTERM_CYCLES + 1);
}
