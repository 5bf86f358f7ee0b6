//! The types that cross cellwarden's pipeline stages.
//!
//! Every source produces [`Event`]s; every detector reads them and produces [`Alert`]s.
//! An event is a flat list of named, typed fields (nested JSON paths are joined with `.`),
//! plus a UTC timestamp, a host, the Sigma [`LogSource`] it belongs to and its [`Origin`]
//! (file and record or line). Strings borrow from the source buffer where the source allows
//! it, so an event only owns its data once it is kept (for example inside an alert).

mod alert;
mod value;

pub use alert::{Alert, AlertSource, CorrelationInfo, Level, RuleInfo, attack_from_tags};
pub use jiff::Timestamp;
pub use value::Value;

use std::borrow::Cow;
use std::sync::Arc;

/// Where an event came from: the file and the position inside it.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Origin {
    /// Path of the input as given (`-` for standard input).
    pub file: Arc<str>,
    /// EVTX record id, or 1-based line number for text formats.
    pub record: u64,
}

/// The Sigma log source of an event: product, service and the categories it belongs to.
///
/// Interned by the source mapping, so two events from the same kind of source share one
/// `Arc<LogSource>` and `id` identifies it cheaply.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
pub struct LogSource {
    /// Dense id assigned when the mapping interns this log source.
    pub id: u32,
    /// Sigma `product` (`windows`, `linux`, …).
    pub product: Option<Box<str>>,
    /// Sigma `service` (`security`, `sysmon`, `auditd`, …).
    pub service: Option<Box<str>>,
    /// Further services the event also belongs to (an sshd line in auth.log is both `sshd`
    /// and `auth`).
    pub other_services: Vec<Box<str>>,
    /// Sigma `category` values (`process_creation`, …).
    pub categories: Vec<Box<str>>,
}

impl LogSource {
    /// Whether the event belongs to this service.
    pub fn has_service(&self, s: &str) -> bool {
        self.service
            .iter()
            .chain(self.other_services.iter())
            .any(|x| x.eq_ignore_ascii_case(s))
    }
}

impl LogSource {
    /// A short human form, e.g. `windows/sysmon/process_creation`.
    pub fn describe(&self) -> String {
        let mut parts: Vec<&str> = Vec::new();
        parts.push(self.product.as_deref().unwrap_or("-"));
        parts.push(self.service.as_deref().unwrap_or("-"));
        for c in &self.categories {
            parts.push(c);
        }
        parts.join("/")
    }
}

/// One log record from any source.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    /// Fields in source order. Names are Sigma field names (nested paths joined by `.`).
    pub fields: Vec<(Cow<'a, str>, Value<'a>)>,
    /// Event time, when the event has one.
    pub timestamp: Option<Timestamp>,
    /// Host that logged the event, when known.
    pub host: Option<Cow<'a, str>>,
    /// `None` when the source could not tell; such events meet every rule.
    pub logsource: Option<Arc<LogSource>>,
    /// Where the event was read.
    pub origin: Origin,
}

/// In state snapshots (a binary form: values tagged); read back, an event owns its strings
/// and its own copy of the log source.
impl serde::Serialize for Event<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut t = s.serialize_tuple(5)?;
        t.serialize_element(&SeqOf(std::cell::Cell::new(Some(value::stored_fields(
            &self.fields,
        )))))?;
        t.serialize_element(&self.timestamp)?;
        t.serialize_element(&self.host)?;
        t.serialize_element(&self.logsource)?;
        t.serialize_element(&self.origin)?;
        t.end()
    }
}

/// Serialises an iterator once, as a sequence.
struct SeqOf<I>(std::cell::Cell<Option<I>>);

impl<I: Iterator<Item = T>, T: serde::Serialize> serde::Serialize for SeqOf<I> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.take() {
            Some(it) => s.collect_seq(it),
            None => Err(serde::ser::Error::custom("sequence serialised twice")),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Event<'static> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        type Parts = (
            value::StoredFields,
            Option<Timestamp>,
            Option<String>,
            Option<Arc<LogSource>>,
            Origin,
        );
        let (fields, timestamp, host, logsource, origin) = Parts::deserialize(d)?;
        Ok(Event {
            fields: fields.into_fields(),
            timestamp,
            host: host.map(Cow::Owned),
            logsource,
            origin,
        })
    }
}

