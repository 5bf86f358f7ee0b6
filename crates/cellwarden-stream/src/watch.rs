//! The watch loop: sources → live engine → sinks, with checkpoints.
//!
//! One thread runs the engine, so events are handled in the order they arrive and results
//! do not depend on thread timing. Alerts are written to the sinks as they come; at every
//! checkpoint the sinks are flushed and synced first, then the journal, then the checkpoint
//! file. After a crash the journal is replayed up to the checkpoint (alerts it raises were
//! written before), the sources are read again from the checkpointed positions, and alerts
//! already in the alert file after the checkpoint are not written to it again (the other sinks
//! get them again: they keep one copy per alert key, and may not have made them durable).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cellwarden_pipeline::Detectors;
use cellwarden_source::{Format, Limits, Mapping, Unit};

use crate::checkpoint::{Checkpoint, Journal, Replayed, UnitCopy};
use crate::engine::{Engine, LiveConfig};
use crate::sink::{
    FileSink, Outputs, RecordSink, Sinks, write_alerts, write_retrying, written_after,
};
use crate::source::{Input, PositionUpdate, Source};
use cellwarden_pipeline::Stage;

/// Where Kafka input comes from.
#[derive(Debug, Clone)]
pub struct KafkaInput {
    /// The brokers and client settings.
    pub config: crate::kafka::KafkaConfig,
    /// Topics to consume.
    pub topics: Vec<String>,
    /// Consumer group (processes of one group share the partitions).
    pub group: String,
    /// How long a partition at its end waits before it stops holding the watermark back.
    pub idle_after: Duration,
    /// State stage: the topic through which the state workers of the group share what their
    /// partitions' detections compare (the stateful analytics are then partitioned).
    pub exchange: Option<String>,
    /// The alert topic written to (`--kafka-alerts`): partitioned state workers read it to
    /// leave out alerts a partition's former owner wrote.
    pub alerts: Option<String>,
    /// Partitioned state workers: the topic each partition's state is written to (see
    /// [`crate::changelog`]), and how often at most per partition.
    pub changelog: Option<(String, Duration)>,
    /// The rule set's fingerprint (states of other rules are not restored).
    pub rules_fingerprint: String,
}

/// Settings of one `watch` process.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// Files, folders or globs to follow.
    pub follow: Vec<String>,
    /// Format of followed files (default: told from their content).
    pub format: Option<Format>,
    /// Address of the UDP syslog receiver.
    pub syslog_udp: Option<String>,
    /// Address of the TCP syslog receiver.
    pub syslog_tcp: Option<String>,
    /// Checkpoint folder; without it nothing survives a restart.
    pub state: Option<PathBuf>,
    /// Alert file (JSONL, appended).
    pub output: Option<PathBuf>,
    /// Rotate the alert file past this size, keeping `keep_rotated` old ones.
    pub rotate_bytes: Option<u64>,
    /// Rotated alert files kept.
    pub keep_rotated: usize,
    /// Write alerts to standard output too.
    pub stdout: bool,
    /// Address of the `/metrics` and `/health` server.
    pub metrics: Option<String>,
    /// Time between checkpoints.
    pub checkpoint_every: Duration,
    /// Pause between rounds of the follower when nothing was read.
    pub poll: Duration,
    /// Windows and bounds of the live state.
    pub live: LiveConfig,
    /// Size limits of records and lines.
    pub limits: Limits,
    /// Kafka input.
    pub kafka: Option<KafkaInput>,
    /// Which part of the detection this process runs.
    pub stage: Stage,
    /// How long a followed file at its end waits before it stops holding the watermark back.
    pub idle_after: Duration,
    /// Scope report rewritten each time days are judged: HTML for `.html`, CSV for `.csv`,
    /// JSON otherwise.
    pub scope_out: Option<PathBuf>,
    /// Pseudonymises the scope report's identifiers.
    pub pseudonymiser: Option<cellwarden_report::Pseudonymiser>,
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
            scope_out: None,
            pseudonymiser: None,
        }
    }
}

/// The detectors' setup, shared with `hunt`.
pub struct Setup<'a> {
    /// The detectors, built as `hunt` builds them.
    pub detectors: Detectors<'a>,
    /// The log source mapping.
    pub mapping: &'a Mapping,
}

