//! Hostile input, end to end: what an attacker who can write one log line, one rule or one
//! file can make of the real binary. Each case names the defect it guards against; nothing
//! may panic, hang, blow memory or hide the good records around the bad one.

mod common;

use std::io::Write;

use common::*;

fn no_panic(err: &str) {
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("RUST_BACKTRACE"), "{err}");
}

const PG_GOOD: &str = "2026-03-04 10:00:00.000000 UTC [5398]: [1-1] user=care01,db=billing,app=psql,client=10.1.0.21 LOG:  AUDIT: SESSION,1,1,READ,SELECT,,,\"SELECT * FROM customer WHERE msisdn = '33611111111'\",<not logged>";

/// A SQL statement cut off inside a quote, in each database audit format: the run reads every
/// statement and exits normally (one such statement used to stop hunt, scope and watch).
#[test]
fn statements_cut_off_inside_a_quote_do_not_stop_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let pg = dir.path().join("postgresql.log");
    let mut f = std::fs::File::create(&pg).unwrap();
    writeln!(f, "{PG_GOOD}").unwrap();
    for sql in [
        "SELECT * FROM \"\"",
        "SELECT * FROM x WHERE msisdn = \"\"é",
        "SELECT $a$ééé",
    ] {
        writeln!(f, "2026-03-04 10:01:00.000000 UTC [5398]: [2-1] user=care01,db=billing,app=psql,client=10.1.0.21 LOG:  AUDIT: SESSION,1,2,READ,SELECT,,,\"{sql}\",<not logged>").unwrap();
    }
    writeln!(f, "{PG_GOOD}").unwrap();
    drop(f);
    let my = dir.path().join("mysql-audit.log");
    std::fs::write(
        &my,
        concat!(
            r#"{"timestamp":"2026-03-04 10:02:00","id":1,"class":"general","event":"status","connection_id":7,"account":{"user":"care02","host":"10.1.0.22"},"login":{"user":"care02","os":"","ip":"10.1.0.22","proxy":""},"general_data":{"command":"Query","sql_command":"select","query":"SELECT * FROM `","status":0}}"#,
            "\n",
            r#"{"timestamp":"2026-03-04 10:03:00","id":2,"class":"general","event":"status","connection_id":7,"account":{"user":"care02","host":"10.1.0.22"},"login":{"user":"care02","os":"","ip":"10.1.0.22","proxy":""},"general_data":{"command":"Query","sql_command":"select","query":"SELECT * FROM customer WHERE msisdn = '33622222222'","status":0}}"#,
            "\n"
        ),
    )
    .unwrap();
    let ora = dir.path().join("oracle-audit.csv");
    std::fs::write(
        &ora,
        "EVENT_TIMESTAMP,DBUSERNAME,USERHOST,CLIENT_PROGRAM_NAME,ACTION_NAME,SQL_TEXT,RETURN_CODE\n\
         2026-03-04 10:04:00.000000,CARE03,10.1.0.23,sqlplus,SELECT,\"SELECT * FROM customer WHERE msisdn = 'é\",0\n\
         2026-03-04 10:05:00.000000,CARE03,10.1.0.23,sqlplus,SELECT,\"SELECT * FROM customer WHERE msisdn = '33633333333'\",0\n",
    )
    .unwrap();
    let d = dir.path().to_str().unwrap();
    for cmd in ["hunt", "scope"] {
        let out = run(&[cmd, d]);
        let err = stderr(&out);
        no_panic(&err);
        assert_eq!(out.status.code(), Some(0), "{cmd}: {err}");
        if cmd == "scope" {
            assert!(err.contains("9 database statements"), "{err}");
        }
    }
}

/// An EVTX file header: magic, first and last chunk, next record id, header size, version,
/// header block size and the number of chunks written.
fn evtx_header(chunks: u16) -> Vec<u8> {
    let mut h = vec![0u8; 4096];
    h[..8].copy_from_slice(b"ElfFile\0");
    h[16..24].copy_from_slice(&u64::from(chunks.saturating_sub(1)).to_le_bytes());
    h[24..32].copy_from_slice(&1u64.to_le_bytes());
    h[32..36].copy_from_slice(&128u32.to_le_bytes());
    h[36..38].copy_from_slice(&1u16.to_le_bytes());
    h[38..40].copy_from_slice(&3u16.to_le_bytes());
    h[40..42].copy_from_slice(&4096u16.to_le_bytes());
    h[42..44].copy_from_slice(&chunks.to_le_bytes());
    h
}

