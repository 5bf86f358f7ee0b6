//! Following growing files like `tail -F`: new files matching a glob, rotation by rename
//! (the old file is read to its end, then the new one from its start) and by truncation
//! (read again from the start). Only complete lines are read; a line still being written waits.
//! Line numbers go on across rotations, so `path:line` names an event once. A folder is
//! followed as every file under it, new ones too; binary and compressed files are told apart
//! from logs and left alone, as are rotated copies that appear beside a followed file.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cellwarden_source::{ErrorKind, Format, Limits, Position, SourceError};

use crate::source::{Collect, FilePosition, Input, PositionUpdate, Source};

/// Most bytes read from one file per round (the rest is read in the next rounds).
const READ_BYTES: usize = 4 << 20;

/// Bytes before a resumed file's position read again (and not handed on) to learn what the
/// records after it need: process lineage, PostgreSQL and MySQL connections.
const WARM_BYTES: u64 = 32 << 20;

/// How long the last records of an auditd event wait for the rest of the event while their
/// file does not grow.
const SETTLE: Duration = Duration::from_millis(300);

/// Longest wait between two tries of a file that cannot be read.
const MAX_RETRY: Duration = Duration::from_secs(60);

struct Followed {
    name: Arc<str>,
    file: Option<File>,
    pos: FilePosition,
    format: Option<Format>,
    /// Found in a followed folder (not named): files of unknown content are left alone.
    in_folder: bool,
    /// Not a log to follow (binary, compressed, unknown content in a folder, a rotated copy).
    ignored: bool,
    /// Zeek header lines, put before each later chunk.
    header: Vec<u8>,
    idle: bool,
    /// Since when the file has been at its end.
    at_end: Option<Instant>,
    /// Bytes read since the file was last at its end.
    backlog: u64,
    /// While reading fails: the next try and the wait after it.
    retry: Option<(Instant, Duration)>,
    /// What the reader learnt of the records so far (kept across chunks and rotations).
    state: cellwarden_source::StreamState,
    /// While the last records of an auditd event wait for the rest: the file's end then, and
    /// since when.
    held: Option<(u64, Instant)>,
    /// Read to its end once: lines come as they are written.
    caught_up: bool,
}

/// Settings of the follower.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// Files, folders (every file under them, new ones too) or glob patterns.
    pub patterns: Vec<String>,
    /// Format of the files (default: told from their content).
    pub format: Option<Format>,
    /// Pause between rounds when nothing was read.
    pub poll: Duration,
    /// Size limits of records and lines.
    pub limits: Limits,
    /// How long a file at its end waits before it stops holding the watermark back (a file
    /// read ahead of another must not pass it by).
    pub idle_after: Duration,
}

/// A path given to follow that cannot be followed.
#[derive(Debug, thiserror::Error)]
#[error("--follow {path}: {reason}")]
pub struct FollowError {
    /// The path or pattern as given.
    pub path: String,
    /// Why it cannot be followed.
    pub reason: String,
}

#[derive(Debug, Clone)]
enum Pattern {
    /// A file, followed by name (it may be rotated, or appear later).
    File(String),
    /// Every file under the folder, new ones too.
    Folder(PathBuf),
    /// Files matching the glob, new ones too.
    Glob(String),
}

/// Followed files as a source of the watch loop.
pub struct Follower {
    config: FollowConfig,
    patterns: Vec<Pattern>,
    start: BTreeMap<String, FilePosition>,
    notes: Vec<String>,
}

