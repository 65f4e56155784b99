//! `make bench`: runs the real release binaries under the local Lambda Runtime API emulator against the
//! fake Zendesk (and moto_server for SSM) and writes a Markdown report of what users pay for.
//!
//! Usage: `bench [--out BENCHMARKS.md] [--bin-dir target/release] [--hello PATH] [--pgo PROFILE] [--quick]
//! [--only SECTION]...`, where
//! SECTION is `cold-init`, `warm`, `screen-pop`, `full-sync`, `load`, `postgres` or `hubspot`. With `--only`, the
//! report is printed and written only when `--out` is given (so a partial run never replaces BENCHMARKS.md).
//! Figures only: nothing here asserts a timing. `--only postgres` runs the PostgreSQL section alone (a
//! throwaway server, see `bridge_tests::postgres`); with a debug build: `cargo build -p contacts -p
//! interactions -p bridge-tests && target/debug/bench --bin-dir target/debug --only postgres --quick`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bridge_tests::fake_zendesk::{self, auth_json, FakeData, FakeIdentity, FakeUser, FakeZendesk, Generate};
use bridge_tests::runtime_emulator::{http_event, http_response, RuntimeEmulator};
use serde_json::{json, Value};

const TOKEN_KEY: &str = "bench-token-key-0123456789abcdef";
/// The heading of BENCHMARKS.md's hand-kept last section, which a new run keeps.
const HISTORY_HEADING: &str = "## Before and after";

struct Args {
    out: Option<PathBuf>,
    bin_dir: PathBuf,
    /// The hello-world baseline; `<bin_dir>/hello-lambda` unless given.
    hello: Option<PathBuf>,
    /// The profile the functions in `bin_dir` were optimised with, for the report (`make bench`).
    pgo: Option<String>,
    quick: bool,
    /// Sections to run; empty means all.
    only: Vec<String>,
}

/// The report's sections, in order.
const SECTIONS: &[&str] = &["cold-init", "warm", "screen-pop", "full-sync", "load", "postgres", "hubspot"];

impl Args {
    /// The path of one of the binaries the bench runs.
    fn bin(&self, name: &str) -> PathBuf {
        match (&self.hello, name) {
            (Some(hello), "hello-lambda") => hello.clone(),
            _ => self.bin_dir.join(name),
        }
    }

    fn runs(&self, section: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == section)
    }
}

fn args() -> Args {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut a = Args {
        out: None,
        bin_dir: root.join("target/release"),
        hello: None,
        pgo: None,
        quick: false,
        only: vec![],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--out" => a.out = it.next().map(PathBuf::from).or(a.out),
            "--bin-dir" => a.bin_dir = it.next().map(PathBuf::from).unwrap_or(a.bin_dir),
            "--hello" => a.hello = it.next().map(PathBuf::from).or(a.hello),
            "--pgo" => a.pgo = it.next().or(a.pgo),
            "--quick" => a.quick = true,
            "--only" => match it.next() {
                Some(section) if SECTIONS.contains(&section.as_str()) => a.only.push(section),
                other => {
                    eprintln!("--only takes one of {}, got {other:?}", SECTIONS.join(", "));
                    std::process::exit(2);
                }
            },
            other => eprintln!("ignoring unknown argument {other}"),
        }
    }
    if a.out.is_none() && a.only.is_empty() {
        a.out = Some(root.join("BENCHMARKS.md"));
    }
    a
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Peak resident set (`VmHWM`) of a process, in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// CPU time a process has run so far, all its threads (each thread's `schedstat`, in nanoseconds; threads
/// that ended are not counted, and a function's threads live as long as it does).
fn cpu_time(pid: u32) -> Option<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

/// One function process under the emulator.
struct Function {
    child: Child,
    emulator: RuntimeEmulator,
    init: Duration,
}

impl Function {
    async fn start(bin: &Path, name: &str, env: &[(String, String)]) -> Result<Function, String> {
        let emulator = RuntimeEmulator::start(name).await.map_err(|e| e.to_string())?;
        let spawned = Instant::now();
        let child = Command::new(bin)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", emulator.runtime_api())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .env("AWS_LAMBDA_LOG_LEVEL", "WARN")
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        let ready = emulator.wait_ready(Duration::from_secs(20)).await;
        let mut f = Function {
            child,
            emulator,
            init: Duration::ZERO,
        };
        match ready {
            Ok(at) => {
                f.init = at.saturating_duration_since(spawned);
                Ok(f)
            }
            Err(e) => {
                f.stop();
                Err(e)
            }
        }
    }

    /// One API Gateway request; the status, body and latency.
    async fn call(&self, path: &str, body: &Value) -> Result<(u16, String, Duration), String> {
        let started = Instant::now();
        let outcome = self.emulator.invoke(http_event(path, &body.to_string())).await?;
        let took = started.elapsed();
        let (status, body) = http_response(&outcome)?;
        Ok((status, body, took))
    }

    /// [`Function::call`], with the function's own time as Lambda bills it (event handed → answer in).
    async fn call_billed(&self, path: &str, body: &Value) -> Result<(u16, String, Duration, Duration), String> {
        let started = Instant::now();
        let (outcome, billed) = self.emulator.invoke_timed(http_event(path, &body.to_string())).await?;
        let took = started.elapsed();
        let (status, body) = http_response(&outcome)?;
        Ok((status, body, took, billed))
    }

    fn peak_rss_kib(&self) -> Option<u64> {
        peak_rss_kib(self.child.id())
    }

    fn cpu_time(&self) -> Option<Duration> {
        cpu_time(self.child.id())
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        self.stop();
    }
}

fn zendesk_env(fake: &FakeZendesk, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = vec![
        ("BRIDGE_CONNECTOR".to_string(), "zendesk".to_string()),
        ("BRIDGE_TOKEN_KEY".into(), TOKEN_KEY.into()),
        ("ZENDESK_BASE_URL".into(), fake.base_url()),
        // The bench calls without a bridge token; a Zendesk function under the Runtime API emulator
        // (AWS_LAMBDA_FUNCTION_NAME set) is otherwise closed by default and would not start.
        ("BRIDGE_ALLOW_UNAUTHENTICATED".into(), "true".into()),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

/// The size of `file` in a zip archive of its own, deflated (what `sam build`'s package holds), made with
/// Python's zipfile (Python is always there: the bench's tools come from a venv).
fn zipped_size(file: &Path) -> Option<u64> {
    let out = std::env::temp_dir().join(format!("bench-zip-{}.zip", std::process::id()));
    let status = Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile; zipfile.ZipFile(sys.argv[2], 'w', zipfile.ZIP_DEFLATED).write(sys.argv[1], 'bootstrap')",
        ])
        .arg(file)
        .arg(&out)
        .status()
        .ok()?;
    let size = status.success().then(|| std::fs::metadata(&out).ok().map(|m| m.len())).flatten();
    let _ = std::fs::remove_file(&out);
    size
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string()))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| format!("{:.1} GiB", kb as f64 / 1024.0 / 1024.0))
        .unwrap_or_default();
    let run = |cmd: &str, args: &[&str]| {
        Command::new(cmd)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    format!(
        "{cpu}, {cores} cores available, {mem} RAM; {}; {}",
        run("uname", &["-srm"]),
        run("rustc", &["-V"])
    )
}

/// A contact-sync page request.
fn contacts_body(offset: Option<&str>) -> Value {
    json!({"auth": auth_json(), "meta": {"offset": offset}})
}

