//! `cellwarden scope` end to end on a generated operator: five database audit logs in the
//! five formats read (pgaudit stderr and csvlog, MySQL Enterprise JSON, MariaDB server_audit,
//! Oracle unified audit CSV), eight days of customer care, billing and reporting work, and an
//! intruder who reads the records of four chosen subscribers over three nights, plus a care
//! agent who looks up a watchlisted person. The answers are known by construction.

mod common;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use cellwarden_sim::Rng;
use common::*;

/// The intruder's targets: (MSISDN, IMSI, IMEI).
const TARGETS: [(&str, &str, &str); 4] = [
    ("33699990001", "208150999000001", "356938035643809"),
    ("33699990002", "208150999000002", "490154203237518"),
    ("33699990003", "208150999000003", "352099001761481"),
    ("33699990004", "208150999000004", "012345678901237"),
];
/// The watchlisted person the insider looks up.
const VIP: &str = "33677770001";

/// A subscriber number of the test operator.
fn msisdn(r: &mut Rng) -> String {
    format!("3361{:07}", r.below(10_000_000))
}

fn csv_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// pgaudit in a stderr log (billing / CDR database).
fn pg_stderr(r: &mut Rng) -> String {
    let mut s = String::new();
    let mut numbers: Vec<String> = (0..8 * 4 * 15).map(|_| msisdn(r)).collect();
    let mut line = |t: &str,
                    user: &str,
                    app: &str,
                    host: &str,
                    sql: &str,
                    param: &str,
                    rows: &str| {
        let body = csv_quote(sql);
        writeln!(
            s,
            "{t} UTC [4242]: [1-1] user={user},db=cdrdb,app={app},client={host} LOG:  AUDIT: SESSION,1,1,READ,SELECT,,,{body},{param}{rows}"
        )
        .unwrap();
    };
    for day in 1..=8 {
        // Care agents: prepared statements, one subscriber each, office hours.
        for agent in ["care01", "care02", "care03", "care04"] {
            for k in 0..15 {
                let m = numbers.pop().unwrap();
                line(
                    &format!("2026-03-{day:02} {:02}:{:02}:{:02}", 9 + k % 8, k * 3, day),
                    agent,
                    "crm-web",
                    "10.1.0.20",
                    "SELECT s.* FROM subscriber s WHERE s.msisdn = $1",
                    &m,
                    "",
                );
            }
        }
        // Rating batch: whole day of CDRs, every night.
        line(
            &format!("2026-03-{day:02} 02:00:00"),
            "rating",
            "rater",
            "10.2.0.5",
            "SELECT * FROM cdr WHERE call_date = $1",
            &format!("2026-03-{:02}", day.max(2) - 1),
            ",125000",
        );
        // The reporting account's normal work: counts, no subscriber.
        line(
            &format!("2026-03-{day:02} 01:00:00"),
            "svc_report",
            "reporter",
            "10.2.0.7",
            "select count(*) from cdr where call_date = current_date - 1",
            "<none>",
            ",1",
        );
    }
    // The intruder, with the reporting account, from a jump host, at night: multi-line SQL,
    // comments, quoted identifiers and odd casing.
    for day in 6..=8 {
        for (k, (m, _, _)) in TARGETS.iter().enumerate() {
            line(
                &format!("2026-03-{day:02} 03:{:02}:00", 10 + k),
                "svc_report",
                "psql",
                "10.66.6.6",
                &format!(
                    "SeLeCt c.*, l.\"CELL_ID\" -- who called whom, and where\n  FROM \"cdr\" c JOIN cell_location l ON l.imsi = c.imsi\n WHERE c.calling_number = '{m}' /* out */ OR c.called_number = '{m}'"
                ),
                "<not logged>",
                ",12",
            );
        }
    }
    s
}

/// The same kind of records in a csvlog (location database).
fn pg_csvlog() -> String {
    let mut s = String::new();
    for day in 6..=8 {
        for (k, (_, imsi, _)) in TARGETS.iter().enumerate() {
            let msg = format!(
                "AUDIT: SESSION,1,1,READ,SELECT,,,{},<not logged>",
                csv_quote(&format!(
                    "SELECT *\n  FROM loc.cell_history\n WHERE imsi IN ('{imsi}')"
                ))
            );
            writeln!(
                s,
                "2026-03-{day:02} 03:3{k}:00.000 UTC,\"svc_report\",\"locdb\",777,\"10.66.6.6:50123\",65f0.1,1,\"SELECT\",2026-03-{day:02} 03:00:00 UTC,3/1,0,LOG,00000,{},,,,,,,,,\"psql\",client backend,,0",
                csv_quote(&msg)
            )
            .unwrap();
        }
    }
    // A connection line, not an audit record.
    s.push_str("2026-03-08 03:40:00.000 UTC,\"svc_report\",\"locdb\",777,\"10.66.6.6:50123\",65f0.1,2,\"idle\",2026-03-08 03:00:00 UTC,3/1,0,LOG,00000,\"disconnection: session time: 0:40:00.000\",,,,,,,,,\"psql\",client backend,,0\n");
    s
}

