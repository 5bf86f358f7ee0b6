//! Responses shared by the pages and the API: server errors, and the scope report with
//! pseudonymised identifiers.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// A server error with its message.
pub fn fail(e: impl std::fmt::Display) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response()
}

/// The scope report with subscriber identifiers replaced by keyed pseudonyms, labels dropped.
pub fn pseudonymised_scope(p: &cellwarden_report::Pseudonymiser, mut v: Value) -> Value {
    if let Some(subs) = v["subscribers"].as_array_mut() {
        for s in subs {
            let kind = s["id_kind"].as_str().unwrap_or("any").to_owned();
            if let Some(id) = s["id"].as_str() {
                s["id"] = Value::String(p.pseudonym(&kind, id));
            }
            if let Some(person) = s["person"].as_str() {
                s["person"] = Value::String(p.pseudonym("person", person));
            }
            for i in s["identifiers"].as_array_mut().into_iter().flatten() {
                let kind = i["kind"].as_str().unwrap_or("any").to_owned();
                if let Some(id) = i["id"].as_str() {
                    i["id"] = Value::String(p.pseudonym(&kind, id));
                }
            }
            if let Some(o) = s.as_object_mut() {
                o.remove("label");
            }
        }
    }
    if let Some(pl) = v["prefix_lookups"].as_array_mut() {
        for x in pl {
            let kind = format!("{}-prefix", x["id_kind"].as_str().unwrap_or("any"));
            if let Some(id) = x["prefix"].as_str() {
                x["prefix"] = Value::String(p.pseudonym(&kind, id));
            }
        }
    }
    v["summary"]["pseudonymised"] = Value::Bool(true);
    v
}
