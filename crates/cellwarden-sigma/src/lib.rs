//! Sigma detection rules for cellwarden.
//!
//! Rules are parsed with `rsigma-parser` (the Sigma 2.1 reference parser for Rust) and compiled
//! here into matchers for cellwarden's event model: field names resolve to slots once, values
//! to the cheapest test (equality, prefix, suffix, substring, anchored regex), and each rule is
//! indexed by log source and by the `EventID` constants its condition requires. A literal
//! prefilter evaluates a rule only once the event holds a literal of each part the rule needs
//! (each field scanned once for the literals rules look for in it, through small window
//! indexes and a per-thread memo of recently scanned texts). Evaluation is read-only on a
//! shared [`RuleSet`] with a per-thread [`Scratch`].

mod compile;
mod correlation;
mod engine;
mod load;
mod matcher;
#[cfg(test)]
mod testgen;

pub use compile::Placeholders;
pub use correlation::{CorrelationRun, CorrelationState};
pub use engine::{RuleSet, Scratch};
pub use load::{
    LoadOptions, Loaded, MAX_RULE_FILE_BYTES, Problem, ProblemKind, RulePathError, RuleSource,
    attack_from_tags, builtin_sources, collect_rule_files, load,
};

/// A placeholder file that is not a YAML mapping of names to values.
#[derive(Debug, thiserror::Error)]
pub enum PlaceholderError {
    /// Not the expected YAML.
    #[error("{0}")]
    Yaml(#[from] yaml_serde::Error),
    /// Nested too deeply to parse.
    #[error("{0}")]
    TooDeep(#[from] cellwarden_source::yaml::TooDeep),
}

/// Reads a placeholder file for the `expand` modifier: a YAML mapping of name to a list of
/// values (or one value).
pub fn read_placeholders(text: &str) -> Result<Placeholders, PlaceholderError> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum V {
        One(String),
        Many(Vec<String>),
    }
    cellwarden_source::yaml::check_nesting(text)?;
    let map: std::collections::HashMap<String, V> = yaml_serde::from_str(text)?;
    Ok(map
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                match v {
                    V::One(s) => vec![s],
                    V::Many(l) => l,
                },
            )
        })
        .collect())
}
