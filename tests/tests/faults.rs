//! The fault suite: randomized full and incremental Zendesk syncs with every kind of upstream failure
//! injected at random points, budget cuts, lost responses and Talkdesk retrying the same offset. After
//! each schedule: 0 contacts lost, 0 out of order, and no checkpoint ever past data that was not returned.
//!
//! Prints how many schedules ran and how many faults of each kind were injected.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bridge::error::ApiResponse;
use bridge::sync::{Budget, SyncKey};
use bridge::App;
use bridge_tests::fake_zendesk::{auth_json, FakeData, FakeUser, FakeZendesk, Fault};
use chrono::{DateTime, TimeZone, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const TOKEN_KEY: &str = "fault-suite-token-key-0123456789abcdef";
const T0: i64 = 1_700_000_000;
const ACCOUNT: &str = "zendesk:acme";
/// The bridge's request timeout in this suite: an injected delay longer than it is a timeout.
const TIMEOUT_MS: u64 = 150;

fn app(fake: &FakeZendesk, page_size: usize) -> App {
    let base = fake.base_url();
    let page = page_size.to_string();
    let timeout = TIMEOUT_MS.to_string();
    let config = bridge_tests::config(&[
        ("BRIDGE_CONNECTOR", "zendesk"),
        ("BRIDGE_TOKEN_KEY", TOKEN_KEY),
        ("ZENDESK_BASE_URL", base.as_str()),
        ("BRIDGE_PAGE_SIZE", page.as_str()),
        ("ZENDESK_TIMEOUT_MS", timeout.as_str()),
    ]);
    let connector = bridge::connectors::build(&config).expect("zendesk connector builds");
    App::new(config, connector).expect("zendesk app builds")
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().expect("valid instant")
}

/// A page budget that runs out after a number of checks (a slow upstream, deterministically).
struct Checks(AtomicUsize);

impl Budget for Checks {
    fn exhausted(&self) -> bool {
        self.0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_err()
    }
}

/// Every kind of failure the suite injects, with its name for the printed counts.
fn random_fault(rng: &mut SmallRng) -> (&'static str, Fault) {
    let respond = |status: u16, content_type: &'static str, body: &str, retry_after: Option<&str>| Fault::Respond {
        status,
        content_type,
        body: body.into(),
        retry_after: retry_after.map(String::from),
    };
    match rng.random_range(0..15) {
        0 => ("429 Retry-After: 0", Fault::rate_limited("0")),
        1 => ("429 Retry-After: 120", Fault::rate_limited("120")),
        2 => ("429 without Retry-After", respond(429, "text/plain", "Too Many Requests", None)),
        3 => ("500", Fault::status(500)),
        4 => ("502", Fault::html(502)),
        5 => ("503 without Retry-After", Fault::unavailable(None)),
        6 => ("503 Retry-After: 0", Fault::unavailable(Some("0"))),
        7 => ("connection reset", Fault::Reset),
        8 | 9 => ("truncated body", Fault::Truncated),
        10 => ("truncated JSON", Fault::malformed_json()),
        11 => ("non-JSON 200", respond(200, "text/plain; charset=utf-8", "upstream said: OK", None)),
        12 => ("HTML 200", Fault::html(200)),
        13 => ("timeout", Fault::Delay(Duration::from_millis(TIMEOUT_MS + 100))),
        _ => ("504", Fault::status(504)),
    }
}

#[derive(Default, Debug)]
struct Figures {
    schedules: usize,
    users: usize,
    talkdesk_requests: usize,
    pages: usize,
    runs: usize,
    contacts_received: usize,
    mutations: usize,
    faults: BTreeMap<&'static str, usize>,
    error_responses: BTreeMap<u16, usize>,
    retries_of_the_same_offset: usize,
    lost_responses: usize,
    restarts_from_checkpoint: usize,
    budget_cut_pages: usize,
    upstream_requests: usize,
    lost: usize,
    out_of_order: usize,
    dead_emitted: usize,
    checkpoint_past_undelivered: usize,
}

/// Every version of every user and what Talkdesk kept.
#[derive(Default)]
struct Model {
    /// (id, version) → (updated_at, live)
    versions: HashMap<(u64, u32), (i64, bool)>,
    current: HashMap<u64, u32>,
    delivered: HashMap<u64, u32>,
}

