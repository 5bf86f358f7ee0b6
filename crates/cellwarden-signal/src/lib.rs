//! Signalling captures: the IP packets of a pcap or pcapng capture decoded into the messages
//! of the core network's signalling protocols, one JSON object (one event) per message:
//!
//! - SIGTRAN: SCTP (DATA chunks, several per packet, fragments reassembled) → M3UA → SCCP
//!   (UDT, XUDT; global titles, SSNs, point codes) → TCAP (begin, continue, end, abort;
//!   the dialogue's application context) → MAP (one event per component: operation, IMSI,
//!   MSISDN, the addresses and the information asked for), [`tcap`];
//! - Diameter over TCP (streams reassembled) and SCTP: command, application, hosts and
//!   realms, User-Name, MSISDN, results, [`diameter`];
//! - GTPv1-C and GTPv2-C over UDP port 2123: message, IMSI, MSISDN, TEIDs, [`gtp`].
//!
//! The capture framing (pcap/pcapng records, link layers) is read by `cellwarden-source`,
//! which hands each IP packet to a [`Decoder`]. Field names are listed in
//! `docs/signalling.md`; every event carries `Channel` (`map`, `diameter`, `gtpc`), the
//! packet's `timestamp`, addresses and ports, `transport` and `packet` (its number in the
//! capture). A packet that cannot be decoded is reported with its number through
//! [`Sink::problem`] and never stops the capture. Memory is bounded: see [`sctp`], [`tcp`]
//! and [`tcap::MAX_OPEN_INVOKES`].

pub mod ber;
pub mod detect;
pub mod diameter;
pub mod digits;
pub mod encode;
pub mod gtp;
pub mod sctp;
pub mod sigtran;
pub mod tcap;
pub mod tcp;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value};

/// Where decoded messages and problems go.
pub trait Sink {
    /// One decoded message as a JSON object.
    fn message(&mut self, packet: u64, message: Map<String, Value>);
    /// A problem with the packet it concerns (1-based).
    fn problem(&mut self, packet: u64, message: String);
}

/// Messages and problems gathered in memory (tests, small captures).
#[derive(Debug, Default)]
pub struct Collected {
    /// (packet, message)
    pub messages: Vec<(u64, Map<String, Value>)>,
    /// (packet, problem)
    pub problems: Vec<(u64, String)>,
}

impl Sink for Collected {
    fn message(&mut self, packet: u64, message: Map<String, Value>) {
        self.messages.push((packet, message));
    }
    fn problem(&mut self, packet: u64, message: String) {
        self.problems.push((packet, message));
    }
}

/// Counts of one capture's decoding.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// MAP components decoded.
    pub map: u64,
    /// Diameter messages decoded.
    pub diameter: u64,
    /// GTP-C messages decoded.
    pub gtpc: u64,
    /// SCTP DATA chunks seen again (retransmissions), skipped.
    pub retransmitted: u64,
    /// IP fragments (not reassembled), skipped.
    pub ip_fragments: u64,
}

/// The facts of the packet a message came in.
#[derive(Debug, Clone, Copy)]
pub struct Packet {
    /// Its number in the capture (1-based).
    pub number: u64,
    /// Capture time, microseconds since 1970.
    pub time_us: i64,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// `sctp`, `tcp` or `udp`.
    pub transport: &'static str,
}

impl Packet {
    /// A message object with the packet's fields and `Channel` set.
    pub fn message(&self, channel: &str) -> Map<String, Value> {
        let mut m = Map::new();
        if let Ok(t) = jiff::Timestamp::from_microsecond(self.time_us) {
            m.insert("timestamp".into(), t.to_string().into());
        }
        m.insert("Channel".into(), channel.into());
        m.insert("src_ip".into(), self.src.to_string().into());
        m.insert("dst_ip".into(), self.dst.to_string().into());
        m.insert("src_port".into(), self.sport.into());
        m.insert("dst_port".into(), self.dport.into());
        m.insert("transport".into(), self.transport.into());
        m.insert("packet".into(), self.number.into());
        m
    }
}

/// Sets `key` unless the message has it already (the first value wins).
pub(crate) fn put(m: &mut Map<String, Value>, key: &str, v: impl Into<Value>) {
    if !m.contains_key(key) {
        m.insert(key.to_owned(), v.into());
    }
}

/// An IP packet's addresses, protocol and payload.
#[derive(Debug, Clone, Copy)]
pub struct Ip<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// The transport protocol number.
    pub proto: u8,
    /// The transport header and payload (IPv4 padding after the total length removed).
    pub payload: &'a [u8],
    /// Whether this is a fragment (its payload is not a whole transport segment).
    pub fragment: bool,
}

