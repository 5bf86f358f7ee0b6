//! The case store: what hunts and scopes found, and what analysts decided about it, in one
//! SQLite file (WAL mode, one writer, schema versioned by `PRAGMA user_version`).
//!
//! - `runs`: one row per `hunt` or `scope` with `--store` (inputs, rule-set hash, counts,
//!   errors);
//! - `alerts`: one row per stable alert key (rule id, canonical source file, record), so a
//!   re-run over the same inputs updates rows instead of adding them; the alert's JSON as
//!   `hunt` writes it, searchable columns beside it, and the triage status and comment;
//! - `incidents`: by incident id (derived from its first alert), with triage status;
//! - `campaigns`: incidents joined into one intrusion each, by id (derived from the first
//!   alert), with triage status;
//! - `scopes`: each scope report (JSON) by run;
//! - `triage`: every status change, with time and comment (the audit trail).

mod export;
mod query;

use std::path::Path;

use cellwarden_event::Alert;
use cellwarden_incident::{Campaign, Incident};
use rusqlite::{Connection, OptionalExtension, params};

pub use export::{ExportFormat, export};
pub use query::{AlertFilter, AlertRow, CampaignRow, IncidentRow, Page, Summary};

/// Why the case store could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused a statement.
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored JSON value does not parse.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// The file could not be read or written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The store's schema is newer than this program's.
    #[error("the store was written by a newer cellwarden (schema {found}, this one knows {known})")]
    TooNew {
        /// Schema version of the store.
        found: i64,
        /// Newest schema version this program knows.
        known: i64,
    },
    /// Stored data that cannot be right.
    #[error("{0}")]
    Invalid(String),
}

/// Results of store operations.
pub type Result<T> = std::result::Result<T, StoreError>;

/// Schema migrations, applied in order; `user_version` counts the applied ones.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    command TEXT NOT NULL,
    started TEXT NOT NULL,
    finished TEXT NOT NULL,
    inputs TEXT NOT NULL,
    ruleset_hash TEXT NOT NULL,
    events INTEGER NOT NULL,
    alerts INTEGER NOT NULL,
    new_alerts INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    error_text TEXT NOT NULL
);
CREATE TABLE alerts (
    key TEXT PRIMARY KEY,
    rule_id TEXT NOT NULL,
    rule_title TEXT NOT NULL,
    level INTEGER NOT NULL,
    time TEXT NOT NULL,
    host TEXT NOT NULL,
    account TEXT NOT NULL,
    techniques TEXT NOT NULL,
    tactics TEXT NOT NULL,
    source_file TEXT NOT NULL,
    source_record INTEGER NOT NULL,
    json TEXT NOT NULL,
    first_run INTEGER NOT NULL REFERENCES runs(id),
    last_run INTEGER NOT NULL REFERENCES runs(id),
    status TEXT NOT NULL DEFAULT 'new',
    comment TEXT NOT NULL DEFAULT '',
    status_time TEXT
);
CREATE INDEX alerts_time ON alerts(time, key);
CREATE INDEX alerts_rule ON alerts(rule_id);
CREATE INDEX alerts_host ON alerts(host);
CREATE INDEX alerts_account ON alerts(account);
CREATE INDEX alerts_level ON alerts(level);
CREATE TABLE incidents (
    id TEXT PRIMARY KEY,
    score INTEGER NOT NULL,
    level INTEGER NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    hosts TEXT NOT NULL,
    accounts TEXT NOT NULL,
    tactics TEXT NOT NULL,
    alert_count INTEGER NOT NULL,
    json TEXT NOT NULL,
    alert_keys TEXT NOT NULL,
    last_run INTEGER NOT NULL REFERENCES runs(id),
    status TEXT NOT NULL DEFAULT 'new',
    comment TEXT NOT NULL DEFAULT '',
    status_time TEXT
);
CREATE TABLE scopes (run_id INTEGER PRIMARY KEY REFERENCES runs(id), json TEXT NOT NULL);
CREATE TABLE triage (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    status TEXT NOT NULL,
    comment TEXT NOT NULL
);
"#,
    r#"
