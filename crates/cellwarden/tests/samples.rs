//! The real binary over the shared Windows attack samples with the SigmaHQ rules.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;

fn hunt_samples(threads: &str) -> Option<(String, String)> {
    hunt_samples_with(threads, &[])
}

fn hunt_samples_with(threads: &str, extra: &[&str]) -> Option<(String, String)> {
    let samples = shared("evtx-attack-samples")?;
    let rules = shared("sigma/rules")?;
    let mut args = vec![
        "hunt",
        samples.to_str().unwrap(),
        "-r",
        rules.to_str().unwrap(),
        "--format",
        "jsonl",
        "--threads",
        threads,
    ];
    args.extend_from_slice(extra);
    let out = run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    Some((stdout(&out), stderr(&out)))
}

#[test]
fn known_attacks_are_detected() {
    let Some((out, err)) = hunt_samples("2") else {
        return;
    };
    let mut by_file: BTreeMap<String, BTreeSet<(String, Vec<String>)>> = BTreeMap::new();
    for a in alerts(&out) {
        let file = a["source_file"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned();
        let tags: Vec<String> = a["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_owned())
            .collect();
        by_file
            .entry(file)
            .or_default()
            .insert((a["rule_title"].as_str().unwrap().to_owned(), tags));
        assert!(
            a["author"].is_string(),
            "SigmaHQ alerts carry the rule author"
        );
    }
    eprintln!("{} sample files raised alerts", by_file.len());
    assert!(
        by_file.len() >= 200,
        "only {} files with alerts",
        by_file.len()
    );
    assert!(err.contains("8255 events"), "{err}");

    // Mimikatz reading lsass memory raises a credential-access rule.
    let mimi = &by_file["sysmon_10_lsass_mimikatz_sekurlsa_logonpasswords.evtx"];
    assert!(
        mimi.iter()
            .any(|(_, tags)| tags.iter().any(|t| t == "attack.credential-access")),
        "{mimi:?}"
    );
    // PsExec's service is detected.
    let psexec = &by_file["sysmon_privesc_psexec_dwell.evtx"];
    assert!(
        psexec.iter().any(|(t, _)| t == "PsExec Service Execution"),
        "{psexec:?}"
    );
    let renamed = &by_file["LM_renamed_psexecsvc_5145.evtx"];
    assert!(
        renamed.iter().any(|(t, _)| t.contains("PsExec")),
        "{renamed:?}"
    );
}

#[test]
fn output_is_identical_whatever_the_thread_count() {
    let Some((one, _)) = hunt_samples("1") else {
        return;
    };
    let Some((four, _)) = hunt_samples("4") else {
        return;
    };
    assert!(!one.is_empty());
    assert!(one == four, "output differs between 1 and 4 threads");
}

/// Campaigns over real attack recordings: the same for any thread count, every high or
/// critical alert in one (each is a campaign on its own at least), no alert in two, and each
/// campaign's hosts are one name each (no FQDN beside its short name).
#[test]
fn campaigns_of_real_recordings_are_deterministic_and_whole() {
    let Some((one, _)) = hunt_samples_with("1", &["--campaigns"]) else {
        return;
    };
    let Some((two, _)) = hunt_samples_with("2", &["--campaigns"]) else {
        return;
    };
    assert!(one == two, "campaigns differ between 1 and 2 threads");
    let Some((alerts_text, _)) = hunt_samples("2") else {
        return;
    };
    let campaigns = alerts(&one);
    assert!(campaigns.len() > 10, "{}", campaigns.len());
    let id = |v: &serde_json::Value| {
        (
            v["rule_id"].as_str().unwrap().to_owned(),
            v["source_file"].as_str().unwrap().to_owned(),
            v["source_record"].as_u64().unwrap(),
        )
    };
    let mut seen = BTreeSet::new();
    for c in &campaigns {
        for t in c["timeline"].as_array().unwrap() {
            assert!(seen.insert(id(t)), "an alert in two campaigns: {t}");
        }
        let hosts: Vec<&str> = c["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["name"].as_str().unwrap())
            .collect();
        for h in &hosts {
            let short = h.split('.').next().unwrap();
            assert!(
                *h == short || !hosts.contains(&short),
                "{h} beside {short} in {hosts:?}"
            );
        }
    }
    for a in alerts(&alerts_text) {
        if matches!(a["level"].as_str(), Some("high" | "critical")) {
            assert!(seen.contains(&id(&a)), "high alert in no campaign: {a}");
        }
    }
}
