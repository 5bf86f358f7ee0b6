//! Database-access detections over [`Aggregates`]: each alert says what was observed and
//! what was expected (the account's own earlier days, its peers, the watchlist).
//!
//! Rules (`rule_id`, level):
//! - `cellwarden.db.watchlist_access` (high): records of a watchlisted subscriber read by an
//!   account not on the watchlist's allow list; one alert per account and day.
//! - `cellwarden.db.targeted_lookup` (high): an account read a small set of subscribers
//!   (persons, across their linked identifiers) from one client host repeatedly (on more
//!   days than its daily volume explains by chance) or across many record types, more such
//!   subscribers than its peers do.
//! - `cellwarden.db.bulk_export` (high): COPY … TO, SELECT … INTO OUTFILE, UNLOAD, CREATE
//!   TABLE AS or SELECT INTO from a record table, unless the account made the same export
//!   on enough earlier days to be a schedule.
//! - `cellwarden.db.bulk_read` (medium): a whole-table read of a large record table by an
//!   account with history that never read that table whole before.
//! - `cellwarden.db.new_record_type` (medium), `cellwarden.db.new_client_host` (medium),
//!   `cellwarden.db.new_program` (low), `cellwarden.db.unusual_hour` (low): something the
//!   account never did on its earlier days (needs `min_history_days` of them).
//! - `cellwarden.db.new_account_activity` (high): activity of an account created (CREATE
//!   USER/ROLE) or granted rights shortly before, in the same logs.
//!
//! Days and hours are UTC. An account-day is *suspicious* when it has an alert of level
//! medium or more, or two different low ones; exposure follows from suspicious days,
//! targeted subscribers and watchlist hits.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use cellwarden_analytics::rules::evidence_event;
pub use cellwarden_analytics::stats::date_of_day;
use cellwarden_analytics::stats::p90;
use cellwarden_analytics::{BuiltinRule, RuleTable};
use cellwarden_event::{Level, Value};
use serde::Deserialize;

use crate::access::Created;
use crate::access::{Aggregates, Day, Evidence, Session, SessionStats};
use crate::ids::{IdKind, Numbering, SubscriberId, classify, normalise};
use crate::persons::{Persons, SubscriberMap};
use crate::schema::RecordType;
use crate::share::{Global, PeerShare};
use crate::sql::StatementKind;

/// Thresholds of the database detections (`[db]` in the `--config` TOML file).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DbConfig {
    /// Earlier active days an account needs before "never did this before" alerts.
    pub min_history_days: usize,
    /// Hours either side of an hour the account worked that still count as usual.
    pub hour_tolerance: u32,
    /// A subscriber read on at least this many days …
    pub targeted_min_days: usize,
    /// … and in at least this many statements is read repeatedly (a lookup, a callback and
    /// the CDRs pulled for them are ordinary customer care).
    pub targeted_min_lookups: u64,
    /// A subscriber read on this many days is read repeatedly, however many statements.
    pub targeted_days_alone: usize,
    /// A subscriber whose records of this many types were read is read in depth.
    pub targeted_min_record_types: u32,
    /// More repeatedly read subscribers than this is a job's pattern, not a target list.
    pub targeted_max_subscribers: usize,
    /// Alert when the count exceeds this factor times the peers' 90th percentile …
    pub targeted_peer_factor: f64,
    /// … and exceeds this many (for accounts with peers; without peers, any count alerts).
    pub targeted_peer_allowance: usize,
    /// … and is less likely than this among peers (Poisson at the peers' mean count).
    pub targeted_peer_alpha: f64,
    /// Fewer peers than this is no peer group (two accounts say nothing of normal).
    pub targeted_min_peers: usize,
    /// A subscriber read on k days is read repeatedly only when fewer than this many of the
    /// subscribers in the logs would be read on k days by chance, at the account's daily
    /// number of subscribers (an application reading a tenth of the base a day meets the
    /// same customers again and again).
    pub targeted_chance: f64,
    /// The operator's number of subscribers, when known (the base for `targeted_chance`);
    /// otherwise the number of subscribers the logs name, a lower bound.
    pub subscriber_base: u64,
    /// A whole-table read returning fewer rows than this (when logged) is not bulk.
    pub bulk_min_rows: i64,
    /// An export made on this many earlier days is a schedule (not alerted).
    pub export_schedule_days: usize,
    /// Activity of an account created or granted rights this many days before alerts.
    pub new_account_days: i64,
    /// Peer groups: role → account name patterns (`*` wildcard, case-insensitive). Accounts
    /// in no role are grouped by the client program they use most.
    pub roles: BTreeMap<String, Vec<String>>,
}

impl Default for DbConfig {
    fn default() -> Self {
        DbConfig {
            min_history_days: 3,
            hour_tolerance: 1,
            targeted_min_days: 2,
            targeted_min_lookups: 4,
            targeted_days_alone: 3,
            targeted_min_record_types: 3,
            targeted_max_subscribers: 50,
            targeted_peer_factor: 2.0,
            targeted_peer_allowance: 1,
            targeted_peer_alpha: 0.001,
            targeted_min_peers: 3,
            targeted_chance: 0.01,
            subscriber_base: 0,
            bulk_min_rows: 10_000,
            export_schedule_days: 3,
            new_account_days: 7,
            roles: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    db: DbConfig,
    /// Other sections belong to other analytics.
    #[serde(flatten)]
    _other: BTreeMap<String, toml::Value>,
}

impl DbConfig {
    /// Reads the `[db]` table of a cellwarden config file.
    pub fn from_toml(text: &str) -> Result<DbConfig, crate::ConfigError> {
        Ok(toml::from_str::<ConfigFile>(text)?.db)
    }

    fn role_of(&self, account: &str) -> Option<&str> {
        self.roles
            .iter()
            .find(|(_, pats)| pats.iter().any(|p| glob_match(p, account)))
            .map(|(r, _)| r.as_str())
    }
}

fn glob_match(pattern: &str, text: &str) -> bool {
    let p = pattern.to_ascii_lowercase();
    let t = text.to_ascii_lowercase();
    let parts: Vec<&str> = p.split('*').collect();
    if parts.len() == 1 {
        return p == t;
    }
    let mut rest = t.as_str();
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(k) => rest = &rest[k + part.len()..],
                None => return false,
            }
        }
    }
    true
}

/// Protected subscribers (`--watchlist FILE`): one identifier a line with an optional
/// label after it (`msisdn:`, `imsi:`, `imei:` or `iccid:` may prefix the identifier; without one it
/// is recognised by shape, and other digit strings are MSISDNs); `allow ACCOUNT` lines name
/// accounts whose access does not alert; `#` starts a comment.
#[derive(Debug, Default, Clone)]
pub struct Watchlist {
    /// Protected subscribers, with their label.
    pub ids: BTreeMap<SubscriberId, Option<String>>,
    /// Lowercase.
    pub allow: BTreeSet<String>,
}

impl Watchlist {
    /// The watchlist with every identifier linked to a watchlisted one (the same person, see
    /// [`crate::persons`]) watchlisted too, under its label: a person listed by MSISDN is
    /// protected when read by IMSI.
    pub fn linked(&self, persons: &Persons) -> Watchlist {
        let mut w = self.clone();
        for (id, label) in &self.ids {
            if let Some(p) = persons.of(id) {
                for m in persons.members(p) {
                    w.ids.entry(*m).or_insert_with(|| label.clone());
                }
            }
        }
        w
    }

    /// Parses a watchlist; lines that are not understood are returned as `(line, message)`.
    pub fn parse(text: &str, numbering: &Numbering) -> (Watchlist, Vec<(usize, String)>) {
        let mut w = Watchlist::default();
        let mut bad = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            // The identifier may be written in groups ("+33 6 12 34 56 78"); the label follows.
            let cut = line
                .char_indices()
                .find(|&(i, c)| {
                    !(c.is_ascii_digit() || "+-.() ".contains(c) || line[..i].trim().is_empty())
                        && line[..i].ends_with(' ')
                })
                .map_or(line.len(), |(i, _)| i);
            let (first, rest) = if line
                .split_whitespace()
                .next()
                .is_some_and(|t| t.contains(':'))
                || line.starts_with(|c: char| c.is_ascii_alphabetic())
            {
                match line.split_once(char::is_whitespace) {
                    Some((a, b)) => (a, b.trim()),
                    None => (line, ""),
                }
            } else {
                (line[..cut].trim(), line[cut..].trim())
            };
            if first.eq_ignore_ascii_case("allow") {
                if rest.is_empty() {
                    bad.push((n + 1, "allow needs an account name".to_owned()));
                } else {
                    w.allow.insert(rest.to_ascii_lowercase());
                }
                continue;
            }
            let id = match first.split_once(':') {
                Some((k, v)) => match k.to_ascii_lowercase().as_str() {
                    "msisdn" => normalise(IdKind::Msisdn, v, numbering),
                    "imsi" => normalise(IdKind::Imsi, v, numbering),
                    "imei" => normalise(IdKind::Imei, v, numbering),
                    "iccid" => normalise(IdKind::Iccid, v, numbering),
                    _ => None,
                },
                None => classify(first, numbering)
                    .or_else(|| normalise(IdKind::Msisdn, first, numbering)),
            };
            match id {
                Some(id) => {
                    w.ids
                        .insert(id, (!rest.is_empty()).then(|| rest.to_owned()));
                }
                None => bad.push((
                    n + 1,
                    format!("{first:?} is not an MSISDN, IMSI or IMEI; line skipped"),
                )),
            }
        }
        (w, bad)
    }

    /// The account is on the allow list.
    pub fn allowed(&self, account: &str) -> bool {
        self.allow.contains(&account.to_ascii_lowercase())
    }
}

