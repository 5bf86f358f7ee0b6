//! PostgreSQL's `log_line_prefix`: what each escape writes, read back into fields.
//!
//! With the server's setting (`--pg-prefix`), a prefix is read escape by escape
//! ([`Prefix::read`]); without it, or when a line does not follow it, the prefix is read by the
//! shape of its parts ([`guess`]): times, `[pid]` / `[pid-line]`, `user@db`, `key=value`
//! lists (`user=`, `db=`, `app=`, `client=`, `host=`, `session=`…), `host(port)` as `%r`
//! writes it, session ids as `%c` writes them (`5f1b2c3d.1a2b`).
//!
//! Field names: `%u` `user`, `%d` `database`, `%a` `application`, `%r` `client_host` and
//! `client_port`, `%h` `client_host`, `%L` `local_address`, `%b` `backend_type`, `%p` `pid`,
//! `%P` `leader_pid`, `%c` `session_id`, `%l` `session_line`, `%s` `session_start`, `%v`
//! `virtual_xid`, `%x` `xid`, `%e` `sql_state`, `%i` `command_tag`, `%Q` `query_id`; `%m`,
//! `%t` and `%n` give the record's time. Empty values, `[unknown]` and `[local]` are left out.

use std::borrow::Cow;

use cellwarden_event::{Timestamp, Value};
use jiff::tz::TimeZone;

use crate::json::{Fields, find_str, put_new};

/// One part of a prefix format.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    /// The escape letter.
    Esc(u8),
    /// `%q`: processes without a session stop the prefix here.
    Stop,
}

/// A parsed `log_line_prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefix {
    text: String,
    parts: Vec<Part>,
    /// By part: the next literal's index, and whether it is the last part.
    next: Vec<(Option<usize>, bool)>,
}

const ESCAPES: &[u8] = b"aubdrhLpPtmnisclvxeQ";

impl Prefix {
    /// Parses a `log_line_prefix` value (as in `postgresql.conf`, without the quotes).
    pub fn parse(format: &str) -> Result<Prefix, String> {
        let mut parts: Vec<Part> = Vec::new();
        let mut lit = String::new();
        let b = format.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] != b'%' {
                let c = format[i..].chars().next().unwrap_or(' ');
                lit.push(c);
                i += c.len_utf8();
                continue;
            }
            i += 1;
            // Padding: `%-10u`, `%10p`.
            while i < b.len() && (b[i] == b'-' || b[i].is_ascii_digit()) {
                i += 1;
            }
            let Some(&c) = b.get(i) else {
                return Err("ends with a lone %".into());
            };
            i += 1;
            if c == b'%' {
                lit.push('%');
                continue;
            }
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut lit)));
            }
            if c == b'q' {
                parts.push(Part::Stop);
            } else if ESCAPES.contains(&c) {
                parts.push(Part::Esc(c));
            } else {
                return Err(format!("%{} is not a log_line_prefix escape", c as char));
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Prefix {
            text: format.to_owned(),
            next: next_literals(&parts),
            parts,
        })
    }

    /// The format as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Reads `prefix` (the text before the severity) by this format into `out`; the record's
    /// time when an escape gives one. `None` (and `out` unchanged) when it does not follow it.
    pub fn read<'t>(
        &self,
        prefix: &'t str,
        zone: Option<&TimeZone>,
        out: &mut Fields<'t>,
    ) -> Option<Option<Timestamp>> {
        let before = out.len();
        let mut ts = None;
        let mut rest = prefix;
        let mut ok = true;
        for (i, part) in self.parts.iter().enumerate() {
            match part {
                Part::Lit(l) => {
                    if let Some(r) = rest.strip_prefix(l.as_str()) {
                        rest = r;
                    } else if rest.trim().is_empty() && l.trim().is_empty() {
                        // The trailing space before the severity is not part of the prefix
                        // text we are given.
                        rest = "";
                    } else {
                        ok = false;
                        break;
                    }
                }
                Part::Stop => {
                    // A process without a session ends its prefix here.
                    if rest.trim().is_empty() {
                        rest = "";
                        break;
                    }
                }
                Part::Esc(c) => {
                    let (next, last) = self.next[i];
                    let next = next.and_then(|n| match &self.parts[n] {
                        Part::Lit(l) => Some(l.as_str()),
                        _ => None,
                    });
                    let Some(len) = value_len(*c, rest, next, last) else {
                        ok = false;
                        break;
                    };
                    put_escape(*c, rest[..len].trim(), zone, &mut ts, out);
                    rest = &rest[len..];
                }
            }
        }
        if !ok || !rest.trim().is_empty() {
            out.truncate(before);
            return None;
        }
        Some(ts)
    }
}

