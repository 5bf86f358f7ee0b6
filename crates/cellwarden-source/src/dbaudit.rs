//! Database audit logs, each turned into one event with the same field names whatever the
//! database: `user`, `os_user`, `client_host`, `application`, `session_id`, `database`,
//! `command`, `object_name`, `statement`, `parameter` (bind values), `rows`, `return_code`,
//! and `Channel` naming the source (`pgaudit`, `mysql_audit`, `mariadb_audit`, `oracle_audit`).
//!
//! - PostgreSQL pgaudit records inside the server's stderr log: `<prefix> LOG:  AUDIT:
//!   SESSION|OBJECT,stmt,substmt,CLASS,COMMAND,OBJECT_TYPE,OBJECT_NAME,STATEMENT,PARAMETER
//!   [,ROWS]`, where the prefix is whatever `log_line_prefix` made of it (timestamp, `[pid]`,
//!   `user@db`, `user=…,db=…,app=…,client=…`); a statement may span several lines inside its
//!   quotes. The same records in `csvlog` files (the `message` column).
//! - MySQL Enterprise Audit and Percona Audit Log JSON (fields recognised after flattening).
//! - MariaDB `server_audit` files: `timestamp,serverhost,username,host,connectionid,queryid,
//!   operation,database,object,retcode`.
//! - Oracle unified audit trail exported as CSV with a header row.

use std::borrow::Cow;

use cellwarden_event::{Timestamp, Value};
use jiff::tz::TimeZone;

use crate::json::{Fields, owned, put_new, put_new_owned};
use crate::pgprefix::{Learner, Prefix, read_prefix, time_with_zone};

const MARK: &str = "AUDIT: ";

/// Whether a line starts a pgaudit record.
pub fn is_pgaudit(line: &str) -> bool {
    is_pgaudit_bytes(line.as_bytes())
}

/// [`is_pgaudit`] on the bytes of a line (no text conversion per line).
pub fn is_pgaudit_bytes(line: &[u8]) -> bool {
    find_mark(line).is_some_and(|i| {
        line[i + MARK.len()..].starts_with(b"SESSION,")
            || line[i + MARK.len()..].starts_with(b"OBJECT,")
    })
}

/// Where `AUDIT: ` starts (one searcher for the run: building one per line costs more than
/// the search).
fn find_mark(text: &[u8]) -> Option<usize> {
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(MARK));
    FINDER.find(text)
}

/// Whether the quotes of a (possibly partial) record are balanced, i.e. it is complete.
pub fn quotes_closed(text: &str) -> bool {
    text.bytes()
        .filter(|&b| b == b'"')
        .count()
        .is_multiple_of(2)
}

/// The fields of one CSV record (which may span lines): `"` quotes, `""` inside quotes is a
/// quote. Unquoted fields borrow from `text`. `None` for an unterminated quote.
pub(crate) fn csv_record(text: &str) -> Option<Vec<Cow<'_, str>>> {
    let text = text.strip_suffix('\n').unwrap_or(text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(16);
    let mut i = 0;
    loop {
        if b.get(i) == Some(&b'"') {
            let mut v = String::new();
            let mut j = i + 1;
            loop {
                let k = j + memchr::memchr(b'"', &b[j..])?;
                v.push_str(&text[j..k]);
                if b.get(k + 1) == Some(&b'"') {
                    v.push('"');
                    j = k + 2;
                } else {
                    j = k + 1;
                    break;
                }
            }
            // Anything between the closing quote and the comma is kept, as csv readers do.
            let end = memchr::memchr(b',', &b[j..]).map_or(b.len(), |e| j + e);
            v.push_str(&text[j..end]);
            out.push(Cow::Owned(v));
            i = end;
        } else {
            let end = memchr::memchr(b',', &b[i..]).map_or(b.len(), |e| i + e);
            out.push(Cow::Borrowed(&text[i..end]));
            i = end;
        }
        if i >= b.len() {
            return Some(out);
        }
        i += 1; // the comma
        if i == b.len() {
            out.push(Cow::Borrowed(""));
            return Some(out);
        }
    }
}

/// A decoded record: its fields and time.
pub type Record = (Fields<'static>, Option<Timestamp>);

/// Fields of one pgaudit record (its lines joined with `\n`); `None` if it is not one.
pub fn pgaudit_record<'t>(
    text: &'t str,
    prefixes: &[Prefix],
    learner: &Learner,
    zone: Option<&TimeZone>,
) -> Option<(Fields<'t>, Option<Timestamp>)> {
    let (text, note) = crate::json::split_note(text, PG_SESSION_ANNOTATION);
    let i = find_mark(text.as_bytes())?;
    let prefix = text[..i].trim_end();
    let prefix = prefix
        .strip_suffix("LOG:")
        .or_else(|| prefix.strip_suffix("LOG: "))
        .unwrap_or(prefix);
    let mut out: Fields<'t> = Vec::with_capacity(16);
    let ts = read_prefix(prefix, prefixes, learner, zone, &mut out);
    pgaudit_body(&text[i + MARK.len()..], &mut out, |v| v)?;
    session_note(note, &mut out);
    Some((out, ts))
}

/// Whether a line starts a PostgreSQL csvlog row (`YYYY-MM-DD HH:MM:SS[.fff] TZ,`).
pub fn is_pg_csvlog(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b' '
        && b[13] == b':'
        && b[..4].iter().all(u8::is_ascii_digit)
        && line.split_once(',').is_some_and(|(t, _)| {
            t.len() <= 40
                && (2..=3).contains(&t.split(' ').count())
                && !t.contains(['"', '[', '=', '@'])
        })
}

/// Fields of one csvlog row: a pgaudit record (`message` column starting with `AUDIT: `,
/// `Channel: pgaudit`) or another server message (`Channel: postgresql`, see
/// [`pg_log_record`]). `None` for text that is not a csvlog row.
pub fn pg_csvlog_record(text: &str, zone: Option<&TimeZone>) -> Option<Record> {
    let rec = csv_record(text)?;
    if rec.len() < 14 {
        return None;
    }
    let mut out: Fields<'static> = Vec::with_capacity(20);
    let ts = time_with_zone(&rec[0], zone);
    let mut put = |k: &'static str, v: &str| {
        if !v.is_empty() {
            out.push((Cow::Borrowed(k), owned(v)));
        }
    };
    put("user", &rec[1]);
    put("database", &rec[2]);
    put("pid", &rec[3]);
    // connection_from is "host:port" (or "[local]").
    let from = &rec[4];
    let (host, port) = match from.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => (h, p),
        _ => (&**from, ""),
    };
    if host != "[local]" {
        put("client_host", host);
        put("client_port", port);
    }
    put("session_id", &rec[5]);
    if let Some(app) = rec.get(22) {
        put("application", app);
    }
    if let Some(body) = rec[13].strip_prefix(MARK) {
        pgaudit_body(body, &mut out, |v| Cow::Owned(v.into_owned()))?;
        return Some((out, ts));
    }
    put("command_tag", &rec[7]);
    put("level", &rec[11]);
    put("sql_state", &rec[12]);
    put("message", &rec[13]);
    let detail = rec.get(14).map_or("", |d| &**d);
    put("detail", detail);
    if let Some(h) = rec.get(15) {
        put("hint", h);
    }
    if let Some(q) = rec.get(19) {
        put("query", q);
    }
    if let Some(b) = rec.get(23) {
        put("backend_type", b);
    }
    pg_message_fields(&rec[11], &rec[13], &mut out);
    if let Some(p) = detail.strip_prefix("parameters: ") {
        out.push((Cow::Borrowed("parameter"), owned(&pg_parameters(p))));
    }
    out.push((
        Cow::Borrowed("Channel"),
        Value::Str(Cow::Borrowed("postgresql")),
    ));
    Some((out, ts))
}

/// Severity words PostgreSQL writes before a message (`LOG:  `).
const PG_LEVELS: &[&str] = &[
    "LOG",
    "FATAL",
    "ERROR",
    "WARNING",
    "NOTICE",
    "INFO",
    "DEBUG",
    "DEBUG1",
    "DEBUG2",
    "DEBUG3",
    "DEBUG4",
    "DEBUG5",
    "DETAIL",
    "HINT",
    "STATEMENT",
    "CONTEXT",
    "QUERY",
    "LOCATION",
    "PANIC",
];

/// Splits a server log line into its `log_line_prefix` part, severity and message.
fn pg_level_split(text: &str) -> Option<(&str, &str, &str)> {
    let mut from = 0;
    // The severity comes within the prefix's length; a long search is not needed.
    while let Some(i) = text[from..].find(":  ").map(|i| from + i) {
        let before = &text[..i];
        let start = before.rfind([' ', ']', '\t']).map_or(0, |j| j + 1);
        let word = &before[start..];
        if PG_LEVELS.contains(&word) {
            return Some((&text[..start], word, &text[i + 3..]));
        }
        from = i + 3;
        if from > 400 {
            return None;
        }
    }
    None
}

