//! Test harness for end-to-end tests of `neutron-dhcp-agent` with real DHCP clients.
//!
//! Topology per network (as the agent builds it with `interface_driver = veth`):
//!
//! ```text
//!  qdhcp-<net>: ns-<port11>  ──veth──  tap<port11> ─┐
//!                                                   ├─ bridge brq<net11> (root ns)
//!  <client ns>:  <if>c       ──veth──  <if>r ───────┘
//! ```
//!
//! Everything a test creates is named uniquely (`unique_name`, random network/port ids) and is
//! removed by RAII guards, also when the test panics. The agent is started from the cargo-built
//! binary; its stderr is collected on a background thread so tests can wait for log lines.
//!
//! Client runs go through `scripts/dhcp-hook.sh`, which only prints what the client received
//! (it never configures the interface or touches `/etc/resolv.conf`).

#![allow(dead_code)]

pub mod root;

pub use root::have_root;
pub(crate) use root::root_or_skip;

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tempfile::TempDir;

/// The agent binary built by cargo for this test run.
pub const AGENT_BIN: &str = env!("CARGO_BIN_EXE_neutron-dhcp-agent");
/// The print-only client hook.
pub const HOOK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/dhcp-hook.sh");

/// `dns_domain` used by [`test_ini`].
pub const DNS_DOMAIN: &str = "ndrs.test";
/// `dhcp_lease_duration` used by [`test_ini`].
pub const LEASE_SECS: u32 = 600;

/// How long a client may take to get a lease it should get.
pub const LEASE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a client waits before we conclude that it gets no answer.
pub const NO_LEASE_TIMEOUT: Duration = Duration::from_secs(6);
/// How long the agent may take to bring a network up or to apply a reload.
pub const AGENT_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Preconditions, names, small helpers
// ---------------------------------------------------------------------------------------------

