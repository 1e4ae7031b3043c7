//! The lapin shell: connect to one broker, declare oslo's topology, publish with confirms
//! (docs/reference/oslo-messaging-rabbit.md §2, §3, §4.1, §5, §10).
//!
//! Nothing here decides *what* to declare or publish: that is [`crate::rpc::topology`] and
//! [`crate::rpc::oslo`]. This module only translates those plans into lapin calls.
//!
//! lapin quirks handled here:
//! * `ShortString::from` panics above 255 bytes; names that can come from the wire (a caller's
//!   `_reply_q`) go through [`short`], which fails instead.
//! * A channel error (404, 406) closes the channel and lapin never reopens it: the declaring
//!   code opens a new channel for oslo's non-durable fallback, and [`Publisher`] reopens its
//!   channel on the next publish.
//! * lapin's TLS is only compiled in with a root-store feature (`rustls-native-certs`,
//!   `rustls-webpki-roots-certs`, `rustls-platform-verifier`); with a crypto provider alone
//!   (`rustls--ring`) an `amqps://` URI **silently connects in plain text**. [`tls_available`]
//!   probes for it once, and [`connect`] refuses `ssl = true` without it.
//! * With `ssl = true` and no `ssl_ca_file` the system CA bundle is also read and passed as the
//!   chain, so the broker is checked against the system CAs whatever root store lapin has.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::{AMQPValue, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer};

use crate::rpc::oslo::AmqpProperties;
use crate::rpc::topology::{
    self, ConsumerDecl, ExchangeDecl, ListenerPlan, PublishTarget, QueueDecl, StreamOffset,
    DURABLE_MISMATCH,
};
use crate::rpc::url::{BrokerEndpoint, RabbitOptions};

/// How long one TCP + TLS + AMQP handshake may take before the attempt counts as failed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// System CA bundles, tried in order when `ssl = true` and `ssl_ca_file` is empty.
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// What went wrong talking to the broker. Never contains a password.
#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    /// lapin (I/O, protocol, channel or connection closed by the broker).
    #[error(transparent)]
    Lapin(#[from] lapin::Error),
    /// The handshake did not finish in time.
    #[error("connection attempt timed out after {0:?}")]
    ConnectTimeout(Duration),
    /// A TLS file named by `[oslo_messaging_rabbit]` cannot be read.
    #[error("cannot read [oslo_messaging_rabbit] {option} {path:?}: {reason}")]
    TlsFile {
        /// The option naming the file.
        option: &'static str,
        /// The file.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// A name does not fit an AMQP short string.
    #[error("{what} is {len} bytes long; AMQP allows at most 255")]
    TooLong {
        /// What the name is.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// lapin cannot parse the URI built for this broker (named without its password).
    #[error("cannot build an AMQP URI for {0}")]
    BadUri(String),
    /// `ssl = true`, but this build of lapin cannot do TLS.
    #[error(
        "[oslo_messaging_rabbit] ssl is on, but this build has no TLS support (lapin needs a \
         root-store feature such as rustls-native-certs); refusing to connect in plain text"
    )]
    TlsUnavailable,
    /// A listener plan without consumers (a bug in the caller).
    #[error("the listener plan has no consumer")]
    EmptyPlan,
    /// The broker refused the message (publisher confirm nack).
    #[error("the broker nacked the message")]
    Nacked,
    /// A `mandatory` message could not be routed (`basic.return`, e.g. 312 NO_ROUTE).
    #[error("the broker returned the message: {code} {text}")]
    Returned {
        /// AMQP reply code.
        code: u16,
        /// AMQP reply text.
        text: String,
    },
}

impl AmqpError {
    /// True when the broker closed the channel because an existing exchange or queue has the
    /// other `durable` flag (oslo then retries non-durable, §3.3).
    pub fn is_durable_mismatch(&self) -> bool {
        matches!(self, AmqpError::Lapin(e) if e.to_string().contains(DURABLE_MISMATCH))
    }
}