struct Report {
    md: String,
}

impl Report {
    fn line(&mut self, s: impl AsRef<str>) {
        println!("{}", s.as_ref());
        let _ = writeln!(self.md, "{}", s.as_ref());
    }
}

async fn cold_init(a: &Args, r: &mut Report, fake: &FakeZendesk, rss: &mut Vec<(String, u64)>) {
    let runs = if a.quick { 5 } else { 21 };
    r.line("## Cold init (process spawn → first `GET /runtime/invocation/next`)");
    r.line("");
    r.line(format!(
        "{runs} spawns each, alternating binaries; the Zendesk connector configured from the environment, and the \
         sandbox (the default connector, what a new user first runs) with nothing configured."
    ));
    r.line("");
    let bins = [
        ("hello-lambda", "hello-lambda"),
        ("contacts", "contacts"),
        ("interactions", "interactions"),
        ("contacts", "contacts (sandbox)"),
        ("interactions", "interactions (sandbox)"),
    ];
    let mut samples: Vec<Vec<f64>> = vec![vec![]; bins.len()];
    let env = zendesk_env(fake, &[]);
    let mut first_sandbox_request: Vec<f64> = vec![];
    for _ in 0..runs {
        for (i, (bin, name)) in bins.iter().enumerate() {
            let sandbox = name.ends_with("(sandbox)");
            let env = if *bin == "hello-lambda" || sandbox { vec![] } else { env.clone() };
            match Function::start(&a.bin(bin), bin, &env).await {
                Ok(mut f) => {
                    samples[i].push(ms(f.init));
                    if sandbox && *bin == "contacts" {
                        // The sandbox's data is made on first use: what the first request pays for it.
                        if let Ok((200, _, _, billed)) = f.call_billed("/contacts", &json!({"auth": {}})).await {
                            first_sandbox_request.push(ms(billed));
                        }
                    }
                    f.stop();
                }
                Err(e) => eprintln!("{name}: {e}"),
            }
        }
    }
    let hello = median(samples[0].clone());
    r.line("| binary | median init (ms) | p90 (ms) | ratio to hello-world |");
    r.line("|---|---:|---:|---:|");
    for (i, (_, name)) in bins.iter().enumerate() {
        let m = median(samples[i].clone());
        r.line(format!(
            "| {name} | {m:.2} | {:.2} | {:.2}× |",
            percentile(samples[i].clone(), 0.9),
            m / hello
        ));
    }
    r.line("");
    r.line(format!(
        "The sandbox's data (2,500 contacts, their interactions) is generated on first use, not at INIT: the first \
         sandbox page took {:.2} ms of function time (median of {}).",
        median(first_sandbox_request.clone()),
        first_sandbox_request.len()
    ));
    r.line("");
    let no_ssm = [median(samples[1].clone()), median(samples[2].clone())];

    // With SSM prefetch against moto_server.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let on_path = std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("moto_server").is_file()));
    if !root.join(".venv/bin/moto_server").is_file() && !on_path {
        r.line("SSM prefetch: moto_server not installed (run `make venv`); skipped.");
        r.line("");
        return;
    }
    let mut moto = bridge_tests::moto::MotoServer::start();
    let client = moto.ssm_client();
    let prefix = "/talkdesk-bridge/bench";
    let put = client
        .put_parameter()
        .name(format!("{prefix}/token-key"))
        .value(TOKEN_KEY)
        .r#type(bridge::secrets::ssm::aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await;
    if let Err(e) = put {
        r.line(format!("SSM prefetch: could not seed moto_server ({e:?}); skipped."));
        moto.stop();
        return;
    }
    let names: Vec<String> = ["token-key", "token-key-previous", "token-key-next", "inbound-tokens"]
        .iter()
        .map(|n| format!("{prefix}/{n}"))
        .collect();
    let bare_call = |client: bridge::secrets::ssm::aws_sdk_ssm::Client| {
        let names = names.clone();
        async move {
            let started = Instant::now();
            let answer = client.get_parameters().set_names(Some(names)).with_decryption(true).send().await;
            answer.is_ok().then(|| ms(started.elapsed()))
        }
    };
    // The same call back to back on a client already connected (median of 21): the server's best case, which
    // no cold start gets.
    let mut back_to_back = vec![];
    for i in 0..22 {
        if let Some(took) = bare_call(client.clone()).await {
            if i > 0 {
                back_to_back.push(took);
            }
        }
    }
    let mut env = zendesk_env(fake, &[("BRIDGE_SSM_PREFIX", prefix)]);
    env.retain(|(k, _)| k != "BRIDGE_TOKEN_KEY");
    env.extend([
        ("AWS_ENDPOINT_URL".to_string(), moto.endpoint_url()),
        ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
        ("AWS_SESSION_TOKEN".into(), "testing".into()),
        ("AWS_DEFAULT_REGION".into(), "us-east-1".into()),
    ]);
    let mut with_ssm: Vec<Vec<f64>> = vec![vec![]; 2];
    // One bare round trip as a cold start makes it, before each spawn: from a new client, so on a new
    // connection, to a server that has been idle as long as it is when a function's INIT calls it (a
    // function's stop and the next spawn in between).
    let mut bare = vec![];
    let mut failure = None;
    for _ in 0..runs {
        for (i, bin) in ["contacts", "interactions"].iter().enumerate() {
            if let Some(took) = bare_call(moto.ssm_client()).await {
                bare.push(took);
            }
            match Function::start(&a.bin(bin), bin, &env).await {
                Ok(mut f) => {
                    if i == 0 && with_ssm[0].is_empty() {
                        // The secrets really came from SSM: a page signs tokens with the SSM key.
                        match f.call("/contacts", &contacts_body(None)).await {
                            Ok((200, _, _)) => {}
                            other => failure = Some(format!("{other:?}")),
                        }
                        if let Some(kib) = f.peak_rss_kib() {
                            rss.push(("contacts (SSM prefetch, one page)".into(), kib));
                        }
                    }
                    with_ssm[i].push(ms(f.init));
                    f.stop();
                }
                Err(e) => failure = Some(format!("{bin}: {e}")),
            }
        }
    }
    moto.stop();
    r.line(format!(
        "With `BRIDGE_SSM_PREFIX` (secrets prefetched in one batched call from moto_server on 127.0.0.1, {runs} spawns each):"
    ));
    r.line("");
    let (rtt, warm_rtt) = (median(bare.clone()), median(back_to_back));
    r.line(format!(
        "One bare `GetParameters` round trip to the same moto_server, as INIT makes it: from a new client (a new \
         connection), one before each spawn of the loop, so that the server has been idle as long as when a \
         function calls it (median of {}): {rtt:.2} ms. The goal: INIT with SSM ≤ INIT without + 1.5 × that = \
         + {:.2} ms. For comparison, the same call repeated back to back on a connected client, a server's best \
         case that no cold start meets (median of 21): {warm_rtt:.2} ms.",
        bare.len(),
        1.5 * rtt
    ));
    r.line("");
    r.line(
        "| binary | median init with SSM (ms) | ratio to hello-world | − init without SSM (ms) | ÷ bare GetParameters round trip | ÷ back-to-back round trip |",
    );
    r.line("|---|---:|---:|---:|---:|---:|");
    for (i, bin) in ["contacts", "interactions"].iter().enumerate() {
        let m = median(with_ssm[i].clone());
        r.line(format!(
            "| {bin} | {m:.2} | {:.2}× | {:.2} | {:.2} | {:.2} |",
            m / hello,
            m - no_ssm[i],
            (m - no_ssm[i]) / rtt,
            (m - no_ssm[i]) / warm_rtt
        ));
    }
    if let Some(f) = failure {
        r.line("");
        r.line(format!("Note: an SSM run failed: {f}"));
    }
    r.line("");
}