/// Whether a line starts a PostgreSQL server log record (`<prefix> LEVEL:  message`) whose
/// prefix starts with a time, or has no prefix at all.
pub fn is_pg_log_line(line: &str) -> bool {
    let b = line.as_bytes();
    let timed = b.len() > 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b' '
        && b[13] == b':'
        && b[..4].iter().all(u8::is_ascii_digit);
    match pg_level_split(line) {
        Some((prefix, _, _)) => timed || prefix.is_empty(),
        None => false,
    }
}

/// PostgreSQL's mark on what it sends to syslog (`log_destination = syslog`): `[seq] ` with
/// `syslog_sequence_numbers` (the default), `[seq-chunk] ` on the pieces of a message split at
/// its lines or at 900 bytes (`syslog_split_messages`), `[chunk] ` on the pieces without
/// sequence numbers. Returns the number before the dash, the chunk after it, and the text
/// after the mark (a piece split at a blank starts with it).
pub fn pg_syslog_mark(msg: &str) -> Option<(u64, Option<u32>, &str)> {
    let inner = msg.strip_prefix('[')?;
    let end = inner.get(..24).unwrap_or(inner).find(']')?;
    let rest = inner[end + 1..].strip_prefix(' ')?;
    let (a, b) = match inner[..end].split_once('-') {
        Some((a, b)) => (a, Some(b.parse().ok()?)),
        None => (&inner[..end], None),
    };
    let a = a
        .parse()
        .ok()
        .filter(|_| a.bytes().all(|c| c.is_ascii_digit()))?;
    Some((a, b, rest))
}

/// Whether `text` starts a PostgreSQL server log record (a pgaudit one or another).
fn starts_pg_record(text: &str) -> bool {
    is_pgaudit(text) || pg_level_split(text).is_some()
}

/// The PostgreSQL record a syslog line carries, after its mark; `None` for another
/// program's message.
fn pg_syslog_payload<'t>(p: &crate::linux::SyslogParts<'t>) -> Option<&'t str> {
    let payload = match pg_syslog_mark(p.msg) {
        Some((_, _, rest)) => rest,
        // Without sequence numbers a short message has no mark: only the server's own tag
        // (`syslog_ident`, `postgres` by default) is taken then.
        None if p
            .app
            .as_bytes()
            .windows(8)
            .any(|w| w.eq_ignore_ascii_case(b"postgres")) =>
        {
            p.msg
        }
        None => return None,
    };
    starts_pg_record(payload).then_some(payload)
}

/// A PostgreSQL server log record carried by syslog (its pieces joined, see
/// [`pg_syslog_continues`]): read as the server's own log, with the syslog host as
/// `hostname`, the syslog pid where the prefix gives none, and the syslog time where the
/// prefix gives none. `None` when the line is not one (another program's message);
/// `Some(None)` when it is one but cannot be read (a pgaudit record whose later pieces did not
/// follow it).
pub fn pg_syslog_record<'t>(
    p: &crate::linux::SyslogParts<'t>,
    prefixes: &[Prefix],
    learner: &Learner,
    zone: Option<&TimeZone>,
) -> Option<Option<(Fields<'t>, Option<Timestamp>)>> {
    let payload = pg_syslog_payload(p)?;
    let read = if is_pgaudit(payload) {
        pgaudit_record(payload, prefixes, learner, zone)
    } else {
        pg_log_record(payload, prefixes, learner, zone)
    };
    let Some((mut fields, ts)) = read else {
        return Some(None);
    };
    if p.host != "-" {
        put_new(&mut fields, "hostname", p.host);
    }
    if !fields.iter().any(|(k, _)| k == "pid")
        && let Ok(pid) = p.pid.parse::<i64>()
    {
        fields.push((Cow::Borrowed("pid"), Value::Int(pid)));
    }
    Some(Some((fields, ts.or(p.time))))
}

/// A PostgreSQL server log record in a journald record (`journalctl -o json`: the server's
/// stderr or its syslog messages, one piece each): its fields replace the syslog ones the
/// record was given. Returns the record's time (`None` when not given by its prefix); `None`
/// when the message is not PostgreSQL's.
pub fn pg_journald(
    fields: &mut Fields<'_>,
    prefixes: &[Prefix],
    learner: &Learner,
    zone: Option<&TimeZone>,
) -> Option<Option<Timestamp>> {
    let get = |k: &str| text_of(fields, k);
    let msg = get("MESSAGE")?;
    let app = get("SYSLOG_IDENTIFIER").or_else(|| get("_COMM"))?;
    let pid = get("_PID")
        .or_else(|| get("SYSLOG_PID"))
        .unwrap_or_default();
    let host = get("_HOSTNAME").unwrap_or_else(|| "-".into());
    let parts = crate::linux::SyslogParts {
        pri: None,
        time: None,
        host: &host,
        app: &app,
        pid: &pid,
        msg: &msg,
    };
    let (pg, ts) = pg_syslog_record(&parts, prefixes, learner, zone)??;
    for (k, v) in cellwarden_event::owned_fields(pg) {
        match fields.iter_mut().find(|(n, _)| *n == k) {
            Some(slot) => slot.1 = v,
            None => fields.push((k, v)),
        }
    }
    Some(ts)
}

/// What to append to `record` (a syslog line with the pieces joined so far) when `line` is a
/// further piece of the same PostgreSQL message: a separator and the piece. Same host,
/// program and pid, the same sequence number and a later chunk, and not the start of a
/// record. A piece cut at a blank keeps it; one cut at a line break (the server starts it
/// with a tab) goes on a new line, as in the server's own log file.
pub fn pg_syslog_continues<'l>(record: &[u8], line: &'l [u8]) -> Option<(&'static [u8], &'l [u8])> {
    static MARK: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new("]: "));
    let head = line.get(..256).unwrap_or(line);
    let at = MARK.find(head)? + 3;
    if !matches!(head.get(at), Some(b'[' | b'\t')) {
        return None;
    }
    let a = crate::linux::syslog_parts(std::str::from_utf8(line).ok()?, 2000, None)?;
    let mark = pg_syslog_mark(a.msg);
    // The line alone tells most often that it starts a message: the record's first line is
    // read only when it may not.
    match mark {
        Some((_, Some(chunk), rest)) if chunk > 1 && !starts_pg_record(rest) => {}
        // Without sequence numbers: `[chunk]`.
        Some((chunk, None, rest)) if chunk > 1 && !starts_pg_record(rest) => {}
        // The server's stderr through journald, as `journalctl` prints it: a line each, the
        // lines after a message's first indented with the server's tab.
        None if a.msg.starts_with('\t') => {}
        _ => return None,
    }
    let first = &record[..memchr::memchr(b'\n', record).unwrap_or(record.len())];
    let b = crate::linux::syslog_parts(std::str::from_utf8(first).ok()?, 2000, None)?;
    if (a.host, a.app, a.pid) != (b.host, b.app, b.pid) || a.pid == "-" {
        return None;
    }
    let rest = match (mark, pg_syslog_mark(b.msg)) {
        (Some((seq, chunk, rest)), Some((seq0, chunk0, _))) => match (chunk, chunk0) {
            (Some(_), Some(_)) if seq == seq0 => rest,
            (None, None) => rest,
            _ => return None,
        },
        (None, _) if pg_syslog_payload(&b).is_some() => a.msg,
        _ => return None,
    };
    // The server indents each line after the first with a tab; a piece cut at 900 bytes
    // starts with the blank it was cut at.
    let sep: &'static [u8] = if rest.starts_with(' ') { b"" } else { b"\n" };
    Some((sep, rest.as_bytes()))
}

/// Fields of one PostgreSQL server log record (its lines joined with `\n`) that is not a
/// pgaudit record: the prefix's time, pid, user and database; `level`, `message`, and what
/// the message says (see [`pg_message_fields`]); `Channel: postgresql`.
pub fn pg_log_record<'t>(
    text: &'t str,
    prefixes: &[Prefix],
    learner: &Learner,
    zone: Option<&TimeZone>,
) -> Option<(Fields<'t>, Option<Timestamp>)> {
    let (text, note) = crate::json::split_note(text, PG_SESSION_ANNOTATION);
    let (prefix, level, msg) = pg_level_split(text)?;
    let mut out: Fields<'t> = Vec::with_capacity(12);
    let ts = read_prefix(prefix, prefixes, learner, zone, &mut out);
    session_note(note, &mut out);
    out.push((Cow::Borrowed("level"), Value::Str(Cow::Borrowed(level))));
    out.push((Cow::Borrowed("message"), Value::Str(Cow::Borrowed(msg))));
    pg_message_fields(level, msg, &mut out);
    if level == "DETAIL"
        && let Some(p) = msg.strip_prefix("parameters: ")
    {
        out.push((Cow::Borrowed("parameter"), owned(&pg_parameters(p))));
    }
    out.push((
        Cow::Borrowed("Channel"),
        Value::Str(Cow::Borrowed("postgresql")),
    ));
    Some((out, ts))
}

/// Marks the reader's note of a PostgreSQL session on a record (see [`PgSessions`]).
pub const PG_SESSION_ANNOTATION: &str = "\x1epgsession";

/// The session fields of the reader's note, where the record's prefix does not give them.
fn session_note<'t>(note: Option<Vec<&'t str>>, out: &mut Fields<'t>) {
    let Some(v) = note else { return };
    for (k, name) in [
        "client_host",
        "client_port",
        "user",
        "database",
        "application",
    ]
    .iter()
    .enumerate()
    {
        put_new(out, name, v.get(k).copied().unwrap_or_default());
    }
}

