//! The two bridge operations, from request bytes to [`ApiResponse`]: parse, authenticate, run the engine,
//! answer. Every expected failure becomes a response here; nothing is left for the Lambda runtime to turn
//! into an opaque 500.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::config::{Config, ConfigError};
use crate::connectors::{self, Connector};
use crate::error::{ApiError, ApiResponse};
use crate::lookup;
use crate::sync::{self, Budget, PageLimits, TokenSigner};
use crate::talkdesk::{self, ContactsResponse};

/// Everything built once per container at cold start and borrowed by every invocation.
pub struct App {
    pub config: Config,
    pub connector: Arc<dyn Connector>,
    signer: TokenSigner,
}

impl App {
    /// Reads the environment and builds the configured connector. Fails INIT on a bad configuration.
    pub async fn from_env() -> Result<Self, ConfigError> {
        let config = Config::from_env()?;
        let connector = connectors::build(&config)?;
        App::new(config, connector)
    }

    pub fn new(config: Config, connector: Arc<dyn Connector>) -> Result<Self, ConfigError> {
        let signer = TokenSigner::new(config.resolve_token_key()?);
        Ok(App { config, connector, signer })
    }

    pub fn signer(&self) -> &TokenSigner {
        &self.signer
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
        self.contacts(req.body().as_ref(), budget, now).await.into_http()
    }

    /// `POST /interactions` from an HTTP request.
    pub async fn handle_interactions<B: AsRef<[u8]>>(&self, req: &http::Request<B>) -> http::Response<String> {
        if req.method() != http::Method::POST {
            return ApiError::MethodNotAllowed.to_response().into_http();
        }
        self.interactions(req.body().as_ref()).await.into_http()
    }

    /// `POST /contacts`. `now` is the wall clock (the run's upper bound derives from it); `budget` says
    /// when to stop fetching.
    pub async fn contacts(&self, body: &[u8], budget: &dyn Budget, now: DateTime<Utc>) -> ApiResponse {
        let started = Instant::now();
        match self.contacts_inner(body, budget, now).await {
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
                ApiResponse::json(200, serde_json::to_string(&response).unwrap_or_default())
            }
            Err(e) => self.failure("contacts", e, started),
        }
    }

    async fn contacts_inner(
        &self,
        body: &[u8],
        budget: &dyn Budget,
        now: DateTime<Utc>,
    ) -> Result<(ContactsResponse, sync::PageStats), ApiError> {
        let request = talkdesk::parse_contacts_request(body)?;
        let account = self.connector.account(&request.auth)?;
        let checkpoint = request
            .checkpoint
            .as_deref()
            .map(|c| self.signer.decode_checkpoint(&account, c))
            .transpose()
            .map_err(|source| ApiError::Token {
                field: "meta.synchronization_checkpoint",
                source,
            })?;
        let offset = request
            .offset
            .as_deref()
            .map(|o| self.signer.decode_offset(&account, o))
            .transpose()
            .map_err(|source| ApiError::Token {
                field: "meta.offset",
                source,
            })?;
        let run = sync::plan_run(checkpoint.as_ref(), offset, now, self.connector.indexing_lag());
        let outcome = sync::sync_page(self.connector.as_ref(), &request.auth, run, self.page_limits(), budget).await?;
        let next_offset = outcome.next.as_ref().map(|n| self.signer.encode_offset(&account, n));
        let context = outcome.next.as_ref().map(|n| json!({"page": n.page}));
        let response = ContactsResponse {
            contacts: outcome.contacts,
            synchronization_checkpoint: self.signer.encode_checkpoint(&account, &outcome.checkpoint),
            next_offset,
            context,
        };
        Ok((response, outcome.stats))
    }

    /// `POST /interactions`.
    pub async fn interactions(&self, body: &[u8]) -> ApiResponse {
        let started = Instant::now();
        match self.interactions_inner(body).await {
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
        }
    }

    async fn interactions_inner(&self, body: &[u8]) -> Result<Vec<talkdesk::Interaction>, ApiError> {
        let request = talkdesk::parse_interactions_request(body)?;
        self.connector.account(&request.auth)?;
        let supported = self.connector.interaction_types();
        let Some(query) = lookup::build_query(
            &request.data,
            &request.interaction_types,
            supported,
            self.config.default_region,
            self.config.max_interactions,
        ) else {
            return Ok(vec![]);
        };
        let batch = self.connector.interactions(&request.auth, &query).await?;
        tracing::debug!(
            external_id_hits = batch.hits.external_id,
            email_hits = batch.hits.email,
            phone_hits = batch.hits.phone,
            "lookup hits"
        );
        Ok(lookup::merge(batch.interactions, &query.types, self.config.max_interactions))
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
