//! A fake Zendesk Support API on 127.0.0.1, faithful where the bridge depends on it.
//!
//! Payload shapes follow Zendesk's documented examples and the recorded responses cited in
//! `external-apis.md` §1:
//! - `GET /api/v2/incremental/users/cursor`: `start_time` (refused within the most recent minute) or
//!   `cursor`; `per_page` up to 1000; users in ascending `(updated_at, id)`; `after_cursor` is base64 of
//!   `"<ts>.0||<id>|"` (a keyset, so same-second users are split across pages safely); users changed within
//!   the last minute are not exported yet; `include=identities` sideloads identities and
//!   `include=organizations` the users' organizations (the endpoint takes the Users sideloads). "Purged"
//!   users take a place in the keyset but are never returned, which yields empty pages with
//!   `end_of_stream: false`. With [`FakeZendesk::set_export_rate_limit`] the export is rate limited per
//!   account as Zendesk's is: every answer carries
//!   `Zendesk-RateLimit-incremental-exports-cursor: total=N; remaining=R; resets=S` (whole seconds to the
//!   end of the fixed window), and a request past the limit gets 429 with `Retry-After` (whole seconds) and
//!   Zendesk's rate-limit body.
//! - `GET /api/v2/organizations/show_many?ids=` (at most 100 ids), `GET /api/v2/users/search?query=`
//!   (`email:` matches substrings and `phone:*digits` matches number endings, as loosely as Zendesk's
//!   search), `GET /api/v2/users/{id}/identities`, `GET /api/v2/users/{id}/tickets/requested` (cursor
//!   pagination, `sort=-updated_at`).
//! - `GET /api/v2/users/me` (the signed-in user: an admin, or an agent after `set_admin(false)`) and
//!   `GET /api/v2/users` with `role[]` filters and cursor pagination (`page[size]` at most 100,
//!   `page[after]`, `meta.has_more`/`after_cursor`, `links.next`; the cursor is base64 of
//!   `{"o":"id","v":<id>}`, as recorded for the users listing). Not verified against a live account: the
//!   anonymous `users/me` answer without credentials, and whether deleted users are listed.
//! - Errors: 401 `{"error":"Couldn't authenticate you"}`, 403 for the export when the credentials are
//!   not an admin's, 404 `RecordNotFound`, and injected faults: any status, HTML pages, malformed JSON,
//!   429/503 with `Retry-After`, redirects, slow answers (for timeouts), served to the next requests
//!   (optionally of one path) or to every request whose query holds a text (one identifier's search).
//!
//! The data lives behind [`FakeZendesk::with_data`] and may change between pages (an export hook runs
//! before every export request). Every request is recorded (method, `Host`, path, query, `Authorization`),
//! so tests can assert what was, or was not, sent.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Router;
use futures::StreamExt;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

/// Zendesk's API-token login the fake accepts by default.
pub const EMAIL: &str = "admin@acme.test";
pub const API_TOKEN: &str = "fake-api-token";
/// The OAuth token the fake accepts by default.
pub const ACCESS_TOKEN: &str = "fake-oauth-token";
/// The subdomain the fake's URLs use.
pub const SUBDOMAIN: &str = "acme";

/// A token key for apps on the fake (a real connector refuses to start without one).
pub const TEST_TOKEN_KEY: &str = "fake-zendesk-test-token-key-0123456789";

/// An app on `BRIDGE_CONNECTOR=zendesk` against `fake`, with [`TEST_TOKEN_KEY`] and the extra pairs.
pub fn app_on(fake: &FakeZendesk, extra: &[(&str, &str)]) -> bridge::App {
    let base = fake.base_url();
    let mut pairs: Vec<(&str, &str)> = vec![
        ("BRIDGE_CONNECTOR", "zendesk"),
        ("BRIDGE_TOKEN_KEY", TEST_TOKEN_KEY),
        ("ZENDESK_BASE_URL", base.as_str()),
    ];
    pairs.extend_from_slice(extra);
    let config = crate::config(&pairs);
    let connector = bridge::connectors::build(&config).expect("zendesk connector builds");
    bridge::App::new(config, connector).expect("zendesk app builds")
}

/// `auth` for Talkdesk requests that the fake accepts.
pub fn auth_json() -> Value {
    json!({"subdomain": SUBDOMAIN, "email": EMAIL, "api_token": API_TOKEN})
}

/// One user identity.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeIdentity {
    pub id: u64,
    /// `email`, `phone_number`, `twitter`, ...
    pub kind: String,
    pub value: String,
    pub primary: bool,
}

/// One Zendesk user.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeUser {
    pub id: u64,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// `end-user`, `agent` or `admin`.
    pub role: String,
    /// `false` once deleted.
    pub active: bool,
    pub suspended: bool,
    pub organization_id: Option<u64>,
    pub photo_url: Option<String>,
    pub user_fields: Map<String, Value>,
    pub identities: Vec<FakeIdentity>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Occupies its place in the export keyset but is never returned (yields empty export pages).
    pub purged: bool,
}

impl FakeUser {
    /// A live end-user with only the mandatory fields.
    pub fn end_user(id: u64, name: &str, updated_at: i64) -> Self {
        FakeUser {
            id,
            name: name.to_string(),
            email: None,
            phone: None,
            role: "end-user".into(),
            active: true,
            suspended: false,
            organization_id: None,
            photo_url: None,
            user_fields: Map::new(),
            identities: vec![],
            created_at: updated_at,
            updated_at,
            purged: false,
        }
    }

