//! People, not identifiers: which MSISDN, IMSI, ICCID and IMEI belong to one subscriber.
//!
//! Links come from the subscriber map (`--subscriber-map`, a CSV export of the HLR/HSS or
//! CRM: one row per subscriber) and from what statements show of one row (an INSERT's values,
//! an UPDATE's assignments with its WHERE equalities, the AND-ed equalities of a WHERE clause;
//! see [`crate::sql::Analysis::rows`]). Map rows are taken first, then the logs' links, those
//! seen in most statements first (ties in identifier order): the result does not depend on
//! reading order, and a stray row mixing two parties loses to links seen again and again.
//!
//! A person holds one subscription: at most one MSISDN, one IMSI and one ICCID. A link that
//! would give a person a second one (a recycled number, a dual-SIM customer, a row that
//! mixes two parties) is not followed, and counted. An IMEI is a handset, which changes hands
//! and SIMs: it joins the person it is linked to only when it is linked to exactly one;
//! otherwise it stays on its own. Identifiers nothing links stay single.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::ids::{IdKind, Numbering, SubscriberId, normalise};

/// Subscribers as the operator's own systems list them: one row, one person.
#[derive(Debug, Clone, Default)]
pub struct SubscriberMap {
    /// Each row's identifiers.
    pub rows: Vec<Vec<SubscriberId>>,
}

impl SubscriberMap {
    /// Reads a CSV export with a header row; columns whose names say `msisdn`, `imsi`,
    /// `imei` or `iccid` (as [`IdKind::from_column`] reads names) are identifiers, others are
    /// ignored. Returns the map and one message per value that is not an identifier of its
    /// column's kind (`line N, column C: …`).
    pub fn from_csv(
        text: &str,
        numbering: &Numbering,
    ) -> Result<(SubscriberMap, Vec<String>), String> {
        let mut r = csv::ReaderBuilder::new()
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let header = r.headers().map_err(|e| e.to_string())?.clone();
        let kinds: Vec<Option<IdKind>> = header.iter().map(IdKind::from_column).collect();
        if kinds.iter().all(Option::is_none) {
            return Err(format!(
                "no identifier column in the header ({}): name them msisdn, imsi, imei or iccid",
                header.iter().collect::<Vec<_>>().join(", ")
            ));
        }
        let mut map = SubscriberMap::default();
        let mut bad = Vec::new();
        for rec in r.records() {
            let rec = match rec {
                Ok(x) => x,
                Err(e) => {
                    bad.push(e.to_string());
                    continue;
                }
            };
            let line = rec.position().map_or(0, |p| p.line());
            let mut row = Vec::new();
            for (k, v) in kinds.iter().zip(rec.iter()) {
                let Some(k) = k else { continue };
                if v.is_empty() {
                    continue;
                }
                match normalise(*k, v, numbering) {
                    Some(id) => row.push(id),
                    None => bad.push(format!("line {line}: {v:?} is not an {k}")),
                }
            }
            if row.len() >= 2 {
                map.rows.push(row);
            }
        }
        Ok((map, bad))
    }
}

/// The persons the links make: identifier → person, person → identifiers.
#[derive(Debug, Default)]
pub struct Persons {
    of: HashMap<SubscriberId, usize>,
    members: Vec<Vec<SubscriberId>>,
    /// Links not followed because they would give a person two subscriptions, or a handset
    /// two owners.
    pub conflicts: u64,
}

/// One subscription's identifiers so far (the union-find root's).
#[derive(Default, Clone)]
struct Slots {
    msisdn: Option<usize>,
    imsi: Option<usize>,
    iccid: Option<usize>,
}

impl Slots {
    fn of(kind: IdKind, node: usize) -> Slots {
        let mut s = Slots::default();
        match kind {
            IdKind::Msisdn => s.msisdn = Some(node),
            IdKind::Imsi => s.imsi = Some(node),
            IdKind::Iccid => s.iccid = Some(node),
            IdKind::Imei => {}
        }
        s
    }

