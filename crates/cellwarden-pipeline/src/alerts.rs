//! The alerts of a finite run in bounded memory.
//!
//! Workers keep their alerts until they pass their share of the budget
//! ([`HuntConfig::alert_memory`](crate::HuntConfig)), then sort them and write them to an
//! anonymous temporary file as a sorted run. The result, an [`AlertSet`], walks the runs and
//! the alerts still in memory merged in output order, as often as a writer needs (a table
//! walks twice), holding one alert per run at a time. Runs use a compact binary form: rule,
//! log source and file names are kept once in a table and written as numbers.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::sync::{Arc, Mutex};

use cellwarden_event::{
    Alert, AlertSource, Event, Level, LogSource, Origin, RuleInfo, Timestamp, Value,
};
use cellwarden_incident::entity::Context;

/// The output order: time (events without one first), file, record, rule id.
pub fn sort_alerts(alerts: &mut [Alert]) {
    alerts.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
}

/// An estimate of the memory one alert holds, for the budget.
pub fn alert_bytes(a: &Alert) -> usize {
    fn value(v: &Value<'_>) -> usize {
        match v {
            Value::Str(s) => 24 + s.len(),
            Value::List(l) => 24 + l.iter().map(value).sum::<usize>(),
            _ => 16,
        }
    }
    256 + a.event.host.as_ref().map_or(0, |h| h.len())
        + a.event
            .fields
            .iter()
            .map(|(k, v)| 24 + k.len() + value(v))
            .sum::<usize>()
}

/// The numbers runs write for rules, log sources and file names.
#[derive(Default)]
struct Tables {
    rules: Vec<Arc<RuleInfo>>,
    rule_ix: HashMap<usize, u32>,
    sources: Vec<Arc<LogSource>>,
    source_ix: HashMap<usize, u32>,
    files: Vec<Arc<str>>,
    file_ix: HashMap<Arc<str>, u32>,
}

impl Tables {
    fn rule(&mut self, r: &Arc<RuleInfo>) -> u32 {
        let key = Arc::as_ptr(r) as usize;
        if let Some(&i) = self.rule_ix.get(&key) {
            return i;
        }
        self.rules.push(Arc::clone(r));
        let i = (self.rules.len() - 1) as u32;
        self.rule_ix.insert(key, i);
        i
    }

    fn source(&mut self, s: &Arc<LogSource>) -> u32 {
        let key = Arc::as_ptr(s) as usize;
        if let Some(&i) = self.source_ix.get(&key) {
            return i;
        }
        self.sources.push(Arc::clone(s));
        let i = (self.sources.len() - 1) as u32;
        self.source_ix.insert(key, i);
        i
    }

    fn file(&mut self, f: &Arc<str>) -> u32 {
        if let Some(&i) = self.file_ix.get(f) {
            return i;
        }
        self.files.push(Arc::clone(f));
        let i = (self.files.len() - 1) as u32;
        self.file_ix.insert(Arc::clone(f), i);
        i
    }
}

/// One sorted run on disk.
struct Run {
    file: Mutex<File>,
    by_level: [usize; 5],
}

/// Where workers put their sorted runs; shared by the workers of one run.
#[derive(Default)]
pub struct Spill {
    tables: Mutex<Tables>,
    runs: Mutex<Vec<Run>>,
}

fn level_ix(l: Level) -> usize {
    Level::ALL.iter().position(|x| *x == l).unwrap_or(0)
}