    fn to_json(&self) -> Value {
        let photo = self.photo_url.as_ref().map(|url| {
            json!({
                "url": format!("https://{SUBDOMAIN}.zendesk.com/api/v2/attachments/{}.json", self.id + 900_000),
                "id": self.id + 900_000, "file_name": "profile.png", "content_url": url, "mapped_content_url": url,
                "content_type": "image/png", "size": 3332, "width": 80, "height": 80, "inline": false, "deleted": false,
                "thumbnails": [{"id": self.id + 900_001, "file_name": "profile_thumb.png", "content_url": url, "content_type": "image/png", "size": 1098}]
            })
        });
        json!({
            "id": self.id,
            "url": format!("https://{SUBDOMAIN}.zendesk.com/api/v2/users/{}.json", self.id),
            "name": self.name,
            "email": self.email,
            "created_at": ts(self.created_at),
            "updated_at": ts(self.updated_at),
            "time_zone": "Eastern Time (US & Canada)",
            "iana_time_zone": "America/New_York",
            "phone": self.phone,
            "shared_phone_number": self.phone.as_ref().map(|_| false),
            "photo": photo,
            "locale_id": 1,
            "locale": "en-US",
            "organization_id": self.organization_id,
            "role": self.role,
            "verified": true,
            "external_id": null,
            "tags": [],
            "alias": "",
            "active": self.active,
            "shared": false,
            "shared_agent": false,
            "last_login_at": null,
            "two_factor_auth_enabled": null,
            "signature": null,
            "details": "",
            "notes": "",
            "role_type": null,
            "custom_role_id": null,
            "moderator": self.role != "end-user",
            "ticket_restriction": if self.role == "end-user" { json!("requested") } else { json!(null) },
            "only_private_comments": false,
            "restricted_agent": self.role != "end-user",
            "suspended": self.suspended,
            "default_group_id": null,
            "report_csv": false,
            "user_fields": self.user_fields,
        })
    }

    fn identities_json(&self) -> Vec<Value> {
        self.identities
            .iter()
            .map(|i| {
                json!({
                    "url": format!("https://{SUBDOMAIN}.zendesk.com/api/v2/users/{}/identities/{}.json", self.id, i.id),
                    "id": i.id, "user_id": self.id, "type": i.kind, "value": i.value,
                    "verified": true, "primary": i.primary,
                    "created_at": ts(self.created_at), "updated_at": ts(self.updated_at),
                    "undeliverable_count": 0,
                    "deliverable_state": if i.kind == "email" { json!("deliverable") } else { json!(null) },
                })
            })
            .collect()
    }

    fn emails(&self) -> impl Iterator<Item = &str> {
        self.email
            .as_deref()
            .into_iter()
            .chain(self.identities.iter().filter(|i| i.kind == "email").map(|i| i.value.as_str()))
    }

    fn phones(&self) -> impl Iterator<Item = &str> {
        self.phone.as_deref().into_iter().chain(
            self.identities
                .iter()
                .filter(|i| i.kind == "phone_number")
                .map(|i| i.value.as_str()),
        )
    }
}

/// One ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeTicket {
    pub id: u64,
    pub requester_id: u64,
    pub subject: Option<String>,
    pub description: String,
    /// `None` is JSON `null`.
    pub priority: Option<String>,
    /// `new`, `open`, `pending`, `hold`, `solved`, `closed` (with custom statuses, the status category).
    pub status: String,
    pub custom_status_id: Option<u64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl FakeTicket {
    fn to_json(&self) -> Value {
        json!({
            "url": format!("https://{SUBDOMAIN}.zendesk.com/api/v2/tickets/{}.json", self.id),
            "id": self.id,
            "external_id": null,
            "via": {"channel": "web", "source": {"from": {}, "to": {}, "rel": null}},
            "created_at": ts(self.created_at),
            "updated_at": ts(self.updated_at),
            "generated_timestamp": self.updated_at,
            "type": "question",
            "subject": self.subject,
            "raw_subject": self.subject,
            "description": self.description,
            "priority": self.priority,
            "status": self.status,
            "custom_status_id": self.custom_status_id,
            "recipient": null,
            "requester_id": self.requester_id,
            "submitter_id": self.requester_id,
            "assignee_id": null,
            "organization_id": null,
            "group_id": null,
            "collaborator_ids": [],
            "follower_ids": [],
            "email_cc_ids": [],
            "has_incidents": false,
            "is_public": true,
            "due_at": null,
            "tags": [],
            "custom_fields": [],
            "satisfaction_rating": null,
            "sharing_agreement_ids": [],
            "fields": [],
            "followup_ids": [],
            "brand_id": 360000001,
            "allow_channelback": false,
            "allow_attachments": true,
            "from_messaging_channel": false,
        })
    }
}

/// Everything the fake account holds.
#[derive(Debug, Clone, Default)]
pub struct FakeData {
    pub users: BTreeMap<u64, FakeUser>,
    pub organizations: BTreeMap<u64, String>,
    pub tickets: Vec<FakeTicket>,
}

impl FakeData {
    pub fn add_user(&mut self, user: FakeUser) {
        self.users.insert(user.id, user);
    }

    /// Changes a user and stamps it with `at` (what any change in Zendesk does to `updated_at`).
    pub fn update_user(&mut self, id: u64, at: i64, change: impl FnOnce(&mut FakeUser)) -> bool {
        match self.users.get_mut(&id) {
            Some(u) => {
                change(u);
                u.updated_at = at;
                true
            }
            None => false,
        }
    }

    pub fn next_user_id(&self) -> u64 {
        self.users.keys().next_back().map_or(1000, |k| k + 1)
    }
}

/// A failure the fake serves instead of (or before) the real answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// A status with a body and content type, and optionally `Retry-After`.
    Respond {
        status: u16,
        content_type: &'static str,
        body: String,
        retry_after: Option<String>,
    },
    /// Waits this long, then answers normally (the bridge's request timeout fires first).
    Delay(Duration),
    /// `302 Found` to the given location.
    Redirect(String),
    /// The connection is dropped before any byte of the answer (a reset, as the client sees it).
    Reset,
    /// The real answer's headers, with its full `Content-Length`, then half its body and a dropped
    /// connection.
    Truncated,
}

