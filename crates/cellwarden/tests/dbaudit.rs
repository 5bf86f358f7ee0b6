//! Database audit logs end to end: a PostgreSQL server log with pgaudit records (one spanning
//! several lines) is sniffed, read, mapped to `category: database`, and hunted.

mod common;

use common::*;

const LOG: &str = r#"2026-03-04 03:12:08.001 UTC [12345] LOG:  connection received: host=10.20.30.40 port=51000
2026-03-04 03:12:09.123 UTC [12345] billing_ro@cdrdb LOG:  AUDIT: SESSION,7,1,READ,SELECT,,,"SELECT * FROM cdr WHERE msisdn = '33612345678'",<not logged>
2026-03-04 03:15:00.000 UTC [4242] etl@cdrdb LOG:  AUDIT: SESSION,9,1,READ,SELECT,TABLE,public.cdr,"SELECT calling_number, cell_id
  FROM cdr
  WHERE calling_number IN ('33611111111')",<not logged>
2026-03-04 03:16:00.000 UTC [4242] etl@cdrdb LOG:  AUDIT: SESSION,10,1,READ,COPY,,,"COPY cdr TO '/tmp/x.csv'",<not logged>
"#;

const RULE: &str = "title: Records read by IN list
id: 11111111-2222-4333-8444-555555555555
logsource: {category: database}
detection:
  sel:
    statement|contains|all: ['FROM cdr', ' IN (']
  condition: sel
level: high
";

#[test]
fn pgaudit_records_are_hunted() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("postgresql-2026-03-04.log");
    std::fs::write(&log, LOG).unwrap();
    let rule = dir.path().join("r.yml");
    std::fs::write(&rule, RULE).unwrap();
    let out = run(&[
        "hunt",
        log.to_str().unwrap(),
        "-r",
        rule.to_str().unwrap(),
        "--format",
        "jsonl",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    // The connection line is an event too (a session tied to its client host).
    assert!(err.contains("4 events"), "{err}");
    let all = alerts(&stdout(&out));
    // The database-access analytics run in `hunt` too: the COPY of a record table to a file
    // is a bulk export, explained against the account's (empty) history.
    let export: Vec<_> = all
        .iter()
        .filter(|a| a["rule_id"] == "cellwarden.db.bulk_export")
        .collect();
    assert_eq!(export.len(), 1, "{all:?}");
    assert_eq!(export[0]["event"]["account"], "etl");
    assert_eq!(export[0]["event"]["table"], "cdr");
    assert_eq!(export[0]["source_record"], 6);
    assert!(
        export[0]["event"]["observed"]
            .as_str()
            .unwrap()
            .contains("copy_to of cdr")
    );
    let a: Vec<_> = all
        .into_iter()
        .filter(|a| a["rule_id"] != "cellwarden.db.bulk_export")
        .collect();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0]["source_record"], 3, "the record's first line");
    assert_eq!(a[0]["event"]["user"], "etl");
    assert_eq!(a[0]["event"]["object_name"], "public.cdr");
    assert!(
        a[0]["event"]["statement"]
            .as_str()
            .unwrap()
            .contains("\n  WHERE calling_number")
    );
    assert_eq!(a[0]["logsource"]["categories"][0], "database");
}

