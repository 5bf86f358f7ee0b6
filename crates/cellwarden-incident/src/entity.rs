//! Entities: one name per host and per account, whatever each source calls them.
//!
//! A host is written `web-portal-01.corp.example` by Windows, `web-portal-01` by syslog and an
//! asset file, and `10.10.0.8` by flows and logon records. The [`Resolver`] maps every alias to
//! one canonical name: the asset file's name when it has one, else the short (first-label) name.
//! Addresses are resolved through the asset file and through what the logs themselves show
//! (Windows logon records naming a workstation and its address, DNS answers for internal
//! names), each observation kept with the time it was made, because addresses move.
//!
//! Accounts: `DOMAIN\user`, `user@domain` and `user` are one account; SIDs resolve to the name
//! a logon record gave them; configured aliases (a database account used by a directory
//! account) join too. Built-in and machine accounts are never entities.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use cellwarden_event::{Alert, Event, Level};

/// Fields read for accounts.
pub const ACCOUNT_FIELDS: [&str; 9] = [
    "TargetUserName",
    "SubjectUserName",
    "User",
    "user",
    "AccountName",
    "acct",
    "UID",
    "target_user",
    "UserName",
];
/// Fields naming where a connection or logon came from.
pub const SOURCE_FIELDS: [&str; 7] = [
    "IpAddress",
    "SourceIp",
    "SourceAddress",
    "src_ip",
    "addr",
    "ClientAddress",
    "WorkstationName",
];
/// Fields naming where a connection went.
pub const DESTINATION_FIELDS: [&str; 4] = [
    "DestinationIp",
    "DestinationHostname",
    "RemoteAddress",
    "dst_ip",
];

/// Asset roles whose hosts everyone touches: they never join activity by themselves.
pub const HUB_ROLES: [&str; 10] = [
    "dc",
    "domain-controller",
    "dns",
    "monitoring",
    "backup",
    "ntp",
    "proxy",
    "siem",
    "patch",
    "mail",
];

/// Accounts every host has: named in outputs, never joining activity by themselves.
pub const BUILTIN_ACCOUNTS: [&str; 2] = ["root", "administrator"];

/// A named host of the asset file.
#[derive(Debug, Clone)]
pub struct KnownHost {
    /// Its name.
    pub name: String,
    /// Its addresses.
    pub addresses: Vec<IpAddr>,
    /// Its role, if given.
    pub role: Option<String>,
    /// Other names (FQDN, NetBIOS name).
    pub aliases: Vec<String>,
}

/// Where an address leads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Place {
    /// An internal host (canonical name, or the address when nothing names it).
    Host(String),
    /// An address outside the operator's networks.
    Outside(String),
    /// A database server the logs do not name, by its log file (`postgresql-billing`).
    Database(String),
}

/// What the logs say about names, gathered while events stream by: which host an internal
/// address was and when (Windows logon records naming the workstation and its address, DNS
/// answers for names with private addresses), which account a SID is. Merging is commutative,
/// so workers gather apart. Grows with the operator's hosts and accounts, not with events.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Aliases {
    /// Address → host as written → (first, last) time seen, seconds.
    pub seen_at: BTreeMap<IpAddr, BTreeMap<String, (i64, i64)>>,
    /// Lower-case SID → account.
    pub sids: BTreeMap<String, String>,
    /// Host as written (lower case) → its latest network and remote logons (see [`Logon`]), at
    /// most [`LOGONS_PER_HOST`]: the latest by time, whatever order events arrive in.
    pub logons: BTreeMap<String, BTreeSet<Logon>>,
}

/// How long before an event a network logon is taken as its session.
pub const LOGON_LEAD_SECS: i64 = 300;

/// Network and remote-interactive logons kept per host for [`Resolver::logon_before`].
pub const LOGONS_PER_HOST: usize = 4096;

/// A network or remote logon on a host (Windows 4624 type 3 or 10).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Logon {
    /// Time, seconds.
    pub time: i64,
    /// Account (normalised).
    pub account: String,
    /// The client's address, when the record gives one.
    pub address: Option<String>,
    /// The client's workstation name, when the record gives one.
    pub workstation: Option<String>,
}

fn private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_private() || (a.octets()[0] == 100 && a.octets()[1] & 0xc0 == 64),
        IpAddr::V6(a) => a.segments()[0] & 0xfe00 == 0xfc00,
    }
}

impl Aliases {
    fn saw(&mut self, ip: IpAddr, host: &str, t: i64) {
        let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
        if !private(ip) || host.is_empty() || host == "-" {
            return;
        }
        let e = self
            .seen_at
            .entry(ip)
            .or_default()
            .entry(host)
            .or_insert((t, t));
        e.0 = e.0.min(t);
        e.1 = e.1.max(t);
    }