impl Spill {
    /// Writes sorted `alerts` as a run (they must have no correlation: workers raise only
    /// single-event alerts).
    pub fn write(&self, alerts: &[Alert]) -> io::Result<()> {
        let mut w = BufWriter::new(tempfile::tempfile()?);
        let mut by_level = [0usize; 5];
        {
            let mut t = self.tables.lock().unwrap_or_else(|p| p.into_inner());
            for a in alerts {
                debug_assert!(a.correlation.is_none());
                by_level[level_ix(a.level)] += 1;
                encode(&mut w, a, &mut t)?;
            }
        }
        let file = w.into_inner().map_err(|e| e.into_error())?;
        self.runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Run {
                file: Mutex::new(file),
                by_level,
            });
        Ok(())
    }

    /// Runs written so far.
    pub fn runs(&self) -> usize {
        self.runs.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

fn put_u32(w: &mut impl Write, v: u32) -> io::Result<()> {
    w.write_all(&v.to_le_bytes())
}

fn put_str(w: &mut impl Write, s: &str) -> io::Result<()> {
    put_u32(w, s.len() as u32)?;
    w.write_all(s.as_bytes())
}

fn put_value(w: &mut impl Write, v: &Value<'_>) -> io::Result<()> {
    match v {
        Value::Null => w.write_all(&[0]),
        Value::Bool(b) => w.write_all(&[1, *b as u8]),
        Value::Int(i) => {
            w.write_all(&[2])?;
            w.write_all(&i.to_le_bytes())
        }
        Value::Float(f) => {
            w.write_all(&[3])?;
            w.write_all(&f.to_bits().to_le_bytes())
        }
        Value::Str(s) => {
            w.write_all(&[4])?;
            put_str(w, s)
        }
        Value::List(l) => {
            w.write_all(&[5])?;
            put_u32(w, l.len() as u32)?;
            l.iter().try_for_each(|x| put_value(w, x))
        }
    }
}

fn encode(w: &mut impl Write, a: &Alert, t: &mut Tables) -> io::Result<()> {
    let e = &a.event;
    put_u32(w, t.rule(&a.rule))?;
    w.write_all(&[level_ix(a.level) as u8])?;
    match e.timestamp {
        Some(ts) => {
            w.write_all(&[1])?;
            w.write_all(&ts.as_second().to_le_bytes())?;
            w.write_all(&ts.subsec_nanosecond().to_le_bytes())?;
        }
        None => w.write_all(&[0])?,
    }
    match &e.host {
        Some(h) => {
            w.write_all(&[1])?;
            put_str(w, h)?;
        }
        None => w.write_all(&[0])?,
    }
    put_u32(w, e.logsource.as_ref().map_or(u32::MAX, |s| t.source(s)))?;
    put_u32(w, t.file(&e.origin.file))?;
    w.write_all(&e.origin.record.to_le_bytes())?;
    put_u32(w, e.fields.len() as u32)?;
    for (k, v) in &e.fields {
        put_str(w, k)?;
        put_value(w, v)?;
    }
    Ok(())
}

struct Decoder<'t, R> {
    r: R,
    t: &'t Tables,
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("alert run: {what}"))
}

