//! Subscriber exposure (`scope`): whose records were read, by which accounts, from where,
//! when, and why each read counts. The JSON form is documented in `docs/scope.md`.
//!
//! Two modes: without a [`Selection`], the subscribers read in suspicious sessions, in
//! targeted lookups or as watchlisted subscribers; with one, every subscriber the selected
//! accounts or hosts read in the time range (with the reasons that apply, if any).
//!
//! One entry per person: identifiers the logs or the subscriber map link (see
//! [`crate::persons`]) are reported together, identifiers nothing links on their own.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::access::{Aggregates, Evidence, Selection, Session, SubjectStats};
use crate::detect::{Judgement, Watchlist};
use crate::ids::{IdKind, SubscriberId};
use crate::schema::RecordType;

/// Evidence listed per subscriber at most; the total is given beside it.
pub const SUBSCRIBER_EVIDENCE_CAP: usize = 10;

fn ts(t: cellwarden_event::Timestamp) -> String {
    cellwarden_event::format_timestamp(Some(t))
}

/// One statement that read a subscriber: where it is logged and when, by whom.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvidenceOut {
    /// The log file.
    pub file: String,
    /// Line of the record in text logs, record number otherwise.
    pub line: u64,
    /// Time of the statement (RFC 3339 UTC).
    pub time: String,
    /// The database account.
    pub account: String,
    /// The client host, when the log names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_host: Option<String>,
    /// The session (session id, connection id or backend pid), when the log names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

/// One identifier of a person.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdentifierOut {
    /// `msisdn`, `imsi`, `imei` or `iccid`.
    pub kind: String,
    /// Normalised identifier (or its pseudonym).
    pub id: String,
    /// Records were read by this identifier (otherwise it is known from a link only).
    pub read: bool,
}

/// One subscriber (a person) whose records were read, with who read what, from where and
/// when.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubscriberExposure {
    /// The person's main identifier (MSISDN, else IMSI, ICCID, IMEI), normalised (or its
    /// pseudonym).
    pub id: String,
    /// `msisdn`, `imsi`, `imei` or `iccid`.
    pub id_kind: String,
    /// A stable name for the person: `kind:id` of the main identifier (a pseudonym of it when
    /// pseudonymised).
    pub person: String,
    /// Every identifier of the person (the main one too), with whether it was read.
    pub identifiers: Vec<IdentifierOut>,
    /// The watchlist's label, when watchlisted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Record types read (`cdr`, `location`, `device`, `profile`, …).
    pub record_types: Vec<String>,
    /// Accounts that read them.
    pub accounts: Vec<String>,
    /// Client hosts the reads came from.
    pub client_hosts: Vec<String>,
    /// First read (RFC 3339 UTC).
    pub first_access: String,
    /// Last read (RFC 3339 UTC).
    pub last_access: String,
    /// Statements that selected the subscriber (by each identifier: a statement naming two
    /// of a person's identifiers counts for both).
    pub statements: u64,
    /// Sum of the logged row counts of the statements that selected the subscriber; `null`
    /// when the logs carry none.
    pub rows: Option<i64>,
    /// On the watchlist (by any of its identifiers).
    pub watchlisted: bool,
    /// Keys of the alerts that make these reads suspicious.
    pub reasons: Vec<String>,
    /// The statements (first ones, capped).
    pub evidence: Vec<EvidenceOut>,
    /// Statements in all (the evidence list is capped).
    pub evidence_total: u64,
}

/// An alert that makes an account suspicious.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountReason {
    /// The alert's key.
    pub alert: String,
    /// Its rule id.
    pub rule: String,
    /// Its level.
    pub level: String,
    /// Its rule title.
    pub title: String,
    /// Time of its evidence (RFC 3339 UTC).
    pub time: String,
    /// What was observed.
    pub observed: String,
    /// What was expected instead.
    pub expected: String,
}

/// A whole-table read or export of a record table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BulkOut {
    /// The table.
    pub table: String,
    /// `select`, `copy_to`, `into_outfile`, `create_table_as`, …
    pub statement_kind: String,
    /// UTC day (`YYYY-MM-DD`).
    pub day: String,
    /// Statements of this kind on this table that day.
    pub statements: u64,
    /// Rows, when the logs carry them.
    pub rows: Option<i64>,
    /// Log file of the first statement.
    pub file: String,
    /// Its line or record.
    pub line: u64,
}

