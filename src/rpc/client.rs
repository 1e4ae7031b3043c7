//! The RPC client: oslo `call` and `cast` towards neutron-server, and the reply-queue consumer
//! that hands replies to waiting callers (docs/reference/oslo-messaging-rabbit.md §4.3–§5).
//!
//! * Every message carries neutron's admin context, a fresh `_unique_id` and the target version;
//!   a call adds `_msg_id`, `_reply_q` (the one reply queue of this process) and the AMQP
//!   `expiration` = its timeout, so the broker drops it when nobody waits any more.
//! * A publish interrupted by a lost connection is retried on the next one until the deadline,
//!   with the same `_unique_id`, so the server's duplicate filter drops a double.
//! * Replies are matched by `_msg_id`; keep-alives (`ending: false`) are absorbed until the
//!   `ending` one, exactly as `ReplyWaiter` does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicRejectOptions};
use lapin::Consumer;
use serde_json::Value;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tracing::Instrument;

use crate::rpc::amqp::{self, AmqpError, Publisher};
use crate::rpc::oslo::{
    check_properties, new_request_id, new_unique_id, python_utc_timestamp, AmqpProperties, Context,
    DecodeError, RemoteError, Reply, ReplyCollector, Request,
};
use crate::rpc::topology::{cast_target, fanout_target, PublishTarget};
use crate::rpc::url::RabbitOptions;

/// Pause before a publish that failed on a broken connection is tried again.
const REPUBLISH_DELAY: Duration = Duration::from_millis(250);

/// Why a call or cast failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// No reply within the timeout (oslo's `MessagingTimeout`).
    #[error("RPC call {method} timed out after {timeout:?}")]
    Timeout {
        /// The called method.
        method: String,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The remote side raised; branch on [`RemoteError::class`] (`NetworkNotFound`, ...).
    #[error(transparent)]
    Remote(RemoteError),
    /// No broker connection within the timeout, or the transport is shut down.
    #[error("not connected to the message broker: {0}")]
    NotConnected(String),
    /// The message could not be built, was refused by the broker, or the reply is unreadable.
    #[error("RPC protocol error: {0}")]
    Protocol(String),
}

impl RpcError {
    /// True when the remote side raised an exception of class `class`.
    pub fn is_remote(&self, class: &str) -> bool {
        matches!(self, RpcError::Remote(e) if e.is(class))
    }
}

/// What a caller waits for.
type Outcome = Result<Value, RpcError>;

struct Pending {
    collector: ReplyCollector,
    tx: oneshot::Sender<Outcome>,
}

/// What the client shares with the transport's supervisor and reply consumer.
pub(crate) struct Shared {
    pub(crate) reply_queue: String,
    pub(crate) exchange: String,
    pub(crate) opts: RabbitOptions,
    pub(crate) default_timeout: Duration,
    publisher: watch::Receiver<Option<Arc<Publisher>>>,
    pending: Mutex<HashMap<String, Pending>>,
}

impl Shared {
    pub(crate) fn new(
        reply_queue: String,
        exchange: String,
        opts: RabbitOptions,
        default_timeout: Duration,
        publisher: watch::Receiver<Option<Arc<Publisher>>>,
    ) -> Self {
        Shared {
            reply_queue,
            exchange,
            opts,
            default_timeout,
            publisher,
            pending: Mutex::new(HashMap::new()),
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Feeds one reply to its caller; the outcome goes out with the `ending` message.
    fn on_reply(&self, reply: Reply) {
        let Some(msg_id) = reply.msg_id.clone() else {
            tracing::warn!("dropping a reply without _msg_id");
            return;
        };
        let mut pending = self.pending();
        let Some(p) = pending.get_mut(&msg_id) else {
            tracing::info!(msg_id = %msg_id, "no caller waits for this reply (timed out?); dropping it");
            return;
        };
        if let Some(outcome) = p.collector.push(reply) {
            if let Some(p) = pending.remove(&msg_id) {
                let _ = p.tx.send(outcome.map_err(RpcError::Remote));
            }
        }
    }

    /// Fails the caller of `msg_id` right away instead of letting it time out.
    fn on_broken_reply(&self, msg_id: &str, reason: String) {
        if let Some(p) = self.pending().remove(msg_id) {
            let _ = p.tx.send(Err(RpcError::Protocol(reason)));
        }
    }
}

/// Removes a call's entry however the call ends (reply, timeout, error, cancellation).
struct PendingGuard<'a> {
    shared: &'a Shared,
    msg_id: &'a str,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.shared.pending().remove(self.msg_id);
    }
}

