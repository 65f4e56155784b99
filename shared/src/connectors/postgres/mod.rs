//! PostgreSQL: a company's own customer database. Contacts come from a table or view the customer shapes
//! to a small contract (`POSTGRES_CONTACTS_RELATION`), interactions from another
//! (`POSTGRES_INTERACTIONS_RELATION`); the README gives the contract, an example schema and its indexes.
//!
//! - [`settings`]: `POSTGRES_*` deployment settings.
//! - [`sql`]: the statements, the catalog checks and the sort key that makes the database's order the
//!   engine's (pure).
//! - [`client`]: the connection (reused, reopened when broken), client-side statement deadlines, and how
//!   database failures become Talkdesk errors.
//! - [`tls`]: rustls for `require` and `verify-full`.
//! - [`iam`]: RDS IAM authentication tokens.
//! - [`mapping`]: rows to contacts and interactions (pure).
//!
//! At cold start ([`Connector::prepare`]) the connector connects, finds both relations in the catalog and
//! checks their columns: a missing relation or column, a wrong type or a relation the user may not read
//! fails INIT with a message naming it. An unreachable database or refused credentials do not fail INIT
//! (requests then answer 503 or 502 until it is fixed); the catalog is read on the first request instead.
//!
//! Contact sync: one statement per upstream page, `(updated_at, sort key) > ($1, $2) AND updated_at <= $3
//! ORDER BY updated_at, sort key LIMIT $4`, strictly ascending in the engine's order (see [`sql`]); a page
//! with fewer rows than asked for is the last. Lookups (scheduled by `crate::lookup`): the external id names
//! a contact id as is; a search is one statement, people whose `emails` contain the (lowercase) address or
//! whose `phones` contain the E.164 number, exactly, so every candidate is complete and shows the identifier;
//! a fetch is one statement for the person's interactions of the asked types, newest first (plus one to tell
//! a person without interactions from no person at all).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::time::Instant;
use tokio_postgres::types::Type;

use super::{
    AgentPage, Candidate, Connector, ConnectorError, ContactBatch, ContactQuery, ContactRecord, Identifier, LookupCosts, Order, PersonRef,
};
use crate::config::{Config, ConfigError};
use crate::secrets::Secret;
use crate::sync::Position;
use crate::talkdesk::registration::Integration;
use crate::talkdesk::{Agent, Auth, Interaction};

pub mod client;
pub mod iam;
pub mod mapping;
pub mod settings;
pub mod sql;
pub mod tls;

use client::{Database, DbFailure, Endpoint, SignIn, SYSTEM};
pub use settings::{PostgresConfig, RelationName, SslMode};
use sql::{CatalogColumn, CatalogRelation, ContractError, Lower, Statements};

/// The deployment secret holding the database password: SSM `postgres/password` under the prefix.
pub const PASSWORD: &str = "password";
/// The most people one identifier (one lookup by emails, one by phones) may match.
pub const MAX_PEOPLE: i64 = 100;

/// What the catalog said about the two relations.
struct Schema {
    statements: Statements,
}

/// Why the catalog check failed.
enum Discovery {
    Contract { variable: &'static str, error: ContractError },
    Db(DbFailure),
}

impl From<DbFailure> for Discovery {
    fn from(f: DbFailure) -> Self {
        Discovery::Db(f)
    }
}

/// PostgreSQL in Talkdesk's configuration document: the database is the deployment's own, so Talkdesk
/// holds no credentials for it.
pub fn integration(config: &Config) -> Integration {
    Integration {
        name: "talkdesk-bridge-postgres".into(),
        display_name: "Customer database".into(),
        description: "Contacts, agents and interactions from the company's own PostgreSQL database, read by the Talkdesk bridge.".into(),
        auth_fields: vec![],
        interaction_types: config.postgres.interaction_types.clone(),
    }
}

/// The PostgreSQL connector.
pub struct Postgres {
    settings: PostgresConfig,
    db: Database,
    schema: RwLock<Option<Arc<Schema>>>,
    types: &'static [&'static str],
    unknown: mapping::UnknownValues,
    account: String,
}

