//! The deployment's secrets when things move: a token-key rotation across containers that hold different
//! snapshots of SSM, SSM going down after INIT, renewal in the background, and a deployment that refuses
//! to run open. SSM is a real emulator (`moto_server`); time is a manual clock per container, handed to
//! its cache, so TTLs and the outage grace pass without sleeping.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bridge::secrets::ssm::SsmCache;
use bridge::sync::budget::Unlimited;
use bridge::sync::TokenSigner;
use bridge::App;
use bridge_tests::moto::{ManualClock, MotoServer};
use bridge_tests::ssm_gate::{GateMode, SsmGate};
use bridge_tests::{config, ssm_app};
use chrono::Utc;
use serde_json::{json, Value};

const PREFIX: &str = "/talkdesk-bridge/resilience";
const TTL: Duration = Duration::from_secs(300);
/// `BRIDGE_SSM_STALE_GRACE_SECS`' default.
const GRACE: Duration = Duration::from_secs(3600);
const INBOUND: &str = "inbound-token-resilience-0123";
const OTHER_INBOUND: &str = "inbound-token-rotated-45678";
/// The token key before and after the rotation.
const OLD_KEY: &str = "token-key-before-rotation-0123";
const NEW_KEY: &str = "token-key-after-rotation-4567";
/// The sandbox's account, which tokens are bound to.
const ACCOUNT: &str = "sandbox";

fn full(name: &str) -> String {
    format!("{PREFIX}/{name}")
}

fn cache(server: &MotoServer, clock: &ManualClock) -> SsmCache {
    let clock = clock.clone();
    SsmCache::new(server.ssm_client(), PREFIX, TTL).with_clock(move || clock.now())
}

/// A deployed sandbox function (`BRIDGE_SSM_PREFIX` set, on Lambda) reading its secrets from SSM.
async fn deployed(server: &MotoServer, clock: &ManualClock, extra: &[(&str, &str)]) -> Result<App, String> {
    let mut pairs = vec![
        ("BRIDGE_SSM_PREFIX", PREFIX),
        ("AWS_LAMBDA_FUNCTION_NAME", "contacts"),
        ("BRIDGE_PAGE_SIZE", "100"),
    ];
    pairs.extend_from_slice(extra);
    ssm_app(&pairs, cache(server, clock)).await.map_err(|e| e.to_string())
}

async fn store(server: &MotoServer, token_key: &str) {
    server.put_secure(&full("token-key"), token_key).await;
    server.put_secure(&full("inbound-tokens"), INBOUND).await;
}

fn post(path: &str, body: &Value) -> http::Request<Vec<u8>> {
    http::Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/json")
        .body(body.to_string().into_bytes())
        .expect("request builds")
}

async fn contacts(app: &App, body: &Value) -> (u16, Value) {
    let response = app.handle_contacts(&post("/contacts", body), &Unlimited, Utc::now()).await;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let mut json: Value = serde_json::from_str(response.body()).unwrap_or_else(|e| panic!("not JSON ({e})"));
    if let (Some(r), Some(obj)) = (retry_after, json.as_object_mut()) {
        obj.insert("retry_after".into(), json!(r));
    }
    (status, json)
}

async fn interactions(app: &App, token: &str) -> u16 {
    let body = json!({"auth": {"bridge_token": token}, "data": {"contact_external_id": "100043"}});
    app.handle_interactions(&post("/interactions", &body)).await.status().as_u16()
}

fn first_page(token: &str) -> Value {
    json!({"auth": {"bridge_token": token}, "meta": {}})
}

fn page_after(token: &str, offset: &str) -> Value {
    json!({"auth": {"bridge_token": token}, "meta": {"offset": offset}})
}

// ---------------------------------------------------------------------------------------------------
// Item: the token key rotates in three phases, across containers on their own TTL clocks

