//! JSON objects to events without building a JSON tree: a streaming walk flattens nested
//! objects into dotted field names and borrows strings from the input where it can.
//!
//! Three export shapes get Sigma field names:
//! - EVTX as JSON (`Event.System.*`, `Event.EventData.*`, `Event.UserData.*.*`): the
//!   `System`/`EventData` level is dropped, XML attributes become `Name_Attribute`
//!   (`Provider_Name`), `#text` becomes the element's own value.
//! - Winlogbeat/ECS (`winlog.event_data.*`, `winlog.channel`, …): event data fields lose their
//!   prefix, and `Channel`, `EventID`, `Computer`, `Provider_Name`, `EventRecordID` are added.
//! - Anything else: nested objects are joined with `.` (`process.command_line`).

use std::borrow::Cow;
use std::fmt;

use cellwarden_event::Value;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Fields of one event: name and value.
pub type Fields<'a> = Vec<(Cow<'a, str>, Value<'a>)>;

/// A field value owning its text.
pub(crate) fn owned(x: &str) -> Value<'static> {
    Value::Str(Cow::Owned(x.to_owned()))
}

/// Adds field `k` unless `v` is empty or the record has the field already; the value
/// borrows from the record's text.
pub(crate) fn put_new<'t>(out: &mut Fields<'t>, k: &'static str, v: &'t str) {
    put_value(out, k, v, |v| Value::Str(Cow::Borrowed(v)));
}

/// [`put_new`] with a copy of the value.
pub(crate) fn put_new_owned(out: &mut Fields<'_>, k: &'static str, v: &str) {
    put_value(out, k, v, |v| Value::Str(Cow::Owned(v.to_owned())));
}

fn put_value<'t, 'v>(
    out: &mut Fields<'t>,
    k: &'static str,
    v: &'v str,
    value: impl FnOnce(&'v str) -> Value<'t>,
) {
    if !v.is_empty() && !out.iter().any(|(n, _)| n == k) {
        out.push((Cow::Borrowed(k), value(v)));
    }
}

/// Where `lit` first occurs in `text` (`last`: where it last occurs). Short needles met
/// once each: cheaper than building a searcher for them.
pub(crate) fn find_str(text: &str, lit: &str, last: bool) -> Option<usize> {
    let (t, l) = (text.as_bytes(), lit.as_bytes());
    let (&first, tail) = l.split_first()?;
    if last {
        let mut end = t.len();
        while let Some(i) = memchr::memrchr(first, &t[..end]) {
            if t[i + 1..].starts_with(tail) {
                return Some(i);
            }
            end = i;
        }
        None
    } else {
        let mut from = 0;
        while let Some(i) = memchr::memchr(first, &t[from..]) {
            let at = from + i;
            if t[at + 1..].starts_with(tail) {
                return Some(at);
            }
            from = at + 1;
        }
        None
    }
}

/// Splits a reader's note (`mark`, then `\x1f`-separated values, appended on a line of its
/// own) from the record text it was appended to.
pub(crate) fn split_note<'a>(text: &'a str, mark: &str) -> (&'a str, Option<Vec<&'a str>>) {
    match find_str(text, mark, true) {
        Some(i) => (
            text[..i].strip_suffix('\n').unwrap_or(&text[..i]),
            Some(text[i + mark.len()..].split('\x1f').skip(1).collect()),
        ),
        None => (text, None),
    }
}

/// Flattens one JSON object into fields. Errors name the byte column of the problem.
pub fn flatten(text: &str) -> Result<Fields<'_>, serde_json::Error> {
    if !text.trim_start().starts_with('{') {
        return Err(de::Error::custom("expected a JSON object"));
    }
    let mut out = Vec::with_capacity(32);
    let mut path = String::with_capacity(64);
    let mut shape = Shape::Unknown;
    let mut leaf_len = 0;
    let mut de = serde_json::Deserializer::from_str(text);
    Walk {
        path: &mut path,
        name: None,
        last: None,
        shape: &mut shape,
        leaf_len: &mut leaf_len,
        out: &mut out,
        depth: 0,
    }
    .deserialize(&mut de)?;
    de.end()?;
    if shape != Shape::Evtx {
        rename_winlogbeat(&mut out);
    }
    Ok(out)
}

