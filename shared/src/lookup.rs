//! The interaction lookup (Talkdesk's screen-pop), connector-agnostic: every rule a lookup follows lives
//! here once, and a connector only says how its system searches one identifier, reads one person's
//! identifiers and lists one person's interactions (see the lookup half of [`Connector`]).
//!
//! **Identifiers.** Emails are trimmed and lowercased (kept when they hold an `@` and are at most
//! [`MAX_EMAIL_LEN`] bytes), phones are read as E.164 with the deployment's default region; each kind is
//! deduplicated with a set and capped at `BRIDGE_MAX_LOOKUP_IDENTIFIERS` (default 10 emails *and* 10 phones).
//! Repeated entries cost one hash each (a cheap key is compared before anything is parsed); entries past a
//! cap are never parsed nor searched, only counted (`IdentifiersIgnored`) and logged. A name alone never
//! identifies anyone.
//!
//! **Schedule (two round trips).** The external id names its person without a request, so that person's
//! interactions are fetched at once; every search starts at once too. The connector groups the identifiers
//! into searches ([`Connector::search_batches`]: one identifier a search by default; HubSpot ORs many in one
//! request), and each search answers per identifier. A person is fetched as
//! soon as one search shows it with exactly the identifier searched (emails equal once lowercased, phones
//! equal in E.164), not after every search has finished. A candidate whose answer does not show the
//! identifier, and whose system keeps more identifiers than a search shows, has its identifiers read (once
//! per person, concurrently with everything else) and is fetched only if they hold the identifier exactly.
//! So a person found by a primary email or phone costs two round trips (search, fetch), one found by a
//! secondary identity three, one named by external id one.
//!
//! **Bounds.** With E emails and P phones after the caps, S searches (S = E + P for a connector that
//! searches one identifier at a time, fewer for one that batches; never more), C =
//! [`MAX_CANDIDATES_PER_IDENTIFIER`], V = [`MAX_IDENTIFIER_READS`], N = [`MAX_PEOPLE`], and a connector whose
//! search, identifier read and interactions fetch send at most s, i and f requests ([`LookupCosts`], retries
//! included), a lookup makes at most `S·s + min(V, (E + P)·C)·i + N·f` upstream requests
//! ([`request_bound_for`]; [`request_bound`] is the one-identifier-a-search case), and never more than
//! [`MAX_IN_FLIGHT`] at once: a search or identifier read sends its requests one after another and takes one
//! slot, an interactions fetch takes [`LookupCosts::fetch_width`] slots (the most requests it has in flight
//! at once); all lookups of one process together never more than [`MAX_IN_FLIGHT_PER_PROCESS`] (the same
//! widths, as permits). Zendesk has s = i = 2 and f = 2·⌈limit / 100⌉ (at most 5 pages), one slot a fetch:
//! with the defaults (E = P = 10, 100 interactions) that is 20·2 + 10·2 + 10·2 = **80 requests**, at most
//! **10 in flight**. HubSpot: see its module.
//!
//! **Deadline and partial answers.** Everything runs under one deadline: `BRIDGE_LOOKUP_BUDGET_MS` (default
//! 5000), shortened to what is left before the Lambda deadline or API Gateway's 29 s (minus
//! `BRIDGE_TIME_MARGIN_MS`). Each search, identifier read and fetch succeeds or fails on its own; the answer
//! merges what succeeded, filtered to the asked types, deduplicated, newest first, capped at
//! `BRIDGE_MAX_INTERACTIONS`. When the deadline cuts the lookup short, the answer is what was found by then
//! (200), logged and counted (`LookupCutShort`). Only a lookup that found nothing *and* had a failure (or
//! was cut short) is an error, so an empty answer always means "nobody has interactions", never "we could
//! not tell": the most telling failure wins (credentials, then permissions, then rate limiting with the
//! longest `Retry-After`, unavailability, timeout, other upstream errors). Failures are logged by identifier
//! kind and step, never with the value, and counted (`LookupFailures`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use phonenumber::country::Id as Region;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::config::Config;
use crate::connectors::{Candidate, Connector, ConnectorError, Identifier, LookupCosts, LookupHits, PersonRef};
use crate::phone;
use crate::sync::{Budget, Deadline};
use crate::talkdesk::{Auth, ContactLookup, Interaction};

/// Connector calls (and so upstream requests) in flight at once for one lookup.
pub const MAX_IN_FLIGHT: usize = 10;
/// Connector calls in flight at once across every lookup of one process. A Lambda process serves one
/// lookup at a time; a local server serving many at once queues their calls here rather than opening a
/// thousand connections to the external system in one burst.
pub const MAX_IN_FLIGHT_PER_PROCESS: usize = 100;
/// People whose interactions one lookup fetches; more are counted (`PeopleIgnored`) and logged.
pub const MAX_PEOPLE: usize = 10;
/// Candidates of one identifier whose identifiers may be read (those a search shows matching cost nothing).
pub const MAX_CANDIDATES_PER_IDENTIFIER: usize = 3;
/// Identifier reads one lookup may make in all.
pub const MAX_IDENTIFIER_READS: usize = 10;
/// Entries of one kind examined per identifier kept: past `cap × this` entries, the rest are ignored even
/// when fewer than `cap` were valid, so a body of invalid distinct entries cannot cost much parsing.
pub const EXAMINED_PER_KEPT: usize = 5;
/// The longest email kept (RFC 5321's path limit); longer ones are not email addresses.
pub const MAX_EMAIL_LEN: usize = 254;
/// `BRIDGE_LOOKUP_BUDGET_MS` default.
pub const DEFAULT_BUDGET: Duration = Duration::from_millis(5000);
/// `BRIDGE_MAX_LOOKUP_IDENTIFIERS` default: emails, and phones, searched per lookup.
pub const DEFAULT_MAX_IDENTIFIERS: usize = 10;

/// The deployment's lookup settings.
#[derive(Debug, Clone, Copy)]
pub struct LookupLimits {
    /// `BRIDGE_LOOKUP_BUDGET_MS`.
    pub budget: Duration,
    /// `BRIDGE_MAX_LOOKUP_IDENTIFIERS`: per kind.
    pub max_identifiers: usize,
    /// `BRIDGE_MAX_INTERACTIONS`.
    pub max_interactions: usize,
    /// `BRIDGE_DEFAULT_REGION`.
    pub region: Region,
}

impl LookupLimits {
    pub fn from_config(config: &Config) -> Self {
        LookupLimits {
            budget: config.lookup_budget,
            max_identifiers: config.max_lookup_identifiers,
            max_interactions: config.max_interactions,
            region: config.default_region,
        }
    }
}

