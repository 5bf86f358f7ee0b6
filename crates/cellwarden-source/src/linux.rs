//! Linux text logs: auditd raw logs (records of one event joined) and syslog (RFC 3164 and
//! 5424 lines, rsyslog file formats), with sshd, sudo, su, PAM and useradd messages parsed into
//! fields.
//!
//! Every event gets a `Channel` field naming its source (`auditd`, or `syslog/<program>` such
//! as `syslog/sshd`), which the log source mapping turns into Sigma's `product: linux` and
//! services.

use std::borrow::Cow;

use cellwarden_event::{Timestamp, Value};
use jiff::civil::DateTime;

use crate::json::Fields;

/// Starts the line the reader appends to an auditd event with the lineage of its process
/// (see [`crate::lineage`]); never the start of a real record.
pub const LINEAGE_ANNOTATION: &str = "\x1elineage";

/// The (name, value) pairs of a lineage line (`\x1elineage`, then `\x1f`-separated names and
/// values, `%`-escaped); `None` for any other line.
pub fn lineage_fields(line: &str) -> Option<Vec<(&str, String)>> {
    let rest = line.strip_prefix(LINEAGE_ANNOTATION)?;
    let mut parts = rest.split('\x1f').skip(1);
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (parts.next(), parts.next()) {
        let v = if v.contains('%') {
            v.replace("%0A", "\n")
                .replace("%1E", "\x1e")
                .replace("%1F", "\x1f")
                .replace("%25", "%")
        } else {
            v.to_owned()
        };
        out.push((k, v));
    }
    Some(out)
}

/// `msg=audit(1700000000.123:4567)`: the event's time and serial, as written.
pub fn audit_id(line: &str) -> Option<&str> {
    // Searched on every line of an audit log: one searcher for all.
    static MARK: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"msg=audit("));
    let start = MARK.find(line.as_bytes())? + "msg=audit(".len();
    let end = start + memchr::memchr(b')', &line.as_bytes()[start..])?;
    Some(&line[start..end])
}

/// Splits the `node=NAME ` prefix auditd writes with `name_format` set (and `audisp-remote`
/// collectors keep) from a record line.
pub fn audit_node(line: &str) -> (Option<&str>, &str) {
    match line.strip_prefix("node=") {
        Some(rest) => match rest.split_once(' ') {
            Some((node, rest)) => (Some(node), rest.trim_start()),
            None => (Some(rest), ""),
        },
        None => (None, line),
    }
}

/// How much of `text` (whole lines) to read now: all of it, unless its last lines are the
/// records of one auditd event that may go on. auditd writes an event's records one by one
/// and flushes every so many records, so a follower may find the first records of an event
/// and not the rest yet; the event is read once the rest comes (or its file stays still).
/// An event's records share node and id; an event of several records ends with `EOE`.
pub fn audit_complete_prefix(text: &[u8]) -> usize {
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let mut end = body.len();
    let mut tail: Option<(Option<&str>, &str)> = None;
    let mut start = text.len();
    loop {
        let line_start = memchr::memrchr(b'\n', &body[..end]).map_or(0, |i| i + 1);
        let Ok(line) = std::str::from_utf8(&body[line_start..end]) else {
            break;
        };
        let (node, record) = audit_node(line);
        let Some(id) = audit_id(record).filter(|_| record.starts_with("type=")) else {
            break;
        };
        match tail {
            // The last event is complete.
            None if record.starts_with("type=EOE ") => return text.len(),
            None => tail = Some((node, id)),
            Some(t) if t == (node, id) => {}
            Some(_) => break,
        }
        start = line_start;
        if line_start == 0 {
            break;
        }
        end = line_start - 1;
    }
    start
}

/// Whether a line is an auditd record (`[node=NAME ]type=… msg=audit(…)`).
pub fn is_audit_record(line: &str) -> bool {
    audit_node(line).1.starts_with("type=") && line.contains("msg=audit(")
}

fn audit_time(id: &str) -> Option<Timestamp> {
    let (secs, _) = id.split_once(':')?;
    let (s, frac) = secs.split_once('.').unwrap_or((secs, "0"));
    let s: i64 = s.parse().ok()?;
    let digits: String = frac.chars().take(3).collect();
    let ms: i64 = format!("{digits:0<3}").parse().ok()?;
    Timestamp::from_millisecond(s * 1000 + ms).ok()
}

/// `key=value` pairs: values bare, "double-quoted" or 'single-quoted'.
fn pairs(text: &str) -> Vec<(&str, &str, bool)> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b' ' || b[i] == b'\x1d') {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' && b[i] != b' ' {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' {
            continue;
        }
        let key = &text[ks..i];
        i += 1;
        let (val, quoted) = if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
            let q = b[i];
            let vs = i + 1;
            let ve = text[vs..]
                .find(q as char)
                .map(|e| vs + e)
                .unwrap_or(b.len());
            i = (ve + 1).min(b.len());
            (&text[vs..ve], true)
        } else {
            let vs = i;
            while i < b.len() && b[i] != b' ' && b[i] != b'\x1d' {
                i += 1;
            }
            (&text[vs..i], false)
        };
        if !key.is_empty() {
            out.push((key, val, quoted));
        }
    }
    out
}

/// auditd writes untrusted strings as hex when they hold spaces or special characters.
pub(crate) fn unhex(v: &str) -> Option<String> {
    if v.len() < 2 || !v.len().is_multiple_of(2) || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let bytes: Vec<u8> = (0..v.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&v[i..i + 2], 16).unwrap_or(b'?'))
        .collect();
    Some(
        String::from_utf8_lossy(&bytes)
            .trim_end_matches('\0')
            .replace('\0', " "),
    )
}

const ENCODED: [&str; 9] = [
    "proctitle",
    "name",
    "cwd",
    "exe",
    "comm",
    "path",
    "data",
    "cmd",
    "acct",
];

