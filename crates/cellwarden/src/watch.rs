//! `cellwarden watch`: command-line wiring of the live pipeline.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use cellwarden_event::{Alert, Level};
use cellwarden_source::Format;
use cellwarden_stream::watch::{AlertSink, Setup, WatchConfig};
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
    if args.follow.is_empty() && args.syslog_udp.is_none() && args.syslog_tcp.is_none() {
        return Err(Usage(
            "nothing to watch: give --follow, --syslog-udp or --syslog-tcp".into(),
        ));
    }
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
    let mut extra: Vec<&mut dyn AlertSink> = Vec::new();
    if let Some(s) = store.as_mut() {
        extra.push(s);
    }
    let setup = Setup {
        rules: &loaded.rules,
        mapping: &mapping,
        db: &db,
        net: &net,
    };
    eprintln!(
        "cellwarden watch: {} rules; stop with Ctrl-C or SIGTERM",
        loaded.loaded
    );
    let summary = cellwarden_stream::watch::run(setup, &config, &mut extra, stop, &mut |m| {
        eprintln!("cellwarden watch: {m}")
    })
    .map_err(Usage)?;
    eprintln!(
        "cellwarden watch: stopped: {} events, {} alerts, {} errors, {} checkpoints, {} alerts already written before a restart",
        summary.events, summary.alerts, summary.errors, summary.checkpoints, summary.suppressed
    );
    Ok(ExitCode::SUCCESS)
}