/// The events `cellwarden events` reads from `args`.
fn events_of(args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["events"];
    all.extend_from_slice(args);
    let out = run(&all);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The `Channel` of each event.
fn channels_of(events: &[serde_json::Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["fields"]["Channel"].as_str().unwrap())
        .collect()
}

/// What `cellwarden scope` says on standard error for `args`, and its JSON report.
fn scope_report(dir: &std::path::Path, args: &[&str]) -> (String, serde_json::Value) {
    let report = dir.join("scope.json");
    let mut all = vec!["scope", "-o", report.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = run(&all);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let r = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    (err, r)
}

/// The subscribers `cellwarden scope` reports for `args`, sorted.
fn scope_ids(dir: &std::path::Path, args: &[&str]) -> Vec<String> {
    let (_, r) = scope_report(dir, args);
    let mut ids: Vec<String> = r["subscribers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// A syslog file `messages` holding `text` in `dir`; its path.
fn syslog_file(dir: &std::path::Path, text: &str) -> String {
    let log = dir.join("messages");
    std::fs::write(&log, text).unwrap();
    log.to_str().unwrap().to_owned()
}

/// PostgreSQL with `log_destination = syslog`: lines written by PostgreSQL 15.18 with pgaudit
/// through syslog(3), as rsyslog files them (RFC 3164), `log_line_prefix = '%m [%p] %q%u@%d
/// %r '`. `[seq]` before each message; `[seq-chunk]` on the pieces of a message split at its
/// line breaks (each piece after the first starts with the server's tab) or at 900 bytes (the
/// piece starts with the blank it was cut at); another program's line after them.
const SYSLOG: &str = r#"Dec  7 01:28:17 dbhost postgres[26005]: [7-1] 2026-12-07 01:28:17.187 UTC [26005] [unknown]@[unknown] 127.0.0.1(48972) LOG:  connection received: host=127.0.0.1 port=48972
Dec  7 01:28:17 dbhost postgres[26005]: [8-1] 2026-12-07 01:28:17.188 UTC [26005] postgres@postgres 127.0.0.1(48972) LOG:  connection authorized: user=postgres database=postgres application_name=psql
Dec  7 01:28:17 dbhost postgres[26005]: [9-1] 2026-12-07 01:28:17.205 UTC [26005] postgres@postgres 127.0.0.1(48972) LOG:  AUDIT: SESSION,1,1,WRITE,INSERT,,,"INSERT INTO cdr VALUES ('33612345678','33699999999',1);",<not logged>
Dec  7 01:28:17 dbhost postgres[26005]: [10-1] 2026-12-07 01:28:17.206 UTC [26005] postgres@postgres 127.0.0.1(48972) LOG:  AUDIT: SESSION,2,1,READ,SELECT,,,SELECT * FROM cdr WHERE calling_number = '33612345678';,<not logged>
Dec  7 01:28:17 dbhost postgres[26005]: [11-1] 2026-12-07 01:28:17.207 UTC [26005] postgres@postgres 127.0.0.1(48972) LOG:  AUDIT: SESSION,3,1,READ,SELECT,,,"SELECT c.*
Dec  7 01:28:17 dbhost postgres[26005]: [11-2] 	  FROM cdr c
Dec  7 01:28:17 dbhost postgres[26005]: [11-3] 	 WHERE c.calling_number = '33699999999';",<not logged>
Dec  7 01:28:17 dbhost postgres[26005]: [12-1] 2026-12-07 01:28:17.208 UTC [26005] postgres@postgres 127.0.0.1(48972) LOG:  AUDIT: SESSION,4,1,READ,SELECT,,,"SELECT * FROM cdr WHERE called_number = '33655555555' AND cell_id IN
Dec  7 01:28:17 dbhost postgres[26005]: [12-2]  (1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63,64,65,66,67,68,69,70,71,72,73,74,75,76,77,78,79,80,81,82,83,84,85,86,87,88,89,90,91,92,93,94,95,96,97,98,99,100,101,102,103,104,105,106,107,108,109,110,111,112,113,114,115,116,117,118,119,120,121,122,123,124,125,126,127,128,129,130,131,132,133,134,135,136,137,138,139,140,141,142,143,144,145,146,147,148,149,150,151,152,153,154,155,156,157,158,159,160,161,162,163,164,165,166,167,168,169,170,171,172,173,174,175,176,177,178,179,180,181,182,183,184,185,186,187,188,189,190,191,192,193,194,195,196,197,198,199,200,201,202,203,204,205,206,207,208,209,210);",<not logged>
Dec  7 01:28:17 dbhost su[26003]: pam_unix(su:session): session closed for user postgres
"#;

/// The same server with PostgreSQL's default `log_line_prefix = '%m [%p] '` and
/// `log_connections`, `log_disconnections`: the user, client host and program come from the
/// backend's connection records (lines as the server wrote them).
const SYSLOG_DEFAULT_PREFIX: &str = r#"Dec  7 02:11:39 dbhost postgres[27802]: [7-1] 2026-12-07 02:11:39.413 UTC [27802] LOG:  connection received: host=127.0.0.1 port=44820
Dec  7 02:11:39 dbhost postgres[27802]: [8-1] 2026-12-07 02:11:39.414 UTC [27802] LOG:  connection authorized: user=postgres database=postgres application_name=psql
Dec  7 02:11:39 dbhost postgres[27802]: [9-1] 2026-12-07 02:11:39.426 UTC [27802] LOG:  AUDIT: SESSION,1,1,READ,SELECT,,,SELECT * FROM cdr WHERE calling_number = '33612345678';,<not logged>
Dec  7 02:11:39 dbhost postgres[27802]: [10-1] 2026-12-07 02:11:39.426 UTC [27802] LOG:  AUDIT: SESSION,2,1,READ,SELECT,,,"SELECT c.*
Dec  7 02:11:39 dbhost postgres[27802]: [10-2] 	  FROM cdr c
Dec  7 02:11:39 dbhost postgres[27802]: [10-3] 	 WHERE c.calling_number = '33699999999';",<not logged>
Dec  7 02:11:39 dbhost postgres[27802]: [11-1] 2026-12-07 02:11:39.427 UTC [27802] LOG:  disconnection: session time: 0:00:00.013 user=postgres database=postgres host=127.0.0.1 port=44820
"#;

const RSYSLOG: &str = r#"2026-03-01T11:00:00.250000+00:00 billing-db2 postgres[5000]: [12-1] user=app,db=cdrdb,client=10.30.5.99 LOG:  statement: SELECT * FROM location WHERE imsi = '208150000000001'
2026-03-01T11:00:01.500000+00:00 billing-db2 cron[77]: (root) CMD (run-parts /etc/cron.hourly)
"#;

/// The same through journald (`journalctl -o json`): one piece per record.
const JOURNAL: &str = r#"{"__REALTIME_TIMESTAMP":"1772359201123456","_HOSTNAME":"billing-db3","SYSLOG_IDENTIFIER":"postgres","_PID":"6000","MESSAGE":"[3-1] user=app,db=cdrdb,client=10.30.5.99 LOG:  AUDIT: SESSION,1,1,READ,SELECT,,,\"SELECT * FROM cdr WHERE calling_number = '33677777777'\",<not logged>","PRIORITY":"6"}
"#;

#[test]
fn postgresql_logging_to_syslog_is_read_as_its_own_log() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("messages"), dir.path().join("db2.log"));
    std::fs::write(&a, SYSLOG).unwrap();
    std::fs::write(&b, RSYSLOG).unwrap();
    let c = dir.path().join("journal.json");
    std::fs::write(&c, JOURNAL).unwrap();
    let (a, b, c) = (
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        c.to_str().unwrap(),
    );
    let events = events_of(&[a, b, c, "--year", "2026"]);
    let db: Vec<_> = events
        .iter()
        .filter(|e| e["logsource"]["categories"][0] == "database")
        .collect();
    let audit: Vec<_> = db
        .iter()
        .filter(|e| e["fields"]["Channel"] == "pgaudit")
        .collect();
    assert_eq!(audit.len(), 5, "{events:#?}");
    // The pieces are one statement, as the server's own log file has it; pid, host and time
    // from the prefix, else from syslog.
    assert_eq!(
        audit[2]["fields"]["statement"],
        "SELECT c.*\n\t  FROM cdr c\n\t WHERE c.calling_number = '33699999999';"
    );
    let long = audit[3]["fields"]["statement"].as_str().unwrap();
    assert!(long.ends_with(",208,209,210);"), "{long}");
    assert!(long.contains(" AND cell_id IN (1,2,3,"), "{long}");
    assert_eq!(audit[2]["fields"]["pid"], 26005);
    assert_eq!(audit[2]["fields"]["client_host"], "127.0.0.1");
    assert_eq!(audit[2]["host"], "dbhost");
    assert_eq!(audit[2]["timestamp"], "2026-12-07T01:28:17.207000Z");
    let rsyslog = db.iter().find(|e| e["host"] == "billing-db2").unwrap();
    assert_eq!(rsyslog["fields"]["pid"], 5000);
    assert_eq!(rsyslog["fields"]["client_host"], "10.30.5.99");
    assert_eq!(rsyslog["timestamp"], "2026-03-01T11:00:00.250000Z");
    let journal = audit[4];
    assert_eq!(journal["host"], "billing-db3");
    assert_eq!(journal["fields"]["pid"], 6000);
    assert_eq!(journal["timestamp"], "2026-03-01T10:00:01.123456Z");
    // The other programs' lines stay syslog events.
    let programs: Vec<_> = events
        .iter()
        .filter(|e| e["logsource"]["categories"][0] != "database")
        .map(|e| e["fields"]["program"].as_str().unwrap())
        .collect();
    assert_eq!(programs, ["su", "cron"], "{events:#?}");

    let ids = scope_ids(
        dir.path(),
        &[
            a,
            b,
            c,
            "--host",
            "127.0.0.1",
            "--host",
            "10.30.5.99",
            "--year",
            "2026",
        ],
    );
    assert_eq!(
        ids,
        [
            "208150000000001",
            "33612345678",
            "33655555555",
            "33677777777",
            "33699999999"
        ]
    );

    // A piece that another line separates from its message is not joined: the record is
    // reported, not read cut.
    let lines: Vec<&str> = SYSLOG.lines().collect();
    let apart = dir.path().join("apart.log");
    let text = [lines[4], lines[9], lines[5], lines[6]].join("\n");
    std::fs::write(&apart, text).unwrap();
    let report = dir.path().join("apart.json");
    let (apart, report) = (apart.to_str().unwrap(), report.to_str().unwrap());
    let out = run(&["scope", apart, "--year", "2026", "-o", report]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("apart.log:1: not a whole PostgreSQL record (a syslog piece of it did not"),
        "{err}"
    );
    assert!(err.contains("errors: 1 (syntax 1)"), "{err}");
}

/// MariaDB 10.11's `server_audit` with `server_audit_output_type = syslog`, as rsyslog files
/// it (lines written by the server through syslog(3)): the file record without its time.
const MARIADB_SYSLOG: &str = r#"Dec  7 01:37:42 dbhost mysql-server_auditing:  vm,root,localhost,3,0,CONNECT,,,0
Dec  7 01:37:42 dbhost mysql-server_auditing:  vm,root,localhost,3,1,QUERY,,'CREATE DATABASE cdrdb',0
Dec  7 01:37:42 dbhost mysql-server_auditing:  vm,root,localhost,3,4,QUERY,cdrdb,'SELECT * FROM cdrdb.cdr WHERE calling_number=\'33612345678\'',0
Dec  7 01:37:42 dbhost mysql-server_auditing:  vm,root,localhost,3,5,QUERY,cdrdb,'SELECT \'it\'\'s\', "a,b" FROM cdrdb.cdr WHERE calling_number = \'33699999999\'',0
Dec  7 01:37:42 dbhost mysql-server_auditing:  vm,root,localhost,3,0,DISCONNECT,,,0
Dec  7 01:37:43 dbhost sshd[999]: Accepted password for root from 10.0.0.1 port 22 ssh2
"#;

#[test]
fn mariadb_audit_through_syslog_is_read_as_its_own_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = syslog_file(dir.path(), MARIADB_SYSLOG);
    let log = log.as_str();
    let events = events_of(&[log, "--year", "2026"]);
    let channels = channels_of(&events);
    assert_eq!(
        channels,
        [
            "mariadb_audit",
            "mariadb_audit",
            "mariadb_audit",
            "mariadb_audit",
            "mariadb_audit",
            "syslog/sshd"
        ]
    );
    let select = &events[3];
    assert_eq!(
        select["fields"]["statement"],
        "SELECT 'it''s', \"a,b\" FROM cdrdb.cdr WHERE calling_number = '33699999999'"
    );
    assert_eq!(select["fields"]["user"], "root");
    assert_eq!(select["fields"]["session_id"], "3");
    assert_eq!(select["fields"]["database"], "cdrdb");
    assert_eq!(select["host"], "dbhost");
    assert_eq!(select["timestamp"], "2026-12-07T01:37:42.000000Z");
    assert_eq!(select["logsource"]["categories"][0], "database");

    let ids = scope_ids(dir.path(), &[log, "--account", "root", "--year", "2026"]);
    assert_eq!(ids, ["33612345678", "33699999999"]);
    // `-o -` is standard output, not a file named `-`.
    let out = run(&[
        "scope",
        log,
        "--account",
        "root",
        "--year",
        "2026",
        "-o",
        "-",
    ]);
    let r: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(r["subscribers"].as_array().unwrap().len(), 2);
    assert!(!std::path::Path::new("-").exists());

    // The same records as the plugin writes them to its file: the server names itself
    // there, and that name is the events' host, as the syslog header's is above.
    let file: String = MARIADB_SYSLOG
        .lines()
        .filter_map(|l| l.split_once("mysql-server_auditing:  "))
        .map(|(_, body)| format!("20261207 01:37:42,{body}\n"))
        .collect();
    let audit = dir.path().join("server_audit.log");
    std::fs::write(&audit, file).unwrap();
    let events = events_of(&[audit.to_str().unwrap()]);
    assert_eq!(events.len(), 5);
    assert!(events.iter().all(|e| e["host"] == "vm"), "{events:#?}");
}

#[test]
fn postgresql_logging_to_syslog_with_the_default_prefix_is_tied_to_its_connection() {
    let dir = tempfile::tempdir().unwrap();
    let log = syslog_file(dir.path(), SYSLOG_DEFAULT_PREFIX);
    let log = log.as_str();
    let events = events_of(&[log, "--year", "2026"]);
    let audit: Vec<_> = events
        .iter()
        .filter(|e| e["fields"]["Channel"] == "pgaudit")
        .collect();
    assert_eq!(audit.len(), 2, "{events:#?}");
    for e in &audit {
        assert_eq!(e["fields"]["user"], "postgres");
        assert_eq!(e["fields"]["client_host"], "127.0.0.1");
        assert_eq!(e["fields"]["client_port"], "44820");
        assert_eq!(e["fields"]["application"], "psql");
        assert_eq!(e["fields"]["pid"], 27802);
    }
    let ids = scope_ids(dir.path(), &[log, "--host", "127.0.0.1", "--year", "2026"]);
    assert_eq!(ids, ["33612345678", "33699999999"]);
}

/// Percona Server's audit log in its default format (`audit_log_format = OLD`), laid out as
/// the plugin's format strings write it: an attribute a line, `/>` alone, values escaped
/// (`&apos;`, `&#10;` for a line break). Written here from the plugin's source (no Percona
/// server here).
const PERCONA_OLD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<AUDIT>
<AUDIT_RECORD
  NAME="Audit"
  RECORD="1_2026-03-04T09:00:00"
  TIMESTAMP="2026-03-04T09:00:00 UTC"
  MYSQL_VERSION="8.0.36-28"
  STARTUP_OPTIONS="--user=mysql"
  OS_VERSION="x86_64-Linux"
/>
<AUDIT_RECORD
  NAME="Connect"
  RECORD="2_2026-03-04T09:00:00"
  TIMESTAMP="2026-03-04T10:00:00 UTC"
  CONNECTION_ID="7"
  STATUS="0"
  USER="app"
  PRIV_USER="app"
  OS_LOGIN=""
  PROXY_USER=""
  HOST="crm01"
  IP="10.2.3.4"
  DB="cdrdb"
/>
<AUDIT_RECORD
  NAME="Query"
  RECORD="3_2026-03-04T09:00:00"
  TIMESTAMP="2026-03-04T10:00:01 UTC"
  COMMAND_CLASS="select"
  CONNECTION_ID="7"
  STATUS="0"
  SQLTEXT="SELECT * FROM cdr WHERE calling_number = &apos;33611111111&apos;&#10;ORDER BY start_time"
  USER="app[app] @ crm01 [10.2.3.4]"
  HOST="crm01"
  OS_USER=""
  IP="10.2.3.4"
  DB="cdrdb"
/>
<AUDIT_RECORD
  NAME="Query"
  RECORD="4_2026-03-04T09:00:00"
  TIMESTAMP="2026-03-04T23:10:00 UTC"
  COMMAND_CLASS="select"
  CONNECTION_ID="9"
  STATUS="0"
  SQLTEXT="select imei, cell_id from location where msisdn in (&apos;33622222222&apos;, &apos;33633333333&apos;)"
  USER="app[app] @  [10.66.6.6]"
  HOST=""
  OS_USER=""
  IP="10.66.6.6"
  DB="cdrdb"
/>
"#;

/// A record the end of a file cut (copied while written).
const PERCONA_CUT: &str = r#"<AUDIT_RECORD
  NAME="Query"
  RECORD="5_2026-03-04T09:00:00"
  TIMESTAMP="2026-03-04T23:11:00 UTC"
  COMMAND_CLASS="select"
  CONNECTION_ID="9"
"#;

/// MySQL Enterprise Audit in its default format (`audit_log_format = NEW`), as the MySQL
/// manual shows it: an element a field, empty ones closed in place, the connection's
/// attributes nested. Written here from the manual (no MySQL Enterprise server here).
const MYSQL_NEW: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<AUDIT>
 <AUDIT_RECORD>
  <TIMESTAMP>2026-03-05T08:00:00 UTC</TIMESTAMP>
  <RECORD_ID>2_2026-03-05T07:00:00</RECORD_ID>
  <NAME>Connect</NAME>
  <CONNECTION_ID>11</CONNECTION_ID>
  <STATUS>0</STATUS>
  <STATUS_CODE>0</STATUS_CODE>
  <USER>dba</USER>
  <OS_LOGIN/>
  <HOST>jump01</HOST>
  <IP>10.9.9.9</IP>
  <COMMAND_CLASS>connect</COMMAND_CLASS>
  <CONNECTION_TYPE>SSL/TLS</CONNECTION_TYPE>
  <CONNECTION_ATTRIBUTES>
   <ATTRIBUTE>
    <NAME>_pid</NAME>
    <VALUE>42794</VALUE>
   </ATTRIBUTE>
   <ATTRIBUTE>
    <NAME>program_name</NAME>
    <VALUE>mysql</VALUE>
   </ATTRIBUTE>
  </CONNECTION_ATTRIBUTES>
  <PRIV_USER>dba</PRIV_USER>
  <PROXY_USER/>
  <DB>cdrdb</DB>
 </AUDIT_RECORD>
 <AUDIT_RECORD>
  <TIMESTAMP>2026-03-05T08:00:05 UTC</TIMESTAMP>
  <RECORD_ID>3_2026-03-05T07:00:00</RECORD_ID>
  <NAME>Query</NAME>
  <CONNECTION_ID>11</CONNECTION_ID>
  <STATUS>0</STATUS>
  <STATUS_CODE>0</STATUS_CODE>
  <USER>dba[dba] @ jump01 [10.9.9.9]</USER>
  <OS_LOGIN/>
  <HOST>jump01</HOST>
  <IP>10.9.9.9</IP>
  <COMMAND_CLASS>select</COMMAND_CLASS>
  <SQLTEXT>SELECT d.imei FROM device d WHERE d.msisdn = '33644444444' AND d.active &gt; 0</SQLTEXT>
 </AUDIT_RECORD>
 <AUDIT_RECORD>
  <TIMESTAMP>2026-03-05T08:00:09 UTC</TIMESTAMP>
  <RECORD_ID>4_2026-03-05T07:00:00</RECORD_ID>
  <NAME>Query</NAME>
  <CONNECTION_ID>11</CONNECTION_ID>
  <STATUS>1146</STATUS>
  <STATUS_CODE>1</STATUS_CODE>
  <USER>dba[dba] @ jump01 [10.9.9.9]</USER>
  <OS_LOGIN/>
  <HOST>jump01</HOST>
  <IP>10.9.9.9</IP>
  <COMMAND_CLASS>select</COMMAND_CLASS>
  <SQLTEXT>SELECT * FROM no_such_table WHERE msisdn = '33655555555'</SQLTEXT>
 </AUDIT_RECORD>
</AUDIT>
"#;

/// The same in Percona's CSV format (`audit_log_format = CSV`), as its format strings write
/// it: no header, quotes doubled, a statement's line break kept inside its quotes. Written
/// here from the plugin's source.
const PERCONA_CSV: &str = r#""Audit","1_2026-03-04T09:00:00","2026-03-04T09:00:00 UTC","8.0.36-28","--user=mysql","x86_64-Linux"
"Connect","2_2026-03-04T09:00:00","2026-03-04T10:00:00 UTC","7",0,"app","app","","","crm01","10.2.3.4","cdrdb"
"Query","3_2026-03-04T09:00:00","2026-03-04T10:00:01 UTC","select","7",0,"SELECT * FROM cdr WHERE calling_number = '33611111111'
ORDER BY start_time","app[app] @ crm01 [10.2.3.4]","crm01","","10.2.3.4","cdrdb"
"Query","4_2026-03-04T09:00:00","2026-03-04T23:10:00 UTC","select","9",0,"select imei, cell_id, ""x"" from location where msisdn in ('33622222222', '33633333333')","app[app] @  [10.66.6.6]","","","10.66.6.6","cdrdb"
"#;

#[test]
fn mysql_and_percona_xml_and_csv_audit_logs_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let percona = dir.path().join("audit.log");
    std::fs::write(&percona, PERCONA_OLD).unwrap();
    let percona = percona.to_str().unwrap();
    let events = events_of(&[percona]);
    assert_eq!(events.len(), 4, "{events:#?}");
    let query = &events[2];
    assert_eq!(query["source_record"], 25);
    assert_eq!(
        query["fields"]["statement"],
        "SELECT * FROM cdr WHERE calling_number = '33611111111'\nORDER BY start_time"
    );
    assert_eq!(query["fields"]["user"], "app");
    assert_eq!(query["fields"]["client_host"], "10.2.3.4");
    assert_eq!(query["fields"]["session_id"], "7");
    assert_eq!(query["timestamp"], "2026-03-04T10:00:01.000000Z");
    assert_eq!(query["logsource"]["categories"][0], "database");
    // A record the end of the file cut is reported with its first line, not read; the
    // records before it are.
    let cut = dir.path().join("audit-cut.log");
    std::fs::write(&cut, format!("{PERCONA_OLD}{PERCONA_CUT}")).unwrap();
    let out = run(&["events", cut.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("audit-cut.log:53: not a whole MySQL/Percona XML audit record"),
        "{err}"
    );
    assert_eq!(stdout(&out).lines().count(), 4);

    let ids = scope_ids(dir.path(), &[percona, "--account", "app"]);
    assert_eq!(ids, ["33611111111", "33622222222", "33633333333"]);
    let ids = scope_ids(dir.path(), &[percona, "--host", "10.66.6.6"]);
    assert_eq!(ids, ["33622222222", "33633333333"]);

    let csv = dir.path().join("audit.csv");
    std::fs::write(&csv, PERCONA_CSV).unwrap();
    let csv = csv.to_str().unwrap();
    let events = events_of(&[csv]);
    assert_eq!(events.len(), 4);
    assert_eq!(events[2]["source_record"], 3);
    assert_eq!(
        events[2]["fields"]["statement"],
        "SELECT * FROM cdr WHERE calling_number = '33611111111'\nORDER BY start_time"
    );
    let ids = scope_ids(dir.path(), &[csv, "--account", "app"]);
    assert_eq!(ids, ["33611111111", "33622222222", "33633333333"]);
    let ids = scope_ids(dir.path(), &[csv, "--host", "10.66.6.6"]);
    assert_eq!(ids, ["33622222222", "33633333333"]);

    let mysql = dir.path().join("audit-new.log");
    std::fs::write(&mysql, MYSQL_NEW).unwrap();
    let mysql = mysql.to_str().unwrap();
    let events = events_of(&[mysql]);
    assert_eq!(events.len(), 3);
    assert_eq!(events[0]["fields"]["application"], "mysql");
    assert_eq!(events[0]["fields"]["audit_record.name"], "Connect");
    assert_eq!(
        events[1]["fields"]["statement"],
        "SELECT d.imei FROM device d WHERE d.msisdn = '33644444444' AND d.active > 0"
    );
    assert_eq!(events[2]["fields"]["return_code"], "1146");
    // The failed statement read nothing.
    let ids = scope_ids(dir.path(), &[mysql, "--account", "dba"]);
    assert_eq!(ids, ["33644444444"]);
}

/// MySQL Enterprise Audit in JSON with the `log_all` filter: a pretty-printed array where a
/// statement comes once as `general` and once per table as `table_access`. Written here in
/// the shape of the MySQL manual's examples (no MySQL Enterprise server here).
const MYSQL_JSON_LOG_ALL: &str = r#"[
  {
    "timestamp": "2026-10-03 13:50:01",
    "id": 0,
    "class": "audit",
    "event": "startup",
    "connection_id": 0,
    "startup_data": { "server_id": 1,
                      "os_version": "i686-Linux",
                      "mysql_version": "8.0.36-log",
                      "args": ["/usr/local/mysql/bin/mysqld",
                               "--loose-audit-log-format=JSON",
                               "--log-error=log.err",
                               "--pid-file=mysqld.pid",
                               "--port=3306" ] }
  },
  {
    "timestamp": "2026-10-03 15:02:32",
    "id": 0,
    "class": "connection",
    "event": "connect",
    "connection_id": 21,
    "account": { "user": "app", "host": "crm01" },
    "login": { "user": "app", "os": "", "ip": "10.2.3.4", "proxy": "" },
    "connection_data": { "connection_type": "ssl",
                         "status": 0,
                         "db": "cdrdb",
                         "connection_attributes": {
                           "_pid": "43236",
                           "_os": "macos10.14",
                           "_platform": "x86_64",
                           "_client_version": "8.0.18",
                           "_client_name": "libmysql",
                           "program_name": "crm-backend"
                         }
                       }
  },
  {
    "timestamp": "2026-10-03 15:02:33",
    "id": 1,
    "class": "general",
    "event": "status",
    "connection_id": 21,
    "account": { "user": "app", "host": "crm01" },
    "login": { "user": "app", "os": "", "ip": "10.2.3.4", "proxy": "" },
    "general_data": { "command": "Query",
                      "sql_command": "select",
                      "query": "SELECT * FROM cdr WHERE calling_number = '33611111111'",
                      "status": 0 }
  },
  {
    "timestamp": "2026-10-03 15:02:33",
    "id": 2,
    "class": "table_access",
    "event": "read",
    "connection_id": 21,
    "account": { "user": "app", "host": "crm01" },
    "login": { "user": "app", "os": "", "ip": "10.2.3.4", "proxy": "" },
    "table_access_data": { "db": "cdrdb",
                           "table": "cdr",
                           "query": "SELECT * FROM cdr WHERE calling_number = '33611111111'",
                           "sql_command": "select" }
  }
]
"#;

