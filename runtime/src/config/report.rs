//! The error collector used by validation, JSON-path builders, and typed accessors on a
//! `serde_json::Value` that report a wrong type at its path instead of failing.
//!
//! Convention: a JSON `null` is treated like an absent member (serde maps both to `None`).

use serde_json::{Map, Value};

use super::ConfigError;

/// Longest piece of user input quoted back in a reason; longer values are cut with `…`.
const MAX_QUOTED: usize = 64;

/// Collects every error and warning found while walking the config.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) errors: Vec<ConfigError>,
    pub(crate) warnings: Vec<ConfigError>,
}

impl Report {
    /// Records an error at `path`.
    pub(crate) fn error(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(ConfigError { path: path.into(), reason: reason.into() });
    }

    /// Records a warning at `path` (accepted, but worth telling the user).
    pub(crate) fn warn(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.warnings.push(ConfigError { path: path.into(), reason: reason.into() });
    }

    /// `value` as an object, or an error at `path`.
    pub(crate) fn object<'a>(&mut self, value: &'a Value, path: &str) -> Option<&'a Map<String, Value>> {
        match value {
            Value::Object(map) => Some(map),
            other => {
                self.error(path, format!("expected an object, found {}", kind(other)));
                None
            }
        }
    }

    /// Member `key` of `obj` as an object (None when absent, or wrong type: reported).
    pub(crate) fn object_at<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        parent: &str,
        key: &str,
    ) -> Option<&'a Map<String, Value>> {
        get(obj, key).and_then(|v| self.object(v, &field(parent, key)))
    }

    /// Member `key` of `obj` as an array.
    pub(crate) fn array_at<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        parent: &str,
        key: &str,
    ) -> Option<&'a [Value]> {
        match get(obj, key)? {
            Value::Array(items) => Some(items),
            other => {
                self.error(field(parent, key), format!("expected an array, found {}", kind(other)));
                None
            }
        }
    }

    /// Member `key` of `obj` as a string.
    pub(crate) fn str_at<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        parent: &str,
        key: &str,
    ) -> Option<&'a str> {
        get(obj, key).and_then(|v| self.string(v, &field(parent, key)))
    }

    /// `value` as a string, or an error at `path`.
    pub(crate) fn string<'a>(&mut self, value: &'a Value, path: &str) -> Option<&'a str> {
        match value {
            Value::String(s) => Some(s),
            other => {
                self.error(path, format!("expected a string, found {}", kind(other)));
                None
            }
        }
    }

    /// Member `key` of `obj` as a bool.
    pub(crate) fn bool_at(&mut self, obj: &Map<String, Value>, parent: &str, key: &str) -> Option<bool> {
        match get(obj, key)? {
            Value::Bool(b) => Some(*b),
            other => {
                self.error(field(parent, key), format!("expected a boolean, found {}", kind(other)));
                None
            }
        }
    }

    /// Member `key` of `obj` as an integer that fits in `i64` (wrong type or range: reported).
    pub(crate) fn i64_at(&mut self, obj: &Map<String, Value>, parent: &str, key: &str) -> Option<i64> {
        let value = get(obj, key)?;
        let path = field(parent, key);
        match value {
            Value::Number(n) if n.is_i64() => n.as_i64(),
            Value::Number(n) if n.is_f64() => {
                self.error(path, format!("expected an integer, found {n}"));
                None
            }
            Value::Number(n) => {
                self.error(path, format!("{n} is out of range for int64"));
                None
            }
            other => {
                self.error(path, format!("expected an integer, found {}", kind(other)));
                None
            }
        }
    }

    /// Member `key` of `obj` as an integer that fits in `u64` (wrong type or range: reported).
    pub(crate) fn u64_at(&mut self, obj: &Map<String, Value>, parent: &str, key: &str) -> Option<u64> {
        let value = get(obj, key)?;
        self.unsigned(value, &field(parent, key), u64::MAX, "uint64")
    }

    /// Member `key` of `obj` as an integer that fits in `u32`.
    pub(crate) fn u32_at(&mut self, obj: &Map<String, Value>, parent: &str, key: &str) -> Option<u32> {
        let value = get(obj, key)?;
        let n = self.unsigned(value, &field(parent, key), u64::from(u32::MAX), "uint32")?;
        u32::try_from(n).ok()
    }

    /// `value` as an unsigned integer no larger than `max` (named `ty` in the reason).
    pub(crate) fn unsigned(&mut self, value: &Value, path: &str, max: u64, ty: &str) -> Option<u64> {
        match value {
            Value::Number(n) => match n.as_u64() {
                Some(v) if v <= max => Some(v),
                _ if n.is_f64() => {
                    self.error(path, format!("expected an integer, found {n}"));
                    None
                }
                _ => {
                    self.error(path, format!("{n} is out of range for {ty}"));
                    None
                }
            },
            other => {
                self.error(path, format!("expected an integer, found {}", kind(other)));
                None
            }
        }
    }

    /// Member `key` of `obj` as an array of strings: yields `(path, string)` for every string
    /// element and reports the others. `None` when the member is absent or not an array.
    pub(crate) fn strings_at<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        parent: &str,
        key: &str,
    ) -> Option<Vec<(String, &'a str)>> {
        let items = self.array_at(obj, parent, key)?;
        let base = field(parent, key);
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let path = index(&base, i);
            if let Some(s) = self.string(item, &path) {
                out.push((path, s));
            }
        }
        Some(out)
    }

    /// Reports `key` of `obj` as missing when it is absent or null.
    pub(crate) fn require(&mut self, obj: &Map<String, Value>, parent: &str, key: &str) -> bool {
        if get(obj, key).is_some() {
            true
        } else {
            self.error(field(parent, key), "required but missing");
            false
        }
    }
}

