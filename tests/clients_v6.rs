//! End-to-end DHCPv6: the agent in standalone mode serves real DHCPv6 clients (ISC `dhclient -6`
//! and `dhcpcd -6`, stateful and stateless) running in their own network namespaces, wired to the
//! agent's DHCP port through the per-network Linux bridge.
//!
//! These tests need root and IPv6 on the host: without root they skip (one line for the suite);
//! as root, without IPv6 they fail (never skip). They create only uniquely named namespaces,
//! veth pairs and bridges with ULA addresses, removed again also on failure. Set
//! `NDRS_TEST_ECHO=1` to stream the agent's log, `NDRS_TEST_DEBUG=1` for `--debug` (every
//! DHCPv6 exchange is logged at debug level).

mod common;
#[path = "common/v6.rs"]
mod v6;

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use v6::*;

fn start(net: &Net6, ini: &str) -> Agent {
    let agent = Agent::start(ini, &networks_json6(&[net]));
    agent.wait_serving(&net.id);
    agent
}

fn sorted(mut v: Vec<std::net::Ipv6Addr>) -> Vec<std::net::Ipv6Addr> {
    v.sort();
    v
}

/// dhclient -6 with its default DUID-LLT and with a DUID-LL gets exactly its port's addresses
/// (both of them, for a port with two), our address as DNS server and `dns_domain` as search
/// list; on the same dual-stack network DHCPv4 keeps working.
#[test]
fn dhclient6_stateful_gets_exactly_its_port_addresses() {
    root_or_skip!();
    require_v6_env();
    let mut net = Net6::new("fd00:61:1::", Some("dhcpv6-stateful"), Some("10.63.1.0"));
    let two = net.add_port(Port6::vm(&[net.addr(0x10), net.addr(0x11)], None));
    let ll = net.add_port(Port6::vm(&[net.addr(0x20)], None));
    let v4 = net.add_port(Port6::vm(&[net.addr(0x40)], net.v4_addr(40)));
    net.add_port(Port6::vm(&[net.addr(0x30)], None)); // a port nobody asks for
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let c_two = ClientNs6::new(&net.bridge_name(), &two.mac);
    let c_ll = ClientNs6::new(&net.bridge_name(), &ll.mac);
    let agent = start(&net, &test_ini());

    let (r_two, r_ll) = thread::scope(|s| {
        let a = s.spawn(|| c_two.run(Client6::Dhclient, LEASE_TIMEOUT));
        let b = s.spawn(|| c_ll.run(Client6::DhclientDuidLl, LEASE_TIMEOUT));
        (a.join().unwrap(), b.join().unwrap())
    });
    note(&format!(
        "dhclient -6: leases in {:.1?} and {:.1?}",
        r_two.elapsed, r_ll.elapsed
    ));
    assert_eq!(
        r_two.expect_lease("port with two addresses"),
        Lease6 {
            addresses: sorted(two.v6.clone()),
            dns: vec![net.addr(2)],
            search: expected_search(),
        }
    );
    assert_eq!(
        r_ll.expect_lease("DUID-LL client"),
        Lease6 {
            addresses: ll.v6.clone(),
            dns: vec![net.addr(2)],
            search: expected_search(),
        }
    );

    // Dual stack: the IPv4 side of the same network is served as before.
    let c4 = ClientNs::new(&net.bridge_name(), &v4.mac);
    let lease4 = c4
        .run_client(Client::Dhclient, LEASE_TIMEOUT)
        .expect_lease("IPv4 on a dual-stack network");
    assert_eq!(Some(lease4.ip), v4.v4);
    agent.stop();
}

