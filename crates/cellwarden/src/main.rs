//! The `cellwarden` command: argument parsing and wiring of the library crates.
//!
//! `args` holds the command line, `cmd` one file per command, `setup` what the commands share,
//! and `exit` the exit statuses.

mod args;
mod cmd;
mod exit;
mod setup;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // A bug met on hostile input is one line naming where, not a backtrace; the parts that
    // read untrusted text contain it (the record or statement is skipped and counted).
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!(
            "cellwarden: internal error{at}: {}",
            cellwarden_report::sanitize_terminal(&what)
        );
    }));
    exit::code(cmd::run(args::Cli::parse().command))
}
