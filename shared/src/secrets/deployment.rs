//! The deployment's own secrets, as in force for each request: the key that signs offsets and checkpoints,
//! the bridge tokens callers must present, and (single-tenant deployments) stored connector credentials.
//!
//! Where they come from:
//! - With `BRIDGE_SSM_PREFIX` set, from SSM Parameter Store under that prefix: [`TOKEN_KEY`],
//!   [`TOKEN_KEY_PREVIOUS`], [`TOKEN_KEY_NEXT`], [`INBOUND_TOKENS`], and `{connector}/{field}` for each
//!   field the connector declares ([`Connector::credential_fields`]) and each secret of its own
//!   ([`Connector::deployment_secrets`], e.g. `postgres/password`). They are all read with one batched
//!   call during INIT and again, with one call, around the end of each TTL. A name SSM does not hold costs
//!   nothing until then.
//! - Without it (local runs), from `BRIDGE_TOKEN_KEY` and `BRIDGE_INBOUND_TOKENS`, and for the sandbox
//!   alone the public development key. A value in SSM replaces the variable.
//!
//! Rules, checked at INIT (which then fails) and at each renewed read (the door then closes: 503):
//! - a connector other than the sandbox needs a token key;
//! - stored connector credentials (or deployment secrets) need inbound tokens: without them anyone with
//!   the URL could read the external system;
//! - a deployment ([`Config::requires_inbound_tokens`]: an SSM prefix, or Lambda with a real connector)
//!   needs inbound tokens unless `BRIDGE_ALLOW_UNAUTHENTICATED=true` says another layer authenticates
//!   callers: closed by default.
//!
//! When values are read again (`ttl` is `BRIDGE_SSM_TTL_SECS`, `grace` is `BRIDGE_SSM_STALE_GRACE_SECS`):
//! - In the last fifth of the TTL, a request that finds no read in flight starts one in the background and
//!   goes on with the values in force, which are still within their TTL: on a container that keeps getting
//!   requests, no request waits for SSM. (Lambda freezes a container between invocations, so a background
//!   read may finish only during the next invocation; nothing depends on it finishing.)
//! - Once the TTL has passed without a good read (an idle container), the next request reads SSM itself,
//!   and concurrent requests wait for that one read (single flight): at most one request per container
//!   pays for it. So a value written to SSM is in force everywhere at most one TTL later.
//! - If that read fails because SSM cannot be reached or answer (no connection, timeout, throttling, 5xx:
//!   [`SsmError::is_outage`]), the last good values keep serving until `ttl + grace` after they were read,
//!   each such request logging a warning and counting in the `StaleSecrets` metric, while every request
//!   starts a background retry (one at a time) instead of waiting for SSM; a request that comes
//!   [`OUTAGE_RECHECK`] after the last failed read reads SSM itself again. After the grace: 503
//!   `config_store_unavailable`.
//! - If SSM answers with values that break a rule (a short key, `inbound-tokens` deleted from a
//!   deployment), or refuses the call for another reason (access denied), the door closes at once, grace
//!   or not, even before the TTL ends: 503 until a read succeeds. A failure is never cached: each such
//!   request reads SSM again.
//!
//! [`SsmError::is_outage`]: crate::secrets::ssm::SsmError::is_outage

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::config::{Config, ConfigError, SANDBOX_DEV_TOKEN_KEY};
use crate::connectors::{Connector, ConnectorKind, CredentialField};
use crate::secrets::inbound::InboundTokens;
use crate::secrets::ssm::SsmCache;
use crate::secrets::Secret;
use crate::sync::TokenSigner;
use crate::talkdesk::Auth;

/// The HMAC key that signs offsets and checkpoints.
pub const TOKEN_KEY: &str = "token-key";
/// The key before the last rotation: tokens signed with it are still accepted, none are issued.
pub const TOKEN_KEY_PREVIOUS: &str = "token-key-previous";
/// The key of the next rotation, written first: tokens signed with it are accepted, none are issued, so
/// every container knows it before any signs with it.
pub const TOKEN_KEY_NEXT: &str = "token-key-next";
/// The bridge tokens callers must present, separated by commas or newlines.
pub const INBOUND_TOKENS: &str = "inbound-tokens";
/// The shortest token key accepted (as for `BRIDGE_TOKEN_KEY`).
pub const MIN_TOKEN_KEY_CHARS: usize = 16;

/// A background read starts once the values are this fraction of their TTL old, counted from the end: the
/// last fifth (one minute of the default five).
const REFRESH_AHEAD_DIVISOR: u32 = 5;

/// How long a failed read vouches for an outage. Within it, requests past the TTL take the last values
/// without waiting for SSM (each starting a background retry, whose failure renews it); after it, the next
/// request reads SSM itself again. So a container that was idle since SSM came back never serves stale
/// values for longer than this after its last failed read, and during an outage with traffic no request
/// waits for SSM. Our choice: a failing read costs at most the client's 5-second timeout, so an idle
/// container pays that at most once per 30 seconds.
const OUTAGE_RECHECK: Duration = Duration::from_secs(30);

