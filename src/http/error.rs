//! The one error contract of the JSON API: every domain error maps to a stable `code`, an
//! HTTP status and an RFC 9457 `application/problem+json` body whose `detail` a person can
//! act on. Bodies never carry tokens, keys, file paths or stack traces.

use crate::catalog::sparql::QueryError;
use crate::catalog::{CatalogError, FindingView};
use crate::identity::AuthError;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// The base of the `type` IRIs of problems.
pub const PROBLEM_BASE: &str = "https://w3id.org/agora/problems/";

/// A problem as the API answers it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A stable IRI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What happened here and what to do about it.
    pub detail: String,
    /// Every constraint violation, for `422` answers to invalid descriptions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub violations: Option<Vec<FindingView>>,
}

/// An error on its way to becoming a problem response.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    detail: String,
    violations: Option<Vec<FindingView>>,
    retry_after: Option<u32>,
    challenge: bool,
}

impl ApiError {
    /// A problem with the given status, stable code, title and detail.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            title,
            detail: detail.into(),
            violations: None,
            retry_after: None,
            challenge: false,
        }
    }

    /// `400 bad-request`.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad request",
            detail,
        )
    }

    /// `403 forbidden`.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
    }

    /// `404 not-found`.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// `406 not-acceptable`, listing what is available.
    pub fn not_acceptable(available: &[&str]) -> Self {
        Self::new(
            StatusCode::NOT_ACCEPTABLE,
            "not-acceptable",
            "Not acceptable",
            format!(
                "none of the requested media types is available; ask for one of: {}",
                available.join(", ")
            ),
        )
    }

    /// `500 internal`: the node's fault. The detail is logged, not sent. Two storage faults
    /// are the operator's to fix, not bugs, and clients should retry rather than give up: a
    /// full disk is `507 insufficient-storage` and a read-only one `503 storage-read-only`,
    /// both with `Retry-After` (matrix R40). They are recognised by the OS error text, because
    /// RocksDB and tantivy hand them up as strings.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        let text = detail.to_string();
        if text.contains("No space left on device")
            || text.contains("os error 28")
            || text.contains("Disk quota exceeded")
        {
            tracing::error!(error = %text, "storage full");
            return Self::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "insufficient-storage",
                "Insufficient storage",
                "the node's storage is full, so nothing was written; try again once the operator has freed space",
            )
            .with_retry_after(60);
        }
        if text.contains("Read-only file system") || text.contains("os error 30") {
            tracing::error!(error = %text, "storage read-only");
            return Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage-read-only",
                "Service unavailable",
                "the node's storage is read-only, so nothing was written (reads still work); the operator must check the data disk and make it writable again (fsck, remount read-write, restart the node); try again later",
            )
            .with_retry_after(60);
        }
        tracing::error!(error = %text, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the node failed to handle this request; the operator can find it in the logs by its request id",
        )
    }

    fn with_retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The body of this problem.
    pub fn problem(&self) -> Problem {
        Problem {
            kind: format!("{PROBLEM_BASE}{}", self.code),
            title: self.title.to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            violations: self.violations.clone(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        response.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        if self.challenge {
            response.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"agora\""),
            ));
        }
        response.body(serde_json::to_vec(&self.problem()).unwrap_or_default())
    }
}

impl From<CatalogError> for ApiError {
    fn from(error: CatalogError) -> Self {
        let detail = error.to_string();
        match error {
            CatalogError::NotFound { .. } => Self::not_found(detail),
            CatalogError::NotOwner { .. } => Self::forbidden(detail),
            CatalogError::TooLarge { .. } | CatalogError::TooManyTriples { .. } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "Payload too large",
                detail,
            ),
            CatalogError::TooDeep { .. } => Self::new(
                StatusCode::BAD_REQUEST,
                "too-deep",
                "JSON nested too deeply",
                detail,
            ),
            CatalogError::UnsupportedMediaType { .. } => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                detail,
            ),
            CatalogError::Syntax { .. } => {
                Self::new(StatusCode::BAD_REQUEST, "syntax", "Malformed RDF", detail)
            }
            CatalogError::BadRequest { .. } => Self::bad_request(detail),
            CatalogError::Invalid { violations } => {
                let mut problem = Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "shacl-violation",
                    "The description violates DCAT-AP",
                    detail,
                );
                problem.violations = Some(violations.iter().map(FindingView::from).collect());
                problem
            }
            CatalogError::Conflict { .. } => {
                Self::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
            }
            CatalogError::Internal(message) => Self::internal(message),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        let mut problem = Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            error.to_string(),
        );
        problem.challenge = true;
        problem
    }
}

