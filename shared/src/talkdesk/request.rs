//! What Talkdesk sends, parsed strictly enough to name every mistake and loosely enough to accept every
//! shape the protocol allows:
//! - `meta.synchronization_checkpoint` absent, `null` or `""` means an initial sync;
//! - `meta.offset` absent or `null` means the first page; it may be a string or a number;
//! - `meta.context` is any JSON value;
//! - `meta.interaction_types` missing or empty means every type the connector supports;
//! - unknown fields are ignored; bodies over [`MAX_BODY_BYTES`] are refused.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::secrets::Secret;

/// The largest request body accepted (256 KiB).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// A client error, with the field it is about and what was expected. Becomes a 4xx JSON body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the request body is {size} bytes; at most {limit} bytes are accepted")]
    TooLarge { size: usize, limit: usize },
    #[error("the request body is not valid JSON ({0})")]
    NotJson(String),
    #[error("the request body must be a JSON object")]
    NotAnObject,
    #[error("`{0}` is required")]
    Missing(&'static str),
    #[error("`{field}` must be {expected}")]
    WrongType { field: String, expected: &'static str },
    #[error("`data` must identify the contact: give `contact_external_id`, `contact_emails` or `contact_phones`")]
    NothingToLookUp,
    #[error("`{field}` is not a valid {what}: {reason}")]
    InvalidToken {
        field: &'static str,
        what: &'static str,
        reason: String,
    },
    #[error("`auth.{field}` {problem}")]
    InvalidAuth { field: String, problem: String },
}

impl RequestError {
    /// The machine-readable code of the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::TooLarge { .. } => "payload_too_large",
            RequestError::NotJson(_) => "invalid_json",
            RequestError::NotAnObject => "invalid_body",
            RequestError::Missing(_) => "missing_field",
            RequestError::WrongType { .. } => "invalid_field",
            RequestError::NothingToLookUp => "missing_contact_identifier",
            RequestError::InvalidToken { field, .. } => {
                if *field == "meta.offset" {
                    "invalid_offset"
                } else {
                    "invalid_checkpoint"
                }
            }
            RequestError::InvalidAuth { .. } => "invalid_auth",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            RequestError::TooLarge { .. } => 413,
            _ => 400,
        }
    }
}

/// The `auth` hash: the credentials the integration asked the Talkdesk admin for. Every value is a
/// [`Secret`]; `Debug` shows the keys only.
#[derive(Clone, Default)]
pub struct Auth {
    fields: BTreeMap<String, Secret>,
}

impl Auth {
    pub fn get(&self, key: &str) -> Option<&Secret> {
        self.fields.get(key).filter(|s| !s.is_empty())
    }

    pub fn insert(&mut self, key: impl Into<String>, value: Secret) {
        self.fields.insert(key.into(), value);
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.fields.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    fn parse(value: &Value) -> Result<Self, RequestError> {
        let obj = value.as_object().ok_or(RequestError::WrongType {
            field: "auth".into(),
            expected: "an object of credential fields",
        })?;
        let mut fields = BTreeMap::new();
        for (k, v) in obj {
            let text = match v {
                Value::Null => continue,
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => {
                    return Err(RequestError::WrongType {
                        field: format!("auth.{k}"),
                        expected: "a string",
                    })
                }
            };
            fields.insert(k.clone(), Secret::new(text));
        }
        Ok(Auth { fields })
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("keys", &self.fields.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A contact-sync request.
#[derive(Debug, Clone)]
pub struct ContactsRequest {
    pub auth: Auth,
    /// `None` for an initial sync.
    pub checkpoint: Option<String>,
    /// `None` for the first page of a sync.
    pub offset: Option<String>,
    pub context: Option<Value>,
}

/// How Talkdesk identifies the person whose interactions it wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactLookup {
    pub external_id: Option<String>,
    pub name: Option<String>,
    pub emails: Vec<String>,
    pub phones: Vec<String>,
}

impl ContactLookup {
    /// True when the lookup names the person by something other than a name. A name alone never
    /// identifies anybody: showing a namesake's tickets would be a privacy breach.
    pub fn has_identifier(&self) -> bool {
        self.external_id.is_some() || !self.emails.is_empty() || !self.phones.is_empty()
    }
}

/// An interaction-lookup request.
#[derive(Debug, Clone)]
pub struct InteractionsRequest {
    pub auth: Auth,
    /// Empty means every type the connector supports.
    pub interaction_types: Vec<String>,
    pub data: ContactLookup,
}

/// The body as a JSON object, the only parsing done before the caller is authenticated.
pub fn parse_body(body: &[u8]) -> Result<Map<String, Value>, RequestError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(RequestError::TooLarge {
            size: body.len(),
            limit: MAX_BODY_BYTES,
        });
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(RequestError::NotJson("the body is empty".into()));
    }
    // serde_json's syntax errors name a line and column, never the content.
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(RequestError::NotAnObject),
        Err(e) => Err(RequestError::NotJson(e.to_string())),
    }
}

