//! Digit encodings of the signalling protocols: TBCD (IMSI, MSISDN, IMEI as 3GPP packs them,
//! two digits per octet, low nibble first, `f` as filler), ISDN address strings (one octet of
//! nature of address and numbering plan, then TBCD) and PLMN identities (MCC/MNC).

/// TBCD digits: low nibble first; a filler nibble (`f`) ends the digits. Nibbles 10–14 are
/// written as `*`, `#`, `a`, `b`, `c` as 3GPP TS 29.002 defines them.
pub fn tbcd(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        for n in [x & 0x0f, x >> 4] {
            match n {
                0..=9 => s.push((b'0' + n) as char),
                10 => s.push('*'),
                11 => s.push('#'),
                12 => s.push('a'),
                13 => s.push('b'),
                14 => s.push('c'),
                _ => return s,
            }
        }
    }
    s
}

/// An ISDN-AddressString / AddressString (TS 29.002): its first octet carries the nature of
/// address and numbering plan, the rest is TBCD. `None` when empty.
pub fn address_string(b: &[u8]) -> Option<String> {
    let (_, digits) = b.split_first()?;
    Some(tbcd(digits))
}

/// Whether the digits are plausible as an identifier (not empty, decimal only).
pub fn decimal(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())
}

/// A PLMN identity (3 octets: MCC digit 2|1, MNC digit 3|MCC digit 3, MNC digit 2|1) as
/// `MCC-MNC`.
pub fn plmn(b: &[u8]) -> Option<String> {
    let b = b.get(..3)?;
    let mcc = [b[0] & 0x0f, b[0] >> 4, b[1] & 0x0f];
    let mnc3 = b[1] >> 4;
    let mnc = [b[2] & 0x0f, b[2] >> 4];
    if mcc.iter().chain(mnc.iter()).any(|d| *d > 9) {
        return None;
    }
    let mut s: String = mcc.iter().map(|d| (b'0' + d) as char).collect();
    s.push('-');
    s.extend(mnc.iter().map(|d| (b'0' + d) as char));
    if mnc3 <= 9 {
        s.push((b'0' + mnc3) as char);
    }
    Some(s)
}

/// Digits packed as TBCD (a trailing `f` filler when their number is odd).
pub fn to_tbcd(digits: &str) -> Vec<u8> {
    let d: Vec<u8> = digits
        .bytes()
        .map(|c| match c {
            b'0'..=b'9' => c - b'0',
            b'*' => 10,
            b'#' => 11,
            _ => 15,
        })
        .collect();
    d.chunks(2)
        .map(|p| p[0] | (p.get(1).copied().unwrap_or(15) << 4))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tbcd_round_trip_and_filler() {
        assert_eq!(tbcd(&to_tbcd("262019876543210")), "262019876543210");
        assert_eq!(tbcd(&to_tbcd("4915")), "4915");
        assert_eq!(tbcd(&[0x21, 0xf3]), "123");
        assert_eq!(address_string(&[0x91, 0x94, 0x71]).as_deref(), Some("4917"));
        assert_eq!(address_string(&[]), None);
    }

    #[test]
    fn plmn_ids() {
        // MCC 262, MNC 01 (two digits: filler in the MNC3 nibble).
        assert_eq!(plmn(&[0x62, 0xf2, 0x10]).as_deref(), Some("262-01"));
        // MCC 310, MNC 260.
        assert_eq!(plmn(&[0x13, 0x00, 0x62]).as_deref(), Some("310-260"));
        assert_eq!(plmn(&[0x62]), None);
    }
}
