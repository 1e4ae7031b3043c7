//! The oslo.messaging wire codec: envelope, request, context, reply, failure, notification
//! (docs/reference/oslo-messaging-rabbit.md §4–§6). Pure: bytes in, types out, and back.
//!
//! * Decoding is liberal like oslo's `deserialize_msg`: the 2.0 envelope or a bare (1.0) dict,
//!   unknown keys kept, missing optional keys defaulted. It never panics on hostile input.
//! * Encoding is byte-for-byte what Python produces for the same data (`json.dumps` separators
//!   `", "`/`": "`, `ensure_ascii`, Python float repr, top-level keys in oslo's insertion order).
//!   Only nested objects differ: they come out sorted, Python keeps insertion order. Receivers
//!   do not care; the golden tests compare bytes where the order happens to agree.
//! * Ids are inputs, so everything stays deterministic and testable; [`Uuid4`] makes fresh ones.
//!
//! One job per file, from the bottom up (no file imports one listed after it):
//!
//! * [`error`]: decode and encode errors; `pyjson`: `json.dumps`-identical output;
//!   [`version`]: RPC versions and their compatibility rule.
//! * [`envelope`]: the 2.0 envelope and the top-level object; [`context`]: `_context_*` keys.
//! * [`request`], [`failure`], [`reply`], [`notification`]: the message kinds; [`message`]:
//!   any body, told apart.
//! * [`properties`]: AMQP properties; [`duplicate`]: the `_unique_id` filter; [`dispatch`]:
//!   endpoint selection; [`ids`] and [`timestamp`]: fresh ids and Python-printed times.
//!
//! Everything public is re-exported here, so `crate::rpc::oslo::X` is the path to use.

pub mod context;
pub mod dispatch;
pub mod duplicate;
pub mod envelope;
pub mod error;
pub mod failure;
pub mod ids;
pub mod message;
pub mod notification;
pub mod properties;
mod pyjson;
pub mod reply;
pub mod request;
pub mod timestamp;
pub mod version;

#[cfg(test)]
mod fixtures;

pub use context::Context;
pub use dispatch::{
    select_endpoint, DispatchError, Endpoint, DHCP_AGENT_ENDPOINT, DHCP_AGENT_METHODS,
};
pub use duplicate::{DuplicateFilter, DUPLICATE_CACHE_SIZE};
pub use envelope::ENVELOPE_VERSION;
pub use error::{DecodeError, EncodeError};
pub use failure::{RemoteError, IP_ADDRESS_GENERATION_FAILURE, NETWORK_NOT_FOUND};
pub use ids::{new_request_id, new_unique_id, Uuid4};
pub use message::{decode, Message};
pub use notification::Notification;
pub use properties::{check_properties, AmqpProperties, CONTENT_ENCODING, CONTENT_TYPE};
pub use reply::{Reply, ReplyCollector};
pub use request::{IncomingMessage, ReplyAddress, Request};
pub use timestamp::{iso_utc_timestamp, python_utc_timestamp};
pub use version::{RpcVersion, VersionError};
