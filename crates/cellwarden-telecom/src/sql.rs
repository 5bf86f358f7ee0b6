//! SQL statement analysis: what a statement does (kind), which tables it reads and writes,
//! and which values its predicates compare columns with (the subscribers it selects).
//!
//! Every statement is first scanned by a small tokenizer into a *fingerprint* (literals
//! replaced by `?`, lists of literals by `?*`, comments and spacing dropped, words
//! lowercased). The first statement of each fingerprint is parsed with `sqlparser` (dialect
//! per source) and analysed into a [`Shape`] whose predicates point at literal *groups*
//! (a literal, or a parenthesised list of literals) or at bind parameters; every later
//! statement of the same fingerprint reuses the shape and only reads its own literals.
//! Statements the parser rejects are analysed from their tokens instead (tables after
//! FROM/JOIN/INTO/UPDATE, `column = literal`, `column IN (…)`, `column LIKE …`) and counted.

use rustc_hash::FxHashMap as HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use sqlparser::ast::{
    AssignmentTarget, BinaryOperator, Expr, ObjectName, ObjectNamePart, SetExpr, Statement,
    TableFactor, TableObject, Value, ValueWithSpan, Visit, Visitor,
};

/// SQL dialect of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// PostgreSQL.
    Postgres,
    /// MySQL, MariaDB, Percona.
    MySql,
    /// Oracle.
    Oracle,
    /// Unknown: ANSI SQL.
    Generic,
}

impl Dialect {
    /// The dialect of a database audit source, by its `Channel`.
    pub fn of_channel(channel: &str) -> Dialect {
        match channel {
            "pgaudit" | "postgresql" => Dialect::Postgres,
            "mysql_audit" | "mariadb_audit" | "mysql_slow" | "mysql_general" => Dialect::MySql,
            "oracle_audit" => Dialect::Oracle,
            _ => Dialect::Generic,
        }
    }

    fn parser(self) -> Box<dyn sqlparser::dialect::Dialect> {
        use sqlparser::dialect as d;
        match self {
            Dialect::Postgres => Box::new(d::PostgreSqlDialect {}),
            Dialect::MySql => Box::new(d::MySqlDialect {}),
            Dialect::Oracle => Box::new(d::OracleDialect {}),
            Dialect::Generic => Box::new(d::GenericDialect {}),
        }
    }

    fn tag(self) -> char {
        match self {
            Dialect::Postgres => 'p',
            Dialect::MySql => 'm',
            Dialect::Oracle => 'o',
            Dialect::Generic => 'g',
        }
    }
}

/// What a statement does.
#[derive(
    serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
pub enum StatementKind {
    /// `SELECT`.
    Select,
    /// `COPY … TO` a file, a program or STDOUT.
    CopyTo,
    /// `COPY … FROM`.
    CopyFrom,
    /// MySQL `SELECT … INTO OUTFILE|DUMPFILE`.
    IntoOutfile,
    /// `SELECT … INTO new_table` (PostgreSQL) or `INTO @var`.
    SelectInto,
    /// Redshift `UNLOAD`.
    Unload,
    /// `CREATE TABLE … AS SELECT`.
    CreateTableAs,
    /// `INSERT`.
    Insert,
    /// `UPDATE`.
    Update,
    /// `DELETE`.
    Delete,
    /// `MERGE`.
    Merge,
    /// `CREATE USER|ROLE` (and `ALTER USER|ROLE`).
    CreateUser,
    /// `GRANT` or `REVOKE`.
    Grant,
    /// Other definitions: CREATE/ALTER/DROP/TRUNCATE.
    Ddl,
    /// Anything else.
    Other,
}

impl StatementKind {
    /// Lowercase name (`select`, `copy_to`, …), as reports write it.
    pub fn as_str(self) -> &'static str {
        match self {
            StatementKind::Select => "select",
            StatementKind::CopyTo => "copy_to",
            StatementKind::CopyFrom => "copy_from",
            StatementKind::IntoOutfile => "into_outfile",
            StatementKind::SelectInto => "select_into",
            StatementKind::Unload => "unload",
            StatementKind::CreateTableAs => "create_table_as",
            StatementKind::Insert => "insert",
            StatementKind::Update => "update",
            StatementKind::Delete => "delete",
            StatementKind::Merge => "merge",
            StatementKind::CreateUser => "create_user",
            StatementKind::Grant => "grant",
            StatementKind::Ddl => "ddl",
            StatementKind::Other => "other",
        }
    }

    /// Statements that copy data out of the database or into a new table.
    pub fn is_export(self) -> bool {
        matches!(
            self,
            StatementKind::CopyTo
                | StatementKind::IntoOutfile
                | StatementKind::Unload
                | StatementKind::CreateTableAs
                | StatementKind::SelectInto
        )
    }

    /// Statements that read the tables they name (besides the one they write).
    pub fn reads(self) -> bool {
        !matches!(
            self,
            StatementKind::CopyFrom
                | StatementKind::CreateUser
                | StatementKind::Grant
                | StatementKind::Ddl
                | StatementKind::Other
        )
    }
}

/// Where a predicate's value comes from in each statement of a shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ValueRef {
    /// A literal group (one literal or a list of them), by position.
    Group(u32),
    /// A bind parameter, by position in the logged bind values (0-based).
    Bind(u32),
    /// One literal of a group (a value of an INSERT row): (group, index in the group).
    Item(u32, u32),
}

#[derive(Debug, Clone)]
struct Pred {
    /// Table or alias qualifier as written, resolved to a table where possible.
    table: Option<Arc<str>>,
    column: Arc<str>,
    value: ValueRef,
    like: bool,
}

/// The analysis shared by all statements of one fingerprint.
#[derive(Debug)]
pub struct Shape {
    /// Number of predicates ([`Compared::pred`] indexes them).
    pub predicates: usize,
    /// What it does.
    pub kind: StatementKind,
    /// Tables read (lowercase, schema-qualified as written), sorted, without duplicates.
    pub tables_read: Vec<Arc<str>>,
    /// Tables written (INSERT/UPDATE/DELETE/MERGE/CREATE TABLE AS/SELECT INTO/COPY FROM).
    pub tables_written: Vec<Arc<str>>,
    /// The user or role a `CREATE USER|ROLE` creates or a `GRANT … TO` names.
    pub principal: Option<Arc<str>>,
    /// Whether `sqlparser` accepted the statement (otherwise tokens were used).
    pub parsed: bool,
    /// A SELECT whose every output column is an aggregate (`count(*)`, `sum(x)`, …): it
    /// returns figures, not records.
    pub aggregate_only: bool,
    preds: Vec<Pred>,
    /// Column values known to be of one row: the AND-ed equalities of a WHERE clause (with an
    /// UPDATE's assignments), the values of an INSERT row.
    rows: Vec<Vec<Pred>>,
}

/// A column: (its table when known, its name).
pub type ColumnRef = (Option<Arc<str>>, Arc<str>);

impl Shape {
    /// The (table, column) of each value of each row of [`Analysis::rows`].
    pub fn row_columns(&self) -> Vec<Vec<ColumnRef>> {
        self.rows
            .iter()
            .map(|r| {
                r.iter()
                    .map(|p| (p.table.clone(), Arc::clone(&p.column)))
                    .collect()
            })
            .collect()
    }
}

/// A column compared with a value in one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compared {
    /// The table the column belongs to when the statement tells (qualifier or single table).
    pub table: Option<Arc<str>>,
    /// The column.
    pub column: Arc<str>,
    /// The literal or bind value, unquoted.
    pub value: String,
    /// Compared with LIKE (the value is a pattern).
    pub like: bool,
    /// Index of the predicate in the shape (the same for every statement of a fingerprint).
    pub pred: usize,
}

