//! Who asked the network where a subscriber is: the signalling detections over the events
//! this crate's decoders write (`Channel` `map`, `diameter`, `gtpc`).
//!
//! - `cellwarden.signal.category1`: a MAP operation that must never arrive from outside the
//!   home network (GSMA FS.11 category 1: anyTimeInterrogation, anyTimeSubscription-
//!   Interrogation, anyTimeModification, sendIMSI, provideSubscriberLocation,
//!   sendRoutingInfoForLCS) from a global title outside the home network, or
//!   provideSubscriberInfo about a home subscriber from outside it.
//! - `cellwarden.signal.sri_no_followup`: sendRoutingInfoForSM from outside the home network
//!   answered with the subscriber's IMSI and serving MSC, never followed by the short message
//!   from the same global title (category 2: the routing was asked to find the subscriber);
//!   sendRoutingInfo (for a call) from outside the home network, whose call would reach the
//!   home GMSC first.
//! - `cellwarden.signal.diameter_location`: a Diameter Insert-Subscriber-Data asking for the
//!   location (IDR-Flags) or a Provide-Location / LCS-Routing-Info request from a realm that is
//!   neither home nor a partner (FS.19).
//! - `cellwarden.signal.unexpected_sender`: signalling sent by a host that is not a
//!   signalling node: not in `signalling_nodes` when the list is given, or, in any case, a host
//!   that sends with a home global title that another host sends at least ten times as often
//!   (the title borrowed from a compromised core host).
//! - `cellwarden.signal.scan`: one peer (global title or realm) outside the home network
//!   asking about `scan_subscribers` or more distinct subscribers within `scan_window_secs`;
//!   `cellwarden.signal.many_peers`: one subscriber asked about by `many_peers` or more
//!   distinct outside peers within that window.
//! - `cellwarden.signal.velocity`: a location update (MAP updateLocation/updateGprsLocation,
//!   Diameter ULR) for a subscriber from another country than its previous one less than
//!   `velocity_secs` before (category 3: the subscriber could not have travelled there; a
//!   forged update hijacks its calls and short messages). Countries are E.164 country codes of
//!   the VLR/SGSN number (MAP) and mobile country codes of the visited PLMN (Diameter).
//!   cancelLocation about a home subscriber from outside the home network is category 1.
//!
//! Each alert is shown on the message that asked, with `tracked_imsi`/`tracked_msisdn` (the
//! IMSI learnt from the answer when the request named only the MSISDN) and `answered`
//! (`yes`, `refused`, `no answer`). The home network comes from the `[signalling]` table of
//! the config file; without it, it is learnt from the capture: the most common 5-digit prefix
//! of the global titles and IMSIs asked about, and the most common destination realm.
//!
//! Memory is bounded: at most [`MAX_RECORDS`] requests and location updates are kept for
//! judging (beyond, they are counted and dropped), with counters for at most [`MAX_SENDERS`]
//! sending hosts and calling titles (64 hosts per title).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::LazyLock;

use cellwarden_analytics::rules::{BuiltinRule, RuleTable};
use cellwarden_event::{Alert, Event, Level, Timestamp};
use serde::Deserialize;

/// Requests kept for judging.
pub const MAX_RECORDS: usize = 1_000_000;
/// Sending hosts, and calling global titles, counted (at most 64 hosts per title).
pub const MAX_SENDERS: usize = 100_000;

/// The home network and thresholds (`[signalling]` in the `--config` TOML file).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignalConfig {
    /// Global title prefixes of the home network (`["33609"]`).
    pub home_gt: Vec<String>,
    /// Diameter realms of the home network.
    pub home_realms: Vec<String>,
    /// Diameter realms of roaming partners.
    pub partner_realms: Vec<String>,
    /// IMSI prefixes (MCC+MNC) of home subscribers.
    pub home_imsi: Vec<String>,
    /// Addresses (or networks) of the hosts allowed to send signalling; empty: not checked.
    pub signalling_nodes: Vec<String>,
    /// Seconds within which a short message must follow sendRoutingInfoForSM.
    pub sri_followup_secs: i64,
    /// Distinct subscribers one outside peer may ask about within the window.
    pub scan_subscribers: usize,
    /// The window of the scan detection.
    pub scan_window_secs: i64,
    /// Distinct outside peers asking about one subscriber within the scan window.
    pub many_peers: usize,
    /// Location updates from two countries closer than this are impossible travel.
    pub velocity_secs: i64,
}

