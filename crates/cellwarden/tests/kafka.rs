//! `watch` on Kafka against a real broker (tansu, started here on 127.0.0.1): a simulated
//! operator's logs produced to a topic give the alerts `hunt` gives on the same events, with
//! one worker, and with two parse workers and one state worker, one parse worker SIGKILLed
//! and restarted halfway. Skipped with a message when `tansu` is not installed
//! (`cargo install tansu --locked --features dynostore,libsql`; `.ci/run` does).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

/// The tests run one after the other: each starts a broker and up to seven workers, which two
/// cores run in time only one test at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn tansu() -> Option<PathBuf> {
    cellwarden_testkit::tool(
        "tansu",
        &[],
        "cargo install tansu --locked --version 0.6.0 --features dynostore",
    )
}

struct Broker {
    child: Child,
    url: String,
    tansu: PathBuf,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Broker {
    fn start(tansu: PathBuf) -> Broker {
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&tansu)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "tansu did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Broker { child, url, tansu }
    }

    fn brokers(&self) -> String {
        self.url.trim_start_matches("tcp://").to_owned()
    }

    fn topic(&self, name: &str, partitions: u32) {
        let out = Command::new(&self.tansu)
            .args([
                "topic",
                "create",
                name,
                "--broker",
                &self.url,
                "--partitions",
                &partitions.to_string(),
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
}

/// Zeek TSV rows as the JSON objects Zeek's JSON writer gives.
fn zeek_json(text: &str) -> Vec<(i64, String)> {
    let mut fields: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for l in text.lines() {
        if let Some(f) = l.strip_prefix("#fields\t") {
            fields = f.split('\t').map(str::to_owned).collect();
            continue;
        }
        if l.starts_with('#') {
            continue;
        }
        let mut o = serde_json::Map::new();
        for (k, v) in fields.iter().zip(l.split('\t')) {
            if v == "-" {
                continue;
            }
            let value = if v == "(empty)" {
                serde_json::Value::String(String::new())
            } else if let Ok(i) = v.parse::<i64>() {
                i.into()
            } else if let Ok(f) = v.parse::<f64>() {
                serde_json::json!(f)
            } else {
                v.into()
            };
            o.insert(k.clone(), value);
        }
        let ts = (o["ts"].as_f64().unwrap() * 1000.0) as i64;
        out.push((ts, serde_json::Value::Object(o).to_string()));
    }
    out
}

/// The simulator's events as Kafka records (time, source, payload) in time order, and the
/// same records written as files for `hunt`.
fn records(sim: &Path, files: &Path) -> Vec<(i64, String, String)> {
    std::fs::create_dir_all(files).unwrap();
    let mut recs: Vec<(i64, String, String)> = Vec::new();
    let read = |f: &str| std::fs::read_to_string(sim.join(f)).unwrap();
    for (f, out) in [
        ("network/conn.log", "conn.jsonl"),
        ("network/dns.log", "dns.jsonl"),
    ] {
        let rows = zeek_json(&read(f));
        let text: String = rows.iter().map(|(_, r)| format!("{r}\n")).collect();
        std::fs::write(files.join(out), text).unwrap();
        recs.extend(rows.into_iter().map(|(t, r)| (t, out.to_owned(), r)));
    }
    for (f, out) in [
        ("db/postgresql-billing.log", "pg.log"),
        ("db/mysql-crm-audit.log", "mysql.jsonl"),
        ("windows/events.jsonl", "events.jsonl"),
        ("linux/dns-ext-01/auth.log", "host.syslog"),
    ] {
        let text = read(f);
        std::fs::write(files.join(out), &text).unwrap();
        recs.extend(
            text.lines()
                .map(|l| (line_time(l).expect("a time"), out.to_owned(), l.to_owned())),
        );
    }
    // One auditd event (its records share a serial) is one Kafka record.
    let audit = read("linux/dns-ext-01/audit.log");
    std::fs::write(files.join("host.audit.log"), &audit).unwrap();
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for l in audit.lines() {
        let id = l[l.find("audit(").unwrap()..]
            .split(')')
            .next()
            .unwrap()
            .to_owned();
        match groups.iter_mut().find(|(g, _)| *g == id) {
            Some((_, v)) => v.push(l.to_owned()),
            None => groups.push((id, vec![l.to_owned()])),
        }
    }
    for (_, lines) in groups {
        recs.push((
            line_time(&lines[0]).expect("a time"),
            "host.audit.log".into(),
            lines.join("\n"),
        ));
    }
    recs.sort_by_key(|r| r.0);
    recs
}

/// (time, rule) → count, of JSON alerts.
fn tally<'a>(
    alerts: impl Iterator<Item = &'a serde_json::Value>,
) -> BTreeMap<(String, String), usize> {
    let mut m = BTreeMap::new();
    for a in alerts {
        *m.entry((
            a["timestamp"].as_str().unwrap().to_owned(),
            a["rule_id"].as_str().unwrap().to_owned(),
        ))
        .or_default() += 1;
    }
    m
}

/// Produces one record per batch: the test broker (tansu 0.6) answers a fetch from an offset
/// inside a batch with the batches after it, so a worker resuming from a committed offset
/// would skip the rest of that batch (a real broker returns the batch holding the offset).
fn produce(brokers: &str, topic: &str, recs: &[(i64, String, String)]) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("batch.num.messages", "1")
        .create()
        .unwrap();
    for (_, key, payload) in recs {
        let mut r = BaseRecord::to(topic)
            .key(key.as_str())
            .payload(payload.as_str());
        loop {
            match p.send(r) {
                Ok(()) => break,
                Err((_, back)) => {
                    r = back;
                    p.poll(Duration::from_millis(50));
                }
            }
        }
    }
    p.flush(Duration::from_secs(60)).unwrap();
}

/// Alerts on the topic, one per key (copies a restart sent again have the same key).
fn alerts_on(brokers: &str, topic: &str, group: &str) -> Vec<serde_json::Value> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true")
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    c.subscribe(&[topic]).unwrap();
    let mut by_key: HashMap<String, serde_json::Value> = HashMap::new();
    let start = Instant::now();
    loop {
        match c.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                let key = String::from_utf8_lossy(m.key().unwrap()).into_owned();
                let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
                if let Some(old) = by_key.get(&key) {
                    assert_eq!(old, &v, "two different alerts under key {key}");
                }
                by_key.insert(key, v);
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => panic!("{e}"),
            None => {}
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "alerts topic not read"
        );
    }
    by_key.into_values().collect()
}

