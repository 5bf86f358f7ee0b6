//! MySQL, MariaDB and Percona Server's own logs: the slow query log, the general query log
//! and the error log, in the forms these servers have written since 5.5 / 10.1.
//!
//! - Slow query log (`Channel: mysql_slow`): a record is the `# Time:` / `# User@Host:` /
//!   `# Query_time:` comment lines (with MariaDB's `# Thread_id: … Schema: …` and Percona's
//!   extra lines), an optional `use db;`, `SET timestamp=…;` and the statement, which may span
//!   lines. Fields: `user`, `client_host` (the address in brackets, else the host name),
//!   `session_id` (the connection id), `database`, `statement`, `rows` (rows sent),
//!   `rows_examined`, `rows_affected`, `query_time`, `lock_time`.
//! - General query log (`Channel: mysql_general`): `time id command argument` lines, tab
//!   separated (the time left out for lines in the same second by servers before 5.7). A
//!   `Query` or `Execute` line does not name its user: the reader keeps each connection's
//!   `Connect` (user, host, database) and `Init DB` and adds them ([`Connections`]).
//! - Error log (`Channel: mysql_error`): `time [thread] [Level] [code] [subsystem] message`
//!   lines; refused logins (`Access denied for user 'u'@'h'`) give `user`, `client_host`,
//!   `action: authentication_failed` and `outcome: failure`.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};

use cellwarden_event::{Timestamp, Value};
use jiff::tz::TimeZone;

use crate::json::{Fields, put_new_owned};

/// Annotation the reader appends to a general-log record: the connection's user, host and
/// database, and the time of the last line that had one.
pub const CONNECTION_ANNOTATION: &str = "\x1econnection";

/// Connections remembered per file; the oldest are forgotten past it.
pub const MAX_CONNECTIONS: usize = 65_536;

fn put(out: &mut Fields<'static>, k: &'static str, v: &str) {
    put_new_owned(out, k, v.trim());
}

/// The banner a server writes at the top of its slow and general logs (and again at each
/// restart): `/usr/sbin/mysqld, Version: … started with:`, `Tcp port: …`, `Time  Id Command
/// Argument`.
pub fn is_banner(line: &str) -> bool {
    (line.contains(", Version: ") && line.trim_end().ends_with("started with:"))
        || line.starts_with("Tcp port: ")
        || (line.starts_with("Time")
            && line.contains("Id")
            && line.trim_end().ends_with("Argument"))
}

/// Lines that start a slow-log record.
pub fn starts_slow_record(line: &str) -> bool {
    line.starts_with("# Time: ") || line.starts_with("# User@Host: ")
}

/// Length of a time at the start of `t` as these servers write it: `2019-03-24T16:22:43.836524Z`
/// (5.7+, also with an offset), `2019-10-16 17:24:15` (MariaDB 10.x), `190324 16:03:00` or
/// `191015  9:46:45` (before 5.7).
fn time_len(t: &str) -> Option<usize> {
    // Only ASCII can be a time: the length is then a character boundary.
    time_len_bytes(t.as_bytes()).filter(|&n| t.as_bytes()[..n].is_ascii())
}

fn time_len_bytes(b: &[u8]) -> Option<usize> {
    let d = |r: std::ops::Range<usize>| b.get(r).is_some_and(|x| x.iter().all(u8::is_ascii_digit));
    if b.len() >= 19
        && d(0..4)
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b' ')
        && b[13] == b':'
        && b[16] == b':'
    {
        let mut j = 19;
        if b.get(j) == Some(&b'.') {
            j += 1 + b[j + 1..].iter().take_while(|x| x.is_ascii_digit()).count();
        }
        if b.get(j) == Some(&b'Z') {
            j += 1;
        } else if matches!(b.get(j), Some(b'+' | b'-')) && b.len() >= j + 6 && b[j + 3] == b':' {
            j += 6;
        }
        return Some(j);
    }
    if b.len() >= 15 && d(0..6) && b[6] == b' ' {
        // `yymmdd hh:mm:ss` with the hour space-padded.
        let h = if b[7] == b' ' { 8 } else { 7 };
        let end = h + if b.get(h + 1) == Some(&b':') { 7 } else { 8 };
        if b.len() >= end && b[end - 3] == b':' && b[end - 6] == b':' {
            return Some(end);
        }
    }
    None
}

