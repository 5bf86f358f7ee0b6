//! What one partition of the database-access state tells the others, so that accounts split
//! over several processes are judged as one process judges them all.
//!
//! The state is partitioned by account: an account's statements, days, sessions and reads
//! are all in one partition, so the per-account detections (new host, program, hour, record
//! type, bulk reads and exports, watchlist reads) need nothing else. Four things compare an
//! account with the rest, and are exchanged in two rounds at each closing day:
//!
//! 1. [`Share`]: the identifier links seen (persons are built from everyone's), the distinct
//!    subscribers read (the population of the targeted-lookup chance model), the accounts
//!    created or granted rights (the creator's and the user's partitions differ) and the
//!    first day of the logs (standing exports). Merged into a [`Global`].
//! 2. [`PeerShare`]: each account's role and the length of its target list, computed with the
//!    global view of round one; the targeted-lookup detection compares an account with its
//!    peers in every partition.
//!
//! Merging is commutative (sums, unions, minimums), so the order shares arrive in does not
//! matter. Each share is the whole of its partition's contribution, not a delta: a worker
//! that takes over a partition sends it again from the rebuilt state.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::access::{Aggregates, Created, Day, Evidence};
use crate::ids::{Digits, IdKind, SubscriberId};
use crate::sql::StatementKind;

/// Round one: what a partition contributes to the global view.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Share {
    /// Identifier links (see [`crate::persons`]) with their statement counts.
    pub links: BTreeMap<(SubscriberId, SubscriberId), u64>,
    /// Distinct subscribers read (sorted), unless left out (see [`Share::of_partition`]).
    pub subscribers: Vec<SubscriberId>,
    /// Distinct subscribers read that the list leaves out.
    pub unlisted: u64,
    /// Accounts created or granted rights (sorted, distinct).
    pub created: Vec<Created>,
    /// The first day with a statement.
    pub first_day: Option<Day>,
    /// Client hosts of the accounts (sorted, distinct): the scope report joins the outbound
    /// transfers from those of suspicious accounts, and flows are partitioned by host.
    pub client_hosts: Vec<String>,
}

impl Share {
    /// The share of finished aggregates.
    pub fn of(agg: &Aggregates) -> Share {
        let mut subscribers: Vec<SubscriberId> = agg.subjects.iter().map(|(k, _)| k.1).collect();
        subscribers.sort_unstable();
        subscribers.dedup();
        let mut created = agg.created.clone();
        created.sort();
        created.dedup();
        Share {
            links: agg.links.clone(),
            subscribers,
            unlisted: 0,
            created,
            first_day: agg.days.keys().map(|(_, d)| *d).min(),
            client_hosts: agg
                .days
                .values()
                .flat_map(|d| d.hosts.keys().map(|h| h.to_string()))
                .collect::<std::collections::BTreeSet<String>>()
                .into_iter()
                .collect(),
        }
    }

    /// The share of one of `partitions` partitions, for a subscriber base of `base`
    /// (`subscriber_base`; 0 when not configured). The chance model uses the larger of the
    /// base and the distinct subscribers read; when each partition reads at most
    /// `base / partitions` of them, all of them together read at most the base, so their
    /// lists (the largest part of a share) are left out and only counted.
    pub fn of_partition(agg: &Aggregates, base: u64, partitions: u32) -> Share {
        let mut s = Share::of(agg);
        let n = s.subscribers.len() as u64;
        if base > 0 && n.saturating_mul(u64::from(partitions)) <= base {
            s.subscribers = Vec::new();
            s.unlisted = n;
        }
        s
    }
}

/// Round two: each account of a partition with its peer group and its target list's length.
pub type PeerShare = Vec<(String, Option<String>, usize)>;

/// An account of any partition with its peer group and its target list's length.
pub type Peer = (Arc<str>, Option<String>, usize);

/// The view of all partitions a partition is judged with.
#[derive(Debug, Clone, Default)]
pub struct Global {
    /// Everyone's identifier links.
    pub links: BTreeMap<(SubscriberId, SubscriberId), u64>,
    /// Distinct subscribers read by anyone: exact when every partition listed its own or none
    /// did (then at most the configured base); when some did not, an upper bound.
    pub population: u64,
    /// Everyone's created accounts (sorted, distinct).
    pub created: Vec<Created>,
    /// The first day of the logs.
    pub first_day: Option<Day>,
    /// Round two: every account with its role and target list length, by account; `None`
    /// until round two is merged.
    pub peers: Option<Vec<Peer>>,
    /// Client hosts of every partition's accounts (sorted, distinct).
    pub client_hosts: Vec<String>,
}

impl Global {
    /// The view of round one, from every partition's share.
    pub fn merge<'a>(shares: impl IntoIterator<Item = &'a Share>) -> Global {
        let mut g = Global::default();
        let mut subscribers: Vec<SubscriberId> = Vec::new();
        let mut unlisted = 0u64;
        for s in shares {
            unlisted += s.unlisted;
            for (k, n) in &s.links {
                *g.links.entry(*k).or_default() += n;
            }
            subscribers.extend(&s.subscribers);
            g.created.extend(s.created.iter().cloned());
            g.client_hosts.extend(s.client_hosts.iter().cloned());
            g.first_day = match (g.first_day, s.first_day) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        subscribers.sort_unstable();
        subscribers.dedup();
        g.population = subscribers.len() as u64 + unlisted;
        g.created.sort();
        g.created.dedup();
        g.client_hosts.sort();
        g.client_hosts.dedup();
        g
    }

    /// Adds round two: every partition's peer share.
    pub fn with_peers<'a>(mut self, shares: impl IntoIterator<Item = &'a PeerShare>) -> Global {
        let mut all: Vec<Peer> = shares
            .into_iter()
            .flatten()
            .map(|(a, r, n)| (Arc::from(a.as_str()), r.clone(), *n))
            .collect();
        all.sort();
        all.dedup();
        self.peers = Some(all);
        self
    }
}

