//! Pacing under a provider's rate limit, for every connector: what the provider said of its quota (on its
//! last answer, or with a 429's `Retry-After`) decides when the next request of the same account may go.
//!
//! One [`Pacer`] lives per container and remembers, per account, until when requests are held back. Talkdesk
//! sends a sync's pages one after another, so the page after a spent window usually lands on the container
//! that saw the window spent. The engine asks [`Pacer::hold`] before every upstream request and either waits
//! (while its time budget allows) or ends the page as it stands; it never sends a request the provider has
//! said it would refuse.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::connectors::Quota;

/// Accounts remembered at most; the map is emptied when it would grow beyond.
const MAX_ACCOUNTS: usize = 10_000;

/// Per-account "not before" instants.
#[derive(Debug, Default)]
pub struct Pacer {
    held: Mutex<HashMap<String, Instant>>,
}

impl Pacer {
    pub fn new() -> Self {
        Pacer::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, Instant>) -> R) -> R {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut held)
    }

    /// How long the next request of `account` must wait; zero when it may go now.
    pub fn hold(&self, account: &str) -> Duration {
        let now = Instant::now();
        self.with(|held| match held.get(account) {
            Some(until) if *until > now => *until - now,
            Some(_) => {
                held.remove(account);
                Duration::ZERO
            }
            None => Duration::ZERO,
        })
    }

    /// Forgets every hold (tests that model time passing between Talkdesk's calls).
    pub fn clear(&self) {
        self.with(HashMap::clear);
    }

    /// Records what the provider said on a successful answer: a spent window holds requests until it resets.
    pub fn observe(&self, account: &str, quota: Option<Quota>) {
        let Some(q) = quota else { return };
        if q.remaining == 0 {
            self.block(account, q.resets_in);
        }
    }

    /// Holds requests of `account` back for `wait` (a 429's `Retry-After`, or a spent window), never
    /// shortening a hold already in force.
    pub fn block(&self, account: &str, wait: Duration) {
        let until = Instant::now() + wait;
        self.with(|held| {
            if held.len() >= MAX_ACCOUNTS && !held.contains_key(account) {
                held.clear();
            }
            let slot = held.entry(account.to_string()).or_insert(until);
            if *slot < until {
                *slot = until;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_spent_window_holds_the_account_until_it_resets_and_no_longer() {
        let p = Pacer::new();
        p.observe(
            "a",
            Some(Quota {
                remaining: 3,
                resets_in: Duration::from_secs(40),
            }),
        );
        assert_eq!(p.hold("a"), Duration::ZERO, "quota left: no wait");
        p.observe(
            "a",
            Some(Quota {
                remaining: 0,
                resets_in: Duration::from_secs(40),
            }),
        );
        assert_eq!(p.hold("a"), Duration::from_secs(40));
        assert_eq!(p.hold("b"), Duration::ZERO, "other accounts are not held");
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(p.hold("a"), Duration::from_secs(10));
        p.block("a", Duration::from_secs(1));
        assert_eq!(p.hold("a"), Duration::from_secs(10), "a shorter hold never shortens one in force");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(p.hold("a"), Duration::ZERO);
    }
}
