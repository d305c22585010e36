//! Retries and optimistic concurrency over HTTP: the same `Idempotency-Key`
//! and body records once and answers the same, also after a restart, a
//! crash and the loss of the API's own file; the same key with another
//! request is 422, also in parallel and across grants; a stale `If-Match`
//! is 412 with the current `ETag`.

use serde_json::{Value, json};

use crate::bodies::{budget_line, commitment_from, programme, small_expenditure, workstream};
use crate::client::{Api, eur};
use crate::harness::ADMIN_TOKEN;
use crate::world::{GRANT_A, GRANT_B, World};

fn expenditures() -> String {
    format!("/api/v1/grants/{GRANT_A}/expenditures")
}

async fn events(api: &Api) -> usize {
    api.history(ADMIN_TOKEN, GRANT_A).await.len()
}

#[tokio::test]
async fn a_retried_write_records_once_and_answers_the_same_even_after_restarts() {
    let mut w = World::new().await;
    let token = w.manager_a.clone();
    let api = w.api();
    let body = small_expenditure(1);
    let key = [("Idempotency-Key", "retry-expenditure-1")];
    let before = events(&api).await;

    let first = api.post_with(&token, &expenditures(), &body, &key).await;
    let first_body = first.clone().written(201);
    assert_eq!(events(&api).await, before + 1);
    let again = api.post_with(&token, &expenditures(), &body, &key).await;
    assert_eq!((again.status, &again.body), (first.status, &first_body), "the retry's answer: {}", again.text);
    assert_eq!(again.etag(), first.etag());
    assert_eq!(events(&api).await, before + 1, "the retry recorded again");

    // The same key with another body is refused, recording nothing.
    let mut other = body.clone();
    other["amount"] = eur("2.00");
    api.post_with(&token, &expenditures(), &other, &key).await.problem(422, "idempotency-key-reused");
    assert_eq!(events(&api).await, before + 1);

    // Another key is another request: the same expenditure id now exists.
    let reply = api.post_with(&token, &expenditures(), &body, &[("Idempotency-Key", "retry-expenditure-2")]).await;
    reply.problem(409, "expenditure-exists");

    for crash in [false, true] {
        if crash {
            w.server.crash_and_restart();
        } else {
            w.server.restart();
        }
        let api = w.api();
        let again = api.post_with(&token, &expenditures(), &body, &key).await;
        assert_eq!(
            (again.status, &again.body),
            (first.status, &first_body),
            "the retry after a {} restart: {}",
            if crash { "crash" } else { "graceful" },
            again.text
        );
        api.post_with(&token, &expenditures(), &other, &key).await.problem(422, "idempotency-key-reused");
        assert_eq!(events(&api).await, before + 1, "recorded again after a restart");
    }
    // The write itself survived both restarts.
    let position = first_body["position"].as_u64().expect("a position");
    let path = format!("/api/v1/grants/{GRANT_A}/budget?min_position={position}");
    let budget = w.api().get(&token, &path).await.expect_status(200).body;
    let con = budget["lines"].as_array().and_then(|l| l.iter().find(|l| l["line"] == "WP1-CON")).expect("WP1-CON");
    assert_eq!(con["spent"]["amount"], "1.00", "{con}");
}

#[tokio::test]
async fn a_stale_if_match_is_412_with_the_current_etag() {
    let w = World::new().await;
    let api = w.api();
    let token = w.manager_a.as_str();
    let version = api.version(GRANT_A).await;

    for stale in [format!("\"{}\"", version - 1), format!("\"{}\"", version + 5)] {
        let reply = api.post_with(token, &expenditures(), &small_expenditure(1), &[("If-Match", &stale)]).await;
        let problem = reply.problem(412, "precondition-failed");
        assert_eq!(problem["current_version"].as_u64(), Some(version), "{}", reply.text);
        assert_eq!(reply.etag(), Some(version), "the 412's ETag");
        assert_eq!(api.version(GRANT_A).await, version, "a 412 recorded something");
    }

    let current = format!("\"{version}\"");
    let body =
        api.post_with(token, &expenditures(), &small_expenditure(1), &[("If-Match", &current)]).await.written(201);
    assert_eq!(body["version"].as_u64(), Some(version + 1));
    // The ETag of that answer is good for the next write, and only once.
    let next = format!("\"{}\"", version + 1);
    api.post_with(token, &expenditures(), &small_expenditure(2), &[("If-Match", &next)]).await.written(201);
    let reply = api.post_with(token, &expenditures(), &small_expenditure(3), &[("If-Match", &next)]).await;
    reply.problem(412, "precondition-failed");
    let close = json!({"effective_date": "2022-07-10"});
    let path = format!("/api/v1/grants/{GRANT_A}/reporting-periods/P1/close");
    api.post_with(token, &path, &close, &[("If-Match", &next)]).await.problem(412, "precondition-failed");
}

