//! Packet captures (pcap, pcapng): NetFlow v5, v9 and IPFIX export packets, and the
//! signalling messages `cellwarden-signal` decodes (SIGTRAN/MAP, Diameter, GTP-C).
//!
//! Packets are read in order (Ethernet with VLAN tags, Linux cooked, raw IP, BSD loopback;
//! IPv4/IPv6; UDP); a UDP payload that is a NetFlow v5/v9 or IPFIX message becomes one event
//! per flow record. Templates (v9 and IPFIX) are kept per exporter address, source id /
//! observation domain and template id; data records that arrive before their template are
//! counted and reported, not silently lost. Each flow is handed on as a JSON object with
//! `Channel: netflow` and the common flow names (`src_ip`, `dst_ip`, `src_port`, `dst_port`,
//! `proto`, `bytes_out`, `bytes_in`, `packets`, `duration`, `timestamp`, `exporter`, `version`).
//! Signalling messages are handed on the same way, one JSON object each (`Channel` `map`,
//! `diameter` or `gtpc`, the packet's time).

use std::collections::HashMap;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether bytes start a pcap or pcapng capture.
pub fn is_capture(head: &[u8]) -> bool {
    matches!(
        head.get(..4),
        Some([0xd4, 0xc3, 0xb2, 0xa1])
            | Some([0xa1, 0xb2, 0xc3, 0xd4])
            | Some([0x4d, 0x3c, 0xb2, 0xa1])
            | Some([0xa1, 0xb2, 0x3c, 0x4d])
            | Some([0x0a, 0x0d, 0x0d, 0x0a])
    )
}

/// A problem met while decoding, with the packet it concerns (1-based).
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The packet (1-based).
    pub packet: u64,
    /// What is wrong.
    pub message: String,
}

/// What a capture yielded.
#[derive(Debug, Default)]
pub struct Decoded {
    /// (packet number, flow as a JSON object)
    pub flows: Vec<(u64, String)>,
    /// Problems met.
    pub problems: Vec<Problem>,
    /// Packets read.
    pub packets: u64,
    /// Data records whose template had not been seen.
    pub before_template: u64,
}

type TemplateKey = (IpAddr, u32, u16);

/// The header facts of one v9/IPFIX message its sets need.
struct Msg {
    packet: u64,
    exporter: IpAddr,
    /// v9 source id or IPFIX observation domain.
    domain: u32,
    version: u16,
    /// Export time, for records without times of their own.
    now_ms: i64,
    /// Wall-clock time of the exporter's boot (v9 uptime-relative times).
    uptime_base: Option<i64>,
}

/// Most templates kept per capture; a capture that defines more (crafted, or thousands of
/// exporters) has the further ones refused with a problem, so memory stays bounded.
pub const MAX_TEMPLATES: usize = 10_000;

/// Longest pcap record or pcapng block read (NetFlow and IPFIX travel in UDP datagrams of at
/// most 64 KiB; jumbo frames and options stay far below). A longer one is taken for damage.
pub const MAX_RECORD_BYTES: usize = 256 * 1024;

/// What decoding produces, as it goes.
pub trait CaptureSink {
    /// One flow record (packet number, flow as a JSON object).
    fn flow(&mut self, packet: u64, json: String);
    /// A problem, with the packet it concerns (1-based; 0 for the capture header).
    fn problem(&mut self, packet: u64, message: String);
}

impl CaptureSink for Decoded {
    fn flow(&mut self, packet: u64, json: String) {
        self.flows.push((packet, json));
    }
    fn problem(&mut self, packet: u64, message: String) {
        self.problems.push(Problem { packet, message });
    }
}

/// Hands the signalling decoder's output to a [`CaptureSink`].
struct SignalOut<'a>(&'a mut dyn CaptureSink);

impl cellwarden_signal::Sink for SignalOut<'_> {
    fn message(&mut self, packet: u64, message: serde_json::Map<String, serde_json::Value>) {
        self.0
            .flow(packet, serde_json::Value::Object(message).to_string());
    }
    fn problem(&mut self, packet: u64, message: String) {
        self.0.problem(packet, message);
    }
}

/// Field (type or IE id, length) lists of the templates seen so far.
pub struct Decoder<'s> {
    templates: HashMap<TemplateKey, Vec<(u16, u16)>>,
    signal: cellwarden_signal::Decoder,
    sink: &'s mut dyn CaptureSink,
    /// Packets read.
    pub packets: u64,
    /// Data records whose template had not been seen.
    pub before_template: u64,
    refused_templates: u64,
}

fn be16(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(i..i + 2)?.try_into().ok()?))
}
fn be32(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?))
}
fn uint(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |a, x| (a << 8) | *x as u64)
}

fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "icmp6".into(),
        47 => "gre".into(),
        50 => "esp".into(),
        n => n.to_string(),
    }
}

#[derive(Default)]
struct FlowOut {
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    sport: Option<u16>,
    dport: Option<u16>,
    proto: Option<u8>,
    bytes: u64,
    bytes_in: u64,
    packets: u64,
    start_ms: Option<i64>,
    end_ms: Option<i64>,
}

