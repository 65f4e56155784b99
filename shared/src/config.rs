//! Deployment configuration, read once at cold start. A bad value fails INIT with a message naming the
//! variable; nothing is read from the environment later.

use std::path::PathBuf;
use std::time::Duration;

use phonenumber::country::Id as Region;

use crate::connectors::ConnectorKind;
use crate::phone;
use crate::secrets::inbound::InboundTokens;
use crate::secrets::Secret;

/// The token key used when the sandbox runs without `BRIDGE_TOKEN_KEY`. It is public: it only lets the
/// local sandbox and the sample events work out of the box, and is never accepted for a real connector.
pub const SANDBOX_DEV_TOKEN_KEY: &str = "talkdesk-bridge-sandbox-development-key";

/// The largest `BRIDGE_MAX_RESPONSE_BYTES`: Lambda refuses a response over 6,291,456 bytes, and the engine
/// counts the response as sent (the body escaped inside the proxy envelope), keeping a margin for the
/// envelope and the tokens.
pub const MAX_RESPONSE_BYTES: usize = 6_000_000;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}: {problem}")]
    Invalid { name: &'static str, problem: String },
    #[error("{name} is required: {why}")]
    Missing { name: &'static str, why: &'static str },
    /// An SSM parameter, by full name, is wrong or missing. Never carries the value.
    #[error("SSM parameter {name} {problem}")]
    Parameter { name: String, problem: String },
    /// SSM could not be read during INIT.
    #[error("the secrets under {prefix} could not be read from SSM Parameter Store at start-up: {error}")]
    SecretStore {
        prefix: String,
        error: crate::secrets::ssm::SsmError,
    },
}

/// Settings of the embedded sandbox.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// `SANDBOX_DATA`: a JSON file replacing the generated data.
    pub data_file: Option<PathBuf>,
    /// `SANDBOX_PAGE_SIZE`: records per upstream call (default 200).
    pub page_size: usize,
    /// `SANDBOX_LAG_SECS`: pretend indexing lag (default 0).
    pub lag: Duration,
}

/// Everything the functions read from their environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `BRIDGE_CONNECTOR` (default `sandbox`).
    pub connector: ConnectorKind,
    /// `BRIDGE_TOKEN_KEY`: HMAC key for offsets and checkpoints (SSM `token-key` in deployments).
    pub token_key: Option<Secret>,
    /// `BRIDGE_SSM_PREFIX`, e.g. `/talkdesk-bridge/prod`: where the secrets live in SSM Parameter Store.
    /// Unset or empty: SSM is never called (local runs, the sandbox).
    pub ssm_prefix: Option<String>,
    /// `BRIDGE_SSM_TTL_SECS` (default 300): how long SSM values are used before they are read again; `0`
    /// disables caching.
    pub ssm_ttl: Duration,
    /// `BRIDGE_SSM_STALE_GRACE_SECS` (default 3600): how long after their TTL the last values read from
    /// SSM keep serving while SSM cannot be reached (outages only; `0`: never).
    pub ssm_stale_grace: Duration,
    /// `BRIDGE_INBOUND_TOKENS`: bridge tokens callers must present, for local runs (SSM `inbound-tokens`
    /// replaces them). Empty: no authentication.
    pub inbound_tokens: InboundTokens,
    /// `BRIDGE_ALLOW_UNAUTHENTICATED` (default `false`): `true` lets a deployment start without inbound
    /// tokens, because another layer authenticates callers. See [`Config::requires_inbound_tokens`].
    pub allow_unauthenticated: bool,
    /// True inside Lambda, or under a local Lambda emulator (`AWS_LAMBDA_FUNCTION_NAME` is set; `cargo
    /// lambda watch`, behind `make run`, sets it too).
    pub deployed: bool,
    /// `BRIDGE_DEFAULT_REGION` (default `US`): region of phone numbers written without a country code.
    pub default_region: Region,
    /// `BRIDGE_PAGE_SIZE` (default 1000, Zendesk's export page): most contacts per Talkdesk page. Pages are
    /// made of whole upstream pages.
    pub page_size: usize,
    /// `BRIDGE_PAGE_BUDGET_MS` (default 20000): how long one contacts page may take, measured from the
    /// invocation's start; never more than the Lambda deadline and API Gateway's 29 s leave.
    pub page_budget: Duration,
    /// `BRIDGE_TIME_MARGIN_MS` (default 3000): time kept in hand before the Lambda / API Gateway deadline.
    pub time_margin: Duration,
    /// `BRIDGE_MAX_RESPONSE_BYTES` (default 5,000,000, at most [`MAX_RESPONSE_BYTES`]): cap on the Lambda
    /// response as sent, whose limit is 6 MB (6,291,456 bytes).
    pub max_response_bytes: usize,
    /// `BRIDGE_MAX_INTERACTIONS` (default 100): most interactions per lookup.
    pub max_interactions: usize,
    /// `BRIDGE_LOOKUP_BUDGET_MS` (default 5000, at most 29000): how long an interaction lookup may take; the
    /// Lambda deadline and API Gateway's 29 s (minus `BRIDGE_TIME_MARGIN_MS`) shorten it further.
    pub lookup_budget: Duration,
    /// `BRIDGE_MAX_LOOKUP_IDENTIFIERS` (default 10, at most 100): emails searched per lookup, and as many
    /// phones; the rest are ignored.
    pub max_lookup_identifiers: usize,
    pub sandbox: SandboxConfig,
    /// `ZENDESK_*`: see [`crate::connectors::zendesk::settings`].
    pub zendesk: crate::connectors::zendesk::ZendeskConfig,
    /// `POSTGRES_*`: see [`crate::connectors::postgres::settings`].
    pub postgres: crate::connectors::postgres::PostgresConfig,
    /// `HUBSPOT_*`: see [`crate::connectors::hubspot::settings`].
    pub hubspot: crate::connectors::hubspot::HubSpotConfig,
}

