//! The detection core: the one place where an event meets every detector.
//!
//! [`DetectionCore`] owns the per-event fan-out (Sigma rules, the matches correlation rules
//! wait for, the database-access and flow collectors) and the judging of the stateful
//! analytics. `hunt` runs one core per worker thread, merges them and finishes; `watch` runs
//! one core for the whole stream and releases correlated matches and judges days as its
//! watermark moves. Threading, ordering of input and checkpoints stay in the drivers.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;

use cellwarden_event::{Alert, Event, Timestamp};
use cellwarden_incident::Aliases;
use cellwarden_net::{FlowAggregates, FlowCollector};
use cellwarden_sigma::{CorrelationRun, RuleSet, Scratch};
use cellwarden_signal::detect::{SignalAggregates, SignalCollector};
use cellwarden_telecom::access::{Aggregates, Collector, Selection};
use cellwarden_telecom::detect::{DbConfig, Judgement, Watchlist};
use cellwarden_telecom::schema::Schema;

const DAY_MS: i64 = 86_400_000;

/// Settings of the database-access analytics.
#[derive(Debug, Clone, Default)]
pub struct DbSetup {
    /// Which tables hold which records, and which columns identify subscribers.
    pub schema: Arc<Schema>,
    /// Protected subscribers and the accounts allowed to read them.
    pub watchlist: Arc<Watchlist>,
    /// The responder's selection (accounts, hosts, time range) for `scope`.
    pub selection: Arc<Selection>,
    /// The operator's list of subscribers (`--subscriber-map`): which identifiers are one
    /// person's.
    pub subscriber_map: Arc<cellwarden_telecom::persons::SubscriberMap>,
    /// Thresholds of the detections.
    pub config: DbConfig,
    /// Parse every statement instead of reusing shapes by fingerprint (for measurements).
    pub no_cache: bool,
    /// Skip the database analytics (for measuring the sources alone).
    pub disabled: bool,
}

/// Settings of the flow analytics.
#[derive(Debug, Clone, Default)]
pub struct NetSetup {
    /// Internal networks, host roles and allowed transfers.
    pub assets: Arc<cellwarden_net::Assets>,
    /// Thresholds of the detections.
    pub config: cellwarden_net::NetConfig,
    /// The home network and thresholds of the signalling detections.
    pub signal: cellwarden_signal::detect::SignalConfig,
    /// Skip the flow analytics (for measuring the sources alone).
    pub disabled: bool,
}

/// Everything the detectors are built from.
#[derive(Clone, Copy)]
pub struct Detectors<'a> {
    /// Sigma rules and correlations.
    pub rules: &'a RuleSet,
    /// Database-access analytics.
    pub db: &'a DbSetup,
    /// Flow analytics.
    pub net: &'a NetSetup,
}

/// Which part of the detection a process runs (see `docs/watch.md`, scale-out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stage {
    /// Everything.
    #[default]
    All,
    /// Single-event rules only; events that feed stateful analytics are only recognised, for
    /// the caller to hand on.
    Parse,
    /// Stateful analytics (correlations, database and flow analytics) over handed-on events;
    /// single-event alerts are left to the parse stage.
    State,
}

/// What an event fed besides single-event rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fed {
    /// The database or flow analytics (or, in the parse stage, would have).
    pub aggregates: bool,
    /// A rule that a correlation waits for matched it.
    pub correlation: bool,
    /// In the parse stage: the hash of the entity whose analytics state the event feeds (see
    /// [`partition_of`]).
    pub entity: Option<u64>,
}

/// Which parts of the stateful detection a handed-on record is for: a record may go to one
/// partition for its entity's aggregates and to partition 0 for correlations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uses {
    /// The database and flow analytics.
    pub aggregates: bool,
    /// Correlations.
    pub correlation: bool,
}

impl Uses {
    /// Both.
    pub const ALL: Uses = Uses {
        aggregates: true,
        correlation: true,
    };
}

impl Uses {
    /// As one number (bit 0: aggregates, bit 1: correlations).
    pub fn bits(self) -> u8 {
        u8::from(self.aggregates) | (u8::from(self.correlation) << 1)
    }

    /// From [`bits`](Self::bits); 0 (records handed on before uses were named) is both.
    pub fn from_bits(b: u8) -> Uses {
        if b & 3 == 0 {
            return Uses::ALL;
        }
        Uses {
            aggregates: b & 1 != 0,
            correlation: b & 2 != 0,
        }
    }
}

