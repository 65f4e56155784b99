//! HubSpot CRM: contacts from the CRM search endpoint ordered by modification date, interactions (tickets,
//! calls and emails) from a contact's associations.
//!
//! - [`credentials`]: the `auth` fields (`access_token`, optional `portal_id`), checked before any request.
//! - [`settings`]: `HUBSPOT_*` deployment settings.
//! - [`client`]: the HTTP client, status mapping, rate-limit headers and the daily limit.
//! - [`mapping`]: HubSpot JSON and search bodies, to Talkdesk contacts and interactions (pure).
//!
//! **Contact sync.** `POST /crm/v3/objects/contacts/search`, filtered on `lastmodifieddate` from the engine's
//! resume instant (inclusive, `GTE`, rounded up to HubSpot's milliseconds) to the run's frozen bound
//! (`LTE`), sorted ascending on `lastmodifieddate` (HubSpot allows one sort rule), 200 results per request
//! (HubSpot's most). The connector declares [`Order::UpdatedAt`]: records sharing a millisecond come in any
//! id order, so the engine holds back the last millisecond of every upstream page and asks again from it,
//! and drains a millisecond shared by more than one page with [`ContactQuery::only_at`] requests, which
//! become `lastmodifieddate EQ t AND hs_object_id GT last id`, sorted by `hs_object_id` (a unique key, so
//! the drain is exact).
//!
//! **The 10,000-result cap.** HubSpot stops any one query at 10,000 results (a 400 past them). Every request
//! this connector sends is the *first* page of a fresh query, starting from the position the engine gives
//! (never HubSpot's `after` paging token): a query never gets near 10,000 results, whatever the size of the
//! account or of a tie, and the restart "from the last timestamp seen" is the engine's hold-back, the same
//! rule for every connector ordered by instant. The cost is the same as paging (one request per 200
//! contacts, plus one per held-back millisecond's re-read) and no cursor can go stale.
//!
//! **Archived and merged contacts.** Search never returns archived contacts ("Archived CRM objects won't
//! appear in any search results"), and an archived one in an answer is dropped anyway. A merge archives the
//! secondary contact and updates the primary (its modification date moves), so the primary is synced again
//! with the merged emails in `hs_additional_emails`; the secondary's id is no longer synced (Talkdesk's
//! protocol has no deletions) and a lookup by its email finds the primary.
//!
//! **Interaction lookup** (scheduled by `crate::lookup`), in as few round trips as HubSpot allows:
//!
//! 1. *Search* (only for emails and phones): `POST /crm/v3/objects/contacts/search`, OR-ing filter groups
//!    of one filter each ([`mapping::people_search`]): `email IN` the emails, one `hs_additional_emails EQ`
//!    group per email (the form a HubSpot maintainer confirms for secondary addresses; that property holds
//!    a `;`-separated list, and `IN` is not documented to look inside one), and HubSpot's calculated phone
//!    and mobile search properties `IN` the national numbers. HubSpot allows 5 filter groups, 6 filters a
//!    group and 18 filters in all ([`MAX_FILTER_GROUPS`] and the others, cited there), so the identifiers
//!    are packed into as few searches as fit ([`search_units`], the lookup's [`Connector::search_batches`]),
//!    which the lookup layer sends at once (within its in-flight limit): one round trip. With E emails and
//!    P phones that is S = ⌈P / 10⌉ + ⌈max(0, E − 2·⌈P / 10⌉) / 4⌉ searches: one for 1 email and 1 phone,
//!    two for 3 emails and 2 phones, three for the defaults' most (10 emails, 10 phones). Candidates show
//!    every email and phone (complete), so no identifier read follows. A contact's id (the external id, digits) needs no
//!    search.
//! 2. *Associations*, at once for every asked type (`POST /crm/v4/associations/contacts/{tickets|calls|
//!    emails}/batch/read`), together with the account details and the ticket stages when they are not
//!    cached.
//! 3. *Objects*, at once for every type with associations: one batch read per type for the newest
//!    [`MAX_PER_TYPE`] ids (`POST /crm/v3/objects/{type}/batch/read`), never one request per object.
//!
//! So a lookup by id is two round trips, one by emails and phones three; at most [`FETCH_IN_FLIGHT`]
//! requests of one fetch are in flight at once, which the lookup layer counts. Ticket status comes from the
//! pipeline stages' `ticketState`, read once per token and cached for [`CACHE_TTL`]. A type the token's
//! scopes do not allow (403: `tickets`, `crm.objects.contacts.read` for calls, `sales-email-read` for
//! emails) is left out, logged; only when every asked type is refused is the lookup refused. The account's
//! portal id, UI host and time zone come from `GET /account-info/v3/details`, read once per token and
//! cached for [`CACHE_TTL`] (for record URLs and the daily limit's reset).
//!
//! Upstream requests of one lookup, retries included (each request may be sent twice after a short 429):
//! `2·S + 10·2·(2 + 2·T)` with S searches (above; at most three with the defaults) and T asked types (at
//! most 3): at most **6 + 160 = 166** with the defaults; in practice S searches, then 2·T requests per
//! person found, plus the account details and the ticket stages once per token.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{
    AgentPage, Candidate, Connector, ConnectorError, ContactBatch, ContactQuery, ContactRecord, Identifier, LookupCosts, Order, PersonRef,
};
use crate::config::{Config, ConfigError};
use crate::sync::position::micros;
use crate::sync::Budget;
use crate::talkdesk::registration::{AuthField, Integration};
use crate::talkdesk::{Auth, Interaction};

