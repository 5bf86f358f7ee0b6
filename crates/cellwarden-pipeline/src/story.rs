//! The story of a run: alerts joined into incidents and campaigns over resolved entities, each
//! campaign with the subscriber data its accounts read (from the scope report).

use std::collections::BTreeSet;

use cellwarden_event::Alert;
use cellwarden_incident::campaign::DataTouched;
use cellwarden_incident::{Aliases, Campaign, CampaignConfig, Incident, KnownHost, Resolver};
use cellwarden_telecom::exposure::Exposure;

use crate::core::NetSetup;

/// One name per host and account: the asset file's hosts, networks and account aliases, then
/// what the logs said (logon records, DNS answers, SIDs).
pub fn resolver(net: &NetSetup, aliases: &Aliases) -> Resolver {
    let assets = &net.assets;
    let hosts: Vec<KnownHost> = assets
        .hosts()
        .iter()
        .filter_map(|h| {
            let single = h.net.prefix_len() == h.net.max_prefix_len();
            Some(KnownHost {
                name: h.name.clone()?,
                addresses: if single {
                    vec![h.net.addr()]
                } else {
                    Vec::new()
                },
                role: Some(h.role.clone()),
                aliases: h.aliases.clone(),
            })
        })
        .collect();
    let internal: Vec<(std::net::IpAddr, u8)> = assets
        .internal_networks()
        .iter()
        .map(|n| (n.network(), n.prefix_len()))
        .collect();
    let mut r = Resolver::new(&hosts, &internal);
    for (account, aliases) in &assets.accounts {
        for a in aliases {
            r.account_alias(a, account);
        }
    }
    r.learn(aliases);
    r
}

/// The context each alert of a run gains (the logon it followed; a lower level for remote
/// administration from an admins' workstation), by alert key, for [`crate::AlertSet::set_context`].
pub fn contexts(
    alerts: &crate::AlertSet,
    resolver: &Resolver,
) -> std::io::Result<std::collections::HashMap<String, cellwarden_incident::entity::Context>> {
    let mut out = std::collections::HashMap::new();
    cellwarden_event::AlertSource::try_each(alerts, &mut |a| {
        if let Some(c) = cellwarden_incident::entity::alert_context(a, resolver) {
            out.insert(a.key(), c);
        }
        Ok(())
    })?;
    Ok(out)
}

/// Incidents (`gap_secs` apart at most) and campaigns, with each campaign's subscriber data
/// from `exposure`: the people read by its accounts from its hosts (or from an unnamed host).
/// The alerts carry their logon context already ([`contexts`],
/// [`cellwarden_incident::entity::add_logon_context`]).
pub fn campaigns(
    alerts: &[Alert],
    resolver: &Resolver,
    gap_secs: i64,
    config: &CampaignConfig,
    exposure: Option<&Exposure>,
) -> (Vec<Incident>, Vec<Campaign>) {
    let (incidents, mut campaigns) =
        cellwarden_incident::build_story(alerts, gap_secs, resolver, config);
    if let Some(x) = exposure {
        for c in &mut campaigns {
            c.set_data(data_touched(c, resolver, x));
        }
    }
    (incidents, campaigns)
}

fn data_touched(c: &Campaign, r: &Resolver, x: &Exposure) -> DataTouched {
    let accounts: BTreeSet<&str> = c.actor_accounts().collect();
    let hosts: BTreeSet<&str> = c.hosts.iter().map(|h| h.name.as_str()).collect();
    let mut types = BTreeSet::new();
    let mut used_accounts = BTreeSet::new();
    let mut used_hosts = BTreeSet::new();
    let mut n = 0;
    for s in &x.subscribers {
        let mut hit = false;
        for e in &s.evidence {
            let Some(acc) = r.account(&e.account) else {
                continue;
            };
            if !accounts.contains(acc.as_str()) {
                continue;
            }
            let host = e.client_host.as_deref().map(|h| r.host(h));
            if host.as_deref().is_none_or(|h| hosts.contains(h)) {
                hit = true;
                used_accounts.insert(e.account.clone());
                if let Some(h) = &e.client_host {
                    used_hosts.insert(h.clone());
                }
            }
        }
        if hit {
            n += 1;
            types.extend(s.record_types.iter().cloned());
        }
    }
    let mut cmd = String::new();
    if n > 0 {
        cmd.push_str("cellwarden scope");
        for a in &used_accounts {
            cmd.push_str(&format!(" --account {a}"));
        }
        for h in &used_hosts {
            cmd.push_str(&format!(" --host {h}"));
        }
    }
    DataTouched {
        subscribers: n,
        record_types: types.into_iter().collect(),
        scope_command: cmd,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The asset file's names, aliases, roles and account aliases reach the resolver.
    #[test]
    fn the_asset_file_names_hosts_and_accounts() {
        let assets = cellwarden_net::Assets::from_toml(
            r#"
[[host]]
address = "10.30.0.10"
name = "bill-db-01"
role = "billing-db"
aliases = ["BILLDB"]
[[host]]
address = "10.0.0.2"
name = "dc-01"
role = "dc"
[[account]]
name = "CORP\\paul"
aliases = ["billing_ro"]
"#,
        )
        .unwrap();
        let net = NetSetup {
            assets: std::sync::Arc::new(assets),
            ..Default::default()
        };
        let r = resolver(&net, &Aliases::default());
        assert_eq!(r.host("10.30.0.10"), "bill-db-01");
        assert_eq!(r.host("billdb.corp.example"), "bill-db-01");
        assert_eq!(r.account("BILLING_RO").as_deref(), Some("paul"));
        assert!(r.hub_role("dc-01"));
        assert!(!r.hub_role("bill-db-01"));
    }
}
