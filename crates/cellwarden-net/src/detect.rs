//! Flow detections (`cellwarden.net.*`), each alert saying what was observed and expected; the
//! alert's event carries `src_ip`, `dst_ip`, `dst_port`, `bytes_out` and those figures.
//!
//! Baselines are learnt per internal host from its own earlier days, in time order. Transfers
//! listed as allowed in the asset file never alert; a pair that shows the same behaviour on
//! `schedule_days` earlier days (a nightly backup, a replication) has learnt it and does not.

/// What the flow detections found: alerts only.
pub type Judgement = cellwarden_analytics::Judgement<()>;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use cellwarden_analytics::rules::evidence_event;
use cellwarden_analytics::stats::{cv, human_bytes, p90};
use cellwarden_analytics::{BuiltinRule, RuleTable};
use cellwarden_event::{Alert, Level, Timestamp, Value};
use serde::Deserialize;

use crate::assets::{Assets, GTP_ROLES, SERVER_ROLES};
use crate::collect::{Day, Evidence, Flow, FlowAggregates, Odd, day_of};
use crate::roles::{Core, CoreRoles};

/// Thresholds of the flow detections (`[net]` in the `--config` TOML file).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetConfig {
    /// Earlier active days a host needs before its baseline judges it.
    pub min_history_days: usize,
    /// A day's bytes to one destination alert above this many bytes …
    pub volume_min_bytes: u64,
    /// … and above this factor times the host's 90th percentile of daily bytes to any one
    /// destination on its earlier days.
    pub volume_factor: f64,
    /// A destination never seen for the host alerts when it receives this many bytes in a day.
    pub new_destination_min_bytes: u64,
    /// Flows at least this large count as chunks of a transfer.
    pub chunk_min_bytes: u64,
    /// Chunks to one destination within this many seconds form a series …
    pub chunk_window_secs: i64,
    /// … of at least this many …
    pub chunk_min_count: usize,
    /// … whose sizes vary by at most this coefficient of variation.
    pub chunk_max_cv: f64,
    /// Connections lasting this long are long-lived.
    pub long_min_secs: u64,
    /// Beaconing needs at least this many connections to one destination and port …
    pub beacon_min_count: usize,
    /// … and a regularity score (0–1, intervals and sizes) of at least this …
    pub beacon_min_score: f64,
    /// … with a typical interval of at most this many seconds (daily jobs are schedules) …
    pub beacon_max_interval_secs: i64,
    /// … and typical connections of at most this many bytes out (beacons are small).
    pub beacon_max_bytes: u64,
    /// DNS tunnelling: distinct names under one domain from one host …
    pub dns_min_names: usize,
    /// … with a mean longest label of at least this many characters, or this mean entropy.
    pub dns_min_label_len: f64,
    /// … (entropy, bits per character).
    pub dns_min_entropy: f64,
    /// TXT queries under one domain from one host that alone are suspicious.
    pub dns_min_txt: u64,
    /// ICMP to one outside host in a day: bytes, or mean bytes per packet (with ≥ 20 packets).
    pub icmp_min_bytes: u64,
    /// … or mean bytes per packet.
    pub icmp_min_packet_bytes: u64,
    /// Behaviour seen on this many earlier days is a schedule, not an anomaly.
    pub schedule_days: usize,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            min_history_days: 3,
            volume_min_bytes: 1 << 30,
            volume_factor: 5.0,
            new_destination_min_bytes: 100 << 20,
            chunk_min_bytes: 50 << 20,
            chunk_window_secs: 6 * 3600,
            chunk_min_count: 3,
            chunk_max_cv: 0.25,
            long_min_secs: 8 * 3600,
            beacon_min_count: 12,
            beacon_min_score: 0.8,
            beacon_max_interval_secs: 6 * 3600,
            beacon_max_bytes: 1 << 20,
            dns_min_names: 100,
            dns_min_label_len: 30.0,
            dns_min_entropy: 3.8,
            dns_min_txt: 200,
            icmp_min_bytes: 1 << 20,
            icmp_min_packet_bytes: 200,
            schedule_days: 3,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    net: NetConfig,
    /// Other sections belong to other analytics.
    #[serde(flatten)]
    _other: BTreeMap<String, toml::Value>,
}

impl NetConfig {
    /// Reads the `[net]` table of a cellwarden config file.
    pub fn from_toml(text: &str) -> Result<NetConfig, crate::ConfigError> {
        Ok(toml::from_str::<ConfigFile>(text)?.net)
    }

    /// What the collector needs of the thresholds.
    pub fn collect_limits(&self) -> crate::collect::CollectLimits {
        crate::collect::CollectLimits {
            chunk_min_bytes: self.chunk_min_bytes,
            long_min_secs: self.long_min_secs,
            learn_days: self.min_history_days,
        }
    }
}

const RULES: &[BuiltinRule] = &[
    BuiltinRule {
        id: "cellwarden.net.volume_anomaly",
        title: "Outbound volume far above the host's baseline",
        level: Level::High,
        description: "",
        tags: &["attack.exfiltration", "attack.t1048"],
    },
    BuiltinRule {
        id: "cellwarden.net.new_destination",
        title: "Large transfer to a destination new for the host",
        level: Level::Medium,
        description: "",
        tags: &["attack.exfiltration", "attack.t1041"],
    },
    BuiltinRule {
        id: "cellwarden.net.chunked_transfer",
        title: "Transfer in a series of similar-sized chunks",
        level: Level::High,
        description: "",
        tags: &["attack.exfiltration", "attack.t1030"],
    },
    BuiltinRule {
        id: "cellwarden.net.long_connection",
        title: "Long-lived outbound connection",
        level: Level::Low,
        description: "",
        tags: &["attack.command-and-control", "attack.t1071"],
    },
    BuiltinRule {
        id: "cellwarden.net.beaconing",
        title: "Regular outbound connections (beaconing)",
        level: Level::Medium,
        description: "",
        tags: &["attack.command-and-control", "attack.t1071"],
    },
    BuiltinRule {
        id: "cellwarden.net.dns_tunnel",
        title: "DNS queries shaped like a tunnel",
        level: Level::High,
        description: "",
        tags: &[
            "attack.command-and-control",
            "attack.exfiltration",
            "attack.t1071.004",
            "attack.t1048",
        ],
    },
    BuiltinRule {
        id: "cellwarden.net.tcp53_not_dns",
        title: "TCP port 53 traffic that is not DNS",
        level: Level::High,
        description: "",
        tags: &["attack.command-and-control", "attack.t1571"],
    },
    BuiltinRule {
        id: "cellwarden.net.icmp_tunnel",
        title: "ICMP carrying data to an outside host",
        level: Level::High,
        description: "",
        tags: &[
            "attack.command-and-control",
            "attack.exfiltration",
            "attack.t1095",
        ],
    },
    BuiltinRule {
        id: "cellwarden.net.gtp_unexpected",
        title: "GTP traffic from a host that is not a GSN/gateway",
        level: Level::High,
        description: "",
        tags: &["attack.command-and-control", "attack.t1572"],
    },
    BuiltinRule {
        id: "cellwarden.net.new_core_speaker",
        title: "Host speaking a core network protocol it is not known to speak",
        level: Level::High,
        description: "",
        tags: &["attack.collection", "attack.lateral-movement"],
    },
    BuiltinRule {
        id: "cellwarden.net.new_tunnel_protocol",
        title: "Host opened a tunnel or remote-access protocol it never used",
        level: Level::Medium,
        description: "",
        tags: &["attack.command-and-control", "attack.t1572"],
    },
];

