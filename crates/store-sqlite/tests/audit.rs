//! The auditor's toolkit: exports of a real SQLite log, verified with no
//! database by `store::export::verify_export` and by the independent
//! `docs/verify_export.py`, which must agree on every case; and a tamper
//! corpus at the export level and at the database level.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use rusqlite::{Connection, params};
use serde_json::{Value, json};
use store::export::{ExportFormat, ExportVerdict, Exporter, RawEvent, export_line, verify_export};
use store::hash::{CanonicalEvent, GENESIS};
use store::{
    ChainProblem, EventMetadata, EventStore, ExpectedVersion, Head, NewEvent, Position, StreamId, VerifyOutcome,
};
use store_sqlite::SqliteStore;
use uuid::Uuid;

const STREAMS: u64 = 7;

fn sid(name: &str) -> StreamId {
    StreamId::parse(name).unwrap()
}

fn metadata(i: u64) -> EventMetadata {
    EventMetadata {
        actor: format!("user-{}", i % 5),
        effective_date: i
            .is_multiple_of(3)
            .then(|| chrono::NaiveDate::from_ymd_opt(2024, 1 + (i % 12) as u32, 1 + (i % 28) as u32).unwrap()),
        reason: (i % 4 == 1).then(|| format!("Kürzung um {} % – «geprüft» ✓ 審査済み", i % 50)),
        command_id: i.is_multiple_of(2).then(Uuid::now_v7),
        correlation_id: (!i.is_multiple_of(5)).then(Uuid::now_v7),
        causation_id: (i % 7 == 3).then(Uuid::now_v7),
        fingerprint: (i % 6 == 2).then_some(store::Fingerprint([i as u8; 32])),
    }
}

fn new_event(i: u64) -> NewEvent {
    let data = json!({
        "n": i,
        "amount": format!("{}.{:02} EUR", 1000 + i * 37, i % 100),
        "note": format!("Zuschuss für Café ☕ Nº{i} — 日本語 \"quoted\" \\ tab\t newline\n \u{2028} \u{1}"),
        "ratio": i as f64 / 8.0,
        "negative": -(i as i64) - 1,
        "big": u64::MAX,
        "nested": { "list": [1, 2.5, { "x": null, "ok": true }], "empty": {} },
    });
    NewEvent::new(
        ["GrantAwarded", "PaymentMade", "ReportFiled"][(i % 3) as usize],
        1 + (i % 2) as u32,
        data,
        metadata(i),
    )
}

/// Appends `from..to` events in batches of 1 to 4 over [`STREAMS`] streams.
async fn fill(store: &SqliteStore, from: u64, to: u64) {
    let mut i = from;
    while i < to {
        let n = (1 + i % 4).min(to - i);
        let mut batch: Vec<NewEvent> = (i..i + n).map(new_event).collect();
        // An append is one command's effect: its events share its id.
        let (command, fingerprint) = (batch[0].metadata.command_id, batch[0].metadata.fingerprint);
        for e in &mut batch {
            (e.metadata.command_id, e.metadata.fingerprint) = (command, fingerprint);
        }
        store.append(&sid(&format!("grant-{}", i % STREAMS)), ExpectedVersion::Any, batch).await.unwrap();
        i += n;
    }
}

async fn raw_events(store: &SqliteStore, after: Position) -> Vec<RawEvent> {
    let mut out = Vec::new();
    let mut after = after;
    loop {
        let page = store.read_raw(after, 97).await.unwrap();
        let Some(last) = page.last() else { return out };
        after = last.position;
        out.extend(page);
    }
}

/// The whole log as native export lines.
async fn export(store: &SqliteStore) -> Vec<String> {
    let mut exporter = Exporter::new(ExportFormat::Ndjson, GENESIS);
    raw_events(store, Position::START).await.iter().map(|e| exporter.line(e)).collect()
}

fn write(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    let mut text = lines.join("\n");
    if !lines.is_empty() {
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn ours(path: &Path, head: Option<Head>, since: Option<Head>) -> ExportVerdict {
    let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    verify_export(file, head, since).unwrap()
}

/// What `docs/verify_export.py` prints, and whether it exited 0.
fn python(path: &Path, head: Option<Head>, since: Option<Head>) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/verify_export.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).arg(path);
    if let Some(h) = head {
        cmd.arg("--head").arg(h.to_string());
    }
    if let Some(s) = since {
        cmd.arg("--since").arg(s.to_string());
    }
    let out = cmd.output().expect("python3 runs");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "python failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), stdout.trim_end().to_owned())
}

