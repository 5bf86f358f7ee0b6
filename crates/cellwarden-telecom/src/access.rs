//! Who read whose records: database audit events reduced to per-account and per-subscriber
//! aggregates, from which the detections ([`crate::detect`]) and the exposure
//! ([`crate::exposure`]) are computed.
//!
//! Aggregation is commutative (sums, minimums, set unions, the earliest evidence kept), so
//! each worker thread keeps its own [`Aggregates`] and they are merged at the end in any
//! order with the same result. State (bytes are approximate, 64-bit):
//! - per account and day ([`DayStats`]): about 300 bytes, plus about 80 per distinct client
//!   host, program, record type and bulk/export table seen that day;
//! - per subscriber, account and day ([`SubjectStats`]): about 200 bytes, plus at most
//!   [`EVIDENCE_CAP`] pieces of evidence (40 bytes each, the first inline);
//! - per worker: the SQL fingerprint cache ([`crate::sql::CACHE_CAPACITY`] shapes);
//! - per worker, until folded into the above: about 100 bytes per subscriber read and 72 per
//!   visit (a session's statements in a row), at most 2^21 of each or as many as the state a
//!   fold walks.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap as HashMap;
use std::borrow::Cow;
use std::sync::Arc;

use cellwarden_event::{Event, Timestamp};

use crate::ids::{IdKind, SubscriberId};
use crate::repeats::{FoldKey, Folder};
use crate::schema::{Basis, ColumnKind, Observed, RecordType, Schema};
use crate::sql::{Analyzer, Dialect, Shape, StatementKind};

/// Interned strings held before the unused ones are dropped.
const INTERN_LIMIT: usize = if cfg!(test) { 64 } else { 100_000 };

/// Evidence kept per subscriber, account and day (the earliest ones); the total is counted.
pub const EVIDENCE_CAP: usize = 5;

/// Days since 1970-01-01 (UTC).
pub use cellwarden_analytics::stats::{Day, day_of, hour_of};

/// Where an access was logged.
#[derive(
    serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub struct Evidence {
    /// Time of the statement.
    pub time: Timestamp,
    /// Log file.
    pub file: Arc<str>,
    /// Line (text formats) or record number.
    pub record: u64,
}

/// The earliest evidence of a subscriber's reads: most subscribers are read once a day, so
/// the first piece is held inline (no allocation per subscriber).
pub type EvidenceList = smallvec::SmallVec<[Evidence; 1]>;

fn keep_earliest(v: &mut EvidenceList, e: Evidence, cap: usize) {
    let at = v.partition_point(|x| *x < e);
    if at < cap && v.get(at) != Some(&e) {
        v.insert(at, e);
        v.truncate(cap);
    }
}

pub(crate) fn min_evidence(slot: &mut Option<Evidence>, e: &Evidence) {
    if slot.as_ref().is_none_or(|s| e < s) {
        *slot = Some(e.clone());
    }
}

/// Where statements came from: the client host and the server's session (connection id,
/// `%c` session id, or the backend's pid) as far as the log names them. Statements of one
/// account from one host in one session share it; a log that names neither gives one session
/// per account and day.
#[derive(
    serde::Serialize,
    serde::Deserialize,
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
)]
pub struct Session {
    /// Client host.
    pub host: Option<Arc<str>>,
    /// Session id, connection id or backend pid.
    pub id: Option<Arc<str>>,
}

impl std::fmt::Display for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.host, &self.id) {
            (Some(h), Some(i)) => write!(f, "{h} session {i}"),
            (Some(h), None) => write!(f, "{h}"),
            (None, Some(i)) => write!(f, "session {i}"),
            (None, None) => write!(f, "unnamed session"),
        }
    }
}

/// One session's activity on one day (per account).
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Default)]
pub struct SessionStats {
    /// Bit `h` set: active in UTC hour `h`.
    pub hours: u32,
    /// Client programs named (sorted; usually one).
    pub programs: smallvec::SmallVec<[Arc<str>; 1]>,
    /// Record types read (a bit per [`RecordType`]).
    pub record_bits: u8,
}

impl SessionStats {
    fn merge(&mut self, o: SessionStats) {
        self.hours |= o.hours;
        for p in o.programs {
            if let Err(at) = self.programs.binary_search(&p) {
                self.programs.insert(at, p);
            }
        }
        self.record_bits |= o.record_bits;
    }
}

/// Whole-table reads and exports of one table by one account on one day.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Default)]
pub struct BulkStats {
    /// Statements.
    pub statements: u64,
    /// Sum of logged row counts; `None` when no statement logged one.
    pub rows: Option<i64>,
    /// The first of them.
    pub first: Option<Evidence>,
    /// The first statement, cut to 300 characters.
    pub excerpt: String,
    /// Sessions that made them (sorted).
    pub sessions: Vec<Arc<Session>>,
}

/// One account's activity on one day.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Default)]
pub struct DayStats {
    /// Statements.
    pub statements: u64,
    /// Statements the server reports as failed.
    pub failed: u64,
    /// Bit `h` set: active in UTC hour `h`.
    pub hours: u32,
    /// The first statement.
    pub first: Option<Evidence>,
    /// Time of the last statement.
    pub last: Option<Timestamp>,
    /// Client hosts and programs, each with its first evidence that day.
    pub hosts: BTreeMap<Arc<str>, Evidence>,
    /// Client programs, each with its first evidence that day.
    pub programs: BTreeMap<Arc<str>, Evidence>,
    /// Record types read, with the first evidence.
    pub record_types: BTreeMap<RecordType, Evidence>,
    /// (table, statement kind) of whole-table reads and exports.
    pub bulk: BTreeMap<(Arc<str>, StatementKind), BulkStats>,
    /// Distinct subscribers read (counted when merged).
    pub subscribers: u64,
    /// Sessions, with what each did.
    pub sessions: BTreeMap<Arc<Session>, SessionStats>,
}

/// One subscriber's records read by one account on one day in one session (whose key names
/// the client host).
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Default)]
pub struct SubjectStats {
    /// Record types read (a bit per [`RecordType`]).
    pub record_types: u8,
    /// First read that day.
    pub first: Option<Timestamp>,
    /// Last read that day.
    pub last: Option<Timestamp>,
    /// Statements that selected the subscriber.
    pub statements: u64,
    /// Sum of the row counts of the statements that selected the subscriber, when logged.
    pub rows: Option<i64>,
    /// The first statements (capped).
    pub evidence: EvidenceList,
}

impl SubjectStats {
    /// Counts one statement.
    fn add(&mut self, record_bits: u8, time: Timestamp, rows: Option<i64>, evidence: &Evidence) {
        self.record_types |= record_bits;
        self.first = min_opt(self.first, Some(time));
        self.last = self.last.max(Some(time));
        self.statements += 1;
        self.rows = add_rows(self.rows, rows);
        if self.evidence.len() < EVIDENCE_CAP || self.evidence.last().is_some_and(|l| evidence < l)
        {
            keep_earliest(&mut self.evidence, evidence.clone(), EVIDENCE_CAP);
        }
    }

    /// Adds another's counts (a copy).
    pub fn merge_from(&mut self, o: &SubjectStats) {
        self.merge(o.clone());
    }

    fn merge(&mut self, o: SubjectStats) {
        self.record_types |= o.record_types;
        self.first = min_opt(self.first, o.first);
        self.last = self.last.max(o.last);
        self.statements += o.statements;
        self.rows = add_rows(self.rows, o.rows);
        for e in o.evidence {
            keep_earliest(&mut self.evidence, e, EVIDENCE_CAP);
        }
    }
}

fn min_opt<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

pub(crate) fn add_rows(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.saturating_add(b)),
        (a, b) => a.or(b),
    }
}

/// A user or role created, or granted rights, by a statement in the logs.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Created {
    /// Lowercase.
    pub principal: String,
    /// `CREATE USER`/`ROLE` or `GRANT`.
    pub kind: StatementKind,
    /// The account that ran it.
    pub by: Arc<str>,
    /// Where it is logged.
    pub evidence: Evidence,
}

/// LIKE lookups on identifier columns: (account, kind, digits before the wildcard).
pub type PrefixKey = (Arc<str>, IdKind, String);

/// Restricts exposure to accesses by given accounts or client hosts in a time range (the
/// responder already knows what was compromised).
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Compared case-insensitively.
    pub accounts: Vec<String>,
    /// Client hosts, compared case-insensitively.
    pub hosts: Vec<String>,
    /// Start of the time range.
    pub since: Option<Timestamp>,
    /// End of the time range (inclusive).
    pub until: Option<Timestamp>,
}

impl Selection {
    /// Whether anything restricts the selection to accounts or hosts.
    pub fn is_set(&self) -> bool {
        !self.accounts.is_empty() || !self.hosts.is_empty()
    }

    fn in_range(&self, t: Timestamp) -> bool {
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t <= u)
    }

    fn selects(&self, account: &str, host: Option<&str>, t: Timestamp) -> bool {
        let by_account = self
            .accounts
            .iter()
            .any(|a| a.eq_ignore_ascii_case(account));
        let by_host = host.is_some_and(|h| self.hosts.iter().any(|x| x.eq_ignore_ascii_case(h)));
        (by_account || by_host) && self.in_range(t)
    }
}

