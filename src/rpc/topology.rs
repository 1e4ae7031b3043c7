//! What to declare on the broker and where to publish, as plain data
//! (docs/reference/oslo-messaging-rabbit.md §3, §4.5).
//!
//! RabbitMQ refuses (406, channel closed) a re-declaration whose flags or arguments differ from
//! the existing queue or exchange, and neutron-server declares the same objects. So every flag
//! and argument here copies oslo.messaging's `impl_rabbit` for the same options; the lapin layer
//! only translates these values, it decides nothing.

use crate::rpc::url::{OptionError, RabbitOptions};

/// neutron's control exchange (`set_transport_defaults(control_exchange='neutron')`).
pub const DEFAULT_CONTROL_EXCHANGE: &str = "neutron";
/// The topic our RPC server listens on (`neutron_lib.agent.topics.DHCP_AGENT`).
pub const DHCP_AGENT_TOPIC: &str = "dhcp_agent";
/// Where the DHCP plugin API calls go (`topics.PLUGIN`).
pub const PLUGIN_TOPIC: &str = "q-plugin";
/// Where `report_state` calls go (`topics.REPORTS`).
pub const REPORTS_TOPIC: &str = "q-reports-plugin";
/// AMQP's default exchange: replies go there, routed by queue name.
pub const DEFAULT_EXCHANGE: &str = "";
/// What RabbitMQ says when an existing exchange has another `durable` flag; oslo then retries
/// the declaration as non-durable (§3.3). Match it against the channel-close reply text.
pub const DURABLE_MISMATCH: &str = "PRECONDITION_FAILED - inequivalent arg 'durable'";

/// An AMQP field-table value, typed as py-amqp encodes oslo's Python values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    /// `S`: Python `str`.
    LongString(String),
    /// `I`: Python `int` that fits in 32 signed bits.
    LongInt(i32),
    /// `L`: Python `int` that does not fit in 32 bits.
    LongLongInt(i64),
    /// `t`: Python `bool`.
    Bool(bool),
}

impl FieldValue {
    /// py-amqp's choice for a Python int: `I` when it fits in 32 bits, else `L`.
    pub fn int(v: i64) -> Self {
        i32::try_from(v).map_or(FieldValue::LongLongInt(v), FieldValue::LongInt)
    }

    /// A long string.
    pub fn string(s: impl Into<String>) -> Self {
        FieldValue::LongString(s.into())
    }
}

/// An AMQP field table in insertion order (the order oslo builds it in).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldTable(Vec<(String, FieldValue)>);

impl FieldTable {
    /// An empty table.
    pub fn new() -> Self {
        FieldTable(Vec::new())
    }

    /// Sets `key`, replacing an existing value in place (like a Python dict).
    pub fn insert(&mut self, key: &str, value: FieldValue) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => self.0.push((key.to_string(), value)),
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&FieldValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Entries in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &FieldValue)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<const N: usize> From<[(&str, FieldValue); N]> for FieldTable {
    fn from(entries: [(&str, FieldValue); N]) -> Self {
        let mut t = FieldTable::new();
        for (k, v) in entries {
            t.insert(k, v);
        }
        t
    }
}

