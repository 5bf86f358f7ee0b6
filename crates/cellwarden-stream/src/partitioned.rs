//! Stateful analytics partitioned over several state workers (`watch --stage state
//! --exchange TOPIC`).
//!
//! The parse stage hands each stateful record to the partition of its entity (database
//! account, flow source host, DNS domain; correlations all to partition 0). State workers of
//! one consumer group share those partitions; each runs one live [`Engine`] per partition it
//! owns (a *task*), so a partition's state can move to another worker whole.
//!
//! What a detection compares across entities is exchanged through the exchange topic
//! ([`crate::exchange`]): each task says where its partition is (the latest event time read,
//! and whether it has caught up), and every worker computes the same watermark over all
//! partitions, as one process does over its sources. When a day closes, each task takes a
//! snapshot of its aggregates and shares round one (identifier links, subscribers, created
//! accounts, core traffic, first day); once every partition has shared it, round two (each
//! account's peer group and target list length); once every partition has shared that, the
//! task judges its snapshot with the merged view and writes the alerts. The union of the
//! partitions' alerts is then what one process judging everything raises.
//!
//! No local state survives the process. Offsets are not committed: a partition newly
//! assigned (at start, or taken over from a worker that died) is restored from the changelog
//! topic (`--changelog`, [`crate::changelog`]) when it holds a whole state of the partition,
//! and read on from where that state was taken; otherwise it is read from the handed-on
//! topic's start and its state rebuilt (the topic's retention must then cover
//! `--retention-days` plus the closing lateness). `--state DIR` only receives
//! `progress.json`, the next offset read per partition owned, for monitoring. Alerts of a
//! partition whose state is rebuilt are sent again under the same alert keys (the alert
//! topic is keyed by them, so copies collapse there, and workers leave out keys already on
//! it).

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cellwarden_event::Alert;
use cellwarden_pipeline::{Snapshot, Stage, View};
use rdkafka::consumer::Consumer;

use crate::engine::Engine;
use crate::exchange::Exchange;
use crate::sink::{FileSink, Outputs, Sinks, write_alerts, write_retrying};
use crate::source::{Input, PositionUpdate, Source};
use crate::watch::{Setup, Summary, WatchConfig, WatchError};

/// Longest time input is taken in one go before the exchange is looked at.
const DRAIN: Duration = Duration::from_millis(20);
/// Time between two clock messages of one partition while it moves.
const CLOCK_EVERY: Duration = Duration::from_millis(300);
/// Time between two clock messages of one partition that does not move (workers that start
/// later hear of it).
const CLOCK_HEARTBEAT: Duration = Duration::from_secs(3);

/// A partition's day being closed: its snapshot, and round one's view once every partition
/// has shared.
struct Closing {
    day: i32,
    snap: Snapshot,
    /// The partition's next offset when the snapshot was taken.
    offset: i64,
    view: Option<View>,
    since: Instant,
    said: bool,
}

/// A closing waiting this long for other partitions says which.
const WAIT_SAID_AFTER: Duration = Duration::from_secs(10);

/// The keys of the alerts on the alert topic (the newest [`WRITTEN_KEYS`]): a partition
/// taken over and rebuilt raises its alerts again, and those its former owner wrote are left
/// out. Read from the topic's start when the worker starts, then as it grows.
struct Written {
    consumer: Option<rdkafka::consumer::BaseConsumer>,
    keys: std::collections::HashSet<String>,
    order: std::collections::VecDeque<String>,
}

/// Alert keys remembered.
const WRITTEN_KEYS: usize = 500_000;