/// Counters of database statements seen.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, Default)]
pub struct AccessCounts {
    /// Database statements.
    pub statements: u64,
    /// Statements without a time (not analysed further).
    pub undated: u64,
    /// Statements that failed (non-zero return code): counted, not treated as reads.
    pub failed: u64,
    /// Statements that selected at least one subscriber.
    pub with_subscribers: u64,
    /// Whole-table reads and exports of record tables.
    pub bulk: u64,
    /// Statements the SQL analyser failed on (an internal error, reported on stderr); skipped.
    pub unanalysed: u64,
    /// Audit records of a statement counted already: MySQL Enterprise Audit's `table_access`
    /// records after the first and its `general` record, Oracle's records of its other
    /// objects.
    #[serde(default)]
    pub repeats: u64,
    /// SQL analyser counters.
    pub sql: crate::sql::SqlStats,
}

/// (account, subscriber, day, session).
pub type SubjectKey = (Arc<str>, SubscriberId, Day, Arc<Session>);

/// Per-subscriber reads in key order, without duplicate keys. A sorted vector rather than a
/// tree: it is built once from a sort and then only walked in order or searched
/// ([`subjects_from`]).
pub type Subjects = Vec<(SubjectKey, SubjectStats)>;

/// The entries of `subjects` from the first key not before `from`.
pub fn subjects_from<'a>(
    subjects: &'a [(SubjectKey, SubjectStats)],
    from: &SubjectKey,
) -> &'a [(SubjectKey, SubjectStats)] {
    &subjects[subjects.partition_point(|(k, _)| k < from)..]
}

/// Everything gathered from database audit events.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct Aggregates {
    /// (account, day) → activity.
    pub days: BTreeMap<(Arc<str>, Day), DayStats>,
    /// (account, subscriber, day, session) → reads, in key order.
    pub subjects: Subjects,
    /// Accesses matching the [`Selection`], per account, subscriber and session.
    pub selected: BTreeMap<(Arc<str>, SubscriberId, Arc<Session>), SubjectStats>,
    /// Users and roles created or granted rights.
    pub created: Vec<Created>,
    /// Prefix lookups: key → (statements, first evidence).
    pub prefixes: BTreeMap<PrefixKey, (u64, Evidence)>,
    /// Tables and columns seen, for the inferred schema.
    pub observed: Observed,
    /// Counters.
    pub counts: AccessCounts,
    /// The program most used by each account (for peer groups): (account, program) → n.
    pub programs: BTreeMap<(Arc<str>, Arc<str>), u64>,
    /// Identifiers shown together as one row's (see [`crate::persons`]): pair → statements.
    /// Grows with distinct pairs (about the subscriber base), not with statements.
    pub links: BTreeMap<(SubscriberId, SubscriberId), u64>,
}

impl Aggregates {
    /// Merges another worker's aggregates (commutative).
    pub fn merge(&mut self, o: Aggregates) {
        // Account-days and subscriber entries are merged at once, on two threads when large:
        // this is a serial step at the end of a run. (Splitting the entries' merge in two
        // halves as well gained nothing measurable and held about 12 % more memory.)
        let (days, subjects) = (&mut self.days, &mut self.subjects);
        let add_subjects = |subjects: &mut Subjects, more: Subjects| {
            *subjects = merge_sorted_by(std::mem::take(subjects), more, cmp_subject_keys);
        };
        if subjects.len() + o.subjects.len() >= PARALLEL_MERGE {
            std::thread::scope(|s| {
                let d = s.spawn(move || merge_days(days, o.days));
                add_subjects(subjects, o.subjects);
                d.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            });
        } else {
            merge_days(days, o.days);
            add_subjects(subjects, o.subjects);
        }
        // A broad selection (a whole application account) can be large: merged in one pass.
        if !o.selected.is_empty() {
            let a = std::mem::take(&mut self.selected).into_iter().collect();
            self.selected = merge_sorted(a, o.selected.into_iter().collect())
                .into_iter()
                .collect();
        }
        self.created.extend(o.created);
        for (k, (n, e)) in o.prefixes {
            let slot = self.prefixes.entry(k).or_insert((0, e.clone()));
            slot.0 += n;
            if e < slot.1 {
                slot.1 = e;
            }
        }
        self.observed.merge(o.observed);
        let c = &mut self.counts;
        c.statements += o.counts.statements;
        c.undated += o.counts.undated;
        c.failed += o.counts.failed;
        c.with_subscribers += o.counts.with_subscribers;
        c.bulk += o.counts.bulk;
        c.unanalysed += o.counts.unanalysed;
        c.repeats += o.counts.repeats;
        c.sql.statements += o.counts.sql.statements;
        c.sql.cache_hits += o.counts.sql.cache_hits;
        c.sql.fallback_shapes += o.counts.sql.fallback_shapes;
        c.sql.fallback_statements += o.counts.sql.fallback_statements;
        for (k, n) in o.programs {
            *self.programs.entry(k).or_default() += n;
        }
        for (k, n) in o.links {
            *self.links.entry(k).or_default() += n;
        }
    }

    /// Forgets the days before `day`, as [`Collector::evict_before`] does.
    pub fn evict_before(&mut self, day: Day) {
        self.subjects.retain(|((_, _, d, _), _)| *d >= day);
        self.days.retain(|(_, d), _| *d >= day);
        self.created.retain(|c| day_of(c.evidence.time) >= day);
        self.prefixes.retain(|_, (_, e)| day_of(e.time) >= day);
    }

    /// Puts the merged aggregates in their final order and counts distinct subscribers per
    /// account and day.
    pub fn finish(&mut self) {
        self.created.sort();
        self.created.dedup();
        // Keys are ordered by account, subscriber and day: one count per run of sessions,
        // added up per day while the account's run lasts and then written to its days.
        let days = &mut self.days;
        let mut flush = |account: &Arc<str>, per_day: &mut HashMap<Day, u64>| {
            for (d, n) in per_day.drain() {
                if let Some(s) = days.get_mut(&(Arc::clone(account), d)) {
                    s.subscribers += n;
                }
            }
        };
        let mut per_day: HashMap<Day, u64> = HashMap::default();
        let mut last: Option<(&Arc<str>, &SubscriberId, Day)> = None;
        for ((a, sub, d, _), _) in &self.subjects {
            // `==` on `Arc<str>` compares pointers before bytes (std does so for `T: Eq`).
            let same_account = last.is_some_and(|(la, _, _)| la == a);
            if same_account && last.is_some_and(|(_, ls, ld)| ls == sub && ld == *d) {
                continue;
            }
            if !same_account && let Some((la, _, _)) = last {
                flush(la, &mut per_day);
            }
            last = Some((a, sub, *d));
            *per_day.entry(*d).or_default() += 1;
        }
        if let Some((la, _, _)) = last {
            flush(la, &mut per_day);
        }
    }
}

/// Entries from which account-days and subscriber entries are merged on two threads.
const PARALLEL_MERGE: usize = 200_000;

/// Compares subscriber entries' keys as their `Ord` does, without reading the account's or
/// session's contents when both sides hold the same copy (as one collector's do).
fn cmp_subject_keys(a: &SubjectKey, b: &SubjectKey) -> std::cmp::Ordering {
    fn arcs<T: Ord + ?Sized>(x: &Arc<T>, y: &Arc<T>) -> std::cmp::Ordering {
        if Arc::ptr_eq(x, y) {
            std::cmp::Ordering::Equal
        } else {
            x.cmp(y)
        }
    }
    arcs(&a.0, &b.0)
        .then(a.1.cmp(&b.1))
        .then(a.2.cmp(&b.2))
        .then_with(|| arcs(&a.3, &b.3))
}

/// Merges two key-ordered lists of subject stats in one pass.
fn merge_sorted<K: Ord>(
    a: Vec<(K, SubjectStats)>,
    b: Vec<(K, SubjectStats)>,
) -> Vec<(K, SubjectStats)> {
    merge_sorted_by(a, b, K::cmp)
}

/// [`merge_sorted`] with the keys' order given.
fn merge_sorted_by<K>(
    a: Vec<(K, SubjectStats)>,
    b: Vec<(K, SubjectStats)>,
    cmp: impl Fn(&K, &K) -> std::cmp::Ordering,
) -> Vec<(K, SubjectStats)> {
    if b.is_empty() {
        return a;
    }
    if a.is_empty() {
        return b;
    }
    let mut out: Vec<(K, SubjectStats)> = Vec::with_capacity(a.len() + b.len());
    merge_runs(a, b, &mut out, cmp, SubjectStats::merge);
    out
}