/// `impl_rabbit._get_queue_arguments`, step for step (§3.1).
///
/// `ttl_secs` is 0 for topic queues (they never expire) and `rabbit_transient_queues_ttl` for
/// reply and fanout queues. `quorum` is `rabbit_quorum_queue` for topic queues and
/// `rabbit_transient_quorum_queue` for the others. `stream` is only set for the stream fanout
/// queue, and replaces everything else.
pub fn queue_arguments(
    opts: &RabbitOptions,
    ttl_secs: i64,
    quorum: bool,
    stream: bool,
) -> Result<FieldTable, OptionError> {
    if quorum && opts.rabbit_ha_queues {
        return Err(OptionError::QuorumAndHa);
    }
    let mut args = FieldTable::new();
    if opts.rabbit_ha_queues {
        args.insert("x-ha-policy", FieldValue::string("all"));
    }
    if quorum {
        args.insert("x-queue-type", FieldValue::string("quorum"));
        // Python tests these for truthiness, so negative values are sent too.
        if opts.rabbit_quorum_delivery_limit != 0 {
            args.insert(
                "x-delivery-limit",
                FieldValue::int(opts.rabbit_quorum_delivery_limit),
            );
        }
        if opts.rabbit_quorum_max_memory_length != 0 {
            args.insert(
                "x-max-in-memory-length",
                FieldValue::int(opts.rabbit_quorum_max_memory_length),
            );
        }
        if opts.rabbit_quorum_max_memory_bytes != 0 {
            args.insert(
                "x-max-in-memory-bytes",
                FieldValue::int(opts.rabbit_quorum_max_memory_bytes),
            );
        }
    }
    if ttl_secs > 0 {
        args.insert("x-expires", FieldValue::int(ttl_secs.saturating_mul(1000)));
    }
    if stream {
        args = FieldTable::from([("x-queue-type", FieldValue::string("stream"))]);
        if ttl_secs > 0 {
            args.insert("x-max-age", FieldValue::string(format!("{ttl_secs}s")));
        }
    }
    Ok(args)
}

/// AMQP exchange types oslo uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeKind {
    /// The default exchange (never declared).
    Direct,
    /// The control exchange.
    Topic,
    /// `<topic>_fanout`.
    Fanout,
}

/// An `exchange.declare`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeDecl {
    /// Exchange name.
    pub name: String,
    /// Exchange type.
    pub kind: ExchangeKind,
    /// `durable` flag.
    pub durable: bool,
    /// `auto_delete` flag.
    pub auto_delete: bool,
}

/// A `queue.declare`. oslo never declares exclusive queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDecl {
    /// Queue name; treat as opaque (queue-manager names contain `:`).
    pub name: String,
    /// `durable` flag.
    pub durable: bool,
    /// `auto_delete` flag.
    pub auto_delete: bool,
    /// `exclusive` flag; always false.
    pub exclusive: bool,
    /// `x-*` arguments.
    pub arguments: FieldTable,
}

/// Where a stream consumer resumes: `"last"` at first, then one past the last offset seen in a
/// delivery's `x-stream-offset` header (oslo `Consumer._callback`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamOffset {
    /// Start at the end of the stream.
    #[default]
    Last,
    /// Start at this offset.
    At(i64),
}

impl StreamOffset {
    /// Records the `x-stream-offset` header of a delivery, so a re-declaration resumes after it.
    pub fn observe(&mut self, delivered: i64) {
        *self = StreamOffset::At(delivered.saturating_add(1));
    }

    /// The consumer-argument value.
    pub fn field_value(&self) -> FieldValue {
        match *self {
            StreamOffset::Last => FieldValue::string("last"),
            StreamOffset::At(n) => FieldValue::int(n),
        }
    }
}

/// One oslo `Consumer`: declare the exchange (unless it is the default one), the queue, bind
/// them, then `basic.consume` with manual acks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerDecl {
    /// `None` for the default exchange: nothing to declare and no binding.
    pub exchange: Option<ExchangeDecl>,
    /// The queue to declare and consume.
    pub queue: QueueDecl,
    /// The binding key (unused without an exchange).
    pub routing_key: String,
    /// Adds consumer argument `x-cancel-on-ha-failover: true`.
    pub cancel_on_failover: bool,
    /// A stream consumer: needs `x-stream-offset` and a prefetch.
    pub stream: bool,
}

impl ConsumerDecl {
    /// `(exchange, queue, binding key)` for `queue.bind`, if there is an exchange.
    pub fn binding(&self) -> Option<(&str, &str, &str)> {
        self.exchange.as_ref().map(|e| {
            (
                e.name.as_str(),
                self.queue.name.as_str(),
                self.routing_key.as_str(),
            )
        })
    }

