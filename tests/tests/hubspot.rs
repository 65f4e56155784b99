//! The HubSpot connector end to end: `bridge::App` on `BRIDGE_CONNECTOR=hubspot` against the fake HubSpot
//! (`bridge_tests::fake_hubspot`), one behaviour per test. The randomized full + incremental sync (ties,
//! changes between pages, 429s, restarts) is `hubspot_sync_property.rs`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bridge::error::ApiResponse;
use bridge::sync::budget::Unlimited;
use bridge::App;
use bridge_tests::fake_hubspot::{
    self, auth_json, generate, hubspot_error, rate_limited, FakeContact, FakeData, FakeHubSpot, FakeObject, FakeOwner, Fault, Generate,
    LimitHit, Limits, ACCESS_TOKEN, PORTAL_ID,
};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};

/// The bridge's "now" in these tests; the fake's data is older than the run bound (now - 2 min).
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn no_limits() -> Limits {
    Limits {
        search_per_second: None,
        per_ten_seconds: None,
        daily: None,
    }
}

async fn start(data: FakeData) -> FakeHubSpot {
    let fake = FakeHubSpot::start(data).await.unwrap();
    fake.set_limits(no_limits());
    fake
}

fn app(fake: &FakeHubSpot) -> App {
    fake_hubspot::app_on(fake, &[])
}

/// The ids of the interactions an answer holds, sorted.
fn sorted_ids(r: &ApiResponse) -> Vec<String> {
    let mut ids: Vec<String> = json_of(r)
        .as_array()
        .map(|a| a.iter().filter_map(|i| i["id"].as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

fn json_of(r: &ApiResponse) -> Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.body))
}

async fn contacts_page(app: &App, auth: &Value, checkpoint: Option<&str>, offset: Option<&str>) -> ApiResponse {
    let body = json!({"auth": auth, "meta": {"synchronization_checkpoint": checkpoint, "offset": offset}});
    app.contacts(body.to_string().as_bytes(), &Unlimited, now()).await
}

/// A whole sync run: every page until no `next_offset`. Returns the contacts and the final checkpoint.
async fn sync(app: &App, checkpoint: Option<&str>) -> (Vec<Value>, String) {
    let auth = auth_json();
    let mut offset: Option<String> = None;
    let mut contacts = Vec::new();
    for _ in 0..10_000 {
        let r = contacts_page(app, &auth, checkpoint, offset.as_deref()).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let v = json_of(&r);
        contacts.extend(v["contacts"].as_array().cloned().unwrap_or_default());
        match v["next_offset"].as_str() {
            Some(o) => offset = Some(o.to_string()),
            None => return (contacts, v["synchronization_checkpoint"].as_str().unwrap_or_default().to_string()),
        }
    }
    panic!("the sync never ended")
}

fn ids(contacts: &[Value]) -> Vec<String> {
    contacts.iter().map(|c| c["id"].as_str().unwrap_or_default().to_string()).collect()
}

fn contact(id: u64, at: i64) -> FakeContact {
    FakeContact::new(id, &format!("First{id}"), "Last", at)
}

fn data_of(contacts: Vec<FakeContact>) -> FakeData {
    let mut d = FakeData::default();
    d.default_pipelines();
    for c in contacts {
        d.add_contact(c);
    }
    d
}

fn searches(fake: &FakeHubSpot) -> Vec<Value> {
    fake.requests_to("/crm/v3/objects/contacts/search")
        .into_iter()
        .map(|r| r.body)
        .collect()
}

// ---------------------------------------------------------------------------------------------------
// Credentials

#[tokio::test]
async fn the_access_token_is_sent_as_a_bearer_token_to_the_configured_host_only() {
    let fake = start(data_of(vec![contact(1, ms(now()) - 3_600_000)])).await;
    let app = app(&fake);
    let (got, _) = sync(&app, None).await;
    assert_eq!(ids(&got), vec!["1"]);
    let requests = fake.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        assert_eq!(
            r.authorization.as_deref(),
            Some(format!("Bearer {ACCESS_TOKEN}").as_str()),
            "{}",
            r.path
        );
    }
    let paths: HashSet<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        HashSet::from(["/account-info/v3/details", "/crm/v3/objects/contacts/search"])
    );
}

#[tokio::test]
async fn missing_or_wrong_credentials_are_clear_errors_and_never_echo_the_token() {
    let fake = start(data_of(vec![contact(1, ms(now()) - 3_600_000)])).await;
    let app = app(&fake);
    let r = contacts_page(&app, &json!({}), None, None).await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("access_token"), "{}", r.body);
    assert!(fake.requests().is_empty(), "nothing is sent without a token");

    let r = contacts_page(&app, &json!({"access_token": "pat-na1-WRONG-SECRET"}), None, None).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(json_of(&r)["error"]["code"], "upstream_unauthorized");
    assert!(
        !r.body.contains("WRONG-SECRET") && !r.body.contains("Authentication credentials"),
        "{}",
        r.body
    );

    // A portal id that is not the token's account is refused before any search.
    fake.clear_requests();
    let r = contacts_page(&app, &json!({"access_token": ACCESS_TOKEN, "portal_id": "999"}), None, None).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("portal_id"), "{}", r.body);
    assert!(fake.requests_to("/crm").is_empty());
}

#[tokio::test]
async fn a_missing_scope_is_a_403_that_names_the_scope() {
    let fake = start(data_of(vec![contact(1, ms(now()) - 3_600_000)])).await;
    let app = app(&fake);
    fake.fail_next_on(
        "/crm/v3/objects/contacts/search",
        1,
        hubspot_error(
            403,
            "MISSING_SCOPES",
            "This app hasn't been granted all required scopes to make this call.",
        ),
    );
    let r = contacts_page(&app, &auth_json(), None, None).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("crm.objects.contacts.read"), "{}", r.body);
}

// ---------------------------------------------------------------------------------------------------
// Contact sync

