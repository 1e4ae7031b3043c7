//! The casts neutron-server sends to DHCP agents, parsed into types, and the per-network queue
//! that orders them (reference §3, `DHCPResourceUpdate` / `ResourceProcessingQueue`).
//!
//! Parsing is strict about what the handlers use (ids, the port dict) and ignores the rest.
//! A payload that does not parse is an [`EventError`]: logged and dropped, never a panic.
//!
//! Ordering inside one network's queue: lowest `priority` first, equal priority oldest first,
//! except that two port updates whose IP sets intersect are applied in arrival order whatever
//! their priority (so an IP moved from one port to another is never briefly on both or on
//! none). Work items from a sync carry [`SYNC_PRIORITY`] and go before every queued event: the
//! events queued behind them are replays of changes the synced data may predate, and applying
//! them afterwards is idempotent.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Instant;

use serde_json::Value;

use crate::model::Port;
use crate::neutron::plugin::{parse_port, NetworkInfo};

/// `DEFAULT_PRIORITY`: casts without a `priority`.
pub const DEFAULT_PRIORITY: i64 = 255;
/// Sync work goes before any event of the same network.
pub const SYNC_PRIORITY: i64 = -1;

/// A port carried by `port_create_end` / `port_update_end`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortEvent {
    pub network_id: String,
    pub port: Port,
}

/// One cast from neutron-server, typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// `network_create_end`: fetch and serve the network.
    NetworkCreate {
        network_id: String,
    },
    /// `network_update_end`: admin up → (re)enable, down → disable.
    NetworkUpdate {
        network_id: String,
        admin_state_up: bool,
    },
    /// `network_delete_end` (fanout: may be for a network we never served).
    NetworkDelete {
        network_id: String,
    },
    /// `subnet_create_end` / `subnet_update_end`: refresh the network.
    SubnetUpdate {
        network_id: String,
        subnet_id: String,
    },
    /// `subnet_delete_end`: refresh the network holding the subnet.
    SubnetDelete {
        network_id: Option<String>,
        subnet_id: String,
    },
    PortCreate(PortEvent),
    PortUpdate(PortEvent),
    /// `port_delete_end`.
    PortDelete {
        network_id: String,
        port_id: String,
        fixed_ips: Vec<IpAddr>,
    },
    /// `agent_updated`: admin toggled this agent; full resync.
    AgentUpdated {
        admin_state_up: Option<bool>,
    },
}

impl Event {
    /// The network whose queue the event goes to (`None`: not network-scoped, or the network
    /// must first be looked up by subnet).
    pub fn network_id(&self) -> Option<&str> {
        match self {
            Event::NetworkCreate { network_id }
            | Event::NetworkUpdate { network_id, .. }
            | Event::NetworkDelete { network_id }
            | Event::SubnetUpdate { network_id, .. }
            | Event::PortDelete { network_id, .. } => Some(network_id),
            Event::PortCreate(p) | Event::PortUpdate(p) => Some(&p.network_id),
            Event::SubnetDelete { network_id, .. } => network_id.as_deref(),
            Event::AgentUpdated { .. } => None,
        }
    }

    pub fn method(&self) -> &'static str {
        match self {
            Event::NetworkCreate { .. } => "network_create_end",
            Event::NetworkUpdate { .. } => "network_update_end",
            Event::NetworkDelete { .. } => "network_delete_end",
            Event::SubnetUpdate { .. } => "subnet_update_end",
            Event::SubnetDelete { .. } => "subnet_delete_end",
            Event::PortCreate(_) => "port_create_end",
            Event::PortUpdate(_) => "port_update_end",
            Event::PortDelete { .. } => "port_delete_end",
            Event::AgentUpdated { .. } => "agent_updated",
        }
    }

    /// IPs of a port event (create/update/delete), for the ordering rule.
    fn port_ips(&self) -> Option<BTreeSet<IpAddr>> {
        match self {
            Event::PortCreate(p) | Event::PortUpdate(p) => {
                Some(p.port.fixed_ips.iter().map(|f| f.ip_address).collect())
            }
            Event::PortDelete { fixed_ips, .. } => Some(fixed_ips.iter().copied().collect()),
            _ => None,
        }
    }
}

/// A cast and its priority.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cast {
    pub event: Event,
    pub priority: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    #[error("unknown method {0:?}")]
    UnknownMethod(String),
    #[error("{method}: bad payload: {reason}")]
    BadPayload { method: String, reason: String },
}

