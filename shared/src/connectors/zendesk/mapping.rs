//! Zendesk's JSON, and how it becomes Talkdesk's contacts and interactions. Pure: no IO here.
//!
//! | Zendesk | Talkdesk contact |
//! |---|---|
//! | `user.id` | `id` |
//! | `user.name` | `name` |
//! | `user.email`, then identities of type `email` | `emails` |
//! | `user.phone`, then identities of type `phone_number` | `phones` |
//! | `user.photo.content_url` | `photo_url` |
//! | name of the organization `user.organization_id` | `company` |
//! | `https://{subdomain}.zendesk.com/agent/users/{id}` | `url` |
//! | `user.user_fields[ZENDESK_USER_FIELDS title]` | `title` |
//! | `user.user_fields[... address]` | `address` |
//! | `user.user_fields[... websites]` (split on commas and spaces) | `websites` |
//! | `user.user_fields[... twitter]`, else the identity of type `twitter` | `twitter` |
//!
//! Tickets: `id`, `subject`, `description` (plain text, whitespace collapsed, at most
//! [`DESCRIPTION_MAX_CHARS`] characters with an ellipsis), `date` = `updated_at`,
//! `url` = `https://{subdomain}.zendesk.com/agent/tickets/{id}`, `priority` (null → `none`), `status`
//! (`hold` → `pending`; with custom ticket statuses Zendesk's `status` already holds the status category).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::settings::UserFieldMap;
use crate::connectors::ConnectorError;
use crate::talkdesk::{Agent, Contact, Interaction, Priority, Status};

/// The longest ticket description given to Talkdesk, in characters (an ellipsis included).
pub const DESCRIPTION_MAX_CHARS: usize = 500;

/// Zendesk refuses an export `start_time` within the most recent minute.
pub const EXPORT_MIN_AGE_SECS: i64 = 60;

#[derive(Debug, Clone, Deserialize, Default)]
pub struct Photo {
    #[serde(default)]
    pub content_url: Option<String>,
}

/// A Zendesk user, as the incremental export, search and show endpoints return it.
#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub id: u64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub role: Option<Role>,
    /// `false` once the user has been deleted.
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default)]
    pub suspended: bool,
    #[serde(default)]
    pub organization_id: Option<u64>,
    #[serde(default)]
    pub photo: Option<Photo>,
    /// Custom user fields, kept as Zendesk wrote them and read only when `ZENDESK_USER_FIELDS` maps one:
    /// an account may have dozens per user, and a map of them would be built for every user of every page
    /// whether or not any is used.
    #[serde(default)]
    pub user_fields: Option<Box<RawValue>>,
    #[serde(default, deserialize_with = "timestamp::optional")]
    pub updated_at: Option<DateTime<Utc>>,
}

fn yes() -> bool {
    true
}

/// `user.role`. Read as a word rather than a string: a page of users allocated one string per user for it
/// (issue 14). Agents with a custom role are `agent` (the role itself is `custom_role_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    EndUser,
    Agent,
    Admin,
    /// A role this bridge does not know: staff, never taken for an end-user.
    #[serde(other)]
    Other,
}

/// Zendesk's timestamps, which it writes as `YYYY-MM-DDTHH:MM:SSZ`: that shape is read directly, anything
/// else by chrono, whose general parser (what `DateTime`'s own `Deserialize` runs) was 3 % of a
/// 1000-user export page (perf, issue 14). Both accept and refuse the same strings.
pub(crate) mod timestamp {
    use std::fmt;

    use chrono::{DateTime, NaiveDate, Utc};
    use serde::de::{self, Deserializer, Visitor};

    /// `s` as a UTC instant, if it is a timestamp chrono's `DateTime<Utc>` would read.
    pub fn parse(s: &str) -> Option<DateTime<Utc>> {
        zendesk_shape(s).or_else(|| s.parse().ok())
    }

