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
//! **The AWS SDK (SSM) sends through reqwest too, trusting Amazon Trust Services' five roots**
//! ([`aws_sdk_http_client`]): every AWS endpoint of the commercial partition presents a certificate chaining
//! to them, and Amazon recommends exactly these five for custom trust stores
//! (<https://www.amazontrust.com/repository/>). The SDK's default client would load the whole system store
//! once more, on the first SSM call at INIT, and link a second hyper-based HTTP client. China, GovCloud, the
//! ISO partitions and the European Sovereign Cloud keep the system store.
//!
//! **One crypto library, *ring*.** reqwest and the AWS SDK default to aws-lc, whose C library was the largest
//! single dependency of the package (1.5 MB of code); every client here is built on *ring* instead, so the
//! functions link one crypto library, the smaller. `tests/` keeps reqwest's and the SDK's defaults for its
//! tools.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

/// The rustls configuration of every outbound HTTPS client: Mozilla's roots, the *ring* provider the AWS
/// SDK's client uses too, TLS 1.2 and 1.3, HTTP/1.1 ([`client_config`]).
pub fn tls_config() -> Arc<ClientConfig> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            Arc::new(client_config(RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            }))
        })
        .clone()
}

/// A rustls configuration trusting `roots`, on *ring*, TLS 1.2 and 1.3, offering HTTP/1.1 only.
///
/// No HTTP/2: reqwest is built without it (h2 was 6 % of each zipped package, issue 14, BENCHMARKS.md), so
/// the ALPN offer must not name it, or a server choosing `h2` would get HTTP/1.1 bytes. A function sends
/// a few requests at a time, each on a pooled keep-alive connection; what HTTP/2 would add is sharing one
/// TLS handshake between concurrent requests to a host on a new connection, and every upstream here (Zendesk,
/// HubSpot, SSM) serves HTTP/1.1 in full.
fn client_config(roots: RootCertStore) -> ClientConfig {
    let mut config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map(|builder| builder.with_root_certificates(roots).with_no_client_auth())
        // The default provider supports the default versions; this cannot fail.
        .unwrap_or_else(|_| unreachable_config());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
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

/// Where a connector reads its answers' bodies: one buffer kept from one answer to the next, so a page of
/// megabytes is read into memory already allocated and touched instead of a fresh allocation each time,
/// which reqwest's `bytes()` makes and copies every chunk into (page faults, heap consolidation and the copy
/// were about a tenth of a 1000-user Zendesk page; perf, issue 14). Requests in flight together each get a
/// buffer: the kept one to the first, a new one to the others.
#[derive(Debug, Default)]
pub struct BodyBuffer(Mutex<Vec<u8>>);

/// The largest buffer kept between answers (bigger ones are freed once read).
const BODY_BUFFER_KEPT_BYTES: usize = 8 << 20;

impl BodyBuffer {
    /// Reads `response`'s whole body.
    pub async fn read(&self, mut response: reqwest::Response) -> Result<Body<'_>, reqwest::Error> {
        let mut bytes = std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner));
        bytes.clear();
        if let Some(length) = response.content_length() {
            bytes.reserve(usize::try_from(length).unwrap_or(0).min(BODY_BUFFER_KEPT_BYTES));
        }
        let mut body = Body { bytes, home: self };
        while let Some(chunk) = response.chunk().await? {
            body.bytes.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// A body read by [`BodyBuffer::read`]; its buffer goes back when it is dropped.
#[derive(Debug)]
pub struct Body<'a> {
    bytes: Vec<u8>,
    home: &'a BodyBuffer,
}

impl std::ops::Deref for Body<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Body<'_> {
    fn drop(&mut self) {
        if self.bytes.capacity() <= BODY_BUFFER_KEPT_BYTES {
            let mut kept = self.home.0.lock().unwrap_or_else(PoisonError::into_inner);
            if kept.capacity() < self.bytes.capacity() {
                *kept = std::mem::take(&mut self.bytes);
            }
        }
    }
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

