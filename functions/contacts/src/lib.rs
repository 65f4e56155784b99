//! `POST /contacts`: one page of Talkdesk's contact sync.

use std::time::Duration;

use bridge::sync::Deadline;
use bridge::App;
use lambda_http::{Error, Request, RequestExt, Response};

/// Handles one invocation. Every expected failure is an `Ok` response with a JSON error body.
pub async fn handle(app: &App, req: Request) -> Result<Response<String>, Error> {
    let started = tokio::time::Instant::now();
    let lambda_left = req.lambda_context_ref().and_then(|ctx| {
        let now_ms = chrono::Utc::now().timestamp_millis();
        u64::try_from(ctx.deadline as i64 - now_ms).ok().map(Duration::from_millis)
    });
    let budget = Deadline::new(started, lambda_left, app.config.time_margin).at_most(started, app.config.page_budget);
    Ok(app.handle_contacts(&req, &budget, chrono::Utc::now()).await)
}
