//! SCTP: the DATA chunks of a packet (several per packet), fragmented user messages put back
//! together (consecutive TSNs from the chunk flagged B to the one flagged E), and chunks seen
//! again (retransmissions) skipped.
//!
//! Memory is bounded: at most [`MAX_FRAGMENT_BYTES`] of fragments wait for the rest of their
//! message (beyond it the oldest waiting ones are dropped and reported), and the last
//! [`RECENT_TSNS`] TSNs are remembered per association and direction, for at most
//! [`MAX_ASSOCIATIONS`] of them.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;

use crate::{Counts, Packet, Sink, be16, be32};

/// Bytes of fragments held waiting for the rest of their message.
pub const MAX_FRAGMENT_BYTES: usize = 16 << 20;
/// TSNs remembered per association and direction to recognise retransmissions.
pub const RECENT_TSNS: usize = 256;
/// Associations (per direction) tracked at once.
pub const MAX_ASSOCIATIONS: usize = 65_536;

type Assoc = (IpAddr, IpAddr, u16, u16, u32);

#[derive(Debug)]
struct Fragment {
    flags: u8,
    ppid: u32,
    data: Vec<u8>,
    /// Arrival order, to drop the oldest first.
    seq: u64,
}

#[derive(Debug, Default)]
struct Direction {
    recent: VecDeque<u32>,
    fragments: BTreeMap<u32, Fragment>,
}

/// Reassembly state of the associations seen.
#[derive(Debug, Default)]
pub struct Reassembly {
    dirs: HashMap<Assoc, Direction>,
    fragment_bytes: usize,
    seq: u64,
}

const B: u8 = 0x02;
const E: u8 = 0x01;

impl Reassembly {
    /// The whole user messages (payload protocol id, bytes) of one SCTP packet.
    pub fn packet(
        &mut self,
        pk: &Packet,
        b: &[u8],
        counts: &mut Counts,
        out: &mut dyn Sink,
    ) -> Vec<(u32, Vec<u8>)> {
        let mut msgs = Vec::new();
        let Some(vtag) = be32(b, 4) else {
            out.problem(pk.number, "SCTP header cut off".into());
            return msgs;
        };
        let key = (pk.src, pk.dst, pk.sport, pk.dport, vtag);
        let mut off = 12;
        while off + 4 <= b.len() {
            let ty = b[off];
            let flags = b[off + 1];
            let len = be16(b, off + 2).unwrap_or(0) as usize;
            if len < 4 || off + len > b.len() {
                out.problem(
                    pk.number,
                    format!("SCTP chunk of type {ty} at byte {off} has a bad length {len}"),
                );
                break;
            }
            if ty == 0 {
                if len < 16 {
                    out.problem(pk.number, "SCTP DATA chunk shorter than its header".into());
                } else {
                    let tsn = be32(b, off + 4).unwrap_or(0);
                    let ppid = be32(b, off + 12).unwrap_or(0);
                    let data = &b[off + 16..off + len];
                    self.data(key, tsn, flags, ppid, data, counts, pk, out, &mut msgs);
                }
            }
            off += len.div_ceil(4) * 4;
        }
        msgs
    }

    #[allow(clippy::too_many_arguments)]
    fn data(
        &mut self,
        key: Assoc,
        tsn: u32,
        flags: u8,
        ppid: u32,
        data: &[u8],
        counts: &mut Counts,
        pk: &Packet,
        out: &mut dyn Sink,
        msgs: &mut Vec<(u32, Vec<u8>)>,
    ) {
        if !self.dirs.contains_key(&key) && self.dirs.len() >= MAX_ASSOCIATIONS {
            self.dirs.clear();
            self.fragment_bytes = 0;
            out.problem(
                pk.number,
                format!("more than {MAX_ASSOCIATIONS} SCTP associations: their state was reset"),
            );
        }
        let dir = self.dirs.entry(key).or_default();
        if dir.recent.contains(&tsn) {
            counts.retransmitted += 1;
            return;
        }
        if dir.recent.len() == RECENT_TSNS {
            dir.recent.pop_front();
        }
        dir.recent.push_back(tsn);
        if flags & (B | E) == B | E {
            msgs.push((ppid, data.to_vec()));
            return;
        }
        self.seq += 1;
        self.fragment_bytes += data.len();
        dir.fragments.insert(
            tsn,
            Fragment {
                flags,
                ppid,
                data: data.to_vec(),
                seq: self.seq,
            },
        );
        // The message this fragment belongs to: back to its B, on to its E.
        let mut first = tsn;
        while dir.fragments.get(&first).is_some_and(|f| f.flags & B == 0) {
            first = first.wrapping_sub(1);
        }
        let mut last = tsn;
        while dir.fragments.get(&last).is_some_and(|f| f.flags & E == 0) {
            last = last.wrapping_add(1);
        }
        let complete = dir.fragments.contains_key(&first) && dir.fragments.contains_key(&last);
        if complete {
            let mut whole = Vec::new();
            let mut t = first;
            let mut ppid = 0;
            loop {
                if let Some(f) = dir.fragments.remove(&t) {
                    self.fragment_bytes -= f.data.len();
                    ppid = f.ppid;
                    whole.extend_from_slice(&f.data);
                }
                if t == last {
                    break;
                }
                t = t.wrapping_add(1);
            }
            msgs.push((ppid, whole));
        }
        while self.fragment_bytes > MAX_FRAGMENT_BYTES {
            self.drop_oldest(pk, out);
        }
    }

