//! Incidents to campaigns: one intrusion, however long, as one story.
//!
//! Incidents (alerts an hour apart on one entity) join into a campaign across days and weeks
//! when they share what belongs to one actor:
//! - an account, or an outside address, within `window` (30 days);
//! - a host that a move leads from (a logon from it, a database session from it, a transfer
//!   from it), within `window`: that host is the actor's foothold;
//! - any other host only within `host_gap` (6 hours): a host runs everyone's work, and an
//!   alert on it a day later is as likely someone else's.
//!
//! Hubs join nothing by themselves: hosts whose asset role everyone touches (domain
//! controllers, DNS, monitoring, backup), built-in accounts, and any entity seen with more than
//! `hub_degree` distinct counterparts (a host with many accounts, an account on many hosts, an
//! outside address many hosts talk to). They are still listed in the campaigns they belong to.
//!
//! A group of incidents is a campaign when one of its alerts is `min_level` (high) or above,
//! or when medium alerts of two rules or more stand in it; a lone medium alert stays an
//! incident to triage.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cellwarden_event::{Alert, Level, Timestamp, format_timestamp};

use crate::entity::{AlertEntities, MoveKind, Place, Resolver, entities_of, hubs};
use crate::{Incident, KILL_CHAIN, find, fnv};

/// Thresholds of the joining (documented in `docs/campaigns.md`).
#[derive(Debug, Clone)]
pub struct CampaignConfig {
    /// Longest time between two alerts joined by an account, outside address or foothold.
    pub window_secs: i64,
    /// Longest time between two alerts joined only by the host they were logged on.
    pub host_gap_secs: i64,
    /// Counterparts past which an entity is a hub.
    pub hub_degree: usize,
    /// Level that makes a group of incidents a campaign on its own.
    pub min_level: Level,
}

impl Default for CampaignConfig {
    fn default() -> Self {
        CampaignConfig {
            window_secs: 30 * 86_400,
            host_gap_secs: 6 * 3600,
            hub_degree: 8,
            min_level: Level::High,
        }
    }
}

/// A tactic of the kill chain with its first alert.
#[derive(Debug, Clone)]
pub struct Stage {
    /// ATT&CK tactic.
    pub tactic: String,
    /// First alert of it.
    pub first: Option<Timestamp>,
    /// That alert's rule title.
    pub rule: String,
    /// That alert's host.
    pub host: Option<String>,
}

/// A host of a campaign.
#[derive(Debug, Clone)]
pub struct CampaignHost {
    /// Canonical name.
    pub name: String,
    /// Asset role.
    pub role: Option<String>,
    /// First and last alert naming it.
    pub first: Option<Timestamp>,
    /// Last alert naming it.
    pub last: Option<Timestamp>,
    /// Alerts naming it.
    pub alerts: usize,
    /// A hub (joins nothing by itself).
    pub hub: bool,
}

/// A move between places.
#[derive(Debug, Clone)]
pub struct Move {
    /// From (host or outside address).
    pub from: String,
    /// To.
    pub to: String,
    /// `logon`, `db-session`, `connection`, `transfer`, or `account` (the same account seen next
    /// on another host).
    pub kind: &'static str,
    /// First time.
    pub time: Option<Timestamp>,
    /// Account, when one is known.
    pub account: Option<String>,
}

/// An account of a campaign.
#[derive(Debug, Clone)]
pub struct CampaignAccount {
    /// Canonical name.
    pub name: String,
    /// Hosts it was seen on, in order of first use.
    pub hosts: Vec<String>,
    /// First alert naming it.
    pub first: Option<Timestamp>,
    /// Last alert naming it.
    pub last: Option<Timestamp>,
    /// A hub (joins nothing by itself).
    pub hub: bool,
}

/// Data sent to one outside address.
#[derive(Debug, Clone)]
pub struct Exfiltration {
    /// Outside address.
    pub destination: String,
    /// Internal host it came from.
    pub from: Option<String>,
    /// Bytes the flow alerts counted.
    pub bytes: u64,
    /// First alert.
    pub first: Option<Timestamp>,
}

/// Subscriber data an account of the campaign read (filled from the scope report).
#[derive(Debug, Clone, Default)]
pub struct DataTouched {
    /// People (or lone identifiers) whose records the campaign's accounts read from its hosts.
    pub subscribers: usize,
    /// Record types read.
    pub record_types: Vec<String>,
    /// The `scope` selection that lists them.
    pub scope_command: String,
}

