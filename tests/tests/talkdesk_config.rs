//! `talkdesk-config` prints a document that Talkdesk's configuration reference accepts (checked against a
//! JSON Schema written from it, `tests/schemas/talkdesk-configuration.schema.json`), whose endpoint URLs are
//! the routes `template.yaml` deploys, served by the functions the template routes them to.

use std::collections::BTreeMap;
use std::path::Path;

use bridge_tests::talkdesk_config::{parse_args, run, Options};
use serde_json::{json, Value};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(root().join("tests/schemas/talkdesk-configuration.schema.json")).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the schema compiles")
}

fn problems(doc: &Value) -> Vec<String> {
    schema().iter_errors(doc).map(|e| format!("{e} at {}", e.instance_path())).collect()
}

/// `POST path` routes of template.yaml: path → the function that serves it.
fn template_routes() -> BTreeMap<String, String> {
    let template = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    let lines: Vec<&str> = template.lines().collect();
    let mut function = String::new();
    let mut routes = BTreeMap::new();
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with("  ") && !line.starts_with("   ") && line.trim_end().ends_with(':') {
            function = line.trim().trim_end_matches(':').to_string();
        }
        if let Some(path) = line.trim().strip_prefix("Path: ") {
            assert!(lines[i - 1].trim() == "Method: POST", "{path} is not a POST route");
            routes.insert(path.trim().to_string(), function.clone());
        }
    }
    routes
}

/// The template's `Outputs` that are URLs under the API, as `describe-stacks` would print them for API id
/// `abc123` in `eu-west-1`.
fn described_stack() -> Value {
    let template = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    let outputs_at = template.find("\nOutputs:").expect("the template has outputs");
    let mut outputs = Vec::new();
    let mut key = None;
    for line in template[outputs_at..].lines().skip(1) {
        if line.starts_with("  ") && !line.starts_with("   ") && line.trim_end().ends_with(':') {
            key = Some(line.trim().trim_end_matches(':').to_string());
        }
        if let (Some(k), Some(v)) = (&key, line.trim().strip_prefix("Value: !Sub ")) {
            let value = v
                .trim_matches('"')
                .replace("${HttpApi}", "abc123")
                .replace("${AWS::Region}", "eu-west-1")
                .replace("${AWS::URLSuffix}", "amazonaws.com");
            outputs.push(json!({"OutputKey": k, "OutputValue": value}));
        }
    }
    json!({"Stacks": [{"StackName": "talkdesk-bridge-prod", "Outputs": outputs,
        "Parameters": [{"ParameterKey": "Connector", "ParameterValue": "zendesk"}]}]})
}

