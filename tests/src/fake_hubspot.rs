//! A fake HubSpot CRM API on 127.0.0.1, strict where the bridge depends on it. Shapes follow HubSpot's
//! documented examples (`external-apis.md` §2); what is not documented is marked UNVERIFIED.
//!
//! - `POST /crm/v3/objects/contacts/search`: `filterGroups` (at most 5 groups of at most 6 filters, 18 in
//!   all: a 400 `VALIDATION_ERROR` beyond, as the docs' limits say; the message text is UNVERIFIED),
//!   operators `EQ`, `NEQ`, `GT`, `GTE`, `LT`, `LTE`, `CONTAINS_TOKEN` with a string `value` (dates as epoch
//!   milliseconds) and `IN` with a `values` list of strings, which matches a property's **whole** value
//!   (HubSpot: "is included in the specified values", and no word on looking inside a list; so `IN` on
//!   `hs_additional_emails`, a `;`-separated list, matches only a contact whose list is exactly one listed
//!   value: the strict reading).
//!   `EQ` on `hs_additional_emails` matches a contact holding the value as any one of its addresses (a
//!   HubSpot maintainer: github.com/HubSpot/hubspot-api-nodejs/issues/24), `NEQ` one holding it as none.
//!   At most **one** sort (400 for two); `limit` at most 200 (400 beyond);
//!   `after` an integer offset, and the **10,000-result cap**: a page reaching past the 10,000th result is
//!   a 400 (HubSpot's body shape; its exact message is UNVERIFIED). Sorted ascending on `lastmodifieddate`,
//!   records sharing a millisecond come in a **different random order on every request**; without a sort,
//!   in creation (id) order. Archived contacts never appear. Every property asked for is in the answer
//!   (`null` when unset), as strings.
//! - `GET /crm/v3/objects/contacts/{id}?properties=`: a merged-away id answers the primary contact
//!   (UNVERIFIED), an archived one 404.
//! - `POST /crm/v4/associations/contacts/{tickets|calls|emails}/batch/read`: `results` for ids with
//!   associations, and 207 with `errors` for the others.
//! - `POST /crm/v3/objects/{tickets|calls|emails}/batch/read`: at most 100 inputs.
//! - `GET /crm/v3/pipelines/tickets`, `GET /account-info/v3/details`.
//! - `GET /crm/v3/owners` (scope `crm.objects.owners.read`, denied with [`FakeHubSpot::deny_scope`]`("owners")`):
//!   `limit` (default 100; at most 500, an UNVERIFIED maximum: 400 beyond), `after` (an opaque cursor from
//!   `paging.next.after`; any other is a 400), `archived` (default `false`: live owners only; `true`:
//!   archived ones only), owners in id order with `id`, `email`, `type` (`PERSON` / `QUEUE`), `firstName`,
//!   `lastName`, `userId`, `createdAt`, `updatedAt`, `archived`, `teams`.
//! - Auth: `Authorization: Bearer` [`ACCESS_TOKEN`], else 401 `INVALID_AUTHENTICATION`. Object types left
//!   out of the token's scopes ([`FakeHubSpot::deny_scope`]) answer 403 `MISSING_SCOPES`.
//! - Rate limits, per account: search at most N requests per second (fixed one-second windows; headers
//!   `X-HubSpot-RateLimit-Secondly` / `-Secondly-Remaining`; 429 `policyName: SECONDLY`); every other
//!   endpoint a rolling ten-second window (`X-HubSpot-RateLimit-Max`, `-Remaining`,
//!   `-Interval-Milliseconds: 10000`; 429 `TEN_SECONDLY_ROLLING`); a daily count (`X-HubSpot-RateLimit-Daily`,
//!   `-Daily-Remaining`; 429 `DAILY`, "You have reached your daily limit."). No 429 carries `Retry-After`
//!   (whether HubSpot sends one is UNVERIFIED; the bridge must cope without).
//! - Injected faults ([`Fault`]) and a hook run before every contact search (changes between pages).
//! - A gate ([`FakeHubSpot::gate`]): requests to some paths are held until a number of them have arrived,
//!   which proves that the bridge sent them at once (a bridge sending one after another never opens it).
//!
//! Every request is recorded (method, path, JSON body, `Authorization`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Router;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

pub use crate::fake_zendesk::Fault;

/// The private app token the fake accepts.
pub const ACCESS_TOKEN: &str = "pat-na1-fake-hubspot-token";
/// The portal (Hub ID) the fake's account has.
pub const PORTAL_ID: u64 = 2_519_445;
/// A token key for apps on the fake.
pub const TEST_TOKEN_KEY: &str = "fake-hubspot-test-token-key-0123456789";
/// HubSpot's result cap per query.
pub const RESULT_CAP: usize = 10_000;

/// `auth` for Talkdesk requests that the fake accepts.
pub fn auth_json() -> Value {
    json!({"access_token": ACCESS_TOKEN, "portal_id": PORTAL_ID.to_string()})
}

/// The pairs of an app on `BRIDGE_CONNECTOR=hubspot` against a fake at `base_url`.
pub fn app_pairs(base_url: &str) -> Vec<(String, String)> {
    vec![
        ("BRIDGE_CONNECTOR".into(), "hubspot".into()),
        ("BRIDGE_TOKEN_KEY".into(), TEST_TOKEN_KEY.into()),
        ("HUBSPOT_BASE_URL".into(), base_url.into()),
    ]
}

/// An app on `BRIDGE_CONNECTOR=hubspot` against `fake`, with the extra pairs.
pub fn app_on(fake: &FakeHubSpot, extra: &[(&str, &str)]) -> bridge::App {
    let pairs = app_pairs(&fake.base_url());
    let mut refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    refs.extend_from_slice(extra);
    let config = crate::config(&refs);
    let connector = bridge::connectors::build(&config).expect("hubspot connector builds");
    bridge::App::new(config, connector).expect("hubspot app builds")
}

/// One contact.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeContact {
    pub id: u64,
    /// Property values as HubSpot stores them (strings).
    pub props: BTreeMap<String, String>,
    pub created_ms: i64,
    /// `lastmodifieddate`, epoch milliseconds.
    pub updated_ms: i64,
    pub archived: bool,
    /// Set when merged into another contact (and then archived).
    pub merged_into: Option<u64>,
}

impl FakeContact {
    pub fn new(id: u64, first: &str, last: &str, updated_ms: i64) -> Self {
        let mut props = BTreeMap::new();
        props.insert("firstname".into(), first.into());
        props.insert("lastname".into(), last.into());
        FakeContact {
            id,
            props,
            created_ms: updated_ms,
            updated_ms,
            archived: false,
            merged_into: None,
        }
    }

