//! Writes the export corpus from the sample log (`export_support::sample`,
//! a real SQLite log of 9 events in streams grant-a, grant-b, grant-c, by
//! turns), each file with the verdict this code expects of it.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use store::hash::GENESIS;
use store::{Head, Position};

use crate::export_support::{RESUMED_AFTER, rehash, sample};

struct Corpus {
    dir: PathBuf,
    rows: Vec<String>,
}

fn show(head: Option<Head>) -> String {
    head.map_or_else(|| "-".to_owned(), |h| h.to_string())
}

impl Corpus {
    fn row(&mut self, file: &str, head: Option<Head>, since: Option<Head>, expected: String) {
        self.rows.push(format!("{file}\t{}\t{}\t{expected}", show(head), show(since)));
    }

    fn bytes(&mut self, file: &str, bytes: &[u8], head: Option<Head>, since: Option<Head>, expected: String) {
        std::fs::write(self.dir.join(file), bytes).unwrap();
        self.row(file, head, since, expected);
    }

    fn lines(&mut self, file: &str, lines: &[String], head: Option<Head>, since: Option<Head>, expected: String) {
        let mut text = lines.join("\n");
        if !lines.is_empty() {
            text.push('\n');
        }
        self.bytes(file, text.as_bytes(), head, since, expected);
    }
}

fn ok(n: usize, head: Head) -> String {
    format!("ok {n} events, head {head}")
}

fn bad(line: usize, position: Option<u64>, code: &str) -> String {
    format!("bad at line {line} position {}: {code}", position.map_or_else(|| "-".to_owned(), |p| p.to_string()))
}

fn malformed(line: usize) -> String {
    bad(line, None, "malformed-line")
}

fn edit(lines: &[String], i: usize, f: impl FnOnce(&mut Value)) -> Vec<String> {
    let mut lines = lines.to_vec();
    let mut v: Value = serde_json::from_str(&lines[i]).unwrap();
    f(&mut v);
    lines[i] = serde_json::to_string(&v).unwrap();
    lines
}

fn replace(lines: &[String], i: usize, from: &str, to: &str) -> Vec<String> {
    let mut lines = lines.to_vec();
    assert!(lines[i].contains(from), "{from:?} in line {i}");
    lines[i] = lines[i].replacen(from, to, 1);
    lines
}

/// Sets line `i`'s stored payload and its display to `text`, re-hashed on.
fn forge_payload(lines: &[String], i: usize, text: &str) -> Vec<String> {
    let mut l = edit(lines, i, |v| {
        v["data_json"] = json!(text);
        v["data"] = json!("@@");
    });
    l[i] = l[i].replace("\"@@\"", text);
    rehash(&mut l, i, GENESIS);
    l
}

/// Like [`replace`], at the last occurrence (in the display `data`, which
/// a native line has after the stored `data_json`).
fn replace_last(lines: &[String], i: usize, from: &str, to: &str) -> Vec<String> {
    let mut lines = lines.to_vec();
    let at = lines[i].rfind(from).unwrap_or_else(|| panic!("{from:?} in line {i}"));
    lines[i].replace_range(at..at + from.len(), to);
    lines
}

fn head_of(line: &str) -> Head {
    let v: Value = serde_json::from_str(line).unwrap();
    let mut hash = [0u8; 32];
    hex::decode_to_slice(v["hash"].as_str().unwrap(), &mut hash).unwrap();
    Head { position: Position(v["position"].as_u64().unwrap()), hash }
}

pub fn write(dir: &Path) {
    if dir.exists() {
        std::fs::remove_dir_all(dir).unwrap();
    }
    std::fs::create_dir_all(dir).unwrap();
    let mut c = Corpus { dir: dir.to_owned(), rows: Vec::new() };
    valid(&mut c);
    tampered(&mut c);
    reordered(&mut c);
    forged(&mut c);
    awkward(&mut c);
    awkward_values(&mut c);
    found_by_fuzzing(&mut c);
    let mut text = "# FILE\tHEAD\tSINCE\tVERDICT (tab-separated; written by export_corpus/generate.rs)\n".to_owned();
    for r in &c.rows {
        text.push_str(r);
        text.push('\n');
    }
    std::fs::write(dir.join("MANIFEST"), text).unwrap();
}

