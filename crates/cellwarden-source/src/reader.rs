//! Reading inputs into work units, and work units into events.
//!
//! Reading (I/O, decompression, splitting into records) is sequential per file and cheap;
//! decoding and everything after it happens per [`Unit`], so units from any file can be
//! handed to a pool of workers. A unit is an EVTX chunk (64 KiB) or a batch of JSON records.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::sync::Arc;

use cellwarden_event::{Event, Origin};
use evtx::err::EvtxError;
use evtx::{EvtxChunkData, EvtxParser, ParserSettings};
use flate2::read::MultiGzDecoder;

use crate::error::{ErrorKind, Position, SourceError};
use crate::input::{Context, Format, InputFile, sniff};
use crate::json::flatten;
use crate::mapping::Mapping;

const EVTX_FILE_HEADER_SIZE: u64 = 4096;
const EVTX_CHUNK_SIZE: u64 = 65536;
const EVTX_CHUNK_HEADER_SIZE: usize = 512;
const BATCH_BYTES: usize = 1 << 20;
const BATCH_RECORDS: usize = 4096;

/// Limits that keep memory bounded on hostile input.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest JSON line or record read; longer ones are skipped with an error.
    pub max_record_bytes: usize,
    /// Most bytes of a compressed EVTX file decompressed into a temporary file (the EVTX
    /// reader needs to seek); the rest is not read, with an error. Other compressed formats
    /// are read as a stream and need no such space.
    pub max_spill_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_record_bytes: 16 << 20,
            max_spill_bytes: 16 << 30,
        }
    }
}

/// A piece of input that decodes on its own.
pub enum Unit {
    /// One EVTX chunk.
    Evtx {
        /// The file.
        file: Arc<str>,
        /// Chunk number, from 0.
        number: u64,
        /// The chunk's bytes.
        chunk: Box<EvtxChunkData>,
    },
    /// Text records: JSON objects, syslog lines, or the joined lines of one auditd event.
    Records {
        /// The file.
        file: Arc<str>,
        /// The records' format.
        kind: Format,
        /// Year, zone and host the records do not carry (the year of this unit's records).
        context: Arc<Context>,
        /// The records' bytes.
        buf: Vec<u8>,
        /// (line of the record's start, start, end) in `buf`.
        records: Vec<(u64, usize, usize)>,
        /// Column names of header-driven CSV formats.
        header: Option<Arc<[String]>>,
        /// Where the unit stands in its stream, when it was cut from one read in order.
        order: Option<UnitOrder>,
    },
}

/// A text unit's place among the units cut from one read of one input: stages that must see
/// some records of an input in order (the records of one database statement may straddle two
/// units) wait for the unit before it by this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UnitOrder {
    /// The read, unique in the process.
    pub stream: u64,
    /// The unit's number in it, from 0.
    pub number: u64,
    /// The stream's last unit (when the read ended after a unit, the stream ends unsaid).
    pub last: bool,
}

impl UnitOrder {
    /// A stream id not given before.
    fn new_stream() -> u64 {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }
}

/// Receives what reading produces.
pub trait UnitSink {
    /// Takes a unit.
    fn unit(&mut self, unit: Unit);
    /// Takes an input problem (reading goes on).
    fn error(&mut self, error: SourceError);
    /// Input bytes consumed (on disk), for progress.
    fn progress(&mut self, _bytes: u64) {}
}

/// A sink that keeps every unit and error in memory (for tools and tests; `hunt` streams).
#[derive(Default)]
pub struct Collected {
    /// Units in input order.
    pub units: Vec<Unit>,
    /// Problems met while reading.
    pub errors: Vec<SourceError>,
}

impl UnitSink for Collected {
    fn unit(&mut self, unit: Unit) {
        self.units.push(unit);
    }
    fn error(&mut self, error: SourceError) {
        self.errors.push(error);
    }
}

impl Collected {
    /// Reads one whole input.
    pub fn read(input: &InputFile, limits: &Limits) -> Collected {
        let mut c = Collected::default();
        read_input(input, limits, &mut c);
        c
    }

