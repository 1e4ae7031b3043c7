//! Remote exceptions: the `failure` of a reply, as oslo serializes it
//! (`serialize_remote_exception`, docs/reference/oslo-messaging-rabbit.md §5.3), and the
//! neutron-lib exception names the agent branches on.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::error::{json_kind, EncodeError};
use super::pyjson::{to_python_json, Field, Ordered};

/// neutron-lib exception the plugin raises when this agent does not host the network.
pub const NETWORK_NOT_FOUND: &str = "NetworkNotFound";
/// neutron-lib exception raised when a subnet has no free address for the DHCP port.
pub const IP_ADDRESS_GENERATION_FAILURE: &str = "IpAddressGenerationFailure";

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