/// One database account: what it did and why it is suspicious.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountExposure {
    /// The account name.
    pub account: String,
    /// Has an alert of level medium or more, or subscribers in the report.
    pub suspicious: bool,
    /// Subscribers in the report read by this account.
    pub subscribers: u64,
    /// Client hosts it connected from.
    pub client_hosts: Vec<String>,
    /// Client programs it used.
    pub programs: Vec<String>,
    /// First statement (RFC 3339 UTC).
    pub first_activity: String,
    /// Last statement (RFC 3339 UTC).
    pub last_activity: String,
    /// Statements in all.
    pub statements: u64,
    /// The alerts about it.
    pub reasons: Vec<AccountReason>,
    /// Whole-table reads and exports of record tables.
    pub bulk: Vec<BulkOut>,
}

/// Reads by identifier prefix (`LIKE '336%'`): a range of subscribers, not one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrefixLookup {
    /// The account.
    pub account: String,
    /// Kind of identifier the prefix is of.
    pub id_kind: String,
    /// Digits before the wildcard (or their pseudonym).
    pub prefix: String,
    /// Statements with this prefix.
    pub statements: u64,
    /// The first of them.
    pub first: EvidenceOut,
}

/// The responder's selection, as given.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct SelectionOut {
    /// `--account` values.
    pub accounts: Vec<String>,
    /// `--host` values.
    pub hosts: Vec<String>,
    /// `--since`, RFC 3339.
    pub since: Option<String>,
    /// `--until`, RFC 3339.
    pub until: Option<String>,
}

/// Counts over the whole run.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Summary {
    /// `suspicious` (found by the detections) or `selected` (by account/host).
    pub mode: String,
    /// The selection (empty when `mode` is `suspicious`).
    pub selection: SelectionOut,
    /// Database statements read.
    pub statements: u64,
    /// Statements that selected subscribers by identifier.
    pub statements_with_subscribers: u64,
    /// Statements the SQL parser rejected, analysed from their tokens instead.
    pub statements_parsed_from_tokens: u64,
    /// Statements the server reports as failed.
    pub failed_statements: u64,
    /// Statements without a time (not placed in days).
    pub statements_without_time: u64,
    /// Whole-table reads and exports.
    pub bulk_statements: u64,
    /// Subscribers (persons) in the report.
    pub subscribers_exposed: u64,
    /// Their identifiers that were read.
    pub identifiers_read: u64,
    /// Links between identifiers not followed: they would have given a person two
    /// subscriptions or a handset two owners (see `docs/scope.md`).
    pub link_conflicts: u64,
    /// Of them, on the watchlist.
    pub watchlisted_exposed: u64,
    /// Accounts marked suspicious.
    pub accounts_suspicious: u64,
    /// Database alerts by rule id.
    pub alerts_by_rule: BTreeMap<String, u64>,
    /// First read of a subscriber in the report.
    pub first_access: Option<String>,
    /// Last read of a subscriber in the report.
    pub last_access: Option<String>,
    /// Whether identifiers are pseudonyms.
    pub pseudonymised: bool,
}

/// Outbound traffic from a host a suspicious account worked from, in the join window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransferOut {
    /// The suspicious account whose client host sent it.
    pub account: String,
    /// The client host.
    pub src_ip: String,
    /// The outside destination.
    pub dst_ip: String,
    /// Destination ports seen (up to 16).
    pub dst_ports: Vec<u16>,
    /// UTC day of the traffic.
    pub day: String,
    /// Bytes sent that day.
    pub bytes_out: u64,
    /// Flows that day.
    pub flows: u64,
    /// The day's first flow: time, file and line/record.
    pub first_time: String,
    /// Log file of the first flow.
    pub file: String,
    /// Its line or record.
    pub line: u64,
}

/// The result of `scope`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Exposure {
    /// Counts over the whole run.
    pub summary: Summary,
    /// Subscribers whose records were read, most suspicious first.
    pub subscribers: Vec<SubscriberExposure>,
    /// Accounts, suspicious first.
    pub accounts: Vec<AccountExposure>,
    /// Reads by identifier prefix.
    pub prefix_lookups: Vec<PrefixLookup>,
    /// Where the data may have gone: outbound transfers from the client hosts of suspicious
    /// accounts (empty without flow logs).
    pub exfiltration: Vec<TransferOut>,
    /// Subscribers whose location, subscription or routing was asked for in suspicious
    /// signalling exchanges (empty without signalling captures).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signalling: Vec<Tracking>,
}