    /// Decodes every unit in order; returns the reading and decoding problems.
    pub fn decode(self, mapping: &Mapping, f: &mut dyn FnMut(Event<'_>)) -> Vec<SourceError> {
        let settings = evtx_settings();
        let mut errors = self.errors;
        for u in self.units {
            u.decode(mapping, &settings, &mut errors, f);
        }
        errors
    }
}

/// Reads one input into units. Problems go to the sink as errors; reading goes on after them.
pub fn read_input(input: &InputFile, limits: &Limits, sink: &mut dyn UnitSink) {
    let file = input.name.clone();
    let counted = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let reader: Box<dyn BufRead> = match &input.path {
        None => Box::new(BufReader::with_capacity(
            1 << 20,
            Counting {
                inner: io::stdin(),
                count: counted.clone(),
            },
        )),
        Some(p) => match File::open(p) {
            Ok(f) => {
                if !input.gzip && input.format == Some(Format::Evtx) {
                    read_evtx_seekable(&file, f, sink);
                    sink.progress(input.size);
                    return;
                }
                Box::new(BufReader::with_capacity(1 << 20, f))
            }
            Err(e) => {
                sink.error(SourceError::new(
                    &file,
                    Position::File,
                    ErrorKind::Io,
                    e.to_string(),
                ));
                return;
            }
        },
    };
    let ctx = input.context();
    read_stream(&file, reader, input.format, false, &ctx, limits, sink);
    // Standard input has no size on disk: count what was read.
    sink.progress(input.size.max(counted.get()));
}

/// Reads one input held in memory, as [`read_input`] reads a file: format told from its content
/// (or `format`), gzip undone, EVTX and captures included.
pub fn read_bytes(
    file: &Arc<str>,
    bytes: &[u8],
    format: Option<Format>,
    limits: &Limits,
    sink: &mut dyn UnitSink,
) {
    let reader: Box<dyn BufRead> = Box::new(io::Cursor::new(bytes.to_vec()));
    read_stream(
        file,
        reader,
        format,
        false,
        &Context::of_year(2026),
        limits,
        sink,
    );
}

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    count: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// Reads an input's first bytes as [`read_stream`] does, for case inference.
pub(crate) fn read_stream_for_case(
    file: &Arc<str>,
    reader: Box<dyn BufRead>,
    hint: Option<Format>,
    ctx: &Context,
    limits: &Limits,
    sink: &mut dyn UnitSink,
) {
    read_stream(file, reader, hint, false, ctx, limits, sink)
}

fn read_stream(
    file: &Arc<str>,
    mut reader: Box<dyn BufRead>,
    hint: Option<Format>,
    decompressed: bool,
    ctx: &Context,
    limits: &Limits,
    sink: &mut dyn UnitSink,
) {
    let head = match reader.fill_buf() {
        Ok(h) => h.to_vec(),
        Err(e) => {
            let kind = if decompressed {
                ErrorKind::Decompress
            } else {
                ErrorKind::Io
            };
            sink.error(SourceError::new(
                file,
                Position::Offset(0),
                kind,
                e.to_string(),
            ));
            return;
        }
    };
    if !decompressed && head.starts_with(&[0x1f, 0x8b]) {
        let inner = BufReader::with_capacity(1 << 20, MultiGzDecoder::new(reader));
        read_stream(file, Box::new(inner), hint, true, ctx, limits, sink);
        return;
    }
    // The binary formats' first bytes say whether the name told the truth: a file that is not
    // what its name says is sniffed, or refused, before anything else is read of it.
    let sniffed = sniff(&head);
    let format = match hint {
        Some(Format::Evtx) if !head.starts_with(crate::input::EVTX_MAGIC) => {
            sniffed.filter(|f| *f != Format::Evtx)
        }
        Some(Format::Capture) if !crate::netflow::is_capture(&head) => sniffed,
        Some(h) => Some(h),
        None => sniffed,
    };
    if format.is_none() && hint.is_some() && !head.is_empty() {
        sink.error(SourceError::new(
            file,
            Position::Offset(0),
            ErrorKind::Format,
            format!(
                "named as {} but its content is not (it starts with {}); not read",
                match hint {
                    Some(Format::Evtx) => "EVTX",
                    Some(Format::Capture) => "a capture",
                    _ => "a log",
                },
                head.iter()
                    .take(8)
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        ));
        return;
    }
    match format {
        Some(Format::Evtx) => {
            // Spilled to an anonymous temporary file, up to the limit: memory holds one chunk.
            let spilled = tempfile::tempfile().and_then(|mut tmp| {
                let copied = io::copy(&mut (&mut reader).take(limits.max_spill_bytes), &mut tmp)?;
                Ok((tmp, copied))
            });
            match spilled {
                Ok((tmp, copied)) => {
                    if copied >= limits.max_spill_bytes
                        && reader.fill_buf().is_ok_and(|b| !b.is_empty())
                    {
                        sink.error(SourceError::new(
                            file,
                            Position::Offset(copied),
                            ErrorKind::Decompress,
                            format!(
                                "decompressed EVTX larger than the {} GiB limit; the rest is not read",
                                limits.max_spill_bytes >> 30
                            ),
                        ));
                    }
                    read_evtx_seekable(file, tmp, sink);
                }
                Err(e) => sink.error(SourceError::new(
                    file,
                    Position::Offset(0),
                    ErrorKind::Decompress,
                    format!("cannot decompress into a temporary file: {e}"),
                )),
            }
        }
        Some(Format::Json) => read_json(file, reader, limits, sink),
        Some(Format::Capture) => read_capture(file, reader, sink),
        Some(kind) => read_text(file, reader, kind, ctx, limits, sink),
        None => {
            if head.is_empty() {
                return;
            }
            sink.error(SourceError::new(
                file,
                Position::Offset(0),
                ErrorKind::Format,
                "not a format cellwarden reads (EVTX or JSON)",
            ));
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let m = inner.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = inner.source();
    }
    s
}

fn read_evtx_seekable<R: Read + Seek>(file: &Arc<str>, mut src: R, sink: &mut dyn UnitSink) {
    // A cut-off last chunk is read here, before the parser takes the reader, so its complete
    // records can still be decoded.
    let len = src.seek(SeekFrom::End(0)).unwrap_or(0);
    // The chunks the file header says were written (offset 42): a copy cut at a chunk boundary
    // would otherwise lose its last chunks without a word.
    let mut announced = None;
    let mut header = [0u8; 44];
    if src.seek(SeekFrom::Start(0)).is_ok() && src.read_exact(&mut header).is_ok() {
        announced = Some(u64::from(u16::from_le_bytes([header[42], header[43]])));
    }
    let mut partial: Option<(u64, Vec<u8>)> = None;
    if len > EVTX_FILE_HEADER_SIZE {
        let rem = (len - EVTX_FILE_HEADER_SIZE) % EVTX_CHUNK_SIZE;
        let number = (len - EVTX_FILE_HEADER_SIZE) / EVTX_CHUNK_SIZE;
        if rem > 0 {
            let mut buf = vec![0u8; rem as usize];
            if src.seek(SeekFrom::Start(len - rem)).is_ok() && src.read_exact(&mut buf).is_ok() {
                partial = Some((number, buf));
            }
        }
    }
    if src.seek(SeekFrom::Start(0)).is_err() {
        sink.error(SourceError::new(
            file,
            Position::File,
            ErrorKind::Io,
            "cannot seek",
        ));
        return;
    }
    let mut parser = match EvtxParser::from_read_seek(src) {
        Ok(p) => p,
        Err(e) => {
            sink.error(SourceError::new(
                file,
                Position::Offset(0),
                ErrorKind::Format,
                format!("not a readable EVTX file: {}", error_chain(&e)),
            ));
            return;
        }
    };
    let partial_number = partial.as_ref().map(|(n, _)| *n);
    let mut seen = 0u64;
    for chunk in parser.chunks() {
        match chunk {
            Ok(data) => {
                let number = data.number.unwrap_or(seen);
                seen = number + 1;
                sink.unit(Unit::Evtx {
                    file: file.clone(),
                    number,
                    chunk: Box::new(data),
                });
                sink.progress(0);
            }
            Err(e) => {
                let number = match &e {
                    EvtxError::FailedToParseChunk { chunk_id, .. } => *chunk_id,
                    _ => seen,
                };
                seen = number + 1;
                if Some(number) == partial_number {
                    continue;
                }
                sink.error(SourceError::new(
                    file,
                    chunk_position(number),
                    ErrorKind::EvtxChunk,
                    format!("{}; chunk skipped", error_chain(&e)),
                ));
            }
        }
    }
    let present = len
        .saturating_sub(EVTX_FILE_HEADER_SIZE)
        .div_ceil(EVTX_CHUNK_SIZE);
    if let Some(announced) = announced.filter(|&a| a > present) {
        sink.error(SourceError::new(
            file,
            Position::Offset(len),
            ErrorKind::EvtxChunk,
            format!(
                "file cut off: the header announces {announced} chunks, the file holds {present}; \
                 the records of the {} missing chunks are lost",
                announced - present
            ),
        ));
    }
    if let Some((number, bytes)) = partial {
        let got = bytes.len();
        let position = chunk_position(number);
        let mut recovered = false;
        if got >= EVTX_CHUNK_HEADER_SIZE && bytes.starts_with(b"ElfChnk\0") {
            let mut padded = bytes;
            padded.resize(EVTX_CHUNK_SIZE as usize, 0);
            if let Ok(mut data) = EvtxChunkData::new(padded, false) {
                data.number = Some(number);
                sink.unit(Unit::Evtx {
                    file: file.clone(),
                    number,
                    chunk: Box::new(data),
                });
                recovered = true;
            }
        }
        sink.error(SourceError::new(
            file,
            position,
            ErrorKind::EvtxChunk,
            if recovered {
                format!("file cut off: last chunk has {got} of {EVTX_CHUNK_SIZE} bytes; its complete records are read")
            } else {
                format!("file cut off: last chunk has {got} of {EVTX_CHUNK_SIZE} bytes; skipped")
            },
        ));
    }
}

/// How JSON input is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JsonLayout {
    /// One object per line.
    Lines,
    /// `[ {...}, {...} ]`.
    Array,
    /// Objects one after another, spread over lines (pretty-printed exports).
    Concatenated,
}

fn json_layout(head: &[u8]) -> JsonLayout {
    let start = head
        .iter()
        .position(|b| !b.is_ascii_whitespace() && !matches!(b, 0xEF | 0xBB | 0xBF))
        .unwrap_or(0);
    match head.get(start) {
        Some(b'[') => JsonLayout::Array,
        Some(b'{') => {
            let rest = &head[start..];
            match memchr::memchr(b'\n', rest) {
                Some(nl) if !rest[..nl].trim_ascii_end().ends_with(b"}") => {
                    JsonLayout::Concatenated
                }
                _ => JsonLayout::Lines,
            }
        }
        _ => JsonLayout::Lines,
    }
}

struct Batcher<'s> {
    file: Arc<str>,
    kind: Format,
    context: Arc<Context>,
    buf: Vec<u8>,
    records: Vec<(u64, usize, usize)>,
    header: Option<Arc<[String]>>,
    /// Lines before the first one read (a followed file's earlier chunks).
    line_base: u64,
    /// The next unit's place.
    order: UnitOrder,
    sink: &'s mut dyn UnitSink,
}

impl<'s> Batcher<'s> {
    fn new(file: &Arc<str>, kind: Format, ctx: &Context, sink: &'s mut dyn UnitSink) -> Self {
        Batcher {
            file: file.clone(),
            kind,
            context: Arc::new(ctx.clone()),
            buf: Vec::with_capacity(BATCH_BYTES + 4096),
            records: Vec::new(),
            header: None,
            line_base: 0,
            order: UnitOrder {
                stream: UnitOrder::new_stream(),
                number: 0,
                last: false,
            },
            sink,
        }
    }

    /// Sends what is left and reports a read that stopped early.
    fn finish(mut self, result: ReadResult) {
        self.order.last = true;
        self.flush();
        if let Err((offset, e)) = result {
            let file = self.file.clone();
            self.sink.error(SourceError::new(
                &file,
                Position::Offset(offset),
                ErrorKind::Decompress,
                format!("read stopped: {e}; everything before was read"),
            ));
        }
    }

