//! Output formats: alerts (table, JSONL, JSON, CSV), the scope report (JSON, CSV, HTML),
//! and keyed pseudonyms for subscriber identifiers.
//!
//! Log text is attacker-controlled, so each format escapes it for where it lands: JSON by
//! construction, CSV against formula injection (cells starting `=`, `+`, `-`, `@`, tab or CR
//! get a leading `'`), and the terminal table by replacing control characters, escape
//! sequences and bidirectional overrides with visible `\u{…}` forms.

mod pseudonym;
mod scope;

pub use pseudonym::{KeyError, MIN_KEY_BYTES, Pseudonymiser};
pub use scope::{html_escape, write_scope_csv, write_scope_html, write_scope_json};

use std::collections::BTreeSet;
use std::io::{self, Write};

use cellwarden_event::{Alert, AlertSource, Level};

/// The JSON object written for one alert (see [`AlertJson`] for its fields).
pub fn alert_json(a: &Alert) -> serde_json::Value {
    serde_json::to_value(AlertJson(a)).unwrap_or_default()
}

/// One alert as JSON, serialized straight from the alert: time, rule (id, title, level,
/// ATT&CK tags, author, source), where the event was read, its host and log source, the
/// event's fields (the first of a name, in their order) and a correlation's window and
/// members. Writing alerts this way builds no JSON tree per alert.
pub struct AlertJson<'a>(pub &'a Alert);

#[derive(serde::Serialize)]
struct AlertOut<'a> {
    timestamp: String,
    rule_id: &'a str,
    rule_title: &'a str,
    level: &'a str,
    tags: &'a [String],
    techniques: &'a [String],
    tactics: &'a [String],
    author: Option<&'a str>,
    rule_source: &'a str,
    source_file: &'a str,
    source_record: u64,
    host: Option<&'a str>,
    logsource: Option<LogSourceOut<'a>>,
    event: cellwarden_event::FieldsJson<'a, 'a>,
    correlation: Option<serde_json::Value>,
}

#[derive(serde::Serialize)]
struct LogSourceOut<'a> {
    product: Option<&'a str>,
    service: Option<&'a str>,
    categories: Vec<&'a str>,
}

impl serde::Serialize for AlertJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let a = self.0;
        let r = &*a.rule;
        AlertOut {
            timestamp: a.event.timestamp_rfc3339(),
            rule_id: &r.id,
            rule_title: &r.title,
            level: a.level.as_str(),
            tags: &r.tags,
            techniques: &r.techniques,
            tactics: &r.tactics,
            author: r.author.as_deref(),
            rule_source: &r.source,
            source_file: &a.event.origin.file,
            source_record: a.event.origin.record,
            host: a.event.host.as_deref(),
            logsource: a.event.logsource.as_deref().map(|l| LogSourceOut {
                product: l.product.as_deref(),
                service: l.service.as_deref(),
                categories: l.categories.iter().map(|c| &**c).collect(),
            }),
            event: cellwarden_event::FieldsJson(&a.event.fields),
            correlation: a.correlation.as_ref().map(|c| serde_json::json!({
                "type": c.kind,
                "group": c.group.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect::<serde_json::Map<_, _>>(),
                "value": c.value,
                "window_start": cellwarden_event::format_timestamp(c.window_start),
                "window_end": cellwarden_event::format_timestamp(c.window_end),
                "events": c.events.iter().enumerate().map(|(i, o)| serde_json::json!({
                    "source_file": &*o.file,
                    "source_record": o.record,
                    "fields": c.members.get(i).map(|m| m.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect::<serde_json::Map<_, _>>()),
                })).collect::<Vec<_>>(),
            })),
        }
        .serialize(s)
    }
}

