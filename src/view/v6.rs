//! `NetworkView6`: everything needed to answer DHCPv6 for one network, precomputed with the
//! network's [`crate::view::NetworkView`] so that a packet costs a hash lookup plus copying
//! pre-encoded option bytes.
//!
//! What Neutron's dnsmasq driver configures for IPv6 (reference §9.3, §9.6, §9.7):
//! - served subnets: DHCP-enabled IPv6 subnets in `dhcpv6-stateful` or `dhcpv6-stateless` address
//!   mode, or with both modes unset (stateful), and a prefix of at least /64; SLAAC (or only
//!   `ipv6_ra_mode` set) and shorter prefixes get nothing;
//! - addresses (IA_NA) only on stateful subnets: one binding per (port, fixed IPv6 address);
//! - options per subnet (DNS servers 23 with Neutron's three-way rule, domain search 24 from
//!   `dns_domain`) and per port (`extra_dhcp_opts` with `ip_version: 6`, emitted only when the
//!   port has an IPv6 address), merged the way dnsmasq's tag precedence merges them, with and
//!   without the `ipxe6` tag (user class `iPXE`).
//!
//! Clients are recognised by DUID when the port configures a `client-id` (dnsmasq's `id:`), else
//! by MAC address (from the DUID, the link layer or a relay). The addresses belong to the MAC,
//! so a client that changes its DUID keeps its port's addresses.
//!
//! The server DUID is a DUID-LL built from the MAC of our DHCP port (RFC 8415 §11.4). Neutron
//! keeps that port (and its MAC) across agent restarts, so the DUID is stable without any state
//! on disk, and two agents serving one network have different DUIDs, as two dnsmasqs would.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use ipnetwork::IpNetwork;

use super::client::{lease_secs, port_client_id, INFINITE};
use super::multimap::Multimap;
use crate::codec::options::{self, TagRef};
use crate::codec::options6::{self, code6, Encoded6, ParsedOpt6};
use crate::config::ServeConfig;
use crate::model::{IpVersion, Ipv6Mode, MacAddr, Network, Port, Subnet, OWNER_DHCP};

mod update;
pub(crate) use update::add_port;

/// DUID type 3 (DUID-LL) with hardware type 1 (Ethernet), RFC 8415 §11.4.
pub const DUID_LL_ETHERNET: [u8; 4] = [0, 3, 0, 1];

/// A DHCPv6 server DUID: ours (a DUID-LL of the DHCP port's MAC) or one taken over from the
/// dnsmasq that served the network before (usually a 14-byte DUID-LLT), so a client's Renew,
/// which names the server it leased from, is still answered after a migration. Inline and
/// `Copy` so a view carries it without an allocation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ServerDuid {
    len: u8,
    bytes: [u8; ServerDuid::MAX],
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DuidError {
    #[error("a DUID is {min} to {max} bytes (a 2-byte type and an identifier), not {0}", min = ServerDuid::MIN, max = ServerDuid::MAX)]
    Length(usize),
    #[error("not a DUID in hex pairs separated by colons: {0:?}")]
    Syntax(String),
}

impl ServerDuid {
    /// RFC 8415 §11.1 allows up to 130 bytes; every DUID a server generates (LLT 14, EN ~20,
    /// LL 10, UUID 18) fits in 20, the bound kept inline.
    pub const MAX: usize = 20;
    /// A type code and at least one byte of identifier.
    pub const MIN: usize = 3;

    pub fn new(bytes: &[u8]) -> Result<ServerDuid, DuidError> {
        if !(Self::MIN..=Self::MAX).contains(&bytes.len()) {
            return Err(DuidError::Length(bytes.len()));
        }
        let mut d = ServerDuid {
            len: bytes.len() as u8,
            bytes: [0; Self::MAX],
        };
        d.bytes[..bytes.len()].copy_from_slice(bytes);
        Ok(d)
    }

    /// The DUID-LL (Ethernet) of a MAC address.
    pub fn from_mac(mac: MacAddr) -> ServerDuid {
        let mut bytes = [0; Self::MAX];
        bytes[..4].copy_from_slice(&DUID_LL_ETHERNET);
        bytes[4..10].copy_from_slice(&mac.0);
        ServerDuid { len: 10, bytes }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// dnsmasq's lease-file notation (`00:01:00:01:...`), which our `duid` file uses too.
impl std::str::FromStr for ServerDuid {
    type Err = DuidError;

    fn from_str(s: &str) -> Result<ServerDuid, DuidError> {
        let bad = || DuidError::Syntax(s.chars().take(80).collect());
        let mut buf = [0u8; Self::MAX];
        let mut n = 0;
        for pair in s.trim().split(':') {
            if pair.len() != 2 {
                return Err(bad());
            }
            let b = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
            if n == Self::MAX {
                return Err(DuidError::Length(s.trim().split(':').count()));
            }
            buf[n] = b;
            n += 1;
        }
        ServerDuid::new(&buf[..n])
    }
}

impl std::fmt::Display for ServerDuid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, b) in self.as_bytes().iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for ServerDuid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerDuid({self})")
    }
}

