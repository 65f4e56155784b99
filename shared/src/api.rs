//! The two bridge operations, from request bytes to [`ApiResponse`]: parse, authenticate, run the engine,
//! answer. Every expected failure becomes a response here; nothing is left for the Lambda runtime to turn
//! into an opaque 500.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::config::{Config, ConfigError};
use crate::connectors::{self, Connector};
use crate::error::{ApiError, ApiResponse};
use crate::lookup;
use crate::secrets::deployment::{DeploymentSecrets, SecretSet};
use crate::secrets::inbound;
use crate::secrets::ssm::SsmCache;
use crate::secrets::Secret;
use crate::sync::{self, Budget, Pacer, PageLimits, TokenSigner};
use crate::talkdesk::{self, ContactsResponse};

/// A contacts page as the engine filled it: the contacts already serialised, the tokens to send with them.
struct ContactsPage {
    contacts: sync::ContactsJson,
    synchronization_checkpoint: String,
    next_offset: Option<String>,
    context: Option<Value>,
}

impl ContactsPage {
    /// The response body: [`ContactsResponse`]'s JSON, written around the serialised contacts.
    fn to_json(&self) -> String {
        ContactsResponse::json_around(
            self.contacts.as_bytes(),
            &self.synchronization_checkpoint,
            self.next_offset.as_deref(),
            self.context.as_ref(),
        )
    }
}

/// How long each step of [`App::from_env`] took, logged at DEBUG once INIT is done.
struct InitSteps {
    started: Instant,
    last: Instant,
    steps: Vec<(&'static str, std::time::Duration)>,
}

impl InitSteps {
    fn start() -> Self {
        let now = Instant::now();
        InitSteps {
            started: now,
            last: now,
            steps: Vec::with_capacity(6),
        }
    }

    fn done(&mut self, step: &'static str) {
        let now = Instant::now();
        self.steps.push((step, now - self.last));
        self.last = now;
    }

    fn log(&self) {
        if tracing::enabled!(tracing::Level::DEBUG) {
            let steps: Vec<String> = self
                .steps
                .iter()
                .map(|(step, took)| format!("{step} {:.2} ms", took.as_secs_f64() * 1000.0))
                .collect();
            tracing::debug!(
                total_ms = self.started.elapsed().as_secs_f64() * 1000.0,
                steps = %steps.join(", "),
                "INIT steps"
            );
        }
    }
}

/// Everything built once per container at cold start and borrowed by every invocation.
pub struct App {
    pub config: Config,
    pub connector: Arc<dyn Connector>,
    secrets: DeploymentSecrets,
    /// Holds an account's upstream requests back while its provider's rate-limit window is spent.
    pacer: Pacer,
    /// Write one EMF metrics line per invocation to stdout (deployments; `from_env` turns it on).
    emit_metrics: bool,
}

impl App {
    /// Reads the environment, builds the configured connector and, when `BRIDGE_SSM_PREFIX` is set, reads
    /// the secrets from SSM, then lets the connector check its configuration ([`App::prepare`]). Fails
    /// INIT on a bad configuration or when SSM cannot be read.
    ///
    /// The time of each step is logged at DEBUG (`AWS_LAMBDA_LOG_LEVEL=DEBUG`).
    pub async fn from_env() -> Result<Self, ConfigError> {
        let mut steps = InitSteps::start();
        let config = Config::from_env()?;
        steps.done("configuration read");
        let app = match config.ssm_prefix.clone() {
            Some(prefix) => {
                let connector = connectors::build(&config)?;
                steps.done("connector built");
                let cache = SsmCache::from_env(prefix.clone(), config.ssm_ttl);
                steps.done("SSM client configured");
                let app = App::with_ssm(config, connector, cache).await?;
                steps.done("secrets read from SSM");
                app
            }
            None => {
                let connector = connectors::build(&config)?;
                steps.done("connector built");
                App::new(config, connector)?
            }
        };
        app.prepare().await?;
        steps.done("connector prepared");
        steps.log();
        Ok(App { emit_metrics: true, ..app })
    }

