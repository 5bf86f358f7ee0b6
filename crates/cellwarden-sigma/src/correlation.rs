//! Sigma correlation rules, evaluated over the time-ordered matches of the rules they name.
//!
//! Detection runs in parallel; the matches of rules that correlations reference are collected,
//! put in time order (time, file, record, rule) and fed here one by one, so the result does not
//! depend on the thread count and a chain across files is found. Windows slide: at each match
//! the group keeps the matches of the last `timespan` (the window `(t - timespan, t]`), the
//! condition is tested, and a firing group starts again empty. Memory: per group, the matches
//! of one timespan; groups idle for longer than their timespan are dropped.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use cellwarden_event::{Alert, CorrelationInfo, Event, Level, Origin, RuleInfo, Timestamp};
use rsigma_parser::{
    ConditionExpr, ConditionOperator, CorrelationCondition, CorrelationRule, CorrelationType,
};

/// Marks a reference to another correlation (by its index) instead of a detection rule.
pub(crate) const CORR_BIT: u32 = 1 << 31;

/// A compiled correlation rule.
#[derive(Debug)]
pub(crate) struct Correlation {
    pub info: Arc<RuleInfo>,
    pub level: Level,
    /// Raises alerts (false when only other correlations use it).
    emit: bool,
    kind: CorrelationType,
    /// Referenced detection rules (rule-set indexes), in the order written.
    refs: Vec<u32>,
    /// Names by which the condition of a temporal correlation refers to `refs`.
    ref_names: Vec<Vec<String>>,
    group_by: Vec<String>,
    /// group-by name → (rule index → field name in that rule's events).
    aliases: HashMap<String, HashMap<u32, String>>,
    span_ms: i64,
    condition: CorrelationCondition,
}

impl Correlation {
    /// `resolve` maps a rule reference (id or name) to rule-set indexes.
    pub fn compile(
        rule: &CorrelationRule,
        info: RuleInfo,
        level: Level,
        emit: bool,
        resolve: &dyn Fn(&str) -> Vec<u32>,
    ) -> Result<Correlation, String> {
        let mut refs = Vec::new();
        let mut ref_names = Vec::new();
        for r in &rule.rules {
            let found = resolve(r);
            if found.is_empty() {
                return Err(format!(
                    "names rule `{r}`, which is not among the loaded rules"
                ));
            }
            for i in found {
                refs.push(i);
                ref_names.push(vec![r.clone()]);
            }
        }
        let mut aliases: HashMap<String, HashMap<u32, String>> = HashMap::new();
        for a in &rule.aliases {
            let m = aliases.entry(a.alias.clone()).or_default();
            for (rref, field) in &a.mapping {
                for i in resolve(rref) {
                    m.insert(i, field.clone());
                }
            }
        }
        let needs_field = matches!(
            rule.correlation_type,
            CorrelationType::ValueCount
                | CorrelationType::ValueSum
                | CorrelationType::ValueAvg
                | CorrelationType::ValuePercentile
                | CorrelationType::ValueMedian
        );
        if needs_field
            && !matches!(&rule.condition, CorrelationCondition::Threshold { field: Some(f), .. } if !f.is_empty())
        {
            return Err(format!(
                "{} needs `field` in its condition",
                rule.correlation_type.as_str()
            ));
        }
        Ok(Correlation {
            info: Arc::new(info),
            level,
            emit,
            kind: rule.correlation_type,
            refs,
            ref_names,
            group_by: rule.group_by.clone(),
            aliases,
            span_ms: (rule.timespan.seconds as i64).saturating_mul(1000),
            condition: rule.condition.clone(),
        })
    }

    /// Detection rules and correlations (`CORR_BIT | index`) it names.
    pub fn references(&self) -> &[u32] {
        &self.refs
    }

