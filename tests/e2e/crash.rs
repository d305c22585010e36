//! Crashes at the HTTP level: the real binary under concurrent keyed
//! writers is killed (SIGKILL) at arbitrary moments, restarted, and the
//! requests that were in flight are retried with their key and body, and
//! with their key and another body. Every 2xx is in the log once, no error
//! answer belongs to a recorded write, every retry gets the truth, the chain
//! verifies and the views equal a replay of the log.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::{Value, json};

use crate::bodies::{award, budget_line, expenditure, programme, workstream};
use crate::client::{Api, eur};
use crate::harness::{ADMIN_TOKEN, Server, binary};

const GRANT: &str = "grant-crash";
/// Kill-and-restart cycles per run (QUALITY.md: at least 30 per CI run).
const CYCLES: u64 = 30;
const WRITERS: u64 = 8;

/// What a client saw for one request.
#[derive(Debug, Clone)]
enum Seen {
    /// A 2xx, with its body.
    Written(Value),
    /// An error answer: status and problem code.
    Refused(u16, String),
    /// No answer: the server died with the request in flight.
    Lost,
}

#[derive(Debug, Clone)]
struct Request {
    id: String,
    key: String,
    body: Value,
}

/// `POST` that reports a dead connection instead of panicking.
async fn post(api: &Api, request: &Request) -> Seen {
    let url = format!("{}/api/v1/grants/{GRANT}/expenditures", api.base());
    let sent = api
        .http()
        .post(url)
        .bearer_auth(ADMIN_TOKEN)
        .header("Idempotency-Key", &request.key)
        .json(&request.body)
        .timeout(Duration::from_secs(30))
        .send()
        .await;
    let Ok(response) = sent else { return Seen::Lost };
    let status = response.status().as_u16();
    let Ok(text) = response.text().await else { return Seen::Lost };
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if (200..300).contains(&status) {
        Seen::Written(body)
    } else {
        Seen::Refused(status, body["code"].as_str().unwrap_or_default().to_owned())
    }
}

fn request(cycle: u64, writer: u64, n: u64) -> Request {
    let id = format!("C{cycle}-W{writer}-{n}");
    let body = expenditure(&id, "WP1-PER", "0.01", "2022-05-02", "sup-crash", &id, None);
    Request { key: format!("key-{id}"), id, body }
}

/// A deterministic spread of kill delays, 5 to 120 ms.
fn kill_after(cycle: u64) -> Duration {
    Duration::from_millis(5 + (cycle.wrapping_mul(2_654_435_761) >> 7) % 116)
}

async fn set_up(api: &Api) {
    let line = budget_line("WP1", "PER", "90000.00", "2022-01-01");
    for (path, body) in [
        ("/api/v1/programmes".to_owned(), programme("prog-crash", "Crash", None)),
        ("/api/v1/grants".to_owned(), award(GRANT, "prog-crash", "100000.00")),
        (format!("/api/v1/grants/{GRANT}/workstreams"), workstream("WP1", "W", "2022-01-01")),
        (format!("/api/v1/grants/{GRANT}/budget-lines"), line),
    ] {
        api.post(ADMIN_TOKEN, &path, &body).await.written(201);
    }
}

