//! The checked-in export corpus, `tests/corpus/export/`: valid exports of
//! both formats, every export-level tampering of `tests/audit.rs` as a file,
//! awkward JSON, and every input the fuzzing (`tests/export_fuzz.rs`) found
//! to break something. `MANIFEST` gives, per row, a file, the `--head` and
//! `--since` to check it with (`-` for none) and the verdict expected
//! (`ok N events, head H` or `bad at line L position P: CODE`); both
//! `verify_export` and `docs/verify_export.py` must report exactly that.
//!
//! The files were made from a real SQLite log by
//! `GRANTLOG_EXPORT_CORPUS_WRITE=1 cargo test -p store --test export_corpus`
//! (see `export_corpus/generate.rs`, which also states each expected
//! verdict); once made, they are seed files and stay as they are.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod export_support;
#[path = "export_corpus/generate.rs"]
mod generate;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use export_support::{python_batch, summary, verify_bounded};
use store::Head;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/export")
}

/// One row of the manifest.
struct Row {
    file: String,
    head: Option<Head>,
    since: Option<Head>,
    expected: String,
}

fn head(field: &str) -> Option<Head> {
    (field != "-").then(|| field.parse().unwrap_or_else(|e| panic!("manifest head {field:?}: {e}")))
}

fn manifest(dir: &Path) -> Vec<Row> {
    let text = std::fs::read_to_string(dir.join("MANIFEST")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let fields: Vec<&str> = l.split('\t').collect();
            assert_eq!(fields.len(), 4, "a manifest row is FILE, HEAD, SINCE, VERDICT separated by tabs: {l:?}");
            Row {
                file: fields[0].to_owned(),
                head: head(fields[1]),
                since: head(fields[2]),
                expected: fields[3].to_owned(),
            }
        })
        .collect()
}

#[test]
fn every_corpus_file_gets_its_recorded_verdict_from_both_verifiers() {
    let dir = corpus_dir();
    if std::env::var_os("GRANTLOG_EXPORT_CORPUS_WRITE").is_some() {
        generate::write(&dir);
    }
    let rows = manifest(&dir);
    assert!(rows.len() >= 40, "the corpus has {} rows", rows.len());

    // Every file is listed, and every listed file exists.
    let files: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f != "MANIFEST")
        .collect();
    let listed: BTreeSet<String> = rows.iter().map(|r| r.file.clone()).collect();
    assert_eq!(files, listed, "the files of {} and its MANIFEST differ", dir.display());

    let mut jobs = Vec::new();
    for row in &rows {
        let bytes = std::fs::read(dir.join(&row.file)).unwrap();
        let verdict = verify_bounded(&bytes, row.head, row.since).unwrap_or_else(|e| panic!("{}: {e}", row.file));
        let found = summary(&verdict.to_string());
        assert_eq!(found, row.expected, "{}: the Rust verifier", row.file);
        jobs.push((bytes, row.head, row.since));
    }
    let scratch = tempfile::tempdir().unwrap();
    for (row, (status, py)) in rows.iter().zip(python_batch(scratch.path(), &jobs)) {
        assert_eq!(summary(&py), row.expected, "{}: docs/verify_export.py", row.file);
        assert_eq!(status == 0, row.expected.starts_with("ok "), "{}: python's exit status", row.file);
    }
}
