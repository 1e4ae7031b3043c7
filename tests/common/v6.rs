//! DHCPv6 additions to the end-to-end harness: networks with an IPv6 subnet (optionally dual
//! stack), client namespaces with IPv6 enabled, and the real DHCPv6 clients verified on Debian 12
//! (reference `dhcp-server-anchors.md` §4): ISC `dhclient -6` (stateful, `-S` stateless) and
//! `dhcpcd -6` (stateful, `--inform6` stateless). busybox has no udhcpc6.
//!
//! Included from test files with `#[path = "common/v6.rs"] mod v6;` next to `mod common;`.
//!
//! Clients print what they received through a generated hook that dumps the client's
//! environment (`reason`, `new_*`); it configures nothing. dhcpcd runs with tmpfs mounts over
//! `/var/lib/dhcpcd` and `/run/dhcpcd` (private to its `ip netns exec` mount namespace), so its
//! DUID and lease files never touch the host.

#![allow(dead_code)]

use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;

use crate::common::{
    ip, random_mac, random_uuid, require_tool, run_quiet, unique_name, ChildGuard, LinkGuard,
    NetnsGuard, DNS_DOMAIN,
};

/// Fails clearly unless the clients exist and the host has IPv6 (after
/// [`root_or_skip!`](crate::common::root_or_skip): as root nothing missing is skipped).
pub fn require_v6_env() {
    for tool in ["ip", "dhclient", "dhcpcd", "sh"] {
        require_tool(tool);
    }
    assert!(
        Path::new("/proc/sys/net/ipv6").exists(),
        "IPv6 is disabled on this host (no /proc/sys/net/ipv6); the DHCPv6 tests need it"
    );
}

/// One Neutron port with IPv6 (and optionally IPv4) fixed IPs.
#[derive(Clone, Debug)]
pub struct Port6 {
    pub id: String,
    pub mac: String,
    pub v6: Vec<Ipv6Addr>,
    pub v4: Option<Ipv4Addr>,
    pub device_owner: String,
    pub extra_dhcp_opts: Vec<Value>,
}

impl Port6 {
    pub fn vm(v6: &[Ipv6Addr], v4: Option<Ipv4Addr>) -> Port6 {
        Port6 {
            id: random_uuid(),
            mac: random_mac(),
            v6: v6.to_vec(),
            v4,
            device_owner: "compute:nova".into(),
            extra_dhcp_opts: Vec::new(),
        }
    }

    pub fn with_opt(mut self, name: &str, value: &str, ip_version: u8) -> Port6 {
        self.extra_dhcp_opts
            .push(json!({"opt_name": name, "opt_value": value, "ip_version": ip_version}));
        self
    }
}

/// A network with one IPv6 subnet (`<prefix>/64`) and optionally one IPv4 subnet, its DHCP port
/// (`<prefix>2`, `.2`) and VM ports.
#[derive(Clone, Debug)]
pub struct Net6 {
    pub id: String,
    pub project_id: String,
    pub v6_subnet_id: String,
    pub prefix: Ipv6Addr,
    /// `ipv6_address_mode` (and `ipv6_ra_mode`): `None`, `dhcpv6-stateful`, `dhcpv6-stateless`.
    pub mode: Option<&'static str>,
    pub dns: Vec<Ipv6Addr>,
    /// `(subnet id, network address)` of a /24 IPv4 subnet with gateway .1.
    pub v4: Option<(String, Ipv4Addr)>,
    pub dhcp_port: Port6,
    pub ports: Vec<Port6>,
}

impl Net6 {
    /// `prefix` like `fd00:61:1::` (a /64); `v4` like `10.62.1.0` for a dual-stack network.
    pub fn new(prefix: &str, mode: Option<&'static str>, v4: Option<&str>) -> Net6 {
        let prefix: Ipv6Addr = prefix.parse().expect("IPv6 prefix");
        let v4 = v4.map(|n| (random_uuid(), n.parse::<Ipv4Addr>().expect("IPv4 network")));
        let mut net = Net6 {
            id: random_uuid(),
            project_id: random_uuid().replace('-', ""),
            v6_subnet_id: random_uuid(),
            prefix,
            mode,
            dns: Vec::new(),
            v4,
            dhcp_port: Port6::vm(&[], None),
            ports: Vec::new(),
        };
        let v4_dhcp = net.v4_addr(2);
        net.dhcp_port = Port6 {
            device_owner: "network:dhcp".into(),
            ..Port6::vm(&[net.addr(2)], v4_dhcp)
        };
        net
    }

