//! Following growing files like `tail -F`: new files matching a glob, rotation by rename
//! (the old file is read to its end, then the new one from its start) and by truncation
//! (read again from the start). Only complete lines are read; a line still being written waits.
//! Line numbers go on across rotations, so `path:line` names an event once.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cellwarden_source::{ErrorKind, Format, Limits, Position, SourceError};
use serde::{Deserialize, Serialize};

use crate::watch::{Collect, Input, PositionUpdate};

/// Where reading of one followed path stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePosition {
    pub dev: u64,
    pub ino: u64,
    /// Bytes of the current file read (up to a line end).
    pub offset: u64,
    /// Lines read from this path, across rotations.
    pub lines: u64,
}

/// Most bytes read from one file per round (the rest is read in the next rounds).
const READ_BYTES: usize = 4 << 20;

struct Followed {
    name: Arc<str>,
    file: Option<File>,
    pos: FilePosition,
    format: Option<Format>,
    /// Zeek header lines, put before each later chunk.
    header: Vec<u8>,
    idle: bool,
    /// Since when the file has been at its end.
    at_end: Option<std::time::Instant>,
}

/// Settings of the follower.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// Paths or glob patterns.
    pub patterns: Vec<String>,
    pub format: Option<Format>,
    pub poll: Duration,
    pub limits: Limits,
    /// How long a file at its end waits before it stops holding the watermark back (a file
    /// read ahead of another must not pass it by).
    pub idle_after: Duration,
}

/// Follows the files until `stop` is set; units and position updates go to `tx`.
pub fn run(
    config: FollowConfig,
    start: BTreeMap<String, FilePosition>,
    tx: crossbeam_channel::Sender<Input>,
    stop: Arc<AtomicBool>,
) {
    let mut files: HashMap<String, Followed> = HashMap::new();
    let year = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .year();
    while !stop.load(Ordering::Relaxed) {
        for path in expand(&config.patterns) {
            if !files.contains_key(&path)
                && tx.send(Input::Known(Arc::from(path.as_str()))).is_err()
            {
                return;
            }
            files.entry(path.clone()).or_insert_with(|| Followed {
                name: Arc::from(path.as_str()),
                file: None,
                pos: start.get(&path).cloned().unwrap_or_default(),
                format: config.format,
                header: Vec::new(),
                idle: false,
                at_end: None,
            });
        }
        let mut any = false;
        let mut paths: Vec<&String> = files.keys().collect();
        paths.sort();
        let paths: Vec<String> = paths.into_iter().cloned().collect();
        for path in paths {
            let f = files.get_mut(&path).expect("listed");
            match step(f, &path, year, &config.limits, &tx) {
                Ok(true) => {
                    any = true;
                    f.idle = false;
                    f.at_end = None;
                }
                Ok(false) => {
                    let since = *f.at_end.get_or_insert_with(std::time::Instant::now);
                    if !f.idle && since.elapsed() >= config.idle_after {
                        f.idle = true;
                        if tx.send(Input::Idle(f.name.clone())).is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.send(Input::Error(e));
                }
            }
        }
        if !any {
            std::thread::sleep(config.poll);
        }
    }
}

/// Paths the patterns name now, sorted.
fn expand(patterns: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for p in patterns {
        if p.contains(['*', '?', '[']) {
            if let Ok(paths) = glob::glob(p) {
                for path in paths.flatten() {
                    if path.is_file()
                        && let Some(s) = path.to_str()
                    {
                        out.push(s.to_owned());
                    }
                }
            }
        } else if Path::new(p).exists() {
            out.push(p.clone());
        }
    }
    out.sort();
    out.dedup();
    out
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
    let chunk = &buf[..end];
    if f.format.is_none() {
        f.format = cellwarden_source::sniff(chunk);
        if f.format.is_none() {
            f.format = Some(Format::Json);
        }
    }
    let format = f.format.unwrap_or(Format::Json);
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
    cellwarden_source::read_chunk(&name, &text, format, year, base, limits, &mut sink);
    f.pos.offset += end as u64;
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