fn micros_to_instant(us: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us)
}

/// PostgreSQL's earliest timestamptz (4714-11-24 00:00:00 BC), in microseconds since the Unix epoch.
const PG_MIN_MICROS: i64 = -210_866_803_200_000_000;

impl Postgres {
    /// Builds the connector (once per container): checks the settings and sets up TLS; connects later.
    pub fn new(settings: PostgresConfig) -> Result<Self, ConfigError> {
        let host = settings.host.clone().ok_or(ConfigError::Missing {
            name: "POSTGRES_HOST",
            why: "the postgres connector needs the database's host (POSTGRES_HOST or POSTGRES_URL)",
        })?;
        let user = settings.user.clone().ok_or(ConfigError::Missing {
            name: "POSTGRES_USER",
            why: "the postgres connector needs the database user (POSTGRES_USER or POSTGRES_URL)",
        })?;
        let dbname = settings.dbname.clone().unwrap_or_else(|| user.clone());
        if settings.iam_auth && settings.ssl_mode == SslMode::Disable {
            return Err(ConfigError::Invalid {
                name: "POSTGRES_SSLMODE",
                problem: "IAM authentication sends a token as the password and needs TLS: use require or verify-full".into(),
            });
        }
        let tls_config = tls::client_config(settings.ssl_mode, settings.ssl_root_cert.as_deref()).map_err(|e| ConfigError::Invalid {
            name: if settings.ssl_root_cert.is_some() {
                "POSTGRES_SSLROOTCERT"
            } else {
                "POSTGRES_SSLMODE"
            },
            problem: e.to_string(),
        })?;
        let sign_in = if settings.iam_auth {
            SignIn::Iam(Box::default())
        } else {
            SignIn::Password
        };
        let endpoint = Endpoint {
            host,
            port: settings.port,
            user,
            dbname: dbname.clone(),
            ssl_mode: settings.ssl_mode,
            connect_timeout: settings.connect_timeout,
        };
        // Leaked once per container: the trait hands out `&'static str` type names.
        let types: Vec<&'static str> = settings
            .interaction_types
            .iter()
            .map(|t| &*Box::leak(t.clone().into_boxed_str()))
            .collect();
        Ok(Postgres {
            db: Database::new(endpoint, tls_config.map(tls::RustlsTls::new), sign_in),
            schema: RwLock::new(None),
            types: Box::leak(types.into_boxed_slice()),
            unknown: mapping::UnknownValues::default(),
            account: format!("postgres:{dbname}"),
            settings,
        })
    }

    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        Postgres::new(config.postgres.clone())
    }

    /// Connections opened so far (tests use it to see a restart being handled).
    pub fn connections_opened(&self) -> u64 {
        self.db.connections_opened()
    }

    /// The password: SSM's (filled into `auth` by the deployment's secrets), else the URL's.
    fn password<'a>(&'a self, auth: &'a Auth) -> Option<&'a Secret> {
        auth.get(PASSWORD).or(self.settings.password.as_ref())
    }

    /// The deadline of a statement started now: the statement timeout, shortened to `budget`.
    fn deadline(&self, budget: Option<Duration>) -> Instant {
        let limit = budget.map_or(self.settings.statement_timeout, |b| b.min(self.settings.statement_timeout));
        Instant::now() + limit
    }

    fn fail(&self, failure: DbFailure) -> ConnectorError {
        if matches!(failure, DbFailure::Schema { .. }) {
            *self.schema.write().unwrap_or_else(|p| p.into_inner()) = None;
        }
        let error = failure.to_connector_error(&self.db.endpoint().user);
        tracing::warn!(system = SYSTEM, failure = ?failure, "database request failed");
        error
    }

    /// Finds a relation and its columns in the catalog.
    async fn catalog(
        &self,
        password: Option<&Secret>,
        deadline: Instant,
        name: &RelationName,
    ) -> Result<Option<CatalogRelation>, DbFailure> {
        let (schema, relname) = (name.schema.clone(), name.name.clone());
        let found = self
            .db
            .run(password, deadline, |c| {
                let (schema, relname) = (schema.clone(), relname.clone());
                async move {
                    c.query_typed(sql::FIND_RELATION, &[(&schema, Type::TEXT), (&relname, Type::TEXT)])
                        .await
                }
            })
            .await?;
        let Some(row) = found.first() else {
            return Ok(None);
        };
        let oid: u32 = row.try_get(0).map_err(|e| DbFailure::classify(&e))?;
        let columns = self
            .db
            .run(password, deadline, |c| async move {
                c.query_typed(sql::RELATION_COLUMNS, &[(&oid, Type::OID)]).await
            })
            .await?;
        let columns = columns
            .iter()
            .map(|r| {
                Ok(CatalogColumn {
                    name: r.try_get(0)?,
                    type_name: r.try_get(1)?,
                    category: r.try_get(2)?,
                    element_category: r.try_get(3)?,
                })
            })
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()
            .map_err(|e| DbFailure::classify(&e))?;
        Ok(Some(CatalogRelation {
            schema: row.try_get(1).map_err(|e| DbFailure::classify(&e))?,
            name: row.try_get(2).map_err(|e| DbFailure::classify(&e))?,
            can_select: row.try_get(3).map_err(|e| DbFailure::classify(&e))?,
            columns,
        }))
    }

    /// Reads both relations from the catalog and builds the statements.
    async fn discover(&self, password: Option<&Secret>, deadline: Instant) -> Result<Arc<Schema>, Discovery> {
        let mut found = Vec::new();
        for (variable, name) in [
            ("POSTGRES_CONTACTS_RELATION", &self.settings.contacts_relation),
            ("POSTGRES_INTERACTIONS_RELATION", &self.settings.interactions_relation),
        ] {
            let relation = self.catalog(password, deadline, name).await?.ok_or(Discovery::Contract {
                variable,
                error: ContractError::Missing {
                    relation: name.to_string(),
                },
            })?;
            if !relation.can_select {
                return Err(Discovery::Contract {
                    variable,
                    error: ContractError::NotReadable {
                        relation: relation.quoted(),
                    },
                });
            }
            found.push((variable, relation));
        }
        let (contacts, interactions) = (&found[0].1, &found[1].1);
        let statements = sql::statements(contacts, interactions).map_err(|error| Discovery::Contract {
            variable: match &error {
                ContractError::MissingColumn { relation, .. } | ContractError::WrongType { relation, .. }
                    if *relation == interactions.quoted() =>
                {
                    "POSTGRES_INTERACTIONS_RELATION"
                }
                _ => "POSTGRES_CONTACTS_RELATION",
            },
            error,
        })?;
        let encoding: Option<String> = self
            .db
            .run(
                password,
                deadline,
                |c| async move { c.query_typed(sql::SERVER_ENCODING, &[]).await },
            )
            .await?
            .first()
            .and_then(|r| r.try_get(0).ok());
        if !matches!(encoding.as_deref(), Some("UTF8" | "SQL_ASCII")) {
            tracing::warn!(system = SYSTEM, encoding = ?encoding, "the database is not UTF8: ids beyond ASCII may sort differently from the bridge's order");
        }
        tracing::info!(
            system = SYSTEM,
            contacts = %contacts.quoted(),
            interactions = %interactions.quoted(),
            email_lookup = statements.people_by_emails.is_some(),
            phone_lookup = statements.people_by_phones.is_some(),
            "database relations checked"
        );
        Ok(Arc::new(Schema { statements }))
    }

    /// The checked schema, reading the catalog if it has not been read (or was invalidated).
    async fn schema(&self, password: Option<&Secret>, deadline: Instant) -> Result<Arc<Schema>, ConnectorError> {
        if let Some(s) = self.schema.read().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(s);
        }
        match self.discover(password, deadline).await {
            Ok(s) => {
                *self.schema.write().unwrap_or_else(|p| p.into_inner()) = Some(s.clone());
                Ok(s)
            }
            Err(Discovery::Contract { variable, error }) => {
                tracing::error!(system = SYSTEM, variable, error = %error, "the database does not fit the contract");
                Err(ConnectorError::BadGateway {
                    message: format!("{variable}: {error}"),
                })
            }
            Err(Discovery::Db(f)) => Err(self.fail(f)),
        }
    }

    /// Up to `limit` contacts after `after`, updated no later than `until`, strictly ascending by
    /// `(updated_at, id)` in the engine's order.
    pub async fn contacts_page(
        &self,
        password: Option<&Secret>,
        deadline: Instant,
        after: Option<&Position>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<ContactRecord>, ConnectorError> {
        let schema = self.schema(password, deadline).await?;
        let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        // A bound before PostgreSQL's earliest instant bounds nothing; one past chrono's last bounds everything.
        let after = after.filter(|p| p.ts >= PG_MIN_MICROS);
        let after_instant = match after {
            Some(p) => match micros_to_instant(p.ts) {
                Some(t) => Some(t),
                None => return Ok(vec![]),
            },
            None => None,
        };
        if crate::sync::position::micros(until) < PG_MIN_MICROS {
            return Ok(vec![]);
        }
        let key = after.and_then(|p| p.id.as_deref()).map(sql::sort_key);
        let lower = match (&after_instant, &key) {
            (None, _) => Lower::None,
            (Some(_), None) => Lower::Instant,
            (Some(_), Some(_)) => Lower::Keyset,
        };
        let statement = schema.statements.contacts(lower).to_string();
        let rows = self
            .db
            .run(password, deadline, |c| {
                let (statement, key) = (statement.clone(), key.clone());
                async move {
                    match (after_instant, key) {
                        (None, _) => {
                            c.query_typed(&statement, &[(&until, Type::TIMESTAMPTZ), (&limit, Type::INT8)])
                                .await
                        }
                        (Some(t), None) => {
                            c.query_typed(
                                &statement,
                                &[(&t, Type::TIMESTAMPTZ), (&until, Type::TIMESTAMPTZ), (&limit, Type::INT8)],
                            )
                            .await
                        }
                        (Some(t), Some(k)) => {
                            c.query_typed(
                                &statement,
                                &[
                                    (&t, Type::TIMESTAMPTZ),
                                    (&k, Type::TEXT),
                                    (&until, Type::TIMESTAMPTZ),
                                    (&limit, Type::INT8),
                                ],
                            )
                            .await
                        }
                    }
                }
            })
            .await
            .map_err(|f| self.fail(f))?;
        rows.iter()
            .map(|r| {
                Ok(mapping::contact(mapping::ContactRow {
                    id: r.try_get(0)?,
                    updated_at: r.try_get(1)?,
                    name: r.try_get(2)?,
                    company: r.try_get(3)?,
                    title: r.try_get(4)?,
                    emails: r.try_get(5)?,
                    phones: r.try_get(6)?,
                    photo_url: r.try_get(7)?,
                    address: r.try_get(8)?,
                    websites: r.try_get(9)?,
                    twitter: r.try_get(10)?,
                    url: r.try_get(11)?,
                }))
            })
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()
            .map_err(|e| self.fail(DbFailure::classify(&e)))
    }

    /// Whether a contact with this id exists.
    pub async fn person_exists(&self, password: Option<&Secret>, deadline: Instant, id: &str) -> Result<bool, ConnectorError> {
        let schema = self.schema(password, deadline).await?;
        let sql = schema.statements.person_by_id.clone();
        let id = id.to_string();
        let rows = self
            .db
            .run(password, deadline, |c| {
                let (sql, id) = (sql.clone(), id.clone());
                async move { c.query_typed(&sql, &[(&id, Type::TEXT)]).await }
            })
            .await
            .map_err(|f| self.fail(f))?;
        Ok(!rows.is_empty())
    }

    /// Ids of contacts whose `emails` contain one of `emails` (lowercase), at most [`MAX_PEOPLE`].
    pub async fn people_by_emails(
        &self,
        password: Option<&Secret>,
        deadline: Instant,
        emails: &[String],
    ) -> Result<Vec<String>, ConnectorError> {
        let schema = self.schema(password, deadline).await?;
        self.people(password, deadline, schema.statements.people_by_emails.clone(), emails)
            .await
    }

    /// Ids of contacts whose `phones` contain one of `phones` (E.164), at most [`MAX_PEOPLE`].
    pub async fn people_by_phones(
        &self,
        password: Option<&Secret>,
        deadline: Instant,
        phones: &[String],
    ) -> Result<Vec<String>, ConnectorError> {
        let schema = self.schema(password, deadline).await?;
        self.people(password, deadline, schema.statements.people_by_phones.clone(), phones)
            .await
    }

    async fn people(
        &self,
        password: Option<&Secret>,
        deadline: Instant,
        sql: Option<String>,
        values: &[String],
    ) -> Result<Vec<String>, ConnectorError> {
        let Some(sql) = sql else {
            return Ok(vec![]);
        };
        let values: Vec<String> = values.iter().filter(|v| bindable(v)).cloned().collect();
        if values.is_empty() {
            return Ok(vec![]);
        }
        let rows = self
            .db
            .run(password, deadline, |c| {
                let (sql, values) = (sql.clone(), values.clone());
                async move { c.query_typed(&sql, &[(&values, Type::TEXT_ARRAY), (&MAX_PEOPLE, Type::INT8)]).await }
            })
            .await
            .map_err(|f| self.fail(f))?;
        if rows.len() as i64 >= MAX_PEOPLE {
            tracing::warn!(
                system = SYSTEM,
                limit = MAX_PEOPLE,
                "a lookup matched the most people it may; the rest are not shown"
            );
        }
        rows.iter()
            .map(|r| r.try_get(0))
            .collect::<Result<Vec<String>, _>>()
            .map_err(|e| self.fail(DbFailure::classify(&e)))
    }

    /// The emails and phones a contact's row holds; `None` when no contact has this id.
    pub async fn identifiers(
        &self,
        password: Option<&Secret>,
        deadline: Instant,
        id: &str,
    ) -> Result<Option<(Vec<String>, Vec<String>)>, ConnectorError> {
        let schema = self.schema(password, deadline).await?;
        if !bindable(id) {
            return Ok(None);
        }
        let sql = schema.statements.identifiers_of.clone();
        let id = id.to_string();
        let rows = self
            .db
            .run(password, deadline, |c| {
                let (sql, id) = (sql.clone(), id.clone());
                async move { c.query_typed(&sql, &[(&id, Type::TEXT)]).await }
            })
            .await
            .map_err(|f| self.fail(f))?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let list = |i: usize| -> Result<Vec<String>, tokio_postgres::Error> {
            let values: Option<Vec<Option<String>>> = row.try_get(i)?;
            Ok(values.unwrap_or_default().into_iter().flatten().collect())
        };
        let (emails, phones) = (list(0), list(1));
        Ok(Some((
            emails.map_err(|e| self.fail(DbFailure::classify(&e)))?,
            phones.map_err(|e| self.fail(DbFailure::classify(&e)))?,
        )))
    }

    /// Up to `limit` interactions of the given contacts and types (lowercase), newest first.
    pub async fn interactions_of_people(
        &self,
        password: Option<&Secret>,
        deadline: Instant,
        contact_ids: &[String],
        types: &[String],
        limit: usize,
    ) -> Result<Vec<Interaction>, ConnectorError> {
        let schema = self.schema(password, deadline).await?;
        let ids: Vec<String> = contact_ids.iter().filter(|v| bindable(v)).cloned().collect();
        let types: Vec<String> = types.iter().map(|t| t.to_ascii_lowercase()).filter(|t| bindable(t)).collect();
        if ids.is_empty() || types.is_empty() {
            return Ok(vec![]);
        }
        let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        let sql = schema.statements.interactions_of.clone();
        let rows = self
            .db
            .run(password, deadline, |c| {
                let (sql, ids, types) = (sql.clone(), ids.clone(), types.clone());
                async move {
                    c.query_typed(&sql, &[(&ids, Type::TEXT_ARRAY), (&types, Type::TEXT_ARRAY), (&limit, Type::INT8)])
                        .await
                }
            })
            .await
            .map_err(|f| self.fail(f))?;
        rows.iter()
            .map(|r| {
                Ok(mapping::interaction(
                    mapping::InteractionRow {
                        id: r.try_get(0)?,
                        contact_id: r.try_get(1)?,
                        kind: r.try_get(2)?,
                        date: r.try_get(3)?,
                        subject: r.try_get(4)?,
                        description: r.try_get(5)?,
                        url: r.try_get(6)?,
                        priority: r.try_get(7)?,
                        status: r.try_get(8)?,
                    },
                    &self.unknown,
                ))
            })
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()
            .map_err(|e| self.fail(DbFailure::classify(&e)))
    }
}

