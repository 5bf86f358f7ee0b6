//! What a case's files do not say for themselves, inferred from the case before reading.
//!
//! - **Year** of times written without one (RFC 3164 syslog: `auth.log`, `secure`): a copied
//!   file's modification time is the day of collection, so the year comes from the absolute
//!   times of the case's other sources (auditd epochs, ISO times, EVTX, Zeek): those of the same
//!   host first, else of the whole case, placing the file's first line nearest to them. Only
//!   when no source carries an absolute time is the modification year used, and the summary
//!   says so. Within a file, a month going back half a year (December to January) starts the
//!   next year (done by the reader).
//! - **Time zone** of times written without an offset: UTC unless `--timezone` says otherwise.
//! - **Host** of records that name none (auditd without `node=`, database audit logs, many JSON
//!   exports), in this order: the `--host-map` file (path glob → host), the host name the syslog
//!   files of the same folder carry, the folder when it is named after a host of the case (or
//!   looks like a host name: one folder per host).
//!
//! Every inference is returned with what it was made from, for the run summary.
//!
//! The first 256 KiB of every text input are read for this; EVTX files (which name their host
//! and carry absolute times) only when some input needs a year or a host, and then only their
//! first chunk: a case of EVTX files is not decoded twice.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use cellwarden_event::Timestamp;

use crate::{Context, Format, InputFile, Limits, Mapping};

/// Bytes of each file read to learn its first times and hosts.
const HEAD_BYTES: usize = 256 * 1024;
/// Bytes of an EVTX file read when its head is needed: the file header and its first chunk
/// (its records name the host and carry absolute times; a whole head would be four chunks).
const EVTX_HEAD_BYTES: usize = 4096 + 65536;

/// Folder names that say nothing about a host.
const GENERIC_FOLDERS: &[&str] = &[
    "log",
    "logs",
    "var",
    "audit",
    "db",
    "database",
    "databases",
    "network",
    "net",
    "windows",
    "linux",
    "evidence",
    "case",
    "cases",
    "data",
    "collected",
    "collection",
    "export",
    "exports",
    "tmp",
    "temp",
    "raw",
    "input",
    "inputs",
    "syslog",
    "auth",
    "journal",
    "zeek",
    "flows",
    "sim",
    "current",
    "archive",
    "old",
];

/// The user's say over inference, each optionally for the inputs a glob matches.
#[derive(Debug, Clone, Default)]
pub struct CaseOptions {
    /// `--year [GLOB=]YEAR`.
    pub years: Vec<(Option<glob::Pattern>, i16)>,
    /// `--timezone [GLOB=]ZONE`.
    pub zones: Vec<(Option<glob::Pattern>, Arc<str>)>,
    /// `--host-map FILE`: path glob → host.
    pub host_map: Vec<(glob::Pattern, Arc<str>)>,
    /// `--pg-prefix FORMAT`: PostgreSQL `log_line_prefix` settings, tried in order.
    pub pg_prefixes: Vec<crate::pgprefix::Prefix>,
}

/// `[GLOB=]VALUE`.
fn scoped(s: &str) -> Result<(Option<glob::Pattern>, &str), String> {
    match s.rsplit_once('=') {
        Some((g, v)) => glob::Pattern::new(g)
            .map(|p| (Some(p), v))
            .map_err(|e| format!("'{g}' is not a glob: {e}")),
        None => Ok((None, s)),
    }
}

impl CaseOptions {
    /// Adds `--year [GLOB=]YEAR`.
    pub fn add_year(&mut self, s: &str) -> Result<(), String> {
        let (g, v) = scoped(s)?;
        let y: i16 = v
            .trim()
            .parse()
            .ok()
            .filter(|y| (1970..=2200).contains(y))
            .ok_or_else(|| format!("'{v}' is not a year"))?;
        self.years.push((g, y));
        Ok(())
    }

    /// Adds `--timezone [GLOB=]ZONE` (IANA name, `UTC` or an offset like `+02:00`).
    pub fn add_zone(&mut self, s: &str) -> Result<(), String> {
        let (g, v) = scoped(s)?;
        if crate::linux::zone(v).is_none() {
            return Err(format!(
                "'{v}' is not a time zone (an IANA name like Europe/Paris, UTC, or +02:00)"
            ));
        }
        self.zones.push((g, Arc::from(v.trim())));
        Ok(())
    }

