//! A fault-injecting HTTP/1.1 proxy for STS: put it between the agent and moto
//! (`sts.endpoint_url = proxy.url()`), then switch faults at runtime and read the counters.
//!
//! It runs on its own thread and tokio runtime, so it works from sync tests and from any runtime
//! flavour, and keeps serving while the test thread blocks. Each forwarded request opens a fresh
//! connection to moto and is passed through unchanged (Host included, so SigV4 signatures still match).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderMap, CONTENT_LENGTH};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the proxy does with the next request. Read when the request (or connection) arrives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forward to moto.
    Pass,
    /// Wait, then forward.
    Delay(Duration),
    /// 400 `Throttling` / "Rate exceeded", as STS answers when the account's quota is spent.
    Throttle,
    /// 500 `InternalFailure`.
    ServerError,
    /// 403 `AccessDenied` naming the requested role.
    AccessDenied,
    /// STS unreachable: new connections are closed at once, and a request on an open keep-alive
    /// connection closes it without an answer. Counted in `refused`, not in the request counters.
    Down,
}

/// Shared state: the current fault and what arrived. Get it with [`FaultProxy::control`] (or use the
/// proxy itself, which derefs to it).
pub struct FaultControl {
    fault: Mutex<Fault>,
    requests: AtomicU64,
    assume_role: AtomicU64,
    refused: AtomicU64,
    arrivals: Mutex<Vec<Instant>>,
    assume_role_forms: Mutex<Vec<HashMap<String, String>>>,
    fault_request_ids: Mutex<Vec<String>>,
}

impl FaultControl {
    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }

    pub fn fault(&self) -> Fault {
        self.fault.lock().unwrap().clone()
    }

    /// Every request received (any action), whatever the fault did with it; `Down` excluded.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// Requests whose form (body or query) has `Action=AssumeRole`; `Down` excluded.
    pub fn assume_role_calls(&self) -> u64 {
        self.assume_role.load(Ordering::SeqCst)
    }

    /// Connections or requests dropped while `Down`.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }

    /// The parameters of each AssumeRole (`RoleArn`, `RoleSessionName`, `Policy`, `DurationSeconds`,
    /// `ExternalId`, `SourceIdentity`, …), in order of arrival.
    pub fn assume_role_requests(&self) -> Vec<HashMap<String, String>> {
        self.assume_role_forms.lock().unwrap().clone()
    }

    /// When each AssumeRole arrived, in order.
    pub fn assume_role_arrivals(&self) -> Vec<Instant> {
        self.arrivals.lock().unwrap().clone()
    }

    /// The most AssumeRole arrivals inside any time window of length `window` (for rate limits).
    pub fn max_assume_role_in(&self, window: Duration) -> usize {
        let arrivals = self.assume_role_arrivals();
        let mut best = 0;
        let mut start = 0;
        for end in 0..arrivals.len() {
            while start < end && arrivals[end].duration_since(arrivals[start]) >= window {
                start += 1;
            }
            best = best.max(end - start + 1);
        }
        best
    }

    /// The request ids of the error answers the proxy made up (Throttle, ServerError, AccessDenied).
    pub fn fault_request_ids(&self) -> Vec<String> {
        self.fault_request_ids.lock().unwrap().clone()
    }

    /// Zeroes the counters and forgets arrivals and request ids (the fault stays).
    pub fn reset_counts(&self) {
        self.requests.store(0, Ordering::SeqCst);
        self.assume_role.store(0, Ordering::SeqCst);
        self.refused.store(0, Ordering::SeqCst);
        self.arrivals.lock().unwrap().clear();
        self.fault_request_ids.lock().unwrap().clear();
    }
}

