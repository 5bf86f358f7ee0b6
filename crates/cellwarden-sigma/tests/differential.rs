//! cellwarden's evaluator against rsigma-eval's over the same events and rules: every
//! (rule, record) match must agree, except the deliberate differences listed here.

#[path = "support/rsigma_adapter.rs"]
mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;

use cellwarden_sigma::{LoadOptions, RuleSource, load};

/// Rules where the two evaluators differ on purpose, with the reason.
const DELIBERATE: &[(&str, &str)] = &[(
    "4a0b2c7e-7cb2-495d-8b63-5f268e7bfd67",
    "windash on ' /accepteula': Sigma 2.1 says windash permutes all of -, /, en dash, em dash \
     and horizontal bar, so '-accepteula' matches; rsigma-eval 0.23 only permutes '-'. \
     (Renamed ProcDump, Panache sample record 553: `procdump.exe -accepteula -ma lsass.exe`.)",
)];

fn shared(rel: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(rel);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("skipped: ../shared/data/{rel} not found (shared test data absent)");
        None
    }
}

#[test]
fn same_matches_as_rsigma_eval() {
    let (Some(rules_dir), Some(samples), Some(regression)) = (
        shared("sigma/rules/windows"),
        shared("evtx-attack-samples"),
        shared("sigma/regression_data"),
    ) else {
        return;
    };
    let (sources, _) = cellwarden_sigma::collect_rule_files(&[rules_dir]).unwrap();
    let ours = load(&sources, &LoadOptions::default());
    let events = support::read_events(&[&samples, &regression]);
    assert!(events.len() > 8000);

    // rsigma-eval, one compiled rule per source file (same order as ours: one rule a file).
    let mut theirs = Vec::new();
    for RuleSource { text, .. } in &sources {
        let c = rsigma_parser::parse_sigma_yaml(text).unwrap();
        for r in &c.rules {
            theirs.push((
                r.id.clone().unwrap_or_default(),
                rsigma_eval::compile_rule(r).ok(),
            ));
        }
    }
    let ids: Vec<String> = ours.rules.infos().map(|i| i.id.clone()).collect();
    assert_eq!(ids.len(), theirs.len());

    let mut scratch = ours.rules.scratch();
    let mut hits = Vec::new();
    let mut ours_set = BTreeSet::new();
    let mut theirs_set = BTreeSet::new();
    for (n, ev) in events.iter().enumerate() {
        ours.rules.matches(ev, &mut scratch, &mut hits);
        for &h in &hits {
            ours_set.insert((ids[h].clone(), n));
        }
        // rsigma on the rules our router deems eligible for this event's log source.
        let adapter = support::Adapter(ev);
        for (i, (id, compiled)) in theirs.iter().enumerate() {
            let Some(c) = compiled else { continue };
            if !ours.rules.logsource_accepts(i, ev) {
                continue;
            }
            if rsigma_eval::evaluate_rule(c, &adapter).is_some() {
                theirs_set.insert((id.clone(), n));
            }
        }
    }
    let deliberate: BTreeSet<&str> = DELIBERATE.iter().map(|(id, _)| *id).collect();
    let only_ours: Vec<_> = ours_set
        .difference(&theirs_set)
        .filter(|(id, _)| !deliberate.contains(id.as_str()))
        .collect();
    let only_theirs: Vec<_> = theirs_set
        .difference(&ours_set)
        .filter(|(id, _)| !deliberate.contains(id.as_str()))
        .collect();
    eprintln!(
        "{} events, {} rules: {} matches by us, {} by rsigma-eval",
        events.len(),
        ids.len(),
        ours_set.len(),
        theirs_set.len()
    );
    let show = |v: &[&(String, usize)]| -> String {
        v.iter()
            .take(20)
            .map(|(id, n)| {
                format!(
                    "{id} @ {}:{}",
                    events[*n].origin.file.rsplit('/').next().unwrap(),
                    events[*n].origin.record
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "only ours ({}):\n{}\nonly rsigma-eval ({}):\n{}",
        only_ours.len(),
        show(&only_ours),
        only_theirs.len(),
        show(&only_theirs)
    );
}
