//! A cache of SSM Parameter Store values, after the design of Powertools' Parameters utility.
//!
//! - Names are relative to a prefix (`/talkdesk-bridge/prod` + `token-key` →
//!   `/talkdesk-bridge/prod/token-key`).
//! - Values are read with `GetParameters`, at most ten names per call, with decryption, and every batch is
//!   kept. They are held as [`Secret`]s next to the instant they were fetched.
//! - A value is served from the cache until its TTL has passed, then fetched again. If that fetch fails,
//!   the caller gets the error: the cache itself never serves an expired value (serving the last good
//!   values through an outage is a decision of [`crate::secrets::deployment`], which knows which failures
//!   are outages: [`SsmError::is_outage`]). A TTL of zero disables caching. [`SsmCache::reload`] reads
//!   SSM whatever the cache holds.
//! - Failures and missing names are never cached: a parameter created after a miss is found on the next
//!   read.
//! - The lock around the map is a std `RwLock`, taken only in plain functions, never across an `.await`.
//! - Time comes from an injectable clock ([`SsmCache::with_clock`]) so expiry is tested without sleeping.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

/// The SDK this cache is built on, re-exported so callers build the [`aws_sdk_ssm::Client`] with the same
/// version.
pub use aws_sdk_ssm;

use aws_sdk_ssm::config::retry::RetryConfig;
use aws_sdk_ssm::config::timeout::TimeoutConfig;
use aws_sdk_ssm::config::{BehaviorVersion, Region};
use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ssm::operation::get_parameters::GetParametersError;

use crate::secrets::Secret;

/// `GetParameters` accepts at most this many names per call.
pub const MAX_NAMES_PER_CALL: usize = 10;

/// The TTL when `BRIDGE_SSM_TTL_SECS` is not set, as in the issue.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

/// Where the cache reads the current time. Tests pass a clock they can move forward.
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// SSM parameters under one prefix, cached for a TTL.
pub struct SsmCache {
    client: aws_sdk_ssm::Client,
    prefix: String,
    ttl: Duration,
    clock: Clock,
    entries: RwLock<HashMap<String, Entry>>,
}

struct Entry {
    value: Secret,
    fetched_at: Instant,
}

/// The answer to [`SsmCache::get_many`]: the values found, by relative name, and the names SSM does not
/// hold (or rejected as invalid).
#[derive(Debug, Default)]
pub struct Parameters {
    values: HashMap<String, Secret>,
    missing: Vec<String>,
}

impl Parameters {
    /// The value of `name` (relative to the prefix), if SSM holds it.
    pub fn get(&self, name: &str) -> Option<&Secret> {
        self.values.get(name)
    }

    /// Relative names that SSM does not hold, in the order they were asked for.
    pub fn missing(&self) -> &[String] {
        &self.missing
    }

    /// How many values were found.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// Why a read from SSM failed. Messages name parameters but never carry their values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SsmError {
    #[error(
        "invalid SSM parameter name {name:?}: expected a name relative to the prefix, made of letters, \
         digits, '.', '_', '-' and single '/' separators"
    )]
    InvalidName { name: String },

    #[error("SSM GetParameters failed for {names:?}: {kind}: {detail}")]
    Request {
        /// Full names (with the prefix) of the batch that failed.
        names: Vec<String>,
        kind: FailureKind,
        /// What went wrong, from the transport or SSM's error code and message; never a response body.
        detail: String,
    },
}

/// What kind of failure an [`SsmError::Request`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// No response: connection refused, DNS, TLS.
    Unreachable,
    /// No response in time.
    Timeout,
    /// SSM refused the call for its rate (`ThrottlingException`, or HTTP 429), after the SDK's retries.
    Throttled,
    /// SSM answered with a server error (HTTP 5xx), after the SDK's retries.
    ServiceUnavailable,
    /// SSM answered with a client error other than throttling (access denied, validation, a KMS key it
    /// may not use).
    Rejected,
    /// SSM answered with something that could not be parsed.
    MalformedResponse,
    /// The request could not be built (e.g. no region or credentials).
    Construction,
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureKind::Unreachable => "SSM could not be reached",
            FailureKind::Timeout => "SSM did not answer in time",
            FailureKind::Throttled => "SSM is throttling the requests",
            FailureKind::ServiceUnavailable => "SSM answered with a server error",
            FailureKind::Rejected => "SSM rejected the request",
            FailureKind::MalformedResponse => "SSM sent a response that could not be parsed",
            FailureKind::Construction => "the request could not be built",
        })
    }
}

