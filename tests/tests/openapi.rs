//! `openapi.yaml` describes what the bridge really answers: every response the conformance kit sees from the
//! sandbox validates against the schema the description gives for its path and status, and the description
//! names exactly the routes the template deploys.

use std::path::Path;
use std::sync::Arc;

use bridge_tests::{local, sandbox_app, sim};
use serde_json::{json, Value};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn openapi() -> Value {
    let text = std::fs::read_to_string(root().join("openapi.yaml")).unwrap();
    serde_yaml::from_str(&text).expect("openapi.yaml is YAML")
}

fn pointer<'a>(doc: &'a Value, reference: &str) -> &'a Value {
    doc.pointer(reference.trim_start_matches('#'))
        .unwrap_or_else(|| panic!("dangling $ref {reference}"))
}

/// The JSON schema of the response `status` of `POST path`, with `$ref`s resolvable against the document.
fn response_validator(doc: &Value, path: &str, status: u16) -> jsonschema::Validator {
    let responses = &doc["paths"][path]["post"]["responses"];
    let mut response = responses
        .get(status.to_string())
        .unwrap_or_else(|| panic!("openapi.yaml has no {status} for {path}"));
    if let Some(r) = response.get("$ref").and_then(Value::as_str) {
        response = pointer(doc, r);
    }
    let schema = response["content"]["application/json"]["schema"].clone();
    assert!(!schema.is_null(), "no JSON schema for {status} of {path}");
    // Validate against the schema as a subschema of the whole document, so its $refs resolve.
    let mut root = json!({"$schema": "https://json-schema.org/draft/2020-12/schema", "components": doc["components"].clone()});
    root["allOf"] = json!([schema]);
    jsonschema::options()
        .should_validate_formats(true)
        .build(&root)
        .expect("the schema compiles")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_the_conformance_kit_sees_matches_openapi_yaml() {
    let doc = openapi();
    assert_eq!(doc["openapi"].as_str().map(|v| v.starts_with("3.1")), Some(true));
    let (app, _store) = sandbox_app(&[]);
    let bridge = local::serve(Arc::new(app)).await.unwrap();
    let mut cfg = sim::SimConfig::new(bridge.url());
    cfg.samples = 4;
    let report = sim::run(cfg).await;
    assert!(report.passed(), "{}", report.render());
    let mut checked = 0;
    for ((path, status), bodies) in sim::responses_by_path(&report) {
        let validator = response_validator(&doc, &path, status);
        for body in bodies {
            let errors: Vec<String> = validator
                .iter_errors(body)
                .map(|e| format!("{e} at {}", e.instance_path()))
                .take(5)
                .collect();
            assert!(errors.is_empty(), "{path} {status} does not match openapi.yaml: {errors:?}");
            checked += 1;
        }
    }
    assert!(checked > 30, "only {checked} responses checked");
}

#[test]
fn a_response_that_drifts_from_the_description_is_refused() {
    let doc = openapi();
    let contacts = response_validator(&doc, "/contacts", 200);
    let good = json!({"contacts": [{"id": "1", "name": "Jane"}], "synchronization_checkpoint": "v1.a.b"});
    assert!(contacts.is_valid(&good));
    for drifted in [
        json!({"contacts": [{"id": "1", "name": "Jane", "nickname": "J"}], "synchronization_checkpoint": "v1.a.b"}),
        json!({"contacts": [{"id": "1", "name": "Jane", "emails": []}], "synchronization_checkpoint": "v1.a.b"}),
        json!({"contacts": [], "synchronization_checkpoint": "v1.a.b", "next_offset": null}),
        json!({"contacts": []}),
    ] {
        assert!(!contacts.is_valid(&drifted), "{drifted}");
    }
    let interactions = response_validator(&doc, "/interactions", 200);
    let item = json!({"id": "1", "subject": "s", "description": "d", "date": "2026-01-01T00:00:00Z", "url": "u", "type": "ticket", "priority": "none", "status": "open"});
    assert!(interactions.is_valid(&json!([item.clone()])));
    let mut bad = item.clone();
    bad["status"] = json!("hold");
    assert!(!interactions.is_valid(&json!([bad])));
    let mut bad = item;
    bad["date"] = json!("yesterday");
    assert!(!interactions.is_valid(&json!([bad])));
    let error = response_validator(&doc, "/contacts", 400);
    assert!(error.is_valid(&json!({"error": {"code": "invalid_json", "message": "m"}})));
    assert!(
        !error.is_valid(&json!({"error": {"code": "invalid_json"}})),
        "an error body needs a message"
    );
}

#[test]
fn openapi_and_the_template_describe_the_same_routes() {
    let doc = openapi();
    let mut described: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, ops)| ops.as_object().unwrap().keys().map(move |m| format!("{} {p}", m.to_uppercase())))
        .collect();
    described.sort();
    let template = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    let mut deployed: Vec<String> = Vec::new();
    let lines: Vec<&str> = template.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if let Some(path) = line.trim().strip_prefix("Path: ") {
            let method = lines[i.saturating_sub(3)..(i + 4).min(lines.len())]
                .iter()
                .find_map(|l| l.trim().strip_prefix("Method: "))
                .unwrap_or("?");
            deployed.push(format!("{} {}", method.trim().to_uppercase(), path.trim()));
        }
    }
    deployed.sort();
    assert_eq!(described, deployed);
}

