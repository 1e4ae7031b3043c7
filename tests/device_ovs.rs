//! Integration tests of the `openvswitch` interface driver against a real Open vSwitch (Debian's
//! `openvswitch-switch`), started privately by `scripts/ovs-test-env.sh` in userspace mode
//! (`ovs-vswitchd --disable-system`, bridge with `datapath_type=netdev`: no kernel module
//! needed), with its own database, sockets and logs in a temp dir.
//!
//! They need root: without it they skip (one line for the suite); as root they fail — never
//! skip — when Open vSwitch cannot be started.
//! One Open vSwitch serves every test of this binary (two userspace ovs-vswitchd in one network
//! namespace would collide on their `ovs-netdev` device); it is stopped when the test process
//! exits, by an atexit hook or, if the process is killed, by the script's watchdog. Networks,
//! ports, namespaces and client interfaces are named from random ids, and guards remove them
//! (OVS ports first: a userspace-datapath port whose device vanished with its namespace makes
//! ovs-vswitchd spin) even when an assertion fails. What the driver did is checked with
//! `ovs-vsctl` and `ip`, independently of the code under test; leases are checked with real
//! dhclient and udhcpc behind OVS, served by the crate's DHCP server.
//!
//! The DHCP port plumbing is driven through the library (`DeviceManager`), not the agent binary.

mod common;
#[path = "common/ovs.rs"]
mod ovs_env;

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::*;
use neutron_dhcp::config::ServeConfig;
use neutron_dhcp::device::{
    checksum_offload, disable_checksum_offload, in_netns, namespace_name, DeviceConfig,
    DeviceManager, InterfaceDriver, OvsConfig, Plugged, PlumbPlan,
};
use neutron_dhcp::dhcp::server::{DhcpServer, Endpoint};
use neutron_dhcp::model::Network;
use neutron_dhcp::view::cache::NetworkCache;
use ovs_env::OvsEnv;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// The private Open vSwitch
// ---------------------------------------------------------------------------------------------

static ENV: OnceLock<OvsEnv> = OnceLock::new();
static START: Mutex<()> = Mutex::new(());

extern "C" fn stop_ovs_at_exit() {
    if let Some(env) = ENV.get() {
        env.stop();
    }
}

/// The Open vSwitch of this test process, started on first use.
fn ovs() -> &'static OvsEnv {
    let _guard = START.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(env) = ENV.get() {
        return env;
    }
    let started = Instant::now();
    let env = OvsEnv::start("ndrs-ovs-", "ndbr");
    note(&format!(
        "test Open vSwitch up in {:.1?}: {} bridge {}",
        started.elapsed(),
        env.unix,
        env.bridge
    ));
    // SAFETY: registers a plain `extern "C" fn()` that only reads a initialised OnceLock.
    unsafe {
        libc::atexit(stop_ovs_at_exit);
    }
    let _ = ENV.set(env);
    ENV.get().expect("just set")
}

impl OvsEnv {
    /// `ovs-vsctl get TABLE RECORD COLUMN[:KEY]`, string quotes removed.
    fn get(&self, table: &str, record: &str, column: &str) -> String {
        self.vsctl(&["get", table, record, column])
            .trim_matches('"')
            .to_owned()
    }

    fn ports(&self) -> Vec<String> {
        self.vsctl(&["list-ports", &self.bridge])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn ofport(&self, port: &str) -> i64 {
        self.get("Interface", port, "ofport")
            .parse()
            .expect("ofport is a number")
    }

    fn config(&self, remote: &str, use_veth: bool) -> DeviceConfig {
        DeviceConfig {
            driver: InterfaceDriver::Openvswitch,
            ovs: OvsConfig {
                integration_bridge: self.bridge.clone(),
                ovsdb_connection: remote.to_owned(),
                ovsdb_timeout: Duration::from_secs(5),
                datapath_type: "netdev".into(),
                use_veth,
            },
            ..DeviceConfig::default()
        }
    }
}

/// Removes what a test may have left: OVS ports first, then namespaces and root links.
struct Cleanup<'a> {
    env: &'a OvsEnv,
    ports: Vec<String>,
    namespaces: Vec<String>,
    links: Vec<String>,
}