/// Connections a PostgreSQL server log has open, from its `log_connections` records
/// (`connection received: host=… port=…`, `connection authorized: user=… database=…
/// application_name=…`) until their `disconnection:` record, by backend pid (`%p`). Records
/// whose prefix does not name the client host (PostgreSQL's default `'%m [%p] '`, Debian's
/// `'%m [%p] %q%u@%d '`) get it from their backend's connection. At most
/// [`MAX_PG_SESSIONS`] connections are kept (the oldest go first). Costs nothing on logs
/// without `log_connections`.
#[derive(Debug, Default)]
pub struct PgSessions {
    open: std::collections::HashMap<String, [String; 5]>,
    order: std::collections::VecDeque<String>,
    learner: Learner,
}

/// Open connections kept per server log.
pub const MAX_PG_SESSIONS: usize = 65_536;

impl PgSessions {
    /// Takes one record of the log; the note to append to it, if any. `pid` is the backend's
    /// where the prefix names none (the syslog header's).
    pub fn observe(
        &mut self,
        text: &[u8],
        prefixes: &[Prefix],
        pid: Option<&str>,
    ) -> Option<String> {
        if self.idle(text) {
            return None;
        }
        self.read(text, prefixes, pid)
    }

    /// [`PgSessions::observe`] past its first look.
    fn read(&mut self, text: &[u8], prefixes: &[Prefix], pid: Option<&str>) -> Option<String> {
        let text = String::from_utf8_lossy(text);
        let (prefix, _, msg) = pg_level_split(&text)?;
        let mut f: Fields<'_> = Vec::with_capacity(8);
        read_prefix(prefix, prefixes, &self.learner, None, &mut f);
        let field = |k: &str| {
            f.iter()
                .find(|(n, _)| n == k)
                .and_then(|(_, v)| v.as_text())
                .map(|v| v.into_owned())
        };
        let pid = field("pid").or_else(|| pid.map(str::to_owned))?;
        let kv = |text: &str, key: &str| -> String {
            text.split(' ')
                .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
                .unwrap_or_default()
                .to_owned()
        };
        if let Some(r) = msg.strip_prefix("connection received: ") {
            let host = kv(r, "host");
            let host = if host == "[local]" {
                String::new()
            } else {
                host
            };
            if !self.open.contains_key(&pid) {
                self.order.push_back(pid.clone());
                if self.order.len() > MAX_PG_SESSIONS
                    && let Some(old) = self.order.pop_front()
                {
                    self.open.remove(&old);
                }
            }
            let port = kv(r, "port");
            self.open.insert(
                pid,
                [host, port, String::new(), String::new(), String::new()],
            );
            return None;
        }
        let s = self.open.get_mut(&pid)?;
        if let Some(r) = msg.strip_prefix("connection authorized: ") {
            s[2] = kv(r, "user");
            s[3] = kv(r, "database");
            s[4] = kv(r, "application_name");
        }
        let note = (field("client_host").is_none()).then(|| {
            let mut n = PG_SESSION_ANNOTATION.to_owned();
            for v in s.iter() {
                n.push('\x1f');
                n.push_str(v);
            }
            n
        });
        if msg.starts_with("disconnection: ") && self.open.remove(&pid).is_some() {
            self.order.retain(|x| *x != pid);
        }
        note
    }

    /// Whether a record cannot matter: no connection is open and it opens none.
    fn idle(&self, text: &[u8]) -> bool {
        static RECEIVED: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
            std::sync::LazyLock::new(|| memchr::memmem::Finder::new("connection received: "));
        self.open.is_empty() && RECEIVED.find(text).is_none()
    }

    /// [`PgSessions::observe`] for a syslog line (its pieces joined) that may carry a
    /// PostgreSQL record: the note to append to it, if any.
    pub fn observe_syslog(&mut self, line: &[u8], prefixes: &[Prefix]) -> Option<String> {
        if self.idle(line) {
            return None;
        }
        let line = std::str::from_utf8(line).ok()?;
        let p = crate::linux::syslog_parts(line, 2000, None)?;
        let payload = pg_syslog_payload(&p)?;
        self.read(
            payload.as_bytes(),
            prefixes,
            Some(p.pid).filter(|p| *p != "-"),
        )
    }
}

/// `$1 = 'a', $2 = NULL` as the CSV list of values the SQL analyser binds.
fn pg_parameters(text: &str) -> String {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(" = ") {
        let v = &rest[i + 3..];
        if let Some(q) = v.strip_prefix('\'') {
            // A quoted value; '' is a quote.
            let mut val = String::new();
            let mut chars = q.char_indices().peekable();
            let mut end = q.len();
            while let Some((j, c)) = chars.next() {
                if c == '\'' {
                    if chars.peek().is_some_and(|(_, n)| *n == '\'') {
                        chars.next();
                        val.push('\'');
                        continue;
                    }
                    end = j + 1;
                    break;
                }
                val.push(c);
            }
            out.push(format!("\"{}\"", val.replace('"', "\"\"")));
            rest = &q[end.min(q.len())..];
        } else {
            let end = v.find(", $").unwrap_or(v.len());
            out.push(v[..end].trim().to_owned());
            rest = &v[end..];
        }
    }
    out.join(",")
}

/// What a server message says, as fields: statements logged by `log_statement` or
/// `log_min_duration_statement` (`statement`, `query_step`, `query_name`, `duration_ms`;
/// `statement` only for the steps that run: a statement is not counted twice), connections
/// and their end (`action`, `user`, `database`, `application`, `client_host`, `client_port`),
/// refused logins (`action: authentication_failed`, `outcome: failure`, `auth_method`).
fn pg_message_fields(level: &str, msg: &str, out: &mut Fields<'_>) {
    let put = put_new_owned;
    let kv = |text: &str, key: &str| -> Option<String> {
        let i = text.find(&format!("{key}="))? + key.len() + 1;
        let v = &text[i..];
        Some(v[..v.find(' ').unwrap_or(v.len())].to_owned())
    };
    let quoted_after = |text: &str, key: &str| -> Option<String> {
        let i = text.find(key)? + key.len();
        let v = text[i..].strip_prefix('"')?;
        Some(v[..v.find('"')?].to_owned())
    };
    match level {
        "LOG" => {
            let mut rest = msg;
            if let Some(d) = rest.strip_prefix("duration: ") {
                let (ms, after) = d.split_once(" ms").unwrap_or((d, ""));
                if ms.parse::<f64>().is_ok() {
                    out.push((Cow::Borrowed("duration_ms"), owned(ms)));
                }
                rest = after.trim_start();
            }
            if let Some(sql) = rest.strip_prefix("statement: ") {
                put(out, "query_step", "statement");
                put(out, "statement", sql);
            } else if let Some((step, r)) = ["execute ", "parse ", "bind "]
                .iter()
                .find_map(|p| rest.strip_prefix(p).map(|r| (p.trim_end(), r)))
                && let Some((name, sql)) = r.split_once(": ")
            {
                put(out, "query_step", step);
                put(out, "query_name", name);
                if step == "execute" {
                    put(out, "statement", sql);
                } else {
                    put(out, "query", sql);
                }
            } else if let Some(r) = rest
                .strip_prefix("connection authorized: ")
                .or_else(|| rest.strip_prefix("replication connection authorized: "))
            {
                put(out, "action", "connection_authorized");
                for (k, name) in [
                    ("user", "user"),
                    ("database", "database"),
                    ("application_name", "application"),
                ] {
                    if let Some(v) = kv(r, k) {
                        put(out, name, &v);
                    }
                }
            } else if let Some(r) = rest.strip_prefix("connection received: ") {
                put(out, "action", "connection_received");
                if let Some(h) = kv(r, "host").filter(|h| h != "[local]") {
                    put(out, "client_host", &h);
                }
                if let Some(p) = kv(r, "port") {
                    put(out, "client_port", &p);
                }
            } else if let Some(r) = rest.strip_prefix("disconnection: ") {
                put(out, "action", "disconnection");
                for (k, name) in [("user", "user"), ("database", "database")] {
                    if let Some(v) = kv(r, k) {
                        put(out, name, &v);
                    }
                }
                if let Some(h) = kv(r, "host").filter(|h| h != "[local]") {
                    put(out, "client_host", &h);
                }
            }
        }
        "FATAL" | "ERROR" => {
            if let Some(i) = msg.find(" authentication failed for user ") {
                put(out, "action", "authentication_failed");
                put(out, "outcome", "failure");
                put(out, "auth_method", &msg[..i].to_ascii_lowercase());
                if let Some(u) = quoted_after(msg, " authentication failed for user ") {
                    put(out, "user", &u);
                }
            } else if msg.starts_with("no pg_hba.conf entry for ") {
                put(out, "action", "connection_rejected");
                put(out, "outcome", "failure");
                for (key, name) in [
                    ("host ", "client_host"),
                    ("user ", "user"),
                    ("database ", "database"),
                ] {
                    if let Some(v) = quoted_after(msg, key) {
                        put(out, name, &v);
                    }
                }
            } else if let Some(u) = msg
                .strip_prefix("role ")
                .and_then(|r| r.strip_suffix(" does not exist"))
            {
                put(out, "outcome", "failure");
                put(out, "user", u.trim_matches('"'));
            }
        }
        "STATEMENT" => put(out, "query", msg),
        _ => {}
    }
}