/// The secrets in force for one request. `Debug` names what is held, never a value.
pub struct SecretSet {
    signer: TokenSigner,
    inbound: InboundTokens,
    credentials: Vec<(CredentialField, Secret)>,
    /// Every deployment secret the connector declares, with its stored value if SSM holds one.
    deployment: Vec<(&'static str, Option<Secret>)>,
}

impl SecretSet {
    /// Signs new tokens with the current key; verifies with it, the previous or the next one.
    pub fn signer(&self) -> &TokenSigner {
        &self.signer
    }
    /// The tokens callers must present (none: no authentication).
    pub fn inbound(&self) -> &InboundTokens {
        &self.inbound
    }

    /// Names of the connector credential fields and deployment secrets held in SSM.
    pub fn stored_credentials(&self) -> Vec<&'static str> {
        self.credentials
            .iter()
            .map(|(f, _)| f.name)
            .chain(self.deployment.iter().filter(|(_, v)| v.is_some()).map(|(n, _)| *n))
            .collect()
    }

    /// Fills the `auth` fields the request lacks from the stored credentials, as each field's
    /// [`CredentialField`] allows: a field the request gives always wins, a stored field is not mixed with
    /// the request's own way of signing in, and stored secrets fill a request only for the account they
    /// were stored for. Decisions look at the request's fields alone. Deployment secrets always replace
    /// the request's field of the same name (emptied when SSM holds none). Returns how many credential
    /// fields were filled.
    pub fn fill_credentials(&self, auth: &mut Auth) -> usize {
        let stored = |name: &str| self.credentials.iter().find(|(f, _)| f.name == name).map(|(_, v)| v);
        let fills: Vec<(&'static str, Secret)> = self
            .credentials
            .iter()
            .filter(|(field, _)| auth.get(field.name).is_none())
            .filter(|(field, _)| field.unless_given.iter().all(|other| auth.get(other).is_none()))
            .filter(|(field, _)| {
                field.bound_to.iter().all(|bound| match (auth.get(bound), stored(bound)) {
                    (None, _) => true,
                    (Some(given), Some(kept)) => kept.ct_eq(given.expose()),
                    (Some(_), None) => false,
                })
            })
            .map(|(field, value)| (field.name, value.clone()))
            .collect();
        let filled = fills.len();
        for (name, value) in fills {
            auth.insert(name, value);
        }
        for (name, value) in &self.deployment {
            auth.insert(*name, value.clone().unwrap_or_else(|| Secret::new("")));
        }
        filled
    }
}

impl fmt::Debug for SecretSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretSet")
            .field("inbound_tokens", &self.inbound.len())
            .field("stored_credentials", &self.stored_credentials())
            .finish_non_exhaustive()
    }
}

/// A request could not get its secrets: SSM holds an invalid value or refuses the call, or it has been
/// unreachable past the values' TTL and grace. The cause is logged where it happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the configuration store is unavailable")]
pub struct SecretsUnavailable;

/// What the environment says, kept to complete or replace what SSM holds.
struct Local {
    connector: &'static str,
    sandbox: bool,
    token_key: Option<Secret>,
    inbound: InboundTokens,
    fields: &'static [CredentialField],
    deployment: &'static [&'static str],
    /// [`Config::requires_inbound_tokens`]: a deployment without `BRIDGE_ALLOW_UNAUTHENTICATED=true`.
    requires_inbound: bool,
}

impl Local {
    fn new(config: &Config, connector: &dyn Connector) -> Self {
        Local {
            connector: connector.name(),
            sandbox: config.connector == ConnectorKind::Sandbox,
            token_key: config.token_key.clone(),
            inbound: config.inbound_tokens.clone(),
            fields: connector.credential_fields(),
            deployment: connector.deployment_secrets(),
            requires_inbound: config.requires_inbound_tokens(),
        }
    }

    fn credential_name(&self, field: &CredentialField) -> String {
        format!("{}/{}", self.connector, field.name)
    }

    /// Every name read from SSM, relative to the prefix.
    fn names(&self) -> Vec<String> {
        let mut names = vec![
            TOKEN_KEY.to_owned(),
            TOKEN_KEY_PREVIOUS.to_owned(),
            TOKEN_KEY_NEXT.to_owned(),
            INBOUND_TOKENS.to_owned(),
        ];
        names.extend(self.fields.iter().map(|f| self.credential_name(f)));
        names.extend(self.deployment.iter().map(|name| format!("{}/{name}", self.connector)));
        names
    }
}

fn token_key(value: &Secret, name: impl FnOnce() -> String) -> Result<Secret, ConfigError> {
    if value.expose().chars().count() < MIN_TOKEN_KEY_CHARS {
        return Err(ConfigError::Parameter {
            name: name(),
            problem: format!("must be at least {MIN_TOKEN_KEY_CHARS} characters (e.g. `openssl rand -base64 32`)"),
        });
    }
    Ok(value.clone())
}

/// What to do when a deployment has no inbound token. Kept in one place so INIT and the README agree.
const OPEN_DEPLOYMENT_FIX: &str = "or set BRIDGE_ALLOW_UNAUTHENTICATED=true (the template's AllowUnauthenticated) if \
                                   another layer authenticates the callers";

