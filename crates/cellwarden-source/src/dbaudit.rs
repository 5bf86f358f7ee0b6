//! Database audit logs. PostgreSQL pgaudit lines inside the server's stderr log:
//! `<prefix> LOG:  AUDIT: SESSION|OBJECT,stmt,substmt,CLASS,COMMAND,OBJECT_TYPE,OBJECT_NAME,
//! STATEMENT,PARAMETER[,ROWS]`, where the prefix is whatever `log_line_prefix` made of it
//! (timestamp, `[pid]`, `user@db`, `user=…,db=…,app=…,client=…`) and a statement may span
//! several lines inside its quotes.

use std::borrow::Cow;

use cellwarden_event::{Timestamp, Value};

use crate::json::Fields;

const MARK: &str = "AUDIT: ";

/// Whether a line starts a pgaudit record.
pub fn is_pgaudit(line: &str) -> bool {
    line.find(MARK).is_some_and(|i| {
        line[i + MARK.len()..].starts_with("SESSION,")
            || line[i + MARK.len()..].starts_with("OBJECT,")
    })
}

/// Whether the quotes of a (possibly partial) record are balanced, i.e. it is complete.
pub fn quotes_closed(text: &str) -> bool {
    text.bytes()
        .filter(|&b| b == b'"')
        .count()
        .is_multiple_of(2)
}

fn prefix_fields(prefix: &str, out: &mut Fields<'static>) -> Option<Timestamp> {
    let s = |x: &str| Value::Str(Cow::Owned(x.to_owned()));
    let mut ts = None;
    // Leading "YYYY-MM-DD HH:MM:SS[.fff] [TZ]".
    let toks: Vec<&str> = prefix.split_whitespace().collect();
    if toks.len() >= 2 && toks[0].len() == 10 && toks[0].as_bytes()[4] == b'-' {
        let mut text = format!("{}T{}", toks[0], toks[1]);
        if let Some(tz) = toks.get(2)
            && (tz.eq_ignore_ascii_case("UTC") || tz.eq_ignore_ascii_case("GMT"))
        {
            text.push('Z');
        }
        ts = cellwarden_event::parse_timestamp(&text);
    }
    for t in &toks {
        let t = t.trim_end_matches(':');
        if let Some(pid) = t.strip_prefix('[').and_then(|x| x.strip_suffix(']'))
            && let Ok(p) = pid.parse::<i64>()
        {
            out.push((Cow::Borrowed("pid"), Value::Int(p)));
        }
        for part in t.split(',') {
            if let Some((k, v)) = part.split_once('=') {
                let key = match k {
                    "user" => "user",
                    "db" => "database",
                    "app" => "application",
                    "client" | "host" => "client_host",
                    _ => continue,
                };
                if !v.is_empty() && v != "[unknown]" {
                    out.push((Cow::Borrowed(key), s(v)));
                }
            } else if let Some((u, d)) = part.split_once('@')
                && !u.is_empty()
                && !d.is_empty()
                && !u.contains('[')
            {
                out.push((Cow::Borrowed("user"), s(u)));
                out.push((Cow::Borrowed("database"), s(d)));
            }
        }
    }
    ts
}

/// Fields of one pgaudit record (its lines joined with `\n`); `None` if it is not one.
pub fn pgaudit_record(text: &str) -> Option<(Fields<'static>, Option<Timestamp>)> {
    let i = text.find(MARK)?;
    let prefix = text[..i].trim_end();
    let prefix = prefix
        .strip_suffix("LOG:")
        .or_else(|| prefix.strip_suffix("LOG: "))
        .unwrap_or(prefix);
    let body = &text[i + MARK.len()..];
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(body.as_bytes());
    let rec = rdr.records().next()?.ok()?;
    if rec.len() < 8 {
        return None;
    }
    let mut out: Fields<'static> = Vec::with_capacity(16);
    let s = |x: &str| Value::Str(Cow::Owned(x.to_owned()));
    let ts = prefix_fields(prefix, &mut out);
    let names = [
        "audit_type",
        "statement_id",
        "substatement_id",
        "class",
        "command",
        "object_type",
        "object_name",
        "statement",
        "parameter",
        "rows",
    ];
    for (k, v) in names.iter().zip(rec.iter()) {
        let v = v.trim();
        let value = match *k {
            "statement_id" | "substatement_id" | "rows" => {
                v.parse::<i64>().map(Value::Int).unwrap_or_else(|_| s(v))
            }
            "parameter" if v == "<not logged>" || v == "<none>" => continue,
            _ => s(v),
        };
        out.push((Cow::Borrowed(k), value));
    }
    out.push((
        Cow::Borrowed("Channel"),
        Value::Str(Cow::Borrowed("pgaudit")),
    ));
    Some((out, ts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(f: &'a Fields<'_>, k: &str) -> String {
        f.iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.as_text())
            .map(|t| t.into_owned())
            .unwrap_or_default()
    }

    #[test]
    fn stderr_line_with_user_at_db_prefix() {
        let line = r#"2026-03-04 03:12:09.123 UTC [12345] billing_ro@cdrdb LOG:  AUDIT: SESSION,7,1,READ,SELECT,,,"SELECT * FROM cdr WHERE msisdn = '33612345678'",<not logged>"#;
        assert!(is_pgaudit(line));
        let (f, ts) = pgaudit_record(line).unwrap();
        assert_eq!(
            cellwarden_event::format_timestamp(ts),
            "2026-03-04T03:12:09.123000Z"
        );
        assert_eq!(get(&f, "user"), "billing_ro");
        assert_eq!(get(&f, "database"), "cdrdb");
        assert_eq!(get(&f, "pid"), "12345");
        assert_eq!(get(&f, "class"), "READ");
        assert_eq!(get(&f, "command"), "SELECT");
        assert_eq!(
            get(&f, "statement"),
            "SELECT * FROM cdr WHERE msisdn = '33612345678'"
        );
        assert_eq!(get(&f, "parameter"), "");
    }

    #[test]
    fn key_value_prefix_multiline_statement_and_rows() {
        let text = "2026-03-04 03:15:00 UTC [4242]: [3-1] user=etl,db=cdrdb,app=psql,client=10.20.30.40 LOG:  AUDIT: SESSION,9,1,READ,SELECT,TABLE,public.cdr,\"SELECT calling_number, cell_id\n  FROM cdr\n  WHERE calling_number IN ('33611111111', \"\"x\"\")\",\"33611111111\",42";
        assert!(!quotes_closed("x,\"SELECT a\n"));
        assert!(quotes_closed(text));
        let (f, _) = pgaudit_record(text).unwrap();
        assert_eq!(get(&f, "user"), "etl");
        assert_eq!(get(&f, "application"), "psql");
        assert_eq!(get(&f, "client_host"), "10.20.30.40");
        assert_eq!(get(&f, "object_name"), "public.cdr");
        assert!(
            get(&f, "statement")
                .contains("FROM cdr\n  WHERE calling_number IN ('33611111111', \"x\")")
        );
        assert_eq!(get(&f, "parameter"), "33611111111");
        assert_eq!(get(&f, "rows"), "42");
    }

    #[test]
    fn other_lines_are_not_records() {
        assert!(!is_pgaudit(
            "2026-03-04 03:12:09 UTC [1] LOG:  connection received: host=10.0.0.1"
        ));
        assert!(pgaudit_record("AUDIT: SESSION,1").is_none());
    }
}