/// One campaign.
#[derive(Debug, Clone)]
pub struct Campaign {
    /// Stable: derived from its first alert's key.
    pub id: String,
    /// 0–100: highest level (critical 60, high 45, medium 25, lower 10), plus breadth: tactics
    /// (+4 each, up to 16), hosts (+3 each, up to 9), subscriber data read (+10), data sent
    /// outside (+5).
    pub score: u32,
    /// Highest level.
    pub level: Level,
    /// First alert.
    pub first_seen: Option<Timestamp>,
    /// Last alert.
    pub last_seen: Option<Timestamp>,
    /// The first alert: where and how it began.
    pub entry: usize,
    /// Tactics in kill-chain order, each with its first alert.
    pub kill_chain: Vec<Stage>,
    /// Hosts, by first alert.
    pub hosts: Vec<CampaignHost>,
    /// Moves between hosts and to the outside, by time.
    pub moves: Vec<Move>,
    /// Accounts, by first alert.
    pub accounts: Vec<CampaignAccount>,
    /// Outside addresses named.
    pub outside: Vec<String>,
    /// Data sent outside, by destination.
    pub exfiltration: Vec<Exfiltration>,
    /// Subscriber data read.
    pub data: DataTouched,
    /// ATT&CK techniques.
    pub techniques: Vec<String>,
    /// Process chains seen.
    pub processes: Vec<String>,
    /// Its incidents' ids.
    pub incidents: Vec<String>,
    /// Indexes into the alert slice, in time order.
    pub alerts: Vec<usize>,
    /// The entities of each of those alerts.
    pub entities: Vec<AlertEntities>,
}

fn base(l: Level) -> u32 {
    match l {
        Level::Critical => 60,
        Level::High => 45,
        Level::Medium => 25,
        _ => 10,
    }
}

fn place_name(p: &Place) -> String {
    match p {
        Place::Host(h) | Place::Outside(h) => h.clone(),
        Place::Database(d) => format!("database {d}"),
    }
}

/// Joins incidents into campaigns (see the module documentation). `alerts` in output order,
/// `incidents` built from them.
pub fn build(
    alerts: &[Alert],
    incidents: &[Incident],
    resolver: &Resolver,
    config: &CampaignConfig,
) -> Vec<Campaign> {
    let ents = entities_of(alerts, resolver);
    let hub = hubs(&ents, config.hub_degree);
    build_from(alerts, &ents, &hub, incidents, resolver, config)
}