/// One statement analysed.
#[derive(Debug)]
pub struct Analysis {
    /// The analysis shared by the statement's fingerprint.
    pub shape: Arc<Shape>,
    /// Columns compared with values in this statement.
    pub compared: Vec<Compared>,
    /// Column values of one row each, one entry per [`Shape::row_columns`] row (`pred` is the
    /// index in the row; values absent from this statement are left out): what links a
    /// subscriber's identifiers to each other.
    pub rows: Vec<Vec<Compared>>,
    /// The fingerprint was found in the cache.
    pub cached: bool,
}

/// Counters of an analyser.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, Default)]
pub struct SqlStats {
    /// Statements analysed.
    pub statements: u64,
    /// Of them, shapes found in the fingerprint cache.
    pub cache_hits: u64,
    /// Distinct fingerprints the parser rejected (analysed from tokens).
    pub fallback_shapes: u64,
    /// Statements analysed from tokens (including cache hits of such shapes).
    pub fallback_statements: u64,
}

/// Analyses statements, one shape per fingerprint. One per thread.
pub struct Analyzer {
    cache: HashMap<Box<str>, Arc<Shape>>,
    /// Entries kept at most; the cache is emptied when full (shapes are cheap to rebuild).
    capacity: usize,
    use_cache: bool,
    scan: Scan,
    /// Counters.
    pub stats: SqlStats,
}

/// Default number of fingerprints cached per analyser (about 1 KiB each with its key).
pub const CACHE_CAPACITY: usize = 50_000;

impl Default for Analyzer {
    fn default() -> Self {
        Analyzer::new(true)
    }
}

impl Analyzer {
    /// `use_cache: false` parses every statement (for measuring what the cache saves).
    pub fn new(use_cache: bool) -> Self {
        Analyzer {
            cache: HashMap::default(),
            capacity: CACHE_CAPACITY,
            use_cache,
            scan: Scan::default(),
            stats: SqlStats::default(),
        }
    }

    /// Analyses one statement; `binds` are the logged bind values in order.
    pub fn analyse(&mut self, sql: &str, dialect: Dialect, binds: &[String]) -> Analysis {
        self.stats.statements += 1;
        self.scan.run(sql, dialect);
        let cached = if self.use_cache {
            self.cache.get(self.scan.norm.as_str()).cloned()
        } else {
            None
        };
        let hit = cached.is_some();
        let shape = match cached {
            Some(s) => {
                self.stats.cache_hits += 1;
                s
            }
            None => {
                let s = Arc::new(build_shape(sql, dialect, &self.scan));
                if !s.parsed {
                    self.stats.fallback_shapes += 1;
                }
                if self.use_cache {
                    if self.cache.len() >= self.capacity {
                        self.cache.clear();
                    }
                    self.cache
                        .insert(self.scan.norm.as_str().into(), Arc::clone(&s));
                }
                s
            }
        };
        if !shape.parsed {
            self.stats.fallback_statements += 1;
        }
        let mut compared = Vec::new();
        let mut rows = Vec::new();
        for row in &shape.rows {
            let values: Vec<Compared> = row
                .iter()
                .enumerate()
                .filter_map(|(pred, p)| {
                    let value = match p.value {
                        ValueRef::Item(g, i) => {
                            let &(lo, hi) = self.scan.groups.get(g as usize)?;
                            let k = lo + i;
                            (k < hi).then_some(())?;
                            let (s, e) = *self.scan.lits.get(k as usize)?;
                            literal_value(&sql[s..e], dialect)
                        }
                        ValueRef::Bind(b) => binds.get(b as usize)?.clone(),
                        ValueRef::Group(_) => return None,
                    };
                    (!value.is_empty()).then(|| Compared {
                        table: p.table.clone(),
                        column: Arc::clone(&p.column),
                        value,
                        like: false,
                        pred,
                    })
                })
                .collect();
            rows.push(values);
        }
        for (pred, p) in shape.preds.iter().enumerate() {
            let mut push = |value: String| {
                if !value.is_empty() {
                    compared.push(Compared {
                        table: p.table.clone(),
                        column: Arc::clone(&p.column),
                        value,
                        like: p.like,
                        pred,
                    })
                }
            };
            match p.value {
                ValueRef::Group(g) => {
                    if let Some(&(lo, hi)) = self.scan.groups.get(g as usize) {
                        for &(s, e) in &self.scan.lits[lo as usize..hi as usize] {
                            push(literal_value(&sql[s..e], dialect));
                        }
                    }
                }
                ValueRef::Bind(b) => {
                    if let Some(v) = binds.get(b as usize) {
                        push(v.clone());
                    }
                }
                ValueRef::Item(..) => {}
            }
        }
        Analysis {
            shape,
            compared,
            rows,
            cached: hit,
        }
    }

    /// The fingerprint of the last statement analysed.
    pub fn last_fingerprint(&self) -> &str {
        &self.scan.norm
    }
}

/// The unquoted value of a literal token.
fn literal_value(raw: &str, dialect: Dialect) -> String {
    let mut t = raw;
    // N'…', E'…', X'…', B'…' prefixes.
    if t.len() >= 2 && t.as_bytes()[1] == b'\'' && t.as_bytes()[0].is_ascii_alphabetic() {
        t = &t[1..];
    }
    if let Some(inner) = t.strip_prefix('$') {
        // $tag$…$tag$ (the body runs to the end when the closing tag is cut off).
        if let Some(p) = inner.find('$') {
            let tag = &t[..p + 2];
            let body = &t[tag.len()..];
            return body.strip_suffix(tag).unwrap_or(body).to_owned();
        }
        return t.to_owned();
    }
    let q = t.as_bytes().first().copied().unwrap_or(0);
    if q == b'\'' || q == b'"' {
        let inner = inside_quotes(t, q);
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars().peekable();
        while let Some(c) = chars.next() {
            if c == q as char && chars.peek() == Some(&(q as char)) {
                chars.next();
                out.push(c);
            } else if c == '\\' && dialect == Dialect::MySql {
                match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('0') => out.push('\0'),
                    Some(o) => out.push(o),
                    None => out.push('\\'),
                }
            } else {
                out.push(c);
            }
        }
        return out;
    }
    t.to_owned()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tk {
    /// Keyword or unquoted identifier (lowercased in `words`).
    Word,
    /// Quoted identifier.
    Quoted,
    Lit,
    Bind,
    Punct,
}

#[derive(Debug, Clone, Copy)]
struct Tok {
    kind: Tk,
    start: usize,
    end: usize,
}

/// The tokenizer's output for one statement (buffers reused between statements).
#[derive(Default)]
struct Scan {
    toks: Vec<Tok>,
    /// Literal byte ranges, in order.
    lits: Vec<(usize, usize)>,
    /// Literal groups: ranges into `lits`, in order.
    groups: Vec<(u32, u32)>,
    norm: String,
}

fn word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'$' | b'#' | b'@') || b >= 0x80
}