impl Fault {
    pub fn status(status: u16) -> Fault {
        Fault::Respond {
            status,
            content_type: "application/json; charset=utf-8",
            body: json!({"error": "InternalError", "description": "Something went wrong"}).to_string(),
            retry_after: None,
        }
    }
    pub fn unauthorized() -> Fault {
        Fault::Respond {
            status: 401,
            content_type: "application/json; charset=utf-8",
            body: json!({"error": "Couldn't authenticate you"}).to_string(),
            retry_after: None,
        }
    }
    pub fn forbidden() -> Fault {
        Fault::Respond {
            status: 403,
            content_type: "application/json; charset=utf-8",
            body: json!({"error": "Forbidden", "description": "You do not have access to this page"}).to_string(),
            retry_after: None,
        }
    }
    /// 429 with `Retry-After` (seconds, or an HTTP date).
    pub fn rate_limited(retry_after: &str) -> Fault {
        Fault::Respond {
            status: 429,
            content_type: "text/plain; charset=utf-8",
            body: "Rate limit for ticket updates exceeded, please wait before updating this ticket again".into(),
            retry_after: Some(retry_after.into()),
        }
    }
    /// 503 with an optional `Retry-After`.
    pub fn unavailable(retry_after: Option<&str>) -> Fault {
        Fault::Respond {
            status: 503,
            content_type: "text/html; charset=utf-8",
            body: html("Service Unavailable"),
            retry_after: retry_after.map(String::from),
        }
    }
    /// An HTML error page (a proxy or maintenance page) with the given status.
    pub fn html(status: u16) -> Fault {
        Fault::Respond {
            status,
            content_type: "text/html; charset=utf-8",
            body: html("Zendesk is down for maintenance"),
            retry_after: None,
        }
    }
    /// 200 with a body that is not complete JSON.
    pub fn malformed_json() -> Fault {
        Fault::Respond {
            status: 200,
            content_type: "application/json; charset=utf-8",
            body: "{\"users\": [{\"id\": 1, \"name\": ".into(),
            retry_after: None,
        }
    }
}

fn html(title: &str) -> String {
    format!("<!DOCTYPE html><html><head><title>{title}</title></head><body><h1>{title}</h1><p>secret-upstream-detail</p></body></html>")
}

/// One request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    pub host: Option<String>,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub authorization: Option<String>,
}

impl RecordedRequest {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Which credentials the fake accepts.
#[derive(Debug, Clone, PartialEq)]
pub enum Accept {
    /// [`EMAIL`]/[`API_TOKEN`] and [`ACCESS_TOKEN`].
    Default,
    /// Any `Authorization` header at all.
    Any,
}

type ExportHook = Box<dyn FnMut(&mut FakeData, i64) + Send>;

struct Inner {
    data: FakeData,
    faults: VecDeque<(Option<String>, Fault)>,
    requests: Vec<RecordedRequest>,
    now: Option<i64>,
    admin: bool,
    /// `users/me` answers Zendesk's anonymous user (`id: null`).
    anonymous_me: bool,
    /// `users/me` shows a suspended user.
    me_suspended: bool,
    accept: Accept,
    export_hook: Option<ExportHook>,
    /// Added to every answer (upstream latency, for benchmarks).
    latency: Duration,
    /// The export's rate limit, and the current window's start and use.
    export_limit: Option<ExportLimit>,
    /// Whether `include=organizations` is honoured on the export.
    sideload_organizations: bool,
    /// Export answers of 429 so far.
    export_429s: usize,
    /// Served to every request with a query value containing the text (after the path-matched faults).
    query_faults: Vec<(String, Fault)>,
}

/// A fixed-window rate limit on the incremental export, as Zendesk applies it per account.
#[derive(Debug, Clone, Copy)]
struct ExportLimit {
    per_window: u32,
    window: Duration,
    started: Option<std::time::Instant>,
    used: u32,
}

impl ExportLimit {
    /// Counts one request; `Err(resets_in)` when the window is spent.
    fn take(&mut self) -> (Result<(), Duration>, u32, Duration) {
        let now = std::time::Instant::now();
        let started = match self.started {
            Some(s) if now.duration_since(s) < self.window => s,
            _ => {
                self.used = 0;
                self.started = Some(now);
                now
            }
        };
        let resets_in = self.window.saturating_sub(now.duration_since(started));
        if self.used >= self.per_window {
            return (Err(resets_in), 0, resets_in);
        }
        self.used += 1;
        (Ok(()), self.per_window - self.used, resets_in)
    }
}

/// Whole seconds, rounded up, as Zendesk's `resets` and `Retry-After` give them.
fn whole_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

struct Shared {
    inner: Mutex<Inner>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Time spent serving requests, their answers' sending included.
    busy: Mutex<Busy>,
}

/// When the fake was serving: from a request's arrival until the last byte of its answer was written to the
/// socket. A handler returns its answer before hyper has written it, and a 1000-user export page (1.8 MB)
/// takes about a millisecond to cross loopback: time a client spends waiting on Zendesk, not its own.
#[derive(Default)]
struct Busy {
    /// Since when at least one request is being handled.
    since: Option<std::time::Instant>,
    /// The last period with no handler running that may still be sending: from its start, to the last
    /// write to a connection so far.
    sending: Option<(std::time::Instant, std::time::Instant)>,
    /// Time with a handler running, and time after that still sending answers.
    handling: Duration,
    sent: Duration,
}

impl Busy {
    fn handling(&mut self, now: std::time::Instant) {
        self.close_sending();
        self.since = Some(now);
    }

    fn handled(&mut self, now: std::time::Instant) {
        if let Some(since) = self.since.take() {
            self.handling += now - since;
            self.sending = Some((now, now));
        }
    }

    /// Bytes of an answer went to a socket.
    fn wrote(&mut self, now: std::time::Instant) {
        if let Some((_, last)) = &mut self.sending {
            *last = now;
        }
    }