    fn push(&mut self, line: u64, bytes: &[u8]) {
        let start = self.buf.len();
        self.buf.extend_from_slice(bytes);
        self.records.push((line, start, self.buf.len()));
        if self.buf.len() >= BATCH_BYTES || self.records.len() >= BATCH_RECORDS {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.records.is_empty() {
            return;
        }
        let unit = Unit::Records {
            file: self.file.clone(),
            kind: self.kind,
            context: Arc::clone(&self.context),
            buf: std::mem::take(&mut self.buf),
            records: std::mem::take(&mut self.records),
            header: self.header.clone(),
            order: Some(self.order),
        };
        self.order.number += 1;
        self.sink.unit(unit);
    }
}

/// Hands on a complete auditd event with the lineage of its process appended.
fn audit_done(
    lineage: &mut crate::lineage::Lineage,
    b: &mut Batcher<'_>,
    first: u64,
    mut lines: Vec<u8>,
) {
    if let Some(note) = lineage.observe(&lines) {
        lines.push(b'\n');
        lines.extend_from_slice(note.as_bytes());
    }
    b.push(first, &lines);
}

/// auditd events still being assembled: (event id, first line, record lines).
type OpenAudit = Vec<(Vec<u8>, u64, Vec<u8>)>;
/// Events whose records interleave with more than this many others are closed early.
const MAX_OPEN_AUDIT: usize = 256;

/// What a text reader learns of a stream and needs for the records after it: the process
/// tables of auditd hosts, the client hosts of PostgreSQL backends, the accounts of MySQL
/// general-log and audit-log connections. A followed stream keeps one across its chunks, so a
/// record read later is annotated as it would be in one read of the whole file. Bounded: each
/// table keeps at most 65,536 entries (about 13 MiB at worst for process tables).
#[derive(Default)]
pub struct StreamState {
    lineage: crate::lineage::Lineage,
    pg: crate::dbaudit::PgSessions,
    mysql: crate::mysqllog::Connections,
    mysql_json: crate::mysqlconn::Connections,
}

/// Reads complete lines appended to a followed file: `bytes` ends at a line end and its first
/// line is line `line_base + 1` of the stream; `state` is the stream's, kept from its earlier
/// chunks. JSON is read as one object per line; the other text formats as in whole files
/// (records of one auditd event or one quoted statement that a chunk boundary splits are read
/// as two).
#[allow(clippy::too_many_arguments)]
pub fn read_chunk(
    file: &Arc<str>,
    bytes: &[u8],
    kind: Format,
    ctx: &Context,
    line_base: u64,
    limits: &Limits,
    state: &mut StreamState,
    sink: &mut dyn UnitSink,
) {
    let reader: Box<dyn BufRead> = Box::new(io::Cursor::new(bytes.to_vec()));
    if kind == Format::Json {
        let mut batch = Batcher::new(file, kind, ctx, sink);
        batch.line_base = line_base;
        let mut reader = reader;
        let conns = &mut state.mysql_json;
        let result = read_lines(file, &mut reader, limits, &mut batch, &mut |n, l, b| {
            if let Some(record) = array_line(l) {
                push_json(conns, b, n, record);
            }
        });
        batch.finish(result);
    } else {
        read_text_from(file, reader, kind, ctx, line_base, limits, state, sink);
    }
}

fn read_text(
    file: &Arc<str>,
    reader: Box<dyn BufRead>,
    kind: Format,
    ctx: &Context,
    limits: &Limits,
    sink: &mut dyn UnitSink,
) {
    let mut state = StreamState::default();
    read_text_from(file, reader, kind, ctx, 0, limits, &mut state, sink)
}

#[allow(clippy::too_many_arguments)]
fn read_text_from(
    file: &Arc<str>,
    mut reader: Box<dyn BufRead>,
    kind: Format,
    ctx: &Context,
    line_base: u64,
    limits: &Limits,
    state: &mut StreamState,
    sink: &mut dyn UnitSink,
) {
    let mut batch = Batcher::new(file, kind, ctx, sink);
    batch.line_base = line_base;
    let mut open: OpenAudit = Vec::new();
    let StreamState {
        lineage,
        pg: sessions,
        mysql: conns,
        ..
    } = state;
    let mut idbuf: Vec<u8> = Vec::with_capacity(64);
    // The record being assembled (first line, text) while its quotes are open.
    let mut pending: Option<(u64, Vec<u8>)> = None;
    let mut too_long: Vec<u64> = Vec::new();
    let mut cut: Vec<u64> = Vec::new();
    let max = limits.max_record_bytes;
    let quotes = |l: &[u8]| l.iter().filter(|&&c| c == b'"').count();
    let result = if kind.quoted_multiline() {
        // Quotes of the pending record, and whether it is a pgaudit record (both kept as lines
        // come, so a long record stays linear).
        let mut open_quotes = 0usize;
        let mut audit = false;
        // A server log's records get the client host of their backend's connection.
        let prefixes = Arc::clone(&ctx.pg_prefixes);
        let mut server_record = |b: &mut Batcher<'_>, first: u64, mut text: Vec<u8>| {
            if kind == Format::PgLog
                && let Some(note) = sessions.observe(&text, &prefixes, None)
            {
                text.push(b'\n');
                text.extend_from_slice(note.as_bytes());
            }
            b.push(first, &text);
        };
        let r = read_lines(file, &mut reader, limits, &mut batch, &mut |n, line, b| {
            if let Some((first, text)) = pending.as_mut() {
                let inside = open_quotes % 2 == 1 && (kind != Format::PgLog || audit);
                // A server message goes on until a line starts a record of its own (the
                // server indents its own continuation lines with a tab, a statement's own
                // lines come as written); a quoted field until its quote closes. A line that
                // starts a record (a log line prefix with its time) ends the one before: a
                // damaged record costs itself only.
                // A pgaudit record is one CSV row: it goes on only while a quote is open
                // or on the server's tab-indented lines.
                let server = kind == Format::PgLog && (!audit || line.first() == Some(&b'\t'));
                let continues = !starts_record(line) && (inside || server);
                if continues {
                    text.push(b'\n');
                    text.extend_from_slice(line);
                    open_quotes += quotes(line);
                    if text.len() > max {
                        too_long.push(*first);
                        pending = None;
                    } else if kind != Format::PgLog && open_quotes.is_multiple_of(2) {
                        let (first, text) = pending.take().unwrap_or_default();
                        b.push(first, &text);
                    }
                    return;
                }
                let (first, text) = pending.take().unwrap_or_default();
                if inside {
                    cut.push(first);
                }
                server_record(b, first, text);
            }
            if kind == Format::OracleCsv && b.header.is_none() {
                let l = String::from_utf8_lossy(line);
                b.header = Some(crate::dbaudit::csv_header(&l).into());
                return;
            }
            // Server log records wait for their continuation lines; CSV rows for their quotes
            // to close.
            open_quotes = quotes(line);
            if kind == Format::PgLog {
                audit = crate::dbaudit::is_pgaudit_bytes(line);
                pending = Some((n, line.to_vec()));
            } else if open_quotes % 2 == 1 {
                pending = Some((n, line.to_vec()));
            } else {
                b.push(n, line);
            }
        });
        if let Some((first, text)) = pending.take() {
            server_record(&mut batch, first, text);
        }
        r
    } else if kind == Format::ZeekTsv {
        // Header lines set the columns of the rows after them; a new header starts a new unit.
        let (mut sep, mut empty, mut unset, mut path) = (
            "\t".to_owned(),
            "(empty)".to_owned(),
            "-".to_owned(),
            "unknown".to_owned(),
        );
        let mut fields: Vec<String> = Vec::new();
        read_lines(file, &mut reader, limits, &mut batch, &mut |n, line, b| {
            if line.first() == Some(&b'#') {
                let l = String::from_utf8_lossy(line);
                let meta = &l[1..];
                let (key, value) = match meta.split_once([' ', '\t']) {
                    Some((k, v)) => (k, v),
                    None => (meta, ""),
                };
                let parts =
                    |v: &str| -> Vec<String> { v.split(sep.as_str()).map(String::from).collect() };
                match key {
                    "separator" => sep = crate::flow::unescape_separator(value.trim()),
                    "empty_field" => empty = value.to_owned(),
                    "unset_field" => unset = value.to_owned(),
                    "path" => path = value.to_owned(),
                    "fields" => fields = parts(value),
                    "types" => {
                        b.flush();
                        b.header = Some(
                            crate::flow::zeek_header(
                                &path,
                                &sep,
                                &empty,
                                &unset,
                                &fields,
                                &parts(value),
                            )
                            .into(),
                        );
                    }
                    _ => {}
                }
                return;
            }
            if b.header.is_none() && !fields.is_empty() {
                b.header = Some(
                    crate::flow::zeek_header(&path, &sep, &empty, &unset, &fields, &[]).into(),
                );
            }
            b.push(n, line);
        })
    } else if kind == Format::NfdumpCsv {
        read_lines(file, &mut reader, limits, &mut batch, &mut |n, line, b| {
            if b.header.is_none() {
                let h: Vec<String> = String::from_utf8_lossy(line)
                    .split(',')
                    .map(|c| c.trim().to_owned())
                    .collect();
                b.header = Some(h.into());
                return;
            }
            b.push(n, line);
        })
    } else if kind == Format::Auditd {
        read_lines(file, &mut reader, limits, &mut batch, &mut |n, line, b| {
            let text = String::from_utf8_lossy(line);
            // Records of one event share node and serial (one file may hold many nodes).
            let (node, record) = crate::linux::audit_node(&text);
            // The event's key (node, serial) in a buffer kept across lines.
            idbuf.clear();
            if let Some(serial) =
                crate::linux::audit_id(record).filter(|_| record.starts_with("type="))
            {
                idbuf.extend_from_slice(node.unwrap_or("").as_bytes());
                idbuf.push(0);
                idbuf.extend_from_slice(serial.as_bytes());
            }
            let id = &idbuf;
            let end = record.starts_with("type=EOE ");
            match open.iter().position(|(i, _, _)| i == id && !id.is_empty()) {
                Some(p) => {
                    if !end {
                        open[p].2.push(b'\n');
                        open[p].2.extend_from_slice(line);
                    }
                    if end {
                        let (_, first, lines) = open.remove(p);
                        audit_done(lineage, b, first, lines);
                    }
                }
                None if !end => {
                    open.push((id.clone(), n, line.to_vec()));
                    if open.len() > MAX_OPEN_AUDIT {
                        let (_, first, lines) = open.remove(0);
                        audit_done(lineage, b, first, lines);
                    }
                }
                None => {}
            }
        })
    } else if kind == Format::Syslog {
        // Times without a year: a month that goes back by half a year or more (December to
        // January) starts the next year. Lines starting with white space continue the record
        // before them (multi-line messages written straight to the file).
        let mut last_month: Option<usize> = None;
        // PostgreSQL records get the client host of their backend's connection, as in its
        // own log.
        let prefixes = Arc::clone(&ctx.pg_prefixes);
        let mut push = |b: &mut Batcher<'_>, first: u64, text: &mut Vec<u8>| {
            if let Some(note) = sessions.observe_syslog(text, &prefixes) {
                text.push(b'\n');
                text.extend_from_slice(note.as_bytes());
            }
            b.push(first, text);
        };
        let r = read_lines(file, &mut reader, limits, &mut batch, &mut |n, l, b| {
            if crate::linux::continues_record(l) && pending.is_some() {
                continue_record(&mut pending, l, max, &mut too_long);
                return;
            }
            // The further pieces of a long or multi-line PostgreSQL message.
            if let Some((_, text)) = &pending
                && let Some((sep, piece)) = crate::dbaudit::pg_syslog_continues(text, l)
            {
                extend_record(&mut pending, &[sep, piece], max, &mut too_long);
                return;
            }
            // The buffer of the record before is reused for this one.
            let mut buf = match pending.take() {
                Some((first, mut text)) => {
                    push(b, first, &mut text);
                    text
                }
                None => Vec::new(),
            };
            let (text, _) = crate::linux::strip_pri_bytes(l);
            if let Some(m) = text
                .get(..3)
                .and_then(|m| crate::linux::MONTHS.iter().position(|x| x.as_bytes() == m))
            {
                if last_month.is_some_and(|p| p >= m + 6) {
                    b.flush();
                    let mut next = (*b.context).clone();
                    next.year = next.year.saturating_add(1);
                    b.context = Arc::new(next);
                }
                last_month = Some(m);
            }
            buf.clear();
            buf.extend_from_slice(l);
            pending = Some((n, buf));
        });
        if let Some((first, mut text)) = pending.take() {
            push(&mut batch, first, &mut text);
        }
        r
    } else if matches!(kind, Format::MySqlAuditXml | Format::OracleAuditXml) {
        // A record runs from its `<AUDIT_RECORD` line to the line that closes it; the file's
        // XML declaration and root element are no records. A record dropped as too long is
        // skipped to the next record's start.
        let mut skipping = false;
        read_lines(file, &mut reader, limits, &mut batch, &mut |n, l, b| {
            let starts = crate::xmlrecord::starts_record(l);
            if pending.is_some() && !starts {
                continue_record(&mut pending, l, max, &mut too_long);
                skipping = pending.is_none();
            } else {
                // A record that never closed is handed on as it is (and reported as cut).
                if let Some((first, text)) = pending.take() {
                    b.push(first, &text);
                }
                if starts {
                    skipping = false;
                    pending = Some((n, l.to_vec()));
                } else if !skipping && !crate::xmlrecord::is_scaffolding(l) {
                    b.push(n, l);
                }
            }
            if let Some((_, text)) = &pending
                && crate::xmlrecord::record_ends(text, l)
            {
                let (first, text) = pending.take().unwrap_or_default();
                b.push(first, &text);
            }
        })
    } else if matches!(
        kind,
        Format::MySqlSlow | Format::MySqlGeneral | Format::MySqlError
    ) {
        // A record goes on until a line starts the next; the general log's records get the
        // connection they belong to.
        let mut done = |b: &mut Batcher<'_>, first: u64, mut text: Vec<u8>| {
            // Only the first line says whose record it is.
            let first_line = text.split(|c| *c == b'\n').next().unwrap_or_default();
            if kind == Format::MySqlGeneral
                && let Some(note) = conns.observe(&String::from_utf8_lossy(first_line))
            {
                text.push(b'\n');
                text.extend_from_slice(note.as_bytes());
            }
            b.push(first, &text);
        };
        let r = read_lines(file, &mut reader, limits, &mut batch, &mut |n, l, b| {
            let line = String::from_utf8_lossy(l);
            // The server's banner (again after each restart) ends a record and is no record.
            let banner = kind != Format::MySqlError && crate::mysqllog::is_banner(&line);
            let starts = banner
                || match kind {
                    Format::MySqlSlow => {
                        // `# Time:` is followed by its `# User@Host:`: one record.
                        crate::mysqllog::starts_slow_record(&line)
                            && !(line.starts_with("# User@Host: ")
                                && pending.as_ref().is_some_and(|(_, t)| {
                                    !t.contains(&b'\n') && t.starts_with(b"# Time: ")
                                }))
                    }
                    Format::MySqlGeneral => crate::mysqllog::general_head(&line).is_some(),
                    _ => crate::mysqllog::is_error_line(&line),
                };
            match pending {
                Some(_) if !starts => continue_record(&mut pending, l, max, &mut too_long),
                _ => {
                    if let Some((first, text)) = pending.take() {
                        done(b, first, text);
                    }
                    if banner {
                        return;
                    }
                    pending = Some((n, l.to_vec()));
                }
            }
        });
        if let Some((first, text)) = pending.take() {
            done(&mut batch, first, text);
        }
        r
    } else {
        read_lines(file, &mut reader, limits, &mut batch, &mut |n, l, b| {
            b.push(n, l)
        })
    };
    for (_, first, lines) in open.drain(..) {
        audit_done(lineage, &mut batch, first, lines);
    }
    if let Some((first, text)) = pending {
        batch.push(first, &text);
    }
    for first in cut {
        batch.sink.error(SourceError::new(
            file,
            Position::Line(first),
            ErrorKind::Syntax,
            "a quote opened in this record never closes; the record ends where the next one starts",
        ));
    }
    for first in too_long {
        batch.sink.error(SourceError::new(
            file,
            Position::Line(first),
            ErrorKind::TooLong,
            format!(
                "record longer than the {} MiB limit; skipped",
                limits.max_record_bytes >> 20
            ),
        ));
    }
    batch.finish(result);
}