    /// The connector's cold-start check ([`Connector::prepare`]) with the deployment's secrets in force
    /// (e.g. a database's relations and columns). [`App::from_env`] calls it; apps built otherwise may.
    pub async fn prepare(&self) -> Result<(), ConfigError> {
        let mut stored = talkdesk::Auth::default();
        self.secrets.last().fill_credentials(&mut stored);
        self.connector.prepare(&stored).await
    }

    /// An app whose secrets come from the configuration alone (`BRIDGE_TOKEN_KEY`,
    /// `BRIDGE_INBOUND_TOKENS`); SSM is never called, whatever the configuration's prefix
    /// ([`App::from_env`] and [`App::with_ssm`] read SSM).
    pub fn new(config: Config, connector: Arc<dyn Connector>) -> Result<Self, ConfigError> {
        let secrets = DeploymentSecrets::from_environment(&config, connector.as_ref())?;
        Ok(App {
            config,
            connector,
            secrets,
            pacer: Pacer::new(),
            emit_metrics: false,
        })
    }

    /// An app whose secrets are read from SSM through `cache`, now (INIT) and again around each TTL,
    /// riding out SSM outages for `BRIDGE_SSM_STALE_GRACE_SECS` (see [`crate::secrets::deployment`]).
    pub async fn with_ssm(config: Config, connector: Arc<dyn Connector>, cache: SsmCache) -> Result<Self, ConfigError> {
        let secrets = DeploymentSecrets::from_ssm(&config, connector.as_ref(), cache).await?;
        Ok(App {
            config,
            connector,
            secrets,
            pacer: Pacer::new(),
            emit_metrics: false,
        })
    }

    /// The signer in force (read last; requests renew it after the TTL).
    pub fn signer(&self) -> TokenSigner {
        self.secrets.last().signer().clone()
    }

    /// The container's pacer: which accounts' upstream requests are held back, and until when.
    pub fn pacer(&self) -> &Pacer {
        &self.pacer
    }

    /// The deployment's secrets: where they come from, and those in force.
    pub fn secrets(&self) -> &DeploymentSecrets {
        &self.secrets
    }

    /// Lets the caller in, or not: the secrets in force (503 when SSM holds an invalid value, or has been
    /// unreachable past the TTL and the grace), the body parsed as a JSON object (nothing more) with
    /// `auth.bridge_token` taken out, then the presented tokens checked against the inbound tokens.
    async fn admit(&self, bearer: Option<&str>, body: &[u8]) -> Result<(Map<String, Value>, Arc<SecretSet>), ApiError> {
        let secrets = self.secrets.current().await.map_err(|_| ApiError::ConfigStoreUnavailable)?;
        let mut root = talkdesk::parse_body(body)?;
        let in_body = talkdesk::take_auth_field(&mut root, inbound::AUTH_FIELD);
        if !secrets.inbound().admit(&[bearer, in_body.as_ref().map(Secret::expose)]) {
            return Err(ApiError::Unauthenticated);
        }
        Ok((root, secrets))
    }

    fn page_limits(&self) -> PageLimits {
        PageLimits {
            max_contacts: self.config.page_size,
            max_bytes: self.config.max_response_bytes,
        }
    }

    /// `POST /contacts` from an HTTP request (API Gateway, a function URL, a test).
    pub async fn handle_contacts<B: AsRef<[u8]>>(
        &self,
        req: &http::Request<B>,
        budget: &dyn Budget,
        now: DateTime<Utc>,
    ) -> http::Response<String> {
        if req.method() != http::Method::POST {
            return ApiError::MethodNotAllowed.to_response().into_http();
        }
        let bearer = inbound::bearer(req.headers());
        self.contacts_as(bearer, req.body().as_ref(), budget, now).await.into_http()
    }

    /// `POST /interactions` from an HTTP request, with API Gateway's 29 s as the outer deadline.
    pub async fn handle_interactions<B: AsRef<[u8]>>(&self, req: &http::Request<B>) -> http::Response<String> {
        let budget = self.gateway_deadline();
        self.handle_interactions_within(req, &budget).await
    }

