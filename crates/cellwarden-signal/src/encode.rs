//! Writing the same protocols: capture files (pcap, Ethernet), IPv4, UDP, TCP, SCTP, M3UA,
//! SCCP, TCAP with MAP operations, Diameter and GTPv2-C, encoded as the specifications say so
//! that Wireshark reads them without complaint. The simulator writes its signalling captures
//! with these, and the decoders' tests check themselves against them.

use std::net::Ipv4Addr;

use crate::ber::{oid_bytes, tlv};
use crate::digits::to_tbcd;

/// CRC32c (Castagnoli), as SCTP checksums are.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn ones_complement(sum_of: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in sum_of {
        for c in part.chunks(2) {
            sum += u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]) as u32;
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 packet (header checksum set).
pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, id: u16, payload: &[u8]) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut h = vec![0x45, 0];
    h.extend(total.to_be_bytes());
    h.extend(id.to_be_bytes());
    h.extend([0x40, 0, 64, proto, 0, 0]);
    h.extend(src.octets());
    h.extend(dst.octets());
    let c = ones_complement(&[&h]);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

fn pseudo(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(12);
    p.extend(src.octets());
    p.extend(dst.octets());
    p.extend([0, proto]);
    p.extend((len as u16).to_be_bytes());
    p
}

/// A UDP datagram with its checksum.
pub fn udp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let len = 8 + payload.len();
    let mut u = Vec::with_capacity(len);
    u.extend(sport.to_be_bytes());
    u.extend(dport.to_be_bytes());
    u.extend((len as u16).to_be_bytes());
    u.extend([0, 0]);
    u.extend_from_slice(payload);
    let mut c = ones_complement(&[&pseudo(src, dst, 17, len), &u]);
    if c == 0 {
        c = 0xffff;
    }
    u[6..8].copy_from_slice(&c.to_be_bytes());
    u
}

/// A TCP segment (ACK and PSH set when it carries data, or the given flags) with its checksum.
#[allow(clippy::too_many_arguments)]
pub fn tcp(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut t = Vec::with_capacity(20 + payload.len());
    t.extend(sport.to_be_bytes());
    t.extend(dport.to_be_bytes());
    t.extend(seq.to_be_bytes());
    t.extend(ack.to_be_bytes());
    t.extend([0x50, flags]);
    t.extend(65535u16.to_be_bytes());
    t.extend([0, 0, 0, 0]);
    t.extend_from_slice(payload);
    let c = ones_complement(&[&pseudo(src, dst, 6, t.len()), &t]);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    t
}

/// An SCTP packet of DATA chunks `(tsn, stream sequence number, flags, ppid, data)` on stream
/// 0 (the fragments of one message share their stream sequence number), the CRC32c checksum
/// set.
pub fn sctp_packet(
    sport: u16,
    dport: u16,
    vtag: u32,
    chunks: &[(u32, u16, u8, u32, &[u8])],
) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend(sport.to_be_bytes());
    p.extend(dport.to_be_bytes());
    p.extend(vtag.to_be_bytes());
    p.extend([0, 0, 0, 0]);
    for (tsn, ssn, flags, ppid, data) in chunks {
        let len = 16 + data.len();
        p.extend([0, *flags]);
        p.extend((len as u16).to_be_bytes());
        p.extend(tsn.to_be_bytes());
        p.extend(0u16.to_be_bytes());
        p.extend(ssn.to_be_bytes());
        p.extend(ppid.to_be_bytes());
        p.extend_from_slice(data);
        p.resize(p.len() + (len.div_ceil(4) * 4 - len), 0);
    }
    let c = crc32c(&p);
    p[8..12].copy_from_slice(&c.to_le_bytes());
    p
}

/// An M3UA DATA message carrying an SCCP message (SI 3, international network).
pub fn m3ua_data(opc: u32, dpc: u32, sls: u8, sccp: &[u8]) -> Vec<u8> {
    let mut pd = Vec::new();
    pd.extend(opc.to_be_bytes());
    pd.extend(dpc.to_be_bytes());
    pd.extend([3, 0, 0, sls]);
    pd.extend_from_slice(sccp);
    let plen = 4 + pd.len();
    let mut m = vec![1, 0, 1, 1, 0, 0, 0, 0];
    m.extend(0x0210u16.to_be_bytes());
    m.extend((plen as u16).to_be_bytes());
    m.extend(pd);
    m.resize(m.len() + (plen.div_ceil(4) * 4 - plen), 0);
    let len = m.len() as u32;
    m[4..8].copy_from_slice(&len.to_be_bytes());
    m
}

