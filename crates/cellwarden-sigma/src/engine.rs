//! Evaluation: routing by log source and event id, a literal prefilter, then the compiled
//! conditions.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use cellwarden_event::{Event, Level, LogSource, RuleInfo, Value};

use crate::compile::{Cond, FieldTable, Item, Mode, Node, Test};
use crate::matcher::Matcher;

/// The log source a rule asks for.
#[derive(Debug, Clone, Default)]
pub(crate) struct RuleLogSource {
    pub product: Option<String>,
    pub service: Option<String>,
    pub category: Option<String>,
}

impl RuleLogSource {
    fn accepts(&self, ev: Option<&LogSource>) -> bool {
        let Some(ev) = ev else { return true };
        let eq = |want: &Option<String>, have: Option<&str>| match want {
            None => true,
            Some(w) => have.is_some_and(|h| h.eq_ignore_ascii_case(w)),
        };
        eq(&self.product, ev.product.as_deref())
            && self.service.as_ref().is_none_or(|s| ev.has_service(s))
            && match &self.category {
                None => true,
                Some(c) => ev.categories.iter().any(|x| x.eq_ignore_ascii_case(c)),
            }
    }
}

#[derive(Debug)]
pub(crate) struct CompiledRule {
    pub info: Arc<RuleInfo>,
    pub level: Level,
    pub logsource: RuleLogSource,
    pub nodes: Vec<Node>,
    pub cond: Cond,
    pub event_ids: Option<BTreeSet<i64>>,
    /// Literal ids of which one must occur in the event text.
    pub literals: Option<Vec<u32>>,
    /// Every literal id the rule uses (prefilter and substring tests).
    pub scan_lits: Vec<u32>,
    /// Raises alerts of its own (false when only correlations use it).
    pub emit: bool,
    /// Id, name and title: what correlations and filters may call it.
    pub names: Vec<String>,
    /// Has keyword items, so its literals may occur in any field.
    pub keywords: bool,
}

/// Compiled, indexed rules ready to evaluate events. Shared by all worker threads.
#[derive(Debug)]
pub struct RuleSet {
    pub(crate) rules: Vec<CompiledRule>,
    pub(crate) fields: FieldTable,
    pub(crate) eventid_slot: Option<u32>,
    /// One automaton per field slot over the literals that must occur in that field.
    pub(crate) field_scanners: Vec<Option<Scanner>>,
    /// Literals from keywords, which may occur in any field.
    pub(crate) any_scanner: Option<Scanner>,
    /// Per literal: it belongs to `any_scanner`.
    pub(crate) literal_any: Vec<bool>,
    /// Per literal: the field it must occur in (`None`: any).
    pub(crate) lits: Vec<crate::compile::Lit>,
    /// For each literal, the rules that require it (one of their literals).
    pub(crate) literal_rules: Vec<Vec<u32>>,
    pub(crate) correlations: Vec<crate::correlation::Correlation>,
    /// Per rule: a correlation uses its matches.
    pub(crate) correlated: Vec<bool>,
}

/// An Aho-Corasick automaton and the global ids of its patterns.
#[derive(Debug)]
pub(crate) struct Scanner {
    ac: AhoCorasick,
    ids: Vec<u32>,
}

impl Scanner {
    fn new(lits: Vec<(u32, &str)>) -> Option<Scanner> {
        if lits.is_empty() {
            return None;
        }
        let ac = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(lits.iter().map(|(_, l)| *l))
            .ok()?;
        Some(Scanner {
            ac,
            ids: lits.into_iter().map(|(i, _)| i).collect(),
        })
    }
}

/// The rules one kind of event can meet.
#[derive(Debug)]
struct Route {
    /// Rules without a literal prefilter: always evaluated.
    always: Vec<u32>,
    /// Rules with a prefilter, by rule index: evaluated when one of their literals occurs.
    gated: Vec<bool>,
    any_gated: bool,
    /// A gated rule has keywords: every field must be scanned, not only those rules name.
    scan_all: bool,
    /// Field slots named by a literal of one of this route's rules: only these are scanned.
    slots: Vec<bool>,
}

