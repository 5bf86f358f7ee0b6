//! The changelog topic of partitioned state workers (`--changelog TOPIC`): each partition's
//! whole state, written after it judges days, so that a worker taking the partition over
//! restores it and reads the handed-on partition from where that state was taken, instead of
//! rebuilding it from the topic's start.
//!
//! A partition's state is one [`Saved`] (postcard), cut into chunks of at most [`CHUNK`]
//! bytes. Chunks are keyed `P.S.I` (handed-on partition, slot, chunk number) and go to the
//! changelog partition `P mod N`, so a compacted topic keeps the latest value of each key.
//! Successive states of a partition are written to two slots in turn: one interrupted
//! halfway (the worker died, or lost the partition while writing) leaves the other whole.
//! A state is taken whole when every chunk of its slot carries the same writer, generation and
//! count; the newest whole one wins. Chunks beyond a shorter state's count are deleted
//! (null values). Every chunk names the rule set's fingerprint: the state of other rules
//! (correlations count matches of rules by number) is not restored.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::kafka::{ClientError, Deliveries, KafkaConfig, send_waiting};
pub use crate::saved::{Restored, Saved, Slots};

/// Largest chunk (under the broker's default message limit of 1 MB).
pub const CHUNK: usize = 512 * 1024;

/// Longest time a restore reads the changelog before it gives up and rebuilds.
const READ_FOR: Duration = Duration::from_secs(60);

/// One chunk of a saved state.
#[derive(Debug, Serialize, Deserialize)]
struct Chunk {
    /// The rule set's fingerprint.
    rules: String,
    /// The process that wrote it (two workers may both believe they own a partition for a
    /// moment).
    writer: u64,
    generation: u64,
    index: u32,
    count: u32,
    bytes: Vec<u8>,
}

/// Writes partitions' states to the changelog topic.
pub struct Changelog {
    topic: String,
    /// Partitions of the changelog topic.
    partitions: u32,
    rules: String,
    writer: u64,
    producer: BaseProducer<Deliveries>,
    slots: BTreeMap<u32, Slots>,
}

/// Reads partitions' states back from the changelog topic (on the thread that reads the
/// handed-on partitions: it must know where to start reading a partition it is assigned).
pub struct ChangelogReader {
    config: KafkaConfig,
    topic: String,
    partitions: u32,
    rules: String,
    reader: Option<BaseConsumer>,
}

fn key(p: u32, slot: u64, index: u32) -> String {
    format!("{p}.{slot}.{index}")
}

/// The handed-on partition, slot and chunk number of a key.
fn parse_key(k: &[u8]) -> Option<(u32, usize, u32)> {
    let k = std::str::from_utf8(k).ok()?;
    let mut it = k.split('.');
    let p = it.next()?.parse().ok()?;
    let s = it.next()?.parse().ok()?;
    let i = it.next()?.parse().ok()?;
    (s < 2 && it.next().is_none()).then_some((p, s, i))
}

impl Changelog {
    /// A writer and reader of `topic` (which must exist; compacted), for states of the rule
    /// set `rules` (its fingerprint).
    pub fn new(config: &KafkaConfig, topic: &str, rules: &str) -> Result<Changelog, ClientError> {
        let producer = crate::kafka::producer(config)?;
        let partitions = crate::kafka::partition_count(producer.client(), topic)?;
        let writer = jiff::Timestamp::now().as_nanosecond() as u64 ^ u64::from(std::process::id());
        Ok(Changelog {
            topic: topic.to_owned(),
            partitions,
            rules: rules.to_owned(),
            writer,
            producer,
            slots: BTreeMap::new(),
        })
    }

    /// A reader of the same topic.
    pub fn reader(&self, config: &KafkaConfig) -> ChangelogReader {
        ChangelogReader {
            config: config.clone(),
            topic: self.topic.clone(),
            partitions: self.partitions,
            rules: self.rules.clone(),
            reader: None,
        }
    }

    /// Takes in what a reader found of partition `p` (the next states' generations follow
    /// the highest there, and the slots' chunk counts are known).
    pub fn learn(&mut self, p: u32, found: Slots) {
        let s = self.slots.entry(p).or_default();
        s.generation = s.generation.max(found.generation);
        for (mine, theirs) in s.counts.iter_mut().zip(found.counts) {
            *mine = (*mine).max(theirs);
        }
    }

