//! The HTML pages. Every value from the store goes through maud's escaping; links to alerts
//! and incidents carry their keys URL-encoded in the query.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use cellwarden_store::{AlertRow, LEVELS, STATUSES};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use crate::query::{KeyQuery, Search, filter_of, page_of, query_of, url_encode};
use crate::respond::{fail, pseudonymised_scope};
use crate::state::Shared;
use crate::widgets::{history, layout, level_badge, status_badge, triage_form};

const CSS: &str = include_str!("app.css");
const JS: &str = include_str!("app.js");

pub async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

pub async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        JS,
    )
        .into_response()
}

// --- Overview ------------------------------------------------------------------------------

/// Alerts per hour as an SVG bar chart (server-drawn: no script needed).
fn timeline(hours: &[(String, i64)]) -> Markup {
    let max = hours.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1) as f64;
    let w = 8.0;
    let width = (hours.len() as f64 * (w + 2.0)).max(200.0);
    html! {
        svg.chart width=(width) height="120" viewBox={"0 0 " (width) " 120"} role="img" aria-label="alerts per hour" {
            @for (i, (h, n)) in hours.iter().enumerate() {
                @let bh = 100.0 * *n as f64 / max;
                rect x=(i as f64 * (w + 2.0)) y=(110.0 - bh) width=(w) height=(bh) {
                    title { (h) ":00 UTC — " (n) " alert(s)" }
                }
            }
            line x1="0" y1="110" x2=(width) y2="110" {}
        }
        @if let (Some(first), Some(last)) = (hours.first(), hours.last()) {
            p.small { (first.0) ":00 … " (last.0) ":00 UTC, " (hours.len()) " hours with alerts" }
        }
    }
}

/// Tactics in kill-chain order, each with its techniques shaded by alert count.
fn attack_matrix(t: &[(String, String, i64)]) -> Markup {
    let mut tactics: Vec<&str> = t.iter().map(|(a, _, _)| a.as_str()).collect();
    tactics.dedup();
    tactics.sort_by_key(|x| {
        cellwarden_incident::KILL_CHAIN
            .iter()
            .position(|k| k == x)
            .unwrap_or(99)
    });
    tactics.dedup();
    let max = t.iter().map(|(_, _, n)| *n).max().unwrap_or(1).max(1);
    html! {
        div.matrix {
            @for ta in &tactics {
                div.tactic {
                    h3 { (ta) }
                    @for (_, te, n) in t.iter().filter(|(a, _, _)| a == ta) {
                        @let heat = 1 + (4 * n / max).min(4);
                        a class={"technique heat" (heat)} href={"/alerts?rule=&technique=" (url_encode(te))} title={(n) " alert(s)"} {
                            (te) " " span.count { (n) }
                        }
                    }
                }
            }
        }
    }
}

pub async fn overview(State(s): State<Shared>) -> Response {
    let st = s.store.lock().expect("store lock");
    let (sum, hours, tech, inc, camp) = match (
        st.summary(),
        st.alerts_per_hour(),
        st.techniques(),
        st.incidents(),
        st.campaigns(),
    ) {
        (Ok(a), Ok(b), Ok(c), Ok(d), Ok(e)) => (a, b, c, d, e),
        _ => return fail("the store could not be read"),
    };
    layout(
        "Overview",
        "Overview",
        html! {
            section.cards {
                div.card { div.num id="count-alerts" { (sum.alerts) } div { "alerts" } }
                @for (i, l) in LEVELS.iter().enumerate().rev() {
                    a.card href={"/alerts?level=" (l)} {
                        div.num id={"count-" (l)} { (sum.by_level[i]) }
                        div { (level_badge(l)) }
                    }
                }
                a.card href="/campaigns" { div.num id="count-campaigns" { (sum.campaigns) } div { "campaigns" } }
                a.card href="/incidents" { div.num id="count-incidents" { (sum.incidents) } div { "incidents" } }
                div.card { div.num id="count-confirmed" { (sum.by_status[1]) } div { "confirmed" } }
                div.card { div.num { (sum.runs) } div { "runs" } }
            }
            h2 { "Campaigns" }
            @if camp.is_empty() { p { "No campaign: no high alert, nor medium alerts of two rules, joined into one." } }
            @else { (crate::campaign::table(&camp)) }
            h2 { "Alerts per hour" }
            (timeline(&hours))
            h2 { "ATT&CK techniques seen" }
            @if tech.is_empty() { p { "No alert carries an ATT&CK technique." } }
            (attack_matrix(&tech))
            h2 { "Incidents" }
            (incident_table(&inc.iter().take(20).cloned().collect::<Vec<_>>()))
        },
    )
}

