//! Following commits made by any store on the database: a dedicated
//! connection LISTENs on the writers' channel and, on each notification
//! (or every `poll_interval` if none comes), reads the committed head
//! position and moves the watch forward. It never moves backwards, and it
//! reconnects by itself when the database comes back.
//!
//! The payload (the notifier's head) is not trusted: the head row is read
//! instead, so a notification from another log sharing the channel (another
//! schema in the same database) can only cause a needless read.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_postgres::AsyncMessage;

use store::{Position, StoreError};

use crate::conn::Settings;
use crate::writer::CHANNEL;

/// Follows the head until the task is aborted.
pub(crate) async fn run(settings: Arc<Settings>, position: Arc<watch::Sender<Position>>) {
    loop {
        if let Err(e) = follow(&settings, &position).await {
            tracing::debug!(error = %e, "the event log's LISTEN connection failed; reconnecting");
        }
        tokio::time::sleep(settings.poll_interval).await;
    }
}

/// Moves the watch forward to `seen` if it is further on.
pub(crate) fn advance(position: &watch::Sender<Position>, seen: Position) {
    position.send_if_modified(|p| {
        let moved = *p < seen;
        if moved {
            *p = seen;
        }
        moved
    });
}

async fn follow(settings: &Settings, position: &watch::Sender<Position>) -> Result<(), StoreError> {
    let (client, mut connection) = settings.connect_raw().await?;
    let (wake, mut woken) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(_)) => {
                    if wake.send(()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "the LISTEN connection ended");
                    return;
                }
            }
        }
    });
    let outcome = async {
        settings
            .within("listen", async {
                client.batch_execute(&format!("LISTEN {CHANNEL}")).await.map_err(crate::error::store_error)
            })
            .await?;
        loop {
            let seen = settings.within("head", crate::read::head_position(&client)).await?;
            advance(position, seen);
            tokio::select! {
                woke = woken.recv() => {
                    if woke.is_none() {
                        return Err(StoreError::Unavailable { detail: "the LISTEN connection was lost".into() });
                    }
                    // One read covers every notification already queued.
                    while woken.try_recv().is_ok() {}
                }
                () = tokio::time::sleep(settings.poll_interval) => {}
            }
        }
    }
    .await;
    driver.abort();
    outcome
}
