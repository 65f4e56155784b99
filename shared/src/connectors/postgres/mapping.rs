//! Rows of the contract's relations, and how they become Talkdesk's contacts and interactions. Pure: no IO.
//!
//! Contacts: every column of the same name; blank values are omitted, lists trimmed and deduplicated, and
//! a contact without a name is named after its first email, phone or id ([`Contact::tidy`]).
//!
//! Interactions: `id`, `type` (lowercase), `date`, `url` (empty when absent), `subject` (else
//! `"{Type} #{id}"`), `description` (plain text, whitespace collapsed, at most
//! [`DESCRIPTION_MAX_CHARS`] characters), and `priority` / `status` read case-insensitively among
//! Talkdesk's values; anything else becomes [`Priority::None`] / [`Status::Open`] (the safe defaults:
//! nothing is claimed urgent, nothing is hidden as closed), logged once per value.

use std::collections::HashSet;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::connectors::ContactRecord;
use crate::talkdesk::{Contact, Interaction, Priority, Status};

/// The longest description given to Talkdesk, in characters (an ellipsis included).
pub const DESCRIPTION_MAX_CHARS: usize = 500;
/// The longest subject given to Talkdesk, in characters.
pub const SUBJECT_MAX_CHARS: usize = 250;
/// Distinct unknown priority or status values logged at most (then no more are remembered).
const MAX_LOGGED_VALUES: usize = 100;

/// One row of the contacts relation, in [`super::sql::CONTACT_FIELDS`] order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactRow {
    pub id: String,
    pub updated_at: DateTime<Utc>,
    pub name: Option<String>,
    pub company: Option<String>,
    pub title: Option<String>,
    pub emails: Option<Vec<Option<String>>>,
    pub phones: Option<Vec<Option<String>>>,
    pub photo_url: Option<String>,
    pub address: Option<String>,
    pub websites: Option<Vec<Option<String>>>,
    pub twitter: Option<String>,
    pub url: Option<String>,
}

/// One row of the interactions relation, in [`super::sql::INTERACTION_FIELDS`] order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InteractionRow {
    pub id: String,
    pub contact_id: String,
    pub kind: String,
    pub date: DateTime<Utc>,
    pub subject: Option<String>,
    pub description: Option<String>,
    pub url: Option<String>,
    pub priority: Option<String>,
    pub status: Option<String>,
}

fn list(values: Option<Vec<Option<String>>>) -> Vec<String> {
    values.unwrap_or_default().into_iter().flatten().collect()
}

/// A contact row as a sync record.
pub fn contact(row: ContactRow) -> ContactRecord {
    let contact = Contact {
        id: row.id,
        name: row.name.unwrap_or_default(),
        company: row.company,
        title: row.title,
        emails: list(row.emails),
        phones: list(row.phones),
        photo_url: row.photo_url,
        address: row.address,
        websites: list(row.websites),
        twitter: row.twitter,
        url: row.url,
    }
    .tidy();
    ContactRecord {
        updated_at: row.updated_at,
        contact,
    }
}

