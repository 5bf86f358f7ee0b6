//! Process lineage on Linux from auditd: a table of the processes of each host (pid → image,
//! command line, user, parent, last time seen) kept while one audit log is read in order, so
//! every event of a process can say who started it, as Sysmon for Linux does.
//!
//! What the table learns, per event: `execve` gives a process its image, arguments and parent;
//! `clone`/`fork`/`vfork` (when audited) gives the child its parent's image; any other record
//! with a pid (system calls, PAM and login records) names the image of a process not seen yet.
//! A pid seen again with another parent and another image is a new process (pid reuse). The
//! table holds at most [`MAX_PROCESSES`]; past it, the processes seen longest ago are dropped.
//!
//! The reader appends what it found to the event's text as one line the auditd decoder reads
//! (see [`ANNOTATION`]): on process starts `ParentImage`, `ParentCommandLine`, `ParentUser` and
//! `Ancestors` (parent first), as Sysmon gives them; on every event of a process with a known
//! parent `ProcessChain` (`sshd → bash → sh`, oldest first); and `PackageManager` /
//! `ConfigManagement` when a package manager or configuration management tool is the process
//! or one of its ancestors, `AUID` when the login uid's account is known from a login's PAM
//! record. The annotation of a process's event is kept and given again to its next events
//! (same image and parent): most events come from processes already seen.

use rustc_hash::FxHashMap as HashMap;

use crate::linux::{audit_id, audit_node, decoded_pairs};
use crate::syscall;

/// Processes kept per input; the memory bound of the table (about 200 bytes each).
pub const MAX_PROCESSES: usize = 65_536;
/// Ancestors followed at most.
const MAX_DEPTH: usize = 8;
/// Starts the line a reader appends to an auditd event.
pub use crate::linux::LINEAGE_ANNOTATION as ANNOTATION;

/// Executables of package managers (their children write what packages hold).
const PACKAGE_MANAGERS: &[&str] = &[
    "dpkg",
    "apt",
    "apt-get",
    "aptitude",
    "unattended-upgrade",
    "unattended-upgrades",
    "rpm",
    "yum",
    "dnf",
    "microdnf",
    "zypper",
    "apk",
    "pacman",
    "snapd",
    "packagekitd",
];

/// Words of the executables or command lines of configuration management agents.
const CONFIG_MANAGEMENT: &[(&str, &str)] = &[
    ("ansible", "ansible"),
    ("AnsiballZ_", "ansible"),
    ("puppet", "puppet"),
    ("chef-client", "chef"),
    ("chef-solo", "chef"),
    ("salt-minion", "salt"),
    ("salt-call", "salt"),
    ("cf-agent", "cfengine"),
];

#[derive(Clone, Default)]
struct Process {
    exe: Box<str>,
    cmd: Box<str>,
    user: Box<str>,
    ppid: Option<u32>,
    seen: i64,
    /// The package manager, and the configuration management tool, that is this process or
    /// one of its ancestors (worked out when it is learnt).
    package: Option<&'static str>,
    config: Option<&'static str>,
    /// The annotation its events got last, and the login uid it was made for: the next event
    /// of the same process (same image and parent) gets it again without the walk.
    note: Option<(Option<u32>, Box<str>)>,
}

/// The package manager a process is, by its image or its command line's program.
fn package_of(exe: &str, cmd: &str) -> Option<&'static str> {
    let image = base(exe);
    let argv0 = base(cmd.split(' ').next().unwrap_or(""));
    PACKAGE_MANAGERS
        .iter()
        .find(|m| image == **m || argv0 == **m)
        .copied()
}

/// The configuration management tool a process belongs to, by its image or command line.
fn config_of(exe: &str, cmd: &str) -> Option<&'static str> {
    let image = base(exe);
    CONFIG_MANAGEMENT
        .iter()
        .find(|(w, _)| image.contains(w) || cmd.contains(w))
        .map(|(_, name)| *name)
}

