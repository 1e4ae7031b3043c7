//! What the namespace of one network should look like, computed from Neutron's data alone.
//!
//! Pure: no I/O. [`PlumbPlan::for_network`] translates the rules of Neutron's
//! `DeviceManager.setup` (addresses, `init_l3`) and `_set_default_route_ip_version`
//! (reference §8) into a plan that [`super::DeviceManager::setup`] converges the host to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;

use super::DeviceConfig;
use crate::model::{IpVersion, Ipv6Mode, MacAddr, Network, Port, Subnet};

/// `METADATA_CIDR`: the isolated-metadata address, on the DHCP port of every network.
pub const METADATA_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
/// `METADATA_V6_CIDR` (`fe80::a9fe:a9fe/128`).
pub const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0xa9fe, 0xa9fe);
/// `IPV6_PD_POOL_ID`: subnets whose prefix comes from prefix delegation get no default route.
pub const PREFIX_DELEGATION_POOL: &str = "prefix_delegation";

/// The host state for one network's DHCP port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlumbPlan {
    pub network_id: String,
    pub port_id: String,
    /// MAC of the DHCP port; set on the namespace end of the device.
    pub mac: MacAddr,
    /// `None`: leave the MTU as the kernel made it (Neutron only sets it when the network has one).
    pub mtu: Option<u16>,
    /// Exactly the addresses the namespace device carries, besides kernel link-local ones.
    pub addresses: Vec<IpNetwork>,
    /// `None`: no subnet qualifies, so any default route of that family is removed.
    pub default_v4: Option<DefaultRoute>,
    pub default_v6: Option<DefaultRoute>,
}

/// A default route in the namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefaultRoute {
    pub gateway: IpAddr,
    /// The gateway is outside its subnet: add a link-scope host route to it first, or the
    /// kernel refuses the default route (Neutron: `add_route(gateway, scope='link')`).
    pub onlink_host_route: bool,
}

impl PlumbPlan {
    /// Neutron's rules (reference §8):
    /// - `<fixed_ip>/<subnet prefixlen>` for each fixed IP of `dhcp_port` on a DHCP-enabled
    ///   local subnet (`net.subnets`); IPs on other subnets are ignored, as Neutron does;
    /// - `169.254.169.254/32` when `force_metadata` or `enable_isolated_metadata`, plus
    ///   `fe80::a9fe:a9fe/128` if the network also has a DHCP-enabled IPv6 subnet;
    /// - per IP version, a default route via the gateway of the first DHCP-enabled subnet that
    ///   has one (see [`default_route`]).
    pub fn for_network(net: &Network, dhcp_port: &Port, cfg: &DeviceConfig) -> PlumbPlan {
        let dhcp_subnets: Vec<&Subnet> = net.subnets.iter().filter(|s| s.enable_dhcp).collect();
        let mut addresses: Vec<IpNetwork> = Vec::new();
        for fip in &dhcp_port.fixed_ips {
            let Some(subnet) = dhcp_subnets.iter().find(|s| s.id == fip.subnet_id) else {
                continue;
            };
            // A version mismatch would be a Neutron bug; IpNetwork::new rejects it.
            if let Ok(a) = IpNetwork::new(fip.ip_address, subnet.cidr.prefix()) {
                if !addresses.contains(&a) {
                    addresses.push(a);
                }
            }
        }
        if cfg.force_metadata || cfg.enable_isolated_metadata {
            addresses.push(IpNetwork::new(METADATA_V4.into(), 32).expect("/32 is valid"));
            if dhcp_subnets.iter().any(|s| s.ip_version == IpVersion::V6) {
                addresses.push(IpNetwork::new(METADATA_V6.into(), 128).expect("/128 is valid"));
            }
        }
        PlumbPlan {
            network_id: net.id.clone(),
            port_id: dhcp_port.id.clone(),
            mac: dhcp_port.mac_address,
            mtu: net.mtu,
            addresses,
            default_v4: default_route(&net.subnets, IpVersion::V4),
            default_v6: default_route(&net.subnets, IpVersion::V6),
        }
    }

    pub fn namespace(&self) -> String {
        namespace_name(&self.network_id)
    }
}

