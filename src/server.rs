//! The accept loop: hyper HTTP/1.1 on the given listeners (the API's and the metadata listener), at most `max_connections` at once,
//! header and write timeouts, and a graceful drain bounded in time.
//!
//! A [`Listener`] owns the sockets, the connection limit and the shutdown; each accepted
//! connection gets a [`Handler`] that serves its requests. Tests bind `127.0.0.1:0`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_io_timeout::TimeoutStream;

use crate::api;
use crate::caller;
use crate::imds::{self, Imds};
use crate::path::{App, Body, Conn, Endpoint};
use crate::sts::Sts;

/// Answer on a connection beyond `max_connections` or `max_connections_per_caller`, written without
/// reading the request.
const BUSY: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n\
Cache-Control: no-store\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 72\r\n\r\n\
{\"code\":\"Throttled\",\"message\":\"too many connections; retry in a moment\"}";

/// Requests whose headers exceed this are answered 431.
const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The listening side: sockets, the connection limit, the HTTP settings and the drain.
pub struct Listener<S> {
    sockets: Vec<(TcpListener, Endpoint)>,
    shared: Arc<Shared<S>>,
    graceful: Arc<GracefulShutdown>,
    /// Closed once every connection and request is done.
    settled: mpsc::Receiver<()>,
}

/// What every connection of one server shares.
struct Shared<S> {
    app: Arc<App<S>>,
    /// The metadata door's token key and upstream client.
    imds: Arc<Imds>,
    /// One permit per open connection (`max_connections`).
    slots: Arc<Semaphore>,
    /// Open connections per caller uid (`None`: not attributed), at most `max_connections_per_caller`.
    per_caller: Arc<PerCaller>,
    http: http1::Builder,
    /// hyper has no write timeout: without one, a client that stops reading its answers holds
    /// its slot forever (header_read_timeout only runs while a request head is awaited).
    write_stall: Duration,
    /// Held by every connection and request; all dropped = nothing left running.
    inflight: mpsc::Sender<()>,
}

impl<S: Sts> Listener<S> {
    /// Limits and timeouts come from the configuration the app starts with.
    pub fn new(sockets: Vec<(TcpListener, Endpoint)>, app: Arc<App<S>>) -> Listener<S> {
        let config = app.config.load_full();
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(config.server.header_read_timeout)
            .max_buf_size(MAX_HEADER_BYTES.max(8192));
        let (inflight, settled) = mpsc::channel(1);
        let shared = Shared {
            slots: Arc::new(Semaphore::new(config.server.max_connections)),
            per_caller: Arc::new(PerCaller { limit: config.server.max_connections_per_caller, open: Mutex::default() }),
            http,
            write_stall: config.server.request_timeout,
            inflight,
            app,
            imds: Arc::new(Imds::default()),
        };
        Listener { sockets, shared: Arc::new(shared), graceful: Arc::new(GracefulShutdown::new()), settled }
    }

    /// Serves until `shutdown` resolves, then stops accepting and gives in-flight requests up to
    /// `drain` to finish.
    pub async fn run(self, shutdown: impl Future<Output = ()>, drain: Duration) {
        let Listener { sockets, shared, graceful, mut settled } = self;
        let (stop, stopped) = watch::channel(false);
        let mut acceptors = JoinSet::new();
        shared.app.listening.store(true, Ordering::Relaxed);
        for (socket, endpoint) in sockets {
            acceptors.spawn(accept_loop(socket, endpoint, shared.clone(), graceful.clone(), stopped.clone()));
        }
        drop(shared);
        shutdown.await;
        let _ = stop.send(true);
        while acceptors.join_next().await.is_some() {}
        let graceful = Arc::try_unwrap(graceful).unwrap_or_else(|_| unreachable!("acceptors have stopped"));
        let deadline = tokio::time::Instant::now() + drain;
        let drained = tokio::time::timeout_at(deadline, graceful.shutdown()).await.is_ok()
            // Requests whose client hung up run on in their own tasks.
            && tokio::time::timeout_at(deadline, settled.recv()).await.is_ok();
        if !drained {
            tracing::warn!(?drain, "in-flight requests did not finish in time");
        }
    }
}

/// Accepts on one socket until told to stop; each connection is served by its own [`Handler`].
async fn accept_loop<S: Sts>(
    socket: TcpListener,
    endpoint: Endpoint,
    shared: Arc<Shared<S>>,
    graceful: Arc<GracefulShutdown>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.changed() => return,
            accepted = socket.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = shared.slots.clone().try_acquire_owned() else {
            shared.app.metrics.connections_refused.inc();
            tokio::spawn(refuse_busy(stream));
            continue;
        };
        let Ok(local) = stream.local_addr() else { continue };
        let _ = stream.set_nodelay(true);
        // Who owns the other end, asked now: the answer is checked against this very socket, so a
        // connection reset before it cannot lend its address pair to someone else's.
        let uid = match endpoint {
            Endpoint::Api => caller::connection_owner(&stream, local, peer),
            // The metadata listener's clients connected to 169.254.169.254, and NAT sent them here.
            Endpoint::Imds => caller::redirected_connection_owner(&stream, local, peer),
        };
        // One local user cannot take every slot: beyond its share it is told to come back.
        let Some(share) = PerCaller::enter(&shared.per_caller, uid.as_ref().ok().copied()) else {
            shared.app.metrics.connections_refused.inc();
            tokio::spawn(refuse_busy(stream));
            continue;
        };
        let conn = Arc::new(Conn::new(endpoint, local, peer, uid));
        let handler = Handler { shared: shared.clone(), conn, _permit: permit, _share: share };
        handler.spawn(stream, &graceful);
    }
}