impl<'a> Event<'a> {
    /// An event with no fields yet.
    pub fn new(origin: Origin) -> Self {
        Event {
            fields: Vec::new(),
            timestamp: None,
            host: None,
            logsource: None,
            origin,
        }
    }

    /// The first field with this exact name.
    pub fn get(&self, name: &str) -> Option<&Value<'a>> {
        // An event is searched for a dozen names: see `same_text`.
        self.fields
            .iter()
            .find(|(k, _)| same_text(k, name))
            .map(|(_, v)| v)
    }

    /// The field as text (integers formatted), if present and scalar.
    pub fn get_str(&self, name: &str) -> Option<Cow<'_, str>> {
        self.get(name).and_then(|v| v.as_text())
    }

    /// Adds a field.
    pub fn push(&mut self, name: impl Into<Cow<'a, str>>, value: Value<'a>) {
        self.fields.push((name.into(), value));
    }

    /// Copies every borrowed string so the event outlives its source buffer.
    pub fn into_owned(self) -> Event<'static> {
        Event {
            fields: owned_fields(self.fields),
            timestamp: self.timestamp,
            host: self.host.map(|h| Cow::Owned(h.into_owned())),
            logsource: self.logsource,
            origin: self.origin,
        }
    }

    /// The fields as a JSON object (see [`FieldsJson`]).
    pub fn fields_json(&self) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::to_value(FieldsJson(&self.fields)) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        }
    }

    /// Timestamp as RFC 3339 UTC with microseconds, or an empty string.
    pub fn timestamp_rfc3339(&self) -> String {
        format_timestamp(self.timestamp)
    }
}

/// An event's fields serialized as a JSON object, in their order; later duplicates of a name
/// are dropped: the first value wins, as in field lookup.
pub struct FieldsJson<'e, 'a>(pub &'e [(Cow<'a, str>, Value<'a>)]);

impl serde::Serialize for FieldsJson<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let fields = self.0;
        // Names already written: looked along while few, hashed past that.
        let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
        let many = fields.len() > 32;
        let mut m = s.serialize_map(None)?;
        for (i, (k, v)) in fields.iter().enumerate() {
            let again = if many {
                !seen.insert(k.as_ref())
            } else {
                fields[..i].iter().any(|(p, _)| p == k)
            };
            if !again {
                m.serialize_entry(k.as_ref(), v)?;
            }
        }
        m.end()
    }
}

/// Equal texts, comparing the first byte before the rest: names and values of one length
/// mostly differ there, and the full comparison is a call.
pub fn same_text(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.as_bytes().first() == b.as_bytes().first() && a == b
}

/// Fields with every borrowed string copied, so they outlive their source buffer.
pub fn owned_fields(
    fields: Vec<(Cow<'_, str>, Value<'_>)>,
) -> Vec<(Cow<'static, str>, Value<'static>)> {
    fields
        .into_iter()
        .map(|(k, v)| (Cow::Owned(k.into_owned()), v.into_owned()))
        .collect()
}

/// Formats a timestamp as RFC 3339 UTC (`2024-01-02T03:04:05.123456Z`), or `""` for none.
pub fn format_timestamp(ts: Option<Timestamp>) -> String {
    match ts {
        Some(t) => {
            let mut s = t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
            if s.is_empty() {
                s = t.to_string();
            }
            s
        }
        None => String::new(),
    }
}

/// Parses the timestamp forms found in logs: RFC 3339 / ISO 8601 with or without zone
/// (no zone means UTC), with `T` or a space, and Unix epoch seconds or milliseconds.
pub fn parse_timestamp(s: &str) -> Option<Timestamp> {
    parse_timestamp_in(s, None)
}

/// [`parse_timestamp`], reading times written without an offset in `zone` (UTC when `None`).
pub fn parse_timestamp_in(s: &str, zone: Option<&jiff::tz::TimeZone>) -> Option<Timestamp> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    // Most log times are plain ISO 8601: read those without allocating.
    if let Some(c) = Civil::parse(s)
        && let Some(t) = c.with_offset(c.offset.or(zone.is_none().then_some(0)))
    {
        return Some(t);
    }
    if let Ok(t) = s.parse::<Timestamp>() {
        return Some(t);
    }
    // No offset: civil time in the zone.
    if let Ok(dt) = s.replace(' ', "T").parse::<jiff::civil::DateTime>() {
        return dt
            .to_zoned(zone.cloned().unwrap_or(jiff::tz::TimeZone::UTC))
            .ok()
            .map(|z| z.timestamp());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = s.parse().ok()?;
        return epoch_to_timestamp(n);
    }
    None
}