/// For each part of a format, the index of the next literal after it and whether that literal
/// is the format's last part.
fn next_literals(parts: &[Part]) -> Vec<(Option<usize>, bool)> {
    (0..parts.len())
        .map(|i| {
            let n = (i + 1..parts.len()).find(|&j| matches!(parts[j], Part::Lit(_)));
            (n, n == Some(parts.len() - 1))
        })
        .collect()
}

/// How many bytes of `text` the value of escape `c` takes, given the literal that follows it
/// (`last`: the format's last part, so a value with spaces runs to its last occurrence).
fn value_len(c: u8, text: &str, next: Option<&str>, last: bool) -> Option<usize> {
    let b = text.as_bytes();
    let digits = |from: usize| from + b[from..].iter().take_while(|x| x.is_ascii_digit()).count();
    let pad = b.iter().take_while(|x| **x == b' ').count();
    match c {
        b't' | b'm' | b's' => {
            let t = timestamp_len(&text[pad..])?;
            Some(pad + t)
        }
        b'n' => {
            let mut j = digits(pad);
            if b.get(j) == Some(&b'.') {
                j = digits(j + 1);
            }
            (j > pad).then_some(j)
        }
        b'p' | b'P' | b'l' | b'x' | b'Q' => {
            let start = pad + usize::from(b.get(pad) == Some(&b'-'));
            let j = digits(start);
            // Padded to the right (`%-10p`): the spaces belong to the value unless the next
            // literal starts with them.
            let padded = j + b[j..].iter().take_while(|x| **x == b' ').count();
            Some(match next {
                Some(n) if !text[padded..].starts_with(n) => j,
                _ => padded,
            })
        }
        _ => match next {
            Some(n) => find_str(text, n, last),
            None => Some(text.len()),
        },
    }
}

/// Length of `YYYY-MM-DD HH:MM:SS[.fff][ ZONE]` at the start of `t`.
fn timestamp_len(t: &str) -> Option<usize> {
    let b = t.as_bytes();
    let shape = b.len() >= 19
        && b[..19].is_ascii()
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b' '
        && b[13] == b':'
        && b[16] == b':'
        && b[..4].iter().all(u8::is_ascii_digit);
    if !shape {
        return None;
    }
    let mut j = 19;
    if b.get(j) == Some(&b'.') {
        j += 1 + b[j + 1..].iter().take_while(|x| x.is_ascii_digit()).count();
    }
    // The zone: an abbreviation (`UTC`, `CEST`) or an offset (`+03`, `-0330`).
    if b.get(j) == Some(&b' ') {
        let z = &t[j + 1..];
        let end = z.find([' ', ']', ':', ',', '|']).unwrap_or(z.len());
        let word = &z[..end];
        let zone_like = !word.is_empty()
            && word.len() <= 6
            && (word.bytes().all(|x| x.is_ascii_alphabetic())
                || (word.starts_with(['+', '-'])
                    && word[1..].bytes().all(|x| x.is_ascii_digit() || x == b':')));
        if zone_like {
            j += 1 + end;
        }
    }
    Some(j)
}

fn put<'t>(out: &mut Fields<'t>, k: &'static str, v: &'t str) {
    let v = v.trim();
    if v != "[unknown]" {
        put_new(out, k, v);
    }
}

