//! The Zendesk connector end to end: `bridge::App` on `BRIDGE_CONNECTOR=zendesk` against the fake Zendesk
//! (`bridge_tests::fake_zendesk`), one behaviour per test.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bridge::connectors::zendesk::mapping::DESCRIPTION_MAX_CHARS;
use bridge::error::ApiResponse;
use bridge::sync::budget::Unlimited;
use bridge::App;
use bridge_tests::fake_zendesk::{self, auth_json, FakeData, FakeIdentity, FakeTicket, FakeUser, FakeZendesk, Fault, Generate};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};

/// A fixed "now" for tests that freeze the fake's clock.
const T0: i64 = 1_700_000_000;

fn app_with(fake: &FakeZendesk, extra: &[(&str, &str)]) -> App {
    fake_zendesk::app_on(fake, extra)
}

fn app(fake: &FakeZendesk) -> App {
    app_with(fake, &[])
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().expect("valid instant")
}

fn json_of(r: &ApiResponse) -> Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.body))
}

async fn contacts_page(app: &App, auth: &Value, checkpoint: Option<&str>, offset: Option<&str>, now: DateTime<Utc>) -> ApiResponse {
    let body = json!({"auth": auth, "meta": {"synchronization_checkpoint": checkpoint, "offset": offset}});
    app.contacts(body.to_string().as_bytes(), &Unlimited, now).await
}