    pub fn with(mut self, prop: &str, value: &str) -> Self {
        self.props.insert(prop.into(), value.into());
        self
    }

    /// A property's value as search and read answer it (calculated ones included).
    pub fn value(&self, prop: &str) -> Option<String> {
        match prop {
            "hs_object_id" => Some(self.id.to_string()),
            "lastmodifieddate" => Some(iso(self.updated_ms)),
            "createdate" => Some(iso(self.created_ms)),
            "hs_searchable_calculated_phone_number" => self.props.get("phone").and_then(|p| national(p)),
            "hs_searchable_calculated_mobile_number" => self.props.get("mobilephone").and_then(|p| national(p)),
            other => self.props.get(other).cloned(),
        }
    }

    fn to_json(&self, asked: &[String]) -> Value {
        let mut props = Map::new();
        for p in ["createdate", "hs_object_id", "lastmodifieddate"]
            .iter()
            .map(|s| s.to_string())
            .chain(asked.iter().cloned())
        {
            props.insert(p.clone(), self.value(&p).map_or(Value::Null, Value::String));
        }
        json!({
            "id": self.id.to_string(),
            "properties": props,
            "createdAt": iso(self.created_ms),
            "updatedAt": iso(self.updated_ms),
            "archived": self.archived,
        })
    }
}

/// A phone's national number, as HubSpot's calculated search properties hold it (no country code).
fn national(raw: &str) -> Option<String> {
    let region = bridge::phone::parse_region("US")?;
    bridge::phone::to_e164(raw, region).and_then(|e| bridge::phone::national_number(&e))
}

/// A ticket or a call.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeObject {
    pub id: u64,
    pub props: BTreeMap<String, String>,
    pub updated_ms: i64,
}

impl FakeObject {
    fn to_json(&self, asked: &[String], modified: &str) -> Value {
        let mut props = Map::new();
        props.insert("hs_object_id".into(), json!(self.id.to_string()));
        props.insert(modified.into(), json!(iso(self.updated_ms)));
        for p in asked {
            if p == modified || p == "hs_object_id" {
                continue;
            }
            props.insert(p.clone(), self.props.get(p).map_or(Value::Null, |v| json!(v)));
        }
        json!({"id": self.id.to_string(), "properties": props, "createdAt": iso(self.updated_ms), "updatedAt": iso(self.updated_ms), "archived": false})
    }
}

/// An owner (a HubSpot user, or a queue).
#[derive(Debug, Clone, PartialEq)]
pub struct FakeOwner {
    pub id: u64,
    pub email: Option<String>,
    pub first_name: String,
    pub last_name: String,
    /// `PERSON` or `QUEUE`.
    pub kind: String,
    pub archived: bool,
}

impl FakeOwner {
    pub fn person(id: u64, first: &str, last: &str, email: &str) -> Self {
        FakeOwner {
            id,
            email: Some(email.into()),
            first_name: first.into(),
            last_name: last.into(),
            kind: "PERSON".into(),
            archived: false,
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "id": self.id.to_string(), "email": self.email, "type": self.kind, "firstName": self.first_name,
            "lastName": self.last_name, "userId": self.id + 9_000_000, "userIdIncludingInactive": self.id + 9_000_000,
            "createdAt": iso(1_577_000_000_000), "updatedAt": iso(1_577_000_000_000), "archived": self.archived,
            "teams": [{"id": "178588", "name": "Support", "primary": true}]
        })
    }
}

/// A ticket pipeline stage.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeStage {
    pub id: String,
    pub label: String,
    /// `OPEN` or `CLOSED`.
    pub ticket_state: String,
}

/// The account's data.
#[derive(Debug, Clone, Default)]
pub struct FakeData {
    contacts: BTreeMap<u64, FakeContact>,
    /// Live contacts by `(lastmodifieddate, id)`.
    index: BTreeSet<(i64, u64)>,
    pub tickets: BTreeMap<u64, FakeObject>,
    pub calls: BTreeMap<u64, FakeObject>,
    /// Email engagements.
    pub emails: BTreeMap<u64, FakeObject>,
    /// Contact id to associated ticket ids, call ids and email ids.
    pub ticket_links: BTreeMap<u64, Vec<u64>>,
    pub call_links: BTreeMap<u64, Vec<u64>>,
    pub email_links: BTreeMap<u64, Vec<u64>>,
    /// The account's owners, by id.
    pub owners: BTreeMap<u64, FakeOwner>,
    /// Pipeline id to stages.
    pub pipelines: BTreeMap<String, Vec<FakeStage>>,
    /// The account's offset from UTC (`utcOffsetMilliseconds`).
    pub utc_offset_ms: i64,
}

impl FakeData {
    pub fn add_contact(&mut self, c: FakeContact) {
        if let Some(old) = self.contacts.get(&c.id) {
            self.index.remove(&(old.updated_ms, old.id));
        }
        if !c.archived {
            self.index.insert((c.updated_ms, c.id));
        }
        self.contacts.insert(c.id, c);
    }

    pub fn contact(&self, id: u64) -> Option<&FakeContact> {
        self.contacts.get(&id)
    }

    pub fn contacts(&self) -> impl Iterator<Item = &FakeContact> {
        self.contacts.values()
    }

    /// Live (not archived) contacts.
    pub fn live(&self) -> impl Iterator<Item = &FakeContact> {
        self.contacts.values().filter(|c| !c.archived)
    }

    pub fn next_id(&self) -> u64 {
        self.contacts.keys().next_back().map_or(1, |k| k + 1)
    }

    /// Changes a contact and sets its `lastmodifieddate` to `at_ms`; false when it does not exist.
    pub fn update(&mut self, id: u64, at_ms: i64, change: impl FnOnce(&mut FakeContact)) -> bool {
        let Some(mut c) = self.contacts.get(&id).cloned() else {
            return false;
        };
        change(&mut c);
        c.updated_ms = at_ms;
        self.add_contact(c);
        true
    }

    /// Archives a contact (it leaves every search).
    pub fn archive(&mut self, id: u64, at_ms: i64) {
        self.update(id, at_ms, |c| c.archived = true);
    }

