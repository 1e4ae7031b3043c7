//! Renders what Neutron's `Dnsmasq` driver would write for a network: the dnsmasq command line
//! and the `host`, `addn_hosts`, `opts` and initial `leases` files (reference §9.1–§9.8).
//!
//! Pure: the caller supplies the network, the serving configuration, the conf directory and the
//! interface name; nothing here touches the file system or the clock. It exists so that a real
//! dnsmasq, configured exactly as Neutron configures it, can serve as the correctness oracle and
//! the performance baseline for our embedded server (`tests/differential.rs`,
//! `scripts/bench-dnsmasq.sh`, `src/bin/render-dnsmasq.rs`).
//!
//! Everything follows `neutron/agent/linux/dhcp.py` (`_build_cmdline_callback`, `_iter_hosts`,
//! `_output_hosts_file`, `_output_addn_hosts_file`, `_generate_opts_per_subnet`,
//! `_generate_opts_per_port`, `_format_option`, `_output_init_lease_file`) and is checked
//! against the expected strings of Neutron's `test_dhcp.py`. Known, deliberate deviations:
//!
//! - Addresses and MACs are printed from parsed values: IPv6 in RFC 5952 form and MACs in lower
//!   case, where Neutron echoes the strings it was given (`2001:0200::1`, `00:16:3E:…`).
//!   dnsmasq parses both forms the same way.
//! - The OVN metadata port (`network:distributed`, `device_id = ovnmeta-<network>`) is looked up
//!   in `network.ports`; Neutron asks neutron-server with a `get_ports` call.
//! - The address of our interface on a subnet (isolated-metadata route) is the DHCP port's
//!   fixed IP on it: the device manager puts exactly those addresses on the interface, where
//!   Neutron reads them back with `ip addr`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnetwork::IpNetwork;

use crate::config::ServeConfig;
use crate::model::{
    FixedIp, IpVersion, Ipv6Mode, Network, Port, Subnet, OWNER_DHCP, ROUTER_INTERFACE_OWNERS,
};

/// `HOST_DHCPV6_TAG`: prefixed to IPv6 host entries when dnsmasq supports tags there.
const HOST_DHCPV6_TAG: &str = "tag:dhcpv6,";
/// `WIN2k3_STATIC_DNS`: Microsoft's classless static routes option, written beside option 121.
const WIN2K3_STATIC_ROUTES: &str = "249";
const METADATA_IP: &str = "169.254.169.254";
const OWNER_DISTRIBUTED: &str = "network:distributed";

/// The dnsmasq-only options of `dhcp_agent.ini` (names and defaults are Neutron's), plus two
/// facts Neutron learns at run time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsmasqConfig {
    /// `dnsmasq_config_file`; empty means `/dev/null`.
    pub dnsmasq_config_file: String,
    /// `dnsmasq_dns_servers`: upstream resolvers (`--server=`).
    pub dnsmasq_dns_servers: Vec<String>,
    /// `dnsmasq_local_resolv`: use the host's resolv.conf (only without `dnsmasq_dns_servers`).
    pub dnsmasq_local_resolv: bool,
    /// `dnsmasq_lease_max` (2^24).
    pub dnsmasq_lease_max: u128,
    /// `dnsmasq_base_log_dir`: enables `--log-queries --log-dhcp --log-facility=…`.
    pub dnsmasq_base_log_dir: Option<PathBuf>,
    /// `dnsmasq_enable_addr6_list`: one host line per port for all its addresses in one
    /// stateful IPv6 subnet.
    pub dnsmasq_enable_addr6_list: bool,
    /// `dnsmasq_txt_record`: `--txt-record=` value; empty means none.
    pub dnsmasq_txt_record: String,
    /// `checks.dnsmasq_host_tag_support()`: dnsmasq >= 2.81 accepts `tag:` in host lines
    /// (true for Debian 12's 2.90).
    pub host_tag_support: bool,
    /// The interface driver's `bridged` flag: true for linuxbridge-style veth pairs (our veth
    /// driver), false for OVS internal ports (then `--bridge-interface=<if>,tap*` is added).
    pub bridged: bool,
}

