//! JSON objects to events without building a JSON tree: a streaming walk flattens nested
//! objects into dotted field names and borrows strings from the input where it can.
//!
//! Three export shapes get Sigma field names:
//! - EVTX as JSON (`Event.System.*`, `Event.EventData.*`, `Event.UserData.*.*`): the
//!   `System`/`EventData` level is dropped, XML attributes become `Name_Attribute`
//!   (`Provider_Name`), `#text` becomes the element's own value.
//! - Winlogbeat/ECS (`winlog.event_data.*`, `winlog.channel`, …): event data fields lose their
//!   prefix, and `Channel`, `EventID`, `Computer`, `Provider_Name`, `EventRecordID` are added.
//! - Anything else: nested objects are joined with `.` (`process.command_line`).

use std::borrow::Cow;
use std::fmt;

use cellwarden_event::Value;

/// Fields of one event: name and value.
pub type Fields<'a> = Vec<(Cow<'a, str>, Value<'a>)>;

/// A field value owning its text.
pub(crate) fn owned(x: &str) -> Value<'static> {
    Value::Str(Cow::Owned(x.to_owned()))
}

/// Adds field `k` unless `v` is empty or the record has the field already; the value
/// borrows from the record's text.
pub(crate) fn put_new<'t>(out: &mut Fields<'t>, k: &'static str, v: &'t str) {
    put_value(out, k, v, |v| Value::Str(Cow::Borrowed(v)));
}

/// [`put_new`] with a copy of the value.
pub(crate) fn put_new_owned(out: &mut Fields<'_>, k: &'static str, v: &str) {
    put_value(out, k, v, |v| Value::Str(Cow::Owned(v.to_owned())));
}

fn put_value<'t, 'v>(
    out: &mut Fields<'t>,
    k: &'static str,
    v: &'v str,
    value: impl FnOnce(&'v str) -> Value<'t>,
) {
    if !v.is_empty() && !out.iter().any(|(n, _)| n == k) {
        out.push((Cow::Borrowed(k), value(v)));
    }
}

/// Where `lit` first occurs in `text` (`last`: where it last occurs). Short needles met
/// once each: cheaper than building a searcher for them.
pub(crate) fn find_str(text: &str, lit: &str, last: bool) -> Option<usize> {
    let (t, l) = (text.as_bytes(), lit.as_bytes());
    let (&first, tail) = l.split_first()?;
    if last {
        let mut end = t.len();
        while let Some(i) = memchr::memrchr(first, &t[..end]) {
            if t[i + 1..].starts_with(tail) {
                return Some(i);
            }
            end = i;
        }
        None
    } else {
        let mut from = 0;
        while let Some(i) = memchr::memchr(first, &t[from..]) {
            let at = from + i;
            if t[at + 1..].starts_with(tail) {
                return Some(at);
            }
            from = at + 1;
        }
        None
    }
}

/// Splits a reader's note (`mark`, then `\x1f`-separated values, appended on a line of its
/// own) from the record text it was appended to.
pub(crate) fn split_note<'a>(text: &'a str, mark: &str) -> (&'a str, Option<Vec<&'a str>>) {
    match find_str(text, mark, true) {
        Some(i) => (
            text[..i].strip_suffix('\n').unwrap_or(&text[..i]),
            Some(text[i + mark.len()..].split('\x1f').skip(1).collect()),
        ),
        None => (text, None),
    }
}

/// A JSON text that is not an object this module can flatten, and where it went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    what: &'static str,
    /// Byte offset in the text.
    at: usize,
}

impl JsonError {
    /// The line of the text (from 1) the problem is on.
    pub fn line(&self, text: &str) -> usize {
        let at = self.at.min(text.len());
        1 + memchr::memchr_iter(b'\n', &text.as_bytes()[..at]).count()
    }
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{} at byte {}", self.what, self.at + 1)
    }
}

impl std::error::Error for JsonError {}

/// Objects and arrays nested this deep are refused (hostile input), as serde_json does.
const MAX_DEPTH: u32 = 128;

