//! Scope report outputs: JSON (the documented form), CSV (one row per subscriber) and a
//! self-contained HTML page for the people who notify subscribers. Every string from the
//! logs is escaped where it lands (HTML text and attributes, CSV cells).

use std::io::{self, Write};

use cellwarden_telecom::exposure::Exposure;

use crate::CsvWriter;

/// Pretty-printed JSON.
pub fn write_scope_json(w: &mut dyn Write, x: &Exposure) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *w, x).map_err(io::Error::other)?;
    writeln!(w)
}

/// One row per subscriber (person); lists are joined with `;`, identifiers as `kind:id`
/// with `*` after those not read (known from a link only).
pub fn write_scope_csv(w: &mut dyn Write, x: &Exposure) -> io::Result<()> {
    let mut c = CsvWriter::new(w);
    c.row(&[
        "id",
        "id_kind",
        "person",
        "identifiers",
        "record_types",
        "accounts",
        "client_hosts",
        "first_access",
        "last_access",
        "statements",
        "rows",
        "watchlisted",
        "label",
        "reasons",
        "evidence",
    ])?;
    for s in &x.subscribers {
        let evidence: Vec<String> = s
            .evidence
            .iter()
            .map(|e| format!("{}:{}", e.file, e.line))
            .collect();
        c.row(&[
            &s.id,
            &s.id_kind,
            &s.person,
            &identifiers_text(s),
            &s.record_types.join(";"),
            &s.accounts.join(";"),
            &s.client_hosts.join(";"),
            &s.first_access,
            &s.last_access,
            &s.statements.to_string(),
            &s.rows.map(|r| r.to_string()).unwrap_or_default(),
            if s.watchlisted { "true" } else { "false" },
            s.label.as_deref().unwrap_or(""),
            &s.reasons.join(";"),
            &evidence.join(";"),
        ])?;
    }
    c.flush()
}

fn identifiers_text(s: &cellwarden_telecom::exposure::SubscriberExposure) -> String {
    s.identifiers
        .iter()
        .map(|i| format!("{}:{}{}", i.kind, i.id, if i.read { "" } else { "*" }))
        .collect::<Vec<_>>()
        .join(";")
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            // Control characters (terminal escapes) are shown, not passed on.
            c if c.is_control() && c != '\n' && c != '\t' => {
                o.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => o.push(c),
        }
    }
    o
}

