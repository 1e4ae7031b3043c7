//! The agent's own DHCP port on each network, managed through the plugin RPCs exactly as
//! Neutron's `DeviceManager.setup_dhcp_port` does (reference §8):
//!
//! 1. our port (found by `device_id`) exists: use it; if its subnets differ from the
//!    DHCP-enabled subnets, `update_dhcp_port` with the IPs it keeps plus `{"subnet_id"}` for
//!    each new subnet (`null` reply → Conflict);
//! 2. else adopt a port whose `device_id` is `reserved_dhcp_port` via `update_dhcp_port`
//!    (`{"network_id", "device_id": ours}`), trying each in turn;
//! 3. else `create_dhcp_port` with one `{"subnet_id"}` per DHCP subnet.
//!
//! Then the port must have an IP on every DHCP subnet; if not it is re-read with
//! `get_dhcp_port`, and a port still missing one is `SubnetMismatch` (→ resync).

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::model::Port;
use crate::neutron::plugin::{NetworkInfo, PluginApi, PluginError, DEVICE_ID_RESERVED_DHCP_PORT};

/// `neutron.common.utils.get_dhcp_agent_device_id` (no segment suffix):
/// `dhcp<uuid5(NAMESPACE_DNS, host.split('.')[0])>-<network_id>`.
pub fn dhcp_device_id(host: &str, network_id: &str) -> String {
    format!("dhcp{}-{network_id}", host_uuid(host))
}

/// The host part of our device ids: `uuid5(NAMESPACE_DNS, short host name)`.
pub fn host_uuid(host: &str) -> String {
    let short = host.split('.').next().unwrap_or(host);
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_DNS, short.as_bytes())
        .hyphenated()
        .to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// Nothing usable came back (neutron: `exceptions.Conflict`); no resync, an event follows.
    #[error("network {network}: no DHCP port could be created, updated or adopted (conflict)")]
    Conflict { network: String },
    /// The port lacks an IP on a DHCP subnet even after re-reading it (→ resync).
    #[error("DHCP port {port} has no IP on DHCP subnet {subnet}")]
    SubnetMismatch { port: String, subnet: String },
    #[error(transparent)]
    Plugin(#[from] PluginError),
}

/// How our port was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortSource {
    Existing,
    Updated,
    Adopted,
    Created,
}

/// The first step of `setup_dhcp_port`, decided from the network data alone.
#[derive(Clone, Debug, PartialEq)]
pub enum PortStep {
    /// Our port exists with exactly the DHCP subnets: no RPC needed.
    Ready(Port),
    /// Our port exists with other subnets: `update_dhcp_port(port_id, body)`.
    UpdateSubnets { port_id: String, body: Value },
    /// No port of ours: try `update_dhcp_port(id, adopt)` for each reserved port, then
    /// `create_dhcp_port(create)`.
    Acquire {
        reserved: Vec<String>,
        adopt: Value,
        create: Value,
    },
}

/// DHCP-enabled local subnets, in the network's (id-sorted) order.
pub fn dhcp_subnet_ids(info: &NetworkInfo) -> Vec<String> {
    info.network
        .subnets
        .iter()
        .filter(|s| s.enable_dhcp)
        .map(|s| s.id.clone())
        .collect()
}

/// Decides what `setup_dhcp_port` has to do for `info` (pure).
pub fn plan(info: &NetworkInfo, device_id: &str) -> PortStep {
    let net = &info.network;
    let dhcp: Vec<String> = dhcp_subnet_ids(info);
    let wanted: BTreeSet<&str> = dhcp.iter().map(String::as_str).collect();
    if let Some(port) = net.ports.iter().find(|p| p.device_id == device_id) {
        let have: BTreeSet<&str> = port
            .fixed_ips
            .iter()
            .map(|f| f.subnet_id.as_str())
            .collect();
        if have == wanted {
            return PortStep::Ready(Port::clone(port));
        }
        let mut fixed_ips: Vec<Value> = port
            .fixed_ips
            .iter()
            .filter(|f| wanted.contains(f.subnet_id.as_str()))
            .map(|f| json!({"subnet_id": f.subnet_id, "ip_address": f.ip_address.to_string()}))
            .collect();
        fixed_ips.extend(
            dhcp.iter()
                .filter(|s| !have.contains(s.as_str()))
                .map(|s| json!({ "subnet_id": s })),
        );
        return PortStep::UpdateSubnets {
            port_id: port.id.clone(),
            body: json!({"port": {"network_id": net.id, "fixed_ips": fixed_ips}}),
        };
    }
    let reserved = net
        .ports
        .iter()
        .filter(|p| p.device_id == DEVICE_ID_RESERVED_DHCP_PORT)
        .map(|p| p.id.clone())
        .collect();
    let create_ips: Vec<Value> = dhcp.iter().map(|s| json!({ "subnet_id": s })).collect();
    PortStep::Acquire {
        reserved,
        adopt: json!({"port": {"network_id": net.id, "device_id": device_id}}),
        create: json!({"port": {
            "name": "",
            "admin_state_up": true,
            "device_id": device_id,
            "network_id": net.id,
            "project_id": info.project_id,
            "fixed_ips": create_ips,
        }}),
    }
}

/// DHCP subnets the port has no IP on.
pub fn missing_subnets(port: &Port, dhcp: &[String]) -> Vec<String> {
    dhcp.iter()
        .filter(|s| !port.fixed_ips.iter().any(|f| &f.subnet_id == *s))
        .cloned()
        .collect()
}

