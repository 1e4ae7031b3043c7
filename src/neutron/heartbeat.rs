//! The state report (`DhcpAgentWithStateReport._report_state`, reference §6): every
//! `[AGENT] report_interval` seconds, on its own task so that no sync or event work can delay
//! it, `report_state` is called with the exact `agent_state` of the Python agent.
//!
//! * `start_flag: true` until the first successful report;
//! * `configurations` carries the cache counts the server's scheduler weighs;
//! * a fresh `uuid` per report; `time` = UTC now, `%Y-%m-%dT%H:%M:%S.%f`;
//! * reply `revived` → full resync; reply `new` → full resync at once (so a brand-new agent gets
//!   the networks the server auto-schedules to it during that sync, instead of waiting for an
//!   event as the Python agent does);
//! * a remote `AttributeError` (server without state reports) stops the heartbeat; any other
//!   error is logged and the next interval retries.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;
use tracing::Instrument;

use crate::neutron::plugin::{PluginApi, ReportReply};
use crate::rpc::oslo::Uuid4;
use crate::view::cache::NetworkCache;

use super::sync::Resync;

/// `AGENT_TYPE_DHCP`.
pub const AGENT_TYPE: &str = "DHCP agent";
/// `AGENT_PROCESS_DHCP`.
pub const AGENT_BINARY: &str = "neutron-dhcp-agent";
/// `topics.DHCP_AGENT`.
pub const AGENT_TOPIC: &str = "dhcp_agent";

/// The static part of `agent_state`.
#[derive(Clone, Debug, PartialEq)]
pub struct StateTemplate {
    pub host: String,
    pub availability_zone: String,
    pub dhcp_driver: String,
    pub dhcp_lease_duration: i64,
    pub log_agent_heartbeats: bool,
}

/// `NetworkCache.get_state()`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub networks: usize,
    pub subnets: usize,
    pub ports: usize,
}

impl Counts {
    pub fn of(cache: &NetworkCache) -> Counts {
        let mut c = Counts::default();
        for id in cache.network_ids() {
            if let Some(n) = cache.get(&id) {
                c.networks += 1;
                c.subnets += n.subnets.len() + n.non_local_subnets.len();
                c.ports += n.ports.len();
            }
        }
        c
    }
}

/// The `agent_state` dict of one report.
pub fn agent_state(t: &StateTemplate, counts: Counts, start_flag: bool, uuid: &str) -> Value {
    let mut s = json!({
        "binary": AGENT_BINARY,
        "host": t.host,
        "availability_zone": t.availability_zone,
        "topic": AGENT_TOPIC,
        "configurations": {
            "dhcp_driver": t.dhcp_driver,
            "dhcp_lease_duration": t.dhcp_lease_duration,
            "log_agent_heartbeats": t.log_agent_heartbeats,
            "networks": counts.networks,
            "subnets": counts.subnets,
            "ports": counts.ports,
        },
        "agent_type": AGENT_TYPE,
        "uuid": uuid,
    });
    if start_flag {
        s["start_flag"] = Value::Bool(true);
    }
    s
}

/// What the heartbeat does after a report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AfterReport {
    Continue,
    /// Schedule a full resync for this reason, and continue.
    Resync(&'static str),
}

/// Decides what a reply means (pure).
pub fn after_reply(reply: &ReportReply) -> AfterReport {
    match reply {
        ReportReply::Revived => AfterReport::Resync("Agent has just been revived"),
        ReportReply::New => AfterReport::Resync("Agent has just been registered"),
        _ => AfterReport::Continue,
    }
}

/// The heartbeat task: reports the agent's state every `interval`.
pub struct Heartbeat {
    pub template: StateTemplate,
    pub interval: Duration,
    pub plugin: Arc<PluginApi>,
    /// The networks whose counts each report carries.
    pub cache: Arc<NetworkCache>,
    /// Where a `revived`/`new` reply schedules its full sync.
    pub resync: Arc<Resync>,
    pub stop: watch::Receiver<bool>,
}

