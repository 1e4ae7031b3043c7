//! Options of the Neutron control plane (RPC mode): resync, heartbeat, RPC timeouts, and the
//! messaging options handed raw to the transport (which validates them).

use std::time::Duration;

use super::error::ConfigError;
use super::reader::{unreachable_missing, Reader};

/// Options of the Neutron control plane (RPC mode). Names and defaults are Neutron's
/// (reference §11).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeutronOptions {
    /// `[AGENT] report_interval` (seconds, a float in the file); zero disables the heartbeat.
    pub report_interval: Duration,
    /// `[AGENT] availability_zone` (`nova`, at most 255 characters).
    pub availability_zone: String,
    /// `[AGENT] log_agent_heartbeats` (reported in the agent state only).
    pub log_agent_heartbeats: bool,
    /// `[DEFAULT] resync_interval` in seconds (5, min 1).
    pub resync_interval: u64,
    /// `[DEFAULT] resync_throttle` in seconds (1, min 0, at most `resync_interval`).
    pub resync_throttle: u64,
    /// `[DEFAULT] num_sync_threads` (4, min 1): networks configured in parallel by a sync.
    pub num_sync_threads: usize,
    /// `[DEFAULT] dhcp_driver`: only reported in the agent state (the server shows it).
    pub dhcp_driver: String,
    /// `[DEFAULT] control_exchange`, raw (validated by the transport).
    pub control_exchange: Option<String>,
    /// `[DEFAULT] rpc_response_timeout`, raw (validated by the transport).
    pub rpc_response_timeout: Option<String>,
    /// `[DEFAULT] rpc_response_max_timeout` in seconds (600): cap of the per-method back-off.
    pub rpc_response_max_timeout: u64,
    /// `[DEFAULT] bulk_reload_interval` (0). Accepted for compatibility; reloads are immediate
    /// here (a view swap costs microseconds), so a non-zero value changes nothing.
    pub bulk_reload_interval: u64,
    /// Every `[oslo_messaging_rabbit]` option, for the transport.
    pub rabbit: Vec<(String, String)>,
}

impl Default for NeutronOptions {
    fn default() -> Self {
        NeutronOptions {
            report_interval: Duration::from_secs(30),
            availability_zone: "nova".into(),
            log_agent_heartbeats: false,
            resync_interval: 5,
            resync_throttle: 1,
            num_sync_threads: 4,
            dhcp_driver: "neutron.agent.linux.dhcp.Dnsmasq".into(),
            control_exchange: None,
            rpc_response_timeout: None,
            rpc_response_max_timeout: 600,
            bulk_reload_interval: 0,
            rabbit: Vec::new(),
        }
    }
}

pub(super) fn neutron_options(r: &Reader<'_>) -> Result<NeutronOptions, ConfigError> {
    let d = NeutronOptions::default();
    let resync_interval = r.int("DEFAULT", "resync_interval", d.resync_interval as i64, 1)? as u64;
    let resync_throttle = r.int("DEFAULT", "resync_throttle", d.resync_throttle as i64, 0)? as u64;
    if resync_throttle > resync_interval {
        // Neutron refuses to start too (InvalidConfigurationOption).
        let (_, rv) = r
            .string("DEFAULT", "resync_throttle")
            .or_else(|| r.string("DEFAULT", "resync_interval"))
            .ok_or_else(|| unreachable_missing("resync_throttle"))?;
        return Err(r.invalid(
            "DEFAULT",
            "resync_throttle",
            rv,
            format!("must be <= resync_interval ({resync_interval})"),
        ));
    }
    let availability_zone = r
        .string("AGENT", "availability_zone")
        .map(|(v, _)| v)
        .unwrap_or(d.availability_zone);
    if availability_zone.chars().count() > 255 {
        let (_, rv) = r
            .string("AGENT", "availability_zone")
            .ok_or_else(|| unreachable_missing("availability_zone"))?;
        return Err(r.invalid(
            "AGENT",
            "availability_zone",
            rv,
            "longer than 255 characters".into(),
        ));
    }
    Ok(NeutronOptions {
        report_interval: Duration::from_secs_f64(r.float(
            "AGENT",
            "report_interval",
            d.report_interval.as_secs_f64(),
            0.0,
        )?),
        availability_zone,
        log_agent_heartbeats: r.boolean("AGENT", "log_agent_heartbeats", false)?,
        resync_interval,
        resync_throttle,
        num_sync_threads: r.int("DEFAULT", "num_sync_threads", d.num_sync_threads as i64, 1)?
            as usize,
        dhcp_driver: r
            .opt_string("DEFAULT", "dhcp_driver")
            .unwrap_or(d.dhcp_driver),
        control_exchange: r.opt_string("DEFAULT", "control_exchange"),
        rpc_response_timeout: r.opt_string("DEFAULT", "rpc_response_timeout"),
        rpc_response_max_timeout: r.int(
            "DEFAULT",
            "rpc_response_max_timeout",
            d.rpc_response_max_timeout as i64,
            1,
        )? as u64,
        bulk_reload_interval: r.int("DEFAULT", "bulk_reload_interval", 0, 0)? as u64,
        rabbit: r.raw.section("oslo_messaging_rabbit"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::cfg;

    #[test]
    fn neutron_options_defaults_and_validation() {
        let c = cfg("[DEFAULT]\n").unwrap();
        assert_eq!(c.neutron, NeutronOptions::default());
        let c = cfg(
            "[DEFAULT]\nresync_interval = 10\nresync_throttle = 0\nnum_sync_threads = 8\n\
             control_exchange = openstack\nrpc_response_timeout = 20\n\
             [AGENT]\nreport_interval = 0.5\navailability_zone = az1\n\
             [oslo_messaging_rabbit]\namqp_durable_queues = true\n",
        )
        .unwrap();
        assert_eq!(c.neutron.resync_interval, 10);
        assert_eq!(c.neutron.resync_throttle, 0);
        assert_eq!(c.neutron.num_sync_threads, 8);
        assert_eq!(c.neutron.report_interval, Duration::from_millis(500));
        assert_eq!(c.neutron.availability_zone, "az1");
        assert_eq!(c.neutron.control_exchange.as_deref(), Some("openstack"));
        assert_eq!(c.neutron.rpc_response_timeout.as_deref(), Some("20"));
        assert_eq!(
            c.neutron.rabbit,
            vec![("amqp_durable_queues".to_string(), "true".to_string())]
        );
        let e = cfg("[DEFAULT]\nresync_interval = 2\nresync_throttle = 3\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("resync_throttle") && e.contains("resync_interval"),
            "{e}"
        );
        assert!(cfg("[DEFAULT]\nresync_interval = 0\n").is_err());
        assert!(cfg("[AGENT]\nreport_interval = -1\n").is_err());
        assert_eq!(cfg("").unwrap().status_listen, None);
        assert_eq!(
            cfg("[agent]\nstatus_listen = 127.0.0.1:9733\n")
                .unwrap()
                .status_listen,
            Some("127.0.0.1:9733".parse().unwrap())
        );
        let e = cfg("[agent]\nstatus_listen = localhost\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[agent] status_listen"), "{e}");
        assert!(cfg("[AGENT]\nreport_interval = soon\n").is_err());
        assert!(cfg(&format!(
            "[AGENT]\navailability_zone = {}\n",
            "a".repeat(256)
        ))
        .is_err());
    }
}