/// [`parse_num`] with an upper bound as well.
fn parse_num_within<T>(get: &dyn Fn(&str) -> Option<String>, name: &'static str, default: T, min: T, max: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + Copy + std::fmt::Display,
{
    let n = parse_num(get, name, default, min)?;
    if n > max {
        return Err(ConfigError::Invalid {
            name,
            problem: format!("expected a whole number from {min} to {max}, got `{n}`"),
        });
    }
    Ok(n)
}

fn parse_num<T>(get: &dyn Fn(&str) -> Option<String>, name: &'static str, default: T, min: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    match get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => match v.parse::<T>() {
            Ok(n) if n >= min => Ok(n),
            _ => Err(ConfigError::Invalid {
                name,
                problem: format!("expected a whole number of at least {min}, got `{v}`"),
            }),
        },
    }
}

/// Reads a `true` / `false` setting (any case; unset or empty is `default`).
fn parse_bool(get: &dyn Fn(&str) -> Option<String>, name: &'static str, default: bool) -> Result<bool, ConfigError> {
    match get(name).map(|v| v.trim().to_ascii_lowercase()).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" => Ok(false),
        Some(v) => Err(ConfigError::Invalid {
            name,
            problem: format!("expected `true` or `false`, got `{v}`"),
        }),
    }
}

