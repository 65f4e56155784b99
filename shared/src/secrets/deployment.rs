//! The deployment's own secrets, as in force for each request: the key that signs offsets and checkpoints,
//! the bridge tokens callers must present, and (single-tenant deployments) stored connector credentials.
//!
//! Where they come from:
//! - With `BRIDGE_SSM_PREFIX` set, from SSM Parameter Store under that prefix: [`TOKEN_KEY`],
//!   [`TOKEN_KEY_PREVIOUS`], [`INBOUND_TOKENS`], and `{connector}/{field}` for each field the connector
//!   declares ([`Connector::credential_fields`]) and each secret of its own
//!   ([`Connector::deployment_secrets`], e.g. `postgres/password`). They are all read with one batched call during INIT and
//!   again, with one call, once the TTL has passed. A name SSM does not hold costs nothing until then.
//! - Without it (local runs), from `BRIDGE_TOKEN_KEY` and `BRIDGE_INBOUND_TOKENS`, and for the sandbox
//!   alone the public development key. A value in SSM replaces the variable.
//!
//! Rules, checked at INIT (which then fails) and at each refresh (the request then gets a 503):
//! - a connector other than the sandbox needs a token key;
//! - stored connector credentials (or deployment secrets) need inbound tokens: without them anyone with
//!   the URL could read the external system.
//!
//! Values are used until their TTL ends, then read again. If that read fails (SSM down, a value made
//! invalid), requests are refused with a 503 until a read succeeds: expired secrets are never used.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use crate::config::{Config, ConfigError, SANDBOX_DEV_TOKEN_KEY};
use crate::connectors::{Connector, ConnectorKind, CredentialField};
use crate::secrets::inbound::InboundTokens;
use crate::secrets::ssm::{is_fresh, SsmCache};
use crate::secrets::Secret;
use crate::sync::TokenSigner;
use crate::talkdesk::Auth;

/// The HMAC key that signs offsets and checkpoints.
pub const TOKEN_KEY: &str = "token-key";
/// The key before the last rotation: tokens signed with it are still accepted, none are issued.
pub const TOKEN_KEY_PREVIOUS: &str = "token-key-previous";
/// The bridge tokens callers must present, separated by commas or newlines.
pub const INBOUND_TOKENS: &str = "inbound-tokens";
/// The shortest token key accepted (as for `BRIDGE_TOKEN_KEY`).
pub const MIN_TOKEN_KEY_CHARS: usize = 16;

/// The secrets in force for one request. `Debug` names what is held, never a value.
pub struct SecretSet {
    signer: TokenSigner,
    inbound: InboundTokens,
    credentials: Vec<(CredentialField, Secret)>,
    /// Every deployment secret the connector declares, with its stored value if SSM holds one.
    deployment: Vec<(&'static str, Option<Secret>)>,
}

impl SecretSet {
    /// Signs new tokens with the current key; verifies with it or the previous one.
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

/// A request could not get its secrets: SSM is down or holds an invalid value, and the values read
/// before have expired. The cause is logged where it happens.
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
        }
    }

    fn credential_name(&self, field: &CredentialField) -> String {
        format!("{}/{}", self.connector, field.name)
    }

    /// Every name read from SSM, relative to the prefix.
    fn names(&self) -> Vec<String> {
        let mut names = vec![TOKEN_KEY.to_owned(), TOKEN_KEY_PREVIOUS.to_owned(), INBOUND_TOKENS.to_owned()];
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
    let previous = ssm(TOKEN_KEY_PREVIOUS)
        .map(|value| token_key(&value, || full(TOKEN_KEY_PREVIOUS)))
        .transpose()?;
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
    Ok(SecretSet {
        signer: TokenSigner::new(key).with_previous(previous),
        inbound,
        credentials,
        deployment,
    })
}

struct Current {
    set: Arc<SecretSet>,
    read_at: Instant,
}

/// The deployment's secrets: fixed for a local run, read from SSM and renewed after the TTL otherwise.
pub struct DeploymentSecrets {
    local: Local,
    ssm: Option<SsmCache>,
    current: RwLock<Current>,
}