/// The fields of one event as its records give them: a key given again with another value
/// becomes a list (PATH records' `name`s). Keys are found through a small hash table (an
/// event has some fifty fields).
struct Builder {
    entries: Vec<(Cow<'static, str>, Value<'static>)>,
    /// Further values of the entry at this index.
    extra: Vec<(usize, Value<'static>)>,
    /// Open addressing: entry index + 1 by hash (0: free).
    slots: [u16; SLOTS],
}

const SLOTS: usize = 256;

/// FNV-1a: short keys, no allocation.
fn key_hash(k: &str) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in k.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h ^ (h >> 32)) as usize
}

impl Builder {
    fn new() -> Builder {
        Builder {
            entries: Vec::with_capacity(48),
            extra: Vec::new(),
            slots: [0; SLOTS],
        }
    }
    /// The entry of `key` (hash `h`), or where a new one goes: its free slot, or `None` past
    /// what the table holds (a hostile record with hundreds of keys: a plain scan then).
    fn locate(&self, key: &str, h: usize) -> Result<usize, Option<usize>> {
        if self.entries.len() >= SLOTS / 2 {
            return self.entries.iter().position(|(k, _)| k == key).ok_or(None);
        }
        let mut i = h % SLOTS;
        loop {
            match self.slots[i] {
                0 => return Err(Some(i)),
                n if self.entries[n as usize - 1].0 == key => return Ok(n as usize - 1),
                _ => i = (i + 1) % SLOTS,
            }
        }
    }
    fn add(&mut self, key: &str, v: Value<'static>) {
        let h = key_hash(key);
        match self.locate(key, h) {
            Ok(i) => self.add_extra(i, v),
            Err(slot) => {
                self.entries.push((owned_key(key, h), v));
                if let Some(slot) = slot {
                    self.slots[slot] = self.entries.len() as u16;
                }
            }
        }
    }
    fn add_extra(&mut self, i: usize, v: Value<'static>) {
        if self.entries[i].1 != v && !self.extra.iter().any(|(j, x)| *j == i && *x == v) {
            self.extra.push((i, v));
        }
    }
    fn get(&self, key: &str) -> Option<&Value<'static>> {
        let i = self.locate(key, key_hash(key)).ok()?;
        Some(&self.entries[i].1)
    }
    fn finish(self) -> Fields<'static> {
        let mut extra = self.extra;
        self.entries
            .into_iter()
            .enumerate()
            .map(|(i, (k, v))| {
                let v = if extra.iter().any(|(j, _)| *j == i) {
                    let mut list = vec![v];
                    extra.retain(|(j, x)| {
                        if *j == i {
                            list.push(x.clone());
                            false
                        } else {
                            true
                        }
                    });
                    Value::List(list)
                } else {
                    v
                };
                (k, v)
            })
            .collect()
    }
}

/// Field names auditd and the readers write on nearly every event: kept without allocating.
const KNOWN_KEYS: &[&str] = &[
    "ARCH",
    "AUID",
    "Ancestors",
    "CommandLine",
    "ConfigManagement",
    "CurrentDirectory",
    "EGID",
    "EUID",
    "FSGID",
    "FSUID",
    "FileAction",
    "GID",
    "Image",
    "LogonId",
    "OGID",
    "OUID",
    "OpenFlags",
    "PackageManager",
    "ParentCommandLine",
    "ParentImage",
    "ParentProcessId",
    "ParentUser",
    "ProcessChain",
    "ProcessId",
    "SGID",
    "SUID",
    "SYSCALL",
    "SourceFilename",
    "TargetFilename",
    "UID",
    "User",
    "a0",
    "a1",
    "a2",
    "a3",
    "a4",
    "a5",
    "a6",
    "a7",
    "acct",
    "addr",
    "arch",
    "argc",
    "auid",
    "cap_fe",
    "cap_fi",
    "cap_fp",
    "cap_frootid",
    "cap_fver",
    "comm",
    "cwd",
    "dev",
    "egid",
    "euid",
    "exe",
    "exit",
    "fsgid",
    "fsuid",
    "gid",
    "grantors",
    "hostname",
    "inode",
    "item",
    "items",
    "key",
    "mode",
    "name",
    "nametype",
    "node",
    "ogid",
    "op",
    "ouid",
    "pid",
    "ppid",
    "proctitle",
    "rdev",
    "res",
    "saddr",
    "serial",
    "ses",
    "sgid",
    "subj",
    "success",
    "suid",
    "syscall",
    "syscall_a0",
    "syscall_a1",
    "syscall_a2",
    "syscall_a3",
    "terminal",
    "tty",
    "type",
    "uid",
];

/// [`KNOWN_KEYS`] by hash (open addressing: index + 1, 0 free).
static KNOWN_TABLE: std::sync::LazyLock<[u16; 512]> = std::sync::LazyLock::new(|| {
    let mut t = [0u16; 512];
    for (i, k) in KNOWN_KEYS.iter().enumerate() {
        let mut slot = key_hash(k) % 512;
        while t[slot] != 0 {
            slot = (slot + 1) % 512;
        }
        t[slot] = i as u16 + 1;
    }
    t
});

/// The key as the event keeps it: a known name without allocating (`h` is its hash).
fn owned_key(k: &str, h: usize) -> Cow<'static, str> {
    let mut slot = h % 512;
    loop {
        match KNOWN_TABLE[slot] {
            0 => return Cow::Owned(k.to_owned()),
            n if KNOWN_KEYS[n as usize - 1] == k => {
                return Cow::Borrowed(KNOWN_KEYS[n as usize - 1]);
            }
            _ => slot = (slot + 1) % 512,
        }
    }
}

fn typed(v: &str) -> Value<'static> {
    match v.parse::<i64>() {
        Ok(i) if !v.starts_with('0') || v == "0" => Value::Int(i),
        _ => Value::Str(Cow::Owned(v.to_owned())),
    }
}