/// An alert back from [`alert_json`]'s form (what the case store keeps): the rule's id, title,
/// tags, level and ATT&CK names, and the event's time, host, origin and fields. A correlation's
/// members are not restored. `None` when the object is not an alert.
pub fn alert_from_json(v: &serde_json::Value) -> Option<Alert> {
    use cellwarden_event::{Event, Level, Origin, RuleInfo, Value};
    fn value(v: &serde_json::Value) -> Value<'static> {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(0.0)),
            },
            serde_json::Value::String(s) => Value::Str(s.clone().into()),
            serde_json::Value::Array(a) => Value::List(a.iter().map(value).collect()),
            o @ serde_json::Value::Object(_) => Value::Str(o.to_string().into()),
        }
    }
    let text = |k: &str| v[k].as_str().unwrap_or("").to_owned();
    let list = |k: &str| -> Vec<String> {
        v[k].as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect()
    };
    let id = v["rule_id"].as_str()?.to_owned();
    let mut e = Event::new(Origin {
        file: text("source_file").into(),
        record: v["source_record"].as_u64().unwrap_or(0),
    });
    e.timestamp = v["timestamp"]
        .as_str()
        .and_then(cellwarden_event::parse_timestamp);
    e.host = v["host"].as_str().map(|h| h.to_owned().into());
    for (k, x) in v["event"].as_object().into_iter().flatten() {
        e.push(k.clone(), value(x));
    }
    Some(Alert {
        rule: std::sync::Arc::new(RuleInfo {
            id,
            title: text("rule_title"),
            author: v["author"].as_str().map(str::to_owned),
            tags: list("tags"),
            techniques: list("techniques"),
            tactics: list("tactics"),
            source: text("rule_source"),
            ..Default::default()
        }),
        level: Level::parse(v["level"].as_str().unwrap_or("")).unwrap_or(Level::Informational),
        event: e,
        correlation: None,
    })
}

/// One JSON object per line.
pub fn write_jsonl<A: AlertSource + ?Sized>(w: &mut dyn Write, alerts: &A) -> io::Result<()> {
    alerts.try_each(&mut |a| {
        serde_json::to_writer(&mut *w, &AlertJson(a))?;
        w.write_all(b"\n")
    })
}

/// One JSON array of alerts (written as it goes: memory holds one alert).
pub fn write_json_array<A: AlertSource + ?Sized>(w: &mut dyn Write, alerts: &A) -> io::Result<()> {
    w.write_all(b"[")?;
    let mut first = true;
    alerts.try_each(&mut |a| {
        if !first {
            w.write_all(b",")?;
        }
        first = false;
        serde_json::to_writer(&mut *w, &AlertJson(a)).map_err(io::Error::from)
    })?;
    w.write_all(b"]\n")
}

/// Neutralises spreadsheet formulas in a CSV cell.
pub fn csv_cell(s: &str) -> String {
    match s.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{s}"),
        _ => s.to_owned(),
    }
}

/// A CSV writer whose every cell goes through [`csv_cell`].
pub struct CsvWriter<'w>(csv::Writer<&'w mut dyn Write>);

