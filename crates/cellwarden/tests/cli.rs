//! Command-line behaviour: usage errors, rule checking, output formats, the demo.

mod common;

use common::*;

#[test]
fn usage_errors_exit_2_with_one_line() {
    for args in [
        vec!["hunt", "--no-such-flag", "x"],
        vec!["hunt", "/definitely/not/here"],
        vec!["hunt", ".", "-r", "/no/such/rules"],
        vec!["hunt", ".", "--min-level", "severe"],
        vec!["rules", "check", "/no/such/rules"],
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{err}"
        );
        if !args.contains(&"--no-such-flag") && !args.contains(&"--min-level") {
            assert_eq!(err.trim().lines().count(), 1, "{err}");
        }
    }
}

#[test]
fn demo_tells_the_story_and_writes_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&["demo", "--out", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = stdout(&out);
    for expected in [
        "Connection Relay Tool Arguments",
        "Web Server Worker Spawns a Shell",
        "LSASS Memory Dumped",
        "Targeted subscriber lookups",
        "Transfer in a series of similar-sized chunks",
        "Subscribers to notify: 23 (3 on the watchlist)",
        "Minister of Defence",
        "10.20.0.5 → 203.0.113.66:443",
        // Told per campaign: the intrusion and the insider apart.
        "and 2 campaigns",
        "entered on web-portal-01",
        "web-portal-01 -> bill-db-01  (logon, adm_paul)",
        "jump-01 -> 203.0.113.66  (transfer)",
        "entered on 10.1.0.26 (Records of a watchlisted subscriber read) as care07",
        // The signalling chapter: the three trackers, with what the network answered.
        "Who was tracked over the signalling network",
        "asked by 23480000999 from 192.0.2.10: sendRoutingInfoForSM (yes), provideSubscriberInfo (yes), anyTimeInterrogation (refused)",
        "asked by epc.mnc099.mcc505.3gppnetwork.org from 192.0.2.20: IDR (yes)",
        "asked by 23480000998 from 192.0.2.10: updateLocation (yes)",
        "from 10.50.9.99: anyTimeInterrogation (yes)",
    ] {
        assert!(s.contains(expected), "{expected} missing from:\n{s}");
    }
    // The admins' weekly PsExec from their workstation is administration, not a third story.
    assert!(!s.contains("in no campaign"), "{s}");
    let campaigns = alerts(&std::fs::read_to_string(dir.path().join("campaigns.jsonl")).unwrap());
    assert_eq!(campaigns.len(), 2);
    assert_eq!(campaigns[0]["data"]["subscribers"], 20);
    assert_eq!(campaigns[1]["data"]["subscribers"], 3);
    // The story names only the transfers the flow analytics alerted on.
    let went = s.split("Where the data went").nth(1).unwrap_or("");
    assert!(!went.contains("93.184."), "{s}");
    let html = std::fs::read_to_string(dir.path().join("scope-report.html")).unwrap();
    assert!(html.contains("Subscriber exposure"));
    assert!(html.contains("Located over the signalling network"));
    assert!(dir.path().join("ground-truth.json").exists());
}

#[test]
fn formats_and_stdin() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/demo.jsonl");
    let csv = run(&["hunt", example, "--format", "csv"]);
    assert_eq!(csv.status.code(), Some(0));
    let text = stdout(&csv);
    assert!(text.starts_with(
        "timestamp,rule_id,rule_title,level,tags,author,source_file,source_record,host,"
    ));
    let jsonl = run(&[
        "hunt",
        example,
        "--format",
        "jsonl",
        "--min-level",
        "critical",
    ]);
    let a = alerts(&stdout(&jsonl));
    assert!(!a.is_empty());
    assert!(a.iter().all(|x| x["level"] == "critical"));
    assert_eq!(a[0]["tags"][0], "attack.credential-access");

    use std::io::Write;
    use std::process::Stdio;
    let mut child = bin()
        .args(["hunt", "-", "--format", "jsonl"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let data = std::fs::read(example).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&data).unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&gz.finish().unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let from_stdin = alerts(&stdout(&out));
    let from_file = alerts(&stdout(&run(&["hunt", example, "--format", "jsonl"])));
    assert_eq!(from_stdin.len(), from_file.len());
    assert_eq!(from_stdin[0]["source_file"], "-");
}

