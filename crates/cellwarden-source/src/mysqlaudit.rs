//! MySQL Enterprise Audit and Percona Audit Log files in their XML formats, the default of
//! both plugins (`audit_log_format` `NEW` in MySQL, `OLD` in Percona Server), and Percona's
//! CSV format. (Their JSON format is read with the other JSON logs.)
//!
//! - old style, one element per record with its fields as attributes:
//!   `<AUDIT_RECORD NAME="Query" RECORD="2_2026-…" TIMESTAMP="2026-03-04T10:00:00 UTC"
//!   COMMAND_CLASS="select" CONNECTION_ID="7" STATUS="0" SQLTEXT="…" USER="…" HOST="…" IP="…"
//!   DB="…"/>` (Percona puts each attribute and the closing `/>` on a line of its own, MySQL
//!   closes on the last attribute's line);
//! - new style, one element per field: `<AUDIT_RECORD>`, `<NAME>Query</NAME>`, …,
//!   `</AUDIT_RECORD>`, with `<OS_LOGIN/>` for an empty one and MySQL's connection
//!   attributes nested (`<CONNECTION_ATTRIBUTES><ATTRIBUTE><NAME>program_name</NAME>
//!   <VALUE>…</VALUE></ATTRIBUTE>…`).
//!
//! The file starts with `<?xml …?>` and `<AUDIT>` and ends with `</AUDIT>` once closed.
//! Values escape `<`, `>`, `&` and `"` (Percona also control characters, as `&#10;`), so a
//! record ends at the first `/>` (old style) or `</AUDIT_RECORD>` (new style) after its start.
//! Percona's CSV (`audit_log_format = CSV`) has no header: a record's columns follow from its
//! name (first column), as the plugin writes them: `"Query","<record id>","<time>",
//! "<command class>","<connection id>",<status>,"<statement>","<user>","<host>","<os user>",
//! "<ip>","<db>"`; `Connect`/`Quit`/`Change user` records name `<connection id>`, `<status>`,
//! user, privileged user, OS login, proxy user, host, ip and db after the time; `Audit`/
//! `NoAudit` records the server's version and options. Only `"` is escaped (doubled): a
//! statement's line breaks stay, inside its quotes.
//!
//! A record's fields are named as in the plugins' JSON format (`audit_record.name`,
//! `audit_record.sqltext`, …) and given the common database fields the same way
//! ([`crate::dbaudit::mysql_json`]).
//!
//! The XML files are cut into records by [`crate::xmlrecord`].

use std::borrow::Cow;

use cellwarden_event::{Timestamp, Value};

use crate::json::Fields;
use crate::xmlrecord::{elements, unescape};

/// The fields of an old-style record: its attributes, in order. `None` if the element does
/// not close.
fn attributes(body: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        rest = rest.trim_start();
        if rest.starts_with("/>") || rest.starts_with('>') {
            return Some(out);
        }
        let eq = rest.find('=')?;
        // Some documentation quotes the names too ("NAME"="Query"): accepted.
        let name = rest[..eq].trim().trim_matches('"');
        if name.is_empty() || name.contains(['<', '>', '/']) {
            return None;
        }
        let after = rest[eq + 1..].trim_start().strip_prefix('"')?;
        let close = after.find('"')?;
        out.push((name.to_owned(), unescape(&after[..close]).into_owned()));
        // A stray comma after a value (seen in documentation) is skipped.
        rest = after[close + 1..].trim_start_matches(',');
    }
}

/// Whether a line starts a Percona CSV audit record: a quoted name, a quoted record id
/// (`<n>_<date>T<time>`) and a quoted time.
pub fn is_percona_csv(line: &str) -> bool {
    let Some(rest) = line.strip_prefix('"') else {
        return false;
    };
    let mut parts = rest.splitn(4, "\",\"");
    let (Some(name), Some(id), Some(time)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let date = |s: &str| {
        let b = s.as_bytes();
        b.len() >= 19
            && b[..4].iter().all(u8::is_ascii_digit)
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b'T'
            && b[13] == b':'
    };
    !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_alphabetic() || c == b' ' || c == b'_')
        && id
            .split_once('_')
            .is_some_and(|(n, d)| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()) && date(d))
        && date(time)
}

