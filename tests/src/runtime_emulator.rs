//! A local AWS Lambda Runtime API on 127.0.0.1, so the real release binaries run unmodified under
//! `AWS_LAMBDA_RUNTIME_API=127.0.0.1:<port>`.
//!
//! It speaks the documented endpoints: `GET /2018-06-01/runtime/invocation/next` (long-polls for the next
//! event, with `Lambda-Runtime-Aws-Request-Id`, `Lambda-Runtime-Deadline-Ms`,
//! `Lambda-Runtime-Invoked-Function-Arn` and `Lambda-Runtime-Trace-Id`),
//! `POST /2018-06-01/runtime/invocation/{id}/response`, `POST /2018-06-01/runtime/invocation/{id}/error` and
//! `POST /2018-06-01/runtime/init/error`. It records when the first `next` arrived: the end of INIT.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::{mpsc, oneshot};

const BASE: &str = "/2018-06-01/runtime";

/// What a function answered to one invocation.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The body posted to `/response`.
    Response(Bytes),
    /// The body posted to `/error`.
    Error(Bytes),
}

struct Pending {
    id: String,
    event: Bytes,
    done: oneshot::Sender<(Outcome, Duration)>,
}

/// An invocation handed to the function and not answered yet.
struct Handed {
    at: Instant,
    done: oneshot::Sender<(Outcome, Duration)>,
}

struct Shared {
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>,
    waiting: Mutex<HashMap<String, Handed>>,
    first_next: Mutex<Option<Instant>>,
    init_error: Mutex<Option<Bytes>>,
    function_name: String,
}

/// A running emulator; stops when dropped.
pub struct RuntimeEmulator {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    submit: mpsc::UnboundedSender<Pending>,
    next_id: AtomicU64,
    _server: crate::server::Served,
}

impl RuntimeEmulator {
    pub async fn start(function_name: &str) -> std::io::Result<RuntimeEmulator> {
        let (submit, queue) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            queue: tokio::sync::Mutex::new(queue),
            waiting: Mutex::new(HashMap::new()),
            first_next: Mutex::new(None),
            init_error: Mutex::new(None),
            function_name: function_name.to_string(),
        });
        let router = Router::new()
            .route(&format!("{BASE}/invocation/next"), get(next))
            .route(&format!("{BASE}/invocation/{{id}}/response"), post(response))
            .route(&format!("{BASE}/invocation/{{id}}/error"), post(error))
            .route(&format!("{BASE}/init/error"), post(init_error))
            .with_state(shared.clone());
        let server = crate::server::Served::local(router).await?;
        let addr = server.addr();
        Ok(RuntimeEmulator {
            addr,
            shared,
            submit,
            next_id: AtomicU64::new(1),
            _server: server,
        })
    }

    /// The value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn runtime_api(&self) -> String {
        self.addr.to_string()
    }

    /// Waits until the function asks for its first event (INIT is over) and returns when it did, or the
    /// body it posted to `/init/error`, or `None` after `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<Instant, String> {
        let deadline = Instant::now() + timeout;
        loop {
            // The instant is taken by the `next` handler itself, so polling here costs no precision.
            if let Some(at) = *self.shared.first_next.lock().unwrap_or_else(|p| p.into_inner()) {
                return Ok(at);
            }
            if let Some(e) = self.shared.init_error.lock().unwrap_or_else(|p| p.into_inner()).clone() {
                return Err(format!("init error: {}", String::from_utf8_lossy(&e)));
            }
            if Instant::now() >= deadline {
                return Err("the function never asked for an event".into());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Sends one event and waits for the function's answer.
    pub async fn invoke(&self, event: impl Into<Bytes>) -> Result<Outcome, String> {
        self.invoke_timed(event).await.map(|(outcome, _)| outcome)
    }

    /// [`RuntimeEmulator::invoke`], with the function's own time: from the event handed over by
    /// `/invocation/next` to its answer received, what Lambda bills as the invocation's duration.
    pub async fn invoke_timed(&self, event: impl Into<Bytes>) -> Result<(Outcome, Duration), String> {
        let id = format!("bench-{:08}", self.next_id.fetch_add(1, Ordering::SeqCst));
        let (done, result) = oneshot::channel();
        self.submit
            .send(Pending {
                id,
                event: event.into(),
                done,
            })
            .map_err(|_| "the emulator stopped".to_string())?;
        result.await.map_err(|_| "the invocation was dropped".to_string())
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    {
        let mut first = shared.first_next.lock().unwrap_or_else(|p| p.into_inner());
        if first.is_none() {
            *first = Some(Instant::now());
        }
    }
    let pending = shared.queue.lock().await.recv().await;
    let Some(p) = pending else {
        return StatusCode::GONE.into_response();
    };
    shared.waiting.lock().unwrap_or_else(|e| e.into_inner()).insert(
        p.id.clone(),
        Handed {
            at: Instant::now(),
            done: p.done,
        },
    );
    let deadline = chrono::Utc::now().timestamp_millis() + 30_000;
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    put("lambda-runtime-aws-request-id", p.id.clone());
    put("lambda-runtime-deadline-ms", deadline.to_string());
    put(
        "lambda-runtime-invoked-function-arn",
        format!("arn:aws:lambda:us-east-1:123456789012:function:{}", shared.function_name),
    );
    put("lambda-runtime-trace-id", format!("Root=1-00000000-{:0>24};Sampled=0", p.id.len()));
    put("content-type", "application/json".into());
    (StatusCode::OK, headers, p.event).into_response()
}

fn finish(shared: &Shared, id: &str, outcome: Outcome) -> StatusCode {
    match shared.waiting.lock().unwrap_or_else(|e| e.into_inner()).remove(id) {
        Some(handed) => {
            let _ = handed.done.send((outcome, handed.at.elapsed()));
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn response(State(shared): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    finish(&shared, &id, Outcome::Response(body))
}

async fn error(State(shared): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    finish(&shared, &id, Outcome::Error(body))
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    *shared.init_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(body);
    StatusCode::ACCEPTED
}

/// An API Gateway HTTP API (payload 2.0) event for `POST {path}` with a JSON body.
pub fn http_event(path: &str, body: &str) -> Bytes {
    let event = serde_json::json!({
        "version": "2.0",
        "routeKey": format!("POST {path}"),
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "bench.execute-api.us-east-1.amazonaws.com"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "bench", "domainName": "bench.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "bench",
            "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench"},
            "requestId": "bench", "routeKey": format!("POST {path}"), "stage": "$default",
            "time": "21/Feb/2025:09:48:42 +0000", "timeEpoch": 1740131322000i64
        },
        "body": body,
        "isBase64Encoded": false
    });
    Bytes::from(event.to_string())
}

/// The status and body of an API Gateway (payload 2.0) response the function posted.
pub fn http_response(outcome: &Outcome) -> Result<(u16, String), String> {
    match outcome {
        Outcome::Error(e) => Err(format!("invocation error: {}", String::from_utf8_lossy(e))),
        Outcome::Response(b) => {
            let v: serde_json::Value = serde_json::from_slice(b).map_err(|e| format!("response is not JSON: {e}"))?;
            let status = v["statusCode"].as_u64().unwrap_or(0) as u16;
            let body = v["body"].as_str().unwrap_or_default().to_string();
            Ok((status, body))
        }
    }
}