/// `host(port)` as `%r` writes it, a bare host as `%h` does; nothing for `[local]` and
/// `[unknown]`.
pub fn split_host_port(v: &str) -> (Option<&str>, Option<&str>) {
    let v = v.trim();
    if v.is_empty() || v == "[local]" || v == "[unknown]" {
        return (None, None);
    }
    if let Some(open) = v.rfind('(')
        && let Some(p) = v[open + 1..].strip_suffix(')')
        && p.bytes().all(|b| b.is_ascii_digit())
    {
        return (Some(&v[..open]), Some(p).filter(|p| !p.is_empty()));
    }
    (Some(v), None)
}

fn put_escape<'t>(
    c: u8,
    v: &'t str,
    zone: Option<&TimeZone>,
    ts: &mut Option<Timestamp>,
    out: &mut Fields<'t>,
) {
    match c {
        b'u' => put(out, "user", v),
        b'd' => put(out, "database", v),
        b'a' => put(out, "application", v),
        b'b' => put(out, "backend_type", v),
        b'r' | b'h' => {
            let (h, p) = split_host_port(v);
            if let Some(h) = h {
                put(out, "client_host", h);
            }
            if let Some(p) = p {
                put(out, "client_port", p);
            }
        }
        b'L' => put(out, "local_address", v),
        b'p' => put_int(out, "pid", v),
        b'P' => put_int(out, "leader_pid", v),
        b'l' => put_int(out, "session_line", v),
        b'c' => put(out, "session_id", v),
        b's' => put(out, "session_start", v),
        b'v' => put(out, "virtual_xid", v),
        b'x' if v != "0" => put(out, "xid", v),
        b'e' if v != "00000" => put(out, "sql_state", v),
        b'i' => put(out, "command_tag", v),
        b'Q' if v != "0" => put(out, "query_id", v),
        b't' | b'm' if ts.is_none() => *ts = time_with_zone(v, zone),
        b'n' => {
            if ts.is_none()
                && let Ok(secs) = v.parse::<f64>()
            {
                *ts = Timestamp::from_millisecond((secs * 1000.0).round() as i64).ok();
            }
        }
        _ => {}
    }
}

fn put_int(out: &mut Fields<'_>, k: &'static str, v: &str) {
    if let Ok(n) = v.trim().parse::<i64>()
        && !out.iter().any(|(n, _)| n == k)
    {
        out.push((Cow::Borrowed(k), Value::Int(n)));
    }
}

/// Whether `t` is a session id as `%c` writes it: the session's start time and pid in hex
/// (`5f1b2c3d.1a2b`).
fn is_session_id(t: &str) -> bool {
    t.split_once('.').is_some_and(|(a, b)| {
        (6..=10).contains(&a.len())
            && (1..=8).contains(&b.len())
            && a.bytes().all(|x| x.is_ascii_hexdigit())
            && b.bytes().all(|x| x.is_ascii_hexdigit())
            && a.bytes().any(|x| x.is_ascii_alphabetic())
                | b.bytes().any(|x| x.is_ascii_alphabetic())
                | (a.len() == 8)
    })
}

/// The escape whose value a `key=value` part of a prefix gives (`user=`, `db=`, `client=`…;
/// any case), as [`guess`] reads it and [`format_of`] learns it.
fn key_escape(k: &str) -> Option<u8> {
    let mut buf = [0u8; 12];
    let b = buf.get_mut(..k.len())?;
    b.copy_from_slice(k.as_bytes());
    b.make_ascii_lowercase();
    Some(match std::str::from_utf8(b).ok()? {
        "user" | "usr" | "u" => b'u',
        "db" | "database" | "d" => b'd',
        "app" | "application" | "appname" | "a" => b'a',
        "client" | "host" | "remote" | "h" | "r" | "client_addr" => b'r',
        "session" | "sid" | "session_id" | "c" => b'c',
        "pid" | "p" => b'p',
        "xid" | "txid" | "x" => b'x',
        "vxid" | "v" => b'v',
        "state" | "sqlstate" | "e" => b'e',
        "tag" | "cmd" | "i" => b'i',
        _ => return None,
    })
}

