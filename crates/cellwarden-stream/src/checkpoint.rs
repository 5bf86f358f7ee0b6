//! Checkpoints: where every source stands, plus a journal of the records that hold analytics
//! state, so a restart rebuilds the same state by replaying them.
//!
//! `checkpoint.json` is written to a temporary file, synced and renamed over the old one, so it
//! is always whole. `journal.jsonl` holds the records that fed stateful detectors (database
//! statements, flows, matches of correlated rules) and the watermarks at which state moved;
//! the checkpoint names the journal length it goes with, and anything after it is cut off on
//! restart (those records are read again from the sources).
//!
//! The journal is a sequence of JSON lines (watermarks, column headers, the sources records
//! come from) and binary record frames: [`FRAME`], the payload's length (u32, little endian),
//! then source id (u32), line (u64), event time in ms (i64), uses (u8), header id + 1 (u32,
//! 0: none) and the record's bytes as read. A record is written as read, without escaping or
//! repeating its file's name (JSON records, which journals written before held, are still
//! read).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cellwarden_pipeline::Uses;
use cellwarden_source::{Format, Unit};
use serde::{Deserialize, Serialize};

use crate::source::FilePosition;

/// Everything a restart needs besides the journal.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Format version of the checkpoint.
    pub version: u32,
    /// Followed paths.
    pub files: BTreeMap<String, FilePosition>,
    /// Messages numbered per receiver.
    pub counters: BTreeMap<String, u64>,
    /// Next offset per Kafka `topic/partition`.
    #[serde(default)]
    pub kafka: BTreeMap<String, i64>,
    /// Last record number per source received from the first stage (later copies of a record
    /// a restarted first stage sends again are skipped).
    #[serde(default)]
    pub forwarded: BTreeMap<String, u64>,
    /// Bytes of the journal the checkpoint goes with (anything after is cut off on restart).
    pub journal_len: u64,
    /// Length of the alert file (`-o`) when the checkpoint was written.
    pub output_len: Option<u64>,
    /// Latest event time per source (ms).
    pub clocks: Vec<(String, i64)>,
    /// When it was written (RFC 3339 UTC).
    pub written_at: String,
}

const NAME: &str = "checkpoint.json";
const JOURNAL: &str = "journal.jsonl";

impl Checkpoint {
    /// The checkpoint in `dir`, if one was written.
    pub fn load(dir: &Path) -> io::Result<Option<Checkpoint>> {
        match std::fs::read(dir.join(NAME)) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes atomically: temporary file, fsync, rename, fsync of the folder.
    pub fn save(&self, dir: &Path) -> io::Result<()> {
        let tmp = dir.join(format!("{NAME}.tmp"));
        {
            let mut f = File::create(&tmp)?;
            serde_json::to_writer_pretty(&mut f, self)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, dir.join(NAME))?;
        File::open(dir)?.sync_all()
    }
}

/// Format names as the journal writes them.
pub(crate) fn format_name(f: Format) -> &'static str {
    match f {
        Format::Evtx => "evtx",
        Format::Json => "json",
        Format::Auditd => "auditd",
        Format::Syslog => "syslog",
        // The name journals written before the format read every server message.
        Format::PgLog => "pgaudit",
        Format::PgCsv => "pgcsv",
        Format::MariaDbAudit => "mariadb",
        Format::MySqlAuditXml => "mysqlauditxml",
        Format::PerconaAuditCsv => "perconaauditcsv",
        Format::OracleAuditXml => "oracleauditxml",
        Format::MySqlSlow => "mysqlslow",
        Format::MySqlGeneral => "mysqlgeneral",
        Format::MySqlError => "mysqlerror",
        Format::OracleCsv => "oraclecsv",
        Format::ZeekTsv => "zeektsv",
        Format::NfdumpCsv => "nfdumpcsv",
        Format::Capture => "capture",
    }
}

pub(crate) fn format_of(name: &str) -> Option<Format> {
    [
        Format::Evtx,
        Format::Json,
        Format::Auditd,
        Format::Syslog,
        Format::PgLog,
        Format::PgCsv,
        Format::MariaDbAudit,
        Format::MySqlAuditXml,
        Format::PerconaAuditCsv,
        Format::OracleAuditXml,
        Format::MySqlSlow,
        Format::MySqlGeneral,
        Format::MySqlError,
        Format::OracleCsv,
        Format::ZeekTsv,
        Format::NfdumpCsv,
        Format::Capture,
    ]
    .into_iter()
    .find(|f| format_name(*f) == name)
}

/// One journal line. Strings are borrowed when written (no copy of each record's text) and
/// owned when read.
#[derive(Serialize, Deserialize)]
struct Entry<'a> {
    /// A column header: id and names.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    hid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    cols: Option<Vec<String>>,
    /// A watermark (ms) at which state moved.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    w: Option<i64>,
    /// Set on a watermark at which closed days waited (a backlog was read): only correlated
    /// matches were released there.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    d: Option<u8>,
    /// A record: file, format, year, header id, line, event time (ms), text.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    f: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    k: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    y: Option<i16>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    h: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    l: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    t: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    r: Option<Cow<'a, str>>,
    /// What the record is for (`Uses::bits`; absent: everything).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    u: Option<u8>,
    /// A source of record frames: its id (with `f`, `k` and `y`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    sid: Option<u32>,
}

