//! [`ApiError`]: a failed API request, as the status and JSON body the backend gets.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use roomcast_proto::api::ApiErrorBody;

use crate::broker::{BrokerError, causes};

/// A failed API request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body's machine-readable `error`.
    pub error: &'static str,
    /// The body's `message`, naming the field or setting.
    pub message: String,
}

impl ApiError {
    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, error: "bad_request", message: message.into() }
    }
}

impl From<BrokerError> for ApiError {
    fn from(e: BrokerError) -> Self {
        let (status, error) = match e {
            BrokerError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            BrokerError::Refused(_) | BrokerError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let message = causes(&e);
        tracing::warn!(status = status.as_u16(), error = %message, "API request failed");
        Self { status, error, message }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let timed_out = self.status == StatusCode::REQUEST_TIMEOUT;
        let mut response =
            (self.status, Json(ApiErrorBody { error: self.error.to_owned(), message: self.message })).into_response();
        if timed_out {
            // The rest of the body may still be on its way: the connection cannot be reused.
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}
