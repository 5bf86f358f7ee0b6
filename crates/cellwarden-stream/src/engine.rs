//! The live detection engine: the pipeline's detectors fed one unit at a time.
//!
//! Sigma rules raise alerts as events arrive. Matches for correlation rules wait in a reorder
//! buffer until the watermark passes them, so correlations see them in the same time order as
//! `hunt` does. The database-access and flow analytics gather the same aggregates as `hunt`
//! and are judged each time a UTC day closes (the watermark passes the day's end plus the
//! allowed lateness); alerts of closed days that were not raised before are emitted.
//!
//! The watermark is the minimum over active sources of the latest event time each has
//! delivered; a source that has caught up (end of file, end of partition) does not hold it
//! back.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use cellwarden_event::{Alert, Event};
use cellwarden_pipeline::{DbSetup, NetSetup};
use cellwarden_sigma::RuleSet;
use cellwarden_source::{Mapping, SourceError, Unit};
use cellwarden_telecom::access::Collector;

const DAY_MS: i64 = 86_400_000;

/// Windows and bounds of the live state (see `docs/watch.md`).
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// How late (event time) a correlated match may arrive and still be ordered correctly.
    pub correlation_lateness_ms: i64,
    /// How long after a UTC day ends (event time) it is judged.
    pub close_lateness_ms: i64,
    /// Days of database and flow aggregates kept for baselines.
    pub retention_days: i32,
    /// Most correlated matches waiting for the watermark; beyond it the oldest are released.
    pub max_pending: usize,
    /// Most keys of day alerts remembered (to raise each once).
    pub max_emitted: usize,
    /// Most database and flow aggregate entries kept: past it, whole oldest days go first.
    pub max_entries: usize,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            correlation_lateness_ms: 5 * 60_000,
            close_lateness_ms: 60 * 60_000,
            retention_days: 35,
            max_pending: 200_000,
            max_emitted: 1_000_000,
            max_entries: 4_000_000,
        }
    }
}

/// What the engine holds, for metrics and the documented bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateSize {
    pub account_days: usize,
    pub subscriber_days: usize,
    pub pair_days: usize,
    pub conn_series: usize,
    pub correlation_groups: usize,
    pub pending_matches: usize,
    pub emitted_keys: usize,
}

impl StateSize {
    /// Entries of every kind together.
    pub fn entries(&self) -> usize {
        self.account_days
            + self.subscriber_days
            + self.pair_days
            + self.conn_series
            + self.correlation_groups
            + self.pending_matches
            + self.emitted_keys
    }
}

/// Counters of what went through the engine.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    pub events: u64,
    pub alerts: BTreeMap<&'static str, u64>,
    /// Events older than the last closed day (aggregated, judged at the next close).
    pub late: u64,
    /// Records that could not be read.
    pub errors: u64,
    /// Days dropped early to stay within the entry bound.
    pub evicted_days: u64,
}

/// Which part of the pipeline a process runs (see `docs/watch.md`, scale-out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stage {
    /// Everything.
    #[default]
    All,
    /// Parsing and single-event rules; records that feed stateful analytics are handed on.
    Parse,
    /// Stateful analytics (correlations, database and flow analytics) over handed-on records.
    State,
}

#[derive(Debug, Clone, Copy)]
struct Clock {
    latest: i64,
    idle: bool,
}

type PendingKey = (i64, Arc<str>, u64, u32);

/// Live detection state over one stream of units.
pub struct Engine<'r> {
    rules: &'r RuleSet,
    mapping: &'r Mapping,
    db: &'r DbSetup,
    net: &'r NetSetup,
    config: LiveConfig,
    stage: Stage,
    settings: Arc<evtx::ParserSettings>,
    scratch: cellwarden_sigma::Scratch,
    hits: Vec<usize>,
    collector: Collector,
    flows: cellwarden_net::FlowCollector,
    corr: cellwarden_sigma::CorrelationRun<'r>,
    pending: BTreeMap<PendingKey, Event<'static>>,
    clocks: HashMap<Arc<str>, Clock>,
    /// Correlated matches before this time (ms) have been released.
    released: i64,
    /// The first UTC day not judged yet.
    open_day: Option<i32>,
    /// The earliest event time seen (ms).
    earliest: i64,
    emitted: HashSet<String>,
    emitted_order: VecDeque<String>,
    pub counters: Counters,
}