async fn warm(a: &Args, r: &mut Report, rss: &mut Vec<(String, u64)>) {
    let reps = if a.quick { 5 } else { 25 };
    r.line("## Warm invocations: one contacts page");
    r.line("");
    r.line(format!(
        "Median of {reps} invocations of the first page of an initial sync (the same request each time). Function time: \
         from the event handed to the function to its answer received, what Lambda bills. Bridge time = function time − \
         the time the fake Zendesk was serving a request of this invocation, from the request's arrival to the last \
         byte of its answer written to the socket (a 1000-user export page is 1.8 MB, about a millisecond on \
         loopback). Function CPU: the CPU time the function \
         process used per invocation (all its threads, mean). The one-contact page is the floor under the other \
         rows: what an invocation costs whatever its size (the runtime's round trips, the request upstream, the \
         token), and, at 50 ms upstream, what the same work costs after the process has waited idle."
    ));
    r.line("");
    r.line("| page size | upstream latency | median function time (ms) | median upstream wait (ms) | of which sending its answer (ms) | bridge time (ms) | bridge % | function CPU (ms) | upstream requests | response bytes |");
    r.line("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let data = fake_zendesk::generate(Generate {
        users: 2_500,
        seed: 3,
        latest: chrono::Utc::now().timestamp() - 7_200,
    });
    let fake = FakeZendesk::start(data).await.expect("fake zendesk starts");
    for page in [1usize, 100, 1000] {
        for latency in [0u64, 50] {
            fake.set_latency(Duration::from_millis(latency));
            let page_s = page.to_string();
            let env = zendesk_env(&fake, &[("BRIDGE_PAGE_SIZE", page_s.as_str())]);
            let f = match Function::start(&a.bin("contacts"), "contacts", &env).await {
                Ok(f) => f,
                Err(e) => {
                    r.line(format!("| {page} | {latency} ms | failed: {e} | | | | | | | |"));
                    continue;
                }
            };
            let _ = f.call("/contacts", &contacts_body(None)).await; // first invocation: caches warm
            let (mut totals, mut waits, mut sends, mut bytes, mut requests) = (vec![], vec![], vec![], 0usize, 0usize);
            let cpu_before = f.cpu_time();
            for _ in 0..reps {
                fake.take_busy();
                fake.clear_requests();
                match f.call_billed("/contacts", &contacts_body(None)).await {
                    Ok((200, body, _, billed)) => {
                        totals.push(ms(billed));
                        let (handling, sending) = fake.take_busy_parts();
                        waits.push(ms(handling + sending));
                        sends.push(ms(sending));
                        bytes = body.len();
                        requests = fake.requests().len();
                    }
                    other => eprintln!("warm page {page}: {other:?}"),
                }
            }
            // The function's own CPU time per invocation (its mean over the reps): what bridge time is made
            // of, without the waits for the scheduler on a machine that also runs the fake.
            let cpu = cpu_before
                .zip(f.cpu_time())
                .filter(|_| !totals.is_empty())
                .map_or("n/a".to_string(), |(b, a)| format!("{:.2}", ms(a - b) / totals.len() as f64));
            if let Some(kib) = f.peak_rss_kib() {
                rss.push((format!("contacts (warm, {page}-contact pages, {latency} ms upstream)"), kib));
            }
            let total = median(totals.clone());
            let wait = median(waits.clone());
            let overhead = median(totals.iter().zip(&waits).map(|(t, w)| t - w).collect());
            let sending = median(sends.clone());
            r.line(format!(
                "| {page} | {latency} ms | {total:.2} | {wait:.2} | {sending:.2} | {overhead:.2} | {:.1} % | {cpu} | {requests} | {bytes} |",
                100.0 * overhead / total
            ));
        }
    }
    fake.set_latency(Duration::ZERO);
    r.line("");
    // The floor under every row: the runtime's and the emulator's share of an invocation.
    if let Ok(hello) = Function::start(&a.bin("hello-lambda"), "hello-lambda", &[]).await {
        let mut billed = vec![];
        for _ in 0..=reps {
            if let Ok((200, _, _, b)) = hello.call_billed("/hello", &json!({})).await {
                billed.push(ms(b));
            }
        }
        if !billed.is_empty() {
            billed.remove(0);
        }
        r.line(format!(
            "For reference, hello-lambda answers an invocation in {:.2} ms of function time (median of {}): the Lambda \
             runtime's and the emulator's share, in every row above.",
            median(billed.clone()),
            billed.len()
        ));
        r.line("");
    }
}

/// Export requests the fake allows per window, and the window, for the rate-limited full sync: Zendesk's
/// documented 10 incremental-export requests a minute, with the minute shortened so the bench runs in
/// about a minute.
const EXPORT_LIMIT: u32 = 10;
const EXPORT_WINDOW: Duration = Duration::from_secs(6);

/// What one full sync by a synchroniser that never retries a page cost.
struct SyncFigures {
    live: usize,
    contacts: usize,
    round_trips: usize,
    empty_pages: usize,
    errors: usize,
    completed: bool,
    exports: usize,
    orgs: usize,
    upstream: usize,
    export_429s: usize,
    bytes: usize,
    wall: Duration,
}

async fn one_full_sync(
    a: &Args,
    users: usize,
    limit: Option<(u32, Duration)>,
    rss: &mut Vec<(String, u64)>,
) -> Result<SyncFigures, String> {
    let gen_started = Instant::now();
    let data = fake_zendesk::generate(Generate {
        users,
        seed: 5,
        latest: chrono::Utc::now().timestamp() - 7_200,
    });
    let live = data
        .users
        .values()
        .filter(|u| u.active && !u.suspended && !u.purged && u.role == "end-user")
        .count();
    eprintln!("generated {users} users in {:.1} s", gen_started.elapsed().as_secs_f64());
    let fake = FakeZendesk::start(data).await.map_err(|e| e.to_string())?;
    fake.set_export_rate_limit(limit);
    let env = zendesk_env(&fake, &[]);
    let f = Function::start(&a.bin("contacts"), "contacts", &env).await?;
    let started = Instant::now();
    let mut offset: Option<String> = None;
    let mut fig = SyncFigures {
        live,
        contacts: 0,
        round_trips: 0,
        empty_pages: 0,
        errors: 0,
        completed: false,
        exports: 0,
        orgs: 0,
        upstream: 0,
        export_429s: 0,
        bytes: 0,
        wall: Duration::ZERO,
    };
    // A synchroniser that never retries: the first non-200 page ends the sync.
    loop {
        fig.round_trips += 1;
        match f.call("/contacts", &contacts_body(offset.as_deref())).await {
            Ok((200, body, _)) => {
                fig.bytes += body.len();
                let v: Value = serde_json::from_str(&body).unwrap_or_default();
                let n = v["contacts"].as_array().map_or(0, Vec::len);
                fig.contacts += n;
                match v["next_offset"].as_str() {
                    Some(o) => {
                        fig.empty_pages += usize::from(n == 0);
                        offset = Some(o.to_string());
                    }
                    None => {
                        fig.completed = true;
                        break;
                    }
                }
            }
            other => {
                fig.errors += 1;
                eprintln!("full sync: {other:?}");
                break;
            }
        }
    }
    fig.wall = started.elapsed();
    let requests = fake.requests();
    fig.exports = requests.iter().filter(|q| q.path.contains("incremental")).count();
    fig.orgs = requests.iter().filter(|q| q.path.contains("organizations")).count();
    fig.upstream = requests.len();
    fig.export_429s = fake.export_429s();
    if let Some(kib) = f.peak_rss_kib() {
        let what = if limit.is_some() { "rate-limited " } else { "" };
        rss.push((format!("contacts ({what}full sync of {users})"), kib));
    }
    Ok(fig)
}

