//! `cellwarden scope`: whose subscriber records were read, from database audit logs.

use std::io::{self, Write};

use cellwarden_pipeline::HuntConfig;
use cellwarden_sigma::LoadOptions;
use cellwarden_telecom::access::Selection;

use crate::args::{ScopeArgs, ScopeFormat};
use crate::exit::{Failure, Status};
use crate::setup::{
    db_setup, discover_case, error_counts, load_mapping, net_setup, open_output,
    read_pseudonymiser, report_errors, report_inferences, run_info, run_pipeline, stored, threads,
    written,
};

pub fn run(args: ScopeArgs) -> Result<Status, Failure> {
    let started = cellwarden_event::format_timestamp(Some(jiff::Timestamp::now()));
    let mapping = load_mapping(args.mapping.as_ref())?;
    let (inputs, inferred) = discover_case(&args.paths, &args.case, &mapping)?;
    let pseudonymiser = read_pseudonymiser(args.pseudonymise.as_ref())?;
    if (args.since.is_some() || args.until.is_some())
        && args.account.is_empty()
        && args.host.is_empty()
    {
        return Err(Failure::Usage(
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
    let result_written = match args.format {
        ScopeFormat::Json => cellwarden_report::write_scope_json(&mut out, &exposure),
        ScopeFormat::Csv => cellwarden_report::write_scope_csv(&mut out, &exposure),
        ScopeFormat::Html => cellwarden_report::write_scope_html(&mut out, &exposure),
    }
    .and_then(|_| out.flush());
    written(result_written, "the report")?;
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
        stored(path, recorded)?;
    }
    let schema_toml = result.findings.db.observed.to_toml(&config.db.schema);
    if let Some(p) = &args.schema_out
        && let Err(e) = std::fs::write(p, &schema_toml)
    {
        return Err(Failure::Failed(format!("{}: {e}", p.display())));
    }

    let mut err = io::stderr().lock();
    report_inferences(&mut err, &inferred);
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
    if c.repeats > 0 {
        let _ = writeln!(
            err,
            "sql: {} audit records repeated a statement counted already (MySQL's per table and general records, Oracle's per object)",
            c.repeats
        );
    }
    if c.unanalysed > 0 {
        let _ = writeln!(
            err,
            "sql: {} statements could not be analysed (internal error, reported above); skipped",
            c.unanalysed
        );
    }
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
    if !exposure.signalling.is_empty() {
        let _ = writeln!(
            err,
            "signalling: {} subscriber(s) located or looked up in suspicious exchanges, by {} peer(s)",
            exposure.signalling.len(),
            exposure
                .signalling
                .iter()
                .map(|t| &t.by)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        );
    }
    error_counts(&mut err, &result.errors);
    let status = Status::from_errors(result.errors.len());
    // The process ends here: freeing millions of state entries one by one would cost
    // seconds that the exit does for free.
    std::mem::forget(result);
    Ok(status)
}