impl Default for SignalConfig {
    fn default() -> Self {
        SignalConfig {
            home_gt: Vec::new(),
            home_realms: Vec::new(),
            partner_realms: Vec::new(),
            home_imsi: Vec::new(),
            signalling_nodes: Vec::new(),
            sri_followup_secs: 60,
            scan_subscribers: 20,
            scan_window_secs: 3600,
            many_peers: 3,
            velocity_secs: 3600,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    signalling: SignalConfig,
    #[serde(flatten)]
    _other: BTreeMap<String, toml::Value>,
}

impl SignalConfig {
    /// Reads the `[signalling]` table of a cellwarden config file.
    pub fn from_toml(text: &str) -> Result<SignalConfig, toml::de::Error> {
        Ok(toml::from_str::<ConfigFile>(text)?.signalling)
    }
}

const RULES: &[BuiltinRule] = &[
    BuiltinRule {
        id: "cellwarden.signal.category1",
        title: "Location or subscriber enquiry from outside the home network",
        level: Level::High,
        description: "A MAP operation the home network only accepts from itself (GSMA FS.11 category 1) arrived from a foreign global title",
        tags: &["attack.collection", "attack.t1430"],
    },
    BuiltinRule {
        id: "cellwarden.signal.sri_no_followup",
        title: "Routing enquiry from outside without the short message or call it is for",
        level: Level::Medium,
        description: "sendRoutingInfoForSM from outside the home network returned the IMSI and serving MSC, and no short message followed; or sendRoutingInfo for a call from outside the home network (calls reach the home GMSC first)",
        tags: &["attack.discovery", "attack.t1430"],
    },
    BuiltinRule {
        id: "cellwarden.signal.diameter_location",
        title: "Diameter location request from a foreign realm",
        level: Level::High,
        description: "Insert-Subscriber-Data with a location request, or a location service request, from a realm that is neither home nor a partner",
        tags: &["attack.collection", "attack.t1430"],
    },
    BuiltinRule {
        id: "cellwarden.signal.unexpected_sender",
        title: "Signalling sent by a host that is not a signalling node",
        level: Level::Critical,
        description: "SIGTRAN, Diameter or GTP-C from a host outside the signalling nodes, or with a home global title that another host normally sends",
        tags: &[
            "attack.lateral-movement",
            "attack.collection",
            "attack.t1430",
        ],
    },
    BuiltinRule {
        id: "cellwarden.signal.velocity",
        title: "Location update from a country the subscriber could not have reached",
        level: Level::High,
        description: "A location update for a subscriber from another country than its previous one, too soon after it (GSMA FS.11 category 3): a forged update diverts its calls and short messages",
        tags: &["attack.collection", "attack.t1430", "attack.t1557"],
    },
    BuiltinRule {
        id: "cellwarden.signal.many_peers",
        title: "One subscriber asked about by many outside peers",
        level: Level::High,
        description: "",
        tags: &["attack.collection", "attack.t1430"],
    },
    BuiltinRule {
        id: "cellwarden.signal.scan",
        title: "One outside peer asks about many subscribers",
        level: Level::High,
        description: "",
        tags: &["attack.discovery", "attack.t1430"],
    },
];

static TABLE: LazyLock<RuleTable> =
    LazyLock::new(|| RuleTable::new("builtin:cellwarden.signal", RULES));

/// The rules of the signalling detections.
pub fn rules() -> &'static RuleTable {
    &TABLE
}

/// Whether an event is a decoded signalling message.
pub fn is_signal_event(ev: &Event<'_>) -> bool {
    matches!(
        ev.get_str("Channel").as_deref(),
        Some("map" | "diameter" | "gtpc")
    )
}

/// MAP operations of category 1.
const CATEGORY1: &[i64] = &[71, 62, 65, 58, 83, 85];
/// Operations that ask where or who a subscriber is (scan detection).
const LOCATING: &[i64] = &[22, 45, 70, 71, 62, 58, 83, 85];

/// The E.164 country code of a number (1 to 3 digits, by the first digits).
pub fn country_code(number: &str) -> Option<&str> {
    let d = number.as_bytes();
    if d.len() < 3 || !d.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let len = match (d[0], d[1]) {
        (b'1' | b'7', _) => 1,
        (b'2', b'0' | b'7') => 2,
        (b'3', b'0'..=b'4' | b'6' | b'9') => 2,
        (b'4', b'0' | b'1' | b'3'..=b'9') => 2,
        (b'5', b'1'..=b'8') => 2,
        (b'6', b'0'..=b'6') => 2,
        (b'8', b'1' | b'2' | b'4' | b'6') => 2,
        (b'9', b'0'..=b'5' | b'8') => 2,
        _ => 3,
    };
    number.get(..len)
}

/// A channel name (one of a few constants; an alias so serde does not take it for text
/// borrowed from the input).
type StaticText = &'static str;

/// One location update kept for judging (compact: there is one per subscriber and move).
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
struct Update {
    imsi: String,
    time: Timestamp,
    /// `cc:33` (E.164 country code of the VLR) or `mcc:208` (visited PLMN).
    country: String,
    #[serde(deserialize_with = "cellwarden_event::deserialize_static_text")]
    channel: StaticText,
    /// Calling GT or origin realm.
    peer: String,
    sender: String,
    op: String,
    /// The key of its answer in [`SignalAggregates::answers`].
    answer: String,
    file: std::sync::Arc<str>,
    record: u64,
}

/// The key under which the answer to a request is kept: transaction id, invoking title and
/// invoke id (MAP), hop-by-hop and end-to-end ids (Diameter).
fn answer_key(ev: &Event<'_>, channel: &str) -> String {
    if channel == "map" {
        format!(
            "map|{}|{}|{}",
            s(ev, "otid").unwrap_or_default(),
            s(ev, "calling_gt").unwrap_or_default(),
            s(ev, "invoke_id").unwrap_or_default()
        )
    } else {
        format!(
            "diameter|{}|{}",
            s(ev, "hop_by_hop").unwrap_or_default(),
            s(ev, "end_to_end").unwrap_or_default()
        )
    }
}

/// One request kept for judging.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
struct Request {
    event: Event<'static>,
    time: Timestamp,
    /// `map`, `diameter`.
    #[serde(deserialize_with = "cellwarden_event::deserialize_static_text")]
    channel: StaticText,
    op: i64,
    /// Calling GT or origin realm.
    peer: String,
    imsi: Option<String>,
    msisdn: Option<String>,
    /// The key of its answer in [`SignalAggregates::answers`].
    answer: String,
}

/// What the network said to a request: `yes`, `refused` or `no answer`.
fn answered(answer: Option<&(bool, Option<String>)>) -> &'static str {
    match answer {
        Some((true, _)) => "yes",
        Some((false, _)) => "refused",
        None => "no answer",
    }
}

