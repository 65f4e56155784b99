//! One CloudWatch Embedded Metric Format (EMF) line per invocation, so an operator can graph records,
//! pages, bytes, upstream calls, retries, 429s, budget cuts and lookup hits without extra code.
//!
//! The line is built by a pure function ([`Invocation::to_emf`]) and written to stdout by [`emit`]; the
//! Lambda runtime ships stdout to CloudWatch Logs, which extracts the metrics under the namespace
//! [`NAMESPACE`] with the dimensions `Function` (`contacts` or `interactions`) and `Connector`.
//!
//! Upstream HTTP requests, retries and 429s are counted by the connector's client while the invocation
//! runs, through a task-local [`UpstreamCounters`] set by [`track`]: concurrent invocations served by one
//! process (the local server, tests) never mix their counts.

use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::connectors::LookupHits;
use crate::sync::{PageStats, StopReason};

/// The CloudWatch namespace of every metric the bridge emits.
pub const NAMESPACE: &str = "TalkdeskBridge";

/// What one invocation did, in the units CloudWatch graphs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invocation {
    /// `contacts` or `interactions`.
    pub function: &'static str,
    /// The connector's name (`zendesk`, `sandbox`).
    pub connector: &'static str,
    /// HTTP status returned to Talkdesk.
    pub status: u16,
    /// Contacts or interactions returned.
    pub records: usize,
    /// Upstream pages of contacts read (connector calls of the sync engine).
    pub pages: usize,
    /// Bytes of the response body.
    pub bytes: usize,
    /// HTTP requests sent upstream, retries included.
    pub upstream_calls: usize,
    /// Requests repeated after a `Retry-After`.
    pub retries: usize,
    /// Upstream answers with status 429.
    pub rate_limited: usize,
    /// 1 when the page ended because the time budget ran out.
    pub budget_cuts: usize,
    /// Waits for the provider's rate limit before a request, and their total length.
    pub rate_waits: usize,
    pub rate_wait_ms: usize,
    /// 1 when the page ended because the provider's rate limit left no time for another request.
    pub rate_limit_cuts: usize,
    /// Rewinds after a connector broke its order.
    pub rewinds: usize,
    /// 1 when the request was served with secrets past their TTL because SSM could not be read (the
    /// outage grace of `BRIDGE_SSM_STALE_GRACE_SECS`).
    pub stale_secrets: usize,
    /// Why the contacts page ended (a property, not a metric).
    pub stop: Option<StopReason>,
    pub hits: LookupHits,
    /// What an interaction lookup cut, ignored or lost.
    pub lookup: LookupCounts,
    pub duration_ms: u64,
}

/// The metric names, their units and how to read them from an [`Invocation`].
/// A metric: its name, its CloudWatch unit, and how to read its value.
type Metric = (&'static str, &'static str, fn(&Invocation) -> usize);

const METRICS: &[Metric] = &[
    ("Records", "Count", |m| m.records),
    ("Pages", "Count", |m| m.pages),
    ("ResponseBytes", "Bytes", |m| m.bytes),
    ("UpstreamCalls", "Count", |m| m.upstream_calls),
    ("UpstreamRetries", "Count", |m| m.retries),
    ("Upstream429s", "Count", |m| m.rate_limited),
    ("BudgetCuts", "Count", |m| m.budget_cuts),
    ("RateLimitWaits", "Count", |m| m.rate_waits),
    ("RateLimitWaitMs", "Milliseconds", |m| m.rate_wait_ms),
    ("RateLimitCuts", "Count", |m| m.rate_limit_cuts),
    ("OrderRewinds", "Count", |m| m.rewinds),
    ("StaleSecrets", "Count", |m| m.stale_secrets),
    ("ExternalIdHits", "Count", |m| m.hits.external_id),
    ("EmailHits", "Count", |m| m.hits.email),
    ("PhoneHits", "Count", |m| m.hits.phone),
    ("LookupCutShort", "Count", |m| m.lookup.cut_short),
    ("IdentifiersIgnored", "Count", |m| m.lookup.identifiers_ignored),
    ("PeopleIgnored", "Count", |m| m.lookup.people_ignored),
    ("LookupFailures", "Count", |m| m.lookup.failures),
    ("LookupMaxInFlight", "Count", |m| m.lookup.max_in_flight),
    ("ServerErrors", "Count", |m| usize::from(m.status >= 500)),
    ("ClientErrors", "Count", |m| usize::from((400..500).contains(&m.status))),
];