impl Default for Uses {
    fn default() -> Self {
        Uses::ALL
    }
}

/// The partition (of `partitions`) that the state of an entity with hash `entity` lives in.
/// Correlations, which group by fields of their own, all live in partition 0.
pub fn partition_of(entity: u64, partitions: u32) -> u32 {
    (entity % u64::from(partitions.max(1))) as u32
}

/// FNV-1a: stable across processes, versions and platforms (partitions must agree).
fn entity_hash(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Aggregates taken at one point, judged later (a partition judges once the others have
/// shared theirs).
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// Database aggregates (unless the database analytics are off).
    pub db: Option<Aggregates>,
    /// Flow aggregates (unless the flow analytics are off).
    pub net: Option<FlowAggregates>,
    /// Signalling aggregates (with the flow analytics).
    pub signal: Option<SignalAggregates>,
    /// The first UTC day of the events seen.
    pub first_day: Option<i32>,
}

/// What one partition of the state shares with the others before days are judged (round one;
/// see `cellwarden_telecom::share`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Share {
    /// Database.
    pub db: cellwarden_telecom::share::Share,
    /// Flows.
    pub net: cellwarden_net::share::NetShare,
    /// The partition's first day.
    pub first_day: Option<i32>,
}

/// What every partition shared, to judge one of them with.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// Database (both rounds).
    pub db: cellwarden_telecom::share::Global,
    /// Flows.
    pub net: cellwarden_net::share::NetGlobal,
    /// The first day of all partitions.
    pub first_day: Option<i32>,
}

impl View {
    /// Round one's view from every partition's share.
    pub fn merge<'s>(shares: impl IntoIterator<Item = &'s Share> + Clone) -> View {
        View {
            db: cellwarden_telecom::share::Global::merge(shares.clone().into_iter().map(|s| &s.db)),
            net: cellwarden_net::share::NetGlobal::merge(
                shares.clone().into_iter().map(|s| &s.net),
            ),
            first_day: shares.into_iter().filter_map(|s| s.first_day).min(),
        }
    }
}

impl Fed {
    /// The event changes (or, handed on, would change) stateful detection.
    pub fn stateful(self) -> bool {
        self.aggregates || self.correlation
    }
}

/// What the stateful analytics gathered and found, at the end of a finite run.
#[derive(Debug, Default)]
pub struct Findings {
    /// Database access aggregates (for the scope report).
    pub db: Aggregates,
    /// The database detections' results with the reasons per account-day and subscriber.
    pub judgement: Judgement,
    /// Flow aggregates (for joining transfers to scope).
    pub net: FlowAggregates,
    /// The signalling detections' alerts (for the scope report's signalling section).
    pub signal: Vec<Alert>,
    /// What the logs said about host and account names (for campaigns).
    pub aliases: Aliases,
}

/// Entries the core holds, for metrics and the documented bounds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CoreSize {
    /// Database account-days.
    pub account_days: usize,
    /// Database subscriber-account-days.
    pub subscriber_days: usize,
    /// Flow (source, destination)-days.
    pub pair_days: usize,
    /// Connection series kept for beaconing.
    pub conn_series: usize,
    /// Open correlation groups.
    pub correlation_groups: usize,
    /// Correlated matches waiting to be released in time order.
    pub pending_matches: usize,
    /// Keys of day findings already raised.
    pub emitted_keys: usize,
    /// Signalling requests, location updates and sending hosts held.
    pub signal_entries: usize,
}

/// Order in which correlations see matches: time (none first), file, record, rule.
type PendingKey = (Option<Timestamp>, Arc<str>, u64, u32);

/// The detectors of one stream of events (see the module documentation).
pub struct DetectionCore<'a> {
    setup: Detectors<'a>,
    stage: Stage,
    scratch: Scratch,
    hits: Vec<usize>,
    collector: Collector,
    flows: FlowCollector,
    signals: SignalCollector,
    aliases: Aliases,
    /// Aggregates merged in from other cores (finite runs).
    merged: Option<Sealed>,
    pending: BTreeMap<PendingKey, Event<'static>>,
    corr: CorrelationRun<'a>,
    /// The earliest event time seen (ms).
    earliest: i64,
    emitted: HashSet<String>,
    emitted_order: VecDeque<String>,
    /// What the events being observed are for (state stage: set per handed-on unit).
    uses: Uses,
    /// Aggregates of a state restored from a snapshot (before [`Aggregates::finish`]): the
    /// collectors gather what comes after it, and the two are merged when judged.
    restored: Option<Sealed>,
}