/// Unknown priority and status values already logged, so each is logged once.
#[derive(Default)]
pub struct UnknownValues {
    seen: Mutex<HashSet<(&'static str, String)>>,
}

impl UnknownValues {
    /// True the first time `(column, value)` is seen.
    fn first(&self, column: &'static str, value: &str) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.len() < MAX_LOGGED_VALUES && seen.insert((column, value.to_string()))
    }
}

/// Reads a priority among Talkdesk's values (any case, surrounding spaces ignored); empty is `none`.
pub fn priority(value: Option<&str>) -> Option<Priority> {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref().unwrap_or("") {
        "" | "none" => Some(Priority::None),
        "low" => Some(Priority::Low),
        "normal" => Some(Priority::Normal),
        "high" => Some(Priority::High),
        "urgent" => Some(Priority::Urgent),
        _ => None,
    }
}

/// Reads a status among Talkdesk's values (any case, surrounding spaces ignored); empty is `open`.
pub fn status(value: Option<&str>) -> Option<Status> {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref().unwrap_or("") {
        "new" => Some(Status::New),
        "" | "open" => Some(Status::Open),
        "pending" => Some(Status::Pending),
        "solved" => Some(Status::Solved),
        "closed" => Some(Status::Closed),
        _ => None,
    }
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

/// An interaction row as Talkdesk's interaction. Unknown priorities and statuses take the safe defaults
/// and are logged once per value (the value only: it is the customer's own enumeration, not personal data).
pub fn interaction(row: InteractionRow, unknown: &UnknownValues) -> Interaction {
    let kind = row.kind.trim().to_ascii_lowercase();
    let priority = priority(row.priority.as_deref()).unwrap_or_else(|| {
        let value = row.priority.as_deref().unwrap_or_default().trim();
        if unknown.first("priority", value) {
            tracing::warn!(column = "priority", value = %preview(value, 40), "interaction priority outside Talkdesk's values; shown as none");
        }
        Priority::None
    });
    let status = status(row.status.as_deref()).unwrap_or_else(|| {
        let value = row.status.as_deref().unwrap_or_default().trim();
        if unknown.first("status", value) {
            tracing::warn!(column = "status", value = %preview(value, 40), "interaction status outside Talkdesk's values; shown as open");
        }
        Status::Open
    });
    let subject = Some(preview(row.subject.as_deref().unwrap_or_default(), SUBJECT_MAX_CHARS))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| {
            let mut label: Vec<char> = kind.chars().collect();
            if let Some(first) = label.first_mut() {
                *first = first.to_ascii_uppercase();
            }
            format!("{} #{}", label.into_iter().collect::<String>(), row.id)
        });
    Interaction {
        subject,
        description: preview(row.description.as_deref().unwrap_or_default(), DESCRIPTION_MAX_CHARS),
        date: row.date,
        url: row.url.map(|u| u.trim().to_string()).unwrap_or_default(),
        kind,
        priority,
        status,
        id: row.id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn contact_rows_become_tidy_contacts_with_their_sync_instant() {
        let at = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
        let r = contact(ContactRow {
            id: "42".into(),
            updated_at: at,
            name: Some("  ".into()),
            company: Some(" Acme ".into()),
            emails: Some(vec![None, Some(" jane@acme.test ".into()), Some("JANE@acme.test".into())]),
            phones: Some(vec![Some("+14155550100".into())]),
            twitter: Some("@jane".into()),
            ..Default::default()
        });
        assert_eq!(r.updated_at, at);
        assert_eq!(r.contact.name, "jane@acme.test");
        assert_eq!(r.contact.company.as_deref(), Some("Acme"));
        assert_eq!(r.contact.emails, vec!["jane@acme.test"]);
        assert_eq!(r.contact.twitter.as_deref(), Some("jane"));
        assert_eq!(r.contact.websites, Vec::<String>::new());
    }

    #[test]
    fn priorities_and_statuses_outside_talkdesks_values_take_safe_defaults() {
        let unknown = UnknownValues::default();
        let row = |p: Option<&str>, s: Option<&str>| InteractionRow {
            id: "9".into(),
            contact_id: "1".into(),
            kind: " Ticket ".into(),
            date: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
            priority: p.map(String::from),
            status: s.map(String::from),
            ..Default::default()
        };
        let i = interaction(row(Some(" HIGH "), Some("Solved")), &unknown);
        assert_eq!((i.priority, i.status), (Priority::High, Status::Solved));
        let i = interaction(row(Some("P1"), Some("on hold")), &unknown);
        assert_eq!((i.priority, i.status), (Priority::None, Status::Open));
        let i = interaction(row(None, None), &unknown);
        assert_eq!((i.priority, i.status), (Priority::None, Status::Open));
        assert_eq!((i.kind.as_str(), i.subject.as_str(), i.url.as_str()), ("ticket", "Ticket #9", ""));
        assert!(unknown.first("status", "new-value") && !unknown.first("status", "new-value"));
    }

    #[test]
    fn descriptions_are_plain_and_cut_on_a_character_boundary() {
        assert_eq!(preview("  Hello,\n\n  world\t! \u{7}", 500), "Hello, world !");
        let long = "é".repeat(600);
        let p = preview(&long, DESCRIPTION_MAX_CHARS);
        assert_eq!(p.chars().count(), DESCRIPTION_MAX_CHARS);
        assert!(p.ends_with('…'));
    }
}
