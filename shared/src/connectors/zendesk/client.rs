//! Zendesk's HTTP API: one `reqwest::Client` per container, the host built only from a checked subdomain
//! (or `ZENDESK_BASE_URL`), every upstream status mapped to a [`ConnectorError`], and `Retry-After`
//! honoured on 429 and 503 while the caller's allowance lasts.
//!
//! Nothing upstream is echoed: errors name the operation and the HTTP status, never a body, a URL (search
//! queries hold emails and phone numbers) or a credential.

use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;

use super::credentials::Credentials;
use crate::connectors::{ConnectorError, Quota};
use crate::sync::Budget;

pub(crate) const SYSTEM: &str = "Zendesk";

/// The most attempts one call makes when told to retry later.
const MAX_ATTEMPTS: u32 = 3;
/// The longest `Retry-After` waited out when the budget has no clock (tools and tests).
const MAX_UNTIMED_WAIT: Duration = Duration::from_secs(30);
/// Time kept for the request itself after waiting out a `Retry-After`.
const REQUEST_RESERVE: Duration = Duration::from_secs(2);
/// The shortest per-request timeout a nearly spent budget cuts a request to.
const MIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// Interaction lookups wait out a `Retry-After` at most this long, once: Talkdesk is showing a screen.
pub(crate) const BRIEF_WAIT: Duration = Duration::from_secs(2);

/// What is being called, for error messages and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    UserExport,
    Organizations,
    UserSearch,
    Identities,
    RequestedTickets,
    CurrentUser,
    Agents,
}

impl Op {
    fn doing(self) -> &'static str {
        match self {
            Op::UserExport => "exporting users",
            Op::Organizations => "reading organizations",
            Op::UserSearch => "searching users",
            Op::Identities => "reading user identities",
            Op::RequestedTickets => "listing a user's tickets",
            Op::CurrentUser => "reading the signed-in user",
            Op::Agents => "listing agents",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Op::UserExport => "user_export",
            Op::Organizations => "organizations",
            Op::UserSearch => "user_search",
            Op::Identities => "identities",
            Op::RequestedTickets => "requested_tickets",
            Op::CurrentUser => "current_user",
            Op::Agents => "agents",
        }
    }

    fn forbidden(self) -> String {
        match self {
            Op::UserExport => "Zendesk refused the incremental user export (403): it is allowed for admins only, so the credentials must belong to a Zendesk admin".into(),
            Op::CurrentUser => "Zendesk refused to show the user the credentials belong to (403): the integration needs a Zendesk admin's credentials".into(),
            other => format!("Zendesk refused access while {} (403): the credentials need an agent or admin who can see users and tickets", other.doing()),
        }
    }
}

