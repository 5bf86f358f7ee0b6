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
