//! Sigma detection AST (from rsigma-parser) to compiled matchers.

use std::collections::{BTreeSet, HashMap};

use base64::Engine as _;
use rsigma_parser::{
    ConditionExpr, Detection, DetectionItem, Detections, Modifier, Quantifier, SelectorPattern,
    SigmaString, SigmaValue, SpecialChar, StringPart,
};

use crate::matcher::{CmpOp, Matcher, StrPattern, TimePart, Tok};

/// Field names used by rules, each given a dense slot number.
#[derive(Debug, Default)]
pub(crate) struct FieldTable {
    pub map: ahash::AHashMap<String, u32>,
    pub names: Vec<String>,
}

impl FieldTable {
    pub fn slot(&mut self, name: &str) -> u32 {
        if let Some(&s) = self.map.get(name) {
            return s;
        }
        let s = self.names.len() as u32;
        self.names.push(name.to_owned());
        self.map.insert(name.to_owned(), s);
        s
    }
}

/// Why a rule cannot be compiled.
#[derive(Debug, Clone)]
pub(crate) enum CompileError {
    /// Valid Sigma we do not evaluate (with reason).
    Unsupported(String, Option<String>),
    /// Not valid Sigma (with reason and, when known, the key to locate it by).
    Invalid(String, Option<String>),
}

type CResult<T> = Result<T, CompileError>;

fn invalid<T>(msg: impl Into<String>, at: &str) -> CResult<T> {
    Err(CompileError::Invalid(msg.into(), Some(at.to_owned())))
}

/// What a detection item tests.
#[derive(Debug, Clone)]
pub(crate) enum Test {
    Exists(bool),
    /// Field absent or null.
    Null,
    Values {
        ms: Vec<Matcher>,
        all: bool,
        neq: bool,
    },
    /// Compare with other fields' values.
    FieldRef {
        others: Vec<(u32, Mode)>,
        cased: bool,
        all: bool,
        neq: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Exact,
    Prefix,
    Suffix,
    Contains,
}

#[derive(Debug, Clone)]
pub(crate) struct Item {
    /// `None`: a keyword, tested against every field value.
    pub field: Option<u32>,
    pub test: Test,
}

#[derive(Debug, Clone)]
pub(crate) enum Node {
    All(Vec<Node>),
    Any(Vec<Node>),
    Item(Item),
}

#[derive(Debug, Clone)]
pub(crate) enum Cond {
    Det(u32),
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    AtLeast(u64, Vec<Cond>),
    Const(bool),
}

/// Placeholder values for the `expand` modifier (`%name%` → list of values).
pub type Placeholders = HashMap<String, Vec<String>>;

pub(crate) struct Compiler<'a> {
    pub fields: &'a mut FieldTable,
    pub placeholders: &'a Placeholders,
}

const WINDASH: [char; 5] = ['-', '/', '\u{2013}', '\u{2014}', '\u{2015}'];
const MAX_VARIANTS: usize = 4096;

