//! Opaque tokens for `next_offset` and `synchronization_checkpoint`.
//!
//! A token reads `v1.<payload>.<signature>`: the payload is base64url JSON holding the sync position, the
//! signature is HMAC-SHA256 over `v1.<payload>` with the deployment's token key. The payload names its
//! kind (offset or checkpoint) and carries a tag of the account it was issued for, so a token that was
//! altered, forged, issued by another deployment, issued for another account or passed in the wrong field
//! is refused instead of silently restarting a full sync. Only URL-safe characters are used.
//!
//! Checkpoints that are plain timestamps (`2012-11-20 23:01:00 UTC`, the protocol document's example, or
//! RFC 3339) are accepted as "incremental from that instant".

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::position::Position;
use crate::secrets::Secret;

type HmacSha256 = Hmac<Sha256>;

const VERSION: &str = "v1";

/// Why a token was refused. The messages say what is wrong without echoing the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("it is not a token this bridge issued ({0})")]
    Malformed(&'static str),
    #[error("its version `{0}` is not supported")]
    UnsupportedVersion(String),
    #[error("its signature does not match: it was altered or issued by another deployment")]
    BadSignature,
    #[error("it was issued for another account")]
    OtherAccount,
    #[error("it is a {found}, not a {expected}")]
    WrongKind { expected: &'static str, found: &'static str },
}

/// Where the next page of a sync run starts. Carried in `next_offset`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetState {
    /// The run's frozen upper bound, in microseconds: run start minus the provider's indexing lag.
    #[serde(rename = "r")]
    pub t_run: i64,
    /// The run's lower bound (its checkpoint); `None` for an initial sync.
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Position>,
    /// Everything up to here was returned.
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Position>,
    /// The provider's own cursor for the upstream page that holds the next record, where it has one.
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Pages already returned in this run.
    #[serde(rename = "p", default)]
    pub page: u32,
    /// The cursor continues right after `after`: nothing at or before `after` may come back (when it does,
    /// the connector broke its order and the engine rewinds). False when the next request re-reads.
    #[serde(rename = "v", default, skip_serializing_if = "std::ops::Not::not")]
    pub continues: bool,
    /// Draining the records of this instant (microseconds) in id order, for a connector ordered by
    /// `updated_at` alone whose tie is larger than one upstream page.
    #[serde(rename = "d", default, skip_serializing_if = "Option::is_none")]
    pub tie: Option<i64>,
}

/// Where the next incremental sync starts. Carried in `synchronization_checkpoint`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CheckpointState {
    /// Everything up to here was returned; `None` means nothing yet (a full sync follows).
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Position>,
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    #[serde(rename = "k")]
    kind: String,
    #[serde(rename = "x")]
    account: String,
    #[serde(flatten)]
    state: T,
}

/// Signs and verifies tokens with the deployment's key.
///
/// Besides the key that signs (SSM `token-key`), a signer holds verify-only keys: the key before the last
/// rotation (`token-key-previous`), so tokens Talkdesk still holds keep verifying, and the key of the next
/// rotation (`token-key-next`), so a token signed by a container that already switched to it verifies on a
/// container that has not. A verify-only key never signs.
#[derive(Clone)]
pub struct TokenSigner {
    key: Secret,
    verify_only: Vec<Secret>,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner(..)")
    }
}

impl TokenSigner {
    pub fn new(key: Secret) -> Self {
        TokenSigner {
            key,
            verify_only: Vec::new(),
        }
    }

    /// Also accepts tokens signed with `previous` (SSM `token-key-previous`), for verification only.
    pub fn with_previous(self, previous: Option<Secret>) -> Self {
        self.also_verifying(previous)
    }

    /// Also accepts tokens signed with `next` (SSM `token-key-next`), for verification only: the first
    /// phase of a rotation, so every container knows the new key before any signs with it.
    pub fn with_next(self, next: Option<Secret>) -> Self {
        self.also_verifying(next)
    }

