//! A signalling capture of one operator's core network: SIGTRAN (M3UA/SCCP/TCAP/MAP over
//! SCTP), Diameter S6a over TCP and GTPv2-C over UDP, written with the real encodings
//! (`cellwarden_signal::encode`), with the normal traffic of a working network — location
//! updates, authentication, short messages, the home network's own location enquiries,
//! roaming partners' updates and short messages — and three trackers:
//!
//! - a foreign global title outside the home network and its partners that finds target
//!   subscribers' IMSI and serving MSC with sendRoutingInfoForSM (never followed by a short
//!   message) and then asks the MSC for their location with provideSubscriberInfo, and asks
//!   the HLR with anyTimeInterrogation (refused);
//! - a rogue Diameter realm sending Insert-Subscriber-Data with a location request to the MME;
//! - a compromised core Linux host (not a signalling node) speaking M3UA to the HLR with the
//!   home gsmSCF's global title, asking anyTimeInterrogation for location;
//! - the foreign network's fake VLR registering a target minutes after it registered at home
//!   (updateLocation: its calls and short messages diverted).
//!
//! The truth lists the tracked subscribers, who tracked them and how.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use cellwarden_signal::encode::{self, Pcap, TGPP, avp, diameter, gtpv2, map};
use serde::Serialize;

use crate::Rng;

/// The home network's and its partners' addresses, as an operator would configure them.
pub mod net {
    /// Home global title prefix (E.164 country code and operator).
    pub const HOME_GT: &str = "33609";
    /// HLR.
    pub const HLR_GT: &str = "33609000001";
    /// MSC/VLR.
    pub const MSC_GT: &str = "33609000020";
    /// SMSC.
    pub const SMSC_GT: &str = "33609000030";
    /// gsmSCF (the home network's own CAMEL platform).
    pub const GSMSCF_GT: &str = "33609000040";
    /// Roaming partner's global title prefix.
    pub const PARTNER_GT: &str = "49170";
    /// Partner VLR.
    pub const PARTNER_VLR_GT: &str = "491700000010";
    /// Partner SMSC.
    pub const PARTNER_SMSC_GT: &str = "491700000030";
    /// The tracker's global title (neither home nor partner).
    pub const ROGUE_GT: &str = "23480000999";
    /// The tracker's fake VLR (the same network).
    pub const ROGUE_VLR_GT: &str = "23480000998";
    /// Home Diameter realm.
    pub const HOME_REALM: &str = "epc.mnc015.mcc208.3gppnetwork.org";
    /// Partner Diameter realm.
    pub const PARTNER_REALM: &str = "epc.mnc001.mcc262.3gppnetwork.org";
    /// The rogue Diameter realm.
    pub const ROGUE_REALM: &str = "epc.mnc099.mcc505.3gppnetwork.org";
    /// HLR/HSS host.
    pub const HLR_IP: &str = "10.50.0.10";
    /// MSC/VLR host.
    pub const MSC_IP: &str = "10.50.0.20";
    /// SMSC host.
    pub const SMSC_IP: &str = "10.50.0.30";
    /// gsmSCF host.
    pub const GSMSCF_IP: &str = "10.50.0.40";
    /// MME host.
    pub const MME_IP: &str = "10.50.1.10";
    /// SGW host.
    pub const SGW_IP: &str = "10.50.2.10";
    /// PGW host.
    pub const PGW_IP: &str = "10.50.2.20";
    /// The interconnect's SIGTRAN peer (STP of the IPX).
    pub const IPX_STP_IP: &str = "192.0.2.10";
    /// The interconnect's Diameter edge agent.
    pub const IPX_DEA_IP: &str = "192.0.2.20";
    /// A core Linux host (OSS) that is not a signalling node.
    pub const COMPROMISED_IP: &str = "10.50.9.99";
}

/// Where the simulator writes the capture, in its output folder.
pub const FILE: &str = "network/signalling.pcap";

/// One tracked subscriber.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Tracked {
    /// IMSI.
    pub imsi: String,
    /// MSISDN.
    pub msisdn: String,
    /// Who asked: a global title, a realm, or a host address.
    pub by: String,
    /// The operations (MAP operation names, Diameter command abbreviations).
    pub operations: Vec<String>,
}

