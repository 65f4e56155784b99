//! HubSpot's JSON, the search bodies the bridge sends, and how answers become Talkdesk's contacts and
//! interactions. Pure: no IO here.
//!
//! | HubSpot contact property | Talkdesk contact |
//! |---|---|
//! | `id` (`hs_object_id`) | `id` |
//! | `firstname` + `lastname` | `name` |
//! | `company` | `company` |
//! | `jobtitle` | `title` |
//! | `email`, then `hs_additional_emails` (split on `;`) | `emails` |
//! | `phone`, `mobilephone` | `phones` |
//! | `address`, `city`, `state`, `zip`, `country`, joined with `, ` | `address` |
//! | `website` | `websites` |
//! | `twitterhandle` | `twitter` |
//! | the property `HUBSPOT_PHOTO_PROPERTY` names (HubSpot has no standard photo URL) | `photo_url` |
//! | `https://{uiDomain}/contacts/{portalId}/record/0-1/{id}` | `url` |
//!
//! | HubSpot ticket | Talkdesk interaction |
//! |---|---|
//! | `id` | `id` |
//! | `subject` (else `Ticket #{id}`) | `subject` |
//! | `content` (plain text, at most 500 characters) | `description` |
//! | `hs_lastmodifieddate` | `date` |
//! | `hs_ticket_priority`: `LOW` / `MEDIUM` / `HIGH` / `URGENT` / other | `priority`: low / normal / high / urgent / none |
//! | `metadata.ticketState` of the stage `hs_pipeline_stage`: `OPEN` / `CLOSED` (unknown stage: open) | `status`: open / closed |
//! | `https://{uiDomain}/contacts/{portalId}/record/0-5/{id}` | `url` |
//!
//! | HubSpot call | Talkdesk interaction |
//! |---|---|
//! | `id` | `id` |
//! | `hs_call_title` (else `Call #{id}`) | `subject` |
//! | `hs_call_body` (tags removed, at most 500 characters) | `description` |
//! | `hs_timestamp`, else `hs_lastmodifieddate` | `date` |
//! | — | `priority`: none |
//! | `hs_call_status`: `QUEUED`, `CALLING_CRM_USER`, `CONNECTING`, `RINGING` / `IN_PROGRESS` / anything else (`COMPLETED`, `BUSY`, `NO_ANSWER`, `FAILED`, `CANCELED`, `MISSED`) | `status`: new / open / closed |
//! | `https://{uiDomain}/contacts/{portalId}/record/0-48/{id}` | `url` |
//!
//! | HubSpot email (engagement) | Talkdesk interaction |
//! |---|---|
//! | `id` | `id` |
//! | `hs_email_subject` (else `Email #{id}`) | `subject` |
//! | `hs_email_text` (tags removed, at most 500 characters) | `description` |
//! | `hs_timestamp`, else `hs_lastmodifieddate` | `date` |
//! | — | `priority`: none |
//! | `hs_email_status`: `SCHEDULED`, `SENDING` / anything else (`SENT`, `BOUNCED`, `FAILED`) | `status`: new / closed |
//! | `https://{uiDomain}/contacts/{portalId}/record/0-49/{id}` | `url` |
//!
//! The record URL pattern (`/contacts/{portalId}/record/{objectTypeId}/{id}`) is the one HubSpot's UI uses;
//! HubSpot does not document it (UNVERIFIED). The call and email object type ids `0-48` and `0-49` are
//! HubSpot's documented ids.

use std::collections::HashMap;

use chrono::{DateTime, Duration as ChronoDuration, NaiveTime, Utc};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::talkdesk::{Contact, Interaction, Priority, Status};

/// The longest description given to Talkdesk, in characters (an ellipsis included).
pub const DESCRIPTION_MAX_CHARS: usize = 500;
/// The UI host when the account-info endpoint gives none that looks like a host.
pub const DEFAULT_UI_DOMAIN: &str = "app.hubspot.com";

/// Contacts' modification date: the property the sync filters and sorts on.
pub const CONTACT_MODIFIED: &str = "lastmodifieddate";
/// Contact properties read for a Talkdesk contact (the photo property is added when configured).
pub const CONTACT_PROPERTIES: &[&str] = &[
    "firstname",
    "lastname",
    "company",
    "jobtitle",
    "email",
    "hs_additional_emails",
    "phone",
    "mobilephone",
    "address",
    "city",
    "state",
    "zip",
    "country",
    "website",
    "twitterhandle",
    CONTACT_MODIFIED,
];
pub const TICKET_PROPERTIES: &[&str] = &[
    "subject",
    "content",
    "hs_pipeline",
    "hs_pipeline_stage",
    "hs_ticket_priority",
    "hs_lastmodifieddate",
    "createdate",
];
pub const CALL_PROPERTIES: &[&str] = &[
    "hs_call_title",
    "hs_call_body",
    "hs_call_status",
    "hs_timestamp",
    "hs_lastmodifieddate",
];
/// Email engagement properties ("Activities | Email": `hs_email_subject`, `hs_email_text`, `hs_email_status`
/// BOUNCED / FAILED / SCHEDULED / SENDING / SENT, `hs_timestamp`). The HTML body is not read (it can be
/// large; the text body says the same).
pub const EMAIL_PROPERTIES: &[&str] = &[
    "hs_email_subject",
    "hs_email_text",
    "hs_email_status",
    "hs_email_direction",
    "hs_timestamp",
    "hs_lastmodifieddate",
];