    /// `<prefix>` + `host`.
    pub fn addr(&self, host: u16) -> Ipv6Addr {
        let mut s = self.prefix.segments();
        s[7] = host;
        Ipv6Addr::from(s)
    }

    /// `.host` in the IPv4 subnet, if any.
    pub fn v4_addr(&self, host: u8) -> Option<Ipv4Addr> {
        self.v4.as_ref().map(|(_, n)| {
            let o = n.octets();
            Ipv4Addr::new(o[0], o[1], o[2], host)
        })
    }

    pub fn add_port(&mut self, port: Port6) -> Port6 {
        self.ports.push(port.clone());
        port
    }

    pub fn bridge_name(&self) -> String {
        format!("brq{}", &self.id[..11])
    }

    pub fn namespace(&self) -> String {
        format!("qdhcp-{}", self.id)
    }

    fn port_json(&self, p: &Port6) -> Value {
        let mut fixed: Vec<Value> =
            p.v6.iter()
                .map(|a| json!({"subnet_id": self.v6_subnet_id, "ip_address": a.to_string()}))
                .collect();
        if let (Some((sid, _)), Some(a)) = (&self.v4, p.v4) {
            fixed.push(json!({"subnet_id": sid, "ip_address": a.to_string()}));
        }
        json!({
            "id": p.id, "name": "", "network_id": self.id, "project_id": self.project_id,
            "mac_address": p.mac, "admin_state_up": true, "status": "ACTIVE",
            "device_id": if p.device_owner == "network:dhcp" {
                format!("dhcp{}-{}", random_uuid(), self.id)
            } else {
                random_uuid()
            },
            "device_owner": p.device_owner, "fixed_ips": fixed,
            "extra_dhcp_opts": p.extra_dhcp_opts, "binding:host_id": "ndrs-test-host",
            "revision_number": 1,
        })
    }

    /// The network as `get_network_info` returns it.
    pub fn to_json(&self) -> Value {
        let mut subnets = vec![json!({
            "id": self.v6_subnet_id, "name": "", "network_id": self.id,
            "ip_version": 6, "cidr": format!("{}/64", self.prefix),
            "gateway_ip": self.addr(1).to_string(), "enable_dhcp": true,
            "dns_nameservers": self.dns.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            "host_routes": [], "ipv6_address_mode": self.mode, "ipv6_ra_mode": self.mode,
            "subnetpool_id": null, "segment_id": null,
        })];
        if let Some((sid, net)) = &self.v4 {
            let o = net.octets();
            subnets.push(json!({
                "id": sid, "name": "", "network_id": self.id, "ip_version": 4,
                "cidr": format!("{net}/24"),
                "gateway_ip": Ipv4Addr::new(o[0], o[1], o[2], 1).to_string(),
                "enable_dhcp": true, "dns_nameservers": [], "host_routes": [],
                "ipv6_address_mode": null, "ipv6_ra_mode": null,
            }));
        }
        let mut ports = vec![self.port_json(&self.dhcp_port)];
        ports.extend(self.ports.iter().map(|p| self.port_json(p)));
        json!({
            "id": self.id, "name": format!("net6-{}", &self.id[..8]),
            "project_id": self.project_id, "admin_state_up": true, "status": "ACTIVE",
            "mtu": 1450, "subnets": subnets, "non_local_subnets": [], "ports": ports,
        })
    }
}

/// The standalone networks file for these networks.
pub fn networks_json6(nets: &[&Net6]) -> String {
    let list: Vec<Value> = nets.iter().map(|n| n.to_json()).collect();
    serde_json::to_string_pretty(&list).expect("serialize networks")
}

/// Which DHCPv6 client, in which mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client6 {
    /// `dhclient -6` (DUID-LLT from the interface MAC), stateful.
    Dhclient,
    /// `dhclient -6 -D LL` (DUID-LL), stateful.
    DhclientDuidLl,
    /// `dhclient -6 -S`: Information-Request only.
    DhclientStateless,
    /// `dhcpcd -6` with `ia_na`, stateful (rapid commit).
    Dhcpcd,
    /// `dhcpcd -6` with a DUID-EN (no MAC in it), stateful: found by link layer only.
    DhcpcdDuidEn,
    /// `dhcpcd -6 --inform6`: Information-Request only.
    DhcpcdInform,
}

