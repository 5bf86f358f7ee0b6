//! `simulate` then the real binary over its logs: every targeted subscriber found, few others,
//! the exfiltration found; the benign operator exposes nobody and raises no exfiltration alert.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;

fn simulate(dir: &Path, seed: u64, scenarios: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "simulate".to_owned(),
        "--out".to_owned(),
        dir.to_str().unwrap().to_owned(),
        "--seed".to_owned(),
        seed.to_string(),
        "--subscribers".to_owned(),
        "20000".to_owned(),
        "--days".to_owned(),
        "10".to_owned(),
    ];
    for s in scenarios {
        args.push("--scenario".into());
        args.push(s.to_string());
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&a);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_str(&std::fs::read_to_string(dir.join("ground-truth.json")).unwrap()).unwrap()
}

fn scope(dir: &Path) -> serde_json::Value {
    let w = dir.join("watchlist.txt");
    let out = run(&[
        "scope",
        dir.to_str().unwrap(),
        "--watchlist",
        w.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

#[test]
fn attacks_are_scoped_for_several_seeds() {
    for seed in 1..=3 {
        let dir = tempfile::tempdir().unwrap();
        let truth = simulate(dir.path(), seed, &["softcell", "insider"]);
        let targets: BTreeSet<String> = truth["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["msisdn"].as_str().unwrap().to_owned())
            .collect();
        assert!(
            targets.len() >= 18,
            "seed {seed}: {} targets",
            targets.len()
        );
        let x = scope(dir.path());
        let found: BTreeSet<String> = x["subscribers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect();
        let hit = targets.intersection(&found).count() as f64;
        assert_eq!(
            hit,
            targets.len() as f64,
            "seed {seed}: recall below 1: missing {:?}",
            targets.difference(&found).collect::<Vec<_>>()
        );
        assert!(
            hit / found.len() as f64 >= 0.95,
            "seed {seed}: precision {} ({} found)",
            hit / found.len() as f64,
            found.len()
        );
        // Where the data went: the relay, from the jump host.
        let ex = x["exfiltration"].as_array().unwrap();
        assert!(
            ex.iter()
                .any(|e| e["src_ip"] == "10.20.0.5" && e["dst_ip"] == "203.0.113.66"),
            "seed {seed}: {ex:#?}"
        );
        // hunt finds the chunks; nothing else of the network alerts.
        let out = run(&["hunt", dir.path().to_str().unwrap(), "--format", "jsonl"]);
        let net: Vec<serde_json::Value> = alerts(&stdout(&out))
            .into_iter()
            .filter(|a| {
                a["rule_id"]
                    .as_str()
                    .unwrap()
                    .starts_with("cellwarden.net.")
            })
            .collect();
        assert!(!net.is_empty(), "seed {seed}");
        assert!(
            net.iter().all(|a| a["event"]["dst_ip"] == "203.0.113.66"),
            "seed {seed}: {net:#?}"
        );
    }
}

#[test]
fn lightbasin_is_scoped_and_its_covert_channel_found() {
    for seed in 1..=2 {
        let dir = tempfile::tempdir().unwrap();
        let truth = simulate(dir.path(), seed, &["lightbasin"]);
        let targets: BTreeSet<String> = truth["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["msisdn"].as_str().unwrap().to_owned())
            .collect();
        let found: BTreeSet<String> = scope(dir.path())["subscribers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(found, targets, "seed {seed}");
        let assets = dir.path().join("assets.toml");
        let out = run(&[
            "hunt",
            dir.path().to_str().unwrap(),
            "--assets",
            assets.to_str().unwrap(),
            "--format",
            "jsonl",
        ]);
        let rules: BTreeSet<String> = alerts(&stdout(&out))
            .iter()
            .map(|a| a["rule_id"].as_str().unwrap().to_owned())
            .collect();
        for r in [
            "cellwarden.net.icmp_tunnel",
            "cellwarden.net.gtp_unexpected",
            "5f7b9d1c-3e5a-4b7d-9f1c-3e5a7b9d1f14",
        ] {
            assert!(rules.contains(r), "seed {seed}: {r} missing from {rules:?}");
        }
    }
}

#[test]
fn the_benign_operator_exposes_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let truth = simulate(dir.path(), 4, &["benign"]);
    assert_eq!(truth["targets"].as_array().unwrap().len(), 0);
    let x = scope(dir.path());
    assert_eq!(
        x["subscribers"].as_array().unwrap().len(),
        0,
        "{:#?}",
        x["accounts"]
    );
    let out = run(&["hunt", dir.path().to_str().unwrap(), "--format", "jsonl"]);
    let net = alerts(&stdout(&out))
        .into_iter()
        .filter(|a| {
            a["rule_id"]
                .as_str()
                .unwrap()
                .starts_with("cellwarden.net.")
        })
        .count();
    assert_eq!(net, 0);
}

#[test]
fn the_same_seed_writes_the_same_logs() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    simulate(a.path(), 9, &["softcell"]);
    simulate(b.path(), 9, &["softcell"]);
    for f in [
        "windows/events.jsonl",
        "db/postgresql-billing.log",
        "db/mysql-crm-audit.log",
        "network/conn.log",
        "ground-truth.json",
        "watchlist.txt",
    ] {
        assert_eq!(
            std::fs::read(a.path().join(f)).unwrap(),
            std::fs::read(b.path().join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn eval_scores_hunt_and_scope_against_the_truth() {
    let dir = tempfile::tempdir().unwrap();
    simulate(dir.path(), 5, &["softcell", "insider"]);
    let logs: Vec<String> = ["windows", "db", "network"]
        .iter()
        .map(|d| dir.path().join(d).to_str().unwrap().to_owned())
        .collect();
    let alerts = dir.path().join("alerts.jsonl");
    let mut args: Vec<&str> = vec!["hunt"];
    args.extend(logs.iter().map(String::as_str));
    args.extend(["--format", "jsonl", "-o", alerts.to_str().unwrap()]);
    assert_eq!(run(&args).status.code(), Some(0));
    let x = scope(dir.path());
    let report = dir.path().join("scope.json");
    std::fs::write(&report, x.to_string()).unwrap();
    let truth = dir.path().join("ground-truth.json");
    let out = run(&[
        "eval",
        "--truth",
        truth.to_str().unwrap(),
        alerts.to_str().unwrap(),
        report.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(s["recall"], 1.0);
    assert!(s["precision"].as_f64().unwrap() >= 0.95, "{s:#}");
    assert_eq!(s["exfiltration_found"], true);
    assert_eq!(s["techniques_detected"], s["techniques"], "{s:#}");
    // Aggregate alerts (targeted lookups: one per account, at its first read) leave later
    // nights of the same activity without an alert of their own.
    assert!(
        s["steps_detected"].as_u64().unwrap() + 2 >= s["steps"].as_array().unwrap().len() as u64,
        "{s:#}"
    );
    let table = run(&[
        "eval",
        "--truth",
        truth.to_str().unwrap(),
        alerts.to_str().unwrap(),
        report.to_str().unwrap(),
    ]);
    assert!(
        stdout(&table).contains("recall 100.0%"),
        "{}",
        stdout(&table)
    );
}
