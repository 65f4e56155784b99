//! The PostgreSQL connector's deployment settings, read once at cold start from the environment (never
//! from a request):
//!
//! | Variable | Default | Meaning |
//! |---|---|---|
//! | `POSTGRES_URL` | unset | `postgres://user[:password]@host[:port]/dbname`, instead of the four variables below |
//! | `POSTGRES_HOST`, `POSTGRES_PORT`, `POSTGRES_USER`, `POSTGRES_DBNAME` | port `5432`, dbname = user | Where to connect |
//! | `POSTGRES_SSLMODE` | `verify-full` | `disable`, `require` (encrypted, certificate not checked) or `verify-full` |
//! | `POSTGRES_SSLROOTCERT` | unset | PEM file of CA certificates trusted besides the system's (e.g. the RDS bundle) |
//! | `POSTGRES_IAM_AUTH` | `false` | Sign in with an RDS IAM authentication token instead of a password |
//! | `POSTGRES_CONTACTS_RELATION` | `talkdesk_contacts` | Table or view of contacts, `name` or `schema.name` |
//! | `POSTGRES_INTERACTIONS_RELATION` | `talkdesk_interactions` | Table or view of interactions |
//! | `POSTGRES_INTERACTION_TYPES` | `ticket,call,email,chat` | The interaction types the relation holds |
//! | `POSTGRES_LAG_SECS` | `5` | How long a row's `updated_at` may precede its commit |
//! | `POSTGRES_PAGE_SIZE` | `1000` | Most rows one statement returns |
//! | `POSTGRES_CONNECT_TIMEOUT_MS` | `3000` | Connect + TLS + sign-in timeout |
//! | `POSTGRES_STATEMENT_TIMEOUT_MS` | `10000` | Most time one statement may take (shortened to the page's budget) |
//!
//! The password never comes from a variable other than `POSTGRES_URL`, which is meant for local runs:
//! deployments keep it in SSM (`postgres/password` under `BRIDGE_SSM_PREFIX`).

use std::path::PathBuf;
use std::time::Duration;

use crate::config::ConfigError;
use crate::secrets::Secret;

/// How the connection is encrypted, as libpq's `sslmode` of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS (a database on the same host or a test server).
    Disable,
    /// TLS, but the server's certificate is not checked: protects against eavesdropping only.
    Require,
    /// TLS with the certificate checked against the trusted roots and the host name.
    VerifyFull,
}

impl SslMode {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "disable" => Some(SslMode::Disable),
            "require" => Some(SslMode::Require),
            "" | "verify-full" => Some(SslMode::VerifyFull),
            _ => None,
        }
    }
}

/// A table or view name as configured: an optional schema and a name, each a PostgreSQL identifier.
/// Unquoted identifiers fold to lowercase as PostgreSQL folds them; `"Quoted"` ones are kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationName {
    pub schema: Option<String>,
    pub name: String,
}

impl RelationName {
    /// Parses `name`, `schema.name`, `"Name"` or `"Schema"."Name"`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let mut parts = Vec::new();
        let mut rest = text;
        loop {
            let (ident, after) = identifier(rest).ok_or_else(|| {
                format!(
                    "`{text}` is not a relation name: expected `name` or `schema.name`, each made of letters, digits, \
                     `_` or `$` (not starting with a digit), or double-quoted"
                )
            })?;
            parts.push(ident);
            match after.strip_prefix('.') {
                Some(more) => rest = more,
                None if after.is_empty() => break,
                None => return Err(format!("`{text}` has unexpected text after a name: `{after}`")),
            }
        }
        match parts.len() {
            1 => Ok(RelationName {
                schema: None,
                name: parts.remove(0),
            }),
            2 => {
                let name = parts.remove(1);
                Ok(RelationName {
                    schema: Some(parts.remove(0)),
                    name,
                })
            }
            _ => Err(format!("`{text}` has more than a schema and a name")),
        }
    }

    /// The name as PostgreSQL parses it (each part double-quoted), for `to_regclass`.
    pub fn quoted(&self) -> String {
        match &self.schema {
            Some(schema) => format!("{}.{}", quote_ident(schema), quote_ident(&self.name)),
            None => quote_ident(&self.name),
        }
    }
}

