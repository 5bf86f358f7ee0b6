//! What the watch loop's inputs have in common: the [`Source`] trait every input implements
//! (followed files, syslog receivers, Kafka consumers), what they send to the loop
//! ([`Input`]), and where each stands ([`PositionUpdate`]) for the checkpoint.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use cellwarden_pipeline::Uses;
use cellwarden_source::{Decoded, SourceError, Unit};
use serde::{Deserialize, Serialize};

/// An input of the watch loop. It runs on a thread of its own until `stop` is set or the loop
/// is gone (a send fails), and hands everything it reads to the loop over `tx`.
pub trait Source: Send {
    /// Reads until stopped.
    fn run(self: Box<Self>, tx: crossbeam_channel::Sender<Input>, stop: Arc<AtomicBool>);
}

/// What sources send to the loop.
pub enum Input {
    /// A unit to decode; `position` is where the source stands once it is handled.
    Unit {
        /// The unit, as read or decoded ahead ([`crate::decode`]).
        unit: Work,
        /// Where the source stands after it (on a source's last unit of a read).
        position: Option<PositionUpdate>,
        /// The source whose progress the events show, when not their file (forwarded records).
        clock: Option<Arc<str>>,
        /// What the records are for (handed-on records may be for part of the analytics).
        uses: Uses,
    },
    /// The source moved without a unit (a read with nothing complete in it).
    Position(PositionUpdate),
    /// A source that will deliver (the watermark waits for it).
    Known(Arc<str>),
    /// A Kafka partition no longer assigned to this process.
    Revoked(Arc<str>),
    /// What the changelog held for a partition just assigned (partitioned state workers with a
    /// changelog), sent before it is [`Known`](Input::Known): its records are read from where
    /// the state was taken.
    Restored {
        /// The partition.
        name: Arc<str>,
        /// The state, if a whole one was there.
        restored: Box<crate::saved::Restored>,
    },
    /// The source has caught up.
    Idle(Arc<str>),
    /// How far a source read through a partition of handed-on records went, without a
    /// record (`clock` names it as units do; `latest` in ms).
    Mark {
        /// The source, as the clock of units read through the partition.
        clock: Arc<str>,
        /// Its latest event time (ms).
        latest: i64,
    },
    /// A source reached its end: a followed file has nothing more for now (sent once each
    /// time it catches up), a Kafka partition assigned reached its end for the first time since
    /// (what it held when assigned has been read: a rebuilt partition's state is whole).
    ReadToEnd(Arc<str>),
    /// Something worth telling the user that is not an input error.
    Note(String),
    /// A record or read that failed; the rest goes on.
    Error(SourceError),
}

/// A unit on its way to the engine.
pub enum Work {
    /// As read.
    Unit(Unit),
    /// With its events decoded ahead.
    Decoded(Decoded),
}

impl Work {
    /// The unit as read.
    pub fn unit(&self) -> &Unit {
        match self {
            Work::Unit(u) => u,
            Work::Decoded(d) => d.unit(),
        }
    }

    /// The unit as read, its decoded events dropped.
    pub fn into_unit(self) -> Unit {
        match self {
            Work::Unit(u) => u,
            Work::Decoded(d) => d.into_unit(),
        }
    }
}

impl From<Unit> for Work {
    fn from(unit: Unit) -> Work {
        Work::Unit(unit)
    }
}

/// Where a source stands, for the checkpoint.
#[derive(Debug, Clone)]
pub enum PositionUpdate {
    /// A followed file.
    File {
        /// The path followed.
        path: String,
        /// Where reading it stands.
        position: FilePosition,
    },
    /// A receiver that numbers its messages.
    Counter {
        /// The receiver (`syslog-udp://…`).
        name: String,
        /// Messages numbered so far.
        count: u64,
    },
    /// Next offset of `topic/partition`; with a forwarded record, its source and number.
    Kafka {
        /// `topic/partition`.
        partition: String,
        /// Next offset to read.
        next: i64,
        /// Source and record number of the forwarded record, in the state stage.
        forwarded: Option<(String, u64)>,
    },
}

/// What reading one piece of input produced, on its way to the loop.
#[derive(Default)]
pub struct Collect {
    /// Units read.
    pub units: Vec<Unit>,
    /// Errors met.
    pub errors: Vec<SourceError>,
}

impl cellwarden_source::UnitSink for Collect {
    fn unit(&mut self, unit: Unit) {
        self.units.push(unit);
    }
    fn error(&mut self, error: SourceError) {
        self.errors.push(error);
    }
}

impl Collect {
    /// Sends the errors, then the units with `update` on the last one (alone when there is
    /// none, so the position still moves); false when the loop is gone.
    pub fn send(
        self,
        update: PositionUpdate,
        clock: Option<Arc<str>>,
        tx: &crossbeam_channel::Sender<Input>,
    ) -> bool {
        for e in self.errors {
            if tx.send(Input::Error(e)).is_err() {
                return false;
            }
        }
        let n = self.units.len();
        if n == 0 {
            return tx.send(Input::Position(update)).is_ok();
        }
        for (i, unit) in self.units.into_iter().enumerate() {
            let position = (i + 1 == n).then(|| update.clone());
            let clock = clock.clone();
            if tx
                .send(Input::Unit {
                    unit: unit.into(),
                    position,
                    clock,
                    uses: Uses::ALL,
                })
                .is_err()
            {
                return false;
            }
        }
        true
    }
}

/// Where reading of one followed path stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePosition {
    /// Device of the file being read.
    pub dev: u64,
    /// Inode of the file being read.
    pub ino: u64,
    /// Bytes of the current file read (up to a line end).
    pub offset: u64,
    /// Lines read from this path, across rotations.
    pub lines: u64,
}
