//! A simulated telecom operator under attack. Deterministic for a seed: an AD domain with web
//! servers, jump hosts, billing and CDR databases and a CRM; subscribers with MSISDN, IMSI and
//! IMEI (made from their index, so a million of them cost no memory); people and services at
//! their daily work (care agents, billing batch, reporting, DBAs, backups, admins with PsExec);
//! and the reported attack chains played out inside it. It writes the formats the sources
//! read — Windows events as EVTX-style JSON Lines, a PostgreSQL server log with pgaudit
//! records, a MySQL Enterprise Audit JSON log, Zeek `conn.log` and `dns.log`, syslog and
//! auditd of a Linux server — and `ground-truth.json` (format in `docs/simulate.md`).
//!
//! Each day is generated, put in time order per file and written before the next one, so
//! memory holds one day of one operator, whatever `--subscribers` and `--days`.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

pub mod eval;
mod rng;
mod scenario;
pub mod signalling;

pub use rng::Rng;
pub use scenario::Scenario;

/// Settings of one simulation.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seed of the generator: the same seed writes the same logs.
    pub seed: u64,
    /// Subscribers of the operator.
    pub subscribers: u64,
    /// Days of logs.
    pub days: u32,
    /// What happens besides normal work.
    pub scenarios: Vec<Scenario>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            subscribers: 10_000,
            days: 10,
            scenarios: vec![Scenario::Softcell],
        }
    }
}

/// First day of every simulation (UTC midnight).
pub const START: i64 = 1_772_323_200; // 2026-03-01T00:00:00Z
/// The operator's country calling code and network (MCC 208, MNC 15).
pub const COUNTRY_CODE: &str = "33";
const IMSI_PREFIX: &str = "20815";
const TACS: [&str; 4] = ["35693803", "49015420", "35209900", "01234567"];

/// A subscriber's identifiers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subscriber {
    /// Position in the operator's subscriber list.
    pub index: u64,
    /// International MSISDN (digits).
    pub msisdn: String,
    /// IMSI.
    pub imsi: String,
    /// IMEI (with its Luhn digit).
    pub imei: String,
}

fn luhn_digit(body: &str) -> u8 {
    // The check digit makes the Luhn sum of body+digit a multiple of 10.
    let mut sum = 0u32;
    for (i, b) in body.bytes().rev().enumerate() {
        let mut v = (b - b'0') as u32;
        if i % 2 == 0 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    ((10 - sum % 10) % 10) as u8
}

/// Subscriber `i` of an operator of `n` (identifiers are bijections of the index, so distinct).
pub fn subscriber(seed: u64, i: u64) -> Subscriber {
    let off = seed.wrapping_mul(7919) % 100_000_000;
    let m = (i.wrapping_mul(54_435_761).wrapping_add(off)) % 100_000_000;
    let s = (i.wrapping_mul(1_234_567_891).wrapping_add(seed)) % 10_000_000_000;
    let tac = TACS[(i / 1_000_000) as usize % TACS.len()];
    let serial = (i % 1_000_000).wrapping_mul(7_777_777) % 1_000_000;
    let body = format!("{tac}{serial:06}");
    Subscriber {
        index: i,
        msisdn: format!("{COUNTRY_CODE}6{m:08}"),
        imsi: format!("{IMSI_PREFIX}{s:010}"),
        imei: format!("{body}{}", luhn_digit(&body)),
    }
}

/// One attack step, as written to the ground truth.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// The scenario it belongs to.
    pub scenario: String,
    /// What the step is.
    pub step: String,
    /// When (RFC 3339 UTC).
    pub time: String,
    /// The host it ran on.
    pub host: String,
    /// The account it used.
    pub account: String,
    /// ATT&CK technique id.
    pub technique: String,
}

/// A targeted subscriber in the ground truth.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// The scenario that targeted the subscriber.
    pub scenario: String,
    /// MSISDN.
    pub msisdn: String,
    /// IMSI.
    pub imsi: String,
    /// IMEI.
    pub imei: String,
}

/// An exfiltration flow in the ground truth.
#[derive(Debug, Clone, Serialize)]
pub struct ExfilFlow {
    /// The scenario it belongs to.
    pub scenario: String,
    /// Sending host.
    pub src_ip: String,
    /// Destination.
    pub dst_ip: String,
    /// Destination port.
    pub dst_port: u16,
    /// Bytes sent.
    pub bytes: u64,
    /// Start (RFC 3339 UTC).
    pub start: String,
}

/// What happened, for scoring (`ground-truth.json`).
#[derive(Debug, Clone, Serialize, Default)]
pub struct Truth {
    /// Seed of the generator.
    pub seed: u64,
    /// Subscribers of the operator.
    pub subscribers: u64,
    /// Days of logs.
    pub days: u32,
    /// First day (RFC 3339 UTC).
    pub start: String,
    /// Scenarios run.
    pub scenarios: Vec<String>,
    /// Attack steps in time order.
    pub steps: Vec<Step>,
    /// Subscribers the attackers read.
    pub targets: Vec<Target>,
    /// Flows that carried data out.
    pub exfiltration: Vec<ExfilFlow>,
    /// Files written, relative to the output folder.
    pub files: Vec<String>,
    /// Lines written per file.
    pub lines: Vec<(String, u64)>,
    /// The signalling capture's tracked subscribers (scenario `tracking`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signalling: Option<signalling::SignallingTruth>,
}