/// The pgaudit CSV body after `AUDIT: `; `text` makes each value's text (borrowed from the
/// line where the record's fields may borrow).
fn pgaudit_body<'b, 't>(
    body: &'b str,
    out: &mut Fields<'t>,
    text: impl Fn(Cow<'b, str>) -> Cow<'t, str>,
) -> Option<()> {
    let rec = csv_record(body)?;
    if rec.len() < 8 {
        return None;
    }
    let names = [
        "audit_type",
        "statement_id",
        "substatement_id",
        "class",
        "command",
        "object_type",
        "object_name",
        "statement",
        "parameter",
        "rows",
    ];
    for (k, v) in names.iter().zip(rec) {
        // Values borrow from the line unless the CSV quoting had to be undone.
        let v = match v {
            Cow::Borrowed(b) => Cow::Borrowed(b.trim()),
            Cow::Owned(o) if o.trim().len() == o.len() => Cow::Owned(o),
            Cow::Owned(o) => Cow::Owned(o.trim().to_owned()),
        };
        let value = match *k {
            "statement_id" | "substatement_id" | "rows" => match v.parse::<i64>() {
                Ok(n) => Value::Int(n),
                Err(_) => Value::Str(text(v)),
            },
            "parameter" if v == "<not logged>" || v == "<none>" => continue,
            _ => Value::Str(text(v)),
        };
        out.push((Cow::Borrowed(k), value));
    }
    out.push((
        Cow::Borrowed("Channel"),
        Value::Str(Cow::Borrowed("pgaudit")),
    ));
    Some(())
}

fn text_of(fields: &Fields<'_>, k: &str) -> Option<String> {
    fields
        .iter()
        .find(|(n, _)| n == k)
        .and_then(|(_, v)| v.as_text())
        .map(|t| t.into_owned())
        .filter(|t| !t.is_empty())
}

/// Gives a PostgreSQL `jsonlog` record (PostgreSQL 15+: `timestamp`, `user`, `dbname`, `pid`,
/// `remote_host`, `remote_port`, `session_id`, `error_severity`, `message`, …) the common
/// database fields: a pgaudit record (`message` starting with `AUDIT: `, `Channel: pgaudit`)
/// or another server message (`Channel: postgresql`, as [`pg_log_record`]). Returns its time;
/// `None` if the record is not one.
pub fn pg_jsonlog(fields: &mut Fields<'_>) -> Option<Option<Timestamp>> {
    let get = |k: &str| text_of(fields, k);
    let level = get("error_severity")?;
    let message = get("message")?;
    if get("session_id").is_none() && get("pid").is_none() {
        return None;
    }
    let ts = get("timestamp").and_then(|t| time_with_zone(&t, None));
    let mut out: Fields<'static> = Vec::with_capacity(16);
    let mut put = |k: &'static str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty() && v != "[local]" && v != "[unknown]") {
            out.push((Cow::Borrowed(k), owned(&v)));
        }
    };
    put("user", get("user"));
    put("database", get("dbname"));
    put("client_host", get("remote_host"));
    put("client_port", get("remote_port"));
    put("session_id", get("session_id"));
    put("application", get("application_name"));
    put("backend_type", get("backend_type"));
    put("command_tag", get("ps"));
    put("sql_state", get("state_code"));
    let detail = get("detail");
    if let Some(body) = message.strip_prefix(MARK) {
        pgaudit_body(body, &mut out, |v| Cow::Owned(v.into_owned()))?;
    } else {
        put("level", Some(level.clone()));
        pg_message_fields(&level, &message, &mut out);
        if let Some(p) = detail
            .as_deref()
            .and_then(|d| d.strip_prefix("parameters: "))
        {
            out.push((Cow::Borrowed("parameter"), owned(&pg_parameters(p))));
        }
        out.push((
            Cow::Borrowed("Channel"),
            Value::Str(Cow::Borrowed("postgresql")),
        ));
    }
    for (k, v) in out {
        if let Some(slot) = fields.iter_mut().find(|(n, _)| *n == k) {
            // jsonlog's own `user`, `pid`, `message`… keep their names; ours win where the
            // same name means the same thing.
            slot.1 = v;
        } else {
            fields.push((k, v));
        }
    }
    Some(ts)
}

/// The account name of a MySQL audit `user` value, which may be written as the server shows
/// the session's user: `app[app] @ crm01 [10.2.3.4]`. Any other value is the name as it is.
fn plain_user(u: String) -> String {
    match u.split_once('[') {
        Some((name, rest)) if rest.contains("] @ ") => name.trim_end().to_owned(),
        _ => u,
    }
}

