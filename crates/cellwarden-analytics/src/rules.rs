//! The rules of the built-in detectors: a static table of id, title, level, description and
//! ATT&CK tags, turned once into the rule metadata every alert carries.

use std::collections::BTreeMap;
use std::sync::Arc;

use cellwarden_event::{Alert, Event, Level, Origin, RuleInfo, Timestamp};

/// One built-in rule.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinRule {
    /// `cellwarden.<area>.<name>`.
    pub id: &'static str,
    /// One line for people.
    pub title: &'static str,
    /// Default severity (a finding may raise or lower its own).
    pub level: Level,
    /// What the rule finds (may be empty).
    pub description: &'static str,
    /// `attack.*` tags: tactics and techniques.
    pub tags: &'static [&'static str],
}

/// The rules of one detector, by id.
#[derive(Debug, Clone)]
pub struct RuleTable {
    by_id: BTreeMap<&'static str, (Arc<RuleInfo>, Level)>,
}

impl RuleTable {
    /// The table of `rules`, loaded from `source` (`builtin:cellwarden.db`, …).
    pub fn new(source: &str, rules: &[BuiltinRule]) -> RuleTable {
        let by_id = rules
            .iter()
            .map(|r| {
                let info = RuleInfo::builtin(r.id, r.title, r.description, r.tags, source);
                (r.id, (Arc::new(info), r.level))
            })
            .collect();
        RuleTable { by_id }
    }

    /// The metadata and default level of rule `id`.
    ///
    /// # Panics
    /// When `id` is not in the table: detectors only raise their own rules.
    pub fn get(&self, id: &str) -> (&Arc<RuleInfo>, Level) {
        let (info, level) = self
            .by_id
            .get(id)
            .unwrap_or_else(|| panic!("rule {id} is not in its detector's table"));
        (info, *level)
    }

    /// An alert of rule `id` on `event`, at `level` or the rule's own.
    pub fn alert(&self, id: &str, level: Option<Level>, event: Event<'static>) -> Alert {
        let (info, default) = self.get(id);
        Alert {
            rule: Arc::clone(info),
            level: level.unwrap_or(default),
            event,
            correlation: None,
        }
    }

    /// The rules, by id.
    pub fn iter(&self) -> impl Iterator<Item = (&Arc<RuleInfo>, Level)> {
        self.by_id.values().map(|(i, l)| (i, *l))
    }
}

/// The event a finding is shown on: the record that is its evidence (file, record, time).
pub fn evidence_event(file: &Arc<str>, record: u64, time: Timestamp) -> Event<'static> {
    let mut ev = Event::new(Origin {
        file: Arc::clone(file),
        record,
    });
    ev.timestamp = Some(time);
    ev
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &[BuiltinRule] = &[BuiltinRule {
        id: "cellwarden.test.one",
        title: "One",
        level: Level::High,
        description: "",
        tags: &["attack.exfiltration", "attack.t1048"],
    }];

    #[test]
    fn alerts_carry_the_rule_and_its_attack_tags() {
        let t = RuleTable::new("builtin:cellwarden.test", RULES);
        let ev = evidence_event(&Arc::from("f.log"), 7, Timestamp::UNIX_EPOCH);
        let a = t.alert("cellwarden.test.one", None, ev.clone());
        assert_eq!(a.level, Level::High);
        assert_eq!(a.rule.techniques, ["T1048"]);
        assert_eq!(a.rule.tactics, ["exfiltration"]);
        assert_eq!(a.rule.description, None);
        assert_eq!(a.key(), "cellwarden.test.one:f.log:7");
        let b = t.alert("cellwarden.test.one", Some(Level::Low), ev);
        assert_eq!(b.level, Level::Low);
        assert_eq!(t.iter().count(), 1);
    }

    #[test]
    #[should_panic(expected = "not in its detector's table")]
    fn an_unknown_rule_is_a_bug() {
        RuleTable::new("x", RULES).get("cellwarden.test.two");
    }
}