/// One step of the README's procedure (written to SSM), or a container renewing its secrets: its TTL
/// passes on its own clock and its next request reads SSM.
enum Step {
    Put(&'static str, &'static str),
    Delete(&'static str),
    Renew(usize),
}

#[tokio::test]
async fn two_containers_alternating_the_pages_of_a_sync_through_a_whole_token_key_rotation_never_answer_400() {
    let server = MotoServer::start();
    store(&server, OLD_KEY).await;
    let clocks = [ManualClock::new(), ManualClock::new()];
    let apps = [
        deployed(&server, &clocks[0], &[]).await.expect("container A starts"),
        deployed(&server, &clocks[1], &[]).await.expect("container B starts"),
    ];
    // Before page `n`, these steps. Container A serves the even pages, B the odd ones, so every page's
    // offset was signed by the other container, which renewed its secrets at another moment.
    let (a, b) = (0, 1);
    let script: Vec<(usize, Vec<Step>)> = vec![
        // 1. token-key-next; each container learns it on its own TTL.
        (2, vec![Step::Put("token-key-next", NEW_KEY), Step::Renew(a)]),
        (4, vec![Step::Renew(b)]),
        // 2. the old key to token-key-previous, the new one to token-key, token-key-next deleted. A signs
        //    with the new key while B still signs with the old one and knows the new one only as "next".
        (
            6,
            vec![
                Step::Put("token-key-previous", OLD_KEY),
                Step::Put("token-key", NEW_KEY),
                Step::Delete("token-key-next"),
                Step::Renew(a),
            ],
        ),
        (9, vec![Step::Renew(b)]),
        // 3. token-key-previous deleted once every container signs with the new key.
        (12, vec![Step::Delete("token-key-previous"), Step::Renew(a)]),
        (15, vec![Step::Renew(b)]),
    ];

    let mut seen = HashSet::new();
    let mut offset: Option<String> = None;
    let mut checkpoint = None;
    let mut statuses = Vec::new();
    for page in 0..100 {
        for (_, steps) in script.iter().filter(|(at, _)| *at == page) {
            for step in steps {
                match step {
                    Step::Put(name, value) => server.put_secure(&full(name), value).await,
                    Step::Delete(name) => server.delete(&full(name)).await,
                    Step::Renew(container) => {
                        clocks[*container].advance(TTL);
                        apps[*container].secrets().current().await.expect("SSM is up");
                    }
                }
            }
        }
        let app = &apps[page % 2];
        let body = match &offset {
            None => first_page(INBOUND),
            Some(o) => page_after(INBOUND, o),
        };
        let (status, body) = contacts(app, &body).await;
        statuses.push(status);
        assert_eq!(status, 200, "page {page} on container {}: {body}", ["A", "B"][page % 2]);
        for contact in body["contacts"].as_array().expect("contacts") {
            assert!(seen.insert(contact["id"].as_str().expect("an id").to_owned()), "{contact} twice");
        }
        checkpoint = body["synchronization_checkpoint"].as_str().map(str::to_owned);
        match body["next_offset"].as_str() {
            Some(next) => offset = Some(next.to_owned()),
            None => break,
        }
    }

    assert!(statuses.len() > 16, "the sync outlived the rotation: {} pages", statuses.len());
    assert_eq!(seen.len(), 2500, "every contact of the sandbox once");
    // Both containers ended on the new key alone; the last checkpoint is signed with it.
    for app in &apps {
        assert_eq!(app.secrets().last().signer().verifying_keys(), 1);
    }
    let checkpoint = checkpoint.expect("a checkpoint");
    TokenSigner::new(NEW_KEY.into())
        .decode_checkpoint(ACCOUNT, &checkpoint)
        .expect("signed with the new key");
}

#[tokio::test]
async fn a_container_that_learned_token_key_next_accepts_an_offset_signed_with_it_before_it_signs_with_it() {
    let server = MotoServer::start();
    store(&server, OLD_KEY).await;
    server.put_secure(&full("token-key-next"), NEW_KEY).await;
    let clock = ManualClock::new();
    let app = deployed(&server, &clock, &[]).await.unwrap();

    // An offset a container already on the new key signed.
    let (_, first) = contacts(&app, &first_page(INBOUND)).await;
    let offset = first["next_offset"].as_str().expect("a second page");
    let state = TokenSigner::new(OLD_KEY.into())
        .decode_offset(ACCOUNT, offset)
        .expect("signed with token-key");
    let from_switched = TokenSigner::new(NEW_KEY.into()).encode_offset(ACCOUNT, &state);
    let (status, body) = contacts(&app, &page_after(INBOUND, &from_switched)).await;
    assert_eq!(status, 200, "{body}");
    // What this container signs is still signed with token-key.
    let next = body["next_offset"].as_str().expect("a third page");
    TokenSigner::new(OLD_KEY.into())
        .decode_offset(ACCOUNT, next)
        .expect("token-key-next never signs");

    // A key that is neither is still refused.
    let foreign = TokenSigner::new("some-other-token-key-0123456".into()).encode_offset(ACCOUNT, &state);
    let (status, body) = contacts(&app, &page_after(INBOUND, &foreign)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_offset")), "{body}");
}

// ---------------------------------------------------------------------------------------------------
// Item: SSM outages after INIT are ridden out for a bounded grace

/// Log lines written while the guard lives (this thread only: the tests run on a current-thread runtime).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn with_ssm_down_after_init_requests_are_served_through_the_grace_then_get_503() {
    let logs = Captured::default();
    let _guard = logs.install();
    let mut server = MotoServer::start();
    store(&server, OLD_KEY).await;
    let clock = ManualClock::new();
    let app = deployed(&server, &clock, &[]).await.expect("INIT reads SSM");
    assert_eq!(app.secrets().stale_grace(), GRACE, "the default grace");

    server.stop();
    clock.advance(TTL);
    for _ in 0..3 {
        let (status, body) = contacts(&app, &first_page(INBOUND)).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(interactions(&app, INBOUND).await, 200);
    // The last values still authenticate: they are served, not bypassed.
    assert_eq!(contacts(&app, &first_page(OTHER_INBOUND)).await.0, 401);
    // Each such request is counted for the StaleSecrets metric, and logged.
    let (secrets, counts) = bridge::metrics::track(app.secrets().current()).await;
    assert!(secrets.is_ok());
    assert_eq!(counts.stale_secrets, 1);
    let text = logs.text();
    assert!(text.contains("secrets served past their TTL: SSM is unavailable"), "{text}");
    assert!(text.contains("secrets could not be renewed: SSM is unavailable"), "{text}");

    clock.advance(GRACE - Duration::from_secs(1));
    assert_eq!(contacts(&app, &first_page(INBOUND)).await.0, 200, "the grace's last second");

    clock.advance(Duration::from_secs(1));
    let (status, body) = contacts(&app, &first_page(INBOUND)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("config_store_unavailable")),
        "{body}"
    );
    assert_eq!(body["retry_after"], "5", "{body}");
    assert_eq!(interactions(&app, INBOUND).await, 503, "no route uses secrets past the grace");
    for value in [OLD_KEY, INBOUND] {
        assert!(!logs.text().contains(value), "a secret in the logs");
    }
}

#[tokio::test]
async fn with_no_grace_configured_ssm_down_past_the_ttl_is_a_503_at_once() {
    let mut server = MotoServer::start();
    store(&server, OLD_KEY).await;
    let clock = ManualClock::new();
    let app = deployed(&server, &clock, &[("BRIDGE_SSM_STALE_GRACE_SECS", "0")]).await.unwrap();

    server.stop();
    clock.advance(TTL - Duration::from_secs(1));
    assert_eq!(contacts(&app, &first_page(INBOUND)).await.0, 200);
    clock.advance(Duration::from_secs(1));
    assert_eq!(contacts(&app, &first_page(INBOUND)).await.0, 503);
}

/// A deployed sandbox function whose SSM calls go through a gate in front of the emulator.
async fn gated(server: &MotoServer, clock: &ManualClock) -> (App, SsmGate) {
    let gate = SsmGate::start(&server.endpoint_url()).await;
    let clock_for_cache = clock.clone();
    let cache = SsmCache::new(gate.ssm_client(), PREFIX, TTL).with_clock(move || clock_for_cache.now());
    let pairs = [("BRIDGE_SSM_PREFIX", PREFIX), ("AWS_LAMBDA_FUNCTION_NAME", "contacts")];
    let app = ssm_app(&pairs, cache).await.expect("INIT through the open gate");
    (app, gate)
}

#[tokio::test]
async fn throttling_and_server_errors_are_outages_the_grace_rides_out_and_ssm_back_ends_them() {
    let server = MotoServer::start();
    for mode in [GateMode::Throttling, GateMode::Unavailable] {
        store(&server, OLD_KEY).await;
        let clock = ManualClock::new();
        let (app, gate) = gated(&server, &clock).await;
        server.put_secure(&full("inbound-tokens"), OTHER_INBOUND).await;

        gate.set(mode);
        clock.advance(TTL);
        // The first request past the TTL reads SSM itself, fails, and is served the last values.
        let (secrets, counts) = bridge::metrics::track(app.secrets().current()).await;
        assert!(secrets.is_ok(), "{mode:?} is an outage");
        assert_eq!(counts.stale_secrets, 1, "{mode:?}");
        // The next ones too, each starting a background retry that fails the same way.
        for _ in 0..2 {
            assert_eq!(contacts(&app, &first_page(INBOUND)).await.0, 200, "{mode:?}: the last values serve");
            app.secrets().settled().await;
        }

        // SSM answers again: the next request still serves the last values and retries in the background;
        // once that read lands, the values in SSM are in force and nothing is stale any more.
        gate.set(GateMode::Open);
        assert_eq!(contacts(&app, &first_page(INBOUND)).await.0, 200, "{mode:?}");
        app.secrets().settled().await;
        assert_eq!(contacts(&app, &first_page(OTHER_INBOUND)).await.0, 200, "{mode:?}");
        assert_eq!(contacts(&app, &first_page(INBOUND)).await.0, 401, "{mode:?}");
        let (secrets, counts) = bridge::metrics::track(app.secrets().current()).await;
        assert!(secrets.is_ok() && counts.stale_secrets == 0, "{mode:?}: fresh again");
    }
}

#[tokio::test]
async fn access_denied_is_not_an_outage_and_closes_the_door_at_once() {
    let server = MotoServer::start();
    store(&server, OLD_KEY).await;
    let clock = ManualClock::new();
    let (app, gate) = gated(&server, &clock).await;

    gate.set(GateMode::AccessDenied);
    clock.advance(TTL);
    let (status, body) = contacts(&app, &first_page(INBOUND)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("config_store_unavailable")),
        "{body}"
    );
    // Never cached: once SSM lets the function read again, the next request reads and is served.
    gate.set(GateMode::Open);
    assert_eq!(contacts(&app, &first_page(INBOUND)).await.0, 200);
}

