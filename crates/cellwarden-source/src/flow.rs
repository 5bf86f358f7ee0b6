//! Network flow logs, each flow one event with ECS-like names beside the format's own:
//! `src_ip`, `src_port`, `dst_ip`, `dst_port`, `proto`, `service`, `duration` (seconds),
//! `bytes_out` (sent by the source), `bytes_in`, `packets`, and `Channel` naming the source
//! (`zeek_conn`, `zeek_dns`, `zeek_<path>`, `nfdump`).
//!
//! - Zeek logs as TSV: the `#separator`, `#set_separator`, `#empty_field`, `#unset_field`,
//!   `#path`, `#fields` and `#types` header lines drive parsing (no column order is assumed;
//!   a file may hold several headers; `#close` ends a part). `-` is unset, `(empty)` empty.
//! - Zeek logs as JSON Lines, with dotted (`id.orig_h`) or underscored (`id_orig_h`) keys
//!   (recognised after flattening).
//! - The CSV `nfdump -o csv` writes (header-driven; the summary block at the end is skipped).

use std::borrow::Cow;

use cellwarden_event::{Timestamp, Value, same_text};

use crate::json::Fields;

/// Header of a Zeek TSV part, flattened for the reader's unit header:
/// `["#zeek", path, separator, empty_field, unset_field, fields…, types…]`.
pub fn zeek_header(
    path: &str,
    sep: &str,
    empty: &str,
    unset: &str,
    fields: &[String],
    types: &[String],
) -> Vec<String> {
    let mut h = vec![
        "#zeek".to_owned(),
        path.to_owned(),
        sep.to_owned(),
        empty.to_owned(),
        unset.to_owned(),
    ];
    h.extend(fields.iter().cloned());
    // Types may be missing; pad so both halves have the same length.
    for i in 0..fields.len() {
        h.push(types.get(i).cloned().unwrap_or_else(|| "string".to_owned()));
    }
    h
}

/// `\x09` and friends in Zeek's `#separator` line.
pub fn unescape_separator(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("\\x") {
        out.push_str(&rest[..i]);
        match rest
            .get(i + 2..i + 4)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            Some(b) => {
                out.push(b as char);
                rest = &rest[i + 4..];
            }
            None => {
                out.push_str("\\x");
                rest = &rest[i + 2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whether text starts a Zeek TSV log.
pub fn is_zeek_tsv(line: &str) -> bool {
    line.starts_with("#separator")
}

fn common_name(zeek: &str) -> Option<&'static str> {
    Some(match zeek {
        "id.orig_h" | "id_orig_h" => "src_ip",
        "id.orig_p" | "id_orig_p" => "src_port",
        "id.resp_h" | "id_resp_h" => "dst_ip",
        "id.resp_p" | "id_resp_p" => "dst_port",
        "orig_bytes" => "bytes_out",
        "resp_bytes" => "bytes_in",
        _ => return None,
    })
}

fn epoch(v: &str) -> Option<Timestamp> {
    let f: f64 = v.parse().ok()?;
    Timestamp::from_microsecond((f * 1e6).round() as i64).ok()
}

fn as_i64(v: &Value<'_>) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Float(f) => Some(*f as i64),
        v => v.as_text().and_then(|t| t.trim().parse().ok()),
    }
}

/// Adds `packets` (both directions) when the parts are there.
fn add_packets(out: &mut Fields<'_>) {
    let get = |k: &str| {
        out.iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| as_i64(v))
    };
    if let (Some(a), b) = (get("orig_pkts"), get("resp_pkts")) {
        out.push((Cow::Borrowed("packets"), Value::Int(a + b.unwrap_or(0))));
    }
}

/// The channel of a Zeek log (`zeek_` and its path); the usual ones without an allocation
/// per record.
fn zeek_channel(path: &str) -> Cow<'static, str> {
    const KNOWN: &[&str] = &[
        "zeek_conn",
        "zeek_dns",
        "zeek_http",
        "zeek_ssl",
        "zeek_x509",
        "zeek_files",
        "zeek_notice",
        "zeek_weird",
        "zeek_ssh",
        "zeek_smtp",
        "zeek_dhcp",
        "zeek_ftp",
        "zeek_rdp",
        "zeek_smb_files",
        "zeek_smb_mapping",
        "zeek_dce_rpc",
        "zeek_kerberos",
        "zeek_ntlm",
        "zeek_snmp",
        "zeek_sip",
        "zeek_tunnel",
        "zeek_radius",
        "zeek_software",
        "zeek_other",
    ];
    match KNOWN.iter().find(|k| &k[5..] == path) {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(format!("zeek_{path}")),
    }
}