    /// Merges `secondary` into `primary` as HubSpot does: the secondary is archived, the primary gets its
    /// emails in `hs_additional_emails`, its associations, and a new modification date.
    pub fn merge(&mut self, primary: u64, secondary: u64, at_ms: i64) {
        let Some(sec) = self.contacts.get(&secondary).cloned() else {
            return;
        };
        let emails: Vec<String> = sec
            .props
            .get("email")
            .cloned()
            .into_iter()
            .chain(
                sec.props
                    .get("hs_additional_emails")
                    .into_iter()
                    .flat_map(|s| s.split(';').map(String::from)),
            )
            .collect();
        self.update(secondary, at_ms, |c| {
            c.archived = true;
            c.merged_into = Some(primary);
        });
        self.update(primary, at_ms, |c| {
            let mut extra: Vec<String> = c
                .props
                .get("hs_additional_emails")
                .map(|s| s.split(';').map(String::from).collect())
                .unwrap_or_default();
            extra.extend(emails);
            c.props.insert("hs_additional_emails".into(), extra.join(";"));
            let mut merged: Vec<String> = c.props.get("hs_merged_object_ids").map(|s| vec![s.clone()]).unwrap_or_default();
            merged.push(secondary.to_string());
            c.props.insert("hs_merged_object_ids".into(), merged.join(";"));
        });
        for links in [&mut self.ticket_links, &mut self.call_links, &mut self.email_links] {
            if let Some(moved) = links.remove(&secondary) {
                links.entry(primary).or_default().extend(moved);
            }
        }
    }

    /// The default pipeline of a fresh account: New, Waiting on contact, Waiting on us (open), Closed.
    pub fn default_pipelines(&mut self) {
        let stage = |id: &str, label: &str, state: &str| FakeStage {
            id: id.into(),
            label: label.into(),
            ticket_state: state.into(),
        };
        self.pipelines.insert(
            "0".into(),
            vec![
                stage("1", "New", "OPEN"),
                stage("2", "Waiting on contact", "OPEN"),
                stage("3", "Waiting on us", "OPEN"),
                stage("4", "Closed", "CLOSED"),
            ],
        );
    }
}

/// Which limit a 429 answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    Secondly,
    TenSecondly,
    Daily,
}

/// The rate limits of the account.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Search requests per second (HubSpot: 5); `None`: no limit.
    pub search_per_second: Option<u32>,
    /// Other requests per rolling ten seconds (HubSpot: 100 to 250 by plan); `None`: no limit.
    pub per_ten_seconds: Option<u32>,
    /// Requests per day (HubSpot: 250,000 to 1,000,000); `None`: no limit.
    pub daily: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            search_per_second: Some(5),
            per_ten_seconds: Some(190),
            daily: None,
        }
    }
}

/// One request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: Value,
    pub authorization: Option<String>,
}

type SearchHook = Box<dyn FnMut(&mut FakeData, usize) + Send>;

struct Inner {
    data: FakeData,
    faults: VecDeque<(Option<String>, Fault)>,
    /// Served to every request whose JSON body contains the text (one identifier's search).
    body_faults: Vec<(String, Fault)>,
    requests: Vec<RecordedRequest>,
    limits: Limits,
    second: (Option<Instant>, u32),
    rolling: VecDeque<Instant>,
    day_used: u64,
    hits: Vec<LimitHit>,
    denied: BTreeSet<String>,
    search_hook: Option<SearchHook>,
    searches: usize,
    latency: Duration,
    rng: SmallRng,
}

/// How long a gated request waits for the others before it is answered anyway (and the gate counts as
/// never opened).
const GATE_WAIT: Duration = Duration::from_secs(3);

/// Requests whose path starts with one of `prefixes` wait until `n` of them have arrived.
struct Gate {
    prefixes: Vec<String>,
    n: usize,
    arrived: tokio::sync::watch::Sender<usize>,
    timed_out: bool,
}

struct Shared {
    inner: Mutex<Inner>,
    gate: Mutex<Option<Gate>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running fake; stops when dropped.
pub struct FakeHubSpot {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for FakeHubSpot {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl FakeHubSpot {
    /// Serves `data` on an ephemeral port of 127.0.0.1, with HubSpot's default limits.
    pub async fn start(data: FakeData) -> std::io::Result<FakeHubSpot> {
        FakeHubSpot::start_on(data, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Serves `data` on `addr` (TCP_NODELAY set on every connection).
    pub async fn start_on(data: FakeData, addr: SocketAddr) -> std::io::Result<FakeHubSpot> {
        use axum::serve::ListenerExt;
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                data,
                faults: VecDeque::new(),
                body_faults: vec![],
                requests: vec![],
                limits: Limits::default(),
                second: (None, 0),
                rolling: VecDeque::new(),
                day_used: 0,
                hits: vec![],
                denied: BTreeSet::new(),
                search_hook: None,
                searches: 0,
                latency: Duration::ZERO,
                rng: SmallRng::seed_from_u64(0x4855_4253),
            }),
            gate: Mutex::new(None),
        });
        let router = Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(FakeHubSpot {
            addr,
            shared,
            stop: Some(tx),
        })
    }

    /// What to set `HUBSPOT_BASE_URL` to.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn with_data<R>(&self, f: impl FnOnce(&mut FakeData) -> R) -> R {
        f(&mut self.shared.lock().data)
    }

    /// Runs before every contact search (with the number of searches so far): changes between pages.
    pub fn on_search(&self, hook: impl FnMut(&mut FakeData, usize) + Send + 'static) {
        self.shared.lock().search_hook = Some(Box::new(hook));
    }

    pub fn clear_search_hook(&self) {
        self.shared.lock().search_hook = None;
    }

    pub fn set_limits(&self, limits: Limits) {
        let mut inner = self.shared.lock();
        inner.limits = limits;
        inner.second = (None, 0);
        inner.rolling.clear();
        inner.day_used = 0;
    }

    /// 429s served so far, by limit.
    pub fn limit_hits(&self) -> Vec<LimitHit> {
        self.shared.lock().hits.clone()
    }

    /// Leaves `object_type` (`contacts`, `tickets`, `calls`, `emails`, `owners`) out of the token's scopes.
    pub fn deny_scope(&self, object_type: &str) {
        self.shared.lock().denied.insert(object_type.to_string());
    }

    /// Serves `fault` to the next `n` requests whose path starts with `path_prefix` (any path: `""`).
    pub fn fail_next_on(&self, path_prefix: &str, n: usize, fault: Fault) {
        let mut inner = self.shared.lock();
        for _ in 0..n {
            inner.faults.push_back((Some(path_prefix.to_string()), fault.clone()));
        }
    }