/// What one auditd event says about its process.
#[derive(Default)]
struct Seen<'a> {
    node: &'a str,
    time: i64,
    pid: Option<u32>,
    ppid: Option<u32>,
    exe: Option<String>,
    argv: Vec<(usize, String)>,
    /// PROCTITLE as written (hex or quoted), decoded only when needed.
    proctitle: Option<&'a str>,
    uid: Option<String>,
    user: Option<String>,
    syscall: Option<&'a str>,
    exit: Option<i64>,
    success: bool,
    auid: Option<u32>,
    /// Whether auditd wrote the login user in words (`AUID=`, enriched format).
    has_auid_name: bool,
    /// The account a login session was opened for (sshd's or login's PAM session record).
    login: Option<String>,
}

/// The process tables of the hosts of one input.
#[derive(Default)]
pub struct Lineage {
    hosts: HashMap<Box<str>, HashMap<u32, Process>>,
    /// Login uid → account, per host, from the PAM records of logins.
    logins: HashMap<Box<str>, HashMap<u32, Box<str>>>,
    count: usize,
}

/// Programs whose PAM session records name the account that logged in (not a target
/// account, as sudo's and su's do).
const LOGIN_PROGRAMS: &[&str] = &["sshd", "login", "gdm-session-worker", "lightdm", "dropbear"];

fn base(path: &str) -> &str {
    match memchr::memrchr(b'/', path.as_bytes()) {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// A value as the annotation carries it: the separators and `%` escaped.
fn escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            '\n' => out.push_str("%0A"),
            '\x1e' => out.push_str("%1E"),
            '\x1f' => out.push_str("%1F"),
            c => out.push(c),
        }
    }
}

/// The value of `key=` in a record body (quoted, or bare up to a space; `None` when absent);
/// a key is matched whole (`uid` is not found in `auid=`).
fn field<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    let b = body.as_bytes();
    let mut from = 0;
    while let Some(i) = body[from..].find(key) {
        let at = from + i;
        let end = at + key.len();
        let whole = (at == 0 || matches!(b[at - 1], b' ' | b'\x1d')) && b.get(end) == Some(&b'=');
        if whole {
            let v = &body[end + 1..];
            return Some(match v.strip_prefix('"') {
                Some(q) => &q[..q.find('"').unwrap_or(q.len())],
                None => &v[..v.find([' ', '\x1d']).unwrap_or(v.len())],
            });
        }
        from = end;
    }
    None
}