/// dhcpcd -6: with its own DUID-LLT, and with a DUID-EN (no MAC inside) from a random (non
/// EUI-64) link-local address, where only the link-layer source names the port.
#[test]
fn dhcpcd6_stateful_gets_its_port_addresses_whatever_its_duid() {
    root_or_skip!();
    require_v6_env();
    // Both address modes unset: stateful, as Neutron treats it.
    let mut net = Net6::new("fd00:61:2::", None, None);
    net.dns = vec!["2001:db8:61::53".parse().unwrap()];
    let plain = net.add_port(Port6::vm(&[net.addr(0x10)], None));
    let en = net.add_port(Port6::vm(&[net.addr(0x20), net.addr(0x21)], None));
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let c_plain = ClientNs6::new(&net.bridge_name(), &plain.mac);
    let c_en = ClientNs6::with_addr_mode(&net.bridge_name(), &en.mac, true);
    let ll = c_en.link_local().expect("link-local address");
    assert!(
        !format!("{ll}").contains("ff:fe"),
        "the client's link-local address {ll} must not be EUI-64 for this test"
    );
    let agent = start(&net, &test_ini());

    let (r_plain, r_en) = thread::scope(|s| {
        let a = s.spawn(|| c_plain.run(Client6::Dhcpcd, LEASE_TIMEOUT));
        let b = s.spawn(|| c_en.run(Client6::DhcpcdDuidEn, LEASE_TIMEOUT));
        (a.join().unwrap(), b.join().unwrap())
    });
    note(&format!(
        "dhcpcd -6: leases in {:.1?} and {:.1?}",
        r_plain.elapsed, r_en.elapsed
    ));
    let dns = net.dns.clone();
    assert_eq!(
        r_plain.expect_lease("dhcpcd with its own DUID"),
        Lease6 {
            addresses: plain.v6.clone(),
            dns: dns.clone(),
            search: expected_search(),
        }
    );
    assert_eq!(
        r_en.expect_lease("dhcpcd with a DUID-EN"),
        Lease6 {
            addresses: sorted(en.v6.clone()),
            dns,
            search: expected_search(),
        }
    );
    agent.stop();
}

/// dhclient -6 -S and dhcpcd --inform6 on a dhcpv6-stateless subnet get the DNS servers and
/// search list and no address; a stateful client there gets nothing.
#[test]
fn stateless_clients_get_options_only() {
    root_or_skip!();
    require_v6_env();
    let mut net = Net6::new("fd00:61:3::", Some("dhcpv6-stateless"), None);
    net.dns = vec![
        "2001:db8:61::53".parse().unwrap(),
        "2001:db8:61::54".parse().unwrap(),
    ];
    // Neutron gives ports on stateless subnets an address (SLAAC); DHCP only adds options.
    let a = net.add_port(Port6::vm(&[net.addr(0x10)], None));
    let b = net.add_port(Port6::vm(&[net.addr(0x11)], None));
    let c = net.add_port(Port6::vm(&[net.addr(0x12)], None));
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let c_a = ClientNs6::new(&net.bridge_name(), &a.mac);
    let c_b = ClientNs6::new(&net.bridge_name(), &b.mac);
    let c_c = ClientNs6::new(&net.bridge_name(), &c.mac);
    let agent = start(&net, &test_ini());

    let (r_a, r_b, r_c) = thread::scope(|s| {
        let ra = s.spawn(|| c_a.run(Client6::DhclientStateless, LEASE_TIMEOUT));
        let rb = s.spawn(|| c_b.run(Client6::DhcpcdInform, LEASE_TIMEOUT));
        let rc = s.spawn(|| c_c.run(Client6::Dhcpcd, NO_LEASE_TIMEOUT));
        (ra.join().unwrap(), rb.join().unwrap(), rc.join().unwrap())
    });
    let want = Lease6 {
        addresses: vec![],
        dns: net.dns.clone(),
        search: expected_search(),
    };
    assert_eq!(r_a.expect_lease("dhclient -6 -S"), want);
    assert_eq!(r_b.expect_lease("dhcpcd --inform6"), want);
    r_c.expect_nothing("stateful dhcpcd on a stateless subnet");
    agent.stop();
}

