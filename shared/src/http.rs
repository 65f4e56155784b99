//! Outbound HTTPS to the SaaS connectors' APIs: one rustls configuration, built once per container and
//! shared by every connector's `reqwest` client.
//!
//! **Trust roots: Mozilla's set, compiled in (`webpki-roots`).** reqwest's default verifier reads the
//! system store when a client is built: on Debian that is the bundle file and then all 146 files of
//! `/etc/ssl/certs`, each decoded from PEM and parsed, which was the largest part of a function's INIT
//! (perf, `make bench` notes in BENCHMARKS.md). `provided.al2023`'s store (`/etc/pki/tls/certs`) is
//! Amazon Linux's `ca-certificates`, itself Mozilla's list, so the same authorities are trusted; the
//! compiled-in copy costs no file and no parsing at start, and cannot be emptied or changed by the image.
//! A new root reaches users with a rebuild (`cargo update -p webpki-roots`), like any other dependency.
//!
//! **The AWS SDK (SSM) trusts Amazon Trust Services' five roots** ([`aws_sdk_http_client`]): every AWS
//! endpoint of the commercial partition presents a certificate chaining to them, and Amazon recommends
//! exactly these five for custom trust stores (<https://www.amazontrust.com/repository/>). The SDK's default
//! client loads the whole system store once more, on the first SSM call at INIT. China, GovCloud, the ISO
//! partitions and the European Sovereign Cloud keep the system store.
//!
//! **One crypto library, *ring*.** reqwest and the AWS SDK default to aws-lc, whose C library was the largest
//! single dependency of the package (1.5 MB of code); every client here is built on *ring* instead, so the
//! functions link one crypto library, the smaller. `tests/` keeps reqwest's and the SDK's defaults for its
//! tools.

use std::sync::{Arc, OnceLock};

use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use rustls::crypto::ring;
use rustls::{ClientConfig, RootCertStore};

/// The rustls configuration of every outbound HTTPS client: Mozilla's roots, the *ring* provider the AWS
/// SDK's client uses too, TLS 1.2 and 1.3, ALPN for HTTP/2 and HTTP/1.1.
pub fn tls_config() -> Arc<ClientConfig> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let mut config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map(|builder| builder.with_root_certificates(roots).with_no_client_auth())
                // The default provider supports the default versions; this cannot fail.
                .unwrap_or_else(|_| unreachable_config());
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            Arc::new(config)
        })
        .clone()
}

/// Only reachable if *ring* stopped supporting TLS 1.2 and 1.3: a configuration trusting no root,
/// so every connection fails with a certificate error instead of the process panicking.
fn unreachable_config() -> ClientConfig {
    ClientConfig::builder()
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth()
}

/// A `reqwest` client builder for a connector's API: the shared TLS configuration, no redirects (a
/// redirect could carry the credentials to another host), no Nagle delay, the bridge's user agent.
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .tls_backend_preconfigured((*tls_config()).clone())
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true)
        .user_agent(concat!("talkdesk-bridge/", env!("CARGO_PKG_VERSION")))
}

/// Decodes a JSON answer. The body is checked to be UTF-8 once, as a whole, and then parsed as text: parsing
/// bytes checks each string on its own, which cost a sixth of a 1000-user Zendesk page's parse (perf, issue
/// 14). A body that is not UTF-8 is parsed as bytes, for serde_json's own error.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, serde_json::Error> {
    match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(body),
    }
}

/// Amazon Trust Services' root certificates (PEM, with their published key hashes in the header).
pub const AMAZON_TRUST_SERVICES_PEM: &str = include_str!("amazon-trust-services.pem");

/// Region prefixes outside the commercial partition, whose endpoints may chain elsewhere.
const OTHER_PARTITIONS: &[&str] = &["cn-", "us-gov-", "us-iso", "eu-iso", "eusc-"];

/// Whether `region` is in AWS's commercial partition (an unknown region is not).
fn commercial(region: Option<&str>) -> bool {
    let region = region.unwrap_or_default().trim();
    !region.is_empty() && !OTHER_PARTITIONS.iter().any(|p| region.starts_with(p))
}