impl std::fmt::Display for RelationName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.quoted())
    }
}

/// The longest identifier PostgreSQL keeps (NAMEDATALEN - 1 bytes).
const MAX_IDENTIFIER_BYTES: usize = 63;

/// One identifier at the start of `text` and what follows it.
fn identifier(text: &str) -> Option<(String, &str)> {
    if let Some(quoted) = text.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if quoted[i + 1..].starts_with('"') {
                    out.push('"');
                    chars.next();
                } else {
                    let ok = !out.is_empty() && out.len() <= MAX_IDENTIFIER_BYTES && !out.contains('\0');
                    return ok.then(|| (out, &quoted[i + 1..]));
                }
            } else {
                out.push(c);
            }
        }
        return None;
    }
    let end = text
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '$'))
        .map_or(text.len(), |(i, _)| i);
    let ident = &text[..end];
    let first_ok = ident.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    (first_ok && ident.len() <= MAX_IDENTIFIER_BYTES).then(|| (ident.to_ascii_lowercase(), &text[end..]))
}

/// Double-quotes an identifier, doubling the quotes inside it (PostgreSQL's `quote_ident`, always quoting).
pub fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Settings of the PostgreSQL connector. `Debug` shows no password.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// `POSTGRES_HOST` (or the URL's host): a host name, an IP address, or a Unix socket directory.
    pub host: Option<String>,
    /// `POSTGRES_PORT` (or the URL's port).
    pub port: u16,
    /// `POSTGRES_USER` (or the URL's user).
    pub user: Option<String>,
    /// `POSTGRES_DBNAME` (or the URL's path); the user's name when unset.
    pub dbname: Option<String>,
    /// The URL's password, for local runs. SSM `postgres/password` wins over it.
    pub password: Option<Secret>,
    /// `POSTGRES_SSLMODE`.
    pub ssl_mode: SslMode,
    /// `POSTGRES_SSLROOTCERT`.
    pub ssl_root_cert: Option<PathBuf>,
    /// `POSTGRES_IAM_AUTH`.
    pub iam_auth: bool,
    /// `POSTGRES_CONTACTS_RELATION`.
    pub contacts_relation: RelationName,
    /// `POSTGRES_INTERACTIONS_RELATION`.
    pub interactions_relation: RelationName,
    /// `POSTGRES_AGENTS_RELATION`: the optional relation `POST /agents` reads.
    pub agents_relation: RelationName,
    /// `POSTGRES_INTERACTION_TYPES`, lowercase.
    pub interaction_types: Vec<String>,
    /// `POSTGRES_LAG_SECS`.
    pub lag: Duration,
    /// `POSTGRES_PAGE_SIZE`.
    pub page_size: usize,
    /// `POSTGRES_CONNECT_TIMEOUT_MS`.
    pub connect_timeout: Duration,
    /// `POSTGRES_STATEMENT_TIMEOUT_MS`.
    pub statement_timeout: Duration,
}

