//! Kafka: a consumer group over input topics, a keyed alert producer, and the internal topic
//! between the two stages of a scaled-out deployment (see `docs/watch.md`).
//!
//! Offsets are committed only after the checkpoint that covers them is written, and the
//! checkpoint is written only after the alerts are durable in every sink; records a restart
//! receives again below the checkpointed offset are skipped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use cellwarden_event::Alert;
use cellwarden_source::{ErrorKind, Format, Limits, Position, SourceError, Unit};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::checkpoint::UnitCopy;
use crate::engine::Handed;
use crate::sink::{AlertSink, RecordSink};
use crate::source::{Collect, Input, PositionUpdate, Source};
use cellwarden_pipeline::{Uses, partition_of};

/// A Kafka client that could not be set up, or a call to the broker that failed.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct ClientError {
    /// What was being done.
    pub what: String,
    /// The client's error.
    pub source: KafkaError,
}

pub(crate) fn failed(what: impl Into<String>) -> impl FnOnce(KafkaError) -> ClientError {
    let what = what.into();
    move |source| ClientError { what, source }
}

/// Connection settings shared by consumers and producers.
#[derive(Debug, Clone, Default)]
pub struct KafkaConfig {
    /// `bootstrap.servers`: host:port,…
    pub brokers: String,
    /// Extra librdkafka settings (`security.protocol`, `sasl.*`, `ssl.*`, …).
    pub options: Vec<(String, String)>,
}

impl KafkaConfig {
    /// Our settings, then `defaults` unless the user set them, then the user's.
    pub(crate) fn client(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in defaults {
            c.set(*k, *v);
        }
        for (k, v) in &self.options {
            c.set(k, v);
        }
        c
    }
}

/// The name events of a partition carry as their source file.
pub fn source_name(topic: &str, partition: i32) -> String {
    format!("{SCHEME}{topic}/{partition}")
}

const SCHEME: &str = "kafka://";

/// `topic/partition` of a [`source_name`] (the key of checkpoints and changelogs); other
/// names as they are.
pub fn partition_key(name: &str) -> &str {
    name.strip_prefix(SCHEME).unwrap_or(name)
}

/// Whether `name` is a [`source_name`].
pub fn is_partition(name: &str) -> bool {
    name.starts_with(SCHEME)
}

/// A record forwarded from the first stage to the second: one stateful record as read.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Forwarded {
    /// Source (file or `kafka://topic/partition`) and record number it had.
    pub f: String,
    /// Record number.
    pub l: u64,
    /// Format name, year for syslog times, column header.
    pub k: String,
    /// Year for syslog times without one.
    pub y: i16,
    /// Column names of header-driven formats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h: Option<Vec<String>>,
    /// The record's text.
    pub r: String,
    /// What the record is for ([`Uses::bits`]; absent: everything).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub u: u8,
    /// A mark (`k` = [`MARK`], no record): the latest event time (ms) source `f` reached
    /// by record `l`, sent to the partitions that got none of a unit's records, so every
    /// partition knows every source and how far it went (its watermark waits for them all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t: Option<i64>,
    /// An idle mark (`k` = [`MARK`], no record): the parse stage read source `f` to its end
    /// and nothing more came for its `--idle-secs`, so it stops holding the watermark back
    /// until its next record. The state stage never decides this from a handed-on partition
    /// being quiet: it also is while the parse group rebalances.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub i: bool,
    /// A source mark (`k` = [`MARK`], no record): the parse stage started reading source
    /// `f` (an input partition assigned to it, a file found), so the state stage holds its
    /// watermark for it until it delivers or is idle, as one process does for the sources it
    /// knows: a source it had not heard of would not hold back days that its records belong to.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub n: bool,
}

/// The format name of marks (see [`Forwarded::t`]).
pub const MARK: &str = "mark";

/// How long the state stage reads a handed-on partition again from an offset that a later
/// one came before (see [`Contiguous`]).
const GAP_WAIT: Duration = Duration::from_secs(10);
const GAP_SEEK: Duration = Duration::from_secs(1);

fn is_zero(u: &u8) -> bool {
    *u == 0
}

/// The key under which the state stage remembers the last record of a source handed on
/// through one partition (a source's records are in order within each partition they go to).
pub fn forwarded_key(partition: &str, source: &str) -> String {
    format!("{partition} {source}")
}

/// Creates the group consumer; `stop` ends [`run_consumer`]. The group rebalances
/// cooperatively: when a worker joins or leaves, only the partitions that change hands stop
/// (partitioned state workers rebuild only those). With eager rebalancing every member
/// stopped reading every partition at each round, and a parse worker killed and restarted
/// left its group in rounds of a dozen or more on a loaded machine (tansu).
pub fn consumer(
    config: &KafkaConfig,
    group: &str,
    topics: &[String],
) -> Result<BaseConsumer, ClientError> {
    // A broker that holds every fetch for its whole wait even when data is there (tansu does)
    // bounds a backlog to a few fetches a second with the 500 ms default: 1,000,000 Zeek JSON
    // flows took 20.7 s with it and 5.7 s with 50 ms (10 and 20 ms: 10–11 s). On Kafka the
    // wait only applies when no data is there: at most 20 empty fetches a second per broker.
    let all = [
        ("session.timeout.ms", "6000"),
        ("auto.offset.reset", "earliest"),
        ("fetch.wait.max.ms", "50"),
        ("partition.assignment.strategy", "cooperative-sticky"),
    ];
    let c: BaseConsumer = config
        .client(&all)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .map_err(failed("Kafka consumer"))?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    c.subscribe(&names)
        .map_err(failed(format!("Kafka subscribe {names:?}")))?;
    Ok(c)
}