async fn full_sync(a: &Args, r: &mut Report, rss: &mut Vec<(String, u64)>) {
    let users = if a.quick { 10_000 } else { 100_000 };
    r.line(format!("## Full sync of {users} Zendesk users through the real `contacts` binary"));
    r.line("");
    r.line(format!(
        "The fake holds {users} users on {} organizations, about 12 % of them agents, admins, deleted, suspended or purged, interleaved. The synchroniser never retries: the first page that is not a 200 ends the sync. Defaults throughout (`BRIDGE_PAGE_SIZE` 1000, `BRIDGE_PAGE_BUDGET_MS` 20000). The rate-limited run lets the fake answer {EXPORT_LIMIT} export requests per {}-second window and 429 past it, with Zendesk's headers.",
        (users / 50).max(1),
        EXPORT_WINDOW.as_secs()
    ));
    r.line("");
    let free = one_full_sync(a, users, None, rss).await;
    let limited = one_full_sync(a, users, Some((EXPORT_LIMIT, EXPORT_WINDOW)), rss).await;
    let (free, limited) = match (free, limited) {
        (Ok(f), Ok(l)) => (f, l),
        (f, l) => {
            r.line(format!("failed: {:?} {:?}", f.err(), l.err()));
            return;
        }
    };
    let per_k = |n: usize, of: usize| format!("{:.2}", 1000.0 * n as f64 / of.max(1) as f64);
    // The floor the limit sets: export requests needed / allowed per window × window.
    let floor = limited.exports as f64 / f64::from(EXPORT_LIMIT) * EXPORT_WINDOW.as_secs_f64();
    r.line(format!(
        "| figure | no rate limit | {EXPORT_LIMIT} exports / {} s |",
        EXPORT_WINDOW.as_secs()
    ));
    r.line("|---|---:|---:|");
    let row = |r: &mut Report, name: &str, f: &dyn Fn(&SyncFigures) -> String| {
        r.line(format!("| {name} | {} | {} |", f(&free), f(&limited)));
    };
    row(r, "live end-users (contacts to sync)", &|s| s.live.to_string());
    row(r, "contacts returned", &|s| s.contacts.to_string());
    row(r, "sync completed without a retry", &|s| {
        if s.completed {
            "yes".into()
        } else {
            "no".into()
        }
    });
    row(r, "error responses", &|s| s.errors.to_string());
    row(r, "Talkdesk round trips (of them empty pages)", &|s| {
        format!("{} ({})", s.round_trips, s.empty_pages)
    });
    row(r, "export requests", &|s| s.exports.to_string());
    row(r, "organization requests", &|s| s.orgs.to_string());
    row(r, "export answers of 429", &|s| s.export_429s.to_string());
    row(r, "export requests per 1000 users", &|s| per_k(s.exports, users));
    row(r, "export requests per 1000 contacts", &|s| per_k(s.exports, s.contacts));
    row(r, "upstream requests in all per 1000 users", &|s| per_k(s.upstream, users));
    row(r, "upstream requests in all per 1000 contacts", &|s| per_k(s.upstream, s.contacts));
    row(r, "bytes returned to Talkdesk", &|s| format!("{:.1} MB", s.bytes as f64 / 1e6));
    row(r, "wall time", &|s| format!("{:.2} s", s.wall.as_secs_f64()));
    r.line(format!(
        "| floor the rate limit sets ({} exports ÷ {EXPORT_LIMIT} × {} s) | | {floor:.1} s |",
        limited.exports,
        EXPORT_WINDOW.as_secs()
    ));
    r.line(format!(
        "| wall time ÷ floor | | {:.2} |",
        limited.wall.as_secs_f64() / floor.max(f64::EPSILON)
    ));
    r.line("");
}

fn screen_pop_data() -> (FakeData, Value) {
    let mut data = FakeData::default();
    let id = 5_000_001u64;
    let mut u = FakeUser::end_user(id, "Screen Pop", 1_700_000_000);
    u.email = Some("pop@example.com".into());
    u.phone = Some("+14155550100".into());
    let ids = [
        ("email", "pop@example.com", true),
        ("email", "pop.work@example.com", false),
        ("email", "pop.home@example.com", false),
        ("phone_number", "+14155550100", true),
        ("phone_number", "+442079460123", false),
    ];
    u.identities = ids
        .iter()
        .enumerate()
        .map(|(i, (kind, value, primary))| FakeIdentity {
            id: 90 + i as u64,
            kind: kind.to_string(),
            value: value.to_string(),
            primary: *primary,
        })
        .collect();
    data.add_user(u);
    for t in 0..5u64 {
        data.tickets.push(fake_zendesk::FakeTicket {
            id: 700 + t,
            requester_id: id,
            subject: Some(format!("Ticket {t}")),
            description: "Hello".into(),
            priority: Some("normal".into()),
            status: "open".into(),
            custom_status_id: None,
            created_at: 1_699_000_000,
            updated_at: 1_699_000_000 + t as i64,
        });
    }
    let body = json!({
        "auth": auth_json(),
        "meta": {"interaction_types": ["ticket"]},
        "data": {
            "contact_emails": ["pop@example.com", "pop.work@example.com", "pop.home@example.com"],
            "contact_phones": ["+1 415 555 0100", "+44 20 7946 0123"]
        }
    });
    (data, body)
}

/// The upstream latency of the screen-pop figures.
const POP_LATENCY: Duration = Duration::from_millis(100);

/// Median latency, requests per lookup and most requests in flight of `reps` identical lookups.
struct PopFigures {
    median_ms: f64,
    requests: usize,
    max_in_flight: usize,
    found: usize,
    errors: usize,
}

async fn pop_figures(f: &Function, fake: &FakeZendesk, body: &Value, reps: usize) -> PopFigures {
    let (mut lat, mut requests, mut max_in_flight, mut found, mut errors) = (vec![], 0, 0, 0, 0);
    for _ in 0..reps {
        fake.clear_requests();
        match f.call("/interactions", body).await {
            Ok((200, b, took)) => {
                lat.push(ms(took));
                found = serde_json::from_str::<Value>(&b)
                    .ok()
                    .and_then(|v| v.as_array().map(Vec::len))
                    .unwrap_or(0);
                requests = requests.max(fake.requests().len());
                max_in_flight = max_in_flight.max(fake.max_in_flight());
            }
            other => {
                errors += 1;
                eprintln!("screen-pop: {other:?}");
            }
        }
    }
    PopFigures {
        median_ms: median(lat),
        requests,
        max_in_flight,
        found,
        errors,
    }
}

fn pop_body(data: Value) -> Value {
    json!({"auth": auth_json(), "meta": {"interaction_types": ["ticket"]}, "data": data})
}