impl<'w> CsvWriter<'w> {
    /// A writer to `w`.
    pub fn new(w: &'w mut dyn Write) -> Self {
        CsvWriter(csv::Writer::from_writer(w))
    }
    /// Writes one row.
    pub fn row(&mut self, cells: &[&str]) -> io::Result<()> {
        let cells: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
        self.0.write_record(&cells).map_err(io::Error::other)
    }
    /// Flushes what is buffered.
    pub fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

const CSV_FIXED: [&str; 9] = [
    "timestamp",
    "rule_id",
    "rule_title",
    "level",
    "tags",
    "author",
    "source_file",
    "source_record",
    "host",
];

/// CSV: the JSONL columns, then one `event.<field>` column per event field seen in any alert
/// (sorted by name).
pub fn write_csv<A: AlertSource + ?Sized>(w: &mut dyn Write, alerts: &A) -> io::Result<()> {
    // Two walks: the columns, then the rows.
    let mut names = BTreeSet::new();
    alerts.try_each(&mut |a| {
        for (k, _) in &a.event.fields {
            if !names.contains(k.as_ref()) {
                names.insert(k.to_string());
            }
        }
        Ok(())
    })?;
    let mut out = csv::Writer::from_writer(w);
    let header: Vec<String> = CSV_FIXED
        .iter()
        .map(|s| s.to_string())
        .chain(names.iter().map(|n| csv_cell(&format!("event.{n}"))))
        .collect();
    out.write_record(&header)?;
    alerts.try_each(&mut |a| {
        let mut row: Vec<String> = vec![
            a.event.timestamp_rfc3339(),
            csv_cell(&a.rule.id),
            csv_cell(&a.rule.title),
            a.level.as_str().to_owned(),
            csv_cell(&a.rule.tags.join(";")),
            csv_cell(a.rule.author.as_deref().unwrap_or("")),
            csv_cell(&a.event.origin.file),
            a.event.origin.record.to_string(),
            csv_cell(a.event.host.as_deref().unwrap_or("")),
        ];
        for n in &names {
            let cell = match a.event.get(n) {
                Some(v) => match v.as_text() {
                    Some(t) => t.into_owned(),
                    None => v.to_json().to_string(),
                },
                None => String::new(),
            };
            row.push(csv_cell(&cell));
        }
        out.write_record(&row).map_err(io::Error::from)
    })?;
    out.flush()
}

/// Makes untrusted text safe for a terminal: control characters (C0, DEL, C1), and
/// bidirectional formatting characters become `\u{..}`; nothing can start an escape sequence.
pub fn sanitize_terminal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let u = c as u32;
        let bad = u < 0x20
            || (0x7f..=0x9f).contains(&u)
            || (0x202a..=0x202e).contains(&u)
            || (0x2066..=0x2069).contains(&u)
            || u == 0x200e
            || u == 0x200f
            || u == 0x061c;
        if bad {
            out.push_str(&format!("\\u{{{u:x}}}"));
        } else {
            out.push(c);
        }
    }
    out
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn colour(level: Level) -> &'static str {
    match level {
        Level::Critical => "\x1b[1;31m",
        Level::High => "\x1b[31m",
        Level::Medium => "\x1b[33m",
        Level::Low => "\x1b[36m",
        Level::Informational => "\x1b[2m",
    }
}

/// Fields shown in the table's detail column, first present wins.
const DETAIL_FIELDS: [&str; 10] = [
    "CommandLine",
    "ScriptBlockText",
    "ImagePath",
    "Image",
    "TargetFilename",
    "TargetObject",
    "QueryName",
    "ServiceName",
    "TargetUserName",
    "DestinationIp",
];

/// The cells of one alert's table row.
fn table_row(a: &Alert) -> [String; 6] {
    let detail = match &a.correlation {
        Some(c) => {
            let group: Vec<String> = c.group.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!(
                "{} {} over {} events {}",
                c.kind,
                c.value,
                c.events.len(),
                group.join(" ")
            )
        }
        None => DETAIL_FIELDS
            .iter()
            .find_map(|f| a.event.get_str(f).map(|v| format!("{f}={v}")))
            .unwrap_or_default(),
    };
    [
        a.event
            .timestamp_rfc3339()
            .get(..19)
            .unwrap_or("")
            .replace('T', " "),
        a.level.as_str().to_owned(),
        truncate(&sanitize_terminal(&a.rule.title), 60),
        truncate(
            &sanitize_terminal(a.event.host.as_deref().unwrap_or("-")),
            24,
        ),
        truncate(
            &sanitize_terminal(&format!(
                "{}:{}",
                a.event.origin.file, a.event.origin.record
            )),
            48,
        ),
        truncate(&sanitize_terminal(&detail), 80),
    ]
}

/// An aligned table for people. Colours by level when `colour` is set. Two walks over the
/// alerts: the column widths, then the rows.
pub fn write_table<A: AlertSource + ?Sized>(
    w: &mut dyn Write,
    alerts: &A,
    use_colour: bool,
) -> io::Result<()> {
    let header = ["TIME (UTC)", "LEVEL", "RULE", "HOST", "SOURCE", "DETAIL"];
    let mut widths = header.map(|h| h.chars().count());
    alerts.try_each(&mut |a| {
        for (i, c) in table_row(a).iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
        Ok(())
    })?;
    let line = |cells: &[String], w: &[usize]| -> String {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(w[i] - c.chars().count() + 2));
            }
        }
        s.trim_end().to_owned()
    };
    let hdr: Vec<String> = header.iter().map(|s| s.to_string()).collect();
    writeln!(w, "{}", line(&hdr, &widths))?;
    alerts.try_each(&mut |a| {
        let text = line(&table_row(a), &widths);
        if use_colour {
            writeln!(w, "{}{}\x1b[0m", colour(a.level), text)
        } else {
            writeln!(w, "{text}")
        }
    })
}