#[test]
fn mysql_table_access_records_do_not_count_a_statement_twice() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.json");
    std::fs::write(&log, MYSQL_JSON_LOG_ALL).unwrap();
    let log = log.to_str().unwrap();
    let (err, r) = scope_report(dir.path(), &[log, "--account", "app"]);
    assert!(err.contains("1 database statements"), "{err}");
    assert!(
        err.contains("sql: 1 audit records repeated a statement"),
        "{err}"
    );
    let subs = r["subscribers"].as_array().unwrap();
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0]["id"], "33611111111");
    assert_eq!(subs[0]["statements"], 1);
    assert_eq!(subs[0]["client_hosts"][0], "10.2.3.4");
}

/// A MySQL Enterprise Audit log (`log_all`, JSON Lines) of many megabytes, so that `hunt`
/// reads it in several units that different workers decode: 40 sessions at once, each
/// statement's per-table records written as it runs and its `general` record at its end,
/// with other sessions' records between them, and some statements run again at once. Every
/// statement counts once, whatever the number of threads, and the report is the same.
#[test]
fn statements_straddling_units_count_once_with_any_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let mut seed: u64 = 7;
    let mut next = |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    // Per session: its records still to write.
    let mut queues: Vec<std::collections::VecDeque<String>> = vec![Default::default(); 40];
    let mut out = String::new();
    let (mut statements, mut id, mut second) = (0u64, 0u64, 0u64);
    while statements < 9_000 || queues.iter().any(|q| !q.is_empty()) {
        let c = next(40) as usize;
        if queues[c].is_empty() && statements < 9_000 {
            statements += 1;
            let sql = format!(
                "SELECT * FROM cdr c JOIN device d ON d.imsi = c.imsi WHERE c.calling_number = '336{:08}'",
                next(1000)
            );
            // One statement in ten is run again at once, as its own statement.
            let runs = if next(10) == 0 { 2 } else { 1 };
            statements += runs - 1;
            for _ in 0..runs {
                for table in ["cdr", "device", ""] {
                    queues[c].push_back(format!("{sql}\u{0}{table}"));
                }
            }
        }
        let Some(item) = queues[c].pop_front() else {
            continue;
        };
        let (sql, table) = item.split_once('\u{0}').unwrap();
        id += 1;
        second += next(2);
        let time = format!(
            "2026-10-03 {:02}:{:02}:{:02}",
            8 + second / 3600,
            second / 60 % 60,
            second % 60
        );
        let head = format!(
            r#""timestamp": "{time}", "id": {id}, "connection_id": {c}, "account": {{"user": "app", "host": "crm{c}"}}, "login": {{"user": "app", "os": "", "ip": "10.2.3.{c}", "proxy": ""}}"#
        );
        out += &if table.is_empty() {
            format!(
                r#"{{{head}, "class": "general", "event": "status", "general_data": {{"command": "Query", "sql_command": "select", "query": "{sql}", "status": 0}}}}"#
            )
        } else {
            format!(
                r#"{{{head}, "class": "table_access", "event": "read", "table_access_data": {{"db": "cdrdb", "table": "{table}", "query": "{sql}", "sql_command": "select"}}}}"#
            )
        };
        out.push('\n');
    }
    assert!(out.len() > 8 << 20, "several units: {} bytes", out.len());
    std::fs::write(&log, out).unwrap();
    let log = log.to_str().unwrap();
    let mut reports = Vec::new();
    for threads in ["1", "2", "4"] {
        let (err, r) = scope_report(dir.path(), &[log, "--account", "app", "--threads", threads]);
        assert!(
            err.contains(&format!("{statements} database statements")),
            "{threads} threads: {err}"
        );
        reports.push(r);
    }
    assert_eq!(reports[0], reports[1]);
    assert_eq!(reports[0], reports[2]);
}

