//! The oslo codec and topology against real frames recorded from oslo.messaging 18.3.1 with
//! RabbitMQ's firehose tracer (`tests/fixtures/captures/*.jsonl`, copied into the repository as
//! recorded data).
//!
//! The captures are required: without them this test fails rather than passing vacuously.

#[path = "common/rng.rs"]
mod rng;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use neutron_dhcp::rpc::oslo::{
    self, check_properties, AmqpProperties, DispatchError, DuplicateFilter, Message,
    ReplyCollector, Request, DHCP_AGENT_ENDPOINT,
};
use neutron_dhcp::rpc::topology::{
    self, fanout_queue_name, queue_manager_suffix, reply_queue_name, ExchangeKind, FieldTable,
    FieldValue, ListenerPlan, StreamOffset,
};
use neutron_dhcp::rpc::url::{RabbitOptions, TransportUrl};
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::{json, Value};

use rng::XorShift;

/// One traced frame.
struct Frame {
    /// `file:line`, for messages.
    at: String,
    /// `publish.<exchange>` or `deliver.<queue>`.
    trace_rk: String,
    exchange: String,
    routing_key: String,
    routed_queues: Option<Vec<String>>,
    vhost: String,
    properties: Value,
    body: String,
}

impl Frame {
    fn is_publish(&self) -> bool {
        self.trace_rk.starts_with("publish.")
    }
}

fn captures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/captures")
}

/// Every frame of one capture file, or a panic that says what is missing.
fn load(name: &str) -> Vec<Frame> {
    let dir = captures_dir();
    assert!(
        dir.is_dir(),
        "capture directory {} is missing: these tests need the recorded oslo.messaging frames \
         (tests/fixtures/captures/*.jsonl)",
        dir.display()
    );
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut frames = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("{name}:{}", i + 1);
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{at}: not JSON: {e}"));
        let h = &v["headers"];
        let s = |x: &Value| {
            x.as_str()
                .unwrap_or_else(|| panic!("{at}: expected a string, got {x}"))
                .to_string()
        };
        let keys = h["routing_keys"]
            .as_array()
            .unwrap_or_else(|| panic!("{at}: no routing_keys"));
        assert_eq!(keys.len(), 1, "{at}: one routing key per publish");
        frames.push(Frame {
            trace_rk: s(&v["trace_rk"]),
            exchange: s(&h["exchange_name"]),
            routing_key: s(&keys[0]),
            routed_queues: h["routed_queues"]
                .as_array()
                .map(|a| a.iter().map(&s).collect()),
            vhost: s(&h["vhost"]),
            properties: h["properties"].clone(),
            body: s(&v["body"]),
            at,
        });
    }
    assert!(!frames.is_empty(), "{} holds no frames", path.display());
    frames
}

/// Both files; also proves the directory holds nothing we silently skip.
fn all_files() -> Vec<(&'static str, Vec<Frame>)> {
    let dir = captures_dir();
    let listed: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "capture directory {} is missing or unreadable: {e}",
                dir.display()
            )
        })
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".jsonl"))
        .collect();
    let known = ["oslo-default.jsonl", "oslo-quorum.jsonl"];
    assert_eq!(
        listed,
        known.iter().map(|s| s.to_string()).collect(),
        "capture set changed: extend this test"
    );
    known.iter().map(|n| (*n, load(n))).collect()
}

/// Top-level keys of a JSON object in document order (serde_json's `Map` sorts them).
struct Keys(Vec<String>);

impl<'de> Deserialize<'de> for Keys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Keys;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Keys, A::Error> {
                let mut keys = Vec::new();
                while let Some((k, _)) = m.next_entry::<String, IgnoredAny>()? {
                    keys.push(k);
                }
                Ok(Keys(keys))
            }
        }
        d.deserialize_map(V)
    }
}

/// `(inner key order, inner value, enveloped)` of a body, read independently of the codec.
fn inner_of(at: &str, body: &str) -> (Vec<String>, Value, bool) {
    let outer: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{at}: {e}"));
    match outer.get("oslo.message").and_then(Value::as_str) {
        Some(inner) => {
            let Keys(outer_keys) =
                serde_json::from_str(body).unwrap_or_else(|e| panic!("{at}: {e}"));
            assert_eq!(
                outer_keys,
                ["oslo.version", "oslo.message"],
                "{at}: envelope key order"
            );
            assert_eq!(outer["oslo.version"], json!("2.0"), "{at}");
            let Keys(keys) = serde_json::from_str(inner).unwrap_or_else(|e| panic!("{at}: {e}"));
            (
                keys,
                serde_json::from_str(inner).unwrap_or_else(|e| panic!("{at}: {e}")),
                true,
            )
        }
        None => {
            let Keys(keys) = serde_json::from_str(body).unwrap_or_else(|e| panic!("{at}: {e}"));
            (keys, outer, false)
        }
    }
}