/// Gives a MySQL Enterprise Audit or Percona Audit Log JSON record (already flattened) the
/// common database fields. Returns its time; `None` if the record is neither.
pub fn mysql_json(fields: &mut Fields<'_>) -> Option<Option<Timestamp>> {
    let get = |k: &str| text_of(fields, k);
    let mut add: Vec<(&'static str, String)> = Vec::new();
    let ts;
    if get("audit_record.name").is_some() && get("audit_record.timestamp").is_some() {
        // Percona: {"audit_record":{"name":"Query","timestamp":"2026-01-04T15:18:29 UTC",
        // "command_class":"select","connection_id":"1","status":0,"sqltext":"…",
        // "user":"app[app] @ host [10.0.0.1]","host":"…","os_user":"","ip":"…","db":"…"}}
        let r = |k: &str| get(&format!("audit_record.{k}"));
        ts = time_with_zone(
            &r("timestamp").unwrap_or_default().replacen('T', " ", 1),
            None,
        );
        let user = r("priv_user").or_else(|| r("user").map(plain_user));
        add.extend(user.map(|u| ("user", u)));
        add.extend(r("ip").or_else(|| r("host")).map(|v| ("client_host", v)));
        add.extend(r("os_user").map(|v| ("os_user", v)));
        add.extend(r("sqltext").map(|v| ("statement", v)));
        add.extend(
            r("command_class")
                .or_else(|| r("name"))
                .map(|v| ("command", v)),
        );
        add.extend(r("db").map(|v| ("database", v)));
        add.extend(r("connection_id").map(|v| ("session_id", v)));
        add.extend(r("status").map(|v| ("return_code", v)));
        // Percona's audit log filter (its full event mode, and builds before 8.4.9) writes a
        // statement as `Query` (received), `Query Start`, `Query Status End` and `Query`
        // (done), each with its text: named here by the JSON format's class and event, so
        // that they count as one statement.
        let (class, event) = match r("name").as_deref() {
            Some("Query") => (Some("general"), None),
            Some("Query Start") => (Some("query"), Some("start")),
            Some("Query Status End") => (Some("query"), Some("status_end")),
            _ => (None, None),
        };
        add.extend(class.map(|c| ("class", c.to_owned())));
        add.extend(event.map(|e| ("event", e.to_owned())));
    } else if get("class").is_some()
        && get("timestamp").is_some()
        && (get("account.user").is_some() || get("login.user").is_some())
    {
        // MySQL Enterprise Audit (JSON format): {"timestamp":"2026-10-03 13:50:01","class":
        // "general","event":"status","connection_id":11,"account":{"user":…,"host":…},
        // "login":{"user":…,"os":…,"ip":…},"general_data":{"sql_command":…,"query":…,
        // "status":0}} and table_access_data / connection_data variants.
        ts = time_with_zone(&get("timestamp").unwrap_or_default(), None);
        // Percona's filter component writes the user as `root[root] @ localhost []` here too.
        add.extend(
            get("account.user")
                .or_else(|| get("login.user"))
                .map(|v| ("user", plain_user(v))),
        );
        add.extend(
            get("login.ip")
                .or_else(|| get("account.host"))
                .map(|v| ("client_host", v)),
        );
        add.extend(get("login.os").map(|v| ("os_user", v)));
        // `query_data`: the `query` class's records, given their connection's account by the
        // reader (see `crate::mysqlconn`).
        add.extend(
            get("general_data.query")
                .or_else(|| get("table_access_data.query"))
                .or_else(|| get("query_data.query"))
                .map(|v| ("statement", v)),
        );
        add.extend(
            get("general_data.sql_command")
                .or_else(|| get("table_access_data.sql_command"))
                .or_else(|| get("query_data.sql_command"))
                .or_else(|| get("event"))
                .map(|v| ("command", v)),
        );
        add.extend(
            get("table_access_data.db")
                .or_else(|| get("connection_data.db"))
                .map(|v| ("database", v)),
        );
        add.extend(get("table_access_data.table").map(|v| ("object_name", v)));
        add.extend(get("connection_id").map(|v| ("session_id", v)));
        add.extend(
            get("general_data.status")
                .or_else(|| get("connection_data.status"))
                .or_else(|| get("query_data.status"))
                .map(|v| ("return_code", v)),
        );
        add.extend(
            get("connection_data.connect_attributes.program_name").map(|v| ("application", v)),
        );
    } else if get("class").as_deref() == Some("query")
        && get("timestamp").is_some()
        && get("query_data.query").is_some()
    {
        // The `query` class of the audit log filter (MySQL 8.0.30+, Percona): a statement as
        // it starts and as it ends, named by its connection only: {"class":"query","event":
        // "query_start","connection_id":11,"query_data":{"query":…,"status":0,
        // "sql_command":"select"}}, of a connection whose `connect` record was not read (the
        // reader gives the others its account). With a `general` record too, they count as
        // its records.
        ts = time_with_zone(&get("timestamp").unwrap_or_default(), None);
        add.extend(get("query_data.query").map(|v| ("statement", v)));
        add.extend(get("query_data.sql_command").map(|v| ("command", v)));
        add.extend(get("query_data.status").map(|v| ("return_code", v)));
        add.extend(get("connection_id").map(|v| ("session_id", v)));
    } else {
        return None;
    }
    for (k, v) in add {
        if !fields.iter().any(|(n, _)| n == k) {
            fields.push((Cow::Borrowed(k), Value::Str(Cow::Owned(v))));
        }
    }
    fields.push((
        Cow::Borrowed("Channel"),
        Value::Str(Cow::Borrowed("mysql_audit")),
    ));
    Some(ts)
}

/// Whether a line is a MariaDB `server_audit` file record (`YYYYMMDD HH:MM:SS,`).
pub fn is_mariadb_audit(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 18
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b' '
        && b[11] == b':'
        && b[14] == b':'
        && b[17] == b','
}

/// Fields of one MariaDB `server_audit` record: `timestamp,serverhost,username,host,
/// connectionid,queryid,operation,database,object,retcode`, where `object` (a query for
/// QUERY events) is quoted with `'` and escapes `\'` and `\\`, and may itself hold commas.
pub fn mariadb_audit_record(line: &str) -> Option<(Fields<'static>, Option<Timestamp>)> {
    if !is_mariadb_audit(line) {
        return None;
    }
    let (t, rest) = line.split_once(',')?;
    let ts = cellwarden_event::parse_timestamp(&format!(
        "{}-{}-{}T{}Z",
        &t[..4],
        &t[4..6],
        &t[6..8],
        &t[9..]
    ));
    mariadb_audit_fields(rest).map(|f| (f, ts))
}

/// A MariaDB `server_audit` record sent to syslog (`server_audit_output_type = syslog`): the
/// file's record without its time, after `server_audit_syslog_info` (empty by default), with
/// the syslog line's time. `None` for other programs' lines.
pub fn mariadb_syslog_record(
    p: &crate::linux::SyslogParts<'_>,
) -> Option<(Fields<'static>, Option<Timestamp>)> {
    // `server_audit_syslog_ident`, `mysql-server_auditing` by default.
    if !p.app.contains("audit") {
        return None;
    }
    let msg = p.msg.trim();
    let first_comma = msg.find(',')?;
    let body = match msg[..first_comma].rfind(' ') {
        Some(i) => &msg[i + 1..],
        None => msg,
    };
    let mut fields = mariadb_audit_fields(body)?;
    if p.host != "-" {
        crate::json::put_new_owned(&mut fields, "hostname", p.host);
    }
    Some((fields, p.time))
}

/// The fields of a `server_audit` record after its time: `serverhost,username,host,
/// connectionid,queryid,operation,database,object,retcode`, where `object` (a query for QUERY
/// events) is quoted with `'` and escapes `\'` and `\\`, and may itself hold commas. `None`
/// when the connection and query ids are not numbers.
fn mariadb_audit_fields(body: &str) -> Option<Fields<'static>> {
    let mut parts = body.splitn(8, ',');
    let mut head: Vec<&str> = Vec::with_capacity(7);
    for _ in 0..7 {
        head.push(parts.next()?);
    }
    let number = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
    if !number(head[3]) || !number(head[4]) {
        return None;
    }
    let rest = parts.next().unwrap_or("");
    let (object, retcode) = match rest.rsplit_once(',') {
        Some((o, r)) if r.trim().parse::<i64>().is_ok() => (o, r.trim()),
        _ => (rest, ""),
    };
    let object = match object.strip_prefix('\'').and_then(|o| o.strip_suffix('\'')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    match chars.next() {
                        Some('n') => out.push('\n'),
                        Some('r') => out.push('\r'),
                        Some('t') => out.push('\t'),
                        Some(o) => out.push(o),
                        None => out.push('\\'),
                    }
                } else {
                    out.push(c);
                }
            }
            out
        }
        None => object.to_owned(),
    };
    let mut out: Fields<'static> = Vec::with_capacity(12);
    let names = [
        "server_host",
        "user",
        "client_host",
        "session_id",
        "query_id",
        "command",
        "database",
    ];
    for (k, v) in names.iter().zip(&head) {
        if !v.is_empty() {
            out.push((Cow::Borrowed(k), owned(v)));
        }
    }
    let op = head[5];
    if !object.is_empty() {
        let k = if op.eq_ignore_ascii_case("QUERY") || op.starts_with("QUERY_") {
            "statement"
        } else {
            "object_name"
        };
        out.push((Cow::Borrowed(k), Value::Str(Cow::Owned(object))));
    }
    if !retcode.is_empty() {
        out.push((Cow::Borrowed("return_code"), owned(retcode)));
    }
    out.push((
        Cow::Borrowed("Channel"),
        Value::Str(Cow::Borrowed("mariadb_audit")),
    ));
    Some(out)
}

/// Whether a header row is an Oracle unified audit trail export.
pub fn is_oracle_header(line: &str) -> bool {
    let u = line.to_ascii_uppercase();
    u.contains("DBUSERNAME") && (u.contains("EVENT_TIMESTAMP") || u.contains("ACTION_NAME"))
}

/// Column names of a CSV header row.
pub fn csv_header(line: &str) -> Vec<String> {
    csv_record(line)
        .map(|r| r.iter().map(|c| c.trim().to_ascii_uppercase()).collect())
        .unwrap_or_default()
}

/// Fields of one row of an Oracle unified audit trail CSV export, by its header. Every column
/// is kept under its own name; the common database fields are added.
pub fn oracle_record(
    header: &[String],
    text: &str,
) -> Option<(Fields<'static>, Option<Timestamp>)> {
    let rec = csv_record(text)?;
    Some(oracle_fields(
        header
            .iter()
            .map(String::as_str)
            .zip(rec.iter().map(|v| &**v)),
    ))
}

/// One record of Oracle's XML audit trail (traditional auditing with `AUDIT_TRAIL = XML,
/// EXTENDED`, and fine-grained auditing to XML): `<AuditRecord>` with an element per field
/// (`Extended_Timestamp`, `DB_User`, `OS_User`, `Userhost`, `Session_Id`, `StatementId`,
/// `Object_Schema`, `Object_Name`, `Action`, `Returncode`, `Sql_Bind`, `Sql_Text`, …), its
/// statement over several lines. Fields are named as the unified audit trail's columns
/// ([`oracle_fields`]); the numeric action (or the fine-grained policy's statement type) is
/// named too. `None` if the text is not one whole record.
pub fn oracle_xml_record(text: &str) -> Option<(Fields<'static>, Option<Timestamp>)> {
    let body = text.trim_start().strip_prefix("<AuditRecord>")?;
    let pairs = crate::xmlrecord::elements(body, "</AuditRecord>")?;
    let mut cols: Vec<(String, String)> = Vec::with_capacity(pairs.len() + 1);
    let mut action = None;
    for (k, v) in pairs {
        let name = match k.as_str() {
            "Extended_Timestamp" => "EVENT_TIMESTAMP".to_owned(),
            "DB_User" => "DBUSERNAME".to_owned(),
            "OS_User" => "OS_USERNAME".to_owned(),
            "Userhost" => "USERHOST".to_owned(),
            "Session_Id" => "SESSIONID".to_owned(),
            "StatementId" => "STATEMENT_ID".to_owned(),
            "EntryId" => "ENTRY_ID".to_owned(),
            "Sql_Text" => "SQL_TEXT".to_owned(),
            "Sql_Bind" => "SQL_BINDS".to_owned(),
            "Returncode" => "RETURN_CODE".to_owned(),
            other => other.to_ascii_uppercase(),
        };
        match name.as_str() {
            "ACTION" => action = action.or_else(|| oracle_action(&v)),
            "STMT_TYPE" => action = action.or_else(|| oracle_fga_statement(&v)),
            _ => {}
        }
        cols.push((name, v));
    }
    if let Some(a) = action {
        cols.push(("ACTION_NAME".to_owned(), a.to_owned()));
    }
    Some(oracle_fields(
        cols.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    ))
}

/// The name of an Oracle audit action code (`AUDIT_ACTIONS`), for the common ones.
fn oracle_action(code: &str) -> Option<&'static str> {
    Some(match code.trim() {
        "1" => "CREATE TABLE",
        "2" => "INSERT",
        "3" => "SELECT",
        "6" => "UPDATE",
        "7" => "DELETE",
        "12" => "DROP TABLE",
        "15" => "ALTER TABLE",
        "17" => "GRANT OBJECT",
        "47" => "PL/SQL EXECUTE",
        "51" => "CREATE USER",
        "85" => "TRUNCATE TABLE",
        "100" => "LOGON",
        "101" => "LOGOFF",
        "114" => "GRANT ROLE",
        "189" => "UPSERT",
        _ => return None,
    })
}