impl Written {
    fn new(
        config: &crate::kafka::KafkaConfig,
        topic: Option<&str>,
        me: &str,
    ) -> Result<Written, WatchError> {
        let mut w = Written {
            consumer: None,
            keys: Default::default(),
            order: Default::default(),
        };
        let Some(topic) = topic else { return Ok(w) };
        let (c, n) = crate::kafka::reader(
            config,
            topic,
            &format!("cellwarden-alerts-{me}"),
            &[("enable.partition.eof", "true")],
        )?;
        w.consumer = Some(c);
        // What is there now, before any partition is judged.
        let mut ends = 0;
        let start = Instant::now();
        while ends < n && start.elapsed() < Duration::from_secs(60) {
            ends += w.read(Duration::from_millis(200));
        }
        Ok(w)
    }

    /// Takes what arrived; returns the partitions found at their end.
    fn read(&mut self, wait: Duration) -> u32 {
        let Some(c) = &self.consumer else { return 0 };
        let mut ends = 0;
        let mut wait = wait;
        while let Some(m) = c.poll(wait) {
            wait = Duration::ZERO;
            match m {
                Ok(m) => {
                    use rdkafka::message::Message;
                    if let Some(k) = m.key() {
                        let k = String::from_utf8_lossy(k).into_owned();
                        if self.keys.insert(k.clone()) {
                            self.order.push_back(k);
                        }
                    }
                }
                Err(rdkafka::error::KafkaError::PartitionEOF(_)) => ends += 1,
                Err(_) => {}
            }
        }
        while self.order.len() > WRITTEN_KEYS {
            if let Some(old) = self.order.pop_front() {
                self.keys.remove(&old);
            }
        }
        ends
    }

    /// Whether alert `a` is new (and remembers it).
    fn fresh(&mut self, a: &Alert) -> bool {
        let k = cellwarden_store::stable_key(a);
        if self.keys.contains(&k) {
            return false;
        }
        self.keys.insert(k.clone());
        self.order.push_back(k);
        true
    }
}

/// The live state of one partition.
struct Task<'r> {
    engine: Engine<'r>,
    name: Arc<str>,
    closing: Option<Closing>,
    /// The last day closed.
    closed: Option<i32>,
    /// The exchange's version when it was last judged.
    seen: u64,
    sent_clock: Option<((i64, bool), Instant)>,
    /// What the partition held when assigned has been read. Until then its clock is not
    /// said: a source of the partition not yet met would not hold the watermark back, and a
    /// day would close over half-rebuilt state.
    read_to_end: bool,
    /// The last record handled of each source read through the partition.
    handled: BTreeMap<String, u64>,
    /// When its state was last written to the changelog, and the last day closed then.
    saved: Option<(Instant, Option<i32>)>,
}