/// The first byte of a record frame (a JSON line never starts with it).
const FRAME: u8 = 0x1e;
/// Bytes of a frame's payload before the record: source, line, time, uses, header.
const FRAME_FIXED: usize = 4 + 8 + 8 + 1 + 4;

/// One piece of the journal: a JSON line (without its newline) or a whole record frame.
enum Piece {
    Json,
    Frame,
}

/// Reads the next piece into `buf`; `None` at the end (a frame cut short by a crash ends the
/// journal: it lies past any checkpointed length).
fn next_piece(r: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<Option<Piece>> {
    buf.clear();
    let first = match r.fill_buf()?.first() {
        None => return Ok(None),
        Some(b) => *b,
    };
    if first != FRAME {
        r.read_until(b'\n', buf)?;
        if buf.last() == Some(&b'\n') {
            buf.pop();
        }
        return Ok(Some(Piece::Json));
    }
    buf.resize(5, 0);
    if let Err(e) = r.read_exact(buf) {
        return end_or(e);
    }
    let len = u32::from_le_bytes(buf[1..5].try_into().expect("four bytes")) as usize;
    if len < FRAME_FIXED {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "journal: a record frame shorter than its fixed part",
        ));
    }
    buf.resize(5 + len, 0);
    if let Err(e) = r.read_exact(&mut buf[5..]) {
        return end_or(e);
    }
    Ok(Some(Piece::Frame))
}

fn end_or(e: io::Error) -> io::Result<Option<Piece>> {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        Ok(None)
    } else {
        Err(e)
    }
}

/// A record frame's fields (the frame as [`next_piece`] read it).
struct FrameRecord<'b> {
    source: u32,
    line: u64,
    time: i64,
    uses: u8,
    header: Option<u32>,
    text: &'b [u8],
}

impl<'b> FrameRecord<'b> {
    fn of(frame: &'b [u8]) -> FrameRecord<'b> {
        let p = &frame[5..];
        let u32_at = |i: usize| u32::from_le_bytes(p[i..i + 4].try_into().expect("four bytes"));
        let u64_at = |i: usize| u64::from_le_bytes(p[i..i + 8].try_into().expect("eight bytes"));
        FrameRecord {
            source: u32_at(0),
            line: u64_at(4),
            time: u64_at(12) as i64,
            uses: p[20],
            header: u32_at(21).checked_sub(1),
            text: &p[FRAME_FIXED..],
        }
    }
}

/// Event time between two marks of the journal's watermarks (a mark per hour: a few hundred
/// for a month's journal).
const MARK_EVERY_MS: i64 = 3_600_000;

/// The append-only journal of stateful records.
pub struct Journal {
    path: PathBuf,
    out: BufWriter<File>,
    len: u64,
    headers: HashMap<Vec<String>, u32>,
    /// Ids of the (file, format, year) of records written, defined by a JSON line before
    /// their first frame.
    sources: HashMap<(Arc<str>, Format, i16), u32>,
    /// The line being written (kept: one allocation for all of them).
    line: Vec<u8>,
    /// The earliest time (ms) of a record or watermark in the journal; `i64::MIN` when not
    /// known (a journal opened from disk, until its first compaction).
    oldest: i64,
    /// (watermark, journal length once written) of watermark entries, one per
    /// [`MARK_EVERY_MS`]: records come roughly in time order, so what lies before a time is
    /// about the bytes up to the last watermark before it. They cover the journal from its
    /// start once `oldest` is known.
    marks: Vec<(i64, u64)>,
}

/// The times of a journal entry, read without the rest of it (compaction looks at nothing
/// else).
#[derive(Deserialize)]
struct Times {
    #[serde(default)]
    t: Option<i64>,
    #[serde(default)]
    w: Option<i64>,
}

/// What replaying the journal gives, in order.
pub enum Replayed {
    /// A unit of journaled records, and what they are for.
    Unit(Unit, Uses),
    /// A watermark the state moved to.
    Watermark(i64),
    /// A watermark to which correlated matches were released while closed days waited.
    Released(i64),
}

impl Journal {
    /// Opens the journal, cutting off what follows `keep` bytes (written after the last
    /// checkpoint).
    pub fn open(dir: &Path, keep: u64) -> io::Result<Journal> {
        let path = dir.join(JOURNAL);
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)?;
        let len = f.metadata()?.len();
        if len > keep {
            f.set_len(keep)?;
        }
        let mut f = f;
        use std::io::Seek;
        f.seek(io::SeekFrom::End(0))?;
        Ok(Journal {
            path,
            out: BufWriter::with_capacity(1 << 20, f),
            len: len.min(keep),
            headers: HashMap::new(),
            sources: HashMap::new(),
            line: Vec::new(),
            oldest: if len.min(keep) == 0 {
                i64::MAX
            } else {
                i64::MIN
            },
            marks: Vec::new(),
        })
    }