/// A name as an AMQP short string, failing (not panicking) above 255 bytes.
pub fn short(what: &'static str, s: &str) -> Result<ShortString, AmqpError> {
    ShortString::try_new(s).map_err(|_| AmqpError::TooLong { what, len: s.len() })
}

/// Opens one connection to `endpoint`: URI from [`BrokerEndpoint::amqp_uri`] (heartbeat and
/// SASL mechanism in the query), TLS material from the options, a connection name like oslo's.
pub async fn connect(
    endpoint: &BrokerEndpoint,
    opts: &RabbitOptions,
    connection_name: &str,
) -> Result<Connection, AmqpError> {
    if opts.ssl && !tls_available().await {
        return Err(AmqpError::TlsUnavailable);
    }
    // Parsed here because lapin's own parse error quotes the whole URI, password included.
    let uri = endpoint
        .amqp_uri(opts)
        .expose()
        .parse::<lapin::uri::AMQPUri>()
        .map_err(|_| AmqpError::BadUri(endpoint.to_string()))?;
    let tls = tls_config(opts)?;
    let props = ConnectionProperties::default().with_connection_name(connection_name.into());
    let runtime = lapin::runtime::default_runtime()?;
    let connecting = Connection::connect_uri_with_config(uri, props, tls, runtime);
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(conn) => Ok(conn?),
        Err(_) => Err(AmqpError::ConnectTimeout(CONNECT_TIMEOUT)),
    }
}

/// Whether lapin was built with a TLS backend. Probed once: a TLS handshake towards a local
/// socket that is closed at once fails when TLS is compiled in, and "succeeds" as a plain
/// stream when it is not. Trouble setting the probe up counts as "no TLS" (fail closed).
pub async fn tls_available() -> bool {
    static PROBE: tokio::sync::OnceCell<bool> = tokio::sync::OnceCell::const_new();
    *PROBE.get_or_init(probe_tls).await
}

async fn probe_tls() -> bool {
    let probe = async {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).ok()?;
        let addr = listener.local_addr().ok()?;
        let runtime = lapin::runtime::default_runtime().ok()?;
        let stream = lapin::tcp::AsyncTcpStream::connect(&runtime, addr)
            .await
            .ok()?;
        drop(listener);
        let upgraded = stream
            .into_tls("localhost", lapin::tcp::TLSConfig::default())
            .await;
        Some(!matches!(
            upgraded,
            Ok(lapin::tcp::AsyncTcpStream::Plain(_))
        ))
    };
    // Without TLS the "upgrade" returns at once, with no I/O: a timeout means a handshake ran.
    let available = tokio::time::timeout(Duration::from_secs(5), probe)
        .await
        .unwrap_or(Some(true))
        .unwrap_or(false);
    if !available {
        tracing::warn!("this build of lapin has no TLS support: ssl = true cannot be used");
    }
    available
}

/// `ssl_ca_file` (else the system bundle), `ssl_cert_file` + `ssl_key_file` (PEM, mutual TLS).
fn tls_config(opts: &RabbitOptions) -> Result<OwnedTLSConfig, AmqpError> {
    if !opts.ssl {
        return Ok(OwnedTLSConfig::default());
    }
    let read = |option: &'static str, path: &str| {
        std::fs::read(path).map_err(|e| AmqpError::TlsFile {
            option,
            path: path.to_string(),
            reason: e.to_string(),
        })
    };
    let cert_chain = if !opts.ssl_ca_file.is_empty() {
        Some(read("ssl_ca_file", &opts.ssl_ca_file)?)
    } else {
        SYSTEM_CA_BUNDLES.iter().find_map(|p| std::fs::read(p).ok())
    };
    let identity = if opts.ssl_cert_file.is_empty() {
        None
    } else {
        Some(OwnedIdentity::PKCS8 {
            pem: read("ssl_cert_file", &opts.ssl_cert_file)?,
            key: read("ssl_key_file", &opts.ssl_key_file)?,
        })
    };
    Ok(OwnedTLSConfig {
        identity,
        cert_chain: cert_chain.map(|pem| String::from_utf8_lossy(&pem).into_owned()),
    })
}

