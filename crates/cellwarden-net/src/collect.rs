//! Flow events reduced to the aggregates the analytics judge. Commutative (sums, unions, the
//! earliest evidence, time-sorted capped lists), so each worker keeps its own and they merge in
//! any order with the same result. State, approximately (64-bit):
//! - per internal source, external destination and UTC day ([`PairDay`]): 120 bytes;
//! - per (source, destination, port) of outbound connections: their times and sizes, at most
//!   [`BEACON_CAP`] (16 bytes each) — the earliest ones;
//! - per large outbound flow (≥ `chunk_min_bytes`) and per long connection: 80 bytes each;
//! - per (source, queried domain, UTC day) of DNS queries: 100 bytes plus at most
//!   [`DNS_NAMES_CAP`] distinct names;
//! - per (source, day): the tunnel protocols used, 40 bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use cellwarden_event::{Event, Timestamp, Value};
use rustc_hash::FxHashMap as HashMap;

/// Days since 1970-01-01 (UTC).
pub use cellwarden_analytics::stats::{Day, day_of};

use crate::protocols::Core;

/// Connection times kept per (source, destination, port), the earliest ones.
pub const BEACON_CAP: usize = 2048;
/// Distinct query names kept per (source, domain) (counting stops there).
pub const DNS_NAMES_CAP: usize = 1024;

/// Where a flow was logged.
#[derive(
    serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub struct Evidence {
    /// Flow start.
    pub time: Timestamp,
    /// Log file.
    pub file: Arc<str>,
    /// Line or record in it.
    pub record: u64,
}

/// One flow, as the analytics see it.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Flow {
    /// Where it was logged.
    pub evidence: Evidence,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Destination port (none for ICMP).
    pub dst_port: Option<u16>,
    /// Transport protocol (`tcp`, `udp`, `icmp`).
    pub proto: String,
    /// Bytes sent by the source.
    pub bytes_out: u64,
    /// Bytes received by the source.
    pub bytes_in: u64,
    /// Whole seconds.
    pub duration: u64,
}

/// Outbound traffic of one internal source to one external destination on one day.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Default)]
pub struct PairDay {
    /// Bytes sent.
    pub bytes_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Flows.
    pub flows: u64,
    /// The day's first flow.
    pub first: Option<Evidence>,
    /// Destination ports (up to 16).
    pub ports: Ports,
}

/// Distinct destination ports, sorted, held inline while there are few (a pair-day's set
/// used to be a B-tree of its own: an allocation and a pointer to follow per flow).
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct Ports(smallvec::SmallVec<[u16; 8]>);

impl Ports {
    /// Adds a port; whether it was new.
    pub fn insert(&mut self, port: u16) -> bool {
        match self.0.binary_search(&port) {
            Ok(_) => false,
            Err(at) => {
                self.0.insert(at, port);
                true
            }
        }
    }
}

impl std::ops::Deref for Ports {
    type Target = [u16];
    fn deref(&self) -> &[u16] {
        &self.0
    }
}

/// DNS queries of one source under one domain.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Default)]
pub struct DnsStats {
    /// Queries.
    pub queries: u64,
    /// TXT queries.
    pub txt: u64,
    /// Distinct names asked (up to the cap).
    pub names: BTreeSet<String>,
    /// Sum over queries of the longest label's length and of its entropy (bits per char).
    pub label_len_sum: u64,
    /// Sum of the longest labels' entropy (bits per character).
    pub entropy_sum: f64,
    /// The first query.
    pub first: Option<Evidence>,
    /// Resolvers the queries went to.
    pub resolvers: BTreeSet<IpAddr>,
}

/// Kinds of flows judged one by one.
#[derive(
    serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub enum Odd {
    /// TCP to port 53 that is not DNS.
    TcpDnsPort,
    /// ICMP to an outside host.
    Icmp,
    /// GTP-U/GTP-C (UDP 2152/2123).
    Gtp,
}

/// Flows of one odd kind between two hosts on one day.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Default)]
pub struct OddStats {
    /// Flows.
    pub flows: u64,
    /// Bytes in both directions.
    pub bytes: u64,
    /// Packets.
    pub packets: u64,
    /// The first flow.
    pub first: Option<Evidence>,
    /// Services Zeek named for these flows (for TCP/53).
    pub services: BTreeSet<String>,
}