/// A consumer of `topic` in group `group` that commits nothing, with `settings`; it reads
/// the partitions it is then assigned.
pub(crate) fn unassigned_reader(
    config: &KafkaConfig,
    topic: &str,
    group: &str,
    settings: &[(&str, &str)],
) -> Result<BaseConsumer, ClientError> {
    let mut c = config.client(&[]);
    c.set("group.id", group).set("enable.auto.commit", "false");
    for (k, v) in settings {
        c.set(*k, *v);
    }
    c.create()
        .map_err(failed(format!("Kafka reader of {topic}")))
}

/// A consumer of every partition of `topic` from its start, outside any consumer group's
/// sharing (`group` only names it; no offsets are committed); `settings` go over the user's.
/// Returns it with the topic's partition count.
pub(crate) fn reader(
    config: &KafkaConfig,
    topic: &str,
    group: &str,
    settings: &[(&str, &str)],
) -> Result<(BaseConsumer, u32), ClientError> {
    let consumer = unassigned_reader(config, topic, group, settings)?;
    let n = partition_count(consumer.client(), topic)?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..n as i32 {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .map_err(failed(format!("Kafka reader of {topic}")))?;
    }
    consumer
        .assign(&tpl)
        .map_err(failed(format!("Kafka reader of {topic}")))?;
    Ok((consumer, n))
}

/// Polls the consumer until `stop`, sending units in partition order. `start` holds the next
/// offset per `topic/partition` the checkpoint covers: records below it were handled. With
/// `forwarded` (the last record number handled per source), records are the first stage's
/// envelopes.
/// A consumer group member as a source of the watch loop.
pub struct KafkaSource {
    /// The subscribed consumer (shared with the loop, which commits offsets).
    pub consumer: Arc<BaseConsumer>,
    /// Checkpointed next offsets per `topic/partition`.
    pub start: BTreeMap<String, i64>,
    /// In the state stage: the last record of each forwarded source already handled.
    pub forwarded: Option<BTreeMap<String, u64>>,
    /// Size limits of records.
    pub limits: Limits,
    /// How long a partition at its end waits before it stops holding the watermark back.
    pub idle_after: Duration,
    /// A partition assigned again is read again from its start (partitioned state workers
    /// rebuild its state), so what was handled of a revoked one is forgotten.
    pub rebuild: bool,
    /// With `rebuild`: a partition assigned is first looked up in this changelog; when it
    /// holds the partition's state, reading starts where that state was taken.
    pub changelog: Option<Box<dyn crate::saved::Restore>>,
}

/// What [`announce`] changes besides the partitions known.
struct Assigned<'a> {
    rebuild: bool,
    /// The last record handled per handed-on source.
    forwarded: &'a mut Option<BTreeMap<String, u64>>,
    /// The next offset per `topic/partition` below which records are passed over.
    start: &'a mut BTreeMap<String, i64>,
    changelog: &'a mut Option<Box<dyn crate::saved::Restore>>,
    order: &'a mut Contiguous,
    /// Partitions at their end, and since when (`None`: said idle already).
    at_end: &'a mut BTreeMap<String, Option<std::time::Instant>>,
    /// Partitions that reached their end since they were assigned.
    read_to_end: &'a mut std::collections::HashSet<String>,
}

impl Source for KafkaSource {
    fn run(self: Box<Self>, tx: crossbeam_channel::Sender<Input>, stop: Arc<AtomicBool>) {
        run_consumer(*self, tx, stop)
    }
}