    /// Serves `fault` to every request whose JSON body contains `text` (e.g. one identifier's search),
    /// until [`FakeHubSpot::clear_faults`].
    pub fn fail_bodies_with(&self, text: &str, fault: Fault) {
        self.shared.lock().body_faults.push((text.to_string(), fault));
    }

    pub fn clear_faults(&self) {
        let mut inner = self.shared.lock();
        inner.faults.clear();
        inner.body_faults.clear();
    }

    pub fn pending_faults(&self) -> usize {
        self.shared.lock().faults.len()
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    pub fn requests_to(&self, path_prefix: &str) -> Vec<RecordedRequest> {
        self.requests().into_iter().filter(|r| r.path.starts_with(path_prefix)).collect()
    }

    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    /// Holds every request whose path starts with one of `prefixes` until `n` of them have arrived (at most
    /// [`GATE_WAIT`] each); later ones pass at once. Replaces any earlier gate.
    pub fn gate(&self, prefixes: &[&str], n: usize) {
        let (arrived, _) = tokio::sync::watch::channel(0usize);
        *self.shared.gate.lock().unwrap_or_else(|p| p.into_inner()) = Some(Gate {
            prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
            n,
            arrived,
            timed_out: false,
        });
    }

    /// Whether the gate's `n` requests all arrived while the first of them waited: they were in flight
    /// together.
    pub fn gate_opened(&self) -> bool {
        let gate = self.shared.gate.lock().unwrap_or_else(|p| p.into_inner());
        gate.as_ref().is_some_and(|g| !g.timed_out && *g.arrived.borrow() >= g.n)
    }

    /// Delays every answer by `latency` (the round trip to a real HubSpot).
    pub fn set_latency(&self, latency: Duration) {
        self.shared.lock().latency = latency;
    }
}

/// A 429 as HubSpot sends it (the body of its usage guidelines), without `Retry-After`.
pub fn rate_limited(hit: LimitHit) -> Fault {
    let (policy, what) = match hit {
        LimitHit::Secondly => ("SECONDLY", "secondly"),
        LimitHit::TenSecondly => ("TEN_SECONDLY_ROLLING", "ten_secondly_rolling"),
        LimitHit::Daily => ("DAILY", "daily"),
    };
    Fault::Respond {
        status: 429,
        content_type: "application/json;charset=utf-8",
        body: json!({
            "status": "error", "message": format!("You have reached your {what} limit."), "errorType": "RATE_LIMIT",
            "correlationId": "4bd58b3a-04a4-4b1a-a7ea-2b2a5b8c2e11", "policyName": policy, "requestId": "d2a1d3c8e2c5f0a1"
        })
        .to_string(),
        retry_after: None,
    }
}

/// A HubSpot error body (`status`, `message`, `correlationId`, `category`).
pub fn hubspot_error(status: u16, category: &str, message: &str) -> Fault {
    Fault::Respond {
        status,
        content_type: "application/json;charset=utf-8",
        body: error_body(category, message).to_string(),
        retry_after: None,
    }
}

fn error_body(category: &str, message: &str) -> Value {
    json!({"status": "error", "message": message, "correlationId": "a1b2c3d4-0000-4000-8000-000000000000", "category": category})
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn respond(status: u16, body: Value) -> Response {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json;charset=utf-8"));
    r
}

fn error(status: u16, category: &str, message: &str) -> Response {
    respond(status, error_body(category, message))
}

fn set(r: &mut Response, name: &'static str, value: impl ToString) {
    if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
        r.headers_mut().insert(name, v);
    }
}

fn fault_response(f: Fault) -> Option<Response> {
    match f {
        Fault::Respond {
            status,
            content_type,
            body,
            retry_after,
        } => {
            let mut r = Response::new(Body::from(body));
            *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            if let Ok(v) = HeaderValue::from_str(content_type) {
                r.headers_mut().insert(header::CONTENT_TYPE, v);
            }
            if let Some(v) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            Some(r)
        }
        Fault::Redirect(location) => {
            let mut r = respond(302, json!({}));
            set(&mut r, "location", location);
            Some(r)
        }
        Fault::Reset | Fault::Truncated => {
            let fail =
                futures::stream::once(async { Err::<axum::body::Bytes, _>(std::io::Error::from(std::io::ErrorKind::ConnectionReset)) });
            Some(Response::new(Body::from_stream(fail)))
        }
        Fault::Delay(_) => None,
    }
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let bytes = axum::body::to_bytes(req.into_body(), 1 << 20).await.unwrap_or_default();
    let body: Value = if bytes.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(_) => return error(400, "VALIDATION_ERROR", "Invalid input JSON on line 1"),
        }
    };
    let recorded = RecordedRequest {
        method,
        path,
        query,
        body,
        authorization,
    };
    let (latency, fault) = {
        let mut inner = shared.lock();
        inner.requests.push(recorded.clone());
        let at = inner
            .faults
            .iter()
            .position(|(prefix, _)| prefix.as_deref().is_none_or(|p| recorded.path.starts_with(p)));
        let fault = at.and_then(|i| inner.faults.remove(i)).map(|(_, f)| f).or_else(|| {
            let text = recorded.body.to_string();
            inner
                .body_faults
                .iter()
                .find(|(t, _)| text.contains(t.as_str()))
                .map(|(_, f)| f.clone())
        });
        (inner.latency, fault)
    };
    let waiting = {
        let gate = shared.gate.lock().unwrap_or_else(|p| p.into_inner());
        gate.as_ref()
            .filter(|g| g.prefixes.iter().any(|p| recorded.path.starts_with(p.as_str())))
            .map(|g| {
                g.arrived.send_modify(|n| *n += 1);
                (g.arrived.subscribe(), g.n)
            })
    };
    if let Some((mut rx, n)) = waiting {
        if tokio::time::timeout(GATE_WAIT, rx.wait_for(|arrived| *arrived >= n)).await.is_err() {
            if let Some(g) = shared.gate.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
                g.timed_out = true;
            }
        }
    }
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(f) = fault {
        if let Fault::Delay(d) = f {
            tokio::time::sleep(d).await;
        } else if let Some(r) = fault_response(f) {
            return r;
        }
    }
    let mut inner = shared.lock();
    if recorded.authorization.as_deref() != Some(&format!("Bearer {ACCESS_TOKEN}")) {
        return error(
            401,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        );
    }
    let search = recorded.path.ends_with("/search");
    if let Some(hit) = take_limit(&mut inner, search) {
        inner.hits.push(hit);
        let mut r = fault_response(rate_limited(hit)).unwrap_or_else(|| respond(429, json!({})));
        limit_headers(&inner, &mut r, search);
        return r;
    }
    let mut r = route(&mut inner, &recorded);
    limit_headers(&inner, &mut r, search);
    r
}

