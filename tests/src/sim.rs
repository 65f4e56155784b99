//! The conformance kit: does what Talkdesk does against a bridge URL and checks every protocol rule.
//!
//! Black box: it sees only HTTP. It runs an initial sync following `next_offset` to the end, replays an
//! offset, resumes from an intermediate checkpoint (which proves the pages were in checkpoint order), runs
//! an incremental sync, looks up interactions for sampled contacts, validates the credentials
//! (`/auth/validate`), lists the agents (`/agents`), and sends bad requests to every route.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// What to run against.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Base URL; `/contacts`, `/interactions`, `/auth/validate` and `/agents` are appended.
    pub base_url: String,
    /// The `auth` object Talkdesk would send.
    pub auth: Value,
    /// Sent as `Authorization: Bearer` when set.
    pub bearer: Option<String>,
    /// Contacts to look up interactions for.
    pub samples: usize,
    /// Safety stop for a sync that never ends.
    pub max_pages: usize,
    /// How often a contacts page answered 429 or 5xx is sent again (after its `Retry-After`, at most
    /// 30 s) before the sync counts as failed. `0` (`--no-retry`): a Talkdesk that never retries a page,
    /// so any non-200 page fails the sync.
    pub page_retries: u32,
}

impl SimConfig {
    pub fn new(base_url: impl Into<String>) -> Self {
        SimConfig {
            base_url: base_url.into().trim_end_matches('/').to_string(),
            auth: json!({}),
            bearer: None,
            samples: 10,
            max_pages: 10_000,
            page_retries: 3,
        }
    }
}

/// One rule checked.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// What the kit saw.
#[derive(Debug, Default)]
pub struct Report {
    pub checks: Vec<Check>,
    pub initial_pages: usize,
    pub initial_contacts: usize,
    pub incremental_contacts: usize,
    pub lookups: usize,
    pub interactions_seen: usize,
    /// Agents `POST /agents` listed.
    pub agents: usize,
    pub requests: usize,
    /// Contacts pages sent again after a 429 or 5xx.
    pub page_retries: usize,
    /// Contacts pages answered 200 with no contacts but a `next_offset` (e.g. while the bridge waits for
    /// the provider's rate limit).
    pub empty_pages: usize,
    pub elapsed: Duration,
    /// Every 2xx/4xx/5xx response body seen, with the path and status, for schema checks.
    pub responses: Vec<(String, u16, Value)>,
}

impl Report {
    pub fn failures(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| !c.ok).collect()
    }

    pub fn passed(&self) -> bool {
        self.failures().is_empty()
    }

    /// Human-readable report, ending with `N passed, M failed`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let mark = if c.ok { "PASS" } else { "FAIL" };
            if c.detail.is_empty() {
                out.push_str(&format!("{mark} {}\n", c.name));
            } else {
                out.push_str(&format!("{mark} {}: {}\n", c.name, c.detail));
            }
        }
        out.push_str(&format!(
            "initial sync: {} contacts in {} pages ({} empty pages, {} pages retried); incremental: {} contacts; {} lookups returned {} interactions; {} agents; {} requests in {:.1} s\n",
            self.initial_contacts,
            self.initial_pages,
            self.empty_pages,
            self.page_retries,
            self.incremental_contacts,
            self.lookups,
            self.interactions_seen,
            self.agents,
            self.requests,
            self.elapsed.as_secs_f64()
        ));
        let failed = self.failures().len();
        out.push_str(&format!("{} passed, {} failed\n", self.checks.len() - failed, failed));
        out
    }
}

struct Sim {
    cfg: SimConfig,
    http: reqwest::Client,
    report: Report,
    /// `Retry-After` of the last response, in seconds.
    retry_after: Option<u64>,
}

/// One sync run as Talkdesk sees it.
#[derive(Debug, Default, Clone)]
pub struct SyncRun {
    pub pages: Vec<Page>,
    pub terminated: bool,
}

