//! The one error type of every HTTP handler and its rendering as the contract's `{"detail", "code"}` body.

use http::StatusCode;
use lambda_http::{Body, Response};
pub use wire::{ErrorCode, FieldError};

/// Everything a handler can fail with. Client errors render as their status; everything else is a 500
/// whose cause is logged but never shown.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401 `not_authenticated`: no or blank `Authorization` header.
    #[error("not authenticated")]
    NotAuthenticated,
    /// 401 `invalid_token`: bad signature, expired, revoked, user gone.
    #[error("invalid token")]
    InvalidToken,
    /// 404 `not_found`: no such route.
    #[error("route not found")]
    RouteNotFound,
    /// 405 `method_not_allowed`.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 413 `payload_too_large`.
    #[error("payload too large")]
    PayloadTooLarge,
    /// 429 `rate_limited`, with `Retry-After` seconds.
    #[error("rate limited")]
    RateLimited {
        /// Seconds until the window frees up.
        retry_after: u64,
    },
    /// 422 `validation_error` with one entry per failed field.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// Any other client error of the contract: its code (status and default text) and the text shown.
    #[error("{code}")]
    Client {
        /// Stable machine code; decides the status.
        code: ErrorCode,
        /// Message shown (the code's default unless the contract words it per case).
        detail: &'static str,
    },
    /// 500 with a fixed message (e.g. "Failed to delete account") and a logged cause.
    #[error("{detail}")]
    InternalWith {
        /// Message shown to the client.
        detail: &'static str,
        /// Cause, logged only.
        #[source]
        source: anyhow::Error,
    },
    /// 500 `internal_error`; the cause is logged, never returned. A cause that is an overloaded database
    /// answers 503 `service_unavailable` with `Retry-After` instead.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Seconds a client is asked to wait after a 503: the database recovers from a burst within a second or two.
pub const OVERLOAD_RETRY_AFTER: u64 = 1;

impl From<libsql::Error> for ApiError {
    fn from(err: libsql::Error) -> Self {
        Self::Internal(anyhow::Error::new(err).context("database"))
    }
}

impl From<ErrorCode> for ApiError {
    fn from(code: ErrorCode) -> Self {
        Self::Client { code, detail: code.detail() }
    }
}

impl ApiError {
    /// A contract error with its default text.
    pub const fn code(code: ErrorCode) -> Self {
        Self::Client { code, detail: code.detail() }
    }

    /// A contract error whose text the contract words per case.
    pub const fn with_detail(code: ErrorCode, detail: &'static str) -> Self {
        Self::Client { code, detail }
    }

    /// A 422 for one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError { field: field.into(), message: message.into() }])
    }

    /// The contract code of this error.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            Self::NotAuthenticated => ErrorCode::NotAuthenticated,
            Self::InvalidToken => ErrorCode::InvalidToken,
            Self::RouteNotFound => ErrorCode::NotFound,
            Self::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            Self::PayloadTooLarge => ErrorCode::PayloadTooLarge,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Validation(_) => ErrorCode::ValidationError,
            Self::Client { code, .. } => *code,
            Self::InternalWith { source, .. } | Self::Internal(source) if crate::db::chain_is_overloaded(source) => {
                ErrorCode::ServiceUnavailable
            }
            Self::InternalWith { .. } | Self::Internal(_) => ErrorCode::InternalError,
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.error_code().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The stable machine code of this error.
    pub fn code_str(&self) -> &'static str {
        self.error_code().as_str()
    }

    /// The fixed message shown to clients.
    pub fn detail(&self) -> &'static str {
        match self {
            Self::Client { detail, .. } => detail,
            Self::InternalWith { detail, .. } if self.error_code() == ErrorCode::InternalError => detail,
            other => other.error_code().detail(),
        }
    }

    /// Renders the error as the contract's response; 5xx causes are logged here, 4xx only at debug.
    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(error = ?self, "request refused: database overloaded");
        } else if status.is_server_error() {
            tracing::error!(error = ?self, "request failed");
        } else {
            tracing::debug!(code = self.code_str(), "client error");
        }
        let errors = match &self {
            Self::Validation(errors) => Some(errors.clone()),
            _ => None,
        };
        let body = wire::ErrorBody { detail: self.detail().to_owned(), code: self.error_code(), errors };
        let mut resp = crate::response::json_response(status, &body);
        let headers = resp.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
        }
        if let Self::RateLimited { retry_after } = self {
            headers.insert(http::header::RETRY_AFTER, http::HeaderValue::from(retry_after.max(1)));
        } else if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(http::header::RETRY_AFTER, http::HeaderValue::from(OVERLOAD_RETRY_AFTER));
        }
        resp
    }
}

