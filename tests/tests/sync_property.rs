//! Property: whatever the schedule, Talkdesk's copy ends up equal to the external system.
//!
//! Each schedule draws a sandbox, page size, byte cap, upstream page size, indexing lag and time budget,
//! then runs an initial sync and incremental syncs the way Talkdesk would, while the data changes between
//! pages (updates and inserts, many sharing one second, some indexed late within the lag), offsets are
//! replayed (the same page must come back), responses are lost (Talkdesk retries the offset), and syncs are
//! abandoned half way (the next one starts from the last checkpoint received). After a final quiet
//! incremental sync, the copy must equal the sandbox: nothing lost, nothing out of order.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bridge::connectors::sandbox::{generate, GenerateOptions, SandboxContact, SandboxStore};
use bridge::sync::{Budget, SyncKey};
use bridge::talkdesk::Contact;
use bridge::App;
use bridge_tests::sandbox_app_with;
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// A time budget that runs out after a number of checks: the engine checks before every upstream call
/// but the first, so the page is cut after `calls` upstream calls.
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
    late_indexed: usize,
    replays_identical: usize,
    lost_responses: usize,
    abandoned_syncs: usize,
    short_pages: usize,
    lost: usize,
    out_of_order: usize,
}

struct Schedule {
    rng: StdRng,
    app: App,
    store: std::sync::Arc<SandboxStore>,
    now: DateTime<Utc>,
    lag: Duration,
    page_size: usize,
    budget_calls: Option<usize>,
    copy: HashMap<String, Contact>,
    checkpoint: Option<String>,
    next_new_id: u64,
    tie_second: DateTime<Utc>,
}

impl Schedule {
    fn tick(&mut self) {
        self.now += chrono::Duration::milliseconds(self.rng.random_range(0..1500));
    }

