//! Value matchers: what one Sigma value (after its modifiers) tests on one field value.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::OnceLock;

use cellwarden_event::Value;
use ipnet::IpNet;
use regex::Regex;

/// A piece of a wildcard pattern.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Lit(String),
    /// `*`
    Star,
    /// `?`
    One,
}

/// A string pattern compiled to the cheapest test that implements it.
#[derive(Debug, Clone)]
pub(crate) enum StrTest {
    /// `*`: any string.
    Any,
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(Box<memchr::memmem::Finder<'static>>),
    /// `*`-only patterns with several pieces: optional prefix, pieces in order, optional
    /// suffix.
    Pieces {
        prefix: Option<String>,
        middle: Vec<memchr::memmem::Finder<'static>>,
        suffix: Option<String>,
    },
    /// Anything else (`?` wildcards): an anchored regular expression.
    Glob(Box<Regex>),
}

#[derive(Debug, Clone)]
pub(crate) struct StrPattern {
    pub test: StrTest,
    /// Compare against the original text instead of the lower-cased one.
    pub cased: bool,
    /// The tokens, kept for the literal prefilter.
    pub toks: Vec<Tok>,
    /// For a substring test: its needle's id in the rule set's literal scan, whose result
    /// answers the test without searching again.
    pub lit: Option<u32>,
}

impl StrPattern {
    pub fn new(mut toks: Vec<Tok>, cased: bool) -> Result<StrPattern, String> {
        // Merge adjacent literals and collapse runs of `*`.
        let mut merged: Vec<Tok> = Vec::with_capacity(toks.len());
        for t in toks.drain(..) {
            match (merged.last_mut(), t) {
                (Some(Tok::Lit(a)), Tok::Lit(b)) => a.push_str(&b),
                (Some(Tok::Star), Tok::Star) => {}
                (_, t) => merged.push(t),
            }
        }
        if !cased {
            for t in merged.iter_mut() {
                if let Tok::Lit(s) = t {
                    *s = s.to_lowercase();
                }
            }
        }
        let lit = |t: &Tok| match t {
            Tok::Lit(s) => Some(s.clone()),
            _ => None,
        };
        let test = match merged.as_slice() {
            [] => StrTest::Exact(String::new()),
            [Tok::Star] => StrTest::Any,
            [Tok::Lit(s)] => StrTest::Exact(s.clone()),
            [a @ Tok::Lit(_), Tok::Star] => StrTest::Prefix(lit(a).unwrap_or_default()),
            [Tok::Star, b @ Tok::Lit(_)] => StrTest::Suffix(lit(b).unwrap_or_default()),
            [Tok::Star, b @ Tok::Lit(_), Tok::Star] => StrTest::Contains(Box::new(
                memchr::memmem::Finder::new(lit(b).unwrap_or_default().as_bytes()).into_owned(),
            )),
            toks if !toks.iter().any(|t| matches!(t, Tok::One)) => {
                let mut pieces: Vec<String> = toks
                    .iter()
                    .filter_map(|t| match t {
                        Tok::Lit(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect();
                let suffix = match toks.last() {
                    Some(Tok::Lit(_)) => pieces.pop(),
                    _ => None,
                };
                let prefix = match toks.first() {
                    Some(Tok::Lit(_)) => Some(pieces.remove(0)),
                    _ => None,
                };
                StrTest::Pieces {
                    prefix,
                    middle: pieces
                        .iter()
                        .map(|p| memchr::memmem::Finder::new(p.as_bytes()).into_owned())
                        .collect(),
                    suffix,
                }
            }
            toks => {
                let mut re = String::from(if cased { "(?s)^" } else { "(?si)^" });
                for t in toks {
                    match t {
                        Tok::Lit(s) => re.push_str(&regex::escape(s)),
                        Tok::Star => re.push_str(".*"),
                        Tok::One => re.push('.'),
                    }
                }
                re.push('$');
                StrTest::Glob(Box::new(Regex::new(&re).map_err(|e| e.to_string())?))
            }
        };
        Ok(StrPattern {
            test,
            cased,
            toks: merged,
            lit: None,
        })
    }

    /// `original` is the field text, `lower` its lower-cased form.
    #[inline]
    pub fn matches(&self, original: &str, lower: &str) -> bool {
        let s = if self.cased { original } else { lower };
        match &self.test {
            StrTest::Any => true,
            StrTest::Exact(p) => s == p,
            StrTest::Prefix(p) => s.starts_with(p.as_str()),
            StrTest::Suffix(p) => s.ends_with(p.as_str()),
            StrTest::Contains(f) => f.find(s.as_bytes()).is_some(),
            StrTest::Glob(re) => re.is_match(original),
            StrTest::Pieces {
                prefix,
                middle,
                suffix,
            } => {
                let mut rest = s.as_bytes();
                if let Some(p) = prefix {
                    if !rest.starts_with(p.as_bytes()) {
                        return false;
                    }
                    rest = &rest[p.len()..];
                }
                if let Some(x) = suffix {
                    if !rest.ends_with(x.as_bytes()) {
                        return false;
                    }
                    rest = &rest[..rest.len() - x.len()];
                }
                for f in middle {
                    match f.find(rest) {
                        Some(i) => rest = &rest[i + f.needle().len()..],
                        None => return false,
                    }
                }
                true
            }
        }
    }

    /// The needle of a case-insensitive ASCII substring test (answerable by the literal scan).
    pub fn scannable_needle(&self) -> Option<&str> {
        match (&self.test, self.toks.as_slice()) {
            (StrTest::Contains(_), [Tok::Star, Tok::Lit(l), Tok::Star])
                if !self.cased && !l.is_empty() && scannable(l) =>
            {
                Some(l)
            }
            _ => None,
        }
    }

    /// The longest literal piece: text that must appear in any value this pattern matches.
    pub fn required_literal(&self) -> Option<&str> {
        if matches!(self.test, StrTest::Any) {
            return None;
        }
        self.toks
            .iter()
            .filter_map(|t| match t {
                Tok::Lit(s) => Some(s.as_str()),
                _ => None,
            })
            .max_by_key(|s| s.len())
    }

    /// Literals of which every value this pattern matches holds one (as the literal scan
    /// finds them): those of its longest piece, folded as the pattern's own test folds case.
    pub fn gate_literals(&self) -> Option<Vec<String>> {
        let l = self.required_literal()?;
        match &self.test {
            // A case-insensitive expression folds case as Unicode does (`ſ` is an `s` to it):
            // the piece's case variants, as that expression sees them.
            StrTest::Glob(_) if !self.cased => regex_literals(&format!("(?i){}", regex::escape(l))),
            _ => needle_literals(l, self.cased),
        }
    }
}

/// Literals of which one occurs in any text `pattern` matches: the literals every match
/// begins with, those every match ends with, or a run of characters every match holds inside,
/// whichever set's shortest member is longest. ASCII letters come lower-cased (the literal
/// scan ignores their case, so this only widens the set); other characters stay as the
/// expression's case variants give them. `None` when no finite set of non-empty literals can
/// be proven.
pub(crate) fn regex_literals(pattern: &str) -> Option<Vec<String>> {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    let hir = regex_syntax::Parser::new().parse(pattern).ok()?;
    let mut candidates = Vec::new();
    for kind in [ExtractKind::Prefix, ExtractKind::Suffix] {
        let seq = Extractor::new().kind(kind).extract(&hir);
        let Some(lits) = seq.literals() else { continue };
        let set: Option<Vec<String>> = lits
            .iter()
            .map(|l| match std::str::from_utf8(l.as_bytes()) {
                Ok(t) if !t.is_empty() => Some(t.to_ascii_lowercase()),
                _ => None,
            })
            .collect();
        candidates.extend(set);
    }
    candidates.extend(inner_literals(&hir));
    most_selective(candidates.into_iter().map(|mut set| {
        set.sort();
        set.dedup();
        set
    }))
}

/// Of sets of literals (one of each set must occur), the one whose shortest literal is
/// longest, then the smallest; empty sets and empty literals do not count.
fn most_selective(sets: impl Iterator<Item = Vec<String>>) -> Option<Vec<String>> {
    sets.filter(|s| !s.is_empty() && s.iter().all(|l| !l.is_empty()))
        .max_by_key(|s| {
            let min = s.iter().map(String::len).min().unwrap_or(0);
            (min, usize::MAX - s.len())
        })
}

/// A character the literal scan finds exactly where the expression matches it: a literal
/// character, or an ASCII letter in either case (as `(?i)` gives letters without other case
/// variants). Returned lower-cased.
fn scan_char(hir: &regex_syntax::hir::Hir) -> Option<char> {
    use regex_syntax::hir::{Class, HirKind};
    match hir.kind() {
        HirKind::Literal(l) => {
            let t = std::str::from_utf8(&l.0).ok()?;
            let mut cs = t.chars();
            match (cs.next(), cs.next()) {
                (Some(c), None) => Some(c.to_ascii_lowercase()),
                _ => None,
            }
        }
        HirKind::Class(Class::Unicode(u)) => {
            let chars: Vec<char> = u
                .ranges()
                .iter()
                .flat_map(|r| r.start()..=r.end())
                .take(3)
                .collect();
            match chars.as_slice() {
                [c] => Some(c.to_ascii_lowercase()),
                [a, b] if a.is_ascii_alphabetic() && a.eq_ignore_ascii_case(b) => {
                    Some(a.to_ascii_lowercase())
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// Literals of which every match of `hir` holds one somewhere (not only at its ends): runs of
/// literal characters of a concatenation, or what a part every match goes through requires.
fn inner_literals(hir: &regex_syntax::hir::Hir) -> Option<Vec<String>> {
    use regex_syntax::hir::HirKind;
    match hir.kind() {
        HirKind::Literal(l) => {
            let t = std::str::from_utf8(&l.0).ok()?;
            (!t.is_empty()).then(|| vec![t.to_ascii_lowercase()])
        }
        HirKind::Class(_) => scan_char(hir).map(|c| vec![c.to_string()]),
        HirKind::Capture(c) => inner_literals(&c.sub),
        HirKind::Repetition(r) if r.min >= 1 => inner_literals(&r.sub),
        HirKind::Alternation(subs) => {
            let mut all = Vec::new();
            for s in subs {
                all.extend(inner_literals(s)?);
            }
            Some(all)
        }
        HirKind::Concat(subs) => {
            let mut candidates = Vec::new();
            let mut run = String::new();
            for s in subs {
                if let HirKind::Literal(l) = s.kind()
                    && let Ok(t) = std::str::from_utf8(&l.0)
                {
                    run.push_str(&t.to_ascii_lowercase());
                    continue;
                }
                if let Some(c) = scan_char(s) {
                    run.push(c);
                    continue;
                }
                if !run.is_empty() {
                    candidates.push(vec![std::mem::take(&mut run)]);
                }
                candidates.extend(inner_literals(s));
            }
            if !run.is_empty() {
                candidates.push(vec![run]);
            }
            most_selective(candidates.into_iter())
        }
        _ => None,
    }
}

/// Literals of which the text of any value holding `needle` holds one (ASCII
/// case-insensitively): `needle` itself when the scan finds it as the value test would;
/// for a case-insensitive needle with other cased characters (`Ⓜ`, Cyrillic or Greek
/// capitals), its longest run of characters that only themselves (and their ASCII other
/// case) lower-case to, or every character that lower-cases to one of its characters,
/// whichever is more selective. `needle` is lower-cased already unless `cased`.
pub(crate) fn needle_literals(needle: &str, cased: bool) -> Option<Vec<String>> {
    if needle.is_empty() {
        return None;
    }
    if cased || scannable(needle) {
        return Some(vec![needle.to_ascii_lowercase()]);
    }
    let sources = |c: char| -> Vec<char> {
        let mut v = vec![c];
        if let Some(more) = lower_sources().get(&c) {
            v.extend(more);
        }
        // `str::to_lowercase` writes a final capital sigma as `ς`.
        if c == 'ς' {
            v.push('Σ');
        }
        v
    };
    let safe = |c: char| {
        sources(c)
            .iter()
            .all(|&x| x == c || x == c.to_ascii_uppercase())
    };
    let mut candidates = Vec::new();
    let mut run = String::new();
    for c in needle.chars() {
        if safe(c) {
            run.push(c.to_ascii_lowercase());
        } else {
            candidates.push(vec![std::mem::take(&mut run)]);
            let mut v: Vec<String> = sources(c)
                .into_iter()
                .map(|x| x.to_ascii_lowercase().to_string())
                .collect();
            v.sort();
            v.dedup();
            candidates.push(v);
        }
    }
    candidates.push(vec![run]);
    most_selective(candidates.into_iter())
}

/// For each character that is part of another character's lower case, those other
/// characters (`k`: the Kelvin sign; `а`: `А`).
fn lower_sources() -> &'static HashMap<char, Vec<char>> {
    static MAP: OnceLock<HashMap<char, Vec<char>>> = OnceLock::new();
    MAP.get_or_init(|| {
        let mut map: HashMap<char, Vec<char>> = HashMap::new();
        // No character above U+1FFFF has a case (checked by a test).
        for x in (0..=0x1FFFF).filter_map(char::from_u32) {
            let mut lower = x.to_lowercase();
            if lower.len() == 1 && lower.next() == Some(x) {
                continue;
            }
            for c in x.to_lowercase() {
                if c != x {
                    map.entry(c).or_default().push(x);
                }
            }
        }
        map
    })
}

/// Whether the literal scan (case-insensitive for ASCII only) finds `lit` exactly where a
/// lower-cased comparison would: true when every non-ASCII character has no case (dashes,
/// symbols, most scripts' punctuation).
pub(crate) fn scannable(lit: &str) -> bool {
    lit.chars().all(|c| {
        c.is_ascii()
            || (c.to_lowercase().eq(std::iter::once(c)) && c.to_uppercase().eq(std::iter::once(c)))
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Lt,
    Lte,
    Gt,
    Gte,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimePart {
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

/// One compiled value of a detection item.
#[derive(Debug, Clone)]
pub(crate) enum Matcher {
    Str(StrPattern),
    Re(Box<Regex>),
    Int(i64),
    Float(f64),
    Bool(bool),
    Cmp(CmpOp, f64),
    Cidr(IpNet),
    /// Extract a part of a date value, then test the number.
    Time(TimePart, Box<Matcher>),
}

impl Matcher {
    /// Whether testing a string needs its lower-cased form.
    #[inline]
    pub fn needs_lower(&self) -> bool {
        matches!(self, Matcher::Str(p) if !p.cased && !matches!(p.test, StrTest::Any | StrTest::Glob(_)))
    }

    /// Tests one scalar field value. For a string value, `lower` is its lower-cased text
    /// when [`Matcher::needs_lower`] says so (otherwise it is not read).
    pub fn matches(&self, v: &Value<'_>, lower: &str) -> bool {
        match self {
            Matcher::Str(p) => match v {
                Value::Str(s) => p.matches(s, lower),
                Value::Null | Value::List(_) => false,
                other => match other.as_text() {
                    Some(t) => p.matches(&t, &t.to_lowercase()),
                    None => false,
                },
            },
            Matcher::Re(re) => match v {
                Value::Str(s) => re.is_match(s),
                Value::Null | Value::List(_) => false,
                other => other.as_text().is_some_and(|t| re.is_match(&t)),
            },
            Matcher::Int(i) => match v {
                Value::Int(x) => x == i,
                Value::Float(f) => *f == *i as f64,
                Value::Str(s) => s.trim().parse::<i64>().is_ok_and(|x| x == *i),
                Value::Bool(_) | Value::Null | Value::List(_) => false,
            },
            Matcher::Float(f) => v.as_f64().is_some_and(|x| x == *f),
            Matcher::Bool(b) => match v {
                Value::Bool(x) => x == b,
                Value::Str(s) => s.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
                _ => false,
            },
            Matcher::Cmp(op, n) => v.as_f64().is_some_and(|x| match op {
                CmpOp::Lt => x < *n,
                CmpOp::Lte => x <= *n,
                CmpOp::Gt => x > *n,
                CmpOp::Gte => x >= *n,
            }),
            Matcher::Cidr(net) => v
                .as_text()
                .and_then(|t| parse_ip(&t))
                .is_some_and(|ip| net.contains(&ip)),
            Matcher::Time(part, inner) => {
                let Some(t) = v.as_text() else { return false };
                let Some(n) = time_part(&t, *part) else {
                    return false;
                };
                inner.matches(&Value::Int(n), "")
            }
        }
    }
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s.trim().trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = s.parse().ok()?;
    Some(match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    })
}

fn time_part(text: &str, part: TimePart) -> Option<i64> {
    let ts = cellwarden_event::parse_timestamp(text)?;
    let dt = ts.to_zoned(jiff::tz::TimeZone::UTC);
    Some(match part {
        TimePart::Minute => dt.minute() as i64,
        TimePart::Hour => dt.hour() as i64,
        TimePart::Day => dt.day() as i64,
        TimePart::Week => dt.date().iso_week_date().week() as i64,
        TimePart::Month => dt.month() as i64,
        TimePart::Year => dt.year() as i64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_every_match_of_an_expression_holds() {
        let lits = |p: &str| regex_literals(p);
        assert_eq!(
            lits(r"\$PSHome\[\s*\d{1,3}"),
            Some(vec!["$pshome[".to_string()])
        );
        // No prefix (a leading `.*`): the suffix.
        assert_eq!(lits(r".*\\evil\.exe"), Some(vec![r"\evil.exe".to_string()]));
        assert_eq!(
            lits("ab|cd"),
            Some(vec!["ab".to_string(), "cd".to_string()])
        );
        // Case variants collapse to lower case for ASCII letters; the Kelvin sign (which `(?i)`
        // matches for `k`) stays a variant of its own.
        let v = lits("(?i)invoke-expression").unwrap();
        assert!(v.iter().any(|l| l.starts_with("invoke-")), "{v:?}");
        assert!(v.iter().any(|l| l.contains('\u{212A}')), "{v:?}");
        assert!(
            v.iter()
                .all(|l| "invoke-expression".starts_with(&l.to_lowercase())),
            "{v:?}"
        );
        // Non-ASCII case variants stay, so the scan still finds them.
        let v = lits("(?i)ß").unwrap();
        assert!(
            v.contains(&"ß".to_string()) && v.contains(&"ẞ".to_string()),
            "{v:?}"
        );
        // Nothing provable: an expression that can match the empty text, or any digit.
        assert_eq!(lits("x*"), None);
        assert_eq!(lits(r"\d+"), None);
        assert_eq!(lits("(unclosed"), None);
    }

    use crate::testgen::Lcg;

    /// Whether `text` holds one of `lits` ASCII case-insensitively (what the scan reports).
    fn holds_one(text: &str, lits: &[String]) -> bool {
        let t = text.as_bytes();
        lits.iter().any(|l| {
            let l = l.as_bytes();
            l.len() <= t.len() && t.windows(l.len()).any(|w| w.eq_ignore_ascii_case(l))
        })
    }

    #[test]
    fn inner_runs_of_an_expression_gate_it() {
        let lits = |p: &str| regex_literals(p).unwrap_or_default();
        // A run inside beats a prefix shorter than it; `(?i)` letters with a non-ASCII case
        // variant (`k`, `s`) end a run.
        assert_eq!(
            lits(r#"(?i)\.exe["']?\s+[^"]{0,64}werfaultsecure\.exe"#),
            vec!["ecure.exe".to_string()]
        );
        assert_eq!(lits(r"\w+`(?:\w+|-|.)`[\w+|\s]"), vec!["`".to_string()]);
        assert_eq!(
            lits(r"cmd.{0,5}(?:/c|/r).+powershell.+"),
            vec!["powershell".to_string()]
        );
        // Alternatives: one literal of each.
        assert_eq!(
            lits(r"\d+(?:mimikatz|rubeus)\d+"),
            vec!["mimikatz".to_string(), "rubeus".to_string()]
        );
        assert_eq!(lits(r"\d+(?:mimikatz|\w)\d+"), Vec::<String>::new());
        // Every match of these expressions holds one of their literals: texts made of pieces
        // of each, in any case the scan must see through.
        let patterns: [(&str, &[&str]); 7] = [
            (
                r"(?i)\.exe\s+[^x]{0,4}werfault\d{1,3}",
                &[
                    ".exe", ".EXE", " ", "x", "werfault", "WERFAULT", "1", "\u{212A}", "ſ", "ecure",
                ],
            ),
            (r"\w+`(?:\w+|-|.)`[\w+|\s]", &["a", "`", "-", " ", "+", "é"]),
            (
                r"(?i)a[bB]+c|ḱ.?K",
                &["a", "b", "B", "c", "C", "ḱ", "Ḱ", "k", "K", "\u{212A}"],
            ),
            (r"(?:ab|Ab|aB)+x?c", &["a", "A", "b", "B", "x", "c"]),
            (
                r"(?i)(?:ſa|ka)\.(?:exe|dll)",
                &["s", "S", "ſ", "a", "k", "\u{212A}", ".", "exe", "DLL"],
            ),
            (r"x(?:ab)?y[zZ]{2}", &["x", "ab", "y", "z", "Z"]),
            (r"(?i)σa|ΣB", &["σ", "Σ", "ς", "a", "b", "B"]),
        ];
        let mut g = Lcg(11);
        for (p, alphabet) in patterns {
            let re = Regex::new(p).unwrap();
            let ls = lits(p);
            assert!(!ls.is_empty(), "{p}");
            let mut matched = 0;
            for _ in 0..20_000 {
                let len = g.next(8);
                let text = g.pick(alphabet, len);
                if re.is_match(&text) {
                    matched += 1;
                    assert!(
                        holds_one(&text, &ls),
                        "{p} matches {text:?}, none of {ls:?}"
                    );
                }
            }
            assert!(matched > 0, "{p}: no text tried matches");
        }
    }

    #[test]
    fn needles_with_other_cased_characters_are_gated_by_what_lowers_to_them() {
        // Case-less (or ASCII) needles are their own literal.
        assert_eq!(needle_literals("🦆", false), Some(vec!["🦆".to_string()]));
        assert_eq!(needle_literals("ⓜ", false).unwrap().len(), 2);
        // The longest run of characters nothing else lowers to (`i`: `İ` lowers to `i̇`).
        assert_eq!(
            needle_literals("\\ⓜmam.exe", false),
            Some(vec!["mam.exe".to_string()])
        );
        assert_eq!(
            needle_literals("ⓜimi.exe", false),
            Some(vec![".exe".to_string()])
        );
        assert_eq!(needle_literals("", false), None);
        // Cased needles are compared as written: the needle itself.
        assert_eq!(needle_literals("Ⓜx", true), Some(vec!["Ⓜx".to_string()]));
        // A text holds one of the literals whenever its lower case holds the needle.
        let alphabet = [
            "a", "A", "k", "K", "\u{212A}", "i", "I", "İ", "\u{307}", "Ⓜ", "ⓜ", "а", "А", "σ", "Σ",
            "ς", "ß", "ẞ", "ǅ", "ǆ", "Ǆ", " ", "x", ".", "🦆",
        ];
        let mut g = Lcg(5);
        for _ in 0..3_000 {
            let len = 1 + g.next(4);
            let needle = g.pick(&alphabet, len).to_lowercase();
            let ls = needle_literals(&needle, false).unwrap();
            for _ in 0..60 {
                let len = g.next(10);
                let text = g.pick(&alphabet, len);
                if text.to_lowercase().contains(&needle) && !scannable(&needle) {
                    assert!(
                        holds_one(&text, &ls),
                        "{text:?} lowers to hold {needle:?}, none of {ls:?}"
                    );
                }
            }
            // A text made to hold it, with its characters in other cases.
            let text = format!("x{}x", needle.to_uppercase());
            if text.to_lowercase().contains(&needle) && !scannable(&needle) {
                assert!(holds_one(&text, &ls), "{text:?}: {needle:?}, {ls:?}");
            }
        }
    }

    #[test]
    fn no_character_above_the_table_has_a_case() {
        for c in (0x20000..=0x10FFFF).filter_map(char::from_u32) {
            assert!(
                c.to_lowercase().eq(std::iter::once(c)) && c.to_uppercase().eq(std::iter::once(c)),
                "{c:?}"
            );
        }
    }

    fn pat(toks: Vec<Tok>, cased: bool) -> StrPattern {
        StrPattern::new(toks, cased).unwrap()
    }
    fn lit(s: &str) -> Tok {
        Tok::Lit(s.into())
    }
    fn m(p: &StrPattern, s: &str) -> bool {
        p.matches(s, &s.to_lowercase())
    }

    #[test]
    fn pattern_shapes() {
        assert!(matches!(pat(vec![lit("a")], false).test, StrTest::Exact(_)));
        assert!(matches!(
            pat(vec![lit("a"), Tok::Star], false).test,
            StrTest::Prefix(_)
        ));
        assert!(matches!(
            pat(vec![Tok::Star, lit("a"), Tok::Star, Tok::Star], false).test,
            StrTest::Contains(_)
        ));
        assert!(matches!(
            pat(vec![lit("a"), Tok::One], false).test,
            StrTest::Glob(_)
        ));
        assert!(matches!(
            pat(vec![lit("a"), Tok::Star, lit("b")], false).test,
            StrTest::Pieces { .. }
        ));
        assert!(matches!(pat(vec![Tok::Star], false).test, StrTest::Any));
    }

    #[test]
    fn case_insensitive_unless_cased() {
        let p = pat(vec![Tok::Star, lit("\\CMD.exe")], false);
        assert!(m(&p, "C:\\Windows\\cmd.EXE"));
        assert!(!m(&p, "C:\\Windows\\cmd.exe.bak"));
        let c = pat(vec![Tok::Star, lit("\\CMD.exe")], true);
        assert!(!m(&c, "C:\\Windows\\cmd.exe"));
        assert!(m(&c, "C:\\Windows\\CMD.exe"));
    }

    #[test]
    fn pieces_in_order() {
        let p = pat(
            vec![lit("ab"), Tok::Star, lit("cd"), Tok::Star, lit("ba")],
            false,
        );
        assert!(m(&p, "ABxxCDyyBA"));
        assert!(m(&p, "abcdba"));
        assert!(!m(&p, "abba"));
        assert!(!m(&p, "abcba"));
        assert!(!m(&p, "aba"));
        let q = pat(
            vec![Tok::Star, lit("\\temp\\"), Tok::Star, lit(".exe")],
            false,
        );
        assert!(m(&q, "C:\\TEMP\\x.exe"));
        assert!(!m(&q, "C:\\TEMP\\x.exe.txt"));
        let r = pat(
            vec![Tok::Star, lit("a"), Tok::Star, lit("a"), Tok::Star],
            false,
        );
        assert!(m(&r, "xaya"));
        assert!(!m(&r, "xay"));
    }

    #[test]
    fn glob_with_single_char_wildcard() {
        let p = pat(
            vec![lit("a"), Tok::One, lit("c"), Tok::Star, lit("Z")],
            false,
        );
        assert!(m(&p, "ABCxxz"));
        assert!(m(&p, "a\nc\nz"));
        assert!(!m(&p, "acz"));
    }

    #[test]
    fn numbers_and_text() {
        let l = "";
        assert!(Matcher::Int(4688).matches(&Value::Str("4688".into()), l));
        assert!(Matcher::Int(4688).matches(&Value::Int(4688), l));
        assert!(!Matcher::Int(4688).matches(&Value::Int(4689), l));
        let p = Matcher::Str(pat(vec![lit("4688")], false));
        assert!(p.matches(&Value::Int(4688), l));
        assert!(Matcher::Cmp(CmpOp::Gt, 10.0).matches(&Value::Str("11".into()), l));
        assert!(!Matcher::Cmp(CmpOp::Gt, 10.0).matches(&Value::Int(10), l));
        assert!(Matcher::Cmp(CmpOp::Gte, 10.0).matches(&Value::Int(10), l));
        assert!(Matcher::Cmp(CmpOp::Lt, 10.0).matches(&Value::Float(9.5), l));
        assert!(Matcher::Cmp(CmpOp::Lte, 10.0).matches(&Value::Int(10), l));
        assert!(!Matcher::Cmp(CmpOp::Lt, 10.0).matches(&Value::Str("x".into()), l));
    }

    #[test]
    fn cidr_v4_v6_and_mapped() {
        let l = "";
        let n = Matcher::Cidr("10.0.0.0/8".parse().unwrap());
        assert!(n.matches(&Value::Str("10.1.2.3".into()), l));
        assert!(n.matches(&Value::Str("::ffff:10.1.2.3".into()), l));
        assert!(!n.matches(&Value::Str("11.1.2.3".into()), l));
        assert!(!n.matches(&Value::Str("not an ip".into()), l));
        let n6 = Matcher::Cidr("fe80::/10".parse().unwrap());
        assert!(n6.matches(&Value::Str("fe80::1".into()), l));
        assert!(!n6.matches(&Value::Str("2001:db8::1".into()), l));
    }

    #[test]
    fn time_parts() {
        let l = "";
        let v = Value::Str("2024-02-29T23:59:10Z".into());
        for (part, want) in [
            (TimePart::Minute, 59),
            (TimePart::Hour, 23),
            (TimePart::Day, 29),
            (TimePart::Week, 9),
            (TimePart::Month, 2),
            (TimePart::Year, 2024),
        ] {
            assert!(
                Matcher::Time(part, Box::new(Matcher::Int(want))).matches(&v, l),
                "{part:?}"
            );
            assert!(!Matcher::Time(part, Box::new(Matcher::Int(want + 1))).matches(&v, l));
        }
        assert!(
            Matcher::Time(TimePart::Hour, Box::new(Matcher::Cmp(CmpOp::Gte, 22.0))).matches(&v, l)
        );
    }
}
