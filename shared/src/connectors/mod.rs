//! External systems, one folder each, all behind [`Connector`].
//!
//! Adding a system means adding a folder here and one line in [`build`]; nothing else changes.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::sync::{Position, SyncKey};
use crate::talkdesk::{Auth, Contact, Interaction};

pub mod hubspot;
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

/// What the engine asks a connector for: one whole upstream page of at most `limit` records after `after`,
/// updated no later than `until`, in the connector's [`Order`]. A connector with a cursor of its own gets
/// back the cursor it returned; it may then ignore `after` (the engine drops records at or before `after`
/// when it re-reads). Without a cursor it starts from `after`, and may include records of `after`'s own
/// instant or second (the engine drops what it already returned).
#[derive(Clone, Copy)]
pub struct ContactQuery<'a> {
    pub after: Option<&'a Position>,
    pub cursor: Option<&'a str>,
    pub until: DateTime<Utc>,
    /// The page size to ask the provider for: the connector's [`Connector::max_page_size`] unless the
    /// deployment's Talkdesk page is smaller.
    pub limit: usize,
    /// Only for [`Order::UpdatedAt`] connectors: return the records updated exactly at this instant whose id
    /// comes after `after`'s id, ascending by id (the engine drains a tie larger than one upstream page).
    pub only_at: Option<DateTime<Utc>>,
    /// The page's time budget: a request should not outlive it.
    pub budget: &'a dyn crate::sync::Budget,
}

/// What a provider said of its rate limit on its last answer (e.g. Zendesk's
/// `Zendesk-RateLimit-incremental-exports-cursor: total=10; remaining=3; resets=41`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Requests still allowed in the current window.
    pub remaining: u32,
    /// When the window resets, from the moment of the answer.
    pub resets_in: Duration,
}

/// One upstream page of contacts.
#[derive(Debug, Clone, Default)]
pub struct ContactBatch {
    /// In the connector's [`Order`]; the engine sorts each batch itself, so order within a batch is free.
    pub records: Vec<ContactRecord>,
    /// The provider's cursor for the page after this one, if it has cursors.
    pub next_cursor: Option<String>,
    /// True when nothing after these records is updated at or before `until`.
    pub done: bool,
    /// The provider's rate-limit state after this request, when it says.
    pub quota: Option<Quota>,
}

/// The order a connector's contact stream follows across requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Ascending `(updated_at, id)`: a cursor continues right after the last record returned, and nothing
    /// at or before it comes later. The engine still checks, and rewinds when a record breaks the promise.
    #[default]
    Strict,
    /// Ascending `(updated_at, id)` enforced by the source itself, e.g. a SQL keyset over a unique sort key:
    /// a record can never be placed after one that follows it. Handled as [`Order::Strict`], except that a
    /// checkpoint keeps the exact position instead of stopping before the last record's instant, so a sync
    /// resumed from it does not send a large tie again.
    Keyset,
    /// Ascending `updated_at` only: records sharing an instant come in any id order, also across requests.
    /// The connector resumes from an instant (inclusive) and supports [`ContactQuery::only_at`].
    UpdatedAt,
}

/// One identifier the lookup layer searches for, already normalised: an email trimmed and lowercased, a
/// phone in E.164.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identifier {
    Email(String),
    Phone(String),
}

impl Identifier {
    /// `email` or `phone`: what logs and metrics say instead of the value.
    pub fn kind(&self) -> &'static str {
        match self {
            Identifier::Email(_) => "email",
            Identifier::Phone(_) => "phone",
        }
    }

    pub fn value(&self) -> &str {
        match self {
            Identifier::Email(v) | Identifier::Phone(v) => v,
        }
    }
}

/// A person in the external system, by the system's own id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PersonRef(pub String);

/// A person a search returned, with the emails and phones the answer shows, as the system stores them (the
/// lookup layer normalises them before comparing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Candidate {
    pub person: PersonRef,
    pub emails: Vec<String>,
    pub phones: Vec<String>,
    /// True when these are all of the person's emails and phones; false when the system keeps more
    /// (Zendesk's secondary identities), which [`Connector::identifiers_of`] reads.
    pub complete: bool,
}