pub mod client;
pub mod credentials;
pub mod mapping;
pub mod settings;

use client::{Call, HubSpotHttp, Op, Patience, SYSTEM};
pub use credentials::Credentials;
use mapping::{AccountDetails, AssociationBatch, BatchRead, Object, OwnersPage, Pipelines, Portal, SearchPage, StageStates};
pub use settings::HubSpotConfig;

/// HubSpot's largest search page.
pub const MAX_SEARCH_PAGE: usize = 200;
/// Each run stops this long before it starts: "it may take a few moments for newly created or updated CRM
/// objects to appear in search results" (HubSpot does not say how long; two minutes is a margin).
pub const INDEXING_LAG: Duration = Duration::from_secs(120);
/// How long account details and ticket stages are reused per token.
pub const CACHE_TTL: Duration = Duration::from_secs(3600);
/// Tokens remembered at most per cache; a cache is emptied when it would grow beyond.
const CACHE_MAX: usize = 10_000;
/// Interactions read per type and person: one batch read (HubSpot's batch limit is 100 inputs).
pub const MAX_PER_TYPE: usize = 100;
/// Owners asked for per page of `GET /crm/v3/owners`: the endpoint's default (its spec documents no maximum).
pub const OWNERS_PAGE: usize = 100;
/// Owner ids logged per reason an owner is not an agent.
const MAX_LOGGED_IDS: usize = 20;

/// `after` as a query value: HubSpot's cursors are opaque; anything outside the unreserved characters is
/// percent-encoded.
fn query_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Requests one lookup call may send for one request: the request and one repeat after a short 429.
const ATTEMPTS_PER_REQUEST: usize = 2;

const TYPES: &[&str] = &["ticket", "call", "email"];

/// Requests one interactions fetch has in flight at once: the account details, the ticket stages and one
/// association read per type (the object batch reads come after, at most one per type).
pub const FETCH_IN_FLIGHT: usize = 2 + TYPES.len();

// HubSpot's search limits. "You can include a maximum of five filterGroups with up to 6 filters in each
// group, with a maximum of 18 filters in total" (Search the CRM, H-SEARCH in external-apis.md §2.2); the
// Aug-2024 changelog ("Breaking Change: Expanded Filtering Capabilities and Error Messaging in HubSpot's
// Search API", developers.hubspot.com/changelog) gives 5 groups, 10 filters a group and 25 in all. Five
// groups either way; the bridge keeps to the stricter numbers, and sends one filter a group (so the group
// limit is the one that binds: five filters a search).
/// Filter groups (OR-ed) one search may hold.
pub const MAX_FILTER_GROUPS: usize = 5;
/// Filters (AND-ed) one filter group may hold.
pub const MAX_FILTERS_PER_GROUP: usize = 6;
/// Filters one search may hold in all.
pub const MAX_FILTERS: usize = 18;
/// Values of one `IN` filter. HubSpot's spec types `values` as a list of strings and documents no limit
/// (UNVERIFIED); ten is the lookup's default cap per kind.
pub const MAX_IN_VALUES: usize = 10;
/// Emails a search holds beside its phones: `email IN` and one `hs_additional_emails EQ` each, after the two
/// phone groups.
const EMAILS_BESIDE_PHONES: usize = 2;
/// Emails a search without phones holds.
const EMAILS_ALONE: usize = 4;
const _: () = assert!(
    mapping::people_search_groups(EMAILS_BESIDE_PHONES, true) <= MAX_FILTER_GROUPS
        && mapping::people_search_groups(EMAILS_BESIDE_PHONES + 1, true) > MAX_FILTER_GROUPS
        && mapping::people_search_groups(EMAILS_ALONE, false) <= MAX_FILTER_GROUPS
        && mapping::people_search_groups(EMAILS_ALONE + 1, false) > MAX_FILTER_GROUPS
        && MAX_FILTER_GROUPS <= MAX_FILTERS
        && 1 <= MAX_FILTERS_PER_GROUP
        && EMAILS_ALONE <= MAX_IN_VALUES
);

