//! What requests ask for: the alert search and its paging, `?key=`/`?id=` lookups, and the
//! query-string encoding both the pages and the API use.

use cellwarden_store::{AlertFilter, Page};
use serde::Deserialize;

/// Alerts on a page unless the request asks for another size.
pub const PAGE_SIZE: u64 = 50;

/// Query-string encoding of a value (RFC 3986 unreserved kept).
pub fn url_encode(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// Decodes a query-string value (`%XX` and `+`).
pub fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut o = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or(""), 16) {
                    Ok(x) => {
                        o.push(x);
                        i += 3;
                        continue;
                    }
                    Err(_) => o.push(b'%'),
                }
            }
            b'+' => o.push(b' '),
            c => o.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&o).into_owned()
}

/// `path` when it is a path of this server (`/…`, nothing a browser would read as another
/// host: `//`, `/\\`, a backslash anywhere; and only visible ASCII, as a `Location` header
/// holds it), else `/`.
pub fn local_path(path: &str) -> String {
    let ours = path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && path.bytes().all(|b| b.is_ascii_graphic());
    if ours {
        path.to_owned()
    } else {
        "/".to_owned()
    }
}

/// The alert search: every field optional.
#[derive(Debug, Default, Deserialize)]
pub struct Search {
    #[serde(default)]
    pub rule: String,
    #[serde(default)]
    pub technique: String,
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub account: String,
    #[serde(default)]
    pub level: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub since: String,
    #[serde(default)]
    pub until: String,
    #[serde(default)]
    pub page: Option<u64>,
    #[serde(default)]
    pub page_size: Option<u64>,
}

/// The store filter of a search.
pub fn filter_of(q: &Search) -> AlertFilter {
    let some = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
    AlertFilter {
        rule: some(&q.rule),
        technique: some(&q.technique),
        host: some(&q.host),
        account: some(&q.account),
        level: some(&q.level),
        status: some(&q.status),
        since: some(&q.since),
        until: some(&q.until),
    }
}

/// The page a search asks for (size clamped to 1..=500).
pub fn page_of(q: &Search) -> Page {
    Page {
        number: q.page.unwrap_or(1).max(1),
        size: q.page_size.unwrap_or(PAGE_SIZE).clamp(1, 500),
    }
}

/// The query string of a search at `page` (for links).
pub fn query_of(q: &Search, page: u64) -> String {
    let mut parts = Vec::new();
    for (k, v) in [
        ("rule", &q.rule),
        ("technique", &q.technique),
        ("host", &q.host),
        ("account", &q.account),
        ("level", &q.level),
        ("status", &q.status),
        ("since", &q.since),
        ("until", &q.until),
    ] {
        if !v.is_empty() {
            parts.push(format!("{k}={}", url_encode(v)));
        }
    }
    parts.push(format!("page={page}"));
    parts.join("&")
}

/// `?key=` (alert), `?id=` (incident), `?identifiers=show` (scope).
#[derive(Deserialize)]
pub struct KeyQuery {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub identifiers: String,
}