impl Default for DnsmasqConfig {
    fn default() -> Self {
        DnsmasqConfig {
            dnsmasq_config_file: String::new(),
            dnsmasq_dns_servers: Vec::new(),
            dnsmasq_local_resolv: false,
            dnsmasq_lease_max: 1 << 24,
            dnsmasq_base_log_dir: None,
            dnsmasq_enable_addr6_list: false,
            dnsmasq_txt_record: String::new(),
            host_tag_support: true,
            bridged: true,
        }
    }
}

/// Everything written for one network, named like the files in `<dhcp_confs>/<network_id>/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub argv: Vec<String>,
    pub interface: String,
    pub host: String,
    pub addn_hosts: String,
    pub opts: String,
    pub leases: String,
}

impl Rendered {
    /// `(file name, contents)` for every file dnsmasq reads (the pid file is dnsmasq's own).
    pub fn files(&self) -> [(&'static str, &str); 5] {
        [
            ("interface", &self.interface),
            ("host", &self.host),
            ("addn_hosts", &self.addn_hosts),
            ("opts", &self.opts),
            ("leases", &self.leases),
        ]
    }
}

/// The Dnsmasq driver for one network.
pub struct Dnsmasq<'a> {
    net: &'a Network,
    serve: &'a ServeConfig,
    cfg: &'a DnsmasqConfig,
    /// `<dhcp_confs>/<network_id>`.
    conf_dir: PathBuf,
    interface: String,
    /// This agent's DHCP port: its fixed IPs are the interface's addresses.
    own_port: Option<&'a Port>,
}

/// One host entry of `_iter_hosts`: a port and one (possibly merged) allocation.
struct HostEntry<'a> {
    port: &'a Port,
    subnet_id: &'a str,
    /// The address as dnsmasq gets it: bracketed IPv6, or a merged `[a],[b]` list.
    address: String,
    /// The bare first address (addn_hosts lines).
    first_ip: IpAddr,
    hostname: String,
    fqdn: String,
    no_dhcp: bool,
    no_opts: bool,
    tag: &'static str,
}