/// Tunnel and remote-access protocols recognised by destination port.
pub const TUNNEL_PORTS: &[(u16, &str)] = &[
    (22, "ssh"),
    (1194, "openvpn"),
    (51820, "wireguard"),
    (5555, "softether"),
    (992, "softether"),
    (1723, "pptp"),
    (500, "ipsec"),
    (4500, "ipsec"),
];

/// Tunnel protocols one host used on one day: protocol → first (evidence, destination, port).
pub type TunnelUse = BTreeMap<&'static str, (Evidence, IpAddr, u16)>;

/// [`FlowAggregates::tunnels`] read back from a state snapshot.
fn tunnels_back<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<(IpAddr, Day), TunnelUse>, D::Error> {
    type Named = BTreeMap<(IpAddr, Day), BTreeMap<String, (Evidence, IpAddr, u16)>>;
    let named = <Named as serde::Deserialize>::deserialize(d)?;
    Ok(named
        .into_iter()
        .map(|(k, v)| {
            let v = v
                .into_iter()
                .map(|(p, x)| (cellwarden_event::static_text(&p), x))
                .collect();
            (k, v)
        })
        .collect())
}

/// Everything gathered from flow events.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct FlowAggregates {
    /// (source, destination, day) → outbound traffic.
    pub pairs: BTreeMap<(IpAddr, IpAddr, Day), PairDay>,
    /// Flows sending at least `chunk_min_bytes` (chunked transfers).
    pub large: Vec<Flow>,
    /// Flows lasting at least `long_min_secs`.
    pub long: Vec<Flow>,
    /// (source, destination, port) → start times (s) and bytes of its connections (beaconing).
    pub conns: BTreeMap<(IpAddr, IpAddr, u16), Vec<(i64, u64)>>,
    /// (source, domain, day) → DNS statistics.
    pub dns: BTreeMap<(IpAddr, String, Day), DnsStats>,
    /// (kind, source, destination, day) → flows judged one by one.
    pub odd: BTreeMap<(Odd, IpAddr, IpAddr, Day), OddStats>,
    /// (source, day) → protocol → first evidence (destination, port).
    #[serde(deserialize_with = "tunnels_back")]
    pub tunnels: BTreeMap<(IpAddr, Day), TunnelUse>,
    /// (source, destination, protocol, day) → core network traffic, inside or out (the
    /// speakers of GTP, Diameter, SIGTRAN and RADIUS; see [`crate::roles`]).
    pub core: BTreeMap<(IpAddr, IpAddr, Core, Day), CoreStats>,
    /// Flow events read.
    pub flows: u64,
    /// DNS events read.
    pub dns_queries: u64,
}

/// Core network traffic of one pair on one day.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Default)]
pub struct CoreStats {
    /// Flows.
    pub flows: u64,
    /// Bytes both ways.
    pub bytes: u64,
    /// The day's first flow.
    pub first: Option<Evidence>,
}

/// Thresholds the collector needs (the rest are judged later).
#[derive(Debug, Clone, Copy)]
pub struct CollectLimits {
    /// Flows sending at least this many bytes are kept for chunked-transfer judging.
    pub chunk_min_bytes: u64,
    /// Flows lasting at least this many seconds are kept for long-connection judging.
    pub long_min_secs: u64,
    /// Days from the first one whose core traffic is kept for learning roles.
    pub learn_days: usize,
}

/// Where a flow was logged, borrowing its event's file name: an [`Evidence`] is made only
/// where one is kept (a day's first flow, a large one); merges compare kept ones through it.
/// Cloning the name's `Arc` for every flow wrote its reference count, shared with the threads
/// decoding the same file, twice a flow.
#[derive(Clone, Copy)]
struct At<'e> {
    time: Timestamp,
    file: &'e Arc<str>,
    record: u64,
}

impl<'e> From<&'e Evidence> for At<'e> {
    fn from(e: &'e Evidence) -> Self {
        At {
            time: e.time,
            file: &e.file,
            record: e.record,
        }
    }
}