/// The JSON schema of the request body of `POST path`.
fn request_validator(doc: &Value, path: &str) -> jsonschema::Validator {
    let schema = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"].clone();
    assert!(!schema.is_null(), "no request schema for {path}");
    let mut root = json!({"$schema": "https://json-schema.org/draft/2020-12/schema", "components": doc["components"].clone()});
    root["allOf"] = json!([schema]);
    jsonschema::options().build(&root).expect("the schema compiles")
}

#[tokio::test]
async fn every_request_example_in_openapi_yaml_is_answered_2xx_by_the_sandbox() {
    let doc = openapi();
    let (app, _store) = sandbox_app(&[]);
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let examples = ops["post"]["requestBody"]["content"]["application/json"]["examples"]
            .as_object()
            .unwrap_or_else(|| panic!("{path} has no request examples"));
        let validator = request_validator(&doc, path);
        for (name, example) in examples {
            let body = &example["value"];
            assert!(validator.is_valid(body), "{path} example {name} does not match its own schema");
            let bytes = body.to_string();
            let r = match path.as_str() {
                "/contacts" => {
                    app.contacts(bytes.as_bytes(), &bridge::sync::budget::Unlimited, chrono::Utc::now())
                        .await
                }
                "/interactions" => app.interactions(bytes.as_bytes()).await,
                "/agents" => app.agents(bytes.as_bytes(), &bridge::sync::budget::Unlimited).await,
                "/auth/validate" => app.validate(bytes.as_bytes(), &bridge::sync::budget::Unlimited).await,
                other => panic!("no handler for {other}"),
            };
            assert!((200..300).contains(&r.status), "{path} example {name}: {} {}", r.status, r.body);
            checked += 1;
        }
    }
    assert!(checked >= 8, "{checked}");
}