impl Compiler<'_> {
    /// Compiles named detections and the condition(s). Extra `(name, detections, condition)`
    /// triples come from filters; each is added as `and not (filter condition)`.
    pub fn rule(
        &mut self,
        det: &Detections,
        filters: &[&Detections],
    ) -> CResult<(Vec<Node>, Cond)> {
        let mut names: Vec<&String> = det.named.keys().collect();
        names.sort();
        let mut nodes = Vec::new();
        let mut index: HashMap<String, u32> = HashMap::new();
        for name in &names {
            let node = self.detection(&det.named[*name], name)?;
            index.insert((*name).clone(), nodes.len() as u32);
            nodes.push(node);
        }
        if det.conditions.is_empty() {
            return invalid("detection has no condition", "condition:");
        }
        for cs in &det.condition_strings {
            if cs.contains(" | ") || cs.contains("|count") || cs.contains("| count") {
                return Err(CompileError::Unsupported(
                    "legacy aggregation in condition (`| count()`); write it as a correlation rule"
                        .into(),
                    Some("condition:".into()),
                ));
            }
        }
        if det.timeframe.is_some() && det.conditions.len() == 1 {
            // `timeframe` without an aggregation is harmless; it is ignored.
        }
        let mut conds = Vec::new();
        for c in &det.conditions {
            conds.push(condition(c, &index)?);
        }
        let mut cond = if conds.len() == 1 {
            conds.pop().unwrap_or(Cond::Const(false))
        } else {
            Cond::Or(conds)
        };
        for f in filters {
            let mut findex: HashMap<String, u32> = HashMap::new();
            let mut fnames: Vec<&String> = f.named.keys().collect();
            fnames.sort();
            for name in fnames {
                let node = self.detection(&f.named[name], name)?;
                findex.insert(name.clone(), nodes.len() as u32);
                nodes.push(node);
            }
            let mut fc = Vec::new();
            for c in &f.conditions {
                fc.push(condition(c, &findex)?);
            }
            cond = Cond::And(vec![cond, Cond::Not(Box::new(Cond::Or(fc)))]);
        }
        Ok((nodes, cond))
    }

    fn detection(&mut self, d: &Detection, name: &str) -> CResult<Node> {
        Ok(match d {
            Detection::AllOf(items) => Node::All(
                items
                    .iter()
                    .map(|i| self.item(i).map(Node::Item))
                    .collect::<CResult<_>>()?,
            ),
            Detection::AnyOf(subs) => Node::Any(
                subs.iter()
                    .map(|s| self.detection(s, name))
                    .collect::<CResult<_>>()?,
            ),
            Detection::Keywords(values) => {
                let item = DetectionItem {
                    field: rsigma_parser::FieldSpec::new(None, vec![Modifier::Contains]),
                    values: values.clone(),
                };
                Node::Item(self.item(&item)?)
            }
            Detection::And(subs) => Node::All(
                subs.iter()
                    .map(|s| self.detection(s, name))
                    .collect::<CResult<_>>()?,
            ),
            Detection::ArrayMatch { .. } | Detection::Conditional { .. } => {
                return Err(CompileError::Unsupported(
                    "array object-scope blocks (`field[any]:`) are a proposed extension, not Sigma 2.1"
                        .into(),
                    Some(name.to_owned()),
                ));
            }
        })
    }

    fn item(&mut self, item: &DetectionItem) -> CResult<Item> {
        let spec = &item.field;
        let key = match &spec.name {
            Some(n) => {
                let mut k = n.clone();
                for m in &spec.modifiers {
                    k.push('|');
                    k.push_str(modifier_name(*m));
                }
                k
            }
            None => "keywords".to_owned(),
        };
        if let Err(reason) = check_chain(&spec.modifiers) {
            return invalid(format!("{reason} in `{key}`"), &key);
        }
        let has = |m: Modifier| spec.modifiers.contains(&m);
        let field = spec.name.as_deref().map(|n| self.fields.slot(n));
        if has(Modifier::Exists) {
            let [SigmaValue::Bool(b)] = item.values.as_slice() else {
                return invalid("`exists` takes one boolean value", &key);
            };
            if field.is_none() {
                return invalid("`exists` needs a field", &key);
            }
            return Ok(Item {
                field,
                test: Test::Exists(*b),
            });
        }
        if item.values.is_empty() {
            return invalid("detection item has no value", &key);
        }
        let all = has(Modifier::All);
        let neq = has(Modifier::Neq);
        let cased = has(Modifier::Cased);
        if all && item.values.len() < 2 && field.is_some() {
            // Accepted (harmless), though the specification asks for several values.
        }
        let mode = if has(Modifier::Contains) {
            Mode::Contains
        } else if has(Modifier::StartsWith) {
            Mode::Prefix
        } else if has(Modifier::EndsWith) {
            Mode::Suffix
        } else if field.is_none() {
            // Keywords are searched for anywhere in the event's text.
            Mode::Contains
        } else {
            Mode::Exact
        };
        if has(Modifier::FieldRef) {
            let mut others = Vec::new();
            for v in &item.values {
                let SigmaValue::String(s) = v else {
                    return invalid("`fieldref` takes field names", &key);
                };
                others.push((self.fields.slot(&s.original), mode));
            }
            if field.is_none() {
                return invalid("`fieldref` needs a field", &key);
            }
            return Ok(Item {
                field,
                test: Test::FieldRef {
                    others,
                    cased,
                    all,
                    neq,
                },
            });
        }
        if item.values.len() == 1 && matches!(item.values[0], SigmaValue::Null) && !neq {
            if field.is_none() {
                return invalid("a keyword cannot be null", &key);
            }
            return Ok(Item {
                field,
                test: Test::Null,
            });
        }
        let mut ms = Vec::new();
        for v in &item.values {
            self.value(v, spec.modifiers.as_slice(), mode, cased, &key, &mut ms)?;
        }
        Ok(Item {
            field,
            test: Test::Values { ms, all, neq },
        })
    }

    fn value(
        &mut self,
        v: &SigmaValue,
        mods: &[Modifier],
        mode: Mode,
        cased: bool,
        key: &str,
        out: &mut Vec<Matcher>,
    ) -> CResult<()> {
        let has = |m: Modifier| mods.contains(&m);
        let time = mods.iter().find_map(|m| match m {
            Modifier::Minute => Some(TimePart::Minute),
            Modifier::Hour => Some(TimePart::Hour),
            Modifier::Day => Some(TimePart::Day),
            Modifier::Week => Some(TimePart::Week),
            Modifier::Month => Some(TimePart::Month),
            Modifier::Year => Some(TimePart::Year),
            _ => None,
        });
        let cmp = mods.iter().find_map(|m| match m {
            Modifier::Lt => Some(CmpOp::Lt),
            Modifier::Lte => Some(CmpOp::Lte),
            Modifier::Gt => Some(CmpOp::Gt),
            Modifier::Gte => Some(CmpOp::Gte),
            _ => None,
        });
        let number = |v: &SigmaValue| -> Option<f64> {
            match v {
                SigmaValue::Integer(i) => Some(*i as f64),
                SigmaValue::Float(f) => Some(*f),
                SigmaValue::String(s) => s.as_plain().and_then(|p| p.trim().parse().ok()),
                _ => None,
            }
        };
        if let Some(op) = cmp {
            let Some(n) = number(v) else {
                return invalid(format!("`{key}` compares numbers; `{v}` is not one"), key);
            };
            let m = Matcher::Cmp(op, n);
            out.push(match time {
                Some(part) => Matcher::Time(part, Box::new(m)),
                None => m,
            });
            return Ok(());
        }
        if let Some(part) = time {
            let Some(n) = number(v) else {
                return invalid(format!("`{key}` takes a number; `{v}` is not one"), key);
            };
            out.push(Matcher::Time(part, Box::new(Matcher::Int(n as i64))));
            return Ok(());
        }
        match v {
            SigmaValue::Integer(i) if mode == Mode::Exact && !has(Modifier::Re) => {
                out.push(Matcher::Int(*i));
                return Ok(());
            }
            SigmaValue::Float(f) if mode == Mode::Exact && !has(Modifier::Re) => {
                out.push(Matcher::Float(*f));
                return Ok(());
            }
            SigmaValue::Bool(b) if mode == Mode::Exact => {
                out.push(Matcher::Bool(*b));
                return Ok(());
            }
            SigmaValue::Null => {
                return invalid(
                    "`null` cannot be one of several values or take modifiers",
                    key,
                );
            }
            _ => {}
        }
        let raw: String = match v {
            SigmaValue::String(s) => s.original.clone(),
            other => other.to_string(),
        };
        if has(Modifier::Re) {
            let mut flags = String::new();
            if has(Modifier::IgnoreCase) {
                flags.push('i');
            }
            if has(Modifier::Multiline) {
                flags.push('m');
            }
            if has(Modifier::DotAll) {
                flags.push('s');
            }
            let pattern = if flags.is_empty() {
                raw
            } else {
                format!("(?{flags}){raw}")
            };
            let re = regex::RegexBuilder::new(&pattern)
                .size_limit(1 << 22)
                .build()
                .map_err(|e| {
                    CompileError::Invalid(
                        format!(
                            "invalid regular expression in `{key}`: {}",
                            first_line(&e.to_string())
                        ),
                        Some(key.to_owned()),
                    )
                })?;
            out.push(Matcher::Re(Box::new(re)));
            return Ok(());
        }
        if has(Modifier::Cidr) {
            let net: ipnet::IpNet = raw
                .trim()
                .parse()
                .or_else(|_| {
                    raw.trim()
                        .parse::<std::net::IpAddr>()
                        .map(ipnet::IpNet::from)
                })
                .map_err(|_| {
                    CompileError::Invalid(
                        format!("`{raw}` is not a CIDR range"),
                        Some(key.to_owned()),
                    )
                })?;
            out.push(Matcher::Cidr(net));
            return Ok(());
        }
        // String values: wildcard tokens, then placeholder, windash and encoding transforms.
        let mut variants: Vec<Vec<Tok>> = vec![match v {
            SigmaValue::String(s) => tokens(s),
            other => vec![Tok::Lit(other.to_string())],
        }];
        if has(Modifier::Expand) {
            variants = self.expand(variants, key)?;
        }
        if has(Modifier::WindAsh) {
            variants = windash(variants, key)?;
        }
        // Encodings work on bytes, in the order written; the result is matched as text.
        let encodings: Vec<Modifier> = mods
            .iter()
            .copied()
            .filter(|m| {
                matches!(
                    m,
                    Modifier::Wide
                        | Modifier::Utf16be
                        | Modifier::Utf16
                        | Modifier::Base64
                        | Modifier::Base64Offset
                )
            })
            .collect();
        if !encodings.is_empty() {
            let mut encoded = Vec::new();
            for toks in variants {
                let Some(text) = plain(&toks) else {
                    return invalid("encoding modifiers cannot take wildcards", key);
                };
                let mut values = vec![text.into_bytes()];
                for m in &encodings {
                    values = values.iter().flat_map(|v| encode_bytes(*m, v)).collect();
                }
                encoded.extend(
                    values
                        .into_iter()
                        .map(|v| vec![Tok::Lit(String::from_utf8_lossy(&v).into_owned())]),
                );
            }
            variants = encoded;
        }
        for mut toks in variants {
            match mode {
                Mode::Exact => {}
                Mode::Prefix => toks.push(Tok::Star),
                Mode::Suffix => toks.insert(0, Tok::Star),
                Mode::Contains => {
                    toks.insert(0, Tok::Star);
                    toks.push(Tok::Star);
                }
            }
            let p = StrPattern::new(toks, cased)
                .map_err(|e| CompileError::Invalid(e, Some(key.to_owned())))?;
            out.push(Matcher::Str(p));
        }
        Ok(())
    }

    fn expand(&self, variants: Vec<Vec<Tok>>, key: &str) -> CResult<Vec<Vec<Tok>>> {
        let mut out = Vec::new();
        for toks in variants {
            let text = plain(&toks);
            let Some(text) = text else {
                out.push(toks);
                continue;
            };
            // `%name%` placeholders; every one must be defined.
            let mut results = vec![String::new()];
            let mut rest = text.as_str();
            while let Some(start) = rest.find('%') {
                let Some(len) = rest[start + 1..].find('%') else {
                    break;
                };
                let name = &rest[start + 1..start + 1 + len];
                let Some(values) = self.placeholders.get(name) else {
                    return Err(CompileError::Unsupported(
                        format!(
                            "placeholder `%{name}%` is not defined (give its values with --placeholders FILE)"
                        ),
                        Some(key.to_owned()),
                    ));
                };
                let prefix = &rest[..start];
                let mut next = Vec::new();
                for r in &results {
                    for v in values {
                        next.push(format!("{r}{prefix}{v}"));
                    }
                }
                results = next;
                if results.len() > MAX_VARIANTS {
                    return invalid("placeholder expansion too large", key);
                }
                rest = &rest[start + 2 + len..];
            }
            for r in results {
                out.push(tokens(&SigmaString::new(&format!("{r}{rest}"))));
            }
        }
        Ok(out)
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_owned()
}

