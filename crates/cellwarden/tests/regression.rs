//! SigmaHQ's own regression tests: every sample EVTX must trigger the rule its `info.yml`
//! names, as many times as `match_count` says, unless listed in `regression-known-gaps.yml`.
//! The JSON rendering next to each EVTX must give the same matches.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use common::*;

#[derive(serde::Deserialize)]
struct Info {
    rule_metadata: Vec<RuleMeta>,
    #[serde(default)]
    regression_tests_info: Option<Vec<TestInfo>>,
}
#[derive(serde::Deserialize)]
struct RuleMeta {
    id: String,
}
#[derive(serde::Deserialize)]
struct TestInfo {
    path: String,
    match_count: Option<usize>,
}
#[derive(serde::Deserialize)]
struct Gap {
    path: String,
    reason: String,
}

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.file_name().is_some_and(|n| n == "info.yml") {
            out.push(p);
        }
    }
}

#[test]
fn sigmahq_regression_samples_trigger_their_rules() {
    let Some(sigma) = shared("sigma") else { return };
    let data = sigma.join("regression_data");
    let mut args: Vec<String> = vec!["hunt".into(), data.display().to_string()];
    for d in [
        "rules",
        "rules-emerging-threats",
        "rules-threat-hunting",
        "rules-compliance",
    ] {
        args.push("-r".into());
        args.push(sigma.join(d).display().to_string());
    }
    args.extend(["--format".into(), "jsonl".into()]);
    let out = bin().args(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // (file relative to the sigma folder, rule id) -> count
    let mut hits: HashMap<(String, String), usize> = HashMap::new();
    for a in alerts(&stdout(&out)) {
        let file = Path::new(a["source_file"].as_str().unwrap())
            .strip_prefix(&sigma)
            .unwrap()
            .display()
            .to_string();
        *hits
            .entry((file, a["rule_id"].as_str().unwrap().to_owned()))
            .or_default() += 1;
    }
    let gaps: Vec<Gap> = yaml_serde::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/regression-known-gaps.yml"),
        )
        .unwrap(),
    )
    .unwrap();
    let gaps: BTreeMap<String, String> = gaps.into_iter().map(|g| (g.path, g.reason)).collect();

    let mut infos = Vec::new();
    walk(&data, &mut infos);
    assert!(infos.len() >= 200, "found {} info.yml", infos.len());
    let mut failures = Vec::new();
    let mut checked = 0;
    for info_path in infos {
        let info: Info =
            yaml_serde::from_str(&std::fs::read_to_string(&info_path).unwrap()).unwrap();
        let rule = &info.rule_metadata[0].id;
        for t in info.regression_tests_info.unwrap_or_default() {
            checked += 1;
            let got = hits
                .get(&(t.path.clone(), rule.clone()))
                .copied()
                .unwrap_or(0);
            let json = t.path.replace(".evtx", ".json");
            if sigma.join(&json).exists() {
                let got_json = hits
                    .get(&(json.clone(), rule.clone()))
                    .copied()
                    .unwrap_or(0);
                assert_eq!(got_json, got, "JSON rendering {json} differs from its EVTX");
            }
            let ok = got > 0 && t.match_count.is_none_or(|n| n == got);
            if !ok && !gaps.contains_key(&t.path) {
                failures.push(format!(
                    "{}: rule {rule}: {got} matches, want {}",
                    t.path,
                    t.match_count.map_or("≥1".to_owned(), |n| n.to_string())
                ));
            }
            if ok && gaps.contains_key(&t.path) {
                failures.push(format!(
                    "{} is listed as a gap but passes: remove it",
                    t.path
                ));
            }
        }
    }
    eprintln!(
        "checked {checked} regression tests, {} known gaps",
        gaps.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
