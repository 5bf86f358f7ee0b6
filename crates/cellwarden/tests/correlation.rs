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
