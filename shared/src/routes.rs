//! The REST routing table is the `wire` crate's endpoint list; this module serves its OpenAPI document.

/// The OpenAPI 3.1 document of every endpoint, generated from the wire types.
pub fn openapi() -> serde_json::Value {
    wire::openapi::document(&wire::endpoints(), env!("CARGO_PKG_VERSION"))
}
