#![allow(dead_code)]
use std::path::PathBuf;
use std::process::{Command, Output};

/// `../shared/data/<rel>` beside the project, or `None` with a skip message.
pub fn shared(rel: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(rel);
    if p.exists() {
        Some(p.canonicalize().unwrap())
    } else {
        eprintln!("skipped: ../shared/data/{rel} not found (shared test data absent)");
        None
    }
}

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cellwarden"))
}

pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run cellwarden")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Parses JSONL alerts.
pub fn alerts(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("alert line is JSON"))
        .collect()
}