/// `_set_default_route_ip_version`: the gateway of the first subnet (in `subnets` order) of
/// that IP version that has DHCP enabled and a gateway, skipping prefix-delegation subnets and,
/// for IPv6, prefixes of length 0 or > 126 and non-/64 SLAAC or DHCPv6-stateless subnets.
pub fn default_route(subnets: &[Subnet], version: IpVersion) -> Option<DefaultRoute> {
    subnets.iter().find_map(|s| {
        if s.ip_version != version
            || !s.enable_dhcp
            || s.subnetpool_id.as_deref() == Some(PREFIX_DELEGATION_POOL)
        {
            return None;
        }
        let gateway = s.gateway_ip?;
        if version == IpVersion::V6 {
            let prefix = s.cidr.prefix();
            if prefix == 0 || prefix > 126 {
                return None;
            }
            let autoconf = |m: Option<Ipv6Mode>| {
                matches!(m, Some(Ipv6Mode::Slaac | Ipv6Mode::Dhcpv6Stateless))
            };
            if prefix != 64 && (autoconf(s.ipv6_address_mode) || autoconf(s.ipv6_ra_mode)) {
                return None;
            }
        }
        Some(DefaultRoute {
            gateway,
            onlink_host_route: !gateway_in_subnet(s.cidr, gateway),
        })
    })
}

/// Neutron's `ipam_utils.check_subnet_ip(cidr, ip)` with an unknown owner: for IPv4 the
/// network and broadcast addresses do not count as inside (netaddr has no broadcast for /31
/// and /32); for IPv6 any address of the prefix does.
fn gateway_in_subnet(cidr: IpNetwork, ip: IpAddr) -> bool {
    match cidr {
        IpNetwork::V4(net) => {
            let IpAddr::V4(ip) = ip else { return false };
            net.contains(ip) && ip != net.network() && (net.prefix() >= 31 || ip != net.broadcast())
        }
        IpNetwork::V6(net) => matches!(ip, IpAddr::V6(ip) if net.contains(ip)),
    }
}

/// First 11 characters of an id: Neutron's device names are 14 characters, prefix included.
fn short_id(id: &str) -> &str {
    match id.char_indices().nth(11) {
        Some((i, _)) => &id[..i],
        None => id,
    }
}

/// Root-namespace end of the DHCP port's device: `tap` + first 11 characters of the port id.
pub fn tap_name(port_id: &str) -> String {
    format!("tap{}", short_id(port_id))
}

/// Namespace end of a veth pair: `ns-` + first 11 characters of the port id.
pub fn ns_ifname(port_id: &str) -> String {
    format!("ns-{}", short_id(port_id))
}

/// `veth_bridge` template with `{network_id}` replaced by the first 11 characters of the
/// network id (`brq{network_id}` gives linuxbridge-agent's bridge names).
pub fn bridge_name(template: &str, network_id: &str) -> String {
    template.replace("{network_id}", short_id(network_id))
}

