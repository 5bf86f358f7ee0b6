//! Core network roles learnt from traffic: which hosts speak the core protocols (GTP-C, GTP-U,
//! Diameter, SIGTRAN, RADIUS) and with which peers, in the first days of the flow logs, as the
//! database analytics learn each account's habits.
//!
//! A host is a speaker of a protocol when it spoke it on at least two days of the learning
//! window (the first `min_history_days` days of the logs; one day when the logs hold only
//! one): gateways and roaming partners talk every day, an intruder's tool on one. A pair of
//! speakers that talked in the window is an established infrastructure pair: the volume,
//! chunked-transfer, long-connection and beaconing detectors leave its traffic on that
//! protocol alone. The asset file wins: a host it gives a role speaks exactly the protocols of
//! that role. [`CoreRoles::to_toml`] writes what was learnt as an asset file to correct
//! (`hunt --assets-out`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::net::IpAddr;

use crate::assets::Assets;
use crate::collect::{Day, FlowAggregates};
pub use crate::protocols::Core;

/// What the learning window showed.
#[derive(Debug, Clone, Default)]
pub struct CoreRoles {
    /// The window (first and last UTC day), if the logs had any flow.
    pub window: Option<(Day, Day)>,
    /// Speakers learnt: host → protocol → days it spoke it in the window.
    pub speakers: BTreeMap<IpAddr, BTreeMap<Core, BTreeSet<Day>>>,
    /// Pairs (either direction, lower address first) that talked in the window.
    pub pairs: BTreeSet<(IpAddr, IpAddr, Core)>,
    /// Days a host needs in the window to be a speaker.
    pub min_days: usize,
}

fn ordered(a: IpAddr, b: IpAddr) -> (IpAddr, IpAddr) {
    if a <= b { (a, b) } else { (b, a) }
}

/// Learns the speakers of the core protocols from the first `window_days` days of the logs.
pub fn learn(agg: &FlowAggregates, window_days: usize) -> CoreRoles {
    learn_from(first_day(agg), agg.core.keys(), window_days)
}

/// The first day with a flow.
pub fn first_day(agg: &FlowAggregates) -> Option<Day> {
    agg.core
        .keys()
        .map(|(_, _, _, d)| *d)
        .chain(agg.pairs.keys().map(|(_, _, d)| *d))
        .min()
}

/// Learns from the core traffic keys (source, destination, protocol, day) of the logs
/// whose first day is `first` (those of several partitions: see [`crate::share`]).
pub fn learn_from<'k>(
    first: Option<Day>,
    core: impl IntoIterator<Item = &'k (IpAddr, IpAddr, Core, Day)>,
    window_days: usize,
) -> CoreRoles {
    let Some(first) = first else {
        return CoreRoles::default();
    };
    let last = first + window_days.max(1) as Day - 1;
    let mut roles = CoreRoles {
        window: Some((first, last)),
        ..CoreRoles::default()
    };
    let mut days_seen: BTreeSet<Day> = BTreeSet::new();
    for (src, dst, core, day) in core {
        if *day > last {
            continue;
        }
        days_seen.insert(*day);
        for h in [*src, *dst] {
            roles
                .speakers
                .entry(h)
                .or_default()
                .entry(*core)
                .or_default()
                .insert(*day);
        }
        roles.pairs.insert({
            let (a, b) = ordered(*src, *dst);
            (a, b, *core)
        });
    }
    roles.min_days = days_seen.len().clamp(1, 2);
    let min = roles.min_days;
    for protos in roles.speakers.values_mut() {
        protos.retain(|_, days| days.len() >= min);
    }
    roles.speakers.retain(|_, p| !p.is_empty());
    roles
}

impl CoreRoles {
    /// Whether `ip` speaks `core`: by its asset role when the asset file gives it one, else as
    /// learnt.
    pub fn speaks(&self, assets: &Assets, ip: IpAddr, core: Core) -> bool {
        match assets.role(ip) {
            Some(role) => core.roles().contains(&role),
            None => self
                .speakers
                .get(&ip)
                .is_some_and(|p| p.contains_key(&core)),
        }
    }

    /// Whether traffic between `a` and `b` on `port` is an established pair of speakers of a
    /// core protocol on that port.
    pub fn infrastructure(
        &self,
        assets: &Assets,
        a: IpAddr,
        b: IpAddr,
        proto: &str,
        port: Option<u16>,
    ) -> bool {
        let Some(core) = Core::of(proto, None, port).or_else(|| {
            // Transport unknown (aggregates keep ports only): the port decides.
            Core::ALL
                .into_iter()
                .find(|c| c.port() == port && port.is_some())
        }) else {
            return false;
        };
        let (x, y) = ordered(a, b);
        self.pairs.contains(&(x, y, core))
            && self.speaks(assets, a, core)
            && self.speaks(assets, b, core)
    }

    /// What was learnt as an asset file to correct: the given file's networks and hosts, then
    /// a role for each learnt speaker the asset file does not name, and an allow entry for
    /// each established pair.
    pub fn to_toml(&self, assets: &Assets) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# Core network roles cellwarden learnt from traffic. Correct it and pass it with\n\
             # --assets: a role given there wins over what is learnt."
        );
        if let Some((a, b)) = self.window {
            let _ = writeln!(
                out,
                "# Learning window: UTC days {} to {} (speakers need {} day(s) in it).",
                day_name(a),
                day_name(b),
                self.min_days
            );
        }
        let internal: Vec<String> = assets
            .internal_networks()
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect();
        let _ = writeln!(out, "internal = [{}]", internal.join(", "));
        for h in assets.hosts() {
            let _ = writeln!(out, "\n[[host]]\naddress = \"{}\"", h.net);
            if let Some(n) = &h.name {
                let _ = writeln!(out, "name = {}", toml_string(n));
            }
            let _ = writeln!(out, "role = {}", toml_string(&h.role));
        }
        for (ip, protos) in &self.speakers {
            if assets.role(*ip).is_some() {
                continue;
            }
            let Some(first) = Core::ALL.into_iter().find(|c| protos.contains_key(c)) else {
                continue;
            };
            let said: Vec<String> = Core::ALL
                .into_iter()
                .filter_map(|c| {
                    let days = protos.get(&c)?;
                    let peers = self
                        .pairs
                        .iter()
                        .filter(|(a, b, k)| *k == c && (a == ip || b == ip))
                        .count();
                    Some(format!(
                        "{} with {peers} peer(s) on {} day(s)",
                        c.name(),
                        days.len()
                    ))
                })
                .collect();
            let _ = writeln!(
                out,
                "\n[[host]]\naddress = \"{ip}\"\nrole = \"{}\"\n# learnt: {}",
                first.learnt_role(),
                said.join("; ")
            );
        }
        for (a, b, core) in &self.pairs {
            if !(self.speaks(assets, *a, *core) && self.speaks(assets, *b, *core)) {
                continue;
            }
            // The internal side first, as allow entries are read (source → destination).
            let (src, dst) = if assets.is_internal(*a) || !assets.is_internal(*b) {
                (*a, *b)
            } else {
                (*b, *a)
            };
            let ports = core
                .port()
                .map(|p| format!("\nports = [{p}]"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "\n[[allow]]\nsrc = \"{src}\"\ndst = \"{dst}\"{ports}\nreason = \"{} between infrastructure peers (learnt)\"",
                core.name()
            );
        }
        out
    }
}

fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn day_name(d: Day) -> String {
    jiff::Timestamp::from_second(d as i64 * 86_400)
        .map(|t| t.strftime("%Y-%m-%d").to_string())
        .unwrap_or_else(|_| d.to_string())
}
