//! A partition's state as it moves between partitioned state workers: what the changelog
//! holds of it ([`crate::changelog`]), and how the thread reading the handed-on partitions
//! asks for it when a partition is assigned ([`Restore`]).

use serde::{Deserialize, Serialize};

/// The whole state of an engine (see [`crate::engine::Engine::save`]).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct EngineState {
    pub(crate) core: cellwarden_pipeline::CoreState,
    /// Source → (latest event time, caught up).
    pub(crate) clocks: Vec<(String, i64, bool)>,
    pub(crate) released: i64,
    pub(crate) open_day: Option<i32>,
    pub(crate) late_pending: bool,
}

/// A partition's state as written: the engine's state and where reading resumes.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Saved {
    /// The next offset of the handed-on partition to read (every record before it is in the
    /// state).
    pub next: i64,
    /// The last record number handled of each source read through the partition (records at
    /// or after `next` that the state already holds are known by these).
    pub handled: Vec<(String, u64)>,
    /// The state.
    pub engine: EngineState,
}

/// What is known of one partition's keys on the changelog.
#[derive(Debug, Default, Clone, Copy)]
pub struct Slots {
    /// The next generation to write.
    pub generation: u64,
    /// Chunks last written to each slot (to delete those a shorter state leaves over).
    pub counts: [u32; 2],
}

/// What the changelog held for a partition.
pub struct Restored {
    /// The newest whole state, if any.
    pub saved: Option<Saved>,
    /// Its generation, size and the time it took to read, in words (for the log).
    pub said: String,
    /// What the writer of the partition's next states must know.
    pub slots: Slots,
}

/// Looks up the state of a partition just assigned.
pub trait Restore: Send {
    /// What is held for handed-on partition `p`.
    fn restore(&mut self, p: u32) -> Result<Restored, String>;
}
