//! Fuzzing every reader (EVTX, JSON, auditd, syslog, the database audit formats, Zeek, nfdump,
//! NetFlow/IPFIX captures) from real samples, the simulator's output and the project's
//! fixtures. For each input: no panic, no input slower than its bound, memory within a bound of
//! its size, and for the line formats, the good records around a damaged one still read.
//! `FUZZ_SECS` sets the time per target (`bash bench/fuzz.sh` runs them longer).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cellwarden_source::{Collected, Format, Limits, Mapping, read_bytes};
use cellwarden_testkit::fuzz::{self, Target};

#[global_allocator]
static ALLOC: cellwarden_testkit::alloc::Counting = cellwarden_testkit::alloc::Counting;

/// One target at a time, so the allocator's peak is one target's.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Reads and decodes `bytes`; the record numbers of the events.
fn decode(bytes: &[u8], format: Option<Format>) -> Vec<u64> {
    let file: Arc<str> = Arc::from("fuzz");
    let mut c = Collected::default();
    let limits = Limits {
        max_record_bytes: 1 << 20,
        ..Limits::default()
    };
    read_bytes(&file, bytes, format, &limits, &mut c);
    let mut records = Vec::new();
    c.decode(&Mapping::builtin(), &mut |e| {
        records.push(e.origin.record);
        // Everything an event offers is read: values, lookups, owned copies.
        let _ = e.get_str("CommandLine");
        let _ = e.into_owned();
    });
    records
}

/// The simulator's logs, once per test binary.
fn simulated() -> &'static std::collections::BTreeMap<String, Vec<u8>> {
    static SIM: std::sync::OnceLock<std::collections::BTreeMap<String, Vec<u8>>> =
        std::sync::OnceLock::new();
    SIM.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let config = cellwarden_sim::SimConfig {
            seed: 3,
            subscribers: 500,
            days: 2,
            scenarios: vec![
                cellwarden_sim::Scenario::Softcell,
                cellwarden_sim::Scenario::Lightbasin,
            ],
        };
        cellwarden_sim::simulate(&config, dir.path()).unwrap();
        let mut out = std::collections::BTreeMap::new();
        // Files by their path under the simulation (`linux/dns-ext-01/audit.log`).
        fn walk(
            root: &std::path::Path,
            dir: &std::path::Path,
            out: &mut std::collections::BTreeMap<String, Vec<u8>>,
        ) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(root, &p, out);
                } else {
                    let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                    out.insert(rel, std::fs::read(&p).unwrap());
                }
            }
        }
        walk(dir.path(), dir.path(), &mut out);
        out
    })
}

/// The first `lines` lines of a text.
fn head(text: &[u8], lines: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for l in text.split_inclusive(|b| *b == b'\n').take(lines) {
        out.extend_from_slice(l);
    }
    out
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../cellwarden-sigma/tests/fixtures/events")
            .join(name),
    )
    .unwrap()
}

/// Fuzzes a reader: `format` forced or sniffed; with `around`, each input also goes (on one
/// line) between two good records of its format, which must both be read.
fn fuzz_reader(
    name: &str,
    seeds: Vec<Vec<u8>>,
    tokens: &[&[u8]],
    format: Option<Format>,
    around: Option<(&[u8], &[u8])>,
) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let report = fuzz::run(
        Target {
            name,
            seeds,
            tokens,
            max_time: Duration::from_secs(2),
            max_len: 256 * 1024,
            regressions: Some(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/fuzz-regressions")
                    .join(name),
            ),
        },
        |input| {
            let base = cellwarden_testkit::alloc::reset_peak();
            decode(input, format);
            let used = cellwarden_testkit::alloc::peak().saturating_sub(base);
            let bound = 64 * input.len() + (32 << 20);
            assert!(
                used <= bound,
                "{used} bytes for {} input bytes",
                input.len()
            );
            if let Some((before, after)) = around {
                let mut whole = before.to_vec();
                let body: Vec<u8> = input
                    .iter()
                    .map(|b| if *b == b'\n' || *b == b'\r' { b' ' } else { *b })
                    .collect();
                whole.extend_from_slice(&body);
                whole.push(b'\n');
                whole.extend_from_slice(after);
                let records = decode(&whole, format);
                assert!(
                    records.contains(&1),
                    "the record before is lost: {records:?}"
                );
                assert!(
                    records.contains(&3),
                    "the record after is lost: {records:?}"
                );
            }
        },
    );
    fuzz::say(name, report);
}