/// Sends oslo RPC calls and casts with neutron's admin context. Cheap to clone; every clone
/// shares the connection and the reply queue.
#[derive(Clone)]
pub struct RpcClient {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient")
            .field("reply_queue", &self.shared.reply_queue)
            .field("exchange", &self.shared.exchange)
            .finish_non_exhaustive()
    }
}

impl RpcClient {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        RpcClient { shared }
    }

    /// The name of this process's reply queue (`reply_<uuid4 hex>`); stable across reconnects.
    pub fn reply_queue(&self) -> &str {
        &self.shared.reply_queue
    }

    /// oslo `call`: publishes `method(args)` at `version` to `topic` (`topic.server` for one
    /// server) and waits for the reply, at most `timeout` (default `rpc_response_timeout`),
    /// including the wait for a broker connection.
    pub async fn call(
        &self,
        topic: &str,
        method: &str,
        args: Value,
        version: &str,
        timeout: Option<Duration>,
    ) -> Result<Value, RpcError> {
        let timeout = timeout.unwrap_or(self.shared.default_timeout);
        let msg_id = new_unique_id();
        let span = tracing::info_span!("rpc_call", topic, method, msg_id = %msg_id);
        self.do_call(topic, method, args, version, timeout, &msg_id)
            .instrument(span)
            .await
    }

    async fn do_call(
        &self,
        topic: &str,
        method: &str,
        args: Value,
        version: &str,
        timeout: Duration,
        msg_id: &str,
    ) -> Result<Value, RpcError> {
        let deadline = Instant::now() + timeout;
        let body = request(method, args, version)
            .into_call(msg_id, self.shared.reply_queue.as_str())
            .encode()
            .map_err(|e| RpcError::Protocol(e.to_string()))?;
        let (tx, rx) = oneshot::channel();
        self.shared.pending().insert(
            msg_id.to_string(),
            Pending {
                collector: ReplyCollector::new(),
                tx,
            },
        );
        let _guard = PendingGuard {
            shared: &self.shared,
            msg_id,
        };
        let target = cast_target(&self.shared.opts, &self.shared.exchange, topic, None);
        self.publish(&target, &body, &AmqpProperties::call(timeout), deadline)
            .await?;
        tracing::debug!("RPC call sent");
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(RpcError::NotConnected("the transport is shut down".into())),
            Err(_) => {
                tracing::warn!(?timeout, "RPC call timed out");
                Err(RpcError::Timeout {
                    method: method.to_string(),
                    timeout,
                })
            }
        }
    }

    /// oslo `cast` to `topic` (`topic.server` for one server). Waits for a broker connection
    /// for at most `rpc_response_timeout`.
    pub async fn cast(
        &self,
        topic: &str,
        method: &str,
        args: Value,
        version: &str,
    ) -> Result<(), RpcError> {
        let target = cast_target(&self.shared.opts, &self.shared.exchange, topic, None);
        self.send_cast(target, method, args, version).await
    }

    /// oslo fanout cast (`prepare(fanout=True).cast`): every server of `topic` gets it.
    pub async fn cast_fanout(
        &self,
        topic: &str,
        method: &str,
        args: Value,
        version: &str,
    ) -> Result<(), RpcError> {
        let target = fanout_target(&self.shared.opts, topic);
        self.send_cast(target, method, args, version).await
    }

    async fn send_cast(
        &self,
        target: PublishTarget,
        method: &str,
        args: Value,
        version: &str,
    ) -> Result<(), RpcError> {
        let span = tracing::info_span!("rpc_cast", exchange = %target.exchange, routing_key = %target.routing_key, method);
        let body = request(method, args, version)
            .encode()
            .map_err(|e| RpcError::Protocol(e.to_string()))?;
        let deadline = Instant::now() + self.shared.default_timeout;
        self.publish(&target, &body, &AmqpProperties::cast(), deadline)
            .instrument(span)
            .await
    }

    /// Publishes on the current connection, waiting for one (and retrying on the next one after
    /// a connection loss) until `deadline`.
    async fn publish(
        &self,
        target: &PublishTarget,
        body: &[u8],
        props: &AmqpProperties,
        deadline: Instant,
    ) -> Result<(), RpcError> {
        let mut connected = self.shared.publisher.clone();
        loop {
            let publisher = match tokio::time::timeout_at(
                deadline,
                connected.wait_for(Option::is_some),
            )
            .await
            {
                Ok(Ok(current)) => current.clone(),
                Ok(Err(_)) => {
                    return Err(RpcError::NotConnected("the transport is shut down".into()))
                }
                Err(_) => {
                    return Err(RpcError::NotConnected(
                        "no broker connection before the deadline".into(),
                    ))
                }
            };
            let Some(publisher) = publisher else {
                continue;
            };
            match publisher.publish(target, body, props).await {
                Ok(()) => return Ok(()),
                Err(AmqpError::Lapin(e)) => {
                    if Instant::now() + REPUBLISH_DELAY >= deadline {
                        return Err(RpcError::NotConnected(e.to_string()));
                    }
                    tracing::warn!("publish failed, retrying on the next connection: {e}");
                    tokio::time::sleep(REPUBLISH_DELAY).await;
                }
                Err(e) => return Err(RpcError::Protocol(e.to_string())),
            }
        }
    }
}