/// The secrets in force, from SSM's values (`ssm`, by relative name; `None` without a prefix) and the
/// environment. Errors name parameters and variables, never values.
fn resolve(local: &Local, prefix: Option<&str>, ssm: &dyn Fn(&str) -> Option<Secret>) -> Result<SecretSet, ConfigError> {
    let full = |name: &str| format!("{}/{name}", prefix.unwrap_or_default());
    let key = match ssm(TOKEN_KEY) {
        Some(value) => token_key(&value, || full(TOKEN_KEY))?,
        None => match (&local.token_key, prefix) {
            (Some(value), _) => value.clone(),
            (None, _) if local.sandbox => Secret::new(SANDBOX_DEV_TOKEN_KEY),
            (None, Some(_)) => {
                return Err(ConfigError::Parameter {
                    name: full(TOKEN_KEY),
                    problem: format!(
                        "is required by the {} connector (or BRIDGE_TOKEN_KEY): it signs offsets and checkpoints",
                        local.connector
                    ),
                })
            }
            (None, None) => {
                return Err(ConfigError::Missing {
                    name: "BRIDGE_TOKEN_KEY",
                    why: "a real connector needs its own token key (SSM parameter token-key or BRIDGE_TOKEN_KEY)",
                })
            }
        },
    };
    let verify_only = |name: &str| ssm(name).map(|value| token_key(&value, || full(name))).transpose();
    let previous = verify_only(TOKEN_KEY_PREVIOUS)?;
    let next = verify_only(TOKEN_KEY_NEXT)?;
    let inbound = match ssm(INBOUND_TOKENS) {
        Some(value) => InboundTokens::parse(value.expose()).map_err(|problem| ConfigError::Parameter {
            name: full(INBOUND_TOKENS),
            problem: format!("is invalid: it {problem}"),
        })?,
        None => local.inbound.clone(),
    };
    let credentials: Vec<(CredentialField, Secret)> = local
        .fields
        .iter()
        .filter_map(|field| ssm(&local.credential_name(field)).map(|value| (*field, value)))
        .collect();
    let deployment: Vec<(&'static str, Option<Secret>)> = local
        .deployment
        .iter()
        .map(|name| (*name, ssm(&format!("{}/{name}", local.connector))))
        .collect();
    let stores_secrets = !credentials.is_empty() || deployment.iter().any(|(_, v)| v.is_some());
    if stores_secrets && !inbound.required() {
        return Err(ConfigError::Parameter {
            name: full(INBOUND_TOKENS),
            problem: format!(
                "is required because {} credentials are stored under {}: without inbound tokens anyone with the \
                 URL could read the {} account",
                local.connector,
                prefix.unwrap_or_default(),
                local.connector
            ),
        });
    }
    if local.requires_inbound && !inbound.required() {
        return Err(match prefix {
            Some(_) => ConfigError::Parameter {
                name: full(INBOUND_TOKENS),
                problem: format!(
                    "is required: without inbound tokens this deployment accepts every caller, and anyone who learns \
                     its URL can use it as a relay to {} on your Lambda bill. Store the parameter (see the README, \
                     Secrets in SSM Parameter Store), {OPEN_DEPLOYMENT_FIX}",
                    local.connector
                ),
            },
            None => ConfigError::Missing {
                name: "BRIDGE_INBOUND_TOKENS",
                why: "on Lambda a connector other than the sandbox must authenticate its callers, or anyone who \
                      learns the URL can use it as a relay: set BRIDGE_INBOUND_TOKENS (or store inbound-tokens \
                      under BRIDGE_SSM_PREFIX), or set BRIDGE_ALLOW_UNAUTHENTICATED=true (the template's \
                      AllowUnauthenticated) if another layer authenticates the callers",
            },
        });
    }
    Ok(SecretSet {
        signer: TokenSigner::new(key).with_next(next).with_previous(previous),
        inbound,
        credentials,
        deployment,
    })
}

/// Why the last read of SSM since the values in force did not give new values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// SSM could not be reached or could not answer (an outage), at this instant.
    Outage { at: Instant },
    /// SSM answered with values that break a rule, or refused the call: the door is closed until a read
    /// succeeds.
    Refused,
}

/// What a request does with the secrets, given their age and the last failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Within the TTL: use the values in force.
    Serve,
    /// Within the TTL, but a read should start in the background (the last fifth of the TTL, or a retry
    /// after a failed read).
    ServeAndRefresh,
    /// Past the TTL, SSM down since then, within the grace: use the last values, warn, retry in the
    /// background.
    ServeStale,
    /// Read SSM now, on this request.
    Read,
}

/// The TTL and the outage grace of the values read from SSM.
#[derive(Debug, Clone, Copy)]
struct Timing {
    ttl: Duration,
    grace: Duration,
}

