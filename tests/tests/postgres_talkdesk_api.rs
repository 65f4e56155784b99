//! Authorization validation and agent synchronization on the PostgreSQL connector, against a real
//! PostgreSQL (`bridge_tests::postgres`).

use bridge::sync::budget::Unlimited;
use bridge::talkdesk::Agent;
use bridge::App;
use bridge_tests::postgres::{PgServer, TOKEN_KEY};
use bridge_tests::prepared_app;
use serde_json::Value;

fn pairs(pg: &PgServer, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut p = pg.app_pairs();
    for (k, v) in extra {
        p.retain(|(name, _)| name != k);
        p.push((k.to_string(), v.to_string()));
    }
    p
}

async fn app(pg: &PgServer, extra: &[(&str, &str)]) -> App {
    prepared_app(&pairs(pg, extra))
        .await
        .unwrap_or_else(|e| panic!("the app starts: {e}"))
}

fn error_of(body: &str) -> (String, String) {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    (
        v["error"]["code"].as_str().unwrap_or_default().to_string(),
        v["error"]["message"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_validation_is_204_when_the_relations_are_readable_and_401_naming_the_grant_when_not() {
    let pg = PgServer::start().await;
    pg.create_contract().await;
    let app = app(&pg, &[]).await;
    let r = app.validate(br#"{"auth":{}}"#, &Unlimited).await;
    assert_eq!(r.status, 204, "{}", r.body);
    // The grant is taken back after INIT: validation reads the catalog afresh and says what to grant.
    pg.admin()
        .await
        .batch_execute(&format!("REVOKE SELECT ON talkdesk_interactions FROM \"{}\"", pg.app_user))
        .await
        .unwrap();
    let r = app.validate(br#"{"auth":{}}"#, &Unlimited).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let (code, message) = error_of(&r.body);
    assert_eq!(code, "upstream_forbidden");
    assert!(message.starts_with("POSTGRES_INTERACTIONS_RELATION"), "{message}");
    assert!(message.contains("GRANT SELECT"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_validation_with_a_refused_password_is_a_401_and_never_shows_it() {
    let pg = PgServer::start().await;
    pg.create_contract().await;
    let wrong = "wrong-password-5678";
    let app = app(&pg, &[("POSTGRES_URL", &pg.url_with_password(wrong))]).await;
    let r = app.validate(br#"{"auth":{}}"#, &Unlimited).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let (_, message) = error_of(&r.body);
    assert!(message.contains("refused the deployment's credentials"), "{message}");
    assert!(!r.body.contains(wrong));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_validation_with_the_database_down_is_a_503_not_a_401() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let app = prepared_app(&[
        ("BRIDGE_CONNECTOR".to_string(), "postgres".to_string()),
        ("BRIDGE_TOKEN_KEY".into(), TOKEN_KEY.into()),
        ("POSTGRES_URL".into(), format!("postgres://bridge:pw@127.0.0.1:{port}/crm")),
        ("POSTGRES_SSLMODE".into(), "disable".into()),
    ])
    .await
    .expect("an unreachable database does not fail INIT");
    for r in [
        app.validate(br#"{"auth":{}}"#, &Unlimited).await,
        app.agents(br#"{"auth":{}}"#, &Unlimited).await,
    ] {
        assert_eq!(r.status, 503, "{}", r.body);
        assert_eq!(error_of(&r.body).0, "upstream_unavailable");
        assert_eq!(r.header("retry-after"), Some("5"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_agents_come_from_talkdesk_agents_in_id_order_across_statements_or_a_501_without_it() {
    let pg = PgServer::start().await;
    pg.create_contract().await;
    let app = app(&pg, &[("POSTGRES_PAGE_SIZE", "3")]).await;
    let r = app.agents(br#"{"auth":{}}"#, &Unlimited).await;
    assert_eq!(r.status, 501, "{}", r.body);
    let (code, message) = error_of(&r.body);
    assert_eq!(code, "not_supported");
    assert!(
        message.contains("talkdesk_agents") && message.contains("POSTGRES_AGENTS_RELATION"),
        "{message}"
    );

    let admin = pg.admin().await;
    admin
        .batch_execute(
            "CREATE TABLE talkdesk_agents (id text PRIMARY KEY, name text, email text);
             INSERT INTO talkdesk_agents VALUES
               ('a-10', 'Ana', 'ana@example.com'), ('a-2', 'Bo', 'bo@example.com'), ('B-1', '', 'nameless@example.com'),
               ('a-3', 'No Email', NULL), ('a-4', 'Cy', 'cy@example.com'), ('é-1', 'Dee', 'dee@example.com'),
               ('a-5', 'Ed', 'ed@example.com');",
        )
        .await
        .unwrap();
    pg.grant_read().await;
    let r = app.agents(br#"{"auth":{}}"#, &Unlimited).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    let agents: Vec<Agent> = serde_json::from_value(v["agents"].clone()).unwrap();
    let ids: Vec<&str> = agents.iter().map(|a| a.id.as_str()).collect();
    // Byte order across statements of 3 rows; the row without an email is left out.
    assert_eq!(ids, vec!["B-1", "a-10", "a-2", "a-4", "a-5", "é-1"]);
    assert_eq!(agents[0].name, "nameless@example.com", "a blank name shows the email");
}
