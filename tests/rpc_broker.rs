//! The AMQP transport against a real RabbitMQ (127.0.0.1:5672, guest/guest).
//!
//! Every test works in its own throw-away vhost, so they run in parallel and leave nothing
//! behind. They need root for `rabbitmqctl` (without it they skip, with one line for the
//! suite); without a broker they fail (never skip) and say how to start one. The restart test
//! runs its own broker node on a free port; the interop test runs the real Python
//! oslo.messaging (venv made by `scripts/py-venv.sh`) as the peer.
//!
//! Run: `cargo test --test rpc_broker` (add `RUST_LOG=neutron_dhcp=debug` to see the transport).

#[path = "common/broker.rs"]
mod broker;
mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use broker::{OwnBroker, TestVhost, SHARED_BROKER as BROKER};
use common::root_or_skip;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use neutron_dhcp::rpc::amqp::basic_properties;
use neutron_dhcp::rpc::oslo::{
    new_unique_id, AmqpProperties, Context, DispatchError, RemoteError, Reply, Request,
};
use neutron_dhcp::rpc::{
    start, RpcClient, RpcError, TransportConfig, TransportEvent, TransportHandle,
};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// What these tests need root for (`rabbitmq-server` and `rabbitmqctl` are root's).
const NEEDS_ROOT: &str = "rabbitmqctl for vhosts of their own, RabbitMQ nodes of their own";

const CONNECT_WITHIN: Duration = Duration::from_secs(20);
const EVENT_WITHIN: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Broker plumbing

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// `rabbitmqctl <args>`; panics with its stderr when it fails.
fn rabbitmqctl(args: &[&str]) -> String {
    broker::rabbitmqctl(args).unwrap_or_else(|e| panic!("{e}"))
}

/// `rabbitmqctl list_<what> -p vhost cols...` as rows of tab-separated columns.
fn list(node: Option<&str>, vhost: &str, what: &str, cols: &[&str]) -> Vec<Vec<String>> {
    let cmd = format!("list_{what}");
    let mut args: Vec<&str> = Vec::new();
    if let Some(n) = node {
        args.extend(["-n", n]);
    }
    args.extend([cmd.as_str(), "-q", "--no-table-headers", "-p", vhost]);
    args.extend(cols);
    rabbitmqctl(&args)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// A throw-away vhost for `guest`, deleted (with everything in it) on drop.
fn new_vhost(tag: &str) -> TestVhost {
    init_tracing();
    TestVhost::for_guest(&format!("{tag}-"))
}

/// The queues of the vhost: name, durable, auto_delete, exclusive, arguments, consumers,
/// messages.
fn list_queues(vh: &TestVhost) -> Vec<Vec<String>> {
    list(
        None,
        &vh.name,
        "queues",
        &[
            "name",
            "durable",
            "auto_delete",
            "exclusive",
            "arguments",
            "consumers",
            "messages",
        ],
    )
}

/// The negotiated heartbeat (s) of every connection to the vhost.
fn heartbeats(vh: &TestVhost) -> Vec<String> {
    rabbitmqctl(&[
        "list_connections",
        "-q",
        "--no-table-headers",
        "vhost",
        "timeout",
    ])
    .lines()
    .filter_map(|l| l.split_once('\t'))
    .filter(|(v, _)| *v == vh.name)
    .map(|(_, t)| t.trim().to_string())
    .collect()
}

fn config(url: &str, host: &str, rabbit: &[(&str, &str)]) -> TransportConfig {
    let section: Vec<(String, String)> = rabbit
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match TransportConfig::from_parts(url, Some("neutron"), Some("10"), &section, host) {
        Ok(c) => c,
        Err(e) => panic!("config: {e}"),
    }
}

/// Starts the agent's transport and waits until everything is declared and consumed.
async fn agent(
    url: &str,
    host: &str,
) -> (RpcClient, mpsc::Receiver<TransportEvent>, TransportHandle) {
    agent_with(url, host, &[]).await
}

async fn agent_with(
    url: &str,
    host: &str,
    rabbit: &[(&str, &str)],
) -> (RpcClient, mpsc::Receiver<TransportEvent>, TransportHandle) {
    let (client, events, handle) = start(config(url, host, rabbit));
    assert!(
        handle.wait_connected(CONNECT_WITHIN).await,
        "the transport did not connect to {BROKER} within {CONNECT_WITHIN:?}"
    );
    (client, events, handle)
}

async fn next_event(
    events: &mut mpsc::Receiver<TransportEvent>,
    within: Duration,
) -> TransportEvent {
    match tokio::time::timeout(within, events.recv()).await {
        Ok(Some(e)) => e,
        Ok(None) => panic!("the transport closed its event channel"),
        Err(_) => panic!("no transport event within {within:?}"),
    }
}

async fn next_cast_with_context(
    events: &mut mpsc::Receiver<TransportEvent>,
) -> (String, Value, Context) {
    match next_event(events, EVENT_WITHIN).await {
        TransportEvent::Cast {
            method,
            args,
            context,
        } => (method, args, context),
        other => panic!("expected a cast, got {other:?}"),
    }
}

async fn next_cast(events: &mut mpsc::Receiver<TransportEvent>) -> (String, Value) {
    let (method, args, _) = next_cast_with_context(events).await;
    (method, args)
}

async fn assert_no_event(events: &mut mpsc::Receiver<TransportEvent>, during: Duration) {
    if let Ok(Some(e)) = tokio::time::timeout(during, events.recv()).await {
        panic!("unexpected transport event {e:?}");
    }
}

async fn raw_channel(vhost: &str) -> (Connection, Channel) {
    let uri = format!("amqp://guest:guest@{BROKER}/{vhost}");
    let conn = match Connection::connect(&uri, ConnectionProperties::default()).await {
        Ok(c) => c,
        Err(e) => panic!("raw lapin connection to {vhost}: {e}"),
    };
    let ch = match conn.create_channel().await {
        Ok(c) => c,
        Err(e) => panic!("raw channel: {e}"),
    };
    (conn, ch)
}

async fn raw_publish(ch: &Channel, exchange: &str, key: &str, body: &[u8], props: BasicProperties) {
    let confirm = ch
        .basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions::default(),
            body,
            props,
        )
        .await;
    if let Err(e) = confirm {
        panic!("raw publish: {e}");
    }
}