/// MySQL Enterprise Audit JSON (CRM database): care traffic and the insider.
fn mysql_json(r: &mut Rng) -> String {
    let mut s = String::new();
    let mut rec = |t: &str, user: &str, ip: &str, query: &str| {
        let v = serde_json::json!({
            "timestamp": t, "id": 0, "class": "general", "event": "status",
            "connection_id": 42,
            "account": {"user": user, "host": ip},
            "login": {"user": user, "os": "", "ip": ip, "proxy": ""},
            "general_data": {"command": "Query", "sql_command": "select", "query": query, "status": 0}
        });
        writeln!(s, "{v}").unwrap();
    };
    for day in 1..=8 {
        for agent in ["care01", "care02", "care03", "care04"] {
            for k in 0..10 {
                let m = msisdn(r);
                rec(
                    &format!("2026-03-{day:02} {:02}:{:02}:00", 9 + k % 8, k * 5),
                    agent,
                    "10.1.0.20",
                    &format!("SELECT * FROM customer WHERE msisdn = '{m}'"),
                );
            }
        }
    }
    for day in [4, 7] {
        for k in 0..2 {
            rec(
                &format!("2026-03-{day:02} 14:0{k}:00"),
                "care02",
                "10.1.0.20",
                &format!("SELECT * FROM customer WHERE msisdn = '{VIP}'"),
            );
        }
    }
    s
}

/// MariaDB server_audit (SMS database): the intruder with the DBA account, national numbers.
fn mariadb() -> String {
    let mut s = String::new();
    for day in 6..=8 {
        let nat: Vec<String> = TARGETS
            .iter()
            .map(|(m, _, _)| format!("\\'0{}\\'", &m[2..]))
            .collect();
        writeln!(
            s,
            "202603{day:02} 03:50:00,smsdb,root,10.66.6.6,77,{day}01,QUERY,sms,'select * from sms_log where sender in ({})',0",
            nat.join(",")
        )
        .unwrap();
        writeln!(
            s,
            "202603{day:02} 03:50:30,smsdb,root,10.66.6.6,77,{day}03,QUERY,sms,'select * from sms_log where recipient in ({})',0",
            nat.join(",")
        )
        .unwrap();
        writeln!(s, "202603{day:02} 03:51:00,smsdb,root,10.66.6.6,77,{day}02,QUERY,sms,'select * from sms_log where 1 = 0',1064").unwrap();
    }
    s.push_str("garbage line that is not an audit record\n");
    s
}

/// Oracle unified audit trail CSV (device database) with binds.
fn oracle() -> String {
    let mut s = String::from(
        "EVENT_TIMESTAMP,DBUSERNAME,OS_USERNAME,USERHOST,CLIENT_PROGRAM_NAME,ACTION_NAME,OBJECT_SCHEMA,OBJECT_NAME,SQL_TEXT,SQL_BINDS,RETURN_CODE\n",
    );
    for day in 6..=8 {
        for (k, (_, _, imei)) in TARGETS.iter().enumerate() {
            writeln!(
                s,
                "0{day}-MAR-26 04.0{k}.00.000000 AM,EIR_RO,oracle,jump01,\"sqlplus@jump01 (TNS V1-V3)\",SELECT,EIR,DEVICE,\"select *\nfrom eir.device\nwhere imei = :1\", #1(15):{imei},0"
            )
            .unwrap();
            writeln!(
                s,
                "0{day}-MAR-26 04.0{k}.30.000000 AM,EIR_RO,oracle,jump01,\"sqlplus@jump01 (TNS V1-V3)\",SELECT,EIR,DEVICE_HISTORY,\"select * from eir.device_history where imei = :1\", #1(15):{imei},0"
            )
            .unwrap();
        }
    }
    s
}