impl<'a> Cleanup<'a> {
    fn new(env: &'a OvsEnv) -> Self {
        Cleanup {
            env,
            ports: vec![],
            namespaces: vec![],
            links: vec![],
        }
    }

    fn network(&mut self, net: &NetSpec) {
        self.ports.push(net.dhcp_port.tap_name());
        self.namespaces.push(net.namespace());
        self.links.push(net.dhcp_port.tap_name());
    }
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for p in &self.ports {
            let _ = self.env.vsctl_try(&["--if-exists", "del-port", p]);
        }
        for ns in &self.namespaces {
            if netns_exists(ns) {
                run_quiet("ip", &["netns", "del", ns]);
            }
        }
        for l in &self.links {
            if link_exists(l) {
                run_quiet("ip", &["link", "del", l]);
            }
        }
    }
}

/// A client namespace whose veth is an access port of the OVS bridge with VLAN `tag`.
struct OvsClient<'a> {
    env: &'a OvsEnv,
    // Dropped after the OVS port is deleted (see Drop).
    ns: ClientNs,
}

impl<'a> OvsClient<'a> {
    fn new(env: &'a OvsEnv, mac: &str, tag: u16) -> OvsClient<'a> {
        // ClientNs attaches its root end to a Linux bridge; borrow one just for that.
        let lb = unique_name("ndlb");
        let _lb = LinkGuard::bridge(&lb);
        let ns = ClientNs::new(&lb, mac);
        ip(&format!("link set {} nomaster", ns.root_ifname));
        env.vsctl(&[
            "add-port",
            &env.bridge,
            &ns.root_ifname,
            &format!("tag={tag}"),
        ]);
        OvsClient { env, ns }
    }

    /// What a VM's virtual NIC provides: complete checksums on what the client's kernel sends
    /// (the userspace datapath never completes a partial one).
    async fn full_checksums(&self) {
        disable_checksum_offload(&self.ns.ns, &self.ns.ifname, false)
            .await
            .expect("turn off TX checksum offload on the client");
    }

    fn run(&self, client: Client, timeout: Duration) -> ClientRun {
        // The clients block: tell the runtime, so the DHCP server keeps a worker.
        tokio::task::block_in_place(|| self.ns.run_client(client, timeout))
    }
}

/// Two clients at once.
fn run_both(a: (&OvsClient, Client), b: (&OvsClient, Client)) -> (ClientRun, ClientRun) {
    tokio::task::block_in_place(|| {
        std::thread::scope(|s| {
            let ta = s.spawn(|| a.0.ns.run_client(a.1, LEASE_TIMEOUT));
            let tb = s.spawn(|| b.0.ns.run_client(b.1, LEASE_TIMEOUT));
            (ta.join().unwrap(), tb.join().unwrap())
        })
    })
}

impl Drop for OvsClient<'_> {
    fn drop(&mut self) {
        let _ = self
            .env
            .vsctl_try(&["--if-exists", "del-port", &self.ns.root_ifname]);
    }
}

// ---------------------------------------------------------------------------------------------
// Kernel state, read with `ip`
// ---------------------------------------------------------------------------------------------

/// `ip [-n NS] -d -j link show dev DEV`, or `None` if there is no such device.
fn link(ns: Option<&str>, dev: &str) -> Option<Value> {
    let mut args = vec![];
    if let Some(ns) = ns {
        args.extend(["-n", ns]);
    }
    args.extend(["-d", "-j", "link", "show", "dev", dev]);
    let out = Command::new("ip")
        .args(&args)
        .stderr(Stdio::null())
        .output()
        .unwrap();
    if !out.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    Some(v[0].clone())
}

fn is_up(l: &Value) -> bool {
    l["flags"]
        .as_array()
        .is_some_and(|f| f.iter().any(|x| x == "UP"))
}