    fn close_sending(&mut self) {
        if let Some((from, last)) = self.sending.take() {
            self.sent += last - from;
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running fake; stops when dropped.
pub struct FakeZendesk {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    _server: crate::server::Served,
}

impl FakeZendesk {
    /// Serves `data` on an ephemeral port of 127.0.0.1.
    pub async fn start(data: FakeData) -> std::io::Result<FakeZendesk> {
        FakeZendesk::start_on(data, "127.0.0.1:0".parse().map_err(std::io::Error::other)?).await
    }

    /// Serves `data` on `addr`.
    pub async fn start_on(data: FakeData, addr: SocketAddr) -> std::io::Result<FakeZendesk> {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                data,
                faults: VecDeque::new(),
                requests: vec![],
                now: None,
                admin: true,
                anonymous_me: false,
                me_suspended: false,
                accept: Accept::Default,
                export_hook: None,
                latency: Duration::ZERO,
                export_limit: None,
                sideload_organizations: true,
                export_429s: 0,
                query_faults: vec![],
            }),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            busy: Mutex::new(Busy::default()),
        });
        let router = Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let sent = shared.clone();
        let listener = crate::server::on_write(listener, move || {
            sent.busy.lock().unwrap_or_else(|p| p.into_inner()).wrote(std::time::Instant::now());
        });
        let server = crate::server::Served::serve(listener, router)?;
        let addr = server.addr();
        Ok(FakeZendesk {
            addr,
            shared,
            _server: server,
        })
    }

    /// What to set `ZENDESK_BASE_URL` to.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Reads or changes the account's data.
    pub fn with_data<R>(&self, f: impl FnOnce(&mut FakeData) -> R) -> R {
        f(&mut self.shared.lock().data)
    }

    /// Runs before every export request, with the data and the fake's clock (changes between pages).
    pub fn on_export(&self, hook: impl FnMut(&mut FakeData, i64) + Send + 'static) {
        self.shared.lock().export_hook = Some(Box::new(hook));
    }

    pub fn clear_export_hook(&self) {
        self.shared.lock().export_hook = None;
    }

    /// Serves `fault` to the next `n` requests.
    pub fn fail_next(&self, n: usize, fault: Fault) {
        let mut inner = self.shared.lock();
        for _ in 0..n {
            inner.faults.push_back((None, fault.clone()));
        }
    }

    /// Serves `fault` to the next `n` requests whose path starts with `path_prefix`.
    pub fn fail_next_on(&self, path_prefix: &str, n: usize, fault: Fault) {
        let mut inner = self.shared.lock();
        for _ in 0..n {
            inner.faults.push_back((Some(path_prefix.to_string()), fault.clone()));
        }
    }

    /// Serves `fault` to every request one of whose query values contains `text` (e.g. one identifier's
    /// `users/search`), until [`FakeZendesk::clear_faults`]. `Fault::Delay` of an hour hangs them.
    pub fn fail_queries_with(&self, text: &str, fault: Fault) {
        self.shared.lock().query_faults.push((text.to_string(), fault));
    }

    pub fn pending_faults(&self) -> usize {
        self.shared.lock().faults.len()
    }

    pub fn clear_faults(&self) {
        let mut inner = self.shared.lock();
        inner.faults.clear();
        inner.query_faults.clear();
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    pub fn requests_to(&self, path_prefix: &str) -> Vec<RecordedRequest> {
        self.requests().into_iter().filter(|r| r.path.starts_with(path_prefix)).collect()
    }

    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
        self.shared.max_in_flight.store(0, Ordering::SeqCst);
    }

    /// The most requests that were being served at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Time during which at least one request was being served (what a client spent waiting on the
    /// fake), and resets it.
    pub fn take_busy(&self) -> Duration {
        let (handling, sending) = self.take_busy_parts();
        handling + sending
    }

    /// [`FakeZendesk::take_busy`] in two parts: time with a handler running, and time after it still
    /// writing answers to sockets.
    pub fn take_busy_parts(&self) -> (Duration, Duration) {
        let mut busy = self.shared.busy.lock().unwrap_or_else(|p| p.into_inner());
        busy.close_sending();
        (std::mem::take(&mut busy.handling), std::mem::take(&mut busy.sent))
    }

    /// Freezes the fake's clock (Unix seconds); users changed within a minute of it are not exported.
    pub fn set_now(&self, now: i64) {
        self.shared.lock().now = Some(now);
    }

    pub fn now(&self) -> i64 {
        now_of(&self.shared.lock())
    }

    /// When `false`, the credentials are an agent's: the export answers 403.
    pub fn set_admin(&self, admin: bool) {
        self.shared.lock().admin = admin;
    }

    /// When `true`, `users/me` answers as Zendesk does without valid credentials: an anonymous user.
    pub fn set_anonymous_me(&self, anonymous: bool) {
        self.shared.lock().anonymous_me = anonymous;
    }

    /// When `true`, the user the credentials belong to is suspended.
    pub fn set_me_suspended(&self, suspended: bool) {
        self.shared.lock().me_suspended = suspended;
    }

    pub fn set_accept(&self, accept: Accept) {
        self.shared.lock().accept = accept;
    }

    /// Delays every answer by `latency` (the round trip to a real Zendesk).
    pub fn set_latency(&self, latency: Duration) {
        self.shared.lock().latency = latency;
    }

    /// Limits the incremental export to `per_window` requests per fixed `window` (Zendesk: 10 or 20 a
    /// minute); `None` lifts the limit.
    pub fn set_export_rate_limit(&self, limit: Option<(u32, Duration)>) {
        self.shared.lock().export_limit = limit.map(|(per_window, window)| ExportLimit {
            per_window,
            window,
            started: None,
            used: 0,
        });
    }

    /// Export answers of 429 so far.
    pub fn export_429s(&self) -> usize {
        self.shared.lock().export_429s
    }

    /// Whether the export honours `include=organizations` (on by default).
    pub fn set_sideload_organizations(&self, on: bool) {
        self.shared.lock().sideload_organizations = on;
    }
}

fn now_of(inner: &Inner) -> i64 {
    inner.now.unwrap_or_else(|| chrono::Utc::now().timestamp())
}