fn encode(req: &Request) -> Vec<u8> {
    match req.encode() {
        Ok(b) => b,
        Err(e) => panic!("encode: {e}"),
    }
}

fn ok<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Topology

#[tokio::test]
async fn declares_the_same_topology_as_oslo() {
    root_or_skip!(NEEDS_ROOT);
    let vh = new_vhost("topology");
    let (client, _events, handle) = agent(&vh.url(), "host-a").await;
    // One connection, heartbeat_timeout_threshold (60 s) negotiated.
    assert_eq!(
        heartbeats(&vh),
        vec!["60".to_string()],
        "negotiated heartbeat"
    );
    let reply_q = client.reply_queue().to_string();
    assert!(
        reply_q.starts_with("reply_") && reply_q.len() == 6 + 32,
        "reply queue {reply_q}"
    );

    let queues = list_queues(&vh);
    let find = |pred: &dyn Fn(&str) -> bool| -> Vec<String> {
        match queues.iter().find(|q| pred(&q[0])) {
            Some(q) => q.clone(),
            None => panic!("queue not declared; have {queues:?}"),
        }
    };
    let expires = "[{\"x-expires\",1800000}]";
    // name, durable, auto_delete, exclusive, arguments, consumers
    for (q, args) in [
        (find(&|n| n == "dhcp_agent"), "[]"),
        (find(&|n| n == "dhcp_agent.host-a"), "[]"),
        (
            find(&|n| n.starts_with("dhcp_agent_fanout_") && n.len() == 18 + 32),
            expires,
        ),
        (find(&|n| n == reply_q), expires),
    ] {
        assert_eq!(
            &q[1..6],
            &["false", "false", "false", args, "1"],
            "queue {}",
            q[0]
        );
    }
    assert_eq!(queues.len(), 4, "{queues:?}");
    let fanout_q = find(&|n| n.starts_with("dhcp_agent_fanout_"))[0].clone();

    let exchanges = list(
        None,
        &vh.name,
        "exchanges",
        &["name", "type", "durable", "auto_delete"],
    );
    for e in [
        ["neutron", "topic", "false", "false"],
        ["dhcp_agent_fanout", "fanout", "false", "true"],
    ] {
        assert!(
            exchanges.iter().any(|x| x == &e),
            "exchange {e:?} missing in {exchanges:?}"
        );
    }

    let bindings: Vec<Vec<String>> = list(
        None,
        &vh.name,
        "bindings",
        &["source_name", "destination_name", "routing_key"],
    )
    .into_iter()
    .filter(|b| !b[0].is_empty())
    .collect();
    let mut want = vec![
        vec![
            "dhcp_agent_fanout".to_string(),
            fanout_q.clone(),
            "dhcp_agent".into(),
        ],
        vec!["neutron".into(), "dhcp_agent".into(), "dhcp_agent".into()],
        vec![
            "neutron".into(),
            "dhcp_agent.host-a".into(),
            "dhcp_agent.host-a".into(),
        ],
    ];
    let mut got = bindings.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want);

    // Shutdown deletes the fanout queue (as oslo's listener does); the reply queue stays and
    // expires through x-expires.
    handle.shutdown().await;
    let names: Vec<String> = list_queues(&vh).into_iter().map(|q| q[0].clone()).collect();
    assert!(!names.contains(&fanout_q), "{names:?}");
    assert!(names.contains(&reply_q), "{names:?}");
}

#[tokio::test]
async fn declares_quorum_queues_and_a_stream_fanout_like_oslo() {
    root_or_skip!(NEEDS_ROOT);
    // The "modern" option set of reference §3.4.
    let vh = new_vhost("quorum");
    let modern = [
        ("rabbit_quorum_queue", "true"),
        ("rabbit_transient_quorum_queue", "true"),
        ("rabbit_stream_fanout", "true"),
        ("rabbit_qos_prefetch_count", "10"),
        ("use_queue_manager", "true"),
        ("hostname", "qhost"),
        ("processname", "ndrs"),
    ];
    let (client, mut events, handle) = agent_with(&vh.url(), "host-q", &modern).await;
    assert_eq!(client.reply_queue(), "reply_qhost:ndrs:2");
    let queues = list_queues(&vh);
    let row = |name: &str| match queues.iter().find(|q| q[0] == name) {
        // durable, auto_delete, arguments (quorum queues have no `exclusive`).
        Some(q) => format!("{} {} {}", q[1], q[2], q[4]),
        None => panic!("{name} not declared: {queues:?}"),
    };
    let quorum = "true false [{\"x-queue-type\",\"quorum\"}]";
    assert_eq!(row("dhcp_agent"), quorum);
    assert_eq!(row("dhcp_agent.host-q"), quorum);
    assert_eq!(
        row("dhcp_agent_fanout"),
        "true false [{\"x-max-age\",\"1800s\"},{\"x-queue-type\",\"stream\"}]"
    );
    assert_eq!(
        row("reply_qhost:ndrs:2"),
        "true false [{\"x-expires\",1800000},{\"x-queue-type\",\"quorum\"}]"
    );
    let exchanges = list(
        None,
        &vh.name,
        "exchanges",
        &["name", "type", "durable", "auto_delete"],
    );
    for e in [
        ["neutron", "topic", "true", "false"],
        ["dhcp_agent_fanout", "fanout", "true", "true"],
    ] {
        assert!(
            exchanges.iter().any(|x| x == &e),
            "exchange {e:?} missing in {exchanges:?}"
        );
    }

    let p = |n: u32| json!({"payload": {"n": n}});
    ok(
        client
            .cast("dhcp_agent.host-q", "port_update_end", p(1), "1.0")
            .await,
        "cast",
    );
    assert_eq!(
        next_cast(&mut events).await,
        ("port_update_end".into(), p(1))
    );
    ok(
        client
            .cast_fanout("dhcp_agent", "port_delete_end", p(2), "1.0")
            .await,
        "fanout",
    );
    assert_eq!(
        next_cast(&mut events).await,
        ("port_delete_end".into(), p(2))
    );
    // A call through the quorum reply queue.
    match client
        .call(
            "dhcp_agent",
            "nope",
            json!({}),
            "1.0",
            Some(Duration::from_secs(5)),
        )
        .await
    {
        Err(e) => assert!(e.is_remote("NoSuchMethod"), "{e}"),
        Ok(v) => panic!("unexpected {v}"),
    }
    handle.shutdown().await;
    // The shared stream queue is not deleted at shutdown.
    assert!(list_queues(&vh).iter().any(|q| q[0] == "dhcp_agent_fanout"));
}