/// The flow detections' rules.
pub fn rules() -> RuleTable {
    RuleTable::new("builtin:cellwarden.net", RULES)
}

struct Finding {
    rule: &'static str,
    level: Option<Level>,
    evidence: Evidence,
    src: IpAddr,
    dst: Option<IpAddr>,
    dst_port: Option<u16>,
    bytes_out: u64,
    observed: String,
    expected: String,
}

/// Runs the flow detections (they give no reasons beyond their alerts).
pub fn judge(agg: &FlowAggregates, assets: &Assets, c: &NetConfig) -> Judgement {
    judge_with_roles(agg, assets, c, crate::roles::learn(agg, c.min_history_days))
}

/// Judges one partition of the flow state (by source host, DNS by domain) with the core roles
/// all partitions' traffic shows ([`crate::share`]): the union of the partitions' alerts is
/// [`judge`]'s over all the aggregates.
pub fn judge_partition(
    agg: &FlowAggregates,
    assets: &Assets,
    c: &NetConfig,
    global: &crate::share::NetGlobal,
) -> Judgement {
    judge_with_roles(agg, assets, c, global.roles(c.min_history_days))
}

fn judge_with_roles(
    agg: &FlowAggregates,
    assets: &Assets,
    c: &NetConfig,
    roles: CoreRoles,
) -> Judgement {
    let mut out = Vec::new();
    volumes(agg, assets, c, &roles, &mut out);
    chunks(agg, assets, c, &roles, &mut out);
    long_lived(agg, assets, c, &roles, &mut out);
    beacons(agg, assets, c, &roles, &mut out);
    dns(agg, assets, c, &mut out);
    odd(agg, assets, c, &roles, &mut out);
    tunnels(agg, assets, c, &mut out);
    speakers(agg, assets, &roles, &mut out);
    Judgement {
        alerts: into_alerts(out, assets),
        reasons: (),
    }
}

fn volumes(
    agg: &FlowAggregates,
    assets: &Assets,
    c: &NetConfig,
    roles: &CoreRoles,
    out: &mut Vec<Finding>,
) {
    // Per source (the pairs are in source order): days in order, each with its destinations.
    let mut pairs = agg.pairs.iter().peekable();
    while let Some(&(&(src, _, _), _)) = pairs.peek() {
        let mut days: BTreeMap<Day, Vec<(IpAddr, &crate::collect::PairDay)>> = BTreeMap::new();
        while let Some(((_, d, day), p)) = pairs.next_if(|((s, _, _), _)| *s == src) {
            days.entry(*day).or_default().push((*d, p));
        }
        let mut history_max: Vec<u64> = Vec::new();
        let mut seen: BTreeMap<IpAddr, usize> = BTreeMap::new();
        for (_, dests) in days {
            let judged = history_max.len() >= c.min_history_days;
            let base = p90(history_max.clone());
            for (dst, p) in &dests {
                let Some(e) = p.first.clone() else { continue };
                let port = p.ports.iter().next().copied();
                if assets.allowed(src, *dst, port).is_some() {
                    continue;
                }
                // Established core traffic between infrastructure peers (GTP-U to a roaming
                // partner's gateway) is not a transfer.
                if !p.ports.is_empty()
                    && p.ports
                        .iter()
                        .all(|pt| roles.infrastructure(assets, src, *dst, "", Some(*pt)))
                {
                    continue;
                }
                let limit = (base as f64 * c.volume_factor) as u64;
                if judged && p.bytes_out >= c.volume_min_bytes && p.bytes_out > limit {
                    out.push(Finding {
                        rule: "cellwarden.net.volume_anomaly",
                        level: None,
                        evidence: e.clone(),
                        src,
                        dst: Some(*dst),
                        dst_port: port,
                        bytes_out: p.bytes_out,
                        observed: format!("{} sent to {dst} in a day ({} flows)", human_bytes(p.bytes_out), p.flows),
                        expected: format!(
                            "at most {} ({}× the 90th percentile, {}, of its daily bytes to any one destination on {} earlier days)",
                            human_bytes(limit),
                            c.volume_factor,
                            human_bytes(base),
                            history_max.len()
                        ),
                    });
                }
                if judged && !seen.contains_key(dst) && p.bytes_out >= c.new_destination_min_bytes {
                    out.push(Finding {
                        rule: "cellwarden.net.new_destination",
                        level: None,
                        evidence: e,
                        src,
                        dst: Some(*dst),
                        dst_port: port,
                        bytes_out: p.bytes_out,
                        observed: format!(
                            "{} sent to {dst}, a destination never seen for this host",
                            human_bytes(p.bytes_out)
                        ),
                        expected: format!(
                            "destinations of its {} earlier days ({} of them)",
                            history_max.len(),
                            seen.len()
                        ),
                    });
                }
            }
            history_max.push(dests.iter().map(|(_, p)| p.bytes_out).max().unwrap_or(0));
            for (dst, _) in dests {
                *seen.entry(dst).or_default() += 1;
            }
        }
    }
}

