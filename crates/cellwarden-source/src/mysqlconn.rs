//! The accounts of MySQL audit log connections, for the records that name only their
//! connection.
//!
//! The audit log filter's `query` class (MySQL 8.0.30+, Percona's component) writes a
//! statement as it starts and ends, in JSON as `{"class":"query","event":"query_start",
//! "connection_id":11,"query_data":{"query":…}}`: no account, no host. The connection's
//! `connection` records (`connect`, `change_user`) name them, with the same connection id.
//! A reader keeps them per input, in input order, and gives a `query` record the `account`
//! and `login` of its connection, as the server's other records carry them; `disconnect`
//! forgets the connection. At most [`MAX_CONNECTIONS`] are kept, the oldest forgotten first.

use std::collections::{HashMap, VecDeque};
use std::sync::LazyLock;

use memchr::memmem::Finder;

/// Connections kept per input.
pub const MAX_CONNECTIONS: usize = 65_536;

/// Open connections of one input: connection id → the members to give its records
/// (`"account":{…},"login":{…},`).
#[derive(Debug, Default)]
pub struct Connections {
    open: HashMap<String, Box<str>>,
    order: VecDeque<String>,
    /// Whether the input's records are looked at, told by its first record: every MySQL
    /// audit record names its `class`; other JSON logs (flows, Windows events) are passed over
    /// at no cost after it.
    audit: Option<bool>,
}

/// Names searched for in the JSON records of an input: one searcher each for all.
static CLASS: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"class\""));
static CONNECTION_ID: LazyLock<Finder<'static>> =
    LazyLock::new(|| Finder::new(b"\"connection_id\""));
static CONNECTION_DATA: LazyLock<Finder<'static>> =
    LazyLock::new(|| Finder::new(b"\"connection_data\""));
static QUERY_DATA: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"query_data\""));
static ACCOUNT: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"account\""));

/// A connection id as written (a number, or text in some builds).
fn id_of(v: &serde_json::Value) -> Option<String> {
    match v.get("connection_id")? {
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

impl Connections {
    /// Takes one JSON record of the input, in order; the record to hand on instead when it
    /// is a `query` record of a known connection without an account.
    pub fn observe(&mut self, record: &[u8]) -> Option<Vec<u8>> {
        let audit = *self
            .audit
            .get_or_insert_with(|| CLASS.find(record).is_some());
        if !audit {
            return None;
        }
        // Most records (MySQL's statement records) end here.
        CONNECTION_ID.find(record)?;
        if CONNECTION_DATA.find(record).is_some() {
            self.connection(record);
            return None;
        }
        if QUERY_DATA.find(record).is_none() || ACCOUNT.find(record).is_some() {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(record).ok()?;
        if v.get("class")?.as_str()? != "query" {
            return None;
        }
        let members = self.open.get(&id_of(&v)?)?;
        let open = record.iter().position(|b| *b == b'{')?;
        let mut out = Vec::with_capacity(record.len() + members.len());
        out.extend_from_slice(&record[..=open]);
        out.extend_from_slice(members.as_bytes());
        out.extend_from_slice(&record[open + 1..]);
        Some(out)
    }

    /// A `connection` record: a connection opened or changed user, or closed.
    fn connection(&mut self, record: &[u8]) {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(record) else {
            return;
        };
        if v.get("class").and_then(|c| c.as_str()) != Some("connection") {
            return;
        }
        let Some(id) = id_of(&v) else { return };
        match v.get("event").and_then(|e| e.as_str()) {
            Some("disconnect") => {
                self.open.remove(&id);
            }
            Some(_) => {
                let mut members = String::new();
                for name in ["account", "login"] {
                    if let Some(m) = v.get(name).filter(|m| m.is_object()) {
                        members.push_str(&format!("\"{name}\":{m},"));
                    }
                }
                if members.is_empty() {
                    return;
                }
                if self.open.insert(id.clone(), members.into()).is_none() {
                    self.order.push_back(id);
                }
                while self.open.len() > MAX_CONNECTIONS {
                    match self.order.pop_front() {
                        Some(old) => {
                            self.open.remove(&old);
                        }
                        None => break,
                    }
                }
                // Ids of closed connections leave the order lazily.
                if self.order.len() > 2 * MAX_CONNECTIONS {
                    let open = &self.open;
                    self.order.retain(|id| open.contains_key(id));
                }
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONNECT: &str = r#"{"timestamp":"2026-03-29 11:17:04","id":0,"class":"connection","event":"connect","connection_id":11,"account":{"user":"app","host":"crm01"},"login":{"user":"app","os":"","ip":"10.2.3.4","proxy":""},"connection_data":{"connection_type":"tcp/ip","status":0,"db":"cdrdb"}}"#;
    const QUERY: &str = r#"{"timestamp":"2026-03-29 11:17:05","id":3,"class":"query","event":"query_start","connection_id":11,"query_data":{"query":"SELECT 1","status":0,"sql_command":"select"}}"#;

    #[test]
    fn query_records_get_their_connections_account() {
        let mut c = Connections::default();
        assert_eq!(
            c.observe(QUERY.as_bytes()),
            None,
            "connection not known yet"
        );
        assert_eq!(c.observe(CONNECT.as_bytes()), None);
        let out = c.observe(QUERY.as_bytes()).expect("annotated");
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["account"]["user"], "app");
        assert_eq!(v["login"]["ip"], "10.2.3.4");
        assert_eq!(v["query_data"]["query"], "SELECT 1");
        // Another connection, and records naming their account already, are left alone.
        assert_eq!(c.observe(QUERY.replace(":11,", ":12,").as_bytes()), None);
        let general = r#"{"class":"general","connection_id":11,"account":{"user":"x"},"general_data":{"query":"SELECT 1"}}"#;
        assert_eq!(c.observe(general.as_bytes()), None);
        let gone = CONNECT.replace("\"connect\"", "\"disconnect\"");
        c.observe(gone.as_bytes());
        assert_eq!(c.observe(QUERY.as_bytes()), None, "the connection ended");
    }

    #[test]
    fn other_json_logs_are_passed_over() {
        let mut c = Connections::default();
        assert_eq!(
            c.observe(br#"{"ts":1.5,"uid":"C1","connection_id":3}"#),
            None
        );
        c.observe(CONNECT.as_bytes());
        assert_eq!(c.observe(QUERY.as_bytes()), None, "not a MySQL audit log");
    }

    #[test]
    fn connections_are_bounded() {
        let mut c = Connections::default();
        for i in 0..MAX_CONNECTIONS + 10 {
            c.observe(CONNECT.replace(":11,", &format!(":{i},")).as_bytes());
        }
        assert_eq!(c.open.len(), MAX_CONNECTIONS);
        assert!(c.observe(QUERY.replace(":11,", ":3,").as_bytes()).is_none());
        let last = MAX_CONNECTIONS + 9;
        assert!(
            c.observe(QUERY.replace(":11,", &format!(":{last},")).as_bytes())
                .is_some()
        );
    }
}