struct Walk<'s, 'a> {
    path: &'s mut String,
    /// The path as written in the input, when it is one key without escapes (the fields of a
    /// flat object are named without a copy each).
    name: Option<&'a str>,
    /// The last key of the path, when borrowed from the input.
    last: Option<&'a str>,
    shape: &'s mut Shape,
    /// Length of the path of the last field written (an array folds in an element written
    /// under its own path: a scalar).
    leaf_len: &'s mut usize,
    out: &'s mut Fields<'a>,
    depth: u32,
}

/// Whether the document is EVTX-JSON (its first field under `Event.`), known from its first
/// field on: its fields then get their Sigma names as they are read (see [`evtx_name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Unknown,
    Evtx,
    Other,
}

/// A map key that borrows from the input when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'s, 'a> Walk<'s, 'a> {
    fn leaf(&mut self, v: Value<'a>) {
        if let Some(name) = self.name() {
            self.out.push((name, v));
            *self.leaf_len = self.path.len();
        }
    }

    /// The field's name; `None` for a field left out (EVTX namespace attributes).
    fn name(&mut self) -> Option<Cow<'a, str>> {
        if *self.shape == Shape::Unknown {
            *self.shape = if self.path.starts_with("Event.") {
                Shape::Evtx
            } else {
                Shape::Other
            };
        }
        if *self.shape == Shape::Evtx {
            return evtx_name(self.path, self.last);
        }
        Some(match self.name {
            Some(n) => Cow::Borrowed(n),
            None => match interned(self.path) {
                Some(n) => Cow::Borrowed(n),
                None => Cow::Owned(self.path.clone()),
            },
        })
    }
}

/// Distinct nested field names a thread keeps (see [`interned`]).
const INTERNED_NAMES: usize = 4096;
/// The longest name kept.
const INTERNED_NAME_BYTES: usize = 128;

/// A nested field's name (`account.user`) without a copy per record: records of one log repeat
/// the same names, so the first [`INTERNED_NAMES`] names of up to [`INTERNED_NAME_BYTES`]
/// bytes a thread meets are kept for the life of the process (at most 512 KiB a thread, however
/// many names hostile input makes up); later ones are copied per record.
fn interned(path: &str) -> Option<&'static str> {
    thread_local! {
        static NAMES: std::cell::RefCell<std::collections::HashSet<&'static str>> =
            std::cell::RefCell::new(std::collections::HashSet::new());
    }
    if path.len() > INTERNED_NAME_BYTES {
        return None;
    }
    NAMES.with_borrow_mut(|names| {
        if let Some(n) = names.get(path) {
            return Some(*n);
        }
        if names.len() >= INTERNED_NAMES {
            return None;
        }
        let n: &'static str = Box::leak(path.into());
        names.insert(n);
        Some(n)
    })
}

