//! The live event stream: a client catches up, follows a live write,
//! disconnects, misses some writes, reconnects with `Last-Event-ID` and sees
//! every position exactly once, in order.

use std::time::Duration;

use reqwest::Response;
use serde_json::Value;

use crate::bodies::small_expenditure;
use crate::client::Api;
use crate::harness::ADMIN_TOKEN;
use crate::world::{GRANT_A, World};

/// How long to wait for the next event.
const NEXT_WITHIN: Duration = Duration::from_secs(10);

/// A reader of `text/event-stream`.
pub struct Stream {
    response: Response,
    buffer: Vec<u8>,
}

impl Stream {
    /// Opens the stream, resuming after `last_event_id` when given.
    pub async fn open(api: &Api, token: &str, last_event_id: Option<u64>) -> Self {
        Self::open_path(api, token, "/api/v1/events/stream", last_event_id).await
    }

    /// Opens the stream at `path`, resuming after `last_event_id` when given.
    pub async fn open_path(api: &Api, token: &str, path: &str, last_event_id: Option<u64>) -> Self {
        let mut request = api.http().get(format!("{}{path}", api.base())).bearer_auth(token);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = tokio::time::timeout(NEXT_WITHIN, request.send())
            .await
            .expect("the stream's headers within the deadline")
            .expect("the stream");
        assert_eq!(response.status().as_u16(), 200, "GET {path}");
        let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(content_type.starts_with("text/event-stream"), "content-type {content_type}");
        Self { response, buffer: Vec::new() }
    }

    /// The next event with data: `(id, data)`; comments are skipped.
    pub async fn next(&mut self) -> (u64, Value) {
        loop {
            if let Some(event) = self.take_block() {
                if let Some(event) = event {
                    return event;
                }
                continue;
            }
            let chunk = tokio::time::timeout(NEXT_WITHIN, self.response.chunk())
                .await
                .unwrap_or_else(|_| panic!("no event within {NEXT_WITHIN:?}"))
                .expect("reading the stream")
                .expect("the stream ended");
            self.buffer.extend_from_slice(&chunk);
        }
    }

    /// The next complete block: `Some(None)` for one without data (a
    /// keep-alive comment), `None` when no block is complete yet.
    fn take_block(&mut self) -> Option<Option<(u64, Value)>> {
        // A block ends with a blank line; decode only whole blocks, so a
        // character split across chunks is never mangled.
        let find = |pattern: &[u8]| self.buffer.windows(pattern.len()).position(|w| w == pattern);
        let (end, gap) = [(find(b"\r\n\r\n"), 4), (find(b"\n\n"), 2)]
            .into_iter()
            .filter_map(|(at, gap)| at.map(|at| (at, gap)))
            .min()?;
        let block = String::from_utf8(self.buffer[..end].to_vec()).expect("UTF-8 events");
        self.buffer.drain(..end + gap);
        let mut id = None;
        let mut data = Vec::new();
        for line in block.lines() {
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => id = Some(value.parse::<u64>().unwrap_or_else(|_| panic!("a non-numeric id: {value}"))),
                "data" => data.push(value.to_owned()),
                _ => {}
            }
        }
        if data.is_empty() {
            return Some(None);
        }
        let data: Value =
            serde_json::from_str(&data.join("\n")).unwrap_or_else(|e| panic!("data is not JSON ({e}): {data:?}"));
        let id = id.unwrap_or_else(|| panic!("an event without id: {data}"));
        assert_eq!(data["position"].as_u64(), Some(id), "id vs data.position: {data}");
        assert!(data["stream"].is_string() && data["type"].is_string(), "not an event: {data}");
        Some(Some((id, data)))
    }

    /// Reads until position `head`; returns every event seen.
    pub async fn until(&mut self, head: u64) -> Vec<Value> {
        let mut seen: Vec<Value> = Vec::new();
        while seen.last().and_then(|e| e["position"].as_u64()).is_none_or(|p| p < head) {
            seen.push(self.next().await.1);
        }
        seen
    }
}

/// Every event in the log, from `/api/v1/events`.
pub async fn log(api: &Api) -> Vec<Value> {
    let page = api.get(ADMIN_TOKEN, "/api/v1/events?after=0&limit=1000").await.expect_status(200);
    page.body["events"].as_array().expect("events").clone()
}

/// The positions of `events`.
pub fn positions(events: &[Value]) -> Vec<u64> {
    events.iter().filter_map(|e| e["position"].as_u64()).collect()
}

async fn write(api: &Api, token: &str, n: u32) -> u64 {
    let body =
        api.post(token, &format!("/api/v1/grants/{GRANT_A}/expenditures"), &small_expenditure(n)).await.written(201);
    body["position"].as_u64().expect("a position")
}

#[tokio::test]
async fn a_client_that_reconnects_with_last_event_id_sees_every_position_once_in_order() {
    let w = World::new().await;
    let api = w.api();
    let before = log(&api).await;
    let head = *positions(&before).last().expect("the world wrote events");

    // Catch up, then follow a live write.
    let mut stream = Stream::open(&api, &w.auditor, None).await;
    let mut seen = stream.until(head).await;
    assert_eq!(positions(&seen), positions(&before), "the catch-up");
    let live = write(&api, &w.manager_a, 1).await;
    seen.extend(stream.until(live).await);
    drop(stream);

    // Missed while disconnected.
    let mut missed = Vec::new();
    for n in 2..=4 {
        missed.push(write(&api, &w.manager_a, n).await);
    }
    let last = *positions(&seen).last().expect("seen something");
    let mut stream = Stream::open(&api, ADMIN_TOKEN, Some(last)).await;
    let resumed = stream.until(*missed.last().expect("missed")).await;
    assert!(
        positions(&resumed).first().is_some_and(|p| *p == last + 1),
        "resumed at {:?} after {last}",
        positions(&resumed)
    );
    seen.extend(resumed);
    // And live again on the resumed stream.
    let again = write(&api, &w.manager_a, 5).await;
    seen.extend(stream.until(again).await);

    // Every position exactly once, in order, each as `/events` has it.
    assert_eq!(seen, log(&api).await);
}
