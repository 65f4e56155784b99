//! The order of a sync: ascending `(updated_at, id)`, timestamps in whole microseconds, ids compared
//! numerically when both are numbers (Zendesk, HubSpot and Freshdesk ids are) and as text otherwise.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Compares two record ids: numbers by value, then text; a total order consistent with equality.
pub fn cmp_ids(a: &str, b: &str) -> Ordering {
    fn numeric(s: &str) -> Option<u128> {
        if !s.is_empty() && s.len() <= 38 && s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    }
    match (numeric(a), numeric(b)) {
        (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.cmp(b)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// Microseconds since the Unix epoch: the resolution of every position.
pub fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Where one record stands in the sync order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncKey {
    pub ts: i64,
    pub id: String,
}

impl SyncKey {
    pub fn new(updated_at: DateTime<Utc>, id: impl Into<String>) -> Self {
        SyncKey {
            ts: micros(updated_at),
            id: id.into(),
        }
    }
}

impl Ord for SyncKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.ts.cmp(&other.ts).then_with(|| cmp_ids(&self.id, &other.id))
    }
}

impl PartialOrd for SyncKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// An exclusive lower bound in the sync order: "everything after this". With an `id` it sits right after
/// that record; without one it sits before every record at `ts` (so records at `ts` itself come after it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    #[serde(rename = "t")]
    pub ts: i64,
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl Position {
    /// Right after `key`.
    pub fn after(key: &SyncKey) -> Self {
        Position {
            ts: key.ts,
            id: Some(key.id.clone()),
        }
    }

    /// Before every record updated at `t` or later.
    pub fn from_instant(t: DateTime<Utc>) -> Self {
        Position { ts: micros(t), id: None }
    }

    /// After every record updated at `t` or earlier.
    pub fn after_instant(t: DateTime<Utc>) -> Self {
        Position {
            ts: micros(t).saturating_add(1),
            id: None,
        }
    }

    pub fn instant(&self) -> DateTime<Utc> {
        from_micros(self.ts)
    }

    /// True when `key` comes after this bound.
    pub fn admits(&self, key: &SyncKey) -> bool {
        match key.ts.cmp(&self.ts) {
            Ordering::Greater => true,
            Ordering::Less => false,
            Ordering::Equal => match &self.id {
                None => true,
                Some(id) => cmp_ids(&key.id, id) == Ordering::Greater,
            },
        }
    }

    /// Whether this bound is no earlier than `other` (it admits a subset of what `other` admits).
    pub fn at_or_after(&self, other: &Position) -> bool {
        match self.ts.cmp(&other.ts) {
            Ordering::Greater => true,
            Ordering::Less => false,
            Ordering::Equal => match (&self.id, &other.id) {
                (_, None) => true,
                (None, Some(_)) => false,
                (Some(a), Some(b)) => cmp_ids(a, b) != Ordering::Less,
            },
        }
    }
}

/// `admits` for an optional bound: `None` admits everything.
pub fn admits(bound: Option<&Position>, key: &SyncKey) -> bool {
    bound.is_none_or(|b| b.admits(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_ids_sort_by_value_and_text_ids_after_them() {
        let mut ids = vec!["10", "9", "abc", "100", "0010", "Abc"];
        ids.sort_by(|a, b| cmp_ids(a, b));
        assert_eq!(ids, vec!["9", "0010", "10", "100", "Abc", "abc"]);
    }

    #[test]
    fn a_bound_with_an_id_admits_only_later_ids_at_the_same_instant() {
        let p = Position {
            ts: 5,
            id: Some("20".into()),
        };
        assert!(!p.admits(&SyncKey { ts: 5, id: "3".into() }));
        assert!(!p.admits(&SyncKey { ts: 5, id: "20".into() }));
        assert!(p.admits(&SyncKey { ts: 5, id: "21".into() }));
        assert!(p.admits(&SyncKey { ts: 6, id: "1".into() }));
        assert!(!p.admits(&SyncKey { ts: 4, id: "99".into() }));
    }

    #[test]
    fn a_bound_without_an_id_admits_the_whole_instant() {
        let p = Position { ts: 5, id: None };
        assert!(p.admits(&SyncKey { ts: 5, id: "0".into() }));
        assert!(!p.admits(&SyncKey { ts: 4, id: "0".into() }));
        let end = Position::after_instant(from_micros(5));
        assert!(!end.admits(&SyncKey { ts: 5, id: "zzz".into() }));
    }

    #[test]
    fn bounds_are_ordered() {
        let a = Position { ts: 5, id: None };
        let b = Position {
            ts: 5,
            id: Some("1".into()),
        };
        assert!(b.at_or_after(&a));
        assert!(!a.at_or_after(&b));
        assert!(a.at_or_after(&a));
    }
}