impl<R: Read> Decoder<'_, R> {
    fn bytes<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut b = [0u8; N];
        self.r.read_exact(&mut b)?;
        Ok(b)
    }

    fn u32(&mut self) -> io::Result<u32> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }

    fn string(&mut self) -> io::Result<String> {
        let n = self.u32()? as usize;
        let mut b = vec![0u8; n];
        self.r.read_exact(&mut b)?;
        String::from_utf8(b).map_err(|_| bad("text is not UTF-8"))
    }

    fn value(&mut self) -> io::Result<Value<'static>> {
        Ok(match self.bytes::<1>()?[0] {
            0 => Value::Null,
            1 => Value::Bool(self.bytes::<1>()?[0] != 0),
            2 => Value::Int(i64::from_le_bytes(self.bytes()?)),
            3 => Value::Float(f64::from_bits(u64::from_le_bytes(self.bytes()?))),
            4 => Value::Str(self.string()?.into()),
            5 => {
                let n = self.u32()? as usize;
                let mut l = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    l.push(self.value()?);
                }
                Value::List(l)
            }
            _ => return Err(bad("unknown value")),
        })
    }

    /// The next alert; `None` at the end of the run.
    fn next(&mut self) -> io::Result<Option<Alert>> {
        let rule = match self.bytes::<4>() {
            Ok(b) => u32::from_le_bytes(b),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        };
        let rule = Arc::clone(self.t.rules.get(rule as usize).ok_or_else(|| bad("rule"))?);
        let level = *Level::ALL
            .get(self.bytes::<1>()?[0] as usize)
            .ok_or_else(|| bad("level"))?;
        let timestamp = if self.bytes::<1>()?[0] == 1 {
            let s = i64::from_le_bytes(self.bytes()?);
            let n = i32::from_le_bytes(self.bytes()?);
            Some(Timestamp::new(s, n).map_err(|_| bad("time"))?)
        } else {
            None
        };
        let host = if self.bytes::<1>()?[0] == 1 {
            Some(self.string()?.into())
        } else {
            None
        };
        let source = self.u32()?;
        let logsource = (source != u32::MAX)
            .then(|| self.t.sources.get(source as usize).cloned())
            .flatten();
        let file = Arc::clone(
            self.t
                .files
                .get(self.u32()? as usize)
                .ok_or_else(|| bad("file"))?,
        );
        let record = u64::from_le_bytes(self.bytes()?);
        let n = self.u32()? as usize;
        let mut fields = Vec::with_capacity(n.min(4096));
        for _ in 0..n {
            let k = self.string()?;
            fields.push((k.into(), self.value()?));
        }
        let mut event = Event::new(Origin { file, record });
        event.fields = fields;
        event.timestamp = timestamp;
        event.host = host;
        event.logsource = logsource;
        Ok(Some(Alert {
            rule,
            level,
            event,
            correlation: None,
        }))
    }
}

/// The alerts of a run, in output order: sorted runs on disk and sorted alerts in memory.
pub struct AlertSet {
    mem: Vec<Alert>,
    spill: Option<Arc<Spill>>,
    min_level: Option<Level>,
    /// What alerts gained from their context after the run, by alert key.
    context: HashMap<String, Context>,
    /// How that moved the spilled alerts between levels (their runs count them as raised).
    spilled_shift: [isize; 5],
}

impl std::fmt::Debug for AlertSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertSet")
            .field("in_memory", &self.mem.len())
            .field("runs", &self.runs())
            .finish()
    }
}

impl AlertSet {
    /// Alerts all in memory, sorted.
    pub fn in_memory(mut alerts: Vec<Alert>) -> AlertSet {
        sort_alerts(&mut alerts);
        AlertSet {
            mem: alerts,
            spill: None,
            min_level: None,
            context: HashMap::new(),
            spilled_shift: [0; 5],
        }
    }

    /// Alerts in memory (sorted here) and the runs a spill holds.
    pub fn with_spill(alerts: Vec<Alert>, spill: Arc<Spill>) -> AlertSet {
        let mut set = AlertSet::in_memory(alerts);
        if spill.runs() > 0 {
            set.spill = Some(spill);
        }
        set
    }

    /// Gives alerts what they gained from their context (see
    /// [`cellwarden_incident::entity::alert_context`]), by alert key: every walk and count
    /// from now on sees them with it.
    pub fn set_context(&mut self, context: HashMap<String, Context>) {
        let mut in_memory = std::collections::HashSet::new();
        for a in &mut self.mem {
            let key = a.key();
            if let Some(c) = context.get(&key) {
                c.apply(a);
                in_memory.insert(key);
            }
        }
        self.spilled_shift = [0; 5];
        for (k, c) in &context {
            if !in_memory.contains(k) && self.spill.is_some() {
                self.spilled_shift[level_ix(c.from)] -= 1;
                self.spilled_shift[level_ix(c.level)] += 1;
            }
        }
        let min = self.min_level;
        self.mem.retain(|a| min.is_none_or(|m| a.level >= m));
        self.context = context;
    }

    /// Leaves out alerts below `min` from now on.
    pub fn set_min_level(&mut self, min: Level) {
        self.min_level = Some(min);
        self.mem.retain(|a| a.level >= min);
    }