/// How long a call may wait when Zendesk says "retry after".
#[derive(Clone, Copy)]
pub(crate) enum Patience<'a> {
    /// Never: the caller (the sync engine's pacer) waits, and the request is cut at the budget's end.
    Caller(&'a dyn Budget),
    /// While the page's time budget lasts (contact sync).
    Budget(&'a dyn Budget),
    /// Once, for at most [`BRIEF_WAIT`], and only when the wait ends before the lookup's deadline
    /// (interaction lookups).
    Brief(&'a dyn Budget),
}

impl Patience<'_> {
    /// A request timeout shorter than the configured one when the page's budget ends sooner.
    fn timeout(&self) -> Option<Duration> {
        match self {
            Patience::Budget(b) | Patience::Caller(b) | Patience::Brief(b) => b.remaining().map(|left| left.max(MIN_REQUEST_TIMEOUT)),
        }
    }

    /// How long to wait before attempt number `attempt + 1`, or `None` to give up.
    fn wait(&self, retry_after: Option<Duration>, attempt: u32) -> Option<Duration> {
        let wait = retry_after?;
        match self {
            Patience::Caller(_) => None,
            Patience::Brief(b) => {
                let fits = b.remaining().is_none_or(|left| wait < left);
                (attempt == 1 && wait <= BRIEF_WAIT && fits).then_some(wait)
            }
            Patience::Budget(b) => {
                if attempt >= MAX_ATTEMPTS || b.exhausted() {
                    return None;
                }
                match b.remaining() {
                    Some(left) => (wait + REQUEST_RESERVE <= left).then_some(wait),
                    None => (wait <= MAX_UNTIMED_WAIT).then_some(wait),
                }
            }
        }
    }
}

/// Reads `Retry-After`: delay-seconds (a decimal fraction is tolerated) or an HTTP date, relative to `now`.
/// A date in the past means "now".
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse::<u64>().ok().map(|s| Duration::from_secs(s.min(86_400)));
    }
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// What Zendesk's rate-limit headers say, the tightest of them: the endpoint's own
/// (`Zendesk-RateLimit-<endpoint>: total=10; remaining=3; resets=41`), the IETF draft's
/// `ratelimit-remaining` / `ratelimit-reset`, and the account-wide `X-Rate-Limit-Remaining` (per minute,
/// with no reset given: a spent one is taken to reset within 60 s).
pub fn quota(headers: &http::HeaderMap) -> Option<Quota> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let mut found: Vec<Quota> = Vec::new();
    for (name, value) in headers {
        if !name.as_str().starts_with("zendesk-ratelimit-") {
            continue;
        }
        let Ok(value) = value.to_str() else { continue };
        let mut remaining = None;
        let mut resets = None;
        for part in value.split(';') {
            match part.trim().split_once('=') {
                Some(("remaining", v)) => remaining = v.trim().parse::<u32>().ok(),
                Some(("resets", v)) => resets = v.trim().parse::<u64>().ok(),
                _ => {}
            }
        }
        if let Some(remaining) = remaining {
            found.push(Quota {
                remaining,
                resets_in: Duration::from_secs(resets.unwrap_or(60)),
            });
        }
    }
    if let Some(remaining) = text("ratelimit-remaining").and_then(|v| v.parse::<u32>().ok()) {
        let reset = text("ratelimit-reset").and_then(|v| v.parse::<u64>().ok()).unwrap_or(60);
        found.push(Quota {
            remaining,
            resets_in: Duration::from_secs(reset),
        });
    }
    if let Some(remaining) = text("x-rate-limit-remaining").and_then(|v| v.parse::<u32>().ok()) {
        found.push(Quota {
            remaining,
            resets_in: Duration::from_secs(60),
        });
    }
    found
        .into_iter()
        .min_by(|a, b| a.remaining.cmp(&b.remaining).then(b.resets_in.cmp(&a.resets_in)))
}

/// The Zendesk HTTP client shared by every invocation of a container.
pub(crate) struct ZendeskHttp {
    client: reqwest::Client,
    bodies: crate::http::BodyBuffer,
    base_override: Option<String>,
    request_timeout: Duration,
}

impl ZendeskHttp {
    pub(crate) fn new(connect_timeout: Duration, request_timeout: Duration, base_override: Option<String>) -> Result<Self, reqwest::Error> {
        let client = crate::http::client_builder()
            .connect_timeout(connect_timeout)
            .timeout(request_timeout)
            .build()?;
        Ok(ZendeskHttp {
            client,
            bodies: crate::http::BodyBuffer::default(),
            base_override,
            request_timeout,
        })
    }

    /// `https://{subdomain}.zendesk.com`, or the deployment's override.
    pub(crate) fn base(&self, creds: &Credentials) -> String {
        match &self.base_override {
            Some(b) => b.clone(),
            None => creds.agent_base(),
        }
    }

