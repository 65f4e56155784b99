//! The `auth` fields Talkdesk sends for HubSpot, checked before anything leaves the bridge:
//!
//! - `access_token` (required): a private app's access token (or an OAuth access token), sent as
//!   `Authorization: Bearer` to HubSpot's API host only. Nothing in `auth` names a host.
//! - `portal_id` (optional, recommended): the HubSpot account (portal, "Hub ID") the token belongs to.
//!   Offsets and checkpoints are bound to it, so a rotated token keeps the sync going; without it they are
//!   bound to a hash of the token, and a new token starts a full sync. The bridge checks it against the
//!   account-info endpoint before syncing with it.
//!
//! Error messages name the field and what was expected, never the value.

use sha2::{Digest, Sha256};

use crate::connectors::{ConnectorError, CredentialField};
use crate::secrets::Secret;
use crate::talkdesk::Auth;

/// Every `auth` field read here; a single-tenant deployment may keep them in SSM as `hubspot/{field}`.
/// A stored token fills a request only when the request names no portal or the stored one.
pub const FIELDS: &[CredentialField] = &[
    CredentialField {
        name: "portal_id",
        unless_given: &[],
        bound_to: &[],
    },
    CredentialField {
        name: "access_token",
        unless_given: &[],
        bound_to: &["portal_id"],
    },
];

/// Checked credentials for one HubSpot account.
#[derive(Clone)]
pub struct Credentials {
    header: Secret,
    portal_id: Option<u64>,
    /// A hash of the token: keys caches and, without `portal_id`, the account.
    token_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("portal_id", &self.portal_id)
            .finish_non_exhaustive()
    }
}

fn invalid(field: &'static str, problem: &str) -> ConnectorError {
    ConnectorError::InvalidAuth {
        field,
        problem: problem.to_string(),
    }
}

/// Visible ASCII only: anything else could not travel in a header, or would split it.
fn header_safe(s: &str) -> bool {
    !s.is_empty() && s.len() <= 2048 && s.bytes().all(|b| b.is_ascii_graphic())
}

impl Credentials {
    /// Reads and checks the `auth` fields. No request is made.
    pub fn from_auth(auth: &Auth) -> Result<Self, ConnectorError> {
        let token = auth.get("access_token").ok_or_else(|| {
            invalid(
                "access_token",
                "is required: the access token of a HubSpot private app with the crm.objects.contacts.read scope",
            )
        })?;
        if !header_safe(token.expose()) {
            return Err(invalid(
                "access_token",
                "must be a HubSpot private app access token (visible ASCII characters, no spaces)",
            ));
        }
        let portal_id = match auth.get("portal_id") {
            None => None,
            Some(p) => {
                let v = p.expose().trim();
                match v.parse::<u64>() {
                    Ok(n) if n > 0 && v.len() <= 20 && v.bytes().all(|b| b.is_ascii_digit()) => Some(n),
                    _ => {
                        return Err(invalid(
                            "portal_id",
                            "must be the HubSpot account's Hub ID, a number such as 2519445",
                        ))
                    }
                }
            }
        };
        let digest = Sha256::digest(format!("talkdesk-bridge/hubspot-token:{}", token.expose()).as_bytes());
        let token_key = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
        Ok(Credentials {
            header: Secret::new(format!("Bearer {}", token.expose())),
            portal_id,
            token_key,
        })
    }

    /// The account these credentials belong to, for binding offsets and checkpoints.
    pub fn account(&self) -> String {
        match self.portal_id {
            Some(p) => format!("hubspot:{p}"),
            None => format!("hubspot:token-{}", self.token_key),
        }
    }

    /// The portal `auth.portal_id` names, if it names one.
    pub fn portal_id(&self) -> Option<u64> {
        self.portal_id
    }

    /// A hash of the token, never the token: keys the per-token caches.
    pub fn token_key(&self) -> &str {
        &self.token_key
    }

    /// The `Authorization` header value, marked sensitive so `http` never prints it.
    pub fn header(&self) -> Result<http::HeaderValue, ConnectorError> {
        let mut value =
            http::HeaderValue::from_str(self.header.expose()).map_err(|_| invalid("access_token", "cannot be sent in an HTTP header"))?;
        value.set_sensitive(true);
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(pairs: &[(&str, &str)]) -> Auth {
        let mut a = Auth::default();
        for (k, v) in pairs {
            a.insert(*k, Secret::new(*v));
        }
        a
    }

    #[test]
    fn a_private_app_token_becomes_a_bearer_header_and_a_portal_binds_the_account() {
        let c = Credentials::from_auth(&auth(&[("access_token", "pat-na1-1234"), ("portal_id", "2519445")])).unwrap();
        let h = c.header().unwrap();
        assert!(h.is_sensitive());
        assert_eq!(h.to_str().unwrap(), "Bearer pat-na1-1234");
        assert_eq!(c.account(), "hubspot:2519445");
        let rotated = Credentials::from_auth(&auth(&[("access_token", "pat-na1-5678"), ("portal_id", "2519445")])).unwrap();
        assert_eq!(rotated.account(), c.account(), "a rotated token keeps the account");
        assert_ne!(rotated.token_key(), c.token_key());
    }

    #[test]
    fn without_a_portal_the_account_is_a_hash_of_the_token() {
        let a = Credentials::from_auth(&auth(&[("access_token", "pat-na1-1234")])).unwrap();
        let b = Credentials::from_auth(&auth(&[("access_token", "pat-na1-9999")])).unwrap();
        assert!(a.account().starts_with("hubspot:token-"));
        assert_ne!(a.account(), b.account());
        assert!(!a.account().contains("1234"));
    }

    #[test]
    fn missing_or_malformed_fields_are_named_without_their_values() {
        for (pairs, field) in [
            (vec![], "access_token"),
            (vec![("access_token", "has space")], "access_token"),
            (vec![("access_token", "t"), ("portal_id", "acme")], "portal_id"),
            (vec![("access_token", "t"), ("portal_id", "0")], "portal_id"),
            (vec![("access_token", "t"), ("portal_id", "-5")], "portal_id"),
        ] {
            match Credentials::from_auth(&auth(&pairs)) {
                Err(ConnectorError::InvalidAuth { field: f, problem }) => {
                    assert_eq!(f, field, "{pairs:?}");
                    assert!(!problem.contains("has space") && !problem.contains("acme"), "{problem}");
                }
                other => panic!("expected InvalidAuth for {pairs:?}, got {other:?}"),
            }
        }
        let c = Credentials::from_auth(&auth(&[("access_token", "SECRET-TOKEN")])).unwrap();
        assert!(!format!("{c:?} {:?}", c.header().unwrap()).contains("SECRET"));
    }
}