/// What the capture holds.
#[derive(Debug, Clone, Serialize)]
pub struct SignallingTruth {
    /// The tracked subscribers.
    pub tracked: Vec<Tracked>,
    /// MAP components, Diameter and GTP-C messages written.
    pub messages: u64,
}

/// A written capture and its truth.
#[derive(Debug, Clone)]
pub struct SignallingCapture {
    /// The pcap bytes.
    pub pcap: Vec<u8>,
    /// The truth.
    pub truth: SignallingTruth,
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap_or(Ipv4Addr::UNSPECIFIED)
}

struct Writer {
    pcap: Pcap,
    t: i64,
    rng: Rng,
    /// Per SCTP direction: (verification tag, next TSN, next stream sequence number).
    sctp: HashMap<(Ipv4Addr, Ipv4Addr), (u32, u32, u16)>,
    /// Per TCP direction: next sequence number.
    tcp: HashMap<(Ipv4Addr, Ipv4Addr), u32>,
    ip_id: u16,
    tid: u32,
    hbh: u32,
    gtp_seq: u32,
    messages: u64,
    tracked: Vec<Tracked>,
    seed: u64,
}

const SCCP_HLR: u8 = 6;
const SCCP_VLR: u8 = 7;
const SCCP_MSC: u8 = 8;
const SCCP_GSMSCF: u8 = 147;

impl Writer {
    fn tick(&mut self, max_ms: u64) {
        self.t += 1000 + self.rng.below(max_ms * 1000) as i64;
    }

    fn ip_packet(&mut self, src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) {
        self.ip_id = self.ip_id.wrapping_add(1);
        let p = encode::ipv4(src, dst, proto, self.ip_id, payload);
        self.pcap.ipv4(self.t, &p);
    }

    /// One M3UA message in an SCTP packet (or, for `fragments` > 1, in that many).
    fn sigtran(&mut self, src: Ipv4Addr, dst: Ipv4Addr, m3ua: &[u8], fragments: usize) {
        let (vtag, tsn, ssn) = *self.sctp.entry((src, dst)).or_insert((
            u32::from(src).rotate_left(16) ^ u32::from(dst) ^ 0x5a5a_0000,
            1000,
            0,
        ));
        let n = fragments.max(1);
        let size = m3ua.len().div_ceil(n);
        for (k, part) in m3ua.chunks(size).enumerate() {
            let flags = match (k == 0, k == n - 1 || (k + 1) * size >= m3ua.len()) {
                (true, true) => 0x03,
                (true, false) => 0x02,
                (false, true) => 0x01,
                (false, false) => 0x00,
            };
            let p = encode::sctp_packet(2905, 2905, vtag, &[(tsn + k as u32, ssn, flags, 3, part)]);
            self.ip_packet(src, dst, 132, &p);
            self.t += 50;
        }
        self.sctp
            .insert((src, dst), (vtag, tsn + n as u32, ssn.wrapping_add(1)));
    }

    /// Several M3UA messages bundled in one SCTP packet.
    fn sigtran_bundle(&mut self, src: Ipv4Addr, dst: Ipv4Addr, m3uas: &[Vec<u8>]) {
        let (vtag, tsn, ssn) = *self.sctp.entry((src, dst)).or_insert((
            u32::from(src).rotate_left(16) ^ u32::from(dst) ^ 0x5a5a_0000,
            1000,
            0,
        ));
        let chunks: Vec<(u32, u16, u8, u32, &[u8])> = m3uas
            .iter()
            .enumerate()
            .map(|(k, m)| {
                (
                    tsn + k as u32,
                    ssn.wrapping_add(k as u16),
                    0x03,
                    3,
                    m.as_slice(),
                )
            })
            .collect();
        let p = encode::sctp_packet(2905, 2905, vtag, &chunks);
        self.ip_packet(src, dst, 132, &p);
        self.t += 50;
        let n = m3uas.len();
        self.sctp.insert(
            (src, dst),
            (vtag, tsn + n as u32, ssn.wrapping_add(n as u16)),
        );
    }