fn live(u: &FakeUser) -> bool {
    u.active && !u.suspended && u.role == "end-user" && !u.purged
}

impl Model {
    fn record(&mut self, u: &FakeUser, version: u32) {
        self.versions.insert((u.id, version), (u.updated_at, live(u)));
        self.current.insert(u.id, version);
    }
}

fn user(id: u64, updated_at: i64, version: u32) -> FakeUser {
    let mut u = FakeUser::end_user(id, &format!("U{id} v{version}"), updated_at);
    u.email = Some(format!("u{id}v{version}@example.com"));
    u
}

fn mutate(data: &mut FakeData, model: &mut Model, rng: &mut SmallRng, now: i64) {
    if rng.random_bool(0.2) || data.users.is_empty() {
        let id = data.next_user_id();
        let u = user(id, now, 0);
        model.record(&u, 0);
        data.add_user(u);
        return;
    }
    let ids: Vec<u64> = data.users.values().filter(|u| !u.purged).map(|u| u.id).collect();
    let Some(&id) = ids.get(rng.random_range(0..ids.len().max(1))) else {
        return;
    };
    let version = model.current.get(&id).copied().unwrap_or(0) + 1;
    let kind = rng.random_range(0..8);
    data.update_user(id, now, |u| {
        u.name = format!("U{id} v{version}");
        match kind {
            0 => u.active = false,
            1 => u.suspended = !u.suspended,
            2 => u.active = true,
            _ => {}
        }
    });
    if let Some(u) = data.users.get(&id) {
        model.record(u, version);
    }
}

async fn page(app: &App, checkpoint: Option<&str>, offset: Option<&str>, now: i64, budget: &dyn Budget) -> ApiResponse {
    let body = json!({"auth": auth_json(), "meta": {"synchronization_checkpoint": checkpoint, "offset": offset}});
    app.contacts(body.to_string().as_bytes(), budget, at(now)).await
}