fn ts(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn respond(status: u16, content_type: &str, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r.headers_mut().insert("x-zendesk-api-version", HeaderValue::from_static("v2"));
    r.headers_mut().insert("x-rate-limit", HeaderValue::from_static("700"));
    r.headers_mut().insert("x-rate-limit-remaining", HeaderValue::from_static("699"));
    r
}

fn ok(body: Value) -> Response {
    respond(200, "application/json; charset=utf-8", body.to_string())
}

fn error(status: u16, error: &str, description: &str) -> Response {
    respond(
        status,
        "application/json; charset=utf-8",
        json!({"error": error, "description": description}).to_string(),
    )
}

fn not_found() -> Response {
    error(404, "RecordNotFound", "Not found")
}

/// Standard base64 with padding (the fake has no base64 dependency).
pub fn b64_encode(input: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(A[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn b64_decode(input: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = input.trim_end_matches('=').as_bytes();
    let mut out = Vec::new();
    for chunk in bytes.chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c)? << (18 - 6 * i);
        }
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
    }
    Some(out)
}

/// The export cursor of a keyset position, as Zendesk writes it: base64 of `"<ts>.0||<id>|"`.
pub fn export_cursor(ts: i64, id: u64) -> String {
    b64_encode(format!("{ts}.0||{id}|").as_bytes())
}

/// Reads an export cursor back into its keyset position.
pub fn parse_export_cursor(cursor: &str) -> Option<(i64, u64)> {
    let text = String::from_utf8(b64_decode(cursor)?).ok()?;
    let (ts, rest) = text.split_once(".0||")?;
    Some((ts.parse().ok()?, rest.strip_suffix('|')?.parse().ok()?))
}

fn authorized(inner: &Inner, authorization: Option<&str>) -> bool {
    let Some(a) = authorization else { return false };
    match inner.accept {
        Accept::Any => true,
        Accept::Default => {
            a == format!("Bearer {ACCESS_TOKEN}") || a == format!("Basic {}", b64_encode(format!("{EMAIL}/token:{API_TOKEN}").as_bytes()))
        }
    }
}

struct InFlight<'a>(&'a Shared);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut busy = self.0.busy.lock().unwrap_or_else(|p| p.into_inner());
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            busy.handled(std::time::Instant::now());
        }
    }
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let now_in = {
        let mut busy = shared.busy.lock().unwrap_or_else(|p| p.into_inner());
        let n = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        if n == 1 {
            busy.handling(std::time::Instant::now());
        }
        n
    };
    shared.max_in_flight.fetch_max(now_in, Ordering::SeqCst);
    let _guard = InFlight(&shared);

    let query: Vec<(String, String)> = Query::<Vec<(String, String)>>::try_from_uri(req.uri())
        .map(|q| q.0)
        .unwrap_or_default();
    let recorded = RecordedRequest {
        method: req.method().to_string(),
        host: req.headers().get(header::HOST).and_then(|v| v.to_str().ok()).map(String::from),
        path: req.uri().path().to_string(),
        query,
        authorization: req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(String::from),
    };
    let latency = shared.lock().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let fault = {
        let mut inner = shared.lock();
        inner.requests.push(recorded.clone());
        let at = inner
            .faults
            .iter()
            .position(|(prefix, _)| prefix.as_deref().is_none_or(|p| recorded.path.starts_with(p)));
        at.and_then(|i| inner.faults.remove(i)).map(|(_, f)| f).or_else(|| {
            let values = || recorded.query.iter().map(|(_, v)| v.as_str());
            inner
                .query_faults
                .iter()
                .find(|(text, _)| values().any(|v| v.contains(text.as_str())))
                .map(|(_, f)| f.clone())
        })
    };
    match fault {
        Some(Fault::Respond {
            status,
            content_type,
            body,
            retry_after,
        }) => {
            let mut r = respond(status, content_type, body);
            if let Some(v) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return r;
        }
        Some(Fault::Redirect(location)) => {
            let mut r = respond(302, "text/html", html("Moved"));
            if let Ok(v) = HeaderValue::from_str(&location) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            return r;
        }
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(Fault::Reset) => return broken(None),
        Some(Fault::Truncated) => {
            let full = {
                let mut inner = shared.lock();
                route(&mut inner, &recorded)
            };
            let (parts, body) = full.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
            let mut r = broken(Some(bytes.slice(..bytes.len() / 2)));
            *r.status_mut() = parts.status;
            *r.headers_mut() = parts.headers;
            r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            return r;
        }
        None => {}
    }
    if recorded.method != "GET" {
        return error(405, "MethodNotAllowed", "Only GET is faked");
    }
    let mut inner = shared.lock();
    if !authorized(&inner, recorded.authorization.as_deref()) {
        return respond(
            401,
            "application/json; charset=utf-8",
            json!({"error": "Couldn't authenticate you"}).to_string(),
        );
    }
    route(&mut inner, &recorded)
}

/// An answer whose body fails after `sent` (or at once): the server drops the connection mid-answer.
fn broken(sent: Option<axum::body::Bytes>) -> Response {
    let fail = futures::stream::once(async { Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset)) });
    let stream = futures::stream::iter(sent.map(Ok)).chain(fail);
    Response::new(Body::from_stream(stream))
}

fn route(inner: &mut Inner, req: &RecordedRequest) -> Response {
    let path = req.path.trim_end_matches(".json");
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["api", "v2", "incremental", "users", "cursor"] => export(inner, req),
        ["api", "v2", "organizations", "show_many"] => organizations(inner, req),
        ["api", "v2", "users", "search"] => search(inner, req),
        ["api", "v2", "users", "me"] => me(inner),
        ["api", "v2", "users"] => list_users(inner, req),
        ["api", "v2", "users", id, "identities"] => match id.parse::<u64>().ok().and_then(|id| inner.data.users.get(&id)) {
            Some(u) if !u.purged => {
                let ids = u.identities_json();
                ok(json!({"identities": ids, "next_page": null, "previous_page": null, "count": ids.len()}))
            }
            _ => not_found(),
        },
        ["api", "v2", "users", id, "tickets", "requested"] => match id.parse::<u64>() {
            Ok(id) if inner.data.users.get(&id).is_some_and(|u| !u.purged) => requested(inner, req, id),
            _ => not_found(),
        },
        _ => error(404, "InvalidEndpoint", "Not found"),
    }
}

