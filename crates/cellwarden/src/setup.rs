//! Set-up shared by the commands: reading rules, mappings and configuration files, opening
//! outputs, running the pipeline with a progress bar, and the run summary on stderr.

use std::collections::BTreeMap;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cellwarden_pipeline::{DbSetup, HuntConfig, HuntResult, NetSetup, Progress, hunt};
use cellwarden_sigma::{LoadOptions, Loaded, RuleSource};
use cellwarden_source::Mapping;
use cellwarden_telecom::access::Selection;
use cellwarden_telecom::detect::{DbConfig, Watchlist};
use cellwarden_telecom::persons::SubscriberMap;
use cellwarden_telecom::schema::Schema;

use crate::args::DbArgs;
use crate::exit::Failure;

pub fn read_file(p: &PathBuf) -> Result<String, Failure> {
    std::fs::read_to_string(p).map_err(|e| Failure::file(p, e))
}

pub fn read_placeholders(
    path: Option<&PathBuf>,
) -> Result<cellwarden_sigma::Placeholders, Failure> {
    let Some(p) = path else {
        return Ok(Default::default());
    };
    let text = std::fs::read_to_string(p).map_err(|e| Failure::file(p, e))?;
    cellwarden_sigma::read_placeholders(&text).map_err(|e| Failure::file(p, e))
}

/// The pseudonymiser of `--pseudonymise KEYFILE`, if given.
pub fn read_pseudonymiser(
    path: Option<&PathBuf>,
) -> Result<Option<cellwarden_report::Pseudonymiser>, Failure> {
    let Some(p) = path else {
        return Ok(None);
    };
    let bytes = std::fs::read(p).map_err(|e| Failure::file(p, e))?;
    cellwarden_report::Pseudonymiser::from_key_bytes(&bytes)
        .map(Some)
        .map_err(|e| Failure::file(p, e))
}

pub fn load_rules(paths: &[PathBuf], opts: &LoadOptions) -> Result<Loaded, Failure> {
    load_rules_hashed(paths, opts).map(|(l, _)| l)
}

/// The rules and a hash of their sources (names and texts), recorded with stored runs.
pub fn load_rules_hashed(
    paths: &[PathBuf],
    opts: &LoadOptions,
) -> Result<(Loaded, String), Failure> {
    let (sources, mut read_problems): (Vec<RuleSource>, _) = if paths.is_empty() {
        (cellwarden_sigma::builtin_sources(), Vec::new())
    } else {
        cellwarden_sigma::collect_rule_files(paths).map_err(|e| Failure::file(&e.path, e.source))?
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

pub fn load_mapping(path: Option<&PathBuf>) -> Result<Mapping, Failure> {
    match path {
        None => Ok(Mapping::builtin()),
        Some(p) => Mapping::from_yaml(&read_file(p)?).map_err(|e| Failure::file(p, e)),
    }
}

/// The database-analytics setup from the command line; watchlist problems are reported.
pub fn db_setup(args: &DbArgs, selection: Selection) -> Result<DbSetup, Failure> {
    let mut schema = match &args.schema {
        Some(p) => Schema::from_toml(&read_file(p)?).map_err(|e| Failure::file(p, e))?,
        None => Schema::default(),
    };
    if let Some(cc) = &args.country_code {
        let cc = cc.trim_start_matches('+').to_owned();
        if cc.is_empty() || !cc.bytes().all(|b| b.is_ascii_digit()) || cc.len() > 3 {
            return Err(Failure::Usage(format!(
                "--country-code: '{cc}' is not a calling code"
            )));
        }
        schema.numbering.country_code = Some(cc);
    }
    let config = match &args.config {
        Some(p) => DbConfig::from_toml(&read_file(p)?).map_err(|e| Failure::file(p, e))?,
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
                return Err(Failure::Usage(format!(
                    "{}: no identifier in the watchlist",
                    p.display()
                )));
            }
            w
        }
        None => Watchlist::default(),
    };
    let subscriber_map = match &args.subscriber_map {
        Some(p) => {
            let (map, bad) = SubscriberMap::from_csv(&read_file(p)?, &schema.numbering)
                .map_err(|e| Failure::file(p, e))?;
            for msg in &bad {
                eprintln!(
                    "error: {}: {}",
                    p.display(),
                    cellwarden_report::sanitize_terminal(msg)
                );
            }
            eprintln!(
                "subscriber map: {} subscribers with two or more identifiers from {}{}",
                map.rows.len(),
                p.display(),
                if bad.is_empty() {
                    String::new()
                } else {
                    format!(" ({} values not identifiers of their column)", bad.len())
                }
            );
            map
        }
        None => SubscriberMap::default(),
    };
    Ok(DbSetup {
        schema: Arc::new(schema),
        watchlist: Arc::new(watchlist),
        selection: Arc::new(selection),
        subscriber_map: Arc::new(subscriber_map),
        config,
        no_cache: false,
        disabled: false,
    })
}