impl Follower {
    /// Checks that every path can be followed: a readable file or folder, a file yet to
    /// appear in an existing folder, or a valid glob.
    pub fn new(
        config: FollowConfig,
        start: BTreeMap<String, FilePosition>,
    ) -> Result<Follower, FollowError> {
        let mut patterns = Vec::new();
        let mut notes = Vec::new();
        for p in &config.patterns {
            let bad = |reason: String| FollowError {
                path: p.clone(),
                reason,
            };
            if p.contains(['*', '?', '[']) {
                glob::Pattern::new(p).map_err(|e| bad(format!("not a valid glob: {e}")))?;
                if expand(&[Pattern::Glob(p.clone())]).is_empty() {
                    notes.push(format!(
                        "no file matches {p} yet; files are followed as they appear"
                    ));
                }
                patterns.push(Pattern::Glob(p.clone()));
                continue;
            }
            match std::fs::metadata(p) {
                Ok(m) if m.is_dir() => {
                    std::fs::read_dir(p).map_err(|e| bad(e.to_string()))?;
                    patterns.push(Pattern::Folder(PathBuf::from(p)));
                }
                Ok(m) if m.is_file() => {
                    File::open(p).map_err(|e| bad(e.to_string()))?;
                    patterns.push(Pattern::File(p.clone()));
                }
                Ok(_) => return Err(bad("not a regular file or a folder".into())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let parent = Path::new(p)
                        .parent()
                        .filter(|d| !d.as_os_str().is_empty())
                        .unwrap_or(Path::new("."));
                    if !parent.is_dir() {
                        return Err(bad("no such file or folder".into()));
                    }
                    notes.push(format!("{p} is not there yet; followed when it appears"));
                    patterns.push(Pattern::File(p.clone()));
                }
                Err(e) => return Err(bad(e.to_string())),
            }
        }
        Ok(Follower {
            config,
            patterns,
            start,
            notes,
        })
    }

    /// What is worth telling about the paths before following starts.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }
}

impl Source for Follower {
    fn run(self: Box<Self>, tx: crossbeam_channel::Sender<Input>, stop: Arc<AtomicBool>) {
        let Follower {
            config,
            patterns,
            start,
            ..
        } = *self;
        run(config, patterns, start, tx, stop)
    }
}

/// Follows the files until `stop` is set; units and position updates go to `tx`.
fn run(
    config: FollowConfig,
    patterns: Vec<Pattern>,
    start: BTreeMap<String, FilePosition>,
    tx: crossbeam_channel::Sender<Input>,
    stop: Arc<AtomicBool>,
) {
    let mut files: HashMap<String, Followed> = HashMap::new();
    let year = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .year();
    // Files found in the first round of a fresh start are all read; later, a file found beside
    // a followed one under its name plus a rotation suffix is that file's rotated copy, whose
    // lines were read already (after a restart too, unless the checkpoint knows it).
    let mut fresh = start.is_empty();
    while !stop.load(Ordering::Relaxed) {
        for (path, discovered) in expand(&patterns) {
            if files.contains_key(&path) {
                continue;
            }
            let copy_of = (!fresh && discovered && !start.contains_key(&path))
                .then(|| files.keys().find(|f| is_rotated_name(f, &path)).cloned())
                .flatten();
            if let Some(of) = &copy_of {
                let note = format!("{path}: a rotated copy of {of}; not read again");
                if tx.send(Input::Note(note)).is_err() {
                    return;
                }
            } else if tx.send(Input::Known(Arc::from(path.as_str()))).is_err() {
                return;
            }
            files.insert(
                path.clone(),
                Followed {
                    name: Arc::from(path.as_str()),
                    file: None,
                    pos: start.get(&path).cloned().unwrap_or_default(),
                    format: config.format,
                    in_folder: discovered && in_folder(&patterns, &path),
                    ignored: copy_of.is_some(),
                    header: Vec::new(),
                    idle: false,
                    at_end: None,
                    backlog: 0,
                    retry: None,
                    state: Default::default(),
                    held: None,
                    caught_up: false,
                },
            );
        }
        fresh = false;
        let mut any = false;
        let mut paths: Vec<&String> = files.keys().collect();
        paths.sort();
        let paths: Vec<String> = paths.into_iter().cloned().collect();
        for path in paths {
            let f = files.get_mut(&path).expect("listed");
            if f.ignored || f.retry.is_some_and(|(next, _)| Instant::now() < next) {
                continue;
            }
            let before = f.pos.offset;
            match step(f, &path, year, &config.limits, &tx) {
                Ok(true) => {
                    f.backlog += f.pos.offset.saturating_sub(before);
                    any = true;
                    f.idle = false;
                    f.at_end = None;
                    f.retry = None;
                }
                Ok(false) if f.held.is_some() => {
                    // Not at its end: the last records wait for the rest of their event.
                    f.retry = None;
                }
                Ok(false) => {
                    f.retry = None;
                    f.caught_up = true;
                    if f.ignored {
                        // Told once, idle from now on.
                        let _ = tx.send(Input::Idle(f.name.clone()));
                        continue;
                    }
                    // A backlog (more than one read) read to its end: the loop need not wait for
                    // input to pause before it judges the days closed meanwhile. Lines written as
                    // it follows do not say so: the loop's wait for a pause stays theirs.
                    if f.at_end.is_none() {
                        if f.backlog > READ_BYTES as u64
                            && tx.send(Input::ReadToEnd(f.name.clone())).is_err()
                        {
                            return;
                        }
                        f.backlog = 0;
                    }
                    let since = *f.at_end.get_or_insert_with(Instant::now);
                    if !f.idle && since.elapsed() >= config.idle_after {
                        f.idle = true;
                        if tx.send(Input::Idle(f.name.clone())).is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    // Told once; tried again with a growing wait, silently.
                    let wait = match f.retry {
                        None => {
                            let mut e = e;
                            e.message.push_str("; tried again until it can be read");
                            if tx.send(Input::Error(e)).is_err() {
                                return;
                            }
                            config.poll.max(Duration::from_millis(500))
                        }
                        Some((_, wait)) => (wait * 2).min(MAX_RETRY),
                    };
                    f.file = None;
                    f.retry = Some((Instant::now() + wait, wait));
                }
            }
        }
        if !any {
            std::thread::sleep(config.poll);
        }
    }
}

/// `other` is `followed` with a rotation suffix: `.1`, `-20261204`, `.old`, `.bak`.
fn is_rotated_name(followed: &str, other: &str) -> bool {
    let Some(rest) = other.strip_prefix(followed) else {
        return false;
    };
    let b = rest.as_bytes();
    (b.len() >= 2 && matches!(b[0], b'.' | b'-' | b'_') && b[1].is_ascii_digit())
        || matches!(rest, ".old" | ".bak")
}

/// Paths the patterns name now, sorted, each with whether it was found (in a folder or by a
/// glob) rather than named.
fn expand(patterns: &[Pattern]) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for p in patterns {
        match p {
            Pattern::Glob(g) => {
                if let Ok(paths) = glob::glob(g) {
                    for path in paths.flatten() {
                        if path.is_file()
                            && let Some(s) = path.to_str()
                        {
                            out.push((s.to_owned(), true));
                        }
                    }
                }
            }
            Pattern::File(f) => {
                if Path::new(f).exists() {
                    out.push((f.clone(), false));
                }
            }
            Pattern::Folder(d) => walk(d, &mut out),
        }
    }
    out.sort();
    out.dedup_by(|a, b| a.0 == b.0);
    out
}

