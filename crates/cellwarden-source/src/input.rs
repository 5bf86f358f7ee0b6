//! Finding input files and sniffing their format.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Formats we read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Windows event log (`.evtx`).
    Evtx,
    /// JSON Lines, a JSON array, or concatenated JSON objects (told apart when read).
    Json,
    /// auditd raw log (`type=… msg=audit(…)`).
    Auditd,
    /// syslog lines as rsyslog writes them (RFC 3164 or 5424, with or without `<PRI>`).
    Syslog,
    /// PostgreSQL server log (stderr): pgaudit records and the server's other messages.
    PgLog,
    /// PostgreSQL `csvlog` with pgaudit records.
    PgCsv,
    /// MariaDB `server_audit` file.
    MariaDbAudit,
    /// MySQL Enterprise Audit or Percona Audit Log file in XML (old or new style).
    MySqlAuditXml,
    /// Percona Audit Log file in CSV.
    PerconaAuditCsv,
    /// Oracle XML audit trail (`AUDIT_TRAIL = XML`, `.xml` files of `audit_file_dest`).
    OracleAuditXml,
    /// MySQL / MariaDB / Percona slow query log.
    MySqlSlow,
    /// MySQL / MariaDB general query log.
    MySqlGeneral,
    /// MySQL / MariaDB / Percona error log.
    MySqlError,
    /// Oracle unified audit trail exported as CSV with a header row.
    OracleCsv,
    /// Zeek log in TSV with `#` header lines.
    ZeekTsv,
    /// The CSV `nfdump -o csv` writes.
    NfdumpCsv,
    /// pcap or pcapng capture of NetFlow v5/v9 or IPFIX export packets.
    Capture,
}

impl Format {
    /// Formats whose records may be MySQL's or Oracle's audit records, which write one
    /// statement as several records (the others' statements are never repeats).
    pub fn may_repeat_statements(self) -> bool {
        !matches!(
            self,
            Format::Evtx
                | Format::Auditd
                | Format::PgLog
                | Format::PgCsv
                | Format::ZeekTsv
                | Format::NfdumpCsv
                | Format::Capture
        )
    }

    /// Formats whose reader keeps what earlier records said for later ones (auditd process
    /// lineage, PostgreSQL backends' client hosts, MySQL general-log and audit-log
    /// connections): see
    /// [`crate::StreamState`].
    pub fn keeps_stream_state(self) -> bool {
        matches!(
            self,
            Format::Auditd | Format::PgLog | Format::Syslog | Format::MySqlGeneral | Format::Json
        )
    }

    /// Text formats whose records may span lines inside double quotes.
    pub fn quoted_multiline(self) -> bool {
        matches!(
            self,
            Format::PgLog | Format::PgCsv | Format::OracleCsv | Format::PerconaAuditCsv
        )
    }
}

/// What an input's records may not say for themselves: the year of times written without one
/// (RFC 3164 syslog), the time zone of times written without an offset, and the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// Year of the first record's time, for times written without one; later records move to
    /// the next year when their month goes back (December to January).
    pub year: i16,
    /// IANA name (`Europe/Paris`) or UTC offset (`+02:00`) of times written without an offset;
    /// UTC when not set.
    pub zone: Option<Arc<str>>,
    /// Host of records that do not name one.
    pub host: Option<Arc<str>>,
    /// PostgreSQL `log_line_prefix` settings to read server logs by (`--pg-prefix`).
    pub pg_prefixes: Arc<[crate::pgprefix::Prefix]>,
}

impl Context {
    /// A context with only a year.
    pub fn of_year(year: i16) -> Context {
        Context {
            year,
            ..Context::default()
        }
    }
}

/// One input to read.
#[derive(Debug, Clone)]
pub struct InputFile {
    /// `None` for standard input.
    pub path: Option<PathBuf>,
    /// The name shown in messages and alerts.
    pub name: Arc<str>,
    /// Size on disk (compressed size for `.gz`); 0 for standard input.
    pub size: u64,
    /// gzip-compressed.
    pub gzip: bool,
    /// Format from the name, if it tells; otherwise sniffed from the content.
    pub format: Option<Format>,
    /// Year of times written without one; the file's modification year when not set (see
    /// `crate::case`).
    pub year: Option<i16>,
    /// Zone of times written without an offset (UTC when not set).
    pub zone: Option<Arc<str>>,
    /// Host of records that do not name one.
    pub host: Option<Arc<str>>,
    /// PostgreSQL `log_line_prefix` settings to read server logs by (`--pg-prefix`).
    pub pg_prefixes: Arc<[crate::pgprefix::Prefix]>,
    /// The folder given on the command line this file was found in (`None` for a file given
    /// itself), for the case layout (one folder per host).
    pub root: Option<PathBuf>,
}

