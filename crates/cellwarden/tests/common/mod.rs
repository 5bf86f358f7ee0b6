#![allow(dead_code)]
use std::process::{Command, Output};

#[allow(unused_imports)]
pub use cellwarden_testkit::shared;

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cellwarden"))
}

pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run cellwarden")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Parses JSONL alerts.
pub fn alerts(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("alert line is JSON"))
        .collect()
}

/// Event time (ms) of a log line in the simulator's formats; `None` for header lines.
pub fn line_time(line: &str) -> Option<i64> {
    if line.starts_with('#') {
        return None;
    }
    if let Some(i) = line.find("audit(") {
        let n: String = line[i + 6..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        return n.parse::<f64>().ok().map(|s| (s * 1000.0) as i64);
    }
    // RFC 3164 (`Mar  4 03:12:09 host …`): the simulation's year.
    if let Some(m) = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| line.starts_with(m))
        && line.len() > 15
    {
        let day: i8 = line[4..6].trim().parse().ok()?;
        let s = format!("2026-{:02}-{day:02}T{}Z", m + 1, &line[7..15]);
        return s
            .parse::<jiff::Timestamp>()
            .ok()
            .map(|t| t.as_millisecond());
    }
    let b = line.as_bytes();
    // The first `YYYY-MM-DD[T ]HH:MM:SS` in the line (pgaudit, MySQL JSON, EVTX JSON, RFC 5424).
    for i in 0..b.len().saturating_sub(19) {
        let w = &b[i..i + 19];
        let digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18];
        if digits.iter().all(|&k| w[k].is_ascii_digit())
            && w[4] == b'-'
            && w[7] == b'-'
            && (w[10] == b'T' || w[10] == b' ')
        {
            let s = format!("{}T{}Z", &line[i..i + 10], &line[i + 11..i + 19]);
            return s
                .parse::<jiff::Timestamp>()
                .ok()
                .map(|t| t.as_millisecond());
        }
    }
    // Zeek TSV: epoch seconds first.
    let first = line.split('\t').next()?;
    first.parse::<f64>().ok().map(|s| (s * 1000.0) as i64)
}

/// A plain HTTP GET on 127.0.0.1: the whole response.
#[allow(dead_code)]
pub fn get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The simulated operator the live tests replay: seed 3, 5,000 subscribers, 10 days.
pub fn simulate_operator(dir: &std::path::Path) {
    let out = run(&[
        "simulate",
        "--out",
        dir.to_str().unwrap(),
        "--seed",
        "3",
        "--subscribers",
        "5000",
        "--days",
        "10",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// `hunt` over a simulation folder with its asset file and watchlist, as JSON Lines, with
/// `extra` arguments; the run must succeed. Returns standard output.
pub fn hunt_simulation(sim: &std::path::Path, extra: &[&str]) -> String {
    let p = |f: &str| sim.join(f).to_str().unwrap().to_owned();
    let (assets, watchlist) = (p("assets.toml"), p("watchlist.txt"));
    let mut args = vec![
        "hunt",
        sim.to_str().unwrap(),
        "--assets",
        &assets,
        "--watchlist",
        &watchlist,
        "--format",
        "jsonl",
    ];
    args.extend_from_slice(extra);
    let out = run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stdout(&out)
}
