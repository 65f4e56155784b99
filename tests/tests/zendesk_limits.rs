//! Zendesk at its real limits, against the fake Zendesk: whole 1000-user export pages, organization names
//! without a request storm, pacing under the export's rate limit, 429 storms, refused cursors, and a
//! synchroniser that never retries a failed page.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bridge::sync::{Deadline, SyncKey};
use bridge::App;
use bridge_tests::fake_zendesk::{self, app_on, auth_json, FakeData, FakeZendesk, Fault, Generate};
use chrono::Utc;
use serde_json::{json, Value};
use tokio::time::Instant;

/// Users that are synced as contacts: live end-users.
fn live(data: &FakeData) -> HashMap<String, SyncKey> {
    data.users
        .values()
        .filter(|u| u.role == "end-user" && u.active && !u.suspended && !u.purged)
        .map(|u| {
            let at = chrono::DateTime::from_timestamp(u.updated_at, 0).unwrap();
            (u.id.to_string(), SyncKey::new(at, u.id.to_string()))
        })
        .collect()
}

fn generated(users: usize, seed: u64) -> FakeData {
    fake_zendesk::generate(Generate {
        users,
        seed,
        latest: Utc::now().timestamp() - 7_200,
    })
}

/// What a sync looked like to a synchroniser that never retries a page.
#[derive(Default)]
struct Run {
    contacts: Vec<Value>,
    pages: usize,
    empty_pages: usize,
    /// Statuses other than 200: the sync stops at the first.
    failures: Vec<(u16, String)>,
    checkpoint: Option<String>,
}

/// Follows `next_offset` to the end, each page under a real `page_budget`; after every page, checks that
/// its checkpoint passes no live user that was not delivered yet.
async fn sync_without_retries(app: &App, checkpoint: Option<&str>, page_budget: Duration, truth: &HashMap<String, SyncKey>) -> Run {
    let auth = auth_json();
    let account = app
        .connector
        .account(
            &bridge::talkdesk::parse_contacts_request(json!({"auth": auth}).to_string().as_bytes())
                .unwrap()
                .auth,
        )
        .unwrap();
    let mut run = Run::default();
    let mut delivered: HashSet<String> = HashSet::new();
    let mut offset: Option<String> = None;
    for _ in 0..2_000 {
        let body = json!({"auth": auth, "meta": {"synchronization_checkpoint": checkpoint, "offset": offset}});
        let started = Instant::now();
        let budget = Deadline::new(started, None, Duration::ZERO).at_most(started, page_budget);
        let r = app.contacts(body.to_string().as_bytes(), &budget, Utc::now()).await;
        if r.status != 200 {
            run.failures.push((r.status, r.body));
            return run;
        }
        run.pages += 1;
        let v: Value = serde_json::from_str(&r.body).unwrap();
        let contacts = v["contacts"].as_array().cloned().unwrap_or_default();
        for c in &contacts {
            delivered.insert(c["id"].as_str().unwrap().to_string());
        }
        let cp = v["synchronization_checkpoint"].as_str().unwrap().to_string();
        let state = app.signer().decode_checkpoint(&account, &cp).unwrap();
        if let Some(after) = &state.after {
            let passed: Vec<&String> = truth
                .iter()
                .filter(|(id, key)| !after.admits(key) && !delivered.contains(*id))
                .map(|(id, _)| id)
                .take(5)
                .collect();
            assert!(
                passed.is_empty(),
                "page {}: the checkpoint passed undelivered users {passed:?}",
                run.pages
            );
        }
        run.checkpoint = Some(cp);
        run.contacts.extend(contacts.iter().cloned());
        match v.get("next_offset").and_then(Value::as_str) {
            Some(o) => {
                if contacts.is_empty() {
                    run.empty_pages += 1;
                }
                offset = Some(o.to_string());
            }
            None => return run,
        }
    }
    panic!("the sync never ended")
}

