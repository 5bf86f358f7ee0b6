//! `cellwarden scope` on logs written by real database servers: PostgreSQL 15 with pgaudit
//! and MariaDB with its server_audit plugin, started here on 127.0.0.1 in temporary folders
//! and stopped at the end. A week of work goes through the real clients (`psql`, `pg_dump`,
//! `mysql`, `mysqldump`) from several loopback addresses (a small proxy binds 127.0.0.k, so
//! the server sees that client host): the CRM application from its host, care agents, a
//! mediation feed writing CDRs, a reporting batch, a DBA, a nightly dump, and on the last
//! night an intruder with the application's own account from another address, reading the
//! call records, locations and devices of four chosen subscribers. The test knows what it
//! sent, so it knows who was exposed; `scope` must find exactly that, by itself, with
//! `--account` and with `--host`.
//!
//! The servers run under libfaketime (Debian package `libfaketime`) so that one run writes a
//! week: before each piece of work the test sets the servers' clock to its time of day. The
//! logs are the servers' own; only their clock is moved.
//!
//! Skipped with a line saying what is missing where the servers are not installed
//! (`apt-get install postgresql-15 postgresql-15-pgaudit mariadb-server mariadb-client
//! libfaketime`; `.ci/run` does); failed under `CI=true`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use cellwarden_sim::Rng;
use common::*;

const INSTALL: &str =
    "apt-get install postgresql-15 postgresql-15-pgaudit mariadb-server mariadb-client libfaketime";
/// 2026-03-01T00:00:00Z: the first day of the week of work.
const MARCH_1: i64 = 1_772_323_200;
const DAY: i64 = 86_400;
/// Subscribers provisioned.
const SUBSCRIBERS: u32 = 400;
/// The intruder's targets (subscriber numbers, see [`Sub`]).
const TARGETS: [u32; 4] = [17, 123, 250, 389];
/// The intruder's client host.
const INTRUDER: u8 = 9;

// ---------------------------------------------------------------------------------------
// The operator's subscribers and the week of work.

/// Subscriber `n`'s identifiers.
struct Sub {
    msisdn: String,
    imsi: String,
    imei: String,
    /// Known to the subscriber map only (the databases do not hold it).
    iccid: String,
}

fn luhn_digit(body: &str) -> u32 {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let x = d * 2;
                x / 10 + x % 10
            } else {
                d
            }
        })
        .sum();
    (10 - sum % 10) % 10
}

fn sub(n: u32) -> Sub {
    let body = format!("35693803{n:06}");
    Sub {
        msisdn: format!("33612{n:06}"),
        imsi: format!("20815{n:010}"),
        imei: format!("{body}{}", luhn_digit(&body)),
        iccid: format!("8933150{n:012}"),
    }
}

/// One connection's work: who, from where, when, what.
struct Batch {
    /// Seconds since the epoch.
    t: i64,
    account: &'static str,
    program: &'static str,
    /// Last octet of the client address 127.0.0.k.
    from: u8,
    work: Work,
    /// The subscribers its statements name (`kind:id` as the report writes them).
    names: BTreeSet<String>,
}

enum Work {
    Sql(Vec<String>),
    /// The server's own dump tool.
    Dump,
}

fn at(day: i64, h: i64, m: i64) -> i64 {
    MARCH_1 + (day - 1) * DAY + h * 3600 + m * 60
}