fn ok<T, E: fmt::Display>(at: &str, r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{at}: {e}"))
}

#[test]
fn every_frame_decodes_and_reencodes_like_python() {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (_, frames) in all_files() {
        for f in &frames {
            let at = f.at.as_str();
            let p = &f.properties;
            ok(
                at,
                check_properties(
                    p["content_type"].as_str(),
                    p["content_encoding"].as_str(),
                    p["headers"]["compression"].as_str(),
                ),
            );
            let message = ok(at, oslo::decode(f.body.as_bytes()));
            let (keys, inner, enveloped) = inner_of(at, &f.body);
            let expected_kind = if f.exchange.is_empty() {
                "an RPC reply"
            } else if f.routing_key.starts_with("notifications.") {
                "a notification"
            } else {
                "an RPC request"
            };
            assert_eq!(message.kind(), expected_kind, "{at}");
            *counts.entry(expected_kind).or_default() += 1;

            let reencoded = match &message {
                Message::Request(r) => {
                    assert_eq!(
                        r.method,
                        inner["method"].as_str().unwrap_or_default(),
                        "{at}"
                    );
                    assert_eq!(r.args, inner["args"], "{at}");
                    assert_eq!(r.unique_id.as_deref(), inner["_unique_id"].as_str(), "{at}");
                    let ctx_keys = keys.iter().filter(|k| k.starts_with("_context_")).count();
                    assert_eq!(r.context.len(), ctx_keys, "{at}");
                    // Calls, and only calls, carry an expiration (their timeout, here 10 s).
                    let expiration = p["expiration"].as_str();
                    assert_eq!(r.is_call(), expiration.is_some(), "{at}");
                    if f.is_publish() {
                        let ours = match expiration {
                            Some(ms) => {
                                AmqpProperties::call(Duration::from_millis(ok(at, ms.parse())))
                            }
                            None => AmqpProperties::cast(),
                        };
                        assert_same_properties(at, &ours, p);
                    }
                    ok(at, r.encode())
                }
                Message::Reply(r) => {
                    if f.is_publish() {
                        assert_same_properties(at, &AmqpProperties::reply(), p);
                    }
                    assert_eq!(r.msg_id.as_deref(), inner["_msg_id"].as_str(), "{at}");
                    assert_eq!(r.ending, inner["ending"] == json!(true), "{at}");
                    assert_eq!(r.failure.is_some(), !inner["failure"].is_null(), "{at}");
                    ok(at, r.encode())
                }
                Message::Notification(n) => {
                    assert_eq!(
                        n.event_type,
                        inner["event_type"].as_str().unwrap_or_default(),
                        "{at}"
                    );
                    assert_eq!(n.payload, inner["payload"], "{at}");
                    assert_eq!(n.enveloped, enveloped, "{at}");
                    assert_eq!(n.context.len(), 17, "{at}");
                    continue; // we never send notifications
                }
            };
            let reencoded = ok(at, String::from_utf8(reencoded));
            let (keys2, inner2, enveloped2) = inner_of(at, &reencoded);
            assert!(enveloped2, "{at}: we always send the envelope");
            assert_eq!(keys2, keys, "{at}: top-level keys and their order");
            assert_eq!(inner2, inner, "{at}: values");
            // Byte for byte, unless a nested object's key order differs (we emit nested objects
            // sorted; Python keeps insertion order). Of the captured frames, only the echo
            // results ({"got": ..., "ctxt_request_id": ...}) are in that case.
            let nested_unsorted = matches!(&message, Message::Reply(r) if r.result.is_object());
            if !nested_unsorted {
                assert_eq!(reencoded, f.body, "{at}: byte-for-byte");
            }
        }
    }
    // Per file: 11 requests and 11 replies, each traced at publish and at delivery, and two
    // notifications (published to queues nobody consumes).
    assert_eq!(counts.get("an RPC request"), Some(&44), "{counts:?}");
    assert_eq!(counts.get("an RPC reply"), Some(&44), "{counts:?}");
    assert_eq!(counts.get("a notification"), Some(&4), "{counts:?}");
}

fn assert_same_properties(at: &str, ours: &AmqpProperties, captured: &Value) {
    let mut want = json!({
        "content_type": ours.content_type,
        "content_encoding": ours.content_encoding,
        "delivery_mode": ours.delivery_mode,
        "priority": ours.priority,
        "headers": {},
    });
    if let Some(e) = &ours.expiration {
        want["expiration"] = json!(e);
    }
    assert_eq!(&want, captured, "{at}: AMQP properties");
}