fn is_arg(k: &str) -> bool {
    k.len() > 1 && k.starts_with('a') && k[1..].bytes().all(|c| c.is_ascii_digit())
}

fn decoded<'a>(k: &str, v: &'a str, quoted: bool, arg: bool) -> Cow<'a, str> {
    if !quoted && (arg || ENCODED.contains(&k)) {
        unhex(v).map_or(Cow::Borrowed(v), Cow::Owned)
    } else {
        Cow::Borrowed(v)
    }
}

/// The `key=value` pairs of one record's body (after `): `) with auditd's encodings undone:
/// hex-encoded strings of the fields that may hold them, EXECVE arguments, and the pairs of a
/// quoted `msg='…'` (PAM and other user-space records) in place of it.
pub(crate) fn decoded_pairs<'a>(rtype: &str, body: &'a str) -> Vec<(&'a str, Cow<'a, str>)> {
    let mut out = Vec::new();
    for (k, v, quoted) in pairs(body) {
        if k == "msg" && quoted {
            for (k2, v2, q2) in pairs(v) {
                out.push((k2, decoded(k2, v2, q2, false)));
            }
            continue;
        }
        let arg = rtype == "EXECVE" && is_arg(k);
        out.push((k, decoded(k, v, quoted, arg)));
    }
    out
}

/// `name` made absolute with the directory auditd gave for it (a PARENT record) or the
/// process's working directory.
fn absolute(name: &str, dir: Option<&str>, cwd: Option<&str>) -> String {
    if name.starts_with('/') {
        return name.to_owned();
    }
    let dir = match dir {
        Some(d) if d.starts_with('/') => d.to_owned(),
        Some(d) => match cwd {
            Some(c) => format!("{}/{}", c.trim_end_matches('/'), d.trim_start_matches("./")),
            None => return name.to_owned(),
        },
        None => match cwd {
            Some(c) => c.to_owned(),
            None => return name.to_owned(),
        },
    };
    format!(
        "{}/{}",
        dir.trim_end_matches('/'),
        name.trim_start_matches("./")
    )
}

/// The file a system call wrote, replaced, removed or changed, from the event's PATH records
/// (name, nametype): (target, source of a rename or link).
fn file_paths(
    action: &str,
    paths: &[(String, String)],
    cwd: Option<&str>,
) -> (Option<String>, Option<String>) {
    let parents: Vec<&str> = paths
        .iter()
        .filter(|(_, t)| t == "PARENT")
        .map(|(n, _)| n.as_str())
        .collect();
    let items: Vec<(usize, &(String, String))> = paths
        .iter()
        .filter(|(_, t)| t != "PARENT")
        .enumerate()
        .collect();
    let resolve = |(i, (name, _)): (usize, &(String, String))| {
        let dir = parents.get(i).or(parents.last()).copied();
        absolute(name, dir, cwd)
    };
    let of = |kind: &str| items.iter().rev().find(|(_, (_, t))| t == kind).copied();
    match action {
        "rename" | "link" => {
            let source = of("DELETE").or_else(|| of("NORMAL")).map(resolve);
            (of("CREATE").map(resolve), source)
        }
        "delete" => (of("DELETE").or(items.first().copied()).map(resolve), None),
        _ => (of("CREATE").or(items.first().copied()).map(resolve), None),
    }
}

