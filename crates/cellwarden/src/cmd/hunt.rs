//! `cellwarden hunt`: the rules and analytics over finite input, as alerts or incidents.

use std::io::{self, IsTerminal, Write};

use cellwarden_event::Level;
use cellwarden_pipeline::HuntConfig;
use cellwarden_sigma::LoadOptions;
use cellwarden_telecom::access::Selection;

use crate::args::{HuntArgs, OutFormat};
use crate::exit::{Failure, Status};
use crate::setup::{
    db_setup, discover_case, error_counts, load_mapping, load_rules_hashed, net_setup, open_output,
    read_placeholders, report_errors, report_inferences, run_info, run_pipeline, stored, threads,
    written,
};

pub fn run(args: HuntArgs) -> Result<Status, Failure> {
    let mapping = load_mapping(args.mapping.as_ref())?;
    let opts = LoadOptions {
        placeholders: read_placeholders(args.placeholders.as_ref())?,
        min_level: args.min_level,
    };
    let started = cellwarden_event::format_timestamp(Some(jiff::Timestamp::now()));
    let (inputs, inferred) = discover_case(&args.paths, &args.case, &mapping)?;
    let (loaded, ruleset_hash) = load_rules_hashed(&args.rules, &opts)?;
    if loaded.loaded == 0 {
        return Err(Failure::Usage(format!(
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
        alert_memory: args.alert_memory.saturating_mul(1 << 20),
        ..HuntConfig::default()
    };
    let mut result = run_pipeline(&inputs, &mapping, &loaded.rules, &config);
    if let Some(p) = &args.assets_out {
        let roles =
            cellwarden_net::roles::learn(&result.findings.net, config.net.config.min_history_days);
        if let Err(e) = std::fs::write(p, roles.to_toml(&config.net.assets)) {
            return Err(Failure::Failed(format!("{}: {e}", p.display())));
        }
    }
    if let Some(min) = args.min_level {
        result.alerts.set_min_level(min);
    }
    // The logon each alert on a session-less event followed, with the level that gives it.
    let resolver = cellwarden_pipeline::story::resolver(&config.net, &result.findings.aliases);
    let context = cellwarden_pipeline::story::contexts(&result.alerts, &resolver)
        .map_err(|e| Failure::Failed(format!("reading alerts back: {e}")))?;
    result.alerts.set_context(context);
    let colour = args.output.is_none()
        && io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none();
    if let Some(p) = &args.attack_layer {
        let layer = cellwarden_incident::attack_layer(&result.alerts)
            .map_err(|e| Failure::Failed(format!("reading alerts back: {e}")))?;
        if let Err(e) = std::fs::write(p, format!("{layer:#}\n")) {
            return Err(Failure::Failed(format!("{}: {e}", p.display())));
        }
    }
    // Incidents and the case store need every alert at once; the alert outputs walk them in
    // order, from memory and the sorted runs on disk.
    let all = if args.incidents || args.campaigns || args.store.is_some() {
        result
            .alerts
            .to_vec()
            .map_err(|e| Failure::Failed(format!("reading alerts back: {e}")))?
    } else {
        Vec::new()
    };
    let campaign_config = cellwarden_incident::CampaignConfig {
        window_secs: args.campaign_window.saturating_mul(86_400),
        ..Default::default()
    };
    let (incidents, campaigns) = if args.incidents || args.campaigns || args.store.is_some() {
        let exposure = (!config.db.disabled)
            .then(|| cellwarden_pipeline::scope::exposure(&result.findings, &config.db));
        cellwarden_pipeline::story::campaigns(
            &all,
            &resolver,
            args.gap,
            &campaign_config,
            exposure.as_ref(),
        )
    } else {
        Default::default()
    };
    let result_written = if args.incidents {
        write_incidents(&mut out, &incidents, &all, args.format, colour)
    } else if args.campaigns {
        write_campaigns(&mut out, &campaigns, &all, args.format, colour)
    } else {
        match args.format {
            OutFormat::Table => cellwarden_report::write_table(&mut out, &result.alerts, colour),
            OutFormat::Jsonl => cellwarden_report::write_jsonl(&mut out, &result.alerts),
            OutFormat::Json => cellwarden_report::write_json_array(&mut out, &result.alerts),
            OutFormat::Csv => cellwarden_report::write_csv(&mut out, &result.alerts),
        }
    }
    .and_then(|_| out.flush());
    written(result_written, "alerts")?;
    drop(out);
    if let Some(path) = &args.store {
        let run = run_info("hunt", started, &args.paths, ruleset_hash, &result);
        let recorded = cellwarden_store::Store::open(path)
            .and_then(|mut s| s.record_hunt(&run, &all, &incidents, &campaigns))
            .map(|r| {
                format!(
                    "run {} in {}: {} alerts ({} new), {} incidents, {} campaigns",
                    r.run,
                    path.display(),
                    r.alerts,
                    r.new_alerts,
                    r.incidents,
                    r.campaigns
                )
            });
        stored(path, recorded)?;
    }

    // Run summary.
    let mut err = io::stderr().lock();
    report_inferences(&mut err, &inferred);
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
    let by_level = result.alerts.by_level();
    let levels: Vec<String> = Level::ALL
        .iter()
        .zip(by_level)
        .rev()
        .map(|(l, n)| format!("{} {n}", l.as_str()))
        .collect();
    let _ = writeln!(
        err,
        "alerts: {} ({})",
        by_level.iter().sum::<usize>(),
        levels.join(", ")
    );
    let mut hostless = 0usize;
    let _ = cellwarden_event::AlertSource::try_each(&result.alerts, &mut |a| {
        hostless += usize::from(a.event.host.is_none());
        Ok(())
    });
    if hostless > 0 {
        let _ = writeln!(
            err,
            "alerts without a host: {hostless} (name it with --host-map; see docs/case.md)"
        );
    }
    error_counts(&mut err, &result.errors);
    Ok(Status::from_errors(result.errors.len()))
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
        OutFormat::Jsonl | OutFormat::Json => write_json(
            out,
            format,
            incidents
                .iter()
                .map(|i| cellwarden_incident::incident_json(i, alerts)),
        )?,
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

pub fn write_campaigns(
    out: &mut dyn Write,
    campaigns: &[cellwarden_incident::Campaign],
    alerts: &[cellwarden_event::Alert],
    format: OutFormat,
    colour: bool,
) -> io::Result<()> {
    use cellwarden_event::format_timestamp as ts;
    use cellwarden_report::sanitize_terminal as clean;
    match format {
        OutFormat::Jsonl | OutFormat::Json => write_json(
            out,
            format,
            campaigns
                .iter()
                .map(|c| cellwarden_incident::campaign_json(c, alerts)),
        )?,
        OutFormat::Csv => {
            let mut w = cellwarden_report::CsvWriter::new(out);
            w.row(&[
                "id",
                "score",
                "level",
                "first_seen",
                "last_seen",
                "entry_host",
                "entry_rule",
                "kill_chain",
                "hosts",
                "accounts",
                "subscribers",
                "exfiltration_destinations",
                "exfiltration_bytes",
                "incidents",
                "alerts",
                "summary",
            ])?;
            for c in campaigns {
                let names = |v: Vec<&str>| v.join(";");
                w.row(&[
                    &c.id,
                    &c.score.to_string(),
                    c.level.as_str(),
                    &ts(c.first_seen),
                    &ts(c.last_seen),
                    c.hosts.first().map_or("", |h| h.name.as_str()),
                    &alerts[c.entry].rule.title,
                    &names(c.kill_chain.iter().map(|s| s.tactic.as_str()).collect()),
                    &names(c.hosts.iter().map(|h| h.name.as_str()).collect()),
                    &names(c.accounts.iter().map(|a| a.name.as_str()).collect()),
                    &c.data.subscribers.to_string(),
                    &names(
                        c.exfiltration
                            .iter()
                            .map(|x| x.destination.as_str())
                            .collect(),
                    ),
                    &c.exfiltration
                        .iter()
                        .map(|x| x.bytes)
                        .sum::<u64>()
                        .to_string(),
                    &c.incidents.len().to_string(),
                    &c.alerts.len().to_string(),
                    &c.summary(alerts),
                ])?;
            }
            w.flush()?;
        }
        OutFormat::Table => {
            if campaigns.is_empty() {
                writeln!(
                    out,
                    "no campaign (no high alert, nor medium alerts of two rules, joined)"
                )?;
            }
            for c in campaigns {
                let head = format!(
                    "{}  score {:>3}  {}  {} .. {}  {} incidents, {} alerts",
                    c.id,
                    c.score,
                    c.level.as_str(),
                    ts(c.first_seen),
                    ts(c.last_seen),
                    c.incidents.len(),
                    c.alerts.len()
                );
                if colour {
                    writeln!(out, "\x1b[1m{head}\x1b[0m")?;
                } else {
                    writeln!(out, "{head}")?;
                }
                writeln!(out, "  {}", clean(&c.summary(alerts)))?;
                writeln!(out, "  kill chain:")?;
                for s in &c.kill_chain {
                    writeln!(
                        out,
                        "    {:<21} {}  {} [{}]",
                        s.tactic,
                        ts(s.first).get(..16).unwrap_or(""),
                        clean(&s.rule),
                        clean(s.host.as_deref().unwrap_or("-"))
                    )?;
                }
                let hosts: Vec<String> = c
                    .hosts
                    .iter()
                    .map(|h| match &h.role {
                        Some(r) => format!("{} ({r})", h.name),
                        None => h.name.clone(),
                    })
                    .collect();
                writeln!(out, "  hosts:    {}", clean(&hosts.join(", ")))?;
                let accs: Vec<&str> = c.accounts.iter().map(|a| a.name.as_str()).collect();
                writeln!(out, "  accounts: {}", clean(&accs.join(", ")))?;
                if !c.moves.is_empty() {
                    writeln!(out, "  moves:")?;
                    for m in &c.moves {
                        writeln!(
                            out,
                            "    {}  {} -> {}  ({}{})",
                            ts(m.time).get(..16).unwrap_or(""),
                            clean(&m.from),
                            clean(&m.to),
                            m.kind,
                            m.account
                                .as_deref()
                                .map(|a| format!(", {}", clean(a)))
                                .unwrap_or_default()
                        )?;
                    }
                }
                if c.data.subscribers > 0 {
                    writeln!(
                        out,
                        "  data:     {} subscriber(s), {} — `{}`",
                        c.data.subscribers,
                        c.data.record_types.join(", "),
                        clean(&c.data.scope_command)
                    )?;
                }
                for x in &c.exfiltration {
                    writeln!(
                        out,
                        "  sent out: {} bytes to {} from {}",
                        x.bytes,
                        clean(&x.destination),
                        clean(x.from.as_deref().unwrap_or("-"))
                    )?;
                }
                writeln!(out)?;
            }
        }
    }
    Ok(())
}

/// JSON Lines (one object a line) or one JSON array.
fn write_json(
    out: &mut dyn Write,
    format: OutFormat,
    items: impl Iterator<Item = serde_json::Value>,
) -> io::Result<()> {
    if matches!(format, OutFormat::Jsonl) {
        for v in items {
            writeln!(out, "{v}")?;
        }
        return Ok(());
    }
    writeln!(out, "{}", serde_json::Value::Array(items.collect()))
}
