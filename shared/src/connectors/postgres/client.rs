//! One database connection per container, opened on first use (or at INIT), reused across invocations and
//! opened again when it breaks. No session state is ever set: every statement is one unnamed extended-
//! protocol statement (`query_typed`: Parse/Bind/Execute in one round trip, no named prepared statement),
//! and no `SET` is ever sent.
//!
//! # Statement timeouts without session state
//!
//! `SET statement_timeout`, `SET LOCAL` and `set_config()` are session or transaction state, which pins a
//! client to one backend behind RDS Proxy (RDS user guide, "Avoiding pinning": for PostgreSQL, "using SET
//! commands" and "setting parameters" pin). So the timeout is enforced by the client: each statement runs
//! under a deadline taken from the page's time budget (at most `POSTGRES_STATEMENT_TIMEOUT_MS`); when it
//! passes, the bridge sends PostgreSQL's cancel request (a separate connection carrying the backend's
//! cancel key) and drops the connection, so the next statement never queues behind the abandoned one.
//! RDS Proxy does not support cancel requests (RDS user guide, RDS Proxy limitations); behind it the
//! abandoned statement runs until the role's own `statement_timeout` (the README's `ALTER ROLE ... SET
//! statement_timeout`, applied by the server at sign-in without any client `SET`) or its end.
//!
//! Whether RDS Proxy pins sessions that use the extended protocol with the unnamed statement only is not
//! documented (the user guide lists "the extended query protocol" among pinning conditions); pinning would
//! cost the proxy's multiplexing, never correctness. UNVERIFIED against a real proxy.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

use super::iam::TokenSigner;
use super::settings::SslMode;
use super::tls::{self, RustlsTls};
use crate::connectors::ConnectorError;
use crate::secrets::Secret;

/// How the system is named in errors.
pub const SYSTEM: &str = "PostgreSQL";
/// How long a cancel request may take before it is given up.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(1);
/// Suggested wait before retrying when the database is unreachable.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub dbname: String,
    pub ssl_mode: SslMode,
    pub connect_timeout: Duration,
}

/// How the connection signs in.
pub enum SignIn {
    /// The password from SSM (or, for local runs, the URL); none for `trust` authentication.
    Password,
    /// A fresh RDS IAM authentication token per connection.
    Iam(Box<TokenSigner>),
}

/// What went wrong talking to the database, before it is told to Talkdesk.
#[derive(Debug)]
pub enum DbFailure {
    /// The statement did not finish before its deadline.
    Timeout,
    /// The deployment's credentials were refused.
    AuthRefused { sqlstate: String },
    /// The database could not be reached, refused connections, or the connection broke.
    Unreachable { detail: String },
    /// The TLS handshake failed (certificate not trusted, server without TLS...).
    Tls { detail: String },
    /// A relation or column of the contract is gone.
    Schema { sqlstate: String },
    /// The user may not read a relation.
    Privilege,
    /// The database does not exist.
    NoDatabase,
    /// Another error, by SQLSTATE.
    Other { sqlstate: String },
    /// The IAM token could not be signed.
    Token { detail: String },
}