fn write_operator(dir: &Path) {
    let mut r = Rng::new(7);
    std::fs::write(dir.join("postgresql-cdr.log"), pg_stderr(&mut r)).unwrap();
    std::fs::write(dir.join("postgresql-loc.csv"), pg_csvlog()).unwrap();
    std::fs::write(dir.join("crm-audit.log"), mysql_json(&mut r)).unwrap();
    std::fs::write(dir.join("server_audit.log"), mariadb()).unwrap();
    std::fs::write(dir.join("unified_audit.csv"), oracle()).unwrap();
    std::fs::write(
        dir.join("watchlist.txt"),
        format!("# protected persons\n+{VIP}  Minister of Defence\nallow dpo_audit\n"),
    )
    .unwrap();
}

fn scope(dir: &Path, extra: &[&str]) -> (serde_json::Value, String, Option<i32>) {
    let logs = dir.join("logs");
    let watch = dir.join("watchlist.txt");
    let mut args = vec![
        "scope",
        logs.to_str().unwrap(),
        "--watchlist",
        watch.to_str().unwrap(),
        "--country-code",
        "33",
    ];
    args.extend_from_slice(extra);
    let out = run(&args);
    let err = stderr(&out);
    let v = serde_json::from_str(&stdout(&out)).unwrap_or(serde_json::Value::Null);
    (v, err, out.status.code())
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    write_operator(&logs);
    std::fs::rename(logs.join("watchlist.txt"), dir.path().join("watchlist.txt")).unwrap();
    dir
}

fn ids(v: &serde_json::Value) -> BTreeSet<String> {
    v["subscribers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{}:{}",
                s["id_kind"].as_str().unwrap(),
                s["id"].as_str().unwrap()
            )
        })
        .collect()
}

fn expected_all() -> BTreeSet<String> {
    let mut e = BTreeSet::new();
    for (m, i, d) in TARGETS {
        e.insert(format!("msisdn:{m}"));
        e.insert(format!("imsi:{i}"));
        e.insert(format!("imei:{d}"));
    }
    e.insert(format!("msisdn:{VIP}"));
    e
}

#[test]
fn suspicious_mode_finds_exactly_the_targets_and_the_watchlisted_person() {
    let dir = setup();
    let (v, err, code) = scope(dir.path(), &[]);
    // The garbage MariaDB line is reported with its file and line, and the run goes on.
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("server_audit.log:10"), "{err}");
    assert_eq!(ids(&v), expected_all(), "{err}");
    let subs = v["subscribers"].as_array().unwrap();
    // The watchlisted person comes first, with the label and the insider's account.
    assert_eq!(subs[0]["id"], VIP);
    assert_eq!(subs[0]["watchlisted"], true);
    assert_eq!(subs[0]["label"], "Minister of Defence");
    assert_eq!(subs[0]["accounts"], serde_json::json!(["care02"]));
    assert_eq!(subs[0]["statements"], 4);
    assert!(subs[0]["reasons"].as_array().unwrap().iter().any(|r| {
        r.as_str()
            .unwrap()
            .starts_with("cellwarden.db.watchlist_access:")
    }));
    let t1 = subs.iter().find(|s| s["id"] == TARGETS[0].0).unwrap();
    assert_eq!(t1["accounts"], serde_json::json!(["root", "svc_report"]));
    assert_eq!(t1["client_hosts"], serde_json::json!(["10.66.6.6"]));
    assert_eq!(
        t1["record_types"],
        serde_json::json!(["cdr", "sms", "location"])
    );
    assert_eq!(t1["statements"], 9);
    assert_eq!(t1["rows"], 36, "rows logged by pgaudit, summed");
    assert_eq!(t1["first_access"], "2026-03-06T03:10:00.000000Z");
    assert_eq!(t1["last_access"], "2026-03-08T03:50:30.000000Z");
    assert_eq!(t1["evidence"].as_array().unwrap().len(), 9);
    assert!(
        t1["evidence"][0]["file"]
            .as_str()
            .unwrap()
            .ends_with("postgresql-cdr.log")
    );
    let imei = subs.iter().find(|s| s["id"] == TARGETS[0].2).unwrap();
    assert_eq!(imei["accounts"], serde_json::json!(["EIR_RO"]));
    assert_eq!(imei["record_types"], serde_json::json!(["device"]));
    assert_eq!(imei["client_hosts"], serde_json::json!(["jump01"]));
    // Accounts: the intruder's and the insider's are suspicious, with explanations.
    let accounts = v["accounts"].as_array().unwrap();
    let report = accounts
        .iter()
        .find(|a| a["account"] == "svc_report")
        .unwrap();
    assert_eq!(report["suspicious"], true);
    let host = report["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "cellwarden.db.new_client_host")
        .expect("new client host explained");
    assert!(host["observed"].as_str().unwrap().contains("10.66.6.6"));
    assert!(host["expected"].as_str().unwrap().contains("10.2.0.7"));
    for quiet in ["care01", "care03", "care04", "rating"] {
        assert!(
            accounts.iter().all(|a| a["account"] != quiet),
            "{quiet} should not be flagged: {accounts:#?}"
        );
    }
    // The schema inference is shown on stderr.
    assert!(err.contains("name = \"cdr\""), "{err}");
    assert!(err.contains("calling_number = \"msisdn\""), "{err}");
    // 8 days × 62 + 12 (pgaudit), 12 (csvlog), 8 × 40 + 4 (MySQL), 9 (MariaDB), 24 (Oracle).
    assert_eq!(v["summary"]["statements"], 877);
    assert_eq!(v["summary"]["failed_statements"], 3);
}

