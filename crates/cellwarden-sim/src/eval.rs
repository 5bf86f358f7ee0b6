//! Scoring `hunt` and `scope` outputs against a simulation's ground truth.
//!
//! - Subscribers: a target is found when the scope report lists any of its identifiers;
//!   precision counts the listed subscribers that are targets.
//! - Steps: a step is detected by the first alert at or after it (up to 24 hours later, or a
//!   minute before) whose ATT&CK techniques share the step's technique family (`T1003` for
//!   `T1003.001`) and that names the step's host or account; else the first of the technique;
//!   else the first naming the step's host or account; failing that, by the scope
//!   report's evidence of a subscriber read by the step's account in the same window (the
//!   later nights of a collection are reported there, not alerted again).
//! - Benign alerts: alerts that detect no step, per simulated day.
//! - Exfiltration: found when a `cellwarden.net.*` alert or the scope report's
//!   `exfiltration[]` names the flow's source and destination.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

/// Per-step result.
#[derive(Debug, Clone, Serialize)]
pub struct StepScore {
    /// Scenario of the step.
    pub scenario: String,
    /// What the step is.
    pub step: String,
    /// ATT&CK technique id.
    pub technique: String,
    /// When (RFC 3339 UTC).
    pub time: String,
    /// An alert names the step's host or account within its time window.
    pub detected: bool,
    /// Seconds from the step to its first alert.
    pub delay_secs: Option<i64>,
    /// Rule id of the first such alert.
    pub first_alert: Option<String>,
}

/// The whole evaluation.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Score {
    /// Targeted subscribers in the truth.
    pub targets: usize,
    /// Subscribers the scope report lists.
    pub subscribers_reported: usize,
    /// Targets the report lists.
    pub targets_found: usize,
    /// Targets found over targets (none without targets).
    pub recall: Option<f64>,
    /// Targets among the subscribers reported (none without a report).
    pub precision: Option<f64>,
    /// Every attack step.
    pub steps: Vec<StepScore>,
    /// Steps detected.
    pub steps_detected: usize,
    /// Distinct techniques of the steps.
    pub techniques: usize,
    /// Of them, detected.
    pub techniques_detected: usize,
    /// Alerts in the results.
    pub alerts: usize,
    /// Alerts that match no attack step.
    pub benign_alerts: usize,
    /// Benign alerts per simulated day.
    pub benign_alerts_per_day: f64,
    /// Benign alerts of level medium or above.
    pub benign_medium: usize,
    /// Their rules' titles.
    pub benign_medium_rules: BTreeSet<String>,
    /// Exfiltration flows in the truth.
    pub exfiltration_flows: usize,
    /// An alert names an exfiltration flow.
    pub exfiltration_found: bool,
    /// Subscribers tracked over signalling in the truth, per asking peer (scenario
    /// `tracking`).
    pub tracked: usize,
    /// Of them, listed in a scope report's `signalling` (the subscriber by any identifier, the
    /// peer as the asking title or realm or the sending host).
    pub tracked_found: usize,
    /// Entries of the scope reports' `signalling`.
    pub tracked_reported: usize,
    /// Of them, a tracked subscriber and its asker.
    pub tracked_reported_true: usize,
    /// Campaigns scored, when given.
    pub campaigns: Option<CampaignEval>,
    /// Per alert: the scenario it belongs to (it detects a step, or is near one on its host or
    /// account, or names an exfiltration flow), `None` for benign.
    #[serde(skip)]
    pub labels: Vec<Option<String>>,
    /// Per alert: it is the first alert of a step.
    #[serde(skip)]
    pub step_alerts: Vec<bool>,
}

/// Campaigns against the ground truth.
#[derive(Debug, Clone, Serialize, Default)]
pub struct CampaignEval {
    /// Campaigns given.
    pub campaigns: usize,
    /// Per attack scenario: the campaigns holding its steps' alerts.
    pub scenarios: Vec<ScenarioCampaigns>,
    /// Scenarios whose steps' alerts all fall in one campaign, over scenarios with alerts.
    pub completeness: Option<f64>,
    /// Campaigns with alerts of one scenario only and no benign alert, over campaigns.
    pub purity: Option<f64>,
    /// Per campaign: alerts by scenario (`benign` for the rest).
    pub members: Vec<CampaignMembers>,
}

