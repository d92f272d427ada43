//! YAML as StackStorm reads it: PyYAML's `safe_load` (YAML 1.1), which is what st2 uses for
//! `pack.yaml`, `config.schema.yaml`, configs and every resource file. Built on the
//! `saphyr-parser` event stream; what differs from YAML 1.2 is resolved here:
//!
//! - booleans are `yes`/`no`/`on`/`off`/`true`/`false` in the three spellings PyYAML knows
//!   (`yes`, `Yes`, `YES`); `y` and `n` are strings, as they are for PyYAML;
//! - integers may be binary `0b`, octal `017` (a leading zero), hexadecimal `0x`, sexagesimal
//!   `1:30`, with `_` between digits; floats need a dot (`1e3` is a string), `.inf` and `.nan`
//!   are kept as their text;
//! - `~`, `null` and the empty scalar are null; timestamps stay their text;
//! - merge keys `<<` (a mapping, or a list of mappings) fill in the keys a mapping lacks;
//! - one document only, tags of the YAML 1.1 core schema only (`safe_load` refuses others).
//!
//! The input must be UTF-8 (st2 opens the files as UTF-8 text); limits keep a hostile file
//! cheap: [`MAX_BYTES`], a nesting depth of [`MAX_DEPTH`], and [`MAX_NODES`] values once
//! aliases are expanded. Values come out as `serde_json::Value`; [`to_yaml`] writes a value so
//! that PyYAML reads it back the same.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::LazyLock;

use regex::Regex;
use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};
use serde_json::{Map, Number, Value};

/// The largest file read.
pub const MAX_BYTES: usize = 8 * 1024 * 1024;
/// How deep collections may nest.
pub const MAX_DEPTH: usize = 128;
/// How many values a document may expand to, aliases counted each time they are used.
pub const MAX_NODES: usize = 1_000_000;

/// Why a text is not YAML StackStorm can read, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (line {line}, column {column})")]
pub struct YamlError {
    pub message: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    /// Byte offset in the text.
    pub offset: usize,
}

/// PyYAML's implicit resolvers (`yaml/resolver.py`), for plain scalars.
static BOOL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$")
        .expect("a valid regex")
});
static INT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$",
    )
    .expect("a valid regex")
});
static FLOAT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
    )
    .expect("a valid regex")
});
static NULL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(?:~|null|Null|NULL|)$").expect("a valid regex"));

/// Reads the one document of `bytes` (none: null).
pub fn load(bytes: &[u8]) -> Result<Value, YamlError> {
    let text = std::str::from_utf8(bytes).map_err(|err| {
        let offset = err.valid_up_to();
        let at = position(&String::from_utf8_lossy(&bytes[..offset]), usize::MAX, 0);
        YamlError {
            message: format!(
                "is not UTF-8: byte 0x{:02X} at offset {offset} (StackStorm reads it as UTF-8 \
                 and fails with UnicodeDecodeError)",
                bytes[offset]
            ),
            offset,
            ..at
        }
    })?;
    load_str(text)
}

/// [`load`] of text already known to be UTF-8.
pub fn load_str(text: &str) -> Result<Value, YamlError> {
    if text.len() > MAX_BYTES {
        return Err(YamlError {
            message: format!(
                "is {} bytes, more than the {MAX_BYTES} packsync reads",
                text.len()
            ),
            line: 1,
            column: 1,
            offset: 0,
        });
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut builder = Builder {
        text,
        stack: Vec::new(),
        anchors: HashMap::new(),
        nodes: 0,
        documents: 0,
        root: None,
    };
    let mut parser = Parser::new_from_str(text);
    while let Some(event) = parser.next_event() {
        let (event, span) = event.map_err(|err| {
            let marker = err.marker();
            position(text, marker.line(), marker.col()).with(err.info().to_string())
        })?;
        builder.event(event, span)?;
    }
    Ok(builder.root.unwrap_or(Value::Null))
}

/// A collection being read.
enum Frame {
    Sequence {
        items: Vec<Value>,
        anchor: usize,
        /// Values in it, nested ones included.
        size: usize,
    },
    Mapping {
        entries: Map<String, Value>,
        anchor: usize,
        size: usize,
        key: Option<Key>,
        /// What `<<` keys brought, in order: each fills in only keys not set otherwise.
        merged: Vec<Map<String, Value>>,
    },
}

enum Key {
    Named(String),
    Merge,
}

struct Builder<'a> {
    text: &'a str,
    stack: Vec<Frame>,
    /// Each anchored value, with how many values it counts for.
    anchors: HashMap<usize, (Value, usize)>,
    nodes: usize,
    documents: usize,
    root: Option<Value>,
}