#[test]
fn failures_and_keepalives_match_the_dispatcher() {
    for (name, frames) in all_files() {
        let replies: Vec<_> = frames
            .iter()
            .filter(|f| f.is_publish() && f.exchange.is_empty())
            .map(|f| {
                (
                    f.at.as_str(),
                    ok(&f.at, oslo::Reply::decode(f.body.as_bytes())),
                )
            })
            .collect();
        let requests: Vec<_> = frames
            .iter()
            .filter(|f| {
                f.is_publish()
                    && !f.exchange.is_empty()
                    && !f.routing_key.starts_with("notifications.")
            })
            .map(|f| ok(&f.at, Request::decode(f.body.as_bytes())))
            .collect();

        // Our dispatcher errors say exactly what oslo's say, so Python callers see the same.
        let find = |class: &str| {
            replies
                .iter()
                .filter_map(|(at, r)| r.failure.as_ref().filter(|e| e.is(class)).map(|e| (*at, e)))
                .collect::<Vec<_>>()
        };
        let no_such = find("NoSuchMethod");
        assert_eq!(no_such.len(), 1, "{name}");
        let ours = DispatchError::NoSuchMethod {
            method: "does_not_exist".into(),
        }
        .to_remote_error();
        let (at, theirs) = no_such[0];
        assert_eq!(
            (&ours.module, &ours.message, &ours.args, &ours.kwargs),
            (
                &theirs.module,
                &theirs.message,
                &theirs.args,
                &theirs.kwargs
            ),
            "{at}"
        );

        let unsupported = find("UnsupportedVersion");
        assert_eq!(unsupported.len(), 2, "{name}");
        for (at, theirs) in unsupported {
            let version = if theirs.message.contains("1.5") {
                "1.5"
            } else {
                "2.0"
            };
            let ours = DispatchError::UnsupportedVersion {
                version: version.into(),
                method: "echo".into(),
            }
            .to_remote_error();
            assert_eq!(
                (&ours.module, &ours.message, &ours.args),
                (&theirs.module, &theirs.message, &theirs.args),
                "{at}"
            );
        }
        let value_error = find("ValueError");
        assert_eq!(value_error.len(), 1, "{name}");
        assert_eq!(value_error[0].1.module, "builtins");
        assert_eq!(value_error[0].1.args, vec![json!("boom"), json!(42)]);
        assert!(value_error[0]
            .1
            .tb
            .last()
            .is_some_and(|l| l.starts_with("ValueError")));

        // The same version rules: a 1.0 endpoint with the captured requests' versions.
        for r in &requests {
            let v = r.version.as_deref().unwrap_or("1.0");
            let accepted = oslo::select_endpoint(
                &Request {
                    method: "port_update_end".into(),
                    ..r.clone()
                },
                &[DHCP_AGENT_ENDPOINT],
            );
            assert_eq!(
                accepted.is_ok(),
                v == "1.0" && r.namespace.is_none(),
                "{name}: version {v}"
            );
        }

        // The slow call sent `_timeout: 2`: keep-alives every second, then the result.
        let slow = requests
            .iter()
            .find(|r| r.method == "slow")
            .expect("slow call captured");
        assert_eq!(slow.call_monitor_interval(), Some(Duration::from_secs(1)));
        let mut collector = ReplyCollector::new();
        let mut outcome = None;
        let mut keepalives = 0;
        for (_, r) in replies.iter().filter(|(_, r)| r.msg_id == slow.msg_id) {
            keepalives += usize::from(r.is_keepalive());
            outcome = collector.push(r.clone());
        }
        assert_eq!(keepalives, 2, "{name}");
        assert_eq!(outcome, Some(Ok(json!("slept"))), "{name}");

        // Every publish has a fresh `_unique_id`; each delivery repeats its publish's one, which
        // is exactly what the duplicate filter must catch when a message arrives twice.
        let mut filter = DuplicateFilter::new();
        let mut seen = BTreeSet::new();
        for f in frames.iter().filter(|f| f.is_publish()) {
            let id = match ok(&f.at, oslo::decode(f.body.as_bytes())) {
                Message::Request(r) => r.unique_id,
                Message::Reply(r) => r.unique_id,
                Message::Notification(n) => n.unique_id,
            };
            let id = id.unwrap_or_else(|| panic!("{}: no _unique_id", f.at));
            assert!(
                id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
                "{}: {id}",
                f.at
            );
            assert!(seen.insert(id.clone()), "{}: reused _unique_id", f.at);
            assert!(filter.check_and_add(Some(&id)), "{}", f.at);
            assert!(
                !filter.check_and_add(Some(&id)),
                "{}: a redelivery is a duplicate",
                f.at
            );
        }
    }
}

