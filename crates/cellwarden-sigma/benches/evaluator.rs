//! Evaluator throughput: cellwarden's evaluator and rsigma-eval's over the same in-memory
//! events (the shared EVTX attack samples) and the same rules (SigmaHQ `rules/windows`), on one
//! thread. Run with `cargo bench -p cellwarden-sigma --bench evaluator`.

#[path = "../tests/support/rsigma_adapter.rs"]
mod support;

use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    let (rules_dir, samples) = (
        root.join("sigma/rules/windows"),
        root.join("evtx-attack-samples"),
    );
    if !rules_dir.exists() || !samples.exists() {
        eprintln!("skipped: ../shared/data not found (shared test data absent)");
        return;
    }
    let (sources, _) = cellwarden_sigma::collect_rule_files(&[rules_dir]).unwrap();
    let ours = cellwarden_sigma::load(&sources, &Default::default());
    // All rules at once: rsigma-eval rebuilds its index on every add.
    let parsed: Vec<rsigma_parser::SigmaRule> = sources
        .iter()
        .filter_map(|s| rsigma_parser::parse_sigma_yaml(&s.text).ok())
        .flat_map(|c| c.rules)
        .collect();
    let mut engine = rsigma_eval::Engine::new();
    let _ = engine.add_rules(parsed.iter());
    let only_ours = std::env::var_os("BENCH_ONLY_OURS").is_some();
    let events = support::read_events(&[&samples]);
    let n = events.len() as f64;
    let reps: usize = std::env::var("BENCH_REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);

    let mut best_ours = f64::MAX;
    let mut ours_hits = 0;
    let mut out = Vec::new();
    for _ in 0..reps {
        // A fresh thread's working memory each time: nothing remembered from the run before.
        let mut scratch = ours.rules.scratch();
        let t = Instant::now();
        ours_hits = 0;
        for e in &events {
            ours.rules.matches(e, &mut scratch, &mut out);
            ours_hits += out.len();
        }
        best_ours = best_ours.min(t.elapsed().as_secs_f64());
    }

    let mut best_theirs = f64::MAX;
    let mut theirs_hits = 0;
    for _ in 0..if only_ours { 0 } else { reps } {
        let t = Instant::now();
        theirs_hits = 0;
        for e in &events {
            let ls = rsigma_parser::LogSource {
                product: e
                    .logsource
                    .as_ref()
                    .and_then(|l| l.product.as_deref().map(str::to_owned)),
                service: e
                    .logsource
                    .as_ref()
                    .and_then(|l| l.service.as_deref().map(str::to_owned)),
                ..Default::default()
            };
            theirs_hits += engine.evaluate_pruned(&support::Adapter(e), &ls).len();
        }
        best_theirs = best_theirs.min(t.elapsed().as_secs_f64());
    }
    println!(
        "evaluator, {} events, {} rules, 1 thread, best of {reps}:",
        events.len(),
        ours.rules.len()
    );
    println!(
        "  cellwarden  {:>10.0} events/s  ({ours_hits} matches)",
        n / best_ours
    );
    println!(
        "  rsigma-eval {:>10.0} events/s  ({theirs_hits} matches)",
        n / best_theirs
    );
    println!("  ratio       {:>10.2}x", best_theirs / best_ours);
}
