//! `fake-zendesk [--port N] [--users N] [--seed N]`: serves the fake Zendesk with generated data on
//! 127.0.0.1, so the local bridge can run against it:
//!
//! ```text
//! fake-zendesk --port 8081 &
//! BRIDGE_CONNECTOR=zendesk ZENDESK_BASE_URL=http://127.0.0.1:8081 BRIDGE_TOKEN_KEY=... make run
//! talkdesk-sim --base-url http://127.0.0.1:9000 --auth '{"subdomain":"acme","email":"admin@acme.test","api_token":"fake-api-token"}'
//! ```

use bridge_tests::fake_zendesk::{self, FakeZendesk, Generate};

fn usage() -> ! {
    eprintln!("usage: fake-zendesk [--port N] [--users N] [--seed N]");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut port: u16 = 8081;
    let mut users = 300usize;
    let mut seed = 7u64;
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--port" => port = value().parse().unwrap_or_else(|_| usage()),
            "--users" => users = value().parse().unwrap_or_else(|_| usage()),
            "--seed" => seed = value().parse().unwrap_or_else(|_| usage()),
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
    println!("fake Zendesk on {} ({n_users} users, {n_tickets} tickets)", fake.base_url());
    println!("  ZENDESK_BASE_URL={}", fake.base_url());
    println!("  auth: {}", fake_zendesk::auth_json());
    // Serves until the process is stopped (Ctrl-C).
    std::future::pending::<()>().await;
}