const RULES: &[BuiltinRule] = &[
    BuiltinRule {
        id: "cellwarden.db.watchlist_access",
        title: "Records of a watchlisted subscriber read",
        level: Level::High,
        description: "An account not on the allow list read records of a protected subscriber.",
        tags: &["attack.collection", "attack.t1213"],
    },
    BuiltinRule {
        id: "cellwarden.db.targeted_lookup",
        title: "Targeted subscriber lookups",
        level: Level::High,
        description: "An account read a small set of specific subscribers repeatedly or in depth, more than its peers do.",
        tags: &["attack.collection", "attack.t1213", "attack.t1005"],
    },
    BuiltinRule {
        id: "cellwarden.db.bulk_export",
        title: "Subscriber records exported in bulk",
        level: Level::High,
        description: "Records were copied out of the database (COPY TO, INTO OUTFILE, UNLOAD) or into a new table, not on an established schedule.",
        tags: &["attack.collection", "attack.t1074", "attack.exfiltration"],
    },
    BuiltinRule {
        id: "cellwarden.db.bulk_read",
        title: "Whole record table read by an account that never did",
        level: Level::Medium,
        description: "A large record table was read without a selective predicate by an account whose history has no such read.",
        tags: &["attack.collection", "attack.t1213"],
    },
    BuiltinRule {
        id: "cellwarden.db.new_record_type",
        title: "Account read a record type it never reads",
        level: Level::Medium,
        description: "The account read records of a type (CDR, location, device, …) absent from its earlier days.",
        tags: &["attack.collection", "attack.t1213"],
    },
    BuiltinRule {
        id: "cellwarden.db.new_client_host",
        title: "Account used from a new client host",
        level: Level::Medium,
        description: "The account connected from a client host absent from its earlier days.",
        tags: &["attack.lateral-movement", "attack.t1078"],
    },
    BuiltinRule {
        id: "cellwarden.db.new_program",
        title: "Account used with a new client program",
        level: Level::Low,
        description: "The account used a client program absent from its earlier days.",
        tags: &["attack.t1078"],
    },
    BuiltinRule {
        id: "cellwarden.db.unusual_hour",
        title: "Account active at hours it never works",
        level: Level::Low,
        description: "Statements at UTC hours the account was never active in on its earlier days.",
        tags: &["attack.t1078"],
    },
    BuiltinRule {
        id: "cellwarden.db.new_account_activity",
        title: "Activity of a recently created or granted account",
        level: Level::High,
        description: "An account created (CREATE USER/ROLE) or granted rights in the same logs was used shortly after.",
        tags: &["attack.persistence", "attack.t1136", "attack.t1098"],
    },
];

/// The database detections' rules.
pub fn rules() -> RuleTable {
    RuleTable::new("builtin:cellwarden.db", RULES)
}

/// The detections' results, and why each account-day and subscriber is suspicious.
pub type Judgement = cellwarden_analytics::Judgement<Reasons>;

/// (account, client host, subscriber) of a targeted lookup.
pub type TargetKey = (Arc<str>, Option<Arc<str>>, SubscriberId);

/// Why account-days and subscribers are suspicious, by the keys of the alerts that say so.
#[derive(Debug, Default)]
pub struct Reasons {
    /// Suspicious account-days (findings about the account, not where it worked from) →
    /// keys of the alerts that make them so.
    pub day_reasons: BTreeMap<(Arc<str>, Day), Vec<String>>,
    /// Suspicious sessions (findings that name where they happened: a client host, a program,
    /// hours, record types, a bulk read) → keys of the alerts that make them so.
    pub session_reasons: BTreeMap<(Arc<str>, Day, Arc<Session>), Vec<String>>,
    /// Targeted subscribers, by (account, client host they were read from, subscriber) →
    /// key of the targeted-lookup alert.
    pub subject_reasons: BTreeMap<TargetKey, Vec<String>>,
    /// Watchlist hits: (account, day) → alert key.
    pub watch_reasons: BTreeMap<(Arc<str>, Day), String>,
    /// Every alert key by account, for the accounts section.
    pub account_alerts: BTreeMap<Arc<str>, Vec<usize>>,
    /// The persons the subscriber map and the logs' links make, as the detections saw them
    /// (the report lists subscribers by them).
    pub persons: Persons,
}

struct Finding {
    rule: &'static str,
    account: Arc<str>,
    day: Option<Day>,
    /// The sessions the finding is about; `None`: the whole account-day.
    sessions: Option<Vec<Arc<Session>>>,
    evidence: Evidence,
    observed: String,
    expected: String,
    subscribers: Vec<SubscriberId>,
    /// Targeted lookups: the subscribers with the client host they were read from.
    targets: Vec<(Option<Arc<str>>, SubscriberId)>,
    extra: Vec<(&'static str, String)>,
}

fn list<T: std::fmt::Display>(items: impl IntoIterator<Item = T>, max: usize) -> String {
    let v: Vec<String> = items.into_iter().map(|x| x.to_string()).collect();
    let n = v.len();
    let mut s = v.into_iter().take(max).collect::<Vec<_>>().join(", ");
    if n > max {
        s.push_str(&format!(" and {} more", n - max));
    }
    s
}

fn hours_text(bits: u32) -> String {
    let v: Vec<String> = (0..24)
        .filter(|h| bits & (1 << h) != 0)
        .map(|h| format!("{h:02}h"))
        .collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(" ")
    }
}

fn widen(bits: u32, tol: u32) -> u32 {
    let mut out = bits;
    for h in 0..24 {
        if bits & (1 << h) != 0 {
            for d in 1..=tol {
                out |= 1 << ((h + d) % 24);
                out |= 1 << ((h + 24 - d % 24) % 24);
            }
        }
    }
    out
}

/// What an account did on its days before the one being judged.
#[derive(Default)]
struct History {
    days: usize,
    hours: u32,
    hosts: BTreeSet<Arc<str>>,
    programs: BTreeSet<Arc<str>>,
    record_bits: u8,
    /// (table, kind) → earlier days with such a bulk read or export.
    bulk_days: BTreeMap<(Arc<str>, StatementKind), usize>,
}

/// Runs the detections, with the persons the logs' own links make.
pub fn judge(agg: &Aggregates, watch: &Watchlist, config: &DbConfig) -> Judgement {
    judge_with_map(agg, watch, &SubscriberMap::default(), config)
}

/// Runs the detections, with the persons the subscriber map and the logs' links make (a
/// person is read in depth across their identifiers, and watchlisted under all of them).
pub fn judge_with_map(
    agg: &Aggregates,
    watch: &Watchlist,
    map: &SubscriberMap,
    config: &DbConfig,
) -> Judgement {
    judge_in(agg, watch, map, config, None)
}

/// Judges one partition of the accounts with the view of all partitions (both rounds of
/// [`crate::share`]): the union of the partitions' alerts is [`judge_with_map`]'s over all
/// the aggregates.
pub fn judge_partition(
    agg: &Aggregates,
    watch: &Watchlist,
    map: &SubscriberMap,
    config: &DbConfig,
    global: &Global,
) -> Judgement {
    judge_in(agg, watch, map, config, Some(global))
}

/// Round two of [`crate::share`]: every account of the partition with its peer group and the
/// length of its target list, judged with round one's view.
pub fn peer_share(
    agg: &Aggregates,
    watch: &Watchlist,
    map: &SubscriberMap,
    config: &DbConfig,
    global: &Global,
) -> PeerShare {
    let persons = Persons::build(map, &global.links);
    let watch = linked_watch(watch, &persons);
    let lists = target_lists(agg, &watch, &persons, config, Some(global.population));
    lists
        .targets
        .iter()
        .map(|(a, t)| (a.to_string(), lists.roles[a].clone(), t.len()))
        .collect()
}

