//! The watch loop: sources → live engine → sinks, with checkpoints.
//!
//! One thread runs the engine, so events are handled in the order they arrive and results
//! do not depend on thread timing. Alerts are written to the sinks as they come; at every
//! checkpoint the sinks are flushed and synced first, then the journal, then the checkpoint
//! file. After a crash the journal is replayed up to the checkpoint (alerts it raises were
//! written before), the sources are read again from the checkpointed positions, and alerts
//! already in the alert file after the checkpoint are not written again.

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cellwarden_event::Alert;
use cellwarden_pipeline::Detectors;
use cellwarden_source::{Format, Limits, Mapping, SourceError, Unit};

use crate::checkpoint::{Checkpoint, Journal, Replayed, UnitCopy};
use crate::engine::{Engine, LiveConfig};
use crate::follow::FilePosition;
use crate::metrics::Metrics;
use cellwarden_pipeline::Stage;

/// What sources send to the loop.
pub enum Input {
    /// A unit to decode; `position` is where the source stands once it is handled.
    Unit {
        unit: Unit,
        position: Option<PositionUpdate>,
        /// The source whose progress the events show, when not their file (forwarded records).
        clock: Option<Arc<str>>,
    },
    Position(PositionUpdate),
    /// A source that will deliver (the watermark waits for it).
    Known(Arc<str>),
    /// The source has caught up.
    Idle(Arc<str>),
    Error(SourceError),
}

#[derive(Debug, Clone)]
pub enum PositionUpdate {
    File {
        path: String,
        position: FilePosition,
    },
    Counter {
        name: String,
        count: u64,
    },
    /// Next offset of `topic/partition`; with a forwarded record, its source and number.
    Kafka {
        partition: String,
        next: i64,
        forwarded: Option<(String, u64)>,
    },
}

/// What reading one piece of input produced, on its way to the loop.
#[derive(Default)]
pub(crate) struct Collect {
    pub units: Vec<Unit>,
    pub errors: Vec<SourceError>,
}

impl cellwarden_source::UnitSink for Collect {
    fn unit(&mut self, unit: Unit) {
        self.units.push(unit);
    }
    fn error(&mut self, error: SourceError) {
        self.errors.push(error);
    }
}

impl Collect {
    /// Sends the errors, then the units with `update` on the last one (alone when there is
    /// none, so the position still moves); false when the loop is gone.
    pub(crate) fn send(
        self,
        update: PositionUpdate,
        clock: Option<Arc<str>>,
        tx: &crossbeam_channel::Sender<Input>,
    ) -> bool {
        for e in self.errors {
            if tx.send(Input::Error(e)).is_err() {
                return false;
            }
        }
        let n = self.units.len();
        if n == 0 {
            return tx.send(Input::Position(update)).is_ok();
        }
        for (i, unit) in self.units.into_iter().enumerate() {
            let position = (i + 1 == n).then(|| update.clone());
            let clock = clock.clone();
            if tx
                .send(Input::Unit {
                    unit,
                    position,
                    clock,
                })
                .is_err()
            {
                return false;
            }
        }
        true
    }
}

/// Where Kafka input comes from.
#[derive(Debug, Clone)]
pub struct KafkaInput {
    pub config: crate::kafka::KafkaConfig,
    pub topics: Vec<String>,
    pub group: String,
    /// How long a partition at its end waits before it stops holding the watermark back.
    pub idle_after: Duration,
}

/// Settings of one `watch` process.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// Paths or globs to follow.
    pub follow: Vec<String>,
    pub format: Option<Format>,
    pub syslog_udp: Option<String>,
    pub syslog_tcp: Option<String>,
    /// Checkpoint folder; without it nothing survives a restart.
    pub state: Option<PathBuf>,
    /// Alert file (JSONL, appended).
    pub output: Option<PathBuf>,
    /// Rotate the alert file past this size, keeping `keep_rotated` old ones.
    pub rotate_bytes: Option<u64>,
    pub keep_rotated: usize,
    /// Write alerts to standard output too.
    pub stdout: bool,
    pub metrics: Option<String>,
    pub checkpoint_every: Duration,
    pub poll: Duration,
    pub live: LiveConfig,
    pub limits: Limits,
    pub kafka: Option<KafkaInput>,
    pub stage: Stage,
    /// How long a followed file at its end waits before it stops holding the watermark back.
    pub idle_after: Duration,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            follow: Vec::new(),
            format: None,
            syslog_udp: None,
            syslog_tcp: None,
            state: None,
            output: None,
            rotate_bytes: None,
            keep_rotated: 5,
            stdout: true,
            metrics: None,
            checkpoint_every: Duration::from_secs(5),
            poll: Duration::from_millis(200),
            live: LiveConfig::default(),
            limits: Limits::default(),
            kafka: None,
            stage: Stage::All,
            idle_after: Duration::from_secs(10),
        }
    }
}