/// The options each capture was recorded with (reference §1, §3.4), as a transport_url.
fn scenario(name: &str) -> (TransportUrl, RabbitOptions) {
    let url = match name {
        "oslo-default.jsonl" => "rabbit://guest:guest@127.0.0.1:5672/oslo_wire",
        _ => {
            "rabbit://guest:guest@127.0.0.1:5672/oslo_wire_q?rabbit_quorum_queue=true\
             &rabbit_transient_quorum_queue=true&use_queue_manager=true&rabbit_stream_fanout=true\
             &rabbit_qos_prefetch_count=10&hostname=vm&processname=scenario.py"
        }
    };
    let url = ok(name, TransportUrl::parse(url));
    let mut opts = RabbitOptions::default();
    ok(name, url.apply_query(&mut opts));
    ok(name, opts.validate());
    (url, opts)
}

/// The server's fanout-queue suffix and the client's reply queue, as the capture shows them.
fn captured_names(frames: &[Frame]) -> (Option<String>, String) {
    let fanout = frames
        .iter()
        .find(|f| f.is_publish() && f.exchange == "wiretest_fanout")
        .and_then(|f| f.routed_queues.as_ref())
        .and_then(|q| q.first())
        .expect("a routed fanout cast");
    let reply = frames
        .iter()
        .find(|f| f.is_publish() && f.exchange.is_empty())
        .expect("a reply");
    (
        fanout.strip_prefix("wiretest_fanout_").map(str::to_string),
        reply.routing_key.clone(),
    )
}

/// Which of our queues a publish reaches: exact binding keys (we bind no wildcards), fanout to
/// every bound queue, the default exchange by queue name.
fn route(plans: &[&ListenerPlan], exchange: &str, routing_key: &str) -> Vec<String> {
    let mut out = Vec::new();
    for c in plans.iter().flat_map(|p| &p.consumers) {
        let hit = match &c.exchange {
            None => exchange.is_empty() && c.queue.name == routing_key,
            Some(e) if e.name != exchange => false,
            Some(e) => e.kind == ExchangeKind::Fanout || c.routing_key == routing_key,
        };
        if hit {
            out.push(c.queue.name.clone());
        }
    }
    out
}

