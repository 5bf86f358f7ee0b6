//! The live detection engine: the pipeline's detection core fed one unit at a time.
//!
//! Sigma rules raise alerts as events arrive. Matches for correlation rules wait in a reorder
//! buffer until the watermark passes them, so correlations see them in the same time order as
//! `hunt` does; matches of records that came after the watermark passed them (late records)
//! go at once. The database-access and flow analytics gather the same aggregates as `hunt`
//! and are judged each time a UTC day closes (the watermark passes the day's end plus the
//! allowed lateness); alerts of closed days that were not raised before are emitted.
//!
//! Reading a backlog (more input already waiting), closing days are judged together, once the
//! input is caught up or after [`MAX_DEFER`], as long as closing them would forget no day
//! (before the retention window is full and within the entry bound): the state is then the
//! same whenever it is judged, and judging it once gives the alerts judging it day by day
//! gives (`hunt` judges once, at the end). Once days would be forgotten, each day is judged as
//! it closes.
//!
//! The watermark is the minimum over active sources of the latest event time each has
//! delivered; a source that has caught up (end of file, end of partition) does not hold it
//! back.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use cellwarden_event::Alert;
use cellwarden_pipeline::core::CoreSize;
use cellwarden_pipeline::{DetectionCore, Detectors, Snapshot, Stage, Uses, View};
use cellwarden_source::{Mapping, SourceError, Unit};

use crate::source::Work;
use cellwarden_telecom::exposure::Exposure;

const DAY_MS: i64 = 86_400_000;

/// A partition's part of the scope report, with the transfers its flows saw (see
/// [`cellwarden_pipeline::scope::part`]).
pub type ScopePart = (Exposure, Vec<cellwarden_telecom::exposure::TransferOut>);

/// Closed days are judged again for records that arrived late once no record has come for
/// this long.
pub const REJUDGE_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Longest time closed days wait to be judged while a backlog is read.
pub const MAX_DEFER: std::time::Duration = std::time::Duration::from_secs(30);

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
    /// Assemble the scope report each time days are judged (see [`Engine::take_exposure`]).
    pub scope: bool,
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
            scope: false,
        }
    }
}

/// Counters of what went through the engine.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Events decoded.
    pub events: u64,
    /// Alerts raised, by level.
    pub alerts: BTreeMap<&'static str, u64>,
    /// Events older than the last closed day (aggregated, judged at the next close).
    pub late: u64,
    /// Records that could not be read.
    pub errors: u64,
    /// Days dropped early to stay within the entry bound.
    pub evicted_days: u64,
}

#[derive(Debug, Clone, Copy)]
struct Clock {
    latest: i64,
    idle: bool,
}

/// A record that feeds stateful detection, as the parse stage hands it on (or the journal
/// keeps it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handed {
    /// Record number in its source.
    pub record: u64,
    /// Event time (ms; 0 when none).
    pub time: i64,
    /// It feeds the database or flow analytics.
    pub aggregates: bool,
    /// It feeds correlations.
    pub correlation: bool,
    /// The hash of the entity whose aggregates it feeds (parse stage).
    pub entity: Option<u64>,
}

/// Live detection state over one stream of units.
pub struct Engine<'r> {
    mapping: &'r Mapping,
    config: LiveConfig,
    settings: Arc<evtx::ParserSettings>,
    core: DetectionCore<'r>,
    clocks: HashMap<Arc<str>, Clock>,
    /// Correlated matches before this time (ms) have been released.
    released: i64,
    /// The first UTC day not judged yet.
    open_day: Option<i32>,
    /// The scope report of the last judging, until taken.
    exposure: Option<Exposure>,
    /// A partition's part of the scope report at its last judging, until taken.
    scope_part: Option<ScopePart>,
    /// Records of closed days arrived since the last judging.
    late_pending: bool,
    /// When records last came in.
    fed_at: Instant,
    /// Since when closed days wait to be judged (a backlog being read).
    deferred_since: Option<Instant>,
    /// What went through the engine.
    pub counters: Counters,
}

impl<'r> Engine<'r> {
    /// An engine with empty state.
    pub fn new(
        detectors: Detectors<'r>,
        mapping: &'r Mapping,
        config: LiveConfig,
        stage: Stage,
    ) -> Self {
        Engine {
            mapping,
            config,
            settings: cellwarden_source::evtx_settings(),
            core: DetectionCore::new(detectors, stage),
            clocks: HashMap::new(),
            released: i64::MIN,
            open_day: None,
            exposure: None,
            scope_part: None,
            late_pending: false,
            fed_at: Instant::now(),
            deferred_since: None,
            counters: Counters::default(),
        }
    }

