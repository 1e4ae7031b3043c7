//! `/metrics`: the agent's counters in the OpenMetrics text format (which Prometheus scrapes),
//! through `prometheus-client`.
//!
//! Everything is read at scrape time from what the agent already keeps: the DHCP threads'
//! relaxed atomic counters per served network, the served and failed sets, the views. So the
//! hot path pays nothing for the endpoint, and there is no second copy to drift. Per-network
//! series carry the network id as their only variable label (bounded cardinality: never a MAC
//! or an IP); totals (`..._all_networks_...`) also count networks no longer served, so they
//! never go backwards.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Weak;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::dhcp::server::Counters;

use super::Status;

/// Every name is `neutron_dhcp_agent_<name>`.
pub const PREFIX: &str = "neutron_dhcp_agent";

/// The registry behind `/metrics`: the agent's own collector first.
pub(super) fn registry(status: Weak<Status>) -> Registry {
    let mut registry = Registry::with_prefix(PREFIX);
    registry.register_collector(Box::new(AgentCollector { status }));
    registry
}

/// Encodes the whole exposition (ending with `# EOF`).
pub fn encode(status: &Status) -> Result<String, std::fmt::Error> {
    let mut out = String::with_capacity(16 << 10);
    status.encode_registered(&mut out)?;
    Ok(out)
}

/// A request type's label value; types a client does not send are "other" (index 0 also
/// holds requests without a type).
fn type_name(v6: bool, t: usize) -> &'static str {
    match (v6, t) {
        (false, 1) => "discover",
        (false, 3) => "request",
        (false, 4) => "decline",
        (false, 7) => "release",
        (false, 8) => "inform",
        (true, 1) => "solicit",
        (true, 3) => "request",
        (true, 4) => "confirm",
        (true, 5) => "renew",
        (true, 6) => "rebind",
        (true, 8) => "release",
        (true, 9) => "decline",
        (true, 11) => "information_request",
        (true, 12) => "relay_forward",
        _ => "other",
    }
}

#[derive(Debug)]
struct AgentCollector {
    /// Weak: the registry lives inside the `Status` it reads.
    status: Weak<Status>,
}

