//! Authentication of Talkdesk's calls: the bridge tokens a caller must present.
//!
//! A caller presents a token as `Authorization: Bearer <token>` or as the `auth.bridge_token` field (Talkdesk
//! asks the admin for the auth fields an integration declares, so the field works without custom headers).
//! Each presented token is compared in constant time with every configured one, and every comparison is
//! made, so neither the answer nor its timing says which token exists or how close a guess was.

use crate::secrets::Secret;

/// The `auth` field that carries the bridge token. It belongs to the bridge and is never passed on to a
/// connector.
pub const AUTH_FIELD: &str = "bridge_token";

/// The shortest token accepted: a guessable token is no door at all.
pub const MIN_TOKEN_CHARS: usize = 16;

/// The tokens Talkdesk may present: none (authentication off, local runs), one, or two during a rotation.
#[derive(Clone, Debug, Default)]
pub struct InboundTokens(Vec<Secret>);

impl InboundTokens {
    /// Parses one or more tokens separated by commas or newlines (two during a rotation). Blank entries
    /// and surrounding spaces are ignored. The error says which entry is wrong by position, never by value.
    pub fn parse(text: &str) -> Result<Self, String> {
        let entries: Vec<&str> = text.split([',', '\n', '\r']).map(str::trim).filter(|t| !t.is_empty()).collect();
        if entries.is_empty() {
            return Err("holds no token: give one token, or two separated by a comma during a rotation".into());
        }
        let count = entries.len();
        let mut tokens = Vec::with_capacity(count);
        for (i, entry) in entries.into_iter().enumerate() {
            if entry.chars().count() < MIN_TOKEN_CHARS || !entry.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(format!(
                    "token {} of {count} must be at least {MIN_TOKEN_CHARS} visible ASCII characters without spaces \
                     (e.g. `openssl rand -hex 32`)",
                    i + 1
                ));
            }
            tokens.push(Secret::new(entry));
        }
        Ok(InboundTokens(tokens))
    }

    /// True when callers must authenticate.
    pub fn required(&self) -> bool {
        !self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether any presented token equals any configured one. With no configured token every caller is
    /// admitted. Every pair is compared, whatever matched first.
    pub fn admit(&self, presented: &[Option<&str>]) -> bool {
        if !self.required() {
            return true;
        }
        let mut admitted = false;
        for candidate in presented.iter().flatten() {
            for token in &self.0 {
                admitted |= token.ct_eq(candidate);
            }
        }
        admitted
    }
}

/// The token of an `Authorization: Bearer <token>` header, if the request has one. Another scheme (e.g.
/// `Basic`) is not a bridge token and is ignored.
pub fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "tok-a-0123456789abcdef";
    const B: &str = "tok-b-0123456789abcdef";

    #[test]
    fn one_or_two_tokens_separated_by_commas_or_newlines_are_read() {
        assert_eq!(InboundTokens::parse(A).unwrap().len(), 1);
        for text in [
            format!("{A},{B}"),
            format!("{A}\n{B}"),
            format!(" {A} ,\r\n {B}\n"),
            format!("{A},,{B},"),
        ] {
            let tokens = InboundTokens::parse(&text).unwrap();
            assert_eq!(tokens.len(), 2, "{text:?}");
            assert!(tokens.admit(&[Some(A)]) && tokens.admit(&[Some(B)]), "{text:?}");
        }
    }

    #[test]
    fn blank_short_or_spaced_tokens_are_refused_without_echoing_them() {
        assert!(InboundTokens::parse(" , \n").unwrap_err().contains("no token"));
        let err = InboundTokens::parse(&format!("{A},short-secret")).unwrap_err();
        assert!(err.contains("token 2 of 2") && !err.contains("short-secret"), "{err}");
        let err = InboundTokens::parse("has a space in it 0123456789").unwrap_err();
        assert!(err.contains("token 1 of 1") && !err.contains("space in it"), "{err}");
    }

    #[test]
    fn a_caller_is_admitted_only_with_a_configured_token() {
        let tokens = InboundTokens::parse(&format!("{A},{B}")).unwrap();
        assert!(tokens.admit(&[None, Some(B)]));
        assert!(tokens.admit(&[Some("wrong-0123456789abcdef"), Some(A)]));
        assert!(!tokens.admit(&[]));
        assert!(!tokens.admit(&[None, None]));
        assert!(!tokens.admit(&[Some(""), Some("tok-a-0123456789abcde")]));
        assert!(!tokens.admit(&[Some(&format!("{A},{B}"))]));
    }

    #[test]
    fn without_configured_tokens_every_caller_is_admitted() {
        let none = InboundTokens::default();
        assert!(!none.required());
        assert!(none.admit(&[]));
    }

    #[test]
    fn the_bearer_token_is_read_from_the_authorization_header_only() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(http::header::AUTHORIZATION, http::HeaderValue::from_static("Bearer  abc "));
        assert_eq!(bearer(&headers), Some("abc"));
        headers.insert(http::header::AUTHORIZATION, http::HeaderValue::from_static("bearer abc"));
        assert_eq!(bearer(&headers), Some("abc"));
        for other in ["Basic YTpi", "Bearer", "Bearer ", "abc"] {
            headers.insert(http::header::AUTHORIZATION, http::HeaderValue::from_static(other));
            assert_eq!(bearer(&headers), None, "{other}");
        }
    }

    #[test]
    fn debug_of_the_tokens_shows_no_value() {
        let tokens = InboundTokens::parse(&format!("{A},{B}")).unwrap();
        let debug = format!("{tokens:?}");
        assert!(!debug.contains(A) && !debug.contains(B), "{debug}");
    }
}