/// One Percona CSV record (its lines joined) as [`record`] gives an XML one. `None` if it is
/// not one whole record.
pub fn csv_record(text: &str) -> Option<(Fields<'static>, Option<Timestamp>)> {
    let cols = crate::dbaudit::csv_record(text)?;
    let names: &[&str] = match cols.first().map(|c| &**c)? {
        "Audit" | "NoAudit" => &[
            "name",
            "record",
            "timestamp",
            "mysql_version",
            "startup_options",
            "os_version",
        ],
        "Connect" | "Quit" | "Change user" => &[
            "name",
            "record",
            "timestamp",
            "connection_id",
            "status",
            "user",
            "priv_user",
            "os_login",
            "proxy_user",
            "host",
            "ip",
            "db",
        ],
        _ => &[
            "name",
            "record",
            "timestamp",
            "command_class",
            "connection_id",
            "status",
            "sqltext",
            "user",
            "host",
            "os_user",
            "ip",
            "db",
        ],
    };
    if cols.len() != names.len() {
        return None;
    }
    let pairs = names
        .iter()
        .zip(cols)
        .map(|(n, v)| ((*n).to_owned(), v.into_owned()))
        .collect();
    fields_of(pairs)
}

/// A record sent to syslog (Percona's `audit_log_handler = SYSLOG`, tag `percona-audit` by
/// default): the message is the record in the configured format, JSON, CSV or XML, whose line
/// breaks rsyslog writes as `#012`. The syslog host is the record's host, and its time is used
/// where the record has none. `None` for other messages.
pub fn syslog_record<'t>(
    p: &crate::linux::SyslogParts<'t>,
) -> Option<(Fields<'t>, Option<Timestamp>)> {
    let msg = p.msg.trim();
    let (mut fields, ts) = if msg.starts_with("{\"audit_record\"") {
        let mut f = crate::json::flatten(msg).ok()?;
        let ts = crate::dbaudit::mysql_json(&mut f)?;
        (f, ts)
    } else if msg.starts_with("<AUDIT_RECORD") {
        record(&msg.replace("#012", "\n"))?
    } else if is_percona_csv(msg) {
        csv_record(&msg.replace("#012", "\n"))?
    } else {
        return None;
    };
    if p.host != "-" {
        crate::json::put_new_owned(&mut fields, "hostname", p.host);
    }
    Some((fields, ts.or(p.time)))
}

/// One record as fields named like the JSON format's (`audit_record.<lower-case name>`) with
/// the common database fields, and its time. `None` if the text is not one whole record.
pub fn record(text: &str) -> Option<(Fields<'static>, Option<Timestamp>)> {
    let t = text.trim_start();
    let body = t.strip_prefix("<AUDIT_RECORD")?;
    let pairs = match body.strip_prefix('>') {
        Some(children) => elements(children, "</AUDIT_RECORD>")?,
        None if body.starts_with(|c: char| c.is_ascii_whitespace()) => attributes(body)?,
        None => return None,
    };
    fields_of(pairs)
}