/// Appends a continuation line to the record being assembled, or drops the record (noting its
/// first line) when it would pass `max` bytes.
fn continue_record(
    pending: &mut Option<(u64, Vec<u8>)>,
    line: &[u8],
    max: usize,
    too_long: &mut Vec<u64>,
) {
    extend_record(pending, &[b"\n", line], max, too_long);
}

/// Appends `parts` to the record being assembled, or drops the record (noting its first line)
/// when it would pass `max` bytes.
fn extend_record(
    pending: &mut Option<(u64, Vec<u8>)>,
    parts: &[&[u8]],
    max: usize,
    too_long: &mut Vec<u64>,
) {
    let Some((first, text)) = pending.as_mut() else {
        return;
    };
    if text.len() + parts.iter().map(|p| p.len()).sum::<usize>() > max {
        too_long.push(*first);
        *pending = None;
    } else {
        for p in parts {
            text.extend_from_slice(p);
        }
    }
}

/// A line that begins a record of the quoted formats: a log time (`YYYY-MM-DD HH:MM`, quoted
/// or not), a pgaudit record or a Percona CSV audit record.
fn starts_record(line: &[u8]) -> bool {
    let l = line.strip_prefix(b"\"").unwrap_or(line);
    let shape = b"dddd-dd-dd?dd:dd";
    let timed = l.len() >= shape.len()
        && shape.iter().zip(l).all(|(s, c)| match s {
            b'd' => c.is_ascii_digit(),
            b'?' => *c == b' ' || *c == b'T',
            s => s == c,
        });
    timed || {
        let l = String::from_utf8_lossy(line);
        crate::dbaudit::is_pgaudit(&l)
            || crate::dbaudit::is_pg_log_line(&l)
            || crate::mysqlaudit::is_percona_csv(&l)
    }
}

