//! The asset file (`--assets FILE`, TOML; format in `docs/assets.md`): which networks are
//! internal, which hosts play which role, and which transfers are known and allowed.
//!
//! ```toml
//! internal = ["10.0.0.0/8", "192.168.0.0/16"]   # default: RFC 1918, ULA, loopback, link-local
//!
//! [[host]]
//! address = "10.2.0.5"        # an address or a network
//! name = "billing-db-1"
//! role = "billing-db"         # billing-db, cdr-mediation, ggsn, pgw, sgw, sgsn, dns, backup, jump, web, …
//!
//! [[allow]]
//! src = "10.2.0.5"
//! dst = "198.51.100.0/24"
//! ports = [443]               # optional
//! reason = "offsite backup"
//!
//! [[account]]                 # one person or service under several names (campaigns join them)
//! name = "CORP\\paul"
//! aliases = ["billing_ro"]
//! ```

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    internal: Option<Vec<String>>,
    #[serde(default)]
    host: Vec<HostEntry>,
    #[serde(default)]
    allow: Vec<AllowEntry>,
    #[serde(default)]
    account: Vec<AccountEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountEntry {
    name: String,
    aliases: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostEntry {
    address: String,
    name: Option<String>,
    role: String,
    #[serde(default)]
    aliases: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowEntry {
    src: String,
    dst: String,
    #[serde(default)]
    ports: Vec<u16>,
    reason: Option<String>,
}

/// A host or network with a role.
#[derive(Debug, Clone)]
pub struct Host {
    /// Its address or network.
    pub net: IpNet,
    /// Its name, when given (alerts name the host by it).
    pub name: Option<String>,
    /// Lowercase.
    pub role: String,
    /// Other names of the host (FQDN, NetBIOS name).
    pub aliases: Vec<String>,
}

/// A known, allowed transfer.
#[derive(Debug, Clone)]
pub struct Allow {
    /// Source hosts.
    pub src: IpNet,
    /// Destinations.
    pub dst: IpNet,
    /// Destination ports (empty: any).
    pub ports: Vec<u16>,
    /// Why it is allowed, for people.
    pub reason: String,
}

/// Roles of the elements that carry GTP (GSNs and gateways).
pub const GTP_ROLES: &[&str] = &["ggsn", "pgw", "sgw", "sgsn", "gsn", "upf", "smf", "epdg"];
/// Roles of servers that should never open tunnels outwards on their own.
pub const SERVER_ROLES: &[&str] = &[
    "billing-db",
    "cdr-mediation",
    "db",
    "ggsn",
    "pgw",
    "sgw",
    "sgsn",
    "hlr",
    "hss",
    "dns",
    "mediation",
    "billing",
];

/// The asset map.
#[derive(Debug, Clone)]
pub struct Assets {
    internal: Vec<IpNet>,
    hosts: Vec<Host>,
    /// Transfers that never alert.
    pub allow: Vec<Allow>,
    /// Accounts known under other names: (account, its aliases), e.g. the database account a
    /// directory account uses.
    pub accounts: Vec<(String, Vec<String>)>,
    /// Whether an asset file was given (roles are known).
    pub configured: bool,
}

fn default_internal() -> Vec<IpNet> {
    [
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "fc00::/7",
        "fe80::/10",
        "::1/128",
    ]
    .iter()
    .filter_map(|n| n.parse().ok())
    .collect()
}

fn net_of(s: &str) -> Result<IpNet, crate::ConfigError> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| crate::ConfigError::Network(s.to_owned()))
}

impl Default for Assets {
    fn default() -> Self {
        Assets {
            internal: default_internal(),
            hosts: Vec::new(),
            allow: Vec::new(),
            accounts: Vec::new(),
            configured: false,
        }
    }
}

impl Assets {
    /// Reads an asset file (TOML: `internal`, `[[host]]`, `[[allow]]`; see docs/assets.md).
    pub fn from_toml(text: &str) -> Result<Assets, crate::ConfigError> {
        let f: File = toml::from_str(text)?;
        let internal = match f.internal {
            Some(list) => list
                .iter()
                .map(|n| net_of(n))
                .collect::<Result<Vec<_>, _>>()?,
            None => default_internal(),
        };
        let mut hosts = Vec::new();
        for h in f.host {
            hosts.push(Host {
                net: net_of(&h.address)?,
                name: h.name,
                role: h.role.to_ascii_lowercase(),
                aliases: h.aliases,
            });
        }
        // Most specific first.
        hosts.sort_by_key(|h| std::cmp::Reverse(h.net.prefix_len()));
        let mut allow = Vec::new();
        for a in f.allow {
            allow.push(Allow {
                src: net_of(&a.src)?,
                dst: net_of(&a.dst)?,
                ports: a.ports,
                reason: a
                    .reason
                    .unwrap_or_else(|| "listed in the asset file".into()),
            });
        }
        Ok(Assets {
            internal,
            hosts,
            allow,
            accounts: f.account.into_iter().map(|a| (a.name, a.aliases)).collect(),
            configured: true,
        })
    }

