//! `fake-zendesk [--port N] [--users N] [--seed N] [--export-limit N/SECS]`: serves the fake Zendesk with
//! generated data on 127.0.0.1, so the local bridge can run against it (README, "Testing against a fake
//! Zendesk"). `--export-limit 10/60` limits the incremental export to 10 requests per 60-second window, with
//! Zendesk's headers and 429 past it.

use bridge_tests::fake_zendesk::{self, FakeZendesk, Generate};

fn usage() -> ! {
    eprintln!("usage: fake-zendesk [--port N] [--users N] [--seed N] [--export-limit N/SECS]");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut port: u16 = 8081;
    let mut users = 300usize;
    let mut seed = 7u64;
    let mut export_limit: Option<(u32, std::time::Duration)> = None;
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--port" => port = value().parse().unwrap_or_else(|_| usage()),
            "--users" => users = value().parse().unwrap_or_else(|_| usage()),
            "--seed" => seed = value().parse().unwrap_or_else(|_| usage()),
            "--export-limit" => {
                let v = value();
                let (n, secs) = v.split_once('/').unwrap_or_else(|| usage());
                let n: u32 = n.parse().unwrap_or_else(|_| usage());
                let secs: u64 = secs.parse().unwrap_or_else(|_| usage());
                if n == 0 || secs == 0 {
                    usage()
                }
                export_limit = Some((n, std::time::Duration::from_secs(secs)));
            }
            _ => usage(),
        }
    }
    // Everything is at least two hours old, so the first sync sees all of it.
    let latest = chrono::Utc::now().timestamp() - 7_200;
    let data = fake_zendesk::generate(Generate { users, seed, latest });
    let (n_users, n_tickets) = (data.users.len(), data.tickets.len());
    let fake = match FakeZendesk::start_on(data, std::net::SocketAddr::from(([127, 0, 0, 1], port))).await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("fake-zendesk: cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1)
        }
    };
    fake.set_export_rate_limit(export_limit);
    println!("fake Zendesk on {} ({n_users} users, {n_tickets} tickets)", fake.base_url());
    if let Some((n, window)) = export_limit {
        println!("  export rate limit: {n} requests per {} s", window.as_secs());
    }
    println!("  ZENDESK_BASE_URL={}", fake.base_url());
    println!("  auth: {}", fake_zendesk::auth_json());
    // Serves until the process is stopped (Ctrl-C).
    std::future::pending::<()>().await;
}
