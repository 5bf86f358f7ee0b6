use std::sync::Arc;

use crate::Event;

/// Rule severity, ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Information only.
    Informational,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl Level {
    /// Every level, least severe first.
    pub const ALL: [Level; 5] = [
        Level::Informational,
        Level::Low,
        Level::Medium,
        Level::High,
        Level::Critical,
    ];

    /// The Sigma name (`informational` … `critical`).
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
    /// Rule id (a UUID for Sigma rules, `cellwarden.<area>.<name>` for built-in ones).
    pub id: String,
    /// Rule title.
    pub title: String,
    /// Author (kept in every alert, as the Detection Rule License asks).
    pub author: Option<String>,
    /// What the rule finds.
    pub description: Option<String>,
    /// `stable`, `test`, `experimental`, …
    pub status: Option<String>,
    /// References.
    pub references: Vec<String>,
    /// Known false positives.
    pub falsepositives: Vec<String>,
    /// Tags as written (`attack.t1003.001`, …).
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
    /// The rule that fired.
    pub rule: Arc<RuleInfo>,
    /// Severity (the rule's, or the finding's own).
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
    /// Start of the correlation window.
    pub window_start: Option<jiff::Timestamp>,
    /// End of the correlation window.
    pub window_end: Option<jiff::Timestamp>,
    /// The events that made it up, oldest first.
    pub events: Vec<crate::Origin>,
    /// For each of them (same order): its time, host and key fields (who, from where, which
    /// process, which file), so the alert says what happened without going back to the logs.
    pub members: Vec<Vec<(String, String)>>,
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

/// Alerts in output order that can be walked more than once: a list in memory, or sorted runs
/// spilled to disk by a run too large to hold (see `cellwarden-pipeline`).
pub trait AlertSource {
    /// Calls `f` on each alert in order; stops at the first error (an error reading a spilled
    /// run, or the one `f` returns).
    fn try_each(&self, f: &mut dyn FnMut(&Alert) -> std::io::Result<()>) -> std::io::Result<()>;
    /// How many alerts there are.
    fn count(&self) -> usize;
}

impl AlertSource for [Alert] {
    fn try_each(&self, f: &mut dyn FnMut(&Alert) -> std::io::Result<()>) -> std::io::Result<()> {
        self.iter().try_for_each(f)
    }
    fn count(&self) -> usize {
        self.len()
    }
}

impl<const N: usize> AlertSource for [Alert; N] {
    fn try_each(&self, f: &mut dyn FnMut(&Alert) -> std::io::Result<()>) -> std::io::Result<()> {
        self.as_slice().try_each(f)
    }
    fn count(&self) -> usize {
        N
    }
}

impl AlertSource for Vec<Alert> {
    fn try_each(&self, f: &mut dyn FnMut(&Alert) -> std::io::Result<()>) -> std::io::Result<()> {
        self.as_slice().try_each(f)
    }
    fn count(&self) -> usize {
        self.len()
    }
}

const TACTICS: [(&str, &str); 14] = [
    ("ta0043", "reconnaissance"),
    ("ta0042", "resource-development"),
    ("ta0001", "initial-access"),
    ("ta0002", "execution"),
    ("ta0003", "persistence"),
    ("ta0004", "privilege-escalation"),
    ("ta0005", "defense-evasion"),
    ("ta0006", "credential-access"),
    ("ta0007", "discovery"),
    ("ta0008", "lateral-movement"),
    ("ta0009", "collection"),
    ("ta0011", "command-and-control"),
    ("ta0010", "exfiltration"),
    ("ta0040", "impact"),
];

/// ATT&CK techniques (`T1059.001`) and tactics (`credential-access`) named by `attack.*` tags.
pub fn attack_from_tags(tags: &[String]) -> (Vec<String>, Vec<String>) {
    let mut techniques = Vec::new();
    let mut tactics = Vec::new();
    for t in tags {
        let Some(rest) = t
            .to_ascii_lowercase()
            .strip_prefix("attack.")
            .map(str::to_owned)
        else {
            continue;
        };
        let is_technique = rest.starts_with('t')
            && rest
                .get(1..5)
                .is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit()));
        if is_technique {
            techniques.push(rest.to_ascii_uppercase());
            continue;
        }
        let name = rest.replace('_', "-");
        if let Some((_, n)) = TACTICS.iter().find(|(id, n)| *id == rest || *n == name) {
            tactics.push((*n).to_owned());
        }
    }
    techniques.dedup();
    tactics.dedup();
    (techniques, tactics)
}

impl RuleInfo {
    /// Metadata of a rule built into cellwarden (analytics, not Sigma): techniques and tactics
    /// come from the `attack.*` tags.
    pub fn builtin(
        id: &str,
        title: &str,
        description: &str,
        tags: &[&str],
        source: &str,
    ) -> RuleInfo {
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        let (techniques, tactics) = attack_from_tags(&tags);
        RuleInfo {
            id: id.to_owned(),
            title: title.to_owned(),
            description: (!description.is_empty()).then(|| description.to_owned()),
            status: Some("stable".to_owned()),
            tags,
            techniques,
            tactics,
            source: source.to_owned(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tag with a multi-byte character where a technique number would be (found by
    /// fuzzing: it sliced inside the character and stopped rule loading).
    #[test]
    fn tags_with_multibyte_characters_are_not_techniques() {
        let (t, _) = attack_from_tags(&["attack.t120\u{e9}".into(), "attack.t1003.001".into()]);
        assert_eq!(t, ["T1003.001"]);
    }
}