fn tokens(s: &SigmaString) -> Vec<Tok> {
    s.parts
        .iter()
        .map(|p| match p {
            StringPart::Plain(t) => Tok::Lit(t.clone()),
            StringPart::Special(SpecialChar::WildcardMulti) => Tok::Star,
            StringPart::Special(SpecialChar::WildcardSingle) => Tok::One,
        })
        .collect()
}

fn plain(toks: &[Tok]) -> Option<String> {
    let mut s = String::new();
    for t in toks {
        match t {
            Tok::Lit(l) => s.push_str(l),
            _ => return None,
        }
    }
    Some(s)
}

fn windash(variants: Vec<Vec<Tok>>, key: &str) -> CResult<Vec<Vec<Tok>>> {
    let mut out: Vec<Vec<Tok>> = Vec::new();
    for toks in variants {
        let mut acc: Vec<Vec<Tok>> = vec![Vec::new()];
        for t in toks {
            match t {
                Tok::Lit(s) => {
                    let mut strs: Vec<String> = vec![String::new()];
                    for c in s.chars() {
                        if WINDASH.contains(&c) {
                            strs = strs
                                .iter()
                                .flat_map(|p| {
                                    WINDASH.iter().map(move |d| {
                                        let mut n = p.clone();
                                        n.push(*d);
                                        n
                                    })
                                })
                                .collect();
                        } else {
                            for p in strs.iter_mut() {
                                p.push(c);
                            }
                        }
                        if strs.len() * acc.len() > MAX_VARIANTS {
                            return invalid("`windash` value has too many dashes", key);
                        }
                    }
                    acc = acc
                        .iter()
                        .flat_map(|a| {
                            strs.iter().map(move |s| {
                                let mut n = a.clone();
                                n.push(Tok::Lit(s.clone()));
                                n
                            })
                        })
                        .collect();
                }
                other => acc.iter_mut().for_each(|a| a.push(other.clone())),
            }
        }
        out.extend(acc);
    }
    Ok(out)
}