/// The detectors' setup, shared with `hunt`.
pub struct Setup<'a> {
    pub detectors: Detectors<'a>,
    pub mapping: &'a Mapping,
}

/// Receives alerts as they are written (the case store, a Kafka topic).
pub trait AlertSink {
    /// Takes new alerts; `durable` is called before a checkpoint and must make them safe.
    fn write(&mut self, alerts: &[Alert]) -> io::Result<()>;
    fn durable(&mut self) -> io::Result<()>;
}

/// Receives the records that feed stateful analytics (the first stage hands them on).
pub trait RecordSink {
    fn records(&mut self, unit: &UnitCopy, lines: &[(u64, i64)]) -> io::Result<()>;
    fn durable(&mut self) -> io::Result<()>;
}

/// Where alerts and handed-on records go besides standard output and the alert file.
#[derive(Default)]
pub struct Sinks<'s> {
    pub alerts: Vec<&'s mut dyn AlertSink>,
    pub forward: Option<&'s mut dyn RecordSink>,
}

/// What a run did.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub events: u64,
    pub alerts: u64,
    pub errors: u64,
    pub replayed: u64,
    pub suppressed: u64,
    pub checkpoints: u64,
}

/// The identity of an alert as written: rule, source, record, time.
fn written_id(rule: &str, file: &str, record: u64, time: &str) -> String {
    format!("{rule}\u{1}{file}\u{1}{record}\u{1}{time}")
}

fn alert_id(a: &Alert) -> String {
    written_id(
        &a.rule.id,
        &a.event.origin.file,
        a.event.origin.record,
        &a.event.timestamp_rfc3339(),
    )
}

