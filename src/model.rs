//! Neutron resources as `get_network_info` returns them, parsed into types at the edge.
//!
//! Neutron sends far more fields than the agent reads; unknown fields are ignored. Every field we
//! do read is validated here, so the rest of the agent never sees a malformed MAC, CIDR or IP.
//! Errors name the network, the object (subnet/port id) and the field, because an operator
//! reading the log has to find the offending resource in Neutron.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Deserializer};

/// Device owners whose ports never get a DHCP host entry (`DHCP_CONFIG_NOT_REQUIRED_OWNERS`).
pub const EXCLUDED_OWNERS: [&str; 4] = [
    "network:router_ha_interface",
    "network:floatingip",
    "network:dhcp",
    "network:distributed",
];
/// The device owner of DHCP ports (ours and other agents').
pub const OWNER_DHCP: &str = "network:dhcp";
/// Router ports whose presence on a subnet's gateway IP makes the subnet "not isolated".
pub const ROUTER_INTERFACE_OWNERS: [&str; 3] = [
    "network:router_interface",
    "network:ha_router_replicated_interface",
    "network:router_interface_distributed",
];

/// A 48-bit Ethernet address, as Neutron's `mac_address` carries it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl FromStr for MacAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in out.iter_mut() {
            let p = parts
                .next()
                .ok_or_else(|| format!("invalid MAC address {s:?}"))?;
            if p.is_empty() || p.len() > 2 {
                return Err(format!("invalid MAC address {s:?}"));
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| format!("invalid MAC address {s:?}"))?;
        }
        if parts.next().is_some() {
            return Err(format!("invalid MAC address {s:?}"));
        }
        Ok(MacAddr(out))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// IP version of a subnet; Neutron only knows 4 and 6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpVersion {
    V4,
    V6,
}

impl<'de> Deserialize<'de> for IpVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u8::deserialize(d)? {
            4 => Ok(IpVersion::V4),
            6 => Ok(IpVersion::V6),
            v => Err(serde::de::Error::custom(format!(
                "ip_version must be 4 or 6, got {v}"
            ))),
        }
    }
}