fn chunks(
    agg: &FlowAggregates,
    assets: &Assets,
    c: &NetConfig,
    roles: &CoreRoles,
    out: &mut Vec<Finding>,
) {
    let mut by_pair: BTreeMap<(IpAddr, IpAddr), Vec<&Flow>> = BTreeMap::new();
    for f in &agg.large {
        if roles.infrastructure(assets, f.src, f.dst, &f.proto, f.dst_port) {
            continue;
        }
        by_pair.entry((f.src, f.dst)).or_default().push(f);
    }
    for ((src, dst), flows) in by_pair {
        // Series: consecutive chunks no more than the window apart from the series' start.
        let mut series: Vec<Vec<&Flow>> = Vec::new();
        for f in flows {
            match series.last_mut() {
                Some(s)
                    if f.evidence.time.as_second() - s[0].evidence.time.as_second()
                        <= c.chunk_window_secs =>
                {
                    s.push(f)
                }
                _ => series.push(vec![f]),
            }
        }
        // Days that had a series before: a schedule after `schedule_days` of them.
        let mut scheduled_days: BTreeSet<Day> = BTreeSet::new();
        for s in series {
            let sizes: Vec<f64> = s.iter().map(|f| f.bytes_out as f64).collect();
            let is_series = s.len() >= c.chunk_min_count && cv(&sizes) <= c.chunk_max_cv;
            if !is_series {
                continue;
            }
            let day = day_of(s[0].evidence.time);
            let earlier = scheduled_days.iter().filter(|d| **d < day).count();
            scheduled_days.insert(day);
            if earlier >= c.schedule_days || assets.allowed(src, dst, s[0].dst_port).is_some() {
                continue;
            }
            let total: u64 = s.iter().map(|f| f.bytes_out).sum();
            let span = s[s.len() - 1].evidence.time.as_second() - s[0].evidence.time.as_second();
            out.push(Finding {
                rule: "cellwarden.net.chunked_transfer",
                level: None,
                evidence: s[0].evidence.clone(),
                src,
                dst: Some(dst),
                dst_port: s[0].dst_port,
                bytes_out: total,
                observed: format!(
                    "{} chunks of {}–{} ({} in all) within {} min, sizes varying by {:.0}%",
                    s.len(),
                    human_bytes(s.iter().map(|f| f.bytes_out).min().unwrap_or(0)),
                    human_bytes(s.iter().map(|f| f.bytes_out).max().unwrap_or(0)),
                    human_bytes(total),
                    span / 60,
                    100.0 * cv(&sizes)
                ),
                expected: format!(
                    "no such series, or one on at least {} earlier days (seen on {earlier})",
                    c.schedule_days
                ),
            });
        }
    }
}

fn long_lived(
    agg: &FlowAggregates,
    assets: &Assets,
    c: &NetConfig,
    roles: &CoreRoles,
    out: &mut Vec<Finding>,
) {
    let mut days_seen: BTreeMap<(IpAddr, IpAddr), BTreeSet<Day>> = BTreeMap::new();
    for f in &agg.long {
        if roles.infrastructure(assets, f.src, f.dst, &f.proto, f.dst_port) {
            continue;
        }
        let day = day_of(f.evidence.time);
        let seen = days_seen.entry((f.src, f.dst)).or_default();
        let earlier = seen.iter().filter(|d| **d < day).count();
        seen.insert(day);
        if earlier >= c.schedule_days || assets.allowed(f.src, f.dst, f.dst_port).is_some() {
            continue;
        }
        out.push(Finding {
            rule: "cellwarden.net.long_connection",
            level: None,
            evidence: f.evidence.clone(),
            src: f.src,
            dst: Some(f.dst),
            dst_port: f.dst_port,
            bytes_out: f.bytes_out,
            observed: format!("connection of {:.1} h ({} out)", f.duration as f64 / 3600.0, human_bytes(f.bytes_out)),
            expected: format!(
                "connections shorter than {:.0} h, or this pair's long connections on {} earlier days",
                c.long_min_secs as f64 / 3600.0,
                c.schedule_days
            ),
        });
    }
}

fn beacons(
    agg: &FlowAggregates,
    assets: &Assets,
    c: &NetConfig,
    roles: &CoreRoles,
    out: &mut Vec<Finding>,
) {
    for ((src, dst, port), conns) in &agg.conns {
        if conns.len() < c.beacon_min_count
            || assets.allowed(*src, *dst, Some(*port)).is_some()
            || roles.infrastructure(assets, *src, *dst, "", Some(*port))
        {
            continue;
        }
        let mut gaps: Vec<i64> = conns
            .windows(2)
            .map(|w| w[1].0 - w[0].0)
            .filter(|g| *g > 0)
            .collect();
        if gaps.len() + 1 < c.beacon_min_count {
            continue;
        }
        gaps.sort_unstable();
        let median = gaps[gaps.len() / 2].max(1);
        let mut sizes_sorted: Vec<u64> = conns.iter().map(|x| x.1).collect();
        sizes_sorted.sort_unstable();
        if median > c.beacon_max_interval_secs
            || sizes_sorted[sizes_sorted.len() / 2] > c.beacon_max_bytes
        {
            continue;
        }
        let regular = gaps
            .iter()
            .filter(|g| ((**g - median).abs() as f64) <= 0.1 * median as f64 + 1.0)
            .count() as f64
            / gaps.len() as f64;
        let sizes: Vec<f64> = conns.iter().map(|x| x.1 as f64).collect();
        let size_cv = cv(&sizes).min(1.0);
        let score = regular * (1.0 - size_cv);
        if score < c.beacon_min_score {
            continue;
        }
        // Evidence: the first connection, in the time-sorted list.
        let first_time = Timestamp::from_second(conns[0].0).unwrap_or(Timestamp::UNIX_EPOCH);
        let evidence = agg
            .pairs
            .range((*src, *dst, day_of(first_time))..=(*src, *dst, day_of(first_time)))
            .next()
            .and_then(|(_, p)| p.first.clone())
            .unwrap_or(Evidence {
                time: first_time,
                file: Arc::from("-"),
                record: 0,
            });
        out.push(Finding {
            rule: "cellwarden.net.beaconing",
            level: None,
            evidence,
            src: *src,
            dst: Some(*dst),
            dst_port: Some(*port),
            bytes_out: conns.iter().map(|x| x.1).sum(),
            observed: format!(
                "{} connections every ~{} s ({:.0}% within 10% of it), sizes varying by {:.0}%: score {score:.2}",
                conns.len(),
                median,
                100.0 * regular,
                100.0 * size_cv
            ),
            expected: format!("irregular traffic (score below {})", c.beacon_min_score),
        });
    }
}