/// Removes `auth.{field}` from a parsed body and returns its value when it is a string, so the field
/// reaches neither the parsed [`Auth`] nor a connector.
pub fn take_auth_field(root: &mut Map<String, Value>, field: &str) -> Option<Secret> {
    match root.get_mut("auth")?.as_object_mut()?.remove(field)? {
        Value::String(s) => Some(Secret::new(s)),
        _ => None,
    }
}

fn parse_auth(root: &Map<String, Value>) -> Result<Auth, RequestError> {
    match root.get("auth") {
        None | Some(Value::Null) => Err(RequestError::Missing("auth")),
        Some(v) => Auth::parse(v),
    }
}

fn parse_meta(root: &Map<String, Value>) -> Result<Map<String, Value>, RequestError> {
    match root.get("meta") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(RequestError::WrongType {
            field: "meta".into(),
            expected: "an object",
        }),
    }
}

/// Reads the `auth` of a request whose body holds nothing else Talkdesk defines (authorization validation,
/// agent synchronization), from a body already parsed by [`parse_body`]. Other fields are ignored.
pub fn auth_request_from(root: &Map<String, Value>) -> Result<Auth, RequestError> {
    parse_auth(root)
}

/// Parses a contact-sync request body.
pub fn parse_contacts_request(body: &[u8]) -> Result<ContactsRequest, RequestError> {
    contacts_request_from(&parse_body(body)?)
}

/// Reads a contact-sync request from a body already parsed by [`parse_body`].
pub fn contacts_request_from(root: &Map<String, Value>) -> Result<ContactsRequest, RequestError> {
    let auth = parse_auth(root)?;
    let meta = parse_meta(root)?;
    let checkpoint = match meta.get("synchronization_checkpoint") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.trim().to_string()),
        Some(_) => {
            return Err(RequestError::WrongType {
                field: "meta.synchronization_checkpoint".into(),
                expected: "a string or null",
            })
        }
    };
    let offset = match meta.get("offset") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.trim().to_string()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => {
            return Err(RequestError::WrongType {
                field: "meta.offset".into(),
                expected: "a string, a number or null",
            })
        }
    };
    let context = meta.get("context").filter(|v| !v.is_null()).cloned();
    Ok(ContactsRequest {
        auth,
        checkpoint,
        offset,
        context,
    })
}

fn string_list(data: &Map<String, Value>, field: &'static str) -> Result<Vec<String>, RequestError> {
    let wrong = || RequestError::WrongType {
        field: format!("data.{field}"),
        expected: "an array of strings",
    };
    let items: Vec<&Value> = match data.get(field) {
        None | Some(Value::Null) => return Ok(vec![]),
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v @ Value::String(_)) => vec![v],
        Some(_) => return Err(wrong()),
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::Null => {}
            Value::String(s) if s.trim().is_empty() => {}
            Value::String(s) => out.push(s.trim().to_string()),
            Value::Number(n) if field == "contact_phones" => out.push(n.to_string()),
            _ => return Err(wrong()),
        }
    }
    Ok(out)
}

/// Parses an interaction-lookup request body.
pub fn parse_interactions_request(body: &[u8]) -> Result<InteractionsRequest, RequestError> {
    interactions_request_from(&parse_body(body)?)
}