    /// The union of both, unless they hold different identifiers of one kind.
    fn join(&self, o: &Slots) -> Option<Slots> {
        let one = |a: Option<usize>, b: Option<usize>| match (a, b) {
            (Some(x), Some(y)) if x != y => Err(()),
            (x, y) => Ok(x.or(y)),
        };
        Some(Slots {
            msisdn: one(self.msisdn, o.msisdn).ok()?,
            imsi: one(self.imsi, o.imsi).ok()?,
            iccid: one(self.iccid, o.iccid).ok()?,
        })
    }
}

impl Persons {
    /// Links the map's rows, then the logs' `links` (pair → statements that showed it).
    pub fn build(
        map: &SubscriberMap,
        links: &BTreeMap<(SubscriberId, SubscriberId), u64>,
    ) -> Persons {
        let mut edges: Vec<(&SubscriberId, &SubscriberId)> = Vec::new();
        for row in &map.rows {
            // A star from the row's first subscription identifier (else its first).
            let hub = row
                .iter()
                .find(|i| i.kind != IdKind::Imei)
                .unwrap_or(&row[0]);
            edges.extend(row.iter().filter(|i| *i != hub).map(|i| (hub, i)));
        }
        let mut seen: Vec<(&(SubscriberId, SubscriberId), &u64)> = links.iter().collect();
        seen.sort_by_key(|(_, n)| std::cmp::Reverse(**n));
        edges.extend(seen.into_iter().map(|((a, b), _)| (a, b)));
        let mut ids: Vec<&SubscriberId> = Vec::new();
        let mut index: HashMap<&SubscriberId, usize> = HashMap::new();
        for (a, b) in &edges {
            for x in [*a, *b] {
                if !index.contains_key(x) {
                    index.insert(x, ids.len());
                    ids.push(x);
                }
            }
        }
        let mut parent: Vec<usize> = (0..ids.len()).collect();
        let mut slots: Vec<Slots> = ids
            .iter()
            .enumerate()
            .map(|(n, i)| Slots::of(i.kind, n))
            .collect();
        fn find(parent: &mut [usize], mut x: usize) -> usize {
            while parent[x] != x {
                parent[x] = parent[parent[x]];
                x = parent[x];
            }
            x
        }
        let mut conflicts = 0;
        // Subscriptions first: MSISDN, IMSI, ICCID with each other.
        for (a, b) in &edges {
            if a.kind == IdKind::Imei || b.kind == IdKind::Imei {
                continue;
            }
            let (ra, rb) = (find(&mut parent, index[a]), find(&mut parent, index[b]));
            if ra == rb {
                continue;
            }
            match slots[ra].join(&slots[rb]) {
                Some(s) => {
                    parent[rb] = ra;
                    slots[ra] = s;
                }
                None => conflicts += 1,
            }
        }
        // Then handsets: an IMEI joins the one subscription it is linked to.
        let mut owners: HashMap<usize, BTreeSet<usize>> = HashMap::new();
        for (a, b) in &edges {
            let (imei, other) = match (a.kind, b.kind) {
                (IdKind::Imei, IdKind::Imei) => continue,
                (IdKind::Imei, _) => (a, b),
                (_, IdKind::Imei) => (b, a),
                _ => continue,
            };
            let root = find(&mut parent, index[other]);
            owners.entry(index[imei]).or_default().insert(root);
        }
        let mut handsets: Vec<(usize, BTreeSet<usize>)> = owners.into_iter().collect();
        handsets.sort();
        for (imei, roots) in handsets {
            if roots.len() == 1 {
                parent[imei] = *roots.iter().next().expect("one root");
            } else {
                conflicts += 1;
            }
        }
        let mut person_of_root: HashMap<usize, usize> = HashMap::new();
        let mut members: Vec<Vec<SubscriberId>> = Vec::new();
        let mut of = HashMap::new();
        for (n, id) in ids.iter().enumerate() {
            let r = find(&mut parent, n);
            let p = *person_of_root.entry(r).or_insert_with(|| {
                members.push(Vec::new());
                members.len() - 1
            });
            members[p].push(*(*id));
        }
        // Persons of one identifier are no persons: they stay single.
        let mut kept: Vec<Vec<SubscriberId>> = Vec::new();
        for mut m in members {
            if m.len() < 2 {
                continue;
            }
            m.sort();
            for id in &m {
                of.insert(*id, kept.len());
            }
            kept.push(m);
        }
        Persons {
            of,
            members: kept,
            conflicts,
        }
    }