/// Reads a prefix whose format is not known by the shape of its parts (see the module
/// documentation); the record's time when it starts with one.
pub fn guess<'t>(
    prefix: &'t str,
    zone: Option<&TimeZone>,
    out: &mut Fields<'t>,
) -> Option<Timestamp> {
    let mut ts = None;
    let mut rest = prefix.trim_start();
    if let Some(n) = timestamp_len(rest) {
        ts = time_with_zone(&rest[..n], zone);
        rest = &rest[n..];
    }
    for tok in rest.split([' ', '\t']).filter(|t| !t.is_empty()) {
        let t = tok.trim_end_matches(':');
        // `[pid]` or `[pid-line]`.
        if let Some(inner) = t.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
            let mut it = inner.split('-');
            if let Some(p) = it.next().filter(|p| p.parse::<i64>().is_ok()) {
                put_int(out, "pid", p);
                if let Some(l) = it.next() {
                    put_int(out, "session_line", l);
                }
                continue;
            }
        }
        if is_session_id(t) {
            put(out, "session_id", t);
            continue;
        }
        for part in t.split([',', ';', '|']) {
            if let Some((k, v)) = part.split_once('=') {
                if let Some(esc) = key_escape(k) {
                    put_escape(esc, v, zone, &mut ts, out);
                }
            } else if let Some((u, d)) = part.split_once('@')
                && !u.is_empty()
                && !d.is_empty()
                && !u.contains('[')
            {
                put(out, "user", u);
                put(out, "database", d);
            } else if let (Some(h), Some(p)) = split_host_port(part)
                && p.len() <= 5
                && (h.parse::<std::net::IpAddr>().is_ok() || h.contains('.'))
            {
                put(out, "client_host", h);
                put(out, "client_port", p);
            } else if part.parse::<std::net::IpAddr>().is_ok() {
                put(out, "client_host", part);
            }
        }
    }
    ts
}

/// Reads a prefix by the first of `formats` it follows, else by the format `learner` learnt
/// from the lines before, else by its shape.
pub fn read_prefix<'t>(
    prefix: &'t str,
    formats: &[Prefix],
    learner: &Learner,
    zone: Option<&TimeZone>,
    out: &mut Fields<'t>,
) -> Option<Timestamp> {
    for f in formats {
        if let Some(ts) = f.read(prefix, zone, out) {
            return ts;
        }
    }
    learner.read(prefix, zone, out)
}

/// Learns the format of the prefixes of one run of lines (a unit of a log) when the server's
/// setting is not given: reading by a known format is about twice as fast as [`guess`].
///
/// A format is learnt from what [`guess`] reads: a line whose every part `guess` reads gives
/// a format ([`format_of`]); once [`AGREE`] lines in a row give the same format and reading
/// each by it gives exactly the fields `guess` gives, later lines are read by it. A line that
/// does not follow it (a process without a session, a different spacing) is guessed. After
/// [`LEARN_LINES`] lines without a format, every line is guessed.
#[derive(Debug, Default)]
pub struct Learner(std::cell::RefCell<Learning>);

#[derive(Debug, Default)]
struct Learning {
    lines: u32,
    candidate: Option<(Prefix, u8)>,
    learnt: Option<Prefix>,
}

/// Lines in a row that must agree before a format is used.
const AGREE: u8 = 4;
/// Lines looked at for a format.
const LEARN_LINES: u32 = 64;
/// Longest literal of a learnt format.
const MAX_LEARNT_LITERAL: usize = 16;