/// Where one scenario's steps landed.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioCampaigns {
    /// Scenario.
    pub scenario: String,
    /// Alerts that detect its steps.
    pub step_alerts: usize,
    /// Of them, in no campaign.
    pub outside: usize,
    /// Campaign ids holding them.
    pub campaigns: BTreeSet<String>,
    /// All in one campaign.
    pub complete: bool,
}

/// What one campaign holds.
#[derive(Debug, Clone, Serialize)]
pub struct CampaignMembers {
    /// Campaign id.
    pub id: String,
    /// Alerts per scenario (`benign` for the rest; `unknown` for alerts not in the alert files).
    pub alerts: std::collections::BTreeMap<String, usize>,
    /// One scenario, nothing benign.
    pub pure: bool,
}

/// Campaign objects (with `kill_chain`) from a `hunt --campaigns` output (JSON Lines or array).
pub fn read_campaigns(text: &str) -> Vec<Value> {
    let items: Vec<Value> = match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => items,
        Ok(v) => vec![v],
        Err(_) => text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .collect(),
    };
    items
        .into_iter()
        .filter(|v| v.get("kill_chain").is_some())
        .collect()
}

/// Completeness (each attack scenario's step alerts in one campaign) and purity (no campaign
/// mixes scenarios or holds a benign alert), with the labels `evaluate` gave the alerts.
pub fn score_campaigns(s: &Score, alerts: &[Value], campaigns: &[Value]) -> CampaignEval {
    let id = |v: &Value| {
        (
            v["rule_id"].as_str().unwrap_or("").to_owned(),
            v["source_file"].as_str().unwrap_or("").to_owned(),
            v["source_record"].as_u64().unwrap_or(0),
        )
    };
    let index: std::collections::HashMap<_, usize> =
        alerts.iter().enumerate().map(|(i, a)| (id(a), i)).collect();
    let mut of_alert: Vec<Option<String>> = vec![None; alerts.len()];
    let mut out = CampaignEval {
        campaigns: campaigns.len(),
        ..Default::default()
    };
    for c in campaigns {
        let cid = c["id"].as_str().unwrap_or("").to_owned();
        let mut counts = std::collections::BTreeMap::new();
        for t in c["timeline"].as_array().into_iter().flatten() {
            let label = match index.get(&id(t)) {
                Some(&i) => {
                    of_alert[i] = Some(cid.clone());
                    s.labels
                        .get(i)
                        .cloned()
                        .flatten()
                        .unwrap_or_else(|| "benign".to_owned())
                }
                None => "unknown".to_owned(),
            };
            *counts.entry(label).or_insert(0usize) += 1;
        }
        let pure =
            counts.len() == 1 && !counts.contains_key("benign") && !counts.contains_key("unknown");
        out.members.push(CampaignMembers {
            id: cid,
            alerts: counts,
            pure,
        });
    }
    let scenarios: BTreeSet<&str> = s.labels.iter().flatten().map(String::as_str).collect();
    for sc in scenarios {
        let steps: Vec<usize> = (0..alerts.len())
            .filter(|&i| s.step_alerts.get(i) == Some(&true) && s.labels[i].as_deref() == Some(sc))
            .collect();
        let held: BTreeSet<String> = steps.iter().filter_map(|&i| of_alert[i].clone()).collect();
        let outside = steps.iter().filter(|&&i| of_alert[i].is_none()).count();
        out.scenarios.push(ScenarioCampaigns {
            scenario: sc.to_owned(),
            step_alerts: steps.len(),
            outside,
            complete: !steps.is_empty() && outside == 0 && held.len() == 1,
            campaigns: held,
        });
    }
    let ratio = |n: usize, d: usize| (d > 0).then(|| n as f64 / d as f64);
    out.completeness = ratio(
        out.scenarios.iter().filter(|x| x.complete).count(),
        out.scenarios.iter().filter(|x| x.step_alerts > 0).count(),
    );
    out.purity = ratio(
        out.members.iter().filter(|m| m.pure).count(),
        out.members.len(),
    );
    out
}

fn family(t: &str) -> &str {
    t.split('.').next().unwrap_or(t)
}

