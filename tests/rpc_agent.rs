//! End-to-end: the agent in Neutron RPC mode against the real RabbitMQ (127.0.0.1:5672) and a
//! neutron-server stand-in running on the real Python oslo.messaging (tests/peer), with real
//! DHCP clients (ISC dhclient) in namespaces wired to the agent's DHCP port by a bridge.
//!
//! Each test uses its own RabbitMQ vhost (created and deleted with rabbitmqctl), its own agent
//! host name and random network ids, so the tests run in parallel. They need root.
//!
//! Scenarios (issue 3): 1 registration + sync + lease + heartbeats; 2 port create/delete;
//! 3 subnet DNS update; 4 fanout network delete; 5 network_create_end, agent_updated and a
//! `revived` reply; 6 reserved DHCP port adoption; 8 garbage on the agent's queues.
//!
//! `NDRS_TEST_ECHO=1` streams the agent's log, `NDRS_TEST_DEBUG=1` runs it with `--debug`,
//! `NDRS_PEER_ECHO=1` streams the peer's stdout.

#[path = "common/broker.rs"]
mod broker;
mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use broker::{agent_state, ready_ids, Peer, TestVhost};
use common::*;

/// Agent `[AGENT] report_interval` in these tests.
const REPORT_INTERVAL: Duration = Duration::from_secs(1);

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("IPv4 literal")
}

// ---------------------------------------------------------------------------------------------
// Test environment: vhost, peer, agent host, cleanup of what the agent makes
// ---------------------------------------------------------------------------------------------

// Field order is drop order: the peer stops before its vhost is deleted.
struct Env {
    peer: Peer,
    vhost: TestVhost,
    host: String,
}

impl Env {
    fn new() -> Env {
        require_client_tools();
        let vhost = TestVhost::for_guest("");
        let peer = Peer::start(&vhost.url());
        Env {
            peer,
            vhost,
            host: unique_name("rpch"),
        }
    }

    fn ini(&self) -> String {
        format!(
            "{}\n[DEFAULT]\nhost = {}\ntransport_url = {}\nrpc_response_timeout = 10\n\
             resync_interval = 2\n\n[AGENT]\nreport_interval = {}\n",
            test_ini(),
            self.host,
            self.vhost.url(),
            REPORT_INTERVAL.as_secs_f64()
        )
    }

    /// Starts the agent in RPC mode (the networks file common::Agent writes is ignored).
    fn start_agent(&self) -> Agent {
        Agent::start(&self.ini(), "[]")
    }