/// The HTTPS client the AWS SDK uses for `region`: reqwest on *ring*, like every connector's, so the functions
/// link one HTTP client stack instead of two (the SDK's own hyper-based client was the largest single crate
/// of the AWS code in the package; issue 14, BENCHMARKS.md). It trusts Amazon Trust Services' roots only in
/// the commercial partition, and the system's store elsewhere or when the region is unknown.
pub fn aws_sdk_http_client(region: Option<&str>) -> SharedHttpClient {
    let roots = if commercial(region) {
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(CertificateDer::pem_slice_iter(AMAZON_TRUST_SERVICES_PEM.as_bytes()).flatten());
        roots
    } else {
        system_roots()
    };
    SharedHttpClient::new(SdkHttpClient {
        tls: client_config(roots),
        connectors: Mutex::default(),
    })
}

/// The system's trust store (what the SDK's default client reads); Mozilla's roots if it holds none.
fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if roots.is_empty() {
        roots.roots = webpki_roots::TLS_SERVER_ROOTS.to_vec();
    }
    roots
}

/// The SDK's [`HttpClient`]: one reqwest client per set of connector settings the SDK asks for (in practice
/// one: the SSM client's timeouts), each keeping its own connection pool, as the trait requires.
#[derive(Debug)]
struct SdkHttpClient {
    tls: ClientConfig,
    connectors: Mutex<Vec<(ConnectorTimeouts, SharedHttpConnector)>>,
}

type ConnectorTimeouts = (Option<Duration>, Option<Duration>);

impl HttpClient for SdkHttpClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
        let timeouts = (settings.connect_timeout(), settings.read_timeout());
        let mut connectors = self.connectors.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, connector)) = connectors.iter().find(|(t, _)| *t == timeouts) {
            return connector.clone();
        }
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(self.tls.clone())
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true);
        if let Some(connect) = timeouts.0 {
            builder = builder.connect_timeout(connect);
        }
        if let Some(read) = timeouts.1 {
            builder = builder.read_timeout(read);
        }
        // Building fails only if the TLS backend cannot be set up; every call then fails with that error.
        let connector = SharedHttpConnector::new(SdkConnector(builder.build().map_err(|e| e.to_string())));
        connectors.push((timeouts, connector.clone()));
        connector
    }
}

/// One reqwest client serving the SDK's requests.
#[derive(Debug)]
struct SdkConnector(Result<reqwest::Client, String>);

