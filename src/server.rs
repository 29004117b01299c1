//! The accept loop: hyper HTTP/1.1 on the given listeners, at most `max_connections` at once,
//! header and request timeouts, and a graceful drain bounded in time.
//!
//! The server is handed its listeners and its shutdown signal; tests bind `127.0.0.1:0`.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

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
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.server.header_read_timeout)
        .max_buf_size(MAX_HEADER_BYTES.max(8192));
    let graceful = Arc::new(GracefulShutdown::new());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut acceptors = tokio::task::JoinSet::new();
    app.listening.store(true, std::sync::atomic::Ordering::Relaxed);
    for listener in listeners {
        let (app, slots, builder, graceful, mut stop) =
            (app.clone(), slots.clone(), builder.clone(), graceful.clone(), stop_rx.clone());
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
                let service = service_fn(move |req| {
                    let (app, conn) = (app.clone(), conn.clone());
                    async move { Ok::<_, Infallible>(handler::handle(&app, &conn, req).await) }
                });
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
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        tracing::warn!(?drain, "in-flight requests did not finish in time");
    }
}

/// Tells a client over the connection limit to come back (429 `Throttled`), then closes. Bounded
/// in time so that refused connections cannot pile up.
async fn refuse_busy(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(BUSY)).await;
}
