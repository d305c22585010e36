//! The dashboard in a real browser: Debian's headless Chromium driven over
//! WebDriver ([`crate::webdriver`]) against the real server with the NCTCR
//! demo. Each test signs in as a user would (pasting a token) and reads
//! what the page shows.
//!
//! With `GRANTLOG_SCREENSHOTS=<dir>` set, [`every_page_renders_for_an_admin_and_on_a_phone`]
//! also saves a PNG of each page there (`scripts/screenshots.sh` does this
//! for `docs/screenshots/`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::client::Api;
use crate::harness::{ADMIN_TOKEN, Server};
use crate::webdriver::{Browser, WAIT};

const GRANT: &str = "nctcr-2022";
/// Longer than any page load takes, shorter than a stalled one.
const STALLED: Duration = Duration::from_secs(3);
/// How soon a write by another client must show on an open page.
const LIVE_WITHIN: Duration = Duration::from_secs(1);

async fn signed_in(server: &Server, token: &str) -> Browser {
    let browser = Browser::start(1280, 1000).await;
    browser.goto(&format!("{}/", server.api().base())).await;
    browser.fill("#signin-token", token).await;
    let submit = browser.find("#signin-submit").await;
    browser.click(&submit).await;
    browser.wait_ready("portfolio").await;
    browser
}

async fn open(browser: &Browser, server: &Server, hash: &str, page: &str) {
    browser.goto(&format!("{}/{hash}", server.api().base())).await;
    browser.wait_ready(page).await;
}

/// A tile's raw value (`data-value`), as the page rendered it.
async fn figure(browser: &Browser, name: &str) -> String {
    let e = browser.find(&format!("[data-figure=\"{name}\"]")).await;
    browser.attr(&e, "data-value").await.unwrap_or_else(|| panic!("tile {name} has no data-value"))
}

