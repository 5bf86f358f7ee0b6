//! `cellwarden export` and `cellwarden serve`: the case store written out, and its dashboard.

use std::io::Write;
use std::path::PathBuf;

use crate::exit::{Failure, Status};
use crate::setup::open_output;

pub fn export(
    store: &std::path::Path,
    format: &str,
    output: Option<&PathBuf>,
) -> Result<Status, Failure> {
    let format = cellwarden_store::ExportFormat::parse(format).ok_or_else(|| {
        Failure::Usage(format!(
            "unknown export format '{format}' (jsonl, csv, ecs)"
        ))
    })?;
    if !store.exists() {
        return Err(Failure::Usage(format!(
            "{}: no such store",
            store.display()
        )));
    }
    let s = cellwarden_store::Store::open(store).map_err(|e| Failure::file(store, e))?;
    let mut out = open_output(output)?;
    let written = cellwarden_store::export(&s, format, &mut out).and_then(|n| {
        out.flush()?;
        Ok(n)
    });
    match written {
        Ok(n) => {
            eprintln!("export: {n} records from {}", store.display());
            Ok(Status::Ok)
        }
        Err(e) => Err(Failure::Failed(format!("export: {e}"))),
    }
}

pub fn serve(
    store: PathBuf,
    listen: std::net::SocketAddr,
    token_file: Option<&PathBuf>,
    host_names: Vec<String>,
) -> Result<Status, Failure> {
    if !store.exists() {
        return Err(Failure::Usage(format!(
            "{}: no such store (record runs with `hunt --store` or `scope --store` first)",
            store.display()
        )));
    }
    let token = match token_file {
        Some(p) => {
            let t = std::fs::read_to_string(p)
                .map_err(|e| Failure::file(p, e))?
                .trim()
                .to_owned();
            if t.len() < 16 {
                return Err(Failure::Usage(format!(
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
        host_names,
    })?;
    Ok(Status::Ok)
}