impl Client6 {
    pub fn name(self) -> &'static str {
        match self {
            Client6::Dhclient => "dhclient -6",
            Client6::DhclientDuidLl => "dhclient -6 -D LL",
            Client6::DhclientStateless => "dhclient -6 -S",
            Client6::Dhcpcd => "dhcpcd -6",
            Client6::DhcpcdDuidEn => "dhcpcd -6 (DUID-EN)",
            Client6::DhcpcdInform => "dhcpcd -6 --inform6",
        }
    }

    fn is_dhclient(self) -> bool {
        matches!(
            self,
            Client6::Dhclient | Client6::DhclientDuidLl | Client6::DhclientStateless
        )
    }
}

/// What a DHCPv6 client received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease6 {
    /// Leased addresses, sorted (empty for stateless).
    pub addresses: Vec<Ipv6Addr>,
    pub dns: Vec<Ipv6Addr>,
    /// Domain search list, without trailing dots.
    pub search: Vec<String>,
}

/// One hook record: the client's environment at one script call.
pub type Record6 = crate::common::HookRecord;

pub fn parse_records6(text: &str) -> Vec<Record6> {
    crate::common::parse_records(text, "DHCP6-HOOK-BEGIN", "DHCP6-HOOK-END")
}

pub fn field6<'a>(rec: &'a Record6, key: &str) -> Option<&'a str> {
    crate::common::field(rec, key)
}

/// Script calls that report configuration the client took.
pub fn is_result(rec: &Record6) -> bool {
    matches!(
        field6(rec, "reason"),
        Some("BOUND6" | "RENEW6" | "REBIND6" | "REBOOT6" | "INFORM6")
    )
}

/// Addresses a record reports: dhclient calls the script once per address
/// (`new_ip6_address`), dhcpcd lists them as `new_dhcp6_ia_na<i>_ia_addr<j>`.
pub fn record_addresses(rec: &Record6) -> Vec<Ipv6Addr> {
    rec.iter()
        .filter(|(k, _)| {
            k == "new_ip6_address"
                || (k.starts_with("new_dhcp6_ia_na")
                    && k.contains("_ia_addr")
                    && !k.ends_with("time"))
        })
        .filter_map(|(_, v)| v.parse().ok())
        .collect()
}

/// Folds the result records of one client run into a lease.
pub fn lease_from_records(records: &[Record6]) -> Option<Lease6> {
    let results: Vec<&Record6> = records.iter().filter(|r| is_result(r)).collect();
    let last = results.last()?;
    let mut addresses: Vec<Ipv6Addr> = results.iter().flat_map(|r| record_addresses(r)).collect();
    addresses.sort();
    addresses.dedup();
    let words = |key: &str| -> Vec<String> {
        field6(last, key)
            .unwrap_or("")
            .split_whitespace()
            .map(|w| w.trim_end_matches('.').to_string())
            .collect()
    };
    Some(Lease6 {
        addresses,
        dns: words("new_dhcp6_name_servers")
            .iter()
            .filter_map(|w| w.parse().ok())
            .collect(),
        search: words("new_dhcp6_domain_search"),
    })
}

/// Outcome of one client run.
#[derive(Debug)]
pub struct Run6 {
    pub client: Client6,
    pub lease: Option<Lease6>,
    pub records: Vec<Record6>,
    /// Client output and raw hook records, for failure messages.
    pub output: String,
    pub elapsed: Duration,
}

impl Run6 {
    pub fn expect_lease(self, what: &str) -> Lease6 {
        match self.lease {
            Some(l) => l,
            None => panic!(
                "{what}: {} got nothing\n{}",
                self.client.name(),
                self.output
            ),
        }
    }

    pub fn expect_nothing(self, what: &str) {
        if let Some(l) = &self.lease {
            panic!(
                "{what}: {} should get nothing but got {l:?}\n{}",
                self.client.name(),
                self.output
            );
        }
    }
}

/// A client network namespace with IPv6 on: `<name>` with interface `<name>c` (given MAC)
/// inside, whose peer `<name>r` is on a bridge in the root namespace. DAD is off in the client
/// namespace so its link-local address is usable at once. Removed on drop.
pub struct ClientNs6 {
    pub ns: String,
    pub ifname: String,
    pub root_ifname: String,
    pub mac: String,
    dir: TempDir,
    runs: AtomicU32,
    netns: NetnsGuard,
    _root_link: LinkGuard,
}

impl ClientNs6 {
    pub fn new(bridge: &str, mac: &str) -> ClientNs6 {
        Self::with_addr_mode(bridge, mac, false)
    }