/// An ITU SCCP party address routed on its global title (GT indicator 4: translation type
/// 0, E.164, international number), with a subsystem number.
pub fn sccp_address(ssn: Option<u8>, gt: &str) -> Vec<u8> {
    let odd = gt.len() % 2 == 1;
    let mut a = vec![0x10 | if ssn.is_some() { 0x02 } else { 0 }];
    if let Some(s) = ssn {
        a.push(s);
    }
    a.extend([0, 0x10 | if odd { 1 } else { 2 }, 0x04]);
    let d: Vec<u8> = gt.bytes().map(|c| c - b'0').collect();
    a.extend(
        d.chunks(2)
            .map(|p| p[0] | (p.get(1).copied().unwrap_or(0) << 4)),
    );
    a
}

/// An SCCP UDT message (class 0, return on error).
pub fn sccp_udt(called: &[u8], calling: &[u8], data: &[u8]) -> Vec<u8> {
    sccp(&[0x09, 0x80], false, [called, calling, data])
}

/// An SCCP XUDT message (class 0, return on error, hop counter 15, no optional part).
pub fn sccp_xudt(called: &[u8], calling: &[u8], data: &[u8]) -> Vec<u8> {
    sccp(&[0x11, 0x80, 0x0f], true, [called, calling, data])
}

/// An SCCP message: its fixed part, one pointer per variable part (each counted from the
/// pointer's own octet), a zero pointer for an absent optional part, then the parts with their
/// lengths.
fn sccp(fixed: &[u8], optional: bool, parts: [&[u8]; 3]) -> Vec<u8> {
    let pointers = parts.len() + optional as usize;
    let mut m = fixed.to_vec();
    let mut start = fixed.len() + pointers;
    for (i, p) in parts.iter().enumerate() {
        m.push((start - (fixed.len() + i)) as u8);
        start += 1 + p.len();
    }
    if optional {
        m.push(0);
    }
    for p in parts {
        m.push(p.len() as u8);
        m.extend_from_slice(p);
    }
    m
}

/// The MAP application context `0.4.0.0.1.0.<ac>.<version>`.
pub fn map_context(ac: u64, version: u64) -> Vec<u8> {
    oid_bytes(&[0, 4, 0, 0, 1, 0, ac, version])
}

/// A TCAP dialogue portion: an AARQ (`response` false) or an accepting AARE.
pub fn dialogue(context: &[u8], response: bool) -> Vec<u8> {
    let mut apdu = tlv(0x80, &[0x07, 0x80]);
    apdu.extend(tlv(0xa1, &tlv(0x06, context)));
    let apdu = if response {
        apdu.extend(tlv(0xa2, &tlv(0x02, &[0])));
        apdu.extend(tlv(0xa3, &tlv(0xa1, &tlv(0x02, &[0]))));
        tlv(0x61, &apdu)
    } else {
        tlv(0x60, &apdu)
    };
    let mut ext = tlv(0x06, &oid_bytes(&[0, 0, 17, 773, 1, 1, 1]));
    ext.extend(tlv(0xa0, &apdu));
    tlv(0x6b, &tlv(0x28, &ext))
}

/// A TCAP message: `0x62` begin (otid), `0x65` continue (otid, dtid), `0x64` end (dtid).
pub fn tcap(
    kind: u8,
    otid: Option<u32>,
    dtid: Option<u32>,
    dialogue: Option<Vec<u8>>,
    components: &[Vec<u8>],
) -> Vec<u8> {
    let mut body = Vec::new();
    if let Some(t) = otid {
        body.extend(tlv(0x48, &t.to_be_bytes()));
    }
    if let Some(t) = dtid {
        body.extend(tlv(0x49, &t.to_be_bytes()));
    }
    if let Some(d) = dialogue {
        body.extend(d);
    }
    if !components.is_empty() {
        body.extend(tlv(0x6c, &components.concat()));
    }
    tlv(kind, &body)
}

