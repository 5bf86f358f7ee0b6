//! TCP streams of Diameter connections put back in order so that messages split over
//! segments, or several in one segment, are read whole. A segment seen again is skipped; a
//! gap (a segment missing from the capture) drops what was waiting and reading picks up at
//! the next plausible Diameter header.
//!
//! Memory is bounded: at most [`MAX_STREAMS`] streams (per direction) are followed, each
//! holding at most one message of [`crate::diameter::MAX_MESSAGE_BYTES`].

use std::collections::HashMap;
use std::net::IpAddr;

use crate::diameter::header_len;
use crate::{Packet, Sink, be32};

/// Streams followed at once; beyond, the least recently used one is forgotten.
pub const MAX_STREAMS: usize = 10_000;

type Key = (IpAddr, IpAddr, u16, u16);

#[derive(Debug, Default)]
struct Stream {
    next: Option<u32>,
    buf: Vec<u8>,
    used: u64,
    /// Reading lost its place: skip to the next plausible header.
    lost: bool,
}

/// The Diameter streams followed.
#[derive(Debug, Default)]
pub struct Streams {
    streams: HashMap<Key, Stream>,
    clock: u64,
}

impl Streams {
    /// The whole Diameter messages completed by one TCP segment.
    pub fn segment(&mut self, pk: &Packet, b: &[u8], out: &mut dyn Sink) -> Vec<Vec<u8>> {
        let mut msgs = Vec::new();
        let (Some(seq), Some(&off), Some(&flags)) = (be32(b, 4), b.get(12), b.get(13)) else {
            out.problem(pk.number, "TCP header cut off".into());
            return msgs;
        };
        let hl = (off >> 4) as usize * 4;
        let Some(payload) = b.get(hl..) else {
            out.problem(pk.number, "TCP header longer than the segment".into());
            return msgs;
        };
        let key = (pk.src, pk.dst, pk.sport, pk.dport);
        if flags & 0x05 != 0 && payload.is_empty() {
            // FIN or RST: the stream ends.
            self.streams.remove(&key);
            return msgs;
        }
        if payload.is_empty() {
            return msgs;
        }
        if !self.streams.contains_key(&key)
            && self.streams.len() >= MAX_STREAMS
            && let Some(k) = self
                .streams
                .iter()
                .min_by_key(|(_, s)| s.used)
                .map(|(k, _)| *k)
        {
            self.streams.remove(&k);
        }
        self.clock += 1;
        let s = self.streams.entry(key).or_default();
        s.used = self.clock;
        let len = payload.len() as u32;
        let data: &[u8] = match s.next {
            None => {
                // First segment seen of this stream: it may start inside a message.
                s.lost = !s.buf.is_empty() || header_len(payload).is_none();
                payload
            }
            Some(n) if seq == n => payload,
            Some(n) => {
                let ahead = seq.wrapping_sub(n);
                let end = seq.wrapping_add(len);
                if ahead > u32::MAX / 2 {
                    // Starts before what was read: a retransmission, perhaps with new bytes.
                    let new = end.wrapping_sub(n);
                    if new == 0 || new > u32::MAX / 2 {
                        return msgs;
                    }
                    &payload[(len - new) as usize..]
                } else {
                    out.problem(
                        pk.number,
                        format!("TCP stream missing {ahead} bytes before this segment: reading resumes at the next Diameter header"),
                    );
                    s.buf.clear();
                    s.lost = true;
                    payload
                }
            }
        };
        s.next = Some(seq.wrapping_add(len));
        s.buf.extend_from_slice(data);
        if s.lost {
            match (0..s.buf.len().saturating_sub(19)).find(|&i| header_len(&s.buf[i..]).is_some()) {
                Some(i) => {
                    s.buf.drain(..i);
                    s.lost = false;
                }
                None => {
                    let keep = s.buf.len().min(19);
                    s.buf.drain(..s.buf.len() - keep);
                    return msgs;
                }
            }
        }
        loop {
            if s.buf.len() < 20 {
                break;
            }
            let Some(len) = header_len(&s.buf) else {
                out.problem(
                    pk.number,
                    "TCP stream is not Diameter here: reading resumes at the next Diameter header"
                        .into(),
                );
                s.buf.drain(..1);
                s.lost = true;
                break;
            };
            if s.buf.len() < len {
                break;
            }
            msgs.push(s.buf.drain(..len).collect());
        }
        msgs
    }
}