    /// `random_link_local`: the interface's link-local address is random (`addr_gen_mode=3`),
    /// not EUI-64, so the server cannot read the MAC from it.
    pub fn with_addr_mode(bridge: &str, mac: &str, random_link_local: bool) -> ClientNs6 {
        let ns = unique_name("nd6");
        let ifname = format!("{ns}c");
        let root_ifname = format!("{ns}r");
        let netns = NetnsGuard::create(&ns);
        // NetnsGuard turns IPv6 off to keep the wire quiet; this namespace needs it.
        for key in [
            "net.ipv6.conf.all.disable_ipv6=0",
            "net.ipv6.conf.default.disable_ipv6=0",
            "net.ipv6.conf.default.accept_dad=0",
            "net.ipv6.conf.default.accept_ra=0",
            "net.ipv6.conf.default.dad_transmits=0",
        ] {
            run_quiet("ip", &["netns", "exec", &ns, "sysctl", "-qw", key]);
        }
        if random_link_local {
            run_quiet(
                "ip",
                &[
                    "netns",
                    "exec",
                    &ns,
                    "sysctl",
                    "-qw",
                    "net.ipv6.conf.default.addr_gen_mode=3",
                ],
            );
        }
        ip(&format!(
            "link add {root_ifname} type veth peer name {ifname} netns {ns}"
        ));
        let root_link = LinkGuard::adopt(&root_ifname);
        ip(&format!("-n {ns} link set {ifname} address {mac} up"));
        ip(&format!("link set {root_ifname} master {bridge} up"));
        let dir = tempfile::Builder::new()
            .prefix("ndrs-client6-")
            .tempdir()
            .expect("tempdir");
        let c = ClientNs6 {
            ns,
            ifname,
            root_ifname,
            mac: mac.to_string(),
            dir,
            runs: AtomicU32::new(0),
            netns,
            _root_link: root_link,
        };
        c.wait_link_local();
        c
    }

    /// (Re-)attaches the root end of the client's veth to `bridge`.
    pub fn attach(&self, bridge: &str) {
        ip(&format!("link set {} master {bridge} up", self.root_ifname));
    }

    /// The interface's link-local address, once it is usable.
    pub fn link_local(&self) -> Option<Ipv6Addr> {
        let out = Command::new("ip")
            .args([
                "-n",
                &self.ns,
                "-6",
                "addr",
                "show",
                "dev",
                &self.ifname,
                "scope",
                "link",
            ])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        if text.contains("tentative") {
            return None;
        }
        text.split_whitespace()
            .skip_while(|w| *w != "inet6")
            .nth(1)
            .and_then(|a| a.split('/').next())
            .and_then(|a| a.parse().ok())
    }

