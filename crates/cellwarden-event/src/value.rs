use std::borrow::Cow;

/// A typed field value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// No value (JSON `null`).
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string, borrowed from the input where it can be.
    Str(Cow<'a, str>),
    /// A list of values.
    List(Vec<Value<'a>>),
}

impl<'a> Value<'a> {
    /// Text form of a scalar: strings as they are, numbers in decimal, booleans as
    /// `true`/`false`. `None` for null and lists.
    pub fn as_text(&self) -> Option<Cow<'_, str>> {
        match self {
            Value::Str(s) => Some(Cow::Borrowed(s.as_ref())),
            Value::Int(i) => Some(Cow::Owned(i.to_string())),
            Value::Float(f) => Some(Cow::Owned(f.to_string())),
            Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
            Value::Null | Value::List(_) => None,
        }
    }

    /// Numeric form: integers and floats, and strings that parse as numbers.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Str(s) => parse_number(s),
            _ => None,
        }
    }

    /// Integer form: integers, integral floats, and strings holding a decimal or `0x` number.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Float(f) if f.fract() == 0.0 => Some(*f as i64),
            Value::Str(s) => {
                let s = s.trim();
                if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                    i64::from_str_radix(hex, 16).ok()
                } else {
                    s.parse().ok()
                }
            }
            _ => None,
        }
    }

    /// Is `Null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value with everything it borrows copied.
    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Null => Value::Null,
            Value::Bool(b) => Value::Bool(b),
            Value::Int(i) => Value::Int(i),
            Value::Float(f) => Value::Float(f),
            Value::Str(s) => Value::Str(Cow::Owned(s.into_owned())),
            Value::List(l) => Value::List(l.into_iter().map(Value::into_owned).collect()),
        }
    }

    /// As JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// As JSON: null, booleans, numbers (a float JSON cannot hold is null), strings and arrays.
impl serde::Serialize for Value<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(f) if !f.is_finite() => s.serialize_unit(),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Str(t) => s.serialize_str(t),
            Value::List(l) => s.collect_seq(l),
        }
    }
}

/// [`Value`] as stored in state snapshots: tagged (the JSON form above is untagged, which a
/// binary form cannot read back).
#[derive(serde::Serialize, serde::Deserialize)]
enum Stored<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    List(Vec<Stored<'a>>),
}

impl<'a> Stored<'a> {
    fn of(v: &'a Value<'_>) -> Stored<'a> {
        match v {
            Value::Null => Stored::Null,
            Value::Bool(b) => Stored::Bool(*b),
            Value::Int(i) => Stored::Int(*i),
            Value::Float(f) => Stored::Float(*f),
            Value::Str(t) => Stored::Str(Cow::Borrowed(t)),
            Value::List(l) => Stored::List(l.iter().map(Stored::of).collect()),
        }
    }

    fn into_value(self) -> Value<'static> {
        match self {
            Stored::Null => Value::Null,
            Stored::Bool(b) => Value::Bool(b),
            Stored::Int(i) => Value::Int(i),
            Stored::Float(f) => Value::Float(f),
            Stored::Str(t) => Value::Str(Cow::Owned(t.into_owned())),
            Stored::List(l) => Value::List(l.into_iter().map(Stored::into_value).collect()),
        }
    }
}

/// An event's fields as stored in state snapshots (see [`Stored`]).
pub(crate) fn stored_fields<'a>(
    fields: &'a [(Cow<'_, str>, Value<'_>)],
) -> impl Iterator<Item = (&'a str, impl serde::Serialize + 'a)> + 'a {
    fields.iter().map(|(k, v)| (k.as_ref(), Stored::of(v)))
}

/// Fields read back from a state snapshot.
#[derive(serde::Deserialize)]
#[serde(transparent)]
pub(crate) struct StoredFields(Vec<(String, Stored<'static>)>);

impl StoredFields {
    pub(crate) fn into_fields(self) -> Vec<(Cow<'static, str>, Value<'static>)> {
        self.0
            .into_iter()
            .map(|(k, v)| (Cow::Owned(k), v.into_value()))
            .collect()
    }
}

fn parse_number(s: &str) -> Option<f64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return i64::from_str_radix(hex, 16).ok().map(|i| i as f64);
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_numbers() {
        assert_eq!(Value::Int(4688).as_text().unwrap(), "4688");
        assert_eq!(Value::Str("0x10".into()).as_i64(), Some(16));
        assert_eq!(Value::Str(" 12 ".into()).as_f64(), Some(12.0));
        assert_eq!(Value::Null.as_text(), None);
        assert_eq!(Value::Float(2.0).as_i64(), Some(2));
        assert_eq!(Value::Float(2.5).as_i64(), None);
    }
}