/// Flattens one JSON object into fields (RFC 8259; the text is UTF-8 already). Errors name
/// the byte of the problem.
///
/// A parser of its own rather than serde_json's: walking serde_json's visitor was two thirds
/// of reading a Zeek JSON record, and simd-json (tape) and sonic-rs (serde) measured no faster
/// on one-line records. Numbers follow serde_json: integers that fit `i64` are integers, those
/// that fit only `u64` are kept as their text, others and fractions are `f64` (out of range:
/// an error).
pub fn flatten(text: &str) -> Result<Fields<'_>, JsonError> {
    let mut r = Reader {
        text,
        b: text.as_bytes(),
        i: 0,
    };
    r.ws();
    if r.peek() != Some(b'{') {
        return Err(r.err("expected a JSON object"));
    }
    let mut out = Vec::with_capacity(32);
    let mut path = String::with_capacity(64);
    let mut shape = Shape::Unknown;
    let mut leaf_len = 0;
    Walk {
        path: &mut path,
        shape: &mut shape,
        leaf_len: &mut leaf_len,
        out: &mut out,
    }
    .value(
        &mut r,
        Borrowed {
            name: None,
            last: None,
        },
        0,
    )?;
    r.ws();
    if r.i != r.b.len() {
        return Err(r.err("trailing characters"));
    }
    if shape != Shape::Evtx {
        rename_winlogbeat(&mut out);
    }
    Ok(out)
}

/// The text being read and where.
struct Reader<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    fn err(&self, what: &'static str) -> JsonError {
        JsonError { what, at: self.i }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// Steps over `c`, or fails with `what`.
    fn expect(&mut self, c: u8, what: &'static str) -> Result<(), JsonError> {
        self.ws();
        if self.peek() != Some(c) {
            return Err(self.err(what));
        }
        self.i += 1;
        Ok(())
    }

    /// The string starting at the quote here: borrowed unless it has escapes.
    fn string(&mut self) -> Result<Cow<'a, str>, JsonError> {
        self.i += 1;
        let start = self.i;
        // Quotes, backslashes and control characters are ASCII: every stop is a char boundary.
        self.i += plain_run(&self.b[self.i..]);
        match self.peek() {
            Some(b'"') => {
                self.i += 1;
                return Ok(Cow::Borrowed(&self.text[start..self.i - 1]));
            }
            Some(b'\\') => {}
            Some(_) => return Err(self.err("control character in a string")),
            None => return Err(self.err("end of text in a string")),
        }
        let mut s = String::with_capacity(self.i - start + 16);
        s.push_str(&self.text[start..self.i]);
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(Cow::Owned(s));
                }
                Some(b'\\') => {
                    self.i += 1;
                    let c = match self.peek() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => self.unicode()?,
                        _ => return Err(self.err("invalid escape")),
                    };
                    self.i += 1;
                    s.push(c);
                }
                Some(c) if plain(c) => {
                    let from = self.i;
                    self.i += plain_run(&self.b[self.i..]);
                    s.push_str(&self.text[from..self.i]);
                }
                Some(_) => return Err(self.err("control character in a string")),
                None => return Err(self.err("end of text in a string")),
            }
        }
    }

    /// The character of a `\u` escape (at its `u`; a surrogate pair takes the next escape
    /// too); left on the escape's last digit.
    fn unicode(&mut self) -> Result<char, JsonError> {
        let hi = self.hex4()?;
        let code = match hi {
            0xD800..=0xDBFF => {
                if self.b.get(self.i + 1..self.i + 3) != Some(b"\\u") {
                    return Err(self.err("lone leading surrogate in a \\u escape"));
                }
                self.i += 2;
                let lo = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&lo) {
                    return Err(self.err("invalid surrogate pair in a \\u escape"));
                }
                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(self.err("lone trailing surrogate in a \\u escape")),
            c => c,
        };
        char::from_u32(code).ok_or_else(|| self.err("invalid \\u escape"))
    }

    /// Four hex digits after the `u` here; left on the last.
    fn hex4(&mut self) -> Result<u32, JsonError> {
        let mut v = 0;
        for _ in 0..4 {
            self.i += 1;
            let d = match self.peek() {
                Some(c @ b'0'..=b'9') => c - b'0',
                Some(c @ b'a'..=b'f') => c - b'a' + 10,
                Some(c @ b'A'..=b'F') => c - b'A' + 10,
                _ => return Err(self.err("invalid \\u escape")),
            };
            v = v * 16 + u32::from(d);
        }
        Ok(v)
    }

    fn digits(&mut self) -> usize {
        let from = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        self.i - from
    }

    fn number(&mut self) -> Result<Value<'a>, JsonError> {
        let start = self.i;
        let neg = self.peek() == Some(b'-');
        if neg {
            self.i += 1;
        }
        // The integer part's value, read as it is stepped over (exact up to 18 digits).
        let mut int: u64 = 0;
        let int_from = self.i;
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                while let Some(c @ b'0'..=b'9') = self.peek() {
                    int = int.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
                    self.i += 1;
                }
            }
            _ => return Err(self.err("invalid number")),
        }
        let short = self.i - int_from <= 18;
        let mut integer = true;
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return Err(self.err("invalid number"));
            }
            integer = false;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(self.err("invalid number"));
            }
            integer = false;
        }
        let s = &self.text[start..self.i];
        if integer && short {
            let v = int as i64;
            return Ok(match (neg, v) {
                // serde_json reads `-0` as a float (it keeps the sign).
                (true, 0) => Value::Float(-0.0),
                (true, v) => Value::Int(-v),
                (false, v) => Value::Int(v),
            });
        }
        if integer {
            if let Ok(v) = s.parse::<i64>() {
                // serde_json reads `-0` as a float (it keeps the sign).
                return Ok(if neg && v == 0 {
                    Value::Float(-0.0)
                } else {
                    Value::Int(v)
                });
            }
            if !neg && s.parse::<u64>().is_ok() {
                return Ok(Value::Str(Cow::Borrowed(s)));
            }
        }
        match s.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Value::Float(v)),
            _ => Err(JsonError {
                what: "number out of range",
                at: start,
            }),
        }
    }

    /// Steps over `word` (a literal), or fails.
    fn literal(&mut self, word: &'static [u8]) -> Result<(), JsonError> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(self.err("expected a value"))
        }
    }
}