fn utf16le(b: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(b)
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect()
}

fn utf16be(b: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(b)
        .encode_utf16()
        .flat_map(|u| u.to_be_bytes())
        .collect()
}

/// One encoding step; `base64offset` gives three variants.
fn encode_bytes(m: Modifier, v: &[u8]) -> Vec<Vec<u8>> {
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    match m {
        Modifier::Wide => vec![utf16le(v)],
        Modifier::Utf16be => vec![utf16be(v)],
        Modifier::Utf16 => {
            let mut out = vec![0xFF, 0xFE];
            out.extend(utf16le(v));
            vec![out]
        }
        Modifier::Base64 => vec![b64(v).into_bytes()],
        Modifier::Base64Offset => {
            // As pySigma: shift by 0..2 bytes, cut the positions that depend on neighbours.
            let start = [0usize, 2, 3];
            let end: [usize; 3] = [0, 3, 2];
            (0..3)
                .filter_map(|i| {
                    let mut data = vec![b' '; i];
                    data.extend_from_slice(v);
                    let enc = b64(&data);
                    let stop = enc.len().saturating_sub(end[(v.len() + i) % 3]);
                    (start[i] < stop).then(|| enc.as_bytes()[start[i]..stop].to_vec())
                })
                .collect()
        }
        _ => vec![v.to_vec()],
    }
}