impl<'r> Task<'r> {
    fn new(name: &Arc<str>, engine: Engine<'r>) -> Task<'r> {
        Task {
            closed: engine.open_day(),
            engine,
            name: Arc::clone(name),
            closing: None,
            seen: 0,
            sent_clock: None,
            read_to_end: false,
            handled: BTreeMap::new(),
            saved: None,
        }
    }

    /// Days were judged since its state was last written, and the last write is at least
    /// `every` old.
    fn save_due(&self, every: Duration) -> bool {
        self.read_to_end
            && self.closing.is_none()
            && self.closed.is_some()
            && self
                .saved
                .is_none_or(|(at, day)| day != self.closed && at.elapsed() >= every)
    }
}

/// The partition number of `kafka://topic/N` (or of `kafka://topic/N source`, a source read
/// through it).
fn partition_number(name: &str) -> Option<u32> {
    let partition = name.split(' ').next()?;
    partition.rsplit_once('/')?.1.parse().ok()
}

/// Runs a partitioned state worker until `stop` (see the module documentation).
pub fn run(
    setup: Setup<'_>,
    config: &WatchConfig,
    sinks: Sinks<'_>,
    stop: Arc<AtomicBool>,
    log: &mut dyn FnMut(&str),
) -> Result<Summary, WatchError> {
    let mut summary = Summary::default();
    let k = config.kafka.as_ref().ok_or(WatchError::NoExchange)?;
    let topic = match (k.topics.as_slice(), &k.exchange) {
        ([t], Some(_)) => t.clone(),
        _ => return Err(WatchError::NoExchange),
    };
    let exchange_topic = k.exchange.clone().ok_or(WatchError::NoExchange)?;
    // Rebalanced cooperatively: only the partitions that change hands are rebuilt.
    let consumer = Arc::new(crate::kafka::consumer(&k.config, &k.group, &k.topics)?);
    let partitions = crate::kafka::partition_count(consumer.client(), &topic)?;
    let me = format!(
        "{}-{}",
        std::process::id(),
        jiff::Timestamp::now().as_nanosecond()
    );
    let mut written = Written::new(&k.config, k.alerts.as_deref(), &me)?;
    let mut exchange = Exchange::new(
        &k.config,
        &exchange_topic,
        partitions,
        me,
        config.scope_out.is_some(),
    )?;
    // Every partition shares its part of the scope report: the worker that writes it (any
    // of the group, with --scope-out) needs the parts of partitions it does not own.
    let live = crate::engine::LiveConfig {
        scope: true,
        ..config.live.clone()
    };
    // The scope parts last written (the board's version).
    let mut scope_written = 0u64;
    log(&format!(
        "partitioned state worker: {partitions} partitions of {topic} in group {}, sharing through {exchange_topic}",
        k.group
    ));
    let Sinks {
        alerts: mut extra, ..
    } = sinks;
    let mut file = match &config.output {
        Some(p) => Some(FileSink::open(p).map_err(|source| WatchError::Output {
            path: p.clone(),
            source,
        })?),
        None => None,
    };
    let mut changelog = match &k.changelog {
        Some((t, every)) => {
            let c = crate::changelog::Changelog::new(&k.config, t, &k.rules_fingerprint)?;
            log(&format!(
                "partitions' states are written to {t} (at most every {every:?} each) and read back from it when a partition is assigned"
            ));
            Some((c, *every))
        }
        None => None,
    };
    let source: Box<dyn Source> = Box::new(crate::kafka::KafkaSource {
        consumer,
        start: BTreeMap::new(),
        forwarded: Some(BTreeMap::new()),
        limits: config.limits,
        idle_after: k.idle_after,
        rebuild: true,
        changelog: changelog
            .as_ref()
            .map(|(c, _)| Box::new(c.reader(&k.config)) as Box<dyn crate::saved::Restore>),
    });
    let (tx, rx) = crossbeam_channel::bounded::<Input>(64);
    let source_stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let stop = Arc::clone(&source_stop);
        std::thread::spawn(move || source.run(tx, stop))
    };
    let (metrics, server) = crate::watch::start_metrics(config, &source_stop, log)?;
    let mut last_metrics = Instant::now();
    // Counters of this worker (a revoked partition's engine goes, its counts stay).
    let mut events_by_source: BTreeMap<String, u64> = BTreeMap::new();
    let mut alerts_by_level: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut late_gone = 0u64;
    let mut durable_writes = 0u64;
    let mut tasks: BTreeMap<u32, Task<'_>> = BTreeMap::new();
    let mut alerts: Vec<Alert> = Vec::new();
    let mut errors = Vec::new();
    let mut lines = Vec::new();
    let mut faults = 0u64;
    let mut last_durable = Instant::now();
    let mut said_clocks = Instant::now();
    let mut said_line = String::new();
    // Next offset read per `topic/partition` owned.
    let mut progress: BTreeMap<String, i64> = BTreeMap::new();
    // Text units are decoded on other threads while this one runs the partitions' engines.
    let mapping = setup.mapping;
    std::thread::scope(|scope| {
        let rx = crate::decode::Ahead::start(scope, rx, mapping, crate::decode::threads());
        while !stop.load(Ordering::Relaxed) {
            let mut waiting = match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(i) => Some(i),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            };
            // What is waiting is taken in one go: the exchange and the partitions' rounds are
            // looked at between goes, not after every unit (a partition's records of several
            // sources come in many small units).
            let drain = Instant::now();
            while let Some(input) = waiting.take() {
                match input {
                    Input::Unit {
                        unit,
                        clock,
                        uses,
                        position,
                    } => {
                        let mut handled = None;
                        if let Some(PositionUpdate::Kafka {
                            partition,
                            next,
                            forwarded,
                        }) = position
                        {
                            progress.insert(partition, next);
                            handled = forwarded;
                        }
                        let task = clock
                            .as_deref()
                            .and_then(partition_number)
                            .and_then(|p| tasks.get_mut(&p));
                        // Records of a partition revoked meanwhile are left to its new owner.
                        if let Some(t) = task {
                            if let Some((source, record)) = handled {
                                t.handled.insert(source, record);
                            }
                            let (n, _) = t.engine.process(
                                unit,
                                clock.as_ref(),
                                uses,
                                &mut alerts,
                                &mut errors,
                                &mut lines,
                            );
                            summary.events += n;
                            *events_by_source.entry(t.name.to_string()).or_default() += n;
                            lines.clear();
                        }
                    }
                    Input::Known(name) => {
                        if let Some(p) = partition_number(&name) {
                            exchange.board.owned.insert(p);
                            // The clock a former owner (or this worker, before a revocation) said
                            // is not where the rebuilt state is: until the task says its own, the
                            // watermark waits (else a day closes over half-read state).
                            if !tasks.contains_key(&p) {
                                exchange.board.clocks.remove(&p);
                            }
                            let task = tasks.entry(p).or_insert_with(|| {
                                log(&format!(
                                    "{name}: assigned; its state is read from the start"
                                ));
                                let engine = Engine::new(
                                    setup.detectors,
                                    setup.mapping,
                                    live.clone(),
                                    Stage::State,
                                );
                                Task::new(&name, engine)
                            });
                            task.engine.source_known(&name);
                            events_by_source.entry(name.to_string()).or_default();
                        }
                    }
                    Input::Restored { name, restored } => {
                        let crate::saved::Restored { saved, said, slots } = *restored;
                        if let Some(p) = partition_number(&name) {
                            if let Some((c, _)) = changelog.as_mut() {
                                c.learn(p, slots);
                            }
                            match saved {
                                Some(saved) => {
                                    let mut engine = Engine::new(
                                        setup.detectors,
                                        setup.mapping,
                                        live.clone(),
                                        Stage::State,
                                    );
                                    engine.restore(saved.engine);
                                    let mut task = Task::new(&name, engine);
                                    task.handled = saved.handled.into_iter().collect();
                                    // Written already: nothing judged since.
                                    task.saved = Some((Instant::now(), task.closed));
                                    log(&format!(
                                        "{name}: assigned; its state is restored from the changelog ({said}) and read on from offset {}",
                                        saved.next
                                    ));
                                    let key = crate::kafka::partition_key(&name);
                                    progress.insert(key.to_owned(), saved.next);
                                    // As for a partition rebuilt from the start: the former
                                    // owner's clock is not where this state is.
                                    exchange.board.clocks.remove(&p);
                                    tasks.insert(p, task);
                                }
                                None => log(&format!("{name}: changelog: {said}")),
                            }
                        }
                    }
                    Input::Revoked(name) => {
                        if let Some(p) = partition_number(&name)
                            && let Some(t) = tasks.remove(&p)
                        {
                            late_gone += t.engine.counters.late;
                            exchange.board.owned.remove(&p);
                            log(&format!("{name}: revoked"));
                        }
                        let key = crate::kafka::partition_key(&name);
                        progress.remove(key);
                    }
                    Input::Mark { clock, latest } => {
                        if let Some(t) = partition_number(&clock).and_then(|p| tasks.get_mut(&p)) {
                            t.engine.mark(&clock, latest);
                        }
                    }
                    Input::ReadToEnd(name) => {
                        if let Some(t) = partition_number(&name).and_then(|p| tasks.get_mut(&p)) {
                            t.read_to_end = true;
                        }
                    }
                    Input::Idle(name) => {
                        if let Some(t) = partition_number(&name).and_then(|p| tasks.get_mut(&p)) {
                            t.engine.source_idle(&name);
                        }
                    }
                    Input::Note(n) => log(&cellwarden_report::sanitize_terminal(&n)),
                    Input::Error(e) => errors.push(e),
                    Input::Position(PositionUpdate::Kafka {
                        partition, next, ..
                    }) => {
                        progress.insert(partition, next);
                    }
                    Input::Position(_) => {}
                }
                if drain.elapsed() < DRAIN {
                    waiting = rx.try_recv();
                }
            }
            for m in exchange.poll() {
                log(&m);
            }
            written.read(Duration::ZERO);
            // Clocks of the partitions owned, when they moved.
            for (p, t) in tasks.iter_mut() {
                let now = if t.read_to_end {
                    let Some(now) = t.engine.clock_of(&t.name) else {
                        continue;
                    };
                    now
                } else {
                    (i64::MIN, false)
                };
                let due = t.sent_clock.is_none_or(|(c, at)| {
                    let moved = c != now && (c.1 != now.1 || at.elapsed() >= CLOCK_EVERY);
                    moved || at.elapsed() >= CLOCK_HEARTBEAT
                });
                if due {
                    exchange.clock(*p, now.0, now.1);
                    t.sent_clock = Some((now, Instant::now()));
                }
            }
            if said_clocks.elapsed() >= Duration::from_secs(15) {
                said_clocks = Instant::now();
                let b = &exchange.board;
                let clocks: Vec<String> = (0..b.partitions)
                    .map(|q| match b.clocks.get(&q) {
                        Some((t, idle)) => {
                            // An owned partition behind: the source it waits for.
                            let held = tasks
                                .get(&q)
                                .filter(|_| !*idle)
                                .and_then(|t| t.engine.slowest_of(&t.name))
                                .map_or(String::new(), |(source, at)| {
                                    let source = source.split_once(' ').map_or(source, |s| s.1);
                                    format!(" (waits for {source} at {})", time_text(at))
                                });
                            format!(
                                "{q}: {}{}{held}",
                                time_text(*t),
                                if *idle { " (caught up)" } else { "" }
                            )
                        }
                        None => format!("{q}: not heard of"),
                    })
                    .collect();
                // Said when it changed: a worker caught up stays quiet.
                let line = format!("partitions at {}", clocks.join(", "));
                if line != said_line {
                    log(&line);
                    said_line = line;
                }
            }
            if let Some(wm) = exchange.board.watermark() {
                // A partition being rebuilt judges nothing until it has read what it held
                // when assigned: the board may still hold its former owner's clock, far
                // ahead, and its days would be judged over the first records read again
                // (first-day findings without the days that make them a habit).
                for (p, t) in tasks.iter_mut().filter(|(_, t)| t.read_to_end) {
                    let key = crate::kafka::partition_key(&t.name);
                    let offset = progress.get(key).copied().unwrap_or(0);
                    step(*p, t, wm, offset, &mut exchange, &mut alerts, log);
                }
            }
            // States of partitions that judged days, to the changelog.
            if let Some((c, every)) = changelog.as_mut() {
                for (p, t) in tasks.iter_mut().filter(|(_, t)| t.save_due(*every)) {
                    save(*p, t, c, &progress, &mut faults, log);
                }
            }
            // The scope report of every partition, each time a part changes.
            if let Some(path) = &config.scope_out
                && exchange.board.scope_version != scope_written
                && let Some(mut x) = exchange.board.scope()
            {
                scope_written = exchange.board.scope_version;
                if let Some(p) = &config.pseudonymiser {
                    x.pseudonymise(&|kind, value| p.pseudonym(kind, value));
                }
                if let Err(e) = crate::watch::write_scope(path, &x) {
                    faults += 1;
                    log(&format!(
                        "{}: scope report not written: {e}; written again when a partition's days are judged",
                        path.display()
                    ));
                }
            }
            for e in errors.drain(..) {
                summary.errors += 1;
                log(&cellwarden_report::sanitize_terminal(&e.to_string()));
            }
            let before = alerts.len();
            alerts.retain(|a| written.fresh(a));
            summary.suppressed += (before - alerts.len()) as u64;
            if !alerts.is_empty() {
                cellwarden_pipeline::sort_alerts(&mut alerts);
                summary.alerts += alerts.len() as u64;
                for a in &alerts {
                    *alerts_by_level.entry(a.level.as_str()).or_default() += 1;
                }
                let out = Outputs {
                    stdout: config.stdout,
                    file: file.as_mut(),
                    extra: &mut extra,
                    in_file: None,
                };
                write_alerts(&alerts, out, &mut faults, log, &stop);
                alerts.clear();
            }
            if last_durable.elapsed() >= config.checkpoint_every {
                last_durable = Instant::now();
                if let Some(f) = file.as_mut() {
                    write_retrying(|| f.sync(), &mut faults, log, &stop);
                }
                for s in extra.iter_mut() {
                    write_retrying(|| s.durable(), &mut faults, log, &stop);
                }
                exchange.flush();
                if let Some((c, _)) = &changelog
                    && let Err(e) = c.durable()
                {
                    faults += 1;
                    log(&e);
                }
                if let Some(dir) = &config.state {
                    let _ = write_progress(dir, &progress);
                }
                durable_writes += 1;
            }
            if last_metrics.elapsed() >= Duration::from_millis(250) {
                last_metrics = Instant::now();
                let mut m = metrics.lock().unwrap_or_else(|p| p.into_inner());
                m.set_counts(&events_by_source, &alerts_by_level);
                m.errors = summary.errors;
                m.late_events =
                    late_gone + tasks.values().map(|t| t.engine.counters.late).sum::<u64>();
                m.lag_seconds = crate::metrics::lag_of(exchange.board.watermark());
                m.state_entries =
                    crate::metrics::state_entries(tasks.values().map(|t| t.engine.state_size()));
                m.checkpoint_age_seconds = last_durable.elapsed().as_secs_f64();
                m.checkpoints = durable_writes;
                m.faults = faults;
                m.partitions_owned = Some(tasks.len());
            }
        }
        // Sources stop; the decoding threads see the channel closed and end.
        source_stop.store(true, Ordering::Relaxed);
        drop(rx);
    });
    let _ = thread.join();
    if let Some(s) = server {
        let _ = s.join();
    }
    if let Some(f) = file.as_mut() {
        let _ = f.sync();
    }
    for s in extra.iter_mut() {
        let _ = s.durable();
    }
    exchange.flush();
    // A worker that stops leaves its partitions' latest states to whoever takes them over.
    if let Some((c, _)) = changelog.as_mut() {
        for (p, t) in tasks
            .iter_mut()
            .filter(|(_, t)| t.read_to_end && t.closing.is_none())
        {
            save(*p, t, c, &progress, &mut faults, log);
        }
        if let Err(e) = c.durable() {
            log(&e);
        }
    }
    Ok(summary)
}