impl Postgres {
    /// The agents relation's select list, or why there is none to read.
    async fn agents_relation(&self, password: Option<&Secret>, deadline: Instant) -> Result<(String, String), ConnectorError> {
        let name = &self.settings.agents_relation;
        let relation = match self.catalog(password, deadline, name).await {
            Ok(Some(r)) => r,
            Ok(None) => {
                return Err(ConnectorError::Unsupported {
                    message: format!(
                        "agent synchronization reads the relation {name} (POSTGRES_AGENTS_RELATION), which does not exist \
                         or is not visible to the database user: create it with columns id, name and email"
                    ),
                })
            }
            Err(f) => return Err(self.fail(f)),
        };
        if !relation.can_select {
            return Err(ConnectorError::BadGateway {
                message: format!(
                    "POSTGRES_AGENTS_RELATION: {}",
                    ContractError::NotReadable {
                        relation: relation.quoted()
                    }
                ),
            });
        }
        let (select, _) = sql::select_list(&relation, sql::AGENT_FIELDS).map_err(|e| ConnectorError::BadGateway {
            message: format!("POSTGRES_AGENTS_RELATION: {e}"),
        })?;
        Ok((relation.quoted(), select))
    }
}

/// Text PostgreSQL can hold: no NUL character (a value with one can match nothing).
fn bindable(value: &str) -> bool {
    !value.contains('\0')
}

