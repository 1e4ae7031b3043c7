//! End-to-end: the agent in standalone mode serves real DHCP clients (ISC dhclient, busybox
//! udhcpc, dhcpcd) running in their own network namespaces, wired to the agent's DHCP port
//! through the per-network Linux bridge (`[veth] bridge = brq{network_id}`).
//!
//! These tests need root. They create only uniquely named namespaces, veth pairs and bridges
//! with private addresses, and remove them again (also on failure). Each test starts its own
//! agent on networks with random ids, so the tests run in parallel.
//!
//! Set `NDRS_TEST_ECHO=1` to stream the agent's log, `NDRS_TEST_DEBUG=1` to start it with
//! `--debug`.

mod common;

use std::net::Ipv4Addr;
use std::thread;
use std::time::Duration;

use common::*;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("IPv4 literal")
}

/// A network with everything a client can see: DNS servers, a host route (so option 121 is
/// sent), a non-default MTU.
fn rich_network(third_octet: u8) -> NetSpec {
    let p = |last: u8| Ipv4Addr::new(10, 61, third_octet, last);
    let mut net = NetSpec::new(&format!("10.61.{third_octet}.0/24"), Some(p(1)), p(2));
    net.dns = vec![p(53), p(54)];
    net.host_routes = vec![("192.168.61.0/24".into(), p(254))];
    net.mtu = 1400;
    net
}

/// `client` gets exactly the port's address and options, for a port with a dns_assignment
/// host name and one without (generated `host-a-b-c-d`), both at once.
fn client_gets_its_port_lease(client: Client) {
    require_client_tools();
    let mut net = rich_network(0);
    let named = net.add_port(PortSpec::vm(ip("10.61.0.10")).with_hostname("vm-alpha"));
    let plain = net.add_port(PortSpec::vm(ip("10.61.0.11")));
    net.add_port(PortSpec::vm(ip("10.61.0.12"))); // a port nobody asks for
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let c_named = ClientNs::new(&net.bridge_name(), &named.mac);
    let c_plain = ClientNs::new(&net.bridge_name(), &plain.mac);
    let agent = Agent::start_serving(&test_ini(), &[&net]);

    let (r_named, r_plain) = thread::scope(|s| {
        let a = s.spawn(|| c_named.run_client(client, LEASE_TIMEOUT));
        let b = s.spawn(|| c_plain.run_client(client, LEASE_TIMEOUT));
        (a.join().unwrap(), b.join().unwrap())
    });
    note(&format!(
        "{}: leases in {:.1?} and {:.1?}",
        client.name(),
        r_named.elapsed,
        r_plain.elapsed
    ));
    assert_eq!(
        r_named.expect_lease("port with dns_assignment"),
        net.expected_lease(&named),
        "{}: port with dns_assignment",
        client.name()
    );
    assert_eq!(
        r_plain.expect_lease("port without dns_assignment"),
        net.expected_lease(&plain),
        "{}: port without dns_assignment",
        client.name()
    );
    agent.stop();
}

#[test]
fn dhclient_gets_its_port_lease() {
    root_or_skip!();
    client_gets_its_port_lease(Client::Dhclient);
}

#[test]
fn udhcpc_gets_its_port_lease() {
    root_or_skip!();
    client_gets_its_port_lease(Client::Udhcpc);
}

#[test]
fn dhcpcd_gets_its_port_lease() {
    root_or_skip!();
    client_gets_its_port_lease(Client::Dhcpcd);
}