/// An invoke component with a local operation code.
pub fn invoke(id: u8, op: u8, param: &[u8]) -> Vec<u8> {
    let mut c = tlv(0x02, &[id]);
    c.extend(tlv(0x02, &[op]));
    c.extend_from_slice(param);
    tlv(0xa1, &c)
}

/// A returnResultLast component naming its operation.
pub fn result(id: u8, op: u8, param: &[u8]) -> Vec<u8> {
    let mut inner = tlv(0x02, &[op]);
    inner.extend_from_slice(param);
    let mut c = tlv(0x02, &[id]);
    c.extend(tlv(0x30, &inner));
    tlv(0xa2, &c)
}

/// A returnResultLast component without a result.
pub fn result_empty(id: u8) -> Vec<u8> {
    tlv(0xa2, &tlv(0x02, &[id]))
}

/// A returnError component.
pub fn error(id: u8, code: u8) -> Vec<u8> {
    let mut c = tlv(0x02, &[id]);
    c.extend(tlv(0x02, &[code]));
    tlv(0xa3, &c)
}

/// An IMSI as BER content (TBCD).
pub fn imsi(digits: &str) -> Vec<u8> {
    to_tbcd(digits)
}

/// An ISDN-AddressString (international, E.164) as BER content.
pub fn isdn(digits: &str) -> Vec<u8> {
    let mut v = vec![0x91];
    v.extend(to_tbcd(digits));
    v
}

/// MAP operation parameters (BER of the argument or result), as the simulator sends them.
pub mod map {
    use super::{imsi, isdn};
    use crate::ber::tlv;

