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
    /// `BRIDGE_INBOUND_TOKENS`: bridge tokens callers must present, for local runs (SSM `inbound-tokens`
    /// replaces them). Empty: no authentication.
    pub inbound_tokens: InboundTokens,
    /// True inside Lambda (`AWS_LAMBDA_FUNCTION_NAME` is set).
    pub deployed: bool,
    /// `BRIDGE_DEFAULT_REGION` (default `US`): region of phone numbers written without a country code.
    pub default_region: Region,
    /// `BRIDGE_PAGE_SIZE` (default 500): most contacts per Talkdesk page.
    pub page_size: usize,
    /// `BRIDGE_TIME_MARGIN_MS` (default 3000): time kept in hand before the Lambda / API Gateway deadline.
    pub time_margin: Duration,
    /// `BRIDGE_MAX_RESPONSE_BYTES` (default 5,000,000; Lambda's limit is 6 MB).
    pub max_response_bytes: usize,
    /// `BRIDGE_MAX_INTERACTIONS` (default 100): most interactions per lookup.
    pub max_interactions: usize,
    pub sandbox: SandboxConfig,
    /// `ZENDESK_*`: see [`crate::connectors::zendesk::settings`].
    pub zendesk: crate::connectors::zendesk::ZendeskConfig,
    /// `POSTGRES_*`: see [`crate::connectors::postgres::settings`].
    pub postgres: crate::connectors::postgres::PostgresConfig,
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
            inbound_tokens,
            deployed: get("AWS_LAMBDA_FUNCTION_NAME").is_some_and(|v| !v.trim().is_empty()),
            default_region,
            page_size: parse_num(get, "BRIDGE_PAGE_SIZE", 500usize, 1)?,
            time_margin: Duration::from_millis(parse_num(get, "BRIDGE_TIME_MARGIN_MS", 3000u64, 0)?),
            max_response_bytes: parse_num(get, "BRIDGE_MAX_RESPONSE_BYTES", 5_000_000usize, 1)?,
            max_interactions: parse_num(get, "BRIDGE_MAX_INTERACTIONS", 100usize, 1)?,
            sandbox: SandboxConfig {
                data_file: get("SANDBOX_DATA").filter(|v| !v.trim().is_empty()).map(PathBuf::from),
                page_size: parse_num(get, "SANDBOX_PAGE_SIZE", crate::connectors::sandbox::DEFAULT_PAGE_SIZE, 1)?,
                lag: Duration::from_secs(parse_num(get, "SANDBOX_LAG_SECS", 0u64, 0)?),
            },
            zendesk: crate::connectors::zendesk::ZendeskConfig::from_lookup(get)?,
            postgres: crate::connectors::postgres::PostgresConfig::from_lookup(get)?,
        })
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
        assert_eq!((c.page_size, c.max_response_bytes, c.max_interactions), (500, 5_000_000, 100));
        assert_eq!(c.time_margin, Duration::from_secs(3));
        assert_eq!(c.resolve_token_key().unwrap().expose(), SANDBOX_DEV_TOKEN_KEY);
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (pairs, name) in [
            (vec![("BRIDGE_CONNECTOR", "salesforce")], "BRIDGE_CONNECTOR"),
            (vec![("BRIDGE_DEFAULT_REGION", "XX")], "BRIDGE_DEFAULT_REGION"),
            (vec![("BRIDGE_PAGE_SIZE", "0")], "BRIDGE_PAGE_SIZE"),
            (vec![("BRIDGE_MAX_RESPONSE_BYTES", "lots")], "BRIDGE_MAX_RESPONSE_BYTES"),
            (vec![("BRIDGE_TOKEN_KEY", "short")], "BRIDGE_TOKEN_KEY"),
            (vec![("BRIDGE_SSM_PREFIX", "talkdesk-bridge/prod")], "BRIDGE_SSM_PREFIX"),
            (vec![("BRIDGE_SSM_PREFIX", "/talkdesk bridge")], "BRIDGE_SSM_PREFIX"),
            (vec![("BRIDGE_SSM_PREFIX", "/a//b")], "BRIDGE_SSM_PREFIX"),
            (vec![("BRIDGE_SSM_TTL_SECS", "-1")], "BRIDGE_SSM_TTL_SECS"),
            (vec![("BRIDGE_INBOUND_TOKENS", "short-token")], "BRIDGE_INBOUND_TOKENS"),
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