/// Fails the test with a clear message unless `tool` is on PATH.
pub fn require_tool(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{tool}` is not installed; run scripts/install-deps.sh (as root) first"
    );
}

/// `tool`'s path in the sbin and bin directories (root's PATH may lack the sbin ones), or its
/// bare name for PATH to resolve.
pub fn tool_path(tool: &str) -> String {
    for dir in ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        let p = Path::new(dir).join(tool);
        if p.is_file() {
            return p.display().to_string();
        }
    }
    tool.to_string()
}

/// Every client binary the tests use (after [`root_or_skip!`]: as root a missing one fails the
/// test, it never skips it).
pub fn require_client_tools() {
    for tool in ["ip", "dhclient", "udhcpc", "dhcpcd"] {
        require_tool(tool);
    }
}

/// Locks a mutex, ignoring poisoning: a failed assertion must not turn the cleanup in a
/// destructor into a second panic (which aborts and leaks everything).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn process_seed() -> u32 {
    static SEED: OnceLock<u32> = OnceLock::new();
    *SEED.get_or_init(|| {
        let b = random_bytes::<4>();
        u32::from_le_bytes(b) ^ std::process::id().wrapping_mul(2_654_435_761)
    })
}

/// A name unique to this process and call, `prefix` + 8 hex digits; usable as an interface or
/// namespace name as long as `prefix` is at most 6 characters (IFNAMSIZ is 16 with the NUL).
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!("{prefix}{:05x}{:03x}", process_seed() & 0xfffff, n & 0xfff);
    assert!(name.len() <= 15, "name {name} too long for an interface");
    name
}

/// `N` bytes from the kernel's random source (falls back to the clock).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    if fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_err()
    {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (nanos >> ((i % 16) * 8)) as u8 ^ (i as u8).wrapping_mul(97);
        }
    }
    buf
}

/// A random UUID-shaped id (lowercase, 8-4-4-4-12), like Neutron's resource ids.
pub fn random_uuid() -> String {
    let b = random_bytes::<16>();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A random MAC in OpenStack's `fa:16:3e` prefix.
pub fn random_mac() -> String {
    let b = random_bytes::<3>();
    format!("fa:16:3e:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2])
}

/// Runs a command and panics with its output unless it succeeds.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "`{cmd} {}` failed ({}): {}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command, ignoring failures (for cleanup); returns whether it succeeded.
pub fn run_quiet(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Runs `ip` with a whitespace-separated argument line (names here never contain spaces).
pub fn ip(args: &str) -> String {
    run("ip", &args.split_whitespace().collect::<Vec<_>>())
}

/// Whether a network namespace with this name exists.
pub fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

/// Whether a link with this name exists in the root namespace.
pub fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Pids of the processes in a network namespace.
pub fn netns_pids(name: &str) -> Vec<i32> {
    Command::new("ip")
        .args(["netns", "pids", name])
        .stderr(Stdio::null())
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn kill_pids(pids: &[i32], sig: i32) {
    for &pid in pids {
        if pid > 1 && pid != std::process::id() as i32 {
            // SAFETY: plain kill(2) on a pid we looked up in our own namespace.
            unsafe {
                libc::kill(pid, sig);
            }
        }
    }
}

/// Removes ANSI escape sequences (tracing's fmt layer colours its output by default).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // CSI: parameters, then one final byte in 0x40..=0x7e.
                for c in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Writes `contents` to `path` atomically (temp file + rename in the same directory).
pub fn write_atomic(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp-write");
    fs::write(&tmp, contents).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
    fs::rename(&tmp, path).unwrap_or_else(|e| panic!("rename to {}: {e}", path.display()));
}

/// Sets a parent-death signal for a child about to be spawned, so nothing outlives a test
/// process that is killed before its guards run.
fn set_pdeathsig(cmd: &mut Command, sig: i32) {
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

// ---------------------------------------------------------------------------------------------
// RAII guards
// ---------------------------------------------------------------------------------------------

/// A network namespace that is deleted (after killing every process in it) on drop.
#[derive(Debug)]
pub struct NetnsGuard {
    pub name: String,
}

impl NetnsGuard {
    /// Creates the namespace with `lo` up and IPv6 off (keeps the wire quiet).
    pub fn create(name: &str) -> NetnsGuard {
        ip(&format!("netns add {name}"));
        let guard = NetnsGuard {
            name: name.to_string(),
        };
        ip(&format!("-n {name} link set lo up"));
        for key in [
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ] {
            run_quiet("ip", &["netns", "exec", name, "sysctl", "-qw", key]);
        }
        guard
    }

    /// Kills every process left in the namespace (SIGKILL).
    pub fn kill_all(&self) {
        for _ in 0..20 {
            let pids = netns_pids(&self.name);
            if pids.is_empty() {
                return;
            }
            kill_pids(&pids, libc::SIGKILL);
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        if netns_exists(&self.name) {
            self.kill_all();
            run_quiet("ip", &["netns", "del", &self.name]);
        }
    }
}

/// Removes `qdhcp-<id>` namespaces a crashed agent may have left (taps go with them); unlike
/// [`NetnsGuard`] it kills nothing: what runs there is the agent's to stop.
pub struct NsCleanup(pub Vec<String>);

impl Drop for NsCleanup {
    fn drop(&mut self) {
        for ns in &self.0 {
            if netns_exists(ns) {
                run_quiet("ip", &["netns", "del", ns]);
            }
        }
    }
}

/// A link in the root namespace (veth end, bridge, ...) that is deleted on drop.
#[derive(Debug)]
pub struct LinkGuard {
    pub name: String,
}

impl LinkGuard {
    /// Takes ownership of an existing link.
    pub fn adopt(name: &str) -> LinkGuard {
        LinkGuard {
            name: name.to_string(),
        }
    }

    /// Creates a Linux bridge, up, without STP (ports forward immediately).
    pub fn bridge(name: &str) -> LinkGuard {
        ip(&format!("link add name {name} type bridge stp_state 0"));
        let guard = LinkGuard::adopt(name);
        ip(&format!("link set {name} up"));
        guard
    }
}

impl Drop for LinkGuard {
    fn drop(&mut self) {
        if link_exists(&self.name) {
            run_quiet("ip", &["link", "del", &self.name]);
        }
    }
}

/// A spawned process killed on drop. With `group`, the child leads its own process group and
/// the whole group is signalled (clients fork helpers: dhclient daemon, dhcpcd privsep).
#[derive(Debug)]
pub struct ChildGuard {
    pub child: Child,
    group: bool,
    reaped: Option<ExitStatus>,
}

impl ChildGuard {
    pub fn new(child: Child, group: bool) -> ChildGuard {
        ChildGuard {
            child,
            group,
            reaped: None,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        let target = if self.group { -self.pid() } else { self.pid() };
        // SAFETY: kill(2) on our own child (or its process group).
        unsafe {
            libc::kill(target, sig);
        }
    }

    /// Waits up to `timeout` for the child to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_child(&mut self.child, timeout)
    }

    /// SIGTERM, then SIGKILL after `grace` (to the group as well: stragglers); returns the
    /// exit status. Idempotent.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        if self.reaped.is_some() {
            return self.reaped;
        }
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            self.signal(libc::SIGTERM);
            if self.wait_timeout(grace).is_none() {
                self.signal(libc::SIGKILL);
            }
        }
        if self.group {
            // Stragglers. A group outlives its leader while members remain, so its id cannot
            // have been reused yet.
            self.signal(libc::SIGKILL);
        }
        self.reaped = self.child.wait().ok();
        self.reaped
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.terminate(Duration::from_secs(2));
    }
}

// ---------------------------------------------------------------------------------------------
// Test networks (Neutron get_network_info dicts)
// ---------------------------------------------------------------------------------------------

/// One Neutron port with one fixed IPv4 address.
#[derive(Clone, Debug)]
pub struct PortSpec {
    pub id: String,
    pub mac: String,
    pub ip: Ipv4Addr,
    pub device_owner: String,
    pub device_id: String,
    /// `dns_assignment[0].hostname` when set (ML2 dns extension); otherwise no dns_assignment.
    pub hostname: Option<String>,
}

impl PortSpec {
    /// A VM port (`compute:nova`) with random id and MAC.
    pub fn vm(ip: Ipv4Addr) -> PortSpec {
        PortSpec {
            id: random_uuid(),
            mac: random_mac(),
            ip,
            device_owner: "compute:nova".into(),
            device_id: random_uuid(),
            hostname: None,
        }
    }

    /// The agent's own port (`network:dhcp`).
    pub fn dhcp(ip: Ipv4Addr) -> PortSpec {
        PortSpec {
            device_owner: "network:dhcp".into(),
            ..PortSpec::vm(ip)
        }
    }

    pub fn with_hostname(mut self, hostname: &str) -> PortSpec {
        self.hostname = Some(hostname.into());
        self
    }

    /// `tap` + first 11 characters of the port id (root end of the agent's veth).
    pub fn tap_name(&self) -> String {
        format!("tap{}", &self.id[..11])
    }
}

/// One network with one IPv4 subnet, its DHCP port and VM ports.
#[derive(Clone, Debug)]
pub struct NetSpec {
    pub id: String,
    pub subnet_id: String,
    pub project_id: String,
    pub network: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    /// `(destination cidr, nexthop)`.
    pub host_routes: Vec<(String, Ipv4Addr)>,
    pub mtu: u32,
    pub dhcp_port: PortSpec,
    pub ports: Vec<PortSpec>,
}

impl NetSpec {
    /// A network with a random id, subnet `network/prefix`, the given gateway and DHCP port IP,
    /// no DNS servers, no host routes, MTU 1450 and no VM ports yet.
    pub fn new(cidr: &str, gateway: Option<Ipv4Addr>, dhcp_ip: Ipv4Addr) -> NetSpec {
        let (net, prefix) = cidr.split_once('/').expect("cidr a.b.c.d/n");
        let id = random_uuid();
        let mut dhcp_port = PortSpec::dhcp(dhcp_ip);
        // What Neutron's agent uses: dhcp<uuid5(host)>-<network_id>.
        dhcp_port.device_id = format!("dhcp{}-{id}", random_uuid());
        NetSpec {
            id,
            subnet_id: random_uuid(),
            project_id: random_uuid().replace('-', ""),
            network: net.parse().expect("cidr address"),
            prefix: prefix.parse().expect("cidr prefix"),
            gateway,
            dns: Vec::new(),
            host_routes: Vec::new(),
            mtu: 1450,
            dhcp_port,
            ports: Vec::new(),
        }
    }

    pub fn cidr(&self) -> String {
        format!("{}/{}", self.network, self.prefix)
    }

    /// Adds a VM port and returns a copy of it.
    pub fn add_port(&mut self, port: PortSpec) -> PortSpec {
        self.ports.push(port.clone());
        port
    }

    pub fn remove_port(&mut self, port_id: &str) {
        self.ports.retain(|p| p.id != port_id);
    }

    /// The bridge the agent uses with `[veth] bridge = brq{network_id}`.
    pub fn bridge_name(&self) -> String {
        format!("brq{}", &self.id[..11])
    }

    /// The agent's namespace for this network.
    pub fn namespace(&self) -> String {
        format!("qdhcp-{}", self.id)
    }

    fn port_json(&self, p: &PortSpec) -> Value {
        let mut port = json!({
            "id": p.id,
            "name": "",
            "network_id": self.id,
            "project_id": self.project_id,
            "tenant_id": self.project_id,
            "mac_address": p.mac,
            "admin_state_up": true,
            "status": "ACTIVE",
            "device_id": p.device_id,
            "device_owner": p.device_owner,
            "fixed_ips": [{"subnet_id": self.subnet_id, "ip_address": p.ip.to_string()}],
            "extra_dhcp_opts": [],
            "allowed_address_pairs": [],
            "dns_name": "",
            "binding:host_id": "ndrs-test-host",
            "binding:vif_type": "ovs",
            "binding:vnic_type": "normal",
            "security_groups": [],
            "revision_number": 1,
            "tags": [],
        });
        if let Some(h) = &p.hostname {
            port["dns_assignment"] = json!([{
                "ip_address": p.ip.to_string(),
                "hostname": h,
                "fqdn": format!("{h}.{DNS_DOMAIN}."),
            }]);
        }
        port
    }

    /// The network as `get_network_info` returns it.
    pub fn to_json(&self) -> Value {
        let routes: Vec<Value> = self
            .host_routes
            .iter()
            .map(|(d, n)| json!({"destination": d, "nexthop": n.to_string()}))
            .collect();
        let mut ports = vec![self.port_json(&self.dhcp_port)];
        ports.extend(self.ports.iter().map(|p| self.port_json(p)));
        json!({
            "id": self.id,
            "name": format!("net-{}", &self.id[..8]),
            "project_id": self.project_id,
            "tenant_id": self.project_id,
            "admin_state_up": true,
            "status": "ACTIVE",
            "shared": false,
            "mtu": self.mtu,
            "subnets": [{
                "id": self.subnet_id,
                "name": "",
                "network_id": self.id,
                "project_id": self.project_id,
                "tenant_id": self.project_id,
                "ip_version": 4,
                "cidr": self.cidr(),
                "gateway_ip": self.gateway.map(|g| g.to_string()),
                "enable_dhcp": true,
                "dns_nameservers": self.dns.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
                "host_routes": routes,
                "allocation_pools": [],
                "ipv6_ra_mode": null,
                "ipv6_address_mode": null,
                "subnetpool_id": null,
                "segment_id": null,
                "shared": false,
                "revision_number": 1,
            }],
            "non_local_subnets": [],
            "ports": ports,
        })
    }

    /// What a client with `port`'s MAC must receive, per Neutron's dnsmasq rules
    /// (reference §9.5/§9.6): router = gateway; DNS = dns_nameservers, or the DHCP port IP when
    /// empty; option 121 = host routes then 0.0.0.0/0 via the gateway, and nothing at all when
    /// there are no host routes (isolated subnet, metadata off); MTU from the network; host name
    /// from dns_assignment or `host-a-b-c-d`; domain = dns_domain; server id = DHCP port IP.
    pub fn expected_lease(&self, port: &PortSpec) -> Lease {
        let mut routes: Vec<(String, Ipv4Addr)> = self.host_routes.clone();
        if !routes.is_empty() {
            if let Some(gw) = self.gateway {
                routes.push(("0.0.0.0/0".into(), gw));
            }
        }
        Lease {
            ip: port.ip,
            prefix: self.prefix,
            router: self.gateway,
            dns: if self.dns.is_empty() {
                vec![self.dhcp_port.ip]
            } else {
                self.dns.clone()
            },
            mtu: (self.mtu > 0).then_some(self.mtu as u16),
            hostname: Some(
                port.hostname
                    .clone()
                    .unwrap_or_else(|| format!("host-{}", port.ip.to_string().replace('.', "-"))),
            ),
            domain: Some(DNS_DOMAIN.to_string()),
            routes_121: routes,
            server_id: Some(self.dhcp_port.ip),
            lease_time: Some(LEASE_SECS),
        }
    }
}

/// The standalone networks file for these networks.
pub fn networks_json(nets: &[&NetSpec]) -> String {
    let list: Vec<Value> = nets.iter().map(|n| n.to_json()).collect();
    serde_json::to_string_pretty(&list).expect("serialize networks")
}

/// The agent config used by the tests (veth driver, per-network bridges, metadata off).
pub fn test_ini() -> String {
    format!(
        "[DEFAULT]\n\
         interface_driver = veth\n\
         dhcp_lease_duration = {LEASE_SECS}\n\
         dns_domain = {DNS_DOMAIN}\n\
         enable_isolated_metadata = false\n\
         force_metadata = false\n\
         dhcp_broadcast_reply = false\n\
         \n\
         [veth]\n\
         bridge = brq{{network_id}}\n"
    )
}

// ---------------------------------------------------------------------------------------------
// The agent under test
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct LogState {
    lines: Vec<String>,
    eof: bool,
}

#[derive(Default)]
struct LogBuf {
    state: Mutex<LogState>,
    cond: Condvar,
}

/// Names the agent creates for a network, remembered for the post-mortem cleanup.
#[derive(Default)]
struct Created {
    network_ids: Vec<String>,
    taps: Vec<String>,
}

impl Created {
    fn learn(&mut self, networks_json: &str) {
        let Ok(Value::Array(nets)) = serde_json::from_str::<Value>(networks_json) else {
            return;
        };
        for net in nets {
            if let Some(id) = net["id"].as_str() {
                if !self.network_ids.iter().any(|x| x == id) {
                    self.network_ids.push(id.to_string());
                }
            }
            for port in net["ports"].as_array().into_iter().flatten() {
                if port["device_owner"] == "network:dhcp" {
                    if let Some(pid) = port["id"].as_str().filter(|p| p.len() >= 11) {
                        let tap = format!("tap{}", &pid[..11]);
                        if !self.taps.contains(&tap) {
                            self.taps.push(tap);
                        }
                    }
                }
            }
        }
    }
}

/// A running `neutron-dhcp-agent` in standalone mode.
pub struct Agent {
    child: Option<Child>,
    pid: i32,
    dir: TempDir,
    networks_path: PathBuf,
    log: Arc<LogBuf>,
    reader: Option<JoinHandle<()>>,
    created: Mutex<Created>,
}

impl Agent {
    /// Writes `config_ini` and `networks_json` to a temp dir and starts the agent on them:
    /// `--config-file <harness.ini> --config-file <agent.ini> --networks-file <networks.json>`.
    /// The harness file sets `state_path` (temp dir) and `host`; the test's file can override.
    /// Started with `--teardown-on-exit`, so [`Agent::stop`] can check that SIGTERM removes
    /// everything.
    pub fn start(config_ini: &str, networks_json: &str) -> Agent {
        Agent::start_with(config_ini, networks_json, true, &[])
    }

    /// [`Agent::start`] with extra environment variables (e.g. systemd's `NOTIFY_SOCKET`).
    pub fn start_with_env(config_ini: &str, networks_json: &str, env: &[(&str, &str)]) -> Agent {
        Agent::start_with(config_ini, networks_json, true, env)
    }

    /// Started without `--teardown-on-exit` (the default for operators): SIGTERM leaves the
    /// namespaces and devices for the next start; stop it with [`Agent::stop_keeping_plumbing`].
    pub fn start_keeping_plumbing(config_ini: &str, networks_json: &str) -> Agent {
        Agent::start_with(config_ini, networks_json, false, &[])
    }

    fn start_with(
        config_ini: &str,
        networks_json: &str,
        teardown: bool,
        env: &[(&str, &str)],
    ) -> Agent {
        let dir = tempfile::Builder::new()
            .prefix("ndrs-agent-")
            .tempdir()
            .expect("tempdir");
        let state = dir.path().join("state");
        fs::create_dir_all(&state).expect("state dir");
        let harness_ini = dir.path().join("harness.ini");
        fs::write(
            &harness_ini,
            format!(
                "[DEFAULT]\nstate_path = {}\nhost = {}\n",
                state.display(),
                unique_name("host")
            ),
        )
        .expect("write harness.ini");
        let agent_ini = dir.path().join("dhcp_agent.ini");
        fs::write(&agent_ini, config_ini).expect("write dhcp_agent.ini");
        let networks_path = dir.path().join("networks.json");
        fs::write(&networks_path, networks_json).expect("write networks.json");

        let mut cmd = Command::new(AGENT_BIN);
        cmd.arg("--config-file")
            .arg(&harness_ini)
            .arg("--config-file")
            .arg(&agent_ini)
            .arg("--networks-file")
            .arg(&networks_path);
        if teardown {
            cmd.arg("--teardown-on-exit");
        }
        if std::env::var_os("NDRS_TEST_DEBUG").is_some() {
            cmd.arg("--debug");
        }
        cmd.envs(env.iter().copied())
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // If this test process dies without running destructors, the agent still gets SIGTERM
        // and tears its namespaces down. (Same process group: Ctrl-C reaches it too.)
        set_pdeathsig(&mut cmd, libc::SIGTERM);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {AGENT_BIN}: {e}"));
        let pid = child.id() as i32;

        let log = Arc::new(LogBuf::default());
        let stderr = child.stderr.take().expect("piped stderr");
        let reader = {
            let log = Arc::clone(&log);
            let echo = std::env::var_os("NDRS_TEST_ECHO").is_some();
            thread::spawn(move || {
                let mut r = BufReader::new(stderr);
                let mut raw = Vec::new();
                loop {
                    raw.clear();
                    match r.read_until(b'\n', &mut raw) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let line = strip_ansi(String::from_utf8_lossy(&raw).trim_end());
                            if echo {
                                eprintln!("[agent {pid}] {line}");
                            }
                            let mut st = lock(&log.state);
                            st.lines.push(line);
                            log.cond.notify_all();
                        }
                    }
                }
                lock(&log.state).eof = true;
                log.cond.notify_all();
            })
        };

        let mut created = Created::default();
        created.learn(networks_json);
        Agent {
            child: Some(child),
            pid,
            dir,
            networks_path,
            log,
            reader: Some(reader),
            created: Mutex::new(created),
        }
    }

    /// Starts the agent and waits until it serves every network in `nets`.
    pub fn start_serving(config_ini: &str, nets: &[&NetSpec]) -> Agent {
        let agent = Agent::start(config_ini, &networks_json(nets));
        for n in nets {
            agent.wait_serving(&n.id);
        }
        agent
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    pub fn networks_path(&self) -> &Path {
        &self.networks_path
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the agent has logged so far (ANSI stripped).
    pub fn log_text(&self) -> String {
        lock(&self.log.state).lines.join("\n")
    }

    /// Number of log lines so far; pass it to [`Agent::wait_for_line_since`] to only look at
    /// later lines.
    pub fn log_mark(&self) -> usize {
        lock(&self.log.state).lines.len()
    }

    /// Waits for a log line (from line index `since`) containing every string in `needles`.
    /// Returns `None` on timeout or when the agent's stderr closed (it exited) first.
    pub fn wait_for_line_since(
        &self,
        since: usize,
        needles: &[&str],
        timeout: Duration,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut st = lock(&self.log.state);
        let mut next = since;
        loop {
            while next < st.lines.len() {
                let line = &st.lines[next];
                if needles.iter().all(|n| line.contains(n)) {
                    return Some(line.clone());
                }
                next += 1;
            }
            if st.eof {
                return None;
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            st = self
                .log
                .cond
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Like [`Agent::wait_for_line_since`] from the start of the log; panics (with the log)
    /// when the line does not come.
    pub fn wait_for_log(&self, substr: &str, timeout: Duration) -> String {
        self.expect_line(0, &[substr], timeout)
    }

    fn expect_line(&self, since: usize, needles: &[&str], timeout: Duration) -> String {
        match self.wait_for_line_since(since, needles, timeout) {
            Some(line) => line,
            None => {
                let exited = if lock(&self.log.state).eof {
                    " (its stderr closed: it exited)"
                } else {
                    ""
                };
                panic!(
                    "agent did not log a line containing {needles:?} within {timeout:?}{exited}\n\
                     --- agent log ---\n{}\n--- end of agent log ---",
                    self.log_text()
                )
            }
        }
    }

    /// Waits for `serving network ... network_id=<id>`.
    pub fn wait_serving(&self, network_id: &str) -> String {
        self.expect_line(0, &["serving network", network_id], AGENT_TIMEOUT)
    }

    pub fn sighup(&self) {
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(self.pid, libc::SIGHUP);
        }
    }

    /// Replaces the networks file (atomically), sends SIGHUP and waits for
    /// `reloaded networks file`.
    pub fn reload(&self, networks_json: &str) -> String {
        lock(&self.created).learn(networks_json);
        let mark = self.log_mark();
        write_atomic(&self.networks_path, networks_json);
        self.sighup();
        self.expect_line(mark, &["reloaded networks file"], AGENT_TIMEOUT)
    }

    /// Whether the agent process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// SIGTERM, wait, and assert a clean exit: status 0, and every `qdhcp-<id>` namespace and
    /// `tap<port>` device it made is gone. Returns the full log.
    pub fn stop(mut self) -> String {
        let log = self.terminate();
        // A veth end goes away asynchronously when its peer's namespace is destroyed.
        let (network_ids, taps) = {
            let c = lock(&self.created);
            (c.network_ids.clone(), c.taps.clone())
        };
        let gone = |what: &str, exists: &dyn Fn() -> bool| {
            let deadline = Instant::now() + Duration::from_secs(5);
            while exists() {
                assert!(
                    Instant::now() < deadline,
                    "agent left {what} behind after SIGTERM\n--- agent log ---\n{log}"
                );
                thread::sleep(Duration::from_millis(50));
            }
        };
        for id in &network_ids {
            let ns = format!("qdhcp-{id}");
            gone(&format!("namespace {ns}"), &|| netns_exists(&ns));
        }
        for tap in &taps {
            gone(&format!("device {tap}"), &|| link_exists(tap));
        }
        log
    }

    /// SIGTERM an agent started with [`Agent::start_keeping_plumbing`]: asserts a clean exit
    /// with every namespace and tap still in place, and hands them over (this guard no longer
    /// removes them; the next agent on the same networks does).
    pub fn stop_keeping_plumbing(mut self) -> String {
        let log = self.terminate();
        let mut created = lock(&self.created);
        for id in &created.network_ids {
            let ns = format!("qdhcp-{id}");
            assert!(
                netns_exists(&ns),
                "namespace {ns} removed on SIGTERM\n{log}"
            );
        }
        for tap in &created.taps {
            assert!(link_exists(tap), "device {tap} removed on SIGTERM\n{log}");
        }
        created.network_ids.clear();
        created.taps.clear();
        drop(created);
        log
    }

    /// SIGTERM, wait, and assert exit status 0; returns the full log.
    fn terminate(&mut self) -> String {
        let mut child = self.child.take().expect("agent already stopped");
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(self.pid, libc::SIGTERM);
        }
        let status = wait_child(&mut child, Duration::from_secs(20));
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let log = self.log_text();
        let status = status.unwrap_or_else(|| {
            panic!("agent did not exit within 20 s of SIGTERM\n--- agent log ---\n{log}")
        });
        assert!(
            status.success(),
            "agent exited with {status} after SIGTERM\n--- agent log ---\n{log}"
        );
        log
    }

    /// Starts the agent on files that must make it fail at start-up; returns its exit status
    /// and log. Panics if it is still running after `timeout`.
    pub fn run_expecting_exit(
        config_ini: &str,
        networks_json: &str,
        timeout: Duration,
    ) -> (ExitStatus, String) {
        let mut agent = Agent::start(config_ini, networks_json);
        let mut child = agent.child.take().expect("child");
        let status = wait_child(&mut child, timeout);
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(r) = agent.reader.take() {
            let _ = r.join();
        }
        let log = agent.log_text();
        let status = status.unwrap_or_else(|| {
            panic!("agent still running after {timeout:?}\n--- agent log ---\n{log}")
        });
        (status, log)
    }
}

fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child.
            unsafe {
                libc::kill(self.pid, libc::SIGTERM);
            }
            if wait_child(&mut child, Duration::from_secs(10)).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        if thread::panicking() {
            eprintln!(
                "--- agent log (pid {}) ---\n{}\n--- end of agent log ---",
                self.pid,
                self.log_text()
            );
        }
        // Post-mortem cleanup of whatever a crashed or killed agent left; all names derive
        // from this test's random ids, so nothing else can be hit.
        let created = lock(&self.created);
        for tap in &created.taps {
            if link_exists(tap) {
                run_quiet("ip", &["link", "del", tap]);
            }
        }
        for id in &created.network_ids {
            let ns = format!("qdhcp-{id}");
            if netns_exists(&ns) {
                run_quiet("ip", &["netns", "del", &ns]);
            }
            let br = format!("brq{}", &id[..id.len().min(11)]);
            if link_exists(&br) {
                run_quiet("ip", &["link", "del", &br]);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Client namespaces and real DHCP clients
// ---------------------------------------------------------------------------------------------

/// What a client received, normalised from the hook's record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub mtu: Option<u16>,
    pub hostname: Option<String>,
    pub domain: Option<String>,
    /// Option 121 as `(destination cidr, nexthop)`, in the order received.
    pub routes_121: Vec<(String, Ipv4Addr)>,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
    /// Option 51, seconds.
    pub lease_time: Option<u32>,
}

/// Which real client to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    /// ISC dhclient 4.4 (`isc-dhcp-client`): raw LPF socket, no broadcast flag.
    Dhclient,
    /// busybox udhcpc.
    Udhcpc,
    /// dhcpcd 9 (`dhcpcd-base`), with `-A` (no ARP probe).
    Dhcpcd,
}

impl Client {
    pub const ALL: [Client; 3] = [Client::Dhclient, Client::Udhcpc, Client::Dhcpcd];

    pub fn name(self) -> &'static str {
        match self {
            Client::Dhclient => "dhclient",
            Client::Udhcpc => "udhcpc",
            Client::Dhcpcd => "dhcpcd",
        }
    }
}

/// Outcome of one client run.
#[derive(Debug)]
pub struct ClientRun {
    pub client: Client,
    pub lease: Option<Lease>,
    /// Client stdout/stderr followed by the raw hook records, for failure messages.
    pub output: String,
    pub elapsed: Duration,
}

/// One hook record (`key=value` lines between DHCP-HOOK-BEGIN and DHCP-HOOK-END).
pub type HookRecord = Vec<(String, String)>;

/// Parses every record in the hook's output.
pub fn parse_hook_records(text: &str) -> Vec<HookRecord> {
    parse_records(text, "DHCP-HOOK-BEGIN", "DHCP-HOOK-END")
}

/// Parses every `key=value` record between `begin` and `end` marker lines (the v4 and v6
/// hooks use different markers).
pub fn parse_records(text: &str, begin: &str, end: &str) -> Vec<HookRecord> {
    let mut out = Vec::new();
    let mut cur: Option<HookRecord> = None;
    for line in text.lines() {
        if line == begin {
            cur = Some(Vec::new());
        } else if line == end {
            out.extend(cur.take());
        } else if let (Some(rec), Some((k, v))) = (cur.as_mut(), line.split_once('=')) {
            rec.push((k.to_string(), v.trim().to_string()));
        }
    }
    out
}

/// A record's non-empty value for `key`.
pub fn field<'a>(rec: &'a HookRecord, key: &str) -> Option<&'a str> {
    rec.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// Whether the record reports an address the client took (bound, renewed, rebooted).
pub fn is_bound(rec: &HookRecord) -> bool {
    matches!(
        field(rec, "reason"),
        Some("BOUND" | "REBOOT" | "RENEW" | "REBIND")
    ) && field(rec, "ip").is_some()
}

fn mask_to_prefix(mask: &str) -> Option<u8> {
    let m: Ipv4Addr = mask.parse().ok()?;
    let bits = u32::from(m);
    (bits.leading_ones() + bits.trailing_zeros() == 32).then_some(bits.leading_ones() as u8)
}

/// Turns a bound hook record into a [`Lease`].
pub fn lease_from_record(rec: &HookRecord) -> Option<Lease> {
    if !is_bound(rec) {
        return None;
    }
    let ip4 = |v: &str| v.parse::<Ipv4Addr>().ok();
    let routes = field(rec, "routes")
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|pair| {
            let (dest, via) = pair.split_once(',')?;
            Some((dest.to_string(), via.parse().ok()?))
        })
        .collect();
    Some(Lease {
        ip: field(rec, "ip").and_then(ip4)?,
        prefix: field(rec, "mask").and_then(mask_to_prefix).unwrap_or(0),
        router: field(rec, "router").and_then(ip4),
        dns: field(rec, "dns")
            .unwrap_or("")
            .split_whitespace()
            .filter_map(ip4)
            .collect(),
        mtu: field(rec, "mtu").and_then(|v| v.parse().ok()),
        hostname: field(rec, "hostname").map(str::to_string),
        domain: field(rec, "domain").map(str::to_string),
        routes_121: routes,
        server_id: field(rec, "server").and_then(ip4),
        lease_time: field(rec, "lease").and_then(|v| v.parse().ok()),
    })
}

/// A client network namespace: `<name>` with interface `<name>c` (given MAC) inside, whose
/// peer `<name>r` sits on a bridge in the root namespace. Everything is removed on drop.
pub struct ClientNs {
    pub ns: String,
    /// Interface inside the namespace.
    pub ifname: String,
    /// Peer in the root namespace (on the bridge).
    pub root_ifname: String,
    pub mac: String,
    dir: TempDir,
    runs: AtomicU32,
    // Drop order: the namespace (and with it the veth pair) first, then the root end.
    netns: NetnsGuard,
    _root_link: LinkGuard,
}

impl ClientNs {
    /// Creates the namespace and veth pair and attaches the root end to `bridge` (which must
    /// exist; see [`LinkGuard::bridge`]).
    pub fn new(bridge: &str, mac: &str) -> ClientNs {
        let ns = unique_name("ndc");
        let ifname = format!("{ns}c");
        let root_ifname = format!("{ns}r");
        let netns = NetnsGuard::create(&ns);
        ip(&format!(
            "link add {root_ifname} type veth peer name {ifname} netns {ns}"
        ));
        let root_link = LinkGuard::adopt(&root_ifname);
        ip(&format!("-n {ns} link set {ifname} address {mac} up"));
        ip(&format!("link set {root_ifname} master {bridge} up"));
        let dir = tempfile::Builder::new()
            .prefix("ndrs-client-")
            .tempdir()
            .expect("tempdir");
        ClientNs {
            ns,
            ifname,
            root_ifname,
            mac: mac.to_string(),
            dir,
            runs: AtomicU32::new(0),
            netns,
            _root_link: root_link,
        }
    }

    /// Changes the client interface's MAC (no client may be running).
    pub fn set_mac(&mut self, mac: &str) {
        ip(&format!(
            "-n {} link set {} address {mac}",
            self.ns, self.ifname
        ));
        self.mac = mac.to_string();
    }

    pub fn dhclient(&self, timeout: Duration) -> Option<Lease> {
        self.run_client(Client::Dhclient, timeout).into_lease()
    }

    pub fn udhcpc(&self, timeout: Duration) -> Option<Lease> {
        self.run_client(Client::Udhcpc, timeout).into_lease()
    }

    pub fn dhcpcd(&self, timeout: Duration) -> Option<Lease> {
        self.run_client(Client::Dhcpcd, timeout).into_lease()
    }

    /// The client's command line (the commands verified in the reference, §4), run inside the
    /// namespace; `hook` is the wrapper that calls scripts/dhcp-hook.sh. Temp paths contain no
    /// whitespace, so the line is split on it.
    fn command_line(&self, client: Client, secs: u64, hook: &Path, n: u32) -> Vec<String> {
        let (dir, ifname, hook) = (self.dir.path().display(), &self.ifname, hook.display());
        let line = match client {
            Client::Dhclient => {
                let conf = self.dir.path().join(format!("dhclient-{n}.conf"));
                fs::write(
                    &conf,
                    format!(
                        "option rfc3442-classless-static-routes code 121 = array of unsigned integer 8;\n\
                         timeout {};\nretry 60;\ninitial-interval 1;\n\
                         request subnet-mask, broadcast-address, routers, domain-name,\n  \
                         domain-name-servers, host-name, interface-mtu,\n  \
                         rfc3442-classless-static-routes;\n",
                        secs.saturating_sub(1).max(2)
                    ),
                )
                .expect("write dhclient.conf");
                // -d: stays in the foreground (no daemon to chase); stopped once BOUND.
                format!(
                    "dhclient -4 -1 -d -v -cf {} -sf {hook} -lf {dir}/dhclient-{n}.leases \
                     -pf {dir}/dhclient-{n}.pid {ifname}",
                    conf.display()
                )
            }
            Client::Udhcpc => format!(
                "udhcpc -i {ifname} -n -q -f -t {} -T 2 -O mtu -O staticroutes -O search \
                 -O hostname -O domain -s {hook}",
                (secs / 2).max(1)
            ),
            // -A: no ARP probe (~2 s instead of ~8 s). Not -T: it segfaults and leaves its
            // privsep children behind.
            Client::Dhcpcd => format!(
                "dhcpcd -f /dev/null -1 -4 -B -A -t {secs} -c {hook} -o domain_name_servers \
                 -o domain_name -o interface_mtu -o classless_static_routes -o host_name {ifname}"
            ),
        };
        line.split_whitespace().map(String::from).collect()
    }

    /// Runs `client` once in the namespace and returns what it got. Bounded: the client gives
    /// up by itself after about `timeout`, and is killed (with everything it forked) at
    /// `timeout` + 4 s at the latest.
    pub fn run_client(&self, client: Client, timeout: Duration) -> ClientRun {
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        let dir = self.dir.path();
        let out_path = dir.join(format!("hook-{n}.out"));
        let log_path = dir.join(format!("client-{n}.log"));
        let wrapper = dir.join(format!("hook-{n}.sh"));
        fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nDHCP_HOOK_CLIENT={} DHCP_HOOK_OUT='{}' exec /bin/sh '{HOOK}' \"$@\"\n",
                client.name(),
                out_path.display(),
            ),
        )
        .expect("write hook wrapper");
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).expect("chmod wrapper");
        if client == Client::Dhcpcd {
            self.clean_dhcpcd_state();
        }
        let argv = self.command_line(client, timeout.as_secs().max(2), &wrapper, n);

        let log_file = fs::File::create(&log_path).expect("client log");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns])
            .args(&argv)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("dup log"))
            .stderr(log_file)
            .process_group(0);
        set_pdeathsig(&mut cmd, libc::SIGKILL);
        let started = Instant::now();
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", client.name()));
        let mut guard = ChildGuard::new(child, true);

        // Until it exits (udhcpc -q and dhcpcd -1 exit after the lease; dhclient -d does not),
        // it has printed a lease, or the hard deadline passes.
        let hard_deadline = started + timeout + Duration::from_secs(4);
        let mut bound_at: Option<Instant> = None;
        loop {
            if guard.wait_timeout(Duration::from_millis(50)).is_some() {
                break;
            }
            let now = Instant::now();
            if now >= hard_deadline {
                break;
            }
            if bound_at.is_none() {
                let text = fs::read_to_string(&out_path).unwrap_or_default();
                if parse_hook_records(&text).iter().any(is_bound) {
                    bound_at = Some(now);
                }
            }
            match (client, bound_at) {
                (Client::Dhclient, Some(_)) => break,
                // Give the others a moment to exit by themselves after the lease.
                (_, Some(t)) if now.duration_since(t) > Duration::from_secs(3) => break,
                _ => {}
            }
        }
        guard.terminate(Duration::from_secs(2));
        // dhcpcd's privsep helpers are not in the process group; nothing else runs here.
        self.netns.kill_all();
        if client == Client::Dhcpcd {
            self.clean_dhcpcd_state();
        }
        let elapsed = started.elapsed();

        let hook_text = fs::read_to_string(&out_path).unwrap_or_default();
        let lease = parse_hook_records(&hook_text)
            .iter()
            .rev()
            .find_map(lease_from_record);
        let client_log = fs::read_to_string(&log_path).unwrap_or_default();
        ClientRun {
            client,
            lease,
            output: format!(
                "--- `{}` in netns {} after {elapsed:.1?} ---\n{client_log}\n\
                 --- hook records ---\n{hook_text}",
                argv.join(" "),
                self.ns,
            ),
            elapsed,
        }
    }

    /// dhcpcd keeps `<if>.lease` under /var/lib/dhcpcd and pid/socket files under /run/dhcpcd
    /// on the host filesystem; remove ours (the interface name is unique).
    fn clean_dhcpcd_state(&self) {
        for dir in ["/var/lib/dhcpcd", "/run/dhcpcd"] {
            let Ok(entries) = fs::read_dir(dir) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name
                    .strip_prefix(&self.ifname)
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('-'))
                {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }
}

impl Drop for ClientNs {
    fn drop(&mut self) {
        self.netns.kill_all();
        self.clean_dhcpcd_state();
    }
}

impl ClientRun {
    /// The lease, printing the client's output to the (captured) test stderr when there is
    /// none, so a failing assertion comes with the client's side of the story.
    pub fn into_lease(self) -> Option<Lease> {
        if self.lease.is_none() {
            eprintln!("{}", self.output);
        }
        self.lease
    }

    /// The lease, or a panic with the client's output.
    pub fn expect_lease(self, what: &str) -> Lease {
        match self.lease {
            Some(l) => l,
            None => panic!(
                "{what}: {} got no lease\n{}",
                self.client.name(),
                self.output
            ),
        }
    }

    /// Panics (with the lease) if the client got one.
    pub fn expect_no_lease(self, what: &str) {
        if let Some(l) = &self.lease {
            panic!(
                "{what}: {} should get no answer but got {l:?}\n{}",
                self.client.name(),
                self.output
            );
        }
    }
}

/// Writes `text` to the test's (captured) stderr: shown on failure or with --nocapture.
pub fn note(text: &str) {
    eprintln!("{text}");
}

/// The bin directory of the venv with the real Neutron agents (`neutron` from PyPI, every
/// dependency pinned: `scripts/py-venv-neutron.sh`), built on first use: the metadata agent of
/// tests/metadata_e2e.rs and the Python DHCP agent of tests/migration.rs.
pub fn neutron_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/py-venv-neutron.sh");
        let out = Command::new(script)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
        assert!(out.status.success(), "{script} failed ({})", out.status);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .expect("py-venv-neutron.sh printed no path")
    })
}