    /// `YYYY-MM-DDTHH:MM:SSZ` exactly; `None` for any other shape or an impossible date or time (chrono
    /// then decides, so a leap second or an offset still reads as before).
    fn zendesk_shape(s: &str) -> Option<DateTime<Utc>> {
        let b = s.as_bytes();
        if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'Z' {
            return None;
        }
        let n = |from: usize, to: usize| {
            b[from..to]
                .iter()
                .try_fold(0u32, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0')))
        };
        let date = NaiveDate::from_ymd_opt(i32::try_from(n(0, 4)?).ok()?, n(5, 7)?, n(8, 10)?)?;
        Some(date.and_hms_opt(n(11, 13)?, n(14, 16)?, n(17, 19)?)?.and_utc())
    }

    struct Timestamp;

    impl Visitor<'_> for Timestamp {
        type Value = DateTime<Utc>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an RFC 3339 timestamp")
        }

        fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
            parse(s).ok_or_else(|| E::invalid_value(de::Unexpected::Str(s), &self))
        }
    }

    struct OptionalTimestamp;

    impl<'de> Visitor<'de> for OptionalTimestamp {
        type Value = Option<DateTime<Utc>>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an RFC 3339 timestamp or null")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            required(d).map(Some)
        }
    }

    pub fn required<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        d.deserialize_str(Timestamp)
    }

    pub fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        d.deserialize_option(OptionalTimestamp)
    }
}

/// A user identity (sideloaded with `include=identities`, or from `/users/{id}/identities`).
#[derive(Debug, Clone, Deserialize)]
pub struct Identity {
    #[serde(default)]
    pub id: u64,
    pub user_id: u64,
    #[serde(rename = "type")]
    pub kind: IdentityKind,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub primary: bool,
}

/// An identity's `type`, as a word (one string per identity was allocated for it, issue 14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityKind {
    Email,
    PhoneNumber,
    Twitter,
    /// `facebook`, `google`, `agent_forwarding`, `sdk`, `messaging` and any later kind: not mapped.
    #[serde(other)]
    Other,
}