impl At<'_> {
    /// Whether this comes before `e` (in [`Evidence`]'s order).
    fn before(&self, e: &Evidence) -> bool {
        (self.time, &**self.file, self.record) < (e.time, &*e.file, e.record)
    }

    fn owned(&self) -> Evidence {
        Evidence {
            time: self.time,
            file: Arc::clone(self.file),
            record: self.record,
        }
    }

    /// Keeps this in `slot` when it comes first.
    fn keep_first(&self, slot: &mut Option<Evidence>) {
        if slot.as_ref().is_none_or(|s| self.before(s)) {
            *slot = Some(self.owned());
        }
    }
}

/// The entity a flow event's state belongs to, for partitioning the state over several
/// processes ([`crate::share`]): a DNS query's registered domain, else the flow's source
/// address. `None` for events the collector does not take.
pub fn partition_key(ev: &Event<'_>) -> Option<String> {
    if !flow_logsource(ev) {
        return None;
    }
    let f = Seen::of(ev);
    let channel = f.channel.and_then(|c| c.as_text())?;
    if !ours(&channel) {
        return None;
    }
    if channel == "zeek_dns" {
        let q = f.query.and_then(|q| q.as_text())?;
        return Some(format!("dns {}", domain_of(&q)));
    }
    Some(format!("flow {}", f.src.and_then(ip)?))
}

/// The registered domain of a query name (its last two labels, or three under a two-letter
/// second level such as `co.uk`).
pub fn domain_of(name: &str) -> String {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = n.split('.').collect();
    let k = if labels.len() >= 3
        && labels[labels.len() - 2].len() <= 3
        && labels[labels.len() - 1].len() == 2
    {
        3
    } else {
        2
    };
    labels[labels.len().saturating_sub(k)..].join(".")
}

/// Shannon entropy in bits per character.
pub fn entropy(s: &str) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

fn num(v: &Value<'_>) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        v => v.as_text().and_then(|t| t.trim().parse().ok()),
    }
}

fn ip(v: &Value<'_>) -> Option<IpAddr> {
    v.as_text().and_then(|s| s.trim().parse().ok())
}

/// The fields the analytics read, found in one pass.
#[derive(Default)]
struct Seen<'e, 'a> {
    src: Option<&'e Value<'a>>,
    dst: Option<&'e Value<'a>>,
    dst_port: Option<&'e Value<'a>>,
    src_port: Option<&'e Value<'a>>,
    proto: Option<&'e Value<'a>>,
    bytes_out: Option<&'e Value<'a>>,
    bytes_in: Option<&'e Value<'a>>,
    packets: Option<&'e Value<'a>>,
    duration: Option<&'e Value<'a>>,
    service: Option<&'e Value<'a>>,
    channel: Option<&'e Value<'a>>,
    query: Option<&'e Value<'a>>,
    qtype: Option<&'e Value<'a>>,
}

impl<'e, 'a> Seen<'e, 'a> {
    fn of(ev: &'e Event<'a>) -> Self {
        let mut s = Seen::default();
        for (k, v) in &ev.fields {
            let slot = match k.as_ref() {
                "src_ip" => &mut s.src,
                "dst_ip" => &mut s.dst,
                "dst_port" => &mut s.dst_port,
                "src_port" => &mut s.src_port,
                "proto" => &mut s.proto,
                "bytes_out" => &mut s.bytes_out,
                "bytes_in" => &mut s.bytes_in,
                "packets" => &mut s.packets,
                "duration" => &mut s.duration,
                "service" => &mut s.service,
                "Channel" => &mut s.channel,
                "query" => &mut s.query,
                "qtype_name" => &mut s.qtype,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(v);
            }
        }
        s
    }
}

/// Text in lower case, copied only when it has capitals (protocol and service names rarely do).
fn lower(s: std::borrow::Cow<'_, str>) -> std::borrow::Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(s.to_ascii_lowercase())
    } else {
        s
    }
}

/// Connection (time, bytes) of one pair and port, and the latest one kept.
type Conns = (Vec<(i64, u64)>, (i64, u64));

fn flow_logsource(ev: &Event<'_>) -> bool {
    // The log source is resolved already: checking it first keeps other events cheap.
    ev.logsource.as_ref().is_none_or(|l| {
        l.categories
            .iter()
            .any(|c| &**c == "network_connection" || &**c == "dns")
    })
}

