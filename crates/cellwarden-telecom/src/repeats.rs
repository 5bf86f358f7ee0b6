//! Audit records that repeat a statement already counted.
//!
//! MySQL Enterprise Audit (with the `log_all` filter, its usual set-up) writes a statement
//! once per table it reads or writes (`table_access`, the table named) and once as a
//! `general` record (at its end; Percona's filter component before it); Oracle once per
//! audited object, with one statement id. Percona's audit log filter in its full event mode
//! writes a statement as it is received (`general` `log`; `Query` in XML), as it starts and
//! ends (`query` `start` and `status_end`; `Query Start`, `Query Status End`) and when done
//! (`general` `status`; `Query` again). These records of one statement follow each other in
//! its session: a record of the same statement belongs to the one before unless that one had
//! such a record already (a `general` one, one naming the same table, a start or an end); a
//! `general` record after the statement's end is its last.
//!
//! Whether a record repeats one depends on the records of its session before it, in the
//! order of its input, so a [`Folder`] sees one input's records in that order: the live
//! engine's collector sees them so, and `hunt` has its workers decide them unit after unit
//! of each input (the records of one statement may straddle two units).

use std::hash::BuildHasher;

use rustc_hash::FxHashMap as HashMap;

use crate::sql::Dialect;

/// Sessions whose last statement a [`Folder`] holds; past it the memory is dropped (at worst
/// a statement is counted twice).
const LAST_STATEMENTS: usize = 100_000;

/// What tells whether a record repeats the statement its session's record before it was of.
/// Log text is the attacker's to write, so the session and the statement are told apart by
/// 128-bit hashes with keys drawn at random per process: nobody can make two of them alike,
/// and by chance two of a million sessions would be so once in 10^26 runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoldKey {
    /// The session id as logged, else the client host.
    session: u128,
    /// The statement: its text, with Oracle's statement id.
    text: u128,
    kind: Kind,
}

/// The kinds of record one statement is written as, each at most once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// MySQL's `general` record (`status`: when done).
    General,
    /// A record naming a table (hashed: two tables alike by chance would make the record
    /// count as a statement of its own, never hide one); Oracle's records.
    Table(u64),
    /// Received (`general` `log`).
    Received,
    /// Started (`query` `start`).
    Start,
    /// Ended (`query` `status_end`).
    End,
}

/// Two hashes with random keys.
fn hash128(x: impl std::hash::Hash + Copy) -> u128 {
    static KEYS: std::sync::OnceLock<(ahash::RandomState, ahash::RandomState)> =
        std::sync::OnceLock::new();
    let (a, b) = KEYS.get_or_init(|| (ahash::RandomState::new(), ahash::RandomState::new()));
    (u128::from(a.hash_one(x)) << 64) | u128::from(b.hash_one(x))
}

impl FoldKey {
    /// The key of a dated statement record, when its kind of record can repeat a statement:
    /// `class` is MySQL's record class, `statement_id` Oracle's, `object` the table named.
    pub fn of(
        dialect: Dialect,
        sql: &str,
        (class, event): (Option<&str>, Option<&str>),
        statement_id: Option<&str>,
        object: Option<&str>,
        session: (Option<&str>, Option<&str>),
    ) -> Option<FoldKey> {
        let table = || Kind::Table(rustc_hash::FxBuildHasher.hash_one(object.unwrap_or("")));
        let (text, kind) = match dialect {
            Dialect::MySql => {
                let kind = match (class?, event) {
                    ("table_access", _) => table(),
                    ("general", Some("log")) => Kind::Received,
                    // The JSON format names them `query_start`, `query_status_end`;
                    // statements of stored programs `…nested_…`.
                    (
                        "query",
                        Some("start" | "query_start" | "nested_start" | "query_nested_start"),
                    ) => Kind::Start,
                    ("general", _) => Kind::General,
                    (
                        "query",
                        Some(
                            "status_end"
                            | "query_status_end"
                            | "nested_status_end"
                            | "query_nested_status_end",
                        ),
                    ) => Kind::End,
                    _ => return None,
                };
                (hash128((sql, "")), kind)
            }
            Dialect::Oracle => statement_id
                .filter(|s| *s != "0")
                .map(|s| (hash128((sql, s)), table()))?,
            _ => return None,
        };
        // A connection id names its session in its server's log; Percona's lifecycle records
        // name no client host.
        let session = match session {
            (_, Some(id)) => (None, Some(id)),
            host => host,
        };
        Some(FoldKey {
            session: hash128(session),
            text,
            kind,
        })
    }
}

/// A session's last statement and the kinds of record it had.
#[derive(Default)]
struct LastStatement {
    text: u128,
    general: bool,
    tables: smallvec::SmallVec<[u64; 4]>,
    received: bool,
    start: bool,
    end: bool,
    /// Its `general` record after its end.
    done: bool,
}

impl LastStatement {
    fn any(&self) -> bool {
        self.general || !self.tables.is_empty() || self.received || self.start || self.end
    }

    /// Whether it had a record of `kind` already.
    fn had(&self, kind: Kind) -> bool {
        match kind {
            Kind::General if self.end => self.done,
            Kind::General => self.general,
            Kind::Table(t) => self.tables.contains(&t),
            Kind::Received => self.received,
            Kind::Start => self.start,
            Kind::End => self.end,
        }
    }

