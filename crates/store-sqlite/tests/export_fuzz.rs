//! Fuzzing the export verifier (issue 10, section 9): `verify_export` over
//! arbitrary bytes (against arbitrary heads, near 2^64 too), arbitrary
//! lines spliced into a real export, real exports against arbitrary heads,
//! real exports (both formats, resumed, CRLF, mixed) mutated by byte flips,
//! insertions, deletions, line swaps, truncations and forged edits, and
//! doubles displayed with more digits than they need.
//!
//! Every verdict must be well formed (ok with the exact head, or a failure
//! naming a line of the input and a known code), come within a deadline (no
//! panic, no loop), agree with `docs/verify_export.py` on every case, and a
//! mutated export is `ok` with the original head exactly when each of its
//! lines is, as JSON, a line of the original event in either format (the
//! only latitude the format gives, docs/audit.md: whitespace and `\r`,
//! escapes, key order, repeated keys, number spellings of the display
//! fields, the final newline, the per-line format, the unhashed CloudEvents
//! `source`, and where an export anchored by `since` starts).
//!
//! 256 cases per property by default (about 4 s in a debug build);
//! `PROPTEST_CASES=N` runs more. Whatever breaks goes into the corpus
//! (`tests/export_corpus.rs`) with its fix.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod export_support;

use std::sync::Mutex;

use export_support::{EVENTS, RESUMED_AFTER, python_batch, rehash, sample, split_lines, summary, verify_bounded};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;
use store::export::ExportVerdict;
use store::hash::GENESIS;
use store::{Head, Position};

const CODES: [&str; 12] = [
    "malformed-line",
    "gap",
    "duplicate",
    "out-of-order",
    "prev-hash-mismatch",
    "hash-mismatch",
    "bad-payload",
    "field-mismatch",
    "stream-version",
    "time-backwards",
    "head-mismatch",
    "not-a-prefix",
];

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

/// One verification to repeat with the Python verifier.
type PyCase = (Vec<u8>, Option<Head>, Option<Head>, String);

/// Runs `property` over `strategy`, then every verification it recorded
/// through `docs/verify_export.py`, which must report the same.
fn fuzz<S: Strategy>(
    name: &str,
    strategy: S,
    property: impl Fn(S::Value, &Mutex<Vec<PyCase>>) -> Result<(), TestCaseError>,
) {
    let recorded = Mutex::new(Vec::new());
    let mut runner = TestRunner::new(Config { cases: cases(), failure_persistence: None, ..Config::default() });
    if let Err(e) = runner.run(&strategy, |value| property(value, &recorded)) {
        panic!("{name}: {e}");
    }
    let recorded = recorded.into_inner().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let jobs: Vec<_> = recorded.iter().map(|(b, h, s, _)| (b.clone(), *h, *s)).collect();
    for ((bytes, head, since, ours), (status, py)) in recorded.iter().zip(python_batch(dir.path(), &jobs)) {
        let input = String::from_utf8_lossy(bytes);
        assert_eq!(
            ours.starts_with("ok"),
            status == 0,
            "{name}: ours {ours}, python {py}\n{head:?} {since:?}\n{input}"
        );
        assert_eq!(ours, &summary(&py), "{name}: the verifiers disagree\n{head:?} {since:?}\n{input}");
    }
    // The figures of a run (seen with --nocapture; docs/reliability.md).
    #[allow(clippy::print_stderr)]
    {
        eprintln!("{name}: {} cases, {} verifications, python agreed on all", cases(), recorded.len());
    }
}

/// Verifies within the deadline, checks the verdict is well formed and
/// records it for the Python comparison.
fn verify(
    bytes: &[u8],
    head: Option<Head>,
    since: Option<Head>,
    recorded: &Mutex<Vec<PyCase>>,
) -> Result<ExportVerdict, TestCaseError> {
    let v = verify_bounded(bytes, head, since).map_err(TestCaseError::fail)?;
    let n = split_lines(bytes).len() as u64;
    let shown = v.to_string();
    prop_assert_eq!(v.ok, v.first_bad.is_none());
    match &v.first_bad {
        None => {
            prop_assert_eq!(v.checked, n, "{}", shown);
            prop_assert_eq!(v.head.is_some(), n > 0, "{}", shown);
            if let Some(h) = head {
                let exact = if n > 0 { v.head == Some(h) } else { h.position.0 == 0 && h.hash == GENESIS };
                prop_assert!(exact, "ok with {} against --head {}", shown, h);
            }
            prop_assert!(shown.starts_with(&format!("ok {n} events, head ")), "{}", shown);
        }
        Some(p) => {
            prop_assert!(CODES.contains(&p.what.as_str()), "{}", shown);
            prop_assert!((1..=n + 1).contains(&p.line), "{} lines: {}", n, shown);
            prop_assert_eq!(p.position.is_none(), p.what == "malformed-line", "{}", shown);
            prop_assert!(!p.detail.is_empty());
            // A line's own problem comes after the lines before it passed;
            // a problem found at the end, after every line passed.
            prop_assert!(v.checked == p.line - 1 || v.checked == n, "{}: {} checked", shown, v.checked);
            prop_assert!(shown.starts_with(&format!("bad at line {} position ", p.line)), "{}", shown);
        }
    }
    recorded.lock().unwrap().push((bytes.to_vec(), head, since, summary(&shown)));
    Ok(v)
}

