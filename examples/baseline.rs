//! The benchmark baseline: the smallest hyper server that answers every request with a static JSON
//! body, the same HTTP stack and settings as the agent (HTTP/1.1, `TCP_NODELAY`, header read
//! timeout, multi-threaded tokio runtime) and nothing else: no token, no caller identity, no rules,
//! no cache, no audit. What it reaches on a machine is the physical limit the agent is compared
//! with (see BENCHMARKS.md). Not part of the release binary.
//!
//! `cargo run --release --example baseline -- --listen 127.0.0.1:9950 --body-bytes 1032`
//! `--header-read-timeout 0` keeps idle connections open forever (the idle-connection holder of
//! the identity-lookup benchmark connects to such an instance).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9950")]
    listen: SocketAddr,
    /// Size of the JSON body answered (the agent's credentials answer is measured and passed in).
    #[arg(long, default_value_t = 1024)]
    body_bytes: usize,
    /// Seconds; 0 disables the header read timeout.
    #[arg(long, default_value_t = 5)]
    header_read_timeout: u64,
}

/// `{"AccessKeyId":"…","SecretAccessKey":"…",…,"Pad":"xxx…"}` of exactly `size` bytes (at least
/// the fixed part).
fn body(size: usize) -> Bytes {
    let head = r#"{"AccessKeyId":"ASIABASELINE00000000","SecretAccessKey":"baseline","Token":""#;
    let tail = r#"","Expiration":"2030-01-01T00:00:00Z"}"#;
    let pad = size.saturating_sub(head.len() + tail.len());
    let mut s = String::with_capacity(size);
    s.push_str(head);
    s.extend(std::iter::repeat_n('x', pad));
    s.push_str(tail);
    Bytes::from(s)
}

fn main() {
    let args = Args::parse();
    let body = body(args.body_bytes);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async move {
        let listener = TcpListener::bind(args.listen).await.expect("bind");
        let mut builder = http1::Builder::new();
        builder.timer(TokioTimer::new());
        builder
            .header_read_timeout((args.header_read_timeout > 0).then(|| Duration::from_secs(args.header_read_timeout)));
        println!("listening {} body_bytes {}", listener.local_addr().expect("addr"), body.len());
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(pair) => pair,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let body = body.clone();
            let service = service_fn(move |_req| {
                let body = body.clone();
                async move {
                    let mut response = Response::new(Full::new(body));
                    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                    Ok::<_, Infallible>(response)
                }
            });
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::spawn(async move {
                let _ = connection.await;
            });
        }
    });
}