/// The permits every lookup of this process shares ([`MAX_IN_FLIGHT_PER_PROCESS`]).
pub fn process_permits() -> &'static Semaphore {
    static PERMITS: std::sync::OnceLock<Semaphore> = std::sync::OnceLock::new();
    PERMITS.get_or_init(|| Semaphore::new(MAX_IN_FLIGHT_PER_PROCESS))
}

/// The types to return: those asked for that the connector supports, or all it supports when none were
/// asked for. Unknown types are ignored, so asking only for unknown types yields nothing.
pub fn resolve_types(requested: &[String], supported: &[&'static str]) -> Vec<String> {
    if requested.is_empty() {
        return supported.iter().map(|s| s.to_string()).collect();
    }
    let mut out: Vec<String> = Vec::new();
    for t in requested {
        let t = t.to_ascii_lowercase();
        if supported.contains(&t.as_str()) && !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

/// An email in comparable form, or `None` when it is not one.
pub fn normalise_email(raw: &str) -> Option<String> {
    let e = raw.trim().to_lowercase();
    (e.contains('@') && e.len() <= MAX_EMAIL_LEN).then_some(e)
}

/// Entries past the caps, per kind: never parsed, never searched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ignored {
    pub emails: usize,
    pub phones: usize,
}

impl Ignored {
    pub fn total(&self) -> usize {
        self.emails + self.phones
    }
}

/// What one lookup will do: the identifiers in comparable form, deduplicated and capped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LookupPlan {
    pub external_id: Option<String>,
    pub emails: Vec<String>,
    pub phones: Vec<String>,
    /// Only types the connector supports, never empty.
    pub types: Vec<String>,
    /// The most interactions returned.
    pub limit: usize,
    pub ignored: Ignored,
}

/// The first `cap` distinct entries of `raw` that `normalise` accepts, and how many distinct entries were
/// left unexamined. `key` is a cheap form of an entry such that entries with equal keys normalise alike:
/// a repeated entry costs one hash and is never parsed twice.
fn capped(raw: &[String], cap: usize, key: impl Fn(&str) -> String, normalise: impl Fn(&str) -> Option<String>) -> (Vec<String>, usize) {
    let mut keys: HashSet<String> = HashSet::new();
    let mut kept: Vec<String> = Vec::new();
    let mut kept_set: HashSet<String> = HashSet::new();
    let mut examined = 0usize;
    let mut ignored = 0usize;
    for entry in raw {
        let k = key(entry);
        if k.is_empty() || !keys.insert(k) {
            continue;
        }
        if kept.len() >= cap || examined >= cap.saturating_mul(EXAMINED_PER_KEPT) {
            ignored += 1;
            continue;
        }
        examined += 1;
        if let Some(n) = normalise(entry) {
            if kept_set.insert(n.clone()) {
                kept.push(n);
            }
        }
    }
    (kept, ignored)
}

/// The cheap key of a phone entry: its letters (vanity numbers, extensions), digits and `+`.
fn phone_key(raw: &str) -> String {
    raw.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '+')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Plans the lookup, or `None` when there is nothing to look up: no identifier other than a name (a name
/// alone never identifies a person) or no supported type asked for.
pub fn plan(data: &ContactLookup, requested: &[String], supported: &[&'static str], limits: &LookupLimits) -> Option<LookupPlan> {
    let types = resolve_types(requested, supported);
    if types.is_empty() || !data.has_identifier() {
        return None;
    }
    let cap = limits.max_identifiers.max(1);
    let (emails, ignored_emails) = capped(&data.emails, cap, |e| e.trim().to_lowercase(), normalise_email);
    let region = limits.region;
    let (phones, ignored_phones) = capped(&data.phones, cap, phone_key, |p| phone::to_e164(p, region));
    if data.external_id.is_none() && emails.is_empty() && phones.is_empty() {
        return None;
    }
    Some(LookupPlan {
        external_id: data.external_id.clone(),
        emails,
        phones,
        types,
        limit: limits.max_interactions.max(1),
        ignored: Ignored {
            emails: ignored_emails,
            phones: ignored_phones,
        },
    })
}

/// The most upstream requests a lookup of `emails` emails and `phones` phones (after the caps) makes, for a
/// connector with these costs that searches one identifier at a time (see the module documentation). It
/// also bounds a connector that batches, which never makes more searches than identifiers.
pub fn request_bound(emails: usize, phones: usize, costs: &LookupCosts) -> usize {
    request_bound_for(emails + phones, emails + phones, costs)
}

/// The most upstream requests a lookup makes with `searches` searches of `identifiers` identifiers in all.
pub fn request_bound_for(searches: usize, identifiers: usize, costs: &LookupCosts) -> usize {
    searches * costs.search
        + MAX_IDENTIFIER_READS.min(identifiers * MAX_CANDIDATES_PER_IDENTIFIER) * costs.identifiers
        + MAX_PEOPLE * costs.fetch
}

/// The searches of `identifiers` as `connector` groups them, when its grouping holds every identifier
/// exactly once; one identifier a search otherwise (logged), so the request bound always holds.
pub fn search_batches(connector: &dyn Connector, identifiers: &[Identifier]) -> Vec<Vec<Identifier>> {
    let batches = connector.search_batches(identifiers);
    let mut seen: HashSet<&Identifier> = HashSet::new();
    let exact = batches.iter().all(|b| !b.is_empty())
        && batches.iter().flatten().all(|i| seen.insert(i))
        && seen.len() == identifiers.len()
        && identifiers.iter().all(|i| seen.contains(i));
    if exact {
        return batches;
    }
    tracing::warn!(
        connector = connector.name(),
        "the connector's search batches do not hold every identifier once; searching one identifier at a time"
    );
    identifiers.iter().map(|i| vec![i.clone()]).collect()
}

/// Merges what was found: only the asked types, each interaction once, newest first, at most `cap`.
pub fn merge(found: Vec<Interaction>, types: &[String], cap: usize) -> Vec<Interaction> {
    let mut seen: HashSet<(String, String)> = HashSet::new();
    let mut out: Vec<Interaction> = found
        .into_iter()
        .filter(|i| types.iter().any(|t| t == &i.kind))
        .filter(|i| seen.insert((i.kind.clone(), i.id.clone())))
        .collect();
    out.sort_by(|a, b| b.date.cmp(&a.date).then_with(|| crate::sync::cmp_ids(&b.id, &a.id)));
    out.truncate(cap);
    out
}

/// One step of a lookup that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `search`, `identifiers` or `interactions`.
    pub step: &'static str,
    /// How the person or identifier came in: `external_id`, `email` or `phone`.
    pub kind: &'static str,
    pub error: ConnectorError,
}

/// What a lookup did.
#[derive(Debug, Clone, Default)]
pub struct LookupOutcome {
    /// Merged: asked types only, deduplicated, newest first, capped.
    pub interactions: Vec<Interaction>,
    pub hits: LookupHits,
    pub failures: Vec<Failure>,
    /// The deadline ended the lookup with calls still running or waiting.
    pub cut_short: bool,
    /// Calls running or waiting when the deadline passed.
    pub unfinished: usize,
    /// Connector calls started.
    pub calls: usize,
    /// The most slots held at once: requests that may be in flight (a wide fetch holds several).
    pub max_in_flight: usize,
    /// People found beyond [`MAX_PEOPLE`], never fetched.
    pub people_ignored: usize,
    /// Candidates left unchecked by [`MAX_CANDIDATES_PER_IDENTIFIER`] or [`MAX_IDENTIFIER_READS`].
    pub candidates_unchecked: usize,
    pub ignored: Ignored,
    /// The connector's name for a timeout error (`Zendesk did not answer in time`).
    system: &'static str,
}

impl LookupOutcome {
    /// Talkdesk's answer: what was found, or an error when nothing was found and a step failed or the
    /// deadline cut the lookup short (an empty list would then claim something unknown).
    pub fn answer(self) -> Result<Vec<Interaction>, ConnectorError> {
        if !self.interactions.is_empty() || (self.failures.is_empty() && !self.cut_short) {
            return Ok(self.interactions);
        }
        let mut errors: Vec<ConnectorError> = self.failures.into_iter().map(|f| f.error).collect();
        if self.cut_short {
            errors.push(ConnectorError::Timeout { system: self.system });
        }
        Err(most_telling(errors).unwrap_or(ConnectorError::Timeout { system: self.system }))
    }
}

/// The failure that tells the caller most: what retrying cannot fix first (credentials, permissions), then
/// rate limiting (with the longest `Retry-After` seen), unavailability, timeouts and other upstream errors.
pub fn most_telling(errors: Vec<ConnectorError>) -> Option<ConnectorError> {
    let rank = |e: &ConnectorError| match e {
        ConnectorError::InvalidAuth { .. } => 0,
        ConnectorError::Unauthorized { .. } => 1,
        ConnectorError::Forbidden { .. } => 2,
        ConnectorError::Rejected { .. } | ConnectorError::Unsupported { .. } => 3,
        ConnectorError::RateLimited { .. } => 3,
        ConnectorError::Unavailable { .. } => 4,
        ConnectorError::Timeout { .. } => 5,
        ConnectorError::BadGateway { .. } | ConnectorError::CursorRejected { .. } => 6,
    };
    let best = errors.iter().map(rank).min()?;
    let longest = errors
        .iter()
        .filter(|e| rank(e) == best)
        .filter_map(ConnectorError::retry_after)
        .max();
    let mut chosen = errors.into_iter().find(|e| rank(e) == best)?;
    if let ConnectorError::RateLimited { retry_after, .. } | ConnectorError::Unavailable { retry_after, .. } = &mut chosen {
        *retry_after = longest;
    }
    Some(chosen)
}

/// How a person came into the lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    ExternalId,
    Email,
    Phone,
}

impl Via {
    fn of(identifier: &Identifier) -> Via {
        match identifier {
            Identifier::Email(_) => Via::Email,
            Identifier::Phone(_) => Via::Phone,
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Via::ExternalId => "external_id",
            Via::Email => "email",
            Via::Phone => "phone",
        }
    }
}

/// Whether `candidate` shows `identifier` exactly, once normalised. Only the identifier's own kind is
/// normalised (phone parsing is the costly part).
fn shows(candidate: &Candidate, identifier: &Identifier, region: Region) -> bool {
    match identifier {
        Identifier::Email(e) => candidate.emails.iter().any(|c| normalise_email(c).as_deref() == Some(e.as_str())),
        Identifier::Phone(p) => candidate
            .phones
            .iter()
            .any(|c| phone::to_e164(c, region).as_deref() == Some(p.as_str())),
    }
}

/// An identifier read: waiting (with the identifiers to check once it is done), done, or failed.
enum Read {
    Waiting(Vec<Identifier>),
    Done(Candidate),
    Failed,
}

enum Done {
    Search(Vec<Identifier>, Result<Vec<(Identifier, Vec<Candidate>)>, ConnectorError>),
    Read(PersonRef, Result<Candidate, ConnectorError>),
    Fetch(PersonRef, Result<Option<Vec<Interaction>>, ConnectorError>),
}

type Call<'a> = Pin<Box<dyn Future<Output = Done> + Send + 'a>>;

/// The lookup's state between calls: what is queued, who is confirmed, what was found.
struct Lookup<'a> {
    connector: &'a dyn Connector,
    permits: &'a Semaphore,
    auth: &'a Auth,
    budget: &'a Deadline,
    types: &'a [String],
    limit: usize,
    region: Region,
    /// Slots (and process permits) one interactions fetch takes: [`LookupCosts::fetch_width`].
    fetch_width: usize,
    fetches: VecDeque<PersonRef>,
    reads: VecDeque<PersonRef>,
    searches: VecDeque<Vec<Identifier>>,
    /// Confirmed people (fetched or queued), with how each came in first.
    people: HashMap<PersonRef, Via>,
    external: Option<PersonRef>,
    read_state: HashMap<PersonRef, Read>,
    reads_used: usize,
    ignored_people: HashSet<PersonRef>,
    found: Vec<Interaction>,
    outcome: LookupOutcome,
}