    fn write(&mut self, e: &Entry<'_>) -> io::Result<()> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, e)?;
        self.line.push(b'\n');
        self.out.write_all(&self.line)?;
        self.len += self.line.len() as u64;
        Ok(())
    }

    /// Journals the records of `unit` whose lines are in `lines` (with their event times).
    pub fn records(
        &mut self,
        unit: &UnitCopy,
        uses: Uses,
        lines: &[crate::engine::Handed],
    ) -> io::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let h = match &unit.header {
            None => None,
            Some(cols) => Some(match self.headers.get(cols.as_ref()) {
                Some(id) => *id,
                None => {
                    let id = self.headers.len() as u32;
                    self.headers.insert(cols.to_vec(), id);
                    self.write(&Entry {
                        hid: Some(id),
                        cols: Some(cols.to_vec()),
                        ..empty()
                    })?;
                    id
                }
            }),
        };
        let key = (Arc::clone(&unit.file), unit.kind, unit.year);
        let sid = match self.sources.get(&key) {
            Some(id) => *id,
            None => {
                let id = self.sources.len() as u32;
                self.write(&Entry {
                    sid: Some(id),
                    f: Some(Cow::Borrowed(&unit.file)),
                    k: Some(Cow::Borrowed(format_name(unit.kind))),
                    y: Some(unit.year),
                    ..empty()
                })?;
                self.sources.insert(key, id);
                id
            }
        };
        if let Some(t) = lines.iter().map(|h| h.time).min() {
            self.oldest = self.oldest.min(t);
        }
        // The engine hands records in the unit's order: walk both lists together (a map
        // when they are not in order).
        let in_order = lines.is_sorted_by_key(|h| h.record);
        let by_line: HashMap<u64, i64> = if in_order {
            HashMap::new()
        } else {
            lines.iter().map(|h| (h.record, h.time)).collect()
        };
        let mut next = lines.iter().peekable();
        for (line, start, end) in &unit.records {
            let time = if in_order {
                while next.next_if(|h| h.record < *line).is_some() {}
                let t = next.peek().filter(|h| h.record == *line).map(|h| h.time);
                while next.next_if(|h| h.record == *line).is_some() {}
                t
            } else {
                by_line.get(line).copied()
            };
            let Some(t) = time else { continue };
            let text = &unit.buf[*start..*end];
            if text.len() > (u32::MAX as usize) - FRAME_FIXED {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{}:{line}: a record too long to journal", unit.file),
                ));
            }
            let b = &mut self.line;
            b.clear();
            b.push(FRAME);
            b.extend_from_slice(&((FRAME_FIXED + text.len()) as u32).to_le_bytes());
            b.extend_from_slice(&sid.to_le_bytes());
            b.extend_from_slice(&line.to_le_bytes());
            b.extend_from_slice(&t.to_le_bytes());
            b.push(uses.bits());
            b.extend_from_slice(&h.map_or(0, |h| h + 1).to_le_bytes());
            b.extend_from_slice(text);
            self.out.write_all(b)?;
            self.len += b.len() as u64;
        }
        Ok(())
    }

    /// Journals a watermark at which state moved (a replay moves at the same points).
    /// `days_wait`: closed days were left to be judged later (a backlog was read); a replay
    /// then only releases correlated matches there.
    pub fn watermark(&mut self, ms: i64, days_wait: bool) -> io::Result<()> {
        self.oldest = self.oldest.min(ms);
        mark(&mut self.marks, ms, self.len);
        self.write(&Entry {
            w: Some(ms),
            d: days_wait.then_some(1),
            ..empty()
        })
    }

    /// Flushes and syncs; returns the length a checkpoint may name.
    pub fn sync(&mut self) -> io::Result<u64> {
        self.out.flush()?;
        self.out.get_ref().sync_data()?;
        Ok(self.len)
    }

    /// Bytes written.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Nothing written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether [`Journal::compact`] at `from_ms` would drop anything (false once a
    /// compaction left nothing older: a large journal whose days are all kept is not read and
    /// written again at every checkpoint).
    pub fn has_before(&self, from_ms: i64) -> bool {
        self.oldest < from_ms
    }

    /// Whether compacting at `from_ms` is worth it: it would drop anything, and (when the
    /// journal's watermarks are known) about a quarter of it or more, so that a backlog read
    /// day after day does not rewrite the whole journal for every day that leaves the window.
    pub fn worth_compacting(&self, from_ms: i64) -> bool {
        if !self.has_before(from_ms) {
            return false;
        }
        if self.oldest == i64::MIN {
            // Opened from disk: where its days lie is not known until a compaction.
            return true;
        }
        let before = self
            .marks
            .iter()
            .rev()
            .find(|m| m.0 < from_ms)
            .map_or(0, |m| m.1);
        before >= self.len / 4
    }

    /// Rewrites the journal without records older than `from_ms` (their days are no longer
    /// kept); returns the new length. Called right after a checkpoint, which is then written
    /// again with the new length.
    pub fn compact(&mut self, from_ms: i64) -> io::Result<u64> {
        self.sync()?;
        let mut oldest = i64::MAX;
        let mut marks = Vec::new();
        let tmp = self.path.with_extension("jsonl.tmp");
        let mut kept = 0u64;
        {
            let mut w = BufWriter::new(File::create(&tmp)?);
            let mut r = BufReader::with_capacity(1 << 20, File::open(&self.path)?);
            let mut piece = Vec::new();
            while let Some(kind) = next_piece(&mut r, &mut piece)? {
                let times = match kind {
                    Piece::Frame => Some(Times {
                        t: Some(FrameRecord::of(&piece).time),
                        w: None,
                    }),
                    Piece::Json => serde_json::from_slice::<Times>(&piece).ok(),
                };
                let drop = times.as_ref().is_some_and(|e| {
                    e.t.is_some_and(|t| t < from_ms) || e.w.is_some_and(|w| w < from_ms)
                });
                if !drop {
                    if let Some(e) = times {
                        oldest = oldest.min(e.t.unwrap_or(i64::MAX).min(e.w.unwrap_or(i64::MAX)));
                        if let Some(w) = e.w {
                            mark(&mut marks, w, kept);
                        }
                    }
                    w.write_all(&piece)?;
                    kept += piece.len() as u64;
                    if let Piece::Json = kind {
                        w.write_all(b"\n")?;
                        kept += 1;
                    }
                }
            }
            w.flush()?;
            w.get_ref().sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        let mut f = OpenOptions::new().append(true).open(&self.path)?;
        f.flush()?;
        self.out = BufWriter::with_capacity(1 << 20, f);
        self.len = kept;
        self.oldest = oldest;
        self.marks = marks;
        Ok(kept)
    }

    /// Reads the journal back in order, grouping consecutive records of one file into units.
    pub fn replay(dir: &Path, f: &mut dyn FnMut(Replayed)) -> io::Result<u64> {
        let path = dir.join(JOURNAL);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut headers: HashMap<u32, Arc<[String]>> = HashMap::new();
        let mut sources: HashMap<u32, (Arc<str>, Format, i16)> = HashMap::new();
        let mut cur: Option<(UnitCopy, Uses)> = None;
        let mut n = 0;
        let flush = |cur: &mut Option<(UnitCopy, Uses)>, f: &mut dyn FnMut(Replayed)| {
            if let Some((u, uses)) = cur.take() {
                f(Replayed::Unit(u.into_unit(), uses));
            }
        };
        // Consecutive records of one source, header and use make one unit.
        let mut push = |cur: &mut Option<(UnitCopy, Uses)>,
                        f: &mut dyn FnMut(Replayed),
                        (file, kind, year): (&Arc<str>, Format, i16),
                        header: Option<Arc<[String]>>,
                        uses: Uses,
                        line_no: u64,
                        text: &[u8]| {
            let same = cur.as_ref().is_some_and(|(u, x)| {
                *x == uses
                    && *u.file == **file
                    && u.kind == kind
                    && u.year == year
                    && u.header.as_deref().map(|h| h.as_ptr())
                        == header.as_deref().map(|h| h.as_ptr())
                    && u.records.len() < 4096
            });
            if !same {
                flush(cur, f);
                *cur = Some((
                    UnitCopy {
                        file: Arc::clone(file),
                        kind,
                        year,
                        header,
                        buf: Vec::new(),
                        records: Vec::new(),
                    },
                    uses,
                ));
            }
            let u = &mut cur.as_mut().expect("set above").0;
            let start = u.buf.len();
            u.buf.extend_from_slice(text);
            u.records.push((line_no, start, u.buf.len()));
            n += 1;
        };
        let mut r = BufReader::with_capacity(1 << 20, file);
        let mut piece = Vec::new();
        while let Some(kind) = next_piece(&mut r, &mut piece)? {
            if let Piece::Frame = kind {
                let rec = FrameRecord::of(&piece);
                // A frame whose source was never defined is not one this journal wrote.
                let Some(source) = sources.get(&rec.source) else {
                    continue;
                };
                let header = rec.header.and_then(|h| headers.get(&h).cloned());
                let uses = Uses::from_bits(rec.uses);
                push(
                    &mut cur,
                    f,
                    (&source.0, source.1, source.2),
                    header,
                    uses,
                    rec.line,
                    rec.text,
                );
                continue;
            }
            let Ok(e) = serde_json::from_slice::<Entry>(&piece) else {
                continue;
            };
            if let (Some(id), Some(cols)) = (e.hid, e.cols) {
                headers.insert(id, cols.into());
                continue;
            }
            if let Some(w) = e.w {
                flush(&mut cur, f);
                f(if e.d.is_some() {
                    Replayed::Released(w)
                } else {
                    Replayed::Watermark(w)
                });
                continue;
            }
            if let (Some(id), Some(file), Some(kind)) =
                (e.sid, &e.f, e.k.as_deref().and_then(format_of))
            {
                sources.insert(id, (Arc::from(&**file), kind, e.y.unwrap_or(1970)));
                continue;
            }
            // A record as journals written before record frames held it.
            let (Some(file), Some(kind), Some(line_no), Some(text)) =
                (e.f, e.k.as_deref().and_then(format_of), e.l, e.r)
            else {
                continue;
            };
            let header = e.h.and_then(|h| headers.get(&h).cloned());
            let year = e.y.unwrap_or(1970);
            let uses = Uses::from_bits(e.u.unwrap_or(0));
            let file: Arc<str> = Arc::from(&*file);
            push(
                &mut cur,
                f,
                (&file, kind, year),
                header,
                uses,
                line_no,
                text.as_bytes(),
            );
        }
        flush(&mut cur, f);
        Ok(n)
    }
}