/// A subscriber asked about in suspicious signalling, by one peer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tracking {
    /// The subscriber's IMSI, when the exchange named it (or its answer gave it).
    pub imsi: Option<String>,
    /// The subscriber's MSISDN, when the exchange named it.
    pub msisdn: Option<String>,
    /// `person` of the subscriber's entry in `subscribers` (database exposure), when the
    /// same person is there.
    pub person: Option<String>,
    /// Who asked: the calling global title (MAP), the origin realm (Diameter).
    pub by: String,
    /// The host the messages came from.
    pub sender: String,
    /// Operations asked (MAP operation names, Diameter commands).
    pub operations: Vec<String>,
    /// Whether the network answered (`yes`, `refused`, `no answer`), per operation asked.
    pub answered: Vec<String>,
    /// The detections (rule ids).
    pub rules: Vec<String>,
    /// First and last request (RFC 3339 UTC).
    pub first: String,
    /// Last request.
    pub last: String,
    /// The first request: capture file and packet number.
    pub file: String,
    /// Packet number of the first request.
    pub packet: u64,
}

#[derive(Default)]
struct Acc {
    /// The identifiers read.
    read: BTreeSet<SubscriberId>,
    /// Client hosts of the sessions they were read in.
    hosts: BTreeSet<Arc<str>>,
    stats: SubjectStats,
    accounts: BTreeSet<Arc<str>>,
    reasons: BTreeSet<String>,
    evidence: Vec<(Evidence, Arc<str>, Option<Arc<Session>>)>,
}

fn evidence_out(e: &Evidence, account: &str, session: Option<&Session>) -> EvidenceOut {
    EvidenceOut {
        file: e.file.to_string(),
        line: e.record,
        time: ts(e.time),
        account: account.to_owned(),
        client_host: session.and_then(|s| s.host.as_ref()).map(|h| h.to_string()),
        session: session.and_then(|s| s.id.as_ref()).map(|h| h.to_string()),
    }
}

/// Watchlisted first, then by first read.
fn sort_subscribers(subscribers: &mut [SubscriberExposure]) {
    subscribers.sort_by(|a, b| {
        (!a.watchlisted, &a.first_access, &a.id_kind, &a.id).cmp(&(
            !b.watchlisted,
            &b.first_access,
            &b.id_kind,
            &b.id,
        ))
    });
}

/// Adds the reads of one person by another part's accounts (see [`Exposure::merge`]).
fn merge_subscriber(e: &mut SubscriberExposure, x: SubscriberExposure) {
    for i in x.identifiers {
        match e
            .identifiers
            .iter_mut()
            .find(|o| o.kind == i.kind && o.id == i.id)
        {
            Some(o) => o.read |= i.read,
            None => e.identifiers.push(i),
        }
    }
    e.label = e.label.take().or(x.label);
    let rank = |t: &String| RecordType::ALL.iter().position(|r| r.as_str() == t);
    for t in x.record_types {
        if !e.record_types.contains(&t) {
            e.record_types.push(t);
        }
    }
    e.record_types.sort_by_key(rank);
    let union = |a: &mut Vec<String>, b: Vec<String>| {
        a.extend(b);
        a.sort();
        a.dedup();
    };
    union(&mut e.accounts, x.accounts);
    union(&mut e.client_hosts, x.client_hosts);
    union(&mut e.reasons, x.reasons);
    // An empty time is none (no dated read).
    if e.first_access.is_empty() || (!x.first_access.is_empty() && x.first_access < e.first_access)
    {
        e.first_access = x.first_access;
    }
    e.last_access = e.last_access.clone().max(x.last_access);
    e.statements += x.statements;
    e.rows = crate::access::add_rows(e.rows, x.rows);
    e.watchlisted |= x.watchlisted;
    e.evidence.extend(x.evidence);
    e.evidence.sort_by(|a, b| {
        (
            &a.time,
            &a.file,
            a.line,
            &a.account,
            &a.client_host,
            &a.session,
        )
            .cmp(&(
                &b.time,
                &b.file,
                b.line,
                &b.account,
                &b.client_host,
                &b.session,
            ))
    });
    e.evidence.truncate(SUBSCRIBER_EVIDENCE_CAP);
    e.evidence_total += x.evidence_total;
}