/// A date and time as `YYYY-MM-DD[T ]HH:MM:SS[.fraction][Z|±HH[:MM]]` writes it, read digit
/// by digit (the common case of every text log; other forms go to the general parser).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    /// Seconds since 1970-01-01 00:00:00 of the civil time, as if it were UTC.
    pub seconds: i64,
    /// Nanoseconds.
    pub nanos: u32,
    /// The written offset from UTC in seconds, if any.
    pub offset: Option<i32>,
}

impl Civil {
    /// Parses `s` (the whole string); `None` for any other form, including leap seconds.
    pub fn parse(s: &str) -> Option<Civil> {
        let b = s.as_bytes();
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let d = b.get(r)?;
            d.iter().try_fold(0i64, |n, c| {
                c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
            })
        };
        if b.len() < 19
            || b[4] != b'-'
            || b[7] != b'-'
            || !(b[10] == b'T' || b[10] == b' ')
            || b[13] != b':'
            || b[16] != b':'
        {
            return None;
        }
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 {
            return None;
        }
        if sec > 59 {
            return None;
        }
        let mut i = 19;
        let mut nanos = 0u32;
        if matches!(b.get(i), Some(b'.' | b',')) {
            let start = i + 1;
            let n = b[start..].iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 || n > 9 {
                return None;
            }
            nanos = num(start..start + n)? as u32 * 10u32.pow(9 - n as u32);
            i = start + n;
        }
        let offset = match b.get(i) {
            None => None,
            Some(b'Z' | b'z') if i + 1 == b.len() => Some(0),
            Some(sign @ (b'+' | b'-')) => {
                let rest = &b[i + 1..];
                let (oh, om) = match rest.len() {
                    2 => (num(i + 1..i + 3)?, 0),
                    4 => (num(i + 1..i + 3)?, num(i + 3..i + 5)?),
                    5 if rest[2] == b':' => (num(i + 1..i + 3)?, num(i + 4..i + 6)?),
                    _ => return None,
                };
                if oh > 23 || om > 59 {
                    return None;
                }
                let o = (oh * 3600 + om * 60) as i32;
                Some(if *sign == b'-' { -o } else { o })
            }
            _ => return None,
        };
        let days = days_from_civil(y, mo, d);
        Some(Civil {
            seconds: days * 86_400 + h * 3600 + mi * 60 + sec,
            nanos,
            offset,
        })
    }

    /// The instant, reading the civil time at `offset` seconds east of UTC (the written
    /// offset is not consulted); `None` without an offset.
    pub fn with_offset(&self, offset: Option<i32>) -> Option<Timestamp> {
        let secs = self.seconds - i64::from(offset?);
        Timestamp::new(secs, self.nanos as i32).ok()
    }
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Epoch seconds, or milliseconds when the number is too large to be seconds.
pub fn epoch_to_timestamp(n: i64) -> Option<Timestamp> {
    if n.abs() < 100_000_000_000 {
        Timestamp::from_second(n).ok()
    } else {
        Timestamp::from_millisecond(n).ok()
    }
}

/// Text that the code names with `&'static str` (protocol and channel names), read back from
/// a state snapshot: each distinct text is kept once for the life of the process (they come
/// from a handful of constants, so this stays small).
pub fn static_text(s: &str) -> &'static str {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static KNOWN: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut known = KNOWN.lock().unwrap_or_else(|p| p.into_inner());
    let set = known.get_or_insert_with(HashSet::new);
    if let Some(k) = set.get(s) {
        return k;
    }
    let k: &'static str = Box::leak(s.to_owned().into_boxed_str());
    set.insert(k);
    k
}