/// Notes that the journal is `len` bytes long at watermark `w`, unless the last mark is less
/// than [`MARK_EVERY_MS`] earlier.
fn mark(marks: &mut Vec<(i64, u64)>, w: i64, len: u64) {
    if marks.last().is_none_or(|m| m.0 + MARK_EVERY_MS <= w) {
        marks.push((w, len));
    }
}

fn empty() -> Entry<'static> {
    Entry {
        hid: None,
        cols: None,
        w: None,
        d: None,
        f: None,
        k: None,
        y: None,
        h: None,
        l: None,
        t: None,
        r: None,
        u: None,
        sid: None,
    }
}

/// What the journal's thread is asked to do, in order.
enum Op {
    Records(crate::source::Work, Uses, Vec<crate::engine::Handed>),
    Watermark(i64, bool),
    Call(Box<dyn FnOnce(&mut Journal) + Send>),
}

/// A [`Journal`] written on a thread of its own, so the loop does not format and write the
/// records it journals. Calls ([`JournalWriter::call`]: sync, compaction) run after everything
/// sent before them. After a write fails, nothing more is written and every later request
/// returns that error.
pub struct JournalWriter {
    tx: Option<crossbeam_channel::Sender<Op>>,
    thread: Option<std::thread::JoinHandle<()>>,
    failed: Arc<std::sync::Mutex<Option<(io::ErrorKind, String)>>>,
}

