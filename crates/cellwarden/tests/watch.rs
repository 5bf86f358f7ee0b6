//! `watch` end to end: a simulated operator's logs written out in time order as a live
//! system writes them (with a rename rotation and a copy-truncate rotation on the way), followed
//! by the real binary; the alerts equal `hunt`'s over the same logs, also when the process is
//! killed with SIGKILL halfway and restarted (then following the folder itself, where the
//! rotated copies appear beside the logs). syslog over UDP and TCP.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The simulator's line-based logs (relative paths) and all their lines merged in time order.
fn merged(sim: &Path) -> (Vec<String>, Vec<(usize, String)>) {
    // Files under the folders, one folder a host under linux/.
    fn walk(dir: &Path, rel: &str, files: &mut Vec<String>) {
        let mut names: Vec<(String, bool)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.file_type().unwrap().is_dir(),
                )
            })
            .collect();
        names.sort();
        for (n, is_dir) in names {
            let r = format!("{rel}/{n}");
            if is_dir {
                walk(&dir.join(&n), &r, files);
            } else {
                files.push(r);
            }
        }
    }
    let mut files = Vec::new();
    for sub in ["db", "linux", "network", "windows"] {
        walk(&sim.join(sub), sub, &mut files);
    }
    let mut lines = Vec::new();
    for (fi, f) in files.iter().enumerate() {
        let text = std::fs::read_to_string(sim.join(f)).unwrap();
        let mut last = i64::MIN;
        for (li, l) in text.lines().enumerate() {
            // Lines without a time (headers) keep their place after the line before.
            let t = line_time(l).unwrap_or(last);
            last = t;
            lines.push((t, fi, li, l.to_owned()));
        }
    }
    lines.sort_by_key(|(t, fi, li, _)| (*t, *fi, *li));
    (
        files,
        lines.into_iter().map(|(_, fi, _, l)| (fi, l)).collect(),
    )
}

fn simulate(dir: &Path) {
    simulate_operator(dir);
    // A quiet event two days later lets the last day close (watch judges a day once it ends).
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("windows/events.jsonl"))
        .unwrap();
    writeln!(f, r##"{{"Event":{{"System":{{"Provider":{{"#attributes":{{"Name":"Microsoft-Windows-Sysmon"}}}},"EventID":1,"TimeCreated":{{"#attributes":{{"SystemTime":"2026-03-14T00:00:00.000000Z"}}}},"EventRecordID":99999,"Channel":"Microsoft-Windows-Sysmon/Operational","Computer":"adm-01.corp.example"}},"EventData":{{"Image":"C:\\Windows\\System32\\notepad.exe","CommandLine":"notepad.exe"}}}}}}"##).unwrap();
}

type Id = (String, String, String, u64);