/// `qdhcp-<network_id>`.
pub fn namespace_name(network_id: &str) -> String {
    format!("qdhcp-{network_id}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FixedIp;

    fn subnet(id: &str, cidr: &str, gw: Option<&str>) -> Subnet {
        let cidr: IpNetwork = cidr.parse().unwrap();
        Subnet {
            id: id.into(),
            ip_version: if cidr.is_ipv4() {
                IpVersion::V4
            } else {
                IpVersion::V6
            },
            cidr,
            gateway_ip: gw.map(|g| g.parse().unwrap()),
            enable_dhcp: true,
            dns_nameservers: vec![],
            host_routes: vec![],
            ipv6_ra_mode: None,
            ipv6_address_mode: None,
            subnetpool_id: None,
            segment_id: None,
        }
    }

    fn port(fixed: &[(&str, &str)]) -> Port {
        Port {
            id: "0123456789abcdef-port".into(),
            mac_address: "fa:16:3e:00:00:01".parse().unwrap(),
            device_id: "dhcp".into(),
            device_owner: "network:dhcp".into(),
            admin_state_up: true,
            fixed_ips: fixed
                .iter()
                .map(|(s, ip)| FixedIp {
                    subnet_id: s.to_string(),
                    ip_address: ip.parse().unwrap(),
                })
                .collect(),
            extra_dhcp_opts: vec![],
            dns_assignment: vec![],
            binding_host_id: String::new(),
            revision_number: None,
        }
    }

    fn network(subnets: Vec<Subnet>) -> Network {
        Network {
            id: "fedcba98-7654-3210-net".into(),
            admin_state_up: true,
            mtu: Some(1450),
            subnets,
            non_local_subnets: vec![],
            ports: vec![],
        }
    }

    fn cfg(metadata: bool) -> DeviceConfig {
        DeviceConfig {
            enable_isolated_metadata: metadata,
            ..DeviceConfig::default()
        }
    }

    fn nets(v: &[&str]) -> Vec<IpNetwork> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn gw(ip: &str, onlink: bool) -> Option<DefaultRoute> {
        Some(DefaultRoute {
            gateway: ip.parse().unwrap(),
            onlink_host_route: onlink,
        })
    }

    #[test]
    fn addresses_use_subnet_prefix_and_only_dhcp_subnets() {
        let mut off = subnet("s3", "10.9.0.0/16", None);
        off.enable_dhcp = false;
        let net = network(vec![
            subnet("s1", "10.0.0.0/24", Some("10.0.0.1")),
            subnet("s2", "fd00::/64", Some("fd00::1")),
            off,
        ]);
        let p = port(&[
            ("s1", "10.0.0.2"),
            ("s2", "fd00::2"),
            ("s3", "10.9.0.2"),
            ("nonexistent", "10.8.0.2"),
        ]);
        let plan = PlumbPlan::for_network(&net, &p, &cfg(false));
        assert_eq!(plan.addresses, nets(&["10.0.0.2/24", "fd00::2/64"]));
        assert_eq!(plan.mtu, Some(1450));
        assert_eq!(plan.mac, p.mac_address);
        assert_eq!(plan.port_id, p.id);
        assert_eq!(plan.namespace(), "qdhcp-fedcba98-7654-3210-net");
    }

    #[test]
    fn metadata_addresses() {
        let v4only = network(vec![subnet("s1", "10.0.0.0/24", Some("10.0.0.1"))]);
        let p = port(&[("s1", "10.0.0.2")]);
        let plan = PlumbPlan::for_network(&v4only, &p, &cfg(true));
        assert_eq!(plan.addresses, nets(&["10.0.0.2/24", "169.254.169.254/32"]));

        let forced = DeviceConfig {
            force_metadata: true,
            ..DeviceConfig::default()
        };
        let dual = network(vec![
            subnet("s1", "10.0.0.0/24", Some("10.0.0.1")),
            subnet("s2", "fd00::/64", None),
        ]);
        let plan = PlumbPlan::for_network(&dual, &p, &forced);
        assert_eq!(
            plan.addresses,
            nets(&["10.0.0.2/24", "169.254.169.254/32", "fe80::a9fe:a9fe/128"])
        );
    }

    #[test]
    fn gateway_inside_subnet_is_plain_default_route() {
        let net = network(vec![subnet("s1", "10.0.0.0/24", Some("10.0.0.1"))]);
        assert_eq!(
            default_route(&net.subnets, IpVersion::V4),
            gw("10.0.0.1", false)
        );
        assert_eq!(default_route(&net.subnets, IpVersion::V6), None);
    }

    #[test]
    fn gateway_outside_subnet_needs_onlink_host_route() {
        let s = vec![subnet("s1", "10.0.0.0/24", Some("10.1.0.1"))];
        assert_eq!(default_route(&s, IpVersion::V4), gw("10.1.0.1", true));
        // Network and broadcast addresses are "outside" for check_subnet_ip.
        let s = vec![subnet("s1", "10.0.0.0/24", Some("10.0.0.0"))];
        assert_eq!(default_route(&s, IpVersion::V4), gw("10.0.0.0", true));
        let s = vec![subnet("s1", "10.0.0.0/24", Some("10.0.0.255"))];
        assert_eq!(default_route(&s, IpVersion::V4), gw("10.0.0.255", true));
        let s = vec![subnet("s1", "fd00::/64", Some("fd01::1"))];
        assert_eq!(default_route(&s, IpVersion::V6), gw("fd01::1", true));
    }

    #[test]
    fn no_gateway_means_no_default_route() {
        let s = vec![subnet("s1", "10.0.0.0/24", None)];
        assert_eq!(default_route(&s, IpVersion::V4), None);
        let net = network(s);
        let plan = PlumbPlan::for_network(&net, &port(&[("s1", "10.0.0.2")]), &cfg(false));
        assert_eq!(plan.default_v4, None);
        assert_eq!(plan.default_v6, None);
    }

    #[test]
    fn prefix_delegation_and_dhcp_disabled_subnets_are_skipped() {
        let mut pd = subnet("s1", "fd00::/64", Some("fd00::1"));
        pd.subnetpool_id = Some(PREFIX_DELEGATION_POOL.into());
        let mut off = subnet("s2", "fd01::/64", Some("fd01::1"));
        off.enable_dhcp = false;
        let s = vec![pd.clone(), off.clone()];
        assert_eq!(default_route(&s, IpVersion::V6), None);
        let s = vec![pd, off, subnet("s3", "fd02::/64", Some("fd02::1"))];
        assert_eq!(default_route(&s, IpVersion::V6), gw("fd02::1", false));
    }

    #[test]
    fn first_subnet_with_gateway_wins() {
        let s = vec![
            subnet("s1", "10.0.0.0/24", None),
            subnet("s2", "10.1.0.0/24", Some("10.1.0.1")),
            subnet("s3", "10.2.0.0/24", Some("10.2.0.1")),
            subnet("s4", "fd00::/64", Some("fd00::1")),
        ];
        assert_eq!(default_route(&s, IpVersion::V4), gw("10.1.0.1", false));
        assert_eq!(default_route(&s, IpVersion::V6), gw("fd00::1", false));
    }

    #[test]
    fn ipv6_prefix_rules() {
        let s = vec![subnet("s1", "fd00::/127", Some("fd00::1"))];
        assert_eq!(default_route(&s, IpVersion::V6), None);
        let s = vec![subnet("s1", "::/0", Some("fd00::1"))];
        assert_eq!(default_route(&s, IpVersion::V6), None);
        // Stateful DHCPv6 on a /80 is fine; SLAAC or stateless on a non-/64 is not.
        let mut stateful = subnet("s1", "fd00::/80", Some("fd00::1"));
        stateful.ipv6_address_mode = Some(Ipv6Mode::Dhcpv6Stateful);
        assert_eq!(
            default_route(std::slice::from_ref(&stateful), IpVersion::V6),
            gw("fd00::1", false)
        );
        let mut slaac = stateful.clone();
        slaac.ipv6_address_mode = Some(Ipv6Mode::Slaac);
        assert_eq!(default_route(&[slaac], IpVersion::V6), None);
        let mut stateless_ra = stateful.clone();
        stateless_ra.ipv6_ra_mode = Some(Ipv6Mode::Dhcpv6Stateless);
        assert_eq!(default_route(&[stateless_ra.clone()], IpVersion::V6), None);
        // Skipping moves on to the next qualifying subnet.
        let s = vec![stateless_ra, subnet("s2", "fd01::/64", Some("fd01::1"))];
        assert_eq!(default_route(&s, IpVersion::V6), gw("fd01::1", false));
    }

    #[test]
    fn names() {
        let port = "a1b2c3d4-e5f6-0000-1111-222233334444";
        let net = "0f0e0d0c-0b0a-0908-0706-050403020100";
        assert_eq!(tap_name(port), "tapa1b2c3d4-e5");
        assert_eq!(ns_ifname(port), "ns-a1b2c3d4-e5");
        assert_eq!(bridge_name("brq{network_id}", net), "brq0f0e0d0c-0b");
        assert_eq!(bridge_name("br-dhcp", net), "br-dhcp");
        assert_eq!(namespace_name(net), format!("qdhcp-{net}"));
        assert_eq!(tap_name("short"), "tapshort");
    }
}