/// The HTTPS client the AWS SDK uses for `region`, on *ring*: trusting Amazon Trust Services' roots only in
/// the commercial partition, the system's store elsewhere or when the region is unknown.
pub fn aws_sdk_http_client(region: Option<&str>) -> SharedHttpClient {
    let trust = if commercial(region) {
        TrustStore::empty()
            .with_native_roots(false)
            .with_pem_certificate(AMAZON_TRUST_SERVICES_PEM.as_bytes())
    } else {
        TrustStore::default()
    };
    let builder = aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring));
    match TlsContext::builder().with_trust_store(trust).build() {
        Ok(context) => builder.tls_context(context).build_https(),
        // Building a context only stores the trust store; should it ever fail, the system's store.
        Err(_) => builder.build_https(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    use sha2::{Digest, Sha256};

    /// DER `SEQUENCE` around `content` (how an SPKI is hashed: the whole structure).
    fn sequence(content: &[u8]) -> Vec<u8> {
        let mut out = vec![0x30];
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
        out.extend_from_slice(content);
        out
    }

    #[test]
    fn the_aws_trust_store_is_amazon_trust_services_five_roots() {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(AMAZON_TRUST_SERVICES_PEM.as_bytes())
            .collect::<Result<_, _>>()
            .expect("the bundle is valid PEM");
        let mut store = RootCertStore::empty();
        let (added, ignored) = store.add_parsable_certificates(certs);
        assert_eq!((added, ignored), (5, 0));
        // The SHA-256 of each SubjectPublicKeyInfo, as https://www.amazontrust.com/repository/ publishes them.
        let published = [
            "fbe3018031f9586bcbf41727e417b7d1c45c2f47f93be372a17b96b50757d5a2",
            "7f4296fc5b6a4e3b35d3c369623e364ab1af381d8fa7121533c9d6c633ea2461",
            "36abc32656acfc645c61b71613c4bf21c787f5cabbee48348d58597803d7abc9",
            "f7ecded5c66047d28ed6466b543c40e0743abe81d109254dcf845d4c2c7853c5",
            "2b071c59a0a0ae76b0eadb2bad23bad4580b69c3601b630c2eaf0613afa83f92",
        ];
        let hashes: Vec<String> = store
            .roots
            .iter()
            .map(|anchor| {
                Sha256::digest(sequence(&anchor.subject_public_key_info))
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect()
            })
            .collect();
        assert_eq!(hashes, published);
    }

    #[test]
    fn only_the_commercial_partition_gets_the_amazon_only_store() {
        for region in ["us-east-1", "eu-west-1", "ap-southeast-2", "sa-east-1"] {
            assert!(commercial(Some(region)), "{region}");
        }
        for region in ["cn-north-1", "us-gov-west-1", "us-isob-east-1", "eusc-de-east-1", "", " "] {
            assert!(!commercial(Some(region)), "{region}");
        }
        assert!(!commercial(None));
    }

    #[test]
    fn the_configuration_trusts_mozillas_roots_and_offers_http2() {
        let config = tls_config();
        assert_eq!(config.alpn_protocols, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
        // Built once: the same configuration every time.
        assert!(Arc::ptr_eq(&config, &tls_config()));
        assert!(webpki_roots::TLS_SERVER_ROOTS.len() > 100, "Mozilla's list has well over 100 roots");
    }

    /// A server on 127.0.0.1 presenting a self-signed certificate (fixtures made with openssl, valid to
    /// 2126), answering every connection 204; its port.
    async fn self_signed_server() -> (u16, tokio::task::JoinHandle<()>) {
        use rustls::pki_types::PrivateKeyDer;
        use tokio::io::AsyncWriteExt;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(SELF_SIGNED_CRT.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(SELF_SIGNED_KEY.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                if let Ok(mut tls) = acceptor.accept(socket).await {
                    let _ = tls.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n").await;
                    let _ = tls.shutdown().await;
                }
            }
        });
        (port, task)
    }

    const SELF_SIGNED_CRT: &str = include_str!("../tests/fixtures/self-signed.crt");
    const SELF_SIGNED_KEY: &str = include_str!("../tests/fixtures/self-signed.key");

    #[tokio::test]
    async fn a_certificate_that_chains_to_no_trusted_root_is_refused() {
        let (port, server) = self_signed_server().await;
        let url = format!("https://127.0.0.1:{port}/");
        // Control: a client trusting the certificate gets the server's answer, so the setup works.
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(CertificateDer::pem_slice_iter(SELF_SIGNED_CRT.as_bytes()).map(Result::unwrap));
        let trusting = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let control = reqwest::Client::builder().tls_backend_preconfigured(trusting).build().unwrap();
        assert_eq!(control.get(&url).send().await.unwrap().status(), 204);
        // The bridge's clients trust Mozilla's roots only: the handshake fails on the certificate.
        let error = client_builder().build().unwrap().get(&url).send().await.unwrap_err();
        let mut chain = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            chain.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        assert!(chain.contains("UnknownIssuer") || chain.contains("unknown issuer"), "{chain}");
        server.abort();
    }

    #[test]
    fn json_is_parsed_from_text_and_bad_bytes_get_serde_json_s_error() {
        let v: serde_json::Value = parse_json("{\"name\":\"Zo\\u00eb\",\"city\":\"São Paulo\"}".as_bytes()).unwrap();
        assert_eq!(v["name"], "Zoë");
        assert_eq!(v["city"], "São Paulo");
        let bad = parse_json::<serde_json::Value>(b"{\"name\":\"\xff\"}").unwrap_err();
        assert!(bad.to_string().contains("invalid unicode"), "{bad}");
    }

    #[test]
    fn a_client_builds_with_it() {
        assert!(client_builder().build().is_ok());
    }
}
