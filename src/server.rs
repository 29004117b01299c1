//! The accept loop: hyper HTTP/1.1 on the given listeners, at most `max_connections` at once,
//! header and request timeouts, and a graceful drain bounded in time.
//!
//! The server is handed its listeners and its shutdown signal; tests bind `127.0.0.1:0`.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_io_timeout::TimeoutStream;

use crate::handler::{self, App, Conn};
use crate::sts::Sts;

/// Answer on a connection beyond `max_connections`, written without reading the request.
const BUSY: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n\
Cache-Control: no-store\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 72\r\n\r\n\
{\"code\":\"Throttled\",\"message\":\"too many connections; retry in a moment\"}";

/// Requests whose headers exceed this are answered 431.
const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Serves until `shutdown` resolves, then stops accepting and gives in-flight requests up to
/// `drain` to finish.
pub async fn serve<S: Sts>(
    listeners: Vec<TcpListener>,
    app: Arc<App<S>>,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) {
    let config = app.config.load_full();
    let slots = Arc::new(Semaphore::new(config.server.max_connections));
    // hyper has no write timeout: without one, a client that stops reading its answers holds
    // its slot forever (header_read_timeout only runs while a request head is awaited).
    let write_stall = config.server.request_timeout;
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.server.header_read_timeout)
        .max_buf_size(MAX_HEADER_BYTES.max(8192));
    let graceful = Arc::new(GracefulShutdown::new());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut acceptors = tokio::task::JoinSet::new();
    // Every request task holds a sender; all dropped = no request left running.
    let (inflight, mut settled) = tokio::sync::mpsc::channel::<()>(1);
    app.listening.store(true, std::sync::atomic::Ordering::Relaxed);
    for listener in listeners {
        let (app, slots, builder, graceful, mut stop, inflight) =
            (app.clone(), slots.clone(), builder.clone(), graceful.clone(), stop_rx.clone(), inflight.clone());
        acceptors.spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    _ = stop.changed() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(pair) => pair,
                        Err(e) => {
                            // EMFILE and friends: back off instead of spinning.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    app.metrics.connections_refused.inc();
                    tokio::spawn(refuse_busy(stream));
                    continue;
                };
                let Ok(local) = stream.local_addr() else { continue };
                let _ = stream.set_nodelay(true);
                let conn = Arc::new(Conn::new(local, peer));
                app.metrics.connections_open.inc();
                let metrics = app.metrics.clone();
                let app = app.clone();
                let inflight = inflight.clone();
                let service = service_fn(move |req| {
                    let (app, conn, inflight) = (app.clone(), conn.clone(), inflight.clone());
                    let mut request = Box::pin(async move {
                        let _inflight = inflight;
                        handler::handle(&app, &conn, req).await
                    });
                    async move {
                        // Most requests (a cached session, buffered audit) are answered in one
                        // poll. One that has to wait (STS, a synced audit record) goes on in its
                        // own task: a client that hangs up then does not cancel it halfway, so
                        // its audit record is still written and its STS call still completes.
                        // Boxed, so that handing it to the task moves a pointer.
                        let first = std::future::poll_fn(|cx| Poll::Ready(request.as_mut().poll(cx))).await;
                        let response = match first {
                            Poll::Ready(response) => response,
                            Poll::Pending => tokio::spawn(request).await.unwrap_or_else(|_| internal_error()),
                        };
                        Ok::<_, Infallible>(response)
                    }
                });
                // A write that makes no progress for `write_stall` fails the connection and
                // frees its slot: answers a client never reads cannot pin it forever.
                let mut stream = TimeoutStream::new(stream);
                stream.set_write_timeout(Some(write_stall));
                let stream = Box::pin(stream);
                let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    let _ = connection.await;
                    metrics.connections_open.dec();
                    drop(permit);
                });
            }
        });
    }
    shutdown.await;
    let _ = stop_tx.send(true);
    while acceptors.join_next().await.is_some() {}
    let graceful = Arc::try_unwrap(graceful).unwrap_or_else(|_| unreachable!("acceptors have stopped"));
    drop(inflight);
    let deadline = tokio::time::Instant::now() + drain;
    let drained = tokio::time::timeout_at(deadline, graceful.shutdown()).await.is_ok()
        // Requests whose client hung up run on in their own tasks.
        && tokio::time::timeout_at(deadline, settled.recv()).await.is_ok();
    if !drained {
        tracing::warn!(?drain, "in-flight requests did not finish in time");
    }
}

/// The answer when a request task panicked.
fn internal_error() -> hyper::Response<handler::Body> {
    let mut response = hyper::Response::new(handler::Body::new(bytes::Bytes::new()));
    *response.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
    response
}

/// Tells a client over the connection limit to come back (429 `Throttled`), then closes. Bounded
/// in time so that refused connections cannot pile up.
async fn refuse_busy(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(BUSY)).await;
}
