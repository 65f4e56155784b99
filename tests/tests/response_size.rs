//! Lambda refuses a function response over 6,291,456 bytes, counted as sent: the API Gateway proxy
//! envelope, its headers, and the body as an escaped JSON string, in which every `"` and `\` of the
//! contacts costs one byte more. A page that passes that limit fails the same way on every retry, and the
//! sync is stuck forever. These tests run the real `contacts` handler through `lambda_http`'s own adapter
//! and serializer, with contacts made of quotes and backslashes, at the largest cap the configuration
//! allows.

use std::sync::Arc;

use bridge::config::MAX_RESPONSE_BYTES;
use bridge::connectors::sandbox::{SandboxContact, SandboxData};
use bridge::talkdesk::Contact;
use bridge::App;
use bridge_tests::sandbox_app_with;
use chrono::{TimeZone, Utc};
use lambda_http::request::LambdaRequest;
use lambda_http::{Context, LambdaEvent};
use serde_json::Value;

/// Lambda's limit on a synchronous function's response.
const LAMBDA_RESPONSE_LIMIT: usize = 6_291_456;

/// `n` contacts whose every text field is full of characters JSON escapes, several sharing one instant.
fn hostile_data(n: usize) -> SandboxData {
    let nasty = "\"\\".repeat(300);
    let contacts = (0..n)
        .map(|i| SandboxContact {
            updated_at: Utc.timestamp_opt(1_700_000_000 + (i / 3) as i64, 0).unwrap(),
            contact: Contact {
                id: format!("{}", 10_000 + i),
                name: format!("{nasty} {i}"),
                company: Some(format!("{nasty}\n\t")),
                title: Some(nasty.clone()),
                emails: vec![format!("q{i}@example.com")],
                address: Some(format!("{nasty}\u{1}\u{2}")),
                ..Default::default()
            },
        })
        .collect();
    SandboxData {
        contacts,
        ..SandboxData::default()
    }
}

/// The API Gateway HTTP API event of a contacts request with `meta`.
fn event(meta: &Value) -> LambdaRequest {
    let body = serde_json::json!({"auth": {}, "meta": meta}).to_string();
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../events/contacts-initial-sync.json")).unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    v["headers"]["content-length"] = Value::String(body.len().to_string());
    v["body"] = Value::String(body);
    serde_json::from_value(v).unwrap()
}

/// Invokes the real handler through the functions' entry point and returns the bytes the runtime sends.
async fn invoke(app: &Arc<App>, meta: &Value) -> Vec<u8> {
    let req = bridge::lambda::request(LambdaEvent::new(event(meta), Context::default()));
    let response = contacts::handle(app, req).await.expect("the handler answers");
    serde_json::to_vec(&bridge::lambda::envelope(response)).expect("the runtime can serialize the response")
}

#[tokio::test(flavor = "current_thread")]
async fn quote_heavy_pages_at_the_largest_cap_stay_under_lambdas_response_limit_as_sent() {
    let (app, _) = sandbox_app_with(
        hostile_data(6_000),
        &[
            ("BRIDGE_PAGE_SIZE", "100000"),
            ("BRIDGE_MAX_RESPONSE_BYTES", &MAX_RESPONSE_BYTES.to_string()),
        ],
        50,
        std::time::Duration::ZERO,
    );
    let app = Arc::new(app);
    let mut meta = serde_json::json!({});
    let (mut pages, mut contacts, mut largest) = (0, 0, 0);
    loop {
        let sent = invoke(&app, &meta).await;
        let envelope: Value = serde_json::from_slice(&sent).unwrap();
        assert_eq!(envelope["statusCode"], 200, "{}", envelope["body"]);
        assert!(
            sent.len() < LAMBDA_RESPONSE_LIMIT,
            "page {pages}: the response as sent is {} bytes, over Lambda's {LAMBDA_RESPONSE_LIMIT}",
            sent.len()
        );
        largest = largest.max(sent.len());
        let body: Value = serde_json::from_str(envelope["body"].as_str().unwrap()).unwrap();
        contacts += body["contacts"].as_array().unwrap().len();
        pages += 1;
        match body.get("next_offset") {
            Some(offset) => meta = serde_json::json!({"offset": offset}),
            None => break,
        }
    }
    assert_eq!(contacts, 6_000, "every contact was sent");
    assert!(pages >= 2, "the cap, not the data, ended the pages");
    // The cap is what bounds the page: a full page comes close to it.
    assert!(largest > MAX_RESPONSE_BYTES * 9 / 10, "largest response {largest} bytes");
}
