//! A real PostgreSQL for tests and the bench: a throwaway server started from the Debian `postgresql`
//! package's binaries (`initdb`, `pg_ctl`), or the server `POSTGRES_TEST_URL` names.
//!
//! Throwaway server: a data directory in a temporary directory, `initdb` with an ICU default collation
//! (so a query that forgets `COLLATE "C"` sorts differently from the bridge and a test notices), listening
//! on 127.0.0.1 on a free port and on a private socket directory, with password (SCRAM) authentication
//! over TCP. PostgreSQL refuses to run as root, so as root (CI) the server runs as the `postgres` user (or
//! `nobody`) through `runuser`, with the directory handed to that user. Dropping the value stops the server
//! (`pg_ctl stop -m immediate`) and removes the directory.
//!
//! `POSTGRES_TEST_URL=postgres://admin:password@host:port/postgres`: each [`PgServer`] creates its own
//! database and login role there and drops them when dropped; [`PgServer::restart`] then ends every
//! session of that database instead of restarting the server.
//!
//! When neither works, [`PgServer::start`] panics saying what to install: tests that need PostgreSQL are
//! never skipped. `make test` installs the `postgresql` package when `initdb` is missing.

use std::fs;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use bridge::connectors::sandbox::{generate, GenerateOptions, SandboxContact, SandboxData, SandboxInteraction};
use chrono::{DateTime, Utc};
use futures::pin_mut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls};

/// The token key apps built by [`PgServer::app_pairs`] sign with.
pub const TOKEN_KEY: &str = "postgres-test-token-key-0123456789";
const SUPERUSER: &str = "postgres";
const SUPERUSER_PASSWORD: &str = "superuser-test-password";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The contract's tables with the indexes the README recommends (the README shows the same statements).
pub const CONTRACT_SQL: &str = r#"
CREATE TABLE talkdesk_contacts (
    id         text PRIMARY KEY,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    name       text NOT NULL,
    title      text,
    company    text,
    emails     text[] NOT NULL DEFAULT '{}',
    phones     text[] NOT NULL DEFAULT '{}',
    photo_url  text,
    address    text,
    websites   text[],
    twitter    text,
    url        text
);
CREATE INDEX talkdesk_contacts_sync ON talkdesk_contacts
    (updated_at, (CASE WHEN id ~ '^[0-9]{1,38}$' THEN '0' || lpad(ltrim(id, '0'), 38, '0') || id ELSE '1' || id END) COLLATE "C");
CREATE INDEX talkdesk_contacts_emails ON talkdesk_contacts USING gin (emails);
CREATE INDEX talkdesk_contacts_phones ON talkdesk_contacts USING gin (phones);

CREATE TABLE talkdesk_interactions (
    id          text PRIMARY KEY,
    contact_id  text NOT NULL,
    type        text NOT NULL,
    subject     text,
    description text,
    date        timestamptz NOT NULL,
    url         text,
    priority    text,
    status      text
);
CREATE INDEX talkdesk_interactions_contact ON talkdesk_interactions (contact_id, date DESC);
"#;

enum Kind {
    /// Our own server: its directory, binaries, the user it runs as (when we are root).
    Local {
        base: PathBuf,
        bin: PathBuf,
        run_as: Option<String>,
    },
    /// `POSTGRES_TEST_URL`: the admin URL.
    External { admin_url: String },
}

/// A PostgreSQL server with one test database and one login role for the bridge.
pub struct PgServer {
    kind: Kind,
    pub host: String,
    pub port: u16,
    /// The test database.
    pub database: String,
    /// The bridge's login role and its password (SELECT on the contract's relations only).
    pub app_user: String,
    pub app_password: String,
    admin_user: String,
    admin_password: String,
    /// PEM of the CA that signed the server's certificate, when TLS is on.
    pub certificate: Option<PathBuf>,
}

