//! Whether a network gets a metadata proxy, and how the proxy names it to the metadata agent.
//!
//! Pure: Neutron's `Dnsmasq.should_enable_metadata` and the keying and IPv6 rules of the DHCP
//! agent's `enable_isolated_metadata_proxy` (reference §10), over the network as the agent
//! holds it. The agent asks again after every change of the network, so a router interface
//! that appears on an isolated subnet takes the proxy away, and one that goes brings it back.

use ipnetwork::IpNetwork;

use crate::model::{IpVersion, Network, Subnet, OWNER_DHCP, ROUTER_INTERFACE_OWNERS};

/// `DEVICE_OWNER_DISTRIBUTED` + `OVN_METADATA_PREFIX`: an OVN metadata port (OVN serves
/// metadata itself).
const OWNER_DISTRIBUTED: &str = "network:distributed";
const OVN_METADATA_PREFIX: &str = "ovnmeta";

/// The three switches of `dhcp_agent.ini` that decide.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Switches {
    pub force_metadata: bool,
    pub enable_isolated_metadata: bool,
    pub enable_metadata_network: bool,
}

/// The header that names the requester's network (or router) to the metadata agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Keyed {
    /// `X-Neutron-Network-ID: <network id>` (and any `X-Neutron-Router-ID` removed).
    Network(String),
    /// `X-Neutron-Router-ID: <router id>` (and any `X-Neutron-Network-ID` removed): a metadata
    /// network (`enable_metadata_network`, a 169.254/16 subnet) with a router interface.
    Router(String),
}

/// A network that gets a proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub keyed: Keyed,
    /// Also listen on `[fe80::a9fe:a9fe]:80` on the DHCP device: the network has an IPv6
    /// subnet and exactly one admin-up DHCP port of this agent (ours).
    pub ipv6: bool,
}

/// `should_enable_metadata` + the proxy's keying; `None`: no proxy for this network.
///
/// `own_port_id` is this agent's DHCP port on the network (Neutron counts the admin-up DHCP
/// ports whose `device_id` is this agent's; a network has at most one such port per agent).
pub fn decide(net: &Network, own_port_id: &str, sw: Switches) -> Option<Decision> {
    if net.ports.iter().any(|p| {
        p.device_owner == OWNER_DISTRIBUTED && p.device_id.starts_with(OVN_METADATA_PREFIX)
    }) {
        return None;
    }
    let all = || net.subnets.iter().chain(&net.non_local_subnets);
    if !all().any(|s| s.enable_dhcp) {
        return None;
    }
    let enabled = sw.force_metadata
        || (sw.enable_isolated_metadata
            && ((sw.enable_metadata_network && all().any(is_metadata_subnet))
                || all().any(|s| s.enable_dhcp && is_isolated(net, s))));
    if !enabled {
        return None;
    }
    let router = net
        .ports
        .iter()
        .find(|p| ROUTER_INTERFACE_OWNERS.contains(&p.device_owner.as_str()));
    let keyed = match router {
        Some(r) if sw.enable_metadata_network && all().any(is_metadata_subnet) => {
            Keyed::Router(r.device_id.clone())
        }
        _ => Keyed::Network(net.id.clone()),
    };
    let ipv6 = net.subnets.iter().any(|s| s.ip_version == IpVersion::V6)
        && net
            .ports
            .iter()
            .filter(|p| p.device_owner == OWNER_DHCP && p.admin_state_up && p.id == own_port_id)
            .count()
            == 1;
    Some(Decision { keyed, ipv6 })
}

/// `get_isolated_subnets`: no router interface port holds the subnet's gateway address.
pub fn is_isolated(net: &Network, s: &Subnet) -> bool {
    !net.ports.iter().any(|p| {
        ROUTER_INTERFACE_OWNERS.contains(&p.device_owner.as_str())
            && p.fixed_ips
                .iter()
                .any(|f| f.subnet_id == s.id && Some(f.ip_address) == s.gateway_ip)
    })
}

