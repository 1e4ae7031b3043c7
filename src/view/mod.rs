//! `NetworkView`: everything needed to answer DHCPv4 for one network, precomputed once per
//! change so that a packet costs a hash lookup plus copying pre-encoded option bytes.
//!
//! This is the in-process equivalent of the files Neutron's dnsmasq driver writes (reference
//! §9.2–9.6): one binding per (port, fixed IPv4 on a DHCP-enabled IPv4 subnet) like the `host`
//! file, and per subnet/port option sets like the `opts` file, already merged the way dnsmasq's
//! tag precedence merges them (port options over subnet options over global options) and
//! already encoded in dnsmasq's wire format.
//!
//! Client matching follows dnsmasq's `find_config` for `mac,id:<client-id>,...` host lines: a
//! request carrying option 61 is first matched by client-id (also in dhcpcd's form with a
//! leading zero byte), and only then by MAC; a port with a client-id is therefore still found
//! by its MAC when the client sends another client-id or none.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use ipnetwork::IpNetwork;

use crate::codec::options::{self, code, Encoded, ParsedOpt};
use crate::config::ServeConfig;
use crate::model::{
    IpVersion, MacAddr, Network, Port, Subnet, OWNER_DHCP, ROUTER_INTERFACE_OWNERS,
};
use crate::view::v6::NetworkView6;
use multimap::Multimap;

pub mod cache;
mod client;
pub(crate) use client::quiet_client_id;
pub use client::INFINITE;
use client::{lease_secs, port_client_id};
pub(crate) mod multimap;
pub mod names;
#[cfg(test)]
mod tests_update;
pub(crate) mod update;
pub mod v6;

const METADATA_IP: &str = "169.254.169.254";
const OWNER_DISTRIBUTED: &str = "network:distributed";
const OVN_METADATA_PREFIX: &str = "ovnmeta";

/// One pre-encoded option of an option set; the data lives in the view's arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OptEntry {
    pub code: u8,
    /// Sent even when not in the client's parameter request list (dnsmasq `dhcp-option-force`,
    /// and the netmask/broadcast defaults).
    pub forced: bool,
    /// dnsmasq `DHOPT_STRING`: NUL-terminated for clients that NUL-terminate their hostname.
    pub string: bool,
    pub start: u32,
    pub len: u8,
}

/// The resolved options for one client class (a subnet, or a port on a subnet, with or
/// without the `ipxe` tag).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OptionSet {
    entries_start: u32,
    entries_len: u32,
    /// `server-ip-address`: overrides the BOOTP `siaddr` (default: the server's address).
    pub siaddr: Option<Ipv4Addr>,
    /// Configured T1/T2 (`dhcp_renewal_time`/`dhcp_rebinding_time` or a port option).
    pub t1: Option<u32>,
    pub t2: Option<u32>,
    /// Option 12 is configured (or suppressed), so the port's hostname is not sent.
    pub hostname_configured: bool,
}

/// A served IPv4 subnet (a dnsmasq `dhcp-range` with a known local address).
#[derive(Clone, Debug)]
pub(crate) struct SubnetView {
    pub id: String,
    network: u32,
    mask: u32,
    /// Our address on this subnet (DHCP server identifier, default DNS server, `siaddr`).
    pub server_ip: Ipv4Addr,
    /// We have an address on the subnet: its clients are served directly. Otherwise (e.g. a
    /// routed network's non-local segment) only relayed requests are answered, with our
    /// first address as server identifier, like dnsmasq's fallback address.
    pub direct: bool,
    /// Options for clients without port options (and for DHCPINFORM from unknown clients).
    pub set: u32,
}

impl SubnetView {
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask == self.network
    }
}

/// One (port, IPv4 address) a client can be given.
#[derive(Clone, Debug)]
pub(crate) struct Binding {
    pub ip: Ipv4Addr,
    pub subnet: u32,
    /// Option set index without and with the `ipxe` tag.
    pub sets: [u32; 2],
    /// Hostname (option 12 / 81) bytes in the arena, if the port has a legal one.
    hostname: Option<(u32, u8)>,
}

/// The bindings one port contributed, so that an update can take them out again.
#[derive(Clone, Debug)]
struct PortSlot {
    /// The address of the port's `Arc` in the network the view was made for (which the cache
    /// keeps alive with the view): an identity that costs no reference count when a view is
    /// copied, or dropped.
    port: usize,
    /// Consecutive in `bindings`.
    bindings: (u32, u32),
    client_id: Option<Box<[u8]>>,
}

