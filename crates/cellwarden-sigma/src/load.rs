//! Loading rule files: parsing with rsigma-parser, compiling, and reporting every rule that
//! does not load with its file, line and reason.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cellwarden_event::{Level, RuleInfo};
use rsigma_parser::{FilterRule, FilterRuleTarget, SigmaRule};
use serde::Serialize;

use crate::compile::{
    CompileError, Compiler, FieldTable, Placeholders, assign_scan_literals, has_keywords,
    intern_lit, required_event_ids, required_literals,
};
use crate::engine::{CompiledRule, RuleLogSource, RuleSet};

include!(concat!(env!("OUT_DIR"), "/builtin_rules.rs"));

/// Largest rule file read; larger ones are reported invalid.
pub const MAX_RULE_FILE_BYTES: u64 = 4 << 20;

/// One rule file's text and the name it is reported under.
#[derive(Debug, Clone)]
pub struct RuleSource {
    /// The file path, or `builtin:rules/…` for the built-in pack.
    pub name: String,
    /// The YAML text.
    pub text: String,
}

/// Why a rule did not load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProblemKind {
    /// Valid Sigma that the engine does not evaluate.
    Unsupported,
    /// Not a valid Sigma rule.
    Invalid,
}

/// A rule (or file) that did not load.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// The file.
    pub file: String,
    /// Line of the problem, when known.
    pub line: Option<usize>,
    /// The rule's title, when it could be read.
    pub title: Option<String>,
    /// Unsupported or invalid.
    pub kind: ProblemKind,
    /// What is wrong, for people.
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        let kind = match self.kind {
            ProblemKind::Unsupported => "unsupported",
            ProblemKind::Invalid => "invalid",
        };
        write!(f, ": {kind}: ")?;
        if let Some(t) = &self.title {
            write!(f, "rule '{}': ", t.escape_debug())?;
        }
        write!(f, "{}", self.reason)
    }
}

/// Options for loading.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Values for `%name%` placeholders of the `expand` modifier.
    pub placeholders: Placeholders,
    /// Rules below this level are left out of the rule set (still counted as loaded).
    pub min_level: Option<Level>,
}

/// The result of loading: the rule set and what did not load.
#[derive(Debug)]
pub struct Loaded {
    /// The compiled rules.
    pub rules: RuleSet,
    /// Rule files read.
    pub files: usize,
    /// Rules loaded (including those left out by `min_level`).
    pub loaded: usize,
    /// Correlation rules loaded.
    pub correlations: usize,
    /// Meta-filter documents loaded.
    pub filters: usize,
    /// Rules that are valid Sigma but not evaluated.
    pub unsupported: usize,
    /// Files or rules that are not valid Sigma.
    pub invalid: usize,
    /// Every rule or file that did not load, with file and line.
    pub problems: Vec<Problem>,
}

/// The project's own rule pack, compiled into the binary.
pub fn builtin_sources() -> Vec<RuleSource> {
    BUILTIN_RULES
        .iter()
        .map(|(name, text)| RuleSource {
            name: (*name).to_owned(),
            text: (*text).to_owned(),
        })
        .collect()
}

/// A rule path given on the command line that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct RulePathError {
    /// The path as given.
    pub path: PathBuf,
    /// Why it cannot be read.
    pub source: std::io::Error,
}

/// Collects `.yml`/`.yaml` files under the given paths (folders recursively, sorted). A path
/// that does not exist is an error; unreadable files become problems.
pub fn collect_rule_files(
    paths: &[PathBuf],
) -> Result<(Vec<RuleSource>, Vec<Problem>), RulePathError> {
    let mut files = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|source| RulePathError {
            path: p.clone(),
            source,
        })?;
        if meta.is_dir() {
            walk(p, &mut files);
        } else {
            files.push(p.clone());
        }
    }
    let mut sources = Vec::new();
    let mut problems = Vec::new();
    for f in files {
        let name = f.display().to_string();
        let size = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
        if size > MAX_RULE_FILE_BYTES {
            problems.push(Problem {
                file: name,
                line: None,
                title: None,
                kind: ProblemKind::Invalid,
                reason: format!("file is {size} bytes, over the {MAX_RULE_FILE_BYTES} byte limit"),
            });
            continue;
        }
        match std::fs::read(&f) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => sources.push(RuleSource { name, text }),
                Err(e) => problems.push(Problem {
                    file: name,
                    line: None,
                    title: None,
                    kind: ProblemKind::Invalid,
                    reason: format!("not UTF-8 (byte {})", e.utf8_error().valid_up_to() + 1),
                }),
            },
            Err(e) => problems.push(Problem {
                file: name,
                line: None,
                title: None,
                kind: ProblemKind::Invalid,
                reason: e.to_string(),
            }),
        }
    }
    Ok((sources, problems))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out);
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")) {
            out.push(p);
        }
    }
}

