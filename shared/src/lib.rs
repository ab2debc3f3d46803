//! The common crate of the messenger backend: everything the Lambda functions share.
//!
//! Functions depend on this crate only; the local stack and the tests build on it too.

#![warn(missing_docs)]

pub mod accounts;
pub mod api;
pub mod auth;
pub mod aws;
pub mod bulk;
pub mod config;
pub mod db;
pub mod error;
pub mod files;
pub mod http;
pub mod jwt;
pub mod keys;
pub mod lambda;
pub mod messages;
pub mod mls;
pub mod privacy;
pub mod push;
pub mod ratelimit;
pub mod realtime;
pub mod response;
pub mod routes;
pub mod secret;
pub mod secrets;
pub mod sessions;
pub mod state;
pub mod storage;
pub mod time;
pub mod users;
pub mod validate;

pub use error::ApiError;
pub use lambda_http;
pub use state::AppState;

#[cfg(test)]
mod layers;