fn ids(contacts: &[Value]) -> HashSet<String> {
    contacts.iter().map(|c| c["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn a_full_sync_asks_for_whole_1000_user_pages_and_never_tops_up_a_page() {
    let data = generated(3_500, 21);
    let truth = live(&data);
    let fake = FakeZendesk::start(data).await.unwrap();
    let app = app_on(&fake, &[]);
    let run = sync_without_retries(&app, None, Duration::from_secs(20), &truth).await;
    assert!(run.failures.is_empty(), "{:?}", run.failures);
    assert_eq!(ids(&run.contacts), truth.keys().cloned().collect::<HashSet<_>>());
    let exports = fake.requests_to("/api/v2/incremental");
    assert!(
        exports.iter().all(|r| r.param("per_page") == Some("1000")),
        "every export asks for Zendesk's largest page"
    );
    assert_eq!(
        exports.len(),
        4,
        "3,500 users are 4 export pages, staff and deleted users notwithstanding"
    );
    assert_eq!(run.pages, 4, "one Talkdesk page per export page: no top-up requests");
    assert!(
        fake.requests_to("/api/v2/organizations").is_empty(),
        "organization names come with the export (include=organizations)"
    );
    let named = run.contacts.iter().filter(|c| c.get("company").is_some()).count();
    assert!(named > 1_000, "companies are filled: {named}");
}

#[tokio::test]
async fn without_the_sideload_organizations_cost_at_most_one_batched_request_per_export_page_and_are_cached() {
    let data = generated(3_500, 22);
    let truth = live(&data);
    let orgs = data.organizations.clone();
    let org_of: HashMap<String, u64> = data
        .users
        .values()
        .filter_map(|u| u.organization_id.map(|o| (u.id.to_string(), o)))
        .collect();
    let fake = FakeZendesk::start(data).await.unwrap();
    fake.set_sideload_organizations(false);
    let app = app_on(&fake, &[]);
    let run = sync_without_retries(&app, None, Duration::from_secs(20), &truth).await;
    assert!(run.failures.is_empty(), "{:?}", run.failures);
    for c in &run.contacts {
        let id = c["id"].as_str().unwrap();
        assert_eq!(
            c["company"].as_str(),
            org_of.get(id).and_then(|o| orgs.get(o)).map(String::as_str),
            "user {id}"
        );
    }
    let lookups = fake.requests_to("/api/v2/organizations/show_many").len();
    let exports = fake.requests_to("/api/v2/incremental").len();
    assert!(
        lookups >= 1 && lookups <= exports,
        "{lookups} organization requests for {exports} export pages"
    );
    fake.clear_requests();
    sync_without_retries(&app, None, Duration::from_secs(20), &truth).await;
    assert!(
        fake.requests_to("/api/v2/organizations").is_empty(),
        "names are reused within the cache's lifetime"
    );
}

#[tokio::test]
async fn under_the_export_rate_limit_and_a_429_storm_no_page_fails_and_no_checkpoint_passes_undelivered_users() {
    let data = generated(6_000, 23);
    let truth = live(&data);
    let fake = FakeZendesk::start(data).await.unwrap();
    // Two export requests a second, and on top of that a storm of 429s with `Retry-After: 1`.
    fake.set_export_rate_limit(Some((2, Duration::from_secs(1))));
    fake.fail_next_on("/api/v2/incremental", 4, Fault::rate_limited("1"));
    let app = app_on(&fake, &[]);
    let run = sync_without_retries(&app, None, Duration::from_secs(20), &truth).await;
    assert!(
        run.failures.is_empty(),
        "a page failed while a shorter one was possible: {:?}",
        run.failures
    );
    assert_eq!(ids(&run.contacts), truth.keys().cloned().collect::<HashSet<_>>(), "nothing lost");
    assert_eq!(run.contacts.len(), truth.len(), "nothing sent twice");
    assert_eq!(fake.pending_faults(), 0, "the storm was met");
    assert_eq!(
        fake.export_429s(),
        0,
        "the bridge paces itself: the window's own limit is never hit"
    );
    let exports = fake.requests_to("/api/v2/incremental");
    assert_eq!(exports.len(), 6 + 4, "6 export pages, and the 4 answered 429");
}

#[tokio::test]
async fn a_spent_window_longer_than_the_page_budget_gives_empty_pages_that_resume_not_errors() {
    let data = generated(2_500, 24);
    let truth = live(&data);
    let fake = FakeZendesk::start(data).await.unwrap();
    // One export request per 5-second window, and a page budget of 3 seconds: a page that finds the window
    // spent cannot wait for it.
    fake.set_export_rate_limit(Some((1, Duration::from_secs(5))));
    let app = app_on(&fake, &[]);
    let run = sync_without_retries(&app, None, Duration::from_secs(3), &truth).await;
    assert!(run.failures.is_empty(), "{:?}", run.failures);
    assert_eq!(ids(&run.contacts), truth.keys().cloned().collect::<HashSet<_>>());
    assert!(run.empty_pages > 0, "pages that could not wait came back empty, with a next_offset");
    assert_eq!(fake.export_429s(), 0);
}

#[tokio::test]
async fn a_refused_cursor_restarts_the_export_from_the_keyset_position_without_loss_or_duplicates() {
    let data = generated(2_500, 25);
    let truth = live(&data);
    let fake = FakeZendesk::start(data).await.unwrap();
    let app = app_on(&fake, &[]);
    let auth = auth_json();
    let first = app
        .contacts(
            json!({"auth": auth}).to_string().as_bytes(),
            &bridge::sync::budget::Unlimited,
            Utc::now(),
        )
        .await;
    let first: Value = serde_json::from_str(&first.body).unwrap();
    let offset = first["next_offset"].as_str().unwrap();
    fake.fail_next_on("/api/v2/incremental", 1, Fault::status(422));
    let second = app
        .contacts(
            json!({"auth": auth, "meta": {"offset": offset}}).to_string().as_bytes(),
            &bridge::sync::budget::Unlimited,
            Utc::now(),
        )
        .await;
    assert_eq!(second.status, 200, "{}", second.body);
    let exports = fake.requests_to("/api/v2/incremental");
    let last_two = &exports[exports.len() - 2..];
    assert!(last_two[0].param("cursor").is_some(), "the refused request carried the cursor");
    assert!(
        last_two[1].param("start_time").is_some(),
        "the retry restarts from the position's second"
    );
    let second: Value = serde_json::from_str(&second.body).unwrap();
    let a = ids(first["contacts"].as_array().unwrap());
    let b = ids(second["contacts"].as_array().unwrap());
    assert!(a.is_disjoint(&b), "what the first page returned is not sent again");
    // The rest of the sync completes the set.
    let rest = sync_from(&app, second["next_offset"].as_str()).await;
    let all: HashSet<String> = a.union(&b).cloned().chain(rest).collect();
    assert_eq!(all, truth.keys().cloned().collect::<HashSet<_>>());
}

/// The ids of a sync continued from `offset` (none: already complete).
async fn sync_from(app: &App, mut offset: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    let mut owned;
    while let Some(o) = offset {
        let r = app
            .contacts(
                json!({"auth": auth_json(), "meta": {"offset": o}}).to_string().as_bytes(),
                &bridge::sync::budget::Unlimited,
                Utc::now(),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let v: Value = serde_json::from_str(&r.body).unwrap();
        out.extend(ids(v["contacts"].as_array().unwrap()));
        owned = v["next_offset"].as_str().map(String::from);
        offset = owned.as_deref();
    }
    out
}

#[tokio::test]
async fn an_export_refused_without_a_cursor_is_a_502_that_says_what_to_do_and_is_not_retried() {
    let fake = FakeZendesk::start(generated(50, 26)).await.unwrap();
    let app = app_on(&fake, &[]);
    fake.fail_next_on("/api/v2/incremental", 1, Fault::status(422));
    let r = app
        .contacts(
            json!({"auth": auth_json()}).to_string().as_bytes(),
            &bridge::sync::budget::Unlimited,
            Utc::now(),
        )
        .await;
    assert_eq!(r.status, 502, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["error"]["code"], "upstream_rejected");
    assert!(v["error"]["message"].as_str().unwrap().contains("full sync"), "{}", r.body);
    assert!(r.headers.iter().all(|(name, _)| *name != "retry-after"), "not a transient failure");
    assert_eq!(fake.requests_to("/api/v2/incremental").len(), 1, "refused once, not asked again");
}

#[tokio::test]
async fn the_conformance_kit_passes_without_retries_against_the_local_bridge_under_the_rate_limit() {
    let fake = FakeZendesk::start(generated(3_000, 27)).await.unwrap();
    fake.set_export_rate_limit(Some((2, Duration::from_secs(1))));
    let app = Arc::new(app_on(&fake, &[]));
    let bridge = bridge_tests::local::serve(app).await.unwrap();
    let mut cfg = bridge_tests::sim::SimConfig::new(bridge.url());
    cfg.auth = auth_json();
    cfg.samples = 4;
    cfg.page_retries = 0;
    let report = bridge_tests::sim::run(cfg).await;
    print!("{}", report.render());
    assert!(report.passed(), "{}", report.render());
    assert_eq!(fake.export_429s(), 0);
}
