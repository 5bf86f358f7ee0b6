//! `/metrics` (Prometheus text format) and `/health` over plain HTTP/1.1.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cellwarden_pipeline::CoreSize;

/// The figures the watch loop publishes.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Events in, by source.
    pub events: Vec<(String, u64)>,
    /// Alerts by level.
    pub alerts: Vec<(String, u64)>,
    /// Input errors.
    pub errors: u64,
    /// Events older than the last judged day.
    pub late_events: u64,
    /// Seconds between now and the watermark (event time), if any.
    pub lag_seconds: Option<f64>,
    /// State entries by kind.
    pub state_entries: Vec<(String, usize)>,
    /// Seconds since the last checkpoint.
    pub checkpoint_age_seconds: f64,
    /// Checkpoints written.
    pub checkpoints: u64,
    /// Write or commit failures (retried).
    pub faults: u64,
    /// Partitions of the handed-on topic this worker owns (partitioned state workers only).
    pub partitions_owned: Option<usize>,
}

fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The `# HELP` and `# TYPE` lines of a metric family.
fn family(o: &mut String, name: &str, help: &str, kind: &str) {
    o.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
}

/// The state entries of one or more engines, as published.
pub fn state_entries(sizes: impl IntoIterator<Item = CoreSize>) -> Vec<(String, usize)> {
    let mut t = CoreSize::default();
    for s in sizes {
        t.account_days += s.account_days;
        t.subscriber_days += s.subscriber_days;
        t.pair_days += s.pair_days;
        t.conn_series += s.conn_series;
        t.correlation_groups += s.correlation_groups;
        t.pending_matches += s.pending_matches;
        t.emitted_keys += s.emitted_keys;
    }
    vec![
        ("account_days".into(), t.account_days),
        ("subscriber_days".into(), t.subscriber_days),
        ("pair_days".into(), t.pair_days),
        ("conn_series".into(), t.conn_series),
        ("correlation_groups".into(), t.correlation_groups),
        ("pending_matches".into(), t.pending_matches),
        ("emitted_keys".into(), t.emitted_keys),
    ]
}

/// Seconds between now and a watermark (milliseconds since 1970).
pub fn lag_of(watermark: Option<i64>) -> Option<f64> {
    watermark.map(|w| (jiff::Timestamp::now().as_millisecond() - w) as f64 / 1000.0)
}

/// Published metrics and the thread serving them.
pub type Server = (Arc<Mutex<Metrics>>, Option<std::thread::JoinHandle<()>>);

/// Starts serving `/metrics` and `/health` on `addr` (when given) until `stop`: the metrics
/// to fill, and the server's thread.
pub fn start(
    addr: Option<&str>,
    stop: &Arc<AtomicBool>,
    log: &mut dyn FnMut(&str),
) -> std::io::Result<Server> {
    let metrics = Arc::new(Mutex::new(Metrics::default()));
    let Some(addr) = addr else {
        return Ok((metrics, None));
    };
    let l = TcpListener::bind(addr)?;
    log(&format!("metrics on http://{}/metrics", l.local_addr()?));
    let (m, stop) = (Arc::clone(&metrics), Arc::clone(stop));
    Ok((metrics, Some(std::thread::spawn(move || serve(l, m, stop)))))
}

impl Metrics {
    /// Sets the counters of events by source and alerts by level.
    pub fn set_counts<'a>(
        &mut self,
        events: &BTreeMap<String, u64>,
        alerts: impl IntoIterator<Item = (&'a &'static str, &'a u64)>,
    ) {
        self.events = events.iter().map(|(k, v)| (k.clone(), *v)).collect();
        self.alerts = alerts
            .into_iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
    }