/// `path` lies in one of the followed folders.
fn in_folder(patterns: &[Pattern], path: &str) -> bool {
    patterns
        .iter()
        .any(|p| matches!(p, Pattern::Folder(d) if Path::new(path).starts_with(d)))
}

/// Every regular file under `dir` (symbolic links to files too); unreadable sub-folders are
/// passed over.
fn walk(dir: &Path, out: &mut Vec<(String, bool)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            walk(&path, out);
        } else if path.is_file()
            && let Some(s) = path.to_str()
        {
            out.push((s.to_owned(), true));
        }
    }
}

/// One round for one path; true when lines were read.
fn step(
    f: &mut Followed,
    path: &str,
    year: i16,
    limits: &Limits,
    tx: &crossbeam_channel::Sender<Input>,
) -> Result<bool, SourceError> {
    let name = f.name.clone();
    let err = |kind, m: String| SourceError::new(&name, Position::File, kind, m);
    let on_disk = std::fs::metadata(path).ok();
    if f.file.is_none() {
        let Some(meta) = &on_disk else {
            return Ok(false);
        };
        let mut file = File::open(path).map_err(|e| err(ErrorKind::Io, e.to_string()))?;
        let same = f.pos.dev == meta.dev() && f.pos.ino == meta.ino();
        if !same && f.pos.ino != 0 {
            // The checkpointed file was rotated away while we were down: read its rest first.
            if let Some(old) = find_rotated(path, f.pos.dev, f.pos.ino) {
                let mut old = File::open(&old).map_err(|e| err(ErrorKind::Io, e.to_string()))?;
                old.seek(SeekFrom::Start(f.pos.offset))
                    .map_err(|e| err(ErrorKind::Io, e.to_string()))?;
                f.file = Some(old);
                load_header(f);
                warm_up(f, year, limits);
                return read_more(f, year, limits, tx, true);
            }
        }
        if !same {
            f.pos.dev = meta.dev();
            f.pos.ino = meta.ino();
            f.pos.offset = 0;
        }
        file.seek(SeekFrom::Start(f.pos.offset))
            .map_err(|e| err(ErrorKind::Io, e.to_string()))?;
        f.file = Some(file);
        load_header(f);
        warm_up(f, year, limits);
    }
    let rotated = on_disk
        .as_ref()
        .is_none_or(|m| m.dev() != f.pos.dev || m.ino() != f.pos.ino);
    if !rotated
        && let Some(m) = &on_disk
        && m.len() < f.pos.offset
    {
        // Truncated in place: start again from the top.
        f.pos.offset = 0;
        f.header.clear();
        f.state = Default::default();
        if let Some(file) = f.file.as_mut() {
            file.seek(SeekFrom::Start(0))
                .map_err(|e| err(ErrorKind::Io, e.to_string()))?;
        }
    }
    let read = read_more(f, year, limits, tx, rotated)?;
    if !read && rotated {
        // The old file is read to its end; the next round opens the new one from its start.
        f.file = None;
        f.header.clear();
        f.pos.dev = 0;
        f.pos.ino = 0;
        f.pos.offset = 0;
    }
    Ok(read)
}