fn export(inner: &mut Inner, req: &RecordedRequest) -> Response {
    if !inner.admin {
        return error(403, "Forbidden", "You do not have access to this page");
    }
    let mut limit_header = None;
    if let Some(limit) = inner.export_limit.as_mut() {
        let (taken, remaining, resets_in) = limit.take();
        let header = format!(
            "total={}; remaining={remaining}; resets={}",
            limit.per_window,
            whole_secs(resets_in)
        );
        if let Err(wait) = taken {
            inner.export_429s += 1;
            let mut r = error(429, "APIRateLimitExceeded", "Number of allowed API requests per minute exceeded");
            if let Ok(v) = HeaderValue::from_str(&whole_secs(wait).to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            if let Ok(v) = HeaderValue::from_str(&header) {
                r.headers_mut().insert("zendesk-ratelimit-incremental-exports-cursor", v);
            }
            return r;
        }
        limit_header = HeaderValue::from_str(&header).ok();
    }
    let mut r = export_page(inner, req);
    if let Some(v) = limit_header {
        r.headers_mut().insert("zendesk-ratelimit-incremental-exports-cursor", v);
    }
    r
}

fn export_page(inner: &mut Inner, req: &RecordedRequest) -> Response {
    let now = now_of(inner);
    if let Some(hook) = inner.export_hook.as_mut() {
        hook(&mut inner.data, now);
    }
    let horizon = now - 60;
    let per_page = match req.param("per_page") {
        None => 1000,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n >= 1 => n.min(1000),
            _ => return error(400, "InvalidValue", "per_page must be a positive number"),
        },
    };
    // Exclusive lower bound in (updated_at, id).
    let (from, cursor) = match (req.param("cursor"), req.param("start_time")) {
        (Some(c), _) => match parse_export_cursor(c) {
            Some(k) => (k, c.to_string()),
            None => return error(400, "InvalidCursor", "The cursor is invalid"),
        },
        (None, Some(s)) => match s.parse::<i64>() {
            Ok(t) if t > horizon => return error(422, "InvalidValue", "start_time must be more than one minute in the past"),
            Ok(t) if t >= 0 => ((t, 0), export_cursor(t, 0)),
            _ => return error(400, "InvalidValue", "start_time must be a Unix time in seconds"),
        },
        (None, None) => return error(400, "InvalidValue", "start_time or cursor is required"),
    };
    let mut keys: Vec<(i64, u64)> = inner
        .data
        .users
        .values()
        .filter(|u| u.updated_at <= horizon)
        .map(|u| (u.updated_at, u.id))
        .filter(|k| *k > from)
        .collect();
    keys.sort_unstable();
    let page: Vec<(i64, u64)> = keys.iter().copied().take(per_page).collect();
    let end_of_stream = keys.len() <= per_page;
    let after_cursor = page.last().map_or(cursor, |(t, id)| export_cursor(*t, *id));
    let users: Vec<&FakeUser> = page
        .iter()
        .filter_map(|(_, id)| inner.data.users.get(id))
        .filter(|u| !u.purged)
        .collect();
    let mut body = json!({
        "users": users.iter().map(|u| u.to_json()).collect::<Vec<_>>(),
        "after_url": format!("https://{SUBDOMAIN}.zendesk.com/api/v2/incremental/users/cursor.json?cursor={after_cursor}"),
        "after_cursor": after_cursor,
        "before_url": null,
        "before_cursor": null,
        "end_of_stream": end_of_stream,
    });
    let includes = |what: &str| req.param("include").is_some_and(|i| i.split(',').any(|s| s == what));
    if includes("identities") {
        body["identities"] = Value::Array(users.iter().flat_map(|u| u.identities_json()).collect());
    }
    if includes("organizations") && inner.sideload_organizations {
        let ids: std::collections::BTreeSet<u64> = users.iter().filter_map(|u| u.organization_id).collect();
        body["organizations"] = Value::Array(
            ids.into_iter()
                .filter_map(|id| inner.data.organizations.get(&id).map(|name| organization_json(id, name)))
                .collect(),
        );
    }
    ok(body)
}

fn organizations(inner: &Inner, req: &RecordedRequest) -> Response {
    let ids: Vec<&str> = req.param("ids").unwrap_or_default().split(',').filter(|s| !s.is_empty()).collect();
    if ids.is_empty() || ids.len() > 100 {
        return error(400, "InvalidValue", "Provide between 1 and 100 ids");
    }
    let orgs: Vec<Value> = ids
        .iter()
        .filter_map(|s| s.parse::<u64>().ok())
        .filter_map(|id| inner.data.organizations.get(&id).map(|name| (id, name)))
        .map(|(id, name)| organization_json(id, name))
        .collect();
    ok(json!({"organizations": orgs, "next_page": null, "previous_page": null, "count": orgs.len()}))
}

