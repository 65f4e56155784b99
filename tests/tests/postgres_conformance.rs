//! The conformance kit against the real handlers on `BRIDGE_CONNECTOR=postgres`, served over HTTP on
//! 127.0.0.1, with a generated database of 20,000 contacts (2,000 sharing one `updated_at`, ids numeric and
//! text) and their interactions.

use std::sync::Arc;

use bridge_tests::postgres::{contract_data, load, PgServer};
use bridge_tests::{local, prepared_app, sim};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_kit_passes_against_postgres_with_20000_contacts() {
    let pg = PgServer::start().await;
    let data = contract_data(20_000, 2_000, 11, chrono::Utc::now() - chrono::Duration::hours(1));
    assert!(data.interactions.len() >= 50_000, "{} interactions", data.interactions.len());
    load(&pg, &data).await;
    let app = prepared_app(&pg.app_pairs()).await.expect("the app starts");
    let bridge = local::serve(Arc::new(app)).await.unwrap();
    let mut cfg = sim::SimConfig::new(bridge.url());
    cfg.samples = 12;
    let report = sim::run(cfg).await;
    println!("{}", report.render());
    assert!(report.passed(), "{}", report.render());
    assert_eq!(report.initial_contacts, 20_000);
    assert!(
        report.initial_pages > 20,
        "at most 1000 contacts a page (BRIDGE_PAGE_SIZE's default)"
    );
    assert_eq!(report.incremental_contacts, 0, "nothing changed, so the incremental sync is empty");
    assert!(report.interactions_seen > 0);
}