/// Parses `method(**args)` as the DHCP agent endpoint receives it (`args == {"payload": {...}}`).
pub fn parse_cast(method: &str, args: &Value) -> Result<Cast, EventError> {
    let bad = |reason: String| EventError::BadPayload {
        method: method.to_owned(),
        reason,
    };
    let payload = args
        .get("payload")
        .ok_or_else(|| bad("no \"payload\" argument".into()))?;
    if !payload.is_object() {
        return Err(bad("payload is not an object".into()));
    }
    let priority = payload
        .get("priority")
        .and_then(Value::as_i64)
        .unwrap_or(DEFAULT_PRIORITY);
    let str_at = |v: &Value, path: &[&str]| -> Result<String, EventError> {
        let mut cur = v;
        for key in path {
            cur = cur
                .get(key)
                .ok_or_else(|| bad(format!("missing {}", path.join("."))))?;
        }
        match cur.as_str() {
            Some(s) if !s.is_empty() => Ok(s.to_owned()),
            _ => Err(bad(format!("{} is not a non-empty string", path.join(".")))),
        }
    };
    let port_event = |payload: &Value| -> Result<PortEvent, EventError> {
        let raw = payload
            .get("port")
            .ok_or_else(|| bad("missing port".into()))?;
        let (port, network_id) = parse_port(raw).map_err(bad)?;
        let network_id = network_id
            .filter(|n| !n.is_empty())
            .ok_or_else(|| bad("port.network_id is missing".into()))?;
        Ok(PortEvent { network_id, port })
    };
    let event = match method {
        "network_create_end" => Event::NetworkCreate {
            network_id: str_at(payload, &["network", "id"])?,
        },
        "network_update_end" => Event::NetworkUpdate {
            network_id: str_at(payload, &["network", "id"])?,
            admin_state_up: payload
                .pointer("/network/admin_state_up")
                .and_then(Value::as_bool)
                .ok_or_else(|| bad("network.admin_state_up is not a boolean".into()))?,
        },
        "network_delete_end" => Event::NetworkDelete {
            network_id: str_at(payload, &["network_id"])?,
        },
        "subnet_create_end" | "subnet_update_end" => Event::SubnetUpdate {
            network_id: str_at(payload, &["subnet", "network_id"])?,
            subnet_id: str_at(payload, &["subnet", "id"])?,
        },
        "subnet_delete_end" => Event::SubnetDelete {
            network_id: str_at(payload, &["network_id"]).ok(),
            subnet_id: str_at(payload, &["subnet_id"])?,
        },
        "port_create_end" => Event::PortCreate(port_event(payload)?),
        "port_update_end" => Event::PortUpdate(port_event(payload)?),
        "port_delete_end" => Event::PortDelete {
            network_id: str_at(payload, &["network_id"])?,
            port_id: str_at(payload, &["port_id"])?,
            fixed_ips: payload
                .get("fixed_ips")
                .and_then(Value::as_array)
                .map(|l| {
                    l.iter()
                        .filter_map(|f| f.get("ip_address")?.as_str()?.parse().ok())
                        .collect()
                })
                .unwrap_or_default(),
        },
        "agent_updated" => Event::AgentUpdated {
            admin_state_up: payload.get("admin_state_up").and_then(Value::as_bool),
        },
        other => return Err(EventError::UnknownMethod(other.to_owned())),
    };
    Ok(Cast { event, priority })
}

/// What one queued item does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Work {
    Event(Event),
    /// Configure the network from this data (a sync found it active); `fetched_at` is when
    /// the data was requested.
    Sync {
        info: NetworkInfo,
        fetched_at: Instant,
    },
    /// Stop serving and release our port (a sync found it no longer assigned to us).
    Teardown {
        fetched_at: Instant,
    },
}

impl Work {
    fn is_sync(&self) -> bool {
        matches!(self, Work::Sync { .. } | Work::Teardown { .. })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Work::Event(e) => e.method(),
            Work::Sync { .. } => "sync",
            Work::Teardown { .. } => "sync_teardown",
        }
    }
}

/// One queued item.
#[derive(Clone, Debug)]
pub struct Update {
    /// Arrival order (process-wide, increasing).
    pub seq: u64,
    pub priority: i64,
    pub work: Work,
    pub received: Instant,
}

impl Update {
    fn port_ips(&self) -> Option<BTreeSet<IpAddr>> {
        match &self.work {
            Work::Event(e) => e.port_ips(),
            _ => None,
        }
    }
}

