//! Every file in `events/` is a real API Gateway HTTP API (payload 2.0) event. Each one is parsed as the
//! Lambda runtime parses an event, made a request by the functions' entry point (`bridge::lambda`) and
//! handed to the real handler, as `sam local invoke` and `cargo lambda invoke` would; its answer is checked,
//! and the proxy response the function sends for it.
//!
//! `cargo test -p bridge-tests --test events -- --ignored regenerate_events` rewrites the files (the
//! tokens in them are signed with the sandbox's public development key).

use std::path::{Path, PathBuf};

use bridge::connectors::sandbox::{generate, GenerateOptions};
use bridge::sync::position::micros;
use bridge::sync::{CheckpointState, OffsetState, Position, SyncKey};
use bridge_tests::sandbox_app;
use chrono::{TimeZone, Utc};
use lambda_http::request::LambdaRequest;
use lambda_http::{Context, LambdaEvent};
use serde_json::{json, Value};

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
}

/// What each sample event must produce.
struct Expect {
    file: &'static str,
    function: &'static str,
    status: u16,
    check: fn(&Value),
}

fn contacts_page(v: &Value, last: bool) {
    assert!(v["contacts"].as_array().is_some_and(|c| !c.is_empty()), "contacts: {v}");
    assert!(v["synchronization_checkpoint"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(v.get("next_offset").is_none(), last, "next_offset presence: {v}");
}

fn error_code(v: &Value, code: &str) {
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
}

fn nonempty_interactions(v: &Value) {
    let items = v.as_array().expect("an array");
    assert!(!items.is_empty(), "no interactions found");
    for i in items {
        for f in ["id", "subject", "description", "date", "url", "type", "priority", "status"] {
            assert!(i.get(f).is_some(), "missing {f} in {i}");
        }
    }
}

const EXPECTED: &[Expect] = &[
    Expect {
        file: "contacts-initial-sync.json",
        function: "contacts",
        status: 200,
        check: |v| contacts_page(v, false),
    },
    Expect {
        file: "contacts-next-page.json",
        function: "contacts",
        status: 200,
        check: |v| contacts_page(v, false),
    },
    Expect {
        file: "contacts-incremental.json",
        function: "contacts",
        status: 200,
        check: |v| contacts_page(v, false),
    },
    Expect {
        file: "contacts-incremental-next-page.json",
        function: "contacts",
        status: 200,
        check: |v| contacts_page(v, true),
    },
    Expect {
        file: "contacts-incremental-legacy-checkpoint.json",
        function: "contacts",
        status: 200,
        check: |v| contacts_page(v, false),
    },
    Expect {
        file: "interactions-by-external-id.json",
        function: "interactions",
        status: 200,
        check: nonempty_interactions,
    },
    Expect {
        file: "interactions-by-email.json",
        function: "interactions",
        status: 200,
        check: nonempty_interactions,
    },
    Expect {
        file: "interactions-by-phone.json",
        function: "interactions",
        status: 200,
        check: nonempty_interactions,
    },
    Expect {
        file: "interactions-several-types.json",
        function: "interactions",
        status: 200,
        check: |v| {
            nonempty_interactions(v);
            assert!(
                v.as_array().unwrap().iter().all(|i| i["type"] == "ticket" || i["type"] == "call"),
                "{v}"
            );
        },
    },
    Expect {
        file: "interactions-name-only.json",
        function: "interactions",
        status: 200,
        check: |v| assert_eq!(v, &json!([])),
    },
    Expect {
        file: "bad-contacts-not-json.json",
        function: "contacts",
        status: 400,
        check: |v| error_code(v, "invalid_json"),
    },
    Expect {
        file: "bad-contacts-forged-offset.json",
        function: "contacts",
        status: 400,
        check: |v| error_code(v, "invalid_offset"),
    },
    Expect {
        file: "bad-contacts-auth-missing.json",
        function: "contacts",
        status: 400,
        check: |v| error_code(v, "missing_field"),
    },
    Expect {
        file: "bad-interactions-no-data.json",
        function: "interactions",
        status: 400,
        check: |v| error_code(v, "missing_field"),
    },
    Expect {
        file: "bad-interactions-empty-data.json",
        function: "interactions",
        status: 400,
        check: |v| error_code(v, "missing_contact_identifier"),
    },
    Expect {
        file: "agents.json",
        function: "contacts",
        status: 200,
        check: |v| {
            let agents = v["agents"].as_array().expect("an agents array");
            assert_eq!(agents.len(), bridge::connectors::sandbox::data::AGENTS, "{v}");
            for a in agents {
                for f in ["id", "name", "email"] {
                    assert!(a[f].as_str().is_some_and(|s| !s.is_empty()), "missing {f} in {a}");
                }
            }
        },
    },
    Expect {
        file: "bad-agents-auth-missing.json",
        function: "contacts",
        status: 400,
        check: |v| error_code(v, "missing_field"),
    },
    Expect {
        file: "auth-validate.json",
        function: "interactions",
        status: 204,
        check: |v| assert!(v.is_null(), "204 has no body: {v}"),
    },
    Expect {
        file: "bad-auth-validate-not-json.json",
        function: "interactions",
        status: 400,
        check: |v| error_code(v, "invalid_json"),
    },
];

/// The path API Gateway routes a sample event by: `agents-*` and `auth-validate-*` (also as `bad-...`) go
/// to the second route of their function.
fn route_of(file: &str, function: &str) -> String {
    let name = file.strip_prefix("bad-").unwrap_or(file);
    if name.starts_with("agents") {
        "/agents".into()
    } else if name.starts_with("auth-validate") {
        "/auth/validate".into()
    } else {
        format!("/{function}")
    }
}

#[tokio::test]
async fn every_sample_event_gets_its_expected_answer_from_the_real_handler() {
    let (app, _store) = sandbox_app(&[]);
    for e in EXPECTED {
        let text = std::fs::read_to_string(events_dir().join(e.file)).unwrap_or_else(|err| panic!("{}: {err}", e.file));
        let raw: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            raw["headers"]["content-type"], "application/json",
            "{}: sam local needs the header",
            e.file
        );
        assert_eq!(raw["isBase64Encoded"], false, "{}", e.file);
        assert_eq!(
            raw["rawPath"],
            route_of(e.file, e.function),
            "{}: routed to the wrong function",
            e.file
        );
        let payload: LambdaRequest =
            serde_json::from_str(&text).unwrap_or_else(|err| panic!("{}: not an API Gateway event: {err}", e.file));
        let req = bridge::lambda::request(LambdaEvent::new(payload, Context::default()));
        let resp = match e.function {
            "contacts" => contacts::handle(&app, req).await,
            _ => interactions::handle(&app, req).await,
        }
        .unwrap_or_else(|err| panic!("{}: handler error {err}", e.file));
        let sent: Value = serde_json::to_value(bridge::lambda::envelope(resp.clone())).unwrap();
        assert_eq!(sent["statusCode"], e.status, "{}", e.file);
        assert_eq!(sent["body"], resp.body().as_str(), "{}", e.file);
        assert_eq!(sent["headers"]["content-type"], "application/json", "{}", e.file);
        assert_eq!(resp.status().as_u16(), e.status, "{}: {}", e.file, resp.body());
        assert_eq!(resp.headers()["content-type"], "application/json");
        let body: Value = if resp.body().is_empty() && e.status == 204 {
            Value::Null
        } else {
            serde_json::from_str(resp.body()).unwrap_or_else(|_| panic!("{}: body is not JSON", e.file))
        };
        (e.check)(&body);
    }
}

#[test]
fn every_file_in_events_is_covered_by_a_test() {
    let mut files: Vec<String> = std::fs::read_dir(events_dir())
        .unwrap()
        .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".json"))
        .collect();
    files.sort();
    let mut covered: Vec<String> = EXPECTED.iter().map(|e| e.file.to_string()).collect();
    covered.sort();
    assert_eq!(files, covered);
}

