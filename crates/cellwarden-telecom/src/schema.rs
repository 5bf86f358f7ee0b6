//! The schema map: which tables hold which subscriber records, and which of their columns
//! are subscriber identifiers. Given as TOML (`--schema FILE`, format in `docs/schema.md`);
//! whatever it does not name is inferred from table and column names, and the inference
//! is shown (as TOML) so it can be corrected.
//!
//! ```toml
//! country_code = "33"          # national MSISDNs (leading 0) get this calling code
//!
//! [[table]]
//! name = "billing.cdr"         # matched whole, or by its last part ("cdr")
//! record_type = "cdr"          # cdr | sms | data_session | location | device | profile
//! large = true                 # full reads are bulk reads (default: true for cdr, sms,
//!                              # data_session, location)
//! identifiers = { calling_number = "msisdn", called_number = "msisdn", imsi = "imsi" }
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use serde::Deserialize;

use crate::ids::{IdKind, Numbering, SubscriberId, classify, normalise};

/// Kinds of subscriber records.
#[derive(
    serde::Serialize, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum RecordType {
    /// Call-detail records.
    Cdr,
    /// SMS records.
    Sms,
    /// Data sessions (xDRs).
    DataSession,
    /// Location: cells, positions, location updates.
    Location,
    /// Device: IMEI, handset.
    Device,
    /// Subscriber profile: name, address, contract.
    Profile,
}

impl RecordType {
    /// Every record type.
    pub const ALL: [RecordType; 6] = [
        RecordType::Cdr,
        RecordType::Sms,
        RecordType::DataSession,
        RecordType::Location,
        RecordType::Device,
        RecordType::Profile,
    ];

    /// Name as reports and the schema file write it (`cdr`, `data_session`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::Cdr => "cdr",
            RecordType::Sms => "sms",
            RecordType::DataSession => "data_session",
            RecordType::Location => "location",
            RecordType::Device => "device",
            RecordType::Profile => "profile",
        }
    }

    /// The type's bit in a set of record types.
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// The record types of a bit set.
    pub fn of_bits(bits: u8) -> impl Iterator<Item = RecordType> {
        RecordType::ALL
            .into_iter()
            .filter(move |t| bits & t.bit() != 0)
    }

    /// Record tables that grow with traffic: reading them whole is a bulk read.
    pub fn large_by_default(self) -> bool {
        matches!(
            self,
            RecordType::Cdr | RecordType::Sms | RecordType::DataSession | RecordType::Location
        )
    }
}

/// What a column holds.
#[derive(serde::Serialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    /// MSISDN (phone number).
    Msisdn,
    /// IMSI.
    Imsi,
    /// IMEI.
    Imei,
    /// ICCID.
    Iccid,
    /// A subscriber key whose values are recognised by shape (E.164 with `+`/`00`, 15
    /// digits: IMSI, or IMEI when the Luhn check passes).
    Any,
}

impl ColumnKind {
    fn as_str(self) -> &'static str {
        match self {
            ColumnKind::Msisdn => "msisdn",
            ColumnKind::Imsi => "imsi",
            ColumnKind::Imei => "imei",
            ColumnKind::Iccid => "iccid",
            ColumnKind::Any => "any",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaFile {
    country_code: Option<String>,
    #[serde(default)]
    table: Vec<TableEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableEntry {
    name: String,
    record_type: Option<RecordType>,
    large: Option<bool>,
    #[serde(default)]
    identifiers: BTreeMap<String, ColumnKind>,
}

/// What is known of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableInfo {
    /// Kind of records it holds, if known.
    pub record_type: Option<RecordType>,
    /// Large (read whole only in bulk jobs).
    pub large: bool,
    /// From the schema file (`false`: inferred from the name).
    pub configured: bool,
}

/// How an identifier was recognised (for showing the inference).
#[derive(
    serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord,
)]
pub enum Basis {
    /// Named in the schema file.
    Schema,
    /// Inferred from the column's name.
    ColumnName,
    /// Inferred from the shape of its values.
    ValueShape,
}

/// The schema map with name-based inference for what it does not name.
#[derive(Debug, Default)]
pub struct Schema {
    /// How national numbers become international ones.
    pub numbering: Numbering,
    tables: HashMap<String, TableEntry>,
}

impl Schema {
    /// Reads a schema map; errors name the problem (TOML position included).
    pub fn from_toml(text: &str) -> Result<Schema, crate::ConfigError> {
        let f: SchemaFile = toml::from_str(text)?;
        let mut tables = HashMap::new();
        for t in f.table {
            tables.insert(t.name.to_ascii_lowercase(), t);
        }
        Ok(Schema {
            numbering: Numbering {
                country_code: f.country_code,
            },
            tables,
        })
    }

    fn entry(&self, table: &str) -> Option<&TableEntry> {
        let t = table.to_ascii_lowercase();
        self.tables
            .get(&t)
            .or_else(|| self.tables.get(t.rsplit('.').next().unwrap_or(&t)))
            .or_else(|| {
                // A configured "schema.table" matches a statement naming just "table".
                self.tables
                    .iter()
                    .filter(|(k, _)| k.rsplit('.').next() == Some(t.as_str()))
                    .min_by(|a, b| a.0.cmp(b.0))
                    .map(|(_, e)| e)
            })
    }

