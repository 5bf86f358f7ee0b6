//! Subscriber identifiers.
//!
//! An MSISDN is normalised to international digits without `+` or `00` (national numbers get
//! the configured country code); an IMSI is 15 digits; an IMEI 14–16 digits, and a 15-digit
//! IMEI must pass the Luhn check; an ICCID (the SIM card's number, ITU-T E.118) is 18–20
//! digits starting with 89. Recognition uses the column a value is compared with when
//! known ([`IdKind::from_column`]) and the value's shape otherwise ([`classify`]).

use std::fmt;

/// What kind of subscriber identifier a value is.
#[derive(
    serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
pub enum IdKind {
    /// MSISDN (phone number).
    Msisdn,
    /// IMSI.
    Imsi,
    /// IMEI.
    Imei,
    /// ICCID (SIM card serial number).
    Iccid,
}

impl IdKind {
    /// Name as reports write it (`msisdn`, `imsi`, `imei`).
    pub fn as_str(self) -> &'static str {
        match self {
            IdKind::Msisdn => "msisdn",
            IdKind::Imsi => "imsi",
            IdKind::Imei => "imei",
            IdKind::Iccid => "iccid",
        }
    }

    /// The identifier kind a column name suggests (`msisdn`, `calling_number`, `a_party`,
    /// `imsi`, `imei`, …), if any.
    pub fn from_column(column: &str) -> Option<IdKind> {
        let c = column.to_ascii_lowercase();
        let c = c
            .rsplit('.')
            .next()
            .unwrap_or(&c)
            .trim_matches('"')
            .trim_matches('`');
        if c.contains("imsi") {
            return Some(IdKind::Imsi);
        }
        if c.contains("imei") {
            return Some(IdKind::Imei);
        }
        if c.contains("iccid") || c.contains("icc_id") || c.contains("sim_serial") {
            return Some(IdKind::Iccid);
        }
        const MSISDN: [&str; 20] = [
            "msisdn",
            "calling",
            "called",
            "a_number",
            "b_number",
            "anumber",
            "bnumber",
            "a_party",
            "b_party",
            "phone",
            "caller",
            "callee",
            "sender",
            "recipient",
            "receiver",
            "originator",
            "orig_number",
            "dest_number",
            "term_number",
            "mobile",
        ];
        MSISDN
            .iter()
            .any(|m| c.contains(m))
            .then_some(IdKind::Msisdn)
    }
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A normalised subscriber identifier.
#[derive(
    serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
pub struct SubscriberId {
    /// What kind of identifier.
    pub kind: IdKind,
    /// Digits only.
    pub value: Digits,
}

/// The digits of an identifier (at most 20: an ICCID's), held inline: millions of them are
/// keys of the access state, so they are compared, hashed and copied without the heap.
/// Unused places are zero, so the byte order is the order of the digit strings. Compared and
/// hashed as two big-endian words (one 128-bit, one 32-bit) rather than byte by byte: the
/// access state sorts and hashes millions of them.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy)]
pub struct Digits([u8; Digits::MAX]);

impl Digits {
    fn words(&self) -> (u128, u32) {
        let (hi, lo) = self.0.split_at(16);
        (
            u128::from_be_bytes(hi.try_into().expect("16 bytes")),
            u32::from_be_bytes(lo.try_into().expect("4 bytes")),
        )
    }

    /// The longest identifier (ICCID, ITU-T E.118).
    pub const MAX: usize = 20;

    /// `None` unless `s` is 1 to [`Digits::MAX`] ASCII digits.
    pub fn new(s: &str) -> Option<Digits> {
        let b = s.as_bytes();
        if b.is_empty() || b.len() > Self::MAX || !b.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let mut d = [0u8; Self::MAX];
        d[..b.len()].copy_from_slice(b);
        Some(Digits(d))
    }

    /// The digits as text.
    pub fn as_str(&self) -> &str {
        let n = self.0.iter().position(|b| *b == 0).unwrap_or(Self::MAX);
        std::str::from_utf8(&self.0[..n]).unwrap_or_default()
    }
}

impl std::ops::Deref for Digits {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Digits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Digits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq for Digits {
    fn eq(&self, o: &Self) -> bool {
        self.words() == o.words()
    }
}

impl Eq for Digits {}

impl Ord for Digits {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.words().cmp(&o.words())
    }
}

impl PartialOrd for Digits {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

impl std::hash::Hash for Digits {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let (a, b) = self.words();
        h.write_u128(a);
        h.write_u32(b);
    }
}

impl PartialEq<str> for Digits {
    fn eq(&self, o: &str) -> bool {
        self.as_str() == o
    }
}

impl PartialEq<&str> for Digits {
    fn eq(&self, o: &&str) -> bool {
        self.as_str() == *o
    }
}