fn run(cmd: &mut Command) -> Result<Output, String> {
    let shown = format!("{cmd:?}");
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("{shown}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{shown} failed with {}:\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`.
fn find_bin_dir() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("initdb");
            if candidate.is_file() {
                let real = fs::canonicalize(&candidate).unwrap_or(candidate);
                if let Some(parent) = real.parent() {
                    if parent.join("pg_ctl").is_file() && parent.join("postgres").is_file() {
                        return Some(parent.to_path_buf());
                    }
                }
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn running_as_root() -> bool {
    fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

fn user_ids(user: &str) -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, user]).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
            .flatten()
    };
    Some((id("-u")?, id("-g")?))
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

fn chown_tree(path: &Path, ids: (u32, u32)) -> Result<(), String> {
    std::os::unix::fs::chown(path, Some(ids.0), Some(ids.1)).map_err(|e| format!("chown {}: {e}", path.display()))?;
    if path.is_dir() {
        for entry in fs::read_dir(path).map_err(|e| e.to_string())? {
            chown_tree(&entry.map_err(|e| e.to_string())?.path(), ids)?;
        }
    }
    Ok(())
}

fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A driver error with the server's message, for test failures.
pub fn show(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// Connects with explicit settings (never the environment).
pub async fn connect(host: &str, port: u16, user: &str, password: &str, dbname: &str) -> Result<Client, tokio_postgres::Error> {
    let mut config = tokio_postgres::Config::new();
    config.host(host).port(port).user(user).password(password).dbname(dbname);
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

impl PgServer {
    /// A server with a fresh database and bridge role, and without TLS.
    pub async fn start() -> PgServer {
        PgServer::start_with(false).await
    }

    /// The same, with TLS on (a self-signed certificate for `localhost` and `127.0.0.1`).
    pub async fn start_with_tls() -> PgServer {
        PgServer::start_with(true).await
    }

    async fn start_with(tls: bool) -> PgServer {
        let mut server = match std::env::var("POSTGRES_TEST_URL").ok().filter(|u| !u.trim().is_empty()) {
            Some(url) => PgServer::external(&url).unwrap_or_else(|e| panic!("POSTGRES_TEST_URL: {e}")),
            None => PgServer::throwaway(tls).unwrap_or_else(|e| {
                panic!(
                    "could not start a throwaway PostgreSQL: {e}\n\nInstall the server binaries (Debian/Ubuntu: \
                     `apt-get install postgresql`; `make test` does it when run as root) or point \
                     POSTGRES_TEST_URL at a server (postgres://admin:password@127.0.0.1:5432/postgres)."
                )
            }),
        };
        server.create_database().await;
        server
    }

    fn external(url: &str) -> Result<PgServer, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| e.to_string())?;
        Ok(PgServer {
            host: parsed.host_str().ok_or("no host")?.to_string(),
            port: parsed.port().unwrap_or(5432),
            database: unique_name("bridge_test"),
            app_user: unique_name("bridge_app"),
            app_password: "bridge-app-test-password".into(),
            admin_user: parsed.username().to_string(),
            admin_password: parsed.password().unwrap_or_default().to_string(),
            certificate: None,
            kind: Kind::External { admin_url: url.into() },
        })
    }

    fn throwaway(tls: bool) -> Result<PgServer, String> {
        let bin = find_bin_dir().ok_or("initdb and pg_ctl were not found (PATH, /usr/lib/postgresql/*/bin)")?;
        let base = std::env::temp_dir().join(unique_name("bridge-pg"));
        let _ = fs::remove_dir_all(&base);
        fs::create_dir_all(base.join("sock")).map_err(|e| format!("{}: {e}", base.display()))?;
        let run_as = if running_as_root() {
            let user = ["postgres", "nobody"]
                .into_iter()
                .find(|u| user_ids(u).is_some())
                .ok_or("running as root, and neither the postgres nor the nobody user exists to run the server")?;
            Some(user.to_string())
        } else {
            None
        };
        let pwfile = base.join("pwfile");
        fs::write(&pwfile, SUPERUSER_PASSWORD).map_err(|e| e.to_string())?;
        let mut server = PgServer {
            kind: Kind::Local {
                base: base.clone(),
                bin: bin.clone(),
                run_as: run_as.clone(),
            },
            host: "127.0.0.1".into(),
            port: 0,
            database: "bridge_test".into(),
            app_user: "talkdesk_bridge".into(),
            app_password: "bridge-app-test-password".into(),
            admin_user: SUPERUSER.into(),
            admin_password: SUPERUSER_PASSWORD.into(),
            certificate: None,
        };
        if tls {
            // A CA and a server certificate it signs (webpki refuses a CA certificate as the server's).
            let path = |name: &str| base.join(name).to_string_lossy().into_owned();
            fs::write(
                base.join("server.ext"),
                "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
            )
            .map_err(|e| e.to_string())?;
            let openssl = |args: &[&str]| run(Command::new("openssl").args(args));
            openssl(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=bridge-test-ca",
                "-keyout",
                &path("ca.key"),
                "-out",
                &path("ca.crt"),
            ])?;
            openssl(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                &path("server.key"),
                "-out",
                &path("server.csr"),
            ])?;
            openssl(&[
                "x509",
                "-req",
                "-in",
                &path("server.csr"),
                "-CA",
                &path("ca.crt"),
                "-CAkey",
                &path("ca.key"),
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &path("server.ext"),
                "-out",
                &path("server.crt"),
            ])?;
            fs::set_permissions(base.join("server.key"), fs::Permissions::from_mode(0o600)).map_err(|e| e.to_string())?;
            server.certificate = Some(base.join("ca.crt"));
        }
        if let Some(user) = &run_as {
            let ids = user_ids(user).ok_or("no such user")?;
            chown_tree(&base, ids)?;
        }
        fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
        let version = run(Command::new(bin.join("initdb")).arg("--version"))?;
        let major: u32 = String::from_utf8_lossy(&version.stdout)
            .split_whitespace()
            .last()
            .and_then(|v| v.split('.').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let data = base.join("data");
        let mut args: Vec<String> = vec![
            "-D".into(),
            data.to_string_lossy().into(),
            "-U".into(),
            SUPERUSER.into(),
            "--auth-local=trust".into(),
            "--auth-host=scram-sha-256".into(),
            format!("--pwfile={}", pwfile.display()),
            "-E".into(),
            "UTF8".into(),
            "--locale=C.UTF-8".into(),
            "-N".into(),
        ];
        if major >= 15 {
            args.extend(["--locale-provider=icu".into(), "--icu-locale=en".into()]);
        }
        run(&mut server.command("initdb", &args))?;
        let mut last = String::new();
        for _ in 0..3 {
            server.port = free_port();
            match server.pg_ctl_start() {
                Ok(()) => return Ok(server),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// A command of the server's binaries, run as the server's user.
    fn command(&self, program: &str, args: &[String]) -> Command {
        let Kind::Local { bin, run_as, .. } = &self.kind else {
            unreachable!("only a local server runs commands")
        };
        let mut cmd = match run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(bin.join(program));
                c
            }
            None => Command::new(bin.join(program)),
        };
        cmd.args(args);
        cmd
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let Kind::Local { base, .. } = &self.kind else {
            return Ok(());
        };
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
             -c max_connections=60 -c shared_buffers=32MB",
            self.port,
            base.join("sock").display()
        );
        if self.certificate.is_some() {
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                base.join("server.crt").display(),
                base.join("server.key").display()
            ));
        }
        let args: Vec<String> = vec![
            "-D".into(),
            base.join("data").to_string_lossy().into(),
            "-l".into(),
            base.join("server.log").to_string_lossy().into(),
            "-w".into(),
            "-t".into(),
            "60".into(),
            "-o".into(),
            options,
            "start".into(),
        ];
        run(&mut self.command("pg_ctl", &args))
            .map(|_| ())
            .map_err(|e| format!("{e}\nserver log:\n{}", self.log()))
    }

    fn pg_ctl(&self, action: &str, mode: &str) -> Result<(), String> {
        let Kind::Local { base, .. } = &self.kind else {
            return Ok(());
        };
        let args: Vec<String> = vec![
            "-D".into(),
            base.join("data").to_string_lossy().into(),
            "-m".into(),
            mode.into(),
            "-w".into(),
            action.into(),
        ];
        run(&mut self.command("pg_ctl", &args)).map(|_| ())
    }

    /// The server's log (throwaway servers).
    pub fn log(&self) -> String {
        match &self.kind {
            Kind::Local { base, .. } => fs::read_to_string(base.join("server.log")).unwrap_or_default(),
            Kind::External { .. } => String::new(),
        }
    }

    async fn admin_on(&self, dbname: &str) -> Client {
        connect(&self.host, self.port, &self.admin_user, &self.admin_password, dbname)
            .await
            .unwrap_or_else(|e| panic!("admin connection to {}:{}/{dbname}: {}", self.host, self.port, show(&e)))
    }

    async fn create_database(&mut self) {
        let maintenance = match &self.kind {
            Kind::External { admin_url } => reqwest::Url::parse(admin_url)
                .ok()
                .map(|u| u.path().trim_start_matches('/').to_string())
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "postgres".into()),
            Kind::Local { .. } => "postgres".into(),
        };
        let admin = self.admin_on(&maintenance).await;
        // Two statements: CREATE DATABASE cannot run in the implicit transaction of a batch.
        for statement in [
            format!("CREATE ROLE \"{}\" LOGIN PASSWORD '{}'", self.app_user, self.app_password),
            format!("CREATE DATABASE \"{}\"", self.database),
        ] {
            admin
                .batch_execute(&statement)
                .await
                .unwrap_or_else(|e| panic!("{statement}: {}", show(&e)));
        }
    }

    /// A superuser connection to the test database.
    pub async fn admin(&self) -> Client {
        self.admin_on(&self.database).await
    }

    /// A connection to the test database as the bridge's role.
    pub async fn app_client(&self) -> Client {
        connect(&self.host, self.port, &self.app_user, &self.app_password, &self.database)
            .await
            .unwrap_or_else(|e| panic!("app connection: {}", show(&e)))
    }

    /// `postgres://user:password@host:port/database` for the bridge's role (or another password).
    pub fn url_with_password(&self, password: &str) -> String {
        format!(
            "postgres://{}:{}@{}:{}/{}",
            self.app_user, password, self.host, self.port, self.database
        )
    }

    /// Configuration pairs for an app on this database: the postgres connector, a token key, the URL with
    /// the bridge's password, TLS off.
    pub fn app_pairs(&self) -> Vec<(String, String)> {
        vec![
            ("BRIDGE_CONNECTOR".into(), "postgres".into()),
            ("BRIDGE_TOKEN_KEY".into(), TOKEN_KEY.into()),
            ("POSTGRES_URL".into(), self.url_with_password(&self.app_password)),
            ("POSTGRES_SSLMODE".into(), "disable".into()),
        ]
    }

    /// Creates the contract's tables and indexes ([`CONTRACT_SQL`]) and lets the bridge's role read them.
    pub async fn create_contract(&self) {
        let admin = self.admin().await;
        admin
            .batch_execute(CONTRACT_SQL)
            .await
            .unwrap_or_else(|e| panic!("creating the contract tables: {}", show(&e)));
        self.grant_read().await;
    }

    /// Lets the bridge's role read every table and view of `public`.
    pub async fn grant_read(&self) {
        self.admin()
            .await
            .batch_execute(&format!("GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{}\"", self.app_user))
            .await
            .unwrap_or_else(|e| panic!("granting: {}", show(&e)));
    }

    /// Restarts the server (fast shutdown: every session is ended), or, on an external server, ends every
    /// session of the test database.
    pub async fn restart(&self) {
        match &self.kind {
            Kind::Local { .. } => {
                self.pg_ctl("stop", "fast").unwrap_or_else(|e| panic!("{e}"));
                self.pg_ctl_start().unwrap_or_else(|e| panic!("{e}"));
            }
            Kind::External { .. } => {
                let admin = self.admin_on("postgres").await;
                admin
                    .execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                        &[&self.database],
                    )
                    .await
                    .unwrap_or_else(|e| panic!("terminating sessions: {}", show(&e)));
            }
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        match &self.kind {
            Kind::Local { base, .. } => {
                let _ = self.pg_ctl("stop", "immediate");
                let _ = fs::remove_dir_all(base);
            }
            Kind::External { .. } => {
                let (host, port, user, password) = (self.host.clone(), self.port, self.admin_user.clone(), self.admin_password.clone());
                let (db, role) = (self.database.clone(), self.app_user.clone());
                // Drop runs outside any runtime the test may still hold: clean up on a thread of our own.
                let _ = std::thread::spawn(move || {
                    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                        return;
                    };
                    rt.block_on(async move {
                        if let Ok(c) = connect(&host, port, &user, &password, "postgres").await {
                            let _ = c
                                .batch_execute(&format!(
                                    "DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE); DROP ROLE IF EXISTS \"{role}\""
                                ))
                                .await;
                        }
                    });
                })
                .join();
            }
        }
    }
}