/// Captures are decoded here, in order (templates carry across packets); each flow goes on as a
/// JSON record numbered by its packet. The whole capture is held in memory while decoded.
fn read_capture(file: &Arc<str>, reader: Box<dyn BufRead>, sink: &mut dyn UnitSink) {
    /// Flows go out in batches as packets are decoded; memory holds one record at a time.
    struct Out<'b, 's> {
        file: &'b Arc<str>,
        batch: Batcher<'s>,
    }
    impl crate::netflow::CaptureSink for Out<'_, '_> {
        fn flow(&mut self, packet: u64, json: String) {
            self.batch.push(packet, json.as_bytes());
        }
        fn problem(&mut self, packet: u64, message: String) {
            self.batch.sink.error(SourceError::new(
                self.file,
                Position::Packet(packet),
                ErrorKind::Format,
                message,
            ));
        }
    }
    let mut out = Out {
        file,
        batch: Batcher::new(file, Format::Json, &Context::default(), sink),
    };
    let error = crate::netflow::Decoder::new(&mut out).read(reader);
    let Out { batch, .. } = out;
    batch.finish(match error {
        Some(e) => Err((0, e)),
        None => Ok(()),
    });
}

fn read_json(
    file: &Arc<str>,
    mut reader: Box<dyn BufRead>,
    limits: &Limits,
    sink: &mut dyn UnitSink,
) {
    let layout = match reader.fill_buf() {
        Ok(head) => json_layout(head),
        Err(_) => JsonLayout::Lines,
    };
    let mut batch = Batcher::new(file, Format::Json, &Context::default(), sink);
    let mut conns = crate::mysqlconn::Connections::default();
    let result = match layout {
        JsonLayout::Lines => read_lines(file, &mut reader, limits, &mut batch, &mut |n, l, b| {
            push_json(&mut conns, b, n, l)
        }),
        JsonLayout::Array => split_values(file, &mut reader, 1, limits, &mut batch, &mut conns),
        JsonLayout::Concatenated => {
            split_values(file, &mut reader, 0, limits, &mut batch, &mut conns)
        }
    };
    batch.finish(result);
}

/// A line of a JSON array written one element per line, as Percona's `JSONL` audit format
/// writes it (`[`, then `{…},` per record, then `]`): the object without the array's
/// punctuation; `None` for the array's own lines. Other lines are as they are.
fn array_line(line: &[u8]) -> Option<&[u8]> {
    let t = line.trim_ascii();
    if matches!(t, b"[" | b"]" | b"]," | b"") {
        return None;
    }
    let inner = t.strip_prefix(b"[").unwrap_or(t).trim_ascii_start();
    let inner = inner
        .strip_suffix(b",")
        .or_else(|| inner.strip_suffix(b"]"))
        .unwrap_or(inner)
        .trim_ascii_end();
    if inner.first() == Some(&b'{') && inner.last() == Some(&b'}') {
        Some(inner)
    } else {
        Some(line)
    }
}

/// Hands on one JSON record, with the account of its MySQL audit log connection added where
/// it names none ([`crate::mysqlconn`]).
fn push_json(
    conns: &mut crate::mysqlconn::Connections,
    b: &mut Batcher<'_>,
    first: u64,
    record: &[u8],
) {
    match conns.observe(record) {
        Some(r) => b.push(first, &r),
        None => b.push(first, record),
    }
}

type ReadResult = Result<(), (u64, io::Error)>;

/// Reads lines (bounded in length); each non-blank one, without its line end, goes to
/// `on_line`.
fn read_lines(
    file: &Arc<str>,
    reader: &mut Box<dyn BufRead>,
    limits: &Limits,
    batch: &mut Batcher<'_>,
    on_line: &mut dyn FnMut(u64, &[u8], &mut Batcher<'_>),
) -> ReadResult {
    let mut line_no = batch.line_base;
    let mut offset = 0u64;
    let mut line: Vec<u8> = Vec::new();
    loop {
        line.clear();
        let mut too_long = false;
        let mut eof = true;
        loop {
            let buf = match reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err((offset, e)),
            };
            if buf.is_empty() {
                break;
            }
            eof = false;
            let (take, done) = match memchr::memchr(b'\n', buf) {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            if !too_long {
                if line.len() + take > limits.max_record_bytes + 1 {
                    too_long = true;
                    line.clear();
                } else {
                    line.extend_from_slice(&buf[..take]);
                }
            }
            reader.consume(take);
            offset += take as u64;
            if done {
                break;
            }
        }
        if eof && line.is_empty() && !too_long {
            return Ok(());
        }
        line_no += 1;
        if too_long {
            batch.sink.error(SourceError::new(
                file,
                Position::Line(line_no),
                ErrorKind::TooLong,
                format!(
                    "line longer than the {} MiB limit; skipped",
                    limits.max_record_bytes >> 20
                ),
            ));
            continue;
        }
        // Leading blanks are kept: they belong to continued records (multi-line SQL).
        let trimmed = line.trim_ascii_end();
        if !trimmed.trim_ascii_start().is_empty() {
            on_line(line_no, trimmed, batch);
        }
    }
}

/// Splits a stream of JSON values at nesting depth `base` (1 inside a top-level array).
fn split_values(
    file: &Arc<str>,
    reader: &mut Box<dyn BufRead>,
    base: u32,
    limits: &Limits,
    batch: &mut Batcher<'_>,
    conns: &mut crate::mysqlconn::Connections,
) -> ReadResult {
    let mut depth = 0u32;
    let mut in_str = false;
    let mut esc = false;
    let mut line = 1u64;
    let mut offset = 0u64;
    let mut open: Option<u64> = None;
    let mut too_long = false;
    let mut elem: Vec<u8> = Vec::new();
    loop {
        let buf = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err((offset, e)),
        };
        if buf.is_empty() {
            break;
        }
        let n = buf.len();
        for &b in buf {
            if open.is_some() && !too_long {
                elem.push(b);
                if elem.len() > limits.max_record_bytes {
                    too_long = true;
                    elem.clear();
                }
            }
            if b == b'\n' {
                line += 1;
            }
            if in_str {
                if esc {
                    esc = false;
                } else if b == b'\\' {
                    esc = true;
                } else if b == b'"' {
                    in_str = false;
                }
                continue;
            }
            match b {
                b'"' => in_str = true,
                b'{' | b'[' => {
                    if depth == base && open.is_none() {
                        open = Some(line);
                        too_long = false;
                        elem.clear();
                        elem.push(b);
                    }
                    depth += 1;
                }
                b'}' | b']' => {
                    depth = depth.saturating_sub(1);
                    if depth == base
                        && let Some(start) = open.take()
                    {
                        if too_long {
                            batch.sink.error(SourceError::new(
                                file,
                                Position::Line(start),
                                ErrorKind::TooLong,
                                format!(
                                    "record longer than the {} MiB limit; skipped",
                                    limits.max_record_bytes >> 20
                                ),
                            ));
                        } else {
                            push_json(conns, batch, start, &elem);
                        }
                        elem.clear();
                    }
                }
                _ => {}
            }
        }
        reader.consume(n);
        offset += n as u64;
    }
    if let Some(start) = open {
        batch.sink.error(SourceError::new(
            file,
            Position::Line(start),
            ErrorKind::Json,
            "record cut off at end of input; skipped",
        ));
    }
    Ok(())
}