// ---------------------------------------------------------------------------------------------
// Casts into the agent

#[tokio::test]
async fn casts_arrive_from_the_topic_the_host_and_the_fanout_queue() {
    root_or_skip!(NEEDS_ROOT);
    let vh = new_vhost("casts");
    // The URL query overrides [oslo_messaging_rabbit], as in oslo.
    let url = format!("{}?heartbeat_timeout_threshold=30", vh.url());
    let (client, mut events, handle) = agent(&url, "host-b").await;
    assert_eq!(
        heartbeats(&vh),
        vec!["30".to_string()],
        "negotiated heartbeat"
    );

    let payload =
        |n: u32| json!({"payload": {"network": {"id": format!("net-{n}")}, "priority": 0}});
    ok(
        client
            .cast("dhcp_agent", "network_create_end", payload(1), "1.0")
            .await,
        "cast topic",
    );
    let (method, args, context) = next_cast_with_context(&mut events).await;
    assert_eq!((method.as_str(), args), ("network_create_end", payload(1)));
    // Our client sends neutron's admin context.
    assert!(context.is_admin(), "{context:?}");
    assert!(
        context.request_id().is_some_and(|r| r.starts_with("req-")),
        "{context:?}"
    );
    ok(
        client
            .cast("dhcp_agent.host-b", "network_update_end", payload(2), "1.0")
            .await,
        "cast host",
    );
    assert_eq!(
        next_cast(&mut events).await,
        ("network_update_end".into(), payload(2))
    );
    ok(
        client
            .cast_fanout("dhcp_agent", "network_delete_end", payload(3), "1.0")
            .await,
        "fanout",
    );
    assert_eq!(
        next_cast(&mut events).await,
        ("network_delete_end".into(), payload(3))
    );
    // Another host's queue is not ours.
    ok(
        client
            .cast(
                "dhcp_agent.other-host",
                "port_create_end",
                payload(4),
                "1.0",
            )
            .await,
        "cast other",
    );
    assert_no_event(&mut events, Duration::from_millis(500)).await;
    assert!(handle.is_connected());
    handle.shutdown().await;
    assert!(
        events.recv().await.is_none(),
        "events continue after shutdown"
    );
}