fn run_consumer(source: KafkaSource, tx: crossbeam_channel::Sender<Input>, stop: Arc<AtomicBool>) {
    let KafkaSource {
        consumer,
        mut start,
        mut forwarded,
        limits,
        idle_after,
        rebuild,
        mut changelog,
    } = source;
    let mut order = Contiguous::default();
    let mut at_end: BTreeMap<String, Option<std::time::Instant>> = BTreeMap::new();
    let mut read_to_end: std::collections::HashSet<String> = Default::default();
    macro_rules! assigned {
        () => {
            Assigned {
                rebuild,
                forwarded: &mut forwarded,
                start: &mut start,
                changelog: &mut changelog,
                order: &mut order,
                at_end: &mut at_end,
                read_to_end: &mut read_to_end,
            }
        };
    }
    let year = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .year();
    let mut backoff = Duration::from_millis(100);
    let mut known: std::collections::HashSet<String> = Default::default();
    // What the reader learnt from each partition's raw records, for the records after them
    // (one per partition: bounded by the partitions assigned).
    let mut states: std::collections::HashMap<String, cellwarden_source::StreamState> =
        Default::default();
    let mut checked = std::time::Instant::now() - Duration::from_secs(1);
    let mut batch: Vec<Batch> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        // Partitions assigned to us hold the watermark back until they catch up.
        if checked.elapsed() > Duration::from_millis(500) {
            checked = std::time::Instant::now();
            if !announce(&consumer, &mut known, &mut assigned!(), &tx) {
                return;
            }
        }
        // A partition at its end for `idle_after` stops holding the watermark back (one whose
        // producer or first-stage worker is only slow or restarting must not be passed by).
        let now = std::time::Instant::now();
        for (name, since) in &mut at_end {
            if let Some(t) = since
                && now.duration_since(*t) >= idle_after
            {
                *since = None;
                if tx.send(Input::Idle(Arc::from(name.as_str()))).is_err() {
                    return;
                }
            }
        }
        let wait = if batch.is_empty() { 200 } else { 0 };
        let Some(result) = consumer.poll(Duration::from_millis(wait)) else {
            if !flush(&mut batch, &tx) {
                return;
            }
            continue;
        };
        if result.is_err() && !flush(&mut batch, &tx) {
            return;
        }
        let m = match result {
            Ok(m) => m,
            Err(KafkaError::PartitionEOF(p)) => {
                // An empty partition can reach its end before the periodic look at the
                // assignment announced it: announce first, or its end would be missed and it
                // would hold the watermark back until it gets a record.
                if !announce(&consumer, &mut known, &mut assigned!(), &tx) {
                    return;
                }
                for name in known.iter().filter(|n| n.ends_with(&format!("/{p}"))) {
                    // Handed-on sources are idle when the parse stage says so (see
                    // [`Forwarded::i`]), not when their partition is quiet.
                    if forwarded.is_none() {
                        at_end
                            .entry(name.clone())
                            .or_insert_with(|| Some(std::time::Instant::now()));
                    }
                    if read_to_end.insert(name.clone())
                        && tx.send(Input::ReadToEnd(Arc::from(name.as_str()))).is_err()
                    {
                        return;
                    }
                }
                continue;
            }
            Err(e) => {
                let _ = tx.send(Input::Error(SourceError::new(
                    &Arc::from("kafka"),
                    Position::File,
                    ErrorKind::Io,
                    format!("{e}; retrying in {backoff:?}"),
                )));
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        let (topic, partition, offset) = (m.topic().to_owned(), m.partition(), m.offset());
        let key = format!("{topic}/{partition}");
        let mut update = PositionUpdate::Kafka {
            partition: key.clone(),
            next: offset + 1,
            forwarded: None,
        };
        let name = source_name(&topic, partition);
        // A partition new to us: every assigned one is announced before its first record
        // (and, restored from a changelog, its records before the state's are passed over).
        if !known.contains(&name) {
            if !announce(&consumer, &mut known, &mut assigned!(), &tx) {
                return;
            }
            if known.insert(name.clone())
                && tx.send(Input::Known(Arc::from(name.as_str()))).is_err()
            {
                return;
            }
        }
        if start.get(&key).is_some_and(|s| offset < *s) {
            continue;
        }
        // Handed-on partitions: a record past the next offset waits (see `Contiguous`).
        if forwarded.is_some() {
            match order.check(&name, offset, std::time::Instant::now()) {
                Verdict::Take => {}
                Verdict::ReadAgain { from, first } => {
                    if first {
                        let _ = tx.send(Input::Note(format!(
                            "{name}: offset {offset} came before {from}; reading again from {from}"
                        )));
                    }
                    if !flush(&mut batch, &tx) {
                        return;
                    }
                    let _ = consumer.seek(&topic, partition, Offset::Offset(from), GAP_SEEK);
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                Verdict::GoOn { from } => {
                    let _ = tx.send(Input::Note(format!(
                        "{name}: offsets {from} to {} never came in {GAP_WAIT:?}; going on without them",
                        offset - 1
                    )));
                }
            }
        }
        at_end.remove(&name);
        let payload = m.payload().unwrap_or_default();
        let mut sink = Collect::default();
        if let Some(done) = forwarded.as_mut() {
            match serde_json::from_slice::<Forwarded>(payload) {
                Ok(f) if f.k == MARK && (f.i || f.n) => {
                    if !flush(&mut batch, &tx) {
                        return;
                    }
                    let clock = Arc::from(forwarded_key(&name, &f.f).as_str());
                    let input = if f.i {
                        Input::Idle(clock)
                    } else {
                        Input::Mark {
                            clock,
                            latest: i64::MIN,
                        }
                    };
                    if tx.send(input).is_err() || tx.send(Input::Position(update)).is_err() {
                        return;
                    }
                    continue;
                }
                Ok(f)
                    if done
                        .get(&forwarded_key(&name, &f.f))
                        .is_some_and(|l| f.l <= *l) =>
                {
                    // Sent again by a restarted first stage.
                }
                Ok(f) if f.k == MARK => {
                    // After the records read before it: a source's clock must not pass
                    // its records still in an open batch.
                    if !flush(&mut batch, &tx) {
                        return;
                    }
                    if let Some(latest) = f.t {
                        let clock = Arc::from(forwarded_key(&name, &f.f).as_str());
                        if tx.send(Input::Mark { clock, latest }).is_err() {
                            return;
                        }
                    }
                    if tx.send(Input::Position(update)).is_err() {
                        return;
                    }
                    continue;
                }
                Ok(f) => match crate::checkpoint::format_of(&f.k) {
                    Some(kind) => {
                        let seen = forwarded_key(&name, &f.f);
                        done.insert(seen.clone(), f.l);
                        if let PositionUpdate::Kafka { forwarded, .. } = &mut update {
                            *forwarded = Some((seen.clone(), f.l));
                        }
                        let key = (name.clone(), f.f, kind, f.y, f.h, f.u);
                        let clock = Arc::from(seen.as_str());
                        if !add(
                            &mut batch,
                            key,
                            f.l,
                            f.r.as_bytes(),
                            update,
                            Some(clock),
                            &tx,
                        ) {
                            return;
                        }
                        continue;
                    }
                    None => sink
                        .errors
                        .push(bad(&name, offset, "unknown format in envelope")),
                },
                Err(e) => {
                    sink.errors
                        .push(bad(&name, offset, &format!("not a forwarded record: {e}")))
                }
            }
        } else {
            let kind = match cellwarden_source::sniff(payload) {
                Some(Format::Evtx | Format::Capture | Format::ZeekTsv) | None => Format::Json,
                Some(k) => k,
            };
            if kind == Format::Json && payload.len() <= limits.max_record_bytes {
                // One JSON event per record: batched into one unit, numbered offset + 1.
                let line = u64::try_from(offset).unwrap_or(0) + 1;
                let key = (name.clone(), name.clone(), kind, year, None, 0);
                if !add(&mut batch, key, line, payload, update, None, &tx) {
                    return;
                }
                continue;
            }
            if !flush(&mut batch, &tx) {
                return;
            }
            let file: Arc<str> = Arc::from(name.as_str());
            // A record is one event, numbered like a line: offset + 1 (its first line).
            let base = u64::try_from(offset).unwrap_or(0);
            let ctx = cellwarden_source::Context::of_year(year);
            // States of partitions no longer assigned go (bounded by the assignment).
            if states.len() > known.len() {
                states.retain(|n, _| known.contains(n));
            }
            let state = states.entry(name.clone()).or_default();
            cellwarden_source::read_chunk(
                &file, payload, kind, &ctx, base, &limits, state, &mut sink,
            );
        }
        if !flush(&mut batch, &tx) {
            return;
        }
        let clock = forwarded.is_some().then(|| Arc::from(name.as_str()));
        if !sink.send(update, clock, &tx) {
            return;
        }
    }
}

/// The next offset of each handed-on partition, and the gap being waited for in each.
///
/// A handed-on partition is written by the parse stage's idempotent producers: its offsets
/// have no gaps. A record past the next offset means the broker showed a later batch before an
/// earlier one was readable (tansu 0.6 does, with several producers on one partition: it raises
/// a partition's high watermark before the batch is stored, and a fetch answers with the stored
/// batches from the offset on); going on would lose the earlier records for good (a source's
/// records after them are handled, so they would look sent again). The partition is read again
/// from the missing offset for up to [`GAP_WAIT`], then the gap is let go, and said.
#[derive(Default)]
struct Contiguous {
    expected: BTreeMap<String, i64>,
    gaps: BTreeMap<String, (i64, std::time::Instant)>,
}

/// What to do with a record of a handed-on partition.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// In order.
    Take,
    /// Offsets from `from` are missing: read again from there (`first`: the gap is new).
    ReadAgain { from: i64, first: bool },
    /// Offsets from `from` to this one never came within [`GAP_WAIT`]: take it anyway.
    GoOn { from: i64 },
}

impl Contiguous {
    fn check(&mut self, name: &str, offset: i64, now: std::time::Instant) -> Verdict {
        if let Some(&want) = self.expected.get(name)
            && offset > want
        {
            let (first, since) = match self.gaps.get(name) {
                Some((at, t)) if *at == want => (false, *t),
                _ => {
                    self.gaps.insert(name.to_owned(), (want, now));
                    (true, now)
                }
            };
            if now.duration_since(since) < GAP_WAIT {
                return Verdict::ReadAgain { from: want, first };
            }
            self.gaps.remove(name);
            self.expected.insert(name.to_owned(), offset + 1);
            return Verdict::GoOn { from: want };
        }
        // In order, or back to an earlier offset (a partition read again from its start).
        self.gaps.remove(name);
        self.expected.insert(name.to_owned(), offset + 1);
        Verdict::Take
    }

    /// The next record of `name` is at `offset` (a partition restored from a changelog is
    /// read from where its state was taken: a gap after it is waited for like any other).
    fn expect(&mut self, name: &str, offset: i64) {
        self.gaps.remove(name);
        self.expected.insert(name.to_owned(), offset);
    }

    /// Forgets partition `name`, no longer assigned.
    fn forget(&mut self, name: &str) {
        self.expected.remove(name);
        self.gaps.remove(name);
    }
}

/// Records of one source and format, read from one partition, gathered into one unit.
struct Batch {
    /// Offset of its first record.
    first: i64,
    key: BatchKey,
    buf: Vec<u8>,
    records: Vec<(u64, usize, usize)>,
    update: PositionUpdate,
    clock: Option<Arc<str>>,
}

/// Partition read from, source, format, year, column header, uses. The partition is part of
/// it: records of one source are handed on to every partition, and one unit goes to the
/// state of one partition (its clock and position are that partition's).
type BatchKey = (String, String, Format, i16, Option<Vec<String>>, u8);

const BATCH_RECORDS: usize = 1024;
/// Batches open at once (one per source, format and use): at most a quarter of the loop's
/// channel is sent at once.
const MAX_BATCHES: usize = 16;

/// Adds a record to the open batch of its key; all are sent when one is full (records of
/// several sources interleave in a partition of handed-on records: one batch each keeps the
/// units large). False when the loop is gone.
fn add(
    batches: &mut Vec<Batch>,
    key: BatchKey,
    line: u64,
    text: &[u8],
    update: PositionUpdate,
    clock: Option<Arc<str>>,
    tx: &crossbeam_channel::Sender<Input>,
) -> bool {
    let at = match batches.iter().position(|b| b.key == key) {
        Some(i) => i,
        None => {
            if batches.len() >= MAX_BATCHES && !flush(batches, tx) {
                return false;
            }
            batches.push(Batch {
                first: next_offset(&update) - 1,
                key,
                buf: Vec::new(),
                records: Vec::new(),
                update: update.clone(),
                clock,
            });
            batches.len() - 1
        }
    };
    let b = &mut batches[at];
    let start = b.buf.len();
    b.buf.extend_from_slice(text);
    b.records.push((line, start, b.buf.len()));
    b.update = update;
    if b.records.len() >= BATCH_RECORDS {
        return flush(batches, tx);
    }
    true
}

/// The next offset a position names.
fn next_offset(u: &PositionUpdate) -> i64 {
    match u {
        PositionUpdate::Kafka { next, .. } => *next,
        _ => 0,
    }
}

/// Sends the open batches, in the order of their last records (a partition's position only
/// moves forward); false when the loop is gone.
///
/// Records of several sources interleave in a handed-on partition, so a batch sent first may
/// end after the first record of one sent later. The position each batch carries is where
/// reading may start again once it and those before it are handled: its end, or the first
/// record of a batch of the same partition still to come, whichever is first. A checkpoint or
/// a saved state taken between two batches then never names as handled a record that is not
/// (the records after that position that were handled are known by their sources' record
/// numbers, and left out when read again).
fn flush(batches: &mut Vec<Batch>, tx: &crossbeam_channel::Sender<Input>) -> bool {
    batches.sort_by_key(|b| next_offset(&b.update));
    let mut first_after: BTreeMap<String, i64> = BTreeMap::new();
    for b in batches.iter_mut().rev() {
        if let PositionUpdate::Kafka {
            partition, next, ..
        } = &mut b.update
        {
            match first_after.get_mut(partition.as_str()) {
                Some(floor) => {
                    *next = (*next).min(*floor);
                    *floor = (*floor).min(b.first);
                }
                None => {
                    first_after.insert(partition.clone(), b.first);
                }
            }
        }
    }
    for b in batches.drain(..) {
        let (_, file, kind, year, header, uses) = b.key;
        let sent = tx.send(Input::Unit {
            unit: Unit::Records {
                file: Arc::from(file.as_str()),
                kind,
                context: Arc::new(cellwarden_source::Context::of_year(year)),
                buf: b.buf,
                records: b.records,
                header: header.map(Into::into),
                order: None,
            }
            .into(),
            position: Some(b.update),
            clock: b.clock,
            uses: Uses::from_bits(uses),
        });
        if sent.is_err() {
            return false;
        }
    }
    true
}

/// Announces the partitions assigned now that were not before, and those no longer
/// assigned (with `rebuild`, forgetting which of their records were handled: read again from
/// the start, they rebuild the partition's state); false when the loop is gone.
fn announce(
    consumer: &BaseConsumer,
    known: &mut std::collections::HashSet<String>,
    a: &mut Assigned<'_>,
    tx: &crossbeam_channel::Sender<Input>,
) -> bool {
    if let Ok(tpl) = consumer.assignment() {
        let now: std::collections::HashSet<String> = tpl
            .elements()
            .iter()
            .map(|e| source_name(e.topic(), e.partition()))
            .collect();
        let gone: Vec<String> = known.difference(&now).cloned().collect();
        for name in gone {
            if !revoked(&name, known, a, tx) {
                return false;
            }
        }
        for name in now {
            if known.contains(&name) {
                continue;
            }
            known.insert(name.clone());
            if a.rebuild && a.changelog.is_some() && !restore(consumer, &name, a, tx) {
                return false;
            }
            if tx.send(Input::Known(Arc::from(name.as_str()))).is_err() {
                return false;
            }
        }
    }
    true
}

/// Forgets partition `name`, no longer assigned, and says so; false when the loop is gone.
fn revoked(
    name: &str,
    known: &mut std::collections::HashSet<String>,
    a: &mut Assigned<'_>,
    tx: &crossbeam_channel::Sender<Input>,
) -> bool {
    known.remove(name);
    // Assigned again later, it is new: its end is met and said again (a partition said idle
    // before would otherwise never be said idle after its source mark, and a state partition
    // never read to its end).
    a.at_end.remove(name);
    a.read_to_end.remove(name);
    a.order.forget(name);
    if a.rebuild {
        if let Some(done) = a.forwarded.as_mut() {
            let prefix = forwarded_key(name, "");
            done.retain(|k, _| !k.starts_with(&prefix));
        }
        a.start.remove(partition_key(name));
    }
    tx.send(Input::Revoked(Arc::from(name))).is_ok()
}

/// Looks partition `name` up in the changelog: with a state there, its records are read
/// from where the state was taken (those after it that the state holds are known by their
/// sources' record numbers), and the state goes to the loop. False when the loop is gone.
fn restore(
    consumer: &BaseConsumer,
    name: &str,
    a: &mut Assigned<'_>,
    tx: &crossbeam_channel::Sender<Input>,
) -> bool {
    let Some(reader) = a.changelog.as_mut() else {
        return true;
    };
    let key = partition_key(name);
    let Some((topic, p)) = key
        .rsplit_once('/')
        .and_then(|(t, p)| Some((t, p.parse::<i32>().ok()?)))
    else {
        return true;
    };
    let restored = match reader.restore(p as u32) {
        Ok(r) => r,
        Err(e) => {
            return tx
                .send(Input::Note(format!(
                    "{name}: state not restored from the changelog ({e}); rebuilt from the topic's start"
                )))
                .is_ok();
        }
    };
    if let Some(saved) = &restored.saved {
        a.start.insert(key.to_owned(), saved.next);
        a.order.expect(name, saved.next);
        if let Some(done) = a.forwarded.as_mut() {
            done.extend(saved.handled.iter().cloned());
        }
        // Not fetched again when the seek is taken (the records before it are passed over
        // all the same when it is not: a partition just assigned may not be fetching yet).
        let _ = consumer.seek(topic, p, Offset::Offset(saved.next), GAP_SEEK);
    }
    tx.send(Input::Restored {
        name: Arc::from(name),
        restored: Box::new(restored),
    })
    .is_ok()
}

fn bad(name: &str, offset: i64, m: &str) -> SourceError {
    SourceError::new(
        &Arc::from(name),
        Position::Record {
            chunk: 0,
            record: u64::try_from(offset).unwrap_or(0),
        },
        ErrorKind::Syntax,
        format!("{m}; skipped"),
    )
}

/// Commits the offsets (`topic/partition` → next offset) the checkpoint covers, of the
/// partitions assigned now only: the checkpoint keeps every partition this worker ever read,
/// and committing where it stopped on one that moved to another worker would move the group's
/// offset back under the new owner (whose restart would read again what it handled).
pub fn commit(consumer: &BaseConsumer, offsets: &BTreeMap<String, i64>) -> Result<(), ClientError> {
    let assigned = consumer
        .assignment()
        .map_err(failed("assignment before an offset commit"))?;
    let mut tpl = TopicPartitionList::new();
    for (topic, p, next) in owned(offsets, &assigned) {
        tpl.add_partition_offset(topic, p, Offset::Offset(next))
            .map_err(failed(format!("offset of {topic}/{p}")))?;
    }
    if tpl.count() == 0 {
        return Ok(());
    }
    consumer
        .commit(&tpl, CommitMode::Sync)
        .map_err(failed("offset commit"))
}

/// The offsets of `offsets` whose partition is in `assigned`, as (topic, partition, next).
fn owned<'a>(
    offsets: &'a BTreeMap<String, i64>,
    assigned: &TopicPartitionList,
) -> Vec<(&'a str, i32, i64)> {
    offsets
        .iter()
        .filter_map(|(k, next)| {
            let (topic, p) = k.rsplit_once('/')?;
            let p = p.parse::<i32>().ok()?;
            assigned.find_partition(topic, p).map(|_| (topic, p, *next))
        })
        .collect()
}