fn incident_table(rows: &[cellwarden_store::IncidentRow]) -> Markup {
    html! {
        table.list id="incidents" {
            thead { tr { th { "score" } th { "level" } th { "first seen" } th { "last seen" } th { "hosts" } th { "accounts" } th { "tactics" } th { "alerts" } th { "status" } } }
            tbody {
                @for i in rows {
                    tr {
                        td { a href={"/incident?id=" (url_encode(&i.id))} { (i.score) } }
                        td { (level_badge(i.level)) }
                        td { (i.first_seen) }
                        td { (i.last_seen) }
                        td { (i.hosts.join(", ")) }
                        td { (i.accounts.join(", ")) }
                        td { (i.tactics.join(" → ")) }
                        td { (i.alert_count) }
                        td { (status_badge(&i.status)) }
                    }
                }
            }
        }
    }
}

pub async fn incidents(State(s): State<Shared>) -> Response {
    let st = s.store.lock().expect("store lock");
    match st.incidents() {
        Ok(rows) => layout(
            "Incidents",
            "Incidents",
            html! {
                p { (rows.len()) " incidents: alerts joined by a shared host, account or address." }
                (incident_table(&rows))
            },
        ),
        Err(e) => fail(e),
    }
}

// --- Alerts --------------------------------------------------------------------------------

fn alert_rows(rows: &[AlertRow], back: &str) -> Markup {
    html! {
        table.list id="alerts" {
            thead { tr { th { "time (UTC)" } th { "level" } th { "rule" } th { "host" } th { "account" } th { "techniques" } th { "status" } th { "triage" } } }
            tbody {
                @for a in rows {
                    tr data-key=(a.key) {
                        td { (a.time) }
                        td { (level_badge(a.level)) }
                        td { a href={"/alert?key=" (url_encode(&a.key))} { (a.rule_title) } }
                        td { (a.host) }
                        td { (a.account) }
                        td { (a.techniques.join(", ")) }
                        td { (status_badge(&a.status)) }
                        td { (triage_form("alert", &a.key, &a.status, &a.comment, back)) }
                    }
                }
            }
        }
    }
}

pub async fn alerts(State(s): State<Shared>, Query(q): Query<Search>) -> Response {
    let st = s.store.lock().expect("store lock");
    let page = page_of(&q);
    let (rows, total) = match st.alerts(&filter_of(&q), page) {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    let pages = total.div_ceil(page.size).max(1);
    let back = format!("/alerts?{}", query_of(&q, page.number));
    layout(
        "Alerts",
        "Alerts",
        html! {
            form.search method="get" action="/alerts" {
                label { "rule " input type="text" name="rule" value=(q.rule) placeholder="id or title"; }
                label { "technique " input type="text" name="technique" value=(q.technique) placeholder="T1003"; }
                label { "host " input type="text" name="host" value=(q.host); }
                label { "account " input type="text" name="account" value=(q.account); }
                label { "level ≥ "
                    select name="level" {
                        option value="" { "any" }
                        @for l in LEVELS { option value=(l) selected[q.level == l] { (l) } }
                    }
                }
                label { "status "
                    select name="status" {
                        option value="" { "any" }
                        @for x in STATUSES { option value=(x) selected[q.status == x] { (x.replace('_', " ")) } }
                    }
                }
                label { "from " input type="text" name="since" value=(q.since) placeholder="2026-03-01T00:00:00Z"; }
                label { "to " input type="text" name="until" value=(q.until); }
                button type="submit" { "Search" }
            }
            p id="result-count" { (total) " alerts" @if total > 0 { ", page " (page.number) " of " (pages) } }
            (alert_rows(&rows, &back))
            nav.pages {
                @if page.number > 1 { a id="prev" href={"/alerts?" (query_of(&q, page.number - 1))} { "← previous" } }
                @if page.number < pages { a id="next" href={"/alerts?" (query_of(&q, page.number + 1))} { "next →" } }
            }
        },
    )
}

fn fields_table(v: &Value) -> Markup {
    let mut flat = Vec::new();
    flatten("", v, &mut flat);
    html! {
        table.fields {
            @for (k, v) in &flat { tr { th { (k) } td { code { (v) } } } }
        }
    }
}

fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&p, x, out);
            }
        }
        Value::Null => {}
        Value::String(s) => out.push((prefix.to_owned(), s.clone())),
        other => out.push((prefix.to_owned(), other.to_string())),
    }
}