/// Checks `BRIDGE_SSM_PREFIX`: a path such as `/talkdesk-bridge/prod`, with a leading slash (SSM requires it
/// of hierarchical names) and without a trailing one.
fn parse_ssm_prefix(text: &str) -> Result<String, String> {
    let prefix = text.trim_end_matches('/');
    let segment_ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    match prefix.strip_prefix('/') {
        Some(rest) if rest.split('/').all(segment_ok) => Ok(prefix.to_string()),
        _ => Err(format!(
            "`{text}` is not an SSM path such as /talkdesk-bridge/prod: a leading slash, then segments of letters, \
             digits, '_', '.' or '-' separated by single slashes"
        )),
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    /// Reads configuration through `get` (the environment, or a map in tests).
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let connector_name = get("BRIDGE_CONNECTOR").unwrap_or_default();
        let connector = ConnectorKind::parse(&connector_name).ok_or_else(|| ConfigError::Invalid {
            name: "BRIDGE_CONNECTOR",
            problem: format!(
                "unknown connector `{connector_name}`; expected one of {}",
                ConnectorKind::NAMES.join(", ")
            ),
        })?;
        let region_code = get("BRIDGE_DEFAULT_REGION")
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| "US".into());
        let default_region = phone::parse_region(&region_code).ok_or_else(|| ConfigError::Invalid {
            name: "BRIDGE_DEFAULT_REGION",
            problem: format!("`{region_code}` is not an ISO 3166 region code such as US or PT"),
        })?;
        let token_key = get("BRIDGE_TOKEN_KEY").filter(|v| !v.is_empty()).map(Secret::new);
        if token_key.as_ref().is_some_and(|k| k.expose().len() < 16) {
            return Err(ConfigError::Invalid {
                name: "BRIDGE_TOKEN_KEY",
                problem: "must be at least 16 characters".into(),
            });
        }
        let ssm_prefix = match get("BRIDGE_SSM_PREFIX").map(|v| v.trim().to_string()).filter(|v| !v.is_empty()) {
            None => None,
            Some(v) => Some(parse_ssm_prefix(&v).map_err(|problem| ConfigError::Invalid {
                name: "BRIDGE_SSM_PREFIX",
                problem,
            })?),
        };
        let inbound_tokens = match get("BRIDGE_INBOUND_TOKENS").filter(|v| !v.trim().is_empty()) {
            None => InboundTokens::default(),
            Some(v) => InboundTokens::parse(&v).map_err(|problem| ConfigError::Invalid {
                name: "BRIDGE_INBOUND_TOKENS",
                problem,
            })?,
        };
        Ok(Config {
            connector,
            token_key,
            ssm_prefix,
            ssm_ttl: Duration::from_secs(parse_num(get, "BRIDGE_SSM_TTL_SECS", 300u64, 0)?),
            ssm_stale_grace: Duration::from_secs(parse_num(get, "BRIDGE_SSM_STALE_GRACE_SECS", 3600u64, 0)?),
            inbound_tokens,
            allow_unauthenticated: parse_bool(get, "BRIDGE_ALLOW_UNAUTHENTICATED", false)?,
            deployed: get("AWS_LAMBDA_FUNCTION_NAME").is_some_and(|v| !v.trim().is_empty()),
            default_region,
            page_size: parse_num(get, "BRIDGE_PAGE_SIZE", 1000usize, 1)?,
            page_budget: Duration::from_millis(parse_num(get, "BRIDGE_PAGE_BUDGET_MS", 20_000u64, 1000)?),
            time_margin: Duration::from_millis(parse_num(get, "BRIDGE_TIME_MARGIN_MS", 3000u64, 0)?),
            max_response_bytes: match parse_num(get, "BRIDGE_MAX_RESPONSE_BYTES", 5_000_000usize, 1)? {
                n if n > MAX_RESPONSE_BYTES => {
                    return Err(ConfigError::Invalid {
                        name: "BRIDGE_MAX_RESPONSE_BYTES",
                        problem: format!("at most {MAX_RESPONSE_BYTES} (Lambda refuses responses over 6,291,456 bytes), got {n}"),
                    })
                }
                n => n,
            },
            max_interactions: parse_num(get, "BRIDGE_MAX_INTERACTIONS", 100usize, 1)?,
            lookup_budget: Duration::from_millis(parse_num_within(
                get,
                "BRIDGE_LOOKUP_BUDGET_MS",
                crate::lookup::DEFAULT_BUDGET.as_millis() as u64,
                100,
                crate::sync::budget::API_GATEWAY_LIMIT.as_millis() as u64,
            )?),
            max_lookup_identifiers: parse_num_within(get, "BRIDGE_MAX_LOOKUP_IDENTIFIERS", crate::lookup::DEFAULT_MAX_IDENTIFIERS, 1, 100)?,
            sandbox: SandboxConfig {
                data_file: get("SANDBOX_DATA").filter(|v| !v.trim().is_empty()).map(PathBuf::from),
                page_size: parse_num(get, "SANDBOX_PAGE_SIZE", crate::connectors::sandbox::DEFAULT_PAGE_SIZE, 1)?,
                lag: Duration::from_secs(parse_num(get, "SANDBOX_LAG_SECS", 0u64, 0)?),
            },
            zendesk: crate::connectors::zendesk::ZendeskConfig::from_lookup(get)?,
            postgres: crate::connectors::postgres::PostgresConfig::from_lookup(get)?,
            hubspot: crate::connectors::hubspot::HubSpotConfig::from_lookup(get)?,
        })
    }

    /// Whether this configuration is a deployment reachable by anyone who learns its URL: one that reads
    /// its secrets from SSM (`BRIDGE_SSM_PREFIX` set), or that runs on Lambda with a connector other than
    /// the sandbox.
    ///
    /// The sandbox on Lambda without an SSM prefix is left out on purpose: `make run` serves the real
    /// binaries through `cargo lambda watch`, which sets `AWS_LAMBDA_FUNCTION_NAME` like Lambda does, and
    /// `sam local invoke` with `env.json` does the same; both must work without any token, and the sandbox
    /// holds no real data nor reaches any external system. Every stack of `template.yaml` sets
    /// `BRIDGE_SSM_PREFIX`, so a deployed sandbox is covered by the first rule.
    pub fn is_deployment(&self) -> bool {
        self.ssm_prefix.is_some() || (self.deployed && self.connector != ConnectorKind::Sandbox)
    }

    /// Whether the bridge must refuse to start (and a renewed read of its secrets must close the door)
    /// without inbound tokens: a deployment, unless `BRIDGE_ALLOW_UNAUTHENTICATED=true` says that another
    /// layer authenticates callers.
    pub fn requires_inbound_tokens(&self) -> bool {
        self.is_deployment() && !self.allow_unauthenticated
    }

    /// The key that signs offsets and checkpoints: the configured one, or for the sandbox alone the
    /// public development key.
    pub fn resolve_token_key(&self) -> Result<Secret, ConfigError> {
        match (&self.token_key, self.connector) {
            (Some(k), _) => Ok(k.clone()),
            (None, ConnectorKind::Sandbox) => Ok(Secret::new(SANDBOX_DEV_TOKEN_KEY)),
            (None, _) => Err(ConfigError::Missing {
                name: "BRIDGE_TOKEN_KEY",
                why: "a real connector needs its own token key (SSM parameter token-key or BRIDGE_TOKEN_KEY)",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(&move |k| map.get(k).cloned())
    }

    #[test]
    fn defaults_run_the_sandbox_with_the_documented_limits() {
        let c = config(&[]).unwrap();
        assert_eq!(c.connector, ConnectorKind::Sandbox);
        assert_eq!((c.page_size, c.max_response_bytes, c.max_interactions), (1000, 5_000_000, 100));
        assert_eq!(c.page_budget, Duration::from_secs(20));
        assert_eq!(c.time_margin, Duration::from_secs(3));
        assert_eq!((c.lookup_budget, c.max_lookup_identifiers), (Duration::from_secs(5), 10));
        assert_eq!(c.resolve_token_key().unwrap().expose(), SANDBOX_DEV_TOKEN_KEY);
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (pairs, name) in [
            (vec![("BRIDGE_CONNECTOR", "salesforce")], "BRIDGE_CONNECTOR"),
            (vec![("BRIDGE_DEFAULT_REGION", "XX")], "BRIDGE_DEFAULT_REGION"),
            (vec![("BRIDGE_PAGE_SIZE", "0")], "BRIDGE_PAGE_SIZE"),
            (vec![("BRIDGE_MAX_RESPONSE_BYTES", "lots")], "BRIDGE_MAX_RESPONSE_BYTES"),
            (vec![("BRIDGE_MAX_RESPONSE_BYTES", "6000001")], "BRIDGE_MAX_RESPONSE_BYTES"),
            (vec![("BRIDGE_PAGE_BUDGET_MS", "999")], "BRIDGE_PAGE_BUDGET_MS"),
            (vec![("BRIDGE_TOKEN_KEY", "short")], "BRIDGE_TOKEN_KEY"),
            (vec![("BRIDGE_SSM_PREFIX", "talkdesk-bridge/prod")], "BRIDGE_SSM_PREFIX"),
            (vec![("BRIDGE_SSM_PREFIX", "/talkdesk bridge")], "BRIDGE_SSM_PREFIX"),
            (vec![("BRIDGE_SSM_PREFIX", "/a//b")], "BRIDGE_SSM_PREFIX"),
            (vec![("BRIDGE_SSM_TTL_SECS", "-1")], "BRIDGE_SSM_TTL_SECS"),
            (vec![("BRIDGE_INBOUND_TOKENS", "short-token")], "BRIDGE_INBOUND_TOKENS"),
            (vec![("BRIDGE_SSM_STALE_GRACE_SECS", "an hour")], "BRIDGE_SSM_STALE_GRACE_SECS"),
            (vec![("BRIDGE_ALLOW_UNAUTHENTICATED", "yes")], "BRIDGE_ALLOW_UNAUTHENTICATED"),
            (vec![("BRIDGE_LOOKUP_BUDGET_MS", "30000")], "BRIDGE_LOOKUP_BUDGET_MS"),
            (vec![("BRIDGE_LOOKUP_BUDGET_MS", "50")], "BRIDGE_LOOKUP_BUDGET_MS"),
            (vec![("BRIDGE_MAX_LOOKUP_IDENTIFIERS", "0")], "BRIDGE_MAX_LOOKUP_IDENTIFIERS"),
            (vec![("BRIDGE_MAX_LOOKUP_IDENTIFIERS", "101")], "BRIDGE_MAX_LOOKUP_IDENTIFIERS"),
        ] {
            let err = config(&pairs).unwrap_err().to_string();
            assert!(err.starts_with(name), "{err}");
        }
    }

    #[test]
    fn without_a_prefix_ssm_is_off_and_values_are_cached_for_five_minutes() {
        let c = config(&[("BRIDGE_SSM_PREFIX", " ")]).unwrap();
        assert_eq!(c.ssm_prefix, None);
        assert_eq!(c.ssm_ttl, Duration::from_secs(300));
        assert!(!c.inbound_tokens.required() && !c.deployed);
        assert_eq!(c.ssm_stale_grace, Duration::from_secs(3600));
        assert!(!c.allow_unauthenticated);
    }

    #[test]
    fn a_deployment_is_an_ssm_prefix_or_lambda_with_a_real_connector_and_must_authenticate_unless_allowed() {
        let lambda = ("AWS_LAMBDA_FUNCTION_NAME", "contacts");
        let prefix = ("BRIDGE_SSM_PREFIX", "/talkdesk-bridge/prod");
        let zendesk = ("BRIDGE_CONNECTOR", "zendesk");
        let allow = ("BRIDGE_ALLOW_UNAUTHENTICATED", "TRUE");
        for (pairs, deployment) in [
            (vec![], false),
            (vec![zendesk], false),
            // `make run` (cargo lambda watch) and `sam local invoke` with env.json: the sandbox on "Lambda".
            (vec![lambda], false),
            (vec![lambda, ("BRIDGE_SSM_PREFIX", "")], false),
            (vec![lambda, zendesk], true),
            (vec![prefix], true),
            (vec![prefix, lambda], true),
            (vec![prefix, zendesk], true),
        ] {
            let c = config(&pairs).unwrap();
            assert_eq!(c.is_deployment(), deployment, "{pairs:?}");
            assert_eq!(c.requires_inbound_tokens(), deployment, "{pairs:?}");
            let mut allowed = pairs.clone();
            allowed.push(allow);
            let c = config(&allowed).unwrap();
            assert!(c.allow_unauthenticated && !c.requires_inbound_tokens(), "{allowed:?}");
        }
    }

    #[test]
    fn the_ssm_prefix_loses_its_trailing_slash_and_a_zero_ttl_disables_caching() {
        let c = config(&[
            ("BRIDGE_SSM_PREFIX", "/talkdesk-bridge/prod/"),
            ("BRIDGE_SSM_TTL_SECS", "0"),
            ("BRIDGE_INBOUND_TOKENS", "local-token-0123456789,local-token-abcdefghij"),
            ("AWS_LAMBDA_FUNCTION_NAME", "contacts"),
        ])
        .unwrap();
        assert_eq!(c.ssm_prefix.as_deref(), Some("/talkdesk-bridge/prod"));
        assert_eq!(c.ssm_ttl, Duration::ZERO);
        assert_eq!(c.inbound_tokens.len(), 2);
        assert!(c.deployed);
        assert!(!format!("{c:?}").contains("local-token"), "Debug shows no token");
    }
}