/// The whole state of a core, to carry it to another process: a partition's state kept in a
/// changelog (see `docs/watch.md`). Only meaningful for cores of the same rules and settings.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct CoreState {
    db: Option<Aggregates>,
    net: Option<FlowAggregates>,
    signal: Option<SignalAggregates>,
    aliases: Aliases,
    pending: Vec<(PendingKey, Event<'static>)>,
    corr: cellwarden_sigma::CorrelationState,
    earliest: i64,
    /// Keys of day findings raised, oldest first.
    emitted: Vec<String>,
}

/// Aggregates of the database, flow and signalling analytics.
type Sealed = (Aggregates, FlowAggregates, SignalAggregates);

/// Adds `x` to what `into` holds; the first is moved in whole, not merged into empty maps
/// entry by entry.
fn absorb(into: &mut Option<Sealed>, x: Sealed) {
    match into {
        Some((d, n, s)) => {
            d.merge(x.0);
            n.merge(x.1);
            s.merge(x.2);
        }
        None => *into = Some(x),
    }
}

fn new_collector(db: &DbSetup) -> Collector {
    Collector::with_analyzer(
        Arc::clone(&db.schema),
        Arc::clone(&db.selection),
        db.config.bulk_min_rows,
        cellwarden_telecom::sql::Analyzer::new(!db.no_cache),
    )
}

fn new_flows(net: &NetSetup) -> FlowCollector {
    FlowCollector::new(Arc::clone(&net.assets), net.config.collect_limits())
}

impl<'a> DetectionCore<'a> {
    /// A core with empty state.
    pub fn new(setup: Detectors<'a>, stage: Stage) -> Self {
        let Detectors { rules, db, net } = setup;
        DetectionCore {
            setup,
            stage,
            scratch: rules.scratch(),
            hits: Vec::new(),
            collector: new_collector(db),
            flows: new_flows(net),
            signals: SignalCollector::default(),
            aliases: Aliases::default(),
            merged: None,
            pending: BTreeMap::new(),
            corr: rules.correlation_run(),
            earliest: i64::MAX,
            emitted: HashSet::new(),
            emitted_order: VecDeque::new(),
            uses: Uses::ALL,
            restored: None,
        }
    }

    /// Its whole state (see [`CoreState`]).
    pub fn save(&mut self) -> CoreState {
        let (db, net, signal) = self.gathered();
        CoreState {
            db,
            net,
            signal,
            aliases: self.aliases.clone(),
            pending: self
                .pending
                .iter()
                .map(|(k, e)| (k.clone(), e.clone()))
                .collect(),
            corr: self.corr.save(),
            earliest: self.earliest,
            emitted: self.emitted_order.iter().cloned().collect(),
        }
    }

    /// Takes the state [`save`](Self::save) gave, in a core that has observed nothing yet.
    pub fn restore(&mut self, state: CoreState) {
        let CoreState {
            db,
            net,
            signal,
            aliases,
            pending,
            corr,
            earliest,
            emitted,
        } = state;
        self.restored = Some((
            db.unwrap_or_default(),
            net.unwrap_or_default(),
            signal.unwrap_or_default(),
        ));
        self.aliases = aliases;
        self.pending = pending.into_iter().collect();
        self.corr.restore(corr);
        self.earliest = earliest;
        self.emitted = emitted.iter().cloned().collect();
        self.emitted_order = emitted.into();
    }

    /// The database, flow and signalling aggregates so far (restored ones merged in), the
    /// database ones before [`Aggregates::finish`]; `None` for analytics turned off.
    fn gathered(
        &mut self,
    ) -> (
        Option<Aggregates>,
        Option<FlowAggregates>,
        Option<SignalAggregates>,
    ) {
        let (db_on, net_on) = (!self.setup.db.disabled, !self.setup.net.disabled);
        let mut db = db_on.then(|| self.collector.snapshot_raw());
        let mut net = net_on.then(|| self.flows.snapshot());
        let mut signal = net_on.then(|| self.signals.snapshot());
        if let Some((d, n, g)) = &self.restored {
            // Merged into a copy of the restored part: the order of merging does not matter.
            if let Some(x) = db.as_mut() {
                let mut r = d.clone();
                r.merge(std::mem::take(x));
                *x = r;
            }
            if let Some(x) = net.as_mut() {
                let mut r = n.clone();
                r.merge(std::mem::take(x));
                r.finish();
                *x = r;
            }
            if let Some(x) = signal.as_mut() {
                let mut r = g.clone();
                r.merge(std::mem::take(x));
                *x = r;
            }
        }
        (db, net, signal)
    }