async fn screen_pop(a: &Args, r: &mut Report, rss: &mut Vec<(String, u64)>) {
    let reps = if a.quick { 3 } else { 9 };
    let latency_ms = ms(POP_LATENCY);
    r.line(format!("## Screen-pop at {latency_ms:.0} ms upstream latency"));
    r.line("");
    let (data, body) = screen_pop_data();
    let fake = FakeZendesk::start(data).await.expect("fake zendesk starts");
    fake.set_latency(POP_LATENCY);
    let env = zendesk_env(&fake, &[]);
    let f = match Function::start(&a.bin("interactions"), "interactions", &env).await {
        Ok(f) => f,
        Err(e) => {
            r.line(format!("failed to start: {e}"));
            return;
        }
    };
    // The deployment's own figures: its lookup budget, caps and the connector's per-call costs.
    let config = bridge_tests::config(
        &zendesk_env(&fake, &[])
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
    );
    let connector = bridge::connectors::build(&config).expect("connector builds");
    let costs = connector.lookup_costs(config.max_interactions);
    let cap = config.max_lookup_identifiers;
    let budget_ms = ms(config.lookup_budget);

    let _ = f.call("/interactions", &body).await; // first invocation: connections and lazy tables warm
    r.line(format!(
        "Median of {reps} lookups through the real `interactions` binary; ratio = bridge latency / upstream latency. \
         The bridge's lookup budget is {budget_ms:.0} ms; at most {cap} emails and {cap} phones are searched; \
         at most {} upstream requests are in flight.",
        bridge::lookup::MAX_IN_FLIGHT
    ));
    r.line("");
    r.line("| lookup | interactions found | upstream requests | most in flight | median latency (ms) | ratio to latency |");
    r.line("|---|---:|---:|---:|---:|---:|");
    let cases = [
        ("by external id", pop_body(json!({"contact_external_id": "5000001"}))),
        ("by 3 emails + 2 phones", body.clone()),
    ];
    for (what, body) in &cases {
        let p = pop_figures(&f, &fake, body, reps).await;
        let errors = if p.errors > 0 {
            format!(" ({} errors)", p.errors)
        } else {
            String::new()
        };
        r.line(format!(
            "| {what}{errors} | {} | {} | {} | {:.1} | {:.2}× |",
            p.found,
            p.requests,
            p.max_in_flight,
            p.median_ms,
            p.median_ms / latency_ms
        ));
    }
    r.line("");

    // Every upstream request hangs: the answer comes at the lookup budget.
    let hang_reps = if a.quick { 1 } else { 3 };
    let mut hang = vec![];
    let mut statuses = vec![];
    for _ in 0..hang_reps {
        fake.clear_faults();
        fake.fail_next(10_000, fake_zendesk::Fault::Delay(Duration::from_secs(3600)));
        match f.call("/interactions", &body).await {
            Ok((status, _, took)) => {
                hang.push(ms(took));
                statuses.push(status);
            }
            Err(e) => eprintln!("screen-pop, hanging upstream: {e}"),
        }
    }
    fake.clear_faults();
    let hung = median(hang);
    statuses.dedup();
    r.line("| every upstream request hanging | value |");
    r.line("|---|---:|");
    r.line(format!("| answer after, median of {hang_reps} (ms) | {hung:.1} |"));
    r.line(format!("| lookup budget (ms) | {budget_ms:.0} |"));
    r.line(format!("| answer − budget (ms) | {:.1} |", hung - budget_ms));
    r.line(format!("| status | {statuses:?} |"));
    r.line("");

    // A request with 2,000 emails: the cap keeps the upstream requests within the stated bound.
    let emails: Vec<String> = (0..2_000).map(|n| format!("caller{n}@example.org")).collect();
    let big = pop_body(json!({"contact_emails": emails}));
    fake.clear_requests();
    let outcome = f.call("/interactions", &big).await;
    let made = fake.requests().len();
    let bound = bridge::lookup::request_bound(cap.min(2_000), 0, &costs);
    r.line("| 2,000 emails in one request | value |");
    r.line("|---|---:|");
    r.line(format!("| body bytes | {} |", big.to_string().len()));
    match outcome {
        Ok((status, _, took)) => {
            r.line(format!("| status | {status} |"));
            r.line(format!("| answer after (ms) | {:.1} |", ms(took)));
        }
        Err(e) => r.line(format!("| failed | {e} |")),
    }
    r.line(format!("| upstream requests made | {made} |"));
    r.line(format!(
        "| stated maximum, (E + P)·s + min(V, (E + P)·C)·i + N·f with E = {}, P = 0, s = {}, i = {}, f = {} | {bound} |",
        cap.min(2_000),
        costs.search,
        costs.identifiers,
        costs.fetch
    ));
    r.line("");
    if let Some(kib) = f.peak_rss_kib() {
        rss.push(("interactions (screen-pop)".into(), kib));
    }
}

async fn load(r: &mut Report) {
    r.line("## Load: 200 concurrent interaction lookups against the local server");
    r.line("");
    let (data, body) = screen_pop_data();
    let fake = FakeZendesk::start(data).await.expect("fake zendesk starts");
    fake.set_latency(Duration::from_millis(20));
    let config = bridge_tests::config(&[
        ("BRIDGE_CONNECTOR", "zendesk"),
        ("BRIDGE_TOKEN_KEY", TOKEN_KEY),
        ("ZENDESK_BASE_URL", fake.base_url().as_str()),
    ]);
    let connector = bridge::connectors::build(&config).expect("connector builds");
    let app = Arc::new(bridge::App::new(config, connector).expect("app builds"));
    let server = bridge_tests::local::serve(app).await.expect("local server starts");
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build().expect("client");
    let url = format!("{}/interactions", server.url());
    // One lookup first: the figures below are the concurrent ones.
    let _ = client
        .post(&url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await;
    fake.clear_requests();
    let started = Instant::now();
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let client = client.clone();
            let url = url.clone();
            let body = body.to_string();
            tokio::spawn(async move {
                let t = Instant::now();
                let r = client.post(url).header("content-type", "application/json").body(body).send().await;
                let ok = match r {
                    Ok(r) => r.status().is_success() && r.text().await.is_ok_and(|b| b.starts_with('[')),
                    Err(_) => false,
                };
                (ok, ms(t.elapsed()))
            })
        })
        .collect();
    let mut lat = vec![];
    let mut errors = 0;
    for t in tasks {
        match t.await {
            Ok((ok, l)) => {
                lat.push(l);
                errors += usize::from(!ok);
            }
            Err(_) => errors += 1,
        }
    }
    let wall = started.elapsed();
    let requests = fake.requests().len();
    r.line("| figure | value |");
    r.line("|---|---:|");
    r.line("| concurrent lookups (3 emails + 2 phones each, 20 ms upstream latency) | 200 |");
    r.line(format!("| errors | {errors} |"));
    r.line(format!(
        "| upstream requests | {requests} ({:.1} per lookup) |",
        requests as f64 / 200.0
    ));
    r.line(format!(
        "| most upstream requests in flight (all lookups together; stated: each lookup at most {}, the process at most {}) | {} |",
        bridge::lookup::MAX_IN_FLIGHT,
        bridge::lookup::MAX_IN_FLIGHT_PER_PROCESS,
        fake.max_in_flight()
    ));
    r.line(format!(
        "| latency p50 / p99 / max (ms) | {:.1} / {:.1} / {:.1} |",
        median(lat.clone()),
        percentile(lat.clone(), 0.99),
        percentile(lat, 1.0)
    ));
    r.line(format!("| wall time (ms) | {:.1} |", ms(wall)));
    r.line("");
}