#[tokio::test]
async fn concurrent_requests_after_the_ttl_share_one_read_of_ssm() {
    let server = MotoServer::start();
    store(&server, OLD_KEY).await;
    let clock = ManualClock::new();
    let (app, gate) = gated(&server, &clock).await;
    server.put_secure(&full("inbound-tokens"), OTHER_INBOUND).await;
    let before = gate.calls();

    clock.advance(TTL);
    let body = first_page(OTHER_INBOUND);
    let requests = (0..8).map(|_| contacts(&app, &body));
    let statuses: Vec<u16> = futures::future::join_all(requests).await.into_iter().map(|(s, _)| s).collect();

    assert_eq!(statuses, vec![200; 8], "every request has the renewed values");
    assert_eq!(gate.calls() - before, 1, "one GetParameters call for all of them");
}

#[tokio::test]
async fn an_invalid_value_closes_the_door_at_once_even_within_the_ttl_and_an_outage_after_it_keeps_it_closed() {
    let mut server = MotoServer::start();
    store(&server, OLD_KEY).await;
    let clock = ManualClock::new();
    let app = deployed(&server, &clock, &[]).await.unwrap();

    server.put_secure(&full("token-key"), "too-short").await;
    // The last fifth of the TTL: the request is served with the values in force and starts a read.
    clock.advance(TTL - TTL / 5);
    assert_eq!(contacts(&app, &first_page(INBOUND)).await.0, 200);
    app.secrets().settled().await;
    // That read found the invalid key: closed before the TTL ends, grace or not.
    let (status, body) = contacts(&app, &first_page(INBOUND)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("config_store_unavailable")),
        "{body}"
    );
    // SSM going down now does not reopen it with the old values.
    server.stop();
    assert_eq!(contacts(&app, &first_page(INBOUND)).await.0, 503);
    clock.advance(TTL);
    assert_eq!(contacts(&app, &first_page(INBOUND)).await.0, 503);
}

