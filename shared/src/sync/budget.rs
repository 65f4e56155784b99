//! How long a page may keep fetching.

use std::time::Duration;

use tokio::time::Instant;

/// Tells the engine when to stop fetching and return what it has.
pub trait Budget: Send + Sync {
    /// True when another upstream call would risk the response arriving too late.
    fn exhausted(&self) -> bool;

    /// Time left before the cut, if the budget is a clock.
    fn remaining(&self) -> Option<Duration> {
        None
    }
}

/// A wall-clock budget: the earlier of the Lambda deadline and API Gateway's 29-second limit, minus a
/// safety margin for serialising and returning the response.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    cut: Instant,
}

/// API Gateway HTTP APIs give up on an integration after 30 seconds; 29 keeps a second in hand.
pub const API_GATEWAY_LIMIT: Duration = Duration::from_secs(29);

impl Deadline {
    /// `lambda_left` is the time until the invocation's deadline, if known.
    pub fn new(started: Instant, lambda_left: Option<Duration>, margin: Duration) -> Self {
        let limit = lambda_left.map_or(API_GATEWAY_LIMIT, |l| l.min(API_GATEWAY_LIMIT));
        Deadline {
            cut: started + limit.saturating_sub(margin),
        }
    }

    /// The same deadline, but no later than `most` after `started` (e.g. `BRIDGE_PAGE_BUDGET_MS`).
    pub fn at_most(self, started: Instant, most: Duration) -> Self {
        Deadline {
            cut: self.cut.min(started + most),
        }
    }
}

impl Budget for Deadline {
    fn exhausted(&self) -> bool {
        Instant::now() >= self.cut
    }

    fn remaining(&self) -> Option<Duration> {
        Some(self.cut.saturating_duration_since(Instant::now()))
    }
}

/// A budget that never runs out (tools and tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct Unlimited;

impl Budget for Unlimited {
    fn exhausted(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_earlier_of_lambda_deadline_and_api_gateway_limit_minus_margin_applies() {
        let start = Instant::now();
        let d = Deadline::new(start, Some(Duration::from_secs(60)), Duration::from_secs(3));
        assert_eq!(d.remaining(), Some(Duration::from_secs(26)));
        let d = Deadline::new(start, Some(Duration::from_secs(10)), Duration::from_secs(3));
        assert_eq!(d.remaining(), Some(Duration::from_secs(7)));
        assert!(!d.exhausted());
        tokio::time::advance(Duration::from_secs(7)).await;
        assert!(d.exhausted());
    }

    #[tokio::test(start_paused = true)]
    async fn a_page_budget_shortens_the_deadline_but_never_lengthens_it() {
        let start = Instant::now();
        let d = Deadline::new(start, None, Duration::from_secs(3)).at_most(start, Duration::from_secs(20));
        assert_eq!(d.remaining(), Some(Duration::from_secs(20)));
        let d = Deadline::new(start, Some(Duration::from_secs(10)), Duration::from_secs(3)).at_most(start, Duration::from_secs(20));
        assert_eq!(d.remaining(), Some(Duration::from_secs(7)));
    }
}