    /// Writes partition `p`'s state; returns its size in bytes. Delivery is waited for at
    /// [`durable`](Self::durable); a state not delivered whole is passed over when read.
    pub fn write(&mut self, p: u32, saved: &Saved) -> Result<usize, String> {
        let bytes = postcard::to_stdvec(saved).map_err(|e| e.to_string())?;
        let slots = self.slots.entry(p).or_default();
        let generation = slots.generation;
        slots.generation += 1;
        let slot = generation % 2;
        let parts: Vec<&[u8]> = if bytes.is_empty() {
            vec![&[]]
        } else {
            bytes.chunks(CHUNK).collect()
        };
        let count = parts.len() as u32;
        let target = (p % self.partitions) as i32;
        for (index, part) in (0..count).zip(parts) {
            let chunk = Chunk {
                rules: self.rules.clone(),
                writer: self.writer,
                generation,
                index,
                count,
                bytes: part.to_vec(),
            };
            let payload = postcard::to_stdvec(&chunk).map_err(|e| e.to_string())?;
            let k = key(p, slot, index);
            send_waiting(
                &self.producer,
                BaseRecord::to(&self.topic)
                    .key(k.as_str())
                    .payload(payload.as_slice())
                    .partition(target),
            )
            .map_err(|e| e.to_string())?;
        }
        // Chunks a longer state left in this slot.
        let before = std::mem::replace(&mut slots.counts[slot as usize], count);
        for index in count..before {
            let k = key(p, slot, index);
            send_waiting(
                &self.producer,
                BaseRecord::<str, [u8]>::to(&self.topic)
                    .key(k.as_str())
                    .partition(target),
            )
            .map_err(|e| e.to_string())?;
        }
        Ok(bytes.len())
    }

    /// Waits until what was written is acknowledged.
    pub fn durable(&self) -> Result<(), String> {
        self.producer
            .flush(Duration::from_secs(30))
            .map_err(|e| format!("changelog {}: {e}", self.topic))
    }
}

impl crate::saved::Restore for ChangelogReader {
    /// The newest whole state of partition `p` on the changelog, if any (read from the
    /// changelog partition's start to its end).
    fn restore(&mut self, p: u32) -> Result<Restored, String> {
        let started = Instant::now();
        let reader = match self.reader.take() {
            Some(r) => r,
            None => self.open_reader().map_err(|e| e.to_string())?,
        };
        let target = (p % self.partitions) as i32;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, target, Offset::Beginning)
            .map_err(|e| e.to_string())?;
        reader.assign(&tpl).map_err(|e| e.to_string())?;
        // Key → latest chunk.
        let mut latest: BTreeMap<(usize, u32), Chunk> = BTreeMap::new();
        let mut highest = None::<u64>;
        let mut at_end = false;
        while !at_end && started.elapsed() < READ_FOR {
            match reader.poll(Duration::from_millis(200)) {
                None => {}
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => at_end = true,
                Some(Err(e)) => return Err(format!("changelog {}: {e}", self.topic)),
                Some(Ok(m)) => {
                    let Some((q, slot, index)) = m.key().and_then(parse_key) else {
                        continue;
                    };
                    if q != p {
                        continue;
                    }
                    match m.payload().map(postcard::from_bytes::<Chunk>) {
                        None => {
                            latest.remove(&(slot, index));
                        }
                        Some(Ok(c)) => {
                            highest = Some(highest.map_or(c.generation, |h| h.max(c.generation)));
                            latest.insert((slot, index), c);
                        }
                        Some(Err(_)) => {
                            latest.remove(&(slot, index));
                        }
                    }
                }
            }
        }
        self.reader = Some(reader);
        if !at_end {
            return Err(format!(
                "changelog {}: partition {target} not read to its end in {READ_FOR:?}",
                self.topic
            ));
        }
        let mut slots = Slots {
            generation: highest.map_or(0, |h| h + 1),
            counts: [0; 2],
        };
        for ((slot, index), _) in latest.iter() {
            slots.counts[*slot] = slots.counts[*slot].max(index + 1);
        }
        let Some((generation, slot)) = newest_whole(&latest, &self.rules) else {
            return Ok(Restored {
                saved: None,
                said: format!(
                    "no whole state of these rules ({} chunk(s) read)",
                    latest.len()
                ),
                slots,
            });
        };
        let mut bytes = Vec::new();
        for (_, c) in latest.range((slot, 0)..(slot + 1, 0)) {
            bytes.extend_from_slice(&c.bytes);
        }
        let saved: Saved = postcard::from_bytes(&bytes).map_err(|e| {
            format!(
                "changelog {}: partition {p}'s state unreadable: {e}",
                self.topic
            )
        })?;
        Ok(Restored {
            said: format!(
                "generation {generation}, {} bytes, read in {:.1}s",
                bytes.len(),
                started.elapsed().as_secs_f64()
            ),
            saved: Some(saved),
            slots,
        })
    }
}

