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