/// A Zeek TSV header prepared once for the rows under it.
pub struct ZeekLayout<'h> {
    sep: &'h str,
    empty: &'h str,
    unset: &'h str,
    channel: Cow<'static, str>,
    /// Per column: name, type (0 string, 1 integer, 2 float), common alias, is `ts`, counts
    /// packets (summed into `packets`).
    cols: Vec<(&'h str, u8, Option<&'static str>, bool, bool)>,
}

impl<'h> ZeekLayout<'h> {
    /// The layout of a header made by [`zeek_header`]; `None` if it is not one.
    pub fn new(header: &'h [String]) -> Option<ZeekLayout<'h>> {
        if header.len() < 5 || header[0] != "#zeek" {
            return None;
        }
        let n = (header.len() - 5) / 2;
        let cols = (0..n)
            .map(|i| {
                let name = header[5 + i].as_str();
                let ty = match header[5 + n + i].as_str() {
                    "count" | "int" | "port" => 1,
                    "double" | "interval" | "time" => 2,
                    _ => 0,
                };
                let pkts = name == "orig_pkts" || name == "resp_pkts";
                (name, ty, common_name(name), name == "ts", pkts)
            })
            .collect();
        Some(ZeekLayout {
            sep: &header[2],
            empty: &header[3],
            unset: &header[4],
            channel: zeek_channel(&header[1]),
            cols,
        })
    }
}

/// One data row of a Zeek TSV part, by its layout.
pub fn zeek_tsv_record<'a>(
    layout: &ZeekLayout<'a>,
    line: &'a str,
) -> Option<(Fields<'a>, Option<Timestamp>)> {
    let n = layout.cols.len();
    let mut out: Fields<'a> = Vec::with_capacity(n + 8);
    let mut ts = None;
    let mut i = 0;
    let sep1 = (layout.sep.len() == 1).then(|| layout.sep.as_bytes()[0]);
    let mut rest = line;
    let mut packets: Option<i64> = None;
    loop {
        let (v, more) = match sep1 {
            Some(b) => match memchr::memchr(b, rest.as_bytes()) {
                Some(k) => (&rest[..k], Some(&rest[k + 1..])),
                None => (rest, None),
            },
            None => match rest.split_once(layout.sep) {
                Some((a, b)) => (a, Some(b)),
                None => (rest, None),
            },
        };
        let &(name, ty, alias, is_ts, pkts) = layout.cols.get(i)?;
        i += 1;
        if !same_text(v, layout.unset) {
            let v = if same_text(v, layout.empty) { "" } else { v };
            let value = match ty {
                1 => v
                    .parse::<i64>()
                    .map(Value::Int)
                    .unwrap_or(Value::Str(Cow::Borrowed(v))),
                2 => v
                    .parse::<f64>()
                    .map(Value::Float)
                    .unwrap_or(Value::Str(Cow::Borrowed(v))),
                _ => Value::Str(Cow::Borrowed(v)),
            };
            if is_ts {
                ts = epoch(v);
            }
            if pkts && let Value::Int(p) = value {
                packets = Some(packets.unwrap_or(0) + p);
            }
            if let Some(c) = alias {
                out.push((Cow::Borrowed(c), value.clone()));
            }
            out.push((Cow::Borrowed(name), value));
        }
        match more {
            Some(m) => rest = m,
            None => break,
        }
    }
    if i != n {
        return None;
    }
    if let Some(p) = packets {
        out.push((Cow::Borrowed("packets"), Value::Int(p)));
    }
    out.push((Cow::Borrowed("Channel"), Value::Str(layout.channel.clone())));
    Some((out, ts))
}

/// Gives a Zeek JSON record (flattened) the common flow names and its Channel; returns its
/// time, or `None` if it is not a Zeek record.
pub fn zeek_json(fields: &mut Fields<'_>) -> Option<Option<Timestamp>> {
    let has = |k: &str| fields.iter().any(|(n, _)| n == k);
    if !(has("uid") && has("ts") && (has("id.orig_h") || has("id_orig_h"))) {
        return None;
    }
    let path = if has("query") || has("qtype_name") {
        "dns"
    } else if has("conn_state") || has("orig_bytes") || has("duration") || has("history") {
        "conn"
    } else if has("server_name") || has("ja3") {
        "ssl"
    } else if has("method") && has("host") {
        "http"
    } else {
        "other"
    };
    let mut ts = None;
    // The common names are added after the record's own, their values borrowing the same text.
    for i in 0..fields.len() {
        let (n, v) = &fields[i];
        if n == "ts" {
            ts = match v {
                Value::Float(f) => Timestamp::from_microsecond((f * 1e6).round() as i64).ok(),
                Value::Int(i) => Timestamp::from_second(*i).ok(),
                v => v
                    .as_text()
                    .and_then(|t| epoch(&t).or_else(|| cellwarden_event::parse_timestamp(&t))),
            };
        }
        if let Some(c) = common_name(n) {
            let v = v.clone();
            fields.push((Cow::Borrowed(c), v));
        }
    }
    add_packets(fields);
    fields.push((Cow::Borrowed("Channel"), Value::Str(zeek_channel(path))));
    Some(ts)
}