/// Percona's audit log filter component in its full event mode (and builds before 8.4.9),
/// old-style XML: one statement is `Command Start`, `Query` (received), `Query Start`, `Query
/// Status End`, `Query` (done) and `Command End`, the four in between with its text. Written
/// here in the shape of the examples in Percona's documentation (no Percona server here), with
/// a statement that reads a subscriber's records, run twice.
const PERCONA_FILTER_FULL: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<AUDIT>
  <AUDIT_RECORD
    NAME="Command Start"
    RECORD_ID="1_2026-03-29T11:15:53"
    TIMESTAMP="2026-03-29T11:15:53"
    STATUS="0"
    CONNECTION_ID="11"
    COMMAND_CLASS="query"/>
  <AUDIT_RECORD
    NAME="Query"
    RECORD_ID="2_2026-03-29T11:15:53"
    TIMESTAMP="2026-03-29T11:15:53"
    COMMAND_CLASS="select"
    CONNECTION_ID="11"
    HOST="crm01"
    IP="10.2.3.4"
    USER="app[app] @ crm01 [10.2.3.4]"
    OS_LOGIN=""
    SQLTEXT="SELECT * FROM cdr WHERE calling_number = &apos;33611111111&apos;"
    STATUS="0"/>
  <AUDIT_RECORD
    NAME="Query Start"
    RECORD_ID="3_2026-03-29T11:15:53"
    TIMESTAMP="2026-03-29T11:15:53"
    STATUS="0"
    CONNECTION_ID="11"
    COMMAND_CLASS="select"
    SQLTEXT="SELECT * FROM cdr WHERE calling_number = &apos;33611111111&apos;"/>
  <AUDIT_RECORD
    NAME="Query Status End"
    RECORD_ID="4_2026-03-29T11:15:53"
    TIMESTAMP="2026-03-29T11:15:53"
    STATUS="0"
    CONNECTION_ID="11"
    COMMAND_CLASS="select"
    SQLTEXT="SELECT * FROM cdr WHERE calling_number = &apos;33611111111&apos;"/>
  <AUDIT_RECORD
    NAME="Query"
    RECORD_ID="5_2026-03-29T11:15:53"
    TIMESTAMP="2026-03-29T11:15:53"
    COMMAND_CLASS="select"
    CONNECTION_ID="11"
    HOST="crm01"
    IP="10.2.3.4"
    USER="app[app] @ crm01 [10.2.3.4]"
    OS_LOGIN=""
    SQLTEXT="SELECT * FROM cdr WHERE calling_number = &apos;33611111111&apos;"
    STATUS="0"/>
  <AUDIT_RECORD
    NAME="Command End"
    RECORD_ID="6_2026-03-29T11:15:53"
    TIMESTAMP="2026-03-29T11:15:53"
    STATUS="0"
    CONNECTION_ID="11"
    COMMAND_CLASS="query"/>
