//! Decisions that need an input's records in order, made by parallel workers.
//!
//! Whether a database audit record repeats a statement counted already depends on the
//! records of its session before it ([`cellwarden_telecom::repeats`]), and the records of
//! one statement may straddle two units that different workers decode. So each worker
//! decodes its unit on its own, then takes its turn: the decisions for a unit's records are
//! made once those of the unit before it in the same input are (a unit with no such record
//! only says it is done). The workers take units in order from one channel, so the unit
//! whose turn it is has always been taken by a worker that does not wait: nobody waits for
//! long, and the decisions, and the counts, do not depend on the number of workers.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};

use cellwarden_source::UnitOrder;
use cellwarden_telecom::repeats::{FoldKey, Folder};

/// The turns of the units of every input read.
#[derive(Default)]
pub struct Sequencer {
    streams: Mutex<HashMap<u64, Stream>>,
    turn: Condvar,
    /// Turns ended so far: a unit waiting for its turn looks again when it moved.
    ended: AtomicU64,
}

#[derive(Default)]
struct Stream {
    /// The unit whose turn it is.
    next: u64,
    /// Units after it that are done already.
    done: BTreeSet<u64>,
    /// The number of the stream's last unit, once known.
    end: Option<u64>,
    /// The sessions' last statements, as of the units before `next` (taken out while that
    /// unit decides).
    folder: Folder,
}

/// Marks the unit at `order` done, and forgets its stream once every unit of it is.
fn done(streams: &mut HashMap<u64, Stream>, order: UnitOrder) {
    let s = streams.entry(order.stream).or_default();
    if order.last {
        s.end = Some(order.number);
    }
    if s.next != order.number {
        s.done.insert(order.number);
        return;
    }
    s.next += 1;
    while s.done.remove(&s.next) {
        s.next += 1;
    }
    if s.end.is_some_and(|e| s.next > e) {
        streams.remove(&order.stream);
    }
}

impl Sequencer {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Stream>> {
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The stream's folder if it is the unit's turn.
    fn try_take(&self, order: UnitOrder) -> Option<Folder> {
        let mut streams = self.lock();
        let s = streams.entry(order.stream).or_default();
        (s.next == order.number).then(|| std::mem::take(&mut s.folder))
    }

    /// Waits for the unit's turn and hands the stream's folder to `f`.
    fn wait<T>(&self, order: UnitOrder, f: impl FnOnce(&mut Folder) -> T) -> T {
        let mut streams = self.lock();
        while streams.entry(order.stream).or_default().next != order.number {
            streams = self
                .turn
                .wait(streams)
                .unwrap_or_else(PoisonError::into_inner);
        }
        f(&mut streams.entry(order.stream).or_default().folder)
    }

    /// Ends the unit's turn (`folder`: the stream's, when the unit took it out).
    fn end(&self, order: UnitOrder, folder: Option<Folder>) {
        let mut streams = self.lock();
        if let Some(mut f) = folder {
            f.trim();
            streams.entry(order.stream).or_default().folder = f;
        }
        done(&mut streams, order);
        drop(streams);
        self.ended.fetch_add(1, Ordering::Release);
        self.turn.notify_all();
    }
}

/// One unit's turn: decides its records that may repeat a statement, now when it can and
/// else at its end. Dropped undecided (a worker failing on the unit), it passes the turn on.
pub struct Turn<'s> {
    sequencer: &'s Sequencer,
    order: UnitOrder,
    mode: Mode,
    ended: bool,
    /// [`Sequencer::ended`] when the unit last looked for its turn.
    looked: u64,
    /// Decisions for the records that waited, once their turn came (see [`Turn::ready`]).
    ready: Option<Vec<bool>>,
}

enum Mode {
    /// No record met yet.
    Idle,
    /// The unit's turn came before its first record: decided as they come.
    Now(Folder),
    /// The units before it were not done: a session's records up to its first change of
    /// statement wait for them, the later ones are decided here (the change of statement
    /// makes them independent of what came before).
    Later {
        /// Sessions' last statements since their change of statement.
        local: Folder,
        /// Per session: the statement of its waiting records, `None` once it changed.
        first: HashMap<u128, Option<u128>>,
        /// The waiting records.
        waiting: Vec<FoldKey>,
    },
}

impl<'s> Turn<'s> {
    /// The turn of the unit at `order`.
    pub fn new(sequencer: &'s Sequencer, order: UnitOrder) -> Self {
        Turn {
            sequencer,
            order,
            mode: Mode::Idle,
            ended: false,
            looked: 0,
            ready: None,
        }
    }

    /// Whether the unit's next record that may repeat a statement does so: `None` when it
    /// must wait for [`Turn::finish`].
    pub fn record(&mut self, key: FoldKey) -> Option<bool> {
        if let Mode::Later { .. } = self.mode {
            self.look();
        }
        if matches!(self.mode, Mode::Idle) {
            self.looked = self.sequencer.ended.load(Ordering::Acquire);
            self.mode = match self.sequencer.try_take(self.order) {
                Some(folder) => Mode::Now(folder),
                None => Mode::Later {
                    local: Folder::default(),
                    first: HashMap::new(),
                    waiting: Vec::new(),
                },
            };
        }
        match &mut self.mode {
            Mode::Idle => unreachable!("set above"),
            Mode::Now(folder) => Some(folder.repeated(key)),
            Mode::Later {
                local,
                first,
                waiting,
            } => {
                let statement = first.entry(key.session()).or_insert(Some(key.text()));
                if *statement == Some(key.text()) {
                    waiting.push(key);
                    return None;
                }
                *statement = None;
                Some(local.repeated(key))
            }
        }
    }