/// A request as neutron's agents build it: admin context, fresh `_unique_id`, `version` set.
fn request(method: &str, args: Value, version: &str) -> Request {
    let context =
        Context::neutron_admin(&new_request_id(), &python_utc_timestamp(SystemTime::now()));
    Request::new(method, args, new_unique_id())
        .with_version(version)
        .with_context(context)
}

/// Consumes the reply queue until the consumer stops, and says why. Replies are acked on
/// receipt (like `ReplyWaiter`); unreadable ones are rejected without requeue.
pub(crate) async fn consume_replies(mut consumer: Consumer, shared: &Shared) -> String {
    while let Some(delivery) = consumer.next().await {
        let delivery = match delivery {
            Ok(d) => d,
            Err(e) => return format!("reply consumer failed: {e}"),
        };
        let props = &delivery.properties;
        let decoded = check_properties(
            amqp::prop_str(props.content_type()),
            amqp::prop_str(props.content_encoding()),
            amqp::compression_header(props).as_deref(),
        )
        .and_then(|()| Reply::decode(&delivery.data));
        let reply = match decoded {
            Ok(r) => r,
            Err(DecodeError::Failure {
                msg_id: Some(msg_id),
                reason,
            }) => {
                tracing::warn!(msg_id = %msg_id, "reply with an unreadable failure: {reason}");
                shared.on_broken_reply(&msg_id, format!("unreadable remote failure: {reason}"));
                ack(&delivery).await;
                continue;
            }
            Err(e) => {
                tracing::warn!("dropping an unreadable reply: {e}");
                if let Err(e) = delivery.reject(BasicRejectOptions { requeue: false }).await {
                    tracing::warn!("basic.reject failed: {e}");
                }
                continue;
            }
        };
        ack(&delivery).await;
        shared.on_reply(reply);
    }
    "reply consumer cancelled by the broker".to_string()
}

async fn ack(delivery: &lapin::message::Delivery) {
    if let Err(e) = delivery.ack(BasicAckOptions::default()).await {
        tracing::warn!("basic.ack of a reply failed: {e}");
    }
}