#[test]
fn sigmahq_corpus_loads() {
    let Some(rules) = shared("sigma/rules") else {
        return;
    };
    let out = run(&["rules", "check", rules.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let loaded = v["loaded"].as_u64().unwrap();
    let total = loaded + v["unsupported"].as_u64().unwrap() + v["invalid"].as_u64().unwrap();
    eprintln!("SigmaHQ rules/: {v:.200}");
    assert!(total >= 3000, "{v}");
    assert!(loaded * 100 >= total * 99, "{loaded} of {total} loaded");
    for p in v["problems"].as_array().unwrap() {
        assert!(p["file"].is_string() && p["reason"].is_string());
    }
    // Everything else in the shared corpus loads or is reported, without a crash.
    let sigma = shared("sigma").unwrap();
    for d in [
        "deprecated",
        "unsupported",
        "other",
        "rules-placeholder",
        "rules-emerging-threats",
        "rules-threat-hunting",
    ] {
        let out = run(&["rules", "check", sigma.join(d).to_str().unwrap(), "--json"]);
        assert!(
            matches!(out.status.code(), Some(0 | 3)),
            "{d}: {}",
            stderr(&out)
        );
        let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
        assert!(
            v["loaded"].as_u64().unwrap() + v["unsupported"].as_u64().unwrap() > 0,
            "{d}"
        );
    }
}

/// The example's intrusion (web shell, credential dump, PsExec, staging, relay) over three
/// days is one campaign with its kill chain in order, the move from the web portal to the
/// billing server, and every alert; CSV and JSON say the same.
#[test]
fn campaigns_of_the_example() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/demo.jsonl");
    let out = run(&["hunt", example, "--campaigns", "--format", "jsonl"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let c = alerts(&stdout(&out));
    assert_eq!(c.len(), 1, "{c:#?}");
    let c = &c[0];
    assert_eq!(c["alert_count"], 9);
    assert_eq!(c["entry"]["host"], "web-portal-01");
    let chain: Vec<&str> = c["kill_chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["tactic"].as_str().unwrap())
        .collect();
    assert_eq!(
        chain,
        [
            "execution",
            "persistence",
            "credential-access",
            "lateral-movement",
            "collection",
            "command-and-control"
        ]
    );
    assert_eq!(c["hosts"][0]["name"], "web-portal-01");
    assert_eq!(c["hosts"][1]["name"], "bill-db-02");
    assert!(
        c["moves"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["from"] == "web-portal-01" && m["to"] == "bill-db-02"),
        "{c:#}"
    );
    let out = run(&["hunt", example, "--campaigns", "--format", "csv"]);
    let text = stdout(&out);
    let mut lines = text.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("id,score,level,first_seen")
    );
    let row = lines.next().unwrap();
    assert!(row.starts_with(c["id"].as_str().unwrap()), "{row}");
    assert!(row.contains(",web-portal-01;bill-db-02,"), "{row}");
    assert_eq!(lines.next(), None);
}

#[test]
fn incidents_and_attack_layer() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/demo.jsonl");
    let dir = tempfile::tempdir().unwrap();
    let layer = dir.path().join("layer.json");
    let out = run(&[
        "hunt",
        example,
        "--incidents",
        "--format",
        "jsonl",
        "--attack-layer",
        layer.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let incidents = alerts(&stdout(&out));
    // Staging and relaying on the billing server by the same account, 19 minutes apart.
    let staging = incidents
        .iter()
        .find(|i| i["tactics"] == serde_json::json!(["collection", "command-and-control"]))
        .expect("staging incident");
    // One name per host: the FQDN Windows writes is the short name the other sources use.
    assert_eq!(staging["hosts"], serde_json::json!(["bill-db-02"]));
    assert_eq!(staging["accounts"], serde_json::json!(["svc_backup"]));
    assert_eq!(staging["timeline"].as_array().unwrap().len(), 3);
    let total: u64 = incidents
        .iter()
        .map(|i| i["alert_count"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 9, "every alert is in exactly one incident");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&layer).unwrap()).unwrap();
    assert_eq!(v["domain"], "enterprise-attack");
    assert!(
        v["techniques"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["techniqueID"] == "T1003.001" && t["score"] == 2)
    );
    let json = run(&["hunt", example, "--incidents", "--format", "json"]);
    let arr: serde_json::Value = serde_json::from_str(stdout(&json).trim()).unwrap();
    assert_eq!(arr.as_array().unwrap().len(), incidents.len());
    // Same again with a table: no escape sequences when not a terminal.
    let table = run(&["hunt", example, "--incidents"]);
    assert!(stdout(&table).contains("tactics:  collection > command-and-control"));
    assert!(!stdout(&table).contains('\x1b'));
}

/// `hunt` end to end on the project's own fixtures (no shared data needed): every fixture
/// rule fires on exactly the events written to match it, in output order.
#[test]
fn hunt_on_the_projects_own_fixtures() {
    let fixtures = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../cellwarden-sigma/tests/fixtures"
    );
    let out = run(&[
        "hunt",
        &format!("{fixtures}/events"),
        "-r",
        &format!("{fixtures}/rules"),
        "--format",
        "jsonl",
        "--threads",
        "3",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let got: Vec<(String, String, u64)> = alerts(&stdout(&out))
        .iter()
        .map(|a| {
            (
                a["rule_title"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("Fixture - ")
                    .to_owned(),
                a["source_file"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_owned(),
                a["source_record"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(&str, &str, u64)> = vec![
        ("PowerShell with an encoded command", "windows.jsonl", 1),
        ("PowerShell with an encoded command", "windows.jsonl", 2),
        ("PowerShell with an encoded command", "windows.jsonl", 3),
        (
            "Base64 of known tool names in a command line",
            "windows.jsonl",
            6,
        ),
        (
            "Base64 of known tool names in a command line",
            "windows.jsonl",
            7,
        ),
        (
            "Base64 of known tool names in a command line",
            "windows.jsonl",
            8,
        ),
        (
            "Base64 of known tool names in a command line",
            "windows.jsonl",
            9,
        ),
        (
            "Base64 of known tool names in a command line",
            "windows.jsonl",
            11,
        ),
        (
            "DNS or HTTPS straight to an outside address",
            "windows.jsonl",
            12,
        ),
        (
            "DNS or HTTPS straight to an outside address",
            "windows.jsonl",
            15,
        ),
        (
            "DNS or HTTPS straight to an outside address",
            "windows.jsonl",
            17,
        ),
        (
            "DNS or HTTPS straight to an outside address",
            "windows.jsonl",
            21,
        ),
        ("Run key pointing into a user folder", "windows.jsonl", 22),
        ("Run key pointing into a user folder", "windows.jsonl", 23),
        (
            "Archive or dump written to a staging folder",
            "windows.jsonl",
            26,
        ),
        (
            "Archive or dump written to a staging folder",
            "windows.jsonl",
            27,
        ),
        (
            "Archive or dump written to a staging folder",
            "windows.jsonl",
            30,
        ),
        (
            "New-credentials logon by the same account",
            "windows.jsonl",
            31,
        ),
        (
            "New-credentials logon by the same account",
            "windows.jsonl",
            35,
        ),
        (
            "Service installed from an odd place or with an empty account",
            "windows.jsonl",
            37,
        ),
        (
            "Service installed from an odd place or with an empty account",
            "windows.jsonl",
            39,
        ),
        (
            "Credential tool names anywhere in a System event",
            "windows.jsonl",
            41,
        ),
        (
            "Script block that downloads and runs code",
            "windows.jsonl",
            42,
        ),
        (
            "Script block that downloads and runs code",
            "windows.jsonl",
            43,
        ),
        ("Shell running a command string", "linux-audit.log", 13),
        ("Shell running a command string", "linux-audit.log", 17),
        (
            "New-credentials logon by the same account",
            "windows.jsonl",
            52,
        ),
    ];
    let expected: Vec<(String, String, u64)> = expected
        .into_iter()
        .map(|(t, f, r)| (t.to_owned(), f.to_owned(), r))
        .collect();
    assert_eq!(got, expected);
}