    /// What the next events observed are for (the state stage: a handed-on record may be for
    /// the aggregates or the correlations only).
    pub fn set_uses(&mut self, uses: Uses) {
        self.uses = uses;
    }

    /// Runs every detector on one event: single-event alerts go to `out` at once; matches that
    /// correlations wait for are held until [`release`](Self::release); database and flow
    /// events go to their collectors.
    pub fn observe(&mut self, ev: &Event<'_>, out: &mut Vec<Alert>) -> Fed {
        self.observe_decided(ev, None, out)
    }

    /// The key by which the caller decides whether a database audit record repeats a
    /// statement counted already ([`cellwarden_telecom::repeats`]), for
    /// [`DetectionCore::observe_decided`]; `None` when this core would not count the record
    /// or it is of no kind that repeats one.
    pub fn fold_key(&self, ev: &Event<'_>) -> Option<cellwarden_telecom::repeats::FoldKey> {
        let db = self.setup.db;
        if db.disabled || !self.uses.aggregates || self.stage == Stage::Parse {
            return None;
        }
        cellwarden_telecom::access::fold_key(ev)
    }

    /// [`DetectionCore::observe`] with the decision for a record that has a
    /// [fold key](DetectionCore::fold_key): whether it repeats a statement.
    pub fn observe_decided(
        &mut self,
        ev: &Event<'_>,
        repeats: Option<bool>,
        out: &mut Vec<Alert>,
    ) -> Fed {
        let Detectors { rules, db, net } = self.setup;
        let stage = self.stage;
        let uses = self.uses;
        let mut fed = Fed::default();
        if !db.disabled && uses.aggregates && cellwarden_telecom::access::is_database_event(ev) {
            if stage == Stage::Parse {
                fed.entity = cellwarden_telecom::access::partition_key(ev).map(|k| entity_hash(&k));
            } else {
                self.collector.observe_decided(ev, repeats);
            }
            fed.aggregates = true;
        }
        // A database statement is neither a flow nor a signalling message.
        if !net.disabled && uses.aggregates && !fed.aggregates {
            // Flows first: they are most of the events, and a flow's channel is never a
            // signalling one, so the signalling state need not look at them.
            let flow = if stage == Stage::Parse {
                let flow = cellwarden_net::collect::is_flow_event(ev);
                if flow && fed.entity.is_none() {
                    fed.entity =
                        cellwarden_net::collect::partition_key(ev).map(|k| entity_hash(&k));
                }
                flow
            } else {
                self.flows.observe(ev)
            };
            fed.aggregates |= flow;
            if !flow {
                // One state for the whole signalling network (partitioned runs: one partition).
                fed.aggregates |= if stage == Stage::Parse {
                    cellwarden_signal::detect::is_signal_event(ev)
                } else {
                    self.signals.observe(ev)
                };
            }
        }
        if let Some(t) = ev.timestamp {
            self.earliest = self.earliest.min(t.as_millisecond());
        }
        if stage != Stage::Parse {
            self.aliases.observe(ev);
        }
        rules.matches(ev, &mut self.scratch, &mut self.hits);
        if self.hits.is_empty() {
            return fed;
        }
        // Copied only when a rule matched: the caller keeps (and drops) the event.
        let owned = ev.clone().into_owned();
        for &r in &self.hits {
            let correlated = rules.rule_correlated(r);
            if correlated && !uses.correlation {
                continue;
            }
            if correlated {
                fed.correlation = true;
                if stage != Stage::Parse {
                    self.pending.insert(
                        (
                            owned.timestamp,
                            Arc::clone(&owned.origin.file),
                            owned.origin.record,
                            r as u32,
                        ),
                        owned.clone(),
                    );
                }
            }
            let emits = rules.rule_emits(r)
                && match stage {
                    Stage::All => true,
                    Stage::Parse => !correlated,
                    Stage::State => correlated,
                };
            if emits {
                out.push(Alert {
                    rule: Arc::clone(rules.rule_info(r)),
                    level: rules.rule_level(r),
                    event: owned.clone(),
                    correlation: None,
                });
            }
        }
        fed
    }

