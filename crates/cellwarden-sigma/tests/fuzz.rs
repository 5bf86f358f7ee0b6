//! Fuzzing rule loading and evaluation: mutated Sigma rules (the project's pack, the fixture
//! rules and, with the shared data, SigmaHQ's) are loaded and run over the fixture events. No
//! panic, no rule slower to load than its bound, memory within a bound of its size; a rule that
//! does not load is a problem with a file name, never a crash.

#[path = "support/rsigma_adapter.rs"]
mod support;

use std::path::PathBuf;
use std::time::Duration;

use cellwarden_sigma::{LoadOptions, RuleSource, load};
use cellwarden_testkit::fuzz::{self, Target};

#[global_allocator]
static ALLOC: cellwarden_testkit::alloc::Counting = cellwarden_testkit::alloc::Counting;

#[test]
fn fuzz_rules_and_conditions() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let fixtures = root.join("tests/fixtures");
    let mut paths = vec![fixtures.join("rules"), root.join("../../rules")];
    if let Some(w) = cellwarden_testkit::shared("sigma/rules/windows/process_creation") {
        paths.push(w);
    }
    let (sources, _) = cellwarden_sigma::collect_rule_files(&paths).unwrap();
    let mut seeds: Vec<Vec<u8>> = sources
        .iter()
        .take(150)
        .map(|s| s.text.clone().into_bytes())
        .collect();
    // A correlation over a fixture rule.
    seeds.push(
        b"title: c\nid: 11111111-2222-4333-8444-555555555555\ncorrelation:\n  type: event_count\n  rules: [0b5a9e1c-6f0e-4c3a-9a51-1f0c7d2e0001]\n  group-by: [User]\n  timespan: 1h\n  condition: {gte: 2}\nlevel: high\n"
            .to_vec(),
    );
    let events = support::read_events(&[&fixtures.join("events")]);
    let report = fuzz::run(
        Target {
            name: "sigma",
            seeds,
            tokens: &[
                b" and ",
                b" or ",
                b" not ",
                b"1 of ",
                b"all of them",
                b"(",
                b")",
                b"selection",
                b"|contains",
                b"|re",
                b"|base64offset",
                b"|all",
                b"|windash",
                b"|cidr",
                b"|exists",
                b"|expand",
                b"|fieldref",
                b"|gt",
                b"null",
                b"'*'",
                b"\\\\",
                b"[",
                b"{",
                b"&a",
                b"*a",
                b"!!",
                b"\n  ",
                b": ",
                b"- ",
            ],
            max_time: Duration::from_secs(2),
            max_len: 64 * 1024,
            regressions: Some(root.join("tests/fuzz-regressions/sigma")),
        },
        |input| {
            let base = cellwarden_testkit::alloc::reset_peak();
            let text = String::from_utf8_lossy(input).into_owned();
            let loaded = load(
                &[RuleSource {
                    name: "fuzz.yml".into(),
                    text,
                }],
                &LoadOptions::default(),
            );
            for p in &loaded.problems {
                assert_eq!(p.file, "fuzz.yml");
            }
            let mut scratch = loaded.rules.scratch();
            let mut hits = Vec::new();
            for e in &events {
                loaded.rules.matches(e, &mut scratch, &mut hits);
            }
            let used = cellwarden_testkit::alloc::peak().saturating_sub(base);
            assert!(used <= 512 * input.len() + (32 << 20), "{used} bytes");
        },
    );
    fuzz::say("sigma", report);
}
