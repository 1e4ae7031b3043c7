//! The oslo.messaging 2.0 envelope (docs/reference/oslo-messaging-rabbit.md §4.2): wrapping
//! (`serialize_msg`), unwrapping (`deserialize_msg`), and the order-preserving read of the
//! top-level object the request, reply and notification decoders start from.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use super::error::{json_kind, type_error, DecodeError, EncodeError};
use super::pyjson::{to_python_json, Field, Ordered};
use super::version::RpcVersion;

/// The envelope version we send and the major we accept (`_RPC_ENVELOPE_VERSION`).
pub const ENVELOPE_VERSION: &str = "2.0";

/// The envelope's two keys (`_VERSION_KEY`, `_MESSAGE_KEY`).
const VERSION_KEY: &str = "oslo.version";
const MESSAGE_KEY: &str = "oslo.message";

/// `serialize_msg`: `{"oslo.version": "2.0", "oslo.message": "<inner JSON>"}`.
pub(super) fn envelope(inner: &Ordered<'_>) -> Result<Vec<u8>, EncodeError> {
    let inner_json = to_python_json(inner)?;
    let outer = Ordered(vec![
        (Cow::Borrowed(VERSION_KEY), Field::Str(ENVELOPE_VERSION)),
        (Cow::Borrowed(MESSAGE_KEY), Field::Str(&inner_json)),
    ]);
    Ok(to_python_json(&outer)?.into_bytes())
}

/// Top-level entries in arrival order (a repeated key keeps its first position and last value,
/// as a Python dict does). Nested values are plain `Value`s.
pub(super) type Entries = Vec<(String, Value)>;

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

/// `deserialize_msg`: unwrap the 2.0 envelope when both keys are present, else take the dict as
/// it is (the 1.0 format and the `messaging` notification driver). Returns `(entries, enveloped)`.
pub(super) fn decode_inner(body: &[u8]) -> Result<(Entries, bool), DecodeError> {
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

/// A string or null/absent.
pub(super) fn opt_string(field: &str, v: Value) -> Result<Option<String>, DecodeError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        other => Err(type_error(field, "a string or null", &other)),
    }
}
