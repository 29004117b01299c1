//! HTTP answers both doors write: a body with its content type, JSON never cached.

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body_util::Full;

use crate::path::Body;

/// `body` as `content_type`, with `status`.
pub fn text(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// `body` as JSON that no cache keeps (it may hold credentials).
pub fn json(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = text(status, "application/json", body);
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