    /// Alerts per level, informational first.
    pub fn by_level(&self) -> [usize; 5] {
        let mut out = [0usize; 5];
        for a in &self.mem {
            out[level_ix(a.level)] += 1;
        }
        if let Some(s) = &self.spill {
            for r in s.runs.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                for (o, n) in out.iter_mut().zip(r.by_level) {
                    *o += n;
                }
            }
            for (o, d) in out.iter_mut().zip(self.spilled_shift) {
                *o = o.saturating_add_signed(d);
            }
        }
        if let Some(min) = self.min_level {
            for (i, o) in out.iter_mut().enumerate() {
                if Level::ALL[i] < min {
                    *o = 0;
                }
            }
        }
        out
    }

    /// Sorted runs on disk.
    pub fn runs(&self) -> usize {
        self.spill.as_ref().map_or(0, |s| s.runs())
    }

    /// Every alert in memory, in order (for what needs them all at once: incidents, the case
    /// store).
    pub fn to_vec(&self) -> io::Result<Vec<Alert>> {
        if self.spill.is_none() {
            return Ok(self.mem.clone());
        }
        let mut out = Vec::with_capacity(self.count());
        self.try_each(&mut |a| {
            out.push(a.clone());
            Ok(())
        })?;
        Ok(out)
    }
}

impl AlertSource for AlertSet {
    fn try_each(&self, f: &mut dyn FnMut(&Alert) -> io::Result<()>) -> io::Result<()> {
        let keep = |a: &Alert| self.min_level.is_none_or(|m| a.level >= m);
        let Some(spill) = &self.spill else {
            return self.mem.iter().filter(|a| keep(a)).try_for_each(f);
        };
        let tables = spill.tables.lock().unwrap_or_else(|p| p.into_inner());
        let runs = spill.runs.lock().unwrap_or_else(|p| p.into_inner());
        let mut readers = Vec::with_capacity(runs.len());
        for r in runs.iter() {
            let mut file = r
                .file
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .try_clone()?;
            file.rewind()?;
            readers.push(Decoder {
                r: BufReader::with_capacity(64 * 1024, file),
                t: &tables,
            });
        }
        // The head of each run, then of memory; the least by output order goes next (ties:
        // memory first, then runs in order: equal keys are the same rule on the same record).
        let mut heads: Vec<Option<Alert>> = Vec::with_capacity(readers.len());
        for d in readers.iter_mut() {
            heads.push(d.next()?);
        }
        let mut mem = self.mem.iter().peekable();
        loop {
            let mut best: Option<usize> = None;
            for i in 0..heads.len() {
                let Some(a) = &heads[i] else { continue };
                let better = match best.and_then(|b| heads[b].as_ref()) {
                    Some(cur) => a.sort_key() < cur.sort_key(),
                    None => true,
                };
                if better {
                    best = Some(i);
                }
            }
            let mem_first = match (mem.peek(), best) {
                (Some(m), Some(b)) => heads[b]
                    .as_ref()
                    .is_none_or(|h| m.sort_key() <= h.sort_key()),
                (Some(_), None) => true,
                (None, _) => false,
            };
            if mem_first {
                let a = mem.next().expect("peeked");
                if keep(a) {
                    f(a)?;
                }
                continue;
            }
            let Some(b) = best else { break };
            let mut a = heads[b].take().expect("best is set");
            heads[b] = readers[b].next()?;
            if !self.context.is_empty()
                && let Some(c) = self.context.get(&a.key())
            {
                c.apply(&mut a);
            }
            if keep(&a) {
                f(&a)?;
            }
        }
        Ok(())
    }