/// Ids of the alerts in `path` after byte `from` (written after the last checkpoint).
fn written_after(path: &Path, from: u64) -> io::Result<HashSet<String>> {
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

struct FileSink {
    path: PathBuf,
    out: BufWriter<File>,
    len: u64,
    regular: bool,
}

impl FileSink {
    fn open(path: &Path) -> io::Result<FileSink> {
        let f = OpenOptions::new().create(true).append(true).open(path)?;
        let meta = f.metadata()?;
        Ok(FileSink {
            path: path.to_owned(),
            out: BufWriter::new(f),
            len: meta.len(),
            regular: meta.is_file(),
        })
    }

    fn write(&mut self, alerts: &[Alert]) -> io::Result<()> {
        let mut buf = Vec::new();
        cellwarden_report::write_jsonl(&mut buf, alerts)?;
        self.out.write_all(&buf)?;
        self.len += buf.len() as u64;
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.out.flush()?;
        // A device or pipe (`-o /dev/stdout`) has nothing to sync.
        if self.regular {
            self.out.get_ref().sync_data()?;
        }
        Ok(())
    }

    /// Moves the file to `.1` (older ones up to `.keep`) and starts a new one.
    fn rotate(&mut self, keep: usize) -> io::Result<()> {
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

/// Runs until `stop` is set. `extra` sinks get every alert written.
pub fn run(
    setup: Setup<'_>,
    config: &WatchConfig,
    sinks: Sinks<'_>,
    stop: Arc<AtomicBool>,
    log: &mut dyn FnMut(&str),
) -> Result<Summary, String> {
    let mut summary = Summary::default();
    let Sinks {
        alerts: mut extra,
        mut forward,
    } = sinks;
    if config.stage == Stage::Parse && forward.is_none() {
        return Err("the parse stage needs a topic to hand records on to".into());
    }
    let mut engine = Engine::new(
        setup.detectors,
        setup.mapping,
        config.live.clone(),
        config.stage,
    );
    let state = config.state.as_deref();
    let mut checkpoint = Checkpoint {
        version: 1,
        ..Default::default()
    };
    let mut journal = None;
    if let Some(dir) = state {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if let Some(c) = Checkpoint::load(dir)
            .map_err(|e| format!("{}: checkpoint unreadable: {e}", dir.display()))?
        {
            checkpoint = c;
        }
        let mut discard = Vec::new();
        let mut errors = Vec::new();
        let mut lines = Vec::new();
        let j = Journal::open(dir, checkpoint.journal_len)
            .map_err(|e| format!("{}: journal: {e}", dir.display()))?;
        summary.replayed = Journal::replay(dir, &mut |r| match r {
            Replayed::Unit(u) => {
                engine.process(u, None, &mut discard, &mut errors, &mut lines);
                discard.clear();
                lines.clear();
            }
            Replayed::Watermark(w) => {
                engine.advance_to(w, &mut discard);
                discard.clear();
            }
        })
        .map_err(|e| format!("{}: journal: {e}", dir.display()))?;
        engine.restore_clocks(&checkpoint.clocks);
        engine.counters = Default::default();
        if summary.replayed > 0 {
            log(&format!(
                "state restored: {} journaled records replayed",
                summary.replayed
            ));
        }
        journal = Some(j);
    }
    let mut file = match &config.output {
        Some(p) => Some(FileSink::open(p).map_err(|e| format!("{}: {e}", p.display()))?),
        None => None,
    };
    let mut already: HashSet<String> = match (&config.output, checkpoint.output_len) {
        (Some(p), Some(len)) => {
            written_after(p, len).map_err(|e| format!("{}: {e}", p.display()))?
        }
        _ => HashSet::new(),
    };

    let (tx, rx) = crossbeam_channel::bounded::<Input>(64);
    let source_stop = Arc::new(AtomicBool::new(false));
    let metrics = Arc::new(Mutex::new(Metrics::default()));
    let mut threads = Vec::new();
    if !config.follow.is_empty() {
        let fc = crate::follow::FollowConfig {
            patterns: config.follow.clone(),
            format: config.format,
            poll: config.poll,
            limits: config.limits,
            idle_after: config.idle_after,
        };
        let (tx, stop, start) = (tx.clone(), source_stop.clone(), checkpoint.files.clone());
        threads.push(std::thread::spawn(move || {
            crate::follow::run(fc, start, tx, stop)
        }));
    }
    if let Some(addr) = &config.syslog_udp {
        let socket =
            std::net::UdpSocket::bind(addr).map_err(|e| format!("syslog UDP {addr}: {e}"))?;
        let name = format!(
            "syslog-udp://{}",
            socket.local_addr().map_err(|e| e.to_string())?
        );
        log(&format!("listening for syslog on {name}"));
        let n = crate::syslog::Numbering::new(&name, counter(&checkpoint, &name));
        let (tx, stop) = (tx.clone(), source_stop.clone());
        threads.push(std::thread::spawn(move || {
            crate::syslog::run_udp(socket, n, tx, stop)
        }));
    }
    if let Some(addr) = &config.syslog_tcp {
        let l = std::net::TcpListener::bind(addr).map_err(|e| format!("syslog TCP {addr}: {e}"))?;
        let name = format!(
            "syslog-tcp://{}",
            l.local_addr().map_err(|e| e.to_string())?
        );
        log(&format!("listening for syslog on {name}"));
        let n = crate::syslog::Numbering::new(&name, counter(&checkpoint, &name));
        let (tx, stop) = (tx.clone(), source_stop.clone());
        threads.push(std::thread::spawn(move || {
            crate::syslog::run_tcp(l, n, tx, stop)
        }));
    }
    let mut consumer = None;
    if let Some(k) = &config.kafka {
        let c = Arc::new(crate::kafka::consumer(&k.config, &k.group, &k.topics)?);
        log(&format!(
            "consuming {} from {} as group {}",
            k.topics.join(", "),
            k.config.brokers,
            k.group
        ));
        consumer = Some(Arc::clone(&c));
        let (tx, stop) = (tx.clone(), source_stop.clone());
        let start = checkpoint.kafka.clone();
        let forwarded = (config.stage == Stage::State).then(|| checkpoint.forwarded.clone());
        let (limits, idle) = (config.limits, k.idle_after);
        threads.push(std::thread::spawn(move || {
            crate::kafka::run_consumer(c, start, forwarded, limits, idle, tx, stop)
        }));
    }
    if let Some(addr) = &config.metrics {
        let l = std::net::TcpListener::bind(addr).map_err(|e| format!("metrics {addr}: {e}"))?;
        log(&format!(
            "metrics on http://{}/metrics",
            l.local_addr().map_err(|e| e.to_string())?
        ));
        let (m, stop) = (metrics.clone(), source_stop.clone());
        threads.push(std::thread::spawn(move || {
            crate::metrics::serve(l, m, stop)
        }));
    }
    drop(tx);

    let mut events_by_source: BTreeMap<String, u64> = BTreeMap::new();
    let mut last_checkpoint = Instant::now();
    let mut last_metrics = Instant::now();
    let mut faults = 0u64;
    let mut alerts = Vec::new();
    let mut errors = Vec::new();
    let mut lines = Vec::new();
    let stdout = io::stdout();
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        let input = if stopping {
            None
        } else {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(i) => Some(i),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    if threads.is_empty() {
                        None
                    } else {
                        std::thread::sleep(Duration::from_millis(200));
                        None
                    }
                }
            }
        };
        let mut moved_position = None;
        match input {
            Some(Input::Unit {
                unit,
                position,
                clock,
            }) => {
                let source = match (&clock, &unit) {
                    (Some(c), _) => c.to_string(),
                    (None, Unit::Records { file, .. } | Unit::Evtx { file, .. }) => {
                        file.to_string()
                    }
                };
                let copy = (journal.is_some() || forward.is_some())
                    .then(|| UnitCopy::of(&unit))
                    .flatten();
                let n = engine.process(unit, clock.as_ref(), &mut alerts, &mut errors, &mut lines);
                *events_by_source.entry(source).or_default() += n;
                if let Some(copy) = &copy {
                    if let Some(f) = forward.as_mut() {
                        let f: &mut dyn RecordSink = &mut **f;
                        write_retrying(|| f.records(copy, &lines), &mut faults, log, &stop);
                    } else if let Some(j) = journal.as_mut()
                        && let Err(e) = j.records(copy, &lines)
                    {
                        return Err(format!("journal: {e}"));
                    }
                }
                lines.clear();
                moved_position = position;
            }
            Some(Input::Position(p)) => moved_position = Some(p),
            Some(Input::Known(name)) => engine.source_known(&name),
            Some(Input::Idle(name)) => engine.source_idle(&name),
            Some(Input::Error(e)) => errors.push(e),
            None => {}
        }
        if let Some(wm) = engine.advance(&mut alerts)
            && let Some(j) = journal.as_mut()
            && let Err(e) = j.watermark(wm)
        {
            return Err(format!("journal: {e}"));
        }
        for e in errors.drain(..) {
            summary.errors += 1;
            log(&cellwarden_report::sanitize_terminal(&e.to_string()));
        }
        if !alerts.is_empty() {
            cellwarden_pipeline::sort_alerts(&mut alerts);
            if !already.is_empty() {
                let before = alerts.len();
                alerts.retain(|a| !already.remove(&alert_id(a)));
                summary.suppressed += (before - alerts.len()) as u64;
            }
            summary.alerts += alerts.len() as u64;
            if config.stdout {
                let mut lock = stdout.lock();
                let _ = cellwarden_report::write_jsonl(&mut lock, &alerts);
                let _ = lock.flush();
            }
            if let Some(f) = file.as_mut() {
                write_retrying(|| f.write(&alerts), &mut faults, log, &stop);
            }
            for s in extra.iter_mut() {
                write_retrying(|| s.write(&alerts), &mut faults, log, &stop);
            }
            alerts.clear();
        }
        if let Some(p) = moved_position {
            match p {
                PositionUpdate::File { path, position } => {
                    checkpoint.files.insert(path, position);
                }
                PositionUpdate::Counter { name, count } => {
                    checkpoint.counters.insert(name, count);
                }
                PositionUpdate::Kafka {
                    partition,
                    next,
                    forwarded,
                } => {
                    checkpoint.kafka.insert(partition, next);
                    if let Some((source, record)) = forwarded {
                        checkpoint.forwarded.insert(source, record);
                    }
                }
            }
        }
        let due = last_checkpoint.elapsed() >= config.checkpoint_every;
        let finished = stopping || (rx.is_empty() && threads.iter().all(|t| t.is_finished()));
        if let Some(dir) = state.filter(|_| due || finished) {
            let mut ok = true;
            if let Some(f) = file.as_mut() {
                ok &= write_retrying(|| f.sync(), &mut faults, log, &stop);
            }
            for s in extra.iter_mut() {
                ok &= write_retrying(|| s.durable(), &mut faults, log, &stop);
            }
            if let Some(f) = forward.as_mut() {
                let f: &mut dyn RecordSink = &mut **f;
                ok &= write_retrying(|| f.durable(), &mut faults, log, &stop);
            }
            if ok {
                let j = journal.as_mut().expect("state set");
                match save(&mut checkpoint, j, &engine, file.as_ref(), dir) {
                    Ok(()) => {
                        summary.checkpoints += 1;
                        // Offsets go to the broker only once what they produced is safe.
                        if let Some(c) = &consumer
                            && let Err(e) = crate::kafka::commit(c, &checkpoint.kafka)
                        {
                            faults += 1;
                            log(&format!("{e}; committed with the next checkpoint"));
                        }
                    }
                    Err(e) => {
                        faults += 1;
                        log(&format!(
                            "checkpoint not written: {e}; retried at the next one"
                        ));
                    }
                }
                let rotate = file
                    .as_ref()
                    .zip(config.rotate_bytes)
                    .is_some_and(|(f, max)| f.regular && f.len >= max);
                if rotate && let Some(f) = file.as_mut() {
                    match f.rotate(config.keep_rotated) {
                        Ok(()) => {
                            let _ = save(&mut checkpoint, j, &engine, file.as_ref(), dir);
                        }
                        Err(e) => log(&format!("alert file not rotated: {e}")),
                    }
                }
                if let Some(from) = engine.kept_from_ms()
                    && j.len() > (64 << 20)
                    && j.compact(from).is_ok()
                {
                    let _ = save(&mut checkpoint, j, &engine, file.as_ref(), dir);
                }
            }
            last_checkpoint = Instant::now();
        } else if due {
            if let Some(f) = file.as_mut() {
                write_retrying(|| f.sync(), &mut faults, log, &stop);
            }
            last_checkpoint = Instant::now();
        }
        if last_metrics.elapsed() >= Duration::from_millis(250) || finished {
            last_metrics = Instant::now();
            let mut m = metrics.lock().unwrap_or_else(|p| p.into_inner());
            m.events = events_by_source
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            m.alerts = engine
                .counters
                .alerts
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect();
            m.errors = summary.errors;
            m.late_events = engine.counters.late;
            m.lag_seconds = engine
                .watermark()
                .map(|w| (jiff::Timestamp::now().as_millisecond() - w) as f64 / 1000.0);
            let s = engine.state_size();
            m.state_entries = vec![
                ("account_days".into(), s.account_days),
                ("subscriber_days".into(), s.subscriber_days),
                ("pair_days".into(), s.pair_days),
                ("conn_series".into(), s.conn_series),
                ("correlation_groups".into(), s.correlation_groups),
                ("pending_matches".into(), s.pending_matches),
                ("emitted_keys".into(), s.emitted_keys),
            ];
            m.checkpoint_age_seconds = last_checkpoint.elapsed().as_secs_f64();
            m.checkpoints = summary.checkpoints;
            m.faults = faults;
        }
        if finished {
            break;
        }
    }
    source_stop.store(true, Ordering::Relaxed);
    // Sources blocked on a full channel see it closed and end.
    drop(rx);
    for t in threads {
        let _ = t.join();
    }
    if let Some(f) = file.as_mut() {
        let _ = f.sync();
    }
    summary.events = engine.counters.events;
    Ok(summary)
}

fn counter(c: &Checkpoint, name: &str) -> u64 {
    c.counters.get(name).copied().unwrap_or(0)
}

fn save(
    checkpoint: &mut Checkpoint,
    journal: &mut Journal,
    engine: &Engine<'_>,
    file: Option<&FileSink>,
    dir: &Path,
) -> io::Result<()> {
    checkpoint.journal_len = journal.sync()?;
    checkpoint.output_len = file.map(|f| f.len);
    checkpoint.clocks = engine.clocks().0;
    checkpoint.written_at = cellwarden_event::format_timestamp(Some(jiff::Timestamp::now()));
    checkpoint.save(dir)
}

/// Retries a failed write with backoff (up to 30 s between tries) until it works or the
/// process is asked to stop; true when it worked.
fn write_retrying(
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
}
