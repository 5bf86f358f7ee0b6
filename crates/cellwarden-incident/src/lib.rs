//! Alerts to entities, incidents and campaigns.
//!
//! [`entity`] gives every host and account one name whatever each source calls it and reads
//! each alert's entities (hosts, accounts, outside peers, moves, process chain) by the kind of
//! its source. Incidents: alerts taken in time order and joined when they share an entity and
//! are no more than `gap` apart (transitively, union-find), so a chain host A → account → host B
//! becomes one incident; built-in and machine accounts, loopback addresses and hubs join
//! nothing. [`campaign`] joins incidents across days and weeks into one story per intrusion.

pub mod campaign;
pub mod entity;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cellwarden_event::{Alert, Level, Timestamp, format_timestamp};

pub use campaign::{Campaign, CampaignConfig, campaign_json};
pub use entity::{ACCOUNT_FIELDS, Aliases, KnownHost, Resolver};

/// Counterparts past which an entity is a hub (see [`entity::hubs`]).
pub const HUB_DEGREE: usize = 8;

/// ATT&CK tactics in kill-chain order.
pub const KILL_CHAIN: [&str; 14] = [
    "reconnaissance",
    "resource-development",
    "initial-access",
    "execution",
    "persistence",
    "privilege-escalation",
    "defense-evasion",
    "credential-access",
    "discovery",
    "lateral-movement",
    "collection",
    "command-and-control",
    "exfiltration",
    "impact",
];

/// One incident: alerts joined by shared entities.
#[derive(Debug, Clone)]
pub struct Incident {
    /// Stable: derived from the first alert's key.
    pub id: String,
    /// 0–100: the highest alert level (critical 70, high 50, medium 30, low 15, info 5), plus
    /// breadth: distinct rules (+3 each, up to 10), tactics (+5, up to 15), hosts (+5, up to 10).
    pub score: u32,
    /// Highest level of its alerts.
    pub level: Level,
    /// First alert time.
    pub first_seen: Option<Timestamp>,
    /// Last alert time.
    pub last_seen: Option<Timestamp>,
    /// Hosts involved.
    pub hosts: Vec<String>,
    /// Accounts involved.
    pub accounts: Vec<String>,
    /// Network addresses involved.
    pub addresses: Vec<String>,
    /// In kill-chain order.
    pub tactics: Vec<String>,
    /// ATT&CK technique ids.
    pub techniques: Vec<String>,
    /// Indexes into the alert slice, in time order.
    pub alerts: Vec<usize>,
}

pub(crate) fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// Entities of one alert: ("host"|"account"|"address", value), resolved without an asset
/// file (see [`entity::alert_entities`]).
pub fn entities(a: &Alert) -> Vec<(&'static str, String)> {
    flat(&entity::alert_entities(a, &Resolver::default()))
}

