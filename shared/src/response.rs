//! The JSON response every handler and error renders through; below both `http` and `error`.

use http::StatusCode;
use lambda_http::{Body, Response};
use serde::Serialize;

/// A JSON response with `status`. A text body, so Lambda passes it through instead of base64-encoding it
/// (which would grow it by a third against the 6 MB response limit).
pub fn json_response<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Body> {
    let body = serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned());
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::Text(body))
        .unwrap_or_default()
}
