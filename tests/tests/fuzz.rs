//! A seeded, structure-aware property fuzzer of everything that reads Talkdesk's bytes: the request
//! parsers, offset and checkpoint token decoding, and the whole `App::contacts` / `App::interactions` on
//! the sandbox.
//!
//! Inputs are arbitrary bytes, or valid requests (the bodies of `events/*.json` plus requests carrying
//! tokens the bridge itself issued) mutated at the byte, JSON and token level. Properties: nothing
//! panics; every answer is JSON with a 2xx or 4xx status, and every 4xx carries
//! `{"error": {"code", "message"}}`; a mutated token never decodes to a state other than its original's.
//!
//! `FUZZ_ITERATIONS` (default 20,000) and `FUZZ_SEED` choose the run; `make fuzz` runs 10⁶ inputs.
//! An input that fails is printed (JSON-escaped) with its seed and iteration, to become a regression test
//! below.

use std::panic::AssertUnwindSafe;

use bridge::sync::budget::Unlimited;
use bridge::sync::{CheckpointState, OffsetState};
use bridge::App;
use bridge_tests::sandbox_app_with;
use chrono::{TimeZone, Utc};
use futures::FutureExt;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

const ACCOUNT: &str = "sandbox";
const T0: i64 = 1_790_000_000;

fn app() -> App {
    let data = bridge::connectors::sandbox::generate(bridge::connectors::sandbox::GenerateOptions { contacts: 60, seed: 7 });
    let (app, _store) = sandbox_app_with(
        data,
        &[("BRIDGE_PAGE_SIZE", "7"), ("BRIDGE_MAX_INTERACTIONS", "5")],
        5,
        std::time::Duration::ZERO,
    );
    app
}

/// Request bodies the bridge must accept: the sample events, and pages that carry real tokens.
async fn corpus(app: &App) -> (Vec<Vec<u8>>, Vec<String>, Vec<String>) {
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../events");
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let event: Option<Value> = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok());
            if let Some(body) = event.as_ref().and_then(|e| e["body"].as_str()) {
                bodies.push(body.as_bytes().to_vec());
            }
        }
    }
    let mut offsets = Vec::new();
    let mut checkpoints = Vec::new();
    let now = Utc.timestamp_opt(T0, 0).unwrap();
    let mut meta = json!({});
    for _ in 0..3 {
        let body = json!({"auth": {}, "meta": meta}).to_string();
        bodies.push(body.clone().into_bytes());
        let r = app.contacts(body.as_bytes(), &Unlimited, now).await;
        let v: Value = serde_json::from_str(&r.body).expect("a sandbox page");
        let cp = v["synchronization_checkpoint"].as_str().unwrap_or_default().to_string();
        checkpoints.push(cp.clone());
        match v["next_offset"].as_str() {
            Some(o) => {
                offsets.push(o.to_string());
                meta = json!({"offset": o, "context": v["context"], "synchronization_checkpoint": cp});
            }
            None => meta = json!({"synchronization_checkpoint": cp}),
        }
    }
    checkpoints.push("2025-02-21T09:48:42Z".into());
    for data in [
        json!({"contact_external_id": "100545"}),
        json!({"contact_emails": ["a@example.com", "B@Example.com"], "contact_phones": ["+1 415 555 0100", "(415) 555-0101"]}),
        json!({"contact_name": "Someone", "contact_phones": ["00351912345678"]}),
    ] {
        bodies.push(
            json!({"auth": {}, "meta": {"interaction_types": ["ticket", "call"]}, "data": data})
                .to_string()
                .into_bytes(),
        );
    }
    (bodies, offsets, checkpoints)
}

// ------------------------------------------------------------------------------------------------
// Mutations

const INTERESTING_STRINGS: &[&str] = &[
    "",
    " ",
    "\u{0}",
    "null",
    "v1.",
    "v1..",
    "v2.e30.x",
    "v1.e30.AAAA",
    "9999-12-31T23:59:59Z",
    "0000-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "-1",
    "1e309",
    "+",
    "+0000000000000000000000",
    "\u{202e}\u{fe0f}é😀",
    "%00",
    "../../etc/passwd",
    "a@",
    "@b",
    "ticket",
];

fn random_scalar(rng: &mut SmallRng) -> Value {
    match rng.random_range(0..9) {
        0 => Value::Null,
        1 => json!(rng.random_bool(0.5)),
        2 => json!(rng.random::<i64>()),
        3 => json!(rng.random::<f64>() * 1e300),
        4 => json!(u64::MAX),
        5 => json!("x".repeat(rng.random_range(0..5_000))),
        6 => json!(rng.random_range(-1_000_000_000_000i64..1_000_000_000_000)),
        _ => json!(INTERESTING_STRINGS[rng.random_range(0..INTERESTING_STRINGS.len())]),
    }
}

