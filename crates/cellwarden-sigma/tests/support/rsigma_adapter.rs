//! Lets rsigma-eval read cellwarden events, so both evaluators see the very same events.
#![allow(dead_code)]

use std::borrow::Cow;
use std::path::Path;

use cellwarden_event::{Event, Value};
use rsigma_eval::event::{Event as RsEvent, EventValue};

pub struct Adapter<'e, 'a>(pub &'e Event<'a>);

fn convert<'v>(v: &'v Value<'_>) -> EventValue<'v> {
    match v {
        Value::Null => EventValue::Null,
        Value::Bool(b) => EventValue::Bool(*b),
        Value::Int(i) => EventValue::Int(*i),
        Value::Float(f) => EventValue::Float(*f),
        Value::Str(s) => EventValue::Str(Cow::Borrowed(s.as_ref())),
        Value::List(l) => EventValue::Array(l.iter().map(convert).collect()),
    }
}

impl RsEvent for Adapter<'_, '_> {
    fn get_field(&self, path: &str) -> Option<EventValue<'_>> {
        self.0.get(path).map(convert)
    }
    fn any_string_value(&self, pred: &dyn Fn(&str) -> bool) -> bool {
        self.0.fields.iter().any(|(_, v)| match v {
            Value::Str(s) => pred(s),
            Value::List(l) => l.iter().any(|x| matches!(x, Value::Str(s) if pred(s))),
            _ => false,
        })
    }
    fn all_string_values(&self) -> Vec<Cow<'_, str>> {
        let mut out = Vec::new();
        for (_, v) in &self.0.fields {
            match v {
                Value::Str(s) => out.push(Cow::Borrowed(s.as_ref())),
                Value::List(l) => {
                    for x in l {
                        if let Value::Str(s) = x {
                            out.push(Cow::Borrowed(s.as_ref()));
                        }
                    }
                }
                _ => {}
            }
        }
        out
    }
    fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(self.0.fields_json())
    }
}

/// Reads every event of the given inputs into memory (owned), in a stable order.
pub fn read_events(paths: &[&Path]) -> Vec<Event<'static>> {
    use cellwarden_source::{Collected, Mapping};
    let inputs =
        cellwarden_source::discover(&paths.iter().map(|p| p.to_path_buf()).collect::<Vec<_>>())
            .unwrap();
    let mapping = Mapping::builtin();
    let mut events = Vec::new();
    for i in &inputs {
        Collected::read(i, &Default::default())
            .decode(&mapping, &mut |e| events.push(e.into_owned()));
    }
    events
}