    /// GETs `path` (built by the caller from numbers and constants only) and decodes the JSON answer.
    /// `Ok(None)` on 404.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        creds: &Credentials,
        path: &str,
        query: &[(&str, String)],
        op: Op,
        patience: Patience<'_>,
    ) -> Result<Option<T>, ConnectorError> {
        Ok(self.get_with_quota(creds, path, query, op, patience).await?.0)
    }

    /// As [`ZendeskHttp::get`], with what the answer's rate-limit headers said.
    pub(crate) async fn get_with_quota<T: DeserializeOwned>(
        &self,
        creds: &Credentials,
        path: &str,
        query: &[(&str, String)],
        op: Op,
        patience: Patience<'_>,
    ) -> Result<(Option<T>, Option<Quota>), ConnectorError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match self.once(creds, path, query, op, patience.timeout()).await {
                Err(e @ (ConnectorError::RateLimited { .. } | ConnectorError::Unavailable { .. })) => {
                    match patience.wait(e.retry_after(), attempt) {
                        Some(wait) => {
                            crate::metrics::note_retry();
                            tracing::info!(
                                op = op.name(),
                                attempt,
                                wait_ms = wait.as_millis() as u64,
                                "zendesk asked to retry later; waiting"
                            );
                            tokio::time::sleep(wait).await;
                        }
                        None => return Err(e),
                    }
                }
                other => return other,
            }
        }
    }

    async fn once<T: DeserializeOwned>(
        &self,
        creds: &Credentials,
        path: &str,
        query: &[(&str, String)],
        op: Op,
        cut: Option<Duration>,
    ) -> Result<(Option<T>, Option<Quota>), ConnectorError> {
        let url = format!("{}{}", self.base(creds), path);
        let started = std::time::Instant::now();
        let mut request = self.client.get(url);
        if let Some(cut) = cut.filter(|c| *c < self.request_timeout) {
            request = request.timeout(cut);
        }
        let sent = request
            .header(http::header::AUTHORIZATION, creds.header()?)
            .header(http::header::ACCEPT, "application/json")
            .query(query)
            .send()
            .await;
        crate::metrics::note_upstream_call();
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                // reqwest's messages hold the URL (and with it search terms): log the kind only.
                tracing::warn!(
                    op = op.name(),
                    timeout = e.is_timeout(),
                    connect = e.is_connect(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "zendesk request failed"
                );
                return Err(if e.is_timeout() {
                    ConnectorError::Timeout { system: SYSTEM }
                } else if e.is_connect() {
                    ConnectorError::Unavailable {
                        system: SYSTEM,
                        retry_after: None,
                    }
                } else {
                    ConnectorError::BadGateway {
                        message: format!("the connection to Zendesk failed while {}", op.doing()),
                    }
                });
            }
        };
        let status = response.status().as_u16();
        tracing::debug!(
            op = op.name(),
            status,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "zendesk answered"
        );
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let quota = quota(response.headers());
        let html = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.to_ascii_lowercase().contains("html"));
        match status {
            200..=299 => {}
            401 => return Err(ConnectorError::Unauthorized { system: SYSTEM }),
            403 => return Err(ConnectorError::Forbidden { message: op.forbidden() }),
            404 => return Ok((None, quota)),
            429 => {
                crate::metrics::note_rate_limited();
                return Err(ConnectorError::RateLimited {
                    system: SYSTEM,
                    retry_after,
                });
            }
            503 => {
                return Err(ConnectorError::Unavailable {
                    system: SYSTEM,
                    retry_after,
                })
            }
            300..=399 => {
                return Err(ConnectorError::BadGateway {
                    message: format!(
                        "Zendesk answered with a redirect (HTTP {status}) while {}; check the subdomain",
                        op.doing()
                    ),
                })
            }
            400 | 422 if op == Op::UserExport && query.iter().any(|(k, _)| *k == "cursor") => {
                return Err(ConnectorError::CursorRejected { system: SYSTEM })
            }
            400 | 422 if op == Op::UserExport => {
                return Err(ConnectorError::Rejected {
                    message: format!(
                        "Zendesk refused the incremental user export (HTTP {status}); the same request would be refused again: \
                         check the account's API access, then start a new full sync (send no checkpoint)"
                    ),
                })
            }
            400..=499 => {
                return Err(ConnectorError::BadGateway {
                    message: format!("Zendesk refused the request while {} (HTTP {status})", op.doing()),
                })
            }
            _ => {
                return Err(ConnectorError::BadGateway {
                    message: format!("Zendesk failed while {} (HTTP {status})", op.doing()),
                })
            }
        }
        let body = self.bodies.read(response).await.map_err(|e| {
            if e.is_timeout() {
                ConnectorError::Timeout { system: SYSTEM }
            } else {
                ConnectorError::BadGateway {
                    message: format!("Zendesk's answer was cut off while {}", op.doing()),
                }
            }
        })?;
        match crate::http::parse_json::<T>(&body) {
            Ok(v) => Ok((Some(v), quota)),
            Err(_) if html || body.trim_ascii_start().starts_with(b"<") => Err(ConnectorError::BadGateway {
                message: format!("Zendesk answered with an HTML page instead of JSON while {}", op.doing()),
            }),
            Err(e) => {
                tracing::warn!(op = op.name(), line = e.line(), column = e.column(), category = ?e.classify(), "zendesk answered with unexpected JSON");
                Err(ConnectorError::BadGateway {
                    message: format!("Zendesk answered with malformed or unexpected JSON while {}", op.doing()),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::budget::Unlimited;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("93", now), Some(Duration::from_secs(93)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("1.5", now), Some(Duration::from_millis(1500)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(7)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    struct Left(Option<Duration>, bool);
    impl Budget for Left {
        fn exhausted(&self) -> bool {
            self.1
        }
        fn remaining(&self) -> Option<Duration> {
            self.0
        }
    }

    #[test]
    fn contact_sync_waits_only_while_the_budget_allows() {
        let s = Duration::from_secs;
        let plenty = Left(Some(s(20)), false);
        assert_eq!(Patience::Budget(&plenty).wait(Some(s(5)), 1), Some(s(5)));
        assert_eq!(Patience::Budget(&plenty).wait(Some(s(18)), 1), Some(s(18)));
        assert_eq!(
            Patience::Budget(&plenty).wait(Some(s(19)), 1),
            None,
            "no time left for the request itself"
        );
        assert_eq!(Patience::Budget(&plenty).wait(None, 1), None);
        assert_eq!(Patience::Budget(&plenty).wait(Some(s(1)), MAX_ATTEMPTS), None);
        assert_eq!(Patience::Budget(&Left(Some(s(20)), true)).wait(Some(s(1)), 1), None);
        assert_eq!(Patience::Budget(&Unlimited).wait(Some(s(30)), 1), Some(s(30)));
        assert_eq!(Patience::Budget(&Unlimited).wait(Some(s(31)), 1), None);
    }

    #[test]
    fn a_nearly_spent_budget_shortens_the_request_timeout() {
        assert_eq!(
            Patience::Budget(&Left(Some(Duration::from_secs(4)), false)).timeout(),
            Some(Duration::from_secs(4))
        );
        assert_eq!(
            Patience::Budget(&Left(Some(Duration::from_millis(10)), false)).timeout(),
            Some(MIN_REQUEST_TIMEOUT)
        );
        assert_eq!(Patience::Budget(&Unlimited).timeout(), None);
        assert_eq!(Patience::Brief(&Unlimited).timeout(), None);
        assert_eq!(
            Patience::Brief(&Left(Some(Duration::from_secs(4)), false)).timeout(),
            Some(Duration::from_secs(4))
        );
    }

    #[test]
    fn requests_go_to_the_subdomain_host_unless_the_deployment_overrides_it() {
        let mut auth = crate::talkdesk::Auth::default();
        auth.insert("subdomain", crate::secrets::Secret::new("acme"));
        auth.insert("access_token", crate::secrets::Secret::new("t"));
        let creds = Credentials::from_auth(&auth).unwrap();
        let real = ZendeskHttp::new(Duration::from_secs(1), Duration::from_secs(1), None).unwrap();
        assert_eq!(real.base(&creds), "https://acme.zendesk.com");
        let local = ZendeskHttp::new(Duration::from_secs(1), Duration::from_secs(1), Some("http://127.0.0.1:9".into())).unwrap();
        assert_eq!(local.base(&creds), "http://127.0.0.1:9");
    }

    #[test]
    fn lookups_wait_once_and_briefly() {
        let s = Duration::from_secs;
        let brief = Patience::Brief(&Unlimited);
        assert_eq!(brief.wait(Some(s(2)), 1), Some(s(2)));
        assert_eq!(brief.wait(Some(s(3)), 1), None);
        assert_eq!(brief.wait(Some(s(1)), 2), None);
        let nearly_spent = Left(Some(Duration::from_millis(1500)), false);
        assert_eq!(
            Patience::Brief(&nearly_spent).wait(Some(s(2)), 1),
            None,
            "a wait past the lookup's deadline is not started"
        );
        assert_eq!(Patience::Brief(&nearly_spent).wait(Some(s(1)), 1), Some(s(1)));
    }

    #[test]
    fn the_tightest_of_zendesks_rate_limit_headers_is_the_quota() {
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut h = http::HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, v.parse().unwrap());
            }
            h
        };
        let q = quota(&headers(&[
            ("zendesk-ratelimit-incremental-exports-cursor", "total=10; remaining=0; resets=41"),
            ("x-rate-limit", "700"),
            ("x-rate-limit-remaining", "699"),
        ]));
        assert_eq!(
            q,
            Some(Quota {
                remaining: 0,
                resets_in: Duration::from_secs(41)
            })
        );
        let q = quota(&headers(&[
            ("ratelimit-remaining", "3"),
            ("ratelimit-reset", "12"),
            ("x-rate-limit-remaining", "50"),
        ]));
        assert_eq!(
            q,
            Some(Quota {
                remaining: 3,
                resets_in: Duration::from_secs(12)
            })
        );
        assert_eq!(
            quota(&headers(&[("x-rate-limit-remaining", "0")])).map(|q| q.resets_in),
            Some(Duration::from_secs(60)),
            "no reset given: a minute"
        );
        assert_eq!(quota(&headers(&[("zendesk-ratelimit-tickets-index", "total=100; oops")])), None);
        assert_eq!(quota(&http::HeaderMap::new()), None);
    }

    #[test]
    fn a_forbidden_export_explains_that_it_needs_an_admin() {
        assert!(Op::UserExport.forbidden().contains("admin"));
        assert!(Op::RequestedTickets.forbidden().contains("403"));
    }
}