    /// Reads a host map: one `GLOB HOST` a line, `#` comments.
    pub fn read_host_map(&mut self, text: &str) -> Result<(), String> {
        for (i, line) in text.lines().enumerate() {
            let l = line.split('#').next().unwrap_or("").trim();
            if l.is_empty() {
                continue;
            }
            let (g, h) = l
                .rsplit_once(char::is_whitespace)
                .ok_or_else(|| format!("line {}: expected `GLOB HOST`", i + 1))?;
            let p = glob::Pattern::new(g.trim())
                .map_err(|e| format!("line {}: '{g}' is not a glob: {e}", i + 1))?;
            self.host_map.push((p, Arc::from(h.trim())));
        }
        Ok(())
    }
}

/// One inference, for the run summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inference {
    /// The input.
    pub file: Arc<str>,
    /// What was set and from what (`year 2025 from the absolute times of host db-01`).
    pub what: String,
    /// Nothing in the case supports it (the user should check it).
    pub weak: bool,
}

/// What the first bytes of one input say.
#[derive(Default)]
struct Head {
    /// Times of its records (absolute ones; for year-less syslog, read in the year 2000).
    times: Vec<Timestamp>,
    hosts: BTreeSet<String>,
    events: usize,
    /// Syslog whose first times carry no year.
    yearless: bool,
    /// An EVTX file not decoded yet: its times and hosts serve other files only (it names its
    /// host and writes absolute times), so it is read only when some file needs them.
    deferred: bool,
}

/// The heads of all inputs, in input order, read on all cores (a case of thousands of files
/// would otherwise wait for them one by one before the run starts).
fn heads_of(inputs: &[InputFile], mapping: &Mapping) -> Vec<Option<Head>> {
    let mut heads = on_all_cores(inputs, &|i| head_of(i, mapping, false));
    // EVTX heads are read only when a file needs what they tell: a year for times without one,
    // or a host for records that name none (the hosts of the case are compared with folder
    // names). A case of EVTX files alone is not decoded twice.
    let needed = heads
        .iter()
        .flatten()
        .any(|h| h.yearless || (h.events > 0 && h.hosts.is_empty()));
    if needed {
        let deferred: Vec<usize> = (0..inputs.len())
            .filter(|&i| heads[i].as_ref().is_some_and(|h| h.deferred))
            .collect();
        let picked: Vec<&InputFile> = deferred.iter().map(|&i| &inputs[i]).collect();
        let read = on_all_cores(&picked, &|i| head_of(i, mapping, true));
        for (i, h) in deferred.into_iter().zip(read) {
            heads[i] = h;
        }
    }
    heads
}