/// Counts one request against the account's limits; the limit it breaks, if any.
fn take_limit(inner: &mut Inner, search: bool) -> Option<LimitHit> {
    let now = Instant::now();
    if let Some(daily) = inner.limits.daily {
        if inner.day_used >= daily {
            return Some(LimitHit::Daily);
        }
    }
    if search {
        if let Some(per) = inner.limits.search_per_second {
            match inner.second.0 {
                Some(start) if now.duration_since(start) < Duration::from_secs(1) => {}
                _ => inner.second = (Some(now), 0),
            }
            if inner.second.1 >= per {
                return Some(LimitHit::Secondly);
            }
            inner.second.1 += 1;
        }
    } else if let Some(per) = inner.limits.per_ten_seconds {
        while inner
            .rolling
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(10))
        {
            inner.rolling.pop_front();
        }
        if inner.rolling.len() as u32 >= per {
            return Some(LimitHit::TenSecondly);
        }
        inner.rolling.push_back(now);
    }
    inner.day_used += 1;
    None
}

fn limit_headers(inner: &Inner, r: &mut Response, search: bool) {
    if let Some(daily) = inner.limits.daily {
        set(r, "x-hubspot-ratelimit-daily", daily);
        set(r, "x-hubspot-ratelimit-daily-remaining", daily.saturating_sub(inner.day_used));
    }
    if search {
        if let Some(per) = inner.limits.search_per_second {
            set(r, "x-hubspot-ratelimit-secondly", per);
            set(r, "x-hubspot-ratelimit-secondly-remaining", per.saturating_sub(inner.second.1));
        }
    } else if let Some(per) = inner.limits.per_ten_seconds {
        set(r, "x-hubspot-ratelimit-max", per);
        set(
            r,
            "x-hubspot-ratelimit-remaining",
            (per as usize).saturating_sub(inner.rolling.len()),
        );
        set(r, "x-hubspot-ratelimit-interval-milliseconds", 10_000);
    }
}

fn route(inner: &mut Inner, req: &RecordedRequest) -> Response {
    let segments: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    match (req.method.as_str(), segments.as_slice()) {
        ("GET", ["account-info", "v3", "details"]) => respond(
            200,
            json!({
                "portalId": PORTAL_ID, "accountType": "STANDARD", "timeZone": "US/Eastern", "companyCurrency": "USD",
                "additionalCurrencies": [], "utcOffset": "-05:00", "utcOffsetMilliseconds": inner.data.utc_offset_ms,
                "uiDomain": "app.hubspot.com", "dataHostingLocation": "na1"
            }),
        ),
        ("POST" | "GET", ["crm", "v3", "objects", "contacts", ..]) if inner.denied.contains("contacts") => {
            missing_scopes("crm.objects.contacts.read")
        }
        ("POST", ["crm", "v3", "objects", "contacts", "search"]) => search(inner, &req.body),
        ("GET", ["crm", "v3", "objects", "contacts", id]) => read_contact(inner, id, &req.query),
        ("POST", ["crm", "v4", "associations", "contacts", to, "batch", "read"]) => associations(inner, to, &req.body),
        ("POST", ["crm", "v3", "objects", kind @ ("tickets" | "calls" | "emails"), "batch", "read"]) => batch_read(inner, kind, &req.body),
        ("GET", ["crm", "v3", "pipelines", "tickets"]) => pipelines(inner),
        ("GET", ["crm", "v3", "owners"]) => owners(inner, &req.query),
        _ => error(404, "OBJECT_NOT_FOUND", "resource not found"),
    }
}

fn validation(message: &str) -> Response {
    error(400, "VALIDATION_ERROR", message)
}

fn asked_properties(body: &Value) -> Vec<String> {
    body.get("properties")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
        .unwrap_or_default()
}

/// One search filter.
struct Filter {
    property: String,
    operator: String,
    value: String,
    /// `IN`'s list.
    values: Vec<String>,
}

impl Filter {
    fn matches(&self, c: &FakeContact) -> bool {
        if self.operator == "IN" {
            let Some(have) = c.value(&self.property) else {
                return false;
            };
            // The whole value: `a;b` is not matched by `a` (strict, see the module documentation).
            let have = have.trim().to_lowercase();
            return self.values.iter().any(|want| want.to_lowercase() == have);
        }
        if self.property == "hs_additional_emails" && matches!(self.operator.as_str(), "EQ" | "NEQ") {
            // One of the `;`-separated secondary addresses.
            let want = self.value.trim().to_lowercase();
            let held = c
                .value(&self.property)
                .is_some_and(|have| have.split(';').any(|v| v.trim().to_lowercase() == want));
            return held == (self.operator == "EQ");
        }
        // Dates and ids compare as numbers (dates given as epoch milliseconds), everything else as text.
        let number = match self.property.as_str() {
            "lastmodifieddate" => Some(c.updated_ms),
            "createdate" => Some(c.created_ms),
            "hs_object_id" => i64::try_from(c.id).ok(),
            _ => None,
        };
        let ord = match (number, self.value.parse::<i64>()) {
            (Some(a), Ok(b)) => a.cmp(&b),
            _ => {
                let Some(have) = c.value(&self.property) else {
                    return self.operator == "NEQ";
                };
                if self.operator == "CONTAINS_TOKEN" {
                    let want = self.value.to_lowercase();
                    return have
                        .to_lowercase()
                        .split(|c: char| c == ';' || c == ',' || c.is_whitespace())
                        .any(|t| t == want);
                }
                match (have.parse::<i64>(), self.value.parse::<i64>()) {
                    (Ok(a), Ok(b)) => a.cmp(&b),
                    _ => have.to_lowercase().cmp(&self.value.to_lowercase()),
                }
            }
        };
        match self.operator.as_str() {
            "EQ" => ord.is_eq(),
            "NEQ" => ord.is_ne(),
            "GT" => ord.is_gt(),
            "GTE" => ord.is_ge(),
            "LT" => ord.is_lt(),
            "LTE" => ord.is_le(),
            _ => false,
        }
    }

