//! Reading the store: counts, alert search (filtered and paginated in SQL), incidents, scope
//! reports, charts' data.

use rusqlite::{OptionalExtension, Row, params_from_iter, types::Value as Sql};
use serde_json::{Value, json};

use crate::{LEVELS, Result, Store};

/// Alert search: every field optional; text fields match exactly, except `rule` which also
/// matches a substring of the title.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    /// Rule id, or part of its title.
    pub rule: Option<String>,
    /// ATT&CK technique or its family (`T1003` matches `T1003.001`).
    pub technique: Option<String>,
    /// Host name, exactly.
    pub host: Option<String>,
    /// Account, exactly.
    pub account: Option<String>,
    /// Minimum level name.
    pub level: Option<String>,
    /// Triage status (`new`, `confirmed`, `false_positive`).
    pub status: Option<String>,
    /// RFC 3339 bounds on the alert time (inclusive).
    pub since: Option<String>,
    /// Upper bound (inclusive).
    pub until: Option<String>,
}

/// A page of search results.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    /// From 1.
    pub number: u64,
    /// Rows on a page.
    pub size: u64,
}

/// A stored alert with its triage state.
#[derive(Debug, Clone)]
pub struct AlertRow {
    /// Stable key (rule, source, record).
    pub key: String,
    /// Rule id.
    pub rule_id: String,
    /// Rule title.
    pub rule_title: String,
    /// Level name.
    pub level: &'static str,
    /// Event time (RFC 3339 UTC).
    pub time: String,
    /// Host the alert names (empty when none).
    pub host: String,
    /// Account the alert names (empty when none).
    pub account: String,
    /// ATT&CK technique ids.
    pub techniques: Vec<String>,
    /// ATT&CK tactic names.
    pub tactics: Vec<String>,
    /// Log file of the event.
    pub source_file: String,
    /// Record or line in it.
    pub source_record: i64,
    /// Triage status.
    pub status: String,
    /// Analyst's comment.
    pub comment: String,
    /// The alert as `hunt` writes it (plus `key`).
    pub json: Value,
}

/// A stored campaign: the same columns as an incident (its JSON is `hunt --campaigns`').
pub type CampaignRow = IncidentRow;

/// A stored incident with its triage state.
#[derive(Debug, Clone)]
pub struct IncidentRow {
    /// Incident id (stable across re-runs of the same input).
    pub id: String,
    /// Score (higher is worse).
    pub score: i64,
    /// Highest level of its alerts.
    pub level: &'static str,
    /// First alert time (RFC 3339 UTC).
    pub first_seen: String,
    /// Last alert time (RFC 3339 UTC).
    pub last_seen: String,
    /// Hosts involved.
    pub hosts: Vec<String>,
    /// Accounts involved.
    pub accounts: Vec<String>,
    /// ATT&CK tactics in kill-chain order.
    pub tactics: Vec<String>,
    /// Alerts in it.
    pub alert_count: i64,
    /// Triage status.
    pub status: String,
    /// Analyst's comment.
    pub comment: String,
    /// Stable keys of its alerts, in time order.
    pub alert_keys: Vec<String>,
    /// The incident as `hunt --incidents` writes it.
    pub json: Value,
}

/// Counts of a store, for the overview.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Runs recorded.
    pub runs: i64,
    /// Alerts stored.
    pub alerts: i64,
    /// Alerts per level, informational … critical.
    pub by_level: [i64; 5],
    /// Alerts per triage status (new, confirmed, false_positive).
    pub by_status: [i64; 3],
    /// Incidents stored.
    pub incidents: i64,
    /// Campaigns stored.
    pub campaigns: i64,
    /// Scope reports stored.
    pub scopes: i64,
    /// Earliest alert time.
    pub first: Option<String>,
    /// Latest alert time.
    pub last: Option<String>,
}

fn split(s: String) -> Vec<String> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

fn level_name(n: i64) -> &'static str {
    LEVELS.get(n as usize).copied().unwrap_or("informational")
}

const ALERT_COLUMNS: &str = "key, rule_id, rule_title, level, time, host, account, techniques, tactics, source_file, source_record, status, comment, json";

fn alert_row(r: &Row<'_>) -> rusqlite::Result<AlertRow> {
    let json: String = r.get(13)?;
    Ok(AlertRow {
        key: r.get(0)?,
        rule_id: r.get(1)?,
        rule_title: r.get(2)?,
        level: level_name(r.get(3)?),
        time: r.get(4)?,
        host: r.get(5)?,
        account: r.get(6)?,
        techniques: split(r.get(7)?),
        tactics: split(r.get(8)?),
        source_file: r.get(9)?,
        source_record: r.get(10)?,
        status: r.get(11)?,
        comment: r.get(12)?,
        json: serde_json::from_str(&json).unwrap_or(Value::Null),
    })
}

