//! One data directory, one process: a second server, or an offline
//! `rebuild-views`, on a directory a server is using is refused with an
//! error naming the lock file, and the first server goes on serving. (Two
//! processes writing one `views.sqlite` each found the other's tables
//! swapped under it and moved the file aside, again and again.)

use std::process::Command;
use std::time::Duration;

use crate::harness::{ADMIN_TOKEN, Server, binary, run_bounded};

/// Longer than the lock's wait (5 s) and a start.
const WITHIN: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_second_process_on_a_data_directory_in_use_is_refused_and_the_first_keeps_serving() {
    let mut server = Server::start();
    let dir = server.data_dir();
    let (code, _, err) = run_bounded(
        Command::new(binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&dir)
            .env("GRANTLOG_ADMIN_TOKEN", ADMIN_TOKEN),
        WITHIN,
    );
    assert!(code.is_some_and(|c| c != 0), "a second server on the directory started (exit {code:?}): {err}");
    assert!(err.contains("grantlog.lock") && err.contains("another grantlog process"), "{err}");

    let (code, _, err) = run_bounded(Command::new(binary()).args(["rebuild-views", "--data-dir"]).arg(&dir), WITHIN);
    assert!(code.is_some_and(|c| c != 0), "rebuild-views ran beside the server (exit {code:?}): {err}");
    assert!(err.contains("grantlog.lock") && err.contains("Stop the server first"), "{err}");

    let ready = server.api().get("", "/readyz").await;
    assert_eq!((ready.status.as_u16(), ready.body["status"].as_str()), (200, Some("ok")), "{}", ready.text);

    // Stopped, the server lets the directory go.
    server.stop();
    let (code, out, err) = run_bounded(Command::new(binary()).args(["rebuild-views", "--data-dir"]).arg(&dir), WITHIN);
    assert_eq!(code, Some(0), "{out}{err}");
    server.start_again();
    let ready = server.api().get("", "/readyz").await;
    assert_eq!(ready.status.as_u16(), 200, "{}", ready.text);
}

/// `GRANTLOG_REBUILD_MMAP_BYTES` sets how much of the log a rebuild maps
/// (0: none, the log read with `pread`): the views rebuilt either way are
/// the log's; a value that is not a number of bytes is refused, naming
/// the variable.
#[tokio::test]
async fn the_rebuild_map_is_set_by_its_variable_and_a_bad_value_is_refused() {
    // The NCTCR scenario's log: a rebuild reads its streams.
    let mut server = Server::start_with(&["demo"]);
    server.stop();
    let dir = server.data_dir();
    let rebuild = |value: &str| {
        run_bounded(
            Command::new(binary())
                .args(["rebuild-views", "--data-dir"])
                .arg(&dir)
                .env("GRANTLOG_REBUILD_MMAP_BYTES", value),
            WITHIN,
        )
    };
    for value in ["0", "4096", "17179869184"] {
        let (code, out, err) = rebuild(value);
        assert_eq!(code, Some(0), "{value}: {out}{err}");
        assert!(out.contains("equal"), "{value}: {out}");
    }
    let (code, out, err) = rebuild("lots");
    assert!(code.is_some_and(|c| c != 0), "a bad value was taken: {out}{err}");
    assert!(err.contains("GRANTLOG_REBUILD_MMAP_BYTES") && err.contains("not a number of bytes"), "{err}");
}