/// One pre-encoded DHCPv6 option of an option set; the data lives in the view's arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OptEntry6 {
    pub code: u16,
    start: u32,
    len: u16,
}

/// The resolved options for one client class (a subnet, or a port on a subnet, with or without
/// the `ipxe6` tag); entries sorted by code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OptionSet6 {
    entries_start: u32,
    entries_len: u32,
}

/// A served IPv6 subnet (a dnsmasq `dhcp-range=...,static,<prefix>`).
#[derive(Clone, Debug)]
pub(crate) struct SubnetView6 {
    pub id: String,
    network: u128,
    mask: u128,
    /// Our address on the subnet: the default DNS server for its clients.
    pub server_ip: Option<Ipv6Addr>,
    /// We have an address on the subnet, so its clients are on our link; otherwise (a routed
    /// network's other segments) only relayed requests are answered for it.
    pub direct: bool,
    /// `dhcpv6-stateful` (or both modes unset): addresses are leased.
    pub stateful: bool,
    /// Options for clients without port options.
    pub set: u32,
}

impl SubnetView6 {
    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        u128::from(ip) & self.mask == self.network
    }
}

/// One (port, IPv6 address on a stateful subnet).
#[derive(Clone, Debug)]
pub(crate) struct Binding6 {
    pub ip: Ipv6Addr,
    pub subnet: u32,
    /// Host name (first label) for the client FQDN option, if legal.
    hostname: Option<(u32, u8)>,
}

/// The option sets of a port on one served subnet, without and with the `ipxe6` tag.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClientSubnet {
    pub subnet: u32,
    pub sets: [u32; 2],
}

/// A port with at least one address on a served IPv6 subnet.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Client6 {
    /// The port's MAC (for logs).
    pub mac: MacAddr,
    bindings: (u32, u32),
    subnets: (u32, u32),
}

/// The client a port contributed, so that an update can take it out again.
#[derive(Clone, Debug)]
struct Slot6 {
    /// As `PortSlot::port` in [`crate::view`]: the address of the port's `Arc`.
    port: usize,
    client: u32,
    duid: Option<Box<[u8]>>,
}

/// Everything needed to answer DHCPv6 for one network. Immutable once built; a port change
/// makes a modified copy (see [`crate::view::NetworkView::update`]).
#[derive(Clone, Debug, Default)]
pub struct NetworkView6 {
    server_duid: Option<ServerDuid>,
    subnets: Vec<SubnetView6>,
    clients: Vec<Client6>,
    bindings: Vec<Binding6>,
    client_subnets: Vec<ClientSubnet>,
    by_mac: Multimap<MacAddr>,
    by_duid: Multimap<Box<[u8]>>,
    sets: Vec<OptionSet6>,
    entries: Vec<OptEntry6>,
    arena: Vec<u8>,
    lease_secs: u32,
    refresh_secs: u32,
    renewal_secs: Option<u32>,
    rebinding_secs: Option<u32>,
    domain: Option<(u32, u8)>,
    fallback_ip: Option<Ipv6Addr>,
    /// Per-subnet option layers (parallel to `subnets`), to merge an added port's options.
    layers: Vec<Layer6>,
    /// Ports that have a client, and the clients and bindings of removed ones (still in
    /// `clients`/`bindings` but unreachable from the maps).
    slots: Vec<Slot6>,
    dead_clients: u32,
    dead_bindings: u32,
    /// MACs of the network's VM ports ([`is_vm_port_owner`]), with how many ports have each;
    /// kept whether or not IPv6 is served, for both families' relay checks.
    vm_macs: HashMap<MacAddr, u32>,
}

/// Whether a port is a VM's (any tenant-controlled device: an instance, a bare-metal node, a
/// port not yet bound) rather than one of Neutron's own (`network:*`: DHCP, routers, ...).
pub(crate) fn is_vm_port_owner(device_owner: &str) -> bool {
    !device_owner.starts_with("network:")
}

impl NetworkView6 {
    /// Precomputes the DHCPv6 side of a network. Never fails: an invalid extra_dhcp_opt is
    /// logged (naming network, port and option) and skipped.
    pub fn build(net: &Network, own_dhcp_port_id: &str, cfg: &ServeConfig) -> NetworkView6 {
        Builder6::new(net, own_dhcp_port_id, cfg).build()
    }

