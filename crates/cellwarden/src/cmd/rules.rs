//! `cellwarden rules check`: which rules load, which are unsupported or invalid, and why.

use std::io::{self, Write};
use std::path::PathBuf;

use cellwarden_sigma::LoadOptions;

use crate::exit::{Failure, Status};
use crate::setup::{load_rules, read_placeholders};

pub fn check(
    paths: &[PathBuf],
    json: bool,
    placeholders: Option<&PathBuf>,
) -> Result<Status, Failure> {
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
    Ok(Status::from_errors(loaded.invalid))
}