    /// updateLocation (v3): imsi, msc-Number [1], vlr-Number.
    pub fn update_location(i: &str, msc: &str, vlr: &str) -> Vec<u8> {
        let mut s = tlv(0x04, &imsi(i));
        s.extend(tlv(0x81, &isdn(msc)));
        s.extend(tlv(0x04, &isdn(vlr)));
        // vlr-Capability [6] { supportedCamelPhases [0] BIT STRING (phases 1-3) }.
        s.extend(tlv(0xa6, &tlv(0x80, &[0x05, 0xe0])));
        tlv(0x30, &s)
    }
    /// updateLocation result: hlr-Number.
    pub fn update_location_res(hlr: &str) -> Vec<u8> {
        tlv(0x30, &tlv(0x04, &isdn(hlr)))
    }
    /// sendAuthenticationInfo (v3): imsi [0], numberOfRequestedVectors.
    pub fn send_auth_info(i: &str) -> Vec<u8> {
        let mut s = tlv(0x80, &imsi(i));
        s.extend(tlv(0x02, &[1]));
        tlv(0x30, &s)
    }
    /// insertSubscriberData (v3): imsi [0], msisdn [1].
    pub fn insert_subscriber_data(i: &str, msisdn: &str) -> Vec<u8> {
        let mut s = tlv(0x80, &imsi(i));
        s.extend(tlv(0x81, &isdn(msisdn)));
        tlv(0x30, &s)
    }
    /// cancelLocation (v3): [3] { imsi, cancellationType updateProcedure }.
    pub fn cancel_location(i: &str) -> Vec<u8> {
        let mut s = tlv(0x04, &imsi(i));
        s.extend(tlv(0x0a, &[0]));
        tlv(0xa3, &s)
    }
    /// purgeMS (v3): [3] { imsi, vlr-Number [0] }.
    pub fn purge_ms(i: &str, vlr: &str) -> Vec<u8> {
        let mut s = tlv(0x04, &imsi(i));
        s.extend(tlv(0x80, &isdn(vlr)));
        tlv(0xa3, &s)
    }
    /// sendRoutingInfoForSM: msisdn [0], sm-RP-PRI [1], serviceCentreAddress [2].
    pub fn sri_for_sm(msisdn: &str, sc: &str) -> Vec<u8> {
        let mut s = tlv(0x80, &isdn(msisdn));
        s.extend(tlv(0x81, &[0xff]));
        s.extend(tlv(0x82, &isdn(sc)));
        tlv(0x30, &s)
    }
    /// sendRoutingInfoForSM result: imsi, locationInfoWithLMSI [0] { networkNode-Number [1] }.
    pub fn sri_for_sm_res(i: &str, msc: &str) -> Vec<u8> {
        let mut s = tlv(0x04, &imsi(i));
        s.extend(tlv(0xa0, &tlv(0x81, &isdn(msc))));
        tlv(0x30, &s)
    }
    /// mt-forwardSM: sm-RP-DA imsi [0], sm-RP-OA serviceCentreAddressOA [4], sm-RP-UI (an
    /// SMS-DELIVER TPDU from `from` saying "hi").
    pub fn mt_forward_sm(i: &str, sc: &str, from: &str) -> Vec<u8> {
        let mut s = tlv(0x80, &imsi(i));
        s.extend(tlv(0x84, &isdn(sc)));
        let mut tpdu = vec![0x04, from.len() as u8, 0x91];
        tpdu.extend(super::to_tbcd(from));
        tpdu.extend([0x00, 0x00]);
        tpdu.extend([0x62, 0x30, 0x21, 0x01, 0x02, 0x03, 0x00]);
        tpdu.extend([0x02, 0xe8, 0x34]);
        s.extend(tlv(0x04, &tpdu));
        tlv(0x30, &s)
    }
    /// sendRoutingInfo (v3): msisdn [0], interrogationType [3] basicCall, gmsc [6].
    pub fn sri(msisdn: &str, gmsc: &str) -> Vec<u8> {
        let mut s = tlv(0x80, &isdn(msisdn));
        s.extend(tlv(0x83, &[0]));
        s.extend(tlv(0x86, &isdn(gmsc)));
        tlv(0x30, &s)
    }
    /// anyTimeInterrogation: subscriberIdentity [0] msisdn [1], requestedInfo [1]
    /// { locationInformation, subscriberState }, gsmSCF-Address [3].
    pub fn ati(msisdn: &str, gsmscf: &str) -> Vec<u8> {
        let mut s = tlv(0xa0, &tlv(0x81, &isdn(msisdn)));
        let mut ri = tlv(0x80, &[]);
        ri.extend(tlv(0x81, &[]));
        s.extend(tlv(0xa1, &ri));
        s.extend(tlv(0x83, &isdn(gsmscf)));
        tlv(0x30, &s)
    }
    /// anyTimeInterrogation / provideSubscriberInfo result: subscriberInfo
    /// { locationInformation [0] { ageOfLocationInformation, vlr-number [1] } }.
    pub fn subscriber_info_res(vlr: &str) -> Vec<u8> {
        let mut loc = tlv(0x02, &[5]);
        loc.extend(tlv(0x81, &isdn(vlr)));
        tlv(0x30, &tlv(0x30, &tlv(0xa0, &loc)))
    }
    /// provideSubscriberInfo: imsi [0], requestedInfo [2] { locationInformation }.
    pub fn psi(i: &str) -> Vec<u8> {
        let mut s = tlv(0x80, &imsi(i));
        s.extend(tlv(0xa2, &tlv(0x80, &[])));
        tlv(0x30, &s)
    }
    /// sendIMSI: the MSISDN.
    pub fn send_imsi(msisdn: &str) -> Vec<u8> {
        tlv(0x04, &isdn(msisdn))
    }
    /// sendIMSI result: the IMSI.
    pub fn send_imsi_res(i: &str) -> Vec<u8> {
        tlv(0x04, &imsi(i))
    }
}

/// A Diameter AVP (mandatory bit set; vendor-specific when `vendor` is given), padded.
pub fn avp(code: u32, vendor: Option<u32>, value: &[u8]) -> Vec<u8> {
    let head = if vendor.is_some() { 12 } else { 8 };
    let len = head + value.len();
    let mut a = Vec::with_capacity(len + 3);
    a.extend(code.to_be_bytes());
    a.push(0x40 | if vendor.is_some() { 0x80 } else { 0 });
    a.extend(&(len as u32).to_be_bytes()[1..]);
    if let Some(v) = vendor {
        a.extend(v.to_be_bytes());
    }
    a.extend_from_slice(value);
    a.resize(len.div_ceil(4) * 4, 0);
    a
}

/// The 3GPP vendor id.
pub const TGPP: u32 = 10415;

/// A Diameter message (proxiable) of AVPs.
pub fn diameter(
    code: u32,
    request: bool,
    app: u32,
    hbh: u32,
    e2e: u32,
    avps: &[Vec<u8>],
) -> Vec<u8> {
    let body = avps.concat();
    let len = 20 + body.len();
    let mut m = vec![1];
    m.extend(&(len as u32).to_be_bytes()[1..]);
    m.push(if request { 0xc0 } else { 0x40 });
    m.extend(&code.to_be_bytes()[1..]);
    m.extend(app.to_be_bytes());
    m.extend(hbh.to_be_bytes());
    m.extend(e2e.to_be_bytes());
    m.extend(body);
    m
}

