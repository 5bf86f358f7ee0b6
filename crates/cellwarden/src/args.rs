//! The command line: every command's arguments and the parsers of their values.

use std::path::PathBuf;

use cellwarden_event::Level;
use cellwarden_source::Format;
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "cellwarden",
    version,
    about = "Hunt for intruders in telecom operator logs with Sigma rules."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the rules over log files and folders (EVTX, JSON; .gz too; `-` for stdin).
    Hunt(HuntArgs),
    /// Whose subscriber records were read, by which accounts, from where, when, and why it
    /// is suspicious (database audit logs: pgaudit, MySQL/Percona, MariaDB, Oracle).
    Scope(ScopeArgs),
    /// Run the same detections live over growing files and syslog, with checkpoints.
    Watch(Box<WatchArgs>),
    /// Write the logs of a simulated operator under attack, with the ground truth.
    Simulate(SimulateArgs),
    /// Score hunt alerts (JSONL/JSON) and scope reports (JSON) against a ground truth.
    Eval {
        /// ground-truth.json written by `simulate`.
        #[arg(long)]
        truth: PathBuf,
        /// Alert files (`hunt --format jsonl|json`) and scope reports (`scope`, JSON).
        #[arg(required = true)]
        results: Vec<PathBuf>,
        /// Campaigns (`hunt --campaigns --format jsonl|json`) to score for completeness and
        /// purity against the alerts given.
        #[arg(long)]
        campaigns: Option<PathBuf>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Simulate a small operator under attack, hunt and scope it, and tell what happened.
    Demo {
        /// Folder for the simulated logs and the reports (default: ./cellwarden-demo).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write everything in a case store out: alerts with triage state, campaigns, incidents,
    /// the latest scope report.
    Export {
        /// The case store.
        #[arg(long, default_value = "cellwarden.db")]
        store: PathBuf,
        /// jsonl, csv (alerts only) or ecs (Elasticsearch/OpenSearch documents).
        #[arg(long, default_value = "jsonl")]
        format: String,
        /// Write here instead of standard output (`-`: standard output).
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
    },
    /// The dashboard over a case store (overview, campaigns, incidents, alert search, scope,
    /// triage).
    Serve {
        /// The case store.
        #[arg(long, default_value = "cellwarden.db")]
        store: PathBuf,
        /// Address to listen on; anything but loopback needs --token-file.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// File holding the token every request must carry.
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// A host name the dashboard is reached by besides its address (a DNS name, a reverse
        /// proxy's; repeatable). Requests addressed to other names are refused.
        #[arg(long = "host-name")]
        host_names: Vec<String>,
    },
    /// Print the events cellwarden reads from log files, as JSON Lines (what a rule sees:
    /// fields, time, host, log source).
    Events {
        /// Log files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Log source mapping file replacing the built-in one.
        #[arg(long)]
        mapping: Option<PathBuf>,
        #[command(flatten)]
        case: CaseArgs,
    },
    /// Rule tools.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
}

#[derive(Subcommand)]
pub enum RulesCommand {
    /// Load every rule and report what loads, what is unsupported and what is invalid.
    Check {
        /// Rule files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Print one JSON object (loaded, unsupported, invalid, problems).
        #[arg(long)]
        json: bool,
        /// Values for `%placeholders%` used with the `expand` modifier (YAML: name: [values]).
        #[arg(long)]
        placeholders: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum OutFormat {
    Table,
    /// One JSON object a line.
    Jsonl,
    /// One JSON array.
    Json,
    Csv,
}

#[derive(clap::Args)]
pub struct HuntArgs {
    /// Log files or folders.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Sigma rule files or folders (repeatable). Default: the built-in rule pack.
    #[arg(long = "rules", short = 'r')]
    pub rules: Vec<PathBuf>,
    /// Leave out rules below this level.
    #[arg(long, value_parser = parse_level)]
    pub min_level: Option<Level>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: OutFormat,
    /// Write alerts here instead of standard output (`-`: standard output).
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Log source mapping file replacing the built-in one.
    #[arg(long)]
    pub mapping: Option<PathBuf>,
    /// Values for `%placeholders%` used with the `expand` modifier.
    #[arg(long)]
    pub placeholders: Option<PathBuf>,
    /// Join alerts into incidents (shared host, account or address) and print those instead.
    #[arg(long)]
    pub incidents: bool,
    /// Longest quiet time, in seconds, between two alerts of one entity in one incident.
    #[arg(long, default_value_t = 3600)]
    pub gap: i64,
    /// Join incidents into campaigns (one intrusion across hosts, accounts, databases and the
    /// network, over days and weeks; docs/campaigns.md) and print those instead.
    #[arg(long, conflicts_with = "incidents")]
    pub campaigns: bool,
    /// Longest time, in days, between two alerts joined into one campaign by an account, an
    /// outside address or a foothold host.
    #[arg(long, default_value_t = 30)]
    pub campaign_window: i64,
    /// Write an ATT&CK Navigator layer of the techniques seen (scores = alert counts).
    #[arg(long)]
    pub attack_layer: Option<PathBuf>,
    /// Write the core network roles learnt from the flows (GTP, Diameter, SIGTRAN, RADIUS
    /// speakers and their established peers) as an asset file, to correct and pass with
    /// --assets (docs/assets.md).
    #[arg(long)]
    pub assets_out: Option<PathBuf>,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub case: CaseArgs,
    /// Skip the database and flow analytics (to measure the rest alone).
    #[arg(long, hide = true)]
    pub no_analytics: bool,
    /// MiB of memory for alerts; past it they are sorted into temporary files and merged at
    /// output (`--incidents` and `--store` read them all back into memory).
    #[arg(long, default_value_t = 256)]
    pub alert_memory: usize,
    /// Record the run in a case store (SQLite; default ./cellwarden.db).
    #[arg(long, num_args = 0..=1, default_missing_value = "cellwarden.db")]
    pub store: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct SimulateArgs {
    /// Folder to write the logs and ground-truth.json into.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value_t = 10_000)]
    pub subscribers: u64,
    #[arg(long, default_value_t = 10)]
    pub days: u32,
    /// softcell, insider, lightbasin, benign or tracking (signalling capture) (repeatable).
    #[arg(long = "scenario", value_parser = parse_scenario)]
    pub scenarios: Vec<cellwarden_sim::Scenario>,
}

/// What the inputs do not say for themselves (shared by `hunt`, `scope` and `events`; see
/// docs/case.md).
#[derive(clap::Args, Default, Clone)]
pub struct CaseArgs {
    /// Year of times written without one (RFC 3164 syslog), for all inputs or those a glob
    /// names: `2025` or `'*/auth.log*=2025'` (repeatable; default: inferred from the case).
    #[arg(long = "year", value_name = "[GLOB=]YEAR")]
    pub years: Vec<String>,
    /// Time zone of times written without an offset: `Europe/Paris`, `+02:00`, optionally for
    /// the inputs a glob names (`'hss-*/*=Asia/Manila'`; repeatable; default UTC).
    #[arg(long = "timezone", value_name = "[GLOB=]ZONE")]
    pub zones: Vec<String>,
    /// Hosts of inputs whose records name none: one `GLOB HOST` a line.
    #[arg(long)]
    pub host_map: Option<PathBuf>,
    /// PostgreSQL `log_line_prefix` of the server logs, as in postgresql.conf
    /// (`'%m [%p] %u@%d %r '`); repeatable, tried in order; lines that follow none are read
    /// by the shape of their prefix.
    #[arg(long = "pg-prefix", value_name = "FORMAT")]
    pub pg_prefixes: Vec<String>,
}

/// Settings of the analytics (shared by `hunt` and `scope`).
#[derive(clap::Args, Default)]
pub struct DbArgs {
    /// Protected subscribers: one identifier a line, optional label; `allow ACCOUNT` lines.
    #[arg(long)]
    pub watchlist: Option<PathBuf>,
    /// Schema map (TOML): record tables and identifier columns (see docs/schema.md).
    #[arg(long)]
    pub schema: Option<PathBuf>,
    /// Detection thresholds (TOML, `[db]` table; see docs/config.md).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Country calling code for national MSISDNs (overrides the schema map's).
    #[arg(long)]
    pub country_code: Option<String>,
    /// The operator's subscribers (CSV with a header; columns named msisdn, imsi, imei, iccid):
    /// one row, one person, so that the report lists people, not identifiers.
    #[arg(long)]
    pub subscriber_map: Option<PathBuf>,
    /// Asset file (TOML): internal networks, host roles, allowed transfers (docs/assets.md).
    #[arg(long)]
    pub assets: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ScopeFormat {
    Json,
    /// One row per subscriber.
    Csv,
    /// A readable report for the people who notify subscribers.
    Html,
}

#[derive(clap::Args)]
pub struct ScopeArgs {
    /// Database audit logs (files or folders; .gz too; `-` for stdin).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub case: CaseArgs,
    /// Every subscriber this account read (repeatable; compared case-insensitively).
    #[arg(long)]
    pub account: Vec<String>,
    /// Every subscriber read from this client host (repeatable).
    #[arg(long)]
    pub host: Vec<String>,
    /// Start of the time range for --account/--host (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long, value_parser = parse_time)]
    pub since: Option<cellwarden_event::Timestamp>,
    /// End of the time range (inclusive; a bare date means the end of that day).
    #[arg(long, value_parser = parse_until)]
    pub until: Option<cellwarden_event::Timestamp>,
    /// Replace identifiers with keyed pseudonyms (HMAC-SHA256 with the key in this file).
    #[arg(long)]
    pub pseudonymise: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "json")]
    pub format: ScopeFormat,
    /// Write the report here instead of standard output (`-`: standard output).
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// Write the schema map in use (configured and inferred) as TOML, to correct and reuse.
    #[arg(long)]
    pub schema_out: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Log source mapping file replacing the built-in one.
    #[arg(long)]
    pub mapping: Option<PathBuf>,
    /// Parse every SQL statement instead of reusing the analysis of its fingerprint.
    #[arg(long, hide = true)]
    pub no_sql_cache: bool,
    /// Record the run in a case store (SQLite; default ./cellwarden.db).
    #[arg(long, num_args = 0..=1, default_missing_value = "cellwarden.db")]
    pub store: Option<PathBuf>,
}

pub fn parse_scenario(s: &str) -> Result<cellwarden_sim::Scenario, String> {
    cellwarden_sim::Scenario::parse(s)
        .ok_or_else(|| format!("unknown scenario '{s}' (softcell, insider, benign)"))
}

pub fn parse_time(s: &str) -> Result<cellwarden_event::Timestamp, String> {
    cellwarden_event::parse_timestamp(s)
        .or_else(|| cellwarden_event::parse_timestamp(&format!("{s}T00:00:00Z")))
        .ok_or_else(|| format!("not a time: '{s}' (RFC 3339 or YYYY-MM-DD)"))
}

pub fn parse_until(s: &str) -> Result<cellwarden_event::Timestamp, String> {
    if s.len() == 10 {
        return cellwarden_event::parse_timestamp(&format!("{s}T23:59:59.999999Z"))
            .ok_or_else(|| format!("not a date: '{s}'"));
    }
    parse_time(s)
}

pub fn parse_level(s: &str) -> Result<Level, String> {
    Level::parse(s)
        .ok_or_else(|| format!("unknown level '{s}' (informational, low, medium, high, critical)"))
}

#[derive(clap::Args)]
pub struct WatchArgs {
    /// Follow this file, or files matching this glob, as they grow (repeatable).
    #[arg(long)]
    pub follow: Vec<String>,
    /// Receive syslog over UDP on this address (e.g. 127.0.0.1:5514).
    #[arg(long)]
    pub syslog_udp: Option<String>,
    /// Receive syslog over TCP on this address (octet-counted or newline framing).
    #[arg(long)]
    pub syslog_tcp: Option<String>,
    /// Consume Kafka: bootstrap brokers (host:port,…).
    #[arg(long)]
    pub kafka: Option<String>,
    /// Topic to consume (repeatable); each record one event (JSON, or a log line).
    #[arg(long)]
    pub topic: Vec<String>,
    /// Consumer group: processes with the same group share the partitions.
    #[arg(long, default_value = "cellwarden")]
    pub group: String,
    /// Write alerts to this Kafka topic, keyed by alert key.
    #[arg(long)]
    pub kafka_alerts: Option<String>,
    /// Extra librdkafka setting KEY=VALUE (repeatable), e.g. security.protocol=SSL.
    #[arg(long = "kafka-option", value_parser = parse_option)]
    pub kafka_options: Vec<(String, String)>,
    /// Part of a scaled-out deployment to run: all, parse (single-event rules, hands
    /// stateful records on to --forward) or state (stateful analytics over those records).
    #[arg(long, default_value = "all", value_parser = parse_stage)]
    pub stage: cellwarden_stream::Stage,
    /// Seconds a followed file or Kafka partition at its end waits before it stops holding
    /// back the judging of closed days (a slow writer or restarting producer must not be passed
    /// by).
    #[arg(long, default_value_t = 10.0)]
    pub idle_secs: f64,
    /// Kafka topic the parse stage hands stateful records on to.
    #[arg(long)]
    pub forward: Option<String>,
    /// How often followed files are looked at for new lines, in milliseconds.
    #[arg(long, default_value_t = 200)]
    pub poll_ms: u64,
    /// State stage: partition the stateful analytics over the state workers of the group,
    /// sharing what their detections compare through this Kafka topic (see docs/watch.md).
    #[arg(long)]
    pub exchange: Option<String>,
    /// Partitioned state workers: write each partition's state to this Kafka topic (create it
    /// compacted) after it judges days, so a worker taking a partition over restores it
    /// instead of reading the handed-on topic from its start (see docs/watch.md).
    #[arg(long)]
    pub changelog: Option<String>,
    /// Shortest time between two states of one partition written to --changelog, in seconds.
    #[arg(long, default_value_t = 60.0)]
    pub changelog_secs: f64,
    /// Sigma rule files or folders (repeatable). Default: the built-in rule pack.
    #[arg(long = "rules", short = 'r')]
    pub rules: Vec<PathBuf>,
    /// Leave out rules below this level.
    #[arg(long, value_parser = parse_level)]
    pub min_level: Option<Level>,
    /// Format of followed files (default: told from their content): jsonl, auditd, syslog,
    /// pgaudit, pgcsv, mariadb, mysql-audit-xml, percona-audit-csv, oracle-csv, oracle-xml,
    /// zeek, nfdump-csv.
    #[arg(long, value_parser = parse_format)]
    pub format: Option<Format>,
    #[command(flatten)]
    pub db: DbArgs,
    /// Folder for checkpoints (source positions and the journal of analytics state).
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Rewrite this scope report each time a day is judged (HTML for .html, CSV for .csv,
    /// JSON otherwise): whose records were read in suspicious sessions so far.
    #[arg(long)]
    pub scope_out: Option<PathBuf>,
    /// Replace identifiers in the scope report with keyed pseudonyms (key in this file).
    #[arg(long)]
    pub pseudonymise: Option<PathBuf>,
    /// Append alerts (JSONL, as `hunt --format jsonl` writes them) to this file.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// Rotate the alert file past this many MiB (keeping 5 old ones).
    #[arg(long)]
    pub rotate_mb: Option<u64>,
    /// Do not write alerts to standard output.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Record alerts in a case store (SQLite) at every checkpoint.
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Serve /metrics (Prometheus) and /health on this address.
    #[arg(long)]
    pub metrics: Option<String>,
    /// Seconds between checkpoints.
    #[arg(long, default_value_t = 5.0)]
    pub checkpoint_secs: f64,
    /// Days of database and flow aggregates kept for baselines.
    #[arg(long, default_value_t = 35)]
    pub retention_days: i32,
    /// Minutes after a UTC day ends (event time) before it is judged.
    #[arg(long, default_value_t = 60)]
    pub close_lateness_min: i64,
    /// Log source mapping file replacing the built-in one.
    #[arg(long)]
    pub mapping: Option<PathBuf>,
    /// Values for `%placeholders%` used with the `expand` modifier.
    #[arg(long)]
    pub placeholders: Option<PathBuf>,
}

pub fn parse_option(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got '{s}'"))
}

pub fn parse_stage(s: &str) -> Result<cellwarden_stream::Stage, String> {
    use cellwarden_stream::Stage;
    Ok(match s {
        "all" => Stage::All,
        "parse" => Stage::Parse,
        "state" => Stage::State,
        _ => return Err(format!("unknown stage '{s}' (all, parse, state)")),
    })
}

pub fn parse_format(s: &str) -> Result<Format, String> {
    Ok(match s {
        "jsonl" | "json" => Format::Json,
        "auditd" => Format::Auditd,
        "syslog" => Format::Syslog,
        "pglog" | "pgaudit" => Format::PgLog,
        "pgcsv" => Format::PgCsv,
        "mariadb" => Format::MariaDbAudit,
        "mysql-audit-xml" => Format::MySqlAuditXml,
        "percona-audit-csv" => Format::PerconaAuditCsv,
        "oracle-xml" => Format::OracleAuditXml,
        "oracle-csv" => Format::OracleCsv,
        "zeek" => Format::ZeekTsv,
        "nfdump-csv" => Format::NfdumpCsv,
        _ => return Err(format!("unknown format '{s}'")),
    })
}
