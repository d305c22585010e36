//! Shared by `export_fuzz.rs` and `export_corpus.rs`: a real SQLite log and
//! its exports, a bounded run of `verify_export`, the stable summary of a
//! verdict, a forger's re-hash, and one python3 process running
//! `docs/verify_export.py` over many files.

#![allow(dead_code)] // each test binary uses part of it

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value, json};
use store::export::{ExportFormat, ExportVerdict, Exporter, RawEvent, verify_export};
use store::hash::{CanonicalEvent, GENESIS};
use store::{EventMetadata, EventStore, ExpectedVersion, Head, NewEvent, Position, StreamId};
use store_sqlite::SqliteStore;
use uuid::Uuid;

/// Events in the sample log.
pub const EVENTS: usize = 9;
/// The resumed export starts after this position.
pub const RESUMED_AFTER: usize = 3;

/// A real log's exports, every line in both formats.
pub struct Sample {
    pub native: Vec<String>,
    pub cloud: Vec<String>,
    /// The head after each event (`heads[i]` is position `i + 1`).
    pub heads: Vec<Head>,
}

impl Sample {
    pub fn head(&self) -> Head {
        self.heads[EVENTS - 1]
    }
}

fn event(i: usize) -> NewEvent {
    let data = json!({
        "n": i,
        "amount": format!("{}.{:02} EUR", 1000 + i * 37, i % 100),
        "note": format!("Zuschuss für Café ☕ Nº{i} — 日本語 \"q\" \\ a/b \t\n \u{2028} \u{1f}"),
        "ratio": i as f64 / 8.0,
        "negative": -(i as i64) - 1,
        "big": u64::MAX,
        "nested": { "list": [1, 2.5, { "x": null, "ok": true }], "empty": {} },
    });
    let metadata = EventMetadata {
        actor: format!("user-{}", i % 3),
        effective_date: i.is_multiple_of(3).then(|| chrono::NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()),
        reason: (i % 2 == 1).then(|| format!("Kürzung um {i} % – «geprüft» ✓ 審査済み")),
        command_id: i.is_multiple_of(2).then(Uuid::now_v7),
        correlation_id: (i % 4 != 1).then(Uuid::now_v7),
        causation_id: (i % 4 == 3).then(Uuid::now_v7),
        fingerprint: None,
    };
    NewEvent::new(["GrantAwarded", "PaymentMade", "ReportFiled"][i % 3], 1 + (i % 2) as u32, data, metadata)
}

async fn build() -> Sample {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("events.sqlite")).await.unwrap();
    for i in 0..EVENTS {
        let stream = StreamId::parse(format!("grant-{}", ["a", "b", "c"][i % 3])).unwrap();
        store.append(&stream, ExpectedVersion::Any, vec![event(i)]).await.unwrap();
    }
    let raws: Vec<RawEvent> = store.read_raw(Position::START, EVENTS + 1).await.unwrap();
    assert_eq!(raws.len(), EVENTS);
    let mut native = Exporter::new(ExportFormat::Ndjson, GENESIS);
    let mut cloud = Exporter::new(ExportFormat::CloudEvents { source: "/grantlog/fuzz".to_owned() }, GENESIS);
    Sample {
        native: raws.iter().map(|e| native.line(e)).collect(),
        cloud: raws.iter().map(|e| cloud.line(e)).collect(),
        heads: raws.iter().map(RawEvent::head).collect(),
    }
}

/// The sample log, made once per test binary.
pub fn sample() -> &'static Sample {
    static SAMPLE: OnceLock<Sample> = OnceLock::new();
    SAMPLE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(build())
    })
}

/// How long one verification of a small input may take before it counts
/// as a loop (generous: a debug build on a loaded machine).
pub const VERIFY_DEADLINE: Duration = Duration::from_secs(20);

/// `verify_export` on `bytes` in its own thread: `Err` if it panicked or
/// did not finish within [`VERIFY_DEADLINE`].
pub fn verify_bounded(bytes: &[u8], head: Option<Head>, since: Option<Head>) -> Result<ExportVerdict, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let input = bytes.to_vec();
    std::thread::spawn(move || {
        let _ = tx.send(verify_export(input.as_slice(), head, since));
    });
    match rx.recv_timeout(VERIFY_DEADLINE) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("reading from memory failed: {e}")),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(format!("no verdict within {VERIFY_DEADLINE:?}")),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err("the verifier panicked".to_owned()),
    }
}

