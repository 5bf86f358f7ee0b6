//! Telecom knowledge for finding who read whose records: subscriber identifiers (MSISDN,
//! IMSI, IMEI, ICCID) and the persons they belong to, SQL statement analysis (fingerprints,
//! tables, the subscribers predicates select), the schema map saying which tables hold which
//! records, and the database-access analytics (per-account baselines, detections, subscriber
//! exposure).

pub mod access;
pub mod detect;
pub mod exposure;
pub mod ids;
pub mod persons;
pub mod repeats;
pub mod schema;
pub mod share;
pub mod sql;

pub use ids::*;

/// A configuration file (`--schema`, the `[db]` table of `--config`) that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(#[from] pub toml::de::Error);