#[tokio::test]
async fn a_deleted_inbound_tokens_parameter_closes_a_deployment_at_once_within_the_grace() {
    let server = MotoServer::start();
    store(&server, OLD_KEY).await;
    let clock = ManualClock::new();
    let app = deployed(&server, &clock, &[]).await.unwrap();

    server.delete(&full("inbound-tokens")).await;
    clock.advance(TTL);

    for token in [INBOUND, OTHER_INBOUND] {
        let (status, body) = contacts(&app, &first_page(token)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (503, Some("config_store_unavailable")),
            "{body}"
        );
    }
    assert_eq!(contacts(&app, &json!({"auth": {}, "meta": {}})).await.0, 503, "never open");
}

#[tokio::test]
async fn in_the_last_fifth_of_the_ttl_secrets_are_renewed_in_the_background_while_requests_use_the_values_in_force() {
    let server = MotoServer::start();
    store(&server, OLD_KEY).await;
    let clock = ManualClock::new();
    let app = deployed(&server, &clock, &[]).await.unwrap();
    server.put_secure(&full("inbound-tokens"), OTHER_INBOUND).await;

    // Before the last fifth, no read at all.
    clock.advance(TTL - TTL / 5 - Duration::from_secs(1));
    assert_eq!(contacts(&app, &first_page(INBOUND)).await.0, 200);
    app.secrets().settled().await;
    assert_eq!(contacts(&app, &first_page(OTHER_INBOUND)).await.0, 401);

    // In it, the request goes on with the token in force, and the read it started lands before the TTL.
    clock.advance(Duration::from_secs(1));
    assert_eq!(contacts(&app, &first_page(INBOUND)).await.0, 200);
    app.secrets().settled().await;
    assert_eq!(contacts(&app, &first_page(OTHER_INBOUND)).await.0, 200);
    assert_eq!(contacts(&app, &first_page(INBOUND)).await.0, 401);
}

