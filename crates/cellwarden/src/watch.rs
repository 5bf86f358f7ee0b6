//! `cellwarden watch`: command-line wiring of the live pipeline.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use cellwarden_event::{Alert, Level};
use cellwarden_source::Format;
use cellwarden_stream::watch::{AlertSink, Setup, Sinks, WatchConfig};
use cellwarden_telecom::access::Selection;

use super::{DbArgs, LoadOptions, Usage};

#[derive(clap::Args)]
pub(crate) struct WatchArgs {
    /// Follow this file, or files matching this glob, as they grow (repeatable).
    #[arg(long)]
    follow: Vec<String>,
    /// Receive syslog over UDP on this address (e.g. 127.0.0.1:5514).
    #[arg(long)]
    syslog_udp: Option<String>,
    /// Receive syslog over TCP on this address (octet-counted or newline framing).
    #[arg(long)]
    syslog_tcp: Option<String>,
    /// Consume Kafka: bootstrap brokers (host:port,…).
    #[arg(long)]
    kafka: Option<String>,
    /// Topic to consume (repeatable); each record one event (JSON, or a log line).
    #[arg(long)]
    topic: Vec<String>,
    /// Consumer group: processes with the same group share the partitions.
    #[arg(long, default_value = "cellwarden")]
    group: String,
    /// Write alerts to this Kafka topic, keyed by alert key.
    #[arg(long)]
    kafka_alerts: Option<String>,
    /// Extra librdkafka setting KEY=VALUE (repeatable), e.g. security.protocol=SSL.
    #[arg(long = "kafka-option", value_parser = parse_option)]
    kafka_options: Vec<(String, String)>,
    /// Part of a scaled-out deployment to run: all, parse (single-event rules, hands
    /// stateful records on to --forward) or state (stateful analytics over those records).
    #[arg(long, default_value = "all", value_parser = parse_stage)]
    stage: cellwarden_stream::Stage,
    /// Seconds a followed file or Kafka partition at its end waits before it stops holding
    /// back the judging of closed days (a slow writer or restarting producer must not be passed
    /// by).
    #[arg(long, default_value_t = 10.0)]
    idle_secs: f64,
    /// Kafka topic the parse stage hands stateful records on to.
    #[arg(long)]
    forward: Option<String>,
    /// Sigma rule files or folders (repeatable). Default: the built-in rule pack.
    #[arg(long = "rules", short = 'r')]
    rules: Vec<PathBuf>,
    /// Leave out rules below this level.
    #[arg(long, value_parser = super::parse_level)]
    min_level: Option<Level>,
    /// Format of followed files (default: told from their content): jsonl, auditd, syslog,
    /// pgaudit, pgcsv, mariadb, oracle-csv, zeek, nfdump-csv.
    #[arg(long, value_parser = parse_format)]
    format: Option<Format>,
    #[command(flatten)]
    db: DbArgs,
    /// Folder for checkpoints (source positions and the journal of analytics state).
    #[arg(long)]
    state: Option<PathBuf>,
    /// Append alerts (JSONL, as `hunt --format jsonl` writes them) to this file.
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    /// Rotate the alert file past this many MiB (keeping 5 old ones).
    #[arg(long)]
    rotate_mb: Option<u64>,
    /// Do not write alerts to standard output.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Record alerts in a case store (SQLite) at every checkpoint.
    #[arg(long)]
    store: Option<PathBuf>,
    /// Serve /metrics (Prometheus) and /health on this address.
    #[arg(long)]
    metrics: Option<String>,
    /// Seconds between checkpoints.
    #[arg(long, default_value_t = 5.0)]
    checkpoint_secs: f64,
    /// Days of database and flow aggregates kept for baselines.
    #[arg(long, default_value_t = 35)]
    retention_days: i32,
    /// Minutes after a UTC day ends (event time) before it is judged.
    #[arg(long, default_value_t = 60)]
    close_lateness_min: i64,
    /// Log source mapping file replacing the built-in one.
    #[arg(long)]
    mapping: Option<PathBuf>,
    /// Values for `%placeholders%` used with the `expand` modifier.
    #[arg(long)]
    placeholders: Option<PathBuf>,
}

fn parse_option(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got '{s}'"))
}

fn parse_stage(s: &str) -> Result<cellwarden_stream::Stage, String> {
    use cellwarden_stream::Stage;
    Ok(match s {
        "all" => Stage::All,
        "parse" => Stage::Parse,
        "state" => Stage::State,
        _ => return Err(format!("unknown stage '{s}' (all, parse, state)")),
    })
}

fn parse_format(s: &str) -> Result<Format, String> {
    Ok(match s {
        "jsonl" | "json" => Format::Json,
        "auditd" => Format::Auditd,
        "syslog" => Format::Syslog,
        "pgaudit" => Format::PgAudit,
        "pgcsv" => Format::PgCsv,
        "mariadb" => Format::MariaDbAudit,
        "oracle-csv" => Format::OracleCsv,
        "zeek" => Format::ZeekTsv,
        "nfdump-csv" => Format::NfdumpCsv,
        _ => return Err(format!("unknown format '{s}'")),
    })
}

/// Writes alerts to the case store at every checkpoint, one run per batch.
struct StoreSink {
    store: cellwarden_store::Store,
    ruleset_hash: String,
    pending: Vec<Alert>,
}