/// Reads an interaction-lookup request from a body already parsed by [`parse_body`].
pub fn interactions_request_from(root: &Map<String, Value>) -> Result<InteractionsRequest, RequestError> {
    let auth = parse_auth(root)?;
    let meta = parse_meta(root)?;
    let types_wrong = || RequestError::WrongType {
        field: "meta.interaction_types".into(),
        expected: "an array of strings",
    };
    let interaction_types = match meta.get("interaction_types") {
        None | Some(Value::Null) => vec![],
        Some(Value::String(s)) => vec![s.trim().to_string()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(|s| s.trim().to_string()).ok_or_else(types_wrong))
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(types_wrong()),
    }
    .into_iter()
    .filter(|t| !t.is_empty())
    .collect();
    let data = match root.get("data") {
        None | Some(Value::Null) => return Err(RequestError::Missing("data")),
        Some(Value::Object(d)) => d,
        Some(_) => {
            return Err(RequestError::WrongType {
                field: "data".into(),
                expected: "an object",
            })
        }
    };
    let external_id = match data.get("contact_external_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.trim().to_string()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => {
            return Err(RequestError::WrongType {
                field: "data.contact_external_id".into(),
                expected: "a string or a number",
            })
        }
    };
    let name = match data.get("contact_name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.trim().to_string()),
        Some(_) => {
            return Err(RequestError::WrongType {
                field: "data.contact_name".into(),
                expected: "a string",
            })
        }
    };
    let lookup = ContactLookup {
        external_id,
        name,
        emails: string_list(data, "contact_emails")?,
        phones: string_list(data, "contact_phones")?,
    };
    if !lookup.has_identifier() && lookup.name.is_none() {
        return Err(RequestError::NothingToLookUp);
    }
    Ok(InteractionsRequest {
        auth,
        interaction_types,
        data: lookup,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn contacts(v: Value) -> Result<ContactsRequest, RequestError> {
        parse_contacts_request(v.to_string().as_bytes())
    }

    fn interactions(v: Value) -> Result<InteractionsRequest, RequestError> {
        parse_interactions_request(v.to_string().as_bytes())
    }

    #[test]
    fn checkpoint_absent_null_or_empty_means_initial_sync() {
        for meta in [
            json!({}),
            json!({"synchronization_checkpoint": null}),
            json!({"synchronization_checkpoint": ""}),
        ] {
            let r = contacts(json!({"auth": {}, "meta": meta})).unwrap();
            assert_eq!(r.checkpoint, None);
        }
        assert_eq!(contacts(json!({"auth": {}})).unwrap().checkpoint, None);
    }

    #[test]
    fn offset_may_be_a_string_or_a_number() {
        assert_eq!(
            contacts(json!({"auth": {}, "meta": {"offset": "2"}})).unwrap().offset.as_deref(),
            Some("2")
        );
        assert_eq!(
            contacts(json!({"auth": {}, "meta": {"offset": 2}})).unwrap().offset.as_deref(),
            Some("2")
        );
        assert_eq!(contacts(json!({"auth": {}, "meta": {"offset": null}})).unwrap().offset, None);
        let err = contacts(json!({"auth": {}, "meta": {"offset": [1]}})).unwrap_err();
        assert!(err.to_string().contains("meta.offset"), "{err}");
    }

    #[test]
    fn unknown_fields_are_ignored_and_context_is_kept() {
        let r = contacts(json!({"auth": {"x": 1}, "meta": {"context": {"a": [1]}, "other": true}, "extra": 5})).unwrap();
        assert_eq!(r.context, Some(json!({"a": [1]})));
        assert_eq!(r.auth.get("x").unwrap().expose(), "1");
    }

    #[test]
    fn malformed_bodies_name_the_problem() {
        assert_eq!(parse_contacts_request(b"{not json").unwrap_err().code(), "invalid_json");
        assert_eq!(parse_contacts_request(b"").unwrap_err().code(), "invalid_json");
        assert_eq!(parse_contacts_request(b"[1,2]").unwrap_err().code(), "invalid_body");
        assert_eq!(contacts(json!({"meta": {}})).unwrap_err(), RequestError::Missing("auth"));
        assert_eq!(
            contacts(json!({"auth": "x"})).unwrap_err().to_string(),
            "`auth` must be an object of credential fields"
        );
        assert!(contacts(json!({"auth": {"k": {"nested": 1}}}))
            .unwrap_err()
            .to_string()
            .contains("auth.k"));
        assert!(contacts(json!({"auth": {}, "meta": 3})).unwrap_err().to_string().contains("`meta`"));
        assert!(contacts(json!({"auth": {}, "meta": {"synchronization_checkpoint": 5}}))
            .unwrap_err()
            .to_string()
            .contains("synchronization_checkpoint"));
    }

    #[test]
    fn oversized_body_is_413() {
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        let err = parse_contacts_request(&big).unwrap_err();
        assert_eq!(err.status(), 413);
        assert_eq!(err.code(), "payload_too_large");
    }

    #[test]
    fn interaction_request_without_data_or_with_empty_data_is_refused() {
        assert_eq!(interactions(json!({"auth": {}})).unwrap_err(), RequestError::Missing("data"));
        assert_eq!(interactions(json!({"auth": {}, "data": []})).unwrap_err().code(), "invalid_field");
        for data in [
            json!({}),
            json!({"contact_emails": [], "contact_phones": [""], "contact_external_id": null}),
        ] {
            assert_eq!(
                interactions(json!({"auth": {}, "data": data})).unwrap_err(),
                RequestError::NothingToLookUp
            );
        }
    }

    #[test]
    fn name_only_request_parses_but_has_no_identifier() {
        let r = interactions(json!({"auth": {}, "data": {"contact_name": "Jane Doe"}})).unwrap();
        assert!(!r.data.has_identifier());
    }

    #[test]
    fn interaction_fields_accept_loose_but_valid_shapes() {
        let r = interactions(json!({"auth": {}, "meta": {"interaction_types": ["ticket", " call ", ""]},
            "data": {"contact_external_id": 42, "contact_emails": "a@b.co", "contact_phones": ["+1 415 555 0100", 14155550101u64]}}))
        .unwrap();
        assert_eq!(r.interaction_types, vec!["ticket", "call"]);
        assert_eq!(r.data.external_id.as_deref(), Some("42"));
        assert_eq!(r.data.emails, vec!["a@b.co"]);
        assert_eq!(r.data.phones, vec!["+1 415 555 0100", "14155550101"]);
        let err = interactions(json!({"auth": {}, "meta": {"interaction_types": [1]}, "data": {"contact_external_id": "1"}})).unwrap_err();
        assert!(err.to_string().contains("meta.interaction_types"));
        let err = interactions(json!({"auth": {}, "data": {"contact_emails": [{"x": 1}]}})).unwrap_err();
        assert!(err.to_string().contains("data.contact_emails"));
    }

    #[test]
    fn a_taken_auth_field_leaves_the_auth_and_only_a_string_is_returned() {
        let mut root = parse_body(br#"{"auth": {"bridge_token": "tok", "api_token": "t"}, "meta": {}}"#).unwrap();
        assert_eq!(
            take_auth_field(&mut root, "bridge_token").map(|s| s.expose().to_owned()).as_deref(),
            Some("tok")
        );
        let r = contacts_request_from(&root).unwrap();
        assert_eq!(r.auth.keys().collect::<Vec<_>>(), ["api_token"]);
        let mut root = parse_body(br#"{"auth": {"bridge_token": 5}}"#).unwrap();
        assert!(take_auth_field(&mut root, "bridge_token").is_none());
        assert!(contacts_request_from(&root).unwrap().auth.is_empty());
        let mut root = parse_body(br#"{"auth": "x"}"#).unwrap();
        assert!(take_auth_field(&mut root, "bridge_token").is_none());
    }

    #[test]
    fn auth_debug_shows_keys_but_never_values() {
        let r = contacts(json!({"auth": {"api_token": "s3cr3t-value"}})).unwrap();
        let dbg = format!("{r:?}");
        assert!(dbg.contains("api_token"));
        assert!(!dbg.contains("s3cr3t-value"));
    }
}