/// Reads an IPv4 or IPv6 header (IPv6 extension headers skipped). `None` when it is not one.
pub fn ip(b: &[u8]) -> Option<Ip<'_>> {
    match b.first()? >> 4 {
        4 => {
            let ihl = (b[0] & 0x0f) as usize * 4;
            if ihl < 20 || b.len() < ihl {
                return None;
            }
            let total = u16::from_be_bytes([b[2], b[3]]) as usize;
            let end = if total >= ihl && total <= b.len() {
                total
            } else {
                b.len()
            };
            let frag = u16::from_be_bytes([b[6], b[7]]);
            Some(Ip {
                src: IpAddr::V4(Ipv4Addr::new(b[12], b[13], b[14], b[15])),
                dst: IpAddr::V4(Ipv4Addr::new(b[16], b[17], b[18], b[19])),
                proto: b[9],
                payload: &b[ihl..end],
                fragment: frag & 0x3fff != 0,
            })
        }
        6 => {
            if b.len() < 40 {
                return None;
            }
            let src: [u8; 16] = b[8..24].try_into().ok()?;
            let dst: [u8; 16] = b[24..40].try_into().ok()?;
            let plen = u16::from_be_bytes([b[4], b[5]]) as usize;
            let end = if plen > 0 && 40 + plen <= b.len() {
                40 + plen
            } else {
                b.len()
            };
            let mut next = b[6];
            let mut off = 40;
            let mut fragment = false;
            // Hop-by-hop, routing, destination options and fragment headers.
            for _ in 0..8 {
                match next {
                    0 | 43 | 60 => {
                        let h = b.get(off..off + 2)?;
                        next = h[0];
                        off += (h[1] as usize + 1) * 8;
                    }
                    44 => {
                        let h = b.get(off..off + 8)?;
                        next = h[0];
                        fragment = u16::from_be_bytes([h[2], h[3]]) & 0xfff9 != 0;
                        off += 8;
                    }
                    _ => break,
                }
            }
            Some(Ip {
                src: IpAddr::V6(Ipv6Addr::from(src)),
                dst: IpAddr::V6(Ipv6Addr::from(dst)),
                proto: next,
                payload: b.get(off..end)?,
                fragment,
            })
        }
        _ => None,
    }
}

/// The Diameter port (TCP and SCTP).
pub const DIAMETER_PORT: u16 = 3868;
/// The GTP-C port (UDP).
pub const GTPC_PORT: u16 = 2123;
/// The M3UA port (SCTP).
pub const M3UA_PORT: u16 = 2905;

/// Decodes the signalling in IP packets, keeping the reassembly state of SCTP and TCP.
#[derive(Debug, Default)]
pub struct Decoder {
    sctp: sctp::Reassembly,
    tcp: tcp::Streams,
    invokes: tcap::Invokes,
    /// What was decoded so far.
    pub counts: Counts,
}

impl Decoder {
    /// A decoder with empty reassembly state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one IP packet (`number` 1-based, `time_us` its capture time). Packets of
    /// other protocols are passed over silently.
    pub fn packet(&mut self, number: u64, time_us: i64, b: &[u8], out: &mut dyn Sink) {
        if let Some(ip) = ip(b) {
            self.packet_ip(number, time_us, &ip, out);
        }
    }

    /// [`Self::packet`] of a packet whose IP header was read already (a reader that also
    /// looks at the packet for other protocols reads it once).
    pub fn packet_ip(&mut self, number: u64, time_us: i64, ip: &Ip<'_>, out: &mut dyn Sink) {
        if !matches!(ip.proto, 6 | 17 | 132) {
            return;
        }
        if ip.fragment {
            self.counts.ip_fragments += 1;
            return;
        }
        let p = ip.payload;
        let (Some(sport), Some(dport)) = (be16(p, 0), be16(p, 2)) else {
            return;
        };
        let mut pk = Packet {
            number,
            time_us,
            src: ip.src,
            dst: ip.dst,
            sport,
            dport,
            transport: "udp",
        };
        match ip.proto {
            132 => {
                pk.transport = "sctp";
                for (ppid, data) in self.sctp.packet(&pk, p, &mut self.counts, out) {
                    self.sctp_message(&pk, ppid, &data, out);
                }
            }
            6 if sport == DIAMETER_PORT || dport == DIAMETER_PORT => {
                pk.transport = "tcp";
                for m in self.tcp.segment(&pk, p, out) {
                    if let Some(msg) = diameter::decode(&pk, &m, out) {
                        self.counts.diameter += 1;
                        out.message(number, msg);
                    }
                }
            }
            17 if sport == GTPC_PORT || dport == GTPC_PORT => {
                if let Some(udp) = p.get(8..) {
                    for msg in gtp::decode(&pk, udp, out) {
                        self.counts.gtpc += 1;
                        out.message(number, msg);
                    }
                }
            }
            _ => {}
        }
    }

