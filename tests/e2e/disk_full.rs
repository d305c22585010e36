//! A full disk during concurrent writes, on a small file system of its own
//! (a size-limited tmpfs holding the whole data directory: the log, the
//! views and the API's file), then space freed: only refused writes answer
//! 507, nothing refused is recorded, reads keep working, and everything
//! resumes without a restart.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::bodies::{award, budget_line, expenditure, programme, workstream};
use crate::client::Api;
use crate::harness::{ADMIN_TOKEN, Server};

const GRANT: &str = "grant-full";
const TMPFS_BYTES: u64 = 24 << 20;

/// A tmpfs mounted at a path, unmounted when dropped.
#[derive(Debug)]
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, bytes: u64) -> Self {
        std::fs::create_dir_all(at).expect("the mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("mount runs");
        assert!(status.success(), "mounting a tmpfs at {} failed (this test runs as root)", at.display());
        Self(at.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system holding `filler` until `room` bytes are left, so
/// that it fills up during the writes that follow (some commits of the log
/// fit, then the log, the views or the API's file runs out, in any order).
fn fill(filler: &Path, room: u64) {
    let mut file = std::fs::File::create(filler).expect("the filler file");
    let chunk = vec![0u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
    let len = file.metadata().expect("the filler's size").len();
    file.set_len(len.saturating_sub(room)).expect("the filler shrinks");
}

async fn write(api: &Api, id: &str) -> (u16, Value) {
    let body = expenditure(id, "WP1-PER", "0.01", "2022-05-02", "sup-full", id, None);
    let path = format!("/api/v1/grants/{GRANT}/expenditures");
    let reply = api.post_with(ADMIN_TOKEN, &path, &body, &[("Idempotency-Key", id)]).await;
    (reply.status.as_u16(), reply.body)
}

async fn wait_for(what: &str, mut ok: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok().await {
        assert!(Instant::now() < deadline, "{what} did not happen within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_only_what_it_does_not_record_and_recovers_without_a_restart() {
    let mut mount = None;
    let server = Server::start_prepared(&["serve"], &[], |data| mount = Some(Tmpfs::mount(data, TMPFS_BYTES)));
    let api = server.api();
    let line = budget_line("WP1", "PER", "90000.00", "2022-01-01");
    for (path, body) in [
        ("/api/v1/programmes".to_owned(), programme("prog-full", "Full", None)),
        ("/api/v1/grants".to_owned(), award(GRANT, "prog-full", "100000.00")),
        (format!("/api/v1/grants/{GRANT}/workstreams"), workstream("WP1", "W", "2022-01-01")),
        (format!("/api/v1/grants/{GRANT}/budget-lines"), line),
    ] {
        api.post(ADMIN_TOKEN, &path, &body).await.written(201);
    }
    let filler = server.data_dir().join("filler");
    fill(&filler, 384 * 1024);

    // Writers while the disk is full: each answer is 201 or 507.
    let tasks: Vec<_> = (0..8)
        .map(|w| {
            let api = server.api();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                for n in 0..40 {
                    let id = format!("F-{w}-{n}");
                    let (status, body) = write(&api, &id).await;
                    seen.push((id, status, body));
                }
                seen
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.extend(t.await.expect("a writer"));
    }
    // Reads keep working on a full disk.
    api.get(ADMIN_TOKEN, &format!("/api/v1/grants/{GRANT}/budget")).await.expect_status(200);
    api.get(ADMIN_TOKEN, &format!("/api/v1/grants/{GRANT}/history?limit=10")).await.expect_status(200);
    let refused: Vec<&String> = answers.iter().filter(|(_, s, _)| *s == 507).map(|(id, _, _)| id).collect();
    for (id, status, body) in &answers {
        assert!(*status == 201 || *status == 507, "{id}: {status} {body}");
        if *status == 507 {
            assert_eq!(body["code"], "storage-full", "{body}");
        }
    }
    assert!(!refused.is_empty(), "the disk never filled: every write was recorded");

    // Space comes back: no restart, refused writes retried with their key
    // are recorded once, new writes too, and the views catch up.
    std::fs::remove_file(&filler).expect("the filler removed");
    let mut acknowledged: Vec<String> =
        answers.iter().filter(|(_, s, _)| *s == 201).map(|(id, _, _)| id.clone()).collect();
    let recorded_while_full = api.expenditure_ids(GRANT).await;
    for id in &refused {
        assert!(!recorded_while_full.contains(id), "{id} was answered 507 but is recorded");
        let (status, body) = write(&api, id).await;
        assert_eq!(status, 201, "{id} after space came back: {body}");
        acknowledged.push((*id).clone());
    }
    let (status, body) = write(&api, "F-after").await;
    assert_eq!(status, 201, "{body}");
    acknowledged.push("F-after".into());
    let head = body["position"].as_u64().expect("a position");
    let recorded = api.expenditure_ids(GRANT).await;
    for id in &acknowledged {
        assert_eq!(recorded.iter().filter(|r| *r == id).count(), 1, "{id} acknowledged but recorded {recorded:?}");
    }
    assert_eq!(recorded.len(), acknowledged.len(), "the log holds writes no client was told of");
    wait_for("/readyz ready again", async || api.get(ADMIN_TOKEN, "/readyz").await.status == 200).await;
    let path = format!("/api/v1/grants/{GRANT}/budget?min_position={head}");
    wait_for("the budget at the head", async || api.get(ADMIN_TOKEN, &path).await.status == 200).await;
    let budget = api.get(ADMIN_TOKEN, &path).await.expect_status(200).body;
    let n = acknowledged.len();
    assert_eq!(budget["lines"][0]["spent"]["amount"], json!(format!("{}.{:02}", n / 100, n % 100)), "{budget}");
    eprintln!(
        "disk full: {} writes, {} acknowledged while full, {} refused (507) and none of them recorded; \
         all recovered without a restart",
        answers.len(),
        answers.len() - refused.len(),
        refused.len()
    );
    drop(server);
    drop(mount);
}
