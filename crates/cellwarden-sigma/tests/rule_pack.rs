//! Every rule of the built-in pack (`rules/`) has a test file in `rules-tests/` (same path)
//! with positive and negative cases; each case is a sequence of events (JSON objects, or raw
//! `syslog:` / `auditd:` text) that must, or must not, raise the rule named by `expect`.

use std::path::PathBuf;

use cellwarden_event::{Alert, Event, Origin};
use cellwarden_sigma::{LoadOptions, builtin_sources, load};
use cellwarden_source::Mapping;
use cellwarden_source::lineage::Lineage;

#[derive(serde::Deserialize)]
struct Cases {
    expect: String,
    positive: Vec<Vec<serde_json::Value>>,
    negative: Vec<Vec<serde_json::Value>>,
}

fn event(
    v: &serde_json::Value,
    n: usize,
    mapping: &Mapping,
    lineage: &mut Lineage,
) -> Event<'static> {
    let mut e = Event::new(Origin {
        file: "case".into(),
        record: n as u64 + 1,
    });
    let (fields, ts) = if let Some(line) = v.get("syslog").and_then(|s| s.as_str()) {
        cellwarden_source::linux::syslog_line(line, 2026).expect("a syslog line")
    } else if let Some(text) = v.get("auditd").and_then(|s| s.as_str()) {
        // As the reader does: the events of a case are one audit log, read in order.
        let mut text = text.to_owned();
        if let Some(note) = lineage.observe(text.as_bytes()) {
            text.push('\n');
            text.push_str(&note);
        }
        cellwarden_source::linux::audit_event(&text)
    } else {
        let text = v.to_string();
        let f = cellwarden_event::owned_fields(cellwarden_source::json::flatten(&text).unwrap());
        (f, None)
    };
    e.fields = fields;
    e.timestamp = ts;
    mapping.apply(&mut e);
    e
}

#[test]
fn every_rule_of_the_pack_passes_its_cases() {
    let sources = builtin_sources();
    let loaded = load(&sources, &LoadOptions::default());
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    let mapping = Mapping::builtin();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../rules-tests");
    let mut checked = 0;
    for src in &sources {
        let rel = src.name.strip_prefix("builtin:rules/").unwrap();
        let path = root.join(rel);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("{rel} has no test file at rules-tests/{rel}"));
        let cases: Cases = yaml_serde::from_str(&text).unwrap();
        assert!(
            !cases.positive.is_empty() && !cases.negative.is_empty(),
            "{rel}"
        );
        for (kind, list, want) in [
            ("positive", &cases.positive, true),
            ("negative", &cases.negative, false),
        ] {
            for (ci, case) in list.iter().enumerate() {
                let mut scratch = loaded.rules.scratch();
                let mut run = loaded.rules.correlation_run();
                let mut hits = Vec::new();
                let mut raised: Vec<Alert> = Vec::new();
                let mut ids = Vec::new();
                let mut lineage = Lineage::default();
                for (n, v) in case.iter().enumerate() {
                    let e = event(v, n, &mapping, &mut lineage);
                    loaded.rules.matches(&e, &mut scratch, &mut hits);
                    for &h in &hits {
                        if loaded.rules.rule_emits(h) {
                            ids.push(loaded.rules.rule_info(h).id.clone());
                        }
                        if loaded.rules.rule_correlated(h) {
                            run.push(h as u32, &e, &mut raised);
                        }
                    }
                }
                ids.extend(raised.iter().map(|a| a.rule.id.clone()));
                assert_eq!(
                    ids.contains(&cases.expect),
                    want,
                    "{rel}: {kind} case {ci} raised {ids:?}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 2 * sources.len());
}
