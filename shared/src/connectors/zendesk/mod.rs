//! Zendesk Support: contacts from the cursor-based Incremental User Export, interactions from the tickets
//! a person requested.
//!
//! - [`credentials`]: the `auth` fields, checked before any request (subdomain, API token or OAuth token).
//! - [`settings`]: `ZENDESK_*` deployment settings.
//! - [`client`]: the HTTP client, status mapping and `Retry-After`.
//! - [`mapping`]: Zendesk JSON to Talkdesk contacts and interactions (pure).
//!
//! Contact sync: the first call of a run asks `GET /api/v2/incremental/users/cursor` with `start_time` (the
//! whole second of the engine's resume position, at least a minute in the past); later calls pass back
//! Zendesk's `after_cursor`, which the engine keeps in its offset. Pages come in ascending
//! `(updated_at, id)` order and are passed on in that order; empty pages are followed until
//! `end_of_stream`. Deleted, suspended and (unless `ZENDESK_INCLUDE_STAFF`) agent and admin users are not
//! emitted; they are counted and logged by id. Identities are sideloaded (`include=identities`);
//! organization names come from `organizations/show_many` in batches of 100 and are cached per
//! `(subdomain, organization id)` for [`ORG_CACHE_TTL`].
//!
//! Interaction lookup (scheduled by `crate::lookup`, which owns the deadline, caps, exact matching and
//! partial answers): the external id is the user id, a number, so it needs no request; an email or phone is
//! one `users/search` (`email:{email}`, `phone:*{national number}`) whose live users are candidates showing
//! their primary email and phone; a candidate's secondary identities are one `users/{id}/identities`; a
//! person's interactions are their requested tickets, newest first, up to [`MAX_TICKET_PAGES`] pages of 100.
//! Each call may repeat its request once after a 429/503 whose `Retry-After` is at most 2 s and ends
//! before the lookup's deadline ([`LookupCosts`]). One `users/search` for several `email:` terms at once
//! is not used: its OR semantics are only a community claim, not documented by Zendesk.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::stream::{self, StreamExt, TryStreamExt};

use super::{
    AgentPage, Candidate, Connector, ConnectorError, ContactBatch, ContactQuery, ContactRecord, Identifier, LookupCosts, PersonRef,
};
use crate::config::{Config, ConfigError};
use crate::sync::Budget;
use crate::talkdesk::registration::{AuthField, Integration};
use crate::talkdesk::{Auth, Interaction};

pub mod client;
pub mod credentials;
pub mod mapping;
pub mod settings;

use client::{Op, Patience, ZendeskHttp, SYSTEM};
pub use credentials::{valid_subdomain, Credentials};
use mapping::{ExportPage, Identities, IdentityKind, Me, NotAnAgent, Organizations, Skip, TicketPage, User, UserPage, Users};
pub use settings::{UserFieldMap, ZendeskConfig};

/// Zendesk's largest export page.
pub const MAX_EXPORT_PAGE: usize = 1000;
/// Each run stops this long before it starts: Zendesk leaves out the most recent minute, plus a margin for
/// clock skew and slow requests.
pub const INDEXING_LAG: Duration = Duration::from_secs(90);
/// Organization ids per `show_many` request (Zendesk's maximum).
pub const ORG_BATCH: usize = 100;
/// How long an organization's name is reused.
pub const ORG_CACHE_TTL: Duration = Duration::from_secs(300);
/// Organizations kept at most; the cache is emptied when it would grow beyond.
pub const ORG_CACHE_MAX: usize = 50_000;
/// Organization batches in flight at once. (Interaction lookups are bounded by `crate::lookup`.)
pub const LOOKUP_CONCURRENCY: usize = 4;
/// Pages of requested tickets read per user.
pub const MAX_TICKET_PAGES: usize = 5;
/// Tickets per page of requested tickets (Zendesk's maximum).
pub const TICKET_PAGE: usize = 100;
/// Users per page of the agents listing (Zendesk's cursor pagination maximum).
pub const AGENTS_PAGE: usize = 100;
/// Requests one lookup call may send for one page: the request and one repeat after a short `Retry-After`.
const ATTEMPTS_PER_REQUEST: usize = 2;
/// Ids logged at most per skipped-users line.
const MAX_LOGGED_IDS: usize = 50;

const TYPES: &[&str] = &["ticket"];

