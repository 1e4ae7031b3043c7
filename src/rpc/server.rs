//! The DHCP agent's RPC server: what happens to each delivery on the `dhcp_agent`,
//! `dhcp_agent.<host>` and fanout queues (docs/reference/oslo-messaging-rabbit.md §6).
//!
//! Per delivery, as oslo's `RpcAMQPListener` does it:
//! 1. properties and body are checked; anything unreadable is rejected without requeue;
//! 2. the message is acked **before** dispatch (at-most-once);
//! 3. a `_unique_id` seen among the last 16 is dropped;
//! 4. the endpoint is selected (namespace, version, method); a refused *cast* is only logged, a
//!    refused *call* gets oslo's `NoSuchMethod`/`UnsupportedVersion` failure back;
//! 5. the request goes to the agent as a [`TransportEvent::Cast`]. Calls to a valid method
//!    (neutron never makes them) are answered with a `null` result.
//!
//! Nothing a peer sends can make this panic or stop the loop; only the broker can.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use lapin::options::{BasicAckOptions, BasicRejectOptions};
use lapin::Consumer;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::rpc::amqp::{self, AmqpError, Publisher};
use crate::rpc::event::TransportEvent;
use crate::rpc::oslo::{
    check_properties, new_unique_id, select_endpoint, AmqpProperties, DecodeError, DispatchError,
    DuplicateFilter, Endpoint, Reply, ReplyAddress, Request,
};
use crate::rpc::topology::{reply_target, StreamOffset};

/// How often a reply whose queue is missing is retried (kombu's 0.25 s, §5.5).
const REPLY_RETRY_INTERVAL: Duration = Duration::from_millis(250);

/// What to do with a decoded, acked request.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// Hand it to the agent.
    Dispatch,
    /// Its `_unique_id` was seen among the last 16: drop it.
    Duplicate,
    /// No endpoint serves it; a call gets this failure back.
    Refused(DispatchError),
}

/// The state of one RPC server that outlives reconnects: oslo's `_MsgIdCache` (redeliveries
/// after a reconnect are exactly what it catches) and the stream resume point.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    endpoints: &'static [Endpoint<'static>],
    filter: DuplicateFilter,
    /// Where a stream fanout consumer resumes after a reconnect.
    pub stream_offset: StreamOffset,
}

impl Dispatcher {
    /// A dispatcher for these endpoints (the agent has one: `DHCP_AGENT_ENDPOINT`).
    pub fn new(endpoints: &'static [Endpoint<'static>]) -> Self {
        Dispatcher {
            endpoints,
            filter: DuplicateFilter::new(),
            stream_offset: StreamOffset::default(),
        }
    }

    /// Before the ack: properties first (kombu only decodes `application/json`), then the body.
    pub fn decode(props: &lapin::BasicProperties, body: &[u8]) -> Result<Request, DecodeError> {
        check_properties(
            amqp::prop_str(props.content_type()),
            amqp::prop_str(props.content_encoding()),
            amqp::compression_header(props).as_deref(),
        )?;
        Request::decode(body)
    }

    /// After the ack: the duplicate filter (which records the id), then endpoint selection.
    pub fn admit(&mut self, req: &Request) -> Admission {
        if !self.filter.check_and_add(req.unique_id.as_deref()) {
            return Admission::Duplicate;
        }
        match select_endpoint(req, self.endpoints) {
            Ok(_) => Admission::Dispatch,
            Err(e) => Admission::Refused(e),
        }
    }
}

/// Runs the server's consumers until one of them stops (connection or channel lost, consumer
/// cancelled by the broker) and says why. Events go to `events`; replies through `publisher`.
pub(crate) async fn serve(
    consumers: Vec<Consumer>,
    dispatcher: &mut Dispatcher,
    events: &mpsc::Sender<TransportEvent>,
    publisher: &Arc<Publisher>,
    reply_retry_timeout: Duration,
) -> String {
    let mut deliveries = stream::select_all(consumers);
    while let Some(delivery) = deliveries.next().await {
        let delivery = match delivery {
            Ok(d) => d,
            Err(e) => return format!("RPC server consumer failed: {e}"),
        };
        if let Some(offset) = amqp::stream_offset_header(&delivery.properties) {
            dispatcher.stream_offset.observe(offset);
        }
        let queue_key = delivery.routing_key.to_string();
        let request = match Dispatcher::decode(&delivery.properties, &delivery.data) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(routing_key = %queue_key, "dropping an unreadable RPC message: {e}");
                if let Err(e) = delivery.reject(BasicRejectOptions { requeue: false }).await {
                    tracing::warn!("basic.reject failed: {e}");
                }
                continue;
            }
        };
        if let Err(e) = delivery.ack(BasicAckOptions::default()).await {
            // oslo: a failed ack throws the request away (at-most-once).
            tracing::warn!(method = %request.method, "basic.ack failed, dropping the message: {e}");
            continue;
        }
        let reply_to = request.reply_address();
        match dispatcher.admit(&request) {
            Admission::Duplicate => {
                tracing::warn!(
                    method = %request.method,
                    unique_id = request.unique_id.as_deref().unwrap_or(""),
                    "dropping a duplicate RPC message"
                );
            }
            Admission::Refused(e) => {
                tracing::warn!(method = %request.method, routing_key = %queue_key, "dropping RPC message: {e}");
                if let Some(addr) = reply_to {
                    let reply = Reply::failed(&addr.msg_id, e.to_remote_error(), new_unique_id());
                    send_reply(publisher, addr, reply, reply_retry_timeout);
                }
            }
            Admission::Dispatch => {
                tracing::debug!(
                    method = %request.method,
                    routing_key = %queue_key,
                    request_id = request.context.request_id().unwrap_or(""),
                    "RPC cast received"
                );
                let event = TransportEvent::Cast {
                    method: request.method,
                    args: request.args,
                    context: request.context,
                };
                if events.send(event).await.is_err() {
                    tracing::debug!("nobody receives transport events any more; cast dropped");
                }
                if let Some(addr) = reply_to {
                    let reply = Reply::success(&addr.msg_id, Value::Null, new_unique_id());
                    send_reply(publisher, addr, reply, reply_retry_timeout);
                }
            }
        }
    }
    "RPC server consumer cancelled by the broker".to_string()
}

/// Publishes a reply in the background: default exchange, `mandatory`, retried every 0.25 s
/// while the caller's queue is missing, for at most `retry_timeout` (§5.5).
fn send_reply(
    publisher: &Arc<Publisher>,
    addr: ReplyAddress,
    reply: Reply,
    retry_timeout: Duration,
) {
    let body = match reply.encode() {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(msg_id = %addr.msg_id, "cannot encode the reply: {e}");
            return;
        }
    };
    let publisher = Arc::clone(publisher);
    tokio::spawn(async move {
        let target = reply_target(&addr.routing_key);
        let deadline = Instant::now() + retry_timeout;
        loop {
            match publisher
                .publish(&target, &body, &AmqpProperties::reply())
                .await
            {
                Ok(()) => return,
                Err(AmqpError::Returned { .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(REPLY_RETRY_INTERVAL).await;
                }
                Err(e) => {
                    tracing::warn!(msg_id = %addr.msg_id, reply_queue = %addr.routing_key, "reply not delivered: {e}");
                    return;
                }
            }
        }
    });
}
