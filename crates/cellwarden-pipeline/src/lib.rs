//! The detection core and the finite driver of cellwarden's pipeline.
//!
//! [`core::DetectionCore`] is where every event meets every detector (Sigma rules, the
//! matches correlations wait for, the database-access and flow analytics) and where the
//! stateful analytics are judged; [`hunt::hunt`] drives it over finite input on a pool of
//! worker threads, and `cellwarden-stream` drives the same core over endless input.
//! [`sequence`] lets the workers decide in each file's order what depends on it (audit
//! records that repeat a statement). [`scope`] assembles the subscriber exposure report from
//! what the analytics gathered;
//! [`story`] joins the alerts into incidents and campaigns.

pub mod alerts;
pub mod core;
pub mod hunt;
pub mod scope;
pub mod sequence;
pub mod story;

pub use crate::alerts::{AlertSet, sort_alerts};
pub use crate::core::{
    CoreSize, CoreState, DbSetup, DetectionCore, Detectors, Fed, Findings, NetSetup, Snapshot,
    Stage, Uses, View, partition_of,
};
pub use crate::hunt::{ALERT_MEMORY, HuntConfig, HuntResult, Progress, hunt};