/// Channels of the flow sources the analytics read (Zeek, nfdump, NetFlow/IPFIX).
fn ours(channel: &str) -> bool {
    channel.starts_with("zeek_") || channel == "nfdump" || channel == "netflow"
}

/// Whether an event is a flow or DNS record of the kinds the analytics read.
pub fn is_flow_event(ev: &Event<'_>) -> bool {
    flow_logsource(ev) && ev.get_str("Channel").is_some_and(|c| ours(&c))
}

/// Gathers [`FlowAggregates`]; one per worker thread.
pub struct FlowCollector {
    assets: Arc<crate::Assets>,
    limits: CollectLimits,
    /// Pair-days, a table per day. Flows come about in time order, so nearly all update the
    /// newest day's table: a small one that stays in cache, where one table of every retained
    /// day missed the cache at each flow.
    pairs: DayTables<(IpAddr, IpAddr), PairDay>,
    conns: HashMap<(IpAddr, IpAddr, u16), Conns>,
    aggregates: FlowAggregates,
}

impl FlowCollector {
    /// A collector that keeps what the judges need.
    pub fn new(assets: Arc<crate::Assets>, limits: CollectLimits) -> Self {
        FlowCollector {
            assets,
            limits,
            pairs: Default::default(),
            conns: HashMap::default(),
            aggregates: FlowAggregates::default(),
        }
    }

    /// Takes one event; returns whether it was a flow the analytics keep.
    pub fn observe(&mut self, ev: &Event<'_>) -> bool {
        // The log source is resolved already: checking it first keeps other events cheap.
        if !flow_logsource(ev) {
            return false;
        }
        let f = Seen::of(ev);
        if !f
            .channel
            .and_then(|c| c.as_text())
            .is_some_and(|c| ours(&c))
        {
            return false;
        }
        let Some(time) = ev.timestamp else {
            return false;
        };
        let (Some(src), Some(dst)) = (f.src.and_then(ip), f.dst.and_then(ip)) else {
            return false;
        };
        let evidence = At {
            time,
            file: &ev.origin.file,
            record: ev.origin.record,
        };
        let day = day_of(time);
        if f.channel.and_then(|c| c.as_text()).as_deref() == Some("zeek_dns") {
            self.dns(&f, src, dst, day, evidence);
            return true;
        }
        self.aggregates.flows += 1;
        let n = |v: Option<&Value<'_>>| v.and_then(num).unwrap_or(0.0).max(0.0) as u64;
        let dst_port = f.dst_port.and_then(num).map(|p| p as u16);
        let src_port = f.src_port.and_then(num).map(|p| p as u16);
        let proto = f
            .proto
            .and_then(|p| p.as_text())
            .map(lower)
            .unwrap_or_default();
        let bytes_out = n(f.bytes_out);
        let bytes_in = n(f.bytes_in);
        let packets = n(f.packets);
        let duration = n(f.duration);
        let service = f
            .service
            .and_then(|s| s.as_text())
            .filter(|s| !s.is_empty())
            .map(lower);
        let outbound = self.assets.is_internal(src) && !self.assets.is_internal(dst);
        let agg = &mut self.aggregates;
        // Flows judged one by one, inside or out.
        let odd = if proto == "tcp" && dst_port == Some(53) {
            let not_dns = match &service {
                Some(s) => !s.split(',').any(|x| x == "dns"),
                None => bytes_out + bytes_in >= 1 << 20,
            };
            not_dns.then_some(Odd::TcpDnsPort)
        } else if proto.starts_with("icmp") && outbound {
            Some(Odd::Icmp)
        } else if proto == "udp"
            && [dst_port, src_port]
                .iter()
                .any(|p| matches!(p, Some(2152) | Some(2123)))
        {
            Some(Odd::Gtp)
        } else {
            None
        };
        if let Some(core) = Core::of(&proto, src_port, dst_port) {
            let c = agg.core.entry((src, dst, core, day)).or_default();
            c.flows += 1;
            c.bytes += bytes_out + bytes_in;
            evidence.keep_first(&mut c.first);
        }
        if let Some(kind) = odd {
            let o = agg.odd.entry((kind, src, dst, day)).or_default();
            o.flows += 1;
            o.bytes += bytes_out + bytes_in;
            o.packets += packets;
            evidence.keep_first(&mut o.first);
            if let Some(s) = &service
                && o.services.len() < 8
            {
                o.services.insert(s.to_string());
            }
        }
        if !outbound {
            return true;
        }
        let p = self.pairs.entry(day, (src, dst));
        p.bytes_out += bytes_out;
        p.bytes_in += bytes_in;
        p.flows += 1;
        evidence.keep_first(&mut p.first);
        if let Some(port) = dst_port
            && p.ports.len() < 16
        {
            p.ports.insert(port);
        }
        if let Some(port) = dst_port
            && let Some((_, name)) = TUNNEL_PORTS.iter().find(|(p, _)| *p == port)
        {
            let t = agg.tunnels.entry((src, day)).or_default();
            match t.get(name) {
                Some((e, _, _)) if !evidence.before(e) => {}
                _ => {
                    t.insert(name, (evidence.owned(), dst, port));
                }
            }
        }
        let flow = || Flow {
            evidence: evidence.owned(),
            src,
            dst,
            dst_port,
            proto: proto.to_string(),
            bytes_out,
            bytes_in,
            duration,
        };
        if bytes_out >= self.limits.chunk_min_bytes {
            agg.large.push(flow());
        }
        if duration >= self.limits.long_min_secs {
            agg.long.push(flow());
        }
        if let Some(port) = dst_port {
            let (c, max) = self.conns.entry((src, dst, port)).or_default();
            let item = (time.as_second(), bytes_out);
            if c.len() < BEACON_CAP {
                c.push(item);
                *max = (*max).max(item);
            } else if item < *max {
                // Keep the earliest ones: replace the latest (rare when input is in time order).
                if let Some(pos) = c.iter().position(|x| x == max) {
                    c[pos] = item;
                }
                *max = c.iter().copied().max().unwrap_or(item);
            }
        }
        true
    }