impl Learner {
    fn read<'t>(
        &self,
        prefix: &'t str,
        zone: Option<&TimeZone>,
        out: &mut Fields<'t>,
    ) -> Option<Timestamp> {
        let mut st = self.0.borrow_mut();
        if let Some(f) = &st.learnt {
            return match f.read(prefix, zone, out) {
                Some(ts) => ts,
                None => guess(prefix, zone, out),
            };
        }
        let before = out.len();
        let ts = guess(prefix, zone, out);
        if st.lines >= LEARN_LINES {
            return ts;
        }
        st.lines += 1;
        let agreed = format_of(prefix).filter(|f| {
            let mut check: Fields<'t> = Vec::with_capacity(out.len() - before);
            f.read(prefix, zone, &mut check) == Some(ts) && same_fields(&out[before..], &check)
        });
        st.candidate = match (st.candidate.take(), agreed) {
            (Some((c, n)), Some(f)) if c == f => Some((c, n + 1)),
            (_, f) => f.map(|f| (f, 1)),
        };
        if let Some((f, n)) = &st.candidate
            && *n >= AGREE
        {
            st.learnt = Some(f.clone());
        }
        ts
    }
}

fn same_fields(a: &[(Cow<'_, str>, Value<'_>)], b: &[(Cow<'_, str>, Value<'_>)]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

/// The format of a prefix whose every part [`guess`] reads (see [`Learner`]); `None` when
/// some part is not one `guess` reads.
fn format_of(prefix: &str) -> Option<Prefix> {
    let mut parts: Vec<Part> = Vec::new();
    let start = prefix.len() - prefix.trim_start().len();
    lit(&mut parts, &prefix[..start]);
    let mut rest = &prefix[start..];
    if let Some(n) = timestamp_len(rest) {
        let ms = rest.as_bytes().get(19) == Some(&b'.');
        parts.push(Part::Esc(if ms { b'm' } else { b't' }));
        rest = &rest[n..];
    }
    while !rest.is_empty() {
        let token = rest.trim_start_matches([' ', '\t']);
        lit(&mut parts, &rest[..rest.len() - token.len()]);
        let end = token.find([' ', '\t']).unwrap_or(token.len());
        let (tok, after) = token.split_at(end);
        rest = after;
        let t = tok.trim_end_matches(':');
        token_format(t, &mut parts)?;
        lit(&mut parts, &tok[t.len()..]);
    }
    // Separators, not text a line could be made of: a value is found by its next literal, a
    // long one would make that search slow on a hostile line.
    if parts
        .iter()
        .any(|p| matches!(p, Part::Lit(l) if l.len() > MAX_LEARNT_LITERAL))
    {
        return None;
    }
    let mut text = String::new();
    for p in &parts {
        match p {
            Part::Lit(l) => text.push_str(&l.replace('%', "%%")),
            Part::Esc(c) => {
                text.push('%');
                text.push(*c as char);
            }
            Part::Stop => text.push_str("%q"),
        }
    }
    Some(Prefix {
        text,
        next: next_literals(&parts),
        parts,
    })
}

/// Adds literal text to a format being built.
fn lit(parts: &mut Vec<Part>, s: &str) {
    if s.is_empty() {
        return;
    }
    match parts.last_mut() {
        Some(Part::Lit(l)) => l.push_str(s),
        _ => parts.push(Part::Lit(s.to_owned())),
    }
}

/// The parts of one blank-separated token of a prefix, as [`guess`] reads it.
fn token_format(t: &str, parts: &mut Vec<Part>) -> Option<()> {
    if let Some(inner) = t.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
        let mut it = inner.split('-');
        if it.next().is_some_and(|p| p.parse::<i64>().is_ok()) {
            lit(parts, "[");
            parts.push(Part::Esc(b'p'));
            if it.next().is_some() {
                lit(parts, "-");
                parts.push(Part::Esc(b'l'));
            }
            if it.next().is_some() {
                return None;
            }
            lit(parts, "]");
            return Some(());
        }
    }
    if is_session_id(t) {
        parts.push(Part::Esc(b'c'));
        return Some(());
    }
    let mut from = 0;
    for (i, sep) in t
        .match_indices([',', ';', '|'])
        .map(|(i, s)| (i, Some(s)))
        .chain([(t.len(), None)])
    {
        let part = &t[from..i];
        from = i + 1;
        if let Some((k, _)) = part.split_once('=') {
            let esc = key_escape(k)?;
            lit(parts, &part[..k.len() + 1]);
            parts.push(Part::Esc(esc));
        } else if let Some((u, d)) = part.split_once('@')
            && !u.is_empty()
            && !d.is_empty()
            && !u.contains('[')
        {
            parts.push(Part::Esc(b'u'));
            lit(parts, "@");
            parts.push(Part::Esc(b'd'));
        } else if let (Some(h), Some(p)) = split_host_port(part)
            && p.len() <= 5
            && (h.parse::<std::net::IpAddr>().is_ok() || h.contains('.'))
        {
            parts.push(Part::Esc(b'r'));
        } else if part.parse::<std::net::IpAddr>().is_ok() {
            parts.push(Part::Esc(b'h'));
        } else if !part.is_empty() {
            return None;
        }
        if let Some(sep) = sep {
            lit(parts, sep);
        }
    }
    Some(())
}