/// One cycle's writers, until the server dies under them.
async fn write_until_killed(server: &mut Server, cycle: u64) -> Vec<(Request, Seen)> {
    let tasks: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let api = server.api();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                for n in 0.. {
                    let r = request(cycle, writer, n);
                    let outcome = post(&api, &r).await;
                    let lost = matches!(outcome, Seen::Lost);
                    seen.push((r, outcome));
                    if lost {
                        break;
                    }
                }
                seen
            })
        })
        .collect();
    tokio::time::sleep(kill_after(cycle)).await;
    server.crash_and_restart();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("a writer task"));
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_keyed_writers_loses_nothing_and_answers_only_truths() {
    let mut server = Server::start();
    set_up(&server.api()).await;
    let mut written: HashMap<String, Value> = HashMap::new();
    let mut refused: Vec<(String, u16, String)> = Vec::new();
    let (mut lost, mut requests, mut replays) = (0, 0, 0);
    for cycle in 0..CYCLES {
        let seen = write_until_killed(&mut server, cycle).await;
        requests += seen.len();
        let api = server.api();
        for (r, outcome) in seen {
            match outcome {
                Seen::Written(body) => {
                    written.insert(r.id.clone(), body);
                }
                Seen::Refused(status, code) => refused.push((r.id.clone(), status, code)),
                Seen::Lost => {
                    lost += 1;
                    // The retry with the same key and body gets the truth:
                    // recorded now (or replayed if it was recorded before).
                    let Seen::Written(body) = post(&api, &r).await else {
                        panic!("cycle {cycle}: the retry of {} was not written", r.id)
                    };
                    written.insert(r.id.clone(), body);
                    // The same key with another body is refused, always.
                    let mut other = r.clone();
                    other.body["amount"] = eur("0.02");
                    match post(&api, &other).await {
                        Seen::Refused(422, code) if code == "idempotency-key-reused" => {}
                        seen => panic!("cycle {cycle}: {} reused with another body: {seen:?}", r.id),
                    }
                }
            }
        }
        // A 2xx answered before the crash is answered the same after it.
        if let Some((id, body)) = written.iter().find(|(id, _)| id.starts_with(&format!("C{cycle}-"))) {
            let (writer, n) = parse(id);
            match post(&api, &request(cycle, writer, n)).await {
                Seen::Written(again) => assert_eq!(&again, body, "{id}: the replay is not the first answer"),
                seen => panic!("{id}: {seen:?}"),
            }
            replays += 1;
        }
    }

    let api = server.api();
    let recorded = api.expenditure_ids(GRANT).await;
    let unique: HashSet<&String> = recorded.iter().collect();
    assert_eq!(unique.len(), recorded.len(), "an expenditure was recorded twice");
    for (id, body) in &written {
        assert!(unique.contains(id), "{id} was answered {body} but is not in the log");
    }
    for (id, status, code) in &refused {
        assert!(!unique.contains(id), "{id} was answered {status} {code} but is recorded");
    }
    assert_eq!(unique.len(), written.len(), "the log holds writes no client was told of");

    let verify = api.get(ADMIN_TOKEN, "/api/v1/audit/verify").await.expect_status(200).body;
    assert_eq!(verify["ok"], true, "{verify}");
    let head = verify["head"]["position"].as_u64().expect("a head");
    let live = api.get(ADMIN_TOKEN, &format!("/api/v1/grants/{GRANT}/budget?min_position={head}")).await;
    let live = live.expect_status(200).body;
    let spent = &live["lines"][0]["spent"]["amount"];
    assert_eq!(spent, &json!(format!("{}.{:02}", written.len() / 100, written.len() % 100)), "{live}");
    let data_dir = server.data_dir();
    server.stop();
    let replayed = replay_budget(&data_dir);
    assert_eq!(without_position(live), without_position(replayed), "the live view is not a replay of the log");
    eprintln!(
        "{CYCLES} kill -9 cycles: {requests} requests, {} acknowledged, {lost} in flight and retried, \
         {} refused, {replays} replays checked, 0 lost, 0 duplicated",
        written.len(),
        refused.len()
    );
}

fn parse(id: &str) -> (u64, u64) {
    let mut parts = id.split('-');
    let _cycle = parts.next();
    let writer = parts.next().and_then(|w| w.strip_prefix('W')).and_then(|w| w.parse().ok());
    let n = parts.next().and_then(|n| n.parse().ok());
    (writer.expect("a writer"), n.expect("a number"))
}

/// `grantlog replay --view budget --json` on the stopped server's data.
fn replay_budget(data_dir: &std::path::Path) -> Value {
    let out = std::process::Command::new(binary())
        .args(["replay", "--grant", GRANT, "--view", "budget", "--json", "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("grantlog replay runs");
    assert!(out.status.success(), "replay failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("replay prints JSON")
}

fn without_position(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("position");
    }
    v
}
