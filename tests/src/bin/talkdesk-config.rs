//! `talkdesk-config (--base-url URL | --stack-outputs FILE) --logo-url URL --icon-url URL [--connector NAME]
//! [--name NAME] [--credentials-in-ssm] [--no-bridge-token]`: prints the JSON document that registers this
//! deployment's integration with Talkdesk (see `bridge_tests::talkdesk_config`).

use bridge_tests::talkdesk_config::{parse_args, run, USAGE};

fn main() {
    let options = parse_args(std::env::args().skip(1)).unwrap_or_else(|e| {
        eprintln!("{e}\n{USAGE}");
        std::process::exit(2)
    });
    let env = |k: &str| std::env::var(k).ok();
    let read = |path: &str| std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"));
    match run(&options, &env, &read) {
        Ok(doc) => println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default()),
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            std::process::exit(2)
        }
    }
}