fn event(path: &str, body: &str) -> Value {
    json!({
        "version": "2.0",
        "routeKey": format!("POST {path}"),
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "accept": "application/json",
            "content-type": "application/json",
            "content-length": body.len().to_string(),
            "host": "abc123defg.execute-api.us-east-1.amazonaws.com",
            "user-agent": "Talkdesk-Integrations/1.0",
            "x-forwarded-for": "203.0.113.10",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https"
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123defg",
            "domainName": "abc123defg.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123defg",
            "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.10", "userAgent": "Talkdesk-Integrations/1.0"},
            "requestId": "Ab1CdEfGhIjKlMn=",
            "routeKey": format!("POST {path}"),
            "stage": "$default",
            "time": "22/Nov/2026:10:15:00 +0000",
            "timeEpoch": 1_795_256_100_000u64
        },
        "body": body,
        "isBase64Encoded": false
    })
}

#[test]
#[ignore = "rewrites events/; run by hand after changing the token format or the sandbox data"]
fn regenerate_events() {
    let (app, _) = sandbox_app(&[]);
    let signer = app.signer();
    let data = generate(GenerateOptions::default());
    let mut keys: Vec<SyncKey> = data
        .contacts
        .iter()
        .map(|c| SyncKey::new(c.updated_at, c.contact.id.clone()))
        .collect();
    keys.sort();
    let t_run = micros(Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap());
    let account = "sandbox";
    let next = OffsetState {
        t_run,
        since: None,
        after: Some(Position::after(&keys[999])),
        cursor: None,
        page: 1,
        continues: false,
        tie: None,
    };
    let since = Position::after(&keys[1_099]);
    let checkpoint = signer.encode_checkpoint(
        account,
        &CheckpointState {
            after: Some(since.clone()),
        },
    );
    let inc_next = OffsetState {
        t_run,
        since: Some(since),
        after: Some(Position::after(&keys[1_999])),
        cursor: None,
        page: 1,
        continues: false,
        tie: None,
    };
    let forged = bridge_tests::sim::tamper(&signer.encode_offset(account, &next));
    let sample = &data.contacts[42].contact;
    let with_interactions = data
        .interactions
        .iter()
        .find(|i| i.contact_id == sample.id)
        .map(|_| sample)
        .expect("contact has interactions");
    let phone_owner = data
        .contacts
        .iter()
        .map(|c| &c.contact)
        .find(|c| c.phones.iter().any(|p| p.starts_with('(')) && data.interactions.iter().any(|i| i.contact_id == c.id))
        .expect("a contact with a national-format phone");
    let national_digits: String = phone_owner
        .phones
        .iter()
        .find(|p| p.starts_with('('))
        .unwrap()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();

    let files: Vec<(&str, &str, String)> = vec![
        ("contacts-initial-sync.json", "contacts", json!({"auth": {}, "meta": {}}).to_string()),
        ("contacts-next-page.json", "contacts", json!({"auth": {}, "meta": {"offset": signer.encode_offset(account, &next), "context": {"page": 1}}}).to_string()),
        ("contacts-incremental.json", "contacts", json!({"auth": {}, "meta": {"synchronization_checkpoint": checkpoint}}).to_string()),
        (
            "contacts-incremental-next-page.json",
            "contacts",
            json!({"auth": {}, "meta": {"synchronization_checkpoint": checkpoint, "offset": signer.encode_offset(account, &inc_next), "context": {"page": 1}}}).to_string(),
        ),
        ("contacts-incremental-legacy-checkpoint.json", "contacts", json!({"auth": {}, "meta": {"synchronization_checkpoint": "2025-06-01 00:00:00 UTC"}}).to_string()),
        ("interactions-by-external-id.json", "interactions", json!({"auth": {}, "meta": {"interaction_types": []}, "data": {"contact_external_id": with_interactions.id}}).to_string()),
        ("interactions-by-email.json", "interactions", json!({"auth": {}, "meta": {}, "data": {"contact_name": with_interactions.name, "contact_emails": [with_interactions.emails[0].to_uppercase()]}}).to_string()),
        ("interactions-by-phone.json", "interactions", json!({"auth": {}, "meta": {}, "data": {"contact_phones": [national_digits]}}).to_string()),
        (
            "interactions-several-types.json",
            "interactions",
            json!({"auth": {}, "meta": {"interaction_types": ["ticket", "call", "fax"]}, "data": {"contact_external_id": with_interactions.id, "contact_emails": with_interactions.emails, "contact_phones": with_interactions.phones}}).to_string(),
        ),
        ("interactions-name-only.json", "interactions", json!({"auth": {}, "data": {"contact_name": with_interactions.name}}).to_string()),
        ("bad-contacts-not-json.json", "contacts", "{\"auth\": {}, \"meta\": ".to_string()),
        ("bad-contacts-forged-offset.json", "contacts", json!({"auth": {}, "meta": {"offset": forged}}).to_string()),
        ("bad-contacts-auth-missing.json", "contacts", json!({"meta": {}}).to_string()),
        ("bad-interactions-no-data.json", "interactions", json!({"auth": {}, "meta": {"interaction_types": ["ticket"]}}).to_string()),
        ("bad-interactions-empty-data.json", "interactions", json!({"auth": {}, "data": {"contact_emails": [], "contact_phones": []}}).to_string()),
        ("agents.json", "contacts", json!({"auth": {}}).to_string()),
        ("bad-agents-auth-missing.json", "contacts", json!({}).to_string()),
        ("auth-validate.json", "interactions", json!({"auth": {}}).to_string()),
        ("bad-auth-validate-not-json.json", "interactions", "{\"auth\": ".to_string()),
    ];
    std::fs::create_dir_all(events_dir()).unwrap();
    for (file, function, body) in files {
        let text = serde_json::to_string_pretty(&event(&route_of(file, function), &body)).unwrap() + "\n";
        std::fs::write(events_dir().join(file), text).unwrap();
    }
}
