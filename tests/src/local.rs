//! The real Lambda handlers (`contacts::handle`, `interactions::handle`) served over HTTP on 127.0.0.1, the
//! way API Gateway routes them, for the conformance kit and end-to-end tests.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::server::Served;
use axum::body::Body as AxumBody;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use bridge::App;

/// A running local bridge; stops when dropped.
pub struct LocalBridge {
    pub addr: SocketAddr,
    _server: Served,
}

impl LocalBridge {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn to_lambda(req: Request) -> lambda_http::Request {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 16 * 1024 * 1024).await.unwrap_or_default();
    lambda_http::Request::from_parts(parts, lambda_http::Body::from(bytes.to_vec()))
}

fn to_axum(resp: Result<http::Response<String>, lambda_http::Error>) -> Response {
    match resp {
        Ok(r) => r.map(AxumBody::from),
        Err(e) => {
            let mut r = Response::new(AxumBody::from(format!(
                "{{\"error\":{{\"code\":\"handler_error\",\"message\":\"{e}\"}}}}"
            )));
            *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            r
        }
    }
}

async fn contacts_route(State(app): State<Arc<App>>, req: Request) -> Response {
    let req = to_lambda(req).await;
    to_axum(contacts::handle(&app, req).await)
}

async fn interactions_route(State(app): State<Arc<App>>, req: Request) -> Response {
    let req = to_lambda(req).await;
    to_axum(interactions::handle(&app, req).await)
}

/// Serves `app` as API Gateway routes it (`POST /contacts` and `POST /agents` to the contacts function,
/// `POST /interactions` and `POST /auth/validate` to the interactions function) on an ephemeral 127.0.0.1
/// port.
pub async fn serve(app: Arc<App>) -> std::io::Result<LocalBridge> {
    serve_on(app, std::net::SocketAddr::from(([127, 0, 0, 1], 0))).await
}

/// As [`serve`], on `addr`.
pub async fn serve_on(app: Arc<App>, addr: SocketAddr) -> std::io::Result<LocalBridge> {
    let router = Router::new()
        .route("/contacts", post(contacts_route))
        .route("/agents", post(contacts_route))
        .route("/interactions", post(interactions_route))
        .route("/auth/validate", post(interactions_route))
        .with_state(app);
    let server = Served::start(router, addr).await?;
    Ok(LocalBridge {
        addr: server.addr(),
        _server: server,
    })
}
