//! `/api/...`: the JSON behind the pages (documented in docs/serve.md).

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cellwarden_store::{AlertRow, IncidentRow};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::query::{KeyQuery, Search, filter_of, page_of};
use crate::respond::{fail, pseudonymised_scope};
use crate::state::Shared;

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"error": "not found"}))).into_response()
}

pub(crate) fn alert_json(a: &AlertRow) -> Value {
    json!({
        "key": a.key, "time": a.time, "level": a.level, "rule_id": a.rule_id,
        "rule_title": a.rule_title, "host": a.host, "account": a.account,
        "techniques": a.techniques, "tactics": a.tactics, "source_file": a.source_file,
        "source_record": a.source_record, "status": a.status, "comment": a.comment,
    })
}

fn incident_json(i: &IncidentRow) -> Value {
    json!({
        "id": i.id, "score": i.score, "level": i.level, "first_seen": i.first_seen,
        "last_seen": i.last_seen, "hosts": i.hosts, "accounts": i.accounts, "tactics": i.tactics,
        "alert_count": i.alert_count, "status": i.status, "comment": i.comment,
    })
}

pub async fn summary(State(s): State<Shared>) -> Response {
    let st = s.store.lock().expect("store lock");
    match st.summary() {
        Ok(x) => Json(json!({
            "runs": x.runs, "alerts": x.alerts, "incidents": x.incidents,
            "campaigns": x.campaigns, "scopes": x.scopes,
            "by_level": cellwarden_store::LEVELS.iter().zip(x.by_level).map(|(l, n)| (l.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "by_status": cellwarden_store::STATUSES.iter().zip(x.by_status).map(|(l, n)| (l.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "first": x.first, "last": x.last,
        }))
        .into_response(),
        Err(e) => fail(e),
    }
}

pub async fn alerts(State(s): State<Shared>, Query(q): Query<Search>) -> Response {
    let st = s.store.lock().expect("store lock");
    match st.alerts(&filter_of(&q), page_of(&q)) {
        Ok((rows, total)) => Json(json!({
            "total": total,
            "page": page_of(&q).number,
            "page_size": page_of(&q).size,
            "alerts": rows.iter().map(alert_json).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(e) => fail(e),
    }
}

pub async fn alert(State(s): State<Shared>, Query(q): Query<KeyQuery>) -> Response {
    let st = s.store.lock().expect("store lock");
    match st.alert(&q.key) {
        Ok(Some(a)) => {
            let mut v = alert_json(&a);
            v["alert"] = a.json.clone();
            v["history"] = json!(st.history(&a.key).unwrap_or_default());
            Json(v).into_response()
        }
        Ok(None) => not_found(),
        Err(e) => fail(e),
    }
}

pub async fn incidents(State(s): State<Shared>) -> Response {
    let st = s.store.lock().expect("store lock");
    match st.incidents() {
        Ok(rows) => Json(json!({"incidents": rows.iter().map(incident_json).collect::<Vec<_>>()}))
            .into_response(),
        Err(e) => fail(e),
    }
}

pub async fn incident(State(s): State<Shared>, Query(q): Query<KeyQuery>) -> Response {
    let st = s.store.lock().expect("store lock");
    group(st.incident(&q.id), &st, &["timeline"])
}

/// Campaigns as `hunt --campaigns` writes them (without their timelines), with triage state.
pub async fn campaigns(State(s): State<Shared>) -> Response {
    let st = s.store.lock().expect("store lock");
    match st.campaigns() {
        Ok(rows) => Json(json!({"campaigns": rows.iter().map(|c| {
            let mut v = c.json.clone();
            if let Some(m) = v.as_object_mut() {
                m.remove("timeline");
            }
            v["status"] = json!(c.status);
            v["comment"] = json!(c.comment);
            v
        }).collect::<Vec<_>>()}))
        .into_response(),
        Err(e) => fail(e),
    }
}

pub async fn campaign(State(s): State<Shared>, Query(q): Query<KeyQuery>) -> Response {
    let st = s.store.lock().expect("store lock");
    group(
        st.campaign(&q.id),
        &st,
        &[
            "summary",
            "entry",
            "kill_chain",
            "moves",
            "exfiltration",
            "data",
            "timeline",
        ],
    )
}

/// An incident or campaign: its row, the named parts of its JSON, its alerts' keys and its
/// triage history.
fn group(
    row: cellwarden_store::Result<Option<IncidentRow>>,
    st: &cellwarden_store::Store,
    parts: &[&str],
) -> Response {
    match row {
        Ok(Some(i)) => {
            let mut v = incident_json(&i);
            for p in parts {
                v[*p] = i.json[*p].clone();
            }
            v["alert_keys"] = json!(i.alert_keys);
            v["history"] = json!(st.history(&i.id).unwrap_or_default());
            Json(v).into_response()
        }
        Ok(None) => not_found(),
        Err(e) => fail(e),
    }
}

pub async fn scope(State(s): State<Shared>, Query(q): Query<KeyQuery>) -> Response {
    let st = s.store.lock().expect("store lock");
    match st.latest_scope() {
        Ok(Some((run, v))) => {
            let v = if q.identifiers == "show" {
                v
            } else {
                pseudonymised_scope(&s.pseudonymiser, v)
            };
            Json(json!({"run": run, "report": v})).into_response()
        }
        Ok(None) => not_found(),
        Err(e) => fail(e),
    }
}

pub async fn runs(State(s): State<Shared>) -> Response {
    let st = s.store.lock().expect("store lock");
    match st.runs() {
        Ok(r) => Json(json!({"runs": r})).into_response(),
        Err(e) => fail(e),
    }
}

pub async fn attack(State(s): State<Shared>) -> Response {
    let st = s.store.lock().expect("store lock");
    match (st.techniques(), st.alerts_per_hour()) {
        (Ok(t), Ok(h)) => Json(json!({
            "techniques": t.iter().map(|(ta, te, n)| json!({"tactic": ta, "technique": te, "alerts": n})).collect::<Vec<_>>(),
            "alerts_per_hour": h.iter().map(|(hour, n)| json!({"hour": hour, "alerts": n})).collect::<Vec<_>>(),
        }))
        .into_response(),
        (Err(e), _) | (_, Err(e)) => fail(e),
    }
}

#[derive(Deserialize)]
pub struct TriageBody {
    /// `alert`, `incident` or `campaign`.
    pub kind: String,
    /// Alert key, incident or campaign id.
    pub key: String,
    pub status: String,
    #[serde(default)]
    pub comment: String,
}

pub async fn triage(State(s): State<Shared>, Json(b): Json<TriageBody>) -> Response {
    let mut st = s.store.lock().expect("store lock");
    match st.set_status(&b.kind, &b.key, &b.status, &b.comment) {
        Ok(true) => Json(json!({"ok": true})).into_response(),
        Ok(false) => not_found(),
        Err(cellwarden_store::StoreError::Invalid(m)) => {
            (StatusCode::BAD_REQUEST, Json(json!({"error": m}))).into_response()
        }
        Err(e) => fail(e),
    }
}