    /// `basic.consume` arguments, as `Consumer.declare` builds them (the stream offset wins).
    pub fn consumer_arguments(&self, offset: &StreamOffset) -> FieldTable {
        if self.stream {
            FieldTable::from([("x-stream-offset", offset.field_value())])
        } else if self.cancel_on_failover {
            FieldTable::from([("x-cancel-on-ha-failover", FieldValue::Bool(true))])
        } else {
            FieldTable::new()
        }
    }

    /// `Consumer._declare_fallback`: what oslo re-declares after a [`DURABLE_MISMATCH`] error
    /// (exchange and queue non-durable, exchange auto_delete = the queue's).
    pub fn durable_fallback(&self) -> ConsumerDecl {
        let mut c = self.clone();
        if let Some(e) = c.exchange.as_mut() {
            e.durable = false;
            e.auto_delete = c.queue.auto_delete;
        }
        c.queue.durable = false;
        c
    }
}

/// Everything one listening channel declares and consumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerPlan {
    /// `basic.qos(prefetch_count)` to send first, if any (counts above 65535 are capped).
    pub prefetch: Option<u16>,
    /// In declaration order.
    pub consumers: Vec<ConsumerDecl>,
}

/// A publish: optionally declare the exchange first (oslo does once per channel), then
/// `basic.publish` with these address fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishTarget {
    /// Exchange to declare before the first publish on a channel.
    pub declare: Option<ExchangeDecl>,
    /// Exchange to publish to.
    pub exchange: String,
    /// Routing key.
    pub routing_key: String,
    /// `mandatory` flag: only replies set it (the broker then returns unroutable replies).
    pub mandatory: bool,
}

/// The control exchange as every topic consumer and publisher declares it.
pub fn control_exchange(opts: &RabbitOptions, name: &str) -> ExchangeDecl {
    ExchangeDecl {
        name: name.to_string(),
        kind: ExchangeKind::Topic,
        durable: opts.durable(),
        auto_delete: opts.amqp_auto_delete,
    }
}

/// `<topic>_fanout`, as both the fanout consumer and `fanout_send` declare it.
pub fn fanout_exchange(opts: &RabbitOptions, topic: &str) -> ExchangeDecl {
    ExchangeDecl {
        name: format!("{topic}_fanout"),
        kind: ExchangeKind::Fanout,
        durable: opts.rabbit_transient_quorum_queue || opts.rabbit_stream_fanout,
        auto_delete: true,
    }
}

/// The queue-manager suffix `<hostname>:<processname>:<counter>` (`use_queue_manager`), used
/// instead of a uuid4 hex in reply and fanout queue names.
pub fn queue_manager_suffix(hostname: &str, processname: &str, counter: u64) -> String {
    format!("{hostname}:{processname}:{counter}")
}

/// `reply_<suffix>`: the suffix is a fresh uuid4 hex, or a [`queue_manager_suffix`].
pub fn reply_queue_name(suffix: &str) -> String {
    format!("reply_{suffix}")
}

/// `<topic>_fanout_<suffix>`, or the shared stream `<topic>_fanout` with `rabbit_stream_fanout`.
pub fn fanout_queue_name(opts: &RabbitOptions, topic: &str, suffix: &str) -> String {
    if opts.rabbit_stream_fanout {
        format!("{topic}_fanout")
    } else {
        format!("{topic}_fanout_{suffix}")
    }
}

fn prefetch(opts: &RabbitOptions) -> Option<u16> {
    (opts.rabbit_qos_prefetch_count > 0)
        .then(|| u16::try_from(opts.rabbit_qos_prefetch_count).unwrap_or(u16::MAX))
}

/// `declare_topic_consumer`: queue named after its binding key, no TTL (§3.2 rows 1–2).
fn topic_consumer(
    opts: &RabbitOptions,
    exchange: &str,
    key: String,
) -> Result<ConsumerDecl, OptionError> {
    Ok(ConsumerDecl {
        exchange: Some(control_exchange(opts, exchange)),
        queue: QueueDecl {
            name: key.clone(),
            durable: opts.durable(),
            auto_delete: opts.amqp_auto_delete,
            exclusive: false,
            arguments: queue_arguments(opts, 0, opts.rabbit_quorum_queue, false)?,
        },
        routing_key: key,
        cancel_on_failover: opts.enable_cancel_on_failover,
        stream: false,
    })
}

