//! Scenario 7 of issue 3: the broker is restarted mid-run. The agent (RPC mode) reconnects,
//! re-declares, resyncs, and DHCP is answered from the cache the whole time.
//!
//! The test runs a RabbitMQ node of its own (own node name, port and data dir; see
//! tests/common/broker.rs), so it can stop it without disturbing the shared broker on
//! 127.0.0.1:5672. The neutron-server stand-in is the real Python oslo.messaging peer
//! (tests/peer), connected to that node too; both sides live through the restart. Real DHCP
//! clients (dhclient, udhcpc) run in namespaces bridged to the agent's DHCP port. Needs root.
//!
//! `NDRS_TEST_ECHO=1` streams the agent's log, `NDRS_PEER_ECHO=1` the peer's stdout.

#[path = "common/broker.rs"]
mod broker;
mod common;

use std::net::Ipv4Addr;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use broker::{agent_state, ready_ids, OwnBroker, Peer};
use common::*;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("IPv4 literal")
}

/// The network as the peer stores it: allocation pools left to the peer's defaults, no DHCP
/// port (the agent creates its own).
fn neutron_net(net: &NetSpec) -> Value {
    let mut v = net.to_json();
    if let Some(s) = v["subnets"][0].as_object_mut() {
        s.remove("allocation_pools");
    }
    let ports = v["ports"].as_array_mut().expect("ports");
    ports.retain(|p| p["id"] != json!(net.dhcp_port.id));
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

/// Updates the peer's copy of `net` (as an API change would), keeping the agent's DHCP port.
fn update_net(peer: &Peer, net: &NetSpec) {
    let mut v = neutron_net(net);
    let stored = peer.network(&net.id);
    let ports = v["ports"].as_array_mut().expect("ports");
    for p in stored["ports"].as_array().into_iter().flatten() {
        if p["device_owner"] == "network:dhcp" && !ports.iter().any(|q| q["id"] == p["id"]) {
            ports.push(p.clone());
        }
    }
    peer.cmd(json!({"cmd": "upsert_network", "network": v}));
}

/// Waits (at most 20 s) until the peer has seen no `method` call for `quiet`.
fn wait_quiet(peer: &Peer, method: &str, quiet: Duration) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let last = peer
            .calls(method)
            .last()
            .and_then(|c| c["ts"].as_f64())
            .unwrap_or(0.0);
        if now_epoch() - last >= quiet.as_secs_f64() {
            return;
        }
        assert!(Instant::now() < deadline, "{method} calls keep coming");
        thread::sleep(Duration::from_millis(200));
    }
}