    /// Our device_id, as neutron-server computes it (read back from a port the agent made).
    fn dhcp_ports_of(&self, network_id: &str) -> Vec<Value> {
        let net = self.peer.network(network_id);
        net["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["device_owner"] == "network:dhcp")
            .cloned()
            .collect()
    }

    fn cast(&self, method: &str, payload: Value) {
        self.peer.cast(&self.host, method, payload);
    }

    /// Updates the peer's copy of `net` (as an API change would), keeping the DHCP ports the
    /// agent made there.
    fn update_net(&self, net: &NetSpec) {
        let mut v = neutron_net(net, DhcpPort::None);
        let ports = v["ports"].as_array_mut().expect("ports");
        for p in self.dhcp_ports_of(&net.id) {
            if !ports.iter().any(|q| q["id"] == p["id"]) {
                ports.push(p);
            }
        }
        self.peer
            .cmd(json!({"cmd": "upsert_network", "network": v}));
    }
}

/// How the fixture's own DHCP port is given to the peer.
enum DhcpPort {
    /// Not at all: the agent must create it.
    None,
    /// As a `reserved_dhcp_port` (left by another agent): the agent must adopt it.
    Reserved,
}

/// The network as the peer stores it: allocation pools left to the peer's defaults.
fn neutron_net(net: &NetSpec, mode: DhcpPort) -> Value {
    let mut v = net.to_json();
    if let Some(s) = v["subnets"][0].as_object_mut() {
        s.remove("allocation_pools");
    }
    let ports = v["ports"].as_array_mut().expect("ports");
    match mode {
        DhcpPort::None => ports.retain(|p| p["id"] != json!(net.dhcp_port.id)),
        DhcpPort::Reserved => {
            for p in ports.iter_mut() {
                if p["id"] == json!(net.dhcp_port.id) {
                    p["device_id"] = json!("reserved_dhcp_port");
                    p["binding:host_id"] = json!("dead-agent-host");
                }
            }
        }
    }
    v
}

fn port_json(net: &NetSpec, port_id: &str) -> Value {
    net.to_json()["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["id"] == json!(port_id))
        .cloned()
        .expect("port in the network")
}

fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `%Y-%m-%dT%H:%M:%S.%f`.
fn is_report_time(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 26
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && s.chars()
            .enumerate()
            .all(|(i, c)| [4, 7, 10, 13, 16, 19].contains(&i) || c.is_ascii_digit())
}

/// Waits for `serving network … <id>` logged after line `since`.
fn serving_since(agent: &Agent, since: usize, network_id: &str) {
    if agent
        .wait_for_line_since(since, &["serving network", network_id], AGENT_TIMEOUT)
        .is_none()
    {
        panic!(
            "network {network_id} not served (again)\n--- agent log ---\n{}",
            agent.log_text()
        );
    }
}

fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

/// 1: the agent registers (first report has start_flag), syncs, creates its DHCP port, plumbs
/// the network, a client gets its lease, ports are reported ready, heartbeats keep coming, and
/// the `new` reply to the first report triggers a second sync at once.
#[test]
fn registers_syncs_serves_and_keeps_reporting() {
    root_or_skip!();
    let env = Env::new();
    let mut net = NetSpec::new("10.71.0.0/24", Some(ip("10.71.0.1")), ip("10.71.0.2"));
    net.dns = vec![ip("10.71.0.53")];
    let vm = net.add_port(PortSpec::vm(ip("10.71.0.10")));
    let _ns = NsCleanup(vec![net.namespace()]);
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let client = ClientNs::new(&net.bridge_name(), &vm.mac);
    env.peer
        .cmd(json!({"cmd": "set_networks", "networks": [neutron_net(&net, DhcpPort::None)]}));

    let agent = env.start_agent();
    agent.wait_serving(&net.id);
    let lease = client
        .dhclient(LEASE_TIMEOUT)
        .expect("a lease from the agent");
    assert_eq!(lease, net.expected_lease(&vm));

    // The DHCP port the agent created: our device_id, bound to our host, lowest free IP.
    let created = env
        .peer
        .expect_call(0, "create_dhcp_port", Duration::ZERO, |_| true);
    assert_eq!(created["version"], "1.1");
    assert_eq!(created["args"]["host"], json!(env.host));
    let body = &created["args"]["port"]["port"];
    let device_id = body["device_id"].as_str().expect("device_id").to_string();
    assert!(
        device_id.starts_with("dhcp") && device_id.ends_with(&format!("-{}", net.id)),
        "{device_id}"
    );
    assert_eq!(body["network_id"], json!(net.id));
    assert_eq!(body["project_id"], json!(net.project_id));
    assert_eq!(body["fixed_ips"], json!([{"subnet_id": net.subnet_id}]));
    let ports = env.dhcp_ports_of(&net.id);
    assert_eq!(ports.len(), 1, "{ports:?}");
    assert_eq!(ports[0]["device_id"], json!(device_id));
    assert_eq!(ports[0]["binding:host_id"], json!(env.host));
    assert_eq!(ports[0]["fixed_ips"][0]["ip_address"], "10.71.0.2");

    // get_active_networks_info as DhcpPluginApi sends it, with the admin context.
    let sync = env
        .peer
        .expect_call(0, "get_active_networks_info", Duration::ZERO, |_| true);
    assert_eq!(sync["version"], "1.1");
    assert_eq!(sync["topic"], "q-plugin");
    assert_eq!(
        sync["args"],
        json!({"host": env.host, "enable_dhcp_filter": false})
    );
    assert_eq!(sync["context_is_admin"], json!(true));
    assert_eq!(sync["rpc"], "call");

    // The VM port (and the rest of the network) reported ready.
    env.peer
        .expect_call(0, "dhcp_ready_on_ports", Duration::from_secs(5), |c| {
            ready_ids(c).contains(&vm.id)
        });

    // Heartbeats: the first with start_flag, then every report_interval without it.
    let mark = env.peer.mark();
    for _ in 0..3 {
        env.peer.expect_call(
            env.peer.mark(),
            "report_state",
            Duration::from_secs(5),
            |_| true,
        );
    }
    let reports = env.peer.calls("report_state");
    assert!(reports.len() >= 4, "{} reports", reports.len());
    let first = &reports[0];
    assert_eq!(first["topic"], "q-reports-plugin");
    assert_eq!(first["version"], "1.4");
    assert_eq!(first["rpc"], "call");
    let st = agent_state(first);
    assert_eq!(st["start_flag"], json!(true));
    assert_eq!(st["binary"], "neutron-dhcp-agent");
    assert_eq!(st["topic"], "dhcp_agent");
    assert_eq!(st["agent_type"], "DHCP agent");
    assert_eq!(st["host"], json!(env.host));
    assert_eq!(st["availability_zone"], "nova");
    assert_eq!(
        st["configurations"]["dhcp_driver"],
        "neutron.agent.linux.dhcp.Dnsmasq"
    );
    assert_eq!(
        st["configurations"]["dhcp_lease_duration"],
        json!(LEASE_SECS)
    );
    assert_eq!(st["configurations"]["log_agent_heartbeats"], json!(false));
    assert!(
        is_report_time(first["args"]["time"].as_str().unwrap_or("")),
        "{first}"
    );
    let later: Vec<&Value> = reports[1..].iter().collect();
    let mut uuids = std::collections::HashSet::new();
    for r in &reports {
        assert!(uuids.insert(agent_state(r)["uuid"].as_str().unwrap_or("").to_string()));
    }
    for r in &later {
        assert!(agent_state(r).get("start_flag").is_none(), "{r}");
    }
    let last = agent_state(reports.last().expect("reports"));
    assert_eq!(last["configurations"]["networks"], json!(1), "{last}");
    assert_eq!(last["configurations"]["subnets"], json!(1), "{last}");
    assert_eq!(last["configurations"]["ports"], json!(2), "{last}");
    let recent: Vec<f64> = env.peer.events()[mark..]
        .iter()
        .filter(|e| e["event"] == "call" && e["method"] == "report_state")
        .filter_map(|e| e["ts"].as_f64())
        .collect();
    for w in recent.windows(2) {
        let gap = w[1] - w[0];
        assert!((0.5..2.0).contains(&gap), "heartbeat gap {gap:.2}s");
    }

    // `new` on the first report → a second sync right away.
    let first_seq = first["seq"].as_u64().unwrap_or(0);
    let first_ts = first["ts"].as_f64().unwrap_or(0.0);
    let resync = env
        .peer
        .calls("get_active_networks_info")
        .into_iter()
        .find(|c| c["seq"].as_u64().unwrap_or(0) > first_seq)
        .expect("a sync after the first report (reply `new`)");
    let after = resync["ts"].as_f64().unwrap_or(0.0) - first_ts;
    assert!(after < 2.0, "sync {after:.2}s after the `new` reply");

    let log = agent.stop();
    assert!(!netns_exists(&net.namespace()), "namespace left behind");
    assert!(!log.contains(":guest@"), "the broker password was logged");
    // Stopping does not release our port (a restart reuses it), as the Python agent does.
    assert!(env.peer.calls("release_dhcp_port").is_empty());
}

/// 2: port_create_end → lease + dhcp_ready_on_ports (fast); port_delete_end → no lease.
#[test]
fn port_create_and_delete_events() {
    root_or_skip!();
    let env = Env::new();
    let mut net = NetSpec::new("10.72.0.0/24", Some(ip("10.72.0.1")), ip("10.72.0.2"));
    let _ns = NsCleanup(vec![net.namespace()]);
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    env.peer
        .cmd(json!({"cmd": "set_networks", "networks": [neutron_net(&net, DhcpPort::None)]}));
    let agent = env.start_agent();
    agent.wait_serving(&net.id);

    // A new port appears in Neutron and is announced.
    let vm = net.add_port(PortSpec::vm(ip("10.72.0.11")));
    let client = ClientNs::new(&net.bridge_name(), &vm.mac);
    env.update_net(&net);
    // Let the startup sync's ready ports go out first, so we time an idle agent.
    thread::sleep(Duration::from_millis(500));
    let mark = env.peer.mark();
    let t0 = now_epoch();
    env.cast("port_create_end", json!({"port": port_json(&net, &vm.id)}));
    let ready = env
        .peer
        .expect_call(mark, "dhcp_ready_on_ports", Duration::from_secs(5), |c| {
            ready_ids(c).contains(&vm.id)
        });
    let latency = ready["ts"].as_f64().unwrap_or(f64::MAX) - t0;
    note(&format!(
        "port_create_end → dhcp_ready_on_ports: {:.1} ms (incl. the peer's cast)",
        latency * 1000.0
    ));
    assert!(latency < 0.5, "ready after {latency:.3}s");
    assert_eq!(ready_ids(&ready), vec![vm.id.clone()], "only the new port");
    let lease = client
        .dhclient(LEASE_TIMEOUT)
        .expect("lease for the new port");
    assert_eq!(lease, net.expected_lease(&vm));
    assert_eq!(
        env.dhcp_ports_of(&net.id).len(),
        1,
        "exactly one DHCP port of ours"
    );
    assert_eq!(env.peer.calls("create_dhcp_port").len(), 1);

    // Deleted: the MAC gets nothing any more.
    net.remove_port(&vm.id);
    env.update_net(&net);
    env.cast(
        "port_delete_end",
        json!({"port_id": vm.id, "network_id": net.id,
               "fixed_ips": [{"subnet_id": net.subnet_id, "ip_address": vm.ip.to_string()}]}),
    );
    thread::sleep(Duration::from_millis(300));
    client
        .run_client(Client::Dhclient, NO_LEASE_TIMEOUT)
        .expect_no_lease("deleted port");
    // A stale update of the deleted port must not bring it back.
    env.cast(
        "port_update_end",
        json!({"port": port_json(&net_with(&net, &vm), &vm.id)}),
    );
    thread::sleep(Duration::from_millis(300));
    client
        .run_client(Client::Dhclient, NO_LEASE_TIMEOUT)
        .expect_no_lease("deleted port after a stale update");
    agent.stop();
}

fn net_with(net: &NetSpec, port: &PortSpec) -> NetSpec {
    let mut n = net.clone();
    n.add_port(port.clone());
    n
}

/// 3: subnet_update_end with new DNS servers → a client asking again sees them.
#[test]
fn subnet_update_changes_dns() {
    root_or_skip!();
    let env = Env::new();
    let mut net = NetSpec::new("10.73.0.0/24", Some(ip("10.73.0.1")), ip("10.73.0.2"));
    net.dns = vec![ip("10.73.0.53")];
    let vm = net.add_port(PortSpec::vm(ip("10.73.0.10")));
    let _ns = NsCleanup(vec![net.namespace()]);
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let client = ClientNs::new(&net.bridge_name(), &vm.mac);
    env.peer
        .cmd(json!({"cmd": "set_networks", "networks": [neutron_net(&net, DhcpPort::None)]}));
    let agent = env.start_agent();
    agent.wait_serving(&net.id);
    let lease = client.dhclient(LEASE_TIMEOUT).expect("first lease");
    assert_eq!(lease.dns, vec![ip("10.73.0.53")]);

    net.dns = vec![ip("10.73.0.54"), ip("10.73.0.55")];
    env.update_net(&net);
    let mark = env.peer.mark();
    env.cast(
        "subnet_update_end",
        json!({"subnet": net.to_json()["subnets"][0].clone()}),
    );
    let call = env
        .peer
        .expect_call(mark, "get_network_info", Duration::from_secs(5), |_| true);
    assert_eq!(
        call["args"],
        json!({"network_id": net.id, "host": env.host})
    );
    assert_eq!(call["version"], "1.0");
    env.peer
        .wait_event(mark, Duration::from_secs(5), |e| {
            e["event"] == "reply" && e["method"] == "get_network_info"
        })
        .expect("get_network_info answered");
    thread::sleep(Duration::from_millis(300));
    let lease = client
        .dhclient(LEASE_TIMEOUT)
        .expect("lease after the update");
    assert_eq!(lease, net.expected_lease(&vm));
    assert_eq!(lease.dns, vec![ip("10.73.0.54"), ip("10.73.0.55")]);
    // Same subnets, same DHCP port: no port RPC, no re-plumb.
    assert!(env.peer.calls("update_dhcp_port").is_empty());
    assert_eq!(env.peer.calls("create_dhcp_port").len(), 1);
    assert_eq!(env.dhcp_ports_of(&net.id).len(), 1);
    agent.stop();
}

/// 4: network_delete_end on the fanout → namespace gone, release_dhcp_port called; a fanout
/// delete of a network we never served changes nothing.
#[test]
fn fanout_network_delete_tears_down_and_releases() {
    root_or_skip!();
    let env = Env::new();
    let net = NetSpec::new("10.74.0.0/24", Some(ip("10.74.0.1")), ip("10.74.0.2"));
    let _ns = NsCleanup(vec![net.namespace()]);
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    env.peer
        .cmd(json!({"cmd": "set_networks", "networks": [neutron_net(&net, DhcpPort::None)]}));
    let agent = env.start_agent();
    agent.wait_serving(&net.id);
    let ours = env.dhcp_ports_of(&net.id);
    let device_id = ours[0]["device_id"]
        .as_str()
        .expect("device_id")
        .to_string();
    assert!(netns_exists(&net.namespace()));

    // A network this agent never had: nothing happens (every agent gets fanouts).
    let mark = env.peer.mark();
    let stranger = random_uuid();
    env.peer
        .cmd(json!({"cmd": "fanout", "method": "network_delete_end",
                        "payload": {"network_id": stranger}}));
    thread::sleep(Duration::from_millis(500));
    assert!(
        env.peer.calls("release_dhcp_port").is_empty(),
        "released a port of a network we never served"
    );

    env.peer
        .cmd(json!({"cmd": "remove_network", "network_id": net.id}));
    env.peer
        .cmd(json!({"cmd": "fanout", "method": "network_delete_end",
                        "payload": {"network_id": net.id}}));
    let release = env
        .peer
        .expect_call(mark, "release_dhcp_port", Duration::from_secs(5), |_| true);
    assert_eq!(
        release["args"],
        json!({"network_id": net.id, "device_id": device_id, "host": env.host})
    );
    assert_eq!(release["version"], "1.0");
    wait_until("the namespace to go", Duration::from_secs(5), || {
        !netns_exists(&net.namespace())
    });
    // The next heartbeat counts no network.
    let m = env.peer.mark();
    let report = env
        .peer
        .expect_call(m, "report_state", Duration::from_secs(5), |_| true);
    assert_eq!(agent_state(&report)["configurations"]["networks"], json!(0));
    agent.stop();
}

/// 5: network_create_end for a network the peer starts returning → served; agent_updated and a
/// `revived` report reply → full resync observed at the peer.
#[test]
fn network_create_agent_updated_and_revived() {
    root_or_skip!();
    let env = Env::new();
    let mut net = NetSpec::new("10.75.0.0/24", Some(ip("10.75.0.1")), ip("10.75.0.2"));
    let vm = net.add_port(PortSpec::vm(ip("10.75.0.10")));
    let _ns = NsCleanup(vec![net.namespace()]);
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let client = ClientNs::new(&net.bridge_name(), &vm.mac);
    // Hosted by another agent at first.
    let mut elsewhere = neutron_net(&net, DhcpPort::None);
    elsewhere["_hosts"] = json!(["some-other-host"]);
    env.peer
        .cmd(json!({"cmd": "set_networks", "networks": [elsewhere]}));
    let agent = env.start_agent();
    env.peer.expect_call(
        0,
        "get_active_networks_info",
        Duration::from_secs(20),
        |_| true,
    );
    env.peer
        .expect_call(0, "report_state", Duration::from_secs(20), |_| true);
    thread::sleep(Duration::from_millis(500));
    assert!(
        !netns_exists(&net.namespace()),
        "served a network of another agent"
    );

    // Scheduled to us.
    env.update_net(&net);
    let mark = env.peer.mark();
    env.cast("network_create_end", json!({"network": {"id": net.id}}));
    env.peer
        .expect_call(mark, "get_network_info", Duration::from_secs(5), |c| {
            c["args"]["network_id"] == json!(net.id)
        });
    agent.wait_serving(&net.id);
    let lease = client
        .dhclient(LEASE_TIMEOUT)
        .expect("lease after network_create_end");
    assert_eq!(lease, net.expected_lease(&vm));

    // agent_updated → full sync.
    let mark = env.peer.mark();
    env.cast("agent_updated", json!({"admin_state_up": true}));
    env.peer.expect_call(
        mark,
        "get_active_networks_info",
        Duration::from_secs(5),
        |_| true,
    );

    // `revived` → full sync after that report.
    thread::sleep(Duration::from_millis(1500));
    let mark = env.peer.mark();
    env.peer
        .cmd(json!({"cmd": "set_report_reply", "value": "revived", "once": true}));
    let revived = env
        .peer
        .wait_event(mark, Duration::from_secs(5), |e| {
            e["event"] == "reply" && e["method"] == "report_state" && e["result"] == "revived"
        })
        .expect("a report answered `revived`");
    let seq = revived["seq"].as_u64().unwrap_or(0);
    let sync = env.peer.expect_call(
        mark,
        "get_active_networks_info",
        Duration::from_secs(5),
        |c| c["seq"].as_u64().unwrap_or(0) > seq,
    );
    let after = sync["ts"].as_f64().unwrap_or(0.0) - revived["ts"].as_f64().unwrap_or(0.0);
    assert!(after < 3.0, "resync {after:.2}s after `revived`");
    // Still served, same port (the syncs found nothing to change).
    assert_eq!(env.dhcp_ports_of(&net.id).len(), 1);
    assert_eq!(env.peer.calls("create_dhcp_port").len(), 1);
    assert!(netns_exists(&net.namespace()));
    agent.stop();
}

/// 6: a reserved DHCP port is adopted via update_dhcp_port; no port is created.
#[test]
fn reserved_dhcp_port_is_adopted() {
    root_or_skip!();
    let env = Env::new();
    let mut net = NetSpec::new("10.76.0.0/24", Some(ip("10.76.0.1")), ip("10.76.0.2"));
    let vm = net.add_port(PortSpec::vm(ip("10.76.0.10")));
    let _ns = NsCleanup(vec![net.namespace()]);
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let client = ClientNs::new(&net.bridge_name(), &vm.mac);
    env.peer
        .cmd(json!({"cmd": "set_networks", "networks": [neutron_net(&net, DhcpPort::Reserved)]}));
    let agent = env.start_agent();
    agent.wait_serving(&net.id);
    let lease = client.dhclient(LEASE_TIMEOUT).expect("lease");
    assert_eq!(
        lease,
        net.expected_lease(&vm),
        "served from the adopted port's IP"
    );

    let update = env
        .peer
        .expect_call(0, "update_dhcp_port", Duration::ZERO, |_| true);
    assert_eq!(update["version"], "1.1");
    assert_eq!(update["args"]["port_id"], json!(net.dhcp_port.id));
    assert_eq!(update["args"]["host"], json!(env.host));
    let body = &update["args"]["port"]["port"];
    assert_eq!(body["network_id"], json!(net.id));
    let device_id = body["device_id"].as_str().expect("device_id");
    assert!(device_id.starts_with("dhcp") && device_id.ends_with(&net.id));
    assert!(
        env.peer.calls("create_dhcp_port").is_empty(),
        "created a port instead of adopting the reserved one"
    );
    let ports = env.dhcp_ports_of(&net.id);
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0]["id"], json!(net.dhcp_port.id));
    assert_eq!(ports[0]["device_id"], json!(device_id));
    assert_eq!(ports[0]["binding:host_id"], json!(env.host));
    agent.stop();
}

