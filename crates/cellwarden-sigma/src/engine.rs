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
    /// Sets of literal ids of which one of each must occur in the event text (at most 64).
    pub literals: Option<Vec<Vec<u32>>>,
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
    /// Every event id some rule is limited to.
    event_ids: std::collections::HashSet<i64>,
    /// One automaton per field slot over the literals that must occur in that field.
    pub(crate) field_scanners: Vec<Option<Scanner>>,
    /// Per literal: it comes from a keyword and may occur in any field.
    pub(crate) literal_any: Vec<bool>,
    /// Per literal: the field it must occur in (`None`: any).
    pub(crate) lits: Vec<crate::compile::Lit>,
    /// For each literal, the rules that require it, each with the bit of the set it is in.
    pub(crate) literal_rules: Vec<Vec<(u32, u64)>>,
    /// Per rule: the bits of all its literal sets (0: not gated).
    pub(crate) gates_full: Vec<u64>,
    pub(crate) correlations: Vec<crate::correlation::Correlation>,
    /// Per rule: a correlation uses its matches.
    pub(crate) correlated: Vec<bool>,
    /// Routes built so far, by log source and event id, for every thread (each also keeps
    /// its own, read without a lock).
    routes: std::sync::RwLock<HashMap<RouteKey, Arc<Route>>>,
    /// Scanners of the keyword literals routes need, by their literal ids, with their memo
    /// keys: routes with the same keyword rules share one (and its memo entries).
    any_scanners: std::sync::Mutex<HashMap<Vec<u32>, KeyedScanner>>,
}

/// Finds which of a set of literals occur in a text, ASCII case-insensitively.
///
/// SigmaHQ's rules give one field thousands of literals (nine thousand on `CommandLine`, five
/// thousand hashes on `Hashes`). An Aho-Corasick automaton over them all is tens of megabytes,
/// and every byte scanned then waits on memory. Instead each literal of eight bytes or more is
/// indexed by one eight-byte window of it (the one fewest other literals share), each of four
/// to seven bytes by a four-byte window: the text's windows are looked up in small bit tables
/// that stay in cache, and a window found there is checked against the literals indexed by it,
/// in place. Shorter literals, few, go through an automaton. Every occurrence of a literal is
/// reported once, as the automaton alone would.
#[derive(Debug)]
pub(crate) struct Scanner {
    /// Literals shorter than four bytes, and their ids.
    short: Option<(AhoCorasick, Vec<u32>)>,
    four: Option<WindowIndex<4>>,
    eight: Option<WindowIndex<8>>,
    /// Length of the shortest literal: shorter texts hold none.
    min_len: usize,
}

/// Literals indexed by one `W`-byte window of each.
#[derive(Debug)]
struct WindowIndex<const W: usize> {
    /// Hash bits above this pick a bit of `bits`.
    shift: u32,
    /// Bit per hashed window: some literal is indexed by a window of that hash.
    bits: Vec<u64>,
    /// Open addressing by hash: folded window (0: empty) and its range of `literals`.
    table: Vec<(u64, u32, u32)>,
    literals: Vec<Windowed>,
}

/// A literal indexed by a window: its global id, its text, where the window ends in it.
#[derive(Debug)]
struct Windowed {
    id: u32,
    needle: Box<[u8]>,
    end: u32,
}

/// A window with ASCII letters folded to lower case (and a few other bytes with them: the
/// index only has to let every match through). Never 0.
#[inline]
fn fold<const W: usize>(w: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b[..W].copy_from_slice(&w[..W]);
    u64::from_le_bytes(b) | (0x2020_2020_2020_2020u64 >> (64 - 8 * W))
}