impl<'a> Dnsmasq<'a> {
    /// `conf_dir` is the network's directory (`<dhcp_confs>/<network_id>`); `interface` is the
    /// DHCP port's device inside the namespace (`ns-<port[:11]>` for veth/linuxbridge,
    /// `tap<port[:11]>` for OVS).
    pub fn new(
        net: &'a Network,
        serve: &'a ServeConfig,
        cfg: &'a DnsmasqConfig,
        conf_dir: &Path,
        interface: &str,
        own_port: Option<&'a Port>,
    ) -> Dnsmasq<'a> {
        Dnsmasq {
            net,
            serve,
            cfg,
            conf_dir: conf_dir.to_owned(),
            interface: interface.to_owned(),
            own_port,
        }
    }

    /// Every file and the command line. `now` is the Unix time used for the initial lease
    /// expiries; `existing_leases` is the current lease file, if any (its IPv6 leases and DUID
    /// survive a restart).
    pub fn render(&self, now: u64, existing_leases: Option<&str>) -> Rendered {
        Rendered {
            argv: self.cmdline(),
            interface: self.interface.clone(),
            host: self.hosts_file(),
            addn_hosts: self.addn_hosts_file(),
            opts: self.opts_file(),
            leases: self.init_leases_file(now, existing_leases),
        }
    }

    pub fn conf_file(&self, kind: &str) -> PathBuf {
        self.conf_dir.join(kind)
    }

    fn conf_path(&self, kind: &str) -> String {
        self.conf_file(kind).display().to_string()
    }

    /// `_get_all_subnets`: local subnets, then the non-local ones of a routed network.
    fn all_subnets(&self) -> impl Iterator<Item = &'a Subnet> + Clone {
        self.net.subnets.iter().chain(&self.net.non_local_subnets)
    }

    fn lease_text(&self) -> String {
        if self.serve.dhcp_lease_duration == -1 {
            "infinite".into()
        } else {
            format!("{}s", self.serve.dhcp_lease_duration)
        }
    }

    /// `_build_cmdline_callback`, with the pid file in the conf dir. The `--no-resolv` slot is
    /// an empty argument when local resolution is wanted, exactly as Neutron passes it
    /// (dnsmasq ignores it).
    pub fn cmdline(&self) -> Vec<String> {
        let cfg = self.cfg;
        let no_resolv = if !cfg.dnsmasq_dns_servers.is_empty() || !cfg.dnsmasq_local_resolv {
            "--no-resolv"
        } else {
            ""
        };
        let mut cmd: Vec<String> = vec![
            "dnsmasq".into(),
            "--no-hosts".into(),
            no_resolv.into(),
            format!("--pid-file={}", self.conf_path("pid")),
            format!("--dhcp-hostsfile={}", self.conf_path("host")),
            format!("--addn-hosts={}", self.conf_path("addn_hosts")),
            format!("--dhcp-optsfile={}", self.conf_path("opts")),
            format!("--dhcp-leasefile={}", self.conf_path("leases")),
            "--dhcp-match=set:ipxe,175".into(),
            "--dhcp-userclass=set:ipxe6,iPXE".into(),
            "--local-service".into(),
            "--bind-dynamic".into(),
        ];
        if !cfg.bridged {
            cmd.push(format!("--bridge-interface={},tap*", self.interface));
        }
        let lease = self.lease_text();
        let mut possible_leases: u128 = 0;
        for s in self.all_subnets() {
            if !s.enable_dhcp {
                continue;
            }
            let static_mode = match s.ip_version {
                IpVersion::V4 => true,
                IpVersion::V6 => {
                    matches!(
                        s.ipv6_address_mode,
                        Some(Ipv6Mode::Dhcpv6Stateful | Ipv6Mode::Dhcpv6Stateless)
                    ) || (s.ipv6_address_mode.is_none() && s.ipv6_ra_mode.is_none())
                }
            };
            if !static_mode {
                continue;
            }
            let network = s.cidr.network();
            match s.cidr {
                IpNetwork::V4(c) => cmd.push(format!(
                    "--dhcp-range=set:subnet-{},{network},static,{},{lease}",
                    s.id,
                    c.mask()
                )),
                IpNetwork::V6(c) => {
                    if c.prefix() < 64 {
                        continue;
                    }
                    cmd.push(format!(
                        "--dhcp-range=set:subnet-{},{network},static,{},{lease}",
                        s.id,
                        c.prefix()
                    ));
                }
            }
            possible_leases = possible_leases.saturating_add(cidr_size(&s.cidr));
        }
        if let Some(mtu) = self.net.mtu {
            cmd.push(format!("--dhcp-option-force=option:mtu,{mtu}"));
        }
        cmd.push(format!(
            "--dhcp-lease-max={}",
            possible_leases.min(cfg.dnsmasq_lease_max)
        ));
        if self.serve.dhcp_renewal_time > 0 {
            cmd.push(format!(
                "--dhcp-option-force=option:T1,{}s",
                self.serve.dhcp_renewal_time
            ));
        }
        if self.serve.dhcp_rebinding_time > 0 {
            cmd.push(format!(
                "--dhcp-option-force=option:T2,{}s",
                self.serve.dhcp_rebinding_time
            ));
        }
        if !cfg.dnsmasq_txt_record.is_empty() {
            cmd.push(format!("--txt-record={}", cfg.dnsmasq_txt_record));
        }
        let conf_file = cfg.dnsmasq_config_file.trim();
        cmd.push(format!(
            "--conf-file={}",
            if conf_file.is_empty() {
                "/dev/null"
            } else {
                conf_file
            }
        ));
        for server in &cfg.dnsmasq_dns_servers {
            cmd.push(format!("--server={server}"));
        }
        if !self.serve.dns_domain.is_empty() {
            cmd.push(format!("--domain={}", self.serve.dns_domain));
        }
        if self.serve.dhcp_broadcast_reply {
            cmd.push("--dhcp-broadcast".into());
        }
        if let Some(dir) = &cfg.dnsmasq_base_log_dir {
            let log = dir.join(&self.net.id).join("dhcp_dns_log");
            cmd.push("--log-queries".into());
            cmd.push("--log-dhcp".into());
            cmd.push(format!("--log-facility={}", log.display()));
        }
        cmd
    }

    fn v6_mode(&self, subnet_id: &str) -> Option<Option<Ipv6Mode>> {
        self.all_subnets()
            .find(|s| s.id == subnet_id && s.ip_version == IpVersion::V6)
            .map(|s| s.ipv6_address_mode)
    }

    /// `_iter_hosts`: one entry per (included port, fixed IP), stateless IPv6 allocations
    /// first; with `merge_addr6_list` (and `dnsmasq_enable_addr6_list`) the addresses of one
    /// stateful IPv6 subnet become one entry.
    fn iter_hosts(&self, merge_addr6_list: bool) -> Vec<HostEntry<'a>> {
        let mut out = Vec::new();
        for port in self.net.ports.iter().filter(|p| p.wants_dhcp()) {
            // `sorted(..., key=is_stateless_v6, reverse=True)`: stable, stateless first.
            let mut fixed: Vec<&FixedIp> = port.fixed_ips.iter().collect();
            fixed.sort_by_key(|f| {
                self.v6_mode(&f.subnet_id) != Some(Some(Ipv6Mode::Dhcpv6Stateless))
            });
            // (subnet id, addresses as dnsmasq gets them, the bare addresses)
            let mut allocs: Vec<(&str, String, Vec<IpAddr>)> = Vec::new();
            let mut merged: Vec<(&str, Vec<IpAddr>)> = Vec::new();
            for f in fixed {
                let stateful = self.v6_mode(&f.subnet_id) == Some(Some(Ipv6Mode::Dhcpv6Stateful));
                if merge_addr6_list && self.cfg.dnsmasq_enable_addr6_list && stateful {
                    match merged.iter_mut().find(|(sid, _)| *sid == f.subnet_id) {
                        Some((_, ips)) => ips.push(f.ip_address),
                        None => merged.push((&f.subnet_id, vec![f.ip_address])),
                    }
                } else {
                    allocs.push((
                        &f.subnet_id,
                        dnsmasq_address(f.ip_address),
                        vec![f.ip_address],
                    ));
                }
            }
            for (sid, ips) in merged {
                let list: Vec<String> = ips.iter().map(|ip| format!("[{ip}]")).collect();
                allocs.push((sid, list.join(","), ips));
            }
            for (subnet_id, address, ips) in allocs {
                let (no_dhcp, no_opts, tag) = match self.v6_mode(subnet_id) {
                    Some(mode) => (
                        matches!(mode, Some(Ipv6Mode::Slaac | Ipv6Mode::Dhcpv6Stateless)),
                        mode == Some(Ipv6Mode::Slaac),
                        if self.cfg.host_tag_support {
                            HOST_DHCPV6_TAG
                        } else {
                            ""
                        },
                    ),
                    None => (false, false, ""),
                };
                let (hostname, fqdn) = self.dns_assignment(port, &ips);
                out.push(HostEntry {
                    port,
                    subnet_id,
                    address,
                    first_ip: ips[0],
                    hostname,
                    fqdn,
                    no_dhcp,
                    no_opts,
                    tag,
                });
            }
        }
        out
    }

    /// `_get_dns_assignment`: the server's hostname/FQDN for the first listed address that has
    /// one, else `host-<first address>` and `<hostname>.<dns_domain>`.
    fn dns_assignment(&self, port: &Port, ips: &[IpAddr]) -> (String, String) {
        for ip in ips {
            if let Some(d) = port.dns_assignment.iter().find(|d| d.ip_address == *ip) {
                return (d.hostname.clone(), d.fqdn.clone());
            }
        }
        let hostname = format!("host-{}", ips[0].to_string().replace(['.', ':'], "-"));
        let fqdn = if self.serve.dns_domain.is_empty() {
            hostname.clone()
        } else {
            format!("{hostname}.{}", self.serve.dns_domain)
        };
        (hostname, fqdn)
    }

    /// `_output_hosts_file`: `mac,[tag][id:<client-id>,]<fqdn>,<ip>[,set:port-<id>]` per entry on
    /// a DHCP-enabled subnet; stateless IPv6 entries only carry the port tag.
    pub fn hosts_file(&self) -> String {
        let enabled: Vec<&str> = self
            .all_subnets()
            .filter(|s| s.enable_dhcp)
            .map(|s| s.id.as_str())
            .collect();
        let mut buf = String::new();
        for h in self.iter_hosts(true) {
            let port = h.port;
            let mac = port.mac_address;
            let has_opts = !port.extra_dhcp_opts.is_empty();
            if h.no_dhcp {
                if !h.no_opts && has_opts {
                    let _ = writeln!(buf, "{mac},{}set:port-{}", h.tag, port.id);
                }
                continue;
            }
            if !enabled.contains(&h.subnet_id) {
                continue;
            }
            let (tag, name, ip, id) = (h.tag, &h.fqdn, &h.address, &port.id);
            if has_opts {
                match client_id(port) {
                    Some(cid) if port.extra_dhcp_opts.len() > 1 => {
                        let _ = writeln!(buf, "{mac},{tag}id:{cid},{name},{ip},set:port-{id}");
                    }
                    Some(cid) => {
                        let _ = writeln!(buf, "{mac},{tag}id:{cid},{name},{ip}");
                    }
                    None => {
                        let _ = writeln!(buf, "{mac},{tag}{name},{ip},set:port-{id}");
                    }
                }
            } else {
                let _ = writeln!(buf, "{mac},{tag}{name},{ip}");
            }
        }
        buf
    }

    /// `_output_addn_hosts_file`: `<ip>\t<fqdn> <hostname>` for every included port and every
    /// fixed IP (DNS only; FQDN first so that it is the PTR answer).
    pub fn addn_hosts_file(&self) -> String {
        let mut buf = String::new();
        for h in self.iter_hosts(false) {
            let _ = writeln!(buf, "{}\t{} {}", h.first_ip, h.fqdn, h.hostname);
        }
        buf
    }

    /// `_output_init_lease_file`: `<expiry> <mac> <ip> * *` for every DHCPv4 host entry (expiry
    /// `now + lease`, 0 for infinite leases); from `existing`, the `duid` line(s) and the IPv6
    /// leases of addresses still assigned on DHCPv6-enabled subnets are kept.
    pub fn init_leases_file(&self, now: u64, existing: Option<&str>) -> String {
        let timestamp = if self.serve.dhcp_lease_duration == -1 {
            0
        } else {
            now.saturating_add_signed(self.serve.dhcp_lease_duration)
        };
        let enabled = |v: IpVersion| -> Vec<&str> {
            self.all_subnets()
                .filter(|s| s.enable_dhcp && s.ip_version == v)
                .map(|s| s.id.as_str())
                .collect()
        };
        let (v4_ids, v6_ids) = (enabled(IpVersion::V4), enabled(IpVersion::V6));
        let mut buf = String::new();
        let mut v6_leases: HashMap<IpAddr, &str> = HashMap::new();
        for line in existing.unwrap_or("").split_inclusive('\n') {
            if line.starts_with("duid ") {
                buf.push_str(line);
                continue;
            }
            let parts: Vec<&str> = line.split(' ').collect();
            if parts.len() != 5 {
                continue;
            }
            if let Ok(IpAddr::V6(ip)) = parts[2].parse::<IpAddr>() {
                v6_leases.insert(IpAddr::V6(ip), line);
            }
        }
        for h in self.iter_hosts(false) {
            if h.no_dhcp {
                continue;
            }
            if v4_ids.contains(&h.subnet_id) {
                let _ = writeln!(buf, "{timestamp} {} {} * *", h.port.mac_address, h.first_ip);
            } else if v6_ids.contains(&h.subnet_id) {
                if let Some(line) = v6_leases.get(&h.first_ip) {
                    buf.push_str(line);
                }
            }
        }
        buf
    }

    /// `_get_isolated_subnets`: a subnet is isolated unless a router interface port holds its
    /// gateway address.
    fn isolated(&self, s: &Subnet) -> bool {
        !self.net.ports.iter().any(|p| {
            ROUTER_INTERFACE_OWNERS.contains(&p.device_owner.as_str())
                && p.fixed_ips
                    .iter()
                    .any(|f| f.subnet_id == s.id && Some(f.ip_address) == s.gateway_ip)
        })
    }

    /// `_make_subnet_interface_ip_map`: our address on each local subnet.
    fn interface_ip(&self, subnet_id: &str) -> Option<IpAddr> {
        let port = self.own_port?;
        let subnet = self.net.subnets.iter().find(|s| s.id == subnet_id)?;
        port.fixed_ips
            .iter()
            .filter(|f| f.subnet_id == subnet.id && subnet.cidr.contains(f.ip_address))
            .map(|f| f.ip_address)
            .next_back()
    }

    /// The OVN metadata port's address on the subnet, if the network has one.
    fn ovn_metadata_ip(&self, s: &Subnet) -> Option<IpAddr> {
        let device_id = format!("ovnmeta-{}", self.net.id);
        self.net
            .ports
            .iter()
            .filter(|p| p.device_owner == OWNER_DISTRIBUTED && p.device_id == device_id)
            .flat_map(|p| &p.fixed_ips)
            .find(|f| f.subnet_id == s.id)
            .map(|f| f.ip_address)
    }

    /// `_generate_opts_per_subnet`; returns the lines and the subnets without nameservers.
    fn opts_per_subnet(&self) -> (Vec<String>, Vec<&'a str>) {
        let mut options = Vec::new();
        let mut without_ns = Vec::new();
        let all: Vec<&Subnet> = self.all_subnets().collect();
        for s in &all {
            let v = s.ip_version;
            if !s.enable_dhcp
                || (v == IpVersion::V6 && s.ipv6_address_mode == Some(Ipv6Mode::Slaac))
            {
                continue;
            }
            let tag = format!("subnet-{}", s.id);
            if !s.dns_nameservers.is_empty() {
                let none = match v {
                    IpVersion::V4 => "0.0.0.0",
                    IpVersion::V6 => "::",
                };
                if s.dns_nameservers.len() == 1 && s.dns_nameservers[0].to_string() == none {
                    options.push(format_option(v, &tag, "dns-server", &[]));
                } else {
                    let list = literal_addrs(v, &s.dns_nameservers).join(",");
                    options.push(format_option(v, &tag, "dns-server", &[&list]));
                }
            } else {
                without_ns.push(s.id.as_str());
            }
            if !self.serve.dns_domain.is_empty() && v == IpVersion::V6 {
                options.push(format_option(
                    v,
                    &tag,
                    "domain-search",
                    &[&self.serve.dns_domain],
                ));
            }
            if v != IpVersion::V4 {
                continue;
            }
            let mut gateway = s.gateway_ip.map(|g| g.to_string());
            let mut routes: Vec<String> = Vec::new();
            for hr in &s.host_routes {
                if hr.destination.to_string() == "0.0.0.0/0" {
                    if gateway.is_none() {
                        gateway = Some(hr.nexthop.to_string());
                    }
                } else {
                    routes.push(format!("{},{}", hr.destination, hr.nexthop));
                }
            }
            let isolated = self.isolated(s);
            let metadata_via = if let Some(ip) = self.ovn_metadata_ip(s) {
                Some(ip.to_string())
            } else if self.serve.force_metadata || (isolated && self.serve.enable_isolated_metadata)
            {
                self.interface_ip(&s.id).map(|ip| ip.to_string())
            } else if !isolated {
                gateway.clone()
            } else {
                None
            };
            if let Some(via) = metadata_via {
                routes.push(format!("{METADATA_IP}/32,{via}"));
            }
            for other in &all {
                if other.ip_version == IpVersion::V4
                    && other.cidr.to_string() != s.cidr.to_string()
                    && other.segment_id == s.segment_id
                {
                    routes.insert(0, format!("{},0.0.0.0", other.cidr));
                }
            }
            if !routes.is_empty() {
                if let Some(gw) = &gateway {
                    routes.push(format!("0.0.0.0/0,{gw}"));
                }
                let list = routes.join(",");
                options.push(format_option(v, &tag, "classless-static-route", &[&list]));
                options.push(format_option(v, &tag, WIN2K3_STATIC_ROUTES, &[&list]));
            }
            match &gateway {
                Some(gw) => options.push(format_option(v, &tag, "router", &[gw])),
                None => options.push(format_option(v, &tag, "router", &[])),
            }
        }
        (options, without_ns)
    }

    /// `_generate_opts_per_port`: every extra DHCP option (client-id excepted) whose IP version
    /// the port has an address of, then the multi-agent DNS lines.
    fn opts_per_port(&self, without_ns: &[&str]) -> Vec<String> {
        let mut options = Vec::new();
        // subnet id -> DHCP port addresses, in first-seen order.
        let mut dhcp_ips: Vec<(&str, Vec<IpAddr>)> = Vec::new();
        for port in &self.net.ports {
            if !port.extra_dhcp_opts.is_empty() {
                let versions: Vec<IpVersion> = port
                    .fixed_ips
                    .iter()
                    .map(|f| version_of(f.ip_address))
                    .collect();
                for opt in &port.extra_dhcp_opts {
                    if is_client_id(&opt.opt_name) {
                        continue;
                    }
                    if versions.contains(&opt.ip_version) {
                        let value = opt.opt_value.as_deref().unwrap_or("");
                        options.push(format_option(
                            opt.ip_version,
                            &format!("port-{}", port.id),
                            &opt.opt_name,
                            &[value],
                        ));
                    }
                }
            }
            if port.device_owner == OWNER_DHCP {
                for f in &port.fixed_ips {
                    if !without_ns.contains(&f.subnet_id.as_str()) {
                        continue;
                    }
                    match dhcp_ips.iter_mut().find(|(s, _)| *s == f.subnet_id) {
                        Some((_, ips)) => ips.push(f.ip_address),
                        None => dhcp_ips.push((&f.subnet_id, vec![f.ip_address])),
                    }
                }
            }
        }
        for (subnet_id, ips) in dhcp_ips {
            for v in [IpVersion::V4, IpVersion::V6] {
                let vx: Vec<IpAddr> = ips
                    .iter()
                    .copied()
                    .filter(|ip| version_of(*ip) == v)
                    .collect();
                if vx.len() > 1 {
                    let list = literal_addrs(v, &vx).join(",");
                    options.push(format_option(
                        v,
                        &format!("subnet-{subnet_id}"),
                        "dns-server",
                        &[&list],
                    ));
                }
            }
        }
        options
    }

    /// `_output_opts_file`: the lines joined by newlines (no trailing newline, as Neutron
    /// writes it).
    pub fn opts_file(&self) -> String {
        let (mut options, without_ns) = self.opts_per_subnet();
        options.extend(self.opts_per_port(&without_ns));
        options.join("\n")
    }
}