    /// The table's record type and size class.
    pub fn table(&self, table: &str) -> TableInfo {
        if let Some(e) = self.entry(table) {
            let rt = e.record_type.or_else(|| infer_record_type(&e.name));
            return TableInfo {
                record_type: rt,
                large: e
                    .large
                    .unwrap_or(rt.is_some_and(RecordType::large_by_default)),
                configured: true,
            };
        }
        let rt = infer_record_type(table);
        TableInfo {
            record_type: rt,
            large: rt.is_some_and(RecordType::large_by_default),
            configured: false,
        }
    }

    /// What the column holds, for a column of `table` (or of any of `candidates` when the
    /// statement does not say which table it belongs to).
    pub fn column(
        &self,
        table: Option<&str>,
        candidates: &[std::sync::Arc<str>],
        column: &str,
    ) -> Option<(ColumnKind, Basis)> {
        let col = column.to_ascii_lowercase();
        let configured: Vec<&TableEntry> = match table {
            Some(t) => self.entry(t).into_iter().collect(),
            None => candidates.iter().filter_map(|t| self.entry(t)).collect(),
        };
        for e in &configured {
            if let Some(k) = e
                .identifiers
                .iter()
                .find(|(c, _)| c.eq_ignore_ascii_case(&col))
                .map(|(_, k)| *k)
            {
                return Some((k, Basis::Schema));
            }
        }
        // A configured table with identifiers listed: its other columns are not identifiers.
        if table.is_some() && configured.iter().any(|e| !e.identifiers.is_empty()) {
            return None;
        }
        infer_column(&col).map(|k| (k, Basis::ColumnName))
    }

    /// The subscriber a compared value identifies, if any.
    pub fn identify(&self, kind: Option<ColumnKind>, value: &str) -> Option<SubscriberId> {
        match kind {
            Some(ColumnKind::Msisdn) => normalise(IdKind::Msisdn, value, &self.numbering),
            Some(ColumnKind::Imsi) => normalise(IdKind::Imsi, value, &self.numbering),
            Some(ColumnKind::Imei) => normalise(IdKind::Imei, value, &self.numbering),
            Some(ColumnKind::Iccid) => normalise(IdKind::Iccid, value, &self.numbering),
            Some(ColumnKind::Any) | None => classify(value, &self.numbering),
        }
    }
}

/// A record type from a table name.
pub fn infer_record_type(table: &str) -> Option<RecordType> {
    let t = table.to_ascii_lowercase();
    let t = t.rsplit('.').next().unwrap_or(&t);
    let has = |ws: &[&str]| ws.iter().any(|w| t.contains(w));
    if has(&[
        "data_session",
        "gprs",
        "pdp",
        "ipdr",
        "data_usage",
        "datasession",
        "pdn",
        "edr",
    ]) {
        Some(RecordType::DataSession)
    } else if has(&["sms", "mms", "message"]) {
        Some(RecordType::Sms)
    } else if has(&["cdr", "call", "voice", "xdr"]) {
        Some(RecordType::Cdr)
    } else if has(&["location", "loc_", "_loc", "cell", "geo", "position", "vlr"]) {
        Some(RecordType::Location)
    } else if has(&["device", "imei", "handset", "equipment", "terminal", "eir"]) {
        Some(RecordType::Device)
    } else if has(&[
        "subscriber",
        "customer",
        "profile",
        "contract",
        "msisdn",
        "sim",
        "hlr",
        "hss",
        "party",
        "account",
    ]) {
        Some(RecordType::Profile)
    } else {
        None
    }
}

/// An identifier kind from a column name.
pub fn infer_column(column: &str) -> Option<ColumnKind> {
    match IdKind::from_column(column) {
        Some(IdKind::Msisdn) => Some(ColumnKind::Msisdn),
        Some(IdKind::Imsi) => Some(ColumnKind::Imsi),
        Some(IdKind::Imei) => Some(ColumnKind::Imei),
        Some(IdKind::Iccid) => Some(ColumnKind::Iccid),
        None => {
            let c = column.to_ascii_lowercase();
            [
                "subscriber",
                "sub_id",
                "subs_id",
                "party",
                "mobile",
                "number",
                "customer_id",
            ]
            .iter()
            .any(|w| c.contains(w))
            .then_some(ColumnKind::Any)
        }
    }
}

/// What was observed of tables and identifier columns during a run, to show the inference.
#[derive(serde::Serialize, serde::Deserialize, Debug, Default, Clone)]
pub struct Observed {
    /// table → number of statements reading it.
    pub tables: BTreeMap<String, u64>,
    /// (table, column) → (kind, basis).
    pub columns: BTreeMap<(String, String), (ColumnKind, Basis)>,
}

impl Observed {
    /// Adds another collector's observations.
    pub fn merge(&mut self, other: Observed) {
        for (t, n) in other.tables {
            *self.tables.entry(t).or_default() += n;
        }
        for (k, v) in other.columns {
            self.columns.entry(k).or_insert(v);
        }
    }