// ---------------------------------------------------------------------------------------------------
// Item: closed by default

#[tokio::test]
async fn a_deployment_without_inbound_tokens_refuses_to_start_and_the_error_names_the_fix() {
    let server = MotoServer::start();
    server.put_secure(&full("token-key"), OLD_KEY).await;
    let clock = ManualClock::new();

    // Credentials come with each request (nothing stored), the function is on Lambda or reads SSM.
    let zendesk = [("BRIDGE_CONNECTOR", "zendesk"), ("ZENDESK_BASE_URL", "http://127.0.0.1:9")];
    for extra in [&zendesk[..], &[]] {
        let err = deployed(&server, &clock, extra).await.err().expect("INIT refuses");
        assert!(err.contains(&format!("{PREFIX}/inbound-tokens is required")), "{err}");
        assert!(
            err.contains("BRIDGE_ALLOW_UNAUTHENTICATED=true") && err.contains("AllowUnauthenticated"),
            "{err}"
        );
        assert!(!err.contains(OLD_KEY), "{err}");
    }

    // Storing the tokens, or saying that another layer authenticates callers, lets it start.
    let allow = [("BRIDGE_ALLOW_UNAUTHENTICATED", "true")];
    let open = deployed(&server, &clock, &allow).await.expect("starts when told it may");
    assert_eq!(contacts(&open, &json!({"auth": {}, "meta": {}})).await.0, 200);
    server.put_secure(&full("inbound-tokens"), INBOUND).await;
    let closed = deployed(&server, &clock, &zendesk).await.expect("starts with tokens");
    assert_eq!(contacts(&closed, &json!({"auth": {"subdomain": "acme"}, "meta": {}})).await.0, 401);
}

