//! Talkdesk's authorization validation (`POST /auth/validate`) and agent synchronization (`POST /agents`)
//! against the fake Zendesk and the sandbox, through the real handlers where the route matters. One
//! behaviour per test. (PostgreSQL: `tests/postgres_talkdesk_api.rs`.)

use std::sync::Arc;

use async_trait::async_trait;
use bridge::connectors::sandbox::{generate, GenerateOptions, Sandbox, SandboxStore};
use bridge::connectors::{Candidate, Connector, ConnectorError, ContactBatch, ContactQuery, Identifier, LookupCosts, PersonRef};
use bridge::error::ApiResponse;
use bridge::sync::budget::Unlimited;
use bridge::sync::Budget;
use bridge::talkdesk::{Agent, Auth, Interaction};
use bridge::App;
use bridge_tests::fake_zendesk::{self, auth_json, FakeData, FakeUser, FakeZendesk, Fault};
use bridge_tests::{local, sandbox_app_with};
use serde_json::{json, Value};

fn json_of(r: &ApiResponse) -> Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.body))
}

fn error_of(r: &ApiResponse) -> (String, String) {
    let v = json_of(r);
    (
        v["error"]["code"].as_str().unwrap_or_default().to_string(),
        v["error"]["message"].as_str().unwrap_or_default().to_string(),
    )
}

async fn validate(app: &App, auth: Value) -> ApiResponse {
    app.validate(json!({ "auth": auth }).to_string().as_bytes(), &Unlimited).await
}

async fn agents(app: &App, auth: Value) -> ApiResponse {
    app.agents(json!({ "auth": auth }).to_string().as_bytes(), &Unlimited).await
}

fn staff(id: u64, role: &str) -> FakeUser {
    let mut u = FakeUser::end_user(id, &format!("Agent {id}"), 1_700_000_000);
    u.role = role.into();
    u.email = Some(format!("agent{id}@acme.test"));
    u
}

/// 230 live agents and admins (three pages of 100), plus what must not be listed: end-users, a deleted
/// agent, a suspended admin and an agent without an email.
fn account_with_staff() -> (FakeData, Vec<String>) {
    let mut data = FakeData::default();
    let mut expected = Vec::new();
    for n in 0..230u64 {
        let id = 500_000 + n * 3;
        data.add_user(staff(id, if n % 10 == 0 { "admin" } else { "agent" }));
        expected.push(id.to_string());
        let mut customer = FakeUser::end_user(id + 1, "Customer", 1_700_000_000);
        customer.email = Some(format!("customer{n}@example.com"));
        data.add_user(customer);
    }
    let mut deleted = staff(900_001, "agent");
    deleted.active = false;
    data.add_user(deleted);
    let mut suspended = staff(900_002, "admin");
    suspended.suspended = true;
    data.add_user(suspended);
    let mut no_email = staff(900_003, "agent");
    no_email.email = None;
    data.add_user(no_email);
    (data, expected)
}

// ---------------------------------------------------------------- Zendesk: validation

#[tokio::test]
async fn zendesk_admin_credentials_validate_with_204_after_one_request_to_users_me() {
    let fake = FakeZendesk::start(FakeData::default()).await.unwrap();
    let app = fake_zendesk::app_on(&fake, &[]);
    let r = validate(&app, auth_json()).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(r.body.is_empty());
    let sent = fake.requests();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].path, "/api/v2/users/me");
    assert!(sent[0].authorization.as_deref().is_some_and(|a| a.starts_with("Basic ")));
    // The OAuth token validates the same way.
    let r = validate(&app, json!({"subdomain": "acme", "access_token": fake_zendesk::ACCESS_TOKEN})).await;
    assert_eq!(r.status, 204, "{}", r.body);
}

#[tokio::test]
async fn a_wrong_zendesk_api_token_is_a_401_saying_zendesk_rejected_the_credentials() {
    let fake = FakeZendesk::start(FakeData::default()).await.unwrap();
    let app = fake_zendesk::app_on(&fake, &[]);
    let mut auth = auth_json();
    auth["api_token"] = json!("not-the-token");
    let r = validate(&app, auth).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let (code, message) = error_of(&r);
    assert_eq!(code, "upstream_unauthorized");
    assert!(message.contains("Zendesk rejected the credentials"), "{message}");
    assert!(!r.body.contains("not-the-token"));
    assert_eq!(r.header("retry-after"), None);
}