/// One page of `GET /api/v2/incremental/users/cursor`.
#[derive(Debug, Clone, Deserialize)]
pub struct ExportPage {
    pub users: Vec<User>,
    #[serde(default)]
    pub identities: Option<Vec<Identity>>,
    /// The `include=organizations` sideload: the organizations of the page's users.
    #[serde(default)]
    pub organizations: Option<Vec<Organization>>,
    #[serde(default)]
    pub after_cursor: Option<String>,
    pub end_of_stream: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Organization {
    pub id: u64,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Organizations {
    pub organizations: Vec<Organization>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Users {
    pub users: Vec<User>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Identities {
    pub identities: Vec<Identity>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Ticket {
    pub id: u64,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub raw_subject: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub priority: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(deserialize_with = "timestamp::required")]
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct CursorMeta {
    #[serde(default)]
    pub has_more: bool,
    #[serde(default)]
    pub after_cursor: Option<String>,
}

/// `GET /api/v2/users/me`: the user the credentials belong to. Zendesk answers an unauthenticated request
/// with an anonymous user whose `id` is `null` (not verified against a live account), so `id` is optional.
#[derive(Debug, Clone, Deserialize)]
pub struct Me {
    pub user: CurrentUser,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CurrentUser {
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default)]
    pub suspended: bool,
}

/// What keeps the user the credentials belong to from running the integration, if anything: the contact
/// sync reads the incremental user export, which Zendesk allows for admins only.
pub fn validation_problem(me: &CurrentUser) -> Option<ConnectorError> {
    if me.id.is_none() {
        return Some(ConnectorError::Unauthorized { system: "Zendesk" });
    }
    if !me.active || me.suspended {
        return Some(ConnectorError::Forbidden {
            message: "the Zendesk user these credentials belong to is suspended or deleted".into(),
        });
    }
    match me.role.as_deref() {
        Some("admin") => None,
        role => Some(ConnectorError::Forbidden {
            message: format!(
                "the Zendesk user these credentials belong to is {}, not an admin: contact synchronization reads Zendesk's \
                 incremental user export, which only admins may read; use an admin's email and API token",
                match role {
                    Some("agent") => "an agent",
                    Some("end-user") => "an end-user",
                    _ => "of an unknown role",
                }
            ),
        }),
    }
}

/// One page of `GET /api/v2/users` with cursor pagination (`page[size]`, `page[after]`).
#[derive(Debug, Clone, Deserialize)]
pub struct UserPage {
    pub users: Vec<User>,
    #[serde(default)]
    pub meta: CursorMeta,
}

/// Why a listed user is not a Talkdesk agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotAnAgent {
    /// Deleted or suspended.
    Inactive,
    /// An end-user (the listing asks for agents and admins only; kept as a check).
    EndUser,
    /// No email: Talkdesk's agent needs one.
    NoEmail,
}

/// A live agent or admin as a Talkdesk agent (name falls back to the email).
pub fn agent(user: &User) -> Result<Agent, NotAnAgent> {
    if !user.active || user.suspended {
        return Err(NotAnAgent::Inactive);
    }
    if !matches!(user.role, Some(Role::Agent | Role::Admin)) {
        return Err(NotAnAgent::EndUser);
    }
    let email = user
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .ok_or(NotAnAgent::NoEmail)?;
    let name = user.name.as_deref().map(str::trim).filter(|n| !n.is_empty()).unwrap_or(email);
    Ok(Agent {
        id: user.id.to_string(),
        name: name.to_string(),
        email: email.to_string(),
    })
}

/// One page of `GET /api/v2/users/{id}/tickets/requested` with cursor pagination.
#[derive(Debug, Clone, Deserialize)]
pub struct TicketPage {
    pub tickets: Vec<Ticket>,
    #[serde(default)]
    pub meta: CursorMeta,
}

/// The first export call's `start_time`: the whole second of the resume position (so nothing after it is
/// skipped; what comes before it again is dropped by the engine), never within the most recent minute,
/// never negative.
pub fn export_start_time(after_micros: Option<i64>, now: DateTime<Utc>) -> i64 {
    let from = after_micros.map_or(0, |us| us.div_euclid(1_000_000));
    from.min(now.timestamp() - EXPORT_MIN_AGE_SECS).max(0)
}

/// Why a user is not synced as a live contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    Deleted,
    Suspended,
    Staff,
}

/// `None` when the user is a live contact to sync.
pub fn skip_reason(user: &User, include_staff: bool) -> Option<Skip> {
    if !user.active {
        Some(Skip::Deleted)
    } else if user.suspended {
        Some(Skip::Suspended)
    } else if !include_staff && user.role.is_some_and(|r| r != Role::EndUser) {
        Some(Skip::Staff)
    } else {
        None
    }
}

/// A user field's value as text: strings as they are, numbers and booleans printed, anything else absent.
fn field_text(fields: Option<&Map<String, Value>>, key: Option<&String>) -> Option<String> {
    match fields?.get(key?)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Maps a user to a Talkdesk contact. `identities` are this user's, in any order; `company` is the name of
/// its organization, when known. Takes both by value: their strings move into the contact.
/// `identities` are the user's. They are left as they are: a user exported twice in one page (changed while
/// the page was read) gets them both times, and the engine keeps the later.
pub fn contact(user: User, identities: &mut [Identity], company: Option<String>, fields: &UserFieldMap, agent_base: &str) -> Contact {
    identities.sort_unstable_by_key(|i| (!i.primary, i.id));
    let parsed: Option<Map<String, Value>> = match &user.user_fields {
        Some(raw) if !fields.is_empty() => serde_json::from_str(raw.get()).ok(),
        _ => None,
    };
    let uf = parsed.as_ref();
    // Room for every identity: no regrowth per contact.
    let mut emails: Vec<String> = Vec::with_capacity(usize::from(user.email.is_some()) + identities.len());
    emails.extend(user.email);
    let mut phones: Vec<String> = Vec::with_capacity(usize::from(user.phone.is_some()) + identities.len());
    phones.extend(user.phone);
    let mut twitter_identity = None;
    for identity in identities {
        let Some(value) = identity.value.clone() else { continue };
        match identity.kind {
            IdentityKind::Email => emails.push(value),
            IdentityKind::PhoneNumber => phones.push(value),
            IdentityKind::Twitter if twitter_identity.is_none() => twitter_identity = Some(value),
            _ => {}
        }
    }
    let websites = field_text(uf, fields.websites.as_ref())
        .map(|w| w.split(|c: char| c == ',' || c.is_whitespace()).map(str::to_string).collect())
        .unwrap_or_default();
    let id = user.id.to_string();
    // Not `format!`: its machinery was 3 % of a 1000-user page (issue 14).
    let mut url = String::with_capacity(agent_base.len() + "/agent/users/".len() + id.len());
    url.push_str(agent_base);
    url.push_str("/agent/users/");
    url.push_str(&id);
    Contact {
        id,
        name: user.name.unwrap_or_default(),
        company,
        title: field_text(uf, fields.title.as_ref()),
        emails,
        phones,
        photo_url: user.photo.and_then(|p| p.content_url),
        address: field_text(uf, fields.address.as_ref()),
        websites,
        twitter: field_text(uf, fields.twitter.as_ref())
            .filter(|t| !t.trim().is_empty())
            .or(twitter_identity),
        url: Some(url),
    }
    .tidy()
}

/// A page's sideloaded identities, grouped by user: one sort of the page's list, instead of a map with a
/// list per user (hashing, and an allocation and a regrowth or two per user, were 3 % of a page).
#[derive(Debug, Default)]
pub struct IdentitiesByUser(Vec<Identity>);

impl IdentitiesByUser {
    pub fn new(mut identities: Vec<Identity>) -> Self {
        identities.sort_unstable_by_key(|i| i.user_id);
        IdentitiesByUser(identities)
    }

    /// The identities of `user_id` (empty when it has none).
    pub fn of(&mut self, user_id: u64) -> &mut [Identity] {
        let from = self.0.partition_point(|i| i.user_id < user_id);
        let to = from + self.0[from..].partition_point(|i| i.user_id == user_id);
        &mut self.0[from..to]
    }
}

pub fn priority(p: Option<&str>) -> Priority {
    match p {
        Some("low") => Priority::Low,
        Some("normal") => Priority::Normal,
        Some("high") => Priority::High,
        Some("urgent") => Priority::Urgent,
        _ => Priority::None,
    }
}

/// Zendesk's status (with custom statuses active, its status category) in Talkdesk's enum. `None` for a
/// deleted ticket, which is not shown.
pub fn status(s: Option<&str>) -> Option<Status> {
    Some(match s {
        Some("new") => Status::New,
        Some("open") => Status::Open,
        Some("pending") | Some("hold") => Status::Pending,
        Some("solved") => Status::Solved,
        Some("closed") => Status::Closed,
        Some("deleted") => return None,
        // An unknown value is shown as open rather than hiding the ticket.
        _ => Status::Open,
    })
}

/// Plain-text preview: control characters dropped, whitespace runs collapsed to one space, at most `max`
/// characters, cut on a character boundary with a trailing `…` when shortened.
pub fn preview(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max * 4));
    let mut pending_space = false;
    for c in text.chars() {
        if c.is_whitespace() {
            pending_space = !out.is_empty();
        } else if !c.is_control() {
            if pending_space {
                out.push(' ');
                pending_space = false;
            }
            out.push(c);
        }
    }
    if out.chars().count() <= max {
        return out;
    }
    let mut cut: String = out.chars().take(max.saturating_sub(1)).collect();
    cut.truncate(cut.trim_end().len());
    cut.push('…');
    cut
}

/// Maps a ticket to a Talkdesk interaction (`None` for a deleted ticket).
pub fn interaction(t: &Ticket, agent_base: &str) -> Option<Interaction> {
    let status = status(t.status.as_deref())?;
    let subject = [t.subject.as_deref(), t.raw_subject.as_deref()]
        .into_iter()
        .flatten()
        .map(|s| preview(s, 250))
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| format!("Ticket #{}", t.id));
    Some(Interaction {
        id: t.id.to_string(),
        subject,
        description: preview(t.description.as_deref().unwrap_or_default(), DESCRIPTION_MAX_CHARS),
        date: t.updated_at,
        url: format!("{agent_base}/agent/tickets/{}", t.id),
        kind: "ticket".into(),
        priority: priority(t.priority.as_deref()),
        status,
    })
}

