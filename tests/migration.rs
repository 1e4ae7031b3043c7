//! In-place migration from the real Python `neutron-dhcp-agent` (the `neutron` package in the
//! venv of `scripts/py-venv-neutron.sh`) to this agent, and back (issue 16).
//!
//! Real peers throughout: RabbitMQ with the oslo.messaging peer playing neutron-server
//! (`tests/peer`), the Python agent with Debian's dnsmasq and haproxy and Neutron's
//! `openvswitch` interface driver (`ovs_use_veth`) on a private userspace Open vSwitch
//! (`scripts/ovs-test-env.sh`), udhcpc and `dhclient -6` as clients. The test plays the OVS
//! L2 agent: it puts the DHCP taps (which Neutron plugs on the dead VLAN 4095) and the clients
//! on one VLAN per network.
//!
//! 1. The Python agent serves an isolated IPv4 network and a DHCPv6-stateful one (dnsmasq for
//!    both, haproxy for isolated metadata); the clients get their leases from dnsmasq.
//! 2. It is stopped as systemd stops it (SIGTERM to the main process only): dnsmasq and
//!    haproxy stay. Our agent starts on the same configuration files and state path: it
//!    serves both networks on the devices the Python agent plugged (same ifindex, same OVS
//!    interface, VLAN tag kept: no re-plug) and then no dnsmasq or haproxy of those networks
//!    is left. A udhcpc loop running throughout never waits 1 s or more between two leases.
//!    The DHCPv6 client, whose lease says it is due for renewal, sends a Renew naming
//!    dnsmasq's DUID; it is answered with that DUID (no Rebind).
//!    A third network (DHCPv6) appears while our agent serves: only it ever serves it, with
//!    its own DUID.
//! 3. Rollback: our agent stops (no `--teardown-on-exit`), the Python agent starts again on
//!    the same state path and its dnsmasq serves the IPv4 client, keeps dnsmasq's DUID, and
//!    answers on the third network with the DUID our agent used there (written into
//!    `leases`, whose `duid` line Neutron keeps).
//!
//! Needs root (skips without it, one line for the suite). As root it never skips: without the
//! Python agent, OVS, dnsmasq or haproxy it fails and says what is missing. The first run
//! builds the venv with `neutron` (a few minutes).

#[path = "common/broker.rs"]
mod broker;
mod common;
#[path = "common/ovs.rs"]
mod ovs_env;

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use broker::{Peer, TestVhost};
use common::*;
use ovs_env::OvsEnv;

const AGENT_BIN: &str = env!("CARGO_BIN_EXE_neutron-dhcp-agent");

/// The longest a DHCPv4 client may wait between two answers while the agents change over.
const MAX_GAP: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------------------------------------
// Environment: private Open vSwitch, processes, polling
// ---------------------------------------------------------------------------------------------

fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out ({timeout:?}) waiting for {what}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

fn cmdline(pid: i32) -> Option<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
}

/// The live process a pid file names, if it is `program` serving `network_id`.
fn helper_pid(pid_file: &Path, program: &str, network_id: &str) -> Option<i32> {
    let pid: i32 = fs::read_to_string(pid_file).ok()?.trim().parse().ok()?;
    let cmd = cmdline(pid)?;
    (cmd.split(' ').next()?.ends_with(program) && cmd.contains(network_id)).then_some(pid)
}

fn alive(pid: i32) -> bool {
    // /proc/<pid> of a zombie still exists, its cmdline is empty.
    cmdline(pid).is_some_and(|c| !c.is_empty())
}

/// Sends `sig` to one process only (as systemd's `KillMode=process` does).
fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) on a child of ours.
    unsafe {
        libc::kill(pid, sig);
    }
}