impl Scan {
    fn run(&mut self, sql: &str, dialect: Dialect) {
        self.toks.clear();
        self.lits.clear();
        self.groups.clear();
        self.norm.clear();
        self.norm.push(dialect.tag());
        let b = sql.as_bytes();
        let n = b.len();
        let mut i = 0;
        // A list of literals being recognised: (norm length after "(", first literal, count,
        // expecting a literal).
        let mut list: Option<(usize, usize, u32, bool)> = None;
        let mut last_wordish = false;
        while i < n {
            let c = b[i];
            if c.is_ascii_whitespace() {
                i += 1;
                continue;
            }
            if c == b'-' && b.get(i + 1) == Some(&b'-') || c == b'#' && dialect == Dialect::MySql {
                while i < n && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            if c == b'/' && b.get(i + 1) == Some(&b'*') {
                i += 2;
                while i < n && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i = (i + 2).min(n);
                continue;
            }
            let start = i;
            let kind;
            if c == b'\'' || (c == b'"' && dialect == Dialect::MySql) {
                i = end_of_quoted(b, i, c, dialect == Dialect::MySql);
                kind = Tk::Lit;
            } else if c == b'"' || c == b'`' || c == b'[' && dialect == Dialect::Generic {
                let close = if c == b'[' { b']' } else { c };
                i = end_of_quoted(b, i, close, false);
                kind = Tk::Quoted;
            } else if c.is_ascii_digit()
                || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
            {
                i += 1;
                while i < n
                    && (b[i].is_ascii_alphanumeric()
                        || b[i] == b'.'
                        || (matches!(b[i], b'+' | b'-') && matches!(b[i - 1], b'e' | b'E')))
                {
                    i += 1;
                }
                kind = Tk::Lit;
            } else if c == b'$' && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                i += 1;
                while i < n && b[i].is_ascii_digit() {
                    i += 1;
                }
                kind = Tk::Bind;
            } else if c == b'$' && dialect != Dialect::MySql {
                // $tag$ … $tag$
                let mut j = i + 1;
                while j < n && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                if j < n && b[j] == b'$' {
                    let tag = &sql[i..=j];
                    i = match sql[j + 1..].find(tag) {
                        Some(p) => j + 1 + p + tag.len(),
                        None => n,
                    };
                    kind = Tk::Lit;
                } else {
                    i += 1;
                    kind = Tk::Punct;
                }
            } else if c == b'?' {
                i += 1;
                kind = Tk::Bind;
            } else if c == b':'
                && matches!(dialect, Dialect::Oracle | Dialect::Generic)
                && b.get(i + 1)
                    .is_some_and(|&x| x.is_ascii_alphanumeric() || x == b'_')
                && (i == 0 || b[i - 1] != b':')
            {
                i += 1;
                while i < n && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                kind = Tk::Bind;
            } else if word_byte(c) {
                while i < n && word_byte(b[i]) {
                    i += 1;
                }
                // N'…', E'…', X'…', B'…'
                if i - start == 1 && i < n && b[i] == b'\'' && b"nNeExXbB".contains(&c) {
                    i = end_of_quoted(b, i, b'\'', c == b'e' || c == b'E');
                    kind = Tk::Lit;
                } else {
                    kind = Tk::Word;
                }
            } else {
                i += c.len_utf8_from_byte();
                kind = Tk::Punct;
            }
            let wordish = kind != Tk::Punct;
            if wordish && last_wordish {
                self.norm.push(' ');
            }
            last_wordish = wordish;
            self.toks.push(Tok {
                kind,
                start,
                end: i,
            });
            match kind {
                Tk::Lit => {
                    self.lits.push((start, i));
                    let k = self.lits.len() as u32;
                    self.groups.push((k - 1, k));
                    self.norm.push('?');
                    list = match list {
                        Some((p, f, cnt, true)) => Some((p, f, cnt + 1, false)),
                        _ => None,
                    };
                }
                Tk::Word => {
                    for &x in &b[start..i] {
                        self.norm.push(x.to_ascii_lowercase() as char);
                    }
                    list = None;
                }
                Tk::Bind => {
                    self.norm
                        .push_str(if c == b'?' { "??" } else { &sql[start..i] });
                    list = None;
                }
                Tk::Quoted => {
                    self.norm.push_str(&sql[start..i]);
                    list = None;
                }
                Tk::Punct => {
                    let text = &sql[start..i];
                    match (text, list) {
                        ("(", _) => {
                            self.norm.push('(');
                            list = Some((self.norm.len(), self.groups.len(), 0, true));
                        }
                        (",", Some((p, f, cnt, false))) => {
                            self.norm.push(',');
                            list = Some((p, f, cnt, true));
                        }
                        (")", Some((p, f, cnt, false))) if cnt >= 2 => {
                            // Collapse "(?,?,…)" into one group "(?*)".
                            self.norm.truncate(p);
                            self.norm.push_str("?*)");
                            let lo = self.groups[f].0;
                            let hi = self.groups[self.groups.len() - 1].1;
                            self.groups.truncate(f);
                            self.groups.push((lo, hi));
                            list = None;
                        }
                        (";", _) if i >= n || sql[i..].trim().is_empty() => {
                            // A trailing ";" does not change the statement.
                            self.toks.pop();
                            list = None;
                        }
                        _ => {
                            self.norm.push_str(text);
                            list = None;
                        }
                    }
                }
            }
        }
    }

    /// The group holding the literal that starts at byte `offset`.
    fn group_at(&self, offset: usize) -> Option<u32> {
        self.item_at(offset).map(|(g, _)| g)
    }

    /// The literal that starts at byte `offset`: (its group, its index in the group).
    fn item_at(&self, offset: usize) -> Option<(u32, u32)> {
        let lit = self.lits.partition_point(|&(s, _)| s < offset);
        let lit = if self.lits.get(lit).is_some_and(|&(s, _)| s == offset) {
            lit
        } else {
            // Spans of prefixed literals may start inside the token.
            let l = lit.checked_sub(1)?;
            let (s, e) = self.lits[l];
            if !(s..e).contains(&offset) {
                return None;
            }
            l
        };
        let g = self.groups.partition_point(|&(_, hi)| hi as usize <= lit);
        let &(lo, _) = self.groups.get(g)?;
        Some((g as u32, (lit as u32).checked_sub(lo)?))
    }

    fn word(&self, sql: &str, i: usize) -> Option<String> {
        let t = self.toks.get(i)?;
        match t.kind {
            Tk::Word => Some(sql[t.start..t.end].to_ascii_lowercase()),
            Tk::Quoted => {
                let text = &sql[t.start..t.end];
                let close = if text.starts_with('[') {
                    b']'
                } else {
                    text.as_bytes()[0]
                };
                Some(inside_quotes(text, close).to_owned())
            }
            _ => None,
        }
    }

    fn is(&self, sql: &str, i: usize, w: &str) -> bool {
        self.toks
            .get(i)
            .is_some_and(|t| t.kind == Tk::Word && sql[t.start..t.end].eq_ignore_ascii_case(w))
    }

    fn punct(&self, sql: &str, i: usize, p: &str) -> bool {
        self.toks
            .get(i)
            .is_some_and(|t| t.kind == Tk::Punct && &sql[t.start..t.end] == p)
    }

    /// A dotted name starting at token `i`: (name, tokens used).
    fn name_at(&self, sql: &str, i: usize) -> Option<(String, usize)> {
        let mut name = self.word(sql, i)?;
        let mut j = i + 1;
        while self.punct(sql, j, ".") {
            match self.word(sql, j + 1) {
                Some(w) => {
                    name.push('.');
                    name.push_str(&w);
                    j += 2;
                }
                None => break,
            }
        }
        Some((name, j - i))
    }
}

trait Utf8Len {
    fn len_utf8_from_byte(self) -> usize;
}

impl Utf8Len for u8 {
    fn len_utf8_from_byte(self) -> usize {
        match self {
            0xF0..=0xFF => 4,
            0xE0..=0xEF => 3,
            0xC0..=0xDF => 2,
            _ => 1,
        }
    }
}

/// End (exclusive) of a quoted token starting at `i`; doubled quotes and (optionally)
/// backslash escapes stay inside.
/// The text between a quoted token's quotes. The opening quote is one ASCII byte; the closing
/// one is stripped only when there (a token cut off at the end of the statement runs to its
/// end), so the slice always falls on character boundaries.
fn inside_quotes(text: &str, close: u8) -> &str {
    let inner = text.get(1..).unwrap_or("");
    match inner.as_bytes().last() {
        Some(&c) if c == close => &inner[..inner.len() - 1],
        _ => inner,
    }
}