    /// Turns the gathered database and flow state into aggregates (finite runs: each worker
    /// does it on its own thread before the cores are merged).
    pub fn seal(&mut self) {
        let Detectors { db, net, .. } = self.setup;
        let c = std::mem::replace(&mut self.collector, new_collector(db));
        let f = std::mem::replace(&mut self.flows, new_flows(net));
        let g = std::mem::take(&mut self.signals);
        let sealed = (
            c.into_aggregates(),
            f.into_aggregates(),
            g.into_aggregates(),
        );
        absorb(&mut self.merged, sealed);
    }

    /// Takes in another core's state (finite runs: one core per worker, merged at the end; the
    /// result does not depend on the order of merging).
    pub fn merge(&mut self, other: DetectionCore<'_>) {
        let mut theirs = other.pending;
        self.pending.append(&mut theirs);
        self.earliest = self.earliest.min(other.earliest);
        self.aliases.merge(other.aliases);
        let mut theirs = other.merged;
        let open = (
            other.collector.into_aggregates(),
            other.flows.into_aggregates(),
            other.signals.into_aggregates(),
        );
        absorb(&mut theirs, open);
        if let Some(theirs) = theirs {
            absorb(&mut self.merged, theirs);
        }
    }

    /// Feeds the held correlated matches before time `before` (ms) to the correlations in
    /// time order, and the oldest ones beyond `max_pending` whatever their time. Returns the
    /// time of the latest match released, if any was.
    pub fn release(
        &mut self,
        before: i64,
        max_pending: usize,
        out: &mut Vec<Alert>,
    ) -> Option<i64> {
        let excess = self.pending.len().saturating_sub(max_pending);
        let limit = Timestamp::from_millisecond(before).ok();
        let mut taken = 0;
        let mut latest = None;
        while let Some(entry) = self.pending.first_entry() {
            let due = before == i64::MAX
                || match (entry.key().0, limit) {
                    (None, _) => true,
                    (Some(t), Some(l)) => t < l,
                    (Some(_), None) => before > 0,
                };
            if !due && taken >= excess {
                break;
            }
            let ((ts, _, _, rule), ev) = entry.remove_entry();
            taken += 1;
            self.corr.push(rule, &ev, out);
            let ms = ts.map(|t| t.as_millisecond()).unwrap_or(0);
            latest = Some(latest.map_or(ms, |l: i64| l.max(ms)));
        }
        latest
    }

    /// Judges the analytics' aggregates so far and raises the findings of days before
    /// `until` (every day when `None`) that were not raised before. The first days of
    /// history wait until `warmup_days` days follow them (whether an export seen from the
    /// first day is a standing schedule needs the days after it). At most `max_emitted` keys
    /// of raised findings are remembered. Returns what was judged (for a scope report of the
    /// state so far).
    pub fn judge_days(
        &mut self,
        until: Option<i32>,
        max_emitted: usize,
        out: &mut Vec<Alert>,
    ) -> Findings {
        let snap = self.snapshot();
        self.judge_snapshot(until, max_emitted, snap, None, out)
    }

    /// The aggregates so far, to judge later.
    pub fn snapshot(&mut self) -> Snapshot {
        let (mut db, net, signal) = self.gathered();
        if let Some(d) = db.as_mut() {
            d.finish();
        }
        Snapshot {
            db,
            net,
            signal,
            first_day: self.first_day(),
        }
    }

    /// What this partition (of `partitions`) shares before its days are judged (round one).
    pub fn share(&self, snap: &Snapshot, partitions: u32) -> Share {
        let base = self.setup.db.config.subscriber_base;
        Share {
            db: snap
                .db
                .as_ref()
                .map(|a| cellwarden_telecom::share::Share::of_partition(a, base, partitions))
                .unwrap_or_default(),
            net: snap
                .net
                .as_ref()
                .map(|n| {
                    cellwarden_net::share::NetShare::of(n, self.setup.net.config.min_history_days)
                })
                .unwrap_or_default(),
            first_day: snap.first_day,
        }
    }

    /// This partition's accounts with their peer groups and target list lengths (round two),
    /// judged with round one's view.
    pub fn peer_share(&self, snap: &Snapshot, view: &View) -> cellwarden_telecom::share::PeerShare {
        let db = self.setup.db;
        snap.db
            .as_ref()
            .map(|agg| {
                cellwarden_telecom::detect::peer_share(
                    agg,
                    &db.watchlist,
                    &db.subscriber_map,
                    &db.config,
                    &view.db,
                )
            })
            .unwrap_or_default()
    }

