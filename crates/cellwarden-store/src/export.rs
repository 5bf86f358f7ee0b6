//! Everything back out of the store: alerts with their triage state as JSON Lines, CSV, or
//! ECS-shaped JSON Lines for Elasticsearch/OpenSearch; campaigns, incidents and scope reports
//! follow the alerts in the JSON forms.

use std::io::Write;

use serde_json::{Value, json};

use crate::{AlertFilter, AlertRow, Page, Result, Store};

/// Formats of `cellwarden export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// JSON Lines: alerts with triage state, incidents, the latest scope report.
    Jsonl,
    /// CSV: alerts only.
    Csv,
    /// Elasticsearch/OpenSearch documents in ECS field names.
    Ecs,
}

impl ExportFormat {
    /// `jsonl`, `csv` or `ecs`.
    pub fn parse(s: &str) -> Option<ExportFormat> {
        match s {
            "jsonl" => Some(ExportFormat::Jsonl),
            "csv" => Some(ExportFormat::Csv),
            "ecs" => Some(ExportFormat::Ecs),
            _ => None,
        }
    }
}

/// ECS `event.severity` and the level name.
fn severity(level: &str) -> i64 {
    match level {
        "critical" => 99,
        "high" => 73,
        "medium" => 47,
        "low" => 21,
        _ => 1,
    }
}

/// One alert as an ECS document (8.x field names; the original alert under `cellwarden`).
pub fn ecs(a: &AlertRow) -> Value {
    let mut doc = json!({
        "@timestamp": a.time,
        "event": {
            "kind": "alert",
            "category": ["intrusion_detection"],
            "type": ["info"],
            "severity": severity(a.level),
            "id": a.key,
            "dataset": "cellwarden.alert",
        },
        "rule": {"id": a.rule_id, "name": a.rule_title, "ruleset": a.json["rule_source"]},
        "log": {"file": {"path": a.source_file}, "offset": a.source_record},
        "threat": {
            "framework": "MITRE ATT&CK",
            "technique": {"id": a.techniques},
            "tactic": {"name": a.tactics},
        },
        "labels": {"triage_status": a.status},
        "cellwarden": {"level": a.level, "comment": a.comment, "alert": a.json},
    });
    if !a.host.is_empty() {
        doc["host"] = json!({"name": a.host});
    }
    if !a.account.is_empty() {
        doc["user"] = json!({"name": a.account});
    }
    for (from, to) in [("src_ip", "source"), ("dst_ip", "destination")] {
        if let Some(ip) = a.json["event"][from].as_str() {
            doc[to] = json!({"ip": ip});
        }
    }
    doc
}

/// Every alert in time order, one page at a time.
fn each_alert(store: &Store, mut f: impl FnMut(&AlertRow) -> Result<()>) -> Result<u64> {
    let mut n = 0;
    for page in 1.. {
        let (rows, _) = store.alerts(
            &AlertFilter::default(),
            Page {
                number: page,
                size: 1000,
            },
        )?;
        if rows.is_empty() {
            break;
        }
        for a in &rows {
            f(a)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Writes every alert (time order), then for JSON forms every campaign, every incident and
/// the latest scope report. Returns the number of records written.
pub fn export(store: &Store, format: ExportFormat, w: &mut dyn Write) -> Result<u64> {
    if format == ExportFormat::Csv {
        let mut c = cellwarden_report::CsvWriter::new(w);
        c.row(&[
            "key",
            "time",
            "level",
            "rule_id",
            "rule_title",
            "host",
            "account",
            "techniques",
            "tactics",
            "source_file",
            "source_record",
            "status",
            "comment",
        ])?;
        let n = each_alert(store, |a| {
            Ok(c.row(&[
                &a.key,
                &a.time,
                a.level,
                &a.rule_id,
                &a.rule_title,
                &a.host,
                &a.account,
                &a.techniques.join(","),
                &a.tactics.join(","),
                &a.source_file,
                &a.source_record.to_string(),
                &a.status,
                &a.comment,
            ])?)
        })?;
        c.flush()?;
        return Ok(n);
    }
    let mut n = each_alert(store, |a| {
        let v = if format == ExportFormat::Ecs {
            ecs(a)
        } else {
            let mut v = a.json.clone();
            v["triage"] = json!({"status": a.status, "comment": a.comment});
            v
        };
        Ok(writeln!(w, "{v}")?)
    })?;
    let groups = store.campaigns()?.into_iter().map(|c| ("campaign", c));
    for (kind, i) in groups.chain(store.incidents()?.into_iter().map(|i| ("incident", i))) {
        let mut v = i.json.clone();
        v["record"] = json!(kind);
        v["triage"] = json!({"status": i.status, "comment": i.comment});
        if format == ExportFormat::Ecs {
            v = json!({
                "@timestamp": i.first_seen,
                "event": {"kind": "alert", "dataset": format!("cellwarden.{kind}"), "id": i.id,
                          "severity": severity(i.level), "risk_score": i.score},
                "host": {"name": i.hosts},
                "user": {"name": i.accounts},
                "threat": {"framework": "MITRE ATT&CK", "tactic": {"name": i.tactics}},
                "labels": {"triage_status": i.status},
                "cellwarden": {kind: v},
            });
        }
        writeln!(w, "{v}")?;
        n += 1;
    }
    if let Some((run, mut v)) = store.latest_scope()? {
        v["record"] = json!("scope");
        v["run"] = json!(run);
        if format == ExportFormat::Ecs {
            v = json!({"event": {"kind": "state", "dataset": "cellwarden.scope"}, "cellwarden": {"scope": v}});
        }
        writeln!(w, "{v}")?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::filled;

    #[test]
    fn exports_carry_triage_and_ecs_fields() {
        let (_d, mut s) = filled();
        let key = crate::query::tests::first_key(&s);
        s.set_status("alert", &key, "false_positive", "=HYPERLINK(\"x\")")
            .unwrap();
        let mut out = Vec::new();
        let records = 3 + (s.incidents().unwrap().len() + s.campaigns().unwrap().len()) as u64;
        assert_eq!(export(&s, ExportFormat::Jsonl, &mut out).unwrap(), records);
        let first: Value =
            serde_json::from_slice(out.split(|b| *b == b'\n').next().unwrap()).unwrap();
        assert_eq!(first["triage"]["status"], "false_positive");
        assert_eq!(first["key"], key.as_str());
        let mut out = Vec::new();
        export(&s, ExportFormat::Ecs, &mut out).unwrap();
        let doc: Value =
            serde_json::from_slice(out.split(|b| *b == b'\n').next().unwrap()).unwrap();
        assert_eq!(doc["event"]["kind"], "alert");
        assert_eq!(doc["host"]["name"], "web-01");
        assert_eq!(doc["user"], json!({"name": "eve"}));
        assert_eq!(doc["threat"]["technique"]["id"], json!(["T1059.001"]));
        let mut out = Vec::new();
        assert_eq!(export(&s, ExportFormat::Csv, &mut out).unwrap(), 3);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("key,time,level,"), "{text}");
        // Formula-looking cells are defused.
        assert!(!text.contains(",=HYPERLINK"), "{text}");
    }
}