/// The PostgreSQL connector against a throwaway server: a full sync through the real `contacts` binary
/// next to a plain `COPY ... TO STDOUT` of the same rows in the same order, lookup latency by id, email and
/// phone through the real `interactions` binary, and peak RSS.
async fn postgres(a: &Args, r: &mut Report, rss: &mut Vec<(String, u64)>) {
    use bridge_tests::postgres::{contract_data, load, PgServer};
    use futures::StreamExt;

    let rows = if a.quick { 10_000 } else { 100_000 };
    r.line(format!("## PostgreSQL: full sync of {rows} rows and lookups"));
    r.line("");
    let pg = PgServer::start().await;
    let mut data = contract_data(rows, rows / 20, 21, chrono::Utc::now() - chrono::Duration::hours(1));
    // The contacts looked up below, and about one interaction per contact besides theirs (five per contact
    // would only slow the load).
    let step = (rows / if a.quick { 10 } else { 50 }).max(1);
    let sampled: std::collections::HashSet<String> = data
        .contacts
        .iter()
        .step_by(step)
        .filter(|c| !c.contact.emails.is_empty() && !c.contact.phones.is_empty())
        .map(|c| c.contact.id.clone())
        .collect();
    let mut kept = 0usize;
    data.interactions.retain(|i| {
        kept += 1;
        kept <= rows || sampled.contains(&i.contact_id)
    });
    let loading = Instant::now();
    load(&pg, &data).await;
    eprintln!("loaded {rows} contacts in {:.1} s", loading.elapsed().as_secs_f64());
    let mut env: Vec<(String, String)> = pg.app_pairs();
    env.push(("AWS_LAMBDA_FUNCTION_TIMEOUT".into(), "29".into()));
    // Closed by default under a Lambda runtime: the bench's synchroniser presents no bridge token.
    env.push(("BRIDGE_ALLOW_UNAUTHENTICATED".into(), "true".into()));

    // The same rows, in the same order, as fast as PostgreSQL can hand them out.
    let admin = pg.admin().await;
    let copy_sql = format!(
        "COPY (SELECT id, updated_at, name, company, title, emails, phones, photo_url, address, websites, twitter, url \
         FROM talkdesk_contacts ORDER BY updated_at, {}) TO STDOUT",
        bridge::connectors::postgres::sql::SORT_KEY_SQL
    );
    let mut copy_times = vec![];
    let mut copy_bytes = 0usize;
    for _ in 0..3 {
        let started = Instant::now();
        match admin.copy_out(copy_sql.as_str()).await {
            Ok(stream) => {
                let mut stream = Box::pin(stream);
                copy_bytes = 0;
                while let Some(chunk) = stream.next().await {
                    copy_bytes += chunk.map(|c| c.len()).unwrap_or(0);
                }
                copy_times.push(started.elapsed().as_secs_f64());
            }
            Err(e) => {
                r.line(format!("COPY failed: {}", bridge_tests::postgres::show(&e)));
                return;
            }
        }
    }
    let copy_wall = median(copy_times);

    let f = match Function::start(&a.bin("contacts"), "contacts", &env).await {
        Ok(f) => f,
        Err(e) => {
            r.line(format!("contacts failed to start: {e}"));
            return;
        }
    };
    let started = Instant::now();
    let mut offset: Option<String> = None;
    let (mut round_trips, mut contacts, mut bytes, mut errors) = (0usize, 0usize, 0usize, 0usize);
    loop {
        let body = json!({"auth": {}, "meta": {"offset": offset}});
        match f.call("/contacts", &body).await {
            Ok((200, body, _)) => {
                round_trips += 1;
                bytes += body.len();
                let v: Value = serde_json::from_str(&body).unwrap_or_default();
                contacts += v["contacts"].as_array().map_or(0, Vec::len);
                match v["next_offset"].as_str() {
                    Some(o) => offset = Some(o.to_string()),
                    None => break,
                }
            }
            other => {
                errors += 1;
                eprintln!("postgres full sync: {other:?}");
                if errors > 20 {
                    break;
                }
            }
        }
    }
    let wall = started.elapsed().as_secs_f64();
    if let Some(kib) = f.peak_rss_kib() {
        rss.push((format!("contacts (PostgreSQL full sync of {rows})"), kib));
    }
    drop(f);

    // Lookups of sampled contacts, each identifier kind on its own.
    let samples: Vec<&bridge::connectors::sandbox::SandboxContact> =
        data.contacts.iter().filter(|c| sampled.contains(&c.contact.id)).collect();
    let interactions = match Function::start(&a.bin("interactions"), "interactions", &env).await {
        Ok(f) => f,
        Err(e) => {
            r.line(format!("interactions failed to start: {e}"));
            return;
        }
    };
    // Warm: the connection, and the phone-number metadata the first phone lookup loads.
    let warm = json!({"auth": {}, "data": {"contact_external_id": "warm-up", "contact_phones": ["+14155550000"]}});
    let cold = interactions
        .call("/interactions", &warm)
        .await
        .map(|(_, _, took)| ms(took))
        .unwrap_or(f64::NAN);
    let mut lookups: Vec<(&str, Vec<f64>, usize)> = vec![("id", vec![], 0), ("email", vec![], 0), ("phone", vec![], 0)];
    for c in &samples {
        let bodies = [
            json!({"auth": {}, "data": {"contact_external_id": c.contact.id}}),
            json!({"auth": {}, "data": {"contact_emails": [c.contact.emails[0].to_uppercase()]}}),
            json!({"auth": {}, "data": {"contact_phones": [c.contact.phones[0]]}}),
        ];
        for (slot, body) in lookups.iter_mut().zip(bodies) {
            match interactions.call("/interactions", &body).await {
                Ok((200, b, took)) => {
                    slot.1.push(ms(took));
                    slot.2 += serde_json::from_str::<Value>(&b)
                        .ok()
                        .and_then(|v| v.as_array().map(Vec::len))
                        .unwrap_or(0);
                }
                other => eprintln!("postgres lookup by {}: {other:?}", slot.0),
            }
        }
    }
    if let Some(kib) = interactions.peak_rss_kib() {
        rss.push(("interactions (PostgreSQL lookups)".into(), kib));
    }
    drop(interactions);
    drop(pg);

    r.line(format!(
        "A throwaway PostgreSQL on 127.0.0.1 (`bridge_tests::postgres`, fsync off) with the README's tables and indexes, \
         {rows} contacts ({} sharing one `updated_at`, numeric and text ids) and {} interactions; the bridge's defaults \
         (1000 contacts a Talkdesk page, 1000 rows a statement).",
        rows / 20,
        data.interactions.len()
    ));
    r.line("");
    r.line("| figure | value |");
    r.line("|---|---:|");
    r.line(format!("| contacts returned | {contacts} |"));
    r.line(format!("| Talkdesk round trips (invocations) | {round_trips} |"));
    r.line(format!("| error responses | {errors} |"));
    r.line(format!("| bytes returned to Talkdesk | {bytes} ({:.1} MB) |", bytes as f64 / 1e6));
    r.line(format!("| full sync wall time | {wall:.2} s |"));
    r.line(format!("| contacts per second | {:.0} |", contacts as f64 / wall));
    r.line(format!(
        "| `COPY (SELECT ... ORDER BY updated_at, sort key) TO STDOUT` of the same rows (median of 3) | {copy_wall:.2} s ({:.1} MB, {:.0} rows/s) |",
        copy_bytes as f64 / 1e6,
        rows as f64 / copy_wall
    ));
    r.line(format!("| ratio full sync / COPY | {:.1}× |", wall / copy_wall));
    r.line(format!(
        "| first lookup of a fresh `interactions` process (opens the connection, loads phone metadata) | {cold:.1} ms |"
    ));
    for (kind, lat, found) in &lookups {
        r.line(format!(
            "| lookup by {kind}: p50 / p99 over {} lookups ({found} interactions found) | {:.1} / {:.1} ms |",
            lat.len(),
            median(lat.clone()),
            percentile(lat.clone(), 0.99)
        ));
    }
    r.line("");
}