fn v4_addrs(ns: &str, dev: &str) -> Vec<String> {
    let v: Value =
        serde_json::from_str(&ip(&format!("-n {ns} -j -4 addr show dev {dev}"))).unwrap();
    v[0]["addr_info"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| format!("{}/{}", x["local"].as_str().unwrap(), x["prefixlen"]))
                .collect()
        })
        .unwrap_or_default()
}

fn carrier_changes(ns: &str, dev: &str) -> String {
    run(
        "ip",
        &[
            "netns",
            "exec",
            ns,
            "cat",
            &format!("/sys/class/net/{dev}/carrier_changes"),
        ],
    )
    .trim()
    .to_owned()
}

/// Waits up to 5 s for `cond`.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers for networks
// ---------------------------------------------------------------------------------------------

fn addr(third: u8, last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 67, third, last)
}

fn network(third: u8) -> NetSpec {
    let mut net = NetSpec::new(
        &format!("10.67.{third}.0/24"),
        Some(addr(third, 1)),
        addr(third, 2),
    );
    net.dns = vec![addr(third, 53)];
    net.mtu = 1400;
    net
}

fn plan_for(net: &NetSpec, cfg: &DeviceConfig) -> (Network, PlumbPlan) {
    let network = Network::from_json(&net.to_json()).expect("valid network");
    let own = network
        .ports
        .iter()
        .find(|p| p.id == net.dhcp_port.id)
        .expect("DHCP port")
        .clone();
    let plan = PlumbPlan::for_network(&network, &own, cfg);
    (network, plan)
}

async fn serve(net: &NetSpec, network: Network, plugged: &Plugged) -> DhcpServer {
    let cache = NetworkCache::new(ServeConfig {
        dhcp_lease_duration: i64::from(LEASE_SECS),
        dns_domain: DNS_DOMAIN.into(),
        ..ServeConfig::default()
    });
    let view = cache.upsert(network, &net.dhcp_port.id);
    DhcpServer::start(
        Endpoint {
            network_id: net.id.clone(),
            namespace: plugged.namespace.clone(),
            ifname: plugged.ifname.clone(),
            ifindex: plugged.ifindex,
        },
        view,
    )
    .await
    .expect("start the DHCP server")
}

