//! `POST /contacts` (one page of Talkdesk's contact sync) and `POST /agents` (Talkdesk's agent
//! synchronization): the two long-running reads, under the same page budget.

use std::time::Duration;

use bridge::sync::Deadline;
use bridge::App;
use lambda_http::{Error, Request, RequestExt, Response};

/// Handles one invocation, routed by path (API Gateway sends this function both routes). Every expected
/// failure is an `Ok` response with a JSON error body.
pub async fn handle(app: &App, req: Request) -> Result<Response<String>, Error> {
    let started = tokio::time::Instant::now();
    let lambda_left = req.lambda_context_ref().and_then(|ctx| {
        let now_ms = chrono::Utc::now().timestamp_millis();
        u64::try_from(ctx.deadline as i64 - now_ms).ok().map(Duration::from_millis)
    });
    let budget = Deadline::new(started, lambda_left, app.config.time_margin).at_most(started, app.config.page_budget);
    if is_agents(req.uri().path()) {
        return Ok(app.handle_agents(&req, &budget).await);
    }
    Ok(app.handle_contacts(&req, &budget, chrono::Utc::now()).await)
}

/// `/agents`, also behind a stage or a custom domain's base path.
fn is_agents(path: &str) -> bool {
    path.trim_end_matches('/').ends_with("/agents")
}
