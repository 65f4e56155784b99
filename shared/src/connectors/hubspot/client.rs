//! HubSpot's HTTP API: one `reqwest::Client` per container, requests to `https://api.hubapi.com` only (or
//! `HUBSPOT_BASE_URL`), every upstream status mapped to a [`ConnectorError`], and the rate-limit headers
//! read into a [`Quota`].
//!
//! Rate limits ([DOC] HubSpot's usage guidelines and search guide; header names partly [SEC], see
//! `external-apis.md` §2.4): search is limited per second per account (five a second in the 2026 docs) and is
//! exempt from the ten-second burst limit that every other endpoint counts against (100 to 250 requests per
//! 10 s by plan); every account also has a daily limit, reset at midnight in the account's time zone. A 429
//! body names the limit (`policyName`: `DAILY`, `SECONDLY`, `TEN_SECONDLY_ROLLING`). Whether a 429 carries
//! `Retry-After` is UNVERIFIED: when it does not, a per-second limit is retried after 1 s and the ten-second
//! one after 2 s. The daily limit is not retried at all: it becomes [`ConnectorError::Unavailable`] with a
//! `Retry-After` until the next midnight in the account's time zone (UTC when it is not known), which the
//! bridge answers as a 503.
//!
//! Nothing upstream is echoed: errors name the operation and the HTTP status, never a body, a search term or
//! a credential.

use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::credentials::Credentials;
use super::mapping::{rate_limit_policy, until_midnight, Policy};
use crate::connectors::zendesk::client::parse_retry_after;
use crate::connectors::{ConnectorError, Quota};
use crate::sync::Budget;

pub(crate) const SYSTEM: &str = "HubSpot";

/// The shortest per-request timeout a nearly spent budget cuts a request to.
const MIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// Lookups wait out a rate limit at most this long, once: Talkdesk is showing a screen.
pub(crate) const BRIEF_WAIT: Duration = Duration::from_secs(2);
/// The wait after a 429 of the per-second limit without `Retry-After`.
const SECONDLY_WAIT: Duration = Duration::from_secs(1);
/// The wait after a 429 of the ten-second rolling limit without `Retry-After`.
const TEN_SECONDLY_WAIT: Duration = Duration::from_secs(2);

/// What is being called, for error messages and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    AccountInfo,
    ContactSearch,
    PersonSearch,
    ContactRead,
    Associations,
    BatchRead,
    Pipelines,
    Owners,
}

impl Op {
    fn doing(self) -> &'static str {
        match self {
            Op::AccountInfo => "reading the account details",
            Op::ContactSearch => "searching contacts by modification date",
            Op::PersonSearch => "searching contacts by email or phone",
            Op::ContactRead => "reading a contact",
            Op::Associations => "reading a contact's associations",
            Op::BatchRead => "reading tickets, calls or emails",
            Op::Pipelines => "reading the ticket pipelines",
            Op::Owners => "listing the owners",
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::AccountInfo => "account_info",
            Op::ContactSearch => "contact_search",
            Op::PersonSearch => "person_search",
            Op::ContactRead => "contact_read",
            Op::Associations => "associations",
            Op::BatchRead => "batch_read",
            Op::Pipelines => "pipelines",
            Op::Owners => "owners",
        }
    }

    fn scope(self) -> &'static str {
        match self {
            Op::AccountInfo | Op::ContactSearch | Op::PersonSearch | Op::ContactRead => "crm.objects.contacts.read",
            Op::Owners => "crm.objects.owners.read",
            Op::Associations | Op::BatchRead | Op::Pipelines => {
                "tickets (crm.objects.contacts.read for calls, sales-email-read for emails)"
            }
        }
    }
}

/// How long a call may wait when HubSpot says "rate limited".
#[derive(Clone, Copy)]
pub(crate) enum Patience<'a> {
    /// Never: the caller (the sync engine's pacer) waits; the request is cut at the budget's end.
    Caller(&'a dyn Budget),
    /// Once, for at most [`BRIEF_WAIT`], and only when the wait ends within the budget (lookups, and the
    /// account details read before a sync page).
    Brief(&'a dyn Budget),
}

impl Patience<'_> {
    fn budget(&self) -> &dyn Budget {
        match self {
            Patience::Caller(b) | Patience::Brief(b) => *b,
        }
    }

    fn timeout(&self) -> Option<Duration> {
        self.budget().remaining().map(|left| left.max(MIN_REQUEST_TIMEOUT))
    }

    fn wait(&self, e: &ConnectorError, attempt: u32) -> Option<Duration> {
        let ConnectorError::RateLimited {
            retry_after: Some(wait), ..
        } = e
        else {
            return None;
        };
        match self {
            Patience::Caller(_) => None,
            Patience::Brief(b) => {
                let fits = b.remaining().is_none_or(|left| *wait < left);
                (attempt == 1 && *wait <= BRIEF_WAIT && fits).then_some(*wait)
            }
        }
    }
}