fn end_of_quoted(b: &[u8], i: usize, q: u8, backslash: bool) -> usize {
    let mut j = i + 1;
    while j < b.len() {
        if backslash && b[j] == b'\\' {
            j += 2;
            continue;
        }
        if b[j] == q {
            if b.get(j + 1) == Some(&q) {
                j += 2;
                continue;
            }
            return j + 1;
        }
        j += 1;
    }
    b.len()
}

const WRITE_TARGET: &[(&[&str], StatementKind)] = &[
    (&["insert", "into"], StatementKind::Insert),
    (&["insert", "ignore", "into"], StatementKind::Insert),
    (&["insert"], StatementKind::Insert),
    (&["replace", "into"], StatementKind::Insert),
    (&["update"], StatementKind::Update),
    (&["delete", "from"], StatementKind::Delete),
    (&["delete"], StatementKind::Delete),
    (&["merge", "into"], StatementKind::Merge),
    (&["create", "table"], StatementKind::Ddl),
    (&["create", "temporary", "table"], StatementKind::Ddl),
    (&["create", "temp", "table"], StatementKind::Ddl),
    (&["create", "unlogged", "table"], StatementKind::Ddl),
    (
        &["create", "global", "temporary", "table"],
        StatementKind::Ddl,
    ),
    (&["copy"], StatementKind::CopyFrom),
];

/// Kind, written table and principal from the tokens alone (shared by both paths).
fn classify(sql: &str, scan: &Scan) -> Classified {
    let at = |i: usize, w: &str| scan.is(sql, i, w);
    let mut first = 0;
    // Leading "(" of a parenthesised query.
    while scan.punct(sql, first, "(") {
        first += 1;
    }
    let words_at = |ws: &[&str]| ws.iter().enumerate().all(|(k, w)| at(first + k, w));
    let any_word = |w: &str| (0..scan.toks.len()).any(|i| at(i, w));
    let mut kind = StatementKind::Other;
    let mut written = None;
    let mut principal = None;
    let mut copied = None;
    for (ws, k) in WRITE_TARGET {
        if words_at(ws) {
            kind = *k;
            let mut j = first + ws.len();
            if *k == StatementKind::Ddl && at(j, "if") {
                j += 3; // IF NOT EXISTS
            }
            written = scan.name_at(sql, j).map(|(n, _)| n);
            break;
        }
    }
    match kind {
        StatementKind::Ddl
            if (0..scan.toks.len()).any(|i| {
                at(i, "as")
                    && (at(i + 1, "select") || at(i + 1, "with") || scan.punct(sql, i + 1, "("))
            }) =>
        {
            kind = StatementKind::CreateTableAs;
        }
        StatementKind::CopyFrom => {
            // COPY name [(cols)] TO|FROM …, COPY (query) TO …
            let mut depth = 0i32;
            for (i, t) in scan.toks.iter().enumerate().skip(first + 1) {
                if t.kind == Tk::Punct {
                    match &sql[t.start..t.end] {
                        "(" => depth += 1,
                        ")" => depth -= 1,
                        _ => {}
                    }
                } else if depth == 0 && at(i, "to") {
                    kind = StatementKind::CopyTo;
                    break;
                } else if depth == 0 && at(i, "from") {
                    break;
                }
            }
            if kind == StatementKind::CopyTo {
                // "COPY name TO": the table is read (the parser does not report it).
                if !scan.punct(sql, first + 1, "(") {
                    copied = written.take();
                } else {
                    written = None;
                }
            }
        }
        _ => {}
    }
    if kind == StatementKind::Other {
        kind = if words_at(&["select"]) || words_at(&["with"]) || words_at(&["table"]) {
            if any_word("outfile") || any_word("dumpfile") {
                StatementKind::IntoOutfile
            } else {
                // SELECT … INTO name FROM (PostgreSQL), not INSERT … SELECT.
                let into = (0..scan.toks.len()).find(|&i| at(i, "into"));
                match into {
                    Some(i) if (0..i).any(|k| at(k, "select")) => {
                        written = scan
                            .name_at(
                                sql,
                                i + 1 + usize::from(at(i + 1, "temporary") || at(i + 1, "temp")),
                            )
                            .map(|(n, _)| n)
                            .filter(|n| !n.starts_with('@') && !n.starts_with(':'));
                        StatementKind::SelectInto
                    }
                    _ => StatementKind::Select,
                }
            }
        } else if words_at(&["unload"]) {
            StatementKind::Unload
        } else if words_at(&["grant"]) || words_at(&["revoke"]) {
            let to = (0..scan.toks.len()).find(|&i| at(i, "to") || at(i, "from"));
            principal = to.and_then(|i| scan.word(sql, i + 1));
            StatementKind::Grant
        } else if (words_at(&["create"]) || words_at(&["alter"]))
            && (at(first + 1, "user") || at(first + 1, "role") || at(first + 1, "login"))
        {
            let mut j = first + 2;
            if at(j, "if") {
                j += 3;
            }
            principal = scan.word(sql, j).map(|w| {
                // MySQL 'name'@'host'
                w.trim_matches('\'').to_owned()
            });
            if principal.is_none()
                && let Some(t) = scan.toks.get(j)
                && t.kind == Tk::Lit
            {
                principal = Some(literal_value(&sql[t.start..t.end], Dialect::MySql));
            }
            StatementKind::CreateUser
        } else if ["create", "alter", "drop", "truncate", "rename", "comment"]
            .iter()
            .any(|w| words_at(&[w]))
        {
            StatementKind::Ddl
        } else {
            StatementKind::Other
        };
    }
    Classified {
        kind,
        written,
        principal,
        copied,
    }
}

/// What the tokens alone tell of a statement.
struct Classified {
    kind: StatementKind,
    written: Option<String>,
    principal: Option<String>,
    /// The table of `COPY table TO …`.
    copied: Option<String>,
}

fn object_name(n: &ObjectName) -> String {
    let mut s = String::new();
    for (k, p) in n.0.iter().enumerate() {
        if k > 0 {
            s.push('.');
        }
        match p {
            ObjectNamePart::Identifier(id) => {
                if id.quote_style.is_some() {
                    s.push_str(&id.value);
                } else {
                    s.push_str(&id.value.to_ascii_lowercase());
                }
            }
            ObjectNamePart::Function(f) => s.push_str(&f.name.value.to_ascii_lowercase()),
        }
    }
    s
}

fn ident_text(id: &sqlparser::ast::Ident) -> String {
    if id.quote_style.is_some() {
        id.value.clone()
    } else {
        id.value.to_ascii_lowercase()
    }
}

/// The sides of `a = b` as (column, value): `'x' = col` is read as `col = 'x'`.
fn column_first<'e>(a: &'e Expr, b: &'e Expr) -> (&'e Expr, &'e Expr) {
    if Collect::column(a).is_some() {
        (a, b)
    } else {
        (b, a)
    }
}

/// Collects relations, aliases and predicates from a parsed statement.
/// Where each bind parameter of a statement takes its value among the logged binds, by the
/// parameter's byte offset: `$1`/`:1` by number, `?` by position, `:name` by first appearance
/// of each distinct name. Built once per statement (a bind list of any length is linear).
struct BindIndex(HashMap<usize, u32>);

impl BindIndex {
    fn new(scan: &Scan, sql: &str) -> BindIndex {
        let mut by_offset = HashMap::default();
        let mut names: HashMap<&str, u32> = HashMap::default();
        for (k, t) in scan.toks.iter().filter(|t| t.kind == Tk::Bind).enumerate() {
            let text = &sql[t.start..t.end];
            let at = if let Ok(n) = text[1..].parse::<u32>() {
                n.checked_sub(1)
            } else if text == "?" {
                Some(k as u32)
            } else {
                let next = names.len() as u32;
                Some(*names.entry(text).or_insert(next))
            };
            if let Some(at) = at {
                by_offset.insert(t.start, at);
            }
        }
        BindIndex(by_offset)
    }