#[inline]
fn mix(k: u64) -> u64 {
    k.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl<const W: usize> WindowIndex<W> {
    fn new(lits: Vec<(u32, &str)>) -> Option<Self> {
        if lits.is_empty() {
            return None;
        }
        // How many literals contain each window.
        let mut shared: HashMap<u64, u32> = HashMap::new();
        for (_, l) in &lits {
            let mut seen: Vec<u64> = l.as_bytes().windows(W).map(fold::<W>).collect();
            seen.sort_unstable();
            seen.dedup();
            for k in seen {
                *shared.entry(k).or_default() += 1;
            }
        }
        let mut keyed: Vec<(u64, Windowed)> = lits
            .into_iter()
            .map(|(id, l)| {
                let b = l.as_bytes();
                // The rarest window; of equals, the last.
                let (at, key) = b
                    .windows(W)
                    .map(fold::<W>)
                    .enumerate()
                    .min_by_key(|&(i, k)| (shared[&k], std::cmp::Reverse(i)))
                    .expect("a literal of a window or more");
                let w = Windowed {
                    id,
                    needle: b.into(),
                    end: (at + W) as u32,
                };
                (key, w)
            })
            .collect();
        keyed.sort_by_key(|(k, w)| (*k, w.id));
        // Each distinct window with its range of `literals`.
        let mut ranges: Vec<(u64, u32, u32)> = Vec::new();
        let mut literals = Vec::with_capacity(keyed.len());
        for (k, w) in keyed {
            match ranges.last_mut() {
                Some(last) if last.0 == k => last.2 += 1,
                _ => {
                    let i = literals.len() as u32;
                    ranges.push((k, i, i + 1));
                }
            }
            literals.push(w);
        }
        // About sixteen bits per window: few enough cache lines that the table stays in L1.
        let shift = 64
            - (ranges.len() * 16)
                .next_power_of_two()
                .max(64)
                .trailing_zeros();
        let mut bits = vec![0u64; 1 << (64 - shift - 6)];
        for r in &ranges {
            let h = (mix(r.0) >> shift) as usize;
            bits[h >> 6] |= 1 << (h & 63);
        }
        let size = (ranges.len() * 2).next_power_of_two();
        let mut table = vec![(0u64, 0u32, 0u32); size];
        for r in ranges {
            let mut at = mix(r.0) as usize & (size - 1);
            while table[at].0 != 0 {
                at = (at + 1) & (size - 1);
            }
            table[at] = r;
        }
        Some(WindowIndex {
            shift,
            bits,
            table,
            literals,
        })
    }

    /// Reports the literals indexed by window `k` that occur in `t` with it ending at `end`.
    #[inline(always)]
    fn probe(&self, k: u64, t: &[u8], end: usize, found: &mut impl FnMut(u32)) {
        let m = mix(k);
        let h = (m >> self.shift) as usize;
        if self.bits[h >> 6] & (1 << (h & 63)) == 0 {
            return;
        }
        let mask = self.table.len() - 1;
        let mut at = m as usize & mask;
        let (from, to) = loop {
            let e = self.table[at];
            if e.0 == k {
                break (e.1, e.2);
            }
            if e.0 == 0 {
                return;
            }
            at = (at + 1) & mask;
        };
        for l in &self.literals[from as usize..to as usize] {
            let (n, e) = (l.needle.len(), l.end as usize);
            if e <= end
                && end - e + n <= t.len()
                && t[end - e..end - e + n].eq_ignore_ascii_case(&l.needle)
            {
                found(l.id);
            }
        }
    }
}

impl Scanner {
    fn new(lits: Vec<(u32, &str)>) -> Option<Scanner> {
        if lits.is_empty() {
            return None;
        }
        let min_len = lits.iter().map(|(_, l)| l.len()).min().unwrap_or(0);
        let (mut short, mut four, mut eight) = (Vec::new(), Vec::new(), Vec::new());
        for (id, l) in lits {
            match l.len() {
                0..4 => short.push((id, l)),
                4..8 => four.push((id, l)),
                _ => eight.push((id, l)),
            }
        }
        let short = if short.is_empty() {
            None
        } else {
            let ac = AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard)
                .build(short.iter().map(|(_, l)| *l))
                .ok()?;
            Some((ac, short.into_iter().map(|(i, _)| i).collect()))
        };
        Some(Scanner {
            short,
            four: WindowIndex::new(four),
            eight: WindowIndex::new(eight),
            min_len,
        })
    }

    /// Calls `found` with the id of every literal occurrence in `text`.
    fn scan(&self, text: &str, found: &mut impl FnMut(u32)) {
        if let Some((ac, ids)) = &self.short {
            for m in ac.find_overlapping_iter(text) {
                found(ids[m.pattern().as_usize()]);
            }
        }
        let t = text.as_bytes();
        match (&self.four, &self.eight) {
            (None, None) => {}
            (Some(four), None) => {
                for (i, w) in t.windows(4).enumerate() {
                    four.probe(fold::<4>(w), t, i + 4, found);
                }
            }
            (None, Some(eight)) => {
                for (i, w) in t.windows(8).enumerate() {
                    eight.probe(fold::<8>(w), t, i + 8, found);
                }
            }
            (Some(four), Some(eight)) => {
                // One pass: the eight-byte window at each position and its first half.
                for (i, w) in t.windows(8).enumerate() {
                    let k = fold::<8>(w);
                    four.probe(k & 0xFFFF_FFFF, t, i + 4, found);
                    eight.probe(k, t, i + 8, found);
                }
                let tail = t.len().saturating_sub(7);
                for (i, w) in t[tail..].windows(4).enumerate() {
                    four.probe(fold::<4>(w), t, tail + i + 4, found);
                }
            }
        }
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
    /// Field slots named by a literal of one of this route's rules: only these are scanned.
    slots: Vec<bool>,
    /// When a gated rule has keywords: the keyword literals of this route's rules (only they
    /// are looked for, in every field) and the scanner's memo key.
    any: Option<KeyedScanner>,
}

impl Route {
    /// Whether no rule applies to this kind of event.
    fn is_empty(&self) -> bool {
        self.always.is_empty() && !self.any_gated
    }
}

/// A scanner and its key in the memo of scanned texts.
type KeyedScanner = (u32, Arc<Scanner>);

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
    /// Per rule seen this event: the bits of its literal sets found so far.
    rule_gates: Vec<u64>,
    epoch: u32,
    todo: Vec<u32>,
    routes: HashMap<RouteKey, LocalRoute>,
    /// Per log source id: whether no rule applies to its events whatever their event id
    /// (`Some(true)`), so they are passed over before their `EventID` is looked for.
    idle: Vec<Option<bool>>,
    memo: Memo,
}