/// A RENEWING DHCPREQUEST from the leased address (`ciaddr` set, sent by unicast): the server
/// answers through its kernel's UDP stack, so the ACK crosses OVS with whatever UDP checksum
/// the kernel wrote, and the client's kernel drops it if that is wrong. Returns the ACK's
/// `yiaddr`.
async fn renew_by_unicast(c: &OvsClient<'_>, lease: &Lease, mac: &str) -> Result<Ipv4Addr, String> {
    use dhcproto::v4::{DhcpOption, Message, MessageType};
    use dhcproto::{Decodable, Encodable};
    let ns = c.ns.ns.clone();
    ip(&format!(
        "-n {ns} addr add {}/{} dev {}",
        lease.ip, lease.prefix, c.ns.ifname
    ));
    let server = lease.server_id.ok_or("lease without server id")?;
    let ciaddr = lease.ip;
    let chaddr: Vec<u8> = mac
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    let xid = u32::from_le_bytes(random_bytes::<4>());
    let z = Ipv4Addr::UNSPECIFIED;
    let mut m = Message::new_with_id(xid, ciaddr, z, z, z, &chaddr);
    m.opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Request));
    let request = m.to_vec().unwrap();
    let res = in_netns(&ns, move || -> Result<Ipv4Addr, String> {
        let sock = std::net::UdpSocket::bind((ciaddr, 68)).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut buf = [0u8; 1500];
        for _ in 0..6 {
            sock.send_to(&request, (server, 67))
                .map_err(|e| e.to_string())?;
            while let Ok((n, _)) = sock.recv_from(&mut buf) {
                let Ok(reply) = Message::decode(&mut dhcproto::Decoder::new(&buf[..n])) else {
                    continue;
                };
                if reply.xid() == xid
                    && reply.opts().get(dhcproto::v4::OptionCode::MessageType)
                        == Some(&DhcpOption::MessageType(MessageType::Ack))
                {
                    return Ok(reply.yiaddr());
                }
            }
        }
        Err(format!(
            "no DHCPACK from {server} to the unicast renewal from {ciaddr}"
        ))
    })
    .await
    .map_err(|e| e.to_string())?;
    res
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// The whole life of one DHCP port, as the agent and the OVS agent see it.
async fn plug_serve_replug_unplug(use_veth: bool, third: u8) {
    let env = ovs();
    for tool in ["dhclient", "udhcpc", "ovs-vsctl"] {
        require_tool(tool);
    }
    let mut net = network(third);
    let vm1 = net.add_port(PortSpec::vm(addr(third, 10)).with_hostname("vm-one"));
    let vm2 = net.add_port(PortSpec::vm(addr(third, 11)));
    let mut cleanup = Cleanup::new(env);
    cleanup.network(&net);
    let ns = net.namespace();
    let tap = net.dhcp_port.tap_name();
    let nsif = if use_veth {
        format!("ns-{}", &net.dhcp_port.id[..11])
    } else {
        tap.clone()
    };
    let cfg = env.config(&env.unix, use_veth);
    let (network, mut plan) = plan_for(&net, &cfg);
    let dm = DeviceManager::new(cfg.clone());

    let plugged = dm.setup(&plan).await.expect("plug the DHCP port");
    assert_eq!(plugged.namespace, ns);
    assert_eq!(plugged.ifname, nsif);

    // What neutron-openvswitch-agent looks for.
    assert_eq!(env.vsctl(&["port-to-br", &tap]), env.bridge);
    assert_eq!(
        env.get("Interface", &tap, "type"),
        if use_veth { "" } else { "internal" }
    );
    assert_eq!(
        env.get("Interface", &tap, "external_ids:iface-id"),
        net.dhcp_port.id
    );
    assert_eq!(
        env.get("Interface", &tap, "external_ids:iface-status"),
        "active"
    );
    assert_eq!(
        env.get("Interface", &tap, "external_ids:attached-mac"),
        net.dhcp_port.mac
    );
    assert_eq!(
        env.get("Port", &tap, "tag"),
        "4095",
        "dead VLAN until wired"
    );
    let ofport = env.ofport(&tap);
    assert!(ofport > 0, "ofport {ofport}");

    // The namespace device.
    let dev = link(Some(&ns), &nsif).expect("device in the namespace");
    assert_eq!(dev["address"], net.dhcp_port.mac.as_str());
    assert_eq!(dev["mtu"], 1400);
    assert!(is_up(&dev), "{dev}");
    assert_eq!(
        dev["linkinfo"]["info_kind"],
        if use_veth { "veth" } else { "tun" }
    );
    assert_eq!(
        dev["ifindex"].as_u64(),
        Some(u64::from(plugged.ifindex)),
        "{dev}"
    );
    assert_eq!(
        v4_addrs(&ns, &nsif),
        vec![format!("{}/24", net.dhcp_port.ip)]
    );
    let (rx, tx) = checksum_offload(&ns, &nsif).await.unwrap();
    assert!(!tx, "TX checksum offload must be off on {nsif}");
    if use_veth {
        assert!(
            !rx,
            "RX checksum offload must be off on {nsif} (veth + netdev)"
        );
        let root_end = link(None, &tap).expect("bridge end of the veth in the root namespace");
        assert_eq!(root_end["linkinfo"]["info_kind"], "veth");
        assert_eq!(root_end["mtu"], 1400);
        assert!(is_up(&root_end), "{root_end}");
        assert!(link(None, &nsif).is_none());
    } else {
        assert!(
            link(None, &tap).is_none(),
            "the internal port was moved out of the root namespace"
        );
    }

    let server = serve(&net, network.clone(), &plugged).await;
    let tag = 100 + u16::from(third);
    let c1 = OvsClient::new(env, &vm1.mac, tag);
    let c2 = OvsClient::new(env, &vm2.mac, tag);

    // Still on the dead VLAN: the client on the network's VLAN hears nothing.
    c1.run(Client::Udhcpc, Duration::from_secs(3))
        .expect_no_lease("DHCP port not yet wired by the L2 agent");

    // What neutron-openvswitch-agent does when it binds the port.
    env.vsctl(&[
        "set",
        "Port",
        &tap,
        &format!("tag={tag}"),
        "--",
        "clear",
        "Port",
        &tap,
        "trunks",
        "vlan_mode",
    ]);

    let (r1, r2) = run_both((&c1, Client::Dhclient), (&c2, Client::Udhcpc));
    let lease1 = r1.expect_lease("dhclient behind OVS");
    assert_eq!(lease1, net.expected_lease(&vm1));
    assert_eq!(
        r2.expect_lease("udhcpc behind OVS"),
        net.expected_lease(&vm2)
    );
    let (r1, r2) = run_both((&c1, Client::Udhcpc), (&c2, Client::Dhclient));
    assert_eq!(
        r1.expect_lease("udhcpc behind OVS"),
        net.expected_lease(&vm1)
    );
    assert_eq!(
        r2.expect_lease("dhclient behind OVS"),
        net.expected_lease(&vm2)
    );

    // Replies that go through the server's kernel (addressed clients) cross OVS intact too.
    c1.full_checksums().await;
    assert_eq!(
        renew_by_unicast(&c1, &lease1, &vm1.mac).await,
        Ok(vm1.ip),
        "unicast renewal through OVS"
    );

    // A restarted agent (fresh DeviceManager) re-plugs nothing: same device, same ofport, the
    // L2 agent's tag kept, no carrier flap.
    let carrier = carrier_changes(&ns, &nsif);
    let again = DeviceManager::new(cfg.clone())
        .setup(&plan)
        .await
        .expect("setup again");
    assert_eq!(again, plugged);
    assert_eq!(env.ofport(&tap), ofport, "port re-plugged");
    assert_eq!(env.get("Port", &tap, "tag"), tag.to_string());
    assert_eq!(carrier_changes(&ns, &nsif), carrier, "link flapped");

    // The network's MTU changes: applied to the device, nothing re-plugged.
    plan.mtu = Some(1300);
    let changed = dm.setup(&plan).await.expect("setup with a new MTU");
    assert_eq!(changed.ifindex, plugged.ifindex);
    assert_eq!(link(Some(&ns), &nsif).unwrap()["mtu"], 1300);
    if use_veth {
        assert_eq!(link(None, &tap).unwrap()["mtu"], 1300);
    }
    assert_eq!(env.ofport(&tap), ofport);

    // Someone deletes the OVS port: the next setup puts it back.
    env.vsctl(&["del-port", &tap]);
    let repaired = dm
        .setup(&plan)
        .await
        .expect("setup after the port vanished");
    assert_eq!(env.vsctl(&["port-to-br", &tap]), env.bridge);
    assert_eq!(
        env.get("Interface", &tap, "external_ids:iface-id"),
        net.dhcp_port.id
    );
    if use_veth {
        // The veth pair was fine: only the port was re-added.
        assert_eq!(repaired.ifindex, plugged.ifindex);
    }
    assert!(is_up(&link(Some(&ns), &nsif).expect("device back")));
    assert_eq!(
        v4_addrs(&ns, &nsif),
        vec![format!("{}/24", net.dhcp_port.ip)]
    );

    server.stop().await;
    drop((c1, c2));
    dm.teardown(&net.id, &net.dhcp_port.id)
        .await
        .expect("teardown");
    assert!(!env.ports().contains(&tap), "OVS port removed");
    assert!(!netns_exists(&ns), "namespace removed");
    eventually("the tap to go", || link(None, &tap).is_none());
    // Idempotent.
    dm.teardown(&net.id, &net.dhcp_port.id)
        .await
        .expect("teardown again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_port_is_plugged_like_neutron_and_serves_clients_behind_ovs() {
    root_or_skip!();
    plug_serve_replug_unplug(false, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ovs_use_veth_plugs_a_veth_pair_and_serves_clients_behind_ovs() {
    root_or_skip!();
    plug_serve_replug_unplug(true, 2).await;
}

/// ovsdb-server unreachable, silent, or the bridge missing: clear errors within the timeout,
/// back-off, and networks already plugged keep being set up (and served).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ovsdb_failures_are_clear_errors_and_never_hang_plugged_networks() {
    root_or_skip!();
    let env = ovs();
    let mut cleanup = Cleanup::new(env);
    let net = network(3);
    let other = network(4);
    cleanup.network(&net);
    cleanup.network(&other);
    let good = env.config(&env.unix, false);
    let (_, plan) = plan_for(&net, &good);
    let (_, other_plan) = plan_for(&other, &good);
    let plugged = DeviceManager::new(good.clone())
        .setup(&plan)
        .await
        .expect("plug with a working ovsdb");
    let ofport = env.ofport(&net.dhcp_port.tap_name());

    // Unreachable: the plugged network is still set up (kept as it is, with a warning); a new
    // plug fails at once, naming the server, and the next attempt waits for the back-off.
    let dir = tempfile::tempdir().unwrap();
    let missing = format!("unix:{}/nothing.sock", dir.path().display());
    let mut bad_cfg = env.config(&missing, false);
    let bad = DeviceManager::new(bad_cfg.clone());
    let started = Instant::now();
    let err = bad.setup(&other_plan).await.unwrap_err().to_string();
    assert!(err.contains(&missing), "{err}");
    assert!(err.contains("cannot connect to ovsdb-server"), "{err}");
    let again = bad
        .setup(&plan)
        .await
        .expect("plugged network despite ovsdb");
    assert_eq!(again, plugged);
    let err = bad.setup(&other_plan).await.unwrap_err().to_string();
    assert!(err.contains("next attempt in"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(env.ofport(&net.dhcp_port.tap_name()), ofport);

    // Silent (accepts, never answers): bounded by ovsdb_timeout, never a hang.
    let silent_path = dir.path().join("silent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&silent_path).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().take(8) {
            held.push(s);
        }
        std::thread::sleep(Duration::from_secs(60));
    });
    let silent = format!("unix:{}", silent_path.display());
    bad_cfg.ovs.ovsdb_connection = silent.clone();
    bad_cfg.ovs.ovsdb_timeout = Duration::from_millis(800);
    let started = Instant::now();
    let err = DeviceManager::new(bad_cfg.clone())
        .setup(&other_plan)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("did not answer"), "{err}");
    assert!(err.contains(&silent), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    // No integration bridge: Neutron does not create it, neither do we.
    let mut nobr = good.clone();
    nobr.ovs.integration_bridge = unique_name("ndno");
    let err = DeviceManager::new(nobr.clone())
        .setup(&other_plan)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!(
            "integration bridge {} does not exist",
            nobr.ovs.integration_bridge
        )),
        "{err}"
    );

    // Teardown while ovsdb is unreachable: an error, the namespace still goes, and the port's
    // device is parked in the root namespace; a later teardown deletes the port.
    let tap = net.dhcp_port.tap_name();
    let err = bad
        .teardown(&net.id, &net.dhcp_port.id)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("ovsdb-server"), "{err}");
    assert!(!netns_exists(&net.namespace()));
    assert!(
        link(None, &tap).is_some(),
        "device parked in the root namespace"
    );
    assert!(env.ports().contains(&tap));
    let dm = DeviceManager::new(good);
    dm.teardown(&net.id, &net.dhcp_port.id)
        .await
        .expect("teardown with ovsdb back");
    assert!(!env.ports().contains(&tap));
    eventually("ovs-vswitchd to delete the device", || {
        link(None, &tap).is_none()
    });
    dm.teardown(&other.id, &other.dhcp_port.id).await.unwrap();
    assert!(!netns_exists(&other.namespace()));
}