    fn wait_link_local(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.link_local().is_none() {
            assert!(
                Instant::now() < deadline,
                "no usable link-local address on {} in {}",
                self.ifname,
                self.ns
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn write_hook(&self, n: u32) -> (std::path::PathBuf, std::path::PathBuf) {
        let out = self.dir.path().join(format!("hook6-{n}.out"));
        let hook = self.dir.path().join(format!("hook6-{n}.sh"));
        fs::write(
            &hook,
            format!(
                "#!/bin/sh\n{{\necho DHCP6-HOOK-BEGIN\necho \"argv1=$1\"\n\
                 env | grep -E '^(reason|interface|protocol|new_|old_)' | sort\n\
                 echo DHCP6-HOOK-END\n}} >> '{}'\nexit 0\n",
                out.display()
            ),
        )
        .expect("write hook");
        fs::set_permissions(&hook, fs::Permissions::from_mode(0o755)).expect("chmod hook");
        (hook, out)
    }

    /// The client's command line, run inside the namespace.
    fn command_line(&self, client: Client6, secs: u64, hook: &Path, n: u32) -> Vec<String> {
        let dir = self.dir.path().display().to_string();
        let (ifname, hook) = (&self.ifname, hook.display());
        if client.is_dhclient() {
            let conf = self.dir.path().join(format!("dhclient6-{n}.conf"));
            fs::write(&conf, "request dhcp6.name-servers, dhcp6.domain-search;\n")
                .expect("write dhclient.conf");
            let mode = match client {
                Client6::DhclientDuidLl => "-D LL",
                Client6::DhclientStateless => "-S",
                _ => "",
            };
            // -d: foreground; -1: one attempt. Stopped by us once it reports.
            return format!(
                "dhclient -6 {mode} -1 -d -v -cf {} -sf {hook} -lf {dir}/d6-{n}.leases \
                 -pf {dir}/d6-{n}.pid {ifname}",
                conf.display()
            )
            .split_whitespace()
            .map(String::from)
            .collect();
        }
        let conf = self.dir.path().join(format!("dhcpcd6-{n}.conf"));
        let ia = if client == Client6::DhcpcdInform {
            ""
        } else {
            "ia_na 1\n"
        };
        fs::write(
            &conf,
            format!("noipv6rs\n{ia}option dhcp6_name_servers, dhcp6_domain_search\n"),
        )
        .expect("write dhcpcd.conf");
        let inform = if client == Client6::DhcpcdInform {
            "--inform6"
        } else {
            ""
        };
        // A DUID-EN (type 2) dhcpcd reads instead of making one from the MAC.
        let duid = if client == Client6::DhcpcdDuidEn {
            "printf '00:02:00:00:ab:11:6e:64:72:73\\n' > /var/lib/dhcpcd/duid && "
        } else {
            ""
        };
        let script = format!(
            "mount -t tmpfs none /var/lib/dhcpcd && mount -t tmpfs none /run/dhcpcd && {duid}\
             exec dhcpcd -f {} -1 -6 -B -d -t {secs} {inform} -c {hook} {ifname}",
            conf.display()
        );
        vec!["sh".into(), "-c".into(), script]
    }

    /// Runs `client` once and returns what it got; bounded by `timeout` (+4 s hard stop).
    pub fn run(&self, client: Client6, timeout: Duration) -> Run6 {
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        let (hook, out_path) = self.write_hook(n);
        let argv = self.command_line(client, timeout.as_secs().max(2), &hook, n);
        let log_path = self.dir.path().join(format!("client6-{n}.log"));
        let log_file = fs::File::create(&log_path).expect("client log");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns])
            .args(&argv)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("dup log"))
            .stderr(log_file)
            .process_group(0);
        let started = Instant::now();
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", client.name()));
        let mut guard = ChildGuard::new(child, true);
        let hard_deadline = started + timeout + Duration::from_secs(4);
        let mut reported_at: Option<Instant> = None;
        loop {
            if guard.wait_timeout(Duration::from_millis(50)).is_some() {
                break;
            }
            let now = Instant::now();
            if now >= hard_deadline || (reported_at.is_none() && now >= started + timeout) {
                break;
            }
            if reported_at.is_none() {
                let text = fs::read_to_string(&out_path).unwrap_or_default();
                if parse_records6(&text).iter().any(is_result) {
                    reported_at = Some(now);
                }
            }
            // dhclient reports each address in its own script call: give it a moment for the
            // others; dhcpcd -1 exits by itself.
            if let Some(t) = reported_at {
                if now.duration_since(t) > Duration::from_millis(1500) {
                    break;
                }
            }
        }
        guard.terminate(Duration::from_secs(2));
        self.netns.kill_all();
        let elapsed = started.elapsed();
        let hook_text = fs::read_to_string(&out_path).unwrap_or_default();
        let records = parse_records6(&hook_text);
        let client_log = fs::read_to_string(&log_path).unwrap_or_default();
        Run6 {
            client,
            lease: lease_from_records(&records),
            records,
            output: format!(
                "--- `{}` in netns {} after {elapsed:.1?} ---\n{client_log}\n\
                 --- hook records ---\n{hook_text}",
                argv.join(" "),
                self.ns
            ),
            elapsed,
        }
    }

    /// Starts `dhclient -6` in the foreground for as long as the returned guard lives (renewals
    /// included); its hook records accumulate in the returned file.
    pub fn start_dhclient_daemon(&self) -> (ChildGuard, std::path::PathBuf, std::path::PathBuf) {
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        let (hook, out_path) = self.write_hook(n);
        let mut argv = self.command_line(Client6::Dhclient, 60, &hook, n);
        argv.retain(|a| a != "-1");
        let log_path = self.dir.path().join(format!("client6-{n}.log"));
        let log_file = fs::File::create(&log_path).expect("client log");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .args(&argv)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("dup log"))
            .stderr(log_file)
            .process_group(0)
            .spawn()
            .expect("start dhclient -6");
        (ChildGuard::new(child, true), out_path, log_path)
    }
}

impl Drop for ClientNs6 {
    fn drop(&mut self) {
        self.netns.kill_all();
    }
}

/// Agent configuration for the DHCPv6 tests: the common one plus optional extra `[DEFAULT]`
/// lines (e.g. renewal times).
pub fn test_ini6(extra_default: &str) -> String {
    let base = crate::common::test_ini();
    base.replacen("[DEFAULT]\n", &format!("[DEFAULT]\n{extra_default}"), 1)
}

/// The search list every client gets: `dns_domain` of [`crate::common::test_ini`].
pub fn expected_search() -> Vec<String> {
    vec![DNS_DOMAIN.to_string()]
}