    fn dns(&mut self, f: &Seen<'_, '_>, src: IpAddr, resolver: IpAddr, day: Day, evidence: At<'_>) {
        let Some(q) = f.query.and_then(|q| q.as_text()) else {
            return;
        };
        if q.is_empty() {
            return;
        }
        let agg = &mut self.aggregates;
        agg.dns_queries += 1;
        let domain = domain_of(&q);
        let sub = q
            .trim_end_matches('.')
            .len()
            .saturating_sub(domain.len() + 1);
        let longest = q[..sub.min(q.len())]
            .split('.')
            .max_by_key(|l| l.len())
            .unwrap_or("");
        let d = agg.dns.entry((src, domain, day)).or_default();
        d.queries += 1;
        if f.qtype
            .and_then(|t| t.as_text())
            .is_some_and(|t| t.eq_ignore_ascii_case("TXT"))
        {
            d.txt += 1;
        }
        if d.names.len() < DNS_NAMES_CAP {
            d.names.insert(q.to_ascii_lowercase());
        }
        d.label_len_sum += longest.len() as u64;
        d.entropy_sum += entropy(longest);
        evidence.keep_first(&mut d.first);
        if d.resolvers.len() < 8 {
            d.resolvers.insert(resolver);
        }
    }

    /// The aggregates gathered so far, finished for judging, leaving the collector as it is.
    pub fn snapshot(&self) -> FlowAggregates {
        let mut a = self.aggregates.clone();
        a.pairs = self.pairs.iter().map(|(k, v)| (k, v.clone())).collect();
        a.conns = self
            .conns
            .iter()
            .map(|(k, (v, _))| {
                let mut v = v.clone();
                v.sort_unstable();
                (*k, v)
            })
            .collect();
        a.finish();
        a
    }

    /// Forgets the days before `day` (live detection keeps a window of days).
    pub fn evict_before(&mut self, day: Day) {
        let from = day as i64 * 86_400;
        self.pairs.evict_before(day);
        self.conns.retain(|_, (v, max)| {
            v.retain(|(t, _)| *t >= from);
            *max = v.iter().copied().max().unwrap_or_default();
            !v.is_empty()
        });
        self.aggregates.evict_before(day, self.limits.learn_days);
    }