    /// `POST /interactions` from an HTTP request; the lookup ends by `BRIDGE_LOOKUP_BUDGET_MS` or by what
    /// `budget` (the Lambda deadline) leaves, whichever comes first.
    pub async fn handle_interactions_within<B: AsRef<[u8]>>(&self, req: &http::Request<B>, budget: &dyn Budget) -> http::Response<String> {
        if req.method() != http::Method::POST {
            return ApiError::MethodNotAllowed.to_response().into_http();
        }
        let bearer = inbound::bearer(req.headers());
        self.interactions_as(bearer, req.body().as_ref(), budget).await.into_http()
    }

    /// API Gateway's limit minus the time margin, from now: the outer deadline when no Lambda context
    /// tells a nearer one.
    fn gateway_deadline(&self) -> sync::Deadline {
        sync::Deadline::new(tokio::time::Instant::now(), None, self.config.time_margin)
    }

    /// `POST /contacts`. `now` is the wall clock (the run's upper bound derives from it); `budget` says
    /// when to stop fetching. The bridge token, when one is required, is read from `auth.bridge_token`.
    pub async fn contacts(&self, body: &[u8], budget: &dyn Budget, now: DateTime<Utc>) -> ApiResponse {
        self.contacts_as(None, body, budget, now).await
    }

    /// `POST /contacts` with the token of an `Authorization: Bearer` header, if the request has one.
    async fn contacts_as(&self, bearer: Option<&str>, body: &[u8], budget: &dyn Budget, now: DateTime<Utc>) -> ApiResponse {
        let started = Instant::now();
        let (result, upstream) = crate::metrics::track(self.contacts_inner(bearer, body, budget, now)).await;
        let mut m = crate::metrics::Invocation::new("contacts", self.connector.name()).with_upstream(upstream);
        if let Ok((page, stats)) = &result {
            m = m.with_page(stats);
            m.records = page.contacts.len();
        }
        let response = match result {
            Ok((response, stats)) => {
                tracing::info!(
                    connector = self.connector.name(),
                    contacts = response.contacts.len(),
                    last_page = response.next_offset.is_none(),
                    upstream_calls = stats.upstream_calls,
                    stop = ?stats.stop,
                    bytes = stats.bytes,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "contacts page"
                );
                ApiResponse::json(200, response.to_json())
            }
            Err(e) => self.failure("contacts", e, started),
        };
        self.record(m, &response, started);
        response
    }

    async fn contacts_inner(
        &self,
        bearer: Option<&str>,
        body: &[u8],
        budget: &dyn Budget,
        now: DateTime<Utc>,
    ) -> Result<(ContactsPage, sync::PageStats), ApiError> {
        let (root, secrets) = self.admit(bearer, body).await?;
        let mut request = talkdesk::contacts_request_from(&root)?;
        secrets.fill_credentials(&mut request.auth);
        let signer = secrets.signer();
        let account = self.connector.account(&request.auth)?;
        let checkpoint = request
            .checkpoint
            .as_deref()
            .map(|c| signer.decode_checkpoint(&account, c))
            .transpose()
            .map_err(|source| ApiError::Token {
                field: "meta.synchronization_checkpoint",
                source,
            })?;
        let offset = request
            .offset
            .as_deref()
            .map(|o| signer.decode_offset(&account, o))
            .transpose()
            .map_err(|source| ApiError::Token {
                field: "meta.offset",
                source,
            })?;
        let run = sync::plan_run(checkpoint.as_ref(), offset, now, self.connector.indexing_lag());
        let outcome = sync::sync_page(sync::PageRequest {
            connector: self.connector.as_ref(),
            auth: &request.auth,
            account: &account,
            run,
            limits: self.page_limits(),
            budget,
            pacer: &self.pacer,
        })
        .await?;
        let next_offset = outcome.next.as_ref().map(|n| signer.encode_offset(&account, n));
        let context = outcome.next.as_ref().map(|n| json!({"page": n.page}));
        let response = ContactsPage {
            contacts: outcome.contacts,
            synchronization_checkpoint: signer.encode_checkpoint(&account, &outcome.checkpoint),
            next_offset,
            context,
        };
        Ok((response, outcome.stats))
    }

    /// `POST /interactions`. The bridge token, when one is required, is read from `auth.bridge_token`.
    pub async fn interactions(&self, body: &[u8]) -> ApiResponse {
        let budget = self.gateway_deadline();
        self.interactions_as(None, body, &budget).await
    }