fn version_of(ip: IpAddr) -> IpVersion {
    match ip {
        IpAddr::V4(_) => IpVersion::V4,
        IpAddr::V6(_) => IpVersion::V6,
    }
}

/// Number of addresses in a CIDR (`netaddr.IPNetwork.size`), saturating for /0 IPv6.
fn cidr_size(c: &IpNetwork) -> u128 {
    let host_bits = match c {
        IpNetwork::V4(n) => 32 - u32::from(n.prefix()),
        IpNetwork::V6(n) => 128 - u32::from(n.prefix()),
    };
    1u128.checked_shl(host_bits).unwrap_or(u128::MAX)
}

/// `_format_address_for_dnsmasq`: IPv6 addresses in brackets.
fn dnsmasq_address(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    }
}

/// `_convert_to_literal_addrs`.
fn literal_addrs(v: IpVersion, ips: &[IpAddr]) -> Vec<String> {
    ips.iter()
        .map(|ip| match v {
            IpVersion::V4 => ip.to_string(),
            IpVersion::V6 => format!("[{ip}]"),
        })
        .collect()
}

/// The names under which Neutron recognises the client-id option: `client-id`, `61`.
fn is_client_id(name: &str) -> bool {
    name == "client-id" || name == "61"
}

/// `_get_client_id`: the value of the port's first client-id option, if set and non-empty.
fn client_id(port: &Port) -> Option<&str> {
    port.extra_dhcp_opts
        .iter()
        .find(|o| is_client_id(&o.opt_name))
        .and_then(|o| o.opt_value.as_deref())
        .filter(|v| !v.is_empty())
}

