//! Property, against a real PostgreSQL: whatever the schedule, Talkdesk's copy ends up equal to the table.
//!
//! The sandbox property test (`sync_property.rs`) with the database as the external system. Each schedule
//! draws contacts (numeric and text ids, many sharing one `updated_at`), a Talkdesk page size, a byte cap,
//! the connector's statement size (`POSTGRES_PAGE_SIZE`), the lag (`POSTGRES_LAG_SECS`) and a time budget,
//! then syncs the way Talkdesk would while rows change between pages, and while other transactions stamp
//! rows with an `updated_at` in the recent past and commit them pages later, but within the lag (the
//! promise the lag stands for). Offsets are replayed (the same page must come back), responses are lost
//! (Talkdesk retries), syncs are abandoned half way. After the last transaction commits and a quiet
//! incremental sync, the copy must equal the table: nothing lost, nothing out of order.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bridge::sync::{Budget, SyncKey};
use bridge::talkdesk::Contact;
use bridge::App;
use bridge_tests::postgres::{contract_data, copy_contacts, table_contents, PgServer};
use bridge_tests::prepared_app;
use chrono::{DateTime, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio_postgres::Client;

/// The engine checks the budget before every upstream call but the first: the page is cut after `calls`.
struct CallBudget(AtomicUsize);

impl CallBudget {
    fn new(calls: Option<usize>) -> Self {
        CallBudget(AtomicUsize::new(calls.map_or(usize::MAX, |c| c.max(1) - 1)))
    }
}

impl Budget for CallBudget {
    fn exhausted(&self) -> bool {
        self.0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| if n == 0 { None } else { Some(n - 1) })
            .is_err()
    }
}

#[derive(Default, Debug)]
struct Figures {
    schedules: usize,
    contacts_at_end: usize,
    requests: usize,
    pages_applied: usize,
    mutations: usize,
    tie_mutations: usize,
    late_commits: usize,
    pages_while_uncommitted: usize,
    replays_identical: usize,
    lost_responses: usize,
    abandoned_syncs: usize,
    short_pages: usize,
    lost: usize,
    out_of_order: usize,
}

/// A transaction left open: its connection, the ids it wrote, and the instant by which it must commit.
struct Pending {
    client: usize,
    ids: Vec<String>,
    commit_by: DateTime<Utc>,
}

struct Schedule<'a> {
    rng: StdRng,
    app: App,
    admin: &'a Client,
    writers: &'a [Client],
    now: DateTime<Utc>,
    lag: Duration,
    page_size: usize,
    budget_calls: Option<usize>,
    copy: HashMap<String, Contact>,
    checkpoint: Option<String>,
    next_new_id: u64,
    tie_second: DateTime<Utc>,
    pending: Vec<Pending>,
}

fn ceil_second(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp() + i64::from(t.timestamp_subsec_nanos() > 0), 0).unwrap()
}