impl HttpConnector for SdkConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.0.clone();
        HttpConnectorFuture::new(async move {
            let client = client.map_err(|e| ConnectorError::other(e.into(), None))?;
            let request = request.try_into_http1x().map_err(|e| ConnectorError::user(e.into()))?;
            let (parts, body) = request.into_parts();
            // The SDK's operations here (SSM) send bodies held in memory; a streaming one is refused, not cut.
            let Some(body) = body.bytes().map(<[u8]>::to_vec) else {
                return Err(ConnectorError::user("a streaming request body is not supported".into()));
            };
            let request = reqwest::Request::try_from(http::Request::from_parts(parts, body)).map_err(|e| ConnectorError::user(e.into()))?;
            let response = client.execute(request).await.map_err(sdk_connector_error)?;
            let (status, headers) = (response.status(), response.headers().clone());
            let body = response.bytes().await.map_err(sdk_connector_error)?;
            let mut answer = http::Response::new(SdkBody::from(body));
            *answer.status_mut() = status;
            *answer.headers_mut() = headers;
            HttpResponse::try_from(answer).map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// How the SDK's retry policy should see a reqwest error: a timeout, an I/O fault (both retried as
/// transient), or something else.
fn sdk_connector_error(e: reqwest::Error) -> ConnectorError {
    if e.is_timeout() {
        ConnectorError::timeout(e.into())
    } else if e.is_connect() || e.is_request() || e.is_body() {
        ConnectorError::io(e.into())
    } else {
        ConnectorError::other(e.into(), None)
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
    fn the_configuration_trusts_mozillas_roots_and_offers_http1_only() {
        let config = tls_config();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        // Built once: the same configuration every time.
        assert!(Arc::ptr_eq(&config, &tls_config()));
        assert!(webpki_roots::TLS_SERVER_ROOTS.len() > 100, "Mozilla's list has well over 100 roots");
    }

    /// A server on 127.0.0.1 presenting a self-signed certificate (fixtures made with openssl, valid to
    /// 2126), preferring HTTP/2 in ALPN as most HTTPS servers do, answering 204 in HTTP/1.1 to a client that
    /// did not choose `h2` and closing on one that did; its port.
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
            .map(|mut config| {
                config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
                config
            })
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                if let Ok(mut tls) = acceptor.accept(socket).await {
                    if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                        continue;
                    }
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

    #[tokio::test]
    async fn a_server_preferring_http2_is_spoken_to_in_http1() {
        let (port, server) = self_signed_server().await;
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(CertificateDer::pem_slice_iter(SELF_SIGNED_CRT.as_bytes()).map(Result::unwrap));
        // The bridge's TLS settings, trusting the test certificate: reqwest has no HTTP/2, so the handshake
        // must not let the server choose it.
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(client_config(roots))
            .build()
            .unwrap();
        let answer = client.get(format!("https://127.0.0.1:{port}/")).send().await;
        assert_eq!(answer.map(|r| r.status().as_u16()).map_err(|e| e.to_string()), Ok(204));
        server.abort();
    }

    /// A plain-HTTP server on 127.0.0.1 answering every request with `body` (chunked when `chunked`), over
    /// keep-alive connections; its URL.
    async fn body_server(body: Vec<u8>, chunked: bool) -> (String, tokio::task::JoinHandle<()>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let body = body.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = socket.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                        request.extend_from_slice(&buf[..n]);
                        if !request.windows(4).any(|w| w == b"\r\n\r\n") {
                            continue;
                        }
                        request.clear();
                        let mut answer = Vec::new();
                        if chunked {
                            answer.extend_from_slice(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
                            for part in body.chunks(7_000) {
                                answer.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                                answer.extend_from_slice(part);
                                answer.extend_from_slice(b"\r\n");
                            }
                            answer.extend_from_slice(b"0\r\n\r\n");
                        } else {
                            answer.extend_from_slice(format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len()).as_bytes());
                            answer.extend_from_slice(&body);
                        }
                        if socket.write_all(&answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (url, task)
    }

    #[tokio::test]
    async fn a_body_buffer_reads_whole_bodies_into_memory_it_keeps_for_the_next() {
        let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let client = client_builder().build().unwrap();
        let buffer = BodyBuffer::default();
        for chunked in [false, true] {
            let (url, server) = body_server(body.clone(), chunked).await;
            let first = buffer.read(client.get(&url).send().await.unwrap()).await.unwrap();
            assert!(*first == body[..], "chunked: {chunked}");
            drop(first);
            let kept = {
                let kept = buffer.0.lock().unwrap();
                assert!(kept.capacity() >= body.len(), "the first answer's memory is kept");
                kept.as_ptr()
            };
            let second = buffer.read(client.get(&url).send().await.unwrap()).await.unwrap();
            assert!(*second == body[..], "chunked: {chunked}");
            assert_eq!(second.as_ptr(), kept, "the second answer is read into the kept memory");
            // Two in flight at once: each gets its own buffer, and each body is whole.
            let third = buffer.read(client.get(&url).send().await.unwrap()).await.unwrap();
            assert!(*third == body[..] && *second == body[..]);
            assert_ne!(third.as_ptr(), second.as_ptr());
            drop((second, third));
            server.abort();
        }
        // A body over the kept size is read whole and then freed, not kept.
        let big = vec![b'x'; BODY_BUFFER_KEPT_BYTES + 1];
        let (url, server) = body_server(big.clone(), false).await;
        let read = buffer.read(client.get(&url).send().await.unwrap()).await.unwrap();
        assert_eq!(read.len(), big.len());
        drop(read);
        assert!(buffer.0.lock().unwrap().capacity() <= BODY_BUFFER_KEPT_BYTES);
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