pub async fn alert(State(s): State<Shared>, Query(q): Query<KeyQuery>) -> Response {
    let st = s.store.lock().expect("store lock");
    let a = match st.alert(&q.key) {
        Ok(Some(a)) => a,
        Ok(None) => return (StatusCode::NOT_FOUND, "no such alert\n").into_response(),
        Err(e) => return fail(e),
    };
    let h = st.history(&a.key).unwrap_or_default();
    let back = format!("/alert?key={}", url_encode(&a.key));
    layout(
        &a.rule_title,
        "Alerts",
        html! {
            p { (level_badge(a.level)) " " (a.time) " on " strong { (if a.host.is_empty() { "-" } else { &a.host }) }
                " · account " strong { (if a.account.is_empty() { "-" } else { &a.account }) }
                " · " (status_badge(&a.status)) }
            p.small { "rule " code { (a.rule_id) } " · " (a.source_file) ":" (a.source_record) " · techniques " (a.techniques.join(", ")) }
            (triage_form("alert", &a.key, &a.status, &a.comment, &back))
            h2 { "Event" }
            (fields_table(&a.json["event"]))
            @if !a.json["correlation"].is_null() {
                h2 { "Correlation" }
                (fields_table(&a.json["correlation"]))
            }
            (history(&h))
        },
    )
}

