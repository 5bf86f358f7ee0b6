//! Conformance with logs written by real software, checked against what their publishers expect
//! (`../shared/data/real-formats/`): Beats' module test logs (auditd, auth/secure, syslog,
//! PostgreSQL) with Filebeat's expected fields, Zeek's test baselines, pgaudit's regression
//! output. Every sample is read without error, and time, host, users, processes, addresses,
//! databases and statements match; where we disagree with a publisher on purpose the case is
//! listed in [`DISAGREE`] with the reason (a listed case that no longer disagrees fails too).

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

const BEATS: &str = "real-formats/elastic-beats/filebeat/module";
const MODULES: [&str; 6] = [
    "auditd/log",
    "system/auth",
    "system/syslog",
    "postgresql/log",
    "mysql/error",
    "mysql/slowlog",
];

/// (log file, Filebeat field, line of the log, why we differ).
const DISAGREE: &[(&str, &str, u64, &str)] = &[
    (
        "mysql/error/error.log",
        "message",
        7,
        "MySQL 5.7 writes `ready for connections.` and `Version: …` as one message on two \
         lines; a line without a time continues the record before it, Filebeat's pattern \
         starts a new one",
    ),
    (
        "mysql/error/error.log",
        "(event)",
        8,
        "the `Version: …` line is the second line of the message before it (see line 7)",
    ),
    (
        "mysql/slowlog/percona-ubuntu-8.0.15.log",
        "mysql.slowlog.query",
        5,
        "Filebeat appends the server's restart banner to the statement before it; the banner \
         is not part of any statement",
    ),
    (
        "system/syslog/test-syslog.log",
        "@timestamp",
        1,
        "upstream pair mismatch: the expected time (1986-04-25, from another sample) is not the \
         time written on the line (2022-04-21T14:30:00Z)",
    ),
    (
        "system/syslog/test-syslog.log",
        "message",
        1,
        "the line has no host name; RFC 3164 puts one after the time, so we read `greedy` as \
         the host, Filebeat keeps it in the message",
    ),
    (
        "system/syslog/darwin-syslog-sample.log",
        "@timestamp",
        0,
        "Beats keeps one year for the whole file; the file goes from December to April, so \
         we read April as the next year (a year-less log is written forwards in time)",
    ),
    (
        "system/syslog/iso8601_timestamp_multiline_syslog.log",
        "@timestamp",
        1,
        "the line says 23:59:59+02:00; Filebeat's expected keeps the wall time with the zone \
         it was told (-02:00), we keep the offset written on the line",
    ),
    (
        "system/auth/test.log",
        "system.auth.ssh.ip",
        4,
        "upstream pair mismatch: this old expected file's entry for offset 341 is another \
         line's (116.31.116.24); the line at that offset names 216.160.83.57",
    ),
    (
        "postgresql/log/postgresql-9.5-multi-core.log",
        "@timestamp",
        0,
        "Filebeat's expected time is the time its test ran (2018-12-07): that pipeline did not \
         read `YYYY-MM-DD HH:MM:SS EST`; we read the time on the line",
    ),
    (
        "postgresql/log/postgresql-9.6-multi-core.log",
        "@timestamp",
        0,
        "PostgreSQL writes the abbreviation of the server's zone; Beats reads `EST` as New \
         York time (EDT in July, UTC-4), we read it as what it means, UTC-5",
    ),
    (
        "postgresql/log/postgresql-9.6-multi-core.log",
        "postgresql.log.database",
        1,
        "PostgreSQL writes [unknown] before a connection is authenticated; we leave database \
         and user unset rather than name an account `unknown`",
    ),
    (
        "postgresql/log/postgresql-9.6-multi-core.log",
        "user.name",
        1,
        "as postgresql.log.database: [unknown] is no user",
    ),
    (
        "postgresql/log/postgresql-9.6-new-timestamp.log",
        "@timestamp",
        0,
        "`EST` is UTC-5 for us, New York time for Beats (see postgresql-9.6-multi-core.log)",
    ),
    (
        "auditd/log/execve-hex-arg.log",
        "process.executable",
        1,
        "an EXECVE record alone has no exe=; Filebeat takes argv[0] (`sh`, not a path), we \
         leave exe unset rather than guess",
    ),
    (
        "auditd/log/test.log",
        "process.executable",
        11,
        "as execve-hex-arg.log: an EXECVE record without its SYSCALL record names no exe",
    ),
    (
        "auditd/log/test.log",
        "source.address",
        4,
        "Filebeat's expected file names 216.160.83.61, an address the record does not hold \
         (its GeoIP test fixture); the record says addr=96.241.146.97",
    ),
    (
        "auditd/log/useradd.log",
        "user.id",
        0,
        "Filebeat puts the login user (auid 1000) in user.id for account-management records; \
         we keep auditd's uid (0, the user the tool ran as) in uid and the auid in auid, \
         which matches Filebeat's user.audit.id",
    ),
];

