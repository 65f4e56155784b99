//! The screen-pop lookup end to end: `bridge::App` on the Zendesk connector against the fake Zendesk, for
//! what `bridge::lookup` promises: partial answers, the right error when nothing could be found, the
//! deadline, the identifier caps and dedupe, and the request bound. Counts, never timings.

use std::time::Duration;

use bridge::error::ApiResponse;
use bridge::App;
use bridge_tests::fake_zendesk::{auth_json, FakeData, FakeIdentity, FakeTicket, FakeUser, FakeZendesk, Fault};
use serde_json::{json, Value};

const TOKEN_KEY: &str = "lookup-tests-token-key-0123456789";
const T0: i64 = 1_700_000_000;
/// Long enough to stand for "never answers" in any of these tests.
const HANG: Duration = Duration::from_secs(3600);

fn app(fake: &FakeZendesk, extra: &[(&str, &str)]) -> App {
    bridge_tests::zendesk_app(fake, TOKEN_KEY, extra)
}

async fn lookup(app: &App, data: Value) -> ApiResponse {
    let body = json!({"auth": auth_json(), "meta": {"interaction_types": ["ticket"]}, "data": data});
    app.interactions(body.to_string().as_bytes()).await
}

fn ids_of(r: &ApiResponse) -> Vec<String> {
    assert_eq!(r.status, 200, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).expect("JSON");
    let mut ids: Vec<String> = v
        .as_array()
        .expect("an array")
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_string())
        .collect();
    ids.sort();
    ids
}

fn code_of(r: &ApiResponse) -> String {
    let v: Value = serde_json::from_str(&r.body).expect("JSON");
    v["error"]["code"].as_str().unwrap_or_default().to_string()
}

fn ticket(id: u64, requester: u64) -> FakeTicket {
    FakeTicket {
        id,
        requester_id: requester,
        subject: Some(format!("Ticket {id}")),
        description: "Hello".into(),
        priority: None,
        status: "open".into(),
        custom_status_id: None,
        created_at: T0 - 1000,
        updated_at: T0 - id as i64,
    }
}

/// Ann (10): ann@example.com, +1 415 555 0134, and a secondary ann.secondary@work.example; tickets 1-3.
/// Joann (11): joann@example.com, +44 20 7946 0134; ticket 20. Ned (12): ned@example.com, no tickets.
fn people() -> FakeData {
    let mut data = FakeData::default();
    let mut ann = FakeUser::end_user(10, "Ann", T0 - 9000);
    ann.email = Some("ann@example.com".into());
    ann.phone = Some("(415) 555-0134".into());
    ann.identities = vec![FakeIdentity {
        id: 1,
        kind: "email".into(),
        value: "ann.secondary@work.example".into(),
        primary: false,
    }];
    let mut joann = FakeUser::end_user(11, "Joann", T0 - 9000);
    joann.email = Some("joann@example.com".into());
    joann.phone = Some("+44 20 7946 0134".into());
    let mut ned = FakeUser::end_user(12, "Ned", T0 - 9000);
    ned.email = Some("ned@example.com".into());
    for u in [ann, joann, ned] {
        data.add_user(u);
    }
    data.tickets = vec![ticket(1, 10), ticket(2, 10), ticket(3, 10), ticket(20, 11)];
    data
}

const ANN: [&str; 3] = ["1", "2", "3"];

// ---------------------------------------------------------------------------------------------------
// Partial answers

#[tokio::test]
async fn one_failing_identifier_among_several_still_returns_the_others_tickets() {
    let fake = FakeZendesk::start(people()).await.unwrap();
    let app = app(&fake, &[]);
    // Joann's search is rate limited for longer than a lookup waits; Ann's answers.
    fake.fail_queries_with("joann@example.com", Fault::rate_limited("30"));
    let r = lookup(&app, json!({"contact_emails": ["joann@example.com", "ann@example.com"]})).await;
    assert_eq!(ids_of(&r), ANN);

    // A 403 on the identities of the person a secondary email points to does not hide Joann's ticket.
    fake.clear_faults();
    fake.fail_next_on("/api/v2/users/10/identities", 1, Fault::forbidden());
    let r = lookup(&app, json!({"contact_emails": ["joann@example.com", "ann.secondary@work.example"]})).await;
    assert_eq!(ids_of(&r), vec!["20"]);
    assert_eq!(fake.requests_to("/api/v2/users/10/identities").len(), 1);

    // One person's tickets failing does not hide another person's.
    fake.fail_next_on("/api/v2/users/10/tickets", 1, Fault::status(500));
    let r = lookup(&app, json!({"contact_external_id": "10", "contact_phones": ["+44 20 7946 0134"]})).await;
    assert_eq!(ids_of(&r), vec!["20"]);
}