impl<'a> Lookup<'a> {
    /// The next call to start within `room` free slots, with the slots it takes: fetches first (they
    /// complete the answer), then identifier reads, then searches. A fetch wider than the room waits while
    /// narrower calls start. A read whose person was confirmed meanwhile is dropped.
    fn next_call(&mut self, room: usize) -> Option<(Call<'a>, usize)> {
        let (connector, auth, budget, types, limit, permits) =
            (self.connector, self.auth, self.budget, self.types, self.limit, self.permits);
        let width = self.fetch_width;
        if width <= room {
            if let Some(person) = self.fetches.pop_front() {
                return Some((
                    Box::pin(async move {
                        let _permit = permits.acquire_many(width as u32).await.ok();
                        let r = connector.interactions_of(auth, &person, types, limit, budget).await;
                        Done::Fetch(person, r)
                    }),
                    width,
                ));
            }
        }
        if room == 0 {
            return None;
        }
        while let Some(person) = self.reads.pop_front() {
            if self.people.contains_key(&person) {
                continue;
            }
            return Some((
                Box::pin(async move {
                    let _permit = permits.acquire().await.ok();
                    let r = connector.identifiers_of(auth, &person, budget).await;
                    Done::Read(person, r)
                }),
                1,
            ));
        }
        let identifiers = self.searches.pop_front()?;
        Some((
            Box::pin(async move {
                let _permit = permits.acquire().await.ok();
                let r = connector.find_people_batch(auth, &identifiers, budget).await;
                Done::Search(identifiers, r)
            }),
            1,
        ))
    }