/// Static only: a MAC that is no port of the network gets no answer at all, while a port on
/// the same bridge (the control) does.
#[test]
fn unknown_mac_gets_no_answer() {
    root_or_skip!();
    require_client_tools();
    let mut net = rich_network(1);
    let port = net.add_port(PortSpec::vm(ip("10.61.1.10")));
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let known = ClientNs::new(&net.bridge_name(), &port.mac);
    let stranger_u = ClientNs::new(&net.bridge_name(), &random_mac());
    let stranger_d = ClientNs::new(&net.bridge_name(), &random_mac());
    let agent = Agent::start_serving(&test_ini(), &[&net]);

    let (r_known, r_u, r_d) = thread::scope(|s| {
        let k = s.spawn(|| known.run_client(Client::Udhcpc, LEASE_TIMEOUT));
        let u = s.spawn(|| stranger_u.run_client(Client::Udhcpc, NO_LEASE_TIMEOUT));
        let d = s.spawn(|| stranger_d.run_client(Client::Dhclient, NO_LEASE_TIMEOUT));
        (k.join().unwrap(), u.join().unwrap(), d.join().unwrap())
    });
    assert_eq!(
        r_known.expect_lease("control port"),
        net.expected_lease(&port)
    );
    r_u.expect_no_lease("unknown MAC");
    r_d.expect_no_lease("unknown MAC");
    let log = agent.stop();
    // The network's stop reports what its DHCPv4 socket saw: the control's exchange answered,
    // the strangers' requests ignored.
    let line = log
        .lines()
        .find(|l| l.contains("stopped network") && l.contains(&net.id))
        .unwrap_or_else(|| panic!("no `stopped network` line\n{log}"));
    let v4 = line
        .split("DHCPv4 ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no DHCPv4 counts in: {line}"));
    let count = |what: &str| -> u64 {
        v4.split(", ")
            .find_map(|kv| kv.strip_prefix(what)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no DHCPv4 `{what}` count in: {line}"))
    };
    assert!(count("replied") >= 2, "OFFER and ACK not counted: {line}");
    assert!(
        count("ignored") >= 2,
        "strangers' DISCOVERs not counted: {line}"
    );
    assert_eq!(count("malformed"), 0, "{line}");
    assert!(
        count("received") >= count("replied") + count("ignored"),
        "{line}"
    );
}

/// Two networks with the same CIDR live in their own namespaces: each client gets its own
/// network's address and options, even with the same VM address on both, and a port's MAC
/// means nothing on the other network.
#[test]
fn overlapping_cidrs_are_served_per_network() {
    root_or_skip!();
    require_client_tools();
    let mut net_a = NetSpec::new("10.77.0.0/24", Some(ip("10.77.0.1")), ip("10.77.0.2"));
    net_a.dns = vec![ip("10.77.0.53")];
    net_a.host_routes = vec![("172.16.77.0/24".into(), ip("10.77.0.254"))];
    net_a.mtu = 1400;
    // Other gateway, no DNS servers (clients get the DHCP port's address), no host routes
    // (so no option 121), other MTU.
    let mut net_b = NetSpec::new("10.77.0.0/24", Some(ip("10.77.0.254")), ip("10.77.0.3"));
    net_b.mtu = 1450;
    let pa = net_a.add_port(PortSpec::vm(ip("10.77.0.10")));
    let pb = net_b.add_port(PortSpec::vm(ip("10.77.0.10")));
    let pb2 = net_b.add_port(PortSpec::vm(ip("10.77.0.20")).with_hostname("vm-bravo"));

    let _bridge_a = LinkGuard::bridge(&net_a.bridge_name());
    let _bridge_b = LinkGuard::bridge(&net_b.bridge_name());
    let ca = ClientNs::new(&net_a.bridge_name(), &pa.mac);
    let cb = ClientNs::new(&net_b.bridge_name(), &pb.mac);
    let cb2 = ClientNs::new(&net_b.bridge_name(), &pb2.mac);
    let cross = ClientNs::new(&net_b.bridge_name(), &pa.mac); // A's port, B's wire
    let agent = Agent::start_serving(&test_ini(), &[&net_a, &net_b]);

    let (ra, rb, rb2, rx) = thread::scope(|s| {
        let a = s.spawn(|| ca.run_client(Client::Dhclient, LEASE_TIMEOUT));
        let b = s.spawn(|| cb.run_client(Client::Dhclient, LEASE_TIMEOUT));
        let b2 = s.spawn(|| cb2.run_client(Client::Udhcpc, LEASE_TIMEOUT));
        let x = s.spawn(|| cross.run_client(Client::Udhcpc, NO_LEASE_TIMEOUT));
        (
            a.join().unwrap(),
            b.join().unwrap(),
            b2.join().unwrap(),
            x.join().unwrap(),
        )
    });
    assert_eq!(
        ra.expect_lease("network A"),
        net_a.expected_lease(&pa),
        "network A"
    );
    let lb = rb.expect_lease("network B");
    assert_eq!(lb, net_b.expected_lease(&pb), "network B");
    assert_eq!(
        lb.dns,
        vec![ip("10.77.0.3")],
        "empty dns_nameservers => DHCP port IP"
    );
    assert!(lb.routes_121.is_empty(), "no host routes => no option 121");
    assert_eq!(
        rb2.expect_lease("network B, second port"),
        net_b.expected_lease(&pb2),
        "network B, second port"
    );
    rx.expect_no_lease("network A's MAC on network B");
    agent.stop();
}