#[async_trait]
impl Connector for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn interaction_types(&self) -> &[&'static str] {
        self.types
    }

    fn max_page_size(&self) -> usize {
        self.settings.page_size
    }

    /// The keyset `(sort_key(updated_at), id) > position ORDER BY` both cannot place a record after one that
    /// follows it, so checkpoints stay exact inside a tie.
    fn order(&self) -> Order {
        Order::Keyset
    }

    fn indexing_lag(&self) -> Duration {
        self.settings.lag
    }

    fn deployment_secrets(&self) -> &'static [&'static str] {
        &[PASSWORD]
    }

    /// The database is the deployment's own: `auth` carries nothing of Talkdesk's to check.
    fn account(&self, _auth: &Auth) -> Result<String, ConnectorError> {
        Ok(self.account.clone())
    }

    async fn prepare(&self, stored: &Auth) -> Result<(), ConfigError> {
        if let SignIn::Iam(signer) = self.db.sign_in() {
            if signer.region().await.is_none() {
                return Err(ConfigError::Invalid {
                    name: "POSTGRES_IAM_AUTH",
                    problem: "IAM authentication signs a token for the database's region, and no AWS region is configured (AWS_REGION)"
                        .into(),
                });
            }
        }
        let deadline = Instant::now() + self.settings.connect_timeout + self.settings.statement_timeout;
        match self.discover(self.password(stored), deadline).await {
            Ok(schema) => {
                *self.schema.write().unwrap_or_else(|p| p.into_inner()) = Some(schema);
                Ok(())
            }
            Err(Discovery::Contract { variable, error }) => Err(ConfigError::Invalid {
                name: variable,
                problem: error.to_string(),
            }),
            Err(Discovery::Db(failure)) => {
                // Not INIT's business: requests answer 503 (unreachable) or 502 (credentials) until fixed.
                tracing::warn!(system = SYSTEM, failure = ?failure, "the database could not be checked at start-up; the first request will");
                Ok(())
            }
        }
    }

    async fn contacts(&self, auth: &Auth, query: &ContactQuery<'_>) -> Result<ContactBatch, ConnectorError> {
        let deadline = self.deadline(query.budget.remaining());
        let limit = query.limit.clamp(1, self.settings.page_size);
        let records = self
            .contacts_page(self.password(auth), deadline, query.after, query.until, limit)
            .await?;
        Ok(ContactBatch {
            done: records.len() < limit,
            records,
            next_cursor: None,
            quota: None,
        })
    }

    /// A contact id is any text: the external id is used as is (one without a NUL can be bound).
    fn person_by_external_id(&self, external_id: &str) -> Option<PersonRef> {
        (!external_id.is_empty() && bindable(external_id)).then(|| PersonRef(external_id.to_string()))
    }

    /// Statements, not HTTP requests: a search and an identifier read are one each; a fetch is one, plus one
    /// when it finds nothing (does the person exist?). Each call runs them one after another on one
    /// connection.
    fn lookup_costs(&self, _limit: usize) -> LookupCosts {
        LookupCosts {
            search: 1,
            identifiers: 1,
            fetch: 2,
            fetch_in_flight: 1,
        }
    }

    /// The SQL matches exactly (`emails`/`phones` arrays overlap the one value), so each candidate shows the
    /// identifier and is complete.
    async fn find_people(
        &self,
        auth: &Auth,
        identifier: &Identifier,
        budget: &dyn crate::sync::Budget,
    ) -> Result<Vec<Candidate>, ConnectorError> {
        let (password, deadline) = (self.password(auth), self.deadline(budget.remaining()));
        let value = vec![identifier.value().to_string()];
        let ids = match identifier {
            Identifier::Email(_) => self.people_by_emails(password, deadline, &value).await?,
            Identifier::Phone(_) => self.people_by_phones(password, deadline, &value).await?,
        };
        Ok(ids
            .into_iter()
            .map(|id| {
                let (emails, phones) = match identifier {
                    Identifier::Email(e) => (vec![e.clone()], vec![]),
                    Identifier::Phone(p) => (vec![], vec![p.clone()]),
                };
                Candidate {
                    person: PersonRef(id),
                    emails,
                    phones,
                    complete: true,
                }
            })
            .collect())
    }

    async fn identifiers_of(&self, auth: &Auth, person: &PersonRef, budget: &dyn crate::sync::Budget) -> Result<Candidate, ConnectorError> {
        let (password, deadline) = (self.password(auth), self.deadline(budget.remaining()));
        let (emails, phones) = self.identifiers(password, deadline, &person.0).await?.unwrap_or_default();
        Ok(Candidate {
            person: person.clone(),
            emails,
            phones,
            complete: true,
        })
    }

    async fn interactions_of(
        &self,
        auth: &Auth,
        person: &PersonRef,
        types: &[String],
        limit: usize,
        budget: &dyn crate::sync::Budget,
    ) -> Result<Option<Vec<Interaction>>, ConnectorError> {
        let (password, deadline) = (self.password(auth), self.deadline(budget.remaining()));
        let found = self
            .interactions_of_people(password, deadline, std::slice::from_ref(&person.0), types, limit)
            .await?;
        if found.is_empty() && !self.person_exists(password, deadline, &person.0).await? {
            return Ok(None);
        }
        Ok(Some(found))
    }

    /// Reads the catalog afresh (connecting if need be): both relations exist, are readable by the
    /// database user and fit the contract. A database that refuses the deployment's credentials, or
    /// relations that do not fit, mean the integration cannot work (401 at activation); an unreachable
    /// database is an outage (503).
    async fn validate(&self, auth: &Auth, budget: &dyn crate::sync::Budget) -> Result<(), ConnectorError> {
        let password = self.password(auth);
        let deadline = Instant::now()
            + budget
                .remaining()
                .map_or(self.settings.statement_timeout, |b| b.min(self.settings.statement_timeout));
        match self.discover(password, deadline).await {
            Ok(schema) => {
                *self.schema.write().unwrap_or_else(|p| p.into_inner()) = Some(schema);
                Ok(())
            }
            Err(Discovery::Contract { variable, error }) => Err(ConnectorError::Forbidden {
                message: format!("{variable}: {error}"),
            }),
            Err(Discovery::Db(f @ (DbFailure::AuthRefused { .. } | DbFailure::Privilege | DbFailure::NoDatabase))) => {
                Err(ConnectorError::Forbidden {
                    message: self.fail(f).to_string(),
                })
            }
            Err(Discovery::Db(f)) => Err(self.fail(f)),
        }
    }

    /// `POSTGRES_AGENTS_RELATION` (default `talkdesk_agents`, optional): rows `id`, `name`, `email` in id
    /// byte order, `POSTGRES_PAGE_SIZE` a statement; the cursor is the last id. Rows without an email are
    /// skipped (counted in the log); a blank name shows the email.
    async fn agents(&self, auth: &Auth, cursor: Option<&str>, budget: &dyn crate::sync::Budget) -> Result<AgentPage, ConnectorError> {
        let (password, deadline) = (self.password(auth), self.deadline(budget.remaining()));
        let (relation, select) = self.agents_relation(password, deadline).await?;
        let limit = i64::try_from(self.settings.page_size).unwrap_or(i64::MAX);
        let after = cursor.map(str::to_string);
        let statement = match &after {
            None => sql::agents_first_page_sql(&relation, &select),
            Some(_) => sql::agents_after_sql(&relation, &select),
        };
        let rows = self
            .db
            .run(password, deadline, |c| {
                let (statement, after) = (statement.clone(), after.clone());
                async move {
                    match after {
                        None => c.query_typed(&statement, &[(&limit, Type::INT8)]).await,
                        Some(a) => c.query_typed(&statement, &[(&a, Type::TEXT), (&limit, Type::INT8)]).await,
                    }
                }
            })
            .await
            .map_err(|f| self.fail(f))?;
        let mut agents = Vec::with_capacity(rows.len());
        let mut last_id: Option<String> = None;
        let mut without_email = 0usize;
        for row in &rows {
            let read =
                |i: usize| -> Result<Option<String>, ConnectorError> { row.try_get(i).map_err(|e| self.fail(DbFailure::classify(&e))) };
            let (id, name, email) = (read(0)?, read(1)?, read(2)?);
            let Some(id) = id else { continue };
            last_id = Some(id.clone());
            let email = email.map(|e| e.trim().to_string()).filter(|e| !e.is_empty());
            let Some(email) = email else {
                without_email += 1;
                continue;
            };
            let name = name
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| email.clone());
            agents.push(Agent { id, name, email });
        }
        if without_email > 0 {
            tracing::info!(system = SYSTEM, count = without_email, "agents without an email are not synced");
        }
        let full = rows.len() as i64 >= limit;
        Ok(AgentPage {
            agents,
            next_cursor: if full { last_id } else { None },
        })
    }
}
