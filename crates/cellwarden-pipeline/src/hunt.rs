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

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cellwarden_event::{Alert, Event};
use cellwarden_source::{InputFile, Limits, Mapping, SourceError, Unit, UnitSink, read_input};

use crate::alerts::{AlertSet, Spill, alert_bytes, sort_alerts};
use crate::core::{DbSetup, DetectionCore, Detectors, Findings, NetSetup, Stage};
use crate::sequence::{Sequencer, Turn};

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
    /// Memory for single-event alerts (estimated bytes, shared by the workers): past it a
    /// worker sorts its alerts and writes them to a temporary file, merged at output.
    pub alert_memory: usize,
}

/// The default [`HuntConfig::alert_memory`]: 256 MiB.
pub const ALERT_MEMORY: usize = 256 << 20;

impl Default for HuntConfig {
    fn default() -> Self {
        HuntConfig {
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            limits: Limits::default(),
            db: DbSetup::default(),
            net: NetSetup::default(),
            alert_memory: ALERT_MEMORY,
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
    /// In output order (in memory, or partly in sorted runs on disk).
    pub alerts: AlertSet,
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

/// Merges the workers' cores pairwise, the merges of a round each on a thread of its own:
/// one after another on one thread, merging large states was the run's serial tail, growing
/// with the number of workers. Pairs keep the workers' order (the result does not depend on
/// the order of merging anyway).
fn merge_cores(mut cores: Vec<DetectionCore<'_>>) -> Option<DetectionCore<'_>> {
    while cores.len() > 1 {
        let mut pairs = Vec::with_capacity(cores.len().div_ceil(2));
        let mut it = cores.into_iter();
        while let Some(a) = it.next() {
            pairs.push((a, it.next()));
        }
        cores = std::thread::scope(|s| {
            let merged: Vec<_> = pairs
                .into_iter()
                .map(|(mut a, b)| {
                    s.spawn(move || {
                        if let Some(b) = b {
                            a.merge(b);
                        }
                        a
                    })
                })
                .collect();
            merged
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
    }
    cores.pop()
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
    let spill = Arc::new(Spill::default());
    let budget = config.alert_memory / threads;
    let sequencer = Sequencer::default();
    let worker_out: Vec<WorkerOut> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let rx = rx.clone();
                let spill = Arc::clone(&spill);
                let sequencer = &sequencer;
                s.spawn(move || {
                    let shared = Shared {
                        mapping,
                        progress,
                        spill: &spill,
                        sequencer,
                        budget,
                    };
                    worker(rx, detectors, &shared)
                })
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
    let mut spill_errors = Vec::new();
    let mut events = 0;
    let mut cores = Vec::with_capacity(worker_out.len());
    for w in worker_out {
        alerts.extend(w.alerts);
        errors.extend(w.errors);
        spill_errors.extend(w.spill_error);
        events += w.events;
        cores.push(w.core);
    }
    let core = merge_cores(cores).unwrap_or_else(|| DetectionCore::new(detectors, Stage::All));
    let findings = core.finish(&mut alerts);
    name_servers(inputs, &mut alerts);
    errors.extend(spill_errors);
    errors.sort();
    let bytes = progress.bytes.load(Ordering::Relaxed);
    HuntResult {
        alerts: AlertSet::with_spill(alerts, spill),
        errors,
        files: inputs.len(),
        events,
        bytes,
        elapsed: start.elapsed(),
        findings,
    }
}

/// The analytics' alerts point at the log line of their evidence; a database log that names
/// no host got one from the case (host map, folder): that host is the database server.
fn name_servers(inputs: &[InputFile], alerts: &mut [Alert]) {
    let hosts: std::collections::HashMap<&str, &Arc<str>> = inputs
        .iter()
        .filter_map(|i| Some((&*i.name, i.host.as_ref()?)))
        .collect();
    for a in alerts.iter_mut().filter(|a| a.event.host.is_none()) {
        if let Some(h) = hosts.get(&*a.event.origin.file) {
            a.event.host = Some(std::borrow::Cow::Owned(h.to_string()));
        }
    }
}

struct WorkerOut<'a> {
    alerts: Vec<Alert>,
    /// Writing a run failed: its alerts stayed in memory.
    spill_error: Option<SourceError>,
    errors: Vec<SourceError>,
    events: u64,
    core: DetectionCore<'a>,
}

/// What the workers share.
struct Shared<'s> {
    mapping: &'s Mapping,
    progress: &'s Progress,
    spill: &'s Spill,
    sequencer: &'s Sequencer,
    /// Alert memory per worker.
    budget: usize,
}

fn worker<'a>(
    rx: crossbeam_channel::Receiver<Unit>,
    detectors: Detectors<'a>,
    shared: &Shared<'_>,
) -> WorkerOut<'a> {
    let Shared {
        mapping,
        progress,
        spill,
        sequencer,
        budget,
    } = *shared;
    let mut core = DetectionCore::new(detectors, Stage::All);
    let settings = cellwarden_source::evtx_settings();
    let mut alerts = Vec::new();
    let mut errors = Vec::new();
    let mut total = 0;
    let mut held = 0usize;
    let mut spill_error = None;
    for unit in rx {
        let before = alerts.len();
        let n = match unit.order() {
            Some(order) => {
                // Records that may repeat a statement are decided in the input's order;
                // those that must wait for the units before are held until their turn comes
                // (mid-unit when the unit before ends first, else at this unit's end).
                let mut turn = Turn::new(sequencer, order);
                let mut held: Vec<Event<'_>> = Vec::new();
                let n = unit.decode_text(mapping, &mut errors, &mut |ev| {
                    let decided = match core.fold_key(&ev) {
                        Some(key) => match turn.record(key) {
                            Some(repeats) => Some(repeats),
                            None => return held.push(ev),
                        },
                        None => None,
                    };
                    core.observe_decided(&ev, decided, &mut alerts);
                    if let Some(ready) = turn.ready() {
                        for (ev, repeats) in held.drain(..).zip(ready) {
                            core.observe_decided(&ev, Some(repeats), &mut alerts);
                        }
                    }
                });
                for (ev, repeats) in held.iter().zip(turn.finish()) {
                    core.observe_decided(ev, Some(repeats), &mut alerts);
                }
                n
            }
            None => unit.decode(mapping, &settings, &mut errors, &mut |ev| {
                core.observe(&ev, &mut alerts);
            }),
        };
        total += n;
        progress.events.fetch_add(n, Ordering::Relaxed);
        progress
            .alerts
            .fetch_add((alerts.len() - before) as u64, Ordering::Relaxed);
        held += alerts[before..].iter().map(alert_bytes).sum::<usize>();
        if held > budget && spill_error.is_none() {
            sort_alerts(&mut alerts);
            match spill.write(&alerts) {
                Ok(()) => alerts.clear(),
                Err(e) => {
                    // Kept in memory; said once.
                    spill_error = Some(SourceError::new(
                        &Arc::from("alerts"),
                        cellwarden_source::Position::File,
                        cellwarden_source::ErrorKind::Io,
                        format!(
                            "cannot write alerts to a temporary file ({e}); they are kept in memory"
                        ),
                    ));
                }
            }
            held = 0;
        }
    }
    // The state becomes aggregates here, on the worker's thread, not one after another on
    // the main thread.
    core.seal();
    WorkerOut {
        alerts,
        spill_error,
        errors,
        events: total,
        core,
    }
}