impl FlowOut {
    fn json(&self, exporter: IpAddr, version: u16, fallback_ms: i64) -> Option<String> {
        let (src, dst) = (self.src?, self.dst?);
        let start = self.start_ms.unwrap_or(fallback_ms);
        let mut o = serde_json::Map::new();
        let ts = jiff::Timestamp::from_millisecond(start).ok()?;
        o.insert("timestamp".into(), ts.to_string().into());
        o.insert("src_ip".into(), src.to_string().into());
        o.insert("dst_ip".into(), dst.to_string().into());
        if let Some(p) = self.sport {
            o.insert("src_port".into(), p.into());
        }
        if let Some(p) = self.dport {
            o.insert("dst_port".into(), p.into());
        }
        if let Some(p) = self.proto {
            o.insert("proto".into(), proto_name(p).into());
        }
        o.insert("bytes_out".into(), self.bytes.into());
        o.insert("bytes_in".into(), self.bytes_in.into());
        o.insert("packets".into(), self.packets.into());
        if let Some(e) = self.end_ms {
            o.insert(
                "duration".into(),
                (((e - start).max(0)) as f64 / 1000.0).into(),
            );
        }
        o.insert("exporter".into(), exporter.to_string().into());
        o.insert("version".into(), version.into());
        o.insert("Channel".into(), "netflow".into());
        Some(serde_json::Value::Object(o).to_string())
    }

    /// Applies one template field (v9 field type = IPFIX IE id for these).
    fn field(&mut self, id: u16, v: &[u8], uptime_base_ms: Option<i64>) {
        match (id, v.len()) {
            (1, _) => self.bytes = uint(v),
            (23, _) => self.bytes_in = uint(v),
            (2, _) => self.packets += uint(v),
            (24, _) => self.packets += uint(v),
            (4, _) => self.proto = v.last().copied(),
            (7, _) => self.sport = Some(uint(v) as u16),
            (11, _) => self.dport = Some(uint(v) as u16),
            (8 | 12, 4) => {
                let a = IpAddr::V4(Ipv4Addr::new(v[0], v[1], v[2], v[3]));
                if id == 8 {
                    self.src = Some(a)
                } else {
                    self.dst = Some(a)
                }
            }
            (27 | 28, 16) => {
                let a = IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(v).unwrap_or([0; 16])));
                if id == 27 {
                    self.src = Some(a)
                } else {
                    self.dst = Some(a)
                }
            }
            (150, _) => self.start_ms = Some(uint(v) as i64 * 1000),
            (151, _) => self.end_ms = Some(uint(v) as i64 * 1000),
            (152, _) => self.start_ms = Some(uint(v) as i64),
            (153, _) => self.end_ms = Some(uint(v) as i64),
            (22, _) => self.start_ms = uptime_base_ms.map(|b| b + uint(v) as i64),
            (21, _) => self.end_ms = uptime_base_ms.map(|b| b + uint(v) as i64),
            _ => {}
        }
    }
}