impl Builder<'_> {
    fn error(&self, span: Span, message: String) -> YamlError {
        position(self.text, span.start.line(), span.start.col()).with(message)
    }

    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), YamlError> {
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(self.error(
                        span,
                        "holds more than one document; StackStorm reads exactly one".into(),
                    ));
                }
            }
            Event::Scalar(value, style, anchor, tag) => {
                let merge = style == ScalarStyle::Plain && tag.is_none() && value == "<<";
                let resolved = resolve(&value, style, tag.as_deref())
                    .map_err(|message| self.error(span, message))?;
                self.node(resolved, 1, anchor, merge, span)?;
            }
            Event::SequenceStart(anchor, tag) => {
                self.open(tag.as_deref(), span)?;
                self.stack.push(Frame::Sequence {
                    items: Vec::new(),
                    anchor,
                    size: 0,
                });
            }
            Event::MappingStart(anchor, tag) => {
                self.open(tag.as_deref(), span)?;
                self.stack.push(Frame::Mapping {
                    entries: Map::new(),
                    anchor,
                    size: 0,
                    key: None,
                    merged: Vec::new(),
                });
            }
            Event::SequenceEnd => {
                if let Some(Frame::Sequence {
                    items,
                    anchor,
                    size,
                }) = self.stack.pop()
                {
                    self.node(Value::Array(items), 1 + size, anchor, false, span)?;
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Mapping {
                    mut entries,
                    anchor,
                    size,
                    merged,
                    ..
                }) = self.stack.pop()
                {
                    for map in merged {
                        for (key, value) in map {
                            entries.entry(key).or_insert(value);
                        }
                    }
                    self.node(Value::Object(entries), 1 + size, anchor, false, span)?;
                }
            }
            Event::Alias(id) => {
                let Some(size) = self.anchors.get(&id).map(|(_, size)| *size) else {
                    return Err(self.error(span, "refers to an anchor never defined".into()));
                };
                // Counted before it is copied: a billion laughs stops here, cheaply.
                self.count(size, span)?;
                let value = self.anchors[&id].0.clone();
                self.place(value, size, 0, false, span)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Checks a collection about to open: its tag, and how deep it is.
    fn open(&self, tag: Option<&Tag>, span: Span) -> Result<(), YamlError> {
        if let Some(tag) = tag.filter(|tag| !core_tag(tag)) {
            return Err(self.error(span, unknown_tag(tag)));
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(self.error(
                span,
                format!("nests collections more than {MAX_DEPTH} deep"),
            ));
        }
        Ok(())
    }

    /// A finished value (`size` values, itself included): anchored, then placed in the
    /// collection being read (as a key, a value or an item) or made the document.
    fn node(
        &mut self,
        value: Value,
        size: usize,
        anchor: usize,
        merge_key: bool,
        span: Span,
    ) -> Result<(), YamlError> {
        // A collection's own values were counted as they came; only itself is new.
        let new = if matches!(value, Value::Array(_) | Value::Object(_)) {
            1
        } else {
            size
        };
        self.count(new, span)?;
        self.place(value, size, anchor, merge_key, span)
    }

    /// Counts `size` more values, refusing past [`MAX_NODES`].
    fn count(&mut self, size: usize, span: Span) -> Result<(), YamlError> {
        self.nodes = self.nodes.saturating_add(size);
        if self.nodes > MAX_NODES {
            return Err(self.error(
                span,
                format!("expands to more than {MAX_NODES} values (aliases included)"),
            ));
        }
        Ok(())
    }

    /// Anchors a counted value, then puts it where it belongs.
    fn place(
        &mut self,
        value: Value,
        size: usize,
        anchor: usize,
        merge_key: bool,
        span: Span,
    ) -> Result<(), YamlError> {
        if anchor != 0 {
            self.anchors.insert(anchor, (value.clone(), size));
        }
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Sequence {
                items, size: total, ..
            }) => {
                *total += size;
                items.push(value);
            }
            Some(Frame::Mapping {
                entries,
                key,
                merged,
                size: total,
                ..
            }) => match key.take() {
                None if merge_key => *key = Some(Key::Merge),
                None => match key_text(&value) {
                    Some(text) => *key = Some(Key::Named(text)),
                    None => {
                        return Err(self.error(
                            span,
                            "uses a list or a mapping as a key, which StackStorm cannot read"
                                .into(),
                        ));
                    }
                },
                // Later keys win, as they do for PyYAML.
                Some(Key::Named(name)) => {
                    *total += size;
                    entries.insert(name, value);
                }
                Some(Key::Merge) => {
                    *total += size;
                    match value {
                        Value::Object(map) => merged.push(map),
                        Value::Array(maps) if maps.iter().all(Value::is_object) => {
                            merged.extend(maps.into_iter().filter_map(|map| match map {
                                Value::Object(map) => Some(map),
                                _ => None,
                            }));
                        }
                        _ => {
                            return Err(self.error(
                            span,
                            "merges (`<<`) something that is not a mapping or a list of mappings"
                                .into(),
                        ));
                        }
                    }
                }
            },
        }
        Ok(())
    }
}