/// Log source ids (dense, one per kind of source the mapping met) remembered as idle or not.
const MAX_IDLE_IDS: usize = 4096;

/// Log source id and event id: the kind of event a route is for.
type RouteKey = (u32, EidKey);

/// A route as one thread keeps it.
struct LocalRoute {
    route: Arc<Route>,
    /// The field names the last event of this kind had (the first [`NAMES_KEPT`]) and their
    /// slots (`NONE`: no rule names it).
    names: Vec<NamedSlot>,
}

/// A field name and its slot.
type NamedSlot = (Box<str>, u32);

/// Field names kept per kind of event for [`LocalRoute::names`].
const NAMES_KEPT: usize = 256;
/// A [`LocalRoute::names`] entry not filled yet.
const UNSET: u32 = NONE - 1;

/// The literals found in recently scanned field texts, so that a text seen again (the same
/// image, hashes, parent command line: most of a host's events repeat them) is not scanned
/// again. Direct-mapped, [`MEMO_SLOTS`] entries of texts up to [`MEMO_TEXT`] bytes holding up
/// to [`MEMO_FOUND`] literals: at most about 8 MiB per thread. Only speed depends on it, never
/// a result.
struct Memo {
    entries: Vec<MemoEntry>,
    hasher: ahash::RandomState,
}

#[derive(Default)]
struct MemoEntry {
    /// Scanner key (field slot) and text hash; `key == NONE`: empty.
    key: u32,
    hash: u64,
    text: String,
    found: Vec<u32>,
}

const MEMO_SLOTS: usize = 4096;
const MEMO_TEXT: usize = 1024;
/// Shorter texts are scanned again: cheaper than finding them in the memo.
const MEMO_MIN: usize = 16;
const MEMO_FOUND: usize = 256;

impl Memo {
    fn new() -> Memo {
        Memo {
            entries: Vec::new(),
            // Fixed keys: the same texts share entries from run to run.
            hasher: ahash::RandomState::with_seeds(1, 2, 3, 4),
        }
    }