#[tokio::test]
async fn contacts_map_every_documented_property_with_a_link_to_the_record() {
    let c = contact(512, ms(now()) - 3_600_000)
        .with("company", "Analytical Engines")
        .with("jobtitle", "Engineer")
        .with("email", "ada@example.com")
        .with("hs_additional_emails", "ada@work.example")
        .with("phone", "+1 415 555 0100")
        .with("mobilephone", "+44 20 7946 0000")
        .with("address", "12 Main St")
        .with("city", "Springfield")
        .with("zip", "12345")
        .with("country", "United States")
        .with("website", "https://ada.example")
        .with("twitterhandle", "@ada")
        .with("photo", "https://cdn.example/ada.png");
    let fake = start(data_of(vec![c])).await;
    let app = fake_hubspot::app_on(&fake, &[("HUBSPOT_PHOTO_PROPERTY", "photo")]);
    let (got, _) = sync(&app, None).await;
    assert_eq!(
        got,
        vec![json!({
            "id": "512", "name": "First512 Last", "company": "Analytical Engines", "title": "Engineer",
            "emails": ["ada@example.com", "ada@work.example"], "phones": ["+1 415 555 0100", "+44 20 7946 0000"],
            "photo_url": "https://cdn.example/ada.png", "address": "12 Main St, Springfield, 12345, United States",
            "websites": ["https://ada.example"], "twitter": "ada",
            "url": format!("https://app.hubspot.com/contacts/{PORTAL_ID}/record/0-1/512")
        })]
    );
    let body = &searches(&fake)[0];
    let asked: Vec<&str> = body["properties"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(asked.contains(&"photo") && asked.contains(&"twitterhandle") && asked.contains(&"hs_additional_emails"));
}

#[tokio::test]
async fn searches_filter_the_modification_date_up_to_the_run_bound_sorted_ascending_200_at_a_time() {
    let base = ms(now()) - 86_400_000;
    let fake = start(data_of((1..=450).map(|i| contact(i, base + i as i64 * 1000)).collect())).await;
    let app = app(&fake);
    let (got, checkpoint) = sync(&app, None).await;
    assert_eq!(ids(&got), (1..=450).map(|i| i.to_string()).collect::<Vec<_>>());
    let bodies = searches(&fake);
    let until = (ms(now()) - 120_000).to_string();
    for b in &bodies {
        assert_eq!(b["limit"], 200);
        assert_eq!(b["sorts"], json!([{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}]));
        assert!(b.get("after").is_none(), "every search is the first page of a fresh query: {b}");
        let filters = b["filterGroups"][0]["filters"].as_array().unwrap();
        assert!(
            filters.contains(&json!({"propertyName": "lastmodifieddate", "operator": "LTE", "value": until})),
            "{b}"
        );
    }
    assert!(
        bodies[0]["filterGroups"][0]["filters"].as_array().unwrap().len() == 1,
        "a full sync has no lower bound"
    );
    // The second search starts at the first page's last instant, inclusive.
    assert_eq!(
        bodies[1]["filterGroups"][0]["filters"][0],
        json!({"propertyName": "lastmodifieddate", "operator": "GTE", "value": (base + 200_000).to_string()})
    );
    assert_eq!(bodies.len(), 3, "450 contacts: three searches");

    // Incremental: nothing changed, one search from just after the run bound.
    fake.clear_requests();
    let (again, _) = sync(&app, Some(&checkpoint)).await;
    assert!(again.is_empty());
    let b = &searches(&fake)[0];
    assert_eq!(b["filterGroups"][0]["filters"][0]["operator"], "GTE");
    assert_eq!(
        b["filterGroups"][0]["filters"][0]["value"],
        json!((ms(now()) - 120_000 + 1).to_string())
    );

    // A change is picked up by the next incremental sync, alone.
    let changed_at = ms(now()) + 60_000;
    fake.with_data(|d| {
        d.update(7, changed_at, |c| {
            c.props.insert("firstname".into(), "Changed".into());
        })
    });
    let later = now() + chrono::Duration::minutes(10);
    let body = json!({"auth": auth_json(), "meta": {"synchronization_checkpoint": checkpoint}});
    let r = app.contacts(body.to_string().as_bytes(), &Unlimited, later).await;
    let v = json_of(&r);
    assert_eq!(ids(v["contacts"].as_array().unwrap()), vec!["7"]);
    assert_eq!(v["contacts"][0]["name"], "Changed Last");
}

#[tokio::test]
async fn a_tie_of_12000_contacts_in_one_millisecond_is_drained_by_id_without_hitting_the_10000_cap() {
    let base = ms(now()) - 86_400_000;
    let mut contacts: Vec<FakeContact> = (1..=300).map(|i| contact(i, base + i as i64)).collect();
    // 12,000 contacts imported in one millisecond, ids not in any particular order.
    contacts.extend((0..12_000u64).map(|k| contact(1_000_000 + (k * 7919) % 12_000 * 3 + 1, base + 150)));
    contacts.extend((1..=300).map(|i| contact(2_000_000 + i, base + 10_000 + i as i64)));
    let fake = start(data_of(contacts)).await;
    let app = fake_hubspot::app_on(&fake, &[("BRIDGE_PAGE_SIZE", "2000")]);
    let (got, _) = sync(&app, None).await;
    let got_ids = ids(&got);
    let unique: HashSet<&String> = got_ids.iter().collect();
    assert_eq!(unique.len(), 12_600, "every contact once");
    assert_eq!(got_ids.len(), 12_600, "no contact twice");
    let expected: HashSet<String> = fake.with_data(|d| d.live().map(|c| c.id.to_string()).collect());
    assert_eq!(unique.into_iter().cloned().collect::<HashSet<_>>(), expected);
    // The engine emitted them in (instant, id) order: the tie by id.
    let keys: Vec<(i64, u64)> = fake.with_data(|d| {
        got_ids
            .iter()
            .map(|id| {
                let c = d.contact(id.parse().unwrap()).unwrap();
                (c.updated_ms, c.id)
            })
            .collect()
    });
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "out of order");
    // The tie was drained with `EQ` + `hs_object_id GT`, sorted by id.
    let bodies = searches(&fake);
    let drains: Vec<&Value> = bodies.iter().filter(|b| b["sorts"][0]["propertyName"] == "hs_object_id").collect();
    assert!(drains.len() >= 60, "{} drain requests", drains.len());
    assert!(drains.iter().all(|b| b["filterGroups"][0]["filters"][0]["operator"] == "EQ"));
    let per_1000 = bodies.len() as f64 * 1000.0 / 12_600.0;
    assert!(
        per_1000 <= 5.5,
        "{per_1000:.2} searches per 1000 contacts ({} searches)",
        bodies.len()
    );
}

