//! GTP control plane over UDP port 2123: GTPv1-C (3GPP TS 29.060) and GTPv2-C (TS 29.274)
//! messages with the header TEID and sequence number and the IEs that name the subscriber
//! and the peers: IMSI, MSISDN, IMEI (MEI), APN, cause, RAT type, serving network, the
//! sender's and the PGW's control-plane F-TEIDs (v2), the TEIDs and GSN addresses (v1).

use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value};

use crate::digits::{address_string, plmn, tbcd};
use crate::{Packet, Sink, be16, be32, put};

/// The name of a GTPv2-C message type.
pub fn v2_message_name(t: u8) -> Option<&'static str> {
    Some(match t {
        1 => "Echo Request",
        2 => "Echo Response",
        3 => "Version Not Supported",
        32 => "Create Session Request",
        33 => "Create Session Response",
        34 => "Modify Bearer Request",
        35 => "Modify Bearer Response",
        36 => "Delete Session Request",
        37 => "Delete Session Response",
        95 => "Create Bearer Request",
        96 => "Create Bearer Response",
        97 => "Update Bearer Request",
        98 => "Update Bearer Response",
        99 => "Delete Bearer Request",
        100 => "Delete Bearer Response",
        170 => "Release Access Bearers Request",
        171 => "Release Access Bearers Response",
        176 => "Downlink Data Notification",
        177 => "Downlink Data Notification Acknowledge",
        _ => return None,
    })
}

/// The name of a GTPv1-C message type.
pub fn v1_message_name(t: u8) -> Option<&'static str> {
    Some(match t {
        1 => "Echo Request",
        2 => "Echo Response",
        3 => "Version Not Supported",
        16 => "Create PDP Context Request",
        17 => "Create PDP Context Response",
        18 => "Update PDP Context Request",
        19 => "Update PDP Context Response",
        20 => "Delete PDP Context Request",
        21 => "Delete PDP Context Response",
        26 => "Error Indication",
        31 => "Supported Extension Headers Notification",
        _ => return None,
    })
}

/// The GTP-C messages of a UDP payload: one, or for GTPv2-C with the piggybacking flag, the
/// message and the one carried after it (TS 29.274 5.5.1).
pub fn decode(pk: &Packet, b: &[u8], out: &mut dyn Sink) -> Vec<Map<String, Value>> {
    let mut msgs = Vec::new();
    match b.first().map(|f| f >> 5) {
        Some(2) => {
            msgs.extend(v2(pk, b, out));
            let piggybacked = b[0] & 0x10 != 0;
            let next = be16(b, 2).map(|l| 4 + l as usize);
            if piggybacked
                && let Some(rest) = next.and_then(|n| b.get(n..))
                && rest.first().is_some_and(|f| f >> 5 == 2)
            {
                msgs.extend(v2(pk, rest, out));
            }
        }
        Some(1) if b[0] & 0x10 != 0 => msgs.extend(v1(pk, b, out)),
        Some(_) => out.problem(pk.number, "not a GTPv1-C or GTPv2-C message".into()),
        None => {}
    }
    msgs
}

fn apn(v: &[u8]) -> String {
    let mut labels = Vec::new();
    let mut rest = v;
    while let Some((&n, r)) = rest.split_first() {
        let Some(l) = r.get(..n as usize) else { break };
        labels.push(String::from_utf8_lossy(l).into_owned());
        rest = &r[n as usize..];
    }
    labels.join(".")
}

fn ip_of(v: &[u8]) -> Option<String> {
    match v.len() {
        4 => Some(Ipv4Addr::new(v[0], v[1], v[2], v[3]).to_string()),
        16 => Some(Ipv6Addr::from(<[u8; 16]>::try_from(v).ok()?).to_string()),
        _ => None,
    }
}

fn v2(pk: &Packet, b: &[u8], out: &mut dyn Sink) -> Option<Map<String, Value>> {
    let ty = *b.get(1)?;
    let len = be16(b, 2)? as usize;
    let t = b[0] & 0x08 != 0;
    let Some(msg) = b.get(..4 + len) else {
        out.problem(
            pk.number,
            format!(
                "GTPv2-C message of {} bytes cut off at {}",
                4 + len,
                b.len()
            ),
        );
        return None;
    };
    let mut m = pk.message("gtpc");
    m.insert("gtp_version".into(), 2.into());
    m.insert("message_type".into(), ty.into());
    if let Some(n) = v2_message_name(ty) {
        m.insert("message".into(), n.into());
    }
    let mut off = 4;
    if t {
        m.insert("teid".into(), be32(msg, 4)?.into());
        off = 8;
    }
    let seq = u32::from_be_bytes([0, *msg.get(off)?, *msg.get(off + 1)?, *msg.get(off + 2)?]);
    m.insert("sequence".into(), seq.into());
    if let Err(at) = v2_ies(&msg[off + 4..], &mut m, 0) {
        out.problem(
            pk.number,
            format!("GTPv2-C IE at byte {} has a bad length", off + 4 + at),
        );
    }
    Some(m)
}