    /// The M3UA message carrying a TCAP message (partners' traffic as XUDT, as an IPX
    /// carries it).
    fn m3ua(&self, from: (&str, &str, u8), to: (&str, &str, u8), tcap: &[u8]) -> Vec<u8> {
        let (called, calling) = (
            encode::sccp_address(Some(to.2), to.1),
            encode::sccp_address(Some(from.2), from.1),
        );
        let sccp = if from.1.starts_with(net::PARTNER_GT) || to.1.starts_with(net::PARTNER_GT) {
            encode::sccp_xudt(&called, &calling, tcap)
        } else {
            encode::sccp_udt(&called, &calling, tcap)
        };
        let (s, d) = (ip(from.0), ip(to.0));
        encode::m3ua_data(u32::from(s) & 0x3fff, u32::from(d) & 0x3fff, 0, &sccp)
    }

    /// A TCAP message from `(ip, gt, ssn)` to `(ip, gt, ssn)`.
    fn tcap(&mut self, from: (&str, &str, u8), to: (&str, &str, u8), tcap: &[u8], components: u64) {
        self.tcap_fragmented(from, to, tcap, components, 1);
    }

    fn tcap_fragmented(
        &mut self,
        from: (&str, &str, u8),
        to: (&str, &str, u8),
        tcap: &[u8],
        components: u64,
        fragments: usize,
    ) {
        let m3ua = self.m3ua(from, to, tcap);
        self.sigtran(ip(from.0), ip(to.0), &m3ua, fragments);
        self.messages += components.max(1);
    }

    /// A location update as networks run it: the VLR's updateLocation begins the dialogue,
    /// the HLR sends insertSubscriberData inside it (continue), the VLR answers (continue),
    /// the HLR ends it with the result.
    fn location_update(
        &mut self,
        vlr: (&str, &str, u8),
        hlr: (&str, &str, u8),
        imsi: &str,
        msisdn: &str,
    ) {
        let ctx = encode::map_context(1, 3);
        self.tid = self.tid.wrapping_add(1 + self.rng.below(7) as u32);
        let a = self.tid;
        self.tid = self.tid.wrapping_add(1);
        let b = self.tid;
        let begin = encode::tcap(
            0x62,
            Some(a),
            None,
            Some(encode::dialogue(&ctx, false)),
            &[encode::invoke(
                1,
                2,
                &map::update_location(imsi, vlr.1, vlr.1),
            )],
        );
        self.tcap(vlr, hlr, &begin, 1);
        self.tick(30);
        let isd = encode::tcap(
            0x65,
            Some(b),
            Some(a),
            Some(encode::dialogue(&ctx, true)),
            &[encode::invoke(
                2,
                7,
                &map::insert_subscriber_data(imsi, msisdn),
            )],
        );
        self.tcap(hlr, vlr, &isd, 1);
        self.tick(30);
        let ack = encode::tcap(0x65, Some(a), Some(b), None, &[encode::result_empty(2)]);
        self.tcap(vlr, hlr, &ack, 1);
        self.tick(30);
        let end = encode::tcap(
            0x64,
            None,
            Some(a),
            None,
            &[encode::result(1, 2, &map::update_location_res(hlr.1))],
        );
        self.tcap(hlr, vlr, &end, 1);
    }

    /// The begin of a dialogue of one invoke: its transaction id and TCAP bytes.
    fn begin(&mut self, ac: (u64, u64), op: u8, arg: &[u8]) -> (u32, Vec<u8>) {
        self.tid = self.tid.wrapping_add(1 + self.rng.below(7) as u32);
        let otid = self.tid;
        let ctx = encode::map_context(ac.0, ac.1);
        let begin = encode::tcap(
            0x62,
            Some(otid),
            None,
            Some(encode::dialogue(&ctx, false)),
            &[encode::invoke(1, op, arg)],
        );
        (otid, begin)
    }

    /// The end of a dialogue begun by [`Self::begin`].
    fn end(&mut self, otid: u32, ac: (u64, u64), op: u8, answer: Answer) -> Vec<u8> {
        let ctx = encode::map_context(ac.0, ac.1);
        let comp = match answer {
            Answer::Result(res) => encode::result(1, op, &res),
            Answer::Empty => encode::result_empty(1),
            Answer::Error(code) => encode::error(1, code),
        };
        self.tid = self.tid.wrapping_add(1);
        encode::tcap(
            0x64,
            None,
            Some(otid),
            Some(encode::dialogue(&ctx, true)),
            &[comp],
        )
    }