/// The watchlist under every identifier of its persons.
fn linked_watch<'w>(watch: &'w Watchlist, persons: &Persons) -> std::borrow::Cow<'w, Watchlist> {
    if watch.ids.is_empty() || persons.is_empty() {
        std::borrow::Cow::Borrowed(watch)
    } else {
        std::borrow::Cow::Owned(watch.linked(persons))
    }
}

fn judge_in(
    agg: &Aggregates,
    watch: &Watchlist,
    map: &SubscriberMap,
    config: &DbConfig,
    global: Option<&Global>,
) -> Judgement {
    let persons = Persons::build(map, global.map_or(&agg.links, |g| &g.links));
    let watch = linked_watch(watch, &persons);
    let watch = &*watch;
    let first_day = match global {
        Some(g) => g.first_day,
        None => agg.days.keys().map(|(_, d)| *d).min(),
    };
    let mut findings: Vec<Finding> = Vec::new();
    novelty(agg, config, first_day, &mut findings);
    new_accounts(
        agg,
        global.map_or(&agg.created, |g| &g.created),
        config,
        &mut findings,
    );
    targeted(agg, watch, &persons, config, global, &mut findings);
    watchlisted(agg, watch, &mut findings);
    let mut j = into_judgement(agg, findings);
    j.reasons.persons = persons;
    j
}

fn novelty(agg: &Aggregates, config: &DbConfig, first_day: Option<Day>, out: &mut Vec<Finding>) {
    let standing = standing_exports(agg, config, first_day);
    let mut current: Option<Arc<str>> = None;
    let mut h = History::default();
    for ((account, day), d) in &agg.days {
        if current.as_ref() != Some(account) {
            current = Some(Arc::clone(account));
            h = History::default();
        }
        let Some(first) = d.first.clone() else {
            continue;
        };
        let judged = h.days >= config.min_history_days;
        // The sessions of this day for which `pick` holds.
        let those = |pick: &dyn Fn(&Session, &SessionStats) -> bool| -> Option<Vec<Arc<Session>>> {
            Some(
                d.sessions
                    .iter()
                    .filter(|(k, v)| pick(k, v))
                    .map(|(k, _)| Arc::clone(k))
                    .collect(),
            )
        };
        let base = |rule, evidence: Evidence, observed: String, expected: String| Finding {
            rule,
            account: Arc::clone(account),
            day: Some(*day),
            sessions: None,
            evidence,
            observed,
            expected,
            subscribers: Vec::new(),
            targets: Vec::new(),
            extra: Vec::new(),
        };
        let earlier = format!("{} earlier active day(s)", h.days);
        if judged {
            let new_hosts: Vec<(&Arc<str>, &Evidence)> = d
                .hosts
                .iter()
                .filter(|(x, _)| !h.hosts.contains(*x))
                .collect();
            if let Some(e) = new_hosts.iter().map(|(_, e)| *e).min() {
                let mut f = base(
                    "cellwarden.db.new_client_host",
                    e.clone(),
                    format!(
                        "client host(s) {}",
                        list(new_hosts.iter().map(|(x, _)| x), 10)
                    ),
                    format!("one of {} ({earlier})", list(&h.hosts, 10)),
                );
                f.extra.push(("client_host", new_hosts[0].0.to_string()));
                f.sessions = those(&|k, _| {
                    k.host
                        .as_ref()
                        .is_some_and(|h| new_hosts.iter().any(|(x, _)| *x == h))
                });
                out.push(f);
            }
            let new_programs: Vec<(&Arc<str>, &Evidence)> = d
                .programs
                .iter()
                .filter(|(x, _)| !h.programs.contains(*x))
                .collect();
            if let Some(e) = new_programs.iter().map(|(_, e)| *e).min() {
                let mut f = base(
                    "cellwarden.db.new_program",
                    e.clone(),
                    format!(
                        "client program(s) {}",
                        list(new_programs.iter().map(|(x, _)| x), 10)
                    ),
                    if h.programs.is_empty() {
                        format!("no client program named ({earlier})")
                    } else {
                        format!("one of {} ({earlier})", list(&h.programs, 10))
                    },
                );
                f.sessions = those(&|_, v| {
                    v.programs
                        .iter()
                        .any(|p| new_programs.iter().any(|(x, _)| *x == p))
                });
                out.push(f);
            }
            let odd = d.hours & !widen(h.hours, config.hour_tolerance);
            if odd != 0 {
                let mut f = base(
                    "cellwarden.db.unusual_hour",
                    first.clone(),
                    format!("activity at {} UTC", hours_text(odd)),
                    format!(
                        "activity within {} hour(s) of {} UTC ({earlier})",
                        config.hour_tolerance,
                        hours_text(h.hours)
                    ),
                );
                f.sessions = those(&|_, v| v.hours & odd != 0);
                out.push(f);
            }
            let new_types: Vec<(&RecordType, &Evidence)> = d
                .record_types
                .iter()
                .filter(|(t, _)| h.record_bits & t.bit() == 0)
                .collect();
            if let Some(e) = new_types.iter().map(|(_, e)| *e).min() {
                let seen: Vec<&str> = RecordType::of_bits(h.record_bits)
                    .map(|t| t.as_str())
                    .collect();
                let new_bits = new_types.iter().fold(0u8, |b, (t, _)| b | t.bit());
                let mut f = base(
                    "cellwarden.db.new_record_type",
                    e.clone(),
                    format!(
                        "read {} records",
                        list(new_types.iter().map(|(t, _)| t.as_str()), 6)
                    ),
                    if seen.is_empty() {
                        format!("no subscriber records read ({earlier})")
                    } else {
                        format!("only {} records ({earlier})", seen.join(", "))
                    },
                );
                f.sessions = those(&|_, v| v.record_bits & new_bits != 0);
                out.push(f);
            }
        }
        let mut bulk: Vec<Finding> = Vec::new();
        for ((table, kind), b) in &d.bulk {
            let Some(e) = b.first.clone() else { continue };
            let before = h
                .bulk_days
                .get(&(Arc::clone(table), *kind))
                .copied()
                .unwrap_or(0);
            let rows = b
                .rows
                .map_or("rows not logged".to_owned(), |r| format!("{r} rows"));
            let mut f = if kind.is_export() {
                if before >= config.export_schedule_days
                    || standing.contains(&(account, table, *kind))
                {
                    continue;
                }
                base(
                    "cellwarden.db.bulk_export",
                    e,
                    format!(
                        "{} of {table} ({} statement(s), {rows})",
                        kind.as_str(),
                        b.statements
                    ),
                    format!(
                        "no such export, or one made on at least {} earlier days (seen on {before}) or on more days than that from the first day of the logs",
                        config.export_schedule_days
                    ),
                )
            } else {
                if !judged || before > 0 {
                    continue;
                }
                base(
                    "cellwarden.db.bulk_read",
                    e,
                    format!(
                        "whole-table read of {table} ({} statement(s), {rows})",
                        b.statements
                    ),
                    format!("no whole-table read of {table} ({earlier})"),
                )
            };
            f.sessions = Some(b.sessions.clone());
            f.extra.push(("table", table.to_string()));
            f.extra.push(("statement_kind", kind.as_str().to_owned()));
            f.extra.push(("statement", b.excerpt.clone()));
            // One statement reading several record tables is one alert (one alert key).
            match bulk
                .iter_mut()
                .find(|x| x.rule == f.rule && x.evidence == f.evidence)
            {
                Some(x) => {
                    if let (Some(a), Some(b)) = (x.sessions.as_mut(), f.sessions.as_ref()) {
                        a.extend(b.iter().cloned());
                        a.sort();
                        a.dedup();
                    }
                    x.observed = format!("{}; {}", x.observed, f.observed);
                    if !x.expected.contains(&f.expected) {
                        x.expected = format!("{}; {}", x.expected, f.expected);
                    }
                    if let Some(t) = x.extra.iter_mut().find(|(k, _)| *k == "table") {
                        t.1 = format!("{}, {table}", t.1);
                    }
                }
                None => bulk.push(f),
            }
        }
        out.append(&mut bulk);
        h.days += 1;
        h.hours |= d.hours;
        h.hosts.extend(d.hosts.keys().cloned());
        h.programs.extend(d.programs.keys().cloned());
        h.record_bits |= d.record_types.keys().fold(0, |b, t| b | t.bit());
        for k in d.bulk.keys() {
            *h.bulk_days.entry(k.clone()).or_default() += 1;
        }
    }
}

