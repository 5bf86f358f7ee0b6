//! `cellwarden watch`: command-line wiring of the live pipeline.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use cellwarden_event::Alert;
use cellwarden_stream::sink::{AlertSink, Sinks};
use cellwarden_stream::watch::{Setup, WatchConfig};
use cellwarden_telecom::access::Selection;

use cellwarden_sigma::LoadOptions;

use crate::args::WatchArgs;
use crate::exit::{Failure, Status};
use crate::setup::{
    db_setup, load_mapping, load_rules_hashed, net_setup, read_placeholders, read_pseudonymiser,
};

/// Writes alerts to the case store at every checkpoint, one run per batch.
/// Incidents and campaigns are rebuilt at each checkpoint over the alerts of the campaign window
/// (at most [`RECENT_ALERTS`]; after a restart, from the store), so a campaign keeps its id while
/// its first alert is in it.
struct StoreSink {
    store: cellwarden_store::Store,
    ruleset_hash: String,
    pending: Vec<Alert>,
    recent: Vec<Alert>,
    net: cellwarden_pipeline::NetSetup,
    resolver: cellwarden_incident::Resolver,
}

/// Alerts kept for joining incidents and campaigns in `watch --store`.
const RECENT_ALERTS: usize = 20_000;

impl AlertSink for StoreSink {
    fn write(&mut self, alerts: &[Alert]) -> std::io::Result<()> {
        self.pending.extend_from_slice(alerts);
        Ok(())
    }

    fn names(&mut self, aliases: &cellwarden_incident::Aliases) {
        // Only when there is something to join: the names grow with the estate.
        if !self.pending.is_empty() {
            self.resolver = cellwarden_pipeline::story::resolver(&self.net, aliases);
        }
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
        let config = cellwarden_incident::CampaignConfig::default();
        // The logon each new alert followed, as far as the logs have told by now.
        cellwarden_incident::entity::add_logon_context(&mut self.pending, &self.resolver);
        let known: std::collections::HashSet<String> =
            self.recent.iter().map(|a| a.key()).collect();
        self.recent.extend(
            self.pending
                .iter()
                .filter(|a| !known.contains(&a.key()))
                .cloned(),
        );
        cellwarden_pipeline::sort_alerts(&mut self.recent);
        let newest = self.recent.iter().filter_map(|a| a.event.timestamp).max();
        self.recent.retain(|a| {
            a.event
                .timestamp
                .zip(newest)
                .is_none_or(|(t, n)| n.as_second() - t.as_second() <= config.window_secs)
        });
        let excess = self.recent.len().saturating_sub(RECENT_ALERTS);
        self.recent.drain(..excess);
        let recent = &self.recent;
        let (incidents, campaigns) =
            cellwarden_pipeline::story::campaigns(recent, &self.resolver, 3600, &config, None);
        let window_start = recent
            .first()
            .and_then(|a| a.event.timestamp)
            .map(|t| cellwarden_event::format_timestamp(Some(t)));
        self.store
            .record_batch(
                &run,
                &self.pending,
                recent,
                &incidents,
                &campaigns,
                window_start.as_deref(),
            )
            .map_err(std::io::Error::other)?;
        self.pending.clear();
        Ok(())
    }
}

/// The store's alerts of the campaign window before its latest one: a restarted watcher joins
/// its new alerts with them, so its campaigns carry on.
fn recent_alerts(store: &cellwarden_store::Store) -> cellwarden_store::Result<Vec<Alert>> {
    let Some(last) = store
        .summary()?
        .last
        .and_then(|t| cellwarden_event::parse_timestamp(&t))
    else {
        return Ok(Default::default());
    };
    let window = cellwarden_incident::CampaignConfig::default().window_secs;
    let since = jiff::Timestamp::from_second(last.as_second() - window).ok();
    let since = cellwarden_event::format_timestamp(since);
    Ok(store
        .alerts_since(&since, RECENT_ALERTS)?
        .iter()
        .filter_map(cellwarden_report::alert_from_json)
        .collect())
}