pub const DEFAULT_PORT: u16 = 5432;
pub const DEFAULT_CONTACTS_RELATION: &str = "talkdesk_contacts";
pub const DEFAULT_INTERACTIONS_RELATION: &str = "talkdesk_interactions";
pub const DEFAULT_AGENTS_RELATION: &str = "talkdesk_agents";
pub const DEFAULT_INTERACTION_TYPES: &[&str] = &["ticket", "call", "email", "chat"];

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig {
            host: None,
            port: DEFAULT_PORT,
            user: None,
            dbname: None,
            password: None,
            ssl_mode: SslMode::VerifyFull,
            ssl_root_cert: None,
            iam_auth: false,
            contacts_relation: RelationName {
                schema: None,
                name: DEFAULT_CONTACTS_RELATION.into(),
            },
            interactions_relation: RelationName {
                schema: None,
                name: DEFAULT_INTERACTIONS_RELATION.into(),
            },
            agents_relation: RelationName {
                schema: None,
                name: DEFAULT_AGENTS_RELATION.into(),
            },
            interaction_types: DEFAULT_INTERACTION_TYPES.iter().map(|s| s.to_string()).collect(),
            lag: Duration::from_secs(5),
            page_size: 1000,
            connect_timeout: Duration::from_millis(3_000),
            statement_timeout: Duration::from_millis(10_000),
        }
    }
}

/// What `POSTGRES_URL` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UrlParts {
    host: String,
    port: Option<u16>,
    user: Option<String>,
    password: Option<String>,
    dbname: Option<String>,
}