/// Appends to `out` the entries of two key-ordered sequences in key order, `f` adding the
/// value of a key in both to the first's.
fn merge_runs<K, V>(
    a: impl IntoIterator<Item = (K, V)>,
    b: impl IntoIterator<Item = (K, V)>,
    out: &mut Vec<(K, V)>,
    cmp: impl Fn(&K, &K) -> std::cmp::Ordering,
    f: impl Fn(&mut V, V),
) {
    let (mut x, mut y) = (a.into_iter().peekable(), b.into_iter().peekable());
    loop {
        let take_x = match (x.peek(), y.peek()) {
            (Some((kx, _)), Some((ky, _))) => match cmp(kx, ky) {
                std::cmp::Ordering::Less => true,
                std::cmp::Ordering::Greater => false,
                std::cmp::Ordering::Equal => {
                    let (k, mut v) = x.next().expect("peeked");
                    let (_, w) = y.next().expect("peeked");
                    f(&mut v, w);
                    out.push((k, v));
                    continue;
                }
            },
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        out.extend(if take_x { x.next() } else { y.next() });
    }
}

/// Adds `more` account-days to `into`.
fn merge_days(
    into: &mut BTreeMap<(Arc<str>, Day), DayStats>,
    more: BTreeMap<(Arc<str>, Day), DayStats>,
) {
    for (k, d) in more {
        match into.get_mut(&k) {
            None => {
                into.insert(k, d);
            }
            Some(s) => {
                s.statements += d.statements;
                s.failed += d.failed;
                s.hours |= d.hours;
                if let Some(f) = &d.first {
                    min_evidence(&mut s.first, f);
                }
                s.last = s.last.max(d.last);
                for (h, e) in d.hosts {
                    merge_first(&mut s.hosts, h, &e);
                }
                for (h, e) in d.programs {
                    merge_first(&mut s.programs, h, &e);
                }
                for (h, e) in d.record_types {
                    merge_first(&mut s.record_types, h, &e);
                }
                for (k, b) in d.bulk {
                    let t = s.bulk.entry(k).or_default();
                    t.statements += b.statements;
                    t.rows = add_rows(t.rows, b.rows);
                    t.sessions.extend(b.sessions);
                    t.sessions.sort();
                    t.sessions.dedup();
                    if let Some(f) = b.first
                        && t.first.as_ref().is_none_or(|x| f < *x)
                    {
                        t.first = Some(f);
                        t.excerpt = b.excerpt;
                    }
                }
                let mine = std::mem::take(&mut s.sessions);
                s.sessions = merge_maps(mine, d.sessions, SessionStats::merge);
            }
        }
    }
}

/// Two maps as one, `f` adding the values of a key in both: in one pass over both when they
/// are of a size (an account-day's sessions in two workers' states: hundreds each, merged
/// key by key they were most of the final merge), key by key into the larger otherwise.
fn merge_maps<K: Ord, V>(
    mut a: BTreeMap<K, V>,
    mut b: BTreeMap<K, V>,
    f: impl Fn(&mut V, V),
) -> BTreeMap<K, V> {
    if a.len() < b.len() {
        std::mem::swap(&mut a, &mut b);
    }
    if b.len() * 16 < a.len() {
        for (k, v) in b {
            match a.entry(k) {
                std::collections::btree_map::Entry::Occupied(mut o) => f(o.get_mut(), v),
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(v);
                }
            }
        }
        return a;
    }
    let mut out = Vec::with_capacity(a.len() + b.len());
    merge_runs(a, b, &mut out, K::cmp, f);
    // Built from keys in order: no comparison of keys beyond the check that they are.
    out.into_iter().collect()
}

fn merge_first<K: Ord>(m: &mut BTreeMap<K, Evidence>, k: K, e: &Evidence) {
    match m.get_mut(&k) {
        Some(x) if *e < *x => *x = e.clone(),
        Some(_) => {}
        None => {
            m.insert(k, e.clone());
        }
    }
}

/// What is derived once per statement shape from the schema.
struct Derived {
    /// Keeps the shape alive so its address is not reused while cached.
    _shape: Arc<Shape>,
    record_bits: u8,
    /// Large record tables read.
    large: Arc<[Arc<str>]>,
    /// Record tables read (any record type).
    record_tables: Arc<[Arc<str>]>,
    /// Per predicate: what its column holds.
    columns: Vec<Option<(ColumnKind, Basis)>>,
    /// Per predicate: whether its table (or the statement's) is a record table.
    record_pred: Vec<bool>,
    /// Per predicate: (table, column) shown in the schema inference, once an identifier
    /// was found there.
    shown: Vec<Option<(String, String)>>,
    /// Per row of the shape, per value: the identifier kind of its column (named or
    /// configured identifier columns only: a value's shape is too loose to link people by).
    row_kinds: Vec<Vec<Option<ColumnKind>>>,
    /// Statements of this shape since it was cached (table counts for the inference).
    uses: u64,
}

/// Gathers [`Aggregates`] from events; one per worker thread.
pub struct Collector {
    schema: Arc<Schema>,
    selection: Arc<Selection>,
    bulk_min_rows: i64,
    analyzer: Analyzer,
    derived: HashMap<usize, Derived>,
    interned: HashMap<Box<str>, Arc<str>>,
    /// Size at which unused interned strings are dropped (doubles while most are in use).
    intern_limit: usize,
    /// Subscriber reads not folded into `subject_stats` yet (see [`Read`]).
    reads: Vec<Read>,
    /// Per-subscriber entries folded so far, in key order.
    subject_stats: Subjects,
    /// Log files named by `reads` and `visits`, by address; the last one added.
    files: HashMap<Addr, Arc<str>>,
    last_file: Addr,
    /// Accesses matching the selection, keyed by the addresses of the interned account and
    /// session.
    selected: HashMap<(Addr, SubscriberId, Addr), SelectedStats>,
    /// Sessions by a hash of their host's and id's text, found without interning either
    /// (most statements are of a session seen before); a collision shares the bucket.
    sessions: HashMap<u64, smallvec::SmallVec<[Arc<Session>; 1]>>,
    /// Account-days; their sessions, hosts, programs and record types are folded in from
    /// `visits`.
    days: HashMap<(Addr, Day), (Arc<str>, DayStats)>,
    /// Statements not folded into their account-day yet (see [`Visit`]).
    visits: Vec<Visit>,
    /// Visits still open, a slot per session and day: a statement its slot's visit
    /// [absorbs](Visit::absorbs) joins it, any other closes it (to `visits`) and takes the
    /// slot. Emptied by every fold.
    recent: Vec<Option<Visit>>,
    /// (account, program) → statements.
    programs: HashMap<(Addr, Addr), ProgramCount>,
    /// Per input file, the statement each session's audit records are of (see
    /// [`crate::repeats`]), when their order is not decided elsewhere.
    folders: HashMap<Arc<str>, Folder>,
    aggregates: Aggregates,
}

/// One subscriber read by one statement, appended as it comes and folded into the key-ordered
/// entries later ([`Collector::fold`]): most reads name a key not seen before, and a hash
/// entry per read cost a cache miss or two and a growing table, where appending and one sort
/// at the end cost a fraction. The addresses are of values that stay held until the fold:
/// the account by its account-day, the session by the session map, the file by `files`.
#[derive(Clone, Copy)]
struct Read {
    account: Addr,
    id: SubscriberId,
    day: Day,
    session: Addr,
    time: Timestamp,
    file: Addr,
    record: u64,
    rows: Option<i64>,
    record_bits: u8,
}

impl Read {
    /// Its order once the addresses are replaced by ranks: its key's, then its evidence's.
    fn order(&self) -> (Addr, SubscriberId, Day, Addr, Timestamp, Addr, u64) {
        let r = self;
        (r.account, r.id, r.day, r.session, r.time, r.file, r.record)
    }
}

/// What statements tell of their account-day: their session, program, hours and the record
/// types they read (none when they failed), and where the first is logged. Appended and
/// folded later like [`Read`]s: a session-day is often new (pooled connections, short
/// sessions), and a hash entry for it per statement cost more than the rest of the
/// account-day's state. A session's statements in a row make one visit while they add no
/// record type ([`Collector::recent`]).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Visit {
    account: Addr,
    day: Day,
    session: Addr,
    /// 0: none.
    program: Addr,
    /// Bit `h` set: a statement in UTC hour `h`.
    hours: u32,
    record_bits: u8,
    at: At,
}

/// Where a statement is logged: ordered as [`Evidence`] once the file is its rank.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct At {
    time: Timestamp,
    file: Addr,
    record: u64,
}

impl Visit {
    /// Whether `later` can be told as part of this visit: the same session-day, program and
    /// file, logged after it, and no record type this one has not (whose first evidence would
    /// be this visit's place instead of its own).
    fn absorbs(&self, later: &Visit) -> bool {
        let (a, b) = (self, later);
        a.account == b.account
            && a.day == b.day
            && a.session == b.session
            && a.program == b.program
            && b.record_bits & !a.record_bits == 0
            && a.at.file == b.at.file
            && (b.at.time, b.at.record) >= (a.at.time, a.at.record)
    }
}

/// Slots of [`Collector::recent`]: a few times the sessions a busy server has open at once.
const RECENT_VISITS: usize = 4096;

/// Reads (about 100 bytes each) or visits (72) gathered before a fold, unless the state a
/// fold walks is larger ([`Collector::fold_if_due`]).
const FOLD_AT: usize = if cfg!(test) { 64 } else { 1 << 21 };

