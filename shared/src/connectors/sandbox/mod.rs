//! The embedded sandbox: an external system that lives in memory, so the bridge runs end to end with no
//! account anywhere. Its data is generated deterministically (see [`data`]) or read from `SANDBOX_DATA`.
//! Tests change it between pages through [`SandboxStore`].
//!
//! Nothing of it is built at INIT unless `SANDBOX_DATA` names a file (read then, so a bad file fails INIT):
//! the generated data is made on first use, and the phone index on the first lookup by phone, because
//! making both (2,500 contacts, about 12,500 interactions, every phone number parsed) took a cold start
//! from 2 ms to about 120 ms (issue 14, BENCHMARKS.md).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::Bound;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use phonenumber::country::Id as Region;

use super::{
    AgentPage, Candidate, Connector, ConnectorError, ContactBatch, ContactQuery, ContactRecord, Identifier, LookupCosts, PersonRef,
};
use crate::config::{Config, ConfigError};
use crate::phone;
use crate::sync::{Position, SyncKey};
use crate::talkdesk::registration::Integration;
use crate::talkdesk::{Agent, Auth, Interaction};

pub mod data;

pub use data::{generate, GenerateOptions, SandboxContact, SandboxData, SandboxInteraction};

#[derive(Default)]
struct State {
    contacts: HashMap<String, SandboxContact>,
    order: BTreeSet<SyncKey>,
    by_email: HashMap<String, HashSet<String>>,
    /// Built on the first lookup by phone (parsing every number is the expensive part), then kept up to
    /// date by [`SandboxStore::upsert`].
    by_phone: Option<HashMap<String, HashSet<String>>>,
    interactions: HashMap<String, Vec<Interaction>>,
    agents: Vec<Agent>,
}

/// The sandbox's records, indexed for sync order and for lookups by email and phone.
pub struct SandboxStore {
    state: RwLock<State>,
    region: Region,
}

impl SandboxStore {
    /// `region` reads phone numbers stored without a country code.
    pub fn new(data: SandboxData, region: Region) -> Self {
        let store = SandboxStore {
            state: RwLock::new(State::default()),
            region,
        };
        for c in data.contacts {
            store.upsert(c);
        }
        {
            let mut st = store.write();
            for i in data.interactions {
                st.interactions.entry(i.contact_id).or_default().push(i.interaction);
            }
            st.agents = data.agents;
        }
        store
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a contact or replaces the one with the same id.
    pub fn upsert(&self, record: SandboxContact) {
        let mut st = self.write();
        let id = record.contact.id.clone();
        if let Some(old) = st.contacts.remove(&id) {
            st.order.remove(&SyncKey::new(old.updated_at, id.clone()));
            for e in &old.contact.emails {
                if let Some(set) = st.by_email.get_mut(&e.to_lowercase()) {
                    set.remove(&id);
                }
            }
            if st.by_phone.is_some() {
                for p in &old.contact.phones {
                    if let Some(set) = phone::to_e164(p, self.region).and_then(|k| st.by_phone.as_mut()?.get_mut(&k)) {
                        set.remove(&id);
                    }
                }
            }
        }
        st.order.insert(SyncKey::new(record.updated_at, id.clone()));
        for e in &record.contact.emails {
            st.by_email.entry(e.to_lowercase()).or_default().insert(id.clone());
        }
        if let Some(by_phone) = st.by_phone.as_mut() {
            for p in &record.contact.phones {
                if let Some(k) = phone::to_e164(p, self.region) {
                    by_phone.entry(k).or_default().insert(id.clone());
                }
            }
        }
        st.contacts.insert(id, record);
    }

    /// The state with its phone index built.
    fn read_with_phones(&self) -> std::sync::RwLockReadGuard<'_, State> {
        {
            let st = self.read();
            if st.by_phone.is_some() {
                return st;
            }
        }
        {
            let mut st = self.write();
            if st.by_phone.is_none() {
                let mut by_phone: HashMap<String, HashSet<String>> = HashMap::new();
                for (id, c) in &st.contacts {
                    for p in &c.contact.phones {
                        if let Some(k) = phone::to_e164(p, self.region) {
                            by_phone.entry(k).or_default().insert(id.clone());
                        }
                    }
                }
                st.by_phone = Some(by_phone);
            }
        }
        self.read()
    }

    /// Adds an interaction to a contact.
    pub fn add_interaction(&self, contact_id: &str, interaction: Interaction) {
        self.write()
            .interactions
            .entry(contact_id.to_string())
            .or_default()
            .push(interaction);
    }

