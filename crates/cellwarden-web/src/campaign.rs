//! The campaign pages: the list, and one campaign with its graph (accounts, hosts, outside
//! peers and databases, drawn on the server as SVG: no script, every name escaped by maud), its
//! kill chain, moves, data and timeline.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cellwarden_store::CampaignRow;
use maud::{Markup, html};
use serde_json::Value;

use crate::query::{KeyQuery, url_encode};
use crate::respond::fail;
use crate::state::Shared;
use crate::widgets::{history, layout, level_badge, status_badge, triage_form};

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn list(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

/// Bytes for people.
fn bytes(n: u64) -> String {
    cellwarden_analytics::stats::human_bytes(n)
}

/// The campaigns table (overview and list).
pub fn table(rows: &[CampaignRow]) -> Markup {
    html! {
        table.list id="campaigns" {
            thead { tr { th { "score" } th { "level" } th { "first seen" } th { "last seen" } th { "story" } th { "hosts" } th { "subscribers" } th { "alerts" } th { "status" } } }
            tbody {
                @for c in rows {
                    tr {
                        td { a href={"/campaign?id=" (url_encode(&c.id))} { (c.score) } }
                        td { (level_badge(c.level)) }
                        td { (c.first_seen) }
                        td { (c.last_seen) }
                        td { a href={"/campaign?id=" (url_encode(&c.id))} { (text(&c.json["summary"])) } }
                        td { (c.hosts.join(", ")) }
                        td { (c.json["data"]["subscribers"].as_u64().unwrap_or(0)) }
                        td { (c.alert_count) }
                        td { (status_badge(&c.status)) }
                    }
                }
            }
        }
    }
}

pub async fn campaigns(State(s): State<Shared>) -> Response {
    let st = s.store.lock().expect("store lock");
    match st.campaigns() {
        Ok(rows) => layout(
            "Campaigns",
            "Campaigns",
            html! {
                p { (rows.len()) " campaigns: incidents joined across days by the accounts, footholds and outside peers they share (docs/campaigns.md)." }
                (table(&rows))
            },
        ),
        Err(e) => fail(e),
    }
}

/// A node of the graph.
struct Node {
    id: String,
    label: String,
    kind: &'static str,
    x: f64,
    y: f64,
}

const NODE_W: f64 = 150.0;
const NODE_H: f64 = 34.0;
const GAP: f64 = 30.0;

/// Accounts on top, hosts in the middle in the order the campaign reached them, outside peers
/// and databases below; account-to-host lines for where each account was used, arrows for
/// moves (logons, database sessions, transfers, the same account on the next host).
pub fn graph(c: &Value) -> Markup {
    let hosts: Vec<&str> = list(&c["hosts"]).map(|h| text(&h["name"])).collect();
    let accounts: Vec<&str> = list(&c["accounts"]).map(|a| text(&a["name"])).collect();
    // Outside peers and databases, each under the first host that reached it.
    let mut below: Vec<(String, &'static str, usize)> = Vec::new();
    for m in list(&c["moves"]) {
        let to = text(&m["to"]);
        let Some(src) = hosts.iter().position(|h| *h == text(&m["from"])) else {
            continue;
        };
        if !hosts.contains(&to) && !below.iter().any(|(b, _, _)| b == to) {
            let kind = if to.starts_with("database ") {
                "database"
            } else {
                "outside"
            };
            below.push((to.to_owned(), kind, src));
        }
    }
    below.sort_by_key(|(_, _, src)| *src);
    let step = NODE_W + GAP;
    let widest = hosts.len().max(accounts.len()).max(below.len()).max(1) as f64;
    let mut nodes: Vec<Node> = Vec::new();
    let mut row = |names: Vec<(String, &'static str)>, y: f64, width: f64| {
        let x0 = (width - (names.len() as f64 * step - GAP)) / 2.0;
        for (i, (name, kind)) in names.into_iter().enumerate() {
            nodes.push(Node {
                id: format!("{kind}:{name}"),
                label: name,
                kind,
                x: x0 + i as f64 * step,
                y,
            });
        }
    };
    let width = widest * step + GAP;
    row(
        accounts
            .iter()
            .map(|a| ((*a).to_owned(), "account"))
            .collect(),
        20.0,
        width,
    );
    row(
        hosts.iter().map(|h| ((*h).to_owned(), "host")).collect(),
        130.0,
        width,
    );
    // Below: under its host where there is room, pushed right where there is not.
    let host_x: Vec<f64> = nodes
        .iter()
        .filter(|n| n.kind == "host")
        .map(|n| n.x)
        .collect();
    let mut next = GAP;
    let mut placed = Vec::new();
    for (k, (name, kind, src)) in below.iter().enumerate() {
        let same = below[..k].iter().filter(|(_, _, s)| s == src).count() as f64;
        let want = host_x.get(*src).copied().unwrap_or(GAP) + same * step;
        let x = want.max(next);
        next = x + step;
        placed.push((name.clone(), *kind, x));
    }
    let overflow = (next - GAP - width).max(0.0);
    let width = width + overflow;
    for (name, kind, x) in placed {
        nodes.push(Node {
            id: format!("{kind}:{name}"),
            label: name,
            kind,
            x,
            y: 240.0,
        });
    }
    let find = |name: &str, kinds: &[&str]| {
        nodes
            .iter()
            .find(|n| n.label == name && kinds.contains(&n.kind))
    };
    // Account → host: where each account was used.
    let mut uses = Vec::new();
    for a in list(&c["accounts"]) {
        for h in list(&a["hosts"]) {
            if let (Some(f), Some(t)) = (
                find(text(&a["name"]), &["account"]),
                find(text(h), &["host"]),
            ) {
                uses.push((f.x + NODE_W / 2.0, f.y + NODE_H, t.x + NODE_W / 2.0, t.y));
            }
        }
    }
    // Moves.
    let mut moves = Vec::new();
    for m in list(&c["moves"]) {
        let (Some(f), Some(t)) = (
            find(text(&m["from"]), &["host"]),
            find(text(&m["to"]), &["host", "outside", "database"]),
        ) else {
            continue;
        };
        let kind = text(&m["kind"]).to_owned();
        let (x1, y1, x2, y2, bend) = if (f.y - t.y).abs() < 1.0 {
            // Along the host row: an arc under the boxes, deeper the farther it goes.
            let left = f.x < t.x;
            let (x1, x2) = if left {
                (f.x + NODE_W * 0.75, t.x + NODE_W * 0.25)
            } else {
                (f.x + NODE_W * 0.25, t.x + NODE_W * 0.75)
            };
            let y = f.y + NODE_H;
            (x1, y, x2, y, 18.0 + (t.x - f.x).abs() / 8.0)
        } else {
            (
                f.x + NODE_W / 2.0,
                f.y + NODE_H,
                t.x + NODE_W / 2.0,
                t.y,
                0.0,
            )
        };
        moves.push((x1, y1, x2, y2, bend, kind, text(&m["time"]).to_owned()));
    }
    let height = 240.0 + NODE_H + 20.0;
    html! {
        svg.graph id="campaign-graph" width=(width) height=(height) viewBox={"0 0 " (width) " " (height)} role="img" aria-label="hosts, accounts and outside peers of the campaign" {
            defs {
                marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse" {
                    path d="M 0 0 L 10 5 L 0 10 z" {}
                }
            }
            @for (x1, y1, x2, y2) in &uses {
                line.uses x1=(x1) y1=(y1) x2=(x2) y2=(y2) {}
            }
            @for (x1, y1, x2, y2, bend, kind, time) in &moves {
                @let mx = (x1 + x2) / 2.0;
                @let my = (y1 + y2) / 2.0 + bend;
                path class={"move " (kind)} d={"M " (x1) " " (y1) " Q " (mx) " " (my + bend) " " (x2) " " (y2)} marker-end="url(#arrow)" {
                    title { (kind) " " (time) }
                }
                @let (lx, ly) = if *bend > 0.0 { (mx, my + 4.0) } else { (x1 * 0.4 + x2 * 0.6 + 6.0, y1 * 0.4 + y2 * 0.6) };
                text.movelabel x=(lx) y=(ly) text-anchor="start" { (kind) }
            }
            @for n in &nodes {
                g class={"node " (n.kind)} data-id=(n.id) {
                    rect x=(n.x) y=(n.y) width=(NODE_W) height=(NODE_H) rx="5" {}
                    text x=(n.x + NODE_W / 2.0) y=(n.y + NODE_H / 2.0 + 4.0) {
                        (short(&n.label, 22))
                    }
                    title { (n.kind) " " (n.label) }
                }
            }
        }
    }
}

fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

pub async fn campaign(State(s): State<Shared>, Query(q): Query<KeyQuery>) -> Response {
    let st = s.store.lock().expect("store lock");
    let c = match st.campaign(&q.id) {
        Ok(Some(c)) => c,
        Ok(None) => return (StatusCode::NOT_FOUND, "no such campaign\n").into_response(),
        Err(e) => return fail(e),
    };
    let h = st.history(&c.id).unwrap_or_default();
    let back = format!("/campaign?id={}", url_encode(&c.id));
    let j = &c.json;
    let data = &j["data"];
    layout(
        &format!("Campaign {}", c.id),
        "Campaigns",
        html! {
            p { (level_badge(c.level)) " score " strong { (c.score) } " · " (c.first_seen) " … " (c.last_seen) " · " (status_badge(&c.status)) }
            p.story id="story" { (text(&j["summary"])) }
            (triage_form("campaign", &c.id, &c.status, &c.comment, &back))
            h2 { "Entry point" }
            p id="entry" { (text(&j["entry"]["time"])) " on " strong { (text(&j["entry"]["host"])) } ": " (text(&j["entry"]["rule_title"])) }
            h2 { "Kill chain" }
            ol.killchain.timed id="killchain" {
                @for s in list(&j["kill_chain"]) {
                    li.hit title=(text(&s["rule_title"])) { (text(&s["tactic"])) br; span.small { (text(&s["first"]).get(..16).unwrap_or("")) } }
                }
            }
            h2 { "Hosts, accounts and where the data went" }
            div.graphbox { (graph(j)) }
            div.two {
                div {
                    h2 { "Hosts" }
                    table.list id="hosts" {
                        thead { tr { th { "host" } th { "role" } th { "first" } th { "last" } th { "alerts" } } }
                        tbody {
                            @for x in list(&j["hosts"]) {
                                tr {
                                    td { a href={"/alerts?host=" (url_encode(text(&x["name"])))} { (text(&x["name"])) } @if x["hub"] == true { " " span.small { "(hub)" } } }
                                    td { (text(&x["role"])) }
                                    td { (text(&x["first"])) }
                                    td { (text(&x["last"])) }
                                    td { (x["alerts"].as_u64().unwrap_or(0)) }
                                }
                            }
                        }
                    }
                }
                div {
                    h2 { "Accounts" }
                    table.list id="accounts" {
                        thead { tr { th { "account" } th { "hosts" } th { "first" } } }
                        tbody {
                            @for x in list(&j["accounts"]) {
                                tr {
                                    td { a href={"/alerts?account=" (url_encode(text(&x["name"])))} { (text(&x["name"])) } @if x["hub"] == true { " " span.small { "(hub)" } } }
                                    td { (list(&x["hosts"]).map(text).collect::<Vec<_>>().join(", ")) }
                                    td { (text(&x["first"])) }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Moves" }
            table.list id="moves" {
                thead { tr { th { "time (UTC)" } th { "from" } th { "to" } th { "how" } th { "account" } } }
                tbody {
                    @for m in list(&j["moves"]) {
                        tr { td { (text(&m["time"])) } td { (text(&m["from"])) } td { (text(&m["to"])) } td { (text(&m["kind"])) } td { (text(&m["account"])) } }
                    }
                }
            }
            h2 { "Data touched" }
            @let n = data["subscribers"].as_u64().unwrap_or(0);
            @if n == 0 {
                p id="data" { "No subscriber record read by its accounts in the scope report." }
            } @else {
                p id="data" {
                    strong { (n) } " subscriber(s) whose " (list(&data["record_types"]).map(text).collect::<Vec<_>>().join(", ")) " records its accounts read — "
                    a href="/scope" { "the scope report" } "; to list them: " code { (text(&data["scope_command"])) }
                }
            }
            @if list(&j["exfiltration"]).next().is_some() {
                h2 { "Sent outside" }
                table.list id="exfiltration" {
                    thead { tr { th { "destination" } th { "from" } th { "volume" } th { "first" } } }
                    tbody {
                        @for x in list(&j["exfiltration"]) {
                            tr { td { (text(&x["destination"])) } td { (text(&x["from"])) } td { (bytes(x["bytes"].as_u64().unwrap_or(0))) } td { (text(&x["first"])) } }
                        }
                    }
                }
            }
            h2 { "Timeline" }
            table.list id="timeline" {
                thead { tr { th { "time (UTC)" } th { "level" } th { "rule" } th { "hosts" } th { "accounts" } th { "process" } th { "tactics" } } }
                tbody {
                    @for t in list(&j["timeline"]) {
                        tr {
                            td { (text(&t["timestamp"])) }
                            td { (level_badge(text(&t["level"]))) }
                            td {
                                @match t["key"].as_str() {
                                    Some(k) => a href={"/alert?key=" (url_encode(k))} { (text(&t["rule_title"])) },
                                    None => (text(&t["rule_title"])),
                                }
                            }
                            td { (list(&t["hosts"]).map(text).collect::<Vec<_>>().join(", ")) }
                            td { (list(&t["accounts"]).map(text).collect::<Vec<_>>().join(", ")) }
                            td { code { (text(&t["process"])) } }
                            td { (list(&t["tactics"]).map(text).collect::<Vec<_>>().join(", ")) }
                        }
                    }
                }
            }
            (history(&h))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names from the logs are text in the SVG, never markup; every move between drawn places
    /// is an arrow.
    #[test]
    fn the_graph_escapes_names_and_draws_every_move() {
        let c = serde_json::json!({
            "hosts": [{"name": "web-01"}, {"name": "db<script>alert(1)</script>"}],
            "accounts": [{"name": "eve\"><img src=x onerror=alert(1)>", "hosts": ["web-01", "db<script>alert(1)</script>"]}],
            "moves": [
                {"from": "web-01", "to": "db<script>alert(1)</script>", "kind": "logon", "time": "t"},
                {"from": "web-01", "to": "203.0.113.66", "kind": "transfer", "time": "t"},
                {"from": "web-01", "to": "database billing", "kind": "db-session", "time": "t"},
                {"from": "nowhere", "to": "web-01", "kind": "logon", "time": "t"},
            ],
        });
        let svg = graph(&c).into_string();
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(!svg.contains("<img"), "{svg}");
        assert!(svg.contains("&lt;script&gt;"));
        assert_eq!(svg.matches("<path class=\"move").count(), 3, "{svg}");
        assert_eq!(svg.matches("class=\"node ").count(), 5, "{svg}");
        assert_eq!(svg.matches("<line class=\"uses\"").count(), 2, "{svg}");
    }
}