    /// The `lastmodifieddate` range this filter allows, in milliseconds.
    fn date_range(&self) -> Option<(i64, i64)> {
        if self.property != "lastmodifieddate" {
            return None;
        }
        let v: i64 = self.value.parse().ok()?;
        Some(match self.operator.as_str() {
            "EQ" => (v, v),
            "GT" => (v + 1, i64::MAX),
            "GTE" => (v, i64::MAX),
            "LT" => (i64::MIN, v - 1),
            "LTE" => (i64::MIN, v),
            _ => return None,
        })
    }
}

fn parse_groups(body: &Value) -> Result<Vec<Vec<Filter>>, &'static str> {
    let groups = body.get("filterGroups").and_then(Value::as_array).cloned().unwrap_or_default();
    if groups.len() > 5 {
        return Err("Too many filter groups: the maximum is 5");
    }
    let mut out = Vec::new();
    let mut total = 0;
    for g in groups {
        let filters = g.get("filters").and_then(Value::as_array).cloned().unwrap_or_default();
        if filters.len() > 6 {
            return Err("Too many filters in a filter group: the maximum is 6");
        }
        total += filters.len();
        let mut parsed = Vec::new();
        for f in filters {
            let text = |k: &str| f.get(k).and_then(Value::as_str).map(String::from);
            let (Some(property), Some(operator)) = (text("propertyName"), text("operator")) else {
                return Err("Each filter needs propertyName and operator");
            };
            if !["EQ", "NEQ", "GT", "GTE", "LT", "LTE", "CONTAINS_TOKEN", "IN"].contains(&operator.as_str()) {
                return Err("Unsupported operator");
            }
            if operator == "IN" {
                let values: Option<Vec<String>> = f
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().map(|v| v.as_str().map(String::from)).collect())
                    .unwrap_or(None);
                match values {
                    Some(values) if !values.is_empty() => parsed.push(Filter {
                        property,
                        operator,
                        value: String::new(),
                        values,
                    }),
                    _ => return Err("IN needs a non-empty `values` list of strings"),
                }
                continue;
            }
            let Some(value) = text("value") else {
                return Err("Filter values must be strings");
            };
            parsed.push(Filter {
                property,
                operator,
                value,
                values: vec![],
            });
        }
        out.push(parsed);
    }
    if total > 18 {
        return Err("Too many filters: the maximum is 18");
    }
    Ok(out)
}

fn search(inner: &mut Inner, body: &Value) -> Response {
    inner.searches += 1;
    let n = inner.searches;
    if let Some(hook) = inner.search_hook.as_mut() {
        hook(&mut inner.data, n);
    }
    let groups = match parse_groups(body) {
        Ok(g) => g,
        Err(problem) => return validation(problem),
    };
    let sorts = body.get("sorts").and_then(Value::as_array).cloned().unwrap_or_default();
    if sorts.len() > 1 {
        return validation("Only one sort is supported");
    }
    let sort = sorts
        .first()
        .map(|s| {
            (
                s.get("propertyName").and_then(Value::as_str).unwrap_or_default().to_string(),
                s.get("direction").and_then(Value::as_str).unwrap_or("ASCENDING") == "DESCENDING",
            )
        })
        .unwrap_or(("createdate".into(), false));
    let limit = match body.get("limit") {
        None => 10,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=200).contains(&n) => n as usize,
            _ => return validation("limit must be between 1 and 200"),
        },
    };
    let after = match body.get("after") {
        None | Some(Value::Null) => 0,
        Some(v) => match v.as_str().and_then(|s| s.parse::<usize>().ok()).or(v.as_u64().map(|n| n as usize)) {
            Some(n) => n,
            None => return validation("after must be formatted as an integer"),
        },
    };
    if after + limit > RESULT_CAP {
        // HubSpot: "Attempting to page beyond 10,000 will result in a 400 error" (message UNVERIFIED).
        return validation("Cannot page beyond 10000 results: narrow the search");
    }
    // Candidates: a `lastmodifieddate` range of the one filter group scans the index, else everything.
    let range = match groups.as_slice() {
        [one] => one
            .iter()
            .filter_map(Filter::date_range)
            .fold(None, |acc: Option<(i64, i64)>, (lo, hi)| {
                Some(acc.map_or((lo, hi), |(a, b)| (a.max(lo), b.min(hi))))
            }),
        _ => None,
    };
    let data = &inner.data;
    let matches = |c: &FakeContact| groups.is_empty() || groups.iter().any(|g| g.iter().all(|f| f.matches(c)));
    let candidates: Box<dyn Iterator<Item = &FakeContact>> = match range {
        Some((lo, hi)) if lo > hi => Box::new(std::iter::empty()),
        Some((lo, hi)) => Box::new(
            data.index
                .range((lo, 0)..=(hi, u64::MAX))
                .filter_map(|(_, id)| data.contacts.get(id)),
        ),
        None => Box::new(data.live()),
    };
    // Sorted ascending on the modification date over the index, only the window and the rest of its last
    // millisecond are kept (they are all that can be answered); `total` still counts every match.
    let streaming = range.is_some() && sort.0 == "lastmodifieddate" && !sort.1;
    let need = after + limit;
    let mut total = 0usize;
    let mut found: Vec<&FakeContact> = Vec::new();
    for c in candidates.filter(|c| !c.archived && matches(c)) {
        total += 1;
        if !streaming || found.len() < need || found.last().is_some_and(|l| l.updated_ms == c.updated_ms) {
            found.push(c);
        }
    }
    match (sort.0.as_str(), sort.1) {
        ("lastmodifieddate", desc) => {
            found.sort_by_key(|c| c.updated_ms);
            if desc {
                found.reverse();
            }
            // One sort rule: records of one millisecond come in any order, different on every request.
            let mut i = 0;
            while i < found.len() {
                let mut j = i + 1;
                while j < found.len() && found[j].updated_ms == found[i].updated_ms {
                    j += 1;
                }
                if j - i > 1 {
                    found[i..j].shuffle(&mut inner.rng);
                }
                i = j;
            }
        }
        (_, desc) => {
            found.sort_by_key(|c| c.id);
            if desc {
                found.reverse();
            }
        }
    }
    let asked = asked_properties(body);
    let page: Vec<Value> = found.iter().skip(after).take(limit).map(|c| c.to_json(&asked)).collect();
    let mut answer = json!({"total": total, "results": page});
    if after + limit < total {
        let next = (after + limit).to_string();
        answer["paging"] = json!({"next": {"after": next, "link": format!("?after={next}")}});
    }
    respond(200, answer)
}