    /// Decodes a unit and runs every detector on its events. Sigma alerts go to `out` at once;
    /// the records of events that changed the analytics' state are added to `stateful` (their
    /// origin record numbers), so the caller can journal them. Returns the number of events,
    /// and a text unit back (with its decoded events, which the caller may drop on another
    /// thread) so its records can be journaled or handed on without a copy; an EVTX chunk is
    /// consumed. `clock` names the source whose progress the events show (default: their
    /// file).
    pub fn process(
        &mut self,
        unit: crate::source::Work,
        clock: Option<&Arc<str>>,
        uses: Uses,
        out: &mut Vec<Alert>,
        errors: &mut Vec<SourceError>,
        stateful: &mut Vec<Handed>,
    ) -> (u64, Option<Work>) {
        self.core.set_uses(uses);
        let Engine {
            mapping,
            settings,
            core,
            clocks,
            open_day,
            counters,
            late_pending,
            ..
        } = self;
        let errors_before = errors.len();
        let mut each = |ev: &cellwarden_event::Event<'_>| {
            let record = ev.origin.record;
            let time = ev.timestamp.map(|t| t.as_millisecond());
            if let Some(ms) = time {
                tick(clocks, clock.unwrap_or(&ev.origin.file), ms);
            }
            let before = out.len();
            let fed = core.observe(ev, out);
            for a in &out[before..] {
                *counters.alerts.entry(a.level.as_str()).or_default() += 1;
            }
            if fed.aggregates
                && let Some(ms) = time
                && open_day.is_some_and(|d| ms.div_euclid(DAY_MS) < d as i64)
            {
                counters.late += 1;
                *late_pending = true;
            }
            if fed.stateful() {
                stateful.push(Handed {
                    record,
                    time: time.unwrap_or(0),
                    aggregates: fed.aggregates,
                    correlation: fed.correlation,
                    entity: fed.entity,
                });
            }
        };
        let (n, spent) = match unit {
            Work::Unit(unit @ Unit::Evtx { .. }) => (
                unit.decode(mapping, settings, errors, &mut |ev| each(&ev)),
                None,
            ),
            Work::Unit(unit) => (
                unit.decode_text(mapping, errors, &mut |ev| each(&ev)),
                Some(Work::Unit(unit)),
            ),
            Work::Decoded(mut d) => {
                errors.append(&mut d.errors);
                (d.events(&mut each), Some(Work::Decoded(d)))
            }
        };
        self.fed_at = Instant::now();
        self.counters.events += n;
        self.counters.errors += (errors.len() - errors_before) as u64;
        (n, spent)
    }
    /// Announces a source before it delivers: until it delivers or catches up, the watermark
    /// waits for it.
    pub fn source_known(&mut self, file: &str) {
        // A partition whose state was restored knows the sources read through it: their
        // clocks say where they are (a clock of the partition itself would hold the
        // watermark back for ever, as none of its sources is new).
        if self
            .clocks
            .keys()
            .any(|k| k.len() > file.len() && of_source(k, file))
        {
            return;
        }
        let c = self.clocks.entry(Arc::from(file)).or_insert(Clock {
            latest: i64::MIN,
            idle: false,
        });
        c.idle = false;
    }

    /// Moves the clock of `source` (a source read through a partition of handed-on records)
    /// to `ms` without events: the parse stage says how far a source went through partitions
    /// it handed no record on to.
    pub fn mark(&mut self, source: &Arc<str>, ms: i64) {
        tick(&mut self.clocks, source, ms);
    }

    /// Marks a source as caught up (it stops holding the watermark back until it delivers
    /// again). For a partition of handed-on records, every source read through it.
    pub fn source_idle(&mut self, file: &str) {
        for (k, c) in self.clocks.iter_mut() {
            if of_source(k, file) {
                c.idle = true;
            }
        }
    }

    /// Where source `name` (with the sources read through it) is: the watermark over them
    /// (`i64::MIN` before any event), and whether all have caught up.
    pub fn clock_of(&self, name: &str) -> Option<(i64, bool)> {
        let mine: Vec<&Clock> = self
            .clocks
            .iter()
            .filter(|(k, _)| of_source(k, name))
            .map(|(_, c)| c)
            .collect();
        let active = mine.iter().filter(|c| !c.idle).map(|c| c.latest).min();
        match active {
            Some(m) => Some((m, false)),
            None => mine.iter().map(|c| c.latest).max().map(|m| (m, true)),
        }
    }

    /// The source (of `name`'s) holding its watermark back: the active one furthest behind,
    /// with its latest event time (for the periodic line that says why days wait).
    pub fn slowest_of(&self, name: &str) -> Option<(&str, i64)> {
        self.clocks
            .iter()
            .filter(|(k, c)| !c.idle && of_source(k, name))
            .map(|(k, c)| (&**k, c.latest))
            .min_by_key(|(k, t)| (*t, *k))
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
    /// `behind`: more input is already waiting (closing days may wait, see the module
    /// documentation).
    pub fn advance(&mut self, out: &mut Vec<Alert>, behind: bool) -> Option<i64> {
        let wm = self.watermark()?;
        self.advance_to(wm, out, behind).then_some(wm)
    }

    /// Moves state forward to watermark `wm` (ms); true when anything moved.
    pub fn advance_to(&mut self, wm: i64, out: &mut Vec<Alert>, behind: bool) -> bool {
        let mut moved = self.release_to(wm, out);
        let closable = self.closable(wm);
        if let Some(first) = self.core.first_day() {
            let open = self.open_day.unwrap_or(first);
            if closable > open {
                if behind && self.forgets_nothing(closable, first) {
                    let since = *self.deferred_since.get_or_insert_with(Instant::now);
                    if since.elapsed() < MAX_DEFER {
                        return moved;
                    }
                }
                self.deferred_since = None;
                self.judge(Some(closable), out);
                self.closed(closable);
                moved = true;
            } else if self.open_day.is_none() {
                self.open_day = Some(open);
            } else if self.rejudge_late() {
                // Records of closed days arrived: judged again without waiting for the next
                // day to close (a worker that resumes after the others caught up).
                self.judge(Some(open), out);
                moved = true;
            }
        }
        moved
    }

    /// Releases the correlated matches the watermark `wm` (ms) has passed; true when any was.
    pub fn release_to(&mut self, wm: i64, out: &mut Vec<Alert>) -> bool {
        let release = wm.saturating_sub(self.config.correlation_lateness_ms);
        let overflow = self.core.pending() > self.config.max_pending;
        // Matches of records that came after the watermark passed them (late records; a
        // state restored after its sources caught up) go now: once every source has caught
        // up the watermark no longer moves, and they would wait for ever.
        let late = self.core.pending_before(self.released);
        (release > self.released || overflow || late)
            && self.release(release.max(self.released), out)
    }

    /// Records of closed days arrived since days were last judged, and none has come for
    /// [`REJUDGE_EVERY`]: time to judge the closed days again (while records keep coming, the
    /// next closing day takes them).
    pub fn rejudge_late(&self) -> bool {
        self.late_pending && self.fed_at.elapsed() >= REJUDGE_EVERY
    }

    /// No record has come for [`REJUDGE_EVERY`].
    pub fn quiet(&self) -> bool {
        self.fed_at.elapsed() >= REJUDGE_EVERY
    }

    /// The first day not closed once the watermark is `wm` (ms).
    pub fn closable(&self, wm: i64) -> i32 {
        wm.saturating_sub(self.config.close_lateness_ms)
            .div_euclid(DAY_MS) as i32
    }

    /// Whether closing the days before `day` forgets nothing: no day falls out of the
    /// retention window (`first`: the first day with state) and the entries are within
    /// their bound.
    fn forgets_nothing(&self, day: i32, first: i32) -> bool {
        day - self.config.retention_days <= first
            && self.core.aggregate_entries() <= self.config.max_entries
    }

    /// Days before `day` are judged: forget what the retention (and the entry bound) no
    /// longer keeps.
    fn closed(&mut self, day: i32) {
        self.open_day = Some(day);
        let mut keep_from = day - self.config.retention_days;
        self.core.evict_before(keep_from);
        // Over the count bound: the oldest days go, down to the open day.
        while self.core.aggregate_entries() > self.config.max_entries && keep_from < day {
            keep_from += 1;
            self.core.evict_before(keep_from);
            self.counters.evicted_days += 1;
        }
    }

    /// The aggregates now, to judge once every partition has shared its own.
    pub fn snapshot(&mut self) -> Snapshot {
        self.core.snapshot()
    }

    /// What this partition (of `partitions`) shares (round one).
    pub fn share(&self, snap: &Snapshot, partitions: u32) -> cellwarden_pipeline::core::Share {
        self.core.share(snap, partitions)
    }

    /// This partition's accounts with their peer groups (round two).
    pub fn peer_share(&self, snap: &Snapshot, view: &View) -> cellwarden_telecom::share::PeerShare {
        self.core.peer_share(snap, view)
    }

    /// Judges days before `until` of a partition's snapshot with every partition's view, and
    /// forgets what the retention no longer keeps.
    pub fn close_partition(
        &mut self,
        until: i32,
        snap: Snapshot,
        view: &View,
        out: &mut Vec<Alert>,
    ) {
        self.late_pending = false;
        let start = out.len();
        let findings =
            self.core
                .judge_snapshot(Some(until), self.config.max_emitted, snap, Some(view), out);
        self.count_alerts(start, out);
        if self.config.scope {
            self.scope_part = Some(cellwarden_pipeline::scope::part(
                &findings,
                self.core.db_setup(),
                &view.db.client_hosts,
            ));
        }
        self.closed(until);
    }

    /// Releases everything and judges every day (the end of a finite stream).
    pub fn finish(&mut self, out: &mut Vec<Alert>) {
        self.release(i64::MAX, out);
        self.judge(None, out);
    }

    fn release(&mut self, before: i64, out: &mut Vec<Alert>) -> bool {
        let start = out.len();
        let latest = self.core.release(before, self.config.max_pending, out);
        self.count_alerts(start, out);
        if let Some(t) = latest {
            self.released = self.released.max(t);
        }
        if before != i64::MAX {
            self.released = self.released.max(before);
        }
        latest.is_some()
    }

    /// Judges the aggregates; emits findings of days before `until` (all days when `None`)
    /// not emitted before.
    fn judge(&mut self, until: Option<i32>, out: &mut Vec<Alert>) {
        self.late_pending = false;
        let start = out.len();
        let findings = self.core.judge_days(until, self.config.max_emitted, out);
        self.count_alerts(start, out);
        if self.config.scope {
            self.exposure = Some(cellwarden_pipeline::scope::exposure(
                &findings,
                self.core.db_setup(),
            ));
        }
    }

    /// What the logs have said about host and account names so far.
    pub fn aliases(&self) -> &cellwarden_incident::Aliases {
        self.core.aliases()
    }

    /// The scope report assembled at the last judging, once (when `scope` is set).
    pub fn take_exposure(&mut self) -> Option<Exposure> {
        self.exposure.take()
    }

    /// A partition's part of the scope report at its last judging
    /// ([`close_partition`](Self::close_partition)), once (when `scope` is set).
    pub fn take_scope_part(&mut self) -> Option<ScopePart> {
        self.scope_part.take()
    }

    fn count_alerts(&mut self, from: usize, out: &[Alert]) {
        for a in &out[from..] {
            *self.counters.alerts.entry(a.level.as_str()).or_default() += 1;
        }
    }

    /// Entries held, by kind.
    pub fn state_size(&self) -> CoreSize {
        self.core.size()
    }

    /// Its whole state: aggregates, correlations, findings raised, clocks and the released and
    /// judged points (a partition's state written to the changelog).
    pub fn save(&mut self) -> crate::saved::EngineState {
        let mut clocks: Vec<(String, i64, bool)> = self
            .clocks
            .iter()
            .map(|(k, c)| (k.to_string(), c.latest, c.idle))
            .collect();
        clocks.sort();
        crate::saved::EngineState {
            core: self.core.save(),
            clocks,
            released: self.released,
            open_day: self.open_day,
            late_pending: self.late_pending,
        }
    }

    /// Takes the state [`save`](Self::save) gave, in an engine that has processed nothing
    /// (of the same rules and settings).
    pub fn restore(&mut self, state: crate::saved::EngineState) {
        let crate::saved::EngineState {
            core,
            clocks,
            released,
            open_day,
            late_pending,
        } = state;
        self.core.restore(core);
        self.clocks = clocks
            .into_iter()
            .map(|(k, latest, idle)| (Arc::from(k.as_str()), Clock { latest, idle }))
            .collect();
        self.released = released;
        self.open_day = open_day;
        self.late_pending = late_pending;
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

    /// Whether closed days are waiting to be judged (a backlog is being read).
    pub fn days_wait(&self) -> bool {
        self.deferred_since.is_some()
    }

    /// The first UTC day not judged yet (days since 1970), once known.
    pub fn open_day(&self) -> Option<i32> {
        self.open_day
    }

    /// The first day whose aggregates are kept (journal entries before it can go).
    pub fn kept_from_ms(&self) -> Option<i64> {
        self.open_day
            .map(|d| (d - self.config.retention_days) as i64 * DAY_MS)
    }
}

/// Whether clock `key` is source `name`, or a source read through it (`"name source"`: the
/// handed-on records of one source keep their time order within each partition, not across
/// partitions, so each is its own clock).
fn of_source(key: &str, name: &str) -> bool {
    key.strip_prefix(name)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
}

/// Moves the clock of `source` to at least `ms` (it delivers: no longer idle).
fn tick(clocks: &mut HashMap<Arc<str>, Clock>, source: &Arc<str>, ms: i64) {
    match clocks.get_mut(source) {
        Some(c) => {
            c.latest = c.latest.max(ms);
            c.idle = false;
        }
        None => {
            clocks.insert(
                Arc::clone(source),
                Clock {
                    latest: ms,
                    idle: false,
                },
            );
            // A partition's first source ("partition source") replaces the partition
            // announced before it delivered.
            if let Some((partition, _)) = source.split_once(' ')
                && clocks.get(partition).is_some_and(|c| c.latest == i64::MIN)
            {
                clocks.remove(partition);
            }
        }
    }
}