fn stop_main_process(child: &mut Child, what: &str, timeout: Duration) -> std::process::ExitStatus {
    signal(child.id() as i32, libc::SIGTERM);
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            // What systemd does at TimeoutStopSec.
            note(&format!(
                "{what} still running {timeout:?} after SIGTERM; SIGKILL"
            ));
            signal(child.id() as i32, libc::SIGKILL);
            return child.wait().expect("wait");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// The scenario's networks, agents and clients
// ---------------------------------------------------------------------------------------------

struct Scenario {
    dir: tempfile::TempDir,
    state: PathBuf,
    conf: [PathBuf; 2],
    venv_bin: PathBuf,
    v4_net: String,
    v6_net: String,
    v4_mac: String,
    v6_mac: String,
    host: String,
    /// A DHCPv6 network that appears while our agent serves (only ever served by it before
    /// the rollback).
    new_net: String,
    new_mac: String,
    new_net_json: Value,
}

impl Scenario {
    fn new(ovs: &OvsEnv, vhost: &TestVhost, peer: &Peer) -> Scenario {
        let dir = tempfile::Builder::new()
            .prefix("ndrs-mig-")
            .tempdir()
            .expect("tempdir");
        let state = dir.path().join("state");
        fs::create_dir_all(&state).expect("state dir");
        let venv_bin = PathBuf::from(neutron_bin());
        assert!(
            venv_bin.join("neutron-dhcp-agent").is_file(),
            "{} has no neutron-dhcp-agent: scripts/py-venv-neutron.sh installs the neutron package",
            venv_bin.display()
        );
        let host = unique_name("mig");
        let neutron_conf = dir.path().join("neutron.conf");
        fs::write(
            &neutron_conf,
            format!(
                "[DEFAULT]\nhost = {host}\nstate_path = {}\ntransport_url = {}\n\
                 rpc_response_timeout = 10\n\n[AGENT]\nreport_interval = 1\n\
                 # We are root: privsep-helper (from the venv on PATH) needs no sudo.\n\
                 root_helper = env\n\n[oslo_concurrency]\nlock_path = $state_path/lock\n",
                state.display(),
                vhost.url()
            ),
        )
        .expect("write neutron.conf");
        let agent_ini = dir.path().join("dhcp_agent.ini");
        fs::write(
            &agent_ini,
            format!(
                "[DEFAULT]\ninterface_driver = openvswitch\novs_use_veth = True\n\
                 enable_isolated_metadata = True\nresync_interval = 2\n\n\
                 [OVS]\nintegration_bridge = {}\novsdb_connection = {}\ndatapath_type = netdev\n",
                ovs.bridge, ovs.tcp
            ),
        )
        .expect("write dhcp_agent.ini");
        let s = Scenario {
            dir,
            state,
            conf: [neutron_conf, agent_ini],
            venv_bin,
            v4_net: random_uuid(),
            v6_net: random_uuid(),
            v4_mac: random_mac(),
            v6_mac: random_mac(),
            host,
            new_net: random_uuid(),
            new_mac: random_mac(),
            new_net_json: Value::Null,
        };
        let (s4, s6, s7) = (random_uuid(), random_uuid(), random_uuid());
        let mut s = s;
        s.new_net_json = json!(
            {"id": s.new_net, "mtu": 1450, "name": "new-v6",
             "subnets": [{"id": s7, "cidr": "fd00:77:3::/64", "ip_version": 6, "gateway_ip": "fd00:77:3::1",
                          "enable_dhcp": true, "ipv6_address_mode": "dhcpv6-stateful", "ipv6_ra_mode": null}],
             "ports": [{"id": random_uuid(), "mac_address": s.new_mac, "device_owner": "compute:nova",
                        "device_id": "vm-7", "fixed_ips": [{"subnet_id": s7, "ip_address": "fd00:77:3::11"}]}]});
        let networks = json!([
            {"id": s.v4_net, "mtu": 1450, "name": "isolated-v4",
             "subnets": [{"id": s4, "cidr": "10.77.1.0/24", "gateway_ip": null, "enable_dhcp": true}],
             "ports": [{"id": random_uuid(), "mac_address": s.v4_mac, "device_owner": "compute:nova",
                        "device_id": "vm-4", "fixed_ips": [{"subnet_id": s4, "ip_address": "10.77.1.11"}]}]},
            {"id": s.v6_net, "mtu": 1450, "name": "stateful-v6",
             "subnets": [{"id": s6, "cidr": "fd00:77:2::/64", "ip_version": 6, "gateway_ip": "fd00:77:2::1",
                          "enable_dhcp": true, "ipv6_address_mode": "dhcpv6-stateful", "ipv6_ra_mode": null}],
             "ports": [{"id": random_uuid(), "mac_address": s.v6_mac, "device_owner": "compute:nova",
                        "device_id": "vm-6", "fixed_ips": [{"subnet_id": s6, "ip_address": "fd00:77:2::11"}]}]}
        ]);
        peer.cmd(json!({"cmd": "set_networks", "networks": networks}));
        s
    }

    fn nets(&self) -> [&str; 2] {
        [&self.v4_net, &self.v6_net]
    }

    fn net_dir(&self, net: &str) -> PathBuf {
        self.state.join("dhcp").join(net)
    }

    fn dnsmasq(&self, net: &str) -> Option<i32> {
        helper_pid(&self.net_dir(net).join("pid"), "dnsmasq", net)
    }

    fn haproxy(&self, net: &str) -> Option<i32> {
        let pids = self.state.join("external").join("pids");
        helper_pid(&pids.join(format!("{net}.pid.haproxy")), "haproxy", net)
            .or_else(|| helper_pid(&pids.join(format!("{net}.pid")), "haproxy", net))
    }

    /// Every dnsmasq and haproxy running in a network's namespace.
    fn helpers_in_namespace(&self, net: &str) -> Vec<(i32, String)> {
        netns_pids(&format!("qdhcp-{net}"))
            .into_iter()
            .filter_map(|p| Some((p, cmdline(p)?)))
            .filter(|(_, c)| {
                let prog = c.split(' ').next().unwrap_or("");
                prog.ends_with("dnsmasq") || prog.ends_with("haproxy")
            })
            .collect()
    }

    fn dnsmasq_duid(&self) -> String {
        let leases = fs::read_to_string(self.net_dir(&self.v6_net).join("leases")).expect("leases");
        leases
            .lines()
            .find_map(|l| l.strip_prefix("duid "))
            .expect("dnsmasq's leases file has a duid line")
            .to_owned()
    }

    fn start_python_agent(&self, run: &str) -> ChildGuard {
        let log = self.dir.path().join(format!("python-agent-{run}.log"));
        let out = fs::File::create(self.dir.path().join(format!("python-agent-{run}.out")))
            .expect("log file");
        let path = format!(
            "{}:{}",
            self.venv_bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let child = Command::new(self.venv_bin.join("neutron-dhcp-agent"))
            .arg("--config-file")
            .arg(&self.conf[0])
            .arg("--config-file")
            .arg(&self.conf[1])
            .arg("--log-file")
            .arg(&log)
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .process_group(0)
            .spawn()
            .expect("start the Python neutron-dhcp-agent");
        ChildGuard::new(child, true)
    }

    fn python_log(&self, run: &str) -> String {
        let log = fs::read_to_string(self.dir.path().join(format!("python-agent-{run}.log")))
            .unwrap_or_default();
        let errors: Vec<&str> = log.lines().filter(|l| l.contains(" ERROR ")).collect();
        errors.join("\n")
    }

    /// Waits until the Python agent's dnsmasq (both networks) and haproxy (both: isolated
    /// metadata) run, and returns their pids.
    fn wait_python_serving(&self, run: &str, nets: &[&str]) -> Vec<i32> {
        let mut pids = Vec::new();
        for &net in nets {
            let what = format!("the Python agent's dnsmasq and haproxy for {net}");
            let (d, h) = wait_until(&what, Duration::from_secs(90), || {
                Some((self.dnsmasq(net)?, self.haproxy(net)?))
            });
            pids.extend([d, h]);
        }
        assert!(
            !self.python_log(run).contains("Unable to plug"),
            "{}",
            self.python_log(run)
        );
        pids
    }

    fn start_our_agent(&self) -> (ChildGuard, PathBuf) {
        let log = self.dir.path().join("ours.log");
        let child = Command::new(AGENT_BIN)
            .arg("--config-file")
            .arg(&self.conf[0])
            .arg("--config-file")
            .arg(&self.conf[1])
            .arg("--log-file")
            .arg(&log)
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start our agent");
        (ChildGuard::new(child, true), log)
    }

    /// The DHCP device the Python agent recorded (`ns-...`) and its bridge end (`tap...`).
    fn devices(&self, net: &str) -> (String, String) {
        let ns_dev = fs::read_to_string(self.net_dir(net).join("interface"))
            .expect("interface file")
            .trim()
            .to_owned();
        let tap = ns_dev.replacen("ns-", "tap", 1);
        (ns_dev, tap)
    }
}

/// What must not change when our agent takes a device over: its ifindex in the namespace,
/// the OVS interface row, the VLAN tag the L2 agent set.
fn device_identity(ovs: &OvsEnv, net: &str, ns_dev: &str, tap: &str) -> (String, String, String) {
    let link = ip(&format!("-n qdhcp-{net} -j link show dev {ns_dev}"));
    let v: Value = serde_json::from_str(&link).expect("ip -j");
    (
        v[0]["ifindex"].to_string(),
        ovs.vsctl(&["get", "Interface", tap, "_uuid"]),
        ovs.vsctl(&["get", "Port", tap, "tag"]),
    )
}

/// A client namespace on the OVS bridge, on VLAN `tag`.
struct Client {
    ns: NetnsGuard,
    root: String,
}

impl Client {
    fn new(ovs: &OvsEnv, mac: &str, tag: u16) -> Client {
        let name = unique_name("mgc");
        ip(&format!("netns add {name}"));
        let ns = NetnsGuard { name: name.clone() };
        let root = unique_name("mgv");
        ip(&format!(
            "link add {root} type veth peer name eth0 netns {name}"
        ));
        let ns_sysctl = |key: &str| {
            run_quiet("ip", &["netns", "exec", &name, "sysctl", "-qw", key]);
        };
        // No DAD on the client's link-local address: dhclient -6 can bind to it at once.
        ns_sysctl("net.ipv6.conf.eth0.accept_dad=0");
        ip(&format!("-n {name} link set eth0 address {mac}"));
        ip(&format!("-n {name} link set lo up"));
        ip(&format!("-n {name} link set eth0 up"));
        ip(&format!("link set {root} up"));
        // Full checksums on what the client sends: the userspace datapath completes none.
        run_quiet(
            "ip",
            &["netns", "exec", &name, "ethtool", "-K", "eth0", "tx", "off"],
        );
        ovs.vsctl(&["add-port", &ovs.bridge, &root, &format!("tag={tag}")]);
        Client { ns, root }
    }

    fn exec(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns.name]).args(argv);
        c.stdin(Stdio::null());
        c
    }

    /// One DORA with udhcpc (exits after the lease, or after 1 s without one).
    /// A DHCPv6 lease for `addr` with `dhclient -6` (a Solicit unless `lease` holds one);
    /// returns the lease file.
    fn dhclient6_lease(&self, lease: &Path, addr: &str) -> String {
        let pid_file = lease.with_extension("pid");
        let child = self
            .exec(&[
                "timeout",
                "30",
                "dhclient",
                "-6",
                "-1",
                "-d",
                "-sf",
                "/bin/true",
                "-pf",
                &pid_file.display().to_string(),
                "-lf",
                &lease.display().to_string(),
                "eth0",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("dhclient -6");
        let _client = ChildGuard::new(child, true);
        wait_until(
            &format!("a DHCPv6 lease for {addr}"),
            Duration::from_secs(30),
            || {
                let l = fs::read_to_string(lease).ok()?;
                l.contains(&format!("iaaddr {addr} ")).then_some(l)
            },
        )
    }

    fn udhcpc_once(&self) -> bool {
        self.exec(&[
            "udhcpc",
            "-i",
            "eth0",
            "-n",
            "-q",
            "-f",
            "-t",
            "1",
            "-T",
            "1",
            "-s",
            "/bin/true",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    }
}

/// udhcpc run back to back on a thread until [`DhcpLoop::finish`], or until dropped (a failed
/// assertion must not leave it running and holding the client's namespace).
struct DhcpLoop {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<Vec<Instant>>>,
}

impl DhcpLoop {
    fn start(client: Arc<Client>) -> DhcpLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut bound = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                if client.udhcpc_once() {
                    bound.push(Instant::now());
                }
            }
            bound
        });
        DhcpLoop {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the loop; when each lease was bound.
    fn finish(mut self) -> Vec<Instant> {
        self.stop.store(true, Ordering::Relaxed);
        let t = self.thread.take().expect("running");
        t.join().expect("dhcp loop")
    }
}

impl Drop for DhcpLoop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// dhclient's `0:1:0:1:32:aa:...` (no leading zeros) as dnsmasq writes it.
fn normalize_duid(s: &str) -> String {
    s.trim()
        .trim_end_matches(';')
        .split(':')
        .map(|b| format!("{:02x}", u8::from_str_radix(b, 16).expect("hex byte")))
        .collect::<Vec<_>>()
        .join(":")
}

fn lease_field<'a>(lease: &'a str, key: &str) -> Option<&'a str> {
    lease
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix(key))
        .map(|v| v.trim().trim_end_matches(';'))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

