//! The oslo.messaging wire codec: envelope, request, context, reply, failure, notification
//! (reference `oslo-messaging-rabbit.md` §4–§6). Pure: bytes in, types out, and back.
//!
//! * Decoding is liberal like oslo's `deserialize_msg`: the 2.0 envelope or a bare (1.0) dict,
//!   unknown keys kept, missing optional keys defaulted. It never panics on hostile input.
//! * Encoding is byte-for-byte what Python produces for the same data (`json.dumps` separators
//!   `", "`/`": "`, `ensure_ascii`, Python float repr, top-level keys in oslo's insertion order).
//!   Only nested objects differ: they come out sorted, Python keeps insertion order. Receivers
//!   do not care; the golden tests compare bytes where the order happens to agree.
//! * Ids are inputs, so everything stays deterministic and testable; [`Uuid4`] makes fresh ones.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

/// The envelope version we send and the major we accept (`_RPC_ENVELOPE_VERSION`).
pub const ENVELOPE_VERSION: &str = "2.0";
/// The only content type oslo (kombu) decodes; anything else is rejected unread.
pub const CONTENT_TYPE: &str = "application/json";
/// The content encoding kombu sets.
pub const CONTENT_ENCODING: &str = "utf-8";
/// oslo's `_MsgIdCache.DUP_MSG_CHECK_SIZE`.
pub const DUPLICATE_CACHE_SIZE: usize = 16;

/// neutron-lib exception the plugin raises when this agent does not host the network.
pub const NETWORK_NOT_FOUND: &str = "NetworkNotFound";
/// neutron-lib exception raised when a subnet has no free address for the DHCP port.
pub const IP_ADDRESS_GENERATION_FAILURE: &str = "IpAddressGenerationFailure";

const VERSION_KEY: &str = "oslo.version";
const MESSAGE_KEY: &str = "oslo.message";
const CONTEXT_PREFIX: &str = "_context_";

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

// ---------------------------------------------------------------------------------------------
// Python-compatible JSON output

/// `json.dumps` defaults: `", "` and `": "` separators, non-ASCII as `\uXXXX`, Python float repr.
struct PyFormatter;

impl serde_json::ser::Formatter for PyFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f64) -> io::Result<()> {
        w.write_all(python_float_repr(value).as_bytes())
    }

    /// `ensure_ascii`: everything outside printable ASCII (including DEL) becomes `\uXXXX`,
    /// lower-case, astral characters as surrogate pairs.
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if (' '..='~').contains(&c) {
                continue;
            }
            w.write_all(&fragment.as_bytes()[start..i])?;
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                write!(w, "\\u{unit:04x}")?;
            }
            start = i + c.len_utf8();
        }
        w.write_all(&fragment.as_bytes()[start..])
    }
}

/// Python's `repr(float)`: shortest round-trip digits, fixed notation for exponents -4..=15,
/// otherwise `d.ddde+XX`; integral values keep a `.0`.
fn python_float_repr(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if (-4..16).contains(&exp) {
        let point = exp + 1;
        let body = if point <= 0 {
            format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
        } else {
            let point = point as usize;
            if point >= digits.len() {
                format!("{digits}{}.0", "0".repeat(point - digits.len()))
            } else {
                format!("{}.{}", &digits[..point], &digits[point..])
            }
        };
        format!("{sign}{body}")
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        format!(
            "{sign}{first}{frac}e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        )
    }
}

fn to_python_json<T: Serialize + ?Sized>(value: &T) -> Result<String, EncodeError> {
    let mut buf = Vec::new();
    value.serialize(&mut serde_json::Serializer::with_formatter(
        &mut buf,
        PyFormatter,
    ))?;
    // The formatter only ever writes ASCII.
    String::from_utf8(buf).map_err(|e| EncodeError(serde::ser::Error::custom(e)))
}

/// A value to write without first building a `serde_json::Value` (no clone of large args).
enum Field<'a> {
    Value(&'a Value),
    Str(&'a str),
    OptStr(Option<&'a str>),
    OptNumber(Option<&'a Number>),
    Bool(bool),
    Strs(&'a [String]),
    Values(&'a [Value]),
    Map(&'a Map<String, Value>),
}

impl Serialize for Field<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Value(v) => v.serialize(s),
            Field::Str(v) => s.serialize_str(v),
            Field::OptStr(v) => v.serialize(s),
            Field::OptNumber(v) => v.serialize(s),
            Field::Bool(v) => s.serialize_bool(*v),
            Field::Strs(v) => s.collect_seq(v.iter()),
            Field::Values(v) => s.collect_seq(v.iter()),
            Field::Map(v) => v.serialize(s),
        }
    }
}

/// A JSON object written in exactly this key order.
struct Ordered<'a>(Vec<(Cow<'a, str>, Field<'a>)>);

impl<'a> Ordered<'a> {
    fn push(&mut self, key: impl Into<Cow<'a, str>>, value: Field<'a>) {
        self.0.push((key.into(), value));
    }
}

impl Serialize for Ordered<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k.as_ref(), v)?;
        }
        m.end()
    }
}

/// `serialize_msg`: `{"oslo.version": "2.0", "oslo.message": "<inner JSON>"}`.
fn envelope(inner: &Ordered<'_>) -> Result<Vec<u8>, EncodeError> {
    let inner_json = to_python_json(inner)?;
    let outer = Ordered(vec![
        (Cow::Borrowed(VERSION_KEY), Field::Str(ENVELOPE_VERSION)),
        (Cow::Borrowed(MESSAGE_KEY), Field::Str(&inner_json)),
    ]);
    Ok(to_python_json(&outer)?.into_bytes())
}

// ---------------------------------------------------------------------------------------------
// Order-preserving parse of the top-level object

/// Top-level entries in arrival order (a repeated key keeps its first position and last value,
/// as a Python dict does). Nested values are plain `Value`s.
type Entries = Vec<(String, Value)>;

enum Parsed {
    Object(Entries),
    Other(&'static str),
}

impl<'de> Deserialize<'de> for Parsed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ParsedVisitor)
    }
}

struct ParsedVisitor;

