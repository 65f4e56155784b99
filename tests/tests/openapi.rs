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