/// One DHCP family's counters as the metrics split them.
struct Split {
    received: u64,
    replied: u64,
    send_errors: u64,
    /// (reason, count) of requests not answered.
    dropped: [(&'static str, u64); 4],
}

impl Split {
    fn of(c: &Counters) -> Split {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (ignored, unknown, other) = (n(&c.ignored), n(&c.unknown_client), n(&c.other_server));
        Split {
            received: n(&c.received),
            replied: n(&c.replied),
            send_errors: n(&c.send_errors),
            dropped: [
                ("malformed", n(&c.malformed)),
                ("unknown_mac", unknown),
                ("other_server", other),
                // Read one by one, the parts may briefly exceed the whole.
                ("ignored", ignored.saturating_sub(unknown + other)),
            ],
        }
    }

    fn add(&mut self, o: &Split) {
        self.received += o.received;
        self.replied += o.replied;
        self.send_errors += o.send_errors;
        for (mine, theirs) in self.dropped.iter_mut().zip(o.dropped.iter()) {
            mine.1 += theirs.1;
        }
    }
}

const FAMILIES: [&str; 2] = ["v4", "v6"];
/// A series without labels.
const NO_LABELS: [(&str, &str); 0] = [];

/// Writes one metric family from (labels, value) rows.
fn family<L, M>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    rows: impl IntoIterator<Item = (L, M)>,
) -> std::fmt::Result
where
    L: prometheus_client::encoding::EncodeLabelSet,
    M: EncodeMetric,
{
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, metric) in rows {
        metric.encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for AgentCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let Some(status) = self.status.upgrade() else {
            return Ok(());
        };
        let agent = status.agent();
        let served = agent.served_networks();
        let failed = agent.failed_networks();

        family(
            &mut enc,
            "build_info",
            "The agent's version (always 1).",
            MetricType::Gauge,
            [(
                [
                    ("version", env!("CARGO_PKG_VERSION")),
                    ("mode", status.mode().name()),
                ],
                ConstGauge::new(1i64),
            )],
        )?;
        family(
            &mut enc,
            "ready",
            "1 once the networks file is applied (standalone) or the first full sync is done \
             and the broker is connected (RPC mode): what /readyz and READY=1 report.",
            MetricType::Gauge,
            [(
                NO_LABELS,
                ConstGauge::new(i64::from(status.readiness().is_ok())),
            )],
        )?;
        family(
            &mut enc,
            "main_loop_age_seconds",
            "Seconds since the main loop last came round (/healthz fails past 30).",
            MetricType::Gauge,
            [(NO_LABELS, ConstGauge::new(status.tick_age().as_secs_f64()))],
        )?;
        family(
            &mut enc,
            "uptime_seconds",
            "Seconds since the status endpoint started.",
            MetricType::Gauge,
            [(NO_LABELS, ConstGauge::new(status.uptime().as_secs_f64()))],
        )?;
        if let Some(connected) = status.broker_connected() {
            family(
                &mut enc,
                "amqp_connected",
                "1 while connected to the message broker (RPC mode).",
                MetricType::Gauge,
                [(NO_LABELS, ConstGauge::new(i64::from(connected)))],
            )?;
        }
        family(
            &mut enc,
            "networks",
            "Networks by state: served (DHCP answering) or failed (last configuration failed).",
            MetricType::Gauge,
            [
                ([("state", "served")], ConstGauge::new(served.len() as i64)),
                ([("state", "failed")], ConstGauge::new(failed.len() as i64)),
            ],
        )?;

        // Per network: ports and bound addresses, from the network's current view.
        let cache = agent.cache();
        let mut ports = Vec::with_capacity(served.len());
        let mut bound = Vec::with_capacity(served.len());
        for s in &served {
            let id = s.network_id.as_str();
            if let Some(net) = cache.get(id) {
                ports.push(([("network", id)], ConstGauge::new(net.ports.len() as i64)));
            }
            if let Some(view) = cache.view(id) {
                let n = view.load().v4_binding_count() as i64;
                bound.push(([("network", id)], ConstGauge::new(n)));
            }
        }
        family(
            &mut enc,
            "network_ports",
            "Ports of a served network (its DHCP port included).",
            MetricType::Gauge,
            ports,
        )?;
        family(
            &mut enc,
            "network_ports_bound",
            "Fixed IPv4 addresses of a served network that DHCPv4 answers (one per port and \
             DHCP-enabled subnet).",
            MetricType::Gauge,
            bound,
        )?;

        let mut f = enc.encode_descriptor(
            "network_configure_seconds",
            "From a change reaching the agent (a networks-file reload's apply, or a Neutron \
             event's handler) to the network served on it, by kind: view_swap (ports or \
             options changed: the new view is answering) or plumbing (a network started or \
             replumbed).",
            None,
            MetricType::Histogram,
        )?;
        for (kind, h) in agent.configure_latency() {
            h.encode(f.encode_family(&[("kind", kind)])?)?;
        }
        let mut f = enc.encode_descriptor(
            "event_to_served_seconds",
            "From a change arriving to its networks served on the new data (the new views \
             answering, new plumbing in place), by source: rpc (a cast from neutron-server, \
             from its receipt) or file (a networks-file reload, from the change being noticed).",
            None,
            MetricType::Histogram,
        )?;
        for (source, h) in agent.event_latency() {
            h.encode(f.encode_family(&[("source", source)])?)?;
        }

        // DHCP packets, per network and family, and in total.
        let mut rows: Vec<(&str, &str, Split)> = Vec::with_capacity(served.len() * 2);
        for s in &served {
            rows.push((&s.network_id, "v4", Split::of(&s.counters)));
            rows.push((&s.network_id, "v6", Split::of(&s.counters6)));
        }
        let mut totals = [
            Split::of(&Counters::default()),
            Split::of(&Counters::default()),
        ];
        agent.retired_counters(|v4, v6| {
            totals[0].add(&Split::of(v4));
            totals[1].add(&Split::of(v6));
        });
        for (_, family_name, split) in &rows {
            let i = usize::from(*family_name == "v6");
            totals[i].add(split);
        }
        type Get = fn(&Split) -> u64;
        let simple: [(&str, &str, Get); 3] = [
            (
                "dhcp_received",
                "DHCP requests received (every datagram on the DHCP socket).",
                |s| s.received,
            ),
            ("dhcp_replied", "DHCP replies sent.", |s| s.replied),
            (
                "dhcp_send_errors",
                "DHCP replies that could not be sent.",
                |s| s.send_errors,
            ),
        ];
        for (name, help, get) in simple {
            family(
                &mut enc,
                name,
                help,
                MetricType::Counter,
                rows.iter().map(|(net, fam, s)| {
                    (
                        [("network", *net), ("family", *fam)],
                        ConstCounter::new(get(s)),
                    )
                }),
            )?;
        }
        // Requests by message type: the types each family defines, and "other".
        let mut f = enc.encode_descriptor(
            "dhcp_requests",
            "DHCP requests received, by message type (DHCPv4 option 53, DHCPv6 message type).",
            None,
            MetricType::Counter,
        )?;
        for s in &served {
            for (fam, c) in [("v4", &s.counters), ("v6", &s.counters6)] {
                let mut other = 0;
                let net = s.network_id.as_str();
                for (t, n) in c.by_type.iter().enumerate() {
                    let n = n.load(Ordering::Relaxed);
                    match type_name(fam == "v6", t) {
                        "other" => other += n,
                        name => {
                            let labels = [("network", net), ("family", fam), ("type", name)];
                            ConstCounter::new(n).encode(f.encode_family(&labels)?)?;
                        }
                    }
                }
                let labels = [("network", net), ("family", fam), ("type", "other")];
                ConstCounter::new(other).encode(f.encode_family(&labels)?)?;
            }
        }
        family(
            &mut enc,
            "dhcp_dropped",
            "DHCP requests not answered, by reason: malformed, unknown_mac (no port has the \
             client's MAC, client id or DUID), other_server (addressed to another DHCP server), \
             ignored (any other valid request not answered: RELEASE, DECLINE, no address, ...).",
            MetricType::Counter,
            rows.iter().flat_map(|(net, fam, s)| {
                s.dropped.iter().map(move |(reason, n)| {
                    (
                        [("network", *net), ("family", *fam), ("reason", *reason)],
                        ConstCounter::new(*n),
                    )
                })
            }),
        )?;
        for (name, help, get) in simple {
            let total = format!("{name}_all_networks");
            family(
                &mut enc,
                &total,
                &format!("{help} All networks, also those no longer served."),
                MetricType::Counter,
                FAMILIES
                    .iter()
                    .zip(totals.iter())
                    .map(|(fam, s)| ([("family", *fam)], ConstCounter::new(get(s)))),
            )?;
        }
        family(
            &mut enc,
            "dhcp_dropped_all_networks",
            "DHCP requests not answered, by reason (see dhcp_dropped). All networks, also those \
             no longer served.",
            MetricType::Counter,
            FAMILIES.iter().zip(totals.iter()).flat_map(|(fam, s)| {
                s.dropped.iter().map(move |(reason, n)| {
                    (
                        [("family", *fam), ("reason", *reason)],
                        ConstCounter::new(*n),
                    )
                })
            }),
        )?;
        encode_services(&mut enc, &served)
    }
}

