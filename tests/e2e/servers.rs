//! Several servers on one PostgreSQL log (this module runs in `e2e_postgres`
//! only): concurrent writers on three servers, conflicting commands decided
//! once, read-your-writes and SSE resume across servers, one server killed
//! mid-write, and the chain verified at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::json;

use crate::bodies::{commitment, expenditure};
use crate::client::Api;
use crate::harness::{ADMIN_TOKEN, Server, binary};
use crate::sse::{Stream, log, positions};
use crate::world::{GRANT_A, World};

/// Writers per server.
const WRITERS: usize = 4;
/// Writes per writer.
const WRITES: usize = 10;

/// `api` accepts `token`, made through another server a moment ago: a
/// server that does not know a secret looks at the shared table first.
async fn accepted(api: &Api, token: &str) {
    let reply = api.get(token, &format!("/api/v1/grants/{GRANT_A}/budget")).await;
    assert_eq!(reply.status.as_u16(), 200, "{} refused a token made on another server: {}", api.base(), reply.text);
}

fn spend(id: &str, amount: &str) -> serde_json::Value {
    expenditure(id, "WP1-CON", amount, "2022-08-01", "sup-x", &format!("INV-{id}"), None)
}

/// Writes `WRITERS` x `WRITES` expenditures through each server at once;
/// returns the acknowledged ids by server.
async fn write_everywhere(apis: &[Api], token: &str, tag: &str) -> BTreeMap<usize, Vec<(String, u64)>> {
    let mut tasks = Vec::new();
    for (s, api) in apis.iter().enumerate() {
        for w in 0..WRITERS {
            let (api, token, tag) = (api.clone(), token.to_owned(), tag.to_owned());
            tasks.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                for n in 0..WRITES {
                    let id = format!("{tag}-{s}-{w}-{n}");
                    let reply =
                        api.post(&token, &format!("/api/v1/grants/{GRANT_A}/expenditures"), &spend(&id, "1.00")).await;
                    match reply.status.as_u16() {
                        201 => acked.push((id, reply.body["position"].as_u64().expect("a position"))),
                        // Another server kept winning the grant: refused,
                        // recorded nothing (checked below).
                        409 => assert_eq!(reply.body["code"], json!("too-many-conflicts"), "{}", reply.text),
                        other => panic!("server {s}: {other} {}", reply.text),
                    }
                }
                (s, acked)
            }));
        }
    }
    let mut by_server: BTreeMap<usize, Vec<(String, u64)>> = BTreeMap::new();
    for task in tasks {
        let (s, acked) = task.await.expect("a writer");
        by_server.entry(s).or_default().extend(acked);
    }
    by_server
}

