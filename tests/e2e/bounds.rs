//! Resources are bounded for every caller: connection timeouts and cap,
//! metrics labels, problem bodies on every refusal, private data files.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{ADMIN_TOKEN, Server};

/// The bound on anything the server should do promptly.
const WITHIN: Duration = Duration::from_secs(10);

fn host(server: &Server) -> String {
    server.api().base().trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection; the time it took, or
/// `None` if it was still open at the deadline.
async fn closed_within(socket: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut chunk = [0_u8; 4096];
    loop {
        let left = within.checked_sub(started.elapsed())?;
        match tokio::time::timeout(left, socket.read(&mut chunk)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// One `GET /healthz` on an open connection, kept alive: its status line,
/// or `None` without an answer within `within`.
async fn healthz(socket: &mut TcpStream, within: Duration) -> Option<String> {
    socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").await.ok()?;
    let mut buffer = Vec::new();
    let mut chunk = [0_u8; 4096];
    let read = async {
        loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buffer[..end]).to_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if buffer.len() >= end + 4 + length {
                    return head.lines().next().map(str::to_owned);
                }
            }
            let n = socket.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buffer.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(within, read).await.ok().flatten()
}

#[tokio::test]
async fn a_half_sent_header_is_closed_by_the_server_within_the_header_read_timeout() {
    let server = Server::start_with_env(
        &["serve"],
        &[("GRANTLOG_HEADER_READ_TIMEOUT_MS", "400"), ("GRANTLOG_IDLE_TIMEOUT_MS", "60000")],
    );
    let mut socket = TcpStream::connect(host(&server)).await.unwrap();
    socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ").await.unwrap();
    let took = closed_within(&mut socket, WITHIN).await;
    let took = took.unwrap_or_else(|| panic!("a half-sent header still open after {WITHIN:?}"));
    assert!(took >= Duration::from_millis(300), "closed after only {took:?}");
    // A whole request on a new connection is served as ever.
    let mut socket = TcpStream::connect(host(&server)).await.unwrap();
    let status = healthz(&mut socket, WITHIN).await;
    assert_eq!(status.as_deref(), Some("http/1.1 200 ok"));
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = Server::start_with_env(
        &["serve"],
        &[("GRANTLOG_IDLE_TIMEOUT_MS", "500"), ("GRANTLOG_HEADER_READ_TIMEOUT_MS", "60000")],
    );
    let mut socket = TcpStream::connect(host(&server)).await.unwrap();
    assert_eq!(healthz(&mut socket, WITHIN).await.as_deref(), Some("http/1.1 200 ok"));
    // Kept alive: a second request on it is served.
    assert_eq!(healthz(&mut socket, WITHIN).await.as_deref(), Some("http/1.1 200 ok"));
    let took = closed_within(&mut socket, WITHIN).await;
    let took = took.unwrap_or_else(|| panic!("an idle connection still open after {WITHIN:?}"));
    assert!(took >= Duration::from_millis(400), "closed after only {took:?}");
}

#[tokio::test]
async fn connections_past_the_cap_wait_while_earlier_ones_keep_working() {
    let server = Server::start_with_env(&["serve"], &[("GRANTLOG_CONNECTIONS_MAX", "2")]);
    let mut first = TcpStream::connect(host(&server)).await.unwrap();
    let mut second = TcpStream::connect(host(&server)).await.unwrap();
    assert_eq!(healthz(&mut first, WITHIN).await.as_deref(), Some("http/1.1 200 ok"));
    assert_eq!(healthz(&mut second, WITHIN).await.as_deref(), Some("http/1.1 200 ok"));
    // The third is not accepted while two are open (its connect succeeds in
    // the listen backlog; its request waits).
    let mut third = TcpStream::connect(host(&server)).await.unwrap();
    let waiting = tokio::spawn(async move {
        let status = healthz(&mut third, WITHIN).await;
        (status, Instant::now())
    });
    let refused_until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < refused_until {
        assert!(!waiting.is_finished(), "a third connection was served past a cap of 2");
        assert_eq!(healthz(&mut first, WITHIN).await.as_deref(), Some("http/1.1 200 ok"), "earlier connections work");
    }
    let closed_at = Instant::now();
    drop(first);
    let (status, answered_at) = tokio::time::timeout(WITHIN, waiting).await.unwrap().unwrap();
    assert_eq!(status.as_deref(), Some("http/1.1 200 ok"), "the waiting connection is served once one closes");
    assert!(answered_at >= closed_at);
    assert_eq!(healthz(&mut second, WITHIN).await.as_deref(), Some("http/1.1 200 ok"));
}

/// The label values of `name` in a Prometheus text exposition.
fn label_values(text: &str, name: &str) -> BTreeSet<String> {
    let needle = format!("{name}=\"");
    text.lines()
        .filter(|l| l.starts_with("grantlog_http_request_duration_seconds"))
        .filter_map(|l| l.split_once(&needle).and_then(|(_, rest)| rest.split('"').next()).map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn random_methods_and_paths_add_no_metrics_series() {
    let server = Server::start();
    let api = server.api();
    for n in 0..300_u32 {
        let method = Method::from_bytes(format!("M{n:04}X").as_bytes()).unwrap();
        let reply = api.send(method, &format!("/random/{n}"), None, None, &[]).await;
        assert!(reply.status.is_client_error(), "{}: {}", reply.request, reply.status);
        api.send(Method::GET, &format!("/nowhere-{n}"), None, None, &[]).await;
    }
    let metrics = api.send(Method::GET, "/metrics", None, None, &[]).await.expect_status(200);
    let methods = label_values(&metrics.text, "method");
    let known: BTreeSet<String> = ["GET", "OTHER"].iter().map(|m| (*m).to_owned()).collect();
    assert!(methods.is_subset(&known), "method labels: {methods:?}");
    assert!(methods.contains("OTHER"));
    let routes = label_values(&metrics.text, "route");
    assert!(routes.iter().all(|r| r == "unmatched" || r.starts_with('/') && !r.contains("nowhere")), "{routes:?}");
    assert!(metrics.text.len() < 64 * 1024, "/metrics is {} bytes after 600 odd requests", metrics.text.len());
}

#[tokio::test]
async fn every_refusal_is_problem_json_404_405_413_414_431_included() {
    let server = Server::start();
    let api = server.api();
    api.send(Method::GET, "/no/such/route", None, None, &[]).await.problem(404, "not-found");
    let reply = api.send(Method::PUT, "/healthz", None, None, &[]).await;
    reply.problem(405, "method-not-allowed");
    assert!(reply.header("allow").is_some_and(|a| a.contains("GET")), "405 without Allow: {:?}", reply.headers);
    let big = vec![b' '; 200 * 1024];
    api.send(Method::POST, "/api/v1/programmes", Some(ADMIN_TOKEN), Some(big), &[])
        .await
        .problem(413, "payload-too-large");
    let long = format!("/healthz?{}", "a".repeat(9 * 1024));
    api.send(Method::GET, &long, None, None, &[]).await.problem(414, "uri-too-long");
    let huge = "h".repeat(40 * 1024);
    api.send(Method::GET, "/healthz", None, None, &[("x-big", &huge)]).await.problem(431, "headers-too-large");
    let names: Vec<(String, String)> = (0..150).map(|n| (format!("x-h{n}"), "v".to_owned())).collect();
    let many: Vec<(&str, &str)> = names.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    api.send(Method::GET, "/healthz", None, None, &many).await.problem(431, "headers-too-large");
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_directory_and_its_files_are_the_owners_only() {
    use std::os::unix::fs::PermissionsExt;
    let server = Server::start_with(&["serve"]);
    // A write makes the log's -wal and -shm exist.
    let api = server.api();
    api.post(ADMIN_TOKEN, "/api/v1/programmes", &serde_json::json!({"id": "p-modes", "name": "m"})).await.written(201);
    let dir = server.data_dir();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        seen.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    // On PostgreSQL the data directory holds only this server's views.
    let files: &[&str] = match crate::BACKEND {
        crate::harness::Backend::Sqlite => {
            &["events.sqlite", "views.sqlite", "api.sqlite", "events.sqlite-wal", "api.sqlite-wal"]
        }
        crate::harness::Backend::Postgres => &["views.sqlite"],
    };
    for name in files {
        assert!(seen.iter().any(|s| s == name), "{name} missing from {seen:?}");
    }
    if crate::BACKEND == crate::harness::Backend::Postgres {
        // No empty log or token file that a command pointed here by mistake
        // would read as an empty log.
        for name in ["events.sqlite", "api.sqlite"] {
            assert!(!seen.iter().any(|s| s == name), "{name} in a PostgreSQL server's directory: {seen:?}");
        }
    }
}

#[tokio::test]
async fn logs_written_to_a_file_carry_no_colour_codes() {
    let server = Server::start();
    server.api().get(ADMIN_TOKEN, "/api/v1/grants/nope/budget").await.expect_status(404);
    let logs = server.logs();
    assert!(logs.contains("serving"), "the server logged its start: {logs}");
    assert!(!logs.contains('\u{1b}'), "ANSI escapes in a log file: {logs:?}");
}