    fn sctp_message(&mut self, pk: &Packet, ppid: u32, data: &[u8], out: &mut dyn Sink) {
        let diameter_port = pk.sport == DIAMETER_PORT || pk.dport == DIAMETER_PORT;
        match ppid {
            3 => self.m3ua(pk, data, out),
            46 | 47 => self.diameter_chunk(pk, data, out),
            0 if diameter_port => self.diameter_chunk(pk, data, out),
            0 if pk.sport == M3UA_PORT || pk.dport == M3UA_PORT => self.m3ua(pk, data, out),
            _ => {}
        }
    }

    fn m3ua(&mut self, pk: &Packet, data: &[u8], out: &mut dyn Sink) {
        let Some((route, user)) = sigtran::m3ua(pk, data, out) else {
            return;
        };
        for msg in tcap::decode(pk, &route, user, &mut self.invokes, out) {
            self.counts.map += 1;
            out.message(pk.number, msg);
        }
    }

    fn diameter_chunk(&mut self, pk: &Packet, data: &[u8], out: &mut dyn Sink) {
        let mut rest = data;
        while rest.len() >= 20 {
            let len = (u32::from_be_bytes([0, rest[1], rest[2], rest[3]]) as usize).max(20);
            let Some(m) = rest.get(..len) else {
                out.problem(
                    pk.number,
                    "Diameter message longer than its SCTP chunk".into(),
                );
                return;
            };
            if let Some(msg) = diameter::decode(pk, m, out) {
                self.counts.diameter += 1;
                out.message(pk.number, msg);
            }
            rest = &rest[len..];
        }
    }
}

pub(crate) fn be16(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(i..i + 2)?.try_into().ok()?))
}