/// Editing the networks file and sending SIGHUP applies the change: an added port gets its
/// lease, a removed port gets nothing, an untouched port and an untouched network keep being
/// served, and the untouched network is not torn down.
#[test]
fn sighup_reload_adds_and_removes_ports() {
    root_or_skip!();
    require_client_tools();
    let mut net1 = NetSpec::new("10.81.0.0/24", Some(ip("10.81.0.1")), ip("10.81.0.2"));
    net1.dns = vec![ip("10.81.0.53")];
    net1.host_routes = vec![("192.168.81.0/24".into(), ip("10.81.0.254"))];
    let mut net2 = NetSpec::new("10.82.0.0/24", Some(ip("10.82.0.1")), ip("10.82.0.2"));
    net2.dns = vec![ip("10.82.0.53")];
    let removed = net1.add_port(PortSpec::vm(ip("10.81.0.10")));
    let kept = net1.add_port(PortSpec::vm(ip("10.81.0.11")));
    let added = PortSpec::vm(ip("10.81.0.12")).with_hostname("vm-new");
    let other = net2.add_port(PortSpec::vm(ip("10.82.0.10")));

    let _bridge1 = LinkGuard::bridge(&net1.bridge_name());
    let _bridge2 = LinkGuard::bridge(&net2.bridge_name());
    let c_removed = ClientNs::new(&net1.bridge_name(), &removed.mac);
    let c_kept = ClientNs::new(&net1.bridge_name(), &kept.mac);
    let c_added = ClientNs::new(&net1.bridge_name(), &added.mac);
    let c_other = ClientNs::new(&net2.bridge_name(), &other.mac);
    let agent = Agent::start_serving(&test_ini(), &[&net1, &net2]);

    // Before: the port to be removed is served, the one to be added is not.
    let (before_removed, before_added) = thread::scope(|s| {
        let r = s.spawn(|| c_removed.run_client(Client::Udhcpc, LEASE_TIMEOUT));
        let a = s.spawn(|| c_added.run_client(Client::Udhcpc, NO_LEASE_TIMEOUT));
        (r.join().unwrap(), a.join().unwrap())
    });
    assert_eq!(
        before_removed.expect_lease("before reload"),
        net1.expected_lease(&removed)
    );
    before_added.expect_no_lease("port not yet in the networks file");

    net1.remove_port(&removed.id);
    net1.add_port(added.clone());
    let mark = agent.log_mark();
    agent.reload(&networks_json(&[&net1, &net2]));

    let (r_added, r_removed, r_kept, r_other) = thread::scope(|s| {
        let a = s.spawn(|| c_added.run_client(Client::Dhclient, LEASE_TIMEOUT));
        let r = s.spawn(|| c_removed.run_client(Client::Udhcpc, NO_LEASE_TIMEOUT));
        let k = s.spawn(|| c_kept.run_client(Client::Udhcpc, LEASE_TIMEOUT));
        let o = s.spawn(|| c_other.run_client(Client::Dhcpcd, LEASE_TIMEOUT));
        (
            a.join().unwrap(),
            r.join().unwrap(),
            k.join().unwrap(),
            o.join().unwrap(),
        )
    });
    assert_eq!(
        r_added.expect_lease("added port"),
        net1.expected_lease(&added),
        "added port"
    );
    r_removed.expect_no_lease("removed port");
    assert_eq!(
        r_kept.expect_lease("untouched port"),
        net1.expected_lease(&kept),
        "untouched port"
    );
    assert_eq!(
        r_other.expect_lease("untouched network"),
        net2.expected_lease(&other),
        "untouched network"
    );
    if let Some(line) =
        agent.wait_for_line_since(mark, &["stopped network", &net2.id], Duration::ZERO)
    {
        panic!("reload tore down the untouched network: {line}");
    }

    // The agent may also notice the edit by itself; a SIGHUP alone must trigger a reload too.
    let mark = agent.log_mark();
    agent.sighup();
    let Some(line) = agent.wait_for_line_since(mark, &["reloaded networks file"], AGENT_TIMEOUT)
    else {
        panic!(
            "SIGHUP with an unchanged networks file logged no `reloaded networks file`\n{}",
            agent.log_text()
        );
    };
    // Operators read what a reload cost from this line.
    assert!(
        line.contains("reparsed=Unchanged")
            && line.contains("read_us=")
            && line.contains("apply_us="),
        "the reload line lacks how it went or its timings: {line}"
    );
    agent.stop();
}