// ---------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------

#[test]
fn python_agent_to_ours_and_back() {
    root_or_skip!();
    for tool in ["ip", "udhcpc", "dhclient", "dnsmasq", "haproxy", "ethtool"] {
        require_tool(tool);
    }
    let ovs = OvsEnv::start("ndrs-mig-ovs-", "mgbr");
    let vhost = TestVhost::for_guest("mig");
    let peer = Peer::start(&vhost.url());
    let s = Scenario::new(&ovs, &vhost, &peer);
    // Dropped before the vhost and OVS: what both agents leave in the namespaces.
    let _namespaces: Vec<NetnsGuard> = [&s.v4_net, &s.v6_net, &s.new_net]
        .iter()
        .map(|n| NetnsGuard {
            name: format!("qdhcp-{n}"),
        })
        .collect();

    // 1. The Python agent serves.
    let mut python = s.start_python_agent("1");
    let leftovers = s.wait_python_serving("1", &s.nets());
    let mut taps = Vec::new();
    let mut identity = Vec::new();
    for (net, tag) in s.nets().into_iter().zip([101u16, 102]) {
        let (ns_dev, tap) = s.devices(net);
        // The L2 agent's part: the port's VLAN instead of Neutron's dead VLAN.
        ovs.vsctl(&["set", "Port", &tap, &format!("tag={tag}")]);
        ovs.vsctl(&["clear", "Port", &tap, "vlan_mode", "trunks"]);
        identity.push(device_identity(&ovs, net, &ns_dev, &tap));
        taps.push((ns_dev, tap));
    }
    let c4 = Arc::new(Client::new(&ovs, &s.v4_mac, 101));
    let c6 = Client::new(&ovs, &s.v6_mac, 102);
    let mut ports = vec![c4.root.clone(), c6.root.clone()];
    ports.extend(taps.iter().map(|(_, tap)| tap.clone()));
    let _ports = PortsGuard(&ovs, ports);
    assert!(
        wait_until_ok(|| c4.udhcpc_once(), 10),
        "no DHCPv4 lease from the Python agent's dnsmasq\n{}",
        s.python_log("1")
    );
    let lease6 = s.dir.path().join("dhclient6.leases");
    let first6 = c6.dhclient6_lease(&lease6, "fd00:77:2::11");
    let dnsmasq_duid = s.dnsmasq_duid();
    let leased_from =
        normalize_duid(lease_field(&first6, "option dhcp6.server-id").expect("server-id"));
    assert_eq!(
        leased_from, dnsmasq_duid,
        "the DHCPv6 lease names dnsmasq's DUID"
    );
    note(&format!("dnsmasq's DHCPv6 DUID: {dnsmasq_duid}"));

    // 2. Stop the Python agent as systemd would; its dnsmasq and haproxy stay.
    let looping = DhcpLoop::start(Arc::clone(&c4));
    thread::sleep(Duration::from_millis(500));
    let status = stop_main_process(
        &mut python.child,
        "the Python agent",
        Duration::from_secs(60),
    );
    note(&format!("Python agent stopped: {status}"));
    for pid in &leftovers {
        assert!(
            alive(*pid),
            "pid {pid} ({:?}) should outlive the Python agent",
            cmdline(*pid)
        );
    }
    let changeover = Instant::now();
    let (mut ours, our_log) = s.start_our_agent();
    let log = || fs::read_to_string(&our_log).unwrap_or_default();
    for net in s.nets() {
        wait_until(
            &format!("our agent serving {net}"),
            Duration::from_secs(30),
            || {
                log()
                    .lines()
                    .any(|l| l.contains("serving network") && l.contains(net))
                    .then_some(())
            },
        );
    }
    let served = changeover.elapsed();
    wait_until(
        "the Python agent's dnsmasq and haproxy gone",
        Duration::from_secs(15),
        || leftovers.iter().all(|p| !alive(*p)).then_some(()),
    );
    let stopped = changeover.elapsed();
    thread::sleep(Duration::from_millis(1500));
    let bound = looping.finish();
    let after = bound.iter().filter(|t| **t > changeover + stopped).count();
    let gap = bound
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or(Duration::MAX);
    // For the record: the longest gap while only dnsmasq answered, and from our start on.
    let longest = |from: Instant, to: Instant| {
        bound
            .windows(2)
            .filter(|w| w[1] > from && w[1] <= to)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default()
    };
    let start = bound.first().copied().unwrap_or(changeover);
    let end = bound.last().copied().unwrap_or(changeover);
    note(&format!(
        "changeover: ours serving after {served:?}, leftovers gone after {stopped:?}; \
         {} DHCPv4 leases in the loop ({after} after), longest gap {gap:?} \
         (dnsmasq alone {:?}, from our start {:?})",
        bound.len(),
        longest(start, changeover),
        longest(changeover, end),
    ));
    for net in s.nets() {
        assert_eq!(
            s.helpers_in_namespace(net),
            vec![],
            "dnsmasq/haproxy left in qdhcp-{net}\n{}",
            log()
        );
    }
    assert!(
        after >= 3,
        "the loop got {after} leases from our agent alone\n{}",
        log()
    );
    assert!(
        gap < MAX_GAP,
        "a DHCPv4 client waited {gap:?} between two leases\n{}",
        log()
    );
    // Adopted as they were: same device, same OVS interface, VLAN kept.
    for ((net, (ns_dev, tap)), before) in s.nets().into_iter().zip(&taps).zip(&identity) {
        assert_eq!(
            &device_identity(&ovs, net, ns_dev, tap),
            before,
            "the DHCP device of {net} was re-plugged\n{}",
            log()
        );
    }
    assert!(!log().contains("replugging"), "{}", log());

    // The DHCPv6 client renews: its lease says T1 has passed.
    let aged = fs::read_to_string(&lease6).expect("lease");
    let past = now_secs() - 4000;
    let aged: String = aged
        .lines()
        .map(|l| match l.trim().strip_prefix("starts ") {
            Some(_) => format!("{}starts {past};", &l[..l.len() - l.trim_start().len()]),
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    fs::write(&lease6, aged).expect("age the lease");
    let out6 = s.dir.path().join("dhclient6-renew.out");
    let child = c6
        .exec(&[
            "timeout",
            "30",
            "dhclient",
            "-6",
            "-d",
            "-v",
            "-sf",
            "/bin/true",
            "-pf",
            &s.dir.path().join("dhclient6.pid").display().to_string(),
            "-lf",
            &lease6.display().to_string(),
            "eth0",
        ])
        .stdout(Stdio::null())
        .stderr(fs::File::create(&out6).expect("out"))
        .spawn()
        .expect("dhclient -6 renew");
    let mut renew = ChildGuard::new(child, false);
    let text = wait_until(
        "the Reply to the client's Renew",
        Duration::from_secs(25),
        || {
            let t = fs::read_to_string(&out6).ok()?;
            let after_renew = &t[t.find("XMT: Renew on")?..];
            after_renew
                .contains("PRC: Bound to lease")
                .then(|| t.clone())
        },
    );
    renew.terminate(Duration::from_secs(1));
    assert!(
        !text.contains("XMT: Rebind"),
        "the client had to Rebind:\n{text}"
    );
    let bound_to = text[text.find("XMT: Renew on").expect("renew")..]
        .lines()
        .find_map(|l| l.strip_prefix("PRC: Bound to lease "))
        .expect("bound")
        .trim_end_matches('.');
    assert_eq!(
        bound_to, dnsmasq_duid,
        "the Renew was answered with dnsmasq's DUID:\n{text}"
    );
    assert_eq!(
        fs::read_to_string(s.net_dir(&s.v6_net).join("duid"))
            .expect("our duid file")
            .trim(),
        dnsmasq_duid
    );

    // A network that appears while our agent serves (so only it ever served it): its DHCPv6
    // DUID is ours, and must stay so after the rollback.
    peer.cmd(json!({"cmd": "upsert_network", "network": s.new_net_json}));
    peer.cast(
        &s.host,
        "network_create_end",
        json!({"network": {"id": s.new_net}}),
    );
    wait_until(
        "our agent serving the new network",
        Duration::from_secs(30),
        || {
            log()
                .lines()
                .any(|l| l.contains("serving network") && l.contains(&s.new_net))
                .then_some(())
        },
    );
    let (_, new_tap) = s.devices(&s.new_net);
    ovs.vsctl(&["set", "Port", &new_tap, "tag=103"]);
    ovs.vsctl(&["clear", "Port", &new_tap, "vlan_mode", "trunks"]);
    let c7 = Client::new(&ovs, &s.new_mac, 103);
    let _ports7 = PortsGuard(&ovs, vec![c7.root.clone(), new_tap]);
    let our_duid = fs::read_to_string(s.net_dir(&s.new_net).join("duid"))
        .expect("our duid file")
        .trim()
        .to_owned();
    let lease7 = c7.dhclient6_lease(&s.dir.path().join("dhclient7.leases"), "fd00:77:3::11");
    assert_eq!(
        normalize_duid(lease_field(&lease7, "option dhcp6.server-id").expect("server-id")),
        our_duid,
        "the new network's lease names our DUID"
    );

    // 3. Roll back.
    let status = stop_main_process(&mut ours.child, "our agent", Duration::from_secs(20));
    assert!(
        status.success(),
        "our agent exited with {status}\n{}",
        log()
    );
    drop(ours);
    let python = s.start_python_agent("2");
    let pids = s.wait_python_serving("2", &[&s.v4_net, &s.v6_net, &s.new_net]);
    for net in s.nets() {
        let d = s.dnsmasq(net).expect("dnsmasq");
        assert!(!leftovers.contains(&d), "a new dnsmasq serves {net}");
    }
    assert!(
        wait_until_ok(|| c4.udhcpc_once(), 10),
        "no DHCPv4 lease after the rollback\n{}",
        s.python_log("2")
    );
    assert_eq!(
        s.dnsmasq_duid(),
        dnsmasq_duid,
        "dnsmasq's DUID after the rollback"
    );
    // A fresh Solicit to the new network's dnsmasq: answered with the DUID we used.
    let lease7 = c7.dhclient6_lease(&s.dir.path().join("dhclient7b.leases"), "fd00:77:3::11");
    assert_eq!(
        normalize_duid(lease_field(&lease7, "option dhcp6.server-id").expect("server-id")),
        our_duid,
        "dnsmasq took over our DHCPv6 DUID for a network only we had served"
    );
    // Cleanup, not part of the scenario: the agent's process group is killed (on drop), its
    // dnsmasq and haproxy here.
    drop(python);
    for pid in pids {
        signal(pid, libc::SIGKILL);
    }
}

/// Tries `f` up to `tries` times.
fn wait_until_ok(mut f: impl FnMut() -> bool, tries: usize) -> bool {
    (0..tries).any(|_| f())
}

/// OVS ports of the clients and DHCP taps, deleted before their namespaces go (a userspace
/// datapath port whose device vanished makes ovs-vswitchd spin).
struct PortsGuard<'a>(&'a OvsEnv, Vec<String>);

impl Drop for PortsGuard<'_> {
    fn drop(&mut self) {
        for p in &self.1 {
            let _ = self.0.vsctl_try(&["--if-exists", "del-port", p]);
        }
    }
}

