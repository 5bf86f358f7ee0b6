//! The scope report assembled from what the analytics gathered: whose records were read in
//! suspicious sessions (or by the responder's selection), and the outbound transfers from the
//! client hosts of the suspicious accounts.

use cellwarden_event::{Timestamp, format_timestamp, parse_timestamp};
use cellwarden_telecom::exposure::{AccountExposure, Exposure, TransferOut};

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
    x
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
