//! Store write throughput: N alerts recorded in one run (new rows), then the same N again
//! (the idempotent re-run: every row updated), against the baseline of writing the same
//! alerts as JSON Lines to memory (what `hunt --format jsonl` does), in the same process.
//! `cargo bench -p cellwarden-store --bench write` (N=200000 by default; env N to change).

use std::sync::Arc;
use std::time::Instant;

use cellwarden_event::{Alert, Event, Level, Origin, RuleInfo, Value};
use cellwarden_store::{RunInfo, Store};

fn alerts(n: usize) -> Vec<Alert> {
    let rules: Vec<Arc<RuleInfo>> = (0..40)
        .map(|i| {
            Arc::new(RuleInfo::builtin(
                &format!("rule-{i}"),
                &format!("Rule number {i}"),
                "",
                &["attack.execution", "attack.t1059.001"],
                "bench",
            ))
        })
        .collect();
    (0..n)
        .map(|i| {
            let mut e = Event::new(Origin {
                file: Arc::from("/var/log/bench/events.jsonl"),
                record: i as u64,
            });
            e.timestamp = jiff::Timestamp::from_second(1_772_323_200 + i as i64).ok();
            e.host = Some(format!("host-{}", i % 500).into());
            e.push("User", Value::Str(format!("CORP\\user{}", i % 300).into()));
            e.push(
                "CommandLine",
                Value::Str(
                    format!("cmd.exe /c whoami /all & net group \"domain admins\" /domain {i}")
                        .into(),
                ),
            );
            e.push("Image", Value::Str("C:\\Windows\\System32\\cmd.exe".into()));
            Alert {
                rule: Arc::clone(&rules[i % rules.len()]),
                level: Level::High,
                event: e,
                correlation: None,
            }
        })
        .collect()
}

fn main() {
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let a = alerts(n);
    let t = Instant::now();
    let mut buf = Vec::new();
    cellwarden_report::write_jsonl(&mut buf, &a).unwrap();
    let base = t.elapsed().as_secs_f64();
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("bench.db")).unwrap();
    let run = RunInfo::default();
    let t = Instant::now();
    let r = s.record_hunt(&run, &a, &[], &[]).unwrap();
    let first = t.elapsed().as_secs_f64();
    assert_eq!(r.new_alerts, n);
    let t = Instant::now();
    let r = s.record_hunt(&run, &a, &[], &[]).unwrap();
    let again = t.elapsed().as_secs_f64();
    assert_eq!(r.new_alerts, 0);
    let size = std::fs::metadata(dir.path().join("bench.db")).map_or(0, |m| m.len());
    println!(
        "store write, {n} alerts ({:.0} MB as JSONL), one run each:",
        buf.len() as f64 / 1e6
    );
    println!(
        "  JSONL to memory (baseline)  {:>10.0} alerts/s",
        n as f64 / base
    );
    println!(
        "  store, new alerts           {:>10.0} alerts/s ({:.1}× slower than the baseline)",
        n as f64 / first,
        first / base
    );
    println!(
        "  store, same alerts again    {:>10.0} alerts/s ({:.1}× slower than the baseline)",
        n as f64 / again,
        again / base
    );
    println!(
        "  store file                  {:>10.1} MB",
        size as f64 / 1e6
    );
}