    /// A MAP dialogue of one invoke answered by a result (or an error) in the end.
    #[allow(clippy::too_many_arguments)]
    fn dialogue(
        &mut self,
        from: (&str, &str, u8),
        to: (&str, &str, u8),
        ac: (u64, u64),
        op: u8,
        arg: &[u8],
        answer: Answer,
    ) {
        let (otid, begin) = self.begin(ac, op, arg);
        self.tcap(from, to, &begin, 1);
        self.tick(40);
        let end = self.end(otid, ac, op, answer);
        self.tcap(to, from, &end, 1);
    }

    /// A Diameter message over the TCP connection from `src` to `dst` (port 3868 on the
    /// server side), in `parts` segments.
    fn diameter(&mut self, src: &str, dst: &str, server_is_dst: bool, msg: &[u8], parts: usize) {
        let (s, d) = (ip(src), ip(dst));
        let (sp, dp) = if server_is_dst {
            (40000 + (u32::from(s) & 0xff) as u16, 3868)
        } else {
            (3868, 40000 + (u32::from(d) & 0xff) as u16)
        };
        let ack = *self.tcp.get(&(d, s)).unwrap_or(&1);
        let size = msg.len().div_ceil(parts.max(1));
        for part in msg.chunks(size) {
            let seq = *self.tcp.entry((s, d)).or_insert(1);
            let seg = encode::tcp(s, d, sp, dp, seq, ack, 0x18, part);
            self.ip_packet(s, d, 6, &seg);
            self.tcp.insert((s, d), seq.wrapping_add(part.len() as u32));
            self.t += 30;
        }
        self.messages += 1;
    }

    fn diameter_exchange(&mut self, client: &str, server: &str, req: Vec<u8>, ans: Vec<u8>) {
        self.diameter(client, server, true, &req, 1);
        self.tick(20);
        self.diameter(server, client, false, &ans, 1);
    }

    fn gtp(&mut self, src: &str, dst: &str, msg: &[u8]) {
        let (s, d) = (ip(src), ip(dst));
        let u = encode::udp(s, d, 2123, 2123, msg);
        self.ip_packet(s, d, 17, &u);
        self.messages += 1;
    }

    fn subscriber(&self, i: u64) -> (String, String) {
        let s = crate::subscriber(self.seed, i);
        (s.imsi, s.msisdn)
    }

    fn track(&mut self, i: u64, by: &str, op: &str) {
        let (imsi, msisdn) = self.subscriber(i);
        match self
            .tracked
            .iter_mut()
            .find(|t| t.imsi == imsi && t.by == by)
        {
            Some(t) => {
                if !t.operations.iter().any(|o| o == op) {
                    t.operations.push(op.to_owned());
                }
            }
            None => self.tracked.push(Tracked {
                imsi,
                msisdn,
                by: by.to_owned(),
                operations: vec![op.to_owned()],
            }),
        }
    }
}

enum Answer {
    Result(Vec<u8>),
    Empty,
    Error(u8),
}

fn str_avp(code: u32, s: &str) -> Vec<u8> {
    avp(code, None, s.as_bytes())
}

fn u32_avp(code: u32, vendor: Option<u32>, v: u32) -> Vec<u8> {
    avp(code, vendor, &v.to_be_bytes())
}

/// The AVPs that open every S6a message.
fn s6a_head(session: &str, host: &str, realm: &str, dest_realm: Option<&str>) -> Vec<Vec<u8>> {
    let mut v = vec![
        str_avp(263, session),
        u32_avp(277, None, 1),
        str_avp(264, host),
        str_avp(296, realm),
    ];
    if let Some(r) = dest_realm {
        v.push(str_avp(283, r));
    }
    v
}

const S6A: u32 = 16_777_251;

/// Whether subscriber `i` is roaming in the partner network for the whole capture.
fn roaming(i: u64) -> bool {
    i % 8 == 5
}