/// What the signalling detections gathered (mergeable: finite runs split a capture over
/// worker threads).
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct SignalAggregates {
    requests: Vec<Request>,
    updates: Vec<Update>,
    /// Answers: (tid or hop-by-hop key) → (accepted, IMSI returned).
    answers: HashMap<String, (bool, Option<String>)>,
    /// Short messages delivered: (calling GT, IMSI) → times.
    deliveries: HashMap<(String, String), Vec<Timestamp>>,
    /// Per calling GT: per sending host, (messages, first message event).
    senders: BTreeMap<String, BTreeMap<String, (u64, Event<'static>)>>,
    /// Per sending host: (messages, first message event).
    hosts: BTreeMap<String, (u64, Event<'static>)>,
    /// Votes for the home network when it is not configured.
    called_prefixes: BTreeMap<String, u64>,
    imsi_prefixes: BTreeMap<String, u64>,
    dest_realms: BTreeMap<String, u64>,
    /// The latest message time seen.
    latest: Option<Timestamp>,
    /// Requests dropped beyond [`MAX_RECORDS`].
    pub dropped: u64,
    /// Messages of hosts or titles beyond [`MAX_SENDERS`], not counted.
    pub dropped_senders: u64,
}

/// Gathers the signalling events of one stream.
#[derive(Debug, Default)]
pub struct SignalCollector {
    agg: SignalAggregates,
}

fn s(ev: &Event<'_>, k: &str) -> Option<String> {
    ev.get_str(k)
        .map(|v| v.into_owned())
        .filter(|v| !v.is_empty())
}

fn int(ev: &Event<'_>, k: &str) -> Option<i64> {
    ev.get_str(k).and_then(|v| v.parse().ok())
}

fn prefix5(s: &str) -> Option<String> {
    s.get(..5).map(str::to_owned)
}

fn bump(m: &mut BTreeMap<String, u64>, k: Option<String>) {
    if let Some(k) = k {
        *m.entry(k).or_default() += 1;
    }
}

impl SignalCollector {
    /// Takes one event; other events are passed over. Returns whether it was a signalling one.
    pub fn observe(&mut self, ev: &Event<'_>) -> bool {
        let channel = match ev.get_str("Channel").as_deref() {
            Some("map") => "map",
            Some("diameter") => "diameter",
            Some("gtpc") => "gtpc",
            _ => return false,
        };
        let Some(time) = ev.timestamp else {
            return true;
        };
        let a = &mut self.agg;
        a.latest = a.latest.max(Some(time));
        if let Some(src) = s(ev, "src_ip") {
            if a.hosts.len() < MAX_SENDERS || a.hosts.contains_key(&src) {
                let h = a
                    .hosts
                    .entry(src.clone())
                    .or_insert_with(|| (0, ev.clone().into_owned()));
                h.0 += 1;
            } else {
                a.dropped_senders += 1;
            }
            if let Some(gt) = s(ev, "calling_gt") {
                if a.senders.len() < MAX_SENDERS || a.senders.contains_key(&gt) {
                    let g = a.senders.entry(gt).or_default();
                    if g.len() < 64 || g.contains_key(&src) {
                        let e = g.entry(src).or_insert_with(|| (0, ev.clone().into_owned()));
                        e.0 += 1;
                    }
                } else {
                    a.dropped_senders += 1;
                }
            }
        }
        match channel {
            "map" => {
                let component = s(ev, "component").unwrap_or_default();
                let op = int(ev, "operation_code");
                if component == "invoke" {
                    bump(
                        &mut a.called_prefixes,
                        s(ev, "called_gt").and_then(|g| prefix5(&g)),
                    );
                    bump(
                        &mut a.imsi_prefixes,
                        s(ev, "imsi").and_then(|g| prefix5(&g)),
                    );
                    let peer = s(ev, "calling_gt").unwrap_or_default();
                    if op == Some(44)
                        && let Some(imsi) = s(ev, "imsi")
                    {
                        a.deliveries
                            .entry((peer.clone(), imsi))
                            .or_default()
                            .push(time);
                    }
                    if matches!(op, Some(2 | 23))
                        && let Some(imsi) = s(ev, "imsi")
                        && let Some(cc) = s(ev, "vlr_number")
                            .or_else(|| s(ev, "sgsn_number"))
                            .or_else(|| s(ev, "calling_gt"))
                            .and_then(|n| country_code(&n).map(|c| format!("cc:{c}")))
                    {
                        self.update(ev, time, "map", imsi, cc, peer.clone());
                    }
                    if let Some(op) = op.filter(|o| LOCATING.contains(o) || *o == 3) {
                        self.request(ev, time, "map", op, peer);
                    }
                } else if let (Some(dtid), Some(called)) = (s(ev, "dtid"), s(ev, "called_gt")) {
                    let id = s(ev, "invoke_id").unwrap_or_default();
                    let ok = component == "result" || component == "result_not_last";
                    a.answers
                        .insert(format!("map|{dtid}|{called}|{id}"), (ok, s(ev, "imsi")));
                }
            }
            "diameter" => {
                if ev.get_str("request").as_deref() == Some("true") {
                    bump(&mut a.dest_realms, s(ev, "destination_realm"));
                    bump(
                        &mut a.imsi_prefixes,
                        s(ev, "imsi").and_then(|g| prefix5(&g)),
                    );
                    let code = int(ev, "command_code").unwrap_or(0);
                    let locating = (code == 319
                        && s(ev, "requested_info").is_some_and(|r| r.contains("location")))
                        || matches!(code, 8_388_620 | 8_388_622);
                    if code == 316
                        && let Some(imsi) = s(ev, "imsi")
                        && let Some(mcc) =
                            s(ev, "visited_plmn").and_then(|p| p.get(..3).map(str::to_owned))
                    {
                        let peer = s(ev, "origin_realm").unwrap_or_default();
                        self.update(ev, time, "diameter", imsi, format!("mcc:{mcc}"), peer);
                    }
                    if locating {
                        let peer = s(ev, "origin_realm").unwrap_or_default();
                        self.request(ev, time, "diameter", code, peer);
                    }
                } else {
                    let ok = int(ev, "result_code").is_some_and(|c| (2000..3000).contains(&c));
                    a.answers.insert(answer_key(ev, "diameter"), (ok, None));
                }
            }
            _ => {}
        }
        true
    }

    fn update(
        &mut self,
        ev: &Event<'_>,
        time: Timestamp,
        channel: &'static str,
        imsi: String,
        country: String,
        peer: String,
    ) {
        let a = &mut self.agg;
        if a.requests.len() + a.updates.len() >= MAX_RECORDS {
            a.dropped += 1;
            return;
        }
        a.updates.push(Update {
            imsi,
            time,
            country,
            channel,
            peer,
            sender: s(ev, "src_ip").unwrap_or_default(),
            op: s(ev, "operation")
                .or_else(|| s(ev, "command_abbreviation"))
                .unwrap_or_default(),
            answer: answer_key(ev, channel),
            file: std::sync::Arc::clone(&ev.origin.file),
            record: ev.origin.record,
        });
    }

    fn request(
        &mut self,
        ev: &Event<'_>,
        time: Timestamp,
        channel: &'static str,
        op: i64,
        peer: String,
    ) {
        let a = &mut self.agg;
        if a.requests.len() + a.updates.len() >= MAX_RECORDS {
            a.dropped += 1;
            return;
        }
        a.requests.push(Request {
            event: ev.clone().into_owned(),
            time,
            channel,
            op,
            peer,
            imsi: s(ev, "imsi"),
            msisdn: s(ev, "msisdn"),
            answer: answer_key(ev, channel),
        });
    }

    /// What was gathered, the collector emptied.
    pub fn into_aggregates(self) -> SignalAggregates {
        self.agg
    }

    /// A copy of what was gathered so far.
    pub fn snapshot(&self) -> SignalAggregates {
        self.agg.clone()
    }

    /// Requests and hosts held.
    pub fn size(&self) -> usize {
        self.agg.size()
    }

    /// Forgets requests and deliveries before `time` (live runs keep a window).
    pub fn evict_before(&mut self, time: Timestamp) {
        self.agg.evict_before(time);
    }
}

fn merge_counts<K: Ord>(a: &mut BTreeMap<K, u64>, b: BTreeMap<K, u64>) {
    for (k, v) in b {
        *a.entry(k).or_default() += v;
    }
}

fn earlier(a: &Event<'_>, b: &Event<'_>) -> bool {
    (a.timestamp, &a.origin.file, a.origin.record) < (b.timestamp, &b.origin.file, b.origin.record)
}

/// Per host (messages, first message): counts added, the earlier first message kept.
fn merge_hosts(
    a: &mut BTreeMap<String, (u64, Event<'static>)>,
    b: BTreeMap<String, (u64, Event<'static>)>,
) {
    for (h, v) in b {
        match a.get_mut(&h) {
            Some(x) => {
                x.0 += v.0;
                if earlier(&v.1, &x.1) {
                    x.1 = v.1;
                }
            }
            None => {
                a.insert(h, v);
            }
        }
    }
}

impl SignalAggregates {
    /// Forgets requests and deliveries before `time`.
    pub fn evict_before(&mut self, time: Timestamp) {
        self.requests.retain(|r| r.time >= time);
        self.updates.retain(|r| r.time >= time);
        for v in self.deliveries.values_mut() {
            v.retain(|t| *t >= time);
        }
        self.deliveries.retain(|_, v| !v.is_empty());
    }

    /// Requests and hosts held.
    pub fn size(&self) -> usize {
        self.requests.len() + self.updates.len() + self.hosts.len()
    }

    /// Takes in another part of the same run (the result does not depend on the order).
    pub fn merge(&mut self, other: SignalAggregates) {
        self.requests.extend(other.requests);
        self.updates.extend(other.updates);
        self.answers.extend(other.answers);
        for (k, v) in other.deliveries {
            self.deliveries.entry(k).or_default().extend(v);
        }
        for (gt, hosts) in other.senders {
            merge_hosts(self.senders.entry(gt).or_default(), hosts);
        }
        merge_hosts(&mut self.hosts, other.hosts);
        merge_counts(&mut self.called_prefixes, other.called_prefixes);
        merge_counts(&mut self.imsi_prefixes, other.imsi_prefixes);
        merge_counts(&mut self.dest_realms, other.dest_realms);
        self.dropped += other.dropped;
        self.dropped_senders += other.dropped_senders;
        self.latest = self.latest.max(other.latest);
    }

    /// Whether nothing was gathered.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }
}

fn most_common(m: &BTreeMap<String, u64>) -> Vec<String> {
    m.iter()
        .max_by_key(|(k, n)| (**n, std::cmp::Reverse((*k).clone())))
        .map(|(k, _)| vec![k.clone()])
        .unwrap_or_default()
}

/// The home network: configured, or learnt from the capture.
struct Home {
    gt: Vec<String>,
    realms: Vec<String>,
    partner_realms: Vec<String>,
    imsi: Vec<String>,
}

impl Home {
    fn of(c: &SignalConfig, a: &SignalAggregates) -> Home {
        let or = |v: &Vec<String>, learnt: &BTreeMap<String, u64>| {
            if v.is_empty() {
                most_common(learnt)
            } else {
                v.clone()
            }
        };
        Home {
            gt: or(&c.home_gt, &a.called_prefixes),
            realms: or(&c.home_realms, &a.dest_realms),
            partner_realms: c.partner_realms.clone(),
            imsi: or(&c.home_imsi, &a.imsi_prefixes),
        }
    }
    fn home_gt(&self, gt: &str) -> bool {
        self.gt.iter().any(|p| gt.starts_with(p.as_str()))
    }
    fn known_realm(&self, r: &str) -> bool {
        self.realms
            .iter()
            .chain(&self.partner_realms)
            .any(|x| x.eq_ignore_ascii_case(r))
    }
    fn home_imsi(&self, imsi: &str) -> bool {
        self.imsi.iter().any(|p| imsi.starts_with(p.as_str()))
    }
}

fn node_listed(nodes: &[ipnet::IpNet], addr: &str) -> bool {
    addr.parse::<std::net::IpAddr>()
        .is_ok_and(|a| nodes.iter().any(|n| n.contains(&a)))
}

fn alert_on(id: &str, ev: &Event<'static>, extra: &[(&str, String)]) -> Alert {
    let mut ev = ev.clone();
    for (k, v) in extra {
        ev.fields.push((
            std::borrow::Cow::Owned((*k).to_owned()),
            cellwarden_event::Value::Str(std::borrow::Cow::Owned(v.clone())),
        ));
    }
    TABLE.alert(id, None, ev)
}

/// The first item of a time-ordered list at which the items of the `window` seconds up to it
/// name `threshold` distinct keys or more: its index, and those keys with how often each
/// appears (one pass, a sliding window).
fn first_crowd<'a, T>(
    list: &'a [T],
    time: impl Fn(&T) -> Timestamp,
    key: impl Fn(&'a T) -> &'a str,
    window: i64,
    threshold: usize,
) -> Option<(usize, BTreeMap<&'a str, usize>)> {
    let mut start = 0;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, x) in list.iter().enumerate() {
        *counts.entry(key(x)).or_default() += 1;
        let t = time(x).as_second();
        while t - time(&list[start]).as_second() > window {
            let k = key(&list[start]);
            if let Some(n) = counts.get_mut(k) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(k);
                }
            }
            start += 1;
        }
        if counts.len() >= threshold {
            return Some((i, counts));
        }
    }
    None
}

/// Roles of the asset file that send signalling.
pub const SIGNALLING_ROLES: &[&str] = &[
    "stp",
    "sgw",
    "pgw",
    "ggsn",
    "sgsn",
    "gsn",
    "upf",
    "smf",
    "epdg",
    "mme",
    "amf",
    "hlr",
    "hss",
    "udm",
    "msc",
    "vlr",
    "smsc",
    "scp",
    "gsmscf",
    "dra",
    "dea",
    "dsc",
    "ipx",
    "signalling",
];

/// The signalling findings over what was gathered, in time order. `roles` are the asset
/// file's hosts (address or network, role): a host with a declared role that is not one of
/// [`SIGNALLING_ROLES`] is not a signalling node.
pub fn judge(
    a: &SignalAggregates,
    c: &SignalConfig,
    roles: &[(ipnet::IpNet, String)],
) -> Vec<Alert> {
    let home = Home::of(c, a);
    let nodes: Vec<ipnet::IpNet> = c
        .signalling_nodes
        .iter()
        .filter_map(|n| {
            n.parse::<ipnet::IpNet>()
                .ok()
                .or_else(|| n.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
        })
        .collect();
    // Senders: outside the node list, or borrowing a home title.
    let mut flagged: BTreeMap<&str, String> = BTreeMap::new();
    for host in a.hosts.keys() {
        let Ok(ip) = host.parse::<std::net::IpAddr>() else {
            continue;
        };
        // The most specific entry of the asset file.
        let role = roles
            .iter()
            .filter(|(n, _)| n.contains(&ip))
            .max_by_key(|(n, _)| n.prefix_len())
            .map(|(_, r)| r.as_str());
        if let Some(r) =
            role.filter(|r| !SIGNALLING_ROLES.contains(&r.to_ascii_lowercase().as_str()))
        {
            flagged.insert(host, format!("its role in the asset file is {r}"));
        }
    }
    if !nodes.is_empty() {
        for host in a.hosts.keys() {
            let internal = host.parse::<std::net::IpAddr>().is_ok_and(|ip| match ip {
                std::net::IpAddr::V4(v) => v.is_private() || v.is_loopback(),
                std::net::IpAddr::V6(v) => (v.segments()[0] & 0xfe00) == 0xfc00,
            });
            if internal && !node_listed(&nodes, host) {
                flagged
                    .entry(host)
                    .or_insert_with(|| "not a signalling node".to_owned());
            }
        }
    }
    for (gt, hosts) in &a.senders {
        if !home.home_gt(gt) || hosts.len() < 2 {
            continue;
        }
        let max = hosts.values().map(|(n, _)| *n).max().unwrap_or(0);
        for (host, (n, _)) in hosts {
            if n * 10 <= max {
                flagged.entry(host).or_insert_with(|| {
                    format!(
                        "sends with the global title {gt}, which another host sends {max} times"
                    )
                });
            }
        }
    }
    let mut flagged_asked: BTreeSet<&str> = BTreeSet::new();
    let mut out = Vec::new();
    let mut requests: Vec<&Request> = a.requests.iter().collect();
    requests.sort_by(|x, y| {
        (x.time, &x.event.origin.file, x.event.origin.record).cmp(&(
            y.time,
            &y.event.origin.file,
            y.event.origin.record,
        ))
    });
    let latest = a.latest;
    // Per outside peer: the subscribers asked about, in time order (scan).
    let mut asked: BTreeMap<&str, Vec<(Timestamp, String, &Request)>> = BTreeMap::new();
    for r in &requests {
        let answer = a.answers.get(&r.answer);
        let imsi = r.imsi.clone().or_else(|| answer.and_then(|x| x.1.clone()));
        let mut extra = vec![("answered", answered(answer).to_owned())];
        if let Some(i) = &imsi {
            extra.push(("tracked_imsi", i.clone()));
        }
        if let Some(m) = &r.msisdn {
            extra.push(("tracked_msisdn", m.clone()));
        }
        let sender = s(&r.event, "src_ip").unwrap_or_default();
        if let Some((host, reason)) = flagged.get_key_value(sender.as_str()) {
            flagged_asked.insert(host);
            let mut x = extra.clone();
            x.push(("sender", sender.clone()));
            x.push(("reason", reason.clone()));
            out.push(alert_on(
                "cellwarden.signal.unexpected_sender",
                &r.event,
                &x,
            ));
        }
        let outside = match r.channel {
            "map" => !home.home_gt(&r.peer),
            _ => !home.realms.iter().any(|x| x.eq_ignore_ascii_case(&r.peer)),
        };
        // Routing enquiries for calls and short messages are routine for an SMS hub or a
        // partner; they count for scans only when nothing followed them.
        let mut routine = matches!((r.channel, r.op), ("map", 22) | ("map", 45));
        match (r.channel, r.op) {
            ("map", op) if CATEGORY1.contains(&op) && !home.home_gt(&r.peer) => {
                out.push(alert_on("cellwarden.signal.category1", &r.event, &extra));
            }
            ("map", 70 | 3)
                if !home.home_gt(&r.peer)
                    && r.imsi.as_deref().is_some_and(|i| home.home_imsi(i)) =>
            {
                out.push(alert_on("cellwarden.signal.category1", &r.event, &extra));
            }
            ("map", 22) if !home.home_gt(&r.peer) => {
                out.push(alert_on(
                    "cellwarden.signal.sri_no_followup",
                    &r.event,
                    &extra,
                ));
            }
            ("map", 45) if !home.home_gt(&r.peer) => {
                // Answered with the IMSI: the short message must follow from the same title.
                let Some(imsi) = answer.and_then(|x| x.1.clone()) else {
                    continue;
                };
                let due = r.time.as_second() + c.sri_followup_secs;
                if latest.is_some_and(|l| l.as_second() < due) {
                    // The capture ends before the short message was due.
                    continue;
                }
                let followed = a
                    .deliveries
                    .get(&(r.peer.clone(), imsi))
                    .is_some_and(|v| v.iter().any(|t| *t >= r.time && t.as_second() <= due));
                if !followed {
                    routine = false;
                    out.push(alert_on(
                        "cellwarden.signal.sri_no_followup",
                        &r.event,
                        &extra,
                    ));
                }
            }
            ("diameter", _) if !home.known_realm(&r.peer) => {
                out.push(alert_on(
                    "cellwarden.signal.diameter_location",
                    &r.event,
                    &extra,
                ));
            }
            _ => {}
        }
        if outside
            && !routine
            && let Some(who) = imsi.clone().or_else(|| r.msisdn.clone())
        {
            asked.entry(&r.peer).or_default().push((r.time, who, r));
        }
    }
    // Impossible travel: consecutive updates of one subscriber (per protocol) from two
    // countries too close in time.
    let mut updates: Vec<&Update> = a.updates.iter().collect();
    updates.sort_by(|x, y| {
        (x.channel, &x.imsi, x.time, &x.file, x.record)
            .cmp(&(y.channel, &y.imsi, y.time, &y.file, y.record))
    });
    // The update flagged last, and the country before it: going back there is the end of the
    // same anomaly, not a second one.
    let mut flagged_move: Option<(&Update, &str)> = None;
    for w in updates.windows(2) {
        let (p, u) = (w[0], w[1]);
        let secs = u.time.as_second() - p.time.as_second();
        if p.channel != u.channel
            || p.imsi != u.imsi
            || p.country == u.country
            || secs >= c.velocity_secs
        {
            continue;
        }
        if flagged_move.is_some_and(|(f, before)| std::ptr::eq(f, p) && before == u.country) {
            continue;
        }
        flagged_move = Some((u, p.country.as_str()));
        let ev = cellwarden_analytics::rules::evidence_event(&u.file, u.record, u.time);
        let (peer_key, op_key) = if u.channel == "map" {
            ("calling_gt", "operation")
        } else {
            ("origin_realm", "command_abbreviation")
        };
        out.push(alert_on(
            "cellwarden.signal.velocity",
            &ev,
            &[
                ("Channel", u.channel.to_owned()),
                (peer_key, u.peer.clone()),
                ("src_ip", u.sender.clone()),
                (op_key, u.op.clone()),
                ("imsi", u.imsi.clone()),
                ("tracked_imsi", u.imsi.clone()),
                ("previous_country", p.country.clone()),
                ("country", u.country.clone()),
                ("seconds_since_previous", secs.to_string()),
                ("previous_peer", p.peer.clone()),
                ("answered", answered(a.answers.get(&u.answer)).to_owned()),
            ],
        ));
    }
    // Flagged hosts that asked about no one are reported once, on their first message.
    for (host, reason) in &flagged {
        if flagged_asked.contains(host) {
            continue;
        }
        if let Some((n, ev)) = a.hosts.get(*host) {
            out.push(alert_on(
                "cellwarden.signal.unexpected_sender",
                ev,
                &[
                    ("sender", (*host).to_owned()),
                    ("messages", n.to_string()),
                    ("reason", reason.clone()),
                ],
            ));
        }
    }
    // Scans: distinct subscribers per outside peer within the window.
    for (peer, list) in &asked {
        let crowd = first_crowd(
            list,
            |x| x.0,
            |x| x.1.as_str(),
            c.scan_window_secs,
            c.scan_subscribers.max(1),
        );
        if let Some((i, counts)) = crowd {
            let r = list[i].2;
            let mut extra = vec![
                ("scan_peer", (*peer).to_owned()),
                ("scan_subscribers", counts.len().to_string()),
            ];
            if let Some(x) = &r.imsi {
                extra.push(("tracked_imsi", x.clone()));
            }
            if let Some(x) = &r.msisdn {
                extra.push(("tracked_msisdn", x.clone()));
            }
            out.push(alert_on("cellwarden.signal.scan", &r.event, &extra));
        }
    }
    // One subscriber, many outside peers within the window.
    let mut by_subscriber: BTreeMap<&str, Vec<(Timestamp, &str, &Request)>> = BTreeMap::new();
    for (peer, list) in &asked {
        for (t, who, r) in list {
            by_subscriber.entry(who).or_default().push((*t, peer, r));
        }
    }
    for (who, mut list) in by_subscriber {
        list.sort_by(|x, y| {
            (x.0, &x.2.event.origin.file, x.2.event.origin.record).cmp(&(
                y.0,
                &y.2.event.origin.file,
                y.2.event.origin.record,
            ))
        });
        let crowd = first_crowd(
            &list,
            |x| x.0,
            |x| x.1,
            c.scan_window_secs,
            c.many_peers.max(2),
        );
        if let Some((i, peers)) = crowd {
            let r = list[i].2;
            let mut extra = vec![
                ("peers", peers.keys().copied().collect::<Vec<_>>().join(",")),
                ("tracked_imsi", who.to_owned()),
            ];
            if r.msisdn.as_deref() == Some(who) {
                extra[1] = ("tracked_msisdn", who.to_owned());
            }
            out.push(alert_on("cellwarden.signal.many_peers", &r.event, &extra));
        }
    }
    out.sort_by(|x, y| {
        (
            x.event.timestamp,
            &x.event.origin.file,
            x.event.origin.record,
            &x.rule.id,
        )
            .cmp(&(
                y.event.timestamp,
                &y.event.origin.file,
                y.event.origin.record,
                &y.rule.id,
            ))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cellwarden_event::{Origin, Value};
    use std::borrow::Cow;

    const T0: i64 = 1_772_355_600;

    fn ev(n: u64, t: i64, fields: &[(&str, &str)]) -> Event<'static> {
        let mut e = Event::new(Origin {
            file: "cap.pcap".into(),
            record: n,
        });
        e.timestamp = Timestamp::from_second(t).ok();
        for (k, v) in fields {
            e.push(
                Cow::Owned((*k).to_owned()),
                Value::Str(Cow::Owned((*v).to_owned())),
            );
        }
        e
    }

    /// A MAP invoke and its answer (`result` or `error`).
    #[allow(clippy::too_many_arguments)]
    fn map(
        out: &mut Vec<Event<'static>>,
        t: i64,
        src: &str,
        calling: &str,
        called: &str,
        op: &str,
        id: (&str, &str),
        answer: Option<(&str, Option<&str>)>,
    ) {
        let n = out.len() as u64 + 1;
        let mut f = vec![
            ("Channel", "map"),
            ("src_ip", src),
            ("calling_gt", calling),
            ("called_gt", called),
            ("component", "invoke"),
            ("invoke_id", "1"),
            ("operation_code", op),
        ];
        let otid = format!("{n:08x}");
        f.push(("otid", &otid));
        f.push(id);
        out.push(ev(n, t, &f));
        if let Some((component, imsi)) = answer {
            let mut f = vec![
                ("Channel", "map"),
                ("src_ip", "10.50.0.10"),
                ("calling_gt", called),
                ("called_gt", calling),
                ("component", component),
                ("invoke_id", "1"),
                ("dtid", &otid),
            ];
            if let Some(i) = imsi {
                f.push(("imsi", i));
            }
            out.push(ev(n + 1, t + 1, &f));
        }
    }

    fn config() -> SignalConfig {
        SignalConfig {
            home_gt: vec!["33609".into()],
            home_realms: vec!["epc.mnc015.mcc208.3gppnetwork.org".into()],
            partner_realms: vec!["epc.mnc001.mcc262.3gppnetwork.org".into()],
            home_imsi: vec!["20815".into()],
            ..Default::default()
        }
    }

    fn run(events: &[Event<'static>], c: &SignalConfig) -> Vec<Alert> {
        let mut a = SignalCollector::default();
        let mut b = SignalCollector::default();
        // Split over two collectors and merged, as worker threads do.
        for (i, e) in events.iter().enumerate() {
            if i % 2 == 0 {
                a.observe(e)
            } else {
                b.observe(e)
            };
        }
        let mut agg = a.into_aggregates();
        agg.merge(b.into_aggregates());
        judge(&agg, c, &[])
    }

    fn ids(alerts: &[Alert]) -> Vec<(&str, String)> {
        alerts
            .iter()
            .map(|a| {
                (
                    a.rule.id.trim_start_matches("cellwarden.signal."),
                    a.event
                        .get_str("tracked_imsi")
                        .or(a.event.get_str("tracked_msisdn"))
                        .or(a.event.get_str("sender"))
                        .map(|v| v.into_owned())
                        .unwrap_or_default(),
                )
            })
            .collect()
    }

    #[test]
    fn category1_from_outside_alerts_and_from_home_does_not() {
        let mut e = Vec::new();
        // The home gsmSCF asks for location: normal.
        map(
            &mut e,
            T0,
            "10.50.0.40",
            "33609000040",
            "33609000001",
            "71",
            ("msisdn", "33611111111"),
            Some(("result", None)),
        );
        // A foreign title asks the same: refused, still an alert.
        map(
            &mut e,
            T0 + 10,
            "192.0.2.10",
            "23480000999",
            "33609000001",
            "71",
            ("msisdn", "33622222222"),
            Some(("error", None)),
        );
        // provideSubscriberInfo about a home subscriber from outside: alert; about an inbound
        // roamer from its home network: none.
        map(
            &mut e,
            T0 + 20,
            "192.0.2.10",
            "23480000999",
            "33609000020",
            "70",
            ("imsi", "208150000000003"),
            Some(("result", None)),
        );
        map(
            &mut e,
            T0 + 30,
            "192.0.2.10",
            "49170000001",
            "33609000020",
            "70",
            ("imsi", "262010000000004"),
            Some(("result", None)),
        );
        let got = run(&e, &config());
        assert_eq!(
            ids(&got),
            [
                ("category1", "33622222222".to_owned()),
                ("category1", "208150000000003".to_owned())
            ]
        );
        assert_eq!(got[0].event.get_str("answered").as_deref(), Some("refused"));
        assert_eq!(got[1].event.get_str("answered").as_deref(), Some("yes"));
    }

    #[test]
    fn routing_enquiry_without_its_short_message_alerts() {
        let mut e = Vec::new();
        // A partner SMS hub: SRI-SM then the short message from the same title.
        map(
            &mut e,
            T0,
            "192.0.2.10",
            "491700000030",
            "33609000001",
            "45",
            ("msisdn", "33611111111"),
            Some(("result", Some("208150000000001"))),
        );
        e.push(ev(
            50,
            T0 + 5,
            &[
                ("Channel", "map"),
                ("src_ip", "192.0.2.10"),
                ("calling_gt", "491700000030"),
                ("called_gt", "33609000020"),
                ("component", "invoke"),
                ("operation_code", "44"),
                ("imsi", "208150000000001"),
            ],
        ));
        // A tracker: SRI-SM answered, nothing follows.
        map(
            &mut e,
            T0 + 100,
            "192.0.2.10",
            "23480000999",
            "33609000001",
            "45",
            ("msisdn", "33622222222"),
            Some(("result", Some("208150000000002"))),
        );
        // Another, too close to the end of the capture to tell.
        map(
            &mut e,
            T0 + 400,
            "192.0.2.10",
            "23480000999",
            "33609000001",
            "45",
            ("msisdn", "33633333333"),
            Some(("result", Some("208150000000003"))),
        );
        e.push(ev(
            99,
            T0 + 420,
            &[("Channel", "gtpc"), ("src_ip", "10.50.2.10")],
        ));
        let got = run(&e, &config());
        assert_eq!(
            ids(&got),
            [("sri_no_followup", "208150000000002".to_owned())]
        );
        assert_eq!(
            got[0].event.get_str("tracked_msisdn").as_deref(),
            Some("33622222222")
        );
    }

    fn diameter(
        n: u64,
        t: i64,
        realm: &str,
        request: bool,
        hbh: &str,
        info: Option<&str>,
    ) -> Event<'static> {
        let mut f = vec![
            ("Channel", "diameter"),
            ("src_ip", "192.0.2.20"),
            ("command_code", "319"),
            ("command_abbreviation", if request { "IDR" } else { "IDA" }),
            ("request", if request { "true" } else { "false" }),
            ("origin_realm", realm),
            ("destination_realm", "epc.mnc015.mcc208.3gppnetwork.org"),
            ("hop_by_hop", hbh),
            ("end_to_end", hbh),
            ("imsi", "208150000000009"),
        ];
        if let Some(i) = info {
            f.push(("requested_info", i));
        }
        if !request {
            f.push(("result_code", "2001"));
        }
        ev(n, t, &f)
    }

    #[test]
    fn diameter_location_from_an_unknown_realm() {
        let e = vec![
            diameter(
                1,
                T0,
                "epc.mnc099.mcc505.3gppnetwork.org",
                true,
                "1",
                Some("location,current_location"),
            ),
            diameter(
                2,
                T0 + 1,
                "epc.mnc015.mcc208.3gppnetwork.org",
                false,
                "1",
                None,
            ),
            // The home HSS and a partner: no alert; a rogue IDR without a location request: none.
            diameter(
                3,
                T0 + 2,
                "epc.mnc015.mcc208.3gppnetwork.org",
                true,
                "2",
                Some("location"),
            ),
            diameter(
                4,
                T0 + 3,
                "epc.mnc001.mcc262.3gppnetwork.org",
                true,
                "3",
                Some("location"),
            ),
            diameter(
                5,
                T0 + 4,
                "epc.mnc099.mcc505.3gppnetwork.org",
                true,
                "4",
                None,
            ),
        ];
        let got = run(&e, &config());
        assert_eq!(
            ids(&got),
            [("diameter_location", "208150000000009".to_owned())]
        );
        assert_eq!(got[0].event.get_str("answered").as_deref(), Some("yes"));
    }

    #[test]
    fn senders_outside_the_nodes_or_borrowing_a_title() {
        let mut e = Vec::new();
        // Two STPs share the home titles evenly: normal.
        for k in 0..40 {
            let src = if k % 2 == 0 { "10.50.0.2" } else { "10.50.0.3" };
            map(
                &mut e,
                T0 + k,
                src,
                "33609000040",
                "33609000001",
                "71",
                ("msisdn", "33611111111"),
                None,
            );
        }
        // A core host borrows the gsmSCF title twice.
        map(
            &mut e,
            T0 + 100,
            "10.50.9.99",
            "33609000040",
            "33609000001",
            "71",
            ("msisdn", "33644444444"),
            None,
        );
        let got = run(&e, &config());
        assert_eq!(ids(&got), [("unexpected_sender", "33644444444".to_owned())]);
        // With the node list: the same host is flagged for not being one (and only once).
        let mut c = config();
        c.signalling_nodes = vec!["10.50.0.0/29".into()];
        let got = run(&e, &c);
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].event.get_str("reason").as_deref(),
            Some("not a signalling node")
        );
        // With the asset file: the host's declared role says it.
        let mut agg = SignalCollector::default();
        for x in &e {
            agg.observe(x);
        }
        let roles = [
            ("10.50.9.0/24".parse().unwrap(), "oss".to_owned()),
            ("10.50.0.0/24".parse().unwrap(), "stp".to_owned()),
        ];
        let got = judge(&agg.into_aggregates(), &config(), &roles);
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].event.get_str("reason").as_deref(),
            Some("its role in the asset file is oss")
        );
    }

    #[test]
    fn scans_from_outside_but_not_a_busy_sms_hub() {
        let mut e = Vec::new();
        for k in 0..30i64 {
            let msisdn = format!("336100000{k:02}");
            let imsi = format!("2081500000000{k:02}");
            // The hub: routing then the short message, for thirty subscribers.
            map(
                &mut e,
                T0 + k * 10,
                "192.0.2.10",
                "491700000030",
                "33609000001",
                "45",
                ("msisdn", &msisdn),
                Some(("result", Some(&imsi))),
            );
            e.push(ev(
                1000 + k as u64,
                T0 + k * 10 + 2,
                &[
                    ("Channel", "map"),
                    ("src_ip", "192.0.2.10"),
                    ("calling_gt", "491700000030"),
                    ("component", "invoke"),
                    ("operation_code", "44"),
                    ("imsi", &imsi),
                ],
            ));
        }
        let quiet = run(&e, &config());
        assert!(quiet.is_empty(), "{:?}", ids(&quiet));
        for k in 0..25i64 {
            map(
                &mut e,
                T0 + 2000 + k * 30,
                "192.0.2.10",
                "23480000999",
                "33609000001",
                "71",
                ("msisdn", &format!("336200000{k:02}")),
                Some(("error", None)),
            );
        }
        let got = run(&e, &config());
        let scans: Vec<_> = got.iter().filter(|a| a.rule.id.ends_with("scan")).collect();
        assert_eq!(scans.len(), 1);
        assert_eq!(
            scans[0].event.get_str("scan_subscribers").as_deref(),
            Some("20")
        );
        assert_eq!(
            got.iter()
                .filter(|a| a.rule.id.ends_with("category1"))
                .count(),
            25
        );
    }

    fn update(n: u64, t: i64, imsi: &str, vlr: &str, peer: &str) -> Event<'static> {
        ev(
            n,
            t,
            &[
                ("Channel", "map"),
                ("src_ip", "192.0.2.10"),
                ("calling_gt", peer),
                ("called_gt", "33609000001"),
                ("component", "invoke"),
                ("operation_code", "2"),
                ("operation", "updateLocation"),
                ("imsi", imsi),
                ("vlr_number", vlr),
            ],
        )
    }

    #[test]
    fn impossible_travel_and_foreign_cancel_location() {
        let e = vec![
            // At home, then a foreign VLR four minutes later, then home again: one alert, on
            // the foreign update.
            update(1, T0, "208150000000001", "33609000020", "33609000020"),
            update(2, T0 + 240, "208150000000001", "23480000998", "23480000998"),
            update(3, T0 + 600, "208150000000001", "33609000020", "33609000020"),
            // A traveller: home, then abroad five hours later (a flight): none.
            update(4, T0, "208150000000002", "33609000020", "33609000020"),
            update(
                5,
                T0 + 5 * 3600,
                "208150000000002",
                "491700000010",
                "491700000010",
            ),
            // Two VLRs of one country: none.
            update(6, T0, "208150000000003", "33609000020", "33609000020"),
            update(7, T0 + 60, "208150000000003", "33609000021", "33609000021"),
            // cancelLocation about a home subscriber from outside: category 1; from home: none.
            ev(
                8,
                T0 + 700,
                &[
                    ("Channel", "map"),
                    ("src_ip", "192.0.2.10"),
                    ("calling_gt", "23480000999"),
                    ("component", "invoke"),
                    ("operation_code", "3"),
                    ("imsi", "208150000000004"),
                ],
            ),
            ev(
                9,
                T0 + 710,
                &[
                    ("Channel", "map"),
                    ("src_ip", "10.50.0.10"),
                    ("calling_gt", "33609000001"),
                    ("component", "invoke"),
                    ("operation_code", "3"),
                    ("imsi", "208150000000005"),
                ],
            ),
        ];
        let got = run(&e, &config());
        assert_eq!(
            ids(&got),
            [
                ("velocity", "208150000000001".to_owned()),
                ("category1", "208150000000004".to_owned())
            ]
        );
        assert_eq!(
            got[0].event.get_str("previous_country").as_deref(),
            Some("cc:33")
        );
        assert_eq!(got[0].event.get_str("country").as_deref(), Some("cc:234"));
        assert_eq!(
            got[0].event.get_str("calling_gt").as_deref(),
            Some("23480000998")
        );
        assert_eq!(got[0].key(), "cellwarden.signal.velocity:cap.pcap:2");
    }

    #[test]
    fn country_codes() {
        assert_eq!(country_code("33609000020"), Some("33"));
        assert_eq!(country_code("491700000010"), Some("49"));
        assert_eq!(country_code("12025550100"), Some("1"));
        assert_eq!(country_code("79161234567"), Some("7"));
        assert_eq!(country_code("23480000998"), Some("234"));
        assert_eq!(country_code("35312345678"), Some("353"));
        assert_eq!(country_code("4x"), None);
    }

    #[test]
    fn one_subscriber_many_peers_and_call_routing_from_outside() {
        let mut e = Vec::new();
        for (k, gt) in ["23480000999", "25099000001", "62130000007"]
            .iter()
            .enumerate()
        {
            let t = T0 + k as i64 * 600;
            map(
                &mut e,
                t,
                "192.0.2.10",
                gt,
                "33609000001",
                "71",
                ("msisdn", "33655555555"),
                Some(("error", None)),
            );
        }
        map(
            &mut e,
            T0 + 4000,
            "192.0.2.10",
            "23480000999",
            "33609000001",
            "22",
            ("msisdn", "33666666666"),
            Some(("result", Some("208150000000006"))),
        );
        let got = run(&e, &config());
        let rules: Vec<&str> = ids(&got).iter().map(|x| x.0).collect();
        assert_eq!(
            rules,
            [
                "category1",
                "category1",
                "category1",
                "many_peers",
                "sri_no_followup"
            ]
        );
        let mp = &got[3];
        assert_eq!(
            mp.event.get_str("tracked_msisdn").as_deref(),
            Some("33655555555")
        );
        assert_eq!(
            mp.event.get_str("peers").as_deref(),
            Some("23480000999,25099000001,62130000007")
        );
        assert_eq!(
            got[4].event.get_str("tracked_imsi").as_deref(),
            Some("208150000000006")
        );
    }

    #[test]
    fn config_table() {
        let c = SignalConfig::from_toml(
            "[net]\nmin_history_days = 3\n[signalling]\nhome_gt = [\"33609\"]\nscan_subscribers = 5\n",
        )
        .unwrap();
        assert_eq!(c.home_gt, ["33609"]);
        assert_eq!(c.scan_subscribers, 5);
        assert_eq!(c.sri_followup_secs, 60);
        assert!(SignalConfig::from_toml("[signalling]\nhome = 1\n").is_err());
    }
}