/// Static-only: a MAC that is no port gets no address, while a port on the same link does.
#[test]
fn unknown_mac_gets_no_address() {
    root_or_skip!();
    require_v6_env();
    let mut net = Net6::new("fd00:61:4::", Some("dhcpv6-stateful"), None);
    let known = net.add_port(Port6::vm(&[net.addr(0x10)], None));
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let c_known = ClientNs6::new(&net.bridge_name(), &known.mac);
    let c_stranger = ClientNs6::new(&net.bridge_name(), &random_mac());
    let c_stranger2 = ClientNs6::with_addr_mode(&net.bridge_name(), &random_mac(), true);
    let agent = start(&net, &test_ini());

    // The server answers on this link...
    let lease = c_known
        .run(Client6::Dhclient, LEASE_TIMEOUT)
        .expect_lease("known port");
    assert_eq!(lease.addresses, known.v6);
    // ...but not strangers, whatever client they run.
    let (r1, r2) = thread::scope(|s| {
        let a = s.spawn(|| c_stranger.run(Client6::Dhclient, NO_LEASE_TIMEOUT));
        let b = s.spawn(|| c_stranger2.run(Client6::DhcpcdDuidEn, NO_LEASE_TIMEOUT));
        (a.join().unwrap(), b.join().unwrap())
    });
    r1.expect_nothing("unknown MAC, dhclient");
    r2.expect_nothing("unknown MAC, dhcpcd with DUID-EN");
    agent.stop();
}

/// A client bound by one agent process renews with the next one (same DUID, derived from the
/// DHCP port's MAC, and static bindings): its Renew is answered, it never has to rebind.
#[test]
fn renew_after_agent_restart_is_answered() {
    root_or_skip!();
    require_v6_env();
    let mut net = Net6::new("fd00:61:5::", Some("dhcpv6-stateful"), None);
    let port = net.add_port(Port6::vm(&[net.addr(0x10)], None));
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let client = ClientNs6::new(&net.bridge_name(), &port.mac);
    // T1 = 4 s so the client renews quickly; T2 stays far away (7/8 of the lease).
    let ini = test_ini6("dhcp_renewal_time = 4\n");
    let agent = start(&net, &ini);

    let (mut dhclient, records_path, log_path) = client.start_dhclient_daemon();
    let records = || parse_records6(&fs::read_to_string(&records_path).unwrap_or_default());
    let output = || {
        format!(
            "--- dhclient log ---\n{}\n--- hook records ---\n{}",
            fs::read_to_string(&log_path).unwrap_or_default(),
            fs::read_to_string(&records_path).unwrap_or_default()
        )
    };
    let wait_for = |what: &str, since: usize, reason: &str, timeout: Duration| -> Record6 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = records()
                .into_iter()
                .skip(since)
                .find(|r| field6(r, "reason") == Some(reason))
            {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: no {reason} within {timeout:?}\n{}",
                output()
            );
            thread::sleep(Duration::from_millis(100));
        }
    };
    let bound = wait_for("first lease", 0, "BOUND6", LEASE_TIMEOUT);
    assert_eq!(record_addresses(&bound), port.v6);
    let server = field6(&bound, "new_dhcp6_server_id").map(str::to_owned);
    // One renewal with the first agent.
    wait_for("renewal", 0, "RENEW6", Duration::from_secs(15));

    agent.stop();
    // The harness removes the network's bridge once an agent has stopped (post-mortem
    // cleanup); put the client back on a fresh one, as the node's L2 agent would have kept it.
    let bridge = net.bridge_name();
    if !link_exists(&bridge) {
        ip(&format!("link add name {bridge} type bridge stp_state 0"));
        ip(&format!("link set {bridge} up"));
    }
    client.attach(&bridge);
    let restarted = start(&net, &ini);
    let mark = records().len();
    let renewed = wait_for(
        "renewal after restart",
        mark,
        "RENEW6",
        Duration::from_secs(45),
    );
    assert_eq!(record_addresses(&renewed), port.v6, "{}", output());
    assert_eq!(
        field6(&renewed, "new_dhcp6_server_id").map(str::to_owned),
        server,
        "the server DUID must survive the restart"
    );
    let rebinds = records()
        .iter()
        .filter(|r| field6(r, "reason") == Some("REBIND6"))
        .count();
    assert_eq!(rebinds, 0, "the client had to rebind\n{}", output());
    dhclient.terminate(Duration::from_secs(2));
    restarted.stop();
}