fn parse_time(t: &str, zone: Option<&TimeZone>) -> Option<Timestamp> {
    let t = t.trim();
    let b = t.as_bytes();
    if b.len() >= 7 && b[6] == b' ' && b[..6].iter().all(u8::is_ascii_digit) {
        // `yymmdd h:mm:ss`, local time.
        let (date, time) = t.split_at(6);
        let time = time.trim();
        let time = if time.len() == 7 {
            format!("0{time}")
        } else {
            time.to_owned()
        };
        let iso = format!("20{}-{}-{}T{time}", &date[..2], &date[2..4], &date[4..6]);
        return cellwarden_event::parse_timestamp_in(&iso, zone);
    }
    crate::pgprefix::time_with_zone(&t.replacen('T', " ", 1).replacen('Z', " UTC", 1), zone)
}

/// Whether a line is an error-log record start: a time, an optional thread number, then a
/// `[Level]` (or `mysqld_safe` / `InnoDB:` messages of old servers).
pub fn is_error_line(line: &str) -> bool {
    let Some(n) = time_len(line) else {
        return false;
    };
    let rest = line[n..].trim_start();
    let rest = rest
        .trim_start_matches(|c: char| c.is_ascii_digit())
        .trim_start();
    rest.starts_with('[')
        && ["Note]", "Warning]", "ERROR]", "Error]", "System]", "Info]"]
            .iter()
            .any(|l| rest[1..].starts_with(l))
        || rest.starts_with("mysqld_safe ")
        || rest.starts_with("InnoDB: ")
}

/// Commands of the general query log.
const COMMANDS: &[&str] = &[
    "Connect",
    "Query",
    "Quit",
    "Init DB",
    "Execute",
    "Prepare",
    "Close stmt",
    "Reset stmt",
    "Fetch",
    "Field List",
    "Change user",
    "Binlog Dump",
    "Binlog Dump GTID",
    "Table Dump",
    "Statistics",
    "Ping",
    "Shutdown",
    "Refresh",
    "Processlist",
    "Kill",
    "Debug",
    "Set option",
    "Long Data",
    "Register Slave",
    "Daemon",
    "Error",
];

/// A general-log line's head: (time text, connection id, command, argument).
pub fn general_head(line: &str) -> Option<(Option<&str>, &str, &str, &str)> {
    let (time, rest) = match time_len(line) {
        Some(n) => (Some(&line[..n]), &line[n..]),
        None if line.starts_with('\t') || line.starts_with(' ') => (None, line),
        None => return None,
    };
    let rest = rest.trim_start_matches(['\t', ' ']);
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let id = &rest[..digits];
    let rest = rest[digits..].strip_prefix(' ')?;
    let (cmd, arg) = match rest.split_once('\t') {
        Some((c, a)) => (c, a),
        None => (rest.trim_end(), ""),
    };
    if !COMMANDS.contains(&cmd) {
        return None;
    }
    Some((time, id, cmd, arg))
}

/// `user@host on db using TCP/IP`, `user@host as anonymous on db`, `user@host on  using
/// Socket`.
fn connect_argument(arg: &str) -> (String, String, String) {
    let (user, rest) = arg.split_once('@').unwrap_or(("", arg));
    let host = rest.split([' ', '\t']).next().unwrap_or("");
    let db = rest
        .split_once(" on ")
        .map(|(_, r)| r.split(" using ").next().unwrap_or("").trim())
        .unwrap_or("");
    (user.trim().to_owned(), host.to_owned(), db.to_owned())
}

#[derive(Debug, Clone, Default)]
struct Connection {
    user: String,
    host: String,
    database: String,
}