fn valid(c: &mut Corpus) {
    let s = sample();
    let (n, h) = (s.native.clone(), s.head());
    c.lines("native.ndjson", &n, Some(h), None, ok(9, h));
    c.row("native.ndjson", None, None, ok(9, h));
    c.row("native.ndjson", Some(h), Some(s.heads[4]), ok(9, h));
    c.lines("cloud.ndjson", &s.cloud, Some(h), None, ok(9, h));
    let mixed: Vec<String> = (0..9).map(|i| if i % 2 == 0 { n[i].clone() } else { s.cloud[i].clone() }).collect();
    c.lines("mixed-formats.ndjson", &mixed, Some(h), None, ok(9, h));
    let crlf: Vec<String> = n.iter().map(|l| format!("{l}\r")).collect();
    c.lines("crlf.ndjson", &crlf, Some(h), None, ok(9, h));
    c.bytes("no-final-newline.ndjson", n.join("\n").as_bytes(), Some(h), None, ok(9, h));
    let resumed = n[RESUMED_AFTER..].to_vec();
    let anchor = s.heads[RESUMED_AFTER - 1];
    c.lines("resumed.ndjson", &resumed, Some(h), Some(anchor), ok(6, h));
    c.row("resumed.ndjson", None, None, bad(1, Some(1), "gap"));
    let wrong = Head { position: anchor.position, hash: [9; 32] };
    c.row("resumed.ndjson", None, Some(wrong), bad(1, Some(3), "not-a-prefix"));
    c.lines("empty.ndjson", &[], None, None, "ok 0 events, head -".to_owned());
    c.row("empty.ndjson", Some(Head { position: Position(0), hash: GENESIS }), None, "ok 0 events, head -".to_owned());
    c.row("empty.ndjson", Some(h), None, bad(1, Some(9), "head-mismatch"));
    let other: Vec<String> =
        (0..9).map(|i| edit(&s.cloud, i, |v| v["source"] = json!("urn:x-other"))[i].clone()).collect();
    c.lines("cloud-other-source.ndjson", &other, Some(h), None, ok(9, h));
    // Key order, JSON whitespace, escapes and a repeated key (the last counts).
    let mut respelled = n.clone();
    let sorted = serde_json::to_string(&serde_json::from_str::<Value>(&n[0]).unwrap()).unwrap();
    respelled[0] = format!("{{ \"actor\":\"nobody\",\t{} }}", &sorted[1..sorted.len() - 1]).replace('é', "\\u00e9");
    c.lines("respelled.ndjson", &respelled, Some(h), None, ok(9, h));
}

/// Hashed texts and fields for readers changed.
fn tampered(c: &mut Corpus) {
    let s = sample();
    let n = s.native.clone();
    c.lines(
        "payload-byte.ndjson",
        &replace(&n, 4, "\\\"n\\\":4", "\\\"n\\\":5"),
        None,
        None,
        bad(5, Some(5), "hash-mismatch"),
    );
    let l = edit(&s.cloud, 4, |v| v["datajson"] = json!(v["datajson"].as_str().unwrap().replacen("Café", "Cafe", 1)));
    c.lines("cloud-payload.ndjson", &l, None, None, bad(5, Some(5), "hash-mismatch"));
    for (field, value) in [
        ("actor", json!("user-9")),
        ("reason", json!("nothing to see")),
        ("effective_date", json!("1999-12-31")),
        ("recorded_at", json!("2001-01-01T00:00:00.000000Z")),
        ("data", json!({ "n": 5 })),
    ] {
        let file = format!("display-{}.ndjson", field.replace('_', "-"));
        c.lines(&file, &edit(&n, 5, |v| v[field] = value), None, None, bad(6, Some(6), "field-mismatch"));
    }
    let double = edit(&n, 5, |v| v["data"]["n"] = json!(5.0));
    c.lines("display-integer-as-double.ndjson", &double, None, None, bad(6, Some(6), "field-mismatch"));
    let time = edit(&s.cloud, 5, |v| v["time"] = json!("2001-01-01T00:00:00.000000Z"));
    c.lines("cloud-display-time.ndjson", &time, None, None, bad(6, Some(6), "field-mismatch"));
    let actor = edit(&s.cloud, 5, |v| v["actor"] = json!("user-9"));
    c.lines("cloud-display-actor.ndjson", &actor, None, None, bad(6, Some(6), "field-mismatch"));
}