/// An EVTX file whose header announces chunks the file does not hold (a copy cut at a chunk
/// boundary, or only its header) is an input error naming the missing chunks, not exit 0.
#[test]
fn evtx_files_cut_at_a_chunk_boundary_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let head = dir.path().join("header-only.evtx");
    std::fs::write(&head, evtx_header(3)).unwrap();
    let out = run(&["hunt", head.to_str().unwrap()]);
    let err = stderr(&out);
    no_panic(&err);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("header-only.evtx:offset 4096: file cut off: the header announces 3 chunks, the file holds 0"),
        "{err}"
    );
    // A real log cut after its second chunk: the two chunks' records are read, the rest is
    // reported as lost.
    let Some(samples) = shared("evtx-attack-samples") else {
        return;
    };
    let whole =
        std::fs::read(samples.join("AutomatedTestingTools/PanacheSysmon_vs_AtomicRedTeam01.evtx"))
            .unwrap();
    let cut = dir.path().join("cut.evtx");
    std::fs::write(&cut, &whole[..4096 + 2 * 65536]).unwrap();
    let out = run(&[
        "hunt",
        cut.to_str().unwrap(),
        "-r",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/never.yml"),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("the header announces 15 chunks, the file holds 2; the records of the 13 missing chunks are lost"), "{err}");
    assert!(err.contains("summary: 1 files, 87 events"), "{err}");
}

/// A rule nested thousands of flow collections deep (`[[[[…`: the YAML parser's time grows with
/// the square of the depth; 200 KB took over a minute) is refused before parsing, in
/// `rules check` and `hunt -r`, and the other rules still load.
#[test]
fn deeply_nested_rules_are_refused_before_parsing() {
    let dir = tempfile::tempdir().unwrap();
    let n = 100_000;
    std::fs::write(
        dir.path().join("deep.yml"),
        format!(
            "title: deep\nlogsource: {{product: windows}}\ndetection:\n  sel:\n    a: {}{}\n  condition: sel\n",
            "[".repeat(n),
            "]".repeat(n)
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("tagged.yml"),
        format!(
            "title: tagged\nlogsource: {{product: windows}}\ndetection:\n  sel:\n    a: {}\n  condition: sel\n",
            "!t [".repeat(n)
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("fine.yml"),
        "title: fine\nid: 9d1f4a2e-0000-4000-8000-000000000001\nlogsource: {product: windows, category: process_creation}\ndetection:\n  sel:\n    Image|endswith: ['\\rar.exe', '\\7z.exe']\n  condition: sel\nlevel: low\n",
    )
    .unwrap();
    let rules = dir.path().to_str().unwrap();
    let out = run(&["rules", "check", rules]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(
        text.contains(
            "deep.yml:5: invalid: flow collections nested deeper than 32 levels at line 5"
        ),
        "{text}"
    );
    assert!(text.contains("tagged.yml:5: invalid"), "{text}");
    assert!(text.contains("1 rules loaded"), "{text}");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/demo.jsonl");
    let out = run(&["hunt", example, "-r", rules]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("rules: 1 loaded, 0 unsupported, 2 invalid"),
        "{}",
        stderr(&out)
    );
}

/// Runs the binary with its data segment (heap and private mappings) capped at `mib` MiB:
/// past the cap an allocation fails and the run dies, so a run that ends well stayed within it.
fn run_within(mib: u64, args: &[&str]) -> std::process::Output {
    std::process::Command::new("prlimit")
        .arg(format!("--data={}", mib << 20))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_cellwarden"))
        .args(args)
        .output()
        .expect("prlimit (util-linux) runs")
}

/// gzip of `n` bytes of `prefix` followed by zeros.
fn gzip_of(prefix: &[u8], zeros: usize) -> Vec<u8> {
    let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    g.write_all(prefix).unwrap();
    let block = vec![0u8; 1 << 20];
    let mut left = zeros;
    while left > 0 {
        let k = left.min(block.len());
        g.write_all(&block[..k]).unwrap();
        left -= k;
    }
    g.finish().unwrap()
}

/// Compressed files are not inflated into memory: a `.evtx.gz` whose content is not EVTX is
/// refused on its first bytes, and a `.pcap.gz` is read as a stream (1 GB of zeros from 4.7 MB
/// of gzip used to take 1 GB of memory).
#[test]
fn gzip_bombs_stay_small() {
    let dir = tempfile::tempdir().unwrap();
    let evtx = dir.path().join("zeros.evtx.gz");
    std::fs::write(&evtx, gzip_of(b"", 256 << 20)).unwrap();
    let mut pcap_header = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    pcap_header.extend_from_slice(&65535u32.to_le_bytes());
    pcap_header.extend_from_slice(&1u32.to_le_bytes());
    let pcap = dir.path().join("zeros.pcap.gz");
    std::fs::write(&pcap, gzip_of(&pcap_header, 256 << 20)).unwrap();
    let out = run_within(96, &["hunt", evtx.to_str().unwrap()]);
    let err = stderr(&out);
    no_panic(&err);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("zeros.evtx.gz:offset 0: named as EVTX but its content is not (it starts with 00 00 00 00"), "{err}");
    let out = run_within(96, &["hunt", pcap.to_str().unwrap()]);
    let err = stderr(&out);
    no_panic(&err);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("errors: 0"), "{err}");
}

/// IPFIX packets whose records are 8 bytes each (one template, every data set full): each
/// record becomes a flow event, 30 times its size. The capture is decoded as a stream, so a
/// run's memory does not grow with it (a 61.5 MB capture used to take 2.47 GB).
#[test]
fn a_netflow_capture_is_decoded_in_bounded_memory() {
    let ipfix = |sets: &[u8]| -> Vec<u8> {
        let mut m = vec![0, 10];
        m.extend_from_slice(&((16 + sets.len()) as u16).to_be_bytes());
        m.extend_from_slice(&1_772_323_200u32.to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 7]);
        m.extend_from_slice(sets);
        m
    };
    let template = {
        let mut t = vec![0, 2, 0, 16, 1, 0, 0, 2];
        t.extend_from_slice(&[0, 8, 0, 4, 0, 12, 0, 4]);
        t
    };
    let data = {
        let records = 8000;
        let mut d = vec![1, 0];
        d.extend_from_slice(&((4 + records * 8) as u16).to_be_bytes());
        for k in 0..records as u32 {
            d.extend_from_slice(&[10, 1, (k >> 8) as u8, k as u8, 203, 0, 113, 9]);
        }
        d
    };
    let mut cap = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    cap.extend_from_slice(&65535u32.to_le_bytes());
    cap.extend_from_slice(&101u32.to_le_bytes()); // raw IP
    let packet = |payload: &[u8]| -> Vec<u8> {
        let total = 28 + payload.len();
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
        ip.extend_from_slice(&[192, 0, 2, 1, 10, 0, 0, 9]);
        ip.extend_from_slice(&4739u16.to_be_bytes());
        ip.extend_from_slice(&4739u16.to_be_bytes());
        ip.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        ip.extend_from_slice(&[0, 0]);
        ip.extend_from_slice(payload);
        let mut rec = Vec::new();
        rec.extend_from_slice(&1_772_323_200u32.to_le_bytes());
        rec.extend_from_slice(&0u32.to_le_bytes());
        rec.extend_from_slice(&(ip.len() as u32).to_le_bytes());
        rec.extend_from_slice(&(ip.len() as u32).to_le_bytes());
        rec.extend_from_slice(&ip);
        rec
    };
    cap.extend(packet(&ipfix(&template)));
    let full = packet(&ipfix(&data));
    for _ in 0..120 {
        cap.extend_from_slice(&full);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crafted.pcap");
    std::fs::write(&path, &cap).unwrap();
    assert!(cap.len() > 7 << 20);
    let out = run_within(
        160,
        &[
            "hunt",
            path.to_str().unwrap(),
            "-r",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/never.yml"),
        ],
    );
    let err = stderr(&out);
    no_panic(&err);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("960000 events"), "{err}");
}

/// Many matching records: `hunt` keeps its alerts within `--alert-memory` (sorted runs in
/// temporary files, merged at output) and writes exactly what it writes with them all in
/// memory (1 GB of matching lines used to take 2.8 GB).
#[test]
fn alerts_past_the_memory_budget_are_sorted_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.jsonl");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let pad = "x".repeat(300);
    for i in 0..120_000u32 {
        writeln!(
            f,
            r##"{{"Event":{{"System":{{"Provider":{{"#attributes":{{"Name":"Microsoft-Windows-Sysmon"}}}},"EventID":1,"TimeCreated":{{"#attributes":{{"SystemTime":"2026-03-02T{:02}:{:02}:{:02}.000000Z"}}}},"EventRecordID":{i},"Channel":"Microsoft-Windows-Sysmon/Operational","Computer":"web-portal-01.corp.example"}},"EventData":{{"Image":"C:\\Windows\\System32\\cmd.exe","CommandLine":"cmd.exe /c whoami {pad}","ParentImage":"C:\\Windows\\System32\\inetsrv\\w3wp.exe","User":"IIS APPPOOL\\portal"}}}}}}"##,
            (i * 7) % 24,
            (i * 13) % 60,
            (i * 31) % 60
        )
        .unwrap();
    }
    drop(f);
    let p = path.to_str().unwrap();
    let bounded = dir.path().join("bounded.jsonl");
    let out = run_within(
        112,
        &[
            "hunt",
            p,
            "--format",
            "jsonl",
            "--alert-memory",
            "8",
            "-o",
            bounded.to_str().unwrap(),
        ],
    );
    let err = stderr(&out);
    no_panic(&err);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("alerts: 120000"), "{err}");
    let whole = run(&["hunt", p, "--format", "jsonl"]);
    assert_eq!(whole.status.code(), Some(0));
    assert!(
        std::fs::read(&bounded).unwrap() == whole.stdout,
        "the bounded run writes the same alerts in the same order"
    );
}
