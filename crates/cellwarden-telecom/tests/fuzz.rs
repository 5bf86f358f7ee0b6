//! Fuzzing the SQL analyser with the statements the simulator's database logs carry and
//! hostile ones, in every dialect: no panic, no statement slower than its bound, memory within
//! a bound of its size, and the fingerprint cache changes nothing (a statement analysed from
//! the cache gives what parsing it gives).

use std::time::Duration;

use cellwarden_telecom::sql::{Analyzer, Dialect};
use cellwarden_testkit::fuzz::{self, Target};

#[global_allocator]
static ALLOC: cellwarden_testkit::alloc::Counting = cellwarden_testkit::alloc::Counting;

/// The SQL of the simulator's pgaudit and MySQL audit records.
fn simulated_statements() -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let config = cellwarden_sim::SimConfig {
        seed: 5,
        subscribers: 500,
        days: 2,
        scenarios: vec![
            cellwarden_sim::Scenario::Softcell,
            cellwarden_sim::Scenario::Insider,
        ],
    };
    cellwarden_sim::simulate(&config, dir.path()).unwrap();
    let mut out = std::collections::BTreeSet::new();
    let pg = std::fs::read_to_string(dir.path().join("db/postgresql-billing.log")).unwrap();
    for l in pg.lines() {
        // AUDIT: SESSION,1,1,READ,SELECT,,,"statement",<not logged>
        if let Some(i) = l.find(",,,\"") {
            let rest = &l[i + 4..];
            if let Some(j) = rest.rfind("\",") {
                out.insert(rest[..j].replace("\"\"", "\""));
            }
        }
    }
    let my = std::fs::read_to_string(dir.path().join("db/mysql-crm-audit.log")).unwrap();
    for l in my.lines() {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(l)
            && let Some(q) = v["general_data"]["query"].as_str()
        {
            out.insert(q.to_owned());
        }
    }
    out.into_iter().take(200).map(String::into_bytes).collect()
}

#[test]
fn fuzz_sql_analyser() {
    let mut seeds = simulated_statements();
    assert!(seeds.len() > 20, "{} statements", seeds.len());
    for s in [
        "SELECT c.*, l.cell_id FROM cdr c JOIN cell_location l ON l.imsi = c.imsi WHERE c.calling_number IN ('33611111111', '33622222222') OR c.imsi = $1",
        "COPY (SELECT * FROM cdr WHERE start_time > now() - interval '1 day') TO '/tmp/x.csv' WITH CSV",
        "SELECT * INTO OUTFILE '/tmp/x' FROM customer WHERE msisdn LIKE '3361%'",
        "UPDATE subscriber SET imei = :imei WHERE msisdn = :msisdn",
        "SELECT $tag$ it's $tag$, N'x', E'\\n', X'ff' FROM dual",
        "GRANT SELECT ON cdr TO report_ro; CREATE USER svc_bkp2 WITH PASSWORD 'x'",
        "SELECT * FROM \"Customer\" c WHERE c.\"MSISDN\" = ANY(ARRAY['33611111111'])",
    ] {
        seeds.push(s.as_bytes().to_vec());
    }
    let report = fuzz::run(
        Target {
            name: "sql",
            seeds,
            tokens: &[
                b"'",
                b"\"",
                b"`",
                b"[",
                b"$1",
                b"?",
                b":x",
                b"$a$",
                b" IN (",
                b",",
                b")",
                b" OR ",
                b" LIKE '",
                b"--",
                b"/*",
                b"*/",
                b"\\",
                b"\xc3\xa9",
                b"(SELECT ",
            ],
            max_time: Duration::from_secs(1),
            max_len: 64 * 1024,
            regressions: Some(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions/sql"),
            ),
        },
        |input| {
            let sql = String::from_utf8_lossy(input);
            let binds: Vec<String> = vec!["33611111111".into(), "é".into()];
            for d in [
                Dialect::Postgres,
                Dialect::MySql,
                Dialect::Oracle,
                Dialect::Generic,
            ] {
                let base = cellwarden_testkit::alloc::reset_peak();
                let mut cached = Analyzer::new(true);
                let first = cached.analyse(&sql, d, &binds);
                let again = cached.analyse(&sql, d, &binds);
                let parsed = Analyzer::new(false).analyse(&sql, d, &binds);
                let used = cellwarden_testkit::alloc::peak().saturating_sub(base);
                assert!(used <= 256 * input.len() + (16 << 20), "{used} bytes");
                let values = |a: &cellwarden_telecom::sql::Analysis| {
                    a.compared
                        .iter()
                        .map(|c| (c.column.to_string(), c.value.clone(), c.like))
                        .collect::<Vec<_>>()
                };
                assert_eq!(values(&first), values(&parsed), "{d:?}");
                assert_eq!(values(&again), values(&parsed), "{d:?} from the cache");
                assert_eq!(first.shape.kind, parsed.shape.kind);
            }
        },
    );
    fuzz::say("sql", report);
}