    pub fn get(&self, id: &str) -> Option<SandboxContact> {
        self.read().contacts.get(id).cloned()
    }

    pub fn len(&self) -> usize {
        self.read().contacts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every contact, in sync order.
    pub fn snapshot(&self) -> Vec<SandboxContact> {
        let st = self.read();
        st.order.iter().filter_map(|k| st.contacts.get(&k.id).cloned()).collect()
    }

    /// Contacts after `after`, updated no later than `until`, in sync order.
    pub fn page(&self, after: Option<&Position>, until: chrono::DateTime<chrono::Utc>, limit: usize) -> (Vec<ContactRecord>, bool) {
        let st = self.read();
        let until = crate::sync::position::micros(until);
        let start = match after {
            None => Bound::Unbounded,
            // "0" sorts first among the ids at an instant.
            Some(p) => Bound::Included(SyncKey { ts: p.ts, id: "0".into() }),
        };
        let mut records = Vec::new();
        let mut done = true;
        for key in st.order.range((start, Bound::Unbounded)) {
            if after.is_some_and(|p| !p.admits(key)) {
                continue;
            }
            if key.ts > until {
                break;
            }
            if records.len() == limit {
                done = false;
                break;
            }
            if let Some(c) = st.contacts.get(&key.id) {
                records.push(ContactRecord {
                    updated_at: c.updated_at,
                    contact: c.contact.clone(),
                });
            }
        }
        (records, done)
    }

    /// The contacts holding `identifier` (already normalised), each with all its emails and phones.
    pub fn people_with(&self, identifier: &Identifier) -> Vec<Candidate> {
        let st = match identifier {
            Identifier::Email(_) => self.read(),
            Identifier::Phone(_) => self.read_with_phones(),
        };
        let index = match identifier {
            Identifier::Email(_) => Some(&st.by_email),
            Identifier::Phone(_) => st.by_phone.as_ref(),
        };
        let mut ids: Vec<&String> = index.and_then(|i| i.get(identifier.value())).into_iter().flatten().collect();
        ids.sort_unstable();
        ids.into_iter().filter_map(|id| st.contacts.get(id)).map(candidate_of).collect()
    }

    /// Every email and phone of contact `id`; empty when it does not exist.
    pub fn identifiers_of(&self, id: &str) -> Candidate {
        match self.read().contacts.get(id) {
            Some(c) => candidate_of(c),
            None => Candidate {
                person: PersonRef(id.to_string()),
                complete: true,
                ..Candidate::default()
            },
        }
    }

    /// Up to `limit` agents from the `from`-th, and whether more follow.
    pub fn agents(&self, from: usize, limit: usize) -> (Vec<Agent>, bool) {
        let st = self.read();
        let page: Vec<Agent> = st.agents.iter().skip(from).take(limit).cloned().collect();
        let more = from + page.len() < st.agents.len();
        (page, more)
    }

    /// Replaces the agents.
    pub fn set_agents(&self, agents: Vec<Agent>) {
        self.write().agents = agents;
    }

    /// Contact `id`'s interactions of the given types; `None` when the contact does not exist.
    pub fn interactions_of(&self, id: &str, types: &[String]) -> Option<Vec<Interaction>> {
        let st = self.read();
        st.contacts.get(id)?;
        Some(
            st.interactions
                .get(id)
                .into_iter()
                .flatten()
                .filter(|i| types.contains(&i.kind))
                .cloned()
                .collect(),
        )
    }
}

fn candidate_of(c: &SandboxContact) -> Candidate {
    Candidate {
        person: PersonRef(c.contact.id.clone()),
        emails: c.contact.emails.clone(),
        phones: c.contact.phones.clone(),
        complete: true,
    }
}

/// The sandbox in Talkdesk's configuration document: no credentials of its own.
pub fn integration(_config: &Config) -> Integration {
    Integration {
        name: "talkdesk-bridge-sandbox".into(),
        display_name: "Talkdesk bridge (sandbox)".into(),
        description:
            "Generated contacts, agents and their tickets, calls, emails and chats, to try the Talkdesk bridge without any account.".into(),
        auth_fields: vec![],
        interaction_types: data::INTERACTION_TYPES.iter().map(|t| t.to_string()).collect(),
    }
}

/// The sandbox connector.
pub struct Sandbox {
    /// Set at construction from a store or a data file; generated on first use otherwise.
    store: OnceLock<Arc<SandboxStore>>,
    /// The region the generated store reads phone numbers in.
    region: Region,
    max_page_size: usize,
    lag: Duration,
}

/// The sandbox's default upstream page size (small enough that a Talkdesk page takes several calls).
pub const DEFAULT_PAGE_SIZE: usize = 200;

impl Sandbox {
    pub fn new(store: Arc<SandboxStore>, max_page_size: usize, lag: Duration) -> Self {
        Sandbox {
            region: store.region,
            store: OnceLock::from(store),
            max_page_size: max_page_size.max(1),
            lag,
        }
    }

