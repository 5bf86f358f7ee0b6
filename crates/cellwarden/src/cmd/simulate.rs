//! `cellwarden simulate` and `cellwarden eval`: the simulated operator and its scoring.

use std::path::PathBuf;

use crate::args::SimulateArgs;
use crate::exit::{Failure, Status};
use crate::setup::read_file;

pub fn run(args: SimulateArgs) -> Result<Status, Failure> {
    if args.days == 0 || args.subscribers < 100 {
        return Err(Failure::Usage(
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
    let truth =
        cellwarden_sim::simulate(&config, &args.out).map_err(|e| Failure::file(&args.out, e))?;
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
    Ok(Status::Ok)
}

pub fn eval(
    truth: &PathBuf,
    results: &[PathBuf],
    campaigns: Option<&PathBuf>,
    json: bool,
) -> Result<Status, Failure> {
    let truth: serde_json::Value =
        serde_json::from_str(&read_file(truth)?).map_err(|e| Failure::file(truth, e))?;
    let texts = results
        .iter()
        .map(read_file)
        .collect::<Result<Vec<_>, _>>()?;
    let (alerts, scopes) = cellwarden_sim::eval::read_results(&texts);
    if alerts.is_empty() && scopes.is_empty() {
        return Err(Failure::Usage(
            "no alerts or scope report in the result files".into(),
        ));
    }
    let mut score = cellwarden_sim::eval::evaluate(&truth, &alerts, &scopes);
    if let Some(p) = campaigns {
        let c = cellwarden_sim::eval::read_campaigns(&read_file(p)?);
        score.campaigns = Some(cellwarden_sim::eval::score_campaigns(&score, &alerts, &c));
    }
    if json {
        println!("{}", serde_json::to_string(&score).unwrap_or_default());
    } else {
        print!(
            "{}",
            cellwarden_report::sanitize_terminal(&cellwarden_sim::eval::table(&score))
                .replace("\\u{a}", "\n")
        );
    }
    Ok(Status::Ok)
}