fn parse(event: &str) -> Seen<'_> {
    let mut s = Seen::default();
    let mut arch = None;
    let mut nr = None;
    for line in event.lines() {
        let (node, record) = audit_node(line);
        let Some(rtype) = record
            .strip_prefix("type=")
            .and_then(|t| t.split(' ').next())
        else {
            continue;
        };
        let wanted = matches!(rtype, "SYSCALL" | "EXECVE" | "PROCTITLE")
            || rtype.starts_with("USER_")
            || rtype.starts_with("CRED_")
            || rtype == "LOGIN";
        if !wanted {
            continue;
        }
        if let Some(n) = node {
            s.node = n;
        }
        // The end of `msg=audit(…)`: the first `)` followed by `:`.
        let rb = record.as_bytes();
        let Some(i) = memchr::memchr_iter(b')', rb).find(|&j| rb.get(j + 1) == Some(&b':')) else {
            continue;
        };
        if s.time == 0
            && let Some(t) = audit_id(&record[..i + 1])
                .and_then(|id| id.split(['.', ':']).next())
                .and_then(|t| t.parse().ok())
        {
            s.time = t;
        }
        let body = &record[i + 2..];
        match rtype {
            // The busiest record: its fields picked out, not all parsed.
            "SYSCALL" => {
                // auditd hex-encodes strings that hold spaces, so a SYSCALL record splits on
                // white space (and the GS before its enriched part).
                // auditd hex-encodes strings that hold spaces, so a SYSCALL record splits on
                // white space (and the GS before its enriched part); one pass over the bytes.
                let b = body.as_bytes();
                let mut at = 0;
                while at < b.len() {
                    let start = at;
                    while at < b.len() && !matches!(b[at], b'=' | b' ' | 0x1d) {
                        at += 1;
                    }
                    if at >= b.len() || b[at] != b'=' {
                        at += 1;
                        continue;
                    }
                    let key = &b[start..at];
                    at += 1;
                    let vs = at;
                    while at < b.len() && !matches!(b[at], b' ' | 0x1d) {
                        at += 1;
                    }
                    let v = &body[vs..at];
                    at += 1;
                    match key {
                        b"pid" => s.pid = s.pid.or(v.parse().ok()),
                        b"ppid" => s.ppid = v.parse().ok(),
                        b"exe" => {
                            s.exe = match v.strip_prefix('"') {
                                Some(q) => Some(q.trim_end_matches('"').to_owned()),
                                None => crate::linux::unhex(v),
                            }
                            .filter(|e| e != "?" && e != "(null)")
                        }
                        b"uid" => s.uid = Some(v.to_owned()),
                        b"UID" => s.user = Some(v.trim_matches('"').to_owned()),
                        b"auid" => s.auid = v.parse().ok().filter(|&a| a != u32::MAX),
                        b"AUID" => s.has_auid_name = true,
                        b"arch" => arch = syscall::arch_name(v),
                        b"syscall" => match v.parse::<u32>() {
                            Ok(n) => nr = Some(n),
                            Err(_) => s.syscall = Some(v),
                        },
                        b"SYSCALL" => s.syscall = Some(v),
                        b"success" => s.success = v == "yes",
                        b"exit" => s.exit = v.parse().ok(),
                        _ => {}
                    }
                }
            }
            "PROCTITLE" => s.proctitle = field(body, "proctitle"),
            _ => {
                for (k, v) in decoded_pairs(rtype, body) {
                    match (rtype, k) {
                        ("EXECVE", _) if k.len() > 1 && k.starts_with('a') => {
                            if let Ok(n) = k[1..].parse() {
                                s.argv.push((n, v.into_owned()));
                            }
                        }
                        ("EXECVE", _) => {}
                        (_, "pid") => s.pid = s.pid.or(v.parse().ok()),
                        (_, "exe") if v != "?" => s.exe = Some(v.into_owned()),
                        (_, "uid") => s.uid = Some(v.into_owned()),
                        (_, "UID") => s.user = Some(v.into_owned()),
                        (_, "AUID") => s.has_auid_name = true,
                        (_, "auid") => s.auid = v.parse().ok().filter(|&a| a != u32::MAX),
                        ("USER_START", "acct") if v != "?" => s.login = Some(v.into_owned()),
                        _ => {}
                    }
                }
            }
        }
    }
    // Only a login program's session opening names the login account.
    if !s
        .exe
        .as_deref()
        .is_some_and(|e| LOGIN_PROGRAMS.contains(&base(e)))
    {
        s.login = None;
    }
    if s.syscall.is_none()
        && let (Some(a), Some(n)) = (arch, nr)
    {
        s.syscall = syscall::syscall_name(a, n);
    }
    s
}

impl Seen<'_> {
    /// Whether this event comes from process `p` as the table knows it (same image and
    /// parent, its command line known): nothing to learn, and its annotation still holds.
    fn is(&self, p: &Process) -> bool {
        *p.exe == *self.exe.as_deref().unwrap_or("")
            && (self.ppid.is_none() || p.ppid == self.ppid)
            && !p.cmd.is_empty()
    }

    /// The command line PROCTITLE gives (arguments joined by spaces).
    fn command_line(&self) -> Option<String> {
        let v = self.proctitle?;
        Some(crate::linux::unhex(v).unwrap_or_else(|| v.to_owned()))
    }
}