// ---------------------------------------------------------------------
// Inputs.

/// JSON-ish fragments, so that random input reaches past the JSON parser.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\",
    "\n",
    "\r",
    " ",
    "\u{feff}",
    "null",
    "true",
    "0",
    "-0",
    "1",
    "1.0",
    "1e400",
    "18446744073709551616",
    "-9223372036854775809",
    "NaN",
    "\"\\ud800\"",
    "\"\\u00e9\"",
    "\"position\":",
    "\"hash\":",
    "\"prev_hash\":",
    "\"data\":",
    "\"data_json\":",
    "\"specversion\":\"1.0\"",
    "\"position\":\"1\"",
    "\"0000000000000000000000000000000000000000000000000000000000000000\"",
    "\"07070707-0707-0707-0707-070707070707\"",
];

fn jsonish() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..60).prop_map(|t| t.concat().into_bytes())
}

fn arbitrary_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![prop::collection::vec(any::<u8>(), 0..300), jsonish()]
}

/// A head to check against: the sample's, near the edges of `u64`, or random.
fn any_head() -> impl Strategy<Value = Option<Head>> {
    let position = prop_oneof![0u64..12, Just(u64::MAX), Just(u64::MAX - 1), any::<u64>()];
    let hash = prop_oneof![Just(GENESIS), Just(sample().head().hash), any::<[u8; 32]>()];
    prop::option::of((position, hash).prop_map(|(p, hash)| Head { position: Position(p), hash }))
}

/// A valid export of the sample log, in a form the format tolerates.
#[derive(Debug, Clone)]
struct Base {
    resumed: bool,
    /// Per line: CloudEvents instead of native.
    cloud: Vec<bool>,
    crlf: bool,
    final_newline: bool,
    /// For a full export: an earlier head (index into the heads) it must hold.
    since: Option<usize>,
}

impl Base {
    fn start(&self) -> usize {
        if self.resumed { RESUMED_AFTER } else { 0 }
    }

    fn since(&self) -> Option<Head> {
        let s = sample();
        if self.resumed { Some(s.heads[RESUMED_AFTER - 1]) } else { self.since.map(|i| s.heads[i]) }
    }

    fn lines(&self) -> Vec<String> {
        let s = sample();
        (self.start()..EVENTS).map(|i| if self.cloud[i] { s.cloud[i].clone() } else { s.native[i].clone() }).collect()
    }

    fn render(lines: &[String], crlf: bool, final_newline: bool) -> Vec<u8> {
        let eol = if crlf { "\r\n" } else { "\n" };
        let mut text = lines.join(eol);
        if final_newline {
            text.push_str(eol);
        }
        text.into_bytes()
    }
}

fn base() -> impl Strategy<Value = Base> {
    let mask =
        prop_oneof![Just(vec![false; EVENTS]), Just(vec![true; EVENTS]), prop::collection::vec(any::<bool>(), EVENTS)];
    (any::<bool>(), mask, any::<bool>(), any::<bool>(), prop::option::of(0..EVENTS))
        .prop_map(|(resumed, cloud, crlf, final_newline, since)| Base { resumed, cloud, crlf, final_newline, since })
}

/// Whether `line` is, as JSON, line `i` of the sample in either format
/// (the CloudEvents `source` may be any non-empty string).
fn same_event(line: &[u8], i: usize) -> bool {
    fn normal(mut v: Value) -> Value {
        if v.get("specversion").is_some() && v.get("source").and_then(Value::as_str).is_some_and(|s| !s.is_empty()) {
            v["source"] = serde_json::json!({ "any non-empty source": true });
        }
        v
    }
    let s = sample();
    let Some(v) = std::str::from_utf8(line).ok().and_then(|t| serde_json::from_str::<Value>(t).ok()) else {
        return false;
    };
    let parse = |l: &str| serde_json::from_str::<Value>(l).unwrap();
    i < EVENTS && (v == parse(&s.native[i]) || normal(v) == normal(parse(&s.cloud[i])))
}

/// The index of the first line of `bytes` that is not the sample's line
/// there (one past the end when it is a strict prefix); `None` when every
/// line is the sample's. The lines are compared from the position the
/// first line has, if the format lets an export start there: at 1, or (an
/// export resumed, see `docs/audit.md`) anywhere up to just after `since`.
fn first_difference(bytes: &[u8], since: Option<Head>) -> Option<usize> {
    let lines = split_lines(bytes);
    let latest = since.map_or(0, |h| h.position.0 as usize).min(EVENTS - 1);
    let start = (0..=latest).find(|k| lines.first().is_some_and(|l| same_event(l, *k))).unwrap_or(0);
    if let Some(j) = lines.iter().enumerate().position(|(j, l)| !same_event(l, start + j)) {
        return Some(j);
    }
    (lines.len() != EVENTS - start).then_some(lines.len())
}

