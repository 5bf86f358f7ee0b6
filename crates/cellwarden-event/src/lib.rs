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
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
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
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v)
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
            fields: self
                .fields
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k.into_owned()), v.into_owned()))
                .collect(),
            timestamp: self.timestamp,
            host: self.host.map(|h| Cow::Owned(h.into_owned())),
            logsource: self.logsource,
            origin: self.origin,
        }
    }

    /// The fields as a JSON object (later duplicates of a name become arrays' extra members
    /// are dropped: the first value wins, as in field lookup).
    pub fn fields_json(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut map = serde_json::Map::with_capacity(self.fields.len());
        for (k, v) in &self.fields {
            if !map.contains_key(k.as_ref()) {
                map.insert(k.to_string(), v.to_json());
            }
        }
        map
    }

    /// Timestamp as RFC 3339 UTC with microseconds, or an empty string.
    pub fn timestamp_rfc3339(&self) -> String {
        format_timestamp(self.timestamp)
    }
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

/// Epoch seconds, or milliseconds when the number is too large to be seconds.
pub fn epoch_to_timestamp(n: i64) -> Option<Timestamp> {
    if n.abs() < 100_000_000_000 {
        Timestamp::from_second(n).ok()
    } else {
        Timestamp::from_millisecond(n).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