/// A worker process, killed if the test ends without stopping it (a failed assertion would
/// leave it running on the machine, taking CPU from the tests after it).
struct Worker(Option<Child>);

impl std::ops::Deref for Worker {
    type Target = Child;
    fn deref(&self) -> &Child {
        self.0.as_ref().expect("running")
    }
}

impl std::ops::DerefMut for Worker {
    fn deref_mut(&mut self) -> &mut Child {
        self.0.as_mut().expect("running")
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn watch(args: &[&str], log: &Path) -> Worker {
    Worker(Some(
        bin()
            .arg("watch")
            .args(args)
            .args(["--quiet", "--checkpoint-secs", "0.3"])
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
                    .unwrap(),
            )
            .spawn()
            .unwrap(),
    ))
}

/// Records a worker's checkpoint says it has handled (sum of next offsets).
fn handled(state: &Path) -> i64 {
    std::fs::read(state.join("checkpoint.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .map(|c| {
            c["kafka"]
                .as_object()
                .map(|o| o.values().filter_map(|v| v.as_i64()).sum())
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

fn term(mut worker: Worker) {
    let child = worker.0.take().expect("running");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
}

/// The simulated operator's records (with a quiet event two days after the last, so the last
/// day closes), and the alerts `hunt` gives over the same records as files.
struct Scenario {
    dir: tempfile::TempDir,
    recs: Vec<(i64, String, String)>,
    expected: Tally,
    /// The scope report `scope` gives over the same records (see [`comparable_scope`]).
    expected_scope: serde_json::Value,
    assets: String,
    watchlist: String,
}

/// A scope report without where each record was read: the files name a file and line, the
/// workers a topic, partition and offset (alert keys end so too).
fn comparable_scope(mut x: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    fn strip(v: &mut Value) {
        match v {
            Value::Object(o) => {
                o.remove("file");
                o.remove("line");
                for (k, v) in o.iter_mut() {
                    match (k.as_str(), v) {
                        ("alert", Value::String(s)) => {
                            s.truncate(s.find(':').unwrap_or(s.len()));
                        }
                        // `… (FILE line N)`: where a cause was read.
                        ("observed", Value::String(s)) => {
                            if let Some(i) = s.rfind(" (")
                                && s.ends_with(')')
                                && s[i..].contains(" line ")
                            {
                                s.truncate(i);
                            }
                        }
                        ("reasons", Value::Array(a)) if a.iter().all(Value::is_string) => {
                            for r in a.iter_mut() {
                                let s = r.as_str().unwrap();
                                *r = s[..s.find(':').unwrap_or(s.len())].into();
                            }
                        }
                        (_, v) => strip(v),
                    }
                }
                // Records of one time sort by where they were read: in time order only.
                if let Some(Value::Array(e)) = o.get_mut("evidence") {
                    e.sort_by_key(|x| x.to_string());
                }
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut x);
    x
}

impl Scenario {
    fn new() -> Scenario {
        let dir = tempfile::tempdir().unwrap();
        let sim = dir.path().join("sim");
        simulate_operator(&sim);
        let files = dir.path().join("files");
        let mut recs = records(&sim, &files);
        let last = recs.last().unwrap().0 + 2 * 86_400_000;
        let t = jiff::Timestamp::from_millisecond(last).unwrap();
        let trailer = format!(
            r##"{{"Event":{{"System":{{"EventID":1,"TimeCreated":{{"#attributes":{{"SystemTime":"{t}"}}}},"EventRecordID":1,"Channel":"Microsoft-Windows-Sysmon/Operational","Computer":"adm-01"}},"EventData":{{"Image":"C:\\Windows\\notepad.exe"}}}}}}"##
        );
        std::fs::write(files.join("trailer.jsonl"), format!("{trailer}\n")).unwrap();
        recs.push((last, "trailer.jsonl".into(), trailer));
        let assets = sim.join("assets.toml").to_str().unwrap().to_owned();
        let watchlist = sim.join("watchlist.txt").to_str().unwrap().to_owned();
        let out = run(&[
            "hunt",
            files.to_str().unwrap(),
            "--assets",
            &assets,
            "--watchlist",
            &watchlist,
            "--format",
            "jsonl",
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let expected = tally(alerts(&stdout(&out)).iter());
        assert!(expected.len() >= 10, "{expected:?}");
        let report = dir.path().join("scope.json");
        let out = run(&[
            "scope",
            files.to_str().unwrap(),
            "--assets",
            &assets,
            "--watchlist",
            &watchlist,
            "-o",
            report.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let expected_scope: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        assert!(
            expected_scope["subscribers"].as_array().unwrap().len() >= 5,
            "{expected_scope:#}"
        );
        // The intruder's host sent data out: flows and accounts are in different partitions.
        assert!(
            !expected_scope["exfiltration"]
                .as_array()
                .unwrap()
                .is_empty(),
            "{expected_scope:#}"
        );
        Scenario {
            dir,
            recs,
            expected,
            expected_scope: comparable_scope(expected_scope),
            assets,
            watchlist,
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// Waits until `done`; on a timeout, fails with the named workers' logs.
    fn wait(&self, what: &str, logs: &[&str], done: &dyn Fn() -> bool) {
        let start = Instant::now();
        while !done() {
            if start.elapsed() > Duration::from_secs(180) {
                let mut report = String::new();
                for name in logs {
                    let log = std::fs::read_to_string(self.path(&format!("{name}.log")));
                    let cp = std::fs::read_to_string(self.path(name).join("checkpoint.json"));
                    report.push_str(&format!(
                        "== {name}\n{}\n{}\n",
                        log.unwrap_or_default(),
                        cp.unwrap_or_default()
                    ));
                }
                panic!("{what}\n{report}");
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn logs(&self, names: &[&str]) -> String {
        names
            .iter()
            .map(|l| std::fs::read_to_string(self.path(&format!("{l}.log"))).unwrap_or_default())
            .collect()
    }
}

#[test]
fn kafka_workers_give_the_alerts_hunt_gives() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let Some(tansu) = tansu() else { return };
    let sc = Scenario::new();
    let d = |p: &str| sc.path(p);
    let (recs, expected) = (&sc.recs, &sc.expected);
    let (assets, watchlist) = (sc.assets.as_str(), sc.watchlist.as_str());
    let broker = Broker::start(tansu);
    let brokers = broker.brokers();
    for (name, partitions) in [
        ("input", 2),
        ("handoff", 2),
        ("alerts-one", 1),
        ("alerts-two", 1),
    ] {
        broker.topic(name, partitions);
    }
    produce(&brokers, "input", recs);
    let n = recs.len() as i64;
    let analytics = ["--assets", assets, "--watchlist", watchlist];
    let all = ["one", "parse1", "parse2", "state"];
    let wait = |what: &str, done: &dyn Fn() -> bool| sc.wait(what, &all, done);

    // One worker runs everything.
    let one = d("one");
    let mut args = vec![
        "--kafka",
        &brokers,
        "--topic",
        "input",
        "--group",
        "one",
        "--kafka-alerts",
        "alerts-one",
        "--state",
        one.to_str().unwrap(),
    ];
    args.extend(analytics);
    let w = watch(&args, &d("one.log"));
    wait("one worker did not read everything", &|| handled(&one) == n);
    term(w);
    let got = tally(alerts_on(&brokers, "alerts-one", "check-one").iter());
    same(&got, expected, &sc.logs(&["one"]));

    // Two parse workers hand stateful records to one state worker; one parse worker is
    // killed halfway and started again.
    let (p1, p2, st) = (d("parse1"), d("parse2"), d("state"));
    let parse = |state: &Path, log: &str| {
        watch(
            &[
                "--kafka",
                &brokers,
                "--topic",
                "input",
                "--group",
                "parse",
                "--stage",
                "parse",
                "--forward",
                "handoff",
                "--kafka-alerts",
                "alerts-two",
                "--state",
                state.to_str().unwrap(),
                "--idle-secs",
                "2",
            ],
            &d(log),
        )
    };
    let mut sargs = vec![
        "--kafka",
        &brokers,
        "--topic",
        "handoff",
        "--group",
        "state",
        "--stage",
        "state",
        "--kafka-alerts",
        "alerts-two",
        "--state",
        st.to_str().unwrap(),
    ];
    sargs.extend(analytics);
    let s = watch(&sargs, &d("state.log"));
    let a = parse(&p1, "parse1.log");
    let b = parse(&p2, "parse2.log");
    wait("parse workers did not start", &|| {
        handled(&p1) + handled(&p2) > n / 4
    });
    let mut a = a;
    a.kill().unwrap();
    a.wait().unwrap();
    let a = parse(&p1, "parse1.log");
    let enough = || {
        tally(alerts_on(&brokers, "alerts-two", &format!("peek-{}", rand_id())).iter()) == *expected
    };
    let start = Instant::now();
    while !enough() && start.elapsed() < Duration::from_secs(180) {
        std::thread::sleep(Duration::from_millis(500));
    }
    term(a);
    term(b);
    term(s);
    let got = tally(alerts_on(&brokers, "alerts-two", "check-two").iter());
    same(&got, expected, &sc.logs(&["parse1", "parse2", "state"]));
}

type Tally = BTreeMap<(String, String), usize>;

fn same(got: &Tally, expected: &Tally, log: &str) {
    let missing: Vec<_> = expected
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(v))
        .collect();
    let extra: Vec<_> = got
        .iter()
        .filter(|(k, v)| expected.get(*k) != Some(v))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:#?}\nextra {extra:#?}\n{log}"
    );
}

fn rand_id() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// A parse worker of group `group` reading `input`, handing stateful records on to
/// `handoff`, its alerts to `alerts`.
fn parse_worker(sc: &Scenario, brokers: &str, topics: [&str; 4], name: &str) -> Worker {
    let [input, group, handoff, alerts] = topics;
    let state = sc.path(name);
    watch(
        &[
            "--kafka",
            brokers,
            "--topic",
            input,
            "--group",
            group,
            "--stage",
            "parse",
            "--forward",
            handoff,
            "--kafka-alerts",
            alerts,
            "--state",
            state.to_str().unwrap(),
            // How long a source read to its end waits before the state stage is told.
            "--idle-secs",
            "2",
            // One handed-on record per batch, as `produce` does: tansu answers a fetch from
            // an offset inside a batch with the batches after it, so a state worker whose
            // fetch starts again inside one (a partition assigned while others move) lost
            // the rest of the batch (a kill-test run with the changelog: offsets 1 to 3141).
            "--kafka-option",
            "batch.num.messages=1",
        ],
        &sc.path(&format!("{name}.log")),
    )
}

/// A partitioned state worker of group `group` reading `handoff`, sharing through
/// `exchange`, its alerts to `alerts`, with the arguments `extra`.
fn state_worker_with(
    sc: &Scenario,
    brokers: &str,
    topics: [&str; 4],
    name: &str,
    extra: &[&str],
) -> Worker {
    let [handoff, group, exchange, alerts] = topics;
    let mut args = vec![
        "--kafka",
        brokers,
        "--topic",
        handoff,
        "--group",
        group,
        "--stage",
        "state",
        "--exchange",
        exchange,
        "--kafka-alerts",
        alerts,
        "--assets",
        &sc.assets,
        "--watchlist",
        &sc.watchlist,
        "--idle-secs",
        "2",
    ];
    args.extend_from_slice(extra);
    watch(&args, &sc.path(&format!("{name}.log")))
}

/// The alerts of the parse workers' topic and of a state group's topic, together.
fn alerts_of(brokers: &str, parse: &str, state: &str) -> Tally {
    let peek = format!("peek-{}", rand_id());
    let mut all = alerts_on(brokers, parse, &peek);
    all.extend(alerts_on(brokers, state, &peek));
    tally(all.iter())
}

/// Waits (at most 180 s) until the two alert topics hold what `hunt` gives.
fn wait_for_alerts(sc: &Scenario, brokers: &str, parse: &str, state: &str) {
    let start = Instant::now();
    while alerts_of(brokers, parse, state) != sc.expected
        && start.elapsed() < Duration::from_secs(180)
    {
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Partitioned state workers (`--stage state --exchange`): three parse workers hand the
/// records on to a topic of four partitions, keyed by entity; then 1, 2 and 4 state workers
/// share the partitions, each time a new group over the same handed-on records (workers join
/// one after the other, so partitions move and are rebuilt as the group rebalances). Each time
/// the alerts are those `hunt` gives.
#[test]
fn partitioned_state_workers_give_the_alerts_hunt_gives() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let Some(tansu) = tansu() else { return };
    let sc = Scenario::new();
    let broker = Broker::start(tansu);
    let brokers = broker.brokers();
    broker.topic("input", 3);
    broker.topic("handoff", 4);
    broker.topic("alerts-parse", 1);
    for g in ["1", "2", "4"] {
        broker.topic(&format!("exchange-{g}"), 1);
        broker.topic(&format!("alerts-{g}"), 1);
    }
    produce(&brokers, "input", &sc.recs);
    let names = ["parse1", "parse2", "parse3"];
    let topics = ["input", "parse", "handoff", "alerts-parse"];
    let parsers: Vec<Worker> = names
        .iter()
        .map(|x| parse_worker(&sc, &brokers, topics, x))
        .collect();
    let n = sc.recs.len() as i64;
    sc.wait("parse workers did not read everything", &names, &|| {
        names.iter().map(|x| handled(&sc.path(x))).sum::<i64>() >= n
    });
    // They stay: the state stage learns from them when the input is read to its end.

    for workers in [1, 2, 4] {
        let group = format!("state-{workers}");
        let (exchange, alerts) = (format!("exchange-{workers}"), format!("alerts-{workers}"));
        let topics = [
            "handoff",
            group.as_str(),
            exchange.as_str(),
            alerts.as_str(),
        ];
        let names: Vec<String> = (1..=workers)
            .map(|i| format!("state{workers}-{i}"))
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        // The first worker publishes its metrics; the last writes the scope report of every
        // partition.
        let port = free_port();
        let metrics = format!("127.0.0.1:{port}");
        let report = sc.path(&format!("scope-{workers}.json"));
        let children: Vec<Worker> = names
            .iter()
            .enumerate()
            .map(|(i, x)| {
                let mut extra: Vec<&str> = Vec::new();
                if i == 0 {
                    extra.extend(["--metrics", &metrics]);
                }
                if i + 1 == names.len() {
                    extra.extend(["--scope-out", report.to_str().unwrap()]);
                }
                state_worker_with(&sc, &brokers, topics, x, &extra)
            })
            .collect();
        wait_for_alerts(&sc, &brokers, "alerts-parse", &alerts);
        let scope = || {
            std::fs::read(&report)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .map(comparable_scope)
        };
        let start = Instant::now();
        while scope().as_ref() != Some(&sc.expected_scope)
            && start.elapsed() < Duration::from_secs(60)
        {
            std::thread::sleep(Duration::from_millis(300));
        }
        let got = scope();
        assert!(
            got.as_ref() == Some(&sc.expected_scope),
            "{workers} workers: scope report\n{:#}\nexpected\n{:#}\n{}",
            got.unwrap_or_default(),
            sc.expected_scope,
            sc.logs(&names)
        );
        let page = get(port, "/metrics");
        let owned: usize = page
            .lines()
            .find_map(|l| l.strip_prefix("cellwarden_partitions_owned "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no partitions_owned in\n{page}"));
        // With several workers the group may be moving partitions at this moment.
        assert!(owned <= 4, "{page}");
        if workers == 1 {
            assert_eq!(owned, 4, "{page}");
            for p in 0..4 {
                let src = format!("cellwarden_events_total{{source=\"kafka://handoff/{p}\"}}");
                assert!(page.contains(&src), "{src} missing from\n{page}");
            }
            assert!(page.contains("cellwarden_alerts_total{level="), "{page}");
            assert!(page.contains("cellwarden_lag_seconds "), "{page}");
            assert!(
                page.contains("cellwarden_state_entries{kind=\"subscriber_days\"}"),
                "{page}"
            );
        }
        for c in children {
            term(c);
        }
        let got = alerts_of(&brokers, "alerts-parse", &alerts);
        same(&got, &sc.expected, &sc.logs(&names));
    }
    for c in parsers {
        term(c);
    }
}
/// A broker with the topics of a two-stage run: `input` (3 partitions), `handoff` (4),
/// `alerts-parse`, `exchange`, `alerts-state` and `changelog` (`changelog` partitions).
fn two_stage_broker(tansu: PathBuf, changelog: u32) -> Broker {
    let broker = Broker::start(tansu);
    for (name, partitions) in [
        ("input", 3),
        ("handoff", 4),
        ("alerts-parse", 1),
        ("exchange", 1),
        ("alerts-state", 1),
        ("changelog", changelog),
    ] {
        broker.topic(name, partitions);
    }
    broker
}

/// Three parse workers and three partitioned state workers run together; once a third of
/// the records is read, one of each is killed with SIGKILL and started again. The killed
/// state worker's partitions move to the others and are restored from the changelog (or
/// rebuilt from the handed-on topic where no state was written yet); the restarted one takes
/// some back. No alert is lost or written twice: the alerts are those
/// `hunt` gives.
#[test]
fn killed_parse_and_state_workers_lose_no_alert() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let Some(tansu) = tansu() else { return };
    let sc = Scenario::new();
    let broker = two_stage_broker(tansu, 4);
    let brokers = broker.brokers();
    produce(&brokers, "input", &sc.recs);
    let parse = ["input", "parse", "handoff", "alerts-parse"];
    let state = ["handoff", "state", "exchange", "alerts-state"];
    let pnames = ["parse1", "parse2", "parse3"];
    let snames = ["state1", "state2", "state3"];
    // Partitions taken over are restored from the states their former owners wrote, when
    // there is one.
    let changelog = ["--changelog", "changelog", "--changelog-secs", "1"];
    let state_worker = |sc: &Scenario, brokers: &str, topics: [&str; 4], name: &str| {
        state_worker_with(sc, brokers, topics, name, &changelog)
    };
    let mut children: Vec<Worker> = snames
        .iter()
        .map(|x| state_worker(&sc, &brokers, state, x))
        .chain(pnames.iter().map(|x| parse_worker(&sc, &brokers, parse, x)))
        .collect();
    let n = sc.recs.len() as i64;
    sc.wait("parse workers did not start", &pnames, &|| {
        pnames.iter().map(|x| handled(&sc.path(x))).sum::<i64>() > n / 3
    });
    // state1 and parse1: SIGKILL, then started again with the same state folder.
    for i in [0, 3] {
        children[i].kill().unwrap();
        children[i].wait().unwrap();
    }
    children[0] = state_worker(&sc, &brokers, state, "state1");
    children[3] = parse_worker(&sc, &brokers, parse, "parse1");
    wait_for_alerts(&sc, &brokers, "alerts-parse", "alerts-state");
    for c in children {
        term(c);
    }
    let got = alerts_of(&brokers, "alerts-parse", "alerts-state");
    let logs: Vec<&str> = pnames.iter().chain(snames.iter()).copied().collect();
    same(&got, &sc.expected, &sc.logs(&logs));
}

/// A partitioned state worker writes each partition's state to a changelog topic once it has
/// judged days; killed with SIGKILL, it is replaced by a new worker of the group that restores
/// every partition from the changelog and reads on from where each state was taken, not from
/// the handed-on topic's start. The first half of the records is read before the kill, the
/// second after it: together the alerts are those `hunt` gives over all of them.
#[test]
fn a_state_worker_restores_partitions_from_the_changelog() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let Some(tansu) = tansu() else { return };
    let sc = Scenario::new();
    let broker = two_stage_broker(tansu, 2);
    let brokers = broker.brokers();
    let half = sc.recs.len() / 2;
    produce(&brokers, "input", &sc.recs[..half]);
    let parse = ["input", "parse", "handoff", "alerts-parse"];
    let state = ["handoff", "state", "exchange", "alerts-state"];
    let pnames = ["parse1", "parse2"];
    let parsers: Vec<Worker> = pnames
        .iter()
        .map(|x| parse_worker(&sc, &brokers, parse, x))
        .collect();
    let changelog = ["--changelog", "changelog", "--changelog-secs", "0"];
    let mut first = state_worker_with(&sc, &brokers, state, "state1", &changelog);
    let written = |p: u32| format!("kafka://handoff/{p}: state written to the changelog");
    sc.wait(
        "the first state worker wrote no state of some partition",
        &["state1", "parse1", "parse2"],
        &|| {
            let log = sc.logs(&["state1"]);
            (0..4).all(|p| log.contains(&written(p)))
        },
    );
    // Delivered (the producer sends within milliseconds; a state cut short would be passed
    // over for the one before it, of which there may be none).
    std::thread::sleep(Duration::from_secs(3));
    first.kill().unwrap();
    first.wait().unwrap();
    drop(first);
    produce(&brokers, "input", &sc.recs[half..]);
    // The replacement joins once the killed worker's session (6 s) is over: started at once,
    // it was assigned nothing in 180 s in 2 runs of 3 (tansu, the group's only member dead;
    // the rebalance timeout is 5 minutes).
    std::thread::sleep(Duration::from_secs(8));
    let second = state_worker_with(&sc, &brokers, state, "state2", &changelog);
    wait_for_alerts(&sc, &brokers, "alerts-parse", "alerts-state");
    term(second);
    for c in parsers {
        term(c);
    }
    let logs: Vec<&str> = ["state1", "state2"]
        .into_iter()
        .chain(pnames.iter().copied())
        .collect();
    let log = sc.logs(&["state2"]);
    for p in 0..4 {
        let restored =
            format!("kafka://handoff/{p}: assigned; its state is restored from the changelog");
        let line = log
            .lines()
            .find(|l| l.contains(&restored))
            .unwrap_or_else(|| panic!("{restored}: not in\n{}", sc.logs(&logs)));
        let offset: i64 = line
            .rsplit(' ')
            .next()
            .and_then(|o| o.parse().ok())
            .unwrap_or_else(|| panic!("no offset in {line}"));
        assert!(offset > 0, "{line}");
        eprintln!("{line}");
    }
    assert!(
        !log.contains("its state is read from the start"),
        "{}",
        sc.logs(&logs)
    );
    let got = alerts_of(&brokers, "alerts-parse", "alerts-state");
    same(&got, &sc.expected, &sc.logs(&logs));
}