#[tokio::test]
async fn the_request_schemas_accept_exactly_what_the_bridge_accepts() {
    // Bodies at the edge of each rule: the schema calls a body valid exactly when the bridge does not
    // answer it 400. (The fuzzer in `make test` explores the rest.)
    let doc = openapi();
    let (app, _store) = sandbox_app(&[]);
    let interactions = request_validator(&doc, "/interactions");
    let nel = "\u{85}";
    let bodies = [
        json!({"auth": {}, "data": {}}),
        json!({"auth": {}, "data": {"contact_name": "  "}}),
        json!({"auth": {}, "data": {"contact_name": nel}}),
        json!({"auth": {}, "data": {"contact_name": "\u{feff}"}}),
        json!({"auth": {}, "data": {"contact_name": "Jane"}}),
        json!({"auth": {}, "data": {"contact_emails": []}}),
        json!({"auth": {}, "data": {"contact_emails": [null, " "]}}),
        json!({"auth": {}, "data": {"contact_emails": ["a@b.co"]}}),
        json!({"auth": {}, "data": {"contact_emails": "a@b.co"}}),
        json!({"auth": {}, "data": {"contact_emails": [5]}}),
        json!({"auth": {}, "data": {"contact_phones": [4155550100u64]}}),
        json!({"auth": {}, "data": {"contact_phones": {"n": 1}}}),
        json!({"auth": {}, "data": {"contact_external_id": 42}}),
        json!({"auth": {}, "data": {"contact_external_id": ""}}),
        json!({"auth": {}, "data": {"contact_external_id": true}}),
        json!({"auth": {}, "data": {"contact_external_id": "1", "contact_name": 3}}),
        json!({"auth": {}, "meta": {"interaction_types": "ticket"}, "data": {"contact_external_id": "1"}}),
        json!({"auth": {}, "meta": {"interaction_types": [1]}, "data": {"contact_external_id": "1"}}),
        json!({"auth": {}, "meta": [], "data": {"contact_external_id": "1"}}),
        json!({"auth": {"api_token": ["x"]}, "data": {"contact_external_id": "1"}}),
        json!({"auth": {"api_token": 7, "bridge_token": {}}, "data": {"contact_external_id": "1"}}),
        json!({"auth": null, "data": {"contact_external_id": "1"}}),
        json!({"auth": {}, "data": null}),
    ];
    for body in bodies {
        let r = app.interactions(body.to_string().as_bytes()).await;
        assert_eq!(
            interactions.is_valid(&body),
            r.status != 400,
            "{body}: the bridge answered {} {}",
            r.status,
            r.body
        );
    }
    let contacts = request_validator(&doc, "/contacts");
    for body in [
        json!({"auth": {}}),
        json!({"auth": {}, "meta": null}),
        json!({"auth": {}, "meta": {"offset": 12}}),
        json!({"auth": {}, "meta": {"offset": null, "synchronization_checkpoint": ""}}),
        json!({"auth": {}, "meta": {"synchronization_checkpoint": 5}}),
        json!({"auth": {}, "meta": "x"}),
        json!({"meta": {}}),
    ] {
        let r = app
            .contacts(body.to_string().as_bytes(), &bridge::sync::budget::Unlimited, chrono::Utc::now())
            .await;
        assert_eq!(
            contacts.is_valid(&body),
            r.status != 400,
            "{body}: the bridge answered {} {}",
            r.status,
            r.body
        );
    }
    let validate = request_validator(&doc, "/auth/validate");
    for body in [
        json!({"auth": {}}),
        json!({"auth": []}),
        json!({}),
        json!({"auth": {"x": null}, "other": 1}),
    ] {
        let r = app.validate(body.to_string().as_bytes(), &bridge::sync::budget::Unlimited).await;
        assert_eq!(
            validate.is_valid(&body),
            r.status != 400,
            "{body}: the bridge answered {} {}",
            r.status,
            r.body
        );
    }
}

#[test]
fn the_agents_response_schema_refuses_an_agent_without_an_email() {
    let doc = openapi();
    let agents = response_validator(&doc, "/agents", 200);
    assert!(agents.is_valid(&json!({"agents": [{"id": "1", "name": "A", "email": "a@b.co"}]})));
    assert!(!agents.is_valid(&json!({"agents": [{"id": "1", "name": "A"}]})));
    assert!(!agents.is_valid(&json!({"agents": [{"id": "1", "name": "A", "email": ""}]})));
    assert!(!agents.is_valid(&json!([])));
}