impl JournalWriter {
    /// Starts the journal's thread.
    pub fn start(mut journal: Journal) -> JournalWriter {
        // A few units queued: the loop runs ahead of the writes by no more than that.
        let (tx, rx) = crossbeam_channel::bounded::<Op>(8);
        let failed = Arc::new(std::sync::Mutex::new(None));
        let flag = Arc::clone(&failed);
        let thread = std::thread::spawn(move || {
            for op in rx {
                let done = match op {
                    Op::Call(f) => {
                        f(&mut journal);
                        continue;
                    }
                    _ if flag.lock().is_ok_and(|f| f.is_some()) => continue,
                    // Dropping the unit's decoded events here spares the loop that work.
                    Op::Records(unit, uses, lines) => match UnitCopy::of(unit.into_unit()) {
                        Some(unit) => journal.records(&unit, uses, &lines),
                        None => Ok(()),
                    },
                    Op::Watermark(ms, wait) => journal.watermark(ms, wait),
                };
                if let Err(e) = done
                    && let Ok(mut f) = flag.lock()
                {
                    *f = Some((e.kind(), e.to_string()));
                }
            }
        });
        JournalWriter {
            tx: Some(tx),
            thread: Some(thread),
            failed,
        }
    }

    fn check(&self) -> io::Result<()> {
        match &*self.failed.lock().unwrap_or_else(|p| p.into_inner()) {
            Some((kind, message)) => Err(io::Error::new(*kind, message.clone())),
            None => Ok(()),
        }
    }

    fn send(&self, op: Op) -> io::Result<()> {
        self.check()?;
        let gone = || io::Error::other("the journal's thread ended");
        let tx = self.tx.as_ref().ok_or_else(gone)?;
        tx.send(op).map_err(|_| gone())
    }

    /// Journals the records of `unit` whose lines are in `lines` (see [`Journal::records`]).
    pub fn records(
        &self,
        unit: crate::source::Work,
        uses: Uses,
        lines: Vec<crate::engine::Handed>,
    ) -> io::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        self.send(Op::Records(unit, uses, lines))
    }

    /// Journals a watermark (see [`Journal::watermark`]).
    pub fn watermark(&self, ms: i64, days_wait: bool) -> io::Result<()> {
        self.send(Op::Watermark(ms, days_wait))
    }

    /// Runs `f` on the journal once everything sent before is written, and returns what it
    /// gives (or the error a write met).
    pub fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Journal) -> io::Result<R> + Send + 'static,
    ) -> io::Result<R> {
        let (rtx, rrx) = crossbeam_channel::bounded(1);
        self.send(Op::Call(Box::new(move |j| {
            let _ = rtx.send(f(j));
        })))?;
        let r = rrx
            .recv()
            .map_err(|_| io::Error::other("the journal's thread ended"))?;
        self.check()?;
        r
    }

    /// Flushes and syncs; the length a checkpoint may name.
    pub fn sync(&self) -> io::Result<u64> {
        self.call(|j| j.sync())
    }
}