    /// The Prometheus text exposition of the metrics.
    pub fn render(&self) -> String {
        let mut o = String::new();
        family(
            &mut o,
            "cellwarden_events_total",
            "Events read, by source.",
            "counter",
        );
        for (s, n) in &self.events {
            o.push_str(&format!(
                "cellwarden_events_total{{source=\"{}\"}} {n}\n",
                label(s)
            ));
        }
        family(
            &mut o,
            "cellwarden_alerts_total",
            "Alerts raised, by level.",
            "counter",
        );
        for (l, n) in &self.alerts {
            o.push_str(&format!("cellwarden_alerts_total{{level=\"{l}\"}} {n}\n"));
        }
        let simple: [(&str, &str, &str, String); 5] = [
            (
                "cellwarden_read_errors_total",
                "Records or reads that failed.",
                "counter",
                self.errors.to_string(),
            ),
            (
                "cellwarden_late_events_total",
                "Stateful events older than the last judged day.",
                "counter",
                self.late_events.to_string(),
            ),
            (
                "cellwarden_checkpoint_age_seconds",
                "Seconds since the last checkpoint.",
                "gauge",
                format!("{:.3}", self.checkpoint_age_seconds),
            ),
            (
                "cellwarden_checkpoints_total",
                "Checkpoints written.",
                "counter",
                self.checkpoints.to_string(),
            ),
            (
                "cellwarden_faults_total",
                "Sink or checkpoint writes that failed and were retried.",
                "counter",
                self.faults.to_string(),
            ),
        ];
        for (name, help, kind, v) in simple {
            family(&mut o, name, help, kind);
            o.push_str(&format!("{name} {v}\n"));
        }
        if let Some(n) = self.partitions_owned {
            let name = "cellwarden_partitions_owned";
            family(
                &mut o,
                name,
                "Partitions of the handed-on topic this state worker owns.",
                "gauge",
            );
            o.push_str(&format!("{name} {n}\n"));
        }
        if let Some(lag) = self.lag_seconds {
            let name = "cellwarden_lag_seconds";
            family(
                &mut o,
                name,
                "Wall-clock time minus the watermark.",
                "gauge",
            );
            o.push_str(&format!("{name} {lag:.3}\n"));
        }
        family(
            &mut o,
            "cellwarden_state_entries",
            "Entries held by the live analytics.",
            "gauge",
        );
        for (k, n) in &self.state_entries {
            o.push_str(&format!("cellwarden_state_entries{{kind=\"{k}\"}} {n}\n"));
        }
        o
    }
}

/// Serves the metrics until `stop`.
pub fn serve(listener: TcpListener, metrics: Arc<Mutex<Metrics>>, stop: Arc<AtomicBool>) {
    let _ = listener.set_nonblocking(true);
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((s, _)) => {
                let text = metrics.lock().map(|m| m.render()).unwrap_or_default();
                let _ = answer(s, &text);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn answer(stream: TcpStream, metrics: &str) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut r = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    r.read_line(&mut request)?;
    // Headers are read and ignored.
    let mut line = String::new();
    while r.read_line(&mut line)? > 2 {
        line.clear();
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/");
    let (status, ctype, body) = match path {
        "/metrics" => ("200 OK", "text/plain; version=0.0.4", metrics.to_owned()),
        "/health" => ("200 OK", "text/plain", "ok\n".to_owned()),
        _ => ("404 Not Found", "text/plain", "not found\n".to_owned()),
    };
    let mut w = stream;
    write!(
        w,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics {
            events: vec![("/var/log/a\"b".into(), 3)],
            alerts: vec![("high".into(), 2)],
            lag_seconds: Some(1.5),
            state_entries: vec![("account_days".into(), 4)],
            ..Default::default()
        };
        let t = m.render();
        assert!(t.contains("cellwarden_events_total{source=\"/var/log/a\\\"b\"} 3\n"));
        assert!(t.contains("cellwarden_alerts_total{level=\"high\"} 2\n"));
        assert!(t.contains("cellwarden_lag_seconds 1.500\n"));
        assert!(t.contains("cellwarden_state_entries{kind=\"account_days\"} 4\n"));
    }
}
