//! The signalling decoders checked against Wireshark: `simulate --scenario tracking` writes a
//! capture (SIGTRAN/MAP, Diameter over TCP, GTPv2-C) for five seeds; `tshark` must read it
//! without a malformed packet, and `cellwarden events` must agree with it message by message
//! on operation and command codes, transaction ids, global titles, IMSI, MSISDN, realms and
//! GTP message types. The few places where the two are not comparable are listed below with
//! the reason, and nothing else may differ.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn tshark() -> Option<PathBuf> {
    cellwarden_testkit::tool(
        "tshark",
        &["/usr/bin/tshark"],
        "apt-get install tshark (bash .ci/run does)",
    )
}

/// TBCD digits of bytes as tshark prints them (hex, with or without colons) (`skip` leading octets:
/// 1 for an address string's nature of address).
fn tbcd(hex: &str, skip: usize) -> String {
    let hex = hex.replace(':', "");
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
        .collect();
    let mut s = String::new();
    'o: for b in bytes.iter().skip(skip) {
        for n in [b & 0x0f, b >> 4] {
            if n > 9 {
                break 'o;
            }
            s.push((b'0' + n) as char);
        }
    }
    s
}

/// What one frame carries, as comparable strings: one entry per kind of fact, values sorted.
type Facts = BTreeMap<&'static str, Vec<String>>;

fn add(f: &mut Facts, k: &'static str, v: impl Into<String>) {
    let v = v.into();
    if !v.is_empty() {
        f.entry(k).or_default().push(v);
    }
}

/// How a tshark value is made comparable.
enum Conv {
    Same,
    /// Colon-separated hex bytes.
    Hex,
    /// An ISDN address string's bytes.
    Address,
    /// TBCD bytes.
    Tbcd,
    /// `1`/`True` or `0`/`False`.
    Bool,
}

const FIELDS: &[&str] = &[
    "frame.number",
    "gsm_old.localValue",
    "tcap.otid",
    "tcap.dtid",
    "sccp.calling.digits",
    "sccp.called.digits",
    "e212.imsi",
    "gsm_map.msisdn",
    "gsm_map.sm.msisdn",
    "gsm_map.ms.msisdn",
    "gsm_map.ch.msisdn",
    "diameter.cmd.code",
    "diameter.flags.request",
    "diameter.Origin-Realm",
    "diameter.Destination-Realm",
    "diameter.User-Name",
    "diameter.MSISDN",
    "gtpv2.message_type",
    "e164.msisdn",
    "frame.protocols",
];

