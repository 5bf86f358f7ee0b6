//! M3UA (RFC 4666) DATA messages and the SCCP (ITU-T Q.713) messages they carry: UDT, XUDT
//! and their service variants, with the called and calling party addresses (point code,
//! subsystem number, global title digits). The SCCP user data is handed back with the route,
//! for [`crate::tcap`].
//!
//! Only ITU SCCP addresses are read (14-bit point codes); ANSI ones are reported as a
//! problem. Connection-oriented SCCP and LUDT are passed over.

use serde_json::{Map, Value};

use crate::{Packet, Sink, be16, be32};

/// One SCCP party address.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Address {
    /// Point code.
    pub pc: Option<u16>,
    /// Subsystem number.
    pub ssn: Option<u8>,
    /// Global title digits.
    pub gt: Option<String>,
    /// Translation type.
    pub tt: Option<u8>,
    /// Numbering plan (1 = E.164, 6 = E.212, 7 = E.214).
    pub np: Option<u8>,
}

/// The facts of the lower layers a MAP message carries with it.
#[derive(Debug, Default, Clone)]
pub struct Route {
    /// Originating and destination point codes (M3UA).
    pub opc: Option<u32>,
    /// Destination point code.
    pub dpc: Option<u32>,
    /// SCCP message type name.
    pub sccp: &'static str,
    /// Called party.
    pub called: Address,
    /// Calling party.
    pub calling: Address,
}

impl Route {
    /// Writes the route's fields into a message.
    pub fn fields(&self, m: &mut Map<String, Value>) {
        if let Some(x) = self.opc {
            m.insert("opc".into(), x.into());
        }
        if let Some(x) = self.dpc {
            m.insert("dpc".into(), x.into());
        }
        m.insert("sccp_type".into(), self.sccp.into());
        for (side, a) in [("called", &self.called), ("calling", &self.calling)] {
            if let Some(x) = &a.gt {
                m.insert(format!("{side}_gt"), x.clone().into());
            }
            if let Some(x) = a.ssn {
                m.insert(format!("{side}_ssn"), x.into());
            }
            if let Some(x) = a.pc {
                m.insert(format!("{side}_pc"), x.into());
            }
            if let Some(x) = a.tt {
                m.insert(format!("{side}_tt"), x.into());
            }
        }
    }
}

/// The route and SCCP user data of one M3UA message (none for management and other
/// classes, or SCCP messages that carry no user data).
pub fn m3ua<'b>(pk: &Packet, b: &'b [u8], out: &mut dyn Sink) -> Option<(Route, &'b [u8])> {
    if b.len() < 8 || b[0] != 1 {
        out.problem(pk.number, "not an M3UA message (version is not 1)".into());
        return None;
    }
    // Transfer class, DATA.
    if b[2] != 1 || b[3] != 1 {
        return None;
    }
    let len = (be32(b, 4).unwrap_or(0) as usize).min(b.len());
    let mut off = 8;
    while off + 4 <= len {
        let tag = be16(b, off).unwrap_or(0);
        let plen = be16(b, off + 2).unwrap_or(0) as usize;
        if plen < 4 || off + plen > len {
            out.problem(
                pk.number,
                format!("M3UA parameter {tag:#06x} has a bad length {plen}"),
            );
            return None;
        }
        if tag == 0x0210 {
            let v = &b[off + 4..off + plen];
            if v.len() < 12 {
                out.problem(pk.number, "M3UA protocol data cut off".into());
                return None;
            }
            let route = Route {
                opc: be32(v, 0),
                dpc: be32(v, 4),
                ..Default::default()
            };
            // Service indicator 3: SCCP.
            if v[8] != 3 {
                return None;
            }
            return sccp(pk, route, &v[12..], out);
        }
        off += plen.div_ceil(4) * 4;
    }
    None
}

/// The route and user data of one SCCP message.
pub fn sccp<'b>(
    pk: &Packet,
    mut route: Route,
    b: &'b [u8],
    out: &mut dyn Sink,
) -> Option<(Route, &'b [u8])> {
    let &ty = b.first()?;
    // Offsets of the pointers to the called, calling and data parts.
    let ptrs = match ty {
        0x09 => {
            route.sccp = "udt";
            2
        }
        0x0a => {
            route.sccp = "udts";
            2
        }
        0x11 => {
            route.sccp = "xudt";
            3
        }
        0x12 => {
            route.sccp = "xudts";
            3
        }
        _ => return None,
    };
    let part = |i: usize| -> Option<&[u8]> {
        let at = ptrs + i;
        let p = *b.get(at)? as usize;
        if p == 0 {
            return None;
        }
        let start = at + p;
        let n = *b.get(start)? as usize;
        b.get(start + 1..start + 1 + n)
    };
    let (Some(called), Some(calling), Some(data)) = (part(0), part(1), part(2)) else {
        out.problem(
            pk.number,
            "SCCP message cut off or with a bad pointer".into(),
        );
        return None;
    };
    match (address(called), address(calling)) {
        (Some(a), Some(c)) => {
            route.called = a;
            route.calling = c;
        }
        _ => {
            out.problem(
                pk.number,
                "SCCP party address cannot be read (not ITU?)".into(),
            );
            return None;
        }
    }
    Some((route, data))
}

/// An ITU SCCP party address.
pub fn address(b: &[u8]) -> Option<Address> {
    let (&ai, mut rest) = b.split_first()?;
    let mut a = Address::default();
    if ai & 0x01 != 0 {
        let pc = rest.get(..2)?;
        a.pc = Some(u16::from_le_bytes([pc[0], pc[1]]) & 0x3fff);
        rest = &rest[2..];
    }
    if ai & 0x02 != 0 {
        a.ssn = Some(*rest.first()?);
        rest = &rest[1..];
    }
    let gti = (ai >> 2) & 0x0f;
    let (odd, digits) = match gti {
        0 => return Some(a),
        1 => {
            let (&nai, d) = rest.split_first()?;
            (nai & 0x80 != 0, d)
        }
        2 => {
            let (&tt, d) = rest.split_first()?;
            a.tt = Some(tt);
            (false, d)
        }
        3 | 4 => {
            let tt = *rest.first()?;
            let npes = *rest.get(1)?;
            a.tt = Some(tt);
            a.np = Some(npes >> 4);
            let skip = if gti == 4 { 3 } else { 2 };
            (npes & 0x0f == 1, rest.get(skip..)?)
        }
        _ => return None,
    };
    let mut s = String::with_capacity(digits.len() * 2);
    for &x in digits {
        for n in [x & 0x0f, x >> 4] {
            s.push(char::from_digit(n as u32, 16)?);
        }
    }
    if odd {
        s.pop();
    }
    a.gt = Some(s);
    Some(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode;

    #[test]
    fn gt_addresses() {
        let b = encode::sccp_address(Some(6), "4917012345");
        let a = address(&b).unwrap();
        assert_eq!(a.gt.as_deref(), Some("4917012345"));
        assert_eq!(a.ssn, Some(6));
        assert_eq!(a.np, Some(1));
        let b = encode::sccp_address(Some(7), "33612345678");
        assert_eq!(address(&b).unwrap().gt.as_deref(), Some("33612345678"));
        // Point code and SSN only.
        let a = address(&[0x43, 0x39, 0x05, 0x08]).unwrap();
        assert_eq!((a.pc, a.ssn, a.gt), (Some(0x0539), Some(8), None));
        assert!(address(&[0x12, 0x00]).is_none());
    }
}