/// The most upstream HTTP requests one lookup call of a connector may send, retries included. The lookup
/// layer multiplies them by its caps to state a lookup's request bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LookupCosts {
    /// One [`Connector::find_people`].
    pub search: usize,
    /// One [`Connector::identifiers_of`].
    pub identifiers: usize,
    /// One [`Connector::interactions_of`] for the lookup's interaction limit.
    pub fetch: usize,
    /// The most requests one [`Connector::interactions_of`] has in flight at once (0 is taken as 1: one
    /// after another). The lookup layer gives such a call as many of its in-flight slots.
    pub fetch_in_flight: usize,
}

impl LookupCosts {
    /// Requests one interactions fetch may have in flight at once: at least one.
    pub fn fetch_width(&self) -> usize {
        self.fetch_in_flight.max(1)
    }
}

/// Which identifier found something, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LookupHits {
    pub external_id: usize,
    pub email: usize,
    pub phone: usize,
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
    /// The provider refused the cursor it issued (expired, or no longer valid): the engine restarts from the
    /// keyset position instead. Answered 502 only if it ever escapes the engine.
    #[error("{system} refused its own cursor")]
    CursorRejected { system: &'static str },
    /// The provider refused a request that will not succeed if repeated; the message says what to do.
    #[error("{message}")]
    Rejected { message: String },
    /// The connector does not offer this Talkdesk operation (e.g. agent synchronization): nothing was sent.
    #[error("{message}")]
    Unsupported { message: String },
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

/// One upstream page of agents ([`Connector::agents`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentPage {
    pub agents: Vec<crate::talkdesk::Agent>,
    /// The provider's cursor for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
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

    /// The order of the contact stream across requests (see [`Order`]).
    fn order(&self) -> Order {
        Order::Strict
    }

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

    /// One upstream page of contacts, as described by [`ContactQuery`]. A rate limit is reported, not waited
    /// out ([`ConnectorError::RateLimited`], [`ContactBatch::quota`]): the engine paces every connector.
    async fn contacts(&self, auth: &Auth, query: &ContactQuery<'_>) -> Result<ContactBatch, ConnectorError>;

    /// The system's name as people write it, for error messages (`Zendesk`). Defaults to [`Connector::name`].
    fn display_name(&self) -> &'static str {
        self.name()
    }

    // The interaction lookup. The lookup layer (`crate::lookup`) owns the rules: deadline, caps,
    // deduplication, concurrency, exact matching of identifiers and partial answers. A connector only says
    // how its system finds and reads one thing. Each call sends its requests one after another (never two at
    // once), except an interactions fetch, which may have up to [`LookupCosts::fetch_in_flight`] at once:
    // the lookup layer counts every call by its width, so its bound on calls in flight is a bound on
    // requests in flight.

    /// The person `contact_external_id` names, if it can name one in this system, without any request
    /// (e.g. Zendesk user ids are numbers; anything else names nobody and is never sent).
    fn person_by_external_id(&self, external_id: &str) -> Option<PersonRef>;

    /// The most requests each lookup call may send, when at most `limit` interactions are wanted.
    fn lookup_costs(&self, limit: usize) -> LookupCosts;

    /// The live people whose email or phone may be `identifier`: one search. The system's search may be
    /// loose (substrings, number endings); the lookup layer keeps only exact matches.
    async fn find_people(
        &self,
        auth: &Auth,
        identifier: &Identifier,
        budget: &dyn crate::sync::Budget,
    ) -> Result<Vec<Candidate>, ConnectorError>;

    /// How the lookup's identifiers are searched: each list is one [`Connector::find_people_batch`] call.
    /// Every identifier must be in exactly one list (the lookup layer checks, and searches one identifier a
    /// call otherwise), so there are never more searches than identifiers. The default: one identifier a
    /// search. A system that can OR several identifiers in one request groups them as its limits allow.
    fn search_batches(&self, identifiers: &[Identifier]) -> Vec<Vec<Identifier>> {
        identifiers.iter().map(|i| vec![i.clone()]).collect()
    }

    /// The live people whose email or phone may be one of `identifiers` (one list of
    /// [`Connector::search_batches`]), listed under each identifier they may match; a candidate may be
    /// listed under several (the lookup layer keeps only exact matches, per identifier). One search: a
    /// failure fails the whole list. The default calls [`Connector::find_people`] for each identifier, one
    /// after another.
    async fn find_people_batch(
        &self,
        auth: &Auth,
        identifiers: &[Identifier],
        budget: &dyn crate::sync::Budget,
    ) -> Result<Vec<(Identifier, Vec<Candidate>)>, ConnectorError> {
        let mut out = Vec::with_capacity(identifiers.len());
        for identifier in identifiers {
            out.push((identifier.clone(), self.find_people(auth, identifier, budget).await?));
        }
        Ok(out)
    }

    /// Every email and phone of `person` (a candidate a search showed incompletely), as a complete
    /// [`Candidate`]; empty when the person does not exist.
    async fn identifiers_of(&self, auth: &Auth, person: &PersonRef, budget: &dyn crate::sync::Budget) -> Result<Candidate, ConnectorError>;

    /// Up to `limit` of `person`'s interactions of the given `types` (only types this connector supports,
    /// never empty), newest first; `None` when the person does not exist. The lookup layer merges,
    /// deduplicates, sorts and caps them.
    async fn interactions_of(
        &self,
        auth: &Auth,
        person: &PersonRef,
        types: &[String],
        limit: usize,
        budget: &dyn crate::sync::Budget,
    ) -> Result<Option<Vec<Interaction>>, ConnectorError>;

    // Talkdesk's authorization validation and agent synchronization. A connector that does not offer one
    // keeps the default, which answers 501 `not_supported` without calling upstream.

    /// Checks the credentials in `auth` with the cheapest authenticated call that also proves every
    /// permission the integration needs (e.g. that a Zendesk user is an admin, who alone may read the
    /// incremental export). `Ok` when everything works; [`ConnectorError::InvalidAuth`],
    /// [`ConnectorError::Unauthorized`] or [`ConnectorError::Forbidden`] (with a message saying what is
    /// missing) when the credentials cannot work; a transient error when the system could not tell.
    async fn validate(&self, _auth: &Auth, _budget: &dyn crate::sync::Budget) -> Result<(), ConnectorError> {
        Err(ConnectorError::Unsupported {
            message: format!("the {} connector does not support authorization validation", self.display_name()),
        })
    }

    /// One upstream page of the system's agents, after `cursor` (a `next_cursor` this connector returned;
    /// `None` for the first page). `crate::agents` follows the pages, keeps the budget and the byte cap, and
    /// fails rather than answer an incomplete list.
    async fn agents(&self, _auth: &Auth, _cursor: Option<&str>, _budget: &dyn crate::sync::Budget) -> Result<AgentPage, ConnectorError> {
        Err(ConnectorError::Unsupported {
            message: format!("the {} connector does not support agent synchronization", self.display_name()),
        })
    }
}