#[tokio::test]
async fn a_zendesk_agent_is_refused_with_a_401_saying_an_admin_is_needed() {
    let fake = FakeZendesk::start(FakeData::default()).await.unwrap();
    fake.set_admin(false);
    let app = fake_zendesk::app_on(&fake, &[]);
    let r = validate(&app, auth_json()).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let (code, message) = error_of(&r);
    assert_eq!(code, "upstream_forbidden");
    assert!(message.contains("an agent, not an admin"), "{message}");
    assert!(message.contains("admin's email and API token"), "{message}");
}

#[tokio::test]
async fn a_suspended_or_anonymous_zendesk_user_does_not_validate() {
    let fake = FakeZendesk::start(FakeData::default()).await.unwrap();
    let app = fake_zendesk::app_on(&fake, &[]);
    fake.set_me_suspended(true);
    let r = validate(&app, auth_json()).await;
    assert_eq!((r.status, error_of(&r).0.as_str()), (401, "upstream_forbidden"), "{}", r.body);
    fake.set_me_suspended(false);
    fake.set_anonymous_me(true);
    let r = validate(&app, auth_json()).await;
    assert_eq!((r.status, error_of(&r).0.as_str()), (401, "upstream_unauthorized"), "{}", r.body);
}

#[tokio::test]
async fn a_malformed_subdomain_is_a_401_naming_the_field_and_nothing_is_sent() {
    let fake = FakeZendesk::start(FakeData::default()).await.unwrap();
    let app = fake_zendesk::app_on(&fake, &[]);
    let mut auth = auth_json();
    auth["subdomain"] = json!("evil.example.com/");
    let r = validate(&app, auth).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let (code, message) = error_of(&r);
    assert_eq!(code, "invalid_auth");
    assert!(message.contains("auth.subdomain"), "{message}");
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn zendesk_down_during_validation_is_a_503_with_retry_after_never_a_401() {
    let fake = FakeZendesk::start(FakeData::default()).await.unwrap();
    let app = fake_zendesk::app_on(&fake, &[]);
    fake.fail_next(1, Fault::unavailable(Some("30")));
    let r = validate(&app, auth_json()).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(error_of(&r).0, "upstream_unavailable");
    assert_eq!(r.header("retry-after"), Some("30"));
    fake.fail_next(1, Fault::status(500));
    let r = validate(&app, auth_json()).await;
    assert_eq!((r.status, error_of(&r).0.as_str()), (502, "upstream_error"), "{}", r.body);
}

#[tokio::test]
async fn validation_and_agents_need_the_bridge_token_like_every_route() {
    let fake = FakeZendesk::start(FakeData::default()).await.unwrap();
    let app = fake_zendesk::app_on(&fake, &[("BRIDGE_INBOUND_TOKENS", "inbound-token-0123456789")]);
    for r in [validate(&app, auth_json()).await, agents(&app, auth_json()).await] {
        assert_eq!(r.status, 401, "{}", r.body);
        assert_eq!(error_of(&r).0, "unauthenticated");
    }
    assert!(fake.requests().is_empty(), "nothing goes upstream for an unauthenticated caller");
    let mut auth = auth_json();
    auth["bridge_token"] = json!("inbound-token-0123456789");
    assert_eq!(validate(&app, auth.clone()).await.status, 204);
    assert_eq!(agents(&app, auth).await.status, 200);
}

// ---------------------------------------------------------------- Zendesk: agents

#[tokio::test]
async fn every_live_zendesk_agent_and_admin_is_listed_across_the_users_pages() {
    let (data, expected) = account_with_staff();
    let fake = FakeZendesk::start(data).await.unwrap();
    let app = fake_zendesk::app_on(&fake, &[]);
    let r = agents(&app, auth_json()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let listed: Vec<Agent> = serde_json::from_value(json_of(&r)["agents"].clone()).unwrap();
    let ids: Vec<String> = listed.iter().map(|a| a.id.clone()).collect();
    assert_eq!(ids, expected, "every live agent and admin, once, and nobody else");
    assert!(listed
        .iter()
        .all(|a| a.email.ends_with("@acme.test") && a.name.starts_with("Agent ")));
    let sent = fake.requests_to("/api/v2/users");
    assert_eq!(sent.len(), 3, "230 agents take three pages of 100: {sent:?}");
    for req in &sent {
        assert_eq!(req.path, "/api/v2/users");
        let roles: Vec<&str> = req.query.iter().filter(|(k, _)| k == "role[]").map(|(_, v)| v.as_str()).collect();
        assert_eq!(roles, vec!["agent", "admin"]);
        assert_eq!(req.param("page[size]"), Some("100"));
    }
    assert!(sent[0].param("page[after]").is_none());
    assert!(sent[1].param("page[after]").is_some() && sent[2].param("page[after]") != sent[1].param("page[after]"));
}

#[tokio::test]
async fn agents_with_a_wrong_token_or_zendesk_down_fail_clearly_and_never_answer_a_partial_list() {
    let (data, _) = account_with_staff();
    let fake = FakeZendesk::start(data).await.unwrap();
    let app = fake_zendesk::app_on(&fake, &[]);
    let mut wrong = auth_json();
    wrong["api_token"] = json!("nope");
    let r = agents(&app, wrong).await;
    assert_eq!((r.status, error_of(&r).0.as_str()), (401, "upstream_unauthorized"), "{}", r.body);
    let outage = FakeZendesk::start(account_with_staff().0).await.unwrap();
    let app = fake_zendesk::app_on(&outage, &[]);
    outage.fail_next(1, Fault::unavailable(None));
    let r = agents(&app, auth_json()).await;
    assert_eq!((r.status, error_of(&r).0.as_str()), (503, "upstream_unavailable"), "{}", r.body);
    assert!(r.header("retry-after").is_some());
}

#[tokio::test]
async fn a_zendesk_agents_page_failing_after_the_first_gives_an_error_not_a_shorter_list() {
    let (data, expected) = account_with_staff();
    let fake = FakeZendesk::start(data).await.unwrap();
    let app = fake_zendesk::app_on(&fake, &[]);
    // The second page is asked for after the 100th agent (the fake's cursor names the last id).
    let second_page = fake_zendesk::b64_encode(format!("{{\"o\":\"id\",\"v\":{}}}", expected[99]).as_bytes());
    fake.fail_queries_with(&second_page, Fault::status(500));
    let r = agents(&app, auth_json()).await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(error_of(&r).0, "upstream_error");
    assert!(!r.body.contains("agents\""), "no list at all: {}", r.body);
    assert_eq!(fake.requests_to("/api/v2/users").len(), 2);
}

#[tokio::test]
async fn an_agents_list_that_cannot_finish_within_the_budget_is_a_504_not_a_shorter_list() {
    let (data, _) = account_with_staff();
    let fake = FakeZendesk::start(data).await.unwrap();
    let app = fake_zendesk::app_on(&fake, &[]);
    // A budget that is spent once the first page is in: the list cannot be completed in time.
    let r = app.agents(json!({"auth": auth_json()}).to_string().as_bytes(), &Spent).await;
    assert_eq!(r.status, 504, "{}", r.body);
    let (code, message) = error_of(&r);
    assert_eq!(code, "agents_incomplete");
    assert!(message.contains("no partial list"), "{message}");
    assert_eq!(fake.requests_to("/api/v2/users").len(), 1);
}

#[tokio::test]
async fn an_agents_list_over_the_byte_cap_is_refused_naming_the_setting() {
    let (data, _) = account_with_staff();
    let fake = FakeZendesk::start(data).await.unwrap();
    let app = fake_zendesk::app_on(&fake, &[("BRIDGE_MAX_RESPONSE_BYTES", "10000")]);
    let r = agents(&app, auth_json()).await;
    assert_eq!(r.status, 502, "{}", r.body);
    let (code, message) = error_of(&r);
    assert_eq!(code, "agents_too_large");
    assert!(message.contains("BRIDGE_MAX_RESPONSE_BYTES"), "{message}");
}

/// Spent from the start: the first upstream page is still read, no second one.
struct Spent;

impl Budget for Spent {
    fn exhausted(&self) -> bool {
        true
    }
}

// ---------------------------------------------------------------- sandbox and the routes

#[tokio::test]
async fn the_sandbox_lists_its_generated_agents_across_upstream_pages() {
    let (app, _store) = sandbox_app_with(generate(GenerateOptions::default()), &[], 5, std::time::Duration::ZERO);
    let r = agents(&app, json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let listed: Vec<Agent> = serde_json::from_value(json_of(&r)["agents"].clone()).unwrap();
    assert_eq!(listed.len(), bridge::connectors::sandbox::data::AGENTS);
    let unique: std::collections::HashSet<&str> = listed.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(unique.len(), listed.len());
    assert!(listed.iter().all(|a| !a.name.is_empty() && a.email.contains('@')));
    assert_eq!(validate(&app, json!({})).await.status, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_new_routes_reach_their_operations_over_http() {
    let (app, _store) = sandbox_app_with(generate(GenerateOptions::default()), &[], 200, std::time::Duration::ZERO);
    let bridge = local::serve(Arc::new(app)).await.unwrap();
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/agents", bridge.url()))
        .json(&json!({"auth": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["agents"].as_array().is_some_and(|a| !a.is_empty()), "{v}");
    let r = client
        .post(format!("{}/auth/validate", bridge.url()))
        .json(&json!({"auth": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = client
        .post(format!("{}/auth/validate", bridge.url()))
        .json(&json!({"meta": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "no `auth` is a client error");
}

/// A connector that offers neither validation nor agents: the trait's defaults.
struct Minimal(Sandbox);

#[async_trait]
impl Connector for Minimal {
    fn name(&self) -> &'static str {
        "minimal"
    }
    fn display_name(&self) -> &'static str {
        "Minimal"
    }
    fn interaction_types(&self) -> &[&'static str] {
        self.0.interaction_types()
    }
    fn max_page_size(&self) -> usize {
        self.0.max_page_size()
    }
    fn indexing_lag(&self) -> std::time::Duration {
        self.0.indexing_lag()
    }
    fn account(&self, auth: &Auth) -> Result<String, ConnectorError> {
        self.0.account(auth)
    }
    async fn contacts(&self, auth: &Auth, query: &ContactQuery<'_>) -> Result<ContactBatch, ConnectorError> {
        self.0.contacts(auth, query).await
    }
    fn person_by_external_id(&self, external_id: &str) -> Option<PersonRef> {
        self.0.person_by_external_id(external_id)
    }
    fn lookup_costs(&self, limit: usize) -> LookupCosts {
        self.0.lookup_costs(limit)
    }
    async fn find_people(&self, auth: &Auth, identifier: &Identifier, budget: &dyn Budget) -> Result<Vec<Candidate>, ConnectorError> {
        self.0.find_people(auth, identifier, budget).await
    }
    async fn identifiers_of(&self, auth: &Auth, person: &PersonRef, budget: &dyn Budget) -> Result<Candidate, ConnectorError> {
        self.0.identifiers_of(auth, person, budget).await
    }
    async fn interactions_of(
        &self,
        auth: &Auth,
        person: &PersonRef,
        types: &[String],
        limit: usize,
        budget: &dyn Budget,
    ) -> Result<Option<Vec<Interaction>>, ConnectorError> {
        self.0.interactions_of(auth, person, types, limit, budget).await
    }
}

#[tokio::test]
async fn a_connector_without_agents_or_validation_says_so_with_a_501() {
    let region = bridge::phone::parse_region("US").unwrap();
    let store = Arc::new(SandboxStore::new(generate(GenerateOptions { contacts: 3, seed: 1 }), region));
    let app = bridge_tests::app_on(&[], Arc::new(Minimal(Sandbox::new(store, 10, std::time::Duration::ZERO))));
    for (r, operation) in [
        (agents(&app, json!({})).await, "agent synchronization"),
        (validate(&app, json!({})).await, "authorization validation"),
    ] {
        assert_eq!(r.status, 501, "{}", r.body);
        let (code, message) = error_of(&r);
        assert_eq!(code, "not_supported");
        assert_eq!(message, format!("the Minimal connector does not support {operation}"));
    }
}

#[tokio::test]
async fn the_oauth_rule_only_an_upstream_401_is_answered_401_outside_validation() {
    // Talkdesk refreshes an OAuth token and repeats the request on a 401, so on the data routes a 401 means
    // "the external system refused the token" and nothing else: a Zendesk 403 stays 403, a malformed
    // field stays 400.
    let (data, _) = account_with_staff();
    let fake = FakeZendesk::start(data).await.unwrap();
    let app = fake_zendesk::app_on(&fake, &[]);
    let mut bad = auth_json();
    bad["subdomain"] = json!("no/such");
    assert_eq!(agents(&app, bad).await.status, 400);
    fake.fail_next(1, Fault::forbidden());
    assert_eq!(agents(&app, auth_json()).await.status, 403);
    fake.fail_next(1, Fault::unauthorized());
    assert_eq!(agents(&app, auth_json()).await.status, 401);
}
