//! The app with its secrets in SSM, against a real SSM API emulator (`moto_server`) and the fake Zendesk:
//! INIT, inbound authentication, the precedence of request fields over stored credentials, rotation, and
//! SSM going down. Time is a manual clock handed to the cache, so TTLs pass without sleeping.

use std::sync::Arc;
use std::time::Duration;

use bridge::secrets::ssm::SsmCache;
use bridge::sync::budget::Unlimited;
use bridge::sync::TokenSigner;
use bridge::App;
use bridge_tests::fake_zendesk::{b64_encode, FakeData, FakeTicket, FakeUser, FakeZendesk, API_TOKEN, EMAIL, SUBDOMAIN};
use bridge_tests::moto::{ManualClock, MotoServer};
use bridge_tests::{local, sim, ssm_app};
use chrono::Utc;
use serde_json::{json, Value};

const PREFIX: &str = "/talkdesk-bridge/test";
const TTL: Duration = Duration::from_secs(300);
const TOKEN_KEY: &str = "ssm-token-key-0123456789abcdef";
/// The two inbound tokens of a rotation.
const OLD: &str = "inbound-token-old-0123456789";
const NEW: &str = "inbound-token-new-0123456789";

fn full(name: &str) -> String {
    format!("{PREFIX}/{name}")
}

fn cache(server: &MotoServer, clock: &ManualClock) -> SsmCache {
    let clock = clock.clone();
    SsmCache::new(server.ssm_client(), PREFIX, TTL).with_clock(move || clock.now())
}

/// A single-tenant Zendesk deployment: token key, both rotation tokens and the Zendesk login in SSM.
async fn store_single_tenant(server: &MotoServer) {
    server.put_secure(&full("token-key"), TOKEN_KEY).await;
    server.put_secure(&full("inbound-tokens"), &format!("{OLD},{NEW}")).await;
    server.put_secure(&full("zendesk/subdomain"), SUBDOMAIN).await;
    server.put_secure(&full("zendesk/email"), EMAIL).await;
    server.put_secure(&full("zendesk/api_token"), API_TOKEN).await;
}

async fn fake() -> FakeZendesk {
    let an_hour_ago = Utc::now().timestamp() - 3600;
    let mut data = FakeData::default();
    for id in 1..=5 {
        let mut user = FakeUser::end_user(id, &format!("User {id}"), an_hour_ago + id as i64);
        user.email = Some(format!("user{id}@example.com"));
        data.add_user(user);
    }
    data.tickets.push(FakeTicket {
        id: 77,
        requester_id: 1,
        subject: Some("Printer on fire".into()),
        description: "It is on fire".into(),
        priority: Some("high".into()),
        status: "open".into(),
        custom_status_id: None,
        created_at: an_hour_ago,
        updated_at: an_hour_ago,
    });
    FakeZendesk::start(data).await.expect("fake Zendesk starts")
}

async fn zendesk_app(server: &MotoServer, fake: &FakeZendesk, clock: &ManualClock, extra: &[(&str, &str)]) -> Result<App, String> {
    let base = fake.base_url();
    let mut pairs = vec![
        ("BRIDGE_CONNECTOR", "zendesk"),
        ("ZENDESK_BASE_URL", base.as_str()),
        ("BRIDGE_SSM_PREFIX", PREFIX),
        ("AWS_LAMBDA_FUNCTION_NAME", "contacts"),
    ];
    pairs.extend_from_slice(extra);
    ssm_app(&pairs, cache(server, clock)).await.map_err(|e| e.to_string())
}

