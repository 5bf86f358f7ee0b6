//! What every request passes before a handler sees it:
//!
//! - its `Host` must be one the server was started for, so a page whose DNS name is rebound to
//!   127.0.0.1 cannot read the dashboard (421 otherwise);
//! - a request that changes anything (any method but GET/HEAD/OPTIONS) must come from a page
//!   of this server: `Sec-Fetch-Site`, `Origin` and `Referer`, when the client sends them, must
//!   name this origin, so another site's form cannot change triage (403 otherwise);
//! - the token, when one is set: from an `Authorization: Bearer` header, the `cw_token`
//!   cookie, or a `?token=` query (which sets the cookie and redirects to the same page without
//!   it, so it leaves the address bar).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::state::Shared;

/// Compares in time that depends on the lengths only, not on where the bytes differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn presented(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(v.trim().to_owned());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("cw_token=").map(str::to_owned))
}

fn query_token(q: &str) -> Option<(String, String)> {
    let mut token = None;
    let mut rest = Vec::new();
    for part in q.split('&') {
        match part.strip_prefix("token=") {
            Some(t) => token = Some(crate::query::url_decode(t)),
            None if !part.is_empty() => rest.push(part),
            None => {}
        }
    }
    token.map(|t| (t, rest.join("&")))
}

/// The host name of a `Host` header or URL authority: without port, brackets or a final dot,
/// lowercase.
fn host_name(authority: &str) -> String {
    let a = authority.trim();
    let name = if let Some(rest) = a.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else if a.matches(':').count() > 1 {
        a
    } else {
        a.split(':').next().unwrap_or("")
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The authority (`host[:port]`) of an `Origin` or `Referer` value.
fn authority_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    Some(rest.split(['/', '?', '#']).next().unwrap_or(rest))
}

/// Why a request is refused before its handler, if it is.
fn refused(state: &Shared, req: &Request) -> Option<Response> {
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("");
    if let Some(allowed) = &state.hosts
        && !allowed.contains(&host_name(host))
    {
        return Some(
            (
                StatusCode::MISDIRECTED_REQUEST,
                "unexpected Host: start serve with --host-name NAME to be reached by that name\n",
            )
                .into_response(),
        );
    }
    let safe = matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    if !safe {
        let get = |h| headers.get(h).and_then(|v: &HeaderValue| v.to_str().ok());
        let cross_fetch = get("sec-fetch-site").is_some_and(|s| s != "same-origin" && s != "none");
        let foreign = |url: Option<&str>| {
            url.is_some_and(|u| authority_of(u).is_none_or(|a| !a.eq_ignore_ascii_case(host)))
        };
        if cross_fetch || foreign(get("origin")) || foreign(get("referer")) {
            return Some(
                (
                    StatusCode::FORBIDDEN,
                    "refused: the request comes from another site\n",
                )
                    .into_response(),
            );
        }
    }
    None
}

/// Security headers on every response; the host and origin checks; the token check when one
/// is set.
pub async fn check(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let mut resp = if let Some(r) = refused(&state, &req) {
        r
    } else {
        match &state.token {
            None => next.run(req).await,
            Some(want) => {
                let ok = presented(req.headers())
                    .is_some_and(|t| constant_time_eq(t.as_bytes(), want.as_bytes()));
                if ok {
                    next.run(req).await
                } else if let Some((t, rest)) = req.uri().query().and_then(query_token) {
                    if constant_time_eq(t.as_bytes(), want.as_bytes()) {
                        let path = req.uri().path();
                        let to = crate::query::local_path(&if rest.is_empty() {
                            path.to_owned()
                        } else {
                            format!("{path}?{rest}")
                        });
                        let mut r =
                            (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
                        if let Ok(v) = HeaderValue::from_str(&format!(
                            "cw_token={t}; HttpOnly; SameSite=Strict; Path=/"
                        )) {
                            r.headers_mut().insert(header::SET_COOKIE, v);
                        }
                        r
                    } else {
                        (StatusCode::UNAUTHORIZED, "token required\n").into_response()
                    }
                } else {
                    (StatusCode::UNAUTHORIZED, "token required\n").into_response()
                }
            }
        }
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Nothing leaves for other sites; this site's own requests keep their Origin (under
    // `no-referrer` a browser sends `Origin: null` even to the same origin).
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cret", b"s3cre"));
        assert_eq!(
            query_token("a=1&token=x%20y&b=2"),
            Some(("x y".to_owned(), "a=1&b=2".to_owned()))
        );
    }
}