/// [`build`] with the alerts' entities and hubs already found.
pub(crate) fn build_from(
    alerts: &[Alert],
    ents: &[AlertEntities],
    hub: &BTreeSet<(&'static str, String)>,
    incidents: &[Incident],
    resolver: &Resolver,
    config: &CampaignConfig,
) -> Vec<Campaign> {
    let mut of_alert = vec![usize::MAX; alerts.len()];
    for (k, inc) in incidents.iter().enumerate() {
        for &i in &inc.alerts {
            of_alert[i] = k;
        }
    }
    let mut parent: Vec<usize> = (0..incidents.len()).collect();
    // Entity → (incident, time) last seen; strong entities join over the window.
    // Entity → (incident, time, a foothold then or since) at its last sighting.
    let mut last: HashMap<(u8, &str), (usize, i64, bool)> = HashMap::new();
    let mut order: Vec<usize> = (0..alerts.len()).collect();
    order.sort_by_key(|&i| (alerts[i].event.timestamp, i));
    for &i in &order {
        let k = of_alert[i];
        if k == usize::MAX {
            continue;
        }
        let t = alerts[i].event.timestamp.map_or(0, |t| t.as_second());
        let e = &ents[i];
        let footholds: BTreeSet<&str> = e
            .edges
            .iter()
            .filter_map(|x| match &x.from {
                Place::Host(h) => Some(h.as_str()),
                _ => None,
            })
            .collect();
        // (kind, name, a foothold now, longest gap to the last sighting when neither is one).
        let mut keys: Vec<(u8, &str, bool, Option<i64>)> = Vec::new();
        let here = e
            .hosts
            .iter()
            .map(String::as_str)
            .filter(|h| !footholds.contains(h));
        for h in here.chain(footholds.iter().copied()) {
            if hub.contains(&("host", h.to_owned())) {
                continue;
            }
            // Hosts everyone uses (by role) join only as footholds.
            let gap = (!resolver.hub_role(h)).then_some(config.host_gap_secs);
            keys.push((0, h, footholds.contains(h), gap));
        }
        for a in &e.accounts {
            if !hub.contains(&("account", a.clone())) {
                keys.push((1, a, false, Some(config.window_secs)));
            }
        }
        for o in &e.outside {
            if !hub.contains(&("outside", o.clone())) {
                keys.push((2, o, false, Some(config.window_secs)));
            }
        }
        for (kind, name, foothold, gap) in keys {
            let mut keep = foothold;
            if let Some(&(j, tj, was)) = last.get(&(kind, name)) {
                let limit = if foothold || was {
                    Some(config.window_secs)
                } else {
                    gap
                };
                if limit.is_some_and(|g| t - tj <= g) {
                    let (ri, rj) = (find(&mut parent, k), find(&mut parent, j));
                    if ri != rj {
                        let (lo, hi) = if ri < rj { (ri, rj) } else { (rj, ri) };
                        parent[hi] = lo;
                    }
                }
                // A foothold stays one for the window: later alerts on it join.
                keep |= was && t - tj <= config.window_secs;
            }
            last.insert((kind, name), (k, t, keep));
        }
    }
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for k in 0..incidents.len() {
        let r = find(&mut parent, k);
        groups.entry(r).or_default().push(k);
    }
    let mut out: Vec<Campaign> = groups
        .into_values()
        .filter_map(|members| assemble(alerts, incidents, &members, ents, hub, resolver, config))
        .collect();
    out.sort_by(|a, b| {
        b.score
            .cmp(&a.score)
            .then(a.first_seen.cmp(&b.first_seen))
            .then(a.id.cmp(&b.id))
    });
    out
}

fn assemble(
    alerts: &[Alert],
    incidents: &[Incident],
    members: &[usize],
    ents: &[AlertEntities],
    hub: &BTreeSet<(&'static str, String)>,
    resolver: &Resolver,
    config: &CampaignConfig,
) -> Option<Campaign> {
    let mut idx: Vec<usize> = members
        .iter()
        .flat_map(|&k| incidents[k].alerts.iter().copied())
        .collect();
    idx.sort_by_key(|&i| (alerts[i].event.timestamp, i));
    let level = idx.iter().map(|&i| alerts[i].level).max()?;
    let medium_rules: BTreeSet<&str> = idx
        .iter()
        .filter(|&&i| alerts[i].level >= Level::Medium)
        .map(|&i| alerts[i].rule.id.as_str())
        .collect();
    if level < config.min_level && medium_rules.len() < 2 {
        return None;
    }
    let time = |i: usize| alerts[i].event.timestamp;
    let mut stages: BTreeMap<usize, Stage> = BTreeMap::new();
    let mut hosts: BTreeMap<String, CampaignHost> = BTreeMap::new();
    let mut accounts: BTreeMap<String, CampaignAccount> = BTreeMap::new();
    let mut moves: BTreeMap<(String, String, &'static str), Move> = BTreeMap::new();
    let mut exfil: BTreeMap<String, Exfiltration> = BTreeMap::new();
    let mut outside = BTreeSet::new();
    let mut techniques = BTreeSet::new();
    let mut processes = BTreeSet::new();
    for &i in &idx {
        let a = &alerts[i];
        let e = &ents[i];
        let t = time(i);
        for tac in &a.rule.tactics {
            if let Some(pos) = KILL_CHAIN.iter().position(|k| k == tac) {
                stages.entry(pos).or_insert_with(|| Stage {
                    tactic: tac.clone(),
                    first: t,
                    rule: a.rule.title.clone(),
                    host: e.hosts.first().cloned(),
                });
            }
        }
        techniques.extend(a.rule.techniques.iter().cloned());
        if let Some(p) = &e.process {
            processes.insert(p.clone());
        }
        for h in &e.hosts {
            let x = hosts.entry(h.clone()).or_insert_with(|| CampaignHost {
                name: h.clone(),
                role: resolver.role(h).map(str::to_owned),
                first: t,
                last: t,
                alerts: 0,
                hub: hub.contains(&("host", h.clone())) || resolver.hub_role(h),
            });
            x.alerts += 1;
            x.last = x.last.max(t);
        }
        for acc in e.accounts.iter().chain(&e.logon_accounts) {
            let x = accounts
                .entry(acc.clone())
                .or_insert_with(|| CampaignAccount {
                    name: acc.clone(),
                    hosts: Vec::new(),
                    first: t,
                    last: t,
                    hub: hub.contains(&("account", acc.clone())),
                });
            x.last = x.last.max(t);
            for h in &e.hosts {
                if !x.hosts.contains(h) {
                    x.hosts.push(h.clone());
                }
            }
        }
        outside.extend(e.outside.iter().cloned());
        for edge in &e.edges {
            let (from, to) = (place_name(&edge.from), place_name(&edge.to));
            moves
                .entry((from.clone(), to.clone(), edge.kind.as_str()))
                .or_insert_with(|| Move {
                    from: from.clone(),
                    to: to.clone(),
                    kind: edge.kind.as_str(),
                    time: t,
                    account: e.accounts.first().cloned(),
                });
            if edge.kind == MoveKind::Transfer {
                let x = exfil.entry(to.clone()).or_insert_with(|| Exfiltration {
                    destination: to.clone(),
                    from: Some(from.clone()),
                    bytes: 0,
                    first: t,
                });
                x.bytes += e.bytes_out;
            }
        }
    }
    // The same account next seen on another host: a move the logs did not show directly.
    // Hubs are left out: an account created on a domain controller did not move from it.
    for acc in accounts.values().filter(|a| !a.hub) {
        let path: Vec<String> = acc
            .hosts
            .iter()
            .filter(|h| !hub.contains(&("host", (*h).clone())) && !resolver.hub_role(h))
            .cloned()
            .collect();
        for w in path.windows(2) {
            let shown = moves
                .keys()
                .any(|(f, t, _)| (f == &w[0] && t == &w[1]) || (f == &w[1] && t == &w[0]));
            if !shown {
                let first_on = idx
                    .iter()
                    .find(|&&i| {
                        ents[i].hosts.contains(&w[1]) && ents[i].accounts.contains(&acc.name)
                    })
                    .and_then(|&i| time(i));
                moves
                    .entry((w[0].clone(), w[1].clone(), "account"))
                    .or_insert_with(|| Move {
                        from: w[0].clone(),
                        to: w[1].clone(),
                        kind: "account",
                        time: first_on,
                        account: Some(acc.name.clone()),
                    });
            }
        }
    }
    let mut hosts: Vec<CampaignHost> = hosts.into_values().collect();
    hosts.sort_by(|a, b| a.first.cmp(&b.first).then(a.name.cmp(&b.name)));
    let mut accounts: Vec<CampaignAccount> = accounts.into_values().collect();
    accounts.sort_by(|a, b| a.first.cmp(&b.first).then(a.name.cmp(&b.name)));
    let mut moves: Vec<Move> = moves.into_values().collect();
    moves.sort_by(|a, b| {
        a.time
            .cmp(&b.time)
            .then(a.from.cmp(&b.from))
            .then(a.to.cmp(&b.to))
    });
    let kill_chain: Vec<Stage> = stages.into_values().collect();
    let exfiltration: Vec<Exfiltration> = exfil.into_values().collect();
    let breadth = |n: usize, per: u32, cap: u32| (n.saturating_sub(1) as u32 * per).min(cap);
    let real_hosts = hosts.iter().filter(|h| !h.hub).count();
    let score = base(level)
        + breadth(kill_chain.len(), 4, 16)
        + breadth(real_hosts, 3, 9)
        + if exfiltration.is_empty() { 0 } else { 5 };
    let first = idx[0];
    let mut inc_ids: Vec<String> = members.iter().map(|&k| incidents[k].id.clone()).collect();
    inc_ids.sort();
    Some(Campaign {
        id: format!("CMP-{:08x}", fnv(&alerts[first].key())),
        score: score.min(100),
        level,
        first_seen: time(first),
        last_seen: idx.iter().filter_map(|&i| time(i)).max(),
        entry: first,
        kill_chain,
        hosts,
        moves,
        accounts,
        outside: outside.into_iter().collect(),
        exfiltration,
        data: DataTouched::default(),
        techniques: techniques.into_iter().collect(),
        processes: processes.into_iter().collect(),
        incidents: inc_ids,
        entities: idx.iter().map(|&i| ents[i].clone()).collect(),
        alerts: idx,
    })
}

impl Campaign {
    /// Records the subscriber data its accounts read (from the scope report); adds to the score.
    pub fn set_data(&mut self, data: DataTouched) {
        if data.subscribers > 0 && self.data.subscribers == 0 {
            self.score = (self.score + 10).min(100);
        }
        self.data = data;
    }

    /// Accounts that join activity (not hubs).
    pub fn actor_accounts(&self) -> impl Iterator<Item = &str> {
        self.accounts
            .iter()
            .filter(|a| !a.hub)
            .map(|a| a.name.as_str())
    }

    /// The story in one line: entry, tactics, hosts, data, destinations.
    pub fn summary(&self, alerts: &[Alert]) -> String {
        let entry = &alerts[self.entry];
        let mut s = format!(
            "entered on {} ({})",
            self.hosts
                .first()
                .map_or("an unknown host", |h| h.name.as_str()),
            entry.rule.title
        );
        let hosts: Vec<&str> = self.hosts.iter().map(|h| h.name.as_str()).collect();
        if hosts.len() > 1 {
            s.push_str(&format!(", reached {}", hosts[1..].join(", ")));
        }
        let accs: Vec<&str> = self.actor_accounts().collect();
        if !accs.is_empty() {
            s.push_str(&format!(" as {}", accs.join(", ")));
        }
        if self.data.subscribers > 0 {
            s.push_str(&format!(
                ", read the records of {} subscriber(s)",
                self.data.subscribers
            ));
        }
        if !self.exfiltration.is_empty() {
            let total: u64 = self.exfiltration.iter().map(|x| x.bytes).sum();
            let dests: Vec<&str> = self
                .exfiltration
                .iter()
                .map(|x| x.destination.as_str())
                .collect();
            s.push_str(&format!(
                ", sent {} to {}",
                cellwarden_analytics::stats::human_bytes(total),
                dests.join(", ")
            ));
        }
        s
    }
}

/// The JSON object for one campaign, with its timeline.
pub fn campaign_json(c: &Campaign, alerts: &[Alert]) -> serde_json::Value {
    let ts = |t: Option<Timestamp>| format_timestamp(t);
    let entry = &alerts[c.entry];
    serde_json::json!({
        "id": c.id,
        "score": c.score,
        "level": c.level.as_str(),
        "first_seen": ts(c.first_seen),
        "last_seen": ts(c.last_seen),
        "summary": c.summary(alerts),
        "entry": {
            "time": entry.event.timestamp_rfc3339(),
            "host": c.hosts.first().map(|h| h.name.as_str()),
            "rule_id": entry.rule.id,
            "rule_title": entry.rule.title,
        },
        "kill_chain": c.kill_chain.iter().map(|s| serde_json::json!({
            "tactic": s.tactic, "first": ts(s.first), "rule_title": s.rule, "host": s.host,
        })).collect::<Vec<_>>(),
        "hosts": c.hosts.iter().map(|h| serde_json::json!({
            "name": h.name, "role": h.role, "first": ts(h.first), "last": ts(h.last),
            "alerts": h.alerts, "hub": h.hub,
        })).collect::<Vec<_>>(),
        "moves": c.moves.iter().map(|m| serde_json::json!({
            "from": m.from, "to": m.to, "kind": m.kind, "time": ts(m.time), "account": m.account,
        })).collect::<Vec<_>>(),
        "accounts": c.accounts.iter().map(|a| serde_json::json!({
            "name": a.name, "hosts": a.hosts, "first": ts(a.first), "last": ts(a.last), "hub": a.hub,
        })).collect::<Vec<_>>(),
        "outside": c.outside,
        "exfiltration": c.exfiltration.iter().map(|x| serde_json::json!({
            "destination": x.destination, "from": x.from, "bytes": x.bytes, "first": ts(x.first),
        })).collect::<Vec<_>>(),
        "exfiltration_bytes": c.exfiltration.iter().map(|x| x.bytes).sum::<u64>(),
        "data": {
            "subscribers": c.data.subscribers,
            "record_types": c.data.record_types,
            "scope_command": c.data.scope_command,
        },
        "techniques": c.techniques,
        "processes": c.processes,
        "incidents": c.incidents,
        "alert_count": c.alerts.len(),
        "timeline": c.alerts.iter().zip(&c.entities).map(|(&i, e)| {
            let mut t = crate::timeline_entry(&alerts[i]);
            t["hosts"] = serde_json::json!(e.hosts);
            t["accounts"] = serde_json::json!(e.accounts.iter().chain(&e.logon_accounts).collect::<Vec<_>>());
            t["moves"] = e.edges.iter().map(|x| serde_json::json!({
                "from": place_name(&x.from), "to": place_name(&x.to), "kind": x.kind.as_str(),
            })).collect();
            t
        }).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::KnownHost;
    use cellwarden_event::{Event, Origin, RuleInfo, Value};
    use std::borrow::Cow;
    use std::sync::Arc;

    fn alert(
        sec: i64,
        rule: &str,
        host: Option<&str>,
        fields: &[(&'static str, &str)],
        tactic: &str,
        level: Level,
    ) -> Alert {
        let mut e = Event::new(Origin {
            file: "f".into(),
            record: sec as u64,
        });
        e.timestamp = Some(Timestamp::from_second(1_700_000_000 + sec).unwrap());
        e.host = host.map(|h| Cow::Owned(h.to_owned()));
        for (k, v) in fields {
            e.push(*k, Value::Str(Cow::Owned(v.to_string())));
        }
        Alert {
            rule: Arc::new(RuleInfo {
                id: rule.to_owned(),
                title: format!("rule {rule}"),
                tactics: vec![tactic.to_owned()],
                techniques: vec!["T1003".into()],
                ..Default::default()
            }),
            level,
            event: e,
            correlation: None,
        }
    }

    const DAY: i64 = 86_400;

    fn resolver() -> Resolver {
        Resolver::new(
            &[
                KnownHost {
                    name: "jump-01".into(),
                    addresses: vec!["10.20.0.5".parse().unwrap()],
                    role: Some("jump".into()),
                    aliases: Vec::new(),
                },
                KnownHost {
                    name: "dc-01".into(),
                    addresses: vec!["10.0.0.2".parse().unwrap()],
                    role: Some("dc".into()),
                    aliases: Vec::new(),
                },
            ],
            &[],
        )
    }

    /// Web shell → credential dump → new account on the DC → database reads from the jump
    /// host → staging → exfiltration, over five days: one campaign. An insider elsewhere:
    /// another. A benign medium alert on a host the intruder reaches a day later, and a
    /// low alert on the domain controller hours later sharing nothing: in none.
    #[test]
    fn one_intrusion_over_days_is_one_campaign() {
        let alerts = vec![
            alert(
                0,
                "webshell",
                Some("web-01.corp.example"),
                &[("User", "IIS APPPOOL\\portal")],
                "persistence",
                Level::High,
            ),
            alert(
                600,
                "lsass",
                Some("web-01.corp.example"),
                &[("User", "CORP\\adm_paul")],
                "credential-access",
                Level::Critical,
            ),
            alert(
                DAY / 2,
                "psexec",
                Some("bill-db-01.corp.example"),
                &[],
                "execution",
                Level::Medium,
            ),
            alert(
                DAY + 100,
                "wmi",
                Some("bill-db-01.corp.example"),
                &[("User", "CORP\\adm_paul")],
                "lateral-movement",
                Level::High,
            ),
            alert(
                DAY + 200,
                "newadmin",
                Some("dc-01.corp.example"),
                &[
                    ("SubjectUserName", "adm_paul"),
                    ("TargetUserName", "svc_bkp3"),
                ],
                "persistence",
                Level::High,
            ),
            alert(
                DAY + 3 * 3600,
                "dc-noise",
                Some("dc-01.corp.example"),
                &[],
                "discovery",
                Level::Low,
            ),
            alert(
                2 * DAY,
                "cellwarden.db.targeted_lookup",
                None,
                &[("account", "svc_bkp3"), ("client_host", "10.20.0.5")],
                "collection",
                Level::High,
            ),
            alert(
                4 * DAY,
                "rar",
                Some("JUMP-01.corp.example"),
                &[("User", "CORP\\svc_bkp3")],
                "collection",
                Level::High,
            ),
            alert(
                4 * DAY + 600,
                "cellwarden.net.chunked_transfer",
                Some("10.20.0.5"),
                &[
                    ("src_ip", "10.20.0.5"),
                    ("dst_ip", "203.0.113.66"),
                    ("bytes_out", "4000000000"),
                ],
                "exfiltration",
                Level::High,
            ),
            alert(
                DAY / 2 + 3600,
                "cellwarden.db.watchlist_access",
                None,
                &[("account", "care07"), ("client_host", "10.1.0.26")],
                "collection",
                Level::High,
            ),
            alert(
                3 * DAY,
                "cellwarden.db.watchlist_access",
                None,
                &[("account", "care07"), ("client_host", "10.1.0.26")],
                "collection",
                Level::High,
            ),
        ];
        let r = resolver();
        let incidents = crate::build_with(&alerts, 3600, &r, crate::HUB_DEGREE);
        let c = build(&alerts, &incidents, &r, &CampaignConfig::default());
        assert_eq!(c.len(), 2, "{c:#?}");
        let rules = |c: &Campaign| -> Vec<&str> {
            c.alerts
                .iter()
                .map(|&i| alerts[i].rule.id.as_str())
                .collect()
        };
        let big = c.iter().find(|c| c.alerts.contains(&0)).unwrap();
        assert_eq!(
            rules(big),
            [
                "webshell",
                "lsass",
                "wmi",
                "newadmin",
                "cellwarden.db.targeted_lookup",
                "rar",
                "cellwarden.net.chunked_transfer"
            ]
        );
        let names: Vec<&str> = big.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["web-01", "bill-db-01", "dc-01", "jump-01"]);
        assert!(big.hosts[2].hub);
        assert_eq!(
            big.actor_accounts().collect::<Vec<_>>(),
            ["portal", "adm_paul", "svc_bkp3"]
        );
        assert_eq!(big.exfiltration[0].destination, "203.0.113.66");
        assert_eq!(big.exfiltration[0].bytes, 4_000_000_000);
        assert_eq!(big.kill_chain[0].tactic, "persistence");
        assert_eq!(big.kill_chain.last().unwrap().tactic, "exfiltration");
        assert!(
            big.moves
                .iter()
                .any(|m| m.from == "web-01" && m.to == "bill-db-01" && m.kind == "account")
        );
        assert!(
            big.moves
                .iter()
                .any(|m| m.from == "jump-01" && m.to == "203.0.113.66" && m.kind == "transfer")
        );
        let insider = c.iter().find(|c| !c.alerts.contains(&0)).unwrap();
        assert_eq!(rules(insider), ["cellwarden.db.watchlist_access"; 2]);
        // Same input, same ids; JSON has the timeline.
        let again = build(&alerts, &incidents, &r, &CampaignConfig::default());
        assert_eq!(again[0].id, c[0].id);
        let j = campaign_json(big, &alerts);
        assert_eq!(j["timeline"].as_array().unwrap().len(), 7);
        assert_eq!(j["exfiltration_bytes"], 4_000_000_000u64);
        assert!(
            j["summary"]
                .as_str()
                .unwrap()
                .starts_with("entered on web-01")
        );
    }

    #[test]
    fn a_lone_medium_alert_is_no_campaign() {
        let alerts = vec![alert(
            0,
            "psexec",
            Some("db"),
            &[],
            "execution",
            Level::Medium,
        )];
        let incidents = crate::build(&alerts, 3600);
        assert!(build(&alerts, &incidents, &resolver(), &CampaignConfig::default()).is_empty());
    }

    /// An account on more hosts than the hub degree joins nothing: two intrusions that both
    /// used it stay apart.
    #[test]
    fn hubs_do_not_glue() {
        let mut alerts = Vec::new();
        for h in 0..10 {
            alerts.push(alert(
                h * 10,
                "scan",
                Some(&format!("h{h}")),
                &[("User", "svc_monitor")],
                "discovery",
                Level::Low,
            ));
        }
        alerts.push(alert(
            DAY,
            "a",
            Some("x1"),
            &[("User", "svc_monitor"), ("TargetUserName", "eve")],
            "execution",
            Level::High,
        ));
        alerts.push(alert(
            3 * DAY,
            "b",
            Some("x2"),
            &[("User", "svc_monitor"), ("TargetUserName", "mallory")],
            "execution",
            Level::High,
        ));
        let incidents = crate::build(&alerts, 3600);
        let c = build(&alerts, &incidents, &resolver(), &CampaignConfig::default());
        assert_eq!(c.len(), 2, "{c:#?}");
    }
}