/// The proxy; listens on 127.0.0.1:<free port> until dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    control: Arc<FaultControl>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts forwarding to `upstream` (e.g. `moto.addr()`) with [`Fault::Pass`].
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("proxy addr");
        let control = Arc::new(FaultControl {
            fault: Mutex::new(Fault::Pass),
            requests: AtomicU64::new(0),
            assume_role: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            arrivals: Mutex::new(Vec::new()),
            assume_role_forms: Mutex::new(Vec::new()),
            fault_request_ids: Mutex::new(Vec::new()),
        });
        let (tx, rx) = tokio::sync::oneshot::channel();
        let shared = control.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            // Dropping the runtime afterwards ends every open connection.
            rt.block_on(accept_loop(listener, upstream, shared, rx));
        });
        FaultProxy { addr, control, shutdown: Some(tx), thread: Some(thread) }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`: the STS endpoint to configure.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn control(&self) -> Arc<FaultControl> {
        self.control.clone()
    }
}

impl Deref for FaultProxy {
    type Target = FaultControl;
    fn deref(&self) -> &FaultControl {
        &self.control
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop(
    listener: std::net::TcpListener,
    upstream: SocketAddr,
    control: Arc<FaultControl>,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = TcpListener::from_std(listener).expect("tokio listener");
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        if control.fault() == Fault::Down {
            control.refused.fetch_add(1, Ordering::SeqCst);
            drop(stream);
            continue;
        }
        let control = control.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, upstream, control.clone()));
            // Errors here are clients going away, or `Down` closing the connection on purpose.
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn handle(
    req: Request<Incoming>,
    upstream: SocketAddr,
    control: Arc<FaultControl>,
) -> Result<Response<Full<Bytes>>, BoxError> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let fault = control.fault();
    if fault == Fault::Down {
        control.refused.fetch_add(1, Ordering::SeqCst);
        // An error from the service makes hyper close the connection without a response.
        return Err("STS is down".into());
    }
    control.requests.fetch_add(1, Ordering::SeqCst);
    let query = parts.uri.query().unwrap_or("").as_bytes();
    let form: Vec<(String, String)> = form_urlencoded::parse(&body)
        .chain(form_urlencoded::parse(query))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    if field("Action") == Some("AssumeRole") {
        control.assume_role.fetch_add(1, Ordering::SeqCst);
        control.arrivals.lock().unwrap().push(Instant::now());
        control.assume_role_forms.lock().unwrap().push(form.iter().cloned().collect());
    }
    match fault {
        Fault::Pass => forward(parts, body, upstream).await,
        Fault::Delay(delay) => {
            tokio::time::sleep(delay).await;
            forward(parts, body, upstream).await
        }
        Fault::Throttle => Ok(sts_error(&control, 400, "Sender", "Throttling", "Rate exceeded")),
        Fault::ServerError => {
            Ok(sts_error(&control, 500, "Receiver", "InternalFailure", "An internal error has occurred"))
        }
        Fault::AccessDenied => {
            let message =
                format!("Not authorized to perform sts:AssumeRole on resource: {}", field("RoleArn").unwrap_or("*"));
            Ok(sts_error(&control, 403, "Sender", "AccessDenied", &message))
        }
        Fault::Down => unreachable!("handled above"),
    }
}

/// Sends the request to moto on a new connection and relays the answer.
async fn forward(
    parts: http::request::Parts,
    body: Bytes,
    upstream: SocketAddr,
) -> Result<Response<Full<Bytes>>, BoxError> {
    let stream = TcpStream::connect(upstream).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let mut req = Request::from_parts(parts, Full::new(body));
    strip_hop_by_hop(req.headers_mut());
    let (mut parts, body) = sender.send_request(req).await?.into_parts();
    let body = body.collect().await?.to_bytes();
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(CONTENT_LENGTH); // hyper sets it from the collected body
    Ok(Response::from_parts(parts, Full::new(body)))
}

/// Headers that describe one connection, not the message.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"] {
        headers.remove(name);
    }
}

/// An STS (awsQuery) error answer, as real STS writes it.
fn sts_error(control: &FaultControl, status: u16, kind: &str, code: &str, message: &str) -> Response<Full<Bytes>> {
    let id = format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        fastrand::u32(..),
        fastrand::u16(..),
        fastrand::u16(..0x1000),
        fastrand::u16(0x8000..0xc000),
        fastrand::u64(..1 << 48)
    );
    control.fault_request_ids.lock().unwrap().push(id.clone());
    let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let body = format!(
        "<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{}</Message></Error>\
         <RequestId>{id}</RequestId></ErrorResponse>",
        escape(message)
    );
    Response::builder()
        .status(status)
        .header("content-type", "text/xml")
        .header("x-amzn-RequestId", id)
        .body(Full::new(Bytes::from(body)))
        .expect("valid response")
}
