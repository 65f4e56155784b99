//! No secret reaches a log line, a response (status line, headers, body), an error message or a panic
//! message, whatever the request does.
//!
//! The functions' own log subscriber (`bridge::secrets::logging`, JSON lines) is installed for the whole
//! test binary at TRACE, for every target (the AWS SDK, hyper, reqwest, the Lambda runtime included), and
//! writes into a shared buffer; a panic hook records every panic message. The handlers then run on the
//! sandbox and on Zendesk (the fake), through success and every failure path: bad JSON, bad `auth`, missing
//! and wrong bridge tokens, Zendesk's 401/403/429/500/503, timeouts, redirects and broken bodies, secrets
//! from SSM (moto_server) through INIT, rotation and SSM going down, a PostgreSQL deployment (password from
//! SSM, restart, refused password), and one request through the real Lambda runtime. Each test ends by searching everything captured so far for every secret of [`SECRETS`].

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use bridge::error::ApiResponse;
use bridge::secrets::ssm::SsmCache;
use bridge::sync::budget::Unlimited;
use bridge::App;
use bridge_tests::fake_zendesk::{self, b64_encode, Accept, FakeData, FakeTicket, FakeUser, FakeZendesk, Fault, EMAIL, SUBDOMAIN};
use bridge_tests::moto::{ManualClock, MotoServer};
use bridge_tests::runtime_emulator::{http_response, RuntimeEmulator};
use chrono::Utc;
use serde_json::{json, Value};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;

// ---------------------------------------------------------------------------------------------------
// The secrets used by every test below. Plain ASCII, so no JSON escaping can hide one in a log line.

const ENV_TOKEN_KEY: &str = "leak-env-token-key-7c1e9a2b4d";
const ENV_INBOUND_A: &str = "leak-env-inbound-token-a-5f3c";
const ENV_INBOUND_B: &str = "leak-env-inbound-token-b-8d2e";
const WRONG_TOKEN: &str = "leak-wrong-presented-token-41aa";
const PASSWORD: &str = "leak-password-field-value-9q";
const BAD_API_TOKEN_TAIL: &str = "leak-malformed-api-token-6h";
const WRONG_API_TOKEN: &str = "leak-wrong-zendesk-token-2r";
const SSM_TOKEN_KEY: &str = "leak-ssm-token-key-3b7f0c9e1a";
const SSM_TOKEN_KEY_NEXT: &str = "leak-ssm-token-key-next-6e4d";
const SSM_INBOUND_OLD: &str = "leak-ssm-inbound-old-0b5a";
const SSM_INBOUND_NEW: &str = "leak-ssm-inbound-new-9c8d";
const SSM_API_TOKEN: &str = "leak-ssm-zendesk-api-token-71";
const SSM_ACCESS_TOKEN: &str = "leak-ssm-zendesk-oauth-token-3k";
const PG_PASSWORD: &str = "leak-postgres-password-4n8w";
const PG_WRONG_PASSWORD: &str = "leak-postgres-wrong-password-2x";
const PREFIX: &str = "/talkdesk-bridge/leak";
const TTL: Duration = Duration::from_secs(300);

/// Every secret, by a name to report it by, with the encoded forms a leak could take.
fn secrets() -> Vec<(String, String)> {
    let plain = [
        ("BRIDGE_TOKEN_KEY", ENV_TOKEN_KEY),
        ("BRIDGE_INBOUND_TOKENS a", ENV_INBOUND_A),
        ("BRIDGE_INBOUND_TOKENS b", ENV_INBOUND_B),
        ("a wrong presented token", WRONG_TOKEN),
        ("auth.password", PASSWORD),
        ("a malformed api_token", BAD_API_TOKEN_TAIL),
        ("a wrong api_token", WRONG_API_TOKEN),
        ("the fake's api_token", fake_zendesk::API_TOKEN),
        ("the fake's access_token", fake_zendesk::ACCESS_TOKEN),
        ("SSM token-key", SSM_TOKEN_KEY),
        ("SSM token-key after rotation", SSM_TOKEN_KEY_NEXT),
        ("SSM inbound token old", SSM_INBOUND_OLD),
        ("SSM inbound token new", SSM_INBOUND_NEW),
        ("SSM zendesk/api_token", SSM_API_TOKEN),
        ("SSM zendesk/access_token", SSM_ACCESS_TOKEN),
        ("SSM postgres/password", PG_PASSWORD),
        ("a wrong database password", PG_WRONG_PASSWORD),
    ];
    let mut all: Vec<(String, String)> = plain.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    for (name, value) in plain {
        all.push((format!("{name} in base64"), b64_encode(value.as_bytes())));
    }
    for (name, token) in [
        ("the fake's api_token", fake_zendesk::API_TOKEN),
        ("SSM zendesk/api_token", SSM_API_TOKEN),
        ("a wrong api_token", WRONG_API_TOKEN),
    ] {
        all.push((
            format!("{name} as a Basic header"),
            b64_encode(format!("{EMAIL}/token:{token}").as_bytes()),
        ));
    }
    all
}

