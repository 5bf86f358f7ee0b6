//! The case store and the dashboard end to end: `hunt --store` and `scope --store` over the
//! simulated operator plus events carrying script payloads, `serve` on 127.0.0.1, and Debian's
//! headless Chromium driven through ChromeDriver: counts, search, triage that survives a
//! reload, and no payload running on any page. Skips when chromium/chromedriver are absent
//! (`.ci/run` installs them).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use fantoccini::{ClientBuilder, Locator};
use serde_json::Value;

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for(port: u16) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "nothing listens on 127.0.0.1:{port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A GET on 127.0.0.1: (status, body).
fn http_get(port: u16, path: &str, headers: &str) -> (u16, String) {
    let (status, _, body) = http(port, "GET", path, "127.0.0.1", headers, "");
    (status, body)
}

/// A request on 127.0.0.1 with the given Host: (status, Location, body).
fn http(
    port: u16,
    method: &str,
    path: &str,
    host: &str,
    headers: &str,
    body: &str,
) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let length = if body.is_empty() {
        String::new()
    } else {
        format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        )
    };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{length}{headers}\r\n{body}"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let location = head
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("location"))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_default();
    (status, location, body.to_owned())
}

const PAYLOAD_TITLE: &str = "pwned";

/// Sysmon process creations a built-in rule fires on, every field a payload.
fn xss_events() -> String {
    let payloads = [
        "<script>document.title='pwned'</script>",
        "\"><img src=x onerror=\"document.title='pwned'\">",
        "javascript:document.title='pwned'",
        "'><svg onload=document.title='pwned'>",
    ];
    let mut out = String::new();
    for (i, p) in payloads.iter().enumerate() {
        let ev = serde_json::json!({"Event": {
            "System": {
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
                "EventID": 1,
                "TimeCreated": {"#attributes": {"SystemTime": format!("2026-03-02T10:0{i}:00Z")}},
                "EventRecordID": 90 + i,
                "Channel": "Microsoft-Windows-Sysmon/Operational",
                "Computer": format!("web{p}"),
            },
            "EventData": {
                "Image": "C:\\Windows\\System32\\cmd.exe",
                "ParentImage": "C:\\Windows\\System32\\inetsrv\\w3wp.exe",
                "CommandLine": format!("cmd /c echo {p} \u{1b}[31mred\u{1b}[0m"),
                "User": format!("CORP\\{p}"),
            }
        }});
        out.push_str(&ev.to_string());
        out.push('\n');
    }
    out
}

/// A MySQL audit record of an account named with a payload reading a watchlisted person.
fn xss_db_record(msisdn: &str) -> String {
    serde_json::json!({
        "timestamp": "2026-03-02 11:00:00", "id": 1, "class": "general", "event": "status",
        "connection_id": 5,
        "account": {"user": "<img src=x onerror=document.title='pwned'>", "host": "10.9.9.9"},
        "login": {"user": "<img src=x onerror=document.title='pwned'>", "os": "", "ip": "10.9.9.9", "proxy": ""},
        "general_data": {"command": "Query", "sql_command": "select",
            "query": format!("SELECT * FROM customer WHERE msisdn = '{msisdn}'"), "status": 0}
    })
    .to_string()
        + "\n"
}