/// The provisioning (45 days before the week, by the superuser): accounts, tables, rows.
fn provisioning(pg: bool) -> Vec<String> {
    let ts = if pg { "timestamptz" } else { "datetime" };
    let mut s = vec![
        "CREATE TABLE subscriber (msisdn varchar(20) PRIMARY KEY, imsi varchar(20), imei varchar(20), name varchar(80), plan varchar(20))".to_owned(),
        format!("CREATE TABLE cdr (id bigint, calling_number varchar(20), called_number varchar(20), imsi varchar(20), imei varchar(20), cell_id varchar(20), start_time {ts}, duration int)"),
        format!("CREATE TABLE cell_location (imsi varchar(20), cell_id varchar(20), seen_at {ts})"),
        "CREATE TABLE device (imei varchar(20), imsi varchar(20), msisdn varchar(20), model varchar(40))".to_owned(),
    ];
    let rows = |f: &dyn Fn(&Sub, u32) -> String| {
        (1..=SUBSCRIBERS)
            .map(|n| f(&sub(n), n))
            .collect::<Vec<_>>()
            .join(", ")
    };
    s.push(format!(
        "INSERT INTO subscriber (msisdn, imsi, imei, name, plan) VALUES {}",
        rows(&|x, n| format!(
            "('{}', '{}', '{}', 'Subscriber {n}', 'basic')",
            x.msisdn, x.imsi, x.imei
        ))
    ));
    s.push(format!(
        "INSERT INTO device (imei, imsi, msisdn, model) VALUES {}",
        rows(&|x, _| format!("('{}', '{}', '{}', 'X1')", x.imei, x.imsi, x.msisdn))
    ));
    s.push(format!(
        "INSERT INTO cell_location (imsi, cell_id, seen_at) VALUES {}",
        rows(&|x, n| format!("('{}', 'cell-{}', '2026-01-15 10:00:00')", x.imsi, n % 50))
    ));
    s
}

/// A subscriber at random.
fn pick(r: &mut Rng) -> u32 {
    1 + r.below(u64::from(SUBSCRIBERS)) as u32
}

/// The week: ordinary work on days 1–7, the intruder on the night of day 7.
fn week() -> Vec<Batch> {
    let mut r = Rng::new(18);
    let mut out = Vec::new();
    let mut cdr_id = 0;
    for day in 1..=7 {
        // The nightly dump and the reporting batch.
        out.push(Batch {
            t: at(day, 1, 0),
            account: "backup",
            program: "dump",
            from: 6,
            work: Work::Dump,
            names: BTreeSet::new(),
        });
        out.push(Batch {
            t: at(day, 2, 0),
            account: "rpt_batch",
            program: "reporter",
            from: 7,
            work: Work::Sql(vec![
                "SELECT cell_id, count(*), sum(duration) FROM cdr GROUP BY cell_id".into(),
                "SELECT count(*) FROM subscriber WHERE plan = 'basic'".into(),
            ]),
            names: BTreeSet::new(),
        });
        // The DBA's morning check.
        out.push(Batch {
            t: at(day, 8, 30),
            account: "dba",
            program: "psql",
            from: 5,
            work: Work::Sql(vec![
                "SELECT count(*) FROM cdr".into(),
                "SELECT count(*) FROM cell_location".into(),
            ]),
            names: BTreeSet::new(),
        });
        // Mediation writes CDRs every three hours, all identifiers of the caller together.
        for h in (0..24).step_by(3) {
            let mut sql = Vec::new();
            let mut names = BTreeSet::new();
            for _ in 0..3 {
                cdr_id += 1;
                let (a, b) = (sub(pick(&mut r)), sub(pick(&mut r)));
                sql.push(format!(
                    "INSERT INTO cdr (id, calling_number, called_number, imsi, imei, cell_id, start_time, duration) VALUES ({cdr_id}, '{}', '{}', '{}', '{}', 'cell-{}', '2026-03-{day:02} {h:02}:00:00', {})",
                    a.msisdn, b.msisdn, a.imsi, a.imei, cdr_id % 50, 30 + cdr_id % 300
                ));
                names.extend([
                    format!("msisdn:{}", a.msisdn),
                    format!("msisdn:{}", b.msisdn),
                    format!("imsi:{}", a.imsi),
                    format!("imei:{}", a.imei),
                ]);
            }
            out.push(Batch {
                t: at(day, h, 5),
                account: "mediation",
                program: "mediation",
                from: 8,
                work: Work::Sql(sql),
                names,
            });
        }
        // The CRM application: a connection an hour, office hours, one subscriber at a time.
        for h in 9..=17 {
            let mut sql = Vec::new();
            let mut names = BTreeSet::new();
            for _ in 0..4 {
                let x = sub(pick(&mut r));
                sql.push(format!(
                    "SELECT msisdn, name, plan FROM subscriber WHERE msisdn = '{}'",
                    x.msisdn
                ));
                names.insert(format!("msisdn:{}", x.msisdn));
            }
            out.push(Batch {
                t: at(day, h, 12),
                account: "crm_app",
                program: "crm-web",
                from: 2,
                work: Work::Sql(sql),
                names,
            });
        }
        // Care agents: a profile and the last calls of the customers they speak to; on day 3
        // care02 calls one customer back in the afternoon.
        for (agent, from) in [("care01", 3), ("care02", 4), ("care03", 10)] {
            let mut first = 0;
            for h in [10, 14] {
                let mut sql = Vec::new();
                let mut names = BTreeSet::new();
                for k in 0..3 {
                    let callback = day == 3 && agent == "care02" && h == 14 && k == 0;
                    let n = if callback { first } else { pick(&mut r) };
                    if k == 0 && h == 10 {
                        first = n;
                    }
                    let x = sub(n);
                    sql.push(format!(
                        "SELECT * FROM subscriber WHERE msisdn = '{}'",
                        x.msisdn
                    ));
                    sql.push(format!(
                        "SELECT start_time, called_number, duration FROM cdr WHERE calling_number = '{}' ORDER BY start_time DESC LIMIT 20",
                        x.msisdn
                    ));
                    names.insert(format!("msisdn:{}", x.msisdn));
                }
                out.push(Batch {
                    t: at(day, h, 20),
                    account: agent,
                    program: "crm-desk",
                    from,
                    work: Work::Sql(sql),
                    names,
                });
            }
        }
    }
    // Day 7, 03:10: the application's account from another host, calls, cells and handsets
    // of four chosen subscribers.
    let mut sql = Vec::new();
    let mut names = BTreeSet::new();
    for n in TARGETS {
        let x = sub(n);
        sql.push(format!(
            "SELECT * FROM cdr WHERE calling_number = '{m}' OR called_number = '{m}'",
            m = x.msisdn
        ));
        sql.push(format!(
            "SELECT cell_id, seen_at FROM cell_location WHERE imsi = '{}' ORDER BY seen_at DESC",
            x.imsi
        ));
        sql.push(format!("SELECT * FROM device WHERE imei = '{}'", x.imei));
        names.extend([
            format!("msisdn:{}", x.msisdn),
            format!("imsi:{}", x.imsi),
            format!("imei:{}", x.imei),
        ]);
    }
    out.push(Batch {
        t: at(7, 3, 10),
        account: "crm_app",
        program: "psql",
        from: INTRUDER,
        work: Work::Sql(sql),
        names,
    });
    out.sort_by_key(|b| b.t);
    out
}