// ---------------------------------------------------------------------------------------------------
// Capture: one global subscriber at TRACE and one panic hook for the whole test binary.

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'w> MakeWriter<'w> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'w self) -> Buffer {
        self.clone()
    }
}

struct Capture {
    logs: Buffer,
    panics: Arc<Mutex<Vec<String>>>,
}

fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let logs = Buffer::default();
        let subscriber = bridge::secrets::logging::subscriber(LevelFilter::TRACE, "trace", true, logs.clone());
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber of this binary");
        let panics = Arc::new(Mutex::new(Vec::new()));
        let recorded = panics.clone();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            recorded.lock().unwrap_or_else(PoisonError::into_inner).push(info.to_string());
            previous(info);
        }));
        Capture { logs, panics }
    })
}

impl Capture {
    fn logs(&self) -> String {
        String::from_utf8_lossy(&self.logs.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }

    fn panics(&self) -> String {
        self.panics.lock().unwrap_or_else(PoisonError::into_inner).join("\n")
    }
}

/// Everything a test showed to a client or an operator besides the logs: responses and error messages.
#[derive(Default)]
struct Seen(Vec<String>);

impl Seen {
    fn http(&mut self, r: &http::Response<String>) -> u16 {
        self.0.push(format!("{} {:?} {}", r.status(), r.headers(), r.body()));
        r.status().as_u16()
    }

    fn api(&mut self, r: &ApiResponse) -> u16 {
        self.0.push(format!("{} {:?} {}", r.status, r.headers, r.body));
        r.status
    }

    fn text(&mut self, text: impl Into<String>) {
        self.0.push(text.into());
    }

