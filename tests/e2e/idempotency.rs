//! Retries and optimistic concurrency over HTTP: the same `Idempotency-Key`
//! and body records once and answers the same, also after a restart and a
//! crash; the same key with another body is 422; a stale `If-Match` is 412
//! with the current `ETag`.

use serde_json::json;

use crate::bodies::small_expenditure;
use crate::client::{Api, eur};
use crate::harness::ADMIN_TOKEN;
use crate::world::{GRANT_A, World};

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