/// Error codes with which AWS services, SSM included, refuse a call for its rate. SSM's own is
/// `ThrottlingException` ("Rate exceeded", per the Parameter Store troubleshooting guide); the others are
/// the generic ones the AWS SDKs' retry classifiers treat as throttling.
const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
];

/// Codes of a request that timed out on the service's side.
const TIMEOUT_CODES: &[&str] = &["RequestTimeout", "RequestTimeoutException"];

impl SsmError {
    fn from_sdk(names: Vec<String>, err: SdkError<GetParametersError>) -> Self {
        // The error is reduced to strings here on purpose: a raw response kept in the error could hold
        // parameter values and reach a log through `Debug`.
        let (kind, detail) = match &err {
            SdkError::ServiceError(service) => {
                let e = service.err();
                let status = service.raw().status().as_u16();
                let detail = match (e.code(), e.message()) {
                    (Some(code), Some(message)) => format!("{code}: {message}"),
                    (Some(code), None) => code.to_owned(),
                    (None, _) => format!("HTTP {status}"),
                };
                (service_failure(status, e.code()), detail)
            }
            SdkError::ResponseError(response) => {
                let status = response.raw().status().as_u16();
                let kind = if status >= 500 {
                    FailureKind::ServiceUnavailable
                } else {
                    FailureKind::MalformedResponse
                };
                (kind, format!("HTTP {status}"))
            }
            SdkError::DispatchFailure(_) => (FailureKind::Unreachable, error_chain(&err)),
            SdkError::TimeoutError(_) => (FailureKind::Timeout, error_chain(&err)),
            _ => (FailureKind::Construction, error_chain(&err)),
        };
        SsmError::Request { names, kind, detail }
    }

    /// Whether the read failed because SSM could not be reached or could not answer (no connection, a
    /// timeout, throttling, a server error): a passing outage, which the last good values may ride out.
    /// Everything else (access denied, a key SSM may not use, an invalid name, no region or credentials)
    /// is a decision or a mistake that more waiting does not fix.
    pub fn is_outage(&self) -> bool {
        matches!(
            self,
            SsmError::Request {
                kind: FailureKind::Unreachable | FailureKind::Timeout | FailureKind::Throttled | FailureKind::ServiceUnavailable,
                ..
            }
        )
    }
}

/// What an error answer of SSM (`status`, error `code`) is.
fn service_failure(status: u16, code: Option<&str>) -> FailureKind {
    let code = code.unwrap_or_default();
    if status >= 500 {
        FailureKind::ServiceUnavailable
    } else if status == 429 || THROTTLING_CODES.contains(&code) {
        FailureKind::Throttled
    } else if TIMEOUT_CODES.contains(&code) {
        FailureKind::Timeout
    } else {
        FailureKind::Rejected
    }
}

