//! Where alerts go: the alert file (JSON Lines, appended, rotated, synced at checkpoints),
//! and the [`AlertSink`] and [`RecordSink`] traits of the other outputs (the case store, Kafka
//! topics).

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cellwarden_event::Alert;

use crate::checkpoint::UnitCopy;

/// Receives alerts as they are written (the case store, a Kafka topic).
pub trait AlertSink {
    /// Takes new alerts; `durable` is called before a checkpoint and must make them safe.
    fn write(&mut self, alerts: &[Alert]) -> io::Result<()>;
    /// Makes everything written so far safe (called before a checkpoint).
    fn durable(&mut self) -> io::Result<()>;
    /// What the logs have said about host and account names so far (called before
    /// `durable`), for sinks that join alerts into incidents and campaigns.
    fn names(&mut self, _aliases: &cellwarden_incident::Aliases) {}
}

/// Receives the records that feed stateful analytics (the first stage hands them on).
pub trait RecordSink {
    /// Takes the records of `unit` named in `lines`; `latest` is the event time (ms) its
    /// source has reached, told to the partitions that got none of its records.
    fn records(
        &mut self,
        unit: &UnitCopy,
        lines: &[crate::engine::Handed],
        latest: Option<i64>,
    ) -> io::Result<()>;
    /// Says that `source` is read from now on (it holds the state stage's watermark back
    /// until it delivers or is idle).
    fn known(&mut self, _source: &str) -> io::Result<()> {
        Ok(())
    }
    /// Says that `source` was read to its end and stayed there for `--idle-secs` (it stops
    /// holding the state stage's watermark back until its next record).
    fn idle(&mut self, _source: &str) -> io::Result<()> {
        Ok(())
    }
    /// Makes everything handed on so far safe (called before a checkpoint).
    fn durable(&mut self) -> io::Result<()>;
}

/// Where alerts and handed-on records go besides standard output and the alert file.
#[derive(Default)]
pub struct Sinks<'s> {
    /// Sinks that get every alert written.
    pub alerts: Vec<&'s mut dyn AlertSink>,
    /// The sink of handed-on records (the parse stage).
    pub forward: Option<&'s mut dyn RecordSink>,
}

/// The identity of an alert as written: rule, source, record, time.
fn written_id(rule: &str, file: &str, record: u64, time: &str) -> String {
    format!("{rule}\u{1}{file}\u{1}{record}\u{1}{time}")
}

/// The identity of an alert as written, to recognise alerts written before a restart.
pub fn alert_id(a: &Alert) -> String {
    written_id(
        &a.rule.id,
        &a.event.origin.file,
        a.event.origin.record,
        &a.event.timestamp_rfc3339(),
    )
}

/// Ids of the alerts in `path` after byte `from` (written after the last checkpoint).
pub fn written_after(path: &Path, from: u64) -> io::Result<HashSet<String>> {
    let mut out = HashSet::new();
    let Ok(mut f) = File::open(path) else {
        return Ok(out);
    };
    if f.metadata()?.len() <= from {
        return Ok(out);
    }
    f.seek(io::SeekFrom::Start(from))?;
    for line in BufReader::new(f).split(b'\n') {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&line?) else {
            continue;
        };
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or_default();
        out.insert(written_id(
            s("rule_id"),
            s("source_file"),
            v.get("source_record").and_then(|x| x.as_u64()).unwrap_or(0),
            s("timestamp"),
        ));
    }
    Ok(out)
}

/// The alert file: JSON Lines, appended.
pub struct FileSink {
    path: PathBuf,
    out: BufWriter<File>,
    /// Bytes in the file.
    pub len: u64,
    /// A regular file (not a device or pipe): synced and rotated.
    pub regular: bool,
}

impl FileSink {
    /// Opens (or creates) the file for appending.
    pub fn open(path: &Path) -> io::Result<FileSink> {
        let f = OpenOptions::new().create(true).append(true).open(path)?;
        let meta = f.metadata()?;
        Ok(FileSink {
            path: path.to_owned(),
            out: BufWriter::new(f),
            len: meta.len(),
            regular: meta.is_file(),
        })
    }

    /// Appends alerts as JSON Lines.
    pub fn write(&mut self, alerts: &[Alert]) -> io::Result<()> {
        let mut buf = Vec::new();
        cellwarden_report::write_jsonl(&mut buf, alerts)?;
        self.out.write_all(&buf)?;
        self.len += buf.len() as u64;
        Ok(())
    }

    /// Flushes and, for a regular file, syncs to disk.
    pub fn sync(&mut self) -> io::Result<()> {
        self.out.flush()?;
        // A device or pipe (`-o /dev/stdout`) has nothing to sync.
        if self.regular {
            self.out.get_ref().sync_data()?;
        }
        Ok(())
    }

    /// Moves the file to `.1` (older ones up to `.keep`) and starts a new one.
    pub fn rotate(&mut self, keep: usize) -> io::Result<()> {
        self.sync()?;
        let name = |i: usize| PathBuf::from(format!("{}.{i}", self.path.display()));
        for i in (1..keep.max(1)).rev() {
            let from = name(i);
            if from.exists() {
                std::fs::rename(&from, name(i + 1))?;
            }
        }
        std::fs::rename(&self.path, name(1))?;
        *self = FileSink::open(&self.path)?;
        Ok(())
    }
}