/// Member `key` of `obj`, treating `null` as absent.
pub(crate) fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// The JSON type name of `value`, for messages.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Path of member `name` under `parent` (`""` is the document root).
pub(crate) fn field(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

/// Path of element `i` of the array at `parent`.
pub(crate) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// Path of the entry `key` of a free-form map (sysctl, annotations, ...): always quoted.
pub(crate) fn map_key(parent: &str, key: &str) -> String {
    field(parent, &quote(key))
}

/// `s` as a JSON string literal, cut to a readable length.
pub(crate) fn quote(s: &str) -> String {
    let cut = match s.char_indices().nth(MAX_QUOTED) {
        Some((at, _)) => &s[..at],
        None => s,
    };
    let mut out = serde_json::to_string(cut).unwrap_or_else(|_| String::from("\"?\""));
    if cut.len() < s.len() {
        out.insert(out.len() - 1, '…');
    }
    out
}

/// Renders a path reported by `serde_path_to_error` in this module's notation: struct fields
/// and identifier-like keys bare, other keys quoted, sequence indices in brackets.
pub(crate) fn serde_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Seq { index: i } => out = index(&out, *i),
            Segment::Map { key } if is_identifier(key) => out = field(&out, key),
            Segment::Map { key } => out = map_key(&out, key),
            Segment::Enum { variant } => out = field(&out, variant),
            Segment::Unknown => out = field(&out, "?"),
        }
    }
    out
}

fn is_identifier(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Whether `candidate` is `path` itself or lies inside it (`a.b` covers `a.b[0]` and `a.b.c`).
pub(crate) fn covers(path: &str, candidate: &str) -> bool {
    match candidate.strip_prefix(path) {
        Some(rest) => rest.is_empty() || rest.starts_with('.') || rest.starts_with('[') || path.is_empty(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case("", "a" => "a")]
    #[test_case("a", "b" => "a.b")]
    fn field_paths(parent: &str, name: &str) -> String {
        field(parent, name)
    }

    #[test_case("abc" => "\"abc\"")]
    #[test_case("a\"b" => "\"a\\\"b\"")]
    #[test_case(&"x".repeat(100) => format!("\"{}…\"", "x".repeat(64)))]
    #[test_case(&"é".repeat(70) => format!("\"{}…\"", "é".repeat(64)))]
    fn quoting(s: &str) -> String {
        quote(s)
    }

    #[test_case("a.b", "a.b" => true)]
    #[test_case("a.b", "a.b[0]" => true)]
    #[test_case("a.b", "a.b.c" => true)]
    #[test_case("a.b", "a.bc" => false)]
    #[test_case("a.b[1]", "a.b" => false)]
    #[test_case("", "x" => true)]
    fn covering(path: &str, candidate: &str) -> bool {
        covers(path, candidate)
    }
}