    /// The generated sandbox (made on first use), or the one `SANDBOX_DATA` names (read now).
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let data: SandboxData = match &config.sandbox.data_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Invalid {
                    name: "SANDBOX_DATA",
                    problem: format!("cannot read {}: {e}", path.display()),
                })?;
                serde_json::from_str(&text).map_err(|e| ConfigError::Invalid {
                    name: "SANDBOX_DATA",
                    problem: format!("{} is not sandbox data: {e}", path.display()),
                })?
            }
            None => {
                return Ok(Sandbox {
                    store: OnceLock::new(),
                    region: config.default_region,
                    max_page_size: config.sandbox.page_size.max(1),
                    lag: config.sandbox.lag,
                })
            }
        };
        let store = Arc::new(SandboxStore::new(data, config.default_region));
        Ok(Sandbox::new(store, config.sandbox.page_size, config.sandbox.lag))
    }

    /// The store, generated now if this is its first use.
    pub fn store(&self) -> &Arc<SandboxStore> {
        self.store
            .get_or_init(|| Arc::new(SandboxStore::new(generate(GenerateOptions::default()), self.region)))
    }

    /// Whether the store exists yet (false until the first use of a generated sandbox).
    pub fn is_built(&self) -> bool {
        self.store.get().is_some()
    }
}

#[async_trait]
impl Connector for Sandbox {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    fn interaction_types(&self) -> &[&'static str] {
        data::INTERACTION_TYPES
    }

    fn max_page_size(&self) -> usize {
        self.max_page_size
    }

    fn indexing_lag(&self) -> Duration {
        self.lag
    }

    fn account(&self, auth: &Auth) -> Result<String, ConnectorError> {
        // Every sandbox caller shares one account unless it names one (tests use this to prove binding).
        Ok(match auth.get("account") {
            Some(a) => format!("sandbox:{}", a.expose()),
            None => "sandbox".to_string(),
        })
    }

    async fn contacts(&self, _auth: &Auth, query: &ContactQuery<'_>) -> Result<ContactBatch, ConnectorError> {
        let (records, done) = self.store().page(query.after, query.until, query.limit.min(self.max_page_size));
        Ok(ContactBatch {
            records,
            next_cursor: None,
            done,
            quota: None,
        })
    }

    fn person_by_external_id(&self, external_id: &str) -> Option<PersonRef> {
        Some(PersonRef(external_id.to_string()))
    }

    /// The sandbox lives in memory: a lookup sends no upstream request.
    fn lookup_costs(&self, _limit: usize) -> LookupCosts {
        LookupCosts::default()
    }

    async fn find_people(
        &self,
        _auth: &Auth,
        identifier: &Identifier,
        _budget: &dyn crate::sync::Budget,
    ) -> Result<Vec<Candidate>, ConnectorError> {
        Ok(self.store().people_with(identifier))
    }

    async fn identifiers_of(
        &self,
        _auth: &Auth,
        person: &PersonRef,
        _budget: &dyn crate::sync::Budget,
    ) -> Result<Candidate, ConnectorError> {
        Ok(self.store().identifiers_of(&person.0))
    }

    async fn interactions_of(
        &self,
        _auth: &Auth,
        person: &PersonRef,
        types: &[String],
        _limit: usize,
        _budget: &dyn crate::sync::Budget,
    ) -> Result<Option<Vec<Interaction>>, ConnectorError> {
        Ok(self.store().interactions_of(&person.0, types))
    }

    /// The sandbox has no credentials to check: whatever `account` accepts is valid.
    async fn validate(&self, _auth: &Auth, _budget: &dyn crate::sync::Budget) -> Result<(), ConnectorError> {
        Ok(())
    }