/// A topology field table as lapin's (py-amqp's `I`/`L`/`S`/`t` types, §3.1).
pub fn field_table(table: &topology::FieldTable) -> lapin::types::FieldTable {
    let mut out = lapin::types::FieldTable::default();
    for (k, v) in table.iter() {
        let value = match v {
            topology::FieldValue::LongString(s) => AMQPValue::LongString(s.as_str().into()),
            topology::FieldValue::LongInt(n) => AMQPValue::LongInt(*n),
            topology::FieldValue::LongLongInt(n) => AMQPValue::LongLongInt(*n),
            topology::FieldValue::Bool(b) => AMQPValue::Boolean(*b),
        };
        // Keys are oslo's fixed `x-*` argument names.
        out.insert(k.into(), value);
    }
    out
}

/// oslo's AMQP properties as lapin's: json, utf-8, delivery_mode 2, priority 0, `headers = {}`,
/// and `expiration` on calls (§4.1).
pub fn basic_properties(p: &AmqpProperties) -> BasicProperties {
    let props = BasicProperties::default()
        .with_content_type(p.content_type.into())
        .with_content_encoding(p.content_encoding.into())
        .with_delivery_mode(p.delivery_mode)
        .with_priority(p.priority)
        .with_headers(lapin::types::FieldTable::default());
    match &p.expiration {
        Some(ms) => props.with_expiration(ms.as_str().into()),
        None => props,
    }
}

/// The `x-stream-offset` header of a stream delivery, if any.
pub fn stream_offset_header(props: &BasicProperties) -> Option<i64> {
    let headers = props.headers().as_ref()?;
    match headers.inner().get("x-stream-offset")? {
        AMQPValue::LongLongInt(n) => Some(*n),
        AMQPValue::LongInt(n) => Some(i64::from(*n)),
        AMQPValue::LongUInt(n) => Some(i64::from(*n)),
        _ => None,
    }
}

/// The `compression` header kombu sets with `kombu_compression`, if any.
pub fn compression_header(props: &BasicProperties) -> Option<String> {
    let headers = props.headers().as_ref()?;
    match headers.inner().get("compression")? {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        other => Some(format!("{other:?}")),
    }
}

/// The string form of an optional short-string property.
pub fn prop_str(p: &Option<ShortString>) -> Option<&str> {
    p.as_ref().map(ShortString::as_str)
}

fn exchange_kind(kind: topology::ExchangeKind) -> lapin::ExchangeKind {
    match kind {
        topology::ExchangeKind::Direct => lapin::ExchangeKind::Direct,
        topology::ExchangeKind::Topic => lapin::ExchangeKind::Topic,
        topology::ExchangeKind::Fanout => lapin::ExchangeKind::Fanout,
    }
}

/// `exchange.declare` with oslo's flags (never passive, internal or nowait).
pub async fn declare_exchange(ch: &Channel, e: &ExchangeDecl) -> Result<(), AmqpError> {
    let opts = ExchangeDeclareOptions {
        durable: e.durable,
        auto_delete: e.auto_delete,
        ..Default::default()
    };
    ch.exchange_declare(
        short("exchange name", &e.name)?,
        exchange_kind(e.kind),
        opts,
        lapin::types::FieldTable::default(),
    )
    .await?;
    Ok(())
}

async fn declare_queue(ch: &Channel, q: &QueueDecl) -> Result<(), AmqpError> {
    let opts = QueueDeclareOptions {
        durable: q.durable,
        exclusive: q.exclusive,
        auto_delete: q.auto_delete,
        ..Default::default()
    };
    ch.queue_declare(
        short("queue name", &q.name)?,
        opts,
        field_table(&q.arguments),
    )
    .await?;
    Ok(())
}

/// oslo's `Queue.declare()`: the exchange (unless it is the default one), the queue, the binding.
async fn declare_consumer(ch: &Channel, c: &ConsumerDecl) -> Result<(), AmqpError> {
    if let Some(e) = &c.exchange {
        declare_exchange(ch, e).await?;
    }
    declare_queue(ch, &c.queue).await?;
    if let Some((exchange, queue, key)) = c.binding() {
        ch.queue_bind(
            short("queue name", queue)?,
            short("exchange name", exchange)?,
            short("routing key", key)?,
            QueueBindOptions::default(),
            lapin::types::FieldTable::default(),
        )
        .await?;
    }
    Ok(())
}

