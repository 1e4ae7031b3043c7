//! RPC requests (casts and calls): decoding, the call's reply address and call-monitor period,
//! and the encoding neutron agents produce (docs/reference/oslo-messaging-rabbit.md §4.3).

use std::time::Duration;

use serde_json::{Map, Number, Value};

use super::context::{Context, CONTEXT_PREFIX};
use super::envelope::{envelope, opt_string, Entries};
use super::error::{type_error, DecodeError, EncodeError};
use super::pyjson::{Field, Ordered};

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

    pub(super) fn from_entries(entries: Entries) -> Result<Self, DecodeError> {
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
                    Some(ctx_key) => req.context.push(ctx_key.to_string(), value),
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
        for (k, v) in self.context.iter() {
            o.push(format!("{CONTEXT_PREFIX}{k}"), Field::Value(v));
        }
        for (k, v) in &self.extra {
            o.push(k.as_str(), Field::Value(v));
        }
        envelope(&o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::oslo::fixtures::{ok, CAST};
    use serde_json::json;

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
}
