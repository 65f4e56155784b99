//! `talkdesk-sim --base-url URL [--auth JSON] [--bearer TOKEN] [--samples N] [--no-retry]`: runs the
//! conformance kit against a bridge and exits non-zero on any violation. By default a contacts page
//! answered 429 or 5xx is sent again up to 3 times (after its `Retry-After`); `--no-retry` behaves like a
//! Talkdesk that never retries a page: any non-200 page fails the sync.

use bridge_tests::sim::{self, SimConfig};

fn usage() -> ! {
    eprintln!("usage: talkdesk-sim --base-url URL [--auth JSON] [--bearer TOKEN] [--samples N] [--max-pages N] [--no-retry]");
    eprintln!("  the bearer token may also come from TALKDESK_SIM_BEARER");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut cfg: Option<SimConfig> = None;
    let mut auth = None;
    let mut bearer = std::env::var("TALKDESK_SIM_BEARER").ok().filter(|b| !b.is_empty());
    let mut samples = 10;
    let mut max_pages = 10_000;
    let mut page_retries = 3;
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--base-url" => cfg = Some(SimConfig::new(value())),
            "--auth" => {
                auth = Some(sim::parse_auth(&value()).unwrap_or_else(|e| {
                    eprintln!("{e}");
                    std::process::exit(2)
                }))
            }
            "--bearer" => bearer = Some(value()),
            "--samples" => samples = value().parse().unwrap_or_else(|_| usage()),
            "--max-pages" => max_pages = value().parse().unwrap_or_else(|_| usage()),
            "--no-retry" => page_retries = 0,
            _ => usage(),
        }
    }
    let Some(mut cfg) = cfg else { usage() };
    if let Some(a) = auth {
        cfg.auth = a;
    }
    cfg.bearer = bearer;
    cfg.samples = samples;
    cfg.max_pages = max_pages;
    cfg.page_retries = page_retries;
    println!("talkdesk-sim against {}", cfg.base_url);
    let report = sim::run(cfg).await;
    print!("{}", report.render());
    std::process::exit(if report.passed() { 0 } else { 1 });
}