/// A whole sync run: every page until no `next_offset`. Returns the contacts and the final checkpoint.
async fn sync(app: &App, checkpoint: Option<&str>, now: DateTime<Utc>) -> (Vec<Value>, String) {
    let auth = auth_json();
    let mut offset: Option<String> = None;
    let mut contacts = Vec::new();
    for _ in 0..10_000 {
        let r = contacts_page(app, &auth, checkpoint, offset.as_deref(), now).await;
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

async fn interactions(app: &App, data: Value) -> ApiResponse {
    let body = json!({"auth": auth_json(), "meta": {"interaction_types": ["ticket"]}, "data": data});
    app.interactions(body.to_string().as_bytes()).await
}

fn user(id: u64, updated_at: i64) -> FakeUser {
    let mut u = FakeUser::end_user(id, &format!("User {id}"), updated_at);
    u.email = Some(format!("user{id}@example.com"));
    u
}

fn data_of(users: Vec<FakeUser>) -> FakeData {
    let mut d = FakeData::default();
    for u in users {
        d.add_user(u);
    }
    d
}

fn ticket(id: u64, requester: u64, updated_at: i64, status: &str, priority: Option<&str>) -> FakeTicket {
    FakeTicket {
        id,
        requester_id: requester,
        subject: Some(format!("Ticket {id}")),
        description: format!("Description of {id}"),
        priority: priority.map(String::from),
        status: status.into(),
        custom_status_id: None,
        created_at: updated_at - 100,
        updated_at,
    }
}

/// An HTTP date (`Retry-After`) `secs` from now.
fn http_date(secs: i64) -> String {
    (Utc::now() + chrono::Duration::seconds(secs))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

fn http_post(path: &str, body: Value) -> http::Request<Vec<u8>> {
    http::Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/json")
        .body(body.to_string().into_bytes())
        .expect("request builds")
}

// ---------------------------------------------------------------------------------------------------
// Credentials and the host

#[tokio::test]
async fn hostile_subdomains_are_refused_with_400_and_nothing_is_sent() {
    let fake = FakeZendesk::start(data_of(vec![user(1, T0 - 3600)])).await.unwrap();
    let app = app(&fake);
    let long = "a".repeat(64);
    let corpus: Vec<Value> = vec![
        json!(""),
        json!(" "),
        json!("acme.zendesk.com"),
        json!("evil.com"),
        json!("acme.evil.com"),
        json!("acme/"),
        json!("acme/../x"),
        json!("/acme"),
        json!("acme@evil.com"),
        json!("user:pass@evil"),
        json!("acme:443"),
        json!("acme:8080"),
        json!("%61cme"),
        json!("acme%2eevil"),
        json!("127.0.0.1"),
        json!("169.254.169.254"),
        json!("[::1]"),
        json!("::1"),
        json!("0177.0.0.1"),
        json!("ACME"),
        json!("Acme"),
        json!("-acme"),
        json!("acme_support"),
        json!(long),
        json!("ácme"),
        json!("xn--cme-0na.example"),
        json!("acme\u{0}"),
        json!("acme\r\nHost: evil"),
        json!("acme#x"),
        json!("acme?x=1"),
        json!("acme\\evil"),
        json!("acme evil"),
        json!("http://acme"),
        json!("localhost:9"),
        json!(12.5),
        json!("acme%00"),
    ];
    assert!(corpus.len() >= 20);
    for subdomain in &corpus {
        let auth = json!({"subdomain": subdomain, "email": fake_zendesk::EMAIL, "api_token": fake_zendesk::API_TOKEN});
        let req = http_post("/contacts", json!({"auth": auth, "meta": {}}));
        let resp = app.handle_contacts(&req, &Unlimited, Utc::now()).await;
        assert_eq!(resp.status(), 400, "contacts with subdomain {subdomain}: {}", resp.body());
        let body: Value = serde_json::from_str(resp.body()).unwrap();
        assert_eq!(body["error"]["code"], "invalid_auth", "{subdomain}");
        assert!(body["error"]["message"].as_str().unwrap().contains("auth.subdomain"), "{body}");
        let req = http_post(
            "/interactions",
            json!({"auth": auth, "data": {"contact_external_id": "1", "contact_emails": ["user1@example.com"]}}),
        );
        let resp = app.handle_interactions(&req).await;
        assert_eq!(resp.status(), 400, "interactions with subdomain {subdomain}: {}", resp.body());
    }
    assert!(fake.requests().is_empty(), "the fake was called: {:?}", fake.requests());
    println!(
        "hostile subdomains refused: {} (contacts and interactions), requests sent: 0",
        corpus.len()
    );
}

#[tokio::test]
async fn api_token_credentials_are_sent_as_basic_auth_to_the_configured_host_only() {
    let fake = FakeZendesk::start(data_of(vec![user(1, T0 - 3600)])).await.unwrap();
    let app = app(&fake);
    let (contacts, _) = sync(&app, None, Utc::now()).await;
    assert_eq!(ids(&contacts), vec!["1"]);
    let reqs = fake.requests();
    assert!(!reqs.is_empty());
    let expected = format!(
        "Basic {}",
        fake_zendesk::b64_encode(format!("{}/token:{}", fake_zendesk::EMAIL, fake_zendesk::API_TOKEN).as_bytes())
    );
    for r in &reqs {
        assert_eq!(r.authorization.as_deref(), Some(expected.as_str()));
        assert_eq!(r.host.as_deref(), Some(fake.addr.to_string().as_str()));
        assert_eq!(r.method, "GET");
    }
    assert_eq!(reqs[0].path, "/api/v2/incremental/users/cursor");
}

#[tokio::test]
async fn an_oauth_access_token_is_sent_as_a_bearer_token() {
    let fake = FakeZendesk::start(data_of(vec![user(1, T0 - 3600)])).await.unwrap();
    let app = app(&fake);
    let auth = json!({"subdomain": "acme", "access_token": fake_zendesk::ACCESS_TOKEN});
    let r = contacts_page(&app, &auth, None, None, Utc::now()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let expected = format!("Bearer {}", fake_zendesk::ACCESS_TOKEN);
    assert_eq!(fake.requests()[0].authorization.as_deref(), Some(expected.as_str()));
}

#[tokio::test]
async fn missing_credential_fields_are_400s_naming_the_field_and_send_nothing() {
    let fake = FakeZendesk::start(data_of(vec![user(1, T0 - 3600)])).await.unwrap();
    let app = app(&fake);
    for (auth, field) in [
        (json!({"email": "a@b.co", "api_token": "t"}), "auth.subdomain"),
        (json!({"subdomain": "acme"}), "auth.api_token"),
        (json!({"subdomain": "acme", "api_token": "t"}), "auth.email"),
        (json!({"subdomain": "acme", "email": "a@b.co"}), "auth.api_token"),
        (json!({"subdomain": "acme", "email": "nope", "api_token": "t"}), "auth.email"),
        (json!({"subdomain": "acme", "access_token": "has space"}), "auth.access_token"),
    ] {
        let r = contacts_page(&app, &auth, None, None, Utc::now()).await;
        assert_eq!(r.status, 400, "{auth}");
        assert!(
            json_of(&r)["error"]["message"].as_str().unwrap().contains(field),
            "{auth}: {}",
            r.body
        );
    }
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn a_zendesk_deployment_refuses_to_start_without_its_own_token_key() {
    let config = bridge_tests::config(&[("BRIDGE_CONNECTOR", "zendesk")]);
    let err = config.resolve_token_key().unwrap_err().to_string();
    assert!(err.contains("BRIDGE_TOKEN_KEY"), "{err}");
    let connector = bridge::connectors::build(&config).expect("the connector itself builds");
    assert_eq!(connector.name(), "zendesk");
    assert!(App::new(config, connector).is_err());
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn rejected_credentials_are_a_401_and_secrets_never_reach_bodies_or_logs() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let fake = FakeZendesk::start(data_of(vec![user(1, T0 - 3600)])).await.unwrap();
    let app = app(&fake);
    let secret = "S3CRET-api-token-value";
    let auth = json!({"subdomain": "acme", "email": "admin@acme.test", "api_token": secret});
    let r = contacts_page(&app, &auth, None, None, Utc::now()).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(json_of(&r)["error"]["message"], "Zendesk rejected the credentials");
    let r = interactions(&app, json!({"contact_external_id": "1"})).await;
    assert_eq!(r.status, 200);
    let bad = json!({"auth": auth, "data": {"contact_emails": ["user1@example.com"]}});
    let r = app.interactions(bad.to_string().as_bytes()).await;
    assert_eq!(r.status, 401);
    // A transient failure is tried once more before the page gives up: fail both tries.
    fake.fail_next(2, Fault::status(500));
    let r = contacts_page(&app, &auth_json(), None, None, Utc::now()).await;
    assert_eq!(r.status, 502);

    let basic = fake_zendesk::b64_encode(format!("admin@acme.test/token:{secret}").as_bytes());
    let good_basic = fake_zendesk::b64_encode(format!("{}/token:{}", fake_zendesk::EMAIL, fake_zendesk::API_TOKEN).as_bytes());
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(!text.is_empty(), "nothing was logged");
    for needle in [
        secret,
        basic.as_str(),
        fake_zendesk::API_TOKEN,
        good_basic.as_str(),
        "user1@example.com",
    ] {
        assert!(!text.contains(needle), "the logs hold `{needle}`:\n{text}");
        assert!(!r.body.contains(needle));
    }
}

#[tokio::test]
async fn agent_credentials_get_a_403_explaining_that_the_export_needs_an_admin() {
    let fake = FakeZendesk::start(data_of(vec![user(1, T0 - 3600)])).await.unwrap();
    fake.set_admin(false);
    let app = app(&fake);
    let r = contacts_page(&app, &auth_json(), None, None, Utc::now()).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let v = json_of(&r);
    assert_eq!(v["error"]["code"], "upstream_forbidden");
    assert!(v["error"]["message"].as_str().unwrap().contains("admin"), "{v}");
}

// ---------------------------------------------------------------------------------------------------
// Contacts

#[tokio::test]
async fn users_map_to_contacts_with_identities_organization_photo_and_user_fields() {
    let mut u = user(35436, T0 - 3600);
    u.name = "Jane Doe".into();
    u.email = Some("jane@example.com".into());
    u.phone = Some("+15551234567".into());
    u.organization_id = Some(57542);
    u.photo_url = Some("https://acme.zendesk.com/photos/jane.png".into());
    u.user_fields.insert("job_title".into(), json!("CTO"));
    u.user_fields.insert("address".into(), json!("37, Famous St., New York, US"));
    u.user_fields.insert("site".into(), json!("www.example.com"));
    u.user_fields.insert("tw".into(), json!("@jane_doe"));
    u.user_fields.insert("unmapped".into(), json!("ignored"));
    u.identities = vec![
        FakeIdentity {
            id: 1,
            kind: "email".into(),
            value: "jane@example.com".into(),
            primary: true,
        },
        FakeIdentity {
            id: 2,
            kind: "email".into(),
            value: "jane.doe@work.example".into(),
            primary: false,
        },
        FakeIdentity {
            id: 3,
            kind: "phone_number".into(),
            value: "+15557654321".into(),
            primary: false,
        },
    ];
    let mut data = data_of(vec![u]);
    data.organizations.insert(57542, "Example Corp.".into());
    let fake = FakeZendesk::start(data).await.unwrap();
    let app = app_with(
        &fake,
        &[("ZENDESK_USER_FIELDS", "title=job_title,address=address,websites=site,twitter=tw")],
    );
    let (contacts, _) = sync(&app, None, Utc::now()).await;
    assert_eq!(
        contacts,
        vec![json!({
            "id": "35436",
            "name": "Jane Doe",
            "company": "Example Corp.",
            "title": "CTO",
            "emails": ["jane@example.com", "jane.doe@work.example"],
            "phones": ["+15551234567", "+15557654321"],
            "photo_url": "https://acme.zendesk.com/photos/jane.png",
            "address": "37, Famous St., New York, US",
            "websites": ["www.example.com"],
            "twitter": "jane_doe",
            "url": "https://acme.zendesk.com/agent/users/35436"
        })]
    );
    let export = &fake.requests_to("/api/v2/incremental")[0];
    assert_eq!(export.param("include"), Some("identities,organizations"));
}

#[tokio::test]
async fn only_live_end_users_are_synced_unless_staff_is_included() {
    let mut users = vec![
        user(1, T0 - 900),
        user(2, T0 - 800),
        user(3, T0 - 700),
        user(4, T0 - 600),
        user(5, T0 - 500),
        user(6, T0 - 400),
    ];
    users[1].role = "agent".into();
    users[2].role = "admin".into();
    users[3].active = false;
    users[4].suspended = true;
    let fake = FakeZendesk::start(data_of(users)).await.unwrap();
    let (contacts, _) = sync(&app(&fake), None, Utc::now()).await;
    assert_eq!(ids(&contacts), vec!["1", "6"]);
    let (contacts, _) = sync(&app_with(&fake, &[("ZENDESK_INCLUDE_STAFF", "true")]), None, Utc::now()).await;
    assert_eq!(ids(&contacts), vec!["1", "2", "3", "6"]);
}

#[tokio::test]
async fn same_second_users_split_across_pages_are_all_synced_once_in_order() {
    let mut users: Vec<FakeUser> = (1..=7).map(|i| user(100 + i * 3, T0 - 1000)).collect();
    users.push(user(5, T0 - 1001));
    users.push(user(2, T0 - 999));
    let fake = FakeZendesk::start(data_of(users)).await.unwrap();
    let app = app_with(&fake, &[("BRIDGE_PAGE_SIZE", "1")]);
    let (contacts, _) = sync(&app, None, Utc::now()).await;
    assert_eq!(ids(&contacts), vec!["5", "103", "106", "109", "112", "115", "118", "121", "2"]);
    // One user per upstream page: every page after the first went by Zendesk's cursor.
    let exports = fake.requests_to("/api/v2/incremental");
    assert!(exports.len() >= 9, "{}", exports.len());
    assert!(exports.iter().all(|r| r.param("per_page") == Some("1")));
}

#[tokio::test]
async fn the_first_export_call_uses_start_time_then_the_cursor_and_per_page_is_at_most_1000() {
    let users: Vec<FakeUser> = (1..=30).map(|i| user(i, T0 - 2000 + i as i64)).collect();
    let fake = FakeZendesk::start(data_of(users)).await.unwrap();
    let app = app_with(&fake, &[("BRIDGE_PAGE_SIZE", "5000")]);
    sync(&app, None, Utc::now()).await;
    let exports = fake.requests_to("/api/v2/incremental");
    assert_eq!(exports[0].param("start_time"), Some("0"));
    assert_eq!(exports[0].param("per_page"), Some("1000"));
    fake.clear_requests();
    let app = app_with(&fake, &[("BRIDGE_PAGE_SIZE", "7")]);
    let (contacts, _) = sync(&app, None, Utc::now()).await;
    assert_eq!(contacts.len(), 30);
    let exports = fake.requests_to("/api/v2/incremental");
    assert!(exports.len() >= 5);
    assert!(exports[0].param("cursor").is_none() && exports[0].param("start_time").is_some());
    for r in &exports[1..] {
        assert!(r.param("start_time").is_none(), "{r:?}");
        let cursor = r.param("cursor").expect("later pages pass the cursor");
        assert!(fake_zendesk::parse_export_cursor(cursor).is_some());
    }
}

#[tokio::test]
async fn the_export_is_followed_across_empty_pages_until_end_of_stream() {
    // Users 2..=9 are purged: they hold places in the export, so pages of two come back empty.
    let users: Vec<FakeUser> = (1..=12)
        .map(|i| {
            let mut u = user(i, T0 - 2000 + i as i64);
            u.purged = (2..=9).contains(&i);
            u
        })
        .collect();
    let fake = FakeZendesk::start(data_of(users)).await.unwrap();
    let app = app_with(&fake, &[("BRIDGE_PAGE_SIZE", "2")]);
    let (contacts, _) = sync(&app, None, Utc::now()).await;
    assert_eq!(ids(&contacts), vec!["1", "10", "11", "12"]);
    assert!(fake.requests_to("/api/v2/incremental").len() >= 6);
}

#[tokio::test]
async fn incremental_sync_starts_at_the_checkpoint_second_and_leaves_the_last_minutes_to_the_next_run() {
    let fake = FakeZendesk::start(data_of((1..=5).map(|i| user(i, T0 - 5000 + i as i64)).collect()))
        .await
        .unwrap();
    fake.set_now(T0);
    let app = app(&fake);
    let (contacts, checkpoint) = sync(&app, None, at(T0)).await;
    assert_eq!(contacts.len(), 5);

    let now = T0 + 300;
    fake.set_now(now);
    fake.with_data(|d| {
        d.update_user(2, T0 + 10, |u| u.name = "Changed".into());
        d.update_user(4, now - 30, |u| u.name = "Too recent".into());
        d.add_user(user(6, now - 75));
    });
    fake.clear_requests();
    let (contacts, checkpoint2) = sync(&app, Some(&checkpoint), at(now)).await;
    assert_eq!(ids(&contacts), vec!["2"], "{contacts:?}");
    let start: i64 = fake.requests_to("/api/v2/incremental")[0]
        .param("start_time")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(start, T0 - 90, "the run starts at the whole second of the previous run's bound");

    fake.set_now(now + 300);
    let (contacts, _) = sync(&app, Some(&checkpoint2), at(now + 300)).await;
    assert_eq!(ids(&contacts), vec!["6", "4"]);
    for r in fake.requests_to("/api/v2/incremental") {
        if let Some(s) = r.param("start_time") {
            assert!(s.parse::<i64>().unwrap() <= fake.now() - 60);
        }
    }
}

#[tokio::test]
async fn organization_names_are_fetched_in_batches_of_100_and_reused() {
    let mut data = data_of(
        (1..=150)
            .map(|i| {
                let mut u = user(i, T0 - 5000 + i as i64);
                u.organization_id = Some(500 + i);
                u
            })
            .collect(),
    );
    for i in 1..=150 {
        data.organizations.insert(500 + i, format!("Org {i}"));
    }
    let fake = FakeZendesk::start(data).await.unwrap();
    // The fallback for an export that does not sideload organizations (`include=organizations`).
    fake.set_sideload_organizations(false);
    let app = app(&fake);
    let (contacts, _) = sync(&app, None, Utc::now()).await;
    assert_eq!(contacts.len(), 150);
    assert!(contacts
        .iter()
        .all(|c| c["company"] == format!("Org {}", c["id"].as_str().unwrap())));
    let org_requests = fake.requests_to("/api/v2/organizations/show_many");
    assert_eq!(org_requests.len(), 2);
    assert!(org_requests.iter().all(|r| r.param("ids").unwrap().split(',').count() <= 100));
    fake.clear_requests();
    sync(&app, None, Utc::now()).await;
    assert!(
        fake.requests_to("/api/v2/organizations").is_empty(),
        "organizations were fetched again"
    );
}

// ---------------------------------------------------------------------------------------------------
// Upstream failures

#[tokio::test]
async fn upstream_failures_map_to_clear_statuses_without_echoing_the_upstream_body() {
    let fake = FakeZendesk::start(data_of(vec![user(1, T0 - 3600)])).await.unwrap();
    let app = app_with(&fake, &[("ZENDESK_TIMEOUT_MS", "300")]);
    let cases = [
        (Fault::status(500), 502, "upstream_error"),
        (Fault::status(502), 502, "upstream_error"),
        (Fault::status(400), 502, "upstream_rejected"),
        (Fault::html(500), 502, "upstream_error"),
        (Fault::html(200), 502, "upstream_error"),
        (Fault::malformed_json(), 502, "upstream_error"),
        (Fault::unauthorized(), 401, "upstream_unauthorized"),
        (Fault::forbidden(), 403, "upstream_forbidden"),
        (Fault::unavailable(None), 503, "upstream_unavailable"),
        (Fault::Delay(Duration::from_millis(900)), 504, "upstream_timeout"),
        (Fault::Redirect("http://127.0.0.1:9/steal".into()), 502, "upstream_error"),
    ];
    for (fault, status, code) in cases {
        fake.clear_requests();
        fake.clear_faults();
        // A transient failure is tried once more before the page gives up: the fault answers both tries.
        fake.fail_next(2, fault.clone());
        let r = contacts_page(&app, &auth_json(), None, None, Utc::now()).await;
        assert_eq!(r.status, status, "{fault:?}: {}", r.body);
        let v = json_of(&r);
        assert_eq!(v["error"]["code"], code, "{fault:?}");
        assert!(
            !r.body.contains("secret-upstream-detail") && !r.body.contains("Something went wrong") && !r.body.contains("authenticate"),
            "{}",
            r.body
        );
        let tries = if status >= 500 && code != "upstream_rejected" { 2 } else { 1 };
        assert_eq!(
            fake.requests().len(),
            tries,
            "{fault:?}: a redirect or error was followed, or a failure retried more than once"
        );
    }
}

#[tokio::test]
async fn a_429_is_waited_out_when_retry_after_fits_the_budget() {
    let fake = FakeZendesk::start(data_of(vec![user(1, T0 - 3600)])).await.unwrap();
    let app = app(&fake);
    fake.fail_next(1, Fault::rate_limited("0"));
    let past = http_date(-30);
    fake.fail_next(1, Fault::unavailable(Some(&past)));
    let r = contacts_page(&app, &auth_json(), None, None, Utc::now()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(ids(json_of(&r)["contacts"].as_array().unwrap()), vec!["1"]);
    assert_eq!(fake.requests_to("/api/v2/incremental").len(), 3);
}

#[tokio::test]
async fn a_429_that_outlasts_the_budget_is_an_empty_page_that_resumes_not_an_error() {
    let fake = FakeZendesk::start(data_of(vec![user(1, T0 - 3600)])).await.unwrap();
    let app = app(&fake);
    fake.fail_next(1, Fault::rate_limited("120"));
    let started = Instant::now();
    let r = contacts_page(&app, &auth_json(), None, None, Utc::now()).await;
    assert_eq!(r.status, 200, "a shorter page is possible, so no error: {}", r.body);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a 120 s hold is not waited out without a clock"
    );
    let page = json_of(&r);
    assert_eq!(page["contacts"], json!([]));
    let offset = page["next_offset"].as_str().expect("the page resumes where it stood").to_string();
    assert_eq!(fake.requests().len(), 1);
    // While Zendesk's hold lasts, the container sends nothing more: the next page is empty too.
    let r = contacts_page(&app, &auth_json(), None, Some(&offset), Utc::now()).await;
    assert_eq!(r.status, 200);
    assert_eq!(json_of(&r)["contacts"], json!([]));
    assert_eq!(fake.requests().len(), 1, "no request Zendesk said it would refuse");

    // Zendesk down with a long Retry-After is an error that says when to come back.
    let app = app_with(&fake, &[]);
    let later = http_date(600);
    fake.fail_next(1, Fault::unavailable(Some(&later)));
    let r = contacts_page(&app, &auth_json(), None, None, Utc::now()).await;
    assert_eq!(r.status, 503);
    let secs: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((590..=600).contains(&secs), "{secs}");
}

#[tokio::test]
async fn a_rate_limit_longer_than_the_page_budget_is_waited_while_the_budget_lasts_then_resumed() {
    let fake = FakeZendesk::start(data_of(vec![user(1, T0 - 3600)])).await.unwrap();
    let app = app(&fake);
    // 2 s left before the Lambda deadline and nothing kept in hand; Zendesk asks for 30 s.
    let budget = |secs| bridge::sync::Deadline::new(tokio::time::Instant::now(), Some(Duration::from_secs(secs)), Duration::ZERO);
    fake.fail_next(1, Fault::rate_limited("30"));
    let body = json!({"auth": auth_json(), "meta": {}});
    let started = Instant::now();
    let r = app.contacts(body.to_string().as_bytes(), &budget(2), Utc::now()).await;
    let waited = started.elapsed();
    assert_eq!(r.status, 200, "{}", r.body);
    let page = json_of(&r);
    assert_eq!(page["contacts"], json!([]));
    assert!(page["next_offset"].is_string());
    assert!(
        waited >= Duration::from_millis(1500),
        "the page waited while its budget lasted: {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "and answered before its deadline: {waited:?}");
    assert_eq!(fake.requests().len(), 1, "nothing was sent while Zendesk's hold lasted");

    // A short Retry-After that leaves time for the request (5 s budget) is waited out, and the page is full.
    let app = app_with(&fake, &[]);
    fake.fail_next(1, Fault::rate_limited("1"));
    let r = app.contacts(body.to_string().as_bytes(), &budget(5), Utc::now()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(ids(json_of(&r)["contacts"].as_array().unwrap()), vec!["1"]);
}

#[tokio::test]
async fn a_failure_mid_page_returns_what_was_gathered_and_the_offset_resumes_without_loss() {
    // Every other user is an agent: each 1000-user export page yields 500 contacts, so a Talkdesk page of
    // 2000 takes three export pages.
    let users: Vec<FakeUser> = (1..=6000)
        .map(|i| {
            let mut u = user(i, T0 - 9000 + i as i64);
            if i % 2 == 0 {
                u.role = "agent".into();
            }
            u
        })
        .collect();
    let odd = |from: u64, to: u64| (from..=to).filter(|i| i % 2 == 1).map(|i| i.to_string()).collect::<Vec<_>>();
    let fake = FakeZendesk::start(data_of(users)).await.unwrap();
    let app = app_with(&fake, &[("BRIDGE_PAGE_SIZE", "2000")]);
    let auth = auth_json();
    let r = contacts_page(&app, &auth, None, None, Utc::now()).await;
    assert_eq!(r.status, 200);
    let first = json_of(&r);
    assert_eq!(ids(first["contacts"].as_array().unwrap()), odd(1, 3000));
    assert_eq!(fake.requests_to("/api/v2/incremental").len(), 3);
    let offset = first["next_offset"].as_str().unwrap().to_string();
    // The next request's first export page is served, its second fails.
    fake.fail_next_on("/api/v2/incremental", 1, Fault::Delay(Duration::ZERO));
    fake.fail_next_on("/api/v2/incremental", 1, Fault::status(500));
    let r = contacts_page(&app, &auth, None, Some(&offset), Utc::now()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let second = json_of(&r);
    let got = ids(second["contacts"].as_array().unwrap());
    assert_eq!(got, odd(3001, 4000), "what was gathered before the failure");
    assert!(second["next_offset"].is_string(), "a page cut by a failure is not the last");
    let mut rest = got;
    let mut offset = second["next_offset"].as_str().map(String::from);
    while let Some(o) = offset {
        let r = contacts_page(&app, &auth, None, Some(&o), Utc::now()).await;
        assert_eq!(r.status, 200);
        let v = json_of(&r);
        rest.extend(ids(v["contacts"].as_array().unwrap()));
        offset = v["next_offset"].as_str().map(String::from);
    }
    assert_eq!(rest, odd(3001, 6000));
}

// ---------------------------------------------------------------------------------------------------
// Interactions

fn ticket_data() -> FakeData {
    let mut u1 = user(10, T0 - 9000);
    u1.email = Some("ann@example.com".into());
    u1.phone = Some("(415) 555-0134".into());
    u1.identities = vec![FakeIdentity {
        id: 1,
        kind: "email".into(),
        value: "ann.secondary@work.example".into(),
        primary: false,
    }];
    let mut u2 = user(11, T0 - 9000);
    u2.email = Some("joann@example.com".into());
    u2.phone = Some("+44 415 555 0134".into());
    let mut data = data_of(vec![u1, u2]);
    let long = format!("Line one.\n\n  Line two {}", "é".repeat(700));
    data.tickets = vec![
        ticket(1, 10, T0 - 500, "new", None),
        ticket(2, 10, T0 - 400, "open", Some("low")),
        ticket(3, 10, T0 - 300, "pending", Some("normal")),
        ticket(4, 10, T0 - 200, "hold", Some("high")),
        ticket(5, 10, T0 - 100, "solved", Some("urgent")),
        ticket(6, 10, T0 - 600, "closed", None),
        FakeTicket {
            custom_status_id: Some(9001),
            ..ticket(7, 10, T0 - 50, "hold", None)
        },
        FakeTicket {
            description: long,
            ..ticket(8, 10, T0 - 700, "open", None)
        },
        ticket(20, 11, T0 - 10, "open", None),
    ];
    data
}

#[tokio::test]
async fn tickets_by_external_id_map_status_priority_url_and_description() {
    let fake = FakeZendesk::start(ticket_data()).await.unwrap();
    let app = app(&fake);
    let r = interactions(&app, json!({"contact_external_id": "10"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = json_of(&r);
    let got: Vec<(String, String, String)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["id"].as_str().unwrap().to_string(),
                i["status"].as_str().unwrap().to_string(),
                i["priority"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expect = |id: &str, s: &str, p: &str| (id.to_string(), s.to_string(), p.to_string());
    assert_eq!(
        got,
        vec![
            expect("7", "pending", "none"),
            expect("5", "solved", "urgent"),
            expect("4", "pending", "high"),
            expect("3", "pending", "normal"),
            expect("2", "open", "low"),
            expect("1", "new", "none"),
            expect("6", "closed", "none"),
            expect("8", "open", "none"),
        ]
    );
    let first = &v[0];
    assert_eq!(first["url"], "https://acme.zendesk.com/agent/tickets/7");
    assert_eq!(first["type"], "ticket");
    assert_eq!(first["subject"], "Ticket 7");
    assert_eq!(first["date"], at(T0 - 50).to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let long = v[7]["description"].as_str().unwrap();
    assert!(long.starts_with("Line one. Line two é"), "{long}");
    assert_eq!(long.chars().count(), DESCRIPTION_MAX_CHARS);
    assert!(long.ends_with('…'));
    let req = &fake.requests_to("/api/v2/users/10/tickets/requested")[0];
    assert_eq!(req.param("sort"), Some("-updated_at"));
}

#[tokio::test]
async fn lookups_by_email_keep_only_exact_matches_including_secondary_identities() {
    let fake = FakeZendesk::start(ticket_data()).await.unwrap();
    let app = app(&fake);
    // The fake's search for "ann@example.com" also returns joann@example.com, as a substring search would.
    let r = interactions(&app, json!({"contact_emails": ["Ann@Example.com"]})).await;
    let v = json_of(&r);
    assert_eq!(v.as_array().unwrap().len(), 8, "{v}");
    assert!(
        v.as_array().unwrap().iter().all(|i| i["id"] != "20"),
        "another person's ticket leaked: {v}"
    );
    let r = interactions(&app, json!({"contact_emails": ["ann.secondary@work.example"]})).await;
    assert_eq!(json_of(&r).as_array().unwrap().len(), 8);
    assert!(!fake.requests_to("/api/v2/users/10/identities").is_empty());
    let r = interactions(&app, json!({"contact_emails": ["nobody@example.com"]})).await;
    assert_eq!(json_of(&r), json!([]));
}

#[tokio::test]
async fn lookups_by_phone_match_the_number_whatever_format_zendesk_stored() {
    let fake = FakeZendesk::start(ticket_data()).await.unwrap();
    let app = app(&fake);
    let r = interactions(&app, json!({"contact_phones": ["+1 415 555 0134"]})).await;
    let v = json_of(&r);
    let got: Vec<&str> = v.as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(got.len(), 8, "{v}");
    assert!(!got.contains(&"20"), "a +44 number with the same ending matched");
    let search = &fake.requests_to("/api/v2/users/search")[0];
    assert_eq!(search.param("query"), Some("phone:*4155550134"));
    let r = interactions(&app, json!({"contact_phones": ["+44 415 555 0134"]})).await;
    let v = json_of(&r);
    assert_eq!(
        v.as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect::<Vec<_>>(),
        vec!["20"]
    );
}

#[tokio::test]
async fn results_of_every_identifier_are_merged_deduplicated_newest_first_and_capped() {
    let fake = FakeZendesk::start(ticket_data()).await.unwrap();
    let app = app_with(&fake, &[("BRIDGE_MAX_INTERACTIONS", "3")]);
    let r = interactions(&app, json!({"contact_external_id": 10, "contact_emails": ["ann@example.com", "joann@example.com"], "contact_phones": ["(415) 555-0134"]})).await;
    let v = json_of(&r);
    let got: Vec<&str> = v.as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(got, vec!["20", "7", "5"]);
    // User 10 was found three ways but its tickets were read once.
    assert_eq!(fake.requests_to("/api/v2/users/10/tickets").len(), 1);
}

#[tokio::test]
async fn lookups_run_in_parallel_within_the_bound() {
    let mut data = FakeData::default();
    for i in 1..=8u64 {
        data.add_user(user(i, T0 - 9000));
        data.tickets.push(ticket(100 + i, i, T0 - i as i64, "open", None));
    }
    let fake = FakeZendesk::start(data).await.unwrap();
    let app = app(&fake);
    fake.fail_next_on("/api/v2/users/search", 8, Fault::Delay(Duration::from_millis(150)));
    let emails: Vec<String> = (1..=8).map(|i| format!("user{i}@example.com")).collect();
    let started = Instant::now();
    let r = interactions(&app, json!({"contact_emails": emails})).await;
    let took = started.elapsed();
    assert_eq!(json_of(&r).as_array().unwrap().len(), 8);
    let max = fake.max_in_flight();
    assert!((2..=bridge::lookup::MAX_IN_FLIGHT).contains(&max), "max in flight {max}");
    println!(
        "8 email lookups with 150 ms searches: {} ms, at most {max} requests in flight",
        took.as_millis()
    );
}

#[tokio::test]
async fn a_non_numeric_external_id_sends_no_request() {
    let fake = FakeZendesk::start(ticket_data()).await.unwrap();
    let app = app(&fake);
    for id in ["10/../../admin", "abc", "10?x=1"] {
        let r = interactions(&app, json!({"contact_external_id": id})).await;
        assert_eq!(r.status, 200);
        assert_eq!(json_of(&r), json!([]));
    }
    assert!(fake.requests().is_empty(), "{:?}", fake.requests());
    let r = interactions(&app, json!({"contact_external_id": "999"})).await;
    assert_eq!(json_of(&r), json!([]), "an unknown user has no tickets");
}

#[tokio::test]
async fn a_rate_limited_lookup_retries_once_briefly_then_answers_503() {
    let fake = FakeZendesk::start(ticket_data()).await.unwrap();
    let app = app(&fake);
    fake.fail_next(1, Fault::rate_limited("1"));
    let r = interactions(&app, json!({"contact_external_id": "10"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(json_of(&r).as_array().unwrap().len(), 8);

    fake.fail_next(2, Fault::rate_limited("0"));
    let r = interactions(&app, json!({"contact_external_id": "10"})).await;
    assert_eq!(r.status, 503, "a second 429 is not waited out");

    fake.fail_next(1, Fault::rate_limited("30"));
    let r = interactions(&app, json!({"contact_external_id": "10"})).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("30"));
    fake.fail_next(1, Fault::status(500));
    let r = interactions(&app, json!({"contact_external_id": "10"})).await;
    assert_eq!(r.status, 502);
}

// ---------------------------------------------------------------------------------------------------
// The conformance kit against the local bridge on the fake

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_kit_passes_against_the_local_bridge_on_zendesk() {
    let data = fake_zendesk::generate(Generate {
        users: 120,
        seed: 11,
        latest: Utc::now().timestamp() - 7_200,
    });
    let fake = FakeZendesk::start(data).await.unwrap();
    let app = Arc::new(app_with(&fake, &[("BRIDGE_PAGE_SIZE", "25")]));
    let bridge = bridge_tests::local::serve(app).await.unwrap();
    let mut cfg = bridge_tests::sim::SimConfig::new(bridge.url());
    cfg.auth = auth_json();
    cfg.samples = 8;
    let report = bridge_tests::sim::run(cfg).await;
    print!("{}", report.render());
    assert!(report.passed(), "{}", report.render());
}

// The randomized full + incremental sync against this fake (ties, changes between pages, every kind of
// injected upstream fault, Talkdesk retries and restarts) is tests/tests/faults.rs.