const INCIDENT_COLUMNS: &str = "id, score, level, first_seen, last_seen, hosts, accounts, tactics, alert_count, status, comment, alert_keys, json";

fn incident_row(r: &Row<'_>) -> rusqlite::Result<IncidentRow> {
    let keys: String = r.get(11)?;
    let json: String = r.get(12)?;
    Ok(IncidentRow {
        id: r.get(0)?,
        score: r.get(1)?,
        level: level_name(r.get(2)?),
        first_seen: r.get(3)?,
        last_seen: r.get(4)?,
        hosts: split(r.get(5)?),
        accounts: split(r.get(6)?),
        tactics: split(r.get(7)?),
        alert_count: r.get(8)?,
        status: r.get(9)?,
        comment: r.get(10)?,
        alert_keys: serde_json::from_str(&keys).unwrap_or_default(),
        json: serde_json::from_str(&json).unwrap_or(Value::Null),
    })
}

impl AlertFilter {
    /// SQL `WHERE` clause and its parameters.
    fn sql(&self) -> (String, Vec<Sql>) {
        let mut w = Vec::new();
        let mut p: Vec<Sql> = Vec::new();
        let mut add = |clause: &str, v: Vec<Sql>| {
            w.push(clause.to_owned());
            p.extend(v);
        };
        let some = |o: &Option<String>| o.as_deref().filter(|s| !s.is_empty()).map(str::to_owned);
        if let Some(r) = some(&self.rule) {
            add(
                "(rule_id = ? OR rule_title LIKE '%' || ? || '%' ESCAPE '\\')",
                vec![Sql::Text(r.clone()), Sql::Text(escape_like(&r))],
            );
        }
        if let Some(t) = some(&self.technique) {
            add(
                "(',' || techniques) LIKE '%,' || ? || '%' ESCAPE '\\'",
                vec![Sql::Text(escape_like(&t.to_ascii_uppercase()))],
            );
        }
        if let Some(h) = some(&self.host) {
            add("host = ? COLLATE NOCASE", vec![Sql::Text(h)]);
        }
        if let Some(a) = some(&self.account) {
            // Accounts are stored as incidents see them: `DOMAIN\user` and `user@domain` as `user`.
            let a = a.rsplit('\\').next().unwrap_or(&a);
            let a = a.split('@').next().unwrap_or(a);
            add("account = ? COLLATE NOCASE", vec![Sql::Text(a.to_owned())]);
        }
        if let Some(l) = some(&self.level)
            && let Some(n) = LEVELS.iter().position(|x| *x == l)
        {
            add("level >= ?", vec![Sql::Integer(n as i64)]);
        }
        if let Some(s) = some(&self.status) {
            add("status = ?", vec![Sql::Text(s)]);
        }
        if let Some(s) = some(&self.since) {
            add("time >= ?", vec![Sql::Text(s)]);
        }
        if let Some(u) = some(&self.until) {
            add("time <= ?", vec![Sql::Text(u)]);
        }
        let clause = if w.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", w.join(" AND "))
        };
        (clause, p)
    }
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

