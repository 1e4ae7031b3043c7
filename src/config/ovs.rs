//! `[OVS]` options and `[DEFAULT] ovs_use_veth` (the `openvswitch` interface driver).

use std::time::Duration;

use super::error::ConfigError;
use super::reader::Reader;

/// `[OVS]` options and `[DEFAULT] ovs_use_veth`, with Neutron's defaults (checked further by
/// the device layer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OvsOptions {
    /// `[OVS] integration_bridge` (`br-int`).
    pub integration_bridge: String,
    /// `[OVS] ovsdb_connection` (`tcp:127.0.0.1:6640`).
    pub ovsdb_connection: String,
    /// `[OVS] ovsdb_timeout` (10 s, min 1).
    pub ovsdb_timeout: Duration,
    /// `[OVS] datapath_type` (`system`).
    pub datapath_type: String,
    /// `[DEFAULT] ovs_use_veth` (false).
    pub use_veth: bool,
}

impl Default for OvsOptions {
    fn default() -> Self {
        OvsOptions {
            integration_bridge: "br-int".into(),
            ovsdb_connection: "tcp:127.0.0.1:6640".into(),
            ovsdb_timeout: Duration::from_secs(10),
            datapath_type: "system".into(),
            use_veth: false,
        }
    }
}

pub(super) fn ovs_options(r: &Reader<'_>) -> Result<OvsOptions, ConfigError> {
    let d = OvsOptions::default();
    Ok(OvsOptions {
        integration_bridge: r
            .opt_string("OVS", "integration_bridge")
            .unwrap_or(d.integration_bridge),
        ovsdb_connection: r
            .opt_string("OVS", "ovsdb_connection")
            .unwrap_or(d.ovsdb_connection),
        ovsdb_timeout: Duration::from_secs(r.int("OVS", "ovsdb_timeout", 10, 1)? as u64),
        datapath_type: r
            .opt_string("OVS", "datapath_type")
            .unwrap_or(d.datapath_type),
        use_veth: r.boolean("DEFAULT", "ovs_use_veth", false)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::cfg;

    #[test]
    fn ovs_options() {
        let c = cfg("[DEFAULT]\n").unwrap();
        assert_eq!(c.ovs, OvsOptions::default());
        let c = cfg(
            "[DEFAULT]\novs_use_veth = true\n[OVS]\nintegration_bridge = br-x\n\
                     ovsdb_connection = unix:/run/openvswitch/db.sock\novsdb_timeout = 3\n\
                     datapath_type = netdev\n",
        )
        .unwrap();
        assert!(c.ovs.use_veth);
        assert_eq!(c.ovs.integration_bridge, "br-x");
        assert_eq!(c.ovs.ovsdb_connection, "unix:/run/openvswitch/db.sock");
        assert_eq!(c.ovs.ovsdb_timeout, Duration::from_secs(3));
        assert_eq!(c.ovs.datapath_type, "netdev");
        assert!(cfg("[OVS]\novsdb_timeout = 0\n").is_err());
    }
}