    /// Pages of `SANDBOX_PAGE_SIZE` agents; the cursor is the index of the next one.
    async fn agents(&self, _auth: &Auth, cursor: Option<&str>, _budget: &dyn crate::sync::Budget) -> Result<AgentPage, ConnectorError> {
        let from = match cursor {
            None => 0,
            Some(c) => c.parse::<usize>().map_err(|_| ConnectorError::BadGateway {
                message: "the sandbox was given an agents cursor it did not issue".into(),
            })?,
        };
        let (agents, more) = self.store().agents(from, self.max_page_size);
        let next_cursor = more.then(|| (from + agents.len()).to_string());
        Ok(AgentPage { agents, next_cursor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::talkdesk::Contact;
    use chrono::{TimeZone, Utc};

    fn contact(id: &str, secs: i64, phone: &str) -> SandboxContact {
        SandboxContact {
            updated_at: Utc.timestamp_opt(secs, 0).unwrap(),
            contact: Contact {
                id: id.into(),
                name: format!("C{id}"),
                phones: vec![phone.into()],
                emails: vec![format!("c{id}@x.co")],
                ..Default::default()
            },
        }
    }

    fn store(contacts: Vec<SandboxContact>) -> SandboxStore {
        SandboxStore::new(
            SandboxData {
                contacts,
                ..SandboxData::default()
            },
            phone::parse_region("US").unwrap(),
        )
    }

    #[test]
    fn pages_follow_the_keyset_order_and_respect_the_upper_bound() {
        let s = store(vec![
            contact("2", 10, "1"),
            contact("10", 10, "2"),
            contact("1", 20, "3"),
            contact("5", 30, "4"),
        ]);
        let until = Utc.timestamp_opt(25, 0).unwrap();
        let (page, done) = s.page(None, until, 2);
        assert_eq!(page.iter().map(|r| r.contact.id.as_str()).collect::<Vec<_>>(), vec!["2", "10"]);
        assert!(!done);
        let after = Position::after(&page[1].key());
        let (page, done) = s.page(Some(&after), until, 2);
        assert_eq!(page.iter().map(|r| r.contact.id.as_str()).collect::<Vec<_>>(), vec!["1"]);
        assert!(done);
    }

    #[test]
    fn an_update_moves_a_contact_and_reindexes_it() {
        let s = store(vec![contact("1", 10, "(415) 555-0100")]);
        s.upsert(contact("1", 50, "+44 20 7946 0001"));
        assert_eq!(s.len(), 1);
        assert!(s.people_with(&Identifier::Phone("+14155550100".into())).is_empty());
        let found = s.people_with(&Identifier::Phone("+442079460001".into()));
        assert_eq!(found.iter().map(|c| c.person.0.as_str()).collect::<Vec<_>>(), vec!["1"]);
        assert_eq!(s.snapshot()[0].updated_at.timestamp(), 50);
    }

    #[test]
    fn the_phone_index_built_late_sees_every_change_before_and_after() {
        let s = store(vec![contact("1", 10, "(415) 555-0100"), contact("2", 20, "(415) 555-0200")]);
        // Changed before any lookup by phone: the index, built on the first one, reads the current phones.
        s.upsert(contact("2", 30, "(415) 555-0222"));
        let ids = |p: &str| -> Vec<String> {
            s.people_with(&Identifier::Phone(p.into()))
                .into_iter()
                .map(|c| c.person.0)
                .collect()
        };
        assert_eq!(ids("+14155550100"), vec!["1"]);
        assert!(ids("+14155550200").is_empty());
        assert_eq!(ids("+14155550222"), vec!["2"]);
        // Changed after it was built: kept up to date.
        s.upsert(contact("1", 40, "(415) 555-0111"));
        assert!(ids("+14155550100").is_empty());
        assert_eq!(ids("+14155550111"), vec!["1"]);
    }

    #[tokio::test]
    async fn the_generated_sandbox_is_made_on_first_use_not_at_start() {
        let config = Config::from_lookup(&|_| None).unwrap();
        let sandbox = Sandbox::from_config(&config).unwrap();
        assert!(!sandbox.is_built(), "nothing generated at INIT");
        let budget = crate::sync::budget::Unlimited;
        let found = sandbox
            .find_people(&Auth::default(), &Identifier::Email("nobody@example.com".into()), &budget)
            .await
            .unwrap();
        assert!(found.is_empty());
        assert!(sandbox.is_built());
        assert_eq!(sandbox.store().len(), GenerateOptions::default().contacts);
    }
}