    /// Learns what one event says about names. Only logon records and DNS logs are read.
    pub fn observe(&mut self, ev: &Event<'_>) {
        if ev.logsource.as_ref().is_some_and(|l| {
            !l.has_service("security")
                && !l.has_service("dns")
                && !l.has_service("syslog")
                && !l.categories.iter().any(|c| &**c == "dns")
        }) {
            return;
        }
        let Some(t) = ev.timestamp.map(|t| t.as_second()) else {
            return;
        };
        if let Some(program) = ev.get_str("program") {
            // Syslog: only DHCP servers' lines say anything about names.
            if matches!(program.as_ref(), "dhcpd" | "dnsmasq-dhcp" | "dnsmasq")
                && let Some((ip, name)) = ev
                    .get_str("message")
                    .and_then(|m| dhcp_lease(&program, &m).map(|(a, b)| (a, b.to_owned())))
            {
                self.saw(ip, &name, t);
            }
            return;
        }
        if let (Some(ws), Some(ip)) = (ev.get_str("WorkstationName"), ev.get_str("IpAddress"))
            && let Some(ip) = parse_ip(&ip)
        {
            self.saw(ip, &ws, t);
        }
        if ev.get_str("EventID").as_deref() == Some("4624")
            && let Some(host) = ev.host.as_deref()
            && matches!(ev.get_str("LogonType").as_deref(), Some("3" | "10"))
            && let Some(account) = ev
                .get_str("TargetUserName")
                .and_then(|a| normalise_account(&a))
        {
            let address = ev
                .get_str("IpAddress")
                .filter(|s| parse_ip(s).is_some_and(|ip| !ip.is_loopback()))
                .map(|s| s.into_owned());
            let workstation = ev
                .get_str("WorkstationName")
                .filter(|s| !matches!(s.as_ref(), "" | "-"))
                .map(|s| s.into_owned());
            if address.is_some() || workstation.is_some() {
                let set = self.logons.entry(host.to_ascii_lowercase()).or_default();
                set.insert(Logon {
                    time: t,
                    account,
                    address,
                    workstation,
                });
                if set.len() > LOGONS_PER_HOST {
                    set.pop_first();
                }
            }
        }
        if let (Some(sid), Some(name)) = (ev.get_str("TargetUserSid"), ev.get_str("TargetUserName"))
            && sid.starts_with("S-1-5-21-")
            && let Some(a) = normalise_account(&name)
        {
            let e = self
                .sids
                .entry(sid.to_ascii_lowercase())
                .or_insert_with(|| a.clone());
            if a < *e {
                *e = a;
            }
        }
        if let (Some(q), Some(answers)) = (ev.get_str("query"), ev.get("answers")) {
            let mut put = |s: &str| {
                if let Some(ip) = parse_ip(s) {
                    self.saw(ip, &q, t);
                }
            };
            match answers {
                cellwarden_event::Value::List(items) => {
                    for i in items {
                        if let Some(s) = i.as_text() {
                            put(&s);
                        }
                    }
                }
                v => {
                    if let Some(s) = v.as_text() {
                        s.split(',').for_each(&mut put);
                    }
                }
            }
        }
    }

    /// Takes in another worker's observations.
    pub fn merge(&mut self, o: Aliases) {
        for (ip, hosts) in o.seen_at {
            for (h, (a, b)) in hosts {
                let e = self
                    .seen_at
                    .entry(ip)
                    .or_default()
                    .entry(h)
                    .or_insert((a, b));
                e.0 = e.0.min(a);
                e.1 = e.1.max(b);
            }
        }
        for (host, set) in o.logons {
            let mine = self.logons.entry(host).or_default();
            mine.extend(set);
            while mine.len() > LOGONS_PER_HOST {
                mine.pop_first();
            }
        }
        for (sid, name) in o.sids {
            let e = self.sids.entry(sid).or_insert_with(|| name.clone());
            if name < *e {
                *e = name;
            }
        }
    }
}

/// Alias → canonical name, for hosts and accounts.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    /// Lower-case alias (FQDN, short name) → canonical host name.
    names: HashMap<String, String>,
    /// Canonical host name → role.
    roles: HashMap<String, String>,
    /// Address → (first seen, last seen, canonical host) observations, by first seen.
    seen_at: HashMap<IpAddr, Vec<(i64, i64, String)>>,
    /// Address → asset-file host.
    assets: HashMap<IpAddr, String>,
    /// Internal networks: (network address, prefix length).
    internal: Vec<(IpAddr, u8)>,
    /// Lower-case account alias (SID, configured alias) → canonical account.
    accounts: HashMap<String, String>,
    /// Canonical host → its network logons by time.
    logons: HashMap<String, Vec<Logon>>,
}

fn short(name: &str) -> String {
    let l = name.trim().trim_end_matches('.').to_ascii_lowercase();
    if l.parse::<IpAddr>().is_ok() {
        return l;
    }
    l.split('.').next().unwrap_or(&l).to_owned()
}

fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len.min(32)))
            };
            u32::from(a) & m == u32::from(n) & m
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len.min(128)))
            };
            u128::from(a) & m == u128::from(n) & m
        }
        _ => false,
    }
}

/// An address leased to a named client, from a DHCP server's syslog line: ISC dhcpd
/// (`DHCPACK on 10.1.0.26 to 00:11:22:33:44:55 (ws-care07) via eth0`) or dnsmasq
/// (`DHCPACK(eth0) 10.1.0.26 00:11:22:33:44:55 ws-care07`).
pub fn dhcp_lease<'m>(program: &str, message: &'m str) -> Option<(IpAddr, &'m str)> {
    match program {
        "dhcpd" => {
            let rest = message.strip_prefix("DHCPACK on ")?;
            let ip = parse_ip(rest.split_whitespace().next()?)?;
            let name = rest.split_once(" (")?.1.split_once(')')?.0;
            Some((ip, name))
        }
        "dnsmasq-dhcp" | "dnsmasq" => {
            let rest = message.strip_prefix("DHCPACK(")?.split_once(") ")?.1;
            let mut parts = rest.split_whitespace();
            let ip = parse_ip(parts.next()?)?;
            let name = parts.nth(1)?;
            Some((ip, name))
        }
        _ => None,
    }
    .filter(|(_, n)| !n.is_empty() && *n != "*")
}