CREATE TABLE campaigns (
    id TEXT PRIMARY KEY,
    score INTEGER NOT NULL,
    level INTEGER NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    hosts TEXT NOT NULL,
    accounts TEXT NOT NULL,
    tactics TEXT NOT NULL,
    alert_count INTEGER NOT NULL,
    json TEXT NOT NULL,
    alert_keys TEXT NOT NULL,
    last_run INTEGER NOT NULL REFERENCES runs(id),
    status TEXT NOT NULL DEFAULT 'new',
    comment TEXT NOT NULL DEFAULT '',
    status_time TEXT
);
"#,
];

/// Triage states an analyst can set.
pub const STATUSES: [&str; 3] = ["new", "confirmed", "false_positive"];

/// What a run was: recorded in `runs`.
#[derive(Debug, Clone, Default)]
pub struct RunInfo {
    /// `hunt`, `scope` or `watch`.
    pub command: String,
    /// When it started (RFC 3339 UTC).
    pub started: String,
    /// Input paths as given.
    pub inputs: Vec<String>,
    /// Hash of the rule files' names and texts.
    pub ruleset_hash: String,
    /// Events read.
    pub events: u64,
    /// Input errors, as reported.
    pub errors: Vec<String>,
}

/// What recording a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// Id of the run in `runs`.
    pub run: i64,
    /// Alerts recorded.
    pub alerts: usize,
    /// Of them, not in the store before.
    pub new_alerts: usize,
    /// Incidents recorded.
    pub incidents: usize,
    /// Campaigns recorded.
    pub campaigns: usize,
}

/// A case store: one SQLite file (WAL) with runs, alerts, incidents, scope reports and triage.
pub struct Store {
    conn: Connection,
}

fn now() -> String {
    cellwarden_event::format_timestamp(Some(jiff::Timestamp::now()))
}

/// The alert's key with its source file made absolute (when it names a file that exists), so
/// the same inputs given by another path give the same key.
pub fn stable_key(a: &Alert) -> String {
    key_in(a, &canonical(&a.event.origin.file))
}

/// The key of `a` with its source file given as `file` (already canonical).
fn key_in(a: &Alert, file: &str) -> String {
    format!("{}:{}:{}", a.rule.id, file, a.event.origin.record)
}

fn canonical(file: &str) -> String {
    std::fs::canonicalize(file)
        .ok()
        .and_then(|p| p.to_str().map(str::to_owned))
        .unwrap_or_else(|| file.to_owned())
}