impl DeploymentSecrets {
    /// Secrets from the environment alone (no `BRIDGE_SSM_PREFIX`).
    pub fn from_environment(config: &Config, connector: &dyn Connector) -> Result<Self, ConfigError> {
        let local = Local::new(config, connector);
        let set = resolve(&local, None, &|_| None)?;
        warn_if_open(config, &set, "set BRIDGE_INBOUND_TOKENS");
        Ok(DeploymentSecrets {
            local,
            ssm: None,
            current: RwLock::new(Current {
                set: Arc::new(set),
                read_at: Instant::now(),
            }),
        })
    }

    /// Secrets from SSM under the cache's prefix, read now with one batched call (the INIT phase), with
    /// the environment's values where SSM holds none. Fails if SSM cannot be read or breaks a rule.
    pub async fn from_ssm(config: &Config, connector: &dyn Connector, cache: SsmCache) -> Result<Self, ConfigError> {
        let local = Local::new(config, connector);
        let names = local.names();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let parameters = cache.get_many(&refs).await.map_err(|error| ConfigError::SecretStore {
            prefix: cache.prefix().to_owned(),
            error,
        })?;
        let read_at = cache.now();
        let set = resolve(&local, Some(cache.prefix()), &|name| parameters.get(name).cloned())?;
        tracing::info!(
            prefix = cache.prefix(),
            ttl_secs = cache.ttl().as_secs(),
            token_key = if parameters.get(TOKEN_KEY).is_some() { "ssm" } else { "environment" },
            previous_token_key = parameters.get(TOKEN_KEY_PREVIOUS).is_some(),
            inbound_tokens = set.inbound.len(),
            stored_credentials = ?set.stored_credentials(),
            not_in_ssm = ?parameters.missing(),
            "secrets read from SSM"
        );
        warn_if_open(config, &set, "store the inbound-tokens parameter");
        Ok(DeploymentSecrets {
            local,
            current: RwLock::new(Current {
                set: Arc::new(set),
                read_at,
            }),
            ssm: Some(cache),
        })
    }

    /// The secrets in force: the ones read last while their TTL lasts, then a fresh read from SSM.
    pub async fn current(&self) -> Result<Arc<SecretSet>, SecretsUnavailable> {
        let Some(cache) = &self.ssm else {
            return Ok(self.last());
        };
        {
            let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
            if is_fresh(current.read_at, cache.now(), cache.ttl()) {
                return Ok(current.set.clone());
            }
        }
        let names = self.local.names();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let read = match cache.get_many(&refs).await {
            Ok(parameters) => resolve(&self.local, Some(cache.prefix()), &|name| parameters.get(name).cloned()),
            Err(error) => Err(ConfigError::SecretStore {
                prefix: cache.prefix().to_owned(),
                error,
            }),
        };
        match read {
            Ok(set) => {
                let set = Arc::new(set);
                tracing::debug!(
                    prefix = cache.prefix(),
                    inbound_tokens = set.inbound.len(),
                    "secrets renewed from SSM"
                );
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Current {
                    set: set.clone(),
                    read_at: cache.now(),
                };
                Ok(set)
            }
            Err(error) => {
                tracing::error!(prefix = cache.prefix(), error = %error, "secrets could not be renewed; requests get 503 until they are");
                Err(SecretsUnavailable)
            }
        }
    }

    /// The secrets read last, expired or not (for tools and tests; requests use [`Self::current`]).
    pub fn last(&self) -> Arc<SecretSet> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).set.clone()
    }

    /// The cache behind these secrets, when they come from SSM.
    pub fn ssm(&self) -> Option<&SsmCache> {
        self.ssm.as_ref()
    }
}

impl fmt::Debug for DeploymentSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeploymentSecrets")
            .field("ssm", &self.ssm)
            .field("current", &self.last())
            .finish()
    }
}

fn warn_if_open(config: &Config, set: &SecretSet, remedy: &str) {
    if config.deployed && !set.inbound.required() {
        tracing::warn!(remedy, "no inbound tokens are configured: anyone with the URL can call this bridge");
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
        }
    }

    #[test]
    fn a_deployment_secret_is_read_as_connector_slash_name() {
        assert_eq!(
            local_postgres().names(),
            ["token-key", "token-key-previous", "inbound-tokens", "postgres/password"]
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