/// The identifier a person is reported under: the MSISDN (what a notification goes to), else
/// the IMSI, the ICCID, the IMEI.
fn main_identifier(members: &[SubscriberId]) -> &SubscriberId {
    let rank = |k: IdKind| match k {
        IdKind::Msisdn => 0,
        IdKind::Imsi => 1,
        IdKind::Iccid => 2,
        IdKind::Imei => 3,
    };
    members
        .iter()
        .min_by_key(|i| (rank(i.kind), &i.value))
        .expect("a person has identifiers")
}

impl Exposure {
    /// Builds the exposure from the aggregates and the detections' judgement, one entry per
    /// person the judgement saw.
    pub fn build(
        agg: &Aggregates,
        judgement: &Judgement,
        watch: &Watchlist,
        selection: &Selection,
    ) -> Exposure {
        let persons = &judgement.reasons.persons;
        // A person watchlisted under one identifier is under all (as the detections judged).
        let linked;
        let watch = if persons.is_empty() || watch.ids.is_empty() {
            watch
        } else {
            linked = watch.linked(persons);
            &linked
        };
        // Keyed by the person's main identifier (an identifier alone is its own).
        let main_of = |s: &SubscriberId| -> SubscriberId {
            persons
                .of(s)
                .map(|p| *main_identifier(persons.members(p)))
                .unwrap_or_else(|| *s)
        };
        let mut subs: BTreeMap<SubscriberId, Acc> = BTreeMap::new();
        let selected_mode = selection.is_set();
        let reasons = &judgement.reasons;
        // Called for every subscriber entry: keys are built only for maps that hold some (a
        // run without findings looks nothing up).
        let reasons_of = |a: &Arc<str>, s: &SubscriberId, d, sess: &Arc<Session>| {
            let mut r: Vec<String> = Vec::new();
            if !reasons.day_reasons.is_empty()
                && let Some(k) = reasons.day_reasons.get(&(Arc::clone(a), d))
            {
                r.extend(k.iter().cloned());
            }
            if !reasons.session_reasons.is_empty()
                && let Some(k) = reasons
                    .session_reasons
                    .get(&(Arc::clone(a), d, Arc::clone(sess)))
            {
                r.extend(k.iter().cloned());
            }
            if !reasons.subject_reasons.is_empty()
                && let Some(k) =
                    reasons
                        .subject_reasons
                        .get(&(Arc::clone(a), sess.host.clone(), *s))
            {
                r.extend(k.iter().cloned());
            }
            if !reasons.watch_reasons.is_empty()
                && watch.ids.contains_key(s)
                && let Some(k) = reasons.watch_reasons.get(&(Arc::clone(a), d))
            {
                r.push(k.clone());
            }
            r
        };
        let mut add = |a: &Arc<str>,
                       s: &SubscriberId,
                       sess: &Arc<Session>,
                       st: &SubjectStats,
                       reasons: Vec<String>| {
            let e = subs.entry(main_of(s)).or_default();
            if !e.read.contains(s) {
                e.read.insert(*s);
            }
            e.stats.merge_from(st);
            if let Some(h) = &sess.host {
                e.hosts.insert(Arc::clone(h));
            }
            e.accounts.insert(Arc::clone(a));
            e.reasons.extend(reasons);
            for ev in &st.evidence {
                e.evidence
                    .push((ev.clone(), Arc::clone(a), Some(Arc::clone(sess))));
            }
        };
        if selected_mode {
            for ((a, s, sess), st) in &agg.selected {
                let mut r = Vec::new();
                let from = (Arc::clone(a), *s, i32::MIN, Arc::default());
                for ((a2, s2, d, sess2), _) in crate::access::subjects_from(&agg.subjects, &from) {
                    if a2 != a || s2 != s {
                        break;
                    }
                    if sess2 == sess {
                        r.extend(reasons_of(a, s, *d, sess));
                    }
                }
                add(a, s, sess, st, r);
            }
        } else {
            for ((a, s, d, sess), st) in &agg.subjects {
                let r = reasons_of(a, s, *d, sess);
                if !r.is_empty() {
                    add(a, s, sess, st, r);
                }
            }
        }
        // Accounts: with alerts, or with subscribers in the report.
        let mut per_account: BTreeMap<Arc<str>, u64> = BTreeMap::new();
        for acc in subs.values() {
            for a in &acc.accounts {
                *per_account.entry(Arc::clone(a)).or_default() += 1;
            }
        }
        let mut names: BTreeSet<Arc<str>> = per_account.keys().cloned().collect();
        names.extend(judgement.reasons.account_alerts.keys().cloned());
        let mut accounts = Vec::new();
        for name in names {
            let mut hosts = BTreeSet::new();
            let mut programs = BTreeSet::new();
            let mut first = None;
            let mut last = None;
            let mut statements = 0;
            let mut bulk = Vec::new();
            for ((_, day), d) in agg
                .days
                .range((Arc::clone(&name), i32::MIN)..=(Arc::clone(&name), i32::MAX))
            {
                hosts.extend(d.hosts.keys().map(|h| h.to_string()));
                programs.extend(d.programs.keys().map(|h| h.to_string()));
                if let Some(f) = &d.first {
                    first = first.min(Some(f.time)).or(Some(f.time));
                }
                last = last.max(d.last);
                statements += d.statements;
                for ((table, kind), b) in &d.bulk {
                    if let Some(f) = &b.first {
                        bulk.push(BulkOut {
                            table: table.to_string(),
                            statement_kind: kind.as_str().to_owned(),
                            day: crate::detect::date_of_day(*day),
                            statements: b.statements,
                            rows: b.rows,
                            file: f.file.to_string(),
                            line: f.record,
                        });
                    }
                }
            }
            let reasons: Vec<AccountReason> = judgement
                .reasons
                .account_alerts
                .get(&name)
                .into_iter()
                .flatten()
                .map(|&i| {
                    let a = &judgement.alerts[i];
                    let get = |k: &str| {
                        a.event
                            .get_str(k)
                            .map(|v| v.into_owned())
                            .unwrap_or_default()
                    };
                    AccountReason {
                        alert: a.key(),
                        rule: a.rule.id.clone(),
                        level: a.level.as_str().to_owned(),
                        title: a.rule.title.clone(),
                        time: a.event.timestamp_rfc3339(),
                        observed: get("observed"),
                        expected: get("expected"),
                    }
                })
                .collect();
            let n = per_account.get(&name).copied().unwrap_or(0);
            let suspicious = n > 0
                || judgement
                    .reasons
                    .account_alerts
                    .get(&name)
                    .into_iter()
                    .flatten()
                    .any(|&i| judgement.alerts[i].level >= cellwarden_event::Level::Medium);
            accounts.push(AccountExposure {
                account: name.to_string(),
                suspicious,
                subscribers: n,
                client_hosts: hosts.into_iter().collect(),
                programs: programs.into_iter().collect(),
                first_activity: first.map(ts).unwrap_or_default(),
                last_activity: last.map(ts).unwrap_or_default(),
                statements,
                reasons,
                bulk,
            });
        }
        let mut subscribers: Vec<SubscriberExposure> = subs
            .into_iter()
            .map(|(id, mut acc)| {
                acc.evidence.sort();
                acc.evidence.dedup();
                let all: Vec<SubscriberId> = match persons.of(&id) {
                    Some(p) => persons.members(p).to_vec(),
                    None => vec![id],
                };
                let watched: Vec<&Option<String>> =
                    all.iter().filter_map(|i| watch.ids.get(i)).collect();
                SubscriberExposure {
                    id: id.value.to_string(),
                    id_kind: id.kind.as_str().to_owned(),
                    person: format!("{}:{}", id.kind, id.value),
                    identifiers: all
                        .iter()
                        .map(|i| IdentifierOut {
                            kind: i.kind.as_str().to_owned(),
                            id: i.value.to_string(),
                            read: acc.read.contains(i),
                        })
                        .collect(),
                    label: watched.iter().find_map(|l| (*l).clone()),
                    record_types: RecordType::of_bits(acc.stats.record_types)
                        .map(|t| t.as_str().to_owned())
                        .collect(),
                    accounts: acc.accounts.iter().map(|a| a.to_string()).collect(),
                    client_hosts: acc.hosts.iter().map(|h| h.to_string()).collect(),
                    first_access: acc.stats.first.map(ts).unwrap_or_default(),
                    last_access: acc.stats.last.map(ts).unwrap_or_default(),
                    statements: acc.stats.statements,
                    rows: acc.stats.rows,
                    watchlisted: !watched.is_empty(),
                    reasons: acc.reasons.into_iter().collect(),
                    evidence: acc
                        .evidence
                        .iter()
                        .take(SUBSCRIBER_EVIDENCE_CAP)
                        .map(|(e, a, sess)| evidence_out(e, a, sess.as_deref()))
                        .collect(),
                    evidence_total: acc.stats.statements,
                }
            })
            .collect();
        sort_subscribers(&mut subscribers);
        let prefix_lookups = agg
            .prefixes
            .iter()
            .filter(|((a, _, _), _)| {
                !selected_mode || selection.accounts.iter().any(|x| x.eq_ignore_ascii_case(a))
            })
            .map(|((a, k, p), (n, e))| PrefixLookup {
                account: a.to_string(),
                id_kind: k.as_str().to_owned(),
                prefix: p.clone(),
                statements: *n,
                first: evidence_out(e, a, None),
            })
            .collect();
        let mut alerts_by_rule = BTreeMap::new();
        for a in &judgement.alerts {
            *alerts_by_rule.entry(a.rule.id.clone()).or_default() += 1;
        }
        let c = &agg.counts;
        let summary = Summary {
            mode: if selected_mode {
                "selected"
            } else {
                "suspicious"
            }
            .to_owned(),
            selection: SelectionOut {
                accounts: selection.accounts.clone(),
                hosts: selection.hosts.clone(),
                since: selection.since.map(ts),
                until: selection.until.map(ts),
            },
            statements: c.statements,
            statements_with_subscribers: c.with_subscribers,
            statements_parsed_from_tokens: c.sql.fallback_statements,
            failed_statements: c.failed,
            statements_without_time: c.undated,
            bulk_statements: c.bulk,
            link_conflicts: persons.conflicts,
            alerts_by_rule,
            pseudonymised: false,
            ..Summary::default()
        };
        let mut x = Exposure {
            summary,
            subscribers,
            accounts,
            prefix_lookups,
            exfiltration: Vec::new(),
            signalling: Vec::new(),
        };
        x.count();
        x
    }