impl InputFile {
    /// The year the file's modification time gives (the year of collection for copied logs).
    pub fn modification_year(&self) -> i16 {
        self.path
            .as_ref()
            .and_then(|p| std::fs::metadata(p).ok()?.modified().ok())
            .and_then(|t| cellwarden_event::Timestamp::try_from(t).ok())
            .unwrap_or_else(cellwarden_event::Timestamp::now)
            .to_zoned(jiff::tz::TimeZone::UTC)
            .year()
    }

    /// What the records of this input do not carry.
    pub fn context(&self) -> Context {
        Context {
            year: self.year.unwrap_or_else(|| self.modification_year()),
            zone: self.zone.clone(),
            host: self.host.clone(),
            pg_prefixes: Arc::clone(&self.pg_prefixes),
        }
    }
}

/// A path given on the command line that does not exist or cannot be listed.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct DiscoverError {
    /// The path as given.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

pub(crate) const EVTX_MAGIC: &[u8] = b"ElfFile\0";
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];

fn format_from_name(name: &str) -> Option<Format> {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".evtx") {
        Some(Format::Evtx)
    } else if [".pcap", ".pcapng", ".cap"]
        .iter()
        .any(|e| lower.ends_with(e))
    {
        Some(Format::Capture)
    } else if [".json", ".jsonl", ".ndjson", ".jsonlines"]
        .iter()
        .any(|e| lower.ends_with(e))
    {
        Some(Format::Json)
    } else {
        None
    }
}

/// Sniffs a format from the first bytes: EVTX magic, or a JSON object/array start.
pub fn sniff(head: &[u8]) -> Option<Format> {
    if head.starts_with(EVTX_MAGIC) {
        return Some(Format::Evtx);
    }
    if crate::netflow::is_capture(head) {
        return Some(Format::Capture);
    }
    let first = head
        .iter()
        .copied()
        .find(|b| !b.is_ascii_whitespace() && *b != 0xEF && *b != 0xBB && *b != 0xBF)?;
    if matches!(first, b'{' | b'[') {
        return Some(Format::Json);
    }
    let text = String::from_utf8_lossy(head);
    let line = text.lines().find(|l| !l.trim().is_empty())?;
    if first == b'<'
        && let Some(f) = crate::xmlrecord::sniff(&text)
    {
        return Some(f);
    }
    // Zeek headers, possibly after a comment line of the tool that wrote the file.
    if text
        .lines()
        .take(3)
        .take_while(|l| l.starts_with('#'))
        .any(crate::flow::is_zeek_tsv)
    {
        return Some(Format::ZeekTsv);
    }
    if crate::flow::is_nfdump_header(line) {
        return Some(Format::NfdumpCsv);
    }
    // MySQL's own logs, before syslog (whose ISO times they share): the slow log by its
    // comment lines, the general log and the error log by which of their lines prevail.
    let lines: Vec<&str> = text.lines().take(40).collect();
    if lines.iter().any(|l| crate::mysqllog::starts_slow_record(l))
        && lines
            .iter()
            .any(|l| l.starts_with("# Query_time: ") || l.starts_with("# User@Host: "))
    {
        return Some(Format::MySqlSlow);
    }
    let general = lines
        .iter()
        .filter(|l| crate::mysqllog::general_head(l).is_some())
        .count();
    let errors = lines
        .iter()
        .filter(|l| crate::mysqllog::is_error_line(l))
        .count();
    if general > errors
        || (general == 0 && errors == 0 && lines.iter().any(|l| crate::mysqllog::is_banner(l)))
    {
        return Some(Format::MySqlGeneral);
    }
    if errors > 0 && errors * 2 >= lines.len().min(10) {
        return Some(Format::MySqlError);
    }
    if crate::dbaudit::is_pg_csvlog(line) {
        return Some(Format::PgCsv);
    }
    if crate::dbaudit::is_oracle_header(line) {
        return Some(Format::OracleCsv);
    }
    if crate::mysqlaudit::is_percona_csv(line) {
        return Some(Format::PerconaAuditCsv);
    }
    if crate::dbaudit::is_mariadb_audit(line) {
        return Some(Format::MariaDbAudit);
    }
    // PostgreSQL logging to syslog is read with the syslog lines (the reader takes its
    // records out of them).
    if (text.lines().any(crate::dbaudit::is_pgaudit) || crate::dbaudit::is_pg_log_line(line))
        && !crate::linux::looks_like_syslog(line)
    {
        return Some(Format::PgLog);
    }
    if crate::linux::is_audit_record(line) {
        Some(Format::Auditd)
    } else if crate::linux::looks_like_syslog(line) {
        Some(Format::Syslog)
    } else {
        None
    }
}