    /// [`judge_days`](Self::judge_days) over a snapshot, with the view of every partition when
    /// this core is one of several.
    pub fn judge_snapshot(
        &mut self,
        until: Option<i32>,
        max_emitted: usize,
        snap: Snapshot,
        view: Option<&View>,
        out: &mut Vec<Alert>,
    ) -> Findings {
        let Snapshot {
            db, net, signal, ..
        } = snap;
        let (judgement, mut found) = judge_with(self.setup, db.as_ref(), net.as_ref(), view);
        let signal = judge_signal(self.setup, signal.as_ref());
        found.extend(signal.iter().cloned());
        let first_day = match view {
            Some(v) => v.first_day,
            None => self.first_day(),
        };
        let warm_until = first_day.map(|d| d + self.warmup_days());
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
            self.emitted.insert(key.clone());
            self.emitted_order.push_back(key);
            while self.emitted_order.len() > max_emitted {
                if let Some(old) = self.emitted_order.pop_front() {
                    self.emitted.remove(&old);
                }
            }
            out.push(a);
        }
        Findings {
            db: db.unwrap_or_default(),
            judgement,
            net: net.unwrap_or_default(),
            signal,
            aliases: self.aliases.clone(),
        }
    }

    /// Ends a finite run: releases every correlated match, judges every day, and returns
    /// what the analytics gathered with their alerts added to `out`.
    pub fn finish(self, out: &mut Vec<Alert>) -> Findings {
        let DetectionCore {
            setup,
            collector,
            flows,
            signals,
            merged,
            pending,
            mut corr,
            aliases,
            restored,
            ..
        } = self;
        let mut merged = merged;
        if let Some(r) = restored {
            absorb(&mut merged, r);
        }
        let (mut db, mut net, mut sig) = merged.unwrap_or_default();
        db.merge(collector.into_aggregates());
        net.merge(flows.into_aggregates());
        sig.merge(signals.into_aggregates());
        net.finish();
        db.finish();
        let (judgement, alerts) = judge_with(setup, Some(&db), Some(&net), None);
        out.extend(alerts);
        let signal = judge_signal(setup, Some(&sig));
        out.extend(signal.iter().cloned());
        // Correlations see the matches of the rules they name in one time order, across files.
        for ((_, _, _, rule), ev) in &pending {
            corr.push(*rule, ev, out);
        }
        Findings {
            db,
            judgement,
            net,
            signal,
            aliases,
        }
    }

    /// What the events have said about host and account names so far.
    pub fn aliases(&self) -> &Aliases {
        &self.aliases
    }

    /// Forgets database and flow aggregates of days before `day` (a window of days is kept
    /// for baselines).
    pub fn evict_before(&mut self, day: i32) {
        self.collector.evict_before(day);
        self.flows.evict_before(day);
        let t = Timestamp::from_second(day as i64 * 86_400).ok();
        if let Some(t) = t {
            self.signals.evict_before(t);
        }
        if let Some((d, n, g)) = self.restored.as_mut() {
            d.evict_before(day);
            n.evict_before(day, self.setup.net.config.collect_limits().learn_days);
            if let Some(t) = t {
                g.evict_before(t);
            }
        }
    }

    /// Database and flow aggregate entries held.
    pub fn aggregate_entries(&self) -> usize {
        let s = self.size();
        s.account_days + s.subscriber_days + s.pair_days + s.conn_series + s.signal_entries
    }

    /// Entries held, by kind.
    pub fn size(&self) -> CoreSize {
        let (mut account_days, mut subscriber_days) = self.collector.size();
        let (mut pair_days, mut conn_series) = self.flows.size();
        let mut signal_entries = self.signals.size();
        if let Some((d, n, g)) = &self.restored {
            account_days += d.days.len();
            subscriber_days += d.subjects.len();
            pair_days += n.pairs.len();
            conn_series += n.conns.len();
            signal_entries += g.size();
        }
        CoreSize {
            account_days,
            subscriber_days,
            pair_days,
            conn_series,
            signal_entries,
            correlation_groups: self.corr.groups(),
            pending_matches: self.pending.len(),
            emitted_keys: self.emitted.len(),
        }
    }

    /// The database analytics' set-up (watchlist and selection, for the scope report).
    pub fn db_setup(&self) -> &'a DbSetup {
        self.setup.db
    }

    /// Correlated matches waiting to be released.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Whether a correlated match waiting is earlier than `ms` (or has no time).
    pub fn pending_before(&self, ms: i64) -> bool {
        self.pending
            .first_key_value()
            .is_some_and(|((t, ..), _)| t.is_none_or(|t| t.as_millisecond() < ms))
    }

    /// The first UTC day of the events seen.
    pub fn first_day(&self) -> Option<i32> {
        (self.earliest != i64::MAX).then(|| self.earliest.div_euclid(DAY_MS) as i32)
    }

    /// Days after the first day of history before its findings are final.
    fn warmup_days(&self) -> i32 {
        self.setup.db.config.export_schedule_days as i32 + 1
    }
}