#[tokio::test]
async fn when_nothing_is_found_and_something_failed_the_most_telling_error_is_the_answer() {
    let fake = FakeZendesk::start(people()).await.unwrap();
    let app = app(&fake, &[]);

    // Every search rate limited: 503 with the longest Retry-After any of them gave.
    fake.fail_queries_with("ann@example.com", Fault::rate_limited("7"));
    fake.fail_queries_with("4155550134", Fault::rate_limited("30"));
    let r = lookup(
        &app,
        json!({"contact_emails": ["ann@example.com"], "contact_phones": ["(415) 555-0134"]}),
    )
    .await;
    assert_eq!((r.status, code_of(&r).as_str()), (503, "upstream_rate_limited"), "{}", r.body);
    assert_eq!(r.header("retry-after"), Some("30"));

    // Rate limited and unavailable: rate limiting tells more (it says when to come back).
    fake.clear_faults();
    fake.fail_queries_with("ann@example.com", Fault::unavailable(None));
    fake.fail_queries_with("4155550134", Fault::rate_limited("9"));
    let r = lookup(
        &app,
        json!({"contact_emails": ["ann@example.com"], "contact_phones": ["(415) 555-0134"]}),
    )
    .await;
    assert_eq!((r.status, code_of(&r).as_str()), (503, "upstream_rate_limited"));
    assert_eq!(r.header("retry-after"), Some("9"));

    // A person found without tickets is not an answer when another identifier failed: [] would claim
    // that the caller has no tickets, which nobody knows.
    fake.clear_faults();
    fake.fail_queries_with("ann@example.com", Fault::status(500));
    let r = lookup(&app, json!({"contact_emails": ["ned@example.com", "ann@example.com"]})).await;
    assert_eq!((r.status, code_of(&r).as_str()), (502, "upstream_error"), "{}", r.body);
    // ... while the same person found with nothing failing is a plain empty answer.
    fake.clear_faults();
    let r = lookup(&app, json!({"contact_emails": ["ned@example.com"]})).await;
    assert_eq!(ids_of(&r), Vec::<String>::new());

    // Credentials refused everywhere: 401, whatever else happened.
    fake.fail_queries_with("ann@example.com", Fault::rate_limited("9"));
    let body = json!({"auth": {"subdomain": "acme", "email": "admin@acme.test", "api_token": "wrong"}, "data": {"contact_external_id": "10", "contact_emails": ["ann@example.com"]}});
    let r = app.interactions(body.to_string().as_bytes()).await;
    assert_eq!((r.status, code_of(&r).as_str()), (401, "upstream_unauthorized"), "{}", r.body);
}

#[tokio::test]
async fn a_lookup_whose_every_request_hangs_answers_504_at_its_deadline() {
    let fake = FakeZendesk::start(people()).await.unwrap();
    let app = app(&fake, &[("BRIDGE_LOOKUP_BUDGET_MS", "1000")]);
    fake.fail_next(100, Fault::Delay(HANG));
    let r = lookup(
        &app,
        json!({"contact_external_id": "10", "contact_emails": ["ann@example.com"], "contact_phones": ["(415) 555-0134"]}),
    )
    .await;
    assert_eq!((r.status, code_of(&r).as_str()), (504, "upstream_timeout"), "{}", r.body);
    assert_eq!(r.header("retry-after"), Some("5"));
    assert!(r.body.contains("Zendesk did not answer in time"), "{}", r.body);
    assert_eq!(fake.requests().len(), 3, "the fetch and both searches started at once");
}

#[tokio::test]
async fn the_deadline_cut_returns_what_was_found_before_it() {
    let fake = FakeZendesk::start(people()).await.unwrap();
    // Long enough for Ann's search and tickets on a busy machine; the phone search never answers.
    let app = app(&fake, &[("BRIDGE_LOOKUP_BUDGET_MS", "2000")]);
    fake.fail_queries_with("phone:", Fault::Delay(HANG));
    let r = lookup(
        &app,
        json!({"contact_emails": ["ann@example.com"], "contact_phones": ["+44 20 7946 0134"]}),
    )
    .await;
    assert_eq!(ids_of(&r), ANN, "Ann's tickets, without Joann's, whose phone search was cut");
    // Ann's tickets were fetched while the phone search was still running.
    assert_eq!(fake.requests_to("/api/v2/users/10/tickets").len(), 1);
    assert_eq!(fake.requests_to("/api/v2/users/11/tickets").len(), 0);
}