/// Everything needed to answer DHCPv4 packets for one network. Immutable once built; a
/// port change makes a modified copy (see [`NetworkView::update`]).
#[derive(Clone, Debug)]
pub struct NetworkView {
    network_id: String,
    subnets: Vec<SubnetView>,
    /// Also holds the bindings of ports removed by updates (unreachable from the maps).
    bindings: Vec<Binding>,
    /// Every list is in the order of the network's ports, as a full build makes it.
    by_mac: Multimap<MacAddr>,
    by_client_id: Multimap<Box<[u8]>>,
    /// The first binding of the list owns the address.
    by_ip: Multimap<Ipv4Addr>,
    server_ids: Vec<Ipv4Addr>,
    sets: Vec<OptionSet>,
    entries: Vec<OptEntry>,
    arena: Vec<u8>,
    lease_secs: u32,
    broadcast_reply: bool,
    domain: Option<(u32, u8)>,
    /// The DHCPv6 side of the network, built from the same data (see [`crate::view::v6`]).
    v6: NetworkView6,
    /// Per-subnet option layers (parallel to `subnets`), to merge an added port's options.
    layers: Vec<Layer>,
    slots: Vec<PortSlot>,
    /// Bindings of removed ports still in `bindings`.
    dead: u32,
    /// The DNS service's names (issue 14), set by the cache on the same change as the rest.
    dns: Arc<crate::view::names::DnsNames>,
}

/// A candidate option value while merging layers; `None` in a slot means "suppressed".
#[derive(Clone, Debug, PartialEq, Eq)]
struct Cand {
    data: Vec<u8>,
    forced: bool,
    string: bool,
}

type Layer = BTreeMap<u8, Option<Cand>>;

impl NetworkView {
    /// Precompute everything needed to answer packets for this network. Never fails: an invalid
    /// extra_dhcp_opt is logged with tracing::warn! (naming network, port, option) and skipped.
    /// `own_dhcp_port_id` is the id of the `network:dhcp` port this agent plugs: its IPs are the
    /// server-ids and default DNS servers.
    pub fn build(net: &Network, own_dhcp_port_id: &str, cfg: &ServeConfig) -> NetworkView {
        let mut view = Builder::new(net, own_dhcp_port_id, cfg).build();
        view.v6 = NetworkView6::build(net, own_dhcp_port_id, cfg);
        view
    }

    /// Pins the DHCPv6 server DUID (see [`NetworkView6::server_duid`]).
    pub fn pin_server_duid(&mut self, duid: crate::view::v6::ServerDuid) {
        self.v6.pin_server_duid(duid);
    }

    /// What the DHCPv6 responder reads: served IPv6 subnets, bindings and option sets.
    pub fn v6(&self) -> &NetworkView6 {
        &self.v6
    }

    /// What the DNS service answers for this network.
    pub fn dns(&self) -> &Arc<crate::view::names::DnsNames> {
        &self.dns
    }

    /// Installs the DNS names built for the same change as this view.
    pub fn set_dns(&mut self, names: Arc<crate::view::names::DnsNames>) {
        self.dns = names;
    }

    pub fn network_id(&self) -> &str {
        &self.network_id
    }

    /// Number of (port, IPv4 DHCP subnet) bindings served; for logs/tests.
    pub fn v4_binding_count(&self) -> usize {
        self.bindings.len() - self.dead as usize
    }

    /// Whether a MAC is a VM port's on this network (see [`NetworkView6::is_vm_port`]).
    pub fn is_vm_port(&self, mac: &MacAddr) -> bool {
        self.v6.is_vm_port(mac)
    }

    /// Whether a MAC is servable (has an IPv4 binding); for tests and the lead's reload logic.
    pub fn serves_mac(&self, mac: &MacAddr) -> bool {
        self.by_mac.contains_key(mac)
    }

    pub(crate) fn lease_secs(&self) -> u32 {
        self.lease_secs
    }

    pub(crate) fn broadcast_reply(&self) -> bool {
        self.broadcast_reply
    }

    pub(crate) fn subnet(&self, idx: u32) -> &SubnetView {
        &self.subnets[idx as usize]
    }

    pub(crate) fn binding(&self, idx: u32) -> &Binding {
        &self.bindings[idx as usize]
    }