    /// `POST /interactions` within an outer deadline (see [`App::handle_interactions_within`]).
    pub async fn interactions_within(&self, body: &[u8], budget: &dyn Budget) -> ApiResponse {
        self.interactions_as(None, body, budget).await
    }

    /// `POST /interactions` with the token of an `Authorization: Bearer` header, if the request has one.
    async fn interactions_as(&self, bearer: Option<&str>, body: &[u8], budget: &dyn Budget) -> ApiResponse {
        let started = Instant::now();
        let (result, upstream) = crate::metrics::track(self.interactions_inner(bearer, body, budget)).await;
        let mut m = crate::metrics::Invocation::new("interactions", self.connector.name()).with_upstream(upstream);
        m.records = result.as_ref().map_or(0, |found| found.len());
        let response = match result {
            Ok(found) => {
                tracing::info!(
                    connector = self.connector.name(),
                    interactions = found.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "interactions lookup"
                );
                ApiResponse::json(200, serde_json::to_string(&found).unwrap_or_else(|_| "[]".into()))
            }
            Err(e) => self.failure("interactions", e, started),
        };
        self.record(m, &response, started);
        response
    }

    fn record(&self, mut m: crate::metrics::Invocation, response: &ApiResponse, started: Instant) {
        if self.emit_metrics {
            m.status = response.status;
            m.bytes = response.body.len();
            m.duration_ms = started.elapsed().as_millis() as u64;
            crate::metrics::emit(&m);
        }
    }

    async fn interactions_inner(
        &self,
        bearer: Option<&str>,
        body: &[u8],
        budget: &dyn Budget,
    ) -> Result<Vec<talkdesk::Interaction>, ApiError> {
        let (root, secrets) = self.admit(bearer, body).await?;
        let mut request = talkdesk::interactions_request_from(&root)?;
        secrets.fill_credentials(&mut request.auth);
        self.connector.account(&request.auth)?;
        let limits = lookup::LookupLimits::from_config(&self.config);
        let Some(plan) = lookup::plan(
            &request.data,
            &request.interaction_types,
            self.connector.interaction_types(),
            &limits,
        ) else {
            return Ok(vec![]);
        };
        let outcome = lookup::run(
            self.connector.as_ref(),
            &request.auth,
            &plan,
            &limits,
            budget,
            lookup::process_permits(),
        )
        .await;
        crate::metrics::note_hits(outcome.hits);
        crate::metrics::note_lookup(crate::metrics::LookupCounts {
            cut_short: usize::from(outcome.cut_short),
            identifiers_ignored: outcome.ignored.total(),
            people_ignored: outcome.people_ignored,
            failures: outcome.failures.len(),
            max_in_flight: outcome.max_in_flight,
        });
        tracing::debug!(
            external_id_hits = outcome.hits.external_id,
            email_hits = outcome.hits.email,
            phone_hits = outcome.hits.phone,
            "lookup hits"
        );
        Ok(outcome.answer()?)
    }

    /// `POST /agents` (Talkdesk's agent synchronization) from an HTTP request; `budget` is the page budget
    /// (the contacts function's: `BRIDGE_PAGE_BUDGET_MS`, the Lambda deadline, API Gateway's 29 s).
    pub async fn handle_agents<B: AsRef<[u8]>>(&self, req: &http::Request<B>, budget: &dyn Budget) -> http::Response<String> {
        if req.method() != http::Method::POST {
            return ApiError::MethodNotAllowed.to_response().into_http();
        }
        let bearer = inbound::bearer(req.headers());
        self.agents_as(bearer, req.body().as_ref(), budget).await.into_http()
    }

    /// `POST /agents`: every agent of the external system in one response (see [`crate::agents`]). The bridge
    /// token, when one is required, is read from `auth.bridge_token`.
    pub async fn agents(&self, body: &[u8], budget: &dyn Budget) -> ApiResponse {
        self.agents_as(None, body, budget).await
    }