#[cfg(test)]
mod tests {

    /// The store's JSON gives back the alert that wrote it: same key, same JSON.
    #[test]
    fn alerts_come_back_from_their_json() {
        use cellwarden_event::{Event, Level, Origin, RuleInfo, Value};
        let mut e = Event::new(Origin {
            file: "db/pg.log".into(),
            record: 17,
        });
        e.timestamp = cellwarden_event::parse_timestamp("2026-03-04T01:14:00.5Z");
        e.host = Some("bill-db-01".into());
        e.push("account", Value::Str("svc_bkp3".into()));
        e.push("subscribers", Value::Int(20));
        e.push("ratio", Value::Float(0.25));
        e.push("ids", Value::List(vec![Value::Str("msisdn:1".into())]));
        let a = Alert {
            rule: std::sync::Arc::new(RuleInfo::builtin(
                "cellwarden.db.targeted_lookup",
                "Targeted subscriber lookups",
                "",
                &["attack.collection", "attack.t1213"],
                "builtin:cellwarden.db",
            )),
            level: Level::High,
            event: e,
            correlation: None,
        };
        let j = alert_json(&a);
        let b = alert_from_json(&j).unwrap();
        assert_eq!(b.key(), a.key());
        assert_eq!(alert_json(&b), j);
        assert!(alert_from_json(&serde_json::json!({"subscribers": []})).is_none());
    }

    use super::*;
    use cellwarden_event::{Event, Origin, RuleInfo, Value};
    use std::sync::Arc;

    fn alert(cmd: &str) -> Alert {
        let mut e = Event::new(Origin {
            file: "f.evtx".into(),
            record: 7,
        });
        e.push("CommandLine", Value::Str(cmd.to_owned().into()));
        Alert {
            rule: Arc::new(RuleInfo {
                id: "r1".into(),
                title: "Rule \x1b[31m".into(),
                tags: vec!["attack.t1059".into()],
                ..Default::default()
            }),
            level: Level::High,
            event: e.into_owned(),
            correlation: None,
        }
    }

    #[test]
    fn terminal_text_cannot_carry_escapes() {
        let s = sanitize_terminal("a\x1b[2Jb\u{202e}c\u{9b}d\r\n");
        assert!(!s.contains('\x1b') && !s.contains('\u{202e}') && !s.contains('\u{9b}'));
        assert!(!s.contains('\r') && !s.contains('\n'));
        assert_eq!(sanitize_terminal("plain é"), "plain é");
    }

    #[test]
    fn table_has_no_raw_escape_from_logs() {
        let mut out = Vec::new();
        write_table(&mut out, &[alert("evil\x1b]0;pwned\x07")], false).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(!s.contains('\x1b') && !s.contains('\x07'), "{s:?}");
        assert!(s.contains("CommandLine=evil"));
    }

    #[test]
    fn csv_neutralises_formulas() {
        let mut out = Vec::new();
        write_csv(&mut out, &[alert("=HYPERLINK(\"http://x\")")]).unwrap();
        let s = String::from_utf8(out).unwrap();
        let row = s.lines().nth(1).unwrap();
        assert!(row.contains("'=HYPERLINK"), "{row}");
        assert!(s.lines().next().unwrap().ends_with("event.CommandLine"));
    }

    #[test]
    fn jsonl_has_required_keys() {
        let mut out = Vec::new();
        write_jsonl(&mut out, &[alert("x")]).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        for k in [
            "timestamp",
            "rule_id",
            "rule_title",
            "level",
            "tags",
            "source_file",
            "source_record",
            "host",
            "event",
        ] {
            assert!(v.get(k).is_some(), "{k}");
        }
        assert_eq!(v["event"]["CommandLine"], "x");
    }
}