/// UTC offsets, in minutes, of the zone abbreviations PostgreSQL writes with the `Default`
/// abbreviation set (`log_timezone`), and a few more.
fn zone_offset(abbrev: &str) -> Option<i32> {
    if abbrev.len() > 6 {
        return None;
    }
    let mut buf = [0u8; 6];
    buf[..abbrev.len()].copy_from_slice(abbrev.as_bytes());
    buf.make_ascii_uppercase();
    Some(match std::str::from_utf8(&buf[..abbrev.len()]).ok()? {
        "UTC" | "GMT" | "Z" | "UCT" | "WET" | "ZULU" => 0,
        "BST" | "CET" | "MET" | "WEST" | "WAT" => 60,
        // IST is Israel Standard Time in PostgreSQL's Default set.
        "CEST" | "MEST" | "EET" | "SAST" | "CAT" | "IST" => 120,
        "EEST" | "MSK" | "EAT" | "AST3" | "IDT" => 180,
        "GST" => 240,
        "PKT" => 300,
        "ICT" | "WIB" => 420,
        "HKT" | "SGT" | "AWST" | "PHT" | "WITA" => 480,
        "JST" | "KST" | "WIT" => 540,
        "ACST" => 570,
        "AEST" => 600,
        "ACDT" => 630,
        "AEDT" => 660,
        "NZST" => 720,
        "NZDT" => 780,
        "ADT" => -180,
        "AST" | "EDT" => -240,
        "EST" | "CDT" => -300,
        "CST" | "MDT" => -360,
        "MST" | "PDT" => -420,
        "PST" | "AKDT" => -480,
        "AKST" => -540,
        "HST" => -600,
        _ => return None,
    })
}

