//! What the bridge answers.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};

/// One contact as Talkdesk stores it. Optional fields are omitted when empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Contact {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phones: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub websites: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub twitter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl Contact {
    /// Makes the contact fit the protocol: blank optional fields become absent, list entries are trimmed
    /// and deduplicated, and a contact without a name is named after its first email, phone or id
    /// (`name` is mandatory).
    pub fn tidy(mut self) -> Self {
        // Strings are kept as they are when there is nothing to trim (most are): no copy per field.
        fn trimmed(s: String) -> String {
            let t = s.trim();
            if t.len() == s.len() {
                s
            } else {
                t.to_string()
            }
        }
        fn opt(v: Option<String>) -> Option<String> {
            v.map(trimmed).filter(|s| !s.is_empty())
        }
        // In place: the kept values move to the front of the same vector.
        fn list(mut v: Vec<String>) -> Vec<String> {
            let mut kept = 0;
            for i in 0..v.len() {
                let s = trimmed(std::mem::take(&mut v[i]));
                if !s.is_empty() && !v[..kept].iter().any(|o| o.eq_ignore_ascii_case(&s)) {
                    v[kept] = s;
                    kept += 1;
                }
            }
            v.truncate(kept);
            v
        }
        self.company = opt(self.company);
        self.title = opt(self.title);
        self.photo_url = opt(self.photo_url);
        self.address = opt(self.address);
        self.twitter = opt(self.twitter.map(|t| t.trim().trim_start_matches('@').to_string()));
        self.url = opt(self.url);
        self.emails = list(self.emails);
        self.phones = list(self.phones);
        self.websites = list(self.websites);
        self.name = trimmed(self.name);
        if self.name.is_empty() {
            self.name = self
                .emails
                .first()
                .or(self.phones.first())
                .cloned()
                .unwrap_or_else(|| self.id.clone());
        }
        self
    }
}

impl Contact {
    /// Appends this contact's JSON to `out`: the same bytes as `serde_json::to_writer` (fields in order,
    /// empty optional fields left out), written directly. A page writes a thousand of them, and serde_json's
    /// writer, a call per key, quote and value, was the larger part of serialising a page (issue 14).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        use crate::json::push_string;
        fn opt(out: &mut Vec<u8>, key: &[u8], v: &Option<String>) {
            if let Some(v) = v {
                out.extend_from_slice(key);
                push_string(out, v);
            }
        }
        fn list(out: &mut Vec<u8>, key: &[u8], v: &[String]) {
            if let Some((first, rest)) = v.split_first() {
                out.extend_from_slice(key);
                out.push(b'[');
                push_string(out, first);
                for s in rest {
                    out.push(b',');
                    push_string(out, s);
                }
                out.push(b']');
            }
        }
        out.extend_from_slice(b"{\"id\":");
        push_string(out, &self.id);
        out.extend_from_slice(b",\"name\":");
        push_string(out, &self.name);
        opt(out, b",\"company\":", &self.company);
        opt(out, b",\"title\":", &self.title);
        list(out, b",\"emails\":", &self.emails);
        list(out, b",\"phones\":", &self.phones);
        opt(out, b",\"photo_url\":", &self.photo_url);
        opt(out, b",\"address\":", &self.address);
        list(out, b",\"websites\":", &self.websites);
        opt(out, b",\"twitter\":", &self.twitter);
        opt(out, b",\"url\":", &self.url);
        out.push(b'}');
    }
}

/// The answer to one contact-sync request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactsResponse {
    pub contacts: Vec<Contact>,
    pub synchronization_checkpoint: String,
    /// Absent (not `null`) on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<String>,
    /// Sent only together with `next_offset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<serde_json::Value>,
}

impl ContactsResponse {
    /// This response as JSON, with `contacts` given already serialised: `elements` are the array's
    /// elements, comma-joined (`{...},{...}`), as the sync engine wrote them once. The same bytes as
    /// `serde_json::to_string` of a response holding those contacts.
    pub fn json_around(
        elements: &[u8],
        synchronization_checkpoint: &str,
        next_offset: Option<&str>,
        context: Option<&serde_json::Value>,
    ) -> String {
        #[derive(Serialize)]
        struct Rest<'a> {
            synchronization_checkpoint: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            next_offset: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            context: Option<&'a serde_json::Value>,
        }
        let rest = serde_json::to_vec(&Rest {
            synchronization_checkpoint,
            next_offset,
            context,
        })
        .unwrap_or_else(|_| b"{}".to_vec());
        let mut out = Vec::with_capacity(elements.len() + rest.len() + 16);
        out.extend_from_slice(b"{\"contacts\":[");
        out.extend_from_slice(elements);
        out.push(b']');
        // `rest` is an object with at least the checkpoint: continue it after the array.
        if rest.len() > 2 {
            out.push(b',');
        }
        out.extend_from_slice(&rest[1..]);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Talkdesk's priority enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    None,
    Low,
    Normal,
    High,
    Urgent,
}

/// Talkdesk's status enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    New,
    Open,
    Pending,
    Solved,
    Closed,
}

impl Priority {
    pub const ALL: [Priority; 5] = [Priority::None, Priority::Low, Priority::Normal, Priority::High, Priority::Urgent];
}

impl Status {
    pub const ALL: [Status; 5] = [Status::New, Status::Open, Status::Pending, Status::Solved, Status::Closed];
}