/// First 1-based line containing `needle` at or after line `from`.
fn line_of(text: &str, needle: &str, from: usize) -> Option<usize> {
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find(|(_, l)| l.contains(needle))
        .map(|(i, _)| i + 1)
}

/// Sigma 1.0 aggregations in a condition (`| count() by x > 5`, `| near`).
fn uses_legacy_aggregation(text: &str) -> bool {
    text.lines()
        .filter(|l| l.trim_start().starts_with("condition:") || l.trim_start().starts_with("- "))
        .any(|l| {
            l.contains('|')
                && ["count(", "sum(", "avg(", "min(", "max(", "near "]
                    .iter()
                    .any(|k| l.contains(k))
        })
}

/// Parser messages can span lines (a caret diagram); keep them on one.
fn one_line(msg: &str) -> String {
    msg.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.chars().all(|c| c == '|' || c == '^' || c.is_whitespace()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn line_in_message(msg: &str) -> Option<usize> {
    let i = msg.find("line ")?;
    let digits: String = msg[i + 5..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

struct Parsed {
    file: usize,
    rule: SigmaRule,
}

/// One rule file parsed, or why not.
fn parse_one(src: &RuleSource) -> Result<rsigma_parser::SigmaCollection, Problem> {
    let text = &src.text;
    let problem = |line, reason| Problem {
        file: src.name.clone(),
        line,
        title: None,
        kind: ProblemKind::Invalid,
        reason,
    };
    if text.len() as u64 > MAX_RULE_FILE_BYTES {
        return Err(problem(None, "file over the size limit".into()));
    }
    if let Err(e) = cellwarden_source::yaml::check_nesting(text) {
        return Err(problem(Some(e.line), e.to_string()));
    }
    match std::panic::catch_unwind(|| rsigma_parser::parse_sigma_yaml(text)) {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => {
            let msg = e.to_string();
            Err(problem(line_in_message(&msg), msg))
        }
        Err(_) => Err(problem(None, "the rule parser failed on this file".into())),
    }
}

/// Every rule file parsed, in order, on all cores (parsing is most of loading thousands of
/// rules; compiling stays in one thread, in file order, so field and literal ids do not depend
/// on it).
fn parse_all(sources: &[RuleSource]) -> Vec<Result<rsigma_parser::SigmaCollection, Problem>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || sources.len() < 64 {
        return sources.iter().map(parse_one).collect();
    }
    let per = sources.len().div_ceil(threads);
    std::thread::scope(|s| {
        let parts: Vec<_> = sources
            .chunks(per)
            .map(|part| s.spawn(move || part.iter().map(parse_one).collect::<Vec<_>>()))
            .collect();
        parts
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// Parses and compiles rule files into a rule set.
pub fn load(sources: &[RuleSource], opts: &LoadOptions) -> Loaded {
    let mut problems = Vec::new();
    let mut rules: Vec<Parsed> = Vec::new();
    let mut filters: Vec<(usize, FilterRule)> = Vec::new();
    let mut correlations: Vec<(usize, rsigma_parser::CorrelationRule)> = Vec::new();
    for (fi, (src, parsed)) in sources.iter().zip(parse_all(sources)).enumerate() {
        let text = &src.text;
        let collection = match parsed {
            Ok(c) => c,
            Err(p) => {
                problems.push(p);
                continue;
            }
        };
        for err in &collection.errors {
            let condition_err = err.contains("ondition");
            let line = line_in_message(err)
                .filter(|_| err.contains("YAML"))
                .or_else(|| {
                    condition_err
                        .then(|| line_of(text, "condition:", 1))
                        .flatten()
                });
            let unsupported = condition_err && uses_legacy_aggregation(text);
            problems.push(Problem {
                file: src.name.clone(),
                line,
                title: None,
                kind: if unsupported {
                    ProblemKind::Unsupported
                } else {
                    ProblemKind::Invalid
                },
                reason: if unsupported {
                    "legacy aggregation in condition (Sigma 1.0 `| count()`/`near`); write it as a correlation rule".to_owned()
                } else {
                    one_line(err)
                },
            });
        }
        for c in collection.correlations {
            correlations.push((fi, c));
        }
        for f in collection.filters {
            filters.push((fi, f));
        }
        for r in collection.rules {
            rules.push(Parsed { file: fi, rule: r });
        }
    }

    let mut fields = FieldTable::default();
    let mut lit_ids: HashMap<crate::compile::Lit, u32> = HashMap::new();
    let mut lits: Vec<crate::compile::Lit> = Vec::new();
    // Rules a correlation names: kept whatever --min-level says, and silent on their own
    // unless a correlation naming them says `generate: true`.
    let mut referenced: HashMap<&str, bool> = HashMap::new();
    for (_, c) in &correlations {
        for r in &c.rules {
            let g = referenced.entry(r.as_str()).or_insert(false);
            *g |= c.generate;
        }
    }
    let reference_of = |rule: &SigmaRule| -> Option<bool> {
        [
            rule.id.as_deref(),
            rule.name.as_deref(),
            Some(rule.title.as_str()),
        ]
        .into_iter()
        .flatten()
        .find_map(|k| referenced.get(k).copied())
    };
    let mut compiled = Vec::new();
    let mut loaded = 0;
    let mut loaded_correlations = 0;
    for p in &rules {
        let src = &sources[p.file];
        let rule = &p.rule;
        let title_line = line_of(&src.text, &rule.title, 1).unwrap_or(1);
        let applicable: Vec<&rsigma_parser::Detections> = filters
            .iter()
            .filter(|(_, f)| filter_applies(f, rule))
            .map(|(_, f)| &f.detection)
            .collect();
        let mut compiler = Compiler {
            fields: &mut fields,
            placeholders: &opts.placeholders,
        };
        match compiler.rule(&rule.detection, &applicable) {
            Ok((nodes, cond)) => {
                loaded += 1;
                let level = rule
                    .level
                    .map(convert_level)
                    .unwrap_or(Level::Informational);
                let generate = reference_of(rule);
                let below = opts.min_level.is_some_and(|m| level < m);
                if below && generate.is_none() {
                    continue;
                }
                let emit = !below && generate.unwrap_or(true);
                let event_ids =
                    required_event_ids(&nodes, &cond, fields.map.get("EventID").copied());
                let literals = required_literals(&nodes, &cond).map(|sets| {
                    sets.into_iter()
                        .map(|set| {
                            set.into_iter()
                                .map(|l| intern_lit(&mut lit_ids, &mut lits, l))
                                .collect()
                        })
                        .collect()
                });
                compiled.push(CompiledRule {
                    emit,
                    names: [rule.id.clone(), rule.name.clone(), Some(rule.title.clone())]
                        .into_iter()
                        .flatten()
                        .collect(),
                    scan_lits: Vec::new(),
                    keywords: has_keywords(&nodes),
                    info: Arc::new(rule_info!(rule, &src.name)),
                    level,
                    logsource: RuleLogSource {
                        product: rule.logsource.product.clone(),
                        service: rule.logsource.service.clone(),
                        category: rule.logsource.category.clone(),
                    },
                    nodes,
                    cond,
                    event_ids,
                    literals,
                });
            }
            Err(e) => {
                let (kind, reason, at) = match e {
                    CompileError::Unsupported(r, at) => (ProblemKind::Unsupported, r, at),
                    CompileError::Invalid(r, at) => (ProblemKind::Invalid, r, at),
                };
                let line = at
                    .and_then(|k| line_of(&src.text, &k, title_line))
                    .or_else(|| line_of(&src.text, "detection:", title_line))
                    .or(Some(title_line));
                problems.push(Problem {
                    file: src.name.clone(),
                    line,
                    title: Some(rule.title.clone()),
                    kind,
                    reason,
                });
            }
        }
    }
    for r in compiled.iter_mut() {
        let mut used = assign_scan_literals(&mut r.nodes, &mut lit_ids, &mut lits);
        used.extend(r.literals.iter().flatten().flatten().copied());
        used.sort_unstable();
        used.dedup();
        r.scan_lits = used;
    }
    let corrs = compile_correlations(
        &correlations,
        sources,
        &compiled,
        opts,
        &mut problems,
        &mut loaded_correlations,
    );
    problems.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    let unsupported = problems
        .iter()
        .filter(|p| p.kind == ProblemKind::Unsupported)
        .count();
    let invalid = problems.len() - unsupported;
    Loaded {
        rules: RuleSet::build(compiled, fields, lits, corrs),
        correlations: loaded_correlations,
        files: sources.len(),
        loaded,
        filters: filters.len(),
        unsupported,
        invalid,
        problems,
    }
}

/// Compiles correlation rules. A correlation may name detection rules or other correlations;
/// one naming a missing rule, a correlation that does not load, or itself (through a cycle)
/// does not load.
fn compile_correlations(
    correlations: &[(usize, rsigma_parser::CorrelationRule)],
    sources: &[RuleSource],
    compiled: &[CompiledRule],
    opts: &LoadOptions,
    problems: &mut Vec<Problem>,
    loaded: &mut usize,
) -> Vec<crate::correlation::Correlation> {
    use crate::correlation::{CORR_BIT, Correlation};
    let n = correlations.len();
    let rule_refs = |r: &str| -> Vec<u32> {
        compiled
            .iter()
            .enumerate()
            .filter(|(_, x)| x.names.iter().any(|n| n == r))
            .map(|(i, _)| i as u32)
            .collect()
    };
    let corr_refs = |r: &str| -> Vec<usize> {
        correlations
            .iter()
            .enumerate()
            .filter(|(_, (_, c))| {
                c.id.as_deref() == Some(r) || c.name.as_deref() == Some(r) || c.title == r
            })
            .map(|(i, _)| i)
            .collect()
    };
    let mut reason: Vec<Option<String>> = vec![None; n];
    // Names that resolve nowhere.
    for (k, (_, c)) in correlations.iter().enumerate() {
        if let Some(r) = c
            .rules
            .iter()
            .find(|r| rule_refs(r).is_empty() && corr_refs(r).is_empty())
        {
            reason[k] = Some(format!(
                "names rule `{r}`, which is not among the loaded rules"
            ));
        }
    }
    // Cycles: a correlation reachable from itself.
    for (k, why) in reason.iter_mut().enumerate() {
        let mut stack = vec![k];
        let mut seen = vec![false; n];
        while let Some(x) = stack.pop() {
            for r in &correlations[x].1.rules {
                if !rule_refs(r).is_empty() {
                    continue;
                }
                for y in corr_refs(r) {
                    if y == k && why.is_none() {
                        *why = Some("correlations name each other in a cycle".into());
                    }
                    if !seen[y] {
                        seen[y] = true;
                        stack.push(y);
                    }
                }
            }
        }
    }
    // A correlation naming one that does not load does not load either.
    loop {
        let mut changed = false;
        for k in 0..n {
            if reason[k].is_some() {
                continue;
            }
            for r in &correlations[k].1.rules {
                if rule_refs(r).is_empty() && corr_refs(r).iter().any(|&y| reason[y].is_some()) {
                    reason[k] = Some(format!("names correlation `{r}`, which does not load"));
                    changed = true;
                    break;
                }
            }
        }
        if !changed {
            break;
        }
    }
    let mut index = vec![u32::MAX; n];
    let mut next = 0u32;
    for k in 0..n {
        if reason[k].is_none() {
            index[k] = next;
            next += 1;
        }
    }
    let mut out = Vec::new();
    for (k, (fi, c)) in correlations.iter().enumerate() {
        let src = &sources[*fi];
        let problem = |reason: String| Problem {
            file: src.name.clone(),
            line: line_of(&src.text, "correlation:", 1),
            title: Some(c.title.clone()),
            kind: ProblemKind::Invalid,
            reason,
        };
        if let Some(r) = &reason[k] {
            problems.push(problem(r.clone()));
            continue;
        }
        let resolve = |r: &str| -> Vec<u32> {
            let rules = rule_refs(r);
            if !rules.is_empty() {
                return rules;
            }
            corr_refs(r)
                .into_iter()
                .map(|y| CORR_BIT | index[y])
                .collect()
        };
        let level = c.level.map(convert_level).unwrap_or(Level::Informational);
        let info = rule_info!(c, &src.name);
        // Below --min-level, or named by another correlation without `generate`: it still
        // feeds the correlations that name it, but raises nothing itself.
        let named_silently = correlations.iter().any(|(_, o)| {
            !o.generate
                && o.rules.iter().any(|r| {
                    c.id.as_deref() == Some(r) || c.name.as_deref() == Some(r) || c.title == *r
                })
        });
        let emit = opts.min_level.is_none_or(|m| level >= m) && !named_silently;
        match Correlation::compile(c, info, level, emit, &resolve) {
            Ok(x) => {
                *loaded += 1;
                out.push(x);
            }
            Err(r) => {
                problems.push(problem(r));
                // Keep indexes aligned: a dependant sees a correlation that never fires.
                out.push(Correlation::inert());
            }
        }
    }
    out
}

fn filter_applies(f: &FilterRule, rule: &SigmaRule) -> bool {
    let targeted = match &f.rules {
        FilterRuleTarget::Any => true,
        FilterRuleTarget::Specific(refs) => refs.iter().any(|r| {
            rule.id.as_deref() == Some(r.as_str())
                || rule.name.as_deref() == Some(r.as_str())
                || rule.title == *r
        }),
    };
    if !targeted {
        return false;
    }
    let Some(fls) = &f.logsource else {
        return true;
    };
    let sub = |want: &Option<String>, have: &Option<String>| match want {
        None => true,
        Some(w) => have.as_ref().is_some_and(|h| h.eq_ignore_ascii_case(w)),
    };
    sub(&fls.product, &rule.logsource.product)
        && sub(&fls.service, &rule.logsource.service)
        && sub(&fls.category, &rule.logsource.category)
}

fn convert_level(l: rsigma_parser::Level) -> Level {
    match l {
        rsigma_parser::Level::Informational => Level::Informational,
        rsigma_parser::Level::Low => Level::Low,
        rsigma_parser::Level::Medium => Level::Medium,
        rsigma_parser::Level::High => Level::High,
        rsigma_parser::Level::Critical => Level::Critical,
    }
}

pub use cellwarden_event::attack_from_tags;

/// Alert metadata from a detection or correlation rule (both have these fields).
macro_rules! rule_info {
    ($rule:expr, $source:expr) => {{
        let rule = $rule;
        let (techniques, tactics) = attack_from_tags(&rule.tags);
        RuleInfo {
            id: rule
                .id
                .clone()
                .or_else(|| rule.name.clone())
                .unwrap_or_else(|| rule.title.clone()),
            title: rule.title.clone(),
            author: rule.author.clone(),
            description: rule.description.clone(),
            status: rule.status.map(|s| format!("{s:?}").to_lowercase()),
            references: rule.references.clone(),
            falsepositives: rule.falsepositives.clone(),
            tags: rule.tags.clone(),
            techniques,
            tactics,
            source: $source.to_owned(),
        }
    }};
}
use rule_info;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attack_tags() {
        let (t, a) = attack_from_tags(&[
            "attack.credential-access".into(),
            "attack.t1003.001".into(),
            "attack.ta0008".into(),
            "attack.privilege_escalation".into(),
            "cve.2021-1234".into(),
        ]);
        assert_eq!(t, vec!["T1003.001"]);
        assert_eq!(
            a,
            vec![
                "credential-access",
                "lateral-movement",
                "privilege-escalation"
            ]
        );
    }

    #[test]
    fn lines_in_messages() {
        assert_eq!(line_in_message("bad at line 12 column 3"), Some(12));
        assert_eq!(line_in_message("nothing"), None);
    }
}
