//! Diameter (RFC 6733) messages: the header (command, request flag, application, hop-by-hop
//! and end-to-end ids) and the AVPs that say who asked whom about which subscriber:
//! Session-Id, Origin/Destination-Host and -Realm, User-Name (the IMSI on S6a/S6d, SLh),
//! MSISDN (also inside Subscription-Data and Sh's User-Identity), IMEI (Terminal-Information),
//! Visited-PLMN-Id, IDR-Flags (what an Insert-Subscriber-Data asks for), ULR-Flags,
//! Cancellation-Type and the Result-Code or Experimental-Result-Code.

use serde_json::{Map, Value};

use crate::digits::{plmn, tbcd};
use crate::{Packet, Sink, be32};

/// Longest Diameter message taken for one (a longer length is damage).
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// The name of a command code (without "-Request"/"-Answer").
pub fn command_name(code: u32) -> Option<&'static str> {
    Some(match code {
        257 => "Capabilities-Exchange",
        258 => "Re-Auth",
        271 => "Accounting",
        272 => "Credit-Control",
        274 => "Abort-Session",
        275 => "Session-Termination",
        280 => "Device-Watchdog",
        282 => "Disconnect-Peer",
        300 => "User-Authorization",
        301 => "Server-Assignment",
        302 => "Location-Info",
        303 => "Multimedia-Auth",
        304 => "Registration-Termination",
        305 => "Push-Profile",
        306 => "User-Data",
        307 => "Profile-Update",
        308 => "Subscribe-Notifications",
        309 => "Push-Notification",
        316 => "Update-Location",
        317 => "Cancel-Location",
        318 => "Authentication-Information",
        319 => "Insert-Subscriber-Data",
        320 => "Delete-Subscriber-Data",
        321 => "Purge-UE",
        322 => "Reset",
        323 => "Notify",
        324 => "ME-Identity-Check",
        8388620 => "Provide-Location",
        8388621 => "Location-Report",
        8388622 => "LCS-Routing-Info",
        _ => return None,
    })
}

/// The usual abbreviation of a command (`ULR`, `IDA`, …).
pub fn command_abbreviation(code: u32, request: bool) -> Option<String> {
    let stem = match code {
        257 => "CE",
        258 => "RA",
        271 => "AC",
        272 => "CC",
        274 => "AS",
        275 => "ST",
        280 => "DW",
        282 => "DP",
        300 => "UA",
        301 => "SA",
        302 => "LI",
        303 => "MA",
        304 => "RT",
        305 => "PP",
        306 => "UD",
        307 => "PU",
        308 => "SN",
        309 => "PN",
        316 => "UL",
        317 => "CL",
        318 => "AI",
        319 => "ID",
        320 => "DS",
        321 => "PU",
        322 => "RS",
        323 => "NO",
        324 => "EC",
        8388620 => "PL",
        8388621 => "LR",
        8388622 => "RI",
        _ => return None,
    };
    Some(format!("{stem}{}", if request { 'R' } else { 'A' }))
}

/// The name of an application id.
pub fn application_name(id: u32) -> Option<&'static str> {
    Some(match id {
        0 => "base",
        3 => "accounting",
        4 => "credit-control",
        16777216 => "cx",
        16777217 => "sh",
        16777238 => "gx",
        16777251 => "s6a",
        16777252 => "s13",
        16777255 => "slg",
        16777291 => "slh",
        16777312 => "s6c",
        _ => return None,
    })
}

/// Grouped AVPs searched for the AVPs above.
const GROUPED: &[u32] = &[260, 297, 279, 700, 1400, 1401];

/// Whether bytes start a plausible Diameter header; its length if so.
pub fn header_len(b: &[u8]) -> Option<usize> {
    if b.len() < 20 || b[0] != 1 || b[4] & 0x0f != 0 {
        return None;
    }
    let len = u32::from_be_bytes([0, b[1], b[2], b[3]]) as usize;
    (20..=MAX_MESSAGE_BYTES)
        .contains(&len)
        .then_some(len)
        .filter(|l| l % 4 == 0)
}