#[test]
fn a_real_connector_on_lambda_without_ssm_needs_inbound_tokens_or_the_explicit_opt_out() {
    let base = [
        ("BRIDGE_CONNECTOR", "zendesk"),
        ("BRIDGE_TOKEN_KEY", OLD_KEY),
        ("AWS_LAMBDA_FUNCTION_NAME", "contacts"),
    ];
    let build = |extra: &[(&str, &str)]| {
        let mut pairs = base.to_vec();
        pairs.extend_from_slice(extra);
        let config = config(&pairs);
        let connector = bridge::connectors::build(&config).expect("the connector builds");
        App::new(config, connector).map(|_| ()).map_err(|e| e.to_string())
    };
    let err = build(&[]).expect_err("refused");
    assert!(err.starts_with("BRIDGE_INBOUND_TOKENS is required"), "{err}");
    assert!(err.contains("BRIDGE_ALLOW_UNAUTHENTICATED=true"), "{err}");
    build(&[("BRIDGE_INBOUND_TOKENS", INBOUND)]).expect("with tokens");
    build(&[("BRIDGE_ALLOW_UNAUTHENTICATED", "true")]).expect("with the opt-out");
    assert!(build(&[("BRIDGE_ALLOW_UNAUTHENTICATED", "false")]).is_err(), "false is the default");
}

#[tokio::test]
async fn make_run_and_sam_local_on_the_sandbox_stay_open() {
    // `make run`: cargo lambda watch sets AWS_LAMBDA_FUNCTION_NAME (and the runtime API) like Lambda.
    // `sam local invoke --env-vars env.json`: the same, with env.json's variables.
    let env_json: Value = serde_json::from_str(
        &std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../env.json")).expect("env.json"),
    )
    .expect("env.json is JSON");
    let mut sam_local: Vec<(String, String)> = env_json["Parameters"]
        .as_object()
        .expect("env.json has Parameters")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect();
    sam_local.push(("AWS_LAMBDA_FUNCTION_NAME".into(), "ContactsFunction".into()));
    let make_run = vec![
        ("AWS_LAMBDA_FUNCTION_NAME".to_owned(), "contacts".to_owned()),
        ("AWS_LAMBDA_RUNTIME_API".to_owned(), "127.0.0.1:9000".to_owned()),
    ];
    for pairs in [make_run, sam_local] {
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let config = config(&pairs);
        assert!(!config.is_deployment(), "{pairs:?}");
        let connector = bridge::connectors::build(&config).expect("the sandbox builds");
        let app = App::new(config, connector).expect("starts without any token");
        assert_eq!(contacts(&app, &json!({"auth": {}})).await.0, 200, "{pairs:?}");
    }
}

#[test]
fn the_template_wires_allow_unauthenticated_default_false_and_the_stale_grace() {
    let template =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml")).expect("template.yaml");
    // The lines of a parameter's block: its name at two spaces, then everything indented deeper.
    let parameter = |name: &str| {
        let header = format!("  {name}:");
        let mut lines = template.lines().skip_while(|l| *l != header);
        assert!(lines.next().is_some(), "template.yaml has no parameter {name}");
        lines.take_while(|l| l.starts_with("    ")).collect::<Vec<_>>().join("\n")
    };
    let allow = parameter("AllowUnauthenticated");
    assert!(allow.contains(r#"AllowedValues: ["true", "false"]"#), "{allow}");
    assert!(allow.contains(r#"Default: "false""#), "{allow}");
    assert!(parameter("SsmStaleGraceSecs").contains("Default: 3600"));
    for wiring in [
        "BRIDGE_ALLOW_UNAUTHENTICATED: !Ref AllowUnauthenticated",
        "BRIDGE_SSM_STALE_GRACE_SECS: !Ref SsmStaleGraceSecs",
    ] {
        assert!(template.contains(wiring), "template.yaml lacks `{wiring}`");
    }
}