"#;

#[test]
fn percona_filter_lifecycle_records_count_one_statement() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit_filter.log");
    // The same statement run twice: two statements of four records with text each.
    let second = PERCONA_FILTER_FULL
        .split_once("<AUDIT>\n")
        .unwrap()
        .1
        .replace("_2026-03-29T11:15:53\"", "_2026-03-29T11:15:54\"")
        .replace(
            "TIMESTAMP=\"2026-03-29T11:15:53\"",
            "TIMESTAMP=\"2026-03-29T11:15:54\"",
        );
    std::fs::write(&log, format!("{PERCONA_FILTER_FULL}{second}</AUDIT>\n")).unwrap();
    let log = log.to_str().unwrap();
    let (err, r) = scope_report(dir.path(), &[log, "--account", "app"]);
    assert!(err.contains("2 database statements"), "{err}");
    assert!(
        err.contains("sql: 6 audit records repeated a statement"),
        "{err}"
    );
    let subs = r["subscribers"].as_array().unwrap();
    assert_eq!(subs.len(), 1, "{r:#}");
    assert_eq!(subs[0]["id"], "33611111111");
    assert_eq!(subs[0]["statements"], 2);
}

/// Percona's audit log filter in JSON (`audit_log_filter.format=JSON`), in the shape of its
/// documented example: a pretty-printed array; a statement as `general` `log`, `query`
/// `query_start`, `query` `query_status_end` and `general` `status`. A filter that logs only
/// the `connection` and `query` classes writes the two `query` records alone, which name the
/// connection and no account: its `connect` record names it.
fn percona_filter_json(full: bool) -> String {
    let account = r#""account": { "user": "app[app] @ crm01 [10.2.3.4]", "host": "crm01" },
    "login": { "user": "app[app] @ crm01 [10.2.3.4]", "os": "", "ip": "10.2.3.4", "proxy": "" },"#;
    let general = |id: u32, event: &str, q: &str| {
        format!(
            r#"  {{
    "timestamp": "2026-03-29 11:17:05",
    "id": {id},
    "class": "general",
    "event": "{event}",
    "connection_id": 11,
    {account}
    "general_data": {{ "command": "Query", "sql_command": "select", "query": "{q}", "status": 0 }}
  }}"#
        )
    };
    let query = |id: u32, event: &str, q: &str| {
        format!(
            r#"  {{
    "timestamp": "2026-03-29 11:17:05",
    "id": {id},
    "class": "query",
    "event": "{event}",
    "connection_id": 11,
    "query_data": {{ "query": "{q}", "status": 0, "sql_command": "select" }}
  }}"#
        )
    };
    let mut records = vec![format!(
        r#"  {{
    "timestamp": "2026-03-29 11:17:04",
    "id": 0,
    "class": "connection",
    "event": "connect",
    "connection_id": 11,
    {account}
    "connection_data": {{ "connection_type": "tcp/ip", "status": 0, "db": "cdrdb" }}
  }}"#
    )];
    let mut id = 1;
    for n in ["33611111111", "33622222222", "33611111111"] {
        let q = format!("SELECT * FROM cdr WHERE calling_number = '{n}'");
        if full {
            records.push(general(id, "log", &q));
        }
        records.push(query(id + 1, "query_start", &q));
        records.push(query(id + 2, "query_status_end", &q));
        if full {
            records.push(general(id + 3, "status", &q));
        }
        id += 4;
    }
    format!("[\n{}\n]\n", records.join(",\n"))
}