/// A networks file that is not valid JSON stops the agent at start-up with an error.
#[test]
fn malformed_networks_file_is_rejected_at_startup() {
    let (status, log) =
        Agent::run_expecting_exit(&test_ini(), "[{\"id\": \"x\", ", Duration::from_secs(20));
    assert!(
        !status.success(),
        "agent accepted a malformed networks file\n{log}"
    );
    let lower = log.to_lowercase();
    assert!(
        lower.contains("json") || lower.contains("networks"),
        "the error should say what is wrong with the networks file:\n{log}"
    );
}

/// A network without a `network:dhcp` port cannot be served: it is refused with an error that
/// says which (the file's other networks are served: see `tests/hostile_control.rs`).
#[test]
fn network_without_dhcp_port_is_refused() {
    root_or_skip!();
    let mut net = NetSpec::new("10.83.0.0/24", Some(ip("10.83.0.1")), ip("10.83.0.2"));
    net.add_port(PortSpec::vm(ip("10.83.0.10")));
    let mut value = net.to_json();
    value["ports"]
        .as_array_mut()
        .expect("ports")
        .retain(|p| p["device_owner"] != "network:dhcp");
    let json = serde_json::to_string(&[value]).expect("json");
    let agent = Agent::start(&test_ini(), &json);
    let line = agent.wait_for_log("network refused", AGENT_TIMEOUT);
    assert!(
        line.contains(&net.id) && line.contains("network:dhcp"),
        "the error should name the network and the missing network:dhcp port: {line}"
    );
    agent.wait_for_log("initial networks applied", AGENT_TIMEOUT);
    assert!(
        !netns_exists(&net.namespace()),
        "a refused network must not get a namespace"
    );
    agent.stop();
}

/// `/sys/class/net/<dev>/ifindex` in the root namespace: a recreated device gets a new one.
fn root_ifindex(dev: &str) -> String {
    std::fs::read_to_string(format!("/sys/class/net/{dev}/ifindex"))
        .unwrap_or_else(|e| panic!("{dev}: {e}"))
        .trim()
        .to_owned()
}

/// Without `--teardown-on-exit` (the operator default) SIGTERM leaves the namespace and the
/// DHCP port's devices in place, as the Python agent leaves dnsmasq running; the next start
/// adopts them without re-plumbing (same tap, no flap) and serves at once.
#[test]
fn restart_adopts_the_plumbing_left_by_sigterm() {
    root_or_skip!();
    let (net, first) = after_first_run(9);
    assert!(
        first.log.contains("left for the next start"),
        "{}",
        first.log
    );
    let tap = net.dhcp_port.tap_name();
    assert_eq!(
        root_ifindex(&tap),
        first.tap_ifindex,
        "tap recreated on SIGTERM"
    );

    let second = Agent::start_serving(&first.ini, &[&net]);
    // Served at once on what the first run left for the same plan, then verified.
    second.wait_for_log(
        "serving network (on the previous run's plumbing",
        AGENT_TIMEOUT,
    );
    second.wait_for_log("plumbing left by the previous run verified", AGENT_TIMEOUT);
    assert_eq!(
        root_ifindex(&tap),
        first.tap_ifindex,
        "tap re-plugged on restart"
    );
    assert_eq!(
        first.lease("after restart"),
        net.expected_lease(&first.port)
    );
    second.stop();
}

