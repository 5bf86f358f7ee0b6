//! Runs the pipeline over finite input (`hunt`).
//!
//! One reader (the calling thread) turns input files into units (EVTX chunks, JSON record
//! batches) and hands them over a bounded channel to `threads` workers, which decode them into
//! events and evaluate the rules. Memory stays bounded by the channel: at most `2 × threads`
//! units wait, plus one in each worker. Alerts and errors are put in a total order at the end
//! (alerts by time, file, record, rule id), so the output is the same whatever the thread
//! count. Matches of rules that correlation rules name are put in time order across all files
//! and fed to the correlation state after the parallel stage. Database audit events are
//! also reduced, per worker, to access aggregates (merged in any order with the same result),
//! on which the database-access detections run at the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cellwarden_event::Alert;
use cellwarden_sigma::RuleSet;
use cellwarden_source::{InputFile, Limits, Mapping, SourceError, Unit, UnitSink, read_input};
use cellwarden_telecom::access::{Aggregates, Collector, Selection};
use cellwarden_telecom::detect::{DbConfig, Judgement, Watchlist, judge};
use cellwarden_telecom::schema::Schema;

/// Settings of the database-access analytics.
#[derive(Debug, Clone, Default)]
pub struct DbSetup {
    pub schema: Arc<Schema>,
    pub watchlist: Arc<Watchlist>,
    pub selection: Arc<Selection>,
    pub config: DbConfig,
    /// Parse every statement instead of reusing shapes by fingerprint (for measurements).
    pub no_cache: bool,
    /// Skip the database analytics (for measuring the sources alone).
    pub disabled: bool,
}

/// Settings of the flow analytics.
#[derive(Debug, Clone, Default)]
pub struct NetSetup {
    pub assets: Arc<cellwarden_net::Assets>,
    pub config: cellwarden_net::NetConfig,
    /// Skip the flow analytics (for measuring the sources alone).
    pub disabled: bool,
}

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct HuntConfig {
    pub threads: usize,
    pub limits: Limits,
    pub db: DbSetup,
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

/// What the database-access analytics found.
#[derive(Debug, Default)]
pub struct DbResult {
    pub aggregates: Aggregates,
    pub judgement: Judgement,
}

/// Counters that can be read while the run goes on (for a progress bar).
#[derive(Debug, Default)]
pub struct Progress {
    pub bytes: AtomicU64,
    pub events: AtomicU64,
    pub alerts: AtomicU64,
    pub files_done: AtomicU64,
}

/// What a run produced.
#[derive(Debug)]
pub struct HuntResult {
    /// In output order.
    pub alerts: Vec<Alert>,
    /// Sorted by file and position.
    pub errors: Vec<SourceError>,
    pub files: usize,
    pub events: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    pub db: DbResult,
    /// Flow aggregates (for joining transfers to scope).
    pub net: cellwarden_net::FlowAggregates,
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

/// Runs sources → events → rules → alerts over the inputs.
pub fn hunt(
    inputs: &[InputFile],
    mapping: &Mapping,
    rules: &RuleSet,
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
                s.spawn(move || worker(rx, mapping, rules, config, progress))
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
    let mut matches = Vec::new();
    let mut aggregates = Aggregates::default();
    let mut flows = cellwarden_net::FlowAggregates::default();
    for w in worker_out {
        alerts.extend(w.alerts);
        errors.extend(w.errors);
        matches.extend(w.matches);
        events += w.events;
        aggregates.merge(w.db);
        flows.merge(w.net);
    }
    flows.finish();
    alerts.extend(cellwarden_net::judge(
        &flows,
        &config.net.assets,
        &config.net.config,
    ));
    aggregates.finish();
    let judgement = judge(&aggregates, &config.db.watchlist, &config.db.config);
    alerts.extend(judgement.alerts.iter().cloned());
    // Correlations see the matches of the rules they name in one time order, across files.
    matches.sort_by(|(ra, a), (rb, b)| {
        (a.timestamp, &a.origin.file, a.origin.record, ra).cmp(&(
            b.timestamp,
            &b.origin.file,
            b.origin.record,
            rb,
        ))
    });
    let mut run = rules.correlation_run();
    for (r, ev) in &matches {
        run.push(*r as u32, ev, &mut alerts);
    }
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
        db: DbResult {
            aggregates,
            judgement,
        },
        net: flows,
    }
}

/// The output order: time (events without one first), file, record, rule id.
pub fn sort_alerts(alerts: &mut [Alert]) {
    alerts.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
}

struct WorkerOut {
    alerts: Vec<Alert>,
    errors: Vec<SourceError>,
    /// Matches of rules that correlations use: (rule, event).
    matches: Vec<(usize, cellwarden_event::Event<'static>)>,
    events: u64,
    db: Aggregates,
    net: cellwarden_net::FlowAggregates,
}

fn worker(
    rx: crossbeam_channel::Receiver<Unit>,
    mapping: &Mapping,
    rules: &RuleSet,
    config: &HuntConfig,
    progress: &Progress,
) -> WorkerOut {
    let db = &config.db;
    let mut flows = cellwarden_net::FlowCollector::new(
        Arc::clone(&config.net.assets),
        config.net.config.collect_limits(),
    );
    let mut collector = Collector::with_analyzer(
        Arc::clone(&db.schema),
        Arc::clone(&db.selection),
        db.config.bulk_min_rows,
        cellwarden_telecom::sql::Analyzer::new(!db.no_cache),
    );
    let mut matches = Vec::new();
    let settings = cellwarden_source::evtx_settings();
    let mut scratch = rules.scratch();
    let mut hits = Vec::new();
    let mut alerts = Vec::new();
    let mut errors = Vec::new();
    let mut total = 0;
    for unit in rx {
        let before = alerts.len();
        let n = unit.decode(mapping, &settings, &mut errors, &mut |ev| {
            if !db.disabled {
                collector.observe(&ev);
            }
            if !config.net.disabled {
                flows.observe(&ev);
            }
            rules.matches(&ev, &mut scratch, &mut hits);
            if hits.is_empty() {
                return;
            }
            let owned = ev.into_owned();
            for &r in &hits {
                if rules.rule_correlated(r) {
                    matches.push((r, owned.clone()));
                }
                if rules.rule_emits(r) {
                    alerts.push(Alert {
                        rule: Arc::clone(rules.rule_info(r)),
                        level: rules.rule_level(r),
                        event: owned.clone(),
                        correlation: None,
                    });
                }
            }
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
        matches,
        events: total,
        db: collector.into_aggregates(),
        net: flows.into_aggregates(),
    }
}
