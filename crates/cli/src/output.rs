//! What the binary prints for people (logs go through `tracing` to stderr).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;

/// A line on stdout, flushed at once (scripts and tests wait for it).
pub fn line(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// An error on stderr.
pub fn error(text: &str) {
    eprintln!("error: {text}");
}