    /// Takes the turn if the units before are done now: the records that waited are decided
    /// (see [`Turn::ready`]) and the next ones are decided as they come.
    fn look(&mut self) {
        let ended = self.sequencer.ended.load(Ordering::Acquire);
        if ended == self.looked {
            return;
        }
        self.looked = ended;
        let Some(mut folder) = self.sequencer.try_take(self.order) else {
            return;
        };
        if let Mode::Later { local, waiting, .. } = std::mem::replace(&mut self.mode, Mode::Idle) {
            self.ready = Some(take_turn(&mut folder, waiting, local));
        }
        self.mode = Mode::Now(folder);
    }

    /// The decisions for the records that waited, in their order, once the unit's turn came
    /// before its end (else [`Turn::finish`] gives them).
    pub fn ready(&mut self) -> Option<Vec<bool>> {
        self.ready.take()
    }

    /// Decides the records that waited, in order, once the units before are done; the unit
    /// is done then.
    pub fn finish(mut self) -> Vec<bool> {
        self.ended = true;
        match std::mem::replace(&mut self.mode, Mode::Idle) {
            Mode::Idle => {
                self.sequencer.end(self.order, None);
                Vec::new()
            }
            Mode::Now(folder) => {
                self.sequencer.end(self.order, Some(folder));
                Vec::new()
            }
            Mode::Later { local, waiting, .. } => {
                let decided = self
                    .sequencer
                    .wait(self.order, |folder| take_turn(folder, waiting, local));
                self.sequencer.end(self.order, None);
                decided
            }
        }
    }
}

/// Decides the records that waited, in order, with the stream's folder, which then takes the
/// sessions' last statements decided in the unit meanwhile.
fn take_turn(folder: &mut Folder, waiting: Vec<FoldKey>, local: Folder) -> Vec<bool> {
    let decided = waiting.into_iter().map(|k| folder.repeated(k)).collect();
    folder.absorb(local);
    decided
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        match std::mem::replace(&mut self.mode, Mode::Idle) {
            Mode::Now(folder) => self.sequencer.end(self.order, Some(folder)),
            // The unit's records are lost to a failure: the turn passes on without them.
            _ => self.sequencer.end(self.order, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cellwarden_telecom::sql::Dialect;

    fn key(table: &str) -> FoldKey {
        let q = "SELECT * FROM cdr JOIN device USING (imsi)";
        let class = if table.is_empty() {
            "general"
        } else {
            "table_access"
        };
        FoldKey::of(
            Dialect::MySql,
            q,
            (Some(class), None),
            None,
            Some(table),
            (Some("h"), Some("1")),
        )
        .expect("a key")
    }

    /// Units decided by threads that finish decoding in the reverse order still decide in
    /// the input's order: the statement straddling units 0 and 2 is counted once, and unit
    /// 2's records after its session's change of statement are decided at once.
    #[test]
    fn units_decide_in_their_inputs_order() {
        let seq = Sequencer::default();
        let at = |number| UnitOrder {
            stream: 9,
            number,
            last: number == 2,
        };
        let other = FoldKey::of(
            Dialect::MySql,
            "SELECT 2",
            (Some("general"), None),
            None,
            None,
            (Some("h"), Some("1")),
        )
        .expect("a key");
        let (first, late) = std::thread::scope(|s| {
            let late = s.spawn(|| {
                let mut t = Turn::new(&seq, at(2));
                let now = [key("device"), key(""), other, other].map(|k| t.record(k));
                (now, t.finish())
            });
            let middle = s.spawn(|| {
                std::thread::sleep(std::time::Duration::from_millis(20));
                Turn::new(&seq, at(1)).finish();
            });
            std::thread::sleep(std::time::Duration::from_millis(50));
            let mut t = Turn::new(&seq, at(0));
            let first = t.record(key("cdr"));
            t.finish();
            middle.join().unwrap();
            (first, late.join().unwrap())
        });
        assert_eq!(first, Some(false));
        assert_eq!(late.0, [None, None, Some(false), Some(false)]);
        assert_eq!(late.1, [true, true]);
        assert!(
            seq.lock().is_empty(),
            "the stream is forgotten after its last unit"
        );
    }

    /// A worker that fails on a unit passes its turn on.
    #[test]
    fn a_unit_dropped_undecided_passes_its_turn() {
        let seq = Sequencer::default();
        let at = |number| UnitOrder {
            stream: 3,
            number,
            last: false,
        };
        let mut t = Turn::new(&seq, at(0));
        assert_eq!(t.record(key("cdr")), Some(false));
        drop(t);
        let mut t = Turn::new(&seq, at(1));
        assert_eq!(t.record(key("")), Some(true), "the folder came back");
        t.finish();
    }
}