const STYLE: &str = r#"
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1d2330;background:#fafbfc}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#5b6475;margin-bottom:16px}
.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{background:#fff;border:1px solid #dde2ea;border-radius:6px;padding:10px 14px;min-width:150px}
.card b{display:block;font-size:22px}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #dde2ea}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #eef1f5;vertical-align:top}
th{background:#f0f3f7;cursor:pointer;user-select:none;white-space:nowrap}
th.sorted-asc::after{content:" ▲"}th.sorted-desc::after{content:" ▼"}
tr.watch td:first-child{border-left:4px solid #c0392b}
.tag{display:inline-block;background:#eef1f5;border-radius:3px;padding:0 5px;margin:1px;font-size:12px}
.lvl-high,.lvl-critical{color:#b03a2e;font-weight:600}.lvl-medium{color:#b9770e}.lvl-low{color:#2e6da4}
details summary{cursor:pointer;color:#2e6da4}
code{font-size:12px;word-break:break-all}
.note{color:#5b6475;font-size:12px}
"#;

const SCRIPT: &str = r#"
document.querySelectorAll('table.sortable').forEach(function(t){
  t.querySelectorAll('th').forEach(function(th,i){
    th.addEventListener('click',function(){
      var asc=!th.classList.contains('sorted-asc');
      t.querySelectorAll('th').forEach(function(h){h.classList.remove('sorted-asc','sorted-desc')});
      th.classList.add(asc?'sorted-asc':'sorted-desc');
      var body=t.tBodies[0];var rows=Array.prototype.slice.call(body.rows);
      rows.sort(function(a,b){
        var x=a.cells[i].getAttribute('data-sort')||a.cells[i].textContent;
        var y=b.cells[i].getAttribute('data-sort')||b.cells[i].textContent;
        var nx=parseFloat(x),ny=parseFloat(y);
        var c=(!isNaN(nx)&&!isNaN(ny))?nx-ny:x.localeCompare(y);
        return asc?c:-c;
      });
      rows.forEach(function(r){body.appendChild(r)});
    });
  });
});
"#;

fn tags(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("<span class=\"tag\">{}</span>", html_escape(i)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A self-contained HTML report (no external assets).
pub fn write_scope_html(w: &mut dyn Write, x: &Exposure) -> io::Result<()> {
    let e = html_escape;
    let s = &x.summary;
    let mut h = String::new();
    h.push_str("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">");
    h.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">");
    h.push_str("<title>cellwarden scope report</title><style>");
    h.push_str(STYLE);
    h.push_str("</style></head><body>");
    h.push_str("<h1>Subscriber exposure</h1><div class=\"sub\">");
    if s.mode == "selected" {
        h.push_str(&format!(
            "Every subscriber whose records were read by accounts {} / client hosts {} between {} and {}.",
            e(&none_dash(&s.selection.accounts.join(", "))),
            e(&none_dash(&s.selection.hosts.join(", "))),
            e(s.selection.since.as_deref().unwrap_or("the start of the logs")),
            e(s.selection.until.as_deref().unwrap_or("the end of the logs"))
        ));
    } else {
        h.push_str("Subscribers whose records were read in suspicious sessions: watchlist hits, targeted lookups, and account-days flagged by the detections.");
    }
    if s.pseudonymised {
        h.push_str(" Identifiers are keyed pseudonyms.");
    }
    h.push_str("</div><div class=\"cards\">");
    let mut cards = vec![
        ("subscribers exposed", s.subscribers_exposed.to_string()),
        ("watchlisted", s.watchlisted_exposed.to_string()),
        ("suspicious accounts", s.accounts_suspicious.to_string()),
        ("statements analysed", s.statements.to_string()),
        (
            "first access (UTC)",
            s.first_access.as_deref().map_or("-".into(), short_time),
        ),
        (
            "last access (UTC)",
            s.last_access.as_deref().map_or("-".into(), short_time),
        ),
    ];
    if !x.signalling.is_empty() {
        cards.insert(
            1,
            ("located over signalling", x.signalling.len().to_string()),
        );
    }
    for (label, v) in cards {
        h.push_str(&format!(
            "<div class=\"card\"><b>{}</b>{}</div>",
            e(&v),
            e(label)
        ));
    }
    h.push_str("</div>");

    h.push_str("<h2>Subscribers</h2>");
    if x.subscribers.is_empty() {
        h.push_str("<p>No subscriber records were read in the sessions in scope.</p>");
    } else {
        h.push_str("<table class=\"sortable\" id=\"subscribers\"><thead><tr><th>Identifier</th><th>Kind</th><th>Records</th><th>Accounts</th><th>Client hosts</th><th>First access (UTC)</th><th>Last access (UTC)</th><th>Statements</th><th>Rows</th><th>Why</th><th>Evidence</th></tr></thead><tbody>");
        for sub in &x.subscribers {
            h.push_str(&format!(
                "<tr{}><td><code>{}</code>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>",
                if sub.watchlisted { " class=\"watch\"" } else { "" },
                e(&sub.id),
                sub.identifiers
                    .iter()
                    .filter(|i| i.id != sub.id || i.kind != sub.id_kind)
                    .map(|i| format!(
                        "<br><span class=\"also\">{} <code>{}</code>{}</span>",
                        e(&i.kind),
                        e(&i.id),
                        if i.read { "" } else { " (linked, not read)" }
                    ))
                    .collect::<String>(),
                match (&sub.label, sub.watchlisted) {
                    (Some(l), _) => format!("<br><span class=\"tag\">watchlist: {}</span>", e(l)),
                    (None, true) => "<br><span class=\"tag\">watchlist</span>".to_owned(),
                    _ => String::new(),
                },
                e(&sub.id_kind),
                tags(&sub.record_types),
                tags(&sub.accounts),
                tags(&sub.client_hosts),
                e(&short_time(&sub.first_access)),
                e(&short_time(&sub.last_access)),
                sub.statements,
                sub.rows.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
                why(&sub.reasons),
            ));
            h.push_str(&format!(
                "<details><summary>{} of {}</summary>",
                sub.evidence.len(),
                sub.evidence_total
            ));
            for ev in &sub.evidence {
                h.push_str(&format!(
                    "<div><code>{}:{}</code> {} {}</div>",
                    e(&ev.file),
                    ev.line,
                    e(&short_time(&ev.time)),
                    e(&ev.account)
                ));
            }
            h.push_str("</details></td></tr>");
        }
        h.push_str("</tbody></table>");
    }

    h.push_str("<h2>Accounts</h2>");
    if x.accounts.is_empty() {
        h.push_str("<p>No account was flagged.</p>");
    }
    for a in &x.accounts {
        h.push_str(&format!(
            "<h3>{}{}</h3><div class=\"note\">{} statements, {} subscribers in this report, client hosts {}, programs {}, active {} .. {}</div>",
            e(&a.account),
            if a.suspicious { " <span class=\"lvl-high\">suspicious</span>" } else { "" },
            a.statements,
            a.subscribers,
            tags(&a.client_hosts),
            tags(&a.programs),
            e(&short_time(&a.first_activity)),
            e(&short_time(&a.last_activity))
        ));
        if !a.reasons.is_empty() {
            h.push_str("<table class=\"sortable\"><thead><tr><th>Time</th><th>Level</th><th>Detection</th><th>Observed</th><th>Expected</th><th>Alert</th></tr></thead><tbody>");
            for r in &a.reasons {
                h.push_str(&format!(
                    "<tr><td>{}</td><td class=\"lvl-{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                    e(&short_time(&r.time)),
                    e(&r.level),
                    e(&r.level),
                    e(&r.title),
                    e(&r.observed),
                    e(&r.expected),
                    e(&r.alert)
                ));
            }
            h.push_str("</tbody></table>");
        }
        if !a.bulk.is_empty() {
            h.push_str("<p>Whole-table reads and exports:</p><ul>");
            const SHOWN: usize = 10;
            for b in a.bulk.iter().take(SHOWN) {
                h.push_str(&format!(
                    "<li>{} {} on {}: {} statement(s), {} — <code>{}:{}</code></li>",
                    e(&b.statement_kind),
                    e(&b.table),
                    e(&b.day),
                    b.statements,
                    b.rows
                        .map(|r| format!("{r} rows"))
                        .unwrap_or_else(|| "rows not logged".into()),
                    e(&b.file),
                    b.line
                ));
            }
            if a.bulk.len() > SHOWN {
                h.push_str(&format!(
                    "<li>… and {} more (in the JSON report)</li>",
                    a.bulk.len() - SHOWN
                ));
            }
            h.push_str("</ul>");
        }
    }
    if !x.exfiltration.is_empty() {
        h.push_str("<h2>Where the data may have gone</h2><p class=\"note\">Outbound traffic from the client hosts of suspicious accounts, from their first suspicious activity to 24 hours after their last, per UTC day (from the flow logs given).</p><table class=\"sortable\"><thead><tr><th>Account</th><th>From</th><th>To</th><th>Ports</th><th>Day</th><th>Bytes out</th><th>Flows</th><th>First flow</th></tr></thead><tbody>");
        for t in &x.exfiltration {
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td data-sort=\"{}\">{}</td><td>{}</td><td><code>{}:{}</code> {}</td></tr>",
                e(&t.account),
                e(&t.src_ip),
                e(&t.dst_ip),
                t.dst_ports.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", "),
                e(&t.day),
                t.bytes_out,
                cellwarden_analytics::stats::human_bytes(t.bytes_out),
                t.flows,
                e(&t.file),
                t.line,
                e(&short_time(&t.first_time))
            ));
        }
        h.push_str("</tbody></table>");
    }
    if !x.signalling.is_empty() {
        h.push_str("<h2>Located over the signalling network</h2><p class=\"note\">Subscribers whose location, subscription or routing was asked for in suspicious signalling exchanges (from the captures given).</p><table class=\"sortable\"><thead><tr><th>IMSI</th><th>MSISDN</th><th>Asked by</th><th>From host</th><th>Operations (answered)</th><th>Detections</th><th>First</th><th>Last</th><th>Evidence</th></tr></thead><tbody>");
        for t in &x.signalling {
            let ops: Vec<String> = t
                .operations
                .iter()
                .zip(&t.answered)
                .map(|(o, a)| format!("{} ({})", e(o), e(a)))
                .collect();
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code> packet {}</td></tr>",
                e(t.imsi.as_deref().unwrap_or("")),
                e(t.msisdn.as_deref().unwrap_or("")),
                e(&t.by),
                e(&t.sender),
                ops.join(", "),
                e(&t
                    .rules
                    .iter()
                    .map(|r| r.trim_start_matches("cellwarden.signal."))
                    .collect::<Vec<_>>()
                    .join(", ")),
                e(&short_time(&t.first)),
                e(&short_time(&t.last)),
                e(&t.file),
                t.packet
            ));
        }
        h.push_str("</tbody></table>");
    }
    if !x.prefix_lookups.is_empty() {
        h.push_str("<h2>Range lookups (LIKE on identifiers)</h2><table class=\"sortable\"><thead><tr><th>Account</th><th>Kind</th><th>Prefix</th><th>Statements</th><th>First</th></tr></thead><tbody>");
        for p in &x.prefix_lookups {
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td><code>{}:{}</code></td></tr>",
                e(&p.account),
                e(&p.id_kind),
                e(&p.prefix),
                p.statements,
                e(&p.first.file),
                p.first.line
            ));
        }
        h.push_str("</tbody></table>");
    }
    h.push_str(&format!(
        "<p class=\"note\">{} statements analysed, {} selected subscribers, {} read from tokens because the SQL parser rejected them, {} failed, {} without a time.</p>",
        s.statements,
        s.statements_with_subscribers,
        s.statements_parsed_from_tokens,
        s.failed_statements,
        s.statements_without_time
    ));
    h.push_str("<script>");
    h.push_str(SCRIPT);
    h.push_str("</script></body></html>\n");
    w.write_all(h.as_bytes())
}

fn none_dash(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.to_owned()
    }
}

/// The rule id part of an alert key (`rule:file:record`), without the namespace.
fn rule_of(key: &str) -> &str {
    let rule = key.split(':').next().unwrap_or(key);
    rule.strip_prefix("cellwarden.db.").unwrap_or(rule)
}

/// Distinct rules of the reasons, with how many alerts of each; the keys in a tooltip.
fn why(reasons: &[String]) -> String {
    let mut by_rule: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for r in reasons {
        by_rule.entry(rule_of(r)).or_default().push(r);
    }
    by_rule
        .iter()
        .map(|(rule, keys)| {
            let n = if keys.len() > 1 {
                format!(" ×{}", keys.len())
            } else {
                String::new()
            };
            format!(
                "<span class=\"tag\" title=\"{}\">{}{n}</span>",
                html_escape(&keys.join("\n")),
                html_escape(&rule.replace('_', " "))
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `2026-03-07T03:17:00.000000Z` → `2026-03-07 03:17:00` (UTC is said in the header).
fn short_time(t: &str) -> String {
    match (t.get(..10), t.get(11..19)) {
        (Some(d), Some(h)) if t.len() >= 19 => format!("{d} {h}"),
        _ => t.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(
            html_escape("<script>alert('x')</script>\"&\u{1b}[31m"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;\\u{1b}[31m"
        );
    }
}