impl<'de, 's> DeserializeSeed<'de> for Walk<'s, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, 's> Visitor<'de> for Walk<'s, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(mut self, v: bool) -> Result<(), E> {
        self.leaf(Value::Bool(v));
        Ok(())
    }
    fn visit_i64<E: de::Error>(mut self, v: i64) -> Result<(), E> {
        self.leaf(Value::Int(v));
        Ok(())
    }
    fn visit_u64<E: de::Error>(mut self, v: u64) -> Result<(), E> {
        self.leaf(match i64::try_from(v) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::Str(Cow::Owned(v.to_string())),
        });
        Ok(())
    }
    fn visit_f64<E: de::Error>(mut self, v: f64) -> Result<(), E> {
        self.leaf(Value::Float(v));
        Ok(())
    }
    fn visit_borrowed_str<E: de::Error>(mut self, v: &'de str) -> Result<(), E> {
        self.leaf(Value::Str(Cow::Borrowed(v)));
        Ok(())
    }
    fn visit_str<E: de::Error>(mut self, v: &str) -> Result<(), E> {
        self.leaf(Value::Str(Cow::Owned(v.to_owned())));
        Ok(())
    }
    fn visit_string<E: de::Error>(mut self, v: String) -> Result<(), E> {
        self.leaf(Value::Str(Cow::Owned(v)));
        Ok(())
    }
    fn visit_unit<E: de::Error>(mut self) -> Result<(), E> {
        self.leaf(Value::Null);
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let len = self.path.len();
            if !self.path.is_empty() {
                self.path.push('.');
            }
            self.path.push_str(&key);
            let last = match key {
                Cow::Borrowed(k) => Some(k),
                Cow::Owned(_) => None,
            };
            map.next_value_seed(Walk {
                path: self.path,
                name: last.filter(|_| len == 0),
                last,
                shape: self.shape,
                leaf_len: self.leaf_len,
                out: self.out,
                depth: self.depth + 1,
            })?;
            self.path.truncate(len);
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        // Scalars become one list value; objects inside are walked under the same name.
        let mut items: Vec<Value<'de>> = Vec::new();
        let mut walk = self;
        let name = walk.name();
        loop {
            let start = walk.out.len();
            let more = seq.next_element_seed(Walk {
                path: walk.path,
                name: walk.name,
                last: walk.last,
                shape: walk.shape,
                leaf_len: walk.leaf_len,
                out: walk.out,
                depth: walk.depth + 1,
            })?;
            if more.is_none() {
                break;
            }
            // A scalar element shows up as one field under exactly our path: fold it in.
            if walk.out.len() == start + 1 && *walk.leaf_len == walk.path.len() {
                let (_, v) = walk.out.pop().expect("one leaf");
                match v {
                    Value::List(inner) => items.push(Value::List(inner)),
                    v => items.push(v),
                }
            }
        }
        if !(items.is_empty() && walk.depth == 0)
            && let Some(name) = name
        {
            walk.out.push((name, Value::List(items)));
            *walk.leaf_len = walk.path.len();
        }
        Ok(())
    }
}

/// Gives the Winlogbeat shape its Sigma field names (EVTX-JSON fields are named as they are
/// read, by `Walk::name`).
fn rename_winlogbeat(fields: &mut Fields<'_>) {
    if fields.iter().any(|(n, _)| n.starts_with("winlog.")) {
        let mut extra = Vec::new();
        for (name, value) in fields.iter_mut() {
            if let Some(rest) = name
                .strip_prefix("winlog.event_data.")
                .or_else(|| name.strip_prefix("winlog.user_data."))
            {
                *name = Cow::Owned(rest.to_owned());
            } else {
                let alias = match name.as_ref() {
                    "winlog.channel" => "Channel",
                    "winlog.event_id" | "event.code" => "EventID",
                    "winlog.computer_name" => "Computer",
                    "winlog.provider_name" => "Provider_Name",
                    "winlog.record_id" => "EventRecordID",
                    _ => continue,
                };
                // `event.code` and `winlog.event_id` are strings in some versions.
                let v = match (alias, &*value) {
                    ("EventID" | "EventRecordID", Value::Str(s)) => s
                        .parse::<i64>()
                        .map(Value::Int)
                        .unwrap_or_else(|_| value.clone()),
                    _ => value.clone(),
                };
                extra.push((Cow::Borrowed(alias), v));
            }
        }
        for (k, v) in extra {
            if !fields.iter().any(|(n, _)| *n == k) {
                fields.push((k, v));
            }
        }
    }
}