/// Subscription-Data holding the MSISDN.
fn subscription_msisdn(msisdn: &str) -> Vec<u8> {
    let digits = cellwarden_signal::digits::to_tbcd(msisdn);
    avp(1400, Some(TGPP), &avp(701, Some(TGPP), &digits))
}

/// An Update-Location-Request from an MME `(host, realm)` in the PLMN `visited`.
fn ulr(session: &str, mme: (&str, &str), imsi: &str, visited: [u8; 3], hbh: u32) -> Vec<u8> {
    let mut avps = s6a_head(session, mme.0, mme.1, Some(net::HOME_REALM));
    avps.push(str_avp(1, imsi));
    avps.push(u32_avp(1032, Some(TGPP), 1004));
    avps.push(u32_avp(1405, Some(TGPP), 0x22));
    avps.push(avp(1407, Some(TGPP), &visited));
    diameter(316, true, S6A, hbh, hbh, &avps)
}

/// The HSS's Update-Location-Answer with the subscriber's MSISDN.
fn ula(session: &str, hss: &str, msisdn: &str, hbh: u32) -> Vec<u8> {
    let mut a = s6a_head(session, hss, net::HOME_REALM, None);
    a.push(u32_avp(268, None, 2001));
    a.push(subscription_msisdn(msisdn));
    diameter(316, false, S6A, hbh, hbh, &a)
}