/// What an interaction type is in HubSpot.
#[derive(Debug, Clone, Copy)]
struct ObjectKind {
    /// The Talkdesk interaction type.
    kind: &'static str,
    /// The CRM object type (in association and batch-read paths).
    object_type: &'static str,
    /// Properties a batch read asks for.
    properties: &'static [&'static str],
    /// The scope reading it needs.
    scope: &'static str,
}

const OBJECT_KINDS: &[ObjectKind] = &[
    ObjectKind {
        kind: "ticket",
        object_type: "tickets",
        properties: mapping::TICKET_PROPERTIES,
        scope: "tickets",
    },
    ObjectKind {
        kind: "call",
        object_type: "calls",
        properties: mapping::CALL_PROPERTIES,
        scope: "crm.objects.contacts.read",
    },
    ObjectKind {
        kind: "email",
        object_type: "emails",
        properties: mapping::EMAIL_PROPERTIES,
        scope: "sales-email-read",
    },
];
const _: () = assert!(OBJECT_KINDS.len() == TYPES.len());

fn object_kind(kind: &str) -> Option<ObjectKind> {
    OBJECT_KINDS.iter().find(|k| k.kind == kind).copied()
}

/// The lookup's identifiers as searches, as few as HubSpot's filter limits allow (each at most
/// [`MAX_FILTER_GROUPS`] groups of one filter, see [`mapping::people_search_groups`]): the phones in lists of
/// [`MAX_IN_VALUES`], each with up to `EMAILS_BESIDE_PHONES` (2) emails, then the other emails
/// `EMAILS_ALONE` (4) a search; each identifier once, in the order given. 3 emails and 2 phones are two
/// searches, the defaults' most (10 and 10) three, 25 emails and 12 phones eight.
pub fn search_units(identifiers: &[Identifier]) -> Vec<Vec<Identifier>> {
    let emails: Vec<Identifier> = identifiers.iter().filter(|i| matches!(i, Identifier::Email(_))).cloned().collect();
    let phones: Vec<Identifier> = identifiers.iter().filter(|i| matches!(i, Identifier::Phone(_))).cloned().collect();
    let mut emails = emails.into_iter();
    let mut out: Vec<Vec<Identifier>> = phones
        .chunks(MAX_IN_VALUES)
        .map(|chunk| chunk.iter().cloned().chain(emails.by_ref().take(EMAILS_BESIDE_PHONES)).collect())
        .collect();
    let rest: Vec<Identifier> = emails.collect();
    out.extend(rest.chunks(EMAILS_ALONE).map(<[Identifier]>::to_vec));
    out
}

struct Cached<T> {
    entries: HashMap<String, (T, Instant)>,
}

impl<T: Clone> Cached<T> {
    fn new() -> Self {
        Cached { entries: HashMap::new() }
    }

    fn get(&self, key: &str) -> Option<T> {
        self.entries
            .get(key)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(v, _)| v.clone())
    }

    fn put(&mut self, key: &str, value: T) {
        if self.entries.len() >= CACHE_MAX && !self.entries.contains_key(key) {
            self.entries.clear();
        }
        self.entries.insert(key.to_string(), (value, Instant::now()));
    }
}

/// HubSpot in Talkdesk's configuration document: the `auth` fields [`Credentials`] reads.
pub fn integration(_config: &Config) -> Integration {
    Integration {
        name: "talkdesk-bridge-hubspot".into(),
        display_name: "HubSpot CRM".into(),
        description: "HubSpot contacts as Talkdesk contacts, and a caller's HubSpot tickets, calls and emails on the agent's screen."
            .into(),
        auth_fields: vec![
            AuthField {
                name: "access_token",
                display: "Private app access token",
                mandatory: true,
                help:
                    "The access token of a HubSpot private app with the scopes the README lists (Settings > Integrations > Private apps).",
                format: None,
            },
            AuthField {
                name: "portal_id",
                display: "HubSpot account id",
                mandatory: false,
                help: "Your HubSpot account (portal) id: binds sync positions to the account, so a new token continues the sync.",
                format: None,
            },
        ],
        interaction_types: TYPES.iter().map(|t| t.to_string()).collect(),
    }
}