/// Which connector a deployment uses (`BRIDGE_CONNECTOR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorKind {
    Sandbox,
    Zendesk,
    Postgres,
    HubSpot,
}

impl ConnectorKind {
    pub const NAMES: &'static [&'static str] = &["sandbox", "zendesk", "postgres", "hubspot"];

    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "" | "sandbox" => Some(ConnectorKind::Sandbox),
            "zendesk" => Some(ConnectorKind::Zendesk),
            "postgres" => Some(ConnectorKind::Postgres),
            "hubspot" => Some(ConnectorKind::HubSpot),
            _ => None,
        }
    }
}

impl ConnectorKind {
    /// What the connector says of itself in Talkdesk's configuration document (name, `auth` fields,
    /// interaction types), from the configuration alone: nothing is connected.
    pub fn integration(self, config: &crate::Config) -> crate::talkdesk::registration::Integration {
        match self {
            ConnectorKind::Sandbox => sandbox::integration(config),
            ConnectorKind::Zendesk => zendesk::integration(config),
            ConnectorKind::Postgres => postgres::integration(config),
            ConnectorKind::HubSpot => hubspot::integration(config),
        }
    }
}

/// Builds the configured connector once, at cold start.
pub fn build(config: &crate::Config) -> Result<Arc<dyn Connector>, crate::config::ConfigError> {
    Ok(match config.connector {
        ConnectorKind::Sandbox => Arc::new(sandbox::Sandbox::from_config(config)?),
        ConnectorKind::Zendesk => Arc::new(zendesk::Zendesk::from_config(config)?),
        ConnectorKind::Postgres => Arc::new(postgres::Postgres::from_config(config)?),
        ConnectorKind::HubSpot => Arc::new(hubspot::HubSpot::from_config(config)?),
    })
}
