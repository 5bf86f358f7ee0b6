//! Each modifier and condition form, from the specification's semantics, with positive and
//! negative cases.

use cellwarden_event::{Event, Origin, Value};
use cellwarden_sigma::{LoadOptions, RuleSource, load};

fn event(json: &str) -> Event<'static> {
    let fields = cellwarden_source::json::flatten(json).unwrap();
    let mut e = Event::new(Origin {
        file: "t".into(),
        record: 1,
    });
    e.fields = cellwarden_event::owned_fields(fields);
    e
}

fn rule(detection: &str) -> String {
    format!(
        "title: t\nid: r\nlogsource: {{product: windows}}\ndetection:\n{detection}\nlevel: high\n"
    )
}

fn matches_opts(detection: &str, json: &str, opts: &LoadOptions) -> bool {
    let loaded = load(
        &[RuleSource {
            name: "t.yml".into(),
            text: rule(detection),
        }],
        opts,
    );
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    let ev = event(json);
    let mut s = loaded.rules.scratch();
    let mut out = Vec::new();
    loaded.rules.matches(&ev, &mut s, &mut out);
    !out.is_empty()
}

fn matches(detection: &str, json: &str) -> bool {
    matches_opts(detection, json, &LoadOptions::default())
}

fn check(detection: &str, yes: &[&str], no: &[&str]) {
    for j in yes {
        assert!(matches(detection, j), "should match: {detection}\n{j}");
    }
    for j in no {
        assert!(!matches(detection, j), "should not match: {detection}\n{j}");
    }
}

