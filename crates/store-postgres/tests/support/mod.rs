//! Helpers shared by the PostgreSQL tests: a raw connection, waiting on a
//! condition with a deadline, and a TCP proxy that can cut or stall the
//! way to the database (the shared server itself is never touched).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A plain connection, as an operator with psql has.
pub async fn raw(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("these tests need PostgreSQL at 127.0.0.1:5432");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Calls `f` until it gives `Some`, failing the test after `deadline`.
pub async fn wait_until<T, F, Fut>(deadline: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < until, "condition not met within {deadline:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the way to the database does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forwards everything.
    Up,
    /// Every open connection is cut; new ones are refused.
    Down,
    /// Connections stay open but nothing passes (a stalled server or a
    /// network that drops packets).
    Stalled,
}

/// A TCP proxy in front of 127.0.0.1:5432.
#[derive(Debug)]
pub struct Proxy {
    port: u16,
    mode: watch::Sender<Mode>,
}

impl Proxy {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (mode, _) = watch::channel(Mode::Up);
        let modes = mode.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let rx = modes.subscribe();
                if *rx.borrow() == Mode::Down {
                    drop(client);
                    continue;
                }
                tokio::spawn(serve(client, rx));
            }
        });
        Self { port, mode }
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

/// Forwards one connection while the mode is `Up`; cuts it when the mode
/// changes from what it was when it started.
async fn serve(mut client: TcpStream, mut mode: watch::Receiver<Mode>) {
    let started = *mode.borrow_and_update();
    if started == Mode::Stalled {
        // Hold it open, pass nothing, until the mode changes.
        let _ = mode.changed().await;
        return;
    }
    let Ok(mut server) = TcpStream::connect("127.0.0.1:5432").await else { return };
    let next = tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
        next = mode.wait_for(|m| *m != Mode::Up) => next.map(|m| *m).unwrap_or(Mode::Down),
    };
    if next == Mode::Stalled {
        // Keep both ends open and pass nothing until the mode changes
        // again; then the connection is gone.
        let _ = mode.changed().await;
    }
    drop((client, server));
}