impl Drop for JournalWriter {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The parts of a text unit kept to journal or hand on its records once decoded.
pub struct UnitCopy {
    /// File the records came from.
    pub file: Arc<str>,
    /// Their format.
    pub kind: Format,
    /// Year for syslog times without one.
    pub year: i16,
    /// Column names of header-driven formats.
    pub header: Option<Arc<[String]>>,
    /// The records' bytes.
    pub buf: Vec<u8>,
    /// (line, start, end) of each record in `buf`.
    pub records: Vec<(u64, usize, usize)>,
}

impl UnitCopy {
    /// What a text unit keeps once decoded (EVTX units are not journaled: they hold no
    /// stateful records).
    pub fn of(unit: Unit) -> Option<UnitCopy> {
        match unit {
            Unit::Records {
                file,
                kind,
                context,
                buf,
                records,
                header,
                ..
            } => Some(UnitCopy {
                file,
                kind,
                year: context.year,
                header,
                buf,
                records,
            }),
            Unit::Evtx { .. } => None,
        }
    }

    fn into_unit(self) -> Unit {
        Unit::Records {
            file: self.file,
            kind: self.kind,
            context: Arc::new(cellwarden_source::Context::of_year(self.year)),
            buf: self.buf,
            records: self.records,
            header: self.header,
            order: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Work;
    use cellwarden_source::{Decoded, Mapping};

    /// A unit of `n` JSON records of `db.log`, `{"a":1}` on line 1 and so on.
    fn json_unit(n: u64) -> UnitCopy {
        let mut unit = UnitCopy {
            file: Arc::from("db.log"),
            kind: Format::Json,
            year: 2026,
            header: None,
            buf: Vec::new(),
            records: Vec::new(),
        };
        for line in 1..=n {
            let start = unit.buf.len();
            unit.buf
                .extend_from_slice(format!("{{\"a\":{line}}}").as_bytes());
            unit.records.push((line, start, unit.buf.len()));
        }
        unit
    }

    /// A record that fed the analytics, at `time` (ms).
    fn handed(record: u64, time: i64) -> crate::engine::Handed {
        crate::engine::Handed {
            record,
            time,
            aggregates: true,
            correlation: false,
            entity: None,
        }
    }

    #[test]
    fn a_checkpoint_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Checkpoint::load(dir.path()).unwrap().is_none());
        let mut c = Checkpoint {
            version: 1,
            journal_len: 42,
            ..Default::default()
        };
        c.files.insert(
            "/var/log/a.log".into(),
            FilePosition {
                dev: 1,
                ino: 2,
                offset: 300,
                lines: 7,
            },
        );
        c.save(dir.path()).unwrap();
        let back = Checkpoint::load(dir.path()).unwrap().unwrap();
        assert_eq!(back.journal_len, 42);
        assert_eq!(back.files["/var/log/a.log"].offset, 300);
        assert!(!dir.path().join("checkpoint.json.tmp").exists());
    }

    #[test]
    fn the_journal_replays_what_the_checkpoint_names_and_compacts() {
        let dir = tempfile::tempdir().unwrap();
        let unit = json_unit(3);
        let only_correlations = Uses {
            aggregates: false,
            correlation: true,
        };
        let mut j = Journal::open(dir.path(), 0).unwrap();
        j.records(&unit, Uses::ALL, &[handed(1, 1_000)]).unwrap();
        j.records(&unit, only_correlations, &[handed(3, 90_000_000)])
            .unwrap();
        j.watermark(5, false).unwrap();
        j.watermark(7, true).unwrap();
        let keep = j.sync().unwrap();
        j.records(&unit, Uses::ALL, &[handed(2, 2_000)]).unwrap();
        j.sync().unwrap();
        drop(j);
        // Reopened at the checkpoint: the record after it is gone.
        let mut j = Journal::open(dir.path(), keep).unwrap();
        let mut seen = Vec::new();
        Journal::replay(dir.path(), &mut |r| match r {
            Replayed::Unit(Unit::Records { records, .. }, uses) => seen.extend(
                records
                    .iter()
                    .map(|r| format!("{}{}", r.0, if uses == Uses::ALL { "" } else { "c" })),
            ),
            Replayed::Watermark(w) => seen.push(format!("w{w}")),
            Replayed::Released(w) => seen.push(format!("r{w}")),
            Replayed::Unit(..) => {}
        })
        .unwrap();
        // What a record was for is kept: a replay feeds it to the same detectors.
        // A watermark where closed days waited replays as a release only.
        assert_eq!(seen, ["1", "3c", "w5", "r7"]);
        // Opened from disk, what it holds is not known: it may hold older records.
        assert!(j.has_before(50_000_000));
        let len = j.compact(50_000_000).unwrap();
        assert!(len < keep);
        // Only the record at 90,000,000 ms is left: compacting again before it drops nothing.
        assert!(!j.has_before(50_000_000));
        assert!(!j.has_before(90_000_000));
        assert!(j.has_before(90_000_001));

        let mut lines = Vec::new();
        Journal::replay(dir.path(), &mut |r| {
            if let Replayed::Unit(Unit::Records { records, .. }, _) = r {
                lines.extend(records.iter().map(|r| r.0));
            }
        })
        .unwrap();
        assert_eq!(lines, [3]);
        j.records(&unit, Uses::ALL, &[handed(2, 70_000_000)])
            .unwrap();
        assert!(j.has_before(80_000_000));
    }

