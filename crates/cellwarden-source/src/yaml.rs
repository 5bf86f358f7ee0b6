//! A guard run before any YAML is parsed (rules, mappings, placeholders): the YAML parser takes
//! time quadratic in the depth of nested flow collections (`[[[[…`: 100 KB took 24 s), so text
//! nested deeper than [`MAX_FLOW_DEPTH`] is refused before it reaches the parser.

/// Deepest nesting of flow collections (`[…]`, `{…}`) accepted. Sigma rules use two or three.
pub const MAX_FLOW_DEPTH: usize = 32;

/// Text nested too deeply to parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("flow collections nested deeper than {max} levels at line {line}; not parsed", max = MAX_FLOW_DEPTH)]
pub struct TooDeep {
    /// 1-based line where the limit was passed.
    pub line: usize,
}

/// Checks the nesting of flow collections. In a flow collection every `[` or `{` outside a
/// quoted scalar opens another; outside one, only a `[` or `{` where a value starts (line
/// start, after `: `, `- `, `? `, or a `!tag`/`&anchor` there) does, as YAML reads them. Quoted
/// scalars and comments are skipped. The count never falls short of the parser's.
pub fn check_nesting(text: &str) -> Result<(), TooDeep> {
    let b = text.as_bytes();
    let mut depth = 0usize;
    let mut line = 1usize;
    // At a place where a value may start.
    let mut value_start = true;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\n' => {
                line += 1;
                value_start = true;
                i += 1;
            }
            b' ' | b'\t' | b'\r' => i += 1,
            b'#' if i == 0 || matches!(b[i - 1], b' ' | b'\t' | b'\n' | b'\r') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'[' | b'{' if value_start || depth > 0 => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
                    return Err(TooDeep { line });
                }
                value_start = true;
                i += 1;
            }
            b']' | b'}' if depth > 0 => {
                depth -= 1;
                value_start = false;
                i += 1;
            }
            b',' if depth > 0 => {
                value_start = true;
                i += 1;
            }
            b'\'' | b'"' if value_start || depth > 0 => {
                // A quoted scalar, to its closing quote ('' and \" escape one).
                i += 1;
                while i < b.len() {
                    if b[i] == b'\n' {
                        line += 1;
                    }
                    if c == b'"' && b[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if b[i] == c {
                        if c == b'\'' && b.get(i + 1) == Some(&b'\'') {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
                value_start = false;
            }
            b':' | b'-' | b'?'
                if b.get(i + 1)
                    .is_none_or(|n| matches!(n, b' ' | b'\t' | b'\n' | b'\r')) =>
            {
                value_start = true;
                i += 1;
            }
            b':' if depth > 0 => {
                value_start = true;
                i += 1;
            }
            b'!' | b'&' if value_start => {
                // A tag or anchor: the value starts after it.
                while i < b.len() && !matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
                    if depth > 0 && matches!(b[i], b',' | b'[' | b']' | b'{' | b'}') {
                        break;
                    }
                    i += 1;
                }
            }
            _ => {
                value_start = false;
                i += 1;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_flow_nesting_is_refused_in_every_spelling() {
        let deep =
            |open: &str, close: &str| format!("a: {}x{}\n", open.repeat(40), close.repeat(40));
        for (o, c) in [
            ("[", "]"),
            ("{a: ", "}"),
            ("!t [", "]"),
            ("&x [", "]"),
            ("[ ", " ]"),
        ] {
            let t = deep(o, c);
            assert_eq!(check_nesting(&t), Err(TooDeep { line: 1 }), "{t}");
        }
        assert!(check_nesting(&format!("- {}\n", "[".repeat(100))).is_err());
        assert!(check_nesting(&format!("? {}\n", "[".repeat(100))).is_err());
        assert!(check_nesting(&format!("a:\n  {}\n", "[\n".repeat(100))).is_err());
    }

    #[test]
    fn real_rules_pass() {
        let ok = [
            "detection:\n  sel:\n    CommandLine|re: 'a[b-c]{2}\\[x'\n    Image|endswith: [a, b]\n",
            "detection:\n  sel:\n    CommandLine|contains: foo[bar]{baz\n  condition: sel\n",
            "tags: [attack.t1003, 'x]']\n# comment [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n",
            "a: \"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"[[[[[\"\n",
            "a: '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[''[['\n",
            "a: {b: [1, {c: [2, 3]}], d: 'x'}\n",
        ];
        for t in ok {
            assert_eq!(check_nesting(t), Ok(()), "{t}");
        }
    }
}