#[tokio::test]
async fn if_match_is_read_as_rfc_9110_says_weak_tags_never_match_and_a_list_matches_any() {
    let w = World::new().await;
    let api = w.api();
    let token = w.manager_a.as_str();
    let version = api.version(GRANT_A).await;

    // A weak tag of the current version does not match (strong comparison).
    let weak = format!("W/\"{version}\"");
    let reply = api.post_with(token, &expenditures(), &small_expenditure(1), &[("If-Match", &weak)]).await;
    let problem = reply.problem(412, "precondition-failed");
    assert_eq!(problem["current_version"].as_u64(), Some(version), "{}", reply.text);
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert_eq!(detail, format!("the grant is at version {version}, not {version}"), "{}", reply.text);
    assert_eq!(api.version(GRANT_A).await, version, "a 412 recorded something");

    // A list matches when any strong tag is the grant's version.
    let stale = format!("\"{}\", W/\"{}\"", version - 1, version);
    let reply = api.post_with(token, &expenditures(), &small_expenditure(1), &[("If-Match", &stale)]).await;
    let problem = reply.problem(412, "precondition-failed");
    assert!(!problem["detail"].as_str().unwrap_or_default().contains("Some("), "{}", reply.text);
    let list = format!("\"{}\", \"{version}\"", version - 1);
    let body = api.post_with(token, &expenditures(), &small_expenditure(1), &[("If-Match", &list)]).await.written(201);
    assert_eq!(body["version"].as_u64(), Some(version + 1));

    // What is not a list of entity tags is 400, naming the header.
    for bad in ["7", "\"7", "W/7", "\"x\""] {
        let reply = api.post_with(token, &expenditures(), &small_expenditure(2), &[("If-Match", bad)]).await;
        reply.problem(400, "invalid-query");
        assert_eq!(reply.body["errors"][0]["pointer"], json!("If-Match"), "{bad}: {}", reply.text);
    }
}

fn expenditure_on(grant: &str) -> String {
    format!("/api/v1/grants/{grant}/expenditures")
}

fn spend(id: &str, amount: &str) -> Value {
    crate::bodies::expenditure(id, "WP1-PER", amount, "2022-03-01", "sup-race", id, None)
}

/// Two requests with one key and different bodies, in parallel on one grant
/// and across two grants: one is recorded and answered 201, the other is
/// 422 `idempotency-key-reused`, every round; nothing else is recorded.
#[tokio::test]
async fn one_key_sent_in_parallel_with_two_requests_has_one_effect() {
    let w = World::new().await;
    let (api, other) = (w.api(), w.api());
    let rounds = 40;
    for round in 0..rounds {
        let key = format!("race-{round}");
        let headers = [("Idempotency-Key", key.as_str())];
        // Even rounds: one grant, two bodies. Odd rounds: the same body shape
        // on two grants (an admin may write both).
        let (a_grant, b_grant) = if round % 2 == 0 { (GRANT_A, GRANT_A) } else { (GRANT_A, GRANT_B) };
        let (a_id, b_id) = (format!("RA-{round}"), format!("RB-{round}"));
        let a_body = spend(&a_id, "1.00");
        let b_body = spend(&b_id, "2.00");
        let (a_path, b_path) = (expenditure_on(a_grant), expenditure_on(b_grant));
        let (a, b) = tokio::join!(
            api.post_with(ADMIN_TOKEN, &a_path, &a_body, &headers),
            other.post_with(ADMIN_TOKEN, &b_path, &b_body, &headers),
        );
        let statuses = [a.status.as_u16(), b.status.as_u16()];
        assert!(
            statuses == [201, 422] || statuses == [422, 201],
            "round {round}: {statuses:?}: {} / {}",
            a.text,
            b.text
        );
        let loser = if a.status == 422 { &a } else { &b };
        loser.problem(422, "idempotency-key-reused");
        let mut recorded = api.expenditure_ids(a_grant).await;
        if b_grant != a_grant {
            recorded.extend(api.expenditure_ids(b_grant).await);
        }
        let winners = recorded.iter().filter(|id| **id == a_id || **id == b_id).count();
        assert_eq!(winners, 1, "round {round}: recorded {recorded:?}");
        let winner_id = if a.status == 201 { &a_id } else { &b_id };
        assert!(recorded.contains(winner_id), "round {round}: the 201 is not what was recorded");
    }
}

