//! The REST routing table is the `wire` crate's endpoint list; this module serves its OpenAPI document.

use std::sync::LazyLock;

static DOCUMENT: LazyLock<serde_json::Value> =
    LazyLock::new(|| wire::openapi::document(&wire::endpoints(), env!("CARGO_PKG_VERSION")));

/// The OpenAPI 3.1 document of every endpoint, generated from the wire types once per process.
pub fn openapi() -> &'static serde_json::Value {
    &DOCUMENT
}
