//! `cellwarden demo`: simulate an operator under attack, hunt and scope it, tell the story.

use std::io::{self, Write};
use std::path::PathBuf;

use cellwarden_event::Level;
use cellwarden_pipeline::HuntConfig;
use cellwarden_sigma::LoadOptions;
use cellwarden_source::Mapping;
use cellwarden_telecom::access::Selection;

use cellwarden_analytics::stats::human_bytes;

use crate::args::{DbArgs, OutFormat};
use crate::exit::{Failure, Status};
use crate::setup::{db_setup, load_rules, net_setup, run_pipeline};

/// The simulated operator's home network and partners, as its config file would give them.
fn demo_signalling_config() -> cellwarden_signal::detect::SignalConfig {
    use cellwarden_sim::signalling::net;
    cellwarden_signal::detect::SignalConfig {
        home_gt: vec![net::HOME_GT.into()],
        home_realms: vec![net::HOME_REALM.into()],
        partner_realms: vec![net::PARTNER_REALM.into()],
        home_imsi: vec!["20815".into()],
        ..Default::default()
    }
}

/// Where `demo` writes the simulated logs and its reports unless told otherwise.
const DEMO_DIR: &str = "cellwarden-demo";

pub fn run(out: Option<PathBuf>) -> Result<Status, Failure> {
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
    let truth = cellwarden_sim::simulate(&config, &dir).map_err(|e| Failure::file(&dir, e))?;
    let inputs =
        cellwarden_source::discover(&[dir.join("windows"), dir.join("db"), dir.join("network")])?;
    let loaded = load_rules(&[], &LoadOptions::default())?;
    let db_args = DbArgs {
        watchlist: Some(dir.join("watchlist.txt")),
        assets: Some(dir.join("assets.toml")),
        ..DbArgs::default()
    };
    let hunt_config = HuntConfig {
        db: db_setup(&db_args, Selection::default())?,
        net: net_setup(&db_args)?,
        ..HuntConfig::default()
    };
    let result = run_pipeline(&inputs, &Mapping::builtin(), &loaded.rules, &hunt_config);
    let mut alerts = result
        .alerts
        .to_vec()
        .map_err(|e| Failure::Failed(format!("reading alerts back: {e}")))?;
    let mut exposure = cellwarden_pipeline::scope::exposure(&result.findings, &hunt_config.db);
    // The core network's signalling on the last morning, with three trackers: a capture of its
    // own, hunted on its own (the intrusion's campaigns stay those of the logs), its tracked
    // subscribers added to the same report.
    let sig_dir = dir.join("signalling");
    std::fs::create_dir_all(&sig_dir).map_err(|e| Failure::file(&sig_dir, e))?;
    let sig_start =
        (cellwarden_sim::START + (config.days as i64 - 1) * 86_400 + 9 * 3600) * 1_000_000;
    let capture = cellwarden_sim::signalling::capture(config.seed, sig_start, 2_000);
    let sig_file = sig_dir.join("core-signalling.pcap");
    std::fs::write(&sig_file, &capture.pcap).map_err(|e| Failure::file(&sig_file, e))?;
    let sig_config = HuntConfig {
        net: cellwarden_pipeline::NetSetup {
            signal: demo_signalling_config(),
            ..net_setup(&db_args)?
        },
        db: hunt_config.db.clone(),
        ..HuntConfig::default()
    };
    let sig_inputs = cellwarden_source::discover(std::slice::from_ref(&sig_file))?;
    let sig_result = run_pipeline(&sig_inputs, &Mapping::builtin(), &loaded.rules, &sig_config);
    let sig_alerts = sig_result.findings.signal.len();
    exposure.signalling =
        cellwarden_pipeline::scope::signalling(&sig_result.findings.signal, &exposure);
    let write =
        |name: &str, f: &dyn Fn(&mut dyn Write) -> io::Result<()>| -> Result<PathBuf, Failure> {
            let p = dir.join(name);
            let mut w =
                io::BufWriter::new(std::fs::File::create(&p).map_err(|e| Failure::file(&p, e))?);
            f(&mut w)
                .and_then(|_| w.flush())
                .map_err(|e| Failure::file(&p, e))?;
            Ok(p)
        };
    let html = write("scope-report.html", &|w| {
        cellwarden_report::write_scope_html(w, &exposure)
    })?;
    write("scope.json", &|w| {
        cellwarden_report::write_scope_json(w, &exposure)
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
    let resolver = cellwarden_pipeline::story::resolver(&hunt_config.net, &result.findings.aliases);
    cellwarden_incident::entity::add_logon_context(&mut alerts, &resolver);
    let (incidents, campaigns) = cellwarden_pipeline::story::campaigns(
        &alerts,
        &resolver,
        3600,
        &cellwarden_incident::CampaignConfig::default(),
        Some(&exposure),
    );
    write("alerts.jsonl", &|w| {
        cellwarden_report::write_jsonl(w, &alerts)
    })?;
    write("campaigns.jsonl", &|w| {
        crate::cmd::hunt::write_campaigns(w, &campaigns, &alerts, OutFormat::Jsonl, false)
    })?;
    let _ = writeln!(
        o,
        "What cellwarden saw: {} alerts, joined into {} incidents and {} campaigns (one per intrusion; `cellwarden hunt {} --assets {} --campaigns`):\n",
        alerts.len(),
        incidents.len(),
        campaigns.len(),
        dir.display(),
        dir.join("assets.toml").display(),
    );
    let _ = crate::cmd::hunt::write_campaigns(&mut o, &campaigns, &alerts, OutFormat::Table, false);
    let outside: Vec<&cellwarden_event::Alert> = alerts
        .iter()
        .enumerate()
        .filter(|(i, a)| {
            a.level >= Level::Medium && !campaigns.iter().any(|c| c.alerts.contains(i))
        })
        .map(|(_, a)| a)
        .collect();
    if !outside.is_empty() {
        let _ = writeln!(
            o,
            "Medium or higher alerts in no campaign (triage them one by one):"
        );
        for a in outside {
            let _ = writeln!(
                o,
                "  {}  {:<9} {}  [{}]",
                day(&a.event.timestamp_rfc3339()),
                a.level.as_str(),
                clean(&a.rule.title),
                clean(a.event.host.as_deref().unwrap_or("-"))
            );
        }
        let _ = writeln!(o);
    }
    let s = &exposure.summary;
    let _ = writeln!(
        o,
        "Subscribers to notify: {} ({} on the watchlist). Whose records, read by whom, and why:",
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
        alerts.iter().any(|a| {
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
        "\nWho was tracked over the signalling network ({} messages on the last morning, {} signalling alerts; `cellwarden hunt {}`):",
        capture.truth.messages,
        sig_alerts,
        sig_file.display()
    );
    for t in &exposure.signalling {
        let ops: Vec<String> = t
            .operations
            .iter()
            .zip(&t.answered)
            .map(|(op, a)| format!("{op} ({a})"))
            .collect();
        let _ = writeln!(
            o,
            "  {} asked by {} from {}: {}",
            clean(t.msisdn.as_deref().or(t.imsi.as_deref()).unwrap_or("-")),
            clean(&t.by),
            clean(&t.sender),
            clean(&ops.join(", "))
        );
    }
    let _ = writeln!(
        o,
        "\nReport for the people who notify subscribers: {}\nAlerts: {}; campaigns: {}; scope JSON: {}; ground truth: {}\nDone in {:.1} s.",
        html.display(),
        dir.join("alerts.jsonl").display(),
        dir.join("campaigns.jsonl").display(),
        dir.join("scope.json").display(),
        dir.join("ground-truth.json").display(),
        started.elapsed().as_secs_f64()
    );
    Ok(Status::from_errors(result.errors.len()))
}