impl SsmCache {
    /// A cache of the parameters under `prefix`, each kept for `ttl` (zero: read SSM on every call).
    pub fn new(client: aws_sdk_ssm::Client, prefix: impl Into<String>, ttl: Duration) -> Self {
        let prefix = prefix.into().trim_end_matches('/').to_owned();
        SsmCache {
            client,
            prefix,
            ttl,
            clock: Arc::new(Instant::now),
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// A cache whose client is configured from the function's environment ([`crate::aws`]: region,
    /// credentials, `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_SSM`), with the SDK's standard retries and
    /// [`timeouts`], so that an SSM that accepts connections but never answers costs a request seconds, not
    /// the whole invocation.
    pub fn from_env(prefix: impl Into<String>, ttl: Duration) -> Self {
        SsmCache::new(aws_sdk_ssm::Client::from_conf(client_config()), prefix, ttl)
    }

    /// Replaces the clock, so tests can move time forward instead of sleeping.
    pub fn with_clock(mut self, clock: impl Fn() -> Instant + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The current instant on the cache's clock, so a caller that derives values from cached parameters
    /// can expire them on the same clock.
    pub fn now(&self) -> Instant {
        (self.clock)()
    }

    /// Reads `names` into the cache, for the INIT phase, so the first request pays nothing. Fails if SSM
    /// cannot be read; names SSM does not hold are logged and left out (they are not cached).
    pub async fn prefetch(&self, names: &[&str]) -> Result<(), SsmError> {
        let parameters = self.get_many(names).await?;
        if !parameters.missing.is_empty() {
            tracing::warn!(
                prefix = %self.prefix,
                missing = ?parameters.missing,
                "SSM parameters not found"
            );
        }
        Ok(())
    }

    /// The value of `name` (relative to the prefix): from the cache until it expires, then from SSM.
    /// `Ok(None)` when SSM does not hold it.
    pub async fn get(&self, name: &str) -> Result<Option<Secret>, SsmError> {
        validate_name(name)?;
        if let Some(value) = self.cached(name) {
            return Ok(Some(value));
        }
        let mut fetched = self.fetch(&[name]).await?;
        Ok(fetched.values.remove(name))
    }

    /// The values of `names`: fresh ones from the cache, the others from SSM in batches of ten.
    pub async fn get_many(&self, names: &[&str]) -> Result<Parameters, SsmError> {
        let names = unique(names);
        for name in &names {
            validate_name(name)?;
        }
        let now = (self.clock)();
        let mut values = HashMap::new();
        let mut stale = Vec::new();
        {
            let entries = self.read();
            for name in names {
                match entries.get(name) {
                    Some(entry) if is_fresh(entry.fetched_at, now, self.ttl) => {
                        values.insert(name.to_owned(), entry.value.clone());
                    }
                    _ => stale.push(name),
                }
            }
        }
        let fetched = self.fetch(&stale).await?;
        values.extend(fetched.values);
        Ok(Parameters {
            values,
            missing: fetched.missing,
        })
    }

    /// The values of `names`, read from SSM now whatever the cache holds (and stored in it): for a caller
    /// that keeps its own expiry, such as a refresh before the TTL ends.
    pub async fn reload(&self, names: &[&str]) -> Result<Parameters, SsmError> {
        let names = unique(names);
        for name in &names {
            validate_name(name)?;
        }
        self.fetch(&names).await
    }

    /// Reads every cached name from SSM again, whether expired or not. Names SSM no longer holds leave
    /// the cache. If SSM cannot be read, the cached values stay as they were (until their expiry).
    pub async fn refresh(&self) -> Result<(), SsmError> {
        let names: Vec<String> = self.read().keys().cloned().collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        self.fetch(&names).await.map(|_| ())
    }

    /// Forgets every cached value.
    pub fn clear(&self) {
        self.write().clear();
    }

    fn cached(&self, name: &str) -> Option<Secret> {
        let now = (self.clock)();
        let entries = self.read();
        let entry = entries.get(name)?;
        is_fresh(entry.fetched_at, now, self.ttl).then(|| entry.value.clone())
    }

    /// Reads `names` from SSM, ten at a time, storing each batch as it arrives.
    async fn fetch(&self, names: &[&str]) -> Result<Parameters, SsmError> {
        let mut parameters = Parameters::default();
        for batch in batches(names) {
            let (found, missing) = self.fetch_batch(batch).await?;
            self.store(&found, &missing);
            parameters.values.extend(found);
            parameters.missing.extend(missing);
        }
        Ok(parameters)
    }

    async fn fetch_batch(&self, batch: &[&str]) -> Result<(Vec<(String, Secret)>, Vec<String>), SsmError> {
        let full_names: Vec<String> = batch.iter().map(|n| full_name(&self.prefix, n)).collect();
        let started = Instant::now();
        let output = self
            .client
            .get_parameters()
            .set_names(Some(full_names.clone()))
            .with_decryption(true)
            .send()
            .await
            .map_err(|err| SsmError::from_sdk(full_names.clone(), err))?;
        tracing::debug!(
            requested = batch.len(),
            returned = output.parameters().len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "ssm.get_parameters"
        );

        let mut returned: HashMap<&str, &str> = HashMap::new();
        for parameter in output.parameters() {
            if let (Some(name), Some(value)) = (parameter.name(), parameter.value()) {
                returned.insert(name, value);
            }
        }
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for (name, full) in batch.iter().zip(&full_names) {
            match returned.get(full.as_str()) {
                Some(value) => found.push(((*name).to_owned(), Secret::new(*value))),
                None => missing.push((*name).to_owned()),
            }
        }
        Ok((found, missing))
    }

    fn store(&self, found: &[(String, Secret)], missing: &[String]) {
        let fetched_at = (self.clock)();
        let mut entries = self.write();
        for name in missing {
            // A parameter deleted from SSM must not keep serving from an old entry.
            entries.remove(name);
        }
        if self.ttl.is_zero() {
            return;
        }
        for (name, value) in found {
            let entry = Entry {
                value: value.clone(),
                fetched_at,
            };
            entries.insert(name.clone(), entry);
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<String, Entry>> {
        self.entries.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, Entry>> {
        self.entries.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for SsmCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut cached: Vec<String> = self.read().keys().cloned().collect();
        cached.sort();
        f.debug_struct("SsmCache")
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .field("cached", &cached)
            .finish_non_exhaustive()
    }
}

/// Timeouts of the SSM client [`SsmCache::from_env`] builds. These are this bridge's choices, not AWS
/// figures: `GetParameters` of ten names usually answers in tens of milliseconds, so two seconds to
/// connect and two per attempt leave a wide margin, and five seconds in all (the SDK's standard retries
/// included) fit both Lambda's 10-second INIT and a request's 29 seconds. The SDK's own default sets only
/// a connect timeout (3.1 s), so without these a silent endpoint would hold a request until Lambda's
/// timeout.
pub fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(5))
        .build()
}

/// The SSM client's configuration, from the function's environment.
fn client_config() -> aws_sdk_ssm::Config {
    let region = crate::aws::region();
    let mut config = aws_sdk_ssm::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(region.clone().map(Region::new))
        .credentials_provider(crate::aws::credentials())
        .retry_config(RetryConfig::standard())
        .timeout_config(timeouts())
        .use_fips(crate::aws::use_fips())
        .use_dual_stack(crate::aws::use_dual_stack())
        .http_client(crate::http::aws_sdk_http_client(region.as_deref()));
    if let Some(url) = crate::aws::endpoint_url("SSM") {
        config = config.endpoint_url(url);
    }
    config.build()
}

/// The `Display` of an error and of each of its sources, joined by `: ` (no `Debug`, which is verbose and
/// may carry more than a message).
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// Whether a value fetched at `fetched_at` may still be served at `now`. A zero TTL caches nothing; a
/// clock that goes backwards counts as no time passed.
pub(crate) fn is_fresh(fetched_at: Instant, now: Instant, ttl: Duration) -> bool {
    !ttl.is_zero() && now.saturating_duration_since(fetched_at) < ttl
}

/// `names` in groups `GetParameters` accepts.
fn batches<'a, 'n>(names: &'a [&'n str]) -> std::slice::Chunks<'a, &'n str> {
    names.chunks(MAX_NAMES_PER_CALL)
}

/// `names` without repeats, in first-seen order (`GetParameters` counts a repeat against the ten).
fn unique<'n>(names: &[&'n str]) -> Vec<&'n str> {
    let mut seen = HashSet::new();
    names.iter().copied().filter(|n| seen.insert(*n)).collect()
}