/// `AMQPDriverBase.listen(Target(topic, server))`: queues `T` and `T.S` on the control exchange,
/// and a fanout queue on `T_fanout` bound with key `T` (§3.2). `fanout_suffix` is a fresh uuid4
/// hex (or a queue-manager suffix); it is ignored for the shared stream queue.
pub fn rpc_server_plan(
    opts: &RabbitOptions,
    exchange: &str,
    topic: &str,
    server: &str,
    fanout_suffix: &str,
) -> Result<ListenerPlan, OptionError> {
    opts.validate()?;
    let transient_durable = opts.rabbit_transient_quorum_queue || opts.rabbit_stream_fanout;
    let fanout = ConsumerDecl {
        exchange: Some(fanout_exchange(opts, topic)),
        queue: QueueDecl {
            name: fanout_queue_name(opts, topic, fanout_suffix),
            durable: transient_durable,
            auto_delete: false,
            exclusive: false,
            arguments: queue_arguments(
                opts,
                opts.rabbit_transient_queues_ttl,
                opts.rabbit_transient_quorum_queue,
                opts.rabbit_stream_fanout,
            )?,
        },
        routing_key: topic.to_string(),
        cancel_on_failover: opts.enable_cancel_on_failover,
        stream: opts.rabbit_stream_fanout,
    };
    Ok(ListenerPlan {
        prefetch: prefetch(opts),
        consumers: vec![
            topic_consumer(opts, exchange, topic.to_string())?,
            topic_consumer(opts, exchange, format!("{topic}.{server}"))?,
            fanout,
        ],
    })
}

/// The DHCP agent's RPC server: topic `dhcp_agent`, server = `[DEFAULT] host`.
pub fn dhcp_agent_server_plan(
    opts: &RabbitOptions,
    control_exchange: &str,
    host: &str,
    fanout_suffix: &str,
) -> Result<ListenerPlan, OptionError> {
    rpc_server_plan(
        opts,
        control_exchange,
        DHCP_AGENT_TOPIC,
        host,
        fanout_suffix,
    )
}

/// `declare_direct_consumer`: the caller's reply queue on the default exchange (§3.3).
pub fn reply_listener_plan(
    opts: &RabbitOptions,
    reply_queue: &str,
) -> Result<ListenerPlan, OptionError> {
    opts.validate()?;
    Ok(ListenerPlan {
        prefetch: prefetch(opts),
        consumers: vec![ConsumerDecl {
            exchange: None,
            queue: QueueDecl {
                name: reply_queue.to_string(),
                durable: opts.rabbit_transient_quorum_queue,
                auto_delete: false,
                exclusive: false,
                arguments: queue_arguments(
                    opts,
                    opts.rabbit_transient_queues_ttl,
                    opts.rabbit_transient_quorum_queue,
                    false,
                )?,
            },
            routing_key: String::new(),
            cancel_on_failover: opts.enable_cancel_on_failover,
            stream: false,
        }],
    })
}

/// Cast or call to `topic` (or `topic.server`): control exchange, declared first (§4.5).
pub fn cast_target(
    opts: &RabbitOptions,
    exchange: &str,
    topic: &str,
    server: Option<&str>,
) -> PublishTarget {
    PublishTarget {
        declare: Some(control_exchange(opts, exchange)),
        exchange: exchange.to_string(),
        routing_key: match server {
            Some(s) => format!("{topic}.{s}"),
            None => topic.to_string(),
        },
        mandatory: false,
    }
}