fn post(path: &str, body: &Value, bearer: Option<&str>) -> http::Request<Vec<u8>> {
    let mut builder = http::Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/json");
    if let Some(token) = bearer {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    builder.body(body.to_string().into_bytes()).expect("request builds")
}

async fn contacts(app: &App, body: Value, bearer: Option<&str>) -> (u16, Value) {
    let response = app.handle_contacts(&post("/contacts", &body, bearer), &Unlimited, Utc::now()).await;
    (response.status().as_u16(), json_of(response.body()))
}

async fn interactions(app: &App, body: Value, bearer: Option<&str>) -> (u16, Value) {
    let response = app.handle_interactions(&post("/interactions", &body, bearer)).await;
    (response.status().as_u16(), json_of(response.body()))
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// A contacts request whose `auth` holds only the bridge token (or nothing).
fn with_token(token: Option<&str>) -> Value {
    match token {
        Some(t) => json!({"auth": {"bridge_token": t}, "meta": {}}),
        None => json!({"auth": {}, "meta": {}}),
    }
}

fn lookup(token: &str) -> Value {
    json!({"auth": {"bridge_token": token}, "meta": {"interaction_types": ["ticket"]}, "data": {"contact_external_id": "1"}})
}

fn basic(email: &str, token: &str) -> String {
    format!("Basic {}", b64_encode(format!("{email}/token:{token}").as_bytes()))
}

// ---------------------------------------------------------------------------------------------------
// INIT

#[tokio::test]
async fn init_reads_every_secret_from_ssm_and_a_request_with_only_the_bridge_token_syncs() {
    let server = MotoServer::start();
    store_single_tenant(&server).await;
    let fake = fake().await;
    let app = zendesk_app(&server, &fake, &ManualClock::new(), &[]).await.expect("INIT succeeds");

    assert_eq!(app.secrets().last().stored_credentials(), ["subdomain", "email", "api_token"]);
    let (status, body) = contacts(&app, with_token(Some(NEW)), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["contacts"].as_array().map(Vec::len), Some(5), "{body}");
    // Zendesk was called with the stored login, and the checkpoint is signed with the stored key.
    let sent: Vec<Option<String>> = fake.requests().into_iter().map(|r| r.authorization).collect();
    assert!(
        !sent.is_empty() && sent.iter().all(|a| a.as_deref() == Some(basic(EMAIL, API_TOKEN).as_str())),
        "{sent:?}"
    );
    let checkpoint = body["synchronization_checkpoint"].as_str().expect("a checkpoint");
    TokenSigner::new(TOKEN_KEY.into())
        .decode_checkpoint(&format!("zendesk:{SUBDOMAIN}"), checkpoint)
        .expect("signed with the token key from SSM");

    let (status, body) = interactions(&app, lookup(OLD), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["id"], "77", "{body}");
}

#[tokio::test]
async fn init_fails_with_a_clear_error_when_ssm_is_down() {
    let mut server = MotoServer::start();
    store_single_tenant(&server).await;
    let fake = fake().await;
    let clock = ManualClock::new();
    let cache = cache(&server, &clock);
    server.stop();

    let base = fake.base_url();
    let pairs = [
        ("BRIDGE_CONNECTOR", "zendesk"),
        ("ZENDESK_BASE_URL", base.as_str()),
        ("BRIDGE_SSM_PREFIX", PREFIX),
    ];
    let err = ssm_app(&pairs, cache).await.err().expect("INIT fails").to_string();

    assert!(err.contains(PREFIX) && err.contains("SSM could not be reached"), "{err}");
    assert!(err.contains(&full("token-key")), "the message names what was read: {err}");
    for value in [TOKEN_KEY, OLD, NEW, API_TOKEN] {
        assert!(!err.contains(value), "{err}");
    }
}

#[tokio::test]
async fn init_fails_when_credentials_are_stored_without_inbound_tokens() {
    let server = MotoServer::start();
    store_single_tenant(&server).await;
    server.delete(&full("inbound-tokens")).await;
    let fake = fake().await;

    let err = zendesk_app(&server, &fake, &ManualClock::new(), &[])
        .await
        .err()
        .expect("INIT fails");

    assert!(err.contains(&format!("{}/inbound-tokens is required", PREFIX)), "{err}");
    assert!(err.contains("anyone with the URL"), "{err}");
}

#[tokio::test]
async fn init_fails_for_a_deployed_zendesk_function_with_no_token_key_in_ssm_or_the_environment() {
    let server = MotoServer::start();
    server.put_secure(&full("inbound-tokens"), NEW).await;
    let fake = fake().await;

    let err = zendesk_app(&server, &fake, &ManualClock::new(), &[])
        .await
        .err()
        .expect("INIT fails");
    assert!(err.contains(&full("token-key")) && err.contains("BRIDGE_TOKEN_KEY"), "{err}");

    // The environment's key serves when SSM holds none; the sandbox needs neither.
    let env_key = [("BRIDGE_TOKEN_KEY", "environment-token-key-0123456789")];
    zendesk_app(&server, &fake, &ManualClock::new(), &env_key)
        .await
        .expect("BRIDGE_TOKEN_KEY serves");
    let sandbox = [("BRIDGE_SSM_PREFIX", PREFIX), ("AWS_LAMBDA_FUNCTION_NAME", "contacts")];
    ssm_app(&sandbox, cache(&server, &ManualClock::new()))
        .await
        .expect("the sandbox starts");
}

// ---------------------------------------------------------------------------------------------------
// Inbound authentication

#[tokio::test]
async fn a_request_without_a_token_is_refused_with_401_before_its_fields_are_read() {
    let server = MotoServer::start();
    store_single_tenant(&server).await;
    let fake = fake().await;
    let app = zendesk_app(&server, &fake, &ManualClock::new(), &[]).await.unwrap();

    let (status, body) = contacts(&app, with_token(None), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthenticated")), "{body}");
    // A malformed request is refused as unauthenticated, not described field by field.
    let (status, body) = contacts(&app, json!({"auth": {"api_token": 5}, "meta": 3}), None).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = interactions(&app, json!({"auth": {}, "data": []}), None).await;
    assert_eq!(status, 401, "{body}");
    // Only JSON itself is read first.
    let response = app.handle_contacts(&http_raw(b"{not json"), &Unlimited, Utc::now()).await;
    assert_eq!(response.status(), 400);
    assert!(fake.requests().is_empty(), "nothing reached Zendesk");
}

fn http_raw(body: &[u8]) -> http::Request<Vec<u8>> {
    http::Request::builder()
        .method("POST")
        .uri("/contacts")
        .body(body.to_vec())
        .expect("request builds")
}

#[tokio::test]
async fn a_wrong_token_gets_exactly_the_same_401_as_no_token() {
    let server = MotoServer::start();
    store_single_tenant(&server).await;
    let fake = fake().await;
    let app = zendesk_app(&server, &fake, &ManualClock::new(), &[]).await.unwrap();

    let none = app
        .handle_contacts(&post("/contacts", &with_token(None), None), &Unlimited, Utc::now())
        .await;
    let near_miss = &NEW[..NEW.len() - 1];
    let wrong = [
        post("/contacts", &with_token(Some("inbound-token-bad-0123456789")), None),
        post("/contacts", &with_token(Some(near_miss)), None),
        post("/contacts", &with_token(Some(&format!("{OLD},{NEW}"))), None),
        post("/contacts", &with_token(None), Some("inbound-token-bad-0123456789")),
        http::Request::builder()
            .method("POST")
            .uri("/contacts")
            .header("authorization", basic(EMAIL, NEW))
            .body(with_token(None).to_string().into_bytes())
            .unwrap(),
    ];
    for request in wrong {
        let response = app.handle_contacts(&request, &Unlimited, Utc::now()).await;
        assert_eq!(response.status(), none.status());
        assert_eq!(response.body(), none.body());
        assert_eq!(response.headers(), none.headers());
    }
    assert!(!none.body().contains("inbound-token"), "{}", none.body());
    assert!(fake.requests().is_empty(), "nothing reached Zendesk");
}

#[tokio::test]
async fn each_of_the_two_rotation_tokens_is_accepted() {
    let server = MotoServer::start();
    store_single_tenant(&server).await;
    let fake = fake().await;
    let app = zendesk_app(&server, &fake, &ManualClock::new(), &[]).await.unwrap();

    for token in [OLD, NEW] {
        let (status, body) = contacts(&app, with_token(Some(token)), None).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = interactions(&app, lookup(token), None).await;
        assert_eq!(status, 200, "{body}");
    }
}

#[tokio::test]
async fn the_token_is_accepted_in_the_authorization_header_and_in_auth_bridge_token() {
    let server = MotoServer::start();
    store_single_tenant(&server).await;
    let fake = fake().await;
    let app = zendesk_app(&server, &fake, &ManualClock::new(), &[]).await.unwrap();

    let (status, body) = contacts(&app, with_token(None), Some(NEW)).await;
    assert_eq!(status, 200, "header: {body}");
    let (status, body) = contacts(&app, with_token(Some(NEW)), None).await;
    assert_eq!(status, 200, "auth.bridge_token: {body}");
    let (status, body) = interactions(&app, json!({"auth": {}, "data": {"contact_external_id": "1"}}), Some(OLD)).await;
    assert_eq!(status, 200, "header on /interactions: {body}");
    // Either place admits the caller: a proxy's own bearer header does not lock Talkdesk out.
    let (status, body) = contacts(&app, with_token(Some(NEW)), Some("a-proxy-token-0123456789")).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn the_conformance_kit_passes_over_http_with_a_bearer_token_from_ssm() {
    let server = MotoServer::start();
    server.put_secure(&full("inbound-tokens"), NEW).await;
    let app = ssm_app(&[("BRIDGE_SSM_PREFIX", PREFIX)], cache(&server, &ManualClock::new()))
        .await
        .expect("sandbox INIT");
    let bridge = local::serve(Arc::new(app)).await.unwrap();

    let mut cfg = sim::SimConfig::new(bridge.url());
    cfg.samples = 3;
    cfg.bearer = Some(NEW.into());
    let report = sim::run(cfg.clone()).await;
    assert!(report.passed(), "{}", report.render());

    cfg.bearer = None;
    cfg.auth = json!({"bridge_token": NEW});
    let report = sim::run(cfg).await;
    assert!(report.passed(), "{}", report.render());
}

// ---------------------------------------------------------------------------------------------------
// Precedence of the request's fields over stored credentials

#[tokio::test]
async fn a_field_in_the_request_wins_over_the_stored_one() {
    let server = MotoServer::start();
    store_single_tenant(&server).await;
    server.put_secure(&full("zendesk/api_token"), "stored-token-zendesk-refuses").await;
    let fake = fake().await;
    let app = zendesk_app(&server, &fake, &ManualClock::new(), &[]).await.unwrap();

    let own = json!({"auth": {"bridge_token": NEW, "api_token": API_TOKEN}, "meta": {}});
    let (status, body) = contacts(&app, own, None).await;
    assert_eq!(status, 200, "{body}");
    let sent = fake.requests().first().and_then(|r| r.authorization.clone());
    assert_eq!(sent, Some(basic(EMAIL, API_TOKEN)), "the request's api_token with the stored email");

    // Without its own api_token, the request uses the stored one, which Zendesk refuses.
    fake.clear_requests();
    let (status, body) = contacts(&app, with_token(Some(NEW)), None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("upstream_unauthorized")),
        "{body}"
    );
    let sent = fake.requests().first().and_then(|r| r.authorization.clone());
    assert_eq!(sent, Some(basic(EMAIL, "stored-token-zendesk-refuses")));
}

#[tokio::test]
async fn stored_credentials_are_never_sent_for_another_subdomain() {
    let server = MotoServer::start();
    store_single_tenant(&server).await;
    let fake = fake().await;
    let app = zendesk_app(&server, &fake, &ManualClock::new(), &[]).await.unwrap();

    let other = json!({"auth": {"bridge_token": NEW, "subdomain": "someone-else"}, "meta": {}});
    let (status, body) = contacts(&app, other, None).await;

    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_auth")), "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap_or_default().contains("auth.api_token"),
        "{body}"
    );
    assert!(fake.requests().is_empty(), "nothing was sent");
}

// ---------------------------------------------------------------------------------------------------
// TTL, rotation and SSM going down

#[tokio::test]
async fn a_rotated_inbound_token_is_live_once_the_ttl_has_passed() {
    let server = MotoServer::start();
    store_single_tenant(&server).await;
    server.put_secure(&full("inbound-tokens"), OLD).await;
    let fake = fake().await;
    let clock = ManualClock::new();
    let app = zendesk_app(&server, &fake, &clock, &[]).await.unwrap();

    server.put_secure(&full("inbound-tokens"), NEW).await;
    // Before the last fifth of the TTL (when a background read may start), nothing is read again.
    clock.advance(TTL / 2);
    assert_eq!(contacts(&app, with_token(Some(OLD)), None).await.0, 200);
    assert_eq!(contacts(&app, with_token(Some(NEW)), None).await.0, 401);

    clock.advance(TTL - TTL / 2);
    assert_eq!(contacts(&app, with_token(Some(NEW)), None).await.0, 200);
    assert_eq!(contacts(&app, with_token(Some(OLD)), None).await.0, 401);
}

#[tokio::test]
async fn with_no_stale_grace_and_ssm_down_the_secrets_serve_until_the_ttl_then_requests_get_503() {
    let mut server = MotoServer::start();
    store_single_tenant(&server).await;
    let fake = fake().await;
    let clock = ManualClock::new();
    // The outage grace (ssm_resilience.rs) turned off: the TTL alone bounds the values.
    let no_grace = [("BRIDGE_SSM_STALE_GRACE_SECS", "0")];
    let app = zendesk_app(&server, &fake, &clock, &no_grace).await.unwrap();

    server.stop();
    // token-key-previous and zendesk/access_token are not in SSM: asking for them per request would fail
    // here, so these requests also prove that missing names cost no call until the TTL.
    clock.advance(TTL - Duration::from_secs(1));
    for _ in 0..3 {
        let (status, body) = contacts(&app, with_token(Some(NEW)), None).await;
        assert_eq!(status, 200, "{body}");
    }

    clock.advance(Duration::from_secs(1));
    let response = app
        .handle_contacts(&post("/contacts", &with_token(Some(NEW)), None), &Unlimited, Utc::now())
        .await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers().get("retry-after").map(|v| v.as_bytes()), Some(&b"5"[..]));
    let body = json_of(response.body());
    assert_eq!(body["error"]["code"], "config_store_unavailable", "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("configuration store is unavailable"));
    let (status, _) = interactions(&app, lookup(NEW), None).await;
    assert_eq!(status, 503, "no expired secret is used, for any route");
}

#[tokio::test]
async fn inbound_tokens_deleted_after_init_close_the_door_instead_of_opening_it() {
    let server = MotoServer::start();
    store_single_tenant(&server).await;
    let fake = fake().await;
    let clock = ManualClock::new();
    let app = zendesk_app(&server, &fake, &clock, &[]).await.unwrap();

    server.delete(&full("inbound-tokens")).await;
    clock.advance(TTL);

    for token in [None, Some(NEW)] {
        let (status, body) = contacts(&app, with_token(token), None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (503, Some("config_store_unavailable")),
            "{body}"
        );
    }
    assert!(fake.requests().is_empty(), "the stored credentials were not used");
}

#[tokio::test]
async fn an_offset_signed_before_a_token_key_rotation_verifies_with_token_key_previous() {
    let server = MotoServer::start();
    store_single_tenant(&server).await;
    let fake = fake().await;
    let clock = ManualClock::new();
    let app = zendesk_app(&server, &fake, &clock, &[("BRIDGE_PAGE_SIZE", "2")]).await.unwrap();
    let (status, first) = contacts(&app, with_token(Some(NEW)), None).await;
    assert_eq!(status, 200, "{first}");
    let offset = first["next_offset"].as_str().expect("a second page").to_owned();
    let next_page = json!({"auth": {"bridge_token": NEW}, "meta": {"offset": offset}});

    server.put_secure(&full("token-key"), "rotated-token-key-abcdefghijklmn").await;
    server.put_secure(&full("token-key-previous"), TOKEN_KEY).await;
    clock.advance(TTL);
    let (status, second) = contacts(&app, next_page.clone(), None).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["contacts"][0]["id"], "3", "{second}");
    let new_offset = second["next_offset"].as_str().expect("a third page");
    assert!(
        TokenSigner::new(TOKEN_KEY.into())
            .decode_offset(&format!("zendesk:{SUBDOMAIN}"), new_offset)
            .is_err(),
        "new offsets are signed with the new key only"
    );

    server.delete(&full("token-key-previous")).await;
    clock.advance(TTL);
    let (status, body) = contacts(&app, next_page, None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_offset")), "{body}");
}

#[tokio::test]
async fn app_from_env_reads_its_secrets_through_the_standard_endpoint_variable() {
    let server = MotoServer::start();
    server.put_secure(&full("inbound-tokens"), NEW).await;
    // Only this test reads the process environment; the others pass their configuration explicitly.
    for (name, value) in [
        ("BRIDGE_CONNECTOR", "sandbox"),
        ("BRIDGE_SSM_PREFIX", PREFIX),
        ("BRIDGE_SSM_TTL_SECS", "60"),
        ("AWS_ENDPOINT_URL_SSM", server.endpoint_url().as_str()),
        ("AWS_REGION", bridge_tests::moto::REGION),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ] {
        std::env::set_var(name, value);
    }

    let app = App::from_env().await.expect("INIT reads SSM");

    assert_eq!(
        app.secrets().ssm().map(|c| (c.prefix(), c.ttl())),
        Some((PREFIX, Duration::from_secs(60)))
    );
    let sandbox = |token: Option<&str>| json!({"auth": {"bridge_token": token}, "meta": {}});
    assert_eq!(contacts(&app, sandbox(None), None).await.0, 401);
    assert_eq!(contacts(&app, sandbox(Some(NEW)), None).await.0, 200);
}