/// Per-thread evaluation state, reused from event to event.
pub struct Scratch {
    /// Field slot → index into the event's fields (`NONE` when absent).
    pos: Vec<u32>,
    touched: Vec<u32>,
    /// Lower-cased text of event fields, by field index, filled on demand.
    lower: Vec<Option<String>>,
    lit_seen: Vec<u32>,
    /// For literals seen this event: bit i set when found in field i (first 64 fields).
    lit_fields: Vec<u64>,
    /// Fields the literal scan read this event (first 64).
    scanned: u64,
    /// Whether the keyword literals were scanned for in every field this event.
    scanned_any: bool,
    rule_seen: Vec<u32>,
    epoch: u32,
    todo: Vec<u32>,
    routes: HashMap<(u32, EidKey), Arc<Route>>,
}

const NONE: u32 = u32::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum EidKey {
    Absent,
    Id(i64),
    Unknown,
}

impl RuleSet {
    pub(crate) fn build(
        rules: Vec<CompiledRule>,
        fields: FieldTable,
        lits: Vec<crate::compile::Lit>,
        correlations: Vec<crate::correlation::Correlation>,
    ) -> Self {
        let mut correlated = vec![false; rules.len()];
        for c in &correlations {
            for &r in c.references() {
                if r & crate::correlation::CORR_BIT == 0 {
                    correlated[r as usize] = true;
                }
            }
        }
        let eventid_slot = fields.map.get("EventID").copied();
        let mut by_field: Vec<Vec<(u32, &str)>> = vec![Vec::new(); fields.names.len()];
        let mut any = Vec::new();
        let mut literal_any = vec![false; lits.len()];
        for (i, (field, needle)) in lits.iter().enumerate() {
            match field {
                Some(f) => by_field[*f as usize].push((i as u32, needle.as_str())),
                None => {
                    any.push((i as u32, needle.as_str()));
                    literal_any[i] = true;
                }
            }
        }
        let field_scanners = by_field.into_iter().map(Scanner::new).collect();
        let any_scanner = Scanner::new(any);
        let mut literal_rules = vec![Vec::new(); lits.len()];
        for (i, r) in rules.iter().enumerate() {
            for &l in r.literals.iter().flatten() {
                literal_rules[l as usize].push(i as u32);
            }
        }
        RuleSet {
            rules,
            fields,
            eventid_slot,
            field_scanners,
            any_scanner,
            literal_any,
            lits,
            literal_rules,
            correlations,
            correlated,
        }
    }

    /// Rules in the set (correlations included).
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// No rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Metadata of rule `i`.
    pub fn rule_info(&self, i: usize) -> &Arc<RuleInfo> {
        &self.rules[i].info
    }

    /// Whether rule `i` raises alerts of its own.
    pub fn rule_emits(&self, i: usize) -> bool {
        self.rules[i].emit
    }

    /// Whether a correlation uses the matches of rule `i`.
    pub fn rule_correlated(&self, i: usize) -> bool {
        self.correlated[i]
    }

    /// Number of correlation rules in force.
    pub fn correlation_count(&self) -> usize {
        self.correlations.len()
    }