fn time(v: &str) -> Option<i64> {
    v.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

/// Alerts (objects with `rule_id`) and scope reports (objects with `subscribers`) from the
/// result files' contents (JSON Lines, a JSON array, or one JSON object).
pub fn read_results(texts: &[String]) -> (Vec<Value>, Vec<Value>) {
    let mut alerts = Vec::new();
    let mut scopes = Vec::new();
    let mut take = |v: Value| {
        if v.get("subscribers").is_some() {
            scopes.push(v);
        } else if v.get("rule_id").is_some() {
            alerts.push(v);
        }
    };
    for t in texts {
        match serde_json::from_str::<Value>(t) {
            Ok(Value::Array(items)) => items.into_iter().for_each(&mut take),
            Ok(v) => take(v),
            Err(_) => t
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .for_each(&mut take),
        }
    }
    (alerts, scopes)
}

/// Scores results against a ground truth (the parsed `ground-truth.json`).
pub fn evaluate(truth: &Value, alerts: &[Value], scopes: &[Value]) -> Score {
    let mut s = Score::default();
    // Subscribers.
    let targets: Vec<[String; 3]> = truth["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| ["msisdn", "imsi", "imei"].map(|k| t[k].as_str().unwrap_or("").to_owned()))
        .collect();
    // Scored by identifier: every identifier a report entry (a person) says was read; reports
    // without the list name one identifier an entry.
    let reported: BTreeSet<String> = scopes
        .iter()
        .flat_map(|x| x["subscribers"].as_array().into_iter().flatten())
        .flat_map(|x| match x["identifiers"].as_array() {
            Some(ids) => ids
                .iter()
                .filter(|i| i["read"] != false)
                .filter_map(|i| i["id"].as_str().map(String::from))
                .collect::<Vec<_>>(),
            None => x["id"].as_str().map(String::from).into_iter().collect(),
        })
        .collect();
    s.targets = targets.len();
    s.subscribers_reported = reported.len();
    s.targets_found = targets
        .iter()
        .filter(|t| t.iter().any(|id| reported.contains(id)))
        .count();
    let true_reported = reported
        .iter()
        .filter(|id| targets.iter().any(|t| t.contains(id)))
        .count();
    if !scopes.is_empty() {
        s.recall = (s.targets > 0).then(|| s.targets_found as f64 / s.targets as f64);
        s.precision = (s.subscribers_reported > 0)
            .then(|| true_reported as f64 / s.subscribers_reported as f64);
    }
    // Signalling: (subscriber identifiers, asker) pairs.
    let tracked: Vec<(String, String, String)> = truth["signalling"]["tracked"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let f = |k: &str| t[k].as_str().unwrap_or("").to_owned();
            (f("imsi"), f("msisdn"), f("by"))
        })
        .collect();
    let entries: Vec<&Value> = scopes
        .iter()
        .flat_map(|x| x["signalling"].as_array().into_iter().flatten())
        .collect();
    let same = |e: &Value, t: &(String, String, String)| {
        let id = e["imsi"].as_str() == Some(&t.0) || e["msisdn"].as_str() == Some(&t.1);
        id && (e["by"].as_str() == Some(&t.2) || e["sender"].as_str() == Some(&t.2))
    };
    s.tracked = tracked.len();
    s.tracked_found = tracked
        .iter()
        .filter(|t| entries.iter().any(|e| same(e, t)))
        .count();
    s.tracked_reported = entries.len();
    s.tracked_reported_true = entries
        .iter()
        .filter(|e| tracked.iter().any(|t| same(e, t)))
        .count();
    // Steps.
    let mut used = vec![false; alerts.len()];
    let mut labels: Vec<Option<String>> = vec![None; alerts.len()];
    let mut claims: Vec<Option<u8>> = vec![None; alerts.len()];
    let mut families: BTreeSet<String> = BTreeSet::new();
    let mut families_hit: BTreeSet<String> = BTreeSet::new();
    for st in truth["steps"].as_array().into_iter().flatten() {
        let technique = st["technique"].as_str().unwrap_or("").to_owned();
        let t0 = st["time"].as_str().and_then(time).unwrap_or(0);
        let host = st["host"].as_str().unwrap_or("").to_ascii_lowercase();
        let account = st["account"].as_str().unwrap_or("").to_ascii_lowercase();
        families.insert(family(&technique).to_owned());
        let mut best: Option<(u8, i64, usize)> = None;
        for (i, a) in alerts.iter().enumerate() {
            let Some(ta) = a["timestamp"].as_str().and_then(time) else {
                continue;
            };
            if ta < t0 - 60 || ta > t0 + 86_400 {
                continue;
            }
            let by_technique = a["techniques"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .any(|x| family(x) == family(&technique));
            let text = |v: &Value| v.as_str().unwrap_or("").to_ascii_lowercase();
            let names = |needle: &str| {
                !needle.is_empty()
                    && (text(&a["host"]).starts_with(needle)
                        || text(&a["event"]["account"]) == needle
                        || text(&a["event"]["User"]).ends_with(needle))
            };
            // An alert of the step's technique naming its host or account first (with two
            // intrusions at once, the technique alone may be the other's); then one of the
            // technique; then one naming its host or account.
            let named = names(&host) || names(&account);
            let rank = match (by_technique, named) {
                (true, true) => 0,
                (true, false) => 1,
                (false, true) => 2,
                (false, false) => continue,
            };
            if best.is_none_or(|(r, b, _)| (rank, ta) < (r, b)) {
                best = Some((rank, ta, i));
            }
        }
        // An alert two steps claim belongs to the scenario that claims it best.
        if let Some((rank, _, i)) = best
            && claims[i].is_none_or(|r| rank < r)
        {
            claims[i] = Some(rank);
            labels[i] = st["scenario"].as_str().map(str::to_owned);
        }
        let best = best.map(|(_, ta, i)| (ta, i));
        if let Some((_, i)) = best {
            used[i] = true;
        }
        let by_scope = if best.is_none() {
            scope_evidence(scopes, &account, t0)
        } else {
            None
        };
        if best.is_some() || by_scope.is_some() {
            families_hit.insert(family(&technique).to_owned());
        }
        let detected = best.map(|(ta, i)| {
            let a = &alerts[i];
            let title = a["rule_title"]
                .as_str()
                .or_else(|| a["rule_id"].as_str())
                .unwrap_or("");
            (ta, title.to_owned())
        });
        let detected = detected
            .or(by_scope.map(|ta| (ta, format!("scope report: subscriber reads by {account}"))));
        s.steps.push(StepScore {
            scenario: st["scenario"].as_str().unwrap_or("").to_owned(),
            step: st["step"].as_str().unwrap_or("").to_owned(),
            technique,
            time: st["time"].as_str().unwrap_or("").to_owned(),
            detected: detected.is_some(),
            delay_secs: detected.as_ref().map(|(ta, _)| ta - t0),
            first_alert: detected.map(|(_, title)| title),
        });
    }
    s.steps_detected = s.steps.iter().filter(|x| x.detected).count();
    s.techniques = families.len();
    s.techniques_detected = families_hit.len();
    // Alerts that detect no step: mark every alert near a step on its host or account too.
    s.alerts = alerts.len();
    for (i, a) in alerts.iter().enumerate() {
        if used[i] {
            continue;
        }
        let ta = a["timestamp"].as_str().and_then(time).unwrap_or(0);
        let near = truth["steps"].as_array().into_iter().flatten().find(|st| {
            let t0 = st["time"].as_str().and_then(time).unwrap_or(0);
            let host = st["host"].as_str().unwrap_or("").to_ascii_lowercase();
            let account = st["account"].as_str().unwrap_or("").to_ascii_lowercase();
            (t0 - 60..=t0 + 4 * 86_400).contains(&ta)
                && (a["host"]
                    .as_str()
                    .unwrap_or("")
                    .to_ascii_lowercase()
                    .starts_with(&host)
                    || a["event"]["account"]
                        .as_str()
                        .unwrap_or("")
                        .eq_ignore_ascii_case(&account))
        });
        let flow = truth["exfiltration"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| a["event"]["src_ip"] == f["src_ip"] && a["event"]["dst_ip"] == f["dst_ip"]);
        // A signalling alert about a tracked subscriber, or on a host that tracked.
        let ev = &a["event"];
        let tracking = a["rule_id"]
            .as_str()
            .is_some_and(|r| r.starts_with("cellwarden.signal."))
            && tracked.iter().any(|t| {
                (!t.0.is_empty() && ev["tracked_imsi"].as_str() == Some(&t.0))
                    || (!t.1.is_empty() && ev["tracked_msisdn"].as_str() == Some(&t.1))
                    || ev["sender"].as_str() == Some(&t.2)
            });
        labels[i] = near
            .or(flow)
            .and_then(|x| x["scenario"].as_str())
            .map(str::to_owned)
            .or(tracking.then(|| "tracking".to_owned()));
        if near.is_none() && flow.is_none() && !tracking {
            s.benign_alerts += 1;
            if matches!(a["level"].as_str(), Some("medium" | "high" | "critical")) {
                s.benign_medium += 1;
                s.benign_medium_rules.insert(
                    a["rule_title"]
                        .as_str()
                        .or_else(|| a["rule_id"].as_str())
                        .unwrap_or("")
                        .to_owned(),
                );
            }
        }
    }
    s.labels = labels;
    s.step_alerts = used;
    let days = truth["days"].as_u64().unwrap_or(1).max(1);
    s.benign_alerts_per_day = s.benign_alerts as f64 / days as f64;
    // Exfiltration.
    let flows: Vec<(&Value, &Value)> = truth["exfiltration"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| (&f["src_ip"], &f["dst_ip"]))
        .collect();
    s.exfiltration_flows = flows.len();
    s.exfiltration_found = !flows.is_empty()
        && flows.iter().all(|(src, dst)| {
            alerts.iter().any(|a| {
                a["rule_id"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("cellwarden.net.")
                    && a["event"]["src_ip"] == **src
                    && a["event"]["dst_ip"] == **dst
            }) || scopes.iter().any(|x| {
                x["exfiltration"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|e| e["src_ip"] == **src && e["dst_ip"] == **dst)
            })
        });
    s
}

/// Time of the earliest scope evidence of a read by `account` from a minute before `t0` to a
/// day after it.
fn scope_evidence(scopes: &[Value], account: &str, t0: i64) -> Option<i64> {
    if account.is_empty() {
        return None;
    }
    scopes
        .iter()
        .flat_map(|x| x["subscribers"].as_array().into_iter().flatten())
        .flat_map(|x| x["evidence"].as_array().into_iter().flatten())
        .filter(|e| {
            e["account"]
                .as_str()
                .unwrap_or("")
                .eq_ignore_ascii_case(account)
        })
        .filter_map(|e| e["time"].as_str().and_then(time))
        .filter(|t| (t0 - 60..=t0 + 86_400).contains(t))
        .min()
}

/// The score as a table for people.
pub fn table(s: &Score) -> String {
    let mut o = String::new();
    let pct = |x: Option<f64>| x.map_or("-".to_owned(), |v| format!("{:.1}%", 100.0 * v));
    o.push_str(&format!(
        "targeted subscribers: {} of {} found (recall {}), {} reported (precision {})\n",
        s.targets_found,
        s.targets,
        pct(s.recall),
        s.subscribers_reported,
        pct(s.precision)
    ));
    if s.tracked > 0 || s.tracked_reported > 0 {
        o.push_str(&format!(
            "tracked over signalling: {} of {} (subscriber, asker) found, {} reported ({} true)\n",
            s.tracked_found, s.tracked, s.tracked_reported, s.tracked_reported_true
        ));
    }
    o.push_str(&format!(
        "attack steps: {} of {} detected; techniques {} of {}\n",
        s.steps_detected,
        s.steps.len(),
        s.techniques_detected,
        s.techniques
    ));
    for st in &s.steps {
        o.push_str(&format!(
            "  {:<9} {:<11} {:<46} {}\n",
            st.scenario,
            st.technique,
            st.step,
            match (&st.first_alert, st.delay_secs) {
                (Some(a), Some(d)) => format!("after {d} s: {a}"),
                _ => "not detected".to_owned(),
            }
        ));
    }
    o.push_str(&format!(
        "alerts: {} in all, {} unrelated to the attack ({:.1} a day), {} of them medium or above{}\n",
        s.alerts,
        s.benign_alerts,
        s.benign_alerts_per_day,
        s.benign_medium,
        if s.benign_medium_rules.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                s.benign_medium_rules
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        }
    ));
    if let Some(c) = &s.campaigns {
        o.push_str(&format!(
            "campaigns: {}, completeness {}, purity {}\n",
            c.campaigns,
            pct(c.completeness),
            pct(c.purity)
        ));
        for x in &c.scenarios {
            o.push_str(&format!(
                "  {:<10} {} step alert(s) in {} campaign(s), {} in none{}\n",
                x.scenario,
                x.step_alerts,
                x.campaigns.len(),
                x.outside,
                if x.complete { "" } else { "  INCOMPLETE" }
            ));
        }
        for m in c.members.iter().filter(|m| !m.pure) {
            o.push_str(&format!("  {} mixes {:?}\n", m.id, m.alerts));
        }
    }
    o.push_str(&format!(
        "exfiltration: {} flow(s), {}\n",
        s.exfiltration_flows,
        if s.exfiltration_flows == 0 {
            "none to find"
        } else if s.exfiltration_found {
            "found"
        } else {
            "not found"
        }
    ));
    o
}