fn condition(c: &ConditionExpr, index: &HashMap<String, u32>) -> CResult<Cond> {
    Ok(match c {
        ConditionExpr::Identifier(name) => match index.get(name) {
            Some(&i) => Cond::Det(i),
            None => {
                return invalid(
                    format!("condition names `{name}`, which is not a detection"),
                    "condition:",
                );
            }
        },
        ConditionExpr::And(cs) => Cond::And(
            cs.iter()
                .map(|c| condition(c, index))
                .collect::<CResult<_>>()?,
        ),
        ConditionExpr::Or(cs) => Cond::Or(
            cs.iter()
                .map(|c| condition(c, index))
                .collect::<CResult<_>>()?,
        ),
        ConditionExpr::Not(c) => Cond::Not(Box::new(condition(c, index)?)),
        ConditionExpr::Selector {
            quantifier,
            pattern,
        } => {
            let mut names: Vec<(&String, u32)> = index
                .iter()
                .filter(|(name, _)| match pattern {
                    SelectorPattern::Them => !name.starts_with('_'),
                    SelectorPattern::Pattern(p) => rsigma_parser::detection_name_matches(p, name),
                })
                .map(|(n, i)| (n, *i))
                .collect();
            names.sort();
            if names.is_empty() {
                return invalid(
                    format!("`{quantifier} of {pattern}` matches no detection"),
                    "condition:",
                );
            }
            let dets: Vec<Cond> = names.into_iter().map(|(_, i)| Cond::Det(i)).collect();
            match quantifier {
                Quantifier::Any => Cond::Or(dets),
                Quantifier::All => Cond::And(dets),
                Quantifier::Count(n) => Cond::AtLeast(*n, dets),
            }
        }
    })
}

/// What a modifier does to a value, for checking chains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Where the value is matched: contains, startswith, endswith.
    Place,
    /// How the text is encoded: utf16*, wide.
    Utf16,
    /// base64 or base64offset.
    Base64,
    /// windash permutations.
    Windash,
    /// A regular expression, and its flags.
    Re,
    ReFlag,
    Cidr,
    /// lt, lte, gt, gte.
    Compare,
    /// minute … year.
    TimePart,
    Exists,
    Expand,
    FieldRef,
    /// all, cased, neq: they go with anything that has values.
    Generic,
}

fn role(m: Modifier) -> Role {
    match m {
        Modifier::Contains | Modifier::StartsWith | Modifier::EndsWith => Role::Place,
        Modifier::Wide | Modifier::Utf16be | Modifier::Utf16 => Role::Utf16,
        Modifier::Base64 | Modifier::Base64Offset => Role::Base64,
        Modifier::WindAsh => Role::Windash,
        Modifier::Re => Role::Re,
        Modifier::IgnoreCase | Modifier::Multiline | Modifier::DotAll => Role::ReFlag,
        Modifier::Cidr => Role::Cidr,
        Modifier::Gt | Modifier::Gte | Modifier::Lt | Modifier::Lte => Role::Compare,
        Modifier::Minute
        | Modifier::Hour
        | Modifier::Day
        | Modifier::Week
        | Modifier::Month
        | Modifier::Year => Role::TimePart,
        Modifier::Exists => Role::Exists,
        Modifier::Expand => Role::Expand,
        Modifier::FieldRef => Role::FieldRef,
        Modifier::All | Modifier::Cased | Modifier::Neq => Role::Generic,
    }
}

/// Checks a modifier chain against what each modifier takes and gives (the value types of the
/// specification's modifier appendix, as pySigma applies them left to right): a chain that
/// would drop or contradict a modifier is refused rather than silently read another way.
fn check_chain(mods: &[Modifier]) -> Result<(), String> {
    let name = |m: &Modifier| modifier_name(*m);
    for (i, m) in mods.iter().enumerate() {
        if mods[..i].contains(m) {
            return Err(format!("modifier `{}` given twice", name(m)));
        }
    }
    let of = |r: Role| mods.iter().filter(move |m| role(**m) == r);
    let first = |r: Role| of(r).next();
    let pos = |r: Role| mods.iter().position(|m| role(*m) == r);
    let at_most_one = |r: Role| -> Result<(), String> {
        let v: Vec<&str> = of(r).map(name).collect();
        if v.len() > 1 {
            return Err(format!("`{}` cannot be combined", v.join("` and `")));
        }
        Ok(())
    };
    for r in [
        Role::Place,
        Role::Utf16,
        Role::Base64,
        Role::Compare,
        Role::TimePart,
    ] {
        at_most_one(r)?;
    }
    // Modifiers that make a different kind of value exclude the string ones and each other.
    let alone_with = |r: Role, allowed: &[Role]| -> Result<(), String> {
        if let Some(m) = first(r)
            && let Some(o) = mods
                .iter()
                .find(|o| role(**o) != r && !allowed.contains(&role(**o)))
        {
            return Err(format!(
                "`{}` cannot be combined with `{}`",
                name(m),
                name(o)
            ));
        }
        Ok(())
    };
    alone_with(Role::Exists, &[])?;
    alone_with(Role::Re, &[Role::ReFlag, Role::Generic])?;
    alone_with(Role::Cidr, &[Role::Generic])?;
    alone_with(Role::Compare, &[Role::TimePart, Role::Generic])?;
    alone_with(Role::TimePart, &[Role::Compare, Role::Generic])?;
    alone_with(Role::FieldRef, &[Role::Place, Role::Generic])?;
    if let Some(f) = first(Role::ReFlag)
        && pos(Role::Re).is_none_or(|r| r > mods.iter().position(|m| m == f).unwrap_or(0))
    {
        return Err(format!(
            "`{}` is a flag of `re` and comes after it",
            name(f)
        ));
    }
    // Text is encoded before it is placed (encoding a pattern with wildcards means something
    // else), and dashes are permuted before encoding (not in the encoded text). `windash` and
    // the placement go in either order (`contains|windash` is common).
    let must_precede = [
        (Role::Windash, Role::Utf16),
        (Role::Windash, Role::Base64),
        (Role::Utf16, Role::Base64),
        (Role::Utf16, Role::Place),
        (Role::Base64, Role::Place),
    ];
    for (before, after) in must_precede {
        if let (Some(x), Some(y)) = (pos(before), pos(after))
            && x > y
        {
            return Err(format!(
                "`{}` must come before `{}`",
                name(&mods[x]),
                name(&mods[y])
            ));
        }
    }
    if let Some(u) = first(Role::Utf16)
        && first(Role::Base64).is_none()
    {
        return Err(format!(
            "`{}` gives bytes that only make sense base64-encoded (`{}|base64offset`)",
            name(u),
            name(u)
        ));
    }
    Ok(())
}