/// An organization as Zendesk's Organizations API shows one.
fn organization_json(id: u64, name: &str) -> Value {
    json!({
        "url": format!("https://{SUBDOMAIN}.zendesk.com/api/v2/organizations/{id}.json"),
        "id": id, "name": name, "shared_tickets": false, "shared_comments": false, "external_id": null,
        "created_at": "2020-01-01T00:00:00Z", "updated_at": "2020-01-01T00:00:00Z",
        "domain_names": [], "details": "", "notes": "", "group_id": null, "tags": [], "organization_fields": {}
    })
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

fn search(inner: &Inner, req: &RecordedRequest) -> Response {
    let Some(q) = req.param("query").map(str::trim).filter(|q| !q.is_empty()) else {
        return error(400, "InvalidValue", "query is required");
    };
    let matches = |u: &FakeUser| -> bool {
        if let Some(needle) = q.strip_prefix("email:") {
            let needle = needle.trim_matches('"').to_lowercase();
            u.emails().any(|e| e.to_lowercase().contains(&needle))
        } else if let Some(needle) = q.strip_prefix("phone:") {
            let wildcard = needle.starts_with('*');
            let needle = digits(needle);
            !needle.is_empty()
                && u.phones().any(|p| {
                    if wildcard {
                        digits(p).ends_with(&needle)
                    } else {
                        digits(p) == needle
                    }
                })
        } else {
            let needle = q.to_lowercase();
            u.name.to_lowercase().contains(&needle) || u.emails().any(|e| e.to_lowercase().contains(&needle))
        }
    };
    let users: Vec<Value> = inner
        .data
        .users
        .values()
        .filter(|u| u.active && !u.purged && matches(u))
        .take(100)
        .map(FakeUser::to_json)
        .collect();
    ok(json!({"users": users, "next_page": null, "previous_page": null, "count": users.len()}))
}

/// The id of the user the fake's credentials belong to (`GET /api/v2/users/me`).
pub const SIGNED_IN_USER_ID: u64 = 361_000_000_001;

/// `GET /api/v2/users/me`: the signed-in user, an admin or (after `set_admin(false)`) an agent. Requests
/// without valid credentials never get here (401 first); Zendesk's anonymous answer to a request without
/// credentials (a user whose `id` is `null`) is what [`FakeZendesk::set_anonymous_me`] serves.
fn me(inner: &Inner) -> Response {
    if inner.anonymous_me {
        return ok(
            json!({"user": {"id": null, "url": null, "name": "Anonymous user", "email": "invalid@example.com",
            "role": "end-user", "active": true, "suspended": false, "verified": false, "locale": "en-US"}}),
        );
    }
    let mut user = FakeUser::end_user(SIGNED_IN_USER_ID, "Acme Admin", 1_700_000_000);
    user.email = Some(EMAIL.into());
    user.role = if inner.admin { "admin" } else { "agent" }.into();
    user.suspended = inner.me_suspended;
    ok(json!({"user": user.to_json()}))
}

/// `GET /api/v2/users`: users in id order, with Zendesk's cursor pagination (`page[size]` 1 to 100, default
/// 100; `page[after]` a cursor it gave; `meta.has_more`, `meta.after_cursor`, `links.next`), filtered by
/// `role` or by repeated `role[]` (`end-user`, `agent`, `admin`; anything else is a 400). Deleted
/// (`active: false`) and suspended users are listed as they are; purged ones are not. Whether Zendesk lists
/// deleted users here is not documented (the bridge skips them either way).
fn list_users(inner: &Inner, req: &RecordedRequest) -> Response {
    let mut roles: Vec<&str> = req
        .query
        .iter()
        .filter(|(k, _)| k == "role[]" || k == "role")
        .map(|(_, v)| v.as_str())
        .collect();
    if roles.iter().any(|r| !matches!(*r, "end-user" | "agent" | "admin")) {
        return error(400, "InvalidValue", "role must be end-user, agent or admin");
    }
    if req.query.iter().any(|(k, _)| k == "page" || k == "per_page") {
        return error(
            400,
            "InvalidPaginationParameter",
            "offset pagination is not faked; use page[size] and page[after]",
        );
    }
    roles.dedup();
    let size = match req.param("page[size]") {
        None => 100,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => return error(400, "InvalidPaginationParameter", "page[size] must be between 1 and 100"),
        },
    };
    let after_id = match req.param("page[after]") {
        None => None,
        Some(c) => match b64_decode(c).and_then(|b| String::from_utf8(b).ok()).and_then(|t| {
            t.strip_prefix("{\"o\":\"id\",\"v\":")
                .and_then(|r| r.strip_suffix('}'))
                .and_then(|n| n.parse::<u64>().ok())
        }) {
            Some(id) => Some(id),
            None => return error(400, "InvalidPaginationParameter", "page[after] is not valid"),
        },
    };
    let matching: Vec<&FakeUser> = inner
        .data
        .users
        .values()
        .filter(|u| !u.purged && (roles.is_empty() || roles.contains(&u.role.as_str())))
        .filter(|u| after_id.is_none_or(|a| u.id > a))
        .collect();
    let page: Vec<&FakeUser> = matching.iter().copied().take(size).collect();
    let has_more = matching.len() > page.len();
    let cursor = |id: u64| b64_encode(format!("{{\"o\":\"id\",\"v\":{id}}}").as_bytes());
    let after = page.last().map(|u| cursor(u.id));
    let before = page.first().map(|u| cursor(u.id));
    let base = format!("https://{SUBDOMAIN}.zendesk.com/api/v2/users.json?page%5Bsize%5D={size}");
    ok(json!({
        "users": page.iter().map(|u| u.to_json()).collect::<Vec<_>>(),
        "meta": {"has_more": has_more, "after_cursor": after, "before_cursor": before},
        "links": {
            "prev": before.as_ref().map(|b| format!("{base}&page%5Bbefore%5D={b}")),
            "next": if has_more { json!(after.as_ref().map(|a| format!("{base}&page%5Bafter%5D={a}"))) } else { json!(null) },
        },
    }))
}

fn requested(inner: &Inner, req: &RecordedRequest, user_id: u64) -> Response {
    let mut tickets: Vec<&FakeTicket> = inner.data.tickets.iter().filter(|t| t.requester_id == user_id).collect();
    match req.param("sort") {
        Some("-updated_at") => tickets.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(b.id.cmp(&a.id))),
        Some("updated_at") => tickets.sort_by_key(|t| (t.updated_at, t.id)),
        None | Some("id") => tickets.sort_by_key(|t| t.id),
        Some("-id") => tickets.sort_by_key(|t| std::cmp::Reverse(t.id)),
        Some(_) => return error(400, "InvalidPaginationParameter", "sort is not valid"),
    }
    let size = req.param("page[size]").and_then(|s| s.parse::<usize>().ok()).unwrap_or(100);
    if !(1..=100).contains(&size) {
        return error(400, "InvalidPaginationParameter", "page[size] must be between 1 and 100");
    }
    let start = match req.param("page[after]") {
        None => 0,
        Some(c) => match b64_decode(c)
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.strip_prefix("o:").and_then(|n| n.parse::<usize>().ok()))
        {
            Some(n) => n,
            None => return error(400, "InvalidPaginationParameter", "page[after] is not valid"),
        },
    };
    let page: Vec<Value> = tickets.iter().skip(start).take(size).map(|t| t.to_json()).collect();
    let end = start + page.len();
    let has_more = end < tickets.len();
    let after = b64_encode(format!("o:{end}").as_bytes());
    let before = b64_encode(format!("o:{start}").as_bytes());
    let base = format!("https://{SUBDOMAIN}.zendesk.com/api/v2/users/{user_id}/tickets/requested.json?page%5Bsize%5D={size}");
    ok(json!({
        "tickets": page,
        "meta": {"has_more": has_more, "after_cursor": after, "before_cursor": before},
        "links": {"prev": format!("{base}&page%5Bbefore%5D={before}"), "next": if has_more { json!(format!("{base}&page%5Bafter%5D={after}")) } else { json!(null) }},
    }))
}