#[test]
fn percona_filter_json_query_records_count_each_statement_once() {
    for full in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit_filter.json");
        std::fs::write(&log, percona_filter_json(full)).unwrap();
        let log = log.to_str().unwrap();
        let (err, r) = scope_report(dir.path(), &[log]);
        assert!(err.contains("3 database statements"), "{full}: {err}");
        let repeats = if full { 9 } else { 3 };
        assert!(
            err.contains(&format!(
                "sql: {repeats} audit records repeated a statement"
            )),
            "{full}: {err}"
        );
        let (err, r2) = scope_report(dir.path(), &[log, "--account", "app"]);
        let ids: Vec<&str> = r2["subscribers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap())
            .collect();
        // The `query` records name no account: they have their connection's.
        assert_eq!(ids, ["33611111111", "33622222222"], "{full}: {err}");
        let (_, by_host) = scope_report(dir.path(), &[log, "--host", "10.2.3.4"]);
        assert_eq!(by_host["subscribers"], r2["subscribers"], "{full}");
        assert_eq!(r["summary"]["statements_with_subscribers"], 3, "{r:#}");
    }
}

/// Percona's audit plugin logging to syslog (`audit_log_handler = SYSLOG`): the record in the
/// configured format as the message, tagged `percona-audit`, no pid; rsyslog writes a
/// message's line breaks as `#012`. JSON, CSV and old-style XML, written here from the
/// plugin's source, among another program's lines.
const PERCONA_SYSLOG: &str = r##"Mar  4 10:00:01 db7 percona-audit: {"audit_record":{"name":"Query","record":"3_2026-03-04T09:00:00","timestamp":"2026-03-04T10:00:01 UTC","command_class":"select","connection_id":"7","status":0,"sqltext":"SELECT * FROM cdr WHERE calling_number = '33611111111'","user":"app[app] @ crm01 [10.2.3.4]","host":"crm01","os_user":"","ip":"10.2.3.4","db":"cdrdb"}}
Mar  4 23:10:00 db7 percona-audit: "Query","4_2026-03-04T09:00:00","2026-03-04T23:10:00 UTC","select","9",0,"select imei from location#012where msisdn = '33622222222'","app[app] @  [10.66.6.6]","","","10.66.6.6","cdrdb"
Mar  4 23:10:05 db7 percona-audit: <AUDIT_RECORD#012  NAME="Query"#012  RECORD="5_2026-03-04T09:00:00"#012  TIMESTAMP="2026-03-04T23:10:05 UTC"#012  COMMAND_CLASS="select"#012  CONNECTION_ID="9"#012  STATUS="0"#012  SQLTEXT="select * from device where msisdn = &apos;33633333333&apos;"#012  USER="app[app] @  [10.66.6.6]"#012  HOST=""#012  OS_USER=""#012  IP="10.66.6.6"#012  DB="cdrdb"#012/>
Mar  4 23:11:00 db7 sshd[999]: Accepted password for root from 10.0.0.1 port 22 ssh2
"##;