/// The statement type of a fine-grained auditing record (1 select, 2 insert, 4 update,
/// 8 delete).
fn oracle_fga_statement(code: &str) -> Option<&'static str> {
    Some(match code.trim() {
        "1" => "SELECT",
        "2" => "INSERT",
        "4" => "UPDATE",
        "8" => "DELETE",
        _ => return None,
    })
}

/// An Oracle audit record's columns (unified audit trail names, upper case) with the common
/// database fields added.
pub(crate) fn oracle_fields<'v>(
    columns: impl Iterator<Item = (&'v str, &'v str)>,
) -> (Fields<'static>, Option<Timestamp>) {
    let mut out: Fields<'static> = Vec::with_capacity(24);
    let mut ts = None;
    let mut schema = String::new();
    let mut object = String::new();
    for (name, v) in columns {
        if v.is_empty() {
            continue;
        }
        let common = match name {
            "EVENT_TIMESTAMP" | "EVENT_TIMESTAMP_UTC" => {
                ts = ts.or_else(|| oracle_time(v));
                None
            }
            "DBUSERNAME" => Some("user"),
            "OS_USERNAME" => Some("os_user"),
            "USERHOST" => Some("client_host"),
            "CLIENT_PROGRAM_NAME" => Some("application"),
            "SESSIONID" => Some("session_id"),
            "STATEMENT_ID" => Some("statement_id"),
            "ACTION_NAME" => Some("command"),
            "SQL_TEXT" => Some("statement"),
            "SQL_BINDS" => Some("parameter"),
            "RETURN_CODE" => Some("return_code"),
            "DBNAME" | "CON_NAME" | "PDB_NAME" => Some("database"),
            "OBJECT_SCHEMA" => {
                schema = v.to_string();
                None
            }
            "OBJECT_NAME" => {
                object = v.to_string();
                None
            }
            _ => None,
        };
        if let Some(k) = common
            && !out.iter().any(|(n, _)| n == k)
        {
            out.push((Cow::Borrowed(k), owned(v)));
        }
        out.push((Cow::Owned(name.to_owned()), owned(v)));
    }
    if !object.is_empty() {
        let full = if schema.is_empty() {
            object
        } else {
            format!("{schema}.{object}")
        };
        out.push((Cow::Borrowed("object_name"), Value::Str(Cow::Owned(full))));
    }
    out.push((
        Cow::Borrowed("Channel"),
        Value::Str(Cow::Borrowed("oracle_audit")),
    ));
    (out, ts)
}