#[test]
fn fuzz_json() {
    let sim = simulated();
    let good = fixture("windows.jsonl");
    let lines: Vec<&[u8]> = good
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let mut seeds = vec![head(&good, 20), head(&sim["windows/events.jsonl"], 10)];
    // The same events as one array, and pretty-printed one after another.
    let objs: Vec<serde_json::Value> = lines
        .iter()
        .take(5)
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    seeds.push(serde_json::to_vec(&objs).unwrap());
    seeds.push(
        objs.iter()
            .map(|o| serde_json::to_string_pretty(o).unwrap())
            .collect::<Vec<_>>()
            .join("\n")
            .into_bytes(),
    );
    let before = [lines[0], b"\n"].concat();
    let after = [lines[1], b"\n"].concat();
    fuzz_reader(
        "json",
        seeds,
        &[
            b"{\"a\":",
            b"[",
            b"]",
            b"\\u0000",
            b"\\ud800",
            b"1e999",
            b"\"#attributes\"",
        ],
        Some(Format::Json),
        Some((&before, &after)),
    );
}

#[test]
fn fuzz_auditd() {
    let sim = simulated();
    let mut seeds = vec![fixture("linux-audit.log")];
    if let Some(a) = sim.iter().find(|(k, _)| k.ends_with("/audit.log")) {
        seeds.push(head(a.1, 40));
    }
    if let Some(d) =
        cellwarden_testkit::shared("real-formats/elastic-beats/filebeat/module/auditd/log/test")
    {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "log") {
                seeds.push(std::fs::read(e.path()).unwrap());
            }
        }
    }
    fuzz_reader(
        "auditd",
        seeds,
        &[
            b"type=EXECVE ",
            b"msg=audit(",
            b":1): ",
            b"a0=\"",
            b"a1=",
            b"node=x ",
            b"\x1d",
            b"argc=99 ",
        ],
        Some(Format::Auditd),
        Some((
            b"type=USER_LOGIN msg=audit(1772500000.000:1): pid=1 uid=0 auid=0 ses=1 msg='op=login acct=\"root\" exe=\"/usr/sbin/sshd\" hostname=? addr=10.0.0.9 terminal=ssh res=success'\n",
            b"type=USER_LOGIN msg=audit(1772500002.000:3): pid=1 uid=0 auid=0 ses=1 msg='op=login acct=\"root\" exe=\"/usr/sbin/sshd\" hostname=? addr=10.0.0.9 terminal=ssh res=success'\n",
        )),
    );
}

#[test]
fn fuzz_syslog() {
    let sim = simulated();
    let mut seeds = vec![fixture("linux.syslog")];
    if let Some(a) = sim.iter().find(|(k, _)| k.ends_with("/auth.log")) {
        seeds.push(a.1.clone());
    }
    seeds.push(b"<34>1 2026-03-04T10:00:00.000Z host sshd 1234 - - Accepted password for root from 10.0.0.9 port 22 ssh2\n".to_vec());
    if let Some(d) =
        cellwarden_testkit::shared("real-formats/elastic-beats/filebeat/module/system/auth/test")
    {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "log") {
                seeds.push(std::fs::read(e.path()).unwrap());
            }
        }
    }
    fuzz_reader(
        "syslog",
        seeds,
        &[
            b"<13>",
            b"sshd[12]: ",
            b"Accepted publickey for ",
            b"sudo: ",
            b" ; COMMAND=",
            b"Mar  4 ",
            b"\xc3\xa9",
        ],
        Some(Format::Syslog),
        Some((
            b"Mar  4 10:00:00 host sshd[1]: Accepted password for root from 10.0.0.9 port 22 ssh2\n",
            b"Mar  4 10:00:02 host sshd[1]: Accepted password for root from 10.0.0.9 port 22 ssh2\n",
        )),
    );
}