pub(crate) fn modifier_name(m: Modifier) -> &'static str {
    match m {
        Modifier::Contains => "contains",
        Modifier::StartsWith => "startswith",
        Modifier::EndsWith => "endswith",
        Modifier::All => "all",
        Modifier::Base64 => "base64",
        Modifier::Base64Offset => "base64offset",
        Modifier::Wide => "wide",
        Modifier::Utf16be => "utf16be",
        Modifier::Utf16 => "utf16",
        Modifier::WindAsh => "windash",
        Modifier::Re => "re",
        Modifier::Cidr => "cidr",
        Modifier::Cased => "cased",
        Modifier::Exists => "exists",
        Modifier::Expand => "expand",
        Modifier::FieldRef => "fieldref",
        Modifier::Gt => "gt",
        Modifier::Gte => "gte",
        Modifier::Lt => "lt",
        Modifier::Lte => "lte",
        Modifier::Neq => "neq",
        Modifier::IgnoreCase => "i",
        Modifier::Multiline => "m",
        Modifier::DotAll => "s",
        Modifier::Minute => "minute",
        Modifier::Hour => "hour",
        Modifier::Day => "day",
        Modifier::Week => "week",
        Modifier::Month => "month",
        Modifier::Year => "year",
    }
}

// ---- static analysis for the index and the prefilter -------------------------------------

/// Event ids the rule can match at all, when the condition pins `EventID` to constants.
pub(crate) fn required_event_ids(
    nodes: &[Node],
    cond: &Cond,
    eventid_slot: Option<u32>,
) -> Option<BTreeSet<i64>> {
    let slot = eventid_slot?;
    cond_ids(cond, nodes, slot)
}

fn cond_ids(c: &Cond, nodes: &[Node], slot: u32) -> Option<BTreeSet<i64>> {
    match c {
        Cond::Det(i) => node_ids(&nodes[*i as usize], slot),
        Cond::And(cs) => cs
            .iter()
            .filter_map(|c| cond_ids(c, nodes, slot))
            .reduce(|a, b| a.intersection(&b).copied().collect()),
        Cond::Or(cs) | Cond::AtLeast(_, cs) => {
            if matches!(c, Cond::AtLeast(0, _)) {
                return None;
            }
            union_all(cs.iter().map(|c| cond_ids(c, nodes, slot)))
        }
        Cond::Not(_) | Cond::Const(_) => None,
    }
}

fn union_all(it: impl Iterator<Item = Option<BTreeSet<i64>>>) -> Option<BTreeSet<i64>> {
    let mut acc = BTreeSet::new();
    let mut any = false;
    for s in it {
        acc.extend(s?);
        any = true;
    }
    any.then_some(acc)
}

fn node_ids(n: &Node, slot: u32) -> Option<BTreeSet<i64>> {
    match n {
        Node::All(cs) => cs
            .iter()
            .filter_map(|c| node_ids(c, slot))
            .reduce(|a, b| a.intersection(&b).copied().collect()),
        Node::Any(cs) => union_all(cs.iter().map(|c| node_ids(c, slot))),
        Node::Item(Item {
            field: Some(f),
            test:
                Test::Values {
                    ms,
                    all: false,
                    neq: false,
                },
        }) if *f == slot => {
            let mut set = BTreeSet::new();
            for m in ms {
                match m {
                    Matcher::Int(i) => {
                        set.insert(*i);
                    }
                    Matcher::Str(p) => match &p.test {
                        crate::matcher::StrTest::Exact(s)
                            if !s.is_empty()
                                && s.bytes().all(|b| b.is_ascii_digit())
                                && !s.starts_with('0') =>
                        {
                            set.insert(s.parse().ok()?);
                        }
                        _ => return None,
                    },
                    _ => return None,
                }
            }
            Some(set)
        }
        Node::Item(_) => None,
    }
}

