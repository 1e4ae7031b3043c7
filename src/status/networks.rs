//! `/v1/status`, `/v1/networks` and `/v1/networks/<id>`: what is served, from the agent's own
//! state (the served set, the cache's network and view, the DHCP counters).

use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::agent::ServedNetwork;
use crate::dhcp::server::Counters;
use crate::model::{MacAddr, Network};

use super::Status;

/// The agent as a whole: mode, readiness, health, how many networks.
pub fn summary(status: &Status) -> Value {
    let agent = status.agent();
    let served = agent.served_networks();
    let failed = agent.failed_networks();
    let ready = status.readiness();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "mode": status.mode().name(),
        "ready": ready.is_ok(),
        "not_ready_reason": ready.err().map(|e| e.to_string()),
        "healthy": status.healthy(),
        "main_loop_age_seconds": status.tick_age().as_secs_f64(),
        "uptime_seconds": status.uptime().as_secs(),
        "broker_connected": status.broker_connected(),
        "networks_served": served.len(),
        "networks_failed": failed
            .iter()
            .map(|(id, error)| json!({ "id": id, "error": error }))
            .collect::<Vec<_>>(),
    })
}

/// Every served network, sorted by id.
pub fn list(status: &Status) -> Value {
    let served = status.agent().served_networks();
    Value::Array(served.iter().map(|s| network(status, s)).collect())
}

/// One served network, if it is served.
pub fn one(status: &Status, id: &str) -> Option<Value> {
    let served = status.agent().served_networks();
    served
        .iter()
        .find(|s| s.network_id == id)
        .map(|s| network(status, s))
}

fn network(status: &Status, s: &ServedNetwork) -> Value {
    let agent = status.agent();
    let cache = agent.cache();
    let id = s.network_id.as_str();
    let net = cache.get(id);
    let own_port = cache.own_port_id(id);
    let dhcp_port = net
        .as_ref()
        .and_then(|n| n.ports.iter().find(|p| Some(&p.id) == own_port.as_ref()));
    let addresses: Vec<String> = dhcp_port
        .map(|p| {
            p.fixed_ips
                .iter()
                .map(|f| f.ip_address.to_string())
                .collect()
        })
        .unwrap_or_default();
    let subnets: Vec<Value> = net
        .as_ref()
        .map(|n| {
            n.subnets
                .iter()
                .map(|sub| {
                    json!({
                        "id": sub.id,
                        "cidr": sub.cidr.to_string(),
                        "ip_version": if sub.cidr.is_ipv4() { 4 } else { 6 },
                        "enable_dhcp": sub.enable_dhcp,
                        "gateway_ip": sub.gateway_ip.map(|g| g.to_string()),
                        "dns_nameservers": sub.dns_nameservers.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let bound_v4 = cache.view(id).map(|v| v.load().v4_binding_count());
    let (changed, error) = match agent.last_change(id) {
        Some((t, e)) => (Some(unix(t)), e),
        None => (None, None),
    };
    json!({
        "id": id,
        "namespace": s.namespace,
        "device": s.ifname,
        "plumbing_verified": s.verified,
        "dhcp_port": own_port,
        "dhcp_port_mac": dhcp_port.map(|p| p.mac_address.to_string()),
        "addresses": addresses,
        "mtu": net.as_ref().and_then(|n| n.mtu),
        "subnets": subnets,
        "ports": net.as_ref().map(|n| n.ports.len()),
        "ports_bound_v4": bound_v4,
        "serves_v6": s.serves_v6,
        "last_change_unix": changed,
        "last_error": error,
        "last_packet_unix": last_packet(s),
        "last_seen": last_seen(s, None),
        "dhcp": {
            "v4": counters(&s.counters),
            "v6": counters(&s.counters6),
        },
    })
}

/// The clients the network's DHCP server saw last (both families), newest first; only those
/// with `mac` when given.
pub fn last_seen(s: &ServedNetwork, mac: Option<crate::model::MacAddr>) -> Value {
    let mut all: Vec<(bool, crate::telemetry::seen::Seen)> = s
        .counters
        .seen
        .snapshot()
        .into_iter()
        .map(|e| (false, e))
        .chain(s.counters6.seen.snapshot().into_iter().map(|e| (true, e)))
        .filter(|(_, e)| mac.is_none_or(|m| e.mac == m))
        .collect();
    all.sort_by_key(|e| std::cmp::Reverse(e.1.time_ms));
    Value::Array(
        all.into_iter()
            .map(|(v6, e)| {
                json!({
                    "time_unix": e.time_ms as f64 / 1000.0,
                    "family": if v6 { "v6" } else { "v4" },
                    "mac": e.mac.to_string(),
                    "message": crate::telemetry::seen::message_name(v6, e.message),
                    "result": e.fate.name(),
                })
            })
            .collect(),
    )
}

/// When the network's DHCP server last saw a client (seconds since the epoch).
fn last_packet(s: &ServedNetwork) -> Option<f64> {
    let newest = |r: &crate::telemetry::seen::SeenRing| r.snapshot().first().map(|e| e.time_ms);
    newest(&s.counters.seen)
        .max(newest(&s.counters6.seen))
        .map(|ms| ms as f64 / 1000.0)
}

fn counters(c: &Counters) -> Value {
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    json!({
        "received": n(&c.received),
        "replied": n(&c.replied),
        "ignored": n(&c.ignored),
        "unknown_mac": n(&c.unknown_client),
        "other_server": n(&c.other_server),
        "malformed": n(&c.malformed),
        "send_errors": n(&c.send_errors),
    })
}

/// Seconds since the epoch (0 for a clock before it).
pub fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The common start of an explanation (v4 and v6): what this client sent lately and what
/// became of it, then the network's current view and data; `None` (with the reason in `doc`)
/// when the network is not served.
pub(super) fn served_view(
    status: &Status,
    network_id: &str,
    mac: MacAddr,
    doc: &mut Value,
) -> Option<(crate::view::cache::ViewHandle, std::sync::Arc<Network>)> {
    if let Some(s) = status
        .agent()
        .served_networks()
        .iter()
        .find(|s| s.network_id == network_id)
    {
        doc["last_seen"] = last_seen(s, Some(mac));
    }
    let cache = status.agent().cache();
    let (Some(view), Some(net)) = (cache.view(network_id), cache.get(network_id)) else {
        doc["answered"] = json!(false);
        doc["reason"] = json!(format!("network {network_id} is not served by this agent"));
        return None;
    };
    Some((view, net))
}