#[derive(Debug, Clone)]
pub struct Page {
    pub request_meta: Value,
    pub contacts: Vec<Value>,
    pub checkpoint: Option<String>,
    pub next_offset: Option<String>,
    pub context: Option<Value>,
}

impl SyncRun {
    pub fn contacts(&self) -> impl Iterator<Item = &Value> {
        self.pages.iter().flat_map(|p| p.contacts.iter())
    }

    pub fn final_checkpoint(&self) -> Option<String> {
        self.pages.last().and_then(|p| p.checkpoint.clone())
    }
}

const CONTACT_STRINGS: &[&str] = &["company", "title", "photo_url", "address", "twitter", "url"];
const CONTACT_LISTS: &[&str] = &["emails", "phones", "websites"];
const PRIORITIES: &[&str] = &["none", "low", "normal", "high", "urgent"];
const STATUSES: &[&str] = &["new", "open", "pending", "solved", "closed"];

/// Problems with one contact object, if any.
pub fn contact_problems(c: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(obj) = c.as_object() else {
        return vec!["a contact is not an object".into()];
    };
    for required in ["id", "name"] {
        match obj.get(required) {
            Some(Value::String(s)) if !s.trim().is_empty() => {}
            _ => problems.push(format!("`{required}` must be a non-empty string")),
        }
    }
    for (k, v) in obj {
        if k == "id" || k == "name" {
            continue;
        }
        if CONTACT_STRINGS.contains(&k.as_str()) {
            if v.as_str().is_none_or(|s| s.trim().is_empty()) {
                problems.push(format!("`{k}` must be omitted or a non-empty string"));
            }
        } else if CONTACT_LISTS.contains(&k.as_str()) {
            let ok = v
                .as_array()
                .is_some_and(|a| !a.is_empty() && a.iter().all(|s| s.as_str().is_some_and(|s| !s.trim().is_empty())));
            if !ok {
                problems.push(format!("`{k}` must be omitted or a non-empty array of non-empty strings"));
            }
        } else {
            problems.push(format!("unknown field `{k}`"));
        }
    }
    problems
}

/// Problems with one interaction object, if any.
pub fn interaction_problems(i: &Value, asked_types: &[&str]) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(obj) = i.as_object() else {
        return vec!["an interaction is not an object".into()];
    };
    for field in ["id", "subject", "description", "url", "type"] {
        if !obj.get(field).is_some_and(Value::is_string) {
            problems.push(format!("`{field}` must be a string"));
        }
    }
    if obj.get("id").and_then(Value::as_str).is_some_and(|s| s.is_empty()) {
        problems.push("`id` is empty".into());
    }
    match obj.get("date").and_then(Value::as_str) {
        Some(d) if chrono::DateTime::parse_from_rfc3339(d).is_ok_and(|t| t.offset().local_minus_utc() == 0) => {}
        _ => problems.push("`date` must be an RFC 3339 UTC timestamp".into()),
    }
    if !obj.get("priority").and_then(Value::as_str).is_some_and(|p| PRIORITIES.contains(&p)) {
        problems.push("`priority` must be one of none/low/normal/high/urgent".into());
    }
    if !obj.get("status").and_then(Value::as_str).is_some_and(|s| STATUSES.contains(&s)) {
        problems.push("`status` must be one of new/open/pending/solved/closed".into());
    }
    if let Some(t) = obj.get("type").and_then(Value::as_str) {
        if !asked_types.is_empty() && !asked_types.contains(&t) {
            problems.push(format!("type `{t}` was not asked for"));
        }
    }
    problems
}

fn error_body_ok(v: &Value) -> bool {
    v.get("error")
        .and_then(|e| e.get("code"))
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty())
        && v.get("error")
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
}

impl Sim {
    /// Records a check; checks of the same name (one per sampled contact) fold into one line that fails
    /// if any of them failed and keeps the first failure's detail.
    fn check(&mut self, name: impl Into<String>, ok: bool, detail: impl Into<String>) -> bool {
        let name = name.into();
        let detail = if ok { String::new() } else { detail.into() };
        match self.report.checks.iter_mut().find(|c| c.name == name) {
            Some(existing) => {
                if !ok && existing.ok {
                    existing.ok = false;
                    existing.detail = detail;
                }
            }
            None => self.report.checks.push(Check { name, ok, detail }),
        }
        ok
    }

