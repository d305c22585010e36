//! The HTTP/1.1 server: hyper over a tokio listener, with the bounds that
//! `axum::serve` has no knobs for.
//!
//! - `connections_max`: a semaphore permit per open connection. At the cap
//!   the server stops accepting: further clients wait in the kernel's
//!   listen backlog (their connect succeeds, their request is answered once
//!   an earlier connection closes); connections already open keep working.
//! - `header_read_timeout`: from the first byte of a request head, the whole
//!   head must arrive within it, else the connection is closed.
//! - `idle_timeout`: a keep-alive connection with no request in flight (a
//!   streaming answer, such as SSE, counts as in flight until its body ends)
//!   and no byte received for this long is closed.
//!
//! On shutdown the listener is closed, every connection is told to finish
//! its request in flight and close, and `serve` returns once all have.

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tower::ServiceExt as _;

/// Hyper's own bound on a request head's buffer. Heads past the API's
/// limits (`api::problems`) but within this get a problem+json 414/431;
/// past this hyper answers a bare 431 and closes.
pub const HEAD_BUFFER_BYTES_MAX: usize = 256 * 1024;
/// Hyper's own bound on header fields (the API refuses past its lower one).
pub const HEAD_FIELDS_MAX: usize = 1_000;
/// Pause after a failed `accept` (out of file descriptors, say).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The connection bounds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest time from a head's first byte to its end.
    pub header_read_timeout: Duration,
    /// Longest idle time of a keep-alive connection.
    pub idle_timeout: Duration,
    /// Most connections open at once.
    pub connections_max: usize,
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let connections_max = limits.connections_max.clamp(1, Semaphore::MAX_PERMITS);
    let permits = Arc::new(Semaphore::new(connections_max));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&permits).acquire_owned() => permit.map_err(io::Error::other)?,
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        tokio::spawn(connection(stream, app.clone(), limits, stop_rx.clone(), permit));
    }
    drop(listener);
    stop_tx.send_replace(true);
    // Every connection holds a permit until it ends.
    let all = u32::try_from(connections_max).unwrap_or(u32::MAX);
    let _ = permits.acquire_many(all).await;
    Ok(())
}

async fn connection(
    stream: TcpStream,
    app: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched { inner: stream, activity: Arc::clone(&activity) });
    let tracked = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let guard = InFlight::start(&tracked);
        let app = app.clone();
        async move {
            let response = app.oneshot(request.map(Body::new)).await?;
            Ok::<_, std::convert::Infallible>(response.map(|body| Body::new(Tracked { body, _guard: guard })))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.max_buf_size(HEAD_BUFFER_BYTES_MAX).max_headers(HEAD_FIELDS_MAX).keep_alive(true);
    let mut conn = pin!(builder.serve_connection(io, service));
    let mut expired = pin!(activity.expired(limits));
    let mut stopping = *stop.borrow();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
            reason = expired.as_mut() => {
                tracing::debug!(reason, "closing a connection");
                return;
            }
        }
    }
}

/// What a connection has been doing, for the timeouts.
#[derive(Debug)]
struct Activity {
    started: Instant,
    /// Requests whose answer has not been sent whole.
    in_flight: AtomicUsize,
    /// When the connection last had no request in flight (ms since start).
    idle_since_ms: AtomicU64,
    /// When the first byte of the next head arrived (ms since start, plus
    /// one; 0: none yet).
    head_started_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            head_started_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn bytes_read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 {
            let now = self.now_ms() + 1;
            let _ = self.head_started_ms.compare_exchange(0, now, Ordering::AcqRel, Ordering::Acquire);
        }
    }

    /// Resolves with the reason once a timeout is due.
    async fn expired(&self, limits: Limits) -> &'static str {
        let header_ms = u64::try_from(limits.header_read_timeout.as_millis()).unwrap_or(u64::MAX);
        let idle_ms = u64::try_from(limits.idle_timeout.as_millis()).unwrap_or(u64::MAX);
        let tick = (limits.header_read_timeout.min(limits.idle_timeout) / 4)
            .clamp(Duration::from_millis(10), Duration::from_secs(1));
        loop {
            tokio::time::sleep(tick).await;
            if self.in_flight.load(Ordering::Acquire) > 0 {
                continue;
            }
            let now = self.now_ms();
            match self.head_started_ms.load(Ordering::Acquire) {
                0 if now.saturating_sub(self.idle_since_ms.load(Ordering::Acquire)) >= idle_ms => {
                    return "idle timeout";
                }
                0 => {}
                started if now.saturating_sub(started - 1) >= header_ms => return "header read timeout",
                _ => {}
            }
        }
    }
}

/// One request in flight, until its answer's body is dropped.
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        // The head is complete: the next one's clock starts at its first byte.
        activity.head_started_ms.store(0, Ordering::Release);
        Self(Arc::clone(activity))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let now = self.0.now_ms();
        self.0.idle_since_ms.store(now, Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An answer's body that keeps its request in flight until it ends.
#[derive(Debug)]
struct Tracked {
    body: Body,
    _guard: InFlight,
}

impl HttpBody for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The socket, noting when bytes arrive.
#[derive(Debug)]
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.bytes_read();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