/// A key as PyYAML's `str()` of it: scalars only.
fn key_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Bool(true) => Some("True".into()),
        Value::Bool(false) => Some("False".into()),
        Value::Null => Some("None".into()),
        Value::Number(number) => Some(number.to_string()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// Whether `tag` is one of YAML's own (`!!str`, `!!map`, ...), which `safe_load` knows.
fn core_tag(tag: &Tag) -> bool {
    tag.handle == "tag:yaml.org,2002:" || tag.handle == "!!"
}

fn unknown_tag(tag: &Tag) -> String {
    format!("has the tag `{tag}`, which StackStorm's YAML loader (safe_load) refuses")
}

/// The value of a scalar as PyYAML resolves it.
fn resolve(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    let kind = match tag {
        Some(tag) if !core_tag(tag) => return Err(unknown_tag(tag)),
        Some(tag) => tag.suffix.as_str(),
        None if style != ScalarStyle::Plain => "str",
        None if NULL.is_match(text) => "null",
        None if BOOL.is_match(text) => "bool",
        None if INT.is_match(text) => "int",
        None if FLOAT.is_match(text) => "float",
        None => "str",
    };
    Ok(match kind {
        "null" => Value::Null,
        "bool" => Value::Bool(matches!(
            text,
            "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON"
        )),
        "int" => Value::Number(
            int(text).ok_or_else(|| format!("`{text}` is not an integer StackStorm can read"))?,
        ),
        "float" => float(text).map_or_else(|| Value::String(text.to_string()), Value::Number),
        // Timestamps, binary, and strings keep their text.
        _ => Value::String(text.to_string()),
    })
}

/// PyYAML's `construct_yaml_int`.
fn int(text: &str) -> Option<Number> {
    let cleaned = text.replace('_', "");
    let (negative, digits) = match cleaned.as_bytes().first() {
        Some(b'-') => (true, &cleaned[1..]),
        Some(b'+') => (false, &cleaned[1..]),
        _ => (false, cleaned.as_str()),
    };
    let magnitude: i128 = if let Some(binary) = digits.strip_prefix("0b") {
        i128::from_str_radix(binary, 2).ok()?
    } else if let Some(hex) = digits.strip_prefix("0x") {
        i128::from_str_radix(hex, 16).ok()?
    } else if digits.contains(':') {
        digits.split(':').try_fold(0_i128, |total, part| {
            Some(total.checked_mul(60)? + part.parse::<i128>().ok()?)
        })?
    } else if digits.len() > 1 && digits.starts_with('0') {
        i128::from_str_radix(digits, 8).ok()?
    } else {
        digits.parse().ok()?
    };
    let value = if negative { -magnitude } else { magnitude };
    i64::try_from(value)
        .map(Number::from)
        .or_else(|_| u64::try_from(value).map(Number::from))
        .ok()
}

/// PyYAML's `construct_yaml_float`; `None` for `.inf` and `.nan`, which JSON cannot hold.
fn float(text: &str) -> Option<Number> {
    let cleaned = text.replace('_', "");
    let value: f64 = if cleaned.contains(':') {
        let (negative, digits) = match cleaned.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, cleaned.trim_start_matches('+')),
        };
        let total = digits.split(':').try_fold(0.0_f64, |total, part| {
            Some(total * 60.0 + part.parse::<f64>().ok()?)
        })?;
        if negative { -total } else { total }
    } else {
        cleaned.parse().ok()?
    };
    Number::from_f64(value)
}