fn new_accounts(agg: &Aggregates, created: &[Created], config: &DbConfig, out: &mut Vec<Finding>) {
    let window = config.new_account_days * 86_400;
    let mut done: BTreeSet<(String, Arc<str>)> = BTreeSet::new();
    for c in created {
        for ((account, day), d) in &agg.days {
            if !account.eq_ignore_ascii_case(&c.principal) || Arc::ptr_eq(account, &c.by) {
                continue;
            }
            let Some(first) = &d.first else { continue };
            // Active at or after the creation, and starting within the window.
            let dt = first.time.as_second() - c.evidence.time.as_second();
            if d.last.is_none_or(|l| l < c.evidence.time) || dt > window {
                continue;
            }
            if !done.insert((c.principal.clone(), Arc::clone(account))) {
                continue;
            }
            let verb = if c.kind == StatementKind::Grant {
                "granted rights"
            } else {
                "created"
            };
            let mut f = Finding {
                sessions: None,
                rule: "cellwarden.db.new_account_activity",
                account: Arc::clone(account),
                day: Some(*day),
                evidence: if first.time >= c.evidence.time {
                    first.clone()
                } else {
                    c.evidence.clone()
                },
                observed: format!(
                    "{} statement(s) on {} by account {}, {verb} by {} at {} ({} line {})",
                    d.statements,
                    date_of_day(*day),
                    account,
                    c.by,
                    c.evidence.time,
                    c.evidence.file,
                    c.evidence.record
                ),
                expected: format!(
                    "no use within {} day(s) of an account being {verb}",
                    config.new_account_days
                ),
                subscribers: Vec::new(),
                targets: Vec::new(),
                extra: vec![("created_by", c.by.to_string())],
            };
            f.extra.push(("created_at", c.evidence.time.to_string()));
            out.push(f);
        }
    }
}

/// (account, table, kind) of an export.
type ExportKey<'a> = (&'a Arc<str>, &'a Arc<str>, StatementKind);

/// Exports running since the first day of the logs and made on more than
/// `export_schedule_days` days: a job older than the logs, whose first days cannot be
/// judged against a history the logs do not hold. An export starting later learns its
/// schedule day by day.
fn standing_exports<'a>(
    agg: &'a Aggregates,
    config: &DbConfig,
    first_day: Option<Day>,
) -> BTreeSet<ExportKey<'a>> {
    let Some(first_day) = first_day else {
        return BTreeSet::new();
    };
    // Export → (made on the first day, days made).
    let mut days: BTreeMap<ExportKey, (bool, usize)> = BTreeMap::new();
    for ((account, day), d) in &agg.days {
        for (table, kind) in d.bulk.keys().filter(|(_, k)| k.is_export()) {
            let e = days.entry((account, table, *kind)).or_default();
            e.0 |= *day == first_day;
            e.1 += 1;
        }
    }
    days.into_iter()
        .filter(|(_, (from_start, n))| *from_start && *n > config.export_schedule_days)
        .map(|(k, _)| k)
        .collect()
}

/// Interactive SQL clients and IDEs (by `application_name` / program): accounts using them
/// are people, not an application, and form no peer group by program.
fn is_interactive_client(program: &str) -> bool {
    const CLIENTS: [&str; 20] = [
        "psql",
        "pgadmin",
        "dbeaver",
        "datagrip",
        "sqlplus",
        "sql developer",
        "sqldeveloper",
        "toad",
        "mysql",
        "mysqlsh",
        "mysql workbench",
        "heidisql",
        "navicat",
        "squirrel",
        "isql",
        "sqlcmd",
        "microsoft sql server management studio",
        "azure data studio",
        "dbvisualizer",
        "tableplus",
    ];
    let p = program.trim().to_ascii_lowercase();
    let p = p.strip_suffix(".exe").unwrap_or(&p);
    CLIENTS
        .iter()
        .any(|c| p == *c || p.starts_with(&format!("{c} ")) || p.starts_with(&format!("{c}@")))
}

/// The smallest k with P(X > k) < alpha for X ~ Poisson(rate).
fn poisson_bound(rate: f64, alpha: f64) -> usize {
    let mut term = (-rate).exp();
    let mut cdf = term;
    let mut k = 0;
    while 1.0 - cdf >= alpha && k < 10_000 {
        k += 1;
        term *= rate / k as f64;
        cdf += term;
    }
    k
}

/// How many subscribers an account would read on k or more days by chance: each day it reads
/// n of the P subscribers of the base (configured, else those the logs name: a lower bound,
/// so the chance is if anything overstated), each subscriber alike, days independent.
struct RepeatChance<'a> {
    population: f64,
    /// (Account, client host) → P(a given subscriber is read on ≥ k days), by k.
    tails: BTreeMap<(&'a str, Option<&'a str>), Vec<f64>>,
}