fn user_of(s: &Seen<'_>) -> Box<str> {
    match (&s.user, &s.uid) {
        (Some(u), _) => u.as_str().into(),
        (None, Some(u)) if u == "0" => "root".into(),
        (None, Some(u)) => u.as_str().into(),
        (None, None) => "".into(),
    }
}

impl Lineage {
    /// Reads one auditd event (its record lines joined with `\n`) and returns the annotation
    /// line to append to it, if its process has a known parent or managing ancestor; then
    /// learns from the event.
    pub fn observe(&mut self, event: &[u8]) -> Option<String> {
        let text = std::str::from_utf8(event).ok()?;
        let s = parse(text);
        let pid = s.pid?;
        if let (Some(auid), Some(account)) = (s.auid, &s.login) {
            self.logins
                .entry(s.node.into())
                .or_default()
                .insert(auid, account.as_str().into());
        }
        let same = |p: &Process| s.is(p);
        let exec = s.success && s.syscall.is_some_and(syscall::is_exec);
        let cached = self
            .hosts
            .get(s.node)
            .and_then(|t| t.get(&pid))
            .filter(|p| !exec && same(p))
            .and_then(|p| p.note.as_ref())
            .filter(|(auid, _)| *auid == s.auid)
            .map(|(_, n)| n.to_string());
        let note = match cached {
            Some(n) => Some(n),
            None => self.annotate(&s),
        };
        self.learn(&s, pid);
        if let (Some(n), false) = (&note, exec)
            && let Some(p) = self.hosts.get_mut(s.node).and_then(|t| t.get_mut(&pid))
            && same(p)
            && p.note.is_none()
        {
            p.note = Some((s.auid, n.as_str().into()));
        }
        note
    }

    fn annotate(&self, s: &Seen<'_>) -> Option<String> {
        // The login account of the session, where auditd did not write it in words.
        let login = s
            .auid
            .filter(|_| !s.has_auid_name)
            .and_then(|a| self.logins.get(s.node)?.get(&a));
        let table = self.hosts.get(s.node);
        let ppid = s.ppid;
        let mut chain: Vec<&Process> = Vec::new();
        let mut next = ppid.filter(|_| table.is_some());
        let mut visited = vec![s.pid.unwrap_or(0)];
        while let Some(p) = next {
            if chain.len() >= MAX_DEPTH || visited.contains(&p) {
                break;
            }
            visited.push(p);
            let Some(proc_) = table.and_then(|t| t.get(&p)) else {
                break;
            };
            chain.push(proc_);
            next = proc_.ppid.filter(|&pp| pp != 0);
        }
        let own_exe = s.exe.as_deref().unwrap_or("");
        // The process's own command line: its PROCTITLE, or what its execve said.
        let known = s
            .pid
            .and_then(|p| table?.get(&p))
            .filter(|p| &*p.exe == own_exe);
        // The process's own command line: as known, or (for a process starting now) as
        // written; a process seen for the first time mid-life is judged by its image and
        // parent only (decoding every PROCTITLE costs more than it tells).
        let decoded: String;
        let own_cmd = match known {
            Some(p) if !p.cmd.is_empty() => &*p.cmd,
            _ if s.syscall.is_some_and(syscall::is_exec) => {
                decoded = s.command_line().unwrap_or_default();
                decoded.as_str()
            }
            _ => "",
        };
        let parent = chain.first();
        // A known process carries what it and its ancestors are; others are looked at.
        let (package, config) = match known {
            Some(p) if !p.cmd.is_empty() => (p.package, p.config),
            _ => (
                package_of(own_exe, own_cmd).or(parent.and_then(|p| p.package)),
                config_of(own_exe, own_cmd).or(parent.and_then(|p| p.config)),
            ),
        };

        if chain.is_empty() && package.is_none() && config.is_none() && login.is_none() {
            return None;
        }
        let mut out = String::from(ANNOTATION);
        let mut put = |k: &str, v: &str| {
            if !v.is_empty() {
                out.push('\x1f');
                out.push_str(k);
                out.push('\x1f');
                escape(v, &mut out);
            }
        };
        if let Some(parent) = chain.first() {
            // The parent's details on process starts, as Sysmon gives them; every event of a
            // process gets its chain.
            if s.syscall.is_some_and(syscall::is_exec) {
                put("ParentImage", &parent.exe);
                put("ParentCommandLine", &parent.cmd);
                put("ParentUser", &parent.user);
                let ancestors: Vec<&str> = chain.iter().map(|p| &*p.exe).collect();
                put("Ancestors", &ancestors.join("\n"));
            }
            let mut names: Vec<&str> = chain
                .iter()
                .rev()
                .map(|p| if p.exe.is_empty() { "?" } else { base(&p.exe) })
                .collect();
            names.push(if own_exe.is_empty() {
                "?"
            } else {
                base(own_exe)
            });
            put("ProcessChain", &names.join(" \u{2192} "));
        }
        put("AUID", login.map_or("", |l| l));
        put("PackageManager", package.unwrap_or(""));
        put("ConfigManagement", config.unwrap_or(""));
        Some(out)
    }

