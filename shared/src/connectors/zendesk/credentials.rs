//! The `auth` fields Talkdesk sends for Zendesk, checked before anything leaves the bridge:
//!
//! - `subdomain` (required): `acme` for `acme.zendesk.com`. It must match `^[a-z0-9][a-z0-9-]{0,62}$`, so
//!   the host built from it is always `{subdomain}.zendesk.com` and nothing else (no dots, slashes, `@`,
//!   ports, percent-encoding or IP literals can steer a request, with the credentials, elsewhere).
//! - either `access_token` (an OAuth token, sent as `Authorization: Bearer`), or `email` and `api_token`
//!   (an API token, sent as HTTP Basic over `{email}/token:{api_token}`). When `access_token` is given the
//!   other two are ignored.
//!
//! Error messages name the field and what was expected, never the value.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::connectors::{ConnectorError, CredentialField};
use crate::secrets::Secret;
use crate::talkdesk::Auth;

/// Every `auth` field read here; a single-tenant deployment may keep them in SSM as `zendesk/{field}`. A
/// request's own sign-in (`access_token`, or `email` and `api_token`) is never mixed with a stored one, and
/// stored secrets fill a request only for the stored subdomain.
pub const FIELDS: &[CredentialField] = &[
    CredentialField {
        name: "subdomain",
        unless_given: &[],
        bound_to: &[],
    },
    CredentialField {
        name: "email",
        unless_given: &["access_token"],
        bound_to: &["subdomain"],
    },
    CredentialField {
        name: "api_token",
        unless_given: &["access_token"],
        bound_to: &["subdomain"],
    },
    CredentialField {
        name: "access_token",
        unless_given: &["email", "api_token"],
        bound_to: &["subdomain"],
    },
];

