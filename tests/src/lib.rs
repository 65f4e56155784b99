//! Shared helpers of the integration tests, the fakes of external systems, and the conformance kit.

pub mod fake_zendesk;
pub mod local;
pub mod moto;
pub mod sim;

use std::collections::HashMap;
use std::sync::Arc;

use bridge::connectors::sandbox::{generate, GenerateOptions, Sandbox, SandboxData, SandboxStore};
use bridge::{App, Config};

/// A configuration from explicit pairs, never from the process environment.
pub fn config(pairs: &[(&str, &str)]) -> Config {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Config::from_lookup(&move |k| map.get(k).cloned()).expect("test configuration is valid")
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

/// An app on the default generated sandbox.
pub fn sandbox_app(pairs: &[(&str, &str)]) -> (App, Arc<SandboxStore>) {
    sandbox_app_with(
        generate(GenerateOptions::default()),
        pairs,
        bridge::connectors::sandbox::DEFAULT_PAGE_SIZE,
        std::time::Duration::ZERO,
    )
}