/// The 1-based line and column of the 1-based `line` and 0-based character `col`, and its byte
/// offset (`usize::MAX` as the line: the end of `text`).
fn position(text: &str, line: usize, col: usize) -> YamlError {
    let mut offset = 0;
    if line == usize::MAX {
        let line = text.matches('\n').count() + 1;
        let column = text
            .rsplit('\n')
            .next()
            .map_or(0, |last| last.chars().count())
            + 1;
        return YamlError {
            message: String::new(),
            line,
            column,
            offset: text.len(),
        };
    }
    for (current, piece) in (1..).zip(text.split_inclusive('\n')) {
        if current == line {
            offset += piece
                .char_indices()
                .nth(col)
                .map_or(piece.len(), |(at, _)| at);
            break;
        }
        offset += piece.len();
    }
    YamlError {
        message: String::new(),
        line: line.max(1),
        column: col + 1,
        offset: offset.min(text.len()),
    }
}

impl YamlError {
    fn with(self, message: String) -> Self {
        Self { message, ..self }
    }
}

/// `value` as YAML that PyYAML reads back as the same value: block style, every string
/// double-quoted (so that `yes`, `1.0` or `~` stay strings), floats with a dot.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => write_seq(&mut out, items, 0),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn write_map(out: &mut String, map: &Map<String, Value>, indent: usize) {
    for (key, value) in map {
        let _ = write!(out, "{:indent$}{}:", "", key_literal(key));
        write_value(out, value, indent);
    }
}

fn write_seq(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        let _ = write!(out, "{:indent$}-", "");
        write_value(out, item, indent);
    }
}

fn write_value(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            write_map(out, map, indent + 2);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            write_seq(out, items, indent + 2);
        }
        other => {
            let _ = writeln!(out, " {}", scalar(other));
        }
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(true) => "true".into(),
        Value::Bool(false) => "false".into(),
        Value::Number(number) if number.is_f64() => {
            // PyYAML's float needs a dot, and a sign in the exponent.
            let text = number.to_string();
            let (mantissa, exponent) = text
                .split_once('e')
                .map_or((text.as_str(), None), |(m, e)| (m, Some(e)));
            let mantissa = if mantissa.contains('.') {
                mantissa.to_string()
            } else {
                format!("{mantissa}.0")
            };
            match exponent {
                Some(exponent) if exponent.starts_with(['-', '+']) => {
                    format!("{mantissa}e{exponent}")
                }
                Some(exponent) => format!("{mantissa}e+{exponent}"),
                None => mantissa,
            }
        }
        Value::Number(number) => number.to_string(),
        Value::String(text) => quoted(text),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// A key as written: plain when it is a name PyYAML reads back as that string (`fanout`), else
/// double-quoted (`"yes"`, `"1"`, `"a b"`).
fn key_literal(key: &str) -> String {
    let name = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if name && resolve(key, ScalarStyle::Plain, None) == Ok(Value::String(key.to_string())) {
        key.to_string()
    } else {
        quoted(key)
    }
}

/// A YAML double-quoted scalar: JSON's escapes are YAML's.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).expect("a string serialises")
}

#[cfg(test)]
mod tests;