/// A dnsmasq in a network's namespace that no pid file names (lost, or a second copy) is found
/// through the namespace and stopped; a dnsmasq elsewhere (another network's, the host's) is
/// not touched. Both are orphans, as the Python agent's daemons are after it stopped.
#[test]
fn leftover_found_by_namespace_only_is_stopped() {
    use neutron_dhcp::migrate::{find_leftovers, stop, Kind, StatePaths, Stopped};
    root_or_skip!();
    let dir = tempfile::tempdir().expect("tempdir");
    let ns_name = unique_name("mgn");
    ip(&format!("netns add {ns_name}"));
    let ns = NetnsGuard { name: ns_name };
    // `setsid -f` forks: the fake dnsmasq is reparented, not our child.
    let orphan = |netns: Option<&str>, tag: &str| -> i32 {
        let pid_file = dir.path().join(format!("{tag}.pid"));
        let script = format!("echo $$ > {}; exec -a dnsmasq sleep 60", pid_file.display());
        let mut c = match netns {
            Some(n) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", n, "setsid"]);
                c
            }
            None => Command::new("setsid"),
        };
        let st = c
            .args(["-f", "bash", "-c", &script])
            .stdin(Stdio::null())
            .status()
            .expect("spawn a fake dnsmasq");
        assert!(st.success());
        wait_until("the fake dnsmasq", Duration::from_secs(5), || {
            let pid: i32 = fs::read_to_string(&pid_file).ok()?.trim().parse().ok()?;
            cmdline(pid)?.starts_with("dnsmasq").then_some(pid)
        })
    };
    let inside = orphan(Some(&ns.name), "inside");
    let outside = orphan(None, "outside");
    let network_id = random_uuid();
    let found = find_leftovers(
        &StatePaths::new(dir.path()),
        &network_id,
        &Path::new("/run/netns").join(&ns.name),
    );
    let outside_alive = alive(outside);
    signal(outside, libc::SIGKILL);
    assert!(outside_alive);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].kind, found[0].pid), (Kind::Dnsmasq, inside));
    assert_eq!(
        stop(found[0], &network_id, Duration::from_secs(5)).expect("stop"),
        Stopped::Terminated
    );
    assert!(!alive(inside));
}
