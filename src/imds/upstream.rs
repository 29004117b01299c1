//! The metadata service the node would otherwise have reached: the agent's client of it, its own
//! session token there, and the facts it reuses (the node's instance-profile name, whether tokenless
//! requests are answered).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::{CREDENTIALS_PATH, MAX_TOKEN_TTL, TOKEN, TOKEN_PATH, TOKEN_TTL};
use crate::config::Config;
use crate::path::Body;
use crate::respond;

/// An upstream token is used until this long before it expires.
const UPSTREAM_TOKEN_MARGIN: Duration = Duration::from_secs(300);
/// How long the upstream service's instance-profile name and IMDSv1 setting are reused: the
/// service throttles per instance, and neither changes while the node runs.
const UPSTREAM_FACTS_TTL: Duration = Duration::from_secs(60);
/// The largest upstream answer passed on (identity documents and user data are far smaller).
const MAX_UPSTREAM_BODY: usize = 1 << 20;
/// Headers of a forwarded request that are passed on; the rest stay here.
const FORWARDED_REQUEST_HEADERS: [HeaderName; 3] =
    [http::header::ACCEPT, http::header::ACCEPT_ENCODING, http::header::USER_AGENT];

/// The agent's client of the upstream metadata service.
pub struct Upstream {
    client: Client<HttpConnector, Full<Bytes>>,
    session: tokio::sync::Mutex<Option<UpstreamToken>>,
    /// Whether the upstream service answers tokenless requests.
    answers_v1: Remembered<bool>,
    /// The node's instance-profile name, as the upstream service lists it.
    profile_name: Remembered<Option<String>>,
}

impl Default for Upstream {
    fn default() -> Self {
        Upstream {
            client: Client::builder(TokioExecutor::new()).build_http(),
            session: tokio::sync::Mutex::new(None),
            answers_v1: Remembered::new(),
            profile_name: Remembered::new(),
        }
    }
}

/// An upstream fact, reused for [`UPSTREAM_FACTS_TTL`].
struct Remembered<T>(std::sync::Mutex<Option<(T, Instant)>>);

impl<T: Clone> Remembered<T> {
    fn new() -> Self {
        Remembered(std::sync::Mutex::new(None))
    }

    async fn get(&self, ask: impl std::future::Future<Output = T>) -> T {
        let fresh = |(value, at): &(T, Instant)| (at.elapsed() < UPSTREAM_FACTS_TTL).then(|| value.clone());
        if let Some(value) = self.0.lock().unwrap_or_else(|p| p.into_inner()).as_ref().and_then(fresh) {
            return value;
        }
        let value = ask.await;
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((value.clone(), Instant::now()));
        value
    }
}

/// The agent's own session token with the upstream metadata service.
struct UpstreamToken {
    authority: http::uri::Authority,
    /// `None`: the upstream service issues no tokens (IMDSv1 only).
    value: Option<HeaderValue>,
    renew_at: Instant,
}

impl Upstream {
    /// Forwards `req` (GET or HEAD) to the upstream service and passes its answer back. `with_token`:
    /// the caller presented a valid token, so the agent presents its own upstream.
    /// Only the path is passed on: the metadata service takes no query.
    pub async fn forward(
        &self,
        config: &Config,
        req: &Request<hyper::body::Incoming>,
        with_token: bool,
    ) -> Response<Body> {
        match self.upstream(config, req.method().clone(), req.uri().path(), req.headers(), with_token).await {
            Ok(response) => response.map(Full::new),
            Err(e) => {
                tracing::warn!(error = %e, "instance metadata service unreachable");
                respond::text(StatusCode::BAD_GATEWAY, "text/plain", "the instance metadata service did not answer\n")
            }
        }
    }