impl<'r> Engine<'r> {
    pub fn new(
        rules: &'r RuleSet,
        mapping: &'r Mapping,
        db: &'r DbSetup,
        net: &'r NetSetup,
        config: LiveConfig,
        stage: Stage,
    ) -> Self {
        Engine {
            rules,
            mapping,
            db,
            net,
            config,
            stage,
            settings: cellwarden_source::evtx_settings(),
            scratch: rules.scratch(),
            hits: Vec::new(),
            collector: Collector::with_analyzer(
                Arc::clone(&db.schema),
                Arc::clone(&db.selection),
                db.config.bulk_min_rows,
                cellwarden_telecom::sql::Analyzer::new(!db.no_cache),
            ),
            flows: cellwarden_net::FlowCollector::new(
                Arc::clone(&net.assets),
                net.config.collect_limits(),
            ),
            corr: rules.correlation_run(),
            pending: BTreeMap::new(),
            clocks: HashMap::new(),
            released: i64::MIN,
            open_day: None,
            earliest: i64::MAX,
            emitted: HashSet::new(),
            emitted_order: VecDeque::new(),
            counters: Counters::default(),
        }
    }

    /// Decodes a unit and runs every detector on its events. Sigma alerts go to `out` at once;
    /// the records of events that changed the analytics' state are added to `stateful` (their
    /// origin record numbers), so the caller can journal them. Returns the number of events.
    /// `clock` names the source whose progress the events show (default: their file).
    pub fn process(
        &mut self,
        unit: Unit,
        clock: Option<&Arc<str>>,
        out: &mut Vec<Alert>,
        errors: &mut Vec<SourceError>,
        stateful: &mut Vec<(u64, i64)>,
    ) -> u64 {
        let stage = self.stage;
        let Engine {
            rules,
            mapping,
            db,
            net,
            settings,
            scratch,
            hits,
            collector,
            flows,
            pending,
            clocks,
            open_day,
            earliest,
            counters,
            ..
        } = self;
        let errors_before = errors.len();
        let n = unit.decode(mapping, settings, errors, &mut |ev| {
            let mut keep = false;
            if !db.disabled && cellwarden_telecom::access::is_database_event(&ev) {
                if stage != Stage::Parse {
                    collector.observe(&ev);
                }
                keep = true;
            }
            if !net.disabled {
                keep |= if stage == Stage::Parse {
                    cellwarden_net::collect::is_flow_event(&ev)
                } else {
                    flows.observe(&ev)
                };
            }
            if let Some(t) = ev.timestamp {
                let ms = t.as_millisecond();
                let source = clock.unwrap_or(&ev.origin.file);
                let c = clocks.entry(Arc::clone(source)).or_insert(Clock {
                    latest: ms,
                    idle: false,
                });
                c.latest = c.latest.max(ms);
                c.idle = false;
                *earliest = (*earliest).min(ms);
                if open_day.is_some_and(|d| ms.div_euclid(DAY_MS) < d as i64) && keep {
                    counters.late += 1;
                }
            }
            rules.matches(&ev, scratch, hits);
            if !hits.is_empty() {
                let owned = ev.into_owned();
                for &r in hits.iter() {
                    if rules.rule_correlated(r) {
                        keep = true;
                        if stage == Stage::Parse {
                            continue;
                        }
                        let ts = time_ms(&owned);
                        pending.insert(
                            (
                                ts,
                                Arc::clone(&owned.origin.file),
                                owned.origin.record,
                                r as u32,
                            ),
                            owned.clone(),
                        );
                    }
                    if rules.rule_emits(r) && (stage != Stage::State || rules.rule_correlated(r)) {
                        let level = rules.rule_level(r);
                        *counters.alerts.entry(level.as_str()).or_default() += 1;
                        out.push(Alert {
                            rule: Arc::clone(rules.rule_info(r)),
                            level,
                            event: owned.clone(),
                            correlation: None,
                        });
                    }
                }
                if keep {
                    stateful.push((owned.origin.record, time_ms(&owned)));
                }
            } else if keep {
                stateful.push((ev.origin.record, time_ms(&ev)));
            }
        });
        self.counters.events += n;
        self.counters.errors += (errors.len() - errors_before) as u64;
        n
    }