fn dns(agg: &FlowAggregates, assets: &Assets, c: &NetConfig, out: &mut Vec<Finding>) {
    // Resolvers forward everyone's queries: judge the clients, and a resolver only for the
    // domains no client asked it about (queries it made up itself, as a tunnel on it would).
    let is_resolver = |ip: &IpAddr| assets.has_role(*ip, &["dns"]);
    let asked: BTreeSet<(&str, Day)> = agg
        .dns
        .keys()
        .filter(|(src, _, _)| !is_resolver(src))
        .map(|(_, domain, day)| (domain.as_str(), *day))
        .collect();
    for ((src, domain, day), d) in &agg.dns {
        if is_resolver(src) && asked.contains(&(domain.as_str(), *day)) {
            continue;
        }
        let n = d.queries.max(1) as f64;
        let mean_len = d.label_len_sum as f64 / n;
        let mean_entropy = d.entropy_sum / n;
        let shaped = d.names.len() >= c.dns_min_names
            && (mean_len >= c.dns_min_label_len || mean_entropy >= c.dns_min_entropy);
        let txt = d.txt >= c.dns_min_txt;
        if !(shaped || txt) {
            continue;
        }
        let Some(e) = d.first.clone() else { continue };
        out.push(Finding {
            rule: "cellwarden.net.dns_tunnel",
            level: None,
            evidence: e,
            src: *src,
            dst: d.resolvers.iter().next().copied(),
            dst_port: Some(53),
            bytes_out: d.label_len_sum,
            observed: format!(
                "{} queries under {domain}: {} distinct names, mean longest label {mean_len:.0} chars, entropy {mean_entropy:.1} bits/char, {} TXT",
                d.queries,
                d.names.len(),
                d.txt
            ),
            expected: format!(
                "fewer than {} distinct names with labels under {} chars / {} bits, and fewer than {} TXT queries",
                c.dns_min_names, c.dns_min_label_len, c.dns_min_entropy, c.dns_min_txt
            ),
        });
    }
}

fn odd(
    agg: &FlowAggregates,
    assets: &Assets,
    c: &NetConfig,
    roles: &CoreRoles,
    out: &mut Vec<Finding>,
) {
    for ((kind, src, dst, _), o) in &agg.odd {
        let Some(e) = o.first.clone() else { continue };
        let finding = |rule, level, observed: String, expected: String| Finding {
            rule,
            level,
            evidence: e.clone(),
            src: *src,
            dst: Some(*dst),
            dst_port: None,
            bytes_out: o.bytes,
            observed,
            expected,
        };
        match kind {
            Odd::TcpDnsPort => {
                if assets.allowed(*src, *dst, Some(53)).is_some() {
                    continue;
                }
                let mut f = finding(
                    "cellwarden.net.tcp53_not_dns",
                    None,
                    format!(
                        "{} TCP flow(s) to port 53 carrying {} ({})",
                        o.flows,
                        human_bytes(o.bytes),
                        if o.services.is_empty() {
                            "protocol not identified".to_owned()
                        } else {
                            format!(
                                "protocol {}",
                                o.services.iter().cloned().collect::<Vec<_>>().join(", ")
                            )
                        }
                    ),
                    "DNS over TCP (zone transfers, large answers)".into(),
                );
                f.dst_port = Some(53);
                out.push(f);
            }
            Odd::Icmp => {
                let per_packet = o.bytes / o.packets.max(1);
                let big = o.bytes >= c.icmp_min_bytes
                    || (o.packets >= 20 && per_packet >= c.icmp_min_packet_bytes);
                if !big || assets.allowed(*src, *dst, None).is_some() {
                    continue;
                }
                out.push(finding(
                    "cellwarden.net.icmp_tunnel",
                    None,
                    format!(
                        "{} ICMP flow(s) to {dst}: {} in {} packets ({per_packet} bytes each)",
                        o.flows,
                        human_bytes(o.bytes),
                        o.packets
                    ),
                    format!(
                        "pings: under {} a day and under {} bytes a packet",
                        human_bytes(c.icmp_min_bytes),
                        c.icmp_min_packet_bytes
                    ),
                ));
            }
            Odd::Gtp => {
                // Gateways speak GTP, by their asset role or as learnt; so do roaming partners'
                // gateways talking to them.
                let gsn = |ip: IpAddr| {
                    roles.speaks(assets, ip, Core::GtpU) || roles.speaks(assets, ip, Core::GtpC)
                };
                if gsn(*src) || gsn(*dst) && !assets.is_internal(*src) {
                    continue;
                }
                if assets.allowed(*src, *dst, None).is_some() {
                    continue;
                }
                let known_other = assets.role(*src).is_some();
                out.push(finding(
                    "cellwarden.net.gtp_unexpected",
                    Some(if known_other {
                        Level::High
                    } else {
                        Level::Medium
                    }),
                    format!(
                        "{} GTP flow(s) from {} to {dst} ({})",
                        o.flows,
                        assets.describe(*src),
                        human_bytes(o.bytes)
                    ),
                    format!(
                        "GTP only from gateways: hosts with roles {}, or that spoke GTP on {} \
                         day(s) of the first {} of the logs",
                        GTP_ROLES.join(", "),
                        roles.min_days,
                        c.min_history_days
                    ),
                ));
            }
        }
    }
}

fn tunnels(agg: &FlowAggregates, assets: &Assets, c: &NetConfig, out: &mut Vec<Finding>) {
    let mut current: Option<IpAddr> = None;
    let mut used: BTreeSet<&'static str> = BTreeSet::new();
    // The days each source was active on (read for the sources that used a tunnel protocol).
    let mut active: BTreeSet<Day> = BTreeSet::new();
    for ((src, day), protos) in &agg.tunnels {
        if current != Some(*src) {
            current = Some(*src);
            used.clear();
            let least = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
            active = agg
                .pairs
                .range((*src, least, Day::MIN)..)
                .take_while(|((s, _, _), _)| s == src)
                .map(|((_, _, d), _)| *d)
                .collect();
        }
        let days = active.iter().filter(|x| *x < day).count();
        for (name, (e, dst, port)) in protos {
            if !used.contains(name)
                && days >= c.min_history_days
                && assets.allowed(*src, *dst, Some(*port)).is_none()
            {
                let server = assets.has_role(*src, SERVER_ROLES);
                out.push(Finding {
                    rule: "cellwarden.net.new_tunnel_protocol",
                    level: Some(if server { Level::High } else { Level::Medium }),
                    evidence: e.clone(),
                    src: *src,
                    dst: Some(*dst),
                    dst_port: Some(*port),
                    bytes_out: 0,
                    observed: format!("{name} to {dst}:{port} from {}", assets.describe(*src)),
                    expected: format!("no {name} on its {days} earlier active days"),
                });
            }
        }
        used.extend(protos.keys().copied());
    }
}