impl<'a> RepeatChance<'a> {
    /// `population`: the distinct subscribers of all partitions, when `agg` is one of them.
    fn new(agg: &'a Aggregates, base: u64, population: Option<u64>) -> RepeatChance<'a> {
        let mut all: rustc_hash::FxHashSet<&SubscriberId> = Default::default();
        all.reserve(agg.subjects.len());
        type DayKey<'k> = (&'k str, Option<&'k str>, Day);
        let mut per_day: BTreeMap<DayKey, u64> = BTreeMap::new();
        let mut last: Option<(&str, &SubscriberId, Day, Option<&str>)> = None;
        // Sessions of an (account, subscriber, day) come sorted by host.
        for ((a, s, d, sess), _) in &agg.subjects {
            all.insert(s);
            let host = sess.host.as_deref();
            let key = (a.as_ref(), s, *d, host);
            if last != Some(key) {
                *per_day.entry((a.as_ref(), host, *d)).or_default() += 1;
                last = Some(key);
            }
        }
        let named = population.unwrap_or(all.len() as u64);
        let population = named.max(base).max(1) as f64;
        let mut shares: BTreeMap<(&str, Option<&str>), Vec<f64>> = BTreeMap::new();
        for ((a, h, _), n) in per_day {
            shares
                .entry((a, h))
                .or_default()
                .push((n as f64 / population).min(1.0));
        }
        // Poisson-binomial over the days, once per reader: tails[k] = P(read on ≥ k days).
        let tails = shares
            .into_iter()
            .map(|(key, p)| {
                let mut dist = vec![0.0f64; p.len() + 1];
                dist[0] = 1.0;
                for (i, &q) in p.iter().enumerate() {
                    for j in (0..=i + 1).rev() {
                        let stay = dist[j] * (1.0 - q);
                        let up = if j > 0 { dist[j - 1] * q } else { 0.0 };
                        dist[j] = stay + up;
                    }
                }
                let mut tail = vec![0.0f64; dist.len() + 1];
                for k in (0..dist.len()).rev() {
                    tail[k] = tail[k + 1] + dist[k];
                }
                (key, tail)
            })
            .collect();
        RepeatChance { population, tails }
    }

    /// Expected number of subscribers `account` reads from `host` on at least `k` days by
    /// chance.
    fn expected(&self, account: &str, host: Option<&Arc<str>>, k: usize) -> f64 {
        self.tails
            .get(&(account, host.map(|h| &**h)))
            .and_then(|t| t.get(k))
            .map_or(0.0, |p| p * self.population)
    }
}

/// Per (account, client host, subscriber): days, statements, record types, earliest
/// evidence. Where the reads came from matters: a service account's application and an
/// intruder using the same account from another host are two readers.
#[derive(Clone)]
struct Per {
    days: usize,
    last_day: Option<Day>,
    statements: u64,
    bits: u8,
    first: Option<Evidence>,
}

/// A subscriber (or person) read repeatedly or in depth: client host, identifiers, reads.
type Target = (Option<Arc<str>>, Vec<SubscriberId>, Per);

/// Each account's target list (possibly empty) and peer group.
struct Lists {
    targets: BTreeMap<Arc<str>, Vec<Target>>,
    roles: BTreeMap<Arc<str>, Option<String>>,
}

/// Watchlisted subscribers are left out: `watchlist_access` reports every read of them, and
/// counting them here would sweep an insider's chance callbacks into the target list.
fn target_lists(
    agg: &Aggregates,
    watch: &Watchlist,
    persons: &Persons,
    config: &DbConfig,
    population: Option<u64>,
) -> Lists {
    let fresh = || Per {
        days: 0,
        last_day: None,
        statements: 0,
        bits: 0,
        first: None,
    };
    let add = |p: &mut Per, day: Day, st: &crate::access::SubjectStats| {
        // Days come in order within an (account, subscriber) run.
        if p.last_day != Some(day) {
            p.days += 1;
            p.last_day = Some(day);
        }
        p.statements += st.statements;
        p.bits |= st.record_types;
        if let Some(e) = st.evidence.first() {
            crate::access::min_evidence(&mut p.first, e);
        }
    };
    type Host<'h> = Option<&'h Arc<str>>;
    // Subjects are ordered by (account, subscriber, day, session): one run per account and
    // subscriber, its hosts found among the run's few entries.
    let mut per: Vec<(&Arc<str>, Host, &SubscriberId, Per)> = Vec::new();
    let mut run = 0;
    // (account, host, person) → the person's days, counts, and the identifiers read.
    type PersonKey<'k> = (&'k Arc<str>, Host<'k>, usize);
    let mut by_person: BTreeMap<PersonKey, (BTreeSet<Day>, Per, Vec<SubscriberId>)> =
        BTreeMap::new();
    for ((a, s, day, sess), st) in &agg.subjects {
        let host = sess.host.as_ref();
        // A person's identifiers are read as one: the CDRs by MSISDN, the cells by IMSI and
        // the handset by IMEI are a read in depth.
        if let Some(person) = persons.of(s) {
            let e = by_person
                .entry((a, host, person))
                .or_insert_with(|| (BTreeSet::new(), fresh(), Vec::new()));
            e.0.insert(*day);
            add(&mut e.1, *day, st);
            if !e.2.contains(s) {
                e.2.push(*s);
            }
            continue;
        }
        let same_run = per
            .last()
            .is_some_and(|(pa, _, ps, _)| *ps == s && *pa == a);
        if !same_run {
            run = per.len();
        }
        let i = match per[run..].iter().position(|(_, h, _, _)| *h == host) {
            Some(i) => run + i,
            None => {
                per.push((a, host, s, fresh()));
                per.len() - 1
            }
        };
        add(&mut per[i].3, *day, st);
    }
    let people = by_person
        .into_iter()
        .map(|((a, h, _), (days, mut p, ids))| {
            p.days = days.len();
            (a, h, ids, p)
        });
    let singles = per.into_iter().map(|(a, h, s, p)| (a, h, vec![*s], p));
    // Built only when some subscriber was read on several days.
    let chance = std::cell::OnceCell::new();
    let mut targets: BTreeMap<Arc<str>, Vec<Target>> = BTreeMap::new();
    // Entries come account by account: each account's list is gathered here and added to
    // `targets` when the next account begins (one map lookup per account, not per entry).
    let mut current: Option<(&Arc<str>, Vec<Target>)> = None;
    let flush = |targets: &mut BTreeMap<Arc<str>, Vec<Target>>,
                 c: Option<(&Arc<str>, Vec<Target>)>| {
        if let Some((a, list)) = c {
            targets.entry(Arc::clone(a)).or_default().extend(list);
        }
    };
    for (a, h, ids, p) in singles.chain(people) {
        let repeated = (p.days >= config.targeted_min_days
            && p.statements >= config.targeted_min_lookups
            || p.days >= config.targeted_days_alone)
            && chance
                .get_or_init(|| RepeatChance::new(agg, config.subscriber_base, population))
                .expected(a, h, p.days)
                < config.targeted_chance;
        let deep = p.bits.count_ones() >= config.targeted_min_record_types;
        if current.as_ref().is_none_or(|(c, _)| *c != a) {
            flush(&mut targets, current.replace((a, Vec::new())));
        }
        let list = &mut current.as_mut().expect("set above").1;
        if (repeated || deep) && !ids.iter().any(|s| watch.ids.contains_key(s)) {
            list.push((h.cloned(), ids, p));
        }
    }
    flush(&mut targets, current);
    // Peer groups: configured role, else the program the account uses most.
    let mut main_program: BTreeMap<Arc<str>, (u64, Arc<str>)> = BTreeMap::new();
    for ((a, p), n) in &agg.programs {
        let e = main_program
            .entry(Arc::clone(a))
            .or_insert((0, Arc::clone(p)));
        if *n > e.0 {
            *e = (*n, Arc::clone(p));
        }
    }
    // An application's accounts do the same work; people at an interactive SQL client do not.
    let role = |a: &str| -> Option<String> {
        config.role_of(a).map(|r| format!("role {r}")).or_else(|| {
            main_program
                .get(a)
                .filter(|(_, p)| !is_interactive_client(p))
                .map(|(_, p)| format!("program {p}"))
        })
    };
    let roles: BTreeMap<Arc<str>, Option<String>> =
        targets.keys().map(|a| (Arc::clone(a), role(a))).collect();
    Lists { targets, roles }
}

fn targeted(
    agg: &Aggregates,
    watch: &Watchlist,
    persons: &Persons,
    config: &DbConfig,
    global: Option<&Global>,
    out: &mut Vec<Finding>,
) {
    let Lists { targets, roles } =
        target_lists(agg, watch, persons, config, global.map(|g| g.population));
    // Every account with reads, its peer group and its list's length: this partition's, or
    // every partition's when judged with their view.
    let table: Vec<(&str, Option<&str>, usize)> = match global.and_then(|g| g.peers.as_ref()) {
        Some(all) => all
            .iter()
            .map(|(a, r, n)| (&**a, r.as_deref(), *n))
            .collect(),
        None => targets
            .iter()
            .map(|(a, t)| (&**a, roles[a].as_deref(), t.len()))
            .collect(),
    };
    for (account, list_t) in &targets {
        let n = list_t.len();
        if n == 0 || n > config.targeted_max_subscribers {
            continue;
        }
        let my_role = &roles[account];
        let mut peers: Vec<usize> = table
            .iter()
            .filter(|(a, r, _)| *a != &**account && my_role.is_some() && *r == my_role.as_deref())
            .map(|(_, _, n)| *n)
            .collect();
        if peers.len() < config.targeted_min_peers {
            peers.clear();
        }
        let peer_p90 = p90(peers.clone());
        // Among peers doing hundreds of lookups, a customer seen again is a coincidence of
        // customer care. The count of such coincidences is about Poisson: a target list is a
        // count the peers' mean makes unlikely.
        let rate = peers.iter().sum::<usize>() as f64 / peers.len().max(1) as f64;
        let expected_max = ((peer_p90 as f64 * config.targeted_peer_factor).floor() as usize)
            .max(config.targeted_peer_allowance)
            .max(poisson_bound(rate, config.targeted_peer_alpha));
        if !peers.is_empty() && n <= expected_max {
            continue;
        }
        let Some(evidence) = list_t.iter().filter_map(|(_, _, p)| p.first.clone()).min() else {
            continue;
        };
        let deep = list_t
            .iter()
            .filter(|(_, _, p)| p.bits.count_ones() >= config.targeted_min_record_types)
            .count();
        let types: u8 = list_t.iter().fold(0, |b, (_, _, p)| b | p.bits);
        out.push(Finding {
            sessions: None,
            rule: "cellwarden.db.targeted_lookup",
            account: Arc::clone(account),
            day: None,
            evidence,
            observed: format!(
                "{n} subscriber(s) read repeatedly (on ≥{} days in ≥{} statements, or on ≥{} days) or in depth (≥{} record types; {deep} of them), record types {}",
                config.targeted_min_days,
                config.targeted_min_lookups,
                config.targeted_days_alone,
                config.targeted_min_record_types,
                RecordType::of_bits(types).map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
            ),
            expected: if peers.is_empty() {
                "none: the account has no peers to compare with and no subscriber is read this way in normal lookups".to_owned()
            } else {
                format!(
                    "at most {expected_max} (peers in {} ({} accounts): 90th percentile {peer_p90} × {}, mean {:.2}, chance of more under {})",
                    my_role.as_deref().unwrap_or("-"),
                    peers.len(),
                    config.targeted_peer_factor,
                    rate,
                    config.targeted_peer_alpha
                )
            },
            subscribers: list_t
                .iter()
                .flat_map(|(_, s, _)| s.iter().cloned())
                .collect(),
            targets: list_t
                .iter()
                .flat_map(|(h, s, _)| s.iter().map(|x| (h.clone(), *x)))
                .collect(),
            extra: Vec::new(),
        });
    }
}

fn watchlisted(agg: &Aggregates, watch: &Watchlist, out: &mut Vec<Finding>) {
    if watch.ids.is_empty() {
        return;
    }
    // (account, day) → (subscribers, first evidence, statements)
    type Hits = BTreeMap<(Arc<str>, Day), (Vec<SubscriberId>, Option<Evidence>, u64)>;
    let mut hits: Hits = BTreeMap::new();
    for ((a, s, d, _), st) in &agg.subjects {
        if !watch.ids.contains_key(s) || watch.allowed(a) {
            continue;
        }
        let e = hits.entry((Arc::clone(a), *d)).or_default();
        e.0.push(*s);
        e.2 += st.statements;
        if let Some(x) = st.evidence.first() {
            crate::access::min_evidence(&mut e.1, x);
        }
    }
    for ((account, day), (subs, ev, statements)) in hits {
        let Some(evidence) = ev else { continue };
        let labels: Vec<String> = subs
            .iter()
            .filter_map(|s| watch.ids.get(s).cloned().flatten())
            .collect();
        let mut f = Finding {
            sessions: None,
            rule: "cellwarden.db.watchlist_access",
            account,
            day: Some(day),
            evidence,
            observed: format!(
                "{} watchlisted subscriber(s) read in {statements} statement(s) on {}",
                subs.len(),
                date_of_day(day)
            ),
            expected: "no access by accounts outside the watchlist's allow list".to_owned(),
            subscribers: subs,
            targets: Vec::new(),
            extra: Vec::new(),
        };
        if !labels.is_empty() {
            f.extra.push(("labels", labels.join("; ")));
        }
        out.push(f);
    }
}

fn into_judgement(agg: &Aggregates, mut findings: Vec<Finding>) -> Judgement {
    let table = rules();
    findings.sort_by(|a, b| {
        (&a.evidence, a.rule, &a.account, a.day).cmp(&(&b.evidence, b.rule, &b.account, b.day))
    });
    let mut j = Judgement::default();
    // Low findings: about the whole account-day (session `None`) or about given sessions.
    type LowKey = (Arc<str>, Day, Option<Arc<Session>>);
    let mut lows: BTreeMap<LowKey, Vec<(&'static str, String)>> = BTreeMap::new();
    for f in findings {
        let level = table.get(f.rule).1;
        let mut ev = evidence_event(&f.evidence.file, f.evidence.record, f.evidence.time);
        let s = |x: String| Value::Str(std::borrow::Cow::Owned(x));
        ev.push("account", s(f.account.to_string()));
        if let Some(d) = f.day {
            ev.push("day", s(date_of_day(d)));
        }
        ev.push("observed", s(f.observed.clone()));
        ev.push("expected", s(f.expected.clone()));
        if !f.subscribers.is_empty() {
            ev.push("subscribers", Value::Int(f.subscribers.len() as i64));
            ev.push(
                "subscriber_ids",
                Value::List(
                    f.subscribers
                        .iter()
                        .map(|x| s(format!("{}:{}", x.kind, x.value)))
                        .collect(),
                ),
            );
        }
        // Where the statements came from: the finding's sessions, its targeted reads, or every
        // client host of the account that day (campaigns join on them).
        let mut clients: BTreeSet<&str> = BTreeSet::new();
        match (&f.sessions, f.day) {
            (Some(list), _) => clients.extend(list.iter().filter_map(|x| x.host.as_deref())),
            (None, _) if !f.targets.is_empty() => {
                clients.extend(f.targets.iter().filter_map(|(h, _)| h.as_deref()))
            }
            (None, Some(d)) => {
                if let Some(st) = agg.days.get(&(Arc::clone(&f.account), d)) {
                    clients.extend(st.hosts.keys().map(|h| &**h));
                }
            }
            (None, None) => {}
        }
        if !clients.is_empty() && !f.extra.iter().any(|(k, _)| *k == "client_host") {
            ev.push(
                "client_host",
                s(clients.into_iter().collect::<Vec<_>>().join(",")),
            );
        }
        for (k, v) in &f.extra {
            ev.push(*k, s(v.clone()));
        }
        let alert = table.alert(f.rule, None, ev);
        let key = alert.key();
        match (f.rule, f.day) {
            ("cellwarden.db.targeted_lookup", _) => {
                for (host, sub) in &f.targets {
                    j.reasons
                        .subject_reasons
                        .entry((Arc::clone(&f.account), host.clone(), *sub))
                        .or_default()
                        .push(key.clone());
                }
            }
            ("cellwarden.db.watchlist_access", Some(d)) => {
                j.reasons
                    .watch_reasons
                    .insert((Arc::clone(&f.account), d), key.clone());
            }
            (_, Some(d)) if level >= Level::Medium => match &f.sessions {
                None => j
                    .reasons
                    .day_reasons
                    .entry((Arc::clone(&f.account), d))
                    .or_default()
                    .push(key.clone()),
                Some(list) => {
                    for sess in list {
                        j.reasons
                            .session_reasons
                            .entry((Arc::clone(&f.account), d, Arc::clone(sess)))
                            .or_default()
                            .push(key.clone());
                    }
                }
            },
            (rule, Some(d)) => match &f.sessions {
                None => lows
                    .entry((Arc::clone(&f.account), d, None))
                    .or_default()
                    .push((rule, key.clone())),
                Some(list) => {
                    for sess in list {
                        lows.entry((Arc::clone(&f.account), d, Some(Arc::clone(sess))))
                            .or_default()
                            .push((rule, key.clone()));
                    }
                }
            },
            _ => {}
        }
        j.reasons
            .account_alerts
            .entry(Arc::clone(&f.account))
            .or_default()
            .push(j.alerts.len());
        j.alerts.push(alert);
    }
    // A session is suspicious with two different low findings about it or its whole
    // account-day, or one beside a medium or higher one (its reasons are listed too); a day
    // with two different low findings about the whole day is suspicious as a whole.
    let days: BTreeSet<(Arc<str>, Day)> =
        lows.keys().map(|(a, d, _)| (Arc::clone(a), *d)).collect();
    for (a, d) in days {
        let day_lows = lows
            .get(&(Arc::clone(&a), d, None))
            .cloned()
            .unwrap_or_default();
        let day_rules: BTreeSet<&str> = day_lows.iter().map(|(r, _)| *r).collect();
        let day_medium = j.reasons.day_reasons.contains_key(&(Arc::clone(&a), d));
        if day_rules.len() >= 2 || (day_medium && !day_rules.is_empty()) {
            let keys = day_lows.iter().map(|(_, k)| k.clone());
            j.reasons
                .day_reasons
                .entry((Arc::clone(&a), d))
                .or_default()
                .extend(keys);
            continue;
        }
        let Some(stats) = agg.days.get(&(Arc::clone(&a), d)) else {
            continue;
        };
        for sess in stats.sessions.keys() {
            let own = lows.get(&(Arc::clone(&a), d, Some(Arc::clone(sess))));
            let all: Vec<&(&str, String)> =
                day_lows.iter().chain(own.into_iter().flatten()).collect();
            let rules: BTreeSet<&str> = all.iter().map(|(r, _)| *r).collect();
            let key = (Arc::clone(&a), d, Arc::clone(sess));
            let medium = day_medium || j.reasons.session_reasons.contains_key(&key);
            if rules.len() >= 2 || (medium && !rules.is_empty()) {
                let keys: Vec<String> = all.iter().map(|(_, k)| k.clone()).collect();
                let slot = j.reasons.session_reasons.entry(key).or_default();
                for k in keys {
                    if !slot.contains(&k) {
                        slot.push(k);
                    }
                }
            }
        }
    }
    j
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{Collector, Selection};
    use crate::schema::Schema;
    use crate::share::Share;
    use cellwarden_event::{Alert, Event};

    fn ev(t: &str, user: &str, host: &str, sql: &str, line: u64) -> Event<'static> {
        crate::access::tests::db_event(t, user, host, sql, line)
    }

    fn aggregate(evs: &[Event<'static>]) -> Aggregates {
        let mut c = Collector::new(
            Arc::new(Schema::default()),
            Arc::new(Selection::default()),
            1000,
        );
        for e in evs {
            c.observe(e);
        }
        let mut a = c.into_aggregates();
        a.finish();
        a
    }

    fn rules_of(j: &Judgement) -> Vec<String> {
        j.alerts.iter().map(|a| a.rule.id.clone()).collect()
    }

    /// Four normal days of a care agent, then day 5 as given.
    fn care_history() -> Vec<Event<'static>> {
        let mut v = Vec::new();
        let mut line = 0;
        for day in 1..=4 {
            for k in 0..3 {
                line += 1;
                let num = format!("33610000{day}{k:02}");
                v.push(ev(
                    &format!("2026-03-0{day}T09:{:02}:00Z", k * 10),
                    "care1",
                    "10.0.0.1",
                    &format!("SELECT * FROM subscriber WHERE msisdn = '{num}'"),
                    line,
                ));
            }
        }
        v
    }

    #[test]
    fn normal_history_is_quiet_and_novelty_alerts_with_explanations() {
        let quiet = aggregate(&care_history());
        let j = judge(&quiet, &Watchlist::default(), &DbConfig::default());
        assert!(j.alerts.is_empty(), "{:?}", rules_of(&j));
        let mut evs = care_history();
        evs.push(ev(
            "2026-03-05T03:00:00Z",
            "care1",
            "10.66.6.6",
            "SELECT * FROM cell_location WHERE imsi = '208150123456789'",
            100,
        ));
        let j = judge(
            &aggregate(&evs),
            &Watchlist::default(),
            &DbConfig::default(),
        );
        let rules = rules_of(&j);
        assert!(rules.contains(&"cellwarden.db.new_client_host".to_owned()));
        assert!(rules.contains(&"cellwarden.db.unusual_hour".to_owned()));
        assert!(rules.contains(&"cellwarden.db.new_record_type".to_owned()));
        let host = j
            .alerts
            .iter()
            .find(|a| a.rule.id == "cellwarden.db.new_client_host")
            .unwrap();
        assert!(
            host.event
                .get_str("observed")
                .unwrap()
                .contains("10.66.6.6")
        );
        assert!(host.event.get_str("expected").unwrap().contains("10.0.0.1"));
        // The findings name where it happened: the session from the new host is suspicious,
        // not the account's whole day.
        assert!(j.reasons.day_reasons.is_empty());
        let marked: Vec<String> = j
            .reasons
            .session_reasons
            .keys()
            .map(|(a, _, s)| format!("{a} {s}"))
            .collect();
        assert_eq!(marked, vec!["care1 10.66.6.6".to_owned()]);
    }

    #[test]
    fn bulk_reads_and_new_programs_against_history() {
        let mut evs = Vec::new();
        for day in 1..=4 {
            let mut e = ev(
                &format!("2026-03-0{day}T10:00:00Z"),
                "analyst",
                "10.0.0.3",
                "SELECT count(*) FROM sms_log WHERE sent_at > now() - interval '1 day'",
                day,
            );
            e.push("application", Value::Str("tableau".into()));
            evs.push(e);
        }
        // Day 5: the whole CDR table, with a new tool; rows logged above the threshold.
        let mut e = ev(
            "2026-03-05T10:00:00Z",
            "analyst",
            "10.0.0.3",
            "SELECT * FROM cdr",
            5,
        );
        e.push("application", Value::Str("pg_dump".into()));
        e.push("rows", Value::Int(2_000_000));
        evs.push(e);
        // A small whole-table read (rows under the threshold) is not bulk.
        evs.push(ev(
            "2026-03-05T10:05:00Z",
            "analyst",
            "10.0.0.3",
            "SELECT * FROM sms_log",
            6,
        ));
        let j = judge(
            &aggregate(&evs),
            &Watchlist::default(),
            &DbConfig::default(),
        );
        let rules = rules_of(&j);
        assert!(
            rules.contains(&"cellwarden.db.bulk_read".to_owned()),
            "{rules:?}"
        );
        assert!(
            rules.contains(&"cellwarden.db.new_program".to_owned()),
            "{rules:?}"
        );
        let bulk = j
            .alerts
            .iter()
            .find(|a| a.rule.id == "cellwarden.db.bulk_read")
            .unwrap();
        assert_eq!(bulk.event.get_str("table").unwrap(), "cdr");
        assert!(
            bulk.event
                .get_str("observed")
                .unwrap()
                .contains("2000000 rows")
        );
        // sms_log read on day 5 has no logged rows: whole-table, counted as bulk (unknown size).
        assert_eq!(
            j.alerts
                .iter()
                .filter(|a| a.rule.id == "cellwarden.db.bulk_read")
                .count(),
            2
        );
    }

    #[test]
    fn interactive_clients_form_no_peer_group() {
        for p in [
            "psql",
            "DBeaver 23.1.0 - Main",
            "SQL Developer",
            "sqlplus.exe",
            "sqlplus@jump01 (TNS V1-V3)",
        ] {
            assert!(is_interactive_client(p), "{p}");
        }
        for p in ["crm-web", "rater", "pg_dump", "JDBC Thin Client", "mysqld"] {
            assert!(!is_interactive_client(p), "{p}");
        }
    }

    #[test]
    fn poisson_bound_is_the_upper_quantile() {
        // P(X > 2 | 0.09) ≈ 1.2e-4 < 0.001 ≤ P(X > 1) ≈ 3.8e-3.
        assert_eq!(poisson_bound(1.0 / 11.0, 0.001), 2);
        assert_eq!(poisson_bound(0.0, 0.001), 0);
        // Mean 5: P(X > 13) ≈ 7.3e-4, P(X > 12) ≈ 2.0e-3.
        assert_eq!(poisson_bound(5.0, 0.001), 13);
    }

    /// Four care agents reading customers; one also reads the same two people on four days.
    fn peer_scenario() -> Vec<Event<'static>> {
        let mut evs = Vec::new();
        let mut line = 0;
        // Four care agents each reading distinct customers once; one of them also reads
        // the same two people on three days.
        for agent in ["care1", "care2", "care3", "care4"] {
            for day in 1..=3 {
                for k in 0..4 {
                    line += 1;
                    let mut e = ev(
                        &format!("2026-03-0{day}T10:0{k}:00Z"),
                        agent,
                        "10.0.0.1",
                        &format!("SELECT * FROM subscriber WHERE msisdn = '3361{line:07}'"),
                        line,
                    );
                    e.push("application", Value::Str("crm".into()));
                    evs.push(e);
                }
            }
        }
        for day in 1..=4 {
            for target in ["33699990001", "33699990002"] {
                line += 1;
                let mut e = ev(
                    &format!("2026-03-0{day}T11:00:00Z"),
                    "care2",
                    "10.0.0.1",
                    &format!("SELECT * FROM cdr WHERE calling_number = '{target}'"),
                    line,
                );
                e.push("application", Value::Str("crm".into()));
                evs.push(e);
            }
        }
        evs
    }

