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
//! Interaction lookup: the external id is the user id; emails and phones are searched with
//! `users/search` (`email:{email}`, `phone:*{national number}`), and only users whose email or phone
//! equals the one asked (primary, or among their identities) are kept. Their requested tickets are read
//! in parallel (at most [`LOOKUP_CONCURRENCY`] requests at once), newest first, up to the lookup's limit.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::stream::{self, StreamExt, TryStreamExt};
use phonenumber::country::Id as Region;

use super::{Connector, ConnectorError, ContactBatch, ContactQuery, ContactRecord, InteractionBatch, InteractionQuery, LookupHits};
use crate::config::{Config, ConfigError};
use crate::talkdesk::Auth;

pub mod client;
pub mod credentials;
pub mod mapping;
pub mod settings;

use client::{Op, Patience, ZendeskHttp, SYSTEM};
pub use credentials::{valid_subdomain, Credentials};
use mapping::{ExportPage, Identities, Organizations, Skip, TicketPage, User, Users};
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
/// Upstream requests in flight at once for one interaction lookup (and for organization batches).
pub const LOOKUP_CONCURRENCY: usize = 4;
/// Search results whose identities are read per email or phone (those matching by their primary email or
/// phone cost nothing and are all kept).
pub const MAX_CANDIDATES: usize = 10;
/// Pages of requested tickets read per user (100 tickets each).
pub const MAX_TICKET_PAGES: usize = 5;
/// Ids logged at most per skipped-users line.
const MAX_LOGGED_IDS: usize = 50;

const TYPES: &[&str] = &["ticket"];

/// Organization names per `(subdomain, organization id)`; `None` remembers that it does not exist.
#[derive(Default)]
struct OrgCache {
    entries: HashMap<(String, u64), (Option<String>, Instant)>,
}

/// The Zendesk connector.
pub struct Zendesk {
    http: ZendeskHttp,
    settings: ZendeskConfig,
    region: Region,
    orgs: Mutex<OrgCache>,
}

impl Zendesk {
    /// Builds the connector and its HTTP client (once per container). `region` reads phone numbers that
    /// Zendesk stores without a country code.
    pub fn new(settings: ZendeskConfig, region: Region) -> Result<Self, ConfigError> {
        let http = ZendeskHttp::new(settings.connect_timeout, settings.request_timeout, settings.base_url.clone()).map_err(|_| {
            ConfigError::Invalid {
                name: "ZENDESK_TIMEOUT_MS",
                problem: "the HTTP client for Zendesk could not be built".into(),
            }
        })?;
        Ok(Zendesk {
            http,
            settings,
            region,
            orgs: Mutex::new(OrgCache::default()),
        })
    }

    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        Zendesk::new(config.zendesk.clone(), config.default_region)
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

    /// Users whose email (primary or an identity) is exactly `email` (already lowercase).
    async fn users_by_email(&self, creds: &Credentials, email: &str) -> Result<Vec<u64>, ConnectorError> {
        let found: Option<Users> = self
            .http
            .get(
                creds,
                "/api/v2/users/search",
                &[("query", format!("email:{email}"))],
                Op::UserSearch,
                Patience::Brief,
            )
            .await?;
        let candidates = found.map(|f| f.users).unwrap_or_default();
        self.verified(
            creds,
            candidates,
            |u| u.email.as_deref().is_some_and(|e| e.trim().eq_ignore_ascii_case(email)),
            |i| i.kind == "email" && i.value.as_deref().is_some_and(|v| v.trim().eq_ignore_ascii_case(email)),
        )
        .await
    }

    /// Users whose phone (primary or an identity) is `e164` once normalised.
    async fn users_by_phone(&self, creds: &Credentials, e164: &str) -> Result<Vec<u64>, ConnectorError> {
        let Some(digits) = mapping::phone_search_digits(e164) else {
            return Ok(vec![]);
        };
        let found: Option<Users> = self
            .http
            .get(
                creds,
                "/api/v2/users/search",
                &[("query", format!("phone:*{digits}"))],
                Op::UserSearch,
                Patience::Brief,
            )
            .await?;
        let candidates = found.map(|f| f.users).unwrap_or_default();
        let region = self.region;
        let same = move |raw: &str| crate::phone::to_e164(raw, region).as_deref() == Some(e164);
        self.verified(
            creds,
            candidates,
            |u| u.phone.as_deref().is_some_and(same),
            |i| i.kind == "phone_number" && i.value.as_deref().is_some_and(same),
        )
        .await
    }

    /// Keeps the search candidates that really match: by their primary field, else by their identities.
    async fn verified(
        &self,
        creds: &Credentials,
        candidates: Vec<User>,
        primary: impl Fn(&User) -> bool,
        identity: impl Fn(&mapping::Identity) -> bool,
    ) -> Result<Vec<u64>, ConnectorError> {
        let (matched, others): (Vec<User>, Vec<User>) = candidates.into_iter().filter(|u| u.active).partition(|u| primary(u));
        let mut ids: Vec<u64> = matched.iter().map(|u| u.id).collect();
        // Matched by a secondary identity, or not at all: each costs a request, so only a few are checked.
        for user in others.into_iter().take(MAX_CANDIDATES) {
            let path = format!("/api/v2/users/{}/identities", user.id);
            let found: Option<Identities> = self.http.get(creds, &path, &[], Op::Identities, Patience::Brief).await?;
            if found.is_some_and(|f| f.identities.iter().any(&identity)) {
                ids.push(user.id);
            }
        }
        Ok(ids)
    }