    /// The schema in use as a TOML schema map: configured entries and inferred ones (marked),
    /// for the tables seen. Ready to be corrected and passed back with `--schema`.
    pub fn to_toml(&self, schema: &Schema) -> String {
        let mut out = String::new();
        if let Some(cc) = &schema.numbering.country_code {
            let _ = writeln!(out, "country_code = \"{cc}\"");
        } else {
            let _ = writeln!(
                out,
                "# country_code = \"..\"   # not set: national numbers keep their digits"
            );
        }
        let mut cols: BTreeMap<&str, BTreeSet<(&str, ColumnKind, Basis)>> = BTreeMap::new();
        for ((t, c), (k, b)) in &self.columns {
            cols.entry(t.as_str())
                .or_default()
                .insert((c.as_str(), *k, *b));
        }
        for (t, n) in &self.tables {
            let info = schema.table(t);
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "[[table]]   # {n} statement(s){}",
                if info.configured {
                    ""
                } else {
                    "; inferred from names"
                }
            );
            let _ = writeln!(out, "name = {}", toml_str(t));
            match info.record_type {
                Some(rt) => {
                    let _ = writeln!(out, "record_type = \"{}\"", rt.as_str());
                }
                None => {
                    let _ = writeln!(
                        out,
                        "# record_type = \"..\"   # not a subscriber record table by its name"
                    );
                }
            }
            let _ = writeln!(out, "large = {}", info.large);
            let list: Vec<String> = cols
                .get(t.as_str())
                .into_iter()
                .flatten()
                .map(|(c, k, _)| format!("{} = \"{}\"", toml_key(c), k.as_str()))
                .collect();
            let _ = writeln!(out, "identifiers = {{ {} }}", list.join(", "));
            for (c, _, b) in cols.get(t.as_str()).into_iter().flatten() {
                if *b != Basis::Schema {
                    let why = match b {
                        Basis::ColumnName => "its name",
                        _ => "the shape of its values",
                    };
                    let _ = writeln!(out, "# {c}: recognised by {why}");
                }
            }
        }
        out
    }
}

fn toml_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(o, "\\u{:04X}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn toml_key(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        s.to_owned()
    } else {
        toml_str(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inference_from_names() {
        assert_eq!(
            infer_record_type("billing.cdr_2026_03"),
            Some(RecordType::Cdr)
        );
        assert_eq!(infer_record_type("SMS_LOG"), Some(RecordType::Sms));
        assert_eq!(
            infer_record_type("gprs_sessions"),
            Some(RecordType::DataSession)
        );
        assert_eq!(
            infer_record_type("cell_history"),
            Some(RecordType::Location)
        );
        assert_eq!(
            infer_record_type("device_registry"),
            Some(RecordType::Device)
        );
        assert_eq!(
            infer_record_type("crm.subscriber"),
            Some(RecordType::Profile)
        );
        assert_eq!(infer_record_type("pg_stat_activity"), None);
        assert_eq!(infer_column("a_party"), Some(ColumnKind::Msisdn));
        assert_eq!(infer_column("subscriber_id"), Some(ColumnKind::Any));
        assert_eq!(infer_column("IMSI"), Some(ColumnKind::Imsi));
        assert_eq!(infer_column("amount"), None);
    }

    #[test]
    fn schema_file_overrides_inference() {
        let s = Schema::from_toml(
            r#"
country_code = "44"
[[table]]
name = "ops.t_records"
record_type = "location"
identifiers = { k1 = "msisdn", dev = "imei" }
[[table]]
name = "cdr"
large = false
"#,
        )
        .unwrap();
        let t = s.table("t_records");
        assert_eq!(t.record_type, Some(RecordType::Location));
        assert!(t.large && t.configured);
        assert!(!s.table("CDR").large);
        assert_eq!(
            s.column(Some("ops.t_records"), &[], "K1"),
            Some((ColumnKind::Msisdn, Basis::Schema))
        );
        // Listed identifiers are the only ones of a configured table.
        assert_eq!(s.column(Some("ops.t_records"), &[], "msisdn"), None);
        let id = s.identify(Some(ColumnKind::Msisdn), "07700900123").unwrap();
        assert_eq!(id.value, "447700900123");
        assert!(Schema::from_toml("[[table]]\nnam = 1").is_err());
    }

    #[test]
    fn inference_is_shown_as_toml() {
        let s = Schema::default();
        let mut o = Observed::default();
        o.tables.insert("cdr".into(), 3);
        o.columns.insert(
            ("cdr".into(), "calling_number".into()),
            (ColumnKind::Msisdn, Basis::ColumnName),
        );
        let t = o.to_toml(&s);
        assert!(t.contains("name = \"cdr\""));
        assert!(t.contains("record_type = \"cdr\""));
        assert!(t.contains("identifiers = { calling_number = \"msisdn\" }"));
        // What is printed reads back as a schema map.
        let back = Schema::from_toml(&t).unwrap();
        assert_eq!(back.table("cdr").record_type, Some(RecordType::Cdr));
    }
}
