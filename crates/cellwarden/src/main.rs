//! The `cellwarden` command: argument parsing and wiring of the library crates.

use std::collections::BTreeMap;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cellwarden_event::Level;
use cellwarden_pipeline::{HuntConfig, Progress, hunt};
use cellwarden_sigma::{LoadOptions, Loaded, RuleSource};
use cellwarden_source::Mapping;
use clap::{Parser, Subcommand, ValueEnum};

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
    /// Run `hunt` on the built-in example logs with the built-in rules.
    Demo,
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
        Command::Demo => run_demo(),
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
    let (sources, mut read_problems): (Vec<RuleSource>, _) = if paths.is_empty() {
        (cellwarden_sigma::builtin_sources(), Vec::new())
    } else {
        cellwarden_sigma::collect_rule_files(paths).map_err(Usage)?
    };
    let mut loaded = cellwarden_sigma::load(&sources, opts);
    if !read_problems.is_empty() {
        loaded.invalid += read_problems.len();
        loaded.problems.append(&mut read_problems);
        loaded
            .problems
            .sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    }
    Ok(loaded)
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

const DEMO_LOG: &str = include_str!("../../../examples/demo.jsonl");

fn run_demo() -> Result<ExitCode, Usage> {
    let dir = std::env::temp_dir().join(format!("cellwarden-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Usage(format!("{}: {e}", dir.display())))?;
    let file = dir.join("demo.jsonl");
    std::fs::write(&file, DEMO_LOG).map_err(|e| Usage(format!("{}: {e}", file.display())))?;
    let code = run_hunt(HuntArgs {
        paths: vec![file],
        rules: Vec::new(),
        min_level: None,
        format: OutFormat::Table,
        output: None,
        threads: None,
        mapping: None,
        placeholders: None,
        incidents: false,
        gap: 3600,
        attack_layer: None,
    });
    let _ = std::fs::remove_dir_all(&dir);
    code
}

fn run_hunt(args: HuntArgs) -> Result<ExitCode, Usage> {
    let mapping = match &args.mapping {
        None => Mapping::builtin(),
        Some(p) => {
            let text =
                std::fs::read_to_string(p).map_err(|e| Usage(format!("{}: {e}", p.display())))?;
            Mapping::from_yaml(&text).map_err(|e| Usage(format!("{}: {e}", p.display())))?
        }
    };
    let opts = LoadOptions {
        placeholders: read_placeholders(args.placeholders.as_ref())?,
        min_level: args.min_level,
    };
    let inputs = cellwarden_source::discover(&args.paths).map_err(|e| Usage(e.to_string()))?;
    let loaded = load_rules(&args.rules, &opts)?;
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
    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| Usage(format!("{}: {e}", p.display())))?,
        )),
        None => Box::new(io::BufWriter::new(io::stdout().lock())),
    };
    let config = HuntConfig {
        threads: args
            .threads
            .unwrap_or_else(|| HuntConfig::default().threads)
            .max(1),
        ..HuntConfig::default()
    };
    let progress = Progress::default();
    let total_bytes: u64 = inputs.iter().map(|i| i.size).sum();
    let done = std::sync::atomic::AtomicBool::new(false);
    let result = std::thread::scope(|s| {
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
        let r = hunt(&inputs, &mapping, &loaded.rules, &config, &progress);
        done.store(true, Ordering::Relaxed);
        r
    });

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
    if let Err(e) = written
        && e.kind() != io::ErrorKind::BrokenPipe
    {
        eprintln!("cellwarden: writing alerts: {e}");
        return Ok(ExitCode::from(1));
    }
    drop(out);

    // Run summary.
    let mut err = io::stderr().lock();
    const SHOWN: usize = 50;
    for e in result.errors.iter().take(SHOWN) {
        let _ = writeln!(
            err,
            "error: {}",
            cellwarden_report::sanitize_terminal(&e.to_string())
        );
    }
    if result.errors.len() > SHOWN {
        let _ = writeln!(err, "error: … and {} more", result.errors.len() - SHOWN);
    }
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
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &result.errors {
        *by_kind.entry(e.kind.as_str()).or_default() += 1;
    }
    let kinds: Vec<String> = by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let _ = writeln!(
        err,
        "errors: {}{}",
        result.errors.len(),
        if kinds.is_empty() {
            String::new()
        } else {
            format!(" ({})", kinds.join(", "))
        }
    );
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