    /// Up to `limit` of the tickets `user_id` requested, newest first; `None` when the user does not exist.
    async fn requested_tickets(
        &self,
        creds: &Credentials,
        user_id: u64,
        limit: usize,
    ) -> Result<Option<Vec<mapping::Ticket>>, ConnectorError> {
        let path = format!("/api/v2/users/{user_id}/tickets/requested");
        let mut tickets = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_TICKET_PAGES {
            let mut query = vec![("page[size]", "100".to_string()), ("sort", "-updated_at".to_string())];
            if let Some(a) = &after {
                query.push(("page[after]", a.clone()));
            }
            let Some(page) = self
                .http
                .get::<TicketPage>(creds, &path, &query, Op::RequestedTickets, Patience::Brief)
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

        let mut skipped: HashMap<&'static str, Vec<u64>> = HashMap::new();
        let mut live: Vec<(&User, chrono::DateTime<chrono::Utc>)> = Vec::with_capacity(page.users.len());
        let mut past_until = false;
        for user in &page.users {
            let updated_at = user.updated_at.ok_or_else(|| ConnectorError::BadGateway {
                message: "Zendesk exported a user without `updated_at`".into(),
            })?;
            past_until |= updated_at > query.until;
            match mapping::skip_reason(user, self.settings.include_staff) {
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
        if let Some(sideloaded) = &page.organizations {
            let names: HashMap<u64, Option<String>> = sideloaded.iter().map(|o| (o.id, o.name.clone())).collect();
            self.remember_orgs(creds.subdomain(), &names);
            orgs.extend(names);
        }
        org_ids.retain(|id| !orgs.contains_key(id));
        if !org_ids.is_empty() {
            orgs.extend(self.organizations(&creds, org_ids, Patience::Budget(query.budget)).await?);
        }
        let identities = page.identities.as_deref().map(mapping::identities_by_user).unwrap_or_default();
        let agent_base = creds.agent_base();
        let records = live
            .into_iter()
            .map(|(user, updated_at)| {
                let ids = identities.get(&user.id).map(Vec::as_slice).unwrap_or_default();
                let company = user.organization_id.and_then(|o| orgs.get(&o).cloned().flatten());
                ContactRecord {
                    updated_at,
                    contact: mapping::contact(user, ids, company, &self.settings.user_fields, &agent_base),
                }
            })
            .collect();

        if !page.end_of_stream && page.after_cursor.is_none() {
            return Err(ConnectorError::BadGateway {
                message: "Zendesk's user export page has no `after_cursor` before the end of the stream".into(),
            });
        }
        // Pages are in ascending order: once one user is past the run's bound, nothing after it is within it.
        Ok(ContactBatch {
            records,
            next_cursor: page.after_cursor,
            done: page.end_of_stream || past_until,
            quota,
        })
    }

    async fn interactions(&self, auth: &Auth, query: &InteractionQuery) -> Result<InteractionBatch, ConnectorError> {
        let creds = Credentials::from_auth(auth)?;
        if !query.types.iter().any(|t| t == "ticket") {
            return Ok(InteractionBatch::default());
        }
        let mut hits = LookupHits::default();

        // (is an email, the email or E.164 phone)
        let lookups: Vec<(bool, String)> = query
            .emails
            .iter()
            .map(|e| (true, e.clone()))
            .chain(query.phones.iter().map(|p| (false, p.clone())))
            .collect();
        let creds_ref = &creds;
        let found: Vec<(bool, Vec<u64>)> = stream::iter(lookups)
            .map(|(is_email, value)| async move {
                let ids = if is_email {
                    self.users_by_email(creds_ref, &value).await?
                } else {
                    self.users_by_phone(creds_ref, &value).await?
                };
                Ok::<_, ConnectorError>((is_email, ids))
            })
            .buffer_unordered(LOOKUP_CONCURRENCY)
            .try_collect()
            .await?;

        let external = query.external_id.as_deref().and_then(mapping::user_id);
        let mut users: Vec<u64> = external.into_iter().collect();
        for (is_email, ids) in found {
            if is_email {
                hits.email += ids.len();
            } else {
                hits.phone += ids.len();
            }
            users.extend(ids);
        }
        let mut seen = HashSet::new();
        users.retain(|id| seen.insert(*id));

        let limit = query.limit.max(1);
        let per_user: Vec<(u64, Option<Vec<mapping::Ticket>>)> = stream::iter(users)
            .map(|id| async move { Ok::<_, ConnectorError>((id, self.requested_tickets(creds_ref, id, limit).await?)) })
            .buffer_unordered(LOOKUP_CONCURRENCY)
            .try_collect()
            .await?;

        let mut tickets: Vec<mapping::Ticket> = Vec::new();
        let mut ticket_ids = HashSet::new();
        for (id, found) in per_user {
            if Some(id) == external && found.is_some() {
                hits.external_id += 1;
            }
            for t in found.unwrap_or_default() {
                if ticket_ids.insert(t.id) {
                    tickets.push(t);
                }
            }
        }
        tickets.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(b.id.cmp(&a.id)));
        let agent_base = creds.agent_base();
        let interactions = tickets
            .iter()
            .filter_map(|t| mapping::interaction(t, &agent_base))
            .take(limit)
            .collect();
        tracing::debug!(system = SYSTEM, users = seen.len(), tickets = ticket_ids.len(), "zendesk lookup");
        Ok(InteractionBatch { interactions, hits })
    }
}