    fn queued(&self) -> usize {
        self.fetches.len() + self.reads.len() + self.searches.len()
    }

    /// Slots the call for `done` held.
    fn width_of(&self, done: &Done) -> usize {
        match done {
            Done::Fetch(..) => self.fetch_width,
            _ => 1,
        }
    }

    /// `person` is who the lookup is after: fetch its interactions unless already done or over the cap.
    fn confirm(&mut self, person: PersonRef, via: Via) {
        match via {
            Via::Email => self.outcome.hits.email += 1,
            Via::Phone => self.outcome.hits.phone += 1,
            Via::ExternalId => {}
        }
        if self.people.contains_key(&person) {
            return;
        }
        if self.people.len() >= MAX_PEOPLE {
            self.ignored_people.insert(person);
            return;
        }
        self.people.insert(person.clone(), via);
        self.fetches.push_back(person);
    }

    fn fail(&mut self, step: &'static str, via: Via, error: ConnectorError) {
        tracing::warn!(step, kind = via.kind(), error = %error, "lookup step failed");
        self.outcome.failures.push(Failure {
            step,
            kind: via.kind(),
            error,
        });
    }

    fn finish(&mut self, done: Done) {
        match done {
            Done::Search(identifiers, Ok(found)) => {
                // Only what was asked, each identifier once, whatever the connector listed.
                let asked: HashSet<&Identifier> = identifiers.iter().collect();
                let mut done: HashSet<Identifier> = HashSet::new();
                for (identifier, candidates) in found {
                    if asked.contains(&identifier) && done.insert(identifier.clone()) {
                        self.searched(&identifier, candidates);
                    }
                }
            }
            Done::Search(identifiers, Err(e)) => {
                // One search of several identifiers failed: each of them is a failed search.
                for identifier in &identifiers {
                    self.fail("search", Via::of(identifier), e.clone());
                }
            }
            Done::Read(person, result) => {
                let waiting = match self.read_state.remove(&person) {
                    Some(Read::Waiting(w)) => w,
                    _ => vec![],
                };
                match result {
                    Ok(candidate) => {
                        for identifier in &waiting {
                            if shows(&candidate, identifier, self.region) {
                                self.confirm(person.clone(), Via::of(identifier));
                            }
                        }
                        self.read_state.insert(person, Read::Done(candidate));
                    }
                    Err(e) => {
                        let via = waiting.first().map_or(Via::Email, Via::of);
                        self.fail("identifiers", via, e);
                        self.read_state.insert(person, Read::Failed);
                    }
                }
            }
            Done::Fetch(person, Ok(found)) => {
                if let Some(items) = found {
                    if self.external.as_ref() == Some(&person) {
                        self.outcome.hits.external_id += 1;
                    }
                    self.found.extend(items);
                }
            }
            Done::Fetch(person, Err(e)) => {
                let via = self.people.get(&person).copied().unwrap_or(Via::ExternalId);
                self.fail("interactions", via, e);
            }
        }
    }

    /// A search answered: keep the candidates that show the identifier exactly, and read the identifiers of
    /// a few that may hold it among those the search did not show.
    fn searched(&mut self, identifier: &Identifier, candidates: Vec<Candidate>) {
        let via = Via::of(identifier);
        let mut reads_here = 0usize;
        for candidate in candidates {
            if self.people.contains_key(&candidate.person) {
                continue;
            }
            if shows(&candidate, identifier, self.region) {
                self.confirm(candidate.person, via);
                continue;
            }
            if candidate.complete {
                continue;
            }
            // Either decided by a read already done, waiting on one in flight, or needing a new one.
            let decided = match self.read_state.get_mut(&candidate.person) {
                Some(Read::Done(read)) => Some(shows(read, identifier, self.region)),
                Some(Read::Waiting(waiting)) => {
                    waiting.push(identifier.clone());
                    Some(false)
                }
                Some(Read::Failed) => Some(false),
                None => None,
            };
            match decided {
                Some(true) => self.confirm(candidate.person, via),
                Some(false) => {}
                None if reads_here < MAX_CANDIDATES_PER_IDENTIFIER && self.reads_used < MAX_IDENTIFIER_READS => {
                    reads_here += 1;
                    self.reads_used += 1;
                    self.read_state
                        .insert(candidate.person.clone(), Read::Waiting(vec![identifier.clone()]));
                    self.reads.push_back(candidate.person);
                }
                None => self.outcome.candidates_unchecked += 1,
            }
        }
    }
}

