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
    assert_eq!(report.agents, bridge::connectors::sandbox::data::AGENTS, "every agent listed");
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

/// A small Zendesk account served through the local bridge, for the kit's validation and agents checks.
async fn zendesk_bridge() -> (bridge_tests::fake_zendesk::FakeZendesk, local::LocalBridge) {
    use bridge_tests::fake_zendesk::{self, FakeUser, FakeZendesk, Generate};
    let mut data = fake_zendesk::generate(Generate {
        users: 60,
        seed: 5,
        latest: chrono::Utc::now().timestamp() - 7_200,
    });
    for id in [1_001u64, 1_002] {
        let mut agent = FakeUser::end_user(id, &format!("Agent {id}"), chrono::Utc::now().timestamp() - 7_200);
        agent.role = "agent".into();
        agent.email = Some(format!("agent{id}@acme.test"));
        data.add_user(agent);
    }
    let fake = FakeZendesk::start(data).await.unwrap();
    let app = Arc::new(fake_zendesk::app_on(&fake, &[]));
    let bridge = local::serve(app).await.unwrap();
    (fake, bridge)
}

fn failed<'a>(report: &'a sim::Report, name: &str) -> Vec<&'a sim::Check> {
    report.failures().into_iter().filter(|c| c.name.starts_with(name)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_kit_fails_validation_for_a_zendesk_agent_saying_the_credentials_were_refused() {
    let (fake, bridge) = zendesk_bridge().await;
    fake.set_admin(false);
    let mut cfg = sim::SimConfig::new(bridge.url());
    cfg.auth = bridge_tests::fake_zendesk::auth_json();
    cfg.samples = 1;
    let report = sim::run(cfg).await;
    let validation = failed(&report, "authorization validation");
    assert_eq!(validation.len(), 1, "{}", report.render());
    assert!(
        validation[0].detail.starts_with("credentials refused") && validation[0].detail.contains("admin"),
        "{}",
        validation[0].detail
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_kit_reports_an_outage_during_validation_as_one_not_as_refused_credentials() {
    let (fake, bridge) = zendesk_bridge().await;
    fake.fail_next_on("/api/v2/users/me", 1, bridge_tests::fake_zendesk::Fault::unavailable(Some("3")));
    let mut cfg = sim::SimConfig::new(bridge.url());
    cfg.auth = bridge_tests::fake_zendesk::auth_json();
    cfg.samples = 1;
    let report = sim::run(cfg).await;
    let validation = failed(&report, "authorization validation");
    assert_eq!(validation.len(), 1, "{}", report.render());
    assert!(
        validation[0].detail.starts_with("the external system could not tell (503)"),
        "{}",
        validation[0].detail
    );
    assert!(failed(&report, "agent synchronization").is_empty(), "{}", report.render());
    assert!(report.agents > 0);
}
