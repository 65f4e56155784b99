//! RDS IAM database authentication tokens (`POSTGRES_IAM_AUTH=true`).
//!
//! A token is a SigV4-presigned URL without its scheme:
//! `{host}:{port}/?Action=connect&DBUser={user}&X-Amz-Algorithm=...&X-Amz-Expires=900&...&X-Amz-Signature=...`,
//! signed for the service `rds-db` in the database's region. It is used as the password and is valid for
//! 15 minutes; RDS checks it only when a connection signs in, so an open connection outlives it. The
//! connector signs a fresh token for every new connection, so no token is ever used near its expiry.
//! Format verified against the AWS SDK for Rust (`aws-sdk-rds`, `auth_token.rs`, whose test vector is the
//! unit test below) and `aws rds generate-db-auth-token`; signed here with `aws-sigv4`, which the tree
//! already has through the SSM client, rather than pulling in the whole RDS SDK.

use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{self, SignableBody, SignableRequest, SignatureLocation, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

use crate::secrets::Secret;

/// How long a token is valid (RDS's maximum).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(900);
const SERVICE: &str = "rds-db";

/// The token for `user` at `host:port`, signed with `identity` in `region` at `now`.
pub fn auth_token(host: &str, port: u16, user: &str, region: &str, identity: &Identity, now: SystemTime) -> Result<Secret, String> {
    let mut settings = SigningSettings::default();
    settings.expires_in = Some(TOKEN_LIFETIME);
    settings.signature_location = SignatureLocation::QueryParams;
    let params = v4::SigningParams::builder()
        .identity(identity)
        .region(region)
        .name(SERVICE)
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| format!("signing parameters: {e}"))?;
    let mut url = reqwest::Url::parse(&format!("https://{host}:{port}/?Action=connect"))
        .map_err(|e| format!("`{host}:{port}` does not make a URL: {e}"))?;
    url.query_pairs_mut().append_pair("DBUser", user);
    let request = SignableRequest::new("GET", url.as_str(), std::iter::empty(), SignableBody::Bytes(&[]))
        .map_err(|e| format!("signable request: {e}"))?;
    let (instructions, _) = http_request::sign(request, &params.into())
        .map_err(|e| format!("signing: {e}"))?
        .into_parts();
    for (name, value) in instructions.params() {
        url.query_pairs_mut().append_pair(name, value);
    }
    let text = url.as_str();
    Ok(Secret::new(text.strip_prefix("https://").unwrap_or(text)))
}

/// Signs tokens with the function's own AWS credentials (the Lambda role's, [`crate::aws`]).
pub struct TokenSigner {
    credentials: SharedCredentialsProvider,
}

impl TokenSigner {
    pub fn new() -> Self {
        TokenSigner {
            credentials: crate::aws::credentials(),
        }
    }

    /// The region tokens are signed for, if the environment names one (`AWS_REGION` in Lambda).
    pub async fn region(&self) -> Option<String> {
        crate::aws::region()
    }

    /// A fresh token for `user` at `host:port`.
    pub async fn token(&self, host: &str, port: u16, user: &str) -> Result<Secret, String> {
        let region = crate::aws::region().ok_or("no AWS region is configured (AWS_REGION) to sign an RDS IAM authentication token")?;
        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| format!("AWS credentials could not be loaded: {e}"))?;
        let identity = Identity::from(credentials);
        auth_token(host, port, user, &region, &identity, SystemTime::now())
    }
}

impl Default for TokenSigner {
    fn default() -> Self {
        TokenSigner::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;

    #[test]
    fn tokens_match_the_aws_sdk_test_vector() {
        // The test of aws-sdk-rds's AuthTokenGenerator: same inputs, same token.
        let identity = Identity::from(Credentials::new("akid", "secret", None, None, "test"));
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_724_709_600);
        let token = auth_token(
            "prod-instance.us-east-1.rds.amazonaws.com",
            3306,
            "peccy",
            "us-east-1",
            &identity,
            now,
        )
        .unwrap();
        assert_eq!(
            token.expose(),
            "prod-instance.us-east-1.rds.amazonaws.com:3306/?Action=connect&DBUser=peccy&X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=akid%2F20240826%2Fus-east-1%2Frds-db%2Faws4_request&X-Amz-Date=20240826T220000Z\
             &X-Amz-Expires=900&X-Amz-SignedHeaders=host\
             &X-Amz-Signature=dd0cba843009474347af724090233265628ace491ea17ce3eb3da098b983ad89"
        );
    }
}