/// The file beside `path` (rotated name) with this identity.
fn find_rotated(path: &str, dev: u64, ino: u64) -> Option<std::path::PathBuf> {
    let dir = Path::new(path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    std::fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        let m = e.metadata().ok()?;
        (m.dev() == dev && m.ino() == ino).then(|| e.path())
    })
}

/// Tells the format from the file's first bytes (also when resuming mid-file), and reads
/// the `#` lines of a Zeek log again, which name the columns of the rows after them.
fn load_header(f: &mut Followed) {
    if f.format.is_none()
        && f.pos.offset > 0
        && let Some(file) = f.file.as_mut()
        && let Ok(here) = file.stream_position()
    {
        let mut head = vec![0u8; (here as usize).min(64 * 1024)];
        if file.seek(SeekFrom::Start(0)).is_ok() && file.read_exact(&mut head).is_ok() {
            f.format = cellwarden_source::sniff(&head);
        }
        let _ = file.seek(SeekFrom::Start(here));
    }
    if f.format != Some(Format::ZeekTsv) || f.pos.offset == 0 {
        return;
    }
    let Some(file) = f.file.as_mut() else { return };
    let Ok(here) = file.stream_position() else {
        return;
    };
    let mut head = vec![0u8; (here as usize).min(64 * 1024)];
    if file.seek(SeekFrom::Start(0)).is_ok() && file.read_exact(&mut head).is_ok() {
        let mut end = 0;
        for line in head.split_inclusive(|b| *b == b'\n') {
            if !line.starts_with(b"#") || !line.ends_with(b"\n") {
                break;
            }
            end += line.len();
        }
        f.header = head[..end].to_vec();
    }
    let _ = file.seek(SeekFrom::Start(here));
}

/// A file opened past its start (a restart from a checkpoint): the reader learns again from
/// up to [`WARM_BYTES`] before the position what it knew, so records after it are read as
/// they would have been without the restart. Nothing read here is handed on.
fn warm_up(f: &mut Followed, year: i16, limits: &Limits) {
    struct Discard;
    impl cellwarden_source::UnitSink for Discard {
        fn unit(&mut self, _: cellwarden_source::Unit) {}
        fn error(&mut self, _: SourceError) {}
    }
    let Some(format) = f.format.filter(|k| k.keeps_stream_state()) else {
        return;
    };
    let Some(file) = f.file.as_mut() else { return };
    let Ok(here) = file.stream_position() else {
        return;
    };
    let from = here.saturating_sub(WARM_BYTES);
    let mut text = vec![0u8; (here - from) as usize];
    if file.seek(SeekFrom::Start(from)).is_err() || file.read_exact(&mut text).is_err() {
        let _ = file.seek(SeekFrom::Start(here));
        return;
    }
    let _ = file.seek(SeekFrom::Start(here));
    // Starting mid-file, the first (partial) line is left out.
    let start = match from {
        0 => 0,
        _ => memchr::memchr(b'\n', &text).map_or(text.len(), |i| i + 1),
    };
    let ctx = cellwarden_source::Context::of_year(year);
    cellwarden_source::read_chunk(
        &f.name,
        &text[start..],
        format,
        &ctx,
        0,
        limits,
        &mut f.state,
        &mut Discard,
    );
}