impl Timing {
    /// A pure decision, so every case is unit-tested without SSM: values read at `read_at`, the last
    /// failed read since then `failure`, the time `now`.
    fn plan(&self, read_at: Instant, failure: Option<Failure>, now: Instant) -> Plan {
        let age = now.saturating_duration_since(read_at);
        match failure {
            Some(Failure::Refused) => Plan::Read,
            _ if age < self.ttl => {
                if failure.is_some() || age >= self.ttl - self.ttl / REFRESH_AHEAD_DIVISOR {
                    Plan::ServeAndRefresh
                } else {
                    Plan::Serve
                }
            }
            // Only a recent outage seen once the TTL had passed counts: a background read that failed
            // before the TTL does not spare the first request after it its own read, and neither does an
            // outage that may have ended since.
            Some(Failure::Outage { at })
                if at.saturating_duration_since(read_at) >= self.ttl
                    && now.saturating_duration_since(at) < OUTAGE_RECHECK
                    && self.within_grace(age) =>
            {
                Plan::ServeStale
            }
            _ => Plan::Read,
        }
    }

    fn within_grace(&self, age: Duration) -> bool {
        age < self.ttl.saturating_add(self.grace)
    }
}

/// The values in force and what became of the reads since.
struct State {
    set: Arc<SecretSet>,
    /// When the read that gave `set` started (so a value written to SSM before that is in `set`).
    read_at: Instant,
    failure: Option<Failure>,
}

/// Where renewed values come from.
struct Source {
    cache: SsmCache,
    timing: Timing,
    /// Held by the one read of SSM in flight, background or not.
    single_flight: Arc<tokio::sync::Mutex<()>>,
}

struct Shared {
    local: Local,
    source: Option<Source>,
    state: RwLock<State>,
}

/// A read of SSM that gave no new values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadFailure {
    Outage,
    Refused,
}

impl Shared {
    fn state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The plan for a request now, with the values it would use.
    fn plan(&self, source: &Source) -> (Plan, Arc<SecretSet>) {
        let now = source.cache.now();
        let state = self.state();
        (source.timing.plan(state.read_at, state.failure, now), state.set.clone())
    }

    /// Reads every name from SSM (whatever the cache holds), resolves them and records the outcome. The
    /// caller holds the single-flight lock.
    async fn read(&self, source: &Source) -> Result<Arc<SecretSet>, ReadFailure> {
        let cache = &source.cache;
        let started = cache.now();
        let names = self.local.names();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        // Errors are kept as their messages, which name parameters and never carry values.
        let outcome = match cache.reload(&refs).await {
            Ok(parameters) => resolve(&self.local, Some(cache.prefix()), &|name| parameters.get(name).cloned())
                .map_err(|error| (ReadFailure::Refused, error.to_string())),
            Err(error) if error.is_outage() => Err((ReadFailure::Outage, error.to_string())),
            Err(error) => Err((ReadFailure::Refused, error.to_string())),
        };
        let ended = cache.now();
        match outcome {
            Ok(set) => {
                let set = Arc::new(set);
                *self.state.write().unwrap_or_else(PoisonError::into_inner) = State {
                    set: set.clone(),
                    read_at: started,
                    failure: None,
                };
                tracing::debug!(
                    prefix = cache.prefix(),
                    inbound_tokens = set.inbound.len(),
                    verifying_keys = set.signer.verifying_keys(),
                    "secrets renewed from SSM"
                );
                Ok(set)
            }
            Err((ReadFailure::Outage, error)) => {
                let (read_at, closed) = {
                    let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
                    // An outage after a refusal keeps the door closed: only a good read opens it.
                    if state.failure != Some(Failure::Refused) {
                        state.failure = Some(Failure::Outage { at: ended });
                    }
                    (state.read_at, state.failure == Some(Failure::Refused))
                };
                let usable_for =
                    (source.timing.ttl.saturating_add(source.timing.grace)).saturating_sub(ended.saturating_duration_since(read_at));
                tracing::warn!(
                    prefix = cache.prefix(),
                    error = %error,
                    last_values_usable_for_secs = if closed { 0 } else { usable_for.as_secs() },
                    "secrets could not be renewed: SSM is unavailable; the last values serve through the outage \
                     until BRIDGE_SSM_STALE_GRACE_SECS after their TTL, then requests get 503"
                );
                Err(ReadFailure::Outage)
            }
            Err((ReadFailure::Refused, error)) => {
                self.state.write().unwrap_or_else(PoisonError::into_inner).failure = Some(Failure::Refused);
                tracing::error!(
                    prefix = cache.prefix(),
                    error = %error,
                    "secrets could not be renewed; requests get 503 until they are"
                );
                Err(ReadFailure::Refused)
            }
        }
    }
}

/// The deployment's secrets: fixed for a local run, read from SSM and renewed around each TTL otherwise.
pub struct DeploymentSecrets {
    shared: Arc<Shared>,
}

impl DeploymentSecrets {
    /// Secrets from the environment alone (no `BRIDGE_SSM_PREFIX`).
    pub fn from_environment(config: &Config, connector: &dyn Connector) -> Result<Self, ConfigError> {
        let local = Local::new(config, connector);
        let set = resolve(&local, None, &|_| None)?;
        warn_if_open(config, &set);
        Ok(DeploymentSecrets {
            shared: Arc::new(Shared {
                local,
                source: None,
                state: RwLock::new(State {
                    set: Arc::new(set),
                    read_at: Instant::now(),
                    failure: None,
                }),
            }),
        })
    }