/// Counts failed deliveries.
#[derive(Default)]
pub struct Deliveries {
    failed: AtomicU64,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// An idempotent producer (`enable.idempotence`, `acks=all`).
pub fn producer(config: &KafkaConfig) -> Result<BaseProducer<Deliveries>, ClientError> {
    config
        .client(&[("linger.ms", "20")])
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create_with_context(Deliveries::default())
        .map_err(failed("Kafka producer"))
}

/// Hands one record to the producer, waiting while its queue is full.
pub(crate) fn send_waiting<K: rdkafka::message::ToBytes + ?Sized>(
    producer: &BaseProducer<Deliveries>,
    mut record: BaseRecord<'_, K, [u8]>,
) -> Result<(), KafkaError> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((
                KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                r,
            )) => {
                record = r;
                producer.poll(Duration::from_millis(50));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Messages produced since the last durable point, kept to send again if any failed.
struct Outbox {
    producer: BaseProducer<Deliveries>,
    topic: String,
    pending: Vec<(String, Option<i32>, Vec<u8>)>,
    failed_before: u64,
}

impl Outbox {
    fn send(&mut self, key: String, partition: Option<i32>, payload: Vec<u8>) {
        self.produce(&key, partition, &payload);
        self.pending.push((key, partition, payload));
    }

    fn produce(&self, key: &str, partition: Option<i32>, payload: &[u8]) {
        let mut record = BaseRecord::to(&self.topic).key(key).payload(payload);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        // Counted as a failed delivery: sent again at the next durable point.
        if send_waiting(&self.producer, record).is_err() {
            self.producer
                .context()
                .failed
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Waits until every pending message is acknowledged; sends all again when one failed
    /// (keys make the copies idempotent downstream).
    fn durable(&mut self) -> std::io::Result<()> {
        self.producer
            .flush(Duration::from_secs(30))
            .map_err(std::io::Error::other)?;
        let failed = self.producer.context().failed.load(Ordering::Relaxed);
        if failed != self.failed_before {
            self.failed_before = failed;
            for (k, part, p) in &self.pending {
                self.produce(k, *part, p);
            }
            return Err(std::io::Error::other(format!(
                "Kafka delivery to {} failed; {} messages sent again",
                self.topic,
                self.pending.len()
            )));
        }
        self.pending.clear();
        Ok(())
    }
}

/// Writes alerts to a topic, keyed by the alert's key.
pub struct AlertTopic(Outbox);

impl AlertTopic {
    /// A producer of alerts to `topic`.
    pub fn new(config: &KafkaConfig, topic: &str) -> Result<AlertTopic, ClientError> {
        Ok(AlertTopic(Outbox {
            producer: producer(config)?,
            topic: topic.to_owned(),
            pending: Vec::new(),
            failed_before: 0,
        }))
    }
}

impl AlertSink for AlertTopic {
    fn write(&mut self, alerts: &[Alert]) -> std::io::Result<()> {
        for a in alerts {
            let payload = serde_json::to_vec(&cellwarden_report::AlertJson(a))?;
            self.0.send(cellwarden_store::stable_key(a), None, payload);
        }
        self.0.producer.poll(Duration::ZERO);
        Ok(())
    }

    fn durable(&mut self) -> std::io::Result<()> {
        self.0.durable()
    }
}

/// The first stage's output: stateful records to the internal topic. A record goes to the
/// partition of the entity whose aggregates it feeds (account, source host, DNS domain: see
/// [`cellwarden_pipeline::partition_of`]), and to partition 0 when correlations need it; each
/// source's records keep their order within each partition. State workers can then split
/// the partitions between them (see `docs/watch.md`).
pub struct ForwardTopic {
    out: Outbox,
    partitions: u32,
}

impl ForwardTopic {
    /// A producer of handed-on records to `topic` (which must exist: its partition count
    /// decides where each entity goes).
    pub fn new(config: &KafkaConfig, topic: &str) -> Result<ForwardTopic, ClientError> {
        let producer = producer(config)?;
        let partitions = partition_count(producer.client(), topic)?;
        Ok(ForwardTopic {
            out: Outbox {
                producer,
                topic: topic.to_owned(),
                pending: Vec::new(),
                failed_before: 0,
            },
            partitions,
        })
    }
}

/// Partitions of an existing topic.
pub fn partition_count<C: rdkafka::client::ClientContext>(
    client: &rdkafka::client::Client<C>,
    topic: &str,
) -> Result<u32, ClientError> {
    let md = client
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .map_err(failed(format!("Kafka metadata of {topic}")))?;
    let n = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map_or(0, |t| t.partitions().len());
    if n == 0 {
        return Err(ClientError {
            what: format!("Kafka topic {topic}: no partitions (create it first)"),
            source: KafkaError::MetadataFetch(
                rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition,
            ),
        });
    }
    Ok(n as u32)
}

impl ForwardTopic {
    /// Tells every partition that `source` is read from now on, or (`idle`) at its end.
    fn source_mark(&mut self, source: &str, idle: bool) -> std::io::Result<()> {
        let mark = serde_json::to_vec(&Forwarded {
            f: source.to_owned(),
            k: MARK.to_owned(),
            i: idle,
            n: !idle,
            ..Default::default()
        })?;
        for p in 0..self.partitions {
            self.out
                .send(source.to_owned(), Some(p as i32), mark.clone());
        }
        self.out.producer.poll(Duration::ZERO);
        Ok(())
    }
}

impl RecordSink for ForwardTopic {
    fn records(
        &mut self,
        unit: &UnitCopy,
        lines: &[Handed],
        latest: Option<i64>,
    ) -> std::io::Result<()> {
        let wanted: std::collections::HashMap<u64, Handed> =
            lines.iter().map(|l| (l.record, *l)).collect();
        let mut got = vec![false; self.partitions as usize];
        for (line, start, end) in &unit.records {
            let Some(h) = wanted.get(line) else {
                continue;
            };
            let mut f = Forwarded {
                f: unit.file.to_string(),
                l: *line,
                k: crate::checkpoint::format_name(unit.kind).to_owned(),
                y: unit.year,
                h: unit.header.as_ref().map(|h| h.to_vec()),
                r: String::from_utf8_lossy(&unit.buf[*start..*end]).into_owned(),
                ..Default::default()
            };
            // (partition, uses): the entity's partition for the aggregates, partition 0 for
            // correlations; one copy when they are the same.
            let mut to: Vec<(u32, Uses)> = Vec::with_capacity(2);
            if h.aggregates {
                let p = partition_of(h.entity.unwrap_or(0), self.partitions);
                to.push((
                    p,
                    Uses {
                        aggregates: true,
                        correlation: h.correlation && p == 0,
                    },
                ));
            }
            if h.correlation && to.first().is_none_or(|(p, _)| *p != 0) {
                to.push((
                    0,
                    Uses {
                        aggregates: false,
                        correlation: true,
                    },
                ));
            }
            for (p, uses) in to {
                f.u = uses.bits();
                if let Some(g) = got.get_mut(p as usize) {
                    *g = true;
                }
                self.out.send(
                    unit.file.to_string(),
                    Some(p as i32),
                    serde_json::to_vec(&f)?,
                );
            }
        }
        // Marks: the partitions that got none of this unit's records still learn how far
        // its source went (after its records, in each partition's order).
        if let (Some(t), Some(last)) = (latest.filter(|t| *t != i64::MIN), unit.records.last()) {
            let mark = serde_json::to_vec(&Forwarded {
                f: unit.file.to_string(),
                l: last.0,
                k: MARK.to_owned(),
                y: unit.year,
                t: Some(t),
                ..Default::default()
            })?;
            for (p, g) in got.iter().enumerate() {
                if !g {
                    self.out
                        .send(unit.file.to_string(), Some(p as i32), mark.clone());
                }
            }
        }
        self.out.producer.poll(Duration::ZERO);
        Ok(())
    }

    fn known(&mut self, source: &str) -> std::io::Result<()> {
        self.source_mark(source, false)
    }

    fn idle(&mut self, source: &str) -> std::io::Result<()> {
        self.source_mark(source, true)
    }

    fn durable(&mut self) -> std::io::Result<()> {
        self.out.durable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_revoked_is_met_at_its_end_again_once_given_back() {
        let (p, q) = ("kafka://input/1", "kafka://input/2");
        let mut known: std::collections::HashSet<String> =
            [p, q].into_iter().map(String::from).collect();
        // Both were read to their end and said idle.
        let mut at_end: BTreeMap<String, Option<std::time::Instant>> =
            [(p.to_owned(), None), (q.to_owned(), None)].into();
        let mut read_to_end: std::collections::HashSet<String> = known.clone();
        let (mut forwarded, mut start, mut changelog, mut order) =
            (None, BTreeMap::new(), None, Contiguous::default());
        let mut a = Assigned {
            rebuild: false,
            forwarded: &mut forwarded,
            start: &mut start,
            changelog: &mut changelog,
            order: &mut order,
            at_end: &mut at_end,
            read_to_end: &mut read_to_end,
        };
        let (tx, rx) = crossbeam_channel::unbounded();
        assert!(revoked(p, &mut known, &mut a, &tx));
        assert!(matches!(rx.try_recv(), Ok(Input::Revoked(n)) if &*n == p));
        // Given back, its end starts a new wait before it is said idle, and a state
        // partition is read to its end again before it is judged.
        assert!(!known.contains(p) && !at_end.contains_key(p) && !read_to_end.contains(p));
        // The other stays as it was.
        assert_eq!(at_end.get(q), Some(&None));
        assert!(read_to_end.contains(q));
    }

    #[test]
    fn only_assigned_partitions_offsets_are_committed() {
        let offsets: BTreeMap<String, i64> = [
            ("logs/0".to_owned(), 10),
            ("logs/1".to_owned(), 20),
            ("other.topic/1".to_owned(), 30),
            ("no-partition".to_owned(), 40),
        ]
        .into_iter()
        .collect();
        let mut assigned = TopicPartitionList::new();
        assigned.add_partition("logs", 1);
        assigned.add_partition("other.topic", 1);
        assigned.add_partition("logs", 7);
        assert_eq!(
            owned(&offsets, &assigned),
            vec![("logs", 1, 20), ("other.topic", 1, 30)]
        );
        assert!(owned(&offsets, &TopicPartitionList::new()).is_empty());
    }

    #[test]
    fn interleaved_batches_name_no_record_handled_before_it_is() {
        let update = |partition: &str, offset: i64| PositionUpdate::Kafka {
            partition: partition.into(),
            next: offset + 1,
            forwarded: None,
        };
        let mut batches = Vec::new();
        let (tx, rx) = crossbeam_channel::unbounded();
        // Source a at offsets 10 and 13 of h/0, source b at 11 and 12; on h/1, source c at 5
        // and source a at 6 (every source is handed on to every partition).
        for (source, partition, offset) in [
            ("a", "h/0", 10),
            ("b", "h/0", 11),
            ("b", "h/0", 12),
            ("a", "h/0", 13),
            ("c", "h/1", 5),
            ("a", "h/1", 6),
        ] {
            let u = update(partition, offset);
            let key = (
                partition.to_owned(),
                source.to_owned(),
                Format::Json,
                2026,
                None,
                1,
            );
            let clock = Some(Arc::from(format!("{partition} {source}").as_str()));
            assert!(add(&mut batches, key, offset as u64, b"{}", u, clock, &tx));
        }
        assert!(flush(&mut batches, &tx));
        let sent: Vec<(String, i64, String, Vec<u64>)> = rx
            .try_iter()
            .filter_map(|i| match i {
                Input::Unit {
                    unit,
                    position:
                        Some(PositionUpdate::Kafka {
                            partition, next, ..
                        }),
                    clock,
                    ..
                } => {
                    let crate::source::Work::Unit(Unit::Records { records, .. }) = unit else {
                        return None;
                    };
                    let lines = records.iter().map(|r| r.0).collect();
                    Some((partition, next, clock?.to_string(), lines))
                }
                _ => None,
            })
            .collect();
        // h/1's c then a (each unit holds its own partition's records, under its clock),
        // then b (a's offset 10 is still to come), then a.
        let unit = |p: &str, next: i64, source: &str, lines: &[u64]| {
            (p.to_owned(), next, format!("{p} {source}"), lines.to_vec())
        };
        assert_eq!(
            sent,
            [
                unit("h/1", 6, "c", &[5]),
                unit("h/1", 7, "a", &[6]),
                unit("h/0", 10, "b", &[11, 12]),
                unit("h/0", 14, "a", &[10, 13]),
            ]
        );
    }

    #[test]
    fn a_handed_on_partition_is_read_again_from_a_missing_offset_for_a_while() {
        let mut o = Contiguous::default();
        let t = std::time::Instant::now();
        let p = "kafka://handoff/0";
        for off in 0..3 {
            assert_eq!(o.check(p, off, t), Verdict::Take);
        }
        // 3 is missing: read again from it, said once.
        assert_eq!(
            o.check(p, 4, t),
            Verdict::ReadAgain {
                from: 3,
                first: true
            }
        );
        let later = t + Duration::from_secs(1);
        assert_eq!(
            o.check(p, 4, later),
            Verdict::ReadAgain {
                from: 3,
                first: false
            }
        );
        assert_eq!(o.check(p, 3, later), Verdict::Take);
        assert_eq!(o.check(p, 4, later), Verdict::Take);
        // Another partition is checked on its own.
        assert_eq!(o.check("kafka://handoff/1", 9, t), Verdict::Take);
        // 5 never comes: after GAP_WAIT the record after the gap is taken.
        assert_eq!(
            o.check(p, 6, later),
            Verdict::ReadAgain {
                from: 5,
                first: true
            }
        );
        let much_later = later + GAP_WAIT;
        assert_eq!(o.check(p, 6, much_later), Verdict::GoOn { from: 5 });
        assert_eq!(o.check(p, 7, much_later), Verdict::Take);
        // Read again from its start (a partition assigned again): in order.
        assert_eq!(o.check(p, 0, much_later), Verdict::Take);
        assert_eq!(o.check(p, 1, much_later), Verdict::Take);
        // A partition no longer assigned is forgotten.
        o.forget(p);
        assert_eq!(o.check(p, 5, much_later), Verdict::Take);
    }
}