    async fn agents_as(&self, bearer: Option<&str>, body: &[u8], budget: &dyn Budget) -> ApiResponse {
        let started = Instant::now();
        let (result, upstream) = crate::metrics::track(self.agents_inner(bearer, body, budget)).await;
        let mut m = crate::metrics::Invocation::new("agents", self.connector.name()).with_upstream(upstream);
        m.records = result.as_ref().map_or(0, |(agents, _)| agents.len());
        let response = match result {
            Ok((agents, stats)) => {
                tracing::info!(
                    connector = self.connector.name(),
                    agents = agents.len(),
                    pages = stats.pages,
                    duplicates = stats.duplicates,
                    bytes = stats.bytes,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "agents listed"
                );
                let body = talkdesk::AgentsResponse { agents };
                ApiResponse::json(200, serde_json::to_string(&body).unwrap_or_else(|_| r#"{"agents":[]}"#.into()))
            }
            Err(e) => self.failure("agents", e, started),
        };
        self.record(m, &response, started);
        response
    }

    async fn agents_inner(
        &self,
        bearer: Option<&str>,
        body: &[u8],
        budget: &dyn Budget,
    ) -> Result<(Vec<talkdesk::Agent>, crate::agents::AgentStats), ApiError> {
        let (root, secrets) = self.admit(bearer, body).await?;
        let mut auth = talkdesk::auth_request_from(&root)?;
        secrets.fill_credentials(&mut auth);
        self.connector.account(&auth)?;
        Ok(crate::agents::all_agents(self.connector.as_ref(), &auth, self.config.max_response_bytes, budget).await?)
    }

    /// `POST /auth/validate` (Talkdesk's authorization validation) from an HTTP request, with API Gateway's
    /// 29 s as the outer deadline unless `budget` is nearer.
    pub async fn handle_validate<B: AsRef<[u8]>>(&self, req: &http::Request<B>, budget: &dyn Budget) -> http::Response<String> {
        if req.method() != http::Method::POST {
            return ApiError::MethodNotAllowed.to_response().into_http();
        }
        let bearer = inbound::bearer(req.headers());
        self.validate_as(bearer, req.body().as_ref(), budget).await.into_http()
    }

    /// `POST /auth/validate`: 204 when the credentials in `auth` (completed by the deployment's stored
    /// ones) work for everything the integration does; 401 naming what is wrong when they cannot; upstream
    /// outages keep their 502/503/504. The bridge token rules are those of every route.
    pub async fn validate(&self, body: &[u8], budget: &dyn Budget) -> ApiResponse {
        self.validate_as(None, body, budget).await
    }

    async fn validate_as(&self, bearer: Option<&str>, body: &[u8], budget: &dyn Budget) -> ApiResponse {
        let started = Instant::now();
        let (result, upstream) = crate::metrics::track(self.validate_inner(bearer, body, budget)).await;
        let m = crate::metrics::Invocation::new("validate", self.connector.name()).with_upstream(upstream);
        let response = match result {
            Ok(()) => {
                tracing::info!(
                    connector = self.connector.name(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "credentials valid"
                );
                ApiResponse {
                    status: 204,
                    headers: vec![("content-type", "application/json".into())],
                    body: String::new(),
                }
            }
            Err(e) => self.failure("validate", e, started),
        };
        self.record(m, &response, started);
        response
    }

    async fn validate_inner(&self, bearer: Option<&str>, body: &[u8], budget: &dyn Budget) -> Result<(), ApiError> {
        let (root, secrets) = self.admit(bearer, body).await?;
        let mut auth = talkdesk::auth_request_from(&root)?;
        secrets.fill_credentials(&mut auth);
        self.connector.account(&auth).map_err(ApiError::Validation)?;
        self.connector.validate(&auth, budget).await.map_err(ApiError::Validation)
    }

    fn failure(&self, operation: &'static str, e: ApiError, started: Instant) -> ApiResponse {
        let response = e.to_response();
        if response.status >= 500 {
            tracing::warn!(operation, connector = self.connector.name(), status = response.status, code = e.code(), error = %e, elapsed_ms = started.elapsed().as_millis() as u64, "request failed upstream");
        } else {
            tracing::info!(
                operation,
                status = response.status,
                code = e.code(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "request refused"
            );
        }
        response
    }
}