/// Gives every scannable substring test its literal id, adding needles to the table.
/// Returns the ids given.
pub(crate) fn assign_scan_literals(
    nodes: &mut [Node],
    ids: &mut HashMap<Lit, u32>,
    lits: &mut Vec<Lit>,
) -> Vec<u32> {
    fn walk(n: &mut Node, ids: &mut HashMap<Lit, u32>, lits: &mut Vec<Lit>, used: &mut Vec<u32>) {
        match n {
            Node::All(cs) | Node::Any(cs) => cs.iter_mut().for_each(|c| walk(c, ids, lits, used)),
            Node::Item(Item {
                field,
                test: Test::Values { ms, .. },
            }) => {
                for m in ms.iter_mut() {
                    if let Matcher::Str(p) = m
                        && let Some(needle) = p.scannable_needle().map(str::to_ascii_lowercase)
                    {
                        let id = intern_lit(ids, lits, (*field, needle));
                        p.lit = Some(id);
                        used.push(id);
                    }
                }
            }
            Node::Item(_) => {}
        }
    }
    let mut used = Vec::new();
    nodes.iter_mut().for_each(|n| walk(n, ids, lits, &mut used));
    used
}

/// Whether any item of the rule is a keyword (tested against every field).
pub(crate) fn has_keywords(nodes: &[Node]) -> bool {
    fn walk(n: &Node) -> bool {
        match n {
            Node::All(cs) | Node::Any(cs) => cs.iter().any(walk),
            Node::Item(i) => i.field.is_none(),
        }
    }
    nodes.iter().any(walk)
}

/// A literal and the field it must occur in (`None`: any field, from a keyword).
pub(crate) type Lit = (Option<u32>, String);

/// The id of literal `l` in the rule set's table, added when new.
pub(crate) fn intern_lit(ids: &mut HashMap<Lit, u32>, lits: &mut Vec<Lit>, l: Lit) -> u32 {
    *ids.entry(l).or_insert_with_key(|l| {
        lits.push(l.clone());
        (lits.len() - 1) as u32
    })
}

/// Sets of literals every event the rule matches holds one of each (ASCII
/// case-insensitively): the rule need only be evaluated when every set has a literal in the
/// event. At most [`MAX_GATES`] sets, the most selective; `None` when none can be proven.
pub(crate) fn required_literals(nodes: &[Node], cond: &Cond) -> Option<Vec<Vec<Lit>>> {
    let mut sets = cond_lits(cond, nodes)?;
    for s in sets.iter_mut() {
        s.sort();
        s.dedup();
    }
    sets.sort_by_key(|s| std::cmp::Reverse(selectivity(s)));
    sets.dedup();
    sets.truncate(MAX_GATES);
    Some(sets)
}

/// Literal sets a rule's evaluation waits for.
const MAX_GATES: usize = 4;

/// How selective a set of literals is: the longer its shortest literal (up to 8 bytes), then
/// the fewer literals, the better.
fn selectivity(s: &[Lit]) -> (usize, usize) {
    let min = s.iter().map(|l| l.1.len()).min().unwrap_or(0);
    (min.min(8), usize::MAX - s.len())
}

/// Of sets that must all hold, the single most selective.
fn best(sets: Vec<Vec<Lit>>) -> Option<Vec<Lit>> {
    sets.into_iter().max_by_key(|s| selectivity(s))
}

/// Every one of several parts holds: all their sets.
fn all_of(parts: impl Iterator<Item = Option<Vec<Vec<Lit>>>>) -> Option<Vec<Vec<Lit>>> {
    let sets: Vec<Vec<Lit>> = parts.flatten().flatten().collect();
    (!sets.is_empty()).then_some(sets)
}

/// One of several parts holds: one set, each part's most selective set joined.
fn one_of(parts: impl Iterator<Item = Option<Vec<Vec<Lit>>>>) -> Option<Vec<Vec<Lit>>> {
    let mut acc = Vec::new();
    for p in parts {
        acc.extend(best(p?)?);
    }
    if acc.is_empty() {
        return None;
    }
    acc.sort();
    acc.dedup();
    Some(vec![acc])
}

fn cond_lits(c: &Cond, nodes: &[Node]) -> Option<Vec<Vec<Lit>>> {
    match c {
        Cond::Det(i) => node_lits(&nodes[*i as usize]),
        Cond::And(cs) => all_of(cs.iter().map(|c| cond_lits(c, nodes))),
        Cond::AtLeast(n, cs) if *n as usize >= cs.len() && !cs.is_empty() => {
            all_of(cs.iter().map(|c| cond_lits(c, nodes)))
        }
        Cond::AtLeast(0, _) => None,
        Cond::Or(cs) | Cond::AtLeast(_, cs) => one_of(cs.iter().map(|c| cond_lits(c, nodes))),
        Cond::Not(_) | Cond::Const(_) => None,
    }
}