/// Writes partition `p`'s state to the changelog, with where its reading resumes.
fn save(
    p: u32,
    t: &mut Task<'_>,
    changelog: &mut crate::changelog::Changelog,
    progress: &BTreeMap<String, i64>,
    faults: &mut u64,
    log: &mut dyn FnMut(&str),
) {
    let key = crate::kafka::partition_key(&t.name);
    let Some(next) = progress.get(key).copied() else {
        return;
    };
    t.saved = Some((Instant::now(), t.closed));
    let saved = crate::saved::Saved {
        next,
        handled: t.handled.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        engine: t.engine.save(),
    };
    match changelog.write(p, &saved) {
        Ok(bytes) => log(&format!(
            "{}: state written to the changelog ({bytes} bytes, reading resumes at offset {next})",
            t.name
        )),
        Err(e) => {
            *faults += 1;
            log(&format!(
                "{}: state not written to the changelog: {e}",
                t.name
            ));
        }
    }
}

/// Moves one partition's state to watermark `wm`: releases correlated matches, and takes the
/// closing of days through its rounds as far as the other partitions allow. `offset`: the
/// partition's next offset (what its state reflects).
fn step(
    p: u32,
    t: &mut Task<'_>,
    wm: i64,
    offset: i64,
    exchange: &mut Exchange,
    out: &mut Vec<Alert>,
    log: &mut dyn FnMut(&str),
) {
    t.engine.release_to(wm, out);
    let target = t.engine.closable(wm);
    // Judged again: for records that came late, or once quiet when another partition's share
    // changed since (a finding may need what it shares: a creator's account, a peer's list).
    let changed = exchange.board.version != t.seen && t.engine.quiet();
    let again = t.closed == Some(target) && (t.engine.rejudge_late() || changed);
    if t.closing.is_none() && (t.closed.is_none_or(|c| target > c) || again) {
        let snap = t.engine.snapshot();
        let share = t.engine.share(&snap, exchange.board.partitions);
        exchange.share(p, target, offset, &share);
        t.closing = Some(Closing {
            day: target,
            snap,
            offset,
            view: None,
            since: Instant::now(),
            said: false,
        });
    }
    let Some(c) = t.closing.as_mut() else { return };
    if !c.said && c.since.elapsed() >= WAIT_SAID_AFTER {
        c.said = true;
        let b = &exchange.board;
        let behind: Vec<String> = (0..b.partitions)
            .filter(|q| match c.view {
                None => b.shares.get(q).is_none_or(|(d, ..)| *d < c.day),
                Some(_) => b.peers.get(q).is_none_or(|(d, ..)| *d < c.day),
            })
            .map(|q| q.to_string())
            .collect();
        log(&format!(
            "{}: closing {} waits for round {} of partition(s) {}",
            t.name,
            cellwarden_telecom::detect::date_of_day(c.day),
            if c.view.is_none() { 1 } else { 2 },
            behind.join(", ")
        ));
    }
    if c.view.is_none() && exchange.board.shared(c.day) {
        let view = View::merge(exchange.board.shares.values().map(|(.., s)| s));
        exchange.peers(p, c.day, c.offset, t.engine.peer_share(&c.snap, &view));
        c.view = Some(view);
    }
    if c.view.is_some() && exchange.board.peered(c.day) {
        let Closing {
            day,
            snap,
            view,
            offset,
            ..
        } = t.closing.take().expect("matched above");
        let mut view = view.expect("checked above");
        view.db = view
            .db
            .with_peers(exchange.board.peers.values().map(|(.., s)| s));
        let before = out.len();
        t.engine.close_partition(day, snap, &view, out);
        if let Some(part) = t.engine.take_scope_part() {
            exchange.scope(p, day, offset, &part);
        }
        t.closed = Some(day);
        t.seen = exchange.board.version;
        log(&format!(
            "{}: days before {} judged with {} partitions' view ({} alert(s))",
            t.name,
            cellwarden_telecom::detect::date_of_day(day),
            exchange.board.partitions,
            out.len() - before
        ));
    }
}

/// An event time (ms) as text, `-` before any.
fn time_text(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or("-".to_owned(), |t| t.to_string())
}

/// Writes `progress.json` in `dir` (a temporary file, then a rename).
fn write_progress(dir: &std::path::Path, progress: &BTreeMap<String, i64>) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(".progress.json.tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec(&serde_json::json!({ "kafka": progress }))?,
    )?;
    std::fs::rename(tmp, dir.join("progress.json"))
}
