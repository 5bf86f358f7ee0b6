//! The exchange topic of partitioned state workers: what each partition of the stateful
//! analytics tells the others (see [`crate::partitioned`]).
//!
//! Every state worker produces to it and reads all of it from the beginning, so each holds
//! the same [`Board`]: per partition of the handed-on topic, its latest clock (the latest event
//! time it has read, and whether it is caught up), its latest round-one share and its latest
//! round-two peer share, each with the day it was closing. Messages are keyed by partition and
//! kind, so a compacted topic keeps the latest of each.

use std::collections::BTreeMap;
use std::time::Duration;

use cellwarden_pipeline::core::Share;
use cellwarden_telecom::exposure::Exposure;
use cellwarden_telecom::share::PeerShare;
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde::{Deserialize, Serialize};

use crate::engine::ScopePart;
use crate::kafka::{ClientError, Deliveries, KafkaConfig};

/// One message of the exchange.
#[derive(Debug, Serialize, Deserialize)]
struct Wire {
    /// Partition of the handed-on topic it is about.
    p: u32,
    /// `clock`, `share` or `peers`.
    kind: String,
    /// The worker that sent it.
    from: String,
    /// When it was sent (wall clock, ms).
    #[serde(default)]
    at: i64,
    /// The day being closed (shares).
    #[serde(default)]
    day: i32,
    /// Shares and scope parts: the next offset of the partition when its snapshot was taken
    /// (how much of the partition they reflect).
    #[serde(default)]
    offset: i64,
    /// Clock: latest event time (ms), and caught up.
    #[serde(default)]
    latest: i64,
    #[serde(default)]
    idle: bool,
    /// Round one: database share (JSON text), flow share (JSON text), first day.
    #[serde(default)]
    db: String,
    #[serde(default)]
    net: String,
    #[serde(default)]
    first: Option<i32>,
    /// Round two.
    #[serde(default)]
    peers: PeerShare,
    /// The partition's part of the scope report (JSON text) of the days it judged, and the
    /// transfers its flows saw (JSON text).
    #[serde(default)]
    scope: String,
    #[serde(default)]
    transfers: String,
}

/// What every partition last said.
#[derive(Debug, Default)]
pub struct Board {
    /// Partitions of the handed-on topic.
    pub partitions: u32,
    /// Partition → latest event time (ms) and caught up.
    pub clocks: BTreeMap<u32, (i64, bool)>,
    /// Partition → the day closed, the partition's offset the snapshot was taken at, and its
    /// round-one share (the one that reflects most of the partition: see [`keep`]).
    pub shares: BTreeMap<u32, (i32, i64, Share)>,
    /// Partition → the same for its round-two share.
    pub peers: BTreeMap<u32, (i32, i64, PeerShare)>,
    /// Changes of any partition's shares (what it shares, not when): a partition judged
    /// before another's share changed is judged again.
    pub version: u64,
    /// Partitions this worker owns: their clocks are its own (a former owner's last words
    /// may still be on their way).
    pub owned: std::collections::BTreeSet<u32>,
    /// Partition → the day judged, the offset, and its part of the scope report (workers
    /// writing one).
    pub scopes: BTreeMap<u32, (i32, i64, ScopePart)>,
    /// Changes of the scope parts.
    pub scope_version: u64,
}

impl Board {
    /// The watermark of all partitions, as one process's over all its sources: the minimum
    /// latest time of those not caught up, else the maximum. `None` while a partition has not
    /// said where it is.
    pub fn watermark(&self) -> Option<i64> {
        if (0..self.partitions).any(|p| !self.clocks.contains_key(&p)) {
            return None;
        }
        let active = self.clocks.values().filter(|c| !c.1).map(|c| c.0);
        let wm = match active.min() {
            Some(m) => m,
            None => self.clocks.values().map(|c| c.0).max()?,
        };
        (wm != i64::MIN).then_some(wm)
    }

    /// Every partition has shared round one for `day` or a later day.
    pub fn shared(&self, day: i32) -> bool {
        (0..self.partitions).all(|p| self.shares.get(&p).is_some_and(|(d, ..)| *d >= day))
    }

