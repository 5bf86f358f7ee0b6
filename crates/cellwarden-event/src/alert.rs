use std::sync::Arc;

use crate::Event;

/// Rule severity, ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl Level {
    pub const ALL: [Level; 5] = [
        Level::Informational,
        Level::Low,
        Level::Medium,
        Level::High,
        Level::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Informational => "informational",
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }

    /// Accepts the Sigma names and the usual short forms (`info`, `crit`).
    pub fn parse(s: &str) -> Option<Level> {
        match s.to_ascii_lowercase().as_str() {
            "informational" | "info" => Some(Level::Informational),
            "low" => Some(Level::Low),
            "medium" | "med" => Some(Level::Medium),
            "high" => Some(Level::High),
            "critical" | "crit" => Some(Level::Critical),
            _ => None,
        }
    }
}

/// What a rule says about itself; shared by every alert the rule raises.
#[derive(Debug, Clone, Default)]
pub struct RuleInfo {
    pub id: String,
    pub title: String,
    pub author: Option<String>,
    pub description: Option<String>,
    pub status: Option<String>,
    pub references: Vec<String>,
    pub falsepositives: Vec<String>,
    pub tags: Vec<String>,
    /// ATT&CK technique ids from the tags, upper-case (`T1059.001`).
    pub techniques: Vec<String>,
    /// ATT&CK tactic names from the tags (`credential-access`).
    pub tactics: Vec<String>,
    /// Where the rule was loaded from (`builtin:` for the compiled-in pack).
    pub source: String,
}

/// A detection: a rule matched an event.
#[derive(Debug, Clone)]
pub struct Alert {
    pub rule: Arc<RuleInfo>,
    pub level: Level,
    /// The event that matched (for a correlation: the one that completed it).
    pub event: Event<'static>,
    /// Set for correlation alerts.
    pub correlation: Option<Box<CorrelationInfo>>,
}

/// What a correlation alert observed.
#[derive(Debug, Clone)]
pub struct CorrelationInfo {
    /// `event_count`, `value_count`, `temporal`, …
    pub kind: String,
    /// Group-by field names and their values in this group.
    pub group: Vec<(String, String)>,
    /// The aggregated value the condition was tested on.
    pub value: f64,
    pub window_start: Option<jiff::Timestamp>,
    pub window_end: Option<jiff::Timestamp>,
    /// The events that made it up, oldest first.
    pub events: Vec<crate::Origin>,
}

impl Alert {
    /// Stable identity of the alert: rule id, file and record. A re-run over the same input
    /// produces the same keys.
    pub fn key(&self) -> String {
        format!(
            "{}:{}:{}",
            self.rule.id, self.event.origin.file, self.event.origin.record
        )
    }

    /// Total order used for deterministic output: time, file, record, rule id.
    pub fn sort_key(&self) -> (Option<jiff::Timestamp>, &str, u64, &str) {
        (
            self.event.timestamp,
            &self.event.origin.file,
            self.event.origin.record,
            &self.rule.id,
        )
    }
}