    /// Announces a source before it delivers: until it delivers or catches up, the watermark
    /// waits for it.
    pub fn source_known(&mut self, file: &str) {
        let c = self.clocks.entry(Arc::from(file)).or_insert(Clock {
            latest: i64::MIN,
            idle: false,
        });
        c.idle = false;
    }

    /// Marks a source as caught up (it stops holding the watermark back until it delivers
    /// again).
    pub fn source_idle(&mut self, file: &str) {
        if let Some(c) = self.clocks.get_mut(file) {
            c.idle = true;
        }
    }

    /// The current watermark (ms), if any source delivered a timed event.
    pub fn watermark(&self) -> Option<i64> {
        let active = self.clocks.values().filter(|c| !c.idle).map(|c| c.latest);
        let wm = match active.min() {
            Some(m) => m,
            None => self.clocks.values().map(|c| c.latest).max()?,
        };
        (wm != i64::MIN).then_some(wm)
    }

    /// Moves state forward to the current watermark: releases correlated matches and judges
    /// closed days. Returns the watermark used when anything moved (to be journaled, so a
    /// replay moves at the same points).
    pub fn advance(&mut self, out: &mut Vec<Alert>) -> Option<i64> {
        let wm = self.watermark()?;
        self.advance_to(wm, out).then_some(wm)
    }

    /// Moves state forward to watermark `wm` (ms); true when anything moved.
    pub fn advance_to(&mut self, wm: i64, out: &mut Vec<Alert>) -> bool {
        let mut moved = false;
        let release = wm.saturating_sub(self.config.correlation_lateness_ms);
        let overflow = self.pending.len() > self.config.max_pending;
        if release > self.released || overflow {
            moved |= self.release(release, out);
        }
        let closable = wm
            .saturating_sub(self.config.close_lateness_ms)
            .div_euclid(DAY_MS) as i32;
        let first = self.first_day();
        if let Some(first) = first {
            let open = self.open_day.unwrap_or(first);
            if closable > open {
                self.judge(Some(closable), out);
                self.open_day = Some(closable);
                let mut keep_from = closable - self.config.retention_days;
                self.collector.evict_before(keep_from);
                self.flows.evict_before(keep_from);
                // Over the count bound: the oldest days go, down to the open day.
                while self.aggregate_entries() > self.config.max_entries && keep_from < closable {
                    keep_from += 1;
                    self.collector.evict_before(keep_from);
                    self.flows.evict_before(keep_from);
                    self.counters.evicted_days += 1;
                }
                moved = true;
            } else if self.open_day.is_none() {
                self.open_day = Some(open);
            }
        }
        moved
    }

    /// Releases everything and judges every day (the end of a finite stream).
    pub fn finish(&mut self, out: &mut Vec<Alert>) {
        self.release(i64::MAX, out);
        self.judge(None, out);
    }

    /// Days after the first day of history before its findings are final.
    fn warmup_days(&self) -> i32 {
        self.db.config.export_schedule_days as i32 + 1
    }

    fn first_day(&self) -> Option<i32> {
        (self.earliest != i64::MAX).then(|| self.earliest.div_euclid(DAY_MS) as i32)
    }

    fn release(&mut self, before: i64, out: &mut Vec<Alert>) -> bool {
        let mut moved = false;
        let excess = self.pending.len().saturating_sub(self.config.max_pending);
        let mut taken = 0;
        while let Some(entry) = self.pending.first_entry() {
            if entry.key().0 >= before && taken >= excess {
                break;
            }
            let ((ts, _, _, rule), ev) = entry.remove_entry();
            taken += 1;
            let before_len = out.len();
            self.corr.push(rule, &ev, out);
            self.count_alerts(&out[before_len..]);
            self.released = self.released.max(ts);
            moved = true;
        }
        if before != i64::MAX {
            self.released = self.released.max(before);
        }
        moved
    }

