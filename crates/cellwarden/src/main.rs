//! The `cellwarden` command: argument parsing and wiring of the library crates.

mod watch;

use std::collections::BTreeMap;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cellwarden_event::Level;
use cellwarden_pipeline::{DbSetup, HuntConfig, HuntResult, NetSetup, Progress, hunt};
use cellwarden_sigma::{LoadOptions, Loaded, RuleSource};
use cellwarden_source::Mapping;
use cellwarden_telecom::access::Selection;
use cellwarden_telecom::detect::{DbConfig, Watchlist};
use cellwarden_telecom::schema::Schema;
use clap::{Parser, Subcommand, ValueEnum};
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "cellwarden",
    version,
    about = "Hunt for intruders in telecom operator logs with Sigma rules."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the rules over log files and folders (EVTX, JSON; .gz too; `-` for stdin).
    Hunt(HuntArgs),
    /// Whose subscriber records were read, by which accounts, from where, when, and why it
    /// is suspicious (database audit logs: pgaudit, MySQL/Percona, MariaDB, Oracle).
    Scope(ScopeArgs),
    /// Run the same detections live over growing files and syslog, with checkpoints.
    Watch(watch::WatchArgs),
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
    /// Write everything in a case store out: alerts with triage state, incidents, the latest
    /// scope report.
    Export {
        /// The case store.
        #[arg(long, default_value = "cellwarden.db")]
        store: PathBuf,
        /// jsonl, csv (alerts only) or ecs (Elasticsearch/OpenSearch documents).
        #[arg(long, default_value = "jsonl")]
        format: String,
        /// Write here instead of standard output.
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
    },
    /// The dashboard over a case store (overview, incidents, alert search, scope, triage).
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
    },
    /// Rule tools.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
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
enum OutFormat {
    Table,
    /// One JSON object a line.
    Jsonl,
    /// One JSON array.
    Json,
    Csv,
}

#[derive(clap::Args)]
struct HuntArgs {
    /// Log files or folders.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Sigma rule files or folders (repeatable). Default: the built-in rule pack.
    #[arg(long = "rules", short = 'r')]
    rules: Vec<PathBuf>,
    /// Leave out rules below this level.
    #[arg(long, value_parser = parse_level)]
    min_level: Option<Level>,
    #[arg(long, value_enum, default_value = "table")]
    format: OutFormat,
    /// Write alerts here instead of standard output.
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Log source mapping file replacing the built-in one.
    #[arg(long)]
    mapping: Option<PathBuf>,
    /// Values for `%placeholders%` used with the `expand` modifier.
    #[arg(long)]
    placeholders: Option<PathBuf>,
    /// Join alerts into incidents (shared host, account or address) and print those instead.
    #[arg(long)]
    incidents: bool,
    /// Longest quiet time, in seconds, between two alerts of one entity in one incident.
    #[arg(long, default_value_t = 3600)]
    gap: i64,
    /// Write an ATT&CK Navigator layer of the techniques seen (scores = alert counts).
    #[arg(long)]
    attack_layer: Option<PathBuf>,
    #[command(flatten)]
    db: DbArgs,
    /// Skip the database and flow analytics (to measure the rest alone).
    #[arg(long, hide = true)]
    no_analytics: bool,
    /// Record the run in a case store (SQLite; default ./cellwarden.db).
    #[arg(long, num_args = 0..=1, default_missing_value = "cellwarden.db")]
    store: Option<PathBuf>,
}

#[derive(clap::Args)]
struct SimulateArgs {
    /// Folder to write the logs and ground-truth.json into.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value_t = 10_000)]
    subscribers: u64,
    #[arg(long, default_value_t = 10)]
    days: u32,
    /// softcell, insider or benign (repeatable).
    #[arg(long = "scenario", value_parser = parse_scenario)]
    scenarios: Vec<cellwarden_sim::Scenario>,
}

fn parse_scenario(s: &str) -> Result<cellwarden_sim::Scenario, String> {
    cellwarden_sim::Scenario::parse(s)
        .ok_or_else(|| format!("unknown scenario '{s}' (softcell, insider, benign)"))
}

fn run_simulate(args: SimulateArgs) -> Result<ExitCode, Usage> {
    if args.days == 0 || args.subscribers < 100 {
        return Err(Usage(
            "--days must be at least 1 and --subscribers at least 100".into(),
        ));
    }
    let config = cellwarden_sim::SimConfig {
        seed: args.seed,
        subscribers: args.subscribers,
        days: args.days,
        scenarios: if args.scenarios.is_empty() {
            vec![cellwarden_sim::Scenario::Softcell]
        } else {
            args.scenarios
        },
    };
    let start = std::time::Instant::now();
    let truth = cellwarden_sim::simulate(&config, &args.out)
        .map_err(|e| Usage(format!("{}: {e}", args.out.display())))?;
    let lines: u64 = truth.lines.iter().map(|(_, n)| n).sum();
    eprintln!(
        "simulated {} days of an operator with {} subscribers ({}): {lines} log lines in {:.2} s; {} attack steps, {} targeted subscribers, {} exfiltration flows; ground truth in {}",
        truth.days,
        truth.subscribers,
        truth.scenarios.join(", "),
        start.elapsed().as_secs_f64(),
        truth.steps.len(),
        truth.targets.len(),
        truth.exfiltration.len(),
        args.out.join("ground-truth.json").display()
    );
    Ok(ExitCode::SUCCESS)
}