impl Schedule<'_> {
    fn locked(&self) -> HashSet<String> {
        self.pending.iter().flat_map(|p| p.ids.iter().cloned()).collect()
    }

    /// Moves the clock, first committing every open transaction whose promise would otherwise be broken.
    async fn tick(&mut self, figures: &mut Figures) {
        let next = self.now + chrono::Duration::milliseconds(self.rng.random_range(0..1500));
        let mut keep = Vec::new();
        for p in std::mem::take(&mut self.pending) {
            if p.commit_by < next || self.rng.random_bool(0.3) {
                self.writers[p.client].batch_execute("COMMIT").await.unwrap();
                figures.late_commits += 1;
            } else {
                keep.push(p);
            }
        }
        self.pending = keep;
        self.now = next;
    }

    async fn commit_all(&mut self, figures: &mut Figures) {
        for p in std::mem::take(&mut self.pending) {
            self.writers[p.client].batch_execute("COMMIT").await.unwrap();
            figures.late_commits += 1;
        }
    }

    /// The instant a change made now is stamped with: often the shared tie second, sometimes in the past
    /// within the lag, else the current second.
    fn stamp(&mut self, figures: &mut Figures) -> DateTime<Utc> {
        let lag = chrono::Duration::from_std(self.lag).unwrap();
        let earliest = ceil_second(self.now - lag);
        let latest = ceil_second(self.now);
        let at = if self.rng.random_bool(0.4) && self.tie_second >= self.now - lag && self.tie_second <= latest {
            figures.tie_mutations += 1;
            self.tie_second
        } else if earliest < latest && self.rng.random_bool(0.3) {
            earliest
        } else {
            latest
        };
        self.tie_second = at;
        at
    }

    /// The id of an existing contact no open transaction holds, or a new one.
    async fn target(&mut self, locked: &HashSet<String>) -> String {
        if self.rng.random_bool(0.75) {
            let ids: Vec<String> = self
                .admin
                .query("SELECT id FROM talkdesk_contacts", &[])
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<_, String>(0))
                .filter(|id| !locked.contains(id))
                .collect();
            if !ids.is_empty() {
                return ids[self.rng.random_range(0..ids.len())].clone();
            }
        }
        self.next_new_id += 1;
        match self.next_new_id % 3 {
            0 => self.next_new_id.to_string(),
            1 => format!("New-{}", self.next_new_id),
            _ => format!("0{}", self.next_new_id),
        }
    }

    async fn upsert(client: &Client, id: &str, at: DateTime<Utc>, now: DateTime<Utc>) {
        client
            .execute(
                "INSERT INTO talkdesk_contacts (id, updated_at, name) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET updated_at = EXCLUDED.updated_at, name = EXCLUDED.name",
                &[&id, &at, &format!("Changed {id} at {}", now.timestamp_millis())],
            )
            .await
            .unwrap();
    }

    /// One to three changes: committed at once, or (when a writer is free and the lag allows) left in an
    /// open transaction to commit later, within the lag.
    async fn mutate(&mut self, figures: &mut Figures) {
        for _ in 0..self.rng.random_range(1..=3) {
            let locked = self.locked();
            let id = self.target(&locked).await;
            let at = self.stamp(figures);
            let free = (0..self.writers.len()).find(|w| !self.pending.iter().any(|p| p.client == *w));
            let lag = chrono::Duration::from_std(self.lag).unwrap();
            match free {
                Some(w) if at + lag > self.now && self.rng.random_bool(0.35) => {
                    let writer = &self.writers[w];
                    writer.batch_execute("BEGIN").await.unwrap();
                    Self::upsert(writer, &id, at, self.now).await;
                    self.pending.push(Pending {
                        client: w,
                        ids: vec![id],
                        commit_by: at + lag,
                    });
                }
                _ => Self::upsert(self.admin, &id, at, self.now).await,
            }
            figures.mutations += 1;
        }
    }

    async fn request(&mut self, meta: &Value) -> Value {
        let body = json!({"auth": {}, "meta": meta}).to_string();
        let budget = CallBudget::new(self.budget_calls);
        let resp = self.app.contacts(body.as_bytes(), &budget, self.now).await;
        assert_eq!(resp.status, 200, "{}", resp.body);
        serde_json::from_str(&resp.body).unwrap()
    }

    /// The committed `updated_at` of each id, as the bridge read it.
    async fn instants(&self, ids: &[String]) -> HashMap<String, DateTime<Utc>> {
        self.admin
            .query("SELECT id, updated_at FROM talkdesk_contacts WHERE id = ANY($1)", &[&ids])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    }

    /// One sync run from the stored checkpoint. Returns false if it was abandoned half way.
    async fn sync(&mut self, figures: &mut Figures, mutating: bool) -> bool {
        let mut meta = json!({});
        if let Some(cp) = &self.checkpoint {
            meta["synchronization_checkpoint"] = json!(cp);
        }
        let mut last_key: Option<SyncKey> = None;
        for _ in 0..100_000 {
            self.tick(figures).await;
            figures.requests += 1;
            figures.pages_while_uncommitted += usize::from(!self.pending.is_empty());
            let mut page = self.request(&meta).await;
            if meta.get("offset").is_some() && self.rng.random_bool(0.15) {
                figures.requests += 1;
                let again = self.request(&meta).await;
                assert_eq!(again, page, "replaying an offset changed the page");
                figures.replays_identical += 1;
            }
            if mutating && self.rng.random_bool(0.1) {
                figures.lost_responses += 1;
                self.mutate(figures).await;
                self.tick(figures).await;
                figures.requests += 1;
                page = self.request(&meta).await;
            }
            figures.pages_applied += 1;
            let contacts: Vec<Contact> = serde_json::from_value(page["contacts"].clone()).unwrap();
            let ids: Vec<String> = contacts.iter().map(|c| c.id.clone()).collect();
            let instants = self.instants(&ids).await;
            for c in contacts {
                let key = SyncKey::new(instants[&c.id], c.id.clone());
                if last_key.as_ref().is_some_and(|k| *k >= key) {
                    figures.out_of_order += 1;
                }
                last_key = Some(key);
                self.copy.insert(c.id.clone(), c);
            }
            let checkpoint = page["synchronization_checkpoint"].as_str().expect("a checkpoint").to_string();
            self.checkpoint = Some(checkpoint.clone());
            let Some(offset) = page.get("next_offset").and_then(Value::as_str) else {
                return true;
            };
            if page["contacts"].as_array().unwrap().len() < self.page_size {
                figures.short_pages += 1;
            }
            if mutating && self.rng.random_bool(0.3) {
                self.mutate(figures).await;
            }
            if mutating && self.rng.random_bool(0.03) {
                figures.abandoned_syncs += 1;
                return false;
            }
            meta = json!({"offset": offset, "synchronization_checkpoint": checkpoint, "context": page["context"]});
        }
        panic!("a sync did not terminate");
    }
}