    /// A correlation that names nothing and never fires (stands in for one that failed).
    pub fn inert() -> Correlation {
        Correlation {
            info: Arc::new(RuleInfo::default()),
            level: Level::Informational,
            emit: false,
            kind: CorrelationType::EventCount,
            refs: Vec::new(),
            ref_names: Vec::new(),
            group_by: Vec::new(),
            aliases: HashMap::new(),
            span_ms: 0,
            condition: CorrelationCondition::Extended(ConditionExpr::Identifier(String::new())),
        }
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Entry {
    ts: i64,
    rule: u32,
    value: Option<String>,
    origin: Origin,
    /// The member's key fields, for the alert.
    fields: Vec<(String, String)>,
}

/// Fields that say who did what to which thing, first present first; a member keeps at most
/// [`MEMBER_FIELDS_MAX`] of them, each cut at [`MEMBER_VALUE_MAX`] characters.
const MEMBER_FIELDS: &[&str] = &[
    "User",
    "user",
    "AUID",
    "TargetUserName",
    "SubjectUserName",
    "account",
    "src_ip",
    "IpAddress",
    "client_host",
    "dst_ip",
    "dst_port",
    "Image",
    "CommandLine",
    "ProcessChain",
    "TargetFilename",
    "statement",
    "message",
];
const MEMBER_FIELDS_MAX: usize = 8;
const MEMBER_VALUE_MAX: usize = 200;

fn member_fields(event: &Event<'_>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    out.push(("timestamp".to_owned(), event.timestamp_rfc3339()));
    if let Some(h) = event.host.as_deref() {
        out.push(("host".to_owned(), h.to_owned()));
    }
    for name in MEMBER_FIELDS {
        if out.len() >= MEMBER_FIELDS_MAX + 2 {
            break;
        }
        if let Some(v) = event.get_str(name).filter(|v| !v.is_empty()) {
            let v: String = v.chars().take(MEMBER_VALUE_MAX).collect();
            out.push(((*name).to_owned(), v));
        }
    }
    out
}

/// Runs correlations over matches in time order.
#[derive(Debug)]
pub struct CorrelationRun<'c> {
    corrs: &'c [Correlation],
    by_rule: HashMap<u32, Vec<usize>>,
    groups: HashMap<(usize, Vec<String>), VecDeque<Entry>>,
    seen: u64,
}

fn ms(t: Option<Timestamp>) -> i64 {
    t.map(|t| t.as_millisecond()).unwrap_or(0)
}

/// The open groups of a [`CorrelationRun`], to carry it over to another process (state
/// snapshots). Only meaningful with the same rule set.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct CorrelationState {
    groups: Vec<(GroupKey, Vec<Entry>)>,
    seen: u64,
}

/// A correlation's index and the values of its group-by fields.
type GroupKey = (usize, Vec<String>);

impl<'c> CorrelationRun<'c> {
    /// Its open groups, in a stable order.
    pub fn save(&self) -> CorrelationState {
        let mut groups: Vec<(GroupKey, Vec<Entry>)> = self
            .groups
            .iter()
            .map(|(k, v)| (k.clone(), v.iter().cloned().collect()))
            .collect();
        groups.sort_by(|a, b| a.0.cmp(&b.0));
        CorrelationState {
            groups,
            seen: self.seen,
        }
    }

    /// Takes the open groups [`save`](Self::save) gave (of a run over the same rules); groups
    /// of correlations this rule set does not have are left out.
    pub fn restore(&mut self, state: CorrelationState) {
        self.seen = state.seen;
        for ((c, key), entries) in state.groups {
            if c < self.corrs.len() {
                self.groups.insert((c, key), entries.into_iter().collect());
            }
        }
    }

    pub(crate) fn new(corrs: &'c [Correlation]) -> Self {
        let mut by_rule: HashMap<u32, Vec<usize>> = HashMap::new();
        for (ci, c) in corrs.iter().enumerate() {
            let mut uniq: Vec<u32> = c.refs.clone();
            uniq.sort_unstable();
            uniq.dedup();
            for r in uniq {
                by_rule.entry(r).or_default().push(ci);
            }
        }
        CorrelationRun {
            corrs,
            by_rule,
            groups: HashMap::new(),
            seen: 0,
        }
    }

    /// Number of groups holding state.
    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    /// Feeds one match (rule `rule` matched `event`); returns the correlation alerts it
    /// completes. Matches must come in time order.
    pub fn push(&mut self, rule: u32, event: &Event<'static>, out: &mut Vec<Alert>) {
        let t = ms(event.timestamp);
        self.seen += 1;
        if self.seen.is_multiple_of(4096) {
            let corrs = self.corrs;
            self.groups
                .retain(|(ci, _), q| q.back().is_some_and(|e| e.ts > t - corrs[*ci].span_ms));
        }
        // A correlation that fires is itself a match for the correlations that name it.
        let mut pending = vec![rule];
        let mut depth = 0;
        while let Some(rule) = pending.pop() {
            depth += 1;
            if depth > 64 {
                break;
            }
            let Some(cis) = self.by_rule.get(&rule).cloned() else {
                continue;
            };
            for ci in cis {
                if self.fire(ci, rule, event, t, out) {
                    pending.push(CORR_BIT | ci as u32);
                }
            }
        }
    }