    pub(crate) fn set(&self, idx: u32) -> &OptionSet {
        &self.sets[idx as usize]
    }

    pub(crate) fn entries(&self, set: &OptionSet) -> &[OptEntry] {
        let start = set.entries_start as usize;
        &self.entries[start..start + set.entries_len as usize]
    }

    pub(crate) fn data(&self, e: &OptEntry) -> &[u8] {
        let start = e.start as usize;
        &self.arena[start..start + usize::from(e.len)]
    }

    pub(crate) fn hostname(&self, b: &Binding) -> Option<&[u8]> {
        b.hostname
            .map(|(s, l)| &self.arena[s as usize..s as usize + usize::from(l)])
    }

    /// `dns_domain`, for option 81 answers.
    pub(crate) fn domain(&self) -> Option<&[u8]> {
        self.domain
            .map(|(s, l)| &self.arena[s as usize..s as usize + usize::from(l)])
    }

    /// Whether `ip` is one of our addresses (an acceptable option 54 in a REQUEST).
    pub(crate) fn is_server_id(&self, ip: Ipv4Addr) -> bool {
        self.server_ids.contains(&ip)
    }

    /// Server identifier when no subnet applies (dnsmasq's fallback: the interface address).
    pub(crate) fn fallback_server_id(&self) -> Ipv4Addr {
        self.server_ids
            .first()
            .copied()
            .unwrap_or(Ipv4Addr::UNSPECIFIED)
    }

    /// First served subnet containing `ip`.
    pub(crate) fn subnet_containing(&self, ip: Ipv4Addr) -> Option<u32> {
        self.subnets
            .iter()
            .position(|s| s.contains(ip))
            .map(|i| i as u32)
    }

    /// The binding that owns `ip`, whoever the client is (hostname for unknown INFORMs).
    pub(crate) fn binding_by_ip(&self, ip: Ipv4Addr) -> Option<&Binding> {
        self.by_ip
            .get(&ip)
            .and_then(|list| list.first())
            .map(|&i| self.binding(i))
    }

    /// Whether the client matches any host entry at all (by client-id or MAC).
    pub(crate) fn is_known(&self, mac: Option<&MacAddr>, client_id: Option<&[u8]>) -> bool {
        self.find_binding(mac, client_id, |_| true).is_some()
    }

    /// dnsmasq's `find_config`: the binding matching the client's id (exact, then with
    /// dhcpcd's leading zero byte stripped), else its MAC, among those `accept` allows.
    /// dnsmasq keeps host-file entries in a list it builds by prepending, so when a port has
    /// addresses on several subnets of the segment the *last* fixed IP wins; we do the same
    /// (the differential test against dnsmasq checks it).
    pub(crate) fn find_binding(
        &self,
        mac: Option<&MacAddr>,
        client_id: Option<&[u8]>,
        accept: impl Fn(&Binding) -> bool,
    ) -> Option<u32> {
        let pick = |list: Option<&[u32]>| -> Option<u32> {
            list?
                .iter()
                .rev()
                .copied()
                .find(|&i| accept(&self.bindings[i as usize]))
        };
        if let Some(id) = client_id {
            let found = pick(self.by_client_id.get(id)).or_else(|| match id {
                [0, rest @ ..] if !rest.is_empty() => pick(self.by_client_id.get(rest)),
                _ => None,
            });
            if found.is_some() {
                return found;
            }
        }
        mac.and_then(|m| pick(self.by_mac.get(m)))
    }
}

/// Builds a `NetworkView`, or adds ports to a copy of one.
struct Builder<'a> {
    net: &'a Network,
    cfg: &'a ServeConfig,
    own_ips: Vec<(&'a str, Ipv4Addr)>,
    view: NetworkView,
}

fn v4(ip: &IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(a) => Some(*a),
        IpAddr::V6(_) => None,
    }
}

impl<'a> Builder<'a> {
    fn new(net: &'a Network, own_dhcp_port_id: &str, cfg: &'a ServeConfig) -> Self {
        let own_ips = own_ips(net, own_dhcp_port_id).unwrap_or_else(|| {
            tracing::warn!(
                network = %net.id, port = own_dhcp_port_id,
                "own DHCP port not found in network: DHCPv4 will not be served"
            );
            Vec::new()
        });
        let view = NetworkView {
            network_id: net.id.clone(),
            subnets: Vec::new(),
            bindings: Vec::new(),
            by_mac: Multimap::default(),
            by_client_id: Multimap::default(),
            by_ip: Multimap::default(),
            server_ids: Vec::new(),
            sets: Vec::new(),
            entries: Vec::new(),
            arena: Vec::new(),
            lease_secs: lease_secs(cfg.dhcp_lease_duration),
            broadcast_reply: cfg.dhcp_broadcast_reply,
            domain: None,
            v6: NetworkView6::default(),
            layers: Vec::new(),
            slots: Vec::new(),
            dead: 0,
            dns: Arc::default(),
        };
        Builder {
            net,
            cfg,
            own_ips,
            view,
        }
    }