/// Runs the lookup `plan` describes against `connector`, within the deployment's lookup budget and what
/// `outer` (the Lambda / API Gateway deadline) leaves, each call holding one of `permits` (the process's,
/// [`process_permits`]). Never fails: see [`LookupOutcome::answer`].
pub async fn run(
    connector: &dyn Connector,
    auth: &Auth,
    plan: &LookupPlan,
    limits: &LookupLimits,
    outer: &dyn Budget,
    permits: &Semaphore,
) -> LookupOutcome {
    let started = Instant::now();
    let fetch_width = connector.lookup_costs(plan.limit).fetch_width().min(MAX_IN_FLIGHT);
    let identifiers: Vec<Identifier> = plan
        .emails
        .iter()
        .map(|e| Identifier::Email(e.clone()))
        .chain(plan.phones.iter().map(|p| Identifier::Phone(p.clone())))
        .collect();
    let allowed = outer.remaining().map_or(limits.budget, |left| left.min(limits.budget));
    let cut = started + allowed;
    let budget = Deadline::new(started, Some(allowed), Duration::ZERO);
    let mut lookup = Lookup {
        connector,
        permits,
        auth,
        budget: &budget,
        types: &plan.types,
        limit: plan.limit,
        region: limits.region,
        fetch_width,
        fetches: VecDeque::new(),
        reads: VecDeque::new(),
        searches: if identifiers.is_empty() {
            VecDeque::new()
        } else {
            search_batches(connector, &identifiers).into()
        },
        people: HashMap::new(),
        external: None,
        read_state: HashMap::new(),
        reads_used: 0,
        ignored_people: HashSet::new(),
        found: Vec::new(),
        outcome: LookupOutcome {
            ignored: plan.ignored,
            system: connector.display_name(),
            ..LookupOutcome::default()
        },
    };
    if plan.ignored.total() > 0 {
        tracing::warn!(
            emails_ignored = plan.ignored.emails,
            phones_ignored = plan.ignored.phones,
            cap = limits.max_identifiers,
            "lookup identifiers over the cap were ignored"
        );
    }
    if let Some(person) = plan.external_id.as_deref().and_then(|id| connector.person_by_external_id(id)) {
        lookup.external = Some(person.clone());
        lookup.confirm(person, Via::ExternalId);
    }

    let mut in_flight: FuturesUnordered<Call<'_>> = FuturesUnordered::new();
    // Slots held by the calls in flight: each call's most requests at once.
    let mut slots = 0usize;
    let cut_short = loop {
        while let Some((call, width)) = lookup.next_call(MAX_IN_FLIGHT - slots) {
            in_flight.push(call);
            slots += width;
            lookup.outcome.calls += 1;
        }
        lookup.outcome.max_in_flight = lookup.outcome.max_in_flight.max(slots);
        if in_flight.is_empty() {
            break false;
        }
        match tokio::time::timeout_at(cut, in_flight.next()).await {
            Ok(Some(done)) => {
                slots -= lookup.width_of(&done);
                lookup.finish(done)
            }
            Ok(None) => break false,
            Err(_) => break true,
        }
    };
    let unfinished = in_flight.len() + lookup.queued();
    drop(in_flight);

    let mut outcome = std::mem::take(&mut lookup.outcome);
    outcome.cut_short = cut_short && unfinished > 0;
    outcome.unfinished = if outcome.cut_short { unfinished } else { 0 };
    outcome.people_ignored = lookup.ignored_people.len();
    outcome.interactions = merge(std::mem::take(&mut lookup.found), &plan.types, plan.limit);
    if outcome.cut_short {
        tracing::warn!(
            budget_ms = allowed.as_millis() as u64,
            unfinished,
            found = outcome.interactions.len(),
            "lookup cut short by its deadline; answering with what was found"
        );
    }
    if outcome.people_ignored > 0 || outcome.candidates_unchecked > 0 {
        tracing::warn!(
            people_ignored = outcome.people_ignored,
            candidates_unchecked = outcome.candidates_unchecked,
            "lookup found more than it fetches or checks"
        );
    }
    tracing::debug!(
        calls = outcome.calls,
        max_in_flight = outcome.max_in_flight,
        people = lookup.people.len(),
        failures = outcome.failures.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "lookup done"
    );
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::talkdesk::{Priority, Status};
    use async_trait::async_trait;
    use chrono::{TimeZone, Utc};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    fn interaction(id: &str, kind: &str, day: u32) -> Interaction {
        Interaction {
            id: id.into(),
            subject: format!("s{id}"),
            description: String::new(),
            date: Utc.with_ymd_and_hms(2025, 1, day, 0, 0, 0).unwrap(),
            url: format!("https://x/{id}"),
            kind: kind.into(),
            priority: Priority::Normal,
            status: Status::Open,
        }
    }

    fn us() -> Region {
        phone::parse_region("US").unwrap()
    }

    fn limits(budget_ms: u64) -> LookupLimits {
        LookupLimits {
            budget: Duration::from_millis(budget_ms),
            max_identifiers: DEFAULT_MAX_IDENTIFIERS,
            max_interactions: 100,
            region: us(),
        }
    }

    #[test]
    fn missing_types_mean_all_supported_and_unknown_types_are_ignored() {
        let supported = ["ticket", "call"];
        assert_eq!(resolve_types(&[], &supported), vec!["ticket", "call"]);
        assert_eq!(
            resolve_types(&["Call".into(), "fax".into(), "call".into()], &supported),
            vec!["call"]
        );
        assert!(resolve_types(&["fax".into()], &supported).is_empty());
    }

    #[test]
    fn a_name_alone_never_becomes_a_lookup() {
        let data = ContactLookup {
            name: Some("Jane Doe".into()),
            ..Default::default()
        };
        assert!(plan(&data, &[], &["ticket"], &limits(5000)).is_none());
    }

    #[test]
    fn identifiers_are_normalised_and_deduplicated() {
        let data = ContactLookup {
            emails: vec!["Jane@Example.com".into(), " jane@example.com ".into(), "not-an-email".into()],
            phones: vec!["(415) 555-0134".into(), "+1 415 555 0134".into(), "nope".into()],
            ..Default::default()
        };
        let p = plan(&data, &[], &["ticket"], &limits(5000)).unwrap();
        assert_eq!(p.emails, vec!["jane@example.com"]);
        assert_eq!(p.phones, vec!["+14155550134"]);
        assert_eq!(p.ignored, Ignored::default());
        let only_garbage = ContactLookup {
            emails: vec!["nope".into(), format!("{}@x.co", "a".repeat(300))],
            ..Default::default()
        };
        assert!(plan(&only_garbage, &[], &["ticket"], &limits(5000)).is_none());
    }

    #[test]
    fn each_kind_is_capped_after_deduplication_and_the_rest_is_counted_not_parsed() {
        // 100,000 entries: duplicates in every case of 30 distinct emails, and phones that repeat.
        let mut emails: Vec<String> = Vec::new();
        for round in 0..2_000 {
            for n in 0..30 {
                let e = format!("person{n}@example.com");
                emails.push(if round % 2 == 0 { e } else { e.to_uppercase() });
            }
        }
        let phones: Vec<String> = (0..40_000).map(|i| format!("+1 415 555 {:04}", i % 25)).collect();
        let data = ContactLookup {
            emails,
            phones,
            ..Default::default()
        };
        let p = plan(&data, &[], &["ticket"], &limits(5000)).unwrap();
        assert_eq!(p.emails.len(), DEFAULT_MAX_IDENTIFIERS);
        assert_eq!(p.emails[0], "person0@example.com");
        assert_eq!(p.phones.len(), DEFAULT_MAX_IDENTIFIERS);
        assert_eq!(p.phones[0], "+14155550000");
        // Distinct entries past the cap: 20 emails (once lowercased) and 15 phones.
        assert_eq!(p.ignored, Ignored { emails: 20, phones: 15 });
    }

    #[test]
    fn distinct_invalid_entries_stop_being_examined() {
        let data = ContactLookup {
            emails: (0..10_000)
                .map(|i| format!("no-at-sign-{i}"))
                .chain(["late@example.com".to_string()])
                .collect(),
            ..Default::default()
        };
        let p = plan(&data, &[], &["ticket"], &limits(5000));
        assert!(
            p.is_none(),
            "the valid entry came after {} examined ones",
            DEFAULT_MAX_IDENTIFIERS * EXAMINED_PER_KEPT
        );
    }

    #[test]
    fn merge_filters_dedupes_sorts_newest_first_and_caps() {
        let found = vec![
            interaction("1", "ticket", 1),
            interaction("2", "ticket", 5),
            interaction("1", "ticket", 1),
            interaction("3", "call", 9),
            interaction("4", "ticket", 3),
            interaction("5", "fax", 20),
        ];
        let merged = merge(found.clone(), &["ticket".into(), "call".into()], 10);
        let ids: Vec<&str> = merged.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, vec!["3", "2", "4", "1"]);
        let capped = merge(found, &["ticket".into()], 2);
        assert_eq!(capped.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), vec!["2", "4"]);
    }

    #[test]
    fn the_request_bound_follows_the_stated_formula() {
        let zendesk_like = LookupCosts {
            search: 2,
            identifiers: 2,
            fetch: 2,
            fetch_in_flight: 1,
        };
        assert_eq!(request_bound(10, 10, &zendesk_like), 20 * 2 + 10 * 2 + 10 * 2);
        // One search for the twenty identifiers (HubSpot's defaults).
        assert_eq!(request_bound_for(1, 20, &zendesk_like), 2 + 10 * 2 + 10 * 2);
        assert_eq!(request_bound(1, 0, &zendesk_like), 2 + 3 * 2 + 10 * 2);
        assert_eq!(request_bound(0, 0, &zendesk_like), MAX_PEOPLE * 2);
    }

    #[test]
    fn the_most_telling_failure_wins_with_the_longest_retry_after() {
        let s = Duration::from_secs;
        let limited = |secs| ConnectorError::RateLimited {
            system: "X",
            retry_after: Some(s(secs)),
        };
        let timeout = ConnectorError::Timeout { system: "X" };
        assert_eq!(
            most_telling(vec![timeout.clone(), limited(3), limited(30), limited(7)]),
            Some(limited(30))
        );
        assert_eq!(
            most_telling(vec![limited(3), ConnectorError::Unauthorized { system: "X" }]),
            Some(ConnectorError::Unauthorized { system: "X" })
        );
        let bad = ConnectorError::BadGateway { message: "m".into() };
        assert_eq!(most_telling(vec![bad.clone(), timeout.clone()]), Some(timeout));
        assert_eq!(most_telling(vec![bad.clone()]), Some(bad));
        assert_eq!(most_telling(vec![]), None);
    }

    // ------------------------------------------------------------------------------------------------
    // The scheduler against an in-memory connector whose calls take (paused) time, hang or fail.

    /// What one call of the test connector does.
    #[derive(Clone)]
    enum Act {
        After(Duration),
        Hang,
        Fail(ConnectorError),
    }

    /// Id, emails, phones, interactions.
    type FakePerson = (String, Vec<String>, Vec<String>, Vec<Interaction>);

    /// People by id with their emails, phones and interactions; searches show only the first email and
    /// phone (like Zendesk's primary fields), so secondary ones need an identifier read.
    #[derive(Default)]
    struct Fake {
        /// Every search returns every person (a very loose search).
        loose: bool,
        /// Searches every identifier in one call (`search:batch`); with `lose_one`, a grouping that leaves
        /// the last identifier out.
        batch: bool,
        lose_one: bool,
        /// [`LookupCosts::fetch_in_flight`].
        fetch_width: usize,
        people: Vec<FakePerson>,
        acts: Mutex<HashMap<String, Act>>,
        in_flight: AtomicUsize,
        max_in_flight: AtomicUsize,
        calls: Mutex<Vec<(String, Instant, Instant)>>,
    }

    impl Fake {
        fn person(mut self, id: &str, emails: &[&str], phones: &[&str], interactions: &[&str]) -> Self {
            let items = interactions
                .iter()
                .enumerate()
                .map(|(n, i)| interaction(i, "ticket", n as u32 + 1))
                .collect();
            self.people.push((
                id.into(),
                emails.iter().map(|s| s.to_string()).collect(),
                phones.iter().map(|s| s.to_string()).collect(),
                items,
            ));
            self
        }

        /// `what` is `search:<value>`, `read:<id>` or `fetch:<id>`.
        fn on(self, what: &str, act: Act) -> Self {
            self.acts.lock().unwrap().insert(what.into(), act);
            self
        }

        async fn act(&self, what: String) -> Result<(), ConnectorError> {
            let act = self
                .acts
                .lock()
                .unwrap()
                .get(&what)
                .cloned()
                .unwrap_or(Act::After(Duration::from_millis(100)));
            let n = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(n, Ordering::SeqCst);
            let started = Instant::now();
            let result = match act {
                Act::After(d) => {
                    tokio::time::sleep(d).await;
                    Ok(())
                }
                Act::Hang => std::future::pending().await,
                Act::Fail(e) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Err(e)
                }
            };
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            self.calls.lock().unwrap().push((what, started, Instant::now()));
            result
        }

        /// What a (loose) search of `identifier` shows: the first email and phone of each person.
        fn candidates(&self, identifier: &Identifier) -> Vec<Candidate> {
            let needle = identifier.value().trim_start_matches('+');
            self.people
                .iter()
                .filter(|(_, emails, phones, _)| {
                    self.loose
                        || emails
                            .iter()
                            .chain(phones)
                            .any(|v| v.to_lowercase().replace(' ', "").contains(needle))
                })
                .map(|(id, emails, phones, _)| Candidate {
                    person: PersonRef(id.clone()),
                    emails: emails.iter().take(1).cloned().collect(),
                    phones: phones.iter().take(1).cloned().collect(),
                    complete: false,
                })
                .collect()
        }

        fn call(&self, what: &str) -> Option<(Instant, Instant)> {
            self.calls.lock().unwrap().iter().find(|c| c.0 == what).map(|c| (c.1, c.2))
        }

        fn count(&self, prefix: &str) -> usize {
            self.calls.lock().unwrap().iter().filter(|c| c.0.starts_with(prefix)).count()
        }
    }

    #[async_trait]
    impl Connector for Fake {
        fn name(&self) -> &'static str {
            "fake"
        }
        fn interaction_types(&self) -> &[&'static str] {
            &["ticket"]
        }
        fn max_page_size(&self) -> usize {
            1
        }
        fn indexing_lag(&self) -> Duration {
            Duration::ZERO
        }
        fn account(&self, _auth: &Auth) -> Result<String, ConnectorError> {
            Ok("fake".into())
        }
        async fn contacts(
            &self,
            _auth: &Auth,
            _query: &crate::connectors::ContactQuery<'_>,
        ) -> Result<crate::connectors::ContactBatch, ConnectorError> {
            Ok(Default::default())
        }
        fn person_by_external_id(&self, external_id: &str) -> Option<PersonRef> {
            Some(PersonRef(external_id.to_string()))
        }
        fn lookup_costs(&self, _limit: usize) -> LookupCosts {
            LookupCosts {
                search: 1,
                identifiers: 1,
                fetch: 1,
                fetch_in_flight: self.fetch_width,
            }
        }
        fn search_batches(&self, identifiers: &[Identifier]) -> Vec<Vec<Identifier>> {
            match (self.batch, self.lose_one) {
                (false, _) => identifiers.iter().map(|i| vec![i.clone()]).collect(),
                (true, false) => vec![identifiers.to_vec()],
                (true, true) => vec![identifiers[..identifiers.len() - 1].to_vec()],
            }
        }
        async fn find_people_batch(
            &self,
            _auth: &Auth,
            identifiers: &[Identifier],
            _budget: &dyn Budget,
        ) -> Result<Vec<(Identifier, Vec<Candidate>)>, ConnectorError> {
            if !self.batch || identifiers.len() == 1 {
                let mut out = vec![];
                for i in identifiers {
                    self.act(format!("search:{}", i.value())).await?;
                    out.push((i.clone(), self.candidates(i)));
                }
                return Ok(out);
            }
            self.act("search:batch".into()).await?;
            // Every candidate under every identifier: the lookup layer keeps the exact matches.
            let all: Vec<Candidate> = identifiers.iter().flat_map(|i| self.candidates(i)).collect();
            Ok(identifiers.iter().map(|i| (i.clone(), all.clone())).collect())
        }
        async fn find_people(&self, _auth: &Auth, identifier: &Identifier, _budget: &dyn Budget) -> Result<Vec<Candidate>, ConnectorError> {
            self.act(format!("search:{}", identifier.value())).await?;
            Ok(self.candidates(identifier))
        }
        async fn identifiers_of(&self, _auth: &Auth, person: &PersonRef, _budget: &dyn Budget) -> Result<Candidate, ConnectorError> {
            self.act(format!("read:{}", person.0)).await?;
            let p = self.people.iter().find(|p| p.0 == person.0);
            Ok(Candidate {
                person: person.clone(),
                emails: p.map(|p| p.1.clone()).unwrap_or_default(),
                phones: p.map(|p| p.2.clone()).unwrap_or_default(),
                complete: true,
            })
        }
        async fn interactions_of(
            &self,
            _auth: &Auth,
            person: &PersonRef,
            _types: &[String],
            _limit: usize,
            _budget: &dyn Budget,
        ) -> Result<Option<Vec<Interaction>>, ConnectorError> {
            self.act(format!("fetch:{}", person.0)).await?;
            Ok(self.people.iter().find(|p| p.0 == person.0).map(|p| p.3.clone()))
        }
    }

    fn lookup_of(external_id: Option<&str>, emails: &[&str], phones: &[&str]) -> LookupPlan {
        plan(
            &ContactLookup {
                external_id: external_id.map(String::from),
                emails: emails.iter().map(|s| s.to_string()).collect(),
                phones: phones.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            },
            &[],
            &["ticket"],
            &limits(5000),
        )
        .unwrap()
    }

    fn ids(found: &[Interaction]) -> Vec<&str> {
        let mut v: Vec<&str> = found.iter().map(|i| i.id.as_str()).collect();
        v.sort_unstable();
        v
    }

    async fn run_fake(fake: &Fake, plan: &LookupPlan, budget_ms: u64) -> LookupOutcome {
        let permits = Semaphore::new(MAX_IN_FLIGHT_PER_PROCESS);
        run(
            fake,
            &Auth::default(),
            plan,
            &limits(budget_ms),
            &crate::sync::budget::Unlimited,
            &permits,
        )
        .await
    }

    fn two_people() -> Fake {
        Fake::default()
            .person("1", &["ann@example.com", "ann@work.example"], &["+14155550101"], &["a1", "a2"])
            .person("2", &["bob@example.com"], &["+14155550102"], &["b1"])
    }

    #[tokio::test(start_paused = true)]
    async fn a_person_is_fetched_as_soon_as_one_search_finds_it() {
        let fake = two_people().on("search:+14155550102", Act::After(Duration::from_secs(3)));
        let p = lookup_of(None, &["ann@example.com"], &["415 555 0102"]);
        let out = run_fake(&fake, &p, 5000).await;
        assert_eq!(ids(&out.interactions), vec!["a1", "a2", "b1"]);
        let (fetch_started, _) = fake.call("fetch:1").unwrap();
        let (_, slow_search_done) = fake.call("search:+14155550102").unwrap();
        assert!(fetch_started < slow_search_done, "ann's tickets waited for bob's search");
        assert_eq!(
            out.hits,
            LookupHits {
                external_id: 0,
                email: 1,
                phone: 1
            }
        );
        assert!(!out.cut_short && out.failures.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn the_external_id_is_fetched_at_once_with_no_search() {
        let fake = two_people();
        let started = Instant::now();
        let out = run_fake(&fake, &lookup_of(Some("2"), &[], &[]), 5000).await;
        assert_eq!(ids(&out.interactions), vec!["b1"]);
        assert_eq!((out.calls, fake.count("search:")), (1, 0));
        assert_eq!(fake.call("fetch:2").unwrap().0, started, "no call came before it");
        assert_eq!(out.hits.external_id, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_secondary_identifier_is_confirmed_by_reading_the_candidates_identifiers() {
        // "ann@work.example" is not among what the search shows; "ann" matches both people loosely.
        let fake = two_people();
        let out = run_fake(&fake, &lookup_of(None, &["ann@work.example"], &[]), 5000).await;
        assert_eq!(ids(&out.interactions), vec!["a1", "a2"]);
        assert_eq!(fake.count("read:"), 1);
        // A loose match that is not the person is read and dropped, never fetched.
        let fake = two_people().person("3", &["xann@work.example.org"], &[], &["x1"]);
        let out = run_fake(&fake, &lookup_of(None, &["ann@work.example"], &[]), 5000).await;
        assert_eq!(ids(&out.interactions), vec!["a1", "a2"]);
        assert_eq!((fake.count("read:"), fake.count("fetch:3")), (2, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn one_failing_identifier_does_not_sink_the_others() {
        let limited = ConnectorError::RateLimited {
            system: "X",
            retry_after: Some(Duration::from_secs(30)),
        };
        let fake = two_people().on("search:bob@example.com", Act::Fail(limited.clone()));
        let out = run_fake(&fake, &lookup_of(None, &["ann@example.com", "bob@example.com"], &[]), 5000).await;
        assert_eq!(out.failures.len(), 1);
        assert_eq!((out.failures[0].step, out.failures[0].kind), ("search", "email"));
        assert_eq!(ids(&out.clone().answer().unwrap()), vec!["a1", "a2"]);
        // A failing fetch of one person does not sink another's.
        let fake = two_people().on("fetch:2", Act::Fail(limited.clone()));
        let out = run_fake(&fake, &lookup_of(Some("2"), &["ann@example.com"], &[]), 5000).await;
        assert_eq!(ids(&out.answer().unwrap()), vec!["a1", "a2"]);
        // Nothing found and a failure: the failure is the answer.
        let fake = two_people().on("search:bob@example.com", Act::Fail(limited.clone()));
        let out = run_fake(&fake, &lookup_of(None, &["nobody@example.com", "bob@example.com"], &[]), 5000).await;
        assert_eq!(out.answer().unwrap_err(), limited);
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_cuts_the_lookup_and_keeps_what_was_found() {
        let fake = two_people().on("search:+14155550102", Act::Hang);
        let started = Instant::now();
        let out = run_fake(&fake, &lookup_of(None, &["ann@example.com"], &["415 555 0102"]), 2000).await;
        assert_eq!(started.elapsed(), Duration::from_millis(2000), "answered at the deadline");
        assert!(out.cut_short);
        assert_eq!(out.unfinished, 1);
        assert_eq!(ids(&out.answer().unwrap()), vec!["a1", "a2"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lookup_that_finds_nothing_before_the_deadline_is_a_timeout() {
        let fake = two_people().on("search:ann@example.com", Act::Hang).on("fetch:2", Act::Hang);
        let out = run_fake(&fake, &lookup_of(Some("2"), &["ann@example.com"], &[]), 1500).await;
        assert!(out.cut_short);
        assert_eq!(out.answer().unwrap_err(), ConnectorError::Timeout { system: "fake" });
    }

    #[tokio::test(start_paused = true)]
    async fn the_outer_deadline_shortens_the_lookup_budget() {
        let fake = two_people().on("search:ann@example.com", Act::Hang);
        let started = Instant::now();
        let outer = Deadline::new(started, Some(Duration::from_millis(700)), Duration::ZERO);
        let p = lookup_of(None, &["ann@example.com"], &[]);
        let permits = Semaphore::new(MAX_IN_FLIGHT_PER_PROCESS);
        let out = run(&fake, &Auth::default(), &p, &limits(5000), &outer, &permits).await;
        assert!(out.cut_short);
        assert_eq!(started.elapsed(), Duration::from_millis(700));
    }

    #[tokio::test(start_paused = true)]
    async fn calls_stay_within_the_in_flight_limit_and_the_request_bound() {
        // 20 identifiers, each loosely matching all 30 people, shown without it: the worst case for reads.
        let mut fake = Fake {
            loose: true,
            ..Fake::default()
        };
        for n in 0..30 {
            let email = format!("p{n}@example.com");
            fake = fake.person(&n.to_string(), &[&format!("primary{n}@x.co"), &email], &[], &["t"]);
        }
        let emails: Vec<String> = (0..10).map(|n| format!("p{n}@example.com")).collect();
        let phones: Vec<String> = (0..10).map(|n| format!("+1 415 555 01{n:02}")).collect();
        let p = lookup_of(
            Some("29"),
            &emails.iter().map(String::as_str).collect::<Vec<_>>(),
            &phones.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let out = run_fake(&fake, &p, 60_000).await;
        let bound = request_bound(p.emails.len(), p.phones.len(), &fake.lookup_costs(100));
        assert!(out.calls <= bound, "{} calls, bound {bound}", out.calls);
        assert!(out.max_in_flight <= MAX_IN_FLIGHT);
        assert_eq!(fake.max_in_flight.load(Ordering::SeqCst), out.max_in_flight);
        assert_eq!(out.max_in_flight, MAX_IN_FLIGHT, "searches start together");
        assert!(fake.count("read:") <= MAX_IDENTIFIER_READS);
        assert!(fake.count("fetch:") <= MAX_PEOPLE);
    }

    #[tokio::test(start_paused = true)]
    async fn lookups_running_together_share_the_process_limit() {
        let fake = two_people();
        let permits = Semaphore::new(4);
        let p = lookup_of(
            Some("1"),
            &["ann@example.com", "bob@example.com"],
            &["415 555 0101", "415 555 0102"],
        );
        let (auth, lim) = (Auth::default(), limits(60_000));
        let lookup = || run(&fake, &auth, &p, &lim, &crate::sync::budget::Unlimited, &permits);
        let (a, b, c) = tokio::join!(lookup(), lookup(), lookup());
        for out in [a, b, c] {
            assert_eq!(ids(&out.interactions), vec!["a1", "a2", "b1"]);
            assert_eq!(out.max_in_flight, 5, "each lookup started its fetch and searches at once");
        }
        assert_eq!(fake.max_in_flight.load(Ordering::SeqCst), 4, "but only 4 ran at once in all");
    }

    #[tokio::test(start_paused = true)]
    async fn a_batched_search_is_one_call_and_each_identifier_confirms_its_own_person() {
        let batched = || Fake {
            batch: true,
            ..two_people()
        };
        let fake = batched();
        let p = lookup_of(None, &["ann@example.com", "nobody@example.com"], &["415 555 0102"]);
        let out = run_fake(&fake, &p, 5000).await;
        assert_eq!(ids(&out.interactions), vec!["a1", "a2", "b1"]);
        assert_eq!(
            (fake.count("search:"), fake.count("search:batch")),
            (1, 1),
            "one search for three identifiers"
        );
        assert_eq!((out.hits.email, out.hits.phone), (1, 1), "ann by her email, bob by his phone");
        assert_eq!(out.calls, 3, "one search, two fetches");
        // The batch fails as a whole: each of its identifiers is a failed search.
        let fake = batched().on("search:batch", Act::Fail(ConnectorError::Timeout { system: "fake" }));
        let out = run_fake(&fake, &p, 5000).await;
        assert_eq!(out.failures.len(), 3);
        assert_eq!(out.answer().unwrap_err(), ConnectorError::Timeout { system: "fake" });
    }

    #[tokio::test(start_paused = true)]
    async fn a_grouping_that_loses_an_identifier_is_replaced_by_one_search_each() {
        let fake = Fake {
            batch: true,
            lose_one: true,
            ..two_people()
        };
        let p = lookup_of(None, &["ann@example.com"], &["415 555 0102"]);
        let out = run_fake(&fake, &p, 5000).await;
        assert_eq!(ids(&out.interactions), vec!["a1", "a2", "b1"], "bob's phone was still searched");
        assert_eq!((fake.count("search:"), fake.count("search:batch")), (2, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wide_fetch_holds_as_many_slots_as_it_may_have_requests_in_flight() {
        let mut fake = Fake {
            fetch_width: 4,
            ..Fake::default()
        };
        for n in 0..12u64 {
            let email = format!("p{n}@example.com");
            fake = fake
                .person(&n.to_string(), &[&email], &[], &["t"])
                .on(&format!("search:{email}"), Act::After(Duration::from_millis(100 + n * 10)));
        }
        // The fetch by external id runs while every search does.
        fake = fake.on("fetch:11", Act::After(Duration::from_millis(500)));
        let emails: Vec<String> = (0..10).map(|n| format!("p{n}@example.com")).collect();
        let p = lookup_of(Some("11"), &emails.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
        let out = run_fake(&fake, &p, 60_000).await;
        assert_eq!(out.max_in_flight, MAX_IN_FLIGHT, "slots, i.e. requests, never past the limit");
        // The fetch by external id (4 slots) and six searches started together: 7 calls, 10 requests.
        assert_eq!(fake.max_in_flight.load(Ordering::SeqCst), 7);
        assert_eq!(fake.count("fetch:"), MAX_PEOPLE);
    }
}