/// Hosts speaking a core protocol (Diameter, SIGTRAN, RADIUS; GTP has its own detection) that
/// they are not known to speak: neither by asset role nor from the learning window.
fn speakers(agg: &FlowAggregates, assets: &Assets, roles: &CoreRoles, out: &mut Vec<Finding>) {
    let mut first: BTreeMap<(IpAddr, Core), (&Evidence, IpAddr, u64, u64)> = BTreeMap::new();
    for ((src, dst, core, _), st) in &agg.core {
        if matches!(core, Core::GtpU | Core::GtpC) || roles.speaks(assets, *src, *core) {
            continue;
        }
        let Some(e) = st.first.as_ref() else { continue };
        let slot = first.entry((*src, *core)).or_insert((e, *dst, 0, 0));
        if e < slot.0 {
            slot.0 = e;
            slot.1 = *dst;
        }
        slot.2 += st.flows;
        slot.3 += st.bytes;
    }
    for ((src, core), (e, dst, flows, bytes)) in first {
        let known_other = assets.role(src).is_some();
        out.push(Finding {
            rule: "cellwarden.net.new_core_speaker",
            level: Some(if known_other {
                Level::High
            } else {
                Level::Medium
            }),
            evidence: e.clone(),
            src,
            dst: Some(dst),
            dst_port: core.port(),
            bytes_out: bytes,
            observed: format!(
                "{} from {} to {dst} ({flows} flow(s), {})",
                core.name(),
                assets.describe(src),
                human_bytes(bytes)
            ),
            expected: format!(
                "{} only from hosts whose role speaks it ({}), or that spoke it on {} day(s) of \
                 the first days of the logs",
                core.name(),
                core.roles().join(", "),
                roles.min_days
            ),
        });
    }
}

