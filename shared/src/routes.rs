//! The REST routing table is the `wire` crate's endpoint list; this module serves its OpenAPI document.

use std::sync::LazyLock;

use wire::openapi::OpenApi;

static DOCUMENT: LazyLock<OpenApi> =
    LazyLock::new(|| wire::openapi::document(&wire::endpoints(), env!("CARGO_PKG_VERSION")));

static JSON: LazyLock<serde_json::Value> = LazyLock::new(|| serde_json::to_value(openapi()).unwrap_or_default());

/// The OpenAPI 3.1 document of every endpoint, generated from the wire types once per process.
pub fn openapi() -> &'static OpenApi {
    &DOCUMENT
}

/// [`openapi`] as JSON, serialized once per process.
pub fn openapi_json() -> &'static serde_json::Value {
    &JSON
}