    /// Calls `found` with every literal of `sc` found in `text` (at least once each), from the
    /// memo when the text was scanned recently with the same key.
    fn scan(&mut self, sc: &Scanner, key: u32, text: &str, found: &mut impl FnMut(u32)) {
        if text.len() < sc.min_len {
            return;
        }
        if text.len() < MEMO_MIN || text.len() > MEMO_TEXT {
            sc.scan(text, found);
            return;
        }
        if self.entries.is_empty() {
            self.entries.resize_with(MEMO_SLOTS, || MemoEntry {
                key: NONE,
                ..MemoEntry::default()
            });
        }
        let hash = self.hasher.hash_one((key, text));
        let e = &mut self.entries[hash as usize & (MEMO_SLOTS - 1)];
        if e.key != key || e.hash != hash || e.text != text {
            e.key = key;
            e.hash = hash;
            e.text.clear();
            e.text.push_str(text);
            e.found.clear();
            sc.scan(text, &mut |l| e.found.push(l));
            e.found.sort_unstable();
            e.found.dedup();
        }
        e.found.iter().for_each(|&l| found(l));
        if e.found.len() > MEMO_FOUND {
            // Answered, not kept.
            e.key = NONE;
            e.text.clear();
            e.found = Vec::new();
        }
    }
}

const NONE: u32 = u32::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum EidKey {
    Absent,
    Id(i64),
    /// An id no rule names: every such id meets the same rules (one route for them all, so
    /// hostile ids cannot grow the routes without bound).
    Other,
    Unknown,
}

impl RuleSet {
    pub(crate) fn build(
        mut rules: Vec<CompiledRule>,
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
        let event_ids = rules
            .iter()
            .flat_map(|r| r.event_ids.iter().flatten().copied())
            .collect();
        let mut by_field: Vec<Vec<(u32, &str)>> = vec![Vec::new(); fields.names.len()];
        let mut literal_any = vec![false; lits.len()];
        for (i, (field, needle)) in lits.iter().enumerate() {
            match field {
                Some(f) => by_field[*f as usize].push((i as u32, needle.as_str())),
                None => literal_any[i] = true,
            }
        }
        let field_scanners: Vec<Option<Scanner>> = by_field.into_iter().map(Scanner::new).collect();
        // A field whose scanner could not be built (never seen) finds none of its literals:
        // rules waiting for one are evaluated on every event instead.
        for r in rules.iter_mut() {
            let unfound = r.literals.iter().flatten().flatten().any(
                |&l| matches!(lits[l as usize].0, Some(f) if field_scanners[f as usize].is_none()),
            );
            if unfound {
                r.literals = None;
            }
        }
        let mut literal_rules = vec![Vec::new(); lits.len()];
        let mut gates_full = vec![0u64; rules.len()];
        for (i, r) in rules.iter().enumerate() {
            for (k, set) in r.literals.iter().flatten().take(64).enumerate() {
                for &l in set {
                    literal_rules[l as usize].push((i as u32, 1u64 << k));
                }
                gates_full[i] |= 1u64 << k;
            }
        }
        RuleSet {
            rules,
            fields,
            eventid_slot,
            event_ids,
            field_scanners,
            literal_any,
            lits,
            literal_rules,
            gates_full,
            correlations,
            correlated,
            routes: Default::default(),
            any_scanners: Default::default(),
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
            rule_gates: vec![0; self.rules.len()],
            epoch: 0,
            todo: Vec::new(),
            routes: HashMap::new(),
            idle: Vec::new(),
            memo: Memo::new(),
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

    /// This thread's route for events of log source `ls` and event id `eid`.
    fn local_route<'s>(
        &self,
        routes: &'s mut HashMap<RouteKey, LocalRoute>,
        ls: Option<&LogSource>,
        eid: EidKey,
    ) -> &'s mut LocalRoute {
        let key = (ls.map_or(u32::MAX, |l| l.id), eid);
        routes.entry(key).or_insert_with(|| LocalRoute {
            route: self.route(key, ls, eid),
            names: Vec::new(),
        })
    }