/// SHA-256 over (name, text) pairs in name order, hex: identifies a rule set.
pub fn content_hash<'a>(parts: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    use sha2::{Digest, Sha256};
    let mut v: Vec<(&str, &str)> = parts.collect();
    v.sort();
    let mut h = Sha256::new();
    for (n, t) in v {
        h.update((n.len() as u64).to_le_bytes());
        h.update(n.as_bytes());
        h.update((t.len() as u64).to_le_bytes());
        h.update(t.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn level_num(l: cellwarden_event::Level) -> i64 {
    use cellwarden_event::Level::*;
    match l {
        Informational => 0,
        Low => 1,
        Medium => 2,
        High => 3,
        Critical => 4,
    }
}

/// Level names by number (as stored).
pub const LEVELS: [&str; 5] = ["informational", "low", "medium", "high", "critical"];

impl Store {
    /// Opens (creating if needed) and migrates the store at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let mut s = Store { conn };
        s.migrate()?;
        Ok(s)
    }

    fn migrate(&mut self) -> Result<()> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew {
                found: version,
                known,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// The schema version the store is at.
    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    /// A value kept in `meta`, created by `make` the first time it is asked for.
    pub fn meta_or_insert(&mut self, key: &str, make: impl FnOnce() -> String) -> Result<String> {
        if let Some(v) = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?
        {
            return Ok(v);
        }
        let v = make();
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?1, ?2)",
            params![key, v],
        )?;
        Ok(v)
    }

    fn insert_run(tx: &rusqlite::Transaction<'_>, run: &RunInfo, alerts: usize) -> Result<i64> {
        tx.execute(
            "INSERT INTO runs(command, started, finished, inputs, ruleset_hash, events, alerts, new_alerts, errors, error_text)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8, ?9)",
            params![
                run.command,
                run.started,
                now(),
                serde_json::to_string(&run.inputs)?,
                run.ruleset_hash,
                run.events as i64,
                alerts as i64,
                run.errors.len() as i64,
                serde_json::to_string(&run.errors)?,
            ],
        )?;
        Ok(tx.last_insert_rowid())
    }

    /// Records a hunt: the run, its alerts (upserted by stable key; triage kept), its
    /// incidents and campaigns, in one transaction.
    pub fn record_hunt(
        &mut self,
        run: &RunInfo,
        alerts: &[Alert],
        incidents: &[Incident],
        campaigns: &[Campaign],
    ) -> Result<Recorded> {
        self.record_batch(run, alerts, alerts, incidents, campaigns, None)
    }

    /// Records one batch of a live run: its new `alerts`, and the incidents and campaigns
    /// built over `recent` (the alerts still in the joining window; they index into it). With
    /// `window_start`, incidents and campaigns that began since then and were not rebuilt (they
    /// merged into others) are removed unless an analyst triaged them.
    pub fn record_batch(
        &mut self,
        run: &RunInfo,
        alerts: &[Alert],
        recent: &[Alert],
        incidents: &[Incident],
        campaigns: &[Campaign],
        window_start: Option<&str>,
    ) -> Result<Recorded> {
        let tx = self.conn.transaction()?;
        let run_id = Self::insert_run(&tx, run, alerts.len())?;
        let mut new_alerts = 0;
        let mut keys = Vec::with_capacity(alerts.len());
        {
            let mut exists = tx.prepare_cached("SELECT 1 FROM alerts WHERE key = ?1")?;
            let mut upsert = tx.prepare_cached(
                "INSERT INTO alerts(key, rule_id, rule_title, level, time, host, account, techniques, tactics, source_file, source_record, json, first_run, last_run)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13)
                 ON CONFLICT(key) DO UPDATE SET last_run = excluded.last_run, json = excluded.json,
                     level = excluded.level, time = excluded.time, host = excluded.host, account = excluded.account",
            )?;
            // One path lookup per file, not per alert.
            let mut files: std::collections::HashMap<&str, String> = Default::default();
            for a in alerts {
                let file: &str = &a.event.origin.file;
                let file = files.entry(file).or_insert_with(|| canonical(file)).clone();
                let key = key_in(a, &file);
                if !exists.exists([&key])? {
                    new_alerts += 1;
                }
                let account = cellwarden_incident::entities(a)
                    .into_iter()
                    .find(|(k, _)| *k == "account")
                    .map(|(_, v)| v)
                    .unwrap_or_default();
                let mut json = cellwarden_report::alert_json(a);
                json["key"] = serde_json::Value::String(key.clone());
                upsert.execute(params![
                    key,
                    a.rule.id,
                    a.rule.title,
                    level_num(a.level),
                    a.event.timestamp_rfc3339(),
                    a.event.host.as_deref().unwrap_or(""),
                    account,
                    a.rule.techniques.join(","),
                    a.rule.tactics.join(","),
                    file,
                    a.event.origin.record as i64,
                    json.to_string(),
                    run_id,
                ])?;
                keys.push(key);
            }
            let same = std::ptr::eq(alerts, recent);
            let recent_keys: Vec<String> = if same {
                Vec::new()
            } else {
                recent
                    .iter()
                    .map(|a| {
                        let file: &str = &a.event.origin.file;
                        let file = files.entry(file).or_insert_with(|| canonical(file)).clone();
                        key_in(a, &file)
                    })
                    .collect()
            };
            let keys = if same { &keys } else { &recent_keys };
            let alerts = recent;
            // Incidents and campaigns: named after their first alert's stable key, as they are
            // in `hunt`'s output, but path-proof; their timelines carry the alerts' keys.
            let groups = incidents
                .iter()
                .map(|i| {
                    let json = cellwarden_incident::incident_json(i, alerts);
                    let rank = (i.score, i.level);
                    (
                        "incidents",
                        "inc",
                        json,
                        &i.alerts,
                        i.hosts.clone(),
                        i.accounts.clone(),
                        rank,
                    )
                })
                .chain(campaigns.iter().map(|c| {
                    let json = cellwarden_incident::campaign_json(c, alerts);
                    let hosts = c.hosts.iter().map(|h| h.name.clone()).collect();
                    let accounts = c.accounts.iter().map(|a| a.name.clone()).collect();
                    (
                        "campaigns",
                        "cmp",
                        json,
                        &c.alerts,
                        hosts,
                        accounts,
                        (c.score, c.level),
                    )
                }));
            for (table, prefix, mut json, members, hosts, accounts, (score, level)) in groups {
                let group_keys: Vec<&str> = members.iter().map(|&k| keys[k].as_str()).collect();
                let first = group_keys.first().copied().unwrap_or("");
                let id = format!(
                    "{prefix}-{}",
                    &content_hash([("", first)].into_iter())[..16]
                );
                json["id"] = serde_json::Value::String(id.clone());
                if let Some(t) = json["timeline"].as_array_mut() {
                    for (e, k) in t.iter_mut().zip(&group_keys) {
                        e["key"] = serde_json::Value::String((*k).to_owned());
                    }
                }
                let tactics: Vec<&str> = match json["tactics"].as_array() {
                    Some(t) => t.iter().filter_map(|x| x.as_str()).collect(),
                    None => json["kill_chain"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|x| x["tactic"].as_str())
                        .collect(),
                };
                tx.prepare_cached(&format!(
                    "INSERT INTO {table}(id, score, level, first_seen, last_seen, hosts, accounts, tactics, alert_count, json, alert_keys, last_run)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                     ON CONFLICT(id) DO UPDATE SET score = excluded.score, level = excluded.level,
                         first_seen = excluded.first_seen, last_seen = excluded.last_seen, hosts = excluded.hosts,
                         accounts = excluded.accounts, tactics = excluded.tactics, alert_count = excluded.alert_count,
                         json = excluded.json, alert_keys = excluded.alert_keys, last_run = excluded.last_run"
                ))?
                .execute(params![
                    id,
                    score,
                    level_num(level),
                    json["first_seen"].as_str().unwrap_or(""),
                    json["last_seen"].as_str().unwrap_or(""),
                    hosts.join(","),
                    accounts.join(","),
                    tactics.join(","),
                    members.len() as i64,
                    json.to_string(),
                    serde_json::to_string(&group_keys)?,
                    run_id,
                ])?;
            }
        }
        if let Some(since) = window_start {
            for table in ["incidents", "campaigns"] {
                tx.execute(
                    &format!(
                        "DELETE FROM {table} WHERE status = 'new' AND comment = '' AND first_seen >= ?1 AND last_run != ?2"
                    ),
                    params![since, run_id],
                )?;
            }
        }
        tx.execute(
            "UPDATE runs SET new_alerts = ?1 WHERE id = ?2",
            params![new_alerts as i64, run_id],
        )?;
        tx.commit()?;
        Ok(Recorded {
            run: run_id,
            alerts: alerts.len(),
            new_alerts,
            incidents: incidents.len(),
            campaigns: campaigns.len(),
        })
    }

    /// Records a scope run and its report (the JSON `scope` writes).
    pub fn record_scope(&mut self, run: &RunInfo, report: &serde_json::Value) -> Result<i64> {
        let tx = self.conn.transaction()?;
        let alerts = report["accounts"].as_array().map_or(0, |a| {
            a.iter()
                .map(|x| x["reasons"].as_array().map_or(0, Vec::len))
                .sum()
        });
        let run_id = Self::insert_run(&tx, run, alerts)?;
        tx.execute(
            "INSERT INTO scopes(run_id, json) VALUES (?1, ?2)",
            params![run_id, report.to_string()],
        )?;
        tx.commit()?;
        Ok(run_id)
    }

    /// Sets the triage status of an alert (`kind` "alert"), incident ("incident") or campaign
    /// ("campaign"), and records the change. False when there is no such item.
    pub fn set_status(
        &mut self,
        kind: &str,
        key: &str,
        status: &str,
        comment: &str,
    ) -> Result<bool> {
        if !STATUSES.contains(&status) {
            return Err(StoreError::Invalid(format!(
                "unknown status '{status}' (one of {})",
                STATUSES.join(", ")
            )));
        }
        let table = match kind {
            "alert" => {
                "UPDATE alerts SET status = ?1, comment = ?2, status_time = ?3 WHERE key = ?4"
            }
            "incident" => {
                "UPDATE incidents SET status = ?1, comment = ?2, status_time = ?3 WHERE id = ?4"
            }
            "campaign" => {
                "UPDATE campaigns SET status = ?1, comment = ?2, status_time = ?3 WHERE id = ?4"
            }
            _ => return Err(StoreError::Invalid(format!("unknown kind '{kind}'"))),
        };
        let at = now();
        let tx = self.conn.transaction()?;
        let n = tx.execute(table, params![status, comment, at, key])?;
        if n > 0 {
            tx.execute(
                "INSERT INTO triage(at, kind, key, status, comment) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![at, kind, key, status, comment],
            )?;
        }
        tx.commit()?;
        Ok(n > 0)
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Arc;

    use cellwarden_event::{Event, Level, Origin, RuleInfo, Value};

    pub fn alert(rule: &str, title: &str, t: &str, host: &str, user: &str, rec: u64) -> Alert {
        let mut e = Event::new(Origin {
            file: Arc::from("/no/such/dir/events.jsonl"),
            record: rec,
        });
        e.timestamp = cellwarden_event::parse_timestamp(t);
        e.host = Some(host.to_owned().into());
        e.push("User", Value::Str(user.to_owned().into()));
        e.push(
            "CommandLine",
            Value::Str("<script>alert(1)</script>".into()),
        );
        Alert {
            rule: Arc::new(RuleInfo::builtin(
                rule,
                title,
                "",
                &["attack.execution", "attack.t1059.001"],
                "test",
            )),
            level: Level::High,
            event: e,
            correlation: None,
        }
    }

    /// Two shell alerts on one web server, a dump on a database server.
    fn three_alerts() -> Vec<Alert> {
        vec![
            alert(
                "r1",
                "Shell",
                "2026-03-04T01:00:00Z",
                "web-01",
                "CORP\\eve",
                1,
            ),
            alert(
                "r1",
                "Shell",
                "2026-03-04T02:30:00Z",
                "web-01",
                "CORP\\eve",
                2,
            ),
            alert(
                "r2",
                "Dump",
                "2026-03-04T02:40:00Z",
                "db-01",
                "CORP\\bob",
                3,
            ),
        ]
    }

    pub fn filled() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("case.db")).unwrap();
        let alerts = three_alerts();
        let incidents = cellwarden_incident::build(&alerts, 3600);
        let campaigns = cellwarden_incident::campaign::build(
            &alerts,
            &incidents,
            &Default::default(),
            &Default::default(),
        );
        let run = RunInfo {
            command: "hunt".into(),
            inputs: vec!["events.jsonl".into()],
            ..Default::default()
        };
        s.record_hunt(&run, &alerts, &incidents, &campaigns)
            .unwrap();
        (dir, s)
    }

    #[test]
    fn a_rerun_updates_instead_of_duplicating_and_keeps_triage() {
        let (_d, mut s) = filled();
        let key = query::tests::first_key(&s);
        assert!(
            s.set_status("alert", &key, "confirmed", "seen on the host")
                .unwrap()
        );
        let mut alerts = three_alerts();
        alerts.push(alert(
            "r3",
            "New",
            "2026-03-05T02:40:00Z",
            "db-01",
            "CORP\\bob",
            9,
        ));
        let r = s
            .record_hunt(&RunInfo::default(), &alerts, &[], &[])
            .unwrap();
        assert_eq!((r.alerts, r.new_alerts), (4, 1));
        let sum = s.summary().unwrap();
        assert_eq!(sum.alerts, 4);
        assert_eq!(sum.runs, 2);
        let row = s.alert(&key).unwrap().unwrap();
        assert_eq!(
            (row.status.as_str(), row.comment.as_str()),
            ("confirmed", "seen on the host")
        );
        assert!(s.set_status("alert", &key, "bogus", "").is_err());
        assert!(!s.set_status("alert", "no-such-key", "new", "").unwrap());
    }

    #[test]
    fn migrations_are_versioned_and_a_newer_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("case.db");
        let s = Store::open(&p).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
        s.conn.pragma_update(None, "user_version", 99).unwrap();
        drop(s);
        assert!(matches!(
            Store::open(&p),
            Err(StoreError::TooNew { found: 99, .. })
        ));
    }
}