    /// Every partition has shared round two for `day`, or is already closing a later day
    /// (its latest round two, if any, is then used: a partition that went on to a later day
    /// never shares round two for this one, and waiting for it would wait for ever).
    pub fn peered(&self, day: i32) -> bool {
        (0..self.partitions).all(|p| match self.peers.get(&p) {
            Some((d, ..)) if *d >= day => true,
            _ => self.shares.get(&p).is_some_and(|(d, ..)| *d > day),
        })
    }

    /// The scope report of every partition as one, once each has judged days (see
    /// [`Exposure::merge`]).
    pub fn scope(&self) -> Option<Exposure> {
        (self.scopes.len() == self.partitions as usize).then(|| {
            cellwarden_pipeline::scope::merge_parts(
                self.scopes.values().map(|(.., x)| x.clone()).collect(),
            )
        })
    }

    /// Takes partition `p`'s part of the scope report of the days before `day`, judged at
    /// `offset`.
    fn scope_part(&mut self, p: u32, day: i32, offset: i64, x: ScopePart) {
        if keep(&mut self.scopes, p, day, offset, x, |_, _| false) {
            self.scope_version += 1;
        }
    }

    /// Takes partition `p`'s round-one share of closing `day` taken at `offset`.
    fn share(&mut self, p: u32, day: i32, offset: i64, s: Share) {
        if keep(&mut self.shares, p, day, offset, s, |a, b| a == b) {
            self.version += 1;
        }
    }

    /// Takes partition `p`'s round-two share of closing `day` taken at `offset`.
    fn peer(&mut self, p: u32, day: i32, offset: i64, s: PeerShare) {
        if keep(&mut self.peers, p, day, offset, s, |a, b| a == b) {
            self.version += 1;
        }
    }
}

/// Keeps partition `p`'s share `s` (of closing `day`, taken at `offset`) unless the one held
/// reflects more of the partition: taken at a later offset, or at the same one for a later
/// day. The offset decides, not the day: a partition taken over and restored from an older
/// state closes earlier days again, and its former owner's last share (of a later day, maybe
/// taken before most of its records came) must not stand for it. True when what is held
/// changed (`same`: whether two shares say the same).
fn keep<S>(
    held: &mut BTreeMap<u32, (i32, i64, S)>,
    p: u32,
    day: i32,
    offset: i64,
    s: S,
    same: impl Fn(&S, &S) -> bool,
) -> bool {
    let changed = match held.get(&p) {
        Some((d, at, _)) if offset < *at || (offset == *at && *d > day) => return false,
        Some((.., old)) => !same(old, &s),
        None => true,
    };
    held.insert(p, (day, offset, s));
    changed
}

/// A state worker's connection to the exchange topic.
pub struct Exchange {
    topic: String,
    producer: BaseProducer<Deliveries>,
    consumer: BaseConsumer,
    me: String,
    /// Messages not yet taken by the producer.
    unsent: std::collections::VecDeque<(String, Vec<u8>)>,
    /// Messages the producer refused, to report.
    refused: Vec<String>,
    /// When this worker started (wall clock, ms).
    started: i64,
    /// What every partition last said.
    pub board: Board,
    /// This worker writes the scope report: it keeps every partition's part.
    wants_scope: bool,
}