/// Simulated operator + payload events, hunted and scoped into `case.db`.
fn filled_store(dir: &Path) -> PathBuf {
    let sim = dir.join("op");
    let out = run(&[
        "simulate",
        "--out",
        sim.to_str().unwrap(),
        "--seed",
        "3",
        "--subscribers",
        "5000",
        "--scenario",
        "softcell",
        "--scenario",
        "insider",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    std::fs::create_dir_all(sim.join("xss")).unwrap();
    std::fs::write(sim.join("xss/events.jsonl"), xss_events()).unwrap();
    let watch = std::fs::read_to_string(sim.join("watchlist.txt")).unwrap();
    let msisdn = watch
        .lines()
        .find_map(|l| l.strip_prefix('+'))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    std::fs::write(sim.join("db/xss-audit.log"), xss_db_record(&msisdn)).unwrap();
    let store = dir.join("case.db");
    let p = |f: &str| sim.join(f).to_str().unwrap().to_owned();
    for args in [
        vec![
            "hunt",
            sim.to_str().unwrap(),
            "--assets",
            &p("assets.toml"),
            "--watchlist",
            &p("watchlist.txt"),
            "--store",
            store.to_str().unwrap(),
            "-o",
            dir.join("alerts.txt").to_str().unwrap(),
        ],
        vec![
            "scope",
            &p("db"),
            &p("network"),
            "--watchlist",
            &p("watchlist.txt"),
            "--store",
            store.to_str().unwrap(),
            "-o",
            dir.join("scope.json").to_str().unwrap(),
        ],
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(stderr(&out).contains("store: run"), "{}", stderr(&out));
    }
    store
}

fn serve(store: &Path, extra: &[&str]) -> (Kill, u16) {
    let port = free_port();
    let child = bin()
        .args(["serve", "--store", store.to_str().unwrap(), "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let k = Kill(child);
    wait_for(port);
    (k, port)
}

#[test]
fn store_is_idempotent_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let store = filled_store(dir.path());
    // The same hunt again, given by a relative path: no new alert.
    let out = bin()
        .current_dir(dir.path())
        .args(["hunt", "op", "--store", "case.db", "-o", "again.txt"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(err.contains("(0 new)"), "{err}");
    let jsonl = run(&["export", "--store", store.to_str().unwrap()]);
    let lines = stdout(&jsonl);
    let records: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let keys: std::collections::BTreeSet<&str> =
        records.iter().filter_map(|r| r["key"].as_str()).collect();
    let alert_count = records.iter().filter(|r| r["key"].is_string()).count();
    assert_eq!(keys.len(), alert_count, "one row per alert key");
    assert!(records.iter().any(|r| r["record"] == "scope"));
    let ecs = run(&[
        "export",
        "--store",
        store.to_str().unwrap(),
        "--format",
        "ecs",
    ]);
    let first: Value = serde_json::from_str(stdout(&ecs).lines().next().unwrap()).unwrap();
    assert_eq!(first["event"]["kind"], "alert");
    assert!(first["@timestamp"].is_string() && first["rule"]["name"].is_string());
    let bad = run(&[
        "export",
        "--store",
        store.to_str().unwrap(),
        "--format",
        "xml",
    ]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn serve_needs_a_token_off_loopback_and_checks_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = filled_store(dir.path());
    let out = run(&[
        "serve",
        "--store",
        store.to_str().unwrap(),
        "--listen",
        "0.0.0.0:0",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--token-file"), "{}", stderr(&out));
    let token = dir.path().join("token");
    std::fs::write(&token, "0123456789abcdef-secret\n").unwrap();
    let (_k, port) = serve(&store, &["--token-file", token.to_str().unwrap()]);
    assert_eq!(http_get(port, "/api/summary", "").0, 401);
    assert_eq!(
        http_get(
            port,
            "/api/summary",
            "Authorization: Bearer wrong-token-000000\r\n"
        )
        .0,
        401
    );
    let (status, body) = http_get(
        port,
        "/api/summary",
        "Authorization: Bearer 0123456789abcdef-secret\r\n",
    );
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["alerts"].as_u64().unwrap() > 0);
    // The token in the query sets a cookie and leaves the address.
    let (status, _) = http_get(port, "/alerts?token=0123456789abcdef-secret&level=high", "");
    assert_eq!(status, 303);
    assert_eq!(
        http_get(port, "/", "Cookie: cw_token=0123456789abcdef-secret\r\n").0,
        200
    );
}

#[test]
fn dashboard_in_a_real_browser() {
    const ENABLE: &str = "apt-get install chromium chromium-driver";
    let (Some(driver), Some(chrome)) = (
        cellwarden_testkit::tool(
            "chromedriver",
            &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
            ENABLE,
        ),
        cellwarden_testkit::tool(
            "chromium",
            &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
            ENABLE,
        ),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = filled_store(dir.path());
    let (_server, port) = serve(&store, &[]);
    let dport = free_port();
    let _driver = Kill(
        Command::new(driver)
            .arg(format!("--port={dport}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(dport);
    let profile = dir.path().join("profile");
    let base = format!("http://127.0.0.1:{port}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chrome,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--no-first-run", "--disable-background-networking", "--disable-component-update",
                         "--disable-sync", "--disable-quic", "--window-size=1400,1000",
                         format!("--user-data-dir={}", profile.display())],
            }),
        );
        let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{dport}"))
            .await
            .expect("a ChromeDriver session");
        let json_of = |path: String| {
            let c = c.clone();
            async move {
                c.goto(&path).await.unwrap();
                let text = c.find(Locator::Css("body")).await.unwrap().text().await.unwrap();
                serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
            }
        };
        let text_of = |css: &'static str| {
            let c = c.clone();
            async move { c.find(Locator::Css(css)).await.unwrap().text().await.unwrap() }
        };

        // Overview counts are the store's.
        let sum = json_of(format!("{base}/api/summary")).await;
        c.goto(&format!("{base}/")).await.unwrap();
        assert_eq!(text_of("#count-alerts").await, sum["alerts"].to_string());
        assert_eq!(text_of("#count-high").await, sum["by_level"]["high"].to_string());
        assert_eq!(text_of("#count-incidents").await, sum["incidents"].to_string());
        assert!(c.find(Locator::Css("svg.chart rect")).await.is_ok(), "timeline drawn");
        assert!(c.find(Locator::Css(".matrix .technique")).await.is_ok(), "ATT&CK matrix drawn");
        // Campaigns first: their table comes before the charts and the incidents.
        assert_eq!(text_of("#count-campaigns").await, sum["campaigns"].to_string());
        let first = c
            .execute(
                "return document.querySelector('#campaigns').compareDocumentPosition(document.querySelector('#incidents')) & 4",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(first, serde_json::json!(4), "campaigns listed before incidents");

        // The intrusion's campaign: its graph drawn on the server with every host, account
        // and outside peer, its moves as arrows, the exfiltration destination, the kill chain.
        let campaigns = json_of(format!("{base}/api/campaigns")).await;
        let list = campaigns["campaigns"].as_array().unwrap();
        let intrusion = list
            .iter()
            .find(|x| x["exfiltration"].as_array().is_some_and(|e| !e.is_empty()))
            .expect("the intrusion's campaign");
        c.goto(&format!("{base}/campaign?id={}", urlencode(intrusion["id"].as_str().unwrap()))).await.unwrap();
        let nodes = c.find_all(Locator::Css("svg#campaign-graph g.node")).await.unwrap();
        let hosts = intrusion["hosts"].as_array().unwrap().len();
        let accounts = intrusion["accounts"].as_array().unwrap().len();
        assert!(nodes.len() > hosts + accounts, "{} nodes for {hosts} hosts and {accounts} accounts", nodes.len());
        let mut names = Vec::new();
        for n in &nodes {
            names.push(n.attr("data-id").await.unwrap().unwrap_or_default());
        }
        assert!(names.contains(&"outside:203.0.113.66".to_owned()), "{names:?}");
        assert!(names.contains(&"host:jump-01".to_owned()), "{names:?}");
        let arrows = c.find_all(Locator::Css("svg#campaign-graph path.move")).await.unwrap();
        assert!(arrows.len() >= 2, "moves drawn");
        assert!(c.find(Locator::Css("svg#campaign-graph path.move.transfer")).await.is_ok());
        let chain = text_of("#killchain").await.to_lowercase();
        assert!(chain.starts_with("execution") || chain.starts_with("persistence"), "{chain}");
        assert!(chain.contains("exfiltration"), "{chain}");
        assert!(text_of("#data").await.contains("subscriber(s)"));
        let rows = c.find_all(Locator::Css("#timeline tbody tr")).await.unwrap();
        assert_eq!(rows.len() as u64, intrusion["alert_count"].as_u64().unwrap());

        // Search: type a rule in the form and submit.
        c.goto(&format!("{base}/alerts")).await.unwrap();
        c.find(Locator::Css("form.search input[name=rule]")).await.unwrap().send_keys("LSASS").await.unwrap();
        c.find(Locator::Css("form.search button")).await.unwrap().click().await.unwrap();
        // The form's navigation finishes before the next one starts.
        let start = std::time::Instant::now();
        while !c.current_url().await.unwrap().as_str().contains("rule=LSASS") {
            assert!(start.elapsed() < Duration::from_secs(10), "search did not navigate");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let want = json_of(format!("{base}/api/alerts?rule=LSASS")).await["total"].as_u64().unwrap();
        assert!(want > 0);
        c.back().await.unwrap();
        assert!(text_of("#result-count").await.starts_with(&format!("{want} alerts")));
        for row in c.find_all(Locator::Css("#alerts tbody tr")).await.unwrap() {
            assert!(row.text().await.unwrap().contains("LSASS"));
        }
        let high = json_of(format!("{base}/api/alerts?level=high&page_size=500")).await;
        c.goto(&format!("{base}/alerts?level=high")).await.unwrap();
        assert!(text_of("#result-count").await.starts_with(&format!("{} alerts", high["total"])));

        // Triage: confirm the first LSASS alert with a comment; it survives a reload.
        c.goto(&format!("{base}/alerts?rule=LSASS")).await.unwrap();
        let row = c.find(Locator::Css("#alerts tbody tr")).await.unwrap();
        let key = row.attr("data-key").await.unwrap().unwrap();
        row.find(Locator::Css("select[name=status]")).await.unwrap()
            .select_by_value("confirmed").await.unwrap();
        row.find(Locator::Css("input[name=comment]")).await.unwrap()
            .send_keys("dump seen in EDR, ticket IR-7").await.unwrap();
        row.find(Locator::Css("button")).await.unwrap().click().await.unwrap();
        // Wait for the post to reach the server (asked beside the browser: reloading while the
        // form's navigation is under way would cancel it), then a reload shows the new status.
        let path = format!("/api/alert?key={}", urlencode(&key));
        let start = std::time::Instant::now();
        let status = || serde_json::from_str::<Value>(&http_get(port, &path, "").1).unwrap()["status"].clone();
        while status() != "confirmed" {
            assert!(start.elapsed() < Duration::from_secs(10), "triage not saved");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        c.refresh().await.unwrap();
        let row = c.find(Locator::Css("#alerts tbody tr")).await.unwrap();
        let badge = row.find(Locator::Css(".status")).await.unwrap();
        assert_eq!(badge.attr("data-status").await.unwrap().as_deref(), Some("confirmed"));
        let a = json_of(format!("{base}/api/alert?key={}", urlencode(&key))).await;
        assert_eq!(a["status"], "confirmed");
        assert_eq!(a["comment"], "dump seen in EDR, ticket IR-7");
        c.goto(&format!("{base}/")).await.unwrap();
        assert_eq!(text_of("#count-confirmed").await, "1");

        // Script payloads are shown as text on every page and never run.
        let host = "web\"><img src=x onerror=\"document.title='pwned'\">";
        let xss = json_of(format!("{base}/api/alerts?host={}", urlencode(host))).await;
        let xss_key = xss["alerts"][0]["key"].as_str().expect("payload alert stored").to_owned();
        let incidents = json_of(format!("{base}/api/incidents")).await;
        let mut pages = vec![
            format!("{base}/"),
            format!("{base}/alerts"),
            format!("{base}/alerts?page=2"),
            format!("{base}/incidents"),
            format!("{base}/alert?key={}", urlencode(&xss_key)),
            format!("{base}/scope"),
            format!("{base}/scope?identifiers=show"),
        ];
        for i in incidents["incidents"].as_array().unwrap() {
            pages.push(format!("{base}/incident?id={}", urlencode(i["id"].as_str().unwrap())));
        }
        pages.push(format!("{base}/campaigns"));
        let mut payload_campaign = false;
        for x in list {
            payload_campaign |= x.to_string().contains("pwned");
            pages.push(format!("{base}/campaign?id={}", urlencode(x["id"].as_str().unwrap())));
        }
        assert!(payload_campaign, "a campaign carries a payload name: {list:#?}");
        for page in &pages {
            c.goto(page).await.unwrap();
            let title = c.title().await.unwrap();
            assert!(title.starts_with("cellwarden"), "{page}: title {title:?}");
            assert_ne!(title, PAYLOAD_TITLE, "{page}");
            assert!(c.get_alert_text().await.is_err(), "{page}: a dialog opened");
            let injected = c.find_all(Locator::Css("main script, main img, main svg[onload], main iframe")).await.unwrap();
            assert!(injected.is_empty(), "{page}: markup from a log");
        }
        c.goto(&format!("{base}/alert?key={}", urlencode(&xss_key))).await.unwrap();
        let body = text_of("main").await;
        assert!(body.contains("document.title='pwned'"), "payload shown as text: {body}");
        c.goto(&format!("{base}/scope?identifiers=show")).await.unwrap();
        assert!(text_of("#accounts").await.contains("<img src=x onerror="));
        // Pseudonymised by default.
        c.goto(&format!("{base}/scope")).await.unwrap();
        assert!(text_of("#subscribers").await.contains("psn_"));
        c.close().await.unwrap();
    });
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The dashboard answers only to the names it was started for (a page whose DNS name is rebound
/// to 127.0.0.1 gets nothing), changes triage only from its own pages (another site's form
/// post is refused), and sends triage back only to its own paths.
#[test]
fn dashboard_refuses_rebinding_cross_site_posts_and_open_redirects() {
    let dir = tempfile::tempdir().unwrap();
    let store = filled_store(dir.path());
    let (_k, port) = serve(&store, &["--host-name", "soc.example"]);
    // DNS rebinding: the attacker's name, resolved to 127.0.0.1.
    for path in ["/", "/api/scope?identifiers=show", "/api/alerts"] {
        let (status, _, body) = http(port, "GET", path, "evil.example", "", "");
        assert_eq!(status, 421, "{path}: {body}");
    }
    for host in [
        "127.0.0.1".to_owned(),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        "SOC.example.".to_owned(),
    ] {
        assert_eq!(
            http(port, "GET", "/api/summary", &host, "", "").0,
            200,
            "{host}"
        );
    }
    let alerts: Value = serde_json::from_str(&http_get(port, "/api/alerts", "").1).unwrap();
    let key = alerts["alerts"][0]["key"].as_str().unwrap().to_owned();
    let status_of = |port: u16| -> String {
        let a: Value = serde_json::from_str(
            &http_get(port, &format!("/api/alert?key={}", urlenc(&key)), "").1,
        )
        .unwrap();
        a["status"].as_str().unwrap_or("").to_owned()
    };
    let form = |back: &str| {
        format!(
            "kind=alert&key={}&status=confirmed&comment=x&back={}",
            urlenc(&key),
            urlenc(back)
        )
    };
    // CSRF: another site's form, in every way a browser says so.
    let host = format!("127.0.0.1:{port}");
    for headers in [
        "Origin: http://evil.example\r\n".to_owned(),
        "Origin: null\r\n".to_owned(),
        "Referer: http://evil.example/page\r\n".to_owned(),
        "Sec-Fetch-Site: cross-site\r\n".to_owned(),
        format!("Origin: http://127.0.0.1:{}\r\n", port + 1),
    ] {
        let (status, _, body) = http(port, "POST", "/triage", &host, &headers, &form("/alerts"));
        assert_eq!(status, 403, "{headers}: {body}");
    }
    assert_eq!(status_of(port), "new", "no cross-site post changed triage");
    // From its own page: accepted, back to a path of this server only.
    let own = format!("Origin: http://{host}\r\nSec-Fetch-Site: same-origin\r\n");
    for (back, to) in [
        ("/alerts?level=high", "/alerts?level=high"),
        ("/\\evil.example", "/"),
        ("//evil.example", "/"),
        ("https://evil.example/", "/"),
        ("/\tevil", "/"),
    ] {
        let (status, location, body) = http(port, "POST", "/triage", &host, &own, &form(back));
        assert_eq!((status, location.as_str()), (303, to), "{back}: {body}");
    }
    assert_eq!(status_of(port), "confirmed");
}

fn urlenc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