    fn count(&self) -> usize {
        self.by_level().iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(rule: &Arc<RuleInfo>, t: i64, file: &Arc<str>, record: u64, level: Level) -> Alert {
        let mut e = Event::new(Origin {
            file: Arc::clone(file),
            record,
        });
        e.timestamp = Some(Timestamp::from_second(t).unwrap());
        e.host = Some("h1".into());
        e.push("CommandLine", Value::Str(format!("cmd {record} é").into()));
        e.push("n", Value::Int(-7));
        e.push("f", Value::Float(1.5));
        e.push("b", Value::Bool(true));
        e.push("z", Value::Null);
        e.push(
            "l",
            Value::List(vec![
                Value::Str("a".into()),
                Value::List(vec![Value::Int(1)]),
            ]),
        );
        Alert {
            rule: Arc::clone(rule),
            level,
            event: e,
            correlation: None,
        }
    }

    /// Runs and memory merge into the same order, and the same alerts, as sorting them all.
    #[test]
    fn spilled_runs_merge_into_output_order() {
        let rules: Vec<Arc<RuleInfo>> = (0..3)
            .map(|i| {
                Arc::new(RuleInfo {
                    id: format!("r{i}"),
                    ..Default::default()
                })
            })
            .collect();
        let files: Vec<Arc<str>> = vec![Arc::from("a.log"), Arc::from("b.log")];
        let mut all = Vec::new();
        let mut seed = 7u64;
        for k in 0..3000u64 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let level = Level::ALL[(seed >> 60) as usize % 5];
            all.push(alert(
                &rules[(seed >> 33) as usize % 3],
                1_772_323_200 + (seed >> 40) as i64 % 500,
                &files[(seed >> 20) as usize % 2],
                k,
                level,
            ));
        }
        let spill = Arc::new(Spill::default());
        let mut rest = Vec::new();
        for chunk in all.chunks(700) {
            let mut c = chunk.to_vec();
            sort_alerts(&mut c);
            if c.len() == 700 {
                spill.write(&c).unwrap();
            } else {
                rest = c;
            }
        }
        let mut set = AlertSet::with_spill(rest, spill);
        assert_eq!(set.runs(), 4);
        let mut expected = all.clone();
        sort_alerts(&mut expected);
        let render = |v: &[Alert]| -> Vec<String> {
            v.iter()
                .map(|a| {
                    format!(
                        "{} {:?} {:?} {:?}",
                        a.rule.id, a.level, a.event.timestamp, a.event.fields
                    )
                })
                .collect()
        };
        for _ in 0..2 {
            assert_eq!(render(&set.to_vec().unwrap()), render(&expected));
        }
        set.set_min_level(Level::High);
        let high: Vec<Alert> = expected
            .into_iter()
            .filter(|a| a.level >= Level::High)
            .collect();
        assert_eq!(set.count(), high.len());
        assert_eq!(render(&set.to_vec().unwrap()), render(&high));
        // Context given after the run reaches spilled and in-memory alerts alike, in walks
        // and counts; an alert it lowers below the minimum level leaves.
        let mut expected = high;
        let spilled = expected[0].clone();
        let in_memory = expected
            .iter()
            .find(|a| set.mem.iter().any(|m| m.key() == a.key()))
            .unwrap()
            .clone();
        let lower = |a: &Alert, to| Context {
            fields: vec![("LogonUser", "adm".to_owned())],
            from: a.level,
            level: to,
        };
        let context: HashMap<String, Context> = [
            (spilled.key(), lower(&spilled, Level::Critical)),
            (in_memory.key(), lower(&in_memory, Level::Low)),
        ]
        .into_iter()
        .collect();
        for a in &mut expected {
            if let Some(c) = context.get(&a.key()) {
                c.apply(a);
            }
        }
        expected.retain(|a| a.level >= Level::High);
        set.set_context(context);
        assert_eq!(render(&set.to_vec().unwrap()), render(&expected));
        assert_eq!(set.count(), expected.len());
        let critical = expected
            .iter()
            .filter(|a| a.level == Level::Critical)
            .count();
        assert_eq!(set.by_level()[4], critical);
    }
}
