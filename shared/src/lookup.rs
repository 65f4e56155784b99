//! The interaction lookup, connector-agnostic: which types to ask for, identifiers in comparable form,
//! and merging what the connector found into Talkdesk's answer. All pure.

use std::collections::HashSet;

use phonenumber::country::Id as Region;

use crate::connectors::InteractionQuery;
use crate::phone;
use crate::talkdesk::{ContactLookup, Interaction};

/// The types to return: those asked for that the connector supports, or all it supports when none were
/// asked for. Unknown types are ignored, so asking only for unknown types yields nothing.
pub fn resolve_types(requested: &[String], supported: &[&'static str]) -> Vec<String> {
    if requested.is_empty() {
        return supported.iter().map(|s| s.to_string()).collect();
    }
    let mut out: Vec<String> = Vec::new();
    for t in requested {
        let t = t.to_ascii_lowercase();
        if supported.contains(&t.as_str()) && !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

/// Builds the connector query, or `None` when there is nothing to look up: no identifier other than a name
/// (a name alone never identifies a person) or no supported type asked for.
pub fn build_query(
    data: &ContactLookup,
    requested: &[String],
    supported: &[&'static str],
    region: Region,
    limit: usize,
) -> Option<InteractionQuery> {
    let types = resolve_types(requested, supported);
    if types.is_empty() || !data.has_identifier() {
        return None;
    }
    let mut emails: Vec<String> = Vec::new();
    for e in &data.emails {
        let e = e.trim().to_lowercase();
        if e.contains('@') && !emails.contains(&e) {
            emails.push(e);
        }
    }
    let mut phones: Vec<String> = Vec::new();
    for p in &data.phones {
        if let Some(e164) = phone::to_e164(p, region) {
            if !phones.contains(&e164) {
                phones.push(e164);
            }
        }
    }
    if data.external_id.is_none() && emails.is_empty() && phones.is_empty() {
        return None;
    }
    Some(InteractionQuery {
        external_id: data.external_id.clone(),
        emails,
        phones,
        types,
        limit,
    })
}

/// Merges what was found: only the asked types, each interaction once, newest first, at most `cap`.
pub fn merge(found: Vec<Interaction>, types: &[String], cap: usize) -> Vec<Interaction> {
    let mut seen: HashSet<(String, String)> = HashSet::new();
    let mut out: Vec<Interaction> = found
        .into_iter()
        .filter(|i| types.iter().any(|t| t == &i.kind))
        .filter(|i| seen.insert((i.kind.clone(), i.id.clone())))
        .collect();
    out.sort_by(|a, b| b.date.cmp(&a.date).then_with(|| crate::sync::cmp_ids(&b.id, &a.id)));
    out.truncate(cap);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::talkdesk::{Priority, Status};
    use chrono::{TimeZone, Utc};

    fn interaction(id: &str, kind: &str, day: u32) -> Interaction {
        Interaction {
            id: id.into(),
            subject: format!("s{id}"),
            description: String::new(),
            date: Utc.with_ymd_and_hms(2025, 1, day, 0, 0, 0).unwrap(),
            url: format!("https://x/{id}"),
            kind: kind.into(),
            priority: Priority::Normal,
            status: Status::Open,
        }
    }

    #[test]
    fn missing_types_mean_all_supported_and_unknown_types_are_ignored() {
        let supported = ["ticket", "call"];
        assert_eq!(resolve_types(&[], &supported), vec!["ticket", "call"]);
        assert_eq!(
            resolve_types(&["Call".into(), "fax".into(), "call".into()], &supported),
            vec!["call"]
        );
        assert!(resolve_types(&["fax".into()], &supported).is_empty());
    }

    #[test]
    fn a_name_alone_never_becomes_a_query() {
        let data = ContactLookup {
            name: Some("Jane Doe".into()),
            ..Default::default()
        };
        assert!(build_query(&data, &[], &["ticket"], phone::parse_region("US").unwrap(), 10).is_none());
    }

    #[test]
    fn identifiers_are_normalised_and_deduplicated() {
        let data = ContactLookup {
            emails: vec!["Jane@Example.com".into(), "jane@example.com".into(), "not-an-email".into()],
            phones: vec!["(415) 555-0134".into(), "+1 415 555 0134".into(), "nope".into()],
            ..Default::default()
        };
        let q = build_query(&data, &[], &["ticket"], phone::parse_region("US").unwrap(), 10).unwrap();
        assert_eq!(q.emails, vec!["jane@example.com"]);
        assert_eq!(q.phones, vec!["+14155550134"]);
        let only_garbage = ContactLookup {
            emails: vec!["nope".into()],
            ..Default::default()
        };
        assert!(build_query(&only_garbage, &[], &["ticket"], phone::parse_region("US").unwrap(), 10).is_none());
    }

    #[test]
    fn merge_filters_dedupes_sorts_newest_first_and_caps() {
        let found = vec![
            interaction("1", "ticket", 1),
            interaction("2", "ticket", 5),
            interaction("1", "ticket", 1),
            interaction("3", "call", 9),
            interaction("4", "ticket", 3),
            interaction("5", "fax", 20),
        ];
        let merged = merge(found.clone(), &["ticket".into(), "call".into()], 10);
        let ids: Vec<&str> = merged.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, vec!["3", "2", "4", "1"]);
        let capped = merge(found, &["ticket".into()], 2);
        assert_eq!(capped.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), vec!["2", "4"]);
    }
}