impl AlertSink for StoreSink {
    fn write(&mut self, alerts: &[Alert]) -> std::io::Result<()> {
        self.pending.extend_from_slice(alerts);
        Ok(())
    }

    fn durable(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let run = cellwarden_store::RunInfo {
            command: "watch".into(),
            started: cellwarden_event::format_timestamp(Some(jiff::Timestamp::now())),
            inputs: Vec::new(),
            ruleset_hash: self.ruleset_hash.clone(),
            events: 0,
            errors: Vec::new(),
        };
        let incidents = cellwarden_incident::build(&self.pending, 3600);
        self.store
            .record_hunt(&run, &self.pending, &incidents)
            .map_err(std::io::Error::other)?;
        self.pending.clear();
        Ok(())
    }
}

pub(crate) fn run(args: WatchArgs) -> Result<ExitCode, Usage> {
    if args.follow.is_empty()
        && args.syslog_udp.is_none()
        && args.syslog_tcp.is_none()
        && args.kafka.is_none()
    {
        return Err(Usage(
            "nothing to watch: give --follow, --syslog-udp, --syslog-tcp or --kafka".into(),
        ));
    }
    if args.kafka.is_some() && args.topic.is_empty() {
        return Err(Usage("--kafka needs at least one --topic".into()));
    }
    let needs_kafka = args.kafka_alerts.is_some() || args.forward.is_some();
    if needs_kafka && args.kafka.is_none() {
        return Err(Usage("--kafka-alerts and --forward need --kafka".into()));
    }
    if (args.stage == cellwarden_stream::Stage::Parse) != args.forward.is_some() {
        return Err(Usage(
            "--stage parse and --forward TOPIC go together".into(),
        ));
    }
    let kafka = args
        .kafka
        .as_ref()
        .map(|b| cellwarden_stream::kafka::KafkaConfig {
            brokers: b.clone(),
            options: args.kafka_options.clone(),
        });
    let mapping = super::load_mapping(args.mapping.as_ref())?;
    let opts = LoadOptions {
        placeholders: super::read_placeholders(args.placeholders.as_ref())?,
        min_level: args.min_level,
    };
    let (loaded, ruleset_hash) = super::load_rules_hashed(&args.rules, &opts)?;
    if loaded.loaded == 0 {
        return Err(Usage("no rule loaded".into()));
    }
    let db = super::db_setup(&args.db, Selection::default())?;
    let net = super::net_setup(&args.db)?;
    let config = WatchConfig {
        follow: args.follow,
        format: args.format,
        syslog_udp: args.syslog_udp,
        syslog_tcp: args.syslog_tcp,
        state: args.state,
        output: args.output,
        rotate_bytes: args.rotate_mb.map(|m| m << 20),
        stdout: !args.quiet,
        metrics: args.metrics,
        checkpoint_every: Duration::from_secs_f64(args.checkpoint_secs.max(0.05)),
        live: cellwarden_stream::LiveConfig {
            retention_days: args.retention_days.max(1),
            close_lateness_ms: args.close_lateness_min.max(0) * 60_000,
            ..Default::default()
        },
        kafka: kafka
            .as_ref()
            .map(|k| cellwarden_stream::watch::KafkaInput {
                config: k.clone(),
                topics: args.topic.clone(),
                group: args.group.clone(),
                idle_after: Duration::from_secs_f64(args.idle_secs.max(0.0)),
            }),
        stage: args.stage,
        idle_after: Duration::from_secs_f64(args.idle_secs.max(0.0)),
        ..WatchConfig::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .map_err(|e| Usage(format!("cannot handle signals: {e}")))?;
    }
    let mut store = match &args.store {
        Some(p) => Some(StoreSink {
            store: cellwarden_store::Store::open(p)
                .map_err(|e| Usage(format!("{}: {e}", p.display())))?,
            ruleset_hash,
            pending: Vec::new(),
        }),
        None => None,
    };
    let mut alert_topic = match (&kafka, &args.kafka_alerts) {
        (Some(k), Some(t)) => Some(cellwarden_stream::kafka::AlertTopic::new(k, t).map_err(Usage)?),
        _ => None,
    };
    let mut forward = match (&kafka, &args.forward) {
        (Some(k), Some(t)) => {
            Some(cellwarden_stream::kafka::ForwardTopic::new(k, t).map_err(Usage)?)
        }
        _ => None,
    };
    let mut sinks = Sinks::default();
    if let Some(s) = store.as_mut() {
        sinks.alerts.push(s);
    }
    if let Some(s) = alert_topic.as_mut() {
        sinks.alerts.push(s);
    }
    if let Some(f) = forward.as_mut() {
        sinks.forward = Some(f);
    }
    let setup = Setup {
        detectors: cellwarden_pipeline::Detectors {
            rules: &loaded.rules,
            db: &db,
            net: &net,
        },
        mapping: &mapping,
    };
    eprintln!(
        "cellwarden watch: {} rules; stop with Ctrl-C or SIGTERM",
        loaded.loaded
    );
    let summary = cellwarden_stream::watch::run(setup, &config, sinks, stop, &mut |m| {
        eprintln!("cellwarden watch: {m}")
    })
    .map_err(Usage)?;
    eprintln!(
        "cellwarden watch: stopped: {} events, {} alerts, {} errors, {} checkpoints, {} alerts already written before a restart",
        summary.events, summary.alerts, summary.errors, summary.checkpoints, summary.suppressed
    );
    Ok(ExitCode::SUCCESS)
}
