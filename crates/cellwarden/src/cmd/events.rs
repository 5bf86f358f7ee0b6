//! `cellwarden events`: the events as cellwarden reads them, one JSON object a line.

use std::io::{self, Write};
use std::path::PathBuf;

use cellwarden_source::Collected;

use crate::args::CaseArgs;
use crate::exit::{Failure, Status};
use crate::setup::{discover_case, load_mapping, report_errors, report_inferences, written};

pub fn run(
    paths: &[PathBuf],
    mapping: Option<&PathBuf>,
    case: &CaseArgs,
) -> Result<Status, Failure> {
    let mapping = load_mapping(mapping)?;
    let (inputs, inferred) = discover_case(paths, case, &mapping)?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    let mut errors = Vec::new();
    let mut result = Ok(());
    for input in &inputs {
        // One input at a time, in order: memory holds one input's units.
        let c = Collected::read(input, &Default::default());
        errors.extend(c.decode(&mapping, &mut |e| {
            if result.is_err() {
                return;
            }
            let ls = e.logsource.as_deref();
            let v = serde_json::json!({
                "source_file": &*e.origin.file,
                "source_record": e.origin.record,
                "timestamp": e.timestamp_rfc3339(),
                "host": e.host.as_deref(),
                "logsource": ls.map(|l| serde_json::json!({
                    "product": l.product.as_deref(),
                    "service": l.service.as_deref(),
                    "categories": l.categories.iter().map(|c| &**c).collect::<Vec<_>>(),
                })),
                "fields": serde_json::Value::Object(e.fields_json()),
            });
            result = serde_json::to_writer(&mut out, &v)
                .map_err(io::Error::from)
                .and_then(|_| out.write_all(b"\n"));
        }));
    }
    written(result.and_then(|_| out.flush()), "events")?;
    drop(out);
    errors.sort();
    let mut err = io::stderr().lock();
    report_inferences(&mut err, &inferred);
    report_errors(&mut err, &errors);
    Ok(Status::from_errors(errors.len()))
}