/// One whole Diameter message decoded.
pub fn decode(pk: &Packet, b: &[u8], out: &mut dyn Sink) -> Option<Map<String, Value>> {
    let Some(len) = header_len(b) else {
        out.problem(
            pk.number,
            "not a Diameter message (bad version, flags or length)".into(),
        );
        return None;
    };
    let b = b.get(..len)?;
    let flags = b[4];
    let code = u32::from_be_bytes([0, b[5], b[6], b[7]]);
    let app = be32(b, 8)?;
    let request = flags & 0x80 != 0;
    let mut m = pk.message("diameter");
    m.insert("command_code".into(), code.into());
    if let Some(n) = command_name(code) {
        m.insert("command".into(), n.into());
    }
    if let Some(a) = command_abbreviation(code, request) {
        m.insert("command_abbreviation".into(), a.into());
    }
    m.insert("request".into(), request.into());
    m.insert("application_id".into(), app.into());
    if let Some(n) = application_name(app) {
        m.insert("application".into(), n.into());
    }
    m.insert("hop_by_hop".into(), be32(b, 12)?.into());
    m.insert("end_to_end".into(), be32(b, 16)?.into());
    if let Err(at) = avps(&b[20..], &mut m, 0) {
        out.problem(
            pk.number,
            format!("Diameter {code} AVP at byte {} has a bad length", 20 + at),
        );
    }
    Some(m)
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

/// Reads AVPs into the message; `Err(offset)` at one that does not fit.
fn avps(mut b: &[u8], m: &mut Map<String, Value>, depth: u8) -> Result<(), usize> {
    let start = b.len();
    while b.len() >= 8 {
        let at = start - b.len();
        let code = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let flags = b[4];
        let len = u32::from_be_bytes([0, b[5], b[6], b[7]]) as usize;
        let head = if flags & 0x80 != 0 { 12 } else { 8 };
        if len < head || len > b.len() {
            return Err(at);
        }
        let v = &b[head..len];
        match code {
            1 => {
                let u = text(v);
                if u.len() >= 6 && u.len() <= 15 && crate::digits::decimal(&u) {
                    crate::put(m, "imsi", u.clone());
                }
                crate::put(m, "user_name", u);
            }
            263 => crate::put(m, "session_id", text(v)),
            264 => crate::put(m, "origin_host", text(v)),
            296 => crate::put(m, "origin_realm", text(v)),
            293 => crate::put(m, "destination_host", text(v)),
            283 => crate::put(m, "destination_realm", text(v)),
            268 | 298 => {
                if let Some(x) = be32(v, 0) {
                    crate::put(m, "result_code", x);
                }
            }
            701 => crate::put(m, "msisdn", tbcd(v)),
            1402 => crate::put(m, "imei", text(v)),
            1407 => {
                if let Some(p) = plmn(v) {
                    crate::put(m, "visited_plmn", p);
                }
            }
            1405 => {
                if let Some(x) = be32(v, 0) {
                    crate::put(m, "ulr_flags", x);
                }
            }
            1420 => {
                if let Some(x) = be32(v, 0) {
                    crate::put(m, "cancellation_type", x);
                }
            }
            1490 => {
                if let Some(x) = be32(v, 0) {
                    crate::put(m, "idr_flags", x);
                    let names: Vec<&str> = [
                        (0, "reachability"),
                        (1, "t_ads"),
                        (2, "state"),
                        (3, "location"),
                        (4, "current_location"),
                        (5, "time_zone"),
                    ]
                    .iter()
                    .filter(|(bit, _)| x & (1 << bit) != 0)
                    .map(|(_, n)| *n)
                    .collect();
                    if !names.is_empty() {
                        crate::put(m, "requested_info", names.join(","));
                    }
                }
            }
            c if GROUPED.contains(&c) && depth < 4 => {
                avps(v, m, depth + 1).map_err(|e| at + head + e)?;
            }
            _ => {}
        }
        b = b.get(len.div_ceil(4) * 4..).unwrap_or(&[]);
    }
    Ok(())
}