#[tokio::test]
async fn duplicates_and_bad_messages_are_dropped_and_later_casts_still_arrive() {
    root_or_skip!(NEEDS_ROOT);
    let vh = new_vhost("garbage");
    let (client, mut events, handle) = agent_with(
        &vh.url(),
        "host-c",
        &[("kombu_missing_consumer_retry_timeout", "1")],
    )
    .await;
    let (_conn, ch) = raw_channel(&vh.name).await;
    let json_props = || basic_properties(&AmqpProperties::cast());
    let rk = "dhcp_agent.host-c";
    let cast = |method: &str, n: u32| {
        Request::new(method, json!({"payload": {"n": n}}), new_unique_id()).with_version("1.0")
    };

    let first = encode(&cast("port_update_end", 1));
    raw_publish(&ch, "neutron", rk, &first, json_props()).await;
    // The same message again (same _unique_id): a redelivery, dropped.
    raw_publish(&ch, "neutron", rk, &first, json_props()).await;
    // Not JSON; JSON but not oslo; bad envelope; wrong or missing content type.
    raw_publish(&ch, "neutron", rk, b"\xff not json", json_props()).await;
    raw_publish(&ch, "neutron", rk, b"[1, 2, 3]", json_props()).await;
    raw_publish(
        &ch,
        "neutron",
        rk,
        br#"{"oslo.version": "2.0", "oslo.message": "{nope"}"#,
        json_props(),
    )
    .await;
    let valid = encode(&cast("port_update_end", 99));
    raw_publish(
        &ch,
        "neutron",
        rk,
        &valid,
        json_props().with_content_type("text/plain".into()),
    )
    .await;
    raw_publish(&ch, "neutron", rk, &valid, BasicProperties::default()).await;
    // Decodable but not for this endpoint: unknown method, private method, newer version.
    raw_publish(
        &ch,
        "neutron",
        rk,
        &encode(&cast("frobnicate", 2)),
        json_props(),
    )
    .await;
    raw_publish(
        &ch,
        "neutron",
        rk,
        &encode(&cast("_private", 3)),
        json_props(),
    )
    .await;
    raw_publish(
        &ch,
        "neutron",
        rk,
        &encode(&cast("port_update_end", 4).with_version("1.1")),
        json_props(),
    )
    .await;
    raw_publish(
        &ch,
        "neutron",
        rk,
        &encode(&cast("port_update_end", 5).with_version("2.0")),
        json_props(),
    )
    .await;
    raw_publish(
        &ch,
        "neutron",
        rk,
        &encode(&cast("port_update_end", 6).with_namespace("ns")),
        json_props(),
    )
    .await;
    // Calls whose reply cannot be routed: a reply queue name too long for AMQP, and one that
    // does not exist (retried for kombu_missing_consumer_retry_timeout, then dropped).
    let long_q = "r".repeat(300);
    let bad_call = cast("frobnicate", 8).into_call(new_unique_id(), long_q.as_str());
    raw_publish(&ch, "neutron", rk, &encode(&bad_call), json_props()).await;
    let gone = cast("frobnicate", 9).into_call(new_unique_id(), "reply_gone");
    raw_publish(&ch, "neutron", rk, &encode(&gone), json_props()).await;
    // And a good one, without envelope and without version (oslo's 1.0 format).
    raw_publish(
        &ch,
        "neutron",
        rk,
        br#"{"method": "port_delete_end", "args": {"payload": {"n": 7}}, "_context_request_id": "req-x"}"#,
        json_props(),
    )
    .await;

    assert_eq!(
        next_cast(&mut events).await,
        ("port_update_end".into(), json!({"payload": {"n": 1}}))
    );
    assert_eq!(
        next_cast(&mut events).await,
        ("port_delete_end".into(), json!({"payload": {"n": 7}}))
    );
    assert_no_event(&mut events, Duration::from_millis(500)).await;
    // Rejected messages are gone (not requeued in a loop).
    let q = list_queues(&vh);
    let host_q = q.iter().find(|r| r[0] == rk);
    assert_eq!(host_q.map(|r| r[6].as_str()), Some("0"), "{q:?}");

    // Calls the agent does not serve get oslo's failures back instead of a timeout.
    let t = Some(Duration::from_secs(5));
    match client.call(rk, "frobnicate", json!({}), "1.0", t).await {
        Err(RpcError::Remote(e)) => {
            assert_eq!(
                (e.module.as_str(), e.class.as_str()),
                ("oslo_messaging.rpc.dispatcher", "NoSuchMethod")
            );
            assert_eq!(e.message, "Endpoint does not support RPC method frobnicate");
        }
        other => panic!("expected NoSuchMethod, got {other:?}"),
    }
    match client
        .call(rk, "port_update_end", json!({}), "1.4", t)
        .await
    {
        Err(e) if e.is_remote("UnsupportedVersion") => {}
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
    // A call to a method it does serve is dispatched like a cast and answered with null.
    let args = json!({"payload": {"admin_state_up": true}});
    assert_eq!(
        ok(
            client
                .call(rk, "agent_updated", args.clone(), "1.0", t)
                .await,
            "call"
        ),
        Value::Null
    );
    assert_eq!(next_cast(&mut events).await, ("agent_updated".into(), args));
    assert!(handle.is_connected());
    handle.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Calls out of the agent

/// What the test's echo server saw.
struct Seen {
    props: BasicProperties,
    request: Request,
}

/// A tiny oslo RPC server written with lapin and the pure codec, serving `topic` on the
/// control exchange: `echo` returns what it got, `explode` raises neutron's NetworkNotFound,
/// `slow` sends a call-monitor keep-alive before the result, anything else is NoSuchMethod.
async fn echo_server(vhost: &str, topic: &str) -> mpsc::UnboundedReceiver<Seen> {
    let (conn, ch) = raw_channel(vhost).await;
    ok(
        ch.exchange_declare(
            "neutron".into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await,
        "declare exchange",
    );
    ok(
        ch.queue_declare(
            topic.into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await,
        "declare queue",
    );
    ok(
        ch.queue_bind(
            topic.into(),
            "neutron".into(),
            topic.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await,
        "bind",
    );
    let mut consumer = ok(
        ch.basic_consume(
            topic.into(),
            "echo".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await,
        "consume",
    );
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let _conn = conn;
        while let Some(Ok(d)) = consumer.next().await {
            let _ = d.ack(BasicAckOptions::default()).await;
            let Ok(req) = Request::decode(&d.data) else {
                continue;
            };
            let _ = tx.send(Seen {
                props: d.properties.clone(),
                request: req.clone(),
            });
            let Some(addr) = req.reply_address() else {
                continue;
            };
            let answer = match req.method.as_str() {
                "echo" => Reply::success(
                    &addr.msg_id,
                    json!({
                        "args": req.args,
                        "version": req.version,
                        "request_id": req.context.request_id(),
                        "is_admin": req.context.is_admin(),
                    }),
                    new_unique_id(),
                ),
                "explode" => {
                    let mut e = RemoteError::new(
                        "neutron_lib.exceptions",
                        "NetworkNotFound",
                        "Network net-9 could not be found.",
                    );
                    e.kwargs.insert("net_id".into(), json!("net-9"));
                    Reply::failed(&addr.msg_id, e, new_unique_id())
                }
                "slow" => {
                    let keepalive = Reply::keepalive(&addr.msg_id, new_unique_id());
                    reply(&ch, &addr.routing_key, &keepalive).await;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Reply::success(&addr.msg_id, json!("done"), new_unique_id())
                }
                other => {
                    let e = DispatchError::NoSuchMethod {
                        method: other.to_string(),
                    };
                    Reply::failed(&addr.msg_id, e.to_remote_error(), new_unique_id())
                }
            };
            reply(&ch, &addr.routing_key, &answer).await;
        }
    });
    rx
}

async fn reply(ch: &Channel, queue: &str, reply: &Reply) {
    let body = ok(reply.encode(), "encode reply");
    let opts = BasicPublishOptions {
        mandatory: true,
        immediate: false,
    };
    let _ = ch
        .basic_publish(
            "".into(),
            queue.into(),
            opts,
            &body,
            basic_properties(&AmqpProperties::reply()),
        )
        .await;
}

#[tokio::test]
async fn calls_return_results_remote_errors_and_keepalives() {
    root_or_skip!(NEEDS_ROOT);
    let vh = new_vhost("calls");
    let (client, _events, handle) = agent(&vh.url(), "host-d").await;
    let mut seen = echo_server(&vh.name, "echo_topic").await;
    let t = Some(Duration::from_secs(5));

    let got = ok(
        client
            .call(
                "echo_topic",
                "echo",
                json!({"x": [1, 2], "y": {"k": null}}),
                "1.3",
                t,
            )
            .await,
        "echo",
    );
    assert_eq!(got["args"], json!({"x": [1, 2], "y": {"k": null}}));
    assert_eq!(got["version"], json!("1.3"));
    assert_eq!(got["is_admin"], json!(true));
    assert!(
        got["request_id"]
            .as_str()
            .is_some_and(|r| r.starts_with("req-")),
        "{got}"
    );

    // What went over the wire: oslo's properties, expiration = the timeout, our reply queue.
    let s = match seen.recv().await {
        Some(s) => s,
        None => panic!("the echo server stopped"),
    };
    let p = &s.props;
    assert_eq!(
        p.content_type().as_ref().map(|v| v.as_str()),
        Some("application/json")
    );
    assert_eq!(
        p.content_encoding().as_ref().map(|v| v.as_str()),
        Some("utf-8")
    );
    assert_eq!(*p.delivery_mode(), Some(2));
    assert_eq!(*p.priority(), Some(0));
    assert_eq!(p.expiration().as_ref().map(|v| v.as_str()), Some("5000"));
    assert_eq!(p.headers().as_ref().map(|h| h.inner().len()), Some(0));
    assert!(p.reply_to().is_none() && p.correlation_id().is_none() && p.message_id().is_none());
    assert_eq!(s.request.reply_q.as_deref(), Some(client.reply_queue()));
    assert!(s.request.msg_id.as_deref().is_some_and(|m| m.len() == 32));
    assert_eq!(s.request.context.roles(), vec!["admin", "member", "reader"]);

    match client
        .call("echo_topic", "explode", json!({}), "1.0", t)
        .await
    {
        Err(RpcError::Remote(e)) => {
            assert_eq!(e.class, "NetworkNotFound");
            assert_eq!(e.module, "neutron_lib.exceptions");
            assert_eq!(e.message, "Network net-9 could not be found.");
            assert_eq!(e.kwargs.get("net_id"), Some(&json!("net-9")));
        }
        other => panic!("expected a remote NetworkNotFound, got {other:?}"),
    }
    match client.call("echo_topic", "nope", json!({}), "1.0", t).await {
        Err(e) => assert!(e.is_remote("NoSuchMethod"), "{e}"),
        Ok(v) => panic!("unexpected result {v}"),
    }
    assert_eq!(
        ok(
            client.call("echo_topic", "slow", json!({}), "1.0", t).await,
            "slow"
        ),
        json!("done")
    );

    // Concurrent calls each get their own reply.
    let calls = (0..20).map(|i| {
        let c = client.clone();
        tokio::spawn(async move {
            c.call("echo_topic", "echo", json!({"i": i}), "1.0", t)
                .await
        })
    });
    for (i, call) in calls.collect::<Vec<_>>().into_iter().enumerate() {
        let got = ok(ok(call.await, "join"), "concurrent call");
        assert_eq!(got["args"], json!({"i": i}));
    }

    // A cast carries no expiration and no call fields.
    ok(
        client
            .cast("echo_topic", "note", json!({"a": 1}), "1.0")
            .await,
        "cast",
    );
    let s = loop {
        match tokio::time::timeout(EVENT_WITHIN, seen.recv()).await {
            Ok(Some(s)) if s.request.method == "note" => break s,
            Ok(Some(_)) => continue,
            _ => panic!("the cast did not reach the echo server"),
        }
    };
    assert!(s.props.expiration().is_none());
    assert!(s.request.msg_id.is_none() && s.request.reply_q.is_none());
    assert_eq!(s.request.args, json!({"a": 1}));
    handle.shutdown().await;
}

#[tokio::test]
async fn a_call_nobody_serves_times_out() {
    root_or_skip!(NEEDS_ROOT);
    let vh = new_vhost("timeout");
    let (client, _events, handle) = agent(&vh.url(), "host-e").await;
    let started = Instant::now();
    match client
        .call(
            "nobody_home",
            "ping",
            json!({}),
            "1.0",
            Some(Duration::from_secs(1)),
        )
        .await
    {
        Err(RpcError::Timeout { method, timeout }) => {
            assert_eq!((method.as_str(), timeout), ("ping", Duration::from_secs(1)));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "{took:?}"
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn without_a_broker_calls_fail_with_not_connected() {
    init_tracing();
    // Port 1 on loopback: connection refused at once, retried in the background.
    let (client, _events, handle) =
        start(config("rabbit://guest:guest@127.0.0.1:1/", "host-f", &[]));
    assert!(!handle.wait_connected(Duration::from_millis(300)).await);
    match client
        .call(
            "q-plugin",
            "get_active_networks_info",
            json!({}),
            "1.1",
            Some(Duration::from_secs(1)),
        )
        .await
    {
        Err(RpcError::NotConnected(_)) => {}
        other => panic!("expected NotConnected, got {other:?}"),
    }
    handle.shutdown().await;
    match client.cast("q-plugin", "x", json!({}), "1.0").await {
        Err(RpcError::NotConnected(_)) => {}
        other => panic!("expected NotConnected after shutdown, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Broker restart, with a broker node of our own

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_broker_restart() {
    root_or_skip!(NEEDS_ROOT);
    init_tracing();
    let broker = tokio::task::spawn_blocking(OwnBroker::start).await;
    let broker = ok(broker, "start own broker");
    let cfg = config(
        &broker.url(),
        "host-r",
        &[
            ("rabbit_retry_interval", "1"),
            ("rabbit_retry_backoff", "0"),
        ],
    );
    let (client, mut events, handle) = start(cfg);
    assert!(
        handle.wait_connected(CONNECT_WITHIN).await,
        "no connection to the own broker"
    );
    let reply_q = client.reply_queue().to_string();
    let cast = |n: u32| json!({"payload": {"n": n}});
    ok(
        client
            .cast("dhcp_agent.host-r", "port_update_end", cast(1), "1.0")
            .await,
        "cast before",
    );
    assert_eq!(
        next_cast(&mut events).await,
        ("port_update_end".into(), cast(1))
    );

    let b = tokio::task::spawn_blocking(move || {
        broker.stop();
        broker.boot();
        broker
    });
    let broker = ok(b.await, "restart own broker");
    match next_event(&mut events, Duration::from_secs(60)).await {
        TransportEvent::Reconnected => {}
        other => panic!("expected Reconnected after the restart, got {other:?}"),
    }
    assert!(handle.is_connected());
    ok(
        client
            .cast("dhcp_agent.host-r", "port_update_end", cast(2), "1.0")
            .await,
        "cast after",
    );
    assert_eq!(
        next_cast(&mut events).await,
        ("port_update_end".into(), cast(2))
    );
    ok(
        client
            .cast_fanout("dhcp_agent", "port_delete_end", cast(3), "1.0")
            .await,
        "fanout after",
    );
    assert_eq!(
        next_cast(&mut events).await,
        ("port_delete_end".into(), cast(3))
    );

    // Everything was declared again; the reply queue kept its name.
    let node = broker.node.clone();
    let names: Vec<String> = tokio::task::spawn_blocking(move || {
        list(Some(&node), "/", "queues", &["name"])
            .into_iter()
            .map(|r| r[0].clone())
            .collect()
    })
    .await
    .unwrap_or_default();
    assert!(names.contains(&reply_q), "{names:?}");
    assert!(names.iter().any(|n| n == "dhcp_agent.host-r"), "{names:?}");
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with("dhcp_agent_fanout_"))
            .count(),
        1,
        "{names:?}"
    );
    handle.shutdown().await;
    drop(tokio::task::spawn_blocking(move || drop(broker)).await);
}

// ---------------------------------------------------------------------------------------------
// TLS (mutual), with a broker node of our own

/// `openssl <args>` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let out = ok(
        Command::new("openssl").current_dir(dir).args(args).output(),
        "run openssl (package openssl)",
    );
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for localhost/127.0.0.1 and a client certificate, all PEM.
fn make_certs(dir: &Path) {
    let days = ["-days", "2"];
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=ndrs-test-ca",
            days[0],
            days[1],
        ],
    );
    for (name, cn, ext) in [
        (
            "server",
            "localhost",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        ),
        ("client", "guest", "extendedKeyUsage=clientAuth\n"),
    ] {
        let (key, csr, pem, extfile) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.ext"),
        );
        ok(
            std::fs::write(
                dir.join(&extfile),
                format!("basicConstraints=CA:FALSE\n{ext}"),
            ),
            "ext",
        );
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={cn}"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                days[0],
                days[1],
                "-extfile",
                &extfile,
            ],
        );
    }
    // The broker (user rabbitmq) must read its key.
    for f in ["ca.pem", "server.pem", "server.key"] {
        ok(
            std::fs::set_permissions(
                dir.join(f),
                std::os::unix::fs::PermissionsExt::from_mode(0o644),
            ),
            "chmod cert",
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_with_mutual_tls() {
    root_or_skip!(NEEDS_ROOT);
    init_tracing();
    assert!(
        neutron_dhcp::rpc::amqp::tls_available().await,
        "this build of lapin has no TLS backend, so [oslo_messaging_rabbit] ssl = true cannot \
         work: lapin needs a root-store feature (e.g. `rustls-native-certs`) in Cargo.toml"
    );
    let broker = ok(
        tokio::task::spawn_blocking(|| {
            OwnBroker::start_with(|dir, port| {
                make_certs(dir);
                let f = |n: &str| dir.join(n).display().to_string();
                format!(
                    "listeners.tcp = none\n\
                     listeners.ssl.default = 127.0.0.1:{port}\n\
                     ssl_options.cacertfile = {}\n\
                     ssl_options.certfile = {}\n\
                     ssl_options.keyfile = {}\n\
                     ssl_options.verify = verify_peer\n\
                     ssl_options.fail_if_no_peer_cert = true\n",
                    f("ca.pem"),
                    f("server.pem"),
                    f("server.key")
                )
            })
        })
        .await,
        "start own TLS broker",
    );
    let f = |n: &str| broker.dir().join(n).display().to_string();
    // oslo keeps port 5672 unless told: the URL names the TLS port explicitly.
    let url = format!("rabbit://guest:guest@localhost:{}/", broker.port);
    let (ca, cert, key) = (f("ca.pem"), f("client.pem"), f("client.key"));
    let tls = [
        ("ssl", "true"),
        ("ssl_ca_file", ca.as_str()),
        ("ssl_cert_file", cert.as_str()),
        ("ssl_key_file", key.as_str()),
    ];
    let (client, mut events, handle) = start(config(&url, "host-tls", &tls));
    assert!(
        handle.wait_connected(CONNECT_WITHIN).await,
        "no TLS connection"
    );
    ok(
        client
            .cast(
                "dhcp_agent.host-tls",
                "port_update_end",
                json!({"payload": {}}),
                "1.0",
            )
            .await,
        "cast over TLS",
    );
    assert_eq!(
        next_cast(&mut events).await,
        ("port_update_end".into(), json!({"payload": {}}))
    );
    handle.shutdown().await;

    // Without a client certificate the broker refuses us (fail_if_no_peer_cert).
    let (_client, _events, handle) = start(config(&url, "host-tls", &tls[..2]));
    assert!(
        !handle.wait_connected(Duration::from_secs(3)).await,
        "connected without a client certificate"
    );
    handle.shutdown().await;
    drop(tokio::task::spawn_blocking(move || drop(broker)).await);
}

#[tokio::test]
async fn ssl_never_falls_back_to_plain_text() {
    root_or_skip!(NEEDS_ROOT);
    // The shared broker's 5672 speaks plain AMQP. With ssl = true the transport must not log in
    // there, whether TLS is compiled in (the handshake fails) or not (it refuses to try).
    let vh = new_vhost("plaintext");
    let cfg = config(&vh.url(), "host-ssl", &[("ssl", "true")]);
    let (client, _events, handle) = start(cfg);
    assert!(
        !handle.wait_connected(Duration::from_secs(3)).await,
        "ssl = true connected to a plain-text port"
    );
    let call = client.call(
        "q-plugin",
        "x",
        json!({}),
        "1.0",
        Some(Duration::from_millis(500)),
    );
    assert!(matches!(call.await, Err(RpcError::NotConnected(_))));
    handle.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// oslo's non-durable fallback

#[tokio::test]
async fn falls_back_to_a_non_durable_control_exchange_like_oslo() {
    root_or_skip!(NEEDS_ROOT);
    let vh = new_vhost("durable");
    // neutron-server runs with amqp_durable_queues=false and declared "neutron" first.
    let (_conn, ch) = raw_channel(&vh.name).await;
    ok(
        ch.exchange_declare(
            "neutron".into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await,
        "declare non-durable exchange",
    );
    let (client, mut events, handle) =
        agent_with(&vh.url(), "host-dur", &[("amqp_durable_queues", "true")]).await;
    // The topic queues were re-declared non-durable, as oslo's _declare_fallback does.
    let queues = list_queues(&vh);
    for name in ["dhcp_agent", "dhcp_agent.host-dur"] {
        let q = queues.iter().find(|q| q[0] == name);
        assert_eq!(
            q.map(|q| q[1].as_str()),
            Some("false"),
            "{name}: {queues:?}"
        );
    }
    // The publisher falls back too.
    ok(
        client
            .cast(
                "dhcp_agent.host-dur",
                "port_update_end",
                json!({"payload": {"n": 1}}),
                "1.0",
            )
            .await,
        "cast",
    );
    assert_eq!(
        next_cast(&mut events).await,
        ("port_update_end".into(), json!({"payload": {"n": 1}}))
    );
    assert!(handle.is_connected());
    handle.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Interop with the real Python oslo.messaging

const PY_PEER: &str = r#"
import json, logging, os, sys, warnings
warnings.filterwarnings("ignore")
# Set NDRS_PEER_DEBUG=1 to see oslo.messaging's own log.
logging.basicConfig(level=logging.DEBUG if os.environ.get("NDRS_PEER_DEBUG") else logging.CRITICAL)
from oslo_config import cfg
import oslo_messaging as om

url, agent_host = sys.argv[1], sys.argv[2]
om.set_transport_defaults(control_exchange="neutron")
conf = cfg.CONF
conf([], project="ndrs-interop")
transport = om.get_rpc_transport(conf, url=url)

def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()

class Echo(object):
    target = om.Target(version="1.5")

    def echo(self, ctxt, **kw):
        return {"kw": kw, "is_admin": ctxt.get("is_admin"), "roles": ctxt.get("roles")}

    def boom(self, ctxt, **kw):
        raise KeyError("missing-key")

server = om.get_rpc_server(transport, om.Target(topic="py_echo", server="pyhost"), [Echo()])
server.start()
out({"ready": True})
for line in sys.stdin:
    cmd = json.loads(line)
    client = om.get_rpc_client(transport, om.Target(topic="dhcp_agent", version="1.0"), timeout=10)
    if cmd["do"] == "cast":
        kw = {"server": agent_host} if cmd.get("server") else ({"fanout": True} if cmd.get("fanout") else {})
        client.prepare(**kw).cast({"request_id": "req-py"}, cmd["method"], **cmd["args"])
        out({"done": True})
    elif cmd["do"] == "call":
        try:
            r = client.prepare(server=agent_host, version=cmd["version"]).call({}, cmd["method"], **cmd["args"])
            out({"result": r})
        except om.RemoteError as e:
            out({"remote_error": e.exc_type, "value": e.value})
        except Exception as e:
            out({"error": type(e).__name__, "value": str(e)})
    else:
        break
server.stop()
server.wait()
transport.cleanup()
out({"stopped": True})
"#;

/// The Python peer process, driven by JSON lines.
struct PyPeer {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
}

impl PyPeer {
    fn spawn(python: &Path, script: &Path, url: &str, agent_host: &str) -> Self {
        let mut child = ok(
            Command::new(python)
                .arg(script)
                .args([url, agent_host])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn(),
            "spawn the python peer",
        );
        let (tx, lines) = mpsc::unbounded_channel();
        let Some(stdout) = child.stdout.take() else {
            panic!("no stdout")
        };
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        PyPeer { child, lines }
    }

    async fn recv(&mut self) -> Value {
        match tokio::time::timeout(Duration::from_secs(30), self.lines.recv()).await {
            Ok(Some(line)) => ok(serde_json::from_str(&line), "peer output"),
            _ => panic!("the Python peer did not answer (see its stderr above)"),
        }
    }

    async fn send(&mut self, cmd: Value) -> Value {
        let Some(stdin) = self.child.stdin.as_mut() else {
            panic!("no stdin")
        };
        ok(writeln!(stdin, "{cmd}"), "write to peer");
        ok(stdin.flush(), "flush");
        self.recv().await
    }
}

impl Drop for PyPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `scripts/py-venv.sh` (creating the pinned venv if needed) and returns its python.
fn python_with_oslo() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/py-venv.sh");
    let out = ok(
        Command::new("bash")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output(),
        "run scripts/py-venv.sh",
    );
    assert!(
        out.status.success(),
        "scripts/py-venv.sh failed; it needs python3 >= 3.10 and pip access"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    match stdout.lines().last() {
        Some(p) if !p.trim().is_empty() => PathBuf::from(p.trim()),
        _ => panic!("scripts/py-venv.sh printed no python path"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interoperates_with_python_oslo_messaging() {
    root_or_skip!(NEEDS_ROOT);
    let vh = new_vhost("interop");
    let python = ok(
        tokio::task::spawn_blocking(python_with_oslo).await,
        "py-venv",
    );
    let dir = ok(tempfile::tempdir(), "tempdir");
    let script = dir.path().join("peer.py");
    ok(std::fs::write(&script, PY_PEER), "write peer");

    let (client, mut events, handle) = agent(&vh.url(), "host-py").await;
    let mut peer = PyPeer::spawn(&python, &script, &vh.url(), "host-py");
    assert_eq!(peer.recv().await, json!({"ready": true}));
    let t = Some(Duration::from_secs(10));

    // Rust calls the Python server, on the topic and on topic.server.
    let got = ok(
        client
            .call("py_echo", "echo", json!({"a": [1, "b"]}), "1.5", t)
            .await,
        "call py",
    );
    assert_eq!(
        got,
        json!({"kw": {"a": [1, "b"]}, "is_admin": true, "roles": ["admin", "member", "reader"]})
    );
    let got = ok(
        client
            .call("py_echo.pyhost", "echo", json!({}), "1.0", t)
            .await,
        "call py host",
    );
    assert_eq!(got["kw"], json!({}));
    match client.call("py_echo", "boom", json!({}), "1.0", t).await {
        Err(RpcError::Remote(e)) => {
            assert_eq!(
                (e.module.as_str(), e.class.as_str()),
                ("builtins", "KeyError")
            );
            assert_eq!(e.message, "'missing-key'");
        }
        other => panic!("expected KeyError, got {other:?}"),
    }
    match client.call("py_echo", "echo", json!({}), "1.6", t).await {
        Err(e) => assert!(e.is_remote("UnsupportedVersion"), "{e}"),
        Ok(v) => panic!("unexpected {v}"),
    }
    match client.call("py_echo", "nope", json!({}), "1.0", t).await {
        Err(e) => assert!(e.is_remote("NoSuchMethod"), "{e}"),
        Ok(v) => panic!("unexpected {v}"),
    }

    // Python casts to the agent the way DhcpAgentNotifyAPI does.
    let payload = json!({"payload": {"network": {"id": "net-py"}, "priority": 0}});
    let cmd = |extra: Value| {
        let mut c = json!({"do": "cast", "method": "network_create_end", "args": payload});
        if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        c
    };
    assert_eq!(
        peer.send(cmd(json!({"server": true}))).await,
        json!({"done": true})
    );
    let (method, args, context) = next_cast_with_context(&mut events).await;
    assert_eq!((method.as_str(), &args), ("network_create_end", &payload));
    assert_eq!(context.request_id(), Some("req-py"));
    assert_eq!(
        peer.send(cmd(json!({"fanout": true}))).await,
        json!({"done": true})
    );
    assert_eq!(
        next_cast(&mut events).await,
        ("network_create_end".into(), payload.clone())
    );
    assert_eq!(peer.send(cmd(json!({}))).await, json!({"done": true}));
    assert_eq!(
        next_cast(&mut events).await,
        ("network_create_end".into(), payload.clone())
    );

    // Python calls into the agent: oslo's failure format is understood by the real client.
    let r = peer
        .send(json!({"do": "call", "method": "frobnicate", "args": {}, "version": "1.0"}))
        .await;
    assert_eq!(r["remote_error"], json!("NoSuchMethod"), "{r}");
    let r = peer.send(json!({"do": "call", "method": "agent_updated", "args": {"payload": {"admin_state_up": false}}, "version": "1.0"})).await;
    assert_eq!(r, json!({"result": null}));
    assert_eq!(
        next_cast(&mut events).await,
        (
            "agent_updated".into(),
            json!({"payload": {"admin_state_up": false}})
        )
    );
    assert_eq!(
        peer.send(json!({"do": "stop"})).await,
        json!({"stopped": true})
    );
    handle.shutdown().await;
}