impl<'de> Visitor<'de> for ParsedVisitor {
    type Value = Parsed;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Parsed, E> {
        Ok(Parsed::Other("boolean"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Parsed, E> {
        Ok(Parsed::Other("number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Parsed, E> {
        Ok(Parsed::Other("number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Parsed, E> {
        Ok(Parsed::Other("number"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Parsed, E> {
        Ok(Parsed::Other("string"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Parsed, E> {
        Ok(Parsed::Other("null"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Parsed, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Parsed::Other("array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed, A::Error> {
        let mut entries: Entries = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        while let Some((k, v)) = map.next_entry::<String, Value>()? {
            match index.get(&k) {
                Some(&i) => entries[i].1 = v,
                None => {
                    index.insert(k.clone(), entries.len());
                    entries.push((k, v));
                }
            }
        }
        Ok(Parsed::Object(entries))
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `deserialize_msg`: unwrap the 2.0 envelope when both keys are present, else take the dict as
/// it is (the 1.0 format and the `messaging` notification driver). Returns `(entries, enveloped)`.
fn decode_inner(body: &[u8]) -> Result<(Entries, bool), DecodeError> {
    let entries = match serde_json::from_slice::<Parsed>(body).map_err(DecodeError::Json)? {
        Parsed::Object(e) => e,
        Parsed::Other(kind) => return Err(DecodeError::NotAnObject(kind)),
    };
    let version = entries
        .iter()
        .find(|(k, _)| k == VERSION_KEY)
        .map(|(_, v)| v);
    let message = entries
        .iter()
        .find(|(k, _)| k == MESSAGE_KEY)
        .map(|(_, v)| v);
    let (Some(version), Some(message)) = (version, message) else {
        return Ok((entries, false));
    };
    let compatible = match version {
        Value::String(s) => RpcVersion::parse(s).is_ok_and(|v| RpcVersion::new(2, 0).can_serve(&v)),
        _ => false,
    };
    if !compatible {
        let mut shown = version.to_string();
        if shown.len() > 40 {
            shown = format!("{}...", shown.chars().take(40).collect::<String>());
        }
        return Err(DecodeError::EnvelopeVersion(shown));
    }
    let Value::String(inner) = message else {
        return Err(DecodeError::EnvelopeMessage(json_kind(message)));
    };
    match serde_json::from_str::<Parsed>(inner).map_err(DecodeError::InnerJson)? {
        Parsed::Object(e) => Ok((e, true)),
        Parsed::Other(kind) => Err(DecodeError::InnerNotAnObject(kind)),
    }
}

fn type_error(field: &str, expected: &'static str, found: &Value) -> DecodeError {
    DecodeError::FieldType {
        field: field.to_string(),
        expected,
        found: json_kind(found),
    }
}

/// A string or null/absent.
fn opt_string(field: &str, v: Value) -> Result<Option<String>, DecodeError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        other => Err(type_error(field, "a string or null", &other)),
    }
}

// ---------------------------------------------------------------------------------------------
// Context

/// The request context, flattened on the wire as one `_context_<key>` per key (`pack_context`).
///
/// Keys keep their order. `Debug` hides `auth_token`: casts from neutron-server carry the API
/// user's token.
#[derive(Clone, PartialEq, Default)]
pub struct Context(Vec<(String, Value)>);

impl Context {
    /// An empty context (oslo requires no key at all).
    pub fn new() -> Self {
        Context(Vec::new())
    }

    /// neutron-lib's `get_admin_context_without_session().to_dict()`, the context every agent
    /// sends, in its key order: oslo.context's keys, then neutron-lib's additions.
    ///
    /// `request_id` is `req-<uuid4>` (see [`new_request_id`]); `timestamp` is `str(utcnow())`
    /// (see [`python_utc_timestamp`]).
    pub fn neutron_admin(request_id: &str, timestamp: &str) -> Self {
        let roles = Value::Array(vec!["admin".into(), "member".into(), "reader".into()]);
        let entries: [(&str, Value); 21] = [
            ("user", Value::Null),
            ("project_id", Value::Null),
            ("system_scope", Value::Null),
            ("project", Value::Null),
            ("domain", Value::Null),
            ("user_domain", Value::Null),
            ("project_domain", Value::Null),
            ("is_admin", Value::Bool(true)),
            ("read_only", Value::Bool(false)),
            ("show_deleted", Value::Bool(false)),
            ("auth_token", Value::Null),
            ("request_id", request_id.into()),
            ("global_request_id", Value::Null),
            ("resource_uuid", Value::Null),
            ("roles", roles),
            ("user_identity", "- - - - -".into()),
            ("is_admin_project", Value::Bool(true)),
            ("user_id", Value::Null),
            ("timestamp", timestamp.into()),
            ("project_name", Value::Null),
            ("user_name", Value::Null),
        ];
        Context(
            entries
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }

    /// Sets `key`, replacing an existing value in place.
    pub fn set(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.0.push((key, value)),
        }
    }

    /// The value of `key` (without the `_context_` prefix).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// Entries in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True without keys.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `request_id` (`req-<uuid>`), for log correlation.
    pub fn request_id(&self) -> Option<&str> {
        self.get_str("request_id")
    }

    /// `global_request_id`, for cross-service log correlation.
    pub fn global_request_id(&self) -> Option<&str> {
        self.get_str("global_request_id")
    }

    /// `is_admin` is JSON `true`.
    pub fn is_admin(&self) -> bool {
        self.get("is_admin") == Some(&Value::Bool(true))
    }

    /// `user_id`, else `user` (neutron-lib `Context.from_dict`).
    pub fn user_id(&self) -> Option<&str> {
        self.get_str("user_id").or_else(|| self.get_str("user"))
    }

    /// `project_id`, else `tenant_id`.
    pub fn project_id(&self) -> Option<&str> {
        self.get_str("project_id")
            .or_else(|| self.get_str("tenant_id"))
    }

    /// The string entries of `roles`.
    pub fn roles(&self) -> Vec<&str> {
        match self.get("roles") {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (k, v) in &self.0 {
            if k == "auth_token" && !v.is_null() {
                m.entry(k, &"***");
            } else {
                m.entry(k, v);
            }
        }
        m.finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Requests

/// An RPC request (cast or call), decoded from the wire or built to be sent.
///
/// Wire order: `method, args, [namespace], [version], [_msg_id, _reply_q, _timeout], _unique_id,
/// _context_*` (§4.3).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The endpoint method.
    pub method: String,
    /// Keyword arguments: always a JSON object (`{}` when the sender left it out).
    pub args: Value,
    /// `Target.namespace`; neutron never sets one.
    pub namespace: Option<String>,
    /// `Target.version`; absent means `"1.0"` to the dispatcher.
    pub version: Option<String>,
    /// `_unique_id` for duplicate detection (a fresh uuid4 hex per publish).
    pub unique_id: Option<String>,
    /// `_msg_id`: set on calls, it is what the reply must echo.
    pub msg_id: Option<String>,
    /// `_reply_q`: the caller's reply queue.
    pub reply_q: Option<String>,
    /// `_timeout`: the call-monitor timeout (seconds), usually null. Not the call timeout.
    pub client_timeout: Option<Number>,
    /// The `_context_*` keys.
    pub context: Context,
    /// Keys oslo does not define, kept so a re-encode loses nothing.
    pub extra: Vec<(String, Value)>,
}

/// Convenience alias: what the RPC server receives.
pub type IncomingMessage = Request;

/// Where a call's reply goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyAddress {
    /// Routing key on the default exchange (the caller's reply queue).
    pub routing_key: String,
    /// The `_msg_id` to echo.
    pub msg_id: String,
}

impl Request {
    /// A cast with no version, namespace or context yet.
    pub fn new(method: impl Into<String>, args: Value, unique_id: impl Into<String>) -> Self {
        Request {
            method: method.into(),
            args,
            namespace: None,
            version: None,
            unique_id: Some(unique_id.into()),
            msg_id: None,
            reply_q: None,
            client_timeout: None,
            context: Context::new(),
            extra: Vec::new(),
        }
    }

    /// Sets the target version (neutron always sends one).
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// Sets the namespace.
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Sets the context.
    pub fn with_context(mut self, context: Context) -> Self {
        self.context = context;
        self
    }

    /// Makes it a call: `_msg_id` (a fresh uuid4 hex), `_reply_q`, and `_timeout: null`.
    pub fn into_call(mut self, msg_id: impl Into<String>, reply_q: impl Into<String>) -> Self {
        self.msg_id = Some(msg_id.into());
        self.reply_q = Some(reply_q.into());
        self
    }

    /// True when the sender waits for a reply.
    pub fn is_call(&self) -> bool {
        self.msg_id.as_deref().is_some_and(|m| !m.is_empty())
    }

    /// Where to reply, if anyone waits (oslo replies only when `_msg_id` is non-empty). Without
    /// `_reply_q` (pre-2015 senders) the msg_id itself is the routing key.
    pub fn reply_address(&self) -> Option<ReplyAddress> {
        let msg_id = self.msg_id.clone().filter(|m| !m.is_empty())?;
        let routing_key = self
            .reply_q
            .clone()
            .filter(|q| !q.is_empty())
            .unwrap_or_else(|| msg_id.clone());
        Some(ReplyAddress {
            routing_key,
            msg_id,
        })
    }

    /// The call-monitor keep-alive period: `int(_timeout) / 2` seconds when that is at least 1 s
    /// (oslo's dispatcher `_watchdog`), else none.
    pub fn call_monitor_interval(&self) -> Option<Duration> {
        let t = self.client_timeout.as_ref()?.as_f64()?.trunc();
        let half = t / 2.0;
        (half >= 1.0 && half.is_finite()).then(|| Duration::from_secs_f64(half.min(1e9)))
    }

    /// Decodes a request body (enveloped or bare).
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        match decode(body)? {
            Message::Request(r) => Ok(r),
            other => Err(DecodeError::WrongKind {
                expected: "an RPC request",
                found: other.kind(),
            }),
        }
    }

    fn from_entries(entries: Entries) -> Result<Self, DecodeError> {
        let mut method = None;
        let mut req = Request::new(String::new(), Value::Object(Map::new()), String::new());
        req.unique_id = None;
        for (key, value) in entries {
            match key.as_str() {
                "method" => match value {
                    Value::String(s) => method = Some(s),
                    other => return Err(type_error("method", "a string", &other)),
                },
                "args" => match value {
                    Value::Object(_) => req.args = value,
                    Value::Null => {}
                    other => return Err(type_error("args", "an object", &other)),
                },
                "namespace" => req.namespace = opt_string(&key, value)?,
                "version" => req.version = opt_string(&key, value)?,
                "_unique_id" => req.unique_id = opt_string(&key, value)?,
                "_msg_id" => req.msg_id = opt_string(&key, value)?,
                "_reply_q" => req.reply_q = opt_string(&key, value)?,
                "_timeout" => match value {
                    Value::Null => {}
                    Value::Number(n) => req.client_timeout = Some(n),
                    other => return Err(type_error("_timeout", "a number or null", &other)),
                },
                k => match k.strip_prefix(CONTEXT_PREFIX) {
                    Some(ctx_key) => req.context.0.push((ctx_key.to_string(), value)),
                    None => req.extra.push((key, value)),
                },
            }
        }
        req.method = method.ok_or(DecodeError::MissingField("method"))?;
        Ok(req)
    }

    /// Encodes the request as Python's oslo.messaging would (envelope included).
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut o = Ordered(Vec::with_capacity(
            8 + self.context.len() + self.extra.len(),
        ));
        o.push("method", Field::Str(&self.method));
        o.push("args", Field::Value(&self.args));
        if let Some(ns) = &self.namespace {
            o.push("namespace", Field::Str(ns));
        }
        if let Some(v) = &self.version {
            o.push("version", Field::Str(v));
        }
        if let Some(id) = &self.msg_id {
            o.push("_msg_id", Field::Str(id));
            o.push("_reply_q", Field::OptStr(self.reply_q.as_deref()));
            o.push("_timeout", Field::OptNumber(self.client_timeout.as_ref()));
        }
        if let Some(u) = &self.unique_id {
            o.push("_unique_id", Field::Str(u));
        }
        for (k, v) in &self.context.0 {
            o.push(format!("{CONTEXT_PREFIX}{k}"), Field::Value(v));
        }
        for (k, v) in &self.extra {
            o.push(k.as_str(), Field::Value(v));
        }
        envelope(&o)
    }
}

// ---------------------------------------------------------------------------------------------
// Replies and failures

/// An exception sent back by the remote side (`serialize_remote_exception`).
///
/// The agent branches on [`Self::class`] (e.g. [`NETWORK_NOT_FOUND`]); `module` says where it
/// comes from (`neutron_lib.exceptions`, `builtins`, `oslo_messaging.rpc.dispatcher`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("remote {module}.{class}: {message}")]
pub struct RemoteError {
    /// Exception class name.
    pub class: String,
    /// Python module of the class.
    pub module: String,
    /// `str(exc)`.
    pub message: String,
    /// Traceback lines (each ends in `\n`).
    pub tb: Vec<String>,
    /// `exc.args`.
    pub args: Vec<Value>,
    /// `exc.kwargs` (neutron-lib exceptions carry e.g. `net_id`).
    pub kwargs: Map<String, Value>,
}

impl RemoteError {
    /// An error with `args = [message]`, no kwargs and no traceback.
    pub fn new(
        module: impl Into<String>,
        class: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let message = message.into();
        RemoteError {
            class: class.into(),
            module: module.into(),
            args: vec![Value::String(message.clone())],
            message,
            tb: Vec::new(),
            kwargs: Map::new(),
        }
    }

    /// True when the remote exception class is `class`.
    pub fn is(&self, class: &str) -> bool {
        self.class == class
    }

    /// The JSON string that goes in a reply's `failure` (keys `class, module, message, tb,
    /// args, kwargs`, Python formatting).
    pub fn to_failure_string(&self) -> Result<String, EncodeError> {
        to_python_json(&Ordered(vec![
            (Cow::Borrowed("class"), Field::Str(&self.class)),
            (Cow::Borrowed("module"), Field::Str(&self.module)),
            (Cow::Borrowed("message"), Field::Str(&self.message)),
            (Cow::Borrowed("tb"), Field::Strs(&self.tb)),
            (Cow::Borrowed("args"), Field::Values(&self.args)),
            (Cow::Borrowed("kwargs"), Field::Map(&self.kwargs)),
        ]))
    }

    /// Reads a `failure` as oslo's client does (`deserialize_remote_exception`): every key is
    /// optional. An object instead of a string is accepted too, though Python would choke on it.
    pub fn from_failure(failure: &Value) -> Result<Self, String> {
        let parsed;
        let obj = match failure {
            Value::String(s) => {
                parsed = serde_json::from_str::<Value>(s).map_err(|e| format!("not JSON: {e}"))?;
                match &parsed {
                    Value::Object(o) => o,
                    other => return Err(format!("a JSON {}, not an object", json_kind(other))),
                }
            }
            Value::Object(o) => o,
            other => return Err(format!("a JSON {}, not a string", json_kind(other))),
        };
        let text = |key: &str| -> Result<String, String> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(other) => Err(format!(
                    "{key} is a JSON {}, not a string",
                    json_kind(other)
                )),
            }
        };
        let tb = match obj.get("tb") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(lines)) => lines
                .iter()
                .map(|l| {
                    l.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| "tb holds a non-string".to_string())
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(format!("tb is a JSON {}, not an array", json_kind(other))),
        };
        let args = match obj.get("args") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a.clone(),
            Some(other) => {
                return Err(format!("args is a JSON {}, not an array", json_kind(other)))
            }
        };
        let kwargs = match obj.get("kwargs") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(other) => {
                return Err(format!(
                    "kwargs is a JSON {}, not an object",
                    json_kind(other)
                ))
            }
        };
        Ok(RemoteError {
            class: text("class")?,
            module: text("module")?,
            message: text("message")?,
            tb,
            args,
            kwargs,
        })
    }
}

/// A reply to a call: the result, or a failure; `ending: false` marks a call-monitor keep-alive
/// (or the first half of the pre-2015 two-message form).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The return value (`null` when none).
    pub result: Value,
    /// The remote exception, if the call failed.
    pub failure: Option<RemoteError>,
    /// The last message for this call.
    pub ending: bool,
    /// The call's `_msg_id`.
    pub msg_id: Option<String>,
    /// A fresh uuid4 hex (optional for receivers).
    pub unique_id: Option<String>,
}

impl Reply {
    /// The single reply oslo sends for a successful call.
    pub fn success(msg_id: impl Into<String>, result: Value, unique_id: impl Into<String>) -> Self {
        Reply {
            result,
            failure: None,
            ending: true,
            msg_id: Some(msg_id.into()),
            unique_id: Some(unique_id.into()),
        }
    }

    /// The single reply oslo sends for a failed call.
    pub fn failed(
        msg_id: impl Into<String>,
        failure: RemoteError,
        unique_id: impl Into<String>,
    ) -> Self {
        Reply {
            result: Value::Null,
            failure: Some(failure),
            ending: true,
            msg_id: Some(msg_id.into()),
            unique_id: Some(unique_id.into()),
        }
    }

    /// A call-monitor keep-alive (§5.4).
    pub fn keepalive(msg_id: impl Into<String>, unique_id: impl Into<String>) -> Self {
        Reply {
            result: Value::Null,
            failure: None,
            ending: false,
            msg_id: Some(msg_id.into()),
            unique_id: Some(unique_id.into()),
        }
    }

    /// True for a call-monitor keep-alive: nothing but "still working".
    pub fn is_keepalive(&self) -> bool {
        !self.ending && self.failure.is_none() && self.result.is_null()
    }

    /// Decodes a reply body.
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        match decode(body)? {
            Message::Reply(r) => Ok(r),
            other => Err(DecodeError::WrongKind {
                expected: "an RPC reply",
                found: other.kind(),
            }),
        }
    }

    fn from_entries(entries: Entries) -> Result<Self, DecodeError> {
        let mut reply = Reply {
            result: Value::Null,
            failure: None,
            ending: false,
            msg_id: None,
            unique_id: None,
        };
        let mut failure = Value::Null;
        for (key, value) in entries {
            match key.as_str() {
                "result" => reply.result = value,
                "failure" => failure = value,
                "ending" => match value {
                    Value::Bool(b) => reply.ending = b,
                    Value::Null => {}
                    other => return Err(type_error("ending", "a boolean", &other)),
                },
                "_msg_id" => reply.msg_id = opt_string(&key, value)?,
                "_unique_id" => reply.unique_id = opt_string(&key, value)?,
                _ => {}
            }
        }
        // Python tests `if data['failure']`: null and "" mean success.
        let empty = matches!(&failure, Value::Null) || failure.as_str() == Some("");
        if !empty {
            reply.failure = Some(RemoteError::from_failure(&failure).map_err(|reason| {
                DecodeError::Failure {
                    msg_id: reply.msg_id.clone(),
                    reason,
                }
            })?);
        }
        Ok(reply)
    }

    /// Encodes the reply: `result, failure, ending, _msg_id, _unique_id`, enveloped.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let failure = self
            .failure
            .as_ref()
            .map(RemoteError::to_failure_string)
            .transpose()?;
        let mut o = Ordered(Vec::with_capacity(5));
        o.push("result", Field::Value(&self.result));
        o.push("failure", Field::OptStr(failure.as_deref()));
        o.push("ending", Field::Bool(self.ending));
        if let Some(id) = &self.msg_id {
            o.push("_msg_id", Field::Str(id));
        }
        if let Some(u) = &self.unique_id {
            o.push("_unique_id", Field::Str(u));
        }
        envelope(&o)
    }
}

/// The caller's side of `ReplyWaiter.wait`: feed every reply for one `_msg_id`; the outcome
/// comes with the `ending` one. A non-null result or a failure from any message is kept.
#[derive(Debug, Default)]
pub struct ReplyCollector {
    outcome: Option<Result<Value, RemoteError>>,
}

impl ReplyCollector {
    /// A collector for one call.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a reply; returns the call's outcome once `ending` arrives.
    pub fn push(&mut self, reply: Reply) -> Option<Result<Value, RemoteError>> {
        if let Some(f) = reply.failure {
            self.outcome = Some(Err(f));
        } else if !reply.result.is_null() {
            self.outcome = Some(Ok(reply.result));
        }
        if reply.ending {
            Some(self.outcome.take().unwrap_or(Ok(Value::Null)))
        } else {
            None
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Notifications (decoded only: the agent never sends them)

/// A notification (`messagingv2` enveloped, or `messaging` bare).
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// uuid4 with dashes.
    pub message_id: Option<String>,
    /// E.g. `network.host1`.
    pub publisher_id: Option<String>,
    /// E.g. `network.create.end`.
    pub event_type: String,
    /// `INFO`, `ERROR`, ...
    pub priority: Option<String>,
    /// The payload.
    pub payload: Value,
    /// `str(utcnow())`.
    pub timestamp: Option<String>,
    /// `_unique_id`.
    pub unique_id: Option<String>,
    /// The `_context_*` keys.
    pub context: Context,
    /// False for the legacy `messaging` driver, which sends the dict bare.
    pub enveloped: bool,
}

impl Notification {
    fn from_entries(entries: Entries, enveloped: bool) -> Result<Self, DecodeError> {
        let mut n = Notification {
            message_id: None,
            publisher_id: None,
            event_type: String::new(),
            priority: None,
            payload: Value::Null,
            timestamp: None,
            unique_id: None,
            context: Context::new(),
            enveloped,
        };
        let mut event_type = None;
        for (key, value) in entries {
            match key.as_str() {
                "event_type" => event_type = opt_string(&key, value)?,
                "message_id" => n.message_id = opt_string(&key, value)?,
                "publisher_id" => n.publisher_id = opt_string(&key, value)?,
                "priority" => n.priority = opt_string(&key, value)?,
                "timestamp" => n.timestamp = opt_string(&key, value)?,
                "_unique_id" => n.unique_id = opt_string(&key, value)?,
                "payload" => n.payload = value,
                k => {
                    if let Some(ctx_key) = k.strip_prefix(CONTEXT_PREFIX) {
                        n.context.0.push((ctx_key.to_string(), value));
                    }
                }
            }
        }
        n.event_type = event_type.ok_or(DecodeError::MissingField("event_type"))?;
        Ok(n)
    }
}

// ---------------------------------------------------------------------------------------------
// Any body

/// A decoded body of any kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Has `method`.
    Request(Request),
    /// Has `result`, `failure` or `ending`.
    Reply(Reply),
    /// Has `event_type`.
    Notification(Notification),
}

impl Message {
    /// `"an RPC request"`, `"an RPC reply"` or `"a notification"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Request(_) => "an RPC request",
            Message::Reply(_) => "an RPC reply",
            Message::Notification(_) => "a notification",
        }
    }
}

/// Decodes any oslo body (enveloped or bare) and tells what it is.
pub fn decode(body: &[u8]) -> Result<Message, DecodeError> {
    let (entries, enveloped) = decode_inner(body)?;
    let has = |k: &str| entries.iter().any(|(key, _)| key == k);
    if has("method") {
        Request::from_entries(entries).map(Message::Request)
    } else if has("event_type") {
        Notification::from_entries(entries, enveloped).map(Message::Notification)
    } else if has("result") || has("failure") || has("ending") {
        Reply::from_entries(entries).map(Message::Reply)
    } else {
        Err(DecodeError::UnknownShape)
    }
}

// ---------------------------------------------------------------------------------------------
// AMQP properties

/// The AMQP basic properties oslo sets on every message (§4.1). `headers` is always an empty
/// table (present, not absent); `correlation_id`, `reply_to` and the rest are never set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpProperties {
    /// `application/json`.
    pub content_type: &'static str,
    /// `utf-8`.
    pub content_encoding: &'static str,
    /// 2 (persistent), kombu's default even for transient queues.
    pub delivery_mode: u8,
    /// 0.
    pub priority: u8,
    /// Calls only: the call timeout in milliseconds, so an unanswered call expires in the queue.
    pub expiration: Option<String>,
}

impl AmqpProperties {
    /// Casts, fanout casts and replies.
    pub fn cast() -> Self {
        AmqpProperties {
            content_type: CONTENT_TYPE,
            content_encoding: CONTENT_ENCODING,
            delivery_mode: 2,
            priority: 0,
            expiration: None,
        }
    }

    /// Replies: same as casts.
    pub fn reply() -> Self {
        Self::cast()
    }

    /// Calls: `expiration = str(int(timeout * 1000))`.
    pub fn call(timeout: Duration) -> Self {
        AmqpProperties {
            expiration: Some(timeout.as_millis().to_string()),
            ..Self::cast()
        }
    }
}

/// Checks a delivery's properties before decoding: oslo rejects (without requeue) anything that
/// is not `application/json`; a missing encoding means UTF-8; a kombu `compression` header means
/// a compressed body, which we cannot read.
pub fn check_properties(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    compression_header: Option<&str>,
) -> Result<(), DecodeError> {
    if let Some(c) = compression_header {
        return Err(DecodeError::Compressed(c.to_string()));
    }
    if content_type != Some(CONTENT_TYPE) {
        return Err(DecodeError::ContentType(content_type.map(str::to_string)));
    }
    match content_encoding {
        None => Ok(()),
        Some(e) if e.eq_ignore_ascii_case("utf-8") || e.eq_ignore_ascii_case("utf8") => Ok(()),
        Some(e) => Err(DecodeError::ContentEncoding(e.to_string())),
    }
}

// ---------------------------------------------------------------------------------------------
// Duplicate detection

/// oslo's `_MsgIdCache`: the last 16 `_unique_id`s seen by one listener. A broker redelivery
/// (e.g. after a reconnect before the ack landed) is dropped instead of run twice.
#[derive(Debug, Clone, Default)]
pub struct DuplicateFilter {
    recent: VecDeque<String>,
}

impl DuplicateFilter {
    /// An empty filter.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when `unique_id` was seen among the last 16. Messages without one are never
    /// duplicates.
    pub fn is_duplicate(&self, unique_id: Option<&str>) -> bool {
        unique_id.is_some_and(|id| self.recent.iter().any(|r| r == id))
    }

    /// Remembers `unique_id` (ignored when empty or already known), evicting the oldest.
    pub fn add(&mut self, unique_id: Option<&str>) {
        let Some(id) = unique_id.filter(|id| !id.is_empty()) else {
            return;
        };
        if self.recent.iter().any(|r| r == id) {
            return;
        }
        if self.recent.len() == DUPLICATE_CACHE_SIZE {
            self.recent.pop_front();
        }
        self.recent.push_back(id.to_string());
    }

    /// The receive path: false (drop it) for a duplicate, else records the id and returns true.
    pub fn check_and_add(&mut self, unique_id: Option<&str>) -> bool {
        if self.is_duplicate(unique_id) {
            return false;
        }
        self.add(unique_id);
        true
    }
}

// ---------------------------------------------------------------------------------------------
// Versions and dispatch (§6.2)

/// An RPC API version `major.minor[.rev]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RpcVersion {
    /// Must match exactly.
    pub major: i64,
    /// Requested must not exceed implemented.
    pub minor: i64,
    /// Compared only when the minors are equal.
    pub rev: i64,
}

/// A version string oslo could not compare.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid RPC version {0:?}")]
pub struct VersionError(pub String);

impl RpcVersion {
    /// `major.minor`.
    pub const fn new(major: i64, minor: i64) -> Self {
        RpcVersion {
            major,
            minor,
            rev: 0,
        }
    }

    /// Parses like `version_is_compatible`: split on `.`, the first two parts are required, the
    /// third is the revision (default 0), further parts are ignored.
    pub fn parse(s: &str) -> Result<Self, VersionError> {
        let err = || VersionError(s.chars().take(40).collect());
        let mut parts = s.split('.');
        let mut num = |required: bool| -> Result<i64, VersionError> {
            match parts.next() {
                Some(p) => p.trim().parse::<i64>().map_err(|_| err()),
                None if required => Err(err()),
                None => Ok(0),
            }
        };
        Ok(RpcVersion {
            major: num(true)?,
            minor: num(true)?,
            rev: num(false)?,
        })
    }

    /// `version_is_compatible(self, requested)`: same major, requested minor not newer, and with
    /// equal minors the requested revision not newer.
    pub fn can_serve(&self, requested: &RpcVersion) -> bool {
        requested.major == self.major
            && requested.minor <= self.minor
            && (requested.minor != self.minor || requested.rev <= self.rev)
    }
}

impl fmt::Display for RpcVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.rev == 0 {
            write!(f, "{}.{}", self.major, self.minor)
        } else {
            write!(f, "{}.{}.{}", self.major, self.minor, self.rev)
        }
    }
}

/// What one endpoint object serves: its `target` and its public methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint<'a> {
    /// `target.namespace`.
    pub namespace: Option<&'a str>,
    /// `target.version` (`None` in Python counts as 1.0).
    pub version: RpcVersion,
    /// Method names callable over RPC.
    pub methods: &'a [&'a str],
}