    fn route(&self, key: RouteKey, ls: Option<&LogSource>, eid: EidKey) -> Arc<Route> {
        // Another thread may have built it already.
        let shared = self
            .routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        if let Some(r) = shared {
            return r;
        }
        let mut route = Route {
            always: Vec::new(),
            gated: vec![false; self.rules.len()],
            any_gated: false,
            slots: vec![false; self.fields.names.len()],
            any: None,
        };
        let mut any_lits = Vec::new();
        // A gated rule has keywords: every field must be scanned, not only those rules name.
        let mut scan_all = false;
        for (i, r) in self.rules.iter().enumerate() {
            let eid_ok = match (&r.event_ids, eid) {
                (None, _) | (_, EidKey::Unknown) => true,
                (Some(_), EidKey::Absent) => false,
                (Some(ids), EidKey::Id(e)) => ids.contains(&e),
                (Some(_), EidKey::Other) => false,
            };
            if !eid_ok || !r.logsource.accepts(ls) {
                continue;
            }
            for &l in &r.scan_lits {
                match self.lits[l as usize].0 {
                    Some(f) => route.slots[f as usize] = true,
                    None => any_lits.push(l),
                }
            }
            if r.literals.is_some() {
                route.gated[i] = true;
                route.any_gated = true;
                scan_all |= r.keywords;
            } else {
                route.always.push(i as u32);
            }
        }
        if scan_all && !any_lits.is_empty() {
            any_lits.sort_unstable();
            any_lits.dedup();
            route.any = self.any_scanner(any_lits);
            if route.any.is_none() {
                // No scanner (never seen: its automaton could not be built): the keyword
                // rules are evaluated on every event instead of waiting for literals that
                // would never be found.
                for (i, r) in self.rules.iter().enumerate() {
                    if route.gated[i] && r.keywords {
                        route.gated[i] = false;
                        route.always.push(i as u32);
                    }
                }
            }
        }
        let route = Arc::new(route);
        self.routes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, route.clone());
        route
    }

    /// The scanner of keyword literals `ids` (sorted) and its memo key, built once.
    fn any_scanner(&self, ids: Vec<u32>) -> Option<KeyedScanner> {
        let mut built = self.any_scanners.lock().unwrap_or_else(|e| e.into_inner());
        let n = built.len() as u32;
        if let Some(s) = built.get(&ids) {
            return Some(s.clone());
        }
        let sc = Scanner::new(
            ids.iter()
                .map(|&l| (l, self.lits[l as usize].1.as_str()))
                .collect(),
        )?;
        // Keys above the field slots, below `NONE` (an empty memo entry).
        let key = (NONE - 1).checked_sub(n)?;
        if (key as usize) < self.fields.names.len() {
            return None;
        }
        let s = (key, Arc::new(sc));
        built.insert(ids, s.clone());
        Some(s)
    }

    /// Whether no rule applies to events of log source `ls`, whatever their event id (the
    /// route of an unknown event id holds every rule of the log source).
    fn idle(&self, ls: Option<&LogSource>, scratch: &mut Scratch) -> bool {
        let Some(ls) = ls else { return false };
        let i = ls.id as usize;
        if i >= MAX_IDLE_IDS {
            return false;
        }
        if scratch.idle.len() <= i {
            scratch.idle.resize(i + 1, None);
        }
        if let Some(idle) = scratch.idle[i] {
            return idle;
        }
        let idle = self
            .local_route(&mut scratch.routes, Some(ls), EidKey::Unknown)
            .route
            .is_empty();
        scratch.idle[i] = Some(idle);
        idle
    }

    /// Indexes of the rules that match the event, in rule order.
    pub fn matches(&self, event: &Event<'_>, scratch: &mut Scratch, out: &mut Vec<usize>) {
        out.clear();
        if self.idle(event.logsource.as_deref(), scratch) {
            // No rule applies to this kind of event (flows under Windows rules): not even its
            // `EventID` need be looked for.
            return;
        }
        let eid = match self.eventid_slot.and_then(|_| event.get("EventID")) {
            None | Some(Value::Null) => EidKey::Absent,
            Some(v) => match v.as_i64() {
                Some(e) if self.event_ids.contains(&e) => EidKey::Id(e),
                Some(_) => EidKey::Other,
                None => EidKey::Unknown,
            },
        };
        let local = self.local_route(&mut scratch.routes, event.logsource.as_deref(), eid);
        let route = Arc::clone(&local.route);
        if route.is_empty() {
            // No rule applies to this kind of event (a flow under Windows rules): its fields
            // need not be looked at.
            return;
        }
        // Resolve the fields rules use to positions in this event. Events of one kind mostly
        // name their fields alike, in the same order: each name is compared with the one the
        // last event of this kind had at its place before it is looked up.
        let names = &mut local.names;
        let known = event.fields.len().min(NAMES_KEPT);
        if names.len() < known {
            names.resize_with(known, || (Box::from(""), UNSET));
        }
        for (i, (name, _)) in event.fields.iter().enumerate() {
            let slot = match names.get_mut(i) {
                Some(e) if e.1 != UNSET && *e.0 == **name => e.1,
                Some(e) => {
                    let slot = self.fields.map.get(name.as_ref()).copied().unwrap_or(NONE);
                    *e = (name.as_ref().into(), slot);
                    slot
                }
                None => self.fields.map.get(name.as_ref()).copied().unwrap_or(NONE),
            };
            if slot != NONE {
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
        let rule_gates = &mut scratch.rule_gates;
        let memo = &mut scratch.memo;
        let mut scan = |sc: &Scanner, key: u32, text: &str, bit: u64| {
            memo.scan(sc, key, text, &mut |l| {
                let l = l as usize;
                if lit_seen[l] == epoch {
                    lit_fields[l] |= bit;
                    return;
                }
                lit_seen[l] = epoch;
                lit_fields[l] = bit;
                // Needles only registered for substring tests gate no rule.
                for &(r, gate) in &self.literal_rules[l] {
                    let ri = r as usize;
                    if !route.gated[ri] {
                        continue;
                    }
                    if rule_seen[ri] != epoch {
                        rule_seen[ri] = epoch;
                        rule_gates[ri] = 0;
                    }
                    let before = rule_gates[ri];
                    rule_gates[ri] |= gate;
                    // Evaluated once every set has a literal in the event.
                    if before != self.gates_full[ri] && rule_gates[ri] == self.gates_full[ri] {
                        todo.push(r);
                    }
                }
            });
        };
        fn walk(v: &Value<'_>, scan: &mut dyn FnMut(&str)) {
            match v {
                Value::Str(s) => scan(s),
                Value::List(l) => l.iter().for_each(|x| walk(x, scan)),
                Value::Null => {}
                // Written as `as_text` would, without allocating (most events have several).
                Value::Int(i) => scan(itoa::Buffer::new().format(*i)),
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
            walk(&event.fields[i].1, &mut |t| scan(sc, slot, t, bit));
            scanned |= bit;
        }
        if let Some((key, sc)) = &route.any {
            for (i, (_, v)) in event.fields.iter().enumerate() {
                let bit = if i < 64 { 1u64 << i } else { 0 };
                walk(v, &mut |t| scan(sc, *key, t, bit));
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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testgen::Lcg;

    /// Few symbols so that literals occur, overlap and share windows.
    const ALPHABET: [&str; 9] = ["a", "B", "b", "\\", "-", "é", "É", ".", "x"];

    /// A scanner whose literal ids are their positions in `lits`.
    fn scanner(lits: &[String]) -> Scanner {
        Scanner::new(
            lits.iter()
                .enumerate()
                .map(|(i, l)| (i as u32, l.as_str()))
                .collect(),
        )
        .unwrap()
    }

    /// Occurrences of `lit` in `text`, ASCII case-insensitively, by brute force.
    fn occurrences(text: &str, lit: &str) -> usize {
        let (t, l) = (text.as_bytes(), lit.as_bytes());
        if l.len() > t.len() {
            return 0;
        }
        t.windows(l.len())
            .filter(|w| w.eq_ignore_ascii_case(l))
            .count()
    }

    #[test]
    fn the_scanner_finds_every_occurrence_a_plain_search_finds() {
        let mut g = Lcg(7);
        for round in 0..40 {
            let n = if round % 4 == 0 { 3 } else { 60 + g.next(400) };
            let lits: Vec<String> = (0..n)
                .map(|_| {
                    let len = 1 + g.next(14);
                    g.pick(&ALPHABET, len)
                })
                .collect();
            let sc = scanner(&lits);
            let mut memo = Memo::new();
            for _ in 0..30 {
                let len = g.next(90);
                let text = g.pick(&ALPHABET, len);
                let mut got = vec![0usize; lits.len()];
                sc.scan(&text, &mut |i| got[i as usize] += 1);
                let want: Vec<usize> = lits.iter().map(|l| occurrences(&text, l)).collect();
                assert_eq!(got, want, "text {text:?}");
                // Through the memo, twice: the same literals (each once from a kept entry).
                let present: Vec<bool> = want.iter().map(|&n| n > 0).collect();
                for _ in 0..2 {
                    let mut again = vec![0usize; lits.len()];
                    memo.scan(&sc, 3, &text, &mut |i| again[i as usize] += 1);
                    assert!(text.len() < MEMO_MIN || again.iter().all(|&n| n <= 1));
                    assert_eq!(again.iter().map(|&n| n > 0).collect::<Vec<_>>(), present);
                }
            }
        }
    }

    #[test]
    fn event_ids_no_rule_names_share_one_route() {
        let rule = |id: &str, det: &str| crate::load::RuleSource {
            name: format!("{id}.yml"),
            text: format!(
                "title: {id}\nlogsource: {{product: windows}}\ndetection:\n{det}\nlevel: high\n"
            ),
        };
        let loaded = crate::load::load(
            &[
                rule("named", "  sel: {EventID: 4688, A: x}\n  condition: sel"),
                rule("any", "  sel: {A: x}\n  condition: sel"),
            ],
            &Default::default(),
        );
        let rs = &loaded.rules;
        let mut s = rs.scratch();
        let mut out = Vec::new();
        for eid in 0..5000i64 {
            let mut e = Event::new(cellwarden_event::Origin {
                file: "t".into(),
                record: 1,
            });
            e.fields = vec![
                ("EventID".into(), Value::Int(eid)),
                ("A".into(), Value::Str("x".into())),
            ];
            rs.matches(&e, &mut s, &mut out);
            assert_eq!(out.len(), if eid == 4688 { 2 } else { 1 }, "{eid}");
        }
        assert!(s.routes.len() <= 2, "{} routes", s.routes.len());
        assert!(s.routes.values().all(|l| l.names.len() <= 2));
    }

    #[test]
    fn the_memo_tells_texts_and_fields_apart() {
        let a = Scanner::new(vec![(0, "mimikatz"), (1, "-enc")]).unwrap();
        let b = Scanner::new(vec![(2, "katz")]).unwrap();
        let mut memo = Memo::new();
        let mut run = |sc: &Scanner, key: u32, text: &str| {
            let mut v = Vec::new();
            memo.scan(sc, key, text, &mut |i| v.push(i));
            v.sort();
            v
        };
        // Texts long enough to be kept (shorter ones are scanned each time).
        let (both, one) = ("run x MimiKatz -ENC", "run x MimiKatz ok");
        assert!(one.len() >= MEMO_MIN);
        assert_eq!(run(&a, 1, both), vec![0, 1]);
        assert_eq!(run(&b, 2, both), vec![2]);
        assert_eq!(run(&a, 1, both), vec![0, 1]);
        assert_eq!(run(&a, 1, one), vec![0]);
        assert_eq!(run(&a, 1, "MimiKatz"), vec![0]);
        assert_eq!(run(&a, 1, "-en"), Vec::<u32>::new());
        // Longer than the memo keeps: scanned each time.
        let long = format!("{}mimikatz", "a".repeat(MEMO_TEXT));
        assert_eq!(run(&a, 1, &long), vec![0]);
        assert_eq!(run(&a, 1, &long), vec![0]);
        // More literals found than an entry keeps: answered, not kept.
        let many: Vec<String> = (0..=MEMO_FOUND).map(|i| format!("k{i:03}")).collect();
        let c = scanner(&many);
        let text = many.concat();
        for _ in 0..2 {
            assert_eq!(run(&c, 5, &text).len(), MEMO_FOUND + 1);
        }
    }
}