pub async fn incident(State(s): State<Shared>, Query(q): Query<KeyQuery>) -> Response {
    let st = s.store.lock().expect("store lock");
    let i = match st.incident(&q.id) {
        Ok(Some(i)) => i,
        Ok(None) => return (StatusCode::NOT_FOUND, "no such incident\n").into_response(),
        Err(e) => return fail(e),
    };
    let h = st.history(&i.id).unwrap_or_default();
    let back = format!("/incident?id={}", url_encode(&i.id));
    let timeline = i.json["timeline"].as_array().cloned().unwrap_or_default();
    let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
    layout(
        &format!("Incident {}", i.id),
        "Incidents",
        html! {
            p { (level_badge(i.level)) " score " strong { (i.score) } " · " (i.first_seen) " … " (i.last_seen) " · " (status_badge(&i.status)) }
            (triage_form("incident", &i.id, &i.status, &i.comment, &back))
            h2 { "Kill chain" }
            ol.killchain {
                @for t in cellwarden_incident::KILL_CHAIN {
                    li class=[i.tactics.iter().any(|x| x == t).then_some("hit")] { (t) }
                }
            }
            div.two {
                div { h2 { "Hosts" } ul { @for x in &i.hosts { li { a href={"/alerts?host=" (url_encode(x))} { (x) } } } } }
                div { h2 { "Accounts" } ul { @for x in &i.accounts { li { a href={"/alerts?account=" (url_encode(x))} { (x) } } } } }
            }
            h2 { "Timeline" }
            table.list id="timeline" {
                thead { tr { th { "time (UTC)" } th { "level" } th { "rule" } th { "host" } th { "tactics" } } }
                tbody {
                    @for (n, t) in timeline.iter().enumerate() {
                        tr {
                            td { (text(&t["timestamp"])) }
                            td { (level_badge(&text(&t["level"]))) }
                            td {
                                @match i.alert_keys.get(n) {
                                    Some(k) => a href={"/alert?key=" (url_encode(k))} { (text(&t["rule_title"])) },
                                    None => (text(&t["rule_title"])),
                                }
                            }
                            td { (text(&t["host"])) }
                            td { (t["tactics"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
                        }
                    }
                }
            }
            (history(&h))
        },
    )
}

// --- Scope ---------------------------------------------------------------------------------

/// Rule names of a subscriber's reasons (`cellwarden.db.x:file:line`), each once.
fn reasons(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in v.as_array().into_iter().flatten().filter_map(Value::as_str) {
        let name = r
            .split(':')
            .next()
            .unwrap_or("")
            .trim_start_matches("cellwarden.db.");
        if !out.iter().any(|x| x == name) {
            out.push(name.to_owned());
        }
    }
    out
}

pub async fn scope(State(s): State<Shared>, Query(q): Query<KeyQuery>) -> Response {
    let st = s.store.lock().expect("store lock");
    let (run, report) = match st.latest_scope() {
        Ok(Some(x)) => x,
        Ok(None) => {
            return layout(
                "Scope",
                "Scope",
                html! { p { "No scope report in this store yet: run " code { "cellwarden scope LOGS --store " } "." } },
            );
        }
        Err(e) => return fail(e),
    };
    let shown = q.identifiers == "show";
    let v = if shown {
        report
    } else {
        pseudonymised_scope(&s.pseudonymiser, report)
    };
    let text = |x: &Value| match x {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(a) => a
            .iter()
            .map(|y| {
                y.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| y.to_string())
            })
            .collect::<Vec<_>>()
            .join(", "),
        o => o.to_string(),
    };
    let subs = v["subscribers"].as_array().cloned().unwrap_or_default();
    let accounts = v["accounts"].as_array().cloned().unwrap_or_default();
    let exfil = v["exfiltration"].as_array().cloned().unwrap_or_default();
    layout(
        "Subscriber exposure",
        "Scope",
        html! {
            p {
                "Run " (run) ": " strong id="exposed" { (subs.len()) } " subscribers exposed, "
                (accounts.iter().filter(|a| a["suspicious"] == true).count()) " suspicious accounts. "
                @if shown {
                    "Identifiers shown. " a id="toggle-ids" href="/scope" { "Pseudonymise" }
                } @else {
                    "Identifiers pseudonymised (keyed hash, labels hidden). " a id="toggle-ids" href="/scope?identifiers=show" { "Show identifiers" }
                }
            }
            h2 { "Subscribers" }
            table.list id="subscribers" {
                thead { tr { th { "subscriber" } th { "kind" } th { "record types" } th { "accounts" } th { "from" } th { "first … last access" } th { "why" } th { "evidence" } } }
                tbody {
                    @for x in &subs {
                        tr {
                            td {
                                code { (text(&x["id"])) }
                                @if let Some(l) = x["label"].as_str() { " " span.label { (l) } }
                                @for i in x["identifiers"].as_array().into_iter().flatten().filter(|i| i["id"] != x["id"]) {
                                    br; span.small { (text(&i["kind"])) " " code { (text(&i["id"])) } @if i["read"] == false { " (linked, not read)" } }
                                }
                            }
                            td { (text(&x["id_kind"])) }
                            td { (text(&x["record_types"])) }
                            td { (text(&x["accounts"])) }
                            td { (text(&x["client_hosts"])) }
                            td { (text(&x["first_access"])) " … " (text(&x["last_access"])) }
                            td { @for r in reasons(&x["reasons"]) { div { (r) } } }
                            td.small {
                                @for e in x["evidence"].as_array().into_iter().flatten().take(5) {
                                    div { (text(&e["file"])) ":" (text(&e["line"])) " " (text(&e["time"])) " " (text(&e["account"])) }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Accounts" }
            table.list id="accounts" {
                thead { tr { th { "account" } th { "suspicious" } th { "subscribers" } th { "client hosts" } th { "programs" } th { "reasons (observed / expected)" } } }
                tbody {
                    @for a in &accounts {
                        tr {
                            td { (text(&a["account"])) }
                            td { (if a["suspicious"] == true { "yes" } else { "no" }) }
                            td { (text(&a["subscribers"])) }
                            td { (text(&a["client_hosts"])) }
                            td { (text(&a["programs"])) }
                            td.small { @for r in a["reasons"].as_array().into_iter().flatten() {
                                div { strong { (text(&r["title"])) } ": " (text(&r["observed"])) " / " (text(&r["expected"])) }
                            } }
                        }
                    }
                }
            }
            h2 { "Where the data may have gone" }
            @if exfil.is_empty() { p { "No flow logs joined (give Zeek or nfdump flows to scope)." } }
            @else {
                table.list id="exfiltration" {
                    thead { tr { th { "account" } th { "from" } th { "to" } th { "ports" } th { "day" } th { "bytes out" } th { "flows" } } }
                    tbody { @for e in &exfil { tr {
                        td { (text(&e["account"])) } td { (text(&e["src_ip"])) } td { (text(&e["dst_ip"])) }
                        td { (text(&e["dst_ports"])) } td { (text(&e["day"])) } td { (text(&e["bytes_out"])) } td { (text(&e["flows"])) }
                    } } }
                }
            }
        },
    )
}

// --- Triage (form posts) -------------------------------------------------------------------

#[derive(Deserialize)]
pub struct TriageForm {
    kind: String,
    key: String,
    status: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    back: String,
}

pub async fn triage(State(s): State<Shared>, Form(f): Form<TriageForm>) -> Response {
    let mut st = s.store.lock().expect("store lock");
    match st.set_status(&f.kind, &f.key, &f.status, &f.comment) {
        Ok(true) => Redirect::to(&crate::query::local_path(&f.back)).into_response(),
        Ok(false) => (StatusCode::NOT_FOUND, "no such alert or incident\n").into_response(),
        Err(cellwarden_store::StoreError::Invalid(m)) => {
            (StatusCode::BAD_REQUEST, format!("{m}\n")).into_response()
        }
        Err(e) => fail(e),
    }
}