/// Whether a byte stands for itself in a string (not a quote, backslash or control character).
fn plain(c: u8) -> bool {
    c != b'"' && c != b'\\' && c >= 0x20
}

/// How many bytes from the start of `b` are [`plain`]: eight at a time (strings are most of a
/// record's bytes).
fn plain_run(b: &[u8]) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    // A byte's high bit is set in the result where it is zero, for the lowest such byte and
    // possibly some above it (borrows), never below: the lowest bit set is exact.
    let zero = |x: u64| x.wrapping_sub(LO) & !x & HI;
    let mut i = 0;
    while let Some(w) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(w.try_into().expect("eight bytes"));
        let stop = zero(w ^ (LO * u64::from(b'"')))
            | zero(w ^ (LO * u64::from(b'\\')))
            | (w.wrapping_sub(LO * 0x20) & !w & HI);
        if stop != 0 {
            return i + (stop.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i + b[i..]
        .iter()
        .position(|&c| !plain(c))
        .unwrap_or(b.len() - i)
}

/// Where a walk writes the fields of one record.
struct Walk<'s, 'a> {
    path: &'s mut String,
    shape: &'s mut Shape,
    /// Length of the path of the last field written (an array folds in an element written
    /// under its own path: a scalar).
    leaf_len: &'s mut usize,
    out: &'s mut Fields<'a>,
}

/// Whether the document is EVTX-JSON (its first field under `Event.`), known from its first
/// field on: its fields then get their Sigma names as they are read (see [`evtx_name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Unknown,
    Evtx,
    Other,
}

/// What is borrowed of the current path: `name`, the path as written in the input when it is
/// one key without escapes (the fields of a flat object are named without a copy each);
/// `last`, the path's last key when it has no escapes.
#[derive(Clone, Copy)]
struct Borrowed<'a> {
    name: Option<&'a str>,
    last: Option<&'a str>,
}