fn v2_ies(mut b: &[u8], m: &mut Map<String, Value>, depth: u8) -> Result<(), usize> {
    let start = b.len();
    while b.len() >= 4 {
        let at = start - b.len();
        let ty = b[0];
        let len = u16::from_be_bytes([b[1], b[2]]) as usize;
        let instance = b[3] & 0x0f;
        let Some(v) = b.get(4..4 + len) else {
            return Err(at);
        };
        match ty {
            1 => put(m, "imsi", tbcd(v)),
            2 => {
                if let Some(c) = v.first() {
                    put(m, "cause", *c);
                }
            }
            71 => put(m, "apn", apn(v)),
            75 => put(m, "imei", tbcd(v)),
            76 => put(m, "msisdn", tbcd(v)),
            82 => {
                if let Some(r) = v.first() {
                    put(m, "rat_type", *r);
                }
            }
            83 => {
                if let Some(p) = plmn(v) {
                    put(m, "serving_network", p);
                }
            }
            87 if depth == 0 => {
                // F-TEID: flags (v4, v6, interface type), TEID, addresses.
                let Some(&flags) = v.first() else { continue };
                let key = if instance == 0 { "sender" } else { "peer" };
                if let Some(teid) = be32(v, 1) {
                    put(m, &format!("{key}_teid"), teid);
                }
                let mut a = 5;
                if flags & 0x80 != 0 {
                    if let Some(ip) = v.get(a..a + 4).and_then(ip_of) {
                        put(m, &format!("{key}_address"), ip);
                    }
                    a += 4;
                }
                if flags & 0x40 != 0
                    && let Some(ip) = v.get(a..a + 16).and_then(ip_of)
                {
                    put(m, &format!("{key}_address"), ip);
                }
            }
            93 if depth < 2 => v2_ies(v, m, depth + 1).map_err(|e| at + 4 + e)?,
            _ => {}
        }
        b = &b[4 + len..];
    }
    Ok(())
}

/// Lengths of the GTPv1 TV IEs (types below 128).
fn v1_tv_len(t: u8) -> Option<usize> {
    Some(match t {
        1 | 8 | 11 | 13 | 14 | 15 | 19 | 20 | 21 | 23 | 24 | 29 => 1,
        25..=28 => 2,
        12 => 3,
        2 => 8,
        3 => 6,
        4 | 5 | 16 | 17 | 127 => 4,
        18 => 5,
        22 => 9,
        9 => 28,
        _ => return None,
    })
}

fn v1(pk: &Packet, b: &[u8], out: &mut dyn Sink) -> Option<Map<String, Value>> {
    let ty = *b.get(1)?;
    let len = be16(b, 2)? as usize;
    let Some(msg) = b.get(..8 + len) else {
        out.problem(
            pk.number,
            format!(
                "GTPv1-C message of {} bytes cut off at {}",
                8 + len,
                b.len()
            ),
        );
        return None;
    };
    let mut m = pk.message("gtpc");
    m.insert("gtp_version".into(), 1.into());
    m.insert("message_type".into(), ty.into());
    if let Some(n) = v1_message_name(ty) {
        m.insert("message".into(), n.into());
    }
    m.insert("teid".into(), be32(msg, 4)?.into());
    let mut off = 8;
    if msg[0] & 0x07 != 0 {
        m.insert("sequence".into(), be16(msg, 8)?.into());
        let mut next = *msg.get(11)?;
        off = 12;
        while next != 0 {
            let n = *msg.get(off)? as usize * 4;
            if n == 0 {
                return Some(m);
            }
            next = *msg.get(off + n - 1)?;
            off += n;
        }
    }
    let mut rest = msg.get(off..)?;
    let mut gsn = 0;
    while let Some(&t) = rest.first() {
        let (v, used) = if t < 128 {
            let Some(n) = v1_tv_len(t) else {
                out.problem(
                    pk.number,
                    format!("GTPv1-C IE of unknown type {t}: the rest of the message is not read"),
                );
                break;
            };
            (rest.get(1..1 + n), 1 + n)
        } else {
            let n = be16(rest, 1).unwrap_or(u16::MAX) as usize;
            (rest.get(3..3 + n), 3 + n)
        };
        let Some(v) = v else {
            out.problem(pk.number, format!("GTPv1-C IE of type {t} cut off"));
            break;
        };
        match t {
            1 => put(&mut m, "cause", v[0]),
            2 => put(&mut m, "imsi", tbcd(v)),
            16 => put(&mut m, "teid_data", be32(v, 0).unwrap_or(0)),
            17 => put(&mut m, "teid_control", be32(v, 0).unwrap_or(0)),
            131 => put(&mut m, "apn", apn(v)),
            133 => {
                // The first GSN address is the control plane's.
                if let Some(ip) = ip_of(v) {
                    put(
                        &mut m,
                        if gsn == 0 {
                            "gsn_address"
                        } else {
                            "gsn_address_user"
                        },
                        ip,
                    );
                }
                gsn += 1;
            }
            134 => {
                if let Some(a) = address_string(v) {
                    put(&mut m, "msisdn", a);
                }
            }
            154 => put(&mut m, "imei", tbcd(v)),
            _ => {}
        }
        rest = &rest[used..];
    }
    Some(m)
}