/// The HubSpot connector.
pub struct HubSpot {
    http: HubSpotHttp,
    settings: HubSpotConfig,
    portals: Mutex<Cached<Portal>>,
    stages: Mutex<Cached<std::sync::Arc<StageStates>>>,
}

impl HubSpot {
    /// Builds the connector and its HTTP client (once per container).
    pub fn new(settings: HubSpotConfig) -> Result<Self, ConfigError> {
        let http = HubSpotHttp::new(settings.connect_timeout, settings.request_timeout, settings.base().to_string()).map_err(|_| {
            ConfigError::Invalid {
                name: "HUBSPOT_TIMEOUT_MS",
                problem: "the HTTP client for HubSpot could not be built".into(),
            }
        })?;
        Ok(HubSpot {
            http,
            settings,
            portals: Mutex::new(Cached::new()),
            stages: Mutex::new(Cached::new()),
        })
    }

    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        HubSpot::new(config.hubspot.clone())
    }

    fn photo(&self) -> Option<&str> {
        self.settings.photo_property.as_deref()
    }

    /// The account's time zone offset, when its details were read.
    fn utc_offset(&self, creds: &Credentials) -> Option<i64> {
        let portals = self.portals.lock().unwrap_or_else(|p| p.into_inner());
        portals.get(creds.token_key()).and_then(|p| p.utc_offset_ms)
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        creds: &Credentials,
        call: Call<'_>,
        op: Op,
        patience: Patience<'_>,
    ) -> Result<(Option<T>, Option<super::Quota>), ConnectorError> {
        self.http.send(creds, call, op, patience, self.utc_offset(creds)).await
    }

    /// The account the token belongs to: read once per token, then cached. Checks `auth.portal_id`.
    async fn portal(&self, creds: &Credentials, budget: &dyn Budget) -> Result<Portal, ConnectorError> {
        let cached = self.portals.lock().unwrap_or_else(|p| p.into_inner()).get(creds.token_key());
        let portal = match cached {
            Some(p) => p,
            None => {
                let (details, _) = self
                    .send::<AccountDetails>(
                        creds,
                        Call::Get("/account-info/v3/details"),
                        Op::AccountInfo,
                        Patience::Brief(budget),
                    )
                    .await?;
                let details = details.ok_or_else(|| ConnectorError::BadGateway {
                    message: "HubSpot answered 404 to the account details".into(),
                })?;
                let portal = Portal::from_details(&details);
                tracing::info!(portal_id = portal.id, time_zone = ?details.time_zone, "hubspot account details read");
                self.portals
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .put(creds.token_key(), portal.clone());
                portal
            }
        };
        match creds.portal_id() {
            Some(named) if named != portal.id => Err(ConnectorError::InvalidAuth {
                field: "portal_id",
                problem: "is not the HubSpot account the access token belongs to".into(),
            }),
            _ => Ok(portal),
        }
    }

    /// Ticket stages and whether each is closed: read once per token, then cached.
    async fn stage_states(&self, creds: &Credentials, budget: &dyn Budget) -> Result<std::sync::Arc<StageStates>, ConnectorError> {
        if let Some(s) = self.stages.lock().unwrap_or_else(|p| p.into_inner()).get(creds.token_key()) {
            return Ok(s);
        }
        let (pipelines, _) = self
            .send::<Pipelines>(
                creds,
                Call::Get("/crm/v3/pipelines/tickets"),
                Op::Pipelines,
                Patience::Brief(budget),
            )
            .await?;
        let states = std::sync::Arc::new(pipelines.map(|p| p.stage_states()).unwrap_or_default());
        self.stages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .put(creds.token_key(), states.clone());
        Ok(states)
    }

    /// The ids of the newest associated objects of one type (at most [`MAX_PER_TYPE`] and `limit`).
    async fn associated_ids(
        &self,
        creds: &Credentials,
        contact_id: u64,
        object_type: &str,
        limit: usize,
        budget: &dyn Budget,
    ) -> Result<Vec<String>, ConnectorError> {
        let path = format!("/crm/v4/associations/contacts/{object_type}/batch/read");
        let body = json!({"inputs": [{"id": contact_id.to_string()}]});
        let (found, _) = self
            .send::<AssociationBatch>(creds, Call::Post(&path, &body), Op::Associations, Patience::Brief(budget))
            .await?;
        let (mut ids, more) = found.map(|f| f.ids_of(&contact_id.to_string())).unwrap_or_default();
        if more {
            tracing::info!(
                object_type,
                "contact has more associations than one page; reading the newest ids of the first page"
            );
        }
        ids.truncate(limit.clamp(1, MAX_PER_TYPE));
        Ok(ids)
    }

    /// Objects of one type by id, in one batch read; archived ones are left out.
    async fn objects(
        &self,
        creds: &Credentials,
        object_type: &str,
        properties: &[&str],
        ids: &[String],
        budget: &dyn Budget,
    ) -> Result<Vec<Object>, ConnectorError> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let path = format!("/crm/v3/objects/{object_type}/batch/read");
        let inputs: Vec<Value> = ids.iter().map(|id| json!({"id": id})).collect();
        let body = json!({"properties": properties, "inputs": inputs});
        let (read, _) = self
            .send::<BatchRead>(creds, Call::Post(&path, &body), Op::BatchRead, Patience::Brief(budget))
            .await?;
        Ok(read
            .map(|r| r.results)
            .unwrap_or_default()
            .into_iter()
            .filter(|o| !o.archived)
            .collect())
    }
}