/// `ipv6_address_mode` / `ipv6_ra_mode` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum Ipv6Mode {
    #[serde(rename = "slaac")]
    Slaac,
    #[serde(rename = "dhcpv6-stateful")]
    Dhcpv6Stateful,
    #[serde(rename = "dhcpv6-stateless")]
    Dhcpv6Stateless,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct HostRoute {
    #[serde(deserialize_with = "cidr")]
    pub destination: IpNetwork,
    pub nexthop: IpAddr,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Subnet {
    pub id: String,
    pub ip_version: IpVersion,
    #[serde(deserialize_with = "cidr")]
    pub cidr: IpNetwork,
    #[serde(default)]
    pub gateway_ip: Option<IpAddr>,
    #[serde(default = "yes")]
    pub enable_dhcp: bool,
    #[serde(default, deserialize_with = "nullable_vec")]
    pub dns_nameservers: Vec<IpAddr>,
    #[serde(default, deserialize_with = "nullable_vec")]
    pub host_routes: Vec<HostRoute>,
    #[serde(default)]
    pub ipv6_ra_mode: Option<Ipv6Mode>,
    #[serde(default)]
    pub ipv6_address_mode: Option<Ipv6Mode>,
    #[serde(default)]
    pub subnetpool_id: Option<String>,
    #[serde(default)]
    pub segment_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct FixedIp {
    pub subnet_id: String,
    pub ip_address: IpAddr,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ExtraDhcpOpt {
    pub opt_name: String,
    /// `null` and `""` both mean "send this option empty", i.e. suppress the subnet's value.
    #[serde(default)]
    pub opt_value: Option<String>,
    #[serde(default = "four", deserialize_with = "opt_ip_version")]
    pub ip_version: IpVersion,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct DnsAssignment {
    pub ip_address: IpAddr,
    pub hostname: String,
    pub fqdn: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Port {
    pub id: String,
    pub mac_address: MacAddr,
    #[serde(default, deserialize_with = "nullable_string")]
    pub device_id: String,
    #[serde(default, deserialize_with = "nullable_string")]
    pub device_owner: String,
    #[serde(default = "yes")]
    pub admin_state_up: bool,
    #[serde(default, deserialize_with = "nullable_vec")]
    pub fixed_ips: Vec<FixedIp>,
    #[serde(default, deserialize_with = "nullable_vec")]
    pub extra_dhcp_opts: Vec<ExtraDhcpOpt>,
    #[serde(default, deserialize_with = "nullable_vec")]
    pub dns_assignment: Vec<DnsAssignment>,
    #[serde(
        rename = "binding:host_id",
        default,
        deserialize_with = "nullable_string"
    )]
    pub binding_host_id: String,
    #[serde(default)]
    pub revision_number: Option<u64>,
}

impl Port {
    /// Whether dnsmasq would have written host entries for this port (reference §9.2).
    pub fn wants_dhcp(&self) -> bool {
        !EXCLUDED_OWNERS.contains(&self.device_owner.as_str())
    }
}

/// One network with everything the agent serves on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    pub id: String,
    pub admin_state_up: bool,
    /// `None` when Neutron reports 0 or no MTU: then option 26 is not sent.
    pub mtu: Option<u16>,
    /// Subnets sorted by id, as neutron-server sends them.
    pub subnets: Vec<Subnet>,
    pub non_local_subnets: Vec<Subnet>,
    /// Shared so that a reload or an event that touches one port copies and compares pointers,
    /// not every other port of the network (`Arc<Port>` equality checks the pointer first).
    pub ports: Vec<Arc<Port>>,
}

impl Network {
    pub fn namespace(&self) -> String {
        format!("qdhcp-{}", self.id)
    }

    pub fn subnet(&self, id: &str) -> Option<&Subnet> {
        self.subnets
            .iter()
            .chain(&self.non_local_subnets)
            .find(|s| s.id == id)
    }

    /// Neutron's `NetworkCache.put_port`: replaces the port with the same id, or appends it.
    pub fn put_port(&mut self, port: Port) {
        match self.ports.iter_mut().find(|p| p.id == port.id) {
            Some(p) => *p = Arc::new(port),
            None => self.ports.push(Arc::new(port)),
        }
    }

    pub fn port(&self, id: &str) -> Option<&Port> {
        self.ports.iter().find(|p| p.id == id).map(Arc::as_ref)
    }

    /// Admin up with at least one DHCP-enabled subnet: a network the agent serves.
    pub fn is_servable(&self) -> bool {
        self.admin_state_up && self.subnets.iter().any(|s| s.enable_dhcp)
    }
}

/// `oslo_utils.uuidutils.is_uuid_like`: 32 hex digits, optionally hyphenated 8-4-4-4-12. Every
/// Neutron resource id has this form; the agent accepts no other, because ids become file
/// names (`$state_path/dhcp/<network>`), namespace names and device names.
pub fn is_uuid_like(s: &str) -> bool {
    let bytes = s.as_bytes();
    match bytes.len() {
        32 => bytes.iter().all(u8::is_ascii_hexdigit),
        36 => bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        }),
        _ => false,
    }
}

/// A network id known to be a Neutron UUID ([`is_uuid_like`]): the only form of id from which
/// the agent builds paths and namespace names, so a `..` or `a/b` from a file or the broker
/// can never reach the file system or the kernel.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetworkId(String);

/// An id that is not a Neutron UUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} id {id:?} is not a UUID")]
pub struct InvalidId {
    pub kind: &'static str,
    pub id: String,
}

