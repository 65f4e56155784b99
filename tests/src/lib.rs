//! Shared helpers of the integration tests, the fakes of external systems, and the conformance kit.

pub mod fake_hubspot;
pub mod fake_zendesk;
pub mod local;
pub mod moto;
pub mod postgres;
pub mod runtime_emulator;
pub mod server;
pub mod sim;
pub mod ssm_gate;
pub mod talkdesk_config;

use std::collections::HashMap;
use std::sync::Arc;

use bridge::connectors::sandbox::{generate, GenerateOptions, Sandbox, SandboxData, SandboxStore};
use bridge::{App, Config};

/// A configuration from explicit pairs, never from the process environment.
pub fn config(pairs: &[(&str, &str)]) -> Config {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Config::from_lookup(&move |k| map.get(k).cloned()).expect("test configuration is valid")
}

/// An app on the connector the pairs configure, its secrets read from SSM through `cache` (INIT included):
/// what `App::from_env` builds when `BRIDGE_SSM_PREFIX` is set, without the process environment.
pub async fn ssm_app(pairs: &[(&str, &str)], cache: bridge::secrets::ssm::SsmCache) -> Result<App, bridge::config::ConfigError> {
    let config = config(pairs);
    let connector = bridge::connectors::build(&config).expect("the connector builds");
    App::with_ssm(config, connector, cache).await
}

/// An app on the connector the pairs configure, with its cold-start check run (what `App::from_env` does,
/// without the process environment or SSM).
pub async fn prepared_app(pairs: &[(String, String)]) -> Result<App, bridge::config::ConfigError> {
    let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let config = config(&refs);
    let connector = bridge::connectors::build(&config)?;
    let app = App::new(config, connector)?;
    app.prepare().await?;
    Ok(app)
}

/// An app on the sandbox with the given data, upstream page size and lag, and the store to change it.
pub fn sandbox_app_with(
    data: SandboxData,
    pairs: &[(&str, &str)],
    upstream_page: usize,
    lag: std::time::Duration,
) -> (App, Arc<SandboxStore>) {
    let config = config(pairs);
    let store = Arc::new(SandboxStore::new(data, config.default_region));
    let connector = Arc::new(Sandbox::new(store.clone(), upstream_page, lag));
    let app = App::new(config, connector).expect("sandbox app builds");
    (app, store)
}

/// An app on `connector` with the configuration the pairs give.
pub fn app_on(pairs: &[(&str, &str)], connector: Arc<dyn bridge::connectors::Connector>) -> App {
    App::new(config(pairs), connector).expect("app builds")
}

/// An app on the default generated sandbox.
pub fn sandbox_app(pairs: &[(&str, &str)]) -> (App, Arc<SandboxStore>) {
    sandbox_app_with(
        generate(GenerateOptions::default()),
        pairs,
        bridge::connectors::sandbox::DEFAULT_PAGE_SIZE,
        std::time::Duration::ZERO,
    )
}

/// An app on the Zendesk connector against `fake`, with `extra` settings.
pub fn zendesk_app(fake: &fake_zendesk::FakeZendesk, token_key: &str, extra: &[(&str, &str)]) -> App {
    let base = fake.base_url();
    let mut pairs: Vec<(&str, &str)> = vec![
        ("BRIDGE_CONNECTOR", "zendesk"),
        ("BRIDGE_TOKEN_KEY", token_key),
        ("ZENDESK_BASE_URL", base.as_str()),
    ];
    pairs.extend_from_slice(extra);
    let config = config(&pairs);
    let connector = bridge::connectors::build(&config).expect("zendesk connector builds");
    App::new(config, connector).expect("zendesk app builds")
}
