//! A mutation fuzzer that runs on the stable toolchain inside `cargo test`: inputs are grown
//! from seeds (real samples, the simulator's output, the project's fixtures) by byte flips,
//! interesting bytes and tokens, insertions, deletions, duplications, splices and truncation,
//! with a generator seeded for reproduction. Each input runs under `catch_unwind`; one that
//! panics or takes longer than [`Target::max_time`] is saved under
//! `target/fuzz-failures/<target>/` and fails the test with its path, to become a regression
//! case. How long each target runs: `FUZZ_SECS` (default 1.5 s), and the seed `FUZZ_SEED`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A target to fuzz.
pub struct Target<'a> {
    /// Name (folder of saved failures, report lines).
    pub name: &'a str,
    /// Inputs to start from.
    pub seeds: Vec<Vec<u8>>,
    /// Tokens worth inserting (format keywords, quotes, delimiters).
    pub tokens: &'a [&'a [u8]],
    /// Longest any one input may take (a hang, or worse than linear time).
    pub max_time: Duration,
    /// Longest input generated.
    pub max_len: usize,
    /// A folder of inputs that once failed, kept in the repository and run first.
    pub regressions: Option<PathBuf>,
}

/// What a run did.
#[derive(Debug, Clone, Copy)]
pub struct Report {
    /// Inputs run.
    pub executions: u64,
    /// Slowest input (time).
    pub slowest: Duration,
}

/// xorshift64*: enough for mutation choices, reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING: &[u8] = &[
    0, 1, 0x7f, 0x80, 0xff, b'"', b'\'', b'`', b'\\', b'\n', b'\r', b'\t', b' ', b',', b';', b':',
    b'=', b'[', b']', b'{', b'}', b'(', b')', b'%', b'$', b'#', b'-', b'/', b'0', b'9',
];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, seeds: &[Vec<u8>], tokens: &[&[u8]], max_len: usize) {
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = input.len();
        match rng.below(10) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                input.splice(i..i, bytes);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(256));
                input.drain(i..i + n);
            }
            4 if len > 0 => {
                // Duplicate a range (repeats: nesting, long lists, many records).
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(1024));
                let copies = 1 + rng.below(8);
                let part = input[i..i + n].to_vec();
                for _ in 0..copies {
                    input.splice(i..i, part.iter().copied());
                }
            }
            5 if !tokens.is_empty() => {
                let t = tokens[rng.below(tokens.len())];
                let i = rng.below(len + 1);
                input.splice(i..i, t.iter().copied());
            }
            6 if !seeds.is_empty() => {
                // Splice: the head of this input, the tail of another.
                let other = &seeds[rng.below(seeds.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                input.truncate(cut);
                input.extend_from_slice(&other[from..]);
            }
            7 if len > 0 => input.truncate(rng.below(len)),
            8 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(8));
                let v = INTERESTING[rng.below(INTERESTING.len())];
                for b in &mut input[i..i + n] {
                    *b = v;
                }
            }
            _ => {
                let i = rng.below(len + 1);
                input.insert(i, INTERESTING[rng.below(INTERESTING.len())]);
            }
        }
    }
    input.truncate(max_len);
}

/// How long each target runs in this process.
pub fn budget() -> Duration {
    let secs = std::env::var("FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(1.5);
    Duration::from_secs_f64(secs.max(0.0))
}

fn save(name: &str, input: &[u8]) -> PathBuf {
    let dir = crate::project_root()
        .join("target/fuzz-failures")
        .join(name);
    let _ = std::fs::create_dir_all(&dir);
    let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x100_0000_01b3)
    });
    let path = dir.join(format!("{hash:016x}"));
    let _ = std::fs::write(&path, input);
    path
}

/// Runs `check` on the seeds, then on mutations of them, for [`budget`]; panics naming the
/// saved input on the first panic or too slow input. `check` may assert invariants of its own.
pub fn run(target: Target<'_>, mut check: impl FnMut(&[u8])) -> Report {
    let seed = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_cafe_u64);
    let mut rng = Rng(seed | 1);
    let budget = budget();
    let start = Instant::now();
    let mut report = Report {
        executions: 0,
        slowest: Duration::ZERO,
    };
    let mut one = |input: &[u8], report: &mut Report| {
        let t = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| check(input)));
        let took = t.elapsed();
        report.executions += 1;
        report.slowest = report.slowest.max(took);
        if let Err(p) = result {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let path = save(target.name, input);
            panic!("{}: input {} failed: {msg}", target.name, path.display());
        }
        if took > target.max_time {
            let path = save(target.name, input);
            panic!(
                "{}: input {} ({} bytes) took {took:?}, over {:?}",
                target.name,
                path.display(),
                input.len(),
                target.max_time
            );
        }
    };
    for s in &target.seeds {
        one(s, &mut report);
    }
    // Inputs that failed before come back first: the repository's regression cases, then
    // what earlier runs on this machine saved.
    let saved = crate::project_root()
        .join("target/fuzz-failures")
        .join(target.name);
    for dir in target.regressions.iter().chain(std::iter::once(&saved)) {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        for f in files {
            if let Ok(b) = std::fs::read(&f) {
                one(&b, &mut report);
            }
        }
    }
    if target.seeds.is_empty() {
        return report;
    }
    while start.elapsed() < budget {
        let mut input = target.seeds[rng.below(target.seeds.len())].clone();
        mutate(
            &mut rng,
            &mut input,
            &target.seeds,
            target.tokens,
            target.max_len,
        );
        one(&input, &mut report);
    }
    report
}

/// Says how a target did, on the terminal (not captured), for `bench/fuzz.sh`.
pub fn say(name: &str, r: Report) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "fuzz {name}: {} executions, slowest {:?}",
        r.executions,
        r.slowest
    );
}