/// What HubSpot's rate-limit headers say, the tightest of them: the per-second limit
/// (`X-HubSpot-RateLimit-Secondly-Remaining`, resets within a second) and the rolling window
/// (`X-HubSpot-RateLimit-Remaining` with `X-HubSpot-RateLimit-Interval-Milliseconds`; a rolling window
/// gives no reset time, so a spent one is taken to free up after its whole interval). The daily headers
/// are not pacing material: a spent day is a 429 `DAILY`, answered 503 until midnight. Headers may be
/// absent ("in the case of failure to gather rate limit information"): then there is no quota.
pub fn quota(headers: &http::HeaderMap) -> Option<Quota> {
    let num = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let mut found: Vec<Quota> = Vec::new();
    if let Some(r) = num("x-hubspot-ratelimit-secondly-remaining") {
        found.push(Quota {
            remaining: r.min(u32::MAX as u64) as u32,
            resets_in: Duration::from_secs(1),
        });
    }
    if let Some(r) = num("x-hubspot-ratelimit-remaining") {
        let interval = num("x-hubspot-ratelimit-interval-milliseconds")
            .unwrap_or(10_000)
            .clamp(1, 86_400_000);
        found.push(Quota {
            remaining: r.min(u32::MAX as u64) as u32,
            resets_in: Duration::from_millis(interval),
        });
    }
    found
        .into_iter()
        .min_by(|a, b| a.remaining.cmp(&b.remaining).then(b.resets_in.cmp(&a.resets_in)))
}

/// The HubSpot HTTP client shared by every invocation of a container.
pub(crate) struct HubSpotHttp {
    client: reqwest::Client,
    bodies: crate::http::BodyBuffer,
    base: String,
    request_timeout: Duration,
}

/// A request: `GET` a path, or `POST` a JSON body to it. Paths are built from constants and digits only.
pub(crate) enum Call<'a> {
    Get(&'a str),
    Post(&'a str, &'a Value),
}

impl HubSpotHttp {
    pub(crate) fn new(connect_timeout: Duration, request_timeout: Duration, base: String) -> Result<Self, reqwest::Error> {
        let client = crate::http::client_builder()
            .connect_timeout(connect_timeout)
            .timeout(request_timeout)
            .build()?;
        Ok(HubSpotHttp {
            client,
            bodies: crate::http::BodyBuffer::default(),
            base,
            request_timeout,
        })
    }