    fn learn(&mut self, s: &Seen<'_>, pid: u32) {
        let table = match self.hosts.get_mut(s.node) {
            Some(t) => t,
            None => self.hosts.entry(s.node.into()).or_default(),
        };
        let image = s.exe.as_deref().unwrap_or("");
        let exec = s.success && s.syscall.is_some_and(syscall::is_exec);
        let before = table.len();
        if exec {
            let (exe, user): (Box<str>, _) = (image.into(), user_of(s));
            let mut argv = s.argv.clone();
            argv.sort_by_key(|(i, _)| *i);
            let cmd: Vec<&str> = argv.iter().map(|(_, a)| a.as_str()).collect();
            let cmd = if cmd.is_empty() {
                s.command_line().unwrap_or_default()
            } else {
                cmd.join(" ")
            };
            let ppid = s.ppid.or_else(|| table.get(&pid).and_then(|p| p.ppid));
            let parent = ppid.and_then(|p| table.get(&p));
            let package = package_of(&exe, &cmd).or(parent.and_then(|p| p.package));
            let config = config_of(&exe, &cmd).or(parent.and_then(|p| p.config));
            table.insert(
                pid,
                Process {
                    exe,
                    cmd: cmd.into(),
                    user,
                    ppid,
                    seen: s.time,
                    package,
                    config,
                    note: None,
                },
            );
        } else if let Some(p) = table.get_mut(&pid).filter(|p| s.is(p)) {
            // The process as known: only its last time changes (most events).
            p.seen = p.seen.max(s.time);
        } else {
            let (exe, user): (Box<str>, _) = (image.into(), user_of(s));
            let title = s.command_line().unwrap_or_default();
            let cmd = title.as_str();
            let parent = s.ppid.and_then(|p| table.get(&p));
            let fresh = Process {
                exe: exe.clone(),
                cmd: cmd.into(),
                user: user.clone(),
                ppid: s.ppid,
                seen: s.time,
                package: package_of(&exe, cmd).or(parent.and_then(|p| p.package)),
                config: config_of(&exe, cmd).or(parent.and_then(|p| p.config)),
                note: None,
            };
            match table.get_mut(&pid) {
                // Another parent and another image: the pid was reused.
                Some(p)
                    if p.ppid.is_some()
                        && s.ppid.is_some()
                        && p.ppid != s.ppid
                        && !exe.is_empty()
                        && p.exe != exe =>
                {
                    *p = fresh
                }
                Some(p) => {
                    if p.exe.is_empty() {
                        p.exe = exe;
                    }
                    if p.cmd.is_empty() {
                        p.cmd = fresh.cmd;
                        p.package = p.package.or(fresh.package);
                        p.config = p.config.or(fresh.config);
                    }
                    if p.user.is_empty() {
                        p.user = user;
                    }
                    // A parent that ended hands its children to init or a subreaper.
                    if s.ppid.is_some() && p.ppid != s.ppid {
                        p.ppid = s.ppid;
                        p.note = None;
                    }
                    p.seen = p.seen.max(s.time);
                }
                None => {
                    table.insert(pid, fresh);
                }
            }
        }
        if s.success
            && s.syscall.is_some_and(syscall::is_fork)
            && let Some(child) = s.exit.filter(|&c| c > 0 && c <= u32::MAX as i64)
            && let Some(parent) = table.get(&pid).cloned()
        {
            table.insert(
                child as u32,
                Process {
                    ppid: Some(pid),
                    note: None,
                    ..parent
                },
            );
        }
        self.count += table.len() - before;
        if self.count > MAX_PROCESSES {
            self.forget_oldest();
        }
    }