#[test]
fn percona_audit_through_syslog_is_read_as_its_own_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = syslog_file(dir.path(), PERCONA_SYSLOG);
    let log = log.as_str();
    let events = events_of(&[log, "--year", "2026"]);
    let channels = channels_of(&events);
    assert_eq!(
        channels,
        ["mysql_audit", "mysql_audit", "mysql_audit", "syslog/sshd"]
    );
    assert!(
        events[..3].iter().all(|e| e["host"] == "db7"),
        "{events:#?}"
    );
    assert_eq!(
        events[1]["fields"]["statement"],
        "select imei from location\nwhere msisdn = '33622222222'"
    );
    assert_eq!(events[2]["fields"]["client_host"], "10.66.6.6");
    let ids = scope_ids(dir.path(), &[log, "--account", "app", "--year", "2026"]);
    assert_eq!(ids, ["33611111111", "33622222222", "33633333333"]);
    let ids = scope_ids(dir.path(), &[log, "--host", "10.66.6.6", "--year", "2026"]);
    assert_eq!(ids, ["33622222222", "33633333333"]);
}

/// Oracle's XML audit trail (`AUDIT_TRAIL = XML, EXTENDED`, and a fine-grained policy to XML),
/// written here in the layout of real `audit_file_dest` files: the namespaced `<Audit>` root
/// over several lines, each `<AuditRecord>` on one line up to its binds and its statement,
/// which keeps its own line breaks; one statement on two objects is two records.
const ORACLE_XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
  <Audit xmlns="http://xmlns.oracle.com/oracleas/schema/dbserver_audittrail-11_2.xsd"
   xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
   xsi:schemaLocation="http://xmlns.oracle.com/oracleas/schema/dbserver_audittrail-11_2.xsd">
   <Version>11.2</Version>