fn options(extra: &[&str]) -> Options {
    let mut args = vec![
        "--logo-url",
        "https://cdn.example.com/logo.png",
        "--icon-url",
        "https://cdn.example.com/icon.png",
    ];
    args.extend_from_slice(extra);
    parse_args(args.into_iter().map(String::from)).unwrap()
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn stack_file(path: &str) -> Result<String, String> {
    assert_eq!(path, "stack.json");
    Ok(described_stack().to_string())
}

#[test]
fn the_document_for_a_zendesk_stack_validates_and_its_urls_are_the_templates_routes() {
    let doc = run(&options(&["--stack-outputs", "stack.json"]), &no_env, &stack_file).unwrap();
    assert!(problems(&doc).is_empty(), "{:?}\n{doc:#}", problems(&doc));
    assert_eq!(
        doc["name"], "talkdesk-bridge-zendesk",
        "the connector comes from the stack's Connector parameter"
    );
    assert_eq!(doc["authentication_type"], "custom");
    let fields: Vec<&str> = doc["authentication_fields"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f.as_object().unwrap().keys().map(String::as_str))
        .collect();
    assert_eq!(fields, ["subdomain", "email", "api_token", "bridge_token"]);
    assert_eq!(
        doc["authentication_fields"][0]["subdomain"]["format"],
        "https://{{subdomain}}.zendesk.com"
    );
    assert_eq!(doc["interaction_types"], json!(["ticket"]));

    let routes = template_routes();
    let base = "https://abc123.execute-api.eu-west-1.amazonaws.com";
    for (field, function) in [
        ("contact_synchronization_url", "ContactsFunction"),
        ("interaction_retrieval_url", "InteractionsFunction"),
        ("auth_validation_endpoint", "InteractionsFunction"),
    ] {
        let url = doc[field].as_str().unwrap();
        let path = url
            .strip_prefix(base)
            .unwrap_or_else(|| panic!("{field} {url} is not under the API"));
        assert_eq!(
            routes.get(path).map(String::as_str),
            Some(function),
            "{field}: {path} in {routes:?}"
        );
    }
    assert_eq!(routes.get("/agents").map(String::as_str), Some("ContactsFunction"));
}

#[test]
fn every_connector_prints_a_valid_document_from_a_base_url() {
    for connector in bridge::connectors::ConnectorKind::NAMES {
        for flags in [&[][..], &["--credentials-in-ssm"][..], &["--no-bridge-token"][..]] {
            let mut extra = vec!["--base-url", "https://bridge.example.com", "--connector", connector];
            extra.extend_from_slice(flags);
            let doc = run(&options(&extra), &no_env, &stack_file).unwrap();
            assert!(problems(&doc).is_empty(), "{connector} {flags:?}: {:?}", problems(&doc));
            assert_eq!(doc["auth_validation_endpoint"], "https://bridge.example.com/auth/validate");
        }
    }
    let env = |k: &str| (k == "POSTGRES_INTERACTION_TYPES").then(|| "order,ticket".to_string());
    let doc = run(
        &options(&["--base-url", "https://b.example.com", "--connector", "postgres"]),
        &env,
        &stack_file,
    )
    .unwrap();
    assert_eq!(doc["interaction_types"], json!(["order", "ticket"]), "the deployment's own types");
    assert_eq!(doc["authentication_type"], "custom", "only the bridge token");
    let doc = run(
        &options(&[
            "--base-url",
            "https://b.example.com",
            "--connector",
            "postgres",
            "--no-bridge-token",
        ]),
        &env,
        &stack_file,
    )
    .unwrap();
    assert_eq!(doc["authentication_type"], "none");
}

#[test]
fn the_schema_refuses_what_the_reference_forbids() {
    let good = run(
        &options(&["--base-url", "https://b.example.com", "--connector", "zendesk"]),
        &no_env,
        &stack_file,
    )
    .unwrap();
    assert!(problems(&good).is_empty());
    let mut bad = good.clone();
    bad.as_object_mut().unwrap().remove("icon_url");
    assert!(!problems(&bad).is_empty(), "icon_url is mandatory");
    let mut bad = good.clone();
    bad["authentication_fields"][0]["subdomain"]["type"] = json!("text");
    assert!(!problems(&bad).is_empty(), "type is input or oauth");
    let mut bad = good.clone();
    bad["authentication_fields"] = json!([]);
    assert!(!problems(&bad).is_empty(), "custom needs fields");
    let mut bad = good;
    bad["contact_synchronization_endpoint"] = bad["contact_synchronization_url"].clone();
    assert!(!problems(&bad).is_empty(), "the example's spelling is not the reference's field");
}

#[test]
fn a_stack_without_the_new_outputs_or_images_fails_naming_what_is_missing() {
    let old = |_: &str| -> Result<String, String> {
        let mut d = described_stack();
        d["Stacks"][0]["Outputs"]
            .as_array_mut()
            .unwrap()
            .retain(|o| o["OutputKey"] != "AuthValidationUrl");
        Ok(d.to_string())
    };
    let e = run(&options(&["--stack-outputs", "stack.json"]), &no_env, &old).unwrap_err();
    assert!(e.contains("AuthValidationUrl"), "{e}");
    let no_images = parse_args(["--base-url", "https://b.example.com"].map(String::from)).unwrap();
    let e = run(&no_images, &no_env, &stack_file).unwrap_err();
    assert!(e.contains("--logo-url"), "{e}");
    let e = run(
        &options(&["--base-url", "https://b.example.com", "--connector", "freshdesk"]),
        &no_env,
        &stack_file,
    )
    .unwrap_err();
    assert!(e.contains("unknown connector `freshdesk`"), "{e}");
    let env = |k: &str| (k == "BRIDGE_CONNECTOR").then(|| "postgres".to_string());
    let doc = run(&options(&["--stack-outputs", "stack.json"]), &env, &stack_file).unwrap();
    assert_eq!(
        doc["name"], "talkdesk-bridge-postgres",
        "BRIDGE_CONNECTOR wins over the stack's parameter"
    );
}
