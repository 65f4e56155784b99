//! The SSM parameter cache against a real SSM API emulator (`moto_server`), one server per test.
//!
//! Time is a manual clock handed to the cache, so TTL expiry is tested without sleeping.

use std::time::Duration;

use bridge::secrets::ssm::aws_sdk_ssm;
use bridge::secrets::ssm::{FailureKind, SsmCache, SsmError};
use bridge_tests::moto::{ManualClock, MotoServer};

use aws_sdk_ssm::types::ParameterType;

const PREFIX: &str = "/talkdesk-bridge/test";
const TTL: Duration = Duration::from_secs(300);

fn cache(server: &MotoServer, ttl: Duration, clock: &ManualClock) -> SsmCache {
    let clock = clock.clone();
    SsmCache::new(server.ssm_client(), PREFIX, ttl).with_clock(move || clock.now())
}

async fn put(client: &aws_sdk_ssm::Client, name: &str, value: &str, kind: ParameterType) {
    client
        .put_parameter()
        .name(format!("{PREFIX}/{name}"))
        .value(value)
        .r#type(kind)
        .overwrite(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutParameter {name}: {e:?}"));
}

async fn put_string(client: &aws_sdk_ssm::Client, name: &str, value: &str) {
    put(client, name, value, ParameterType::String).await;
}

fn exposed(value: Option<bridge::secrets::Secret>) -> Option<String> {
    value.map(|s| s.expose().to_owned())
}

#[tokio::test]
async fn prefetch_of_23_parameters_keeps_every_batch_of_ten() {
    let mut server = MotoServer::start();
    let client = server.ssm_client();
    let names: Vec<String> = (0..23).map(|i| format!("batch/p{i:02}")).collect();
    for (i, name) in names.iter().enumerate() {
        put_string(&client, name, &format!("value-{i:02}")).await;
    }
    let clock = ManualClock::new();
    let cache = cache(&server, TTL, &clock);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();

    let parameters = cache.get_many(&refs).await.expect("get_many");
    assert_eq!(parameters.len(), 23);
    assert!(parameters.missing().is_empty(), "{:?}", parameters.missing());
    cache.prefetch(&refs).await.expect("prefetch");

    // With SSM gone, every one of the 23 must come from the cache: the first, middle and last batch.
    server.stop();
    for (i, name) in names.iter().enumerate() {
        let value = cache.get(name).await.expect("served from cache");
        assert_eq!(exposed(value), Some(format!("value-{i:02}")), "{name}");
    }
}

#[tokio::test]
async fn a_secure_string_is_returned_decrypted() {
    let server = MotoServer::start();
    let client = server.ssm_client();
    put(&client, "zendesk/api_token", "zd-token-plaintext", ParameterType::SecureString).await;
    let cache = cache(&server, TTL, &ManualClock::new());

    let value = cache.get("zendesk/api_token").await.expect("get");

    assert_eq!(exposed(value), Some("zd-token-plaintext".to_owned()));
}

#[tokio::test]
async fn a_changed_value_is_seen_only_after_the_ttl_expires() {
    let server = MotoServer::start();
    let client = server.ssm_client();
    put_string(&client, "token-key", "key-v1").await;
    let clock = ManualClock::new();
    let cache = cache(&server, Duration::from_secs(60), &clock);
    cache.prefetch(&["token-key"]).await.expect("prefetch");

    put_string(&client, "token-key", "key-v2").await;
    assert_eq!(exposed(cache.get("token-key").await.unwrap()).as_deref(), Some("key-v1"));
    clock.advance(Duration::from_secs(59));
    assert_eq!(exposed(cache.get("token-key").await.unwrap()).as_deref(), Some("key-v1"));
    clock.advance(Duration::from_secs(1));
    assert_eq!(exposed(cache.get("token-key").await.unwrap()).as_deref(), Some("key-v2"));
}

#[tokio::test]
async fn a_zero_ttl_reads_ssm_on_every_get() {
    let mut server = MotoServer::start();
    let client = server.ssm_client();
    put_string(&client, "token-key", "key-v1").await;
    let cache = cache(&server, Duration::ZERO, &ManualClock::new());
    cache.prefetch(&["token-key"]).await.expect("prefetch");

    put_string(&client, "token-key", "key-v2").await;
    assert_eq!(exposed(cache.get("token-key").await.unwrap()).as_deref(), Some("key-v2"));

    server.stop();
    let err = cache.get("token-key").await.expect_err("nothing was cached");
    assert!(matches!(err, SsmError::Request { .. }), "{err:?}");
}

#[tokio::test]
async fn a_missing_parameter_is_reported_and_found_once_it_is_created() {
    let server = MotoServer::start();
    let client = server.ssm_client();
    put_string(&client, "zendesk/subdomain", "acme").await;
    let clock = ManualClock::new();
    let cache = cache(&server, TTL, &clock);

    assert!(cache.get("zendesk/email").await.expect("get").is_none());
    let parameters = cache.get_many(&["zendesk/subdomain", "zendesk/email"]).await.expect("get_many");
    assert_eq!(parameters.missing(), ["zendesk/email".to_owned()]);
    assert_eq!(parameters.get("zendesk/subdomain").map(|s| s.expose()), Some("acme"));

    // Not cached as missing: once created it is found, without waiting for any TTL.
    put_string(&client, "zendesk/email", "agent@example.com").await;
    assert_eq!(
        exposed(cache.get("zendesk/email").await.expect("get")).as_deref(),
        Some("agent@example.com")
    );
}

#[tokio::test]
async fn prefetch_fails_with_a_clear_error_when_ssm_is_down_at_init() {
    let mut server = MotoServer::start();
    let cache = cache(&server, TTL, &ManualClock::new());
    server.stop();

    let err = cache.prefetch(&["token-key", "inbound-tokens"]).await.expect_err("SSM is down");

    match &err {
        SsmError::Request { names, kind, .. } => {
            assert_eq!(*kind, FailureKind::Unreachable, "{err}");
            assert_eq!(names, &[format!("{PREFIX}/token-key"), format!("{PREFIX}/inbound-tokens")]);
        }
        other => panic!("expected a request failure, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("SSM could not be reached"), "{message}");
    assert!(message.contains(&format!("{PREFIX}/token-key")), "{message}");
}

#[tokio::test]
async fn cached_values_keep_serving_after_ssm_goes_down_until_they_expire() {
    let mut server = MotoServer::start();
    let client = server.ssm_client();
    put_string(&client, "inbound-tokens", "tok-a,tok-b").await;
    let clock = ManualClock::new();
    let cache = cache(&server, Duration::from_secs(60), &clock);
    cache.prefetch(&["inbound-tokens"]).await.expect("prefetch");

    server.stop();
    clock.advance(Duration::from_secs(59));
    assert_eq!(
        exposed(cache.get("inbound-tokens").await.expect("cached")).as_deref(),
        Some("tok-a,tok-b")
    );

    clock.advance(Duration::from_secs(1));
    let err = cache.get("inbound-tokens").await.expect_err("expired and SSM is down");
    assert!(
        matches!(
            err,
            SsmError::Request {
                kind: FailureKind::Unreachable,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn refresh_picks_up_a_changed_value_before_expiry() {
    let mut server = MotoServer::start();
    let client = server.ssm_client();
    put_string(&client, "token-key", "key-v1").await;
    put_string(&client, "inbound-tokens", "tok-v1").await;
    let clock = ManualClock::new();
    let cache = cache(&server, TTL, &clock);
    cache.prefetch(&["token-key", "inbound-tokens"]).await.expect("prefetch");

    put_string(&client, "token-key", "key-v2").await;
    cache.refresh().await.expect("refresh");
    assert_eq!(exposed(cache.get("token-key").await.unwrap()).as_deref(), Some("key-v2"));
    assert_eq!(exposed(cache.get("inbound-tokens").await.unwrap()).as_deref(), Some("tok-v1"));

    // A refresh that fails leaves the cached values serving.
    server.stop();
    cache.refresh().await.expect_err("SSM is down");
    assert_eq!(exposed(cache.get("token-key").await.unwrap()).as_deref(), Some("key-v2"));
}

#[tokio::test]
async fn clear_forgets_every_cached_value() {
    let mut server = MotoServer::start();
    let client = server.ssm_client();
    put_string(&client, "token-key", "key-v1").await;
    let cache = cache(&server, TTL, &ManualClock::new());
    cache.prefetch(&["token-key"]).await.expect("prefetch");

    cache.clear();
    server.stop();

    cache.get("token-key").await.expect_err("nothing cached, SSM down");
}

#[tokio::test]
async fn debug_and_display_of_the_cache_and_its_errors_never_contain_values() {
    const VALUES: [&str; 2] = ["hunter2-token-key-value", "zd-api-token-value-42"];
    let mut server = MotoServer::start();
    let client = server.ssm_client();
    put(&client, "token-key", VALUES[0], ParameterType::SecureString).await;
    put_string(&client, "zendesk/api_token", VALUES[1]).await;
    let clock = ManualClock::new();
    let cache = cache(&server, Duration::from_secs(60), &clock);

    let parameters = cache
        .get_many(&["token-key", "zendesk/api_token", "absent"])
        .await
        .expect("get_many");
    let got = cache.get("token-key").await;
    server.stop();
    clock.advance(Duration::from_secs(61));
    let down = cache.get("zendesk/api_token").await.expect_err("SSM down");
    let invalid = cache.get("bad name").await.expect_err("invalid name");

    let printed = [
        format!("{cache:?}"),
        format!("{parameters:?}"),
        format!("{got:?}"),
        format!("{down}"),
        format!("{down:?}"),
        format!("{invalid}"),
        format!("{invalid:?}"),
    ];
    for text in &printed {
        for value in VALUES {
            assert!(!text.contains(value), "{value:?} leaked in {text}");
        }
    }
    // What is printed still says what it is about.
    assert!(printed[0].contains("token-key"), "{}", printed[0]);
    assert!(printed[3].contains("zendesk/api_token"), "{}", printed[3]);
    assert!(printed[5].contains("bad name"), "{}", printed[5]);
}

#[tokio::test]
async fn from_env_uses_the_standard_aws_endpoint_url_ssm_variable() {
    let server = MotoServer::start();
    put_string(&server.ssm_client(), "token-key", "from-env-value").await;
    // Only this test reads the process environment; the others configure their client explicitly.
    std::env::set_var("AWS_ENDPOINT_URL_SSM", server.endpoint_url());
    std::env::set_var("AWS_REGION", bridge_tests::moto::REGION);
    std::env::set_var("AWS_ACCESS_KEY_ID", "test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");

    let cache = SsmCache::from_env(PREFIX, TTL);

    assert_eq!(
        exposed(cache.get("token-key").await.expect("get")).as_deref(),
        Some("from-env-value")
    );
}

#[tokio::test]
async fn an_invalid_name_is_rejected_before_calling_ssm() {
    let mut server = MotoServer::start();
    let cache = cache(&server, TTL, &ManualClock::new());
    server.stop();

    let err = cache.get_many(&["token-key", "/absolute"]).await.expect_err("invalid");

    assert!(matches!(&err, SsmError::InvalidName { name } if name == "/absolute"), "{err:?}");
}
