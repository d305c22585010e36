//! The Rust client crate (`crates/client`) against the real server: typed
//! requests and views, `Idempotency-Key` and `If-Match`, problems as a
//! typed error.

use chrono::NaiveDate;
use grantlog_client::{Client, ClientError, ViewQuery, WriteOptions, dto};
use rust_decimal::Decimal;
use serde_json::json;

use crate::harness::{ADMIN_TOKEN, Server};

const GRANT: &str = "nctcr-2022";

fn expenditure(id: &str, line: &str, amount: &str) -> dto::RecordExpenditure {
    serde_json::from_value(json!({
        "id": id, "line": line, "amount": {"amount": amount, "currency": "EUR"},
        "incurred_on": "2022-12-01", "supplier": "SUP-LAB", "invoice": format!("INV-{id}"),
    }))
    .unwrap()
}

fn cents(units: i64) -> Decimal {
    Decimal::new(units, 2)
}

fn problem(result: Result<impl std::fmt::Debug, ClientError>) -> grantlog_client::Problem {
    match result {
        Err(ClientError::Problem { problem, .. }) => *problem,
        other => panic!("expected a problem, got {other:?}"),
    }
}

#[tokio::test]
async fn the_client_reads_typed_views_writes_once_per_key_and_gets_typed_problems() {
    let server = Server::start_with(&["demo"]);
    let client = Client::new(server.api().base(), ADMIN_TOKEN).unwrap();
    let as_of = ViewQuery::as_of(NaiveDate::from_ymd_opt(2022, 9, 30).unwrap());

    let budget = client.budget(GRANT, &as_of).await.unwrap();
    assert_eq!(budget.spent.amount(), cents(5_329_785), "docs/scenario.md: spent 53,297.85 as of 2022-09-30");
    assert_eq!(budget.indirect.accrued.amount(), cents(985_957));
    let timeline = client.timeline(GRANT, &as_of).await.unwrap();
    assert!(!timeline.milestones.is_empty());
    let programmes = client.programmes().await.unwrap();
    assert_eq!(programmes.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), ["nctcr"]);
    let portfolio = client.portfolio("nctcr", &as_of).await.unwrap();
    assert!(portfolio.view.grants.iter().any(|g| g.grant.as_str() == GRANT));

    // A keyed write: once, then its first answer replayed.
    let before = client.budget(GRANT, &ViewQuery::default()).await.unwrap();
    let line = |b: &grantlog_client::BudgetView| {
        b.lines.iter().find(|l| l.line.as_str() == "FP1-CON").map(|l| l.spent.amount()).unwrap()
    };
    let body = expenditure("E-RC-1", "FP1-CON", "120.00");
    let key = WriteOptions::keyed("rust-client-1");
    let first = client.record_expenditure(GRANT, &body, &key).await.unwrap();
    assert!(!first.replayed);
    assert_eq!(first.version, Some(first.answer.version), "the ETag is the grant's version");
    let again = client.record_expenditure(GRANT, &body, &key).await.unwrap();
    assert!(again.replayed, "the same request with the key is the first answer, replayed");
    assert_eq!(again.answer, first.answer);
    let after = client.budget(GRANT, &ViewQuery::at_position(first.answer.position)).await.unwrap();
    assert_eq!(line(&after) - line(&before), cents(12_000), "recorded once: 120.00");

    // If-Match: the version just answered proceeds, a stale one is 412 with the grant's version.
    let next = client
        .record_expenditure(
            GRANT,
            &expenditure("E-RC-2", "FP1-CON", "1.00"),
            &WriteOptions::default().if_version(first.answer.version),
        )
        .await
        .unwrap();
    let stale = problem(
        client
            .record_expenditure(
                GRANT,
                &expenditure("E-RC-3", "FP1-CON", "1.00"),
                &WriteOptions::default().if_version(first.answer.version),
            )
            .await,
    );
    assert_eq!((stale.status, stale.code.as_str()), (412, "precondition-failed"));
    assert_eq!(stale.members["current_version"], json!(next.answer.version));

    // A rule of the grant: a typed problem naming the field, its type resolvable.
    let refused = problem(
        client.record_expenditure(GRANT, &expenditure("E-RC-4", "NO-SUCH", "1.00"), &WriteOptions::default()).await,
    );
    assert_eq!((refused.status, refused.code.as_str()), (422, "unknown-line"));
    assert_eq!(refused.errors[0].pointer, "/line");
    assert_eq!(refused.problem_type, "/problems/unknown-line");

    // Another key with another request is refused, naming the key.
    let reused = problem(client.record_expenditure(GRANT, &expenditure("E-RC-5", "FP1-CON", "2.00"), &key).await);
    assert_eq!(reused.code, "idempotency-key-reused");

    // A viewer's token: typed reads work, writes are refused with 403.
    let viewer: dto::CreateToken =
        serde_json::from_value(json!({"name": "rc-viewer", "role": "viewer", "programmes": ["nctcr"]})).unwrap();
    let created = client.create_token(&viewer).await.unwrap();
    let as_viewer = client.with_token(created.token);
    assert_eq!(as_viewer.budget(GRANT, &as_of).await.unwrap().spent, budget.spent);
    let forbidden = problem(
        as_viewer.record_expenditure(GRANT, &expenditure("E-RC-6", "FP1-CON", "1.00"), &WriteOptions::default()).await,
    );
    assert_eq!((forbidden.status, forbidden.code.as_str()), (403, "forbidden"));
    client.revoke_token("rc-viewer").await.unwrap();
    let revoked = problem(as_viewer.budget(GRANT, &as_of).await);
    assert_eq!(revoked.status, 401);

    let verified = client.verify(None).await.unwrap();
    assert!(verified.ok);
    assert_eq!(client.ready().await.unwrap().status, "ok");
}
