//! What one partition of the flow state tells the others when the flow analytics run
//! partitioned over several processes. Flows are partitioned by source host and DNS queries
//! by registered domain (see [`crate::collect::partition_key`]), so every detection reads its
//! own partition, except the core network roles: which hosts speak GTP, Diameter, SIGTRAN or
//! RADIUS is learnt from everyone's traffic in the first days of the logs. A partition shares
//! its core traffic keys of its learning window and its first day; merged, they give every
//! partition the roles one process learns.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::collect::{Day, FlowAggregates};
use crate::protocols::Core;
use crate::roles::CoreRoles;

/// A partition's share: core traffic keys that may fall in the learning window, and the first
/// day with a flow.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetShare {
    /// (source, destination, protocol, day), sorted.
    pub core: Vec<(IpAddr, IpAddr, Core, Day)>,
    /// The partition's first day with a flow.
    pub first_day: Option<Day>,
}

impl NetShare {
    /// The share of a partition's aggregates. The global window starts at or before this
    /// partition's first day, so keys past its own window are never needed.
    pub fn of(agg: &FlowAggregates, window_days: usize) -> NetShare {
        let first_day = crate::roles::first_day(agg);
        let last = first_day.map(|f| f + window_days.max(1) as Day - 1);
        NetShare {
            core: agg
                .core
                .keys()
                .filter(|k| last.is_some_and(|l| k.3 <= l))
                .copied()
                .collect(),
            first_day,
        }
    }

    /// JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        let w = Wire {
            core: self
                .core
                .iter()
                .map(|(s, d, c, day)| (*s, *d, c.name().to_owned(), *day))
                .collect(),
            first_day: self.first_day,
        };
        serde_json::to_vec(&w).expect("plain data")
    }

    /// Reads [`NetShare::to_json`]'s bytes.
    pub fn from_json(bytes: &[u8]) -> Result<NetShare, String> {
        let w: Wire = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let mut core = Vec::with_capacity(w.core.len());
        for (s, d, name, day) in w.core {
            let c = Core::ALL
                .into_iter()
                .find(|c| c.name() == name)
                .ok_or_else(|| format!("unknown core protocol: {name}"))?;
            core.push((s, d, c, day));
        }
        Ok(NetShare {
            core,
            first_day: w.first_day,
        })
    }
}

#[derive(Serialize, Deserialize)]
struct Wire {
    core: Vec<(IpAddr, IpAddr, String, Day)>,
    first_day: Option<Day>,
}

/// Every partition's shares merged.
#[derive(Debug, Clone, Default)]
pub struct NetGlobal {
    core: BTreeSet<(IpAddr, IpAddr, Core, Day)>,
    first_day: Option<Day>,
}

impl NetGlobal {
    /// Merges the shares (in any order).
    pub fn merge<'a>(shares: impl IntoIterator<Item = &'a NetShare>) -> NetGlobal {
        let mut g = NetGlobal::default();
        for s in shares {
            g.core.extend(s.core.iter().copied());
            g.first_day = match (g.first_day, s.first_day) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        g
    }

    /// The core roles learnt from everyone's traffic.
    pub fn roles(&self, window_days: usize) -> CoreRoles {
        crate::roles::learn_from(self.first_day, &self.core, window_days)
    }
}