/// Address → rank, and the values by rank.
type Ranked<T> = (HashMap<Addr, Addr>, Vec<Arc<T>>);

/// Ranks the values at the addresses `addrs` by content (equal contents share a rank).
fn rank_by_content<T: Ord + ?Sized>(
    addrs: impl Iterator<Item = Addr>,
    value: impl Fn(Addr) -> Arc<T>,
) -> Ranked<T> {
    let mut rank: HashMap<Addr, Addr> = HashMap::default();
    for a in addrs {
        rank.entry(a).or_insert(0);
    }
    let mut v: Vec<(Arc<T>, Addr)> = rank.keys().map(|&a| (value(a), a)).collect();
    v.sort_unstable_by(|x, y| x.0.cmp(&y.0));
    let mut values: Vec<Arc<T>> = Vec::with_capacity(v.len());
    for (val, a) in v {
        if values.last() != Some(&val) {
            values.push(val);
        }
        rank.insert(a, values.len() - 1);
    }
    (rank, values)
}

/// The address of an interned value, as a key: hashed and compared without touching the
/// value or its reference count. Sound because each map keyed by addresses holds the values
/// themselves beside the key (the address is not reused while the entry lives), and
/// interning hands out one copy per value for as long as any entry holds it. Accounts of
/// day, program and selected entries are held by the entry's value; sessions by the session
/// map (pruned only after a fold) and the entries of days' sessions and of `selected`.
type Addr = usize;

/// A selected access's account and session, and its reads.
type SelectedStats = (Arc<str>, Arc<Session>, SubjectStats);

/// An account, a program it used, and its statements.
type ProgramCount = (Arc<str>, Arc<str>, u64);

fn addr<T: ?Sized>(a: &Arc<T>) -> Addr {
    Arc::as_ptr(a) as *const () as usize
}

/// The database fields an event must have to be analysed: `statement` and a database
/// audit `Channel`, or `category: database`.
pub fn is_database_event(ev: &Event<'_>) -> bool {
    // The log source is resolved already: checking it first keeps other events cheap.
    let database = match &ev.logsource {
        Some(l) => l.categories.iter().any(|c| &**c == "database"),
        None => ev
            .get_str("Channel")
            .is_some_and(|c| Dialect::of_channel(&c) != Dialect::Generic),
    };
    database && ev.get("statement").is_some()
}

/// The entity a database event's state belongs to, for partitioning the state over several
/// processes ([`crate::share`]): its account, in lower case (accounts differing in case are
/// compared with each other). `None` for events the analytics do not take.
pub fn partition_key(ev: &Event<'_>) -> Option<String> {
    if !is_database_event(ev) {
        return None;
    }
    let user = ev.get_str("user");
    Some(format!(
        "db {}",
        user.as_deref().unwrap_or("?").to_ascii_lowercase()
    ))
}

/// The fields of a database event that the collector reads, found in one pass over the
/// event (the first of a name wins, as in [`Event::get`]).
#[derive(Default)]
struct DbFields<'e, 'a> {
    statement: Option<&'e cellwarden_event::Value<'a>>,
    return_code: Option<&'e cellwarden_event::Value<'a>>,
    channel: Option<&'e cellwarden_event::Value<'a>>,
    parameter: Option<&'e cellwarden_event::Value<'a>>,
    user: Option<&'e cellwarden_event::Value<'a>>,
    client_host: Option<&'e cellwarden_event::Value<'a>>,
    application: Option<&'e cellwarden_event::Value<'a>>,
    session_id: Option<&'e cellwarden_event::Value<'a>>,
    pid: Option<&'e cellwarden_event::Value<'a>>,
    rows: Option<&'e cellwarden_event::Value<'a>>,
    class: Option<&'e cellwarden_event::Value<'a>>,
    event: Option<&'e cellwarden_event::Value<'a>>,
    object_name: Option<&'e cellwarden_event::Value<'a>>,
    statement_id: Option<&'e cellwarden_event::Value<'a>>,
}

/// A field's value as text (integers formatted).
fn text<'e>(v: Option<&'e cellwarden_event::Value<'_>>) -> Option<std::borrow::Cow<'e, str>> {
    v.and_then(|v| v.as_text())
}

impl<'e, 'a> DbFields<'e, 'a> {
    /// The client host and the session: its id, else the connection or backend process (an
    /// integer written in `buf`).
    fn session<'b>(&self, buf: &'b mut [u8; 24]) -> (Option<Cow<'e, str>>, Option<Cow<'b, str>>)
    where
        'e: 'b,
    {
        let sid = match text(self.session_id) {
            Some(s) => (!s.is_empty()).then_some(s),
            None => match self.pid {
                Some(cellwarden_event::Value::Int(i)) => {
                    use std::io::Write;
                    let mut w = &mut buf[..];
                    let _ = write!(w, "{i}");
                    let n = 24 - w.len();
                    std::str::from_utf8(&buf[..n]).ok().map(Cow::Borrowed)
                }
                Some(v) => v.as_text().filter(|t| !t.is_empty()),
                None => None,
            },
        };
        (text(self.client_host), sid)
    }

    /// The record's key for telling repeated statements apart, if it is of a kind that
    /// repeats them.
    fn fold_key(
        &self,
        dialect: Dialect,
        sql: &str,
        session: (Option<&str>, Option<&str>),
    ) -> Option<FoldKey> {
        FoldKey::of(
            dialect,
            sql,
            (text(self.class).as_deref(), text(self.event).as_deref()),
            text(self.statement_id).as_deref(),
            text(self.object_name).as_deref(),
            session,
        )
    }

    fn of(ev: &'e Event<'a>) -> Self {
        let mut f = DbFields::default();
        for (k, v) in &ev.fields {
            let slot = match &**k {
                "statement" => &mut f.statement,
                "return_code" => &mut f.return_code,
                "Channel" => &mut f.channel,
                "parameter" => &mut f.parameter,
                "user" => &mut f.user,
                "client_host" => &mut f.client_host,
                "application" => &mut f.application,
                "session_id" => &mut f.session_id,
                "pid" => &mut f.pid,
                "rows" => &mut f.rows,
                "class" => &mut f.class,
                "event" => &mut f.event,
                "object_name" => &mut f.object_name,
                "statement_id" => &mut f.statement_id,
                _ => continue,
            };
            slot.get_or_insert(v);
        }
        f
    }
}

/// The key of a database audit record that may repeat a statement already counted (see
/// [`crate::repeats`]): `None` for any other event.
pub fn fold_key(ev: &Event<'_>) -> Option<FoldKey> {
    if !is_database_event(ev) {
        return None;
    }
    // Most statements are of other dialects: their channel says so before the fields are.
    let dialect = Dialect::of_channel(&ev.get_str("Channel").unwrap_or_default());
    if !matches!(dialect, Dialect::MySql | Dialect::Oracle) {
        return None;
    }
    ev.timestamp?;
    let f = DbFields::of(ev);
    let sql = f.statement.and_then(|v| v.as_text())?;
    let mut buf = [0u8; 24];
    let (host, sid) = f.session(&mut buf);
    f.fold_key(dialect, &sql, (host.as_deref(), sid.as_deref()))
}

/// Bind values as the sources log them: pgaudit `PARAMETER` (CSV list), Oracle
/// `SQL_BINDS` (` #1(11):value #2(3):abc`).
pub fn parse_binds(text: &str) -> Vec<String> {
    let t = text.trim_start();
    if t.starts_with('#') {
        let mut out = Vec::new();
        let mut rest = t;
        while let Some(r) = rest.strip_prefix('#') {
            let Some(open) = r.find('(') else { break };
            let Some(close) = r[open..].find("):") else {
                break;
            };
            let len: usize = r[open + 1..open + close].parse().unwrap_or(0);
            let v = &r[open + close + 2..];
            let take = v.char_indices().nth(len).map_or(v.len(), |(i, _)| i);
            out.push(v[..take].to_owned());
            rest = v[take..].trim_start();
        }
        return out;
    }
    csv_lite(text)
}