    /// Secrets from SSM under the cache's prefix, read now with one batched call (the INIT phase), with
    /// the environment's values where SSM holds none. Fails if SSM cannot be read or breaks a rule: there
    /// are no last good values to fall back on yet.
    pub async fn from_ssm(config: &Config, connector: &dyn Connector, cache: SsmCache) -> Result<Self, ConfigError> {
        let local = Local::new(config, connector);
        let names = local.names();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let read_at = cache.now();
        let parameters = cache.reload(&refs).await.map_err(|error| ConfigError::SecretStore {
            prefix: cache.prefix().to_owned(),
            error,
        })?;
        let set = resolve(&local, Some(cache.prefix()), &|name| parameters.get(name).cloned())?;
        tracing::info!(
            prefix = cache.prefix(),
            ttl_secs = cache.ttl().as_secs(),
            stale_grace_secs = config.ssm_stale_grace.as_secs(),
            token_key = if parameters.get(TOKEN_KEY).is_some() { "ssm" } else { "environment" },
            previous_token_key = parameters.get(TOKEN_KEY_PREVIOUS).is_some(),
            next_token_key = parameters.get(TOKEN_KEY_NEXT).is_some(),
            inbound_tokens = set.inbound.len(),
            stored_credentials = ?set.stored_credentials(),
            not_in_ssm = ?parameters.missing(),
            "secrets read from SSM"
        );
        warn_if_open(config, &set);
        let timing = Timing {
            ttl: cache.ttl(),
            grace: config.ssm_stale_grace,
        };
        Ok(DeploymentSecrets {
            shared: Arc::new(Shared {
                local,
                state: RwLock::new(State {
                    set: Arc::new(set),
                    read_at,
                    failure: None,
                }),
                source: Some(Source {
                    cache,
                    timing,
                    single_flight: Arc::new(tokio::sync::Mutex::new(())),
                }),
            }),
        })
    }

    /// The secrets in force for a request, renewed as the module documentation describes.
    pub async fn current(&self) -> Result<Arc<SecretSet>, SecretsUnavailable> {
        let Some(source) = &self.shared.source else {
            return Ok(self.last());
        };
        match self.shared.plan(source) {
            (Plan::Serve, set) => Ok(set),
            (Plan::ServeAndRefresh, set) => {
                self.refresh_in_background();
                Ok(set)
            }
            (Plan::ServeStale, set) => {
                self.refresh_in_background();
                Ok(self.stale(source, set))
            }
            (Plan::Read, _) => self.read_now(source).await,
        }
    }

    /// Reads SSM on this request, or waits for the read in flight and takes its outcome.
    async fn read_now(&self, source: &Source) -> Result<Arc<SecretSet>, SecretsUnavailable> {
        let _flight = source.single_flight.lock().await;
        // A read may have ended while this request waited for it.
        match self.shared.plan(source) {
            (Plan::Serve | Plan::ServeAndRefresh, set) => return Ok(set),
            (Plan::ServeStale, set) => return Ok(self.stale(source, set)),
            (Plan::Read, _) => {}
        }
        // Boxed: the read (SDK call included) is a deep future that most requests never poll, and without
        // the box its layout nests into every handler's future.
        match Box::pin(self.shared.read(source)).await {
            Ok(set) => Ok(set),
            Err(_) => match self.shared.plan(source) {
                (Plan::ServeStale, set) => Ok(self.stale(source, set)),
                _ => Err(SecretsUnavailable),
            },
        }
    }

    /// Starts a read of SSM on its own task, unless one is in flight (or there is no Tokio runtime).
    fn refresh_in_background(&self) {
        let Some(source) = &self.shared.source else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Ok(flight) = source.single_flight.clone().try_lock_owned() else {
            return;
        };
        let shared = self.shared.clone();
        runtime.spawn(async move {
            let _flight = flight;
            if let Some(source) = &shared.source {
                // The outcome is recorded in the state and logged; nobody waits for it.
                let _ = shared.read(source).await;
            }
        });
    }

    /// `set`, served past its TTL through an outage: logged and counted.
    fn stale(&self, source: &Source, set: Arc<SecretSet>) -> Arc<SecretSet> {
        let read_at = self.shared.state().read_at;
        let age = source.cache.now().saturating_duration_since(read_at);
        let timing = source.timing;
        tracing::warn!(
            prefix = source.cache.prefix(),
            past_ttl_secs = age.saturating_sub(timing.ttl).as_secs(),
            grace_left_secs = timing.ttl.saturating_add(timing.grace).saturating_sub(age).as_secs(),
            "secrets served past their TTL: SSM is unavailable"
        );
        crate::metrics::note_stale_secrets();
        set
    }

    /// Waits until no read of SSM is in flight (a background one included), so a test or a tool sees its
    /// outcome.
    pub async fn settled(&self) {
        if let Some(source) = &self.shared.source {
            let _flight = source.single_flight.lock().await;
        }
    }

    /// The secrets read last, expired or not (for tools and tests; requests use [`Self::current`]).
    pub fn last(&self) -> Arc<SecretSet> {
        self.shared.state().set.clone()
    }

