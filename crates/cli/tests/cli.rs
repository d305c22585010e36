//! The binary's command line. Also makes `cargo test --workspace` build the
//! real `grantlog` binary, which the end-to-end tests in `tests/` start.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::process::Command;

#[test]
fn help_names_every_command() {
    let out = Command::new(env!("CARGO_BIN_EXE_grantlog")).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for command in ["serve", "demo"] {
        assert!(text.contains(command), "{command} missing from --help:\n{text}");
    }
}