/// Where the Sigma name starts in an EVTX-JSON path (`Event.System.Computer` → `Computer`),
/// or `None` for a path that is dropped (namespace attributes).
fn evtx_name_start(path: &str) -> Option<usize> {
    const EVENT: usize = "Event.".len();
    let rest = path.strip_prefix("Event.")?;
    let (start, rest) = if let Some(r) = rest.strip_prefix("System.") {
        (EVENT + "System.".len(), r)
    } else if let Some(r) = rest.strip_prefix("EventData.") {
        (EVENT + "EventData.".len(), r)
    } else if let Some(r) = rest.strip_prefix("UserData.") {
        // Skip the wrapping element (`EventXML`, …).
        let at = EVENT + "UserData.".len();
        match r.find('.') {
            Some(i) => (at + i + 1, &r[i + 1..]),
            None => (at, r),
        }
    } else if rest.starts_with("#attributes") {
        return None;
    } else {
        (EVENT, rest)
    };
    if rest.starts_with("#attributes.xmlns") || rest.ends_with(".xmlns") {
        return None;
    }
    Some(start)
}

/// The Sigma name of an EVTX-JSON path (`Event.System.Computer` → `Computer`,
/// `Provider.#attributes.Name` → `Provider_Name`, `Data.#text` → `Data`), borrowed from the
/// text when it is the path's last key as written (`last`); `None` for a path that is left
/// out (namespace attributes, anything outside `Event`).
fn evtx_name<'a>(path: &str, last: Option<&'a str>) -> Option<Cow<'a, str>> {
    let start = evtx_name_start(path)?;
    let s = &path[start..];
    if !s.as_bytes().contains(&b'#') {
        return Some(match last {
            Some(k) if k == s => Cow::Borrowed(k),
            _ => Cow::Owned(s.to_owned()),
        });
    }
    let mut s = s.replace(".#attributes.", "_");
    if let Some(kept) = s.strip_suffix(".#text").map(str::len) {
        s.truncate(kept);
    }
    if s == "#text" {
        s = "Data".to_owned();
    }
    Some(Cow::Owned(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_found_first_and_last() {
        assert_eq!(find_str("a,b,,c,,", ",,", false), Some(3));
        assert_eq!(find_str("a,b,,c,,", ",,", true), Some(6));
        assert_eq!(find_str("a,b,,c,", ",,", true), Some(3));
        assert_eq!(find_str("abc", "cd", false), None);
        assert_eq!(find_str("abc", "cd", true), None);
        assert_eq!(find_str("abc", "", false), None);
        assert_eq!(find_str("\x1enote x\x1enote", "\x1enote", true), Some(7));
    }

    fn get<'a>(f: &'a Fields<'_>, k: &str) -> Option<&'a Value<'a>> {
        f.iter().find(|(n, _)| n == k).map(|(_, v)| v)
    }

    #[test]
    fn flat_and_nested_objects() {
        let f = flatten(r#"{"a":1,"b":{"c":"x","d":[1,2]},"e":null,"f":true}"#).unwrap();
        assert_eq!(get(&f, "a"), Some(&Value::Int(1)));
        assert_eq!(get(&f, "b.c"), Some(&Value::Str("x".into())));
        assert_eq!(
            get(&f, "b.d"),
            Some(&Value::List(vec![Value::Int(1), Value::Int(2)]))
        );
        assert_eq!(get(&f, "e"), Some(&Value::Null));
        assert_eq!(get(&f, "f"), Some(&Value::Bool(true)));
    }

    #[test]
    fn strings_are_borrowed_unless_escaped() {
        let text = r#"{"a":"plain","b":"C:\\x"}"#;
        let f = flatten(text).unwrap();
        assert!(matches!(get(&f, "a"), Some(Value::Str(Cow::Borrowed(_)))));
        assert_eq!(get(&f, "b"), Some(&Value::Str("C:\\x".into())));
    }

    #[test]
    fn evtx_json_shape() {
        let text = r##"{"Event":{"#attributes":{"xmlns":"x"},"System":{"Provider":{"#attributes":{"Name":"Microsoft-Windows-Sysmon"}},"EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational","Computer":"pc1","TimeCreated":{"#attributes":{"SystemTime":"2024-01-01T00:00:00Z"}}},"EventData":{"Image":"C:\\a.exe","CommandLine":"a"}}}"##;
        let f = flatten(text).unwrap();
        assert_eq!(get(&f, "EventID"), Some(&Value::Int(1)));
        assert_eq!(
            get(&f, "Provider_Name"),
            Some(&Value::Str("Microsoft-Windows-Sysmon".into()))
        );
        assert_eq!(get(&f, "Image"), Some(&Value::Str("C:\\a.exe".into())));
        assert!(get(&f, "TimeCreated_SystemTime").is_some());
        assert!(f.iter().all(|(n, _)| !n.contains("xmlns")));
    }

    #[test]
    fn evtx_json_text_and_userdata() {
        let text = r##"{"Event":{"System":{"EventID":{"#attributes":{"Qualifiers":16384},"#text":7045}},"UserData":{"EventXML":{"#attributes":{"xmlns":"y"},"Param1":"v"}}}}"##;
        let f = flatten(text).unwrap();
        assert_eq!(get(&f, "EventID"), Some(&Value::Int(7045)));
        assert_eq!(get(&f, "EventID_Qualifiers"), Some(&Value::Int(16384)));
        assert_eq!(get(&f, "Param1"), Some(&Value::Str("v".into())));
    }

    #[test]
    fn evtx_json_names_without_copies_arrays_and_other_keys() {
        // Unnamed `Data` as an array of scalars, and as objects with attributes; a key beside
        // `Event` is left out, as are namespaces; plain names borrow the input.
        let text = r##"{"Event":{"System":{"EventID":1000},"EventData":{"Data":["a","b"],"Binary":"00"},"RenderingInfo":{"Message":"m"}},"Extra":1}"##;
        let f = flatten(text).unwrap();
        let names: Vec<&str> = f.iter().map(|(n, _)| n.as_ref()).collect();
        assert_eq!(
            names,
            ["EventID", "Data", "Binary", "RenderingInfo.Message"]
        );
        assert_eq!(
            get(&f, "Data"),
            Some(&Value::List(vec![
                Value::Str("a".into()),
                Value::Str("b".into())
            ]))
        );
        assert!(matches!(f[0].0, Cow::Borrowed("EventID")));
        assert!(matches!(f[2].0, Cow::Borrowed("Binary")));
        let text = r##"{"Event":{"EventData":{"Data":[{"#attributes":{"Name":"x"},"#text":"1"},{"#text":"2"}]}}}"##;
        let f = flatten(text).unwrap();
        // An object element is not a scalar of the array, even where its `#text` takes the
        // array's own name.
        assert_eq!(
            f,
            vec![
                (Cow::Borrowed("Data_Name"), Value::Str("x".into())),
                (Cow::Borrowed("Data"), Value::Str("1".into())),
                (Cow::Borrowed("Data"), Value::Str("2".into())),
                (Cow::Borrowed("Data"), Value::List(vec![])),
            ]
        );
    }

    #[test]
    fn winlogbeat_shape() {
        let text = r#"{"@timestamp":"2024-01-01T00:00:00Z","winlog":{"channel":"Security","event_id":"4688","computer_name":"dc1","event_data":{"NewProcessName":"C:\\w.exe"}}}"#;
        let f = flatten(text).unwrap();
        assert_eq!(get(&f, "EventID"), Some(&Value::Int(4688)));
        assert_eq!(get(&f, "Channel"), Some(&Value::Str("Security".into())));
        assert_eq!(get(&f, "Computer"), Some(&Value::Str("dc1".into())));
        assert_eq!(
            get(&f, "NewProcessName"),
            Some(&Value::Str("C:\\w.exe".into()))
        );
    }

    #[test]
    fn not_an_object_is_an_error() {
        assert!(flatten("[1,2]").is_err());
        assert!(flatten("42").is_err());
        assert!(flatten(r#"{"a": "#).is_err());
        assert!(flatten("{}").unwrap().is_empty());
    }

    #[test]
    fn deep_nesting_is_refused_not_a_crash() {
        let deep = format!("{}{}", "{\"a\":".repeat(10_000), "1");
        assert!(flatten(&deep).is_err());
    }
}