fn full_name(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}/{name}")
    }
}

fn validate_name(name: &str) -> Result<(), SsmError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/');
    let valid = !name.is_empty() && name.chars().all(allowed) && !name.starts_with('/') && !name.ends_with('/') && !name.contains("//");
    if valid {
        Ok(())
    } else {
        Err(SsmError::InvalidName { name: name.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("p{i:02}")).collect()
    }

    #[test]
    fn twenty_three_names_make_batches_of_ten_ten_and_three_covering_every_name() {
        let owned = names(23);
        let all: Vec<&str> = owned.iter().map(String::as_str).collect();
        let sizes: Vec<usize> = batches(&all).map(<[&str]>::len).collect();
        assert_eq!(sizes, vec![10, 10, 3]);
        let rejoined: Vec<&str> = batches(&all).flatten().copied().collect();
        assert_eq!(rejoined, all);
    }

    #[test]
    fn exactly_ten_names_make_one_batch_and_none_make_no_call() {
        let owned = names(10);
        let ten: Vec<&str> = owned.iter().map(String::as_str).collect();
        assert_eq!(batches(&ten).count(), 1);
        assert_eq!(batches(&[]).count(), 0);
    }

    #[test]
    fn repeated_names_are_asked_for_once_in_first_seen_order() {
        assert_eq!(unique(&["b", "a", "b", "c", "a"]), vec!["b", "a", "c"]);
    }

    #[test]
    fn a_value_is_fresh_until_exactly_its_ttl_has_passed() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(300);
        assert!(is_fresh(t0, t0, ttl));
        assert!(is_fresh(t0, t0 + Duration::from_secs(299), ttl));
        assert!(!is_fresh(t0, t0 + ttl, ttl));
        assert!(!is_fresh(t0, t0 + Duration::from_secs(301), ttl));
    }

    #[test]
    fn a_zero_ttl_is_never_fresh() {
        let t0 = Instant::now();
        assert!(!is_fresh(t0, t0, Duration::ZERO));
    }

    #[test]
    fn a_clock_that_goes_backwards_counts_as_no_time_passed() {
        let t0 = Instant::now() + Duration::from_secs(10);
        assert!(is_fresh(t0, t0 - Duration::from_secs(5), Duration::from_secs(1)));
    }

    #[test]
    fn a_huge_ttl_does_not_overflow() {
        let t0 = Instant::now();
        assert!(is_fresh(t0, t0 + Duration::from_secs(86_400), Duration::MAX));
    }

    #[test]
    fn names_are_joined_to_the_prefix_with_one_slash() {
        assert_eq!(
            full_name("/talkdesk-bridge/prod", "zendesk/api_token"),
            "/talkdesk-bridge/prod/zendesk/api_token"
        );
        assert_eq!(full_name("", "token-key"), "token-key");
    }

    #[test]
    fn relative_names_are_accepted_and_malformed_ones_rejected() {
        for ok in ["token-key", "zendesk/api_token", "inbound-tokens", "a.b_c-d/e1"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/token-key", "token-key/", "a//b", "has space", "name:3", "ünï"] {
            assert!(matches!(validate_name(bad), Err(SsmError::InvalidName { .. })), "{bad}");
        }
    }

    #[test]
    fn error_messages_name_the_parameters_and_the_cause() {
        let err = SsmError::Request {
            names: vec!["/talkdesk-bridge/prod/token-key".into()],
            kind: FailureKind::Unreachable,
            detail: "dispatch failure: connection refused".into(),
        };
        let message = err.to_string();
        assert!(message.contains("/talkdesk-bridge/prod/token-key"), "{message}");
        assert!(message.contains("SSM could not be reached"), "{message}");
        assert!(message.contains("connection refused"), "{message}");
    }

    #[test]
    fn throttling_server_errors_and_timeouts_are_outages_and_other_refusals_are_not() {
        assert_eq!(service_failure(400, Some("ThrottlingException")), FailureKind::Throttled);
        assert_eq!(service_failure(429, None), FailureKind::Throttled);
        assert_eq!(service_failure(500, Some("InternalServerError")), FailureKind::ServiceUnavailable);
        assert_eq!(service_failure(503, None), FailureKind::ServiceUnavailable);
        assert_eq!(service_failure(408, Some("RequestTimeout")), FailureKind::Timeout);
        assert_eq!(service_failure(400, Some("AccessDeniedException")), FailureKind::Rejected);
        assert_eq!(service_failure(400, Some("InvalidKeyId")), FailureKind::Rejected);
        let error = |kind| SsmError::Request {
            names: vec![],
            kind,
            detail: String::new(),
        };
        for kind in [
            FailureKind::Unreachable,
            FailureKind::Timeout,
            FailureKind::Throttled,
            FailureKind::ServiceUnavailable,
        ] {
            assert!(error(kind).is_outage(), "{kind:?}");
        }
        for kind in [FailureKind::Rejected, FailureKind::MalformedResponse, FailureKind::Construction] {
            assert!(!error(kind).is_outage(), "{kind:?}");
        }
        assert!(!SsmError::InvalidName { name: "a b".into() }.is_outage());
    }

    #[test]
    fn the_client_timeouts_bound_a_silent_ssm() {
        let t = timeouts();
        assert_eq!(t.connect_timeout(), Some(Duration::from_secs(2)));
        assert_eq!(t.operation_attempt_timeout(), Some(Duration::from_secs(2)));
        assert_eq!(t.operation_timeout(), Some(Duration::from_secs(5)));
    }

    #[test]
    fn parameters_debug_shows_names_but_not_values() {
        let parameters = Parameters {
            values: HashMap::from([("token-key".to_owned(), Secret::new("s3cr3t-value"))]),
            missing: vec!["absent".to_owned()],
        };
        let debug = format!("{parameters:?}");
        assert!(debug.contains("token-key") && debug.contains("absent"), "{debug}");
        assert!(!debug.contains("s3cr3t-value"), "{debug}");
    }
}