fn into_alerts(mut findings: Vec<Finding>, assets: &Assets) -> Vec<Alert> {
    let table = rules();
    findings.sort_by(|a, b| {
        (&a.evidence, a.rule, a.src, a.dst).cmp(&(&b.evidence, b.rule, b.src, b.dst))
    });
    // One alert per rule and evidence record (alert keys stay unique).
    findings.dedup_by(|a, b| a.rule == b.rule && a.evidence == b.evidence);
    findings
        .into_iter()
        .map(|f| {
            let mut ev = evidence_event(&f.evidence.file, f.evidence.record, f.evidence.time);
            ev.host = Some(std::borrow::Cow::Owned(assets.host_name(f.src)));
            let s = |x: String| Value::Str(std::borrow::Cow::Owned(x));
            ev.push("src_ip", s(f.src.to_string()));
            if let Some(d) = f.dst {
                ev.push("dst_ip", s(d.to_string()));
            }
            if let Some(p) = f.dst_port {
                ev.push("dst_port", Value::Int(p as i64));
            }
            ev.push(
                "bytes_out",
                Value::Int(f.bytes_out.min(i64::MAX as u64) as i64),
            );
            if let Some(r) = assets.role(f.src) {
                ev.push("src_role", s(r.to_owned()));
            }
            ev.push("observed", s(f.observed));
            ev.push("expected", s(f.expected));
            table.alert(f.rule, f.level, ev)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::FlowCollector;
    use cellwarden_event::{Event, Origin};
    use std::borrow::Cow;

    pub(crate) struct F<'a> {
        pub t: i64,
        pub src: &'a str,
        pub dst: &'a str,
        pub port: i64,
        pub proto: &'a str,
        pub bytes: i64,
        pub dur: f64,
        pub service: Option<&'a str>,
    }

    fn event(f: &F<'_>, rec: u64) -> Event<'static> {
        let mut ev = Event::new(Origin {
            file: Arc::from("conn.log"),
            record: rec,
        });
        ev.timestamp = Timestamp::from_second(f.t).ok();
        let s = |x: &str| Value::Str(Cow::Owned(x.to_owned()));
        ev.push("src_ip", s(f.src));
        ev.push("dst_ip", s(f.dst));
        ev.push("dst_port", Value::Int(f.port));
        ev.push("proto", s(f.proto));
        ev.push("bytes_out", Value::Int(f.bytes));
        ev.push("bytes_in", Value::Int(1000));
        ev.push("packets", Value::Int((f.bytes / 1000).max(1)));
        ev.push("duration", Value::Float(f.dur));
        if let Some(sv) = f.service {
            ev.push("service", s(sv));
        }
        ev.push("Channel", s("zeek_conn"));
        ev
    }

    fn dns_event(t: i64, src: &str, q: &str, qtype: &str, rec: u64) -> Event<'static> {
        let mut ev = Event::new(Origin {
            file: Arc::from("dns.log"),
            record: rec,
        });
        ev.timestamp = Timestamp::from_second(t).ok();
        let s = |x: &str| Value::Str(Cow::Owned(x.to_owned()));
        ev.push("src_ip", s(src));
        ev.push("dst_ip", s("10.0.0.53"));
        ev.push("query", s(q));
        ev.push("qtype_name", s(qtype));
        ev.push("Channel", s("zeek_dns"));
        ev
    }

    const DAY: i64 = 86_400;
    const T0: i64 = 1_772_323_200; // 2026-03-01

    fn run(evs: &[Event<'static>], assets: &Assets) -> Vec<Alert> {
        let c = NetConfig::default();
        // Two collectors, to exercise the merge.
        let mut a = FlowCollector::new(Arc::new(assets.clone()), c.collect_limits());
        let mut b = FlowCollector::new(Arc::new(assets.clone()), c.collect_limits());
        for (i, e) in evs.iter().enumerate() {
            if i % 2 == 0 {
                a.observe(e);
            } else {
                b.observe(e);
            }
        }
        let mut agg = a.into_aggregates();
        agg.merge(b.into_aggregates());
        agg.finish();
        judge(&agg, assets, &c).alerts
    }

    fn rules(a: &[Alert]) -> Vec<&str> {
        a.iter().map(|x| x.rule.id.as_str()).collect()
    }

    fn flows(list: &[F<'_>]) -> Vec<Event<'static>> {
        list.iter()
            .enumerate()
            .map(|(i, f)| event(f, i as u64 + 1))
            .collect()
    }

    /// A tunnel protocol new for a host with a history alerts; one it used from its first day,
    /// or used by a host with too short a history, does not.
    #[test]
    fn a_tunnel_protocol_new_for_a_host_with_history_alerts() {
        let mut l = Vec::new();
        let web = |t: i64, src: &'static str| F {
            t,
            src,
            dst: "203.0.113.1",
            port: 443,
            proto: "tcp",
            bytes: 5 << 20,
            dur: 3.0,
            service: Some("ssl"),
        };
        let vpn = |t: i64, src: &'static str| F {
            t,
            src,
            dst: "198.51.100.77",
            port: 1194,
            proto: "udp",
            bytes: 1 << 20,
            dur: 60.0,
            service: None,
        };
        for day in 0..6 {
            let t = T0 + day * DAY + 3600;
            // A host (one IPv4, one IPv6) with five days of history, then OpenVPN on day 5.
            for src in ["10.2.0.5", "fd00::5"] {
                l.push(web(t, src));
                if day == 5 {
                    l.push(vpn(t + 60, src));
                }
            }
            // A host on OpenVPN every day from its first.
            l.push(web(t, "10.2.0.6"));
            l.push(vpn(t + 60, "10.2.0.6"));
        }
        // A host seen on day 4 only, on OpenVPN on day 5: too short a history.
        l.push(web(T0 + 4 * DAY, "10.2.0.7"));
        l.push(vpn(T0 + 5 * DAY, "10.2.0.7"));
        // Internal by default: RFC 1918 and ULA.
        let a = run(&flows(&l), &Assets::default());
        let mut got: Vec<(&str, String)> = a
            .iter()
            .map(|x| {
                (
                    x.rule.id.as_str(),
                    x.event.get_str("src_ip").unwrap().to_string(),
                )
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                ("cellwarden.net.new_tunnel_protocol", "10.2.0.5".to_string()),
                ("cellwarden.net.new_tunnel_protocol", "fd00::5".to_string()),
            ],
            "{:?}",
            rules(&a)
        );
    }

    #[test]
    fn nightly_backup_is_quiet_and_an_exfiltration_in_chunks_alerts() {
        let mut l = Vec::new();
        for day in 0..10 {
            // Backup: one stream of ~40 GiB a night, same destination.
            l.push(F {
                t: T0 + day * DAY + 3600,
                src: "10.2.0.9",
                dst: "198.51.100.10",
                port: 443,
                proto: "tcp",
                bytes: 40 << 30,
                dur: 2400.0,
                service: Some("ssl"),
            });
            // The billing server's normal outbound: a little HTTPS.
            l.push(F {
                t: T0 + day * DAY + 7200,
                src: "10.2.0.5",
                dst: "203.0.113.1",
                port: 443,
                proto: "tcp",
                bytes: 5 << 20,
                dur: 3.0,
                service: Some("ssl"),
            });
        }
        let quiet = run(&flows(&l), &Assets::default());
        assert!(quiet.is_empty(), "{:?}", rules(&quiet));
        // Day 8: six chunks of ~500 MiB from the billing server to a new host within two hours.
        for k in 0..6 {
            l.push(F {
                t: T0 + 8 * DAY + 10_000 + k * 1200,
                src: "10.2.0.5",
                dst: "203.0.113.66",
                port: 443,
                proto: "tcp",
                bytes: (500 << 20) + k * 1_000_000,
                dur: 600.0,
                service: Some("ssl"),
            });
        }
        let a = run(&flows(&l), &Assets::default());
        let r = rules(&a);
        assert!(r.contains(&"cellwarden.net.chunked_transfer"), "{r:?}");
        assert!(r.contains(&"cellwarden.net.volume_anomaly"), "{r:?}");
        assert!(r.contains(&"cellwarden.net.new_destination"), "{r:?}");
        assert!(
            a.iter()
                .all(|x| x.event.get_str("src_ip").unwrap() == "10.2.0.5")
        );
        let chunk = a
            .iter()
            .find(|x| x.rule.id == "cellwarden.net.chunked_transfer")
            .unwrap();
        assert_eq!(chunk.event.get_str("dst_ip").unwrap(), "203.0.113.66");
        assert_eq!(chunk.event.get("dst_port"), Some(&Value::Int(443)));
        assert!(
            chunk
                .event
                .get_str("observed")
                .unwrap()
                .starts_with("6 chunks")
        );
        let vol = a
            .iter()
            .find(|x| x.rule.id == "cellwarden.net.volume_anomaly")
            .unwrap();
        assert!(
            vol.event
                .get_str("expected")
                .unwrap()
                .contains("8 earlier days")
        );
    }

    #[test]
    fn chunked_backups_learn_their_schedule_and_allowed_pairs_never_alert() {
        let mut l = Vec::new();
        for day in 0..6 {
            for k in 0..4 {
                l.push(F {
                    t: T0 + day * DAY + 3600 + k * 900,
                    src: "10.2.0.9",
                    dst: "198.51.100.10",
                    port: 22,
                    proto: "tcp",
                    bytes: 10 << 30,
                    dur: 800.0,
                    service: Some("ssh"),
                });
            }
        }
        let a = run(&flows(&l), &Assets::default());
        // The first three nights alert (no schedule yet); the next ones are the schedule.
        assert_eq!(rules(&a), vec!["cellwarden.net.chunked_transfer"; 3]);
        let assets = Assets::from_toml(
            "[[allow]]\nsrc = \"10.2.0.9\"\ndst = \"198.51.100.10\"\nreason = \"offsite backup\"",
        )
        .unwrap();
        assert!(run(&flows(&l), &assets).is_empty());
    }

    #[test]
    fn beaconing_long_connections_and_new_tunnels() {
        let mut l = Vec::new();
        for k in 0..40 {
            l.push(F {
                t: T0 + k * 300 + (k % 3),
                src: "10.3.0.7",
                dst: "192.0.2.44",
                port: 8443,
                proto: "tcp",
                bytes: 2048,
                dur: 1.0,
                service: None,
            });
            // Irregular browsing to another host.
            l.push(F {
                t: T0 + k * k * 37,
                src: "10.3.0.8",
                dst: "192.0.2.45",
                port: 443,
                proto: "tcp",
                bytes: 1000 + k * k * 100,
                dur: 1.0,
                service: None,
            });
        }
        l.push(F {
            t: T0 + 1000,
            src: "10.3.0.9",
            dst: "192.0.2.46",
            port: 443,
            proto: "tcp",
            bytes: 10 << 20,
            dur: 36_000.0,
            service: None,
        });
        for day in 0..5 {
            l.push(F {
                t: T0 + day * DAY,
                src: "10.2.0.5",
                dst: "203.0.113.1",
                port: 443,
                proto: "tcp",
                bytes: 1000,
                dur: 1.0,
                service: None,
            });
            l.push(F {
                t: T0 + day * DAY,
                src: "10.4.0.1",
                dst: "203.0.113.2",
                port: 22,
                proto: "tcp",
                bytes: 1000,
                dur: 1.0,
                service: None,
            });
        }
        l.push(F {
            t: T0 + 5 * DAY,
            src: "10.2.0.5",
            dst: "203.0.113.77",
            port: 1194,
            proto: "udp",
            bytes: 1000,
            dur: 1.0,
            service: None,
        });
        let assets =
            Assets::from_toml("[[host]]\naddress = \"10.2.0.5\"\nrole = \"billing-db\"").unwrap();
        let a = run(&flows(&l), &assets);
        let r = rules(&a);
        assert_eq!(
            r.iter()
                .filter(|x| **x == "cellwarden.net.beaconing")
                .count(),
            1,
            "{r:?}"
        );
        let b = a
            .iter()
            .find(|x| x.rule.id == "cellwarden.net.beaconing")
            .unwrap();
        assert_eq!(b.event.get_str("src_ip").unwrap(), "10.3.0.7");
        assert!(r.contains(&"cellwarden.net.long_connection"));
        let t: Vec<&Alert> = a
            .iter()
            .filter(|x| x.rule.id == "cellwarden.net.new_tunnel_protocol")
            .collect();
        assert_eq!(t.len(), 1, "{r:?}");
        assert_eq!(t[0].level, Level::High, "a billing server opening OpenVPN");
        assert!(t[0].event.get_str("observed").unwrap().contains("openvpn"));
    }

    #[test]
    fn a_resolver_is_judged_on_the_domains_no_client_asked_about() {
        let mut evs = Vec::new();
        let mut rec = 0;
        let label = |k: u64| format!("{:016x}{:016x}", k * 0x9E3779B97F4A7C15, k * 7919);
        for k in 0..150u64 {
            // A client's tunnel, and the resolver forwarding it; the resolver's own tunnel.
            for (src, domain) in [
                ("10.5.0.3", "evil-cdn.com"),
                ("10.0.0.53", "evil-cdn.com"),
                ("10.0.0.53", "sync-mirror.net"),
            ] {
                rec += 1;
                let q = format!("{}.t.{domain}", label(k + rec));
                evs.push(dns_event(T0 + k as i64, src, &q, "TXT", rec));
            }
        }
        let assets =
            Assets::from_toml("[[host]]\naddress = \"10.0.0.53\"\nrole = \"dns\"").unwrap();
        let got: BTreeSet<(String, String)> = run(&evs, &assets)
            .iter()
            .map(|a| {
                (
                    a.event.get_str("src_ip").unwrap().into_owned(),
                    a.event.get_str("observed").unwrap().into_owned(),
                )
            })
            .collect();
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(
            got.iter()
                .any(|(s, o)| s == "10.5.0.3" && o.contains("evil-cdn.com"))
        );
        assert!(
            got.iter()
                .any(|(s, o)| s == "10.0.0.53" && o.contains("sync-mirror.net"))
        );
    }

    #[test]
    fn covert_channels_dns_icmp_tcp53_gtp() {
        let mut evs = Vec::new();
        let mut rec = 1000;
        for k in 0..300u64 {
            rec += 1;
            let label = format!(
                "{:x}{:x}{:x}",
                k * 0x9E3779B97F4A7C15,
                k.wrapping_mul(0xC2B2AE3D27D4EB4F),
                k * 7919
            );
            evs.push(dns_event(
                T0 + k as i64,
                "10.5.0.3",
                &format!("{label}.t.evil-cdn.com"),
                "TXT",
                rec,
            ));
            rec += 1;
            evs.push(dns_event(
                T0 + k as i64,
                "10.5.0.4",
                ["www.example.com", "mail.example.com", "api.example.com"][k as usize % 3],
                "A",
                rec,
            ));
        }
        let l = [
            F {
                t: T0,
                src: "10.6.0.1",
                dst: "198.51.100.53",
                port: 53,
                proto: "tcp",
                bytes: 5 << 20,
                dur: 100.0,
                service: Some("ssl"),
            },
            F {
                t: T0,
                src: "10.6.0.2",
                dst: "10.0.0.53",
                port: 53,
                proto: "tcp",
                bytes: 50_000,
                dur: 1.0,
                service: Some("dns"),
            },
            F {
                t: T0,
                src: "10.6.0.3",
                dst: "198.51.100.9",
                port: 0,
                proto: "icmp",
                bytes: 3 << 20,
                dur: 600.0,
                service: None,
            },
            F {
                t: T0,
                src: "10.6.0.4",
                dst: "198.51.100.9",
                port: 0,
                proto: "icmp",
                bytes: 640,
                dur: 10.0,
                service: None,
            },
            F {
                t: T0,
                src: "10.2.0.5",
                dst: "198.51.100.99",
                port: 2152,
                proto: "udp",
                bytes: 1 << 20,
                dur: 100.0,
                service: None,
            },
            F {
                t: T0,
                src: "10.7.0.1",
                dst: "10.8.0.1",
                port: 2152,
                proto: "udp",
                bytes: 1 << 30,
                dur: 100.0,
                service: None,
            },
        ];
        evs.extend(flows(&l));
        let assets = Assets::from_toml(
            "[[host]]\naddress = \"10.2.0.5\"\nrole = \"billing-db\"\n[[host]]\naddress = \"10.7.0.1\"\nrole = \"pgw\"",
        )
        .unwrap();
        let a = run(&evs, &assets);
        let got: Vec<(String, String)> = a
            .iter()
            .map(|x| {
                (
                    x.rule.id.clone(),
                    x.event.get_str("src_ip").unwrap().into_owned(),
                )
            })
            .collect();
        assert_eq!(
            got.iter().cloned().collect::<BTreeSet<_>>(),
            [
                ("cellwarden.net.dns_tunnel", "10.5.0.3"),
                ("cellwarden.net.tcp53_not_dns", "10.6.0.1"),
                ("cellwarden.net.icmp_tunnel", "10.6.0.3"),
                ("cellwarden.net.gtp_unexpected", "10.2.0.5"),
            ]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<BTreeSet<_>>()
        );
        let gtp = a
            .iter()
            .find(|x| x.rule.id == "cellwarden.net.gtp_unexpected")
            .unwrap();
        assert_eq!(gtp.level, Level::High);
        assert_eq!(gtp.event.get_str("src_role").unwrap(), "billing-db");
    }

    /// A gateway and roaming partners speaking GTP and Diameter every day; on day 5 the DNS
    /// server starts GTP to an outside host and a database server speaks Diameter.
    fn core_scenario() -> Vec<F<'static>> {
        let mut list = Vec::new();
        for d in 0..8 {
            let t = T0 + d * DAY;
            // The gateway and a roaming partner's: GTP-U in large, regular chunks, all day
            // long; GTP-C now and then; Diameter to the partner's edge agent.
            for k in 0..6 {
                list.push(F {
                    t: t + 3600 * (k + 1),
                    src: "10.50.0.10",
                    dst: "198.18.5.1",
                    port: 2152,
                    proto: "udp",
                    bytes: (900 << 20) + k * 1000,
                    dur: 3000.0,
                    service: None,
                });
                list.push(F {
                    t: t + 3600 * (k + 1) + 5,
                    src: "198.18.5.1",
                    dst: "10.50.0.10",
                    port: 2152,
                    proto: "udp",
                    bytes: 800 << 20,
                    dur: 3000.0,
                    service: None,
                });
            }
            list.push(F {
                t: t + 600,
                src: "10.50.0.10",
                dst: "198.18.5.2",
                port: 2123,
                proto: "udp",
                bytes: 4000,
                dur: 1.0,
                service: None,
            });
            list.push(F {
                t: t + 700,
                src: "10.60.0.5",
                dst: "198.18.5.9",
                port: 3868,
                proto: "tcp",
                bytes: 50_000,
                dur: 80_000.0,
                service: None,
            });
        }
        // Day 5: the DNS server starts GTP to an outside host, a database server Diameter.
        list.push(F {
            t: T0 + 5 * DAY + 900,
            src: "10.40.0.53",
            dst: "203.0.113.200",
            port: 2152,
            proto: "udp",
            bytes: 3 << 20,
            dur: 300.0,
            service: None,
        });
        list.push(F {
            t: T0 + 5 * DAY + 950,
            src: "10.30.0.10",
            dst: "198.18.5.9",
            port: 3868,
            proto: "tcp",
            bytes: 9000,
            dur: 2.0,
            service: None,
        });
        list
    }

    /// Flows split by source host and DNS by domain, each partition judged with the roles
    /// all partitions' traffic shows, give together the alerts of one judgement; judged
    /// alone, they do not.
    #[test]
    fn partitions_judged_with_the_shared_roles_equal_the_whole() {
        let assets = Assets::default();
        let c = NetConfig::default();
        let mut evs = flows(&core_scenario());
        for k in 0..120i64 {
            let q = format!("{:040x}.tunnel.example", k * 7_919_i64.pow(4));
            evs.push(dns_event(
                T0 + 5 * DAY + k,
                "10.30.0.10",
                &q,
                "TXT",
                9000 + k as u64,
            ));
        }
        let render = |a: &[Alert]| -> Vec<String> {
            let mut v: Vec<String> = a
                .iter()
                .map(|x| format!("{} {:?}", x.rule.id, x.event.fields))
                .collect();
            v.sort();
            v
        };
        let whole = render(&run(&evs, &assets));
        assert!(whole.iter().any(|a| a.contains("dns_tunnel")), "{whole:#?}");
        assert!(
            whole.iter().any(|a| a.contains("new_core_speaker")),
            "{whole:#?}"
        );
        let mut alone_differs = false;
        for n in 1..=4u64 {
            let part = |e: &Event<'_>| {
                let key = crate::collect::partition_key(e).expect("a flow");
                key.bytes().fold(0u64, |h, b| h.wrapping_mul(31) + b as u64) % n
            };
            let parts: Vec<FlowAggregates> = (0..n)
                .map(|p| {
                    let mut col = FlowCollector::new(Arc::new(assets.clone()), c.collect_limits());
                    for e in evs.iter().filter(|e| part(e) == p) {
                        col.observe(e);
                    }
                    let mut agg = col.into_aggregates();
                    agg.finish();
                    agg
                })
                .collect();
            let shares: Vec<crate::share::NetShare> = parts
                .iter()
                .map(|a| crate::share::NetShare::of(a, c.min_history_days))
                .collect();
            let back: Vec<crate::share::NetShare> = shares
                .iter()
                .map(|s| crate::share::NetShare::from_json(&s.to_json()).unwrap())
                .collect();
            assert_eq!(back, shares);
            let view = crate::share::NetGlobal::merge(&shares);
            let got: Vec<Alert> = parts
                .iter()
                .flat_map(|a| judge_partition(a, &assets, &c, &view).alerts)
                .collect();
            assert_eq!(render(&got), whole, "{n} partitions");
            let alone: Vec<Alert> = parts
                .iter()
                .flat_map(|a| judge(a, &assets, &c).alerts)
                .collect();
            alone_differs |= render(&alone) != whole;
        }
        assert!(alone_differs, "the scenario needs no shared roles");
    }

    #[test]
    fn core_roles_are_learnt_and_new_speakers_alert() {
        // No asset file: roles come from traffic.
        let assets = Assets::default();
        let list = core_scenario();
        let a = run(&flows(&list), &assets);
        let found: Vec<(&str, String)> = a
            .iter()
            .map(|x| {
                (
                    x.rule.id.as_str(),
                    x.event.get_str("src_ip").unwrap_or_default().into_owned(),
                )
            })
            .collect();
        assert_eq!(
            found,
            vec![
                ("cellwarden.net.gtp_unexpected", "10.40.0.53".to_owned()),
                ("cellwarden.net.new_core_speaker", "10.30.0.10".to_owned()),
            ],
            "{found:?}"
        );
        // What was learnt, as an asset file that reads back and gives the same quiet.
        let mut c = FlowCollector::new(
            Arc::new(assets.clone()),
            NetConfig::default().collect_limits(),
        );
        for e in flows(&list) {
            c.observe(&e);
        }
        let agg = c.into_aggregates();
        let roles = crate::roles::learn(&agg, 3);
        let toml = roles.to_toml(&assets);
        assert!(
            toml.contains("address = \"10.50.0.10\"\nrole = \"gsn\""),
            "{toml}"
        );
        assert!(
            toml.contains("address = \"198.18.5.1\"\nrole = \"gsn\""),
            "{toml}"
        );
        assert!(toml.contains("role = \"diameter\""), "{toml}");
        assert!(!toml.contains("10.40.0.53"), "{toml}");
        let learnt = Assets::from_toml(&toml).unwrap();
        let again = run(&flows(&list), &learnt);
        assert_eq!(
            rules(&again),
            vec![
                "cellwarden.net.gtp_unexpected",
                "cellwarden.net.new_core_speaker"
            ]
        );
    }

    #[test]
    fn config_sections() {
        let c = NetConfig::from_toml("[db]\nmin_history_days = 9\n[net]\nchunk_min_count = 5\n")
            .unwrap();
        assert_eq!(c.chunk_min_count, 5);
        assert!(NetConfig::from_toml("[net]\nnope = 1").is_err());
    }
}
