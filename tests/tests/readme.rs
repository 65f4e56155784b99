//! The README cannot drift from the project: what it names exists, and what the code reads it documents.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use regex::Regex;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn rust_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_function_and_event_file_the_readme_names_exists() {
    let readme = read("README.md");
    let template = read("template.yaml");
    let logical_ids: BTreeSet<&str> = Regex::new(r"\b([A-Z][A-Za-z]+Function)\b")
        .unwrap()
        .captures_iter(&readme)
        .map(|c| c.get(1).unwrap().as_str())
        .collect();
    assert!(logical_ids.contains("ContactsFunction") && logical_ids.contains("InteractionsFunction"));
    for id in &logical_ids {
        assert!(
            template.contains(&format!("\n  {id}:\n")),
            "README names {id}, which template.yaml does not define"
        );
    }
    let events: BTreeSet<&str> = Regex::new(r"events/([a-z0-9-]+\.json)")
        .unwrap()
        .captures_iter(&readme)
        .map(|c| c.get(1).unwrap().as_str())
        .collect();
    assert!(!events.is_empty());
    for e in events {
        assert!(
            root().join("events").join(e).is_file(),
            "README names events/{e}, which does not exist"
        );
    }
}

#[test]
fn every_make_target_the_readme_names_exists() {
    let readme = read("README.md");
    let makefile = read("Makefile");
    let targets: BTreeSet<&str> = Regex::new(r"`make ([a-z-]+)")
        .unwrap()
        .captures_iter(&readme)
        .map(|c| c.get(1).unwrap().as_str())
        .collect();
    assert!(targets.contains("run") && targets.contains("test"));
    for t in targets {
        assert!(
            makefile.lines().any(|l| l.starts_with(&format!("{t}:"))),
            "README names `make {t}`, which the Makefile lacks"
        );
    }
    assert!(
        read(".ci/run").lines().any(|l| l.trim() == "make test"),
        ".ci/run must run the README's test command"
    );
}

#[test]
fn every_environment_variable_the_code_reads_is_documented() {
    let readme = read("README.md");
    let mut files = Vec::new();
    rust_sources(&root().join("shared/src"), &mut files);
    rust_sources(&root().join("tests/src"), &mut files);
    let var = Regex::new(r#""((?:BRIDGE|ZENDESK|SANDBOX|POSTGRES|HUBSPOT)_[A-Z_]+)""#).unwrap();
    let mut read_by_code = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for c in var.captures_iter(&text) {
            // HubSpot's association category, a value in the fake's answers, not a variable.
            if c.get(1).unwrap().as_str() != "HUBSPOT_DEFINED" {
                read_by_code.insert(c.get(1).unwrap().as_str().to_string());
            }
        }
    }
    assert!(read_by_code.contains("BRIDGE_CONNECTOR") && read_by_code.contains("ZENDESK_BASE_URL"));
    assert!(read_by_code.contains("POSTGRES_STATEMENT_TIMEOUT_MS") && read_by_code.contains("POSTGRES_TEST_URL"));
    assert!(read_by_code.contains("HUBSPOT_BASE_URL") && read_by_code.contains("HUBSPOT_PHOTO_PROPERTY"));
    let undocumented: Vec<&String> = read_by_code.iter().filter(|v| !readme.contains(&format!("`{v}`"))).collect();
    assert!(undocumented.is_empty(), "README does not document {undocumented:?}");
}