#[test]
fn fuzz_database_audit_formats() {
    let sim = simulated();
    let pg: &[u8] = b"2026-03-04 10:00:00.000000 UTC [5398]: [1-1] user=care01,db=billing,app=psql,client=10.1.0.21 LOG:  AUDIT: SESSION,1,1,READ,SELECT,,,\"SELECT * FROM customer WHERE msisdn = '33611111111'\",<not logged>\n";
    let pg_after: &[u8] = b"2026-03-04 10:00:02.000000 UTC [5398]: [3-1] user=care01,db=billing,app=psql,client=10.1.0.21 LOG:  AUDIT: SESSION,3,1,READ,SELECT,,,\"SELECT * FROM customer WHERE msisdn = '33611111112'\",<not logged>\n";
    fuzz_reader(
        "pgaudit",
        vec![head(&sim["db/postgresql-billing.log"], 60), pg.to_vec()],
        &[
            b"\"",
            b"\"\"",
            b"AUDIT: SESSION,",
            b"AUDIT: OBJECT,",
            b",<not logged>",
            b"\nDETAIL:  ",
            b"$1",
        ],
        Some(Format::PgLog),
        Some((pg, pg_after)),
    );
    fuzz_reader(
        "mysql-json-audit",
        vec![head(&sim["db/mysql-crm-audit.log"], 30)],
        &[b"\"query\":\"", b"\"sql_command\":", b"{", b"}", b"\\\""],
        Some(Format::Json),
        None,
    );
    let csvlog: &[u8] = b"2026-03-04 03:15:00.120 UTC,\"etl\",\"cdrdb\",4242,\"10.2.3.4:5123\",x,3,\"SELECT\",,,,LOG,00000,\"AUDIT: SESSION,1,1,READ,SELECT,,,x,<none>\"\n";
    let csvlog_after: &[u8] = b"2026-03-04 03:15:02.120 UTC,\"etl\",\"cdrdb\",4242,\"10.2.3.4:5123\",x,3,\"SELECT\",,,,LOG,00000,\"AUDIT: SESSION,3,1,READ,SELECT,,,y,<none>\"\n";
    fuzz_reader(
        "pg-csvlog",
        vec![[csvlog, csvlog_after].concat()],
        &[b"\"", b",", b"\"\"", b"AUDIT: "],
        Some(Format::PgCsv),
        Some((csvlog, csvlog_after)),
    );
    let maria: &[u8] = b"20261124 08:33:03,db1,care07,10.0.0.5,12,345,QUERY,crm,'SELECT 1',0\n";
    let maria_after: &[u8] =
        b"20261124 08:33:05,db1,care07,10.0.0.5,12,347,QUERY,crm,'SELECT 3',0\n";
    fuzz_reader(
        "mariadb-audit",
        vec![[maria, maria_after].concat()],
        &[b"'", b",", b"\\'", b"QUERY", b"CONNECT"],
        Some(Format::MariaDbAudit),
        Some((maria, maria_after)),
    );
    let xml: &[u8] = b"<AUDIT_RECORD NAME=\"Query\" RECORD=\"3_2026-03-04T09:00:00\" TIMESTAMP=\"2026-03-04T10:00:01 UTC\" COMMAND_CLASS=\"select\" CONNECTION_ID=\"7\" STATUS=\"0\" SQLTEXT=\"SELECT 1 &amp; 2&#10;\" USER=\"app[app] @ crm01 [10.2.3.4]\" HOST=\"crm01\" OS_USER=\"\" IP=\"10.2.3.4\" DB=\"cdrdb\"/>\n";
    let xml_after: &[u8] = b"<AUDIT_RECORD>\n  <NAME>Query</NAME>\n  <TIMESTAMP>2026-03-04T10:00:02 UTC</TIMESTAMP>\n  <CONNECTION_ID>7</CONNECTION_ID>\n  <SQLTEXT>SELECT 2</SQLTEXT>\n  <OS_LOGIN/>\n</AUDIT_RECORD>\n";
    fuzz_reader(
        "mysql-audit-xml",
        vec![
            [
                b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<AUDIT>\n",
                xml,
                xml_after,
            ]
            .concat(),
            xml_after.to_vec(),
        ],
        &[
            b"<AUDIT_RECORD",
            b"/>",
            b"</AUDIT_RECORD>",
            b"&#10;",
            b"&amp;",
            b"\"",
            b"<SQLTEXT>",
        ],
        Some(Format::MySqlAuditXml),
        Some((xml, xml_after)),
    );
    let ora: &[u8] = b"<AuditRecord><Audit_Type>1</Audit_Type><Session_Id>880042</Session_Id><StatementId>7</StatementId><Extended_Timestamp>2026-03-04T22:41:10.250000Z</Extended_Timestamp><DB_User>APP</DB_User><Userhost>10.6.6.6</Userhost><Action>3</Action><Sql_Bind> #1(11):33622222222</Sql_Bind><Sql_Text>SELECT * FROM cdr WHERE a = :1 AND b &gt; 0</Sql_Text></AuditRecord>\n";
    let ora_after: &[u8] = b"<AuditRecord><Audit_Type>1</Audit_Type><Session_Id>880042</Session_Id><StatementId>8</StatementId><Extended_Timestamp>2026-03-04T22:41:11.250000Z</Extended_Timestamp><DB_User>APP</DB_User>\n<Sql_Text>SELECT 1\nFROM dual</Sql_Text>\n</AuditRecord>\n";
    fuzz_reader(
        "oracle-xml",
        vec![
            [b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n  <Audit xmlns=\"http://xmlns.oracle.com/oracleas/schema/dbserver_audittrail-11_2.xsd\"\n   xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n   <Version>11.2</Version>\n", ora, ora_after, b"</Audit>\n"].concat(),
        ],
        &[b"<AuditRecord>", b"</AuditRecord>", b"<Sql_Text>", b"&gt;", b"&#10;", b"\n"],
        Some(Format::OracleAuditXml),
        Some((ora, ora_after)),
    );
    let pcsv: &[u8] = b"\"Query\",\"3_2026-03-04T09:00:00\",\"2026-03-04T10:00:01 UTC\",\"select\",\"7\",0,\"SELECT \"\"a\"\" FROM t\",\"app[app] @ crm01 [10.2.3.4]\",\"crm01\",\"\",\"10.2.3.4\",\"cdrdb\"\n";
    let pcsv_after: &[u8] = b"\"Quit\",\"4_2026-03-04T09:00:00\",\"2026-03-04T10:00:02 UTC\",\"7\",0,\"app\",\"app\",\"\",\"\",\"crm01\",\"10.2.3.4\",\"cdrdb\"\n";
    fuzz_reader(
        "percona-audit-csv",
        vec![
            [pcsv, pcsv_after].concat(),
            pcsv.iter()
                .map(|b| if *b == b' ' { b'\n' } else { *b })
                .collect(),
        ],
        &[b"\"", b",", b"\"\"", b"\"Query\",", b"\n"],
        Some(Format::PerconaAuditCsv),
        Some((pcsv, pcsv_after)),
    );
    let slow: &[u8] = b"# Time: 2026-03-04T10:00:00.000001Z\n# User@Host: app[app] @ crm [10.0.0.5]  Id:    12\n# Query_time: 0.1  Lock_time: 0.0 Rows_sent: 1  Rows_examined: 1\nSET timestamp=1772618400;\nSELECT * FROM cdr WHERE msisdn = '33611111111';\n";
    let slow_after: &[u8] = b"# Time: 2026-03-04T10:00:02.000001Z\n# User@Host: app[app] @ crm [10.0.0.5]  Id:    12\n# Query_time: 0.1  Lock_time: 0.0 Rows_sent: 1  Rows_examined: 1\nSET timestamp=1772618402;\nSELECT 3;\n";
    fuzz_reader(
        "mysql-slow",
        vec![[slow, slow_after].concat(), slow_after.to_vec()],
        &[
            b"# Time: ",
            b"# User@Host: ",
            b"Id:",
            b"[",
            b"]",
            b"\n",
            b"#",
        ],
        Some(Format::MySqlSlow),
        // A record is several lines: the check of the records around is for one-line records.
        None,
    );
    let general: &[u8] =
        b"2026-03-04T10:00:00.000001Z\t   12 Connect\tapp@10.0.0.5 on crm using TCP/IP\n";
    let general_after: &[u8] = b"2026-03-04T10:00:02.000001Z\t   12 Query\tSELECT 3\n";
    fuzz_reader(
        "mysql-general",
        vec![[general, general_after].concat()],
        &[
            b"\t",
            b" Connect\t",
            b" Query\t",
            b" Quit\t",
            b"@",
            b"191015  9:46:45",
        ],
        Some(Format::MySqlGeneral),
        Some((general, general_after)),
    );
    let error: &[u8] = b"2019-10-16 17:24:15 9 [Warning] Access denied for user 'app'@'10.0.0.5' (using password: YES)\n";
    let error_after: &[u8] =
        b"2019-10-16 17:24:17 0 [Note] InnoDB: Buffer pool(s) load completed\n";
    fuzz_reader(
        "mysql-error",
        vec![[error, error_after].concat()],
        &[b"[", b"]", b"'", b"@", b"161209 14:18:50", b"[MY-010116]"],
        Some(Format::MySqlError),
        Some((error, error_after)),
    );
    let oracle = b"EVENT_TIMESTAMP,DBUSERNAME,USERHOST,CLIENT_PROGRAM_NAME,ACTION_NAME,SQL_TEXT,SQL_BINDS,RETURN_CODE\n2026-03-04 10:04:00.000000,CARE03,10.1.0.23,sqlplus,SELECT,\"SELECT * FROM customer WHERE msisdn = :1\",\" #1(11):33633333333\",0\n";
    fuzz_reader(
        "oracle-csv",
        vec![oracle.to_vec()],
        &[b"\"", b",", b"\"\"", b"\n"],
        Some(Format::OracleCsv),
        None,
    );
}

