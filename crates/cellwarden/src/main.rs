//! The `cellwarden` command: argument parsing and wiring of the library crates.
//!
//! `args` holds the command line, `cmd` one file per command, `setup` what the commands share,
//! and `exit` the exit statuses.

mod args;
mod cmd;
mod exit;
mod setup;

use clap::Parser;

// Parsing and the analytics allocate many small, short-lived strings and maps on several
// threads; mimalloc's per-thread free lists serve them faster than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc v2's `mimalloc.h` (the sys crate names no constant
/// for it): freed memory goes back to the system after this many ms (10 by default).
const MI_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Memory freed is given back at once: with the default delay, memory freed by one thread
/// and allocated by another (records parsed on one, aggregated on another) piled up (MySQL
/// audit `scope`: peak RSS 390-480 MB against 340 MB, at the same speed).
fn give_back_freed_memory_at_once() {
    // SAFETY: sets a plain option; mimalloc reads it when it next purges.
    unsafe { libmimalloc_sys::mi_option_set(MI_PURGE_DELAY, 0) }
}

fn main() -> std::process::ExitCode {
    give_back_freed_memory_at_once();
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

#[cfg(test)]
mod tests {
    /// The option set at start is mimalloc's purge delay: the only one whose default is 10.
    #[test]
    fn the_option_set_at_start_is_the_purge_delay() {
        // SAFETY: reads plain options.
        let get = |o| unsafe { libmimalloc_sys::mi_option_get(o) };
        assert_eq!(get(super::MI_PURGE_DELAY), 10);
        assert_eq!(get(super::MI_PURGE_DELAY - 1), 1, "eager_commit_delay");
        super::give_back_freed_memory_at_once();
        assert_eq!(get(super::MI_PURGE_DELAY), 0);
    }
}