/// (log file, line) we report as damaged where Filebeat joins the line to the record before.
const ERRORS: &[(&str, u64, &str)] = &[(
    "system/syslog/test-syslog.log",
    2,
    "`syslog` on a line of its own, no time, no indent: Filebeat joins every line that does \
     not start with a time to the record before; syslog daemons write one record a line \
     (rsyslog escapes line ends as #012), so we report it as damage and read the rest",
)];

/// Error lines of a run that [`ERRORS`] does not list.
fn unlisted_errors(name: &str, err: &str) -> Vec<String> {
    err.lines()
        .filter(|l| l.starts_with("error:"))
        .filter(|l| {
            !ERRORS.iter().any(|(f, n, _)| {
                name.ends_with(f.rsplit('/').next().unwrap_or(f))
                    && l.contains(&format!("{}:{n}: ", f.rsplit('/').next().unwrap_or(f)))
            })
        })
        .map(str::to_owned)
        .collect()
}

/// Filebeat field → our fields (any one may hold it); `@` fields are the event's own.
const FIELDS: &[(&str, &[&str])] = &[
    ("@timestamp", &["@timestamp"]),
    ("host.hostname", &["@host"]),
    ("system.auth.hostname", &["@host"]),
    ("system.syslog.hostname", &["@host"]),
    ("auditd.log.node", &["@host"]),
    ("process.pid", &["pid"]),
    ("system.auth.pid", &["pid"]),
    ("system.syslog.pid", &["pid"]),
    ("process.name", &["program", "comm"]),
    ("system.syslog.program", &["program"]),
    ("system.syslog.message", &["message"]),
    ("system.auth.user", &["user"]),
    ("system.auth.ssh.ip", &["src_ip"]),
    ("system.auth.ssh.port", &["src_port"]),
    ("system.auth.ssh.method", &["auth_method"]),
    ("system.auth.sudo.command", &["command"]),
    ("system.auth.sudo.user", &["target_user"]),
    ("system.auth.sudo.tty", &["tty"]),
    ("system.auth.sudo.pwd", &["pwd"]),
    ("system.auth.useradd.name", &["name"]),
    ("system.auth.groupadd.name", &["name"]),
    ("process.executable", &["exe"]),
    ("process.ppid", &["ppid"]),
    ("process.parent.pid", &["ppid"]),
    ("process.working_directory", &["cwd"]),
    ("process.args", &["@argv", "cmd"]),
    ("user.id", &["uid"]),
    ("user.audit.id", &["auid"]),
    ("auditd.log.ses", &["ses"]),
    ("auditd.log.syscall", &["SYSCALL", "syscall"]),
    ("source.address", &["addr", "saddr", "laddr", "src"]),
    ("log.level", &["level"]),
    ("postgresql.log.database", &["database"]),
    ("postgresql.log.query", &["query", "statement"]),
    ("postgresql.log.query_step", &["query_step"]),
    ("postgresql.log.query_name", &["query_name"]),
    ("postgresql.log.client_addr", &["client_host"]),
    ("postgresql.log.client_port", &["client_port"]),
    ("postgresql.log.session_id", &["session_id"]),
    ("postgresql.log.sql_state_code", &["sql_state"]),
    ("postgresql.log.command_tag", &["command_tag"]),
    ("postgresql.log.application_name", &["application"]),
    ("postgresql.log.backend_type", &["backend_type"]),
    ("postgresql.log.detail", &["detail"]),
    ("event.duration", &["@duration"]),
];