/// Publishes raw bodies on the agent's `dhcp_agent.<host>` queue (what the peer cannot send).
fn publish_raw(url: &str, host: &str, messages: &[(&'static str, Vec<u8>)]) {
    use neutron_dhcp::rpc::amqp::{connect, Publisher};
    use neutron_dhcp::rpc::oslo::AmqpProperties;
    use neutron_dhcp::rpc::topology::cast_target;
    use neutron_dhcp::rpc::{RabbitOptions, TransportUrl};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let url = TransportUrl::parse(url).expect("url");
        let opts = RabbitOptions::default();
        let ep = url.endpoints().into_iter().next().expect("endpoint");
        let conn = connect(&ep, &opts, "ndrs-test-garbage")
            .await
            .expect("connect");
        let publisher = Publisher::new(Arc::new(conn));
        let target = cast_target(&opts, "neutron", "dhcp_agent", Some(host));
        for (content_type, body) in messages {
            let props = AmqpProperties {
                content_type,
                ..AmqpProperties::cast()
            };
            publisher
                .publish(&target, body, &props)
                .await
                .expect("publish");
        }
    });
}

/// 8: garbage bodies, wrong content type, unknown methods, wrong versions and bad payloads on
/// the agent's queues: no crash, later valid messages still processed.
#[test]
fn garbage_is_dropped_and_later_messages_processed() {
    root_or_skip!();
    let env = Env::new();
    let mut net = NetSpec::new("10.78.0.0/24", Some(ip("10.78.0.1")), ip("10.78.0.2"));
    let _ns = NsCleanup(vec![net.namespace()]);
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    env.peer
        .cmd(json!({"cmd": "set_networks", "networks": [neutron_net(&net, DhcpPort::None)]}));
    let mut agent = env.start_agent();
    agent.wait_serving(&net.id);

    let envelope = |inner: &str| -> Vec<u8> {
        serde_json::to_vec(&json!({"oslo.version": "2.0", "oslo.message": inner})).expect("json")
    };
    publish_raw(
        &env.vhost.url(),
        &env.host,
        &[
            ("application/json", b"\x00\xffnot json at all".to_vec()),
            (
                "text/plain",
                envelope(r#"{"method": "network_create_end", "args": {}}"#),
            ),
            ("application/json", envelope(r#"{"method": 5}"#)),
            ("application/json", envelope("[1, 2")),
            ("application/json", br#"{"oslo.version": "2.0"}"#.to_vec()),
            (
                "application/json",
                envelope(
                    r#"{"method": "port_create_end", "args": {"payload": {"port": []}}, "version": "1.0"}"#,
                ),
            ),
        ],
    );
    let p = &env.peer;
    let cast_raw = |c: Value| {
        let mut c = c;
        c["cmd"] = json!("cast");
        c["host"] = json!(env.host);
        p.cmd(c);
    };
    cast_raw(json!({"method": "frobnicate_end", "payload": {}}));
    cast_raw(json!({"method": "port_create_end", "version": "2.0", "payload": {"port": {}}}));
    cast_raw(json!({"method": "port_create_end", "version": "1.1", "payload": {"port": {}}}));
    cast_raw(json!({"method": "port_create_end", "args": {"payload": "garbage"}}));
    cast_raw(json!({"method": "port_create_end", "args": {"nothing": 1}}));
    cast_raw(json!({"method": "port_create_end",
                    "payload": {"port": {"id": "x", "network_id": net.id, "mac_address": "zz"}}}));
    cast_raw(json!({"method": "network_update_end", "payload": {"network": {"id": net.id}}}));
    cast_raw(json!({"method": "subnet_delete_end", "payload": {"subnet_id": random_uuid()}}));
    // Another agent's DHCP port: needs no DHCP configuration, ignored.
    cast_raw(json!({"method": "port_update_end",
                    "payload": {"port": port_json(&net, &net.dhcp_port.id)}}));
    cast_raw(json!({"method": "_private", "payload": {}}));

    // A valid event afterwards is processed normally.
    let vm = net.add_port(PortSpec::vm(ip("10.78.0.12")));
    let client = ClientNs::new(&net.bridge_name(), &vm.mac);
    env.update_net(&net);
    let mark = env.peer.mark();
    env.cast("port_create_end", json!({"port": port_json(&net, &vm.id)}));
    env.peer
        .expect_call(mark, "dhcp_ready_on_ports", Duration::from_secs(5), |c| {
            ready_ids(c).contains(&vm.id)
        });
    let lease = client
        .dhclient(LEASE_TIMEOUT)
        .expect("lease after the garbage");
    assert_eq!(lease, net.expected_lease(&vm));
    assert_eq!(
        env.dhcp_ports_of(&net.id).len(),
        1,
        "exactly one DHCP port of ours"
    );
    assert!(agent.is_running(), "the agent died");
    let log = agent.log_text();
    assert!(!log.contains("panicked"), "a panic was logged");
    // The garbage was seen and logged as dropped.
    assert!(
        log.contains("dropping"),
        "nothing logged about dropped messages"
    );
    agent.stop();
}

/// Restart after a crash (SIGKILL: nothing torn down): a network still hosted is served again
/// with the same DHCP port (found by device_id, nothing created); a network no longer hosted,
/// known only from the state directory, is torn down and its port released.
#[test]
fn restart_reuses_our_port_and_removes_leftovers() {
    root_or_skip!();
    let env = Env::new();
    let state = tempfile::Builder::new()
        .prefix("ndrs-state-")
        .tempdir()
        .expect("tempdir");
    let ini = format!(
        "{}\n[DEFAULT]\nstate_path = {}\n",
        env.ini(),
        state.path().display()
    );
    let mut kept = NetSpec::new("10.81.0.0/24", Some(ip("10.81.0.1")), ip("10.81.0.2"));
    let vm = kept.add_port(PortSpec::vm(ip("10.81.0.10")));
    let gone = NetSpec::new("10.82.0.0/24", Some(ip("10.82.0.1")), ip("10.82.0.2"));
    let _ns = NsCleanup(vec![kept.namespace(), gone.namespace()]);
    let _b1 = LinkGuard::bridge(&kept.bridge_name());
    let _b2 = LinkGuard::bridge(&gone.bridge_name());
    let client = ClientNs::new(&kept.bridge_name(), &vm.mac);
    env.peer.cmd(json!({"cmd": "set_networks", "networks": [
        neutron_net(&kept, DhcpPort::None), neutron_net(&gone, DhcpPort::None)]}));

    let first = Agent::start(&ini, "[]");
    first.wait_serving(&kept.id);
    first.wait_serving(&gone.id);
    assert_eq!(env.peer.calls("create_dhcp_port").len(), 2);
    let gone_device = env.dhcp_ports_of(&gone.id)[0]["device_id"].clone();
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(first.pid(), libc::SIGKILL);
    }
    drop(first);
    assert!(
        netns_exists(&gone.namespace()),
        "SIGKILL left the namespace (as a crash would)"
    );

    let mut elsewhere = neutron_net(&gone, DhcpPort::None);
    elsewhere["_hosts"] = json!(["some-other-host"]);
    env.peer
        .cmd(json!({"cmd": "upsert_network", "network": elsewhere}));
    let mark = env.peer.mark();
    let second = Agent::start(&ini, "[]");
    let release = env
        .peer
        .expect_call(mark, "release_dhcp_port", Duration::from_secs(20), |_| true);
    assert_eq!(release["args"]["network_id"], json!(gone.id));
    assert_eq!(release["args"]["device_id"], gone_device);
    wait_until(
        "the leftover namespace to go",
        Duration::from_secs(5),
        || !netns_exists(&gone.namespace()),
    );
    serving_since(&second, 0, &kept.id);
    let lease = client
        .dhclient(LEASE_TIMEOUT)
        .expect("lease after the restart");
    assert_eq!(lease, kept.expected_lease(&vm));
    assert_eq!(
        env.peer.calls("create_dhcp_port").len(),
        2,
        "the restarted agent created a port instead of reusing its own"
    );
    assert_eq!(env.dhcp_ports_of(&kept.id).len(), 1);
    second.stop();
}

/// Our own DHCP port deleted → network disabled, port released, resync → a new port is made
/// and the network served again. A port_create_end whose IP is held by another cached port →
/// the network is resynced.
#[test]
fn own_port_deletion_and_duplicate_ip_trigger_resyncs() {
    root_or_skip!();
    let env = Env::new();
    let mut net = NetSpec::new("10.83.0.0/24", Some(ip("10.83.0.1")), ip("10.83.0.2"));
    let vm = net.add_port(PortSpec::vm(ip("10.83.0.10")));
    let _ns = NsCleanup(vec![net.namespace()]);
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let client = ClientNs::new(&net.bridge_name(), &vm.mac);
    env.peer
        .cmd(json!({"cmd": "set_networks", "networks": [neutron_net(&net, DhcpPort::None)]}));
    let agent = env.start_agent();
    agent.wait_serving(&net.id);
    let ours = env.dhcp_ports_of(&net.id)[0].clone();

    // Someone deletes our DHCP port.
    env.peer
        .cmd(json!({"cmd": "upsert_network", "network": neutron_net(&net, DhcpPort::None)}));
    let mark = env.peer.mark();
    let log_mark = agent.log_mark();
    env.cast(
        "port_delete_end",
        json!({"port_id": ours["id"], "network_id": net.id, "fixed_ips": ours["fixed_ips"]}),
    );
    let release = env
        .peer
        .expect_call(mark, "release_dhcp_port", Duration::from_secs(5), |_| true);
    assert_eq!(release["args"]["device_id"], ours["device_id"]);
    let created = env
        .peer
        .expect_call(mark, "create_dhcp_port", Duration::from_secs(10), |_| true);
    assert_eq!(
        created["args"]["port"]["port"]["device_id"],
        ours["device_id"]
    );
    serving_since(&agent, log_mark, &net.id);
    let new_ports = env.dhcp_ports_of(&net.id);
    assert_eq!(new_ports.len(), 1);
    assert_ne!(new_ports[0]["id"], ours["id"], "a new port");
    let lease = client
        .dhclient(LEASE_TIMEOUT)
        .expect("lease from the new port");
    assert_eq!(lease, net.expected_lease(&vm));

    // A created port claiming the VM's IP: the cache is out of sync → resync of the network.
    let mut clash = PortSpec::vm(vm.ip);
    clash.id = random_uuid();
    let mark = env.peer.mark();
    env.cast(
        "port_create_end",
        json!({"port": port_json(&net_with(&net, &clash), &clash.id)}),
    );
    let resync = env.peer.expect_call(
        mark,
        "get_active_networks_info",
        Duration::from_secs(5),
        |_| true,
    );
    assert!(resync["ts"].as_f64().is_some());
    agent.stop();
}

/// subnet_create_end adding a DHCP-enabled subnet → update_dhcp_port keeping our IP and asking
/// for one on the new subnet; the address is added to the DHCP device.
#[test]
fn new_dhcp_subnet_updates_our_port() {
    root_or_skip!();
    let env = Env::new();
    let net = NetSpec::new("10.84.0.0/24", Some(ip("10.84.0.1")), ip("10.84.0.2"));
    let _ns = NsCleanup(vec![net.namespace()]);
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    env.peer
        .cmd(json!({"cmd": "set_networks", "networks": [neutron_net(&net, DhcpPort::None)]}));
    let agent = env.start_agent();
    agent.wait_serving(&net.id);
    let mut with_two = env.peer.network(&net.id);
    let second_id = random_uuid();
    let second = json!({"id": second_id, "network_id": net.id, "project_id": net.project_id,
        "ip_version": 4, "cidr": "10.85.0.0/24", "gateway_ip": "10.85.0.1",
        "enable_dhcp": true, "dns_nameservers": [], "host_routes": []});
    with_two["subnets"]
        .as_array_mut()
        .expect("subnets")
        .push(second.clone());
    env.peer
        .cmd(json!({"cmd": "upsert_network", "network": with_two}));
    let mark = env.peer.mark();
    env.cast("subnet_create_end", json!({"subnet": second}));
    let update = env
        .peer
        .expect_call(mark, "update_dhcp_port", Duration::from_secs(5), |_| true);
    let mut fixed = update["args"]["port"]["port"]["fixed_ips"]
        .as_array()
        .cloned()
        .expect("fixed_ips");
    fixed.sort_by_key(|f| f["subnet_id"] != json!(net.subnet_id));
    assert_eq!(
        fixed,
        vec![
            json!({"subnet_id": net.subnet_id, "ip_address": "10.84.0.2"}),
            json!({"subnet_id": second_id}),
        ]
    );
    wait_until(
        "the new address on the DHCP device",
        Duration::from_secs(5),
        || common::ip(&format!("-n {} -4 addr", net.namespace())).contains("10.85.0.2/24"),
    );
    assert!(common::ip(&format!("-n {} -4 addr", net.namespace())).contains("10.84.0.2/24"));
    agent.stop();
}

/// port_update_end for our own DHCP port with a new IP (same subnet) → re-plumbed: the device
/// carries the new address and clients are answered from it; no resync, no port RPC.
#[test]
fn own_port_ip_change_replumbs() {
    root_or_skip!();
    let env = Env::new();
    let mut net = NetSpec::new("10.86.0.0/24", Some(ip("10.86.0.1")), ip("10.86.0.2"));
    let vm = net.add_port(PortSpec::vm(ip("10.86.0.10")));
    let _ns = NsCleanup(vec![net.namespace()]);
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let client = ClientNs::new(&net.bridge_name(), &vm.mac);
    env.peer
        .cmd(json!({"cmd": "set_networks", "networks": [neutron_net(&net, DhcpPort::None)]}));
    let agent = env.start_agent();
    agent.wait_serving(&net.id);

    let mut stored = env.peer.network(&net.id);
    let ports = stored["ports"].as_array_mut().expect("ports");
    let ours = ports
        .iter_mut()
        .find(|p| p["device_owner"] == "network:dhcp")
        .expect("our port");
    ours["fixed_ips"][0]["ip_address"] = json!("10.86.0.3");
    let rev = ours["revision_number"].as_u64().unwrap_or(1);
    ours["revision_number"] = json!(rev + 1);
    let updated = ours.clone();
    env.peer
        .cmd(json!({"cmd": "upsert_network", "network": stored}));
    let mark = env.peer.mark();
    env.cast("port_update_end", json!({"port": updated}));
    wait_until(
        "the new address on the DHCP device",
        Duration::from_secs(5),
        || {
            let addrs = common::ip(&format!("-n {} -4 addr", net.namespace()));
            addrs.contains("10.86.0.3/24") && !addrs.contains("10.86.0.2/24")
        },
    );
    net.dhcp_port.ip = ip("10.86.0.3");
    let lease = client.dhclient(LEASE_TIMEOUT).expect("lease");
    assert_eq!(
        lease,
        net.expected_lease(&vm),
        "served from the new address"
    );
    let after: Vec<String> = env.peer.events()[mark..]
        .iter()
        .filter(|e| e["event"] == "call" && e["method"] != "report_state")
        .filter_map(|e| e["method"].as_str().map(str::to_string))
        .collect();
    assert!(
        after.iter().all(|m| m == "dhcp_ready_on_ports"),
        "unexpected calls after our port's update: {after:?}"
    );
    agent.stop();
}

/// A full resync whose get_active_networks_info takes 4 s blocks neither a port event (its
/// port is reported ready at once and served) nor the heartbeat.
#[test]
fn slow_resync_blocks_neither_events_nor_heartbeat() {
    root_or_skip!();
    let env = Env::new();
    let mut net = NetSpec::new("10.87.0.0/24", Some(ip("10.87.0.1")), ip("10.87.0.2"));
    let _ns = NsCleanup(vec![net.namespace()]);
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    env.peer
        .cmd(json!({"cmd": "set_networks", "networks": [neutron_net(&net, DhcpPort::None)]}));
    let agent = env.start_agent();
    agent.wait_serving(&net.id);
    thread::sleep(Duration::from_millis(1500)); // the startup syncs are over

    env.peer.cmd(
        json!({"cmd": "inject", "method": "get_active_networks_info",
                        "delay": 4, "count": 1}),
    );
    let mark = env.peer.mark();
    env.cast("agent_updated", json!({"admin_state_up": true}));
    let slow = env.peer.expect_call(
        mark,
        "get_active_networks_info",
        Duration::from_secs(5),
        |_| true,
    );

    let vm = net.add_port(PortSpec::vm(ip("10.87.0.11")));
    let client = ClientNs::new(&net.bridge_name(), &vm.mac);
    env.update_net(&net);
    let t0 = now_epoch();
    env.cast("port_create_end", json!({"port": port_json(&net, &vm.id)}));
    let ready = env
        .peer
        .expect_call(mark, "dhcp_ready_on_ports", Duration::from_secs(5), |c| {
            ready_ids(c).contains(&vm.id)
        });
    let latency = ready["ts"].as_f64().unwrap_or(f64::MAX) - t0;
    note(&format!(
        "port_create_end → dhcp_ready_on_ports during a slow resync: {:.1} ms",
        latency * 1000.0
    ));
    assert!(
        latency < 0.5,
        "ready after {latency:.3}s, behind the resync"
    );
    let lease = client
        .dhclient(LEASE_TIMEOUT)
        .expect("lease during the resync");
    assert_eq!(lease, net.expected_lease(&vm));

    // The sync's reply comes ~4 s after its call; heartbeats kept coming meanwhile.
    let slow_seq = slow["seq"].as_u64().unwrap_or(0);
    let done = env
        .peer
        .wait_event(mark, Duration::from_secs(10), |e| {
            e["event"] == "reply" && e["seq"].as_u64() == Some(slow_seq)
        })
        .expect("the slow sync answered");
    let (from, to) = (
        slow["ts"].as_f64().unwrap_or(0.0),
        done["ts"].as_f64().unwrap_or(0.0),
    );
    assert!(to - from >= 3.5, "the injected delay did not apply");
    let beats = env
        .peer
        .calls("report_state")
        .iter()
        .filter_map(|c| c["ts"].as_f64())
        .filter(|t| (from..to).contains(t))
        .count();
    assert!(beats >= 3, "only {beats} heartbeats during a 4 s sync");
    agent.stop();
}

/// systemd readiness in RPC mode: `READY=1` only once the first full sync has been applied
/// (not while neutron-server is still answering `get_active_networks_info`), and by then the
/// network is plumbed and answering.
#[test]
fn ready_is_notified_once_the_first_full_sync_is_applied() {
    use std::os::unix::net::UnixDatagram;
    root_or_skip!();
    let env = Env::new();
    let mut net = NetSpec::new("10.88.0.0/24", Some(ip("10.88.0.1")), ip("10.88.0.2"));
    let vm = net.add_port(PortSpec::vm(ip("10.88.0.10")));
    let _ns = NsCleanup(vec![net.namespace()]);
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let client = ClientNs::new(&net.bridge_name(), &vm.mac);
    env.peer
        .cmd(json!({"cmd": "set_networks", "networks": [neutron_net(&net, DhcpPort::None)]}));
    // The first sync's fetch takes 3 s.
    env.peer.cmd(
        json!({"cmd": "inject", "method": "get_active_networks_info", "delay": 3, "count": 1}),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&path).expect("bind notify socket");
    let mark = env.peer.mark();
    let agent = Agent::start_with_env(
        &env.ini(),
        "[]",
        &[("NOTIFY_SOCKET", path.to_str().expect("utf-8 path"))],
    );
    env.peer.expect_call(
        mark,
        "get_active_networks_info",
        Duration::from_secs(10),
        |_| true,
    );
    // The fetch is under way: nothing may say ready yet.
    sock.set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let mut buf = [0u8; 512];
    if let Ok(n) = sock.recv(&mut buf) {
        panic!(
            "notified {:?} while the first sync was still fetching",
            String::from_utf8_lossy(&buf[..n])
        );
    }
    sock.set_read_timeout(Some(AGENT_TIMEOUT)).expect("timeout");
    let n = sock.recv(&mut buf).expect("READY=1 after the first sync");
    let ready = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert_eq!(ready, "READY=1\nSTATUS=first sync done: serving 1 networks");
    assert!(
        agent.log_text().contains("serving network"),
        "served before READY"
    );
    assert_eq!(
        client.dhclient(LEASE_TIMEOUT).expect("a lease after READY"),
        net.expected_lease(&vm)
    );
    agent.stop();
    let n = sock.recv(&mut buf).expect("STOPPING=1");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("STOPPING=1"));
}