    /// Entries held: (pair-days, connection series).
    pub fn size(&self) -> (usize, usize) {
        (self.pairs.len(), self.conns.len())
    }

    /// The aggregates gathered (ordered).
    pub fn into_aggregates(mut self) -> FlowAggregates {
        self.aggregates.pairs = self.pairs.into_iter().collect();
        self.aggregates.conns = self
            .conns
            .into_iter()
            .map(|(k, (mut v, _))| {
                v.sort_unstable();
                (k, v)
            })
            .collect();
        self.aggregates
    }
}

/// Entries keyed by day and by `K`, a hash table per day, days in order.
struct DayTables<K, V> {
    days: Vec<(Day, HashMap<K, V>)>,
    /// Where the day last asked for is in `days`.
    last: usize,
}

impl<K, V> Default for DayTables<K, V> {
    fn default() -> Self {
        DayTables {
            days: Vec::new(),
            last: 0,
        }
    }
}

impl<K: std::hash::Hash + Eq + Copy, V: Default> DayTables<K, V> {
    /// The entry of `key` on `day`, made when new.
    fn entry(&mut self, day: Day, key: K) -> &mut V {
        if self.days.get(self.last).is_none_or(|(d, _)| *d != day) {
            self.last = match self.days.binary_search_by_key(&day, |(d, _)| *d) {
                Ok(i) => i,
                Err(i) => {
                    self.days.insert(i, (day, HashMap::default()));
                    i
                }
            };
        }
        self.days[self.last].1.entry(key).or_default()
    }

    fn evict_before(&mut self, day: Day) {
        self.days.retain(|(d, _)| *d >= day);
        self.last = 0;
    }

    fn len(&self) -> usize {
        self.days.iter().map(|(_, t)| t.len()).sum()
    }
}

impl<V> DayTables<(IpAddr, IpAddr), V> {
    fn iter(&self) -> impl Iterator<Item = ((IpAddr, IpAddr, Day), &V)> {
        self.days
            .iter()
            .flat_map(|(d, t)| t.iter().map(move |(&(s, x), v)| ((s, x, *d), v)))
    }

    fn into_iter(self) -> impl Iterator<Item = ((IpAddr, IpAddr, Day), V)> {
        self.days
            .into_iter()
            .flat_map(|(d, t)| t.into_iter().map(move |((s, x), v)| ((s, x, d), v)))
    }
}

impl FlowAggregates {
    /// Merges another worker's aggregates (commutative).
    pub fn merge(&mut self, o: FlowAggregates) {
        for (k, p) in o.pairs {
            let s = self.pairs.entry(k).or_default();
            s.bytes_out += p.bytes_out;
            s.bytes_in += p.bytes_in;
            s.flows += p.flows;
            if let Some(e) = &p.first {
                At::from(e).keep_first(&mut s.first);
            }
            for &port in p.ports.iter() {
                if s.ports.len() < 16 {
                    s.ports.insert(port);
                }
            }
        }
        self.large.extend(o.large);
        self.long.extend(o.long);
        for (k, v) in o.conns {
            let s = self.conns.entry(k).or_default();
            s.extend(v);
            s.sort_unstable();
            s.truncate(BEACON_CAP);
        }
        for (k, d) in o.dns {
            let s = self.dns.entry(k).or_default();
            s.queries += d.queries;
            s.txt += d.txt;
            for n in d.names {
                if s.names.len() < DNS_NAMES_CAP {
                    s.names.insert(n);
                }
            }
            s.label_len_sum += d.label_len_sum;
            s.entropy_sum += d.entropy_sum;
            if let Some(e) = &d.first {
                At::from(e).keep_first(&mut s.first);
            }
            s.resolvers.extend(d.resolvers);
        }
        for (k, x) in o.odd {
            let s = self.odd.entry(k).or_default();
            s.flows += x.flows;
            s.bytes += x.bytes;
            s.packets += x.packets;
            if let Some(e) = &x.first {
                At::from(e).keep_first(&mut s.first);
            }
            s.services.extend(x.services);
        }
        for (k, t) in o.tunnels {
            let s = self.tunnels.entry(k).or_default();
            for (name, v) in t {
                match s.get(name) {
                    Some(x) if *x <= v => {}
                    _ => {
                        s.insert(name, v);
                    }
                }
            }
        }
        for (k, c) in o.core {
            let s = self.core.entry(k).or_default();
            s.flows += c.flows;
            s.bytes += c.bytes;
            if let Some(e) = &c.first {
                At::from(e).keep_first(&mut s.first);
            }
        }
        self.flows += o.flows;
        self.dns_queries += o.dns_queries;
    }