/// The DNS service's and the metadata proxy's counters, per network while they serve (a
/// network's series go with its service, as its DHCP series go with the network).
fn encode_services(
    enc: &mut DescriptorEncoder,
    served: &[crate::agent::ServedNetwork],
) -> std::fmt::Result {
    let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
    family(
        enc,
        "dns_queries",
        "DNS queries on the DHCP port, by outcome: local (answered from the network's names), \
         refused (no upstream), forwarded, malformed, not_local_client (not on the network's \
         subnets: dropped).",
        MetricType::Counter,
        served
            .iter()
            .filter_map(|s| Some((s.network_id.as_str(), s.dns.as_ref()?)))
            .flat_map(|(net, d)| {
                let q = &d.queries;
                [
                    ("local", n(&q.local)),
                    ("refused", n(&q.refused)),
                    ("forwarded", n(&q.forwarded)),
                    ("malformed", n(&q.malformed)),
                    ("not_local_client", n(&q.not_local_client)),
                ]
                .map(|(outcome, v)| {
                    (
                        [("network", net), ("outcome", outcome)],
                        ConstCounter::new(v),
                    )
                })
            }),
    )?;
    family(
        enc,
        "dns_forward_failures",
        "Forwarded DNS queries that failed, by reason: timeout (SERVFAIL after every upstream \
         server timed out), overflow (too many in flight), and answers dropped as unmatched \
         (not from the server asked, another id or question).",
        MetricType::Counter,
        served
            .iter()
            .filter_map(|s| Some((s.network_id.as_str(), s.dns.as_ref()?)))
            .flat_map(|(net, d)| {
                let f = &d.forward;
                [
                    ("timeout", n(&f.timed_out)),
                    ("overflow", n(&f.overflow)),
                    ("unmatched", n(&f.unmatched)),
                ]
                .map(|(reason, v)| ([("network", net), ("reason", reason)], ConstCounter::new(v)))
            }),
    )?;
    family(
        enc,
        "metadata_requests",
        "HTTP requests to the isolated-metadata proxy (169.254.169.254); a request it cannot \
         parse is counted only in metadata_errors (status 400).",
        MetricType::Counter,
        served.iter().filter_map(|s| {
            let c = s.metadata.as_ref()?;
            Some((
                [("network", s.network_id.as_str())],
                ConstCounter::new(n(&c.requests)),
            ))
        }),
    )?;
    family(
        enc,
        "metadata_answers",
        "Answers of the metadata agent passed to VMs by the isolated-metadata proxy, by status \
         class.",
        MetricType::Counter,
        served
            .iter()
            .filter_map(|s| Some((s.network_id.as_str(), s.metadata.as_ref()?)))
            .flat_map(|(net, c)| {
                crate::metadata::proxy::STATUS_CLASSES
                    .iter()
                    .zip(c.upstream_classes.iter())
                    .map(move |(class, v)| {
                        (
                            [("network", net), ("class", *class)],
                            ConstCounter::new(n(v)),
                        )
                    })
            }),
    )?;
    family(
        enc,
        "metadata_errors",
        "Metadata requests the proxy answered itself with an error, by status: 400 (bad \
         request), 429 (rate limited), 502 (broken answer from the metadata agent), 503 (metadata \
         agent unreachable), 504 (metadata agent timed out). Everything else is the metadata \
         agent's own answer.",
        MetricType::Counter,
        served
            .iter()
            .filter_map(|s| Some((s.network_id.as_str(), s.metadata.as_ref()?)))
            .flat_map(|(net, c)| {
                [
                    ("400", n(&c.bad_requests)),
                    ("429", n(&c.rate_limited)),
                    ("502", n(&c.bad_gateway)),
                    ("503", n(&c.unavailable)),
                    ("504", n(&c.timeouts)),
                ]
                .map(|(status, v)| ([("network", net), ("status", status)], ConstCounter::new(v)))
            }),
    )
}