/// Leaves a file alone from now on, saying why once; false (nothing read).
fn ignore(f: &mut Followed, why: &str, tx: &crossbeam_channel::Sender<Input>) -> bool {
    f.ignored = true;
    f.file = None;
    let note = format!(
        "{}: {why}; not followed (`cellwarden hunt` reads it)",
        f.name
    );
    let _ = tx.send(Input::Note(note));
    false
}

/// Reads complete lines from the open file; `whole`: the file no longer grows (take a last
/// line without its line end too).
fn read_more(
    f: &mut Followed,
    year: i16,
    limits: &Limits,
    tx: &crossbeam_channel::Sender<Input>,
    whole: bool,
) -> Result<bool, SourceError> {
    let name = f.name.clone();
    let Some(file) = f.file.as_mut() else {
        return Ok(false);
    };
    let mut buf = vec![0u8; READ_BYTES];
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(SourceError::new(
                    &name,
                    Position::Offset(f.pos.offset + got as u64),
                    ErrorKind::Io,
                    e.to_string(),
                ));
            }
        }
    }
    buf.truncate(got);
    if f.format.is_none() && f.pos.offset == 0 {
        // Binary and compressed files are told by their first bytes, line ends or not.
        if buf.starts_with(&[0x1f, 0x8b]) {
            return Ok(ignore(f, "compressed (gzip)", tx));
        }
        if matches!(
            cellwarden_source::sniff(&buf),
            Some(Format::Evtx | Format::Capture)
        ) {
            return Ok(ignore(f, "a binary file (EVTX or capture)", tx));
        }
    }
    let end = match memchr::memrchr(b'\n', &buf) {
        Some(i) => i + 1,
        None if whole || got == READ_BYTES => got,
        None => 0,
    };
    // Give back what follows the last line end.
    if end < got {
        file.seek(SeekFrom::Current(-((got - end) as i64)))
            .map_err(|e| SourceError::new(&name, Position::File, ErrorKind::Io, e.to_string()))?;
    }
    if end == 0 {
        return Ok(false);
    }
    let mut chunk = &buf[..end];
    if f.format.is_none() {
        f.format = cellwarden_source::sniff(chunk);
        if f.format.is_none() && f.in_folder {
            return Ok(ignore(f, "not a log format cellwarden reads", tx));
        }
        if f.format.is_none() {
            f.format = Some(Format::Json);
        }
    }
    let format = f.format.unwrap_or(Format::Json);
    // A record or event that spans lines waits for its rest while its lines are still being
    // written, unless one fills the whole read. An XML audit record waits even while the file
    // does not grow (its writer buffers; the record closes). auditd writes an event's records
    // one by one and flushes every so many: once the file has been read to its end (a backlog
    // is read as `hunt` reads it), its last event waits for its end mark while the file grows,
    // or for [`SETTLE`] while it does not (a lone record has no end mark).
    let there = f.pos.offset + got as u64;
    let settled = whole
        || !f.caught_up
        || f.held
            .is_some_and(|(n, t)| n == there && t.elapsed() >= SETTLE);
    let keep = match format {
        Format::MySqlAuditXml | Format::OracleAuditXml => {
            Some(cellwarden_source::xmlrecord::complete_prefix(chunk))
        }
        Format::Auditd if !settled => Some(cellwarden_source::linux::audit_complete_prefix(chunk)),
        _ => None,
    };
    match keep.filter(|&k| k < chunk.len() && (k > 0 || got < READ_BYTES)) {
        Some(keep) => {
            // The file's end when an auditd event's wait began: it waits again whenever the
            // file grows.
            if format == Format::Auditd && f.held.is_none_or(|(n, _)| n != there) {
                f.held = Some((there, Instant::now()));
            }
            file.seek(SeekFrom::Current(-((chunk.len() - keep) as i64)))
                .map_err(|e| {
                    SourceError::new(&name, Position::File, ErrorKind::Io, e.to_string())
                })?;
            if keep == 0 {
                return Ok(false);
            }
            chunk = &chunk[..keep];
        }
        None => f.held = None,
    }
    let lines =
        memchr::memchr_iter(b'\n', chunk).count() as u64 + u64::from(!chunk.ends_with(b"\n"));
    let mut text = Vec::new();
    let mut base = f.pos.lines;
    if format == Format::ZeekTsv {
        if chunk.starts_with(b"#") {
            f.header.clear();
            for line in chunk.split_inclusive(|b| *b == b'\n') {
                if !line.starts_with(b"#") {
                    break;
                }
                f.header.extend_from_slice(line);
            }
        } else if !f.header.is_empty() {
            let header_lines = memchr::memchr_iter(b'\n', &f.header).count() as u64;
            text.extend_from_slice(&f.header);
            base = base.saturating_sub(header_lines);
        }
    }
    text.extend_from_slice(chunk);
    let mut sink = Collect::default();
    let ctx = cellwarden_source::Context::of_year(year);
    cellwarden_source::read_chunk(
        &name,
        &text,
        format,
        &ctx,
        base,
        limits,
        &mut f.state,
        &mut sink,
    );
    f.pos.offset += chunk.len() as u64;
    f.pos.lines += lines;
    let update = PositionUpdate::File {
        path: name.to_string(),
        position: f.pos.clone(),
    };
    if !sink.send(update, None, tx) {
        return Ok(false);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(patterns: &[&str]) -> FollowConfig {
        FollowConfig {
            patterns: patterns.iter().map(|p| p.to_string()).collect(),
            format: None,
            poll: Duration::from_millis(20),
            limits: Limits::default(),
            idle_after: Duration::from_millis(50),
        }
    }

    /// Runs a follower for `ms`, doing `during` halfway; returns what it sent.
    fn follow_for(patterns: &[&str], ms: u64, during: impl FnOnce()) -> Vec<Input> {
        let f = Follower::new(config(patterns), BTreeMap::new()).expect("followable");
        let (tx, rx) = crossbeam_channel::unbounded();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let t = std::thread::spawn(move || Box::new(f).run(tx, s));
        std::thread::sleep(Duration::from_millis(ms / 2));
        during();
        std::thread::sleep(Duration::from_millis(ms / 2));
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap();
        rx.try_iter().collect()
    }

    fn units_of(inputs: &[Input]) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for i in inputs {
            if let Input::Unit {
                unit:
                    crate::source::Work::Unit(cellwarden_source::Unit::Records {
                        file, records, ..
                    }),
                ..
            } = i
            {
                *out.entry(file.to_string()).or_default() += records.len();
            }
        }
        out
    }

    fn notes(inputs: &[Input]) -> Vec<String> {
        inputs
            .iter()
            .filter_map(|i| match i {
                Input::Note(n) => Some(n.clone()),
                Input::Error(e) => Some(e.to_string()),
                _ => None,
            })
            .collect()
    }

    /// `n` auditd records (one line each).
    fn lines(n: usize) -> String {
        (1..=n)
            .map(|i| format!("type=USER_LOGIN msg=audit(1772500000.000:{i}): pid=1 uid=0 auid=0 ses=1 msg='op=login acct=\"root\" exe=\"/usr/sbin/sshd\" hostname=? addr=10.0.0.9 terminal=ssh res=success'\n"))
            .collect()
    }

    #[test]
    fn paths_that_cannot_be_followed_are_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let missing = format!("{d}/no/such/folder/a.log");
        let e = Follower::new(config(&[&missing]), BTreeMap::new())
            .err()
            .expect("refused");
        assert!(e.to_string().contains("no such file or folder"), "{e}");
        let e = Follower::new(config(&[&format!("{d}/[a")]), BTreeMap::new())
            .err()
            .expect("refused");
        assert!(e.to_string().contains("not a valid glob"), "{e}");
        // A file yet to appear in an existing folder is followed, with a note.
        let later = format!("{d}/later.log");
        let f = Follower::new(config(&[&later]), BTreeMap::new()).unwrap();
        assert!(f.notes()[0].contains("not there yet"));
    }

    #[test]
    fn a_folder_is_followed_with_new_files_and_without_binaries_or_rotated_copies() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("logs");
        std::fs::create_dir_all(root.join("host-a")).unwrap();
        std::fs::write(root.join("host-a/audit.log"), lines(3)).unwrap();
        std::fs::write(root.join("old.log.gz"), [0x1f, 0x8b, 8, 0, 0, 0]).unwrap();
        std::fs::write(root.join("notes.txt"), "nothing to see\n").unwrap();
        let r = root.clone();
        // (A last auditd record waits `SETTLE` for the rest of its event.)
        let got = follow_for(&[root.to_str().unwrap()], 1200, move || {
            std::fs::write(r.join("host-a/new.log"), lines(2)).unwrap();
            // Rotation by copy beside a followed file must not be read again.
            std::fs::write(r.join("host-a/audit.log.1"), lines(3)).unwrap();
        });
        let units = units_of(&got);
        let name = |f: &str| root.join(f).to_str().unwrap().to_owned();
        assert_eq!(units.get(&name("host-a/audit.log")), Some(&3), "{units:?}");
        assert_eq!(units.get(&name("host-a/new.log")), Some(&2), "{units:?}");
        assert_eq!(units.len(), 2, "{units:?}");
        let n = notes(&got);
        assert!(
            n.iter().any(|m| m.contains("old.log.gz: compressed")),
            "{n:?}"
        );
        assert!(
            n.iter().any(|m| m.contains("notes.txt: not a log")),
            "{n:?}"
        );
        assert!(
            n.iter().any(|m| m.contains("audit.log.1: a rotated copy")),
            "{n:?}"
        );
        assert_eq!(n.len(), 3, "each told once: {n:?}");
    }

    /// A backlog read to its end is told once, after its units (the loop then judges the days
    /// closed meanwhile at once); lines appended as the file is followed are not.
    #[test]
    fn a_backlog_read_to_its_end_says_so_once_after_its_units() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let backlog = READ_BYTES / 120;
        let text = lines(backlog);
        assert!(text.len() > READ_BYTES);
        std::fs::write(&path, text).unwrap();
        let p = path.clone();
        // Appended after the backlog's last record has waited `SETTLE` and been read.
        let got = follow_for(&[path.to_str().unwrap()], 1600, move || {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
            f.write_all(lines(2).as_bytes()).unwrap();
        });
        let name = path.to_str().unwrap();
        // Records before the end, the end, records after it.
        let (mut before, mut after, mut ends) = (0, 0, 0);
        for i in &got {
            match i {
                Input::Unit {
                    unit:
                        crate::source::Work::Unit(cellwarden_source::Unit::Records { records, .. }),
                    ..
                } => {
                    if ends == 0 {
                        before += records.len();
                    } else {
                        after += records.len();
                    }
                }
                Input::ReadToEnd(n) => {
                    assert_eq!(&**n, name);
                    ends += 1;
                }
                _ => {}
            }
        }
        assert_eq!((before, ends, after), (backlog, 1, 2));
    }

    /// A buffering audit plugin writes part of an XML record, and the rest later: the record
    /// is read once, whole, when it closes.
    #[test]
    fn an_xml_audit_record_written_in_two_parts_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let record = |n: u32| {
            format!(
                "<AUDIT_RECORD\n  NAME=\"Query\"\n  RECORD=\"{n}_2026-03-04T09:00:00\"\n  TIMESTAMP=\"2026-03-04T10:00:0{n} UTC\"\n  CONNECTION_ID=\"7\"\n  SQLTEXT=\"SELECT {n}\"\n  USER=\"app[app] @ crm01 [10.2.3.4]\"\n/>\n"
            )
        };
        let second = record(2);
        let (head, tail) = second.split_at(40);
        let start = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<AUDIT>\n{}{head}",
            record(1)
        );
        std::fs::write(&path, start).unwrap();
        let p = path.clone();
        let tail = tail.to_owned();
        let got = follow_for(&[path.to_str().unwrap()], 800, move || {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
            f.write_all(tail.as_bytes()).unwrap();
        });
        assert_eq!(notes(&got), Vec::<String>::new());
        assert_eq!(units_of(&got).values().sum::<usize>(), 2);
    }

    /// Each event of the units handed on, as `show` tells it.
    fn decoded(
        inputs: Vec<Input>,
        show: impl Fn(&cellwarden_event::Event<'_>) -> String,
    ) -> Vec<String> {
        let mapping = cellwarden_source::Mapping::builtin();
        let settings = cellwarden_source::evtx_settings();
        let mut out = Vec::new();
        for i in inputs {
            if let Input::Unit {
                unit: crate::source::Work::Unit(u),
                ..
            } = i
            {
                u.decode(&mapping, &settings, &mut Vec::new(), &mut |e| {
                    out.push(show(&e))
                });
            }
        }
        out
    }

    /// The process chain of each auditd event handed on.
    fn chains_of(inputs: Vec<Input>) -> Vec<String> {
        decoded(inputs, |e| {
            let chain = e.get_str("ProcessChain").unwrap_or_default();
            let package = e.get_str("PackageManager").unwrap_or_default();
            format!("{chain} ({package})")
        })
    }

    /// An auditd event: `pid` (child of `ppid`) runs `exe`.
    fn exec(serial: u32, pid: u32, ppid: u32, exe: &str) -> String {
        format!(
            "type=SYSCALL msg=audit(1772500000.{serial:03}:{serial}): arch=c000003e syscall=59 success=yes exit=0 ppid={ppid} pid={pid} auid=0 uid=0 comm=\"x\" exe=\"{exe}\"\ntype=EOE msg=audit(1772500000.{serial:03}:{serial}): \n"
        )
    }

    #[test]
    fn records_written_one_by_one_or_after_a_restart_keep_their_lineage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let events = [
            exec(1, 500, 1, "/usr/bin/apt-get"),
            exec(2, 501, 500, "/usr/bin/dpkg"),
            exec(3, 502, 501, "/usr/bin/cp"),
        ];
        let want = "apt-get \u{2192} dpkg \u{2192} cp (dpkg)";
        // Written one event at a time as the file is followed: each is its own chunk.
        std::fs::write(&path, &events[0]).unwrap();
        let (p, rest) = (path.clone(), events[1..].to_vec());
        let got = follow_for(&[path.to_str().unwrap()], 1200, move || {
            use std::io::Write;
            for e in rest {
                let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
                f.write_all(e.as_bytes()).unwrap();
                drop(f);
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        let chains = chains_of(got);
        assert_eq!(chains.len(), 3, "{chains:?}");
        assert_eq!(chains[2], want);
        // Resumed from a checkpoint after the second event: only the third is handed on,
        // with what the first two said.
        let meta = std::fs::metadata(&path).unwrap();
        let at = FilePosition {
            dev: meta.dev(),
            ino: meta.ino(),
            offset: (events[0].len() + events[1].len()) as u64,
            lines: 4,
        };
        let start = BTreeMap::from([(path.to_str().unwrap().to_owned(), at)]);
        let f = Follower::new(config(&[path.to_str().unwrap()]), start).expect("followable");
        let (tx, rx) = crossbeam_channel::unbounded();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let t = std::thread::spawn(move || Box::new(f).run(tx, s));
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap();
        let got: Vec<Input> = rx.try_iter().collect();
        assert_eq!(chains_of(got), vec![want.to_owned()]);
    }

    #[test]
    fn an_auditd_event_written_in_two_flushes_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let syscall = "type=SYSCALL msg=audit(1772500000.001:9): arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=600 auid=0 uid=0 comm=\"id\" exe=\"/usr/bin/id\"\n";
        let rest = "type=EXECVE msg=audit(1772500000.001:9): argc=2 a0=\"id\" a1=\"-u\"\ntype=EOE msg=audit(1772500000.001:9): \n";
        // A lone record (no end mark) last: read once the file has stood still.
        let login = "type=USER_LOGIN msg=audit(1772500001.000:10): pid=1 uid=0 auid=0 ses=1 msg='op=login acct=\"root\" exe=\"/usr/sbin/sshd\" hostname=? addr=10.0.0.9 terminal=ssh res=success'\n";
        std::fs::write(&path, "").unwrap();
        let (p, rest) = (path.clone(), format!("{rest}{login}"));
        let got = follow_for(&[path.to_str().unwrap()], 1500, move || {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
            f.write_all(syscall.as_bytes()).unwrap();
            f.flush().unwrap();
            // The next flush comes within SETTLE.
            std::thread::sleep(Duration::from_millis(100));
            f.write_all(rest.as_bytes()).unwrap();
        });
        let events = decoded(got, |e| {
            let get = |k: &str| e.get_str(k).unwrap_or_default().into_owned();
            format!(
                "{} {} [{}]",
                e.origin.record,
                get("Image"),
                get("CommandLine")
            )
        });
        assert_eq!(events, ["1 /usr/bin/id [id -u]", "4  []"]);
    }

    #[test]
    fn a_file_that_cannot_be_read_is_reported_once_and_retried() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, lines(1)).unwrap();
        let p = path.clone();
        // Replaced by a folder of the same name: opening works, reading fails every time.
        let got = follow_for(&[path.to_str().unwrap()], 1500, move || {
            std::fs::remove_file(&p).unwrap();
            std::fs::create_dir(&p).unwrap();
        });
        let errors: Vec<String> = got
            .iter()
            .filter_map(|i| match i {
                Input::Error(e) => Some(e.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("tried again"), "{errors:?}");
        assert_eq!(units_of(&got).values().sum::<usize>(), 1);
    }
}