/// Whether a header row is the CSV `nfdump -o csv` writes.
pub fn is_nfdump_header(line: &str) -> bool {
    let cols: Vec<&str> = line.split(',').map(str::trim).collect();
    cols.first() == Some(&"ts")
        && cols.contains(&"sa")
        && cols.contains(&"da")
        && (cols.contains(&"ibyt") || cols.contains(&"byt"))
}

/// One row of `nfdump -o csv` output; `Some(None)` for rows of the summary block.
pub fn nfdump_record<'a>(
    header: &'a [String],
    line: &'a str,
) -> Option<Option<(Fields<'a>, Option<Timestamp>)>> {
    let cols: Vec<&str> = line.split(',').collect();
    let first = cols.first().copied().unwrap_or("").trim();
    // Summary block: "Summary", "flows,bytes,…", and its values.
    if first.len() < 19 || !first.as_bytes()[0].is_ascii_digit() || !first.contains('-') {
        return Some(None);
    }
    if cols.len() != header.len() {
        return None;
    }
    let mut out: Fields<'a> = Vec::with_capacity(cols.len() + 8);
    let mut ts = None;
    let mut packets = 0i64;
    let mut start = None;
    let mut end = None;
    for (name, v) in header.iter().zip(&cols) {
        let v = v.trim();
        let common = match name.as_str() {
            "ts" => {
                ts = cellwarden_event::parse_timestamp(&v.replacen(' ', "T", 1)).or_else(|| {
                    cellwarden_event::parse_timestamp(&format!("{}Z", v.replacen(' ', "T", 1)))
                });
                start = ts;
                None
            }
            "te" => {
                end = cellwarden_event::parse_timestamp(&format!("{}Z", v.replacen(' ', "T", 1)));
                None
            }
            "sa" => Some("src_ip"),
            "da" => Some("dst_ip"),
            "sp" => Some("src_port"),
            "dp" => Some("dst_port"),
            "ibyt" | "byt" => Some("bytes_out"),
            "obyt" => Some("bytes_in"),
            "td" => Some("duration"),
            _ => None,
        };
        if matches!(name.as_str(), "ipkt" | "opkt" | "pkt") {
            packets += v.parse::<i64>().unwrap_or(0);
        }
        let value = match name.as_str() {
            "sp" | "dp" | "ibyt" | "obyt" | "byt" | "ipkt" | "opkt" | "pkt" => v
                .parse::<i64>()
                .map(Value::Int)
                .unwrap_or(Value::Str(Cow::Borrowed(v))),
            "td" => v
                .parse::<f64>()
                .map(Value::Float)
                .unwrap_or(Value::Str(Cow::Borrowed(v))),
            "pr" => Value::Str(Cow::Owned(v.to_ascii_lowercase())),
            _ => Value::Str(Cow::Borrowed(v)),
        };
        if name == "pr" {
            out.push((Cow::Borrowed("proto"), value.clone()));
        }
        if let Some(c) = common {
            out.push((Cow::Borrowed(c), value.clone()));
        }
        out.push((Cow::Borrowed(name.as_str()), value));
    }
    if !out.iter().any(|(n, _)| n == "duration")
        && let (Some(s), Some(e)) = (start, end)
    {
        let d = (e.as_microsecond() - s.as_microsecond()) as f64 / 1e6;
        out.push((Cow::Borrowed("duration"), Value::Float(d)));
    }
    out.push((Cow::Borrowed("packets"), Value::Int(packets)));
    out.push((
        Cow::Borrowed("Channel"),
        Value::Str(Cow::Borrowed("nfdump")),
    ));
    Some(Some((out, ts)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(f: &Fields<'_>, k: &str) -> String {
        f.iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.as_text())
            .map(|t| t.into_owned())
            .unwrap_or_default()
    }

    #[test]
    fn zeek_tsv_by_header() {
        let fields: Vec<String> = "ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto service duration orig_bytes resp_bytes conn_state orig_pkts resp_pkts tunnel_parents"
            .split(' ').map(String::from).collect();
        let types: Vec<String> = "time string addr port addr port enum string interval count count string count count set[string]"
            .split(' ').map(String::from).collect();
        let h = zeek_header("conn", "\t", "(empty)", "-", &fields, &types);
        let h = ZeekLayout::new(&h).unwrap();
        let row = "1772323200.250000\tCab1\t10.0.0.5\t52341\t203.0.113.9\t443\ttcp\tssl\t12.5\t104857600\t2048\tSF\t70000\t30000\t(empty)";
        let (f, ts) = zeek_tsv_record(&h, row).unwrap();
        assert_eq!(
            cellwarden_event::format_timestamp(ts),
            "2026-03-01T00:00:00.250000Z"
        );
        assert_eq!(get(&f, "src_ip"), "10.0.0.5");
        assert_eq!(get(&f, "dst_port"), "443");
        assert_eq!(get(&f, "bytes_out"), "104857600");
        assert_eq!(get(&f, "packets"), "100000");
        assert_eq!(get(&f, "Channel"), "zeek_conn");
        assert_eq!(get(&f, "tunnel_parents"), "");
        let unset =
            "1772323200.25\tCab2\t10.0.0.5\t1\t10.0.0.6\t53\tudp\tdns\t-\t-\t-\tS0\t1\t0\t(empty)";
        let (f, _) = zeek_tsv_record(&h, unset).unwrap();
        assert!(f.iter().all(|(n, _)| n != "duration" && n != "bytes_out"));
        assert!(zeek_tsv_record(&h, "1\t2").is_none());
        assert_eq!(unescape_separator("\\x09"), "\t");
    }

    #[test]
    fn zeek_json_dotted_and_underscored() {
        for text in [
            r#"{"ts":1772323200.5,"uid":"C1","id.orig_h":"10.0.0.5","id.orig_p":5,"id.resp_h":"198.51.100.7","id.resp_p":53,"proto":"udp","query":"aGVsbG8.x.example.com","qtype_name":"TXT"}"#,
            r#"{"ts":"2026-03-01T00:00:00.5Z","uid":"C1","id_orig_h":"10.0.0.5","id_orig_p":5,"id_resp_h":"198.51.100.7","id_resp_p":53,"proto":"udp","query":"aGVsbG8.x.example.com","qtype_name":"TXT"}"#,
        ] {
            let mut f = crate::json::flatten(text).unwrap();
            let ts = zeek_json(&mut f).unwrap();
            assert_eq!(
                cellwarden_event::format_timestamp(ts),
                "2026-03-01T00:00:00.500000Z"
            );
            assert_eq!(get(&f, "src_ip"), "10.0.0.5");
            assert_eq!(get(&f, "dst_port"), "53");
            assert_eq!(get(&f, "Channel"), "zeek_dns");
        }
    }

    #[test]
    fn nfdump_csv_rows_and_summary() {
        let h: Vec<String> = "ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,opkt,obyt,in,out,sas,das,smk,dmk,dtos,dir,nh,nhb,svln,dvln,ismc,odmc,idmc,osmc,mpls1,mpls2,mpls3,mpls4,mpls5,mpls6,mpls7,mpls8,mpls9,mpls10,cl,sl,al,ra,eng,exid,tr"
            .split(',').map(String::from).collect();
        assert!(is_nfdump_header(&h.join(",")));
        let row = "2026-03-01 02:00:00,2026-03-01 02:40:00,2400.000,10.2.0.5,203.0.113.50,40000,443,TCP,.AP.SF,0,0,90000,5368709120,0,0,1,2,0,0,0,0,0,0,0.0.0.0,0.0.0.0,0,0,00:00:00:00:00:00,00:00:00:00:00:00,00:00:00:00:00:00,00:00:00:00:00:00,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0.000,0.000,0.000,0.0.0.0,0/0,1,1970-01-01 00:00:00.000";
        let (f, ts) = nfdump_record(&h, row).unwrap().unwrap();
        assert_eq!(
            cellwarden_event::format_timestamp(ts),
            "2026-03-01T02:00:00.000000Z"
        );
        assert_eq!(get(&f, "bytes_out"), "5368709120");
        assert_eq!(get(&f, "proto"), "tcp");
        assert_eq!(get(&f, "duration"), "2400");
        assert_eq!(get(&f, "packets"), "90000");
        assert!(nfdump_record(&h, "Summary").unwrap().is_none());
        assert!(
            nfdump_record(&h, "flows,bytes,packets,avg_bps,avg_pps,avg_bpp")
                .unwrap()
                .is_none()
        );
    }
}