/// The record's fields under the JSON format's names, with the common database fields.
fn fields_of(pairs: Vec<(String, String)>) -> Option<(Fields<'static>, Option<Timestamp>)> {
    let mut fields: Fields<'static> = Vec::with_capacity(pairs.len() + 12);
    for (k, v) in pairs {
        let key = if k.contains('.') {
            k
        } else {
            format!("audit_record.{}", k.to_ascii_lowercase())
        };
        if !fields.iter().any(|(n, _)| *n == key) {
            fields.push((Cow::Owned(key), Value::Str(Cow::Owned(v))));
        }
    }
    // MySQL names the client's OS login `OS_LOGIN`, Percona `OS_USER`; the program comes
    // with the connection attributes.
    let alias = [
        ("audit_record.os_login", "audit_record.os_user"),
        ("connection_attributes.program_name", "application"),
    ];
    for (from, to) in alias {
        if let Some(v) = fields
            .iter()
            .find(|(n, _)| n == from)
            .map(|(_, v)| v.clone())
            && !fields.iter().any(|(n, _)| n == to)
        {
            fields.push((Cow::Borrowed(to), v));
        }
    }
    let ts = crate::dbaudit::mysql_json(&mut fields)?;
    Some((fields, ts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(f: &'a Fields<'_>, k: &str) -> Option<&'a str> {
        f.iter().find(|(n, _)| n == k).and_then(|(_, v)| match v {
            Value::Str(s) => Some(&**s),
            _ => None,
        })
    }

    #[test]
    fn old_style_records_of_percona_and_mysql() {
        // Percona: an attribute a line, `/>` alone.
        let percona = "<AUDIT_RECORD\n  NAME=\"Query\"\n  RECORD=\"4_2026-03-04T10:00:00\"\n  TIMESTAMP=\"2026-03-04T10:00:01 UTC\"\n  COMMAND_CLASS=\"select\"\n  CONNECTION_ID=\"7\"\n  STATUS=\"0\"\n  SQLTEXT=\"SELECT * FROM cdr WHERE msisdn = &apos;33612345678&apos; AND note &lt;&gt; &quot;x&quot;&#10;LIMIT 5\"\n  USER=\"app[app] @ crm01 [10.2.3.4]\"\n  HOST=\"crm01\"\n  OS_USER=\"\"\n  IP=\"10.2.3.4\"\n  DB=\"cdrdb\"\n/>";
        let (f, ts) = record(percona).unwrap();
        assert_eq!(
            get(&f, "statement"),
            Some("SELECT * FROM cdr WHERE msisdn = '33612345678' AND note <> \"x\"\nLIMIT 5")
        );
        assert_eq!(get(&f, "user"), Some("app"));
        assert_eq!(get(&f, "client_host"), Some("10.2.3.4"));
        assert_eq!(get(&f, "session_id"), Some("7"));
        assert_eq!(get(&f, "database"), Some("cdrdb"));
        assert_eq!(get(&f, "command"), Some("select"));
        assert_eq!(get(&f, "return_code"), Some("0"));
        assert_eq!(get(&f, "Channel"), Some("mysql_audit"));
        assert_eq!(ts.unwrap().to_string(), "2026-03-04T10:00:01Z");
        // MySQL: the element closes on the last attribute's line.
        let mysql = "  <AUDIT_RECORD\n    TIMESTAMP=\"2026-03-04T10:00:02 UTC\"\n    RECORD_ID=\"5_2026-03-04T10:00:00\"\n    NAME=\"Query\"\n    CONNECTION_ID=\"8\"\n    STATUS=\"1146\"\n    STATUS_CODE=\"1\"\n    USER=\"dba[dba] @ jump [10.9.9.9]\"\n    OS_LOGIN=\"\"\n    HOST=\"jump\"\n    IP=\"10.9.9.9\"\n    COMMAND_CLASS=\"select\"\n    SQLTEXT=\"select 1 from nope\"/>";
        let (f, _) = record(mysql).unwrap();
        assert_eq!(get(&f, "user"), Some("dba"));
        assert_eq!(get(&f, "return_code"), Some("1146"));
        assert!(crate::xmlrecord::record_ends(
            mysql.as_bytes(),
            b"    SQLTEXT=\"select 1 from nope\"/>"
        ));
        assert!(!crate::xmlrecord::record_ends(
            mysql.as_bytes(),
            b"    NAME=\"Query\""
        ));
        // Cut before its end: not a record.
        assert!(record(&percona[..percona.len() - 2]).is_none());
    }

    #[test]
    fn new_style_records_with_connection_attributes() {
        let connect = " <AUDIT_RECORD>\n  <TIMESTAMP>2026-03-04T10:00:00 UTC</TIMESTAMP>\n  <RECORD_ID>2_2026-03-04T09:00:00</RECORD_ID>\n  <NAME>Connect</NAME>\n  <CONNECTION_ID>5</CONNECTION_ID>\n  <STATUS>0</STATUS>\n  <STATUS_CODE>0</STATUS_CODE>\n  <USER>app</USER>\n  <OS_LOGIN/>\n  <HOST>crm01</HOST>\n  <IP>10.2.3.4</IP>\n  <COMMAND_CLASS>connect</COMMAND_CLASS>\n  <CONNECTION_TYPE>SSL/TLS</CONNECTION_TYPE>\n  <CONNECTION_ATTRIBUTES>\n   <ATTRIBUTE>\n    <NAME>_pid</NAME>\n    <VALUE>42794</VALUE>\n   </ATTRIBUTE>\n   <ATTRIBUTE>\n    <NAME>program_name</NAME>\n    <VALUE>billing-batch</VALUE>\n   </ATTRIBUTE>\n  </CONNECTION_ATTRIBUTES>\n  <PRIV_USER>app</PRIV_USER>\n  <PROXY_USER/>\n  <DB>cdrdb</DB>\n </AUDIT_RECORD>";
        let (f, ts) = record(connect).unwrap();
        // The record's own NAME, not an attribute's.
        assert_eq!(get(&f, "audit_record.name"), Some("Connect"));
        assert_eq!(get(&f, "application"), Some("billing-batch"));
        assert_eq!(get(&f, "user"), Some("app"));
        assert_eq!(get(&f, "database"), Some("cdrdb"));
        assert_eq!(get(&f, "statement"), None);
        assert!(ts.is_some());
        let query = "<AUDIT_RECORD>\n  <NAME>Query</NAME>\n  <RECORD>6_2026-03-04T09:00:00</RECORD>\n  <TIMESTAMP>2026-03-04T10:00:03 UTC</TIMESTAMP>\n  <COMMAND_CLASS>select</COMMAND_CLASS>\n  <CONNECTION_ID>5</CONNECTION_ID>\n  <STATUS>0</STATUS>\n  <SQLTEXT>SELECT imei FROM device\nWHERE msisdn = '33612345678' AND a &gt; 1</SQLTEXT>\n  <USER>app[app] @ crm01 [10.2.3.4]</USER>\n  <HOST>crm01</HOST>\n  <OS_USER></OS_USER>\n  <IP>10.2.3.4</IP>\n  <DB>cdrdb</DB>\n</AUDIT_RECORD>";
        let (f, _) = record(query).unwrap();
        assert_eq!(
            get(&f, "statement"),
            Some("SELECT imei FROM device\nWHERE msisdn = '33612345678' AND a > 1")
        );
        assert!(crate::xmlrecord::record_ends(
            query.as_bytes(),
            b"</AUDIT_RECORD>"
        ));
        assert!(!crate::xmlrecord::record_ends(
            query.as_bytes(),
            b"  <DB>cdrdb</DB>"
        ));
        assert!(record("<AUDIT_RECORD>\n  <NAME>Query</NAME>\n").is_none());
        let two = format!("<AUDIT>\n{query}\n{connect}\n");
        let first = "<AUDIT>\n".len() + query.len() + 1;
        assert_eq!(crate::xmlrecord::complete_prefix(two.as_bytes()), two.len());
        assert_eq!(
            crate::xmlrecord::complete_prefix(&two.as_bytes()[..two.len() - 20]),
            first
        );
    }

    #[test]
    fn percona_csv_records() {
        let q = "\"Query\",\"12_2026-03-04T09:00:00\",\"2026-03-04T10:00:01 UTC\",\"select\",\"7\",0,\"SELECT \"\"x\"\", imei FROM device\nWHERE msisdn = '33612345678'\",\"app[app] @ crm01 [10.2.3.4]\",\"crm01\",\"\",\"10.2.3.4\",\"cdrdb\"";
        assert!(is_percona_csv(q));
        let (f, ts) = csv_record(q).unwrap();
        assert_eq!(
            get(&f, "statement"),
            Some("SELECT \"x\", imei FROM device\nWHERE msisdn = '33612345678'")
        );
        assert_eq!(get(&f, "user"), Some("app"));
        assert_eq!(get(&f, "client_host"), Some("10.2.3.4"));
        assert_eq!(get(&f, "return_code"), Some("0"));
        assert_eq!(ts.unwrap().to_string(), "2026-03-04T10:00:01Z");
        let c = "\"Connect\",\"11_2026-03-04T09:00:00\",\"2026-03-04T10:00:00 UTC\",\"7\",1045,\"app\",\"\",\"\",\"\",\"crm01\",\"10.2.3.4\",\"cdrdb\"";
        let (f, _) = csv_record(c).unwrap();
        assert_eq!(get(&f, "return_code"), Some("1045"));
        assert_eq!(get(&f, "session_id"), Some("7"));
        assert!(!is_percona_csv("\"EVENT_TIMESTAMP\",\"DBUSERNAME\""));
        assert!(!is_percona_csv(
            "20261124 08:33:03,db1,care07,10.0.0.5,12,345,QUERY,crm,'SELECT 1',0"
        ));
        // A column short: not a record.
        assert!(csv_record(&c[..c.rfind(',').unwrap()]).is_none());
    }
}