async fn run_schedule(seed: u64, fig: &mut Figures) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let model = Arc::new(Mutex::new(Model::default()));
    // Few distinct seconds, so many users share a timestamp.
    let seconds: Vec<i64> = (0..rng.random_range(1..6))
        .map(|_| T0 - 20_000 + rng.random_range(0..15_000))
        .collect();
    let mut data = FakeData::default();
    for i in 0..rng.random_range(5..60u64) {
        let id = 1 + i * rng.random_range(1..4) + rng.random_range(0..3) * 1_000;
        if data.users.contains_key(&id) {
            continue;
        }
        let mut u = user(id, seconds[rng.random_range(0..seconds.len())], 0);
        match rng.random_range(0..14) {
            0 => u.role = "agent".into(),
            1 => u.active = false,
            2 => u.suspended = true,
            3 => u.purged = true,
            _ => {}
        }
        if rng.random_bool(0.4) {
            u.organization_id = Some(rng.random_range(1..5));
        }
        model.lock().unwrap().record(&u, 0);
        data.add_user(u);
    }
    for o in 1..5 {
        data.organizations.insert(o, format!("Org {o}"));
    }
    fig.users += data.users.len();
    let fake = FakeZendesk::start(data).await.unwrap();
    let mut now = T0;
    fake.set_now(now);
    let app = app(&fake, rng.random_range(1..12));
    let hook_model = model.clone();
    let mut hook_rng = SmallRng::seed_from_u64(seed ^ 0xfa17);
    let hook_mutations = Arc::new(AtomicUsize::new(0));
    let hook_count = hook_mutations.clone();
    fake.on_export(move |d, now| {
        if hook_rng.random_bool(0.1) {
            mutate(d, &mut hook_model.lock().unwrap(), &mut hook_rng, now);
            hook_count.fetch_add(1, Ordering::SeqCst);
        }
    });

    let mut checkpoint: Option<String> = None;
    let mut page_checkpoint: Option<String> = None;
    let mut offset: Option<String> = None;
    let mut last_key: Option<(i64, u64)> = None;
    let stormy_steps = rng.random_range(10..50);
    let mut calm_runs = 0;
    for step in 1.. {
        let calm = step > stormy_steps;
        if step == stormy_steps + 1 {
            fake.clear_faults();
            fake.clear_export_hook();
            now += 400;
            fake.set_now(now);
        }
        if !calm && rng.random_bool(0.35) {
            // Let a few requests through first, so the fault lands mid-page or mid-run.
            let prefix = if rng.random_bool(0.8) {
                "/api/v2/incremental"
            } else {
                "/api/v2/organizations"
            };
            let skip = rng.random_range(0..3);
            fake.fail_next_on(prefix, skip, Fault::Delay(Duration::ZERO));
            let (name, fault) = random_fault(&mut rng);
            let k = rng.random_range(1..3);
            fake.fail_next_on(prefix, k, fault);
            *fig.faults.entry(name).or_default() += k;
        }
        let cut_budget = !calm && rng.random_bool(0.15);
        let budget = Checks(AtomicUsize::new(if cut_budget { rng.random_range(0..3) } else { usize::MAX }));
        fig.talkdesk_requests += 1;
        // Talkdesk's next call comes after any hold Zendesk asked for (the schedule's clock is simulated).
        app.pacer().clear();
        let r = page(&app, checkpoint.as_deref(), offset.as_deref(), now, &budget).await;
        if r.status != 200 {
            assert!(matches!(r.status, 502..=504), "seed {seed}: unexpected {}: {}", r.status, r.body);
            let body: Value = serde_json::from_str(&r.body).expect("error bodies are JSON");
            assert!(body["error"]["code"].is_string(), "seed {seed}: {}", r.body);
            assert!(
                !r.body.contains("secret-upstream-detail") && !r.body.contains("upstream said"),
                "seed {seed}: upstream body echoed: {}",
                r.body
            );
            assert!(!calm || r.status == 504, "seed {seed}: a failure without faults: {}", r.body);
            *fig.error_responses.entry(r.status).or_default() += 1;
            if rng.random_bool(0.25) {
                fig.restarts_from_checkpoint += 1;
                checkpoint = page_checkpoint.clone().or(checkpoint.take());
                offset = None;
                last_key = None;
            } else {
                fig.retries_of_the_same_offset += 1;
            }
            continue;
        }
        if !calm && rng.random_bool(0.1) {
            // The answer never reached Talkdesk: it retries the same offset.
            fig.lost_responses += 1;
            fig.retries_of_the_same_offset += 1;
            continue;
        }
        fig.pages += 1;
        let v: Value = serde_json::from_str(&r.body).expect("pages are JSON");
        if cut_budget && v["next_offset"].is_string() {
            fig.budget_cut_pages += 1;
        }
        let cp = v["synchronization_checkpoint"].as_str().unwrap_or_default().to_string();
        {
            let mut m = model.lock().unwrap();
            for c in v["contacts"].as_array().cloned().unwrap_or_default() {
                fig.contacts_received += 1;
                let id: u64 = c["id"].as_str().unwrap().parse().unwrap();
                let version: u32 = c["name"].as_str().unwrap().rsplit('v').next().unwrap().parse().unwrap();
                let (ts, was_live) = m.versions[&(id, version)];
                if !was_live {
                    fig.dead_emitted += 1;
                }
                if last_key.is_some_and(|k| k >= (ts, id)) {
                    fig.out_of_order += 1;
                }
                last_key = Some((ts, id));
                m.delivered.insert(id, version);
            }
            let state = app.signer().decode_checkpoint(ACCOUNT, &cp).expect("own checkpoint decodes");
            if let Some(p) = state.after {
                for (&id, &version) in &m.current {
                    let (ts, is_live) = m.versions[&(id, version)];
                    let passed = !p.admits(&SyncKey::new(at(ts), id.to_string()));
                    if is_live && passed && m.delivered.get(&id) != Some(&version) {
                        fig.checkpoint_past_undelivered += 1;
                        eprintln!("seed {seed}: checkpoint passed undelivered user {id} v{version}");
                    }
                }
            }
        }
        page_checkpoint = Some(cp.clone());
        match v["next_offset"].as_str() {
            Some(o) => {
                offset = Some(o.to_string());
                now += rng.random_range(0..5);
            }
            None => {
                fig.runs += 1;
                checkpoint = Some(cp);
                offset = None;
                last_key = None;
                if calm {
                    calm_runs += 1;
                    if calm_runs == 2 {
                        break;
                    }
                }
                now += rng.random_range(0..400);
            }
        }
        if !calm && rng.random_bool(0.3) {
            fake.with_data(|d| mutate(d, &mut model.lock().unwrap(), &mut rng, now));
            fig.mutations += 1;
        }
        fake.set_now(now);
        assert!(step < 5_000, "seed {seed}: the schedule never settled");
    }
    fig.mutations += hook_mutations.load(Ordering::SeqCst);
    let m = model.lock().unwrap();
    fake.with_data(|d| {
        for u in d.users.values().filter(|u| live(u)) {
            if m.delivered.get(&u.id) != m.current.get(&u.id) {
                fig.lost += 1;
                eprintln!("seed {seed}: user {} was not delivered in its latest version", u.id);
            }
        }
    });
    fig.upstream_requests += fake.requests().len();
    fig.schedules += 1;
}

