//! The OpenAPI document carries the patterns the server enforces: the
//! document's pattern for amounts, rates and dates is compiled and every
//! sample string is accepted by the server exactly when the document's
//! pattern (and its stated bounds) allow it. Requests go through the real
//! router on a real data directory.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use api::AppState;
use axum::http::{Method, StatusCode};
use events::bounds;
use regex::Regex;
use serde_json::{Value, json};

mod support;

use support::{call, state};

fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    &doc["components"]["schemas"][name]
}

fn pattern(doc: &Value, name: &str) -> Regex {
    Regex::new(schema(doc, name)["pattern"].as_str().unwrap_or_else(|| panic!("{name} has no pattern"))).unwrap()
}

/// Every schema reachable from `value`, references followed once.
fn reachable<'a>(doc: &'a Value, value: &'a Value, seen: &mut Vec<String>, out: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                let name = r.trim_start_matches("#/components/schemas/").to_owned();
                if !seen.contains(&name) {
                    seen.push(name.clone());
                    out.push((name.clone(), schema(doc, &name)));
                    reachable(doc, schema(doc, &name), seen, out);
                }
            }
            for v in map.values() {
                reachable(doc, v, seen, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| reachable(doc, v, seen, out)),
        _ => {}
    }
}

#[test]
fn the_document_patterns_are_the_constants_the_server_matches() {
    let doc = api::openapi::document();
    assert_eq!(schema(&doc, "Amount")["pattern"], bounds::AMOUNT_PATTERN);
    assert_eq!(schema(&doc, "Amount")["maxLength"], bounds::AMOUNT_CHARS_MAX);
    assert_eq!(schema(&doc, "SignedAmount")["pattern"], bounds::SIGNED_AMOUNT_PATTERN);
    assert_eq!(schema(&doc, "Rate")["pattern"], bounds::RATE_PATTERN);
    assert_eq!(schema(&doc, "BusinessDate")["pattern"], bounds::BUSINESS_DATE_PATTERN);
    assert_eq!(schema(&doc, "BusinessDate")["format"], "date");
    let limit = bounds::AMOUNT_UNITS_MAX.to_string();
    assert!(schema(&doc, "Amount")["description"].as_str().unwrap().contains(&limit), "the limit is documented");
    assert!(schema(&doc, "BusinessDate")["description"].as_str().unwrap().contains("1900-01-01"));
    let budget = &doc["paths"]["/api/v1/grants/{grant}/budget"]["get"]["parameters"];
    let as_of = budget.as_array().unwrap().iter().find(|p| p["name"] == "as_of").unwrap();
    assert_eq!(as_of["schema"]["pattern"], bounds::BUSINESS_DATE_PATTERN, "query dates carry the same pattern");
}

#[test]
fn no_request_body_takes_a_lenient_amount_or_date() {
    let doc = api::openapi::document();
    let mut requests = Vec::new();
    let mut seen = Vec::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            reachable(&doc, &op["requestBody"], &mut seen, &mut requests);
        }
    }
    let names: Vec<&str> = requests.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"RecordExpenditure") && names.contains(&"MoneyInput"), "{names:?}");
    for lenient in ["Money", "Conversion", "Currency"] {
        assert!(!names.contains(&lenient), "a request takes {lenient}, which reads stored events leniently");
    }
    let text = Value::Array(requests.iter().map(|(_, s)| (*s).clone()).collect()).to_string();
    let dates = text.matches(r#""format":"date""#).count();
    let patterned = text.matches(&format!(r#""pattern":{}"#, json!(bounds::BUSINESS_DATE_PATTERN))).count();
    assert!(dates > 0);
    assert_eq!(dates, patterned, "every request date carries the date pattern");
}

async fn setup(state: &AppState) {
    let eur = |a: &str| json!({"amount": a, "currency": "EUR"});
    for (path, body) in [
        ("/api/v1/programmes", json!({"id": "P", "name": "P"})),
        (
            "/api/v1/grants",
            json!({"id": "G", "programme": "P", "funder": "FNR", "title": "T", "acronym": "A",
                   "award": eur("1000000.00"), "start": "2022-01-01", "end": "2023-12-31", "rule_set": "FNR-2022"}),
        ),
        ("/api/v1/grants/G/workstreams", json!({"code": "W", "title": "W"})),
        (
            "/api/v1/grants/G/budget-lines",
            json!({"workstream": "W", "category": "PER", "amount": eur("500000.00"), "effective_date": "2022-01-01"}),
        ),
    ] {
        let (status, answer) = call(state, Method::POST, path, Some(&body.to_string())).await;
        assert!(status.is_success(), "{path}: {answer}");
    }
}

#[tokio::test]
async fn the_server_accepts_an_amount_or_a_date_exactly_when_the_document_does() {
    let (state, _dir) = state().await;
    setup(&state).await;
    let doc = api::openapi::document();
    let (amount, date) = (pattern(&doc, "Amount"), pattern(&doc, "BusinessDate"));
    let amounts = ["1.00", "12", "0012.5", "1_000.00", "+5.00", "5.", ".5", "1e3", " 5.00", "5.00 ", "-5.00", "1,5"];
    for (i, text) in amounts.iter().enumerate() {
        let body = json!({"id": format!("XA{i}"), "line": "W-PER", "amount": {"amount": text, "currency": "EUR"},
                          "incurred_on": "2022-03-01", "supplier": "S", "invoice": format!("A{i}")});
        let (status, answer) =
            call(&state, Method::POST, "/api/v1/grants/G/expenditures", Some(&body.to_string())).await;
        assert_eq!(status.is_success(), amount.is_match(text), "{text:?}: {status} {answer}");
        if !status.is_success() {
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert_eq!(answer["errors"][0]["pointer"], "/amount/amount", "{text:?}: {answer}");
        }
    }
    let dates = ["2022-03-02", "2022-3-2", " 2022-03-02", "2022-03-02 ", "+99999-01-01", "2022/03/02", "20220302"];
    for (i, text) in dates.iter().enumerate() {
        let body = json!({"id": format!("XD{i}"), "line": "W-PER", "amount": {"amount": "1.00", "currency": "EUR"},
                          "incurred_on": text, "supplier": "S", "invoice": format!("D{i}")});
        let (status, answer) =
            call(&state, Method::POST, "/api/v1/grants/G/expenditures", Some(&body.to_string())).await;
        assert_eq!(status.is_success(), date.is_match(text), "{text:?}: {status} {answer}");
        if !status.is_success() {
            assert_eq!(answer["errors"][0]["pointer"], "/incurred_on", "{text:?}: {answer}");
        }
        let query = text.replace(' ', "%20").replace('+', "%2B");
        let (status, answer) = call(&state, Method::GET, &format!("/api/v1/grants/G/budget?as_of={query}"), None).await;
        assert_eq!(status == StatusCode::OK, date.is_match(text), "as_of={text:?}: {status} {answer}");
        if status != StatusCode::OK {
            assert_eq!(answer["errors"][0]["pointer"], "?as_of", "{answer}");
        }
    }
    // Within the pattern, the bounds the document states.
    for (text, ok) in [("1900-01-01", true), ("2199-12-31", true), ("1899-12-31", false), ("2200-01-01", false)] {
        let (status, answer) =
            call(&state, Method::GET, &format!("/api/v1/grants/G/timeline?today={text}"), None).await;
        assert_eq!(status == StatusCode::OK, ok, "today={text}: {answer}");
    }
}