pub(crate) fn ts(t: i64, micros: u32) -> String {
    jiff::Timestamp::from_second(t)
        .map(|x| {
            let s = x.strftime("%Y-%m-%dT%H:%M:%S").to_string();
            format!("{s}.{micros:06}Z")
        })
        .unwrap_or_default()
}

/// One log line to write: (time, sub-second order, text).
pub(crate) type Line = (i64, u32, String);

/// The day's lines per output file.
#[derive(Default)]
pub(crate) struct Day {
    pub windows: Vec<Line>,
    pub pg: Vec<Line>,
    pub mysql: Vec<Line>,
    pub conn: Vec<Line>,
    /// Per Linux host (in the order of [`LINUX_HOSTS`]): auth.log and audit.log.
    pub auth: [Vec<Line>; 3],
    pub audit: [Vec<Line>; 3],
    pub dns: Vec<Line>,
}

impl Day {
    /// The day's lines in the order of [`FILES`].
    fn files(&mut self) -> [&mut Vec<Line>; LOGS] {
        let [a0, a1, a2] = &mut self.auth;
        let [u0, u1, u2] = &mut self.audit;
        [
            &mut self.windows,
            &mut self.pg,
            &mut self.mysql,
            &mut self.conn,
            a0,
            u0,
            a1,
            u1,
            a2,
            u2,
            &mut self.dns,
        ]
    }
}

/// Log files among [`FILES`] (the first ones).
const LOGS: usize = 11;

/// The Linux hosts of the core network: the outside-facing DNS server, a packet gateway and
/// an MME. One folder each, as evidence is collected; their audit logs do not name the host.
pub const LINUX_HOSTS: [&str; 3] = ["dns-ext-01", "pgw-01", "mme-01"];

/// Output files of a simulation.
pub const FILES: [&str; 13] = [
    "windows/events.jsonl",
    "db/postgresql-billing.log",
    "db/mysql-crm-audit.log",
    "network/conn.log",
    "linux/dns-ext-01/auth.log",
    "linux/dns-ext-01/audit.log",
    "linux/pgw-01/auth.log",
    "linux/pgw-01/audit.log",
    "linux/mme-01/auth.log",
    "linux/mme-01/audit.log",
    "network/dns.log",
    "watchlist.txt",
    "assets.toml",
];

/// When the evidence was copied (the year-less auth logs' modification time): the next year,
/// so the year of their lines has to come from the case, not from the file.
pub const COLLECTED: i64 = START + 400 * 86_400;

/// The operator's asset file (networks and roles), written beside the logs.
const ASSETS: &str = r#"# Simulated operator: internal networks and host roles (cellwarden --assets)
internal = ["10.0.0.0/8"]

[[host]]
address = "10.30.0.10"
name = "bill-db-01"
role = "billing-db"

[[host]]
address = "10.30.0.50"
name = "backup-01"
role = "backup"

[[host]]
address = "10.20.0.5"
name = "jump-01"
role = "jump"

[[host]]
address = "10.40.0.53"
name = "dns-ext-01"
role = "dns"

[[host]]
address = "10.40.0.20"
name = "hss-01"
role = "hss"

[[host]]
address = "10.1.5.10"
name = "adm-01"
role = "admin"

"#;

/// Zeek `conn.log` columns and types.
const ZEEK_CONN: &[(&str, &str)] = &[
    ("ts", "time"),
    ("uid", "string"),
    ("id.orig_h", "addr"),
    ("id.orig_p", "port"),
    ("id.resp_h", "addr"),
    ("id.resp_p", "port"),
    ("proto", "enum"),
    ("service", "string"),
    ("duration", "interval"),
    ("orig_bytes", "count"),
    ("resp_bytes", "count"),
    ("conn_state", "string"),
    ("orig_pkts", "count"),
    ("resp_pkts", "count"),
];

/// Zeek `dns.log` columns and types.
const ZEEK_DNS: &[(&str, &str)] = &[
    ("ts", "time"),
    ("uid", "string"),
    ("id.orig_h", "addr"),
    ("id.orig_p", "port"),
    ("id.resp_h", "addr"),
    ("id.resp_p", "port"),
    ("proto", "enum"),
    ("trans_id", "count"),
    ("rtt", "interval"),
    ("query", "string"),
    ("qclass", "count"),
    ("qclass_name", "string"),
    ("qtype", "count"),
    ("qtype_name", "string"),
    ("rcode", "count"),
    ("rcode_name", "string"),
    ("AA", "bool"),
    ("TC", "bool"),
    ("RD", "bool"),
    ("RA", "bool"),
    ("Z", "count"),
    ("answers", "vector[string]"),
    ("TTLs", "vector[interval]"),
    ("rejected", "bool"),
];