    /// Sets the summary's counts of the persons and accounts in the report.
    fn count(&mut self) {
        let (subscribers, t) = (&self.subscribers, &mut self.summary);
        t.subscribers_exposed = subscribers.len() as u64;
        t.identifiers_read = subscribers
            .iter()
            .map(|s| s.identifiers.iter().filter(|i| i.read).count() as u64)
            .sum();
        t.watchlisted_exposed = subscribers.iter().filter(|s| s.watchlisted).count() as u64;
        t.accounts_suspicious = self.accounts.iter().filter(|a| a.suspicious).count() as u64;
        t.first_access = subscribers.iter().map(|s| s.first_access.clone()).min();
        t.last_access = subscribers.iter().map(|s| s.last_access.clone()).max();
    }

    /// `person` of the entry holding an IMSI or MSISDN (as written in the report).
    pub fn person_of(&self, imsi: Option<&String>, msisdn: Option<&String>) -> Option<String> {
        self.subscribers
            .iter()
            .find(|s| {
                s.identifiers
                    .iter()
                    .any(|i| Some(&i.id) == imsi || Some(&i.id) == msisdn)
            })
            .map(|s| s.person.clone())
    }

    /// The reports of partitions of the accounts as one (state workers partitioned by account:
    /// each part built from the aggregates of its own accounts, judged with the view of every
    /// partition, before pseudonymisation). Gives what [`build`](Self::build) gives over all
    /// the aggregates: a person read by accounts of several parts is one entry, with their
    /// reads added and the earliest evidence of all; the counts of the summary are added or
    /// counted again. Transfers are left out (the caller joins them to the suspicious
    /// accounts of the whole); signalling is taken from each part as it is (one partition
    /// holds it), its entries linked again to the persons of the whole.
    pub fn merge(parts: Vec<Exposure>) -> Exposure {
        let mut persons: BTreeMap<String, SubscriberExposure> = BTreeMap::new();
        let mut accounts = Vec::new();
        let mut prefix_lookups = Vec::new();
        let mut signalling = Vec::new();
        let mut summary: Option<Summary> = None;
        for part in parts {
            let s = part.summary;
            match &mut summary {
                None => summary = Some(s),
                Some(t) => {
                    t.statements += s.statements;
                    t.statements_with_subscribers += s.statements_with_subscribers;
                    t.statements_parsed_from_tokens += s.statements_parsed_from_tokens;
                    t.failed_statements += s.failed_statements;
                    t.statements_without_time += s.statements_without_time;
                    t.bulk_statements += s.bulk_statements;
                    // Persons are linked over every partition's links: the same in each.
                    t.link_conflicts = t.link_conflicts.max(s.link_conflicts);
                    for (rule, n) in s.alerts_by_rule {
                        *t.alerts_by_rule.entry(rule).or_default() += n;
                    }
                    t.pseudonymised |= s.pseudonymised;
                }
            }
            for x in part.subscribers {
                match persons.get_mut(&x.person) {
                    None => {
                        persons.insert(x.person.clone(), x);
                    }
                    Some(e) => merge_subscriber(e, x),
                }
            }
            accounts.extend(part.accounts);
            prefix_lookups.extend(part.prefix_lookups);
            signalling.extend(part.signalling);
        }
        let mut subscribers: Vec<SubscriberExposure> = persons.into_values().collect();
        sort_subscribers(&mut subscribers);
        // Each account is in one part, in order there.
        accounts.sort_by(|a, b| a.account.cmp(&b.account));
        prefix_lookups.sort_by(|a, b| a.account.cmp(&b.account));
        let mut x = Exposure {
            summary: summary.unwrap_or_default(),
            subscribers,
            accounts,
            prefix_lookups,
            exfiltration: Vec::new(),
            signalling: Vec::new(),
        };
        for t in &mut signalling {
            t.person = x.person_of(t.imsi.as_ref(), t.msisdn.as_ref());
        }
        x.signalling = signalling;
        x.count();
        x
    }