fn random_value(rng: &mut SmallRng, depth: u32) -> Value {
    if depth == 0 || rng.random_bool(0.6) {
        return random_scalar(rng);
    }
    if rng.random_bool(0.5) {
        Value::Array((0..rng.random_range(0..4)).map(|_| random_value(rng, depth - 1)).collect())
    } else {
        let keys = [
            "auth",
            "meta",
            "data",
            "offset",
            "synchronization_checkpoint",
            "context",
            "interaction_types",
            "contact_emails",
            "contact_phones",
            "contact_external_id",
            "contact_name",
            "bridge_token",
        ];
        let mut m = Map::new();
        for _ in 0..rng.random_range(0..4) {
            m.insert(keys[rng.random_range(0..keys.len())].into(), random_value(rng, depth - 1));
        }
        Value::Object(m)
    }
}

/// Every value slot of a JSON document, as a path of keys and indexes.
fn slots(v: &Value, path: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    out.push(path.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                path.push(json!(k));
                slots(child, path, out);
                path.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                path.push(json!(i));
                slots(child, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn at_path<'a>(v: &'a mut Value, path: &[Value]) -> Option<&'a mut Value> {
    let mut cur = v;
    for step in path {
        cur = match step {
            Value::String(k) => cur.get_mut(k.as_str())?,
            Value::Number(i) => cur.get_mut(i.as_u64()? as usize)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn mutate_token(rng: &mut SmallRng, token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let alphabet: Vec<char> = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ "
        .chars()
        .collect();
    for _ in 0..rng.random_range(1..4) {
        if chars.is_empty() {
            chars.push('v');
        }
        let i = rng.random_range(0..chars.len());
        match rng.random_range(0..5) {
            0 => chars[i] = alphabet[rng.random_range(0..alphabet.len())],
            1 => {
                chars.remove(i);
            }
            2 => chars.insert(i, alphabet[rng.random_range(0..alphabet.len())]),
            3 => chars.truncate(i),
            _ => {
                let j = rng.random_range(0..chars.len());
                chars.swap(i, j);
            }
        }
    }
    chars.into_iter().collect()
}

/// A JSON-level mutation of a valid request: a slot replaced, removed, retyped or given a token.
fn mutate_json(rng: &mut SmallRng, mut v: Value, tokens: &[String]) -> Value {
    for _ in 0..rng.random_range(1..4) {
        let mut all = Vec::new();
        slots(&v, &mut Vec::new(), &mut all);
        let path = all[rng.random_range(0..all.len())].clone();
        let replacement = match rng.random_range(0..5) {
            0 | 1 => random_value(rng, 3),
            2 if !tokens.is_empty() => {
                let t = &tokens[rng.random_range(0..tokens.len())];
                json!(if rng.random_bool(0.5) { mutate_token(rng, t) } else { t.clone() })
            }
            3 => {
                // Remove the slot.
                if let Some((last, parent)) = path.split_last() {
                    if let Some(p) = at_path(&mut v, parent) {
                        match (p, last) {
                            (Value::Object(m), Value::String(k)) => {
                                m.remove(k);
                            }
                            (Value::Array(a), Value::Number(i)) => {
                                let i = i.as_u64().unwrap_or(0) as usize;
                                if i < a.len() {
                                    a.remove(i);
                                }
                            }
                            _ => {}
                        }
                    }
                }
                continue;
            }
            _ => {
                // Deep nesting.
                let mut deep = json!(1);
                for _ in 0..rng.random_range(1..200) {
                    deep = json!([deep]);
                }
                deep
            }
        };
        if let Some(slot) = at_path(&mut v, &path) {
            *slot = replacement;
        }
    }
    v
}

fn mutate_bytes(rng: &mut SmallRng, mut b: Vec<u8>) -> Vec<u8> {
    const SPECIAL: &[u8] = b"{}[]\",:\\0123456789tfnue.-+ \n\xff\xc3\x00";
    for _ in 0..rng.random_range(1..6) {
        if b.is_empty() {
            b.push(b'{');
        }
        let i = rng.random_range(0..b.len());
        match rng.random_range(0..6) {
            0 => b[i] ^= 1 << rng.random_range(0..8),
            1 => b[i] = SPECIAL[rng.random_range(0..SPECIAL.len())],
            2 => {
                b.remove(i);
            }
            3 => b.insert(i, SPECIAL[rng.random_range(0..SPECIAL.len())]),
            4 => b.truncate(i),
            _ => {
                let j = rng.random_range(i..b.len());
                let chunk = b[i..=j].to_vec();
                let at = rng.random_range(0..b.len());
                b.splice(at..at, chunk);
            }
        }
    }
    b
}

fn arbitrary_bytes(rng: &mut SmallRng) -> Vec<u8> {
    let len = rng.random_range(0..256);
    if rng.random_bool(0.5) {
        (0..len).map(|_| rng.random()).collect()
    } else {
        const JSONISH: &[u8] = b"{}[]\":,auth meta data offset 0123456789 null true \\u0000 e+-.";
        (0..len).map(|_| JSONISH[rng.random_range(0..JSONISH.len())]).collect()
    }
}

/// One input from the seeded stream.
fn input(rng: &mut SmallRng, bodies: &[Vec<u8>], tokens: &[String]) -> Vec<u8> {
    match rng.random_range(0..10) {
        0 | 1 => arbitrary_bytes(rng),
        2..=4 => {
            let base = bodies[rng.random_range(0..bodies.len())].clone();
            mutate_bytes(rng, base)
        }
        _ => {
            let base = &bodies[rng.random_range(0..bodies.len())];
            match serde_json::from_slice::<Value>(base) {
                Ok(v) => {
                    let m = mutate_json(rng, v, tokens);
                    let mut out = serde_json::to_vec(&m).unwrap_or_default();
                    if rng.random_bool(0.1) {
                        out = mutate_bytes(rng, out);
                    }
                    out
                }
                Err(_) => mutate_bytes(rng, base.clone()),
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Properties

fn check_response(what: &str, r: &bridge::error::ApiResponse) -> Result<(), String> {
    if !(200..300).contains(&r.status) && !(400..500).contains(&r.status) {
        return Err(format!("{what}: status {} ({})", r.status, r.body));
    }
    let v: Value = serde_json::from_str(&r.body).map_err(|e| format!("{what}: body is not JSON ({e}): {}", r.body))?;
    if r.status >= 400 && !(v["error"]["code"].is_string() && v["error"]["message"].is_string()) {
        return Err(format!("{what}: {} without an error body: {}", r.status, r.body));
    }
    Ok(())
}

/// Runs every target on one input; `Err` names the property that failed.
async fn check(app: &App, bytes: &[u8]) -> Result<(), String> {
    let _ = bridge::talkdesk::parse_contacts_request(bytes);
    let _ = bridge::talkdesk::parse_interactions_request(bytes);
    if let Ok(s) = std::str::from_utf8(bytes) {
        let _ = app.signer().decode_offset(ACCOUNT, s);
        let _ = app.signer().decode_checkpoint(ACCOUNT, s);
    }
    let now = Utc.timestamp_opt(T0, 0).unwrap();
    check_response("contacts", &app.contacts(bytes, &Unlimited, now).await)?;
    check_response("interactions", &app.interactions(bytes).await)?;
    Ok(())
}

/// A mutated token decodes to its original state or not at all.
fn check_token(app: &App, rng: &mut SmallRng, offsets: &[String], checkpoints: &[String]) -> Result<(), String> {
    let s = app.signer();
    if let Some(o) = offsets.get(rng.random_range(0..offsets.len().max(1))) {
        let original: OffsetState = s.decode_offset(ACCOUNT, o).map_err(|e| e.to_string())?;
        let m = mutate_token(rng, o);
        if let Ok(state) = s.decode_offset(ACCOUNT, &m) {
            if state != original {
                return Err(format!("forged offset {m:?} decoded to {state:?}"));
            }
        }
        if s.decode_offset("another-account", o).is_ok() {
            return Err("an offset decoded for another account".into());
        }
    }
    let c = &checkpoints[rng.random_range(0..checkpoints.len())];
    if c.starts_with("v1.") {
        let original: CheckpointState = s.decode_checkpoint(ACCOUNT, c).map_err(|e| e.to_string())?;
        let m = mutate_token(rng, c);
        if m.starts_with("v1.") {
            if let Ok(state) = s.decode_checkpoint(ACCOUNT, &m) {
                if state != original {
                    return Err(format!("forged checkpoint {m:?} decoded to {state:?}"));
                }
            }
        }
    }
    Ok(())
}

async fn fuzz(iterations: u64, seed: u64) -> (u64, u64) {
    let app = app();
    let (bodies, offsets, checkpoints) = corpus(&app).await;
    assert!(bodies.len() >= 10 && !offsets.is_empty(), "the seed corpus is built");
    let tokens: Vec<String> = offsets.iter().chain(&checkpoints).cloned().collect();
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut accepted = 0u64;
    for i in 0..iterations {
        let bytes = input(&mut rng, &bodies, &tokens);
        let outcome = AssertUnwindSafe(check(&app, &bytes)).catch_unwind().await;
        let failure = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(property)) => Some(property),
            Err(_) => Some("panicked".to_string()),
        };
        if let Some(why) = failure {
            panic!(
                "fuzz seed {seed} iteration {i}: {why}\ninput: {}",
                serde_json::to_string(&String::from_utf8_lossy(&bytes)).unwrap_or_default()
            );
        }
        if let Err(why) = check_token(&app, &mut rng, &offsets, &checkpoints) {
            panic!("fuzz seed {seed} iteration {i}: {why}");
        }
        if bridge::talkdesk::parse_contacts_request(&bytes).is_ok() || bridge::talkdesk::parse_interactions_request(&bytes).is_ok() {
            accepted += 1;
        }
    }
    (iterations, accepted)
}

#[tokio::test]
async fn no_input_panics_and_every_answer_is_json_with_a_2xx_or_a_4xx_error_body() {
    let iterations: u64 = std::env::var("FUZZ_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let seed: u64 = std::env::var("FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0xf022);
    let started = std::time::Instant::now();
    let (n, accepted) = fuzz(iterations, seed).await;
    println!(
        "fuzz: {n} inputs (seed {seed}), {accepted} parsed as a valid request, 0 failures, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(accepted > 0, "the mutations still reach past the parser");
}
