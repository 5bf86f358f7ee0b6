//! What every page shares: the frame with its navigation, level and status badges, the
//! triage form and the triage history. Every value goes through maud's escaping.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use cellwarden_store::STATUSES;
use maud::{DOCTYPE, Markup, html};

pub(crate) fn layout(title: &str, active: &str, body: Markup) -> Response {
    let nav = [
        ("/", "Overview"),
        ("/campaigns", "Campaigns"),
        ("/incidents", "Incidents"),
        ("/alerts", "Alerts"),
        ("/scope", "Scope"),
    ];
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "cellwarden — " (title) }
                link rel="stylesheet" href="/static/app.css";
                script src="/static/app.js" defer {}
            }
            body {
                header {
                    span.brand { "cellwarden" }
                    nav {
                        @for (href, name) in nav {
                            a href=(href) class=[(name == active).then_some("active")] { (name) }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page.into_string(),
    )
        .into_response()
}

pub(crate) fn level_badge(level: &str) -> Markup {
    html! { span class={"level " (level)} { (level) } }
}

pub(crate) fn status_badge(status: &str) -> Markup {
    html! { span class={"status " (status)} data-status=(status) { (status.replace('_', " ")) } }
}

/// The triage form: status and comment, posted to `/triage`, back to `back`.
pub(crate) fn triage_form(
    kind: &str,
    key: &str,
    status: &str,
    comment: &str,
    back: &str,
) -> Markup {
    html! {
        form.triage method="post" action="/triage" {
            input type="hidden" name="kind" value=(kind);
            input type="hidden" name="key" value=(key);
            input type="hidden" name="back" value=(back);
            select name="status" aria-label="status" {
                @for s in STATUSES {
                    option value=(s) selected[s == status] { (s.replace('_', " ")) }
                }
            }
            input type="text" name="comment" value=(comment) placeholder="comment" aria-label="comment";
            button type="submit" { "Save" }
        }
    }
}

pub(crate) fn history(h: &[(String, String, String)]) -> Markup {
    html! {
        @if !h.is_empty() {
            h2 { "Triage history" }
            table.list id="history" {
                thead { tr { th { "time" } th { "status" } th { "comment" } } }
                tbody { @for (at, s, c) in h { tr { td { (at) } td { (status_badge(s)) } td { (c) } } } }
            }
        }
    }
}