    /// Our DUID (DUID-LL from the DHCP port's MAC, or the one the agent persisted under
    /// `state_path`); `None` when our port is unknown, in which case nothing is answered.
    pub fn server_duid(&self) -> Option<&[u8]> {
        self.server_duid.as_ref().map(ServerDuid::as_bytes)
    }

    /// Replaces the derived DUID with one persisted by the agent, so the server identity
    /// survives a new DHCP port MAC. Ignored while our port is unknown (nothing is served).
    pub(crate) fn pin_server_duid(&mut self, duid: ServerDuid) {
        if self.server_duid.is_some() {
            self.server_duid = Some(duid);
        }
    }

    /// Whether there is anything to serve: a DUID and at least one served subnet.
    pub fn is_served(&self) -> bool {
        self.server_duid.is_some() && !self.subnets.is_empty()
    }

    /// Number of served IPv6 subnets (stateful and stateless).
    pub fn subnet_count(&self) -> usize {
        self.subnets.len()
    }

    /// Number of (port, IPv6 address on a stateful subnet) bindings.
    pub fn binding_count(&self) -> usize {
        self.bindings.len() - self.dead_bindings as usize
    }

    /// Whether a MAC is a VM port's on this network (such a MAC may not relay DHCP: its
    /// frames are the VM's). Not an allocation, not a lock: a hash lookup.
    pub fn is_vm_port(&self, mac: &MacAddr) -> bool {
        self.vm_macs.contains_key(mac)
    }

    /// Counts a port in or out of [`NetworkView6::is_vm_port`].
    pub(crate) fn note_vm_port(&mut self, port: &Port, present: bool) {
        if !port.wants_dhcp() || !is_vm_port_owner(&port.device_owner) {
            return;
        }
        if present {
            *self.vm_macs.entry(port.mac_address).or_insert(0) += 1;
        } else if let Some(n) = self.vm_macs.get_mut(&port.mac_address) {
            *n -= 1;
            if *n == 0 {
                self.vm_macs.remove(&port.mac_address);
            }
        }
    }

    /// Whether a MAC belongs to a port with an address on a served IPv6 subnet.
    pub fn serves_mac(&self, mac: &MacAddr) -> bool {
        self.by_mac.contains_key(mac)
    }