    fn also_verifying(mut self, key: Option<Secret>) -> Self {
        if let Some(key) = key {
            let known = self.key.ct_eq(key.expose()) || self.verify_only.iter().any(|k| k.ct_eq(key.expose()));
            if !known {
                self.verify_only.push(key);
            }
        }
        self
    }

    /// How many keys a token may be signed with (the signing key and the verify-only ones).
    pub fn verifying_keys(&self) -> usize {
        1 + self.verify_only.len()
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length.
        HmacSha256::new_from_slice(self.key.expose().as_bytes()).unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
    }

    /// A short keyed tag of the account, so tokens are bound to it without revealing it.
    fn account_tag(&self, account: &str) -> String {
        let mut mac = self.mac();
        mac.update(b"account\0");
        mac.update(account.as_bytes());
        URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..12])
    }

    fn sign(&self, signed_part: &str) -> String {
        let mut mac = self.mac();
        mac.update(signed_part.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    fn encode<T: Serialize>(&self, kind: &str, account: &str, state: &T) -> String {
        let envelope = Envelope {
            kind: kind.to_string(),
            account: self.account_tag(account),
            state,
        };
        let json = serde_json::to_vec(&envelope).unwrap_or_default();
        let signed = format!("{VERSION}.{}", URL_SAFE_NO_PAD.encode(json));
        let sig = self.sign(&signed);
        format!("{signed}.{sig}")
    }

    /// Verifies with the signing key, then, while the signature does not match, with each verify-only key.
    /// Only a bad signature moves on to the next key: a token that one key verifies is judged by it alone.
    fn decode<T: for<'de> Deserialize<'de>>(&self, kind: &'static str, account: &str, token: &str) -> Result<T, TokenError> {
        let mut result = self.decode_with_key(kind, account, token);
        for key in &self.verify_only {
            if !matches!(result, Err(TokenError::BadSignature)) {
                break;
            }
            result = TokenSigner::new(key.clone()).decode_with_key(kind, account, token);
        }
        result
    }

    fn decode_with_key<T: for<'de> Deserialize<'de>>(&self, kind: &'static str, account: &str, token: &str) -> Result<T, TokenError> {
        let mut parts = token.split('.');
        let (Some(version), Some(payload), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(TokenError::Malformed("expected three dot-separated parts"));
        };
        if version != VERSION {
            return Err(TokenError::UnsupportedVersion(version.chars().take(8).collect()));
        }
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| TokenError::Malformed("the signature is not base64url"))?;
        let mut mac = self.mac();
        mac.update(version.as_bytes());
        mac.update(b".");
        mac.update(payload.as_bytes());
        mac.verify_slice(&sig).map_err(|_| TokenError::BadSignature)?;
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed("the payload is not base64url"))?;
        let envelope: Envelope<serde_json::Value> =
            serde_json::from_slice(&json).map_err(|_| TokenError::Malformed("the payload is not a token"))?;
        if envelope.kind != kind {
            let found = match envelope.kind.as_str() {
                "offset" => "next_offset",
                "checkpoint" => "synchronization_checkpoint",
                _ => "different token",
            };
            return Err(TokenError::WrongKind {
                expected: if kind == "offset" {
                    "next_offset"
                } else {
                    "synchronization_checkpoint"
                },
                found,
            });
        }
        if envelope.account != self.account_tag(account) {
            return Err(TokenError::OtherAccount);
        }
        serde_json::from_value(envelope.state).map_err(|_| TokenError::Malformed("the payload is not a token"))
    }

    pub fn encode_offset(&self, account: &str, state: &OffsetState) -> String {
        self.encode("offset", account, state)
    }

    pub fn decode_offset(&self, account: &str, token: &str) -> Result<OffsetState, TokenError> {
        self.decode("offset", account, token)
    }

    pub fn encode_checkpoint(&self, account: &str, state: &CheckpointState) -> String {
        self.encode("checkpoint", account, state)
    }

    /// Decodes a checkpoint this bridge issued, or a plain timestamp (incremental from that instant).
    pub fn decode_checkpoint(&self, account: &str, token: &str) -> Result<CheckpointState, TokenError> {
        if looks_like_token(token) {
            return self.decode("checkpoint", account, token);
        }
        parse_legacy_timestamp(token)
            .map(|t| CheckpointState {
                after: Some(Position::from_instant(t)),
            })
            .ok_or(TokenError::Malformed(
                "neither a token nor a timestamp such as `2012-11-20 23:01:00 UTC`",
            ))
    }
}

