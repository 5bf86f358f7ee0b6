//! Linux sources end to end: auditd, syslog and journald files in their real formats, hunted
//! with the SigmaHQ Linux rules.

mod common;

use std::collections::BTreeSet;

use common::*;

const AUTH_LOG: &str = "\
Mar  4 03:10:01 core-mme-2 CRON[2100]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)
Mar  4 03:12:09 core-mme-2 sshd[2211]: Accepted password for root from 198.51.100.7 port 50122 ssh2
Mar  4 03:12:40 core-mme-2 useradd[2290]: new user: name=support, UID=0, GID=0, home=/root, shell=/bin/bash
Mar  4 03:13:02 core-mme-2 sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/sbin/iptables -A INPUT -p icmp -j ACCEPT
this line is not syslog
";

// Two events whose records interleave, a third on its own; hex-encoded argument.
const AUDIT_LOG: &str = "\
type=SYSCALL msg=audit(1709521930.100:501): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=0 items=2 ppid=900 pid=901 auid=1000 uid=0 gid=0 euid=0 ses=2 tty=pts0 comm=\"chattr\" exe=\"/usr/bin/chattr\" key=\"exec\"
type=SYSCALL msg=audit(1709521930.200:502): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=0 items=2 ppid=900 pid=902 auid=1000 uid=0 gid=0 euid=0 ses=2 tty=pts0 comm=\"crontab\" exe=\"/usr/bin/crontab\" key=\"exec\"
type=EXECVE msg=audit(1709521930.100:501): argc=3 a0=\"chattr\" a1=\"-i\" a2=2F7573722F6C69622F7838365F36342D6C696E75782D676E752F73656375726974792F70616D5F756E69782E736F
type=EXECVE msg=audit(1709521930.200:502): argc=2 a0=\"crontab\" a1=\"-r\"
type=PROCTITLE msg=audit(1709521930.100:501): proctitle=6368617474720
type=EOE msg=audit(1709521930.100:501):
type=SYSCALL msg=audit(1709521931.000:503): arch=c000003e syscall=42 success=no exit=-115 a0=3 a1=7ffd a2=10 a3=0 items=0 ppid=900 pid=910 auid=1000 uid=1000 gid=1000 euid=1000 ses=2 tty=pts0 comm=\"nmap\" exe=\"/usr/bin/nmap\" key=\"network_connect_4\"
";

const JOURNAL: &str = r#"{"__REALTIME_TIMESTAMP":"1709521960000000","_HOSTNAME":"core-hss-1","SYSLOG_IDENTIFIER":"useradd","_PID":"3100","MESSAGE":"new user: name=svc, UID=0, GID=0, home=/root, shell=/bin/sh"}
"#;