    /// A builder adding ports of `net` to `view`, a copy of a view built for the same network
    /// apart from those ports. Adding a port needs nothing of our own port (our addresses are
    /// already in the subnets), so it is not looked up among the network's ports.
    fn resume(net: &'a Network, cfg: &'a ServeConfig, view: NetworkView) -> Self {
        Builder {
            net,
            cfg,
            own_ips: Vec::new(),
            view,
        }
    }

    fn build(mut self) -> NetworkView {
        self.view.server_ids = self.server_ids();
        if !self.cfg.dns_domain.is_empty() {
            match options::canonical_domain(&self.cfg.dns_domain) {
                Ok(d) => self.view.domain = Some(self.push_bytes(d.as_bytes())),
                Err(e) => tracing::warn!(
                    network = %self.net.id, error = %e,
                    "invalid dns_domain: options 15 and 81 carry no domain"
                ),
            }
        }
        let all: Vec<&Subnet> = self.all_subnets().collect();
        for s in &all {
            self.add_subnet(s, &all);
        }
        let net = self.net;
        for port in net.ports.iter().filter(|p| p.wants_dhcp()) {
            self.add_port(port);
        }
        self.view
    }

    /// Local subnets then non-local ones, as Neutron's `_get_all_subnets` orders them.
    fn all_subnets(&self) -> impl Iterator<Item = &'a Subnet> {
        self.net.subnets.iter().chain(&self.net.non_local_subnets)
    }

    /// Our addresses, the first being on a local DHCP subnet when there is one (dnsmasq's
    /// fallback server identifier is the interface's primary address).
    fn server_ids(&self) -> Vec<Ipv4Addr> {
        let local_dhcp = |sid: &str| {
            self.net
                .subnets
                .iter()
                .any(|s| s.id == sid && s.is_dhcp_v4())
        };
        let mut ids: Vec<Ipv4Addr> = self
            .own_ips
            .iter()
            .filter(|(sid, _)| local_dhcp(sid))
            .map(|&(_, ip)| ip)
            .collect();
        for &(_, ip) in &self.own_ips {
            if !ids.contains(&ip) {
                ids.push(ip);
            }
        }
        ids
    }

    fn own_ip_on(&self, subnet_id: &str) -> Option<Ipv4Addr> {
        self.own_ips
            .iter()
            .find(|(sid, _)| *sid == subnet_id)
            .map(|&(_, ip)| ip)
    }

    fn push_bytes(&mut self, data: &[u8]) -> (u32, u8) {
        let start = self.view.arena.len() as u32;
        let len = data.len().min(255);
        self.view.arena.extend_from_slice(&data[..len]);
        (start, len as u8)
    }

    fn add_subnet(&mut self, s: &Subnet, all: &[&Subnet]) {
        let IpNetwork::V4(cidr) = s.cidr else { return };
        if !s.is_dhcp_v4() || self.view.subnets.iter().any(|v| v.id == s.id) {
            return;
        }
        let (server_ip, direct) = match self.own_ip_on(&s.id) {
            Some(ip) => (ip, true),
            None => match self.view.server_ids.first() {
                Some(&ip) => (ip, false),
                None => return,
            },
        };
        let layer = self.subnet_layer(s, all, cidr, server_ip);
        let set = self.push_set(&layer);
        let mask = u32::from(cidr.mask());
        self.view.subnets.push(SubnetView {
            id: s.id.clone(),
            network: u32::from(cidr.ip()) & mask,
            mask,
            server_ip,
            direct,
            set,
        });
        self.view.layers.push(layer);
    }

    /// Global and per-subnet options: dnsmasq's defaults, its command-line forced options and
    /// the `tag:subnet-<id>` lines Neutron writes.
    fn subnet_layer(
        &self,
        s: &Subnet,
        all: &[&Subnet],
        cidr: ipnetwork::Ipv4Network,
        server_ip: Ipv4Addr,
    ) -> Layer {
        let mut layer = Layer::new();
        let cand = |data: Vec<u8>, forced: bool, string: bool| {
            Some(Cand {
                data,
                forced,
                string,
            })
        };
        let broadcast = u32::from(cidr.network()) | !u32::from(cidr.mask());
        layer.insert(
            code::NETMASK,
            cand(cidr.mask().octets().to_vec(), true, false),
        );
        layer.insert(
            code::BROADCAST,
            cand(broadcast.to_be_bytes().to_vec(), true, false),
        );
        layer.insert(code::DNS, cand(server_ip.octets().to_vec(), false, false));
        if let Some((start, len)) = self.view.domain {
            let d = &self.view.arena[start as usize..start as usize + usize::from(len)];
            layer.insert(code::DOMAIN_NAME, cand(d.to_vec(), false, true));
        }
        if let Some(mtu) = self.net.mtu {
            layer.insert(code::MTU, cand(mtu.to_be_bytes().to_vec(), true, false));
        }
        if self.cfg.dhcp_renewal_time > 0 {
            layer.insert(
                code::T1,
                cand(
                    self.cfg.dhcp_renewal_time.to_be_bytes().to_vec(),
                    true,
                    false,
                ),
            );
        }
        if self.cfg.dhcp_rebinding_time > 0 {
            layer.insert(
                code::T2,
                cand(
                    self.cfg.dhcp_rebinding_time.to_be_bytes().to_vec(),
                    true,
                    false,
                ),
            );
        }
        for (opt, value) in self.neutron_subnet_opts(s, all) {
            let slot = match value {
                None => None,
                Some(v) => match options::encode(opt, &v) {
                    Ok(enc) => cand(enc.with_self(server_ip), false, enc.string),
                    Err(e) => {
                        tracing::warn!(
                            network = %self.net.id, subnet = %s.id, option = opt, error = %e,
                            "cannot encode subnet option; skipped"
                        );
                        continue;
                    }
                },
            };
            layer.insert(opt, slot);
        }
        layer
    }

    /// The options `_generate_opts_per_subnet` (and the multi-agent DNS part of
    /// `_generate_opts_per_port`) write for one IPv4 subnet, as (code, value) with `None`
    /// meaning an empty value (suppress).
    fn neutron_subnet_opts(&self, s: &Subnet, all: &[&Subnet]) -> Vec<(u8, Option<String>)> {
        let mut out = Vec::new();
        if let Some(dns) = self.dns_servers(s) {
            out.push((code::DNS, dns));
        }
        let mut gateway = s.gateway_ip.as_ref().and_then(v4);
        let mut routes: Vec<String> = Vec::new();
        for hr in &s.host_routes {
            let is_default = hr.destination.prefix() == 0 && hr.destination.ip().is_unspecified();
            if is_default && hr.destination.is_ipv4() {
                if gateway.is_none() {
                    gateway = v4(&hr.nexthop);
                }
            } else {
                routes.push(format!("{},{}", hr.destination, hr.nexthop));
            }
        }
        if let Some(via) = self.metadata_nexthop(s, gateway) {
            routes.push(format!("{METADATA_IP}/32,{via}"));
        }
        for other in all {
            if other.ip_version == IpVersion::V4
                && other.cidr != s.cidr
                && other.segment_id == s.segment_id
            {
                routes.insert(0, format!("{},0.0.0.0", other.cidr));
            }
        }
        if !routes.is_empty() {
            if let Some(gw) = gateway {
                routes.push(format!("0.0.0.0/0,{gw}"));
            }
            let list = routes.join(",");
            out.push((code::CLASSLESS_ROUTE, Some(list.clone())));
            out.push((code::MS_CLASSLESS_ROUTE, Some(list)));
        }
        out.push((code::ROUTER, gateway.map(|g| g.to_string())));
        out
    }

    /// Neutron's three-way DNS rule: explicit list; `["0.0.0.0"]` = send none; empty = all
    /// `network:dhcp` port addresses when there are several, else nothing (dnsmasq then sends
    /// its own address on request). Outer `None` = no line; inner `None` = empty value.
    fn dns_servers(&self, s: &Subnet) -> Option<Option<String>> {
        let join = |ips: Vec<String>| Some(Some(ips.join(",")));
        if !s.dns_nameservers.is_empty() {
            if s.dns_nameservers == [IpAddr::V4(Ipv4Addr::UNSPECIFIED)] {
                return Some(None);
            }
            return join(s.dns_nameservers.iter().map(ToString::to_string).collect());
        }
        let dhcp_ips: Vec<String> = self
            .net
            .ports
            .iter()
            .filter(|p| p.device_owner == OWNER_DHCP)
            .flat_map(|p| &p.fixed_ips)
            .filter(|f| f.subnet_id == s.id && f.ip_address.is_ipv4())
            .map(|f| f.ip_address.to_string())
            .collect();
        if dhcp_ips.len() > 1 {
            return join(dhcp_ips);
        }
        None
    }

    /// Next hop of the 169.254.169.254/32 route (reference §9.6): the OVN metadata port, else
    /// our address when metadata is forced or the subnet is isolated and isolated metadata is
    /// on, else the gateway of a routed subnet.
    fn metadata_nexthop(&self, s: &Subnet, gateway: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
        if let Some(ip) = self.ovn_metadata_ip(s) {
            return Some(ip);
        }
        let isolated = self.is_isolated(s);
        if self.cfg.force_metadata || (isolated && self.cfg.enable_isolated_metadata) {
            return self.own_ip_on(&s.id);
        }
        if !isolated {
            return gateway;
        }
        None
    }

    fn ovn_metadata_ip(&self, s: &Subnet) -> Option<Ipv4Addr> {
        self.net
            .ports
            .iter()
            .filter(|p| {
                p.device_owner == OWNER_DISTRIBUTED && p.device_id.starts_with(OVN_METADATA_PREFIX)
            })
            .flat_map(|p| &p.fixed_ips)
            .filter(|f| f.subnet_id == s.id)
            .find_map(|f| v4(&f.ip_address))
    }

    /// Neutron's `get_isolated_subnets`: no router interface port holds the gateway address.
    fn is_isolated(&self, s: &Subnet) -> bool {
        let Some(gw) = s.gateway_ip else { return true };
        !self.net.ports.iter().any(|p| {
            ROUTER_INTERFACE_OWNERS.contains(&p.device_owner.as_str())
                && p.fixed_ips
                    .iter()
                    .any(|f| f.subnet_id == s.id && f.ip_address == gw)
        })
    }

    fn add_port(&mut self, port: &Arc<Port>) {
        let client_id = port_client_id(self.net, port).map(Vec::into_boxed_slice);
        let opts = self.port_options(port);
        let start = self.view.bindings.len() as u32;
        for fixed in &port.fixed_ips {
            let Some(ip) = v4(&fixed.ip_address) else {
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
            let sets = self.binding_sets(port, subnet, &opts);
            let hostname = port_hostname(port, ip).map(|h| self.push_bytes(h.as_bytes()));
            let idx = self.view.bindings.len() as u32;
            self.view.bindings.push(Binding {
                ip,
                subnet: subnet as u32,
                sets,
                hostname,
            });
            self.view.by_mac.push(port.mac_address, idx);
            if let Some(id) = &client_id {
                self.view.by_client_id.push(id.clone(), idx);
            }
            self.view.by_ip.push(ip, idx);
        }
        self.view.slots.push(PortSlot {
            port: Arc::as_ptr(port) as usize,
            bindings: (start, self.view.bindings.len() as u32 - start),
            client_id,
        });
    }

    /// The port's IPv4 extra options, parsed; invalid ones are logged and dropped.
    fn port_options(&self, port: &Port) -> Vec<ParsedOpt> {
        port.extra_dhcp_opts
            .iter()
            .filter(|o| o.ip_version == IpVersion::V4 && !options::is_client_id_name(&o.opt_name))
            .filter_map(|o| {
                options::parse_extra_opt(&o.opt_name, o.opt_value.as_deref())
                    .map_err(|e| {
                        tracing::warn!(
                            network = %self.net.id, port = %port.id, option = %o.opt_name,
                            error = %e, "invalid extra_dhcp_opt; skipped"
                        );
                    })
                    .ok()
            })
            .collect()
    }

    /// Option sets of one binding: the subnet's when the port has no options, else the subnet
    /// layer overridden by the port's options that apply without / with the `ipxe` tag.
    fn binding_sets(&mut self, port: &Port, subnet: usize, opts: &[ParsedOpt]) -> [u32; 2] {
        let shared = self.view.subnets[subnet].set;
        if opts.is_empty() {
            return [shared, shared];
        }
        let server_ip = self.view.subnets[subnet].server_ip;
        let subnet_id = self.view.subnets[subnet].id.clone();
        let layers = [false, true].map(|ipxe| {
            let mut layer = self.view.layers[subnet].clone();
            for o in opts {
                if tags_hold(o, &port.id, &subnet_id, ipxe) {
                    let slot = o.value.as_ref().map(|e: &Encoded| Cand {
                        data: e.with_self(server_ip),
                        forced: false,
                        string: e.string,
                    });
                    layer.insert(o.code, slot);
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

    /// Freezes a merged layer into an option set (entries sorted by code).
    fn push_set(&mut self, layer: &Layer) -> u32 {
        let entries_start = self.view.entries.len() as u32;
        let mut set = OptionSet {
            entries_start,
            entries_len: 0,
            siaddr: None,
            t1: None,
            t2: None,
            hostname_configured: false,
        };
        for (&opt, slot) in layer {
            let be32 = |c: &Cand| <[u8; 4]>::try_from(c.data.as_slice()).ok();
            match (opt, slot) {
                (code::SIADDR, Some(c)) => {
                    set.siaddr = c
                        .data
                        .get(..4)
                        .map(|d| Ipv4Addr::new(d[0], d[1], d[2], d[3]));
                }
                (code::T1, Some(c)) => set.t1 = be32(c).map(u32::from_be_bytes),
                (code::T2, Some(c)) => set.t2 = be32(c).map(u32::from_be_bytes),
                (code::SIADDR | code::T1 | code::T2, None) => {}
                (_, None) => set.hostname_configured |= opt == code::HOSTNAME,
                (_, Some(c)) => {
                    set.hostname_configured |= opt == code::HOSTNAME;
                    let (start, len) = self.push_bytes(&c.data);
                    self.view.entries.push(OptEntry {
                        code: opt,
                        forced: c.forced,
                        string: c.string,
                        start,
                        len,
                    });
                }
            }
        }
        set.entries_len = self.view.entries.len() as u32 - entries_start;
        self.view.sets.push(set);
        self.view.sets.len() as u32 - 1
    }
}

/// Our DHCP port's IPv4 addresses by subnet id; `None` when the port is not in the network.
fn own_ips<'a>(net: &'a Network, own_dhcp_port_id: &str) -> Option<Vec<(&'a str, Ipv4Addr)>> {
    let p = net.port(own_dhcp_port_id)?;
    Some(
        p.fixed_ips
            .iter()
            .filter_map(|f| Some((f.subnet_id.as_str(), v4(&f.ip_address)?)))
            .collect(),
    )
}

/// Whether all tags of a port option are set for this client. Only tags dnsmasq would set in a
/// Neutron deployment can match: `ipxe` (client sent option 175), `known`, and the port's and
/// subnet's own tags; any other tag is never set (so `tag:!other` always holds).
fn tags_hold(opt: &ParsedOpt, port_id: &str, subnet_id: &str, ipxe: bool) -> bool {
    opt.tags.iter().all(|t| {
        let set = match t.name.as_str() {
            "ipxe" => ipxe,
            "known" => true,
            name => {
                name.strip_prefix("port-") == Some(port_id)
                    || name.strip_prefix("subnet-") == Some(subnet_id)
            }
        };
        set != t.negated
    })
}

/// The host part of the port's name for `ip` (reference §9.5): from `dns_assignment` when the
/// server sent it, else `host-a-b-c-d`. `None` if not a legal hostname (dnsmasq would refuse it).
fn port_hostname(port: &Port, ip: Ipv4Addr) -> Option<String> {
    let assigned = port
        .dns_assignment
        .iter()
        .find(|d| d.ip_address == IpAddr::V4(ip))
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
        None => format!("host-{}", ip.to_string().replace('.', "-")),
    };
    let legal = host.len() <= 63
        && host
            .bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_alphanumeric() || (i > 0 && (b == b'-' || b == b'_')));
    legal.then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The view is shared with DHCP threads through an atomic pointer swap.
    #[test]
    fn view_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<NetworkView>();
    }

    #[test]
    fn lease_durations() {
        assert_eq!(lease_secs(-1), INFINITE);
        assert_eq!(lease_secs(86400), 86400);
        assert_eq!(lease_secs(30), 120);
        assert_eq!(lease_secs(1 << 40), INFINITE);
    }
}
