//! What the built-in stateful detectors (database access in `cellwarden-telecom`, network
//! flows in `cellwarden-net`) share: the table of their rules and the alerts raised from it
//! ([`rules`]), the shape of a judgement ([`Judgement`]), UTC day arithmetic and the
//! statistics their baselines use ([`stats`]).

pub mod rules;
pub mod stats;

pub use rules::{BuiltinRule, RuleTable};
pub use stats::Day;

use cellwarden_event::Alert;

/// What a stateful detector found over its aggregates: its alerts in a fixed order, and the
/// detector's own account of why (for example, the database detections' reasons per
/// account-day and subscriber, which the scope report is built from).
#[derive(Debug, Default)]
pub struct Judgement<R = ()> {
    /// The findings, as alerts.
    pub alerts: Vec<Alert>,
    /// Why, in the detector's own terms.
    pub reasons: R,
}