#[tokio::test]
async fn archived_contacts_are_not_emitted_and_a_merge_syncs_the_primary_with_the_merged_emails() {
    let base = ms(now()) - 86_400_000;
    let mut d = data_of(vec![
        contact(1, base + 1).with("email", "one@example.com"),
        contact(2, base + 2).with("email", "two@example.com"),
        contact(3, base + 3),
    ]);
    d.archive(3, base + 4);
    let fake = start(d).await;
    let app = app(&fake);
    let (got, checkpoint) = sync(&app, None).await;
    assert_eq!(ids(&got), vec!["1", "2"], "the archived contact is not emitted");

    fake.with_data(|d| d.merge(1, 2, ms(now()) + 1000));
    let later = now() + chrono::Duration::minutes(10);
    let body = json!({"auth": auth_json(), "meta": {"synchronization_checkpoint": checkpoint}});
    let r = app.contacts(body.to_string().as_bytes(), &Unlimited, later).await;
    let v = json_of(&r);
    assert_eq!(
        ids(v["contacts"].as_array().unwrap()),
        vec!["1"],
        "the secondary is archived, the primary changed"
    );
    assert_eq!(v["contacts"][0]["emails"], json!(["one@example.com", "two@example.com"]));
}

#[tokio::test]
async fn the_search_rate_limit_is_paced_from_hubspots_headers_without_a_429() {
    let base = ms(now()) - 86_400_000;
    let fake = start(data_of((1..=1400).map(|i| contact(i, base + i as i64)).collect())).await;
    fake.set_limits(Limits {
        search_per_second: Some(5),
        ..no_limits()
    });
    let app = fake_hubspot::app_on(&fake, &[("BRIDGE_PAGE_SIZE", "5000")]);
    let (got, _) = sync(&app, None).await;
    assert_eq!(got.len(), 1400);
    assert!(searches(&fake).len() >= 8, "more searches than one second allows");
    assert_eq!(
        fake.limit_hits(),
        vec![],
        "the bridge never sent a search HubSpot said it would refuse"
    );
}

#[tokio::test]
async fn a_secondly_429_without_retry_after_is_waited_out_and_the_sync_loses_nothing() {
    let base = ms(now()) - 86_400_000;
    let fake = start(data_of((1..=600).map(|i| contact(i, base + i as i64)).collect())).await;
    let app = app(&fake);
    fake.fail_next_on("/crm/v3/objects/contacts/search", 1, Fault::Delay(Duration::ZERO));
    fake.fail_next_on("/crm/v3/objects/contacts/search", 1, rate_limited(LimitHit::Secondly));
    let (got, _) = sync(&app, None).await;
    assert_eq!(ids(&got), (1..=600).map(|i| i.to_string()).collect::<Vec<_>>());
    assert_eq!(searches(&fake).len(), 5, "four searches and the one refused, asked again");
}

#[tokio::test]
async fn the_daily_limit_is_a_503_with_retry_after_until_midnight_in_the_portals_time_zone() {
    let mut d = data_of(vec![contact(1, ms(now()) - 3_600_000)]);
    d.utc_offset_ms = -5 * 3_600_000;
    let fake = start(d).await;
    let app = app(&fake);
    // The account's details (time zone UTC-5) are read before the search that hits the daily limit.
    fake.fail_next_on("/crm/v3/objects/contacts/search", 1, rate_limited(LimitHit::Daily));
    let r = contacts_page(&app, &auth_json(), None, None).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(json_of(&r)["error"]["code"], "upstream_unavailable");
    let secs: i64 = r.header("retry-after").unwrap().parse().unwrap();
    let local = Utc::now() - chrono::Duration::hours(5);
    let midnight = (local.date_naive() + chrono::Duration::days(1)).and_hms_opt(0, 0, 0).unwrap();
    let expected = (midnight - local.naive_utc()).num_seconds();
    assert!((secs - expected).abs() <= 5, "Retry-After {secs}, expected about {expected}");
    assert_eq!(searches(&fake).len(), 1, "a daily limit is not retried");
}