/// Splits a CSV line (double quotes, doubled to escape).
fn csv_lite(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

impl Collector {
    /// A collector with the default SQL analyser (fingerprint cache on).
    pub fn new(schema: Arc<Schema>, selection: Arc<Selection>, bulk_min_rows: i64) -> Self {
        Collector::with_analyzer(schema, selection, bulk_min_rows, Analyzer::default())
    }

    /// A collector with the given SQL analyser.
    pub fn with_analyzer(
        schema: Arc<Schema>,
        selection: Arc<Selection>,
        bulk_min_rows: i64,
        analyzer: Analyzer,
    ) -> Self {
        Collector {
            schema,
            selection,
            bulk_min_rows,
            analyzer,
            derived: HashMap::default(),
            interned: HashMap::default(),
            intern_limit: INTERN_LIMIT,
            reads: Vec::new(),
            subject_stats: Vec::new(),
            files: HashMap::default(),
            last_file: 0,
            selected: HashMap::default(),
            sessions: HashMap::default(),
            days: HashMap::default(),
            visits: Vec::new(),
            recent: vec![None; RECENT_VISITS],
            programs: HashMap::default(),
            folders: HashMap::default(),
            aggregates: Aggregates::default(),
        }
    }

    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.interned.get(s) {
            return Arc::clone(a);
        }
        if self.interned.len() > self.intern_limit {
            // Only what no key holds: a value keeps its one copy while it is in use. When
            // most are in use (a month of session ids), the limit grows so that dropping
            // stays rare.
            self.interned.retain(|_, a| Arc::strong_count(a) > 1);
            self.intern_limit = INTERN_LIMIT.max(2 * self.interned.len());
        }
        let a: Arc<str> = Arc::from(s);
        self.interned.insert(s.into(), Arc::clone(&a));
        a
    }

    fn derive(&mut self, shape: &Arc<Shape>, compared: &[crate::sql::Compared]) -> &mut Derived {
        let key = Arc::as_ptr(shape) as usize;
        if !self.derived.contains_key(&key) {
            if self.derived.len() > crate::sql::CACHE_CAPACITY * 2 {
                self.flush_observed();
                self.derived.clear();
            }
            let mut record_bits = 0;
            let mut large = Vec::new();
            let mut record_tables = Vec::new();
            for t in &shape.tables_read {
                let info = self.schema.table(t);
                if let Some(rt) = info.record_type {
                    record_bits |= rt.bit();
                    record_tables.push(Arc::clone(t));
                }
                if info.large {
                    large.push(Arc::clone(t));
                }
            }
            let all: Vec<Arc<str>> = shape
                .tables_read
                .iter()
                .chain(&shape.tables_written)
                .cloned()
                .collect();
            let mut columns = vec![None; shape.predicates];
            let mut record_pred = vec![record_bits != 0; shape.predicates];
            for c in compared {
                if columns[c.pred].is_none() {
                    columns[c.pred] = self.schema.column(c.table.as_deref(), &all, &c.column);
                }
                if let Some(t) = c.table.as_deref() {
                    record_pred[c.pred] = self.schema.table(t).record_type.is_some();
                }
            }
            self.derived.insert(
                key,
                Derived {
                    _shape: Arc::clone(shape),
                    record_bits,
                    large: large.into(),
                    record_tables: record_tables.into(),
                    columns,
                    record_pred,
                    shown: vec![None; shape.predicates],
                    row_kinds: shape
                        .row_columns()
                        .iter()
                        .map(|r| {
                            r.iter()
                                .map(|(t, c)| {
                                    self.schema
                                        .column(t.as_deref(), &all, c)
                                        .map(|(k, _)| k)
                                        .filter(|k| *k != ColumnKind::Any)
                                })
                                .collect()
                        })
                        .collect(),
                    uses: 0,
                },
            );
        }
        self.derived.get_mut(&key).expect("inserted above")
    }

    /// Moves the per-shape statement counts into the schema inference.
    fn flush_observed(&mut self) {
        for d in self.derived.values_mut() {
            for t in &d._shape.tables_read {
                *self
                    .aggregates
                    .observed
                    .tables
                    .entry(t.to_string())
                    .or_default() += d.uses;
            }
            d.uses = 0;
        }
    }

    /// The shared copy of a session key.
    fn session(&mut self, host: Option<&str>, id: Option<&str>) -> Arc<Session> {
        use std::hash::BuildHasher;
        let key = rustc_hash::FxBuildHasher.hash_one((host, id));
        if let Some(s) = self.sessions.get(&key).and_then(|b| {
            b.iter()
                .find(|s| s.host.as_deref() == host && s.id.as_deref() == id)
        }) {
            return Arc::clone(s);
        }
        let s = Arc::new(Session {
            host: host.map(|h| self.intern(h)),
            id: id.map(|i| self.intern(i)),
        });
        self.sessions.entry(key).or_default().push(Arc::clone(&s));
        s
    }

    /// Takes one event; events that are not database statements are ignored.
    pub fn observe(&mut self, ev: &Event<'_>) {
        self.observe_decided(ev, None);
    }

    /// [`Collector::observe`], with whether the record repeats a statement already counted
    /// decided by the caller (`hunt`'s workers decide it in the order of the input, see
    /// [`crate::repeats`]); `None`: decided here, by the file's records seen before.
    pub fn observe_decided(&mut self, ev: &Event<'_>, repeats: Option<bool>) {
        if !is_database_event(ev) {
            return;
        }
        self.fold_if_due();
        let f = DbFields::of(ev);
        let Some(sql) = f.statement.and_then(|v| v.as_text()) else {
            return;
        };
        let agg_counts = &mut self.aggregates.counts;
        agg_counts.statements += 1;
        let Some(time) = ev.timestamp else {
            agg_counts.undated += 1;
            return;
        };
        let failed = text(f.return_code).is_some_and(|r| !r.is_empty() && r != "0");
        let dialect = Dialect::of_channel(&text(f.channel).unwrap_or_default());
        let account = self.intern(text(f.user).as_deref().unwrap_or("?"));
        let program = text(f.application).map(|p| self.intern(&p));
        let mut buf = [0u8; 24];
        let (host, sid) = f.session(&mut buf);
        let session = self.session(host.as_deref(), sid.as_deref());
        let repeats = repeats.unwrap_or_else(|| {
            f.fold_key(dialect, &sql, (host.as_deref(), sid.as_deref()))
                .is_some_and(|k| {
                    let folder = match self.folders.get_mut(&ev.origin.file) {
                        Some(f) => f,
                        None => self.folders.entry(Arc::clone(&ev.origin.file)).or_default(),
                    };
                    folder.trim();
                    folder.repeated(k)
                })
        });
        if repeats {
            let c = &mut self.aggregates.counts;
            c.statements -= 1;
            c.repeats += 1;
            return;
        }
        let binds = text(f.parameter)
            .map(|p| parse_binds(&p))
            .unwrap_or_default();
        // Analysed once a record is known not to repeat one. A statement the analyser cannot
        // handle costs that statement, never the run: log text is the attacker's to write.
        let analyser = &mut self.analyzer;
        let analysis = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            analyser.analyse(&sql, dialect, &binds)
        })) {
            Ok(a) => a,
            Err(_) => {
                self.aggregates.counts.unanalysed += 1;
                return;
            }
        };
        self.aggregates.counts.sql = self.analyzer.stats;
        let rows = f.rows.and_then(|v| match v {
            cellwarden_event::Value::Int(i) => Some(*i),
            v => v.as_text().and_then(|t| t.parse().ok()),
        });
        let evidence = Evidence {
            time,
            file: Arc::clone(&ev.origin.file),
            record: ev.origin.record,
        };
        let day = day_of(time);
        let shape = Arc::clone(&analysis.shape);
        let schema = Arc::clone(&self.schema);
        let derived = self.derive(&shape, &analysis.compared);
        derived.uses += 1;
        let record_bits = derived.record_bits;
        // Subscribers selected, and LIKE prefixes.
        let mut subjects: Vec<SubscriberId> = Vec::new();
        // Distinct subscribers so far: a look along the list while it is short (most
        // statements name one or two), a hash set once it is long (a statement may name a
        // million).
        let mut seen: rustc_hash::FxHashSet<SubscriberId> = Default::default();
        let mut prefixes: Vec<(IdKind, String)> = Vec::new();
        let mut observed_cols: Vec<(String, String, ColumnKind, Basis)> = Vec::new();
        for c in &analysis.compared {
            let col = derived.columns[c.pred];
            let table_is_record = derived.record_pred[c.pred];
            if c.like {
                let Some(kind) = col.map(|(k, _)| k) else {
                    continue;
                };
                let stem: String = c
                    .value
                    .chars()
                    .take_while(|ch| *ch != '%' && *ch != '_')
                    .collect();
                if let Some(id) = schema.identify(Some(kind), &format!("{stem}0000000"))
                    && stem.len() >= 3
                {
                    let digits = id.value[..id.value.len() - 7].to_owned();
                    prefixes.push((id.kind, digits));
                }
                continue;
            }
            let id = match col {
                Some((k, _)) => schema.identify(Some(k), &c.value),
                // Unknown columns count only on record tables, by the value's shape.
                None if table_is_record => schema.identify(None, &c.value),
                None => None,
            };
            if let Some(id) = id {
                let basis = col.map_or(Basis::ValueShape, |(_, b)| b);
                let kind = col.map_or(
                    match id.kind {
                        IdKind::Msisdn => ColumnKind::Msisdn,
                        IdKind::Imsi => ColumnKind::Imsi,
                        IdKind::Imei => ColumnKind::Imei,
                        IdKind::Iccid => ColumnKind::Iccid,
                    },
                    |(k, _)| k,
                );
                if derived.shown[c.pred].is_none() {
                    let table = c
                        .table
                        .as_deref()
                        .or_else(|| derived.record_tables.first().map(|t| &**t))
                        .unwrap_or("?");
                    derived.shown[c.pred] = Some((table.to_owned(), c.column.to_string()));
                    observed_cols.push((table.to_owned(), c.column.to_string(), kind, basis));
                }
                let new = if subjects.len() < 16 {
                    !subjects.contains(&id)
                } else {
                    if seen.is_empty() {
                        seen.extend(subjects.iter().cloned());
                    }
                    seen.insert(id)
                };
                if new {
                    subjects.push(id);
                }
            }
        }
        // Identifiers of one row: at most one value of a kind (a row holding the calling and
        // the called number says nothing of which is whose).
        let mut links: Vec<(SubscriberId, SubscriberId)> = Vec::new();
        for (r, row) in analysis.rows.iter().enumerate() {
            if row.len() < 2 {
                continue;
            }
            let mut ids: Vec<SubscriberId> = Vec::new();
            let mut ambiguous: Vec<IdKind> = Vec::new();
            for c in row {
                let kind = derived
                    .row_kinds
                    .get(r)
                    .and_then(|k| k.get(c.pred).copied().flatten());
                let Some(id) = kind.and_then(|k| schema.identify(Some(k), &c.value)) else {
                    continue;
                };
                if ids.iter().any(|x| x.kind == id.kind && *x != id) {
                    ambiguous.push(id.kind);
                }
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            ids.retain(|x| !ambiguous.contains(&x.kind));
            ids.sort();
            for other in ids.iter().skip(1) {
                links.push((ids[0], *other));
            }
        }
        let large = Arc::clone(&derived.large);
        let record_tables = Arc::clone(&derived.record_tables);
        let agg = &mut self.aggregates;
        for l in links {
            *agg.links.entry(l).or_default() += 1;
        }
        for (t, c, k, b) in observed_cols {
            agg.observed.columns.entry((t, c)).or_insert((k, b));
        }
        if failed {
            agg.counts.failed += 1;
        }
        let (a, s) = (addr(&account), addr(&session));
        let d = &mut self
            .days
            .entry((a, day))
            .or_insert_with(|| (Arc::clone(&account), DayStats::default()))
            .1;
        d.statements += 1;
        d.hours |= 1 << hour_of(time);
        min_evidence(&mut d.first, &evidence);
        d.last = d.last.max(Some(time));
        let file = addr(&evidence.file);
        if file != self.last_file {
            self.last_file = file;
            self.files
                .entry(file)
                .or_insert_with(|| Arc::clone(&evidence.file));
        }
        let visit = Visit {
            account: a,
            day,
            session: s,
            program: program.as_ref().map_or(0, addr),
            hours: 1 << hour_of(time),
            record_bits: if failed { 0 } else { record_bits },
            at: At {
                time,
                file,
                record: evidence.record,
            },
        };
        use std::hash::BuildHasher;
        let slot = rustc_hash::FxBuildHasher.hash_one((s, day)) as usize % RECENT_VISITS;
        match &mut self.recent[slot] {
            Some(v) if v.absorbs(&visit) => v.hours |= visit.hours,
            v => {
                if let Some(done) = v.replace(visit) {
                    self.visits.push(done);
                }
            }
        }
        if let Some(p) = &program {
            self.programs
                .entry((a, addr(p)))
                .or_insert_with(|| (Arc::clone(&account), Arc::clone(p), 0))
                .2 += 1;
        }
        if matches!(shape.kind, StatementKind::CreateUser | StatementKind::Grant)
            && let Some(p) = &shape.principal
        {
            agg.created.push(Created {
                principal: p.to_ascii_lowercase(),
                kind: shape.kind,
                by: Arc::clone(&account),
                evidence: evidence.clone(),
            });
        }
        if failed {
            d.failed += 1;
            return;
        }
        // Whole-table reads of large record tables, and exports of record tables.
        let narrow = !subjects.is_empty() || prefixes.iter().any(|(_, p)| p.len() >= 8);
        let bulk_read = shape.kind == StatementKind::Select
            && !shape.aggregate_only
            && !narrow
            && !large.is_empty()
            && rows.is_none_or(|r| r >= self.bulk_min_rows);
        let export = shape.kind.is_export() && !record_tables.is_empty();
        if bulk_read || export {
            agg.counts.bulk += 1;
            let tables = if export { &record_tables } else { &large };
            for t in tables.iter() {
                let b = d.bulk.entry((Arc::clone(t), shape.kind)).or_default();
                b.statements += 1;
                if let Err(at) = b.sessions.binary_search(&session) {
                    b.sessions.insert(at, Arc::clone(&session));
                }
                b.rows = add_rows(b.rows, rows);
                if b.first.as_ref().is_none_or(|f| evidence < *f) {
                    b.first = Some(evidence.clone());
                    b.excerpt = sql.chars().take(300).collect();
                }
            }
        }
        for (kind, p) in prefixes {
            let slot = agg
                .prefixes
                .entry((Arc::clone(&account), kind, p))
                .or_insert((0, evidence.clone()));
            slot.0 += 1;
            if evidence < slot.1 {
                slot.1 = evidence.clone();
            }
        }
        if subjects.is_empty() || !shape.kind.reads() {
            return;
        }
        agg.counts.with_subscribers += 1;
        let selected = self.selection.is_set()
            && self
                .selection
                .selects(&account, session.host.as_deref(), time);
        for id in subjects {
            if selected {
                self.selected
                    .entry((addr(&account), id, addr(&session)))
                    .or_insert_with(|| {
                        (
                            Arc::clone(&account),
                            Arc::clone(&session),
                            SubjectStats::default(),
                        )
                    })
                    .2
                    .add(record_bits, time, rows, &evidence);
            }
            self.reads.push(Read {
                account: a,
                id,
                day,
                session: s,
                time,
                file,
                record: evidence.record,
                rows,
                record_bits,
            });
        }
    }

    /// Folds once the pending reads or visits outnumber what a fold walks besides them (the
    /// entries merged, the sessions, account-days and programs looked up): each fold's cost
    /// is then paid for by the statements since the one before.
    fn fold_if_due(&mut self) {
        let walked = self.sessions.len() + self.days.len() + self.programs.len();
        if self.reads.len() >= FOLD_AT.max(self.subject_stats.len() + walked)
            || self.visits.len() >= FOLD_AT.max(walked)
        {
            self.fold();
        }
    }

    /// Adds the statements and reads gathered since the last fold to the account-days and
    /// the subscriber entries.
    fn fold(&mut self) {
        self.fold_visits();
        self.fold_reads();
    }

    /// The sessions and files at the (session, file) addresses of pending reads or visits,
    /// ranked by content: what a fold sorts by and builds its keys and evidence from.
    fn rank_sessions_and_files(
        &self,
        at: impl Iterator<Item = (Addr, Addr)> + Clone,
    ) -> (Ranked<Session>, Ranked<str>) {
        let sessions: HashMap<Addr, &Arc<Session>> = self
            .sessions
            .values()
            .flatten()
            .map(|s| (addr(s), s))
            .collect();
        (
            rank_by_content(at.clone().map(|(s, _)| s), |a| Arc::clone(sessions[&a])),
            rank_by_content(at.map(|(_, f)| f), |a| Arc::clone(&self.files[&a])),
        )
    }

    /// Adds the visits gathered since the last fold to their account-days: sessions,
    /// client hosts, programs and record types, each with its first evidence.
    fn fold_visits(&mut self) {
        self.visits
            .extend(self.recent.iter_mut().filter_map(Option::take));
        if self.visits.is_empty() {
            return;
        }
        let mut visits = std::mem::take(&mut self.visits);
        let ((session_rank, sessions), (file_rank, files)) =
            self.rank_sessions_and_files(visits.iter().map(|v| (v.session, v.at.file)));
        let programs: HashMap<Addr, &Arc<str>> = self
            .programs
            .values()
            .map(|(_, p, _)| (addr(p), p))
            .collect();
        for v in &mut visits {
            v.session = session_rank[&v.session];
            v.at.file = file_rank[&v.at.file];
        }
        visits.sort_unstable_by_key(|v| (v.account, v.day, v.session));
        let evidence = |at: At| Evidence {
            time: at.time,
            file: Arc::clone(&files[at.file]),
            record: at.record,
        };
        let earliest = |slot: &mut Option<At>, at: At| {
            if slot.is_none_or(|x| at < x) {
                *slot = Some(at);
            }
        };
        for day in visits.chunk_by(|x, y| (x.account, x.day) == (y.account, y.day)) {
            let Some((_, d)) = self.days.get_mut(&(day[0].account, day[0].day)) else {
                continue; // never: an account-day lives until the fold before it is evicted
            };
            let mut hosts: HashMap<Addr, (&Arc<str>, Option<At>)> = HashMap::default();
            let mut progs: HashMap<Addr, Option<At>> = HashMap::default();
            let mut types: [Option<At>; 8] = [None; 8];
            let mut day_sessions: Vec<(Arc<Session>, SessionStats)> = Vec::new();
            for run in day.chunk_by(|x, y| x.session == y.session) {
                let session = &sessions[run[0].session];
                let mut st = SessionStats::default();
                let mut first: Option<At> = None;
                for v in run {
                    st.hours |= v.hours;
                    st.record_bits |= v.record_bits;
                    earliest(&mut first, v.at);
                    if v.program != 0 {
                        let p = programs[&v.program];
                        if let Err(at) = st.programs.binary_search(p) {
                            st.programs.insert(at, Arc::clone(p));
                        }
                        earliest(progs.entry(v.program).or_default(), v.at);
                    }
                    let mut bits = v.record_bits;
                    while bits != 0 {
                        earliest(&mut types[bits.trailing_zeros() as usize], v.at);
                        bits &= bits - 1;
                    }
                }
                if let (Some(h), Some(at)) = (&session.host, first) {
                    earliest(&mut hosts.entry(addr(h)).or_insert((h, None)).1, at);
                }
                day_sessions.push((Arc::clone(session), st));
            }
            for (h, at) in hosts.into_values() {
                if let Some(at) = at {
                    merge_first(&mut d.hosts, Arc::clone(h), &evidence(at));
                }
            }
            for (p, at) in progs {
                if let Some(at) = at {
                    merge_first(&mut d.programs, Arc::clone(programs[&p]), &evidence(at));
                }
            }
            for (bit, at) in types.into_iter().enumerate() {
                if let Some(at) = at {
                    for rt in RecordType::of_bits(1 << bit) {
                        merge_first(&mut d.record_types, rt, &evidence(at));
                    }
                }
            }
            let mine = std::mem::take(&mut d.sessions);
            d.sessions = merge_maps(
                mine,
                day_sessions.into_iter().collect(),
                SessionStats::merge,
            );
        }
        visits.clear();
        self.visits = visits;
    }

    /// Adds the reads gathered since the last fold to the key-ordered entries: ranks their
    /// accounts, sessions and files by content, sorts them by key and evidence, and merges
    /// each run of one key into an entry.
    fn fold_reads(&mut self) {
        if self.reads.is_empty() {
            return;
        }
        let mut reads = std::mem::take(&mut self.reads);
        let key = |r: &Read| (r.account, r.id, r.day, r.session);
        let accounts: HashMap<Addr, &Arc<str>> =
            self.days.values().map(|(a, _)| (addr(a), a)).collect();
        let (account_rank, accounts) = rank_by_content(reads.iter().map(|r| r.account), |a| {
            Arc::clone(accounts[&a])
        });
        let ((session_rank, sessions), (file_rank, files)) =
            self.rank_sessions_and_files(reads.iter().map(|r| (r.session, r.file)));
        for r in &mut reads {
            r.account = account_rank[&r.account];
            r.session = session_rank[&r.session];
            r.file = file_rank[&r.file];
        }
        reads.sort_unstable_by_key(Read::order);
        let keys = 1 + reads
            .windows(2)
            .filter(|w| key(&w[0]) != key(&w[1]))
            .count();
        let mut folded: Subjects = Vec::with_capacity(keys);
        let mut last = None;
        for r in &reads {
            if last != Some(key(r)) {
                last = Some(key(r));
                let k = (
                    Arc::clone(&accounts[r.account]),
                    r.id,
                    r.day,
                    Arc::clone(&sessions[r.session]),
                );
                folded.push((k, SubjectStats::default()));
            }
            let s = &mut folded.last_mut().expect("pushed above").1;
            s.record_types |= r.record_bits;
            s.first = s.first.or(Some(r.time));
            s.last = Some(r.time);
            s.statements += 1;
            s.rows = add_rows(s.rows, r.rows);
            if s.evidence.len() < EVIDENCE_CAP {
                let e = Evidence {
                    time: r.time,
                    file: Arc::clone(&files[r.file]),
                    record: r.record,
                };
                if s.evidence.last() != Some(&e) {
                    s.evidence.push(e);
                }
            }
        }
        let mine = std::mem::take(&mut self.subject_stats);
        self.subject_stats = merge_sorted_by(mine, folded, cmp_subject_keys);
        // The buffer is kept for the next reads: its pages are in place.
        reads.clear();
        self.reads = reads;
    }

    /// The aggregates gathered so far, finished for judging, leaving the collector as it is
    /// (live detection judges again as days close).
    pub fn snapshot(&mut self) -> Aggregates {
        let mut a = self.snapshot_raw();
        a.finish();
        a
    }

    /// The aggregates so far before [`Aggregates::finish`]: to be merged with others (a state
    /// restored from a snapshot) and finished then.
    pub fn snapshot_raw(&mut self) -> Aggregates {
        self.flush_observed();
        self.fold();
        let mut a = self.aggregates.clone();
        a.subjects = self.subject_stats.clone();
        a.selected = self
            .selected
            .iter()
            .map(|((_, s, _), (a, x, v))| ((a.clone(), *s, x.clone()), v.clone()))
            .collect();
        a.days = self
            .days
            .iter()
            .map(|((_, day), (account, d))| ((Arc::clone(account), *day), d.clone()))
            .collect();
        a.programs = self
            .programs
            .values()
            .map(|(a, p, n)| ((a.clone(), p.clone()), *n))
            .collect();
        a.counts.sql = self.analyzer.stats;
        a
    }

    /// Forgets the days before `day` (live detection keeps a window of days). Per-subscriber
    /// totals for `scope` selections and program counts have no day and are kept.
    pub fn evict_before(&mut self, day: Day) {
        // Before anything holding the reads' accounts, sessions or files goes.
        self.fold();
        self.files.clear();
        self.last_file = 0;
        self.subject_stats.retain(|((_, _, d, _), _)| *d >= day);
        self.days.retain(|(_, d), _| *d >= day);
        self.sessions.retain(|_, b| {
            b.retain(|s| Arc::strong_count(s) > 1);
            !b.is_empty()
        });
        // Folders are kept per file, and files come and go.
        self.folders.clear();
        self.aggregates.evict_before(day);
    }

    /// Entries held: (account-days, subscriber-account-days; reads not folded yet count one
    /// each).
    pub fn size(&self) -> (usize, usize) {
        (self.days.len(), self.subject_stats.len() + self.reads.len())
    }

    /// The aggregates gathered, with the analyser's counters.
    pub fn into_aggregates(mut self) -> Aggregates {
        self.flush_observed();
        self.fold();
        self.aggregates.subjects = self.subject_stats;
        self.aggregates.selected = self
            .selected
            .into_iter()
            .map(|((_, s, _), (a, x, v))| ((a, s, x), v))
            .collect();
        self.aggregates.days = self
            .days
            .into_iter()
            .map(|((_, day), (account, d))| ((account, day), d))
            .collect();
        self.aggregates.programs = self
            .programs
            .into_values()
            .map(|(a, p, n)| ((a, p), n))
            .collect();
        self.aggregates.counts.sql = self.analyzer.stats;
        self.aggregates
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    use cellwarden_event::{Origin, Value};

    pub(crate) fn db_event(
        time: &str,
        user: &str,
        host: &str,
        sql: &str,
        line: u64,
    ) -> Event<'static> {
        let mut ev = Event::new(Origin {
            file: Arc::from("db.log"),
            record: line,
        });
        ev.timestamp = cellwarden_event::parse_timestamp(time);
        let s = |x: &str| Value::Str(Cow::Owned(x.to_owned()));
        ev.push("user", s(user));
        ev.push("client_host", s(host));
        ev.push("statement", s(sql));
        ev.push("Channel", s("pgaudit"));
        ev
    }

    /// MySQL Enterprise Audit's records of one statement (one per table, one `general`) count
    /// once, in either order; the same statement run again counts again.
    #[test]
    fn mysql_table_access_records_of_one_statement_count_once() {
        let q = "SELECT c.*, d.imei FROM cdr c JOIN device d ON d.imsi = c.imsi WHERE c.calling_number = '33611111111'";
        let record = |class: &str, table: Option<&str>, line: u64| {
            let mut ev = db_event("2026-03-04T10:00:00Z", "app", "10.2.3.4", q, line);
            let s = |x: &str| Value::Str(Cow::Owned(x.to_owned()));
            if let Some((_, v)) = ev.fields.iter_mut().find(|(k, _)| k == "Channel") {
                *v = s("mysql_audit");
            }
            ev.push("session_id", s("21"));
            ev.push("class", s(class));
            if let Some(t) = table {
                ev.push("object_name", s(t));
            }
            ev
        };
        let statements = |records: &[(&str, Option<&str>)]| {
            let mut c = Collector::new(Default::default(), Default::default(), 100_000);
            for (i, (class, table)) in records.iter().enumerate() {
                c.observe(&record(class, *table, i as u64 + 1));
            }
            let a = c.into_aggregates();
            let per_subscriber: u64 = a.subjects.iter().map(|(_, s)| s.statements).sum();
            (a.counts.statements, a.counts.repeats, per_subscriber)
        };
        let (ta, g) = ("table_access", "general");
        let (cdr, device) = (Some("cdr"), Some("device"));
        // MySQL: the tables, then the statement's end; twice.
        let mysql = [(ta, cdr), (ta, device), (g, None)];
        assert_eq!(statements(&mysql), (1, 2, 1));
        assert_eq!(statements(&[mysql, mysql].concat()), (2, 4, 2));
        // The general record first; general records only; table records only.
        assert_eq!(
            statements(&[(g, None), (ta, cdr), (ta, device), (g, None)]),
            (2, 2, 2)
        );
        assert_eq!(statements(&[(g, None), (g, None)]), (2, 0, 2));
        assert_eq!(statements(&[(ta, cdr), (ta, device), (ta, cdr)]), (2, 1, 2));
    }

    /// A statement naming many subscribers is collected in linear time (each new subscriber
    /// was looked up in a list of those before it), and each is counted once.
    #[test]
    fn a_long_subscriber_list_is_collected_in_linear_time() {
        cellwarden_testkit::assert_linear("subscriber list", 4_000, |n| {
            let ids: Vec<String> = (0..n).map(|i| format!("'336{i:08}'")).collect();
            let sql = format!(
                "SELECT * FROM customer WHERE msisdn IN ({}, '33600000000')",
                ids.join(", ")
            );
            let mut c = Collector::new(Default::default(), Default::default(), 100_000);
            c.observe(&db_event(
                "2026-03-04T10:00:00Z",
                "care01",
                "10.1.0.21",
                &sql,
                1,
            ));
            let agg = c.into_aggregates();
            assert_eq!(agg.subjects.len(), n);
        });
    }

    /// Reads and visits are folded in whenever enough are pending: the aggregates are the
    /// same whenever the folds happen (here after every statement, against every 64).
    #[test]
    fn aggregates_do_not_depend_on_when_pending_statements_are_folded() {
        let sqls = [
            "SELECT * FROM cdr WHERE calling_number = '33611111111' OR called_number = '33622222222'",
            "SELECT imsi, cell_id FROM cell_location WHERE msisdn IN ('33633333333', '33611111111')",
            "SELECT * FROM subscriber WHERE imsi = '208150000000001'",
            "SELECT * FROM cdr",
            "UPDATE subscriber SET last_seen = now() WHERE msisdn = '33644444444'",
        ];
        // Runs of six statements of one session (some logged out of order), several
        // sessions, accounts, days, hours and files (one copy of each name, as a reader
        // gives).
        let files = [Arc::<str>::from("a.log"), Arc::from("b.log")];
        let event = |i: usize| {
            let (r, k) = (i / 6, i % 6);
            let k = if r.is_multiple_of(5) { 5 - k } else { k };
            let time = format!(
                "2026-03-{:02}T{:02}:{:02}:00Z",
                1 + r / 3 % 3,
                r % 20 + k / 3,
                k * 7
            );
            let host = format!("10.0.0.{}", r % 5);
            let mut ev = db_event(
                &time,
                ["app", "care01", "dba"][r % 3],
                &host,
                sqls[i % 5],
                i as u64,
            );
            ev.origin.file = Arc::clone(&files[i / 200 % 2]);
            let s = |x: String| Value::Str(Cow::Owned(x));
            ev.push("session_id", s(format!("{}", r % 17)));
            if !r.is_multiple_of(4) {
                ev.push("application", s(format!("prog{}", r % 3)));
            }
            if i.is_multiple_of(11) {
                ev.push("return_code", s("1".into()));
            }
            ev
        };
        let gather = |fold_each: bool| {
            let mut c = Collector::new(Default::default(), Default::default(), 100_000);
            for i in 0..600 {
                c.observe(&event(i));
                if fold_each {
                    c.fold();
                }
            }
            let a = c.into_aggregates();
            assert!(
                a.subjects.len() > 50 && a.days.len() == 9,
                "{}",
                a.subjects.len()
            );
            format!("{a:?}")
        };
        assert_eq!(gather(true), gather(false));
    }

    /// Far more sessions than the interning limit: each stays one key however many
    /// strings were dropped meanwhile (keys compare by address), and collecting stays linear.
    #[test]
    fn many_sessions_keep_one_key_each_in_linear_time() {
        let with_session = |i: usize, line: u64| {
            let mut ev = db_event(
                "2026-03-04T10:00:00Z",
                "care01",
                &format!("10.1.{}.{}", i / 250, i % 250),
                "SELECT * FROM customer WHERE msisdn = '33611111111'",
                line,
            );
            ev.push("session_id", Value::Str(Cow::Owned(format!("s{i}"))));
            ev
        };
        cellwarden_testkit::assert_linear("sessions", 4_000, |n| {
            let mut c = Collector::new(Default::default(), Default::default(), 100_000);
            for i in 0..n {
                c.observe(&with_session(i, i as u64));
            }
            // The first session again, after thousands of others.
            c.observe(&with_session(0, n as u64));
            let agg = c.into_aggregates();
            assert_eq!(agg.subjects.len(), n);
            let first = agg
                .subjects
                .iter()
                .find(|((_, _, _, s), _)| s.id.as_deref() == Some("s0"))
                .expect("session s0");
            assert_eq!(first.1.statements, 2);
            let day = agg.days.values().next().expect("one account-day");
            assert_eq!(day.sessions.len(), n);
        });
    }

    #[test]
    fn binds_of_pgaudit_and_oracle() {
        assert_eq!(
            parse_binds("33611111111,\"a,b\""),
            vec!["33611111111", "a,b"]
        );
        assert_eq!(
            parse_binds(" #1(11):33612345678 #2(3):a b"),
            vec!["33612345678", "a b"]
        );
    }

    /// Numbers below `n`, the same for a seed each run.
    fn below(mut seed: u64) -> impl FnMut(u64) -> u64 {
        move |n| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        }
    }

    /// Maps merged in one pass or key by key hold every key once with both values added.
    #[test]
    fn maps_merged_either_way_add_the_values_of_shared_keys() {
        let mut next = below(11);
        for (la, lb, span) in [
            (0, 4, 8),
            (3, 0, 8),
            (40, 2, 50),
            (2, 40, 50),
            (300, 280, 400),
        ] {
            let a: BTreeMap<u64, u64> = (0..la).map(|_| (next(span), next(9) + 1)).collect();
            let b: BTreeMap<u64, u64> = (0..lb).map(|_| (next(span), next(9) + 1)).collect();
            let mut want = a.clone();
            for (k, v) in &b {
                *want.entry(*k).or_default() += v;
            }
            let add = |x: &mut u64, y: u64| *x += y;
            assert_eq!(merge_maps(a.clone(), b.clone(), add), want);
            assert_eq!(merge_maps(b, a, add), want);
        }
    }

    #[test]
    fn aggregates_subjects_bulk_and_merge_in_any_order() {
        let schema = Arc::new(Schema::default());
        let sel = Arc::new(Selection {
            accounts: vec!["MALLORY".into()],
            ..Default::default()
        });
        let evs = [
            db_event(
                "2026-03-01T10:00:00Z",
                "care1",
                "10.0.0.1",
                "SELECT * FROM subscriber WHERE msisdn = '+33611111111'",
                1,
            ),
            db_event(
                "2026-03-01T10:05:00Z",
                "mallory",
                "10.9.9.9",
                "SELECT * FROM cdr WHERE calling_number IN ('+33611111111','+33622222222')",
                2,
            ),
            db_event(
                "2026-03-01T11:00:00Z",
                "mallory",
                "10.9.9.9",
                "SELECT * FROM cdr",
                3,
            ),
            db_event(
                "2026-03-02T01:00:00Z",
                "mallory",
                "10.9.9.9",
                "COPY (SELECT * FROM location) TO '/tmp/l.csv'",
                4,
            ),
            db_event(
                "2026-03-02T01:00:00Z",
                "dba",
                "10.9.9.9",
                "CREATE USER mallory2",
                5,
            ),
        ];
        let run = |order: &[usize]| {
            let mut parts = Vec::new();
            for chunk in order.chunks(2) {
                let mut c = Collector::new(schema.clone(), sel.clone(), 1000);
                for &i in chunk {
                    c.observe(&evs[i]);
                }
                parts.push(c.into_aggregates());
            }
            let mut all = Aggregates::default();
            for p in parts {
                all.merge(p);
            }
            all.finish();
            all
        };
        let a = run(&[0, 1, 2, 3, 4]);
        let b = run(&[4, 3, 2, 1, 0]);
        assert_eq!(a.subjects.len(), 3);
        assert_eq!(format!("{:?}", a.subjects), format!("{:?}", b.subjects));
        assert_eq!(format!("{:?}", a.days), format!("{:?}", b.days));
        assert_eq!(a.selected.len(), 2);
        let m1 = &a.days[&(
            Arc::from("mallory"),
            day_of("2026-03-01T00:00:00Z".parse().unwrap()),
        )];
        assert_eq!(m1.subscribers, 2);
        assert!(
            m1.bulk
                .contains_key(&(Arc::from("cdr"), StatementKind::Select))
        );
        let m2 = &a.days[&(
            Arc::from("mallory"),
            day_of("2026-03-02T00:00:00Z".parse().unwrap()),
        )];
        assert!(
            m2.bulk
                .contains_key(&(Arc::from("location"), StatementKind::CopyTo))
        );
        assert_eq!(a.created.len(), 1);
        assert_eq!(a.created[0].principal, "mallory2");
        assert_eq!(a.counts.statements, 5);
        assert_eq!(a.counts.bulk, 2);
        let care = a
            .subjects
            .iter()
            .find(|((acc, _, _, _), _)| &**acc == "care1")
            .unwrap();
        assert_eq!(care.0.1.value, "33611111111");
        assert_eq!(
            RecordType::of_bits(care.1.record_types).collect::<Vec<_>>(),
            vec![RecordType::Profile]
        );
    }
}