/// `f` of each item, in order, spread over the cores (a case of thousands of files would
/// otherwise wait for them one by one before the run starts).
fn on_all_cores<T: Sync, R: Send>(items: &[T], f: &(dyn Fn(&T) -> R + Sync)) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || items.len() < 2 {
        return items.iter().map(f).collect();
    }
    let per = items.len().div_ceil(threads);
    std::thread::scope(|s| {
        let parts: Vec<_> = items
            .chunks(per)
            .map(|part| s.spawn(move || part.iter().map(f).collect::<Vec<_>>()))
            .collect();
        parts
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// The head of one input; an EVTX file's is only noted as deferred unless `evtx`.
fn head_of(input: &InputFile, mapping: &Mapping, evtx: bool) -> Option<Head> {
    let path = input.path.as_ref()?;
    let mut file = std::fs::File::open(path).ok()?;
    let deferred = || {
        Some(Head {
            deferred: true,
            ..Head::default()
        })
    };
    let limit = if evtx { EVTX_HEAD_BYTES } else { HEAD_BYTES };
    let mut bytes = Vec::with_capacity(limit);
    let read = if input.gzip {
        flate2::read::MultiGzDecoder::new(file)
            .take(limit as u64)
            .read_to_end(&mut bytes)
    } else {
        // The magic first: an EVTX head that is not needed is not read.
        let magic = crate::input::EVTX_MAGIC.len();
        let first = (&mut file).take(magic as u64).read_to_end(&mut bytes);
        if !evtx
            && first.is_ok()
            && bytes == crate::input::EVTX_MAGIC
            && input.format.is_none_or(|f| f == Format::Evtx)
        {
            return deferred();
        }
        first.and_then(|_| {
            file.take((limit - bytes.len()) as u64)
                .read_to_end(&mut bytes)
        })
    };
    if read.is_err() && bytes.is_empty() {
        return None;
    }
    // Only whole lines of text formats (the head's last line may be cut).
    let format = input.format.or_else(|| crate::sniff(&bytes));
    if format == Some(Format::Evtx) && !evtx {
        return deferred();
    }
    if !matches!(format, Some(Format::Evtx) | Some(Format::Capture))
        && let Some(end) = memchr::memrchr(b'\n', &bytes)
    {
        bytes.truncate(end + 1);
    }
    let mut head = Head {
        yearless: format == Some(Format::Syslog) && {
            let (first, _) = crate::linux::strip_pri_bytes(&bytes);
            crate::linux::MONTHS
                .iter()
                .any(|m| first.starts_with(m.as_bytes()))
        },
        ..Head::default()
    };
    let mut c = crate::Collected::default();
    let name: Arc<str> = input.name.clone();
    let limits = Limits::default();
    let ctx = Context::of_year(2000);
    let reader: Box<dyn std::io::BufRead> = Box::new(std::io::Cursor::new(bytes));
    crate::reader::read_stream_for_case(&name, reader, format, &ctx, &limits, &mut c);
    c.decode(mapping, &mut |e| {
        head.events += 1;
        if let Some(t) = e.timestamp {
            head.times.push(t);
        }
        if let Some(h) = e.host.as_deref().filter(|h| !anonymous(h)) {
            head.hosts.insert(h.to_ascii_lowercase());
        }
    });
    Some(head)
}

/// Names that do not tell one host from another.
fn anonymous(h: &str) -> bool {
    matches!(
        short(h),
        "localhost" | "(none)" | "-" | "?" | "" | "ubuntu" | "debian" | "127" | "::1"
    ) || h == "127.0.0.1"
}

/// The short form of a host name (before its first dot), for matching names across sources.
fn short(h: &str) -> &str {
    if h.parse::<std::net::IpAddr>().is_ok() {
        return h;
    }
    h.split('.').next().unwrap_or(h)
}

fn matches(p: &glob::Pattern, input: &InputFile) -> bool {
    let name = input.name.as_ref();
    p.matches(name)
        || Path::new(name)
            .file_name()
            .is_some_and(|f| p.matches(&f.to_string_lossy()))
}

/// Folders under the given roots and how many of their sub-folders hold inputs.
struct Layout {
    children: BTreeMap<std::path::PathBuf, BTreeSet<std::path::PathBuf>>,
}

impl Layout {
    fn of(inputs: &[InputFile]) -> Layout {
        let mut children: BTreeMap<_, BTreeSet<_>> = BTreeMap::new();
        for i in inputs {
            let (Some(p), Some(root)) = (&i.path, &i.root) else {
                continue;
            };
            let mut dir = p.parent();
            while let Some(d) = dir {
                if d == root.as_path() || !d.starts_with(root) {
                    break;
                }
                if let Some(parent) = d.parent() {
                    children
                        .entry(parent.to_owned())
                        .or_default()
                        .insert(d.to_owned());
                }
                dir = d.parent();
            }
        }
        Layout { children }
    }

    /// Sub-folders of `dir`'s parent that hold inputs.
    fn siblings(&self, dir: &Path) -> usize {
        dir.parent()
            .and_then(|p| self.children.get(p))
            .map_or(0, BTreeSet::len)
    }
}

/// The host the folders of a file found under a given folder name: the nearest one named
/// after a host of the case, else the nearest non-generic folder that looks like a host name
/// beside other folders holding inputs (one folder per host).
fn folder_host(
    input: &InputFile,
    known_hosts: &BTreeSet<String>,
    layout: &Layout,
) -> Option<(Arc<str>, String)> {
    let (path, root) = (input.path.as_ref()?, input.root.as_ref()?);
    let folders: Vec<&Path> = path
        .ancestors()
        .skip(1)
        .take_while(|d| *d != root.as_path() && d.starts_with(root))
        .collect();
    let name = |d: &Path| {
        d.file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
    };
    for d in &folders {
        if let Some(n) = name(d)
            && known_hosts.contains(short(&n))
        {
            return Some((
                Arc::from(n.as_str()),
                "its folder, named after a host of the case".into(),
            ));
        }
    }
    let d = folders
        .iter()
        .find(|d| name(d).is_some_and(|n| !GENERIC_FOLDERS.contains(&n.as_str())))?;
    let n = name(d)?;
    let hostlike = n.chars().any(|c| c.is_ascii_alphabetic())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    (hostlike && layout.siblings(d) >= 2).then(|| {
        (
            Arc::from(n.as_str()),
            "its folder (one folder per host)".into(),
        )
    })
}

/// Sets the year, zone and host of each input (see the module documentation); returns what was
/// inferred, in input order.
pub fn infer(inputs: &mut [InputFile], opts: &CaseOptions, mapping: &Mapping) -> Vec<Inference> {
    let heads = heads_of(inputs, mapping);
    let mut out = Vec::new();
    // Absolute times, per host and for the whole case.
    let mut by_host: BTreeMap<String, Vec<Timestamp>> = BTreeMap::new();
    let mut all: Vec<Timestamp> = Vec::new();
    let mut known_hosts: BTreeSet<String> = BTreeSet::new();
    for h in heads.iter().flatten() {
        for host in &h.hosts {
            known_hosts.insert(short(host).to_owned());
        }
        if h.yearless {
            continue;
        }
        all.extend(&h.times);
        for host in &h.hosts {
            by_host
                .entry(short(host).to_owned())
                .or_default()
                .extend(&h.times);
        }
    }
    // Host names carried by the syslog files of each folder.
    let mut folder_hosts: BTreeMap<std::path::PathBuf, BTreeSet<String>> = BTreeMap::new();
    for (i, h) in inputs.iter().zip(&heads) {
        if let (Some(p), Some(h)) = (&i.path, h)
            && i.format.or(if h.yearless {
                Some(Format::Syslog)
            } else {
                None
            }) == Some(Format::Syslog)
            && let Some(dir) = p.parent()
        {
            folder_hosts
                .entry(dir.to_owned())
                .or_default()
                .extend(h.hosts.iter().cloned());
        }
    }
    let layout = Layout::of(inputs);
    let pg_prefixes: Arc<[crate::pgprefix::Prefix]> = opts.pg_prefixes.clone().into();
    for (input, head) in inputs.iter_mut().zip(&heads) {
        input.pg_prefixes = Arc::clone(&pg_prefixes);
        // Time zone.
        if let Some((_, z)) = opts
            .zones
            .iter()
            .rev()
            .find(|(g, _)| g.as_ref().is_none_or(|g| matches(g, input)))
        {
            input.zone = Some(Arc::clone(z));
        }
        // Host of records that name none.
        if let Some(h) = head
            && h.events > 0
            && h.hosts.is_empty()
        {
            let mapped = opts
                .host_map
                .iter()
                .find(|(g, _)| matches(g, input))
                .map(|(_, host)| (Arc::clone(host), "the host map".to_owned()));
            let dir = input
                .path
                .as_ref()
                .and_then(|p| p.parent())
                .map(Path::to_path_buf);
            let from_syslog = || {
                let hosts = folder_hosts.get(dir.as_ref()?)?;
                (hosts.len() == 1).then(|| {
                    let h = hosts.iter().next().cloned().unwrap_or_default();
                    (
                        Arc::from(h.as_str()),
                        "the syslog files of its folder".to_owned(),
                    )
                })
            };
            let from_folder = || folder_host(input, &known_hosts, &layout);
            if let Some((host, basis)) = mapped.or_else(from_syslog).or_else(from_folder) {
                out.push(Inference {
                    file: input.name.clone(),
                    what: format!("host {host} from {basis}"),
                    weak: false,
                });
                input.host = Some(host);
            }
        }
        // Year of times without one.
        let Some(h) = head.as_ref().filter(|h| h.yearless) else {
            continue;
        };
        if let Some((_, y)) = opts
            .years
            .iter()
            .rev()
            .find(|(g, _)| g.as_ref().is_none_or(|g| matches(g, input)))
        {
            input.year = Some(*y);
            out.push(Inference {
                file: input.name.clone(),
                what: format!("year {y} from --year"),
                weak: false,
            });
            continue;
        }
        let Some(first) = h.times.first() else {
            continue;
        };
        let own: Vec<Timestamp> = h
            .hosts
            .iter()
            .filter_map(|x| by_host.get(short(x)))
            .flatten()
            .copied()
            .collect();
        let (reference, basis) = if !own.is_empty() {
            let names: Vec<&str> = h.hosts.iter().map(|x| short(x)).collect();
            (
                own,
                format!("the absolute times of host {}", names.join(", ")),
            )
        } else if !all.is_empty() {
            (
                all.clone(),
                "the absolute times of the case's other sources".to_owned(),
            )
        } else {
            let y = input.modification_year();
            input.year = Some(y);
            out.push(Inference {
                file: input.name.clone(),
                what: format!(
                    "year {y} from the file's modification time: no source of the case carries an absolute time (give --year if the logs were copied)"
                ),
                weak: true,
            });
            continue;
        };
        let mut sorted = reference;
        sorted.sort();
        let median = sorted[sorted.len() / 2];
        let ref_year = median.to_zoned(jiff::tz::TimeZone::UTC).year();
        let civil = first.to_zoned(jiff::tz::TimeZone::UTC).datetime();
        let year = (ref_year - 1..=ref_year + 1)
            .filter_map(|y| {
                let d = civil.with().year(y).build().ok()?;
                let t = d.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
                Some((t.as_second().abs_diff(median.as_second()), y))
            })
            .min()
            .map(|(_, y)| y)
            .unwrap_or(ref_year);
        input.year = Some(year);
        out.push(Inference {
            file: input.name.clone(),
            what: format!("year {year} from {basis}"),
            weak: false,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    const AUDIT_DB01: &str = "node=db-01 type=USER_LOGIN msg=audit(1736208000.000:1): pid=1 uid=0 auid=0 ses=1 msg='op=login acct=\"root\" exe=\"/usr/sbin/sshd\" hostname=? addr=10.0.0.9 terminal=ssh res=success'\n";

    #[test]
    fn the_year_of_copied_syslog_comes_from_the_case() {
        let dir = tempfile::tempdir().unwrap();
        // 2025-01-07 in the auditd log of db-01; auth.log starts in late December.
        write(dir.path(), "db-01/audit.log", AUDIT_DB01);
        write(
            dir.path(),
            "db-01/auth.log",
            "Dec 30 23:59:00 db-01 sshd[1]: Accepted password for root from 10.0.0.9 port 22 ssh2\nJan  2 00:00:01 db-01 sshd[1]: Accepted password for root from 10.0.0.9 port 22 ssh2\n",
        );
        write(
            dir.path(),
            "alone/secure",
            "Mar  4 10:00:00 other sshd[1]: Accepted password for root from 10.0.0.9 port 22 ssh2\n",
        );
        let mut inputs = crate::discover(&[dir.path().to_path_buf()]).unwrap();
        let inf = infer(&mut inputs, &CaseOptions::default(), &Mapping::builtin());
        let by = |f: &str| inputs.iter().find(|i| i.name.ends_with(f)).unwrap();
        assert_eq!(by("auth.log").year, Some(2024), "{inf:?}");
        assert!(
            inf.iter()
                .any(|i| i.what == "year 2024 from the absolute times of host db-01"),
            "{inf:?}"
        );
        // Another host: the case's times.
        assert_eq!(by("secure").year, Some(2025), "{inf:?}");
        // The reader moves to the next year in January.
        let mut times = Vec::new();
        crate::Collected::read(by("auth.log"), &Limits::default())
            .decode(&Mapping::builtin(), &mut |e| {
                times.push(e.timestamp.unwrap().to_string())
            });
        assert_eq!(times, ["2024-12-30T23:59:00Z", "2025-01-02T00:00:01Z"]);
        // --year wins, for the inputs its glob names.
        let mut opts = CaseOptions::default();
        opts.add_year("*secure=2023").unwrap();
        let mut inputs = crate::discover(&[dir.path().to_path_buf()]).unwrap();
        infer(&mut inputs, &opts, &Mapping::builtin());
        assert_eq!(
            inputs
                .iter()
                .find(|i| i.name.ends_with("secure"))
                .unwrap()
                .year,
            Some(2023)
        );
    }

    /// EVTX heads are decoded only when a file needs them: a case of EVTX files alone is not
    /// read twice; a year-less syslog file of the same host gets its year from them.
    #[test]
    fn evtx_heads_are_read_when_a_file_needs_them() {
        let Some(samples) = cellwarden_testkit::shared("evtx-attack-samples") else {
            return;
        };
        let sample = walk_evtx(&samples).expect("an EVTX sample");
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("ws")).unwrap();
        std::fs::copy(&sample, dir.path().join("ws/security.evtx")).unwrap();
        let mut inputs = crate::discover(&[dir.path().to_path_buf()]).unwrap();
        let heads = heads_of(&inputs, &Mapping::builtin());
        assert!(heads.iter().flatten().all(|h| h.deferred && h.events == 0));
        assert!(infer(&mut inputs, &CaseOptions::default(), &Mapping::builtin()).is_empty());

        // The sample's host, as its records name it.
        let mut first: Option<(String, Timestamp)> = None;
        crate::Collected::read(&inputs[0], &Limits::default()).decode(
            &Mapping::builtin(),
            &mut |e| {
                if first.is_none()
                    && let (Some(h), Some(t)) = (e.host.as_deref(), e.timestamp)
                {
                    first = Some((h.to_owned(), t));
                }
            },
        );
        let (host, _) = first.expect("a record with host and time");
        let host = short(&host.to_ascii_lowercase()).to_owned();
        write(
            dir.path(),
            "ws/auth.log",
            &format!(
                "Mar  4 10:00:00 {host} sshd[1]: Accepted password for root from 10.0.0.9 port 22 ssh2\n"
            ),
        );
        let mut inputs = crate::discover(&[dir.path().to_path_buf()]).unwrap();
        let heads = heads_of(&inputs, &Mapping::builtin());
        assert!(heads.iter().flatten().all(|h| !h.deferred));
        let inf = infer(&mut inputs, &CaseOptions::default(), &Mapping::builtin());
        assert!(
            inf.iter().any(|i| i
                .what
                .ends_with(&format!("from the absolute times of host {host}"))),
            "{inf:?}"
        );
    }

    /// The first `.evtx` file under `dir`, in name order.
    fn walk_evtx(dir: &Path) -> Option<std::path::PathBuf> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        entries.iter().find_map(|p| {
            if p.is_dir() {
                walk_evtx(p)
            } else {
                (p.extension().is_some_and(|x| x == "evtx")).then(|| p.clone())
            }
        })
    }

    #[test]
    fn a_case_without_absolute_times_says_so() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "auth.log",
            "Mar  4 10:00:00 h sshd[1]: Accepted password for root from 10.0.0.9 port 22 ssh2\n",
        );
        let mut inputs = crate::discover(&[dir.path().to_path_buf()]).unwrap();
        let inf = infer(&mut inputs, &CaseOptions::default(), &Mapping::builtin());
        assert!(
            inf[0].weak && inf[0].what.contains("modification time"),
            "{inf:?}"
        );
    }

    #[test]
    fn hosts_of_records_that_name_none() {
        let dir = tempfile::tempdir().unwrap();
        let no_node = "type=USER_LOGIN msg=audit(1736208000.000:1): pid=1 uid=0 auid=0 ses=1 msg='op=login acct=\"root\" exe=\"/usr/sbin/sshd\" hostname=? addr=10.0.0.9 terminal=ssh res=success'\n";
        // Beside a syslog file naming its host.
        write(dir.path(), "evidence/a/audit.log", no_node);
        write(
            dir.path(),
            "evidence/a/syslog",
            "Jan  7 00:00:00 gw-07 sshd[1]: Accepted password for root from 10.0.0.9 port 22 ssh2\n",
        );
        // In a folder named like a host.
        write(dir.path(), "evidence/hss-02/audit.log", no_node);
        // Mapped by glob.
        write(dir.path(), "evidence/logs/mapped-audit.log", no_node);
        // Nothing to go by.
        write(dir.path(), "evidence/logs/audit.log", no_node);
        let mut opts = CaseOptions::default();
        opts.read_host_map("# host map\n*/mapped-audit.log  pgw-01\n")
            .unwrap();
        let mut inputs = crate::discover(&[dir.path().to_path_buf()]).unwrap();
        let inf = infer(&mut inputs, &opts, &Mapping::builtin());
        let host = |f: &str| {
            inputs
                .iter()
                .find(|i| i.name.ends_with(f))
                .unwrap()
                .host
                .as_deref()
                .map(str::to_owned)
        };
        assert_eq!(host("a/audit.log").as_deref(), Some("gw-07"), "{inf:?}");
        assert_eq!(host("hss-02/audit.log").as_deref(), Some("hss-02"));
        assert_eq!(host("mapped-audit.log").as_deref(), Some("pgw-01"));
        assert_eq!(host("logs/audit.log"), None);
        // And the events carry it.
        let i = inputs
            .iter()
            .find(|i| i.name.ends_with("hss-02/audit.log"))
            .unwrap();
        let mut hosts = Vec::new();
        crate::Collected::read(i, &Limits::default()).decode(&Mapping::builtin(), &mut |e| {
            hosts.push(e.host.as_deref().map(str::to_owned))
        });
        assert_eq!(hosts, [Some("hss-02".to_owned())]);
    }
}