impl<'a> Walk<'_, 'a> {
    /// Reads the value here under the current path.
    fn value(&mut self, r: &mut Reader<'a>, at: Borrowed<'a>, depth: u32) -> Result<(), JsonError> {
        r.ws();
        let v = match r.peek() {
            Some(b'{') => return self.object(r, depth),
            Some(b'[') => return self.array(r, at, depth),
            Some(b'"') => Value::Str(r.string()?),
            Some(b'-' | b'0'..=b'9') => r.number()?,
            Some(b't') => r.literal(b"true").map(|()| Value::Bool(true))?,
            Some(b'f') => r.literal(b"false").map(|()| Value::Bool(false))?,
            Some(b'n') => r.literal(b"null").map(|()| Value::Null)?,
            _ => return Err(r.err("expected a value")),
        };
        if let Some(n) = self.name(at) {
            self.out.push((n, v));
            *self.leaf_len = self.path.len();
        }
        Ok(())
    }

    /// Steps into the object or array here, unless it is nested too deep.
    fn enter(r: &mut Reader<'a>, depth: u32) -> Result<(), JsonError> {
        if depth + 1 >= MAX_DEPTH {
            return Err(r.err("nested too deep"));
        }
        r.i += 1;
        r.ws();
        Ok(())
    }

    fn object(&mut self, r: &mut Reader<'a>, depth: u32) -> Result<(), JsonError> {
        Self::enter(r, depth)?;
        if r.peek() == Some(b'}') {
            r.i += 1;
            return Ok(());
        }
        loop {
            r.ws();
            if r.peek() != Some(b'"') {
                return Err(r.err("expected a key"));
            }
            let key = r.string()?;
            r.expect(b':', "expected `:`")?;
            let len = self.path.len();
            if !self.path.is_empty() {
                self.path.push('.');
            }
            self.path.push_str(&key);
            let last = match key {
                Cow::Borrowed(k) => Some(k),
                Cow::Owned(_) => None,
            };
            let at = Borrowed {
                name: last.filter(|_| len == 0),
                last,
            };
            self.value(r, at, depth + 1)?;
            self.path.truncate(len);
            r.ws();
            match r.peek() {
                Some(b',') => r.i += 1,
                Some(b'}') => {
                    r.i += 1;
                    return Ok(());
                }
                _ => return Err(r.err("expected `,` or `}`")),
            }
        }
    }

    /// Scalars become one list value; objects inside are walked under the same name.
    fn array(&mut self, r: &mut Reader<'a>, at: Borrowed<'a>, depth: u32) -> Result<(), JsonError> {
        Self::enter(r, depth)?;
        let field = self.name(at);
        let mut items: Vec<Value<'a>> = Vec::new();
        if r.peek() == Some(b']') {
            r.i += 1;
        } else {
            loop {
                let start = self.out.len();
                self.value(r, at, depth + 1)?;
                // A scalar element shows up as one field under exactly our path: fold it in.
                if self.out.len() == start + 1 && *self.leaf_len == self.path.len() {
                    let (_, v) = self.out.pop().expect("one leaf");
                    items.push(v);
                }
                r.ws();
                match r.peek() {
                    Some(b',') => r.i += 1,
                    Some(b']') => {
                        r.i += 1;
                        break;
                    }
                    _ => return Err(r.err("expected `,` or `]`")),
                }
            }
        }
        if !(items.is_empty() && depth == 0)
            && let Some(field) = field
        {
            self.out.push((field, Value::List(items)));
            *self.leaf_len = self.path.len();
        }
        Ok(())
    }

    /// The field's name; `None` for a field left out (EVTX namespace attributes).
    fn name(&mut self, at: Borrowed<'a>) -> Option<Cow<'a, str>> {
        if *self.shape == Shape::Unknown {
            *self.shape = if self.path.starts_with("Event.") {
                Shape::Evtx
            } else {
                Shape::Other
            };
        }
        if *self.shape == Shape::Evtx {
            return evtx_name(self.path, at.last);
        }
        Some(match at.name {
            Some(n) => Cow::Borrowed(n),
            None => match interned(self.path) {
                Some(n) => Cow::Borrowed(n),
                None => Cow::Owned(self.path.clone()),
            },
        })
    }
}

/// Distinct nested field names a thread keeps (see [`interned`]).
const INTERNED_NAMES: usize = 4096;
/// The longest name kept.
const INTERNED_NAME_BYTES: usize = 128;

/// A nested field's name (`account.user`) without a copy per record: records of one log repeat
/// the same names, so the first [`INTERNED_NAMES`] names of up to [`INTERNED_NAME_BYTES`]
/// bytes a thread meets are kept for the life of the process (at most 512 KiB a thread, however
/// many names hostile input makes up); later ones are copied per record.
fn interned(path: &str) -> Option<&'static str> {
    thread_local! {
        static NAMES: std::cell::RefCell<std::collections::HashSet<&'static str>> =
            std::cell::RefCell::new(std::collections::HashSet::new());
    }
    if path.len() > INTERNED_NAME_BYTES {
        return None;
    }
    NAMES.with_borrow_mut(|names| {
        if let Some(n) = names.get(path) {
            return Some(*n);
        }
        if names.len() >= INTERNED_NAMES {
            return None;
        }
        let n: &'static str = Box::leak(path.into());
        names.insert(n);
        Some(n)
    })
}

/// Gives the Winlogbeat shape its Sigma field names (EVTX-JSON fields are named as they are
/// read, by `Walk::name`).
fn rename_winlogbeat(fields: &mut Fields<'_>) {
    if fields.iter().any(|(n, _)| n.starts_with("winlog.")) {
        let mut extra = Vec::new();
        for (name, value) in fields.iter_mut() {
            if let Some(rest) = name
                .strip_prefix("winlog.event_data.")
                .or_else(|| name.strip_prefix("winlog.user_data."))
            {
                *name = Cow::Owned(rest.to_owned());
            } else {
                let alias = match name.as_ref() {
                    "winlog.channel" => "Channel",
                    "winlog.event_id" | "event.code" => "EventID",
                    "winlog.computer_name" => "Computer",
                    "winlog.provider_name" => "Provider_Name",
                    "winlog.record_id" => "EventRecordID",
                    _ => continue,
                };
                // `event.code` and `winlog.event_id` are strings in some versions.
                let v = match (alias, &*value) {
                    ("EventID" | "EventRecordID", Value::Str(s)) => s
                        .parse::<i64>()
                        .map(Value::Int)
                        .unwrap_or_else(|_| value.clone()),
                    _ => value.clone(),
                };
                extra.push((Cow::Borrowed(alias), v));
            }
        }
        for (k, v) in extra {
            if !fields.iter().any(|(n, _)| *n == k) {
                fields.push((k, v));
            }
        }
    }
}