/// The pending updates of one network.
#[derive(Debug, Default)]
pub struct NetQueue {
    items: Vec<Update>,
}

impl NetQueue {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Adds an update. A sync item replaces any queued sync item of the network (the newest
    /// data/decision wins).
    pub fn push(&mut self, u: Update) {
        if u.work.is_sync() {
            self.items.retain(|i| !i.work.is_sync());
        }
        self.items.push(u);
    }

    /// Takes the next update to apply: lowest (priority, seq); but if an older port update
    /// shares an IP with it, that older one goes first (repeatedly), as
    /// `DHCPResourceUpdate.__lt__` orders them.
    pub fn pop(&mut self) -> Option<Update> {
        let mut best = (0..self.items.len()).min_by_key(|&i| {
            let u = &self.items[i];
            (u.priority, u.seq)
        })?;
        while let Some(ips) = self.items[best].port_ips() {
            let seq = self.items[best].seq;
            let earlier = (0..self.items.len())
                .filter(|&i| {
                    let u = &self.items[i];
                    u.seq < seq
                        && u.port_ips()
                            .is_some_and(|other| other.intersection(&ips).next().is_some())
                })
                .min_by_key(|&i| self.items[i].seq);
            match earlier {
                Some(i) => best = i,
                None => break,
            }
        }
        Some(self.items.swap_remove(best))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn port(id: &str, ip: &str) -> Value {
        json!({"id": id, "network_id": "n1", "mac_address": "fa:16:3e:00:00:01",
               "device_owner": "compute:nova", "revision_number": 3,
               "fixed_ips": [{"subnet_id": "s1", "ip_address": ip}]})
    }

    #[test]
    fn parses_every_cast_with_neutron_priorities() {
        let c = parse_cast(
            "network_create_end",
            &json!({"payload": {"network": {"id": "n1"}, "priority": 0}}),
        )
        .unwrap();
        assert_eq!(
            c,
            Cast {
                event: Event::NetworkCreate {
                    network_id: "n1".into()
                },
                priority: 0
            }
        );
        let c = parse_cast(
            "network_update_end",
            &json!({"payload": {"network": {"id": "n1", "admin_state_up": false}, "priority": 1}}),
        )
        .unwrap();
        assert_eq!(
            c.event,
            Event::NetworkUpdate {
                network_id: "n1".into(),
                admin_state_up: false
            }
        );
        let c = parse_cast(
            "network_delete_end",
            &json!({"payload": {"network_id": "n1", "priority": 2}}),
        )
        .unwrap();
        assert_eq!(c.priority, 2);
        for m in ["subnet_create_end", "subnet_update_end"] {
            let c = parse_cast(
                m,
                &json!({"payload": {"subnet": {"id": "s1", "network_id": "n1"}, "priority": 3}}),
            )
            .unwrap();
            assert_eq!(c.event.network_id(), Some("n1"));
        }
        let c = parse_cast(
            "subnet_delete_end",
            &json!({"payload": {"subnet_id": "s1", "priority": 4}}),
        )
        .unwrap();
        assert_eq!(
            c.event,
            Event::SubnetDelete {
                network_id: None,
                subnet_id: "s1".into()
            }
        );
        let c = parse_cast(
            "port_create_end",
            &json!({"payload": {"port": port("p1", "10.0.0.5"), "priority": 5}}),
        )
        .unwrap();
        match &c.event {
            Event::PortCreate(p) => {
                assert_eq!(p.network_id, "n1");
                assert_eq!(p.port.revision_number, Some(3));
            }
            e => panic!("{e:?}"),
        }
        let c = parse_cast(
            "port_delete_end",
            &json!({"payload": {"port_id": "p1", "network_id": "n1",
                    "fixed_ips": [{"subnet_id": "s1", "ip_address": "10.0.0.5"}], "priority": 6}}),
        )
        .unwrap();
        assert_eq!(
            c.event,
            Event::PortDelete {
                network_id: "n1".into(),
                port_id: "p1".into(),
                fixed_ips: vec!["10.0.0.5".parse().unwrap()]
            }
        );
        let c = parse_cast(
            "agent_updated",
            &json!({"payload": {"admin_state_up": true}}),
        )
        .unwrap();
        assert_eq!(c.priority, DEFAULT_PRIORITY);
        assert_eq!(c.event.network_id(), None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let cases = [
            ("network_create_end", json!({})),
            ("network_create_end", json!({"payload": 3})),
            (
                "network_create_end",
                json!({"payload": {"network": {"id": 7}}}),
            ),
            (
                "network_update_end",
                json!({"payload": {"network": {"id": "n"}}}),
            ),
            ("port_create_end", json!({"payload": {"port": {"id": "p"}}})),
            (
                "port_update_end",
                json!({"payload": {"port": {"id": "p", "mac_address": "fa:16:3e:00:00:01"}}}),
            ),
            ("port_delete_end", json!({"payload": {"port_id": "p"}})),
            ("subnet_update_end", json!({"payload": {"subnet": null}})),
            ("subnet_delete_end", json!({"payload": {}})),
        ];
        for (m, args) in cases {
            let e = parse_cast(m, &args).unwrap_err();
            assert!(
                matches!(e, EventError::BadPayload { .. }),
                "{m} {args}: {e}"
            );
        }
        assert_eq!(
            parse_cast("reboot_everything", &json!({"payload": {}})).unwrap_err(),
            EventError::UnknownMethod("reboot_everything".into())
        );
        // A non-integer priority falls back to the default.
        let c = parse_cast(
            "network_delete_end",
            &json!({"payload": {"network_id": "n", "priority": "high"}}),
        )
        .unwrap();
        assert_eq!(c.priority, DEFAULT_PRIORITY);
    }

    fn upd(seq: u64, priority: i64, work: Work) -> Update {
        Update {
            seq,
            priority,
            work,
            received: Instant::now(),
        }
    }

    fn port_upd(seq: u64, priority: i64, id: &str, ip: &str) -> Update {
        let c = parse_cast(
            "port_update_end",
            &json!({"payload": {"port": port(id, ip), "priority": priority}}),
        )
        .unwrap();
        upd(seq, c.priority, Work::Event(c.event))
    }

    fn net_ev(seq: u64, priority: i64) -> Update {
        upd(
            seq,
            priority,
            Work::Event(Event::NetworkCreate {
                network_id: "n1".into(),
            }),
        )
    }

    fn order(q: &mut NetQueue) -> Vec<u64> {
        std::iter::from_fn(|| q.pop()).map(|u| u.seq).collect()
    }

    #[test]
    fn lower_priority_value_first_then_oldest() {
        let mut q = NetQueue::default();
        q.push(net_ev(1, 6));
        q.push(net_ev(2, 0));
        q.push(net_ev(3, 6));
        q.push(net_ev(4, 2));
        q.push(net_ev(5, 255));
        assert_eq!(order(&mut q), vec![2, 4, 1, 3, 5]);
        assert!(q.is_empty());
    }

    #[test]
    fn overlapping_port_updates_keep_arrival_order() {
        let mut q = NetQueue::default();
        // Port a loses 10.0.0.5 (prio 6), then port b gets it (prio 5): b would win on
        // priority, but it waits for a, which is pulled ahead of it.
        q.push(port_upd(1, 6, "a", "10.0.0.5"));
        q.push(port_upd(2, 5, "b", "10.0.0.5"));
        q.push(port_upd(3, 5, "c", "10.0.0.9"));
        q.push(port_upd(4, 6, "d", "10.0.0.7"));
        assert_eq!(order(&mut q), vec![1, 2, 3, 4]);
    }

    #[test]
    fn overlap_rule_chains_through_older_updates() {
        let mut q = NetQueue::default();
        q.push(port_upd(1, 6, "a", "10.0.0.5"));
        q.push(port_upd(2, 6, "b", "10.0.0.5"));
        q.push(port_upd(3, 5, "c", "10.0.0.5"));
        assert_eq!(order(&mut q), vec![1, 2, 3]);
    }

    #[test]
    fn sync_goes_first_and_replaces_queued_sync_work() {
        let mut q = NetQueue::default();
        q.push(port_upd(1, 5, "a", "10.0.0.5"));
        q.push(upd(
            2,
            SYNC_PRIORITY,
            Work::Teardown {
                fetched_at: Instant::now(),
            },
        ));
        q.push(net_ev(3, 0));
        let info = NetworkInfo::parse(&json!({"id": "n1"})).unwrap();
        q.push(upd(
            4,
            SYNC_PRIORITY,
            Work::Sync {
                info,
                fetched_at: Instant::now(),
            },
        ));
        assert_eq!(q.len(), 3);
        let first = q.pop().unwrap();
        assert_eq!(first.seq, 4);
        assert!(matches!(first.work, Work::Sync { .. }));
        assert_eq!(order(&mut q), vec![3, 1]);
    }
}