/// The subscribers the batches `which` picks named.
fn named(week: &[Batch], which: impl Fn(&Batch) -> bool) -> BTreeSet<String> {
    week.iter()
        .filter(|b| which(b))
        .flat_map(|b| b.names.iter().cloned())
        .collect()
}

// ---------------------------------------------------------------------------------------
// The servers' clock, client addresses and the servers themselves.

fn faketime() -> Option<PathBuf> {
    cellwarden_testkit::tool(
        "libfaketime.so.1",
        &[
            "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
            "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        ],
        INSTALL,
    )
}

/// A clock file libfaketime reads at every call: an offset from the real time.
struct Clock {
    lib: PathBuf,
    file: PathBuf,
}

impl Clock {
    fn new(lib: PathBuf, dir: &Path) -> Clock {
        let file = dir.join("faketime");
        std::fs::write(&file, "+0\n").unwrap();
        Clock { lib, file }
    }

    /// The servers' time is now `t` (seconds since the epoch), and runs on from there.
    fn set(&self, t: i64) {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        std::fs::write(&self.file, format!("{:+}\n", t - now)).unwrap();
    }

    /// `env` arguments that start a program on this clock.
    fn env(&self) -> Vec<String> {
        vec![
            format!("LD_PRELOAD={}", self.lib.display()),
            format!("FAKETIME_TIMESTAMP_FILE={}", self.file.display()),
            "FAKETIME_NO_CACHE=1".into(),
        ]
    }
}

/// Ports on 127.0.0.1 that reach the server from 127.0.0.k, one per k.
struct Proxies {
    server: u16,
    ports: Mutex<BTreeMap<u8, u16>>,
}

impl Proxies {
    fn new(server: u16) -> Proxies {
        Proxies {
            server,
            ports: Mutex::new(BTreeMap::new()),
        }
    }

    fn port(&self, k: u8) -> u16 {
        let mut ports = self.ports.lock().unwrap();
        *ports
            .entry(k)
            .or_insert_with(|| proxy(Ipv4Addr::new(127, 0, 0, k), self.server))
    }
}

/// Connections to the returned port go on to 127.0.0.1:`to` from address `from`.
fn proxy(from: Ipv4Addr, to: u16) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let s =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            s.bind(&SocketAddr::from((from, 0)).into()).unwrap();
            if s.connect(&SocketAddr::from(([127, 0, 0, 1], to)).into())
                .is_err()
            {
                continue;
            }
            let server: TcpStream = s.into();
            for (a, b) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut &a, &mut &b);
                    let _ = b.shutdown(Shutdown::Write);
                });
            }
        }
    });
    port
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// `cmd` with `env` set, as `user` when given (the test runs as root).
fn command(user: Option<&str>, env: &[String], cmd: &[&str]) -> Command {
    let mut c = match user {
        Some(u) => {
            let mut c = Command::new("runuser");
            c.args(["-u", u, "--", "env"]);
            c
        }
        None => Command::new("env"),
    };
    c.args(env).args(cmd);
    c
}