/// Parses an address as logs write it (`::ffff:` mapped, `[v6]`, `-`).
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s.trim().trim_start_matches('[').trim_end_matches(']');
    let s = s.strip_prefix("::ffff:").unwrap_or(s);
    s.parse().ok()
}

impl Resolver {
    /// A resolver over the asset file's hosts and internal networks (`net/len`).
    pub fn new(hosts: &[KnownHost], internal: &[(IpAddr, u8)]) -> Resolver {
        let mut r = Resolver {
            internal: if internal.is_empty() {
                [
                    "10.0.0.0",
                    "172.16.0.0",
                    "192.168.0.0",
                    "100.64.0.0",
                    "fc00::",
                ]
                .iter()
                .zip([8u8, 12, 16, 10, 7])
                .filter_map(|(n, l)| Some((n.parse().ok()?, l)))
                .collect()
            } else {
                internal.to_vec()
            },
            ..Resolver::default()
        };
        for h in hosts {
            let canon = short(&h.name);
            r.names.insert(h.name.to_ascii_lowercase(), canon.clone());
            r.names.insert(canon.clone(), canon.clone());
            for a in &h.aliases {
                r.names.insert(a.to_ascii_lowercase(), canon.clone());
                r.names.insert(short(a), canon.clone());
            }
            if let Some(role) = &h.role {
                r.roles.insert(canon.clone(), role.to_ascii_lowercase());
            }
            for a in &h.addresses {
                r.assets.insert(*a, canon.clone());
            }
        }
        r
    }

    /// Adds a configured account alias (`alias` is the same person or service as `account`).
    pub fn account_alias(&mut self, alias: &str, account: &str) {
        if let Some(a) = normalise_account(account) {
            self.accounts.insert(alias.to_ascii_lowercase(), a);
        }
    }

    /// Takes in what the logs showed (see [`Aliases`]).
    pub fn learn(&mut self, aliases: &Aliases) {
        for (ip, hosts) in &aliases.seen_at {
            let mut v: Vec<(i64, i64, String)> = hosts
                .iter()
                .map(|(h, (a, b))| (*a, *b, self.host(h)))
                .collect();
            v.sort();
            self.seen_at.insert(*ip, v);
        }
        for (host, set) in &aliases.logons {
            let v = self.logons.entry(self.host(host)).or_default();
            v.extend(set.iter().cloned());
            v.sort();
        }
        for (sid, name) in &aliases.sids {
            self.accounts
                .entry(sid.clone())
                .or_insert_with(|| name.clone());
        }
    }

    /// The latest network logon on `host` in the [`LOGON_LEAD_SECS`] before `t` (or a few
    /// seconds after: clocks and log order differ), by `account` when one is given: who and
    /// from where an event that names no session came (a service installed over PsExec, a
    /// process started over WMI).
    pub fn logon_before(&self, host: &str, t: i64, account: Option<&str>) -> Option<&Logon> {
        let v = self.logons.get(host)?;
        let end = v.partition_point(|l| l.time <= t + 5);
        v[..end]
            .iter()
            .rev()
            .take_while(|l| l.time >= t - LOGON_LEAD_SECS)
            .find(|l| account.is_none_or(|a| l.account == a))
    }

    /// Whether the address is in the operator's networks.
    pub fn is_internal(&self, ip: IpAddr) -> bool {
        self.internal.iter().any(|(n, l)| in_net(ip, *n, *l))
    }

    /// The canonical name of a host however it is written (a name or an address).
    pub fn host(&self, name: &str) -> String {
        if let Some(ip) = parse_ip(name) {
            return match self.address(ip, None) {
                Place::Host(h) | Place::Outside(h) | Place::Database(h) => h,
            };
        }
        let l = name.trim().trim_end_matches('.').to_ascii_lowercase();
        if let Some(c) = self.names.get(&l) {
            return c.clone();
        }
        let s = short(&l);
        self.names.get(&s).cloned().unwrap_or(s)
    }

    /// Where an address leads at time `t`: the host the logs showed at it nearest that time,
    /// else the asset file's host, else the address itself (internal or outside).
    pub fn address(&self, ip: IpAddr, t: Option<i64>) -> Place {
        if let Some(obs) = self.seen_at.get(&ip).filter(|_| self.is_internal(ip)) {
            let best = match t {
                Some(t) => obs.iter().min_by_key(|(a, b, _)| {
                    if (*a..=*b).contains(&t) {
                        0
                    } else {
                        (a - t).abs().min((b - t).abs())
                    }
                }),
                None => obs.last(),
            };
            if let Some((_, _, h)) = best {
                return Place::Host(h.clone());
            }
        }
        if let Some(h) = self.assets.get(&ip) {
            return Place::Host(h.clone());
        }
        if self.is_internal(ip) || ip.is_loopback() {
            Place::Host(ip.to_string())
        } else {
            Place::Outside(ip.to_string())
        }
    }