/// The DHCP agent's RPC API (`DhcpAgent` endpoint: target 1.0, no namespace; every method is
/// a cast with `args == {"payload": {...}}`).
pub const DHCP_AGENT_METHODS: &[&str] = &[
    "network_create_end",
    "network_update_end",
    "network_delete_end",
    "subnet_create_end",
    "subnet_update_end",
    "subnet_delete_end",
    "port_create_end",
    "port_update_end",
    "port_delete_end",
    "agent_updated",
];

/// The one endpoint of the DHCP agent.
pub const DHCP_AGENT_ENDPOINT: Endpoint<'static> = Endpoint {
    namespace: None,
    version: RpcVersion::new(1, 0),
    methods: DHCP_AGENT_METHODS,
};

/// Why a request cannot be dispatched, worded as oslo's dispatcher words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    /// An endpoint matched namespace and version but has no such (public) method.
    #[error("Endpoint does not support RPC method {method}")]
    NoSuchMethod {
        /// The requested method.
        method: String,
    },
    /// No endpoint matched namespace and version.
    #[error("Endpoint does not support RPC version {version}. Attempted method: {method}")]
    UnsupportedVersion {
        /// The requested version string (`1.0` when absent).
        version: String,
        /// The requested method.
        method: String,
    },
}

impl DispatchError {
    /// The failure oslo sends back for calls (`oslo_messaging.rpc.dispatcher`, `args = [message]`).
    pub fn to_remote_error(&self) -> RemoteError {
        let class = match self {
            DispatchError::NoSuchMethod { .. } => "NoSuchMethod",
            DispatchError::UnsupportedVersion { .. } => "UnsupportedVersion",
        };
        RemoteError::new("oslo_messaging.rpc.dispatcher", class, self.to_string())
    }
}

