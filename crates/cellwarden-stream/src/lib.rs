//! Runs cellwarden's pipeline over endless input (`watch`).
//!
//! Sources ([`follow`] for growing files, [`syslog`] for UDP and TCP receivers) hand units to
//! one [`watch::Watch`] loop, which runs the same detectors as `hunt` through the live
//! [`engine::Engine`], writes alerts to the sinks, and checkpoints source positions with a
//! journal of the events that hold analytics state ([`checkpoint`]), so a restart after a crash
//! neither skips an event nor repeats an alert.

pub mod changelog;
pub mod checkpoint;
pub mod decode;
pub mod engine;
pub mod exchange;
pub mod follow;
pub mod kafka;
pub mod metrics;
pub mod partitioned;
pub mod saved;
pub mod sink;
pub mod source;
pub mod syslog;
pub mod watch;

pub use cellwarden_pipeline::Stage;
pub use engine::{Engine, LiveConfig};
