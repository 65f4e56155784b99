//! The one place where failures become HTTP responses: a status, an optional `Retry-After`, and the body
//! `{"error": {"code": "...", "message": "..."}}`. Client errors say exactly what was wrong; upstream
//! failures say which system failed and how, never echoing an upstream body or a credential.

use std::time::Duration;

use serde_json::json;

use crate::agents::AgentsError;
use crate::connectors::ConnectorError;
use crate::sync::TokenError;
use crate::talkdesk::RequestError;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    /// Authorization validation (`POST /auth/validate`) found credentials that cannot work: answered 401
    /// whatever the reason (malformed field, rejected credentials, missing permission), as Talkdesk's
    /// protocol wants; upstream outages keep their own status.
    #[error(transparent)]
    Validation(ConnectorError),
    #[error(transparent)]
    Agents(#[from] AgentsError),
    #[error("`{field}` was refused: {source}")]
    Token { field: &'static str, source: TokenError },
    #[error("the request is not authenticated: present the bridge token as `Authorization: Bearer <token>` or `auth.bridge_token`")]
    Unauthenticated,
    #[error("only POST is supported here")]
    MethodNotAllowed,
    /// The deployment's secrets could not be read from SSM and the ones read before have expired.
    #[error("the configuration store is unavailable; retry later")]
    ConfigStoreUnavailable,
}

impl ApiError {
    pub fn status(&self) -> u16 {
        match self {
            ApiError::Request(e) => e.status(),
            ApiError::Token { .. } => 400,
            ApiError::Unauthenticated => 401,
            ApiError::MethodNotAllowed => 405,
            ApiError::ConfigStoreUnavailable => 503,
            ApiError::Validation(e) if refuses_credentials(e) => 401,
            ApiError::Validation(e) | ApiError::Agents(AgentsError::Connector(e)) => connector_status(e),
            ApiError::Agents(AgentsError::OutOfTime { .. }) => 504,
            ApiError::Agents(AgentsError::TooLarge { .. } | AgentsError::TooManyPages { .. }) => 502,
            ApiError::Connector(e) => connector_status(e),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Request(e) => e.code(),
            ApiError::Token { field, .. } => {
                if *field == "meta.offset" {
                    "invalid_offset"
                } else {
                    "invalid_checkpoint"
                }
            }
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::ConfigStoreUnavailable => "config_store_unavailable",
            ApiError::Validation(e) | ApiError::Agents(AgentsError::Connector(e)) | ApiError::Connector(e) => connector_code(e),
            ApiError::Agents(AgentsError::OutOfTime { .. } | AgentsError::TooManyPages { .. }) => "agents_incomplete",
            ApiError::Agents(AgentsError::TooLarge { .. }) => "agents_too_large",
        }
    }

    /// Seconds to put in `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Validation(e) if refuses_credentials(e) => None,
            ApiError::Connector(e) | ApiError::Agents(AgentsError::Connector(e)) | ApiError::Validation(e) => {
                crate::sync::engine::retry_hint(e)
            }
            ApiError::ConfigStoreUnavailable => Some(Duration::from_secs(5)),
            _ => None,
        }
    }

    pub fn to_response(&self) -> ApiResponse {
        let body = json!({"error": {"code": self.code(), "message": self.to_string()}}).to_string();
        let mut response = ApiResponse::json(self.status(), body);
        if let Some(after) = self.retry_after() {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            response.headers.push(("retry-after", secs.max(1).to_string()));
        }
        response
    }
}

/// A validation failure that says the credentials cannot work (answered 401 by `POST /auth/validate`).
fn refuses_credentials(e: &ConnectorError) -> bool {
    matches!(
        e,
        ConnectorError::InvalidAuth { .. } | ConnectorError::Unauthorized { .. } | ConnectorError::Forbidden { .. }
    )
}

fn connector_status(e: &ConnectorError) -> u16 {
    match e {
        ConnectorError::Unsupported { .. } => 501,
        ConnectorError::InvalidAuth { .. } => 400,
        ConnectorError::Unauthorized { .. } => 401,
        ConnectorError::Forbidden { .. } => 403,
        ConnectorError::RateLimited { .. } | ConnectorError::Unavailable { .. } => 503,
        ConnectorError::Timeout { .. } => 504,
        ConnectorError::BadGateway { .. } | ConnectorError::CursorRejected { .. } | ConnectorError::Rejected { .. } => 502,
    }
}

fn connector_code(e: &ConnectorError) -> &'static str {
    match e {
        ConnectorError::Unsupported { .. } => "not_supported",
        ConnectorError::InvalidAuth { .. } => "invalid_auth",
        ConnectorError::Unauthorized { .. } => "upstream_unauthorized",
        ConnectorError::Forbidden { .. } => "upstream_forbidden",
        ConnectorError::RateLimited { .. } => "upstream_rate_limited",
        ConnectorError::Unavailable { .. } => "upstream_unavailable",
        ConnectorError::Timeout { .. } => "upstream_timeout",
        ConnectorError::BadGateway { .. } | ConnectorError::CursorRejected { .. } => "upstream_error",
        ConnectorError::Rejected { .. } => "upstream_rejected",
    }
}

/// A response, independent of the Lambda event type that carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl ApiResponse {
    pub fn json(status: u16, body: String) -> Self {
        ApiResponse {
            status,
            headers: vec![("content-type", "application/json".into())],
            body,
        }
    }

    /// The same response as an `http::Response`, which every Lambda HTTP event type accepts.
    pub fn into_http(self) -> http::Response<String> {
        let mut builder = http::Response::builder().status(self.status);
        for (name, value) in &self.headers {
            builder = builder.header(*name, value.as_str());
        }
        builder.body(self.body).unwrap_or_else(|_| {
            let mut fallback = http::Response::new(String::from(
                r#"{"error":{"code":"internal","message":"response could not be built"}}"#,
            ));
            *fallback.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            fallback
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_failures_get_their_own_status_and_retry_after() {
        let cases = [
            (ConnectorError::Unauthorized { system: "Zendesk" }, 401, None),
            (
                ConnectorError::Forbidden {
                    message: "needs an admin".into(),
                },
                403,
                None,
            ),
            (
                ConnectorError::RateLimited {
                    system: "Zendesk",
                    retry_after: Some(Duration::from_millis(1500)),
                },
                503,
                Some("2"),
            ),
            (
                ConnectorError::Unavailable {
                    system: "Zendesk",
                    retry_after: None,
                },
                503,
                Some("5"),
            ),
            (ConnectorError::Timeout { system: "Zendesk" }, 504, Some("5")),
            (
                ConnectorError::BadGateway {
                    message: "Zendesk answered 500".into(),
                },
                502,
                Some("5"),
            ),
        ];
        for (e, status, retry) in cases {
            let r = ApiError::from(e).to_response();
            assert_eq!(r.status, status);
            assert_eq!(r.header("retry-after"), retry);
            let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            assert!(body["error"]["code"].as_str().unwrap().starts_with("upstream_"));
            assert!(!body["error"]["message"].as_str().unwrap().is_empty());
        }
    }

    #[test]
    fn client_errors_name_the_field() {
        let r = ApiError::Token {
            field: "meta.offset",
            source: TokenError::BadSignature,
        }
        .to_response();
        assert_eq!(r.status, 400);
        assert!(r.body.contains("invalid_offset") && r.body.contains("meta.offset"), "{}", r.body);
    }
}