/// Joins the records (lines) of one auditd event into one set of fields.
///
/// Beyond auditd's own fields: `ARCH` and `SYSCALL` in words (as auditd's enriched format
/// writes them); for a process start (EXECVE) the Sysmon-style `Image`, `CommandLine`,
/// `ProcessId`, `ParentProcessId`, `CurrentDirectory`, `User`, `LogonId`; for every system
/// call that writes, replaces, removes or changes a file `FileAction`, `TargetFilename`
/// (absolute), `SourceFilename` (rename, link) and `OpenFlags`; and the lineage the reader
/// found (`ParentImage`, `ParentCommandLine`, `ParentUser`, `Ancestors`, `ProcessChain`,
/// `PackageManager`, `ConfigManagement`; see [`crate::lineage`]).
pub fn audit_event(text: &str) -> (Fields<'static>, Option<Timestamp>) {
    let mut b = Builder::new();
    let mut ts = None;
    let has_execve = text
        .lines()
        .any(|l| audit_node(l).1.starts_with("type=EXECVE"));
    let mut argv: Vec<(usize, String)> = Vec::new();
    let mut node_seen = false;
    let mut has_syscall = false;
    let mut arch = None;
    let mut nr: Option<u32> = None;
    let mut named = None;
    let mut args: [String; 4] = Default::default();
    let mut success = true;
    let mut paths: Vec<(String, String)> = Vec::new();
    let mut cwd: Option<String> = None;
    for line in text.lines() {
        if let Some(note) = lineage_fields(line) {
            for (k, v) in note {
                let v = if k == "Ancestors" {
                    Value::List(
                        v.split('\n')
                            .map(|a| Value::Str(Cow::Owned(a.to_owned())))
                            .collect(),
                    )
                } else {
                    Value::Str(Cow::Owned(v))
                };
                b.add(k, v);
            }
            continue;
        }
        let (node, line) = audit_node(line);
        if let (Some(node), false) = (node, node_seen) {
            node_seen = true;
            b.add("node", Value::Str(Cow::Owned(node.to_owned())));
        }
        let (head, rest) = match line.find("):") {
            Some(i) => (&line[..i + 1], &line[i + 2..]),
            None => (line, ""),
        };
        let rtype = head
            .strip_prefix("type=")
            .and_then(|t| t.split(' ').next())
            .unwrap_or("UNKNOWN");
        if ts.is_none() {
            let id = audit_id(head);
            ts = id.and_then(audit_time);
            // The event's serial number ties its records together (and to other tools).
            if let Some(serial) = id
                .and_then(|i| i.split_once(':'))
                .and_then(|(_, s)| s.parse::<i64>().ok())
            {
                b.add("serial", Value::Int(serial));
            }
        }
        b.add("type", Value::Str(Cow::Owned(rtype.to_owned())));
        let mut item = (String::new(), String::new());
        for (k, v) in decoded_pairs(rtype, rest) {
            let arg = is_arg(k);
            match rtype {
                "EXECVE" if arg => {
                    argv.push((k[1..].parse().unwrap_or(0), v.to_string()));
                    b.add(k, Value::Str(Cow::Owned(v.into_owned())));
                    continue;
                }
                "SYSCALL" => {
                    has_syscall = true;
                    match k {
                        "arch" => arch = crate::syscall::arch_name(&v),
                        "syscall" => match v.parse() {
                            Ok(n) => nr = Some(n),
                            // Interpreted by `ausearch -i`: the name itself.
                            Err(_) => named = Some(v.to_string()),
                        },
                        "SYSCALL" => named = Some(v.to_string()),
                        "success" => success = v != "no",
                        "a0" | "a1" | "a2" | "a3" => {
                            args[(k.as_bytes()[1] - b'0') as usize] = v.to_string()
                        }
                        _ => {}
                    }
                    if arg && has_execve {
                        // EXECVE's a0… are the arguments Sigma rules mean; keep the call's aside.
                        b.add(
                            &format!("syscall_{k}"),
                            Value::Str(Cow::Owned(v.into_owned())),
                        );
                        continue;
                    }
                }
                "PATH" => match k {
                    "name" => item.0 = v.to_string(),
                    "nametype" => item.1 = v.to_string(),
                    _ => {}
                },
                "CWD" if k == "cwd" => cwd = Some(v.to_string()),
                _ => {}
            }
            b.add(k, typed(&v));
        }
        if rtype == "PATH" && !item.0.is_empty() && item.0 != "(null)" {
            paths.push(item);
        }
    }
    if let Some(a) = arch
        && b.get("ARCH").is_none()
    {
        b.add("ARCH", Value::Str(Cow::Borrowed(a)));
    }
    let name: Option<Cow<'static, str>> = match named {
        Some(n) => {
            if b.get("SYSCALL").is_none() {
                b.add("SYSCALL", Value::Str(Cow::Owned(n.clone())));
            }
            Some(Cow::Owned(n))
        }
        None => {
            let n = arch
                .zip(nr)
                .and_then(|(a, n)| crate::syscall::syscall_name(a, n));
            if let Some(n) = n {
                b.add("SYSCALL", Value::Str(Cow::Borrowed(n)));
            }
            n.map(Cow::Borrowed)
        }
    };
    let creates = paths.iter().any(|(_, t)| t == "CREATE");
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    if let Some(call) = name.as_deref()
        && success
        && let Some(action) = crate::syscall::file_action(call, &arg_refs, creates)
    {
        b.add("FileAction", Value::Str(Cow::Borrowed(action)));
        let flags = match call {
            "open" => Some(1),
            "openat" | "open_by_handle_at" => Some(2),
            _ => None,
        };
        if let Some(f) = flags.and_then(|i| crate::syscall::open_flags(&args[i])) {
            b.add("OpenFlags", Value::Str(Cow::Owned(f)));
        }
        let (target, source) = file_paths(action, &paths, cwd.as_deref());
        if let Some(t) = target {
            b.add("TargetFilename", Value::Str(Cow::Owned(t)));
        }
        if let Some(s) = source {
            b.add("SourceFilename", Value::Str(Cow::Owned(s)));
        }
    }
    if has_execve {
        argv.sort_by_key(|(i, _)| *i);
        let cmd: Vec<&str> = argv.iter().map(|(_, a)| a.as_str()).collect();
        b.add("CommandLine", Value::Str(Cow::Owned(cmd.join(" "))));
    }
    if has_execve || has_syscall {
        for (sigma, audit) in [
            ("Image", "exe"),
            ("ProcessId", "pid"),
            ("ParentProcessId", "ppid"),
            ("CurrentDirectory", "cwd"),
            ("User", "UID"),
            ("LogonId", "ses"),
        ] {
            if let Some(v) = b.get(audit).cloned() {
                b.add(sigma, v);
            }
        }
        if b.get("User").is_none()
            && let Some(uid) = b.get("uid").cloned()
        {
            let user = match uid {
                Value::Int(0) => Value::Str(Cow::Borrowed("root")),
                Value::Int(n) => Value::Str(Cow::Owned(n.to_string())),
                other => other,
            };
            b.add("User", user);
        }
    }
    b.add("Channel", Value::Str(Cow::Borrowed("auditd")));
    (b.finish(), ts)
}

/// Month names of RFC 3164 times.
pub const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// An RFC 3164 time (`Mar  4 10:00:00`, `Mar 4 10:00:00.123`) and the text after it; the time
/// parts are `None` when the month starts the line but the rest is not a time.
#[allow(clippy::type_complexity)]
fn rfc3164_stamp(l: &str) -> Option<(Option<(i8, i8, i8, i8, i8, i32)>, &str)> {
    let month = MONTHS.iter().position(|m| l.starts_with(m))? as i8 + 1;
    let r = l.get(3..)?.strip_prefix(' ')?.trim_start_matches(' ');
    let (day, r) = r.split_once(' ')?;
    let (time, rest) = r.split_once(' ').unwrap_or((r, ""));
    let parts = || -> Option<(i8, i8, i8, i8, i8, i32)> {
        let day: i8 = day.parse().ok()?;
        let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
        let mut it = hms.split(':').map(|x| x.parse::<i8>().ok());
        let (h, m, s) = (it.next()??, it.next()??, it.next()??);
        if it.next().is_some() || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let digits = &frac[..frac.len().min(9)];
        let nanos = if digits.is_empty() {
            0
        } else {
            digits.parse::<i32>().ok()? * 10i32.pow(9 - digits.len() as u32)
        };
        Some((month, day, h, m, s, nanos))
    };
    let t = parts();
    // Not a time at all: not this shape.
    if t.is_none() && !time.contains(':') {
        return None;
    }
    Some((t, rest))
}