fn tshark_facts(tshark: &Path, pcap: &Path) -> BTreeMap<u64, Facts> {
    let mut cmd = Command::new(tshark);
    cmd.args([
        "-r",
        pcap.to_str().unwrap(),
        "-o",
        "sctp.reassembly:TRUE",
        "-T",
        "fields",
    ]);
    cmd.args([
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=;",
        "-E",
        "separator=/t",
    ]);
    for f in FIELDS {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut frames = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        let col = |name: &str| -> Vec<&str> {
            let i = FIELDS.iter().position(|f| *f == name).unwrap();
            cols.get(i)
                .map(|c| c.split(';').filter(|v| !v.is_empty()).collect())
                .unwrap_or_default()
        };
        let n: u64 = col("frame.number")[0].parse().unwrap();
        let protocols = col("frame.protocols").join(":");
        // (tshark field, our fact, how tshark's text becomes ours)
        let table: &[(&str, &'static str, Conv)] = if protocols.contains("gsm_map") {
            &[
                ("gsm_old.localValue", "map_op", Conv::Same),
                ("tcap.otid", "otid", Conv::Hex),
                ("tcap.dtid", "dtid", Conv::Hex),
                ("sccp.calling.digits", "calling_gt", Conv::Same),
                ("sccp.called.digits", "called_gt", Conv::Same),
                ("e212.imsi", "imsi", Conv::Same),
                ("gsm_map.msisdn", "msisdn", Conv::Address),
                ("gsm_map.sm.msisdn", "msisdn", Conv::Address),
                ("gsm_map.ms.msisdn", "msisdn", Conv::Address),
                ("gsm_map.ch.msisdn", "msisdn", Conv::Address),
            ]
        } else if protocols.contains("diameter") {
            &[
                ("diameter.cmd.code", "diameter_cmd", Conv::Same),
                ("diameter.flags.request", "request", Conv::Bool),
                ("diameter.Origin-Realm", "origin_realm", Conv::Same),
                (
                    "diameter.Destination-Realm",
                    "destination_realm",
                    Conv::Same,
                ),
                ("diameter.User-Name", "user_name", Conv::Same),
                ("diameter.MSISDN", "msisdn", Conv::Tbcd),
            ]
        } else if protocols.contains("gtpv2") {
            &[
                ("gtpv2.message_type", "gtp_type", Conv::Same),
                ("e212.imsi", "imsi", Conv::Same),
                ("e164.msisdn", "msisdn", Conv::Same),
            ]
        } else {
            continue;
        };
        let mut f = Facts::new();
        for (field, fact, conv) in table {
            for v in col(field) {
                let v = match conv {
                    Conv::Same => v.to_owned(),
                    Conv::Hex => v.replace(':', ""),
                    Conv::Address => tbcd(v, 1),
                    Conv::Tbcd => tbcd(v, 0),
                    Conv::Bool => (v == "1" || v == "True").to_string(),
                };
                add(&mut f, fact, v);
            }
        }
        for v in f.values_mut() {
            v.sort();
            v.dedup();
        }
        frames.insert(n, f);
    }
    frames
}

fn our_facts(pcap: &Path) -> BTreeMap<u64, Facts> {
    let out = run(&["events", pcap.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut frames: BTreeMap<u64, Facts> = BTreeMap::new();
    for line in stdout(&out).lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        let fl = &e["fields"];
        let s = |k: &str| -> String {
            match &fl[k] {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => String::new(),
                v => v.to_string(),
            }
        };
        let n = fl["packet"].as_u64().unwrap();
        let f = frames.entry(n).or_default();
        match s("Channel").as_str() {
            "map" => {
                // tshark shows the operation code only where the message carries it, and
                // shows an error's code in the same field.
                if fl["operation_inferred"].is_null() {
                    add(f, "map_op", s("operation_code"));
                }
                add(f, "map_op", s("error_code"));
                add(f, "otid", s("otid"));
                add(f, "dtid", s("dtid"));
                add(f, "calling_gt", s("calling_gt"));
                add(f, "called_gt", s("called_gt"));
                add(f, "imsi", s("imsi"));
                add(f, "msisdn", s("msisdn"));
            }
            "diameter" => {
                add(f, "diameter_cmd", s("command_code"));
                add(f, "request", s("request"));
                add(f, "origin_realm", s("origin_realm"));
                add(f, "destination_realm", s("destination_realm"));
                add(f, "user_name", s("user_name"));
                add(f, "msisdn", s("msisdn"));
            }
            "gtpc" => {
                add(f, "gtp_type", s("message_type"));
                add(f, "imsi", s("imsi"));
                add(f, "msisdn", s("msisdn"));
            }
            other => panic!("unexpected channel {other}"),
        }
    }
    for f in frames.values_mut() {
        for v in f.values_mut() {
            v.sort();
            v.dedup();
        }
    }
    frames
}

#[test]
fn decoded_signalling_agrees_with_tshark() {
    let Some(tshark) = tshark() else { return };
    for seed in 1..=5u64 {
        let dir = tempfile::tempdir().unwrap();
        let out = run(&[
            "simulate",
            "--out",
            dir.path().to_str().unwrap(),
            "--seed",
            &seed.to_string(),
            "--subscribers",
            "400",
            "--days",
            "1",
            "--scenario",
            "tracking",
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let pcap = dir.path().join("network/signalling.pcap");
        // Wireshark reads every packet without a malformed one or an error.
        let bad = Command::new(&tshark)
            .args(["-r", pcap.to_str().unwrap(), "-o", "sctp.reassembly:TRUE"])
            .args(["-Y", "_ws.malformed || _ws.expert.severity >= \"error\""])
            .output()
            .unwrap();
        let bad_text = String::from_utf8_lossy(&bad.stdout);
        assert!(
            bad_text.trim().is_empty(),
            "seed {seed}: tshark finds malformed packets:\n{bad_text}"
        );
        let theirs = tshark_facts(&tshark, &pcap);
        let ours = our_facts(&pcap);
        let truth: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("ground-truth.json")).unwrap(),
        )
        .unwrap();
        let mut differences = Vec::new();
        for (n, t) in &theirs {
            match ours.get(n) {
                None => differences.push(format!(
                    "frame {n}: tshark decodes {t:?}, cellwarden nothing"
                )),
                Some(o) if o != t => {
                    differences.push(format!("frame {n}: tshark {t:?}\n   cellwarden {o:?}"))
                }
                _ => {}
            }
        }
        for n in ours.keys().filter(|n| !theirs.contains_key(n)) {
            differences.push(format!(
                "frame {n}: cellwarden decodes {:?}, tshark nothing",
                ours[n]
            ));
        }
        assert!(
            differences.is_empty(),
            "seed {seed}: {} of {} frames differ:\n{}",
            differences.len(),
            theirs.len(),
            differences[..differences.len().min(20)].join("\n")
        );
        // Every message the simulator wrote was decoded, by both.
        let written = truth["signalling"]["messages"].as_u64().unwrap();
        let decoded: usize = {
            let out = run(&["events", pcap.to_str().unwrap()]);
            stdout(&out).lines().count()
        };
        assert_eq!(decoded as u64, written, "seed {seed}");
        assert!(
            theirs.len() > 500,
            "seed {seed}: only {} frames compared",
            theirs.len()
        );
    }
}

/// (identifier, asking peer) pairs with their operations: IMSI where known, else MSISDN;
/// `by` names the asking peer of an entry.
fn tracked_pairs(
    entries: &[serde_json::Value],
    by: impl Fn(&serde_json::Value) -> String,
) -> BTreeMap<(String, String), Vec<String>> {
    entries
        .iter()
        .map(|t| {
            let id = t["imsi"]
                .as_str()
                .or(t["msisdn"].as_str())
                .expect("an IMSI or an MSISDN")
                .to_owned();
            let ops = t["operations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o.as_str().unwrap().to_owned())
                .collect();
            ((id, by(t)), ops)
        })
        .collect()
}

#[test]
fn scope_lists_exactly_the_tracked_subscribers() {
    use cellwarden_sim::signalling::net;
    for seed in 1..=5u64 {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let out = run(&[
            "simulate",
            "--out",
            d,
            "--seed",
            &seed.to_string(),
            "--subscribers",
            "500",
            "--days",
            "1",
            "--scenario",
            "tracking",
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let truth: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("ground-truth.json")).unwrap(),
        )
        .unwrap();
        let want = tracked_pairs(truth["signalling"]["tracked"].as_array().unwrap(), |t| {
            t["by"].as_str().unwrap_or_default().to_owned()
        });
        // The operator's configuration, and none (the home network learnt from the capture).
        let config = dir.path().join("operator.toml");
        std::fs::write(
            &config,
            format!(
                "[signalling]\nhome_gt = [\"{}\"]\nhome_realms = [\"{}\"]\npartner_realms = [\"{}\"]\nhome_imsi = [\"20815\"]\nsignalling_nodes = [\"10.50.0.0/24\", \"10.50.1.0/24\", \"10.50.2.0/24\"]\n",
                net::HOME_GT, net::HOME_REALM, net::PARTNER_REALM
            ),
        )
        .unwrap();
        for with_config in [true, false] {
            let pcap = dir.path().join("network/signalling.pcap");
            let report = dir.path().join("scope.json");
            let mut args = vec![
                "scope".to_owned(),
                pcap.to_str().unwrap().to_owned(),
                "-o".to_owned(),
                report.to_str().unwrap().to_owned(),
            ];
            if with_config {
                args.push("--config".into());
                args.push(config.to_str().unwrap().to_owned());
            }
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = run(&a);
            assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
            let x: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
            let entries = x["signalling"].as_array().cloned().unwrap_or_default();
            // Who asked: the title or realm, or for the borrowed title, the host that sent it.
            let got = tracked_pairs(&entries, |t| {
                let sender = t["sender"].as_str().unwrap();
                if sender == net::COMPROMISED_IP {
                    sender.to_owned()
                } else {
                    t["by"].as_str().unwrap().to_owned()
                }
            });
            // The truth names the IMSI; an entry asked by MSISDN only (anyTimeInterrogation
            // is answered without the IMSI) is matched by MSISDN.
            let msisdn_of: BTreeMap<String, String> = truth["signalling"]["tracked"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    (
                        t["msisdn"].as_str().unwrap().to_owned(),
                        t["imsi"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            let got: BTreeMap<(String, String), Vec<String>> = got
                .into_iter()
                .map(|((id, by), ops)| ((msisdn_of.get(&id).cloned().unwrap_or(id), by), ops))
                .collect();
            assert_eq!(
                got.keys().collect::<Vec<_>>(),
                want.keys().collect::<Vec<_>>(),
                "seed {seed}, config {with_config}"
            );
            // eval: every tracked pair found, nothing else reported, no alert on the benign
            // traffic.
            let alerts = dir.path().join("alerts.jsonl");
            let mut hunt = vec![
                "hunt",
                a[1],
                "--format",
                "jsonl",
                "-o",
                alerts.to_str().unwrap(),
            ];
            if with_config {
                hunt.extend(["--config", config.to_str().unwrap()]);
            }
            let out = run(&hunt);
            assert!(
                out.status.code().is_some_and(|c| c <= 1),
                "{}",
                stderr(&out)
            );
            let out = run(&[
                "eval",
                "--truth",
                dir.path().join("ground-truth.json").to_str().unwrap(),
                alerts.to_str().unwrap(),
                report.to_str().unwrap(),
                "--json",
            ]);
            assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
            let e: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
            assert_eq!(e["tracked_found"], e["tracked"], "seed {seed}: {e}");
            assert_eq!(
                e["tracked_reported_true"], e["tracked_reported"],
                "seed {seed}: {e}"
            );
            assert_eq!(
                e["benign_alerts"], 0,
                "seed {seed}, config {with_config}: {e}"
            );
            assert!(e["alerts"].as_u64().unwrap() > 0);
            for (k, ops) in &want {
                let mut g = got[k].clone();
                let mut w = ops.clone();
                g.sort();
                w.sort();
                assert_eq!(
                    g, w,
                    "seed {seed}, config {with_config}: operations of {k:?}"
                );
            }
        }
    }
}