    /// Final order of the lists.
    pub fn finish(&mut self) {
        self.large.sort();
        self.long.sort();
    }

    /// Forgets the days before `day`, as [`FlowCollector::evict_before`] does (`learn_days`:
    /// the first days of core traffic, which roles are learnt from, stay).
    pub fn evict_before(&mut self, day: Day, learn_days: usize) {
        let from = day as i64 * 86_400;
        self.pairs.retain(|(_, _, d), _| *d >= day);
        self.conns.retain(|_, v| {
            v.retain(|(t, _)| *t >= from);
            !v.is_empty()
        });
        self.large.retain(|f| day_of(f.evidence.time) >= day);
        self.long.retain(|f| day_of(f.evidence.time) >= day);
        self.dns.retain(|(_, _, d), _| *d >= day);
        self.odd.retain(|(_, _, _, d), _| *d >= day);
        self.tunnels.retain(|(_, d), _| *d >= day);
        let learnt =
            self.core.keys().map(|(_, _, _, d)| *d).min().unwrap_or(day) + learn_days as Day;
        self.core.retain(|(_, _, _, d), _| *d >= day || *d < learnt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrowed_evidence_keeps_evidence_order() {
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a.log"), Arc::from("b.log"));
        let t = |s| Timestamp::from_second(s).unwrap();
        let all = [
            (t(5), &a, 9),
            (t(5), &a, 10),
            (t(5), &b, 1),
            (t(4), &b, 100),
            (t(6), &a, 0),
        ];
        for x in all {
            let at = At {
                time: x.0,
                file: x.1,
                record: x.2,
            };
            for y in all {
                let e = Evidence {
                    time: y.0,
                    file: Arc::clone(y.1),
                    record: y.2,
                };
                assert_eq!(at.before(&e), at.owned() < e, "{x:?} {y:?}");
            }
        }
        let mut first = None;
        for x in all {
            At {
                time: x.0,
                file: x.1,
                record: x.2,
            }
            .keep_first(&mut first);
        }
        assert_eq!(
            first,
            Some(Evidence {
                time: t(4),
                file: Arc::clone(&b),
                record: 100
            })
        );
    }

    #[test]
    fn day_tables_keep_each_day_apart_in_any_order() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "192.0.2.9".parse().unwrap();
        let mut t: DayTables<(IpAddr, IpAddr), u64> = DayTables::default();
        for (day, n) in [(5, 1), (3, 10), (5, 100), (4, 1000), (3, 10000)] {
            *t.entry(day, (a, b)) += n;
        }
        *t.entry(4, (b, a)) += 7;
        assert_eq!(t.len(), 4);
        let mut all: Vec<_> = t.iter().map(|(k, v)| (k, *v)).collect();
        all.sort();
        assert_eq!(
            all,
            [
                ((a, b, 3), 10010),
                ((a, b, 4), 1000),
                ((a, b, 5), 101),
                ((b, a, 4), 7)
            ]
        );
        t.evict_before(4);
        *t.entry(5, (a, b)) += 1;
        let left: BTreeMap<_, _> = t.into_iter().collect();
        assert_eq!(left.len(), 3);
        assert_eq!(left[&(a, b, 5)], 102);
    }

    #[test]
    fn domains_and_entropy() {
        assert_eq!(domain_of("a.b.example.com."), "example.com");
        assert_eq!(domain_of("x.y.bbc.co.uk"), "bbc.co.uk");
        assert_eq!(domain_of("localhost"), "localhost");
        assert!(entropy("aaaa") < 0.01);
        assert!(entropy("q7x9k2m4z8w1") > 3.0);
    }
}