/// Why `watch` could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// `--stage parse` without a topic to hand records on to.
    #[error("the parse stage needs a topic to hand records on to")]
    NoForward,
    /// A partitioned state worker (`--exchange`) is run by the module of that name.
    #[error("a partitioned state worker is run by its own loop")]
    Partitioned,
    /// Partitioned state workers need Kafka, one handed-on topic and the exchange topic.
    #[error(
        "partitioned state workers need --kafka, exactly one --topic (the handed-on records) and --exchange TOPIC"
    )]
    NoExchange,
    /// A path to follow that cannot be followed.
    #[error(transparent)]
    Follow(#[from] crate::follow::FollowError),
    /// The state folder, its checkpoint or its journal cannot be read or written.
    #[error("{}: {what}{source}", path.display())]
    State {
        /// The state folder.
        path: PathBuf,
        /// `checkpoint unreadable: `, `journal: ` or nothing.
        what: &'static str,
        /// Why.
        source: io::Error,
    },
    /// The journal could not be written while running.
    #[error("journal: {0}")]
    Journal(io::Error),
    /// The alert file cannot be opened or read.
    #[error("{}: {source}", path.display())]
    Output {
        /// The alert file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A receiver or the metrics server cannot listen on its address.
    #[error("{what} {addr}: {source}")]
    Listen {
        /// `syslog UDP`, `syslog TCP` or `metrics`.
        what: &'static str,
        /// The address as given.
        addr: String,
        /// Why.
        source: io::Error,
    },
    /// The Kafka client could not be set up.
    #[error(transparent)]
    Kafka(#[from] crate::kafka::ClientError),
}

/// What a run did.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    /// Events decoded.
    pub events: u64,
    /// Alerts written.
    pub alerts: u64,
    /// Input errors.
    pub errors: u64,
    /// Journaled records replayed at start.
    pub replayed: u64,
    /// Alerts already written before a restart, not written again.
    pub suppressed: u64,
    /// Checkpoints written.
    pub checkpoints: u64,
}

/// Runs until `stop` is set. `extra` sinks get every alert written.
pub fn run(
    setup: Setup<'_>,
    config: &WatchConfig,
    sinks: Sinks<'_>,
    stop: Arc<AtomicBool>,
    log: &mut dyn FnMut(&str),
) -> Result<Summary, WatchError> {
    let mut summary = Summary::default();
    let Sinks {
        alerts: mut extra,
        mut forward,
    } = sinks;
    if config.stage == Stage::Parse && forward.is_none() {
        return Err(WatchError::NoForward);
    }
    if config.stage == Stage::State && config.kafka.as_ref().is_some_and(|k| k.exchange.is_some()) {
        return Err(WatchError::Partitioned);
    }
    let live = LiveConfig {
        scope: config.scope_out.is_some(),
        ..config.live.clone()
    };
    let mut engine = Engine::new(setup.detectors, setup.mapping, live, config.stage);
    let state = config.state.as_deref();
    let mut checkpoint = Checkpoint {
        version: 1,
        ..Default::default()
    };
    let mut journal = None;
    let mut first_run = false;
    if let Some(dir) = state {
        let state_error = |what| {
            move |source| WatchError::State {
                path: dir.to_owned(),
                what,
                source,
            }
        };
        std::fs::create_dir_all(dir).map_err(state_error(""))?;
        match Checkpoint::load(dir).map_err(state_error("checkpoint unreadable: "))? {
            Some(c) => checkpoint = c,
            None => first_run = true,
        }
        let mut discard = Vec::new();
        let mut errors = Vec::new();
        let mut lines = Vec::new();
        let j = Journal::open(dir, checkpoint.journal_len).map_err(state_error("journal: "))?;
        summary.replayed = Journal::replay(dir, &mut |r| match r {
            Replayed::Unit(u, uses) => {
                engine.process(u.into(), None, uses, &mut discard, &mut errors, &mut lines);
                discard.clear();
                lines.clear();
            }
            // The engine moves as it did live: judging closed days, or only releasing
            // correlated matches where the days waited.
            Replayed::Watermark(w) => {
                engine.advance_to(w, &mut discard, false);
                discard.clear();
            }
            Replayed::Released(w) => {
                engine.release_to(w, &mut discard);
                discard.clear();
            }
        })
        .map_err(state_error("journal: "))?;
        engine.restore_clocks(&checkpoint.clocks);
        engine.counters = Default::default();
        if summary.replayed > 0 {
            log(&format!(
                "state restored: {} journaled records replayed",
                summary.replayed
            ));
        }
        journal = Some(crate::checkpoint::JournalWriter::start(j));
    }
    let mut file = match &config.output {
        Some(p) => Some(FileSink::open(p).map_err(|source| WatchError::Output {
            path: p.clone(),
            source,
        })?),
        None => None,
    };
    let mut already: HashSet<String> = match (&config.output, checkpoint.output_len) {
        (Some(p), Some(len)) => written_after(p, len).map_err(|source| WatchError::Output {
            path: p.clone(),
            source,
        })?,
        _ => HashSet::new(),
    };
    // A first checkpoint before anything is read: it holds the alert file's length, so alerts
    // written before the first periodic checkpoint are known after a crash.
    if first_run && let (Some(dir), Some(j)) = (state, journal.as_ref()) {
        save(&mut checkpoint, j, &engine, file.as_ref(), dir).map_err(|source| {
            WatchError::State {
                path: dir.to_owned(),
                what: "checkpoint not written: ",
                source,
            }
        })?;
    }

    let mut sources: Vec<Box<dyn Source>> = Vec::new();
    if !config.follow.is_empty() {
        let fc = crate::follow::FollowConfig {
            patterns: config.follow.clone(),
            format: config.format,
            poll: config.poll,
            limits: config.limits,
            idle_after: config.idle_after,
        };
        let follower = crate::follow::Follower::new(fc, checkpoint.files.clone())?;
        for note in follower.notes() {
            log(note);
        }
        sources.push(Box::new(follower));
    }
    if let Some(addr) = &config.syslog_udp {
        let socket = std::net::UdpSocket::bind(addr).map_err(listen_error("syslog UDP", addr))?;
        let name = format!(
            "syslog-udp://{}",
            socket
                .local_addr()
                .map_err(listen_error("syslog UDP", addr))?
        );
        log(&format!("listening for syslog on {name}"));
        let numbering =
            crate::syslog::Numbering::new(&name, counter(&checkpoint, &name), config.idle_after);
        sources.push(Box::new(crate::syslog::UdpReceiver { socket, numbering }));
    }
    if let Some(addr) = &config.syslog_tcp {
        let listener =
            std::net::TcpListener::bind(addr).map_err(listen_error("syslog TCP", addr))?;
        let name = format!(
            "syslog-tcp://{}",
            listener
                .local_addr()
                .map_err(listen_error("syslog TCP", addr))?
        );
        log(&format!("listening for syslog on {name}"));
        let numbering =
            crate::syslog::Numbering::new(&name, counter(&checkpoint, &name), config.idle_after);
        sources.push(Box::new(crate::syslog::TcpReceiver {
            listener,
            numbering,
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
        sources.push(Box::new(crate::kafka::KafkaSource {
            consumer: c,
            start: checkpoint.kafka.clone(),
            forwarded: (config.stage == Stage::State).then(|| checkpoint.forwarded.clone()),
            limits: config.limits,
            idle_after: k.idle_after,
            rebuild: false,
            changelog: None,
        }));
    }
    let (tx, rx) = crossbeam_channel::bounded::<Input>(64);
    let source_stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for source in sources {
        let (tx, stop) = (tx.clone(), source_stop.clone());
        threads.push(std::thread::spawn(move || source.run(tx, stop)));
    }
    let (metrics, server) = start_metrics(config, &source_stop, log)?;
    threads.extend(server);
    drop(tx);

    let mut events_by_source: BTreeMap<String, u64> = BTreeMap::new();
    let mut last_checkpoint = Instant::now();
    let mut last_metrics = Instant::now();
    let mut faults = 0u64;
    let mut alerts = Vec::new();
    let mut errors = Vec::new();
    let mut lines = Vec::new();
    // When the last unit came: units coming close together are a backlog being read.
    // Per source (file, partition), when its last unit came, until it says it reached its end.
    let mut reading: HashMap<String, Instant> = HashMap::new();
    // Text units are decoded on other threads while this one runs the detectors.
    let mapping = setup.mapping;
    let ended = std::thread::scope(|scope| {
        let rx = crate::decode::Ahead::start(scope, rx, mapping, crate::decode::threads());
        let ended = (|| -> Result<(), WatchError> {
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
                        uses,
                    }) => {
                        let source = match (&clock, unit.unit()) {
                            (Some(c), _) => c.to_string(),
                            (None, Unit::Records { file, .. } | Unit::Evtx { file, .. }) => {
                                file.to_string()
                            }
                        };
                        let (n, spent) = engine.process(
                            unit,
                            clock.as_ref(),
                            uses,
                            &mut alerts,
                            &mut errors,
                            &mut lines,
                        );
                        let latest = engine.clock_of(&source).map(|c| c.0);
                        *events_by_source.entry(source.clone()).or_default() += n;
                        if let Some(spent) = spent {
                            if let Some(f) = forward.as_mut() {
                                if let Some(copy) = UnitCopy::of(spent.into_unit()) {
                                    let f: &mut dyn RecordSink = &mut **f;
                                    write_retrying(
                                        || f.records(&copy, &lines, latest),
                                        &mut faults,
                                        log,
                                        &stop,
                                    );
                                }
                            } else if let Some(j) = journal.as_ref()
                                && let Err(e) = j.records(spent, uses, std::mem::take(&mut lines))
                            {
                                return Err(WatchError::Journal(e));
                            }
                        }
                        lines.clear();
                        moved_position = position;
                        reading.insert(source, Instant::now());
                    }
                    Some(Input::Position(p)) => moved_position = Some(p),
                    Some(Input::Known(name)) => {
                        // Which partitions a worker of a group reads, and when they move.
                        if crate::kafka::is_partition(&name) {
                            log(&format!("{name}: assigned"));
                        }
                        engine.source_known(&name);
                        if let Some(f) = forward.as_mut() {
                            let f: &mut dyn RecordSink = &mut **f;
                            write_retrying(|| f.known(&name), &mut faults, log, &stop);
                        }
                    }
                    Some(Input::Revoked(name)) => log(&format!("{name}: revoked")),
                    // Only partitioned state workers read a changelog.
                    Some(Input::Restored { .. }) => {}
                    Some(Input::Idle(name)) => {
                        engine.source_idle(&name);
                        // The state stage learns it from us: there, a quiet handed-on
                        // partition may only be a parse group rebalancing.
                        if let Some(f) = forward.as_mut() {
                            let f: &mut dyn RecordSink = &mut **f;
                            write_retrying(|| f.idle(&name), &mut faults, log, &stop);
                            log(&format!(
                                "{name}: read to its end; the state stage stops waiting for it"
                            ));
                        }
                    }
                    Some(Input::ReadToEnd(name)) => {
                        reading.remove(&*name);
                    }
                    Some(Input::Mark { clock, latest }) => engine.mark(&clock, latest),
                    Some(Input::Note(note)) => log(&cellwarden_report::sanitize_terminal(&note)),
                    Some(Input::Error(e)) => errors.push(e),
                    None => {}
                }
                // Input already waiting, or a unit came a moment ago from a source that has not
                // said it reached its end (a consumer reads a backlog in fetches with short gaps):
                // a backlog is being read. Once every source is at its end or input pauses for
                // longer, the loop comes back here (within its 200 ms wait) and the days are
                // judged.
                reading.retain(|_, t| t.elapsed() < BACKLOG_GAP);
                let behind = !rx.is_empty() || !reading.is_empty();
                let open_before = engine.open_day();
                let advanced = engine.advance(&mut alerts, behind);
                if let (Some(a), Some(b)) = (open_before, engine.open_day())
                    && b > a + 1
                {
                    log(&format!(
                        "{} closed days judged together (a backlog was read meanwhile)",
                        b - a
                    ));
                }
                if let Some(wm) = advanced
                    && let Some(j) = journal.as_ref()
                    && let Err(e) = j.watermark(wm, engine.days_wait())
                {
                    return Err(WatchError::Journal(e));
                }
                if let (Some(mut x), Some(path)) = (engine.take_exposure(), &config.scope_out) {
                    if let Some(p) = &config.pseudonymiser {
                        x.pseudonymise(&|kind, value| p.pseudonym(kind, value));
                    }
                    if let Err(e) = write_scope(path, &x) {
                        faults += 1;
                        log(&format!(
                            "{}: scope report not written: {e}; written again when the next day is judged",
                            path.display()
                        ));
                    }
                }
                for e in errors.drain(..) {
                    summary.errors += 1;
                    log(&cellwarden_report::sanitize_terminal(&e.to_string()));
                }
                if !alerts.is_empty() {
                    cellwarden_pipeline::sort_alerts(&mut alerts);
                    let out = Outputs {
                        stdout: config.stdout,
                        file: file.as_mut(),
                        extra: &mut extra,
                        in_file: Some(&mut already),
                    };
                    let left_out = write_alerts(&alerts, out, &mut faults, log, &stop) as u64;
                    summary.suppressed += left_out;
                    summary.alerts += alerts.len() as u64 - left_out;
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
                let finished =
                    stopping || (rx.drained() && threads.iter().all(|t| t.is_finished()));
                if let Some(dir) = state.filter(|_| due || finished) {
                    let mut ok = true;
                    if let Some(f) = file.as_mut() {
                        ok &= write_retrying(|| f.sync(), &mut faults, log, &stop);
                    }
                    for s in extra.iter_mut() {
                        s.names(engine.aliases());
                        ok &= write_retrying(|| s.durable(), &mut faults, log, &stop);
                    }
                    if let Some(f) = forward.as_mut() {
                        let f: &mut dyn RecordSink = &mut **f;
                        ok &= write_retrying(|| f.durable(), &mut faults, log, &stop);
                    }
                    if ok {
                        let j = journal.as_ref().expect("state set");
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
                            && j.call(move |j| {
                                Ok(j.len() > (64 << 20)
                                    && j.worth_compacting(from)
                                    && j.compact(from).is_ok())
                            })
                            .unwrap_or(false)
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
                    m.set_counts(&events_by_source, &engine.counters.alerts);
                    m.errors = summary.errors;
                    m.late_events = engine.counters.late;
                    m.lag_seconds = crate::metrics::lag_of(engine.watermark());
                    m.state_entries = crate::metrics::state_entries([engine.state_size()]);
                    m.checkpoint_age_seconds = last_checkpoint.elapsed().as_secs_f64();
                    m.checkpoints = summary.checkpoints;
                    m.faults = faults;
                }
                if finished {
                    break;
                }
            }
            Ok(())
        })();
        // Sources stop; those blocked on a full channel, and the decoding threads, see it
        // closed and end.
        source_stop.store(true, Ordering::Relaxed);
        drop(rx);
        ended
    });
    for t in threads {
        let _ = t.join();
    }
    ended?;
    if let Some(f) = file.as_mut() {
        let _ = f.sync();
    }
    summary.events = engine.counters.events;
    Ok(summary)
}

/// Writes the scope report whole: a temporary file beside it, then a rename.
pub(crate) fn write_scope(
    path: &Path,
    x: &cellwarden_telecom::exposure::Exposure,
) -> io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    {
        let mut w = io::BufWriter::new(std::fs::File::create(&tmp)?);
        match path.extension().and_then(|e| e.to_str()) {
            Some("html") => cellwarden_report::write_scope_html(&mut w, x)?,
            Some("csv") => cellwarden_report::write_scope_csv(&mut w, x)?,
            _ => cellwarden_report::write_scope_json(&mut w, x)?,
        }
        w.flush()?;
        w.get_ref().sync_data()?;
    }
    std::fs::rename(&tmp, path)
}

/// Units that come less than this apart are read from a backlog.
const BACKLOG_GAP: Duration = Duration::from_millis(100);

/// The metrics server of `config.metrics`, if any (see [`crate::metrics::start`]).
pub(crate) fn start_metrics(
    config: &WatchConfig,
    stop: &Arc<AtomicBool>,
    log: &mut dyn FnMut(&str),
) -> Result<crate::metrics::Server, WatchError> {
    let addr = config.metrics.as_deref();
    crate::metrics::start(addr, stop, log).map_err(listen_error("metrics", addr.unwrap_or("")))
}

fn listen_error(what: &'static str, addr: &str) -> impl FnOnce(io::Error) -> WatchError {
    let addr = addr.to_owned();
    move |source| WatchError::Listen { what, addr, source }
}

fn counter(c: &Checkpoint, name: &str) -> u64 {
    c.counters.get(name).copied().unwrap_or(0)
}

fn save(
    checkpoint: &mut Checkpoint,
    journal: &crate::checkpoint::JournalWriter,
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
