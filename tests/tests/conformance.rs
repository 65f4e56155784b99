//! The conformance kit against the real handlers on the sandbox, served over HTTP on 127.0.0.1.

use std::sync::Arc;

use bridge_tests::{local, sandbox_app, sim};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_kit_passes_against_the_sandbox() {
    let (app, _store) = sandbox_app(&[]);
    let bridge = local::serve(Arc::new(app)).await.unwrap();
    let mut cfg = sim::SimConfig::new(bridge.url());
    cfg.samples = 8;
    let report = sim::run(cfg).await;
    println!("{}", report.render());
    assert!(report.passed(), "{}", report.render());
    assert!(report.initial_contacts >= 2_000);
    assert!(report.initial_pages >= 3, "the default page size splits the sandbox into pages");
    assert_eq!(report.incremental_contacts, 0, "nothing changed, so the incremental sync is empty");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_kit_fails_when_the_bridge_does_not_speak_the_protocol() {
    // Routes that answer 404 with no JSON body must fail the kit, not pass it vacuously.
    let (app, _store) = sandbox_app(&[]);
    let bridge = local::serve(Arc::new(app)).await.unwrap();
    let mut cfg = sim::SimConfig::new(format!("{}/nowhere", bridge.url()));
    cfg.samples = 1;
    let report = sim::run(cfg).await;
    assert!(!report.passed());
}