#[tokio::test]
async fn three_servers_share_one_log() {
    let w = World::new().await;
    let mut b = w.server.join();
    let c = w.server.join();
    let apis = [w.api(), b.api(), c.api()];
    // A token made on A after B and C started works on them at once.
    let late = apis[0].token("manager-late", "manager", &[crate::world::PROG_A]).await;
    for api in &apis[1..] {
        accepted(api, &late).await;
    }

    // Concurrent writers on all three: every acknowledged write is in the
    // log once, and nothing else is.
    let acked = write_everywhere(&apis, &w.manager_a, "X").await;
    let all: Vec<(String, u64)> = acked.values().flatten().cloned().collect();
    assert!(acked.values().all(|a| !a.is_empty()), "every server wrote: {acked:?}");
    let head = all.iter().map(|(_, p)| *p).max().expect("writes");
    for api in &apis {
        // Read-your-writes on every server, with the position another returned.
        let budget = api
            .get(ADMIN_TOKEN, &format!("/api/v1/grants/{GRANT_A}/budget?min_position={head}"))
            .await
            .expect_status(200);
        assert!(budget.body["position"].as_u64().is_some_and(|p| p >= head), "{}", budget.text);
        let recorded: Vec<String> =
            api.expenditure_ids(GRANT_A).await.into_iter().filter(|id| id.starts_with("X-")).collect();
        let unique: BTreeSet<&String> = recorded.iter().collect();
        assert_eq!(unique.len(), recorded.len(), "an expenditure recorded twice");
        let expected: BTreeSet<&String> = all.iter().map(|(id, _)| id).collect();
        assert_eq!(unique, expected, "{}: the log holds exactly the acknowledged writes", api.base());
    }

    // Each server says how far its views follow the shared log, and how
    // its writer batched.
    for api in &apis {
        let ready = api.get(ADMIN_TOKEN, "/readyz").await.expect_status(200);
        assert_eq!(ready.body["backend"], json!("postgres"), "{}", ready.text);
        assert!(ready.body["lag_events"].as_u64().is_some(), "{}", ready.text);
        let metrics = api.get(ADMIN_TOKEN, "/metrics").await.expect_status(200).text;
        for series in
            ["grantlog_pg_batch_appends_bucket", "grantlog_pg_lock_wait_seconds_bucket", "grantlog_follower_lag_events"]
        {
            assert!(metrics.contains(series), "{} /metrics lacks {series}", api.base());
        }
    }

    // Conflicting commands on two servers: commitments of 6,000 each where
    // 10,000 are available on the line; exactly one wins, the other is
    // refused on the fresh state.
    let path = format!("/api/v1/grants/{GRANT_A}/commitments");
    let (t1, t2) = (
        commitment("PO-T1", "WP1-TRV", "6000.00", "T-1", "2022-08-02"),
        commitment("PO-T2", "WP1-TRV", "6000.00", "T-2", "2022-08-02"),
    );
    let (one, two) = tokio::join!(apis[1].post(&w.manager_a, &path, &t1), apis[2].post(&w.manager_a, &path, &t2));
    let mut statuses = [one.status.as_u16(), two.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 422], "one wins, one is refused: {} / {}", one.text, two.text);
    let refused = if one.status.as_u16() == 422 { &one } else { &two };
    assert_eq!(refused.body["code"], json!("insufficient-available"), "{}", refused.text);

    // SSE: read on B up to a position, write on C, resume on A.
    let mut stream = Stream::open(&apis[1], ADMIN_TOKEN, None).await;
    let first = stream.until(head).await;
    drop(stream);
    let last_seen = *positions(&first).last().expect("events");
    let mut missed = 0;
    for n in 0..5 {
        let id = format!("S-{n}");
        let reply =
            apis[2].post(&w.manager_a, &format!("/api/v1/grants/{GRANT_A}/expenditures"), &spend(&id, "1.00")).await;
        missed = reply.written(201)["position"].as_u64().expect("a position");
    }
    let mut resumed = Stream::open(&apis[0], ADMIN_TOKEN, Some(last_seen)).await;
    let rest = resumed.until(missed).await;
    let mut seen = first;
    seen.extend(rest);
    let everything = log(&apis[0]).await;
    assert_eq!(positions(&seen), positions(&everything), "no gap, no duplicate across servers");

    // B killed while its writers are in flight: what it acknowledged stays,
    // the others go on.
    let api_b = apis[1].clone();
    let token = w.manager_a.clone();
    let writer = tokio::spawn(async move {
        let mut acked = Vec::new();
        for n in 0..200 {
            let id = format!("K-{n}");
            let url = format!("{}/api/v1/grants/{GRANT_A}/expenditures", api_b.base());
            let sent = api_b.http().post(url).bearer_auth(&token).json(&spend(&id, "1.00")).send();
            match tokio::time::timeout(Duration::from_secs(5), sent).await {
                Ok(Ok(reply)) if reply.status().as_u16() == 201 => acked.push(id),
                // Killed: the connection drops; what was not answered 201
                // may or may not be recorded, and is not checked.
                _ => break,
            }
        }
        acked
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.kill_now();
    let acked_by_b = writer.await.expect("the writer");
    assert!(!acked_by_b.is_empty(), "the killed server acknowledged nothing before it died");
    let after = apis[2]
        .post(&w.manager_a, &format!("/api/v1/grants/{GRANT_A}/expenditures"), &spend("AFTER", "1.00"))
        .await
        .written(201);
    let after = after["position"].as_u64().expect("a position");
    for api in [&apis[0], &apis[2]] {
        api.get(ADMIN_TOKEN, &format!("/api/v1/grants/{GRANT_A}/budget?min_position={after}")).await.expect_status(200);
        let ids: BTreeSet<String> = api.expenditure_ids(GRANT_A).await.into_iter().collect();
        for id in &acked_by_b {
            assert!(ids.contains(id), "{id}, acknowledged by the killed server, is missing on {}", api.base());
        }
    }

    // The chain, verified by the CLI against the database.
    let out =
        std::process::Command::new(binary()).arg("verify").args(w.server.log_args()).output().expect("grantlog verify");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "verify: {text} {}", String::from_utf8_lossy(&out.stderr));
    let events = log(&apis[0]).await;
    assert!(events.len() < 1000, "one page of /events holds the whole log");
    let last = positions(&events).last().copied().expect("events");
    assert!(text.starts_with(&format!("ok {} events, head {last}:", events.len())), "verify said {text}");
}

#[tokio::test]
async fn the_first_server_bootstraps_and_loads_the_demo_and_the_next_finds_them() {
    let a = Server::start_with(&["serve", "--demo"]);
    let head = log(&a.api()).await.len();
    assert!(head > 50, "the demo loaded {head} events");
    let b = a.join();
    // B found the log non-empty: it loaded nothing, and it accepts the admin token.
    assert_eq!(log(&b.api()).await.len(), head);
    let reply = b.api().get(ADMIN_TOKEN, "/api/v1/tokens").await.expect_status(200);
    let admins =
        reply.body["tokens"].as_array().map_or(0, |t| t.iter().filter(|t| t["name"] == json!("admin")).count());
    assert_eq!(admins, 1, "one admin token: {}", reply.text);
}
