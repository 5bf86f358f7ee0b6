//! The scope report assembled from what the analytics gathered: whose records were read in
//! suspicious sessions (or by the responder's selection), and the outbound transfers from the
//! client hosts of the suspicious accounts.

use cellwarden_event::{Timestamp, format_timestamp, parse_timestamp};
use cellwarden_telecom::exposure::{AccountExposure, Exposure, Tracking, TransferOut};

use crate::core::{DbSetup, Findings};

/// How long after a suspicious account's last statement its hosts' transfers are joined.
pub const EXFIL_JOIN_SECS: i64 = 24 * 3600;

/// The subscriber exposure of a run, with the exfiltration join.
pub fn exposure(findings: &Findings, db: &DbSetup) -> Exposure {
    let mut x = Exposure::build(
        &findings.db,
        &findings.judgement,
        &db.watchlist,
        &db.selection,
    );
    x.exfiltration = exfiltration(&x, &findings.net);
    x.signalling = signalling(&findings.signal, &x);
    x
}

/// The subscribers asked about in the signalling detections' alerts, one entry per
/// subscriber and asking peer, linked to the person of the database exposure when one of
/// the identifiers is the same.
pub fn signalling(alerts: &[cellwarden_event::Alert], x: &Exposure) -> Vec<Tracking> {
    use std::collections::BTreeMap;
    let mut by: BTreeMap<(String, String), Tracking> = BTreeMap::new();
    for a in alerts {
        let ev = &a.event;
        let get = |k: &str| {
            ev.get_str(k)
                .map(|v| v.into_owned())
                .filter(|v| !v.is_empty())
        };
        let imsi = get("tracked_imsi");
        let msisdn = get("tracked_msisdn");
        let Some(who) = imsi.clone().or_else(|| msisdn.clone()) else {
            continue;
        };
        let peer = match get("Channel").as_deref() {
            Some("map") => get("calling_gt"),
            _ => get("origin_realm"),
        }
        .unwrap_or_default();
        let sender = get("src_ip").unwrap_or_default();
        let op = get("operation")
            .or_else(|| get("command_abbreviation"))
            .unwrap_or_default();
        let time = format_timestamp(ev.timestamp);
        let person = x
            .subscribers
            .iter()
            .find(|s| {
                s.identifiers
                    .iter()
                    .any(|i| Some(&i.id) == imsi.as_ref() || Some(&i.id) == msisdn.as_ref())
            })
            .map(|s| s.person.clone());
        let t = by.entry((who, peer.clone())).or_insert_with(|| Tracking {
            imsi: None,
            msisdn: None,
            person,
            by: peer,
            sender: sender.clone(),
            operations: Vec::new(),
            answered: Vec::new(),
            rules: Vec::new(),
            first: time.clone(),
            last: time.clone(),
            file: ev.origin.file.to_string(),
            packet: ev.origin.record,
        });
        t.imsi = t.imsi.take().or(imsi);
        t.msisdn = t.msisdn.take().or(msisdn);
        t.last = time;
        if !t.operations.contains(&op) {
            t.operations.push(op.clone());
            t.answered
                .push(get("answered").unwrap_or_else(|| "unknown".into()));
        }
        if !t.rules.contains(&a.rule.id) {
            t.rules.push(a.rule.id.clone());
        }
    }
    // An entry named by MSISDN and one by IMSI of the same peer are one subscriber when some
    // alert named both.
    let mut out: Vec<Tracking> = Vec::new();
    for t in by.into_values() {
        match out.iter_mut().find(|o| {
            o.by == t.by
                && ((o.imsi.is_some() && o.imsi == t.imsi)
                    || (o.msisdn.is_some() && o.msisdn == t.msisdn))
        }) {
            Some(o) => {
                o.imsi = o.imsi.take().or(t.imsi);
                o.msisdn = o.msisdn.take().or(t.msisdn);
                o.person = o.person.take().or(t.person);
                for (op, ans) in t.operations.into_iter().zip(t.answered) {
                    if !o.operations.contains(&op) {
                        o.operations.push(op);
                        o.answered.push(ans);
                    }
                }
                for r in t.rules {
                    if !o.rules.contains(&r) {
                        o.rules.push(r);
                    }
                }
                o.first = o.first.clone().min(t.first);
                o.last = o.last.clone().max(t.last);
            }
            None => out.push(t),
        }
    }
    out.sort_by(|a, b| {
        (&a.first, &a.by, &a.imsi, &a.msisdn).cmp(&(&b.first, &b.by, &b.imsi, &b.msisdn))
    });
    out
}

/// Outbound transfers from the client hosts of suspicious accounts, from the account's first
/// reason (alert or subscriber read in the report) to [`EXFIL_JOIN_SECS`] after its last
/// activity, by UTC day; accounts with the most subscribers in the report first, then largest
/// first.
pub fn exfiltration(x: &Exposure, flows: &cellwarden_net::FlowAggregates) -> Vec<TransferOut> {
    let mut out = Vec::new();
    let mut accounts: Vec<&AccountExposure> = x.accounts.iter().filter(|a| a.suspicious).collect();
    accounts.sort_by_key(|a| std::cmp::Reverse(a.subscribers));
    for a in accounts {
        let hosts: Vec<std::net::IpAddr> = a
            .client_hosts
            .iter()
            .filter_map(|h| h.parse().ok())
            .collect();
        if hosts.is_empty() {
            continue;
        }
        let first = a
            .reasons
            .iter()
            .filter_map(|r| parse_timestamp(&r.time))
            .chain(
                x.subscribers
                    .iter()
                    .filter(|s| s.accounts.contains(&a.account))
                    .filter_map(|s| parse_timestamp(&s.first_access)),
            )
            .min();
        let (Some(since), Some(last)) = (first, parse_timestamp(&a.last_activity)) else {
            continue;
        };
        let until = Timestamp::from_second(last.as_second() + EXFIL_JOIN_SECS).unwrap_or(last);
        for t in cellwarden_net::transfers_from(flows, &hosts, since, until) {
            out.push(TransferOut {
                account: a.account.clone(),
                src_ip: t.src.to_string(),
                dst_ip: t.dst.to_string(),
                dst_ports: t.ports,
                day: cellwarden_telecom::detect::date_of_day(t.day),
                bytes_out: t.bytes_out,
                flows: t.flows,
                first_time: format_timestamp(Some(t.first.time)),
                file: t.first.file.to_string(),
                line: t.first.record,
            });
        }
    }
    out
}