/// Maps a unique-constraint failure to a contract error and passes everything else through.
pub trait OnConstraint<T> {
    /// Turns a `UNIQUE` violation into `err`.
    fn on_unique(self, err: ApiError) -> Result<T, ApiError>;
}

impl<T> OnConstraint<T> for Result<T, libsql::Error> {
    fn on_unique(self, err: ApiError) -> Result<T, ApiError> {
        self.map_err(|e| if is_unique_violation(&e) { err } else { e.into() })
    }
}

/// Whether a libSQL error is a unique-constraint violation, for local and remote databases alike.
pub fn is_unique_violation(err: &libsql::Error) -> bool {
    match err {
        // SQLITE_CONSTRAINT_UNIQUE = 2067, SQLITE_CONSTRAINT_PRIMARYKEY = 1555
        libsql::Error::SqliteFailure(code, _) => *code == 2067 || *code == 1555,
        other => {
            let text = other.to_string();
            text.contains("UNIQUE constraint failed") || text.contains("SQLITE_CONSTRAINT_UNIQUE")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(resp: &Response<Body>) -> serde_json::Value {
        serde_json::from_slice(resp.body().as_ref()).unwrap()
    }

    #[test]
    fn internal_errors_never_leak_their_cause() {
        let resp = ApiError::Internal(anyhow::anyhow!("secret table xyz exploded")).into_response();
        assert_eq!(resp.status(), 500);
        let text = String::from_utf8_lossy(resp.body().as_ref()).to_string();
        assert!(!text.contains("xyz"));
        assert_eq!(body(&resp)["code"], "internal_error");
    }

    #[test]
    fn unauthorized_carries_www_authenticate() {
        let resp = ApiError::InvalidToken.into_response();
        assert_eq!(resp.status(), 401);
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        assert_eq!(body(&resp)["detail"], "Could not validate credentials");
    }

    #[test]
    fn validation_lists_the_failed_fields() {
        let resp = ApiError::field("password", "too short").into_response();
        assert_eq!(resp.status(), 422);
        let b = body(&resp);
        assert_eq!(b["code"], "validation_error");
        assert_eq!(b["errors"][0]["field"], "password");
    }

    #[test]
    fn an_overloaded_database_is_a_503_with_retry_after_however_deep_the_cause() {
        let busy = libsql::Error::SqliteFailure(5, "database is locked".into());
        let resp = ApiError::from(busy).into_response();
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.headers()["retry-after"], "1");
        assert_eq!(body(&resp)["code"], "service_unavailable");
        let wrapped = anyhow::Error::new(libsql::Error::SqliteFailure(6, "locked".into())).context("store message");
        let resp = ApiError::InternalWith { detail: "Failed to delete account", source: wrapped }.into_response();
        assert_eq!(resp.status(), 503);
        assert_eq!(body(&resp)["detail"], ErrorCode::ServiceUnavailable.detail());
        let other = ApiError::from(libsql::Error::SqliteFailure(1, "no such table".into())).into_response();
        assert_eq!(other.status(), 500);
        assert!(other.headers().get("retry-after").is_none());
    }

    #[test]
    fn rate_limited_tells_when_to_retry() {
        let resp = ApiError::RateLimited { retry_after: 42 }.into_response();
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()["retry-after"], "42");
    }
}
