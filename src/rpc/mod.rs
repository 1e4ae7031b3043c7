//! Neutron control plane over oslo.messaging (RabbitMQ).
//!
//! This layer is pure and I/O-free; the AMQP transport (lapin) sits on top of it:
//!
//! * [`url`]: `transport_url` parsing, broker endpoints, `[oslo_messaging_rabbit]` options.
//! * [`oslo`]: the wire codec (envelope, request, context, reply, failure), AMQP properties,
//!   duplicate filter, version and dispatch rules, ids and timestamps.
//! * [`topology`]: exchanges, queues, bindings and queue arguments to declare, and where to
//!   publish, copied from oslo's `impl_rabbit` so declarations match neutron-server's.
//!
//! The I/O shell on top (lapin, tokio):
//!
//! * [`amqp`]: connect (TLS, heartbeat), declare a plan, publish with confirms.
//! * [`server`]: the DHCP agent's RPC server loop (check, ack, de-duplicate, dispatch).
//! * [`client`]: `call`/`cast` towards neutron-server and the reply-queue consumer.
//! * [`transport`]: configuration, the supervised connection (reconnect, back-off), [`start`].
//! * [`event`]: what the server and the supervisor tell the agent ([`TransportEvent`]).
//!
//! The rules follow oslo.messaging's rabbit driver (`impl_rabbit.py`, `amqpdriver.py`); the
//! recorded frames in `tests/fixtures/captures/` are the fixtures that pin them. Section numbers
//! (`§4.1`) in this module's docs are those of `docs/reference/oslo-messaging-rabbit.md`.

pub mod amqp;
pub mod client;
pub mod event;
pub mod oslo;
pub mod server;
pub mod topology;
pub mod transport;
pub mod url;

pub use client::{RpcClient, RpcError};
pub use event::TransportEvent;
pub use oslo::{
    AmqpProperties, Context, DecodeError, DispatchError, DuplicateFilter, EncodeError,
    IncomingMessage, Message, Notification, RemoteError, Reply, ReplyCollector, Request,
    RpcVersion,
};
pub use topology::{
    ConsumerDecl, ExchangeDecl, FieldTable, FieldValue, ListenerPlan, PublishTarget, QueueDecl,
};
pub use transport::{start, TransportConfig, TransportError, TransportHandle};
pub use url::{BrokerEndpoint, OptionError, RabbitOptions, Secret, TransportUrl, UrlError};