impl NetworkId {
    pub fn parse(s: &str) -> Result<NetworkId, InvalidId> {
        if is_uuid_like(s) {
            Ok(NetworkId(s.to_owned()))
        } else {
            Err(InvalidId {
                kind: "network",
                id: s.to_owned(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `qdhcp-<id>`.
    pub fn namespace(&self) -> String {
        format!("qdhcp-{}", self.0)
    }
}

impl fmt::Display for NetworkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NetworkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl AsRef<str> for NetworkId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The smallest MTU IPv6 works with (RFC 8200): below it the kernel removes IPv6 from a device.
pub const IPV6_MIN_MTU: u16 = 1280;

/// Neutron's network MTU: absent or 0 means unset; anything else must fit an interface.
fn checked_mtu(raw: Option<u32>) -> Result<Option<u16>, String> {
    match raw {
        None | Some(0) => Ok(None),
        Some(m) if (68..=65535).contains(&m) => Ok(Some(m as u16)),
        Some(m) => Err(format!("{m} is outside 68..=65535")),
    }
}

/// Subnets in id order, as neutron-server sends them.
fn sort_subnets(mut list: Vec<Subnet>) -> Vec<Subnet> {
    list.sort_by(|a, b| a.id.cmp(&b.id));
    list
}

/// A Neutron payload that could not be turned into a [`Network`].
#[derive(Debug, thiserror::Error)]
#[error("network {network}: {object}field {field}: {reason}")]
pub struct ModelError {
    pub network: String,
    /// `"port <id>: "`, `"subnet <id>: "` or empty for network-level fields.
    pub object: String,
    pub field: String,
    pub reason: String,
}

#[derive(Deserialize)]
struct RawNetwork {
    #[serde(default = "yes")]
    admin_state_up: bool,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default, deserialize_with = "nullable_vec")]
    subnets: Vec<serde_json::Value>,
    #[serde(default, deserialize_with = "nullable_vec")]
    non_local_subnets: Vec<serde_json::Value>,
    #[serde(default, deserialize_with = "nullable_vec")]
    ports: Vec<serde_json::Value>,
}

/// A network dict typed straight from JSON text, ports left to the caller (which parses them
/// one by one to know where each lies in the text).
#[derive(Deserialize)]
pub(crate) struct NetworkHead {
    id: String,
    #[serde(default = "yes")]
    admin_state_up: bool,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default, deserialize_with = "nullable_vec")]
    subnets: Vec<Subnet>,
    #[serde(default, deserialize_with = "nullable_vec")]
    non_local_subnets: Vec<Subnet>,
    #[serde(default)]
    #[allow(dead_code)]
    ports: serde::de::IgnoredAny,
}

impl Network {
    /// The fast path of [`Network::from_json`]: `None` whenever anything is off, and the caller
    /// then asks `from_json` for the precise error (or the verdict on what serde's derive
    /// rejects but `from_json` accepts, such as a repeated key).
    pub(crate) fn from_head(head: NetworkHead, ports: Vec<Arc<Port>>) -> Option<Network> {
        if head.id.is_empty() {
            return None;
        }
        let sorted = |list: Vec<Subnet>| {
            (!list.iter().any(|s| s.validate().is_err())).then(|| sort_subnets(list))
        };
        Some(Network {
            id: head.id,
            admin_state_up: head.admin_state_up,
            mtu: checked_mtu(head.mtu).ok()?,
            subnets: sorted(head.subnets)?,
            non_local_subnets: sorted(head.non_local_subnets)?,
            ports,
        })
    }