impl Unit {
    /// Decodes the unit, passing each event (with its log source applied) to `f`. Returns the
    /// number of events; problems are added to `errors`.
    pub fn decode(
        self,
        mapping: &Mapping,
        settings: &Arc<ParserSettings>,
        errors: &mut Vec<SourceError>,
        f: &mut dyn FnMut(Event<'_>),
    ) -> u64 {
        match self {
            Unit::Evtx {
                file,
                number,
                mut chunk,
            } => decode_evtx(&file, number, &mut chunk, mapping, settings, errors, f),
            records => records.decode_text(mapping, errors, f),
        }
    }

    /// Its place in its stream (text units cut by one read), when its records may repeat a
    /// statement ([`Format::may_repeat_statements`]): the units whose records must be decided
    /// in their input's order.
    pub fn order(&self) -> Option<UnitOrder> {
        match self {
            Unit::Records { order, kind, .. } if kind.may_repeat_statements() => *order,
            _ => None,
        }
    }

    /// Decodes a text unit's records into events that borrow from it (an EVTX unit gives
    /// none: its records are decoded while its chunk is parsed).
    pub fn decode_text<'a>(
        &'a self,
        mapping: &Mapping,
        errors: &mut Vec<SourceError>,
        f: &mut dyn FnMut(Event<'a>),
    ) -> u64 {
        let Unit::Records {
            file,
            kind,
            context,
            buf,
            records,
            header,
            ..
        } = self
        else {
            return 0;
        };
        let zone = context.zone.as_deref().and_then(crate::linux::zone);
        let mut n = 0;
        let zeek = match (kind, header.as_deref()) {
            (Format::ZeekTsv, Some(h)) => crate::flow::ZeekLayout::new(h),
            _ => None,
        };
        let header = header.as_deref();
        let record = Record {
            file,
            kind: *kind,
            context,
            zeek: zeek.as_ref(),
            header,
            zone: zone.as_ref(),
            learner: Default::default(),
        };
        for &(line, start, end) in records {
            let bytes = &buf[start..end];
            let parsed = match utf8(bytes) {
                Ok(text) => record.parse(text, line),
                Err(e) => {
                    errors.push(SourceError::new(
                        file,
                        Position::Line(line),
                        ErrorKind::Utf8,
                        format!(
                            "invalid UTF-8 at byte {} of the record; read with U+FFFD in its place",
                            e.valid_up_to() + 1
                        ),
                    ));
                    let text = String::from_utf8_lossy(bytes);
                    record
                        .parse(&text, line)
                        .map(|r| r.map(|(fields, ts)| (cellwarden_event::owned_fields(fields), ts)))
                }
            };
            match parsed {
                Ok(Some((fields, ts))) => {
                    emit(file, line, fields, ts, context.host.as_ref(), mapping, f);
                    n += 1;
                }
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
        n
    }
}

/// The events of a decoded text unit.
type Events<'a> = Vec<Event<'a>>;

self_cell::self_cell!(
    /// A text unit with its events, which borrow from its bytes.
    struct UnitEvents {
        owner: Unit,
        #[covariant]
        dependent: Events,
    }
);

/// A text unit decoded ahead of the thread that consumes its events (the live engine decodes
/// on other threads while it runs the detectors).
pub struct Decoded {
    cell: UnitEvents,
    /// Problems met decoding it.
    pub errors: Vec<SourceError>,
}

impl Decoded {
    /// Decodes a text unit; an EVTX unit comes back as it is (its events borrow the parser's
    /// state of one record at a time, so they are decoded where they are used).
    pub fn new(unit: Unit, mapping: &Mapping) -> Result<Decoded, Unit> {
        if matches!(unit, Unit::Evtx { .. }) {
            return Err(unit);
        }
        let mut errors = Vec::new();
        let cell = UnitEvents::new(unit, |unit| {
            let mut events = Vec::new();
            unit.decode_text(mapping, &mut errors, &mut |ev| events.push(ev));
            events
        });
        Ok(Decoded { cell, errors })
    }

    /// The unit decoded.
    pub fn unit(&self) -> &Unit {
        self.cell.borrow_owner()
    }

    /// Shows each event to `f` in order; returns their number. The events stay: whoever
    /// ends up with the unit drops them (the live engine lets the journal's thread do it).
    pub fn events(&self, f: &mut dyn FnMut(&Event<'_>)) -> u64 {
        let events = self.cell.borrow_dependent();
        for ev in events {
            f(ev);
        }
        events.len() as u64
    }

    /// The unit, its events dropped.
    pub fn into_unit(self) -> Unit {
        self.cell.into_owner()
    }
}

/// What the records of one text unit share, to parse each.
struct Record<'l, 'a> {
    file: &'l Arc<str>,
    kind: Format,
    context: &'a Context,
    zeek: Option<&'l crate::flow::ZeekLayout<'a>>,
    header: Option<&'a [String]>,
    zone: Option<&'l jiff::tz::TimeZone>,
    /// The prefix format of this unit's PostgreSQL lines, once learnt.
    learner: crate::pgprefix::Learner,
}

/// A parsed record: its fields and time, or nothing to emit.
type Parsed<'t> =
    Result<Option<(crate::json::Fields<'t>, Option<cellwarden_event::Timestamp>)>, SourceError>;

impl<'a> Record<'_, 'a> {
    /// Parses one record's text (line `line` of the file).
    fn parse<'t>(&self, text: &'t str, line: u64) -> Parsed<'t>
    where
        'a: 't,
    {
        let Record {
            file,
            kind,
            context,
            zeek,
            header,
            zone,
            ref learner,
        } = *self;
        let syntax = |what: &str| {
            SourceError::new(
                file,
                Position::Line(line),
                ErrorKind::Syntax,
                format!("not {what}; skipped"),
            )
        };
        match kind {
            Format::Json => flatten(text)
                .map(|mut fields| {
                    let ts = match crate::linux::journald(&mut fields) {
                        Some(ts) => crate::dbaudit::pg_journald(
                            &mut fields,
                            &context.pg_prefixes,
                            learner,
                            zone,
                        )
                        .flatten()
                        .or(ts),
                        None => match crate::flow::zeek_json(&mut fields) {
                            Some(ts) => ts,
                            None => match crate::dbaudit::pg_jsonlog(&mut fields) {
                                Some(ts) => ts,
                                None => crate::dbaudit::mysql_json(&mut fields).flatten(),
                            },
                        },
                    };
                    Some((fields, ts))
                })
                .map_err(|e| {
                    SourceError::new(
                        file,
                        Position::Line(line + e.line(text).saturating_sub(1) as u64),
                        ErrorKind::Json,
                        format!("{e}; record skipped"),
                    )
                }),
            Format::Syslog => {
                let p = crate::linux::syslog_parts(text, context.year, zone)
                    .ok_or_else(|| syntax("a syslog line"))?;
                // PostgreSQL and the MariaDB and Percona audit plugins logging to syslog: their
                // records are read as those of their own logs.
                match crate::dbaudit::pg_syslog_record(&p, &context.pg_prefixes, learner, zone) {
                    Some(Some(r)) => return Ok(Some(r)),
                    Some(None) => {
                        return Err(syntax(
                            "a whole PostgreSQL record (a syslog piece of it did not follow \
                             it: another line came between its pieces)",
                        ));
                    }
                    None => {}
                }
                Ok(Some(
                    crate::dbaudit::mariadb_syslog_record(&p)
                        .or_else(|| crate::mysqlaudit::syslog_record(&p))
                        .unwrap_or_else(|| crate::linux::syslog_fields(&p)),
                ))
            }
            Format::Auditd => Ok(Some(crate::linux::audit_event(text))),
            Format::PgLog if crate::dbaudit::is_pgaudit(text) => {
                crate::dbaudit::pgaudit_record(text, &context.pg_prefixes, learner, zone)
                    .map(Some)
                    .ok_or_else(|| syntax("a complete pgaudit record"))
            }
            Format::PgLog => {
                crate::dbaudit::pg_log_record(text, &context.pg_prefixes, learner, zone)
                    .map(Some)
                    .ok_or_else(|| syntax("a PostgreSQL server log record"))
            }
            Format::PgCsv => crate::dbaudit::pg_csvlog_record(text, zone)
                .map(Some)
                .ok_or_else(|| syntax("a PostgreSQL csvlog row")),
            // Comment lines alone: the file ends before the statement they
            // announce (it was copied while written).
            Format::MySqlSlow if text.lines().all(|l| l.starts_with("# ")) => Ok(None),
            Format::MySqlSlow => crate::mysqllog::slow_record(text, zone)
                .map(Some)
                .ok_or_else(|| syntax("a slow query log record")),
            Format::MySqlGeneral => crate::mysqllog::general_record(text, zone)
                .map(Some)
                .ok_or_else(|| syntax("a general query log record")),
            Format::MySqlError => crate::mysqllog::error_record(text, zone)
                .map(Some)
                .ok_or_else(|| syntax("an error log record")),
            Format::MySqlAuditXml => crate::mysqlaudit::record(text).map(Some).ok_or_else(|| {
                syntax("a whole MySQL/Percona XML audit record (<AUDIT_RECORD …/> or <AUDIT_RECORD>…</AUDIT_RECORD>)")
            }),
            Format::OracleAuditXml => crate::dbaudit::oracle_xml_record(text)
                .map(Some)
                .ok_or_else(|| syntax("a whole Oracle XML audit record (<AuditRecord>…</AuditRecord>)")),
            Format::PerconaAuditCsv => crate::mysqlaudit::csv_record(text)
                .map(Some)
                .ok_or_else(|| syntax("a Percona CSV audit record")),
            Format::MariaDbAudit => crate::dbaudit::mariadb_audit_record(text)
                .map(Some)
                .ok_or_else(|| syntax("a MariaDB server_audit record")),
            Format::OracleCsv => crate::dbaudit::oracle_record(header.unwrap_or(&[]), text)
                .map(Some)
                .ok_or_else(|| syntax("an Oracle audit CSV row")),
            Format::ZeekTsv => zeek
                .as_ref()
                .and_then(|z| crate::flow::zeek_tsv_record(z, text))
                .map(Some)
                .ok_or_else(|| syntax("a row of the Zeek header before it")),
            Format::NfdumpCsv => crate::flow::nfdump_record(header.unwrap_or(&[]), text)
                .ok_or_else(|| syntax("an nfdump CSV row")),
            // Captures are decoded into JSON records when read.
            Format::Evtx | Format::Capture => Ok(None),
        }
    }
}

fn chunk_position(number: u64) -> Position {
    Position::Chunk {
        number,
        offset: EVTX_FILE_HEADER_SIZE + number * EVTX_CHUNK_SIZE,
    }
}

/// Builds the event from flattened fields, applies the mapping and hands it on.
fn emit<'a, F: FnMut(Event<'a>) + ?Sized>(
    file: &Arc<str>,
    record: u64,
    fields: crate::json::Fields<'a>,
    timestamp: Option<cellwarden_event::Timestamp>,
    host: Option<&Arc<str>>,
    mapping: &Mapping,
    f: &mut F,
) {
    let mut ev = Event::new(Origin {
        file: file.clone(),
        record,
    });
    ev.fields = fields;
    ev.timestamp = timestamp;
    mapping.apply(&mut ev);
    if ev.host.is_none()
        && let Some(h) = host
    {
        ev.host = Some(Cow::Owned(h.to_string()));
    }
    f(ev);
}

fn decode_evtx(
    file: &Arc<str>,
    number: u64,
    chunk: &mut EvtxChunkData,
    mapping: &Mapping,
    settings: &Arc<ParserSettings>,
    errors: &mut Vec<SourceError>,
    f: &mut dyn FnMut(Event<'_>),
) -> u64 {
    let mut parsed = match chunk.parse(settings.clone()) {
        Ok(c) => c,
        Err(e) => {
            errors.push(SourceError::new(
                file,
                chunk_position(number),
                ErrorKind::EvtxChunk,
                format!("{}; chunk skipped", error_chain(&e)),
            ));
            return 0;
        }
    };
    let mut n = 0;
    for record in parsed.iter() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.push(SourceError::new(
                    file,
                    chunk_position(number),
                    ErrorKind::EvtxRecord,
                    format!("{}; record skipped", error_chain(&e)),
                ));
                continue;
            }
        };
        let id = record.event_record_id;
        let ts = record.timestamp;
        let json = match record.into_json_bytes() {
            Ok(r) => r.data,
            Err(e) => {
                errors.push(SourceError::new(
                    file,
                    Position::Record {
                        chunk: number,
                        record: id,
                    },
                    ErrorKind::EvtxRecord,
                    format!("{}; record skipped", error_chain(&e)),
                ));
                continue;
            }
        };
        let text = match utf8(&json) {
            Ok(t) => Cow::Borrowed(t),
            Err(_) => String::from_utf8_lossy(&json),
        };
        match flatten(&text) {
            Ok(fields) => {
                // A zero FILETIME (1601) in the record header means "unknown": the mapping's
                // time fields (TimeCreated_SystemTime) are tried instead.
                let ts = (ts.as_second() > 0).then_some(ts);
                emit(file, id, fields, ts, None, mapping, f);
                n += 1;
            }
            Err(e) => errors.push(SourceError::new(
                file,
                Position::Record {
                    chunk: number,
                    record: id,
                },
                ErrorKind::EvtxRecord,
                format!("rendered record does not parse: {e}; record skipped"),
            )),
        }
    }
    n
}