async fn position(browser: &Browser) -> u64 {
    let v = browser.execute("return document.getElementById('app').dataset.position;", json!([])).await;
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn expenditure(id: &str, amount: &str) -> Value {
    json!({"id": id, "line": "FP1-CON", "amount": {"amount": amount, "currency": "EUR"},
           "incurred_on": "2022-12-01", "supplier": "SUP-LAB", "invoice": format!("INV-{id}")})
}

async fn budget(api: &Api, query: &str) -> Value {
    api.get(ADMIN_TOKEN, &format!("/api/v1/grants/{GRANT}/budget{query}")).await.expect_status(200).body
}

#[tokio::test]
async fn a_manager_signs_in_and_sees_the_nctcr_books_as_of_30_september() {
    let server = Server::start_with(&["demo"]);
    let manager = server.api().token("pm-browser", "manager", &["nctcr"]).await;
    let browser = signed_in(&server, &manager).await;
    // The session is an HttpOnly cookie: the page's scripts never see it
    // nor the token.
    let cookies = browser.cookies().await;
    let session = cookies.iter().find(|c| c["name"] == json!("grantlog_session")).expect("a session cookie");
    assert_eq!((&session["httpOnly"], &session["sameSite"]), (&json!(true), &json!("Strict")), "{session}");
    let visible = browser
        .execute("return document.cookie + JSON.stringify(localStorage) + JSON.stringify(sessionStorage);", json!([]))
        .await;
    assert!(!visible.as_str().unwrap_or_default().contains(&manager), "the token is kept nowhere the page can read");

    open(&browser, &server, &format!("#/grants/{GRANT}?as_of=2022-09-30"), "grant").await;
    // docs/scenario.md's figures for the NCTCR grant as of 2022-09-30.
    assert_eq!(figure(&browser, "spent").await, "53297.85");
    assert_eq!(figure(&browser, "indirect").await, "9859.57");
    assert_eq!(figure(&browser, "burn_index").await, "0.285");
    assert_eq!(figure(&browser, "award").await, "250000.00");
    let text = browser.text(&browser.find("[data-figure=\"spent\"]").await).await;
    assert!(text.contains("53,297.85") && text.contains("EUR"), "money is shown with its currency: {text}");

    // Sign-out ends the session on the server: the cookie no longer works.
    let cookie = format!("grantlog_session={}", session["value"].as_str().unwrap());
    let signout = browser.find("#signout").await;
    browser.click(&signout).await;
    browser.find("#signin-token").await;
    let reply =
        server.api().send(reqwest::Method::GET, "/api/v1/session", None, None, &[("cookie", cookie.as_str())]).await;
    reply.problem(401, "unauthorized");
}

#[tokio::test]
async fn a_write_by_another_client_shows_within_a_second_and_as_of_and_known_at_re_render() {
    let server = Server::start_with(&["demo"]);
    let api = server.api();
    let browser = signed_in(&server, ADMIN_TOKEN).await;
    open(&browser, &server, &format!("#/grants/{GRANT}"), "grant").await;
    let before = figure(&browser, "spent").await;
    let known_before = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;

    // Another client writes; the open page follows its live stream.
    let written = api
        .post_with(
            ADMIN_TOKEN,
            &format!("/api/v1/grants/{GRANT}/expenditures"),
            &expenditure("E-LIVE-1", "1000.00"),
            &[("idempotency-key", "live-1")],
        )
        .await
        .written(201);
    let at = Instant::now();
    let wanted = written["position"].as_u64().unwrap();
    let script = "return Number(document.getElementById('app').dataset.position) >= arguments[0] && document.body.dataset.state === 'ready';";
    browser.wait_for("the write on the open page", script, json!([wanted]), WAIT).await;
    let shown_after = at.elapsed();
    let after = budget(&api, "").await;
    assert_eq!(figure(&browser, "spent").await, after["spent"]["amount"].as_str().unwrap());
    assert_ne!(figure(&browser, "spent").await, before);
    assert!(shown_after <= LIVE_WITHIN, "the write showed after {shown_after:?}");

    // As of a date: the figures re-render, and the URL carries the choice.
    browser.set_value("#as-of", "2022-06-30").await;
    let apply = browser.find("#view-apply").await;
    browser.click(&apply).await;
    browser.wait_for("as_of in the URL", "return location.hash.includes('as_of=2022-06-30');", json!([]), WAIT).await;
    browser.wait_ready("grant").await;
    let june = budget(&api, "?as_of=2022-06-30").await;
    assert_eq!(figure(&browser, "spent").await, june["spent"]["amount"].as_str().unwrap());

    // As known before the write: the books without it; the shared URL
    // renders the same in a fresh load.
    let known = known_before.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    browser.set_value("#as-of", "").await;
    browser.fill("#known-at", &known).await;
    let apply = browser.find("#view-apply").await;
    browser.click(&apply).await;
    browser.wait_for("known_at in the URL", "return location.hash.includes('known_at=');", json!([]), WAIT).await;
    browser.wait_ready("grant").await;
    let then = budget(&api, &format!("?known_at={}", crate::client::encode(&known))).await;
    assert_eq!(figure(&browser, "spent").await, then["spent"]["amount"].as_str().unwrap());
    assert_eq!(figure(&browser, "spent").await, before, "known before the write, the page shows the books before it");
    let url = browser.execute("return location.href;", json!([])).await;
    browser.goto("about:blank").await;
    browser.goto(url.as_str().unwrap()).await;
    browser.wait_ready("grant").await;
    assert_eq!(figure(&browser, "spent").await, before);
}

#[tokio::test]
async fn a_figure_opens_the_events_it_is_made_of() {
    let server = Server::start_with(&["demo"]);
    let browser = signed_in(&server, ADMIN_TOKEN).await;
    open(&browser, &server, &format!("#/grants/{GRANT}?as_of=2022-09-30"), "grant").await;
    let cell = browser.find("[data-line=\"FP1-CON\"][data-figure=\"spent\"]").await;
    browser.click(&cell).await;
    let rows = {
        browser.find("#explain[open] tr[data-position]").await;
        browser.find_all("#explain[open] tr[data-position]").await
    };
    let mut shown = Vec::new();
    for row in &rows {
        shown.push(browser.attr(row, "data-position").await.unwrap().parse::<u64>().unwrap());
    }
    let explain = server
        .api()
        .get(ADMIN_TOKEN, &format!("/api/v1/grants/{GRANT}/lines/FP1-CON/explain?as_of=2022-09-30"))
        .await
        .expect_status(200)
        .body;
    let spent = &explain["lines"][0]["spent"];
    let expected: Vec<u64> =
        spent["events"].as_array().unwrap().iter().map(|e| e["position"].as_u64().unwrap()).collect();
    assert!(!expected.is_empty());
    shown.sort_unstable();
    let mut sorted = expected.clone();
    sorted.sort_unstable();
    assert_eq!(shown, sorted, "the dialog lists exactly the events of the line's spent");
    let dialog = browser.text(&browser.find("#explain").await).await;
    let total = spent["total"]["amount"].as_str().unwrap();
    let (units, cents) = total.split_once('.').unwrap();
    assert!(
        dialog.contains(cents) && dialog.contains(&units[units.len().saturating_sub(3)..]),
        "the total {total} is shown: {dialog}"
    );
}

#[tokio::test]
async fn the_expenditure_form_records_once_on_a_double_click_and_shows_a_refusal_at_its_field() {
    let server = Server::start_with(&["demo"]);
    let api = server.api();
    let manager = api.token("pm-form", "manager", &["nctcr"]).await;
    let browser = signed_in(&server, &manager).await;
    open(&browser, &server, &format!("#/grants/{GRANT}"), "grant").await;
    let before = api.expenditure_ids(GRANT).await;

    browser.fill("#form-expenditure [name=\"id\"]", "E-FORM-1").await;
    browser.set_value("#form-expenditure [name=\"line\"]", "FP1-CON").await;
    browser.fill("#form-expenditure [name=\"amount\"]", "123.45").await;
    browser.set_value("#form-expenditure [name=\"incurred_on\"]", "2022-12-01").await;
    browser.fill("#form-expenditure [name=\"supplier\"]", "SUP-LAB").await;
    browser.fill("#form-expenditure [name=\"invoice\"]", "INV-FORM-1").await;
    // Two clicks in the same instant, as a double click sends them.
    browser
        .execute(
            "const b = document.querySelector('#form-expenditure [type=submit]'); b.click(); b.click();",
            json!([]),
        )
        .await;
    let started = Instant::now();
    let after = loop {
        let ids = api.expenditure_ids(GRANT).await;
        if ids.len() > before.len() || started.elapsed() > WAIT {
            break ids;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after_wait = api.expenditure_ids(GRANT).await;
    assert_eq!(after_wait, after, "nothing more arrived");
    assert_eq!(after.iter().filter(|i| *i == "E-FORM-1").count(), 1, "recorded once: {after:?}");
    assert_eq!(after.len(), before.len() + 1);
    let recorded = api.history(ADMIN_TOKEN, GRANT).await;
    let e = recorded.iter().find(|e| e["data"]["expenditure_id"] == json!("E-FORM-1")).unwrap();
    assert_eq!((&e["actor"], &e["data"]["amount"]["amount"]), (&json!("pm-form"), &json!("123.45")));

    // The page says it was recorded, with no error (a second request that
    // recorded nothing new would have answered a conflict).
    let position = e["position"].as_u64().unwrap();
    let script = "const f = document.getElementById('form-expenditure'); \
                  const alert = f.querySelector('[role=alert]'); \
                  return f.dataset.lastPosition === String(arguments[0]) && (!alert || alert.hidden);";
    browser.wait_for("the recorded answer without an error", script, json!([position]), WAIT).await;

    // A refused command: its error shows beside the field it names.
    browser.wait_ready("grant").await;
    browser.fill("#form-expenditure [name=\"id\"]", "E-FORM-2").await;
    browser.fill("#form-expenditure [name=\"amount\"]", "10.001").await;
    browser.set_value("#form-expenditure [name=\"incurred_on\"]", "2022-12-02").await;
    browser.fill("#form-expenditure [name=\"supplier\"]", "SUP-LAB").await;
    browser.fill("#form-expenditure [name=\"invoice\"]", "INV-FORM-2").await;
    let submit = browser.find("#form-expenditure [type=submit]").await;
    browser.click(&submit).await;
    let script = "const e = document.querySelector('#form-expenditure [data-error-for=\"/amount\"], #form-expenditure [data-error-for=\"/amount/amount\"]'); \
                  return !!e && e.textContent.includes('decimal');";
    browser.wait_for("the amount's error beside it", script, json!([]), WAIT).await;
    let invalid = browser
        .execute(
            "return document.querySelector('#form-expenditure [name=\"amount\"]').getAttribute('aria-invalid');",
            json!([]),
        )
        .await;
    assert_eq!(invalid, json!("true"));
    assert!(!api.expenditure_ids(GRANT).await.contains(&"E-FORM-2".to_owned()));
}

#[tokio::test]
async fn a_viewer_sees_no_write_forms_and_another_programmes_manager_sees_nothing_of_the_nctcr() {
    let server = Server::start_with(&["demo"]);
    let api = server.api();
    let viewer = api.token("viewer-browser", "viewer", &["nctcr"]).await;
    let browser = signed_in(&server, &viewer).await;
    open(&browser, &server, &format!("#/grants/{GRANT}"), "grant").await;
    assert_eq!(figure(&browser, "award").await, "250000.00", "a viewer reads the views");
    assert!(browser.find_all("form[data-write]").await.is_empty(), "no write forms for a viewer");
    assert!(browser.find_all("#form-expenditure").await.is_empty());
    drop(browser);

    api.post(ADMIN_TOKEN, "/api/v1/programmes", &json!({"id": "other", "name": "Another programme"}))
        .await
        .expect_status(201);
    let outsider = api.token("pm-other", "manager", &["other"]).await;
    let browser = signed_in(&server, &outsider).await;
    let portfolio = browser.text(&browser.find("#app").await).await;
    assert!(
        !portfolio.contains(GRANT) && !portfolio.contains("250,000.00"),
        "the portfolio shows nothing of the NCTCR: {portfolio}"
    );
    assert!(browser.find_all(&format!("a[href*=\"{GRANT}\"]")).await.is_empty());
    browser.goto(&format!("{}/#/grants/{GRANT}", server.api().base())).await;
    browser
        .wait_for(
            "the page to settle",
            "return document.body.dataset.state === 'ready' || document.body.dataset.state === 'error';",
            json!([]),
            WAIT,
        )
        .await;
    assert!(browser.find_all("[data-figure]").await.is_empty(), "no figure of a grant outside the token's programmes");
    let page = browser.text(&browser.find("#app").await).await;
    assert!(!page.contains("53,297.85") && !page.contains("250,000.00"), "{page}");
}

#[tokio::test]
async fn every_page_renders_for_an_admin_and_on_a_phone() {
    let server = Server::start_with(&["demo"]);
    let browser = signed_in(&server, ADMIN_TOKEN).await;
    let shots = std::env::var_os("GRANTLOG_SCREENSHOTS").map(std::path::PathBuf::from);
    let pages = [
        ("portfolio", "#/?as_of=2022-09-30".to_owned()),
        ("grant", format!("#/grants/{GRANT}?as_of=2022-09-30")),
        ("timeline", format!("#/grants/{GRANT}/timeline?as_of=2022-09-30")),
        ("history", format!("#/grants/{GRANT}/history")),
        ("operator", "#/operator".to_owned()),
    ];
    let mut timings = String::from("page\tfirst render (ms, navigation start to ready)\n");
    for (page, hash) in &pages {
        // A fresh load each time: the figure is a first render.
        browser.goto("about:blank").await;
        open(&browser, &server, hash, page).await;
        assert!(position(&browser).await > 0, "{page} carries the position it shows");
        let rendered = browser.execute("return document.body.dataset.firstReadyMs;", json!([])).await;
        let rendered = rendered.as_str().unwrap_or("?").to_owned();
        timings.push_str(&format!("{page}\t{rendered}\n"));
        if let Some(dir) = &shots {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join(format!("{page}.png")), full_page(&browser, 1280).await).unwrap();
        }
    }
    if let Some(dir) = &shots {
        std::fs::write(dir.join("timings.txt"), &timings).unwrap();
    }
    // A phone: the grant page lays out without horizontal overflow of the page.
    browser.resize(390, 844).await;
    open(&browser, &server, &format!("#/grants/{GRANT}?as_of=2022-09-30"), "grant").await;
    let overflow = browser.execute("return document.documentElement.scrollWidth - window.innerWidth;", json!([])).await;
    assert!(overflow.as_i64().unwrap_or(0) <= 1, "the page scrolls sideways on a phone by {overflow}px");
    if let Some(dir) = &shots {
        std::fs::write(dir.join("grant-phone.png"), full_page(&browser, 390).await).unwrap();
    }
}

/// A screenshot of the whole page (the window made as tall as the page,
/// up to 4,000 pixels, then put back).
async fn full_page(browser: &Browser, width: u32) -> Vec<u8> {
    let height = browser.execute("return document.documentElement.scrollHeight;", json!([])).await;
    let height = height.as_u64().and_then(|h| u32::try_from(h).ok()).unwrap_or(1000).clamp(600, 4000);
    browser.resize(width, height).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let png = browser.screenshot().await;
    browser.resize(width, 1000).await;
    png
}

/// Each page holds a live stream, and the browser keeps only a few
/// connections to one server: a page left behind (or kept in the
/// back/forward cache) must close its streams, or after a handful of loads
/// the next page's requests wait for ever. Found by loading pages in turn.
#[tokio::test]
async fn loading_page_after_page_never_runs_out_of_connections() {
    let server = Server::start_with(&["demo"]);
    let browser = signed_in(&server, ADMIN_TOKEN).await;
    for (n, (hash, page)) in
        [("#/operator", "operator"), (&format!("#/grants/{GRANT}")[..], "grant")].iter().cycle().take(10).enumerate()
    {
        browser.goto("about:blank").await;
        browser.goto(&format!("{}/{hash}", server.api().base())).await;
        let script = "const m = document.getElementById('app'); \
                      return !!m && m.dataset.page === arguments[0] && document.body.dataset.state === 'ready';";
        // A load takes well under a second; a stalled one waits for a
        // connection the browser frees only when it evicts a cached page.
        browser.wait_for(&format!("load {n} of the {page} page"), script, json!([page]), STALLED).await;
    }
}