/// Whether a line continues the record before it (a line that starts with white space, as
/// Filebeat's syslog module joins them). Other lines that are not syslog are reported, not
/// joined: syslog daemons write one record a line, so such a line is damage.
pub fn continues_record(line: &[u8]) -> bool {
    matches!(line.first(), Some(b' ' | b'\t'))
}

/// Whether a line looks like syslog (with or without `<PRI>`).
pub fn looks_like_syslog(line: &str) -> bool {
    let l = strip_pri(line).0;
    MONTHS
        .iter()
        .any(|m| l.starts_with(m) && l.as_bytes().get(3) == Some(&b' '))
        || (l.len() > 20 && l.as_bytes()[4] == b'-' && l.as_bytes()[10] == b'T')
        || (l.len() > 22
            && l.starts_with("1 ")
            && l.as_bytes()[2..6].iter().all(u8::is_ascii_digit)
            && l.as_bytes()[6] == b'-')
}

/// A line without its `<PRI>` prefix, as bytes (the year roll-over check reads raw lines).
pub fn strip_pri_bytes(line: &[u8]) -> (&[u8], bool) {
    if line.first() == Some(&b'<')
        && let Some(end) = line.iter().take(6).position(|b| *b == b'>')
        && line[1..end].iter().all(u8::is_ascii_digit)
    {
        return (&line[end + 1..], true);
    }
    (line, false)
}

fn strip_pri(line: &str) -> (&str, Option<u32>) {
    if let Some(rest) = line.strip_prefix('<')
        && let Some(end) = rest.find('>')
        && let Ok(pri) = rest[..end].parse::<u32>()
    {
        return (&rest[end + 1..], Some(pri));
    }
    (line, None)
}

/// A time zone by IANA name (`Europe/Paris`), `UTC`, or UTC offset (`+02:00`, `-0500`).
pub fn zone(name: &str) -> Option<jiff::tz::TimeZone> {
    let n = name.trim();
    if n.eq_ignore_ascii_case("utc") || n.eq_ignore_ascii_case("z") {
        return Some(jiff::tz::TimeZone::UTC);
    }
    if let Some(rest) = n.strip_prefix(['+', '-']) {
        let digits: String = rest.chars().filter(|c| c.is_ascii_digit()).collect();
        if digits.len() == 4 && rest.len() <= 5 {
            let h: i32 = digits[..2].parse().ok()?;
            let m: i32 = digits[2..].parse().ok()?;
            let secs = (h * 3600 + m * 60) * if n.starts_with('-') { -1 } else { 1 };
            let off = jiff::tz::Offset::from_seconds(secs).ok()?;
            return Some(jiff::tz::TimeZone::fixed(off));
        }
        return None;
    }
    jiff::tz::TimeZone::get(n).ok()
}

/// One syslog line: time, host, program, pid, message, and fields parsed from the message of
/// sshd, sudo, su, PAM and user-management programs. `year` completes RFC 3164 times, read as
/// UTC.
pub fn syslog_line(line: &str, year: i16) -> Option<(Fields<'static>, Option<Timestamp>)> {
    syslog_line_in(line, year, None)
}

/// [`syslog_line`], with RFC 3164 times read in `zone` (UTC when `None`).
pub fn syslog_line_in(
    line: &str,
    year: i16,
    zone: Option<&jiff::tz::TimeZone>,
) -> Option<(Fields<'static>, Option<Timestamp>)> {
    syslog_parts(line, year, zone).map(|p| syslog_fields(&p))
}

/// The fields of a syslog line split by [`syslog_parts`], and its time.
pub fn syslog_fields(p: &SyslogParts<'_>) -> (Fields<'static>, Option<Timestamp>) {
    finish(Builder::new(), p.pri, p.host, p.app, p.pid, p.msg, p.time)
}

/// The header of a syslog line and its message.
#[derive(Debug, Clone, Copy)]
pub struct SyslogParts<'l> {
    /// `<PRI>`, when written.
    pub pri: Option<u32>,
    /// The line's time.
    pub time: Option<Timestamp>,
    /// Host (`-` when none).
    pub host: &'l str,
    /// Program (tag).
    pub app: &'l str,
    /// Process id (`-` when none).
    pub pid: &'l str,
    /// The message.
    pub msg: &'l str,
}

/// Splits a syslog line (RFC 3164, RFC 5424, or an ISO time first) into its header and
/// message; `year` completes RFC 3164 times, read in `zone` (UTC when `None`).
pub fn syslog_parts<'l>(
    line: &'l str,
    year: i16,
    zone: Option<&jiff::tz::TimeZone>,
) -> Option<SyslogParts<'l>> {
    let (l, pri) = strip_pri(line.trim_end());
    let parts = |time, host, app, pid, msg| SyslogParts {
        pri,
        time,
        host,
        app,
        pid,
        msg,
    };
    let (ts, rest): (Option<Timestamp>, &str) = if let Some(r) = l.strip_prefix("1 ") {
        // RFC 5424: VERSION TIMESTAMP HOST APP PROCID MSGID SD MSG
        let mut it = r.splitn(6, ' ');
        let ts = it.next().and_then(cellwarden_event::parse_timestamp);
        let host = it.next()?;
        let app = it.next()?;
        let procid = it.next()?;
        let _msgid = it.next()?;
        let rest = it.next().unwrap_or("");
        let msg = if rest.starts_with('[') {
            match rest.find("] ") {
                Some(i) => &rest[i + 2..],
                None => "",
            }
        } else {
            rest.strip_prefix("- ").unwrap_or(rest)
        };
        return Some(parts(ts, host, app, procid, msg));
    } else if let Some((stamp, rest)) = rfc3164_stamp(l) {
        let ts = stamp.and_then(|(month, day, h, m, sec, nanos)| {
            DateTime::new(year, month, day, h, m, sec, nanos)
                .ok()?
                .to_zoned(zone.cloned().unwrap_or(jiff::tz::TimeZone::UTC))
                .ok()
                .map(|z| z.timestamp())
        });
        (ts, rest)
    } else {
        let (stamp, rest) = l.split_once(' ')?;
        (
            Some(cellwarden_event::parse_timestamp_in(stamp, zone)?),
            rest,
        )
    };
    // syslogd's own notes have no host: `--- last message repeated 3 times ---`.
    if rest.starts_with("--- ") || rest.starts_with("last message repeated") {
        return Some(parts(ts, "-", "", "-", rest));
    }
    // HOST TAG[PID]: MSG
    let (host, rest) = rest.split_once(' ')?;
    let (tag, msg) = match rest.split_once(": ") {
        Some((t, m)) if !t.contains(' ') => (t, m),
        _ => ("", rest),
    };
    let (app, pid) = match tag.find('[') {
        Some(i) => (&tag[..i], tag[i + 1..].trim_end_matches(']')),
        None => (tag, "-"),
    };
    Some(parts(ts, host, app, pid, msg))
}