/// The same request sent several times at once: one effect; one answer is
/// the first, the others are it again with `Idempotent-Replayed: true`.
#[tokio::test]
async fn one_request_sent_in_parallel_records_once_and_every_answer_is_the_first() {
    let w = World::new().await;
    let clients: Vec<Api> = (0..6).map(|_| w.api()).collect();
    for round in 0..10 {
        let key = format!("same-{round}");
        let body = spend(&format!("S-{round}"), "3.00");
        let path = expenditure_on(GRANT_A);
        let headers = [("Idempotency-Key", key.as_str())];
        let replies =
            futures_util::future::join_all(clients.iter().map(|c| c.post_with(&w.manager_a, &path, &body, &headers)))
                .await;
        let first = replies.iter().find(|r| r.header("idempotent-replayed").is_none()).expect("an original answer");
        let originals = replies.iter().filter(|r| r.header("idempotent-replayed").is_none()).count();
        assert_eq!(originals, 1, "round {round}: {:?}", replies.iter().map(|r| &r.text).collect::<Vec<_>>());
        for r in &replies {
            assert_eq!((r.status.as_u16(), &r.body, r.etag()), (201, &first.body, first.etag()), "{}", r.text);
        }
        let ids = clients[0].expenditure_ids(GRANT_A).await;
        assert_eq!(ids.iter().filter(|id| **id == format!("S-{round}")).count(), 1);
    }
}

/// The key's record is the log: with the API's own file lost (and the
/// token made again under its name), a retry still gets the first answer
/// (status, ETag, body, `Idempotent-Replayed`), another request with the
/// key is still 422, and a replay is not counted as an appended event.
#[tokio::test]
async fn a_key_is_remembered_by_the_log_when_the_api_file_is_lost() {
    let mut w = World::new().await;
    let api = w.api();
    let body = small_expenditure(7);
    let key = [("Idempotency-Key", "kept-by-the-log")];
    let first = api.post_with(&w.manager_a, &expenditures(), &body, &key).await;
    let first_body = first.clone().written(201);
    assert_eq!(first.header("idempotent-replayed"), None);
    let appended_before = appended_total(&api).await;
    let again = api.post_with(&w.manager_a, &expenditures(), &body, &key).await;
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(appended_total(&api).await, appended_before, "a replay was counted as appended");

    w.server.stop();
    for name in ["api.sqlite", "api.sqlite-wal", "api.sqlite-shm"] {
        let _ = std::fs::remove_file(w.server.data_dir().join(name));
    }
    w.server.start_again();
    let api = w.api();
    // On PostgreSQL the tokens are in the database, not in the lost file.
    let token = match crate::BACKEND {
        crate::harness::Backend::Sqlite => api.token("manager-a", "manager", &[crate::world::PROG_A]).await,
        crate::harness::Backend::Postgres => w.manager_a.clone(),
    };
    let again = api.post_with(&token, &expenditures(), &body, &key).await;
    assert_eq!((again.status.as_u16(), &again.body, again.etag()), (201, &first_body, first.etag()), "{}", again.text);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let mut other = body.clone();
    other["amount"] = eur("9.00");
    api.post_with(&token, &expenditures(), &other, &key).await.problem(422, "idempotency-key-reused");
    // The same key on another route is another request too.
    let commitment = commitment_from("PO-K", "WP1-CON", "5.00", "s", "r", "2022-01-01");
    let path = format!("/api/v1/grants/{GRANT_A}/commitments");
    api.post_with(&token, &path, &commitment, &key).await.problem(422, "idempotency-key-reused");
    let recorded = api.expenditure_ids(GRANT_A).await;
    assert_eq!(recorded.iter().filter(|id| **id == body["id"].as_str().unwrap()).count(), 1, "{recorded:?}");
}