fn wall_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl Exchange {
    /// Connects to `topic` (which must exist) and reads it from its beginning; `partitions`
    /// is the partition count of the handed-on topic.
    pub fn new(
        config: &KafkaConfig,
        topic: &str,
        partitions: u32,
        me: String,
        wants_scope: bool,
    ) -> Result<Exchange, ClientError> {
        let producer = crate::kafka::producer(config)?;
        // Rounds wait on each other's messages: fetch them as they come.
        let (consumer, _) = crate::kafka::reader(
            config,
            topic,
            &format!("cellwarden-exchange-{me}"),
            &[("fetch.wait.max.ms", "20")],
        )?;
        Ok(Exchange {
            topic: topic.to_owned(),
            producer,
            consumer,
            me,
            unsent: Default::default(),
            refused: Vec::new(),
            started: wall_ms(),
            board: Board {
                partitions,
                ..Board::default()
            },
            wants_scope,
        })
    }

    /// Reads what arrived; returns messages that could not be read.
    pub fn poll(&mut self) -> Vec<String> {
        let mut bad = Vec::new();
        for _ in 0..10_000 {
            let Some(m) = self.consumer.poll(Duration::ZERO) else {
                break;
            };
            let Ok(m) = m else { continue };
            let offset = m.offset();
            let read: Result<Wire, String> =
                serde_json::from_slice(m.payload().unwrap_or_default()).map_err(|e| e.to_string());
            drop(m);
            if let Err(e) = read.and_then(|w| self.take(w)) {
                bad.push(format!("exchange offset {offset}: {e}"));
            }
        }
        self.pump();
        self.producer.poll(Duration::ZERO);
        bad.append(&mut self.refused);
        bad
    }

    fn take(&mut self, w: Wire) -> Result<(), String> {
        match w.kind.as_str() {
            // A worker's own clocks are set directly (an echo may be older), and clocks sent
            // before this worker started may be of a process long gone: owners say where
            // their partitions are every few seconds.
            "clock"
                if w.from != self.me
                    && w.at >= self.started
                    && !self.board.owned.contains(&w.p) =>
            {
                self.board.clocks.insert(w.p, (w.latest, w.idle));
            }
            "share" => {
                let s = Share {
                    db: cellwarden_telecom::share::Share::from_json(w.db.as_bytes())?,
                    net: cellwarden_net::share::NetShare::from_json(w.net.as_bytes())?,
                    first_day: w.first,
                };
                self.board.share(w.p, w.day, w.offset, s);
            }
            "peers" => self.board.peer(w.p, w.day, w.offset, w.peers),
            "scope" if self.wants_scope => {
                let x: Exposure = serde_json::from_str(&w.scope).map_err(|e| e.to_string())?;
                let t = if w.transfers.is_empty() {
                    Vec::new()
                } else {
                    serde_json::from_str(&w.transfers).map_err(|e| e.to_string())?
                };
                self.board.scope_part(w.p, w.day, w.offset, (x, t));
            }
            _ => {}
        }
        Ok(())
    }

    fn send(&mut self, w: &Wire) {
        let key = format!("{} {}", w.kind, w.p);
        let payload = serde_json::to_vec(w).expect("plain data");
        self.unsent.push_back((key, payload));
        self.pump();
    }

    /// Hands waiting messages to the producer until its queue is full (the broker may be
    /// away: they wait, in order, and the loop goes on).
    fn pump(&mut self) {
        while let Some((key, payload)) = self.unsent.front() {
            let record = BaseRecord::to(&self.topic)
                .key(key)
                .payload(payload)
                .partition(0);
            match self.producer.send(record) {
                Ok(()) => {}
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    _,
                )) => {
                    self.producer.poll(Duration::ZERO);
                    return;
                }
                Err((e, _)) => self
                    .refused
                    .push(format!("exchange message {key} not sent: {e}")),
            }
            self.unsent.pop_front();
        }
    }

    fn wire(&self, p: u32, kind: &str) -> Wire {
        Wire {
            p,
            kind: kind.to_owned(),
            from: self.me.clone(),
            at: wall_ms(),
            day: 0,
            offset: 0,
            latest: 0,
            idle: false,
            db: String::new(),
            net: String::new(),
            first: None,
            peers: Vec::new(),
            scope: String::new(),
            transfers: String::new(),
        }
    }

    /// Shares partition `p`'s part of the scope report of the days before `day`, judged at
    /// `offset`.
    pub fn scope(&mut self, p: u32, day: i32, offset: i64, x: &ScopePart) {
        let w = Wire {
            day,
            offset,
            scope: serde_json::to_string(&x.0).expect("plain data"),
            transfers: serde_json::to_string(&x.1).expect("plain data"),
            ..self.wire(p, "scope")
        };
        self.send(&w);
        if self.wants_scope {
            self.board.scope_part(p, day, offset, x.clone());
        }
    }

    /// Says where partition `p` is (owned by this worker).
    pub fn clock(&mut self, p: u32, latest: i64, idle: bool) {
        self.board.clocks.insert(p, (latest, idle));
        let w = Wire {
            latest,
            idle,
            ..self.wire(p, "clock")
        };
        self.send(&w);
    }

    /// Shares round one of partition `p` closing `day`, its snapshot taken at `offset`.
    pub fn share(&mut self, p: u32, day: i32, offset: i64, s: &Share) {
        let w = Wire {
            day,
            offset,
            db: String::from_utf8(s.db.to_json()).expect("JSON is UTF-8"),
            net: String::from_utf8(s.net.to_json()).expect("JSON is UTF-8"),
            first: s.first_day,
            ..self.wire(p, "share")
        };
        self.send(&w);
        self.board.share(p, day, offset, s.clone());
    }

    /// Shares round two of partition `p` closing `day`, its snapshot taken at `offset`.
    pub fn peers(&mut self, p: u32, day: i32, offset: i64, s: PeerShare) {
        let w = Wire {
            day,
            offset,
            peers: s.clone(),
            ..self.wire(p, "peers")
        };
        self.send(&w);
        self.board.peer(p, day, offset, s);
    }

    /// Waits (at most a second) until everything sent is acknowledged.
    pub fn flush(&mut self) {
        self.pump();
        let _ = self.producer.flush(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board(partitions: u32) -> Board {
        Board {
            partitions,
            ..Board::default()
        }
    }

    #[test]
    fn round_two_waits_only_for_partitions_still_at_the_day() {
        let mut b = board(2);
        b.share(0, 10, 5, Share::default());
        b.share(1, 10, 5, Share::default());
        assert!(b.shared(10));
        assert!(!b.peered(10), "nobody has shared round two");
        b.peer(0, 10, 5, PeerShare::default());
        assert!(!b.peered(10), "partition 1 is still at day 10");
        b.peer(1, 10, 5, PeerShare::default());
        assert!(b.peered(10));
    }

    #[test]
    fn a_partition_gone_on_to_a_later_day_is_not_waited_for() {
        // Partition 1 first closed day 14 (it saw the watermark later): it never shares
        // round two for day 10, with or without an earlier round two of its own.
        let mut b = board(2);
        b.share(0, 10, 5, Share::default());
        b.share(1, 14, 5, Share::default());
        b.peer(0, 10, 5, PeerShare::default());
        assert!(b.shared(10));
        assert!(b.peered(10));
        assert!(!b.shared(14), "partition 0 has not reached day 14");
        b.peer(1, 8, 5, PeerShare::default());
        assert!(b.peered(10));
    }

    #[test]
    fn a_share_taken_later_in_the_partition_stands_though_its_day_is_earlier() {
        let share = |first| Share {
            first_day: Some(first),
            ..Share::default()
        };
        let mut b = board(2);
        b.share(1, 10, 40, share(3));
        // Its former owner went on to day 14 with few of its records read, then died.
        b.share(1, 14, 60, share(9));
        b.peer(1, 14, 60, PeerShare::default());
        let version = b.version;
        // The new owner, restored from an older state, reads on and closes day 11.
        b.share(1, 11, 80, share(2));
        assert_eq!(b.shares[&1], (11, 80, share(2)));
        assert!(b.version > version, "partitions judged before judge again");
        assert!(!b.shared(14), "day 14 waits for the new owner to reach it");
        // The former owner's last words, read late, change nothing.
        b.share(1, 14, 60, share(9));
        assert_eq!(b.shares[&1], (11, 80, share(2)));
        // At one offset, the later day stands.
        b.share(1, 12, 80, share(2));
        b.share(1, 11, 80, share(2));
        assert_eq!(b.shares[&1].0, 12);
    }

    #[test]
    fn the_watermark_waits_for_every_partition_then_follows_the_slowest_active() {
        let mut b = board(3);
        b.clocks.insert(0, (100, false));
        b.clocks.insert(1, (50, false));
        assert_eq!(b.watermark(), None);
        b.clocks.insert(2, (400, true));
        assert_eq!(b.watermark(), Some(50));
        b.clocks.insert(0, (100, true));
        b.clocks.insert(1, (60, true));
        assert_eq!(b.watermark(), Some(400));
    }
}
