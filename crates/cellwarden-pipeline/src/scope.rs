//! The scope report assembled from what the analytics gathered: whose records were read in
//! suspicious sessions (or by the responder's selection), and the outbound transfers from the
//! client hosts of the suspicious accounts.

use std::net::IpAddr;

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
        let person = x.person_of(imsi.as_ref(), msisdn.as_ref());
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
    join(x, &|hosts, since, until| {
        cellwarden_net::transfers_from(flows, hosts, since, until)
            .into_iter()
            .map(transfer_out)
            .collect()
    })
}

/// A transfer as the report shows it (its account not set yet).
fn transfer_out(t: cellwarden_net::Transfer) -> TransferOut {
    TransferOut {
        account: String::new(),
        src_ip: t.src.to_string(),
        dst_ip: t.dst.to_string(),
        dst_ports: t.ports,
        day: cellwarden_telecom::detect::date_of_day(t.day),
        bytes_out: t.bytes_out,
        flows: t.flows,
        first_time: format_timestamp(Some(t.first.time)),
        file: t.first.file.to_string(),
        line: t.first.record,
    }
}

/// The transfers from some hosts between two times, largest first.
type TransfersOf<'a> = &'a dyn Fn(&[IpAddr], Timestamp, Timestamp) -> Vec<TransferOut>;

/// [`exfiltration`] with the transfers from `transfers`.
fn join(x: &Exposure, transfers: TransfersOf<'_>) -> Vec<TransferOut> {
    let mut out = Vec::new();
    let mut accounts: Vec<&AccountExposure> = x.accounts.iter().filter(|a| a.suspicious).collect();
    accounts.sort_by_key(|a| std::cmp::Reverse(a.subscribers));
    for a in accounts {
        let hosts: Vec<IpAddr> = a
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
        for mut t in transfers(&hosts, since, until) {
            t.account = a.account.clone();
            out.push(t);
        }
    }
    out
}

/// What a partition of a partitioned run shares of the scope report (state workers
/// partitioned by entity): its part of the report, and the outbound transfers its flows hold
/// from the client hosts of every partition's accounts (`hosts`: the accounts of other
/// partitions may be the suspicious ones). [`merge_parts`] joins them once merged.
pub fn part(findings: &Findings, db: &DbSetup, hosts: &[String]) -> (Exposure, Vec<TransferOut>) {
    let mut x = Exposure::build(
        &findings.db,
        &findings.judgement,
        &db.watchlist,
        &db.selection,
    );
    x.signalling = signalling(&findings.signal, &x);
    let hosts: Vec<IpAddr> = hosts.iter().filter_map(|h| h.parse().ok()).collect();
    let seen = if hosts.is_empty() {
        Vec::new()
    } else {
        cellwarden_net::transfers_from(&findings.net, &hosts, Timestamp::MIN, Timestamp::MAX)
            .into_iter()
            .map(transfer_out)
            .collect()
    };
    (x, seen)
}

/// The scope report of every partition as one: their parts merged
/// ([`Exposure::merge`]), and the transfers they saw joined to the suspicious accounts of the
/// whole as [`exfiltration`] joins them in one process.
pub fn merge_parts(parts: Vec<(Exposure, Vec<TransferOut>)>) -> Exposure {
    let mut seen: Vec<TransferOut> = Vec::new();
    let mut xs = Vec::with_capacity(parts.len());
    for (x, t) in parts {
        xs.push(x);
        seen.extend(t);
    }
    let mut x = Exposure::merge(xs);
    x.exfiltration = join(&x, &|hosts, since, until| {
        let (d0, d1) = (
            cellwarden_telecom::detect::date_of_day(cellwarden_net::collect::day_of(since)),
            cellwarden_telecom::detect::date_of_day(cellwarden_net::collect::day_of(until)),
        );
        let mut out: Vec<TransferOut> = seen
            .iter()
            .filter(|t| {
                t.src_ip.parse().is_ok_and(|s: IpAddr| hosts.contains(&s))
                    && (d0.as_str()..=d1.as_str()).contains(&t.day.as_str())
            })
            .cloned()
            .collect();
        // As the flows give them: largest first, then by the first flow, then destination.
        out.sort_by(|a, b| {
            let dst = |t: &TransferOut| t.dst_ip.parse::<IpAddr>().ok();
            (
                std::cmp::Reverse(a.bytes_out),
                &a.first_time,
                &a.file,
                a.line,
                dst(a),
            )
                .cmp(&(
                    std::cmp::Reverse(b.bytes_out),
                    &b.first_time,
                    &b.file,
                    b.line,
                    dst(b),
                ))
        });
        out
    });
    x
}
