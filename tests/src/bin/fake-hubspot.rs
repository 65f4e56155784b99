//! `fake-hubspot [--port N] [--contacts N] [--tie N] [--seed N] [--search-per-second N]`: serves the fake
//! HubSpot with generated data on 127.0.0.1, so the local bridge can run against it
//! (`BRIDGE_CONNECTOR=hubspot`, `HUBSPOT_BASE_URL`). HubSpot's limits apply by default: 5 searches a second,
//! 190 other requests per rolling 10 s; `--search-per-second 0` lifts the search limit.

use bridge_tests::fake_hubspot::{self, FakeHubSpot, Generate, Limits};

fn usage() -> ! {
    eprintln!("usage: fake-hubspot [--port N] [--contacts N] [--tie N] [--seed N] [--search-per-second N]");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut port: u16 = 8082;
    let mut contacts = 300usize;
    let mut tie = 0usize;
    let mut seed = 7u64;
    let mut per_second: Option<u32> = Some(5);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--port" => port = value().parse().unwrap_or_else(|_| usage()),
            "--contacts" => contacts = value().parse().unwrap_or_else(|_| usage()),
            "--tie" => tie = value().parse().unwrap_or_else(|_| usage()),
            "--seed" => seed = value().parse().unwrap_or_else(|_| usage()),
            "--search-per-second" => {
                let n: u32 = value().parse().unwrap_or_else(|_| usage());
                per_second = (n > 0).then_some(n);
            }
            _ => usage(),
        }
    }
    if tie > contacts {
        usage()
    }
    // Everything is at least two hours old, so the first sync sees all of it.
    let latest_ms = (chrono::Utc::now().timestamp() - 7_200) * 1000;
    let data = fake_hubspot::generate(Generate {
        contacts,
        tie,
        seed,
        latest_ms,
    });
    let fake = match FakeHubSpot::start_on(data, std::net::SocketAddr::from(([127, 0, 0, 1], port))).await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("fake-hubspot: cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1)
        }
    };
    fake.set_limits(Limits {
        search_per_second: per_second,
        ..Limits::default()
    });
    let live = fake.with_data(|d| d.live().count());
    println!("fake HubSpot on {} ({live} live contacts)", fake.base_url());
    println!("  HUBSPOT_BASE_URL={}", fake.base_url());
    println!("  auth: {}", fake_hubspot::auth_json());
    std::future::pending::<()>().await;
}