/// A GTPv2-C message with a TEID (none for Echo) of IEs `(type, instance, value)`.
pub fn gtpv2(ty: u8, teid: Option<u32>, seq: u32, ies: &[(u8, u8, Vec<u8>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (t, inst, v) in ies {
        body.push(*t);
        body.extend((v.len() as u16).to_be_bytes());
        body.push(*inst & 0x0f);
        body.extend_from_slice(v);
    }
    let mut m = vec![if teid.is_some() { 0x48 } else { 0x40 }, ty, 0, 0];
    if let Some(t) = teid {
        m.extend(t.to_be_bytes());
    }
    m.extend(&seq.to_be_bytes()[1..]);
    m.push(0);
    m.extend(body);
    let len = (m.len() - 4) as u16;
    m[2..4].copy_from_slice(&len.to_be_bytes());
    m
}

/// A pcapng block (little-endian), its body padded to four bytes.
pub fn pcapng_block(ty: u32, body: &[u8]) -> Vec<u8> {
    let mut b = body.to_vec();
    while !b.len().is_multiple_of(4) {
        b.push(0);
    }
    let len = (b.len() + 12) as u32;
    let mut out = ty.to_le_bytes().to_vec();
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&b);
    out.extend_from_slice(&len.to_le_bytes());
    out
}

/// A pcapng section header block (little-endian, version 1.0, length not given).
pub fn pcapng_section() -> Vec<u8> {
    let mut shb = 0x1A2B_3C4Du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&[1, 0, 0, 0]);
    shb.extend_from_slice(&u64::MAX.to_le_bytes());
    pcapng_block(0x0A0D_0D0A, &shb)
}

/// The packets of a little-endian pcap as a pcapng: one interface of link type `link`,
/// each record an enhanced packet block (times left at zero).
pub fn pcapng_of(pcap: &[u8], link: u16) -> Vec<u8> {
    let mut idb = link.to_le_bytes().to_vec();
    idb.extend_from_slice(&[0, 0, 0xff, 0xff, 0, 0]);
    let mut out = pcapng_section();
    out.extend(pcapng_block(1, &idb));
    let mut i = 24;
    while i + 16 <= pcap.len() {
        let len = u32::from_le_bytes(pcap[i + 8..i + 12].try_into().expect("4 bytes")) as usize;
        let mut epb = vec![0u8; 12];
        epb.extend_from_slice(&(len as u32).to_le_bytes());
        epb.extend_from_slice(&(len as u32).to_le_bytes());
        epb.extend_from_slice(&pcap[i + 16..i + 16 + len]);
        out.extend(pcapng_block(6, &epb));
        i += 16 + len;
    }
    out
}

/// A pcap capture (microsecond times, Ethernet) being written in memory.
#[derive(Debug, Clone)]
pub struct Pcap {
    bytes: Vec<u8>,
}

impl Default for Pcap {
    fn default() -> Self {
        Self::new()
    }
}

impl Pcap {
    /// An empty capture (its header only).
    pub fn new() -> Self {
        let mut b = Vec::new();
        b.extend(0xa1b2_c3d4u32.to_le_bytes());
        b.extend(2u16.to_le_bytes());
        b.extend(4u16.to_le_bytes());
        b.extend([0; 8]);
        b.extend(65535u32.to_le_bytes());
        b.extend(1u32.to_le_bytes());
        Pcap { bytes: b }
    }

    /// Adds an IPv4 packet in an Ethernet frame.
    pub fn ipv4(&mut self, time_us: i64, ip: &[u8]) {
        let mut f = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00];
        f.extend_from_slice(ip);
        self.bytes
            .extend(((time_us / 1_000_000) as u32).to_le_bytes());
        self.bytes
            .extend(((time_us % 1_000_000) as u32).to_le_bytes());
        self.bytes.extend((f.len() as u32).to_le_bytes());
        self.bytes.extend((f.len() as u32).to_le_bytes());
        self.bytes.extend(f);
    }

    /// The capture's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }
}
