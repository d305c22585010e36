//! Mutations of a valid export: bytes flipped, set, inserted, deleted, the
//! file truncated, lines swapped, deleted, duplicated or given in the other
//! format, and a field edited (optionally with every later hash forged).

use proptest::prelude::*;
use serde_json::{Value, json};
use store::hash::GENESIS;

use super::Base;
use crate::export_support::{rehash, sample, split_lines};

/// Keys an edit may touch: both formats' and two that are in neither.
const KEYS: &[&str] = &[
    "position",
    "stream",
    "version",
    "id",
    "type",
    "schema_version",
    "recorded_at",
    "recorded_at_micros",
    "data_json",
    "metadata_json",
    "data",
    "actor",
    "effective_date",
    "reason",
    "command_id",
    "correlation_id",
    "causation_id",
    "prev_hash",
    "hash",
    "specversion",
    "source",
    "subject",
    "time",
    "datacontenttype",
    "streamversion",
    "schemaversion",
    "recordedatmicros",
    "datajson",
    "metadatajson",
    "prevhash",
    "commandid",
    "extra",
    "",
];

/// Byte strings worth inserting: JSON whitespace, escapes, number parts.
const INSERTS: &[&str] =
    &[" ", "\t", "\r", "\n", "\r\n", "\\", "0", "-", ".", "e", "\"", ",", "\u{feff}", "\\u0000", "\"x\":1,", "é"];

/// The new value of an edited key.
#[derive(Debug, Clone)]
pub enum NewValue {
    /// The key removed.
    Remove,
    /// This value.
    Set(Value),
    /// The same key's value on another line (a plausible forgery).
    CopyFrom(usize),
}