fn now_epoch() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// 7: broker restarted mid-run → DHCP answered while it is down; afterwards the agent
/// reconnects, reports again, resyncs (get_active_networks_info), and a port_create_end sent
/// after the restart is served and reported in dhcp_ready_on_ports.
#[test]
fn broker_restart_reconnects_resyncs_and_dhcp_is_answered_throughout() {
    root_or_skip!();
    require_client_tools();
    let t0 = Instant::now();
    // Drop order is the reverse: agent, clients, namespaces and bridge, peer, broker.
    let broker = OwnBroker::start();
    note(&format!(
        "own broker {} on port {} up after {:.1} s",
        broker.node,
        broker.port,
        t0.elapsed().as_secs_f64()
    ));
    // The peer (kombu) also retries every second instead of 1, 3, 5, ... s, so that
    // neutron-server's queues are back soon after the broker (the URL query overrides
    // [oslo_messaging_rabbit], as in oslo).
    let peer = Peer::start(&format!(
        "{}?rabbit_retry_interval=1&rabbit_retry_backoff=0",
        broker.url()
    ));
    let host = unique_name("rstr");

    let mut net = NetSpec::new("10.91.0.0/24", Some(ip("10.91.0.1")), ip("10.91.0.2"));
    let vm1 = net.add_port(PortSpec::vm(ip("10.91.0.10")));
    let vm2 = net.add_port(PortSpec::vm(ip("10.91.0.11")));
    // Created while the broker is down (its port_create_end is lost).
    let vm5 = PortSpec::vm(ip("10.91.0.15"));
    // Scheduled to the agent while the broker is down (its network_create_end is lost).
    let mut late = NetSpec::new("10.92.0.0/24", Some(ip("10.92.0.1")), ip("10.92.0.2"));
    let vm4 = late.add_port(PortSpec::vm(ip("10.92.0.10")));
    let _ns = NsCleanup(vec![net.namespace(), late.namespace()]);
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let _late_bridge = LinkGuard::bridge(&late.bridge_name());
    let client1 = ClientNs::new(&net.bridge_name(), &vm1.mac);
    let client2 = ClientNs::new(&net.bridge_name(), &vm2.mac);
    let client4 = ClientNs::new(&late.bridge_name(), &vm4.mac);
    let client5 = ClientNs::new(&net.bridge_name(), &vm5.mac);
    peer.cmd(json!({"cmd": "set_networks", "networks": [neutron_net(&net)]}));

    // Reconnect quickly (oslo's defaults would pause 1, 3, 5, ... s between attempts).
    let ini = format!(
        "{}\n[DEFAULT]\nhost = {host}\ntransport_url = {}\nrpc_response_timeout = 5\n\
         resync_interval = 2\n\n[AGENT]\nreport_interval = 1\n\n\
         [oslo_messaging_rabbit]\nrabbit_retry_interval = 1\nrabbit_retry_backoff = 0\n\
         kombu_reconnect_delay = 0.5\n",
        test_ini(),
        broker.url(),
    );
    let agent = Agent::start(&ini, "[]");
    agent.wait_serving(&net.id);
    let lease = client1
        .dhclient(LEASE_TIMEOUT)
        .expect("a lease before the restart");
    assert_eq!(lease, net.expected_lease(&vm1));
    peer.expect_call(0, "dhcp_ready_on_ports", Duration::from_secs(10), |c| {
        ready_ids(c).contains(&vm1.id)
    });
    let first = peer.expect_call(0, "report_state", Duration::from_secs(10), |_| true);
    assert_eq!(agent_state(&first)["start_flag"], json!(true));
    // No resync may be pending when the broker goes down (the start-up syncs are over), so
    // what is fetched after the restart comes from the reconnect's full sync.
    wait_quiet(&peer, "get_active_networks_info", Duration::from_secs(3));
    let syncs_before = peer.calls("get_active_networks_info").len();

    // --- The broker goes down. -----------------------------------------------------------
    let log_mark = agent.log_mark();
    let down_at = Instant::now();
    assert!(broker.stop(), "own broker did not stop");
    note(&format!(
        "own broker stopped in {:.1} s",
        down_at.elapsed().as_secs_f64()
    ));
    agent
        .wait_for_line_since(
            log_mark,
            &["lost the AMQP connection"],
            Duration::from_secs(10),
        )
        .unwrap_or_else(|| {
            panic!(
                "the agent did not notice the broker going down\n--- agent log ---\n{}",
                agent.log_text()
            )
        });
    // Let heartbeats and calls fail for a while: the cache keeps serving regardless.
    thread::sleep(Duration::from_secs(2));
    let lease = client2
        .udhcpc(LEASE_TIMEOUT)
        .expect("a first lease (udhcpc) while the broker is down");
    assert_eq!(lease, net.expected_lease(&vm2));
    let lease = client1
        .dhclient(LEASE_TIMEOUT)
        .expect("a renewed lease (dhclient) while the broker is down");
    assert_eq!(lease, net.expected_lease(&vm1));
    assert!(
        netns_exists(&net.namespace()),
        "the network was torn down while the broker was down"
    );
    assert!(!broker.is_up(), "the broker came back on its own");
    // Meanwhile neutron-server schedules another network to us and a port is created on the
    // served one; neither cast can arrive.
    peer.cmd(json!({"cmd": "upsert_network", "network": neutron_net(&late)}));
    net.add_port(vm5.clone());
    update_net(&peer, &net);
    let outage = down_at.elapsed();

    // --- The broker comes back on the same port. -------------------------------------------
    let mark = peer.mark();
    let log_mark = agent.log_mark();
    let up_at = Instant::now();
    broker.boot();
    let booted = up_at.elapsed();
    let reconnected = agent
        .wait_for_line_since(
            log_mark,
            &["connected to the AMQP server"],
            Duration::from_secs(30),
        )
        .unwrap_or_else(|| {
            panic!(
                "the agent did not reconnect\n--- agent log ---\n{}",
                agent.log_text()
            )
        });
    assert!(!reconnected.contains("guest:guest"), "{reconnected}");
    let report = peer.expect_call(mark, "report_state", Duration::from_secs(30), |_| true);
    assert!(
        agent_state(&report).get("start_flag").is_none(),
        "start_flag again after a reconnect: {report}"
    );
    assert_eq!(agent_state(&report)["host"], json!(host));
    // Full resync: casts may have been lost while the broker was down.
    let scheduled = agent
        .wait_for_line_since(
            log_mark,
            &["reconnected to the message broker", "full sync"],
            Duration::from_secs(10),
        )
        .is_some();
    assert!(
        scheduled,
        "no full sync scheduled on reconnect\n--- agent log ---\n{}",
        agent.log_text()
    );
    let resync = peer.expect_call(
        mark,
        "get_active_networks_info",
        Duration::from_secs(30),
        |_| true,
    );
    assert_eq!(
        resync["args"],
        json!({"host": host, "enable_dhcp_filter": false})
    );
    let full = agent
        .wait_for_line_since(
            log_mark,
            &["scope=All", "all active networks fetched"],
            Duration::from_secs(30),
        )
        .is_some();
    assert!(
        full,
        "no full sync completed after the reconnect\n--- agent log ---\n{}",
        agent.log_text()
    );
    // What the lost casts carried is applied: the new network is served, and the port created
    // on a network already served (only a full sync refreshes that one) is reported and
    // answered.
    let serving = agent
        .wait_for_line_since(
            log_mark,
            &["serving network", &late.id],
            Duration::from_secs(30),
        )
        .is_some();
    assert!(
        serving,
        "the network scheduled during the outage is not served after the resync\n\
         --- agent log ---\n{}",
        agent.log_text()
    );
    peer.expect_call(mark, "dhcp_ready_on_ports", Duration::from_secs(10), |c| {
        ready_ids(c).contains(&vm5.id)
    });
    let back_after = up_at.elapsed();
    let lease = client4
        .dhclient(LEASE_TIMEOUT)
        .expect("a lease on the network scheduled during the outage");
    assert_eq!(lease, late.expected_lease(&vm4));
    peer.expect_call(mark, "dhcp_ready_on_ports", Duration::from_secs(10), |c| {
        ready_ids(c).contains(&vm4.id)
    });
    let lease = client5
        .udhcpc(LEASE_TIMEOUT)
        .expect("a lease for the port created during the outage");
    assert_eq!(lease, net.expected_lease(&vm5));
    assert!(peer.calls("get_active_networks_info").len() > syncs_before);
    // The first network was found unchanged: one DHCP port per network, no more.
    assert_eq!(peer.calls("create_dhcp_port").len(), 2);
    let ours: Vec<Value> = peer.network(&net.id)["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["device_owner"] == "network:dhcp")
        .cloned()
        .collect();
    assert_eq!(ours.len(), 1, "{ours:?}");

    // --- Events flow again. -----------------------------------------------------------------
    let vm3 = net.add_port(PortSpec::vm(ip("10.91.0.12")));
    let client3 = ClientNs::new(&net.bridge_name(), &vm3.mac);
    update_net(&peer, &net);
    let mark = peer.mark();
    let cast_at = now_epoch();
    peer.cast(
        &host,
        "port_create_end",
        json!({"port": port_json(&net, &vm3.id)}),
    );
    let ready = peer.expect_call(mark, "dhcp_ready_on_ports", Duration::from_secs(10), |c| {
        ready_ids(c).contains(&vm3.id)
    });
    let latency = ready["ts"].as_f64().unwrap_or(f64::MAX) - cast_at;
    let lease = client3
        .dhclient(LEASE_TIMEOUT)
        .expect("a lease for a port created after the restart");
    assert_eq!(lease, net.expected_lease(&vm3));
    let lease = client2
        .dhclient(LEASE_TIMEOUT)
        .expect("a lease for an old port after the restart");
    assert_eq!(lease, net.expected_lease(&vm2));
    note(&format!(
        "broker down {:.1} s; boot {:.1} s; lost changes applied {:.1} s after boot began; \
         port_create_end → ready {:.0} ms; total {:.1} s",
        outage.as_secs_f64(),
        booted.as_secs_f64(),
        back_after.as_secs_f64(),
        latency * 1000.0,
        t0.elapsed().as_secs_f64()
    ));

    let log = agent.stop();
    assert!(
        !log.contains("guest:guest"),
        "the broker password was logged"
    );
    assert!(!log.contains("panicked"), "a panic was logged");
    drop(client5);
    drop(client4);
    drop(client3);
    drop(client2);
    drop(client1);
    drop(peer);
    drop(broker);
    let total = t0.elapsed();
    assert!(total < Duration::from_secs(90), "took {total:?}");
}
