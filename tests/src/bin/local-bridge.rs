//! `local-bridge [--port N]`: the real handlers (`contacts::handle`, `interactions::handle`) on
//! 127.0.0.1 as API Gateway routes them (`bridge_tests::local`), configured from the environment like a
//! Lambda function (`App::from_env`: the sandbox by default). No `cargo lambda`: this is how `make test`
//! serves the bridge to the API fuzzer (schemathesis). Serves until the process is stopped.

use std::sync::Arc;

fn usage() -> ! {
    eprintln!("usage: local-bridge [--port N]");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut port: u16 = 9000;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => port = args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| usage()),
            _ => usage(),
        }
    }
    let app = match bridge::App::from_env().await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("local-bridge: {e}");
            std::process::exit(1)
        }
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let bridge = match bridge_tests::local::serve_on(Arc::new(app), addr).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("local-bridge: cannot listen on {addr}: {e}");
            std::process::exit(1)
        }
    };
    eprintln!("local bridge on {}", bridge.url());
    std::future::pending::<()>().await;
}
