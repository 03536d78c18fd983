//! Why an input was refused. Every variant names what was expected, so the
//! one-line message a responder sees at 3 a.m. says what to fix.

use serde::de::DeserializeOwned;
use serde_json::Value;
use thiserror::Error;

use crate::sanitize;

/// An input event that Firebreak cannot turn into incidents.
///
/// None of these is retryable: the same bytes will fail the same way.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// The payload is larger than any signal Firebreak accepts.
    #[error("event is {size} bytes, over the {limit}-byte limit for one event")]
    TooLarge {
        /// Size of the payload in bytes.
        size: usize,
        /// The limit it exceeded.
        limit: usize,
    },
    /// Nothing but whitespace.
    #[error("event is empty: expected a JSON object")]
    Empty,
    /// The bytes are not UTF-8, so they cannot be JSON.
    #[error("event is not UTF-8 (invalid byte at offset {offset}): expected a JSON object")]
    NotUtf8 {
        /// Byte offset of the first invalid sequence.
        offset: usize,
    },
    /// The text is not JSON (truncated, trailing garbage, …).
    #[error("event is not valid JSON at line {line}, column {column}: {message}")]
    Json {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What the JSON parser said.
        message: String,
    },
    /// Valid JSON, but no envelope Firebreak knows.
    #[error("unrecognised event: expected {expected}; found {found}")]
    UnknownShape {
        /// The shapes that would have been accepted.
        expected: &'static str,
        /// What the input looked like instead.
        found: String,
    },
    /// A known envelope with a field of the wrong type or missing.
    #[error("{context}: at `{path}`: {message}")]
    Field {
        /// Which envelope was being read.
        context: &'static str,
        /// JSON path of the offending field.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// A field with the right type but an impossible value.
    #[error("{context}: `{field}` {message}")]
    Invalid {
        /// Which envelope was being read.
        context: &'static str,
        /// The field.
        field: &'static str,
        /// What was wrong with its value.
        message: String,
    },
    /// One record of a multi-record SNS event was refused; the whole event is.
    #[error("SNS record {index}: {source}")]
    Record {
        /// 0-based index of the record.
        index: usize,
        /// Why it was refused.
        source: Box<ParseError>,
    },
}

/// A configuration or policy file that cannot be used. Firebreak refuses to
/// start rather than run with a setting it misread (a mistyped allow-list
/// would otherwise be silently empty).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// A setting whose value does not parse.
    #[error("{name}: {message}")]
    Value {
        /// The environment variable or policy key.
        name: String,
        /// What was wrong.
        message: String,
    },
    /// A `FIREBREAK_*` variable that Firebreak does not know (likely a typo).
    #[error(
        "unknown setting {name}: not one of Firebreak's FIREBREAK_* variables (see the README)"
    )]
    Unknown {
        /// The variable's name.
        name: String,
    },
    /// The policy file does not parse.
    #[error("policy file {path}: {message}")]
    PolicyFile {
        /// Path of the file.
        path: String,
        /// What was wrong.
        message: String,
    },
}

/// Deserialises `value` into `T`; a refusal names `context` and the JSON
/// path of the field (under `prefix`).
pub(crate) fn typed<T: DeserializeOwned>(
    value: Value,
    context: &'static str,
    prefix: &str,
) -> Result<T, ParseError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let path = match (prefix.is_empty(), inner.as_str()) {
            (true, _) => inner.clone(),
            (false, ".") => prefix.to_string(),
            (false, _) => format!("{prefix}.{inner}"),
        };
        ParseError::Field {
            context,
            path,
            message: sanitize::text(&e.into_inner().to_string()),
        }
    })
}