impl Store {
    /// Counts of everything stored.
    pub fn summary(&self) -> Result<Summary> {
        let c = self.conn();
        let mut s = Summary {
            runs: c.query_row("SELECT count(*) FROM runs", [], |r| r.get(0))?,
            incidents: c.query_row("SELECT count(*) FROM incidents", [], |r| r.get(0))?,
            campaigns: c.query_row("SELECT count(*) FROM campaigns", [], |r| r.get(0))?,
            scopes: c.query_row("SELECT count(*) FROM scopes", [], |r| r.get(0))?,
            ..Default::default()
        };
        let mut st = c.prepare("SELECT level, count(*) FROM alerts GROUP BY level")?;
        for row in st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))? {
            let (l, n) = row?;
            if let Some(x) = s.by_level.get_mut(l as usize) {
                *x += n;
            }
            s.alerts += n;
        }
        let mut st = c.prepare("SELECT status, count(*) FROM alerts GROUP BY status")?;
        for row in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (k, n) = row?;
            if let Some(i) = crate::STATUSES.iter().position(|x| *x == k) {
                s.by_status[i] = n;
            }
        }
        (s.first, s.last) = c.query_row(
            "SELECT min(time), max(time) FROM alerts WHERE time != ''",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(s)
    }

    /// One page of alerts matching `f`, in time order, and the number matching.
    pub fn alerts(&self, f: &AlertFilter, page: Page) -> Result<(Vec<AlertRow>, u64)> {
        let (clause, params) = f.sql();
        let total: i64 = self.conn().query_row(
            &format!("SELECT count(*) FROM alerts{clause}"),
            params_from_iter(params.iter()),
            |r| r.get(0),
        )?;
        let size = page.size.clamp(1, 1000);
        let offset = page.number.max(1).saturating_sub(1).saturating_mul(size);
        let mut st = self.conn().prepare(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts{clause} ORDER BY time, key LIMIT {size} OFFSET {offset}"
        ))?;
        let rows = st
            .query_map(params_from_iter(params.iter()), alert_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok((rows, total as u64))
    }

    /// One alert by key.
    pub fn alert(&self, key: &str) -> Result<Option<AlertRow>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE key = ?1"),
                [key],
                alert_row,
            )
            .optional()?)
    }

    /// The latest `limit` alerts (their JSON, time order) from `since` (RFC 3339) on: what a
    /// restarted `watch` joins its new alerts with.
    pub fn alerts_since(&self, since: &str, limit: usize) -> Result<Vec<Value>> {
        let mut st = self.conn().prepare(
            "SELECT json FROM (SELECT json, time, key FROM alerts WHERE time >= ?1 ORDER BY time DESC, key DESC LIMIT ?2) ORDER BY time, key",
        )?;
        let rows = st
            .query_map(rusqlite::params![since, limit as i64], |r| {
                r.get::<_, String>(0)
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows
            .iter()
            .filter_map(|j| serde_json::from_str(j).ok())
            .collect())
    }

    /// Incidents, highest score first.
    pub fn incidents(&self) -> Result<Vec<IncidentRow>> {
        self.groups("incidents")
    }

    /// One incident by id.
    pub fn incident(&self, id: &str) -> Result<Option<IncidentRow>> {
        self.group("incidents", id)
    }

    /// Campaigns, highest score first.
    pub fn campaigns(&self) -> Result<Vec<CampaignRow>> {
        self.groups("campaigns")
    }

    /// One campaign by id.
    pub fn campaign(&self, id: &str) -> Result<Option<CampaignRow>> {
        self.group("campaigns", id)
    }

    fn groups(&self, table: &str) -> Result<Vec<IncidentRow>> {
        let mut st = self.conn().prepare(&format!(
            "SELECT {INCIDENT_COLUMNS} FROM {table} ORDER BY score DESC, first_seen, id"
        ))?;
        let rows = st
            .query_map([], incident_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn group(&self, table: &str, id: &str) -> Result<Option<IncidentRow>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {INCIDENT_COLUMNS} FROM {table} WHERE id = ?1"),
                [id],
                incident_row,
            )
            .optional()?)
    }

    /// Alerts per hour (`YYYY-MM-DDTHH`), in time order.
    pub fn alerts_per_hour(&self) -> Result<Vec<(String, i64)>> {
        let mut st = self.conn().prepare(
            "SELECT substr(time, 1, 13) AS h, count(*) FROM alerts WHERE time != '' GROUP BY h ORDER BY h",
        )?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// (tactic, technique, alerts) over every alert, ordered by tactic then technique.
    pub fn techniques(&self) -> Result<Vec<(String, String, i64)>> {
        let mut st = self
            .conn()
            .prepare("SELECT tactics, techniques FROM alerts WHERE techniques != ''")?;
        let mut counts: std::collections::BTreeMap<(String, String), i64> = Default::default();
        for row in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
            let (tactics, techniques) = row?;
            let tactics = split(tactics);
            let tactics = if tactics.is_empty() {
                vec!["other".to_owned()]
            } else {
                tactics
            };
            for ta in &tactics {
                for te in split(techniques.clone()) {
                    *counts.entry((ta.clone(), te)).or_default() += 1;
                }
            }
        }
        Ok(counts.into_iter().map(|((a, b), n)| (a, b, n)).collect())
    }

    /// The latest scope report, with its run id.
    pub fn latest_scope(&self) -> Result<Option<(i64, Value)>> {
        let row: Option<(i64, String)> = self
            .conn()
            .query_row(
                "SELECT run_id, json FROM scopes ORDER BY run_id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(row.map(|(id, j)| (id, serde_json::from_str(&j).unwrap_or(Value::Null))))
    }

    /// Runs, newest first, as JSON objects.
    pub fn runs(&self) -> Result<Vec<Value>> {
        let mut st = self.conn().prepare(
            "SELECT id, command, started, finished, inputs, ruleset_hash, events, alerts, new_alerts, errors, error_text FROM runs ORDER BY id DESC",
        )?;
        let rows = st
            .query_map([], |r| {
                let inputs: String = r.get(4)?;
                let errors: String = r.get(10)?;
                Ok(json!({
                    "id": r.get::<_, i64>(0)?,
                    "command": r.get::<_, String>(1)?,
                    "started": r.get::<_, String>(2)?,
                    "finished": r.get::<_, String>(3)?,
                    "inputs": serde_json::from_str::<Value>(&inputs).unwrap_or(Value::Null),
                    "ruleset_hash": r.get::<_, String>(5)?,
                    "events": r.get::<_, i64>(6)?,
                    "alerts": r.get::<_, i64>(7)?,
                    "new_alerts": r.get::<_, i64>(8)?,
                    "error_count": r.get::<_, i64>(9)?,
                    "errors": serde_json::from_str::<Value>(&errors).unwrap_or(Value::Null),
                }))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// The triage history of an alert or incident, oldest first: (time, status, comment).
    pub fn history(&self, key: &str) -> Result<Vec<(String, String, String)>> {
        let mut st = self
            .conn()
            .prepare("SELECT at, status, comment FROM triage WHERE key = ?1 ORDER BY id")?;
        let rows = st
            .query_map([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::tests::filled;

    pub fn first_key(s: &Store) -> String {
        let (rows, _) = s
            .alerts(&AlertFilter::default(), Page { number: 1, size: 1 })
            .unwrap();
        rows[0].key.clone()
    }

    #[test]
    fn search_filters_and_pages_in_sql() {
        let (_d, s) = filled();
        let all = |f: AlertFilter| {
            s.alerts(
                &f,
                Page {
                    number: 1,
                    size: 50,
                },
            )
            .unwrap()
        };
        assert_eq!(all(AlertFilter::default()).1, 3);
        let by_host = all(AlertFilter {
            host: Some("WEB-01".into()),
            ..Default::default()
        });
        assert_eq!(by_host.1, 2);
        assert!(by_host.0.iter().all(|r| r.host == "web-01"));
        assert_eq!(
            all(AlertFilter {
                rule: Some("Dum".into()),
                ..Default::default()
            })
            .1,
            1
        );
        assert_eq!(
            all(AlertFilter {
                account: Some("corp\\eve".into()),
                since: Some("2026-03-04T02:00:00Z".into()),
                ..Default::default()
            })
            .1,
            1
        );
        assert_eq!(
            all(AlertFilter {
                technique: Some("t1059".into()),
                ..Default::default()
            })
            .1,
            3
        );
        // A LIKE wildcard in the search is literal.
        assert_eq!(
            all(AlertFilter {
                rule: Some("%".into()),
                ..Default::default()
            })
            .1,
            0
        );
        let (p2, total) = s
            .alerts(&AlertFilter::default(), Page { number: 2, size: 2 })
            .unwrap();
        assert_eq!((p2.len(), total), (1, 3));
        assert_eq!(p2[0].rule_id, "r2");
        let sum = s.summary().unwrap();
        assert_eq!(sum.by_level[3], 3);
        assert_eq!(sum.by_status[0], 3);
        assert_eq!(s.alerts_per_hour().unwrap().len(), 2);
        assert_eq!(
            s.techniques().unwrap(),
            vec![("execution".into(), "T1059.001".into(), 3)]
        );
        assert!(!s.incidents().unwrap().is_empty());
        // Campaigns: one per unrelated intrusion, each with its alerts' keys in its timeline.
        let c = s.campaigns().unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(sum.campaigns, 2);
        let web = c.iter().find(|x| x.hosts == ["web-01"]).unwrap();
        assert_eq!(web.alert_count, 2);
        assert!(web.id.starts_with("cmp-"));
        assert_eq!(web.json["timeline"][1]["key"], web.alert_keys[1].as_str());
        assert_eq!(s.campaign(&web.id).unwrap().unwrap().accounts, ["eve"]);
        assert!(s.campaign("cmp-none").unwrap().is_none());
        let recent = s.alerts_since("2026-03-04T02:00:00Z", 10).unwrap();
        assert_eq!(recent.len(), 2);
        assert!(recent[0]["timestamp"].as_str() < recent[1]["timestamp"].as_str());
        assert_eq!(s.alerts_since("2026-03-04T00:00:00Z", 1).unwrap().len(), 1);
    }
}