impl Invocation {
    pub fn new(function: &'static str, connector: &'static str) -> Self {
        Invocation {
            function,
            connector,
            ..Invocation::default()
        }
    }

    /// Takes pages, budget cuts and the stop reason from the sync engine's counters. When the connector
    /// counted no HTTP requests of its own (the sandbox), its calls stand in for them.
    pub fn with_page(mut self, stats: &PageStats) -> Self {
        self.pages = stats.upstream_calls;
        self.budget_cuts = usize::from(stats.stop == StopReason::TimeBudget);
        self.rate_waits = stats.rate_waits;
        self.rate_wait_ms = stats.rate_wait_ms as usize;
        self.rate_limit_cuts = usize::from(stats.stop == StopReason::RateLimit);
        self.rewinds = stats.rewinds;
        self.stop = Some(stats.stop);
        if self.upstream_calls == 0 {
            self.upstream_calls = stats.upstream_calls;
        }
        self
    }

    pub fn with_upstream(mut self, counts: Upstream) -> Self {
        self.upstream_calls = self.upstream_calls.max(counts.calls);
        self.retries = counts.retries;
        self.rate_limited = counts.rate_limited;
        self.hits = counts.hits;
        self.stale_secrets = counts.stale_secrets;
        self.lookup = counts.lookup;
        self
    }

    /// The EMF document: the `_aws` metadata, the dimension values and one member per metric.
    pub fn to_emf(&self, timestamp_ms: i64) -> Value {
        serde_json::from_str(&self.to_emf_line(timestamp_ms)).unwrap_or_default()
    }