    /// The person an identifier belongs to, when it is linked to others.
    pub fn of(&self, id: &SubscriberId) -> Option<usize> {
        self.of.get(id).copied()
    }

    /// A person's identifiers, sorted (MSISDN, IMSI, IMEI, ICCID).
    pub fn members(&self, person: usize) -> &[SubscriberId] {
        &self.members[person]
    }

    /// Number of persons with two or more identifiers.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// No identifiers are linked.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(kind: IdKind, v: &str) -> SubscriberId {
        SubscriberId {
            kind,
            value: crate::ids::Digits::new(v).unwrap(),
        }
    }

    fn links(
        pairs: &[(SubscriberId, SubscriberId)],
    ) -> BTreeMap<(SubscriberId, SubscriberId), u64> {
        pairs.iter().map(|p| (*p, 1)).collect()
    }

    #[test]
    fn map_rows_and_log_links_make_persons() {
        let (map, bad) = SubscriberMap::from_csv(
            "customer,MSISDN,imsi,iccid,note\n\
             c1,+33 6 12 34 56 78,208150000000001,8933150000000000011,vip\n\
             c2,33612000002,not-an-imsi,,\n",
            &Numbering::default(),
        )
        .unwrap();
        assert_eq!(bad, vec!["line 3: \"not-an-imsi\" is not an imsi"]);
        assert_eq!(map.rows.len(), 1);
        let m = id(IdKind::Msisdn, "33612345678");
        let imsi = id(IdKind::Imsi, "208150000000001");
        let imei = id(IdKind::Imei, "356938035643809");
        let p = Persons::build(&map, &links(&[(imsi, imei)]));
        assert_eq!(p.len(), 1);
        let person = p.of(&m).unwrap();
        assert_eq!(p.of(&imei), Some(person));
        assert_eq!(
            p.members(person).iter().map(|i| i.kind).collect::<Vec<_>>(),
            vec![IdKind::Msisdn, IdKind::Imsi, IdKind::Imei, IdKind::Iccid]
        );
        assert_eq!(p.conflicts, 0);
    }

    #[test]
    fn a_person_has_one_subscription_and_a_shared_handset_joins_nobody() {
        let (m1, m2) = (
            id(IdKind::Msisdn, "33611111111"),
            id(IdKind::Msisdn, "33622222222"),
        );
        let (i1, i2) = (
            id(IdKind::Imsi, "208150000000001"),
            id(IdKind::Imsi, "208150000000002"),
        );
        let phone = id(IdKind::Imei, "356938035643809");
        let p = Persons::build(
            &SubscriberMap::default(),
            &links(&[
                (m1, i1),
                (m2, i2),
                // A row mixing both parties: would give person 1 a second IMSI.
                (m1, i2),
                // The family phone, used with both SIMs.
                (i1, phone),
                (i2, phone),
            ]),
        );
        assert_eq!(p.len(), 2);
        assert_ne!(p.of(&m1), p.of(&m2));
        assert_eq!(p.of(&i1), p.of(&m1));
        assert_eq!(
            p.of(&phone),
            None,
            "a handset of two subscriptions stays single"
        );
        assert_eq!(p.conflicts, 2);
    }

    #[test]
    fn a_map_without_identifier_columns_is_refused() {
        let e = SubscriberMap::from_csv("name,city\nA,B\n", &Numbering::default()).unwrap_err();
        assert!(e.contains("no identifier column"), "{e}");
    }
}