#[tokio::main]
async fn main() {
    let a = args();
    let mut needed: Vec<&str> = vec![];
    if a.runs("cold-init") {
        needed.extend(["contacts", "interactions", "hello-lambda"]);
    }
    if a.runs("warm") || a.runs("full-sync") {
        needed.push("contacts");
    }
    if a.runs("screen-pop") {
        needed.push("interactions");
    }
    if a.runs("postgres") || a.runs("hubspot") {
        needed.extend(["contacts", "interactions"]);
    }
    for bin in needed {
        if !a.bin(bin).exists() {
            eprintln!(
                "{} is missing: run `cargo build --release -p contacts -p interactions -p bridge-tests` first (make bench does)",
                a.bin(bin).display()
            );
            std::process::exit(2);
        }
    }
    let mut r = Report { md: String::new() };
    r.line("# Benchmarks");
    r.line("");
    r.line("Written by `make bench` (`tests/src/bin/bench.rs`): the release binaries, unmodified, under a local Lambda Runtime API emulator (`tests/src/runtime_emulator.rs`) on 127.0.0.1, against the fake Zendesk and a throwaway PostgreSQL. Figures from one run on one machine; they are not asserted anywhere.");
    r.line("");
    r.line(format!("Machine: {}.", machine()));
    r.line(match &a.pgo {
        Some(profile) => format!(
            "contacts and interactions: release builds optimised with the profile `{profile}` (profile-guided \
             optimisation, `pgo/README.md`), as `make sam-build` builds them for arm64 with its own; hello-lambda: a plain \
             release build."
        ),
        None => "contacts, interactions and hello-lambda: release builds, without a profile.".to_string(),
    });
    r.line(format!("Date: {}.", chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")));
    r.line("");
    let mut rss: Vec<(String, u64)> = vec![];
    if a.runs("cold-init") {
        let fake = FakeZendesk::start(FakeData::default()).await.expect("fake zendesk starts");
        cold_init(&a, &mut r, &fake, &mut rss).await;
    }
    if a.runs("warm") {
        warm(&a, &mut r, &mut rss).await;
    }
    if a.runs("screen-pop") {
        screen_pop(&a, &mut r, &mut rss).await;
    }
    if a.runs("full-sync") {
        full_sync(&a, &mut r, &mut rss).await;
    }
    if a.runs("load") {
        load(&mut r).await;
    }
    if a.runs("postgres") {
        postgres(&a, &mut r, &mut rss).await;
    }
    if a.runs("hubspot") {
        hubspot(&a, &mut r, &mut rss).await;
    }
    if !a.only.is_empty() {
        for (what, kib) in &rss {
            r.line(format!("peak RSS, {what}: {:.1} MiB", *kib as f64 / 1024.0));
        }
        write_report(&a, &mut r);
        return;
    }

    // Peak RSS of an idle hello-world for reference.
    if let Ok(mut f) = Function::start(&a.bin("hello-lambda"), "hello-lambda", &[]).await {
        let _ = f.call("/hello", &json!({})).await;
        if let Some(kib) = f.peak_rss_kib() {
            rss.push(("hello-lambda (one invocation)".into(), kib));
        }
        f.stop();
    }
    r.line("## Peak RSS (`VmHWM` from `/proc/<pid>/status`, read before the process is stopped)");
    r.line("");
    r.line("| process, during | peak RSS (MiB) |");
    r.line("|---|---:|");
    for (what, kib) in &rss {
        r.line(format!("| {what} | {:.1} |", *kib as f64 / 1024.0));
    }
    r.line("");
    r.line("## Binary sizes");
    r.line("");
    r.line(
        "Host (x86_64) release builds with the workspace's `[profile.release]` (and the functions with the profile named \
         above); `make sam-build` ships the same code cross-compiled for arm64 as `bootstrap`, with the arm64 profile, \
         zipped (deflate, as SAM uploads it) into the deployment package. The arm64 rows appear when `.aws-sam/build` \
         holds a build.",
    );
    r.line("");
    r.line("| binary | size (MiB) | zipped (MB) |");
    r.line("|---|---:|---:|");
    let mut files: Vec<(String, PathBuf)> = ["contacts", "interactions", "hello-lambda"]
        .iter()
        .map(|b| (b.to_string(), a.bin(b)))
        .collect();
    for (name, dir) in [("ContactsFunction", "contacts"), ("InteractionsFunction", "interactions")] {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../.aws-sam/build/{name}/bootstrap"));
        if p.exists() {
            files.push((format!("{dir} arm64 `bootstrap` (.aws-sam)"), p));
        }
    }
    for (name, path) in files {
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let zipped = zipped_size(&path).map_or("n/a".to_string(), |z| format!("{:.2}", z as f64 / 1e6));
        r.line(format!("| {name} | {:.2} | {zipped} |", size as f64 / 1024.0 / 1024.0));
    }
    r.line("");
    write_report(&a, &mut r);
}

/// The HubSpot connector: a full sync through the real `contacts` binary against the fake HubSpot with
/// HubSpot's limits (5 searches a second, a tie of a tenth of the contacts in one millisecond), and
/// screen-pops through the real `interactions` binary at 100 ms upstream latency.
async fn hubspot(a: &Args, r: &mut Report, rss: &mut Vec<(String, u64)>) {
    use bridge_tests::fake_hubspot::{self as hs, FakeHubSpot};

    let contacts = if a.quick { 10_000 } else { 100_000 };
    let tie = contacts / 10;
    r.line(format!("## HubSpot: full sync of {contacts} contacts and screen-pops"));
    r.line("");
    let gen_started = Instant::now();
    let data = hs::generate(hs::Generate {
        contacts,
        tie,
        seed: 5,
        latest_ms: (chrono::Utc::now().timestamp() - 7_200) * 1000,
    });
    eprintln!(
        "generated {contacts} HubSpot contacts in {:.1} s",
        gen_started.elapsed().as_secs_f64()
    );
    let fake = match FakeHubSpot::start(data).await {
        Ok(f) => f,
        Err(e) => {
            r.line(format!("failed to start the fake: {e}"));
            return;
        }
    };
    let live = fake.with_data(|d| d.live().count());
    let mut env: Vec<(String, String)> = hs::app_pairs(&fake.base_url());
    env.push(("BRIDGE_ALLOW_UNAUTHENTICATED".into(), "true".into()));
    env.push(("AWS_LAMBDA_FUNCTION_TIMEOUT".into(), "29".into()));
    let f = match Function::start(&a.bin("contacts"), "contacts", &env).await {
        Ok(f) => f,
        Err(e) => {
            r.line(format!("failed to start: {e}"));
            return;
        }
    };
    let started = Instant::now();
    let (mut got, mut pages, mut empty, mut errors, mut completed) = (0usize, 0usize, 0usize, 0usize, false);
    let mut offset: Option<String> = None;
    // A synchroniser that never retries: the first non-200 page ends the sync.
    loop {
        pages += 1;
        let body = json!({"auth": hs::auth_json(), "meta": {"offset": offset}});
        match f.call("/contacts", &body).await {
            Ok((200, body, _)) => {
                let v: Value = serde_json::from_str(&body).unwrap_or_default();
                let n = v["contacts"].as_array().map_or(0, Vec::len);
                got += n;
                match v["next_offset"].as_str() {
                    Some(o) => {
                        empty += usize::from(n == 0);
                        offset = Some(o.to_string());
                    }
                    None => {
                        completed = true;
                        break;
                    }
                }
            }
            other => {
                errors += 1;
                eprintln!("hubspot full sync: {other:?}");
                break;
            }
        }
    }
    let wall = started.elapsed();
    let requests = fake.requests();
    let searches = requests.iter().filter(|q| q.path.ends_with("/search")).count();
    let drains = requests
        .iter()
        .filter(|q| q.path.ends_with("/search") && q.body["sorts"][0]["propertyName"] == "hs_object_id")
        .count();
    let hits = fake.limit_hits().len();
    if let Some(kib) = f.peak_rss_kib() {
        rss.push((format!("contacts (HubSpot full sync of {contacts})"), kib));
    }
    drop(f);
    let per_k = |n: usize| format!("{:.2}", 1000.0 * n as f64 / got.max(1) as f64);
    r.line(format!(
        "The fake holds {contacts} contacts (about 2 % archived or merged away), {tie} of them sharing one millisecond; HubSpot's limits apply (5 searches a second, 190 other requests per rolling 10 s, the 10,000-result cap). The synchroniser never retries. Defaults throughout (`BRIDGE_PAGE_SIZE` 1000)."
    ));
    r.line("");
    r.line("| figure | value |");
    r.line("|---|---:|");
    r.line(format!("| live contacts (to sync) | {live} |"));
    r.line(format!("| contacts returned | {got} |"));
    r.line(format!(
        "| sync completed without a retry | {} |",
        if completed { "yes" } else { "no" }
    ));
    r.line(format!("| error responses | {errors} |"));
    r.line(format!("| Talkdesk round trips (of them empty pages) | {pages} ({empty}) |"));
    r.line(format!("| search requests (of them tie drains by id) | {searches} ({drains}) |"));
    r.line(format!(
        "| **search requests per 1000 contacts** (goal ≤ 5.5) | **{}** |",
        per_k(searches)
    ));
    r.line(format!(
        "| upstream requests in all per 1000 contacts | {} |",
        per_k(requests.len())
    ));
    r.line(format!("| answers of 429 | {hits} |"));
    r.line(format!("| wall time | {:.2} s |", wall.as_secs_f64()));
    let floor = searches as f64 / 5.0;
    r.line(format!("| floor the search limit sets ({searches} ÷ 5 per s) | {floor:.1} s |"));
    r.line("");

    // Screen-pops at 100 ms upstream latency.
    let reps = if a.quick { 3 } else { 9 };
    let pop = hs::generate(hs::Generate {
        contacts: 50,
        tie: 0,
        seed: 9,
        latest_ms: (chrono::Utc::now().timestamp() - 7_200) * 1000,
    });
    let (target, email, phone) = pop
        .live()
        .find(|c| pop.ticket_links.contains_key(&c.id) && pop.call_links.contains_key(&c.id) && c.props.contains_key("phone"))
        .map(|c| {
            let prop = |p: &str| c.props.get(p).cloned().unwrap_or_default();
            (c.id, prop("email"), prop("phone"))
        })
        .unwrap_or_default();
    let fake = match FakeHubSpot::start(pop).await {
        Ok(f) => f,
        Err(e) => {
            r.line(format!("failed to start the fake: {e}"));
            return;
        }
    };
    fake.set_latency(POP_LATENCY);
    let mut env: Vec<(String, String)> = hs::app_pairs(&fake.base_url());
    env.push(("BRIDGE_ALLOW_UNAUTHENTICATED".into(), "true".into()));
    let f = match Function::start(&a.bin("interactions"), "interactions", &env).await {
        Ok(f) => f,
        Err(e) => {
            r.line(format!("failed to start: {e}"));
            return;
        }
    };
    let body = |data: Value| json!({"auth": hs::auth_json(), "meta": {"interaction_types": ["ticket", "call"]}, "data": data});
    let cases = [
        (
            "by external id, cold (account details and pipelines read)",
            body(json!({"contact_external_id": target.to_string()})),
            1,
        ),
        ("by external id", body(json!({"contact_external_id": target.to_string()})), reps),
        ("by email", body(json!({"contact_emails": [email]})), reps),
        (
            "by 3 emails and 2 phones (two searches at once)",
            body(json!({
                "contact_emails": ["nobody@example.com", email, "someone@example.org"],
                "contact_phones": [phone, "+1 212 555 0199"]
            })),
            reps,
        ),
    ];
    r.line(format!(
        "Screen-pops through the real `interactions` binary, {:.0} ms upstream latency, tickets and calls (median of the repetitions).",
        ms(POP_LATENCY)
    ));
    r.line("");
    r.line("| lookup | repetitions | interactions found | upstream requests | median latency (ms) | ratio to latency |");
    r.line("|---|---:|---:|---:|---:|---:|");
    for (what, b, n) in &cases {
        let (mut lat, mut found, mut upstream, mut errors) = (vec![], 0, 0, 0);
        for _ in 0..*n {
            fake.clear_requests();
            match f.call("/interactions", b).await {
                Ok((200, out, took)) => {
                    lat.push(ms(took));
                    found = serde_json::from_str::<Value>(&out)
                        .ok()
                        .and_then(|v| v.as_array().map(Vec::len))
                        .unwrap_or(0);
                    upstream = fake.requests().len();
                }
                other => {
                    errors += 1;
                    eprintln!("hubspot screen-pop: {other:?}");
                }
            }
        }
        let m = median(lat);
        let errors = if errors > 0 { format!(" ({errors} errors)") } else { String::new() };
        r.line(format!(
            "| {what}{errors} | {n} | {found} | {upstream} | {m:.1} | {:.2}× |",
            m / ms(POP_LATENCY)
        ));
    }
    r.line("");
    if let Some(kib) = f.peak_rss_kib() {
        rss.push(("interactions (HubSpot screen-pop)".into(), kib));
    }
}

fn write_report(a: &Args, r: &mut Report) {
    let Some(out) = &a.out else { return };
    // The hand-kept "Before and after" section (figures of earlier runs, with the change that moved them)
    // is carried over from the file being replaced.
    if let Some(history) = std::fs::read_to_string(out)
        .ok()
        .and_then(|old| old.find(HISTORY_HEADING).map(|at| old[at..].to_string()))
    {
        r.md.push_str(&history);
    }
    if let Err(e) = std::fs::write(out, &r.md) {
        eprintln!("{}: {e}", out.display());
        std::process::exit(1);
    }
    println!("wrote {}", out.display());
}
