//! Replies to calls: results, failures and call-monitor keep-alives, and the caller's collector
//! of the replies to one call (docs/reference/oslo-messaging-rabbit.md §5).

use serde_json::Value;

use super::envelope::{envelope, opt_string, Entries};
use super::error::{type_error, DecodeError, EncodeError};
use super::failure::RemoteError;
use super::pyjson::{Field, Ordered};

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
    pub(super) fn from_entries(entries: Entries) -> Result<Self, DecodeError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::oslo::failure::{IP_ADDRESS_GENERATION_FAILURE, NETWORK_NOT_FOUND};
    use crate::rpc::oslo::fixtures::{ok, REPLY};
    use serde_json::json;

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
}