impl ChangelogReader {
    fn open_reader(&self) -> Result<BaseConsumer, ClientError> {
        let group = format!(
            "cellwarden-changelog-{}-{}",
            std::process::id(),
            jiff::Timestamp::now().as_nanosecond()
        );
        crate::kafka::unassigned_reader(
            &self.config,
            &self.topic,
            &group,
            &[
                ("enable.partition.eof", "true"),
                // The end of a partition is seen sooner (a broker may hold a fetch its whole
                // wait).
                ("fetch.wait.max.ms", "50"),
            ],
        )
    }
}

/// The generation and slot of the newest slot whose chunks are one whole state of `rules`.
fn newest_whole(latest: &BTreeMap<(usize, u32), Chunk>, rules: &str) -> Option<(u64, usize)> {
    let mut best: Option<(u64, usize)> = None;
    for slot in 0..2 {
        let chunks: Vec<&Chunk> = latest
            .range((slot, 0)..(slot + 1, 0))
            .map(|(_, c)| c)
            .collect();
        let Some(first) = chunks.first() else {
            continue;
        };
        let whole = chunks.len() == first.count as usize
            && chunks.iter().enumerate().all(|(i, c)| {
                c.index as usize == i
                    && c.generation == first.generation
                    && c.writer == first.writer
                    && c.count == first.count
                    && c.rules == rules
            });
        if whole && best.is_none_or(|(g, _)| first.generation > g) {
            best = Some((first.generation, slot));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(writer: u64, generation: u64, index: u32, count: u32) -> Chunk {
        Chunk {
            rules: "r1".into(),
            writer,
            generation,
            index,
            count,
            bytes: vec![index as u8],
        }
    }

    /// The newest slot holding one whole state is read; a slot overwritten halfway, mixed
    /// with another writer's chunks, or of other rules is passed over.
    #[test]
    fn only_a_whole_state_is_restored() {
        let slots = |chunks: Vec<(usize, Chunk)>| {
            let mut m = BTreeMap::new();
            for (slot, c) in chunks {
                m.insert((slot, c.index), c);
            }
            m
        };
        // Generation 3 in slot 1 (whole), generation 2 in slot 0 (whole).
        let both = slots(vec![
            (0, chunk(1, 2, 0, 2)),
            (0, chunk(1, 2, 1, 2)),
            (1, chunk(1, 3, 0, 1)),
        ]);
        assert_eq!(newest_whole(&both, "r1"), Some((3, 1)));
        assert_eq!(newest_whole(&both, "r2"), None);
        // Generation 4 interrupted in slot 0 after its first chunk: slot 1 stays.
        let interrupted = slots(vec![
            (0, chunk(1, 4, 0, 2)),
            (0, chunk(1, 2, 1, 2)),
            (1, chunk(1, 3, 0, 1)),
        ]);
        assert_eq!(newest_whole(&interrupted, "r1"), Some((3, 1)));
        // Two writers with the same generation in one slot.
        let mixed = slots(vec![(0, chunk(1, 2, 0, 2)), (0, chunk(9, 2, 1, 2))]);
        assert_eq!(newest_whole(&mixed, "r1"), None);
        // A chunk missing.
        let short = slots(vec![(1, chunk(1, 5, 0, 3)), (1, chunk(1, 5, 2, 3))]);
        assert_eq!(newest_whole(&short, "r1"), None);
    }

    #[test]
    fn keys_name_partition_slot_and_chunk() {
        assert_eq!(parse_key(key(7, 1, 12).as_bytes()), Some((7, 1, 12)));
        assert_eq!(parse_key(b"7.2.0"), None);
        assert_eq!(parse_key(b"7.0"), None);
        assert_eq!(parse_key(b"x.0.0"), None);
    }
}