    fn mutate(&mut self, figures: &mut Figures) {
        let n = self.rng.random_range(1..=3);
        let snapshot = self.store.snapshot();
        for _ in 0..n {
            // Whole seconds, often one shared second, sometimes in the past within the lag (late indexing):
            // a change stamped `t` becomes visible no later than `t + lag`, which is the lag's promise.
            let lag_secs = self.lag.as_secs() as i64;
            let ceil = |t: DateTime<Utc>| DateTime::from_timestamp(t.timestamp() + i64::from(t.timestamp_subsec_nanos() > 0), 0).unwrap();
            let earliest = ceil(self.now - chrono::Duration::seconds(lag_secs));
            let latest = ceil(self.now);
            let updated_at = if self.rng.random_bool(0.4) && self.tie_second >= self.now - chrono::Duration::seconds(lag_secs) {
                figures.tie_mutations += 1;
                self.tie_second
            } else if earliest < latest && self.rng.random_bool(0.3) {
                figures.late_indexed += 1;
                earliest
            } else {
                latest
            };
            self.tie_second = updated_at;
            let mut contact = if self.rng.random_bool(0.75) && !snapshot.is_empty() {
                snapshot[self.rng.random_range(0..snapshot.len())].contact.clone()
            } else {
                self.next_new_id += 1;
                Contact {
                    id: self.next_new_id.to_string(),
                    ..Default::default()
                }
            };
            contact.name = format!("Changed {} at {}", contact.id, self.now.timestamp_millis());
            self.store.upsert(SandboxContact { updated_at, contact });
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

    /// One sync run from the stored checkpoint. Returns false if it was abandoned half way.
    async fn sync(&mut self, figures: &mut Figures, mutating: bool) -> bool {
        let mut meta = json!({});
        if let Some(cp) = &self.checkpoint {
            meta["synchronization_checkpoint"] = json!(cp);
        }
        let mut last_key: Option<SyncKey> = None;
        for _ in 0..100_000 {
            self.tick();
            figures.requests += 1;
            let mut page = self.request(&meta).await;
            if meta.get("offset").is_some() && self.rng.random_bool(0.15) {
                // Replay with nothing changed in between: the same page.
                figures.requests += 1;
                let again = self.request(&meta).await;
                assert_eq!(again, page, "replaying an offset changed the page");
                figures.replays_identical += 1;
            }
            if mutating && self.rng.random_bool(0.1) {
                // The response is lost; the data changes; Talkdesk retries the same request.
                figures.lost_responses += 1;
                self.mutate(figures);
                self.tick();
                figures.requests += 1;
                page = self.request(&meta).await;
            }
            figures.pages_applied += 1;
            let contacts: Vec<Contact> = serde_json::from_value(page["contacts"].clone()).unwrap();
            for c in contacts {
                let stored = self.store.get(&c.id).expect("an emitted contact exists");
                assert_eq!(stored.contact, c, "a page carried a stale version");
                let key = SyncKey::new(stored.updated_at, c.id.clone());
                if last_key.as_ref().is_some_and(|k| *k >= key) {
                    figures.out_of_order += 1;
                }
                last_key = Some(key);
                self.copy.insert(c.id.clone(), c);
            }
            let checkpoint = page["synchronization_checkpoint"]
                .as_str()
                .expect("a checkpoint on every page")
                .to_string();
            self.checkpoint = Some(checkpoint.clone());
            let Some(offset) = page.get("next_offset").and_then(Value::as_str) else {
                assert!(page.get("context").is_none(), "context without next_offset");
                return true;
            };
            if page["contacts"].as_array().unwrap().len() < self.page_size {
                figures.short_pages += 1;
            }
            if mutating && self.rng.random_bool(0.25) {
                self.mutate(figures);
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

async fn run_schedule(seed: u64, figures: &mut Figures) {
    let mut rng = StdRng::seed_from_u64(seed);
    let data = generate(GenerateOptions {
        contacts: rng.random_range(20..140),
        seed,
    });
    let start = data.contacts.iter().map(|c| c.updated_at).max().unwrap() + chrono::Duration::days(1);
    let page_size = *[1usize, 2, 3, 7, 25, 60, 500].get(rng.random_range(0..7)).unwrap();
    let byte_cap = *[1usize, 800, 3000, 20_000, 5_000_000].get(rng.random_range(0..5)).unwrap();
    let upstream_page = rng.random_range(1..=20);
    let lag = Duration::from_secs(*[0u64, 1, 5].get(rng.random_range(0..3)).unwrap());
    let budget_calls = if rng.random_bool(0.5) {
        Some(rng.random_range(1..=4))
    } else {
        None
    };
    let (ps, bc) = (page_size.to_string(), byte_cap.to_string());
    let (app, store) = sandbox_app_with(
        data,
        &[("BRIDGE_PAGE_SIZE", &ps), ("BRIDGE_MAX_RESPONSE_BYTES", &bc)],
        upstream_page,
        lag,
    );
    let mut s = Schedule {
        rng,
        app,
        store,
        now: start,
        lag,
        page_size,
        budget_calls,
        copy: HashMap::new(),
        checkpoint: None,
        next_new_id: 900_000,
        tie_second: start,
    };
    // Initial sync, then incremental syncs, all under changes; abandoned syncs restart from the checkpoint.
    let mut completed = 0;
    for _ in 0..50 {
        if s.sync(figures, true).await {
            completed += 1;
            if completed == 2 {
                break;
            }
        }
    }
    // Quiet: let the lag pass, then one incremental sync with nothing changing.
    s.now += chrono::Duration::from_std(s.lag).unwrap() + chrono::Duration::seconds(1);
    assert!(s.sync(figures, false).await);
    let truth = s.store.snapshot();
    let lost = truth.iter().filter(|c| s.copy.get(&c.contact.id) != Some(&c.contact)).count();
    figures.lost += lost;
    figures.contacts_at_end += truth.len();
    figures.schedules += 1;
    assert_eq!(lost, 0, "seed {seed}: {lost} contacts missing or stale in Talkdesk's copy");
    assert_eq!(
        s.copy.len(),
        truth.len(),
        "seed {seed}: the copy holds contacts the system does not"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn initial_plus_incremental_sync_loses_nothing_under_any_schedule() {
    let mut figures = Figures::default();
    for seed in 0..240 {
        run_schedule(seed, &mut figures).await;
    }
    println!("sync property figures: {figures:#?}");
    assert_eq!(figures.out_of_order, 0, "contacts emitted out of (updated_at, id) order");
    assert_eq!(figures.lost, 0);
    assert!(figures.schedules >= 200);
    // The schedules really exercised what they claim to.
    assert!(figures.tie_mutations > 100 && figures.late_indexed > 50 && figures.replays_identical > 100);
    assert!(figures.lost_responses > 50 && figures.abandoned_syncs > 10 && figures.short_pages > 100);
}