impl Heartbeat {
    /// Reports until `stop` turns true. The first report goes out at once.
    pub async fn run(self) {
        let Heartbeat {
            template,
            interval,
            plugin,
            cache,
            resync,
            mut stop,
        } = self;
        let mut ticker = tokio::time::interval(interval);
        // FixedIntervalLoopingCall: a late report is followed by the next one at once, no burst.
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut start_flag = true;
        let mut failed = false;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.changed() => return,
            }
            let uuid = Uuid4::random().hyphenated();
            let state = agent_state(&template, Counts::of(&cache), start_flag, &uuid);
            let span = tracing::debug_span!("report_state", %uuid, start_flag);
            let result = tokio::select! {
                r = plugin.report_state(state, interval).instrument(span) => r,
                _ = stop.changed() => return,
            };
            match result {
                Ok(reply) => {
                    if failed {
                        failed = false;
                        tracing::info!("successfully reported state after a previous failure");
                    }
                    if template.log_agent_heartbeats {
                        tracing::info!(?reply, "reported state");
                    } else {
                        tracing::debug!(?reply, "reported state");
                    }
                    if start_flag {
                        start_flag = false;
                        tracing::info!(
                            ?reply,
                            "agent registered with neutron-server (first state report)"
                        );
                    }
                    match after_reply(&reply) {
                        AfterReport::Resync(reason) => {
                            tracing::info!(?reply, "{reason}: scheduling a full sync");
                            resync.schedule_now(reason, None);
                        }
                        AfterReport::Continue => {}
                    }
                }
                Err(e) if e.is_remote("AttributeError") => {
                    tracing::warn!(
                        "neutron-server does not support state reports; \
                         state reporting for this agent is disabled"
                    );
                    return;
                }
                Err(e) => {
                    failed = true;
                    tracing::error!(error = %e, "failed reporting state");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> StateTemplate {
        StateTemplate {
            host: "compute1".into(),
            availability_zone: "nova".into(),
            dhcp_driver: "neutron.agent.linux.dhcp.Dnsmasq".into(),
            dhcp_lease_duration: 86400,
            log_agent_heartbeats: false,
        }
    }

    #[test]
    fn agent_state_is_the_python_agents() {
        let counts = Counts {
            networks: 3,
            subnets: 4,
            ports: 17,
        };
        let s = agent_state(&template(), counts, true, "u-1");
        assert_eq!(
            s,
            json!({
                "binary": "neutron-dhcp-agent",
                "host": "compute1",
                "availability_zone": "nova",
                "topic": "dhcp_agent",
                "configurations": {
                    "dhcp_driver": "neutron.agent.linux.dhcp.Dnsmasq",
                    "dhcp_lease_duration": 86400,
                    "log_agent_heartbeats": false,
                    "networks": 3, "subnets": 4, "ports": 17
                },
                "start_flag": true,
                "agent_type": "DHCP agent",
                "uuid": "u-1"
            })
        );
        let s = agent_state(&template(), counts, false, "u-2");
        assert!(s.get("start_flag").is_none());
        assert_eq!(s["uuid"], "u-2");
    }

    #[test]
    fn replies() {
        assert!(matches!(
            after_reply(&ReportReply::Revived),
            AfterReport::Resync(_)
        ));
        assert!(matches!(
            after_reply(&ReportReply::New),
            AfterReport::Resync(_)
        ));
        assert_eq!(after_reply(&ReportReply::Alive), AfterReport::Continue);
        assert_eq!(after_reply(&ReportReply::Stale), AfterReport::Continue);
    }

    #[test]
    fn counts_come_from_the_cache() {
        let cache = NetworkCache::new(Default::default());
        let net = crate::model::Network::from_json(&json!({
            "id": "n1",
            "subnets": [{"id": "s1", "ip_version": 4, "cidr": "10.0.0.0/24"}],
            "non_local_subnets": [{"id": "s2", "ip_version": 4, "cidr": "10.0.1.0/24"}],
            "ports": [{"id": "d", "mac_address": "fa:16:3e:00:00:01",
                       "fixed_ips": [{"subnet_id": "s1", "ip_address": "10.0.0.2"}]}]
        }))
        .unwrap();
        cache.upsert(net, "d");
        assert_eq!(
            Counts::of(&cache),
            Counts {
                networks: 1,
                subnets: 2,
                ports: 1
            }
        );
    }
}