    /// The EMF document on one line, written straight into one string: building it as a `Value` first (a
    /// map of 30 members, each key and value allocated) cost about 2 % of a 100-contact page (issue 14).
    pub fn to_emf_line(&self, timestamp_ms: i64) -> String {
        use std::fmt::Write as _;
        // What every line declares, the same for every invocation: written once.
        static DIRECTIVE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let directive = DIRECTIVE.get_or_init(|| {
            let definitions: Vec<Value> = METRICS.iter().map(|(name, unit, _)| json!({"Name": name, "Unit": unit})).collect();
            json!([{
                "Namespace": NAMESPACE,
                "Dimensions": [["Function", "Connector"]],
                "Metrics": definitions,
            }])
            .to_string()
        });
        let string = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
        let mut line = String::with_capacity(directive.len() + 40 * METRICS.len() + 200);
        let _ = write!(
            line,
            r#"{{"_aws":{{"Timestamp":{timestamp_ms},"CloudWatchMetrics":{directive}}},"Function":{},"Connector":{}"#,
            string(self.function),
            string(self.connector)
        );
        for (name, _, read) in METRICS {
            let _ = write!(line, r#","{name}":{}"#, read(self));
        }
        // Properties: searchable in Logs Insights, not metrics.
        let _ = write!(line, r#","StatusCode":{},"DurationMs":{}"#, self.status, self.duration_ms);
        if let Some(stop) = self.stop.and_then(|s| serde_json::to_string(&s).ok()) {
            let _ = write!(line, r#","Stop":{stop}"#);
        }
        line.push('}');
        line
    }
}

/// Writes the invocation's EMF line to stdout, where the Lambda runtime collects it.
pub fn emit(m: &Invocation) {
    let mut line = m.to_emf_line(chrono::Utc::now().timestamp_millis());
    line.push('\n');
    let mut out = std::io::stdout().lock();
    // One write for the whole line: `writeln!` made two system calls of it, the line and then its newline
    // (the line is longer than stdout's buffer). A closed stdout must not fail the invocation.
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
}

/// Upstream counts of one invocation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Upstream {
    pub calls: usize,
    pub retries: usize,
    pub rate_limited: usize,
    /// Which identifiers found something (interaction lookups).
    pub hits: LookupHits,
    /// Requests served with secrets past their TTL (0 or 1 per invocation).
    pub stale_secrets: usize,
    pub lookup: LookupCounts,
}

/// What an interaction lookup cut, ignored or lost (see `crate::lookup`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LookupCounts {
    /// 1 when the lookup's deadline cut it short.
    pub cut_short: usize,
    /// Email and phone entries past `BRIDGE_MAX_LOOKUP_IDENTIFIERS`, never searched.
    pub identifiers_ignored: usize,
    /// People found beyond the most a lookup fetches.
    pub people_ignored: usize,
    /// Searches, identifier reads and fetches that failed.
    pub failures: usize,
    /// The most upstream calls the lookup had running at once.
    pub max_in_flight: usize,
}

/// Counters a connector's HTTP client bumps while an invocation runs.
#[derive(Debug, Default)]
pub struct UpstreamCounters {
    calls: AtomicUsize,
    retries: AtomicUsize,
    rate_limited: AtomicUsize,
    hits: [AtomicUsize; 3],
    stale_secrets: AtomicUsize,
    lookup: std::sync::Mutex<LookupCounts>,
}

impl UpstreamCounters {
    pub fn snapshot(&self) -> Upstream {
        Upstream {
            calls: self.calls.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            hits: LookupHits {
                external_id: self.hits[0].load(Ordering::Relaxed),
                email: self.hits[1].load(Ordering::Relaxed),
                phone: self.hits[2].load(Ordering::Relaxed),
            },
            stale_secrets: self.stale_secrets.load(Ordering::Relaxed),
            lookup: *self.lookup.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }
}

tokio::task_local! {
    static UPSTREAM: Arc<UpstreamCounters>;
}

/// Runs `f` with fresh upstream counters and returns its output with what they counted.
pub async fn track<F: Future>(f: F) -> (F::Output, Upstream) {
    let counters = Arc::new(UpstreamCounters::default());
    let out = UPSTREAM.scope(counters.clone(), f).await;
    (out, counters.snapshot())
}

fn bump(pick: fn(&UpstreamCounters) -> &AtomicUsize) {
    // Outside `track` (a tool calling a connector directly) there is nothing to count into.
    let _ = UPSTREAM.try_with(|c| pick(c).fetch_add(1, Ordering::Relaxed));
}

/// One HTTP request sent upstream.
pub fn note_upstream_call() {
    bump(|c| &c.calls);
}

/// A request about to be repeated after `Retry-After`.
pub fn note_retry() {
    bump(|c| &c.retries);
}

/// An upstream 429.
pub fn note_rate_limited() {
    bump(|c| &c.rate_limited);
}

/// The request is served with secrets past their TTL, SSM being unreachable.
pub fn note_stale_secrets() {
    bump(|c| &c.stale_secrets);
}

/// What a lookup's identifiers found.
pub fn note_hits(hits: LookupHits) {
    let _ = UPSTREAM.try_with(|c| {
        for (slot, n) in c.hits.iter().zip([hits.external_id, hits.email, hits.phone]) {
            slot.fetch_add(n, Ordering::Relaxed);
        }
    });
}

/// What an interaction lookup cut, ignored or lost.
pub fn note_lookup(counts: LookupCounts) {
    let _ = UPSTREAM.try_with(|c| *c.lookup.lock().unwrap_or_else(|p| p.into_inner()) = counts);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Invocation {
        Invocation {
            status: 200,
            records: 500,
            bytes: 123_456,
            duration_ms: 42,
            ..Invocation::new("contacts", "zendesk")
        }
        .with_upstream(Upstream {
            calls: 7,
            retries: 2,
            rate_limited: 1,
            hits: LookupHits {
                external_id: 1,
                email: 2,
                phone: 3,
            },
            stale_secrets: 1,
            lookup: LookupCounts {
                cut_short: 1,
                identifiers_ignored: 1990,
                people_ignored: 0,
                failures: 2,
                max_in_flight: 6,
            },
        })
        .with_page(&PageStats {
            upstream_calls: 4,
            stop: StopReason::TimeBudget,
            ..PageStats::default()
        })
    }

    #[test]
    fn the_line_is_one_emf_document_with_namespace_dimensions_and_every_metric_declared() {
        let line = sample().to_emf_line(1_700_000_000_123);
        assert!(!line.contains('\n'), "one line per invocation");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_123i64);
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], NAMESPACE);
        assert_eq!(directive["Dimensions"], json!([["Function", "Connector"]]));
        assert_eq!(v["Function"], "contacts");
        assert_eq!(v["Connector"], "zendesk");
        let declared = directive["Metrics"].as_array().unwrap();
        assert_eq!(declared.len(), METRICS.len());
        for d in declared {
            let name = d["Name"].as_str().unwrap();
            assert!(v[name].is_u64(), "metric {name} has a numeric value in the document");
            assert!(["Count", "Bytes", "Milliseconds"].contains(&d["Unit"].as_str().unwrap()));
        }
        // EMF allows at most 100 metrics per directive and 30 dimensions per set.
        assert!(declared.len() <= 100);
    }

    #[test]
    fn values_come_from_the_engine_the_client_counters_and_the_lookup_hits() {
        let v = sample().to_emf(0);
        assert_eq!(v["Records"], 500);
        assert_eq!(v["Pages"], 4);
        assert_eq!(v["ResponseBytes"], 123_456);
        assert_eq!(v["UpstreamCalls"], 7);
        assert_eq!(v["UpstreamRetries"], 2);
        assert_eq!(v["Upstream429s"], 1);
        assert_eq!(v["BudgetCuts"], 1);
        assert_eq!(v["ExternalIdHits"], 1);
        assert_eq!(v["EmailHits"], 2);
        assert_eq!(v["PhoneHits"], 3);
        assert_eq!(v["StaleSecrets"], 1);
        assert_eq!(v["LookupCutShort"], 1);
        assert_eq!(v["IdentifiersIgnored"], 1990);
        assert_eq!(v["PeopleIgnored"], 0);
        assert_eq!(v["LookupFailures"], 2);
        assert_eq!(v["LookupMaxInFlight"], 6);
        assert_eq!(v["ServerErrors"], 0);
        assert_eq!(v["StatusCode"], 200);
        assert_eq!(v["Stop"], "time_budget");
    }

    #[test]
    fn a_connector_without_http_counters_reports_its_engine_calls_as_upstream_calls() {
        let m = Invocation::new("contacts", "sandbox")
            .with_upstream(Upstream::default())
            .with_page(&PageStats {
                upstream_calls: 3,
                ..PageStats::default()
            });
        assert_eq!(m.upstream_calls, 3);
        assert_eq!(m.budget_cuts, 0);
    }

    #[test]
    fn error_statuses_count_as_server_or_client_errors() {
        let five = Invocation {
            status: 503,
            ..Invocation::new("interactions", "zendesk")
        };
        assert_eq!(five.to_emf(0)["ServerErrors"], 1);
        assert_eq!(five.to_emf(0)["ClientErrors"], 0);
        let four = Invocation { status: 400, ..five };
        assert_eq!(four.to_emf(0)["ClientErrors"], 1);
        assert!(four.to_emf(0).get("Stop").is_none());
    }

    #[tokio::test]
    async fn counters_count_only_inside_their_own_invocation() {
        note_upstream_call(); // outside any invocation: ignored
        let ((), a) = track(async {
            note_upstream_call();
            note_upstream_call();
            note_retry();
            note_rate_limited();
            note_stale_secrets();
            note_hits(LookupHits {
                external_id: 0,
                email: 2,
                phone: 1,
            });
            note_lookup(LookupCounts {
                failures: 1,
                ..LookupCounts::default()
            });
        })
        .await;
        let ((), b) = track(async { note_upstream_call() }).await;
        assert_eq!(
            a,
            Upstream {
                calls: 2,
                retries: 1,
                rate_limited: 1,
                hits: LookupHits {
                    external_id: 0,
                    email: 2,
                    phone: 1
                },
                stale_secrets: 1,
                lookup: LookupCounts {
                    failures: 1,
                    ..LookupCounts::default()
                },
            }
        );
        assert_eq!(b.calls, 1);
    }
}
