//! External systems, one folder each, all behind [`Connector`].
//!
//! Adding a system means adding a folder here and one line in [`build`]; nothing else changes.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::sync::{Position, SyncKey};
use crate::talkdesk::{Auth, Contact, Interaction};

pub mod postgres;
pub mod sandbox;
pub mod zendesk;

/// One contact with the instant the external system last changed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactRecord {
    pub updated_at: DateTime<Utc>,
    pub contact: Contact,
}

impl ContactRecord {
    pub fn key(&self) -> SyncKey {
        SyncKey::new(self.updated_at, self.contact.id.clone())
    }
}

/// What the engine asks a connector for: records after `after` in `(updated_at, id)` order, updated no
/// later than `until`, at most `limit` of them. A connector with a cursor of its own gets back the cursor it
/// returned; it may then ignore `after` (the engine drops records at or before `after`).
#[derive(Clone, Copy)]
pub struct ContactQuery<'a> {
    pub after: Option<&'a Position>,
    pub cursor: Option<&'a str>,
    pub until: DateTime<Utc>,
    pub limit: usize,
    /// The page's time budget: a connector may wait out a `Retry-After` only while it lasts.
    pub budget: &'a dyn crate::sync::Budget,
}

/// One upstream page of contacts.
#[derive(Debug, Clone, Default)]
pub struct ContactBatch {
    /// Ascending by `(updated_at, id)`.
    pub records: Vec<ContactRecord>,
    /// The provider's cursor for the page after this one, if it has cursors.
    pub next_cursor: Option<String>,
    /// True when nothing after these records is updated at or before `until`.
    pub done: bool,
}

/// How Talkdesk identified the person, with phones already in E.164.
#[derive(Debug, Clone, Default)]
pub struct InteractionQuery {
    pub external_id: Option<String>,
    pub emails: Vec<String>,
    pub phones: Vec<String>,
    /// Only types this connector supports, never empty.
    pub types: Vec<String>,
    /// The most interactions the bridge will return; a connector may stop fetching beyond it.
    pub limit: usize,
}

/// Which identifier found something, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LookupHits {
    pub external_id: usize,
    pub email: usize,
    pub phone: usize,
}

/// What a lookup found.
#[derive(Debug, Clone, Default)]
pub struct InteractionBatch {
    pub interactions: Vec<Interaction>,
    pub hits: LookupHits,
}

/// A failure talking to an external system, or in the credentials given for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    /// The `auth` fields are missing or malformed: nothing was sent upstream.
    #[error("`auth.{field}` {problem}")]
    InvalidAuth { field: &'static str, problem: String },
    #[error("{system} rejected the credentials")]
    Unauthorized { system: &'static str },
    #[error("{message}")]
    Forbidden { message: String },
    #[error("{system} is rate limiting the bridge; retry later")]
    RateLimited {
        system: &'static str,
        retry_after: Option<Duration>,
    },
    #[error("{system} is unavailable; retry later")]
    Unavailable {
        system: &'static str,
        retry_after: Option<Duration>,
    },
    #[error("{system} did not answer in time")]
    Timeout { system: &'static str },
    #[error("{message}")]
    BadGateway { message: String },
}

impl ConnectorError {
    /// A failure worth retrying later: a page that already holds records returns them instead.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ConnectorError::RateLimited { .. }
                | ConnectorError::Unavailable { .. }
                | ConnectorError::Timeout { .. }
                | ConnectorError::BadGateway { .. }
        )
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ConnectorError::RateLimited { retry_after, .. } | ConnectorError::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// An `auth` field a deployment may keep in SSM (`{connector}/{name}`), and when the stored value may fill a
/// request that lacks the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CredentialField {
    pub name: &'static str,
    /// Not filled when the request gives any of these fields: the request signs in another way, and its
    /// own credentials must be the ones used.
    pub unless_given: &'static [&'static str],
    /// Filled only when the request gives none of these fields or gives the stored value: stored
    /// credentials never go to an account other than the one they were stored for.
    pub bound_to: &'static [&'static str],
}

/// An external system the bridge reads contacts and interactions from.
#[async_trait]
pub trait Connector: Send + Sync {
    /// Short lowercase name, as in `BRIDGE_CONNECTOR`.
    fn name(&self) -> &'static str;

    /// Interaction types this system can return, e.g. `["ticket"]`.
    fn interaction_types(&self) -> &[&'static str];

    /// The most records one upstream request may return.
    fn max_page_size(&self) -> usize;

    /// How long after a change the system's listing may still miss it. Each sync run stops at
    /// `run start - lag` so a late-indexed change is picked up by the next run.
    fn indexing_lag(&self) -> Duration;

    /// The `auth` fields a single-tenant deployment may keep in SSM instead of Talkdesk's configuration, as
    /// `{name}/{field}` under the prefix (e.g. `zendesk/api_token`). A field the request gives wins.
    fn credential_fields(&self) -> &'static [CredentialField] {
        &[]
    }

    /// Secrets of the deployment itself (e.g. a database password) that the connector reads from SSM as
    /// `{name}/{secret}` under the prefix. Unlike credential fields they never come from a request: the
    /// stored value always replaces a request's field of the same name in `auth`, and a request's own
    /// value is removed when nothing is stored.
    fn deployment_secrets(&self) -> &'static [&'static str] {
        &[]
    }

    /// Called once at cold start, after the deployment's secrets are read (`stored` holds them as `auth`
    /// fields): a connector may connect and check its configuration against the external system. An error
    /// fails INIT; an unreachable system should not (requests then answer 503 until it is back).
    async fn prepare(&self, _stored: &Auth) -> Result<(), crate::config::ConfigError> {
        Ok(())
    }

    /// Checks the `auth` fields (without calling upstream) and names the account they belong to, so
    /// offsets and checkpoints can be bound to it.
    fn account(&self, auth: &Auth) -> Result<String, ConnectorError>;

    /// One upstream page of contacts, as described by [`ContactQuery`].
    async fn contacts(&self, auth: &Auth, query: &ContactQuery<'_>) -> Result<ContactBatch, ConnectorError>;

    /// Every interaction of the given types with the person identified by the query. The engine merges,
    /// removes duplicates, sorts and caps them.
    async fn interactions(&self, auth: &Auth, query: &InteractionQuery) -> Result<InteractionBatch, ConnectorError>;
}

/// Which connector a deployment uses (`BRIDGE_CONNECTOR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorKind {
    Sandbox,
    Zendesk,
    Postgres,
}

impl ConnectorKind {
    pub const NAMES: &'static [&'static str] = &["sandbox", "zendesk", "postgres"];

    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "" | "sandbox" => Some(ConnectorKind::Sandbox),
            "zendesk" => Some(ConnectorKind::Zendesk),
            "postgres" => Some(ConnectorKind::Postgres),
            _ => None,
        }
    }
}

/// Builds the configured connector once, at cold start.
pub fn build(config: &crate::Config) -> Result<Arc<dyn Connector>, crate::config::ConfigError> {
    Ok(match config.connector {
        ConnectorKind::Sandbox => Arc::new(sandbox::Sandbox::from_config(config)?),
        ConnectorKind::Zendesk => Arc::new(zendesk::Zendesk::from_config(config)?),
        ConnectorKind::Postgres => Arc::new(postgres::Postgres::from_config(config)?),
    })
}
