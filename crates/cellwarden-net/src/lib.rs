//! Network flow analytics: which hosts are internal and what they are (the asset file), flow
//! events reduced to per-host and per-destination aggregates, and the `cellwarden.net.*`
//! detections over them (volume against the host's own baseline, new destinations, chunked
//! transfers, long connections, beaconing, DNS/ICMP/TCP-53/GTP channels, new tunnels), plus
//! the outbound transfers from given hosts in a time window (for `scope`), and the core
//! network roles learnt from traffic where the asset file gives none.

pub mod assets;
pub mod collect;
pub mod detect;
pub mod protocols;
pub mod roles;
pub mod share;

pub use assets::Assets;
pub use collect::{FlowAggregates, FlowCollector};
pub use detect::{NetConfig, judge};

use std::net::IpAddr;

/// A configuration file (`--assets`, the `[net]` table of `--config`) that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not valid TOML, or not the expected tables and keys.
    #[error("{0}")]
    Toml(#[from] toml::de::Error),
    /// An address or network that does not parse.
    #[error("'{0}' is not an address or a network")]
    Network(String),
}

use cellwarden_event::Timestamp;

/// Outbound traffic of one host to one outside destination on one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// The internal host.
    pub src: IpAddr,
    /// The outside destination.
    pub dst: IpAddr,
    /// Destination ports seen (up to 16).
    pub ports: Vec<u16>,
    /// UTC day.
    pub day: collect::Day,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Flows.
    pub flows: u64,
    /// The day's first flow.
    pub first: collect::Evidence,
}

/// Outbound transfers from `hosts` on the days from `since` to `until` (inclusive, UTC days),
/// largest first.
pub fn transfers_from(
    agg: &FlowAggregates,
    hosts: &[IpAddr],
    since: Timestamp,
    until: Timestamp,
) -> Vec<Transfer> {
    let (d0, d1) = (collect::day_of(since), collect::day_of(until));
    let mut out: Vec<Transfer> = agg
        .pairs
        .iter()
        .filter(|((s, _, d), _)| hosts.contains(s) && (d0..=d1).contains(d))
        .filter_map(|((s, t, d), p)| {
            Some(Transfer {
                src: *s,
                dst: *t,
                ports: p.ports.iter().copied().collect(),
                day: *d,
                bytes_out: p.bytes_out,
                flows: p.flows,
                first: p.first.clone()?,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        (std::cmp::Reverse(a.bytes_out), &a.first, a.dst).cmp(&(
            std::cmp::Reverse(b.bytes_out),
            &b.first,
            b.dst,
        ))
    });
    out
}