impl DbFailure {
    /// Sorts a driver error. Messages from the server are not kept: they may quote data.
    pub fn classify(e: &tokio_postgres::Error) -> DbFailure {
        if let Some(db) = e.as_db_error() {
            let code = db.code();
            let sqlstate = code.code().to_string();
            return if *code == SqlState::INVALID_PASSWORD || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
                DbFailure::AuthRefused { sqlstate }
            } else if *code == SqlState::QUERY_CANCELED {
                DbFailure::Timeout
            } else if *code == SqlState::UNDEFINED_TABLE || *code == SqlState::UNDEFINED_COLUMN {
                DbFailure::Schema { sqlstate }
            } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
                DbFailure::Privilege
            } else if *code == SqlState::INVALID_CATALOG_NAME {
                DbFailure::NoDatabase
            } else if sqlstate.starts_with("08") || sqlstate.starts_with("53") || sqlstate.starts_with("57P") {
                // Connection exceptions, insufficient resources (too many connections), shutdown, starting up.
                DbFailure::Unreachable {
                    detail: format!("SQLSTATE {sqlstate}"),
                }
            } else {
                DbFailure::Other { sqlstate }
            };
        }
        if let Some(detail) = tls::tls_failure(e) {
            return DbFailure::Tls { detail };
        }
        let text = e.to_string();
        if text.contains("TLS") || text.contains("tls") {
            return DbFailure::Tls { detail: text };
        }
        DbFailure::Unreachable { detail: text }
    }

    /// Whether the connection itself is unusable (opened again before the next statement).
    fn breaks_connection(&self) -> bool {
        matches!(self, DbFailure::Timeout | DbFailure::Unreachable { .. } | DbFailure::Tls { .. })
    }

    /// What Talkdesk is told. `user` names the database user in the credentials message.
    pub fn to_connector_error(&self, user: &str) -> ConnectorError {
        match self {
            DbFailure::Timeout => ConnectorError::Timeout { system: SYSTEM },
            DbFailure::Unreachable { .. } => ConnectorError::Unavailable {
                system: SYSTEM,
                retry_after: Some(RETRY_AFTER),
            },
            DbFailure::AuthRefused { sqlstate } => ConnectorError::BadGateway {
                message: format!(
                    "the database refused the deployment's credentials for user `{user}` (SQLSTATE {sqlstate}); \
                     Talkdesk's credentials are fine: check the deployment's database password (SSM parameter \
                     postgres/password) or its IAM database authentication"
                ),
            },
            DbFailure::Tls { detail } => ConnectorError::BadGateway {
                message: format!("the TLS connection to the database failed ({detail}); check POSTGRES_SSLMODE and POSTGRES_SSLROOTCERT"),
            },
            DbFailure::Schema { sqlstate } => ConnectorError::BadGateway {
                message: format!(
                    "a relation or column of the contract is missing from the database (SQLSTATE {sqlstate}); \
                     the next request reads the catalog again"
                ),
            },
            DbFailure::Privilege => ConnectorError::BadGateway {
                message: format!("the database user `{user}` may not read the configured relations: GRANT SELECT on them"),
            },
            DbFailure::NoDatabase => ConnectorError::BadGateway {
                message: "the configured database does not exist (POSTGRES_DBNAME)".into(),
            },
            DbFailure::Other { sqlstate } => ConnectorError::BadGateway {
                message: format!("the database failed the query (SQLSTATE {sqlstate})"),
            },
            DbFailure::Token { detail } => ConnectorError::BadGateway {
                message: format!("no RDS IAM authentication token could be made: {detail}"),
            },
        }
    }
}

struct Live {
    client: Arc<tokio_postgres::Client>,
    id: u64,
}

/// The connection, shared by every invocation of the container.
pub struct Database {
    endpoint: Endpoint,
    tls: Option<RustlsTls>,
    sign_in: SignIn,
    live: tokio::sync::Mutex<Option<Live>>,
    opened: AtomicU64,
}

/// A connection lent to one statement, and whether it was reused (a reused one may have died while the
/// container was frozen).
pub struct Lent {
    pub client: Arc<tokio_postgres::Client>,
    id: u64,
    reused: bool,
}