/// `grantlog_events_appended_total` from `/metrics`.
async fn appended_total(api: &Api) -> u64 {
    let text = api.get(ADMIN_TOKEN, "/metrics").await.expect_status(200).text;
    text.lines()
        .find(|l| l.starts_with("grantlog_events_appended_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// `POST` with a key until the answer is not a request timeout (a timed-out
/// request that never reached the log may be retried with its key).
async fn post_until_answered(api: &Api, path: &str, body: &Value, key: &str) -> crate::client::Reply {
    loop {
        let reply = api.post_with(ADMIN_TOKEN, path, body, &[("Idempotency-Key", key)]).await;
        if reply.body["code"] != "request-timeout" {
            return reply;
        }
    }
}

/// With a request timeout far shorter than a durable commit, a write may be
/// answered 503 `timeout` only if it never reached the log: once submitted,
/// it is answered with what the log did. Every 201 is in the log and no
/// timeout answer belongs to a recorded write.
#[tokio::test]
async fn a_timed_out_answer_never_belongs_to_a_recorded_write() {
    let server = crate::harness::Server::start_with(&["serve", "--request-timeout-ms", "1"]);
    let api = server.api();
    let setup: [(&str, Value); 4] = [
        ("/api/v1/programmes", programme("prog-t", "T", None)),
        ("/api/v1/grants", crate::bodies::award("grant-t", "prog-t", "100000.00")),
        ("/api/v1/grants/grant-t/workstreams", workstream("WP1", "W", "2022-01-01")),
        ("/api/v1/grants/grant-t/budget-lines", budget_line("WP1", "PER", "90000.00", "2022-01-01")),
    ];
    for (i, (path, body)) in setup.iter().enumerate() {
        post_until_answered(&api, path, body, &format!("setup-{i}")).await.written(201);
    }
    let writers = 8;
    let per_writer = 40;
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let api = server.api();
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for i in 0..per_writer {
                    let id = format!("T-{w}-{i}");
                    let reply = api
                        .post_with(
                            ADMIN_TOKEN,
                            &expenditure_on("grant-t"),
                            &spend(&id, "1.00"),
                            &[("Idempotency-Key", &id)],
                        )
                        .await;
                    answers.push((id, reply.status.as_u16(), reply.body["code"].clone()));
                }
                answers
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.extend(t.await.expect("a writer"));
    }
    let history = get_until_answered(&api, "/api/v1/grants/grant-t/history?limit=1000").await;
    let events = history.body["events"].as_array().cloned().unwrap_or_default();
    let recorded: Vec<String> =
        events.iter().filter_map(|e| e["data"]["expenditure_id"].as_str().map(str::to_owned)).collect();
    let (mut created, mut timed_out) = (0, 0);
    for (id, status, code) in &answers {
        match status {
            201 => {
                created += 1;
                assert!(recorded.contains(id), "{id} was answered 201 but is not in the log");
            }
            503 => {
                timed_out += 1;
                assert!(!recorded.contains(id), "{id} was answered 503 {code} but is recorded");
            }
            other => panic!("{id}: unexpected {other} {code}"),
        }
    }
    assert!(created > 0, "nothing was recorded: {answers:?}");
    eprintln!("{created} writes recorded, {timed_out} timed out before reaching the log");
}

/// `GET` (as the admin) until the answer is not a request timeout.
async fn get_until_answered(api: &Api, path: &str) -> crate::client::Reply {
    loop {
        let reply = api.get(ADMIN_TOKEN, path).await;
        if reply.body["code"] != "request-timeout" {
            return reply.expect_status(200);
        }
    }
}