/// The wire form of a [`Share`] (JSON).
#[derive(Serialize, Deserialize)]
struct ShareWire {
    links: Vec<(String, String, u64)>,
    subscribers: Vec<String>,
    #[serde(default)]
    unlisted: u64,
    /// (principal, kind, by, time, file, record).
    created: Vec<(String, String, String, String, String, u64)>,
    first_day: Option<Day>,
    #[serde(default)]
    client_hosts: Vec<String>,
}

fn id_text(id: &SubscriberId) -> String {
    format!("{}:{}", id.kind, id.value)
}

fn id_of(text: &str) -> Result<SubscriberId, String> {
    let (k, v) = text
        .split_once(':')
        .ok_or_else(|| format!("not an identifier: {text}"))?;
    let kind = [IdKind::Msisdn, IdKind::Imsi, IdKind::Imei, IdKind::Iccid]
        .into_iter()
        .find(|x| x.as_str() == k)
        .ok_or_else(|| format!("unknown identifier kind: {k}"))?;
    let value = Digits::new(v).ok_or_else(|| format!("not digits: {v}"))?;
    Ok(SubscriberId { kind, value })
}

impl Share {
    /// JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        let w = ShareWire {
            links: self
                .links
                .iter()
                .map(|((a, b), n)| (id_text(a), id_text(b), *n))
                .collect(),
            subscribers: self.subscribers.iter().map(id_text).collect(),
            unlisted: self.unlisted,
            created: self
                .created
                .iter()
                .map(|c| {
                    (
                        c.principal.clone(),
                        c.kind.as_str().to_owned(),
                        c.by.to_string(),
                        c.evidence.time.to_string(),
                        c.evidence.file.to_string(),
                        c.evidence.record,
                    )
                })
                .collect(),
            first_day: self.first_day,
            client_hosts: self.client_hosts.clone(),
        };
        serde_json::to_vec(&w).expect("plain data")
    }

    /// Reads [`Share::to_json`]'s bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Share, String> {
        let w: ShareWire = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let mut links = BTreeMap::new();
        for (a, b, n) in w.links {
            links.insert((id_of(&a)?, id_of(&b)?), n);
        }
        let subscribers = w
            .subscribers
            .iter()
            .map(|s| id_of(s))
            .collect::<Result<_, _>>()?;
        let mut created = Vec::new();
        for (principal, kind, by, time, file, record) in w.created {
            let kind = match kind.as_str() {
                "create_user" => StatementKind::CreateUser,
                "grant" => StatementKind::Grant,
                k => return Err(format!("not an account statement: {k}")),
            };
            created.push(Created {
                principal,
                kind,
                by: Arc::from(by.as_str()),
                evidence: Evidence {
                    time: time.parse().map_err(|e| format!("{time}: {e}"))?,
                    file: Arc::from(file.as_str()),
                    record,
                },
            });
        }
        Ok(Share {
            links,
            subscribers,
            unlisted: w.unlisted,
            created,
            first_day: w.first_day,
            client_hosts: w.client_hosts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_read_back_and_merge_in_any_order() {
        let id = |t: &str| id_of(t).unwrap();
        let ev = |t: &str, r| Evidence {
            time: t.parse().unwrap(),
            file: Arc::from("pg.log"),
            record: r,
        };
        let a = Share {
            links: [((id("msisdn:33611"), id("imsi:20801")), 2)].into(),
            subscribers: vec![id("msisdn:33611"), id("imsi:20801")],
            unlisted: 0,
            created: vec![Created {
                principal: "intruder".into(),
                kind: StatementKind::CreateUser,
                by: Arc::from("dba"),
                evidence: ev("2026-03-04T03:12:09.123456789Z", 7),
            }],
            first_day: Some(20_500),
            client_hosts: vec!["10.0.0.5".into(), "app-01".into()],
        };
        let b = Share {
            links: [((id("msisdn:33611"), id("imsi:20801")), 1)].into(),
            subscribers: vec![id("msisdn:33611"), id("imei:3555")],
            unlisted: 0,
            created: Vec::new(),
            first_day: Some(20_499),
            client_hosts: vec!["10.0.0.5".into(), "10.0.0.7".into()],
        };
        assert_eq!(Share::from_json(&a.to_json()).unwrap(), a);
        let g = Global::merge([&a, &b]);
        let h = Global::merge([&b, &a]);
        assert_eq!(g.links, h.links);
        assert_eq!(g.links.values().copied().collect::<Vec<_>>(), vec![3]);
        assert_eq!((g.population, g.first_day), (3, Some(20_499)));
        assert_eq!(g.created, a.created);
        assert_eq!(g.client_hosts, ["10.0.0.5", "10.0.0.7", "app-01"]);
        assert_eq!(h.client_hosts, g.client_hosts);
        assert!(Share::from_json(b"{\"links\":[[\"x\",\"y\",1]]}").is_err());
    }
}