fn finish(
    mut b: Builder,
    pri: Option<u32>,
    host: &str,
    app: &str,
    pid: &str,
    msg: &str,
    ts: Option<Timestamp>,
) -> (Fields<'static>, Option<Timestamp>) {
    let s = |x: &str| Value::Str(Cow::Owned(x.to_owned()));
    if let Some(p) = pri {
        b.add("facility", Value::Int((p / 8) as i64));
        b.add("severity", Value::Int((p % 8) as i64));
    }
    if host != "-" {
        b.add("hostname", s(host));
    }
    let app = if app == "-" { "" } else { app };
    b.add("program", s(app));
    if let Ok(p) = pid.parse::<i64>() {
        b.add("pid", Value::Int(p));
    }
    b.add("message", s(msg));
    message_fields(&mut b, app, msg);
    let program = app.rsplit('/').next().unwrap_or(app).to_ascii_lowercase();
    b.add("Channel", s(&format!("syslog/{program}")));
    (b.finish(), ts)
}

/// Gives a `journalctl -o json` record the fields of a syslog line: time, host, program, pid,
/// message and the parsed message fields. Returns the time; `None` if it is not journald.
pub fn journald(fields: &mut Fields<'_>) -> Option<Option<Timestamp>> {
    let get = |k: &str| {
        fields
            .iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.as_text())
            .map(|t| t.into_owned())
    };
    let realtime = get("__REALTIME_TIMESTAMP")?;
    let msg = get("MESSAGE").unwrap_or_default();
    let app = get("SYSLOG_IDENTIFIER")
        .or_else(|| get("_COMM"))
        .unwrap_or_default();
    let pid = get("_PID")
        .or_else(|| get("SYSLOG_PID"))
        .unwrap_or_else(|| "-".into());
    let host = get("_HOSTNAME").unwrap_or_else(|| "-".into());
    let ts = realtime
        .parse::<i64>()
        .ok()
        .and_then(|us| Timestamp::from_microsecond(us).ok());
    let b = Builder::new();
    let (extra, _) = finish(b, None, &host, &app, &pid, &msg, ts);
    for (k, v) in extra {
        if !fields.iter().any(|(n, _)| *n == k) {
            fields.push((k, v));
        }
    }
    Some(ts)
}