async fn run_schedule(pg: &PgServer, admin: &Client, writers: &[Client], seed: u64, figures: &mut Figures) {
    let mut rng = StdRng::seed_from_u64(seed);
    let start = Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0).unwrap();
    let n = rng.random_range(20..140);
    let data = contract_data(n, rng.random_range(0..n / 3), seed, start - chrono::Duration::days(1));
    admin.batch_execute("TRUNCATE talkdesk_contacts").await.unwrap();
    copy_contacts(admin, &data.contacts).await.unwrap();
    let page_size = *[1usize, 2, 3, 7, 25, 60, 500].get(rng.random_range(0..7)).unwrap();
    let byte_cap = *[1usize, 800, 3000, 20_000, 5_000_000].get(rng.random_range(0..5)).unwrap();
    let upstream_page = rng.random_range(1..=20usize);
    let lag = Duration::from_secs(*[1u64, 2, 5].get(rng.random_range(0..3)).unwrap());
    let budget_calls = rng.random_bool(0.5).then(|| rng.random_range(1..=4));
    let mut pairs = pg.app_pairs();
    pairs.extend([
        ("BRIDGE_PAGE_SIZE".to_string(), page_size.to_string()),
        ("BRIDGE_MAX_RESPONSE_BYTES".into(), byte_cap.to_string()),
        ("POSTGRES_PAGE_SIZE".into(), upstream_page.to_string()),
        ("POSTGRES_LAG_SECS".into(), lag.as_secs().to_string()),
    ]);
    let app = prepared_app(&pairs).await.unwrap();
    let mut s = Schedule {
        rng,
        app,
        admin,
        writers,
        now: start,
        lag,
        page_size,
        budget_calls,
        copy: HashMap::new(),
        checkpoint: None,
        next_new_id: 900_000,
        tie_second: start,
        pending: Vec::new(),
    };
    let mut completed = 0;
    for _ in 0..50 {
        if s.sync(figures, true).await {
            completed += 1;
            if completed == 2 {
                break;
            }
        }
    }
    // Quiet: every transaction commits (within its lag), the lag passes, one incremental sync.
    s.commit_all(figures).await;
    s.now += chrono::Duration::from_std(s.lag).unwrap() + chrono::Duration::seconds(1);
    assert!(s.sync(figures, false).await);
    let truth = table_contents(admin).await;
    let lost = truth.iter().filter(|(id, (_, c))| s.copy.get(*id) != Some(c)).count();
    figures.lost += lost;
    figures.contacts_at_end += truth.len();
    figures.schedules += 1;
    assert_eq!(lost, 0, "seed {seed}: {lost} contacts missing or stale in Talkdesk's copy");
    assert_eq!(s.copy.len(), truth.len(), "seed {seed}: the copy holds contacts the table does not");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_plus_incremental_sync_from_postgres_loses_nothing_under_any_schedule() {
    let pg = PgServer::start().await;
    pg.create_contract().await;
    let admin = pg.admin().await;
    let writers = vec![pg.admin().await, pg.admin().await];
    let mut figures = Figures::default();
    for seed in 0..40 {
        run_schedule(&pg, &admin, &writers, seed, &mut figures).await;
    }
    println!("postgres sync property figures: {figures:#?}");
    assert_eq!(figures.out_of_order, 0, "contacts emitted out of (updated_at, id) order");
    assert_eq!(figures.lost, 0);
    assert_eq!(figures.schedules, 40);
    // The schedules really exercised what they claim to.
    assert!(figures.tie_mutations > 50 && figures.late_commits > 30 && figures.pages_while_uncommitted > 100);
    assert!(figures.replays_identical > 30 && figures.lost_responses > 20 && figures.abandoned_syncs > 3);
    assert!(figures.short_pages > 30);
}