    /// Replaces every subscriber identifier (and identifier prefix) with `pseudonym(kind,
    /// value)`, and drops watchlist labels (they name people).
    pub fn pseudonymise(&mut self, pseudonym: &dyn Fn(&str, &str) -> String) {
        for s in &mut self.subscribers {
            s.id = pseudonym(&s.id_kind, &s.id);
            s.person = pseudonym("person", &s.person);
            for i in &mut s.identifiers {
                i.id = pseudonym(&i.kind, &i.id);
            }
            s.label = None;
        }
        for p in &mut self.prefix_lookups {
            p.prefix = pseudonym(&format!("{}-prefix", p.id_kind), &p.prefix);
        }
        for t in &mut self.signalling {
            t.imsi = t.imsi.as_ref().map(|v| pseudonym("imsi", v));
            t.msisdn = t.msisdn.as_ref().map(|v| pseudonym("msisdn", v));
            t.person = t.person.as_ref().map(|v| pseudonym("person", v));
        }
        self.summary.pseudonymised = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Collector;
    use crate::detect::{DbConfig, judge};
    use crate::ids::Numbering;
    use crate::schema::Schema;

    fn run(selection: Selection, watch: &Watchlist) -> Exposure {
        let ev = crate::access::tests::db_event;
        let mut evs = Vec::new();
        // A care agent, normal (forty customers a day); an intruder reading two targets on
        // four days at night from a jump host; the same intruder touches one more subscriber
        // once.
        for day in 1..=5 {
            for k in 0..40 {
                evs.push(ev(
                    &format!("2026-03-0{day}T10:{k:02}:00Z"),
                    "care1",
                    "10.0.0.1",
                    &format!("SELECT * FROM subscriber WHERE msisdn = '33611000{day}{k:02}'"),
                    day as u64,
                ));
            }
        }
        for day in 2..=5 {
            for t in ["33699990001", "33699990002"] {
                evs.push(ev(
                    &format!("2026-03-0{day}T02:00:00Z"),
                    "svc_bill",
                    "10.9.9.9",
                    &format!(
                        "SELECT * FROM cdr WHERE calling_number = '{t}' OR called_number = '{t}'"
                    ),
                    100 + day as u64,
                ));
            }
        }
        evs.push(ev(
            "2026-03-05T02:30:00Z",
            "svc_bill",
            "10.9.9.9",
            "SELECT * FROM cdr WHERE imsi = '208150123456789'",
            200,
        ));
        let mut c = Collector::new(
            Arc::new(Schema::default()),
            Arc::new(selection.clone()),
            1000,
        );
        for e in &evs {
            c.observe(e);
        }
        let mut agg = c.into_aggregates();
        agg.finish();
        let j = judge(&agg, watch, &DbConfig::default());
        Exposure::build(&agg, &j, watch, &selection)
    }

    #[test]
    fn a_shared_service_account_exposes_only_the_intruders_sessions() {
        let ev = crate::access::tests::db_event;
        let mut evs = Vec::new();
        // The application reads 20 customers a day from its own host for a week...
        let mut line = 0;
        for day in 1..=7u64 {
            for i in 0..20u64 {
                line += 1;
                evs.push(ev(
                    &format!("2026-03-0{day}T1{}:00:00Z", i % 8),
                    "crm_app",
                    "10.20.0.5",
                    &format!(
                        "SELECT * FROM subscriber WHERE msisdn = '3361{:07}'",
                        day * 100 + i
                    ),
                    line,
                ));
            }
        }
        // ...and on the last day the same account reads two people's call records from a
        // host it never used.
        for t in ["33699990001", "33699990002"] {
            line += 1;
            evs.push(ev(
                "2026-03-07T11:30:00Z",
                "crm_app",
                "10.30.5.17",
                &format!("SELECT * FROM cdr WHERE calling_number = '{t}'"),
                line,
            ));
        }
        let mut c = Collector::new(
            Arc::new(Schema::default()),
            Arc::new(Selection::default()),
            1000,
        );
        for e in &evs {
            c.observe(e);
        }
        let mut agg = c.into_aggregates();
        agg.finish();
        let watch = Watchlist::default();
        let j = judge(&agg, &watch, &DbConfig::default());
        let x = Exposure::build(&agg, &j, &watch, &Selection::default());
        let ids: Vec<&str> = x.subscribers.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, vec!["33699990001", "33699990002"]);
        assert_eq!(x.subscribers[0].client_hosts, vec!["10.30.5.17"]);
        assert_eq!(
            x.subscribers[0].evidence[0].client_host.as_deref(),
            Some("10.30.5.17")
        );
    }