pub fn net_setup(args: &DbArgs) -> Result<NetSetup, Failure> {
    let assets = match &args.assets {
        Some(p) => {
            cellwarden_net::Assets::from_toml(&read_file(p)?).map_err(|e| Failure::file(p, e))?
        }
        None => cellwarden_net::Assets::default(),
    };
    let config = match &args.config {
        Some(p) => {
            cellwarden_net::NetConfig::from_toml(&read_file(p)?).map_err(|e| Failure::file(p, e))?
        }
        None => cellwarden_net::NetConfig::default(),
    };
    let signal = match &args.config {
        Some(p) => cellwarden_signal::detect::SignalConfig::from_toml(&read_file(p)?)
            .map_err(|e| Failure::file(p, e))?,
        None => Default::default(),
    };
    Ok(NetSetup {
        assets: Arc::new(assets),
        config,
        signal,
        disabled: false,
    })
}

pub fn threads(n: Option<usize>) -> usize {
    n.unwrap_or_else(|| HuntConfig::default().threads).max(1)
}

/// The output file, or standard output (no path, or `-`).
pub fn open_output(path: Option<&PathBuf>) -> Result<Box<dyn Write>, Failure> {
    Ok(match path {
        Some(p) if p.as_os_str() != "-" => Box::new(io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| Failure::file(p, e))?,
        )),
        _ => Box::new(io::BufWriter::new(io::stdout().lock())),
    })
}

/// A failure when writing the output failed (a closed pipe is not a failure: `| head` is
/// fine).
pub fn written(result: io::Result<()>, what: &str) -> Result<(), Failure> {
    match result {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            Err(Failure::Failed(format!("writing {what}: {e}")))
        }
        _ => Ok(()),
    }
}

/// Finds the inputs and infers what they do not say (year, zone, host) from the case.
pub fn discover_case(
    paths: &[PathBuf],
    args: &crate::args::CaseArgs,
    mapping: &Mapping,
) -> Result<
    (
        Vec<cellwarden_source::InputFile>,
        Vec<cellwarden_source::case::Inference>,
    ),
    Failure,
> {
    let mut opts = cellwarden_source::case::CaseOptions::default();
    for y in &args.years {
        opts.add_year(y)
            .map_err(|e| Failure::Usage(format!("--year {y}: {e}")))?;
    }
    for z in &args.zones {
        opts.add_zone(z)
            .map_err(|e| Failure::Usage(format!("--timezone {z}: {e}")))?;
    }
    for f in &args.pg_prefixes {
        opts.pg_prefixes.push(
            cellwarden_source::pgprefix::Prefix::parse(f)
                .map_err(|e| Failure::Usage(format!("--pg-prefix '{f}': {e}")))?,
        );
    }
    if let Some(p) = &args.host_map {
        opts.read_host_map(&read_file(p)?)
            .map_err(|e| Failure::Usage(format!("{}: {e}", p.display())))?;
    }
    let mut inputs = cellwarden_source::discover(paths)?;
    let inferred = cellwarden_source::case::infer(&mut inputs, &opts, mapping);
    Ok((inputs, inferred))
}

/// What was inferred about the inputs, on stderr (only the weak inferences beyond a few).
pub fn report_inferences(err: &mut dyn Write, inferred: &[cellwarden_source::case::Inference]) {
    const SHOWN: usize = 20;
    for (i, inf) in inferred.iter().enumerate() {
        if i < SHOWN || inf.weak {
            let _ = writeln!(
                err,
                "{}: {}: {}",
                if inf.weak { "warning" } else { "inferred" },
                cellwarden_report::sanitize_terminal(&inf.file),
                cellwarden_report::sanitize_terminal(&inf.what)
            );
        }
    }
    let hidden = inferred.iter().skip(SHOWN).filter(|i| !i.weak).count();
    if hidden > 0 {
        let _ = writeln!(err, "inferred: … and {hidden} more");
    }
}

/// Runs the pipeline with a progress bar on a terminal.
pub fn run_pipeline(
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
pub fn report_errors(err: &mut dyn Write, errors: &[cellwarden_source::SourceError]) {
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

pub fn error_counts(err: &mut dyn Write, errors: &[cellwarden_source::SourceError]) {
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

/// What a stored run records of itself.
pub fn run_info(
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

/// Reports recording a run in the store; a failure when it failed.
pub fn stored(path: &std::path::Path, r: cellwarden_store::Result<String>) -> Result<(), Failure> {
    match r {
        Ok(what) => {
            eprintln!("store: {what}");
            Ok(())
        }
        Err(e) => Err(Failure::Failed(format!("{}: {e}", path.display()))),
    }
}