/// What the general log said about each connection so far, for the records that do not say
/// it again; at most [`MAX_CONNECTIONS`], the oldest forgotten first.
#[derive(Debug, Default)]
pub struct Connections {
    open: HashMap<String, Connection>,
    order: VecDeque<String>,
    last_time: String,
}

impl Connections {
    /// Takes the first line of one general-log record; the annotation to append to it.
    pub fn observe(&mut self, first: &str) -> Option<String> {
        let (time, id, cmd, arg) = general_head(first)?;
        if let Some(t) = time {
            self.last_time.clear();
            self.last_time.push_str(t);
        }
        match cmd {
            "Connect" | "Change user" => {
                let (user, host, database) = connect_argument(arg);
                if !self.open.contains_key(id) {
                    self.order.push_back(id.to_owned());
                    if self.order.len() > MAX_CONNECTIONS
                        && let Some(old) = self.order.pop_front()
                    {
                        self.open.remove(&old);
                    }
                }
                self.open.insert(
                    id.to_owned(),
                    Connection {
                        user,
                        host,
                        database,
                    },
                );
            }
            "Init DB" => {
                if let Some(c) = self.open.get_mut(id) {
                    c.database = arg.trim().to_owned();
                }
            }
            _ => {}
        }
        let c = self.open.get(id);
        let note = format!(
            "{CONNECTION_ANNOTATION}\x1f{}\x1f{}\x1f{}\x1f{}",
            c.map_or("", |c| &c.user),
            c.map_or("", |c| &c.host),
            c.map_or("", |c| &c.database),
            if time.is_none() { &self.last_time } else { "" }
        );
        if cmd == "Quit" && self.open.remove(id).is_some() {
            self.order.retain(|x| x != id);
        }
        Some(note)
    }
}

/// `user[user] @ host [ip]` (also `user[user] @  [ip]`, `@ localhost []`).
fn user_host(text: &str, out: &mut Fields<'static>) {
    let (u, rest) = text.split_once(" @ ").unwrap_or((text, ""));
    let user = u.split('[').next().unwrap_or("").trim();
    let priv_user = u
        .split_once('[')
        .map_or("", |(_, r)| r.trim_end_matches(']'));
    put(out, "user", if user.is_empty() { priv_user } else { user });
    let rest = rest.split("  Id:").next().unwrap_or(rest).trim();
    let (name, ip) = match rest.rsplit_once('[') {
        Some((n, ip)) => (n.trim(), ip.trim_end_matches(']').trim()),
        None => (rest, ""),
    };
    put(out, "client_host", if ip.is_empty() { name } else { ip });
    if !ip.is_empty() && !name.is_empty() {
        put(out, "client_host_name", name);
    }
}

/// `Key: value  Key: value` comment lines.
fn comment_pairs(line: &str, mut f: impl FnMut(&str, &str)) {
    let mut words = line.split_whitespace().peekable();
    while let Some(w) = words.next() {
        if let Some(k) = w.strip_suffix(':')
            && let Some(v) = words.peek()
            && !v.ends_with(':')
        {
            f(k, v);
            words.next();
        }
    }
}