    /// Fails if any secret is in the logs captured so far (every test's), in what this test saw, or in a
    /// panic message. Reports each secret by name with the line it is on, every secret on it masked (so the
    /// report itself, a panic message, leaks nothing).
    fn assert_no_secret_leaked(&self) {
        let capture = capture();
        let logs = capture.logs();
        let seen = self.0.join("\n");
        let panics = capture.panics();
        let secrets = secrets();
        let mask = |line: &str| {
            let masked = secrets
                .iter()
                .fold(line.to_owned(), |l, (name, value)| l.replace(value, &format!("<{name}>")));
            masked.chars().take(400).collect::<String>()
        };
        let mut leaks = Vec::new();
        for (name, value) in &secrets {
            for (place, text) in [("a log line", &logs), ("a response or error", &seen), ("a panic message", &panics)] {
                if let Some(line) = text.lines().find(|l| l.contains(value.as_str())) {
                    leaks.push(format!("{name} leaked in {place}: {}", mask(line)));
                }
            }
        }
        assert!(leaks.is_empty(), "{}", leaks.join("\n"));
    }
}

// ---------------------------------------------------------------------------------------------------
// Helpers

fn post(path: &str, body: &Value, bearer: Option<&str>) -> http::Request<Vec<u8>> {
    raw(path, body.to_string().into_bytes(), bearer)
}

fn raw(path: &str, body: Vec<u8>, bearer: Option<&str>) -> http::Request<Vec<u8>> {
    let mut builder = http::Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/json");
    if let Some(token) = bearer {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    builder.body(body).expect("request builds")
}

async fn contacts(app: &App, seen: &mut Seen, body: &Value, bearer: Option<&str>) -> (u16, Value) {
    let response = app.handle_contacts(&post("/contacts", body, bearer), &Unlimited, Utc::now()).await;
    (seen.http(&response), serde_json::from_str(response.body()).unwrap_or(Value::Null))
}

async fn interactions(app: &App, seen: &mut Seen, body: &Value, bearer: Option<&str>) -> u16 {
    let response = app.handle_interactions(&post("/interactions", body, bearer)).await;
    seen.http(&response)
}

fn zendesk_data() -> FakeData {
    let an_hour_ago = Utc::now().timestamp() - 3600;
    let mut data = FakeData::default();
    for id in 1..=6 {
        let mut user = FakeUser::end_user(id, &format!("User {id}"), an_hour_ago + id as i64);
        user.email = Some(format!("user{id}@example.com"));
        user.phone = Some(format!("+1415555010{id}"));
        data.add_user(user);
    }
    data.tickets.push(FakeTicket {
        id: 500,
        requester_id: 1,
        subject: Some("Refund".into()),
        description: "Please refund".into(),
        priority: None,
        status: "open".into(),
        custom_status_id: None,
        created_at: an_hour_ago,
        updated_at: an_hour_ago,
    });
    data
}

fn zendesk_config(fake: &FakeZendesk, extra: &[(&str, &str)]) -> bridge::Config {
    let base = fake.base_url();
    let mut pairs = vec![
        ("BRIDGE_CONNECTOR", "zendesk"),
        ("ZENDESK_BASE_URL", base.as_str()),
        ("ZENDESK_TIMEOUT_MS", "300"),
        ("BRIDGE_PAGE_SIZE", "2"),
    ];
    pairs.extend_from_slice(extra);
    bridge_tests::config(&pairs)
}

/// Follows `next_offset` to the end; returns the statuses seen.
async fn whole_sync(app: &App, seen: &mut Seen, auth: Value, bearer: Option<&str>) -> Vec<u16> {
    let mut statuses = Vec::new();
    let mut offset: Option<String> = None;
    for _ in 0..50 {
        let body = json!({"auth": auth, "meta": {"offset": offset}});
        let (status, page) = contacts(app, seen, &body, bearer).await;
        statuses.push(status);
        match page["next_offset"].as_str() {
            Some(next) if status == 200 => offset = Some(next.to_owned()),
            _ => break,
        }
    }
    statuses
}

// ---------------------------------------------------------------------------------------------------
// The suite

#[tokio::test]
async fn sandbox_requests_leak_no_secret_on_success_or_refusal() {
    capture();
    let mut seen = Seen::default();
    let (app, _store) = bridge_tests::sandbox_app(&[
        ("BRIDGE_TOKEN_KEY", ENV_TOKEN_KEY),
        ("BRIDGE_INBOUND_TOKENS", &format!("{ENV_INBOUND_A},{ENV_INBOUND_B}")),
        ("BRIDGE_PAGE_SIZE", "1000"),
    ]);
    let auth = json!({"bridge_token": ENV_INBOUND_A, "password": PASSWORD});

    let statuses = whole_sync(&app, &mut seen, auth.clone(), None).await;
    assert!(statuses.len() > 1 && statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let statuses = whole_sync(&app, &mut seen, json!({"password": PASSWORD}), Some(ENV_INBOUND_B)).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let lookup = json!({"auth": auth, "data": {"contact_emails": ["nobody@example.com"], "contact_external_id": "1"}});
    assert_eq!(interactions(&app, &mut seen, &lookup, None).await, 200);

    // Refusals: no token, wrong tokens, and malformed bodies that carry secrets.
    let refused = [
        (json!({"auth": {"password": PASSWORD}}), None, 401),
        (json!({"auth": {"bridge_token": WRONG_TOKEN, "password": PASSWORD}}), None, 401),
        (json!({"auth": {"password": PASSWORD}}), Some(WRONG_TOKEN), 401),
        (
            json!({"auth": {"bridge_token": ENV_INBOUND_A, "password": {"nested": PASSWORD}}}),
            None,
            400,
        ),
        (
            json!({"auth": {"bridge_token": ENV_INBOUND_A, "k": [PASSWORD]}, "meta": 3}),
            None,
            400,
        ),
        (
            json!({"auth": {"bridge_token": ENV_INBOUND_A}, "meta": {"offset": PASSWORD}}),
            None,
            400,
        ),
        (
            json!({"auth": {"bridge_token": ENV_INBOUND_A}, "meta": {"synchronization_checkpoint": PASSWORD}}),
            None,
            400,
        ),
    ];
    for (body, bearer, status) in refused {
        assert_eq!(contacts(&app, &mut seen, &body, bearer).await.0, status, "{body}");
    }
    let truncated = format!("{{\"auth\": {{\"bridge_token\": \"{ENV_INBOUND_A}\", \"password\": \"{PASSWORD}");
    for (body, status) in [
        (truncated.into_bytes(), 400),
        (vec![b' '; bridge::talkdesk::MAX_BODY_BYTES + 1], 413),
    ] {
        let r = app.handle_contacts(&raw("/contacts", body, None), &Unlimited, Utc::now()).await;
        assert_eq!(seen.http(&r), status);
    }
    let mut big = json!({"auth": {"password": PASSWORD}}).to_string().into_bytes();
    big.extend(vec![b' '; bridge::talkdesk::MAX_BODY_BYTES]);
    assert_eq!(seen.api(&app.interactions(&big).await), 413);
    let get = http::Request::builder().method("GET").uri("/contacts").body(Vec::new()).unwrap();
    assert_eq!(seen.http(&app.handle_contacts(&get, &Unlimited, Utc::now()).await), 405);
    seen.text(format!("{:?}", app.config));
    seen.text(format!("{:?}", app.secrets()));

    seen.assert_no_secret_leaked();
}

#[tokio::test]
async fn zendesk_requests_leak_no_secret_on_success_or_any_upstream_failure() {
    capture();
    let mut seen = Seen::default();
    let fake = FakeZendesk::start(zendesk_data()).await.unwrap();
    let config = zendesk_config(
        &fake,
        &[("BRIDGE_TOKEN_KEY", ENV_TOKEN_KEY), ("BRIDGE_INBOUND_TOKENS", ENV_INBOUND_A)],
    );
    let connector = bridge::connectors::build(&config).unwrap();
    let app = App::new(config, connector).unwrap();
    let mut api_auth = fake_zendesk::auth_json();
    api_auth["password"] = json!(PASSWORD);
    let oauth = json!({"subdomain": SUBDOMAIN, "access_token": fake_zendesk::ACCESS_TOKEN});

    for (auth, bearer) in [(api_auth.clone(), Some(ENV_INBOUND_A)), (oauth.clone(), Some(ENV_INBOUND_A))] {
        let statuses = whole_sync(&app, &mut seen, auth.clone(), bearer).await;
        assert!(statuses.len() > 1 && statuses.iter().all(|s| *s == 200), "{statuses:?}");
        for data in [
            json!({"contact_external_id": "1"}),
            json!({"contact_emails": ["user1@example.com"]}),
            json!({"contact_phones": ["+14155550101"]}),
        ] {
            let body = json!({"auth": auth, "data": data});
            assert_eq!(interactions(&app, &mut seen, &body, bearer).await, 200);
        }
    }

    // Every upstream failure, on both routes.
    let faults = [
        (Fault::unauthorized(), 401),
        (Fault::forbidden(), 403),
        (Fault::status(500), 502),
        (Fault::unavailable(None), 503),
        (Fault::html(500), 502),
        (Fault::malformed_json(), 502),
        (Fault::Delay(Duration::from_millis(900)), 504),
        (Fault::Redirect("http://127.0.0.1:9/steal".into()), 502),
        // Last: the account's contacts are held back for the 120 s that Zendesk asked for.
        (Fault::rate_limited("120"), 503),
    ];
    let body = json!({"auth": api_auth, "meta": {}});
    let lookup = json!({"auth": api_auth, "data": {"contact_external_id": "1"}});
    for (fault, status) in faults {
        // A contacts page tries a transient failure once more, and answers a rate limit with an empty page
        // that resumes (not an error) while a shorter page is possible.
        fake.fail_next(2, fault.clone());
        let contacts_status = if status == 503 && matches!(&fault, Fault::Respond { status: 429, .. }) {
            200
        } else {
            status
        };
        assert_eq!(
            contacts(&app, &mut seen, &body, Some(ENV_INBOUND_A)).await.0,
            contacts_status,
            "{fault:?}"
        );
        fake.clear_faults();
        fake.fail_next(1, fault.clone());
        assert_eq!(
            interactions(&app, &mut seen, &lookup, Some(ENV_INBOUND_A)).await,
            status,
            "{fault:?}"
        );
    }

    // Credentials Zendesk refuses, malformed ones, a hostile subdomain, and bad or missing bridge tokens.
    let cases = [
        (
            json!({"subdomain": SUBDOMAIN, "email": EMAIL, "api_token": WRONG_API_TOKEN}),
            Some(ENV_INBOUND_A),
            401,
        ),
        (
            json!({"subdomain": SUBDOMAIN, "access_token": WRONG_API_TOKEN}),
            Some(ENV_INBOUND_A),
            401,
        ),
        (
            json!({"subdomain": SUBDOMAIN, "email": EMAIL, "api_token": format!("has space {BAD_API_TOKEN_TAIL}")}),
            Some(ENV_INBOUND_A),
            400,
        ),
        (
            json!({"subdomain": SUBDOMAIN, "access_token": format!("{BAD_API_TOKEN_TAIL}\r\nX-Injected: 1")}),
            Some(ENV_INBOUND_A),
            400,
        ),
        (
            json!({"subdomain": format!("{PASSWORD}.evil.com"), "api_token": WRONG_API_TOKEN}),
            Some(ENV_INBOUND_A),
            400,
        ),
        (
            json!({"subdomain": SUBDOMAIN, "email": PASSWORD, "api_token": WRONG_API_TOKEN}),
            Some(ENV_INBOUND_A),
            400,
        ),
        (fake_zendesk::auth_json(), Some(WRONG_TOKEN), 401),
        (fake_zendesk::auth_json(), None, 401),
    ];
    // The 429 above holds the account's contact syncs for 120 s; these cases need Zendesk to answer.
    app.pacer().clear();
    for (auth, bearer, status) in cases {
        let body = json!({"auth": auth, "meta": {}});
        assert_eq!(contacts(&app, &mut seen, &body, bearer).await.0, status, "{auth}");
    }

    seen.assert_no_secret_leaked();
}

#[tokio::test]
async fn secrets_from_ssm_leak_nowhere_from_init_through_rotation_to_an_outage() {
    capture();
    let mut seen = Seen::default();
    let mut server = MotoServer::start();
    let name = |n: &str| format!("{PREFIX}/{n}");
    server.put_secure(&name("token-key"), SSM_TOKEN_KEY).await;
    server.put_secure(&name("zendesk/subdomain"), SUBDOMAIN).await;
    server.put_secure(&name("zendesk/email"), EMAIL).await;
    server.put_secure(&name("zendesk/api_token"), SSM_API_TOKEN).await;
    let fake = FakeZendesk::start(zendesk_data()).await.unwrap();
    fake.set_accept(Accept::Any);
    let clock = ManualClock::new();
    let cache = || {
        let clock = clock.clone();
        SsmCache::new(server.ssm_client(), PREFIX, TTL).with_clock(move || clock.now())
    };
    let config = || zendesk_config(&fake, &[("BRIDGE_SSM_PREFIX", PREFIX), ("AWS_LAMBDA_FUNCTION_NAME", "contacts")]);
    let connector = bridge::connectors::build(&config()).unwrap();

    // INIT refused: credentials stored without inbound tokens.
    let err = App::with_ssm(config(), connector.clone(), cache()).await.err().expect("refused");
    seen.text(format!("{err} {err:?}"));

    server
        .put_secure(&name("inbound-tokens"), &format!("{SSM_INBOUND_OLD}\n{SSM_INBOUND_NEW}"))
        .await;
    let app = App::with_ssm(config(), connector.clone(), cache()).await.expect("INIT");
    seen.text(format!("{:?} {:?}", app.secrets(), app.config));

    let statuses = whole_sync(&app, &mut seen, json!({"bridge_token": SSM_INBOUND_OLD}), None).await;
    assert!(statuses.len() > 1 && statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let lookup = json!({"auth": {"password": PASSWORD}, "data": {"contact_emails": ["user2@example.com"]}});
    assert_eq!(interactions(&app, &mut seen, &lookup, Some(SSM_INBOUND_NEW)).await, 200);
    let own = json!({"auth": {"bridge_token": SSM_INBOUND_NEW, "access_token": SSM_ACCESS_TOKEN}, "meta": {}});
    assert_eq!(contacts(&app, &mut seen, &own, None).await.0, 200);
    let other = json!({"auth": {"bridge_token": SSM_INBOUND_NEW, "subdomain": "other"}, "meta": {}});
    assert_eq!(contacts(&app, &mut seen, &other, None).await.0, 400);
    assert_eq!(contacts(&app, &mut seen, &json!({"auth": {}}), Some(WRONG_TOKEN)).await.0, 401);
    fake.fail_next(1, Fault::unauthorized());
    assert_eq!(contacts(&app, &mut seen, &json!({"auth": {}}), Some(SSM_INBOUND_OLD)).await.0, 401);

    // Rotation of the token key and of the inbound tokens, read after the TTL.
    let (_, first) = contacts(&app, &mut seen, &json!({"auth": {}}), Some(SSM_INBOUND_OLD)).await;
    server.put_secure(&name("token-key"), SSM_TOKEN_KEY_NEXT).await;
    server.put_secure(&name("token-key-previous"), SSM_TOKEN_KEY).await;
    server.put_secure(&name("inbound-tokens"), SSM_INBOUND_NEW).await;
    clock.advance(TTL);
    let resume = json!({"auth": {}, "meta": {"offset": first["next_offset"]}});
    assert_eq!(contacts(&app, &mut seen, &resume, Some(SSM_INBOUND_NEW)).await.0, 200);
    assert_eq!(contacts(&app, &mut seen, &resume, Some(SSM_INBOUND_OLD)).await.0, 401);

    // A value made invalid: 503. SSM down: the grace, then 503, and INIT refused.
    server.put_secure(&name("token-key"), "short").await;
    clock.advance(TTL);
    assert_eq!(contacts(&app, &mut seen, &resume, Some(SSM_INBOUND_NEW)).await.0, 503);
    server.put_secure(&name("token-key"), SSM_TOKEN_KEY_NEXT).await;
    clock.advance(TTL);
    assert_eq!(contacts(&app, &mut seen, &resume, Some(SSM_INBOUND_NEW)).await.0, 200);
    let down = cache();
    server.stop();
    clock.advance(TTL);
    assert_eq!(
        contacts(&app, &mut seen, &resume, Some(SSM_INBOUND_NEW)).await.0,
        200,
        "the last values serve through the outage grace"
    );
    clock.advance(app.secrets().stale_grace());
    assert_eq!(contacts(&app, &mut seen, &resume, Some(SSM_INBOUND_NEW)).await.0, 503);
    let err = App::with_ssm(config(), connector, down).await.err().expect("SSM is down");
    seen.text(format!("{err} {err:?}"));
    let logs = capture().logs();
    assert!(
        logs.contains("transmitting request")
            && logs.contains("secrets could not be renewed")
            && logs.contains("secrets served past their TTL"),
        "the SDK's TRACE lines and the bridge's own are captured"
    );

    seen.assert_no_secret_leaked();
}

#[tokio::test]
async fn the_lambda_runtime_at_trace_never_logs_the_raw_event() {
    capture();
    let mut seen = Seen::default();
    let emulator = RuntimeEmulator::start("contacts").await.unwrap();
    // The runtime reads its configuration from the environment; no other test of this binary does.
    for (name, value) in [
        ("AWS_LAMBDA_RUNTIME_API", emulator.runtime_api().as_str()),
        ("AWS_LAMBDA_FUNCTION_NAME", "contacts"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
    ] {
        std::env::set_var(name, value);
    }
    let (app, _store) = bridge_tests::sandbox_app(&[("BRIDGE_INBOUND_TOKENS", ENV_INBOUND_B)]);
    let app = Arc::new(app);
    let runtime = lambda_http::run(lambda_http::service_fn(move |req| {
        let app = app.clone();
        async move { contacts::handle(&app, req).await }
    }));
    let invocations = async {
        emulator
            .wait_ready(Duration::from_secs(10))
            .await
            .expect("the runtime polls for events");
        invoke_twice(&emulator, &mut seen).await;
    };
    tokio::select! {
        stopped = runtime => panic!("the runtime stopped: {stopped:?}"),
        () = invocations => {}
    }
    // The runtime logged at TRACE (so the capture sees it), just not the event.
    assert!(
        capture().logs().contains("New event arrived"),
        "the runtime's TRACE lines are captured"
    );

    seen.assert_no_secret_leaked();
}

async fn invoke_twice(emulator: &RuntimeEmulator, seen: &mut Seen) {
    for (bearer, status) in [(ENV_INBOUND_B, 200), (WRONG_TOKEN, 401)] {
        let body = json!({"auth": {"password": PASSWORD, "bridge_token": bearer}, "meta": {}}).to_string();
        let event = json!({
            "version": "2.0", "routeKey": "POST /contacts", "rawPath": "/contacts", "rawQueryString": "",
            "headers": {"content-type": "application/json", "authorization": format!("Bearer {bearer}")},
            "requestContext": {"http": {"method": "POST", "path": "/contacts", "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1", "userAgent": "leak-test"}, "requestId": "leak", "routeKey": "POST /contacts",
                "stage": "$default", "timeEpoch": 1_740_131_322_000i64, "accountId": "123456789012", "apiId": "leak"},
            "body": body, "isBase64Encoded": false
        });
        let outcome = emulator.invoke(event.to_string()).await.expect("an answer");
        let (got, body) = http_response(&outcome).expect("an HTTP response");
        seen.text(body);
        assert_eq!(got, status);
    }
}

#[test]
fn the_capture_sees_every_level_and_every_target() {
    capture();
    tracing::trace!(target: "leak_test::probe", probe = "capture-probe-7f", "probe line");
    let logs = capture().logs();
    assert!(
        logs.lines().any(|l| l.contains("capture-probe-7f") && l.contains("\"TRACE\"")),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_deployment_leaks_its_database_password_nowhere() {
    use bridge_tests::postgres::{contract_data, load, PgServer};

    capture();
    let mut seen = Seen::default();
    let pg = PgServer::start().await;
    load(&pg, &contract_data(12, 3, 1, Utc::now() - chrono::Duration::hours(1))).await;
    pg.admin()
        .await
        .batch_execute(&format!("ALTER ROLE \"{}\" PASSWORD '{PG_PASSWORD}'", pg.app_user))
        .await
        .unwrap();
    let server = MotoServer::start();
    let name = |n: &str| format!("{PREFIX}/{n}");
    server.put_secure(&name("token-key"), SSM_TOKEN_KEY).await;
    server.put_secure(&name("inbound-tokens"), SSM_INBOUND_NEW).await;
    server.put_secure(&name("postgres/password"), PG_PASSWORD).await;
    let clock = ManualClock::new();
    let cache = SsmCache::new(server.ssm_client(), PREFIX, TTL).with_clock(move || clock.now());
    let port = pg.port.to_string();
    let app = bridge_tests::ssm_app(
        &[
            ("BRIDGE_CONNECTOR", "postgres"),
            ("BRIDGE_SSM_PREFIX", PREFIX),
            ("POSTGRES_HOST", pg.host.as_str()),
            ("POSTGRES_PORT", port.as_str()),
            ("POSTGRES_USER", pg.app_user.as_str()),
            ("POSTGRES_DBNAME", pg.database.as_str()),
            ("POSTGRES_SSLMODE", "disable"),
            ("AWS_LAMBDA_FUNCTION_NAME", "contacts"),
        ],
        cache,
    )
    .await
    .expect("INIT");
    app.prepare().await.expect("the catalog check signs in");
    seen.text(format!("{:?} {:?}", app.secrets(), app.config));
    let auth = json!({"bridge_token": SSM_INBOUND_NEW, "password": PASSWORD});
    let statuses = whole_sync(&app, &mut seen, auth.clone(), None).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    pg.restart().await;
    let lookup = json!({"auth": auth, "data": {"contact_external_id": "x", "contact_emails": ["a@b.co"]}});
    assert_eq!(interactions(&app, &mut seen, &lookup, None).await, 200);

    // The password in a URL (local runs), refused: a 502 that names the user, never the password.
    let wrong = bridge_tests::config(&[
        ("BRIDGE_CONNECTOR", "postgres"),
        ("BRIDGE_TOKEN_KEY", ENV_TOKEN_KEY),
        ("POSTGRES_URL", &pg.url_with_password(PG_WRONG_PASSWORD)),
        ("POSTGRES_SSLMODE", "disable"),
    ]);
    seen.text(format!("{wrong:?}"));
    let connector = bridge::connectors::build(&wrong).unwrap();
    let refused = App::new(wrong, connector).unwrap();
    refused.prepare().await.expect("refused credentials do not fail INIT");
    assert_eq!(contacts(&refused, &mut seen, &json!({"auth": {}}), None).await.0, 502);
    assert_eq!(interactions(&refused, &mut seen, &lookup, None).await, 502);

    seen.assert_no_secret_leaked();
}