/// Runs `cmd` (as `user` when the test runs as root) and insists it succeeds.
fn sh(user: Option<&str>, env: &[String], cmd: &[&str], stdin: Option<&str>) -> Output {
    let mut c = command(user, env, cmd);
    c.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    if let Some(text) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn wait_for_port(port: u16, what: &str) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what} did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What a server needs to replay the week.
trait Server {
    fn provision(&self, sql: &[String]);
    fn run(&self, b: &Batch, port: u16);
    fn port(&self) -> u16;
}

fn replay(server: &dyn Server, clock: &Clock, pg: bool) -> Vec<Batch> {
    clock.set(MARCH_1 - 45 * DAY + 10 * 3600);
    server.provision(&provisioning(pg));
    let proxies = Proxies::new(server.port());
    let week = week();
    for b in &week {
        clock.set(b.t);
        server.run(b, proxies.port(b.from));
    }
    week
}

// ---------------------------------------------------------------------------------------
// PostgreSQL 15 with pgaudit.

struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    dir: PathBuf,
    user: Option<&'static str>,
    port: u16,
    running: bool,
}

impl Postgres {
    fn find() -> Option<PathBuf> {
        let bin =
            cellwarden_testkit::tool("pg_ctl", &["/usr/lib/postgresql/15/bin/pg_ctl"], INSTALL)?;
        let dir = bin.parent()?.to_path_buf();
        let lib = dir.join("../lib/pgaudit.so");
        if !lib.exists() {
            cellwarden_testkit::skip(
                &format!("pgaudit not installed ({} missing)", lib.display()),
                INSTALL,
            );
            return None;
        }
        Some(dir)
    }