    /// Accounts split over partitions, each judged with the view the partitions share (two
    /// rounds), give together exactly the alerts of one judgement over all of them; judged
    /// alone, they do not.
    #[test]
    fn partitions_judged_with_the_shared_view_equal_the_whole() {
        let mut evs = peer_scenario();
        evs.extend(person_scenario());
        evs.extend(export_scenario());
        let (watch, bad) = Watchlist::parse("33699990002 politician\n", &Numbering::default());
        assert!(bad.is_empty());
        let map = SubscriberMap::default();
        let mut alone_differs = false;
        // Without a configured subscriber base, and with one large enough that partitions
        // only count their subscribers.
        for base in [0, 1_000_000] {
            let config = DbConfig {
                subscriber_base: base,
                ..DbConfig::default()
            };
            let render = |j: &Judgement| -> Vec<String> {
                let mut v: Vec<String> = j
                    .alerts
                    .iter()
                    .map(|a| format!("{} {} {:?}", a.rule.id, a.key(), a.event.fields))
                    .collect();
                v.sort();
                v
            };
            let whole_agg = aggregate(&evs);
            let whole_judgement = judge_with_map(&whole_agg, &watch, &map, &config);
            let whole = render(&whole_judgement);
            // The scope report, for every subscriber's entry.
            let report = |x: &crate::exposure::Exposure| serde_json::to_string_pretty(x).unwrap();
            let selection = crate::access::Selection::default();
            let whole_report = report(&crate::exposure::Exposure::build(
                &whole_agg,
                &whole_judgement,
                &watch,
                &selection,
            ));
            assert!(whole_report.contains("33699990002"), "{whole_report}");
            for rule in [
                "targeted_lookup",
                "bulk_export",
                "new_account_activity",
                "watchlist",
            ] {
                assert!(whole.iter().any(|a| a.contains(rule)), "{rule}: {whole:#?}");
            }
            for n in 1..=4u64 {
                for salt in 0..3u64 {
                    let part = |e: &Event<'_>| {
                        let a = e.get_str("user").unwrap().to_ascii_lowercase();
                        a.bytes().fold(salt, |h, b| h.wrapping_mul(31) + b as u64) % n
                    };
                    let parts: Vec<Aggregates> = (0..n)
                        .map(|p| {
                            let mine: Vec<Event<'static>> =
                                evs.iter().filter(|e| part(e) == p).cloned().collect();
                            aggregate(&mine)
                        })
                        .collect();
                    let shares: Vec<Share> = parts
                        .iter()
                        .map(|a| Share::of_partition(a, base, n as u32))
                        .collect();
                    let listed = shares.iter().any(|s| !s.subscribers.is_empty());
                    assert_eq!(listed, base == 0);
                    let round_one = Global::merge(&shares);
                    let peers: Vec<PeerShare> = parts
                        .iter()
                        .map(|a| peer_share(a, &watch, &map, &config, &round_one))
                        .collect();
                    let view = round_one.with_peers(&peers);
                    let judged: Vec<Judgement> = parts
                        .iter()
                        .map(|a| judge_partition(a, &watch, &map, &config, &view))
                        .collect();
                    let mut got: Vec<String> = judged.iter().flat_map(render).collect();
                    got.sort();
                    assert_eq!(got, whole, "{n} partitions, salt {salt}, base {base}");
                    let merged = crate::exposure::Exposure::merge(
                        parts
                            .iter()
                            .zip(&judged)
                            .map(|(a, j)| {
                                crate::exposure::Exposure::build(a, j, &watch, &selection)
                            })
                            .collect(),
                    );
                    assert_eq!(
                        report(&merged),
                        whole_report,
                        "{n} partitions, salt {salt}, base {base}"
                    );
                    let mut alone: Vec<String> = parts
                        .iter()
                        .flat_map(|a| render(&judge_with_map(a, &watch, &map, &config)))
                        .collect();
                    alone.sort();
                    alone_differs |= alone != whole;
                }
            }
        }
        assert!(alone_differs, "the scenario needs no shared view");
    }

    #[test]
    fn targeted_lookups_against_peers() {
        let evs = peer_scenario();
        let j = judge(
            &aggregate(&evs),
            &Watchlist::default(),
            &DbConfig::default(),
        );
        let t: Vec<&Alert> = j
            .alerts
            .iter()
            .filter(|a| a.rule.id == "cellwarden.db.targeted_lookup")
            .collect();
        assert_eq!(t.len(), 1, "{:?}", rules_of(&j));
        assert_eq!(t[0].event.get_str("account").unwrap(), "care2");
        assert_eq!(t[0].event.get("subscribers"), Some(&Value::Int(2)));
        assert!(
            t[0].event
                .get_str("expected")
                .unwrap()
                .contains("program crm")
        );
        assert_eq!(j.reasons.subject_reasons.len(), 2);
    }

    #[test]
    fn watchlist_with_allow_list_and_bad_lines() {
        let (w, bad) = Watchlist::parse(
            "# protected\n+33 6 99 99 00 01  Minister A\nimsi:208150123456789\nallow dpo_audit\nnot-a-number\n",
            &Numbering::default(),
        );
        assert_eq!(w.ids.len(), 2);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].0, 5);
        let evs = vec![
            ev(
                "2026-03-01T10:00:00Z",
                "care1",
                "h",
                "SELECT * FROM subscriber WHERE msisdn = '33699990001'",
                1,
            ),
            ev(
                "2026-03-01T10:00:00Z",
                "dpo_audit",
                "h",
                "SELECT * FROM subscriber WHERE msisdn = '33699990001'",
                2,
            ),
        ];
        let j = judge(&aggregate(&evs), &w, &DbConfig::default());
        assert_eq!(rules_of(&j), vec!["cellwarden.db.watchlist_access"]);
        assert_eq!(j.alerts[0].event.get_str("labels").unwrap(), "Minister A");
        assert_eq!(j.alerts[0].event.get_str("account").unwrap(), "care1");
    }

    #[test]
    fn a_person_watchlisted_by_msisdn_is_protected_when_read_by_imsi() {
        let (w, _) = Watchlist::parse("+33 6 99 99 00 01  Minister A\n", &Numbering::default());
        let evs = vec![
            // Provisioning shows the MSISDN and the IMSI in one row...
            ev(
                "2026-03-01T09:00:00Z",
                "prov",
                "h",
                "INSERT INTO subscriber (msisdn, imsi) VALUES ('33699990001', '208150123456789')",
                1,
            ),
            // ... and the care agent reads the location by IMSI.
            ev(
                "2026-03-02T10:00:00Z",
                "care1",
                "h",
                "SELECT * FROM cell_location WHERE imsi = '208150123456789'",
                2,
            ),
        ];
        let agg = aggregate(&evs);
        assert_eq!(agg.links.len(), 1);
        let j = judge(&agg, &w, &DbConfig::default());
        assert_eq!(rules_of(&j), vec!["cellwarden.db.watchlist_access"]);
        assert_eq!(j.alerts[0].event.get_str("labels").unwrap(), "Minister A");
        assert_eq!(j.alerts[0].event.get_str("account").unwrap(), "care1");
        // The report lists the person once, under the MSISDN, the IMSI marked as read.
        let x = crate::exposure::Exposure::build(&agg, &j, &w, &Selection::default());
        assert_eq!(x.subscribers.len(), 1);
        let s = &x.subscribers[0];
        assert_eq!(
            (s.id_kind.as_str(), s.id.as_str()),
            ("msisdn", "33699990001")
        );
        assert!(s.watchlisted);
        let ids: Vec<(&str, bool)> = s
            .identifiers
            .iter()
            .map(|i| (i.kind.as_str(), i.read))
            .collect();
        assert_eq!(ids, vec![("msisdn", false), ("imsi", true)]);
    }

    /// A person provisioned with three identifiers, read by an application and, by each identifier, from another host with its account.
    fn person_scenario() -> Vec<Event<'static>> {
        let mut evs = vec![ev(
            "2026-03-01T09:00:00Z",
            "prov",
            "h",
            "INSERT INTO device (msisdn, imsi, imei) VALUES ('33699990001', '208150123456789', '356938035643809')",
            1,
        )];
        // The application reads the person's profile from its host...
        evs.push(ev(
            "2026-03-02T10:00:00Z",
            "crm_app",
            "10.20.0.5",
            "SELECT * FROM subscriber WHERE msisdn = '33699990001'",
            2,
        ));
        // ... and someone with its account reads calls, cells and the handset, each by
        // another identifier, from elsewhere.
        for (k, sql) in [
            "SELECT * FROM cdr WHERE calling_number = '33699990001'",
            "SELECT * FROM cell_location WHERE imsi = '208150123456789'",
            "SELECT * FROM eir_device WHERE imei = '356938035643809'",
        ]
        .iter()
        .enumerate()
        {
            evs.push(ev(
                &format!("2026-03-03T03:0{k}:00Z"),
                "crm_app",
                "10.30.5.17",
                sql,
                3 + k as u64,
            ));
        }
        evs
    }

    #[test]
    fn a_person_read_in_depth_from_another_host_is_a_target_of_that_host_only() {
        let evs = person_scenario();
        let j = judge(
            &aggregate(&evs),
            &Watchlist::default(),
            &DbConfig::default(),
        );
        assert!(rules_of(&j).contains(&"cellwarden.db.targeted_lookup".to_owned()));
        let hosts: BTreeSet<Option<&str>> = j
            .reasons
            .subject_reasons
            .keys()
            .map(|(_, h, _)| h.as_deref())
            .collect();
        assert_eq!(hosts, BTreeSet::from([Some("10.30.5.17")]));
        assert_eq!(j.reasons.subject_reasons.len(), 3, "the three identifiers");
    }

    /// A backup from the first day, an archive from the second, and an account created and used at once.
    fn export_scenario() -> Vec<Event<'static>> {
        let mut evs = Vec::new();
        for day in 1..=5 {
            evs.push(ev(
                &format!("2026-03-0{day}T02:00:00Z"),
                "backup",
                "10.0.0.9",
                "COPY cdr TO '/backup/cdr.csv'",
                day,
            ));
        }
        for day in 2..=5 {
            evs.push(ev(
                &format!("2026-03-0{day}T04:00:00Z"),
                "archiver",
                "10.0.0.8",
                "COPY sms_log TO '/archive/sms.csv'",
                day + 10,
            ));
        }
        evs.push(ev(
            "2026-03-05T02:10:00Z",
            "dba",
            "10.0.0.5",
            "CREATE USER svc_tmp",
            50,
        ));
        evs.push(ev(
            "2026-03-05T03:00:00Z",
            "svc_tmp",
            "10.9.9.9",
            "COPY (SELECT * FROM cdr WHERE calling_number = '33699990001') TO PROGRAM 'gzip > /tmp/a.gz'",
            51,
        ));
        evs
    }

    #[test]
    fn exports_alert_unless_scheduled_and_new_accounts() {
        let evs = export_scenario();
        let j = judge(
            &aggregate(&evs),
            &Watchlist::default(),
            &DbConfig::default(),
        );
        let exports: Vec<String> = j
            .alerts
            .iter()
            .filter(|a| a.rule.id == "cellwarden.db.bulk_export")
            .map(|a| {
                format!(
                    "{}@{}",
                    a.event.get_str("account").unwrap(),
                    a.event.get_str("day").unwrap()
                )
            })
            .collect();
        // The backup runs from the first day of the logs on five days: a job older than the
        // logs. The archiver starts on day 2: its first three days alert (no schedule yet),
        // day 5 is a schedule.
        assert_eq!(
            exports,
            vec![
                "archiver@2026-03-02",
                "archiver@2026-03-03",
                "archiver@2026-03-04",
                "svc_tmp@2026-03-05"
            ]
        );
        assert!(rules_of(&j).contains(&"cellwarden.db.new_account_activity".to_owned()));
        // An export reading two record tables in one statement is one alert.
        let two = aggregate(&[ev(
            "2026-03-05T03:00:00Z",
            "x",
            "h",
            "COPY (SELECT * FROM cdr JOIN cell_location USING (imsi)) TO '/tmp/y'",
            1,
        )]);
        let j2 = judge(&two, &Watchlist::default(), &DbConfig::default());
        assert_eq!(rules_of(&j2), vec!["cellwarden.db.bulk_export"]);
        assert_eq!(
            j2.alerts[0].event.get_str("table").unwrap(),
            "cdr, cell_location"
        );
        let cfg =
            DbConfig::from_toml("[db]\nexport_schedule_days = 1\nroles = { care = [\"care*\"] }\n")
                .unwrap();
        assert_eq!(cfg.export_schedule_days, 1);
        assert_eq!(cfg.role_of("CARE7"), Some("care"));
        assert!(DbConfig::from_toml("[db]\nnope = 1").is_err());
    }
}