    /// The asset role of a canonical host.
    pub fn role(&self, host: &str) -> Option<&str> {
        self.roles.get(host).map(String::as_str)
    }

    /// Whether a canonical host is a hub by its role.
    pub fn hub_role(&self, host: &str) -> bool {
        self.role(host).is_some_and(|r| HUB_ROLES.contains(&r))
    }

    /// The canonical account, or `None` for built-in, machine and empty accounts.
    pub fn account(&self, raw: &str) -> Option<String> {
        let l = raw.trim().to_ascii_lowercase();
        if let Some(a) = self.accounts.get(&l) {
            return Some(a.clone());
        }
        let a = normalise_account(raw)?;
        Some(self.accounts.get(&a).cloned().unwrap_or(a))
    }
}

/// `DOMAIN\user`, `user@domain` → `user`, lower case; `None` for accounts that are no one.
pub fn normalise_account(raw: &str) -> Option<String> {
    let v = raw.trim();
    let v = v.rsplit('\\').next().unwrap_or(v);
    let v = v.split('@').next().unwrap_or(v).to_ascii_lowercase();
    let noise = v.is_empty()
        || v == "-"
        || v.ends_with('$')
        || v.starts_with("s-1-5-")
        || matches!(
            v.as_str(),
            "system"
                | "localsystem"
                | "local service"
                | "network service"
                | "anonymous logon"
                | "0"
                | "unset"
                | "4294967295"
        );
    (!noise).then_some(v)
}

/// Field added to an alert: the account of the network logon it followed.
pub const LOGON_USER: &str = "LogonUser";
/// Field added to an alert: that logon's client address.
pub const LOGON_SOURCE: &str = "LogonSource";
/// Field added to an alert: that logon's client workstation name.
pub const LOGON_WORKSTATION: &str = "LogonWorkstation";

/// Who and from where an alert on an event that names no session came: the network logon just
/// before it on its host (see [`Resolver::logon_before`]; by the alert's account when it names
/// one). Only for alerts of the rules (not the database or flow analytics) without a source
/// address of their own and without the context already.
pub fn logon_context<'r>(a: &Alert, r: &'r Resolver) -> Option<&'r Logon> {
    let ev = &a.event;
    let id = a.rule.id.as_str();
    if id.starts_with("cellwarden.db.")
        || id.starts_with("cellwarden.net.")
        || ev.get(LOGON_USER).is_some()
        || SOURCE_FIELDS.iter().any(|f| ev.get(f).is_some())
    {
        return None;
    }
    let host = r.host(ev.host.as_deref().filter(|h| !h.is_empty())?);
    let t = ev.timestamp?.as_second();
    let by = ACCOUNT_FIELDS
        .iter()
        .find_map(|f| ev.get_str(f).and_then(|x| r.account(&x)));
    r.logon_before(&host, t, by.as_deref())
}

/// Asset roles of the hosts administrators work from (privileged access workstations).
pub const ADMIN_ROLES: [&str; 3] = ["admin", "admin-workstation", "paw"];

/// ATT&CK technique families of remote administration: service execution (PsExec), remote
/// services, WMI, new services.
const REMOTE_ADMIN: [&str; 4] = ["T1569", "T1021", "T1047", "T1543"];

/// What an alert gains from its context: the fields of the logon it followed, and a lower
/// level when that logon came from an administrators' workstation and the rule is about
/// remote administration (the everyday work of admins, not a move of an intruder).
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    /// Fields to add (`LogonUser`, `LogonSource`, `LogonWorkstation`, `Context`).
    pub fields: Vec<(&'static str, String)>,
    /// The alert's level before.
    pub from: Level,
    /// Its level after.
    pub level: Level,
}

impl Context {
    /// Adds the fields to the alert and sets its level.
    pub fn apply(&self, a: &mut Alert) {
        for (k, v) in &self.fields {
            a.event
                .push(*k, cellwarden_event::Value::Str(v.clone().into()));
        }
        a.level = self.level;
    }
}

/// The [`Context`] of one alert, if it has any (see [`logon_context`]).
pub fn alert_context(a: &Alert, r: &Resolver) -> Option<Context> {
    let l = logon_context(a, r)?;
    let mut fields = vec![(LOGON_USER, l.account.clone())];
    fields.extend(l.address.clone().map(|x| (LOGON_SOURCE, x)));
    fields.extend(l.workstation.clone().map(|x| (LOGON_WORKSTATION, x)));
    let source = l
        .workstation
        .as_deref()
        .map(|w| r.host(w))
        .or_else(|| l.address.as_deref().map(|x| r.host(x)));
    let admin = source
        .as_deref()
        .and_then(|h| r.role(h).map(|role| (h, role)));
    let mut level = a.level;
    if let Some((host, role)) = admin.filter(|(_, role)| ADMIN_ROLES.contains(role))
        && a.rule
            .techniques
            .iter()
            .any(|t| REMOTE_ADMIN.iter().any(|f| t.split('.').next() == Some(*f)))
        && a.level < Level::Critical
    {
        level = level.min(Level::Low);
        fields.push((
            "Context",
            format!(
                "remote administration by {} from {host} (asset role {role}): level {} lowered to {}",
                l.account,
                a.level.as_str(),
                level.as_str()
            ),
        ));
    }
    Some(Context {
        fields,
        from: a.level,
        level,
    })
}

