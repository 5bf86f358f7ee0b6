//! Runs the pipeline over finite input (`hunt`, `scope`).
//!
//! One reader (the calling thread) turns input files into units (EVTX chunks, JSON record
//! batches) and hands them over a bounded channel to `threads` workers, which decode them into
//! events and give each to their own [`DetectionCore`]. Memory stays bounded by the channel: at
//! most `2 × threads` units wait, plus one in each worker. At the end the workers' cores are
//! merged (in any order with the same result) and finished: correlated matches go to the
//! correlations in one time order across all files, and the stateful analytics are judged.
//! Alerts and errors are then put in a total order (alerts by time, file, record, rule id), so
//! the output is the same whatever the thread count.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cellwarden_event::Alert;
use cellwarden_source::{InputFile, Limits, Mapping, SourceError, Unit, UnitSink, read_input};

use crate::core::{DbSetup, DetectionCore, Detectors, Findings, NetSetup, Stage};

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct HuntConfig {
    /// Worker threads (at least one).
    pub threads: usize,
    /// Size limits of records and lines.
    pub limits: Limits,
    /// Database-access analytics.
    pub db: DbSetup,
    /// Flow analytics.
    pub net: NetSetup,
}

impl Default for HuntConfig {
    fn default() -> Self {
        HuntConfig {
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            limits: Limits::default(),
            db: DbSetup::default(),
            net: NetSetup::default(),
        }
    }
}

/// Counters that can be read while the run goes on (for a progress bar).
#[derive(Debug, Default)]
pub struct Progress {
    /// Input bytes read.
    pub bytes: AtomicU64,
    /// Events decoded.
    pub events: AtomicU64,
    /// Single-event alerts raised.
    pub alerts: AtomicU64,
    /// Input files read to their end.
    pub files_done: AtomicU64,
}

/// What a run produced.
#[derive(Debug)]
pub struct HuntResult {
    /// In output order.
    pub alerts: Vec<Alert>,
    /// Sorted by file and position.
    pub errors: Vec<SourceError>,
    /// Input files.
    pub files: usize,
    /// Events decoded.
    pub events: u64,
    /// Input bytes read.
    pub bytes: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// What the stateful analytics gathered (for the scope report).
    pub findings: Findings,
}

struct Sender<'a> {
    tx: crossbeam_channel::Sender<Unit>,
    errors: Vec<SourceError>,
    progress: &'a Progress,
}

impl UnitSink for Sender<'_> {
    fn unit(&mut self, unit: Unit) {
        // Workers only stop when the channel closes, so a send fails only if they all died.
        let _ = self.tx.send(unit);
    }
    fn error(&mut self, error: SourceError) {
        self.errors.push(error);
    }
    fn progress(&mut self, bytes: u64) {
        self.progress.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// Runs sources → events → detection → alerts over the inputs.
pub fn hunt(
    inputs: &[InputFile],
    mapping: &Mapping,
    detectors: Detectors<'_>,
    config: &HuntConfig,
    progress: &Progress,
) -> HuntResult {
    let start = Instant::now();
    let threads = config.threads.max(1);
    let (tx, rx) = crossbeam_channel::bounded::<Unit>(threads * 2);
    let mut read_errors = Vec::new();
    let worker_out: Vec<WorkerOut> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let rx = rx.clone();
                s.spawn(move || worker(rx, mapping, detectors, progress))
            })
            .collect();
        drop(rx);
        let mut sender = Sender {
            tx,
            errors: Vec::new(),
            progress,
        };
        for input in inputs {
            read_input(input, &config.limits, &mut sender);
            progress.files_done.fetch_add(1, Ordering::Relaxed);
        }
        read_errors = std::mem::take(&mut sender.errors);
        drop(sender);
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut alerts = Vec::new();
    let mut errors = read_errors;
    let mut events = 0;
    let mut core: Option<DetectionCore<'_>> = None;
    for w in worker_out {
        alerts.extend(w.alerts);
        errors.extend(w.errors);
        events += w.events;
        match &mut core {
            Some(c) => c.merge(w.core),
            None => core = Some(w.core),
        }
    }
    let core = core.unwrap_or_else(|| DetectionCore::new(detectors, Stage::All));
    let findings = core.finish(&mut alerts);
    sort_alerts(&mut alerts);
    errors.sort();
    let bytes = progress.bytes.load(Ordering::Relaxed);
    HuntResult {
        alerts,
        errors,
        files: inputs.len(),
        events,
        bytes,
        elapsed: start.elapsed(),
        findings,
    }
}

/// The output order: time (events without one first), file, record, rule id.
pub fn sort_alerts(alerts: &mut [Alert]) {
    alerts.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
}

struct WorkerOut<'a> {
    alerts: Vec<Alert>,
    errors: Vec<SourceError>,
    events: u64,
    core: DetectionCore<'a>,
}

fn worker<'a>(
    rx: crossbeam_channel::Receiver<Unit>,
    mapping: &Mapping,
    detectors: Detectors<'a>,
    progress: &Progress,
) -> WorkerOut<'a> {
    let mut core = DetectionCore::new(detectors, Stage::All);
    let settings = cellwarden_source::evtx_settings();
    let mut alerts = Vec::new();
    let mut errors = Vec::new();
    let mut total = 0;
    for unit in rx {
        let before = alerts.len();
        let n = unit.decode(mapping, &settings, &mut errors, &mut |ev| {
            core.observe(ev, &mut alerts);
        });
        total += n;
        progress.events.fetch_add(n, Ordering::Relaxed);
        progress
            .alerts
            .fetch_add((alerts.len() - before) as u64, Ordering::Relaxed);
    }
    WorkerOut {
        alerts,
        errors,
        events: total,
        core,
    }
}