/// Deserialises a `&'static str` field through [`static_text`].
pub fn deserialize_static_text<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<&'static str, D::Error> {
    let s = <String as serde::Deserialize>::deserialize(d)?;
    Ok(static_text(&s))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event's fields as JSON: the first value of a name wins and the order is the
    /// event's, however many fields; floats JSON cannot hold are null; lists nest.
    #[test]
    fn event_fields_serialize_first_value_wins_in_order() {
        use std::borrow::Cow;
        for extra in [0, 40] {
            let mut f: Vec<(Cow<str>, Value)> = vec![
                ("b".into(), Value::Int(1)),
                ("a".into(), Value::Str("x\"y".into())),
                ("b".into(), Value::Int(2)),
                ("n".into(), Value::Float(f64::NAN)),
                ("r".into(), Value::Float(0.5)),
                (
                    "l".into(),
                    Value::List(vec![Value::Bool(true), Value::Null, Value::List(vec![])]),
                ),
            ];
            let mut want = r#"{"b":1,"a":"x\"y","n":null,"r":0.5,"l":[true,null,[]]"#.to_string();
            for i in 0..extra {
                f.push((format!("f{i}").into(), Value::Int(i)));
                f.push(("a".into(), Value::Int(i)));
                want.push_str(&format!(r#","f{i}":{i}"#));
            }
            want.push('}');
            assert_eq!(serde_json::to_string(&super::FieldsJson(&f)).unwrap(), want);
            // The same as a value (its key order is serde_json's map's).
            let mut e = Event::new(Origin {
                file: "t".into(),
                record: 1,
            });
            e.fields = f;
            let want: serde_json::Value = serde_json::from_str(&want).unwrap();
            assert_eq!(serde_json::Value::Object(e.fields_json()), want);
        }
    }
    #[test]
    fn timestamps_parse_in_common_forms() {
        let want = "2024-03-01T10:20:30.500000Z";
        for s in [
            "2024-03-01T10:20:30.5Z",
            "2024-03-01 10:20:30.500",
            "2024-03-01T10:20:30.500+00:00",
            "2024-03-01T11:20:30.500+01:00",
        ] {
            assert_eq!(format_timestamp(parse_timestamp(s)), want, "{s}");
        }
        assert_eq!(
            format_timestamp(parse_timestamp("1709288430")),
            "2024-03-01T10:20:30.000000Z"
        );
        assert_eq!(format_timestamp(parse_timestamp("1709288430500")), want);
        assert!(parse_timestamp("yesterday").is_none());
    }

    /// The digit-by-digit reader agrees with the general parser on every form it takes,
    /// and leaves the rest to it.
    #[test]
    fn civil_times_read_fast_agree_with_jiff() {
        for s in [
            "2024-03-01T10:20:30Z",
            "2024-02-29 23:59:59.999999999",
            "1969-12-31T23:59:59.5-03:30",
            "2000-01-01T00:00:00+0530",
            "2026-12-31 12:00:00,250+01",
            "1900-03-01T00:00:00Z",
        ] {
            let fast = Civil::parse(s).expect(s);
            let fast = fast.with_offset(fast.offset.or(Some(0))).expect(s);
            let general = {
                let t = s.replacen(' ', "T", 1).replacen(',', ".", 1);
                let t = if t.ends_with("+01") {
                    format!("{t}:00")
                } else {
                    t
                };
                t.parse::<Timestamp>()
                    .or_else(|_| format!("{t}Z").parse::<Timestamp>())
                    .expect(s)
            };
            assert_eq!(fast, general, "{s}");
        }
        for s in [
            "2023-02-29T00:00:00Z",
            "2024-03-01T24:00:00Z",
            "2024-03-01T10:20:60Z",
            "2024-03-01T10:20:30 UTC",
            "2024-03-01T10:20:30.Z",
        ] {
            assert!(Civil::parse(s).is_none(), "{s}");
        }
        // A civil time read in a zone goes to the general path.
        let paris = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
        assert_eq!(
            format_timestamp(parse_timestamp_in("2024-07-01 12:00:00", Some(&paris))),
            "2024-07-01T10:00:00.000000Z"
        );
    }

    #[test]
    fn owned_event_keeps_fields() {
        let text = String::from("cmd.exe");
        let mut e = Event::new(Origin {
            file: "a".into(),
            record: 1,
        });
        e.push("Image", Value::Str(Cow::Borrowed(&text)));
        let owned = e.into_owned();
        drop(text);
        assert_eq!(owned.get_str("Image").as_deref(), Some("cmd.exe"));
    }
}