/// Runs the stateful detections over finished aggregates: flow findings, then database
/// findings (the database judgement is returned for the scope report).
fn judge_with(
    setup: Detectors<'_>,
    db: Option<&Aggregates>,
    net: Option<&FlowAggregates>,
    view: Option<&View>,
) -> (Judgement, Vec<Alert>) {
    let mut alerts = Vec::new();
    let (assets, net_config) = (&setup.net.assets, &setup.net.config);
    if let Some(flows) = net {
        alerts.extend(
            match view {
                Some(v) => {
                    cellwarden_net::detect::judge_partition(flows, assets, net_config, &v.net)
                }
                None => cellwarden_net::judge(flows, assets, net_config),
            }
            .alerts,
        );
    }
    let judgement = match db {
        Some(agg) => {
            let d = setup.db;
            let j = match view {
                Some(v) => cellwarden_telecom::detect::judge_partition(
                    agg,
                    &d.watchlist,
                    &d.subscriber_map,
                    &d.config,
                    &v.db,
                ),
                None => cellwarden_telecom::detect::judge_with_map(
                    agg,
                    &d.watchlist,
                    &d.subscriber_map,
                    &d.config,
                ),
            };
            alerts.extend(j.alerts.iter().cloned());
            j
        }
        None => Judgement::default(),
    };
    (judgement, alerts)
}

/// The signalling findings (unless the network analytics are off).
fn judge_signal(setup: Detectors<'_>, sig: Option<&SignalAggregates>) -> Vec<Alert> {
    match sig {
        Some(s) if !setup.net.disabled && !s.is_empty() => {
            let roles: Vec<(ipnet::IpNet, String)> = setup
                .net
                .assets
                .hosts()
                .iter()
                .map(|h| (h.net, h.role.clone()))
                .collect();
            cellwarden_signal::detect::judge(s, &setup.net.signal, &roles)
        }
        _ => Vec::new(),
    }
}

/// Identity of a day finding: its key and its day (one finding per day).
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

#[cfg(test)]
mod tests {
    use super::*;
    use cellwarden_event::{Origin, Value};
    use std::borrow::Cow;

    const RULES: &str = "title: CDR read
id: 5b3c0c47-0d54-4f55-9a55-6f4e1b2c9a01
name: cdr_read
status: test
logsource:
    product: postgresql
detection:
    sel:
        statement|contains: 'FROM cdr'
    condition: sel
level: low
---
title: Repeated CDR reads by one account
id: 5b3c0c47-0d54-4f55-9a55-6f4e1b2c9a02
status: test
correlation:
    type: event_count
    rules:
        - cdr_read
    group-by:
        - user
    timespan: 2h
    condition:
        gte: 3
level: high
";