/// Checks a subdomain against `^[a-z0-9][a-z0-9-]{0,62}$`.
pub fn valid_subdomain(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// How requests authenticate. The value is the whole `Authorization` header, kept secret.
#[derive(Clone)]
enum Scheme {
    ApiToken(Secret),
    OAuth(Secret),
}

/// Checked credentials for one Zendesk account.
#[derive(Clone)]
pub struct Credentials {
    subdomain: String,
    scheme: Scheme,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match self.scheme {
            Scheme::ApiToken(_) => "api_token",
            Scheme::OAuth(_) => "oauth",
        };
        f.debug_struct("Credentials")
            .field("subdomain", &self.subdomain)
            .field("scheme", &scheme)
            .finish()
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
    !s.is_empty() && s.len() <= 1024 && s.bytes().all(|b| b.is_ascii_graphic())
}

impl Credentials {
    /// Reads and checks the `auth` fields. No request is made.
    pub fn from_auth(auth: &Auth) -> Result<Self, ConnectorError> {
        let subdomain = auth
            .get("subdomain")
            .ok_or_else(|| invalid("subdomain", "is required: the Zendesk subdomain, e.g. `acme` for acme.zendesk.com"))?;
        if !valid_subdomain(subdomain.expose()) {
            return Err(invalid(
                "subdomain",
                "must be the Zendesk subdomain alone, e.g. `acme` for acme.zendesk.com: 1 to 63 lowercase letters, digits or hyphens, starting with a letter or digit",
            ));
        }
        let subdomain = subdomain.expose().to_string();

        if let Some(token) = auth.get("access_token") {
            if !header_safe(token.expose()) {
                return Err(invalid(
                    "access_token",
                    "must be an OAuth access token (visible ASCII characters, no spaces)",
                ));
            }
            let header = Secret::new(format!("Bearer {}", token.expose()));
            return Ok(Credentials {
                subdomain,
                scheme: Scheme::OAuth(header),
            });
        }

        let (email, api_token) = match (auth.get("email"), auth.get("api_token")) {
            (Some(e), Some(t)) => (e, t),
            (None, Some(_)) => {
                return Err(invalid(
                    "email",
                    "is required with `api_token`: the email address of the Zendesk admin the token belongs to",
                ))
            }
            (Some(_), None) => return Err(invalid("api_token", "is required with `email` (or give `access_token` instead)")),
            (None, None) => return Err(invalid("api_token", "is required: give `email` and `api_token`, or `access_token`")),
        };
        let e = email.expose();
        let at = e.find('@');
        if !header_safe(e) || e.len() > 254 || e.contains(':') || !at.is_some_and(|i| i > 0 && i + 1 < e.len()) {
            return Err(invalid("email", "must be an email address such as admin@example.com"));
        }
        if !header_safe(api_token.expose()) {
            return Err(invalid(
                "api_token",
                "must be a Zendesk API token (visible ASCII characters, no spaces)",
            ));
        }
        let basic = STANDARD.encode(format!("{}/token:{}", e, api_token.expose()));
        Ok(Credentials {
            subdomain,
            scheme: Scheme::ApiToken(Secret::new(format!("Basic {basic}"))),
        })
    }

    pub fn subdomain(&self) -> &str {
        &self.subdomain
    }

    /// The account these credentials belong to, for binding offsets and checkpoints.
    pub fn account(&self) -> String {
        format!("zendesk:{}", self.subdomain)
    }

    /// The `Authorization` header value, marked sensitive so `http` never prints it.
    pub fn header(&self) -> Result<http::HeaderValue, ConnectorError> {
        let secret = match &self.scheme {
            Scheme::ApiToken(s) | Scheme::OAuth(s) => s,
        };
        let mut value =
            http::HeaderValue::from_str(secret.expose()).map_err(|_| invalid("api_token", "cannot be sent in an HTTP header"))?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// The agent-UI host, `https://{subdomain}.zendesk.com`, for the links given to Talkdesk.
    pub fn agent_base(&self) -> String {
        format!("https://{}.zendesk.com", self.subdomain)
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

    fn field_of(e: ConnectorError) -> &'static str {
        match e {
            ConnectorError::InvalidAuth { field, .. } => field,
            other => panic!("expected InvalidAuth, got {other:?}"),
        }
    }

    #[test]
    fn api_token_credentials_become_basic_auth_over_email_slash_token() {
        let c = Credentials::from_auth(&auth(&[("subdomain", "acme"), ("email", "admin@acme.com"), ("api_token", "t0k3n")])).unwrap();
        let expected = format!("Basic {}", STANDARD.encode("admin@acme.com/token:t0k3n"));
        let h = c.header().unwrap();
        assert!(h.is_sensitive());
        assert_eq!(h.to_str().unwrap(), expected);
        assert_eq!(c.account(), "zendesk:acme");
        assert_eq!(c.agent_base(), "https://acme.zendesk.com");
    }

    #[test]
    fn an_access_token_becomes_a_bearer_header_and_wins_over_an_api_token() {
        let c = Credentials::from_auth(&auth(&[("subdomain", "acme-2"), ("access_token", "oauth123"), ("email", "x@y.z")])).unwrap();
        assert_eq!(c.header().unwrap().to_str().unwrap(), "Bearer oauth123");
    }

    #[test]
    fn missing_or_malformed_fields_are_named() {
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![("email", "a@b.co"), ("api_token", "t")], "subdomain"),
            (vec![("subdomain", "acme")], "api_token"),
            (vec![("subdomain", "acme"), ("api_token", "t")], "email"),
            (vec![("subdomain", "acme"), ("email", "a@b.co")], "api_token"),
            (vec![("subdomain", "acme"), ("email", "not-an-email"), ("api_token", "t")], "email"),
            (vec![("subdomain", "acme"), ("email", "a:b@c.co"), ("api_token", "t")], "email"),
            (
                vec![("subdomain", "acme"), ("email", "a@b.co"), ("api_token", "has space")],
                "api_token",
            ),
            (vec![("subdomain", "acme"), ("access_token", "line\nbreak")], "access_token"),
            (vec![("subdomain", "Acme"), ("access_token", "t")], "subdomain"),
        ];
        for (pairs, field) in cases {
            assert_eq!(field_of(Credentials::from_auth(&auth(&pairs)).unwrap_err()), field, "{pairs:?}");
        }
    }

    #[test]
    fn errors_and_debug_never_show_secret_values() {
        let e = Credentials::from_auth(&auth(&[("subdomain", "evil.example.com"), ("api_token", "SECRET-TOKEN")])).unwrap_err();
        assert!(!e.to_string().contains("evil.example.com"), "{e}");
        let c = Credentials::from_auth(&auth(&[("subdomain", "acme"), ("email", "a@b.co"), ("api_token", "SECRET-TOKEN")])).unwrap();
        let dbg = format!("{c:?} {:?}", c.header().unwrap());
        assert!(
            !dbg.contains("SECRET") && !dbg.contains(&STANDARD.encode("a@b.co/token:SECRET-TOKEN")),
            "{dbg}"
        );
    }

    #[test]
    fn subdomain_pattern_accepts_only_dns_labels_in_lowercase() {
        for ok in ["a", "acme", "acme-support", "0day", "a-", &"a".repeat(63)] {
            assert!(valid_subdomain(ok), "{ok}");
        }
        for bad in [
            "",
            "-acme",
            "Acme",
            "acme.zendesk.com",
            "acme/x",
            "a@b",
            "acme:443",
            "%61cme",
            "127.0.0.1",
            "[::1]",
            "acme_1",
            "ácme",
            " acme",
            &"a".repeat(64),
        ] {
            assert!(!valid_subdomain(bad), "{bad}");
        }
    }
}