/// `bad at line L position P: CODE` (the stable part of a report).
fn summary(report: &str) -> String {
    match report.strip_prefix("bad at ") {
        Some(rest) => {
            let mut parts = rest.splitn(3, ": ");
            format!("bad at {}: {}", parts.next().unwrap(), parts.next().unwrap())
        }
        None => report.to_owned(),
    }
}

/// Both verifiers on `lines`; asserts they agree and returns the summary.
fn both(dir: &Path, lines: &[String], head: Option<Head>, since: Option<Head>) -> String {
    static FILES: AtomicUsize = AtomicUsize::new(0);
    let path = write(dir, &format!("export-{}.ndjson", FILES.fetch_add(1, Ordering::Relaxed)), lines);
    let verdict = ours(&path, head, since);
    let (py_ok, py) = python(&path, head, since);
    let rust = verdict.to_string();
    assert_eq!(verdict.ok, py_ok, "ours: {rust}\npython: {py}");
    assert_eq!(verdict.ok, verdict.first_bad.is_none());
    if verdict.ok {
        assert_eq!(rust, py, "the verifiers disagree");
    } else {
        assert_eq!(summary(&rust), summary(&py), "the verifiers disagree:\nours:   {rust}\npython: {py}");
    }
    summary(&rust)
}

/// Like [`both`] for many exports, with one python3 process (which imports
/// `docs/verify_export.py` and calls the `report` function its CLI prints).
fn both_batch(dir: &Path, cases: &[(&[String], Option<Head>, Option<Head>)]) -> Vec<String> {
    static FILES: AtomicUsize = AtomicUsize::new(0);
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    let mut jobs = Vec::new();
    let mut verdicts = Vec::new();
    for (lines, head, since) in cases {
        let path = write(dir, &format!("batch-{}.ndjson", FILES.fetch_add(1, Ordering::Relaxed)), lines);
        verdicts.push(ours(&path, *head, *since));
        jobs.push(json!([path.to_str().unwrap(), head.map(|h| h.to_string()), since.map(|h| h.to_string())]));
    }
    let driver = "import json, sys\n\
        sys.path.insert(0, sys.argv[1])\n\
        import verify_export as v\n\
        for path, head, since in json.load(sys.stdin):\n\
        \x20   h = v.parse_head(head) if head else None\n\
        \x20   s = v.parse_head(since) if since else None\n\
        \x20   print(json.dumps(v.report(path, h, s)))\n";
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(driver)
        .arg(&docs)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), unparse(&json!(jobs)).as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the python batch failed");
    let answers: Vec<(i32, String)> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(answers.len(), cases.len());
    verdicts
        .iter()
        .zip(answers)
        .map(|(verdict, (status, py))| {
            let rust = verdict.to_string();
            assert_eq!(verdict.ok, status == 0, "ours: {rust}\npython: {py}");
            if verdict.ok {
                assert_eq!(rust, py, "the verifiers disagree");
            } else {
                assert_eq!(summary(&rust), summary(&py), "the verifiers disagree:\nours:   {rust}\npython: {py}");
            }
            summary(&rust)
        })
        .collect()
}

fn bad(line: u64, position: u64, code: &str) -> String {
    format!("bad at line {line} position {position}: {code}")
}

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap()
}

fn unparse(v: &Value) -> String {
    serde_json::to_string(v).unwrap()
}

fn hex32(v: &Value) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex::decode_to_slice(v.as_str().unwrap(), &mut out).unwrap();
    out
}

/// The chain hash a native line's content gives after `prev`.
fn line_hash(v: &Value, prev: &[u8; 32]) -> [u8; 32] {
    let id = Uuid::parse_str(v["id"].as_str().unwrap()).unwrap();
    CanonicalEvent {
        position: v["position"].as_u64().unwrap(),
        stream_id: v["stream"].as_str().unwrap(),
        stream_version: v["version"].as_u64().unwrap(),
        event_id: id.as_bytes(),
        event_type: v["type"].as_str().unwrap(),
        schema_version: v["schema_version"].as_u64().unwrap() as u32,
        data: v["data_json"].as_str().unwrap(),
        metadata: v["metadata_json"].as_str().unwrap(),
        recorded_at_micros: v["recorded_at_micros"].as_i64().unwrap(),
    }
    .chain_hash(prev)
}

/// A forger's recomputation of every hash from line index `from` on.
fn rehash(lines: &mut [String], from: usize) {
    for i in from..lines.len() {
        let prev = if i == 0 { GENESIS } else { hex32(&parse(&lines[i - 1])["hash"]) };
        let mut v = parse(&lines[i]);
        v["prev_hash"] = json!(hex::encode(prev));
        v["hash"] = json!(hex::encode(line_hash(&v, &prev)));
        lines[i] = unparse(&v);
    }
}