#[derive(Debug, Clone)]
pub enum Mutation {
    FlipBit {
        at: usize,
        bit: u8,
    },
    SetByte {
        at: usize,
        byte: u8,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    Delete {
        at: usize,
        len: usize,
    },
    Truncate {
        at: usize,
    },
    SwapLines(usize, usize),
    DeleteLine(usize),
    DuplicateLine(usize),
    /// The line replaced by the same event in the other format (allowed).
    OtherFormat(usize),
    Edit {
        line: usize,
        key: &'static str,
        value: NewValue,
        rehash: bool,
    },
}

impl Mutation {
    /// Whether this forges hashes, so that a change may pass its own line.
    pub fn rehashes(&self) -> bool {
        matches!(self, Mutation::Edit { rehash: true, .. })
    }
}

fn new_value() -> impl Strategy<Value = NewValue> {
    let texts = prop::sample::select(vec![
        "",
        "0",
        "1",
        "-0",
        "01",
        "4",
        "x",
        "grant-a",
        "grant-b",
        "GrantAwarded",
        "2024-02-29",
        "user-1",
        "{}",
        "[]",
        "null",
        "{\"n\":1}",
        "1.0",
        "application/json",
        "2.0",
    ]);
    let numbers = prop::sample::select(vec![0.0, -0.0, 1.0, 0.25, 1e300, -1.5]);
    prop_oneof![
        1 => Just(NewValue::Remove),
        1 => Just(NewValue::Set(Value::Null)),
        1 => any::<bool>().prop_map(|b| NewValue::Set(json!(b))),
        2 => (0u64..12).prop_map(|n| NewValue::Set(json!(n))),
        1 => any::<u64>().prop_map(|n| NewValue::Set(json!(n))),
        1 => any::<i64>().prop_map(|n| NewValue::Set(json!(n))),
        1 => numbers.prop_map(|f| NewValue::Set(json!(f))),
        2 => texts.prop_map(|t| NewValue::Set(json!(t))),
        1 => (0u64..12).prop_map(|n| NewValue::Set(json!(n.to_string()))),
        1 => any::<[u8; 32]>().prop_map(|h| NewValue::Set(json!(hex::encode(h)))),
        1 => Just(NewValue::Set(json!({}))),
        1 => Just(NewValue::Set(json!([]))),
        3 => (0..super::EVENTS).prop_map(NewValue::CopyFrom),
    ]
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    let inserts = prop_oneof![
        any::<u8>().prop_map(|b| vec![b]),
        prop::sample::select(INSERTS).prop_map(|s| s.as_bytes().to_vec()),
    ];
    let edit = (any::<usize>(), prop::sample::select(KEYS), new_value(), any::<bool>())
        .prop_map(|(line, key, value, rehash)| Mutation::Edit { line, key, value, rehash });
    prop_oneof![
        3 => (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::SetByte { at, byte }),
        3 => (any::<usize>(), inserts).prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        2 => (any::<usize>(), 1usize..5).prop_map(|(at, len)| Mutation::Delete { at, len }),
        1 => any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        1 => any::<usize>().prop_map(Mutation::DeleteLine),
        1 => any::<usize>().prop_map(Mutation::DuplicateLine),
        1 => any::<usize>().prop_map(Mutation::OtherFormat),
        4 => edit,
    ]
}

/// The lines of `bytes` as they will be re-joined (with `\n`, a final one
/// kept if there was one).
fn lines_of(bytes: &[u8]) -> (Vec<Vec<u8>>, bool) {
    (split_lines(bytes).into_iter().map(<[u8]>::to_vec).collect(), bytes.last() == Some(&b'\n'))
}

fn join(lines: &[Vec<u8>], final_newline: bool) -> Vec<u8> {
    let mut bytes = lines.join(&b'\n');
    if final_newline && !lines.is_empty() {
        bytes.push(b'\n');
    }
    bytes
}

/// `lines` (the base's lines) rendered as the base says, then mutated.
pub fn apply(lines: &[String], base: &Base, mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = Base::render(lines, base.crlf, base.final_newline);
    for m in mutations {
        bytes = apply_one(bytes, base, m);
    }
    bytes
}

fn apply_one(mut bytes: Vec<u8>, base: &Base, m: &Mutation) -> Vec<u8> {
    let len = bytes.len();
    match m {
        Mutation::FlipBit { at, bit } if len > 0 => bytes[at % len] ^= 1 << bit,
        Mutation::SetByte { at, byte } if len > 0 => bytes[at % len] = *byte,
        Mutation::Insert { at, bytes: b } => {
            let at = at % (len + 1);
            bytes.splice(at..at, b.iter().copied());
        }
        Mutation::Delete { at, len: n } if len > 0 => {
            let at = at % len;
            bytes.drain(at..(at + n).min(len));
        }
        Mutation::Truncate { at } => bytes.truncate(at % (len + 1)),
        Mutation::FlipBit { .. } | Mutation::SetByte { .. } | Mutation::Delete { .. } => {}
        _ => return apply_to_lines(bytes, base, m),
    }
    bytes
}

fn apply_to_lines(bytes: Vec<u8>, base: &Base, m: &Mutation) -> Vec<u8> {
    let (mut lines, final_newline) = lines_of(&bytes);
    let n = lines.len();
    if n == 0 {
        return bytes;
    }
    match m {
        Mutation::SwapLines(a, b) => lines.swap(a % n, b % n),
        Mutation::DeleteLine(a) => {
            lines.remove(a % n);
        }
        Mutation::DuplicateLine(a) => {
            let copy = lines[a % n].clone();
            lines.insert(a % n, copy);
        }
        Mutation::OtherFormat(a) => {
            let s = sample();
            let i = (base.start() + a % n).min(super::EVENTS - 1);
            let cloud = String::from_utf8_lossy(&lines[a % n]).contains("\"specversion\"");
            lines[a % n] = if cloud { s.native[i].clone() } else { s.cloud[i].clone() }.into_bytes();
        }
        Mutation::Edit { line, key, value, rehash: forge } => edit(&mut lines, base, line % n, key, value, *forge),
        _ => {}
    }
    join(&lines, final_newline)
}

fn parse(line: &[u8]) -> Option<Value> {
    serde_json::from_str(std::str::from_utf8(line).ok()?).ok()
}

fn edit(lines: &mut [Vec<u8>], base: &Base, at: usize, key: &str, value: &NewValue, forge: bool) {
    let Some(Value::Object(mut obj)) = parse(&lines[at]) else { return };
    match value {
        NewValue::Remove => {
            obj.remove(key);
        }
        NewValue::Set(v) => {
            obj.insert(key.to_owned(), v.clone());
        }
        NewValue::CopyFrom(other) => {
            let Some(v) = lines.get(*other).and_then(|l| parse(l)).and_then(|o| o.get(key).cloned()) else { return };
            obj.insert(key.to_owned(), v);
        }
    }
    lines[at] = serde_json::to_string(&Value::Object(obj)).unwrap_or_default().into_bytes();
    if !forge {
        return;
    }
    // Re-hash from the edited line on, as a forger would.
    let from = at.saturating_sub(1);
    let Ok(mut tail) = lines[from..].iter().map(|l| String::from_utf8(l.clone())).collect::<Result<Vec<_>, _>>() else {
        return;
    };
    let first_prev = base.since().filter(|_| base.resumed).map_or(GENESIS, |h| h.hash);
    rehash(&mut tail, at - from, first_prev);
    for (l, t) in lines[from..].iter_mut().zip(tail) {
        *l = t.into_bytes();
    }
}