/// Fields of one slow-log record; `None` when it holds no statement.
pub fn slow_record(text: &str, zone: Option<&TimeZone>) -> Option<crate::dbaudit::Record> {
    let mut out: Fields<'static> = Vec::with_capacity(14);
    let mut ts = None;
    let mut sql = String::new();
    for line in text.lines() {
        if let Some(c) = line.strip_prefix('#').filter(|_| sql.is_empty()) {
            let c = c.strip_prefix(' ').unwrap_or(c);
            if let Some(t) = c.strip_prefix("Time: ") {
                ts = ts.or_else(|| parse_time(t, zone));
            } else if let Some(uh) = c.strip_prefix("User@Host: ") {
                user_host(uh, &mut out);
                if let Some((_, id)) = uh.split_once("Id:") {
                    put(&mut out, "session_id", id.trim());
                }
            } else {
                comment_pairs(c, |k, v| match k {
                    "Thread_id" => put(&mut out, "session_id", v),
                    "Schema" => put(&mut out, "database", v),
                    "Query_time" => {
                        put(&mut out, "query_time", v);
                        if let Ok(secs) = v.parse::<f64>() {
                            put(&mut out, "duration_ms", &format!("{}", secs * 1000.0));
                        }
                    }
                    "Lock_time" => put(&mut out, "lock_time", v),
                    "Rows_sent" => {
                        if let Ok(n) = v.parse::<i64>() {
                            out.push((Cow::Borrowed("rows"), Value::Int(n)));
                        }
                    }
                    "Rows_examined" => put(&mut out, "rows_examined", v),
                    "Rows_affected" => put(&mut out, "rows_affected", v),
                    "Last_errno" if v != "0" => put(&mut out, "return_code", v),
                    _ => {}
                });
            }
            continue;
        }
        if sql.is_empty() {
            let l = line.trim();
            if let Some(db) = l.strip_prefix("use ").and_then(|r| r.strip_suffix(';')) {
                put(&mut out, "database", db.trim_matches('`'));
                continue;
            }
            if let Some(t) = l
                .strip_prefix("SET timestamp=")
                .and_then(|r| r.strip_suffix(';'))
                .and_then(|r| r.parse::<i64>().ok())
            {
                // The statement's start, in seconds: absolute, so it wins over `# Time:`.
                ts = Timestamp::from_second(t).ok().or(ts);
                continue;
            }
            if is_banner(line) {
                continue;
            }
        }
        if !sql.is_empty() {
            sql.push('\n');
        }
        sql.push_str(line);
    }
    let sql = sql.trim();
    if sql.is_empty() {
        return None;
    }
    put(&mut out, "statement", sql);
    out.push((
        Cow::Borrowed("Channel"),
        Value::Str(Cow::Borrowed("mysql_slow")),
    ));
    Some((out, ts))
}

/// Fields of one general-log record (with the reader's connection annotation).
pub fn general_record(text: &str, zone: Option<&TimeZone>) -> Option<crate::dbaudit::Record> {
    let (text, note) = crate::json::split_note(text, CONNECTION_ANNOTATION);
    let (first, more) = text.split_once('\n').unwrap_or((text, ""));
    let (time, id, cmd, arg) = general_head(first)?;
    let mut out: Fields<'static> = Vec::with_capacity(10);
    let note = note.unwrap_or_default();
    let ts = time
        .or_else(|| note.get(3).copied().filter(|t| !t.is_empty()))
        .and_then(|t| parse_time(t, zone));
    put(&mut out, "session_id", id);
    put(&mut out, "command", cmd);
    let mut arg = arg.to_owned();
    if !more.is_empty() {
        arg.push('\n');
        arg.push_str(more);
    }
    match cmd {
        "Connect" | "Change user" => {
            let (user, host, db) = connect_argument(&arg);
            put(&mut out, "action", "connect");
            put(&mut out, "user", &user);
            put(&mut out, "client_host", &host);
            put(&mut out, "database", &db);
            if arg.contains("Access denied") {
                put(&mut out, "outcome", "failure");
            }
        }
        "Query" | "Execute" => put(&mut out, "statement", arg.trim()),
        "Prepare" => put(&mut out, "query", arg.trim()),
        "Quit" => put(&mut out, "action", "disconnect"),
        "Init DB" => put(&mut out, "database", arg.trim()),
        _ => put(&mut out, "message", arg.trim()),
    }
    for (k, v) in ["user", "client_host", "database"]
        .into_iter()
        .zip(note.iter())
    {
        put(&mut out, k, v);
    }
    out.push((
        Cow::Borrowed("Channel"),
        Value::Str(Cow::Borrowed("mysql_general")),
    ));
    Some((out, ts))
}