/// Applies each alert's [`alert_context`] to it: the logon fields are shown with the alert,
/// kept in the store and read by [`alert_entities`].
pub fn add_logon_context(alerts: &mut [Alert], r: &Resolver) {
    for a in alerts.iter_mut() {
        if let Some(c) = alert_context(a, r) {
            c.apply(a);
        }
    }
}

/// Kinds of moves between places.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MoveKind {
    /// A logon or remote execution from one host on another.
    Logon,
    /// A database session from a client host to a database server.
    DbSession,
    /// A network connection.
    Connection,
    /// Data sent to an outside address.
    Transfer,
}

impl MoveKind {
    /// Name in outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            MoveKind::Logon => "logon",
            MoveKind::DbSession => "db-session",
            MoveKind::Connection => "connection",
            MoveKind::Transfer => "transfer",
        }
    }
}

/// One edge an alert shows: activity from one place on another.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    /// Where it came from.
    pub from: Place,
    /// Where it went.
    pub to: Place,
    /// What it was.
    pub kind: MoveKind,
}

/// The entities of one alert, resolved.
#[derive(Debug, Clone, Default)]
pub struct AlertEntities {
    /// Hosts where it happened (the logging host; a database alert's client hosts too).
    pub hosts: Vec<String>,
    /// Accounts it names.
    pub accounts: Vec<String>,
    /// Accounts of the network logon it followed, when it names none itself: shown, but they
    /// join nothing (an admin account works from many places; the logon's source does join).
    pub logon_accounts: Vec<String>,
    /// Outside addresses it names.
    pub outside: Vec<String>,
    /// Moves it shows.
    pub edges: Vec<Edge>,
    /// The process chain (oldest first), when the event gives one.
    pub process: Option<String>,
    /// Bytes sent outside (flow alerts).
    pub bytes_out: u64,
}

/// A log file's name without folders and extensions: `db/postgresql-billing.log.gz` →
/// `postgresql-billing`.
fn log_stem(path: &str) -> String {
    let b = basename(path);
    b.split('.')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or(b)
        .to_owned()
}

fn basename(p: &str) -> &str {
    p.rsplit(['\\', '/']).next().unwrap_or(p)
}