/// Declares every consumer of `plan` on one channel (with oslo's non-durable fallback, which
/// needs a fresh channel), sends `basic.qos` if the plan asks for it, and starts the consumers
/// with manual acks and tags `1`, `2`, ... like oslo. `offset` is the resume point of a stream
/// consumer. Returns the channel (keep it to delete queues) and the consumers in plan order.
pub async fn start_consumers(
    conn: &Connection,
    plan: &ListenerPlan,
    offset: &StreamOffset,
) -> Result<(Channel, Vec<Consumer>), AmqpError> {
    let mut ch = conn.create_channel().await?;
    for decl in &plan.consumers {
        match declare_consumer(&ch, decl).await {
            Err(e) if e.is_durable_mismatch() => {
                tracing::warn!(queue = %decl.queue.name, "{e}; declaring it non-durable as oslo does");
                ch = conn.create_channel().await?;
                declare_consumer(&ch, &decl.durable_fallback()).await?;
            }
            other => other?,
        }
    }
    if let Some(count) = plan.prefetch {
        ch.basic_qos(count, BasicQosOptions { global: false })
            .await?;
    }
    let mut consumers = Vec::with_capacity(plan.consumers.len());
    for (i, decl) in plan.consumers.iter().enumerate() {
        let consumer = ch
            .basic_consume(
                short("queue name", &decl.queue.name)?,
                (i + 1).to_string().into(),
                BasicConsumeOptions::default(),
                field_table(&decl.consumer_arguments(offset)),
            )
            .await?;
        consumers.push(consumer);
    }
    Ok((ch, consumers))
}

/// The publishing side of one connection: one channel in confirm mode, reopened after a
/// channel error, declaring each target's exchange once per channel as oslo does.
pub struct Publisher {
    conn: Arc<Connection>,
    state: tokio::sync::Mutex<Option<PublishChannel>>,
}

struct PublishChannel {
    channel: Channel,
    declared: HashSet<String>,
}

impl Publisher {
    /// A publisher on `conn`; the channel is opened on first use.
    pub fn new(conn: Arc<Connection>) -> Self {
        Publisher {
            conn,
            state: tokio::sync::Mutex::new(None),
        }
    }

    /// Publishes `body` to `target` and waits for the broker's confirm. A channel error (the
    /// broker closed our channel) is retried once on a fresh channel.
    pub async fn publish(
        &self,
        target: &PublishTarget,
        body: &[u8],
        props: &AmqpProperties,
    ) -> Result<(), AmqpError> {
        match self.try_publish(target, body, props).await {
            Err(AmqpError::Lapin(e)) if self.conn.status().connected() => {
                tracing::debug!("publish failed on a broken channel ({e}); retrying on a new one");
                *self.state.lock().await = None;
                self.try_publish(target, body, props).await
            }
            other => other,
        }
    }

    async fn try_publish(
        &self,
        target: &PublishTarget,
        body: &[u8],
        props: &AmqpProperties,
    ) -> Result<(), AmqpError> {
        let exchange = short("exchange name", &target.exchange)?;
        let routing_key = short("routing key", &target.routing_key)?;
        let confirm = {
            let mut state = self.state.lock().await;
            let pc = match &mut *state {
                Some(pc) if pc.channel.status().connected() => pc,
                slot => slot.insert(PublishChannel {
                    channel: self.open_channel().await?,
                    declared: HashSet::new(),
                }),
            };
            if let Some(decl) = &target.declare {
                if !pc.declared.contains(&decl.name) {
                    self.declare_for_publish(pc, decl).await?;
                }
            }
            let opts = BasicPublishOptions {
                mandatory: target.mandatory,
                immediate: false,
            };
            pc.channel
                .basic_publish(exchange, routing_key, opts, body, basic_properties(props))
                .await?
        };
        match confirm.await? {
            Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
            Confirmation::Ack(Some(ret)) => Err(AmqpError::Returned {
                code: ret.reply_code,
                text: ret.reply_text.to_string(),
            }),
            Confirmation::Nack(_) => Err(AmqpError::Nacked),
        }
    }