#[test]
fn selected_mode_lists_everything_an_account_read_in_a_time_range() {
    let dir = setup();
    let (v, err, _) = scope(
        dir.path(),
        &[
            "--account",
            "SVC_REPORT",
            "--since",
            "2026-03-07",
            "--until",
            "2026-03-07",
        ],
    );
    let mut want = BTreeSet::new();
    for (m, i, _) in TARGETS {
        want.insert(format!("msisdn:{m}"));
        want.insert(format!("imsi:{i}"));
    }
    assert_eq!(ids(&v), want, "{err}");
    assert_eq!(v["summary"]["mode"], "selected");
    for s in v["subscribers"].as_array().unwrap() {
        assert!(
            s["first_access"]
                .as_str()
                .unwrap()
                .starts_with("2026-03-07")
        );
        assert_eq!(s["statements"], 1);
    }
    // By client host: everything read from the jump host, whichever account.
    let (h, _, _) = scope(dir.path(), &["--host", "10.66.6.6"]);
    let mut want: BTreeSet<String> = expected_all()
        .into_iter()
        .filter(|x| !x.starts_with("imei:"))
        .collect();
    want.remove(&format!("msisdn:{VIP}"));
    assert_eq!(ids(&h), want);
}

#[test]
fn pseudonymised_reports_hide_every_identifier_and_are_stable_per_key() {
    let dir = setup();
    let key = dir.path().join("key");
    std::fs::write(&key, "a-secret-key-of-enough-length\n").unwrap();
    let key2 = dir.path().join("key2");
    std::fs::write(&key2, "another-secret-key-of-length\n").unwrap();
    let run_with = |k: &Path, fmt: &str| {
        let out = dir.path().join(format!("out.{fmt}"));
        scope(
            dir.path(),
            &[
                "--pseudonymise",
                k.to_str().unwrap(),
                "--format",
                fmt,
                "-o",
                out.to_str().unwrap(),
            ],
        );
        std::fs::read_to_string(out).unwrap()
    };
    let a = run_with(&key, "json");
    let b = run_with(&key, "json");
    let c = run_with(&key2, "json");
    assert_eq!(a, b, "same key, same report");
    for (m, i, d) in TARGETS {
        for raw in [m, i, d, &m[2..]] {
            assert!(!a.contains(raw), "{raw} leaked");
        }
    }
    assert!(!a.contains(VIP) && !a.contains("Minister"));
    let v: serde_json::Value = serde_json::from_str(&a).unwrap();
    assert_eq!(v["summary"]["pseudonymised"], true);
    assert_eq!(v["subscribers"].as_array().unwrap().len(), 13);
    assert!(
        v["subscribers"][0]["id"]
            .as_str()
            .unwrap()
            .starts_with("psn_")
    );
    assert_ne!(a, c, "another key, other pseudonyms");
    for fmt in ["csv", "html"] {
        let text = run_with(&key, fmt);
        for (m, i, d) in TARGETS {
            assert!(!text.contains(m) && !text.contains(i) && !text.contains(d));
        }
    }
}