/// The entities of one alert, by the kind of its source: database analytics name an account
/// and client hosts (and the server when the log's host is known); flow analytics an internal
/// host and an outside peer; Sigma alerts the logging host, the users, the source and
/// destination addresses, and the process chain.
pub fn alert_entities(a: &Alert, r: &Resolver) -> AlertEntities {
    let ev = &a.event;
    let t = ev.timestamp.map(|t| t.as_second());
    let mut out = AlertEntities::default();
    let here = ev
        .host
        .as_deref()
        .filter(|h| !h.is_empty())
        .map(|h| r.host(h));
    if let Some(h) = &here {
        out.hosts.push(h.clone());
    }
    let place = |s: &str| -> Option<Place> {
        if let Some(ip) = parse_ip(s) {
            if ip.is_loopback() || ip.is_unspecified() {
                return None;
            }
            return Some(r.address(ip, t));
        }
        let s = s.trim();
        (!s.is_empty() && s != "-" && !s.eq_ignore_ascii_case("localhost"))
            .then(|| Place::Host(r.host(s)))
    };
    let id = a.rule.id.as_str();
    if id.starts_with("cellwarden.db.") {
        if let Some(acc) = ev.get_str("account").and_then(|x| r.account(&x)) {
            out.accounts.push(acc);
        }
        if let Some(list) = ev.get_str("client_host") {
            for c in list.split(',').filter_map(|c| place(c.trim())) {
                if let Place::Host(h) = &c {
                    out.hosts.push(h.clone());
                }
                let server = match &here {
                    Some(server) => Place::Host(server.clone()),
                    None => Place::Database(log_stem(&ev.origin.file)),
                };
                out.edges.push(Edge {
                    from: c,
                    to: server,
                    kind: MoveKind::DbSession,
                });
            }
        }
    } else if id.starts_with("cellwarden.net.") {
        let src = ev.get_str("src_ip").and_then(|s| place(&s));
        let dst = ev.get_str("dst_ip").and_then(|s| place(&s));
        for p in [&src, &dst].into_iter().flatten() {
            match p {
                Place::Host(h) => out.hosts.push(h.clone()),
                Place::Outside(o) => out.outside.push(o.clone()),
                Place::Database(_) => {}
            }
        }
        if let (Some(from), Some(to)) = (src, dst) {
            let kind = if matches!(to, Place::Outside(_)) {
                MoveKind::Transfer
            } else {
                MoveKind::Connection
            };
            out.edges.push(Edge { from, to, kind });
        }
        out.bytes_out = ev
            .get("bytes_out")
            .and_then(|v| v.as_text())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
    } else {
        let event_id = ev.get_str("EventID");
        let event_id = event_id.as_deref().unwrap_or("");
        // Group membership changes name the group in `TargetUserName` and the account added
        // or removed in `MemberName` (a distinguished name) or `MemberSid`.
        let group_change = matches!(
            event_id,
            "4728" | "4729" | "4732" | "4733" | "4746" | "4747" | "4751" | "4752" | "4756" | "4757"
        );
        for f in ACCOUNT_FIELDS {
            if group_change && f == "TargetUserName" {
                continue;
            }
            if let Some(acc) = ev.get_str(f).and_then(|x| r.account(&x)) {
                out.accounts.push(acc);
            }
        }
        if group_change {
            let member = ev
                .get_str("MemberName")
                .filter(|m| !matches!(m.as_ref(), "" | "-"))
                .map(|m| {
                    let cn = m.strip_prefix("CN=").unwrap_or(&m);
                    cn.split(',').next().unwrap_or(cn).to_owned()
                })
                .or_else(|| ev.get_str("MemberSid").map(|s| s.into_owned()));
            if let Some(acc) = member.and_then(|m| r.account(&m)) {
                out.accounts.push(acc);
            }
        }
        let logon = matches!(event_id, "4624" | "4625" | "4648" | "4776" | "4778");
        let sources = SOURCE_FIELDS.iter().map(|f| (f, true));
        for (f, inbound) in sources.chain(DESTINATION_FIELDS.iter().map(|f| (f, false))) {
            let Some(p) = ev.get_str(f).and_then(|s| place(&s)) else {
                continue;
            };
            if let Place::Outside(o) = &p {
                out.outside.push(o.clone());
            }
            let Some(h) = here.as_ref().map(|h| Place::Host(h.clone())) else {
                continue;
            };
            if p == h {
                continue;
            }
            out.edges.push(match inbound {
                true => Edge {
                    from: p,
                    to: h,
                    kind: if logon {
                        MoveKind::Logon
                    } else {
                        MoveKind::Connection
                    },
                },
                false => Edge {
                    from: h,
                    to: p,
                    kind: MoveKind::Connection,
                },
            });
        }
        // The network logon the alert followed (see [`logon_context`]): its workstation names
        // the source host even where nothing resolves its address any more.
        let from = ev
            .get_str(LOGON_WORKSTATION)
            .or_else(|| ev.get_str(LOGON_SOURCE))
            .and_then(|s| place(&s));
        if let (Some(h), Some(from)) = (&here, from)
            && from != Place::Host(h.clone())
        {
            if out.accounts.is_empty()
                && let Some(a) = ev.get_str(LOGON_USER).and_then(|a| r.account(&a))
            {
                out.logon_accounts.push(a);
            }
            out.edges.push(Edge {
                from,
                to: Place::Host(h.clone()),
                kind: MoveKind::Logon,
            });
        }
        out.process = ev
            .get_str("ProcessChain")
            .map(|c| c.into_owned())
            .or_else(|| {
                let image = ev.get_str("Image")?;
                Some(match ev.get_str("ParentImage") {
                    Some(p) => format!("{} \u{2192} {}", basename(&p), basename(&image)),
                    None => basename(&image).to_owned(),
                })
            });
    }
    for v in [&mut out.hosts, &mut out.accounts, &mut out.outside] {
        v.sort();
        v.dedup();
    }
    out.edges.sort();
    out.edges.dedup();
    out
}

/// The entities of each alert, in order.
pub fn entities_of(alerts: &[Alert], r: &Resolver) -> Vec<AlertEntities> {
    alerts.iter().map(|a| alert_entities(a, r)).collect()
}