    #[test]
    fn suspicious_mode_lists_targets_with_reasons_and_evidence() {
        let x = run(Selection::default(), &Watchlist::default());
        let ids: Vec<&str> = x.subscribers.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, vec!["33699990001", "33699990002"], "{:#?}", x.accounts);
        let s = &x.subscribers[0];
        assert_eq!(s.accounts, vec!["svc_bill"]);
        assert_eq!(s.statements, 4);
        assert_eq!(s.record_types, vec!["cdr"]);
        assert!(
            s.reasons
                .iter()
                .any(|r| r.starts_with("cellwarden.db.targeted_lookup:"))
        );
        assert_eq!(s.evidence.len(), 4);
        assert_eq!(s.evidence[0].file, "db.log");
        assert_eq!(s.rows, None);
        let acc = x.accounts.iter().find(|a| a.account == "svc_bill").unwrap();
        assert!(acc.suspicious);
        assert_eq!(x.summary.mode, "suspicious");
        assert!(x.accounts.iter().all(|a| a.account != "care1"));
    }

    #[test]
    fn selected_mode_lists_everything_the_account_read_in_range() {
        let sel = Selection {
            accounts: vec!["SVC_BILL".into()],
            since: "2026-03-05T00:00:00Z".parse().ok(),
            ..Default::default()
        };
        let (w, _) = Watchlist::parse("imsi:208150123456789 VIP", &Numbering::default());
        let mut x = run(sel, &w);
        assert_eq!(x.summary.mode, "selected");
        assert_eq!(x.subscribers.len(), 3);
        // Watchlisted first.
        assert_eq!(x.subscribers[0].id, "208150123456789");
        assert!(x.subscribers[0].watchlisted);
        assert_eq!(x.subscribers[0].label.as_deref(), Some("VIP"));
        assert!(
            x.subscribers
                .iter()
                .all(|s| s.first_access.starts_with("2026-03-05"))
        );
        x.pseudonymise(&|k, v| format!("P({k}:{})", v.len()));
        assert_eq!(x.subscribers[0].id, "P(imsi:15)");
        assert_eq!(x.subscribers[0].label, None);
        assert!(x.summary.pseudonymised);
    }
}
