//! `cargo xtask test [ARGS…]`: runs `cargo test --workspace --release [ARGS…]`, then says
//! which tests could not run on this machine (no `../shared/`, no browser, no broker) and the
//! command that enables each. Under `CI=true` the tests themselves fail instead of skipping.

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        _ => {
            eprintln!("usage: cargo xtask test [cargo test arguments…]");
            ExitCode::from(2)
        }
    }
}

fn test(extra: &[String]) -> ExitCode {
    let root = cellwarden_testkit::project_root();
    let skips = root.join("target/test-skips");
    let _ = std::fs::remove_dir_all(&skips);
    if let Err(e) = std::fs::create_dir_all(&skips) {
        eprintln!("xtask: {}: {e}", skips.display());
        return ExitCode::from(1);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&root)
        .args(["test", "--workspace", "--release"])
        .args(extra)
        .env(cellwarden_testkit::SKIP_DIR_ENV, &skips)
        .status();
    let status = match status {
        Ok(s) => s,
        Err(e) => {
            eprintln!("xtask: cannot run cargo: {e}");
            return ExitCode::from(1);
        }
    };
    let found = cellwarden_testkit::read_skips(&skips);
    println!();
    if found.is_empty() {
        println!("skipped: none (every test ran)");
    } else {
        // One line per test, with everything it lacked.
        let mut by_test: Vec<(&str, Vec<&str>)> = Vec::new();
        for (test, what, _) in &found {
            match by_test.last_mut() {
                Some((t, w)) if t == test => w.push(what),
                _ => by_test.push((test, vec![what])),
            }
        }
        println!(
            "skipped: {} test{} could not run here:",
            by_test.len(),
            if by_test.len() == 1 { "" } else { "s" }
        );
        for (test, what) in &by_test {
            println!("  {test}: {}", what.join("; "));
        }
        let mut enables: Vec<&str> = found.iter().map(|(_, _, e)| e.as_str()).collect();
        enables.sort();
        enables.dedup();
        println!("to run them:");
        for e in enables {
            println!("  {e}");
        }
        println!("  (or all at once: bash .ci/run, which installs what is missing)");
    }
    if !status.success() {
        return ExitCode::from(status.code().unwrap_or(1).clamp(1, 255) as u8);
    }
    ExitCode::SUCCESS
}
