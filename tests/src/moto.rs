//! A real SSM API emulator for tests: `moto_server` (PyPI `moto[server]`) on 127.0.0.1, one per test.
//!
//! [`MotoServer::start`] finds the binary (`.venv/bin/moto_server` at the workspace root, then `PATH`),
//! starts it on a free port and returns once it answers HTTP. Dropping the value kills the process;
//! [`MotoServer::stop`] does the same mid-test, to play "SSM went down".
//!
//! [`MotoServer::ssm_client`] builds the SDK client from explicit configuration (endpoint, region, dummy
//! static credentials), so tests do not depend on the process environment.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_sdk_ssm::config::retry::RetryConfig;
use aws_sdk_ssm::config::{BehaviorVersion, Credentials, Region};
use bridge::secrets::ssm::aws_sdk_ssm;

/// How long `moto_server` may take to answer after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How often to ask whether it answers yet.
const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// The region the emulator and the clients agree on.
pub const REGION: &str = "us-east-1";

/// A running `moto_server`, killed on drop.
pub struct MotoServer {
    child: Option<Child>,
    addr: SocketAddr,
    log: PathBuf,
    started_in: Duration,
}

impl MotoServer {
    /// Starts `moto_server` on a free port of 127.0.0.1 and waits until it answers.
    ///
    /// Panics with what to do when the binary is not installed, and with the server's output when it
    /// does not come up.
    pub fn start() -> MotoServer {
        let binary = find_binary().unwrap_or_else(|| {
            panic!(
                "moto_server not found in {} nor on PATH. Run `make test` (it creates .venv with \
                 moto[server]) or install it: `python3 -m venv .venv && .venv/bin/pip install \
                 \"moto[server]\"` at the workspace root.",
                venv_binary().display()
            )
        });
        // Another process can take the port between our probe and moto's bind; try a few ports.
        let mut last_failure = String::new();
        for _ in 0..3 {
            match MotoServer::start_once(&binary) {
                Ok(server) => return server,
                Err(failure) => last_failure = failure,
            }
        }
        panic!("moto_server ({}) did not start: {last_failure}", binary.display());
    }

    fn start_once(binary: &Path) -> Result<MotoServer, String> {
        let port = free_port().map_err(|e| format!("no free port on 127.0.0.1: {e}"))?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let log = std::env::temp_dir().join(format!("moto_server-{port}.log"));
        let log_file = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let log_err = log_file.try_clone().map_err(|e| format!("{}: {e}", log.display()))?;
        let started = Instant::now();
        let child = Command::new(binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("could not run {}: {e}", binary.display()))?;
        let mut server = MotoServer {
            child: Some(child),
            addr,
            log,
            started_in: Duration::ZERO,
        };
        let deadline = started + START_TIMEOUT;
        loop {
            if answers_http(addr) {
                server.started_in = started.elapsed();
                return Ok(server);
            }
            if let Some(Ok(Some(status))) = server.child.as_mut().map(Child::try_wait) {
                return Err(format!("it exited with {status}; output:\n{}", server.output()));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no answer on {addr} within {START_TIMEOUT:?}; output:\n{}",
                    server.output()
                ));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How long the server took from spawn to its first HTTP answer.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// An SSM client for this server, configured explicitly: endpoint, region, static dummy
    /// credentials, and quick retries so "SSM is down" tests fail fast.
    pub fn ssm_client(&self) -> aws_sdk_ssm::Client {
        ssm_client_at(&self.endpoint_url())
    }

    /// Stores `value` as a SecureString (decrypted by the reader) under `name`, a full name, overwriting.
    pub async fn put_secure(&self, name: &str, value: &str) {
        self.ssm_client()
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .overwrite(true)
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutParameter {name}: {}", aws_sdk_ssm::error::DisplayErrorContext(e)));
    }

    /// Deletes the parameter `name` (a full name).
    pub async fn delete(&self, name: &str) {
        self.ssm_client()
            .delete_parameter()
            .name(name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("DeleteParameter {name}: {}", aws_sdk_ssm::error::DisplayErrorContext(e)));
    }

    /// Kills the server now (SSM goes down mid-test). Later requests to its endpoint are refused.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// What the server wrote to stdout and stderr.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// An SSM client for the emulator (or something in front of it, such as [`crate::ssm_gate::SsmGate`]) at
/// `endpoint`: region, static dummy credentials, and quick retries so "SSM is down" tests fail fast.
pub fn ssm_client_at(endpoint: &str) -> aws_sdk_ssm::Client {
    let config = aws_sdk_ssm::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
        .endpoint_url(endpoint)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(2)
                .with_initial_backoff(Duration::from_millis(10)),
        )
        .build();
    aws_sdk_ssm::Client::from_conf(config)
}

/// A clock that moves only when told to, for [`bridge::secrets::ssm::SsmCache::with_clock`]: TTL expiry
/// without sleeping.
#[derive(Clone)]
pub struct ManualClock(Arc<Mutex<Instant>>);

impl ManualClock {
    pub fn new() -> Self {
        ManualClock(Arc::new(Mutex::new(Instant::now())))
    }

    pub fn advance(&self, by: Duration) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) += by;
    }

    pub fn now(&self) -> Instant {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

fn venv_binary() -> PathBuf {
    // tests/ is one level below the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(".venv/bin/moto_server")
}

fn find_binary() -> Option<PathBuf> {
    let venv = venv_binary();
    if venv.is_file() {
        return Some(venv);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("moto_server"))
        .find(|candidate| candidate.is_file())
}

fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// Whether something on `addr` answers an HTTP request with a status line.
fn answers_http(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /moto-api/ HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}