/// One interaction (a ticket, a call, an email...) with the contact. `id` is the interaction's own id in
/// the external system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interaction {
    pub id: String,
    pub subject: String,
    pub description: String,
    #[serde(serialize_with = "rfc3339_utc")]
    pub date: DateTime<Utc>,
    pub url: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub priority: Priority,
    pub status: Status,
}

/// One agent of the external system, as Talkdesk's agent synchronization expects it: all three fields
/// mandatory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    pub id: String,
    pub name: String,
    pub email: String,
}

/// The answer to an agent synchronization: every agent, in one response (the protocol has no paging).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentsResponse {
    pub agents: Vec<Agent>,
}

fn rfc3339_utc<S: Serializer>(date: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&date.to_rfc3339_opts(SecondsFormat::Secs, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_contact_is_written_as_serde_json_writes_it() {
        let odd = ["", "plain", "Zoë \"Z\" O'Neil", "back\\slash", "tab\tnew\nline\u{1}", "日本 🙂"];
        let mut contacts = vec![Contact::default()];
        for (i, s) in odd.iter().enumerate() {
            let some = |k: usize| !(i + k).is_multiple_of(3);
            let text = |k: usize| some(k).then(|| format!("{s}{k}"));
            let texts = |k: usize| (0..(i + k) % 3).map(|n| format!("{s}{n}")).collect::<Vec<_>>();
            contacts.push(Contact {
                id: format!("{i}{s}"),
                name: s.to_string(),
                company: text(1),
                title: text(2),
                emails: texts(0),
                phones: texts(1),
                photo_url: text(0),
                address: text(4),
                websites: texts(2),
                twitter: text(5),
                url: text(3),
            });
        }
        for c in contacts {
            let mut ours = b"[1,".to_vec();
            c.write_json(&mut ours);
            assert_eq!(ours[3..], serde_json::to_vec(&c).unwrap()[..], "{c:?}");
        }
    }

    #[test]
    fn empty_optional_contact_fields_are_omitted() {
        let c = Contact {
            id: "1".into(),
            name: "Joe".into(),
            company: Some("  ".into()),
            ..Default::default()
        }
        .tidy();
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json, serde_json::json!({"id": "1", "name": "Joe"}));
    }

    #[test]
    fn nameless_contact_is_named_after_its_first_email() {
        let c = Contact {
            id: "7".into(),
            emails: vec![" a@b.co ".into(), "A@B.CO".into()],
            ..Default::default()
        }
        .tidy();
        assert_eq!(c.name, "a@b.co");
        assert_eq!(c.emails, vec!["a@b.co"]);
    }

    #[test]
    fn lists_are_trimmed_and_keep_the_first_of_each_value_in_order() {
        let c = Contact {
            id: "7".into(),
            name: "Joe".into(),
            phones: vec![
                " +1 ".into(),
                "".into(),
                "x".into(),
                "+1".into(),
                "X".into(),
                "  ".into(),
                " y".into(),
            ],
            websites: vec!["".into()],
            ..Default::default()
        }
        .tidy();
        assert_eq!(c.phones, vec!["+1", "x", "y"]);
        assert!(c.websites.is_empty());
    }

    #[test]
    fn last_page_has_no_next_offset_key_and_no_context() {
        let r = ContactsResponse {
            contacts: vec![],
            synchronization_checkpoint: "x".into(),
            next_offset: None,
            context: None,
        };
        let json = serde_json::to_string(&r).unwrap();
        assert!(!json.contains("next_offset"));
        assert!(!json.contains("context"));
    }

    #[test]
    fn a_response_written_around_serialised_contacts_is_the_same_json() {
        let contacts = vec![
            Contact {
                id: "1".into(),
                name: "A \"quoted\" name".into(),
                emails: vec!["a@b.co".into()],
                ..Default::default()
            },
            Contact {
                id: "2".into(),
                name: "Zoë".into(),
                ..Default::default()
            },
        ];
        let elements: Vec<String> = contacts.iter().map(|c| serde_json::to_string(c).unwrap()).collect();
        for (contacts, elements) in [(contacts.clone(), elements.join(",")), (vec![], String::new())] {
            for (next_offset, context) in [(None, None), (Some("o"), Some(serde_json::json!({"page": 2})))] {
                let whole = ContactsResponse {
                    contacts: contacts.clone(),
                    synchronization_checkpoint: "c".into(),
                    next_offset: next_offset.map(str::to_string),
                    context: context.clone(),
                };
                assert_eq!(
                    ContactsResponse::json_around(elements.as_bytes(), "c", next_offset, context.as_ref()),
                    serde_json::to_string(&whole).unwrap()
                );
            }
        }
    }

    #[test]
    fn interaction_date_is_rfc3339_utc_and_enums_are_lowercase() {
        let i = Interaction {
            id: "42".into(),
            subject: "s".into(),
            description: "d".into(),
            date: Utc.with_ymd_and_hms(2025, 3, 1, 12, 30, 5).unwrap(),
            url: "https://x".into(),
            kind: "ticket".into(),
            priority: Priority::None,
            status: Status::Pending,
        };
        let json = serde_json::to_value(&i).unwrap();
        assert_eq!(json["date"], "2025-03-01T12:30:05Z");
        assert_eq!(json["priority"], "none");
        assert_eq!(json["status"], "pending");
        assert_eq!(json["type"], "ticket");
    }
}
