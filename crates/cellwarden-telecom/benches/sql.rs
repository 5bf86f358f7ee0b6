//! SQL analysis throughput on one thread: statements/s of the analyser with the fingerprint
//! cache and without it (every statement parsed), and of the whole access collector (analysis,
//! schema, identifiers, aggregates) with the cache, over the same in-memory statements: a
//! billing/CRM mix of a few dozen statement shapes with varying literals, IN lists and binds,
//! plus 0.5 % one-off ad hoc statements. Run with `cargo bench -p cellwarden-telecom --bench sql`.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use cellwarden_event::{Event, Origin, Value};
use cellwarden_telecom::access::{Collector, Selection};
use cellwarden_telecom::schema::Schema;
use cellwarden_telecom::sql::{Analyzer, Dialect};

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn msisdn(&mut self) -> String {
        format!("336{:08}", self.next() % 100_000_000)
    }
}

/// (statement, binds)
fn statements(n: usize) -> Vec<(String, Vec<String>)> {
    let mut r = Lcg(42);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let m = r.msisdn();
        let s = match r.next() % 200 {
            0 => (
                format!("SELECT a{i}, b FROM report_{} WHERE x = {} AND msisdn = '{m}'", i % 997, i),
                vec![],
            ),
            1..=80 => ("SELECT s.* FROM subscriber s WHERE s.msisdn = $1".to_owned(), vec![m]),
            81..=120 => (
                format!("SELECT * FROM cdr WHERE calling_number = '{m}' OR called_number = '{m}' ORDER BY start_time DESC LIMIT 50"),
                vec![],
            ),
            121..=140 => {
                let k = 2 + r.next() % 6;
                let list: Vec<String> = (0..k).map(|_| format!("'{}'", r.msisdn())).collect();
                (format!("select imsi, cell_id from cell_location where msisdn in ({}) and ts > '2026-03-01'", list.join(", ")), vec![])
            }
            141..=160 => (
                format!("UPDATE subscriber SET last_seen = now() WHERE imsi = '20815{:010}'", r.next() % 10_000_000_000),
                vec![],
            ),
            161..=180 => (
                "SELECT c.*, d.imei FROM cdr c JOIN device d ON d.imsi = c.imsi\n WHERE c.calling_number = $1 -- care lookup\n AND c.start_time > $2".to_owned(),
                vec![m, "2026-03-01".to_owned()],
            ),
            _ => (format!("SELECT count(*) FROM sms_log WHERE sent_at > '2026-03-{:02}'", 1 + r.next() % 28), vec![]),
        };
        out.push(s);
    }
    out
}

fn best_of(reps: usize, mut f: impl FnMut() -> usize) -> (f64, usize) {
    let mut best = f64::MAX;
    let mut check = 0;
    for _ in 0..reps {
        let t = Instant::now();
        check = f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    (best, check)
}

fn main() {
    let n: usize = std::env::var("BENCH_STATEMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    let reps: usize = std::env::var("BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let stmts = statements(n);
    let bytes: usize = stmts.iter().map(|(s, _)| s.len()).sum();
    let (cached, found_c) = best_of(reps, || {
        let mut a = Analyzer::new(true);
        stmts
            .iter()
            .map(|(s, b)| a.analyse(s, Dialect::Postgres, b).compared.len())
            .sum()
    });
    let uncached_n = n.min(60_000);
    let (uncached, found_u) = best_of(reps, || {
        let mut a = Analyzer::new(false);
        stmts[..uncached_n]
            .iter()
            .map(|(s, b)| a.analyse(s, Dialect::Postgres, b).compared.len())
            .sum()
    });
    // Two shapes of state: few accounts and sessions over a few days, and the shape of
    // bench/gen_dbaudit.py (43 accounts, 280 client hosts, 5,000 backend pids, 30 days:
    // nearly every statement in a session of its own, as `bench/scope.sh` reads).
    let events = |spread: bool| -> Vec<Event<'static>> {
        stmts
            .iter()
            .enumerate()
            .map(|(i, (s, b))| {
                let mut ev = Event::new(Origin {
                    file: Arc::from("bench.log"),
                    record: i as u64,
                });
                let v = |x: &str| Value::Str(Cow::Owned(x.to_owned()));
                if spread {
                    let secs = (i * 30 / n) as i64 * 86_400 + ((i * 7919) % 86_400) as i64;
                    ev.timestamp =
                        cellwarden_event::Timestamp::from_second(1_772_323_200 + secs).ok();
                    ev.push("user", v(&format!("care{:02}", i % 43)));
                    ev.push("client_host", v(&format!("10.1.{}.{}", i % 7, 10 + i % 40)));
                    ev.push("pid", Value::Int(1000 + (i % 5000) as i64));
                    ev.push("application", v("crm"));
                } else {
                    ev.timestamp =
                        cellwarden_event::Timestamp::from_second(1_772_000_000 + i as i64).ok();
                    ev.push("user", v(if i % 7 == 0 { "batch" } else { "care01" }));
                    ev.push("client_host", v("10.1.0.20"));
                }
                ev.push("statement", v(s));
                ev.push("parameter", v(&b.join(",")));
                ev.push("Channel", v("pgaudit"));
                ev
            })
            .collect()
    };
    let collect_all = |events: &[Event<'static>]| {
        best_of(reps, || {
            let mut c = Collector::new(
                Arc::new(Schema::default()),
                Arc::new(Selection::default()),
                10_000,
            );
            for e in events {
                c.observe(e);
            }
            c.into_aggregates().subjects.len()
        })
    };
    let (collect, _) = collect_all(&events(false));
    let (collect_spread, entries) = collect_all(&events(true));
    let rate = |secs: f64, k: usize| k as f64 / secs;
    println!(
        "SQL analysis, one thread, {n} statements ({:.1} MB), best of {reps}:",
        bytes as f64 / 1e6
    );
    println!(
        "  with fingerprint cache   {:>10.0} statements/s  {:>6.1} MB/s",
        rate(cached, n),
        bytes as f64 / 1e6 / cached
    );
    println!(
        "  parsing every statement  {:>10.0} statements/s  (first {uncached_n})",
        rate(uncached, uncached_n)
    );
    println!(
        "  cache / parse            {:>10.1}x",
        rate(cached, n) / rate(uncached, uncached_n)
    );
    println!(
        "  access collector (all)   {:>10.0} statements/s",
        rate(collect, n)
    );
    println!(
        "  the same, operator-like  {:>10.0} statements/s  (43 accounts, 5,000 pids, 30 days: {entries} entries)",
        rate(collect_spread, n)
    );
    println!("  identifiers found: {found_c} (cache), {found_u} (first {uncached_n}, parsed)");
}