impl From<QueryError> for ApiError {
    fn from(error: QueryError) -> Self {
        let detail = error.to_string();
        match error {
            QueryError::BadQuery(_) => Self::new(
                StatusCode::BAD_REQUEST,
                "sparql-query",
                "Invalid SPARQL query",
                detail,
            ),
            QueryError::UpdateRefused => Self::new(
                StatusCode::FORBIDDEN,
                "sparql-update-refused",
                "SPARQL Update refused",
                detail,
            ),
            QueryError::Timeout(_) | QueryError::OutOfMemory(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "sparql-budget",
                "SPARQL query budget exceeded",
                detail,
            ),
            QueryError::ResultTooLarge(_) => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "sparql-result-too-large",
                "SPARQL result too large",
                detail,
            ),
            QueryError::Busy => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "SPARQL endpoint busy",
                detail,
            )
            .with_retry_after(2),
            QueryError::Evaluation(_) => Self::new(
                StatusCode::BAD_REQUEST,
                "sparql-evaluation",
                "SPARQL evaluation failed",
                detail,
            ),
            QueryError::ServiceRefused(_) => Self::new(
                StatusCode::BAD_REQUEST,
                "sparql-service-refused",
                "SPARQL SERVICE refused",
                detail,
            ),
            QueryError::Peer(_) => Self::new(
                StatusCode::BAD_GATEWAY,
                "sparql-service-peer",
                "A peer's SPARQL endpoint failed",
                detail,
            ),
            QueryError::Internal(message) => Self::internal(message),
        }
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(error: actix_web::error::BlockingError) -> Self {
        Self::internal(error)
    }
}

/// Turns any error response that is not already problem+json (actix's own extractor and
/// payload errors, unknown routes) into one, so the contract holds everywhere.
pub fn problemize<B>(
    response: actix_web::dev::ServiceResponse<B>,
) -> actix_web::Result<actix_web::middleware::ErrorHandlerResponse<B>> {
    let is_problem = response
        .response()
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|ct| {
            // problem+json already, or a Dataspace Protocol error message (its own format).
            ct.as_bytes().starts_with(b"application/problem+json")
                || ct.as_bytes().starts_with(b"application/json")
                // or a page of the web UI, which renders its own errors for people.
                || ct.as_bytes().starts_with(b"text/html")
        });
    if is_problem {
        return Ok(actix_web::middleware::ErrorHandlerResponse::Response(
            response.map_into_left_body(),
        ));
    }
    let status = response.status();
    let detail = response
        .response()
        .error()
        .map(|e| sanitize(&e.to_string()))
        .unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("request failed")
                .to_owned()
        });
    let (code, title) = match status {
        StatusCode::NOT_FOUND => ("not-found", "Not found"),
        StatusCode::METHOD_NOT_ALLOWED => ("method-not-allowed", "Method not allowed"),
        StatusCode::PAYLOAD_TOO_LARGE => ("too-large", "Payload too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported-media-type", "Unsupported media type"),
        s if s.is_server_error() => ("internal", "Internal error"),
        _ => ("bad-request", "Bad request"),
    };
    let detail = match status {
        StatusCode::NOT_FOUND => {
            "no such resource on this node; see /openapi.json for the API".to_owned()
        }
        StatusCode::PAYLOAD_TOO_LARGE => format!("{detail}; send a smaller body"),
        _ => detail,
    };
    let mut problem = ApiError::new(status, code, title, detail).error_response();
    // A 405 must say which methods the resource takes (RFC 9110, 15.5.6): actix's answer does.
    if let Some(allow) = response.response().headers().get(header::ALLOW) {
        problem.headers_mut().insert(header::ALLOW, allow.clone());
    }
    let (request, _) = response.into_parts();
    Ok(actix_web::middleware::ErrorHandlerResponse::Response(
        actix_web::dev::ServiceResponse::new(request, problem).map_into_right_body(),
    ))
}

/// Keeps error text short and free of anything that looks like a path.
fn sanitize(message: &str) -> String {
    let short: String = message.chars().take(300).collect();
    short
        .split_whitespace()
        .map(|word| {
            if word.starts_with('/') && word.len() > 1 {
                "<path>"
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