/// A Zeek ASCII log header, as Zeek writes it.
fn zeek_header(path: &str, columns: &[(&str, &str)]) -> String {
    let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
    let types: Vec<&str> = columns.iter().map(|(_, t)| *t).collect();
    format!(
        "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\t{path}\n#open\t2026-03-01-00-00-00\n#fields\t{}\n#types\t{}\n",
        names.join("\t"),
        types.join("\t")
    )
}

/// Runs the simulation into `out` (created if needed). Returns the ground truth (also written).
pub fn simulate(config: &SimConfig, out: &Path) -> io::Result<Truth> {
    for sub in ["windows", "db", "network"] {
        std::fs::create_dir_all(out.join(sub))?;
    }
    for host in LINUX_HOSTS {
        std::fs::create_dir_all(out.join("linux").join(host))?;
    }
    let open = |p: &str| -> io::Result<io::BufWriter<std::fs::File>> {
        Ok(io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(out.join(p))?,
        ))
    };
    let mut files = Vec::with_capacity(LOGS);
    for name in &FILES[..LOGS] {
        files.push(open(name)?);
    }
    files[3].write_all(zeek_header("conn", ZEEK_CONN).as_bytes())?;
    files[10].write_all(zeek_header("dns", ZEEK_DNS).as_bytes())?;
    let mut truth = Truth {
        seed: config.seed,
        subscribers: config.subscribers,
        days: config.days,
        start: ts(START, 0),
        scenarios: config
            .scenarios
            .iter()
            .map(|s| s.name().to_owned())
            .collect(),
        ..Default::default()
    };
    let mut world = scenario::World::new(config);
    let mut counts = [0u64; LOGS];
    for d in 0..config.days {
        let mut day = Day::default();
        world.day(d, &mut day, &mut truth);
        for (i, lines) in day.files().into_iter().enumerate() {
            lines.sort();
            for (_, _, l) in lines.iter() {
                files[i].write_all(l.as_bytes())?;
                files[i].write_all(b"\n")?;
            }
            counts[i] += lines.len() as u64;
        }
    }
    for k in [3, 10] {
        files[k].write_all(b"#close\t2026-12-31-00-00-00\n")?;
    }
    for w in &mut files {
        w.flush()?;
    }
    drop(files);
    // Copied later: the auth logs' modification time is the day of collection.
    let collected = std::time::UNIX_EPOCH + std::time::Duration::from_secs(COLLECTED as u64);
    for host in LINUX_HOSTS {
        std::fs::File::options()
            .write(true)
            .open(out.join("linux").join(host).join("auth.log"))?
            .set_modified(collected)?;
    }
    let mut wl = String::from("# Protected subscribers (simulated): ministers, generals, judges\n");
    for (m, label) in world.protected() {
        let _ = writeln!(wl, "+{m}  {label}");
    }
    wl.push_str("allow dpo_audit\n");
    std::fs::write(out.join(FILES[LOGS]), wl)?;
    std::fs::write(out.join(FILES[LOGS + 1]), ASSETS)?;
    truth.files = FILES.iter().map(|f| f.to_string()).collect();
    truth.lines = FILES[..LOGS]
        .iter()
        .zip(counts)
        .map(|(f, n)| (f.to_string(), n))
        .collect();
    if config.scenarios.contains(&Scenario::Tracking) {
        // One morning of signalling on the last day.
        let start = (START + (config.days.max(1) as i64 - 1) * 86_400 + 9 * 3600) * 1_000_000;
        let cap = signalling::capture(config.seed, start, config.subscribers.min(20_000));
        std::fs::write(out.join(signalling::FILE), &cap.pcap)?;
        truth.files.push(signalling::FILE.to_owned());
        truth.signalling = Some(cap.truth);
    }
    let path: PathBuf = out.join("ground-truth.json");
    let text = serde_json::to_string_pretty(&truth).map_err(io::Error::other)?;
    std::fs::write(path, text + "\n")?;
    Ok(truth)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribers_are_valid_and_distinct() {
        let numbering = cellwarden_telecom::Numbering {
            country_code: Some(COUNTRY_CODE.into()),
        };
        let mut seen = std::collections::HashSet::new();
        for i in 0..20_000 {
            let s = subscriber(3, i);
            assert!(seen.insert(s.msisdn.clone()));
            assert!(
                cellwarden_telecom::normalise(
                    cellwarden_telecom::IdKind::Imei,
                    &s.imei,
                    &numbering
                )
                .is_some(),
                "{}",
                s.imei
            );
            assert_eq!(s.imsi.len(), 15);
            assert_eq!(s.msisdn.len(), 11);
        }
        assert_eq!(subscriber(3, 5), subscriber(3, 5));
        assert_ne!(subscriber(3, 5).msisdn, subscriber(4, 5).msisdn);
    }
}
