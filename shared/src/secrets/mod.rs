//! Secret values: credentials from a request's `auth` and values read from SSM Parameter Store.
//!
//! A [`Secret`] cannot be printed: its `Debug` shows only `Secret(..)`, it has no `Display`, and it is not
//! `Serialize`. The only way to read it is [`Secret::expose`], called at the line that needs the value
//! (setting an `Authorization` header, keying an HMAC).
//!
//! - [`ssm`]: the SSM Parameter Store cache (batches of ten, decryption, TTL).
//! - [`deployment`]: the deployment's own secrets (token key, inbound tokens, stored connector
//!   credentials), from SSM or the environment, renewed after the TTL.
//! - [`inbound`]: authentication of Talkdesk's calls with the bridge tokens.
//! - [`logging`]: the functions' log subscriber, which never logs a raw request.

pub mod deployment;
pub mod inbound;
pub mod logging;
pub mod ssm;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

/// A string that never reaches a log line, an error message or a panic message by accident.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(SecretString::from(value.into()))
    }

    /// The value itself. Call it only where the value is used, never to format it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }

    /// Compares with `candidate` in time independent of where they differ.
    pub fn ct_eq(&self, candidate: &str) -> bool {
        let a = self.expose().as_bytes();
        let b = candidate.as_bytes();
        // Lengths are compared in the open: a token's length is not the secret.
        a.len() == b.len() && bool::from(a.ct_eq(b))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret::new(value)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_a_secret_hides_the_value() {
        let s = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{s:?}"), "Secret(..)");
        assert!(!format!("{:?}", Some(&s)).contains("hunter2"));
    }

    #[test]
    fn constant_time_comparison_matches_only_the_same_value() {
        let s = Secret::new("token-a");
        assert!(s.ct_eq("token-a"));
        assert!(!s.ct_eq("token-b"));
        assert!(!s.ct_eq("token-a "));
        assert!(!s.ct_eq(""));
    }
}
