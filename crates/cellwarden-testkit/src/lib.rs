//! Test support for cellwarden's crates: the shared test data beside the project
//! ([`shared`]), programs a test needs ([`tool`]), and skips ([`skip`]).
//!
//! A test that cannot run here says so in one line on the terminal (not captured by the test
//! harness, so it shows in a passing run), and leaves a record for the summary that
//! `cargo xtask test` prints at the end of the run with the command that enables it. Under
//! `CI=true` a skip is a failure: CI installs everything, so every test must really run.

pub mod fuzz;

use std::io::Write;
use std::path::{Path, PathBuf};

/// Where skip records go when the runner does not say (`<target>/test-skips`).
pub const SKIP_DIR_ENV: &str = "CELLWARDEN_SKIP_DIR";

/// The command that brings `../shared/` beside the project.
pub const SHARED_HINT: &str = "put the shared test data at ../shared/ beside the project \
     (CI has it); see the README's Tests section";

/// `../shared/data/<rel>` beside the project, or `None` after recording a skip.
pub fn shared(rel: &str) -> Option<PathBuf> {
    let p = project_root().join("../shared/data").join(rel);
    if p.exists() {
        Some(p.canonicalize().unwrap_or(p))
    } else {
        skip(
            &format!("../shared/data/{rel} not found (shared test data absent)"),
            SHARED_HINT,
        );
        None
    }
}

/// The first of `candidates` that is a file, or one named `name` on `PATH` (or in
/// `~/.cargo/bin`); `None` after recording a skip with `enable`.
pub fn tool(name: &str, candidates: &[&str], enable: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain(std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin")))
        .map(|d| d.join(name));
    let found = candidates
        .iter()
        .map(PathBuf::from)
        .chain(on_path)
        .find(|p| p.is_file());
    if found.is_none() {
        skip(&format!("{name} not installed"), enable);
    }
    found
}

/// Records that the calling test cannot run: `what` is missing, `enable` is the one command
/// (or step) that makes it run.
///
/// # Panics
/// Under `CI=true`, always: there a skipped test is a failed test.
pub fn skip(what: &str, enable: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("unknown test")
        .to_owned();
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{test}: cannot run under CI: {what} (enable: {enable})");
    }
    // Straight to the terminal: the harness captures `eprintln!` of passing tests.
    let _ = writeln!(std::io::stderr(), "skipped: {test}: {what}");
    let dir = skip_dir();
    if std::fs::create_dir_all(&dir).is_ok() {
        let file = dir.join(format!("{}.tsv", std::process::id()));
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
        {
            let clean = |s: &str| s.replace(['\t', '\n'], " ");
            let _ = writeln!(f, "{}\t{}\t{}", clean(&test), clean(what), clean(enable));
        }
    }
}

/// Asserts that `work(n)` grows about linearly: `work(16 n)` may take at most 64 times as long
/// as `work(n)` (best of three runs each). Quadratic work takes 256 times as long, so this
/// catches it with a wide margin for noise; it is a complexity check, not a speed claim.
pub fn assert_linear(what: &str, n: usize, mut work: impl FnMut(usize)) {
    let mut best = |n: usize| {
        (0..3)
            .map(|_| {
                let t = std::time::Instant::now();
                work(n);
                t.elapsed()
            })
            .min()
            .unwrap_or_default()
    };
    let small = best(n).max(std::time::Duration::from_micros(200));
    let large = best(16 * n);
    let ratio = large.as_secs_f64() / small.as_secs_f64();
    assert!(
        ratio < 64.0,
        "{what}: {n} took {small:?}, {} took {large:?} ({ratio:.0}×): not linear",
        16 * n
    );
}

/// The skip records of a run: (test, what is missing, how to enable), in a stable order.
pub fn read_skips(dir: &Path) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        for line in text.lines() {
            let mut parts = line.splitn(3, '\t');
            if let (Some(t), Some(w), Some(h)) = (parts.next(), parts.next(), parts.next()) {
                out.push((t.to_owned(), w.to_owned(), h.to_owned()));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The workspace root.
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where skip records go: the runner's folder, else `target/test-skips`.
pub fn skip_dir() -> PathBuf {
    match std::env::var_os(SKIP_DIR_ENV) {
        Some(d) => PathBuf::from(d),
        None => project_root().join("target/test-skips"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_records_are_read_back_in_order_without_repeats() {
        let dir = std::env::temp_dir().join(format!("cw-skips-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("1.tsv"),
            "b\tno x\tinstall x\na\tno y\tinstall y\n",
        )
        .unwrap();
        std::fs::write(dir.join("2.tsv"), "b\tno x\tinstall x\nbroken line\n").unwrap();
        let got = read_skips(&dir);
        assert_eq!(
            got,
            [
                ("a".into(), "no y".into(), "install y".into()),
                ("b".into(), "no x".into(), "install x".into())
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// A global allocator that counts live bytes and their peak, for memory bounds in tests:
/// declare it as the `#[global_allocator]` of a test binary.
pub mod alloc {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicUsize, Ordering};

    static LIVE: AtomicUsize = AtomicUsize::new(0);
    static PEAK: AtomicUsize = AtomicUsize::new(0);

    /// The system allocator, counted.
    pub struct Counting;

    // SAFETY: every call goes to the system allocator unchanged; only counters are added.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: the caller's layout is passed on as is.
            let p = unsafe { System.alloc(layout) };
            if !p.is_null() {
                let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
                PEAK.fetch_max(live, Ordering::Relaxed);
            }
            p
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: `ptr` came from `alloc` with this layout.
            unsafe { System.dealloc(ptr, layout) };
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: as for `alloc` and `dealloc`.
            let p = unsafe { System.realloc(ptr, layout, new_size) };
            if !p.is_null() {
                if new_size >= layout.size() {
                    let live = LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed)
                        + new_size
                        - layout.size();
                    PEAK.fetch_max(live, Ordering::Relaxed);
                } else {
                    LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
                }
            }
            p
        }
    }

    /// Starts a new peak from what is live now; returns that.
    pub fn reset_peak() -> usize {
        let live = LIVE.load(Ordering::Relaxed);
        PEAK.store(live, Ordering::Relaxed);
        live
    }

    /// The most bytes live since the last [`reset_peak`].
    pub fn peak() -> usize {
        PEAK.load(Ordering::Relaxed)
    }
}