/// Fields of one error-log record.
pub fn error_record(text: &str, zone: Option<&TimeZone>) -> Option<crate::dbaudit::Record> {
    let n = time_len(text)?;
    let ts = parse_time(&text[..n], zone);
    let mut rest = text[n..].trim_start();
    let mut out: Fields<'static> = Vec::with_capacity(10);
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 && rest[digits..].starts_with(' ') {
        put(&mut out, "thread", &rest[..digits]);
        rest = rest[digits..].trim_start();
    }
    // `[Level] [MY-010116] [Server]` (8.0), `[Level]` (5.7, MariaDB).
    let mut brackets = 0;
    while let Some(r) = rest.strip_prefix('[') {
        let Some((word, after)) = r.split_once(']') else {
            break;
        };
        match brackets {
            0 => put(&mut out, "level", word),
            _ if word.starts_with("MY-") => put(&mut out, "error_code", word),
            _ => put(&mut out, "subsystem", word),
        }
        brackets += 1;
        rest = after.trim_start();
        if brackets == 3 {
            break;
        }
    }
    put(&mut out, "message", rest);
    if let Some(i) = rest.find("Access denied for user '") {
        let r = &rest[i + "Access denied for user '".len()..];
        if let Some((user, r)) = r.split_once("'@'") {
            put(&mut out, "user", user);
            if let Some((host, _)) = r.split_once('\'') {
                put(&mut out, "client_host", host);
            }
        }
        put(&mut out, "action", "authentication_failed");
        put(&mut out, "outcome", "failure");
    } else if let Some(i) = rest.find("IP address '") {
        // A client whose address has no name (`skip-name-resolve` off).
        let r = &rest[i + "IP address '".len()..];
        if let Some((ip, _)) = r.split_once('\'') {
            put(&mut out, "client_host", ip);
        }
    } else if let Some(i) = rest.find("  user: '") {
        // `Forcing close of thread 14  user: 'sherlock'.`
        let r = &rest[i + "  user: '".len()..];
        if let Some((u, _)) = r.split_once('\'') {
            put(&mut out, "user", u);
        }
    }
    out.push((
        Cow::Borrowed("Channel"),
        Value::Str(Cow::Borrowed("mysql_error")),
    ));
    Some((out, ts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(f: &Fields<'static>, k: &str) -> Option<String> {
        f.iter().find(|(n, _)| n == k).map(|(_, v)| match v {
            Value::Int(i) => i.to_string(),
            v => v.as_text().unwrap_or_default().into_owned(),
        })
    }

    #[test]
    fn slow_log_records_of_each_server() {
        let mariadb = "# Time: 190324 16:03:00\n# User@Host: app[app] @ crm-01 [10.30.5.17]\n# Thread_id: 37  Schema: billing  QC_hit: No\n# Query_time: 2.461578  Lock_time: 0.000196  Rows_sent: 10  Rows_examined: 3145718\nuse billing;\nSET timestamp=1553443380;\nSELECT * FROM cdr\n    WHERE msisdn = '33612345678';";
        let (f, ts) = slow_record(mariadb, None).expect("a record");
        assert_eq!(ts.map(|t| t.as_second()), Some(1_553_443_380));
        assert_eq!(get(&f, "user").as_deref(), Some("app"));
        assert_eq!(get(&f, "client_host").as_deref(), Some("10.30.5.17"));
        assert_eq!(get(&f, "client_host_name").as_deref(), Some("crm-01"));
        assert_eq!(get(&f, "session_id").as_deref(), Some("37"));
        assert_eq!(get(&f, "database").as_deref(), Some("billing"));
        assert_eq!(get(&f, "rows").as_deref(), Some("10"));
        assert!(get(&f, "statement").is_some_and(|s| s.ends_with("'33612345678';")));
        let mysql = "# Time: 2017-04-28T09:16:30.738365Z\n# User@Host: apphost[apphost] @ apphost [1.1.1.1]  Id: 10999834\n# Query_time: 10.346539  Lock_time: 0.000036 Rows_sent: 0  Rows_examined: 4751313\ncall load_stats(1, '2017-04-28 00:00:00');";
        let (f, ts) = slow_record(mysql, None).expect("a record");
        assert_eq!(
            ts.map(|t| t.to_string()),
            Some("2017-04-28T09:16:30.738365Z".into())
        );
        assert_eq!(get(&f, "session_id").as_deref(), Some("10999834"));
        assert_eq!(get(&f, "client_host").as_deref(), Some("1.1.1.1"));
        // A banner alone is no record.
        assert!(slow_record("/usr/sbin/mysqld, Version: 5.7 (x). started with:\nTcp port: 3306  Unix socket: /s\nTime                 Id Command    Argument", None).is_none());
    }

    #[test]
    fn general_log_statements_get_their_connection() {
        let mut c = Connections::default();
        let lines = [
            "2026-03-02T10:00:00.000001Z\t   12 Connect\tapp@10.30.5.17 on billing using TCP/IP",
            "2026-03-02T10:00:01.000001Z\t   12 Query\tSELECT * FROM cdr WHERE msisdn = '33612345678'",
            "2026-03-02T10:00:02.000001Z\t   13 Query\tSELECT 1",
            "2026-03-02T10:00:03.000001Z\t   12 Quit\t",
        ];
        let recs: Vec<String> = lines
            .iter()
            .map(|l| format!("{l}\n{}", c.observe(l).expect("a record")))
            .collect();
        let (f, ts) = general_record(&recs[1], None).expect("a record");
        assert!(ts.is_some());
        assert_eq!(get(&f, "user").as_deref(), Some("app"));
        assert_eq!(get(&f, "client_host").as_deref(), Some("10.30.5.17"));
        assert_eq!(get(&f, "database").as_deref(), Some("billing"));
        assert_eq!(get(&f, "session_id").as_deref(), Some("12"));
        // A connection opened before the log started is not made up.
        let (f, _) = general_record(&recs[2], None).expect("a record");
        assert_eq!(get(&f, "user"), None);
        assert!(c.open.is_empty());
        // Old servers leave the time out within one second; the last one is used.
        let mut c = Connections::default();
        let a = "191015  9:46:45\t    13 Connect\troot@localhost as anonymous on ";
        let b = "\t\t    13 Query\tSHOW GLOBAL STATUS";
        c.observe(a);
        let rec = format!("{b}\n{}", c.observe(b).expect("record"));
        let (f, ts) = general_record(&rec, None).expect("a record");
        assert_eq!(
            ts.map(|t| t.to_string()),
            Some("2019-10-15T09:46:45Z".into())
        );
        assert_eq!(get(&f, "user").as_deref(), Some("root"));
    }

    #[test]
    fn error_log_lines() {
        let (f, ts) = error_record("2019-03-24T13:44:27.924508Z 5 [Warning] [MY-010453] [Server] root@localhost is created with an empty password !", None).expect("record");
        assert!(ts.is_some());
        assert_eq!(get(&f, "level").as_deref(), Some("Warning"));
        assert_eq!(get(&f, "error_code").as_deref(), Some("MY-010453"));
        assert_eq!(get(&f, "thread").as_deref(), Some("5"));
        let (f, _) = error_record("2019-10-16 17:24:15 9 [Warning] Access denied for user 'app'@'10.30.5.17' (using password: YES)", None).expect("record");
        assert_eq!(get(&f, "user").as_deref(), Some("app"));
        assert_eq!(get(&f, "client_host").as_deref(), Some("10.30.5.17"));
        assert_eq!(get(&f, "action").as_deref(), Some("authentication_failed"));
        assert!(is_error_line(
            "161209 14:18:50 [Note] Plugin 'FEDERATED' is disabled."
        ));
        assert!(is_error_line(
            "161209 13:08:33 mysqld_safe Starting mysqld daemon"
        ));
        assert!(!is_error_line(
            "Version: '5.7.10'  socket: '/tmp/mysql.sock'"
        ));
    }
}