/// The first bytes of a gzip file's content (`None` if it cannot be read).
fn gz_head_of(path: &Path) -> Option<Vec<u8>> {
    let f = File::open(path).ok()?;
    let mut d = flate2::read::MultiGzDecoder::new(io::BufReader::new(f));
    let mut buf = vec![0u8; 4096];
    let mut n = 0;
    while n < buf.len() {
        match d.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(r) => n += r,
            Err(_) if n > 0 => break,
            Err(_) => return None,
        }
    }
    buf.truncate(n);
    Some(buf)
}

fn head_of(path: &Path) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 512];
    let mut f = File::open(path)?;
    let mut n = 0;
    while n < buf.len() {
        let r = f.read(&mut buf[n..])?;
        if r == 0 {
            break;
        }
        n += r;
    }
    buf.truncate(n);
    Ok(buf)
}

fn input_for(path: &Path, explicit: bool) -> Option<InputFile> {
    let name = path.to_string_lossy().to_string();
    let meta = std::fs::metadata(path).ok();
    let size = meta.map(|m| m.len()).unwrap_or(0);
    let lower = name.to_ascii_lowercase();
    let (gzip, inner) = match lower.strip_suffix(".gz") {
        Some(inner) => (true, inner.to_owned()),
        None => (false, lower.clone()),
    };
    let mut format = format_from_name(&inner);
    if format.is_none() && !gzip {
        let head = head_of(path).unwrap_or_default();
        if head.starts_with(GZIP_MAGIC) {
            return Some(InputFile {
                path: Some(path.to_owned()),
                name: name.into(),
                size,
                gzip: true,
                format: None,
                year: None,
                zone: None,
                host: None,
                pg_prefixes: Default::default(),
                root: None,
            });
        }
        format = sniff(&head);
        if format.is_none() && !explicit {
            return None;
        }
    }
    if gzip && format.is_none() {
        // Rotated logs (`conn.log.gz`, `postgresql.log.1.gz`): sniff the decompressed start.
        format = gz_head_of(path).and_then(|h| sniff(&h));
        if format.is_none() && !explicit {
            return None;
        }
    }
    Some(InputFile {
        path: Some(path.to_owned()),
        name: name.into(),
        size,
        gzip,
        format,
        year: None,
        zone: None,
        host: None,
        pg_prefixes: Default::default(),
        root: None,
    })
}