/// Zendesk in Talkdesk's configuration document: the `auth` fields [`Credentials`] reads for an API token
/// login (an OAuth `access_token` is the alternative, for integrations registered with `oauth2`).
pub fn integration(_config: &Config) -> Integration {
    Integration {
        name: "talkdesk-bridge-zendesk".into(),
        display_name: "Zendesk Support".into(),
        description: "Zendesk Support users as Talkdesk contacts, Zendesk agents as Talkdesk agents, and the tickets a caller requested on the agent's screen.".into(),
        auth_fields: vec![
            AuthField {
                name: "subdomain",
                display: "Zendesk subdomain",
                mandatory: true,
                help: "The first part of your Zendesk address: acme for acme.zendesk.com.",
                format: Some("https://{{subdomain}}.zendesk.com"),
            },
            AuthField {
                name: "email",
                display: "Admin email",
                mandatory: true,
                help: "The email address of a Zendesk admin (only admins may read the incremental user export the contact sync uses).",
                format: None,
            },
            AuthField {
                name: "api_token",
                display: "API token",
                mandatory: true,
                help: "A Zendesk API token: Admin Center > Apps and integrations > APIs > Zendesk API.",
                format: None,
            },
        ],
        interaction_types: TYPES.iter().map(|t| t.to_string()).collect(),
    }
}

/// Organization names per `(subdomain, organization id)`; `None` remembers that it does not exist.
#[derive(Default)]
struct OrgCache {
    entries: HashMap<(String, u64), (Option<String>, Instant)>,
}

/// The Zendesk connector.
pub struct Zendesk {
    http: ZendeskHttp,
    settings: ZendeskConfig,
    orgs: Mutex<OrgCache>,
}

impl Zendesk {
    /// Builds the connector and its HTTP client (once per container). Phone numbers Zendesk stores without
    /// a country code are read by the lookup layer with `BRIDGE_DEFAULT_REGION`.
    pub fn new(settings: ZendeskConfig) -> Result<Self, ConfigError> {
        let http = ZendeskHttp::new(settings.connect_timeout, settings.request_timeout, settings.base_url.clone()).map_err(|_| {
            ConfigError::Invalid {
                name: "ZENDESK_TIMEOUT_MS",
                problem: "the HTTP client for Zendesk could not be built".into(),
            }
        })?;
        Ok(Zendesk {
            http,
            settings,
            orgs: Mutex::new(OrgCache::default()),
        })
    }

    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        Zendesk::new(config.zendesk.clone())
    }

    fn cached_orgs(&self, subdomain: &str, ids: &[u64]) -> (HashMap<u64, Option<String>>, Vec<u64>) {
        let cache = self.orgs.lock().unwrap_or_else(|p| p.into_inner());
        let mut known = HashMap::new();
        let mut missing = Vec::new();
        for id in ids {
            match cache.entries.get(&(subdomain.to_string(), *id)) {
                Some((name, at)) if at.elapsed() < ORG_CACHE_TTL => {
                    known.insert(*id, name.clone());
                }
                _ => missing.push(*id),
            }
        }
        (known, missing)
    }

    fn remember_orgs(&self, subdomain: &str, found: &HashMap<u64, Option<String>>) {
        let mut cache = self.orgs.lock().unwrap_or_else(|p| p.into_inner());
        if cache.entries.len() + found.len() > ORG_CACHE_MAX {
            cache.entries.clear();
        }
        let now = Instant::now();
        for (id, name) in found {
            cache.entries.insert((subdomain.to_string(), *id), (name.clone(), now));
        }
    }

    /// Names of the given organizations, from the cache or in batches of [`ORG_BATCH`].
    async fn organizations(
        &self,
        creds: &Credentials,
        ids: Vec<u64>,
        patience: Patience<'_>,
    ) -> Result<HashMap<u64, Option<String>>, ConnectorError> {
        let (mut known, missing) = self.cached_orgs(creds.subdomain(), &ids);
        if missing.is_empty() {
            return Ok(known);
        }
        let batches: Vec<Vec<u64>> = missing.chunks(ORG_BATCH).map(<[u64]>::to_vec).collect();
        let fetched: Vec<HashMap<u64, Option<String>>> = stream::iter(batches)
            .map(|batch| async move {
                let ids = batch.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
                let page: Option<Organizations> = self
                    .http
                    .get(
                        creds,
                        "/api/v2/organizations/show_many",
                        &[("ids", ids)],
                        Op::Organizations,
                        patience,
                    )
                    .await?;
                let mut names: HashMap<u64, Option<String>> = batch.iter().map(|id| (*id, None)).collect();
                for org in page.map(|p| p.organizations).unwrap_or_default() {
                    if let Some(slot) = names.get_mut(&org.id) {
                        *slot = org.name;
                    }
                }
                Ok::<_, ConnectorError>(names)
            })
            .buffer_unordered(LOOKUP_CONCURRENCY)
            .try_collect()
            .await?;
        for names in fetched {
            self.remember_orgs(creds.subdomain(), &names);
            known.extend(names);
        }
        Ok(known)
    }

    /// Live users a search for `identifier` returns, with their primary email and phone.
    async fn search_users(
        &self,
        creds: &Credentials,
        identifier: &Identifier,
        budget: &dyn Budget,
    ) -> Result<Vec<Candidate>, ConnectorError> {
        let query = match identifier {
            Identifier::Email(email) => format!("email:{email}"),
            Identifier::Phone(e164) => match mapping::phone_search_digits(e164) {
                Some(digits) => format!("phone:*{digits}"),
                None => return Ok(vec![]),
            },
        };
        let found: Option<Users> = self
            .http
            .get(
                creds,
                "/api/v2/users/search",
                &[("query", query)],
                Op::UserSearch,
                Patience::Brief(budget),
            )
            .await?;
        Ok(found
            .map(|f| f.users)
            .unwrap_or_default()
            .into_iter()
            .filter(|u| u.active)
            .map(|u| Candidate {
                person: PersonRef(u.id.to_string()),
                emails: u.email.into_iter().collect(),
                phones: u.phone.into_iter().collect(),
                complete: false,
            })
            .collect())
    }

    /// Up to `limit` of the tickets `user_id` requested, newest first; `None` when the user does not exist.
    async fn requested_tickets(
        &self,
        creds: &Credentials,
        user_id: u64,
        limit: usize,
        budget: &dyn Budget,
    ) -> Result<Option<Vec<mapping::Ticket>>, ConnectorError> {
        let path = format!("/api/v2/users/{user_id}/tickets/requested");
        let mut tickets = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..ticket_pages(limit) {
            let mut query = vec![("page[size]", TICKET_PAGE.to_string()), ("sort", "-updated_at".to_string())];
            if let Some(a) = &after {
                query.push(("page[after]", a.clone()));
            }
            let Some(page) = self
                .http
                .get::<TicketPage>(creds, &path, &query, Op::RequestedTickets, Patience::Brief(budget))
                .await?
            else {
                return Ok(if tickets.is_empty() { None } else { Some(tickets) });
            };
            tickets.extend(page.tickets);
            match page.meta.after_cursor {
                Some(next) if page.meta.has_more && tickets.len() < limit && after.as_deref() != Some(next.as_str()) => after = Some(next),
                _ => break,
            }
        }
        Ok(Some(tickets))
    }
}