/// Cuts a value at its first newline: a value can never smuggle a second line into the file.
fn first_line(s: &str) -> &str {
    s.split('\n').next().unwrap_or("")
}

/// `_format_option`: `tag:<tag>[,<extra tag>],<option>[,<values>]` where option is
/// `option6:<x>` for IPv6, the bare number for a numeric IPv4 option and `option:<name>`
/// otherwise; an option name may carry a leading `tag:<x>,` (e.g. `tag:ipxe,bootfile-name`).
pub fn format_option(v: IpVersion, tag: &str, option: &str, args: &[&str]) -> String {
    let option = first_line(option);
    // `(tag:(.*),)?(.*)$` with a greedy inner group: the extra tag ends at the last comma.
    let (extra_tag, name) = match option.strip_prefix("tag:") {
        Some(rest) => match rest.rfind(',') {
            Some(i) => (Some(&option[..4 + i]), &rest[i + 1..]),
            None => (None, option),
        },
        None => (None, option),
    };
    let name = match v {
        IpVersion::V6 => format!("option6:{name}"),
        IpVersion::V4 if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) => {
            name.to_string()
        }
        IpVersion::V4 => format!("option:{name}"),
    };
    let mut parts: Vec<&str> = vec![];
    let tag = format!("tag:{tag}");
    parts.push(&tag);
    if let Some(t) = extra_tag {
        parts.push(t);
    }
    parts.push(&name);
    for a in args {
        parts.push(first_line(a));
    }
    parts.join(",")
}

/// The interface name Neutron's driver gives the DHCP port: `ns-<port[:11]>` for bridged
/// (linuxbridge/veth) drivers, `tap<port[:11]>` for OVS.
pub fn interface_name(port_id: &str, bridged: bool) -> String {
    let short: String = port_id.chars().take(11).collect();
    if bridged {
        format!("ns-{short}")
    } else {
        format!("tap{short}")
    }
}

#[cfg(test)]
mod tests;
