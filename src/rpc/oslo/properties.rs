//! The AMQP basic properties oslo sets on what it publishes and checks on what it receives
//! (docs/reference/oslo-messaging-rabbit.md §4.1).

use std::time::Duration;

use super::error::DecodeError;

/// The only content type oslo (kombu) decodes; anything else is rejected unread.
pub const CONTENT_TYPE: &str = "application/json";
/// The content encoding kombu sets.
pub const CONTENT_ENCODING: &str = "utf-8";

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
