//! Notifications (decoded only: the agent never sends them), from the `messagingv2` driver
//! (enveloped) or the legacy `messaging` driver (bare) (docs/reference/oslo-messaging-rabbit.md
//! §7).

use serde_json::Value;

use super::context::{Context, CONTEXT_PREFIX};
use super::envelope::{opt_string, Entries};
use super::error::DecodeError;

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
    pub(super) fn from_entries(entries: Entries, enveloped: bool) -> Result<Self, DecodeError> {
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
                        n.context.push(ctx_key.to_string(), value);
                    }
                }
            }
        }
        n.event_type = event_type.ok_or(DecodeError::MissingField("event_type"))?;
        Ok(n)
    }
}