    /// The addresses a MAC gets, in the order they are leased (for tests and logs).
    pub fn addresses_of(&self, mac: &MacAddr) -> Vec<Ipv6Addr> {
        self.by_mac
            .get(mac)
            .and_then(|v| v.first())
            .map(|&c| {
                self.bindings_of(self.client(c))
                    .iter()
                    .map(|b| b.ip)
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn lease_secs(&self) -> u32 {
        self.lease_secs
    }

    /// `information-refresh-time` sent to stateless clients (RFC 4242: at least 600 s).
    pub(crate) fn refresh_secs(&self) -> u32 {
        self.refresh_secs
    }

    /// Configured `dhcp_renewal_time` / `dhcp_rebinding_time` (0 = unset).
    pub(crate) fn configured_t1_t2(&self) -> (Option<u32>, Option<u32>) {
        (self.renewal_secs, self.rebinding_secs)
    }

    pub(crate) fn subnets(&self) -> &[SubnetView6] {
        &self.subnets
    }

    pub(crate) fn subnet(&self, idx: u32) -> &SubnetView6 {
        &self.subnets[idx as usize]
    }

    /// First served subnet containing `ip`.
    pub(crate) fn subnet_containing(&self, ip: Ipv6Addr) -> Option<u32> {
        self.subnets
            .iter()
            .position(|s| s.contains(ip))
            .map(|i| i as u32)
    }

    pub(crate) fn client(&self, idx: u32) -> &Client6 {
        &self.clients[idx as usize]
    }

    pub(crate) fn bindings_of(&self, c: &Client6) -> &[Binding6] {
        let (start, len) = (c.bindings.0 as usize, c.bindings.1 as usize);
        &self.bindings[start..start + len]
    }

    pub(crate) fn subnets_of(&self, c: &Client6) -> &[ClientSubnet] {
        let (start, len) = (c.subnets.0 as usize, c.subnets.1 as usize);
        &self.client_subnets[start..start + len]
    }

    pub(crate) fn set(&self, idx: u32) -> &OptionSet6 {
        &self.sets[idx as usize]
    }

    pub(crate) fn entries(&self, set: &OptionSet6) -> &[OptEntry6] {
        let start = set.entries_start as usize;
        &self.entries[start..start + set.entries_len as usize]
    }

    pub(crate) fn data(&self, e: &OptEntry6) -> &[u8] {
        let start = e.start as usize;
        &self.arena[start..start + usize::from(e.len)]
    }

    pub(crate) fn hostname(&self, b: &Binding6) -> Option<&[u8]> {
        b.hostname
            .map(|(s, l)| &self.arena[s as usize..s as usize + usize::from(l)])
    }

    /// `dns_domain` (validated, no trailing dot), for the client FQDN option.
    pub(crate) fn domain(&self) -> Option<&[u8]> {
        self.domain
            .map(|(s, l)| &self.arena[s as usize..s as usize + usize::from(l)])
    }

    /// dnsmasq's fallback address of the interface: the default DNS server when no subnet of
    /// the reply has an address of ours.
    pub(crate) fn fallback_ip(&self) -> Option<Ipv6Addr> {
        self.fallback_ip
    }

    /// dnsmasq's `find_config`: the first client whose configured client-id equals the DUID,
    /// else the first found by one of `macs` (in order), among those `accept` allows.
    pub(crate) fn find_client(
        &self,
        duid: Option<&[u8]>,
        macs: &[MacAddr],
        accept: impl Fn(&Client6) -> bool,
    ) -> Option<u32> {
        let pick = |list: Option<&[u32]>| -> Option<u32> {
            list?
                .iter()
                .copied()
                .find(|&i| accept(&self.clients[i as usize]))
        };
        if let Some(id) = duid {
            if let Some(found) = pick(self.by_duid.get(id)) {
                return Some(found);
            }
        }
        macs.iter().find_map(|m| pick(self.by_mac.get(m)))
    }
}

type Layer6 = BTreeMap<u16, Vec<u8>>;

struct Builder6<'a> {
    net: &'a Network,
    cfg: &'a ServeConfig,
    own_ips: Vec<(&'a str, Ipv6Addr)>,
    view: NetworkView6,
}

fn v6(ip: &IpAddr) -> Option<Ipv6Addr> {
    match ip {
        IpAddr::V6(a) => Some(*a),
        IpAddr::V4(_) => None,
    }
}

/// Whether dnsmasq gets a `dhcp-range` for this subnet (reference §9.1, §9.7), and whether it
/// leases addresses on it.
pub(crate) fn dhcpv6_mode(s: &Subnet) -> Option<bool> {
    if !s.enable_dhcp || s.ip_version != IpVersion::V6 || s.cidr.prefix() < 64 {
        return None;
    }
    match (s.ipv6_address_mode, s.ipv6_ra_mode) {
        (Some(Ipv6Mode::Dhcpv6Stateful), _) | (None, None) => Some(true),
        (Some(Ipv6Mode::Dhcpv6Stateless), _) => Some(false),
        _ => None,
    }
}

impl<'a> Builder6<'a> {
    fn new(net: &'a Network, own_dhcp_port_id: &str, cfg: &'a ServeConfig) -> Self {
        let own = net.port(own_dhcp_port_id);
        let own_ips = own_ips6(net, own_dhcp_port_id);
        let lease = lease_secs(cfg.dhcp_lease_duration);
        let configured = |v: u32| (v > 0).then_some(v);
        let view = NetworkView6 {
            server_duid: own.map(|p| ServerDuid::from_mac(p.mac_address)),
            lease_secs: lease,
            refresh_secs: if lease < 600 { 600 } else { lease },
            renewal_secs: configured(cfg.dhcp_renewal_time),
            rebinding_secs: configured(cfg.dhcp_rebinding_time),
            ..NetworkView6::default()
        };
        Builder6 {
            net,
            cfg,
            own_ips,
            view,
        }
    }

    /// A builder adding ports of `net` to `view`, a copy of a view built for the same network
    /// apart from those ports (which needs nothing of our own port).
    fn resume(net: &'a Network, cfg: &'a ServeConfig, view: NetworkView6) -> Self {
        Builder6 {
            net,
            cfg,
            own_ips: Vec::new(),
            view,
        }
    }

    fn build(mut self) -> NetworkView6 {
        if !self.cfg.dns_domain.is_empty() {
            if let Ok(d) = options::canonical_domain(&self.cfg.dns_domain) {
                self.view.domain = Some(self.push_name(d.as_bytes()));
            }
        }
        let net = self.net;
        self.view.vm_macs.reserve(net.ports.len());
        for port in &net.ports {
            self.view.note_vm_port(port, true);
        }
        let served: Vec<(&Subnet, bool)> = net
            .subnets
            .iter()
            .chain(&net.non_local_subnets)
            .filter_map(|s| Some((s, dhcpv6_mode(s)?)))
            .collect();
        self.view.fallback_ip = served
            .iter()
            .find_map(|(s, _)| self.own_ip_on(&s.id))
            .or_else(|| self.own_ips.first().map(|&(_, ip)| ip));
        for &(s, stateful) in &served {
            self.add_subnet(s, stateful);
        }
        if self.view.subnets.is_empty() {
            return self.view;
        }
        if self.view.server_duid.is_none() {
            tracing::warn!(
                network = %self.net.id,
                "own DHCP port not found in network: DHCPv6 will not be served"
            );
        }
        for port in net.ports.iter().filter(|p| p.wants_dhcp()) {
            self.add_port(port);
        }
        self.view
    }

    fn own_ip_on(&self, subnet_id: &str) -> Option<Ipv6Addr> {
        self.own_ips
            .iter()
            .find(|(sid, _)| *sid == subnet_id)
            .map(|&(_, ip)| ip)
    }

    fn push_bytes(&mut self, data: &[u8]) -> (u32, u16) {
        let start = self.view.arena.len() as u32;
        let len = data.len().min(usize::from(u16::MAX));
        self.view.arena.extend_from_slice(&data[..len]);
        (start, len as u16)
    }

    /// Names are at most 253 bytes (validated), so their length fits a byte.
    fn push_name(&mut self, data: &[u8]) -> (u32, u8) {
        let (start, len) = self.push_bytes(&data[..data.len().min(255)]);
        (start, len as u8)
    }

    fn add_subnet(&mut self, s: &Subnet, stateful: bool) {
        let IpNetwork::V6(cidr) = s.cidr else { return };
        if self.view.subnets.iter().any(|v| v.id == s.id) {
            return;
        }
        let server_ip = self.own_ip_on(&s.id);
        let layer = self.subnet_layer(s, server_ip.or(self.view.fallback_ip));
        let set = self.push_set(&layer);
        let mask = u128::from(cidr.mask());
        self.view.subnets.push(SubnetView6 {
            id: s.id.clone(),
            network: u128::from(cidr.ip()) & mask,
            mask,
            server_ip,
            direct: server_ip.is_some(),
            stateful,
            set,
        });
        self.view.layers.push(layer);
    }

    /// The `tag:subnet-<id>` option6 lines Neutron writes for one IPv6 subnet.
    fn subnet_layer(&self, s: &Subnet, server: Option<Ipv6Addr>) -> Layer6 {
        let mut layer = Layer6::new();
        if let Some(dns) = self.dns_servers(s) {
            layer.insert(code6::DNS, dns.resolve(code6::DNS, server));
        }
        if !self.cfg.dns_domain.is_empty() {
            match options6::domain_search(&self.cfg.dns_domain) {
                Ok(d) => {
                    layer.insert(code6::DOMAIN_SEARCH, d);
                }
                Err(e) => tracing::warn!(
                    network = %self.net.id, subnet = %s.id, error = %e,
                    "invalid dns_domain: no DHCPv6 domain-search option"
                ),
            }
        }
        layer
    }

    /// Neutron's three-way DNS rule for IPv6: explicit list; `["::"]` = an empty option (no DNS
    /// servers); empty = all `network:dhcp` port addresses when there are several, else no line
    /// (dnsmasq then sends its own address).
    fn dns_servers(&self, s: &Subnet) -> Option<Encoded6> {
        let list = |ips: Vec<Ipv6Addr>| {
            Some(Encoded6 {
                data: ips.iter().flat_map(|ip| ip.octets()).collect(),
                addrs: true,
            })
        };
        if !s.dns_nameservers.is_empty() {
            if s.dns_nameservers == [IpAddr::V6(Ipv6Addr::UNSPECIFIED)] {
                return Some(Encoded6::default());
            }
            return list(s.dns_nameservers.iter().filter_map(v6).collect());
        }
        let dhcp_ips: Vec<Ipv6Addr> = self
            .net
            .ports
            .iter()
            .filter(|p| p.device_owner == OWNER_DHCP)
            .flat_map(|p| &p.fixed_ips)
            .filter(|f| f.subnet_id == s.id)
            .filter_map(|f| v6(&f.ip_address))
            .collect();
        if dhcp_ips.len() > 1 {
            return list(dhcp_ips);
        }
        None
    }

    fn add_port(&mut self, port: &Arc<Port>) {
        let client_id = port_client_id(self.net, port).map(Vec::into_boxed_slice);
        let opts = self.port_options(port);
        let bindings_start = self.view.bindings.len() as u32;
        let subnets_start = self.view.client_subnets.len() as u32;
        for fixed in &port.fixed_ips {
            let Some(ip) = v6(&fixed.ip_address) else {
                continue;
            };
            let Some(subnet) = self
                .view
                .subnets
                .iter()
                .position(|s| s.id == fixed.subnet_id)
            else {
                continue;
            };
            let seen = self.view.client_subnets[subnets_start as usize..]
                .iter()
                .any(|cs| cs.subnet == subnet as u32);
            if !seen {
                let sets = self.port_sets(port, subnet, &opts);
                self.view.client_subnets.push(ClientSubnet {
                    subnet: subnet as u32,
                    sets,
                });
            }
            if self.view.subnets[subnet].stateful {
                let hostname =
                    port_hostname(port, IpAddr::V6(ip)).map(|h| self.push_name(h.as_bytes()));
                self.view.bindings.push(Binding6 {
                    ip,
                    subnet: subnet as u32,
                    hostname,
                });
            }
        }
        let subnets_len = self.view.client_subnets.len() as u32 - subnets_start;
        if subnets_len == 0 {
            return;
        }
        let idx = self.view.clients.len() as u32;
        self.view.clients.push(Client6 {
            mac: port.mac_address,
            bindings: (
                bindings_start,
                self.view.bindings.len() as u32 - bindings_start,
            ),
            subnets: (subnets_start, subnets_len),
        });
        self.view.by_mac.push(port.mac_address, idx);
        if let Some(id) = &client_id {
            self.view.by_duid.push(id.clone(), idx);
        }
        self.view.slots.push(Slot6 {
            port: Arc::as_ptr(port) as usize,
            client: idx,
            duid: client_id,
        });
    }

    /// The port's IPv6 extra options, parsed; Neutron only emits them when the port has an IPv6
    /// address. Invalid ones are logged and dropped.
    fn port_options(&self, port: &Port) -> Vec<ParsedOpt6> {
        if !port.fixed_ips.iter().any(|f| f.ip_address.is_ipv6()) {
            return Vec::new();
        }
        port.extra_dhcp_opts
            .iter()
            .filter(|o| o.ip_version == IpVersion::V6 && !options::is_client_id_name(&o.opt_name))
            .filter_map(|o| {
                options6::parse_extra_opt6(&o.opt_name, o.opt_value.as_deref())
                    .map_err(|e| {
                        tracing::warn!(
                            network = %self.net.id, port = %port.id, option = %o.opt_name,
                            error = %e, "invalid IPv6 extra_dhcp_opt; skipped"
                        );
                    })
                    .ok()
            })
            .collect()
    }

    /// Option sets of a port on one subnet: the subnet's when the port has no IPv6 options,
    /// else the subnet layer overridden by the port's options that apply without / with `ipxe6`.
    fn port_sets(&mut self, port: &Port, subnet: usize, opts: &[ParsedOpt6]) -> [u32; 2] {
        let shared = self.view.subnets[subnet].set;
        if opts.is_empty() {
            return [shared, shared];
        }
        let server = self.view.subnets[subnet]
            .server_ip
            .or(self.view.fallback_ip);
        let subnet_id = self.view.subnets[subnet].id.clone();
        let layers = [false, true].map(|ipxe6| {
            let mut layer = self.view.layers[subnet].clone();
            for o in opts {
                if tags_hold6(&o.tags, &port.id, &subnet_id, ipxe6) {
                    layer.insert(o.code, o.value.resolve(o.code, server));
                }
            }
            layer
        });
        let plain = self.push_set(&layers[0]);
        if layers[0] == layers[1] {
            [plain, plain]
        } else {
            [plain, self.push_set(&layers[1])]
        }
    }

    fn push_set(&mut self, layer: &Layer6) -> u32 {
        let entries_start = self.view.entries.len() as u32;
        for (&code, data) in layer {
            let (start, len) = self.push_bytes(data);
            self.view.entries.push(OptEntry6 { code, start, len });
        }
        self.view.sets.push(OptionSet6 {
            entries_start,
            entries_len: self.view.entries.len() as u32 - entries_start,
        });
        self.view.sets.len() as u32 - 1
    }
}

/// Our DHCP port's IPv6 addresses by subnet id (none when the port is not in the network).
fn own_ips6<'a>(net: &'a Network, own_dhcp_port_id: &str) -> Vec<(&'a str, Ipv6Addr)> {
    net.port(own_dhcp_port_id)
        .map(|p| {
            p.fixed_ips
                .iter()
                .filter_map(|f| Some((f.subnet_id.as_str(), v6(&f.ip_address)?)))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether all tags of a port option hold for a DHCPv6 client. dnsmasq sets `dhcpv6` on every
/// DHCPv6 request, `known` for configured hosts, `ipxe6` for user class `iPXE`, and the port's
/// and subnet's tags; `ipxe` (DHCPv4 option 175) and any other tag never hold.
fn tags_hold6(tags: &[TagRef], port_id: &str, subnet_id: &str, ipxe6: bool) -> bool {
    tags.iter().all(|t| {
        let set = match t.name.as_str() {
            "ipxe6" => ipxe6,
            "dhcpv6" | "known" => true,
            name => {
                name.strip_prefix("port-") == Some(port_id)
                    || name.strip_prefix("subnet-") == Some(subnet_id)
            }
        };
        set != t.negated
    })
}

/// The host part of the port's name for `ip` (reference §9.5): from `dns_assignment` when the
/// server sent it, else `host-` + the address with `.`/`:` replaced by `-`. `None` if not a legal
/// host name.
pub(crate) fn port_hostname(port: &Port, ip: IpAddr) -> Option<String> {
    let assigned = port
        .dns_assignment
        .iter()
        .find(|d| d.ip_address == ip)
        .map(|d| {
            if d.fqdn.is_empty() {
                d.hostname.as_str()
            } else {
                d.fqdn.as_str()
            }
        })
        .and_then(|name| name.split('.').next())
        .filter(|h| !h.is_empty());
    let host = match assigned {
        Some(h) => h.to_owned(),
        None => format!("host-{}", ip.to_string().replace(['.', ':'], "-")),
    };
    let legal = host.len() <= 63
        && host
            .bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_alphanumeric() || (i > 0 && (b == b'-' || b == b'_')));
    legal.then_some(host)
}

/// Lifetimes and renewal times for one IA, as dnsmasq's `calculate_times`/`end_ia` compute them.
pub(crate) fn requested_lifetimes(lease: u32, req_pref: u32, req_valid: u32) -> (u32, u32) {
    let (mut pref, mut valid) = (lease, lease);
    // RFC 8415 §18.3.2: a client's lifetimes are ignored when preferred > valid.
    if req_pref <= req_valid {
        if req_pref != 0 {
            pref = pref.min(req_pref.max(120));
        }
        if req_valid != 0 {
            valid = valid.min(req_valid.max(120));
        }
    }
    (pref, valid)
}

/// T1/T2 of an IA whose shortest lifetime is `min_time`: half and 7/8 of it (dnsmasq), or the
/// configured `dhcp_renewal_time`/`dhcp_rebinding_time` when shorter, as for DHCPv4.
pub(crate) fn renewal_times(min_time: u32, configured: (Option<u32>, Option<u32>)) -> (u32, u32) {
    if min_time == INFINITE {
        return (INFINITE, INFINITE);
    }
    let valid = |v: Option<u32>| v.filter(|&h| h < min_time && h > 2);
    let mut t1 = valid(configured.0).unwrap_or(min_time / 2);
    let t2 = valid(configured.1).unwrap_or(min_time / 8 * 7);
    if t2 <= t1 {
        t1 = t2.saturating_sub(1);
    }
    (t1, t2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn net(subnets: serde_json::Value, ports: serde_json::Value) -> Network {
        Network::from_json(&json!({"id": "n6", "subnets": subnets, "ports": ports})).unwrap()
    }

    fn sub(id: &str, cidr: &str, addr: Option<&str>, ra: Option<&str>) -> serde_json::Value {
        json!({"id": id, "ip_version": 6, "cidr": cidr, "gateway_ip": null,
               "ipv6_address_mode": addr, "ipv6_ra_mode": ra})
    }

    #[test]
    fn which_subnets_are_served_and_how() {
        let n = net(
            json!([
                sub("a", "fd00:a::/64", Some("dhcpv6-stateful"), None),
                sub(
                    "b",
                    "fd00:b::/64",
                    Some("dhcpv6-stateless"),
                    Some("dhcpv6-stateless")
                ),
                sub("c", "fd00:c::/64", None, None),
                sub("d", "fd00:d::/64", Some("slaac"), Some("slaac")),
                sub("e", "fd00:e::/64", None, Some("slaac")),
                sub("f", "fd00:f::/48", Some("dhcpv6-stateful"), None),
                sub("g", "fd00:1::/120", Some("dhcpv6-stateful"), None),
            ]),
            json!([]),
        );
        let modes: Vec<(&str, Option<bool>)> = n
            .subnets
            .iter()
            .map(|s| (s.id.as_str(), dhcpv6_mode(s)))
            .collect();
        assert_eq!(
            modes,
            vec![
                ("a", Some(true)),
                ("b", Some(false)),
                ("c", Some(true)),
                ("d", None),
                ("e", None),
                ("f", None),
                ("g", Some(true)),
            ]
        );
    }

    #[test]
    fn duid_is_derived_from_our_port_mac() {
        let n = net(
            json!([sub("a", "fd00:a::/64", Some("dhcpv6-stateful"), None)]),
            json!([{"id": "dhcp", "mac_address": "fa:16:3e:00:00:02", "device_owner": "network:dhcp",
                    "fixed_ips": [{"subnet_id": "a", "ip_address": "fd00:a::2"}]}]),
        );
        let v = NetworkView6::build(&n, "dhcp", &ServeConfig::default());
        assert_eq!(
            v.server_duid().unwrap(),
            &[0, 3, 0, 1, 0xfa, 0x16, 0x3e, 0, 0, 2]
        );
        assert!(v.is_served());
        let v = NetworkView6::build(&n, "other", &ServeConfig::default());
        assert!(!v.is_served());
    }

    #[test]
    fn server_duid_text_round_trip_and_bounds() {
        let llt: ServerDuid = "00:01:00:01:27:da:58:97:fa:16:3e:6c:ad:c1".parse().unwrap();
        assert_eq!(llt.as_bytes().len(), 14);
        assert_eq!(llt.to_string(), "00:01:00:01:27:da:58:97:fa:16:3e:6c:ad:c1");
        let mac: MacAddr = "fa:16:3e:00:00:02".parse().unwrap();
        assert_eq!(
            ServerDuid::from_mac(mac).as_bytes(),
            &[0, 3, 0, 1, 0xfa, 0x16, 0x3e, 0, 0, 2]
        );
        assert_eq!("00:01".parse::<ServerDuid>(), Err(DuidError::Length(2)));
        let long = vec!["ab"; 21].join(":");
        assert_eq!(long.parse::<ServerDuid>(), Err(DuidError::Length(21)));
        assert!(matches!(
            "00:01:0g".parse::<ServerDuid>(),
            Err(DuidError::Syntax(_))
        ));
        assert!(matches!(
            "0001:02".parse::<ServerDuid>(),
            Err(DuidError::Syntax(_))
        ));
        assert!(matches!(
            "".parse::<ServerDuid>(),
            Err(DuidError::Syntax(_))
        ));
    }

    #[test]
    fn pinned_duid_of_any_length_is_served() {
        let n = net(
            json!([sub("a", "fd00:a::/64", Some("dhcpv6-stateful"), None)]),
            json!([{"id": "dhcp", "mac_address": "fa:16:3e:00:00:02", "device_owner": "network:dhcp",
                    "fixed_ips": [{"subnet_id": "a", "ip_address": "fd00:a::2"}]}]),
        );
        let mut v = NetworkView6::build(&n, "dhcp", &ServeConfig::default());
        let llt: ServerDuid = "00:01:00:01:27:da:58:97:fa:16:3e:6c:ad:c1".parse().unwrap();
        v.pin_server_duid(llt);
        assert_eq!(v.server_duid(), Some(llt.as_bytes()));
    }

    #[test]
    fn hostnames_for_ipv6() {
        let p: Port = serde_json::from_value(json!({
            "id": "p", "mac_address": "fa:16:3e:00:00:05",
            "fixed_ips": [{"subnet_id": "a", "ip_address": "fdca:3ba5:a17a:4ba3::2"}]
        }))
        .unwrap();
        let ip: IpAddr = "fdca:3ba5:a17a:4ba3::2".parse().unwrap();
        assert_eq!(
            port_hostname(&p, ip).as_deref(),
            Some("host-fdca-3ba5-a17a-4ba3--2")
        );
    }

    #[test]
    fn lifetimes_and_t1_t2() {
        assert_eq!(requested_lifetimes(3600, 0, 0), (3600, 3600));
        assert_eq!(requested_lifetimes(3600, 1000, 2000), (1000, 2000));
        assert_eq!(requested_lifetimes(3600, 10, 20), (120, 120));
        assert_eq!(requested_lifetimes(3600, 2000, 1000), (3600, 3600));
        assert_eq!(requested_lifetimes(INFINITE, 0, 0), (INFINITE, INFINITE));
        assert_eq!(renewal_times(3600, (None, None)), (1800, 3150));
        assert_eq!(
            renewal_times(INFINITE, (Some(10), None)),
            (INFINITE, INFINITE)
        );
        assert_eq!(renewal_times(3600, (Some(600), Some(900))), (600, 900));
        assert_eq!(renewal_times(3600, (Some(5000), None)), (1800, 3150));
        assert_eq!(renewal_times(3600, (Some(3000), Some(900))), (899, 900));
    }
}