/// Runs `setup_dhcp_port` against neutron-server and returns our port.
pub async fn setup_dhcp_port(
    plugin: &PluginApi,
    info: &NetworkInfo,
    device_id: &str,
) -> Result<(Port, PortSource), PortError> {
    let network = info.network.id.clone();
    let conflict = || PortError::Conflict {
        network: network.clone(),
    };
    let (port, source) = match plan(info, device_id) {
        PortStep::Ready(p) => (p, PortSource::Existing),
        PortStep::UpdateSubnets { port_id, body } => {
            tracing::info!(port_id = %port_id, "DHCP subnets changed: updating our DHCP port");
            let p = plugin
                .update_dhcp_port(&port_id, body)
                .await?
                .ok_or_else(conflict)?;
            (p, PortSource::Updated)
        }
        PortStep::Acquire {
            reserved,
            adopt,
            create,
        } => {
            let mut got = None;
            for id in reserved {
                tracing::info!(port_id = %id, "adopting reserved DHCP port");
                if let Some(p) = plugin.update_dhcp_port(&id, adopt.clone()).await? {
                    got = Some((p, PortSource::Adopted));
                    break;
                }
            }
            match got {
                Some(g) => g,
                None => {
                    tracing::info!(%device_id, "creating our DHCP port");
                    let p = plugin
                        .create_dhcp_port(create)
                        .await?
                        .ok_or_else(conflict)?;
                    (p, PortSource::Created)
                }
            }
        }
    };
    let dhcp = dhcp_subnet_ids(info);
    if missing_subnets(&port, &dhcp).is_empty() {
        return Ok((port, source));
    }
    tracing::debug!(port_id = %port.id, "DHCP port lacks an IP on a DHCP subnet; re-reading it");
    let port = plugin.get_dhcp_port(&port.id).await?.ok_or_else(conflict)?;
    match missing_subnets(&port, &dhcp).into_iter().next() {
        None => Ok((port, source)),
        Some(subnet) => Err(PortError::SubnetMismatch {
            port: port.id,
            subnet,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_id_matches_neutron() {
        // python3 -c "import uuid; print(uuid.uuid5(uuid.NAMESPACE_DNS, 'compute1'))"
        assert_eq!(
            host_uuid("compute1"),
            "e0130025-5ee5-5094-8d98-24d0a68981b3"
        );
        assert_eq!(host_uuid("compute1.example.org"), host_uuid("compute1"));
        assert_eq!(
            dhcp_device_id("compute1.example.org", "net-1"),
            "dhcpe0130025-5ee5-5094-8d98-24d0a68981b3-net-1"
        );
    }

    fn info(ports: Value) -> NetworkInfo {
        NetworkInfo::parse(&json!({
            "id": "n1", "project_id": "p1",
            "subnets": [
                {"id": "s2", "ip_version": 4, "cidr": "10.0.2.0/24", "enable_dhcp": true},
                {"id": "s1", "ip_version": 4, "cidr": "10.0.1.0/24", "enable_dhcp": true},
                {"id": "s3", "ip_version": 4, "cidr": "10.0.3.0/24", "enable_dhcp": false},
            ],
            "ports": ports,
        }))
        .unwrap()
    }

    fn port(id: &str, device_id: &str, fips: &[(&str, &str)]) -> Value {
        let f: Vec<Value> = fips
            .iter()
            .map(|(s, ip)| json!({"subnet_id": s, "ip_address": ip}))
            .collect();
        json!({"id": id, "mac_address": "fa:16:3e:00:00:01", "device_id": device_id,
               "device_owner": "network:dhcp", "fixed_ips": f})
    }

    const OURS: &str = "dhcpX-n1";

    #[test]
    fn existing_port_with_the_right_subnets_needs_no_rpc() {
        let i = info(json!([port(
            "d",
            OURS,
            &[("s1", "10.0.1.2"), ("s2", "10.0.2.2")]
        )]));
        assert!(matches!(plan(&i, OURS), PortStep::Ready(p) if p.id == "d"));
    }

    #[test]
    fn subnet_change_keeps_ips_and_adds_new_subnets() {
        // Port is on s1 and on s3 (DHCP now disabled there); s2 is new.
        let i = info(json!([port(
            "d",
            OURS,
            &[("s1", "10.0.1.2"), ("s3", "10.0.3.2")]
        )]));
        assert_eq!(
            plan(&i, OURS),
            PortStep::UpdateSubnets {
                port_id: "d".into(),
                body: json!({"port": {"network_id": "n1", "fixed_ips": [
                    {"subnet_id": "s1", "ip_address": "10.0.1.2"},
                    {"subnet_id": "s2"}]}}),
            }
        );
    }

    #[test]
    fn reserved_ports_are_adopted_before_creating() {
        let i = info(json!([
            port("r1", DEVICE_ID_RESERVED_DHCP_PORT, &[("s1", "10.0.1.3")]),
            port("other", "dhcpY-n1", &[("s1", "10.0.1.4")]),
        ]));
        match plan(&i, OURS) {
            PortStep::Acquire {
                reserved,
                adopt,
                create,
            } => {
                assert_eq!(reserved, vec!["r1".to_string()]);
                assert_eq!(
                    adopt,
                    json!({"port": {"network_id": "n1", "device_id": OURS}})
                );
                assert_eq!(
                    create,
                    json!({"port": {"name": "", "admin_state_up": true, "device_id": OURS,
                        "network_id": "n1", "project_id": "p1",
                        "fixed_ips": [{"subnet_id": "s1"}, {"subnet_id": "s2"}]}})
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn missing_subnets_are_reported() {
        let i = info(json!([port("d", OURS, &[("s1", "10.0.1.2")])]));
        let p = &i.network.ports[0];
        assert_eq!(missing_subnets(p, &dhcp_subnet_ids(&i)), vec!["s2"]);
    }
}