/// "YYYY-MM-DD HH:MM:SS[.fff] [UTC|CEST|+hh[:mm]]" as PostgreSQL and MySQL write it; a time
/// without a zone (or with one not known) is read in `zone` (UTC when `None`).
pub(crate) fn time_with_zone(t: &str, zone: Option<&TimeZone>) -> Option<Timestamp> {
    let t = t.trim();
    let (date_time, abbrev) = match t.rsplit_once(' ') {
        Some((a, z)) if a.contains(' ') || a.contains('T') => (a, z),
        _ => (t, ""),
    };
    // The common case without allocating: a known abbreviation or none.
    if let Some(c) = cellwarden_event::Civil::parse(date_time)
        && c.offset.is_none()
    {
        let offset = if abbrev.is_empty() {
            zone.is_none().then_some(0)
        } else {
            zone_offset(abbrev).map(|m| m * 60)
        };
        if let Some(ts) = c.with_offset(offset) {
            return Some(ts);
        }
    }
    let mut text = date_time.replacen(' ', "T", 1);
    if abbrev.starts_with('+') || abbrev.starts_with('-') {
        text.push_str(abbrev);
        if abbrev.len() == 3 {
            text.push_str(":00");
        }
        return cellwarden_event::parse_timestamp(&text);
    }
    if let Some(minutes) = zone_offset(abbrev) {
        let sign = if minutes < 0 { '-' } else { '+' };
        let m = minutes.abs();
        text.push_str(&format!("{sign}{:02}:{:02}", m / 60, m % 60));
        return cellwarden_event::parse_timestamp(&text);
    }
    cellwarden_event::parse_timestamp_in(&text, zone)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(f: &Fields<'_>) -> Vec<(String, String)> {
        f.iter()
            .map(|(k, v)| (k.to_string(), v.as_text().unwrap_or_default().into_owned()))
            .collect()
    }

    fn get(f: &Fields<'_>, k: &str) -> Option<String> {
        f.iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.as_text().map(|t| t.into_owned()))
    }

    #[test]
    fn every_escape_is_read_back() {
        let p = Prefix::parse(
            "%m [%p-%l] %q%u@%d app=%a client=%r sess=%c tag=%i state=%e vxid=%v xid=%x start=%s type=%b ",
        )
        .expect("parses");
        let line = "2026-03-02 10:11:12.345 CET [4242-7] app@billing app=psql client=10.30.5.17(46773) sess=65e2f1a0.1092 tag=SELECT state=00000 vxid=3/17 xid=0 start=2026-03-02 10:00:00 CET type=client backend ";
        let mut out = Vec::new();
        let ts = p.read(line, None, &mut out).expect("follows the format");
        assert_eq!(
            ts.map(|t| t.to_string()),
            Some("2026-03-02T09:11:12.345Z".to_owned())
        );
        let f = fields(&out);
        for (k, v) in [
            ("pid", "4242"),
            ("session_line", "7"),
            ("user", "app"),
            ("database", "billing"),
            ("application", "psql"),
            ("client_host", "10.30.5.17"),
            ("client_port", "46773"),
            ("session_id", "65e2f1a0.1092"),
            ("command_tag", "SELECT"),
            ("virtual_xid", "3/17"),
            ("session_start", "2026-03-02 10:00:00 CET"),
            ("backend_type", "client backend"),
        ] {
            assert!(
                f.contains(&(k.to_owned(), v.to_owned())),
                "{k}={v} missing in {f:?}"
            );
        }
        // Defaults left out: state 00000, xid 0.
        assert_eq!(get(&out, "sql_state"), None);
        assert_eq!(get(&out, "xid"), None);
    }

    #[test]
    fn processes_without_a_session_stop_at_q() {
        let p = Prefix::parse("%m [%p] %q%u@%d ").expect("parses");
        let mut out = Vec::new();
        let ts = p
            .read("2026-03-02 10:11:12.345 UTC [77] ", None, &mut out)
            .expect("follows");
        assert!(ts.is_some());
        assert_eq!(get(&out, "pid").as_deref(), Some("77"));
        assert_eq!(get(&out, "user"), None);
    }

    #[test]
    fn epoch_padding_and_local_connections() {
        let p = Prefix::parse("%n|%-8u|%10p|%h|").expect("parses");
        let mut out = Vec::new();
        let ts = p
            .read(
                "1709374272.500|app     |      4242|[local]|",
                None,
                &mut out,
            )
            .expect("follows");
        assert_eq!(ts.map(|t| t.as_millisecond()), Some(1_709_374_272_500));
        assert_eq!(get(&out, "user").as_deref(), Some("app"));
        assert_eq!(get(&out, "pid").as_deref(), Some("4242"));
        assert_eq!(get(&out, "client_host"), None);
    }

    #[test]
    fn a_line_not_following_the_format_is_guessed() {
        let formats = [Prefix::parse("%t [%p]: user=%u,db=%d,app=%a,client=%h ").expect("parses")];
        let mut out = Vec::new();
        // Written by another server with `%m [%p] %u@%d %r `.
        let ts = read_prefix(
            "2026-03-02 10:11:12.345 UTC [4242] app@billing 10.30.5.17(46773) ",
            &formats,
            &Learner::default(),
            None,
            &mut out,
        );
        assert!(ts.is_some());
        assert_eq!(get(&out, "client_host").as_deref(), Some("10.30.5.17"));
        assert_eq!(get(&out, "client_port").as_deref(), Some("46773"));
        assert_eq!(get(&out, "user").as_deref(), Some("app"));
        // And the configured one is read exactly.
        let mut out = Vec::new();
        read_prefix(
            "2026-03-02 10:11:12 UTC [4242]: user=app,db=billing,app=PostgreSQL JDBC Driver,client=10.30.5.17 ",
            &formats,
            &Learner::default(),
            None,
            &mut out,
        );
        assert_eq!(
            get(&out, "application").as_deref(),
            Some("PostgreSQL JDBC Driver")
        );
        assert_eq!(get(&out, "client_host").as_deref(), Some("10.30.5.17"));
    }

    #[test]
    fn guesses_session_ids_and_ipv6() {
        let mut out = Vec::new();
        guess(
            "2026-03-02 10:11:12 UTC 65e2f1a0.1092 [4242-3] user=app,db=b,client=2001:db8::5(5432) ",
            None,
            &mut out,
        );
        assert_eq!(get(&out, "session_id").as_deref(), Some("65e2f1a0.1092"));
        assert_eq!(get(&out, "session_line").as_deref(), Some("3"));
        assert_eq!(get(&out, "client_host").as_deref(), Some("2001:db8::5"));
    }

    #[test]
    fn formats_are_learnt_from_the_lines_guessed() {
        let lines = [
            "2026-03-01 00:00:00.000 UTC [1000]: [1-1] user=care00,db=cdrdb,app=crm,client=10.1.0.10",
            "2026-03-02 10:11:12.5 UTC 65e2f1a0.1092 [4242-3] app@b 2001:db8::5(5432)",
            "2026-03-02 10:11:12 CET [77] user=u;db=d|app=psql",
        ];
        let formats = [
            "%m [%p]: [%p-%l] user=%u,db=%d,app=%a,client=%r",
            "%m %c [%p-%l] %u@%d %r",
            "%t [%p] user=%u;db=%d|app=%a",
        ];
        for (line, want) in lines.iter().zip(formats) {
            assert_eq!(
                format_of(line).map(|f| f.text).as_deref(),
                Some(want),
                "{line}"
            );
        }
        assert!(format_of("2026-03-02 10:11:12 UTC [77] odd=1").is_none());
        assert!(format_of("2026-03-02 10:11:12 UTC [77] word").is_none());
        assert!(
            format_of(&format!(
                "2026-03-02 10:11:12 UTC [77]{}u@d",
                " ".repeat(17)
            ))
            .is_none()
        );
        // Learnt after four lines that agree; read by it after (an application name with
        // a blank, which the shape alone cuts at the blank).
        let learner = Learner::default();
        for i in 0..4 {
            let mut out = Vec::new();
            let line = format!(
                "2026-03-01 00:00:0{i}.000 UTC [100{i}] user=u{i},db=d,app=crm,client=10.1.0.{i}"
            );
            learner.read(&line, None, &mut out);
            assert_eq!(get(&out, "user"), Some(format!("u{i}")));
        }
        assert!(learner.0.borrow().learnt.is_some());
        let mut out = Vec::new();
        let ts = learner.read(
            "2026-03-01 00:00:09.000 UTC [1009] user=u9,db=d,app=pgAdmin 4,client=10.1.0.9(5000)",
            None,
            &mut out,
        );
        assert!(ts.is_some());
        assert_eq!(get(&out, "application").as_deref(), Some("pgAdmin 4"));
        assert_eq!(get(&out, "client_port").as_deref(), Some("5000"));
        // A line of another shape is still guessed.
        let mut out = Vec::new();
        learner.read("2026-03-01 00:00:09.000 UTC [1010] ", None, &mut out);
        assert_eq!(get(&out, "pid").as_deref(), Some("1010"));
    }

    #[test]
    fn bad_formats_are_refused() {
        assert!(Prefix::parse("%m %z").is_err());
        assert!(Prefix::parse("%m %").is_err());
    }
}