fn read_contact(inner: &Inner, id: &str, query: &str) -> Response {
    let Some(mut c) = id.parse::<u64>().ok().and_then(|id| inner.data.contacts.get(&id)) else {
        return error(404, "OBJECT_NOT_FOUND", "resource not found");
    };
    // A merged-away id reads as the contact it was merged into (UNVERIFIED).
    if let Some(primary) = c.merged_into.and_then(|p| inner.data.contacts.get(&p)) {
        c = primary;
    }
    if c.archived {
        return error(404, "OBJECT_NOT_FOUND", "resource not found");
    }
    let asked: Vec<String> = query
        .split('&')
        .filter_map(|kv| kv.strip_prefix("properties="))
        .flat_map(|v| v.split("%2C").flat_map(|p| p.split(',')))
        .map(String::from)
        .collect();
    respond(200, c.to_json(&asked))
}

fn inputs(body: &Value) -> Vec<String> {
    body.get("inputs")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|i| i.get("id"))
                .filter_map(|v| v.as_str().map(String::from).or(v.as_u64().map(|n| n.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn associations(inner: &Inner, to: &str, body: &Value) -> Response {
    let (links, type_id) = match to {
        "tickets" => (&inner.data.ticket_links, 15),
        "calls" => (&inner.data.call_links, 193),
        "emails" => (&inner.data.email_links, 197),
        _ => return error(400, "VALIDATION_ERROR", "Unknown object type"),
    };
    if inner.denied.contains(to) {
        return missing_scopes(scope_of(to));
    }
    let ids = inputs(body);
    if ids.is_empty() || ids.len() > 1000 {
        return validation("inputs must hold 1 to 1000 ids");
    }
    let mut results = vec![];
    let mut errors = vec![];
    for id in ids {
        match id.parse::<u64>().ok().and_then(|n| links.get(&n)).filter(|l| !l.is_empty()) {
            Some(l) => {
                let to_list: Vec<Value> = l
                    .iter()
                    .map(|t| json!({"toObjectId": t, "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": null}]}))
                    .collect();
                results.push(json!({"from": {"id": id}, "to": to_list}));
            }
            None => errors.push(json!({
                "status": "error", "category": "OBJECT_NOT_FOUND", "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                "message": format!("No {to} is associated with contact {id}."), "context": {"fromObjectId": [id]}
            })),
        }
    }
    let status = if errors.is_empty() { 200 } else { 207 };
    let mut answer = json!({"status": "COMPLETE", "results": results, "startedAt": iso(0), "completedAt": iso(0)});
    if !errors.is_empty() {
        answer["numErrors"] = json!(errors.len());
        answer["errors"] = Value::Array(errors);
    }
    respond(status, answer)
}

/// The scope reading an object type needs.
fn scope_of(object_type: &str) -> &'static str {
    match object_type {
        "tickets" => "tickets",
        "emails" => "sales-email-read",
        _ => "crm.objects.contacts.read",
    }
}

/// HubSpot's 403 for a token without the scope (`category: MISSING_SCOPES`, the scopes in
/// `errors[].context`, as the spec's Error schema shows `{missingScopes=[scope1, scope2]}`; the exact
/// context key HubSpot uses is UNVERIFIED).
fn missing_scopes(what: &str) -> Response {
    respond(
        403,
        json!({
            "status": "error",
            "message": "This app hasn't been granted all required scopes to make this call. Read more about required scopes here: https://developers.hubspot.com/scopes.",
            "correlationId": "a1b2c3d4-0000-4000-8000-000000000000",
            "errors": [{"message": "One or more of the following scopes are required.", "context": {"requiredGranularScopes": [what]}}],
            "links": {"scopes": "https://developers.hubspot.com/scopes"},
            "category": "MISSING_SCOPES"
        }),
    )
}

fn batch_read(inner: &Inner, kind: &str, body: &Value) -> Response {
    if inner.denied.contains(kind) {
        return missing_scopes(scope_of(kind));
    }
    let ids = inputs(body);
    if ids.is_empty() || ids.len() > 100 {
        return validation("inputs must hold 1 to 100 ids");
    }
    let objects = match kind {
        "tickets" => &inner.data.tickets,
        "calls" => &inner.data.calls,
        _ => &inner.data.emails,
    };
    let modified = "hs_lastmodifieddate";
    let asked = asked_properties(body);
    let results: Vec<Value> = ids
        .iter()
        .filter_map(|id| id.parse::<u64>().ok().and_then(|n| objects.get(&n)))
        .map(|o| o.to_json(&asked, modified))
        .collect();
    respond(
        200,
        json!({"status": "COMPLETE", "results": results, "startedAt": iso(0), "completedAt": iso(0)}),
    )
}

fn pipelines(inner: &Inner) -> Response {
    let results: Vec<Value> = inner
        .data
        .pipelines
        .iter()
        .map(|(id, stages)| {
            let stages: Vec<Value> = stages
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    json!({"id": s.id, "label": s.label, "displayOrder": i, "archived": false,
                           "metadata": {"ticketState": s.ticket_state, "isClosed": (s.ticket_state == "CLOSED").to_string()}})
                })
                .collect();
            json!({"id": id, "label": if id == "0" { "Support Pipeline" } else { "Pipeline" }, "displayOrder": 0, "archived": false, "stages": stages})
        })
        .collect();
    respond(200, json!({"results": results}))
}

/// The cursor the fake gives for the owners after `id` (opaque to the bridge; its `=` must be
/// percent-encoded in a query).
fn owner_cursor(id: u64) -> String {
    format!("T{id}==")
}

/// A query value with its percent-encoding undone.
fn decoded(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn owners(inner: &Inner, query: &str) -> Response {
    if inner.denied.contains("owners") {
        return missing_scopes("crm.objects.owners.read");
    }
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| decoded(v))
    };
    let limit = match param("limit").map(|v| v.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if (1..=500).contains(&n) => n,
        Some(_) => return validation("limit must be an integer between 1 and 500"),
    };
    let archived = match param("archived").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return validation("archived must be true or false"),
    };
    let after = match param("after") {
        None => None,
        Some(c) => match c
            .strip_prefix('T')
            .and_then(|rest| rest.strip_suffix("=="))
            .and_then(|id| id.parse::<u64>().ok())
        {
            Some(id) => Some(id),
            None => return validation("Invalid `after` paging cursor"),
        },
    };
    let listed: Vec<&FakeOwner> = inner
        .data
        .owners
        .values()
        .filter(|o| o.archived == archived)
        .filter(|o| after.is_none_or(|a| o.id > a))
        .collect();
    let page: Vec<Value> = listed.iter().take(limit).map(|o| o.to_json()).collect();
    let mut answer = json!({"results": page});
    if listed.len() > limit {
        let next = owner_cursor(listed[limit - 1].id);
        let link = format!("https://api.hubapi.com/crm/v3/owners?after={}", next.replace('=', "%3D"));
        answer["paging"] = json!({"next": {"after": next, "link": link}});
    }
    respond(200, answer)
}