#[test]
fn linux_logs_raise_sigmahq_linux_rules() {
    let Some(rules) = shared("sigma/rules/linux") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("auth.log"), AUTH_LOG).unwrap();
    std::fs::write(dir.path().join("audit.log"), AUDIT_LOG).unwrap();
    std::fs::write(dir.path().join("journal.json"), JOURNAL).unwrap();
    let hunt = |threads: &str| {
        run(&[
            "hunt",
            dir.path().to_str().unwrap(),
            "-r",
            rules.to_str().unwrap(),
            "--format",
            "jsonl",
            "--threads",
            threads,
        ])
    };
    let out = hunt("1");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("auth.log:5: not a syslog line"), "{err}");
    let got: BTreeSet<(String, String)> = alerts(&stdout(&out))
        .iter()
        .map(|a| {
            (
                a["source_file"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_owned(),
                a["rule_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for want in [
        ("auth.log", "0ac15ec3-d24f-4246-aa2a-3077bb1cf90e"), // privileged user created
        ("journal.json", "0ac15ec3-d24f-4246-aa2a-3077bb1cf90e"),
        ("audit.log", "a5b977d6-8a81-4475-91b9-49dbfcd941f7"), // chattr -i
        ("audit.log", "c2e234de-03a3-41e1-b39a-1e56dc17ba67"), // crontab -r (process_creation)
        ("audit.log", "3761e026-f259-44e6-8826-719ed8079408"), // nmap connect
    ] {
        assert!(
            got.contains(&(want.0.to_owned(), want.1.to_owned())),
            "{want:?} missing from {got:?}"
        );
    }
    assert!(err.contains("summary: 3 files, 8 events"), "{err}");
    assert_eq!(stdout(&out), stdout(&hunt("3")));
}

// Forwarded by audisp-remote from two nodes into one file: the same serial on both, records
// interleaved; `node=` names the host.
const AUDIT_TWO_NODES: &str = "\
node=core-hss-1 type=SYSCALL msg=audit(1709521930.100:501): arch=c000003e syscall=82 success=yes exit=0 a0=7ffd a1=7ffe a2=0 a3=0 items=4 ppid=2211 pid=2290 auid=0 uid=0 gid=0 euid=0 comm=\"mv\" exe=\"/usr/bin/mv\" SYSCALL=rename AUID=\"root\" UID=\"root\"
node=core-mme-2 type=SYSCALL msg=audit(1709521930.100:501): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=0 items=1 ppid=900 pid=901 auid=1000 uid=1000 gid=1000 euid=1000 comm=\"ls\" exe=\"/usr/bin/ls\"
node=core-hss-1 type=PATH msg=audit(1709521930.100:501): item=2 name=\"/lib/x86_64-linux-gnu/security/pam_unix.so\" inode=1311 dev=08:01 mode=0100644 nametype=DELETE
node=core-mme-2 type=EXECVE msg=audit(1709521930.100:501): argc=2 a0=\"ls\" a1=\"/lib/x86_64-linux-gnu/security/pam_unix.so\"
node=core-hss-1 type=PATH msg=audit(1709521930.100:501): item=3 name=\"/lib/x86_64-linux-gnu/security/pam_unix.so\" inode=1422 dev=08:01 mode=0100644 nametype=CREATE
node=core-hss-1 type=EOE msg=audit(1709521930.100:501): 
node=core-mme-2 type=EOE msg=audit(1709521930.100:501): 
";

#[test]
fn auditd_from_several_nodes_keeps_events_and_hosts_apart() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("audit.log");
    std::fs::write(&f, AUDIT_TWO_NODES).unwrap();
    let out = run(&["hunt", f.to_str().unwrap(), "--format", "jsonl"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("summary: 1 files, 2 events"), "{err}");
    let got = alerts(&stdout(&out));
    // The PAM module replaced on the HSS; listing it on the MME is not a write.
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0]["rule_title"], "PAM Module Written or Replaced");
    assert_eq!(got[0]["host"], "core-hss-1");
}

// A web server's worker starts a shell command (a web shell), and a binary dropped in /tmp
// starts a shell: the parents are known only from earlier records of the same log.
const AUDIT_LINEAGE: &str = "\
type=SYSCALL msg=audit(1709521900.000:601): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=0 items=2 ppid=1 pid=800 auid=4294967295 uid=0 gid=0 euid=0 ses=4294967295 comm=\"nginx\" exe=\"/usr/sbin/nginx\"
type=EXECVE msg=audit(1709521900.000:601): argc=3 a0=\"/usr/sbin/nginx\" a1=\"-g\" a2=\"daemon on; master_process on;\"
type=EOE msg=audit(1709521900.000:601):
type=SYSCALL msg=audit(1709521910.000:602): arch=c000003e syscall=56 success=yes exit=801 a0=1200011 a1=0 a2=0 a3=7f items=0 ppid=1 pid=800 auid=4294967295 uid=0 gid=0 euid=0 ses=4294967295 comm=\"nginx\" exe=\"/usr/sbin/nginx\"
type=EOE msg=audit(1709521910.000:602):
type=SYSCALL msg=audit(1709521930.000:603): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=0 items=2 ppid=801 pid=950 auid=4294967295 uid=33 gid=33 euid=33 ses=4294967295 comm=\"whoami\" exe=\"/usr/bin/whoami\"
type=EXECVE msg=audit(1709521930.000:603): argc=1 a0=\"whoami\"
type=EOE msg=audit(1709521930.000:603):
type=SYSCALL msg=audit(1709521940.000:604): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=0 items=2 ppid=1 pid=960 auid=0 uid=0 gid=0 euid=0 ses=7 comm=\"agent\" exe=\"/tmp/.x/agent\"
type=EXECVE msg=audit(1709521940.000:604): argc=1 a0=\"/tmp/.x/agent\"
type=EOE msg=audit(1709521940.000:604):
type=SYSCALL msg=audit(1709521950.000:605): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=0 items=2 ppid=960 pid=961 auid=0 uid=0 gid=0 euid=0 ses=7 comm=\"sh\" exe=\"/usr/bin/dash\"
type=EXECVE msg=audit(1709521950.000:605): argc=3 a0=\"sh\" a1=\"-c\" a2=\"id\"
type=EOE msg=audit(1709521950.000:605):
";

#[test]
fn sigmahq_parent_rules_work_on_auditd_through_lineage() {
    let Some(rules) = shared("sigma/rules/linux") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("core-hss-1");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("audit.log"), AUDIT_LINEAGE).unwrap();
    std::fs::write(
        host.join("auth.log"),
        "Mar  4 03:10:01 core-hss-1 CRON[2100]: pam_unix(cron:session): session closed for user root\n",
    )
    .unwrap();
    let out = run(&[
        "hunt",
        dir.path().to_str().unwrap(),
        "-r",
        rules.to_str().unwrap(),
        "--format",
        "jsonl",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let all = alerts(&stdout(&out));
    let find = |id: &str| {
        all.iter()
            .find(|a| a["rule_id"] == id)
            .unwrap_or_else(|| panic!("{id} missing: {all:#?}"))
    };
    // Linux Webshell Indicators: whoami under nginx's forked worker.
    let web = find("818f7b24-0fba-4c49-a073-8b755573b9c7");
    assert_eq!(web["event"]["ParentImage"], "/usr/sbin/nginx");
    assert_eq!(
        web["event"]["ProcessChain"],
        "nginx \u{2192} nginx \u{2192} whoami"
    );
    assert_eq!(web["host"], "core-hss-1", "{err}");
    // Shell Execution Of Process Located In Tmp Directory.
    let tmp = find("2fade0b6-7423-4835-9d4f-335b39b83867");
    assert_eq!(tmp["event"]["ParentImage"], "/tmp/.x/agent");
    assert_eq!(tmp["event"]["ParentCommandLine"], "/tmp/.x/agent");
    assert_eq!(tmp["event"]["ParentUser"], "root");
}
