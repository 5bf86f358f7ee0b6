//! Which Sigma log source an event belongs to, read from a YAML mapping (data, not code).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cellwarden_event::{Event, LogSource, Value};
use serde::Deserialize;

/// The mapping compiled into the binary.
pub const BUILTIN_MAPPING: &str = include_str!("../mapping.yml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    #[serde(default)]
    timestamp_fields: Vec<String>,
    #[serde(default)]
    host_fields: Vec<String>,
    logsources: Vec<EntryFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryFile {
    when: HashMap<String, OneOrMany>,
    product: Option<String>,
    service: Option<String>,
    category: Option<String>,
    #[serde(default)]
    fields: HashMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(Scalar),
    Many(Vec<Scalar>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Scalar {
    Int(i64),
    Str(String),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Scalar::Int(i) => i.to_string(),
            Scalar::Str(s) => s.to_lowercase(),
        }
    }
}

#[derive(Debug)]
struct Entry {
    /// Conditions other than `Channel`: field name and accepted lower-cased texts.
    conditions: Vec<(String, Vec<String>)>,
    product: Option<Box<str>>,
    service: Option<Box<str>>,
    category: Option<Box<str>>,
    aliases: Vec<(String, String)>,
}

/// What the mapping resolved for one kind of event.
#[derive(Debug)]
pub struct Resolved {
    /// The Sigma log source of the event.
    pub logsource: Arc<LogSource>,
    /// `(sigma_name, event_field)` pairs to add to the event.
    pub aliases: Vec<(String, String)>,
}

/// A compiled log source mapping.
#[derive(Debug)]
pub struct Mapping {
    by_channel: HashMap<String, Vec<usize>>,
    generic: Vec<usize>,
    entries: Vec<Entry>,
    timestamp_fields: Vec<String>,
    host_fields: Vec<String>,
    interned: Mutex<Interner>,
    /// Tells this mapping's resolutions apart in each thread's [`LAST`].
    id: u64,
    /// Lengths and first bytes of `host_fields`.
    host_names: NameFilter,
}

/// Whether a name may be one of a few, by its length and first byte (a bit each).
#[derive(Debug, Default)]
struct NameFilter {
    lengths: u64,
    first: [u64; 4],
}

impl NameFilter {
    fn of(names: &[String]) -> NameFilter {
        let mut f = NameFilter::default();
        for n in names {
            f.lengths |= 1 << n.len().min(63);
            if let Some(b) = n.bytes().next() {
                f.first[(b >> 6) as usize] |= 1 << (b & 63);
            }
        }
        f
    }

    fn may_be(&self, name: &str) -> bool {
        self.lengths & (1 << name.len().min(63)) != 0
            && name
                .bytes()
                .next()
                .is_some_and(|b| self.first[(b >> 6) as usize] & (1 << (b & 63)) != 0)
    }
}

/// A thread's last resolution: (mapping id, entries matched, result). Events of one source
/// mostly match the same entries, so the shared interner (a lock) is seldom asked.
type LastResolved = Option<(u64, Vec<u16>, Arc<Resolved>)>;

thread_local! {
    static LAST: std::cell::RefCell<LastResolved> = const { std::cell::RefCell::new(None) };
}

static MAPPINGS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[derive(Debug, Default)]
struct Interner {
    by_entries: HashMap<Vec<u16>, Arc<Resolved>>,
    count: u32,
}

/// A mapping file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("log source mapping: {0}")]
pub struct MappingError(String);

impl Mapping {
    /// The compiled-in mapping.
    pub fn builtin() -> Mapping {
        Mapping::from_yaml(BUILTIN_MAPPING).expect("the built-in mapping is valid")
    }

    /// Reads a mapping file (the format of `mapping.yml`).
    pub fn from_yaml(text: &str) -> Result<Mapping, MappingError> {
        crate::yaml::check_nesting(text).map_err(|e| MappingError(e.to_string()))?;
        let file: MappingFile =
            yaml_serde::from_str(text).map_err(|e| MappingError(e.to_string()))?;
        if file.logsources.len() > u16::MAX as usize {
            return Err(MappingError("too many entries".into()));
        }
        let mut by_channel: HashMap<String, Vec<usize>> = HashMap::new();
        let mut generic = Vec::new();
        let mut entries = Vec::new();
        for (i, e) in file.logsources.into_iter().enumerate() {
            let mut conditions = Vec::new();
            let mut channels = None;
            let mut keys: Vec<_> = e.when.into_iter().collect();
            keys.sort_by(|a, b| a.0.cmp(&b.0));
            for (field, v) in keys {
                let values: Vec<String> = match v {
                    OneOrMany::One(s) => vec![s.text()],
                    OneOrMany::Many(l) => l.iter().map(Scalar::text).collect(),
                };
                if field == "Channel" && !values.iter().any(|v| v.ends_with('*')) {
                    channels = Some(values);
                } else {
                    conditions.push((field, values));
                }
            }
            if e.product.is_none() && e.service.is_none() && e.category.is_none() {
                return Err(MappingError(format!(
                    "entry {} gives neither product, service nor category",
                    i + 1
                )));
            }
            let mut aliases: Vec<(String, String)> = e.fields.into_iter().collect();
            aliases.sort();
            entries.push(Entry {
                conditions,
                product: e.product.map(Into::into),
                service: e.service.map(Into::into),
                category: e.category.map(Into::into),
                aliases,
            });
            match channels {
                Some(chs) => {
                    for c in chs {
                        by_channel.entry(c).or_default().push(i);
                    }
                }
                None => generic.push(i),
            }
        }
        Ok(Mapping {
            by_channel,
            generic,
            entries,
            timestamp_fields: file.timestamp_fields,
            host_names: NameFilter::of(&file.host_fields),
            host_fields: file.host_fields,
            interned: Mutex::new(Interner::default()),
            id: MAPPINGS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }

    /// Fields read for an event's time, first present wins.
    pub fn timestamp_fields(&self) -> &[String] {
        &self.timestamp_fields
    }

    /// Fields read for an event's host, first present wins.
    pub fn host_fields(&self) -> &[String] {
        &self.host_fields
    }

    /// Resolves the log source of an event from its fields; `None` when no entry applies.
    pub fn resolve(&self, event: &Event<'_>) -> Option<Arc<Resolved>> {
        let mut matched: smallvec::SmallVec<[u16; 8]> = smallvec::SmallVec::new();
        let channel = event.get_str("Channel").map(|c| {
            if c.bytes().any(|b| b.is_ascii_uppercase() || !b.is_ascii()) {
                Cow::Owned(c.to_lowercase())
            } else {
                c
            }
        });
        let candidates = channel
            .as_deref()
            .and_then(|c| self.by_channel.get(c))
            .into_iter()
            .flatten()
            .chain(self.generic.iter());
        for &i in candidates {
            let entry = &self.entries[i];
            let ok = entry.conditions.iter().all(|(field, accepted)| {
                let hit = |v: &Value<'_>| value_accepted(v, accepted);
                match event.get(field) {
                    Some(Value::List(items)) => items.iter().any(hit),
                    Some(v) => hit(v),
                    None => false,
                }
            });
            if ok {
                matched.push(i as u16);
            }
        }
        if matched.is_empty() {
            return None;
        }
        matched.sort_unstable();
        let last = LAST.with_borrow(|l| match l {
            Some((id, m, r)) if *id == self.id && m[..] == matched[..] => Some(r.clone()),
            _ => None,
        });
        if last.is_some() {
            return last;
        }
        let r = self.intern(&matched);
        LAST.set(Some((self.id, matched.to_vec(), r.clone())));
        Some(r)
    }

    /// The resolution of a set of matched entries, one per set for the mapping's life.
    fn intern(&self, matched: &[u16]) -> Arc<Resolved> {
        let mut interner = self.interned.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = interner.by_entries.get(matched) {
            return r.clone();
        }
        let mut ls = LogSource {
            id: interner.count,
            ..LogSource::default()
        };
        let mut aliases = Vec::new();
        for &i in matched {
            let e = &self.entries[i as usize];
            if ls.product.is_none() {
                ls.product = e.product.clone();
            }
            match (&ls.service, &e.service) {
                (None, s) => ls.service = s.clone(),
                (Some(first), Some(s)) if first != s && !ls.other_services.contains(s) => {
                    ls.other_services.push(s.clone())
                }
                _ => {}
            }
            if let Some(c) = &e.category
                && !ls.categories.contains(c)
            {
                ls.categories.push(c.clone());
            }
            aliases.extend(e.aliases.iter().cloned());
        }
        interner.count += 1;
        let r = Arc::new(Resolved {
            logsource: Arc::new(ls),
            aliases,
        });
        interner.by_entries.insert(matched.to_vec(), r.clone());
        r
    }

    /// Sets the event's log source, adds alias fields, and fills time and host from the
    /// mapping's field lists when the source did not set them.
    pub fn apply(&self, event: &mut Event<'_>) {
        // Windows names some event data fields with spaces ("Source Name"); Sigma rules
        // write them without ("SourceName").
        // Only Windows events (those with an EventID) are looked at: scanning every name of
        // every flow or statement cost a tenth of reading them.
        let spaced_name = |n: &str| n.bytes().any(|b| b == b' ');
        let windows = || event.get("EventID").is_some();
        let spaced: Vec<usize> = if windows() && event.fields.iter().any(|f| spaced_name(&f.0)) {
            (0..event.fields.len())
                .filter(|&i| spaced_name(&event.fields[i].0))
                .collect()
        } else {
            Vec::new()
        };
        for i in spaced {
            let name: String = event.fields[i].0.chars().filter(|c| *c != ' ').collect();
            if !name.is_empty() && event.get(&name).is_none() {
                let v = event.fields[i].1.clone();
                event.push(Cow::Owned(name), v);
            }
        }
        if let Some(r) = self.resolve(event) {
            for (sigma, field) in &r.aliases {
                if event.get(sigma).is_none()
                    && let Some(v) = event.get(field).cloned()
                {
                    event.push(Cow::Owned(sigma.clone()), v);
                }
            }
            event.logsource = Some(r.logsource.clone());
        }
        if event.timestamp.is_none() {
            event.timestamp = self
                .timestamp_fields
                .iter()
                .find_map(|f| match event.get(f)? {
                    Value::Str(s) => cellwarden_event::parse_timestamp(s),
                    Value::Int(i) => cellwarden_event::epoch_to_timestamp(*i),
                    Value::Float(f) => cellwarden_event::epoch_to_timestamp(*f as i64),
                    _ => None,
                });
        }
        if event.host.is_none() {
            // In auditd records `hostname` and `addr` are the remote peer; the host is `node`.
            let audit = event.get_str("Channel").as_deref() == Some("auditd");
            let find = |f: &str| match event.get(f)? {
                Value::Str(s) if !s.is_empty() => Some(Cow::Owned(s.to_string())),
                _ => None,
            };
            event.host = if audit {
                find("node")
            } else {
                self.host_of(event)
            };
        }
    }
}

impl Mapping {
    /// The value of the first of `host_fields` (in their order) whose first field in the
    /// event is non-empty text, found in one pass over the event: most events (flows,
    /// statements) have none of these names, and one look at each name's length and first
    /// byte says so.
    fn host_of<'a>(&self, event: &Event<'a>) -> Option<Cow<'a, str>> {
        // Names met already (a bit per host field; later fields of a name are not its value).
        let mut met = 0u64;
        let mut best: Option<(usize, &Cow<'a, str>)> = None;
        for (n, v) in &event.fields {
            if !self.host_names.may_be(n) {
                continue;
            }
            let Some(p) = self.host_fields.iter().take(64).position(|f| f == n) else {
                continue;
            };
            if met & (1 << p) != 0 {
                continue;
            }
            met |= 1 << p;
            if let Value::Str(s) = v
                && !s.is_empty()
                && best.is_none_or(|(b, _)| p < b)
            {
                best = Some((p, s));
            }
        }
        best.map(|(_, s)| Cow::Owned(s.to_string()))
    }
}

/// Whether a field's value is one of the accepted lower-cased texts (`prefix*` for a
/// prefix). Runs for every event: ASCII text and integers are compared without a copy.
fn value_accepted(v: &Value<'_>, accepted: &[String]) -> bool {
    let any = |v: &str, ascii_case: bool| {
        accepted.iter().any(|a| {
            let (a, prefix) = match a.strip_suffix('*') {
                Some(p) => (p, true),
                None => (a.as_str(), false),
            };
            let v = match v.get(..a.len()) {
                Some(head) if prefix => head,
                _ => v,
            };
            if ascii_case {
                v.eq_ignore_ascii_case(a)
            } else {
                v == a
            }
        })
    };
    match v {
        Value::Str(s) if s.is_ascii() => any(s, true),
        Value::Str(s) => any(&s.to_lowercase(), false),
        Value::Int(i) => {
            let mut buf = [0u8; 20];
            let mut w = &mut buf[..];
            let _ = std::io::Write::write_fmt(&mut w, format_args!("{i}"));
            let n = 20 - w.len();
            any(std::str::from_utf8(&buf[..n]).unwrap_or_default(), false)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cellwarden_event::Origin;

    /// The host-name filter never turns away a host field, and turns away a flow's names.
    #[test]
    fn the_host_name_filter_passes_every_host_field() {
        let m = Mapping::builtin();
        for n in m.host_fields() {
            assert!(m.host_names.may_be(n), "{n}");
        }
        let long = "h".repeat(80);
        let f = NameFilter::of(std::slice::from_ref(&long));
        assert!(f.may_be(&long) && f.may_be(&"h".repeat(70)));
        for n in [
            "ts",
            "uid",
            "id.orig_h",
            "src_ip",
            "dst_port",
            "proto",
            "Channel",
            "",
        ] {
            assert!(!m.host_names.may_be(n), "{n}");
        }
    }

    fn ev(fields: &[(&'static str, Value<'static>)]) -> Event<'static> {
        let mut e = Event::new(Origin {
            file: "t".into(),
            record: 1,
        });
        for (k, v) in fields {
            e.push(*k, v.clone());
        }
        e
    }

    #[test]
    fn security_4688_is_process_creation_with_image_alias() {
        let m = Mapping::builtin();
        let mut e = ev(&[
            ("Channel", Value::Str("Security".into())),
            ("EventID", Value::Int(4688)),
            ("NewProcessName", Value::Str("C:\\x.exe".into())),
        ]);
        m.apply(&mut e);
        let ls = e.logsource.clone().unwrap();
        assert_eq!(ls.product.as_deref(), Some("windows"));
        assert_eq!(ls.service.as_deref(), Some("security"));
        assert_eq!(ls.categories, vec![Box::from("process_creation")]);
        assert_eq!(e.get_str("Image").as_deref(), Some("C:\\x.exe"));
    }

    #[test]
    fn sysmon_registry_events_get_both_categories() {
        let m = Mapping::builtin();
        let mut e = ev(&[
            (
                "Channel",
                Value::Str("Microsoft-Windows-Sysmon/Operational".into()),
            ),
            ("EventID", Value::Int(12)),
            ("EventType", Value::Str("CreateKey".into())),
        ]);
        m.apply(&mut e);
        let ls = e.logsource.unwrap();
        assert_eq!(ls.service.as_deref(), Some("sysmon"));
        assert!(ls.categories.iter().any(|c| &**c == "registry_event"));
        assert!(ls.categories.iter().any(|c| &**c == "registry_add"));
    }

    #[test]
    fn same_kind_of_event_shares_one_logsource() {
        let m = Mapping::builtin();
        let mk = || {
            let mut e = ev(&[
                ("Channel", Value::Str("system".into())),
                ("EventID", Value::Int(7045)),
            ]);
            m.apply(&mut e);
            e.logsource.unwrap()
        };
        assert!(Arc::ptr_eq(&mk(), &mk()));
    }

    #[test]
    fn unknown_channel_has_no_logsource() {
        let m = Mapping::builtin();
        let mut e = ev(&[("Channel", Value::Str("Nope".into()))]);
        m.apply(&mut e);
        assert!(e.logsource.is_none());
    }

    #[test]
    fn bad_mapping_is_an_error() {
        assert!(Mapping::from_yaml("logsources: [{when: {a: b}}]").is_err());
        assert!(Mapping::from_yaml("nope: 1").is_err());
    }
}