/// Generated contract data: the sandbox's people, with phones in E.164 and emails in lowercase as the
/// contract asks, a share of text ids (mixed case, dashes, leading zeros) so the id order is exercised,
/// `tie` contacts sharing one `updated_at`, and the last change at `latest`.
pub fn contract_data(contacts: usize, tie: usize, seed: u64, latest: DateTime<Utc>) -> SandboxData {
    let mut data = generate(GenerateOptions { contacts, seed });
    if let Some(max) = data.contacts.iter().map(|c| c.updated_at).max() {
        let shift = latest - max;
        for c in &mut data.contacts {
            c.updated_at += shift;
        }
    }
    let region = bridge::phone::parse_region("US").expect("US is a region");
    let mut renamed = std::collections::HashMap::new();
    for (i, c) in data.contacts.iter_mut().enumerate() {
        let new_id = match i % 11 {
            3 => Some(format!("CRM-{}", c.contact.id)),
            5 => Some(format!("crm-{}", c.contact.id)),
            7 => Some(format!("0{}", c.contact.id)),
            9 => Some(format!("é{}", c.contact.id)),
            _ => None,
        };
        if let Some(id) = new_id {
            renamed.insert(c.contact.id.clone(), id.clone());
            c.contact.id = id;
        }
        c.contact.phones = c.contact.phones.iter().filter_map(|p| bridge::phone::to_e164(p, region)).collect();
        c.contact.phones.dedup();
        c.contact.emails = c.contact.emails.iter().map(|e| e.to_lowercase()).collect();
    }
    for i in &mut data.interactions {
        if let Some(id) = renamed.get(&i.contact_id) {
            i.contact_id = id.clone();
        }
    }
    if tie > 0 && !data.contacts.is_empty() {
        let shared = data.contacts[data.contacts.len() / 2].updated_at;
        let start = data.contacts.len() / 3;
        for c in data.contacts.iter_mut().skip(start).take(tie) {
            c.updated_at = shared;
        }
    }
    data
}