fn walk(d: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn fuzz_flow_logs() {
    let sim = simulated();
    let mut seeds = vec![
        head(&sim["network/conn.log"], 40),
        head(&sim["network/dns.log"], 40),
    ];
    seeds.push(b"ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,opkt,obyt\n2026-03-04 10:00:00,2026-03-04 10:00:05,5.0,10.0.0.5,203.0.113.9,51000,443,TCP,.AP.SF,0,0,10,1000,0,0\nSummary\n".to_vec());
    if let Some(d) = cellwarden_testkit::shared("real-formats/zeek-zeek/testing") {
        for p in walk(&d)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .take(12)
        {
            seeds.push(head(&std::fs::read(&p).unwrap(), 60));
        }
    }
    fuzz_reader(
        "zeek-nfdump",
        seeds,
        &[
            b"#fields\t",
            b"#types\t",
            b"\t",
            b"-",
            b"(empty)",
            b"#close",
            b"#separator \\x09\n",
        ],
        None,
        None,
    );
}

/// A pcap (little-endian, raw IP) of UDP payloads.
fn pcap(payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut cap = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    cap.extend_from_slice(&65535u32.to_le_bytes());
    cap.extend_from_slice(&101u32.to_le_bytes());
    for p in payloads {
        let total = 28 + p.len();
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
        ip.extend_from_slice(&2055u16.to_be_bytes());
        ip.extend_from_slice(&2055u16.to_be_bytes());
        ip.extend_from_slice(&((8 + p.len()) as u16).to_be_bytes());
        ip.extend_from_slice(&[0, 0]);
        ip.extend_from_slice(p);
        cap.extend_from_slice(&1_772_323_200u32.to_le_bytes());
        cap.extend_from_slice(&0u32.to_le_bytes());
        cap.extend_from_slice(&(ip.len() as u32).to_le_bytes());
        cap.extend_from_slice(&(ip.len() as u32).to_le_bytes());
        cap.extend_from_slice(&ip);
    }
    cap
}

#[test]
fn fuzz_netflow_captures() {
    let v5 = {
        let mut p = vec![0, 5, 0, 1];
        p.extend_from_slice(&100_000u32.to_be_bytes());
        p.extend_from_slice(&1_772_323_200u32.to_be_bytes());
        p.extend_from_slice(&[0; 12]);
        p.extend_from_slice(&[10, 2, 0, 5, 203, 0, 113, 66, 0, 0, 0, 0, 0, 0, 0, 0]);
        p.extend_from_slice(&1000u32.to_be_bytes());
        p.extend_from_slice(&9_000u32.to_be_bytes());
        p.extend_from_slice(&40_000u32.to_be_bytes());
        p.extend_from_slice(&100_000u32.to_be_bytes());
        p.extend_from_slice(&[
            0xc7, 0x38, 0x01, 0xbb, 0, 0x18, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ]);
        p
    };
    let v9 = {
        let mut m = vec![0, 9, 0, 2];
        m.extend_from_slice(&100_000u32.to_be_bytes());
        m.extend_from_slice(&1_772_323_200u32.to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 7]);
        m.extend_from_slice(&[0, 0, 0, 20, 1, 0, 0, 3, 0, 8, 0, 4, 0, 12, 0, 4, 0, 1, 0, 4]);
        m.extend_from_slice(&[1, 0, 0, 16, 10, 0, 0, 1, 203, 0, 113, 9, 0, 0, 1, 0]);
        m
    };
    let ipfix = {
        let mut m = vec![0, 10, 0, 0];
        m.extend_from_slice(&1_772_323_200u32.to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 7]);
        m.extend_from_slice(&[0, 2, 0, 16, 1, 0, 0, 2, 0, 8, 0, 4, 0, 96, 0xff, 0xff]);
        m.extend_from_slice(&[1, 0, 0, 12, 10, 0, 0, 1, 3, b'a', b'b', b'c']);
        let len = m.len() as u16;
        m[2..4].copy_from_slice(&len.to_be_bytes());
        m
    };
    let cap = pcap(&[v5.clone(), v9.clone(), ipfix.clone(), v9, v5]);
    // The same packets as pcapng (raw IP interface).
    let ng = cellwarden_signal::encode::pcapng_of(&cap, 101);
    fuzz_reader(
        "netflow",
        vec![cap, ng, pcap(&[ipfix])],
        &[
            b"\x00\x09",
            b"\x00\x0a",
            b"\xff\xff",
            b"\x01\x00",
            b"\x00\x00\x00\x00",
        ],
        None,
        None,
    );
}