    fn ev(ms: i64, user: &str, host: &str, sql: String, line: i64) -> Event<'static> {
        let mut e = Event::new(Origin {
            file: Arc::from("db.log"),
            record: line as u64,
        });
        e.timestamp = Timestamp::from_millisecond(ms).ok();
        let s = |x: &str| Value::Str(Cow::Owned(x.to_owned()));
        e.push("user", s(user));
        e.push("client_host", s(host));
        e.push("statement", Value::Str(Cow::Owned(sql)));
        e.push("Channel", s("pgaudit"));
        e.push("application", s("crm"));
        e
    }

    /// Six days of care agents reading customers, an application account reading on a
    /// schedule, and the same account reading two people's CDRs from another host.
    fn events() -> Vec<Event<'static>> {
        let day0 = 1_772_323_200_000; // 2026-03-01
        let mut evs = Vec::new();
        let mut line = 0;
        for day in 0..6i64 {
            for (agent, host) in [
                ("care1", "10.0.0.1"),
                ("care2", "10.0.0.2"),
                ("app", "10.0.0.9"),
            ] {
                for k in 0..5i64 {
                    line += 1;
                    let t = day0 + day * DAY_MS + (9 + k) * 3_600_000 + line * 1_000;
                    let sql = format!("SELECT * FROM subscriber WHERE msisdn = '3361{line:07}'");
                    evs.push(ev(t, agent, host, sql, line));
                }
            }
            if day >= 3 {
                for (k, target) in ["33699990001", "33699990002", "33699990001"]
                    .iter()
                    .enumerate()
                {
                    line += 1;
                    let t = day0 + day * DAY_MS + 2 * 3_600_000 + k as i64 * 60_000;
                    let sql = format!("SELECT * FROM cdr WHERE calling_number = '{target}'");
                    evs.push(ev(t, "app", "10.9.9.9", sql, line));
                }
            }
        }
        evs.sort_by_key(|e| e.timestamp);
        evs
    }

    fn render(alerts: &[Alert]) -> Vec<String> {
        let mut v: Vec<String> = alerts
            .iter()
            .map(|a| format!("{} {} {:?}", a.rule.id, a.key(), a.event.timestamp))
            .collect();
        v.sort();
        v
    }

    /// A core saved at any point, written as bytes, read back into a new core that takes the
    /// rest of the events, raises what the core that was never stopped raises after that
    /// point, and ends with the same aggregates.
    #[test]
    fn a_restored_core_goes_on_as_the_saved_one_would() {
        let loaded = cellwarden_sigma::load(
            &[cellwarden_sigma::RuleSource {
                name: "test.yml".into(),
                text: RULES.into(),
            }],
            &Default::default(),
        );
        assert_eq!(loaded.correlations, 1, "{:?}", loaded.problems);
        let (db, net) = (DbSetup::default(), NetSetup::default());
        let setup = Detectors {
            rules: &loaded.rules,
            db: &db,
            net: &net,
        };
        let evs = events();
        let run_to =
            |core: &mut DetectionCore<'_>, evs: &[Event<'static>], out: &mut Vec<Alert>| {
                for e in evs {
                    core.observe(e, out);
                }
            };
        let mut checked = 0;
        for split in [1, evs.len() / 3, evs.len() / 2, evs.len() - 4] {
            let at = evs[split].timestamp.unwrap().as_millisecond();
            // Correlated matches of the last half hour stay pending; days before the split's
            // day are judged.
            let first_part = |core: &mut DetectionCore<'_>, out: &mut Vec<Alert>| {
                run_to(core, &evs[..split], out);
                core.release(at - 1_800_000, 1_000, out);
                core.judge_days(Some(at.div_euclid(DAY_MS) as i32), 1_000, out);
            };
            let last_part = |core: &mut DetectionCore<'_>, out: &mut Vec<Alert>| {
                run_to(core, &evs[split..], out);
                core.release(i64::MAX, 1_000, out);
                core.judge_days(None, 1_000, out);
            };
            let mut whole = DetectionCore::new(setup, Stage::State);
            let mut expected = Vec::new();
            first_part(&mut whole, &mut expected);
            let raised_before = expected.len();
            last_part(&mut whole, &mut expected);
            // Correlations and the database analytics both raised something.
            let all = render(&expected);
            assert!(all.iter().any(|a| a.contains("9a02")), "{all:#?}");
            assert!(all.iter().any(|a| !a.contains("5b3c0c47")), "{all:#?}");

            let mut saved = DetectionCore::new(setup, Stage::State);
            let mut got = Vec::new();
            first_part(&mut saved, &mut got);
            assert_eq!(render(&got), render(&expected[..raised_before]));
            let bytes = postcard::to_stdvec(&saved.save()).unwrap();
            drop(saved);
            let mut restored = DetectionCore::new(setup, Stage::State);
            restored.restore(postcard::from_bytes(&bytes).unwrap());
            last_part(&mut restored, &mut got);
            assert_eq!(render(&got), render(&expected), "split at {split}");
            // The same aggregates, but for the SQL shape cache's counters (each process has
            // its own cache).
            let finished = |c: &mut DetectionCore<'_>| {
                let mut s = c.snapshot();
                if let Some(d) = s.db.as_mut() {
                    d.counts.sql = Default::default();
                }
                postcard::to_stdvec(&(s.db, s.net, s.first_day)).unwrap()
            };
            assert_eq!(
                finished(&mut restored),
                finished(&mut whole),
                "split at {split}"
            );
            // Entries are counted apart in the restored part and in what came after it (an
            // account-day in both counts twice): a bound, never less than what is held.
            assert!(restored.aggregate_entries() >= whole.aggregate_entries());
            checked += 1;
        }
        assert_eq!(checked, 4);
    }
}
