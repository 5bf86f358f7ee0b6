//! Flow logs end to end: a generated month of Zeek `conn.log` (TSV, in parts, some days
//! gzipped) with workstations browsing, a nightly backup and one hidden exfiltration in
//! chunks; Zeek `dns.log` as JSON with a DNS tunnel; an `nfdump -o csv` export with TCP/53
//! traffic that is not DNS; and `scope` joining a suspicious database session to the transfer
//! that followed it.

mod common;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use cellwarden_sim::Rng;
use common::*;

const DAY: i64 = 86_400;
const T0: i64 = 1_772_323_200; // 2026-03-01T00:00:00Z

const HEADER: &str = "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n#open\t2026-03-01-00-00-00\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents\n#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\tbool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]\n";

#[allow(clippy::too_many_arguments)]
fn conn(
    s: &mut String,
    t: i64,
    uid: u64,
    src: &str,
    dst: &str,
    port: u16,
    service: &str,
    dur: f64,
    out: u64,
) {
    let _ = writeln!(
        s,
        "{t}.{:06}\tC{uid:x}\t{src}\t{}\t{dst}\t{port}\ttcp\t{service}\t{dur:.3}\t{out}\t{}\tSF\tT\tF\t0\tShADadFf\t{}\t{}\t{}\t{}\t(empty)",
        uid % 1_000_000,
        40000 + uid % 20000,
        out / 40 + 100,
        out / 1400 + 1,
        out + 2000,
        out / 2000 + 1,
        out / 40 + 3000
    );
}

/// One day of conn.log rows.
fn day_rows(day: i64, r: &mut Rng, uid: &mut u64) -> String {
    let mut s = String::new();
    let base = T0 + day * DAY;
    let mut rows: Vec<(i64, String)> = Vec::new();
    let mut push = |t: i64, src: &str, dst: &str, port: u16, svc: &str, dur: f64, out: u64| {
        *uid += 1;
        let mut line = String::new();
        conn(&mut line, t, *uid, src, dst, port, svc, dur, out);
        rows.push((t, line));
    };
    // Workstations: web browsing at office hours to a pool of sites.
    for w in 0..20 {
        for _ in 0..30 {
            let t = base + 8 * 3600 + r.below(10 * 3600) as i64;
            let site = format!("93.184.{}.{}", r.below(4), 1 + r.below(50));
            push(
                t,
                &format!("10.1.0.{}", 10 + w),
                &site,
                443,
                "ssl",
                2.0,
                20_000 + r.below(200_000),
            );
        }
    }
    // The billing server: a little HTTPS to its vendor.
    push(
        base + 6 * 3600,
        "10.2.0.5",
        "203.0.113.1",
        443,
        "ssl",
        3.0,
        4_000_000 + r.below(1_000_000),
    );
    // Nightly backup: one stream of ~40 GiB to the offsite store.
    push(
        base + 3600,
        "10.2.0.9",
        "198.51.100.10",
        443,
        "ssl",
        2400.0,
        (40 << 30) + r.below(1 << 28),
    );
    // Night 20: the exfiltration, eight chunks of ~700 MiB within three hours.
    if day == 19 {
        for k in 0..8 {
            push(
                base + 2 * 3600 + k * 1300,
                "10.2.0.5",
                "203.0.113.66",
                443,
                "ssl",
                900.0,
                (700 << 20) + r.below(8 << 20),
            );
        }
    }
    rows.sort();
    for (_, l) in rows {
        s.push_str(&l);
        s.push('\n');
    }
    s
}