    /// Closes the publishing channel, if open.
    pub async fn close(&self) {
        if let Some(pc) = self.state.lock().await.take() {
            if pc.channel.status().connected() {
                let _ = pc.channel.close(200, "OK".into()).await;
            }
        }
    }

    async fn open_channel(&self) -> Result<Channel, AmqpError> {
        let channel = self.conn.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(channel)
    }

    /// oslo's publisher fallback: an exchange that exists with the other `durable` flag is
    /// re-declared non-durable (on a new channel: the broker closed this one).
    async fn declare_for_publish(
        &self,
        pc: &mut PublishChannel,
        decl: &ExchangeDecl,
    ) -> Result<(), AmqpError> {
        match declare_exchange(&pc.channel, decl).await {
            Err(e) if e.is_durable_mismatch() && decl.durable => {
                tracing::warn!(exchange = %decl.name, "{e}; declaring it non-durable as oslo does");
                pc.channel = self.open_channel().await?;
                pc.declared.clear();
                let fallback = ExchangeDecl {
                    durable: false,
                    ..decl.clone()
                };
                declare_exchange(&pc.channel, &fallback).await?;
            }
            other => other?,
        }
        pc.declared.insert(decl.name.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::topology::FieldValue;
    use crate::rpc::url::Secret;

    #[test]
    fn field_values_keep_py_amqp_types() {
        let t = topology::FieldTable::from([
            ("x-expires", FieldValue::LongInt(1_800_000)),
            ("x-big", FieldValue::LongLongInt(5_000_000_000)),
            ("x-queue-type", FieldValue::string("quorum")),
            ("x-cancel-on-ha-failover", FieldValue::Bool(true)),
        ]);
        let l = field_table(&t);
        let get = |k: &str| l.inner().get(k).cloned();
        assert_eq!(get("x-expires"), Some(AMQPValue::LongInt(1_800_000)));
        assert_eq!(get("x-big"), Some(AMQPValue::LongLongInt(5_000_000_000)));
        assert_eq!(
            get("x-queue-type"),
            Some(AMQPValue::LongString("quorum".into()))
        );
        assert_eq!(
            get("x-cancel-on-ha-failover"),
            Some(AMQPValue::Boolean(true))
        );
    }

    #[test]
    fn properties_are_oslo_s() {
        let cast = basic_properties(&AmqpProperties::cast());
        assert_eq!(prop_str(cast.content_type()), Some("application/json"));
        assert_eq!(prop_str(cast.content_encoding()), Some("utf-8"));
        assert_eq!(*cast.delivery_mode(), Some(2));
        assert_eq!(*cast.priority(), Some(0));
        assert_eq!(cast.headers().as_ref().map(|h| h.inner().len()), Some(0));
        assert!(cast.expiration().is_none());
        let call = basic_properties(&AmqpProperties::call(Duration::from_secs(60)));
        assert_eq!(prop_str(call.expiration()), Some("60000"));
    }

    #[test]
    fn long_names_fail_instead_of_panicking() {
        assert!(short("queue name", &"q".repeat(255)).is_ok());
        assert!(matches!(
            short("queue name", &"q".repeat(256)),
            Err(AmqpError::TooLong { len: 256, .. })
        ));
    }

    #[tokio::test]
    async fn a_bad_uri_error_does_not_leak_the_password() {
        let ep = BrokerEndpoint {
            host: "bad host".into(),
            port: 5672,
            username: "u".into(),
            password: Secret::new("s3cr3t-pw"),
            vhost: "/".into(),
        };
        match connect(&ep, &RabbitOptions::default(), "test").await {
            Err(e) => {
                let text = e.to_string();
                assert!(!text.contains("s3cr3t-pw"), "{text}");
            }
            Ok(_) => panic!("connected to a bad host"),
        }
    }
}
