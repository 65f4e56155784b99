//! TLS for tokio-postgres with rustls, on the *ring* provider every outbound client uses ([`crate::http`]).
//!
//! - `verify-full`: the server's certificate must chain to a trusted root (Mozilla's, compiled in as for
//!   every outbound connection, see [`crate::http`], plus the PEM file `POSTGRES_SSLROOTCERT` names, e.g.
//!   the RDS certificate bundle) and name the host connected to.
//! - `require`: encrypted, but any certificate is accepted (the handshake signature is still checked
//!   against the certificate presented). Protects against eavesdropping, not against an impostor, exactly
//!   as libpq's `sslmode=require`.
//!
//! Channel binding (`SCRAM-SHA-256-PLUS`) is not offered: tokio-postgres then signs in with plain
//! `SCRAM-SHA-256`, which PostgreSQL accepts unless the role requires channel binding.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

use super::settings::SslMode;

/// Why a TLS configuration could not be built (at cold start).
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read {path}: {error}")]
    Unreadable { path: String, error: String },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: String },
    #[error("TLS could not be set up: {0}")]
    Rustls(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// The rustls configuration for `mode`, or `None` for `disable`.
pub fn client_config(mode: SslMode, extra_roots: Option<&Path>) -> Result<Option<Arc<ClientConfig>>, TlsSetupError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::Rustls(e.to_string()))?;
    let config = match mode {
        SslMode::Disable => return Ok(None),
        SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate { provider }))
            .with_no_client_auth(),
        SslMode::VerifyFull => {
            let mut roots = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            if let Some(path) = extra_roots {
                let shown = path.display().to_string();
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                    .map_err(|e| TlsSetupError::Unreadable {
                        path: shown.clone(),
                        error: e.to_string(),
                    })?
                    .collect::<Result<_, _>>()
                    .map_err(|e| TlsSetupError::Unreadable {
                        path: shown.clone(),
                        error: e.to_string(),
                    })?;
                if certs.is_empty() {
                    return Err(TlsSetupError::NoCertificate { path: shown });
                }
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(TlsSetupError::NoCertificate { path: shown });
                }
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(Some(Arc::new(config)))
}

/// `sslmode=require`: any certificate, handshake signatures still verified.
#[derive(Debug)]
struct AnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// tokio-postgres's TLS hook over rustls.
#[derive(Clone)]
pub struct RustlsTls {
    config: Arc<ClientConfig>,
}

impl RustlsTls {
    pub fn new(config: Arc<ClientConfig>) -> Self {
        RustlsTls { config }
    }
}

impl<S> MakeTlsConnect<S> for RustlsTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, io::Error> {
        // A Unix socket directory is not a server name; TLS is never used over it, so the error waits.
        Ok(RustlsConnect {
            name: ServerName::try_from(domain.to_string()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e)),
            connector: tokio_rustls::TlsConnector::from(self.config.clone()),
        })
    }
}

/// One TLS handshake to come.
pub struct RustlsConnect {
    name: Result<ServerName<'static>, io::Error>,
    connector: tokio_rustls::TlsConnector,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let name = self.name?;
            let tls = self.connector.connect(name, stream).await?;
            Ok(RustlsStream(tls))
        })
    }
}

/// An encrypted connection.
pub struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

/// The rustls error behind a failed connection, if TLS is what failed (its text names no secret).
pub fn tls_failure(error: &tokio_postgres::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(e) = source {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r.to_string());
        }
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if let Some(r) = io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
                return Some(r.to_string());
            }
        }
        source = e.source();
    }
    None
}
