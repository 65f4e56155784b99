//! What `sam build` compiles into the deployment package: it runs `cargo lambda build --release --bin <function>`
//! from the workspace root, naming no package, so the dependency features are those of the workspace's
//! default members. The test crate's own (aws-lc for reqwest's TLS, the AWS SDK's default HTTPS client with
//! HTTP/2) must not reach the functions: one crypto library, one HTTP client (issue 14, BENCHMARKS.md).

use std::path::Path;
use std::process::Command;

/// The packages `cargo tree` resolves for a build that names no package, one per line.
fn packages_of_a_build_naming_no_package() -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "--locked",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn the_deployed_functions_link_one_crypto_library_and_one_http_client() {
    let tree = packages_of_a_build_naming_no_package();
    for wanted in ["contacts v", "interactions v", "bridge v", "ring v", "reqwest v", "aws-sdk-ssm v"] {
        assert!(tree.lines().any(|l| l.starts_with(wanted)), "{wanted} is missing from:\n{tree}");
    }
    for unwanted in [
        "bridge-tests v",
        "aws-lc-rs v",
        "aws-lc-sys v",
        "aws-smithy-http-client v",
        "h2 v",
        "aws-config v",
    ] {
        assert!(
            !tree.lines().any(|l| l.starts_with(unwanted)),
            "{unwanted} is in the deployed build"
        );
    }
}