    /// Drops the quarter of the processes seen longest ago.
    fn forget_oldest(&mut self) {
        let mut times: Vec<i64> = self
            .hosts
            .values()
            .flat_map(|t| t.values().map(|p| p.seen))
            .collect();
        let cut = times.len() / 4;
        let (_, &mut limit, _) = times.select_nth_unstable(cut);
        let mut count = 0;
        for t in self.hosts.values_mut() {
            t.retain(|_, p| p.seen > limit);
            count += t.len();
        }
        self.count = count;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An execve event's records (no end mark): `pid`, child of `ppid`, runs `exe`.
    pub(crate) fn exec(serial: u32, pid: u32, ppid: u32, exe: &str, args: &[&str]) -> String {
        let argv: Vec<String> = args
            .iter()
            .enumerate()
            .map(|(i, a)| format!("a{i}=\"{a}\""))
            .collect();
        format!(
            "type=SYSCALL msg=audit(1700000000.{serial:03}:{serial}): arch=c000003e syscall=59 success=yes exit=0 ppid={ppid} pid={pid} auid=1000 uid=0 exe=\"{exe}\"\ntype=EXECVE msg=audit(1700000000.{serial:03}:{serial}): argc={} {}",
            args.len(),
            argv.join(" ")
        )
    }

    fn fields(note: &str) -> Vec<(String, String)> {
        crate::linux::lineage_fields(note)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
    }

    fn get<'a>(f: &'a [(String, String)], k: &str) -> Option<&'a str> {
        f.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn chain_of_an_ssh_session() {
        let mut l = Lineage::default();
        // sshd's session process is known from a PAM record (no parent given).
        let pam = "type=USER_START msg=audit(1700000000.000:1): pid=900 uid=0 auid=1000 ses=3 msg='op=PAM:session_open acct=\"op\" exe=\"/usr/sbin/sshd\" hostname=10.0.0.9 addr=10.0.0.9 terminal=ssh res=success'";
        l.observe(pam.as_bytes());
        let bash = exec(2, 1000, 900, "/usr/bin/bash", &["-bash"]);
        let note = l.observe(bash.as_bytes()).unwrap();
        let f = fields(&note);
        assert_eq!(get(&f, "ParentImage"), Some("/usr/sbin/sshd"));
        // The session's login uid named from sshd's PAM record.
        assert_eq!(get(&f, "AUID"), Some("op"));
        let sh = exec(3, 1001, 1000, "/usr/bin/dash", &["sh", "-c", "id"]);
        let f = fields(&l.observe(sh.as_bytes()).unwrap());
        assert_eq!(get(&f, "ParentImage"), Some("/usr/bin/bash"));
        assert_eq!(get(&f, "ParentCommandLine"), Some("-bash"));
        assert_eq!(get(&f, "ParentUser"), Some("root"));
        assert_eq!(get(&f, "Ancestors"), Some("/usr/bin/bash\n/usr/sbin/sshd"));
        assert_eq!(
            get(&f, "ProcessChain"),
            Some("sshd \u{2192} bash \u{2192} dash")
        );
        assert_eq!(get(&f, "PackageManager"), None);
    }