/// Filebeat field → ours, for the MySQL modules.
const MYSQL_FIELDS: &[(&str, &[&str])] = &[
    ("mysql.slowlog.query", &["statement"]),
    ("mysql.slowlog.schema", &["database"]),
    ("mysql.slowlog.rows_sent", &["rows"]),
    ("mysql.slowlog.rows_examined", &["rows_examined"]),
    ("mysql.slowlog.rows_affected", &["rows_affected"]),
    ("mysql.slowlog.lock_time.sec", &["lock_time"]),
    ("mysql.thread_id", &["session_id", "thread"]),
    ("source.ip", &["client_host"]),
    ("source.domain", &["client_host_name", "client_host"]),
];

/// Modules whose `message` is the log message (auditd's is the whole record).
const MESSAGE_MODULES: [&str; 4] = [
    "system/auth",
    "system/syslog",
    "postgresql/log",
    "mysql/error",
];

fn events(args: &[&str]) -> (Vec<Value>, String) {
    let out = run(args);
    let err = stderr(&out);
    let evs = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("event line is JSON"))
        .collect();
    (evs, err)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(" "),
        other => other.to_string(),
    }
}

/// Whether two values agree: as text, as numbers, or as instants.
fn same(expected: &Value, ours: &str) -> bool {
    let e = text(expected);
    if e == ours || e.eq_ignore_ascii_case(ours) {
        return true;
    }
    if let (Ok(a), Ok(b)) = (e.parse::<f64>(), ours.parse::<f64>()) {
        return (a - b).abs() < 1e-6 * a.abs().max(1.0);
    }
    if let (Ok(a), Ok(b)) = (
        e.parse::<jiff::Timestamp>(),
        ours.parse::<jiff::Timestamp>(),
    ) {
        return a.as_millisecond() == b.as_millisecond();
    }
    false
}