fn edit(lines: &mut [String], index: usize, f: impl FnOnce(&mut Value)) {
    let mut v = parse(&lines[index]);
    f(&mut v);
    lines[index] = unparse(&v);
}

/// Changes one digit of the `n` member inside the stored payload text.
fn flip_payload_byte(v: &mut Value) {
    let text = v["data_json"].as_str().unwrap().to_owned();
    let at = text.find("\"n\":").unwrap() + 4;
    let mut bytes = text.into_bytes();
    bytes[at] = if bytes[at] == b'9' { b'8' } else { bytes[at] + 1 };
    v["data_json"] = json!(String::from_utf8(bytes).unwrap());
}

fn head_of(line: &str) -> Head {
    let v = parse(line);
    Head { position: Position(v["position"].as_u64().unwrap()), hash: hex32(&v["hash"]) }
}

const EVENTS: u64 = 300;

/// (description, lines, --head, --since, expected summary)
type ExportCase = (&'static str, Vec<String>, Option<Head>, Option<Head>, String);

/// A stored row's hashed columns, in order.
type Row = (i64, String, i64, Vec<u8>, String, u32, String, String, i64);

/// (description, tamper, expected position, whether verify without a head sees it)
type DbCase = (&'static str, Box<dyn Fn(&Connection)>, u64, bool);

#[tokio::test]
async fn exports_verify_and_every_export_level_tampering_is_named_by_both_verifiers() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("events.sqlite")).await.unwrap();
    fill(&store, 0, EVENTS).await;
    let head = store.head().await.unwrap().unwrap();
    let good = export(&store).await;
    assert_eq!(good.len() as u64, EVENTS);
    let d = dir.path();

    // The export carries the stored texts byte for byte, and its own head.
    let raws = raw_events(&store, Position::START).await;
    assert_eq!(good[0], export_line(&raws[0], &GENESIS));
    assert_eq!(good[1], export_line(&raws[1], &raws[0].hash));
    let first = parse(&good[0]);
    let recorded = store.read_all(Position::START, 1).await.unwrap().remove(0);
    assert_eq!(first["data_json"].as_str().unwrap(), recorded.data.get());
    assert_eq!(first["prev_hash"], json!(hex::encode(GENESIS)));
    let rfc = first["recorded_at"].as_str().unwrap();
    assert_eq!(rfc, recorded.recorded_at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string());
    assert_eq!(rfc.len(), "2024-01-01T00:00:00.000000Z".len());
    assert_eq!(head_of(good.last().unwrap()), head);

    // (a) A good export: ok, with and without heads, and python agrees.
    let ok = format!("ok {EVENTS} events, head {head}");
    assert_eq!(both(d, &good, None, None), ok);
    assert_eq!(both(d, &good, Some(head), None), ok);
    assert_eq!(both(d, &good, Some(head), Some(head)), ok);
    let mid = head_of(&good[149]);
    assert_eq!(both(d, &good, Some(head), Some(mid)), ok);
    assert_eq!(both(d, &[], None, None), "ok 0 events, head -");
    assert_eq!(both(d, &[], Some(Head { position: Position(0), hash: GENESIS }), None), "ok 0 events, head -");
    assert_eq!(both(d, &[], Some(head), None), bad(1, EVENTS, "head-mismatch"));

    // The same log as CloudEvents verifies too.
    let mut ce = Exporter::new(ExportFormat::CloudEvents { source: "/grantlog/test".to_owned() }, GENESIS);
    let cloud: Vec<String> = raw_events(&store, Position::START).await.iter().map(|e| ce.line(e)).collect();
    let c = parse(&cloud[0]);
    assert_eq!(
        (c["specversion"].as_str(), c["type"].as_str(), c["subject"].as_str()),
        (Some("1.0"), first["type"].as_str(), first["stream"].as_str())
    );
    assert_eq!(c["position"], json!("1"));
    assert_eq!(both(d, &cloud, Some(head), None), ok);

    // A partial export (resumed after position 100) verifies only when
    // anchored by the auditor's head at 100.
    let at100 = head_of(&good[99]);
    assert_eq!(store.hash_at(Position(100)).await.unwrap(), Some(at100.hash));
    let mut partial = Exporter::new(ExportFormat::Ndjson, store.hash_at(Position(100)).await.unwrap().unwrap());
    let tail: Vec<String> = raw_events(&store, Position(100)).await.iter().map(|e| partial.line(e)).collect();
    assert_eq!(tail[0], good[100]);
    assert_eq!(both(d, &tail, Some(head), Some(at100)), format!("ok {} events, head {head}", EVENTS - 100));
    assert_eq!(both(d, &tail, None, None), bad(1, 1, "gap"));
    let wrong = Head { position: Position(100), hash: [9; 32] };
    assert_eq!(both(d, &tail, None, Some(wrong)), bad(1, 100, "not-a-prefix"));
    assert_eq!(both(d, &tail, None, Some(mid)), format!("ok {} events, head {head}", EVENTS - 100));

    // (b) The export-level corpus: (description, lines, head, since, expected).
    let mut cases: Vec<ExportCase> = Vec::new();

    let mut l = good.clone();
    edit(&mut l, 99, flip_payload_byte);
    cases.push(("a payload byte", l, None, None, bad(100, 100, "hash-mismatch")));

    let mut l = cloud.clone();
    edit(&mut l, 99, |v| {
        let t = v["datajson"].as_str().unwrap().replacen("Café", "Cafe", 1);
        v["datajson"] = json!(t);
    });
    cases.push(("a CloudEvents payload", l, None, None, bad(100, 100, "hash-mismatch")));

    for (field, value) in [
        ("actor", json!("user-9")),
        ("reason", json!("nothing to see")),
        ("effective_date", json!("1999-12-31")),
        ("recorded_at", json!("2001-01-01T00:00:00.000000Z")),
        ("data", json!({ "n": 119 })),
    ] {
        let mut l = good.clone();
        edit(&mut l, 119, |v| v[field] = value);
        cases.push(("a display field", l, None, None, bad(120, 120, "field-mismatch")));
    }
    let mut l = good.clone();
    edit(&mut l, 119, |v| v["data"]["amount"] = json!("1.00 EUR"));
    cases.push(("the displayed amount", l, None, None, bad(120, 120, "field-mismatch")));
    let mut l = good.clone();
    edit(&mut l, 119, |v| v["data"]["n"] = json!(119.0));
    cases.push(("an integer shown as a double", l, None, None, bad(120, 120, "field-mismatch")));
    let mut l = cloud.clone();
    edit(&mut l, 119, |v| v["time"] = json!("2001-01-01T00:00:00.000000Z"));
    cases.push(("a CloudEvents time", l, None, None, bad(120, 120, "field-mismatch")));
    let mut l = cloud.clone();
    edit(&mut l, 119, |v| v["actor"] = json!("user-9"));
    cases.push(("a CloudEvents actor", l, None, None, bad(120, 120, "field-mismatch")));

    let mut l = good.clone();
    l.remove(149);
    cases.push(("a deleted line", l, None, None, bad(150, 150, "gap")));

    let mut l = good.clone();
    let mut forged = parse(&good[200]);
    forged["data_json"] = json!(r#"{"n":-1,"amount":"999999.00 EUR"}"#);
    forged["data"] = json!({ "n": -1, "amount": "999999.00 EUR" });
    forged["id"] = json!(Uuid::now_v7().to_string());
    let prev = hex32(&forged["prev_hash"]);
    forged["hash"] = json!(hex::encode(line_hash(&forged, &prev)));
    l.insert(200, unparse(&forged));
    cases.push(("an inserted line", l, None, None, bad(202, 201, "duplicate")));

    let mut l = good.clone();
    l.swap(49, 59);
    cases.push(("two lines reordered", l, None, None, bad(50, 50, "gap")));
    let mut l = good.clone();
    l.swap(9, 10);
    cases.push(("two neighbours reordered", l, None, None, bad(10, 10, "gap")));

    let cut = good[..290].to_vec();
    cases.push(("a truncated tail, with --head", cut.clone(), Some(head), None, bad(291, EVENTS, "head-mismatch")));
    cases.push(("a truncated tail, with --since", cut.clone(), None, Some(head), bad(291, EVENTS, "not-a-prefix")));
    cases.push(("an export past the head", good.clone(), Some(mid), None, bad(151, 151, "head-mismatch")));

    // Two events of different streams swap streams.
    let (a, b) = (20, 23);
    assert_ne!(parse(&good[a])["stream"], parse(&good[b])["stream"]);
    let mut l = good.clone();
    let (sa, sb) = (parse(&good[a])["stream"].clone(), parse(&good[b])["stream"].clone());
    edit(&mut l, a, |v| v["stream"] = sb.clone());
    edit(&mut l, b, |v| v["stream"] = sa.clone());
    let swapped = l.clone();
    cases.push(("two events swap streams", l, None, None, bad(21, 21, "hash-mismatch")));
    let mut l = swapped;
    rehash(&mut l, a);
    cases.push(("two events swap streams, re-hashed", l, None, None, bad(21, 21, "stream-version")));

    // A forger edits a payload and recomputes every later hash: internally
    // consistent, so only the auditor's heads catch it.
    let mut l = good.clone();
    edit(&mut l, 199, |v| {
        flip_payload_byte(v);
        v["data"] = serde_json::from_str(v["data_json"].as_str().unwrap()).unwrap();
    });
    rehash(&mut l, 199);
    cases.push((
        "a re-hashed tail, no heads",
        l.clone(),
        None,
        None,
        format!("ok {EVENTS} events, head {}", head_of(l.last().unwrap())),
    ));
    cases.push((
        "a re-hashed tail, an older head",
        l.clone(),
        None,
        Some(mid),
        format!("ok {EVENTS} events, head {}", head_of(l.last().unwrap())),
    ));
    cases.push(("a re-hashed tail, --head", l.clone(), Some(head), None, bad(300, 300, "head-mismatch")));
    cases.push(("a re-hashed tail, --since", l.clone(), None, Some(head), bad(300, 300, "not-a-prefix")));
    cases.push((
        "a re-hashed tail, --since inside",
        l.clone(),
        None,
        Some(head_of(&good[249])),
        bad(250, 250, "not-a-prefix"),
    ));

    let mut l = good.clone();
    edit(&mut l, 30, |v| v["prev_hash"] = json!(hex::encode([1u8; 32])));
    cases.push(("a prev_hash", l, None, None, bad(31, 31, "prev-hash-mismatch")));
    let mut l = good.clone();
    l[40] = l[40].replacen("{", "{\"extra\":1,", 1);
    cases.push(("an unknown key", l, None, None, "bad at line 41 position -: malformed-line".to_owned()));
    let mut l = good.clone();
    l[41] = l[41][..l[41].len() / 2].to_owned();
    cases.push(("half a line", l, None, None, "bad at line 42 position -: malformed-line".to_owned()));
    let mut l = good.clone();
    edit(&mut l, 42, |v| v["position"] = json!(43.0));
    cases.push(("a position as a double", l, None, None, "bad at line 43 position -: malformed-line".to_owned()));
    let mut l = good.clone();
    edit(&mut l, 60, |v| v["recorded_at_micros"] = json!(v["recorded_at_micros"].as_i64().unwrap() - 10_000_000));
    edit(&mut l, 60, |v| {
        v["recorded_at"] = json!(store::export::rfc3339_micros(v["recorded_at_micros"].as_i64().unwrap()))
    });
    rehash(&mut l, 60);
    cases.push(("time going backwards, re-hashed", l, None, None, bad(61, 61, "time-backwards")));

    let batch: Vec<_> = cases.iter().map(|(_, lines, head, since, _)| (lines.as_slice(), *head, *since)).collect();
    for (found, (what, _, _, _, expected)) in both_batch(d, &batch).into_iter().zip(&cases) {
        assert_eq!(&found, expected, "{what}");
    }
}

// ---------------------------------------------------------------------
// The database-level corpus.

fn raw(path: &Path) -> Connection {
    Connection::open(path).unwrap()
}

/// Copies a closed database, as a forger would, and drops the triggers.
fn forger_copy(original: &Path, dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::copy(original, &path).unwrap();
    let wal = original.with_extension("sqlite-wal");
    assert!(!wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0, "the WAL was not checkpointed");
    raw(&path).execute_batch("DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete;").unwrap();
    path
}

/// Recomputes and stores every hash from `from` on, as a forger would.
fn rehash_db(conn: &Connection, from: u64) {
    let mut prev: [u8; 32] = if from == 1 {
        GENESIS
    } else {
        conn.query_row("SELECT hash FROM events WHERE position = ?1", [from as i64 - 1], |r| r.get::<_, Vec<u8>>(0))
            .unwrap()
            .try_into()
            .unwrap()
    };
    let rows: Vec<Row> = conn
        .prepare("SELECT position, stream_id, stream_version, event_id, event_type, schema_version, data, metadata, recorded_at FROM events WHERE position >= ?1 ORDER BY position")
        .unwrap()
        .query_map([from as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (position, stream, version, id, event_type, schema, data, metadata, micros) in rows {
        let hash = CanonicalEvent {
            position: position as u64,
            stream_id: &stream,
            stream_version: version as u64,
            event_id: id.as_slice().try_into().unwrap(),
            event_type: &event_type,
            schema_version: schema,
            data: &data,
            metadata: &metadata,
            recorded_at_micros: micros,
        }
        .chain_hash(&prev);
        conn.execute("UPDATE events SET hash = ?1 WHERE position = ?2", params![hash.as_slice(), position]).unwrap();
        prev = hash;
    }
}

const ALL_BUT_POSITION: &str =
    "stream_id, stream_version, event_id, event_type, schema_version, data, metadata, recorded_at, hash";

/// What the store and both export verifiers say about a tampered copy.
struct Findings {
    verify: VerifyOutcome,
    verify_since: VerifyOutcome,
    export: String,
}

async fn examine(dir: &Path, db: &Path, head: Head) -> Findings {
    let store = SqliteStore::open(db).await.unwrap();
    let verify = store.verify(None).await.unwrap();
    let verify_since = store.verify(Some(head)).await.unwrap();
    let lines = export(&store).await;
    store.close().await;
    // --since (the auditor's earlier head) and --head find the same position.
    let [export, with_head]: [String; 2] =
        both_batch(dir, &[(&lines, None, Some(head)), (&lines, Some(head), None)]).try_into().unwrap();
    let position = |s: &str| s.split(": ").next().unwrap().rsplit(' ').next().unwrap().to_owned();
    assert_eq!(position(&export), position(&with_head), "{export} / {with_head}");
    Findings { verify, verify_since, export }
}

fn broken_at(outcome: &VerifyOutcome, what: &str) -> u64 {
    match outcome {
        VerifyOutcome::Broken { position, .. } => position.0,
        other => panic!("{what}: not detected: {other:?}"),
    }
}

fn export_position(report: &str) -> u64 {
    report.split(": ").next().unwrap().rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn every_database_level_tampering_is_named_by_verify_and_by_the_export() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = d.join("events.sqlite");
    let store = SqliteStore::open(&path).await.unwrap();
    fill(&store, 0, 200).await;
    let backup = d.join("backup.sqlite");
    raw(&path).execute("VACUUM INTO ?1", [backup.to_str().unwrap()]).unwrap();
    fill(&store, 200, EVENTS).await;
    let head = store.head().await.unwrap().unwrap();
    assert_eq!(head.position, Position(EVENTS));
    store.close().await;
    drop(store);

    // Untouched: everything agrees it is intact.
    let f = examine(d, &forger_copy(&path, d, "same.sqlite"), head).await;
    assert!(matches!(f.verify, VerifyOutcome::Intact { events: EVENTS, .. }));
    assert!(matches!(f.verify_since, VerifyOutcome::Intact { events: EVENTS, .. }));
    assert_eq!(f.export, format!("ok {EVENTS} events, head {head}"));

    let rehashed_fork = "UPDATE events SET data = replace(data, '\"n\":230', '\"n\":999') WHERE position = 231";
    let cases: Vec<DbCase> = vec![
        (
            "a payload byte",
            Box::new(|c| {
                c.execute("UPDATE events SET data = replace(data, '\"n\":76', '\"n\":77') WHERE position = 77", [])
                    .unwrap();
            }),
            77,
            true,
        ),
        (
            "a payload that is not UTF-8",
            Box::new(|c| {
                c.execute("UPDATE events SET data = CAST(x'7bff7d' AS TEXT) WHERE position = 11", []).unwrap();
            }),
            11,
            true,
        ),
        (
            "a deleted event",
            Box::new(|c| {
                c.execute("DELETE FROM events WHERE position = 120", []).unwrap();
            }),
            120,
            true,
        ),
        (
            "an inserted event, itself correctly chained",
            Box::new(|c| {
                c.execute_batch(
                    "UPDATE events SET position = -position WHERE position > 150;
                     UPDATE events SET position = 1 - position WHERE position < 0;",
                )
                .unwrap();
                let prev: Vec<u8> =
                    c.query_row("SELECT hash FROM events WHERE position = 150", [], |r| r.get(0)).unwrap();
                let micros: i64 =
                    c.query_row("SELECT recorded_at FROM events WHERE position = 150", [], |r| r.get(0)).unwrap();
                let id = Uuid::now_v7();
                let (data, metadata) = (r#"{"n":-1,"amount":"999999.00 EUR"}"#, r#"{"actor":"user-0"}"#);
                let hash = CanonicalEvent {
                    position: 151,
                    stream_id: "forged-1",
                    stream_version: 0,
                    event_id: id.as_bytes(),
                    event_type: "PaymentMade",
                    schema_version: 1,
                    data,
                    metadata,
                    recorded_at_micros: micros,
                }
                .chain_hash(&prev.try_into().unwrap());
                c.execute(
                    &format!("INSERT INTO events (position, {ALL_BUT_POSITION}) VALUES (151, 'forged-1', 0, ?1, 'PaymentMade', 1, ?2, ?3, ?4, ?5)"),
                    params![id.as_bytes().as_slice(), data, metadata, micros, hash.as_slice()],
                )
                .unwrap();
            }),
            152,
            true,
        ),
        (
            "two events reordered (contents swapped)",
            Box::new(|c| {
                c.execute_batch(&format!(
                    "CREATE TEMP TABLE pair AS SELECT * FROM events WHERE position IN (60, 70);
                     DELETE FROM events WHERE position IN (60, 70);
                     INSERT INTO events (position, {ALL_BUT_POSITION}) SELECT 130 - position, {ALL_BUT_POSITION} FROM pair;"
                ))
                .unwrap();
            }),
            60,
            true,
        ),
        (
            "two streams swap names",
            Box::new(|c| {
                c.execute_batch(
                    "UPDATE events SET stream_id = 'tmp-swap' WHERE stream_id = 'grant-2';
                     UPDATE events SET stream_id = 'grant-2' WHERE stream_id = 'grant-5';
                     UPDATE events SET stream_id = 'grant-5' WHERE stream_id = 'tmp-swap';",
                )
                .unwrap();
            }),
            0, // the first event of either stream, found below
            true,
        ),
        (
            "a truncated tail",
            Box::new(|c| {
                c.execute("DELETE FROM events WHERE position > 280", []).unwrap();
            }),
            EVENTS,
            false,
        ),
        (
            "a fork: the same length, re-hashed after position 230",
            Box::new(move |c| {
                c.execute(rehashed_fork, []).unwrap();
                rehash_db(c, 231);
            }),
            EVENTS,
            false,
        ),
    ];

    let first_of_swapped: u64 = raw(&path)
        .query_row("SELECT min(position) FROM events WHERE stream_id IN ('grant-2', 'grant-5')", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap() as u64;

    for (i, (what, tamper, position, seen_without_head)) in cases.iter().enumerate() {
        let position = if *position == 0 { first_of_swapped } else { *position };
        let copy = forger_copy(&path, d, &format!("case-{i}.sqlite"));
        {
            let conn = raw(&copy);
            tamper(&conn);
        }
        let f = examine(d, &copy, head).await;
        if *seen_without_head {
            assert_eq!(broken_at(&f.verify, what), position, "{what}: {:?}", f.verify);
        } else {
            assert!(matches!(f.verify, VerifyOutcome::Intact { .. }), "{what}: {:?}", f.verify);
        }
        assert_eq!(broken_at(&f.verify_since, what), position, "{what}: {:?}", f.verify_since);
        assert_eq!(export_position(&f.export), position, "{what}: {}", f.export);
    }

    // Restoring an older backup: a valid log, but not the one the auditor saw.
    let f = examine(d, &backup, head).await;
    assert!(matches!(f.verify, VerifyOutcome::Intact { events: 200, .. }), "{:?}", f.verify);
    assert_eq!(
        f.verify_since,
        VerifyOutcome::Broken {
            position: head.position,
            problem: ChainProblem::NotAPrefix { expected: head, found: None }
        }
    );
    assert_eq!(f.export, bad(201, EVENTS, "not-a-prefix"));
}

/// Sets the displayed `data` of line `index` to the raw JSON `text`.
fn display_data(lines: &mut [String], index: usize, text: &str) {
    let mut v = parse(&lines[index]);
    v["data"] = json!("@@display@@");
    lines[index] = unparse(&v).replace("\"@@display@@\"", text);
}

/// Sets the hashed payload of line `index` (and re-hashes the rest).
fn stored_data(lines: &mut [String], index: usize, text: &str) {
    edit(lines, index, |v| v["data_json"] = json!(text));
    rehash(lines, index);
}

#[tokio::test]
async fn the_verifiers_agree_on_awkward_json() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = SqliteStore::open(d.join("events.sqlite")).await.unwrap();
    fill(&store, 0, 6).await;
    let good = export(&store).await;
    let original = parse(&good[2])["data_json"].as_str().unwrap().to_owned();
    assert!(original.contains("\"negative\":-3") && original.contains("\"ratio\":0.25"), "{original}");
    let ok = "ok 6 events, head";
    let mismatch = bad(3, 3, "field-mismatch");

    // The displayed payload spelled differently from the stored text.
    let displayed = [
        (original.clone(), ok.to_owned()),
        (original.replace("\"ratio\":0.25", "\"ratio\":2.5e-1"), ok.to_owned()),
        (original.replace("Café", "Caf\\u00e9"), ok.to_owned()),
        (original.replace("\"negative\":-3", "\"negative\":-3.0"), mismatch.clone()),
        (original.replace("\"negative\":-3", "\"negative\":-3e0"), mismatch.clone()),
        (original.replace("18446744073709551615", "1.8446744073709552e19"), mismatch.clone()),
        (original.replace("18446744073709551615", "18446744073709551616"), mismatch.clone()),
        (original.replace("\"negative\":-3", "\"negative\":true"), mismatch.clone()),
        (original.replace("\"negative\":-3", "\"negative\":-3,\"negative\":-3"), ok.to_owned()),
        (original.replace("\"negative\":-3", "\"negative\":-4,\"negative\":-3"), ok.to_owned()),
        (
            original.replace("\"negative\":-3", "\"negative\":NaN"),
            "bad at line 3 position -: malformed-line".to_owned(),
        ),
        (original.replace("Café", "Caf\\ud800"), "bad at line 3 position -: malformed-line".to_owned()),
        (original.replace("\"ratio\":0.25", "\"ratio\":1e400"), "bad at line 3 position -: malformed-line".to_owned()),
    ];
    let edited: Vec<Vec<String>> = displayed
        .iter()
        .map(|(text, _)| {
            let mut lines = good.clone();
            display_data(&mut lines, 2, text);
            lines
        })
        .collect();
    let batch: Vec<_> = edited.iter().map(|l| (l.as_slice(), None, None)).collect();
    for (found, (text, expected)) in both_batch(d, &batch).into_iter().zip(&displayed) {
        assert!(found.starts_with(expected.as_str()), "{text}: {found}");
    }

    // Stored payloads (re-hashed, so only the display check can differ).
    let stored = [
        (r#"{"z":-0}"#, r#"{"z":0}"#, mismatch.clone()),
        (r#"{"z":-0}"#, r#"{"z":-0.0}"#, ok.to_owned()),
        (r#"{"z":-0}"#, r#"{"z":0.0}"#, ok.to_owned()),
        (r#"{"z":-9223372036854775809}"#, r#"{"z":-9223372036854775808}"#, mismatch.clone()),
        (r#"{"z":-9223372036854775809}"#, r#"{"z":-9223372036854775808.0}"#, ok.to_owned()),
        (r#"{"z":-9223372036854775808}"#, r#"{"z":-9223372036854775808.0}"#, mismatch.clone()),
        (r#"[1,"x",null]"#, r#"[1,"x",null]"#, ok.to_owned()),
        (r#"not json"#, r#"null"#, bad(3, 3, "bad-payload")),
    ];
    let edited: Vec<Vec<String>> = stored
        .iter()
        .map(|(stored, shown, _)| {
            let mut lines = good.clone();
            stored_data(&mut lines, 2, stored);
            display_data(&mut lines, 2, shown);
            lines
        })
        .collect();
    let batch: Vec<_> = edited.iter().map(|l| (l.as_slice(), None, None)).collect();
    for (found, (stored, shown, expected)) in both_batch(d, &batch).into_iter().zip(&stored) {
        assert!(found.starts_with(expected.as_str()), "{stored} shown as {shown}: {found}");
    }
    let mut lines = good.clone();
    edit(&mut lines, 2, |v| v["metadata_json"] = json!("[]"));
    rehash(&mut lines, 2);
    assert_eq!(both(d, &lines, None, None), bad(3, 3, "bad-payload"));

    // Line framing.
    let crlf: Vec<String> = good.iter().map(|l| format!("{l}\r")).collect();
    assert!(both(d, &crlf, None, None).starts_with(ok));
    let mut blank = good.clone();
    blank.push(String::new());
    assert_eq!(both(d, &blank, None, None), "bad at line 7 position -: malformed-line");
    let mut bom = good.clone();
    bom[0] = format!("\u{feff}{}", bom[0]);
    assert_eq!(both(d, &bom, None, None), "bad at line 1 position -: malformed-line");
    let path = write(d, "no-newline.ndjson", &good);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.trim_end()).unwrap();
    assert!(ours(&path, None, None).ok && python(&path, None, None).0);
    let mut upper = good.clone();
    edit(&mut upper, 3, |v| v["id"] = json!(v["id"].as_str().unwrap().to_uppercase()));
    assert_eq!(both(d, &upper, None, None), "bad at line 4 position -: malformed-line");
    let mut bool_version = good.clone();
    edit(&mut bool_version, 3, |v| v["version"] = json!(true));
    assert_eq!(both(d, &bool_version, None, None), "bad at line 4 position -: malformed-line");
}