    /// Correlation state for one run over time-ordered matches.
    pub fn correlation_run(&self) -> crate::correlation::CorrelationRun<'_> {
        crate::correlation::CorrelationRun::new(&self.correlations)
    }

    /// Level of rule `i`.
    pub fn rule_level(&self, i: usize) -> Level {
        self.rules[i].level
    }

    /// All rules' metadata, in rule order.
    pub fn infos(&self) -> impl Iterator<Item = &Arc<RuleInfo>> {
        self.rules.iter().map(|r| &r.info)
    }

    /// Working memory for [`RuleSet::matches`], one per thread.
    pub fn scratch(&self) -> Scratch {
        Scratch {
            pos: vec![NONE; self.fields.names.len()],
            touched: Vec::new(),
            lower: Vec::new(),
            lit_seen: vec![0; self.literal_rules.len()],
            lit_fields: vec![0; self.literal_rules.len()],
            scanned: 0,
            scanned_any: false,
            rule_seen: vec![0; self.rules.len()],
            epoch: 0,
            todo: Vec::new(),
            routes: HashMap::new(),
        }
    }

    /// Whether rule `i` applies to events of this event's log source.
    pub fn logsource_accepts(&self, i: usize, event: &Event<'_>) -> bool {
        self.rules[i].logsource.accepts(event.logsource.as_deref())
    }

    /// How many rules are indexed by `EventID` and how many have a literal prefilter.
    pub fn index_stats(&self) -> (usize, usize) {
        (
            self.rules.iter().filter(|r| r.event_ids.is_some()).count(),
            self.rules.iter().filter(|r| r.literals.is_some()).count(),
        )
    }

    fn route(&self, scratch: &mut Scratch, ls: Option<&LogSource>, eid: EidKey) -> Arc<Route> {
        let key = (ls.map(|l| l.id).unwrap_or(u32::MAX), eid);
        if let Some(r) = scratch.routes.get(&key) {
            return r.clone();
        }
        let mut route = Route {
            always: Vec::new(),
            gated: vec![false; self.rules.len()],
            any_gated: false,
            scan_all: false,
            slots: vec![false; self.fields.names.len()],
        };
        for (i, r) in self.rules.iter().enumerate() {
            let eid_ok = match (&r.event_ids, eid) {
                (None, _) | (_, EidKey::Unknown) => true,
                (Some(_), EidKey::Absent) => false,
                (Some(ids), EidKey::Id(e)) => ids.contains(&e),
            };
            if !eid_ok || !r.logsource.accepts(ls) {
                continue;
            }
            for &l in &r.scan_lits {
                if let Some(f) = self.lits[l as usize].0 {
                    route.slots[f as usize] = true;
                }
            }
            if r.literals.is_some() {
                route.gated[i] = true;
                route.any_gated = true;
                route.scan_all |= r.keywords;
            } else {
                route.always.push(i as u32);
            }
        }
        let route = Arc::new(route);
        scratch.routes.insert(key, route.clone());
        route
    }

    /// Indexes of the rules that match the event, in rule order.
    pub fn matches(&self, event: &Event<'_>, scratch: &mut Scratch, out: &mut Vec<usize>) {
        out.clear();
        let eid = match self.eventid_slot.and_then(|_| event.get("EventID")) {
            None | Some(Value::Null) => EidKey::Absent,
            Some(v) => v.as_i64().map(EidKey::Id).unwrap_or(EidKey::Unknown),
        };
        let route = self.route(scratch, event.logsource.as_deref(), eid);
        if route.always.is_empty() && !route.any_gated {
            // No rule applies to this kind of event (a flow under Windows rules): its fields
            // need not be looked at.
            return;
        }
        // Resolve the fields rules use to positions in this event.
        for (i, (name, _)) in event.fields.iter().enumerate() {
            if let Some(&slot) = self.fields.map.get(name.as_ref()) {
                let p = &mut scratch.pos[slot as usize];
                if *p == NONE {
                    *p = i as u32;
                    scratch.touched.push(slot);
                }
            }
        }
        scratch.lower.clear();
        scratch.lower.resize(event.fields.len(), None);

        scratch.scanned = 0;
        scratch.scanned_any = false;
        let mut todo = std::mem::take(&mut scratch.todo);
        todo.clear();
        todo.extend_from_slice(&route.always);
        if route.any_gated {
            self.scan_literals(event, scratch, &route, &mut todo);
        }
        todo.sort_unstable();
        for &r in &todo {
            let rule = &self.rules[r as usize];
            let mut ctx = Ctx {
                event,
                scratch,
                nodes: &rule.nodes,
                literal_any: &self.literal_any,
            };
            if ctx.cond(&rule.cond) {
                out.push(r as usize);
            }
        }
        scratch.todo = todo;
        for slot in scratch.touched.drain(..) {
            scratch.pos[slot as usize] = NONE;
        }
    }

    /// Scans the fields rules name for their literals (and every field for keyword literals
    /// when a keyword rule is gated); adds the gated rules of this route whose literal occurs
    /// to `todo`, and records which fields each literal was found in.
    fn scan_literals(
        &self,
        event: &Event<'_>,
        scratch: &mut Scratch,
        route: &Route,
        todo: &mut Vec<u32>,
    ) {
        scratch.epoch = scratch.epoch.wrapping_add(1);
        if scratch.epoch == 0 {
            scratch.lit_seen.iter_mut().for_each(|x| *x = 0);
            scratch.rule_seen.iter_mut().for_each(|x| *x = 0);
            scratch.epoch = 1;
        }
        let epoch = scratch.epoch;
        let lit_seen = &mut scratch.lit_seen;
        let lit_fields = &mut scratch.lit_fields;
        let rule_seen = &mut scratch.rule_seen;
        let mut scan = |sc: &Scanner, text: &str, bit: u64| {
            for m in sc.ac.find_overlapping_iter(text) {
                let l = sc.ids[m.pattern().as_usize()] as usize;
                if lit_seen[l] == epoch {
                    lit_fields[l] |= bit;
                    continue;
                }
                lit_seen[l] = epoch;
                lit_fields[l] = bit;
                // Needles only registered for substring tests gate no rule.
                for &r in &self.literal_rules[l] {
                    if route.gated[r as usize] && rule_seen[r as usize] != epoch {
                        rule_seen[r as usize] = epoch;
                        todo.push(r);
                    }
                }
            }
        };
        fn walk(v: &Value<'_>, scan: &mut dyn FnMut(&str)) {
            match v {
                Value::Str(s) => scan(s),
                Value::List(l) => l.iter().for_each(|x| walk(x, scan)),
                Value::Null => {}
                other => {
                    if let Some(t) = other.as_text() {
                        scan(&t)
                    }
                }
            }
        }
        let mut scanned = 0u64;
        for &slot in &scratch.touched {
            if !route.slots[slot as usize] {
                continue;
            }
            let Some(sc) = &self.field_scanners[slot as usize] else {
                continue;
            };
            let i = scratch.pos[slot as usize] as usize;
            let bit = if i < 64 { 1u64 << i } else { 0 };
            walk(&event.fields[i].1, &mut |t| scan(sc, t, bit));
            scanned |= bit;
        }
        if route.scan_all
            && let Some(sc) = &self.any_scanner
        {
            for (i, (_, v)) in event.fields.iter().enumerate() {
                let bit = if i < 64 { 1u64 << i } else { 0 };
                walk(v, &mut |t| scan(sc, t, bit));
            }
            scratch.scanned_any = true;
        }
        scratch.scanned = scanned;
    }
}