pub(crate) fn be32(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::{self, map};

    fn a(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn get<'m>(m: &'m Map<String, Value>, k: &str) -> &'m Value {
        m.get(k).unwrap_or(&Value::Null)
    }

    #[test]
    fn map_dialogue_over_sigtran_with_the_answer_named() {
        let ctx = encode::map_context(29, 3);
        let begin = encode::tcap(
            0x62,
            Some(0x0102_0304),
            None,
            Some(encode::dialogue(&ctx, false)),
            &[encode::invoke(
                1,
                71,
                &map::ati("33612345678", "4917000001"),
            )],
        );
        let end = encode::tcap(0x64, None, Some(0x0102_0304), None, &[encode::error(1, 49)]);
        let mut d = Decoder::new();
        let mut out = Collected::default();
        for (n, (from, to, tcap)) in [
            (
                ("10.0.0.1", "4917000001"),
                ("10.0.0.2", "33609000001"),
                begin,
            ),
            (("10.0.0.2", "33609000001"), ("10.0.0.1", "4917000001"), end),
        ]
        .into_iter()
        .enumerate()
        {
            let sccp = encode::sccp_udt(
                &encode::sccp_address(Some(6), to.1),
                &encode::sccp_address(Some(147), from.1),
                &tcap,
            );
            let m3ua = encode::m3ua_data(1, 2, 0, &sccp);
            let sctp = encode::sctp_packet(2905, 2905, 9, &[(n as u32, 0, 3, 3, &m3ua)]);
            let ip = encode::ipv4(a(from.0), a(to.0), 132, 1, &sctp);
            d.packet(n as u64 + 1, 1_000_000, &ip, &mut out);
        }
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        assert_eq!(out.messages.len(), 2);
        let inv = &out.messages[0].1;
        assert_eq!(get(inv, "Channel"), "map");
        assert_eq!(get(inv, "operation"), "anyTimeInterrogation");
        assert_eq!(get(inv, "msisdn"), "33612345678");
        assert_eq!(get(inv, "gsmscf_address"), "4917000001");
        assert_eq!(get(inv, "requested_info"), "location,state");
        assert_eq!(get(inv, "calling_gt"), "4917000001");
        assert_eq!(get(inv, "called_gt"), "33609000001");
        assert_eq!(get(inv, "called_ssn"), 6);
        assert_eq!(
            get(inv, "application_context_name"),
            "anyTimeInfoEnquiry-v3"
        );
        assert_eq!(get(inv, "otid"), "01020304");
        assert_eq!(get(inv, "transport"), "sctp");
        let err = &out.messages[1].1;
        assert_eq!(get(err, "component"), "error");
        assert_eq!(get(err, "error_code"), 49);
        assert_eq!(get(err, "operation"), "anyTimeInterrogation");
        assert_eq!(get(err, "operation_inferred"), true);
        assert_eq!(d.counts.map, 2);
    }

    #[test]
    fn diameter_over_tcp_split_joined_and_gap_resynchronised() {
        let avps = [
            encode::avp(263, None, b"mme;1;1"),
            encode::avp(264, None, b"hss.rogue.example"),
            encode::avp(296, None, b"rogue.example"),
            encode::avp(1, None, b"208150000000001"),
            encode::avp(
                1400,
                Some(encode::TGPP),
                &encode::avp(701, Some(encode::TGPP), &digits::to_tbcd("33612345678")),
            ),
            encode::avp(1490, Some(encode::TGPP), &0x18u32.to_be_bytes()),
        ];
        let msg = encode::diameter(319, true, 16_777_251, 7, 7, &avps);
        let (s, t) = (a("192.0.2.20"), a("10.50.1.10"));
        let mut d = Decoder::new();
        let mut out = Collected::default();
        let half = msg.len() / 2;
        let seg1 = encode::tcp(s, t, 40000, 3868, 100, 1, 0x18, &msg[..half]);
        let seg2 = encode::tcp(s, t, 40000, 3868, 100 + half as u32, 1, 0x18, &msg[half..]);
        d.packet(1, 0, &encode::ipv4(s, t, 6, 1, &seg1), &mut out);
        assert!(out.messages.is_empty());
        d.packet(2, 0, &encode::ipv4(s, t, 6, 2, &seg2), &mut out);
        // The same segment again (a retransmission) gives nothing new.
        d.packet(3, 0, &encode::ipv4(s, t, 6, 3, &seg2), &mut out);
        assert_eq!(out.messages.len(), 1);
        let m = &out.messages[0].1;
        assert_eq!(get(m, "command_abbreviation"), "IDR");
        assert_eq!(get(m, "origin_realm"), "rogue.example");
        assert_eq!(get(m, "imsi"), "208150000000001");
        assert_eq!(get(m, "msisdn"), "33612345678");
        assert_eq!(get(m, "requested_info"), "location,current_location");
        assert_eq!(get(m, "application"), "s6a");
        // A gap: half a message lost, then a whole one after garbage.
        let next = 100 + msg.len() as u32;
        let lost = encode::tcp(
            s,
            t,
            40000,
            3868,
            next + 50,
            1,
            0x18,
            &[&msg[half..], &msg[..]].concat(),
        );
        d.packet(4, 0, &encode::ipv4(s, t, 6, 4, &lost), &mut out);
        assert_eq!(out.messages.len(), 2, "{:?}", out.problems);
        assert_eq!(out.problems.len(), 1);
        assert!(out.problems[0].1.contains("missing 50 bytes"));
    }

    #[test]
    fn gtpv2_create_session_and_echo() {
        let mut fteid = vec![0x86];
        fteid.extend(0x1234u32.to_be_bytes());
        fteid.extend([10, 50, 2, 10]);
        let m = encode::gtpv2(
            32,
            Some(0),
            5,
            &[
                (1, 0, encode::imsi("208150000000001")),
                (76, 0, digits::to_tbcd("33612345678")),
                (87, 0, fteid),
                (71, 0, b"\x08internet\x03mnc".to_vec()),
            ],
        );
        let (s, t) = (a("10.50.2.10"), a("10.50.2.20"));
        let mut d = Decoder::new();
        let mut out = Collected::default();
        d.packet(
            1,
            0,
            &encode::ipv4(s, t, 17, 1, &encode::udp(s, t, 2123, 2123, &m)),
            &mut out,
        );
        // A Create Session Response carrying a Create Bearer Request (piggybacking flag).
        let mut resp = encode::gtpv2(33, Some(0x1234), 5, &[(2, 0, vec![16, 0])]);
        resp[0] |= 0x10;
        resp.extend(encode::gtpv2(95, Some(0x1234), 7, &[(73, 0, vec![5])]));
        d.packet(
            9,
            0,
            &encode::ipv4(t, s, 17, 9, &encode::udp(t, s, 2123, 2123, &resp)),
            &mut out,
        );
        assert_eq!(out.messages.len(), 3);
        assert_eq!(
            get(&out.messages[1].1, "message"),
            "Create Session Response"
        );
        assert_eq!(get(&out.messages[2].1, "message"), "Create Bearer Request");
        assert_eq!(get(&out.messages[2].1, "sequence"), 7);
        out.messages.truncate(1);
        let echo = encode::gtpv2(1, None, 6, &[(3, 0, vec![1])]);
        d.packet(
            2,
            0,
            &encode::ipv4(s, t, 17, 2, &encode::udp(s, t, 2123, 2123, &echo)),
            &mut out,
        );
        // Cut off: reported, not decoded.
        let cut = &m[..m.len() - 5];
        d.packet(
            3,
            0,
            &encode::ipv4(s, t, 17, 3, &encode::udp(s, t, 2123, 2123, cut)),
            &mut out,
        );
        assert_eq!(out.messages.len(), 2);
        let cs = &out.messages[0].1;
        assert_eq!(get(cs, "message"), "Create Session Request");
        assert_eq!(get(cs, "imsi"), "208150000000001");
        assert_eq!(get(cs, "msisdn"), "33612345678");
        assert_eq!(get(cs, "sender_teid"), 0x1234);
        assert_eq!(get(cs, "sender_address"), "10.50.2.10");
        assert_eq!(get(cs, "apn"), "internet.mnc");
        assert_eq!(get(&out.messages[1].1, "message"), "Echo Request");
        assert_eq!(out.problems.len(), 1);
        assert_eq!(out.problems[0].0, 3);
    }

    #[test]
    fn gtpv1_create_pdp_context() {
        let mut ies = vec![2u8];
        ies.extend(encode::imsi("208150000000001"));
        ies.extend([14, 7, 15, 0]);
        ies.extend([16, 0, 0, 0x12, 0x34, 17, 0, 0, 0x56, 0x78, 20, 5]);
        ies.extend([128, 0, 2, 0xf1, 0x21]);
        ies.extend([131, 0, 9, 8]);
        ies.extend(b"internet");
        for a in [[10, 50, 3, 1], [10, 50, 3, 2]] {
            ies.extend([133, 0, 4]);
            ies.extend(a);
        }
        let msisdn = encode::isdn("33612345678");
        ies.extend([134, 0, msisdn.len() as u8]);
        ies.extend(&msisdn);
        ies.extend([135, 0, 4, 1, 2, 3, 4]);
        let mut m = vec![0x32, 16];
        m.extend(((ies.len() + 4) as u16).to_be_bytes());
        m.extend([0, 0, 0, 0, 0x01, 0x02, 0, 0]);
        m.extend(&ies);
        let (s, t) = (a("10.50.3.1"), a("10.50.2.20"));
        let mut d = Decoder::new();
        let mut out = Collected::default();
        let udp = encode::udp(s, t, 2123, 2123, &m);
        d.packet(1, 0, &encode::ipv4(s, t, 17, 1, &udp), &mut out);
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        let g = &out.messages[0].1;
        assert_eq!(get(g, "gtp_version"), 1);
        assert_eq!(get(g, "message"), "Create PDP Context Request");
        assert_eq!(get(g, "sequence"), 0x0102);
        assert_eq!(get(g, "imsi"), "208150000000001");
        assert_eq!(get(g, "msisdn"), "33612345678");
        assert_eq!(get(g, "teid_data"), 0x1234);
        assert_eq!(get(g, "teid_control"), 0x5678);
        assert_eq!(get(g, "apn"), "internet");
        assert_eq!(get(g, "gsn_address"), "10.50.3.1");
        assert_eq!(get(g, "gsn_address_user"), "10.50.3.2");
    }

    #[test]
    fn garbage_never_panics() {
        let mut d = Decoder::new();
        let mut out = Collected::default();
        let mut x: u64 = 0x1234_5678;
        for n in 0..3000u64 {
            let len = (n % 200) as usize;
            let mut b: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            // Steer some of it into the decoders.
            if b.len() > 40 {
                b[0] = 0x45;
                b[9] = [6u8, 17, 132][n as usize % 3];
                b[20..24].copy_from_slice(&[0x0b, 0x59, 0x0f, 0x1c]);
                b[6] = 0;
                b[7] = 0;
            }
            d.packet(n, 0, &b, &mut out);
        }
    }
}