#[tokio::test]
async fn syncs_under_random_upstream_faults_lose_nothing_keep_order_and_never_checkpoint_ahead() {
    let started = Instant::now();
    let mut fig = Figures::default();
    let schedules: u64 = std::env::var("FAULT_SCHEDULES").ok().and_then(|v| v.parse().ok()).unwrap_or(80);
    for seed in 0..schedules {
        run_schedule(0xfa_0175 + seed, &mut fig).await;
    }
    println!("fault suite: {fig:#?}");
    println!(
        "fault suite: {} schedules, {} faults injected, {:.1} s",
        fig.schedules,
        fig.faults.values().sum::<usize>(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(fig.lost, 0, "contacts lost");
    assert_eq!(fig.out_of_order, 0, "contacts out of (updated_at, id) order");
    assert_eq!(fig.dead_emitted, 0, "deleted, suspended or staff versions emitted");
    assert_eq!(fig.checkpoint_past_undelivered, 0, "a checkpoint passed undelivered data");
    // The schedules really did exercise the faults.
    assert!(fig.faults.len() >= 12, "{:?}", fig.faults);
    assert!(fig.retries_of_the_same_offset > 0 && fig.restarts_from_checkpoint > 0 && fig.budget_cut_pages > 0);
}

#[tokio::test]
async fn a_reset_connection_and_a_truncated_body_are_502s_that_echo_nothing() {
    let mut data = FakeData::default();
    data.add_user(user(1, T0 - 10_000, 0));
    let fake = FakeZendesk::start(data).await.unwrap();
    fake.set_now(T0);
    let app = app(&fake, 10);
    for fault in [Fault::Reset, Fault::Truncated] {
        // A transient failure is tried once more before the page gives up: the fault answers both tries.
        fake.fail_next(2, fault.clone());
        let r = page(&app, None, None, T0, &bridge::sync::budget::Unlimited).await;
        assert_eq!(r.status, 502, "{fault:?}: {}", r.body);
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["error"]["code"], "upstream_error", "{fault:?}");
        assert!(
            r.header("retry-after").is_some(),
            "{fault:?}: transient, so Talkdesk is told when to retry"
        );
    }
    let r = page(&app, None, None, T0, &bridge::sync::budget::Unlimited).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn the_metrics_count_upstream_calls_retries_and_429s_of_one_invocation() {
    let mut data = FakeData::default();
    data.add_user(user(1, T0 - 10_000, 0));
    let fake = FakeZendesk::start(data).await.unwrap();
    fake.set_now(T0);
    let app = app(&fake, 10);
    fake.fail_next(1, Fault::rate_limited("0"));
    let request = bridge::talkdesk::parse_contacts_request(json!({"auth": auth_json()}).to_string().as_bytes()).unwrap();
    let account = app.connector.account(&request.auth).unwrap();
    let pacer = bridge::sync::Pacer::new();
    let run = bridge::sync::plan_run(None, None, at(T0), Duration::ZERO);
    // `App` tracks each invocation itself; here the engine is tracked directly.
    let (page, upstream) = bridge::metrics::track(bridge::sync::sync_page(bridge::sync::PageRequest {
        connector: app.connector.as_ref(),
        auth: &request.auth,
        account: &account,
        run,
        limits: bridge::sync::PageLimits {
            max_contacts: 10,
            max_bytes: 1_000_000,
        },
        budget: &bridge::sync::budget::Unlimited,
        pacer: &pacer,
    }))
    .await;
    let page = page.expect("the retry succeeds");
    assert_eq!(page.contacts.len(), 1);
    assert_eq!(page.stats.rate_limited, 1);
    assert_eq!(upstream.calls, 2, "the 429 and the retry");
    assert_eq!(upstream.retries, 1);
    assert_eq!(upstream.rate_limited, 1);
}