/// Writes the capture: `subscribers` subscribers (at least 20), `seed` for everything that
/// varies, times from `start_us`.
pub fn capture(seed: u64, start_us: i64, subscribers: u64) -> SignallingCapture {
    use net::*;
    let n = subscribers.max(20);
    let mut w = Writer {
        pcap: Pcap::new(),
        t: start_us,
        rng: Rng::new(seed),
        sctp: HashMap::new(),
        tcp: HashMap::new(),
        ip_id: 0,
        tid: 0x0100_0000 + (seed as u32 & 0xffff) * 16,
        hbh: 0x2000_0000,
        gtp_seq: 1,
        messages: 0,
        tracked: Vec::new(),
        seed,
    };
    let hlr = (HLR_IP, HLR_GT, SCCP_HLR);
    let vlr = (MSC_IP, MSC_GT, SCCP_VLR);
    let msc = (MSC_IP, MSC_GT, SCCP_MSC);
    let smsc = (SMSC_IP, SMSC_GT, SCCP_MSC);
    let gsmscf = (GSMSCF_IP, GSMSCF_GT, SCCP_GSMSCF);
    let partner_vlr = (IPX_STP_IP, PARTNER_VLR_GT, SCCP_VLR);
    let partner_smsc = (IPX_STP_IP, PARTNER_SMSC_GT, SCCP_MSC);
    let rogue = (IPX_STP_IP, ROGUE_GT, SCCP_MSC);
    let rogue_vlr = (IPX_STP_IP, ROGUE_VLR_GT, SCCP_VLR);
    let rogue_gsmscf = (IPX_STP_IP, ROGUE_GT, SCCP_GSMSCF);
    let oss = (COMPROMISED_IP, GSMSCF_GT, SCCP_GSMSCF);
    let hss_host = format!("hss01.{HOME_REALM}");
    let mme_host = format!("mme01.{HOME_REALM}");
    let partner_mme = format!("mme07.{PARTNER_REALM}");
    let rogue_host = format!("hss.{ROGUE_REALM}");
    // Targets: a handful of subscribers, by index.
    let mut targets: Vec<u64> = Vec::new();
    while targets.len() < 6 {
        let t = w.rng.below(n);
        if !targets.contains(&t) && !roaming(t) {
            targets.push(t);
        }
    }
    // Diameter peers open their connections.
    for (client, chost, crealm) in [
        (MME_IP, &mme_host, HOME_REALM),
        (IPX_DEA_IP, &partner_mme, PARTNER_REALM),
    ] {
        let mut cer = vec![str_avp(264, chost), str_avp(296, crealm)];
        cer.push(u32_avp(266, None, TGPP));
        cer.push(u32_avp(258, None, S6A));
        w.hbh += 1;
        let req = diameter(257, true, 0, w.hbh, w.hbh, &cer);
        let ans = diameter(
            257,
            false,
            0,
            w.hbh,
            w.hbh,
            &[
                u32_avp(268, None, 2001),
                str_avp(264, &hss_host),
                str_avp(296, HOME_REALM),
            ],
        );
        w.diameter_exchange(client, HLR_IP, req, ans);
        w.tick(100);
    }
    let rounds = n * 2;
    for k in 0..rounds {
        let i = w.rng.below(n);
        let (imsi, msisdn) = w.subscriber(i);
        // Roaming subscribers stay in the partner network, the others at home: nobody is
        // seen in two countries minutes apart but the trackers' targets.
        let kind = match (roaming(i), w.rng.below(10)) {
            (true, 0 | 1 | 6..) => 6,
            (false, 6) => 0,
            (_, k) => k,
        };
        match kind {
            // Location update at home: SAI, then UL with the HLR's ISD.
            0 | 1 => {
                w.dialogue(
                    vlr,
                    hlr,
                    (14, 3),
                    56,
                    &map::send_auth_info(&imsi),
                    Answer::Empty,
                );
                w.tick(200);
                w.location_update(vlr, hlr, &imsi, &msisdn);
            }
            // A short message to the subscriber: SRI-SM, then MT-forwardSM (home or partner
            // SMSC).
            2..=4 => {
                let from = if w.rng.below(4) == 0 {
                    partner_smsc
                } else {
                    smsc
                };
                // Now and then two messages wait for routing at once: the two enquiries go
                // in one SCTP packet.
                let mut to: Vec<(String, String)> = vec![(imsi.clone(), msisdn.clone())];
                let other = w.rng.below(n);
                if kind == 4 && !roaming(other) {
                    to.push(w.subscriber(other));
                }
                let mut begins = Vec::new();
                for (_, m) in &to {
                    let (otid, tcap) = w.begin((20, 3), 45, &map::sri_for_sm(m, from.1));
                    begins.push((otid, w.m3ua(from, hlr, &tcap)));
                }
                let m3uas: Vec<Vec<u8>> = begins.iter().map(|b| b.1.clone()).collect();
                w.sigtran_bundle(ip(from.0), ip(hlr.0), &m3uas);
                w.messages += m3uas.len() as u64;
                for ((otid, _), (i2, _)) in begins.iter().zip(&to) {
                    w.tick(40);
                    let end = w.end(
                        *otid,
                        (20, 3),
                        45,
                        Answer::Result(map::sri_for_sm_res(i2, MSC_GT)),
                    );
                    w.tcap(hlr, from, &end, 1);
                }
                for (i2, _) in &to {
                    w.tick(300);
                    let s = w.rng.below(n);
                    let sender = w.subscriber(s).1;
                    w.dialogue(
                        from,
                        msc,
                        (25, 3),
                        44,
                        &map::mt_forward_sm(i2, from.1, &sender),
                        Answer::Empty,
                    );
                }
            }
            // The home gsmSCF asks for location (CAMEL services).
            5 => {
                w.dialogue(
                    gsmscf,
                    hlr,
                    (29, 3),
                    71,
                    &map::ati(&msisdn, GSMSCF_GT),
                    Answer::Result(map::subscriber_info_res(MSC_GT)),
                );
            }
            // A roaming subscriber registers in the partner network (MAP and Diameter).
            6 => {
                w.dialogue(
                    partner_vlr,
                    hlr,
                    (1, 3),
                    2,
                    &map::update_location(&imsi, PARTNER_VLR_GT, PARTNER_VLR_GT),
                    Answer::Result(map::update_location_res(HLR_GT)),
                );
                w.tick(200);
                w.hbh += 1;
                let session = format!("{partner_mme};{};{}", w.hbh, k);
                let req = ulr(
                    &session,
                    (&partner_mme, PARTNER_REALM),
                    &imsi,
                    [0x62, 0xf2, 0x10],
                    w.hbh,
                );
                let ans = ula(&session, &hss_host, &msisdn, w.hbh);
                w.diameter_exchange(IPX_DEA_IP, HLR_IP, req, ans);
            }
            // Attach in the home LTE network: AIR, ULR; then a session (GTPv2-C).
            _ => {
                w.hbh += 1;
                let session = format!("{mme_host};{};{}", w.hbh, k);
                let mut avps = s6a_head(&session, &mme_host, HOME_REALM, Some(HOME_REALM));
                avps.push(str_avp(1, &imsi));
                avps.push(avp(1407, Some(TGPP), &[0x02, 0xf8, 0x51]));
                let req = diameter(318, true, S6A, w.hbh, w.hbh, &avps);
                let mut a = s6a_head(&session, &hss_host, HOME_REALM, None);
                a.push(u32_avp(268, None, 2001));
                let ans = diameter(318, false, S6A, w.hbh, w.hbh, &a);
                w.diameter_exchange(MME_IP, HLR_IP, req, ans);
                w.tick(100);
                w.hbh += 1;
                let req = ulr(
                    &session,
                    (&mme_host, HOME_REALM),
                    &imsi,
                    [0x02, 0xf8, 0x51],
                    w.hbh,
                );
                // Split over two segments: the reader puts it back together.
                w.diameter(MME_IP, HLR_IP, true, &req, 2);
                w.tick(20);
                let ans = ula(&session, &hss_host, &msisdn, w.hbh);
                w.diameter(HLR_IP, MME_IP, false, &ans, 1);
                w.tick(100);
                let teid = 0x0a00_0000 + k as u32;
                let fteid = |teid: u32, addr: &str, iface: u8| {
                    let mut v = vec![0x80 | iface];
                    v.extend(teid.to_be_bytes());
                    v.extend(ip(addr).octets());
                    v
                };
                let ies = vec![
                    (1, 0, encode::imsi(&imsi)),
                    (76, 0, cellwarden_signal::digits::to_tbcd(&msisdn)),
                    (82, 0, vec![6]),
                    (87, 0, fteid(teid, SGW_IP, 6)),
                    (71, 0, b"\x08internet".to_vec()),
                ];
                w.gtp_seq += 1;
                let req = gtpv2(32, Some(0), w.gtp_seq, &ies);
                w.gtp(SGW_IP, PGW_IP, &req);
                w.tick(20);
                let res = gtpv2(
                    33,
                    Some(teid),
                    w.gtp_seq,
                    &[(2, 0, vec![16, 0]), (87, 1, fteid(teid + 1, PGW_IP, 7))],
                );
                w.gtp(PGW_IP, SGW_IP, &res);
            }
        }
        w.tick(2000);
        // The trackers, spread over the capture.
        // Eight steps in the first four fifths (a short message due after one would be
        // beyond the end of the capture).
        let step = rounds / 10;
        if step > 0 && k % step == step / 2 && k / step < 8 {
            let round = (k / step) as usize;
            let t = targets[round % targets.len()];
            let (timsi, tmsisdn) = w.subscriber(t);
            match round % 4 {
                // The target registers at home, and minutes later the foreign title registers
                // it at its own VLR (the HLR accepts): its calls and short messages now go
                // there.
                2 => {
                    w.dialogue(
                        vlr,
                        hlr,
                        (1, 3),
                        2,
                        &map::update_location(&timsi, MSC_GT, MSC_GT),
                        Answer::Result(map::update_location_res(HLR_GT)),
                    );
                    w.tick(180_000);
                    w.dialogue(
                        rogue_vlr,
                        hlr,
                        (1, 3),
                        2,
                        &map::update_location(&timsi, ROGUE_VLR_GT, ROGUE_VLR_GT),
                        Answer::Result(map::update_location_res(HLR_GT)),
                    );
                    w.track(t, ROGUE_VLR_GT, "updateLocation");
                }
                // Foreign GT: SRI-SM (answered), then PSI to the MSC for location, and an ATI
                // the HLR refuses.
                0 => {
                    w.dialogue(
                        rogue,
                        hlr,
                        (20, 3),
                        45,
                        &map::sri_for_sm(&tmsisdn, ROGUE_GT),
                        Answer::Result(map::sri_for_sm_res(&timsi, MSC_GT)),
                    );
                    w.track(t, ROGUE_GT, "sendRoutingInfoForSM");
                    w.tick(500);
                    w.dialogue(
                        rogue,
                        vlr,
                        (28, 3),
                        70,
                        &map::psi(&timsi),
                        Answer::Result(map::subscriber_info_res(MSC_GT)),
                    );
                    w.track(t, ROGUE_GT, "provideSubscriberInfo");
                    w.tick(500);
                    w.dialogue(
                        rogue_gsmscf,
                        hlr,
                        (29, 3),
                        71,
                        &map::ati(&tmsisdn, ROGUE_GT),
                        Answer::Error(49),
                    );
                    w.track(t, ROGUE_GT, "anyTimeInterrogation");
                }
                // Rogue realm: IDR asking the MME for the current location.
                1 => {
                    w.hbh += 1;
                    let session = format!("{rogue_host};{};{}", w.hbh, k);
                    let mut avps = s6a_head(&session, &rogue_host, ROGUE_REALM, Some(HOME_REALM));
                    avps.insert(4, str_avp(293, &mme_host));
                    avps.push(str_avp(1, &timsi));
                    avps.push(subscription_msisdn(&tmsisdn));
                    avps.push(u32_avp(1490, Some(TGPP), 0x18));
                    let req = diameter(319, true, S6A, w.hbh, w.hbh, &avps);
                    let mut a = s6a_head(&session, &mme_host, HOME_REALM, None);
                    a.push(u32_avp(268, None, 2001));
                    let ans = diameter(319, false, S6A, w.hbh, w.hbh, &a);
                    w.diameter(IPX_DEA_IP, MME_IP, true, &req, 1);
                    w.tick(20);
                    w.diameter(MME_IP, IPX_DEA_IP, false, &ans, 1);
                    w.track(t, ROGUE_REALM, "IDR");
                }
                // The compromised OSS host: ATI with the home gsmSCF's GT, in a fragmented
                // SCTP message.
                _ => {
                    w.tid = w.tid.wrapping_add(3);
                    let otid = w.tid;
                    let ctx = encode::map_context(29, 3);
                    let begin = encode::tcap(
                        0x62,
                        Some(otid),
                        None,
                        Some(encode::dialogue(&ctx, false)),
                        &[encode::invoke(1, 71, &map::ati(&tmsisdn, GSMSCF_GT))],
                    );
                    w.tcap_fragmented(oss, hlr, &begin, 1, 2);
                    w.tick(40);
                    let end = encode::tcap(
                        0x64,
                        None,
                        Some(otid),
                        Some(encode::dialogue(&ctx, true)),
                        &[encode::result(1, 71, &map::subscriber_info_res(MSC_GT))],
                    );
                    w.tcap(hlr, oss, &end, 1);
                    w.track(t, COMPROMISED_IP, "anyTimeInterrogation");
                }
            }
        }
    }
    // Echo between the gateways, closing.
    w.gtp_seq += 1;
    let e = gtpv2(1, None, w.gtp_seq, &[(3, 0, vec![7])]);
    w.gtp(SGW_IP, PGW_IP, &e);
    w.tick(5);
    let e = gtpv2(2, None, w.gtp_seq, &[(3, 0, vec![9])]);
    w.gtp(PGW_IP, SGW_IP, &e);
    w.tracked
        .sort_by(|a, b| (&a.imsi, &a.by).cmp(&(&b.imsi, &b.by)));
    SignallingCapture {
        pcap: w.pcap.bytes().to_vec(),
        truth: SignallingTruth {
            tracked: w.tracked,
            messages: w.messages,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_capture_and_trackers_present() {
        let a = capture(7, 1_772_000_000_000_000, 50);
        let b = capture(7, 1_772_000_000_000_000, 50);
        assert_eq!(a.pcap, b.pcap);
        assert!(a.truth.tracked.iter().any(|t| t.by == net::ROGUE_GT));
        assert!(a.truth.tracked.iter().any(|t| t.by == net::ROGUE_REALM));
        assert!(a.truth.tracked.iter().any(|t| t.by == net::COMPROMISED_IP));
        assert_ne!(capture(8, 1_772_000_000_000_000, 50).pcap, a.pcap);
    }
}