struct Ctx<'e, 'a, 's> {
    event: &'e Event<'a>,
    scratch: &'s mut Scratch,
    nodes: &'e [Node],
    literal_any: &'e [bool],
}

impl Ctx<'_, '_, '_> {
    fn cond(&mut self, c: &Cond) -> bool {
        match c {
            Cond::Det(i) => {
                let nodes = self.nodes;
                self.node(&nodes[*i as usize])
            }
            Cond::And(cs) => cs.iter().all(|c| self.cond(c)),
            Cond::Or(cs) => cs.iter().any(|c| self.cond(c)),
            Cond::Not(c) => !self.cond(c),
            Cond::AtLeast(n, cs) => {
                let mut hit = 0u64;
                for c in cs {
                    if self.cond(c) {
                        hit += 1;
                        if hit >= *n {
                            return true;
                        }
                    }
                }
                hit >= *n
            }
            Cond::Const(b) => *b,
        }
    }

    fn node(&mut self, n: &Node) -> bool {
        match n {
            Node::All(cs) => cs.iter().all(|c| self.node(c)),
            Node::Any(cs) => cs.iter().any(|c| self.node(c)),
            Node::Item(item) => self.item(item),
        }
    }

    fn field(&self, slot: u32) -> Option<usize> {
        let p = self.scratch.pos[slot as usize];
        (p != NONE).then_some(p as usize)
    }

    fn item(&mut self, item: &Item) -> bool {
        match item.field {
            None => {
                // Keyword: any field value.
                let Test::Values { ms, all, neq } = &item.test else {
                    return false;
                };
                let hit = |ctx: &mut Self, m: &Matcher| {
                    (0..ctx.event.fields.len()).any(|i| ctx.value_matches(i, m))
                };
                let r = if *all {
                    ms.iter().all(|m| hit(self, m))
                } else {
                    ms.iter().any(|m| hit(self, m))
                };
                r != *neq
            }
            Some(slot) => {
                let pos = self.field(slot);
                match &item.test {
                    Test::Exists(want) => pos.is_some() == *want,
                    Test::Null => match pos {
                        None => true,
                        Some(p) => self.event.fields[p].1.is_null(),
                    },
                    Test::Values { ms, all, neq } => {
                        let Some(p) = pos else { return false };
                        let r = if *all {
                            ms.iter().all(|m| self.value_matches(p, m))
                        } else {
                            ms.iter().any(|m| self.value_matches(p, m))
                        };
                        r != *neq
                    }
                    Test::FieldRef {
                        others,
                        cased,
                        all,
                        neq,
                    } => {
                        let Some(p) = pos else { return false };
                        let Some(mine) = self.event.fields[p].1.as_text() else {
                            return false;
                        };
                        let test = |&(o, mode): &(u32, Mode)| -> bool {
                            let Some(op) = self.field(o) else {
                                return false;
                            };
                            let Some(theirs) = self.event.fields[op].1.as_text() else {
                                return false;
                            };
                            let (a, b) = if *cased {
                                (mine.to_string(), theirs.to_string())
                            } else {
                                (mine.to_lowercase(), theirs.to_lowercase())
                            };
                            match mode {
                                Mode::Exact => a == b,
                                Mode::Prefix => a.starts_with(&b),
                                Mode::Suffix => a.ends_with(&b),
                                Mode::Contains => a.contains(&b),
                            }
                        };
                        let r = if *all {
                            others.iter().all(test)
                        } else {
                            others.iter().any(test)
                        };
                        r != *neq
                    }
                }
            }
        }
    }

    /// Tests field `p` (list members one by one) with one matcher.
    fn value_matches(&mut self, p: usize, m: &Matcher) -> bool {
        // A substring test whose needle the literal scan looked for in this field.
        if let Matcher::Str(pat) = m
            && let Some(l) = pat.lit
            && p < 64
            && if self.literal_any[l as usize] {
                self.scratch.scanned_any
            } else {
                self.scratch.scanned & (1 << p) != 0
            }
        {
            let l = l as usize;
            return self.scratch.lit_seen[l] == self.scratch.epoch
                && self.scratch.lit_fields[l] & (1 << p) != 0;
        }
        let v = &self.event.fields[p].1;
        match v {
            Value::List(items) => items.iter().any(|x| match x {
                Value::Str(s) if m.needs_lower() => m.matches(x, &s.to_lowercase()),
                _ => m.matches(x, ""),
            }),
            Value::Str(s) if m.needs_lower() => {
                let lower = self.scratch.lower[p].get_or_insert_with(|| s.to_lowercase());
                m.matches(v, lower)
            }
            _ => m.matches(v, ""),
        }
    }
}