fn flat(e: &entity::AlertEntities) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    out.extend(e.hosts.iter().map(|h| ("host", h.clone())));
    out.extend(e.accounts.iter().map(|h| ("account", h.clone())));
    out.extend(e.outside.iter().map(|h| ("address", h.clone())));
    for x in &e.edges {
        for p in [&x.from, &x.to] {
            if let entity::Place::Host(h) = p
                && !e.hosts.contains(h)
            {
                out.push(("host", h.clone()));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Base score of an incident by its highest alert level.
fn base(l: Level) -> u32 {
    match l {
        Level::Critical => 70,
        Level::High => 50,
        Level::Medium => 30,
        Level::Low => 15,
        Level::Informational => 5,
    }
}

/// Joins alerts (in output order: time, file, record, rule) into incidents. `gap_secs` is the
/// longest quiet time between two alerts of one entity that still joins them. Hosts are
/// named as the alerts name them; [`build_with`] resolves them through an asset file.
pub fn build(alerts: &[Alert], gap_secs: i64) -> Vec<Incident> {
    build_with(alerts, gap_secs, &Resolver::default(), HUB_DEGREE)
}

/// [`build`] with entities resolved by `resolver`; hubs (see [`entity::hubs`]) join nothing.
pub fn build_with(
    alerts: &[Alert],
    gap_secs: i64,
    resolver: &Resolver,
    hub_degree: usize,
) -> Vec<Incident> {
    let resolved = entity::entities_of(alerts, resolver);
    let hubs = entity::hubs(&resolved, hub_degree);
    incidents_of(alerts, &resolved, &hubs, gap_secs)
}

/// Incidents and campaigns of `alerts`, their entities read and their hubs found once for
/// both (the incidents' hubs by `config.hub_degree`).
pub fn build_story(
    alerts: &[Alert],
    gap_secs: i64,
    resolver: &Resolver,
    config: &CampaignConfig,
) -> (Vec<Incident>, Vec<Campaign>) {
    let resolved = entity::entities_of(alerts, resolver);
    let hubs = entity::hubs(&resolved, config.hub_degree);
    let incidents = incidents_of(alerts, &resolved, &hubs, gap_secs);
    let campaigns = campaign::build_from(alerts, &resolved, &hubs, &incidents, resolver, config);
    (incidents, campaigns)
}

fn incidents_of(
    alerts: &[Alert],
    resolved: &[entity::AlertEntities],
    hubs: &BTreeSet<(&'static str, String)>,
    gap_secs: i64,
) -> Vec<Incident> {
    let n = alerts.len();
    let mut parent: Vec<usize> = (0..n).collect();
    let mut last: HashMap<(&'static str, String), (usize, i64)> = HashMap::new();
    let mut ents = Vec::with_capacity(n);
    for (i, a) in alerts.iter().enumerate() {
        let t = a.event.timestamp.map(|t| t.as_second()).unwrap_or(0);
        let e = flat(&resolved[i]);
        for key in &e {
            let kind = match key.0 {
                "address" => "outside",
                k => k,
            };
            if hubs.contains(&(kind, key.1.clone())) {
                continue;
            }
            if let Some(&(j, tj)) = last.get(key)
                && t - tj <= gap_secs
            {
                let (ri, rj) = (find(&mut parent, i), find(&mut parent, j));
                if ri != rj {
                    // The earlier alert stays the root: ids stay stable.
                    let (lo, hi) = if ri < rj { (ri, rj) } else { (rj, ri) };
                    parent[hi] = lo;
                }
            }
            last.insert(key.clone(), (i, t));
        }
        ents.push(e);
    }
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..n {
        let r = find(&mut parent, i);
        groups.entry(r).or_default().push(i);
    }
    let mut out: Vec<Incident> = groups
        .into_values()
        .map(|members| {
            let mut hosts = BTreeSet::new();
            let mut accounts = BTreeSet::new();
            let mut addresses = BTreeSet::new();
            let mut tactics = BTreeSet::new();
            let mut techniques = BTreeSet::new();
            let mut level = Level::Informational;
            let mut rules = BTreeSet::new();
            for &i in &members {
                for (k, v) in &ents[i] {
                    match *k {
                        "host" => hosts.insert(v.clone()),
                        "account" => accounts.insert(v.clone()),
                        _ => addresses.insert(v.clone()),
                    };
                }
                let a = &alerts[i];
                tactics.extend(a.rule.tactics.iter().cloned());
                techniques.extend(a.rule.techniques.iter().cloned());
                rules.insert(a.rule.id.as_str());
                level = level.max(a.level);
            }
            // Highest level, then breadth: more distinct rules, tactics and hosts.
            let breadth =
                |n: usize, per: u32, cap: u32| (n.saturating_sub(1) as u32 * per).min(cap);
            let score = base(level)
                + breadth(rules.len(), 3, 10)
                + breadth(tactics.len(), 5, 15)
                + breadth(hosts.len(), 5, 10);
            let mut tactics: Vec<String> = tactics.into_iter().collect();
            tactics.sort_by_key(|t| KILL_CHAIN.iter().position(|k| k == t).unwrap_or(99));
            let first = &alerts[members[0]];
            Incident {
                id: format!("INC-{:08x}", fnv(&first.key())),
                score: score.min(100),
                level,
                first_seen: first.event.timestamp,
                last_seen: members
                    .iter()
                    .filter_map(|&i| alerts[i].event.timestamp)
                    .max(),
                hosts: hosts.into_iter().collect(),
                accounts: accounts.into_iter().collect(),
                addresses: addresses.into_iter().collect(),
                tactics,
                techniques: techniques.into_iter().collect(),
                alerts: members,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.score
            .cmp(&a.score)
            .then(a.first_seen.cmp(&b.first_seen))
            .then(a.id.cmp(&b.id))
    });
    out
}

pub(crate) fn fnv(s: &str) -> u32 {
    let mut h: u32 = 0x811c9dc5;
    for b in s.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    h
}

/// The JSON object for one incident, with its timeline.
pub fn incident_json(inc: &Incident, alerts: &[Alert]) -> serde_json::Value {
    serde_json::json!({
        "id": inc.id,
        "score": inc.score,
        "level": inc.level.as_str(),
        "first_seen": format_timestamp(inc.first_seen),
        "last_seen": format_timestamp(inc.last_seen),
        "hosts": inc.hosts,
        "accounts": inc.accounts,
        "addresses": inc.addresses,
        "tactics": inc.tactics,
        "techniques": inc.techniques,
        "alert_count": inc.alerts.len(),
        "timeline": inc.alerts.iter().map(|&i| timeline_entry(&alerts[i])).collect::<Vec<_>>(),
    })
}

/// One alert in a timeline: what, when, where, who, and where it was read.
pub fn timeline_entry(a: &Alert) -> serde_json::Value {
    let e = entity::alert_entities(a, &Resolver::default());
    serde_json::json!({
        "timestamp": a.event.timestamp_rfc3339(),
        "rule_id": a.rule.id,
        "rule_title": a.rule.title,
        "level": a.level.as_str(),
        "host": a.event.host.as_deref(),
        "accounts": e.accounts,
        "process": e.process,
        "tactics": a.rule.tactics,
        "techniques": a.rule.techniques,
        "source_file": &*a.event.origin.file,
        "source_record": a.event.origin.record,
    })
}

/// An ATT&CK Navigator layer (format 4.5): every technique seen, scored by its alert count.
pub fn attack_layer<A: cellwarden_event::AlertSource + ?Sized>(
    alerts: &A,
) -> std::io::Result<serde_json::Value> {
    let mut counts: BTreeMap<String, (u64, BTreeSet<String>)> = BTreeMap::new();
    alerts.try_each(&mut |a| {
        for t in &a.rule.techniques {
            let e = counts.entry(t.clone()).or_default();
            e.0 += 1;
            if !e.1.contains(&a.rule.title) {
                e.1.insert(a.rule.title.clone());
            }
        }
        Ok(())
    })?;
    let max = counts.values().map(|(n, _)| *n).max().unwrap_or(1);
    Ok(serde_json::json!({
        "name": "cellwarden hunt",
        "versions": {"layer": "4.5", "navigator": "5.1.0"},
        "domain": "enterprise-attack",
        "description": "Techniques named by the rules that raised alerts; score = number of alerts.",
        "sorting": 3,
        "gradient": {"colors": ["#ffe766", "#ff6666"], "minValue": 1, "maxValue": max},
        "techniques": counts.iter().map(|(t, (n, rules))| serde_json::json!({
            "techniqueID": t,
            "score": n,
            "comment": rules.iter().map(String::as_str).collect::<Vec<_>>().join("; "),
            "enabled": true,
        })).collect::<Vec<_>>(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cellwarden_event::{Event, Origin, RuleInfo, Value};
    use std::borrow::Cow;
    use std::sync::Arc;

    fn alert(
        sec: i64,
        host: &str,
        fields: &[(&'static str, &str)],
        tactic: &str,
        level: Level,
    ) -> Alert {
        let mut e = Event::new(Origin {
            file: "f".into(),
            record: sec as u64,
        });
        e.timestamp = Some(Timestamp::from_second(1_700_000_000 + sec).unwrap());
        e.host = Some(Cow::Owned(host.to_owned()));
        for (k, v) in fields {
            e.push(*k, Value::Str(Cow::Owned(v.to_string())));
        }
        Alert {
            rule: Arc::new(RuleInfo {
                id: format!("r{sec}"),
                title: format!("rule {sec}"),
                tactics: vec![tactic.to_owned()],
                techniques: vec!["T1003.001".into()],
                ..Default::default()
            }),
            level,
            event: e,
            correlation: None,
        }
    }

    #[test]
    fn lateral_movement_chain_is_one_incident() {
        let alerts = vec![
            alert(
                0,
                "web01",
                &[("User", "IIS APPPOOL\\portal")],
                "persistence",
                Level::High,
            ),
            alert(
                60,
                "web01",
                &[("SubjectUserName", "svc_backup")],
                "credential-access",
                Level::Critical,
            ),
            alert(
                600,
                "bill-db",
                &[("TargetUserName", "svc_backup"), ("IpAddress", "10.1.1.5")],
                "lateral-movement",
                Level::High,
            ),
            alert(700, "other", &[("User", "SYSTEM")], "execution", Level::Low),
            alert(90_000, "web01", &[], "execution", Level::Low),
        ];
        let inc = build(&alerts, 3600);
        assert_eq!(inc.len(), 3);
        let big = &inc[0];
        assert_eq!(big.alerts, vec![0, 1, 2]);
        assert_eq!(big.hosts, vec!["bill-db", "web01"]);
        assert_eq!(
            big.tactics,
            vec!["persistence", "credential-access", "lateral-movement"]
        );
        assert_eq!(big.level, Level::Critical);
        assert!(big.accounts.contains(&"svc_backup".to_string()));
        assert!(
            !inc.iter()
                .any(|i| i.accounts.contains(&"system".to_string()))
        );
        // Same input, same ids.
        assert_eq!(build(&alerts, 3600)[0].id, big.id);
        let layer = attack_layer(&alerts).unwrap();
        assert_eq!(layer["techniques"][0]["techniqueID"], "T1003.001");
        assert_eq!(layer["techniques"][0]["score"], 5);
        let j = incident_json(big, &alerts);
        assert_eq!(j["timeline"].as_array().unwrap().len(), 3);
    }
}