fn write_month(dir: &Path) {
    let mut r = Rng::new(11);
    let mut uid = 0;
    // Days 1–15 in one plain file of two parts (a second header after #close).
    let mut plain = String::from(HEADER);
    for day in 0..15 {
        if day == 8 {
            plain.push_str("#close\t2026-03-09-00-00-00\n");
            plain.push_str(HEADER);
        }
        plain.push_str(&day_rows(day, &mut r, &mut uid));
    }
    plain.push_str("#close\t2026-03-16-00-00-00\n");
    std::fs::write(dir.join("conn.01.log"), plain).unwrap();
    // Days 16–30 gzipped.
    let mut rest = String::from(HEADER);
    for day in 15..30 {
        rest.push_str(&day_rows(day, &mut r, &mut uid));
    }
    let f = std::fs::File::create(dir.join("conn.02.log.gz")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    gz.write_all(rest.as_bytes()).unwrap();
    gz.finish().unwrap();
}

fn net_alerts(out: &std::process::Output) -> Vec<serde_json::Value> {
    alerts(&stdout(out))
        .into_iter()
        .filter(|a| {
            a["rule_id"]
                .as_str()
                .unwrap()
                .starts_with("cellwarden.net.")
        })
        .collect()
}

#[test]
fn a_month_of_flows_the_exfiltration_alerts_the_backup_does_not() {
    let dir = tempfile::tempdir().unwrap();
    write_month(dir.path());
    let out = run(&["hunt", dir.path().to_str().unwrap(), "--format", "jsonl"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let a = net_alerts(&out);
    assert!(!a.is_empty(), "{err}");
    let mut rules: Vec<&str> = a.iter().map(|x| x["rule_id"].as_str().unwrap()).collect();
    rules.sort();
    rules.dedup();
    assert_eq!(
        rules,
        vec![
            "cellwarden.net.chunked_transfer",
            "cellwarden.net.new_destination",
            "cellwarden.net.volume_anomaly"
        ],
        "{a:#?}"
    );
    for x in &a {
        assert_eq!(x["event"]["src_ip"], "10.2.0.5");
        assert_eq!(x["event"]["dst_ip"], "203.0.113.66");
        assert_eq!(x["event"]["dst_port"], 443);
        assert!(x["event"]["bytes_out"].as_i64().unwrap() > 700 << 20);
        assert!(
            x["timestamp"]
                .as_str()
                .unwrap()
                .starts_with("2026-03-20T02:")
        );
        assert!(
            x["source_file"]
                .as_str()
                .unwrap()
                .ends_with("conn.02.log.gz")
        );
        assert!(!x["event"]["observed"].as_str().unwrap().is_empty());
        assert!(!x["event"]["expected"].as_str().unwrap().is_empty());
    }
    let chunk = a
        .iter()
        .find(|x| x["rule_id"] == "cellwarden.net.chunked_transfer")
        .unwrap();
    assert!(
        chunk["event"]["observed"]
            .as_str()
            .unwrap()
            .starts_with("8 chunks")
    );
    // Every row of the month was read (two parts, gzip).
    let rows: u64 = 30 * (20 * 30 + 2) + 8;
    assert!(err.contains(&format!("{rows} events")), "{err}");
}

#[test]
fn dns_tunnel_in_zeek_json_and_tcp53_in_nfdump_csv() {
    let dir = tempfile::tempdir().unwrap();
    let mut dns = String::new();
    for k in 0..400u64 {
        let label = format!(
            "{:016x}{:016x}",
            k.wrapping_mul(0x9E3779B97F4A7C15),
            k.wrapping_mul(0xC2B2AE3D27D4EB4F)
        );
        let _ = writeln!(
            dns,
            r#"{{"ts":{}.5,"uid":"D{k}","id_orig_h":"10.5.0.3","id_orig_p":5353,"id_resp_h":"10.0.0.53","id_resp_p":53,"proto":"udp","query":"{label}.x.exfil-cdn.net","qtype_name":"TXT","rcode_name":"NOERROR"}}"#,
            T0 + k as i64 * 7
        );
        let _ = writeln!(
            dns,
            r#"{{"ts":{}.5,"uid":"E{k}","id_orig_h":"10.5.0.4","id_orig_p":5353,"id_resp_h":"10.0.0.53","id_resp_p":53,"proto":"udp","query":"www.example.org","qtype_name":"A","rcode_name":"NOERROR"}}"#,
            T0 + k as i64 * 7
        );
    }
    std::fs::write(dir.path().join("dns.json"), dns).unwrap();
    let nf = "ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,opkt,obyt,in,out\n\
2026-03-02 01:00:00,2026-03-02 01:30:00,1800.000,10.6.0.1,198.51.100.53,41000,53,TCP,.AP.SF,0,0,9000,9437184,0,0,1,2\n\
2026-03-02 01:00:00,2026-03-02 01:00:01,1.000,10.6.0.2,198.51.100.53,41001,53,UDP,......,0,0,1,80,0,0,1,2\n\
Summary\n\
flows,bytes,packets,avg_bps,avg_pps,avg_bpp\n\
2,9437264,9001,41943,5,1048\n";
    std::fs::write(dir.path().join("flows.csv"), nf).unwrap();
    let out = run(&["hunt", dir.path().to_str().unwrap(), "--format", "jsonl"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let a = net_alerts(&out);
    let got: Vec<(String, String)> = a
        .iter()
        .map(|x| {
            (
                x["rule_id"].as_str().unwrap().to_owned(),
                x["event"]["src_ip"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "cellwarden.net.dns_tunnel".to_owned(),
                "10.5.0.3".to_owned()
            ),
            (
                "cellwarden.net.tcp53_not_dns".to_owned(),
                "10.6.0.1".to_owned()
            ),
        ],
        "{err}"
    );
    assert!(
        a[0]["event"]["observed"]
            .as_str()
            .unwrap()
            .contains("exfil-cdn.net")
    );
}

#[test]
fn scope_shows_where_the_data_went() {
    let dir = tempfile::tempdir().unwrap();
    let mut pg = String::new();
    // An account with five quiet days from its usual host, then a night from another one
    // reading three subscribers' CDRs, and the transfer that followed from that host.
    for day in 1..=5 {
        let _ = writeln!(
            pg,
            "2026-03-0{day} 10:00:00 UTC [1]: [1-1] user=rep,db=cdr,app=reporter,client=10.2.0.7 LOG:  AUDIT: SESSION,1,1,READ,SELECT,,,\"SELECT count(*) FROM cdr\",<none>"
        );
    }
    for (k, m) in ["33699990001", "33699990002", "33699990003"]
        .iter()
        .enumerate()
    {
        let _ = writeln!(
            pg,
            "2026-03-06 02:0{k}:00 UTC [1]: [1-1] user=rep,db=cdr,app=psql,client=10.2.0.77 LOG:  AUDIT: SESSION,1,1,READ,SELECT,,,\"SELECT * FROM cdr WHERE calling_number = '{m}'\",<none>"
        );
    }
    std::fs::write(dir.path().join("postgresql.log"), pg).unwrap();
    let mut c = String::from(HEADER);
    conn(
        &mut c,
        T0 + 5 * DAY + 3 * 3600,
        1,
        "10.2.0.77",
        "203.0.113.66",
        443,
        "ssl",
        600.0,
        900 << 20,
    );
    conn(
        &mut c,
        T0 + 9 * DAY,
        2,
        "10.2.0.77",
        "203.0.113.67",
        443,
        "ssl",
        1.0,
        1 << 20,
    );
    std::fs::write(dir.path().join("conn.log"), c).unwrap();
    let out = run(&["scope", dir.path().to_str().unwrap()]);
    let err = stderr(&out);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON report");
    assert_eq!(v["subscribers"].as_array().unwrap().len(), 3, "{err}");
    let ex = v["exfiltration"].as_array().unwrap();
    assert_eq!(ex.len(), 1, "only the transfer in the join window: {ex:#?}");
    assert_eq!(ex[0]["account"], "rep");
    assert_eq!(ex[0]["src_ip"], "10.2.0.77");
    assert_eq!(ex[0]["dst_ip"], "203.0.113.66");
    assert_eq!(ex[0]["bytes_out"], 900u64 << 20);
    assert_eq!(ex[0]["day"], "2026-03-06");
    let html = dir.path().join("r.html");
    run(&[
        "scope",
        dir.path().to_str().unwrap(),
        "--format",
        "html",
        "-o",
        html.to_str().unwrap(),
    ]);
    let page = std::fs::read_to_string(html).unwrap();
    assert!(page.contains("Where the data may have gone"));
    assert!(page.contains("203.0.113.66"));
}

/// One NetFlow v5 flow: (export time, src, dst, dport, bytes).
type V5 = (u32, [u8; 4], [u8; 4], u16, u32);

/// A pcap of NetFlow v5 export packets, one flow each.
fn v5_pcap(flows: &[V5]) -> Vec<u8> {
    let mut out = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for &(t, src, dst, dport, bytes) in flows {
        let mut p = vec![0, 5, 0, 1];
        p.extend_from_slice(&10_000u32.to_be_bytes());
        p.extend_from_slice(&t.to_be_bytes());
        p.extend_from_slice(&[0; 12]);
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(&[0; 8]);
        p.extend_from_slice(&(bytes / 1400).to_be_bytes());
        p.extend_from_slice(&bytes.to_be_bytes());
        p.extend_from_slice(&5_000u32.to_be_bytes());
        p.extend_from_slice(&10_000u32.to_be_bytes());
        p.extend_from_slice(&51000u16.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&[0, 0x18, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let mut pkt = vec![0u8; 12];
        pkt.extend_from_slice(&[0x08, 0x00]);
        let total = 28 + p.len();
        pkt.extend_from_slice(&[
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
        ]);
        pkt.extend_from_slice(&[192, 0, 2, 1, 10, 0, 0, 1]);
        let ulen = 8 + p.len();
        pkt.extend_from_slice(&[0x08, 0x00, 0x08, 0x07, (ulen >> 8) as u8, ulen as u8, 0, 0]);
        pkt.extend_from_slice(&p);
        out.extend_from_slice(&t.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(pkt.len() as u32).to_le_bytes());
        out.extend_from_slice(&(pkt.len() as u32).to_le_bytes());
        out.extend_from_slice(&pkt);
    }
    out
}

#[test]
fn netflow_v5_capture_is_read_and_judged() {
    let dir = tempfile::tempdir().unwrap();
    let t = (T0 + 2 * 3600) as u32;
    let flows: Vec<V5> = (0..5)
        .map(|k| {
            (
                t + k * 900,
                [10, 2, 0, 5],
                [203, 0, 113, 66],
                443,
                600_000_000 + k * 1000,
            )
        })
        .collect();
    std::fs::write(dir.path().join("export.pcap"), v5_pcap(&flows)).unwrap();
    let out = run(&["hunt", dir.path().to_str().unwrap(), "--format", "jsonl"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("5 events"), "{err}");
    let a = net_alerts(&out);
    assert_eq!(a.len(), 1, "{a:#?}");
    assert_eq!(a[0]["rule_id"], "cellwarden.net.chunked_transfer");
    assert_eq!(a[0]["source_record"], 1, "the packet of the first chunk");
    assert_eq!(a[0]["event"]["bytes_out"], 3_000_010_000u64);
}