impl Database {
    pub fn new(endpoint: Endpoint, tls: Option<RustlsTls>, sign_in: SignIn) -> Self {
        Database {
            endpoint,
            tls,
            sign_in,
            live: tokio::sync::Mutex::new(None),
            opened: AtomicU64::new(0),
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    pub fn sign_in(&self) -> &SignIn {
        &self.sign_in
    }

    /// Connections opened so far (for tests and logs).
    pub fn connections_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// The open connection, or a new one opened before `deadline`.
    pub async fn lend(&self, password: Option<&Secret>, deadline: Instant) -> Result<Lent, DbFailure> {
        let mut live = self.live.lock().await;
        if let Some(l) = live.as_ref() {
            if !l.client.is_closed() {
                return Ok(Lent {
                    client: l.client.clone(),
                    id: l.id,
                    reused: true,
                });
            }
        }
        *live = None;
        let client = Arc::new(self.open(password, deadline).await?);
        let id = self.opened.fetch_add(1, Ordering::Relaxed) + 1;
        *live = Some(Live {
            client: client.clone(),
            id,
        });
        Ok(Lent { client, id, reused: false })
    }

    /// Forgets connection `id` if it is still the open one, so the next statement opens another.
    pub async fn discard(&self, id: u64) {
        let mut live = self.live.lock().await;
        if live.as_ref().is_some_and(|l| l.id == id) {
            *live = None;
        }
    }

    async fn open(&self, password: Option<&Secret>, deadline: Instant) -> Result<tokio_postgres::Client, DbFailure> {
        let e = &self.endpoint;
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = e.connect_timeout.min(left).max(Duration::from_millis(1));
        let mut config = tokio_postgres::Config::new();
        config
            .host(&e.host)
            .port(e.port)
            .user(&e.user)
            .dbname(&e.dbname)
            .application_name("talkdesk-bridge")
            .connect_timeout(timeout)
            .ssl_mode(match e.ssl_mode {
                SslMode::Disable => tokio_postgres::config::SslMode::Disable,
                SslMode::Require | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
            });
        match &self.sign_in {
            SignIn::Password => {
                if let Some(p) = password {
                    config.password(p.expose());
                }
            }
            SignIn::Iam(signer) => {
                let token = signer
                    .token(&e.host, e.port, &e.user)
                    .await
                    .map_err(|detail| DbFailure::Token { detail })?;
                config.password(token.expose());
            }
        }
        let started = Instant::now();
        let connecting = async {
            match &self.tls {
                Some(tls) => {
                    let (client, connection) = config.connect(tls.clone()).await?;
                    tokio::spawn(drive(connection));
                    Ok::<_, tokio_postgres::Error>(client)
                }
                None => {
                    let (client, connection) = config.connect(NoTls).await?;
                    tokio::spawn(drive(connection));
                    Ok(client)
                }
            }
        };
        let client = match tokio::time::timeout(timeout, connecting).await {
            Ok(Ok(client)) => client,
            Ok(Err(err)) => {
                let failure = DbFailure::classify(&err);
                tracing::warn!(system = SYSTEM, host = %e.host, port = e.port, failure = ?failure, "database connection failed");
                return Err(failure);
            }
            Err(_) => {
                tracing::warn!(system = SYSTEM, host = %e.host, port = e.port, timeout_ms = timeout.as_millis() as u64, "database connection timed out");
                return Err(DbFailure::Unreachable {
                    detail: "connect timed out".into(),
                });
            }
        };
        tracing::info!(system = SYSTEM, host = %e.host, port = e.port, elapsed_ms = started.elapsed().as_millis() as u64, "database connection opened");
        Ok(client)
    }

    /// Runs `statement` on the connection before `deadline`. A reused connection that turns out to be
    /// dead is replaced and the statement sent once more (every statement is a read). On a timeout the
    /// statement is cancelled and the connection dropped.
    pub async fn run<T, F, Fut>(&self, password: Option<&Secret>, deadline: Instant, statement: F) -> Result<T, DbFailure>
    where
        F: Fn(Arc<tokio_postgres::Client>) -> Fut,
        Fut: std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let lent = self.lend(password, deadline).await?;
            crate::metrics::note_upstream_call();
            let left = deadline.saturating_duration_since(Instant::now());
            let outcome = tokio::time::timeout(left, statement(lent.client.clone())).await;
            let failure = match outcome {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(e)) => DbFailure::classify(&e),
                Err(_) => {
                    self.cancel(&lent).await;
                    DbFailure::Timeout
                }
            };
            if failure.breaks_connection() || lent.client.is_closed() {
                self.discard(lent.id).await;
            }
            let stale = lent.reused && matches!(failure, DbFailure::Unreachable { .. });
            if stale && attempt == 1 && Instant::now() < deadline {
                tracing::info!(system = SYSTEM, "the reused database connection was dead; opening another");
                continue;
            }
            return Err(failure);
        }
    }

    /// Asks the server to cancel what `lent` is running (best effort, bounded).
    async fn cancel(&self, lent: &Lent) {
        let token = lent.client.cancel_token();
        let sent = match &self.tls {
            Some(tls) => tokio::time::timeout(CANCEL_TIMEOUT, token.cancel_query(tls.clone())).await,
            None => tokio::time::timeout(CANCEL_TIMEOUT, token.cancel_query(NoTls)).await,
        };
        match sent {
            Ok(Ok(())) => tracing::info!(system = SYSTEM, "statement timed out; cancel request sent"),
            Ok(Err(e)) => tracing::warn!(system = SYSTEM, error = %e, "statement timed out; the cancel request failed"),
            Err(_) => tracing::warn!(system = SYSTEM, "statement timed out; the cancel request timed out"),
        }
    }
}

async fn drive<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if let Err(e) = connection.await {
        tracing::info!(system = SYSTEM, error = %e, "database connection closed");
    }
}