/// `has_metadata_subnet`: the subnet lies inside `169.254.0.0/16` (`METADATA_V4_SUBNET`).
fn is_metadata_subnet(s: &Subnet) -> bool {
    match s.cidr {
        IpNetwork::V4(c) => c.prefix() >= 16 && c.network().octets()[..2] == [169, 254],
        IpNetwork::V6(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET: &str = "6f1a5d2e-9c3b-4e7a-8d21-3b5c7e9f0a11";
    const OWN: &str = "own-dhcp-port";

    fn subnet(id: &str, cidr: &str, gw: Option<&str>, dhcp: bool) -> serde_json::Value {
        let v6 = cidr.contains(':');
        serde_json::json!({"id": id, "ip_version": if v6 {6} else {4}, "cidr": cidr,
            "gateway_ip": gw, "enable_dhcp": dhcp, "dns_nameservers": [], "host_routes": [],
            "ipv6_ra_mode": null, "ipv6_address_mode": null})
    }

    fn port(id: &str, owner: &str, device: &str, ips: &[(&str, &str)]) -> serde_json::Value {
        let fixed: Vec<_> = ips
            .iter()
            .map(|(s, ip)| serde_json::json!({"subnet_id": s, "ip_address": ip}))
            .collect();
        serde_json::json!({"id": id, "mac_address": "fa:16:3e:00:00:01", "device_owner": owner,
            "device_id": device, "fixed_ips": fixed, "extra_dhcp_opts": []})
    }

    fn dhcp_port() -> serde_json::Value {
        port(OWN, "network:dhcp", "dhcp-x", &[("s4", "10.0.0.2")])
    }

    fn net(subnets: Vec<serde_json::Value>, ports: Vec<serde_json::Value>) -> Network {
        let v = serde_json::json!({"id": NET, "admin_state_up": true, "mtu": 1500,
            "subnets": subnets, "ports": ports});
        Network::from_json(&v).unwrap()
    }

    fn isolated_v4() -> Network {
        net(
            vec![subnet("s4", "10.0.0.0/24", Some("10.0.0.1"), true)],
            vec![dhcp_port()],
        )
    }

    fn routed_v4() -> Network {
        net(
            vec![subnet("s4", "10.0.0.0/24", Some("10.0.0.1"), true)],
            vec![
                dhcp_port(),
                port(
                    "r",
                    "network:router_interface",
                    "router-1",
                    &[("s4", "10.0.0.1")],
                ),
            ],
        )
    }

    const ISOLATED: Switches = Switches {
        force_metadata: false,
        enable_isolated_metadata: true,
        enable_metadata_network: false,
    };
    const FORCE: Switches = Switches {
        force_metadata: true,
        enable_isolated_metadata: false,
        enable_metadata_network: false,
    };

    fn by_network() -> Option<Decision> {
        Some(Decision {
            keyed: Keyed::Network(NET.into()),
            ipv6: false,
        })
    }

    #[test]
    fn everything_off_means_no_proxy() {
        assert_eq!(decide(&isolated_v4(), OWN, Switches::default()), None);
    }

    #[test]
    fn isolated_subnet_gets_a_proxy_routed_one_does_not() {
        assert_eq!(decide(&isolated_v4(), OWN, ISOLATED), by_network());
        assert_eq!(decide(&routed_v4(), OWN, ISOLATED), None);
    }

    #[test]
    fn force_metadata_serves_routed_networks_too() {
        assert_eq!(decide(&routed_v4(), OWN, FORCE), by_network());
        assert_eq!(decide(&isolated_v4(), OWN, FORCE), by_network());
    }

    #[test]
    fn ovn_metadata_port_wins_over_everything() {
        let mut n = isolated_v4();
        let ovn = port(
            "m",
            "network:distributed",
            "ovnmeta-x",
            &[("s4", "10.0.0.3")],
        );
        n.ports
            .push(std::sync::Arc::new(serde_json::from_value(ovn).unwrap()));
        assert_eq!(decide(&n, OWN, FORCE), None);
        assert_eq!(decide(&n, OWN, ISOLATED), None);
        // A distributed port that is not OVN's metadata port changes nothing.
        let mut n = isolated_v4();
        let other = port("d", "network:distributed", "other", &[]);
        n.ports
            .push(std::sync::Arc::new(serde_json::from_value(other).unwrap()));
        assert_eq!(decide(&n, OWN, FORCE), by_network());
    }

    #[test]
    fn no_dhcp_subnet_means_no_proxy_even_when_forced() {
        let n = net(
            vec![subnet("s4", "10.0.0.0/24", Some("10.0.0.1"), false)],
            vec![dhcp_port()],
        );
        assert_eq!(decide(&n, OWN, FORCE), None);
        assert_eq!(decide(&n, OWN, ISOLATED), None);
    }

    #[test]
    fn router_port_on_another_address_leaves_the_subnet_isolated() {
        let n = net(
            vec![subnet("s4", "10.0.0.0/24", Some("10.0.0.1"), true)],
            vec![
                dhcp_port(),
                port(
                    "r",
                    "network:router_interface",
                    "router-1",
                    &[("s4", "10.0.0.9")],
                ),
                // Gateway address held by a port that is no router interface.
                port("v", "compute:nova", "vm", &[("s4", "10.0.0.1")]),
            ],
        );
        assert_eq!(decide(&n, OWN, ISOLATED), by_network());
    }

    #[test]
    fn every_router_interface_owner_counts() {
        for owner in ROUTER_INTERFACE_OWNERS {
            let n = net(
                vec![subnet("s4", "10.0.0.0/24", Some("10.0.0.1"), true)],
                vec![
                    dhcp_port(),
                    port("r", owner, "router-1", &[("s4", "10.0.0.1")]),
                ],
            );
            assert_eq!(decide(&n, OWN, ISOLATED), None, "{owner}");
        }
    }

    #[test]
    fn subnet_without_gateway_is_isolated() {
        let n = net(
            vec![subnet("s4", "10.0.0.0/24", None, true)],
            vec![
                dhcp_port(),
                port(
                    "r",
                    "network:router_interface",
                    "router-1",
                    &[("s4", "10.0.0.1")],
                ),
            ],
        );
        assert_eq!(decide(&n, OWN, ISOLATED), by_network());
    }

    #[test]
    fn one_isolated_dhcp_subnet_is_enough_but_an_isolated_non_dhcp_one_is_not() {
        let n = net(
            vec![
                subnet("s4", "10.0.0.0/24", Some("10.0.0.1"), true),
                subnet("t4", "10.0.1.0/24", Some("10.0.1.1"), true),
            ],
            vec![
                dhcp_port(),
                port(
                    "r",
                    "network:router_interface",
                    "router-1",
                    &[("s4", "10.0.0.1")],
                ),
            ],
        );
        assert_eq!(decide(&n, OWN, ISOLATED), by_network());
        let n = net(
            vec![
                subnet("s4", "10.0.0.0/24", Some("10.0.0.1"), true),
                subnet("t4", "10.0.1.0/24", Some("10.0.1.1"), false),
            ],
            vec![
                dhcp_port(),
                port(
                    "r",
                    "network:router_interface",
                    "router-1",
                    &[("s4", "10.0.0.1")],
                ),
            ],
        );
        assert_eq!(decide(&n, OWN, ISOLATED), None);
    }

    fn metadata_network() -> Network {
        net(
            vec![subnet("s4", "169.254.10.0/24", Some("169.254.10.1"), true)],
            vec![
                port(OWN, "network:dhcp", "dhcp-x", &[("s4", "169.254.10.2")]),
                port(
                    "r",
                    "network:router_interface",
                    "router-1",
                    &[("s4", "169.254.10.1")],
                ),
                port(
                    "r2",
                    "network:router_interface",
                    "router-2",
                    &[("s4", "169.254.10.3")],
                ),
            ],
        )
    }

    #[test]
    fn metadata_network_is_served_by_router_even_though_routed() {
        let sw = Switches {
            enable_metadata_network: true,
            ..ISOLATED
        };
        // The first router interface names the router, as Neutron takes router_ports[0].
        let want = Some(Decision {
            keyed: Keyed::Router("router-1".into()),
            ipv6: false,
        });
        assert_eq!(decide(&metadata_network(), OWN, sw), want);
        // Without enable_metadata_network it is just a routed subnet.
        assert_eq!(decide(&metadata_network(), OWN, ISOLATED), None);
        // enable_metadata_network needs enable_isolated_metadata (or force) too.
        let only_network = Switches {
            enable_metadata_network: true,
            ..Switches::default()
        };
        assert_eq!(decide(&metadata_network(), OWN, only_network), None);
        // Forced: keyed by router as well.
        let forced = Switches {
            enable_metadata_network: true,
            ..FORCE
        };
        assert_eq!(decide(&metadata_network(), OWN, forced), want);
    }

    #[test]
    fn metadata_network_without_router_is_keyed_by_network() {
        let n = net(
            vec![subnet("s4", "169.254.10.0/24", Some("169.254.10.1"), true)],
            vec![port(
                OWN,
                "network:dhcp",
                "dhcp-x",
                &[("s4", "169.254.10.2")],
            )],
        );
        let sw = Switches {
            enable_metadata_network: true,
            ..ISOLATED
        };
        assert_eq!(decide(&n, OWN, sw), by_network());
    }

    #[test]
    fn router_keying_needs_a_metadata_subnet() {
        // Forced on a routed, non-169.254 network: keyed by network.
        let sw = Switches {
            enable_metadata_network: true,
            ..FORCE
        };
        assert_eq!(decide(&routed_v4(), OWN, sw), by_network());
    }

    #[test]
    fn metadata_subnet_bounds() {
        let s = |cidr: &str| {
            let v = subnet("x", cidr, None, true);
            serde_json::from_value::<Subnet>(v).unwrap()
        };
        assert!(is_metadata_subnet(&s("169.254.0.0/16")));
        assert!(is_metadata_subnet(&s("169.254.169.0/24")));
        assert!(!is_metadata_subnet(&s("169.0.0.0/8")));
        assert!(!is_metadata_subnet(&s("169.255.0.0/24")));
        assert!(!is_metadata_subnet(&s("fe80::/64")));
    }

    fn dual_stack(own_admin_up: bool) -> Network {
        let mut own = port(OWN, "network:dhcp", "dhcp-x", &[("s4", "10.0.0.2")]);
        own["admin_state_up"] = own_admin_up.into();
        net(
            vec![
                subnet("s4", "10.0.0.0/24", Some("10.0.0.1"), true),
                subnet("s6", "fd00::/64", Some("fd00::1"), true),
            ],
            vec![
                own,
                // Another agent's DHCP port does not count.
                port("other", "network:dhcp", "dhcp-y", &[("s4", "10.0.0.3")]),
            ],
        )
    }

    #[test]
    fn ipv6_listener_needs_an_ipv6_subnet_and_our_admin_up_dhcp_port() {
        let d = decide(&dual_stack(true), OWN, ISOLATED).unwrap();
        assert!(d.ipv6);
        let d = decide(&dual_stack(false), OWN, ISOLATED).unwrap();
        assert!(!d.ipv6);
        let d = decide(&dual_stack(true), "not-ours", ISOLATED).unwrap();
        assert!(!d.ipv6);
        assert!(!decide(&isolated_v4(), OWN, ISOLATED).unwrap().ipv6);
    }
}