/// `bytes` as text when valid UTF-8 (checked with SIMD: every record is checked).
fn utf8(bytes: &[u8]) -> Result<&str, std::str::Utf8Error> {
    match simdutf8::basic::from_utf8(bytes) {
        Ok(t) => Ok(t),
        // The standard check tells where it breaks.
        Err(_) => std::str::from_utf8(bytes),
    }
}

/// Parser settings for decoding EVTX chunks on worker threads.
pub fn evtx_settings() -> Arc<ParserSettings> {
    Arc::new(ParserSettings::default().num_threads(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_text(text: &[u8], limits: Limits) -> (Vec<(u64, String)>, Vec<SourceError>) {
        let file: Arc<str> = "t.json".into();
        let mut c = Collected::default();
        read_stream(
            &file,
            Box::new(io::Cursor::new(text.to_vec())),
            Some(Format::Json),
            false,
            &Context::of_year(2026),
            &limits,
            &mut c,
        );
        let mapping = Mapping::builtin();
        let settings = evtx_settings();
        let mut out = Vec::new();
        let mut errors = c.errors;
        for u in c.units {
            u.decode(&mapping, &settings, &mut errors, &mut |e| {
                out.push((
                    e.origin.record,
                    e.get_str("a").unwrap_or_default().to_string(),
                ))
            });
        }
        (out, errors)
    }

    /// Every event of the units, in order, as (record, fields, time, host, log source).
    fn events_of(units: &[(Format, &[u8])], ahead: bool) -> (Vec<String>, usize) {
        let mapping = Mapping::builtin();
        let settings = evtx_settings();
        let (mut out, mut errors) = (Vec::new(), Vec::new());
        for (format, text) in units {
            let file: Arc<str> = "t".into();
            let mut c = Collected::default();
            read_bytes(&file, text, Some(*format), &Limits::default(), &mut c);
            errors.extend(c.errors);
            for u in c.units {
                let mut show = |e: &Event<'_>| {
                    out.push(format!(
                        "{} {:?} {:?} {:?} {:?}",
                        e.origin.record,
                        e.fields,
                        e.timestamp,
                        e.host,
                        e.logsource.as_ref().map(|l| l.product.clone())
                    ))
                };
                if ahead {
                    let mut d = Decoded::new(u, &mapping).unwrap_or_else(|_| panic!("a text unit"));
                    errors.append(&mut d.errors);
                    d.events(&mut show);
                } else {
                    u.decode(&mapping, &settings, &mut errors, &mut |e| show(&e));
                }
            }
        }
        (out, errors.len())
    }

    #[test]
    fn decoded_ahead_gives_the_events_decoding_gives() {
        fn send<T: Send>() {}
        send::<Decoded>();
        let zeek = b"#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\torig_bytes\n#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tcount\n1700000000.5\tC1\t10.0.0.1\t5000\t10.0.0.2\t443\ttcp\t12\n1700000001.5\tC2\t10.0.0.\xff\t5000\t10.0.0.2\t443\ttcp\t-\nshort\n";
        let units: [(Format, &[u8]); 3] = [
            (
                Format::Json,
                b"{\"a\":\"1\",\"host\":\"h\"}\nnot json\n{\"a\": \"\xff\"}\n",
            ),
            (Format::ZeekTsv, zeek),
            (
                Format::Syslog,
                b"Jan  3 10:00:00 db01 sshd[1]: Accepted password for root from 10.0.0.9 port 2 ssh2\n",
            ),
        ];
        let (now, errors_now) = events_of(&units, false);
        let (ahead, errors_ahead) = events_of(&units, true);
        assert_eq!(now.len(), 5, "{now:#?}");
        assert_eq!(ahead, now);
        assert_eq!(errors_ahead, errors_now);
        assert!(errors_now >= 3);
    }

    #[test]
    fn json_lines_with_bad_lines_go_on() {
        let (ev, err) = read_text(
            b"{\"a\":\"1\"}\n\nnot json\n{\"a\":\"2\"}\n{\"a\": \"\xff\"}\n",
            Limits::default(),
        );
        assert_eq!(
            ev,
            vec![(1, "1".into()), (4, "2".into()), (5, "\u{FFFD}".into())]
        );
        assert_eq!(err.len(), 2);
        assert_eq!(err[0].position, Position::Line(3));
        assert_eq!(err[0].kind, ErrorKind::Json);
        assert_eq!(err[1].kind, ErrorKind::Utf8);
    }

    #[test]
    fn long_line_is_skipped_with_position() {
        let mut text = b"{\"a\":\"1\"}\n{\"a\":\"".to_vec();
        text.extend(std::iter::repeat_n(b'x', 5000));
        text.extend_from_slice(b"\"}\n{\"a\":\"3\"}");
        let (ev, err) = read_text(
            &text,
            Limits {
                max_record_bytes: 1000,
                ..Limits::default()
            },
        );
        assert_eq!(ev, vec![(1, "1".into()), (3, "3".into())]);
        assert_eq!(err[0].kind, ErrorKind::TooLong);
        assert_eq!(err[0].position, Position::Line(2));
    }

    #[test]
    fn arrays_and_pretty_objects() {
        let (ev, err) = read_text(
            b"[\n {\"a\": \"x]\"},\n {\"a\": \"y\"}\n]",
            Limits::default(),
        );
        assert!(err.is_empty(), "{err:?}");
        assert_eq!(ev, vec![(2, "x]".into()), (3, "y".into())]);
        let (ev, _) = read_text(
            b"{\n  \"a\": \"p\"\n}\n{\n  \"a\": \"q\"\n}\n",
            Limits::default(),
        );
        assert_eq!(ev, vec![(1, "p".into()), (4, "q".into())]);
    }

    #[test]
    fn gzip_is_transparent() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"{\"a\":\"z\"}\n").unwrap();
        let gz = enc.finish().unwrap();
        let file: Arc<str> = "t.json.gz".into();
        let mut c = Collected::default();
        read_stream(
            &file,
            Box::new(io::Cursor::new(gz)),
            None,
            false,
            &Context::of_year(2026),
            &Limits::default(),
            &mut c,
        );
        assert_eq!(c.units.len(), 1);
        assert!(c.errors.is_empty());
    }

    #[test]
    fn random_bytes_as_evtx_is_a_format_error() {
        let file: Arc<str> = "x.evtx".into();
        let mut c = Collected::default();
        read_evtx_seekable(&file, io::Cursor::new(vec![7u8; 70000]), &mut c);
        assert!(c.units.is_empty());
        assert_eq!(c.errors.len(), 1);
        assert_eq!(c.errors[0].kind, ErrorKind::Format);
    }

    #[test]
    fn lines_of_a_json_array_are_its_elements() {
        assert_eq!(array_line(b"["), None);
        assert_eq!(array_line(b"  ]"), None);
        assert_eq!(array_line(br#"{"a":1},"#), Some(&br#"{"a":1}"#[..]));
        assert_eq!(array_line(br#"[{"a":1},"#), Some(&br#"{"a":1}"#[..]));
        assert_eq!(array_line(br#"{"a":"x,"}]"#), Some(&br#"{"a":"x,"}"#[..]));
        assert_eq!(array_line(br#"{"a":1}"#), Some(&br#"{"a":1}"#[..]));
        // Not an object: left as it is (and reported by the decoder).
        assert_eq!(array_line(b"not json,"), Some(&b"not json,"[..]));
    }

    /// The events of `lines` read in chunks of one record each, as a follower reads a file
    /// written record by record: with one state kept across the chunks, or a new one per chunk.
    fn read_in_chunks(format: Format, lines: &[&str], keep: bool) -> Vec<String> {
        let file: Arc<str> = "followed.log".into();
        let mut state = StreamState::default();
        let mut out = Vec::new();
        let mut base = 0;
        for line in lines {
            if !keep {
                state = StreamState::default();
            }
            let mut c = Collected::default();
            let text = format!("{line}\n");
            let ctx = Context::of_year(2026);
            read_chunk(
                &file,
                text.as_bytes(),
                format,
                &ctx,
                base,
                &Limits::default(),
                &mut state,
                &mut c,
            );
            base += line.lines().count() as u64;
            out.extend(decoded(c));
        }
        out
    }

    /// The events of the units read, as (record, fields); no problem may have been met.
    fn decoded(c: Collected) -> Vec<String> {
        let (mapping, settings) = (Mapping::builtin(), evtx_settings());
        let mut out = Vec::new();
        let mut errors = c.errors;
        for u in c.units {
            u.decode(&mapping, &settings, &mut errors, &mut |e| {
                out.push(format!("{} {:?}", e.origin.record, e.fields))
            });
        }
        assert!(errors.is_empty(), "{errors:?}");
        out
    }

    /// The events of `lines` read as one file.
    fn read_whole(format: Format, lines: &[&str]) -> Vec<String> {
        let mut c = Collected::default();
        let text = lines.join("\n") + "\n";
        read_bytes(
            &"followed.log".into(),
            text.as_bytes(),
            Some(format),
            &Limits::default(),
            &mut c,
        );
        decoded(c)
    }

    #[test]
    fn a_stream_read_in_chunks_keeps_what_earlier_records_said() {
        // An execve event with its end mark.
        let exec = |serial: u32, pid: u32, ppid: u32, exe: &str, args: &[&str]| {
            format!(
                "{}\ntype=EOE msg=audit(1700000000.{serial:03}:{serial}): ",
                crate::lineage::tests::exec(serial, pid, ppid, exe, args)
            )
        };
        let auditd = [
            exec(1, 500, 1, "/usr/bin/apt-get", &["apt-get", "upgrade"]),
            exec(2, 501, 500, "/usr/bin/dpkg", &["dpkg", "--unpack"]),
            exec(3, 502, 501, "/usr/bin/cp", &["cp", "a", "/etc/cron.d/x"]),
        ];
        let auditd: Vec<&str> = auditd.iter().map(String::as_str).collect();
        let pg = [
            "2026-03-07 03:10:00.001 UTC [77] [unknown]@[unknown] LOG:  connection received: host=10.30.5.17 port=46773",
            "2026-03-07 03:10:00.002 UTC [77] crm_app@billing LOG:  connection authorized: user=crm_app database=billing application_name=psql",
            "2026-03-07 03:10:01.000 UTC [77] crm_app@billing LOG:  statement: SELECT * FROM cdr WHERE calling_number = '33699990001'",
        ];
        let mysql = [
            "2026-03-07T03:10:00.000000Z\t   12 Connect\tcrm_app@10.30.5.17 on billing using TCP/IP",
            "2026-03-07T03:10:01.000000Z\t   12 Query\tSELECT * FROM cdr WHERE calling_number = '33699990001'",
        ];
        let cases: [(Format, &[&str], &str); 3] = [
            (Format::Auditd, &auditd, "dpkg"),
            (Format::PgLog, &pg, "10.30.5.17"),
            (Format::MySqlGeneral, &mysql, "crm_app"),
        ];
        for (format, lines, learnt) in cases {
            let whole = read_whole(format, lines);
            let kept = read_in_chunks(format, lines, true);
            assert_eq!(kept, whole, "{format:?}");
            // Without the state, the last record misses what the first ones said.
            let last = whole.last().expect("events");
            assert!(last.contains(learnt), "{format:?}: {last}");
            let lost = read_in_chunks(format, lines, false);
            assert!(!lost.last().expect("events").contains(learnt), "{format:?}");
        }
    }
}
