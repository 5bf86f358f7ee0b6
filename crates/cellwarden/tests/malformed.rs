//! Bad input: each problem gets a message naming file and position, the run goes on, the
//! exit status is 3, and nothing panics.

mod common;

use std::io::Write;

use common::*;

const RAR_EVENT: &str = r##"{"Event":{"System":{"EventID":4688,"Channel":"Security","Computer":"h1","TimeCreated":{"#attributes":{"SystemTime":"2026-03-04T03:12:09Z"}}},"EventData":{"NewProcessName":"C:\\Program Files\\WinRAR\\Rar.exe","CommandLine":"rar.exe a -v500m -hpX C:\\$Recycle.Bin\\a.rar D:\\cdr\\*.csv"}}}"##;

fn no_panic(err: &str) {
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("RUST_BACKTRACE"), "{err}");
}

#[test]
fn broken_jsonl_lines_are_reported_and_the_rest_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let mut f = std::fs::File::create(&path).unwrap();
    writeln!(f, "{RAR_EVENT}").unwrap();
    f.write_all(b"{\"a\": \"\xff\xfe invalid utf-8\"}\n")
        .unwrap();
    // A 50 MB line.
    f.write_all(b"{\"big\": \"").unwrap();
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..50 {
        f.write_all(&chunk).unwrap();
    }
    f.write_all(b"\"}\n").unwrap();
    writeln!(f, "{{\"truncated\": ").unwrap();
    writeln!(f, "{RAR_EVENT}").unwrap();
    drop(f);
    let out = run(&["hunt", path.to_str().unwrap(), "--format", "jsonl"]);
    let err = stderr(&out);
    no_panic(&err);
    assert_eq!(out.status.code(), Some(3), "{err}");
    let a = alerts(&stdout(&out));
    let mut records: Vec<u64> = a
        .iter()
        .map(|x| x["source_record"].as_u64().unwrap())
        .collect();
    records.dedup();
    assert_eq!(records, vec![1, 5], "both good events raise their alert");
    assert!(err.contains("events.jsonl:2: invalid UTF-8"), "{err}");
    assert!(
        err.contains("events.jsonl:3: line longer than the 16 MiB limit"),
        "{err}"
    );
    assert!(err.contains("events.jsonl:4:"), "{err}");
    assert!(
        err.contains("errors: 3 (json 1, too-long 1, utf8 1)"),
        "{err}"
    );
}

#[test]
fn broken_evtx_files_are_reported_and_the_rest_is_read() {
    let Some(samples) = shared("evtx-attack-samples") else {
        return;
    };
    let src = samples.join("AutomatedTestingTools/PanacheSysmon_vs_AtomicRedTeam01.evtx");
    let bytes = std::fs::read(&src).unwrap();
    assert!(bytes.len() > 4096 + 65536 * 4);
    let dir = tempfile::tempdir().unwrap();
    // Cut off in the middle of the fourth chunk.
    std::fs::write(
        dir.path().join("trunc.evtx"),
        &bytes[..4096 + 65536 * 3 + 30000],
    )
    .unwrap();
    // Second chunk's header destroyed.
    let mut corrupt = bytes.clone();
    corrupt[4096 + 65536..4096 + 65536 + 8].copy_from_slice(b"XXXXXXXX");
    std::fs::write(dir.path().join("corrupt.evtx"), &corrupt).unwrap();
    // Not an EVTX file at all.
    let noise: Vec<u8> = (0..100_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(dir.path().join("random.evtx"), &noise).unwrap();

    let whole = run(&["hunt", src.to_str().unwrap(), "--format", "jsonl"]);
    assert_eq!(whole.status.code(), Some(0));
    let whole_events = events_in(&stderr(&whole));

    let out = run(&["hunt", dir.path().to_str().unwrap(), "--format", "jsonl"]);
    let err = stderr(&out);
    no_panic(&err);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("corrupt.evtx:chunk 1 (offset 69632)"), "{err}");
    assert!(
        err.contains("random.evtx:offset 0: not a readable EVTX file"),
        "{err}"
    );
    assert!(
        err.contains("trunc.evtx:chunk 3 (offset 200704): file cut off"),
        "{err}"
    );
    assert!(
        err.contains("trunc.evtx:offset 230704: file cut off: the header announces 15 chunks, the file holds 4; the records of the 11 missing chunks are lost"),
        "{err}"
    );
    assert!(err.contains("errors: 4 (evtx-chunk 3, format 1)"), "{err}");
    // The corrupt file loses one chunk; the cut file keeps its first three chunks and the
    // complete records of the fourth.
    let got = events_in(&err);
    assert!(
        got > whole_events,
        "{got} events read from the damaged copies"
    );
}

fn events_in(summary: &str) -> u64 {
    let line = summary.lines().find(|l| l.starts_with("summary:")).unwrap();
    let n = line
        .split(" events")
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap();
    n.parse().unwrap()
}

#[test]
fn hostile_and_broken_rules_are_reported_and_the_rest_load() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("good.yml"),
        "title: Rar split\nid: 11111111-1111-1111-1111-111111111111\nlogsource: {category: process_creation, product: windows}\ndetection:\n  sel:\n    CommandLine|contains: ' -hp'\n  condition: sel\nlevel: high\n",
    )
    .unwrap();
    std::fs::write(
        rules.join("badregex.yml"),
        "title: Bad regex\nlogsource: {product: windows}\ndetection:\n  sel:\n    CommandLine|re: 'a(b'\n  condition: sel\nlevel: high\n",
    )
    .unwrap();
    // Billion laughs: nine levels of aliases, each repeating the previous ten times.
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let names = ["b", "c", "d", "e", "f", "g", "h", "i"];
    let mut prev = "a";
    for n in names {
        bomb.push_str(&format!(
            "{n}: &{n} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
        ));
        prev = n;
    }
    bomb.push_str(
        "title: bomb\nlogsource: {product: windows}\ndetection: {sel: {x: *i}, condition: sel}\n",
    );
    std::fs::write(rules.join("bomb.yml"), bomb).unwrap();
    std::fs::write(rules.join("notyaml.yml"), "title: [unclosed\n  : :\n").unwrap();

    let out = run(&["rules", "check", rules.to_str().unwrap(), "--json"]);
    no_panic(&stderr(&out));
    assert_eq!(out.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["loaded"], 1, "{v}");
    assert_eq!(v["invalid"], 3, "{v}");
    let problems = v["problems"].as_array().unwrap();
    let find = |name: &str| {
        problems
            .iter()
            .find(|p| p["file"].as_str().unwrap().ends_with(name))
            .unwrap_or_else(|| panic!("{name} not reported: {v}"))
    };
    let re = find("badregex.yml");
    assert_eq!(re["line"], 5, "{re}");
    assert!(
        re["reason"]
            .as_str()
            .unwrap()
            .contains("regular expression")
    );
    assert!(find("bomb.yml")["reason"].is_string());
    assert!(find("notyaml.yml")["line"].is_number());

    // Hunting with the same folder still runs the good rule.
    let logs = dir.path().join("e.jsonl");
    std::fs::write(&logs, format!("{RAR_EVENT}\n")).unwrap();
    let out = run(&[
        "hunt",
        logs.to_str().unwrap(),
        "-r",
        rules.to_str().unwrap(),
        "--format",
        "jsonl",
    ]);
    no_panic(&stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(alerts(&stdout(&out)).len(), 1);
    assert!(stderr(&out).contains("rules: 1 loaded, 0 unsupported, 3 invalid"));
}