/// After a reboot the records under `state_path` remain but the namespaces are gone: the start
/// notices, plumbs the network again and serves it.
#[test]
fn records_without_their_namespace_are_replumbed() {
    root_or_skip!();
    let (net, first) = after_first_run(11);
    // What a reboot does to the namespace (and with it the veth pair).
    run("ip", &["netns", "del", &net.namespace()]);

    let second = Agent::start_serving(&first.ini, &[&net]);
    second.wait_for_log("initial networks applied", AGENT_TIMEOUT);
    let log = second.log_text();
    assert!(
        log.contains("cannot reuse the previous run's plumbing"),
        "{log}"
    );
    assert!(
        !log.contains("serving network (on the previous run's plumbing"),
        "{log}"
    );
    assert_eq!(
        first.lease("after the namespace was gone"),
        net.expected_lease(&first.port)
    );
    second.stop();
}

/// An agent killed between plumbing a network and recording its device leaves a namespace that
/// only its state directory entry points to: once the network is gone from the file, the next
/// start finds the DHCP device inside the namespace and removes both.
#[test]
fn plumbing_that_was_never_recorded_is_removed_with_its_network() {
    root_or_skip!();
    let (net, first) = after_first_run(12);
    let record = first._state.path().join("dhcp").join(&net.id);
    for file in ["interface", "plumbing"] {
        std::fs::remove_file(record.join(file)).unwrap();
    }
    let tap = net.dhcp_port.tap_name();
    assert!(std::path::Path::new(&format!("/sys/class/net/{tap}")).exists());

    let second = Agent::start_serving(&first.ini, &[]);
    second.wait_for_log("initial networks applied", AGENT_TIMEOUT);
    let log = second.log_text();
    assert!(log.contains("removing network left over"), "{log}");
    assert!(
        !std::path::Path::new(&format!("/var/run/netns/{}", net.namespace())).exists(),
        "{log}"
    );
    assert!(
        !std::path::Path::new(&format!("/sys/class/net/{tap}")).exists(),
        "{log}"
    );
    assert!(!record.exists(), "{log}");
    second.stop();
}

/// What a first run that exited keeping its plumbing leaves for a second run on the same host.
struct FirstRun {
    port: PortSpec,
    client: ClientNs,
    /// The test config with the `state_path` both runs share.
    ini: String,
    /// The root end of the DHCP device while the first run served.
    tap_ifindex: String,
    /// The first run's log.
    log: String,
    _state: tempfile::TempDir,
    _bridge: LinkGuard,
}

impl FirstRun {
    /// The lease the first run's VM port gets now (`when` names the moment in a failure).
    fn lease(&self, when: &str) -> Lease {
        self.client
            .run_client(Client::Udhcpc, LEASE_TIMEOUT)
            .expect_lease(when)
    }
}

/// Serves `rich_network(third_octet)` with one VM port, stops the agent keeping the plumbing,
/// and returns the network with what a second run needs.
fn after_first_run(third_octet: u8) -> (NetSpec, FirstRun) {
    require_client_tools();
    let mut net = rich_network(third_octet);
    let port = net.add_port(PortSpec::vm(Ipv4Addr::new(10, 61, third_octet, 10)));
    let bridge = LinkGuard::bridge(&net.bridge_name());
    let client = ClientNs::new(&net.bridge_name(), &port.mac);
    let state = tempfile::tempdir().unwrap();
    let ini = format!(
        "{}\n[DEFAULT]\nstate_path = {}\n",
        test_ini(),
        state.path().display()
    );
    let first = Agent::start_keeping_plumbing(&ini, &networks_json(&[&net]));
    first.wait_serving(&net.id);
    let tap_ifindex = root_ifindex(&net.dhcp_port.tap_name());
    let log = first.stop_keeping_plumbing();
    let run = FirstRun {
        port,
        client,
        ini,
        tap_ifindex,
        log,
        _state: state,
        _bridge: bridge,
    };
    (net, run)
}

/// A network whose plumbing changed while the agent was down (here its MTU) is not served on
/// the old plumbing first: the start plumbs it for the new plan, then serves.
#[test]
fn restart_with_a_changed_plan_replumbs_before_serving() {
    root_or_skip!();
    let (mut net, first) = after_first_run(10);
    net.mtu = 1300;
    let second = Agent::start_serving(&first.ini, &[&net]);
    second.wait_for_log("initial networks applied", AGENT_TIMEOUT);
    let log = second.log_text();
    assert!(!log.contains("previous run's plumbing"), "{log}");
    let lease = first.lease("after restart with a new MTU");
    assert_eq!(lease.mtu, Some(1300));
    assert_eq!(lease, net.expected_lease(&first.port));
    second.stop();
}