/// One accepted connection: its requests are served while it holds its slot.
struct Handler<S> {
    shared: Arc<Shared<S>>,
    conn: Arc<Conn>,
    _permit: OwnedSemaphorePermit,
    _share: Share,
}

/// Open connections per caller uid.
struct PerCaller {
    limit: usize,
    open: Mutex<HashMap<Option<u32>, usize>>,
}

/// One connection counted for its caller; uncounted when dropped.
struct Share {
    per_caller: Arc<PerCaller>,
    uid: Option<u32>,
}

impl PerCaller {
    /// Counts a connection of `uid`, unless it already holds `limit`.
    fn enter(per_caller: &Arc<PerCaller>, uid: Option<u32>) -> Option<Share> {
        let mut open = per_caller.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(uid).or_insert(0);
        if *count >= per_caller.limit {
            return None;
        }
        *count += 1;
        Some(Share { per_caller: per_caller.clone(), uid })
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut open = self.per_caller.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.uid) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.uid);
            }
        }
    }
}

impl<S: Sts> Handler<S> {
    fn spawn(self, stream: TcpStream, graceful: &GracefulShutdown) {
        let shared = self.shared.clone();
        shared.app.metrics.connections_open.inc();
        let (app, imds, conn, inflight) =
            (shared.app.clone(), shared.imds.clone(), self.conn.clone(), shared.inflight.clone());
        let service = service_fn(move |req| respond(app.clone(), imds.clone(), conn.clone(), inflight.clone(), req));
        // A write that makes no progress for `write_stall` fails the connection and frees its
        // slot: answers a client never reads cannot pin it forever.
        let mut stream = TimeoutStream::new(stream);
        stream.set_write_timeout(Some(shared.write_stall));
        let connection = graceful.watch(shared.http.serve_connection(TokioIo::new(Box::pin(stream)), service));
        tokio::spawn(async move {
            let _ = connection.await;
            shared.app.metrics.connections_open.dec();
            // The slot and the in-flight token go with the handler.
            drop(self);
        });
    }
}

/// Answers one request. Most (a cached session, buffered audit) are answered in one poll. One
/// that has to wait (STS, a synced audit record) goes on in its own task: a client that hangs up
/// then does not cancel it halfway, so its audit record is still written and its STS call still
/// completes. Boxed, so that handing it to the task moves a pointer.
async fn respond<S: Sts>(
    app: Arc<App<S>>,
    imds: Arc<Imds>,
    conn: Arc<Conn>,
    inflight: mpsc::Sender<()>,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Body>, Infallible> {
    let mut request = Box::pin(async move {
        let _inflight = inflight;
        match conn.endpoint {
            Endpoint::Api => api::handle(&app, &conn, req).await,
            Endpoint::Imds => imds::handle(&app, &imds, &conn, req).await,
        }
    });
    let first = std::future::poll_fn(|cx| Poll::Ready(request.as_mut().poll(cx))).await;
    Ok(match first {
        Poll::Ready(response) => response,
        Poll::Pending => tokio::spawn(request).await.unwrap_or_else(|_| internal_error()),
    })
}

/// The answer when a request task panicked.
fn internal_error() -> hyper::Response<Body> {
    let mut response = hyper::Response::new(Body::new(bytes::Bytes::new()));
    *response.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
    response
}

/// Tells a client over the connection limit to come back (429 `Throttled`), then closes. Bounded
/// in time so that refused connections cannot pile up.
async fn refuse_busy(mut stream: TcpStream) {
    use tokio::io::AsyncWriteExt;
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(BUSY)).await;
}