/// Percent-decodes one part of a URL (user, password, database).
fn decode(part: &str) -> String {
    let input = part.as_bytes();
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if input[i] == b'%' && i + 2 < input.len() {
            if let (Some(h), Some(l)) = (hex(input[i + 1]), hex(input[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `postgres://user:password@host:port/dbname` (or `postgresql://`). Query parameters are refused:
/// TLS is `POSTGRES_SSLMODE`, and session options would be session state.
fn parse_url(text: &str) -> Result<UrlParts, String> {
    let url = reqwest::Url::parse(text.trim()).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err("must start with postgres:// or postgresql://".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not carry query parameters or a fragment: TLS is POSTGRES_SSLMODE, and other options are not supported".into());
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("has no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let path = url.path().trim_start_matches('/');
    if path.contains('/') {
        return Err("has a path beyond the database name".into());
    }
    Ok(UrlParts {
        host,
        port: url.port(),
        user: Some(decode(url.username())).filter(|u| !u.is_empty()),
        password: url.password().map(decode),
        dbname: Some(decode(path)).filter(|d| !d.is_empty()),
    })
}

fn millis(get: &dyn Fn(&str) -> Option<String>, name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
    match get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => match v.parse::<u64>() {
            Ok(ms) if ms >= 1 => Ok(Duration::from_millis(ms)),
            _ => Err(ConfigError::Invalid {
                name,
                problem: format!("expected a whole number of milliseconds of at least 1, got `{v}`"),
            }),
        },
    }
}

fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy>(
    get: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    match get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => match v.parse::<T>() {
            Ok(n) if n >= min && n <= max => Ok(n),
            _ => Err(ConfigError::Invalid {
                name,
                problem: format!("expected a whole number from {min} to {max}, got `{v}`"),
            }),
        },
    }
}

fn text(get: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

fn relation(get: &dyn Fn(&str) -> Option<String>, name: &'static str, default: &RelationName) -> Result<RelationName, ConfigError> {
    match text(get, name) {
        None => Ok(default.clone()),
        Some(v) => RelationName::parse(&v).map_err(|problem| ConfigError::Invalid { name, problem }),
    }
}

impl PostgresConfig {
    /// Reads the settings through `get` (the environment, or a map in tests). Values that are set are
    /// checked whatever the connector; what the connector needs (a host, a user) is checked when it is built.
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = PostgresConfig::default();
        let url = match get("POSTGRES_URL").filter(|v| !v.trim().is_empty()) {
            None => None,
            Some(v) => Some(parse_url(&v).map_err(|problem| ConfigError::Invalid {
                name: "POSTGRES_URL",
                problem: format!("{problem} (expected postgres://user@host:5432/dbname)"),
            })?),
        };
        let separate = ["POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_USER", "POSTGRES_DBNAME"];
        if let (Some(_), Some(both)) = (&url, separate.iter().find(|n| text(get, n).is_some())) {
            return Err(ConfigError::Invalid {
                name: "POSTGRES_URL",
                problem: format!("set either POSTGRES_URL or {both} and its companions, not both"),
            });
        }
        let ssl_mode = match text(get, "POSTGRES_SSLMODE") {
            None => d.ssl_mode,
            Some(v) => SslMode::parse(&v).ok_or_else(|| ConfigError::Invalid {
                name: "POSTGRES_SSLMODE",
                problem: format!("expected disable, require or verify-full, got `{v}`"),
            })?,
        };
        let iam_auth = match text(get, "POSTGRES_IAM_AUTH").map(|v| v.to_ascii_lowercase()) {
            None => false,
            Some(v) => match v.as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => {
                    return Err(ConfigError::Invalid {
                        name: "POSTGRES_IAM_AUTH",
                        problem: format!("expected true or false, got `{v}`"),
                    })
                }
            },
        };
        let interaction_types = match text(get, "POSTGRES_INTERACTION_TYPES") {
            None => d.interaction_types.clone(),
            Some(v) => {
                let mut types: Vec<String> = Vec::new();
                for t in v.split(',').map(|t| t.trim().to_ascii_lowercase()).filter(|t| !t.is_empty()) {
                    if t.len() > 64 || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
                        return Err(ConfigError::Invalid {
                            name: "POSTGRES_INTERACTION_TYPES",
                            problem: format!("`{t}` is not a type name (letters, digits, `_` or `-`, at most 64)"),
                        });
                    }
                    if !types.contains(&t) {
                        types.push(t);
                    }
                }
                if types.is_empty() {
                    return Err(ConfigError::Invalid {
                        name: "POSTGRES_INTERACTION_TYPES",
                        problem: "names no type".into(),
                    });
                }
                types
            }
        };
        let (host, port, user, dbname, password) = match url {
            Some(u) => (
                Some(u.host),
                u.port.unwrap_or(DEFAULT_PORT),
                u.user,
                u.dbname,
                u.password.map(Secret::new),
            ),
            None => (
                text(get, "POSTGRES_HOST"),
                number(get, "POSTGRES_PORT", DEFAULT_PORT, 1, u16::MAX)?,
                text(get, "POSTGRES_USER"),
                text(get, "POSTGRES_DBNAME"),
                None,
            ),
        };
        Ok(PostgresConfig {
            host,
            port,
            user,
            dbname,
            password,
            ssl_mode,
            ssl_root_cert: text(get, "POSTGRES_SSLROOTCERT").map(PathBuf::from),
            iam_auth,
            contacts_relation: relation(get, "POSTGRES_CONTACTS_RELATION", &d.contacts_relation)?,
            interactions_relation: relation(get, "POSTGRES_INTERACTIONS_RELATION", &d.interactions_relation)?,
            agents_relation: relation(get, "POSTGRES_AGENTS_RELATION", &d.agents_relation)?,
            interaction_types,
            lag: Duration::from_secs(number(get, "POSTGRES_LAG_SECS", 5u64, 0, 86_400)?),
            page_size: number(get, "POSTGRES_PAGE_SIZE", d.page_size, 1, 100_000)?,
            connect_timeout: millis(get, "POSTGRES_CONNECT_TIMEOUT_MS", d.connect_timeout)?,
            statement_timeout: millis(get, "POSTGRES_STATEMENT_TIMEOUT_MS", d.statement_timeout)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(pairs: &[(&str, &str)]) -> Result<PostgresConfig, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        PostgresConfig::from_lookup(&move |k| map.get(k).cloned())
    }

    #[test]
    fn postgres_defaults_verify_certificates_and_read_the_documented_relations() {
        let c = read(&[]).unwrap();
        assert_eq!(c.ssl_mode, SslMode::VerifyFull);
        assert_eq!(c.contacts_relation.quoted(), "\"talkdesk_contacts\"");
        assert_eq!(c.interactions_relation.quoted(), "\"talkdesk_interactions\"");
        assert_eq!((c.port, c.page_size, c.lag), (5432, 1000, Duration::from_secs(5)));
        assert_eq!(c.interaction_types, vec!["ticket", "call", "email", "chat"]);
        assert!(!c.iam_auth && c.host.is_none());
    }

    #[test]
    fn postgres_url_gives_host_port_user_database_and_a_hidden_password() {
        let c = read(&[("POSTGRES_URL", "postgres://bridge%40ro:s%3Acret@db.internal:6432/crm")]).unwrap();
        assert_eq!(c.host.as_deref(), Some("db.internal"));
        assert_eq!(c.port, 6432);
        assert_eq!(c.user.as_deref(), Some("bridge@ro"));
        assert_eq!(c.dbname.as_deref(), Some("crm"));
        assert_eq!(c.password.as_ref().map(Secret::expose), Some("s:cret"));
        assert!(!format!("{c:?}").contains("s:cret"), "Debug shows no password");
        let v6 = read(&[("POSTGRES_URL", "postgresql://u@[::1]/d")]).unwrap();
        assert_eq!((v6.host.as_deref(), v6.port), (Some("::1"), 5432));
    }

    #[test]
    fn relation_names_fold_like_postgres_and_keep_quoted_identifiers() {
        let r = RelationName::parse("CRM.Contacts").unwrap();
        assert_eq!((r.schema.as_deref(), r.name.as_str()), (Some("crm"), "contacts"));
        let r = RelationName::parse(r#""Sales Team"."Their ""best"" view""#).unwrap();
        assert_eq!(r.schema.as_deref(), Some("Sales Team"));
        assert_eq!(r.name, "Their \"best\" view");
        assert_eq!(r.quoted(), r#""Sales Team"."Their ""best"" view""#);
    }

    #[test]
    fn relation_names_that_would_inject_sql_are_refused() {
        for bad in [
            "contacts; DROP TABLE x",
            "contacts--",
            "a.b.c",
            "1contacts",
            "\"unterminated",
            "\"\"",
            "contacts)",
            "",
            "con tacts",
            "\"a\"x",
        ] {
            assert!(RelationName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn postgres_bad_settings_name_the_variable() {
        for (pairs, name) in [
            (vec![("POSTGRES_SSLMODE", "prefer")], "POSTGRES_SSLMODE"),
            (vec![("POSTGRES_IAM_AUTH", "maybe")], "POSTGRES_IAM_AUTH"),
            (vec![("POSTGRES_URL", "mysql://u@h/d")], "POSTGRES_URL"),
            (vec![("POSTGRES_URL", "postgres://u@h/d?sslmode=disable")], "POSTGRES_URL"),
            (vec![("POSTGRES_URL", "postgres://u@h/d"), ("POSTGRES_HOST", "h")], "POSTGRES_URL"),
            (vec![("POSTGRES_PORT", "70000")], "POSTGRES_PORT"),
            (vec![("POSTGRES_LAG_SECS", "-1")], "POSTGRES_LAG_SECS"),
            (vec![("POSTGRES_PAGE_SIZE", "0")], "POSTGRES_PAGE_SIZE"),
            (vec![("POSTGRES_CONTACTS_RELATION", "x;y")], "POSTGRES_CONTACTS_RELATION"),
            (vec![("POSTGRES_INTERACTIONS_RELATION", "a.b.c")], "POSTGRES_INTERACTIONS_RELATION"),
            (vec![("POSTGRES_INTERACTION_TYPES", "ticket,'x'")], "POSTGRES_INTERACTION_TYPES"),
            (vec![("POSTGRES_STATEMENT_TIMEOUT_MS", "0")], "POSTGRES_STATEMENT_TIMEOUT_MS"),
        ] {
            let err = read(&pairs).unwrap_err().to_string();
            assert!(err.starts_with(name), "{err}");
        }
    }
}
