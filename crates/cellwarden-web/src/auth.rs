//! The token check: on every request when a token is set. Accepted from an
//! `Authorization: Bearer` header, the `cw_token` cookie, or a `?token=` query (which sets the
//! cookie and redirects to the same page without it, so it leaves the address bar).

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

/// Security headers on every response; the token check when one is set.
pub async fn check(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let mut resp = match &state.token {
        None => next.run(req).await,
        Some(want) => {
            let ok = presented(req.headers())
                .is_some_and(|t| constant_time_eq(t.as_bytes(), want.as_bytes()));
            if ok {
                next.run(req).await
            } else if let Some((t, rest)) = req.uri().query().and_then(query_token) {
                if constant_time_eq(t.as_bytes(), want.as_bytes()) {
                    let path = req.uri().path();
                    let to = if rest.is_empty() {
                        path.to_owned()
                    } else {
                        format!("{path}?{rest}")
                    };
                    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
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
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
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