<AuditRecord><Audit_Type>1</Audit_Type><Session_Id>880042</Session_Id><StatementId>1</StatementId><EntryId>1</EntryId><Extended_Timestamp>2026-03-04T22:40:00.120000Z</Extended_Timestamp><DB_User>BILLING_APP</DB_User><OS_User>svc</OS_User><Userhost>10.66.6.6</Userhost><OS_Process>4242</OS_Process><Terminal>unknown</Terminal><Instance_Number>0</Instance_Number><Action>100</Action><Returncode>0</Returncode><Scn>5120001</Scn><DBID>2290451172</DBID></AuditRecord>
<AuditRecord><Audit_Type>1</Audit_Type><Session_Id>880042</Session_Id><StatementId>7</StatementId><EntryId>2</EntryId><Extended_Timestamp>2026-03-04T22:41:10.250000Z</Extended_Timestamp><DB_User>BILLING_APP</DB_User><OS_User>svc</OS_User><Userhost>10.66.6.6</Userhost><OS_Process>4242</OS_Process><Terminal>unknown</Terminal><Instance_Number>0</Instance_Number><Object_Schema>BILLING</Object_Schema><Object_Name>CDR</Object_Name><Action>3</Action><Returncode>0</Returncode><Scn>5120050</Scn><DBID>2290451172</DBID>
<Sql_Bind> #1(11):33622222222</Sql_Bind>
<Sql_Text>SELECT c.*, s.imsi
  FROM billing.cdr c JOIN billing.subscriber s ON s.msisdn = c.calling_number
 WHERE c.calling_number = :1 AND c.duration &gt; 0</Sql_Text>
</AuditRecord>
<AuditRecord><Audit_Type>1</Audit_Type><Session_Id>880042</Session_Id><StatementId>7</StatementId><EntryId>3</EntryId><Extended_Timestamp>2026-03-04T22:41:10.250100Z</Extended_Timestamp><DB_User>BILLING_APP</DB_User><OS_User>svc</OS_User><Userhost>10.66.6.6</Userhost><OS_Process>4242</OS_Process><Terminal>unknown</Terminal><Instance_Number>0</Instance_Number><Object_Schema>BILLING</Object_Schema><Object_Name>SUBSCRIBER</Object_Name><Action>3</Action><Returncode>0</Returncode><Scn>5120050</Scn><DBID>2290451172</DBID>
<Sql_Bind> #1(11):33622222222</Sql_Bind>
<Sql_Text>SELECT c.*, s.imsi
  FROM billing.cdr c JOIN billing.subscriber s ON s.msisdn = c.calling_number
 WHERE c.calling_number = :1 AND c.duration &gt; 0</Sql_Text>
</AuditRecord>
<AuditRecord><Audit_Type>2</Audit_Type><Session_Id>880042</Session_Id><StatementId>9</StatementId><EntryId>4</EntryId><Extended_Timestamp>2026-03-04T22:42:00.000000Z</Extended_Timestamp><DB_User>BILLING_APP</DB_User><OS_User>svc</OS_User><Userhost>10.66.6.6</Userhost><OS_Process>4242</OS_Process><Instance_Number>0</Instance_Number><Object_Schema>BILLING</Object_Schema><Object_Name>LOCATION</Object_Name><Policy_Name>FGA_LOCATION</Policy_Name><Stmt_Type>1</Stmt_Type><Scn>5120060</Scn><DBID>2290451172</DBID>
<Sql_Text>select cell_id, lac from billing.location where msisdn in (&apos;33633333333&apos;, &apos;33644444444&apos;)</Sql_Text>
</AuditRecord>
"#;

#[test]
fn oracle_xml_audit_trail_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("orcl_ora_4242_1.xml");
    std::fs::write(&log, ORACLE_XML).unwrap();
    let log = log.to_str().unwrap();
    let events = events_of(&[log]);
    assert_eq!(channels_of(&events), ["oracle_audit"; 4]);
    assert_eq!(events[0]["fields"]["command"], "LOGON");
    let read = &events[1]["fields"];
    assert_eq!(read["user"], "BILLING_APP");
    assert_eq!(read["client_host"], "10.66.6.6");
    assert_eq!(read["session_id"], "880042");
    assert_eq!(read["command"], "SELECT");
    assert_eq!(read["object_name"], "BILLING.CDR");
    assert_eq!(read["parameter"], " #1(11):33622222222");
    assert!(
        read["statement"]
            .as_str()
            .unwrap()
            .ends_with(":1 AND c.duration > 0")
    );
    assert_eq!(events[1]["timestamp"], "2026-03-04T22:41:10.250000Z");
    assert_eq!(events[3]["fields"]["command"], "SELECT");

    let (err, r) = scope_report(dir.path(), &[log, "--account", "billing_app"]);
    // The statement on CDR and SUBSCRIBER is one statement.
    assert!(err.contains("2 database statements"), "{err}");
    let subs: Vec<(&str, u64)> = r["subscribers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["statements"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        subs,
        [("33622222222", 1), ("33633333333", 1), ("33644444444", 1)]
    );
}
