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
    exit::code(cmd::run(args::Cli::parse().command))
}
