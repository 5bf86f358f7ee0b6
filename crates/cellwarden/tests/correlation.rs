//! A correlation spanning two files gives exactly the expected alerts, identically with one
//! and many threads.

mod common;

use common::*;

const RULES: &str = "title: Failed logon
id: 0f1e2d3c-0000-4000-8000-000000000001
logsource: {product: windows, service: security}
detection:
  sel: {EventID: 4625}
  condition: sel
level: low
---
title: Password spraying across hosts
id: 0f1e2d3c-0000-4000-8000-000000000002
correlation:
  type: event_count
  rules: [0f1e2d3c-0000-4000-8000-000000000001]
  group-by: [TargetUserName]
  timespan: 1m
  condition: {gte: 4}
level: high
";

fn failed(host: &str, user: &str, time: &str, rec: u32) -> String {
    format!(
        r##"{{"Event":{{"System":{{"EventID":4625,"Channel":"Security","Computer":"{host}","EventRecordID":{rec},"TimeCreated":{{"#attributes":{{"SystemTime":"{time}"}}}}}},"EventData":{{"TargetUserName":"{user}","IpAddress":"10.9.9.9"}}}}}}"##
    )
}

#[test]
fn correlation_across_two_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), RULES).unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    // svc_billing fails twice on each host within 50 s; alice only three times in all.
    let a = [
        failed("hlr-fe-1", "svc_billing", "2026-03-04T03:00:00Z", 1),
        failed("hlr-fe-1", "alice", "2026-03-04T03:00:05Z", 2),
        failed("hlr-fe-1", "svc_billing", "2026-03-04T03:00:30Z", 3),
        failed("hlr-fe-1", "alice", "2026-03-04T03:00:40Z", 4),
    ];
    let b = [
        failed("bill-db-2", "svc_billing", "2026-03-04T03:00:20Z", 1),
        failed("bill-db-2", "svc_billing", "2026-03-04T03:00:50Z", 2),
        failed("bill-db-2", "alice", "2026-03-04T03:02:00Z", 3),
    ];
    std::fs::write(logs.join("a.jsonl"), a.join("\n")).unwrap();
    std::fs::write(logs.join("b.jsonl"), b.join("\n")).unwrap();
    let hunt = |threads: &str| {
        run(&[
            "hunt",
            logs.to_str().unwrap(),
            "-r",
            dir.path().join("rules.yml").to_str().unwrap(),
            "--format",
            "jsonl",
            "--threads",
            threads,
        ])
    };
    let one = hunt("1");
    assert_eq!(one.status.code(), Some(0), "{}", stderr(&one));
    let got = alerts(&stdout(&one));
    assert_eq!(got.len(), 1, "{got:?}");
    let c = &got[0]["correlation"];
    assert_eq!(got[0]["rule_title"], "Password spraying across hosts");
    assert_eq!(c["type"], "event_count");
    assert_eq!(c["value"], 4.0);
    assert_eq!(c["group"]["TargetUserName"], "svc_billing");
    assert_eq!(c["window_start"], "2026-03-04T03:00:00.000000Z");
    assert_eq!(c["window_end"], "2026-03-04T03:00:50.000000Z");
    let files: Vec<String> = c["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["source_file"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap(),
                e["source_record"]
            )
        })
        .collect();
    assert_eq!(
        files,
        vec!["a.jsonl:1", "b.jsonl:1", "a.jsonl:3", "b.jsonl:2"]
    );
    for t in ["2", "4"] {
        assert_eq!(stdout(&hunt(t)), stdout(&one), "{t} threads");
    }
}

/// `watch`: records that come after every other source has caught up, older than the
/// watermark, still meet their correlations (their matches are released though the
/// watermark no longer moves).
#[test]
fn watch_raises_a_correlation_of_late_records() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, RULES).unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::write(
        logs.join("now.jsonl"),
        failed("hlr-fe-1", "bob", "2026-03-10T00:00:00Z", 1) + "\n",
    )
    .unwrap();
    let (state, out) = (dir.path().join("state"), dir.path().join("alerts.jsonl"));
    let mut child = bin()
        .arg("watch")
        .args(["--follow", logs.to_str().unwrap()])
        .args(["-r", rules.to_str().unwrap()])
        .args(["--state", state.to_str().unwrap()])
        .args(["-o", out.to_str().unwrap()])
        .args(["--quiet", "--checkpoint-secs", "0.2", "--idle-secs", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start watch");
    // The first file is read and idle: the watermark stands at its time.
    let start = std::time::Instant::now();
    while !state.join("checkpoint.json").exists()
        && start.elapsed() < std::time::Duration::from_secs(30)
    {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_secs(3));
    let late = [
        failed("bill-db-2", "svc_billing", "2026-03-04T03:00:00Z", 1),
        failed("bill-db-2", "svc_billing", "2026-03-04T03:00:20Z", 2),
        failed("bill-db-2", "svc_billing", "2026-03-04T03:00:30Z", 3),
        failed("bill-db-2", "svc_billing", "2026-03-04T03:00:50Z", 4),
    ];
    std::fs::write(logs.join("late.jsonl"), late.join("\n") + "\n").unwrap();
    let raised = || {
        alerts(&std::fs::read_to_string(&out).unwrap_or_default())
            .iter()
            .any(|a| a["rule_title"] == "Password spraying across hosts")
    };
    let start = std::time::Instant::now();
    while !raised() && start.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        raised(),
        "{}",
        std::fs::read_to_string(&out).unwrap_or_default()
    );
}