    async fn post(&mut self, path: &str, body: Vec<u8>) -> Result<(u16, Value), String> {
        let mut req = self
            .http
            .post(format!("{}{path}", self.cfg.base_url))
            .header("content-type", "application/json")
            .body(body);
        if let Some(b) = &self.cfg.bearer {
            req = req.bearer_auth(b);
        }
        self.report.requests += 1;
        let resp = req.send().await.map_err(|e| format!("request to {path} failed: {e}"))?;
        let status = resp.status().as_u16();
        self.retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let text = resp.text().await.map_err(|e| format!("reading {path}: {e}"))?;
        if status == 204 {
            // No content: nothing to parse, nothing for the schema checks.
            return if text.is_empty() {
                Ok((status, Value::Null))
            } else {
                Err(format!("{path} answered 204 with a body"))
            };
        }
        let value: Value = serde_json::from_str(&text).map_err(|_| format!("{path} answered {status} with a body that is not JSON"))?;
        self.report.responses.push((path.to_string(), status, value.clone()));
        Ok((status, value))
    }

    async fn post_json(&mut self, path: &str, body: &Value) -> Result<(u16, Value), String> {
        self.post(path, body.to_string().into_bytes()).await
    }

    async fn contacts_page(&mut self, meta: Value) -> Result<Page, String> {
        let body = json!({"auth": self.cfg.auth, "meta": meta});
        let mut attempt = 0;
        let (status, v) = loop {
            let (status, v) = self.post_json("/contacts", &body).await?;
            let transient = status == 429 || status >= 500;
            if !transient || attempt >= self.cfg.page_retries {
                break (status, v);
            }
            attempt += 1;
            self.report.page_retries += 1;
            tokio::time::sleep(Duration::from_secs(self.retry_after.unwrap_or(1).min(30))).await;
        };
        if status != 200 {
            let mode = if self.cfg.page_retries == 0 { " (no retries)" } else { "" };
            return Err(format!("/contacts answered {status}{mode}: {v}"));
        }
        let obj = v.as_object().ok_or("the contacts response is not an object")?;
        let contacts = obj
            .get("contacts")
            .and_then(Value::as_array)
            .cloned()
            .ok_or("`contacts` is missing or not an array")?;
        let checkpoint = obj.get("synchronization_checkpoint").and_then(Value::as_str).map(String::from);
        let next_offset = match obj.get("next_offset") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => return Err(format!("`next_offset` must be absent or a string, got {other}")),
        };
        Ok(Page {
            request_meta: meta,
            contacts,
            checkpoint,
            next_offset,
            context: obj.get("context").cloned(),
        })
    }

    /// Follows `next_offset` to the end, checking every page.
    async fn sync(&mut self, label: &str, checkpoint: Option<String>) -> SyncRun {
        let mut run = SyncRun::default();
        let mut meta = json!({});
        if let Some(cp) = &checkpoint {
            meta["synchronization_checkpoint"] = json!(cp);
        }
        let mut page_problems: Vec<String> = Vec::new();
        for _ in 0..self.cfg.max_pages {
            let page = match self.contacts_page(meta.clone()).await {
                Ok(p) => p,
                Err(e) => {
                    self.check(format!("{label}: every page answers 200 with a contacts response"), false, e);
                    return run;
                }
            };
            if page.checkpoint.as_deref().is_none_or(str::is_empty) {
                page_problems.push(format!("page {} has no synchronization_checkpoint", run.pages.len() + 1));
            }
            if page.next_offset.is_none() && page.context.is_some() {
                page_problems.push(format!("page {} returns context without next_offset", run.pages.len() + 1));
            }
            for c in &page.contacts {
                for p in contact_problems(c) {
                    page_problems.push(format!("contact {}: {p}", c.get("id").unwrap_or(&Value::Null)));
                }
            }
            let next = page.next_offset.clone();
            let context = page.context.clone();
            if page.contacts.is_empty() && next.is_some() {
                self.report.empty_pages += 1;
            }
            run.pages.push(page);
            match next {
                None => {
                    run.terminated = true;
                    break;
                }
                Some(offset) => {
                    meta = json!({"offset": offset});
                    if let Some(cp) = &checkpoint {
                        meta["synchronization_checkpoint"] = json!(cp);
                    }
                    if let Some(ctx) = context {
                        meta["context"] = ctx;
                    }
                }
            }
        }
        page_problems.truncate(20);
        self.check(
            format!("{label}: every page and contact follows the protocol"),
            page_problems.is_empty(),
            page_problems.join("; "),
        );
        self.check(
            format!("{label}: terminates (a page without next_offset)"),
            run.terminated,
            format!("still paging after {} pages", run.pages.len()),
        );
        let mut seen = HashSet::new();
        let dups: Vec<String> = run
            .contacts()
            .filter_map(|c| c.get("id").and_then(Value::as_str))
            .filter(|id| !seen.insert(id.to_string()))
            .map(String::from)
            .take(10)
            .collect();
        self.check(
            format!("{label}: contact ids are unique"),
            dups.is_empty(),
            format!("repeated ids: {dups:?}"),
        );
        run
    }

    async fn run(mut self) -> Report {
        let started = Instant::now();
        let initial = self.sync("initial sync", None).await;
        self.report.initial_pages = initial.pages.len();
        self.report.initial_contacts = initial.contacts().count();

        // Replay: the same offset again gives the same page.
        if let Some(page) = initial.pages.get(1).cloned() {
            match self.contacts_page(page.request_meta.clone()).await {
                Ok(again) => {
                    // The same page; or, when a time budget or the provider's rate limit cut the replay
                    // short, a prefix of it that resumes where it ends.
                    let same = if again.contacts.len() == page.contacts.len() {
                        again.contacts == page.contacts && again.next_offset == page.next_offset
                    } else {
                        again.contacts.len() < page.contacts.len()
                            && page.contacts.starts_with(&again.contacts)
                            && again.next_offset.is_some()
                    };
                    self.check(
                        "replaying an offset returns the same page (or a prefix of it, when cut short)",
                        same,
                        "the page differs on replay",
                    );
                }
                Err(e) => {
                    self.check(
                        "replaying an offset returns the same page (or a prefix of it, when cut short)",
                        false,
                        e,
                    );
                }
            }
        }

        // Order: resuming from an intermediate checkpoint returns every contact of the later pages.
        if initial.pages.len() >= 3 {
            let k = initial.pages.len() / 2;
            let later: HashSet<String> = initial.pages[k..]
                .iter()
                .flat_map(|p| p.contacts.iter())
                .filter_map(|c| c["id"].as_str().map(String::from))
                .collect();
            let earlier: HashSet<String> = initial.pages[..k]
                .iter()
                .flat_map(|p| p.contacts.iter())
                .filter_map(|c| c["id"].as_str().map(String::from))
                .collect();
            let cp = initial.pages[k - 1].checkpoint.clone();
            let resumed = self.sync("incremental from a mid-sync checkpoint", cp).await;
            let got: HashSet<String> = resumed.contacts().filter_map(|c| c["id"].as_str().map(String::from)).collect();
            let missing: Vec<&String> = later.difference(&got).take(10).collect();
            self.check(
                "contacts are in checkpoint order: resuming from page checkpoints loses nothing",
                missing.is_empty(),
                format!("missing after resume: {missing:?}"),
            );
            let resent = earlier.intersection(&got).count();
            self.check(
                "resuming from a checkpoint does not resend earlier pages",
                resent * 10 <= earlier.len().max(10),
                format!("{resent} of {} earlier contacts sent again", earlier.len()),
            );
        }

        // Incremental sync from the final checkpoint.
        let final_cp = initial.final_checkpoint();
        if self.check(
            "the initial sync ends with a checkpoint",
            final_cp.is_some(),
            "no checkpoint on the last page",
        ) {
            let incremental = self.sync("incremental sync", final_cp).await;
            self.report.incremental_contacts = incremental.contacts().count();
        }

        self.interactions(&initial).await;
        self.validation_and_agents().await;
        self.bad_requests(&initial).await;
        self.report.elapsed = started.elapsed();
        self.report
    }

    async fn lookup(&mut self, label: &str, meta: Value, data: Value, asked: &[&str]) -> Option<Vec<Value>> {
        let body = json!({"auth": self.cfg.auth, "meta": meta, "data": data});
        match self.post_json("/interactions", &body).await {
            Ok((200, Value::Array(items))) => {
                self.report.lookups += 1;
                self.report.interactions_seen += items.len();
                let mut problems: Vec<String> = items.iter().flat_map(|i| interaction_problems(i, asked)).take(10).collect();
                let mut ids = HashSet::new();
                if items.iter().any(|i| !ids.insert((i["type"].to_string(), i["id"].to_string()))) {
                    problems.push("an interaction appears twice".into());
                }
                let dates: Vec<_> = items
                    .iter()
                    .filter_map(|i| i["date"].as_str().and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok()))
                    .collect();
                if dates.windows(2).any(|w| w[0] < w[1]) {
                    problems.push("not sorted newest first".into());
                }
                self.check(
                    format!("interactions {label}: valid, unique, newest first"),
                    problems.is_empty(),
                    problems.join("; "),
                );
                Some(items)
            }
            Ok((status, v)) => {
                self.check(
                    format!("interactions {label}: answers 200 with an array"),
                    false,
                    format!("got {status}: {v}"),
                );
                None
            }
            Err(e) => {
                self.check(format!("interactions {label}: answers 200 with an array"), false, e);
                None
            }
        }
    }

    async fn interactions(&mut self, initial: &SyncRun) {
        let all: Vec<Value> = initial.contacts().cloned().collect();
        let n = self.cfg.samples.min(all.len());
        let step = (all.len() / n.max(1)).max(1);
        let samples: Vec<Value> = all.iter().step_by(step).take(n).cloned().collect();
        let mut by_id_total = 0usize;
        let mut by_identifiers_superset = true;
        for c in &samples {
            let id = c["id"].clone();
            let by_id = self
                .lookup("by external id", json!({}), json!({"contact_external_id": id}), &[])
                .await
                .unwrap_or_default();
            by_id_total += by_id.len();
            let emails = c.get("emails").cloned().unwrap_or(json!([]));
            let phones = c.get("phones").cloned().unwrap_or(json!([]));
            if emails.as_array().is_some_and(|a| !a.is_empty()) {
                let found = self
                    .lookup("by email", json!({}), json!({"contact_emails": emails}), &[])
                    .await
                    .unwrap_or_default();
                let ids: HashSet<String> = found.iter().map(|i| i["id"].to_string()).collect();
                by_identifiers_superset &= by_id.iter().all(|i| ids.contains(&i["id"].to_string())) || found.len() >= by_id.len();
            }
            if phones.as_array().is_some_and(|a| !a.is_empty()) {
                self.lookup("by phone", json!({}), json!({"contact_phones": phones}), &[]).await;
            }
            let everything =
                json!({"contact_external_id": id, "contact_name": c["name"], "contact_emails": emails, "contact_phones": phones});
            if let Some(first) = by_id.first().and_then(|i| i["type"].as_str()).map(String::from) {
                self.lookup(
                    "with one asked type",
                    json!({"interaction_types": [first]}),
                    everything.clone(),
                    &[first.as_str()],
                )
                .await;
            }
            self.lookup(
                "with several types and every identifier",
                json!({"interaction_types": ["ticket", "call", "email", "no-such-type"]}),
                everything,
                &["ticket", "call", "email"],
            )
            .await;
        }
        if !samples.is_empty() {
            self.check(
                "lookups by external id find interactions",
                by_id_total > 0,
                "no sampled contact had any interaction",
            );
            self.check(
                "lookups by email find what lookups by id find",
                by_identifiers_superset,
                "a lookup by email missed interactions found by id",
            );
        }
        if let Some(name) = samples.first().and_then(|c| c["name"].as_str()).map(String::from) {
            let found = self.lookup("by name only", json!({}), json!({"contact_name": name}), &[]).await;
            self.check(
                "a name alone never matches anybody (privacy)",
                found.as_ref().is_some_and(Vec::is_empty),
                format!("got {} interactions", found.map_or(0, |f| f.len())),
            );
        }
    }

    /// Authorization validation with the configured credentials (204), and agent synchronization (every
    /// agent with a non-empty `id`, `name` and `email`, ids unique; or 501 from a bridge without agents).
    async fn validation_and_agents(&mut self) {
        let body = json!({"auth": self.cfg.auth});
        let name = "authorization validation accepts the configured credentials with 204";
        match self.post_json("/auth/validate", &body).await {
            Ok((204, _)) => {
                self.check(name, true, "");
            }
            Ok((401, v)) => {
                self.check(name, false, format!("credentials refused: {}", v["error"]["message"]));
            }
            Ok((status, v)) => {
                let outage = matches!(status, 502..=504) && error_body_ok(&v);
                let detail = if outage {
                    format!("the external system could not tell ({status}): {}", v["error"]["message"])
                } else {
                    format!("got {status}: {v}")
                };
                self.check(name, false, detail);
            }
            Err(e) => {
                self.check(name, false, e);
            }
        }
        let name = "agent synchronization lists every agent with id, name and email (or answers 501)";
        match self.post_json("/agents", &body).await {
            Ok((200, v)) => {
                let agents = v.get("agents").and_then(Value::as_array).cloned();
                let problems: Vec<String> = match (&agents, v.as_object().map(|o| o.len())) {
                    (Some(list), Some(1)) => {
                        let mut seen = HashSet::new();
                        let mut problems = Vec::new();
                        for a in list {
                            for f in ["id", "name", "email"] {
                                if a.get(f).and_then(Value::as_str).is_none_or(|s| s.trim().is_empty()) {
                                    problems.push(format!("`{f}` missing or empty in {a}"));
                                }
                            }
                            if let Some(id) = a.get("id").and_then(Value::as_str) {
                                if !seen.insert(id.to_string()) {
                                    problems.push(format!("agent {id} listed twice"));
                                }
                            }
                        }
                        problems
                    }
                    _ => vec![format!("not an object holding only `agents`: {v}")],
                };
                self.report.agents = agents.map_or(0, |a| a.len());
                self.check(
                    name,
                    problems.is_empty(),
                    problems.into_iter().take(5).collect::<Vec<_>>().join("; "),
                );
            }
            Ok((501, v)) => {
                self.check(
                    name,
                    v["error"]["code"] == "not_supported" && error_body_ok(&v),
                    format!("got 501: {v}"),
                );
            }
            Ok((status, v)) => {
                self.check(name, false, format!("got {status}: {v}"));
            }
            Err(e) => {
                self.check(name, false, e);
            }
        }
    }

    async fn expect_error(&mut self, label: &str, path: &str, body: Vec<u8>, status: u16) {
        match self.post(path, body).await {
            Ok((got, v)) => {
                self.check(
                    format!("bad request {label}: {status} with an error body"),
                    got == status && error_body_ok(&v),
                    format!("got {got}: {v}"),
                );
            }
            Err(e) => {
                self.check(format!("bad request {label}: {status} with an error body"), false, e);
            }
        }
    }

    async fn bad_requests(&mut self, initial: &SyncRun) {
        let auth = self.cfg.auth.clone();
        // A bridge that requires a token refuses a body without `auth` as unauthenticated when the kit
        // presents its token in `auth.bridge_token` (the body then carries none), before reading any field.
        let no_auth = if self.cfg.bearer.is_none() && auth.get("bridge_token").is_some() {
            401
        } else {
            400
        };
        self.expect_error("body not JSON", "/contacts", b"{\"auth\": ".to_vec(), 400).await;
        self.expect_error("auth missing", "/contacts", b"{\"meta\": {}}".to_vec(), no_auth)
            .await;
        self.expect_error(
            "auth not an object",
            "/interactions",
            json!({"auth": "x", "data": {"contact_external_id": "1"}}).to_string().into_bytes(),
            no_auth,
        )
        .await;
        self.expect_error("data missing", "/interactions", json!({"auth": auth}).to_string().into_bytes(), 400)
            .await;
        self.expect_error(
            "data holds nothing",
            "/interactions",
            json!({"auth": auth, "data": {}}).to_string().into_bytes(),
            400,
        )
        .await;
        self.expect_error(
            "malformed offset",
            "/contacts",
            json!({"auth": auth, "meta": {"offset": "not-a-token"}}).to_string().into_bytes(),
            400,
        )
        .await;
        self.expect_error(
            "malformed checkpoint",
            "/contacts",
            json!({"auth": auth, "meta": {"synchronization_checkpoint": "yesterday"}})
                .to_string()
                .into_bytes(),
            400,
        )
        .await;
        if let Some(offset) = initial.pages.first().and_then(|p| p.next_offset.clone()) {
            let forged = tamper(&offset);
            self.expect_error(
                "forged offset",
                "/contacts",
                json!({"auth": auth, "meta": {"offset": forged}}).to_string().into_bytes(),
                400,
            )
            .await;
            self.expect_error(
                "offset sent as checkpoint",
                "/contacts",
                json!({"auth": auth, "meta": {"synchronization_checkpoint": offset}})
                    .to_string()
                    .into_bytes(),
                400,
            )
            .await;
        }
        self.expect_error("validation body not JSON", "/auth/validate", b"{\"auth\": ".to_vec(), 400)
            .await;
        self.expect_error("validation without auth", "/auth/validate", b"{}".to_vec(), no_auth)
            .await;
        self.expect_error("agents body not JSON", "/agents", b"[1,".to_vec(), 400).await;
        self.expect_error("agents with auth not an object", "/agents", br#"{"auth":[]}"#.to_vec(), no_auth)
            .await;
        if self.cfg.bearer.is_none() && auth.get("bridge_token").is_some() {
            let mut wrong = auth.clone();
            wrong["bridge_token"] = json!("not-the-bridge-token");
            self.expect_error(
                "validation with a wrong bridge token",
                "/auth/validate",
                json!({"auth": wrong}).to_string().into_bytes(),
                401,
            )
            .await;
        }
        let mut big = json!({"auth": auth, "meta": {}}).to_string().into_bytes();
        big.truncate(big.len() - 1);
        big.extend(format!(",\"pad\":\"{}\"}}", "x".repeat(300 * 1024)).into_bytes());
        self.expect_error("body over 256 KiB", "/contacts", big, 413).await;
    }
}

/// Changes one character in the middle of a token, keeping it URL-safe.
pub fn tamper(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let i = chars.len() / 2;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

/// Runs the whole kit.
pub async fn run(cfg: SimConfig) -> Report {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap_or_default();
    Sim {
        cfg,
        http,
        report: Report::default(),
        retry_after: None,
    }
    .run()
    .await
}

/// Groups responses by path and status (used by schema checks).
pub fn responses_by_path(report: &Report) -> HashMap<(String, u16), Vec<&Value>> {
    let mut out: HashMap<(String, u16), Vec<&Value>> = HashMap::new();
    for (path, status, v) in &report.responses {
        out.entry((path.clone(), *status)).or_default().push(v);
    }
    out
}

/// Reads the `--auth` JSON object given on the command line.
pub fn parse_auth(text: &str) -> Result<Value, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(Value::Object(m)),
        _ => Err("--auth must be a JSON object, e.g. '{\"subdomain\":\"acme\"}'".into()),
    }
}