/// Over `tcp:`: external_ids corrected in place, stale devices of the namespace unplugged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_remote_corrects_external_ids_and_removes_stale_devices() {
    root_or_skip!();
    let env = ovs();
    let mut cleanup = Cleanup::new(env);
    let net = network(5);
    cleanup.network(&net);
    let ns = net.namespace();
    let tap = net.dhcp_port.tap_name();
    let cfg = env.config(&env.tcp, false);
    let (_, plan) = plan_for(&net, &cfg);
    let dm = DeviceManager::new(cfg);
    let plugged = dm.setup(&plan).await.expect("plug over tcp");
    let ofport = env.ofport(&tap);

    // external_ids damaged (another key must survive): fixed in place, no re-plug.
    env.vsctl(&[
        "set",
        "Interface",
        &tap,
        "external_ids:iface-status=down",
        "external_ids:attached-mac=fa:16:3e:00:00:00",
        "external_ids:other=kept",
    ]);
    let again = dm.setup(&plan).await.unwrap();
    assert_eq!(again, plugged);
    assert_eq!(
        env.get("Interface", &tap, "external_ids:iface-status"),
        "active"
    );
    assert_eq!(
        env.get("Interface", &tap, "external_ids:attached-mac"),
        net.dhcp_port.mac
    );
    assert_eq!(env.get("Interface", &tap, "external_ids:other"), "kept");
    assert_eq!(env.ofport(&tap), ofport);

    // A device of a port that no longer exists, left in the namespace (a previous DHCP port):
    // it and its OVS port go.
    let stale = format!("tap{}", &random_uuid()[..11]);
    cleanup.ports.push(stale.clone());
    env.vsctl(&[
        "add-port",
        &env.bridge,
        &stale,
        "--",
        "set",
        "Interface",
        &stale,
        "type=internal",
    ]);
    eventually("the stale internal device", || link(None, &stale).is_some());
    ip(&format!("link set {stale} netns {ns}"));
    // A plain stale device too (a veth pair inside the namespace).
    let dummy = unique_name("ndst");
    ip(&format!(
        "-n {ns} link add {dummy} type veth peer name {dummy}p"
    ));
    dm.setup(&plan).await.unwrap();
    assert!(!env.ports().contains(&stale), "stale OVS port deleted");
    eventually("the stale devices to go", || {
        link(Some(&ns), &stale).is_none() && link(Some(&ns), &dummy).is_none()
    });
    assert!(link(Some(&ns), &tap).is_some(), "own device kept");
    assert_eq!(env.ofport(&tap), ofport);

    // ovs_use_veth switched on and off again: the port is re-plugged in the new shape and
    // nothing of the old one is left.
    let nsif = format!("ns-{}", &net.dhcp_port.id[..11]);
    let veth = DeviceManager::new(env.config(&env.tcp, true));
    let plugged = veth.setup(&plan).await.expect("re-plug as a veth");
    assert_eq!(plugged.ifname, nsif);
    assert_eq!(env.get("Interface", &tap, "type"), "");
    assert_eq!(
        link(None, &tap).expect("bridge end")["linkinfo"]["info_kind"],
        "veth"
    );
    eventually("the internal device to go", || {
        link(Some(&ns), &tap).is_none()
    });
    assert_eq!(
        v4_addrs(&ns, &nsif),
        vec![format!("{}/24", net.dhcp_port.ip)]
    );
    let plugged = dm.setup(&plan).await.expect("re-plug as an internal port");
    assert_eq!(plugged.ifname, tap);
    assert_eq!(env.get("Interface", &tap, "type"), "internal");
    assert!(link(Some(&ns), &nsif).is_none(), "veth gone");
    assert!(
        link(None, &tap).is_none(),
        "internal device moved into the namespace"
    );
    assert_eq!(
        env.get("Interface", &tap, "external_ids:iface-id"),
        net.dhcp_port.id
    );

    dm.teardown(&net.id, &net.dhcp_port.id).await.unwrap();
    assert!(!env.ports().contains(&tap));
    assert!(!netns_exists(&ns));
    assert_eq!(namespace_name(&net.id), ns);
}
// ---------------------------------------------------------------------------------------------
// The agent binary end to end with `interface_driver = openvswitch`.
// ---------------------------------------------------------------------------------------------