    /// The cache behind these secrets, when they come from SSM.
    pub fn ssm(&self) -> Option<&SsmCache> {
        self.shared.source.as_ref().map(|s| &s.cache)
    }

    /// How long after their TTL the last good values serve through an SSM outage (zero without SSM).
    pub fn stale_grace(&self) -> Duration {
        self.shared.source.as_ref().map_or(Duration::ZERO, |s| s.timing.grace)
    }
}

impl fmt::Debug for DeploymentSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeploymentSecrets")
            .field("ssm", &self.ssm())
            .field("current", &self.last())
            .finish()
    }
}

/// A bridge that starts without inbound tokens says so: a deployment only gets here with
/// `BRIDGE_ALLOW_UNAUTHENTICATED=true`, a local run under a Lambda emulator (`make run`) on the sandbox.
fn warn_if_open(config: &Config, set: &SecretSet) {
    if set.inbound.required() {
        return;
    }
    if config.is_deployment() {
        tracing::warn!(
            "BRIDGE_ALLOW_UNAUTHENTICATED=true and no inbound tokens: this bridge accepts every caller, so another \
             layer must authenticate them"
        );
    } else if config.deployed {
        tracing::warn!(
            remedy = "set BRIDGE_INBOUND_TOKENS",
            "no inbound tokens are configured: anyone with the URL can call this bridge"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::connectors::zendesk::credentials::FIELDS;

    const KEY: &str = "a-token-key-of-32-characters-xyz";
    const TOKENS: &str = "inbound-token-one-0123,inbound-token-two-4567";

    fn local(sandbox: bool) -> Local {
        Local {
            connector: if sandbox { "sandbox" } else { "zendesk" },
            sandbox,
            token_key: None,
            inbound: InboundTokens::default(),
            fields: if sandbox { &[] } else { FIELDS },
            deployment: &[],
            requires_inbound: false,
        }
    }

    fn ssm(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<Secret> {
        let map: HashMap<String, Secret> = pairs.iter().map(|(k, v)| (k.to_string(), Secret::new(*v))).collect();
        move |name| map.get(name).cloned()
    }

    fn auth(pairs: &[(&str, &str)]) -> Auth {
        let mut a = Auth::default();
        for (k, v) in pairs {
            a.insert(*k, Secret::new(*v));
        }
        a
    }

    fn exposed(auth: &Auth, field: &str) -> Option<String> {
        auth.get(field).map(|s| s.expose().to_owned())
    }

    fn stored_zendesk() -> SecretSet {
        resolve(
            &local(false),
            Some("/p"),
            &ssm(&[
                ("token-key", KEY),
                ("inbound-tokens", TOKENS),
                ("zendesk/subdomain", "acme"),
                ("zendesk/email", "ops@acme.test"),
                ("zendesk/api_token", "stored-api-token"),
            ]),
        )
        .unwrap()
    }

    #[test]
    fn every_name_fits_one_get_parameters_call() {
        let names = local(false).names();
        assert_eq!(
            names,
            [
                "token-key",
                "token-key-previous",
                "token-key-next",
                "inbound-tokens",
                "zendesk/subdomain",
                "zendesk/email",
                "zendesk/api_token",
                "zendesk/access_token"
            ]
        );
        assert!(names.len() <= crate::secrets::ssm::MAX_NAMES_PER_CALL);
    }

    #[test]
    fn ssm_values_replace_the_environment() {
        let mut l = local(false);
        l.token_key = Some(Secret::new("environment-key-0123456789"));
        l.inbound = InboundTokens::parse("environment-token-0123").unwrap();
        let set = resolve(&l, Some("/p"), &ssm(&[("token-key", KEY), ("inbound-tokens", TOKENS)])).unwrap();
        assert_eq!(set.inbound.len(), 2);
        assert!(!set.inbound.admit(&[Some("environment-token-0123")]));
        let from_env = resolve(&l, Some("/p"), &ssm(&[])).unwrap();
        assert!(from_env.inbound.admit(&[Some("environment-token-0123")]));
    }

    #[test]
    fn a_real_connector_without_a_token_key_is_refused_and_the_sandbox_gets_the_development_key() {
        let err = resolve(&local(false), Some("/talkdesk-bridge/prod"), &ssm(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/talkdesk-bridge/prod/token-key") && err.contains("BRIDGE_TOKEN_KEY"),
            "{err}"
        );
        let err = resolve(&local(false), None, &ssm(&[])).unwrap_err().to_string();
        assert!(err.starts_with("BRIDGE_TOKEN_KEY"), "{err}");
        assert!(resolve(&local(true), Some("/p"), &ssm(&[])).is_ok());
    }

    #[test]
    fn invalid_values_are_named_without_being_shown() {
        for (pairs, name) in [
            (vec![("token-key", "short-key")], "/p/token-key"),
            (
                vec![("token-key", KEY), ("token-key-previous", "short-old")],
                "/p/token-key-previous",
            ),
            (vec![("token-key", KEY), ("token-key-next", "short-new")], "/p/token-key-next"),
            (vec![("token-key", KEY), ("inbound-tokens", "tiny-token")], "/p/inbound-tokens"),
        ] {
            let err = resolve(&local(false), Some("/p"), &ssm(&pairs)).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
            for (_, value) in &pairs {
                assert!(!err.contains(value), "{err}");
            }
        }
    }

    #[test]
    fn stored_credentials_without_inbound_tokens_are_refused() {
        let err = resolve(&local(false), Some("/p"), &ssm(&[("token-key", KEY), ("zendesk/api_token", "x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/p/inbound-tokens is required"), "{err}");
    }

    #[test]
    fn a_deployment_without_inbound_tokens_is_refused_with_the_fix_named() {
        let mut deployed = local(false);
        deployed.requires_inbound = true;
        deployed.token_key = Some(Secret::new(KEY));
        let err = resolve(&deployed, Some("/p"), &ssm(&[])).unwrap_err().to_string();
        assert!(err.contains("/p/inbound-tokens is required"), "{err}");
        assert!(
            err.contains("BRIDGE_ALLOW_UNAUTHENTICATED=true") && err.contains("AllowUnauthenticated"),
            "{err}"
        );
        let err = resolve(&deployed, None, &ssm(&[])).unwrap_err().to_string();
        assert!(err.starts_with("BRIDGE_INBOUND_TOKENS is required"), "{err}");
        assert!(err.contains("BRIDGE_ALLOW_UNAUTHENTICATED=true"), "{err}");
        // Tokens from SSM or from the environment both close it.
        assert!(resolve(&deployed, Some("/p"), &ssm(&[("inbound-tokens", TOKENS)])).is_ok());
        deployed.inbound = InboundTokens::parse("environment-token-0123").unwrap();
        assert!(resolve(&deployed, None, &ssm(&[])).is_ok());
        // Not a deployment (or allowed to be open): no tokens needed.
        assert!(resolve(&local(true), Some("/p"), &ssm(&[])).is_ok());
    }

    #[test]
    fn the_signer_verifies_with_the_next_and_previous_keys_and_signs_with_token_key() {
        let set = resolve(
            &local(false),
            Some("/p"),
            &ssm(&[
                ("token-key", KEY),
                ("token-key-next", "the-next-token-key-0123456789"),
                ("token-key-previous", "the-old-token-key-0123456789"),
            ]),
        )
        .unwrap();
        assert_eq!(set.signer().verifying_keys(), 3);
        let state = crate::sync::CheckpointState::default();
        for key in ["the-next-token-key-0123456789", "the-old-token-key-0123456789", KEY] {
            let token = TokenSigner::new(Secret::new(key)).encode_checkpoint("a", &state);
            assert!(set.signer().decode_checkpoint("a", &token).is_ok(), "{key}");
        }
        let issued = set.signer().encode_checkpoint("a", &state);
        assert!(TokenSigner::new(Secret::new(KEY)).decode_checkpoint("a", &issued).is_ok());
    }

    fn timing(ttl: u64, grace: u64) -> Timing {
        Timing {
            ttl: Duration::from_secs(ttl),
            grace: Duration::from_secs(grace),
        }
    }

    #[test]
    fn values_serve_within_the_ttl_and_a_background_read_starts_in_its_last_fifth() {
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        let t = timing(300, 3600);
        assert_eq!(t.plan(t0, None, t0), Plan::Serve);
        assert_eq!(t.plan(t0, None, at(239)), Plan::Serve);
        assert_eq!(t.plan(t0, None, at(240)), Plan::ServeAndRefresh);
        assert_eq!(t.plan(t0, None, at(299)), Plan::ServeAndRefresh);
        // A background read that failed before the TTL: retried in the background while values are fresh.
        let early = Some(Failure::Outage { at: at(250) });
        assert_eq!(t.plan(t0, early, at(260)), Plan::ServeAndRefresh);
        // ... but it does not spare the first request after the TTL its own read.
        assert_eq!(t.plan(t0, early, at(300)), Plan::Read);
        assert_eq!(t.plan(t0, None, at(300)), Plan::Read);
    }

    #[test]
    fn after_an_outage_seen_past_the_ttl_the_last_values_serve_until_the_grace_ends() {
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        let t = timing(300, 3600);
        let outage = Some(Failure::Outage { at: at(300) });
        assert_eq!(t.plan(t0, outage, at(300)), Plan::ServeStale);
        assert_eq!(t.plan(t0, outage, at(329)), Plan::ServeStale);
        // An outage seen 30 s ago or more is checked again by the next request.
        assert_eq!(t.plan(t0, outage, at(330)), Plan::Read);
        let recent = |secs| Some(Failure::Outage { at: at(secs) });
        assert_eq!(t.plan(t0, recent(3890), at(3899)), Plan::ServeStale);
        assert_eq!(t.plan(t0, recent(3899), at(3900)), Plan::Read, "the grace has ended");
        // No grace: the old behaviour, a read (and a 503 if it fails) once the TTL has passed.
        assert_eq!(timing(300, 0).plan(t0, outage, at(300)), Plan::Read);
        // A zero TTL reads on every request, and the grace still bridges an outage.
        let zero = timing(0, 60);
        assert_eq!(zero.plan(t0, None, t0), Plan::Read);
        assert_eq!(zero.plan(t0, Some(Failure::Outage { at: at(1) }), at(1)), Plan::ServeStale);
        assert_eq!(zero.plan(t0, Some(Failure::Outage { at: at(1) }), at(60)), Plan::Read);
    }

    #[test]
    fn a_refusal_closes_the_door_at_once_grace_or_not() {
        let t0 = Instant::now();
        let t = timing(300, 3600);
        for secs in [0, 299, 300, 1000] {
            assert_eq!(
                t.plan(t0, Some(Failure::Refused), t0 + Duration::from_secs(secs)),
                Plan::Read,
                "{secs}"
            );
        }
    }

    #[test]
    fn a_huge_grace_does_not_overflow() {
        let t0 = Instant::now();
        let t = Timing {
            ttl: Duration::from_secs(300),
            grace: Duration::MAX,
        };
        let outage = Some(Failure::Outage {
            at: t0 + Duration::from_secs(86_390),
        });
        assert_eq!(t.plan(t0, outage, t0 + Duration::from_secs(86_400)), Plan::ServeStale);
    }

    #[test]
    fn stored_credentials_fill_only_the_fields_the_request_lacks() {
        let set = stored_zendesk();
        let mut empty = auth(&[]);
        assert_eq!(set.fill_credentials(&mut empty), 3);
        assert_eq!(exposed(&empty, "api_token").as_deref(), Some("stored-api-token"));

        let mut own_token = auth(&[("api_token", "request-token"), ("subdomain", "")]);
        set.fill_credentials(&mut own_token);
        assert_eq!(exposed(&own_token, "api_token").as_deref(), Some("request-token"));
        assert_eq!(exposed(&own_token, "email").as_deref(), Some("ops@acme.test"));
        assert_eq!(
            exposed(&own_token, "subdomain").as_deref(),
            Some("acme"),
            "an empty field counts as absent"
        );
    }

    #[test]
    fn a_request_signing_in_its_own_way_gets_no_stored_secret() {
        let set = stored_zendesk();
        let mut oauth = auth(&[("access_token", "request-oauth")]);
        set.fill_credentials(&mut oauth);
        assert_eq!(exposed(&oauth, "api_token"), None);
        assert_eq!(exposed(&oauth, "email"), None);
        assert_eq!(exposed(&oauth, "subdomain").as_deref(), Some("acme"));
    }

    #[test]
    fn stored_secrets_never_fill_a_request_for_another_account() {
        let set = stored_zendesk();
        let mut other = auth(&[("subdomain", "evil")]);
        assert_eq!(set.fill_credentials(&mut other), 0);
        assert_eq!(exposed(&other, "api_token"), None);
        let mut same = auth(&[("subdomain", "acme")]);
        assert_eq!(set.fill_credentials(&mut same), 2);
        assert_eq!(exposed(&same, "api_token").as_deref(), Some("stored-api-token"));
    }

    fn local_postgres() -> Local {
        Local {
            connector: "postgres",
            sandbox: false,
            token_key: None,
            inbound: InboundTokens::default(),
            fields: &[],
            deployment: &["password"],
            requires_inbound: false,
        }
    }

    #[test]
    fn a_deployment_secret_is_read_as_connector_slash_name() {
        assert_eq!(
            local_postgres().names(),
            [
                "token-key",
                "token-key-previous",
                "token-key-next",
                "inbound-tokens",
                "postgres/password"
            ]
        );
    }

    #[test]
    fn a_deployment_secret_always_replaces_what_the_request_says() {
        let stored = resolve(
            &local_postgres(),
            Some("/p"),
            &ssm(&[("token-key", KEY), ("inbound-tokens", TOKENS), ("postgres/password", "db-secret")]),
        )
        .unwrap();
        let mut request = auth(&[("password", "attacker-chosen")]);
        stored.fill_credentials(&mut request);
        assert_eq!(exposed(&request, "password").as_deref(), Some("db-secret"));
        assert_eq!(stored.stored_credentials(), vec!["password"]);

        let none_stored = resolve(&local_postgres(), Some("/p"), &ssm(&[("token-key", KEY)])).unwrap();
        let mut request = auth(&[("password", "attacker-chosen")]);
        none_stored.fill_credentials(&mut request);
        assert_eq!(
            exposed(&request, "password"),
            None,
            "a request never supplies the database password"
        );
    }

    #[test]
    fn a_stored_deployment_secret_without_inbound_tokens_is_refused() {
        let err = resolve(
            &local_postgres(),
            Some("/p"),
            &ssm(&[("token-key", KEY), ("postgres/password", "x")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("/p/inbound-tokens is required"), "{err}");
    }

    #[test]
    fn debug_of_a_secret_set_names_fields_but_shows_no_value() {
        let debug = format!("{:?}", stored_zendesk());
        assert!(debug.contains("api_token") && debug.contains("inbound_tokens: 2"), "{debug}");
        for value in [KEY, "inbound-token-one-0123", "stored-api-token", "ops@acme.test"] {
            assert!(!debug.contains(value), "{debug}");
        }
    }
}
