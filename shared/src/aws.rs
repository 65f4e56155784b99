//! The AWS settings of a function, read from its environment the way Lambda provides them: the region in
//! `AWS_REGION`, the execution role's credentials in `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
//! `AWS_SESSION_TOKEN` (Lambda's "defined runtime environment variables").
//!
//! Not the AWS SDK's whole default chain (`aws_config::defaults`), which also reads profile files, asks the
//! EC2 instance metadata service and assumes roles through STS: none of that exists in a Lambda execution
//! environment, and its code was about 8 % of each function's package (issue 14, BENCHMARKS.md). Nor
//! `aws-config` at all: the environment's credentials are read here, the way its environment provider reads
//! them, without linking the crate and the STS client it depends on. A local run against real AWS exports
//! its credentials first (`eval "$(aws configure export-credentials --format env)"`).
//!
//! The standard variables for endpoints are honoured too (the tests point SSM at `moto_server` with them):
//! `AWS_ENDPOINT_URL_<SERVICE>`, then `AWS_ENDPOINT_URL`, unless `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is
//! true; and `AWS_USE_FIPS_ENDPOINT`, `AWS_USE_DUALSTACK_ENDPOINT`.

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;

/// The function's region: `AWS_REGION` (set by Lambda), else `AWS_DEFAULT_REGION`.
pub fn region() -> Option<String> {
    region_from(|name| std::env::var(name).ok())
}

/// The execution role's credentials, from the environment (read again on each use, as Lambda may rotate
/// them between invocations of a long-lived environment).
pub fn credentials() -> SharedCredentialsProvider {
    SharedCredentialsProvider::new(EnvironmentCredentials)
}

/// The credentials in the process's environment, read on each call.
#[derive(Debug)]
struct EnvironmentCredentials;

impl ProvideCredentials for EnvironmentCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::ready(credentials_from(|name| std::env::var(name).ok()))
    }
}

/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (or `SECRET_ACCESS_KEY`) and an optional
/// `AWS_SESSION_TOKEN`, blank counting as unset. The error names the variables, never a value.
fn credentials_from(var: impl Fn(&str) -> Option<String>) -> Result<Credentials, CredentialsError> {
    let set = |name: &str| var(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let access_key =
        set("AWS_ACCESS_KEY_ID").ok_or_else(|| CredentialsError::not_loaded("AWS_ACCESS_KEY_ID is not set in the environment"))?;
    let secret_key = set("AWS_SECRET_ACCESS_KEY")
        .or_else(|| set("SECRET_ACCESS_KEY"))
        .ok_or_else(|| CredentialsError::not_loaded("AWS_SECRET_ACCESS_KEY is not set in the environment"))?;
    Ok(Credentials::new(
        access_key,
        secret_key,
        set("AWS_SESSION_TOKEN"),
        None,
        "Environment",
    ))
}

/// The endpoint configured for `service` (its SDK name in upper snake case, e.g. `SSM`), if any.
pub fn endpoint_url(service: &str) -> Option<String> {
    endpoint_from(service, |name| std::env::var(name).ok())
}

/// Whether FIPS endpoints were asked for (`AWS_USE_FIPS_ENDPOINT=true`).
pub fn use_fips() -> bool {
    flag(std::env::var("AWS_USE_FIPS_ENDPOINT").ok())
}

/// Whether dual-stack endpoints were asked for (`AWS_USE_DUALSTACK_ENDPOINT=true`).
pub fn use_dual_stack() -> bool {
    flag(std::env::var("AWS_USE_DUALSTACK_ENDPOINT").ok())
}

fn region_from(var: impl Fn(&str) -> Option<String>) -> Option<String> {
    ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .into_iter()
        .filter_map(&var)
        .map(|value| value.trim().to_string())
        .find(|value| !value.is_empty())
}

fn endpoint_from(service: &str, var: impl Fn(&str) -> Option<String>) -> Option<String> {
    if flag(var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")) {
        return None;
    }
    [format!("AWS_ENDPOINT_URL_{service}"), "AWS_ENDPOINT_URL".to_string()]
        .iter()
        .filter_map(|name| var(name))
        .map(|value| value.trim().to_string())
        .find(|value| !value.is_empty())
}

fn flag(value: Option<String>) -> bool {
    value.is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn the_region_is_aws_region_then_aws_default_region() {
        assert_eq!(
            region_from(env(&[("AWS_REGION", "eu-west-1"), ("AWS_DEFAULT_REGION", "us-east-1")])).as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(
            region_from(env(&[("AWS_REGION", " "), ("AWS_DEFAULT_REGION", "us-east-1")])).as_deref(),
            Some("us-east-1")
        );
        assert_eq!(region_from(env(&[])), None);
    }

    #[test]
    fn a_service_endpoint_wins_over_the_global_one_unless_endpoints_are_ignored() {
        let both = [
            ("AWS_ENDPOINT_URL_SSM", "http://127.0.0.1:5000"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
        ];
        assert_eq!(endpoint_from("SSM", env(&both)).as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(endpoint_from("STS", env(&both)).as_deref(), Some("http://127.0.0.1:4566"));
        let ignored = [both[0], both[1], ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")];
        assert_eq!(endpoint_from("SSM", env(&ignored)), None);
        assert_eq!(endpoint_from("SSM", env(&[])), None);
    }

    #[test]
    fn credentials_are_the_role_keys_and_token_and_blank_counts_as_unset() {
        let creds = credentials_from(env(&[
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "wJalr-secret"),
            ("AWS_SESSION_TOKEN", "IQo-token"),
        ]))
        .unwrap();
        assert_eq!(
            (creds.access_key_id(), creds.secret_access_key(), creds.session_token()),
            ("AKIDEXAMPLE", "wJalr-secret", Some("IQo-token"))
        );
        let creds = credentials_from(env(&[
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("SECRET_ACCESS_KEY", "wJalr-secret"),
            ("AWS_SESSION_TOKEN", " "),
        ]))
        .unwrap();
        assert_eq!((creds.secret_access_key(), creds.session_token()), ("wJalr-secret", None));
        for missing in [
            env(&[("AWS_SECRET_ACCESS_KEY", "wJalr-secret")]),
            env(&[("AWS_ACCESS_KEY_ID", " "), ("AWS_SECRET_ACCESS_KEY", "wJalr-secret")]),
            env(&[("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")]),
        ] {
            let err = credentials_from(missing).unwrap_err();
            let message = format!(
                "{err:?} {}",
                std::error::Error::source(&err).map(ToString::to_string).unwrap_or_default()
            );
            assert!(message.contains("is not set in the environment"), "{message}");
            assert!(!message.contains("wJalr") && !message.contains("AKIDEXAMPLE"), "{message}");
        }
    }

    #[test]
    fn flags_are_true_only_when_they_say_true() {
        assert!(flag(Some("TRUE".into())));
        assert!(!flag(Some("1".into())));
        assert!(!flag(None));
    }
}