#[tokio::test]
async fn a_failure_mid_page_returns_what_was_gathered_and_the_offset_resumes_without_loss() {
    let base = ms(now()) - 86_400_000;
    let fake = start(data_of((1..=1000).map(|i| contact(i, base + i as i64)).collect())).await;
    let app = app(&fake);
    fake.fail_next_on("/crm/v3/objects/contacts/search", 2, Fault::Delay(Duration::ZERO));
    fake.fail_next_on(
        "/crm/v3/objects/contacts/search",
        2,
        hubspot_error(502, "INTERNAL_ERROR", "upstream secret detail"),
    );
    let r = contacts_page(&app, &auth_json(), None, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let first = json_of(&r);
    let got = ids(first["contacts"].as_array().unwrap());
    assert_eq!(
        got,
        (1..=398).map(|i| i.to_string()).collect::<Vec<_>>(),
        "two searches' worth, each last instant held back"
    );
    let checkpoint = first["synchronization_checkpoint"].as_str().unwrap().to_string();
    // The checkpoint does not pass the failure: an incremental sync from it gets everything after.
    let (rest, _) = sync(&app, Some(&checkpoint)).await;
    assert_eq!(ids(&rest), (399..=1000).map(|i| i.to_string()).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------------------------------
// Interactions

fn object(id: u64, at: i64, props: &[(&str, &str)]) -> FakeObject {
    FakeObject {
        id,
        props: props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        updated_ms: at,
    }
}

fn interaction_data() -> FakeData {
    let base = ms(now()) - 86_400_000;
    let mut d = data_of(vec![
        contact(10, base).with("email", "ann@example.com").with("phone", "(415) 555-0134"),
        contact(11, base + 1)
            .with("email", "bob@example.com")
            .with("mobilephone", "+44 20 7946 0001"),
        contact(12, base + 2).with("email", "old-ann@example.com"),
    ]);
    d.tickets.insert(
        100,
        object(
            100,
            base + 5000,
            &[
                ("subject", "Refund"),
                ("content", "Please\n\nrefund"),
                ("hs_pipeline", "0"),
                ("hs_pipeline_stage", "1"),
                ("hs_ticket_priority", "HIGH"),
            ],
        ),
    );
    d.tickets.insert(
        101,
        object(
            101,
            base + 9000,
            &[
                ("subject", "Login"),
                ("hs_pipeline", "0"),
                ("hs_pipeline_stage", "4"),
                ("hs_ticket_priority", "MEDIUM"),
            ],
        ),
    );
    d.tickets.insert(
        102,
        object(
            102,
            base + 7000,
            &[("subject", "Old account"), ("hs_pipeline", "0"), ("hs_pipeline_stage", "3")],
        ),
    );
    d.calls.insert(
        900,
        object(
            900,
            base + 8000,
            &[
                ("hs_call_title", "Follow-up"),
                ("hs_call_body", "<p>Renewal</p>"),
                ("hs_call_status", "COMPLETED"),
                ("hs_timestamp", "2026-11-30T12:00:08.000Z"),
            ],
        ),
    );
    d.ticket_links.insert(10, vec![100, 101]);
    d.call_links.insert(10, vec![900]);
    d.ticket_links.insert(12, vec![102]);
    d
}

async fn interactions(app: &App, types: Value, data: Value) -> ApiResponse {
    let body = json!({"auth": auth_json(), "meta": {"interaction_types": types}, "data": data});
    app.interactions(body.to_string().as_bytes()).await
}

#[tokio::test]
async fn tickets_and_calls_by_external_id_map_status_priority_and_links_with_batch_reads_only() {
    let fake = start(interaction_data()).await;
    let app = app(&fake);
    let r = interactions(&app, json!(["ticket", "call"]), json!({"contact_external_id": "10"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = json_of(&r);
    let base = format!("https://app.hubspot.com/contacts/{PORTAL_ID}/record");
    assert_eq!(v.as_array().unwrap().len(), 3);
    assert_eq!(v[0]["id"], "101");
    assert_eq!(
        (v[0]["status"].as_str(), v[0]["priority"].as_str()),
        (Some("closed"), Some("normal")),
        "stage 4 is CLOSED"
    );
    assert_eq!(v[1]["type"], "call");
    assert_eq!((v[1]["status"].as_str(), v[1]["priority"].as_str()), (Some("closed"), Some("none")));
    assert_eq!(v[1]["description"], "Renewal");
    assert_eq!(v[1]["url"], format!("{base}/0-48/900"));
    assert_eq!(v[2]["id"], "100");
    assert_eq!((v[2]["status"].as_str(), v[2]["priority"].as_str()), (Some("open"), Some("high")));
    assert_eq!(v[2]["description"], "Please refund");
    assert_eq!(v[2]["url"], format!("{base}/0-5/100"));
    // Associations and objects in batches, the pipelines once: never a request per ticket or call.
    let paths: Vec<String> = fake.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths.iter().filter(|p| p.starts_with("/crm/v4/associations/contacts/")).count(), 2);
    assert_eq!(
        paths
            .iter()
            .filter(|p| p.ends_with("/batch/read") && p.starts_with("/crm/v3/objects/"))
            .count(),
        2
    );
    assert_eq!(paths.iter().filter(|p| p.starts_with("/crm/v3/pipelines")).count(), 1);
    assert!(paths.iter().all(|p| !p.starts_with("/crm/v3/objects/tickets/1")), "{paths:?}");
    fake.clear_requests();
    let r = interactions(&app, json!(["ticket"]), json!({"contact_external_id": "10"})).await;
    assert_eq!(json_of(&r).as_array().unwrap().len(), 2);
    assert!(
        fake.requests_to("/crm/v3/pipelines").is_empty() && fake.requests_to("/account-info").is_empty(),
        "cached"
    );
}

/// `interaction_data` with two email engagements of Ann's (contact 10).
fn with_emails(mut d: FakeData) -> FakeData {
    let base = ms(now()) - 86_400_000;
    d.emails.insert(
        700,
        object(
            700,
            base + 6000,
            &[
                ("hs_email_subject", "Your invoice"),
                ("hs_email_text", "Hello Ann, <b>attached</b>"),
                ("hs_email_status", "SENT"),
                ("hs_timestamp", "2026-11-30T12:00:06.000Z"),
            ],
        ),
    );
    d.emails.insert(
        701,
        object(
            701,
            base + 10_000,
            &[("hs_email_status", "SCHEDULED"), ("hs_timestamp", "2026-11-30T12:00:10.000Z")],
        ),
    );
    d.email_links.insert(10, vec![700, 701]);
    d
}

/// Every request's path, in the order the fake received them.
fn paths(fake: &FakeHubSpot) -> Vec<String> {
    fake.requests().into_iter().map(|r| r.path).collect()
}

#[tokio::test]
async fn a_lookup_by_id_sends_no_search_and_reads_everything_in_two_rounds_of_concurrent_requests() {
    let fake = start(with_emails(interaction_data())).await;
    let app = app(&fake);
    // Round one: the account details, the ticket stages and three association reads, all in flight together
    // (the fake holds each until all five have arrived: one after another, the first would wait in vain).
    fake.gate(&["/account-info", "/crm/v3/pipelines", "/crm/v4/associations"], 5);
    let r = interactions(&app, json!(["ticket", "call", "email"]), json!({"contact_external_id": "10"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(fake.gate_opened(), "the first round was not sent at once: {:?}", paths(&fake));
    let got = paths(&fake);
    assert_eq!(got.len(), 8, "{got:?}");
    assert!(got.iter().all(|p| !p.ends_with("/search")), "no search by id: {got:?}");
    // Round two, only after round one: one batch read per type.
    assert!(got[..5].iter().all(|p| !p.starts_with("/crm/v3/objects/")), "{got:?}");
    let mut reads: Vec<&str> = got[5..].iter().map(String::as_str).collect();
    reads.sort_unstable();
    assert_eq!(
        reads,
        vec![
            "/crm/v3/objects/calls/batch/read",
            "/crm/v3/objects/emails/batch/read",
            "/crm/v3/objects/tickets/batch/read"
        ]
    );
    let v = json_of(&r);
    let kinds: Vec<&str> = v.as_array().unwrap().iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["email", "ticket", "call", "email", "ticket"], "newest first: {v}");
    assert_eq!(v[0]["status"], "new", "a scheduled email");
    assert_eq!(v[0]["subject"], "Email #701");
    assert_eq!(v[3]["subject"], "Your invoice");
    assert_eq!(v[3]["description"], "Hello Ann, attached");
    assert_eq!(v[3]["url"], format!("https://app.hubspot.com/contacts/{PORTAL_ID}/record/0-49/700"));

    // Cached account and stages: the three batch reads of round two are in flight together too.
    fake.clear_requests();
    fake.gate(&["/crm/v3/objects/"], 3);
    let r = interactions(&app, json!(["ticket", "call", "email"]), json!({"contact_external_id": "10"})).await;
    assert_eq!(json_of(&r).as_array().unwrap().len(), 5, "{}", r.body);
    assert!(fake.gate_opened(), "the batch reads were not sent at once: {:?}", paths(&fake));
    assert_eq!(paths(&fake).len(), 6, "three association reads, three batch reads");
}

#[tokio::test]
async fn a_lookup_by_three_emails_and_two_phones_is_two_searches_sent_at_once() {
    let mut d = with_emails(interaction_data());
    // Dan holds one of the emails as a secondary address only, the second of two.
    d.add_contact(
        contact(13, ms(now()) - 86_400_000)
            .with("email", "dan@example.com")
            .with("hs_additional_emails", "dan@home.example;D.Second@Example.com"),
    );
    d.ticket_links.insert(13, vec![102]);
    let fake = start(d).await;
    let app = app(&fake);
    // Email IN, three secondary-email EQ groups and two phone groups: six groups, more than one search holds.
    // Both searches are held until both have arrived (sent one after the other, the first would wait in vain).
    fake.gate(&["/crm/v3/objects/contacts/search"], 2);
    let r = interactions(
        &app,
        json!([]),
        json!({
            "contact_emails": ["ANN@example.com", "nobody@example.com", "d.second@example.com"],
            "contact_phones": ["+1 415-555-0134", "+44 20 7946 0001"]
        }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ids = sorted_ids(&r);
    assert_eq!(
        ids,
        vec!["100", "101", "102", "700", "701", "900"],
        "ann's five, dan's ticket; bob has none"
    );
    assert!(fake.gate_opened(), "the two searches were not sent at once: {:?}", paths(&fake));
    let mut bodies = searches(&fake);
    assert_eq!(bodies.len(), 2, "two searches for five identifiers: {bodies:?}");
    bodies.sort_by_key(|b| std::cmp::Reverse(b["filterGroups"].as_array().unwrap().len()));
    let filters = |b: &Value| -> Vec<Value> {
        let groups = b["filterGroups"].as_array().unwrap();
        assert!(groups.iter().all(|g| g["filters"].as_array().unwrap().len() == 1), "{b}");
        groups.iter().map(|g| g["filters"][0].clone()).collect()
    };
    let eq = |email: &str| json!({"propertyName": "hs_additional_emails", "operator": "EQ", "value": email});
    assert_eq!(
        filters(&bodies[0]),
        vec![
            json!({"propertyName": "email", "operator": "IN", "values": ["ann@example.com", "nobody@example.com"]}),
            eq("ann@example.com"),
            eq("nobody@example.com"),
            json!({"propertyName": "hs_searchable_calculated_phone_number", "operator": "IN",
                   "values": ["2079460001", "4155550134"]}),
            json!({"propertyName": "hs_searchable_calculated_mobile_number", "operator": "IN",
                   "values": ["2079460001", "4155550134"]}),
        ]
    );
    assert_eq!(
        filters(&bodies[1]),
        vec![
            json!({"propertyName": "email", "operator": "IN", "values": ["d.second@example.com"]}),
            eq("d.second@example.com"),
        ]
    );
}

#[tokio::test]
async fn a_contact_is_found_by_any_one_of_its_several_secondary_emails() {
    let base = ms(now()) - 86_400_000;
    let mut d = data_of(vec![contact(40, base)
        .with("email", "eve@example.com")
        .with("hs_additional_emails", "eve@old.example;Eve.Work@Example.org;eve@home.example")]);
    d.tickets.insert(
        400,
        object(
            400,
            base + 1,
            &[("subject", "Invoice"), ("hs_pipeline", "0"), ("hs_pipeline_stage", "1")],
        ),
    );
    d.ticket_links.insert(40, vec![400]);
    let fake = start(d).await;
    let app = app(&fake);
    for email in ["eve.work@example.org", "eve@home.example"] {
        fake.clear_requests();
        let r = interactions(&app, json!(["ticket"]), json!({"contact_emails": [email]})).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let v = json_of(&r);
        assert_eq!(v.as_array().map(Vec::len), Some(1), "{email}: {v}");
        assert_eq!(v[0]["id"], "400");
        assert_eq!(searches(&fake).len(), 1, "one email: one search");
    }
}

/// A lookup by `emails` emails and `phones` phones (BRIDGE_MAX_LOOKUP_IDENTIFIERS `cap`) in which only a
/// few people exist: the last email's, the last phone's, and one holding the middle email as the last of
/// two secondary addresses. Checks that all three are found, that the searches were sent at once, each
/// within HubSpot's filter limits (the fake also answers 400 past them), every identifier in exactly one.
async fn many_identifiers_are_searched_at_once_within_the_filter_limits(emails: usize, phones: usize, cap: &str, searches_expected: usize) {
    let base = ms(now()) - 86_400_000;
    let last_phone = format!("+1 415 555 {:04}", 2000 + phones - 1);
    let mut d = data_of(vec![
        contact(224, base).with("email", &format!("p{}@example.com", emails - 1)),
        contact(311, base).with("phone", &last_phone),
        contact(412, base)
            .with("email", "zed@example.com")
            .with("hs_additional_emails", &format!("zed@old.example;p{}@example.com", emails / 2)),
    ]);
    for (contact_id, ticket) in [(224u64, 1u64), (311, 2), (412, 3)] {
        d.tickets.insert(
            ticket,
            object(
                ticket,
                base + 1,
                &[("subject", "Late"), ("hs_pipeline", "0"), ("hs_pipeline_stage", "1")],
            ),
        );
        d.ticket_links.insert(contact_id, vec![ticket]);
    }
    let fake = start(d).await;
    let app = fake_hubspot::app_on(&fake, &[("BRIDGE_MAX_LOOKUP_IDENTIFIERS", cap)]);
    fake.gate(&["/crm/v3/objects/contacts/search"], searches_expected);
    let emails: Vec<String> = (0..emails).map(|n| format!("p{n}@example.com")).collect();
    let phones: Vec<String> = (0..phones).map(|n| format!("+1 415 555 {:04}", 2000 + n)).collect();
    let r = interactions(&app, json!(["ticket"]), json!({"contact_emails": emails, "contact_phones": phones})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ids = sorted_ids(&r);
    assert_eq!(
        ids,
        vec!["1", "2", "3"],
        "the last email's, the last phone's and the secondary email's people were searched too"
    );
    assert!(fake.gate_opened(), "the {searches_expected} searches were not sent at once");
    let bodies = searches(&fake);
    assert_eq!(bodies.len(), searches_expected);
    let (mut primary, mut secondary, mut numbers) = (Vec::new(), Vec::new(), Vec::new());
    for b in &bodies {
        let groups = b["filterGroups"].as_array().unwrap();
        assert!(groups.len() <= 5, "{b}");
        let filters: usize = groups.iter().map(|g| g["filters"].as_array().unwrap().len()).sum();
        assert!(filters <= 18 && groups.iter().all(|g| g["filters"].as_array().unwrap().len() <= 6));
        let (mut ins, mut eqs) = (Vec::new(), Vec::new());
        for g in groups {
            let f = &g["filters"][0];
            let values = || f["values"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string());
            match (f["propertyName"].as_str().unwrap(), f["operator"].as_str().unwrap()) {
                ("email", "IN") => ins.extend(values()),
                ("hs_additional_emails", "EQ") => eqs.push(f["value"].as_str().unwrap().to_string()),
                ("hs_searchable_calculated_phone_number", "IN") => numbers.extend(values()),
                ("hs_searchable_calculated_mobile_number", "IN") => assert!(f["values"].as_array().unwrap().len() <= 10),
                other => panic!("unexpected filter {other:?}: {f}"),
            }
        }
        assert_eq!(ins, eqs, "each search's emails, primary and secondary: {b}");
        primary.extend(ins);
        secondary.extend(eqs);
    }
    for (what, list, n) in [("emails", &primary, emails.len()), ("phones", &numbers, phones.len())] {
        assert_eq!(list.len(), n, "every one of the {what} in exactly one search");
        assert_eq!(list.iter().collect::<HashSet<_>>().len(), n);
    }
    assert_eq!(secondary.len(), emails.len());
}

#[tokio::test]
async fn ten_emails_and_ten_phones_are_three_searches_sent_at_once_within_the_filter_limits() {
    // The defaults' most: 10 phones and 2 emails (5 groups), then 4 emails (5 groups) twice.
    many_identifiers_are_searched_at_once_within_the_filter_limits(10, 10, "10", 3).await;
}

#[tokio::test]
async fn more_identifiers_than_the_defaults_are_split_into_searches_sent_at_once() {
    // 25 emails and 12 phones: two phone lists with two emails each, then 21 emails four a search.
    many_identifiers_are_searched_at_once_within_the_filter_limits(25, 12, "30", 8).await;
}

#[tokio::test]
async fn the_fakes_in_matches_whole_values_and_eq_finds_one_of_several_secondary_emails() {
    // The fake is strict: `IN` matches a whole value, so `IN` on a `;`-separated list misses; `EQ` on
    // `hs_additional_emails` matches any one address (as a HubSpot maintainer describes).
    let fake = start(data_of(vec![
        contact(1, ms(now()) - 3_600_000).with("hs_additional_emails", "a@example.com;b@example.com"),
        contact(2, ms(now()) - 3_600_000).with("hs_additional_emails", "b@example.com"),
    ]))
    .await;
    let client = reqwest::Client::new();
    let ids = |filter: Value| {
        let request = client
            .post(format!("{}/crm/v3/objects/contacts/search", fake.base_url()))
            .bearer_auth(ACCESS_TOKEN)
            .json(&json!({"filterGroups": [{"filters": [filter]}]}))
            .send();
        async move {
            let v: Value = request.await.unwrap().json().await.unwrap();
            v["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    let in_ = |v: &str| json!({"propertyName": "hs_additional_emails", "operator": "IN", "values": [v]});
    let eq = |v: &str| json!({"propertyName": "hs_additional_emails", "operator": "EQ", "value": v});
    assert_eq!(ids(in_("b@example.com")).await, vec!["2"], "IN: the whole value only");
    assert_eq!(ids(eq("B@example.com")).await, vec!["1", "2"], "EQ: any one address");
    assert_eq!(ids(eq("a@example.com")).await, vec!["1"]);
    assert_eq!(ids(in_("a@example.com")).await, Vec::<String>::new());
}

#[tokio::test]
async fn the_fake_refuses_searches_past_hubspots_filter_limits_with_a_400() {
    let fake = start(data_of(vec![contact(1, ms(now()) - 3_600_000).with("email", "a@example.com")])).await;
    let client = reqwest::Client::new();
    let search = |body: Value| {
        client
            .post(format!("{}/crm/v3/objects/contacts/search", fake.base_url()))
            .bearer_auth(ACCESS_TOKEN)
            .json(&body)
            .send()
    };
    let group = |n: usize| json!({"filters": (0..n).map(|_| json!({"propertyName": "email", "operator": "EQ", "value": "a@example.com"})).collect::<Vec<_>>()});
    for (body, why) in [
        (json!({"filterGroups": (0..6).map(|_| group(1)).collect::<Vec<_>>()}), "six groups"),
        (json!({"filterGroups": [group(7)]}), "seven filters in a group"),
        (
            json!({"filterGroups": (0..4).map(|_| group(5)).collect::<Vec<_>>()}),
            "twenty filters",
        ),
        (
            json!({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "IN"}]}]}),
            "IN without values",
        ),
    ] {
        let r = search(body).await.unwrap();
        assert_eq!(r.status(), 400, "{why}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["category"], "VALIDATION_ERROR", "{why}");
    }
    let ok = json!({"filterGroups": (0..5).map(|_| group(3)).collect::<Vec<_>>()});
    assert_eq!(search(ok).await.unwrap().status(), 200, "five groups, fifteen filters");
}

#[tokio::test]
async fn emails_need_their_own_scope_and_are_left_out_without_it() {
    let fake = start(with_emails(interaction_data())).await;
    fake.deny_scope("emails");
    let app = app(&fake);
    let r = interactions(&app, json!([]), json!({"contact_external_id": "10"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let kinds: HashSet<String> = json_of(&r)
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, HashSet::from(["ticket".to_string(), "call".into()]));
    let r = interactions(&app, json!(["email"]), json!({"contact_external_id": "10"})).await;
    assert_eq!(r.status, 403, "only the refused type was asked for: {}", r.body);
    assert!(r.body.contains("sales-email-read"), "{}", r.body);
}

#[tokio::test]
async fn a_merged_contacts_email_finds_the_primary_and_its_moved_interactions() {
    let mut d = interaction_data();
    d.merge(10, 12, ms(now()) - 1000);
    let fake = start(d).await;
    let app = app(&fake);
    let r = interactions(&app, json!(["ticket"]), json!({"contact_emails": ["old-ann@example.com"]})).await;
    let got: HashSet<String> = json_of(&r)
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, HashSet::from(["100".to_string(), "101".into(), "102".into()]), "{}", r.body);
}

#[tokio::test]
async fn a_type_outside_the_tokens_scopes_is_left_out_and_the_rest_is_answered() {
    let fake = start(interaction_data()).await;
    fake.deny_scope("calls");
    let app = app(&fake);
    let r = interactions(&app, json!(["ticket", "call"]), json!({"contact_external_id": "10"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let kinds: Vec<String> = json_of(&r)
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, vec!["ticket", "ticket"]);
    let r = interactions(&app, json!(["call"]), json!({"contact_external_id": "10"})).await;
    assert_eq!(r.status, 403, "only a refused type was asked for: {}", r.body);
}

#[tokio::test]
async fn one_failing_identifier_leaves_a_partial_answer_from_the_others() {
    let fake = start(interaction_data()).await;
    let app = app(&fake);
    // The search for Bob fails for good; Ann's id finds her: the answer is what was found.
    fake.fail_bodies_with("bob@example.com", hubspot_error(500, "INTERNAL_ERROR", "boom"));
    let r = interactions(
        &app,
        json!([]),
        json!({"contact_external_id": "10", "contact_emails": ["bob@example.com"]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(json_of(&r).as_array().unwrap().len(), 3, "{}", r.body);
    // Only Bob: nothing found and a failure is an error, not an empty answer.
    let r = interactions(&app, json!([]), json!({"contact_emails": ["bob@example.com"]})).await;
    assert_eq!(r.status, 502, "{}", r.body);
    fake.clear_faults();
    // By id alone, a short secondly 429 is waited out once.
    fake.fail_next_on("/crm/v4/associations", 1, rate_limited(LimitHit::Secondly));
    let r = interactions(&app, json!(["ticket"]), json!({"contact_external_id": "10"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(json_of(&r).as_array().unwrap().len(), 2);
    // A daily limit is a 503 until midnight.
    fake.fail_next_on("/crm/v4/associations", 1, rate_limited(LimitHit::Daily));
    let r = interactions(&app, json!(["ticket"]), json!({"contact_external_id": "10"})).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.header("retry-after").is_some());
}

#[tokio::test]
async fn a_non_numeric_external_id_sends_no_request() {
    let fake = start(interaction_data()).await;
    let app = app(&fake);
    let r = interactions(&app, json!([]), json!({"contact_external_id": "../secrets"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(json_of(&r), json!([]));
    assert!(fake.requests().is_empty());
}

// ---------------------------------------------------------------------------------------------------
// Agents (`POST /agents`): the account's owners

async fn agents(app: &App, auth: Value) -> ApiResponse {
    app.agents(json!({ "auth": auth }).to_string().as_bytes(), &Unlimited).await
}

fn error_of(r: &ApiResponse) -> (String, String) {
    let v = json_of(r);
    (
        v["error"]["code"].as_str().unwrap_or_default().to_string(),
        v["error"]["message"].as_str().unwrap_or_default().to_string(),
    )
}

/// 230 live people (three pages of 100), plus what is not an agent: archived owners, a queue and an owner
/// without an email. Returns the data and the expected agent ids, in id order.
fn account_with_owners() -> (FakeData, Vec<String>) {
    let mut d = data_of(vec![]);
    let mut expected = Vec::new();
    for n in 0..230u64 {
        let id = 41_000_000 + n * 7;
        d.owners.insert(
            id,
            FakeOwner::person(id, &format!("Agent{n}"), "Example", &format!("agent{n}@acme.test")),
        );
        expected.push(id.to_string());
    }
    let mut archived = FakeOwner::person(41_000_003, "Gone", "Away", "gone@acme.test");
    archived.archived = true;
    let mut queue = FakeOwner::person(41_000_004, "Support", "Queue", "queue@acme.test");
    queue.kind = "QUEUE".into();
    let mut no_email = FakeOwner::person(41_000_005, "No", "Email", "");
    no_email.email = None;
    for o in [archived, queue, no_email] {
        d.owners.insert(o.id, o);
    }
    (d, expected)
}

#[tokio::test]
async fn every_live_owner_is_an_agent_read_across_the_owners_pages() {
    let (d, expected) = account_with_owners();
    let fake = start(d).await;
    let app = app(&fake);
    let r = agents(&app, auth_json()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let listed = json_of(&r)["agents"].as_array().cloned().unwrap();
    let ids: Vec<String> = listed.iter().map(|a| a["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids, expected, "every live person once, nobody else");
    assert_eq!(
        listed[0],
        json!({"id": "41000000", "name": "Agent0 Example", "email": "agent0@acme.test"})
    );
    let sent = fake.requests_to("/crm/v3/owners");
    assert_eq!(
        sent.len(),
        3,
        "232 live owners (the queue and the one without email included) take three pages of 100: {sent:?}"
    );
    let param = |q: &str, name: &str| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    };
    for req in &sent {
        assert_eq!(req.method, "GET");
        assert_eq!(param(&req.query, "limit").as_deref(), Some("100"));
        assert_eq!(param(&req.query, "archived").as_deref(), Some("false"));
    }
    assert_eq!(param(&sent[0].query, "after"), None);
    let (second, third) = (param(&sent[1].query, "after"), param(&sent[2].query, "after"));
    assert!(second.is_some() && third.is_some() && second != third, "{sent:?}");
    assert!(second.unwrap().ends_with("%3D%3D"), "the cursor is percent-encoded");
}

#[tokio::test]
async fn agents_without_the_owners_scope_are_a_403_naming_the_scope() {
    let (d, _) = account_with_owners();
    let fake = start(d).await;
    fake.deny_scope("owners");
    let app = app(&fake);
    let r = agents(&app, auth_json()).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let (code, message) = error_of(&r);
    assert_eq!(code, "upstream_forbidden");
    assert!(message.contains("crm.objects.owners.read"), "{message}");
    assert!(!r.body.contains("agents\""), "no list at all");
}

#[tokio::test]
async fn agents_with_a_wrong_token_are_a_401() {
    let (d, _) = account_with_owners();
    let fake = start(d).await;
    let app = app(&fake);
    let r = agents(&app, json!({"access_token": "pat-na1-WRONG-SECRET"})).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(error_of(&r).0, "upstream_unauthorized");
    assert!(!r.body.contains("WRONG-SECRET"));
}

#[tokio::test]
async fn an_owners_page_failing_after_the_first_or_a_list_over_the_byte_cap_is_an_error_never_a_shorter_list() {
    let (d, _) = account_with_owners();
    let fake = start(d).await;
    let app = app(&fake);
    fake.fail_next_on("/crm/v3/owners", 1, Fault::Delay(Duration::ZERO));
    fake.fail_next_on("/crm/v3/owners", 1, hubspot_error(500, "INTERNAL_ERROR", "boom"));
    let r = agents(&app, auth_json()).await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(error_of(&r).0, "upstream_error");
    assert_eq!(fake.requests_to("/crm/v3/owners").len(), 2);
    let capped = fake_hubspot::app_on(&fake, &[("BRIDGE_MAX_RESPONSE_BYTES", "10000")]);
    let r = agents(&capped, auth_json()).await;
    assert_eq!(r.status, 502, "{}", r.body);
    let (code, message) = error_of(&r);
    assert_eq!(code, "agents_too_large");
    assert!(message.contains("BRIDGE_MAX_RESPONSE_BYTES"), "{message}");
}

// ---------------------------------------------------------------------------------------------------
// Authorization validation (`POST /auth/validate`): the account details, then a one-result contact search

async fn validate(app: &App, auth: Value) -> ApiResponse {
    app.validate(json!({ "auth": auth }).to_string().as_bytes(), &Unlimited).await
}

#[tokio::test]
async fn a_valid_token_validates_with_204_after_the_account_details_and_one_contact_search() {
    let fake = start(data_of(vec![contact(1, ms(now()) - 3_600_000)])).await;
    let app = app(&fake);
    let r = validate(&app, auth_json()).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(r.body.is_empty());
    let sent = fake.requests();
    let paths: Vec<&str> = sent.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, vec!["/account-info/v3/details", "/crm/v3/objects/contacts/search"]);
    assert_eq!(sent[1].body["limit"], 1);
    assert!(sent
        .iter()
        .all(|r| r.authorization.as_deref() == Some(format!("Bearer {ACCESS_TOKEN}").as_str())));
    // Without portal_id too.
    assert_eq!(validate(&app, json!({"access_token": ACCESS_TOKEN})).await.status, 204);
}

#[tokio::test]
async fn a_wrong_token_is_a_401_saying_hubspot_rejected_the_credentials() {
    let fake = start(data_of(vec![])).await;
    let app = app(&fake);
    let r = validate(&app, json!({"access_token": "pat-na1-WRONG-SECRET"})).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let (code, message) = error_of(&r);
    assert_eq!(code, "upstream_unauthorized");
    assert!(message.contains("HubSpot rejected the credentials"), "{message}");
    assert!(
        !r.body.contains("WRONG-SECRET") && !r.body.contains("Authentication credentials"),
        "{}",
        r.body
    );
    assert_eq!(r.header("retry-after"), None);
    // A malformed token or a portal that is not the token's account: 401 naming the field.
    let r = validate(&app, json!({"access_token": "has spaces in it"})).await;
    assert_eq!((r.status, error_of(&r).0.as_str()), (401, "invalid_auth"), "{}", r.body);
    assert!(error_of(&r).1.contains("access_token"));
    fake.clear_requests();
    let r = validate(&app, json!({"access_token": ACCESS_TOKEN, "portal_id": "999"})).await;
    assert_eq!((r.status, error_of(&r).0.as_str()), (401, "invalid_auth"), "{}", r.body);
    assert!(error_of(&r).1.contains("portal_id"));
    assert!(fake.requests_to("/crm").is_empty(), "no search for another account");
}

#[tokio::test]
async fn a_token_without_the_contacts_scope_is_a_401_naming_the_scope() {
    let fake = start(data_of(vec![contact(1, ms(now()) - 3_600_000)])).await;
    fake.deny_scope("contacts");
    let app = app(&fake);
    let r = validate(&app, auth_json()).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let (code, message) = error_of(&r);
    assert_eq!(code, "upstream_forbidden");
    assert!(message.contains("crm.objects.contacts.read"), "{message}");
    assert!(!r.body.contains("correlationId"), "HubSpot's body is not echoed: {}", r.body);
}

#[tokio::test]
async fn hubspot_down_during_validation_is_a_503_or_504_never_a_401() {
    let fake = start(data_of(vec![])).await;
    let app = app(&fake);
    for status in [502, 503, 504] {
        fake.fail_next_on("/account-info", 1, hubspot_error(status, "INTERNAL_ERROR", "down"));
        let r = validate(&app, json!({"access_token": ACCESS_TOKEN})).await;
        assert_eq!(
            (r.status, error_of(&r).0.as_str()),
            (503, "upstream_unavailable"),
            "{status}: {}",
            r.body
        );
        assert!(r.header("retry-after").is_some());
    }
    fake.fail_next_on("/account-info", 1, hubspot_error(500, "INTERNAL_ERROR", "secret detail"));
    let r = validate(&app, json!({"access_token": ACCESS_TOKEN})).await;
    assert_eq!((r.status, error_of(&r).0.as_str()), (502, "upstream_error"), "{}", r.body);
    assert!(!r.body.contains("secret detail"));
    // Nothing listening: connection refused.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let config = bridge_tests::config(
        &fake_hubspot::app_pairs(&format!("http://{closed}"))
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
    );
    let down = App::new(config.clone(), bridge::connectors::build(&config).unwrap()).unwrap();
    let r = validate(&down, auth_json()).await;
    assert_eq!((r.status, error_of(&r).0.as_str()), (503, "upstream_unavailable"), "{}", r.body);
}

// ---------------------------------------------------------------------------------------------------
// The conformance kit against the local bridge on the fake, with HubSpot's real limits

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_kit_passes_against_the_local_bridge_on_hubspot() {
    let data = generate(Generate {
        contacts: 1_500,
        tie: 450,
        seed: 11,
        latest_ms: (Utc::now().timestamp() - 7_200) * 1000,
    });
    let fake = FakeHubSpot::start(data).await.unwrap();
    let live = fake.with_data(|d| d.live().count());
    let app = Arc::new(fake_hubspot::app_on(&fake, &[("BRIDGE_PAGE_SIZE", "400")]));
    let bridge = bridge_tests::local::serve(app).await.unwrap();
    let mut cfg = bridge_tests::sim::SimConfig::new(bridge.url());
    cfg.auth = auth_json();
    cfg.samples = 6;
    cfg.page_retries = 0;
    let report = bridge_tests::sim::run(cfg).await;
    print!("{}", report.render());
    assert!(report.passed(), "{}", report.render());
    assert_eq!(report.initial_contacts, live);
}