fn agent_ini(env: &OvsEnv, use_veth: bool) -> String {
    format!(
        "[DEFAULT]\n\
         interface_driver = openvswitch\n\
         ovs_use_veth = {use_veth}\n\
         dhcp_lease_duration = {LEASE_SECS}\n\
         dns_domain = {DNS_DOMAIN}\n\
         enable_isolated_metadata = false\n\
         force_metadata = false\n\
         \n\
         [OVS]\n\
         integration_bridge = {}\n\
         ovsdb_connection = {}\n\
         ovsdb_timeout = 5\n\
         datapath_type = netdev\n",
        env.bridge, env.unix
    )
}

/// The agent binary with `interface_driver = openvswitch`: plugs, serves through OVS, survives
/// a crash-restart without re-plugging, and removes the port and namespace on network delete.
fn agent_plugs_into_ovs(use_veth: bool, third: u8) {
    let env = ovs();
    let mut net = network(third);
    let vm = net.add_port(PortSpec::vm(addr(third, 10)));
    let tap = net.dhcp_port.tap_name();
    let ns = net.namespace();
    let ini = agent_ini(env, use_veth);
    let agent = Agent::start_serving(&ini, &[&net]);
    // Declared after the agent: dropped first, so OVS ports go before namespaces.
    let mut cleanup = Cleanup::new(env);
    cleanup.network(&net);

    assert_eq!(env.vsctl(&["port-to-br", &tap]), env.bridge);
    assert_eq!(
        env.get("Interface", &tap, "type"),
        if use_veth { "" } else { "internal" }
    );
    assert_eq!(
        env.get("Interface", &tap, "external_ids:iface-id"),
        net.dhcp_port.id
    );
    assert_eq!(env.get("Port", &tap, "tag"), "4095");
    let ofport = env.ofport(&tap);
    let tag = 200 + u16::from(third);
    env.vsctl(&[
        "set",
        "Port",
        &tap,
        &format!("tag={tag}"),
        "--",
        "clear",
        "Port",
        &tap,
        "trunks",
        "vlan_mode",
    ]);
    let c = OvsClient::new(env, &vm.mac, tag);
    for client in [Client::Dhclient, Client::Udhcpc] {
        assert_eq!(
            c.run(client, LEASE_TIMEOUT)
                .expect_lease("agent behind OVS"),
            net.expected_lease(&vm)
        );
    }

    // Crash and restart: nothing is re-plugged.
    let mut agent = agent;
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(agent.pid(), libc::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while agent.is_running() {
        assert!(Instant::now() < deadline, "agent survived SIGKILL");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Its guard would delete the namespace the new agent must find.
    std::mem::forget(agent);
    let agent = Agent::start_serving(&ini, &[&net]);
    assert_eq!(env.ofport(&tap), ofport, "restart re-plugged the port");
    assert_eq!(env.get("Port", &tap, "tag"), tag.to_string());
    assert_eq!(
        c.run(Client::Udhcpc, LEASE_TIMEOUT)
            .expect_lease("after restart"),
        net.expected_lease(&vm)
    );

    // Network deleted: port and namespace go.
    agent.reload("[]");
    eventually("the namespace to go", || !netns_exists(&ns));
    assert!(!env.ports().contains(&tap), "OVS port removed");
    drop(c);
    agent.stop();
}

#[test]
fn agent_with_openvswitch_driver_serves_through_ovs() {
    root_or_skip!();
    agent_plugs_into_ovs(false, 6);
}

#[test]
fn agent_with_ovs_use_veth_serves_through_ovs() {
    root_or_skip!();
    agent_plugs_into_ovs(true, 7);
}
