//! Records of XML audit trails cut out of their files, and the fields of an element-per-field
//! record: MySQL Enterprise Audit and Percona Audit Log (`<AUDIT_RECORD`, old style with
//! attributes, new style with elements, under `<AUDIT>`) and Oracle's XML audit trail
//! (`<AuditRecord>`, under the namespaced `<Audit xmlns=…>` root and its `<Version>`).
//!
//! Values escape `<`, `>`, `&` and `"`, so a record ends at the first `/>` (old style),
//! `</AUDIT_RECORD>` or `</AuditRecord>` after its start. Reading the fields of each kind is
//! [`crate::mysqlaudit`]'s and [`crate::dbaudit::oracle_xml_record`]'s.

use std::borrow::Cow;

const START: &[u8] = b"<AUDIT_RECORD";
const END_NEW: &[u8] = b"</AUDIT_RECORD>";
const ORACLE_START: &[u8] = b"<AuditRecord>";
const ORACLE_END: &[u8] = b"</AuditRecord>";

/// Whether a line starts an audit record (MySQL's, Percona's or Oracle's).
pub fn starts_record(line: &[u8]) -> bool {
    let l = line.trim_ascii_start();
    l.starts_with(START) || l.starts_with(ORACLE_START)
}

/// Whether a line is the file's XML scaffolding: the declaration, the root element (`<AUDIT>`,
/// Oracle's `<Audit xmlns=…` over several lines, and its `<Version>`) or its end (or blank).
pub fn is_scaffolding(line: &[u8]) -> bool {
    let l = line.trim_ascii();
    l.is_empty()
        || l.starts_with(b"<?xml")
        || l == b"<AUDIT>"
        || l == b"</AUDIT>"
        || l.starts_with(b"<Audit ")
        || l == b"<Audit>"
        || l == b"</Audit>"
        || l.starts_with(b"xmlns")
        || l.starts_with(b"xsi:")
        || l.starts_with(b"<Version>")
}

/// Which XML audit log the first bytes of a file are: the declaration followed by the root
/// element (MySQL's `<AUDIT>`, Oracle's `<Audit xmlns=…>`), or a record (a file cut after its
/// start).
pub fn sniff(text: &str) -> Option<crate::Format> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut l = lines.next()?;
    if l.starts_with("<?xml") {
        l = lines.next()?;
    }
    if l == "<AUDIT>" || l.starts_with("<AUDIT_RECORD") {
        Some(crate::Format::MySqlAuditXml)
    } else if l.starts_with("<Audit xmlns") || l == "<Audit>" || l.starts_with("<AuditRecord>") {
        Some(crate::Format::OracleAuditXml)
    } else {
        None
    }
}

/// Whether the record assembled so far (from its `<AUDIT_RECORD` or `<AuditRecord>` line)
/// ends with `line`, its last line so far.
pub fn record_ends(record: &[u8], line: &[u8]) -> bool {
    let r = record.trim_ascii_start();
    if r.starts_with(ORACLE_START) {
        return find(line, ORACLE_END).is_some();
    }
    let new_style = r.get(START.len()).is_some_and(|c| *c == b'>');
    if new_style {
        find(line, END_NEW).is_some()
    } else {
        line.trim_ascii_end().ends_with(b"/>")
    }
}

/// The length of the start of `text` that holds whole records only (and the lines between
/// them): what a follower reads now, leaving a record still being written for later.
pub fn complete_prefix(text: &[u8]) -> usize {
    let (mut done, mut pos) = (0, 0);
    let mut start: Option<usize> = None;
    for line in text.split_inclusive(|b| *b == b'\n') {
        if starts_record(line) {
            start = Some(pos);
        }
        pos += line.len();
        match start {
            Some(s) if !record_ends(&text[s..pos], line) => {}
            _ => {
                start = None;
                done = pos;
            }
        }
    }
    done
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Undoes XML escaping: the five named entities and numeric references. Anything else is
/// kept as written.
pub(crate) fn unescape(s: &str) -> Cow<'_, str> {
    if !s.contains('&') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let entity = rest[1..]
            .find(';')
            .filter(|n| *n <= 10)
            .map(|n| &rest[1..1 + n]);
        let c = entity.and_then(|e| match e {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => {
                let n = e.strip_prefix('#')?;
                let code = match n.strip_prefix(['x', 'X']) {
                    Some(h) => u32::from_str_radix(h, 16).ok()?,
                    None => n.parse().ok()?,
                };
                char::from_u32(code)
            }
        });
        match (c, entity) {
            (Some(c), Some(e)) => {
                out.push(c);
                rest = &rest[e.len() + 2..];
            }
            _ => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// The fields of a new-style record (or an Oracle one): its child elements up to `end`, in
/// order; the `NAME`/`VALUE` pairs of MySQL's `CONNECTION_ATTRIBUTES` as
/// `connection_attributes.<name>`. `None` if the record does not close.
pub(crate) fn elements(body: &str, end: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        rest = rest.trim_start();
        if rest.starts_with(end) {
            return Some(out);
        }
        let r = rest.strip_prefix('<')?;
        let close = r.find('>')?;
        let tag = &r[..close];
        if let Some(empty) = tag.strip_suffix('/') {
            out.push((empty.trim().to_owned(), String::new()));
            rest = &r[close + 1..];
            continue;
        }
        if tag.is_empty() || tag.contains([' ', '/', '<']) {
            return None;
        }
        let inner_start = &r[close + 1..];
        let end = format!("</{tag}>");
        let at = inner_start.find(&end)?;
        let inner = &inner_start[..at];
        if tag == "CONNECTION_ATTRIBUTES" {
            for attr in inner.split("<ATTRIBUTE>").skip(1) {
                let get = |t: &str| {
                    let open = format!("<{t}>");
                    let s = attr.find(&open)? + open.len();
                    let e = attr[s..].find(&format!("</{t}>"))?;
                    Some(unescape(&attr[s..s + e]).into_owned())
                };
                if let (Some(n), Some(v)) = (get("NAME"), get("VALUE")) {
                    out.push((format!("connection_attributes.{n}"), v));
                }
            }
        } else if !inner.trim_start().starts_with('<') {
            out.push((tag.to_owned(), unescape(inner).into_owned()));
        }
        rest = &inner_start[at + end.len()..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_and_unescapes() {
        use crate::Format;
        assert_eq!(
            sniff("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<AUDIT>\n<AUDIT_RECORD\n"),
            Some(Format::MySqlAuditXml)
        );
        assert_eq!(sniff("  <AUDIT_RECORD>\n"), Some(Format::MySqlAuditXml));
        assert_eq!(
            sniff(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n  <Audit xmlns=\"http://xmlns.oracle.com/oracleas/schema/dbserver_audittrail-11_2.xsd\"\n"
            ),
            Some(Format::OracleAuditXml)
        );
        assert_eq!(sniff("<?xml version=\"1.0\"?>\n<Events>\n"), None);
        assert_eq!(
            unescape("a &amp;b &#x41;&#66; &bogus; &"),
            "a &b AB &bogus; &"
        );
    }
}
