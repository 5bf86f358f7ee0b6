//! ASN.1 BER as TCAP and MAP use it: tag-length-value items walked in place. Only what the
//! decoders need: definite and indefinite lengths, constructed items read as a sequence of
//! children, multi-octet tags. Nothing is copied; a malformed item ends the walk with `None`.

/// One BER item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The identifier octet (class, constructed bit and tag number below 31).
    pub id: u8,
    /// The tag number (equal to `id & 0x1f` below 31).
    pub tag: u32,
    /// The content octets (for indefinite lengths, without the end-of-contents octets).
    pub value: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// Whether the item is constructed.
    pub fn constructed(&self) -> bool {
        self.id & 0x20 != 0
    }
    /// The class bits (`0x00` universal, `0x40` application, `0x80` context, `0xc0` private).
    pub fn class(&self) -> u8 {
        self.id & 0xc0
    }
    /// The children of a constructed item.
    pub fn children(&self) -> Items<'a> {
        Items(self.value)
    }
    /// The first child with this identifier octet.
    pub fn child(&self, id: u8) -> Option<Tlv<'a>> {
        self.children().find(|c| c.id == id)
    }
    /// The content as an unsigned integer (at most 8 octets).
    pub fn uint(&self) -> Option<u64> {
        if self.value.is_empty() || self.value.len() > 8 {
            return None;
        }
        Some(self.value.iter().fold(0u64, |a, b| (a << 8) | *b as u64))
    }
    /// The content as a signed INTEGER (at most 8 octets).
    pub fn int(&self) -> Option<i64> {
        let v = self.value;
        if v.is_empty() || v.len() > 8 {
            return None;
        }
        let neg = v[0] & 0x80 != 0;
        let init: i64 = if neg { -1 } else { 0 };
        Some(v.iter().fold(init, |a, b| (a << 8) | *b as i64))
    }
    /// The content as an OBJECT IDENTIFIER in dotted form.
    pub fn oid(&self) -> Option<String> {
        let v = self.value;
        let (&first, rest) = v.split_first()?;
        let mut arcs: Vec<u64> = vec![(first / 40).min(2) as u64];
        arcs.push(first as u64 - arcs[0] * 40);
        let mut acc: u64 = 0;
        for &b in rest {
            acc = acc.checked_mul(128)? | (b & 0x7f) as u64;
            if b & 0x80 == 0 {
                arcs.push(acc);
                acc = 0;
            }
        }
        Some(
            arcs.iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join("."),
        )
    }
}

/// The items one after another in a byte string.
#[derive(Debug, Clone)]
pub struct Items<'a>(pub &'a [u8]);

impl<'a> Iterator for Items<'a> {
    type Item = Tlv<'a>;
    fn next(&mut self) -> Option<Tlv<'a>> {
        let (t, rest) = read(self.0)?;
        self.0 = rest;
        Some(t)
    }
}

/// Reads one item; returns it and the bytes after it. `None` when the item is cut off or
/// malformed (and at end-of-contents octets).
pub fn read(b: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let id = *b.first()?;
    if id == 0 && b.get(1) == Some(&0) {
        return None;
    }
    let mut i = 1;
    let mut tag = (id & 0x1f) as u32;
    if tag == 0x1f {
        tag = 0;
        loop {
            let x = *b.get(i)?;
            i += 1;
            tag = tag.checked_mul(128)? | (x & 0x7f) as u32;
            if x & 0x80 == 0 {
                break;
            }
            if i > 5 {
                return None;
            }
        }
    }
    let l0 = *b.get(i)?;
    i += 1;
    if l0 == 0x80 {
        // Indefinite length (constructed only): the content ends at the matching
        // end-of-contents octets.
        if id & 0x20 == 0 {
            return None;
        }
        let start = i;
        let mut rest = &b[i..];
        loop {
            if rest.len() >= 2 && rest[0] == 0 && rest[1] == 0 {
                let end = b.len() - rest.len();
                return Some((
                    Tlv {
                        id,
                        tag,
                        value: &b[start..end],
                    },
                    &rest[2..],
                ));
            }
            let (_, r) = read(rest)?;
            rest = r;
        }
    }
    let len = if l0 & 0x80 == 0 {
        l0 as usize
    } else {
        let n = (l0 & 0x7f) as usize;
        if n > 4 {
            return None;
        }
        let mut l = 0usize;
        for _ in 0..n {
            l = (l << 8) | *b.get(i)? as usize;
            i += 1;
        }
        l
    };
    let end = i.checked_add(len)?;
    let value = b.get(i..end)?;
    Some((Tlv { id, tag, value }, &b[end..]))
}

/// Writes one item (definite length) with a one-octet identifier.
pub fn tlv(id: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![id];
    let n = value.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend([0x81, n as u8]);
    } else {
        out.extend([0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(value);
    out
}

/// An OBJECT IDENTIFIER's content octets from its arcs.
pub fn oid_bytes(arcs: &[u64]) -> Vec<u8> {
    let mut out = vec![(arcs[0] * 40 + arcs[1]) as u8];
    for &a in &arcs[2..] {
        let mut chunk = vec![(a & 0x7f) as u8];
        let mut x = a >> 7;
        while x > 0 {
            chunk.push(0x80 | (x & 0x7f) as u8);
            x >>= 7;
        }
        chunk.reverse();
        out.extend(chunk);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definite_indefinite_and_long_forms() {
        let inner = tlv(0x04, &[1, 2, 3]);
        let outer = tlv(0x30, &inner);
        let (t, rest) = read(&outer).unwrap();
        assert!(rest.is_empty() && t.constructed());
        assert_eq!(t.child(0x04).unwrap().value, &[1, 2, 3]);
        // Indefinite: 30 80 <inner> 00 00.
        let mut ind = vec![0x30, 0x80];
        ind.extend(&inner);
        ind.extend([0, 0, 0x05, 0x00]);
        let (t, rest) = read(&ind).unwrap();
        assert_eq!(t.value, &inner[..]);
        assert_eq!(rest, &[0x05, 0x00]);
        let long = tlv(0x04, &[7; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(read(&long).unwrap().0.value.len(), 300);
        // Cut off.
        assert!(read(&long[..100]).is_none());
        assert!(read(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_none());
    }

    #[test]
    fn integers_and_oids() {
        assert_eq!(read(&[0x02, 0x01, 0xff]).unwrap().0.int(), Some(-1));
        assert_eq!(read(&[0x02, 0x02, 0x01, 0x00]).unwrap().0.uint(), Some(256));
        let oid = tlv(0x06, &oid_bytes(&[0, 4, 0, 0, 1, 0, 29, 3]));
        assert_eq!(
            read(&oid).unwrap().0.oid().as_deref(),
            Some("0.4.0.0.1.0.29.3")
        );
        let big = tlv(0x06, &oid_bytes(&[1, 2, 840, 113549]));
        assert_eq!(
            read(&big).unwrap().0.oid().as_deref(),
            Some("1.2.840.113549")
        );
    }
}