#[path = "export_fuzz/mutation.rs"]
mod mutation;

use mutation::{Mutation, apply, mutation};

// ---------------------------------------------------------------------
// Properties.

#[test]
fn arbitrary_bytes_get_a_well_formed_verdict() {
    fuzz("arbitrary bytes", (arbitrary_bytes(), any_head(), any_head()), |(bytes, head, since), rec| {
        let v = verify(&bytes, head, since, rec)?;
        verify(&bytes, None, None, rec)?;
        // Nothing but an empty input is a valid export of no events.
        if v.ok && v.checked > 0 {
            prop_assert!(first_difference(&bytes, since).is_none());
        }
        Ok(())
    });
}

#[test]
fn an_arbitrary_line_in_a_real_export_is_named() {
    let strategy = (base(), 0..EVENTS, arbitrary_bytes());
    fuzz("an arbitrary line", strategy, |(base, at, line), rec| {
        let mut lines: Vec<Vec<u8>> = base.lines().into_iter().map(String::into_bytes).collect();
        let at = at % lines.len();
        lines[at] = line.into_iter().filter(|b| *b != b'\n').collect();
        let bytes = lines.join(&b'\n');
        let head = sample().head();
        let v = verify(&bytes, Some(head), base.since(), rec)?;
        if first_difference(&bytes, base.since()).is_none() {
            prop_assert!(v.ok);
        } else {
            prop_assert_eq!(v.first_bad.as_ref().map(|p| p.line), Some(at as u64 + 1), "{}", v);
        }
        Ok(())
    });
}

#[test]
fn a_mutated_export_is_ok_with_the_original_head_only_when_the_format_allows_the_change() {
    let strategy = (base(), prop::collection::vec(mutation(), 0..4));
    fuzz("mutated exports", strategy, |(base, mutations), rec| {
        let head = sample().head();
        let since = base.since();
        let lines = base.lines();
        let original = Base::render(&lines, base.crlf, base.final_newline);
        // The untouched base: every variant it stands for verifies.
        prop_assert!(verify(&original, Some(head), since, rec)?.ok);
        let bytes = apply(&lines, &base, &mutations);
        let forged = mutations.iter().any(Mutation::rehashes);
        let v = verify(&bytes, Some(head), since, rec)?;
        let unanchored = verify(&bytes, None, since, rec)?;
        match first_difference(&bytes, since) {
            None => prop_assert!(v.ok && unanchored.ok, "{}", v),
            Some(j) => {
                prop_assert!(!v.ok, "a changed export passed with the original head");
                let line = v.first_bad.as_ref().map_or(0, |p| p.line);
                // With no forged re-hash, the first changed line is named;
                // a forger's re-hashed lines are caught there or later.
                if forged {
                    prop_assert!(line > j as u64, "named line {} before the first change {}", line, j + 1);
                } else {
                    prop_assert_eq!(line, j as u64 + 1, "{}", v);
                }
            }
        }
        Ok(())
    });
}

#[test]
fn a_real_export_against_any_heads_gets_a_well_formed_verdict() {
    fuzz(
        "any heads",
        (base(), prop::collection::vec(mutation(), 0..2), any_head(), any_head()),
        |(base, m, head, since), rec| {
            let bytes = apply(&base.lines(), &base, &m);
            let v = verify(&bytes, head, since, rec)?;
            // Only the sample's own heads can pass (or none, or a since of 0).
            if v.ok {
                let s = sample();
                prop_assert!(head.is_none_or(|h| h == s.head()), "{}", v);
                prop_assert!(
                    since.is_none_or(|h| s.heads.contains(&h) || (h.position.0 == 0 && h.hash == GENESIS)),
                    "{}",
                    v
                );
            }
            Ok(())
        },
    );
}

/// `docs/audit.md`: a number that is not an integer is the double nearest
/// to it. A stored double shown with up to 60 significant digits (so past
/// the 17 that identify it, where a parser that is not correctly rounded
/// drifts) is the same double for both verifiers.
#[test]
fn a_displayed_double_with_more_digits_is_the_stored_double() {
    let finite = any::<f64>().prop_filter("a JSON number is finite", |f| f.is_finite());
    fuzz("long doubles", (finite, 16usize..60), |(f, digits), rec| {
        let stored = serde_json::to_string(&serde_json::json!({ "x": f })).unwrap();
        let shown = format!("{{\"x\":{f:.digits$e}}}");
        let mut lines = sample().native.clone();
        let last = EVENTS - 1;
        let mut v: Value = serde_json::from_str(&lines[last]).unwrap();
        v["data_json"] = serde_json::json!(stored);
        v["data"] = serde_json::json!("@@");
        lines[last] = serde_json::to_string(&v).unwrap();
        rehash(&mut lines, last, GENESIS);
        lines[last] = lines[last].replace("\"@@\"", &shown);
        let v = verify(lines.join("\n").as_bytes(), None, None, rec)?;
        prop_assert!(v.ok, "{} shown as {}: {}", stored, shown, v);
        Ok(())
    });
}
