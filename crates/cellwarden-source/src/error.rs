use std::fmt;
use std::sync::Arc;

/// What kind of input problem, for the run summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    /// The file could not be opened or read.
    Io,
    /// Not a format we read (named explicitly, or bad magic).
    Format,
    /// An EVTX chunk that is corrupt or truncated.
    EvtxChunk,
    /// An EVTX record that could not be decoded.
    EvtxRecord,
    /// A JSON record that does not parse.
    Json,
    /// A text record (syslog line) that does not have its format's shape.
    Syntax,
    /// Bytes that are not UTF-8 (the record is still read, with U+FFFD in their place).
    Utf8,
    /// A line or record over the size limit (skipped).
    TooLong,
    /// A compressed stream that is corrupt or truncated.
    Decompress,
}

impl ErrorKind {
    /// Name as run summaries write it (`evtx-chunk`, `json`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Io => "io",
            ErrorKind::Format => "format",
            ErrorKind::EvtxChunk => "evtx-chunk",
            ErrorKind::EvtxRecord => "evtx-record",
            ErrorKind::Json => "json",
            ErrorKind::Syntax => "syntax",
            ErrorKind::Utf8 => "utf8",
            ErrorKind::TooLong => "too-long",
            ErrorKind::Decompress => "decompress",
        }
    }
}

/// Where in a file a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Position {
    /// The whole file.
    File,
    /// Byte offset in the (decompressed) file.
    Offset(u64),
    /// 1-based line.
    Line(u64),
    /// EVTX chunk number and its byte offset.
    Chunk {
        /// Chunk number, from 0.
        number: u64,
        /// Byte offset of the chunk.
        offset: u64,
    },
    /// EVTX record id inside a chunk.
    Record {
        /// Chunk number.
        chunk: u64,
        /// Record id.
        record: u64,
    },
    /// 1-based packet of a capture.
    Packet(u64),
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::File => Ok(()),
            Position::Offset(o) => write!(f, ":offset {o}"),
            Position::Line(l) => write!(f, ":{l}"),
            Position::Chunk { number, offset } => write!(f, ":chunk {number} (offset {offset})"),
            Position::Record { chunk, record } => write!(f, ":chunk {chunk} record {record}"),
            Position::Packet(p) => write!(f, ":packet {p}"),
        }
    }
}

/// An input problem with file and position. Reading goes on after it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SourceError {
    /// The file (or `-` for standard input).
    pub file: Arc<str>,
    /// Where in it.
    pub position: Position,
    /// What kind of problem.
    pub kind: ErrorKind,
    /// What is wrong, for people.
    pub message: String,
}

impl SourceError {
    /// A problem at a position.
    pub fn new(
        file: &Arc<str>,
        position: Position,
        kind: ErrorKind,
        message: impl Into<String>,
    ) -> Self {
        SourceError {
            file: file.clone(),
            position,
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}: {} ({})",
            self.file,
            self.position,
            self.message,
            self.kind.as_str()
        )
    }
}
