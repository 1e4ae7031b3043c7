//! What goes wrong reading or writing an oslo body, and how a JSON value's type is named in
//! those errors.

use serde_json::Value;

/// Why a body or its AMQP properties cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// kombu only decodes `application/json`; oslo rejects the rest without reading it.
    #[error("AMQP content_type is {0:?}, not application/json")]
    ContentType(Option<String>),
    /// Only UTF-8 bodies are supported.
    #[error("AMQP content_encoding {0:?} is not supported (only utf-8)")]
    ContentEncoding(String),
    /// The sender has `kombu_compression` on.
    #[error("body is compressed ({0}); kombu_compression is not supported")]
    Compressed(String),
    /// The body is not JSON.
    #[error("body is not valid JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// The body is JSON, but not an object.
    #[error("body is a JSON {0}, not an object")]
    NotAnObject(&'static str),
    /// `oslo.version` is not a 2.x version (or not a string).
    #[error("envelope oslo.version {0} is not compatible with 2.0")]
    EnvelopeVersion(String),
    /// `oslo.message` is not a string.
    #[error("envelope oslo.message is a JSON {0}, not a string")]
    EnvelopeMessage(&'static str),
    /// `oslo.message` is not JSON.
    #[error("envelope oslo.message is not valid JSON: {0}")]
    InnerJson(#[source] serde_json::Error),
    /// `oslo.message` is JSON, but not an object.
    #[error("envelope oslo.message is a JSON {0}, not an object")]
    InnerNotAnObject(&'static str),
    /// A required key is absent.
    #[error("missing field {0:?}")]
    MissingField(&'static str),
    /// A key has a value of the wrong JSON type.
    #[error("field {field:?} is a JSON {found}, expected {expected}")]
    FieldType {
        /// The key.
        field: String,
        /// What oslo would accept.
        expected: &'static str,
        /// What arrived.
        found: &'static str,
    },
    /// Neither `method`, `event_type` nor any of `result`/`failure`/`ending`.
    #[error("message is neither an RPC request, a reply nor a notification")]
    UnknownShape,
    /// A request where a reply was expected, or the other way round.
    #[error("expected {expected}, got {found}")]
    WrongKind {
        /// What the caller asked for.
        expected: &'static str,
        /// What the body is.
        found: &'static str,
    },
    /// The reply's `failure` is not a serialized exception. `msg_id` lets the caller fail the call.
    #[error("reply to {msg_id:?} carries an unreadable failure: {reason}")]
    Failure {
        /// The reply's `_msg_id`.
        msg_id: Option<String>,
        /// What is wrong.
        reason: String,
    },
}

/// Serialization failed (not expected with `serde_json::Value` data).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode message: {0}")]
pub struct EncodeError(#[from] serde_json::Error);

/// The JSON type of `v`, as the error messages name it (`a JSON array`).
pub(super) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `field` holds a JSON value of the wrong type.
pub(super) fn type_error(field: &str, expected: &'static str, found: &Value) -> DecodeError {
    DecodeError::FieldType {
        field: field.to_string(),
        expected,
        found: json_kind(found),
    }
}
