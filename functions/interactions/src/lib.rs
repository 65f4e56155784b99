//! `POST /interactions`: the caller's interactions, the moment a call rings.

use bridge::App;
use lambda_http::{Error, Request, Response};

/// Handles one invocation. Every expected failure is an `Ok` response with a JSON error body.
pub async fn handle(app: &App, req: Request) -> Result<Response<String>, Error> {
    Ok(app.handle_interactions(&req).await)
}