/// Retries a failed write with backoff (up to 30 s between tries) until it works or the
/// process is asked to stop; true when it worked.
pub fn write_retrying(
    mut f: impl FnMut() -> io::Result<()>,
    faults: &mut u64,
    log: &mut dyn FnMut(&str),
    stop: &AtomicBool,
) -> bool {
    let mut wait = Duration::from_millis(100);
    loop {
        match f() {
            Ok(()) => return true,
            Err(e) => {
                *faults += 1;
                log(&format!("write failed: {e}; retrying in {wait:?}"));
                if stop.load(Ordering::Relaxed) {
                    return false;
                }
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Where alerts are written: standard output, the alert file, the other sinks.
pub struct Outputs<'o, 's> {
    /// Write to standard output.
    pub stdout: bool,
    /// The alert file.
    pub file: Option<&'o mut FileSink>,
    /// The other sinks (case store, Kafka topic).
    pub extra: &'o mut [&'s mut dyn AlertSink],
    /// Ids of alerts the alert file got after the last checkpoint, before a restart: not
    /// written to it again (each id once). The other outputs get them again: the store and
    /// the Kafka topic keep one copy per key, and they may not have made them durable.
    pub in_file: Option<&'o mut HashSet<String>>,
}

/// Writes alerts to every output, retrying failed writes (see [`write_retrying`]).
/// Returns how many the alert file left out as already written ([`Outputs::in_file`]).
pub fn write_alerts(
    alerts: &[Alert],
    out: Outputs<'_, '_>,
    faults: &mut u64,
    log: &mut dyn FnMut(&str),
    stop: &AtomicBool,
) -> usize {
    if out.stdout {
        let stdout = io::stdout();
        let mut lock = stdout.lock();
        let _ = cellwarden_report::write_jsonl(&mut lock, alerts);
        let _ = lock.flush();
    }
    let mut left_out = 0;
    if let Some(f) = out.file {
        match out.in_file.filter(|ids| !ids.is_empty()) {
            Some(ids) => {
                let fresh: Vec<Alert> = alerts
                    .iter()
                    .filter(|a| !ids.remove(&alert_id(a)))
                    .cloned()
                    .collect();
                left_out = alerts.len() - fresh.len();
                if !fresh.is_empty() {
                    write_retrying(|| f.write(&fresh), faults, log, stop);
                }
            }
            None => {
                write_retrying(|| f.write(alerts), faults, log, stop);
            }
        }
    }
    for s in out.extra.iter_mut() {
        write_retrying(|| s.write(alerts), faults, log, stop);
    }
    left_out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_file_on_a_device_needs_no_sync() {
        let mut sink = FileSink::open(Path::new("/dev/null")).unwrap();
        assert!(!sink.regular);
        sink.write(&[]).unwrap();
        sink.sync().unwrap();
    }

    #[test]
    fn alerts_written_after_a_checkpoint_are_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        std::fs::write(
            &path,
            "{\"rule_id\":\"a\",\"source_file\":\"f\",\"source_record\":1,\"timestamp\":\"t1\"}\n\
             {\"rule_id\":\"b\",\"source_file\":\"f\",\"source_record\":2,\"timestamp\":\"t2\"}\n",
        )
        .unwrap();
        let first = std::fs::read_to_string(&path).unwrap().find('\n').unwrap() as u64 + 1;
        let ids = written_after(&path, first).unwrap();
        assert_eq!(ids.len(), 1);
        assert!(ids.contains(&written_id("b", "f", 2, "t2")));
        assert!(written_after(&path, 10_000).unwrap().is_empty());
    }

    /// A sink that keeps what it gets.
    #[derive(Default)]
    struct Kept(Vec<String>);

    impl AlertSink for Kept {
        fn write(&mut self, alerts: &[Alert]) -> io::Result<()> {
            self.0.extend(alerts.iter().map(alert_id));
            Ok(())
        }
        fn durable(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn alert(record: u64) -> Alert {
        let mut e = cellwarden_event::Event::new(cellwarden_event::Origin {
            file: std::sync::Arc::from("/logs/a.jsonl"),
            record,
        });
        e.timestamp = cellwarden_event::parse_timestamp("2026-03-04T01:00:00Z");
        Alert {
            rule: std::sync::Arc::new(cellwarden_event::RuleInfo::builtin(
                "r",
                "R",
                "",
                &[],
                "test",
            )),
            level: cellwarden_event::Level::High,
            event: e,
            correlation: None,
        }
    }

    /// After a restart the alert file leaves out what it got after the checkpoint; the other
    /// sinks, which may not have made those durable before the crash, get them again (a store
    /// that lost them would build its campaigns without them).
    #[test]
    fn only_the_alert_file_leaves_out_what_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        let mut file = FileSink::open(&path).unwrap();
        file.write(&[alert(1)]).unwrap();
        file.sync().unwrap();
        let mut held = written_after(&path, 0).unwrap();
        assert_eq!(held.len(), 1);
        let mut kept = Kept::default();
        let alerts = [alert(1), alert(2)];
        let out = Outputs {
            stdout: false,
            file: Some(&mut file),
            extra: &mut [&mut kept],
            in_file: Some(&mut held),
        };
        let stop = AtomicBool::new(false);
        let left_out = write_alerts(&alerts, out, &mut 0, &mut |_| {}, &stop);
        file.sync().unwrap();
        assert_eq!(left_out, 1);
        assert!(held.is_empty());
        assert_eq!(kept.0, vec![alert_id(&alert(1)), alert_id(&alert(2))]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert_eq!(written_after(&path, 0).unwrap().len(), 2);
    }
}