#[test]
fn plain_values_are_case_insensitive_equality() {
    check(
        "  sel: {Image: 'C:\\Windows\\cmd.exe'}\n  condition: sel",
        &[r#"{"Image":"c:\\windows\\CMD.EXE"}"#],
        &[r#"{"Image":"c:\\windows\\cmd.exe2"}"#, r#"{"Other":"x"}"#],
    );
}

#[test]
fn contains_startswith_endswith() {
    check(
        "  sel: {A|contains: 'mimi'}\n  condition: sel",
        &[r#"{"A":"xMIMIKATZ"}"#],
        &[r#"{"A":"mim"}"#],
    );
    check(
        "  sel: {A|startswith: 'ab'}\n  condition: sel",
        &[r#"{"A":"ABc"}"#],
        &[r#"{"A":"cab"}"#],
    );
    check(
        "  sel: {A|endswith: '.exe'}\n  condition: sel",
        &[r#"{"A":"a.EXE"}"#],
        &[r#"{"A":"a.exe "}"#],
    );
}

#[test]
fn wildcards_and_escapes() {
    check(
        "  sel: {A: 'a*c?e'}\n  condition: sel",
        &[r#"{"A":"abbbcde"}"#, r#"{"A":"acxe"}"#],
        &[r#"{"A":"ace"}"#],
    );
    check(
        "  sel: {A: 'a\\*b'}\n  condition: sel",
        &[r#"{"A":"a*b"}"#],
        &[r#"{"A":"axb"}"#],
    );
    check(
        "  sel: {A: 'x\\?'}\n  condition: sel",
        &[r#"{"A":"x?"}"#],
        &[r#"{"A":"xy"}"#],
    );
    check(
        "  sel: {A: 'C:\\Temp\\'}\n  condition: sel",
        &[r#"{"A":"C:\\Temp\\"}"#],
        &[],
    );
}

#[test]
fn lists_are_or_and_all_is_and() {
    check(
        "  sel: {A: [x, y]}\n  condition: sel",
        &[r#"{"A":"y"}"#],
        &[r#"{"A":"z"}"#],
    );
    check(
        "  sel: {A|contains|all: [x, y]}\n  condition: sel",
        &[r#"{"A":"y--x"}"#],
        &[r#"{"A":"x"}"#],
    );
}

#[test]
fn maps_are_and_lists_of_maps_are_or() {
    check(
        "  sel: {A: x, B: y}\n  condition: sel",
        &[r#"{"A":"x","B":"y"}"#],
        &[r#"{"A":"x","B":"z"}"#],
    );
    check(
        "  sel:\n    - A: x\n    - B: y\n  condition: sel",
        &[r#"{"A":"q","B":"y"}"#, r#"{"A":"x"}"#],
        &[r#"{"A":"q","B":"q"}"#],
    );
}

#[test]
fn null_empty_and_exists() {
    check(
        "  sel: {A: null}\n  condition: sel",
        &[r#"{"B":"x"}"#, r#"{"A":null}"#],
        &[r#"{"A":""}"#],
    );
    check(
        "  sel: {A: ''}\n  condition: sel",
        &[r#"{"A":""}"#],
        &[r#"{"B":""}"#, r#"{"A":"x"}"#],
    );
    check(
        "  sel: {A|exists: true}\n  condition: sel",
        &[r#"{"A":null}"#, r#"{"A":""}"#],
        &[r#"{"B":1}"#],
    );
    check(
        "  sel: {A|exists: false}\n  condition: sel",
        &[r#"{"B":1}"#],
        &[r#"{"A":1}"#],
    );
}

#[test]
fn cased() {
    check(
        "  sel: {A|cased: 'Abc'}\n  condition: sel",
        &[r#"{"A":"Abc"}"#],
        &[r#"{"A":"abc"}"#],
    );
    check(
        "  sel: {A|contains|cased: 'B'}\n  condition: sel",
        &[r#"{"A":"aBc"}"#],
        &[r#"{"A":"abc"}"#],
    );
}

#[test]
fn neq() {
    check(
        "  sel: {A|neq: x}\n  condition: sel",
        &[r#"{"A":"y"}"#],
        &[r#"{"A":"X"}"#],
    );
    check(
        "  sel: {A|neq: [x, y]}\n  condition: sel",
        &[r#"{"A":"z"}"#],
        &[r#"{"A":"y"}"#],
    );
    check(
        "  sel: {A|neq: 5}\n  condition: sel",
        &[r#"{"A":6}"#],
        &[r#"{"A":5}"#],
    );
}

#[test]
fn windash() {
    check(
        "  sel: {A|windash|contains: ' -enc '}\n  condition: sel",
        &[
            r#"{"A":"powershell -enc x"}"#,
            r#"{"A":"powershell /enc x"}"#,
            "{\"A\":\"powershell \u{2013}enc x\"}",
            "{\"A\":\"powershell \u{2015}enc x\"}",
        ],
        &[r#"{"A":"powershell enc x"}"#],
    );
}

#[test]
fn regular_expressions_and_flags() {
    check(
        "  sel: {A|re: '^a.c$'}\n  condition: sel",
        &[r#"{"A":"abc"}"#],
        &[r#"{"A":"ABC"}"#, r#"{"A":"xabc"}"#],
    );
    check(
        "  sel: {A|re|i: '^a.c$'}\n  condition: sel",
        &[r#"{"A":"ABC"}"#],
        &[],
    );
    check(
        "  sel: {A|re|m: '^b$'}\n  condition: sel",
        &[r#"{"A":"a\nb\nc"}"#],
        &[],
    );
    check(
        "  sel: {A|re: '^b$'}\n  condition: sel",
        &[],
        &[r#"{"A":"a\nb\nc"}"#],
    );
    check(
        "  sel: {A|re|s: 'a.b'}\n  condition: sel",
        &[r#"{"A":"a\nb"}"#],
        &[],
    );
    check(
        "  sel: {A|re: 'a.b'}\n  condition: sel",
        &[],
        &[r#"{"A":"a\nb"}"#],
    );
}

#[test]
fn rules_prefiltered_by_the_literals_of_their_expressions() {
    // The rule is only evaluated when a literal every match holds occurs: these check that
    // the prefilter never hides a match (case variants, alternatives, suffixes, non-ASCII).
    check(
        "  sel: {CommandLine|re: '\\$PSHome\\[\\s*\\d{1,3}\\s*\\]'}\n  condition: sel",
        &[r#"{"CommandLine":"x $PSHome[ 21]+$PSHome[30]"}"#],
        &[
            r#"{"CommandLine":"x $PSHOME[21]"}"#,
            r#"{"CommandLine":"x $PSHome[a]"}"#,
        ],
    );
    check(
        "  sel: {CommandLine|re|i: 'invoke-(expression|webrequest)'}\n  condition: sel",
        &[
            r#"{"CommandLine":"INVOKE-Expression foo"}"#,
            r#"{"CommandLine":"iNvOkE-wEbReQuEsT"}"#,
        ],
        &[r#"{"CommandLine":"invoke-item"}"#],
    );
    check(
        "  sel: {A|re: '.*\\\\evil\\.exe'}\n  condition: sel",
        &[r#"{"A":"C:\\x\\evil.exe"}"#],
        &[r#"{"A":"C:\\x\\EVIL.exe"}"#],
    );
    check(
        "  sel: {A|re|i: 'straße'}\n  condition: sel",
        &[r#"{"A":"STRAẞE"}"#, r#"{"A":"Straße"}"#],
        &[r#"{"A":"strasse"}"#],
    );
    // Evaluated only when every selection it needs has a literal in the event.
    check(
        "  img: {Image|endswith: '\\cmd.exe'}\n  cli: {CommandLine|contains|all: ['rmdir', '/s']}\n  condition: img and cli",
        &[r#"{"Image":"C:\\CMD.exe","CommandLine":"RMDIR /S x"}"#],
        &[
            r#"{"Image":"C:\\cmd.exe","CommandLine":"rmdir x"}"#,
            r#"{"Image":"C:\\x.exe","CommandLine":"rmdir /s"}"#,
        ],
    );
    // A literal inside the expression (neither prefix nor suffix) gates it.
    check(
        r#"  sel: {CommandLine|re: '(?i)\.exe["]?\s+[^"]{0,64}werfaultsecure\.exe["]?\s+\d{2,10}'}
  condition: sel"#,
        &[r#"{"CommandLine":"w.EXE c:\\WerFaultSecure.exe 6412"}"#],
        &[r#"{"CommandLine":"w.exe c:\\werfault.exe 6412"}"#],
    );
    check(
        "  sel: {CommandLine|re: '\\w+`(?:\\w+|-|.)`[\\w+|\\s]'}\n  condition: sel",
        &[r#"{"CommandLine":"IN`V`oKe"}"#],
        &[r#"{"CommandLine":"invoke"}"#],
    );
    // A pattern with `?` is an expression that folds case as Unicode does: its prefilter too.
    check(
        "  sel: {A|contains: 'stra?e'}\n  condition: sel",
        &[r#"{"A":"x STRAßE"}"#, r#"{"A":"x ſtraße"}"#],
        &[r#"{"A":"x strae"}"#],
    );
    // Needles with non-ASCII cased characters: the rule still sees every case of them.
    check(
        "  sel: {CommandLine|contains: ['Ⓜ', 'а']}\n  condition: sel",
        &[
            r#"{"CommandLine":"x ⓜ y"}"#,
            r#"{"CommandLine":"x Ⓜ y"}"#,
            r#"{"CommandLine":"pАyload"}"#,
        ],
        &[r#"{"CommandLine":"payload M"}"#],
    );
    check(
        "  sel: {A|endswith: 'ΣΟΣ'}\n  condition: sel",
        &[r#"{"A":"x ΣΟΣ"}"#, r#"{"A":"x σος"}"#],
        &[r#"{"A":"x sos"}"#],
    );
    // An expression and a substring in one selection.
    check(
        "  sel: {A|re: 'ab+c', B|contains: 'zz'}\n  condition: sel",
        &[r#"{"A":"abbbc","B":"ZZtop"}"#],
        &[r#"{"A":"ac","B":"zz"}"#, r#"{"A":"abc","B":"z"}"#],
    );
}

#[test]
fn base64_and_base64offset() {
    // base64('cmd') = 'Y21k'
    check(
        "  sel: {A|base64: 'cmd'}\n  condition: sel",
        &[r#"{"A":"Y21k"}"#],
        &[r#"{"A":"cmd"}"#],
    );
    // 'http' somewhere inside base64 text, at each of the three offsets.
    let det = "  sel: {A|base64offset|contains: 'http'}\n  condition: sel";
    for prefix in ["", "x", "xy"] {
        let enc = base64_encode(format!("{prefix}http://evil").as_bytes());
        assert!(matches(det, &format!("{{\"A\":\"zz{enc}\"}}")), "{prefix}");
    }
    assert!(!matches(
        det,
        &format!("{{\"A\":\"{}\"}}", base64_encode(b"ftp://x"))
    ));
}

fn base64_encode(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn utf16_encodings() {
    // wide|base64 of 'cmd' = base64('c\0m\0d\0') = 'YwBtAGQA'
    check(
        "  sel: {A|wide|base64: 'cmd'}\n  condition: sel",
        &[r#"{"A":"YwBtAGQA"}"#],
        &[r#"{"A":"Y21k"}"#],
    );
    check(
        "  sel: {A|utf16le|base64: 'cmd'}\n  condition: sel",
        &[r#"{"A":"YwBtAGQA"}"#],
        &[],
    );
    // utf16be: '\0c\0m\0d' = 'AGMAbQBk'
    check(
        "  sel: {A|utf16be|base64: 'cmd'}\n  condition: sel",
        &[r#"{"A":"AGMAbQBk"}"#],
        &[r#"{"A":"YwBtAGQA"}"#],
    );
    // utf16: BOM FF FE then LE = '//5jAG0AZAA='
    check(
        "  sel: {A|utf16|base64: 'cmd'}\n  condition: sel",
        &[r#"{"A":"//5jAG0AZAA="}"#],
        &[],
    );
}

#[test]
fn numeric_comparisons() {
    check(
        "  sel: {A|gt: 10}\n  condition: sel",
        &[r#"{"A":11}"#, r#"{"A":"12"}"#],
        &[r#"{"A":10}"#, r#"{"A":"x"}"#],
    );
    check(
        "  sel: {A|gte: 10}\n  condition: sel",
        &[r#"{"A":10}"#],
        &[r#"{"A":9}"#],
    );
    check(
        "  sel: {A|lt: 10}\n  condition: sel",
        &[r#"{"A":9.5}"#],
        &[r#"{"A":10}"#],
    );
    check(
        "  sel: {A|lte: 10}\n  condition: sel",
        &[r#"{"A":10}"#],
        &[r#"{"A":11}"#],
    );
    check(
        "  sel: {EventID: 4688}\n  condition: sel",
        &[r#"{"EventID":4688}"#, r#"{"EventID":"4688"}"#],
        &[r#"{"EventID":4689}"#],
    );
}

#[test]
fn time_parts() {
    let ev = r#"{"T":"2026-11-24T03:04:05Z"}"#;
    check(
        "  sel: {T|hour: 3}\n  condition: sel",
        &[ev],
        &[r#"{"T":"2026-11-24T04:04:05Z"}"#],
    );
    check("  sel: {T|minute: 4}\n  condition: sel", &[ev], &[]);
    check("  sel: {T|day: 24}\n  condition: sel", &[ev], &[]);
    check("  sel: {T|week: 48}\n  condition: sel", &[ev], &[]);
    check("  sel: {T|month: 11}\n  condition: sel", &[ev], &[]);
    check(
        "  sel: {T|year: 2026}\n  condition: sel",
        &[ev],
        &[r#"{"T":"2025-11-24T03:04:05Z"}"#],
    );
}

#[test]
fn cidr() {
    check(
        "  sel: {Ip|cidr: 10.0.0.0/8}\n  condition: sel",
        &[r#"{"Ip":"10.9.8.7"}"#],
        &[r#"{"Ip":"11.0.0.1"}"#],
    );
    check(
        "  sel: {Ip|cidr: '2001:db8::/32'}\n  condition: sel",
        &[r#"{"Ip":"2001:db8::1"}"#],
        &[r#"{"Ip":"2001:db9::1"}"#],
    );
}

#[test]
fn fieldref() {
    check(
        "  sel: {A|fieldref: B}\n  condition: sel",
        &[r#"{"A":"x","B":"X"}"#],
        &[r#"{"A":"x","B":"y"}"#, r#"{"A":"x"}"#],
    );
    check(
        "  sel: {A|fieldref|neq: B}\n  condition: sel",
        &[r#"{"A":"x","B":"y"}"#],
        &[r#"{"A":"x","B":"x"}"#],
    );
    check(
        "  sel: {A|fieldref|endswith: B}\n  condition: sel",
        &[r#"{"A":"c:\\x\\evil.exe","B":"evil.exe"}"#],
        &[],
    );
}

#[test]
fn expand_with_placeholders() {
    let mut opts = LoadOptions::default();
    opts.placeholders
        .insert("admins".into(), vec!["alice".into(), "bob".into()]);
    let det = "  sel: {User|expand: '%admins%'}\n  condition: sel";
    assert!(matches_opts(det, r#"{"User":"BOB"}"#, &opts));
    assert!(!matches_opts(det, r#"{"User":"eve"}"#, &opts));
    let loaded = load(
        &[RuleSource {
            name: "t.yml".into(),
            text: rule(det),
        }],
        &LoadOptions::default(),
    );
    assert_eq!(loaded.unsupported, 1);
    assert!(loaded.problems[0].reason.contains("%admins%"));
}

#[test]
fn keywords_search_every_field() {
    check(
        "  keywords: ['evil', 'bad*thing']\n  condition: keywords",
        &[r#"{"A":"so EVIL"}"#, r#"{"B":"a bad big thing"}"#],
        &[r#"{"A":"good"}"#],
    );
}

#[test]
fn keywords_with_all_need_every_value() {
    check(
        "  keywords:\n    '|all':\n      - 'mimikatz'\n      - 'sekurlsa'\n  condition: keywords",
        &[r#"{"A":"run MIMIKATZ.exe","B":"sekurlsa::logonpasswords"}"#],
        &[r#"{"A":"mimikatz only"}"#],
    );
}

#[test]
fn lists_in_events_match_any_member() {
    check(
        "  sel: {A: x}\n  condition: sel",
        &[r#"{"A":["y","X"]}"#],
        &[r#"{"A":["y"]}"#],
    );
}

#[test]
fn nested_fields_by_dotted_path() {
    check(
        "  sel: {process.command_line|contains: whoami}\n  condition: sel",
        &[r#"{"process":{"command_line":"whoami /all"}}"#],
        &[],
    );
}

#[test]
fn condition_grammar() {
    let det = "  s1: {A: 1}\n  s2: {B: 1}\n  f1: {C: 1}\n  _h: {D: 1}";
    let c = |cond: &str| format!("{det}\n  condition: {cond}");
    check(&c("s1 and not f1"), &[r#"{"A":1}"#], &[r#"{"A":1,"C":1}"#]);
    check(&c("s1 or s2"), &[r#"{"B":1}"#], &[r#"{"C":1}"#]);
    check(
        &c("(s1 or s2) and not (f1 or s2)"),
        &[r#"{"A":1}"#],
        &[r#"{"A":1,"B":1}"#],
    );
    check(&c("1 of s*"), &[r#"{"B":1}"#], &[r#"{"C":1}"#]);
    check(&c("all of s*"), &[r#"{"A":1,"B":1}"#], &[r#"{"A":1}"#]);
    check(
        &c("2 of them"),
        &[r#"{"A":1,"C":1}"#],
        &[r#"{"A":1,"D":1}"#],
    );
    check(
        &c("all of them"),
        &[r#"{"A":1,"B":1,"C":1}"#],
        &[r#"{"A":1,"B":1}"#],
    );
    check(&c("1 of them"), &[r#"{"C":1}"#], &[r#"{"D":1}"#]);
    check(&c("not 1 of s*"), &[r#"{"C":1}"#], &[r#"{"A":1}"#]);
    check(
        &c("s1 and not 1 of f*"),
        &[r#"{"A":1}"#],
        &[r#"{"A":1,"C":1}"#],
    );
}

#[test]
fn meta_filters_apply_to_their_rules() {
    let rule_text = rule("  sel: {A|startswith: x}\n  condition: sel");
    let filter = "title: f\nlogsource: {product: windows}\nfilter:\n  rules: [r]\n  selection: {User|startswith: adm_}\n  condition: selection\n";
    let loaded = load(
        &[
            RuleSource {
                name: "r.yml".into(),
                text: rule_text,
            },
            RuleSource {
                name: "f.yml".into(),
                text: filter.into(),
            },
        ],
        &LoadOptions::default(),
    );
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    assert_eq!(loaded.filters, 1);
    let mut s = loaded.rules.scratch();
    let mut out = Vec::new();
    loaded
        .rules
        .matches(&event(r#"{"A":"x1","User":"adm_bob"}"#), &mut s, &mut out);
    assert!(out.is_empty());
    loaded
        .rules
        .matches(&event(r#"{"A":"x1","User":"bob"}"#), &mut s, &mut out);
    assert_eq!(out.len(), 1);
}

#[test]
fn rule_logsource_selects_events() {
    let text = "title: t\nid: r\nlogsource: {product: windows, category: process_creation}\ndetection:\n  sel: {Image|endswith: '\\rar.exe'}\n  condition: sel\n";
    let loaded = load(
        &[RuleSource {
            name: "t.yml".into(),
            text: text.into(),
        }],
        &LoadOptions::default(),
    );
    let mapping = cellwarden_source::Mapping::builtin();
    let mut s = loaded.rules.scratch();
    let mut out = Vec::new();
    let mut yes = event(r#"{"Channel":"Security","EventID":4688,"NewProcessName":"C:\\rar.exe"}"#);
    mapping.apply(&mut yes);
    loaded.rules.matches(&yes, &mut s, &mut out);
    assert_eq!(
        out.len(),
        1,
        "4688 is process_creation, Image comes from NewProcessName"
    );
    let mut no = event(
        r#"{"Channel":"Microsoft-Windows-Sysmon/Operational","EventID":11,"Image":"C:\\rar.exe"}"#,
    );
    mapping.apply(&mut no);
    loaded.rules.matches(&no, &mut s, &mut out);
    assert!(out.is_empty(), "Sysmon 11 is file_event");
    let _ = Value::Null;
}

/// Chains that would drop or contradict a modifier are refused, naming the field and chain;
/// the chains SigmaHQ uses load.
#[test]
fn conflicting_modifier_chains_are_refused() {
    let problem = |key: &str| -> Option<String> {
        let loaded = load(
            &[RuleSource {
                name: "t.yml".into(),
                text: rule(&format!("  sel:\n    {key}: 'x'\n  condition: sel")),
            }],
            &LoadOptions::default(),
        );
        loaded.problems.first().map(|p| p.to_string())
    };
    for (key, why) in [
        ("a|contains|re", "`re` cannot be combined with `contains`"),
        ("a|re|contains", "`re` cannot be combined with `contains`"),
        (
            "a|base64offset|contains|re",
            "`re` cannot be combined with `base64offset`",
        ),
        (
            "a|startswith|endswith",
            "`startswith` and `endswith` cannot be combined",
        ),
        (
            "a|contains|startswith",
            "`contains` and `startswith` cannot be combined",
        ),
        ("a|contains|base64", "`base64` must come before `contains`"),
        (
            "a|base64|base64offset",
            "`base64` and `base64offset` cannot be combined",
        ),
        (
            "a|base64offset|wide|contains",
            "`wide` must come before `base64offset`",
        ),
        ("a|base64|windash", "`windash` must come before `base64`"),
        (
            "a|wide",
            "`wide` gives bytes that only make sense base64-encoded",
        ),
        ("a|i|re", "`i` is a flag of `re` and comes after it"),
        ("a|i", "`i` is a flag of `re` and comes after it"),
        (
            "a|cidr|contains",
            "`cidr` cannot be combined with `contains`",
        ),
        ("a|gt|lt", "`gt` and `lt` cannot be combined"),
        ("a|gt|contains", "`gt` cannot be combined with `contains`"),
        (
            "a|exists|contains",
            "`exists` cannot be combined with `contains`",
        ),
        ("a|fieldref|re", "`re` cannot be combined with `fieldref`"),
        ("a|contains|contains", "modifier `contains` given twice"),
    ] {
        let p = problem(key).unwrap_or_else(|| panic!("{key} loaded"));
        assert!(p.contains(why) && p.contains(key), "{key}: {p}");
    }
    // Valid chains (the value `x` is not valid for every one of them: only the chain counts).
    let chain_ok = |key: &str| problem(key).is_none_or(|p| !p.contains(&format!("in `{key}`")));
    for key in [
        "a|contains",
        "a|contains|windash",
        "a|windash|contains",
        "a|base64offset|contains",
        "a|wide|base64offset|contains",
        "a|utf16le|base64offset|contains",
        "a|re|i",
        "a|re|i|m|s",
        "a|cidr",
        "a|contains|all",
        "a|contains|cased",
        "a|hour|gte",
        "a|fieldref|startswith",
        "a|neq",
    ] {
        assert!(chain_ok(key), "{key}: {:?}", problem(key));
    }
}

/// Each kind of event is scanned for the keywords of the rules that apply to it only; a rule
/// whose keywords are not its prefilter (`not keywords`) is still answered right beside a
/// keyword rule that is prefiltered.
#[test]
fn keyword_rules_of_different_log_sources() {
    let rule = |id: &str, service: &str, detection: &str| RuleSource {
        name: format!("{id}.yml"),
        text: format!(
            "title: {id}\nid: {id}\nlogsource: {{product: windows{service}}}\ndetection:\n{detection}\nlevel: high\n"
        ),
    };
    let loaded = load(
        &[
            rule(
                "sec",
                ", service: security",
                "  keywords: ['alphabet soup']\n  condition: keywords",
            ),
            rule(
                "sys",
                ", service: system",
                "  keywords: ['betamax tape']\n  condition: keywords",
            ),
            rule(
                "any",
                "",
                "  keywords: ['gamma ray burst']\n  condition: not keywords",
            ),
            rule(
                "all",
                "",
                "  keywords: ['delta blues']\n  condition: keywords",
            ),
        ],
        &LoadOptions::default(),
    );
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    let mapping = cellwarden_source::Mapping::builtin();
    let mut s = loaded.rules.scratch();
    let mut out = Vec::new();
    let mut run = |json: &str| -> Vec<String> {
        let mut e = event(json);
        mapping.apply(&mut e);
        loaded.rules.matches(&e, &mut s, &mut out);
        out.iter()
            .map(|&i| loaded.rules.rule_info(i).title.clone())
            .collect()
    };
    for _ in 0..2 {
        // (Twice: the second time from the memo of scanned texts.)
        let sec =
            r#"{"Channel":"Security","EventID":4688,"A":"an ALPHABET SOUP of betamax tapes"}"#;
        assert_eq!(run(sec), ["sec", "any"]);
        let sys = r#"{"Channel":"System","EventID":7045,"A":"an alphabet soup of BetaMax Tapes"}"#;
        assert_eq!(run(sys), ["sys", "any"]);
        let ray = r#"{"Channel":"Security","EventID":4688,"A":"x","B":"a Gamma Ray Burst, alphabet soup"}"#;
        assert_eq!(run(ray), ["sec"]);
        let blues = r#"{"Channel":"System","EventID":7045,"B":"Delta Blues and gamma ray bursts"}"#;
        assert_eq!(run(blues), ["all"]);
    }
}

/// Events of one kind in a row with their fields in other orders, other names at the same
/// place, or past the names a thread keeps per kind: each field found by its own name.
#[test]
fn fields_found_whatever_the_order_of_the_events_before() {
    let loaded = load(
        &[RuleSource {
            name: "t.yml".into(),
            text: rule("  sel: {A: x, B|endswith: y}\n  condition: sel"),
        }],
        &LoadOptions::default(),
    );
    let mut s = loaded.rules.scratch();
    let mut out = Vec::new();
    let mut run = |json: &str| {
        loaded.rules.matches(&event(json), &mut s, &mut out);
        !out.is_empty()
    };
    let wide = |tail: &str| {
        let filler: Vec<String> = (0..300).map(|i| format!("\"f{i}\":\"v\"")).collect();
        format!("{{{},{tail}}}", filler.join(","))
    };
    for _ in 0..2 {
        assert!(run(r#"{"A":"x","B":"zy"}"#));
        assert!(run(r#"{"B":"zy","A":"x"}"#));
        assert!(!run(r#"{"C":"x","B":"zy"}"#));
        assert!(!run(r#"{"A":"zy","B":"x"}"#));
        assert!(run(r#"{"C":"1","A":"x","B":"y"}"#));
        assert!(run(&wide(r#""A":"x","B":"y""#)));
        assert!(!run(&wide(r#""A":"y","B":"x""#)));
        assert!(!run(r#"{"A":"x"}"#));
    }
}

#[test]
fn events_of_a_log_source_no_rule_applies_to_are_passed_over_and_others_still_match() {
    use cellwarden_event::LogSource;
    use std::sync::Arc;
    let loaded = load(
        &[RuleSource {
            name: "t.yml".into(),
            text: "title: t\nid: r\nlogsource: {product: windows, service: sysmon}\n\
                   detection:\n  sel: {EventID: 1, Image|endswith: '\\x.exe'}\n  condition: sel\n\
                   level: high\n"
                .into(),
        }],
        &LoadOptions::default(),
    );
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    let source = |id, product: &str, service: &str| {
        Arc::new(LogSource {
            id,
            product: Some(product.into()),
            service: Some(service.into()),
            ..LogSource::default()
        })
    };
    let (sysmon, zeek) = (source(0, "windows", "sysmon"), source(1, "zeek", "conn"));
    let text = r#"{"EventID":1,"Image":"C:\\x.exe"}"#;
    let mut s = loaded.rules.scratch();
    let mut out = Vec::new();
    // In turns, so that each kind is met again after the other was remembered.
    for round in 0..3 {
        let mut ev = event(text);
        ev.logsource = Some(Arc::clone(&zeek));
        loaded.rules.matches(&ev, &mut s, &mut out);
        assert!(
            out.is_empty(),
            "round {round}: a zeek event matched a sysmon rule"
        );
        ev.logsource = Some(Arc::clone(&sysmon));
        loaded.rules.matches(&ev, &mut s, &mut out);
        assert_eq!(out, [0], "round {round}");
        let mut other = event(r#"{"EventID":3,"Image":"C:\\x.exe"}"#);
        other.logsource = Some(Arc::clone(&sysmon));
        loaded.rules.matches(&other, &mut s, &mut out);
        assert!(out.is_empty(), "round {round}: event id 3 matched");
    }
}