/// (time, rule, file name, record) of each alert in JSONL text.
fn ids(text: &str) -> BTreeSet<Id> {
    alerts(text)
        .iter()
        .map(|a| {
            let file = a["source_file"].as_str().unwrap();
            (
                a["timestamp"].as_str().unwrap().to_owned(),
                a["rule_id"].as_str().unwrap().to_owned(),
                Path::new(file)
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                a["source_record"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn hunt_ids(sim: &Path) -> BTreeSet<Id> {
    ids(&hunt_simulation(sim, &[]))
}

/// How the live files are named to `watch`.
#[derive(Clone, Copy)]
enum Follow {
    /// `--follow DIR/*/*.log` and the like.
    Globs,
    /// `--follow DIR`: every file under it, new ones too (rotated copies recognised).
    Folder,
}

/// `checkpoint_secs`: the time between checkpoints (the kill test widens the window in which
/// alerts are written but not yet checkpointed).
fn start_watch(
    sim: &Path,
    live: &Path,
    state: &Path,
    alerts: &Path,
    how: Follow,
    checkpoint_secs: &str,
) -> Child {
    let p = |f: &str| sim.join(f).to_str().unwrap().to_owned();
    let l = |g: &str| live.join(g).to_str().unwrap().to_owned();
    let follow: Vec<String> = match how {
        Follow::Globs => ["*/*.log", "*/*.jsonl", "*/*/*.log"]
            .iter()
            .flat_map(|g| ["--follow".to_owned(), l(g)])
            .collect(),
        Follow::Folder => vec!["--follow".to_owned(), live.to_str().unwrap().to_owned()],
    };
    bin()
        .arg("watch")
        .args(&follow)
        .args([
            "--assets",
            &p("assets.toml"),
            "--watchlist",
            &p("watchlist.txt"),
            "--state",
            state.to_str().unwrap(),
            "-o",
            alerts.to_str().unwrap(),
            "--scope-out",
            state.with_extension("scope.json").to_str().unwrap(),
            "--store",
            state.with_extension("db").to_str().unwrap(),
            "--quiet",
            "--checkpoint-secs",
            checkpoint_secs,
            "--idle-secs",
            "3",
        ])
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(state.with_extension("log"))
                .unwrap(),
        )
        .spawn()
        .expect("start watch")
}

/// Waits until the checkpoint says every file was read up to `lines` lines.
fn wait_caught_up(state: &Path, live: &Path, lines: &BTreeMap<String, u64>) {
    let start = Instant::now();
    loop {
        let done = std::fs::read(state.join("checkpoint.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some_and(|c| {
                lines.iter().all(|(f, n)| {
                    let path = live.join(f);
                    c["files"][path.to_str().unwrap()]["lines"].as_u64() == Some(*n)
                })
            });
        if done {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "watch did not catch up with {lines:?}: {}\n{}",
            std::fs::read_to_string(state.join("checkpoint.json")).unwrap_or_default(),
            std::fs::read_to_string(state.with_extension("log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop(child: Child) -> String {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    stderr(&out)
}

/// Stops a watcher whose messages went to `log`; returns them.
fn stop_logged(child: Child, log: &Path) -> String {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    let text = std::fs::read_to_string(log).unwrap_or_default();
    assert!(out.status.success(), "{text}");
    text
}

/// Empty files named `files` under `live`, open for writing.
fn create_files(live: &Path, files: &[String]) -> Vec<std::fs::File> {
    files
        .iter()
        .map(|f| {
            let p = live.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::File::create(p).unwrap()
        })
        .collect()
}

/// The alerts watch wrote to `alerts` are `expected`, each once.
fn assert_alerts_once(alerts: &Path, expected: &BTreeSet<Id>, log: &str) {
    let text = std::fs::read_to_string(alerts).unwrap();
    let got = ids(&text);
    assert_eq!(
        text.lines().count(),
        got.len(),
        "an alert was written twice\n{log}"
    );
    let missing: Vec<_> = expected.difference(&got).collect();
    let extra: Vec<_> = got.difference(expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:#?}\nextra {extra:#?}\n{log}"
    );
}

/// The scope report watch keeps beside `state` is the one `scope` writes over `sim`.
fn assert_scope_as_scope(state: &Path, sim: &Path, log: &str) {
    let live_scope = std::fs::read_to_string(state.with_extension("scope.json")).unwrap();
    assert_eq!(
        exposure_of(&live_scope),
        exposure_of(&scope_json(sim)),
        "{log}"
    );
}

/// The alert file holds alerts written after the last checkpoint (or before the first).
fn alerts_past_checkpoint(state: &Path, alerts: &Path) -> bool {
    let len = std::fs::metadata(alerts).map_or(0, |m| m.len());
    let at = std::fs::read(state.join("checkpoint.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|c| c["output_len"].as_u64());
    len > at.unwrap_or(0)
}

/// Writes the logs into `live` in time order, in batches, rotating the PostgreSQL log by
/// rename at 40 % and the MySQL log by copy and truncate at 70 %; with `kill`, SIGKILLs the
/// watcher just before the rename, once it has written alerts not yet checkpointed, and at
/// 55 %, and starts it again each time.
fn live_run(kill: bool, how: Follow) {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim");
    simulate(&sim);
    let expected = hunt_ids(&sim);
    assert!(expected.len() >= 10, "{expected:?}");
    let live = dir.path().join("live");
    let state = dir.path().join("state");
    let alerts = dir.path().join("alerts.jsonl");
    for sub in ["db", "linux", "network", "windows"] {
        std::fs::create_dir_all(live.join(sub)).unwrap();
    }
    let (files, lines) = merged(&sim);
    let mut out = create_files(&live, &files);
    let checkpoint_secs = if kill { "2" } else { "0.2" };
    let mut child = start_watch(&sim, &live, &state, &alerts, how, checkpoint_secs);
    let mut written: BTreeMap<String, u64> = BTreeMap::new();
    let batch = 400;
    let n = lines.len();
    let (mut rotated, mut truncated, mut killed) = (false, false, !kill);
    let mut i = 0;
    while i < n {
        let mut end = (i + batch).min(n);
        // Never split lines of one file that share a time (one auditd event's records).
        while end < n && end > 0 && lines[end].0 == lines[end - 1].0 {
            let t = |k: usize| line_time(&lines[k].1);
            if t(end) != t(end - 1) {
                break;
            }
            end += 1;
        }
        for (fi, l) in &lines[i..end] {
            writeln!(out[*fi], "{l}").unwrap();
            *written.entry(files[*fi].clone()).or_default() += 1;
        }
        i = end;
        let done = i as f64 / n as f64;
        if !rotated && done > 0.4 {
            rotated = true;
            if kill {
                // Input pauses: the days that waited are judged and their alerts written.
                // Killed once the alert file holds alerts the next checkpoint has not
                // covered yet (the case store has not made them durable), and started again.
                let t = Instant::now();
                while !alerts_past_checkpoint(&state, &alerts)
                    && t.elapsed() < Duration::from_secs(10)
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                eprintln!(
                    "first kill: alerts past the checkpoint: {} DBG {:?} {}",
                    alerts_past_checkpoint(&state, &alerts),
                    std::fs::read_to_string(state.join("checkpoint.json"))
                        .ok()
                        .map(|s| s.len()),
                    std::fs::metadata(&alerts).map_or(0, |m| m.len())
                );
                child.kill().unwrap();
                child.wait().unwrap();
                child = start_watch(&sim, &live, &state, &alerts, how, checkpoint_secs);
            }
            let f = "db/postgresql-billing.log";
            wait_caught_up(&state, &live, &written);
            let fi = files.iter().position(|x| x == f).unwrap();
            std::fs::rename(live.join(f), live.join(format!("{f}.1"))).unwrap();
            out[fi] = std::fs::File::create(live.join(f)).unwrap();
        }
        if !killed && done > 0.55 {
            killed = true;
            std::thread::sleep(Duration::from_millis(300));
            child.kill().unwrap();
            child.wait().unwrap();
            child = start_watch(&sim, &live, &state, &alerts, how, checkpoint_secs);
        }
        if !truncated && done > 0.7 {
            truncated = true;
            let f = "db/mysql-crm-audit.log";
            wait_caught_up(&state, &live, &written);
            std::fs::copy(live.join(f), live.join(format!("{f}.1"))).unwrap();
            let fi = files.iter().position(|x| x == f).unwrap();
            out[fi].set_len(0).unwrap();
            out[fi] = std::fs::OpenOptions::new()
                .append(true)
                .open(live.join(f))
                .unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_caught_up(&state, &live, &written);
    // Files at their end stop holding the last days back after --idle-secs.
    std::thread::sleep(Duration::from_secs(4));
    let log = stop_logged(child, &state.with_extension("log"));
    assert_alerts_once(&alerts, &expected, &log);
    // The campaigns watch keeps in its store, rebuilt at every checkpoint and carried across
    // the restart, are the ones `hunt --campaigns` finds in the same logs.
    let want = campaign_shapes(&hunt_campaigns(&sim));
    assert!(!want.is_empty());
    assert_eq!(
        campaign_shapes(&store_campaigns(&state.with_extension("db"))),
        want,
        "{log}"
    );
    assert_scope_as_scope(&state, &sim, &log);
}

fn hunt_campaigns(sim: &Path) -> Vec<serde_json::Value> {
    alerts(&hunt_simulation(sim, &["--campaigns"]))
}

fn store_campaigns(store: &Path) -> Vec<serde_json::Value> {
    let out = run(&[
        "export",
        "--store",
        store.to_str().unwrap(),
        "--format",
        "jsonl",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    alerts(&stdout(&out))
        .into_iter()
        .filter(|r| r["record"] == "campaign")
        .collect()
}

/// What a campaign holds, whatever the paths of its logs: alerts, hosts, accounts, moves.
fn campaign_shapes(c: &[serde_json::Value]) -> BTreeSet<String> {
    let names = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap().to_owned())
            .collect()
    };
    c.iter()
        .map(|x| {
            let moves: Vec<String> = x["moves"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| format!("{} -> {} {}", m["from"], m["to"], m["kind"]))
                .collect();
            format!(
                "{} alerts; hosts {:?}; accounts {:?}; moves {:?}",
                x["alert_count"],
                names(&x["hosts"]),
                names(&x["accounts"]),
                moves
            )
        })
        .collect()
}

/// `scope` over the simulated database and flow logs.
fn scope_json(sim: &Path) -> String {
    let p = |f: &str| sim.join(f).to_str().unwrap().to_owned();
    let out = run(&[
        "scope",
        &p("db"),
        &p("network"),
        "--assets",
        &p("assets.toml"),
        "--watchlist",
        &p("watchlist.txt"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stdout(&out)
}

/// Who was exposed, by whom, and where data went, without file paths.
fn exposure_of(json: &str) -> (Vec<String>, Vec<String>) {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let subscribers: Vec<String> = v["subscribers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{} {} {}",
                s["id"],
                s["accounts"],
                s["reasons"].as_array().map_or(0, Vec::len)
            )
        })
        .collect();
    let transfers: Vec<String> = v["exfiltration"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "{} {} {} {}",
                t["src_ip"], t["dst_ip"], t["day"], t["bytes_out"]
            )
        })
        .collect();
    assert!(!subscribers.is_empty());
    (subscribers, transfers)
}

#[test]
fn watching_live_files_gives_the_alerts_hunt_gives() {
    live_run(false, Follow::Globs);
}

#[test]
fn a_killed_watcher_restarts_without_losing_or_repeating_alerts() {
    // The folder itself is followed: rotated copies beside the logs are not read again.
    live_run(true, Follow::Folder);
}

/// A backlog already on disk when watch starts: closed days wait while input is waiting and
/// are judged together once it is read (the retention window is not full, so nothing is
/// forgotten meanwhile); the alerts and the scope report are still those of `hunt`.
#[test]
fn a_backlog_on_disk_gives_the_alerts_hunt_gives() {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim");
    simulate(&sim);
    let expected = hunt_ids(&sim);
    let live = dir.path().join("live");
    let (state, alerts) = (dir.path().join("state"), dir.path().join("alerts.jsonl"));
    let (files, lines) = merged(&sim);
    let mut written: BTreeMap<String, u64> = BTreeMap::new();
    let mut out = create_files(&live, &files);
    for (fi, l) in &lines {
        writeln!(out[*fi], "{l}").unwrap();
        *written.entry(files[*fi].clone()).or_default() += 1;
    }
    drop(out);
    let child = start_watch(&sim, &live, &state, &alerts, Follow::Folder, "0.2");
    wait_caught_up(&state, &live, &written);
    std::thread::sleep(Duration::from_secs(5));
    let log = stop_logged(child, &state.with_extension("log"));
    // The days were judged together, not one by one.
    assert!(log.contains("closed days judged together"), "{log}");
    assert_alerts_once(&alerts, &expected, &log);
    assert_scope_as_scope(&state, &sim, &log);
}

#[test]
fn a_path_that_cannot_be_followed_is_one_error_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/folder");
    let out = run(&["watch", "--follow", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("no such file or folder") && err.lines().count() <= 2,
        "{err}"
    );
}

#[test]
fn syslog_over_udp_and_tcp_raises_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    let (udp, tcp, metrics) = (free_port(), free_port(), free_port());
    let child = bin()
        .args([
            "watch",
            "--syslog-udp",
            &format!("127.0.0.1:{udp}"),
            "--syslog-tcp",
            &format!("127.0.0.1:{tcp}"),
            "--metrics",
            &format!("127.0.0.1:{metrics}"),
            "--state",
            dir.path().join("state").to_str().unwrap(),
            "-o",
            alerts.to_str().unwrap(),
            "--quiet",
            "--checkpoint-secs",
            "0.2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let sudo = |host: &str| {
        format!(
            "{host} sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/sbin/iptables -A INPUT -p icmp -j ACCEPT"
        )
    };
    // RFC 3164 over UDP.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    // RFC 5424, octet-counted and then newline-framed, over TCP.
    let m5424 = |host: &str| {
        format!(
            "<86>1 2026-03-04T03:13:02.000000Z {}",
            sudo(host).replacen(" sudo:", " sudo 2290 - -", 1)
        )
    };
    let start = Instant::now();
    let mut tcp_stream = loop {
        // The receiver may still be starting.
        sock.send_to(
            format!("<86>Mar  4 03:13:02 {}", sudo("udp-host")).as_bytes(),
            ("127.0.0.1", udp),
        )
        .unwrap();
        if let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", tcp)) {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(100));
    };
    let counted = m5424("tcp-counted");
    write!(tcp_stream, "{} {counted}", counted.len()).unwrap();
    writeln!(tcp_stream, "{}", m5424("tcp-newline")).unwrap();
    tcp_stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    sock.send_to(
        format!("<86>Mar  4 03:13:02 {}", sudo("udp-host")).as_bytes(),
        ("127.0.0.1", udp),
    )
    .unwrap();
    let wait = Instant::now();
    let hosts = || -> BTreeSet<String> {
        let text = std::fs::read_to_string(&alerts).unwrap_or_default();
        alerts_of(&text)
            .iter()
            .filter(|a| a["rule_id"] == "7b9d1f3e-5a7c-4d9f-9b3e-5a7c9d1f3b16")
            .filter_map(|a| a["host"].as_str().map(str::to_owned))
            .collect()
    };
    while hosts().len() < 3 && wait.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(tcp_stream);
    // Metrics are published every 250 ms.
    let mut page = get(metrics, "/metrics");
    let since = Instant::now();
    while !page.contains("level=\"high\"") && since.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
        page = get(metrics, "/metrics");
    }
    assert!(page.contains("200 OK"), "{page}");
    assert!(
        page.contains("cellwarden_events_total{source=\"syslog-udp://127.0.0.1:"),
        "{page}"
    );
    assert!(
        page.contains("cellwarden_alerts_total{level=\"high\"}"),
        "{page}"
    );
    assert!(page.contains("cellwarden_checkpoint_age_seconds"), "{page}");
    assert!(get(metrics, "/health").ends_with("ok\n"));
    let log = stop(child);
    let got = hosts();
    for h in ["udp-host", "tcp-counted", "tcp-newline"] {
        assert!(got.contains(h), "{h} missing from {got:?}\n{log}");
    }
}

/// Alerts of a file that may still be written (a last line may be cut).
fn alerts_of(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