    /// Sends `call` and decodes the JSON answer, with what the rate-limit headers said. `Ok(None)` on 404.
    /// `utc_offset_ms` is the account's time zone, for a daily limit's `Retry-After`.
    pub(crate) async fn send<T: DeserializeOwned>(
        &self,
        creds: &Credentials,
        call: Call<'_>,
        op: Op,
        patience: Patience<'_>,
        utc_offset_ms: Option<i64>,
    ) -> Result<(Option<T>, Option<Quota>), ConnectorError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match self.once(creds, &call, op, patience.timeout(), utc_offset_ms).await {
                Err(e) => match patience.wait(&e, attempt) {
                    Some(wait) => {
                        crate::metrics::note_retry();
                        tracing::info!(
                            op = op.name(),
                            attempt,
                            wait_ms = wait.as_millis() as u64,
                            "hubspot rate limited; waiting"
                        );
                        tokio::time::sleep(wait).await;
                    }
                    None => return Err(e),
                },
                ok => return ok,
            }
        }
    }

    async fn once<T: DeserializeOwned>(
        &self,
        creds: &Credentials,
        call: &Call<'_>,
        op: Op,
        cut: Option<Duration>,
        utc_offset_ms: Option<i64>,
    ) -> Result<(Option<T>, Option<Quota>), ConnectorError> {
        let started = std::time::Instant::now();
        let mut request = match call {
            Call::Get(path) => self.client.get(format!("{}{path}", self.base)),
            Call::Post(path, body) => self.client.post(format!("{}{path}", self.base)).json(body),
        };
        if let Some(cut) = cut.filter(|c| *c < self.request_timeout) {
            request = request.timeout(cut);
        }
        let sent = request
            .header(http::header::AUTHORIZATION, creds.header()?)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await;
        crate::metrics::note_upstream_call();
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(
                    op = op.name(),
                    timeout = e.is_timeout(),
                    connect = e.is_connect(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "hubspot request failed"
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
                        message: format!("the connection to HubSpot failed while {}", op.doing()),
                    }
                });
            }
        };
        let status = response.status().as_u16();
        tracing::debug!(
            op = op.name(),
            status,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "hubspot answered"
        );
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let quota = quota(response.headers());
        let body = self.bodies.read(response).await.map_err(|e| {
            if e.is_timeout() {
                ConnectorError::Timeout { system: SYSTEM }
            } else {
                ConnectorError::BadGateway {
                    message: format!("HubSpot's answer was cut off while {}", op.doing()),
                }
            }
        })?;
        match status {
            // 207: a batch read of which some inputs failed (e.g. ids without associations); the results are
            // what there is.
            200..=299 => {}
            401 => return Err(ConnectorError::Unauthorized { system: SYSTEM }),
            403 => {
                return Err(ConnectorError::Forbidden {
                    message: format!(
                        "HubSpot refused access while {} (403): the private app needs the {} scope",
                        op.doing(),
                        op.scope()
                    ),
                })
            }
            404 => return Ok((None, quota)),
            429 => {
                crate::metrics::note_rate_limited();
                let policy = rate_limit_policy(&body);
                if policy == Policy::Daily {
                    let wait = until_midnight(chrono::Utc::now(), utc_offset_ms);
                    tracing::warn!(
                        op = op.name(),
                        retry_after_s = wait.as_secs(),
                        time_zone_known = utc_offset_ms.is_some(),
                        "hubspot daily API limit reached; refusing requests until midnight in the account's time zone"
                    );
                    return Err(ConnectorError::Unavailable {
                        system: SYSTEM,
                        retry_after: Some(wait),
                    });
                }
                let default = if policy == Policy::TenSecondly {
                    TEN_SECONDLY_WAIT
                } else {
                    SECONDLY_WAIT
                };
                return Err(ConnectorError::RateLimited {
                    system: SYSTEM,
                    retry_after: Some(retry_after.unwrap_or(default)),
                });
            }
            502..=504 => {
                return Err(ConnectorError::Unavailable {
                    system: SYSTEM,
                    retry_after,
                })
            }
            300..=399 => {
                return Err(ConnectorError::BadGateway {
                    message: format!("HubSpot answered with a redirect (HTTP {status}) while {}", op.doing()),
                })
            }
            400 if op == Op::ContactSearch => {
                return Err(ConnectorError::Rejected {
                    message: "HubSpot refused the contact search (HTTP 400); the same request would be refused again: check that the \
                              private app can search contacts, then start a new full sync (send no checkpoint)"
                        .into(),
                })
            }
            400..=499 => {
                return Err(ConnectorError::BadGateway {
                    message: format!("HubSpot refused the request while {} (HTTP {status})", op.doing()),
                })
            }
            _ => {
                return Err(ConnectorError::BadGateway {
                    message: format!("HubSpot failed while {} (HTTP {status})", op.doing()),
                })
            }
        }
        match crate::http::parse_json::<T>(&body) {
            Ok(v) => Ok((Some(v), quota)),
            Err(e) => {
                tracing::warn!(op = op.name(), line = e.line(), column = e.column(), category = ?e.classify(), "hubspot answered with unexpected JSON");
                Err(ConnectorError::BadGateway {
                    message: format!("HubSpot answered with malformed or unexpected JSON while {}", op.doing()),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_tightest_of_hubspots_rate_limit_headers_is_the_quota() {
        let q = quota(&headers(&[
            ("x-hubspot-ratelimit-secondly", "5"),
            ("x-hubspot-ratelimit-secondly-remaining", "0"),
            ("x-hubspot-ratelimit-daily", "500000"),
            ("x-hubspot-ratelimit-daily-remaining", "499000"),
        ]));
        assert_eq!(
            q,
            Some(Quota {
                remaining: 0,
                resets_in: Duration::from_secs(1)
            })
        );
        let q = quota(&headers(&[
            ("x-hubspot-ratelimit-max", "190"),
            ("x-hubspot-ratelimit-remaining", "3"),
            ("x-hubspot-ratelimit-interval-milliseconds", "10000"),
            ("x-hubspot-ratelimit-secondly-remaining", "9"),
        ]));
        assert_eq!(
            q,
            Some(Quota {
                remaining: 3,
                resets_in: Duration::from_secs(10)
            })
        );
        assert_eq!(
            quota(&headers(&[("x-hubspot-ratelimit-daily-remaining", "0")])),
            None,
            "the daily limit is not paced"
        );
        assert_eq!(quota(&http::HeaderMap::new()), None);
    }

    #[test]
    fn lookups_wait_out_a_short_rate_limit_once_and_the_sync_never() {
        let unlimited = crate::sync::budget::Unlimited;
        let limited = |s| ConnectorError::RateLimited {
            system: SYSTEM,
            retry_after: Some(Duration::from_secs(s)),
        };
        assert_eq!(Patience::Brief(&unlimited).wait(&limited(1), 1), Some(Duration::from_secs(1)));
        assert_eq!(Patience::Brief(&unlimited).wait(&limited(1), 2), None);
        assert_eq!(Patience::Brief(&unlimited).wait(&limited(3), 1), None);
        assert_eq!(Patience::Caller(&unlimited).wait(&limited(1), 1), None);
        let daily = ConnectorError::Unavailable {
            system: SYSTEM,
            retry_after: Some(Duration::from_secs(1)),
        };
        assert_eq!(
            Patience::Brief(&unlimited).wait(&daily, 1),
            None,
            "a daily limit is never waited out"
        );
    }
}