    /// The internal networks.
    pub fn internal_networks(&self) -> &[IpNet] {
        &self.internal
    }

    /// The hosts and networks with a role.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// In one of the internal networks.
    pub fn is_internal(&self, ip: IpAddr) -> bool {
        self.internal.iter().any(|n| n.contains(&ip))
    }

    /// The most specific host entry containing the address.
    pub fn host(&self, ip: IpAddr) -> Option<&Host> {
        self.hosts.iter().find(|h| h.net.contains(&ip))
    }

    /// The name an alert gives the host at `ip`: its asset name when the asset file names
    /// that single address, else the address.
    pub fn host_name(&self, ip: IpAddr) -> String {
        match self.host(ip) {
            Some(Host {
                name: Some(name),
                net,
                ..
            }) if net.prefix_len() == net.max_prefix_len() => name.clone(),
            _ => ip.to_string(),
        }
    }

    /// The role of the host, if the asset file names one.
    pub fn role(&self, ip: IpAddr) -> Option<&str> {
        self.host(ip).map(|h| h.role.as_str())
    }

    /// The host has one of the roles.
    pub fn has_role(&self, ip: IpAddr, roles: &[&str]) -> bool {
        self.role(ip).is_some_and(|r| roles.contains(&r))
    }

    /// The allow entry covering a transfer, if any.
    pub fn allowed(&self, src: IpAddr, dst: IpAddr, port: Option<u16>) -> Option<&Allow> {
        self.allow.iter().find(|a| {
            a.src.contains(&src)
                && a.dst.contains(&dst)
                && (a.ports.is_empty() || port.is_some_and(|p| a.ports.contains(&p)))
        })
    }

    /// `10.2.0.5 (billing-db-1, billing-db)` for explanations.
    pub fn describe(&self, ip: IpAddr) -> String {
        match self.host(ip) {
            Some(h) => match &h.name {
                Some(n) => format!("{ip} ({n}, {})", h.role),
                None => format!("{ip} ({})", h.role),
            },
            None => ip.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_file() {
        let d = Assets::default();
        assert!(d.is_internal("10.1.2.3".parse().unwrap()));
        assert!(d.is_internal("fd12::1".parse().unwrap()));
        assert!(!d.is_internal("8.8.8.8".parse().unwrap()));
        let a = Assets::from_toml(
            r#"
internal = ["10.0.0.0/8"]
[[host]]
address = "10.2.0.0/24"
role = "Billing-DB"
[[host]]
address = "10.2.0.9"
name = "bk1"
role = "backup"
aliases = ["BK1.corp.example"]
[[account]]
name = "CORP\\paul"
aliases = ["billing_ro"]
[[allow]]
src = "10.2.0.9"
dst = "198.51.100.0/24"
ports = [443]
reason = "offsite backup"
"#,
        )
        .unwrap();
        assert!(!a.is_internal("192.168.1.1".parse().unwrap()));
        assert_eq!(a.role("10.2.0.9".parse().unwrap()), Some("backup"));
        assert_eq!(a.role("10.2.0.7".parse().unwrap()), Some("billing-db"));
        assert_eq!(
            a.describe("10.2.0.9".parse().unwrap()),
            "10.2.0.9 (bk1, backup)"
        );
        let ok = a.allowed(
            "10.2.0.9".parse().unwrap(),
            "198.51.100.7".parse().unwrap(),
            Some(443),
        );
        assert_eq!(ok.unwrap().reason, "offsite backup");
        assert!(
            a.allowed(
                "10.2.0.9".parse().unwrap(),
                "198.51.100.7".parse().unwrap(),
                Some(22)
            )
            .is_none()
        );
        assert_eq!(
            a.host("10.2.0.9".parse().unwrap()).unwrap().aliases,
            ["BK1.corp.example"]
        );
        assert_eq!(
            a.accounts,
            [("CORP\\paul".to_owned(), vec!["billing_ro".to_owned()])]
        );
        assert!(Assets::from_toml("[[host]]\naddress = \"nope\"\nrole = \"x\"").is_err());
    }
}