/// How much data [`generate`] makes.
#[derive(Debug, Clone, Copy)]
pub struct Generate {
    pub contacts: usize,
    /// Contacts sharing one millisecond (a bulk import), among `contacts`.
    pub tie: usize,
    pub seed: u64,
    /// The latest `lastmodifieddate` (epoch ms); contacts spread over the 30 days before it.
    pub latest_ms: i64,
}

const PRIORITIES: &[&str] = &["LOW", "MEDIUM", "HIGH", "URGENT", ""];
const CALL_STATUSES: &[&str] = &["COMPLETED", "NO_ANSWER", "BUSY", "IN_PROGRESS", "RINGING", "FAILED"];

/// A deterministic account: live contacts (some sharing milliseconds, one block of `tie` sharing one),
/// archived and merged ones, tickets and calls associated with most live contacts, the default pipeline.
pub fn generate(opts: Generate) -> FakeData {
    let mut rng = SmallRng::seed_from_u64(opts.seed);
    let mut data = FakeData::default();
    data.default_pipelines();
    data.utc_offset_ms = -5 * 3_600_000;
    let span = 30 * 86_400_000i64;
    let step = (span / opts.contacts.max(1) as i64).max(2);
    let mut ms = opts.latest_ms - span;
    let tie_at = opts.contacts / 3;
    let tie_ms = ms + step * tie_at as i64;
    let mut ticket_id = 1_000u64;
    let mut call_id = 50_000_000u64;
    for n in 0..opts.contacts as u64 {
        let in_tie = (n as usize) >= tie_at && (n as usize) < tie_at + opts.tie;
        let updated = if in_tie {
            tie_ms
        } else {
            if rng.random_range(0..4) != 0 {
                ms += rng.random_range(1..step);
            }
            if ms == tie_ms {
                ms += 1;
            }
            ms.min(opts.latest_ms)
        };
        // Ids are not in modification order.
        let id = 100 + n * 3 + rng.random_range(0..3);
        let mut c = FakeContact::new(id, &format!("Customer{n}"), "Example", updated)
            .with("email", &format!("customer{n}@example.com"))
            .with("company", &format!("Company {}", n % 97))
            .with("jobtitle", ["CTO", "Engineer", "Buyer"][(n % 3) as usize]);
        c.created_ms = updated - 86_400_000;
        if rng.random_bool(0.7) {
            c.props.insert("phone".into(), format!("+1 415 555 {:04}", n % 10_000));
        }
        if rng.random_bool(0.3) {
            c.props.insert("mobilephone".into(), format!("+44 20 7946 {:04}", n % 10_000));
        }
        if rng.random_bool(0.3) {
            c.props.insert("hs_additional_emails".into(), format!("c{n}.alt@work.example"));
        }
        if rng.random_bool(0.5) {
            c.props.insert("address".into(), format!("{n} Main St"));
            c.props.insert("city".into(), "Springfield".into());
            c.props.insert("country".into(), "United States".into());
        }
        if rng.random_bool(0.2) {
            c.props.insert("website".into(), format!("https://c{n}.example"));
            c.props.insert("twitterhandle".into(), format!("c{n}"));
        }
        if !in_tie && rng.random_range(0..50) == 0 {
            c.archived = true;
        }
        if !c.archived && rng.random_bool(0.8) {
            for _ in 0..rng.random_range(1..4) {
                ticket_id += rng.random_range(1..5);
                let mut props = BTreeMap::new();
                props.insert("subject".into(), format!("Question {ticket_id} from customer {n}"));
                props.insert("content".into(), format!("Hello,\n\nabout order {}.\n\nThanks", 5000 + ticket_id));
                props.insert("hs_pipeline".into(), "0".into());
                props.insert("hs_pipeline_stage".into(), ["1", "2", "3", "4"][rng.random_range(0..4)].into());
                props.insert(
                    "hs_ticket_priority".into(),
                    PRIORITIES[rng.random_range(0..PRIORITIES.len())].into(),
                );
                data.tickets.insert(
                    ticket_id,
                    FakeObject {
                        id: ticket_id,
                        props,
                        updated_ms: updated - rng.random_range(0..3_600_000),
                    },
                );
                data.ticket_links.entry(id).or_default().push(ticket_id);
            }
            for _ in 0..rng.random_range(0..3) {
                call_id += rng.random_range(1..5);
                let mut props = BTreeMap::new();
                props.insert("hs_call_title".into(), format!("Call with customer {n}"));
                props.insert("hs_call_body".into(), "<p>Discussed the <b>renewal</b></p>".into());
                props.insert(
                    "hs_call_status".into(),
                    CALL_STATUSES[rng.random_range(0..CALL_STATUSES.len())].into(),
                );
                let at = updated - rng.random_range(0..7_200_000);
                props.insert("hs_timestamp".into(), iso(at));
                data.calls.insert(
                    call_id,
                    FakeObject {
                        id: call_id,
                        props,
                        updated_ms: at,
                    },
                );
                data.call_links.entry(id).or_default().push(call_id);
            }
        }
        data.add_contact(c);
    }
    // A few merges: the secondary is archived, the primary moves to the latest instant.
    let live: Vec<u64> = data.live().map(|c| c.id).take(40).collect();
    for pair in live.chunks(2).take(5) {
        if let [primary, secondary] = pair {
            data.merge(*primary, *secondary, opts.latest_ms);
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_data_holds_the_tie_and_archived_and_merged_contacts() {
        let d = generate(Generate {
            contacts: 2_000,
            tie: 500,
            seed: 3,
            latest_ms: 1_800_000_000_000,
        });
        let mut per_ms: BTreeMap<i64, usize> = BTreeMap::new();
        for c in d.live() {
            *per_ms.entry(c.updated_ms).or_default() += 1;
        }
        assert!(per_ms.values().any(|n| *n >= 500));
        assert!(d.contacts().any(|c| c.archived && c.merged_into.is_none()));
        assert_eq!(d.contacts().filter(|c| c.merged_into.is_some()).count(), 5);
        assert_eq!(d.index.len(), d.live().count());
    }
}