/// Oracle export times: ISO (`2026-11-24 08:33:03.123456 [+00:00]`) or the NLS default
/// `24-NOV-26 08.33.03.123456000 AM [+00:00|UTC]`.
fn oracle_time(v: &str) -> Option<Timestamp> {
    let v = v.trim();
    if v.as_bytes().get(4) == Some(&b'-') {
        return time_with_zone(v, None);
    }
    let mut it = v.split_whitespace();
    let date = it.next()?;
    let time = it.next()?;
    let mut ampm = "";
    let mut zone = "";
    for t in it {
        if t.eq_ignore_ascii_case("AM") || t.eq_ignore_ascii_case("PM") {
            ampm = t;
        } else {
            zone = t;
        }
    }
    let mut d = date.split('-');
    let day: u32 = d.next()?.parse().ok()?;
    let mon = d.next()?.to_ascii_uppercase();
    let month = [
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ]
    .iter()
    .position(|m| mon.starts_with(m))?
        + 1;
    let y = d.next()?;
    let year: i32 = if y.len() == 2 {
        2000 + y.parse::<i32>().ok()?
    } else {
        y.parse().ok()?
    };
    let mut t = time.split(['.', ':']);
    let mut hour: u32 = t.next()?.parse().ok()?;
    let min: u32 = t.next()?.parse().ok()?;
    let sec: u32 = t.next()?.parse().ok()?;
    let frac = t.next().unwrap_or("0");
    if ampm.eq_ignore_ascii_case("PM") && hour < 12 {
        hour += 12;
    } else if ampm.eq_ignore_ascii_case("AM") && hour == 12 {
        hour = 0;
    }
    let micros: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
    time_with_zone(
        &format!("{year:04}-{month:02}-{day:02} {hour:02}:{min:02}:{sec:02}.{micros} {zone}"),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(f: &Fields<'_>, k: &str) -> String {
        f.iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.as_text())
            .map(|t| t.into_owned())
            .unwrap_or_default()
    }

    #[test]
    fn backends_connections_give_their_records_the_client_host() {
        let mut s = PgSessions::default();
        let lines = [
            "2026-03-07 03:10:00.001 UTC [77] [unknown]@[unknown] LOG:  connection received: host=10.30.5.17 port=46773",
            "2026-03-07 03:10:00.002 UTC [77] crm_app@billing LOG:  connection authorized: user=crm_app database=billing application_name=psql",
            "2026-03-07 03:10:01.000 UTC [77] crm_app@billing LOG:  AUDIT: SESSION,1,1,READ,SELECT,,,\"SELECT * FROM cdr WHERE calling_number = '33699990001'\",<not logged>",
            "2026-03-07 03:10:02.000 UTC [78] app@billing LOG:  AUDIT: SESSION,1,1,READ,SELECT,,,SELECT 1,<not logged>",
            "2026-03-07 03:10:03.000 UTC [77] crm_app@billing LOG:  disconnection: session time: 0:00:03.000 user=crm_app database=billing host=10.30.5.17 port=46773",
            "2026-03-07 03:10:04.000 UTC [77] crm_app@billing LOG:  AUDIT: SESSION,1,1,READ,SELECT,,,SELECT 2,<not logged>",
        ];
        let notes: Vec<Option<String>> = lines
            .iter()
            .map(|l| s.observe(l.as_bytes(), &[], None))
            .collect();
        assert_eq!(notes[0], None);
        assert!(notes[2].is_some() && notes[4].is_some());
        assert_eq!(
            notes[3], None,
            "another backend, never connected in this log"
        );
        assert_eq!(notes[5], None, "the connection ended");
        let text = format!("{}\n{}", lines[2], notes[2].as_deref().unwrap());
        let (f, ts) = pgaudit_record(&text, &[], &Learner::default(), None).expect("record");
        assert!(ts.is_some());
        assert_eq!(get(&f, "client_host"), "10.30.5.17");
        assert_eq!(get(&f, "client_port"), "46773");
        assert_eq!(get(&f, "application"), "psql");
        assert_eq!(get(&f, "user"), "crm_app");
        assert!(get(&f, "statement").ends_with("'33699990001'"));
        // A prefix that names the host keeps its own and gets no note.
        let mut s = PgSessions::default();
        s.observe(b"2026-03-07 03:10:00.001 UTC [77] @ 10.1.1.1(5) LOG:  connection received: host=10.1.1.1 port=5", &[], None);
        assert_eq!(
            s.observe(b"2026-03-07 03:10:01.000 UTC [77] a@b 10.1.1.1(5) LOG:  AUDIT: SESSION,1,1,READ,SELECT,,,SELECT 1,<not logged>", &[], None),
            None
        );
    }

    #[test]
    fn pg_jsonlog_records() {
        let line = r#"{"timestamp":"2026-03-02 10:11:12.345 UTC","user":"crm_app","dbname":"billing","pid":4242,"remote_host":"10.30.5.17","remote_port":46773,"session_id":"65e2f1a0.1092","line_num":3,"ps":"SELECT","session_start":"2026-03-02 10:00:00 UTC","vxid":"3/17","txid":0,"error_severity":"LOG","message":"AUDIT: SESSION,1,1,READ,SELECT,,,\"SELECT * FROM cdr WHERE calling_number = '33699990001'\",<not logged>","application_name":"psql","backend_type":"client backend","query_id":0}"#;
        let mut f = crate::json::flatten(line).expect("json");
        let ts = pg_jsonlog(&mut f).expect("a jsonlog record");
        assert!(ts.is_some());
        let get = |k: &str| text_of(&f, k);
        assert_eq!(get("Channel").as_deref(), Some("pgaudit"));
        assert_eq!(get("client_host").as_deref(), Some("10.30.5.17"));
        assert_eq!(get("session_id").as_deref(), Some("65e2f1a0.1092"));
        assert_eq!(get("database").as_deref(), Some("billing"));
        assert!(get("statement").is_some_and(|s| s.contains("33699990001")));
        let line = r#"{"timestamp":"2026-03-02 10:11:13.000 UTC","user":"crm_app","dbname":"billing","pid":4242,"remote_host":"10.30.5.17","session_id":"65e2f1a0.1092","error_severity":"LOG","message":"statement: SELECT 1"}"#;
        let mut f = crate::json::flatten(line).expect("json");
        pg_jsonlog(&mut f).expect("a jsonlog record");
        assert_eq!(text_of(&f, "statement").as_deref(), Some("SELECT 1"));
        assert_eq!(text_of(&f, "Channel").as_deref(), Some("postgresql"));
    }

    #[test]
    fn stderr_line_with_user_at_db_prefix() {
        let line = r#"2026-03-04 03:12:09.123 UTC [12345] billing_ro@cdrdb LOG:  AUDIT: SESSION,7,1,READ,SELECT,,,"SELECT * FROM cdr WHERE msisdn = '33612345678'",<not logged>"#;
        assert!(is_pgaudit(line));
        let (f, ts) = pgaudit_record(line, &[], &Learner::default(), None).unwrap();
        assert_eq!(
            cellwarden_event::format_timestamp(ts),
            "2026-03-04T03:12:09.123000Z"
        );
        assert_eq!(get(&f, "user"), "billing_ro");
        assert_eq!(get(&f, "database"), "cdrdb");
        assert_eq!(get(&f, "pid"), "12345");
        assert_eq!(get(&f, "class"), "READ");
        assert_eq!(get(&f, "command"), "SELECT");
        assert_eq!(
            get(&f, "statement"),
            "SELECT * FROM cdr WHERE msisdn = '33612345678'"
        );
        assert_eq!(get(&f, "parameter"), "");
    }

    #[test]
    fn key_value_prefix_multiline_statement_and_rows() {
        let text = "2026-03-04 03:15:00 UTC [4242]: [3-1] user=etl,db=cdrdb,app=psql,client=10.20.30.40 LOG:  AUDIT: SESSION,9,1,READ,SELECT,TABLE,public.cdr,\"SELECT calling_number, cell_id\n  FROM cdr\n  WHERE calling_number IN ('33611111111', \"\"x\"\")\",\"33611111111\",42";
        assert!(!quotes_closed("x,\"SELECT a\n"));
        assert!(quotes_closed(text));
        let (f, _) = pgaudit_record(text, &[], &Learner::default(), None).unwrap();
        assert_eq!(get(&f, "user"), "etl");
        assert_eq!(get(&f, "application"), "psql");
        assert_eq!(get(&f, "client_host"), "10.20.30.40");
        assert_eq!(get(&f, "object_name"), "public.cdr");
        assert!(
            get(&f, "statement")
                .contains("FROM cdr\n  WHERE calling_number IN ('33611111111', \"x\")")
        );
        assert_eq!(get(&f, "parameter"), "33611111111");
        assert_eq!(get(&f, "rows"), "42");
    }

    #[test]
    fn csvlog_row_with_multiline_statement() {
        let row = "2026-03-04 03:15:00.120 UTC,\"etl\",\"cdrdb\",4242,\"10.20.30.40:51234\",65e5a1b2.1092,3,\"SELECT\",2026-03-04 03:14:58 UTC,3/12,0,LOG,00000,\"AUDIT: SESSION,1,1,READ,SELECT,,,\"\"SELECT *\n  FROM cdr WHERE imsi = $1\"\",208150123456789\",,,,,,,,,\"psql\",client backend,,0";
        assert!(is_pg_csvlog(row));
        let (f, ts) = pg_csvlog_record(row, None).unwrap();
        assert_eq!(
            cellwarden_event::format_timestamp(ts),
            "2026-03-04T03:15:00.120000Z"
        );
        assert_eq!(get(&f, "user"), "etl");
        assert_eq!(get(&f, "database"), "cdrdb");
        assert_eq!(get(&f, "client_host"), "10.20.30.40");
        assert_eq!(get(&f, "application"), "psql");
        assert_eq!(get(&f, "session_id"), "65e5a1b2.1092");
        assert_eq!(get(&f, "statement"), "SELECT *\n  FROM cdr WHERE imsi = $1");
        assert_eq!(get(&f, "parameter"), "208150123456789");
        let other = "2026-03-04 03:15:00.120 CET,\"etl\",\"cdrdb\",4242,\"10.0.0.1:5\",x,1,\"authentication\",2026-03-04 03:14:58 UTC,3/12,0,LOG,00000,\"connection authorized: user=etl database=cdrdb application_name=psql\",,,,,,,,,\"\",client backend,,0";
        let (f, ts) = pg_csvlog_record(other, None).unwrap();
        assert_eq!(get(&f, "Channel"), "postgresql");
        assert_eq!(get(&f, "action"), "connection_authorized");
        assert_eq!(get(&f, "client_host"), "10.0.0.1");
        assert_eq!(get(&f, "client_port"), "5");
        assert_eq!(get(&f, "statement"), "");
        assert_eq!(
            cellwarden_event::format_timestamp(ts),
            "2026-03-04T02:15:00.120000Z"
        );
        assert!(pg_csvlog_record("2026-03-04 03:15:00 UTC,x", None).is_none());
    }

    #[test]
    fn mysql_enterprise_and_percona_json() {
        let mut f = crate::json::flatten(r#"{"timestamp":"2026-10-03 13:50:01","id":0,"class":"general","event":"status","connection_id":11,"account":{"user":"care01","host":"10.1.2.3"},"login":{"user":"care01","os":"","ip":"10.1.2.3","proxy":""},"general_data":{"command":"Query","sql_command":"select","query":"SELECT * FROM subscriber WHERE msisdn='447700900123'","status":0}}"#).unwrap();
        let ts = mysql_json(&mut f).unwrap();
        assert_eq!(
            cellwarden_event::format_timestamp(ts),
            "2026-10-03T13:50:01.000000Z"
        );
        assert_eq!(get(&f, "user"), "care01");
        assert_eq!(get(&f, "client_host"), "10.1.2.3");
        assert_eq!(get(&f, "command"), "select");
        assert_eq!(get(&f, "session_id"), "11");
        assert_eq!(get(&f, "Channel"), "mysql_audit");
        assert!(get(&f, "statement").contains("447700900123"));
        let mut p = crate::json::flatten(r#"{"audit_record":{"name":"Query","record":"4_2026-01-04T15:18:29","timestamp":"2026-01-04T15:18:29 UTC","command_class":"select","connection_id":"7","status":0,"sqltext":"select imei from device where msisdn = '447700900123'","user":"dba[dba] @ jump01 [10.9.9.9]","host":"jump01","os_user":"","ip":"10.9.9.9","db":"crm"}}"#).unwrap();
        let ts = mysql_json(&mut p).unwrap();
        assert_eq!(
            cellwarden_event::format_timestamp(ts),
            "2026-01-04T15:18:29.000000Z"
        );
        assert_eq!(get(&p, "user"), "dba");
        assert_eq!(get(&p, "client_host"), "10.9.9.9");
        assert_eq!(get(&p, "database"), "crm");
        assert_eq!(get(&p, "command"), "select");
        // Percona's audit log filter component, in the shape of its documentation: the user
        // as the server shows it.
        let mut c = crate::json::flatten(r#"{"timestamp":"2023-03-29 11:17:05","id":2,"class":"general","event":"log","connection_id":11,"account":{"user":"root[root] @ localhost []","host":"localhost"},"login":{"user":"root[root] @ localhost []","os":"","ip":"","proxy":""},"general_data":{"command":"Query","sql_command":"create_table","query":"CREATE TABLE t1 (c1 INT)","status":0}}"#).unwrap();
        mysql_json(&mut c).unwrap();
        assert_eq!(get(&c, "user"), "root");
        assert_eq!(get(&c, "client_host"), "localhost");
        // Its `query` class: the statement, named by its connection only.
        let mut q = crate::json::flatten(r#"{"timestamp":"2023-03-29 11:17:05","id":3,"class":"query","event":"query_start","connection_id":11,"query_data":{"query":"CREATE TABLE t1 (c1 INT)","status":0,"sql_command":"create_table"}}"#).unwrap();
        assert!(mysql_json(&mut q).unwrap().is_some());
        assert_eq!(get(&q, "statement"), "CREATE TABLE t1 (c1 INT)");
        assert_eq!(get(&q, "session_id"), "11");
        assert_eq!(get(&q, "command"), "create_table");
        assert_eq!(get(&q, "user"), "");
        // Any other name is kept whole (log text is the attacker's to write).
        assert_eq!(
            plain_user("<img src=x onerror=a()>".into()),
            "<img src=x onerror=a()>"
        );
        let mut other = crate::json::flatten(r#"{"timestamp":"x","class":"y"}"#).unwrap();
        assert!(mysql_json(&mut other).is_none());
    }

    #[test]
    fn mariadb_server_audit() {
        let l = r"20261124 08:33:03,db1,care07,10.0.0.5,12,345,QUERY,crm,'SELECT * FROM cdr WHERE a_number IN ('0612345678', '0698765432'), x',0";
        assert!(is_mariadb_audit(l));
        let (f, ts) = mariadb_audit_record(l).unwrap();
        assert_eq!(
            cellwarden_event::format_timestamp(ts),
            "2026-11-24T08:33:03.000000Z"
        );
        assert_eq!(get(&f, "user"), "care07");
        assert_eq!(get(&f, "client_host"), "10.0.0.5");
        assert_eq!(get(&f, "server_host"), "db1");
        assert_eq!(get(&f, "database"), "crm");
        assert_eq!(
            get(&f, "statement"),
            "SELECT * FROM cdr WHERE a_number IN ('0612345678', '0698765432'), x"
        );
        assert_eq!(get(&f, "return_code"), "0");
        let (c, _) =
            mariadb_audit_record("20261124 08:33:01,db1,care07,10.0.0.5,12,0,CONNECT,crm,,0")
                .unwrap();
        assert_eq!(get(&c, "command"), "CONNECT");
        assert!(!is_mariadb_audit("Nov 24 08:33:03 host x"));
    }

    #[test]
    fn oracle_unified_audit_csv() {
        let h = csv_header(
            "EVENT_TIMESTAMP,DBUSERNAME,OS_USERNAME,USERHOST,CLIENT_PROGRAM_NAME,ACTION_NAME,OBJECT_SCHEMA,OBJECT_NAME,SQL_TEXT,SQL_BINDS,RETURN_CODE",
        );
        assert!(is_oracle_header("\"EVENT_TIMESTAMP\",\"DBUSERNAME\""));
        let row = "24-NOV-26 02.05.07.123456 PM,BILLING_RO,oracle,jump01,sqlplus@jump01,SELECT,CDR,CALLS,\"select * from cdr.calls\nwhere calling_number = :1\", #1(11):33612345678,0";
        let (f, ts) = oracle_record(&h, row).unwrap();
        assert_eq!(
            cellwarden_event::format_timestamp(ts),
            "2026-11-24T14:05:07.123456Z"
        );
        assert_eq!(get(&f, "user"), "BILLING_RO");
        assert_eq!(get(&f, "client_host"), "jump01");
        assert_eq!(get(&f, "application"), "sqlplus@jump01");
        assert_eq!(get(&f, "object_name"), "CDR.CALLS");
        assert_eq!(get(&f, "parameter"), " #1(11):33612345678");
        assert_eq!(
            get(&f, "SQL_TEXT"),
            "select * from cdr.calls\nwhere calling_number = :1"
        );
        let iso = oracle_time("2026-11-24 14:05:07.5 +01:00");
        assert_eq!(
            cellwarden_event::format_timestamp(iso),
            "2026-11-24T13:05:07.500000Z"
        );
    }

    #[test]
    fn other_lines_are_not_records() {
        assert!(!is_pgaudit(
            "2026-03-04 03:12:09 UTC [1] LOG:  connection received: host=10.0.0.1"
        ));
        assert!(pgaudit_record("AUDIT: SESSION,1", &[], &Learner::default(), None).is_none());
    }

    #[test]
    fn postgresql_syslog_marks_and_pieces() {
        assert_eq!(pg_syslog_mark("[5] LOG:  x"), Some((5, None, "LOG:  x")));
        assert_eq!(pg_syslog_mark("[7-2]  WHERE"), Some((7, Some(2), " WHERE")));
        assert_eq!(pg_syslog_mark("[x] LOG:  x"), None);
        assert_eq!(pg_syslog_mark("[-1] LOG:  x"), None);
        assert_eq!(pg_syslog_mark("(root) CMD"), None);
        let first = b"Mar  1 10:00:05 db postgres[4250]: [7-1] LOG:  statement: SELECT 1";
        let more = |line: &str| {
            pg_syslog_continues(first, line.as_bytes())
                .map(|(sep, piece)| String::from_utf8([sep, piece].concat()).unwrap())
        };
        // Cut at a line break: a new line; cut at 900 bytes: the blank kept.
        assert_eq!(
            more("Mar  1 10:00:05 db postgres[4250]: [7-2] FROM t").as_deref(),
            Some("\nFROM t")
        );
        assert_eq!(
            more("Mar  1 10:00:05 db postgres[4250]: [7-2]  FROM t").as_deref(),
            Some(" FROM t")
        );
        assert_eq!(
            more("Mar  1 10:00:05 db postgres[4250]: [7-2] \tFROM t").as_deref(),
            Some("\n\tFROM t")
        );
        // Another process, message, host or a record of its own: not a piece of this one.
        assert_eq!(
            more("Mar  1 10:00:05 db postgres[4251]: [7-2] FROM t"),
            None
        );
        assert_eq!(
            more("Mar  1 10:00:05 db postgres[4250]: [8-2] FROM t"),
            None
        );
        assert_eq!(
            more("Mar  1 10:00:05 db2 postgres[4250]: [7-2] FROM t"),
            None
        );
        assert_eq!(
            more("Mar  1 10:00:05 db postgres[4250]: [7-2] LOG:  statement: SELECT 2"),
            None
        );
        // The server's stderr through journald (`journalctl` text): no mark, a tab.
        let first = b"Mar 01 10:00:05 db postgres[4250]: 2026-03-01 10:00:05.001 UTC [4250] LOG:  statement: SELECT 1";
        assert_eq!(
            pg_syslog_continues(first, b"Mar 01 10:00:05 db postgres[4250]: \t  FROM t")
                .map(|(sep, piece)| [sep, piece].concat()),
            Some(b"\n\t  FROM t".to_vec())
        );
        assert_eq!(
            pg_syslog_continues(first, b"Mar 01 10:00:05 db postgres[4250]: FROM t")
                .map(|(sep, piece)| [sep, piece].concat()),
            None
        );
        assert_eq!(
            pg_syslog_continues(first, b"Mar 01 10:00:05 db postgres[4251]: \t  FROM t")
                .map(|(sep, piece)| [sep, piece].concat()),
            None
        );
        // Without sequence numbers: `[chunk]`.
        let first = b"Mar  1 10:00:05 db postgres[4250]: [1] LOG:  statement: SELECT 1";
        assert_eq!(
            pg_syslog_continues(first, b"Mar  1 10:00:05 db postgres[4250]: [2] FROM t")
                .map(|(sep, piece)| [sep, piece].concat()),
            Some(b"\nFROM t".to_vec())
        );
    }

    #[test]
    fn server_log_messages() {
        fn rec(t: &str) -> (Fields<'_>, Option<Timestamp>) {
            pg_log_record(t, &[], &Learner::default(), None).unwrap()
        }
        // log_statement = all, a statement over several lines, a `[pid-line]` prefix, CEST.
        let (f, ts) = rec(
            "2017-04-03 22:35:22.389 CEST [5404-2] postgres@billing LOG:  duration: 37.598 ms  statement: SELECT *\n\tFROM cdr\n\tWHERE imsi = '208150000000001'",
        );
        assert_eq!(
            cellwarden_event::format_timestamp(ts),
            "2017-04-03T20:35:22.389000Z"
        );
        assert_eq!(get(&f, "pid"), "5404");
        assert_eq!(get(&f, "user"), "postgres");
        assert_eq!(get(&f, "database"), "billing");
        assert_eq!(get(&f, "level"), "LOG");
        assert_eq!(get(&f, "duration_ms"), "37.598");
        assert_eq!(get(&f, "query_step"), "statement");
        assert_eq!(
            get(&f, "statement"),
            "SELECT *\n\tFROM cdr\n\tWHERE imsi = '208150000000001'"
        );
        // Extended protocol: only `execute` is a statement that ran.
        let (f, _) = rec(
            "2019-09-04 15:52:38.004 CEST [31136] user@host LOG:  duration: 12.437 ms  parse <unnamed>: select * from t",
        );
        assert_eq!(
            (
                get(&f, "query_step"),
                get(&f, "statement"),
                get(&f, "query")
            ),
            ("parse".into(), "".into(), "select * from t".into())
        );
        let (f, _) = rec(
            "2019-09-04 15:52:38.004 CEST [31136] user@host LOG:  execute pdo_stmt_00000002: select * from t",
        );
        assert_eq!(
            (get(&f, "query_name"), get(&f, "statement")),
            ("pdo_stmt_00000002".into(), "select * from t".into())
        );
        // Refused logins.
        let (f, _) = rec(
            "2023-03-04 18:24:15.242 UTC [24915-2] sherlock@postgres FATAL:  password authentication failed for user \"sherlock\"",
        );
        assert_eq!(
            (
                get(&f, "action"),
                get(&f, "outcome"),
                get(&f, "auth_method"),
                get(&f, "user")
            ),
            (
                "authentication_failed".into(),
                "failure".into(),
                "password".into(),
                "sherlock".into()
            )
        );
        let (f, _) = rec(
            "2024-01-01 00:00:00 UTC [7] FATAL:  no pg_hba.conf entry for host \"203.0.113.9\", user \"hlr_sync\", database \"billing\", SSL off",
        );
        assert_eq!(
            (get(&f, "client_host"), get(&f, "user"), get(&f, "database")),
            ("203.0.113.9".into(), "hlr_sync".into(), "billing".into())
        );
        // Bind values of the extended protocol.
        let (f, _) = rec(
            "2024-01-01 00:00:00 UTC [7] DETAIL:  parameters: $1 = '3361234', $2 = 'it''s', $3 = NULL",
        );
        assert_eq!(get(&f, "parameter"), "\"3361234\",\"it's\",NULL");
        // A prefix without a time is still a record; a line of SQL is not.
        assert!(is_pg_log_line(
            "LOG:  database system is ready to accept connections"
        ));
        assert!(!is_pg_log_line("SELECT 1 FROM t WHERE a = 'LOG:  x'"));
        // EST is UTC-5 whatever the season.
        let (_, ts) = rec("2017-07-31 13:36:43.557 EST [835-1] LOG:  autovacuum launcher started");
        assert_eq!(
            cellwarden_event::format_timestamp(ts),
            "2017-07-31T18:36:43.557000Z"
        );
    }
}