    fn count_alerts(&mut self, alerts: &[Alert]) {
        for a in alerts {
            *self.counters.alerts.entry(a.level.as_str()).or_default() += 1;
        }
    }

    /// Judges the aggregates; emits alerts of days before `until` (all days when `None`) not
    /// emitted before.
    fn judge(&mut self, until: Option<i32>, out: &mut Vec<Alert>) {
        let mut found = Vec::new();
        if !self.db.disabled {
            let agg = self.collector.snapshot();
            found.extend(
                cellwarden_telecom::detect::judge(&agg, &self.db.watchlist, &self.db.config).alerts,
            );
        }
        if !self.net.disabled {
            let flows = self.flows.snapshot();
            found.extend(cellwarden_net::judge(
                &flows,
                &self.net.assets,
                &self.net.config,
            ));
        }
        // The first days of history are judged once enough days follow them: whether an
        // export seen from the first day is a standing schedule needs the days after it.
        let warm_until = self.first_day().map(|d| d + self.warmup_days());
        for a in found {
            let day = a
                .event
                .timestamp
                .map(|t| t.as_millisecond().div_euclid(DAY_MS) as i32);
            if let (Some(u), Some(d)) = (until, day)
                && (d >= u || warm_until.is_some_and(|w| d < w && u < w))
            {
                continue;
            }
            let key = day_key(&a);
            if self.emitted.contains(&key) {
                continue;
            }
            self.remember(key);
            *self.counters.alerts.entry(a.level.as_str()).or_default() += 1;
            out.push(a);
        }
    }

    fn remember(&mut self, key: String) {
        self.emitted.insert(key.clone());
        self.emitted_order.push_back(key);
        while self.emitted_order.len() > self.config.max_emitted {
            if let Some(old) = self.emitted_order.pop_front() {
                self.emitted.remove(&old);
            }
        }
    }

    fn aggregate_entries(&self) -> usize {
        let (a, b) = self.collector.size();
        let (c, d) = self.flows.size();
        a + b + c + d
    }

    pub fn state_size(&self) -> StateSize {
        let (account_days, subscriber_days) = self.collector.size();
        let (pair_days, conn_series) = self.flows.size();
        StateSize {
            account_days,
            subscriber_days,
            pair_days,
            conn_series,
            correlation_groups: self.corr.groups(),
            pending_matches: self.pending.len(),
            emitted_keys: self.emitted.len(),
        }
    }

    /// Per-source latest event times and the released and judged points, for the checkpoint.
    pub fn clocks(&self) -> (Vec<(String, i64)>, i64, Option<i32>) {
        let mut c: Vec<(String, i64)> = self
            .clocks
            .iter()
            .filter(|(_, c)| c.latest != i64::MIN)
            .map(|(k, c)| (k.to_string(), c.latest))
            .collect();
        c.sort();
        (c, self.released, self.open_day)
    }

    /// Restores the clocks a checkpoint saved (after the journal was replayed).
    pub fn restore_clocks(&mut self, clocks: &[(String, i64)]) {
        for (k, t) in clocks {
            let c = self.clocks.entry(Arc::from(k.as_str())).or_insert(Clock {
                latest: *t,
                idle: true,
            });
            c.latest = c.latest.max(*t);
            c.idle = true;
        }
    }

    /// The first day whose aggregates are kept (journal entries before it can go).
    pub fn kept_from_ms(&self) -> Option<i64> {
        self.open_day
            .map(|d| (d - self.config.retention_days) as i64 * DAY_MS)
    }
}

fn time_ms(ev: &Event<'_>) -> i64 {
    ev.timestamp.map(|t| t.as_millisecond()).unwrap_or(0)
}

/// Identity of a day alert: its key and its day (one finding per day).
fn day_key(a: &Alert) -> String {
    format!(
        "{}|{}",
        a.key(),
        a.event
            .timestamp
            .map(|t| t.as_millisecond().div_euclid(DAY_MS))
            .unwrap_or(0)
    )
}