/// Pages of requested tickets read for `limit` tickets.
fn ticket_pages(limit: usize) -> usize {
    limit.div_ceil(TICKET_PAGE).clamp(1, MAX_TICKET_PAGES)
}

/// Logs skipped users by reason, with their ids (never names or emails).
fn log_skipped(skipped: &HashMap<&'static str, Vec<u64>>) {
    for (reason, ids) in skipped {
        let shown: Vec<u64> = ids.iter().copied().take(MAX_LOGGED_IDS).collect();
        tracing::info!(reason, count = ids.len(), ids = ?shown, "zendesk users not synced");
    }
}

#[async_trait]
impl Connector for Zendesk {
    fn name(&self) -> &'static str {
        "zendesk"
    }

    fn interaction_types(&self) -> &[&'static str] {
        TYPES
    }

    fn max_page_size(&self) -> usize {
        MAX_EXPORT_PAGE
    }

    fn indexing_lag(&self) -> Duration {
        INDEXING_LAG
    }

    fn credential_fields(&self) -> &'static [super::CredentialField] {
        credentials::FIELDS
    }

    fn account(&self, auth: &Auth) -> Result<String, ConnectorError> {
        Ok(Credentials::from_auth(auth)?.account())
    }

    async fn contacts(&self, auth: &Auth, query: &ContactQuery<'_>) -> Result<ContactBatch, ConnectorError> {
        let creds = Credentials::from_auth(auth)?;
        let mut params = vec![
            ("per_page", query.limit.clamp(1, MAX_EXPORT_PAGE).to_string()),
            ("include", "identities,organizations".to_string()),
        ];
        match query.cursor {
            Some(cursor) => params.push(("cursor", cursor.to_string())),
            None => params.push((
                "start_time",
                mapping::export_start_time(query.after.map(|p| p.ts), chrono::Utc::now()).to_string(),
            )),
        }
        // The engine paces the export under Zendesk's rate limit: a 429 comes back to it at once.
        let (page, quota) = self
            .http
            .get_with_quota::<ExportPage>(
                &creds,
                "/api/v2/incremental/users/cursor",
                &params,
                Op::UserExport,
                Patience::Caller(query.budget),
            )
            .await?;
        let page = page.ok_or_else(|| ConnectorError::BadGateway {
            message: "Zendesk answered 404 to the incremental user export; check the subdomain".into(),
        })?;

        let ExportPage {
            users,
            identities,
            organizations,
            after_cursor,
            end_of_stream,
        } = page;
        if !end_of_stream && after_cursor.is_none() {
            return Err(ConnectorError::BadGateway {
                message: "Zendesk's user export page has no `after_cursor` before the end of the stream".into(),
            });
        }
        let mut skipped: HashMap<&'static str, Vec<u64>> = HashMap::new();
        let mut live: Vec<(User, chrono::DateTime<chrono::Utc>)> = Vec::with_capacity(users.len());
        let mut past_until = false;
        for user in users {
            let updated_at = user.updated_at.ok_or_else(|| ConnectorError::BadGateway {
                message: "Zendesk exported a user without `updated_at`".into(),
            })?;
            past_until |= updated_at > query.until;
            match mapping::skip_reason(&user, self.settings.include_staff) {
                None => live.push((user, updated_at)),
                Some(Skip::Deleted) => skipped.entry("deleted").or_default().push(user.id),
                Some(Skip::Suspended) => skipped.entry("suspended").or_default().push(user.id),
                Some(Skip::Staff) => skipped.entry("staff").or_default().push(user.id),
            }
        }
        log_skipped(&skipped);

        let mut org_ids: Vec<u64> = live
            .iter()
            .filter_map(|(u, _)| u.organization_id)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        org_ids.sort_unstable();
        // Names come with the page (`include=organizations`); only organizations it lacks are looked up.
        let mut orgs: HashMap<u64, Option<String>> = HashMap::new();
        if let Some(sideloaded) = organizations {
            let names: HashMap<u64, Option<String>> = sideloaded.into_iter().map(|o| (o.id, o.name)).collect();
            self.remember_orgs(creds.subdomain(), &names);
            orgs.extend(names);
        }
        org_ids.retain(|id| !orgs.contains_key(id));
        if !org_ids.is_empty() {
            orgs.extend(self.organizations(&creds, org_ids, Patience::Budget(query.budget)).await?);
        }
        let mut identities = mapping::IdentitiesByUser::new(identities.unwrap_or_default());
        let agent_base = creds.agent_base();
        let records = live
            .into_iter()
            .map(|(user, updated_at)| {
                let ids = identities.of(user.id);
                let company = user.organization_id.and_then(|o| orgs.get(&o).cloned().flatten());
                ContactRecord {
                    updated_at,
                    contact: mapping::contact(user, ids, company, &self.settings.user_fields, &agent_base),
                }
            })
            .collect();

        // Pages are in ascending order: once one user is past the run's bound, nothing after it is within it.
        Ok(ContactBatch {
            records,
            next_cursor: after_cursor,
            done: end_of_stream || past_until,
            quota,
        })
    }

    fn display_name(&self) -> &'static str {
        SYSTEM
    }

    fn person_by_external_id(&self, external_id: &str) -> Option<PersonRef> {
        mapping::user_id(external_id).map(|id| PersonRef(id.to_string()))
    }

    fn lookup_costs(&self, limit: usize) -> LookupCosts {
        LookupCosts {
            search: ATTEMPTS_PER_REQUEST,
            identifiers: ATTEMPTS_PER_REQUEST,
            fetch: ATTEMPTS_PER_REQUEST * ticket_pages(limit),
            fetch_in_flight: 1,
        }
    }

    async fn find_people(&self, auth: &Auth, identifier: &Identifier, budget: &dyn Budget) -> Result<Vec<Candidate>, ConnectorError> {
        let creds = Credentials::from_auth(auth)?;
        self.search_users(&creds, identifier, budget).await
    }

    async fn identifiers_of(&self, auth: &Auth, person: &PersonRef, budget: &dyn Budget) -> Result<Candidate, ConnectorError> {
        let creds = Credentials::from_auth(auth)?;
        let mut candidate = Candidate {
            person: person.clone(),
            complete: true,
            ..Candidate::default()
        };
        let Some(user_id) = mapping::user_id(&person.0) else {
            return Ok(candidate);
        };
        let path = format!("/api/v2/users/{user_id}/identities");
        let found: Option<Identities> = self.http.get(&creds, &path, &[], Op::Identities, Patience::Brief(budget)).await?;
        for identity in found.map(|f| f.identities).unwrap_or_default() {
            match (identity.kind, identity.value) {
                (IdentityKind::Email, Some(v)) => candidate.emails.push(v),
                (IdentityKind::PhoneNumber, Some(v)) => candidate.phones.push(v),
                _ => {}
            }
        }
        Ok(candidate)
    }

    async fn interactions_of(
        &self,
        auth: &Auth,
        person: &PersonRef,
        types: &[String],
        limit: usize,
        budget: &dyn Budget,
    ) -> Result<Option<Vec<Interaction>>, ConnectorError> {
        let creds = Credentials::from_auth(auth)?;
        let Some(user_id) = mapping::user_id(&person.0) else {
            return Ok(None);
        };
        if !types.iter().any(|t| t == "ticket") {
            return Ok(Some(vec![]));
        }
        let Some(tickets) = self.requested_tickets(&creds, user_id, limit.max(1), budget).await? else {
            return Ok(None);
        };
        let agent_base = creds.agent_base();
        Ok(Some(tickets.iter().filter_map(|t| mapping::interaction(t, &agent_base)).collect()))
    }

    /// `GET /api/v2/users/me`: one cheap request that proves the credentials and tells the user's role.
    /// Only an admin may read the incremental user export the contact sync uses, so anything else is refused
    /// with a message saying an admin is needed.
    async fn validate(&self, auth: &Auth, budget: &dyn Budget) -> Result<(), ConnectorError> {
        let creds = Credentials::from_auth(auth)?;
        let me: Option<Me> = self
            .http
            .get(&creds, "/api/v2/users/me", &[], Op::CurrentUser, Patience::Brief(budget))
            .await?;
        let me = me.ok_or_else(|| ConnectorError::BadGateway {
            message: "Zendesk answered 404 to users/me; check the subdomain".into(),
        })?;
        match mapping::validation_problem(&me.user) {
            None => Ok(()),
            Some(problem) => Err(problem),
        }
    }

    /// `GET /api/v2/users?role[]=agent&role[]=admin`, [`AGENTS_PAGE`] users a page, cursor pagination.
    /// Deleted and suspended users, and users without an email, are skipped and logged by id.
    async fn agents(&self, auth: &Auth, cursor: Option<&str>, budget: &dyn Budget) -> Result<AgentPage, ConnectorError> {
        let creds = Credentials::from_auth(auth)?;
        let mut query = vec![
            ("role[]", "agent".to_string()),
            ("role[]", "admin".to_string()),
            ("page[size]", AGENTS_PAGE.to_string()),
        ];
        if let Some(c) = cursor {
            query.push(("page[after]", c.to_string()));
        }
        let page: Option<UserPage> = self
            .http
            .get(&creds, "/api/v2/users", &query, Op::Agents, Patience::Budget(budget))
            .await?;
        let page = page.ok_or_else(|| ConnectorError::BadGateway {
            message: "Zendesk answered 404 to the users listing; check the subdomain".into(),
        })?;
        let mut skipped: HashMap<&'static str, Vec<u64>> = HashMap::new();
        let mut agents = Vec::with_capacity(page.users.len());
        for user in &page.users {
            match mapping::agent(user) {
                Ok(a) => agents.push(a),
                Err(NotAnAgent::Inactive) => skipped.entry("inactive agent").or_default().push(user.id),
                Err(NotAnAgent::EndUser) => skipped.entry("end-user in the agents listing").or_default().push(user.id),
                Err(NotAnAgent::NoEmail) => skipped.entry("agent without email").or_default().push(user.id),
            }
        }
        log_skipped(&skipped);
        let next_cursor = match (page.meta.has_more, page.meta.after_cursor) {
            (false, _) => None,
            (true, Some(next)) => Some(next),
            (true, None) => {
                return Err(ConnectorError::BadGateway {
                    message: "Zendesk's users listing says more pages follow but gives no `after_cursor`".into(),
                })
            }
        };
        Ok(AgentPage { agents, next_cursor })
    }
}