/// Hub entities by what the alerts show: built-in accounts, and any host, account or outside
/// address seen with more than `degree` distinct counterparts (accounts for a host, hosts for
/// an account or an outside address). Hosts with a hub role ([`Resolver::hub_role`]) are
/// weighed apart by the campaigns. Returns ("host"|"account"|"outside", name) pairs.
pub fn hubs(
    ents: &[AlertEntities],
    degree: usize,
) -> std::collections::BTreeSet<(&'static str, String)> {
    let mut host_accounts: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
    let mut account_hosts: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
    let mut outside_hosts: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
    for e in ents {
        for h in &e.hosts {
            let s = host_accounts.entry(h).or_default();
            s.extend(e.accounts.iter().map(String::as_str));
            for o in &e.outside {
                outside_hosts.entry(o).or_default().insert(h);
            }
        }
        for a in &e.accounts {
            account_hosts
                .entry(a)
                .or_default()
                .extend(e.hosts.iter().map(String::as_str));
        }
    }
    let mut out = std::collections::BTreeSet::new();
    for (h, accs) in &host_accounts {
        if accs.len() > degree {
            out.insert(("host", (*h).to_owned()));
        }
    }
    for (a, hosts) in &account_hosts {
        if hosts.len() > degree || BUILTIN_ACCOUNTS.contains(a) {
            out.insert(("account", (*a).to_owned()));
        }
    }
    for (o, hosts) in &outside_hosts {
        if hosts.len() > degree {
            out.insert(("outside", (*o).to_owned()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver() -> Resolver {
        Resolver::new(
            &[KnownHost {
                name: "jump-01".into(),
                addresses: vec!["10.20.0.5".parse().unwrap()],
                role: Some("jump".into()),
                aliases: vec!["JUMPBOX".into()],
            }],
            &[],
        )
    }

    #[test]
    fn one_name_per_host() {
        let mut r = resolver();
        assert_eq!(r.host("JUMP-01.corp.example"), "jump-01");
        assert_eq!(r.host("10.20.0.5"), "jump-01");
        assert_eq!(r.host("jumpbox.corp.example"), "jump-01");
        assert_eq!(r.host("web-portal-01.corp.example."), "web-portal-01");
        assert_eq!(
            r.address("203.0.113.66".parse().unwrap(), None),
            Place::Outside("203.0.113.66".into())
        );
        assert_eq!(
            r.address("10.9.9.9".parse().unwrap(), None),
            Place::Host("10.9.9.9".into())
        );
        // Addresses move: the observation nearest the time wins.
        let ip: IpAddr = "10.1.0.26".parse().unwrap();
        let mut seen = Aliases::default();
        seen.saw(ip, "WS-CARE07", 1000);
        seen.saw(ip, "ws-care09.corp.example", 90_000);
        seen.saw("203.0.113.9".parse().unwrap(), "cdn.example", 5);
        r.learn(&seen);
        assert_eq!(r.address(ip, Some(1200)), Place::Host("ws-care07".into()));
        assert_eq!(r.address(ip, Some(80_000)), Place::Host("ws-care09".into()));
        // Outside addresses stay outside whatever DNS called them.
        assert_eq!(
            r.address("203.0.113.9".parse().unwrap(), None),
            Place::Outside("203.0.113.9".into())
        );
    }

    fn event(
        secs: i64,
        host: &str,
        service: &str,
        fields: &[(&'static str, &str)],
    ) -> Event<'static> {
        let mut e = Event::new(cellwarden_event::Origin {
            file: "security.evtx".into(),
            record: secs as u64,
        });
        e.timestamp = Some(cellwarden_event::Timestamp::from_second(1_700_000_000 + secs).unwrap());
        e.host = Some(host.to_owned().into());
        e.logsource = Some(std::sync::Arc::new(cellwarden_event::LogSource {
            product: Some("windows".into()),
            service: Some(service.into()),
            ..Default::default()
        }));
        for (k, v) in fields {
            e.push(*k, cellwarden_event::Value::Str(v.to_string().into()));
        }
        e
    }

    /// A service installed over PsExec names no one: the network logon two seconds before it
    /// on that host tells who and from where; the workstation's address is learnt from the
    /// logon record itself. A logon ten minutes earlier is not taken.
    #[test]
    fn an_event_without_a_session_takes_the_logon_before_it() {
        let mut seen = Aliases::default();
        let logon = |secs, user: &str, ws: &str, ip: &str| {
            event(
                secs,
                "BILL-DB-01.corp.example",
                "security",
                &[
                    ("EventID", "4624"),
                    ("LogonType", "3"),
                    ("TargetUserName", user),
                    ("WorkstationName", ws),
                    ("IpAddress", ip),
                ],
            )
        };
        seen.observe(&logon(98, "adm_paul", "WEB-PORTAL-01", "10.10.0.8"));
        seen.observe(&logon(5000 - 600, "backup_svc", "BKP-01", "10.30.0.50"));
        // Other services are not read for names.
        seen.observe(&event(
            0,
            "x",
            "sysmon",
            &[("WorkstationName", "EVIL"), ("IpAddress", "10.10.0.8")],
        ));
        // A Zeek DNS answer names an internal address (category `dns`, no service).
        let mut dns = event(
            50,
            "-",
            "x",
            &[
                ("query", "crm-db-01.corp.example"),
                ("answers", "10.30.0.20,10.30.0.21"),
            ],
        );
        if let Some(l) = dns.logsource.as_mut() {
            let l = std::sync::Arc::make_mut(l);
            l.service = None;
            l.categories = vec!["dns".into()];
        }
        seen.observe(&dns);
        let mut r = resolver();
        r.learn(&seen);
        assert_eq!(r.host("10.30.0.21"), "crm-db-01");
        let alert = |secs| Alert {
            rule: std::sync::Arc::new(cellwarden_event::RuleInfo {
                id: "psexec".into(),
                ..Default::default()
            }),
            level: cellwarden_event::Level::Medium,
            event: event(
                secs,
                "bill-db-01.corp.example",
                "system",
                &[("EventID", "7045"), ("AccountName", "LocalSystem")],
            ),
            correlation: None,
        };
        let mut alerts = vec![alert(100), alert(5000)];
        add_logon_context(&mut alerts, &r);
        assert_eq!(alerts[0].event.get_str(LOGON_USER).unwrap(), "adm_paul");
        assert_eq!(alerts[0].event.get_str(LOGON_SOURCE).unwrap(), "10.10.0.8");
        assert_eq!(
            alerts[0].event.get_str(LOGON_WORKSTATION).unwrap(),
            "WEB-PORTAL-01"
        );
        // Once added, the context stands on its own: no resolver needed for the source.
        let e = alert_entities(&alerts[0], &Resolver::default());
        assert!(e.accounts.is_empty());
        assert_eq!(e.logon_accounts, ["adm_paul"]);
        assert_eq!(
            e.edges,
            [Edge {
                from: Place::Host("web-portal-01".into()),
                to: Place::Host("bill-db-01".into()),
                kind: MoveKind::Logon,
            }]
        );
        let late = alert_entities(&alerts[1], &r);
        assert!(
            late.logon_accounts.is_empty() && late.edges.is_empty(),
            "{late:?}"
        );
    }

    /// PsExec from the admins' workstation (asset role `admin`) is administration: lowered to
    /// low, with the reason; from anywhere else, or a rule of another technique, it keeps its
    /// level.
    #[test]
    fn remote_administration_from_an_admin_workstation_is_lowered() {
        let mut seen = Aliases::default();
        for (secs, ws, ip) in [(98, "ADM-01", "10.1.5.10"), (998, "WEB-01", "10.10.0.8")] {
            seen.observe(&event(
                secs,
                "bill-db-01",
                "security",
                &[
                    ("EventID", "4624"),
                    ("LogonType", "3"),
                    ("TargetUserName", "adm_paul"),
                    ("WorkstationName", ws),
                    ("IpAddress", ip),
                ],
            ));
        }
        let mut r = Resolver::new(
            &[KnownHost {
                name: "adm-01".into(),
                addresses: vec!["10.1.5.10".parse().unwrap()],
                role: Some("admin".into()),
                aliases: Vec::new(),
            }],
            &[],
        );
        r.learn(&seen);
        let psexec = |secs, techniques: &[&str]| Alert {
            rule: std::sync::Arc::new(cellwarden_event::RuleInfo {
                id: "psexec".into(),
                techniques: techniques.iter().map(|t| t.to_string()).collect(),
                ..Default::default()
            }),
            level: Level::Medium,
            event: event(secs, "bill-db-01", "system", &[("EventID", "7045")]),
            correlation: None,
        };
        let c = alert_context(&psexec(100, &["T1569.002"]), &r).unwrap();
        assert_eq!((c.from, c.level), (Level::Medium, Level::Low));
        assert!(
            c.fields
                .iter()
                .any(|(k, v)| *k == "Context" && v.contains("adm-01 (asset role admin)"))
        );
        let c = alert_context(&psexec(1000, &["T1569.002"]), &r).unwrap();
        assert_eq!(c.level, Level::Medium, "from the web server");
        let c = alert_context(&psexec(100, &["T1003.001"]), &r).unwrap();
        assert_eq!(c.level, Level::Medium, "not remote administration");
    }

    #[test]
    fn dhcp_leases_name_addresses() {
        let ip: IpAddr = "10.1.0.26".parse().unwrap();
        assert_eq!(
            dhcp_lease(
                "dhcpd",
                "DHCPACK on 10.1.0.26 to 00:11:22:33:44:55 (WS-CARE07) via eth0"
            ),
            Some((ip, "WS-CARE07"))
        );
        assert_eq!(
            dhcp_lease(
                "dnsmasq-dhcp",
                "DHCPACK(eth0) 10.1.0.26 00:11:22:33:44:55 ws-care07"
            ),
            Some((ip, "ws-care07"))
        );
        // No name, another message, another program: nothing.
        assert_eq!(
            dhcp_lease(
                "dhcpd",
                "DHCPACK on 10.1.0.26 to 00:11:22:33:44:55 via eth0"
            ),
            None
        );
        assert_eq!(
            dhcp_lease(
                "dhcpd",
                "DHCPREQUEST for 10.1.0.26 from 00:11:22:33:44:55 (x) via eth0"
            ),
            None
        );
        assert_eq!(
            dhcp_lease("dnsmasq-dhcp", "DHCPACK(eth0) 10.1.0.26 00:11:22:33:44:55"),
            None
        );
        assert_eq!(
            dhcp_lease("sshd", "DHCPACK on 10.1.0.26 to m (x) via eth0"),
            None
        );
        let mut seen = Aliases::default();
        let mut e = event(
            10,
            "dhcp-01",
            "syslog",
            &[
                ("program", "dhcpd"),
                (
                    "message",
                    "DHCPACK on 10.1.0.26 to 00:11:22:33:44:55 (WS-CARE07) via eth0",
                ),
            ],
        );
        seen.observe(&e);
        e.timestamp = Some(cellwarden_event::Timestamp::from_second(1_700_090_000).unwrap());
        e.fields[1].1 = cellwarden_event::Value::Str(
            "DHCPACK on 10.1.0.26 to 66:77:88:99:aa:bb (ws-care09) via eth0".into(),
        );
        seen.observe(&e);
        let mut r = resolver();
        r.learn(&seen);
        assert_eq!(
            r.address(ip, Some(1_700_000_100)),
            Place::Host("ws-care07".into())
        );
        assert_eq!(
            r.address(ip, Some(1_700_089_000)),
            Place::Host("ws-care09".into())
        );
    }

    #[test]
    fn one_name_per_account() {
        let mut r = resolver();
        assert_eq!(r.account("CORP\\Svc_Bkp3").as_deref(), Some("svc_bkp3"));
        assert_eq!(
            r.account("svc_bkp3@corp.example").as_deref(),
            Some("svc_bkp3")
        );
        for noise in [
            "SYSTEM",
            "NT AUTHORITY\\SYSTEM",
            "WEB01$",
            "-",
            "",
            "S-1-5-18",
        ] {
            assert_eq!(r.account(noise), None, "{noise}");
        }
        r.account_alias("billing_ro", "CORP\\paul");
        assert_eq!(r.account("billing_ro").as_deref(), Some("paul"));
    }
}
