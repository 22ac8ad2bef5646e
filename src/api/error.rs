//! `ApiError`: every way a request can fail, and its Kubernetes `Status` answer.
//!
//! Handlers return `Result<_, ApiError>`; this file alone decides codes and reasons, so that
//! kubectl, client-go and the HPA always get a `metav1.Status` they can print.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::api::types::{Reason, Status};
use crate::source::broker::BrokerError;
use crate::source::catalogue::ValueError;

/// A failed request.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApiError {
    /// 400: malformed path, selector or parameter.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no acceptable credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: credentials not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 404: unknown path, metric or queue.
    #[error("{0}")]
    NotFound(String),
    /// 405: only GET is served.
    #[error("method {0} is not allowed: this API is read-only, use GET")]
    MethodNotAllowed(String),
    /// 413: a body was sent to a route that takes none.
    #[error("request bodies are not accepted: this API is read-only")]
    BodyNotAllowed,
    /// 500: the broker answered with an error, or the answer made no sense.
    #[error("{0}")]
    Internal(String),
    /// 503: the broker cannot be reached.
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    /// The HTTP code and Status reason of this error.
    pub fn code_and_reason(&self) -> (StatusCode, Reason) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, Reason::BadRequest),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, Reason::Unauthorized),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, Reason::Forbidden),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, Reason::NotFound),
            ApiError::MethodNotAllowed(_) => {
                (StatusCode::METHOD_NOT_ALLOWED, Reason::MethodNotAllowed)
            }
            ApiError::BodyNotAllowed => {
                (StatusCode::PAYLOAD_TOO_LARGE, Reason::RequestEntityTooLarge)
            }
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, Reason::InternalError),
            ApiError::Unavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, Reason::ServiceUnavailable)
            }
        }
    }

    /// The `metav1.Status` body.
    pub fn status(&self) -> Status {
        let (code, reason) = self.code_and_reason();
        Status::failure(code.as_u16(), reason, self.to_string())
    }
}

impl From<BrokerError> for ApiError {
    fn from(e: BrokerError) -> Self {
        match e {
            BrokerError::Unavailable(_) => ApiError::Unavailable(e.to_string()),
            BrokerError::Rpc { .. } | BrokerError::Malformed(_) => {
                ApiError::Internal(e.to_string())
            }
        }
    }
}

impl From<ValueError> for ApiError {
    fn from(e: ValueError) -> Self {
        match e {
            ValueError::UnknownQueue(_) => ApiError::NotFound(e.to_string()),
            ValueError::NoQueueLabel(_) => ApiError::BadRequest(e.to_string()),
        }
    }
}

impl From<crate::custom::CustomError> for ApiError {
    fn from(e: crate::custom::CustomError) -> Self {
        match e {
            crate::custom::CustomError::Unknown(_) => ApiError::NotFound(e.to_string()),
            _ => ApiError::Internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, _) = self.code_and_reason();
        // Not logged here: the access log has every answer's code, and the broker thread logs
        // each failure once when it starts, so an outage under load is not a warning a request.
        (code, Json(self.status())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_errors_map_to_503_and_500() {
        let e: ApiError = BrokerError::Unavailable("connection refused".into()).into();
        assert_eq!(e.status().code, 503);
        assert_eq!(
            e.status().message,
            "Flux broker unavailable: connection refused"
        );
        let e: ApiError = BrokerError::Rpc {
            topic: "job-list.job-stats",
            message: "Function not implemented".into(),
        }
        .into();
        let s = e.status();
        assert_eq!((s.code, s.reason), (500, Reason::InternalError));
        assert!(
            s.message.contains("Function not implemented"),
            "{}",
            s.message
        );
    }
}