pub fn run(args: WatchArgs) -> Result<Status, Failure> {
    if args.follow.is_empty()
        && args.syslog_udp.is_none()
        && args.syslog_tcp.is_none()
        && args.kafka.is_none()
    {
        return Err(Failure::Usage(
            "nothing to watch: give --follow, --syslog-udp, --syslog-tcp or --kafka".into(),
        ));
    }
    if args.kafka.is_some() && args.topic.is_empty() {
        return Err(Failure::Usage("--kafka needs at least one --topic".into()));
    }
    let needs_kafka = args.kafka_alerts.is_some() || args.forward.is_some();
    if needs_kafka && args.kafka.is_none() {
        return Err(Failure::Usage(
            "--kafka-alerts and --forward need --kafka".into(),
        ));
    }
    if args.exchange.is_some() && args.stage != cellwarden_stream::Stage::State {
        return Err(Failure::Usage(
            "--exchange is for partitioned state workers (--stage state)".into(),
        ));
    }
    if args.changelog.is_some() && args.exchange.is_none() {
        return Err(Failure::Usage(
            "--changelog is for partitioned state workers (--stage state --exchange TOPIC)".into(),
        ));
    }
    if (args.stage == cellwarden_stream::Stage::Parse) != args.forward.is_some() {
        return Err(Failure::Usage(
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
    let mapping = load_mapping(args.mapping.as_ref())?;
    let opts = LoadOptions {
        placeholders: read_placeholders(args.placeholders.as_ref())?,
        min_level: args.min_level,
    };
    let (loaded, ruleset_hash) = load_rules_hashed(&args.rules, &opts)?;
    if loaded.loaded == 0 {
        return Err(Failure::Usage("no rule loaded".into()));
    }
    let db = db_setup(&args.db, Selection::default())?;
    let net = net_setup(&args.db)?;
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
        poll: Duration::from_millis(args.poll_ms.max(1)),
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
                exchange: args.exchange.clone(),
                alerts: args.kafka_alerts.clone(),
                changelog: args
                    .changelog
                    .clone()
                    .map(|t| (t, Duration::from_secs_f64(args.changelog_secs.max(0.0)))),
                rules_fingerprint: ruleset_hash.clone(),
            }),
        stage: args.stage,
        idle_after: Duration::from_secs_f64(args.idle_secs.max(0.0)),
        scope_out: args.scope_out,
        pseudonymiser: read_pseudonymiser(args.pseudonymise.as_ref())?,
        ..WatchConfig::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .map_err(|e| Failure::Usage(format!("cannot handle signals: {e}")))?;
    }
    let mut store = match &args.store {
        Some(p) => {
            let store = cellwarden_store::Store::open(p).map_err(|e| Failure::file(p, e))?;
            let recent = recent_alerts(&store).map_err(|e| Failure::file(p, e))?;
            Some(StoreSink {
                store,
                ruleset_hash,
                pending: Vec::new(),
                recent,
                net: net.clone(),
                resolver: cellwarden_pipeline::story::resolver(&net, &Default::default()),
            })
        }
        None => None,
    };
    let mut alert_topic = match (&kafka, &args.kafka_alerts) {
        (Some(k), Some(t)) => Some(cellwarden_stream::kafka::AlertTopic::new(k, t)?),
        _ => None,
    };
    let mut forward = match (&kafka, &args.forward) {
        (Some(k), Some(t)) => Some(cellwarden_stream::kafka::ForwardTopic::new(k, t)?),
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
    let partitioned = args.exchange.is_some();
    let log = &mut |m: &str| eprintln!("cellwarden watch: {m}");
    let summary = if partitioned {
        cellwarden_stream::partitioned::run(setup, &config, sinks, stop, log)?
    } else {
        cellwarden_stream::watch::run(setup, &config, sinks, stop, log)?
    };
    eprintln!(
        "cellwarden watch: stopped: {} events, {} alerts, {} errors, {} checkpoints, {} alerts already written before a restart",
        summary.events, summary.alerts, summary.errors, summary.checkpoints, summary.suppressed
    );
    Ok(Status::Ok)
}