#[test]
fn declared_topology_matches_captured_routing_and_reference_arguments() {
    for (name, frames) in all_files() {
        // The firehose traces publishes and deliveries only; queue declarations (and so their
        // arguments) are not in the captures. If that changes, compare them here directly.
        assert!(
            frames
                .iter()
                .all(|f| f.trace_rk.starts_with("publish.") || f.trace_rk.starts_with("deliver.")),
            "{name}"
        );

        let (url, opts) = scenario(name);
        assert!(
            frames.iter().all(|f| f.vhost == url.effective_vhost()),
            "{name}: vhost"
        );

        let (fanout_suffix, reply_queue) = captured_names(&frames);
        let server = ok(
            name,
            topology::rpc_server_plan(
                &opts,
                "neutron",
                "wiretest",
                "host1",
                fanout_suffix.as_deref().unwrap_or("x"),
            ),
        );
        let client = ok(
            name,
            topology::neutron_client_plan(&opts, "neutron", &reply_queue),
        );

        // Queue names have the shape our naming produces for this configuration.
        let fanout_queue = &server.consumers[2].queue.name;
        if opts.rabbit_stream_fanout {
            assert_eq!(fanout_queue, "wiretest_fanout", "{name}: one shared stream");
            let suffix = queue_manager_suffix(
                opts.hostname.as_deref().unwrap_or_default(),
                opts.processname.as_deref().unwrap_or_default(),
                1,
            );
            assert_eq!(
                reply_queue,
                reply_queue_name(&suffix),
                "{name}: queue-manager reply name"
            );
        } else {
            let suffix = fanout_suffix.as_deref().unwrap_or_default();
            assert!(
                suffix.len() == 32 && suffix.bytes().all(|b| b.is_ascii_hexdigit()),
                "{name}: uuid4 hex suffix"
            );
            assert_eq!(fanout_queue, &fanout_queue_name(&opts, "wiretest", suffix));
            let hex = reply_queue.strip_prefix("reply_").unwrap_or_default();
            assert!(
                hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
                "{name}: reply_<uuid4 hex>"
            );
        }

        // Every captured RPC publish reaches exactly the queues our declarations would route it to.
        let mut routed = 0;
        for f in frames
            .iter()
            .filter(|f| f.is_publish() && !f.routing_key.starts_with("notifications."))
        {
            let want = f.routed_queues.clone().unwrap_or_default();
            assert_eq!(
                route(&[&server, &client.reply], &f.exchange, &f.routing_key),
                want,
                "{}",
                f.at
            );
            routed += 1;
        }
        assert_eq!(routed, 22, "{name}");

        // The stream consumer resumes after the offset the broker stamps on each delivery.
        if opts.rabbit_stream_fanout {
            let mut offset = StreamOffset::default();
            for f in frames
                .iter()
                .filter(|f| f.trace_rk == "deliver.wiretest_fanout")
            {
                let seen = f.properties["headers"]["x-stream-offset"]
                    .as_i64()
                    .expect("x-stream-offset header");
                offset.observe(seen);
            }
            assert_eq!(
                server.consumers[2].consumer_arguments(&offset),
                FieldTable::from([("x-stream-offset", FieldValue::LongInt(1))])
            );
        }

        // Arguments and flags: what reference §3.2 (defaults) and §3.4 (quorum set) observed
        // with rabbitmqctl for these same queues.
        let [t, ts, f] = &server.consumers[..] else {
            panic!("{name}: three consumers")
        };
        let r = &client.reply.consumers[0];
        let neutron = t.exchange.as_ref().expect("control exchange");
        let fanout_ex = f.exchange.as_ref().expect("fanout exchange");
        assert_eq!(
            (neutron.kind, fanout_ex.kind, fanout_ex.auto_delete),
            (ExchangeKind::Topic, ExchangeKind::Fanout, true)
        );
        assert!(
            [t, ts, f, r]
                .iter()
                .all(|c| !c.queue.exclusive && !c.queue.auto_delete),
            "{name}"
        );
        let s = FieldValue::string;
        if opts.rabbit_quorum_queue {
            assert_eq!(server.prefetch, Some(10));
            assert!(neutron.durable && fanout_ex.durable);
            for c in [t, ts] {
                assert!(c.queue.durable);
                assert_eq!(
                    c.queue.arguments,
                    FieldTable::from([("x-queue-type", s("quorum"))]),
                    "{name}: {}",
                    c.queue.name
                );
            }
            assert!(f.queue.durable);
            assert_eq!(
                f.queue.arguments,
                FieldTable::from([("x-queue-type", s("stream")), ("x-max-age", s("1800s"))])
            );
            assert!(r.queue.durable);
            assert_eq!(
                r.queue.arguments,
                FieldTable::from([
                    ("x-queue-type", s("quorum")),
                    ("x-expires", FieldValue::LongInt(1_800_000))
                ])
            );
        } else {
            assert_eq!(server.prefetch, None);
            assert!(!neutron.durable && !neutron.auto_delete && !fanout_ex.durable);
            for c in [t, ts] {
                assert!(
                    !c.queue.durable && c.queue.arguments.is_empty(),
                    "{name}: {}",
                    c.queue.name
                );
            }
            for c in [f, r] {
                assert!(!c.queue.durable);
                assert_eq!(
                    c.queue.arguments,
                    FieldTable::from([("x-expires", FieldValue::LongInt(1_800_000))]),
                    "{name}: {}",
                    c.queue.name
                );
            }
        }
    }
}

#[test]
fn mutated_capture_bodies_never_panic() {
    let mut rng = XorShift::new(0xD1B5_4A32_D192_ED03);
    let mut decoded = 0usize;
    for (_, frames) in all_files() {
        for f in &frames {
            let seed = f.body.as_bytes();
            for _ in 0..200 {
                let mut b = seed.to_vec();
                for _ in 0..(1 + rng.next() % 6) {
                    if b.is_empty() {
                        break;
                    }
                    let pos = (rng.next() as usize) % b.len();
                    match rng.next() % 4 {
                        0 => b[pos] = rng.next() as u8,
                        1 => b.truncate(pos),
                        2 => b.insert(pos, b"{}[]\",:\\u0n1"[(rng.next() % 12) as usize]),
                        _ => {
                            b.remove(pos);
                        }
                    }
                }
                if let Ok(m) = oslo::decode(&b) {
                    decoded += 1;
                    match m {
                        Message::Request(r) => drop(r.encode()),
                        Message::Reply(r) => drop(r.encode()),
                        Message::Notification(_) => {}
                    }
                }
            }
        }
    }
    // Some mutations land in string contents and still decode; most do not. Either way, no panic.
    assert!(decoded > 0);
}