fn looks_like_token(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() > 2 && b[0] == b'v' && b[1].is_ascii_digit() && s.contains('.')
}

/// Reads the timestamp shapes a checkpoint may have been stored in before this bridge (or by Talkdesk's
/// own example): `2012-11-20 23:01:00 UTC`, RFC 3339, or Unix seconds.
pub fn parse_legacy_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let naive = s.strip_suffix(" UTC").or_else(|| s.strip_suffix('Z')).unwrap_or(s);
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(naive, fmt) {
            return Some(t.and_utc());
        }
    }
    if !s.is_empty() && s.len() <= 12 && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<i64>().ok().and_then(|secs| DateTime::from_timestamp(secs, 0));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn signer() -> TokenSigner {
        TokenSigner::new(Secret::new("test-key"))
    }

    fn offset() -> OffsetState {
        OffsetState {
            t_run: 1_700_000_000_000_000,
            since: None,
            after: Some(Position {
                ts: 1_600_000_000_000_000,
                id: Some("42".into()),
            }),
            cursor: Some("MTY5NDMwMzUyNi4wfHw2MTMwODY5MTY4OTIyfA==".into()),
            page: 3,
            continues: true,
            tie: Some(1_600_000_000_000_000),
        }
    }

    #[test]
    fn offsets_round_trip_and_are_url_safe() {
        let s = signer();
        let tok = s.encode_offset("sandbox", &offset());
        assert!(
            tok.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'),
            "{tok}"
        );
        assert_eq!(s.decode_offset("sandbox", &tok).unwrap(), offset());
    }

    #[test]
    fn a_tampered_token_is_refused() {
        let s = signer();
        let tok = s.encode_offset("sandbox", &offset());
        let mut parts: Vec<String> = tok.split('.').map(String::from).collect();
        let forged = OffsetState {
            page: 0,
            after: None,
            ..offset()
        };
        let forged_json = format!("{{\"k\":\"offset\",\"x\":\"{}\",\"r\":{}}}", s.account_tag("sandbox"), forged.t_run);
        parts[1] = URL_SAFE_NO_PAD.encode(forged_json);
        assert_eq!(s.decode_offset("sandbox", &parts.join(".")), Err(TokenError::BadSignature));
        let other_key = TokenSigner::new(Secret::new("other-key"));
        assert_eq!(other_key.decode_offset("sandbox", &tok), Err(TokenError::BadSignature));
    }

    #[test]
    fn a_token_of_another_account_is_refused() {
        let s = signer();
        let tok = s.encode_offset("zendesk:acme", &offset());
        assert_eq!(s.decode_offset("zendesk:other", &tok), Err(TokenError::OtherAccount));
    }

    #[test]
    fn an_offset_is_not_accepted_as_a_checkpoint_nor_the_reverse() {
        let s = signer();
        let off = s.encode_offset("a", &offset());
        assert!(matches!(s.decode_checkpoint("a", &off), Err(TokenError::WrongKind { .. })));
        let cp = s.encode_checkpoint("a", &CheckpointState::default());
        assert!(matches!(s.decode_offset("a", &cp), Err(TokenError::WrongKind { .. })));
    }

    #[test]
    fn a_token_of_the_previous_key_is_verified_but_never_issued() {
        let old = TokenSigner::new(Secret::new("old-key"));
        let new = TokenSigner::new(Secret::new("new-key")).with_previous(Some(Secret::new("old-key")));
        let issued_before = old.encode_offset("a", &offset());
        assert_eq!(new.decode_offset("a", &issued_before).unwrap(), offset());
        let cp = old.encode_checkpoint("a", &CheckpointState::default());
        assert_eq!(new.decode_checkpoint("a", &cp).unwrap(), CheckpointState::default());
        // What the new signer issues is signed with the new key only.
        assert_eq!(
            old.decode_offset("a", &new.encode_offset("a", &offset())),
            Err(TokenError::BadSignature)
        );
        // The account binding still holds under the previous key, and a third key is still refused.
        assert_eq!(new.decode_offset("b", &issued_before), Err(TokenError::OtherAccount));
        let other = TokenSigner::new(Secret::new("other-key")).encode_offset("a", &offset());
        assert_eq!(new.decode_offset("a", &other), Err(TokenError::BadSignature));
    }

    #[test]
    fn a_token_of_the_next_key_is_verified_but_never_issued() {
        // Phase 1 of a rotation: this container still signs with the old key and only verifies the next.
        let learning = TokenSigner::new(Secret::new("old-key")).with_next(Some(Secret::new("new-key")));
        let switched = TokenSigner::new(Secret::new("new-key")).with_previous(Some(Secret::new("old-key")));
        let from_switched = switched.encode_offset("a", &offset());
        assert_eq!(learning.decode_offset("a", &from_switched).unwrap(), offset());
        let cp = switched.encode_checkpoint("a", &CheckpointState::default());
        assert_eq!(learning.decode_checkpoint("a", &cp).unwrap(), CheckpointState::default());
        // What it issues is signed with the old key: a signer knowing only the new key refuses it.
        let issued = learning.encode_offset("a", &offset());
        assert_eq!(
            TokenSigner::new(Secret::new("new-key")).decode_offset("a", &issued),
            Err(TokenError::BadSignature)
        );
        assert_eq!(switched.decode_offset("a", &issued).unwrap(), offset());
        assert_eq!(learning.decode_offset("b", &from_switched), Err(TokenError::OtherAccount));
    }

    #[test]
    fn a_signer_with_previous_and_next_keys_verifies_all_three_and_nothing_else() {
        let signer = TokenSigner::new(Secret::new("current-key"))
            .with_previous(Some(Secret::new("previous-key")))
            .with_next(Some(Secret::new("next-key")));
        assert_eq!(signer.verifying_keys(), 3);
        for key in ["current-key", "previous-key", "next-key"] {
            let tok = TokenSigner::new(Secret::new(key)).encode_offset("a", &offset());
            assert_eq!(signer.decode_offset("a", &tok).unwrap(), offset(), "{key}");
        }
        let other = TokenSigner::new(Secret::new("other-key")).encode_offset("a", &offset());
        assert_eq!(signer.decode_offset("a", &other), Err(TokenError::BadSignature));
        // A key given twice (token-key-next left equal to token-key) is held once.
        let same = TokenSigner::new(Secret::new("k"))
            .with_next(Some(Secret::new("k")))
            .with_previous(None);
        assert_eq!(same.verifying_keys(), 1);
    }

    #[test]
    fn garbage_is_malformed() {
        let s = signer();
        for bad in ["", "2", "abc", "v1.x", "v1.!!.??", "v9.a.b", "v1.a.b.c"] {
            assert!(s.decode_offset("a", bad).is_err(), "{bad}");
        }
        assert!(matches!(s.decode_checkpoint("a", "yesterday"), Err(TokenError::Malformed(_))));
    }

    #[test]
    fn the_documents_plain_timestamp_checkpoint_is_incremental_from_that_instant() {
        let s = signer();
        let cp = s.decode_checkpoint("a", "2012-11-20 23:01:00 UTC").unwrap();
        let t = Utc.with_ymd_and_hms(2012, 11, 20, 23, 1, 0).unwrap();
        assert_eq!(cp.after, Some(Position::from_instant(t)));
        assert_eq!(s.decode_checkpoint("a", "2012-11-20T23:01:00Z").unwrap(), cp);
        assert_eq!(s.decode_checkpoint("a", "1353452460").unwrap(), cp);
    }
}