/// Fanout cast: exchange `<topic>_fanout`, empty routing key.
pub fn fanout_target(opts: &RabbitOptions, topic: &str) -> PublishTarget {
    let declare = fanout_exchange(opts, topic);
    PublishTarget {
        exchange: declare.name.clone(),
        declare: Some(declare),
        routing_key: String::new(),
        mandatory: false,
    }
}

/// A reply: default exchange (never declared), routed by queue name, `mandatory` so a vanished
/// caller queue comes back as `basic.return` (§5.1, §5.5).
pub fn reply_target(reply_queue: &str) -> PublishTarget {
    PublishTarget {
        declare: None,
        exchange: DEFAULT_EXCHANGE.to_string(),
        routing_key: reply_queue.to_string(),
        mandatory: true,
    }
}

/// What the agent's RPC client needs: its reply queue, and the two call destinations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientPlan {
    /// The reply queue consumer (one per process).
    pub reply: ListenerPlan,
    /// `DhcpPluginApi` calls (`q-plugin`, no server).
    pub plugin: PublishTarget,
    /// `report_state` calls (`q-reports-plugin`, no server).
    pub reports: PublishTarget,
}

/// The DHCP agent's client side towards neutron-server.
pub fn neutron_client_plan(
    opts: &RabbitOptions,
    control_exchange: &str,
    reply_queue: &str,
) -> Result<ClientPlan, OptionError> {
    Ok(ClientPlan {
        reply: reply_listener_plan(opts, reply_queue)?,
        plugin: cast_target(opts, control_exchange, PLUGIN_TOPIC, None),
        reports: cast_target(opts, control_exchange, REPORTS_TOPIC, None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quorum_opts() -> RabbitOptions {
        // The "modern" set of §3.4.
        RabbitOptions {
            rabbit_quorum_queue: true,
            rabbit_transient_quorum_queue: true,
            use_queue_manager: true,
            rabbit_stream_fanout: true,
            rabbit_qos_prefetch_count: 10,
            ..Default::default()
        }
    }

    fn args(opts: &RabbitOptions, ttl: i64, quorum: bool, stream: bool) -> FieldTable {
        match queue_arguments(opts, ttl, quorum, stream) {
            Ok(a) => a,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn queue_arguments_every_flag_combination() {
        let d = RabbitOptions::default();
        assert!(args(&d, 0, false, false).is_empty());
        assert_eq!(
            args(&d, 1800, false, false),
            FieldTable::from([("x-expires", FieldValue::LongInt(1_800_000))])
        );

        let ha = RabbitOptions {
            rabbit_ha_queues: true,
            ..Default::default()
        };
        assert_eq!(
            args(&ha, 1800, false, false),
            FieldTable::from([
                ("x-ha-policy", FieldValue::string("all")),
                ("x-expires", FieldValue::LongInt(1_800_000))
            ])
        );
        assert_eq!(
            queue_arguments(&ha, 0, true, false),
            Err(OptionError::QuorumAndHa)
        );

        let q = RabbitOptions {
            rabbit_quorum_delivery_limit: 5,
            rabbit_quorum_max_memory_length: 100,
            rabbit_quorum_max_memory_bytes: 5_000_000_000,
            ..Default::default()
        };
        assert_eq!(
            args(&q, 60, true, false),
            FieldTable::from([
                ("x-queue-type", FieldValue::string("quorum")),
                ("x-delivery-limit", FieldValue::LongInt(5)),
                ("x-max-in-memory-length", FieldValue::LongInt(100)),
                // Above 2^31: py-amqp switches to a 64-bit `L`.
                (
                    "x-max-in-memory-bytes",
                    FieldValue::LongLongInt(5_000_000_000)
                ),
                ("x-expires", FieldValue::LongInt(60_000)),
            ])
        );
        // Quorum limits only apply to quorum queues.
        assert!(args(&q, 0, false, false).is_empty());

        // Stream replaces everything; x-max-age is a string; TTL 0 leaves it out.
        assert_eq!(
            args(&q, 1800, true, true),
            FieldTable::from([
                ("x-queue-type", FieldValue::string("stream")),
                ("x-max-age", FieldValue::string("1800s"))
            ])
        );
        assert_eq!(
            args(&d, 0, false, true),
            FieldTable::from([("x-queue-type", FieldValue::string("stream"))])
        );
    }

    #[test]
    fn default_server_plan_matches_reference_3_2() {
        let opts = RabbitOptions::default();
        let plan = dhcp_agent_server_plan(
            &opts,
            DEFAULT_CONTROL_EXCHANGE,
            "net1",
            "b940dd5d073a4034a8afc26ecd213229",
        )
        .expect("defaults are valid");
        assert_eq!(plan.prefetch, None);
        let [t, ts, f] = &plan.consumers[..] else {
            panic!("three consumers")
        };
        let neutron = ExchangeDecl {
            name: "neutron".into(),
            kind: ExchangeKind::Topic,
            durable: false,
            auto_delete: false,
        };
        assert_eq!(t.exchange.as_ref(), Some(&neutron));
        assert_eq!(t.binding(), Some(("neutron", "dhcp_agent", "dhcp_agent")));
        assert_eq!(
            ts.binding(),
            Some(("neutron", "dhcp_agent.net1", "dhcp_agent.net1"))
        );
        for c in [t, ts] {
            assert!(!c.queue.durable && !c.queue.auto_delete && !c.queue.exclusive);
            assert!(c.queue.arguments.is_empty());
        }
        assert_eq!(
            f.exchange,
            Some(ExchangeDecl {
                name: "dhcp_agent_fanout".into(),
                kind: ExchangeKind::Fanout,
                durable: false,
                auto_delete: true
            })
        );
        assert_eq!(
            f.binding(),
            Some((
                "dhcp_agent_fanout",
                "dhcp_agent_fanout_b940dd5d073a4034a8afc26ecd213229",
                "dhcp_agent"
            ))
        );
        assert!(!f.queue.durable && !f.queue.auto_delete);
        assert_eq!(
            f.queue.arguments,
            FieldTable::from([("x-expires", FieldValue::LongInt(1_800_000))])
        );
        assert!(plan
            .consumers
            .iter()
            .all(|c| c.consumer_arguments(&StreamOffset::Last).is_empty()));
    }

    #[test]
    fn quorum_stream_plan_matches_reference_3_4() {
        let opts = quorum_opts();
        let plan =
            rpc_server_plan(&opts, "neutron", "wiretest", "host1", "unused").expect("valid set");
        assert_eq!(plan.prefetch, Some(10));
        let [t, ts, f] = &plan.consumers[..] else {
            panic!("three consumers")
        };
        for c in [t, ts] {
            assert_eq!(
                c.exchange.as_ref().map(|e| (e.durable, e.auto_delete)),
                Some((true, false))
            );
            assert!(c.queue.durable);
            assert_eq!(
                c.queue.arguments,
                FieldTable::from([("x-queue-type", FieldValue::string("quorum"))])
            );
        }
        assert_eq!(
            f.exchange
                .as_ref()
                .map(|e| (e.name.as_str(), e.durable, e.auto_delete)),
            Some(("wiretest_fanout", true, true))
        );
        assert_eq!(f.queue.name, "wiretest_fanout");
        assert!(f.queue.durable && f.stream);
        assert_eq!(
            f.queue.arguments,
            FieldTable::from([
                ("x-queue-type", FieldValue::string("stream")),
                ("x-max-age", FieldValue::string("1800s"))
            ])
        );
        let mut offset = StreamOffset::default();
        assert_eq!(
            f.consumer_arguments(&offset),
            FieldTable::from([("x-stream-offset", FieldValue::string("last"))])
        );
        offset.observe(41);
        assert_eq!(
            f.consumer_arguments(&offset),
            FieldTable::from([("x-stream-offset", FieldValue::LongInt(42))])
        );

        let reply = reply_listener_plan(
            &opts,
            &reply_queue_name(&queue_manager_suffix("vm", "scenario.py", 1)),
        )
        .expect("valid set");
        let r = &reply.consumers[0];
        assert_eq!(r.queue.name, "reply_vm:scenario.py:1");
        assert!(r.exchange.is_none() && r.binding().is_none());
        assert!(r.queue.durable && !r.queue.auto_delete);
        assert_eq!(
            r.queue.arguments,
            FieldTable::from([
                ("x-queue-type", FieldValue::string("quorum")),
                ("x-expires", FieldValue::LongInt(1_800_000))
            ])
        );
    }

    #[test]
    fn plans_refuse_what_oslo_refuses() {
        let bad = RabbitOptions {
            rabbit_stream_fanout: true,
            ..Default::default()
        };
        assert_eq!(
            rpc_server_plan(&bad, "neutron", "t", "s", "x"),
            Err(OptionError::StreamNeedsPrefetch)
        );
        let bad = RabbitOptions {
            rabbit_quorum_queue: true,
            rabbit_ha_queues: true,
            ..Default::default()
        };
        assert_eq!(
            neutron_client_plan(&bad, "neutron", "reply_x"),
            Err(OptionError::QuorumAndHa)
        );
    }

    #[test]
    fn flags_follow_durable_auto_delete_ttl_and_failover_options() {
        let opts = RabbitOptions {
            amqp_durable_queues: true,
            amqp_auto_delete: true,
            rabbit_transient_queues_ttl: 0,
            enable_cancel_on_failover: true,
            ..Default::default()
        };
        let plan = rpc_server_plan(&opts, "neutron", "t", "s", "u").expect("valid");
        let t = &plan.consumers[0];
        assert_eq!(
            t.exchange.as_ref().map(|e| (e.durable, e.auto_delete)),
            Some((true, true))
        );
        assert!(t.queue.durable && t.queue.auto_delete);
        let f = &plan.consumers[2];
        assert!(!f.queue.durable && f.queue.arguments.is_empty());
        assert_eq!(
            t.consumer_arguments(&StreamOffset::Last),
            FieldTable::from([("x-cancel-on-ha-failover", FieldValue::Bool(true))])
        );
        let fb = t.durable_fallback();
        assert_eq!(
            fb.exchange.as_ref().map(|e| (e.durable, e.auto_delete)),
            Some((false, true))
        );
        assert!(!fb.queue.durable);
    }

    #[test]
    fn client_plan_and_publish_targets() {
        let opts = RabbitOptions::default();
        let plan = neutron_client_plan(
            &opts,
            DEFAULT_CONTROL_EXCHANGE,
            "reply_208901c1d1d445c7b8bba77bf2a37500",
        )
        .expect("defaults are valid");
        let r = &plan.reply.consumers[0];
        assert!(r.exchange.is_none());
        assert!(!r.queue.durable && !r.queue.auto_delete && !r.queue.exclusive);
        assert_eq!(
            r.queue.arguments,
            FieldTable::from([("x-expires", FieldValue::LongInt(1_800_000))])
        );
        assert_eq!(
            (
                plan.plugin.exchange.as_str(),
                plan.plugin.routing_key.as_str()
            ),
            ("neutron", "q-plugin")
        );
        assert_eq!(plan.reports.routing_key, "q-reports-plugin");
        assert!(!plan.plugin.mandatory);
        assert_eq!(
            plan.plugin.declare,
            Some(control_exchange(&opts, "neutron"))
        );
        assert_eq!(
            cast_target(&opts, "neutron", "dhcp_agent", Some("h1")).routing_key,
            "dhcp_agent.h1"
        );
        let fan = fanout_target(&opts, "dhcp_agent");
        assert_eq!(
            (fan.exchange.as_str(), fan.routing_key.as_str()),
            ("dhcp_agent_fanout", "")
        );
        let rep = reply_target("reply_abc");
        assert_eq!(
            (
                rep.exchange.as_str(),
                rep.routing_key.as_str(),
                rep.mandatory,
                rep.declare
            ),
            ("", "reply_abc", true, None)
        );
    }
}