    fn at(&self, offset: usize) -> Option<u32> {
        self.0.get(&offset).copied()
    }
}

/// A predicate as found: (qualifier, column, value, like).
type FoundPred = (Option<String>, String, ValueRef, bool);

struct Collect<'a> {
    sql: &'a str,
    line_starts: Vec<usize>,
    /// Per line: only ASCII (a column is then a byte offset).
    line_ascii: Vec<bool>,
    /// Per line, the byte offset of each character when the line is not ASCII (built on first
    /// use, so a statement's values are found in linear time).
    char_offsets: std::cell::RefCell<HashMap<usize, Vec<usize>>>,
    binds: BindIndex,
    scan: &'a Scan,
    tables: Vec<String>,
    aliases: Vec<(String, String)>,
    preds: Vec<FoundPred>,
    seen: std::collections::HashSet<FoundPred>,
    rows: Vec<Vec<FoundPred>>,
}

impl Collect<'_> {
    fn offset(&self, loc: sqlparser::tokenizer::Location) -> Option<usize> {
        let line = usize::try_from(loc.line).ok()?.checked_sub(1)?;
        let start = *self.line_starts.get(line)?;
        let end = self
            .line_starts
            .get(line + 1)
            .map_or(self.sql.len(), |e| e - 1);
        let col = usize::try_from(loc.column).ok()?.checked_sub(1)?;
        let text = &self.sql[start..end];
        if self.line_ascii.get(line).copied().unwrap_or(false) {
            return Some(start + col.min(text.len()));
        }
        let mut offsets = self.char_offsets.borrow_mut();
        let chars = offsets
            .entry(line)
            .or_insert_with(|| text.char_indices().map(|(b, _)| b).collect());
        Some(start + chars.get(col).copied().unwrap_or(text.len()))
    }

    fn column(e: &Expr) -> Option<(Option<String>, String)> {
        match e {
            Expr::Identifier(id) => Some((None, ident_text(id))),
            Expr::CompoundIdentifier(ids) if ids.len() >= 2 => Some((
                Some(ident_text(&ids[ids.len() - 2])),
                ident_text(&ids[ids.len() - 1]),
            )),
            Expr::Nested(e) => Self::column(e),
            Expr::Cast { expr, .. } => Self::column(expr),
            _ => None,
        }
    }

    /// A value compared with a column: a literal, a list of literals, or a bind.
    fn value(&self, e: &Expr) -> Option<ValueRef> {
        self.value_as(e, false)
    }

    /// A single literal (or bind) as one value of a row.
    fn item(&self, e: &Expr) -> Option<ValueRef> {
        self.value_as(e, true)
    }

    fn value_as(&self, e: &Expr, one: bool) -> Option<ValueRef> {
        match e {
            Expr::Value(ValueWithSpan { value, span }) => {
                let off = self.offset(span.start)?;
                match value {
                    Value::Placeholder(_) => self.binds.at(off).map(ValueRef::Bind),
                    Value::Null | Value::Boolean(_) => None,
                    _ if one => self.scan.item_at(off).map(|(g, i)| ValueRef::Item(g, i)),
                    _ => self.scan.group_at(off).map(ValueRef::Group),
                }
            }
            Expr::Nested(e) | Expr::Cast { expr: e, .. } | Expr::UnaryOp { expr: e, .. } => {
                self.value_as(e, one)
            }
            _ => None,
        }
    }

    /// The `column = value` equalities AND-ed together in `e` (none under OR or NOT).
    fn conjuncts(&self, e: &Expr, out: &mut Vec<FoundPred>) {
        match e {
            Expr::BinaryOp {
                left,
                op: BinaryOperator::And,
                right,
            } => {
                self.conjuncts(left, out);
                self.conjuncts(right, out);
            }
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            } => {
                let (c, v) = column_first(left, right);
                if let (Some((q, c)), Some(v)) = (Self::column(c), self.item(v)) {
                    out.push((q, c, v, false));
                }
            }
            Expr::Nested(e) => self.conjuncts(e, out),
            _ => {}
        }
    }

    /// The column values of `s` known to be of one row each.
    fn row_groups(&mut self, s: &Statement) {
        let mut rows: Vec<Vec<FoundPred>> = Vec::new();
        let assigned = |c: &Self, a: &sqlparser::ast::Assignment, q: &Option<String>| {
            let AssignmentTarget::ColumnName(n) = &a.target else {
                return None;
            };
            let col = n.0.last().and_then(|p| p.as_ident()).map(ident_text)?;
            Some((q.clone(), col, c.item(&a.value)?, false))
        };
        match s {
            Statement::Insert(ins) => {
                let TableObject::TableName(name) = &ins.table else {
                    return;
                };
                let q = Some(object_name(name));
                let cols: Vec<Option<String>> = ins
                    .columns
                    .iter()
                    .map(|c| c.0.last().and_then(|p| p.as_ident()).map(ident_text))
                    .collect();
                if let Some(src) = &ins.source
                    && let SetExpr::Values(v) = src.body.as_ref()
                {
                    for row in &v.rows {
                        rows.push(
                            cols.iter()
                                .zip(&row.content)
                                .filter_map(|(c, e)| {
                                    Some((q.clone(), c.clone()?, self.item(e)?, false))
                                })
                                .collect(),
                        );
                    }
                }
                rows.push(
                    ins.assignments
                        .iter()
                        .filter_map(|a| assigned(self, a, &q))
                        .collect(),
                );
            }
            Statement::Update(u) => {
                let q = match &u.table.relation {
                    TableFactor::Table { name, .. } => Some(object_name(name)),
                    _ => None,
                };
                let mut row: Vec<FoundPred> = u
                    .assignments
                    .iter()
                    .filter_map(|a| assigned(self, a, &q))
                    .collect();
                if let Some(w) = &u.selection {
                    self.conjuncts(w, &mut row);
                }
                rows.push(row);
            }
            Statement::Query(query) => {
                if let SetExpr::Select(sel) = query.body.as_ref()
                    && let Some(w) = &sel.selection
                {
                    let mut row = Vec::new();
                    self.conjuncts(w, &mut row);
                    rows.push(row);
                }
            }
            _ => {}
        }
        self.rows.extend(rows.into_iter().filter(|r| r.len() >= 2));
    }

    fn add(&mut self, col: &Expr, val: &Expr, like: bool) {
        if let (Some((q, c)), Some(v)) = (Self::column(col), self.value(val)) {
            let p = (q, c, v, like);
            if self.seen.insert(p.clone()) {
                self.preds.push(p);
            }
        }
    }
}