/// One CRM object as search, read and batch read return it. Every property value is a string (or null).
#[derive(Debug, Clone, Deserialize)]
pub struct Object {
    pub id: String,
    #[serde(default)]
    pub properties: Map<String, Value>,
    #[serde(default, rename = "updatedAt")]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub archived: bool,
}

impl Object {
    /// A property's text, trimmed; absent when null, empty or not a string.
    pub fn prop(&self, name: &str) -> Option<&str> {
        match self.properties.get(name)? {
            Value::String(s) => Some(s.trim()).filter(|s| !s.is_empty()),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct NextPage {
    pub after: String,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct Paging {
    #[serde(default)]
    pub next: Option<NextPage>,
}

/// One page of `POST /crm/v3/objects/{type}/search`.
#[derive(Debug, Clone, Deserialize)]
pub struct SearchPage {
    #[serde(default)]
    pub total: Option<u64>,
    pub results: Vec<Object>,
    #[serde(default)]
    pub paging: Option<Paging>,
}

impl SearchPage {
    pub fn has_more(&self) -> bool {
        self.paging.as_ref().and_then(|p| p.next.as_ref()).is_some()
    }
}

/// `POST /crm/v3/objects/{type}/batch/read`.
#[derive(Debug, Clone, Deserialize)]
pub struct BatchRead {
    #[serde(default)]
    pub results: Vec<Object>,
}

/// `GET /account-info/v3/details` (the fields the bridge uses).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountDetails {
    pub portal_id: u64,
    #[serde(default)]
    pub ui_domain: Option<String>,
    #[serde(default)]
    pub time_zone: Option<String>,
    #[serde(default)]
    pub utc_offset_milliseconds: Option<i64>,
}

/// What the bridge keeps of an account: read once per token and cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Portal {
    pub id: u64,
    /// `app.hubspot.com`, `app-eu1.hubspot.com`, ...
    pub ui_domain: String,
    /// The account's time zone as an offset from UTC when it was read (daily limits reset at midnight in it).
    pub utc_offset_ms: Option<i64>,
}

impl Portal {
    pub fn from_details(d: &AccountDetails) -> Self {
        let ui_domain = d
            .ui_domain
            .as_deref()
            .map(str::trim)
            .filter(|h| valid_host(h))
            .unwrap_or(DEFAULT_UI_DOMAIN)
            .to_ascii_lowercase();
        Portal {
            id: d.portal_id,
            ui_domain,
            utc_offset_ms: d.utc_offset_milliseconds.filter(|ms| ms.abs() <= 14 * 3_600_000),
        }
    }

    /// `https://{uiDomain}/contacts/{portalId}/record/{objectTypeId}/{id}`.
    pub fn record_url(&self, object_type: &str, id: &str) -> String {
        format!("https://{}/contacts/{}/record/{object_type}/{id}", self.ui_domain, self.id)
    }
}

/// A host name made of letters, digits, dots and hyphens (no port, path or credentials).
fn valid_host(h: &str) -> bool {
    !h.is_empty() && h.len() <= 253 && h.contains('.') && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// One `to` of an association batch read; HubSpot gives `toObjectId` as a number.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociatedId {
    pub to_object_id: Value,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FromId {
    pub id: Value,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AssociationResult {
    pub from: FromId,
    #[serde(default)]
    pub to: Vec<AssociatedId>,
    #[serde(default)]
    pub paging: Option<Paging>,
}

/// `POST /crm/v4/associations/{from}/{to}/batch/read` (200, or 207 with `errors` for ids without any).
#[derive(Debug, Clone, Deserialize)]
pub struct AssociationBatch {
    #[serde(default)]
    pub results: Vec<AssociationResult>,
}

/// An id given as a JSON number or string, as digits.
pub fn id_text(v: &Value) -> Option<String> {
    let s = match v {
        Value::Number(n) => n.as_u64()?.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return None,
    };
    object_id(&s).map(|n| n.to_string())
}

impl AssociationBatch {
    /// The associated ids of `from`, newest first (HubSpot's ids grow over time; UNVERIFIED, so this is
    /// only which ones are read when there are more than the lookup wants), and whether HubSpot has more.
    pub fn ids_of(&self, from: &str) -> (Vec<String>, bool) {
        let mut ids: Vec<u64> = Vec::new();
        let mut more = false;
        for r in self.results.iter().filter(|r| id_text(&r.from.id).as_deref() == Some(from)) {
            ids.extend(
                r.to.iter()
                    .filter_map(|t| id_text(&t.to_object_id))
                    .filter_map(|s| s.parse::<u64>().ok()),
            );
            more |= r.paging.as_ref().and_then(|p| p.next.as_ref()).is_some();
        }
        ids.sort_unstable_by(|a, b| b.cmp(a));
        ids.dedup();
        (ids.into_iter().map(|n| n.to_string()).collect(), more)
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct StageMetadata {
    #[serde(default)]
    pub ticket_state: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Stage {
    pub id: String,
    #[serde(default)]
    pub metadata: StageMetadata,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Pipeline {
    pub id: String,
    #[serde(default)]
    pub stages: Vec<Stage>,
}

/// `GET /crm/v3/pipelines/tickets`.
#[derive(Debug, Clone, Deserialize)]
pub struct Pipelines {
    pub results: Vec<Pipeline>,
}

/// Ticket stages by `(pipeline id, stage id)`, with whether the stage is closed.
pub type StageStates = HashMap<(String, String), bool>;

impl Pipelines {
    pub fn stage_states(&self) -> StageStates {
        let mut out = HashMap::new();
        for p in &self.results {
            for s in &p.stages {
                if let Some(state) = s.metadata.ticket_state.as_deref() {
                    out.insert((p.id.clone(), s.id.clone()), state.eq_ignore_ascii_case("CLOSED"));
                }
            }
        }
        out
    }
}

/// A HubSpot record id from Talkdesk's `contact_external_id`: digits only, so it is safe anywhere.
pub fn object_id(text: &str) -> Option<u64> {
    let s = text.trim();
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|id| *id > 0)
}

/// A date property: ISO 8601 (what HubSpot answers) or epoch milliseconds (what some answers hold).
pub fn parse_date(text: &str) -> Option<DateTime<Utc>> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse::<i64>().ok().and_then(DateTime::from_timestamp_millis);
    }
    DateTime::parse_from_rfc3339(t).ok().map(|d| d.with_timezone(&Utc))
}

/// A contact's modification instant: `lastmodifieddate`, else `updatedAt`.
pub fn contact_modified(o: &Object) -> Option<DateTime<Utc>> {
    o.prop(CONTACT_MODIFIED).and_then(parse_date).or(o.updated_at)
}

/// Whole milliseconds at or after `micros` (a lower bound that keeps records of that instant).
pub fn ms_ceil(micros: i64) -> i64 {
    micros.div_euclid(1000) + i64::from(micros.rem_euclid(1000) != 0)
}

/// Whole milliseconds at or before `micros` (an upper bound).
pub fn ms_floor(micros: i64) -> i64 {
    micros.div_euclid(1000)
}

fn filter(property: &str, operator: &str, value: impl ToString) -> Value {
    json!({"propertyName": property, "operator": operator, "value": value.to_string()})
}

fn properties(extra: Option<&str>) -> Vec<String> {
    CONTACT_PROPERTIES
        .iter()
        .map(|s| s.to_string())
        .chain(extra.map(String::from))
        .collect()
}

/// The search for contacts modified from `from_ms` (inclusive) to `until_ms` (inclusive), oldest first.
/// One filter group of at most two filters, one sort: within HubSpot's search limits.
pub fn sync_search(from_ms: Option<i64>, until_ms: i64, limit: usize, photo: Option<&str>) -> Value {
    let mut filters = Vec::with_capacity(2);
    if let Some(from) = from_ms {
        filters.push(filter(CONTACT_MODIFIED, "GTE", from));
    }
    filters.push(filter(CONTACT_MODIFIED, "LTE", until_ms));
    json!({
        "filterGroups": [{"filters": filters}],
        "sorts": [{"propertyName": CONTACT_MODIFIED, "direction": "ASCENDING"}],
        "properties": properties(photo),
        "limit": limit,
    })
}

/// The search for the contacts modified exactly at `at_ms` whose id is greater than `after_id`, by id: how
/// a tie larger than one page is drained.
pub fn tie_search(at_ms: i64, after_id: Option<u64>, limit: usize, photo: Option<&str>) -> Value {
    let mut filters = vec![filter(CONTACT_MODIFIED, "EQ", at_ms)];
    if let Some(id) = after_id {
        filters.push(filter("hs_object_id", "GT", id));
    }
    json!({
        "filterGroups": [{"filters": filters}],
        "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
        "properties": properties(photo),
        "limit": limit,
    })
}

fn filter_in(property: &str, values: &[String]) -> Value {
    json!({"propertyName": property, "operator": "IN", "values": values})
}

/// Contacts one search answers per identifier it holds (the old one-identifier search's page).
pub const RESULTS_PER_IDENTIFIER: usize = 10;

/// Filter groups [`people_search`] sends for `emails` emails and phones holding any national number: for
/// the emails one `email IN` group and one `hs_additional_emails EQ` group each, for the phones two `IN`
/// groups; one filter a group.
pub const fn people_search_groups(emails: usize, phones: bool) -> usize {
    let email_groups = if emails > 0 { 1 + emails } else { 0 };
    email_groups + if phones { 2 } else { 0 }
}

/// The search for people by several emails and phones at once, filter groups OR-ed, one filter each:
/// - the primary `email` `IN` the emails (HubSpot: `IN` "is included in the specified values", a property's
///   value against the list; an email is one value);
/// - for each email, `hs_additional_emails` `EQ` it. That property holds every secondary address of a
///   contact, `;`-separated, and `IN` is not documented to look inside such a list (a contact holding two
///   could be missed); a HubSpot maintainer answers that searching `hs_additional_emails` with `EQ` finds a
///   contact by its secondary address, which the reporter confirms
///   (github.com/HubSpot/hubspot-api-nodejs/issues/24);
/// - HubSpot's calculated phone and mobile search properties `IN` the national numbers (they hold a
///   phone's national number without the country code).
///
/// [`people_search_groups`] groups in all: the caller keeps them within HubSpot's limits. Emails are
/// lowercase (string `IN` values must be). `None` when there is nothing to search.
pub fn people_search(emails: &[String], phone_digits: &[String], photo: Option<&str>) -> Option<Value> {
    let mut groups: Vec<Value> = Vec::with_capacity(people_search_groups(emails.len(), !phone_digits.is_empty()));
    if !emails.is_empty() {
        groups.push(json!({"filters": [filter_in("email", emails)]}));
        groups.extend(emails.iter().map(|e| json!({"filters": [filter("hs_additional_emails", "EQ", e)]})));
    }
    if !phone_digits.is_empty() {
        groups.push(json!({"filters": [filter_in("hs_searchable_calculated_phone_number", phone_digits)]}));
        groups.push(json!({"filters": [filter_in("hs_searchable_calculated_mobile_number", phone_digits)]}));
    }
    if groups.is_empty() {
        return None;
    }
    let limit = (RESULTS_PER_IDENTIFIER * (emails.len() + phone_digits.len())).clamp(RESULTS_PER_IDENTIFIER, 200);
    Some(json!({"filterGroups": groups, "properties": properties(photo), "limit": limit}))
}

/// The `hs_additional_emails` value split into addresses (HubSpot separates them with `;`).
pub fn additional_emails(o: &Object) -> Vec<String> {
    o.prop("hs_additional_emails")
        .map(|s| {
            s.split([';', ','])
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

pub fn emails_of(o: &Object) -> Vec<String> {
    o.prop("email").map(String::from).into_iter().chain(additional_emails(o)).collect()
}

pub fn phones_of(o: &Object) -> Vec<String> {
    ["phone", "mobilephone"]
        .iter()
        .filter_map(|p| o.prop(p))
        .map(String::from)
        .collect()
}

/// Maps a contact to a Talkdesk contact.
pub fn contact(o: &Object, portal: Option<&Portal>, photo: Option<&str>) -> Contact {
    let name = [o.prop("firstname"), o.prop("lastname")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let address = ["address", "city", "state", "zip", "country"]
        .iter()
        .filter_map(|p| o.prop(p))
        .collect::<Vec<_>>()
        .join(", ");
    Contact {
        id: o.id.clone(),
        name,
        company: o.prop("company").map(String::from),
        title: o.prop("jobtitle").map(String::from),
        emails: emails_of(o),
        phones: phones_of(o),
        photo_url: photo
            .and_then(|p| o.prop(p))
            .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
            .map(String::from),
        address: Some(address),
        websites: o.prop("website").map(String::from).into_iter().collect(),
        twitter: o.prop("twitterhandle").map(String::from),
        url: portal.map(|p| p.record_url("0-1", &o.id)),
    }
    .tidy()
}

pub fn priority(p: Option<&str>) -> Priority {
    match p.map(str::to_ascii_uppercase).as_deref() {
        Some("LOW") => Priority::Low,
        Some("MEDIUM") => Priority::Normal,
        Some("HIGH") => Priority::High,
        Some("URGENT") => Priority::Urgent,
        _ => Priority::None,
    }
}

/// A ticket's status from its stage's `ticketState`; a stage the pipelines do not list is shown as open.
pub fn ticket_status(o: &Object, stages: &StageStates) -> Status {
    let pipeline = o.prop("hs_pipeline").unwrap_or("0").to_string();
    let closed = o
        .prop("hs_pipeline_stage")
        .and_then(|s| stages.get(&(pipeline, s.to_string())))
        .copied()
        .unwrap_or(false);
    if closed {
        Status::Closed
    } else {
        Status::Open
    }
}

pub fn call_status(s: Option<&str>) -> Status {
    match s.map(str::to_ascii_uppercase).as_deref() {
        Some("QUEUED" | "CALLING_CRM_USER" | "CONNECTING" | "RINGING") => Status::New,
        Some("IN_PROGRESS") => Status::Open,
        // COMPLETED, BUSY, NO_ANSWER, FAILED, CANCELED, MISSED, or a value HubSpot adds later: a call that
        // happened.
        _ => Status::Closed,
    }
}

/// Text without HTML tags or entities for the common ones (call notes are HTML).
pub fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn preview(text: &str) -> String {
    crate::connectors::zendesk::mapping::preview(text, DESCRIPTION_MAX_CHARS)
}

fn date_of(o: &Object, props: &[&str]) -> Option<DateTime<Utc>> {
    props.iter().find_map(|p| o.prop(p).and_then(parse_date)).or(o.updated_at)
}

/// Maps a ticket (`None` when it has no date at all).
pub fn ticket(o: &Object, stages: &StageStates, portal: &Portal) -> Option<Interaction> {
    let subject = o.prop("subject").map(|s| crate::connectors::zendesk::mapping::preview(s, 250));
    Some(Interaction {
        id: o.id.clone(),
        subject: subject.filter(|s| !s.is_empty()).unwrap_or_else(|| format!("Ticket #{}", o.id)),
        description: preview(o.prop("content").unwrap_or_default()),
        date: date_of(o, &["hs_lastmodifieddate", "createdate"])?,
        url: portal.record_url("0-5", &o.id),
        kind: "ticket".into(),
        priority: priority(o.prop("hs_ticket_priority")),
        status: ticket_status(o, stages),
    })
}

/// Maps a call (`None` when it has no date at all).
pub fn call(o: &Object, portal: &Portal) -> Option<Interaction> {
    let subject = o
        .prop("hs_call_title")
        .map(|s| crate::connectors::zendesk::mapping::preview(s, 250));
    Some(Interaction {
        id: o.id.clone(),
        subject: subject.filter(|s| !s.is_empty()).unwrap_or_else(|| format!("Call #{}", o.id)),
        description: preview(&strip_tags(o.prop("hs_call_body").unwrap_or_default())),
        date: date_of(o, &["hs_timestamp", "hs_lastmodifieddate"])?,
        url: portal.record_url("0-48", &o.id),
        kind: "call".into(),
        priority: Priority::None,
        status: call_status(o.prop("hs_call_status")),
    })
}

pub fn email_status(s: Option<&str>) -> Status {
    match s.map(str::to_ascii_uppercase).as_deref() {
        Some("SCHEDULED" | "SENDING") => Status::New,
        // SENT, BOUNCED, FAILED, or a value HubSpot adds later: an email that went (or will not go) out.
        _ => Status::Closed,
    }
}

/// Maps an email engagement (`None` when it has no date at all).
pub fn email(o: &Object, portal: &Portal) -> Option<Interaction> {
    let subject = o
        .prop("hs_email_subject")
        .map(|s| crate::connectors::zendesk::mapping::preview(s, 250));
    Some(Interaction {
        id: o.id.clone(),
        subject: subject.filter(|s| !s.is_empty()).unwrap_or_else(|| format!("Email #{}", o.id)),
        description: preview(&strip_tags(o.prop("hs_email_text").unwrap_or_default())),
        date: date_of(o, &["hs_timestamp", "hs_lastmodifieddate"])?,
        url: portal.record_url("0-49", &o.id),
        kind: "email".into(),
        priority: Priority::None,
        status: email_status(o.prop("hs_email_status")),
    })
}

/// One owner of `GET /crm/v3/owners` (the fields the bridge uses; `id` is a string in HubSpot's spec).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Owner {
    pub id: Value,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    /// `PERSON` or `QUEUE`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub archived: bool,
}

/// One page of `GET /crm/v3/owners`.
#[derive(Debug, Clone, Deserialize)]
pub struct OwnersPage {
    pub results: Vec<Owner>,
    #[serde(default)]
    pub paging: Option<Paging>,
}

/// Why an owner is not a Talkdesk agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotAnAgent {
    Archived,
    Queue,
    NoEmail,
    NoId,
}

impl NotAnAgent {
    pub fn reason(self) -> &'static str {
        match self {
            NotAnAgent::Archived => "archived owner",
            NotAnAgent::Queue => "queue, not a person",
            NotAnAgent::NoEmail => "owner without email",
            NotAnAgent::NoId => "owner without an id",
        }
    }
}

/// An owner as a Talkdesk agent: the owner id (what `hubspot_owner_id` holds), `firstName lastName` (else
/// the email), the email. Archived owners, queues and owners without an email are not agents.
pub fn agent(o: &Owner) -> Result<crate::talkdesk::Agent, NotAnAgent> {
    if o.archived {
        return Err(NotAnAgent::Archived);
    }
    if o.kind.as_deref().is_some_and(|k| k.eq_ignore_ascii_case("QUEUE")) {
        return Err(NotAnAgent::Queue);
    }
    let id = id_text(&o.id).ok_or(NotAnAgent::NoId)?;
    let email = o
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .ok_or(NotAnAgent::NoEmail)?;
    let name = [o.first_name.as_deref(), o.last_name.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    Ok(crate::talkdesk::Agent {
        id,
        name: if name.is_empty() { email.to_string() } else { name },
        email: email.to_string(),
    })
}

/// Which limit a 429 says was hit (`policyName` in HubSpot's body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Daily,
    Secondly,
    TenSecondly,
    Unknown,
}

/// Reads HubSpot's 429 body: `{"status":"error","message":"You have reached your daily limit.",
/// "errorType":"RATE_LIMIT","correlationId":"...","policyName":"DAILY"}`. The burst policy name seen in
/// practice is `TEN_SECONDLY_ROLLING`, the search limit's `SECONDLY` (UNVERIFIED: third-party captures).
pub fn rate_limit_policy(body: &[u8]) -> Policy {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Policy::Unknown;
    };
    let policy = v.get("policyName").and_then(Value::as_str).unwrap_or_default().to_ascii_uppercase();
    let message = v.get("message").and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase();
    if policy == "DAILY" || message.contains("daily limit") {
        Policy::Daily
    } else if policy.starts_with("TEN_SECONDLY") || message.contains("ten_secondly") {
        Policy::TenSecondly
    } else if policy == "SECONDLY" || message.contains("secondly") {
        Policy::Secondly
    } else {
        Policy::Unknown
    }
}

/// Time until the next midnight in the account's time zone (HubSpot resets daily limits then), given as
/// an offset from UTC; UTC when the offset is unknown. At least one second.
pub fn until_midnight(now: DateTime<Utc>, utc_offset_ms: Option<i64>) -> std::time::Duration {
    let local = now.naive_utc() + ChronoDuration::milliseconds(utc_offset_ms.unwrap_or(0));
    let next = (local.date() + ChronoDuration::days(1)).and_time(NaiveTime::MIN);
    let wait = (next - local).to_std().unwrap_or_default();
    wait.max(std::time::Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn object(id: &str, props: Value) -> Object {
        serde_json::from_value(json!({"id": id, "properties": props, "archived": false})).unwrap()
    }

    fn portal() -> Portal {
        Portal {
            id: 2519445,
            ui_domain: "app-eu1.hubspot.com".into(),
            utc_offset_ms: Some(3_600_000),
        }
    }

    #[test]
    fn a_contact_maps_every_documented_property() {
        let o = object(
            "512",
            json!({
                "firstname": "Ada", "lastname": "Lovelace", "company": "Analytical Engines", "jobtitle": "Engineer",
                "email": "ada@example.com", "hs_additional_emails": "ada@work.example;ada.l@home.example",
                "phone": "+1 (415) 555-0100", "mobilephone": "+44 20 7946 0000", "address": "12 St James's Square",
                "city": "London", "state": null, "zip": "SW1Y 4JH", "country": "United Kingdom",
                "website": "https://ada.example", "twitterhandle": "@ada", "photo": "https://cdn.example/ada.png",
                "lastmodifieddate": "2026-11-30T10:00:00.123Z"
            }),
        );
        let c = contact(&o, Some(&portal()), Some("photo"));
        assert_eq!(c.id, "512");
        assert_eq!(c.name, "Ada Lovelace");
        assert_eq!(c.company.as_deref(), Some("Analytical Engines"));
        assert_eq!(c.title.as_deref(), Some("Engineer"));
        assert_eq!(c.emails, vec!["ada@example.com", "ada@work.example", "ada.l@home.example"]);
        assert_eq!(c.phones, vec!["+1 (415) 555-0100", "+44 20 7946 0000"]);
        assert_eq!(c.address.as_deref(), Some("12 St James's Square, London, SW1Y 4JH, United Kingdom"));
        assert_eq!(c.websites, vec!["https://ada.example"]);
        assert_eq!(c.twitter.as_deref(), Some("ada"));
        assert_eq!(c.photo_url.as_deref(), Some("https://cdn.example/ada.png"));
        assert_eq!(
            c.url.as_deref(),
            Some("https://app-eu1.hubspot.com/contacts/2519445/record/0-1/512")
        );
        assert_eq!(
            contact_modified(&o),
            Some(Utc.with_ymd_and_hms(2026, 11, 30, 10, 0, 0).unwrap() + ChronoDuration::milliseconds(123))
        );
        let bare = contact(&object("7", json!({"email": "x@y.z"})), None, None);
        assert_eq!((bare.name.as_str(), bare.address, bare.url), ("x@y.z", None, None));
    }

    #[test]
    fn sync_bounds_keep_the_boundary_millisecond_and_nothing_past_the_run() {
        assert_eq!(ms_ceil(1_000_000), 1000);
        assert_eq!(ms_ceil(1_000_001), 1001, "after every record of ms 1000: starts at 1001");
        assert_eq!(ms_floor(1_000_999), 1000);
        assert_eq!(ms_floor(-1), -1);
        let body = sync_search(Some(1000), 2000, 200, None);
        assert_eq!(
            body["filterGroups"][0]["filters"][0],
            json!({"propertyName": "lastmodifieddate", "operator": "GTE", "value": "1000"})
        );
        assert_eq!(body["filterGroups"][0]["filters"][1]["operator"], "LTE");
        assert_eq!(
            body["sorts"],
            json!([{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}])
        );
        assert_eq!(body["limit"], 200);
        assert!(body.get("after").is_none(), "every request is the first page of a fresh query");
        let tie = tie_search(1500, Some(42), 200, None);
        assert_eq!(tie["filterGroups"][0]["filters"][0]["operator"], "EQ");
        assert_eq!(
            tie["filterGroups"][0]["filters"][1],
            json!({"propertyName": "hs_object_id", "operator": "GT", "value": "42"})
        );
        assert_eq!(tie["sorts"][0]["propertyName"], "hs_object_id");
    }

    #[test]
    fn a_people_search_ors_email_in_one_secondary_email_eq_per_email_and_the_phone_properties() {
        let emails = vec!["ada@example.com".to_string(), "bob@example.com".into()];
        let digits = vec!["4155550100".to_string()];
        let b = people_search(&emails, &digits, None).unwrap();
        let groups = b["filterGroups"].as_array().unwrap();
        assert_eq!(groups.len(), 5);
        assert_eq!(groups.len(), people_search_groups(2, true));
        assert!(groups.iter().all(|g| g["filters"].as_array().unwrap().len() == 1));
        assert_eq!(
            groups[0]["filters"][0],
            json!({"propertyName": "email", "operator": "IN", "values": ["ada@example.com", "bob@example.com"]})
        );
        assert_eq!(
            groups[1]["filters"][0],
            json!({"propertyName": "hs_additional_emails", "operator": "EQ", "value": "ada@example.com"})
        );
        assert_eq!(
            groups[2]["filters"][0],
            json!({"propertyName": "hs_additional_emails", "operator": "EQ", "value": "bob@example.com"})
        );
        assert_eq!(groups[3]["filters"][0]["propertyName"], "hs_searchable_calculated_phone_number");
        assert_eq!(groups[3]["filters"][0]["values"], json!(["4155550100"]));
        assert_eq!(groups[4]["filters"][0]["propertyName"], "hs_searchable_calculated_mobile_number");
        assert_eq!(b["limit"], 30);
        assert_eq!(
            people_search(&[], &digits, None).unwrap()["filterGroups"].as_array().unwrap().len(),
            people_search_groups(0, true)
        );
        assert_eq!(people_search_groups(0, true), 2);
        assert!(people_search(&[], &[], None).is_none());
    }

    #[test]
    fn owners_become_agents_unless_archived_queues_or_without_email() {
        let owner = |v: Value| serde_json::from_value::<Owner>(v).unwrap();
        let a = agent(&owner(
            json!({"id": "41629779", "email": "ann@acme.test", "type": "PERSON", "firstName": "Ann",
            "lastName": "Lee", "userId": 9586504, "createdAt": "2019-12-25T13:01:35.228Z", "archived": false}),
        ))
        .unwrap();
        assert_eq!(
            (a.id.as_str(), a.name.as_str(), a.email.as_str()),
            ("41629779", "Ann Lee", "ann@acme.test")
        );
        let unnamed = agent(&owner(json!({"id": "7", "email": "x@acme.test", "archived": false}))).unwrap();
        assert_eq!(unnamed.name, "x@acme.test");
        assert_eq!(
            agent(&owner(
                json!({"id": "8", "email": "q@acme.test", "type": "QUEUE", "archived": false})
            )),
            Err(NotAnAgent::Queue)
        );
        assert_eq!(
            agent(&owner(json!({"id": "9", "email": "a@acme.test", "archived": true}))),
            Err(NotAnAgent::Archived)
        );
        assert_eq!(agent(&owner(json!({"id": "10", "archived": false}))), Err(NotAnAgent::NoEmail));
    }

    #[test]
    fn emails_map_subject_text_status_and_link() {
        let o = object(
            "77",
            json!({"hs_email_subject": "Your renewal", "hs_email_text": "Hi <b>Ada</b>", "hs_email_status": "SENT",
                   "hs_timestamp": "2026-11-29T09:00:00Z"}),
        );
        let e = email(&o, &portal()).unwrap();
        assert_eq!((e.kind.as_str(), e.status, e.priority), ("email", Status::Closed, Priority::None));
        assert_eq!((e.subject.as_str(), e.description.as_str()), ("Your renewal", "Hi Ada"));
        assert_eq!(e.url, "https://app-eu1.hubspot.com/contacts/2519445/record/0-49/77");
        assert_eq!(email_status(Some("SCHEDULED")), Status::New);
        assert_eq!(
            email(&object("78", json!({"hs_timestamp": "2026-11-29T09:00:00Z"})), &portal())
                .unwrap()
                .subject,
            "Email #78"
        );
    }

    #[test]
    fn tickets_take_their_status_from_the_stage_and_calls_from_hs_call_status() {
        let pipelines: Pipelines = serde_json::from_value(json!({"results": [{"id": "0", "label": "Support", "stages": [
            {"id": "1", "label": "New", "metadata": {"ticketState": "OPEN"}},
            {"id": "4", "label": "Closed", "metadata": {"ticketState": "CLOSED", "isClosed": "true"}}
        ]}]}))
        .unwrap();
        let stages = pipelines.stage_states();
        let t = |stage: &str, prio: &str| {
            object(
                "9",
                json!({"subject": "Refund", "content": "Please\n\nrefund", "hs_pipeline": "0", "hs_pipeline_stage": stage,
                       "hs_ticket_priority": prio, "hs_lastmodifieddate": "2026-11-30T10:00:00Z"}),
            )
        };
        let open = ticket(&t("1", "HIGH"), &stages, &portal()).unwrap();
        assert_eq!((open.status, open.priority), (Status::Open, Priority::High));
        assert_eq!(open.description, "Please refund");
        assert_eq!(open.url, "https://app-eu1.hubspot.com/contacts/2519445/record/0-5/9");
        assert_eq!(ticket(&t("4", "MEDIUM"), &stages, &portal()).unwrap().status, Status::Closed);
        assert_eq!(ticket(&t("4", "MEDIUM"), &stages, &portal()).unwrap().priority, Priority::Normal);
        assert_eq!(
            ticket(&t("77", ""), &stages, &portal()).unwrap().status,
            Status::Open,
            "unknown stage"
        );
        assert_eq!(priority(Some("URGENT")), Priority::Urgent);
        assert_eq!(priority(Some("LOW")), Priority::Low);
        assert_eq!(priority(None), Priority::None);
        let c = call(
            &object(
                "31",
                json!({"hs_call_title": "Follow-up", "hs_call_body": "<p>Talked&nbsp;about <b>renewal</b></p>",
                       "hs_call_status": "COMPLETED", "hs_timestamp": "2026-11-29T09:00:00Z"}),
            ),
            &portal(),
        )
        .unwrap();
        assert_eq!((c.kind.as_str(), c.status, c.priority), ("call", Status::Closed, Priority::None));
        assert_eq!(c.description, "Talked about renewal");
        assert_eq!(call_status(Some("RINGING")), Status::New);
        assert_eq!(call_status(Some("IN_PROGRESS")), Status::Open);
        assert_eq!(call_status(Some("NO_ANSWER")), Status::Closed);
    }

    #[test]
    fn association_ids_come_newest_first_from_numbers_or_strings() {
        let b: AssociationBatch = serde_json::from_value(json!({"status": "COMPLETE", "results": [
            {"from": {"id": "5"}, "to": [{"toObjectId": 10, "associationTypes": []}, {"toObjectId": "30"}, {"toObjectId": 20}]},
            {"from": {"id": "6"}, "to": [{"toObjectId": 99}], "paging": {"next": {"after": "x"}}}
        ]}))
        .unwrap();
        assert_eq!(b.ids_of("5"), (vec!["30".to_string(), "20".into(), "10".into()], false));
        assert!(b.ids_of("6").1, "HubSpot has more");
    }

    #[test]
    fn a_429_body_names_its_policy() {
        let body = |p: &str, m: &str| {
            json!({"status": "error", "message": m, "errorType": "RATE_LIMIT", "correlationId": "c", "policyName": p}).to_string()
        };
        assert_eq!(
            rate_limit_policy(body("DAILY", "You have reached your daily limit.").as_bytes()),
            Policy::Daily
        );
        assert_eq!(
            rate_limit_policy(body("TEN_SECONDLY_ROLLING", "You have reached your ten_secondly_rolling limit.").as_bytes()),
            Policy::TenSecondly
        );
        assert_eq!(
            rate_limit_policy(body("SECONDLY", "You have reached your secondly limit.").as_bytes()),
            Policy::Secondly
        );
        assert_eq!(rate_limit_policy(b"<html>"), Policy::Unknown);
    }

    #[test]
    fn the_daily_limit_resets_at_midnight_in_the_account_time_zone() {
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 22, 30, 0).unwrap();
        assert_eq!(until_midnight(now, None).as_secs(), 90 * 60, "UTC when unknown");
        assert_eq!(
            until_midnight(now, Some(-5 * 3_600_000)).as_secs(),
            6 * 3600 + 30 * 60,
            "New York: 17:30 local"
        );
        assert_eq!(
            until_midnight(now, Some(2 * 3_600_000)).as_secs(),
            23 * 3600 + 30 * 60,
            "00:30 local: the next one"
        );
    }

    #[test]
    fn account_details_give_the_portal_and_a_safe_ui_host() {
        let d: AccountDetails = serde_json::from_value(json!({"portalId": 2519445, "accountType": "STANDARD", "timeZone": "US/Eastern",
            "companyCurrency": "USD", "additionalCurrencies": [], "utcOffset": "-05:00", "utcOffsetMilliseconds": -18000000,
            "uiDomain": "app.hubspot.com", "dataHostingLocation": "na1"}))
        .unwrap();
        let p = Portal::from_details(&d);
        assert_eq!(
            (p.id, p.ui_domain.as_str(), p.utc_offset_ms),
            (2519445, "app.hubspot.com", Some(-18_000_000))
        );
        let evil: AccountDetails = serde_json::from_value(json!({"portalId": 1, "uiDomain": "evil.example/x?y"})).unwrap();
        assert_eq!(Portal::from_details(&evil).ui_domain, DEFAULT_UI_DOMAIN);
    }
}