// ---------------------------------------------------------------------------------------------------
// Round trips, caps, dedupe and the request bound

#[tokio::test]
async fn a_lookup_by_external_id_is_one_request() {
    let fake = FakeZendesk::start(people()).await.unwrap();
    let app = app(&fake, &[]);
    let r = lookup(&app, json!({"contact_external_id": "10", "contact_name": "Ann"})).await;
    assert_eq!(ids_of(&r), ANN);
    let requests = fake.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].path, "/api/v2/users/10/tickets/requested");
}

#[tokio::test]
async fn a_person_found_by_primary_email_and_phone_is_fetched_once_and_a_loose_match_never() {
    let fake = FakeZendesk::start(people()).await.unwrap();
    let app = app(&fake, &[]);
    let r = lookup(
        &app,
        json!({"contact_emails": ["ANN@example.com"], "contact_phones": ["+1 415 555 0134"]}),
    )
    .await;
    assert_eq!(ids_of(&r), ANN);
    assert_eq!(fake.requests_to("/api/v2/users/search").len(), 2);
    assert_eq!(fake.requests_to("/api/v2/users/10/tickets").len(), 1);
    // Joann matched Ann's email search loosely: her identities were read, her tickets never.
    assert_eq!(fake.requests_to("/api/v2/users/11/tickets").len(), 0);
}

#[tokio::test]
async fn a_100000_entry_list_is_deduplicated_capped_and_stays_within_the_request_bound() {
    let fake = FakeZendesk::start(people()).await.unwrap();
    let app = app(&fake, &[]);
    // 30 distinct emails, each 100 times in two cases; 30 distinct phones, each in two formats; 96,940
    // copies of `1` (not a phone number).
    let mut emails: Vec<Value> = Vec::new();
    for round in 0..100 {
        for n in 0..30 {
            let e = if n == 0 {
                "ann@example.com".to_string()
            } else {
                format!("u{n}@x.co")
            };
            emails.push(json!(if round % 2 == 0 { e } else { e.to_uppercase() }));
        }
    }
    let mut phones: Vec<Value> = (0..30)
        .flat_map(|n| {
            [
                json!(format!("+1415555{:04}", 1000 + n)),
                json!(format!("(415) 555-{:04}", 1000 + n)),
            ]
        })
        .collect();
    phones.extend(std::iter::repeat_n(json!(1), 96_940));
    assert_eq!(emails.len() + phones.len(), 100_000);
    let body = json!({"auth": auth_json(), "meta": {"interaction_types": ["ticket"]}, "data": {"contact_emails": emails, "contact_phones": phones}}).to_string();
    assert!(body.len() < 256 * 1024, "the body is {} bytes", body.len());

    let started = std::time::Instant::now();
    let r = app.interactions(body.as_bytes()).await;
    let took = started.elapsed();
    assert_eq!(ids_of(&r), ANN);
    let searches = fake.requests_to("/api/v2/users/search");
    let mut queries: Vec<&str> = searches.iter().filter_map(|s| s.param("query")).collect();
    queries.sort_unstable();
    queries.dedup();
    assert_eq!(searches.len(), 20, "10 emails and 10 phones, each searched once");
    assert_eq!(queries.len(), 20);
    assert!(queries.contains(&"email:ann@example.com") && queries.contains(&"email:u9@x.co"));
    assert!(!queries.contains(&"email:u10@x.co"), "the 11th distinct email is past the cap");
    let costs = app.connector.lookup_costs(app.config.max_interactions);
    let bound = bridge::lookup::request_bound(10, 10, &costs);
    let made = fake.requests().len();
    assert!(made <= bound, "{made} requests, bound {bound}");
    println!(
        "100,000 entries ({} bytes): {made} upstream requests (bound {bound}), {} ms",
        body.len(),
        took.as_millis()
    );
}

#[tokio::test]
async fn two_thousand_emails_make_ten_searches() {
    let fake = FakeZendesk::start(people()).await.unwrap();
    let app = app(&fake, &[("BRIDGE_MAX_LOOKUP_IDENTIFIERS", "10")]);
    let emails: Vec<String> = (0..2_000).map(|n| format!("caller{n}@example.org")).collect();
    let r = lookup(&app, json!({"contact_emails": emails})).await;
    assert_eq!(ids_of(&r), Vec::<String>::new());
    assert_eq!(fake.requests().len(), 10);
    assert!(fake.max_in_flight() <= bridge::lookup::MAX_IN_FLIGHT);
}