    #[test]
    fn only_login_programs_name_the_login_account() {
        let mut l = Lineage::default();
        let sudo = "type=USER_START msg=audit(1700000000.000:1): pid=950 uid=0 auid=1000 ses=3 msg='op=PAM:session_open acct=\"root\" exe=\"/usr/bin/sudo\" res=success'";
        l.observe(sudo.as_bytes());
        let id = exec(2, 951, 950, "/usr/bin/id", &["id"]);
        let f = fields(&l.observe(id.as_bytes()).unwrap());
        assert_eq!(get(&f, "AUID"), None);
        assert_eq!(get(&f, "ParentImage"), Some("/usr/bin/sudo"));
    }

    #[test]
    fn package_manager_among_ancestors() {
        let mut l = Lineage::default();
        l.observe(exec(1, 500, 1, "/usr/bin/apt-get", &["apt-get", "upgrade"]).as_bytes());
        l.observe(exec(2, 501, 500, "/usr/bin/dpkg", &["/usr/bin/dpkg", "--unpack"]).as_bytes());
        let write = "type=SYSCALL msg=audit(1700000001.000:3): arch=c000003e syscall=257 success=yes exit=3 a0=ffffff9c a1=1 a2=241 a3=1a4 ppid=501 pid=502 uid=0 exe=\"/usr/bin/cp\"";
        let f = fields(&l.observe(write.as_bytes()).unwrap());
        assert_eq!(get(&f, "PackageManager"), Some("dpkg"));
        assert_eq!(
            get(&f, "ProcessChain"),
            Some("apt-get \u{2192} dpkg \u{2192} cp")
        );
    }

    #[test]
    fn pid_reuse_and_fork() {
        let mut l = Lineage::default();
        l.observe(exec(1, 700, 1, "/usr/sbin/cron", &["/usr/sbin/cron"]).as_bytes());
        // cron forks 701 (audited clone): the child is cron until it executes something.
        let fork = "type=SYSCALL msg=audit(1700000001.000:2): arch=c000003e syscall=56 success=yes exit=701 ppid=1 pid=700 uid=0 exe=\"/usr/sbin/cron\"";
        l.observe(fork.as_bytes());
        let sh = exec(3, 702, 701, "/usr/bin/dash", &["/bin/sh", "-c", "backup"]);
        let f = fields(&l.observe(sh.as_bytes()).unwrap());
        assert_eq!(
            get(&f, "ProcessChain"),
            Some("cron \u{2192} cron \u{2192} dash")
        );
        // pid 700 comes back with another parent and image: a new process.
        let other = "type=SYSCALL msg=audit(1700000100.000:4): arch=c000003e syscall=2 success=yes exit=3 a0=1 a1=0 ppid=650 pid=700 uid=33 exe=\"/usr/sbin/nginx\"";
        l.observe(other.as_bytes());
        let child = exec(5, 703, 700, "/usr/bin/dash", &["sh"]);
        let f = fields(&l.observe(child.as_bytes()).unwrap());
        assert_eq!(get(&f, "ParentImage"), Some("/usr/sbin/nginx"));
        assert_eq!(get(&f, "ParentUser"), Some("33"));
    }

    #[test]
    fn table_stays_bounded() {
        let mut l = Lineage::default();
        for pid in 0..(MAX_PROCESSES as u32 + 10) {
            let e = format!(
                "type=SYSCALL msg=audit({}.000:{pid}): arch=c000003e syscall=2 success=yes exit=3 ppid=1 pid={} uid=0 exe=\"/bin/x\"",
                1_700_000_000 + pid as i64,
                pid + 2
            );
            l.observe(e.as_bytes());
        }
        assert!(l.count <= MAX_PROCESSES);
        assert_eq!(l.count, l.hosts.values().map(|t| t.len()).sum::<usize>());
    }
}