impl Decoder<'_> {
    /// Decodes a whole capture held in memory.
    pub fn decode_capture(data: &[u8]) -> Decoded {
        let mut out = Decoded::default();
        let (packets, before) = {
            let mut d = Decoder::new(&mut out);
            d.read(data);
            (d.packets, d.before_template)
        };
        out.packets = packets;
        out.before_template = before;
        out
    }

    fn problem(&mut self, packet: u64, message: impl Into<String>) {
        self.sink.problem(packet, message.into());
    }

    /// Strips the link layer; decodes the signalling in the IP packet and NetFlow/IPFIX
    /// payloads of UDP.
    fn link(&mut self, n: u64, time_us: i64, link: u16, pkt: &[u8]) {
        self.packets += 1;
        let ip = match link {
            1 => {
                let mut off = 12;
                let mut et = be16(pkt, off).unwrap_or(0);
                while et == 0x8100 || et == 0x88a8 {
                    off += 4;
                    et = be16(pkt, off).unwrap_or(0);
                }
                if et != 0x0800 && et != 0x86dd {
                    return;
                }
                pkt.get(off + 2..)
            }
            113 => pkt.get(16..),
            276 => pkt.get(20..),
            0 => pkt.get(4..),
            101 | 12 | 14 | 228 | 229 => Some(pkt),
            _ => return,
        };
        let Some(p) = ip.and_then(cellwarden_signal::ip) else {
            return;
        };
        self.signal
            .packet_ip(n, time_us, &p, &mut SignalOut(&mut *self.sink));
        if p.proto != 17 || p.fragment {
            return;
        }
        let Some(payload) = p.payload.get(8..) else {
            return;
        };
        let src = p.src;
        match be16(payload, 0) {
            Some(5) => self.v5(n, src, payload),
            Some(9) => self.v9(n, src, payload),
            Some(10) => self.ipfix(n, src, payload),
            _ => {}
        }
    }

    fn v5(&mut self, n: u64, exporter: IpAddr, p: &[u8]) {
        let (Some(count), Some(uptime), Some(secs), Some(nsecs)) =
            (be16(p, 2), be32(p, 4), be32(p, 8), be32(p, 12))
        else {
            return self.problem(n, "NetFlow v5 header cut off");
        };
        let now_ms = secs as i64 * 1000 + nsecs as i64 / 1_000_000;
        let base = now_ms - uptime as i64;
        for k in 0..count as usize {
            let Some(r) = p.get(24 + k * 48..24 + (k + 1) * 48) else {
                return self.problem(n, format!("NetFlow v5 record {} of {count} cut off", k + 1));
            };
            let f = FlowOut {
                src: Some(IpAddr::V4(Ipv4Addr::new(r[0], r[1], r[2], r[3]))),
                dst: Some(IpAddr::V4(Ipv4Addr::new(r[4], r[5], r[6], r[7]))),
                packets: be32(r, 16).unwrap_or(0) as u64,
                bytes: be32(r, 20).unwrap_or(0) as u64,
                start_ms: be32(r, 24).map(|x| base + x as i64),
                end_ms: be32(r, 28).map(|x| base + x as i64),
                sport: be16(r, 32),
                dport: be16(r, 34),
                proto: Some(r[38]),
                ..Default::default()
            };
            if let Some(j) = f.json(exporter, 5, now_ms) {
                self.sink.flow(n, j);
            }
        }
    }

    /// Template and data sets of v9 (template set id 0, options 1) and IPFIX (2, 3).
    fn sets(&mut self, m: Msg, body: &[u8]) {
        let Msg {
            packet: n,
            exporter,
            domain,
            version,
            now_ms,
            uptime_base,
        } = m;
        let (tpl, opt) = if version == 9 { (0, 1) } else { (2, 3) };
        let mut i = 0;
        while i + 4 <= body.len() {
            let (id, len) = (
                be16(body, i).unwrap_or(0),
                be16(body, i + 2).unwrap_or(0) as usize,
            );
            if len < 4 || i + len > body.len() {
                return self.problem(
                    n,
                    format!("set of length {len} does not fit the message; rest skipped"),
                );
            }
            let set = &body[i + 4..i + len];
            if id == tpl {
                let mut j = 0;
                while j + 4 <= set.len() {
                    let (tid, count) = (be16(set, j).unwrap_or(0), be16(set, j + 2).unwrap_or(0));
                    if tid < 256 {
                        break; // padding
                    }
                    j += 4;
                    let mut fields = Vec::with_capacity(count as usize);
                    for _ in 0..count {
                        let (Some(ty), Some(fl)) = (be16(set, j), be16(set, j + 2)) else {
                            return self.problem(n, "template cut off");
                        };
                        j += 4;
                        if version == 10 && ty & 0x8000 != 0 {
                            j += 4; // enterprise number
                            fields.push((u16::MAX, fl));
                        } else {
                            fields.push((ty, fl));
                        }
                    }
                    let key = (exporter, domain, tid);
                    if self.templates.len() >= MAX_TEMPLATES && !self.templates.contains_key(&key) {
                        self.refused_templates += 1;
                        if self.refused_templates == 1 {
                            self.problem(
                                n,
                                format!(
                                    "more than {MAX_TEMPLATES} templates; later ones are not kept"
                                ),
                            );
                        }
                        continue;
                    }
                    self.templates.insert(key, fields);
                }
            } else if id == opt {
                // Options templates describe exporter metadata, not flows.
            } else if id >= 256 {
                let Some(fields) = self.templates.get(&(exporter, domain, id)).cloned() else {
                    self.before_template += 1;
                    self.problem(
                        n,
                        format!("data set for template {id} of exporter {exporter} (domain {domain}) before its template; skipped"),
                    );
                    i += len;
                    continue;
                };
                let min_len: usize = fields
                    .iter()
                    .map(|(_, l)| if *l == 65535 { 1 } else { *l as usize })
                    .sum();
                let mut j = 0;
                'records: while min_len > 0 && j + min_len <= set.len() {
                    let mut f = FlowOut::default();
                    for (ty, fl) in &fields {
                        let mut l = *fl as usize;
                        if *fl == 65535 {
                            // Variable length (IPFIX): 1 byte, or 255 then 2 bytes.
                            let first = set.get(j).copied().unwrap_or(0) as usize;
                            j += 1;
                            l = if first == 255 {
                                let x = be16(set, j).unwrap_or(0) as usize;
                                j += 2;
                                x
                            } else {
                                first
                            };
                        }
                        let Some(v) = set.get(j..j + l) else {
                            self.problem(n, format!("data record of template {id} cut off"));
                            break 'records;
                        };
                        f.field(*ty, v, uptime_base);
                        j += l;
                    }
                    if let Some(js) = f.json(exporter, version, now_ms) {
                        self.sink.flow(n, js);
                    }
                }
            }
            i += len;
        }
    }

    fn v9(&mut self, n: u64, exporter: IpAddr, p: &[u8]) {
        let (Some(uptime), Some(secs), Some(source)) = (be32(p, 4), be32(p, 8), be32(p, 16)) else {
            return self.problem(n, "NetFlow v9 header cut off");
        };
        let now_ms = secs as i64 * 1000;
        let m = Msg {
            packet: n,
            exporter,
            domain: source,
            version: 9,
            now_ms,
            uptime_base: Some(now_ms - uptime as i64),
        };
        self.sets(m, &p[20..]);
    }

    fn ipfix(&mut self, n: u64, exporter: IpAddr, p: &[u8]) {
        let (Some(len), Some(secs), Some(domain)) = (be16(p, 2), be32(p, 4), be32(p, 12)) else {
            return self.problem(n, "IPFIX header cut off");
        };
        let end = (len as usize).min(p.len());
        if end < 16 {
            return self.problem(n, "IPFIX message shorter than its header");
        }
        let m = Msg {
            packet: n,
            exporter,
            domain,
            version: 10,
            now_ms: secs as i64 * 1000,
            uptime_base: None,
        };
        self.sets(m, &p[16..end]);
    }
}

/// Bytes of a capture read as they are needed, from any reader: memory holds the longest
/// record read, not the capture.
struct Window<R> {
    src: R,
    buf: Vec<u8>,
    /// Start of the unread bytes in `buf`.
    pos: usize,
    /// Offset in the capture of `buf[0]`.
    base: u64,
    eof: bool,
    error: Option<std::io::Error>,
}

