//! A gate in front of `moto_server`, so a test can make SSM fail the ways it fails in production and then
//! come back, without losing the emulator's parameters: [`GateMode::Open`] passes every call through,
//! the other modes answer as SSM does when it is out (HTTP 500), throttling (`ThrottlingException`) or
//! refusing the caller (`AccessDeniedException`). It also counts the calls that reach it.
//!
//! SSM speaks the AWS JSON 1.1 protocol: an error is an HTTP status with a body
//! `{"__type": "<code>", "message": "..."}`, which the SDK reads into the error's code and message.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::Router;
use bridge::secrets::ssm::aws_sdk_ssm;

use crate::server::Served;

/// How the gate answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateMode {
    /// Every call goes through to the emulator.
    Open,
    /// `500 InternalServerError`: SSM is out.
    Unavailable,
    /// `400 ThrottlingException` ("Rate exceeded"): the account's SSM rate is exhausted.
    Throttling,
    /// `400 AccessDeniedException`: the function may not read the parameters.
    AccessDenied,
}

struct Inner {
    target: String,
    mode: Mutex<GateMode>,
    calls: AtomicUsize,
    http: reqwest::Client,
}

/// A running gate on 127.0.0.1; dropping it stops it.
pub struct SsmGate {
    inner: Arc<Inner>,
    served: Served,
}

impl SsmGate {
    /// A gate in front of the emulator at `target` (`http://127.0.0.1:<port>`), open.
    pub async fn start(target: &str) -> SsmGate {
        let inner = Arc::new(Inner {
            target: target.trim_end_matches('/').to_owned(),
            mode: Mutex::new(GateMode::Open),
            calls: AtomicUsize::new(0),
            http: reqwest::Client::new(),
        });
        let router = Router::new().fallback(answer).with_state(inner.clone());
        let served = Served::local(router).await.expect("the SSM gate binds 127.0.0.1");
        SsmGate { inner, served }
    }

    pub fn set(&self, mode: GateMode) {
        *self.inner.mode.lock().unwrap_or_else(PoisonError::into_inner) = mode;
    }

    /// Calls that reached the gate, whatever it answered (the SDK's retries included).
    pub fn calls(&self) -> usize {
        self.inner.calls.load(Ordering::SeqCst)
    }

    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.served.addr())
    }

    /// An SSM client that goes through the gate.
    pub fn ssm_client(&self) -> aws_sdk_ssm::Client {
        crate::moto::ssm_client_at(&self.endpoint_url())
    }
}

async fn answer(State(gate): State<Arc<Inner>>, request: Request) -> Response {
    gate.calls.fetch_add(1, Ordering::SeqCst);
    let mode = *gate.mode.lock().unwrap_or_else(PoisonError::into_inner);
    let (status, code, message) = match mode {
        GateMode::Open => return forward(&gate, request).await,
        GateMode::Unavailable => (StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", "gate: SSM is out"),
        GateMode::Throttling => (StatusCode::BAD_REQUEST, "ThrottlingException", "Rate exceeded"),
        GateMode::AccessDenied => (StatusCode::BAD_REQUEST, "AccessDeniedException", "gate: not allowed"),
    };
    let body = serde_json::json!({"__type": code, "message": message}).to_string();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/x-amz-json-1.1")
        .body(Body::from(body))
        .unwrap_or_default()
}

/// The same request to the emulator, and its answer back.
async fn forward(gate: &Inner, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let Ok(bytes) = axum::body::to_bytes(body, 16 << 20).await else {
        return status_only(StatusCode::BAD_REQUEST);
    };
    let mut outgoing = gate.http.request(parts.method, format!("{}{path}", gate.target));
    for (name, value) in &parts.headers {
        if name != header::HOST && name != header::CONTENT_LENGTH {
            outgoing = outgoing.header(name, value);
        }
    }
    let Ok(upstream) = outgoing.body(bytes).send().await else {
        return status_only(StatusCode::BAD_GATEWAY);
    };
    let mut response = Response::builder().status(upstream.status());
    for (name, value) in upstream.headers() {
        if name != header::CONTENT_LENGTH && name != header::TRANSFER_ENCODING {
            response = response.header(name, value);
        }
    }
    let body = upstream.bytes().await.unwrap_or_default();
    response.body(Body::from(body)).unwrap_or_default()
}

fn status_only(status: StatusCode) -> Response {
    Response::builder().status(status).body(Body::empty()).unwrap_or_default()
}