#[test]
fn csv_and_html_reports_escape_what_the_logs_say() {
    let dir = setup();
    // A client program and host chosen by the attacker.
    let evil = "2026-03-08 03:59:00 UTC [1]: [1-1] user=svc_report,db=cdrdb,app=\"><img src=x onerror=alert(1)>,client==HYPERLINK(\"http://x\") LOG:  AUDIT: SESSION,1,1,READ,SELECT,,,\"SELECT * FROM cdr WHERE calling_number = '33655550000'\",<not logged>\n";
    std::fs::write(dir.path().join("logs/postgresql-evil.log"), evil).unwrap();
    let html = dir.path().join("r.html");
    let (_, err, _) = scope(
        dir.path(),
        &["--format", "html", "-o", html.to_str().unwrap()],
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"), "{err}");
    assert!(!page.contains("<img src=x"));
    // The prefix ends the program name at the first blank: what is left is shown escaped.
    assert!(page.contains("&quot;&gt;&lt;img"), "{page}");
    assert!(page.contains("Minister of Defence"));
    assert!(page.contains("class=\"sortable\""));
    let csv = dir.path().join("r.csv");
    scope(
        dir.path(),
        &["--format", "csv", "-o", csv.to_str().unwrap()],
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let header = rdr.headers().unwrap().clone();
    assert_eq!(header.get(0), Some("id"));
    let hosts = header.iter().position(|h| h == "client_hosts").unwrap();
    let rows: Vec<csv::StringRecord> = rdr.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 14);
    let t1 = rows.iter().find(|r| &r[0] == "33655550000").unwrap();
    assert!(
        t1[hosts].contains("'=HYPERLINK"),
        "formula neutralised: {:?}",
        &t1[hosts]
    );
}

#[test]
fn same_report_whatever_the_thread_count() {
    let dir = setup();
    let (one, _, _) = scope(dir.path(), &["--threads", "1"]);
    let (four, _, _) = scope(dir.path(), &["--threads", "4"]);
    assert_eq!(one, four);
}

/// A billing application's own account, used by the application from its host all week and,
/// on the last night, by an intruder from another host; the server writes
/// `log_line_prefix = '%m [%p] %u@%d %r '`, so the client host comes as `host(port)`. Only the
/// intruder's reads are in scope, with or without the prefix given, and `--host` finds them.
#[test]
fn shared_service_account_is_scoped_by_session() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Rng::new(18);
    let mut log = String::new();
    let mut app_read = BTreeSet::new();
    let mut line = |t: &str, pid: u32, host: &str, port: u32, sql: &str| {
        let _ = writeln!(
            log,
            "2026-03-0{t} UTC [{pid}] crm_app@billing {host}({port}) LOG:  AUDIT: SESSION,1,1,READ,SELECT,,,\"{sql}\",<not logged>"
        );
    };
    for day in 1..=7 {
        for i in 0..30 {
            let n = msisdn(&mut r);
            app_read.insert(format!("msisdn:{n}"));
            let t = format!("{day} {:02}:{:02}:00.000", 9 + i % 8, i);
            line(
                &t,
                4000 + day,
                "10.20.0.5",
                50000 + i,
                &format!("SELECT * FROM subscriber WHERE msisdn = '{n}'"),
            );
        }
    }
    for (i, (m, imsi, _)) in TARGETS.iter().enumerate() {
        let t = format!("7 11:{:02}:00.000", 30 + i);
        line(
            &t,
            9999,
            "10.30.5.17",
            46773,
            &format!("SELECT * FROM cdr WHERE calling_number = '{m}' OR imsi = '{imsi}'"),
        );
    }
    let path = dir.path().join("postgresql-billing.log");
    std::fs::write(&path, log).unwrap();
    let p = path.to_str().unwrap();
    let scoped = |extra: &[&str]| -> BTreeSet<String> {
        let mut args = vec!["scope", p, "--format", "json"];
        args.extend_from_slice(extra);
        let v = scope_report(&args);
        for s in v["subscribers"].as_array().unwrap() {
            for e in s["evidence"].as_array().unwrap() {
                assert_eq!(e["client_host"], "10.30.5.17", "{s}");
                assert_eq!(e["session"], "9999", "{s}");
            }
        }
        ids(&v)
    };
    let want: BTreeSet<String> = TARGETS
        .iter()
        .flat_map(|(m, imsi, _)| [format!("msisdn:{m}"), format!("imsi:{imsi}")])
        .collect();
    assert_eq!(scoped(&[]), want, "automatic mode");
    assert_eq!(
        scoped(&["--pg-prefix", "%m [%p] %u@%d %r "]),
        want,
        "with the prefix given"
    );
    assert_eq!(scoped(&["--host", "10.30.5.17"]), want, "--host");
    // The account alone lists everything it read: the application's reads too.
    let all = ids(&scope_report(&[
        "scope",
        p,
        "--format",
        "json",
        "--account",
        "crm_app",
    ]));
    assert!(all.is_superset(&app_read) && all.is_superset(&want));
}

/// The JSON report of a `scope` run that must succeed.
fn scope_report(args: &[&str]) -> serde_json::Value {
    let out = run(args);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}