/// Lines deleted, inserted, moved or cut; heads that do not match.
fn reordered(c: &mut Corpus) {
    let s = sample();
    let (n, h) = (s.native.clone(), s.head());
    let mut l = n.clone();
    l.remove(4);
    c.lines("deleted-line.ndjson", &l, None, None, bad(5, Some(5), "gap"));
    let mut forged = edit(&n, 6, |v| {
        v["data_json"] = json!(r#"{"n":-1,"amount":"999999.00 EUR"}"#);
        v["data"] = json!({ "n": -1, "amount": "999999.00 EUR" });
        v["id"] = json!("01890000-0000-7000-8000-000000000001");
    });
    rehash(&mut forged[..7], 6, GENESIS);
    let mut l = n.clone();
    l.insert(6, forged[6].clone());
    c.lines("inserted-line.ndjson", &l, None, None, bad(8, Some(7), "duplicate"));
    let mut l = n.clone();
    l.insert(3, n[0].clone());
    c.lines("earlier-line-again.ndjson", &l, None, None, bad(4, Some(1), "out-of-order"));
    let mut l = n.clone();
    l.swap(2, 5);
    c.lines("lines-swapped.ndjson", &l, None, None, bad(3, Some(3), "gap"));
    let mut l = n.clone();
    l.swap(6, 7);
    c.lines("neighbours-swapped.ndjson", &l, None, None, bad(7, Some(7), "gap"));
    c.lines("truncated.ndjson", &n[..6], Some(h), None, bad(7, Some(9), "head-mismatch"));
    c.row("truncated.ndjson", None, Some(h), bad(7, Some(9), "not-a-prefix"));
    c.row("native.ndjson", Some(s.heads[4]), None, bad(6, Some(6), "head-mismatch"));
    // Two events of different streams and versions swap streams.
    let (a, b) = (n[3].clone(), n[7].clone());
    let stream = |line: &str| serde_json::from_str::<Value>(line).unwrap()["stream"].clone();
    let l = edit(&edit(&n, 3, |v| v["stream"] = stream(&b)), 7, |v| v["stream"] = stream(&a));
    c.lines("streams-swapped.ndjson", &l, None, None, bad(4, Some(4), "hash-mismatch"));
    let mut l = l;
    rehash(&mut l, 3, GENESIS);
    c.lines("streams-swapped-rehashed.ndjson", &l, None, None, bad(5, Some(5), "stream-version"));
}

/// Forgers who recompute hashes, and hashed texts that are not JSON.
fn forged(c: &mut Corpus) {
    let s = sample();
    let (n, h) = (s.native.clone(), s.head());
    // A forged payload with every later hash recomputed: only heads catch it.
    let l = forge_payload(&n, 6, r#"{"n":7,"amount":"1.00 EUR"}"#);
    let forged_head = head_of(&l[8]);
    c.lines("rehashed-tail.ndjson", &l, None, None, ok(9, forged_head));
    c.row("rehashed-tail.ndjson", None, Some(s.heads[4]), ok(9, forged_head));
    c.row("rehashed-tail.ndjson", Some(h), None, bad(9, Some(9), "head-mismatch"));
    c.row("rehashed-tail.ndjson", None, Some(h), bad(9, Some(9), "not-a-prefix"));
    c.row("rehashed-tail.ndjson", None, Some(s.heads[7]), bad(8, Some(8), "not-a-prefix"));
    let l = edit(&n, 3, |v| v["prev_hash"] = json!(hex::encode([1u8; 32])));
    c.lines("prev-hash.ndjson", &l, None, None, bad(4, Some(4), "prev-hash-mismatch"));
    c.lines("unknown-key.ndjson", &replace(&n, 4, "{", "{\"extra\":1,"), None, None, malformed(5));
    let mut l = n.clone();
    let half = (0..=l[5].len() / 2).rev().find(|i| l[5].is_char_boundary(*i)).unwrap_or(0);
    l[5].truncate(half);
    c.lines("half-a-line.ndjson", &l, None, None, malformed(6));
    c.lines("position-as-double.ndjson", &edit(&n, 2, |v| v["position"] = json!(3.0)), None, None, malformed(3));
    let mut l = edit(&n, 5, |v| {
        let micros = v["recorded_at_micros"].as_i64().unwrap() - 10_000_000;
        v["recorded_at_micros"] = json!(micros);
        v["recorded_at"] = json!(store::export::rfc3339_micros(micros));
    });
    rehash(&mut l, 5, GENESIS);
    c.lines("time-backwards-rehashed.ndjson", &l, None, None, bad(6, Some(6), "time-backwards"));
    let mut l = edit(&n, 2, |v| {
        v["data_json"] = json!("not json");
        v["data"] = Value::Null;
    });
    rehash(&mut l, 2, GENESIS);
    c.lines("payload-not-json-rehashed.ndjson", &l, None, None, bad(3, Some(3), "bad-payload"));
    let mut l = edit(&n, 2, |v| v["metadata_json"] = json!("[]"));
    rehash(&mut l, 2, GENESIS);
    c.lines("metadata-not-an-object-rehashed.ndjson", &l, None, None, bad(3, Some(3), "bad-payload"));
}

fn awkward(c: &mut Corpus) {
    let s = sample();
    let (n, h) = (s.native.clone(), s.head());
    let mut l = n.clone();
    l[0] = format!("\u{feff}{}", l[0]);
    c.lines("bom.ndjson", &l, Some(h), None, malformed(1));
    let mut l = n.clone();
    l.push(String::new());
    c.lines("blank-last-line.ndjson", &l, Some(h), None, malformed(10));
    let mut l = n.clone();
    l.insert(3, String::new());
    c.lines("blank-line.ndjson", &l, Some(h), None, malformed(4));
    c.bytes("cr-only-line-ends.ndjson", n.join("\r").as_bytes(), Some(h), None, malformed(1));
    let l = replace(&n, 1, "\"hash\":", "\"actor\":\"forged\",\"hash\":");
    c.lines("repeated-key-last-wrong.ndjson", &l, Some(h), None, bad(2, Some(2), "field-mismatch"));
    c.lines("lone-surrogate.ndjson", &replace(&n, 1, "Café", "Caf\\ud800"), Some(h), None, malformed(2));
    c.lines("reversed-surrogates.ndjson", &replace(&n, 1, "Café", "Caf\\udc00\\ud800"), Some(h), None, malformed(2));
    // The last line's payload forged (re-hashed) to hold awkward values.
    let last = |text: &str| forge_payload(&n, 8, text);
    let l = last(r#"{"emoji":"😀"}"#);
    let emoji = replace(&l, 8, "\"data\":{\"emoji\":\"😀\"}", "\"data\":{\"emoji\":\"\\ud83d\\ude00\"}");
    c.lines("surrogate-pair-display.ndjson", &emoji, Some(head_of(&l[8])), None, ok(9, head_of(&l[8])));
    let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
    let l = last(&deep);
    c.lines("deep-nesting-100.ndjson", &l, Some(head_of(&l[8])), None, ok(9, head_of(&l[8])));
    let long = format!(r#"{{"note":"{}"}}"#, "Zuschuss für Café ☕ ".repeat(1500));
    let l = last(&long);
    c.lines("long-line.ndjson", &l, Some(head_of(&l[8])), None, ok(9, head_of(&l[8])));
    let mut l = n.clone();
    l[4] = "{\"position\":5,".repeat(3000);
    c.lines("long-garbage-line.ndjson", &l, Some(h), None, malformed(5));
    let l = last(r#"{"z":-0,"big":1e308,"tiny":1e-400}"#);
    c.lines("extreme-doubles.ndjson", &l, Some(head_of(&l[8])), None, ok(9, head_of(&l[8])));
}

/// Numbers, encodings and CloudEvents attributes out of the format.
fn awkward_values(c: &mut Corpus) {
    let s = sample();
    let (n, h) = (s.native.clone(), s.head());
    let big = "18446744073709551615";
    c.lines("display-number-beyond-doubles.ndjson", &replace_last(&n, 1, big, "1e400"), Some(h), None, malformed(2));
    let digits = format!("1{}", "0".repeat(400));
    c.lines("display-400-digit-integer.ndjson", &replace_last(&n, 1, big, &digits), Some(h), None, malformed(2));
    let l = replace_last(&n, 1, big, "18446744073709551616");
    c.lines("display-u64-max-plus-one.ndjson", &l, Some(h), None, bad(2, Some(2), "field-mismatch"));
    c.lines("display-nan.ndjson", &replace_last(&n, 1, big, "NaN"), Some(h), None, malformed(2));
    c.lines(
        "position-2-pow-64.ndjson",
        &replace(&n, 1, "\"position\":2,", "\"position\":18446744073709551616,"),
        Some(h),
        None,
        malformed(2),
    );
    c.lines(
        "version-negative-zero.ndjson",
        &replace(&n, 0, "\"version\":0,", "\"version\":-0,"),
        Some(h),
        None,
        malformed(1),
    );
    c.lines(
        "position-zero.ndjson",
        &replace(&n, 0, "\"position\":1,", "\"position\":0,"),
        Some(h),
        None,
        bad(1, Some(0), "gap"),
    );
    c.lines("raw-tab-in-string.ndjson", &replace(&n, 1, "\\t", "\t"), Some(h), None, malformed(2));
    let upper = edit(&n, 1, |v| v["hash"] = json!(v["hash"].as_str().unwrap().to_uppercase()));
    c.lines("uppercase-hash.ndjson", &upper, Some(h), None, malformed(2));
    let mut bytes = n.join("\n").into_bytes();
    let at = bytes.iter().position(|b| *b == b'C').unwrap();
    bytes.insert(at, 0xff);
    c.bytes("invalid-utf8.ndjson", &bytes, Some(h), None, malformed(1));
    let mut bytes = n.join("\n").into_bytes();
    bytes.splice(at..at, [0xed, 0xa0, 0x80]);
    c.bytes("utf8-encoded-surrogate.ndjson", &bytes, Some(h), None, malformed(1));
    let zero = edit(&s.cloud, 1, |v| v["position"] = json!("02"));
    c.lines("cloud-leading-zero.ndjson", &zero, Some(h), None, malformed(2));
    let minus = edit(&s.cloud, 1, |v| v["recordedatmicros"] = json!("-0"));
    c.lines("cloud-negative-zero-micros.ndjson", &minus, Some(h), None, malformed(2));
    let spec = edit(&s.cloud, 1, |v| v["specversion"] = json!("1.1"));
    c.lines("cloud-specversion.ndjson", &spec, Some(h), None, malformed(2));
    let source = edit(&s.cloud, 1, |v| v["source"] = json!(""));
    c.lines("cloud-empty-source.ndjson", &source, Some(h), None, malformed(2));
}

/// Inputs the fuzzing found to break something (see the test of each fix).
fn found_by_fuzzing(c: &mut Corpus) {
    let s = sample();
    let h = s.head();
    let far = |hash| Head { position: Position(u64::MAX), hash };
    // serde_json's default float parsing is not correctly rounded: these
    // displayed doubles are the stored ones (nearest; ties to even), yet
    // were a `field-mismatch` for the Rust verifier and ok for Python.
    let n = &s.native;
    for (file, stored, shown) in [
        ("display-double-halfway.ndjson", "1.0", "1.00000000000000011102230246251565404236316680908203125"),
        ("display-double-subnormal-edge.ndjson", "2.225073858507201e-308", "2.2250738585072011e-308"),
    ] {
        let l = forge_payload(n, 8, &format!("{{\"x\":{stored}}}"));
        let l = replace_last(&l, 8, &format!("{{\"x\":{stored}}}"), &format!("{{\"x\":{shown}}}"));
        c.lines(file, &l, Some(head_of(&l[8])), None, ok(9, head_of(&l[8])));
    }
    // An expected head at position 2^64 - 1 overflowed `h + 1`.
    c.row("native.ndjson", Some(far(h.hash)), None, bad(10, Some(u64::MAX), "head-mismatch"));
    c.row(
        "resumed.ndjson",
        Some(far(h.hash)),
        Some(s.heads[RESUMED_AFTER - 1]),
        bad(7, Some(u64::MAX), "head-mismatch"),
    );
    // An earlier head at position 2^64 - 1 overflowed `since + 1` for an
    // export that does not start at 1 (and was a wrong `gap` in release).
    c.row("resumed.ndjson", None, Some(far(h.hash)), bad(7, Some(u64::MAX), "not-a-prefix"));
    c.row("native.ndjson", None, Some(far(h.hash)), bad(10, Some(u64::MAX), "not-a-prefix"));
}