fn run_eval(truth: &PathBuf, results: &[PathBuf], json: bool) -> Result<ExitCode, Usage> {
    let truth: serde_json::Value = serde_json::from_str(&read_file(truth)?)
        .map_err(|e| Usage(format!("{}: {e}", truth.display())))?;
    let texts = results
        .iter()
        .map(read_file)
        .collect::<Result<Vec<_>, _>>()?;
    let (alerts, scopes) = cellwarden_sim::eval::read_results(&texts);
    if alerts.is_empty() && scopes.is_empty() {
        return Err(Usage(
            "no alerts or scope report in the result files".into(),
        ));
    }
    let score = cellwarden_sim::eval::evaluate(&truth, &alerts, &scopes);
    if json {
        println!("{}", serde_json::to_string(&score).unwrap_or_default());
    } else {
        print!(
            "{}",
            cellwarden_report::sanitize_terminal(&cellwarden_sim::eval::table(&score))
                .replace("\\u{a}", "\n")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Settings of the analytics (shared by `hunt` and `scope`).
#[derive(clap::Args, Default)]
struct DbArgs {
    /// Protected subscribers: one identifier a line, optional label; `allow ACCOUNT` lines.
    #[arg(long)]
    watchlist: Option<PathBuf>,
    /// Schema map (TOML): record tables and identifier columns (see docs/schema.md).
    #[arg(long)]
    schema: Option<PathBuf>,
    /// Detection thresholds (TOML, `[db]` table; see docs/config.md).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Country calling code for national MSISDNs (overrides the schema map's).
    #[arg(long)]
    country_code: Option<String>,
    /// Asset file (TOML): internal networks, host roles, allowed transfers (docs/assets.md).
    #[arg(long)]
    assets: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum ScopeFormat {
    Json,
    /// One row per subscriber.
    Csv,
    /// A readable report for the people who notify subscribers.
    Html,
}

#[derive(clap::Args)]
struct ScopeArgs {
    /// Database audit logs (files or folders; .gz too; `-` for stdin).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    db: DbArgs,
    /// Every subscriber this account read (repeatable; compared case-insensitively).
    #[arg(long)]
    account: Vec<String>,
    /// Every subscriber read from this client host (repeatable).
    #[arg(long)]
    host: Vec<String>,
    /// Start of the time range for --account/--host (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long, value_parser = parse_time)]
    since: Option<cellwarden_event::Timestamp>,
    /// End of the time range (inclusive; a bare date means the end of that day).
    #[arg(long, value_parser = parse_until)]
    until: Option<cellwarden_event::Timestamp>,
    /// Replace identifiers with keyed pseudonyms (HMAC-SHA256 with the key in this file).
    #[arg(long)]
    pseudonymise: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "json")]
    format: ScopeFormat,
    /// Write the report here instead of standard output.
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    /// Write the schema map in use (configured and inferred) as TOML, to correct and reuse.
    #[arg(long)]
    schema_out: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Log source mapping file replacing the built-in one.
    #[arg(long)]
    mapping: Option<PathBuf>,
    /// Parse every SQL statement instead of reusing the analysis of its fingerprint.
    #[arg(long, hide = true)]
    no_sql_cache: bool,
    /// Record the run in a case store (SQLite; default ./cellwarden.db).
    #[arg(long, num_args = 0..=1, default_missing_value = "cellwarden.db")]
    store: Option<PathBuf>,
}

fn parse_time(s: &str) -> Result<cellwarden_event::Timestamp, String> {
    cellwarden_event::parse_timestamp(s)
        .or_else(|| cellwarden_event::parse_timestamp(&format!("{s}T00:00:00Z")))
        .ok_or_else(|| format!("not a time: '{s}' (RFC 3339 or YYYY-MM-DD)"))
}

fn parse_until(s: &str) -> Result<cellwarden_event::Timestamp, String> {
    if s.len() == 10 {
        return cellwarden_event::parse_timestamp(&format!("{s}T23:59:59.999999Z"))
            .ok_or_else(|| format!("not a date: '{s}'"));
    }
    parse_time(s)
}

fn read_file(p: &PathBuf) -> Result<String, Usage> {
    std::fs::read_to_string(p).map_err(|e| Usage(format!("{}: {e}", p.display())))
}

/// The database-analytics setup from the command line; watchlist problems are reported.
fn db_setup(args: &DbArgs, selection: Selection) -> Result<DbSetup, Usage> {
    let mut schema = match &args.schema {
        Some(p) => {
            Schema::from_toml(&read_file(p)?).map_err(|e| Usage(format!("{}: {e}", p.display())))?
        }
        None => Schema::default(),
    };
    if let Some(cc) = &args.country_code {
        let cc = cc.trim_start_matches('+').to_owned();
        if cc.is_empty() || !cc.bytes().all(|b| b.is_ascii_digit()) || cc.len() > 3 {
            return Err(Usage(format!(
                "--country-code: '{cc}' is not a calling code"
            )));
        }
        schema.numbering.country_code = Some(cc);
    }
    let config = match &args.config {
        Some(p) => DbConfig::from_toml(&read_file(p)?)
            .map_err(|e| Usage(format!("{}: {e}", p.display())))?,
        None => DbConfig::default(),
    };
    let watchlist = match &args.watchlist {
        Some(p) => {
            let (w, bad) = Watchlist::parse(&read_file(p)?, &schema.numbering);
            for (line, msg) in &bad {
                eprintln!(
                    "error: {}:{line}: {}",
                    p.display(),
                    cellwarden_report::sanitize_terminal(msg)
                );
            }
            if w.ids.is_empty() {
                return Err(Usage(format!(
                    "{}: no identifier in the watchlist",
                    p.display()
                )));
            }
            w
        }
        None => Watchlist::default(),
    };
    Ok(DbSetup {
        schema: Arc::new(schema),
        watchlist: Arc::new(watchlist),
        selection: Arc::new(selection),
        config,
        no_cache: false,
        disabled: false,
    })
}

fn net_setup(args: &DbArgs) -> Result<NetSetup, Usage> {
    let assets = match &args.assets {
        Some(p) => cellwarden_net::Assets::from_toml(&read_file(p)?)
            .map_err(|e| Usage(format!("{}: {e}", p.display())))?,
        None => cellwarden_net::Assets::default(),
    };
    let config = match &args.config {
        Some(p) => cellwarden_net::NetConfig::from_toml(&read_file(p)?)
            .map_err(|e| Usage(format!("{}: {e}", p.display())))?,
        None => cellwarden_net::NetConfig::default(),
    };
    Ok(NetSetup {
        assets: Arc::new(assets),
        config,
        disabled: false,
    })
}

/// What a stored run records of itself.
fn run_info(
    command: &str,
    started: String,
    paths: &[PathBuf],
    ruleset_hash: String,
    result: &cellwarden_pipeline::HuntResult,
) -> cellwarden_store::RunInfo {
    cellwarden_store::RunInfo {
        command: command.into(),
        started,
        inputs: paths.iter().map(|p| p.display().to_string()).collect(),
        ruleset_hash,
        events: result.events,
        errors: result.errors.iter().map(|e| e.to_string()).collect(),
    }
}

/// Reports recording a run in the store; the exit code when it failed.
fn stored(path: &std::path::Path, r: cellwarden_store::Result<String>) -> Option<ExitCode> {
    match r {
        Ok(what) => {
            eprintln!("store: {what}");
            None
        }
        Err(e) => {
            eprintln!("cellwarden: {}: {e}", path.display());
            Some(ExitCode::from(1))
        }
    }
}

fn run_export(
    store: &std::path::Path,
    format: &str,
    output: Option<&PathBuf>,
) -> Result<ExitCode, Usage> {
    let format = cellwarden_store::ExportFormat::parse(format).ok_or_else(|| {
        Usage(format!(
            "unknown export format '{format}' (jsonl, csv, ecs)"
        ))
    })?;
    if !store.exists() {
        return Err(Usage(format!("{}: no such store", store.display())));
    }
    let s = cellwarden_store::Store::open(store)
        .map_err(|e| Usage(format!("{}: {e}", store.display())))?;
    let mut out = open_output(output)?;
    let written = cellwarden_store::export(&s, format, &mut out).and_then(|n| {
        out.flush()?;
        Ok(n)
    });
    match written {
        Ok(n) => {
            eprintln!("export: {n} records from {}", store.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("cellwarden: export: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

fn run_serve(
    store: PathBuf,
    listen: std::net::SocketAddr,
    token_file: Option<&PathBuf>,
) -> Result<ExitCode, Usage> {
    if !store.exists() {
        return Err(Usage(format!(
            "{}: no such store (record runs with `hunt --store` or `scope --store` first)",
            store.display()
        )));
    }
    let token = match token_file {
        Some(p) => {
            let t = std::fs::read_to_string(p)
                .map_err(|e| Usage(format!("{}: {e}", p.display())))?
                .trim()
                .to_owned();
            if t.len() < 16 {
                return Err(Usage(format!(
                    "{}: the token must be at least 16 characters",
                    p.display()
                )));
            }
            Some(t)
        }
        None => None,
    };
    cellwarden_web::serve(cellwarden_web::ServeConfig {
        store,
        listen,
        token,
    })
    .map_err(Usage)?;
    Ok(ExitCode::SUCCESS)
}

/// `3.92 GiB`, `512.0 MiB`, `12.3 KiB`.
fn human_bytes(b: u64) -> String {
    let f = b as f64;
    if b >= 1 << 30 {
        format!("{:.2} GiB", f / (1u64 << 30) as f64)
    } else if b >= 1 << 20 {
        format!("{:.1} MiB", f / (1u64 << 20) as f64)
    } else {
        format!("{:.1} KiB", f / 1024.0)
    }
}

fn parse_level(s: &str) -> Result<Level, String> {
    Level::parse(s)
        .ok_or_else(|| format!("unknown level '{s}' (informational, low, medium, high, critical)"))
}

/// A usage problem: one line on stderr, exit status 2.
struct Usage(String);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Hunt(args) => run_hunt(args),
        Command::Scope(args) => run_scope(args),
        Command::Watch(args) => watch::run(args),
        Command::Simulate(args) => run_simulate(args),
        Command::Eval {
            truth,
            results,
            json,
        } => run_eval(&truth, &results, json),
        Command::Demo { out } => run_demo(out),
        Command::Export {
            store,
            format,
            output,
        } => run_export(&store, &format, output.as_ref()),
        Command::Serve {
            store,
            listen,
            token_file,
        } => run_serve(store, listen, token_file.as_ref()),
        Command::Rules {
            command:
                RulesCommand::Check {
                    paths,
                    json,
                    placeholders,
                },
        } => rules_check(&paths, json, placeholders.as_ref()),
    };
    match result {
        Ok(code) => code,
        Err(Usage(msg)) => {
            eprintln!("cellwarden: {msg}");
            ExitCode::from(2)
        }
    }
}

fn read_placeholders(path: Option<&PathBuf>) -> Result<cellwarden_sigma::Placeholders, Usage> {
    let Some(p) = path else {
        return Ok(Default::default());
    };
    let text = std::fs::read_to_string(p).map_err(|e| Usage(format!("{}: {e}", p.display())))?;
    cellwarden_sigma::read_placeholders(&text).map_err(|e| Usage(format!("{}: {e}", p.display())))
}

fn load_rules(paths: &[PathBuf], opts: &LoadOptions) -> Result<Loaded, Usage> {
    load_rules_hashed(paths, opts).map(|(l, _)| l)
}

/// The rules and a hash of their sources (names and texts), recorded with stored runs.
fn load_rules_hashed(paths: &[PathBuf], opts: &LoadOptions) -> Result<(Loaded, String), Usage> {
    let (sources, mut read_problems): (Vec<RuleSource>, _) = if paths.is_empty() {
        (cellwarden_sigma::builtin_sources(), Vec::new())
    } else {
        cellwarden_sigma::collect_rule_files(paths).map_err(Usage)?
    };
    let hash =
        cellwarden_store::content_hash(sources.iter().map(|s| (s.name.as_str(), s.text.as_str())));
    let mut loaded = cellwarden_sigma::load(&sources, opts);
    if !read_problems.is_empty() {
        loaded.invalid += read_problems.len();
        loaded.problems.append(&mut read_problems);
        loaded
            .problems
            .sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    }
    Ok((loaded, hash))
}

fn rules_check(
    paths: &[PathBuf],
    json: bool,
    placeholders: Option<&PathBuf>,
) -> Result<ExitCode, Usage> {
    let opts = LoadOptions {
        placeholders: read_placeholders(placeholders)?,
        min_level: None,
    };
    let loaded = load_rules(paths, &opts)?;
    let mut out = io::stdout().lock();
    if json {
        let v = serde_json::json!({
            "files": loaded.files,
            "loaded": loaded.loaded,
            "correlations": loaded.correlations,
            "filters": loaded.filters,
            "unsupported": loaded.unsupported,
            "invalid": loaded.invalid,
            "problems": loaded.problems,
        });
        let _ = writeln!(out, "{v}");
    } else {
        for p in &loaded.problems {
            let _ = writeln!(
                out,
                "{}",
                cellwarden_report::sanitize_terminal(&p.to_string())
            );
        }
        let _ = writeln!(
            out,
            "{} files: {} rules loaded, {} correlations, {} filters, {} unsupported, {} invalid",
            loaded.files,
            loaded.loaded,
            loaded.correlations,
            loaded.filters,
            loaded.unsupported,
            loaded.invalid
        );
        let (by_eid, by_literal) = loaded.rules.index_stats();
        let _ = writeln!(
            out,
            "index: {by_eid} rules keyed by EventID, {by_literal} behind the literal prefilter"
        );
    }
    Ok(if loaded.invalid > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

/// Where `demo` writes the simulated logs and its reports unless told otherwise.
const DEMO_DIR: &str = "cellwarden-demo";

fn run_demo(out: Option<PathBuf>) -> Result<ExitCode, Usage> {
    let dir = out.unwrap_or_else(|| PathBuf::from(DEMO_DIR));
    let started = std::time::Instant::now();
    let config = cellwarden_sim::SimConfig {
        seed: 1,
        subscribers: 20_000,
        days: 10,
        scenarios: vec![
            cellwarden_sim::Scenario::Softcell,
            cellwarden_sim::Scenario::Insider,
        ],
    };
    let truth = cellwarden_sim::simulate(&config, &dir)
        .map_err(|e| Usage(format!("{}: {e}", dir.display())))?;
    let inputs =
        cellwarden_source::discover(&[dir.join("windows"), dir.join("db"), dir.join("network")])
            .map_err(|e| Usage(e.to_string()))?;
    let loaded = load_rules(&[], &LoadOptions::default())?;
    let db_args = DbArgs {
        watchlist: Some(dir.join("watchlist.txt")),
        ..DbArgs::default()
    };
    let hunt_config = HuntConfig {
        db: db_setup(&db_args, Selection::default())?,
        net: net_setup(&db_args)?,
        ..HuntConfig::default()
    };
    let result = run_pipeline(&inputs, &Mapping::builtin(), &loaded.rules, &hunt_config);
    let exposure = cellwarden_pipeline::scope::exposure(&result.findings, &hunt_config.db);
    let write =
        |name: &str, f: &dyn Fn(&mut dyn Write) -> io::Result<()>| -> Result<PathBuf, Usage> {
            let p = dir.join(name);
            let mut w = io::BufWriter::new(
                std::fs::File::create(&p).map_err(|e| Usage(format!("{}: {e}", p.display())))?,
            );
            f(&mut w)
                .and_then(|_| w.flush())
                .map_err(|e| Usage(format!("{}: {e}", p.display())))?;
            Ok(p)
        };
    let html = write("scope-report.html", &|w| {
        cellwarden_report::write_scope_html(w, &exposure)
    })?;
    write("scope.json", &|w| {
        cellwarden_report::write_scope_json(w, &exposure)
    })?;
    write("alerts.jsonl", &|w| {
        cellwarden_report::write_jsonl(w, &result.alerts)
    })?;

    use cellwarden_report::sanitize_terminal as clean;
    let mut o = io::stdout().lock();
    let day = |t: &str| t.get(..16).unwrap_or(t).replace('T', " ");
    let _ = writeln!(
        o,
        "A simulated operator: {} subscribers, {} days, {} log lines in {} (scenarios: {}).\n",
        truth.subscribers,
        truth.days,
        truth.lines.iter().map(|(_, n)| n).sum::<u64>(),
        dir.display(),
        truth.scenarios.join(", ")
    );
    let _ = writeln!(
        o,
        "What cellwarden saw (high and critical alerts, first of each kind, in time order):"
    );
    let mut seen = std::collections::BTreeSet::new();
    for a in result.alerts.iter().filter(|a| a.level >= Level::High) {
        let who = a
            .event
            .get_str("account")
            .or_else(|| a.event.get_str("src_ip"))
            .map(|x| x.into_owned())
            .or_else(|| a.event.host.as_ref().map(|h| h.to_string()))
            .unwrap_or_else(|| "-".into());
        if !seen.insert(a.rule.id.clone()) {
            continue;
        }
        let _ = writeln!(
            o,
            "  {}  {:<9} {}  [{}]",
            day(&a.event.timestamp_rfc3339()),
            a.level.as_str(),
            clean(&a.rule.title),
            clean(&who)
        );
    }
    let incidents = cellwarden_incident::build(&result.alerts, 3600);
    let _ = writeln!(
        o,
        "\n{} alerts in all, joined into {} incidents (`cellwarden hunt {} --incidents`).",
        result.alerts.len(),
        incidents.len(),
        dir.display()
    );
    let s = &exposure.summary;
    let _ = writeln!(
        o,
        "\nSubscribers to notify: {} ({} on the watchlist). Whose records, read by whom, and why:",
        s.subscribers_exposed, s.watchlisted_exposed
    );
    for sub in exposure.subscribers.iter().take(12) {
        let mut why: Vec<&str> = sub
            .reasons
            .iter()
            .map(|r| {
                r.split(':')
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("cellwarden.db.")
            })
            .collect();
        why.dedup();
        let _ = writeln!(
            o,
            "  {} {:<6} {:<22} by {} from {}, {} .. {}{} — {}",
            clean(&sub.id),
            sub.id_kind,
            sub.record_types.join(","),
            clean(&sub.accounts.join(",")),
            clean(&sub.client_hosts.join(",")),
            day(&sub.first_access),
            day(&sub.last_access),
            sub.label
                .as_ref()
                .map(|l| format!(" [{}]", clean(l)))
                .unwrap_or_default(),
            why.join(", ")
        );
    }
    if exposure.subscribers.len() > 12 {
        let _ = writeln!(
            o,
            "  … and {} more in the report",
            exposure.subscribers.len() - 12
        );
    }
    // Transfers the flow analytics alerted on first; the others are context in the report.
    let alerted = |t: &&cellwarden_telecom::exposure::TransferOut| {
        result.alerts.iter().any(|a| {
            a.rule.id.starts_with("cellwarden.net.")
                && a.event.get_str("src_ip").as_deref() == Some(t.src_ip.as_str())
                && a.event.get_str("dst_ip").as_deref() == Some(t.dst_ip.as_str())
        })
    };
    let shown: Vec<_> = exposure
        .exfiltration
        .iter()
        .filter(alerted)
        .take(3)
        .collect();
    if !shown.is_empty() {
        let _ = writeln!(o, "\nWhere the data went (transfers with a network alert):");
    }
    for t in &shown {
        let _ = writeln!(
            o,
            "  {} → {}:{} on {}: {} in {} flows (account {})",
            t.src_ip,
            t.dst_ip,
            t.dst_ports.first().copied().unwrap_or(0),
            t.day,
            human_bytes(t.bytes_out),
            t.flows,
            clean(&t.account)
        );
    }
    let others = exposure.exfiltration.len() - shown.len();
    if others > 0 {
        let _ = writeln!(
            o,
            "  ({others} other outbound transfers from the same hosts in the report)"
        );
    }
    let _ = writeln!(
        o,
        "\nReport for the people who notify subscribers: {}\nAlerts: {}; scope JSON: {}; ground truth: {}\nDone in {:.1} s.",
        html.display(),
        dir.join("alerts.jsonl").display(),
        dir.join("scope.json").display(),
        dir.join("ground-truth.json").display(),
        started.elapsed().as_secs_f64()
    );
    Ok(if result.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

fn load_mapping(path: Option<&PathBuf>) -> Result<Mapping, Usage> {
    match path {
        None => Ok(Mapping::builtin()),
        Some(p) => {
            Mapping::from_yaml(&read_file(p)?).map_err(|e| Usage(format!("{}: {e}", p.display())))
        }
    }
}

fn open_output(path: Option<&PathBuf>) -> Result<Box<dyn Write>, Usage> {
    Ok(match path {
        Some(p) => Box::new(io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| Usage(format!("{}: {e}", p.display())))?,
        )),
        None => Box::new(io::BufWriter::new(io::stdout().lock())),
    })
}

/// Exit status 1 with a message when writing the output failed (a closed pipe is not a failure:
/// `| head` is fine).
fn output_failed(written: io::Result<()>, what: &str) -> Option<ExitCode> {
    match written {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            eprintln!("cellwarden: writing {what}: {e}");
            Some(ExitCode::from(1))
        }
        _ => None,
    }
}

fn threads(n: Option<usize>) -> usize {
    n.unwrap_or_else(|| HuntConfig::default().threads).max(1)
}

/// Runs the pipeline with a progress bar on a terminal.
fn run_pipeline(
    inputs: &[cellwarden_source::InputFile],
    mapping: &Mapping,
    rules: &cellwarden_sigma::RuleSet,
    config: &HuntConfig,
) -> HuntResult {
    let detectors = cellwarden_pipeline::Detectors {
        rules,
        db: &config.db,
        net: &config.net,
    };
    let progress = Progress::default();
    let total_bytes: u64 = inputs.iter().map(|i| i.size).sum();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        if io::stderr().is_terminal() {
            let progress = &progress;
            let done = &done;
            s.spawn(move || {
                let bar = indicatif::ProgressBar::new(total_bytes.max(1));
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                while !done.load(Ordering::Relaxed) {
                    bar.set_position(progress.bytes.load(Ordering::Relaxed));
                    bar.set_message(format!(
                        "{} events, {} alerts",
                        progress.events.load(Ordering::Relaxed),
                        progress.alerts.load(Ordering::Relaxed)
                    ));
                    std::thread::sleep(Duration::from_millis(100));
                }
                bar.finish_and_clear();
            });
        }
        let r = hunt(inputs, mapping, detectors, config, &progress);
        done.store(true, Ordering::Relaxed);
        r
    })
}

/// Input errors (the first 50) and the counts line, on stderr.
fn report_errors(err: &mut dyn Write, errors: &[cellwarden_source::SourceError]) {
    const SHOWN: usize = 50;
    for e in errors.iter().take(SHOWN) {
        let _ = writeln!(
            err,
            "error: {}",
            cellwarden_report::sanitize_terminal(&e.to_string())
        );
    }
    if errors.len() > SHOWN {
        let _ = writeln!(err, "error: … and {} more", errors.len() - SHOWN);
    }
}

fn error_counts(err: &mut dyn Write, errors: &[cellwarden_source::SourceError]) {
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for e in errors {
        *by_kind.entry(e.kind.as_str()).or_default() += 1;
    }
    let kinds: Vec<String> = by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let _ = writeln!(
        err,
        "errors: {}{}",
        errors.len(),
        if kinds.is_empty() {
            String::new()
        } else {
            format!(" ({})", kinds.join(", "))
        }
    );
}

fn run_hunt(args: HuntArgs) -> Result<ExitCode, Usage> {
    let mapping = load_mapping(args.mapping.as_ref())?;
    let opts = LoadOptions {
        placeholders: read_placeholders(args.placeholders.as_ref())?,
        min_level: args.min_level,
    };
    let started = cellwarden_event::format_timestamp(Some(jiff::Timestamp::now()));
    let inputs = cellwarden_source::discover(&args.paths).map_err(|e| Usage(e.to_string()))?;
    let (loaded, ruleset_hash) = load_rules_hashed(&args.rules, &opts)?;
    if loaded.loaded == 0 {
        return Err(Usage(format!(
            "no rule loaded from {}",
            args.rules
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mut db = db_setup(&args.db, Selection::default())?;
    db.disabled = args.no_analytics;
    let mut net = net_setup(&args.db)?;
    net.disabled = args.no_analytics;
    let mut out = open_output(args.output.as_ref())?;
    let config = HuntConfig {
        threads: threads(args.threads),
        db,
        net,
        ..HuntConfig::default()
    };
    let mut result = run_pipeline(&inputs, &mapping, &loaded.rules, &config);
    if let Some(min) = args.min_level {
        result.alerts.retain(|a| a.level >= min);
    }
    let colour = args.output.is_none()
        && io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none();
    if let Some(p) = &args.attack_layer {
        let layer = cellwarden_incident::attack_layer(&result.alerts);
        if let Err(e) = std::fs::write(p, format!("{layer:#}\n")) {
            eprintln!("cellwarden: {}: {e}", p.display());
            return Ok(ExitCode::from(1));
        }
    }
    let written = if args.incidents {
        let incidents = cellwarden_incident::build(&result.alerts, args.gap);
        write_incidents(&mut out, &incidents, &result.alerts, args.format, colour)
    } else {
        match args.format {
            OutFormat::Table => cellwarden_report::write_table(&mut out, &result.alerts, colour),
            OutFormat::Jsonl => cellwarden_report::write_jsonl(&mut out, &result.alerts),
            OutFormat::Json => cellwarden_report::write_json_array(&mut out, &result.alerts),
            OutFormat::Csv => cellwarden_report::write_csv(&mut out, &result.alerts),
        }
    }
    .and_then(|_| out.flush());
    if let Some(code) = output_failed(written, "alerts") {
        return Ok(code);
    }
    drop(out);
    if let Some(path) = &args.store {
        let run = run_info("hunt", started, &args.paths, ruleset_hash, &result);
        let incidents = cellwarden_incident::build(&result.alerts, args.gap);
        let recorded = cellwarden_store::Store::open(path)
            .and_then(|mut s| s.record_hunt(&run, &result.alerts, &incidents))
            .map(|r| {
                format!(
                    "run {} in {}: {} alerts ({} new), {} incidents",
                    r.run,
                    path.display(),
                    r.alerts,
                    r.new_alerts,
                    r.incidents
                )
            });
        if let Some(code) = stored(path, recorded) {
            return Ok(code);
        }
    }

    // Run summary.
    let mut err = io::stderr().lock();
    report_errors(&mut err, &result.errors);
    if loaded.unsupported + loaded.invalid > 0 {
        let _ = writeln!(
            err,
            "rules: {} loaded, {} unsupported, {} invalid (see `cellwarden rules check`)",
            loaded.loaded, loaded.unsupported, loaded.invalid
        );
    }
    let secs = result.elapsed.as_secs_f64().max(1e-9);
    let _ = writeln!(
        err,
        "summary: {} files, {} events, {:.1} MB in {:.2} s ({:.0} events/s, {:.1} MB/s), {} rules",
        result.files,
        result.events,
        result.bytes as f64 / 1e6,
        secs,
        result.events as f64 / secs,
        result.bytes as f64 / 1e6 / secs,
        loaded.rules.len(),
    );
    let mut by_level: BTreeMap<Level, usize> = BTreeMap::new();
    for a in &result.alerts {
        *by_level.entry(a.level).or_default() += 1;
    }
    let levels: Vec<String> = Level::ALL
        .iter()
        .rev()
        .map(|l| format!("{} {}", l.as_str(), by_level.get(l).copied().unwrap_or(0)))
        .collect();
    let _ = writeln!(
        err,
        "alerts: {} ({})",
        result.alerts.len(),
        levels.join(", ")
    );
    error_counts(&mut err, &result.errors);
    Ok(if result.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

fn run_scope(args: ScopeArgs) -> Result<ExitCode, Usage> {
    let started = cellwarden_event::format_timestamp(Some(jiff::Timestamp::now()));
    let mapping = load_mapping(args.mapping.as_ref())?;
    let inputs = cellwarden_source::discover(&args.paths).map_err(|e| Usage(e.to_string()))?;
    let pseudonymiser = match &args.pseudonymise {
        Some(p) => {
            let bytes = std::fs::read(p).map_err(|e| Usage(format!("{}: {e}", p.display())))?;
            Some(
                cellwarden_report::Pseudonymiser::from_key_bytes(&bytes)
                    .map_err(|e| Usage(format!("{}: {e}", p.display())))?,
            )
        }
        None => None,
    };
    if (args.since.is_some() || args.until.is_some())
        && args.account.is_empty()
        && args.host.is_empty()
    {
        return Err(Usage(
            "--since/--until restrict --account/--host; give at least one of them".into(),
        ));
    }
    let selection = Selection {
        accounts: args.account.clone(),
        hosts: args.host.clone(),
        since: args.since,
        until: args.until,
    };
    let mut db = db_setup(&args.db, selection)?;
    db.no_cache = args.no_sql_cache;
    let net = net_setup(&args.db)?;
    let mut out = open_output(args.output.as_ref())?;
    let config = HuntConfig {
        threads: threads(args.threads),
        db,
        net,
        ..HuntConfig::default()
    };
    // Scope runs the database analytics only; Sigma rules are `hunt`'s.
    let no_rules = cellwarden_sigma::load(&[], &LoadOptions::default());
    let result = run_pipeline(&inputs, &mapping, &no_rules.rules, &config);
    let mut exposure = cellwarden_pipeline::scope::exposure(&result.findings, &config.db);
    if let Some(p) = &pseudonymiser {
        exposure.pseudonymise(&|kind, value| p.pseudonym(kind, value));
    }
    let written = match args.format {
        ScopeFormat::Json => cellwarden_report::write_scope_json(&mut out, &exposure),
        ScopeFormat::Csv => cellwarden_report::write_scope_csv(&mut out, &exposure),
        ScopeFormat::Html => cellwarden_report::write_scope_html(&mut out, &exposure),
    }
    .and_then(|_| out.flush());
    if let Some(code) = output_failed(written, "the report") {
        return Ok(code);
    }
    drop(out);
    if let Some(path) = &args.store {
        let run = run_info("scope", started, &args.paths, String::new(), &result);
        let mut json = Vec::new();
        let recorded = cellwarden_report::write_scope_json(&mut json, &exposure)
            .map_err(cellwarden_store::StoreError::from)
            .and_then(|_| Ok(serde_json::from_slice::<serde_json::Value>(&json)?))
            .and_then(|v| {
                cellwarden_store::Store::open(path).and_then(|mut s| s.record_scope(&run, &v))
            })
            .map(|id| format!("run {id} in {}", path.display()));
        if let Some(code) = stored(path, recorded) {
            return Ok(code);
        }
    }
    let schema_toml = result.findings.db.observed.to_toml(&config.db.schema);
    if let Some(p) = &args.schema_out
        && let Err(e) = std::fs::write(p, &schema_toml)
    {
        eprintln!("cellwarden: {}: {e}", p.display());
        return Ok(ExitCode::from(1));
    }

    let mut err = io::stderr().lock();
    report_errors(&mut err, &result.errors);
    if args.schema_out.is_none() && !result.findings.db.observed.tables.is_empty() {
        let _ = writeln!(
            err,
            "schema in use (configured and inferred; correct it and pass it with --schema, or write it with --schema-out):"
        );
        for line in schema_toml.lines().take(60) {
            let _ = writeln!(err, "  {}", cellwarden_report::sanitize_terminal(line));
        }
        if schema_toml.lines().count() > 60 {
            let _ = writeln!(err, "  # … (use --schema-out FILE for all of it)");
        }
    }
    let c = &result.findings.db.counts;
    let secs = result.elapsed.as_secs_f64().max(1e-9);
    let _ = writeln!(
        err,
        "summary: {} files, {} events, {} database statements in {:.2} s ({:.0} statements/s); {} select subscribers, {} bulk, {} failed, {} without time",
        result.files,
        result.events,
        c.statements,
        secs,
        c.statements as f64 / secs,
        c.with_subscribers,
        c.bulk,
        c.failed,
        c.undated
    );
    let _ = writeln!(
        err,
        "sql: {} statement shapes reused from the fingerprint cache ({:.1}%), {} statements read from tokens because the parser rejected them",
        c.sql.cache_hits,
        100.0 * c.sql.cache_hits as f64 / (c.sql.statements.max(1)) as f64,
        c.sql.fallback_statements
    );
    let _ = writeln!(
        err,
        "state: {} subscriber-account-days, {} account-days",
        result.findings.db.subjects.len(),
        result.findings.db.days.len()
    );
    let s = &exposure.summary;
    let by_rule: Vec<String> = s
        .alerts_by_rule
        .iter()
        .map(|(r, n)| format!("{} {n}", r.trim_start_matches("cellwarden.db.")))
        .collect();
    let _ = writeln!(
        err,
        "scope ({}): {} subscribers exposed ({} watchlisted), {} suspicious accounts; alerts: {}",
        s.mode,
        s.subscribers_exposed,
        s.watchlisted_exposed,
        s.accounts_suspicious,
        if by_rule.is_empty() {
            "none".to_owned()
        } else {
            by_rule.join(", ")
        }
    );
    error_counts(&mut err, &result.errors);
    Ok(if result.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

fn write_incidents(
    out: &mut dyn Write,
    incidents: &[cellwarden_incident::Incident],
    alerts: &[cellwarden_event::Alert],
    format: OutFormat,
    colour: bool,
) -> io::Result<()> {
    use cellwarden_report::sanitize_terminal as clean;
    match format {
        OutFormat::Jsonl => {
            for inc in incidents {
                writeln!(out, "{}", cellwarden_incident::incident_json(inc, alerts))?;
            }
        }
        OutFormat::Json => {
            let all: Vec<serde_json::Value> = incidents
                .iter()
                .map(|i| cellwarden_incident::incident_json(i, alerts))
                .collect();
            writeln!(out, "{}", serde_json::Value::Array(all))?;
        }
        OutFormat::Csv => {
            let mut w = cellwarden_report::CsvWriter::new(out);
            w.row(&[
                "id",
                "score",
                "level",
                "first_seen",
                "last_seen",
                "hosts",
                "accounts",
                "addresses",
                "tactics",
                "techniques",
                "alerts",
            ])?;
            for inc in incidents {
                w.row(&[
                    &inc.id,
                    &inc.score.to_string(),
                    inc.level.as_str(),
                    &cellwarden_event::format_timestamp(inc.first_seen),
                    &cellwarden_event::format_timestamp(inc.last_seen),
                    &inc.hosts.join(";"),
                    &inc.accounts.join(";"),
                    &inc.addresses.join(";"),
                    &inc.tactics.join(";"),
                    &inc.techniques.join(";"),
                    &inc.alerts.len().to_string(),
                ])?;
            }
            w.flush()?;
        }
        OutFormat::Table => {
            for inc in incidents {
                let head = format!(
                    "{}  score {:>3}  {}  {} .. {}  {} alerts",
                    inc.id,
                    inc.score,
                    inc.level.as_str(),
                    cellwarden_event::format_timestamp(inc.first_seen),
                    cellwarden_event::format_timestamp(inc.last_seen),
                    inc.alerts.len()
                );
                if colour {
                    writeln!(out, "\x1b[1m{head}\x1b[0m")?;
                } else {
                    writeln!(out, "{head}")?;
                }
                writeln!(out, "  hosts:    {}", clean(&inc.hosts.join(", ")))?;
                writeln!(out, "  accounts: {}", clean(&inc.accounts.join(", ")))?;
                if !inc.addresses.is_empty() {
                    writeln!(out, "  addresses: {}", clean(&inc.addresses.join(", ")))?;
                }
                writeln!(out, "  tactics:  {}", inc.tactics.join(" > "))?;
                for &i in &inc.alerts {
                    let a = &alerts[i];
                    writeln!(
                        out,
                        "    {}  {:<13} {}  [{}]",
                        a.event.timestamp_rfc3339().get(..19).unwrap_or(""),
                        a.level.as_str(),
                        clean(&a.rule.title),
                        clean(a.event.host.as_deref().unwrap_or("-"))
                    )?;
                }
                writeln!(out)?;
            }
        }
    }
    Ok(())
}