/// How much data [`generate`] makes.
#[derive(Debug, Clone, Copy)]
pub struct Generate {
    pub users: usize,
    pub seed: u64,
    /// The latest `updated_at`; users spread over the 30 days before it.
    pub latest: i64,
}

const STATUSES: &[&str] = &["new", "open", "pending", "hold", "solved", "closed"];
const PRIORITIES: &[Option<&str>] = &[None, Some("low"), Some("normal"), Some("high"), Some("urgent")];

/// A deterministic account: organizations, end-users (with identities, photos and user fields, some sharing
/// an `updated_at` second), a few agents, deleted, suspended and purged users, and tickets in every status
/// (including `hold` and custom statuses) for every end-user.
pub fn generate(opts: Generate) -> FakeData {
    let mut rng = SmallRng::seed_from_u64(opts.seed);
    let mut data = FakeData::default();
    // One organization per 50 users: 2,000 for 100,000 users.
    for o in 0..(opts.users / 50).max(1) as u64 {
        data.organizations.insert(360_000 + o, format!("Org {o} Inc."));
    }
    let org_count = data.organizations.len() as u64;
    let mut second = opts.latest - 30 * 86_400;
    let mut ticket_id = 1u64;
    let mut identity_id = 10_000_000u64;
    for n in 0..opts.users as u64 {
        // About a third of the users share their second with the previous one.
        if n == 0 || rng.random_range(0..3) != 0 {
            second += rng.random_range(1..(30 * 86_400 / opts.users.max(1) as i64).max(2));
        }
        let id = 370_000_000_000 + n * 7 + rng.random_range(0..7);
        let mut u = FakeUser::end_user(id, &format!("Customer {n}"), second.min(opts.latest));
        u.created_at = u.updated_at - 86_400;
        u.email = Some(format!("customer{n}@example.com"));
        if rng.random_bool(0.7) {
            u.phone = Some(format!("+1415555{:04}", n % 10_000));
        }
        if rng.random_bool(0.6) {
            u.organization_id = Some(360_000 + rng.random_range(0..org_count));
        }
        if rng.random_bool(0.5) {
            u.photo_url = Some(format!("https://{SUBDOMAIN}.zendesk.com/system/photos/{id}/profile.png"));
        }
        if rng.random_bool(0.5) {
            u.user_fields
                .insert("job_title".into(), json!(["CTO", "Engineer", "Buyer"][(n % 3) as usize]));
            u.user_fields.insert("address".into(), json!(format!("{n} Main St, Springfield")));
        }
        let mut push = |kind: &str, value: String, primary: bool| {
            identity_id += 1;
            FakeIdentity {
                id: identity_id,
                kind: kind.into(),
                value,
                primary,
            }
        };
        let mut identities = vec![];
        if let Some(e) = u.email.clone() {
            identities.push(push("email", e, true));
        }
        if rng.random_bool(0.3) {
            identities.push(push("email", format!("c{n}.alt@work.example"), false));
        }
        if let Some(p) = u.phone.clone() {
            identities.push(push("phone_number", p, true));
        }
        if rng.random_bool(0.2) {
            identities.push(push("phone_number", format!("+44 20 7946 {:04}", n % 10_000), false));
        }
        u.identities = identities;
        match rng.random_range(0..40) {
            0 => u.role = "agent".into(),
            1 => u.role = "admin".into(),
            2 => u.active = false,
            3 => u.suspended = true,
            4 => u.purged = true,
            _ => {}
        }
        if u.role == "end-user" && u.active {
            for k in 0..rng.random_range(1..4) {
                let status = STATUSES[rng.random_range(0..STATUSES.len())];
                let custom = (k == 2).then_some(9_000 + rng.random_range(0..3));
                data.tickets.push(FakeTicket {
                    id: ticket_id,
                    requester_id: id,
                    subject: Some(format!("Question {ticket_id} from customer {n}")),
                    description: format!("Hello,\n\nI have a question about order {}.\n\nThanks", 5000 + ticket_id),
                    priority: PRIORITIES[rng.random_range(0..PRIORITIES.len())].map(String::from),
                    status: status.into(),
                    custom_status_id: custom,
                    created_at: u.updated_at - 3600,
                    updated_at: u.updated_at - rng.random_range(0..3600),
                });
                ticket_id += 1;
            }
        }
        data.add_user(u);
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_time_runs_until_the_last_byte_of_an_answer_is_written() {
        let t0 = std::time::Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut b = Busy::default();
        b.wrote(at(1)); // nothing being served: not counted
        b.handling(at(2));
        b.handled(at(10));
        b.wrote(at(12));
        b.wrote(at(15));
        b.handling(at(20)); // the next request: the first answer was sent by then
        b.wrote(at(25)); // while a handler runs, already counted
        b.handled(at(30));
        b.close_sending();
        assert_eq!((b.handling, b.sent), (Duration::from_millis(18), Duration::from_millis(5)));
    }

    #[test]
    fn export_cursor_matches_the_recorded_format() {
        // Recorded: MTY5NDMwMzUyNi4wfHw2MTMwODY5MTY4OTIyfA== is "1694303526.0||6130869168922|".
        assert_eq!(export_cursor(1694303526, 6130869168922), "MTY5NDMwMzUyNi4wfHw2MTMwODY5MTY4OTIyfA==");
        assert_eq!(
            parse_export_cursor("MTY5NDMwMzUyNi4wfHw2MTMwODY5MTY4OTIyfA=="),
            Some((1694303526, 6130869168922))
        );
        for s in ["", "a", "ab", "abc", "abcd", "abcde"] {
            assert_eq!(b64_decode(&b64_encode(s.as_bytes())).unwrap(), s.as_bytes());
        }
    }
}