    /// Starts a server in `dir` with `conf` added to postgresql.conf.
    fn start(bin: PathBuf, dir: &Path, clock: &Clock, conf: &str) -> Postgres {
        let user = is_root().then_some("postgres");
        let data = dir.join("data");
        if let Some(u) = user {
            sh(None, &[], &["chown", "-R", u, dir.to_str().unwrap()], None);
        }
        let initdb = bin.join("initdb");
        sh(
            user,
            &[],
            &[
                initdb.to_str().unwrap(),
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
            ],
            None,
        );
        let port = free_port();
        let mut text = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        text.push_str(&format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{d}'\n\
             shared_preload_libraries = 'pgaudit'\npgaudit.log = 'read, write, ddl, role'\n\
             log_connections = on\nlog_disconnections = on\nlogging_collector = on\n\
             log_directory = '{d}/log'\nlog_filename = 'postgresql.log'\n\
             log_rotation_age = 0\nlog_rotation_size = 0\nfsync = off\n{conf}\n",
            d = dir.display()
        ));
        std::fs::write(data.join("postgresql.conf"), text).unwrap();
        let mut hba = std::fs::read_to_string(data.join("pg_hba.conf")).unwrap();
        hba.push_str("host all all 127.0.0.0/8 trust\n");
        std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
        let pg_ctl = bin.join("pg_ctl");
        let log = dir.join("startup.log");
        sh(
            user,
            &clock.env(),
            &[
                pg_ctl.to_str().unwrap(),
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ],
            None,
        );
        wait_for_port(port, "PostgreSQL");
        Postgres {
            bin,
            data,
            dir: dir.to_path_buf(),
            user,
            port,
            running: true,
        }
    }

    fn psql(&self, conninfo: &str, sql: &str) {
        let psql = self.bin.join("psql");
        sh(
            None,
            &[],
            &[
                psql.to_str().unwrap(),
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                conninfo,
                "-f",
                "-",
            ],
            Some(sql),
        );
    }

    fn stop(&mut self) {
        if self.running {
            self.running = false;
            let pg_ctl = self.bin.join("pg_ctl");
            sh(
                self.user,
                &[],
                &[
                    pg_ctl.to_str().unwrap(),
                    "-D",
                    self.data.to_str().unwrap(),
                    "-m",
                    "fast",
                    "-w",
                    "stop",
                ],
                None,
            );
        }
    }

    fn log(&self, ext: &str) -> PathBuf {
        self.dir.join("log").join(format!("postgresql.{ext}"))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.running {
            self.running = false;
            let pg_ctl = self.bin.join("pg_ctl");
            let data = self.data.to_str().unwrap();
            let stop = [
                pg_ctl.to_str().unwrap(),
                "-D",
                data,
                "-m",
                "immediate",
                "stop",
            ];
            let _ = command(self.user, &[], &stop)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Server for Postgres {
    fn provision(&self, sql: &[String]) {
        let local = format!(
            "host={} port={} user=postgres",
            self.dir.display(),
            self.port
        );
        self.psql(
            &format!("{local} dbname=postgres"),
            "CREATE DATABASE billing;\n",
        );
        let mut s = String::new();
        for x in sql {
            s.push_str(x);
            s.push_str(";\n");
        }
        for (role, grant) in [
            (
                "crm_app",
                "SELECT, UPDATE ON subscriber, cdr, cell_location, device",
            ),
            ("care01", "SELECT ON subscriber, cdr"),
            ("care02", "SELECT ON subscriber, cdr"),
            ("care03", "SELECT ON subscriber, cdr"),
            ("mediation", "INSERT ON cdr"),
            ("rpt_batch", "SELECT ON subscriber, cdr"),
            ("dba", "SELECT ON ALL TABLES IN SCHEMA public"),
            ("backup", "SELECT ON ALL TABLES IN SCHEMA public"),
        ] {
            s.push_str(&format!(
                "CREATE ROLE {role} LOGIN;\nGRANT {grant} TO {role};\n"
            ));
        }
        self.psql(&format!("{local} dbname=billing"), &s);
    }

    fn run(&self, b: &Batch, port: u16) {
        let conninfo = format!(
            "host=127.0.0.1 port={port} user={} dbname=billing application_name={}",
            b.account, b.program
        );
        match &b.work {
            Work::Sql(sql) => self.psql(&conninfo, &format!("{};\n", sql.join(";\n"))),
            Work::Dump => {
                let pg_dump = self.bin.join("pg_dump");
                sh(
                    None,
                    &[],
                    &[
                        pg_dump.to_str().unwrap(),
                        "-d",
                        &conninfo,
                        "-f",
                        "/dev/null",
                    ],
                    None,
                );
            }
        }
    }

    fn port(&self) -> u16 {
        self.port
    }
}

// ---------------------------------------------------------------------------------------
// MariaDB with server_audit, its general query log and slow query log.

struct MariaDb {
    child: std::process::Child,
    dir: PathBuf,
    port: u16,
}

impl MariaDb {
    fn find() -> Option<PathBuf> {
        let bin = cellwarden_testkit::tool("mariadbd", &["/usr/sbin/mariadbd"], INSTALL)?;
        cellwarden_testkit::tool("mariadb-install-db", &[], INSTALL)?;
        cellwarden_testkit::tool("mysqldump", &[], INSTALL)?;
        cellwarden_testkit::tool("mysql", &[], INSTALL)?;
        Some(bin)
    }

    fn start(bin: &Path, dir: &Path, clock: &Clock) -> MariaDb {
        let data = dir.join("data");
        let datadir = format!("--datadir={}", data.display());
        let mut install = vec![
            "mariadb-install-db",
            "--no-defaults",
            &datadir,
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ];
        if is_root() {
            install.push("--user=root");
        }
        sh(None, &[], &install, None);
        let port = free_port();
        let d = dir.display();
        let mut args: Vec<String> = clock.env();
        args.extend([
            bin.to_str().unwrap().to_owned(),
            "--no-defaults".into(),
            format!("--datadir={}", data.display()),
            "--bind-address=127.0.0.1".into(),
            format!("--port={port}"),
            format!("--socket={d}/mysqld.sock"),
            format!("--pid-file={d}/mysqld.pid"),
            format!("--log-error={d}/error.log"),
            "--skip-name-resolve".into(),
            "--innodb-flush-log-at-trx-commit=0".into(),
            "--plugin-load-add=server_audit".into(),
            "--server-audit-logging=ON".into(),
            "--server-audit-events=CONNECT,QUERY_DML,QUERY_DDL,QUERY_DCL".into(),
            format!("--server-audit-file-path={d}/server_audit.log"),
            "--general-log=1".into(),
            format!("--general-log-file={d}/general.log"),
            "--slow-query-log=1".into(),
            format!("--slow-query-log-file={d}/slow.log"),
            "--long-query-time=0".into(),
        ]);
        if is_root() {
            args.push("--user=root".into());
        }
        let child = Command::new("env")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd");
        wait_for_port(port, "MariaDB");
        MariaDb {
            child,
            dir: dir.to_path_buf(),
            port,
        }
    }

    fn mysql(&self, args: &[&str], sql: &str) {
        let mut a = vec!["mysql", "--no-defaults", "--batch"];
        a.extend_from_slice(args);
        sh(None, &[], &a, Some(sql));
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server for MariaDb {
    fn provision(&self, sql: &[String]) {
        let socket = format!("--socket={}/mysqld.sock", self.dir.display());
        let mut s = String::from("CREATE DATABASE billing;\nUSE billing;\n");
        for x in sql {
            s.push_str(x);
            s.push_str(";\n");
        }
        for (user, grant) in [
            ("crm_app", "SELECT, UPDATE ON billing.*"),
            ("care01", "SELECT ON billing.*"),
            ("care02", "SELECT ON billing.*"),
            ("care03", "SELECT ON billing.*"),
            ("mediation", "INSERT ON billing.cdr"),
            ("rpt_batch", "SELECT ON billing.*"),
            ("dba", "SELECT ON billing.*"),
            (
                "backup",
                "SELECT, LOCK TABLES, SHOW VIEW, EVENT, TRIGGER ON billing.*",
            ),
        ] {
            s.push_str(&format!(
                "CREATE USER '{user}'@'127.0.0.%';\nGRANT {grant} TO '{user}'@'127.0.0.%';\n"
            ));
        }
        self.mysql(&["-u", "root", &socket], &s);
    }

    fn run(&self, b: &Batch, port: u16) {
        let port = format!("--port={port}");
        let net = ["-h", "127.0.0.1", &port, "-u", b.account];
        match &b.work {
            Work::Sql(sql) => {
                let mut a = net.to_vec();
                a.push("billing");
                self.mysql(&a, &format!("{};\n", sql.join(";\n")));
            }
            Work::Dump => {
                let mut a = vec!["mysqldump", "--no-defaults", "--single-transaction"];
                a.extend_from_slice(&net);
                a.extend(["--no-tablespaces", "--result-file=/dev/null", "billing"]);
                sh(None, &[], &a, None);
            }
        }
    }

    fn port(&self) -> u16 {
        self.port
    }
}

// ---------------------------------------------------------------------------------------
// What `scope` says about the logs.

/// The identifiers `scope` says were read for `log` with `args`; under the automatic mode,
/// every piece of evidence must come from `host`. The report has one entry per person: the
/// provisioning statements name each subscriber's MSISDN, IMSI and IMEI in one row.
fn scope_ids(log: &Path, args: &[&str], host: Option<&str>) -> BTreeSet<String> {
    let owner: BTreeMap<String, u32> = (1..=SUBSCRIBERS)
        .flat_map(|n| {
            let x = sub(n);
            [
                (format!("msisdn:{}", x.msisdn), n),
                (format!("imsi:{}", x.imsi), n),
                (format!("imei:{}", x.imei), n),
                (format!("iccid:{}", x.iccid), n),
            ]
        })
        .collect();
    let mut persons = BTreeSet::new();
    let mut a = vec!["scope", log.to_str().unwrap(), "--format", "json"];
    a.extend_from_slice(args);
    let out = run(&a);
    let err = stderr(&out);
    assert!(out.status.success(), "{a:?}: {err}");
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["summary"]["statements_without_time"], 0, "{a:?}: {err}");
    let mut ids = BTreeSet::new();
    for s in v["subscribers"].as_array().unwrap() {
        if let Some(h) = host {
            for e in s["evidence"].as_array().unwrap() {
                assert_eq!(e["client_host"], h, "{a:?}: {s:#}");
            }
        }
        let mine: BTreeSet<u32> = s["identifiers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                let id = format!(
                    "{}:{}",
                    i["kind"].as_str().unwrap(),
                    i["id"].as_str().unwrap()
                );
                let n = owner[&id];
                if i["read"] == true {
                    ids.insert(id);
                }
                n
            })
            .collect();
        assert_eq!(mine.len(), 1, "{a:?}: one person an entry: {s:#}");
        assert!(persons.insert(mine), "{a:?}: one entry a person: {s:#}");
        // MSISDN, IMSI and IMEI from the provisioning rows; the ICCID from the map only.
        let with_map = args.contains(&"--subscriber-map");
        assert_eq!(
            s["identifiers"].as_array().unwrap().len(),
            if with_map { 4 } else { 3 },
            "{a:?}: {s:#}"
        );
    }
    ids
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// `scope` on `log` gives exactly what the week says, automatically, with `--host` and with
/// `--account`.
fn check(log: &Path, extra: &[&str], week: &[Batch]) {
    assert!(log.exists(), "{} not written", log.display());
    let intruder = named(week, |b| b.from == INTRUDER);
    let host = format!("127.0.0.{INTRUDER}");
    let with = |more: [&str; 2]| {
        let mut a: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        a.extend(more.map(str::to_owned));
        a
    };
    let name = log.display();
    assert_eq!(
        scope_ids(log, extra, Some(&host)),
        intruder,
        "{name}: automatic mode"
    );
    assert_eq!(
        scope_ids(log, &refs(&with(["--host", &host])), Some(&host)),
        intruder,
        "{name}: --host"
    );
    for account in ["crm_app", "care02"] {
        assert_eq!(
            scope_ids(log, &refs(&with(["--account", account])), None),
            named(week, |b| b.account == account),
            "{name}: --account {account}"
        );
    }
}

/// The test's folder; kept (and named on stderr) when `CELLWARDEN_KEEP_LOGS` is set, to read
/// the servers' logs after a failure.
fn workdir() -> tempfile::TempDir {
    let mut dir = tempfile::Builder::new()
        .prefix("cellwarden-realdb-")
        .tempdir()
        .unwrap();
    if std::env::var_os("CELLWARDEN_KEEP_LOGS").is_some() {
        dir.disable_cleanup(true);
        eprintln!("logs kept in {}", dir.path().display());
    }
    dir
}

/// A PostgreSQL server set up with `conf` replays the week; `scope` on each of its `logs`
/// (file extension, extra arguments) must find what was sent.
fn postgresql(conf: &str, logs: &[(&str, &[&str])]) {
    let (Some(lib), Some(bin)) = (faketime(), Postgres::find()) else {
        return;
    };
    let dir = workdir();
    let clock = Clock::new(lib, dir.path());
    let mut pg = Postgres::start(bin, dir.path(), &clock, conf);
    let week = replay(&pg, &clock, true);
    pg.stop();
    for (ext, extra) in logs {
        check(&pg.log(ext), extra, &week);
    }
}

#[test]
fn postgresql_pgaudit_in_stderr_csvlog_and_jsonlog() {
    postgresql(
        "log_destination = 'stderr,csvlog,jsonlog'\nlog_line_prefix = '%m [%p] %u@%d %r '",
        &[
            ("log", &[]),
            ("log", &["--pg-prefix", "%m [%p] %u@%d %r "]),
            ("csv", &[]),
            ("json", &[]),
        ],
    );
}

#[test]
fn postgresql_pgaudit_with_a_key_value_prefix_in_local_time() {
    postgresql(
        "log_destination = 'stderr'\nlog_timezone = 'Europe/Paris'\n\
         log_line_prefix = '%t [%p]: user=%u,db=%d,app=%a,client=%h '",
        &[
            ("log", &[]),
            (
                "log",
                &["--pg-prefix", "%t [%p]: user=%u,db=%d,app=%a,client=%h "],
            ),
        ],
    );
}

/// Debian's default prefix names no client host: with `log_connections`, each backend's
/// `connection received: host=…` record gives it to the statements after it.
#[test]
fn postgresql_pgaudit_with_debians_default_prefix_and_log_connections() {
    postgresql(
        "log_destination = 'stderr'\nlog_line_prefix = '%m [%p] %q%u@%d '",
        &[("log", &[]), ("log", &["--pg-prefix", "%m [%p] %q%u@%d "])],
    );
}

#[test]
fn mariadb_server_audit_general_and_slow_logs() {
    let (Some(lib), Some(bin)) = (faketime(), MariaDb::find()) else {
        return;
    };
    let dir = workdir();
    let clock = Clock::new(lib, dir.path());
    let mut db = MariaDb::start(&bin, dir.path(), &clock);
    let week = replay(&db, &clock, false);
    db.stop();
    // server_audit cuts statements at 1,024 bytes (server_audit_query_log_limit): the
    // provisioning rows are lost there, and the operator's subscriber list links them.
    let map = dir.path().join("subscribers.csv");
    let mut csv = String::from("customer_id,msisdn,imsi,imei,iccid,tariff\n");
    for n in 1..=SUBSCRIBERS {
        let x = sub(n);
        csv.push_str(&format!(
            "C{n:06},+{},{},{},{},basic\n",
            x.msisdn, x.imsi, x.imei, x.iccid
        ));
    }
    std::fs::write(&map, csv).unwrap();
    let map = map.to_str().unwrap();
    check(
        &dir.path().join("server_audit.log"),
        &["--subscriber-map", map],
        &week,
    );
    for log in ["general.log", "slow.log"] {
        check(&dir.path().join(log), &[], &week);
    }
    pseudonymised_persons(&dir.path().join("server_audit.log"), map, dir.path());
}

/// Under `--pseudonymise`, no identifier of a person is left, each keeps one pseudonym
/// wherever it appears, and the person has one more, stable for the key.
fn pseudonymised_persons(log: &Path, map: &str, dir: &Path) {
    let key = dir.join("key");
    std::fs::write(&key, "a-secret-key-of-enough-length\n").unwrap();
    let report = |extra: &[&str]| {
        let mut a = vec![
            "scope",
            log.to_str().unwrap(),
            "--format",
            "json",
            "--pseudonymise",
            key.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        let out = run(&a);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    let text = report(&["--subscriber-map", map]);
    assert_eq!(
        text,
        report(&["--subscriber-map", map]),
        "same key, same report"
    );
    for n in TARGETS {
        let x = sub(n);
        for raw in [&x.msisdn, &x.imsi, &x.imei, &x.iccid] {
            assert!(!text.contains(raw.as_str()), "{raw} leaked");
        }
    }
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let subs = v["subscribers"].as_array().unwrap();
    assert_eq!(subs.len(), TARGETS.len());
    // Without the map the same identifiers are reported one by one, under the same pseudonyms.
    let alone: serde_json::Value = serde_json::from_str(&report(&[])).unwrap();
    let read_ids = |v: &serde_json::Value| -> BTreeSet<String> {
        v["subscribers"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["identifiers"].as_array().unwrap().iter())
            .filter(|i| i["read"] == true)
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect()
    };
    for s in subs {
        let person = s["person"].as_str().unwrap();
        assert!(person.starts_with("psn_"), "{s:#}");
        for i in s["identifiers"].as_array().unwrap() {
            let id = i["id"].as_str().unwrap();
            assert!(id.starts_with("psn_") && id != person, "{s:#}");
        }
    }
    assert_eq!(
        read_ids(&v),
        read_ids(&alone),
        "an identifier's pseudonym is the same in a person or alone"
    );
}