/// Our value for a field spec (`@timestamp`, `@host`, `@argv`, `@duration`, or a field).
fn ours(ev: &Value, spec: &str) -> Option<String> {
    let f = &ev["fields"];
    match spec {
        "@timestamp" => ev["timestamp"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        "@host" => ev["host"].as_str().map(str::to_owned),
        "@argv" => {
            let mut args = Vec::new();
            while let Some(a) = f.get(format!("a{}", args.len())) {
                args.push(text(a));
            }
            (!args.is_empty()).then(|| args.join(" "))
        }
        // Filebeat gives durations in nanoseconds; we keep PostgreSQL's milliseconds.
        "@duration" => f["duration_ms"]
            .as_str()
            .and_then(|d| d.parse::<f64>().ok())
            .map(|ms| format!("{}", (ms * 1e6).round())),
        _ => f.get(spec).filter(|v| !v.is_null()).map(text),
    }
}

fn line_of(log: &[u8], offset: u64) -> u64 {
    log[..offset as usize]
        .iter()
        .filter(|&&b| b == b'\n')
        .count() as u64
        + 1
}

/// What Filebeat was told the local zone was, in a form `--timezone` takes.
fn zone_arg(expected: &[Value]) -> Option<String> {
    let z = expected.iter().find_map(|e| e["event.timezone"].as_str())?;
    let ok = z == "UTC"
        || (z.len() == 6 && (z.starts_with('+') || z.starts_with('-')) && &z[3..4] == ":");
    ok.then(|| z.to_owned())
}

struct Mismatch {
    file: String,
    field: String,
    line: u64,
    detail: String,
}

fn check_beats_pair(module: &str, log: &Path, expected: &Path, found: &mut Vec<Mismatch>) {
    let name = format!("{module}/{}", log.file_name().unwrap().to_string_lossy());
    let bytes = std::fs::read(log).unwrap();
    let exp: Vec<Value> = serde_json::from_slice(&std::fs::read(expected).unwrap()).unwrap();
    let year = exp
        .iter()
        .find_map(|e| e["@timestamp"].as_str())
        .map(|t| t[..4].to_owned());
    let mut args = vec!["events".to_owned(), log.to_string_lossy().into_owned()];
    if let Some(y) = &year {
        args.extend(["--year".into(), y.clone()]);
    }
    if let Some(z) = zone_arg(&exp) {
        args.push(format!("--timezone={z}"));
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (evs, err) = events(&refs);
    let errors = unlisted_errors(&name, &err);
    assert!(errors.is_empty(), "{name}: read with errors:\n{err}");
    let by_line: HashMap<u64, &Value> = evs
        .iter()
        .map(|e| (e["source_record"].as_u64().unwrap(), e))
        .collect();
    for e in &exp {
        let offset = e
            .get("log.offset")
            .or_else(|| e.get("offset"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let line = line_of(&bytes, offset);
        // auditd: Filebeat gives every record, we give the event its records make (same serial).
        let ev = match e.get("auditd.log.sequence") {
            Some(seq) => evs.iter().find(|ev| ev["fields"]["serial"] == *seq),
            // The slow log: Filebeat's record starts at `# User@Host:`, ours at the `# Time:`
            // line before it when there is one.
            None if module == "mysql/slowlog" => by_line
                .get(&line)
                .or_else(|| by_line.get(&(line - 1)))
                .copied(),
            None => by_line.get(&line).copied(),
        };
        let Some(ev) = ev else {
            found.push(Mismatch {
                file: name.clone(),
                field: "(event)".into(),
                line,
                detail: "no event for this record".into(),
            });
            continue;
        };
        let mut fields: Vec<(&str, &[&str])> = FIELDS.to_vec();
        if module.starts_with("mysql/") {
            fields.extend_from_slice(MYSQL_FIELDS);
        }
        if MESSAGE_MODULES.contains(&module) {
            fields.push(("message", &["message"]));
        }
        // auditd user records: Filebeat's user.name is the account acted on.
        if module == "auditd/log" {
            fields.push(("user.name", &["acct", "user", "User", "UID", "id"]));
        } else {
            fields.push(("user.name", &["user"]));
        }
        for (beats, specs) in fields {
            let Some(want) = e.get(beats) else { continue };
            let got: Vec<String> = specs.iter().filter_map(|s| ours(ev, s)).collect();
            // PostgreSQL: Filebeat's message is the whole line in some versions and only the
            // statement in others; ours is the server's message (between the two). MySQL 8:
            // Filebeat keeps `[MY-…] [Server]` in the message, we give them their own fields.
            // Trailing line ends are not part of a statement.
            let agrees = |g: &String| {
                let w = text(want);
                let (w, g) = (w.trim_end(), g.trim_end());
                same(want, g)
                    || ((module == "postgresql/log" || module.starts_with("mysql/"))
                        && !g.is_empty()
                        && (w == g || w.ends_with(g) || g.ends_with(w)))
            };
            if !got.iter().any(agrees) {
                found.push(Mismatch {
                    file: name.clone(),
                    field: beats.into(),
                    line,
                    detail: format!("Filebeat {want}, ours {got:?}"),
                });
            }
        }
    }
}

fn listed(m: &Mismatch) -> bool {
    DISAGREE
        .iter()
        .any(|(f, k, l, _)| *f == m.file && *k == m.field && (*l == 0 || *l == m.line))
}

#[test]
fn beats_module_samples_match_filebeat() {
    let Some(root) = shared(BEATS) else { return };
    let mut found = Vec::new();
    let mut pairs = 0;
    for module in MODULES {
        let dir = root.join(module).join("test");
        let mut logs: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| !p.to_string_lossy().ends_with(".json"))
            .collect();
        logs.sort();
        for log in logs {
            // Every sample reads without error, with or without an expected file.
            let (evs, err) = events(&["events", log.to_str().unwrap(), "--year", "2020"]);
            let errors = unlisted_errors(&log.to_string_lossy(), &err);
            assert!(
                errors.is_empty(),
                "{}: read with errors:\n{err}",
                log.display()
            );
            assert!(!evs.is_empty(), "{}: no events", log.display());
            let expected = PathBuf::from(format!("{}-expected.json", log.display()));
            let alt = PathBuf::from(
                format!("{}-expected.json", log.display()).replace(".log-expected", "-expected"),
            );
            let expected = if expected.exists() { expected } else { alt };
            if expected.exists() {
                pairs += 1;
                check_beats_pair(module, &log, &expected, &mut found);
            }
        }
    }
    assert!(pairs >= 20, "only {pairs} log/expected pairs found");
    let unlisted: Vec<String> = found
        .iter()
        .filter(|m| !listed(m))
        .map(|m| format!("{}:{} {}: {}", m.file, m.line, m.field, m.detail))
        .collect();
    assert!(
        unlisted.is_empty(),
        "{} disagreements with Filebeat:\n{}",
        unlisted.len(),
        unlisted.join("\n")
    );
    // A listed disagreement that no longer happens is taken off the list.
    let seen: BTreeSet<(&str, &str)> = found
        .iter()
        .map(|m| (m.file.as_str(), m.field.as_str()))
        .collect();
    for (f, k, _, why) in DISAGREE {
        assert!(
            seen.contains(&(*f, *k)),
            "listed disagreement {f} {k} ({why}) no longer happens"
        );
    }
}

#[test]
fn zeek_baselines_match_their_columns() {
    let Some(root) = shared("real-formats/zeek-zeek/testing/btest/Baseline") else {
        return;
    };
    let mut files: Vec<PathBuf> = Vec::new();
    for d in std::fs::read_dir(&root).unwrap() {
        for f in std::fs::read_dir(d.unwrap().path()).unwrap() {
            files.push(f.unwrap().path());
        }
    }
    files.sort();
    assert!(files.len() >= 10, "{files:?}");
    let mut rows = 0;
    for file in files {
        let (evs, err) = events(&["events", file.to_str().unwrap()]);
        assert!(!err.contains("error"), "{}: {err}", file.display());
        let text = std::fs::read_to_string(&file).unwrap();
        let mut columns: Vec<&str> = Vec::new();
        let by_line: HashMap<u64, &Value> = evs
            .iter()
            .map(|e| (e["source_record"].as_u64().unwrap(), e))
            .collect();
        for (i, line) in text.lines().enumerate() {
            if let Some(f) = line.strip_prefix("#fields\t") {
                columns = f.split('\t').collect();
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let n = i as u64 + 1;
            let ev = by_line
                .get(&n)
                .unwrap_or_else(|| panic!("{}:{n}: no event for the row", file.display()));
            rows += 1;
            for (col, val) in columns.iter().zip(line.split('\t')) {
                if val == "-" || val == "(empty)" {
                    continue;
                }
                if *col == "ts" {
                    // btest masks times (XXXXXXXXXX.XXXXXX): no time, and no error either.
                    if val.starts_with('X') {
                        assert_eq!(ev["timestamp"], "", "{}:{n}", file.display());
                    }
                    continue;
                }
                let got = ours(ev, col);
                assert!(
                    got.as_deref()
                        .is_some_and(|g| same(&Value::String(val.to_string()), g)),
                    "{}:{n} {col}: Zeek {val}, ours {got:?}",
                    file.display()
                );
            }
        }
    }
    assert!(rows > 20, "{rows} rows");
}

/// Splits one pgaudit CSV body (quotes doubled inside quoted values).
fn csv(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                out.last_mut().unwrap().push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    out
}

#[test]
fn pgaudit_regression_output_is_read() {
    let Some(out) = shared("real-formats/pgaudit-pgaudit/expected/pgaudit.out") else {
        return;
    };
    // psql's regression output: the SQL script echoed, with the server's NOTICE lines between
    // (those are the log records; the script lines are not, and are reported as skipped).
    let (evs, _) = events(&["events", out.to_str().unwrap()]);
    let by_line: HashMap<u64, &Value> = evs
        .iter()
        .map(|e| (e["source_record"].as_u64().unwrap(), e))
        .collect();
    let log = std::fs::read_to_string(&out).unwrap();
    let (mut checked, mut whole) = (0, 0);
    for (i, line) in log.lines().enumerate() {
        let Some(body) = line.strip_prefix("NOTICE:  AUDIT: ") else {
            continue;
        };
        // A record whose statement spans lines is checked on its first columns only.
        let cols = csv(body);
        let n = i as u64 + 1;
        let ev = by_line
            .get(&n)
            .unwrap_or_else(|| panic!("pgaudit.out:{n}: no event for {line}"));
        let f = &ev["fields"];
        assert_eq!(f["Channel"], "pgaudit", "{n}");
        assert_eq!(f["audit_type"], cols[0], "{n}");
        assert_eq!(text(&f["statement_id"]), cols[1], "{n}");
        assert_eq!(f["class"], cols[3], "{n}: {line}");
        assert_eq!(f["command"], cols[4], "{n}: {line}");
        checked += 1;
        // Object and statement where the record is on one line (8 columns, 9 with the
        // parameters, 10 with the row count).
        if cols.len() >= 8 && body.matches('"').count() % 2 == 0 {
            assert_eq!(text(&f["object_name"]), cols[6], "{n}: {line}");
            assert_eq!(f["statement"], cols[7], "{n}: {line}");
            whole += 1;
        }
    }
    let records = log
        .lines()
        .filter(|l| l.starts_with("NOTICE:  AUDIT: "))
        .count();
    assert_eq!(checked, records);
    assert!(whole > 200, "{whole} one-line records checked in full");
}

/// Every real-format sample followed by `watch` (its text units decoded on other threads while
/// the loop runs the detectors) gives the alerts `hunt` gives over the same files, each once.
#[test]
fn watch_over_the_real_format_samples_gives_hunts_alerts() {
    let Some(root) = shared("real-formats") else {
        return;
    };
    let sorted = |text: &str| {
        let mut v: Vec<String> = alerts(text).iter().map(|a| a.to_string()).collect();
        v.sort();
        v
    };
    let hunt = run(&["hunt", root.to_str().unwrap(), "--format", "jsonl"]);
    let want = sorted(&stdout(&hunt));
    assert!(!want.is_empty(), "hunt raised no alert: {}", stderr(&hunt));
    let dir = tempfile::tempdir().unwrap();
    let (state, out, log) = (
        dir.path().join("state"),
        dir.path().join("alerts.jsonl"),
        dir.path().join("watch.log"),
    );
    let child = bin()
        .arg("watch")
        .args(["--follow", root.to_str().unwrap()])
        .args(["--state", state.to_str().unwrap()])
        .args(["-o", out.to_str().unwrap()])
        .args(["--quiet", "--checkpoint-secs", "0.2", "--idle-secs", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start watch");
    // Days are judged once the sources are idle: wait for hunt's alerts, then a little more
    // (an alert written twice would show up in that time).
    let start = std::time::Instant::now();
    let read = || sorted(&std::fs::read_to_string(&out).unwrap_or_default());
    while read().len() < want.len() && start.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait_with_output().unwrap().status;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "{text}");
    assert_eq!(
        read(),
        want,
        "{}",
        text.lines().take(40).collect::<Vec<_>>().join("\n")
    );
}