#[async_trait]
impl Connector for HubSpot {
    fn name(&self) -> &'static str {
        "hubspot"
    }

    fn interaction_types(&self) -> &[&'static str] {
        TYPES
    }

    fn max_page_size(&self) -> usize {
        MAX_SEARCH_PAGE
    }

    fn order(&self) -> Order {
        Order::UpdatedAt
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
        let portal = self.portal(&creds, query.budget).await?;
        let limit = query.limit.clamp(1, MAX_SEARCH_PAGE);
        let body = match query.only_at {
            Some(at) => {
                let at_us = micros(at);
                let after_id = query
                    .after
                    .filter(|p| p.ts == at_us)
                    .and_then(|p| p.id.as_deref())
                    .and_then(mapping::object_id);
                mapping::tie_search(mapping::ms_floor(at_us), after_id, limit, self.photo())
            }
            None => mapping::sync_search(
                query.after.map(|p| mapping::ms_ceil(p.ts)),
                mapping::ms_floor(micros(query.until)),
                limit,
                self.photo(),
            ),
        };
        // The engine paces the search under HubSpot's per-second limit: a 429 goes back to it at once.
        let (page, quota) = self
            .send::<SearchPage>(
                &creds,
                Call::Post("/crm/v3/objects/contacts/search", &body),
                Op::ContactSearch,
                Patience::Caller(query.budget),
            )
            .await?;
        let page = page.ok_or_else(|| ConnectorError::BadGateway {
            message: "HubSpot answered 404 to the contact search".into(),
        })?;
        let mut archived = 0usize;
        let mut records = Vec::with_capacity(page.results.len());
        for o in &page.results {
            if o.archived {
                archived += 1;
                continue;
            }
            let updated_at = mapping::contact_modified(o).ok_or_else(|| ConnectorError::BadGateway {
                message: "HubSpot returned a contact without `lastmodifieddate`".into(),
            })?;
            records.push(ContactRecord {
                updated_at,
                contact: mapping::contact(o, Some(&portal), self.photo()),
            });
        }
        if archived > 0 {
            tracing::info!(count = archived, "hubspot archived contacts not synced");
        }
        Ok(ContactBatch {
            records,
            next_cursor: None,
            done: !page.has_more(),
            quota,
        })
    }

    fn display_name(&self) -> &'static str {
        SYSTEM
    }

    fn person_by_external_id(&self, external_id: &str) -> Option<PersonRef> {
        mapping::object_id(external_id).map(|id| PersonRef(id.to_string()))
    }

    fn lookup_costs(&self, _limit: usize) -> LookupCosts {
        // A fetch: the account details and the ticket stages (each when not cached), then per type one
        // association read and one batch read; the first three kinds at once, then the batch reads.
        LookupCosts {
            search: ATTEMPTS_PER_REQUEST,
            identifiers: ATTEMPTS_PER_REQUEST,
            fetch: ATTEMPTS_PER_REQUEST * (2 + 2 * TYPES.len()),
            fetch_in_flight: FETCH_IN_FLIGHT,
        }
    }

    /// The account details (proves the token and checks `portal_id`), then a one-result contact search:
    /// the contact sync needs `crm.objects.contacts.read`, so a token without it is refused here rather than
    /// at the first sync. Ticket and call scopes are optional (a type the token may not read is left out).
    async fn validate(&self, auth: &Auth, budget: &dyn Budget) -> Result<(), ConnectorError> {
        let creds = Credentials::from_auth(auth)?;
        self.portal(&creds, budget).await?;
        let body = json!({"limit": 1, "properties": ["lastmodifieddate"]});
        self.send::<SearchPage>(
            &creds,
            Call::Post("/crm/v3/objects/contacts/search", &body),
            Op::PersonSearch,
            Patience::Brief(budget),
        )
        .await
        .map_err(|e| match e {
            ConnectorError::Forbidden { message } => ConnectorError::Forbidden {
                message: format!("the private app needs the crm.objects.contacts.read scope: {message}"),
            },
            other => other,
        })?;
        Ok(())
    }

    fn search_batches(&self, identifiers: &[Identifier]) -> Vec<Vec<Identifier>> {
        search_units(identifiers)
    }

    async fn find_people(&self, auth: &Auth, identifier: &Identifier, budget: &dyn Budget) -> Result<Vec<Candidate>, ConnectorError> {
        let found = self.find_people_batch(auth, std::slice::from_ref(identifier), budget).await?;
        Ok(found.into_iter().flat_map(|(_, c)| c).collect())
    }

    /// One search for every email and phone of `identifiers` (a list [`search_units`] made, so within
    /// HubSpot's filter limits; the lookup layer sends a lookup's searches at once). Every candidate is listed under every identifier: each shows all its emails
    /// and phones, and the lookup layer keeps the exact matches.
    async fn find_people_batch(
        &self,
        auth: &Auth,
        identifiers: &[Identifier],
        budget: &dyn Budget,
    ) -> Result<Vec<(Identifier, Vec<Candidate>)>, ConnectorError> {
        let creds = Credentials::from_auth(auth)?;
        let mut emails: Vec<String> = Vec::new();
        let mut digits: Vec<String> = Vec::new();
        for identifier in identifiers {
            match identifier {
                Identifier::Email(e) => emails.push(e.to_lowercase()),
                // A phone without a national number cannot be searched: it finds nobody.
                Identifier::Phone(p) => digits.extend(crate::phone::national_number(p)),
            }
        }
        emails.dedup();
        digits.sort_unstable();
        digits.dedup();
        let Some(body) = mapping::people_search(&emails, &digits, None) else {
            return Ok(identifiers.iter().map(|i| (i.clone(), vec![])).collect());
        };
        let (page, _) = self
            .send::<SearchPage>(
                &creds,
                Call::Post("/crm/v3/objects/contacts/search", &body),
                Op::PersonSearch,
                Patience::Brief(budget),
            )
            .await?;
        let page = page.unwrap_or(SearchPage {
            total: None,
            results: vec![],
            paging: None,
        });
        if page.has_more() {
            tracing::info!(
                identifiers = identifiers.len(),
                "more contacts match the lookup's identifiers than one search answers; the first page is used"
            );
        }
        let candidates: Vec<Candidate> = page
            .results
            .iter()
            .filter(|o| !o.archived)
            .map(|o| Candidate {
                person: PersonRef(o.id.clone()),
                emails: mapping::emails_of(o),
                phones: mapping::phones_of(o),
                complete: true,
            })
            .collect();
        Ok(identifiers.iter().map(|i| (i.clone(), candidates.clone())).collect())
    }

    async fn identifiers_of(&self, auth: &Auth, person: &PersonRef, budget: &dyn Budget) -> Result<Candidate, ConnectorError> {
        let creds = Credentials::from_auth(auth)?;
        let mut candidate = Candidate {
            person: person.clone(),
            complete: true,
            ..Candidate::default()
        };
        let Some(id) = mapping::object_id(&person.0) else {
            return Ok(candidate);
        };
        let path = format!("/crm/v3/objects/contacts/{id}?properties=email,hs_additional_emails,phone,mobilephone");
        let (found, _) = self
            .send::<Object>(&creds, Call::Get(&path), Op::ContactRead, Patience::Brief(budget))
            .await?;
        if let Some(o) = found.filter(|o| !o.archived) {
            candidate.emails = mapping::emails_of(&o);
            candidate.phones = mapping::phones_of(&o);
        }
        Ok(candidate)
    }

    /// One page of the account's owners (`GET /crm/v3/owners`, scope `crm.objects.owners.read`): live ones
    /// (`archived=false`, the default, said anyway), [`OWNERS_PAGE`] a page, `after` from the previous
    /// page's `paging.next.after`. Queues and owners without an email are skipped (logged with their ids).
    async fn agents(&self, auth: &Auth, cursor: Option<&str>, budget: &dyn Budget) -> Result<AgentPage, ConnectorError> {
        let creds = Credentials::from_auth(auth)?;
        let mut path = format!("/crm/v3/owners?limit={OWNERS_PAGE}&archived=false");
        if let Some(after) = cursor {
            path.push_str("&after=");
            path.push_str(&query_value(after));
        }
        let (page, _) = self
            .send::<OwnersPage>(&creds, Call::Get(&path), Op::Owners, Patience::Brief(budget))
            .await?;
        let page = page.ok_or_else(|| ConnectorError::BadGateway {
            message: "HubSpot answered 404 to the owners listing".into(),
        })?;
        let mut skipped: HashMap<&'static str, Vec<String>> = HashMap::new();
        let mut agents = Vec::with_capacity(page.results.len());
        for owner in &page.results {
            match mapping::agent(owner) {
                Ok(a) => agents.push(a),
                Err(why) => skipped
                    .entry(why.reason())
                    .or_default()
                    .push(mapping::id_text(&owner.id).unwrap_or_default()),
            }
        }
        for (reason, ids) in &skipped {
            let shown: Vec<&String> = ids.iter().take(MAX_LOGGED_IDS).collect();
            tracing::info!(reason, count = ids.len(), ids = ?shown, "hubspot owners not listed as agents");
        }
        let next_cursor = match page.paging.and_then(|p| p.next) {
            None => None,
            Some(next) if next.after.trim().is_empty() => {
                return Err(ConnectorError::BadGateway {
                    message: "HubSpot's owners listing says more pages follow but gives an empty `after`".into(),
                })
            }
            Some(next) => Some(next.after),
        };
        Ok(AgentPage { agents, next_cursor })
    }

    /// Two round trips: the account details, the ticket stages (each when not cached) and every asked
    /// type's associations at once; then every type's batch read at once.
    async fn interactions_of(
        &self,
        auth: &Auth,
        person: &PersonRef,
        types: &[String],
        limit: usize,
        budget: &dyn Budget,
    ) -> Result<Option<Vec<Interaction>>, ConnectorError> {
        let creds = Credentials::from_auth(auth)?;
        let Some(contact_id) = mapping::object_id(&person.0) else {
            return Ok(None);
        };
        let kinds: Vec<ObjectKind> = types.iter().filter_map(|k| object_kind(k)).collect();
        let wants_tickets = kinds.iter().any(|k| k.kind == "ticket");
        let stages = async {
            if wants_tickets {
                self.stage_states(&creds, budget).await.map(Some)
            } else {
                Ok(None)
            }
        };
        let associations = futures::future::join_all(
            kinds
                .iter()
                .map(|k| self.associated_ids(&creds, contact_id, k.object_type, limit, budget)),
        );
        let (portal, stages, associations) = futures::join!(self.portal(&creds, budget), stages, associations);
        let portal = portal?;

        // A type the token may not read (403) is left out, logged; the refusal is the answer only when every
        // asked type was refused.
        let refused = |what: &str, scope: &str| {
            tracing::warn!(
                object_type = what,
                scope,
                "the token may not read these interactions; leaving them out"
            );
            ConnectorError::Forbidden {
                message: format!("HubSpot refused to list the contact's {what} (403): the private app needs the {scope} scope"),
            }
        };
        let mut last_refusal: Option<ConnectorError> = None;
        let mut readable: Vec<(ObjectKind, Vec<String>)> = Vec::new();
        for (k, ids) in kinds.iter().zip(associations) {
            match ids {
                Ok(ids) => readable.push((*k, ids)),
                Err(ConnectorError::Forbidden { .. }) => last_refusal = Some(refused(k.object_type, k.scope)),
                Err(e) => return Err(e),
            }
        }
        let reads = futures::future::join_all(
            readable
                .iter()
                .map(|(k, ids)| self.objects(&creds, k.object_type, k.properties, ids, budget)),
        )
        .await;
        let mut out = Vec::new();
        let mut allowed = 0usize;
        let mut stages = Some(stages);
        for ((k, _), objects) in readable.iter().zip(reads) {
            let objects = match objects {
                Ok(o) => o,
                Err(ConnectorError::Forbidden { .. }) => {
                    last_refusal = Some(refused(k.object_type, k.scope));
                    continue;
                }
                Err(e) => return Err(e),
            };
            match k.kind {
                "ticket" if !objects.is_empty() => {
                    // The stages matter only when there are tickets to show.
                    let states = match stages.take().unwrap_or(Ok(None)) {
                        Ok(s) => s.unwrap_or_default(),
                        Err(ConnectorError::Forbidden { .. }) => {
                            last_refusal = Some(refused("ticket pipelines", k.scope));
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    out.extend(objects.iter().filter_map(|o| mapping::ticket(o, &states, &portal)));
                }
                "call" => out.extend(objects.iter().filter_map(|o| mapping::call(o, &portal))),
                "email" => out.extend(objects.iter().filter_map(|o| mapping::email(o, &portal))),
                _ => {}
            }
            allowed += 1;
        }
        match last_refusal {
            Some(e) if allowed == 0 => Err(e),
            _ => Ok(Some(out)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identifiers(emails: usize, phones: usize) -> Vec<Identifier> {
        (0..emails)
            .map(|n| Identifier::Email(format!("p{n}@example.com")))
            .chain((0..phones).map(|n| Identifier::Phone(format!("+1415555{n:04}"))))
            .collect()
    }

    /// The filter groups and filters of the search `find_people_batch` sends for `search`.
    fn sent(search: &[Identifier]) -> Value {
        let emails: Vec<String> = search
            .iter()
            .filter_map(|i| match i {
                Identifier::Email(e) => Some(e.clone()),
                Identifier::Phone(_) => None,
            })
            .collect();
        let digits: Vec<String> = search
            .iter()
            .filter_map(|i| match i {
                Identifier::Phone(p) => crate::phone::national_number(p),
                Identifier::Email(_) => None,
            })
            .collect();
        mapping::people_search(&emails, &digits, None).unwrap()
    }

    #[test]
    fn identifiers_are_packed_into_as_few_searches_as_the_filter_limits_allow_each_once() {
        let sizes = |e, p| search_units(&identifiers(e, p)).iter().map(Vec::len).collect::<Vec<_>>();
        assert_eq!(sizes(1, 1), vec![2], "one search");
        assert_eq!(sizes(3, 2), vec![4, 1], "2 phones + 2 emails (5 groups), 1 email (2 groups)");
        assert_eq!(sizes(4, 0), vec![4], "email IN and four EQ: five groups");
        assert_eq!(sizes(5, 0), vec![4, 1]);
        assert_eq!(sizes(10, 10), vec![12, 4, 4], "the defaults' most: three searches");
        assert_eq!(sizes(0, 11), vec![10, 1]);
        assert_eq!(sizes(25, 12).len(), 8);
        assert!(search_units(&[]).is_empty());
        for (e, p) in [(25, 12), (10, 10), (3, 2), (7, 1), (0, 3), (9, 0)] {
            let all = identifiers(e, p);
            let units = search_units(&all);
            let flat: Vec<Identifier> = units.concat();
            assert_eq!(flat.len(), all.len());
            assert!(all.iter().all(|i| flat.contains(i)));
            // The fewest searches: every phone list needs its own search (two groups), and each search
            // holds at most 4 emails alone or 2 beside phones.
            let lists = p.div_ceil(MAX_IN_VALUES);
            assert_eq!(
                units.len(),
                lists + e.saturating_sub(2 * lists).div_ceil(4),
                "{e} emails, {p} phones"
            );
            for search in &units {
                let body = sent(search);
                let groups = body["filterGroups"].as_array().unwrap();
                assert!(groups.len() <= MAX_FILTER_GROUPS, "{body}");
                assert!(groups
                    .iter()
                    .all(|g| g["filters"].as_array().unwrap().len() <= MAX_FILTERS_PER_GROUP));
                let filters: usize = groups.iter().map(|g| g["filters"].as_array().unwrap().len()).sum();
                assert!(filters <= MAX_FILTERS);
                for g in groups {
                    if let Some(values) = g["filters"][0]["values"].as_array() {
                        assert!(values.len() <= MAX_IN_VALUES, "{body}");
                    }
                }
            }
        }
    }
}