impl Visitor for Collect<'_> {
    type Break = ();

    fn pre_visit_relation(&mut self, r: &ObjectName) -> ControlFlow<()> {
        self.tables.push(object_name(r));
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, tf: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name,
            alias: Some(a),
            ..
        } = tf
        {
            self.aliases.push((ident_text(&a.name), object_name(name)));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        match e {
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            } => {
                let (c, v) = column_first(left, right);
                self.add(c, v, false);
            }
            Expr::InList {
                expr,
                list,
                negated: false,
            } => {
                for v in list {
                    self.add(expr, v, false);
                }
            }
            Expr::Like {
                negated: false,
                expr,
                pattern,
                ..
            }
            | Expr::ILike {
                negated: false,
                expr,
                pattern,
                ..
            } => self.add(expr, pattern, true),
            Expr::AnyOp {
                left,
                compare_op: BinaryOperator::Eq,
                right,
                ..
            } => {
                if let Expr::Array(a) = right.as_ref() {
                    for v in &a.elem {
                        self.add(left, v, false);
                    }
                } else {
                    self.add(left, right, false);
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

fn sorted(mut v: Vec<String>) -> Vec<Arc<str>> {
    v.sort();
    v.dedup();
    v.into_iter().map(Arc::from).collect()
}

fn build_shape(sql: &str, dialect: Dialect, scan: &Scan) -> Shape {
    let Classified {
        kind,
        written,
        principal,
        copied,
    } = classify(sql, scan);
    let parsed = sqlparser::parser::Parser::parse_sql(dialect.parser().as_ref(), sql);
    let (tables, aliases, raw, raw_rows, ok) = match parsed {
        Ok(stmts) if !stmts.is_empty() => {
            let mut c = Collect {
                sql,
                line_starts: std::iter::once(0)
                    .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
                    .collect(),
                line_ascii: sql.split('\n').map(str::is_ascii).collect(),
                char_offsets: Default::default(),
                binds: BindIndex::new(scan, sql),
                scan,
                tables: Vec::new(),
                aliases: Vec::new(),
                preds: Vec::new(),
                seen: Default::default(),
                rows: Vec::new(),
            };
            for s in &stmts {
                let _ = s.visit(&mut c);
                c.row_groups(s);
            }
            (c.tables, c.aliases, c.preds, c.rows, true)
        }
        _ => {
            let (t, a, p) = token_analysis(sql, scan);
            (t, a, p, Vec::new(), false)
        }
    };
    let mut tables = tables;
    if let Some(c) = copied
        && !tables.contains(&c)
    {
        tables.push(c);
    }
    let written: Vec<String> = written.into_iter().collect();
    let read: Vec<String> = if kind.reads() {
        tables
            .iter()
            .filter(|t| {
                // The written table counts as read only if named twice (INSERT … SELECT FROM it).
                !written.contains(t) || tables.iter().filter(|x| x == t).count() > 1
            })
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    let all: Vec<&String> = tables.iter().chain(written.iter()).collect();
    let single = {
        let mut d: Vec<&String> = all.clone();
        d.sort();
        d.dedup();
        (d.len() == 1).then(|| d[0].clone())
    };
    let resolve = |(q, column, value, like): FoundPred| {
        let table = match q {
            Some(q) => Some(
                aliases
                    .iter()
                    .find(|(a, _)| *a == q)
                    .map(|(_, t)| t.clone())
                    .or_else(|| {
                        all.iter()
                            .find(|t| t.as_str() == q || t.rsplit('.').next() == Some(q.as_str()))
                            .map(|t| (*t).clone())
                    })
                    .unwrap_or(q),
            ),
            None => single.clone(),
        };
        Pred {
            table: table.map(Arc::from),
            column: Arc::from(column),
            value,
            like,
        }
    };
    let preds: Vec<Pred> = raw.into_iter().map(resolve).collect();
    // A row's values are of one row only when they are of one table.
    let rows: Vec<Vec<Pred>> = raw_rows
        .into_iter()
        .map(|r| r.into_iter().map(resolve).collect::<Vec<Pred>>())
        .filter(|r| r.iter().all(|p| p.table.is_some() && p.table == r[0].table))
        .collect();
    Shape {
        aggregate_only: kind == StatementKind::Select && aggregate_only(sql, scan),
        predicates: preds.len(),
        kind,
        tables_read: sorted(read),
        tables_written: sorted(written),
        principal: principal.map(Arc::from),
        parsed: ok,
        preds,
        rows,
    }
}

const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "stddev",
    "variance",
    "approx_count_distinct",
];

/// Whether every top-level output column of the (first) SELECT is an aggregate call.
fn aggregate_only(sql: &str, scan: &Scan) -> bool {
    let Some(start) = (0..scan.toks.len()).find(|&i| scan.is(sql, i, "select")) else {
        return false;
    };
    let mut i = start + 1;
    if scan.is(sql, i, "distinct") || scan.is(sql, i, "all") {
        i += 1;
    }
    loop {
        // An item: aggregate "(" … ")" [ [AS] alias ]
        let Some(w) = scan.word(sql, i) else {
            return false;
        };
        if !AGGREGATES.contains(&w.as_str()) || !scan.punct(sql, i + 1, "(") {
            return false;
        }
        let mut depth = 0;
        let mut j = i + 1;
        while let Some(t) = scan.toks.get(j) {
            if t.kind == Tk::Punct {
                match &sql[t.start..t.end] {
                    "(" => depth += 1,
                    ")" => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
            }
            j += 1;
        }
        j += 1;
        if scan.is(sql, j, "as") {
            j += 2;
        } else if scan.word(sql, j).is_some_and(|w| w != "from") {
            j += 1;
        }
        if scan.punct(sql, j, ",") {
            i = j + 1;
            continue;
        }
        return scan.is(sql, j, "from") || j >= scan.toks.len();
    }
}

type RawPreds = Vec<(Option<String>, String, ValueRef, bool)>;

/// Tables, aliases and predicates from tokens, for statements the parser rejects.
fn token_analysis(sql: &str, scan: &Scan) -> (Vec<String>, Vec<(String, String)>, RawPreds) {
    let mut tables = Vec::new();
    let mut aliases = Vec::new();
    let mut preds: RawPreds = Vec::new();
    // (column, value) of the IN-list members taken, so lists of any length stay linear.
    let mut in_list: std::collections::HashSet<(String, ValueRef)> = Default::default();
    let binds = BindIndex::new(scan, sql);
    let n = scan.toks.len();
    let lit_group = |i: usize| -> Option<u32> {
        let t = scan.toks.get(i)?;
        (t.kind == Tk::Lit)
            .then(|| scan.group_at(t.start))
            .flatten()
    };
    let mut i = 0;
    while i < n {
        let after_table_kw = ["from", "join", "into", "update", "table"]
            .iter()
            .any(|w| scan.is(sql, i, w));
        if after_table_kw {
            let mut j = i + 1;
            while let Some((name, used)) = scan.name_at(sql, j) {
                if ["select", "outfile", "dumpfile", "where", "set", "values"]
                    .contains(&name.as_str())
                {
                    break;
                }
                j += used;
                let mut alias_at = j;
                if scan.is(sql, alias_at, "as") {
                    alias_at += 1;
                }
                if let Some(a) = scan.word(sql, alias_at)
                    && !RESERVED.contains(&a.as_str())
                {
                    aliases.push((a, name.clone()));
                    j = alias_at + 1;
                }
                tables.push(name);
                if scan.punct(sql, j, ",") && scan.is(sql, i, "from") {
                    j += 1;
                    continue;
                }
                break;
            }
        }
        // column (= | IN ( | LIKE) value
        if let Some((name, used)) = scan.name_at(sql, i) {
            let (q, c) = match name.rsplit_once('.') {
                Some((q, c)) => (
                    Some(q.rsplit('.').next().unwrap_or(q).to_owned()),
                    c.to_owned(),
                ),
                None => (None, name.clone()),
            };
            let j = i + used;
            let bind = |k: usize| -> Option<ValueRef> {
                let t = scan.toks.get(k)?;
                if t.kind == Tk::Bind {
                    binds.at(t.start).map(ValueRef::Bind)
                } else {
                    lit_group(k).map(ValueRef::Group)
                }
            };
            if scan.punct(sql, j, "=") {
                if let Some(v) = bind(j + 1) {
                    preds.push((q, c, v, false));
                }
            } else if scan.is(sql, j, "like") || scan.is(sql, j, "ilike") {
                if let Some(v) = bind(j + 1) {
                    preds.push((q, c, v, true));
                }
            } else if scan.is(sql, j, "in") && scan.punct(sql, j + 1, "(") {
                let mut k = j + 2;
                while let Some(v) = bind(k) {
                    if in_list.insert((c.clone(), v)) {
                        preds.push((q.clone(), c.clone(), v, false));
                    }
                    k += 1;
                    if !scan.punct(sql, k, ",") {
                        break;
                    }
                    k += 1;
                }
            }
        }
        i += 1;
    }
    (tables, aliases, preds)
}

const RESERVED: &[&str] = &[
    "where",
    "join",
    "inner",
    "left",
    "right",
    "full",
    "outer",
    "cross",
    "on",
    "using",
    "group",
    "order",
    "limit",
    "set",
    "values",
    "select",
    "union",
    "having",
    "natural",
    "into",
    "as",
    "with",
    "for",
    "window",
    "offset",
    "fetch",
    "returning",
    "partition",
    "lateral",
    "straight_join",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn run(sql: &str, d: Dialect, binds: &[&str]) -> Analysis {
        let binds: Vec<String> = binds.iter().map(|s| s.to_string()).collect();
        Analyzer::default().analyse(sql, d, &binds)
    }

    fn values(a: &Analysis) -> Vec<(String, String)> {
        a.compared
            .iter()
            .map(|c| (c.column.to_string(), c.value.clone()))
            .collect()
    }

    const DIALECTS: [Dialect; 4] = [
        Dialect::Postgres,
        Dialect::MySql,
        Dialect::Oracle,
        Dialect::Generic,
    ];

    fn rows(a: &Analysis) -> Vec<Vec<String>> {
        a.rows
            .iter()
            .filter(|r| !r.is_empty())
            .map(|r| {
                r.iter()
                    .map(|c| {
                        format!(
                            "{}.{}={}",
                            c.table.as_deref().unwrap_or("?"),
                            c.column,
                            c.value
                        )
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn values_of_one_row_are_found_and_reused_by_fingerprint() {
        let mut an = Analyzer::default();
        let ins = "INSERT INTO cdr (calling_number, imsi, imei, duration) VALUES ('33611', '20815', '35693', 61), ('33622', '20816', '35694', 5)";
        let a = an.analyse(ins, Dialect::Postgres, &[]);
        assert_eq!(
            rows(&a),
            vec![
                vec![
                    "cdr.calling_number=33611",
                    "cdr.imsi=20815",
                    "cdr.imei=35693",
                    "cdr.duration=61"
                ],
                vec![
                    "cdr.calling_number=33622",
                    "cdr.imsi=20816",
                    "cdr.imei=35694",
                    "cdr.duration=5"
                ],
            ]
        );
        // The same shape with other values: the cached shape reads this statement's literals.
        let b = an.analyse(
            &ins.replace("33611", "33699").replace("35694", "35600"),
            Dialect::Postgres,
            &[],
        );
        assert!(b.cached);
        assert_eq!(rows(&b)[0][0], "cdr.calling_number=33699");
        assert_eq!(rows(&b)[1][2], "cdr.imei=35600");
        // AND-ed equalities are one row; OR-ed ones are not; UPDATE's SET joins its WHERE;
        // columns of two tables are not one row.
        type Case<'a> = (&'a str, Dialect, &'a [&'a str], Vec<Vec<&'a str>>);
        let cases: [Case; 4] = [
            (
                "SELECT * FROM subscriber s WHERE s.msisdn = '336' AND s.imsi = '208' AND (x = 1 OR imei = '35')",
                Dialect::MySql,
                &[],
                vec![vec!["subscriber.msisdn=336", "subscriber.imsi=208"]],
            ),
            (
                "SELECT * FROM cdr WHERE calling_number = '336' OR imsi = '208'",
                Dialect::Postgres,
                &[],
                vec![],
            ),
            (
                "UPDATE device SET imei = $1 WHERE imsi = $2",
                Dialect::Postgres,
                &["35693", "20815"],
                vec![vec!["device.imei=35693", "device.imsi=20815"]],
            ),
            (
                "SELECT * FROM cdr c JOIN device d ON d.imsi = c.imsi WHERE c.calling_number = '336' AND d.imei = '35'",
                Dialect::Postgres,
                &[],
                vec![],
            ),
        ];
        for (sql, d, binds, want) in cases {
            assert_eq!(rows(&run(sql, d, binds)), want, "{sql}");
        }
    }

    /// Statements cut off inside a quote, in every dialect: no panic (one such statement in an
    /// audit log used to stop hunt, scope and watch).
    #[test]
    fn unterminated_quotes_do_not_panic() {
        for sql in [
            "SELECT * FROM \"",
            "SELECT * FROM `",
            "SELECT * FROM [",
            "SELECT * FROM x WHERE msisdn = '",
            "SELECT * FROM x WHERE msisdn = \"é",
            "SELECT * FROM x WHERE msisdn = 'é",
            "SELECT * FROM `é",
            "SELECT * FROM \"é",
            "SELECT * FROM [é",
            "SELECT $a$ééé",
            "SELECT $a$",
            "SELECT N'é",
            "SELECT E'\\",
            "SELECT '\\",
            "'",
            "\"",
            "$",
            "$$",
            "e'",
            "SELECT * FROM t WHERE a IN ('x', \"é",
        ] {
            for d in DIALECTS {
                run(sql, d, &["é", "1"]);
            }
        }
        let a = run(
            "SELECT * FROM x WHERE msisdn = '3361234567",
            Dialect::Postgres,
            &[],
        );
        assert_eq!(values(&a), [("msisdn".into(), "3361234567".into())]);
    }

    /// `IN` lists of literals and of binds are analysed in linear time (a 100,000-element list
    /// took 42 s), and every member is found.
    #[test]
    fn long_in_lists_are_linear() {
        let list = |n: usize, binds: bool| -> String {
            let items: Vec<String> = (0..n)
                .map(|i| {
                    if binds {
                        format!("${}", i + 1)
                    } else {
                        format!("'336{i:08}'")
                    }
                })
                .collect();
            format!(
                "SELECT * FROM customer WHERE msisdn IN ({})",
                items.join(", ")
            )
        };
        for binds in [false, true] {
            cellwarden_testkit::assert_linear("IN list", 4_000, |n| {
                let sql = list(n, binds);
                let bind_values: Vec<String> = (0..n).map(|i| format!("336{i:08}")).collect();
                let a = Analyzer::new(false).analyse(&sql, Dialect::Postgres, &bind_values);
                assert_eq!(a.compared.len(), n);
            });
        }
        // Multi-byte text before the list: columns count characters, not bytes.
        let sql = format!(
            "SELECT 'é' AS x, * FROM customer WHERE msisdn IN ({})",
            "'33611111111', '33622222222'"
        );
        let a = run(&sql, Dialect::Postgres, &[]);
        assert_eq!(a.compared.len(), 2, "{:?}", values(&a));
    }

    #[test]
    fn equality_in_lists_or_chains() {
        let a = run(
            "SELECT * FROM cdr WHERE calling_number = '33611111111' OR called_number IN ('33622222222', '33633333333') OR imsi = 208150123456789",
            Dialect::Postgres,
            &[],
        );
        assert!(a.shape.parsed);
        assert_eq!(a.shape.kind, StatementKind::Select);
        assert_eq!(a.shape.tables_read, vec![Arc::from("cdr")]);
        assert_eq!(
            values(&a),
            vec![
                ("calling_number".into(), "33611111111".into()),
                ("called_number".into(), "33622222222".into()),
                ("called_number".into(), "33633333333".into()),
                ("imsi".into(), "208150123456789".into()),
            ]
        );
        assert!(a.compared.iter().all(|c| c.table.as_deref() == Some("cdr")));
    }

    #[test]
    fn fingerprint_cache_reuses_shape_and_reads_new_literals() {
        let mut an = Analyzer::default();
        let a = an.analyse(
            "select * from cdr where msisdn in ('1','2')",
            Dialect::Postgres,
            &[],
        );
        let fp1 = an.last_fingerprint().to_owned();
        assert!(!a.cached);
        let b = an.analyse(
            "SELECT *\n  FROM cdr -- lookup\n WHERE msisdn IN ('33611111111', '33622222222', '33633333333');",
            Dialect::Postgres,
            &[],
        );
        assert_eq!(an.last_fingerprint(), fp1);
        assert!(b.cached);
        assert_eq!(b.compared.len(), 3);
        assert_eq!(b.compared[2].value, "33633333333");
        assert_eq!(an.stats.cache_hits, 1);
        assert_eq!(fp1, "pselect*from cdr where msisdn in(?*)");
    }

    #[test]
    fn joins_aliases_and_quoted_identifiers() {
        let a = run(
            r#"select c.*, l."CELL_ID" from "Billing".cdr c join location l on l.imsi = c.imsi where c."a_number" = '0612345678'"#,
            Dialect::Postgres,
            &[],
        );
        assert_eq!(a.shape.tables_read.len(), 2);
        assert!(a.shape.tables_read.iter().any(|t| &**t == "Billing.cdr"));
        assert_eq!(a.compared.len(), 1);
        assert_eq!(a.compared[0].table.as_deref(), Some("Billing.cdr"));
        assert_eq!(a.compared[0].column.as_ref(), "a_number");
    }

    #[test]
    fn binds_of_each_dialect() {
        let a = run(
            "SELECT * FROM cdr WHERE imsi = $2 AND call_date > $1",
            Dialect::Postgres,
            &["2026-01-01", "208150123456789"],
        );
        assert_eq!(values(&a), vec![("imsi".into(), "208150123456789".into())]);
        let o = run(
            "select * from cdr.calls where calling_number = :1 or called_number = :1",
            Dialect::Oracle,
            &["33612345678"],
        );
        assert_eq!(o.compared.len(), 2);
        let m = run(
            "SELECT * FROM cdr WHERE start_time > ? AND msisdn = ?",
            Dialect::MySql,
            &["2026-01-01", "447700900123"],
        );
        assert_eq!(values(&m), vec![("msisdn".into(), "447700900123".into())]);
        let n = run(
            "select * from cdr where msisdn = :target and imsi = :other",
            Dialect::Oracle,
            &["447700900123", "208150123456789"],
        );
        assert_eq!(n.compared[1].value, "208150123456789");
    }

    #[test]
    fn like_subquery_any_array_and_odd_casing() {
        let a = run(
            "SeLeCt * FrOm sms WHERE Sender LIKE '336123%' AND imsi IN (SELECT imsi FROM subscriber WHERE MSISDN = '33699999999') AND imei = ANY(ARRAY['356938035643809'])",
            Dialect::Postgres,
            &[],
        );
        let v = values(&a);
        assert!(v.contains(&("sender".into(), "336123%".into())));
        assert!(v.contains(&("msisdn".into(), "33699999999".into())));
        assert!(v.contains(&("imei".into(), "356938035643809".into())));
        assert!(a.compared.iter().any(|c| c.like));
        assert_eq!(a.shape.tables_read.len(), 2);
    }

    #[test]
    fn statement_kinds() {
        let k = |sql: &str, d| run(sql, d, &[]).shape.kind;
        assert_eq!(
            k("COPY cdr TO '/tmp/x.csv' CSV", Dialect::Postgres),
            StatementKind::CopyTo
        );
        assert_eq!(
            k(
                "COPY (SELECT * FROM cdr) TO PROGRAM 'gzip > /tmp/x'",
                Dialect::Postgres
            ),
            StatementKind::CopyTo
        );
        assert_eq!(
            k("COPY cdr FROM '/tmp/in.csv'", Dialect::Postgres),
            StatementKind::CopyFrom
        );
        assert_eq!(
            k(
                "SELECT * FROM cdr INTO OUTFILE '/tmp/cdr.txt'",
                Dialect::MySql
            ),
            StatementKind::IntoOutfile
        );
        assert_eq!(
            k("SELECT * INTO stage1 FROM cdr", Dialect::Postgres),
            StatementKind::SelectInto
        );
        assert_eq!(
            k("CREATE TABLE x AS SELECT * FROM cdr", Dialect::Postgres),
            StatementKind::CreateTableAs
        );
        assert_eq!(
            k(
                "UNLOAD ('select * from cdr') TO 's3://b/x'",
                Dialect::Generic
            ),
            StatementKind::Unload
        );
        assert_eq!(
            k("update subscriber set x=1 where msisdn='1'", Dialect::MySql),
            StatementKind::Update
        );
        assert_eq!(
            k("DELETE FROM cdr WHERE id = 4", Dialect::MySql),
            StatementKind::Delete
        );
        let c = run(
            "CREATE USER svc_backup IDENTIFIED BY 'x'",
            Dialect::Oracle,
            &[],
        );
        assert_eq!(c.shape.kind, StatementKind::CreateUser);
        assert_eq!(c.shape.principal.as_deref(), Some("svc_backup"));
        let g = run("GRANT SELECT ON cdr TO svc_backup", Dialect::Postgres, &[]);
        assert_eq!(g.shape.kind, StatementKind::Grant);
        assert_eq!(g.shape.principal.as_deref(), Some("svc_backup"));
        let m = run(
            "CREATE USER 'etl2'@'%' IDENTIFIED BY 'pw'",
            Dialect::MySql,
            &[],
        );
        assert_eq!(m.shape.principal.as_deref(), Some("etl2"));
        let i = run(
            "INSERT INTO audit_copy SELECT * FROM cdr WHERE msisdn = '33611111111'",
            Dialect::Postgres,
            &[],
        );
        assert_eq!(i.shape.tables_written, vec![Arc::from("audit_copy")]);
        assert_eq!(i.shape.tables_read, vec![Arc::from("cdr")]);
    }

    #[test]
    fn aggregate_only_selects() {
        let agg = |sql: &str| run(sql, Dialect::Postgres, &[]).shape.aggregate_only;
        assert!(agg("SELECT count(*) FROM cdr"));
        assert!(agg(
            "select COUNT(DISTINCT msisdn) AS n, sum(duration) total from cdr where x > 1"
        ));
        assert!(!agg("SELECT * FROM cdr"));
        assert!(!agg("SELECT msisdn, count(*) FROM cdr GROUP BY msisdn"));
        assert!(!agg("SELECT count(*) + 1, msisdn FROM cdr"));
    }

    #[test]
    fn unparsable_sql_falls_back_to_tokens() {
        let mut an = Analyzer::default();
        let a = an.analyse(
            "SELECT /*+ FULL(c) */ * FROM cdr c WHERE c.msisdn = '33611111111' AND c.imsi IN ('208150123456789', '208150123456780') CONNECT BY PRIOR x = y @@@",
            Dialect::Oracle,
            &[],
        );
        assert!(!a.shape.parsed);
        assert_eq!(an.stats.fallback_shapes, 1);
        assert_eq!(a.shape.tables_read, vec![Arc::from("cdr")]);
        let v = values(&a);
        assert!(v.contains(&("msisdn".into(), "33611111111".into())));
        assert!(v.contains(&("imsi".into(), "208150123456780".into())));
        assert_eq!(a.compared[0].table.as_deref(), Some("cdr"));
    }

    #[test]
    fn literal_forms() {
        assert_eq!(literal_value("'O''Neil'", Dialect::Postgres), "O'Neil");
        assert_eq!(literal_value(r"'a\'b'", Dialect::MySql), "a'b");
        assert_eq!(literal_value("N'336'", Dialect::Generic), "336");
        assert_eq!(literal_value("$q$33611$q$", Dialect::Postgres), "33611");
        let a = run(
            "select * from t where msisdn = $$33611111111$$",
            Dialect::Postgres,
            &[],
        );
        assert_eq!(a.compared[0].value, "33611111111");
        let m = run(
            "select * from t where msisdn = \"33611111111\" # comment",
            Dialect::MySql,
            &[],
        );
        assert_eq!(m.compared[0].value, "33611111111");
    }
}