/// The stable part of a report: `ok N events, head H`, or
/// `bad at line L position P: CODE` without the human detail.
pub fn summary(report: &str) -> String {
    match report.strip_prefix("bad at ") {
        Some(rest) => {
            let mut parts = rest.splitn(3, ": ");
            format!("bad at {}: {}", parts.next().unwrap_or(""), parts.next().unwrap_or(""))
        }
        None => report.to_owned(),
    }
}

/// The lines `verify_export` and the Python verifier see: split at `\n`,
/// a final empty piece (after a final newline) is not a line.
pub fn split_lines(bytes: &[u8]) -> Vec<&[u8]> {
    let mut lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
}

/// One python3 process imports `docs/verify_export.py` and reports on every
/// file (its `report` function is what its CLI prints): (exit status, line).
pub fn python_batch(dir: &Path, cases: &[(Vec<u8>, Option<Head>, Option<Head>)]) -> Vec<(i32, String)> {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    let mut jobs = Vec::new();
    for (i, (bytes, head, since)) in cases.iter().enumerate() {
        let path = dir.join(format!("case-{i}.ndjson"));
        std::fs::write(&path, bytes).unwrap();
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
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs (docs/verify_export.py is checked against every case)");
    let jobs = serde_json::to_string(&jobs).unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), jobs.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the python batch failed");
    let answers: Vec<(i32, String)> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(answers.len(), cases.len());
    answers
}

fn hex32(v: &Value) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(v.as_str()?, &mut out).ok()?;
    Some(out)
}

/// The keys of the hashed fields in a line of either format:
/// (position, stream, version, schema version, micros, data, metadata, prev, hash).
fn keys(v: &Value) -> [&'static str; 9] {
    if v.get("specversion").is_some() {
        [
            "position",
            "subject",
            "streamversion",
            "schemaversion",
            "recordedatmicros",
            "datajson",
            "metadatajson",
            "prevhash",
            "hash",
        ]
    } else {
        [
            "position",
            "stream",
            "version",
            "schema_version",
            "recorded_at_micros",
            "data_json",
            "metadata_json",
            "prev_hash",
            "hash",
        ]
    }
}

fn integer(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str()?.parse().ok())
}

/// The chain hash a line's content gives after `prev`, if its hashed
/// fields can be read at all.
fn line_hash(v: &Value, prev: &[u8; 32]) -> Option<[u8; 32]> {
    let k = keys(v);
    let id = Uuid::parse_str(v.get("id")?.as_str()?).ok()?;
    let micros = v.get(k[4])?;
    let micros = micros.as_i64().or_else(|| micros.as_str()?.parse().ok())?;
    Some(
        CanonicalEvent {
            position: integer(v.get(k[0])?)?,
            stream_id: v.get(k[1])?.as_str()?,
            stream_version: integer(v.get(k[2])?)?,
            event_id: id.as_bytes(),
            event_type: v.get("type")?.as_str()?,
            schema_version: u32::try_from(integer(v.get(k[3])?)?).ok()?,
            data: v.get(k[5])?.as_str()?,
            metadata: v.get(k[6])?.as_str()?,
            recorded_at_micros: micros,
        }
        .chain_hash(prev),
    )
}

/// A forger's recomputation of `prev_hash` and `hash` from line `from` on,
/// in either format (`first_prev` before the first line: [`GENESIS`] for an
/// export from position 1); a line that cannot be read as an event stops it.
pub fn rehash(lines: &mut [String], from: usize, first_prev: [u8; 32]) {
    for i in from..lines.len() {
        let prev = if i == 0 {
            Some(first_prev)
        } else {
            serde_json::from_str::<Value>(&lines[i - 1]).ok().and_then(|v| hex32(v.get("hash")?))
        };
        let Some(prev) = prev else { return };
        let Ok(mut v) = serde_json::from_str::<Value>(&lines[i]) else { return };
        let k = keys(&v);
        let Some(hash) = line_hash(&v, &prev) else { return };
        v[k[7]] = json!(hex::encode(prev));
        v[k[8]] = json!(hex::encode(hash));
        lines[i] = serde_json::to_string(&v).unwrap();
    }
}