#[test]
fn fuzz_evtx() {
    // The EVTX samples are in the shared data only (the project writes none of its own).
    let Some(samples) = cellwarden_testkit::shared("evtx-attack-samples") else {
        return;
    };
    let mut seeds = Vec::new();
    for p in walk(&samples)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "evtx"))
        .take(3)
    {
        let b = std::fs::read(p).unwrap();
        // Header and first chunk.
        seeds.push(b[..b.len().min(4096 + 65536)].to_vec());
    }
    fuzz_reader(
        "evtx",
        seeds,
        &[
            b"ElfChnk\0",
            b"\x0f\x01\x01\x00",
            b"\x00\x00\x00\x00",
            b"\xff\xff\xff\xff",
        ],
        Some(Format::Evtx),
        None,
    );
}

/// Reading takes time linear in the input: many records, and one long record of many lines
/// (a quoted statement, counted line by line).
#[test]
fn readers_take_linear_time() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let sim = simulated();
    for (name, sample, format) in [
        ("json", fixture("windows.jsonl"), Format::Json),
        ("auditd", fixture("linux-audit.log"), Format::Auditd),
        ("syslog", fixture("linux.syslog"), Format::Syslog),
        (
            "pgaudit",
            head(&sim["db/postgresql-billing.log"], 50),
            Format::PgLog,
        ),
        ("zeek", sim["network/conn.log"].clone(), Format::ZeekTsv),
    ] {
        cellwarden_testkit::assert_linear(name, 200, |n| {
            let mut input = Vec::new();
            while input.len() < n * 200 {
                input.extend_from_slice(&sample);
            }
            decode(&input, Some(format));
        });
    }
    let open = b"2026-03-04 10:00:00.000000 UTC [5398]: [1-1] user=care01,db=billing,app=psql,client=10.1.0.21 LOG:  AUDIT: SESSION,1,1,READ,SELECT,,,\"SELECT * FROM customer WHERE msisdn IN (\n";
    cellwarden_testkit::assert_linear("a long quoted record", 2_000, |n| {
        let mut input = open.to_vec();
        for i in 0..n {
            input.extend_from_slice(format!("'336{i:08}',\n").as_bytes());
        }
        input.extend_from_slice(b"'0')\",<not logged>\n");
        decode(&input, Some(Format::PgLog));
    });
}