/// `RPCDispatcher.dispatch` without the call: the index of the first endpoint whose namespace
/// and version match and that has the method. Names starting with `_` are refused like
/// `DefaultRPCAccessPolicy` does. An unparsable version matches nothing.
pub fn select_endpoint(req: &Request, endpoints: &[Endpoint<'_>]) -> Result<usize, DispatchError> {
    let version = req.version.as_deref().unwrap_or("1.0");
    let requested = RpcVersion::parse(version).ok();
    let mut found_compatible = false;
    for (i, ep) in endpoints.iter().enumerate() {
        let compatible = requested.is_some_and(|r| ep.version.can_serve(&r));
        if ep.namespace != req.namespace.as_deref() || !compatible {
            continue;
        }
        if !req.method.starts_with('_') && ep.methods.contains(&req.method.as_str()) {
            return Ok(i);
        }
        found_compatible = true;
    }
    if found_compatible {
        Err(DispatchError::NoSuchMethod {
            method: req.method.clone(),
        })
    } else {
        Err(DispatchError::UnsupportedVersion {
            version: version.to_string(),
            method: req.method.clone(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Ids and timestamps

/// A random (version 4) UUID, for `_unique_id`, `_msg_id`, reply queue names and request ids.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Uuid4(u128);

static UUID_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Uuid4 {
    /// From 128 random bits; the version and variant bits are forced.
    pub fn from_u128(bits: u128) -> Self {
        let bits = (bits & !(0xF << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
        Uuid4(bits)
    }

    /// A fresh id. The bits come from std's randomly keyed SipHash (keys drawn from the OS
    /// once per thread) over a process-wide counter and the clock: unique and unguessable
    /// enough for message ids, not meant for cryptography.
    pub fn random() -> Self {
        let n = UUID_COUNTER.fetch_add(1, Ordering::Relaxed);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let half = |salt: u64| {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(n ^ salt);
            h.write_u128(now);
            h.finish()
        };
        Uuid4::from_u128((u128::from(half(0)) << 64) | u128::from(half(u64::MAX)))
    }

    /// 32 lower-case hex digits (`uuid4().hex`).
    pub fn hex(&self) -> String {
        format!("{:032x}", self.0)
    }

    /// `8-4-4-4-12` form (`str(uuid4())`).
    pub fn hyphenated(&self) -> String {
        let h = self.hex();
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

/// A fresh `_unique_id` / `_msg_id` (uuid4 hex).
pub fn new_unique_id() -> String {
    Uuid4::random().hex()
}

/// A fresh `req-<uuid4>` request id, as oslo.context generates.
pub fn new_request_id() -> String {
    format!("req-{}", Uuid4::random().hyphenated())
}

/// UTC civil date and time of `t` (clamped at the epoch).
fn utc_parts(t: SystemTime) -> (i64, u32, u32, u64, u64, u64, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = d.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros(),
    )
}

/// `str(datetime.utcnow())`: `2026-08-01 12:00:00.123456` (no fraction when it is zero), the
/// context `timestamp` format.
pub fn python_utc_timestamp(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, us) = utc_parts(t);
    let base = format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}");
    if us == 0 {
        base
    } else {
        format!("{base}.{us:06}")
    }
}

/// `utcnow().strftime('%Y-%m-%dT%H:%M:%S.%f')`: the `time` argument of `report_state`.
pub fn iso_utc_timestamp(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, us) = utc_parts(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{us:06}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Captured byte-for-byte (reference §4.3).
    const CAST: &str = r#"{"oslo.version": "2.0", "oslo.message": "{\"method\": \"note\", \"args\": {\"a\": 1, \"b\": \"two\"}, \"version\": \"1.0\", \"_unique_id\": \"a9d187d9bae24d4091e85f5c9841b527\", \"_context_user\": \"u1\", \"_context_project_id\": \"p1\", \"_context_system_scope\": null, \"_context_project\": \"p1\", \"_context_domain\": null, \"_context_user_domain\": null, \"_context_project_domain\": null, \"_context_is_admin\": false, \"_context_read_only\": false, \"_context_show_deleted\": false, \"_context_auth_token\": null, \"_context_request_id\": \"req-11111111-2222-3333-4444-555555555555\", \"_context_global_request_id\": null, \"_context_resource_uuid\": null, \"_context_roles\": [\"member\"], \"_context_user_identity\": \"u1 p1 - - -\", \"_context_is_admin_project\": true}"}"#;

    /// Captured (reference §5.2).
    const REPLY: &str = r#"{"oslo.version": "2.0", "oslo.message": "{\"result\": {\"got\": {\"x\": [1, 2], \"y\": {\"k\": null}}, \"ctxt_request_id\": \"req-11111111-2222-3333-4444-555555555555\"}, \"failure\": null, \"ending\": true, \"_msg_id\": \"322be23a273e41aaa016ab31d54206d1\", \"_unique_id\": \"cdd4c3bfd0f14d2ea24b0270d82fa328\"}"}"#;

    fn ok<T, E: fmt::Display>(r: Result<T, E>) -> T {
        match r {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn decodes_the_captured_cast_and_reencodes_it_byte_for_byte() {
        let req = ok(Request::decode(CAST.as_bytes()));
        assert_eq!(req.method, "note");
        assert_eq!(req.args, json!({"a": 1, "b": "two"}));
        assert_eq!(req.version.as_deref(), Some("1.0"));
        assert_eq!(
            req.unique_id.as_deref(),
            Some("a9d187d9bae24d4091e85f5c9841b527")
        );
        assert!(!req.is_call() && req.reply_address().is_none());
        assert_eq!(req.context.len(), 17);
        assert_eq!(
            req.context.request_id(),
            Some("req-11111111-2222-3333-4444-555555555555")
        );
        assert_eq!(req.context.user_id(), Some("u1"));
        assert_eq!(req.context.roles(), vec!["member"]);
        assert!(!req.context.is_admin());
        assert_eq!(String::from_utf8(ok(req.encode())).as_deref(), Ok(CAST));
    }

    #[test]
    fn builds_a_call_like_neutron_agents() {
        let ctx = Context::neutron_admin("req-1", "2026-08-01 12:00:00.123456");
        let req = Request::new(
            "get_network_info",
            json!({"network_id": "n1", "host": "h1"}),
            "u".repeat(32),
        )
        .with_version("1.0")
        .with_context(ctx)
        .into_call("m".repeat(32), "reply_q1");
        let body = String::from_utf8(ok(req.encode())).unwrap_or_default();
        let outer: Value = ok(serde_json::from_str(&body));
        let inner: Value = ok(serde_json::from_str(
            outer["oslo.message"].as_str().unwrap_or(""),
        ));
        assert!(body.starts_with(r#"{"oslo.version": "2.0", "oslo.message": "{\"method\": \"get_network_info\", \"args\": {\"host\": \"h1\", \"network_id\": \"n1\"}, \"version\": \"1.0\", \"_msg_id\": \"mmmm"#));
        assert!(body
            .contains(r#"\"_reply_q\": \"reply_q1\", \"_timeout\": null, \"_unique_id\": \"uuuu"#));
        assert_eq!(inner["_context_is_admin"], json!(true));
        assert_eq!(
            inner["_context_roles"],
            json!(["admin", "member", "reader"])
        );
        assert_eq!(inner["_context_user_identity"], json!("- - - - -"));
        assert_eq!(
            inner["_context_timestamp"],
            json!("2026-08-01 12:00:00.123456")
        );
        assert!(inner.get("namespace").is_none());
        let back = ok(Request::decode(body.as_bytes()));
        assert_eq!(back, req);
        assert_eq!(
            back.reply_address(),
            Some(ReplyAddress {
                routing_key: "reply_q1".into(),
                msg_id: "m".repeat(32)
            })
        );
        assert!(back.context.is_admin());
    }

    #[test]
    fn bare_v1_dict_and_defaults() {
        let req = ok(Request::decode(
            br#"{"method": "m", "_msg_id": "abc", "_reply_q": "reply_x"}"#,
        ));
        assert_eq!(req.args, json!({}));
        assert_eq!(req.version, None);
        assert_eq!(req.unique_id, None);
        assert!(req.is_call());
        // No _reply_q: the msg_id is the routing key (legacy).
        let req = ok(Request::decode(
            br#"{"method": "m", "_msg_id": "abc", "args": null, "namespace": null}"#,
        ));
        assert_eq!(
            req.reply_address().map(|a| a.routing_key),
            Some("abc".into())
        );
    }

    #[test]
    fn decode_errors_are_specific() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "not valid JSON"),
            (b"[1]", "JSON array, not an object"),
            (
                br#"{"oslo.version": "3.0", "oslo.message": "{}"}"#,
                "oslo.version \"3.0\"",
            ),
            (
                br#"{"oslo.version": "2.1", "oslo.message": "{}"}"#,
                "not compatible",
            ),
            (
                br#"{"oslo.version": 2, "oslo.message": "{}"}"#,
                "oslo.version 2 is",
            ),
            (
                br#"{"oslo.version": "2.0", "oslo.message": {}}"#,
                "oslo.message is a JSON object",
            ),
            (
                br#"{"oslo.version": "2.0", "oslo.message": "{"}"#,
                "oslo.message is not valid JSON",
            ),
            (
                br#"{"oslo.version": "2.0", "oslo.message": "7"}"#,
                "JSON number, not an object",
            ),
            (br#"{"method": 1}"#, "field \"method\" is a JSON number"),
            (
                br#"{"method": "m", "args": []}"#,
                "field \"args\" is a JSON array",
            ),
            (br#"{"method": "m", "_timeout": "x"}"#, "_timeout"),
            (br#"{"hello": 1}"#, "neither"),
            (br#"{"ending": "yes"}"#, "field \"ending\""),
        ];
        for (body, want) in cases {
            let err = decode(body).expect_err("must fail");
            assert!(
                err.to_string().contains(want),
                "{:?}: {err}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(matches!(
            Reply::decode(CAST.as_bytes()),
            Err(DecodeError::WrongKind { .. })
        ));
        assert!(matches!(
            Request::decode(REPLY.as_bytes()),
            Err(DecodeError::WrongKind { .. })
        ));
    }

    #[test]
    fn replies_roundtrip() {
        let reply = ok(Reply::decode(REPLY.as_bytes()));
        assert!(reply.ending && reply.failure.is_none());
        assert_eq!(
            reply.msg_id.as_deref(),
            Some("322be23a273e41aaa016ab31d54206d1")
        );
        assert_eq!(reply.result["got"]["x"], json!([1, 2]));
        assert_eq!(ok(Reply::decode(&ok(reply.encode()))), reply);

        let keep = Reply::keepalive("m1", "u1");
        assert!(keep.is_keepalive());
        assert_eq!(
            String::from_utf8(ok(keep.encode())).as_deref(),
            Ok(
                r#"{"oslo.version": "2.0", "oslo.message": "{\"result\": null, \"failure\": null, \"ending\": false, \"_msg_id\": \"m1\", \"_unique_id\": \"u1\"}"}"#
            )
        );
    }

    #[test]
    fn failures_roundtrip_and_are_typed() {
        let mut err = RemoteError::new(
            "neutron_lib.exceptions",
            NETWORK_NOT_FOUND,
            "Network n1 could not be found.",
        );
        err.kwargs.insert("net_id".into(), json!("n1"));
        let body = ok(Reply::failed("m1", err.clone(), "u1").encode());
        let text = String::from_utf8(body.clone()).unwrap_or_default();
        assert!(text.contains(r#"\"failure\": \"{\\\"class\\\": \\\"NetworkNotFound\\\", \\\"module\\\": \\\"neutron_lib.exceptions\\\""#), "{text}");
        let back = ok(Reply::decode(&body));
        let f = back.failure.expect("failure");
        assert!(f.is(NETWORK_NOT_FOUND));
        assert_eq!(f, err);
        assert_eq!(
            f.to_string(),
            "remote neutron_lib.exceptions.NetworkNotFound: Network n1 could not be found."
        );

        // Every key is optional on the way in; an object is tolerated; garbage is an error that
        // still names the call.
        let r = ok(Reply::decode(
            br#"{"failure": "{\"class\": \"IpAddressGenerationFailure\"}", "_msg_id": "m"}"#,
        ));
        assert!(r
            .failure
            .is_some_and(|f| f.is(IP_ADDRESS_GENERATION_FAILURE) && f.tb.is_empty()));
        let r = ok(Reply::decode(
            br#"{"failure": {"class": "X", "tb": ["a\n"]}, "ending": true}"#,
        ));
        assert_eq!(r.failure.map(|f| f.tb), Some(vec!["a\n".to_string()]));
        match Reply::decode(br#"{"failure": "boom", "_msg_id": "m9"}"#) {
            Err(DecodeError::Failure { msg_id, .. }) => assert_eq!(msg_id.as_deref(), Some("m9")),
            other => panic!("{other:?}"),
        }
        assert!(ok(Reply::decode(br#"{"failure": "", "ending": true}"#))
            .failure
            .is_none());
    }

    #[test]
    fn reply_collector_follows_reply_waiter() {
        let mut c = ReplyCollector::new();
        assert_eq!(c.push(Reply::keepalive("m", "1")), None);
        assert_eq!(
            c.push(Reply {
                ending: false,
                ..Reply::success("m", json!(5), "2")
            }),
            None
        );
        assert_eq!(
            c.push(Reply {
                result: Value::Null,
                ..Reply::success("m", Value::Null, "3")
            }),
            Some(Ok(json!(5)))
        );
        let mut c = ReplyCollector::new();
        let e = RemoteError::new("builtins", "ValueError", "x");
        assert_eq!(c.push(Reply::failed("m", e.clone(), "1")), Some(Err(e)));
        let mut c = ReplyCollector::new();
        assert_eq!(
            c.push(Reply::success("m", Value::Null, "1")),
            Some(Ok(Value::Null))
        );
    }

    #[test]
    fn python_json_formatting() {
        let v = json!({"s": "é ☃ 😀 \u{7f} \n \"q\" \\", "f": [0.1, 2.5, 1e16, 1e-5, 1e-4, 123456789012345.6, -0.0, 1.0, 1e22, 5e-324]});
        assert_eq!(
            ok(to_python_json(&v)),
            r#"{"f": [0.1, 2.5, 1e+16, 1e-05, 0.0001, 123456789012345.6, -0.0, 1.0, 1e+22, 5e-324], "s": "\u00e9 \u2603 \ud83d\ude00 \u007f \n \"q\" \\"}"#
        );
        assert_eq!(python_float_repr(1234.5e10), "12345000000000.0");
        assert_eq!(python_float_repr(1.5e300), "1.5e+300");
    }

    #[test]
    fn properties() {
        let call = AmqpProperties::call(Duration::from_secs(60));
        assert_eq!(call.expiration.as_deref(), Some("60000"));
        assert_eq!(
            (
                call.content_type,
                call.content_encoding,
                call.delivery_mode,
                call.priority
            ),
            (CONTENT_TYPE, "utf-8", 2, 0)
        );
        assert_eq!(AmqpProperties::cast().expiration, None);
        assert_eq!(
            AmqpProperties::call(Duration::from_millis(1500))
                .expiration
                .as_deref(),
            Some("1500")
        );
        assert!(check_properties(Some(CONTENT_TYPE), Some("utf-8"), None).is_ok());
        assert!(check_properties(Some(CONTENT_TYPE), None, None).is_ok());
        assert!(matches!(
            check_properties(None, None, None),
            Err(DecodeError::ContentType(None))
        ));
        assert!(matches!(
            check_properties(Some("text/plain"), None, None),
            Err(DecodeError::ContentType(_))
        ));
        assert!(matches!(
            check_properties(Some(CONTENT_TYPE), Some("binary"), None),
            Err(DecodeError::ContentEncoding(_))
        ));
        assert!(matches!(
            check_properties(Some(CONTENT_TYPE), None, Some("application/x-gzip")),
            Err(DecodeError::Compressed(_))
        ));
    }

    #[test]
    fn duplicate_filter_matches_msg_id_cache() {
        let mut f = DuplicateFilter::new();
        assert!(f.check_and_add(Some("a")));
        assert!(!f.check_and_add(Some("a")));
        assert!(f.check_and_add(None) && f.check_and_add(None));
        for i in 0..DUPLICATE_CACHE_SIZE {
            assert!(f.check_and_add(Some(&format!("id{i}"))));
        }
        // "a" was the oldest of 17 and is gone; the last 16 are remembered.
        assert!(!f.is_duplicate(Some("a")));
        assert!(f.is_duplicate(Some("id0")) && f.is_duplicate(Some("id15")));
        f.add(Some(""));
        assert!(!f.is_duplicate(Some("")));
    }

    #[test]
    fn version_compatibility() {
        let v = |s: &str| ok(RpcVersion::parse(s));
        let imp = RpcVersion::new(1, 3);
        for (req, want) in [
            ("1.0", true),
            ("1.3", true),
            ("1.2.9", true),
            ("1.3.1", false),
            ("1.5", false),
            ("2.0", false),
            ("0.9", false),
        ] {
            assert_eq!(imp.can_serve(&v(req)), want, "{req}");
        }
        assert!(v("1.3.2").can_serve(&v("1.3.1")));
        assert!(v(" 1 . 0 .0.junk").can_serve(&v("1.0")));
        assert!(
            RpcVersion::parse("1").is_err()
                && RpcVersion::parse("a.b").is_err()
                && RpcVersion::parse("").is_err()
        );
        assert_eq!(v("1.10").to_string(), "1.10");
    }

    #[test]
    fn dispatch_rules() {
        let cast = |method: &str, version: Option<&str>| {
            let mut r = Request::new(method, json!({"payload": {}}), "u");
            r.version = version.map(str::to_string);
            r
        };
        let eps = [DHCP_AGENT_ENDPOINT];
        assert_eq!(
            select_endpoint(&cast("port_update_end", Some("1.0")), &eps),
            Ok(0)
        );
        assert_eq!(select_endpoint(&cast("agent_updated", None), &eps), Ok(0));
        assert_eq!(
            select_endpoint(&cast("sync_state", Some("1.0")), &eps),
            Err(DispatchError::NoSuchMethod {
                method: "sync_state".into()
            })
        );
        assert!(matches!(
            select_endpoint(&cast("_private", Some("1.0")), &eps),
            Err(DispatchError::NoSuchMethod { .. })
        ));
        let e =
            select_endpoint(&cast("port_update_end", Some("1.1")), &eps).expect_err("1.1 > 1.0");
        assert_eq!(
            e.to_string(),
            "Endpoint does not support RPC version 1.1. Attempted method: port_update_end"
        );
        let remote = e.to_remote_error();
        assert_eq!(
            (remote.module.as_str(), remote.class.as_str()),
            ("oslo_messaging.rpc.dispatcher", "UnsupportedVersion")
        );
        assert_eq!(remote.args, vec![json!(e.to_string())]);
        assert!(select_endpoint(&cast("port_update_end", Some("x")), &eps).is_err());
        let with_ns = cast("port_update_end", Some("1.0")).with_namespace("ns1");
        assert!(matches!(
            select_endpoint(&with_ns, &eps),
            Err(DispatchError::UnsupportedVersion { .. })
        ));
        // First matching endpoint that has the method wins.
        let other = Endpoint {
            namespace: None,
            version: RpcVersion::new(1, 5),
            methods: &["get_ports"],
        };
        assert_eq!(
            select_endpoint(
                &cast("get_ports", Some("1.0")),
                &[DHCP_AGENT_ENDPOINT, other]
            ),
            Ok(1)
        );
    }

    #[test]
    fn call_monitor_interval() {
        let mut r = Request::new("m", json!({}), "u");
        assert_eq!(r.call_monitor_interval(), None);
        for (t, want) in [
            (json!(2), Some(1.0)),
            (json!(2.9), Some(1.0)),
            (json!(60), Some(30.0)),
            (json!(1), None),
            (json!(-4), None),
        ] {
            r.client_timeout = t.as_number().cloned();
            assert_eq!(
                r.call_monitor_interval(),
                want.map(Duration::from_secs_f64),
                "{t}"
            );
        }
    }

    #[test]
    fn ids_and_timestamps() {
        let u = Uuid4::from_u128(0);
        assert_eq!(u.hyphenated(), "00000000-0000-4000-8000-000000000000");
        let a = new_unique_id();
        let b = new_unique_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(&a[12..13], "4");
        let r = new_request_id();
        assert!(r.starts_with("req-") && r.len() == 40);
        let t = UNIX_EPOCH + Duration::from_micros(1_785_585_600_123_456);
        assert_eq!(python_utc_timestamp(t), "2026-08-01 12:00:00.123456");
        assert_eq!(iso_utc_timestamp(t), "2026-08-01T12:00:00.123456");
        assert_eq!(
            python_utc_timestamp(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29 00:00:00"
        );
        assert_eq!(iso_utc_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000000");
    }

    #[test]
    fn context_debug_hides_auth_token() {
        let mut c = Context::new();
        c.set("auth_token", json!("gAAAAABsecret"));
        c.set("request_id", json!("req-1"));
        let req = Request::new("m", json!({}), "u").with_context(c);
        let shown = format!("{req:?}");
        assert!(
            !shown.contains("gAAAAABsecret") && shown.contains("req-1"),
            "{shown}"
        );
    }

    /// A tiny deterministic generator, so the garbage test needs no extra crate.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn random_garbage_never_panics() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let alphabet = br#"{}[]":,.0123456789-+eE truefalsnl\u"oslo.versionmessage_context_method"#;
        let seeds = [CAST.as_bytes(), REPLY.as_bytes()];
        for i in 0..20_000 {
            let len = (rng.next() % 300) as usize;
            let body: Vec<u8> = match i % 3 {
                0 => (0..len).map(|_| rng.next() as u8).collect(),
                1 => (0..len)
                    .map(|_| alphabet[(rng.next() as usize) % alphabet.len()])
                    .collect(),
                _ => {
                    let mut b = seeds[i % 2].to_vec();
                    for _ in 0..(1 + rng.next() % 4) {
                        let pos = (rng.next() as usize) % b.len();
                        match rng.next() % 3 {
                            0 => b[pos] = rng.next() as u8,
                            1 => b.truncate(pos),
                            _ => b.insert(pos, alphabet[(rng.next() as usize) % alphabet.len()]),
                        }
                        if b.is_empty() {
                            break;
                        }
                    }
                    b
                }
            };
            if let Ok(m) = decode(&body) {
                match m {
                    Message::Request(r) => drop(r.encode()),
                    Message::Reply(r) => drop(r.encode()),
                    Message::Notification(_) => {}
                }
            }
        }
        // Deep nesting hits serde_json's recursion limit instead of the stack.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(decode(deep.as_bytes()).is_err());
        let deep_inner = format!(
            r#"{{"method": "m", "args": {{"a": {}1{}}}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert!(decode(deep_inner.as_bytes()).is_err());
    }
}
