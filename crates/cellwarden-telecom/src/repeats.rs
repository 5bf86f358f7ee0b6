//! Audit records that repeat a statement already counted.
//!
//! MySQL Enterprise Audit (with the `log_all` filter, its usual set-up) writes a statement
//! once per table it reads or writes (`table_access`, the table named) and once as a
//! `general` record (at its end; Percona's filter component before it); Oracle once per
//! audited object, with one statement id. These records of one statement follow each other
//! in its session: a record of the same statement belongs to the one before unless that one
//! had such a record already (a `general` one, or one naming the same table).
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
    /// Client host and session id as logged.
    session: u128,
    /// The statement: its text, with Oracle's statement id.
    text: u128,
    /// MySQL's `general` record, else a record naming the table hashed here (two tables
    /// alike by chance would make the record count as a statement of its own, never hide
    /// one).
    general: bool,
    table: u64,
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
        class: Option<&str>,
        statement_id: Option<&str>,
        object: Option<&str>,
        session: (Option<&str>, Option<&str>),
    ) -> Option<FoldKey> {
        let (text, general) = match dialect {
            Dialect::MySql => class
                .filter(|c| *c == "table_access" || *c == "general")
                .map(|c| (hash128((sql, "")), c == "general"))?,
            Dialect::Oracle => statement_id
                .filter(|s| *s != "0")
                .map(|s| (hash128((sql, s)), false))?,
            _ => return None,
        };
        Some(FoldKey {
            session: hash128(session),
            text,
            general,
            table: rustc_hash::FxBuildHasher.hash_one(object.unwrap_or("")),
        })
    }
}

/// A session's last statement.
#[derive(Default)]
struct LastStatement {
    text: u128,
    general: bool,
    tables: smallvec::SmallVec<[u64; 4]>,
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
            general,
            table,
        } = key;
        let last = self.last.entry(session).or_default();
        let same = last.text == text && (last.general || !last.tables.is_empty());
        let seen = if general {
            last.general
        } else {
            last.tables.contains(&table)
        };
        if !same || seen {
            *last = LastStatement {
                text,
                ..LastStatement::default()
            };
        }
        if general {
            last.general = true;
        } else {
            last.tables.push(table);
        }
        same && !seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(session: &str, sql: &str, class: &str, table: Option<&str>) -> FoldKey {
        FoldKey::of(
            Dialect::MySql,
            sql,
            Some(class),
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

    /// Only MySQL's `table_access` and `general` records and Oracle's records with a
    /// statement id can repeat a statement.
    #[test]
    fn other_records_have_no_key() {
        let s = (Some("h"), Some("1"));
        assert!(FoldKey::of(Dialect::MySql, "q", Some("connection"), None, None, s).is_none());
        assert!(FoldKey::of(Dialect::MySql, "q", None, None, None, s).is_none());
        assert!(FoldKey::of(Dialect::Oracle, "q", None, Some("0"), None, s).is_none());
        assert!(FoldKey::of(Dialect::Oracle, "q", None, Some("12"), None, s).is_some());
        assert!(FoldKey::of(Dialect::Postgres, "q", Some("general"), None, None, s).is_none());
    }
}
