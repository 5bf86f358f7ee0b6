//! Decoding speed of a pcap capture (Ethernet link layer) given as the first argument, beside
//! the raw read of the same capture's records: packets and MB per second of each, messages per
//! second of the decoder, and the ratio. `bash bench/signalling.sh` writes the capture and runs
//! this with the end-to-end figures.

use std::time::Instant;

use cellwarden_signal::{Decoder, Sink};
use serde_json::{Map, Value};

struct Count {
    messages: u64,
    problems: u64,
}

impl Sink for Count {
    fn message(&mut self, _: u64, m: Map<String, Value>) {
        self.messages += 1;
        std::hint::black_box(m);
    }
    fn problem(&mut self, _: u64, _: String) {
        self.problems += 1;
    }
}

/// The records of a little-endian pcap: (time µs, frame).
fn records(b: &[u8]) -> Vec<(i64, &[u8])> {
    let mut out = Vec::new();
    let mut i = 24;
    while i + 16 <= b.len() {
        let u = |o: usize| u32::from_le_bytes(b[i + o..i + o + 4].try_into().unwrap());
        let len = u(8) as usize;
        let t = u(0) as i64 * 1_000_000 + u(4) as i64;
        if i + 16 + len > b.len() {
            break;
        }
        out.push((t, &b[i + 16..i + 16 + len]));
        i += 16 + len;
    }
    out
}

fn best<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::MAX;
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let r = f();
        best = best.min(t.elapsed().as_secs_f64());
        last = Some(r);
    }
    (best, last.unwrap())
}

fn main() {
    let Some(path) = std::env::args().skip(1).find(|a| !a.starts_with("--")) else {
        eprintln!("decode bench: give a pcap file (bash bench/signalling.sh does)");
        return;
    };
    let bytes = std::fs::read(&path).expect("reading the capture");
    let mb = bytes.len() as f64 / 1e6;
    let (raw_s, n) = best(5, || {
        // The raw read: every record framed and its bytes touched.
        let recs = records(&bytes);
        let sum: u64 = recs
            .iter()
            .map(|(_, f)| f.iter().map(|&x| x as u64).sum::<u64>())
            .sum();
        std::hint::black_box(sum);
        recs.len()
    });
    let recs = records(&bytes);
    let (dec_s, count) = best(5, || {
        let mut d = Decoder::new();
        let mut c = Count {
            messages: 0,
            problems: 0,
        };
        for (k, (t, f)) in recs.iter().enumerate() {
            d.packet(k as u64 + 1, *t, &f[14..], &mut c);
        }
        c
    });
    println!(
        "capture: {mb:.1} MB, {n} packets, {} messages, {} problems",
        count.messages, count.problems
    );
    println!(
        "  raw read        {:>10.0} packets/s {:>8.1} MB/s",
        n as f64 / raw_s,
        mb / raw_s
    );
    println!(
        "  decoded         {:>10.0} packets/s {:>8.1} MB/s {:>10.0} messages/s  ({:.2} of the raw read)",
        n as f64 / dec_s,
        mb / dec_s,
        count.messages as f64 / dec_s,
        raw_s / dec_s
    );
}