/// The digits to search a phone number by: the national significant number of an E.164 number, to use as
/// `phone:*{digits}` (Zendesk matches that against every stored format of the number).
pub fn phone_search_digits(e164: &str) -> Option<String> {
    let digits = e164.strip_prefix('+')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let number = phonenumber::parse(None, e164).ok()?;
    let code = number.code().value().to_string();
    digits.strip_prefix(code.as_str()).filter(|n| n.len() >= 4).map(str::to_string)
}

/// A Zendesk id from Talkdesk's `contact_external_id`: digits only, so it is safe in a URL path.
pub fn user_id(external_id: &str) -> Option<u64> {
    let s = external_id.trim();
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|id| *id > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn user(v: Value) -> User {
        serde_json::from_str(&v.to_string()).unwrap()
    }

    #[test]
    fn export_start_time_floors_the_resume_instant_and_stays_a_minute_in_the_past() {
        let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        assert_eq!(export_start_time(None, now), 0);
        assert_eq!(export_start_time(Some(1_600_000_000_999_999), now), 1_600_000_000);
        assert_eq!(export_start_time(Some(1_600_000_000_000_000), now), 1_600_000_000);
        assert_eq!(export_start_time(Some(1_699_999_990_000_000), now), 1_699_999_940);
        assert_eq!(export_start_time(Some(-5), now), 0);
    }

    #[test]
    fn timestamps_read_as_chrono_reads_them_fast_shape_or_not() {
        let cases = [
            "2024-01-02T03:04:05Z",
            "1999-12-31T23:59:59Z",
            "2024-02-29T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2016-12-31T23:59:60Z",
            "2024-01-02T03:04:05.678Z",
            "2024-01-02T03:04:05+02:00",
            "2024-01-02 03:04:05Z",
            "2024-01-02T03:04:05z",
            "2024-1-02T03:04:05Z",
            "+024-01-02T03:04:05Z",
            "2024-01-02T03:04:0xZ",
            "",
        ];
        for case in cases {
            let chrono: Option<DateTime<Utc>> = serde_json::from_value(json!(case)).ok();
            assert_eq!(timestamp::parse(case), chrono, "{case}");
            let ours: Option<Ticket> = serde_json::from_value(json!({"id": 1, "updated_at": case})).ok();
            assert_eq!(ours.map(|t| t.updated_at), chrono, "{case}");
        }
        assert_eq!(timestamp::parse("2024-01-02T03:04:05Z").map(|t| t.timestamp()), Some(1_704_164_645));
        let user = |v: Value| serde_json::from_value::<User>(v).map(|u| u.updated_at).map_err(|e| e.to_string());
        assert_eq!(user(json!({"id": 1})), Ok(None));
        assert_eq!(user(json!({"id": 1, "updated_at": null})), Ok(None));
        assert!(user(json!({"id": 1, "updated_at": "yesterday"})).unwrap_err().contains("yesterday"));
        assert!(user(json!({"id": 1, "updated_at": 5})).is_err());
    }

    #[test]
    fn a_user_maps_to_a_contact_with_identities_company_and_user_fields() {
        let u = user(json!({
            "id": 35436, "name": " Jane Doe ", "email": "jane@example.com", "phone": "+15551234567",
            "role": "end-user", "active": true, "suspended": false, "organization_id": 57542,
            "photo": {"content_url": "https://acme.zendesk.com/photos/jane.png"},
            "user_fields": {"job_title": "CTO", "address": "37 Famous St", "site": "www.a.com, www.b.com", "handle": "@jane", "n": 5},
            "updated_at": "2024-01-02T03:04:05Z"
        }));
        let i1: Identity =
            serde_json::from_value(json!({"id": 2, "user_id": 35436, "type": "email", "value": "jane.doe@work.com"})).unwrap();
        let i2: Identity =
            serde_json::from_value(json!({"id": 1, "user_id": 35436, "type": "email", "value": "JANE@example.com", "primary": true}))
                .unwrap();
        let i3: Identity =
            serde_json::from_value(json!({"id": 3, "user_id": 35436, "type": "phone_number", "value": "+15557654321"})).unwrap();
        let fields = UserFieldMap {
            title: Some("job_title".into()),
            address: Some("address".into()),
            websites: Some("site".into()),
            twitter: Some("handle".into()),
        };
        let c = contact(
            u,
            &mut [i1, i2, i3],
            Some("Example Corp.".into()),
            &fields,
            "https://acme.zendesk.com",
        );
        assert_eq!(
            c,
            Contact {
                id: "35436".into(),
                name: "Jane Doe".into(),
                company: Some("Example Corp.".into()),
                title: Some("CTO".into()),
                emails: vec!["jane@example.com".into(), "jane.doe@work.com".into()],
                phones: vec!["+15551234567".into(), "+15557654321".into()],
                photo_url: Some("https://acme.zendesk.com/photos/jane.png".into()),
                address: Some("37 Famous St".into()),
                websites: vec!["www.a.com".into(), "www.b.com".into()],
                twitter: Some("jane".into()),
                url: Some("https://acme.zendesk.com/agent/users/35436".into()),
            }
        );
    }

    #[test]
    fn unmapped_user_fields_stay_absent_and_a_twitter_identity_fills_in() {
        let u =
            user(json!({"id": 7, "name": null, "email": null, "user_fields": {"job_title": "CTO"}, "updated_at": "2024-01-02T03:04:05Z"}));
        let tw: Identity = serde_json::from_value(json!({"id": 9, "user_id": 7, "type": "twitter", "value": "joe"})).unwrap();
        // Kinds the bridge does not map are read and left out, whatever their value looks like.
        let other = |kind: &str| -> Identity {
            serde_json::from_value(json!({"id": 10, "user_id": 7, "type": kind, "value": "+15550100@example.com"})).unwrap()
        };
        let mut identities = [other("facebook"), other("messaging"), other("a_kind_zendesk_adds_later"), tw];
        let c = contact(u, &mut identities, None, &UserFieldMap::default(), "https://x.zendesk.com");
        assert_eq!(
            (
                c.title,
                c.address,
                c.twitter.as_deref(),
                c.name.as_str(),
                c.emails.len(),
                c.phones.len()
            ),
            (None, None, Some("joe"), "7", 0, 0)
        );
    }

    #[test]
    fn a_page_s_identities_go_to_their_users_every_time_a_user_is_in_the_page() {
        let identity = |id: u64, user_id: u64, kind: &str, value: &str| -> Identity {
            serde_json::from_value(json!({"id": id, "user_id": user_id, "type": kind, "value": value})).unwrap()
        };
        // In no order, as a page may list them.
        let mut grouped = IdentitiesByUser::new(vec![
            identity(5, 30, "email", "c@x.com"),
            identity(1, 10, "email", "a@x.com"),
            identity(4, 20, "phone_number", "+15550000020"),
            identity(2, 10, "phone_number", "+15550000010"),
            identity(3, 20, "email", "b@x.com"),
        ]);
        let emails_and_phones = |user_id: u64, grouped: &mut IdentitiesByUser| {
            let u = user(json!({"id": user_id, "updated_at": "2024-01-02T03:04:05Z"}));
            let c = contact(u, grouped.of(user_id), None, &UserFieldMap::default(), "https://x.zendesk.com");
            (c.emails, c.phones)
        };
        assert_eq!(
            emails_and_phones(20, &mut grouped),
            (vec!["b@x.com".to_string()], vec!["+15550000020".to_string()])
        );
        assert_eq!(
            emails_and_phones(10, &mut grouped),
            (vec!["a@x.com".to_string()], vec!["+15550000010".to_string()])
        );
        assert_eq!(emails_and_phones(30, &mut grouped), (vec!["c@x.com".to_string()], vec![]));
        assert_eq!(emails_and_phones(15, &mut grouped), (vec![], vec![]));
        // A user changed while the page was read is in it twice; the engine keeps the later copy, which
        // must still have its identities.
        assert_eq!(
            emails_and_phones(20, &mut grouped),
            (vec!["b@x.com".to_string()], vec!["+15550000020".to_string()])
        );
    }

    #[test]
    fn user_fields_are_read_only_when_mapped_and_never_fail_a_user() {
        let fields = UserFieldMap {
            title: Some("job_title".into()),
            ..UserFieldMap::default()
        };
        let with_fields = |v: Value| user(json!({"id": 7, "user_fields": v, "updated_at": "2024-01-02T03:04:05Z"}));
        let title = |u: User, f: &UserFieldMap| contact(u, &mut [], None, f, "https://x.zendesk.com").title;
        assert_eq!(title(with_fields(json!({"job_title": "CTO"})), &fields).as_deref(), Some("CTO"));
        assert_eq!(title(with_fields(json!({"job_title": "CTO"})), &UserFieldMap::default()), None);
        // Not an object, or null: the user still maps, without the field.
        for odd in [json!(["CTO"]), json!("CTO"), json!(null)] {
            assert_eq!(title(with_fields(odd), &fields), None);
        }
    }

    #[test]
    fn deleted_suspended_and_staff_users_are_skipped_unless_staff_is_included() {
        let base = json!({"id": 1, "role": "end-user", "updated_at": "2024-01-01T00:00:00Z"});
        let with = |k: &str, v: Value| {
            let mut b = base.clone();
            b[k] = v;
            user(b)
        };
        assert_eq!(skip_reason(&user(base.clone()), false), None);
        assert_eq!(skip_reason(&with("active", json!(false)), true), Some(Skip::Deleted));
        assert_eq!(skip_reason(&with("suspended", json!(true)), true), Some(Skip::Suspended));
        assert_eq!(skip_reason(&with("role", json!("agent")), false), Some(Skip::Staff));
        assert_eq!(skip_reason(&with("role", json!("admin")), false), Some(Skip::Staff));
        assert_eq!(skip_reason(&with("role", json!("admin")), true), None);
        // A role the bridge does not know is staff, not a customer.
        assert_eq!(skip_reason(&with("role", json!("light-agent")), false), Some(Skip::Staff));
        assert_eq!(skip_reason(&with("role", Value::Null), false), None);
    }

    #[test]
    fn priorities_and_statuses_map_to_talkdesk_enums() {
        assert_eq!(priority(None), Priority::None);
        for (z, t) in [
            ("low", Priority::Low),
            ("normal", Priority::Normal),
            ("high", Priority::High),
            ("urgent", Priority::Urgent),
        ] {
            assert_eq!(priority(Some(z)), t);
        }
        for (z, t) in [
            ("new", Status::New),
            ("open", Status::Open),
            ("pending", Status::Pending),
            ("hold", Status::Pending),
            ("solved", Status::Solved),
            ("closed", Status::Closed),
        ] {
            assert_eq!(status(Some(z)), Some(t), "{z}");
        }
        assert_eq!(status(Some("deleted")), None);
        assert_eq!(status(Some("something-new")), Some(Status::Open));
    }

    #[test]
    fn description_preview_is_plain_trimmed_and_cut_on_a_char_boundary() {
        assert_eq!(preview("  Hello,\n\n  world\t! \u{7}", 500), "Hello, world !");
        let long = "é".repeat(600);
        let p = preview(&long, DESCRIPTION_MAX_CHARS);
        assert_eq!(p.chars().count(), DESCRIPTION_MAX_CHARS);
        assert!(p.ends_with('…'));
        assert_eq!(preview(&"x".repeat(500), 500).chars().count(), 500);
        assert!(!preview(&"x".repeat(500), 500).ends_with('…'));
    }

    #[test]
    fn a_ticket_maps_to_an_interaction_with_agent_url() {
        let t: Ticket = serde_json::from_value(json!({"id": 42, "subject": "", "raw_subject": "Printer {{x}}", "description": "d", "priority": null, "status": "hold", "custom_status_id": 9, "updated_at": "2024-05-01T10:00:00Z"})).unwrap();
        let i = interaction(&t, "https://acme.zendesk.com").unwrap();
        assert_eq!(
            (i.id.as_str(), i.subject.as_str(), i.url.as_str()),
            ("42", "Printer {{x}}", "https://acme.zendesk.com/agent/tickets/42")
        );
        assert_eq!((i.priority, i.status, i.kind.as_str()), (Priority::None, Status::Pending, "ticket"));
        let t: Ticket = serde_json::from_value(json!({"id": 43, "updated_at": "2024-05-01T10:00:00Z", "status": "open"})).unwrap();
        assert_eq!(interaction(&t, "https://a.zendesk.com").unwrap().subject, "Ticket #43");
    }

    #[test]
    fn phone_search_uses_the_national_number() {
        assert_eq!(phone_search_digits("+15135557611").as_deref(), Some("5135557611"));
        assert_eq!(phone_search_digits("+442079460958").as_deref(), Some("2079460958"));
        assert_eq!(phone_search_digits("+390212345678").as_deref(), Some("0212345678"));
        assert_eq!(phone_search_digits("5135557611"), None);
        assert_eq!(phone_search_digits("+1 513"), None);
    }

    #[test]
    fn only_numeric_external_ids_become_user_ids() {
        assert_eq!(user_id(" 35436 "), Some(35436));
        for bad in ["", "0", "12a", "../1", "1/tickets", "99999999999999999999999", "-1"] {
            assert_eq!(user_id(bad), None, "{bad}");
        }
    }
}
