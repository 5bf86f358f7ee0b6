//! Fuzzing what the dashboard reads from requests: paths, query strings (alert search, keys,
//! ids, pages), form bodies (triage) and the headers the guard checks, against a store with
//! alerts. No panic, no server error (5xx), no redirect off the server, every answer in time.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use cellwarden_event::{Alert, Event, Level, Origin, RuleInfo, Value};
use cellwarden_testkit::fuzz::{self, Target};
use tower::ServiceExt;

fn store(dir: &std::path::Path) -> cellwarden_store::Store {
    let mut s = cellwarden_store::Store::open(&dir.join("case.db")).unwrap();
    let rule = Arc::new(RuleInfo {
        id: "r1".into(),
        title: "LSASS <b>dump</b>".into(),
        tags: vec!["attack.t1003.001".into()],
        techniques: vec!["T1003.001".into()],
        tactics: vec!["credential-access".into()],
        ..Default::default()
    });
    let alerts: Vec<Alert> = (0..20u64)
        .map(|i| {
            let mut e = Event::new(Origin {
                file: Arc::from("s.evtx"),
                record: i,
            });
            e.timestamp = cellwarden_event::parse_timestamp(&format!("2026-03-04T10:{i:02}:00Z"));
            e.host = Some(format!("host-{}", i % 3).into());
            e.push("User", Value::Str(format!("CORP\\u{i}").into()));
            Alert {
                rule: Arc::clone(&rule),
                level: Level::High,
                event: e,
                correlation: None,
            }
        })
        .collect();
    s.record_hunt(&Default::default(), &alerts, &[], &[])
        .unwrap();
    s
}

#[test]
fn fuzz_requests() {
    let dir = tempfile::tempdir().unwrap();
    let app = cellwarden_web::app(store(dir.path()), None, Some(vec!["127.0.0.1".into()])).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let seeds: Vec<Vec<u8>> = [
        "GET /alerts?rule=LSASS&level=high&page=2&page_size=5",
        "GET /api/alerts?technique=T1003&host=host-1&since=2026-03-04T10:00:00Z&until=2026-03-05",
        "GET /alert?key=r1%3As.evtx%3A3",
        "GET /api/alert?key=r1:s.evtx:3",
        "GET /incidents",
        "GET /incident?id=x",
        "GET /scope?identifiers=show",
        "GET /api/scope",
        "GET /api/attack",
        "GET /",
        "POST /triage\nkind=alert&key=r1%3As.evtx%3A3&status=confirmed&comment=x&back=%2Falerts%3Fpage%3D2",
        "POST /api/triage\n{\"kind\":\"alert\",\"key\":\"r1:s.evtx:3\",\"status\":\"false_positive\",\"comment\":\"y\"}",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    let report = fuzz::run(
        Target {
            name: "web",
            seeds,
            tokens: &[
                b"%",
                b"%00",
                b"%ff",
                b"%2F%2F",
                b"/\\",
                b"&",
                b"=",
                b"?",
                b"+",
                b"page=",
                b"page_size=",
                b"-1",
                b"99999999999999999999",
                b"'",
                b"\"",
                b"<script>",
                b"../",
                b"\xc3\xa9",
            ],
            max_time: Duration::from_secs(2),
            max_len: 16 * 1024,
            regressions: Some(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions/web"),
            ),
        },
        |input| {
            let text = String::from_utf8_lossy(input);
            let (head, body) = text.split_once('\n').unwrap_or((&text, ""));
            let (method, target) = head.split_once(' ').unwrap_or(("GET", head));
            let method = if method == "POST" { "POST" } else { "GET" };
            let Ok(req) = Request::builder()
                .method(method)
                .uri(target)
                .header(header::HOST, "127.0.0.1")
                .header(
                    header::CONTENT_TYPE,
                    if target.starts_with("/api/") {
                        "application/json"
                    } else {
                        "application/x-www-form-urlencoded"
                    },
                )
                .body(Body::from(body.to_owned()))
            else {
                return; // Not a request a client could send.
            };
            let resp = rt.block_on(app.clone().oneshot(req)).unwrap();
            assert!(
                !resp.status().is_server_error(),
                "{} for {head}",
                resp.status()
            );
            if resp.status() == StatusCode::SEE_OTHER
                && let Some(to) = resp.headers().get(header::LOCATION)
            {
                let to = to.to_str().unwrap_or("");
                assert!(
                    to.starts_with('/') && !to.starts_with("//") && !to.contains('\\'),
                    "redirect off the server: {to}"
                );
            }
        },
    );
    fuzz::say("web", report);
}
