//! Any oslo body: tells a request, a reply and a notification apart and decodes it
//! (docs/reference/oslo-messaging-rabbit.md §4, §5, §7).
//!
//! `Request::decode` and `Reply::decode` live here, next to the decoder that classifies a body,
//! so that the request and reply modules do not import this one back.

use super::envelope::decode_inner;
use super::error::DecodeError;
use super::notification::Notification;
use super::reply::Reply;
use super::request::Request;

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

impl Request {
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
}

impl Reply {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::oslo::fixtures::{CAST, REPLY};

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
    fn random_garbage_never_panics() {
        let mut rng = crate::testrng::Rng::plain(0x9E37_79B9_7F4A_7C15);
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