    /// Records are journaled as read (bytes that are not UTF-8, newlines inside an auditd
    /// event) and replayed so; journals holding JSON records (written before record frames)
    /// are still replayed, then appended to; a frame cut short by a crash ends the journal;
    /// source ids defined again after a reopen replay as the later definition says.
    #[test]
    fn journal_frames_keep_records_as_read_beside_older_json_records() {
        let dir = tempfile::tempdir().unwrap();
        // A journal as written before frames: a JSON record, a header and a watermark.
        std::fs::write(
            dir.path().join(JOURNAL),
            concat!(
                r#"{"f":"old.log","k":"json","y":2025,"l":4,"t":1000,"r":"{\"a\":0}"}"#,
                "\n",
                r#"{"w":1500}"#,
                "\n"
            ),
        )
        .unwrap();
        let old_len = std::fs::metadata(dir.path().join(JOURNAL)).unwrap().len();
        let odd: &[u8] = b"type=SYSCALL msg=audit(1.0:1): a\ntype=PATH msg=audit(1.0:1): \xff\xfe";
        let audit = UnitCopy {
            file: Arc::from("audit.log"),
            kind: Format::Auditd,
            year: 2026,
            header: None,
            buf: odd.to_vec(),
            records: vec![(7, 0, odd.len())],
        };
        let zeek = UnitCopy {
            file: Arc::from("conn.log"),
            kind: Format::ZeekTsv,
            year: 2026,
            header: Some(Arc::from(vec!["ts".to_string(), "uid".to_string()])),
            buf: b"1\tA2\tB3\tC".to_vec(),
            records: vec![(1, 0, 3), (2, 3, 6), (3, 6, 9)],
        };
        let mut j = Journal::open(dir.path(), old_len).unwrap();
        j.records(&audit, Uses::ALL, &[handed(7, 2_000)]).unwrap();
        // Records handed out of the unit's order are still matched to their times.
        j.records(&zeek, Uses::ALL, &[handed(3, 3_300), handed(1, 3_100)])
            .unwrap();
        let keep = j.sync().unwrap();
        drop(j);
        // Reopened: the writer defines its sources again, with ids from 0.
        let mut j = Journal::open(dir.path(), keep).unwrap();
        j.records(&zeek, Uses::ALL, &[handed(2, 3_200)]).unwrap();
        j.records(&audit, Uses::ALL, &[handed(7, 4_000)]).unwrap();
        let len = j.sync().unwrap();
        drop(j);
        let replay = || {
            let mut seen = Vec::new();
            let n = Journal::replay(dir.path(), &mut |r| match r {
                Replayed::Unit(
                    Unit::Records {
                        file,
                        buf,
                        records,
                        header,
                        context,
                        ..
                    },
                    _,
                ) => {
                    for (line, a, b) in records {
                        seen.push(format!(
                            "{file}:{line} {} {:?} h{}",
                            context.year,
                            &buf[a..b],
                            header.as_ref().map_or(0, |h| h.len())
                        ));
                    }
                }
                Replayed::Watermark(w) => seen.push(format!("w{w}")),
                Replayed::Released(w) => seen.push(format!("r{w}")),
                Replayed::Unit(Unit::Evtx { .. }, _) => panic!("no EVTX in a journal"),
            })
            .unwrap();
            (n, seen)
        };
        let bytes = |b: &[u8]| format!("{b:?}");
        let expected = vec![
            format!("old.log:4 2025 {} h0", bytes(br#"{"a":0}"#)),
            "w1500".to_string(),
            format!("audit.log:7 2026 {} h0", bytes(odd)),
            format!("conn.log:1 2026 {} h2", bytes(b"1\tA")),
            format!("conn.log:3 2026 {} h2", bytes(b"3\tC")),
            format!("conn.log:2 2026 {} h2", bytes(b"2\tB")),
            format!("audit.log:7 2026 {} h0", bytes(odd)),
        ];
        assert_eq!(replay(), (6, expected.clone()));
        // A crash in the middle of a frame: what follows the last whole piece is not read.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(JOURNAL))
            .unwrap();
        f.write_all(&[FRAME, 200, 0, 0, 0, 1, 2, 3]).unwrap();
        drop(f);
        assert_eq!(replay(), (6, expected));
        // Compaction drops frames and JSON records older than the cut, keeps the definitions.
        let mut j = Journal::open(dir.path(), len).unwrap();
        j.compact(3_150).unwrap();
        assert_eq!(
            replay().1,
            [
                format!("conn.log:3 2026 {} h2", bytes(b"3\tC")),
                format!("conn.log:2 2026 {} h2", bytes(b"2\tB")),
                format!("audit.log:7 2026 {} h0", bytes(odd)),
            ]
        );
    }

    /// Written on its own thread, the journal holds what the loop sent, in order; a write
    /// that fails makes every later request fail.
    #[test]
    fn the_journal_thread_writes_in_order_and_reports_failures() {
        let dir = tempfile::tempdir().unwrap();
        let unit = || json_unit(2);
        let handed = |record| handed(record, 1_000);
        let work = |u: UnitCopy| Work::Unit(u.into_unit());
        let w = JournalWriter::start(Journal::open(dir.path(), 0).unwrap());
        // A unit decoded ahead (its events dropped on the journal's thread) and one as read.
        let decoded = Decoded::new(unit().into_unit(), &Mapping::builtin())
            .unwrap_or_else(|_| panic!("a text unit"));
        w.records(Work::Decoded(decoded), Uses::ALL, vec![handed(2)])
            .unwrap();
        w.watermark(5, false).unwrap();
        w.records(work(unit()), Uses::ALL, vec![handed(1)]).unwrap();
        let len = w.sync().unwrap();
        assert_eq!(
            len,
            std::fs::metadata(dir.path().join(JOURNAL)).unwrap().len()
        );
        assert!(w.call(|j| Ok(j.has_before(2_000))).unwrap());
        drop(w);
        let mut seen = Vec::new();
        Journal::replay(dir.path(), &mut |r| match r {
            Replayed::Unit(Unit::Records { records, .. }, _) => {
                seen.extend(records.iter().map(|r| r.0.to_string()))
            }
            Replayed::Watermark(w) => seen.push(format!("w{w}")),
            _ => {}
        })
        .unwrap();
        assert_eq!(seen, ["2", "w5", "1"]);

        // A journal on a full device: a sync fails (the checkpoint waits for the next one);
        // a record that cannot be written fails everything after it.
        let full = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/dev/full", full.path().join(JOURNAL)).unwrap();
        let w = JournalWriter::start(Journal::open(full.path(), 0).unwrap());
        w.records(work(unit()), Uses::ALL, vec![handed(1)]).unwrap();
        assert!(w.sync().is_err());
        let mut big = unit();
        big.buf = format!("{{\"a\":\"{}\"}}", "x".repeat(2 << 20)).into_bytes();
        big.records = vec![(1, 0, big.buf.len())];
        w.records(work(big), Uses::ALL, vec![handed(1)]).unwrap();
        let err = w.sync().unwrap_err();
        assert!(err.to_string().contains("space"), "{err}");
        assert!(w.records(work(unit()), Uses::ALL, vec![handed(2)]).is_err());
        assert!(w.watermark(9, false).is_err());
    }

    /// A journal is rewritten once a quarter or more of it is older than the days kept, not
    /// for every day that leaves the window.
    #[test]
    fn the_journal_is_compacted_once_enough_of_it_is_old() {
        const DAY: i64 = 86_400_000;
        let dir = tempfile::tempdir().unwrap();
        let unit = json_unit(1);
        let mut j = Journal::open(dir.path(), 0).unwrap();
        for day in 0..8 {
            for _ in 0..100 {
                let h = crate::engine::Handed {
                    record: 1,
                    time: day * DAY + 1,
                    aggregates: true,
                    correlation: false,
                    entity: None,
                };
                j.records(&unit, Uses::ALL, &[h]).unwrap();
            }
            j.watermark(day * DAY + 2, false).unwrap();
        }
        // One day of eight is old: not yet; three are: rewritten.
        assert!(j.has_before(DAY));
        assert!(!j.worth_compacting(DAY));
        assert!(j.worth_compacting(3 * DAY));
        let before = j.len();
        let after = j.compact(3 * DAY).unwrap();
        assert!(after * 3 < before * 2, "{after} of {before}");
        // The marks are rebuilt from what compaction kept: one day of five, then two.
        assert!(!j.worth_compacting(4 * DAY));
        assert!(j.worth_compacting(5 * DAY));
        // Opened from disk, what it holds is not known: the first compaction happens.
        let len = j.sync().unwrap();
        drop(j);
        let j = Journal::open(dir.path(), len).unwrap();
        assert!(j.worth_compacting(4 * DAY));
    }
}