/// Numbering settings: the country calling code that national MSISDNs get.
#[derive(Debug, Clone, Default)]
pub struct Numbering {
    /// e.g. `"33"`; `None`: national numbers (leading `0`) are kept as written, without it.
    pub country_code: Option<String>,
}

/// The digits of an identifier as written, in `buf`: spaces, dashes, dots and brackets
/// dropped, and a leading `+`. `None` unless only digits are left, at most as many as `buf`
/// holds (more than any identifier has). Written without allocating: a statement may name
/// a million identifiers.
fn digits<'b>(s: &str, buf: &'b mut [u8; 24]) -> Option<&'b str> {
    let mut n = 0;
    for b in s.trim().bytes() {
        if matches!(b, b' ' | b'-' | b'.' | b'(' | b')') {
            continue;
        }
        *buf.get_mut(n)? = b;
        n += 1;
    }
    let d = &buf[..n];
    let d = d.strip_prefix(b"+").unwrap_or(d);
    if d.is_empty() || !d.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(d).ok()
}

/// The Luhn check digit test (IMEI).
pub fn luhn_ok(d: &str) -> bool {
    let mut sum = 0u32;
    for (i, b) in d.bytes().rev().enumerate() {
        let mut v = (b - b'0') as u32;
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// Normalises `value` as an identifier of `kind`; `None` when it cannot be one.
pub fn normalise(kind: IdKind, value: &str, numbering: &Numbering) -> Option<SubscriberId> {
    let mut buf = [0u8; 24];
    let d = digits(value, &mut buf)?;
    let mut national = [0u8; Digits::MAX];
    let value = match kind {
        IdKind::Imsi => (d.len() == 15).then_some(d)?,
        IdKind::Imei => {
            let ok = match d.len() {
                15 => luhn_ok(d),
                14 | 16 => true,
                _ => false,
            };
            ok.then_some(d)?
        }
        IdKind::Iccid => ((18..=20).contains(&d.len()) && d.starts_with("89")).then_some(d)?,
        IdKind::Msisdn => {
            let intl = if let Some(rest) = d.strip_prefix("00") {
                rest
            } else if let Some(rest) = d.strip_prefix('0') {
                match &numbering.country_code {
                    Some(cc) => {
                        // Longer than an identifier: no subscriber.
                        let n = cc.len() + rest.len();
                        let out = national.get_mut(..n)?;
                        out[..cc.len()].copy_from_slice(cc.as_bytes());
                        out[cc.len()..].copy_from_slice(rest.as_bytes());
                        std::str::from_utf8(out).ok()?
                    }
                    None => rest,
                }
            } else {
                d
            };
            // E.164: at most 15 digits; shorter than 7 is a service number, not a subscriber.
            (7..=15).contains(&intl.len()).then_some(intl)?
        }
    };
    Some(SubscriberId {
        kind,
        value: Digits::new(value)?,
    })
}

/// Recognises an identifier from a value alone (no column known): 15 digits passing Luhn is
/// an IMEI, other 15-digit values are IMSIs, `+`/`00`-prefixed numbers of 7–15 digits are
/// MSISDNs. Anything else is not classified (too ambiguous).
pub fn classify(value: &str, numbering: &Numbering) -> Option<SubscriberId> {
    let t = value.trim();
    let mut buf = [0u8; 24];
    let d = digits(t, &mut buf)?;
    if t.starts_with('+') || d.starts_with("00") {
        return normalise(IdKind::Msisdn, t, numbering);
    }
    if d.len() == 15 {
        if luhn_ok(d) {
            return normalise(IdKind::Imei, d, numbering);
        }
        return normalise(IdKind::Imsi, d, numbering);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fr() -> Numbering {
        Numbering {
            country_code: Some("33".into()),
        }
    }

    /// The identifiers read without allocating are those the allocating reading gave.
    #[test]
    fn normalising_in_place_reads_as_the_text_did() {
        fn digits_by_text(s: &str) -> Option<String> {
            let d: String = s
                .trim()
                .chars()
                .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
                .collect();
            let d = d.strip_prefix('+').unwrap_or(&d);
            (!d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())).then(|| d.to_owned())
        }
        fn by_text(kind: IdKind, value: &str, cc: Option<&str>) -> Option<String> {
            let d = digits_by_text(value)?;
            let v = match kind {
                IdKind::Imsi => (d.len() == 15).then_some(d)?,
                IdKind::Imei => (match d.len() {
                    15 => luhn_ok(&d),
                    14 | 16 => true,
                    _ => false,
                })
                .then_some(d)?,
                IdKind::Iccid => {
                    ((18..=20).contains(&d.len()) && d.starts_with("89")).then_some(d)?
                }
                IdKind::Msisdn => {
                    let intl = if let Some(rest) = d.strip_prefix("00") {
                        rest.to_owned()
                    } else if let Some(rest) = d.strip_prefix('0') {
                        format!("{}{rest}", cc.unwrap_or(""))
                    } else {
                        d
                    };
                    (7..=15).contains(&intl.len()).then_some(intl)?
                }
            };
            Digits::new(&v).map(|d| d.as_str().to_owned())
        }
        let values = [
            "",
            "+",
            "++33612345678",
            " +33 6 12-34.56(78) ",
            "0612345678",
            "0033612345678",
            "33612345678",
            "612345",
            "06 12",
            "\u{663}\u{663}612345678",
            "3361234567\u{e9}",
            "208151832663724",
            "35693803564380",
            "356938035643809",
            "3569380356438091",
            "8933012345678901234",
            "89330123456789012345",
            "893301234567890123456",
            "000000000000000000000000000033612345678",
            "0123456789012345678901234",
            "(0)6.12.34.56.78",
            "1234567",
            "0 0 3 3 6 1 2 3 4 5 6 7 8",
        ];
        let kinds = [IdKind::Msisdn, IdKind::Imsi, IdKind::Imei, IdKind::Iccid];
        for cc in [
            None,
            Some("33"),
            Some("1"),
            Some("x1"),
            Some("123456789012345678901"),
        ] {
            let n = Numbering {
                country_code: cc.map(str::to_owned),
            };
            for v in values {
                for k in kinds {
                    let got = normalise(k, v, &n).map(|s| s.value.as_str().to_owned());
                    assert_eq!(got, by_text(k, v, cc), "{k:?} {v:?} cc {cc:?}");
                }
            }
        }
    }

    #[test]
    fn digits_order_as_their_text() {
        let texts = [
            "1",
            "123",
            "1230",
            "124",
            "33612345678",
            "3361234567800000000",
            "33612345678000000001",
            "89330123456789012345",
            "9",
        ];
        for a in texts {
            for b in texts {
                let (x, y) = (Digits::new(a).unwrap(), Digits::new(b).unwrap());
                assert_eq!(x.cmp(&y), a.cmp(b), "{a} vs {b}");
                assert_eq!(x == y, a == b);
            }
        }
    }

    #[test]
    fn msisdn_forms_normalise_to_international_digits() {
        for v in [
            "+33 6 12 34 56 78",
            "0033612345678",
            "06-12-34-56-78",
            "33612345678",
        ] {
            assert_eq!(
                normalise(IdKind::Msisdn, v, &fr()).unwrap().value,
                "33612345678",
                "{v}"
            );
        }
        assert!(normalise(IdKind::Msisdn, "112", &fr()).is_none());
        assert!(normalise(IdKind::Msisdn, "1234567890123456", &fr()).is_none());
        assert!(normalise(IdKind::Msisdn, "06x12", &fr()).is_none());
    }

    #[test]
    fn imsi_and_imei() {
        assert_eq!(
            normalise(IdKind::Imsi, "208 01 1234567890", &fr())
                .unwrap()
                .value,
            "208011234567890"
        );
        assert!(normalise(IdKind::Imsi, "20801123456789", &fr()).is_none());
        // 49-015420-323751-8 is a valid IMEI (Luhn).
        assert!(luhn_ok("490154203237518"));
        assert!(normalise(IdKind::Imei, "49-015420-323751-8", &fr()).is_some());
        assert!(normalise(IdKind::Imei, "490154203237519", &fr()).is_none());
        assert!(
            normalise(IdKind::Imei, "49015420323751", &fr()).is_some(),
            "14 digits, no check digit"
        );
    }

    #[test]
    fn shapes_and_columns() {
        assert_eq!(
            classify("490154203237518", &fr()).unwrap().kind,
            IdKind::Imei
        );
        assert_eq!(
            classify("208011234567890", &fr()).unwrap().kind,
            IdKind::Imsi
        );
        assert_eq!(
            classify("+447700900123", &fr()).unwrap().kind,
            IdKind::Msisdn
        );
        assert!(classify("12345", &fr()).is_none());
        assert!(
            classify("0612345678", &fr()).is_none(),
            "national number without context"
        );
        assert_eq!(
            IdKind::from_column("cdr.calling_number"),
            Some(IdKind::Msisdn)
        );
        assert_eq!(IdKind::from_column("A_PARTY"), Some(IdKind::Msisdn));
        assert_eq!(IdKind::from_column("\"served_imsi\""), Some(IdKind::Imsi));
        assert_eq!(IdKind::from_column("imeisv"), Some(IdKind::Imei));
        assert_eq!(IdKind::from_column("duration"), None);
    }
}