/// Fields from the messages of programs attackers' logins and privilege changes go through.
fn message_fields(b: &mut Builder, app: &str, msg: &str) {
    let s = |x: &str| Value::Str(Cow::Owned(x.to_owned()));
    let word_after = |text: &str, key: &str| -> Option<String> {
        let i = text.find(key)? + key.len();
        text[i..].split_whitespace().next().map(str::to_owned)
    };
    match app {
        "sshd" => {
            // "Accepted password for root from 1.2.3.4 port 22 ssh2"
            // "Failed password for invalid user admin from 1.2.3.4 port 22 ssh2"
            for (prefix, outcome) in [("Accepted ", "success"), ("Failed ", "failure")] {
                if let Some(rest) = msg.strip_prefix(prefix) {
                    b.add("outcome", s(outcome));
                    if let Some(method) = rest.split_whitespace().next() {
                        b.add("auth_method", s(method));
                    }
                    if let Some(u) = word_after(rest, " for invalid user ") {
                        b.add("user", s(&u));
                        b.add("invalid_user", Value::Bool(true));
                    } else if let Some(u) = word_after(rest, " for ") {
                        b.add("user", s(&u));
                    }
                }
            }
            if let Some(u) = word_after(msg, "Invalid user ") {
                b.add("user", s(&u));
                b.add("invalid_user", Value::Bool(true));
            }
            if let Some(ip) = word_after(msg, " from ") {
                b.add("src_ip", s(&ip));
            }
            if let Some(p) = word_after(msg, " port ").and_then(|p| p.parse::<i64>().ok()) {
                b.add("src_port", Value::Int(p));
            }
            if let Some(fp) = word_after(msg, " key: ").or_else(|| word_after(msg, " SHA256:")) {
                b.add("key_fingerprint", s(&fp));
            }
        }
        "sudo" => {
            // "alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/bash"
            if let Some((user, rest)) = msg.split_once(" : ") {
                b.add("user", s(user.trim()));
                for part in rest.split(" ; ") {
                    if let Some((k, v)) = part.split_once('=') {
                        let key = match k.trim() {
                            "TTY" => "tty",
                            "PWD" => "pwd",
                            "USER" => "target_user",
                            "COMMAND" => "command",
                            _ => continue,
                        };
                        b.add(key, s(v.trim()));
                    }
                }
            }
        }
        "su" => {
            // "(to root) alice on pts/0" / "FAILED SU (to root) alice on pts/0"
            if let Some(i) = msg.find("(to ") {
                let rest = &msg[i + 4..];
                if let Some((target, after)) = rest.split_once(')') {
                    b.add("target_user", s(target));
                    if let Some(u) = after.split_whitespace().next() {
                        b.add("user", s(u));
                    }
                }
                b.add(
                    "outcome",
                    s(if msg.contains("FAILED") {
                        "failure"
                    } else {
                        "success"
                    }),
                );
            }
        }
        "useradd" | "usermod" | "userdel" | "groupadd" | "groupmod" | "adduser" => {
            // "new user: name=backdoor, UID=0, GID=0, home=/root, shell=/bin/bash"
            for part in msg.split(", ") {
                let part = part.rsplit(": ").next().unwrap_or(part);
                if let Some((k, v)) = part.split_once('=') {
                    b.add(k.trim(), s(v.trim()));
                }
            }
        }
        _ => {}
    }
    // PAM: "pam_unix(sshd:session): session opened for user root(uid=0) by (uid=0)"
    if let Some(i) = msg.find("pam_") {
        let module: String = msg[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        b.add("pam_module", s(&module));
        if let Some(u) = word_after(msg, " for user ") {
            let u = u
                .split('(')
                .next()
                .unwrap_or(&u)
                .trim_matches('\'')
                .to_owned();
            b.add("user", s(&u));
        }
        if let Some(r) = word_after(msg, "rhost=") {
            b.add("src_ip", s(&r));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Multi-byte characters where times are read (found by fuzzing: they sliced inside a
    /// character and stopped the run).
    #[test]
    fn known_keys_are_distinct_and_found() {
        assert!(KNOWN_KEYS.windows(2).all(|w| w[0] < w[1]));
        for k in KNOWN_KEYS {
            assert!(matches!(owned_key(k, key_hash(k)), Cow::Borrowed(b) if b == *k));
        }
        let other = "not_a_known_key";
        assert!(matches!(owned_key(other, key_hash(other)), Cow::Owned(_)));
    }

    #[test]
    fn times_with_multibyte_characters_do_not_panic() {
        let _ = audit_event("type=SYSCALL msg=audit(1772500000.7\u{FFFD}5:1): pid=1");
        assert_eq!(
            audit_time("1772500000.123:1").map(|t| t.as_millisecond()),
            Some(1_772_500_000_123)
        );
        assert!(audit_time("1772500000.7\u{e9}5:1").is_none());
        let _ = syslog_line("Feb\u{FFFD}19 15:30:00 host sshd[1]: x", 2026);
        let _ = syslog_line("Feb 19 15:30:0\u{e9} host sshd[1]: x", 2026);
    }

    fn get<'a>(f: &'a Fields<'_>, k: &str) -> Option<&'a Value<'a>> {
        f.iter().find(|(n, _)| n == k).map(|(_, v)| v)
    }
    fn text(f: &Fields<'_>, k: &str) -> String {
        get(f, k)
            .and_then(|v| v.as_text())
            .unwrap_or_default()
            .to_string()
    }

    const EXECVE: &str = "type=SYSCALL msg=audit(1700000000.123:4242): arch=c000003e syscall=59 success=yes exit=0 a0=55d1 a1=55d2 a2=55d3 a3=0 items=2 ppid=1200 pid=1234 auid=1000 uid=0 gid=0 euid=0 ses=3 tty=pts0 comm=\"sgsnemu\" exe=\"/usr/local/bin/sgsnemu\" key=\"exec\"\x1dARCH=x86_64 SYSCALL=execve AUID=\"alice\" UID=\"root\"
type=EXECVE msg=audit(1700000000.123:4242): argc=3 a0=\"sgsnemu\" a1=\"-l\" a2=2D2D6C697374656E20302E302E302E30
type=CWD msg=audit(1700000000.123:4242): cwd=\"/tmp\"
type=PATH msg=audit(1700000000.123:4242): item=0 name=\"/usr/local/bin/sgsnemu\" nametype=NORMAL
type=PATH msg=audit(1700000000.123:4242): item=1 name=\"/lib64/ld-linux-x86-64.so.2\" nametype=NORMAL
type=PROCTITLE msg=audit(1700000000.123:4242): proctitle=7367736E656D75002D6C";

    #[test]
    fn auditd_records_join_into_one_event() {
        let (f, ts) = audit_event(EXECVE);
        assert_eq!(
            cellwarden_event::format_timestamp(ts),
            "2023-11-14T22:13:20.123000Z"
        );
        assert!(matches!(get(&f, "type"), Some(Value::List(l)) if l.len() == 5));
        assert_eq!(text(&f, "a0"), "sgsnemu");
        assert_eq!(text(&f, "a2"), "--listen 0.0.0.0");
        assert_eq!(text(&f, "syscall_a0"), "55d1");
        assert_eq!(text(&f, "CommandLine"), "sgsnemu -l --listen 0.0.0.0");
        assert_eq!(text(&f, "Image"), "/usr/local/bin/sgsnemu");
        assert_eq!(text(&f, "proctitle"), "sgsnemu -l");
        assert_eq!(text(&f, "SYSCALL"), "execve");
        assert_eq!(text(&f, "UID"), "root");
        assert_eq!(text(&f, "User"), "root");
        assert_eq!(text(&f, "cwd"), "/tmp");
        assert!(matches!(get(&f, "name"), Some(Value::List(l)) if l.len() == 2));
        assert_eq!(get(&f, "pid"), Some(&Value::Int(1234)));
    }

    #[test]
    fn auditd_node_prefix_names_the_host() {
        let with_node: String = EXECVE
            .lines()
            .map(|l| format!("node=pgw-07 {l}\n"))
            .collect();
        let (f, ts) = audit_event(&with_node);
        assert!(ts.is_some());
        assert_eq!(text(&f, "node"), "pgw-07");
        assert_eq!(text(&f, "CommandLine"), "sgsnemu -l --listen 0.0.0.0");
        assert_eq!(text(&f, "syscall_a0"), "55d1");
        assert!(is_audit_record(with_node.lines().next().unwrap()));
        assert_eq!(audit_node("node=x"), (Some("x"), ""));
        assert_eq!(audit_node("type=EOE"), (None, "type=EOE"));
    }

    #[test]
    fn auditd_user_records_parse_the_inner_message() {
        let (f, _) = audit_event(
            "type=USER_AUTH msg=audit(1700000001.000:77): pid=900 uid=0 auid=4294967295 ses=4294967295 msg='op=PAM:authentication grantors=? acct=\"root\" exe=\"/usr/sbin/sshd\" hostname=203.0.113.9 addr=203.0.113.9 terminal=ssh res=failed'",
        );
        assert_eq!(text(&f, "acct"), "root");
        assert_eq!(text(&f, "addr"), "203.0.113.9");
        assert_eq!(text(&f, "res"), "failed");
        assert_eq!(text(&f, "type"), "USER_AUTH");
    }

    #[test]
    fn rfc3164_sshd_login() {
        let (f, ts) = syslog_line(
            "Mar  4 03:12:09 gw-sgsn-01 sshd[2211]: Accepted password for root from 198.51.100.7 port 50122 ssh2",
            2026,
        )
        .unwrap();
        assert_eq!(
            cellwarden_event::format_timestamp(ts),
            "2026-03-04T03:12:09.000000Z"
        );
        assert_eq!(text(&f, "hostname"), "gw-sgsn-01");
        assert_eq!(text(&f, "program"), "sshd");
        assert_eq!(get(&f, "pid"), Some(&Value::Int(2211)));
        assert_eq!(text(&f, "user"), "root");
        assert_eq!(text(&f, "src_ip"), "198.51.100.7");
        assert_eq!(text(&f, "outcome"), "success");
        assert_eq!(text(&f, "Channel"), "syslog/sshd");
    }

    #[test]
    fn rfc5424_and_iso_lines() {
        let (f, ts) = syslog_line(
            "<86>1 2026-03-04T03:12:09.5Z core-mme-2 sudo 3001 - - alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/sbin/iptables -A INPUT -p icmp -j ACCEPT",
            2026,
        )
        .unwrap();
        assert!(ts.is_some());
        assert_eq!(get(&f, "facility"), Some(&Value::Int(10)));
        assert_eq!(text(&f, "user"), "alice");
        assert_eq!(text(&f, "target_user"), "root");
        assert!(text(&f, "command").starts_with("/usr/sbin/iptables"));
        let (f, _) = syslog_line(
            "2026-03-04T03:12:10.000000+00:00 core-mme-2 useradd[3100]: new user: name=support, UID=0, GID=0, home=/root, shell=/bin/bash",
            2026,
        )
        .unwrap();
        assert_eq!(text(&f, "name"), "support");
        assert_eq!(text(&f, "UID"), "0");
        assert_eq!(text(&f, "Channel"), "syslog/useradd");
    }

    #[test]
    fn pam_and_su() {
        let (f, _) = syslog_line("Mar  4 03:12:11 h1 su: pam_unix(su:session): session opened for user root(uid=0) by alice(uid=1000)", 2026).unwrap();
        assert_eq!(text(&f, "pam_module"), "pam_unix");
        assert_eq!(text(&f, "user"), "root");
        let (f, _) = syslog_line(
            "Mar  4 03:12:12 h1 su[77]: FAILED SU (to root) alice on pts/1",
            2026,
        )
        .unwrap();
        assert_eq!(text(&f, "outcome"), "failure");
        assert_eq!(text(&f, "target_user"), "root");
    }

    #[test]
    fn journald_records_get_syslog_fields() {
        let mut f = crate::json::flatten(r#"{"__REALTIME_TIMESTAMP":"1709521929000000","_HOSTNAME":"core-hss-1","SYSLOG_IDENTIFIER":"sshd","_PID":"812","MESSAGE":"Failed password for invalid user oracle from 192.0.2.44 port 4711 ssh2"}"#).unwrap();
        let ts = journald(&mut f).unwrap();
        assert_eq!(
            cellwarden_event::format_timestamp(ts),
            "2024-03-04T03:12:09.000000Z"
        );
        assert_eq!(text(&f, "user"), "oracle");
        assert_eq!(text(&f, "outcome"), "failure");
        assert_eq!(text(&f, "Channel"), "syslog/sshd");
        assert_eq!(text(&f, "hostname"), "core-hss-1");
    }

    #[test]
    fn garbage_is_not_syslog() {
        assert!(syslog_line("hello", 2026).is_none());
        assert!(!looks_like_syslog("{\"a\":1}"));
        assert!(looks_like_syslog("<13>Mar  4 03:12:11 h1 x: y"));
    }

    #[test]
    fn an_event_that_may_go_on_is_left_for_later() {
        let syscall = "type=SYSCALL msg=audit(1700000000.000:7): arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=2 exe=\"/usr/bin/id\"\n";
        let execve = "type=EXECVE msg=audit(1700000000.000:7): argc=1 a0=\"id\"\n";
        let eoe = "type=EOE msg=audit(1700000000.000:7): \n";
        let login =
            "node=db7 type=USER_LOGIN msg=audit(1700000000.000:6): pid=1 uid=0 res=success\n";
        let text = format!("{login}{syscall}{execve}");
        assert_eq!(audit_complete_prefix(text.as_bytes()), login.len());
        let done = format!("{text}{eoe}");
        assert_eq!(audit_complete_prefix(done.as_bytes()), done.len());
        // One event alone, or not auditd at all.
        assert_eq!(audit_complete_prefix(syscall.as_bytes()), 0);
        assert_eq!(audit_complete_prefix(b"some other line\n"), 16);
        assert_eq!(audit_complete_prefix(b""), 0);
    }
}