    /// The node's own instance-profile name, as the upstream service lists it.
    pub async fn instance_profile_name(&self, config: &Config) -> Option<String> {
        self.profile_name
            .get(async {
                let response =
                    self.upstream(config, Method::GET, CREDENTIALS_PATH, &HeaderMap::new(), true).await.ok()?;
                let body = std::str::from_utf8(response.body()).ok()?;
                let name = body.lines().next()?.trim();
                (response.status() == StatusCode::OK && !name.is_empty()).then(|| name.to_owned())
            })
            .await
    }

    /// Whether the upstream service answers requests without a token (IMDSv1 allowed on this node).
    pub async fn answers_v1(&self, config: &Config) -> bool {
        self.answers_v1
            .get(async {
                let answer = self.upstream(config, Method::GET, "/latest/meta-data/", &HeaderMap::new(), false).await;
                answer.is_ok_and(|r| r.status().is_success())
            })
            .await
    }

    /// One request upstream, within `server.request_timeout`. With a token: the agent's, renewed once
    /// if the service no longer takes it.
    async fn upstream(
        &self,
        config: &Config,
        method: Method,
        path: &str,
        headers: &HeaderMap,
        with_token: bool,
    ) -> Result<Response<Bytes>, String> {
        let authority = &config.imds.upstream.authority;
        let deadline = config.server.request_timeout;
        let mut renew = false;
        loop {
            let token = if with_token { self.token(authority, deadline, renew).await? } else { None };
            let mut request = Request::builder().method(method.clone()).uri(format!("http://{authority}{path}"));
            for name in &FORWARDED_REQUEST_HEADERS {
                for value in headers.get_all(name) {
                    request = request.header(name, value);
                }
            }
            if let Some(token) = &token {
                request = request.header(TOKEN, token);
            }
            let request = request.body(Full::new(Bytes::new())).map_err(|e| e.to_string())?;
            let response = self.send(request, deadline).await?;
            if response.status() == StatusCode::UNAUTHORIZED && token.is_some() && !renew {
                renew = true;
                continue;
            }
            return Ok(response);
        }
    }

    async fn send(&self, request: Request<Full<Bytes>>, deadline: Duration) -> Result<Response<Bytes>, String> {
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| format!("{e:?}"))?;
            let (mut parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_UPSTREAM_BODY).collect().await.map_err(|e| e.to_string())?.to_bytes();
            for hop in [http::header::CONNECTION, http::header::TRANSFER_ENCODING, http::header::CONTENT_LENGTH] {
                parts.headers.remove(hop);
            }
            parts.headers.remove("keep-alive");
            Ok(Response::from_parts(parts, body))
        };
        tokio::time::timeout(deadline, exchange).await.map_err(|_| format!("no answer within {deadline:?}"))?
    }

    /// The agent's upstream token: cached, fetched when missing, near expiry, or `renew`ed.
    async fn token(
        &self,
        authority: &http::uri::Authority,
        deadline: Duration,
        renew: bool,
    ) -> Result<Option<HeaderValue>, String> {
        let mut slot = self.session.lock().await;
        if let Some(token) = slot.as_ref() {
            if !renew && token.authority == *authority && Instant::now() < token.renew_at {
                return Ok(token.value.clone());
            }
        }
        let request = Request::builder()
            .method(Method::PUT)
            .uri(format!("http://{authority}{TOKEN_PATH}"))
            .header(TOKEN_TTL, MAX_TOKEN_TTL)
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let response = self.send(request, deadline).await?;
        // A service that issues no tokens answers tokenless requests (IMDSv1 only).
        let value = match response.status() {
            StatusCode::OK => Some(HeaderValue::from_maybe_shared(response.into_body()).map_err(|e| e.to_string())?),
            _ => None,
        };
        let renew_at = Instant::now() + Duration::from_secs(MAX_TOKEN_TTL) - UPSTREAM_TOKEN_MARGIN;
        *slot = Some(UpstreamToken { authority: authority.clone(), value: value.clone(), renew_at });
        Ok(value)
    }
}