/// Where the Sigma name starts in an EVTX-JSON path (`Event.System.Computer` → `Computer`),
/// or `None` for a path that is dropped (namespace attributes).
fn evtx_name_start(path: &str) -> Option<usize> {
    const EVENT: usize = "Event.".len();
    let rest = path.strip_prefix("Event.")?;
    let (start, rest) = if let Some(r) = rest.strip_prefix("System.") {
        (EVENT + "System.".len(), r)
    } else if let Some(r) = rest.strip_prefix("EventData.") {
        (EVENT + "EventData.".len(), r)
    } else if let Some(r) = rest.strip_prefix("UserData.") {
        // Skip the wrapping element (`EventXML`, …).
        let at = EVENT + "UserData.".len();
        match r.find('.') {
            Some(i) => (at + i + 1, &r[i + 1..]),
            None => (at, r),
        }
    } else if rest.starts_with("#attributes") {
        return None;
    } else {
        (EVENT, rest)
    };
    if rest.starts_with("#attributes.xmlns") || rest.ends_with(".xmlns") {
        return None;
    }
    Some(start)
}

/// The Sigma name of an EVTX-JSON path (`Event.System.Computer` → `Computer`,
/// `Provider.#attributes.Name` → `Provider_Name`, `Data.#text` → `Data`), borrowed from the
/// text when it is the path's last key as written (`last`); `None` for a path that is left
/// out (namespace attributes, anything outside `Event`).
fn evtx_name<'a>(path: &str, last: Option<&'a str>) -> Option<Cow<'a, str>> {
    let start = evtx_name_start(path)?;
    let s = &path[start..];
    if !s.as_bytes().contains(&b'#') {
        return Some(match last {
            Some(k) if k == s => Cow::Borrowed(k),
            _ => Cow::Owned(s.to_owned()),
        });
    }
    let mut s = s.replace(".#attributes.", "_");
    if let Some(kept) = s.strip_suffix(".#text").map(str::len) {
        s.truncate(kept);
    }
    if s == "#text" {
        s = "Data".to_owned();
    }
    Some(Cow::Owned(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_found_first_and_last() {
        assert_eq!(find_str("a,b,,c,,", ",,", false), Some(3));
        assert_eq!(find_str("a,b,,c,,", ",,", true), Some(6));
        assert_eq!(find_str("a,b,,c,", ",,", true), Some(3));
        assert_eq!(find_str("abc", "cd", false), None);
        assert_eq!(find_str("abc", "cd", true), None);
        assert_eq!(find_str("abc", "", false), None);
        assert_eq!(find_str("\x1enote x\x1enote", "\x1enote", true), Some(7));
    }

    fn get<'a>(f: &'a Fields<'_>, k: &str) -> Option<&'a Value<'a>> {
        f.iter().find(|(n, _)| n == k).map(|(_, v)| v)
    }

    #[test]
    fn flat_and_nested_objects() {
        let f = flatten(r#"{"a":1,"b":{"c":"x","d":[1,2]},"e":null,"f":true}"#).unwrap();
        assert_eq!(get(&f, "a"), Some(&Value::Int(1)));
        assert_eq!(get(&f, "b.c"), Some(&Value::Str("x".into())));
        assert_eq!(
            get(&f, "b.d"),
            Some(&Value::List(vec![Value::Int(1), Value::Int(2)]))
        );
        assert_eq!(get(&f, "e"), Some(&Value::Null));
        assert_eq!(get(&f, "f"), Some(&Value::Bool(true)));
    }

    #[test]
    fn strings_are_borrowed_unless_escaped() {
        let text = r#"{"a":"plain","b":"C:\\x"}"#;
        let f = flatten(text).unwrap();
        assert!(matches!(get(&f, "a"), Some(Value::Str(Cow::Borrowed(_)))));
        assert_eq!(get(&f, "b"), Some(&Value::Str("C:\\x".into())));
    }

    #[test]
    fn evtx_json_shape() {
        let text = r##"{"Event":{"#attributes":{"xmlns":"x"},"System":{"Provider":{"#attributes":{"Name":"Microsoft-Windows-Sysmon"}},"EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational","Computer":"pc1","TimeCreated":{"#attributes":{"SystemTime":"2024-01-01T00:00:00Z"}}},"EventData":{"Image":"C:\\a.exe","CommandLine":"a"}}}"##;
        let f = flatten(text).unwrap();
        assert_eq!(get(&f, "EventID"), Some(&Value::Int(1)));
        assert_eq!(
            get(&f, "Provider_Name"),
            Some(&Value::Str("Microsoft-Windows-Sysmon".into()))
        );
        assert_eq!(get(&f, "Image"), Some(&Value::Str("C:\\a.exe".into())));
        assert!(get(&f, "TimeCreated_SystemTime").is_some());
        assert!(f.iter().all(|(n, _)| !n.contains("xmlns")));
    }

    #[test]
    fn evtx_json_text_and_userdata() {
        let text = r##"{"Event":{"System":{"EventID":{"#attributes":{"Qualifiers":16384},"#text":7045}},"UserData":{"EventXML":{"#attributes":{"xmlns":"y"},"Param1":"v"}}}}"##;
        let f = flatten(text).unwrap();
        assert_eq!(get(&f, "EventID"), Some(&Value::Int(7045)));
        assert_eq!(get(&f, "EventID_Qualifiers"), Some(&Value::Int(16384)));
        assert_eq!(get(&f, "Param1"), Some(&Value::Str("v".into())));
    }

    #[test]
    fn evtx_json_names_without_copies_arrays_and_other_keys() {
        // Unnamed `Data` as an array of scalars, and as objects with attributes; a key beside
        // `Event` is left out, as are namespaces; plain names borrow the input.
        let text = r##"{"Event":{"System":{"EventID":1000},"EventData":{"Data":["a","b"],"Binary":"00"},"RenderingInfo":{"Message":"m"}},"Extra":1}"##;
        let f = flatten(text).unwrap();
        let names: Vec<&str> = f.iter().map(|(n, _)| n.as_ref()).collect();
        assert_eq!(
            names,
            ["EventID", "Data", "Binary", "RenderingInfo.Message"]
        );
        assert_eq!(
            get(&f, "Data"),
            Some(&Value::List(vec![
                Value::Str("a".into()),
                Value::Str("b".into())
            ]))
        );
        assert!(matches!(f[0].0, Cow::Borrowed("EventID")));
        assert!(matches!(f[2].0, Cow::Borrowed("Binary")));
        let text = r##"{"Event":{"EventData":{"Data":[{"#attributes":{"Name":"x"},"#text":"1"},{"#text":"2"}]}}}"##;
        let f = flatten(text).unwrap();
        // An object element is not a scalar of the array, even where its `#text` takes the
        // array's own name.
        assert_eq!(
            f,
            vec![
                (Cow::Borrowed("Data_Name"), Value::Str("x".into())),
                (Cow::Borrowed("Data"), Value::Str("1".into())),
                (Cow::Borrowed("Data"), Value::Str("2".into())),
                (Cow::Borrowed("Data"), Value::List(vec![])),
            ]
        );
    }

    #[test]
    fn winlogbeat_shape() {
        let text = r#"{"@timestamp":"2024-01-01T00:00:00Z","winlog":{"channel":"Security","event_id":"4688","computer_name":"dc1","event_data":{"NewProcessName":"C:\\w.exe"}}}"#;
        let f = flatten(text).unwrap();
        assert_eq!(get(&f, "EventID"), Some(&Value::Int(4688)));
        assert_eq!(get(&f, "Channel"), Some(&Value::Str("Security".into())));
        assert_eq!(get(&f, "Computer"), Some(&Value::Str("dc1".into())));
        assert_eq!(
            get(&f, "NewProcessName"),
            Some(&Value::Str("C:\\w.exe".into()))
        );
    }

    #[test]
    fn not_an_object_is_an_error() {
        assert!(flatten("[1,2]").is_err());
        assert!(flatten("42").is_err());
        assert!(flatten(r#"{"a": "#).is_err());
        assert!(flatten("{}").unwrap().is_empty());
    }

    /// What `flatten` is meant to give, from serde_json's tree (non-EVTX shapes): dotted
    /// names; arrays fold scalar and array elements into one list and walk object elements
    /// under their own name.
    fn reference(text: &str) -> Option<Vec<(String, Value<'static>)>> {
        fn scalar(v: &serde_json::Value) -> Option<Value<'static>> {
            Some(match v {
                serde_json::Value::Null => Value::Null,
                serde_json::Value::Bool(b) => Value::Bool(*b),
                serde_json::Value::String(s) => Value::Str(s.clone().into()),
                serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                    (Some(i), _) => Value::Int(i),
                    (None, Some(u)) => Value::Str(u.to_string().into()),
                    _ => Value::Float(n.as_f64()?),
                },
                _ => return None,
            })
        }
        // Returns the value when `v` folds into an enclosing array (a scalar or an array
        // whose elements wrote no field of their own).
        fn walk(
            v: &serde_json::Value,
            path: &str,
            top: bool,
            out: &mut Vec<(String, Value<'static>)>,
        ) -> Option<Value<'static>> {
            match v {
                serde_json::Value::Object(m) => {
                    for (k, x) in m {
                        let p = if path.is_empty() {
                            k.clone()
                        } else {
                            format!("{path}.{k}")
                        };
                        if let Some(x) = walk(x, &p, false, out) {
                            out.push((p, x));
                        }
                    }
                    None
                }
                serde_json::Value::Array(a) => {
                    let before = out.len();
                    let items: Vec<_> =
                        a.iter().filter_map(|x| walk(x, path, false, out)).collect();
                    let _ = top;
                    (out.len() == before)
                        .then_some(Value::List(items.clone()))
                        .or_else(|| {
                            out.push((path.to_owned(), Value::List(items)));
                            None
                        })
                }
                v => scalar(v),
            }
        }
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        v.is_object().then_some(())?;
        let mut out = Vec::new();
        walk(&v, "", true, &mut out);
        Some(out)
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
        fn pick<'x>(&mut self, from: &[&'x str]) -> &'x str {
            from[self.next(from.len())]
        }
    }

    const STRINGS: &[&str] = &[
        r#""""#,
        r#""plain""#,
        r#""C:\\Windows\\x.exe""#,
        r#""quote \" in""#,
        r#""tab\tnew\nline\r\b\f\/""#,
        r#""\u00e9t\u00C9 \ud83d\ude00""#,
        "\"é 😀 raw\"",
        r#""10.1.2.3""#,
    ];
    const NUMBERS: &[&str] = &[
        "0",
        "-0",
        "7",
        "-45",
        "1.5",
        "-2.5E-3",
        "1e3",
        "0.1",
        "123456.789e-2",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "-9223372036854775809",
        "18446744073709551615",
        "18446744073709551616",
        "1e308",
    ];
    // No empty key: it names a field by its parent's path, which then folds into an array.
    const KEYS: &[&str] = &[
        r#""a""#,
        r#""b""#,
        r#""id.orig_h""#,
        r#""x y""#,
        r#""é""#,
        r#""k\"q""#,
        r#""k\u0041""#,
    ];

    fn gen_value(r: &mut Rng, depth: u32, out: &mut String) {
        let ws =
            |r: &mut Rng, out: &mut String| out.push_str([" ", "", "", "\n", "\t "][r.next(5)]);
        match if depth > 4 { r.next(3) } else { r.next(6) } {
            0 => out.push_str(r.pick(STRINGS)),
            1 if r.next(2) == 0 => out.push_str(r.pick(NUMBERS)),
            1 => {
                // A random number: sign, digits, fraction, exponent.
                if r.next(3) == 0 {
                    out.push('-');
                }
                let digits = 1 + r.next(20);
                for i in 0..digits {
                    let d = r.next(10);
                    out.push(char::from(
                        b'0' + if i == 0 && digits > 1 { 1 + d % 9 } else { d } as u8,
                    ));
                }
                if r.next(2) == 0 {
                    out.push('.');
                    for _ in 0..1 + r.next(17) {
                        out.push(char::from(b'0' + r.next(10) as u8));
                    }
                }
                if r.next(3) == 0 {
                    out.push_str(&format!("e{}", r.next(600) as i32 - 300));
                }
            }
            2 => out.push_str(r.pick(&["true", "false", "null"])),
            3 => {
                out.push('[');
                for i in 0..r.next(4) {
                    if i > 0 {
                        out.push(',');
                    }
                    ws(r, out);
                    gen_value(r, depth + 1, out);
                }
                out.push(']');
            }
            _ => gen_object(r, depth + 1, out),
        }
    }

    fn gen_object(r: &mut Rng, depth: u32, out: &mut String) {
        let mut keys: Vec<&str> = KEYS.to_vec();
        out.push('{');
        for i in 0..r.next(5) {
            if i > 0 {
                out.push(',');
            }
            out.push_str([" ", "", "\n"][r.next(3)]);
            let k = keys.remove(r.next(keys.len()));
            out.push_str(k);
            out.push_str([":", " : "][r.next(2)]);
            gen_value(r, depth, out);
        }
        out.push('}');
    }

    #[test]
    fn flattening_agrees_with_serde_json_on_generated_records() {
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut checked, mut refused) = (0, 0);
        for _ in 0..20_000 {
            let mut text = String::new();
            gen_object(&mut r, 0, &mut text);
            let Some(mut want) = reference(&text) else {
                // A number out of range.
                assert!(flatten(&text).is_err(), "{text}");
                continue;
            };
            let mut ours: Vec<(String, Value<'static>)> = flatten(&text)
                .unwrap_or_else(|e| panic!("{e}: {text}"))
                .into_iter()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            // serde_json's tree orders keys: compare as sorted lists (a stable sort keeps the
            // order of fields of the same name, which is the order of the text).
            ours.sort_by(|a, b| a.0.cmp(&b.0));
            want.sort_by(|a, b| a.0.cmp(&b.0));
            // Fractions may differ in their last bit: std's parsing rounds correctly,
            // serde_json's (without its `float_roundtrip`) not always.
            fn near(a: &Value<'_>, b: &Value<'_>) -> bool {
                match (a, b) {
                    (Value::Float(x), Value::Float(y)) => {
                        x == y || (x - y).abs() <= 4.0 * f64::EPSILON * x.abs().max(y.abs())
                    }
                    (Value::List(x), Value::List(y)) => {
                        x.len() == y.len() && x.iter().zip(y).all(|(a, b)| near(a, b))
                    }
                    _ => a == b,
                }
            }
            assert!(
                ours.len() == want.len()
                    && ours
                        .iter()
                        .zip(&want)
                        .all(|(a, b)| a.0 == b.0 && near(&a.1, &b.1)),
                "{text}\n{ours:?}\n{want:?}"
            );
            checked += 1;
            // The same text damaged: refused exactly when serde_json refuses it.
            let chars: Vec<char> = text.chars().collect();
            let at = r.next(chars.len() + 1);
            let mut bad: String = chars[..at.min(chars.len())].iter().collect();
            if r.next(2) == 0 {
                bad.push(
                    [
                        '{', '}', '[', ']', ',', ':', '"', '\\', '1', '.', 'e', '-', 'x',
                    ][r.next(13)],
                );
                bad.extend(&chars[at.min(chars.len())..]);
            } else {
                bad.extend(chars.iter().skip(at + 1));
            }
            let serde_ok =
                serde_json::from_str::<serde_json::Value>(&bad).is_ok_and(|v| v.is_object());
            assert_eq!(flatten(&bad).is_ok(), serde_ok, "{bad}");
            refused += usize::from(!serde_ok);
        }
        assert!(checked > 15_000, "{checked}");
        assert!(
            refused > 5_000,
            "the damaged texts were mostly refused: {refused}"
        );
    }

    #[test]
    fn plain_runs_stop_at_the_first_special_byte() {
        for (text, n) in [
            ("", 0),
            ("abc", 3),
            ("abcdefgh", 8),
            ("abcdefghij\"", 10),
            ("abcdefg\"", 7),
            ("a\\bcdefghij", 1),
            ("abcdefghijklmn\u{1f}", 14),
            ("é😀 abc\u{7f}\u{80}x\"z", "é😀 abc\u{7f}\u{80}x".len()),
            ("\"\"\"\"\"\"\"\"\"", 0),
            ("\u{1}", 0),
            ("abcdefgh \u{0}", 9),
        ] {
            assert_eq!(plain_run(text.as_bytes()), n, "{text:?}");
        }
    }

    #[test]
    fn errors_name_their_byte_and_line() {
        let e = flatten("{\"a\": 1,\n \"b\": tru}").unwrap_err();
        assert_eq!(e.line("{\"a\": 1,\n \"b\": tru}"), 2);
        assert!(
            e.to_string().starts_with("expected a value at byte 16"),
            "{e}"
        );
        for bad in [
            "{\"a\":01}",
            "{\"a\":1.}",
            "{\"a\":-}",
            "{\"a\":\"\u{1}\"}",
            "{\"a\":1e400}",
            "{\"a\":\"\\ud800\"}",
            "{\"a\":\"\\x\"}",
            "{\"a\":1} x",
            "{\"a\" 1}",
            "{a:1}",
        ] {
            assert!(flatten(bad).is_err(), "{bad}");
            assert!(
                serde_json::from_str::<serde_json::Value>(bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn nesting_is_refused_where_serde_json_refuses_it() {
        for depth in [126, 127, 128, 129] {
            let text = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
            assert_eq!(
                flatten(&text).is_ok(),
                serde_json::from_str::<serde_json::Value>(&text).is_ok(),
                "{depth}"
            );
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_crash() {
        let deep = format!("{}{}", "{\"a\":".repeat(10_000), "1");
        assert!(flatten(&deep).is_err());
    }
}