    /// Parses one network dict, validating every field the agent uses.
    ///
    /// Each subnet and port is parsed separately so the error can say which one is broken.
    pub fn from_json(value: &serde_json::Value) -> Result<Network, ModelError> {
        let id = match value.get("id").and_then(|v| v.as_str()) {
            Some(id) if !id.is_empty() => id.to_owned(),
            _ => {
                return Err(ModelError {
                    network: "<unknown>".into(),
                    object: String::new(),
                    field: "id".into(),
                    reason: "missing or not a string".into(),
                })
            }
        };
        let err = |object: String, e: serde_path_to_error::Error<serde_json::Error>| ModelError {
            network: id.clone(),
            object,
            field: e.path().to_string(),
            reason: e.inner().to_string(),
        };
        let raw: RawNetwork =
            serde_path_to_error::deserialize(value).map_err(|e| err(String::new(), e))?;
        let mtu = checked_mtu(raw.mtu).map_err(|reason| ModelError {
            network: id.clone(),
            object: String::new(),
            field: "mtu".into(),
            reason,
        })?;
        let parse_subnets = |list: &[serde_json::Value]| -> Result<Vec<Subnet>, ModelError> {
            let out: Vec<Subnet> = list
                .iter()
                .map(|v| {
                    let s: Subnet = serde_path_to_error::deserialize(v)
                        .map_err(|e| err(object_name("subnet", v), e))?;
                    s.validate().map_err(|(field, reason)| ModelError {
                        network: id.clone(),
                        object: format!("subnet {}: ", s.id),
                        field: field.into(),
                        reason,
                    })?;
                    Ok(s)
                })
                .collect::<Result<_, _>>()?;
            Ok(sort_subnets(out))
        };
        let subnets = parse_subnets(&raw.subnets)?;
        let non_local_subnets = parse_subnets(&raw.non_local_subnets)?;
        let ports = raw
            .ports
            .iter()
            .map(|v| {
                serde_path_to_error::deserialize::<_, Port>(v)
                    .map(Arc::new)
                    .map_err(|e| err(object_name("port", v), e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Network {
            id,
            admin_state_up: raw.admin_state_up,
            mtu,
            subnets,
            non_local_subnets,
            ports,
        })
    }
}

impl Network {
    /// Checks everything the agent derives host state from, before anything is changed on the
    /// host: the network, subnet and DHCP port ids are UUIDs, the subnets are sane (see
    /// [`Subnet::check`]) and every DHCP port's fixed IPs lie inside their subnets. VM ports are
    /// checked by [`Network::check_port`] (one bad VM port is refused on its own).
    pub fn check(&self) -> Result<NetworkId, ModelError> {
        let id = NetworkId::parse(&self.id).map_err(|e| self.error("", "id", e.to_string()))?;
        let mut seen = std::collections::HashSet::new();
        for s in self.subnets.iter().chain(&self.non_local_subnets) {
            let object = format!("subnet {}: ", s.id);
            if !is_uuid_like(&s.id) {
                return Err(self.error(&object, "id", "not a UUID".into()));
            }
            if !seen.insert(s.id.as_str()) {
                return Err(self.error(&object, "id", "appears more than once".into()));
            }
            s.check()
                .map_err(|(field, reason)| self.error(&object, field, reason))?;
        }
        // Below 1280 the device has no IPv6: an IPv6 subnet is then not served (a warning where
        // the plumbing is made), and a network with nothing else to serve is refused.
        let dhcp = |v: IpVersion| {
            self.subnets
                .iter()
                .any(|s| s.enable_dhcp && s.ip_version == v)
        };
        if let Some(mtu) = self.mtu.filter(|m| *m < IPV6_MIN_MTU) {
            if dhcp(IpVersion::V6) && !dhcp(IpVersion::V4) {
                return Err(self.error(
                    "",
                    "mtu",
                    format!("{mtu} is below 1280, the least IPv6 works with, and the network has no IPv4 subnet to serve"),
                ));
            }
        }
        for p in self.ports.iter().filter(|p| p.device_owner == OWNER_DHCP) {
            self.check_port(p)?;
            // The agent gives its device this MAC: the kernel refuses a multicast or zero one.
            if p.mac_address.0[0] & 1 != 0 || p.mac_address.0 == [0; 6] {
                return Err(self.error(
                    &format!("port {}: ", p.id),
                    "mac_address",
                    format!("{} is not a unicast address", p.mac_address),
                ));
            }
        }
        Ok(id)
    }

    /// A port's id is a UUID and each of its fixed IPs lies inside its subnet (same IP
    /// version, inside the CIDR). A fixed IP on a subnet the network does not list is not
    /// served (nor plumbed) anyway and is let through.
    pub fn check_port(&self, port: &Port) -> Result<(), ModelError> {
        let object = format!("port {}: ", port.id);
        if !is_uuid_like(&port.id) {
            return Err(self.error(&object, "id", "not a UUID".into()));
        }
        for (i, fip) in port.fixed_ips.iter().enumerate() {
            let Some(subnet) = self.subnet(&fip.subnet_id) else {
                continue;
            };
            if !subnet.cidr.contains(fip.ip_address) {
                return Err(self.error(
                    &object,
                    &format!("fixed_ips[{i}].ip_address"),
                    format!(
                        "{} is outside its subnet {} ({})",
                        fip.ip_address, subnet.id, subnet.cidr
                    ),
                ));
            }
        }
        Ok(())
    }

    /// [`Network::check`], then [`Network::check_port`] for the other ports: a VM port that
    /// fails is removed (and its error returned with the others), so one bad port never keeps
    /// a network's other ports from being served. `Err` refuses the whole network.
    pub fn validate(&mut self) -> Result<(NetworkId, Vec<ModelError>), ModelError> {
        let id = self.check()?;
        let mut refused = Vec::new();
        let bad: Vec<usize> = self
            .ports
            .iter()
            .enumerate()
            .filter_map(|(i, p)| match self.check_port(p) {
                Ok(()) => None,
                Err(e) => {
                    refused.push(e);
                    Some(i)
                }
            })
            .collect();
        for i in bad.into_iter().rev() {
            self.ports.remove(i);
        }
        Ok((id, refused))
    }

    fn error(&self, object: &str, field: &str, reason: String) -> ModelError {
        ModelError {
            network: self.id.clone(),
            object: object.to_owned(),
            field: field.to_owned(),
            reason,
        }
    }
}

impl Subnet {
    /// CIDR and gateway sanity, as Neutron enforces them when a subnet is created: no host
    /// bits in the CIDR, not a multicast range; a gateway of the subnet's IP version that is
    /// not unspecified, multicast, nor (inside the subnet) its network or IPv4 broadcast
    /// address; host routes of the subnet's IP version.
    fn check(&self) -> Result<(), (&'static str, String)> {
        self.validate()?;
        if self.cidr.ip() != self.cidr.network() {
            return Err(("cidr", format!("{} has host bits set", self.cidr)));
        }
        if self.cidr.network().is_multicast() {
            return Err(("cidr", format!("{} is a multicast range", self.cidr)));
        }
        if let Some(gw) = self.gateway_ip {
            let bad = if gw.is_unspecified() || gw.is_multicast() {
                Some("is not a unicast address")
            } else if self.cidr.contains(gw) && has_network_address(self.cidr) {
                let broadcast =
                    matches!(self.cidr, IpNetwork::V4(n) if IpAddr::V4(n.broadcast()) == gw);
                if gw == self.cidr.network() {
                    Some("is the subnet's network address")
                } else if broadcast {
                    Some("is the subnet's broadcast address")
                } else {
                    None
                }
            } else {
                None
            };
            if let Some(why) = bad {
                return Err(("gateway_ip", format!("{gw} {why}")));
            }
        }
        for (i, r) in self.host_routes.iter().enumerate() {
            if r.destination.is_ipv4() != self.cidr.is_ipv4()
                || r.nexthop.is_ipv4() != self.cidr.is_ipv4()
            {
                return Err((
                    "host_routes",
                    format!(
                        "route {i} ({} via {}) does not match ip_version",
                        r.destination, r.nexthop
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Whether a prefix has distinct network (and, for IPv4, broadcast) addresses: /31, /32, /127
/// and /128 have none.
fn has_network_address(cidr: IpNetwork) -> bool {
    match cidr {
        IpNetwork::V4(n) => n.prefix() < 31,
        IpNetwork::V6(n) => n.prefix() < 127,
    }
}

impl Subnet {
    fn validate(&self) -> Result<(), (&'static str, String)> {
        let v4 = self.ip_version == IpVersion::V4;
        if v4 != self.cidr.is_ipv4() {
            return Err(("cidr", format!("{} does not match ip_version", self.cidr)));
        }
        if let Some(gw) = self.gateway_ip {
            if gw.is_ipv4() != v4 {
                return Err(("gateway_ip", format!("{gw} does not match ip_version")));
            }
        }
        Ok(())
    }

    /// DHCPv4 subnets and DHCPv6 subnets that dnsmasq would have given a `--dhcp-range`.
    pub fn is_dhcp_v4(&self) -> bool {
        self.enable_dhcp && self.ip_version == IpVersion::V4
    }
}

fn object_name(kind: &str, v: &serde_json::Value) -> String {
    match v.get("id").and_then(|i| i.as_str()) {
        Some(id) => format!("{kind} {id}: "),
        None => format!("{kind} <no id>: "),
    }
}

fn yes() -> bool {
    true
}

fn four() -> IpVersion {
    IpVersion::V4
}

fn cidr<'de, D: Deserializer<'de>>(d: D) -> Result<IpNetwork, D::Error> {
    let s = String::deserialize(d)?;
    s.parse::<IpNetwork>()
        .map_err(|e| serde::de::Error::custom(format!("invalid CIDR {s:?}: {e}")))
}

/// Neutron sends `null` for some list fields; treat it as empty.
fn nullable_vec<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

fn nullable_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// `extra_dhcp_opts[].ip_version` may be `null` (meaning 4) or a number.
fn opt_ip_version<'de, D: Deserializer<'de>>(d: D) -> Result<IpVersion, D::Error> {
    match Option::<u8>::deserialize(d)? {
        None | Some(4) => Ok(IpVersion::V4),
        Some(6) => Ok(IpVersion::V6),
        Some(v) => Err(serde::de::Error::custom(format!(
            "ip_version must be 4 or 6, got {v}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn net(ports: serde_json::Value) -> serde_json::Value {
        json!({
            "id": "net-1", "mtu": 1450, "admin_state_up": true, "unknown_field": {"x": 1},
            "subnets": [{"id": "s1", "ip_version": 4, "cidr": "10.0.0.0/24",
                         "gateway_ip": "10.0.0.1", "enable_dhcp": true,
                         "dns_nameservers": [], "host_routes": [],
                         "ipv6_ra_mode": null, "ipv6_address_mode": null}],
            "ports": ports,
        })
    }

    #[test]
    fn parses_neutron_network_and_ignores_unknown_fields() {
        let v = net(json!([{
            "id": "p1", "mac_address": "fa:16:3e:12:34:56", "device_owner": "compute:nova",
            "device_id": "vm", "fixed_ips": [{"subnet_id": "s1", "ip_address": "10.0.0.5"}],
            "extra_dhcp_opts": [{"opt_name": "bootfile-name", "opt_value": "pxelinux.0", "ip_version": null}],
            "binding:host_id": "compute1", "security_groups": ["x"], "revision_number": 7
        }]));
        let n = Network::from_json(&v).unwrap();
        assert_eq!(n.mtu, Some(1450));
        assert_eq!(n.ports[0].mac_address.to_string(), "fa:16:3e:12:34:56");
        assert_eq!(n.ports[0].extra_dhcp_opts[0].ip_version, IpVersion::V4);
        assert_eq!(n.ports[0].binding_host_id, "compute1");
        assert_eq!(n.namespace(), "qdhcp-net-1");
    }

    #[test]
    fn bad_mac_is_rejected_naming_network_port_and_field() {
        let v = net(json!([{"id": "p9", "mac_address": "zz:16:3e:12:34:56"}]));
        let e = Network::from_json(&v).unwrap_err().to_string();
        assert!(e.contains("network net-1"), "{e}");
        assert!(e.contains("port p9"), "{e}");
        assert!(e.contains("mac_address"), "{e}");
    }

    #[test]
    fn bad_cidr_and_version_mismatch_are_rejected() {
        let mut v = net(json!([]));
        v["subnets"][0]["cidr"] = json!("10.0.0.0/33");
        let e = Network::from_json(&v).unwrap_err().to_string();
        assert!(e.contains("subnet s1") && e.contains("cidr"), "{e}");
        v["subnets"][0]["cidr"] = json!("fd00::/64");
        let e = Network::from_json(&v).unwrap_err().to_string();
        assert!(e.contains("does not match ip_version"), "{e}");
    }

    #[test]
    fn mtu_zero_means_none() {
        let mut v = net(json!([]));
        v["mtu"] = json!(0);
        assert_eq!(Network::from_json(&v).unwrap().mtu, None);
    }

    #[test]
    fn mac_parsing() {
        assert!("fa:16:3e:12:34".parse::<MacAddr>().is_err());
        assert!("fa:16:3e:12:34:56:78".parse::<MacAddr>().is_err());
        assert_eq!(
            "FA-16-3E-00-00-01".parse::<MacAddr>().unwrap().to_string(),
            "fa:16:3e:00:00:01"
        );
    }

    const NET: &str = "6f1a5d2e-9c3b-4e7a-8d21-3b5c7e9f0a11";
    const SUB: &str = "a1b2c3d4-1111-4a5b-9c6d-7e8f9a0b1c2d";
    const DHCP: &str = "0d4c6a1e-3b2f-4c8d-9e7a-1f2b3c4d5e6f";
    const VM: &str = "1e5d7b2f-4c3a-4d9e-8f1b-2a3c4d5e6f70";

    fn valid() -> serde_json::Value {
        json!({
            "id": NET, "mtu": 1450,
            "subnets": [{"id": SUB, "ip_version": 4, "cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.1"}],
            "ports": [
                {"id": DHCP, "mac_address": "fa:16:3e:00:00:02", "device_owner": "network:dhcp",
                 "fixed_ips": [{"subnet_id": SUB, "ip_address": "10.0.0.2"}]},
                {"id": VM, "mac_address": "fa:16:3e:00:00:03", "device_owner": "compute:nova",
                 "fixed_ips": [{"subnet_id": SUB, "ip_address": "10.0.0.3"}]}]
        })
    }

    fn verdict(v: &serde_json::Value) -> Result<usize, String> {
        let mut n = Network::from_json(v).map_err(|e| e.to_string())?;
        n.validate()
            .map(|(id, refused)| {
                assert_eq!(id.as_str(), n.id);
                refused.len()
            })
            .map_err(|e| e.to_string())
    }

    #[test]
    fn ids_must_be_uuids() {
        assert_eq!(verdict(&valid()), Ok(0));
        for bad in [
            "..",
            ".",
            "x/../../../y",
            "",
            "net-1",
            "6f1a5d2e-9c3b-4e7a-8d21-3b5c7e9f0a1/",
        ] {
            let mut v = valid();
            v["id"] = json!(bad);
            assert!(verdict(&v).is_err(), "network id {bad:?}");
            let mut v = valid();
            v["subnets"][0]["id"] = json!(bad);
            assert!(verdict(&v).is_err(), "subnet id {bad:?}");
            let mut v = valid();
            v["ports"][0]["id"] = json!(bad);
            let e = verdict(&v).unwrap_err();
            assert!(e.contains("port") && e.contains("not a UUID"), "{e}");
            // A VM port is refused alone.
            let mut v = valid();
            v["ports"][1]["id"] = json!(bad);
            assert_eq!(verdict(&v), Ok(1), "VM port id {bad:?}");
        }
        assert!(NetworkId::parse("0D4C6A1E3B2F4C8D9E7A1F2B3C4D5E6F").is_ok());
        assert_eq!(
            NetworkId::parse(NET).unwrap().namespace(),
            format!("qdhcp-{NET}")
        );
    }

    #[test]
    fn subnets_must_be_sane() {
        let bad = [
            ("cidr", json!("10.0.0.5/24"), "host bits"),
            ("cidr", json!("224.0.0.0/24"), "multicast"),
            ("gateway_ip", json!("10.0.0.0"), "network address"),
            ("gateway_ip", json!("10.0.0.255"), "broadcast"),
            ("gateway_ip", json!("0.0.0.0"), "unicast"),
            ("gateway_ip", json!("fd00::1"), "ip_version"),
        ];
        for (field, value, why) in bad {
            let mut v = valid();
            v["subnets"][0][field] = value;
            let e = verdict(&v).unwrap_err();
            assert!(e.contains(field) && e.contains(why), "{e}");
        }
        // MTU per IP version: IPv4 goes down to 68; IPv6 alone needs 1280.
        let mut v = valid();
        v["mtu"] = json!(68);
        assert_eq!(verdict(&v), Ok(0));
        v["subnets"][0]["ip_version"] = json!(6);
        v["subnets"][0]["cidr"] = json!("fd00::/64");
        v["subnets"][0]["gateway_ip"] = json!("fd00::1");
        v["ports"] = json!([]);
        let e = verdict(&v).unwrap_err();
        assert!(e.contains("mtu") && e.contains("below 1280"), "{e}");
        v["mtu"] = json!(1280);
        assert_eq!(verdict(&v), Ok(0));
        let mut v = valid();
        v["ports"][0]["mac_address"] = json!("01:00:5e:00:00:01");
        let e = verdict(&v).unwrap_err();
        assert!(e.contains("mac_address") && e.contains("unicast"), "{e}");
        // A gateway outside the subnet is Neutron's on-link case, and /31 has no network
        // or broadcast address.
        let mut v = valid();
        v["subnets"][0]["gateway_ip"] = json!("192.168.0.1");
        assert_eq!(verdict(&v), Ok(0));
        let mut v = valid();
        v["subnets"][0]["cidr"] = json!("10.0.0.0/31");
        v["subnets"][0]["gateway_ip"] = json!("10.0.0.0");
        v["ports"] = json!([]);
        assert_eq!(verdict(&v), Ok(0));
    }

    #[test]
    fn fixed_ips_must_lie_inside_their_subnet() {
        let mut v = valid();
        v["ports"][1]["fixed_ips"][0]["ip_address"] = json!("10.198.5.5");
        let mut n = Network::from_json(&v).unwrap();
        let (_, refused) = n.validate().unwrap();
        let e = refused[0].to_string();
        assert!(
            e.contains(VM) && e.contains("10.198.5.5 is outside its subnet"),
            "{e}"
        );
        assert_eq!(n.ports.len(), 1);
        let mut v = valid();
        v["ports"][0]["fixed_ips"][0]["ip_address"] = json!("fd00::2");
        let e = verdict(&v).unwrap_err();
        assert!(e.contains(DHCP) && e.contains("outside"), "{e}");
    }
}