/// Expands the given paths into input files: files as given, folders recursively (sorted,
/// keeping only files of a known format by name or content), `-` for standard input.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<InputFile>, DiscoverError> {
    let mut out = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            out.push(InputFile {
                path: None,
                name: "-".into(),
                size: 0,
                gzip: false,
                format: None,
                year: None,
                zone: None,
                host: None,
                pg_prefixes: Default::default(),
                root: None,
            });
            continue;
        }
        let meta = std::fs::metadata(p).map_err(|e| DiscoverError {
            path: p.display().to_string(),
            message: e.to_string(),
        })?;
        if meta.is_dir() {
            let from = out.len();
            walk(p, &mut out).map_err(|e| DiscoverError {
                path: p.display().to_string(),
                message: e.to_string(),
            })?;
            for f in &mut out[from..] {
                f.root = Some(p.clone());
            }
        } else if let Some(f) = input_for(p, true) {
            out.push(f);
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<InputFile>) -> io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let Ok(ft) = e.file_type() else { continue };
        let path = e.path();
        if ft.is_dir() {
            // Unreadable sub-folders are skipped, not fatal.
            let _ = walk(&path, out);
        } else if (ft.is_file() || ft.is_symlink())
            && path.is_file()
            && let Some(f) = input_for(&path, false)
        {
            out.push(f);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing_flow_formats() {
        assert_eq!(
            sniff(b"#separator \\x09\n#set_separator\t,\n"),
            Some(Format::ZeekTsv)
        );
        assert_eq!(
            sniff(b"ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,opkt,obyt\n"),
            Some(Format::NfdumpCsv)
        );
    }

    #[test]
    fn sniffing_database_audit_formats() {
        let csvlog = b"2026-03-04 03:15:00.120 UTC,\"etl\",\"cdrdb\",4242,\"10.2.3.4:5123\",x,3,\"SELECT\",,,,LOG,00000,\"AUDIT: SESSION,1,1,READ,SELECT,,,x,<none>\"\n";
        assert_eq!(sniff(csvlog), Some(Format::PgCsv));
        let stderr = b"2026-03-04 03:15:00 UTC [1]: user=etl,db=cdrdb LOG:  AUDIT: SESSION,1,1,READ,SELECT,,,x,<none>\n";
        assert_eq!(sniff(stderr), Some(Format::PgLog));
        assert_eq!(
            sniff(b"20261124 08:33:03,db1,care07,10.0.0.5,12,345,QUERY,crm,'SELECT 1',0\n"),
            Some(Format::MariaDbAudit)
        );
        assert_eq!(
            sniff(b"\"EVENT_TIMESTAMP\",\"DBUSERNAME\",\"ACTION_NAME\"\n"),
            Some(Format::OracleCsv)
        );
        assert_eq!(
            sniff(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<AUDIT>\n<AUDIT_RECORD\n"),
            Some(Format::MySqlAuditXml)
        );
        assert_eq!(
            sniff(b"\"Query\",\"3_2026-03-04T09:00:00\",\"2026-03-04T10:00:01 UTC\",\"select\",\"7\",0,\"SELECT 1\",\"app\",\"\",\"\",\"\",\"\"\n"),
            Some(Format::PerconaAuditCsv)
        );
    }

    #[test]
    fn sniffing_pgaudit() {
        assert_eq!(
            sniff(b"2026-03-04 03:12:09 UTC [1] LOG:  connection received\n2026-03-04 03:12:10 UTC [1] u@d LOG:  AUDIT: SESSION,1,1,READ,SELECT,,,x,<none>\n"),
            Some(Format::PgLog)
        );
    }

    #[test]
    fn sniffing() {
        assert_eq!(sniff(b"ElfFile\0rest"), Some(Format::Evtx));
        assert_eq!(sniff(b"  \n{\"a\":1}"), Some(Format::Json));
        assert_eq!(sniff(b"\xEF\xBB\xBF[{}]"), Some(Format::Json));
        assert_eq!(sniff(b"hello"), None);
        assert_eq!(
            sniff(b"type=SYSCALL msg=audit(1.2:3): arch=c000003e"),
            Some(Format::Auditd)
        );
        assert_eq!(
            sniff(b"node=pgw-07 type=SYSCALL msg=audit(1.2:3): arch=c000003e"),
            Some(Format::Auditd)
        );
        assert_eq!(
            sniff(b"Mar  4 03:12:09 h sshd[1]: Accepted"),
            Some(Format::Syslog)
        );
    }

    #[test]
    fn folders_are_walked_and_filtered() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b.jsonl"), "{}\n").unwrap();
        std::fs::write(dir.path().join("a.txt"), "not a log").unwrap();
        std::fs::write(dir.path().join("c.log"), "{\"x\":1}\n").unwrap();
        std::fs::write(dir.path().join("d.evtx.gz"), "x").unwrap();
        let found = discover(&[dir.path().to_owned()]).unwrap();
        let names: Vec<String> = found
            .iter()
            .map(|f| {
                Path::new(&*f.name)
                    .strip_prefix(dir.path())
                    .unwrap()
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(names, vec!["c.log", "d.evtx.gz", "sub/b.jsonl"]);
        assert!(found[1].gzip);
        assert_eq!(found[1].format, Some(Format::Evtx));
    }

    #[test]
    fn missing_path_is_an_error() {
        assert!(discover(&[PathBuf::from("/definitely/not/here")]).is_err());
    }
}