    fn drop_oldest(&mut self, pk: &Packet, out: &mut dyn Sink) {
        let oldest = self
            .dirs
            .iter()
            .flat_map(|(k, d)| d.fragments.iter().map(move |(t, f)| (f.seq, *k, *t)))
            .min();
        let Some((_, k, t)) = oldest else {
            self.fragment_bytes = 0;
            return;
        };
        if let Some(f) = self.dirs.get_mut(&k).and_then(|d| d.fragments.remove(&t)) {
            self.fragment_bytes -= f.data.len();
        }
        out.problem(
            pk.number,
            format!(
                "SCTP fragments waiting for the rest of their message passed {MAX_FRAGMENT_BYTES} bytes: the oldest (TSN {t}) was dropped"
            ),
        );
    }

    /// Bytes of fragments waiting for the rest of their message.
    pub fn waiting_bytes(&self) -> usize {
        self.fragment_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Collected;
    use crate::encode::sctp_packet;

    fn pk() -> Packet {
        Packet {
            number: 1,
            time_us: 0,
            src: "10.0.0.1".parse().unwrap(),
            dst: "10.0.0.2".parse().unwrap(),
            sport: 2905,
            dport: 2905,
            transport: "sctp",
        }
    }

    #[test]
    fn several_chunks_fragments_and_retransmissions() {
        let mut r = Reassembly::default();
        let mut c = Counts::default();
        let mut out = Collected::default();
        // Two whole messages in one packet.
        let p = sctp_packet(
            2905,
            2905,
            7,
            &[(10, 1, 0x03, 3, b"one"), (11, 2, 0x03, 3, b"two")],
        );
        let m = r.packet(&pk(), &p, &mut c, &mut out);
        assert_eq!(m, vec![(3, b"one".to_vec()), (3, b"two".to_vec())]);
        // The same again: retransmitted.
        assert!(r.packet(&pk(), &p, &mut c, &mut out).is_empty());
        assert_eq!(c.retransmitted, 2);
        // A message in three fragments, the middle one last.
        let f1 = sctp_packet(2905, 2905, 7, &[(20, 3, B, 3, b"ab")]);
        let f2 = sctp_packet(2905, 2905, 7, &[(21, 3, 0, 3, b"cd")]);
        let f3 = sctp_packet(2905, 2905, 7, &[(22, 3, E, 3, b"ef")]);
        assert!(r.packet(&pk(), &f1, &mut c, &mut out).is_empty());
        assert!(r.packet(&pk(), &f3, &mut c, &mut out).is_empty());
        assert_eq!(r.waiting_bytes(), 4);
        let m = r.packet(&pk(), &f2, &mut c, &mut out);
        assert_eq!(m, vec![(3, b"abcdef".to_vec())]);
        assert_eq!(r.waiting_bytes(), 0);
        assert!(out.problems.is_empty());
        // A bad chunk length is reported, not followed.
        let mut bad = sctp_packet(2905, 2905, 7, &[(30, 4, 0x03, 3, b"x")]);
        bad[14] = 0xff;
        assert!(r.packet(&pk(), &bad, &mut c, &mut out).is_empty());
        assert_eq!(out.problems.len(), 1);
    }
}