fn node_lits(n: &Node) -> Option<Vec<Vec<Lit>>> {
    match n {
        Node::All(cs) => all_of(cs.iter().map(node_lits)),
        Node::Any(cs) => one_of(cs.iter().map(node_lits)),
        Node::Item(Item {
            field,
            test:
                Test::Values {
                    ms,
                    all,
                    neq: false,
                },
        }) => {
            let lits = |m: &Matcher| -> Option<Vec<Vec<Lit>>> {
                let set: Vec<Lit> = match m {
                    Matcher::Str(p) => p
                        .gate_literals()?
                        .into_iter()
                        .map(|l| (*field, l))
                        .collect(),
                    Matcher::Re(re) => crate::matcher::regex_literals(re.as_str())?
                        .into_iter()
                        .map(|l| (*field, l))
                        .collect(),
                    _ => return None,
                };
                Some(vec![set])
            };
            if *all {
                all_of(ms.iter().map(lits))
            } else {
                one_of(ms.iter().map(lits))
            }
        }
        Node::Item(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The literal sets a rule waits for, as needles.
    fn gates(detection: &str) -> Option<Vec<Vec<String>>> {
        let loaded = crate::load::load(
            &[crate::load::RuleSource {
                name: "t.yml".into(),
                text: format!(
                    "title: t\nlogsource: {{product: windows}}\ndetection:\n{detection}\nlevel: high\n"
                ),
            }],
            &Default::default(),
        );
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        let rs = &loaded.rules;
        rs.rules[0].literals.as_ref().map(|sets| {
            sets.iter()
                .map(|set| set.iter().map(|&l| rs.lits[l as usize].1.clone()).collect())
                .collect()
        })
    }

    #[test]
    fn rules_wait_for_a_literal_of_every_part_they_need() {
        // Both selections: a literal of each.
        assert_eq!(
            gates(
                "  img: {Image|endswith: ['\\cmd.exe', '\\pwsh.exe']}\n  cli: {CommandLine|contains: rmdir}\n  condition: img and cli"
            ),
            Some(vec![
                vec!["\\cmd.exe".to_string(), "\\pwsh.exe".to_string()],
                vec!["rmdir".to_string()],
            ])
        );
        // `|all`: each value; a filter adds nothing.
        assert_eq!(
            gates(
                "  sel: {CommandLine|contains|all: [' -enc ', 'hidden']}\n  f: {User: admin}\n  condition: sel and not f"
            ),
            Some(vec![vec![" -enc ".to_string()], vec!["hidden".to_string()]])
        );
        // Alternatives: one set, the most selective set of each joined.
        assert_eq!(
            gates(
                "  a: {Image|endswith: '\\a.exe', CommandLine|contains: x}\n  b: {Image|endswith: '\\bb.exe'}\n  condition: a or b"
            ),
            Some(vec![vec!["\\a.exe".to_string(), "\\bb.exe".to_string()]])
        );
        // A part without literals leaves the rule ungated only when it is an alternative.
        assert_eq!(
            gates("  a: {Image|endswith: '\\a.exe'}\n  b: {EventID: 1}\n  condition: a or b"),
            None
        );
        assert_eq!(
            gates("  a: {Image|endswith: '\\a.exe'}\n  b: {EventID: 1}\n  condition: a and b"),
            Some(vec![vec!["\\a.exe".to_string()]])
        );
        // At most four sets, the most selective.
        let many = gates(
            "  sel: {A|contains|all: [ab, abcdefghij, abc, abcd, abcde, abcdef]}\n  condition: sel",
        )
        .unwrap();
        assert_eq!(many.len(), 4);
        assert!(many.iter().all(|s| s[0].len() >= 4), "{many:?}");
    }

    #[test]
    fn base64offset_matches_pysigma() {
        let got: Vec<String> = encode_bytes(Modifier::Base64Offset, b"/bin/sh")
            .into_iter()
            .map(|b| String::from_utf8(b).unwrap())
            .collect();
        assert_eq!(got, vec!["L2Jpbi9za", "9iaW4vc2", "vYmluL3No"]);
    }

    #[test]
    fn windash_permutes_every_dash() {
        let v = windash(vec![vec![Tok::Lit("-a /b".into())]], "k").unwrap();
        assert_eq!(v.len(), 25);
        assert!(v.contains(&vec![Tok::Lit("/a -b".into())]));
        assert!(v.contains(&vec![Tok::Lit("\u{2014}a \u{2015}b".into())]));
    }

    #[test]
    fn wide_then_base64() {
        assert_eq!(
            encode_bytes(Modifier::Wide, b"cmd"),
            vec![b"c\0m\0d\0".to_vec()]
        );
        assert_eq!(
            encode_bytes(Modifier::Base64, &encode_bytes(Modifier::Utf16, b"cmd")[0]),
            vec![b"//5jAG0AZAA=".to_vec()]
        );
    }
}