impl<R: Read> Window<R> {
    fn new(src: R) -> Self {
        Window {
            src,
            buf: Vec::new(),
            pos: 0,
            base: 0,
            eof: false,
            error: None,
        }
    }

    /// Makes `n` bytes from the current position available; false at the end of the input.
    fn need(&mut self, n: usize) -> bool {
        while self.buf.len() - self.pos < n && !self.eof {
            if self.pos > 0 && self.pos >= self.buf.len() / 2 {
                self.buf.drain(..self.pos);
                self.base += self.pos as u64;
                self.pos = 0;
            }
            let want = (n - (self.buf.len() - self.pos)).max(64 * 1024);
            let old = self.buf.len();
            self.buf.resize(old + want, 0);
            match self.src.read(&mut self.buf[old..]) {
                Ok(0) => {
                    self.buf.truncate(old);
                    self.eof = true;
                }
                Ok(k) => self.buf.truncate(old + k),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => self.buf.truncate(old),
                Err(e) => {
                    self.buf.truncate(old);
                    self.eof = true;
                    self.error = Some(e);
                }
            }
        }
        self.buf.len() - self.pos >= n
    }

    fn at(&self, off: usize, n: usize) -> Option<&[u8]> {
        self.buf.get(self.pos + off..self.pos + off + n)
    }

    fn skip(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
    }

    /// Offset in the capture of the current position.
    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }
}

/// Time units per second of a pcapng interface (its `if_tsresol` option; microseconds
/// without it).
fn ts_resolution(mut opts: &[u8], le: bool) -> u64 {
    while opts.len() >= 4 {
        let code = u16_of(opts, le);
        let len = u16_of(&opts[2..], le) as usize;
        if code == 0 {
            break;
        }
        if code == 9
            && len == 1
            && let Some(&r) = opts.get(4)
        {
            return if r & 0x80 == 0 {
                10u64.checked_pow(r as u32).unwrap_or(1_000_000)
            } else {
                1u64.checked_shl((r & 0x7f) as u32).unwrap_or(1_000_000)
            };
        }
        opts = opts.get(4 + len.div_ceil(4) * 4..).unwrap_or(&[]);
    }
    1_000_000
}

fn u16_of(b: &[u8], le: bool) -> u16 {
    let a: [u8; 2] = b.get(..2).and_then(|x| x.try_into().ok()).unwrap_or([0; 2]);
    if le {
        u16::from_le_bytes(a)
    } else {
        u16::from_be_bytes(a)
    }
}

fn u32_of(b: &[u8], le: bool) -> u32 {
    let a: [u8; 4] = b.get(..4).and_then(|x| x.try_into().ok()).unwrap_or([0; 4]);
    if le {
        u32::from_le_bytes(a)
    } else {
        u32::from_be_bytes(a)
    }
}

/// A pcap record header that a capture writer could have written.
#[derive(Clone, Copy)]
struct PcapFormat {
    le: bool,
    nanos: bool,
    max_len: usize,
}

impl PcapFormat {
    /// (captured length) of a plausible record header.
    fn record(&self, h: &[u8], last_ts: Option<u32>) -> Option<usize> {
        let ts = u32_of(h, self.le);
        let frac = u32_of(&h[4..], self.le);
        let incl = u32_of(&h[8..], self.le) as usize;
        let orig = u32_of(&h[12..], self.le) as usize;
        let frac_ok = frac < if self.nanos { 1_000_000_000 } else { 1_000_000 };
        // Within ten years of the previous packet.
        let ts_ok = last_ts.is_none_or(|l| ts.abs_diff(l) < 10 * 366 * 86_400);
        (frac_ok && ts_ok && incl <= self.max_len && incl <= orig.max(incl) && orig < 1 << 24)
            .then_some(incl)
    }
}

/// pcapng block types known to writers (a block of another type found while resynchronising
/// is not trusted).
const PCAPNG_BLOCKS: [u32; 9] = [0x0a0d0d0a, 1, 2, 3, 4, 5, 6, 9, 10];