    /// Adds the match to correlation `ci`; true when it fires.
    fn fire(
        &mut self,
        ci: usize,
        rule: u32,
        event: &Event<'static>,
        t: i64,
        out: &mut Vec<Alert>,
    ) -> bool {
        let c = &self.corrs[ci];
        let key: Vec<String> = c
            .group_by
            .iter()
            .map(|g| {
                let field = c
                    .aliases
                    .get(g)
                    .and_then(|m| m.get(&rule))
                    .map(String::as_str)
                    .unwrap_or(g.as_str());
                event
                    .get_str(field)
                    .map(|v| v.into_owned())
                    .unwrap_or_default()
            })
            .collect();
        let value = match &c.condition {
            CorrelationCondition::Threshold { field: Some(f), .. } => f
                .iter()
                .find_map(|f| event.get_str(f).map(|v| v.into_owned())),
            _ => None,
        };
        let q = self.groups.entry((ci, key.clone())).or_default();
        while q.front().is_some_and(|e| e.ts <= t - c.span_ms) {
            q.pop_front();
        }
        q.push_back(Entry {
            ts: t,
            rule,
            value,
            origin: event.origin.clone(),
            fields: member_fields(event),
        });
        let Some(v) = evaluate(c, q) else {
            return false;
        };
        let info = CorrelationInfo {
            kind: c.kind.as_str().to_owned(),
            group: c
                .group_by
                .iter()
                .cloned()
                .zip(key.iter().cloned())
                .collect(),
            value: v,
            window_start: q
                .front()
                .and_then(|e| Timestamp::from_millisecond(e.ts).ok()),
            window_end: event.timestamp,
            events: q.iter().map(|e| e.origin.clone()).collect(),
            members: q.iter().map(|e| e.fields.clone()).collect(),
        };
        q.clear();
        if c.emit {
            out.push(Alert {
                rule: c.info.clone(),
                level: c.level,
                event: event.clone(),
                correlation: Some(Box::new(info)),
            });
        }
        true
    }
}

fn holds(op: ConditionOperator, v: f64, n: f64) -> bool {
    match op {
        ConditionOperator::Lt => v < n,
        ConditionOperator::Lte => v <= n,
        ConditionOperator::Gt => v > n,
        ConditionOperator::Gte => v >= n,
        ConditionOperator::Eq => v == n,
        ConditionOperator::Neq => v != n,
    }
}

fn numbers(q: &VecDeque<Entry>) -> Vec<f64> {
    q.iter()
        .filter_map(|e| e.value.as_deref()?.trim().parse::<f64>().ok())
        .collect()
}

/// The aggregated value when the condition holds.
fn evaluate(c: &Correlation, q: &VecDeque<Entry>) -> Option<f64> {
    let value = match c.kind {
        CorrelationType::EventCount => q.len() as f64,
        CorrelationType::ValueCount => q
            .iter()
            .filter_map(|e| e.value.as_deref())
            .collect::<HashSet<_>>()
            .len() as f64,
        CorrelationType::ValueSum => numbers(q).iter().sum(),
        CorrelationType::ValueAvg => {
            let n = numbers(q);
            if n.is_empty() {
                return None;
            }
            n.iter().sum::<f64>() / n.len() as f64
        }
        CorrelationType::ValuePercentile | CorrelationType::ValueMedian => {
            let mut n = numbers(q);
            if n.is_empty() {
                return None;
            }
            n.sort_by(f64::total_cmp);
            let p = match (&c.condition, c.kind) {
                (_, CorrelationType::ValueMedian) => 50.0,
                (CorrelationCondition::Threshold { percentile, .. }, _) => {
                    percentile.unwrap_or(50) as f64
                }
                _ => 50.0,
            };
            // Nearest rank.
            let rank = ((p / 100.0) * n.len() as f64).ceil().max(1.0) as usize;
            n[rank.min(n.len()) - 1]
        }
        CorrelationType::Temporal | CorrelationType::TemporalOrdered => {
            let seen: HashSet<u32> = q.iter().map(|e| e.rule).collect();
            if let CorrelationCondition::Extended(expr) = &c.condition {
                return extended(expr, c, &seen).then_some(seen.len() as f64);
            }
            // How many of the referenced rules matched (for temporal_ordered: how far the
            // window follows the written order).
            let count = if c.kind == CorrelationType::TemporalOrdered {
                let mut next = 0;
                for e in q {
                    if next < c.refs.len() && e.rule == c.refs[next] {
                        next += 1;
                    }
                }
                next
            } else {
                c.refs.iter().filter(|r| seen.contains(r)).count()
            };
            // No condition (the parser then gives `gte: 1`): every referenced rule, as the
            // specification's default says.
            let default = matches!(&c.condition, CorrelationCondition::Threshold { predicates, .. }
                if predicates.as_slice() == [(ConditionOperator::Gte, 1)]);
            if default {
                return (count == c.refs.len()).then_some(count as f64);
            }
            count as f64
        }
    };
    match &c.condition {
        CorrelationCondition::Threshold { predicates, .. } => predicates
            .iter()
            .all(|(op, n)| holds(*op, value, *n as f64))
            .then_some(value),
        CorrelationCondition::Extended(_) => Some(value),
    }
}

fn extended(expr: &ConditionExpr, c: &Correlation, seen: &HashSet<u32>) -> bool {
    match expr {
        ConditionExpr::Identifier(name) => c
            .ref_names
            .iter()
            .zip(&c.refs)
            .any(|(names, r)| names.iter().any(|n| n == name) && seen.contains(r)),
        ConditionExpr::And(cs) => cs.iter().all(|x| extended(x, c, seen)),
        ConditionExpr::Or(cs) => cs.iter().any(|x| extended(x, c, seen)),
        ConditionExpr::Not(x) => !extended(x, c, seen),
        ConditionExpr::Selector { .. } => c.refs.iter().all(|r| seen.contains(r)),
    }
}
