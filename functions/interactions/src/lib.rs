//! `POST /interactions` (the caller's interactions, the moment a call rings) and `POST /auth/validate`
//! (Talkdesk's authorization validation, when an account activates the integration): the two short calls
//! a person waits for.

use std::time::Duration;

use bridge::sync::Deadline;
use bridge::App;
use lambda_http::{Error, Request, RequestExt, Response};

/// Handles one invocation, routed by path (API Gateway sends this function both routes). Every expected
/// failure is an `Ok` response with a JSON error body. The lookup ends by `BRIDGE_LOOKUP_BUDGET_MS` or
/// before the invocation's deadline, whichever comes first.
pub async fn handle(app: &App, req: Request) -> Result<Response<String>, Error> {
    let started = tokio::time::Instant::now();
    let lambda_left = req.lambda_context_ref().and_then(|ctx| {
        let now_ms = chrono::Utc::now().timestamp_millis();
        u64::try_from(ctx.deadline as i64 - now_ms).ok().map(Duration::from_millis)
    });
    let budget = Deadline::new(started, lambda_left, app.config.time_margin);
    if is_validate(req.uri().path()) {
        return Ok(app.handle_validate(&req, &budget).await);
    }
    Ok(app.handle_interactions_within(&req, &budget).await)
}

/// `/auth/validate`, also behind a stage or a custom domain's base path.
fn is_validate(path: &str) -> bool {
    path.trim_end_matches('/').ends_with("/auth/validate")
}