impl Decoder<'_> {
    /// A decoder that hands flows and problems to `sink`.
    pub fn new(sink: &mut dyn CaptureSink) -> Decoder<'_> {
        Decoder {
            templates: HashMap::new(),
            signal: cellwarden_signal::Decoder::new(),
            sink,
            packets: 0,
            before_template: 0,
            refused_templates: 0,
        }
    }

    /// Reads a pcap or pcapng capture from `src` to its end. A damaged record or block is
    /// reported with its packet number and offset, and reading picks up again at the next
    /// record or block that is well formed (pcap: a plausible header followed by another or by
    /// the end; pcapng: a known block type whose two lengths agree). Returns the read error
    /// that ended the input early, if any.
    pub fn read(&mut self, src: impl Read) -> Option<std::io::Error> {
        let mut w = Window::new(src);
        if !w.need(4) {
            self.problem(0, "capture header cut off");
            return w.error;
        }
        if w.at(0, 4) == Some(&[0x0a, 0x0d, 0x0d, 0x0a]) {
            self.pcapng(&mut w);
        } else {
            self.pcap(&mut w);
        }
        w.error
    }

    fn pcap<R: Read>(&mut self, w: &mut Window<R>) {
        if !w.need(24) {
            self.problem(0, "capture header cut off");
            return;
        }
        let magic = w.at(0, 4).unwrap_or(&[]).to_vec();
        let le = matches!(
            magic[..],
            [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1]
        );
        let nanos = matches!(
            magic[..],
            [0x4d, 0x3c, 0xb2, 0xa1] | [0xa1, 0xb2, 0x3c, 0x4d]
        );
        let header = w.at(0, 24).unwrap_or(&[]).to_vec();
        let snaplen = u32_of(&header[16..], le) as usize;
        let link = u32_of(&header[20..], le) as u16;
        let fmt = PcapFormat {
            le,
            nanos,
            max_len: if snaplen == 0 {
                MAX_RECORD_BYTES
            } else {
                snaplen.min(MAX_RECORD_BYTES)
            },
        };
        w.skip(24);
        let mut n = 0u64;
        let mut last_ts: Option<u32> = None;
        loop {
            if !w.need(16) {
                if w.left() > 0 {
                    self.problem(
                        n + 1,
                        format!(
                            "packet header cut off at the end of the capture (offset {})",
                            w.offset()
                        ),
                    );
                }
                return;
            }
            let h = w.at(0, 16).unwrap_or(&[]).to_vec();
            let incl = match fmt.record(&h, last_ts) {
                Some(incl) => incl,
                None => {
                    let at = w.offset();
                    let len = u32_of(&h[8..], le);
                    w.skip(1);
                    let skipped = self.pcap_resync(w, fmt, last_ts) + 1;
                    let next = if w.left() > 0 || w.need(1) {
                        format!("reading goes on at offset {}", w.offset())
                    } else {
                        "no later packet found".to_owned()
                    };
                    self.problem(
                        n + 1,
                        format!(
                            "packet header at offset {at} is damaged (length {len}, snap length {snaplen}); {skipped} bytes skipped, {next}"
                        ),
                    );
                    continue;
                }
            };
            if !w.need(16 + incl) {
                self.problem(
                    n + 1,
                    format!(
                        "packet cut off at the end of the capture ({} of {incl} bytes)",
                        w.left().saturating_sub(16)
                    ),
                );
                return;
            }
            n += 1;
            last_ts = Some(u32_of(&h, le));
            let frac = u32_of(&h[4..], le) as i64;
            let time_us =
                u32_of(&h, le) as i64 * 1_000_000 + if nanos { frac / 1000 } else { frac };
            let pkt = w.at(16, incl).unwrap_or(&[]).to_vec();
            self.link(n, time_us, link, &pkt);
            w.skip(16 + incl);
        }
    }

    /// Moves to the next offset where a plausible record header is followed by another (or by
    /// the end of the capture); returns the bytes skipped.
    fn pcap_resync<R: Read>(
        &mut self,
        w: &mut Window<R>,
        fmt: PcapFormat,
        last_ts: Option<u32>,
    ) -> u64 {
        let start = w.offset();
        loop {
            if !w.need(16) {
                let rest = w.left();
                w.skip(rest);
                return w.offset() - start;
            }
            let h = w.at(0, 16).unwrap_or(&[]).to_vec();
            if let Some(incl) = fmt.record(&h, last_ts) {
                let has_next = w.need(16 + incl + 16);
                let next_ok = if has_next {
                    let nh = w.at(16 + incl, 16).unwrap_or(&[]).to_vec();
                    fmt.record(&nh, Some(u32_of(&h, fmt.le))).is_some()
                } else {
                    // The last record: it must end exactly at the end of the capture.
                    w.left() == 16 + incl
                };
                if next_ok {
                    return w.offset() - start;
                }
            }
            w.skip(1);
        }
    }

    fn pcapng<R: Read>(&mut self, w: &mut Window<R>) {
        // (link type, time units per second) of each interface.
        let mut links: Vec<(u16, u64)> = Vec::new();
        let mut le = true;
        let mut n = 0u64;
        loop {
            if !w.need(12) {
                if w.left() > 0 {
                    self.problem(
                        n + 1,
                        format!(
                            "block cut off at the end of the capture (offset {})",
                            w.offset()
                        ),
                    );
                }
                return;
            }
            let ty_raw = w.at(0, 4).unwrap_or(&[]).to_vec();
            if ty_raw == [0x0a, 0x0d, 0x0d, 0x0a] {
                // Section header: the byte-order magic says how to read the rest.
                le = w.at(8, 4) == Some(&[0x4d, 0x3c, 0x2b, 0x1a]);
                links.clear();
            }
            let len = u32_of(w.at(4, 4).unwrap_or(&[]), le) as usize;
            let ty = u32_of(&ty_raw, le);
            let framed = (12..=MAX_RECORD_BYTES).contains(&len) && len.is_multiple_of(4);
            let whole = framed && w.need(len);
            let trailer_ok = whole && u32_of(w.at(len - 4, 4).unwrap_or(&[]), le) as usize == len;
            if !trailer_ok {
                if framed && !whole {
                    self.problem(n + 1, format!("block cut off at the end of the capture (offset {}, {} of {len} bytes)", w.offset(), w.left()));
                    return;
                }
                let at = w.offset();
                w.skip(4);
                let skipped = self.pcapng_resync(w, le) + 4;
                let next = if w.left() > 0 || w.need(1) {
                    format!("reading goes on at offset {}", w.offset())
                } else {
                    "no later block found".to_owned()
                };
                self.problem(
                    n + 1,
                    format!("block at offset {at} is damaged (type {ty}, length {len}); {skipped} bytes skipped, {next}"),
                );
                continue;
            }
            let block = w.at(0, len).unwrap_or(&[]).to_vec();
            let body = &block[8..len - 4];
            match ty {
                1 => {
                    let link = if body.len() >= 2 { u16_of(body, le) } else { 1 };
                    links.push((link, ts_resolution(body.get(8..).unwrap_or(&[]), le)));
                }
                6 => {
                    n += 1;
                    let iface = u32_of(body, le) as usize;
                    let (link, per_sec) = links.get(iface).copied().unwrap_or((1, 1_000_000));
                    let ticks = ((u32_of(body.get(4..).unwrap_or(&[]), le) as u64) << 32)
                        | u32_of(body.get(8..).unwrap_or(&[]), le) as u64;
                    let time_us = (ticks as u128 * 1_000_000 / per_sec.max(1) as u128) as i64;
                    let cap = u32_of(body.get(12..).unwrap_or(&[]), le) as usize;
                    if let Some(pkt) = body.get(20..20usize.saturating_add(cap)) {
                        self.link(n, time_us, link, pkt);
                    } else {
                        self.problem(n, "packet longer than its block; skipped");
                    }
                }
                3 => {
                    n += 1;
                    let pkt = body.get(4..).unwrap_or(&[]);
                    self.link(n, 0, links.first().map_or(1, |l| l.0), pkt);
                }
                _ => {}
            }
            w.skip(len);
        }
    }

    /// Moves to the next 4-byte step where a known block type's two lengths agree; returns the
    /// bytes skipped.
    fn pcapng_resync<R: Read>(&mut self, w: &mut Window<R>, le: bool) -> u64 {
        let start = w.offset();
        loop {
            if !w.need(12) {
                let rest = w.left();
                w.skip(rest);
                return w.offset() - start;
            }
            let ty = u32_of(w.at(0, 4).unwrap_or(&[]), le);
            let len = u32_of(w.at(4, 4).unwrap_or(&[]), le) as usize;
            if PCAPNG_BLOCKS.contains(&ty)
                && (12..=MAX_RECORD_BYTES).contains(&len)
                && len.is_multiple_of(4)
                && w.need(len)
                && u32_of(w.at(len - 4, 4).unwrap_or(&[]), le) as usize == len
            {
                return w.offset() - start;
            }
            w.skip(4);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A pcap (microseconds, little-endian, Ethernet) of UDP payloads from `exporter`.
    pub(crate) fn pcap(exporter: [u8; 4], payloads: &[Vec<u8>]) -> Vec<u8> {
        let mut out = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&65535u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        for p in payloads {
            let mut pkt = vec![0u8; 12];
            pkt.extend_from_slice(&[0x08, 0x00]);
            let total = 20 + 8 + p.len();
            let mut ip = vec![
                0x45,
                0,
                (total >> 8) as u8,
                total as u8,
                0,
                0,
                0,
                0,
                64,
                17,
                0,
                0,
            ];
            ip.extend_from_slice(&exporter);
            ip.extend_from_slice(&[10, 0, 0, 1]);
            pkt.extend_from_slice(&ip);
            let ulen = 8 + p.len();
            pkt.extend_from_slice(&[0x08, 0x00, 0x08, 0x07, (ulen >> 8) as u8, ulen as u8, 0, 0]);
            pkt.extend_from_slice(p);
            out.extend_from_slice(&1_772_323_200u32.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&(pkt.len() as u32).to_le_bytes());
            out.extend_from_slice(&(pkt.len() as u32).to_le_bytes());
            out.extend_from_slice(&pkt);
        }
        out
    }

    pub(crate) fn v5(src: [u8; 4], dst: [u8; 4], dport: u16, bytes: u32) -> Vec<u8> {
        let mut p = vec![0, 5, 0, 1];
        p.extend_from_slice(&100_000u32.to_be_bytes()); // uptime ms
        p.extend_from_slice(&1_772_323_200u32.to_be_bytes());
        p.extend_from_slice(&0u32.to_be_bytes());
        p.extend_from_slice(&[0; 8]);
        let mut r = Vec::new();
        r.extend_from_slice(&src);
        r.extend_from_slice(&dst);
        r.extend_from_slice(&[0; 8]);
        r.extend_from_slice(&1000u32.to_be_bytes());
        r.extend_from_slice(&bytes.to_be_bytes());
        r.extend_from_slice(&40_000u32.to_be_bytes()); // first: 60 s before export
        r.extend_from_slice(&100_000u32.to_be_bytes());
        r.extend_from_slice(&51000u16.to_be_bytes());
        r.extend_from_slice(&dport.to_be_bytes());
        r.extend_from_slice(&[0, 0x18, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        p.extend_from_slice(&r);
        p
    }

    fn template_v9() -> Vec<u8> {
        // template 256: src(8,4) dst(12,4) sport(7,2) dport(11,2) proto(4,1) bytes(1,4) pkts(2,4)
        let fields: [(u16, u16); 7] = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (1, 4), (2, 4)];
        let mut set = vec![];
        set.extend_from_slice(&256u16.to_be_bytes());
        set.extend_from_slice(&(fields.len() as u16).to_be_bytes());
        for (t, l) in fields {
            set.extend_from_slice(&t.to_be_bytes());
            set.extend_from_slice(&l.to_be_bytes());
        }
        let mut s = vec![0, 0];
        s.extend_from_slice(&((set.len() + 4) as u16).to_be_bytes());
        s.extend_from_slice(&set);
        s
    }

    fn data_v9(id: u16) -> Vec<u8> {
        let mut rec = vec![10, 2, 0, 5, 203, 0, 113, 66];
        rec.extend_from_slice(&51000u16.to_be_bytes());
        rec.extend_from_slice(&443u16.to_be_bytes());
        rec.push(6);
        rec.extend_from_slice(&700_000_000u32.to_be_bytes());
        rec.extend_from_slice(&500_000u32.to_be_bytes());
        let mut s = id.to_be_bytes().to_vec();
        s.extend_from_slice(&((rec.len() + 4) as u16).to_be_bytes());
        s.extend_from_slice(&rec);
        s
    }

    fn message(version: u16, domain: u32, sets: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = sets.concat();
        let mut p = version.to_be_bytes().to_vec();
        if version == 9 {
            p.extend_from_slice(&(sets.len() as u16).to_be_bytes());
            p.extend_from_slice(&100_000u32.to_be_bytes());
            p.extend_from_slice(&1_772_323_200u32.to_be_bytes());
            p.extend_from_slice(&1u32.to_be_bytes());
        } else {
            p.extend_from_slice(&((16 + body.len()) as u16).to_be_bytes());
            p.extend_from_slice(&1_772_323_200u32.to_be_bytes());
            p.extend_from_slice(&1u32.to_be_bytes());
        }
        p.extend_from_slice(&domain.to_be_bytes());
        p.extend_from_slice(&body);
        p
    }

    #[test]
    fn v5_records() {
        let cap = pcap(
            [192, 0, 2, 1],
            &[v5([10, 2, 0, 5], [203, 0, 113, 66], 443, 123_456)],
        );
        assert!(is_capture(&cap));
        let d = Decoder::decode_capture(&cap);
        assert_eq!(d.packets, 1);
        assert_eq!(d.flows.len(), 1);
        let v: serde_json::Value = serde_json::from_str(&d.flows[0].1).unwrap();
        assert_eq!(v["src_ip"], "10.2.0.5");
        assert_eq!(v["dst_port"], 443);
        assert_eq!(v["bytes_out"], 123456);
        assert_eq!(v["proto"], "tcp");
        assert_eq!(v["timestamp"], "2026-02-28T23:59:00Z");
        assert_eq!(v["duration"], 60.0);
        assert_eq!(v["exporter"], "192.0.2.1");
    }

    #[test]
    fn v9_and_ipfix_templates_per_exporter_and_domain() {
        let mut ipfix_tpl = template_v9();
        ipfix_tpl[1] = 2; // template set id 2 in IPFIX
        let cap = pcap(
            [192, 0, 2, 1],
            &[
                // Data before its template: counted and reported.
                message(9, 1, &[data_v9(256)]),
                message(9, 1, &[template_v9(), data_v9(256)]),
                message(9, 1, &[data_v9(256)]),
                // Same template id, other domain: unknown there.
                message(9, 2, &[data_v9(256)]),
                message(10, 7, &[ipfix_tpl, data_v9(256)]),
            ],
        );
        let d = Decoder::decode_capture(&cap);
        assert_eq!(d.flows.len(), 3, "{:?}", d.problems);
        assert_eq!(d.before_template, 2);
        assert_eq!(d.problems.len(), 2);
        assert_eq!(d.problems[0].packet, 1);
        assert!(d.problems[0].message.contains("before its template"));
        let v: serde_json::Value = serde_json::from_str(&d.flows[2].1).unwrap();
        assert_eq!(v["version"], 10);
        assert_eq!(v["dst_ip"], "203.0.113.66");
        assert_eq!(v["bytes_out"], 700_000_000);
        assert_eq!(v["packets"], 500_000);
    }

    /// The same packets as a pcapng (little-endian, one Ethernet interface).
    fn pcapng_of(pcap: &[u8]) -> Vec<u8> {
        cellwarden_signal::encode::pcapng_of(pcap, 1)
    }

    #[test]
    fn signalling_in_pcapng_with_linux_cooked_frames_and_nanosecond_times() {
        use cellwarden_signal::encode;
        let (s, d) = ([10, 50, 1, 10].into(), [10, 50, 0, 10].into());
        let msg = encode::diameter(
            316,
            true,
            16_777_251,
            1,
            1,
            &[
                encode::avp(296, None, b"epc.mnc015.mcc208.3gppnetwork.org"),
                encode::avp(1, None, b"208150000000001"),
            ],
        );
        // Diameter over SCTP (PPID 46) in an SLL2 frame.
        let sctp = encode::sctp_packet(3868, 3868, 5, &[(1, 0, 0x03, 46, &msg)]);
        let ip = encode::ipv4(s, d, 132, 1, &sctp);
        let mut sll2 = vec![0x08, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 4, 6];
        sll2.extend([2, 0, 0, 0, 0, 1, 0, 0]);
        sll2.extend(&ip);
        let mut ng = encode::pcapng_section();
        // Interface: SLL2 (276), if_tsresol 9 (nanoseconds).
        let mut idb = vec![0x14, 0x01, 0, 0, 0xff, 0xff, 0, 0];
        idb.extend([9, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0]);
        ng.extend(encode::pcapng_block(1, &idb));
        let ns: u64 = 1_772_355_600_123_456_789;
        let mut epb = 0u32.to_le_bytes().to_vec();
        epb.extend(((ns >> 32) as u32).to_le_bytes());
        epb.extend((ns as u32).to_le_bytes());
        epb.extend((sll2.len() as u32).to_le_bytes());
        epb.extend((sll2.len() as u32).to_le_bytes());
        epb.extend(&sll2);
        ng.extend(encode::pcapng_block(6, &epb));
        let d = Decoder::decode_capture(&ng);
        assert!(d.problems.is_empty(), "{:?}", d.problems);
        assert_eq!(d.flows.len(), 1);
        let v: serde_json::Value = serde_json::from_str(&d.flows[0].1).unwrap();
        assert_eq!(v["Channel"], "diameter");
        assert_eq!(v["command_abbreviation"], "ULR");
        assert_eq!(v["imsi"], "208150000000001");
        assert_eq!(v["transport"], "sctp");
        assert_eq!(v["timestamp"], "2026-03-01T09:00:00.123456Z");
    }

    #[test]
    fn pcapng_captures() {
        let cap = pcap(
            [192, 0, 2, 1],
            &[
                v5([10, 2, 0, 5], [203, 0, 113, 66], 443, 9),
                v5([10, 2, 0, 6], [203, 0, 113, 67], 22, 8),
            ],
        );
        let ng = pcapng_of(&cap);
        assert!(is_capture(&ng));
        let d = Decoder::decode_capture(&ng);
        assert_eq!(d.packets, 2, "{:?}", d.problems);
        assert_eq!(d.flows.len(), 2);
        assert_eq!(d.flows[1].0, 2);
        assert!(d.flows[1].1.contains("\"dst_port\":22"));
    }

    #[test]
    fn cut_captures_are_reported() {
        let mut cap = pcap([192, 0, 2, 1], &[v5([10, 0, 0, 1], [8, 8, 8, 8], 53, 1)]);
        cap.truncate(cap.len() - 10);
        let d = Decoder::decode_capture(&cap);
        assert_eq!(d.flows.len(), 0);
        assert!(d.problems[0].message.contains("cut off"));
    }

    /// 6,000 packets of one v5 flow each, and the offset of each record header.
    fn big_capture() -> (Vec<u8>, Vec<usize>) {
        let payloads: Vec<Vec<u8>> = (0..6000u32)
            .map(|k| v5([10, 0, (k >> 8) as u8, k as u8], [203, 0, 113, 66], 443, k))
            .collect();
        let cap = pcap([192, 0, 2, 1], &payloads);
        let mut offsets = Vec::new();
        let mut i = 24;
        while i + 16 <= cap.len() {
            offsets.push(i);
            i += 16 + u32::from_le_bytes(cap[i + 8..i + 12].try_into().unwrap()) as usize;
        }
        (cap, offsets)
    }

    /// A record length damaged in the middle of a capture is reported as such, with its offset,
    /// and the packets after it are read (all of them used to be dropped as "cut off").
    #[test]
    fn a_damaged_record_header_is_skipped_and_reading_resumes() {
        let (mut cap, offsets) = big_capture();
        let at = offsets[1500];
        cap[at + 8..at + 12].copy_from_slice(&0xfff0_0000u32.to_le_bytes());
        let d = Decoder::decode_capture(&cap);
        assert_eq!(d.flows.len(), 5999, "{:?}", d.problems);
        assert_eq!(d.problems.len(), 1, "{:?}", d.problems);
        let m = &d.problems[0].message;
        assert!(
            m.contains(&format!("packet header at offset {at} is damaged")),
            "{m}"
        );
        assert!(m.contains("reading goes on at offset"), "{m}");
        assert_eq!(d.problems[0].packet, 1501);
        // A plausible but wrong length: that packet and the one it runs into are lost.
        let (mut cap, offsets) = big_capture();
        let at = offsets[3000];
        let len = u32::from_le_bytes(cap[at + 8..at + 12].try_into().unwrap());
        cap[at + 8..at + 12].copy_from_slice(&(len + 40).to_le_bytes());
        cap[at + 12..at + 16].copy_from_slice(&(len + 40).to_le_bytes());
        let d = Decoder::decode_capture(&cap);
        assert!(
            d.flows.len() >= 5998,
            "{} flows, {:?}",
            d.flows.len(),
            d.problems
        );
        // The same damage in a pcapng block.
        let (cap, _) = big_capture();
        let mut ng = pcapng_of(&cap);
        let mut i = 0;
        let mut blocks = Vec::new();
        while i + 8 <= ng.len() {
            blocks.push(i);
            i += u32::from_le_bytes(ng[i + 4..i + 8].try_into().unwrap()) as usize;
        }
        let at = blocks[2000];
        ng[at + 4..at + 8].copy_from_slice(&7u32.to_le_bytes());
        let d = Decoder::decode_capture(&ng);
        assert_eq!(d.flows.len(), 5999, "{:?}", d.problems);
        assert!(
            d.problems[0]
                .message
                .contains(&format!("block at offset {at} is damaged")),
            "{:?}",
            d.problems
        );
    }

    /// Decoding reads the capture as a stream: the whole capture is never in memory.
    #[test]
    fn captures_are_read_as_a_stream() {
        struct Count(usize);
        impl CaptureSink for Count {
            fn flow(&mut self, _: u64, _: String) {
                self.0 += 1;
            }
            fn problem(&mut self, _: u64, m: String) {
                panic!("{m}");
            }
        }
        /// A reader that gives a few bytes at a time and says how far ahead it was read.
        struct Trickle<'a>(&'a [u8], usize);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = buf.len().min(7).min(self.0.len() - self.1);
                buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
                self.1 += n;
                Ok(n)
            }
        }
        let (cap, _) = big_capture();
        let mut c = Count(0);
        let mut d = Decoder::new(&mut c);
        assert!(d.read(Trickle(&cap, 0)).is_none());
        assert_eq!(d.packets, 6000);
        assert_eq!(c.0, 6000);
    }
}