/// Writes contacts with binary COPY.
pub async fn copy_contacts(client: &Client, contacts: &[SandboxContact]) -> Result<u64, tokio_postgres::Error> {
    let sink = client
        .copy_in(
            "COPY talkdesk_contacts (id, updated_at, name, title, company, emails, phones, photo_url, address, websites, twitter, url) \
             FROM STDIN (FORMAT binary)",
        )
        .await?;
    let writer = BinaryCopyInWriter::new(
        sink,
        &[
            Type::TEXT,
            Type::TIMESTAMPTZ,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT_ARRAY,
            Type::TEXT_ARRAY,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT_ARRAY,
            Type::TEXT,
            Type::TEXT,
        ],
    );
    pin_mut!(writer);
    for c in contacts {
        let k = &c.contact;
        let websites: Option<&Vec<String>> = (!k.websites.is_empty()).then_some(&k.websites);
        writer
            .as_mut()
            .write(&[
                &k.id,
                &c.updated_at,
                &k.name,
                &k.title,
                &k.company,
                &k.emails,
                &k.phones,
                &k.photo_url,
                &k.address,
                &websites,
                &k.twitter,
                &k.url,
            ])
            .await?;
    }
    writer.finish().await
}

/// Writes interactions with binary COPY.
pub async fn copy_interactions(client: &Client, interactions: &[SandboxInteraction]) -> Result<u64, tokio_postgres::Error> {
    let sink = client
        .copy_in(
            "COPY talkdesk_interactions (id, contact_id, type, subject, description, date, url, priority, status) \
             FROM STDIN (FORMAT binary)",
        )
        .await?;
    let types = [
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TIMESTAMPTZ,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
    ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    pin_mut!(writer);
    for (n, i) in interactions.iter().enumerate() {
        let x = &i.interaction;
        // Interaction ids are unique per contact in the sandbox; the table's are unique overall.
        let id = format!("{}-{n}", x.id);
        let priority = serde_json::to_value(x.priority).ok().and_then(|v| v.as_str().map(String::from));
        let status = serde_json::to_value(x.status).ok().and_then(|v| v.as_str().map(String::from));
        writer
            .as_mut()
            .write(&[
                &id,
                &i.contact_id,
                &x.kind,
                &x.subject,
                &x.description,
                &x.date,
                &x.url,
                &priority,
                &status,
            ])
            .await?;
    }
    writer.finish().await
}

/// Creates the contract's tables on `server` and loads `data` into them.
pub async fn load(server: &PgServer, data: &SandboxData) {
    server.create_contract().await;
    let admin = server.admin().await;
    copy_contacts(&admin, &data.contacts)
        .await
        .unwrap_or_else(|e| panic!("COPY contacts: {}", show(&e)));
    copy_interactions(&admin, &data.interactions)
        .await
        .unwrap_or_else(|e| panic!("COPY interactions: {}", show(&e)));
    admin
        .batch_execute("ANALYZE")
        .await
        .unwrap_or_else(|e| panic!("ANALYZE: {}", show(&e)));
}

/// Every contact in the table, by id: `(updated_at, contact)` as the bridge should send it.
pub async fn table_contents(client: &Client) -> std::collections::HashMap<String, (DateTime<Utc>, bridge::talkdesk::Contact)> {
    let rows = client
        .query(
            "SELECT id, updated_at, name, company, title, emails, phones, photo_url, address, websites, twitter, url FROM talkdesk_contacts",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("reading contacts: {}", show(&e)));
    rows.iter()
        .map(|r| {
            let list = |i: usize| r.get::<_, Option<Vec<String>>>(i).unwrap_or_default();
            let contact = bridge::talkdesk::Contact {
                id: r.get(0),
                name: r.get(2),
                company: r.get(3),
                title: r.get(4),
                emails: list(5),
                phones: list(6),
                photo_url: r.get(7),
                address: r.get(8),
                websites: list(9),
                twitter: r.get(10),
                url: r.get(11),
            }
            .tidy();
            (contact.id.clone(), (r.get(1), contact))
        })
        .collect()
}