    fn add(&mut self, kind: Kind) {
        match kind {
            Kind::General => {
                self.done |= self.end;
                self.general = true;
            }
            Kind::Table(t) => self.tables.push(t),
            Kind::Received => self.received = true,
            Kind::Start => self.start = true,
            Kind::End => self.end = true,
        }
    }
}

/// The last statement of each session of one input.
#[derive(Default)]
pub struct Folder {
    last: HashMap<u128, LastStatement>,
}

impl FoldKey {
    /// The session's key.
    pub fn session(&self) -> u128 {
        self.session
    }

    /// The statement's key.
    pub fn text(&self) -> u128 {
        self.text
    }
}

impl Folder {
    /// Forgets every session once it holds too many: called between units of reading (at
    /// the same places whatever the number of threads).
    pub fn trim(&mut self) {
        if self.last.len() >= LAST_STATEMENTS {
            self.last.clear();
        }
    }

    /// Takes the sessions' last statements of `later`, a folder that saw the records after
    /// those this one saw.
    pub fn absorb(&mut self, later: Folder) {
        self.last.extend(later.last);
    }

    /// Whether the record keyed `key`, the next of its input, repeats the statement its
    /// session's record before it was of.
    pub fn repeated(&mut self, key: FoldKey) -> bool {
        let FoldKey {
            session,
            text,
            kind,
        } = key;
        let last = self.last.entry(session).or_default();
        let same = last.text == text && last.any();
        let seen = last.had(kind);
        if !same || seen {
            *last = LastStatement {
                text,
                ..LastStatement::default()
            };
        }
        last.add(kind);
        same && !seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(session: &str, sql: &str, class: &str, table: Option<&str>) -> FoldKey {
        let (class, event) = class.split_once('/').unwrap_or((class, ""));
        FoldKey::of(
            Dialect::MySql,
            sql,
            (Some(class), Some(event).filter(|e| !e.is_empty())),
            None,
            table,
            (Some("10.0.0.1"), Some(session)),
        )
        .expect("a MySQL record class that repeats statements")
    }

    /// A statement's per-table records and its `general` record count once, whatever other
    /// sessions write between them; the same statement run again counts again.
    #[test]
    fn records_of_one_statement_repeat_it_until_a_kind_comes_again() {
        let q = "SELECT * FROM cdr JOIN device USING (imsi) WHERE msisdn = '33611111111'";
        let mut f = Folder::default();
        let decided: Vec<bool> = [
            key("7", q, "table_access", Some("cdr")),
            key("8", "SELECT 1", "general", None),
            key("7", q, "table_access", Some("device")),
            key("7", q, "general", None),
            key("7", q, "table_access", Some("cdr")),
            key("7", q, "general", None),
            key("7", q, "general", None),
        ]
        .into_iter()
        .map(|k| f.repeated(k))
        .collect();
        assert_eq!(decided, [false, false, true, true, false, true, false]);
    }

    /// Percona's audit log filter in its full event mode: received, started, ended and done
    /// make one statement; run again, it counts again. With only the `general` `status`
    /// records (its reduced mode, MySQL's plugin) or only the `query` ones, each run counts.
    #[test]
    fn a_statements_lifecycle_records_count_once() {
        let q = "SELECT * FROM cdr WHERE msisdn = '33611111111'";
        let run = |f: &mut Folder, classes: &[&str]| -> Vec<bool> {
            classes
                .iter()
                .map(|c| f.repeated(key("9", q, c, None)))
                .collect()
        };
        let full = [
            "general/log",
            "query/start",
            "query/status_end",
            "general/status",
        ];
        let mut f = Folder::default();
        assert_eq!(run(&mut f, &full), [false, true, true, true]);
        assert_eq!(run(&mut f, &full), [false, true, true, true]);
        let mut f = Folder::default();
        let reduced = ["general/status", "general/status"];
        assert_eq!(run(&mut f, &reduced), [false, false]);
        let mut f = Folder::default();
        let query = [
            "query/start",
            "query/status_end",
            "query/start",
            "query/status_end",
        ];
        assert_eq!(run(&mut f, &query), [false, true, false, true]);
        // The JSON format's event names.
        let mut f = Folder::default();
        let json = [
            "general/log",
            "query/query_start",
            "query/query_status_end",
            "general/status",
        ];
        assert_eq!(run(&mut f, &json), [false, true, true, true]);
        // Percona's XML names both `general` records `Query`: the one after the end is the
        // statement's last.
        let mut f = Folder::default();
        let xml = [
            "general",
            "query/start",
            "query/status_end",
            "general",
            "general",
        ];
        assert_eq!(run(&mut f, &xml), [false, true, true, true, false]);
    }

    /// Only MySQL's `table_access`, `general` and `query` records and Oracle's records with
    /// a statement id can repeat a statement.
    #[test]
    fn other_records_have_no_key() {
        let s = (Some("h"), Some("1"));
        let class = |c| (Some(c), None);
        assert!(FoldKey::of(Dialect::MySql, "q", class("connection"), None, None, s).is_none());
        assert!(FoldKey::of(Dialect::MySql, "q", (None, None), None, None, s).is_none());
        assert!(FoldKey::of(Dialect::MySql, "q", class("query"), None, None, s).is_none());
        assert!(FoldKey::of(Dialect::Oracle, "q", (None, None), Some("0"), None, s).is_none());
        assert!(FoldKey::of(Dialect::Oracle, "q", (None, None), Some("12"), None, s).is_some());
        assert!(FoldKey::of(Dialect::Postgres, "q", class("general"), None, None, s).is_none());
    }
}
