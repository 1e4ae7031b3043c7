//! End to end: the network's DNS service (port 53 on the DHCP port's addresses, inside
//! `qdhcp-<network>`), asked by the real `dig` from client namespaces on the network's bridge:
//! local names (FQDN, short, mixed case, PTR), over UDP and TCP; two networks on one CIDR kept
//! apart; port changes by SIGHUP; malformed queries; forwarding to an upstream that only the
//! tenant network reaches; REFUSED without upstream.
//!
//! Needs root, `dig` (bind9-dnsutils) and, for the upstream, `dnsmasq`. Names, namespaces and
//! bridges are unique per test and removed afterwards.

#[path = "common/alloc_count.rs"]
mod alloc_count;
mod common;
#[path = "common/dns.rs"]
mod dnstools;

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use dnstools::{arpa, dig, Dug};

fn v4(s: &str) -> Ipv4Addr {
    s.parse().expect("IPv4 literal")
}

/// A client namespace on the network's bridge with a static address.
fn client(net: &NetSpec, addr: &str) -> ClientNs {
    let c = ClientNs::new(&net.bridge_name(), &random_mac());
    ip(&format!(
        "-n {} addr add {addr}/{} dev {}",
        c.ns, net.prefix, c.ifname
    ));
    c
}

/// Asks until the service answers (its sockets open right after the "serving" line; an
/// address on a fresh veth may still be settling), then returns the answer.
fn dig_ready(ns: &str, server: &str, name: &str, qtype: &str) -> Dug {
    let mut last = Dug::status("TIMEOUT");
    for _ in 0..10 {
        last = dig(ns, server, name, qtype, false);
        if last.status != "TIMEOUT" {
            return last;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    last
}

#[test]
fn local_names_over_udp_and_tcp_follow_port_changes() {
    root_or_skip!();
    require_client_tools();
    require_tool("dig");
    let mut net = NetSpec::new("10.71.0.0/24", Some(v4("10.71.0.1")), v4("10.71.0.2"));
    let web = net.add_port(PortSpec::vm(v4("10.71.0.10")).with_hostname("web-1"));
    let plain = net.add_port(PortSpec::vm(v4("10.71.0.11")));
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let c = client(&net, "10.71.0.99");
    let agent = Agent::start_serving(&test_ini(), &[&net]);
    let server = "10.71.0.2";
    let fqdn = format!("web-1.{DNS_DOMAIN}");
    let a_web = Dug::ok(&["a 10.71.0.10"]);
    assert_eq!(dig_ready(&c.ns, server, &fqdn, "A"), a_web);

    for tcp in [false, true] {
        let ask = |name: &str, qtype: &str| dig(&c.ns, server, name, qtype, tcp);
        assert_eq!(ask(&fqdn, "A"), a_web, "fqdn, tcp={tcp}");
        assert_eq!(ask("web-1", "A"), a_web, "short name, tcp={tcp}");
        assert_eq!(
            ask(&fqdn.to_uppercase(), "A"),
            a_web,
            "upper case, tcp={tcp}"
        );
        assert_eq!(ask("Web-1", "A"), a_web, "mixed case, tcp={tcp}");
        let generated = format!("host-10-71-0-11.{DNS_DOMAIN}");
        assert_eq!(
            ask(&generated, "A"),
            Dug::ok(&["a 10.71.0.11"]),
            "tcp={tcp}"
        );
        assert_eq!(ask("host-10-71-0-11", "A"), Dug::ok(&["a 10.71.0.11"]));
        assert_eq!(
            ask(&arpa("10.71.0.10"), "PTR"),
            Dug::ok(&[&format!("ptr {fqdn}.")]),
            "PTR, tcp={tcp}"
        );
        assert_eq!(
            ask(&arpa("10.71.0.11"), "PTR"),
            Dug::ok(&[&format!("ptr host-10-71-0-11.{DNS_DOMAIN}.")])
        );
        // No IPv6 address: not answered here, so (no upstream) REFUSED, as dnsmasq does.
        assert_eq!(ask("web-1", "AAAA"), Dug::status("REFUSED"), "tcp={tcp}");
        // Not a local name and no upstream: REFUSED, at once.
        assert_eq!(ask("example.com", "A"), Dug::status("REFUSED"));
        // The DHCP port has no name (Neutron leaves it out of addn_hosts).
        assert_eq!(ask("host-10-71-0-2", "A"), Dug::status("REFUSED"));
        assert_eq!(ask(&arpa("10.71.0.50"), "PTR"), Dug::status("REFUSED"));
    }

    // Malformed datagrams are dropped and counted; the service goes on answering.
    for garbage in [
        r"\x01",
        r"\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05",
        r"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
    ] {
        let sent = Command::new("ip")
            .args(["netns", "exec", &c.ns, "bash", "-c"])
            .arg(format!("printf '{garbage}' > /dev/udp/{server}/53"))
            .status()
            .expect("bash");
        assert!(sent.success());
    }
    assert_eq!(dig(&c.ns, server, "web-1", "A", false), a_web);

    // A port added, one renamed away, one removed: answered as soon as the reload is done.
    let mut changed = net.clone();
    changed.remove_port(&web.id);
    changed.remove_port(&plain.id);
    changed.add_port(PortSpec::vm(v4("10.71.0.12")).with_hostname("db-1"));
    changed.add_port(PortSpec {
        hostname: Some("web-2".into()),
        ..plain.clone()
    });
    agent.reload(&networks_json(&[&changed]));
    assert_eq!(
        dig(&c.ns, server, "db-1", "A", false),
        Dug::ok(&["a 10.71.0.12"])
    );
    assert_eq!(
        dig(&c.ns, server, "web-2", "A", true),
        Dug::ok(&["a 10.71.0.11"])
    );
    assert_eq!(
        dig(&c.ns, server, "web-1", "A", false),
        Dug::status("REFUSED")
    );
    assert_eq!(
        dig(&c.ns, server, "host-10-71-0-11", "A", false),
        Dug::status("REFUSED")
    );
    assert_eq!(
        dig(&c.ns, server, &arpa("10.71.0.11"), "PTR", false),
        Dug::ok(&[&format!("ptr web-2.{DNS_DOMAIN}.")])
    );

    let log = agent.stop();
    let stopped = log
        .lines()
        .find(|l| l.contains("stopped DNS"))
        .unwrap_or_else(|| panic!("no DNS stop line\n{log}"));
    assert!(stopped.contains("malformed 3"), "{stopped}");
}

#[test]
fn two_networks_on_one_cidr_keep_their_names_apart() {
    root_or_skip!();
    require_client_tools();
    require_tool("dig");
    let mut a = NetSpec::new("10.72.0.0/24", None, v4("10.72.0.2"));
    let mut b = NetSpec::new("10.72.0.0/24", None, v4("10.72.0.2"));
    a.add_port(PortSpec::vm(v4("10.72.0.10")).with_hostname("alpha"));
    b.add_port(PortSpec::vm(v4("10.72.0.10")).with_hostname("beta"));
    let _ba = LinkGuard::bridge(&a.bridge_name());
    let _bb = LinkGuard::bridge(&b.bridge_name());
    let ca = client(&a, "10.72.0.99");
    let cb = client(&b, "10.72.0.99");
    let agent = Agent::start_serving(&test_ini(), &[&a, &b]);
    let server = "10.72.0.2";
    assert_eq!(
        dig_ready(&ca.ns, server, "alpha", "A"),
        Dug::ok(&["a 10.72.0.10"])
    );
    assert_eq!(
        dig_ready(&cb.ns, server, "beta", "A"),
        Dug::ok(&["a 10.72.0.10"])
    );
    for tcp in [false, true] {
        assert_eq!(
            dig(&ca.ns, server, "beta", "A", tcp),
            Dug::status("REFUSED")
        );
        assert_eq!(
            dig(&cb.ns, server, "alpha", "A", tcp),
            Dug::status("REFUSED")
        );
        let ptr = arpa("10.72.0.10");
        assert_eq!(
            dig(&ca.ns, server, &ptr, "PTR", tcp),
            Dug::ok(&[&format!("ptr alpha.{DNS_DOMAIN}.")])
        );
        assert_eq!(
            dig(&cb.ns, server, &ptr, "PTR", tcp),
            Dug::ok(&[&format!("ptr beta.{DNS_DOMAIN}.")])
        );
    }
    agent.stop();
}

/// An upstream resolver on the tenant network (a dnsmasq answering `*.upstream.test` in a
/// namespace of its own on the bridge): only the agent's namespace can reach it.
struct Upstream {
    _ns: ClientNs,
    _child: ChildGuard,
}

fn upstream(net: &NetSpec, addr: &str) -> Upstream {
    let ns = client(net, addr);
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.ns,
            "dnsmasq",
            "--keep-in-foreground",
            "--no-resolv",
        ])
        .args(["--no-hosts", "--bind-interfaces", "--conf-file=/dev/null"])
        .arg(format!("--listen-address={addr}"))
        .arg("--address=/upstream.test/192.0.2.7")
        .arg("--pid-file=")
        .arg("--user=root")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dnsmasq as the upstream");
    Upstream {
        _ns: ns,
        _child: ChildGuard::new(child, false),
    }
}

#[test]
fn other_names_are_forwarded_from_inside_the_namespace() {
    root_or_skip!();
    require_client_tools();
    require_tool("dig");
    require_tool("dnsmasq");
    let mut net = NetSpec::new("10.73.0.0/24", Some(v4("10.73.0.1")), v4("10.73.0.2"));
    net.add_port(PortSpec::vm(v4("10.73.0.10")).with_hostname("web-1"));
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let _up = upstream(&net, "10.73.0.53");
    let c = client(&net, "10.73.0.99");
    // The first server never answers: the query must move on to the second.
    let ini = format!(
        "{}\n[DEFAULT]\ndnsmasq_dns_servers = 10.73.0.54, 10.73.0.53\n",
        test_ini()
    );
    let agent = Agent::start_serving(&ini, &[&net]);
    let server = "10.73.0.2";
    assert_eq!(
        dig_ready(&c.ns, server, "web-1", "A"),
        Dug::ok(&["a 10.73.0.10"])
    );
    for tcp in [false, true] {
        assert_eq!(
            dig(&c.ns, server, "www.upstream.test", "A", tcp),
            Dug::ok(&["a 192.0.2.7"]),
            "tcp={tcp}"
        );
        // Local names are still answered here, not upstream.
        assert_eq!(
            dig(&c.ns, server, "web-1", "A", tcp),
            Dug::ok(&["a 10.73.0.10"])
        );
    }
    agent.stop();
}

#[test]
fn a_restart_on_the_plumbing_left_behind_answers_at_once() {
    root_or_skip!();
    require_client_tools();
    require_tool("dig");
    let mut net = NetSpec::new("10.74.0.0/24", None, v4("10.74.0.2"));
    net.add_port(PortSpec::vm(v4("10.74.0.10")).with_hostname("web-1"));
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let c = client(&net, "10.74.0.99");
    let server = "10.74.0.2";
    // Both runs share the state directory, where the plumbing is recorded.
    let state = tempfile::tempdir().expect("state dir");
    let ini = format!(
        "{}\n[DEFAULT]\nstate_path = {}\n",
        test_ini(),
        state.path().display()
    );
    let first = Agent::start_keeping_plumbing(&ini, &networks_json(&[&net]));
    first.wait_serving(&net.id);
    assert_eq!(
        dig_ready(&c.ns, server, "web-1", "A"),
        Dug::ok(&["a 10.74.0.10"])
    );
    first.stop_keeping_plumbing();
    // Nothing listens between the runs.
    assert_eq!(dig(&c.ns, server, "web-1", "A", false).status, "TIMEOUT");

    let second = Agent::start(&ini, &networks_json(&[&net]));
    second.wait_for_log(
        "serving network (on the previous run's plumbing",
        Duration::from_secs(20),
    );
    for tcp in [false, true] {
        assert_eq!(
            dig(&c.ns, server, "web-1", "A", tcp),
            Dug::ok(&["a 10.74.0.10"]),
            "tcp={tcp}"
        );
    }
    second.wait_for_log(
        "plumbing left by the previous run verified",
        Duration::from_secs(20),
    );
    assert_eq!(
        dig(&c.ns, server, "web-1", "A", false),
        Dug::ok(&["a 10.74.0.10"])
    );
    second.stop();
}

/// A fake upstream (Python, raw sockets) that answers every query four times: from another
/// port, with another id, for another question, and only then rightly. Only the last may
/// reach the client.
const SPOOFING_UPSTREAM: &str = r#"
import socket, struct, sys
addr = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((addr, 53))
other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
other.bind((addr, 5353))
def answer(q, qid, name_bytes, ip):
    hdr = struct.pack(">HHHHHH", qid, 0x8180, 1, 1, 0, 0)
    qend = 12 + len(name_bytes) + 4
    question = name_bytes + q[qend - 4:qend]
    rr = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton(ip)
    return hdr + question + rr
def qname(q):
    i = 12
    while q[i] != 0:
        i += 1 + q[i]
    return q[12:i + 1]
while True:
    q, peer = s.recvfrom(4096)
    (qid,) = struct.unpack(">H", q[:2])
    name = qname(q)
    other.sendto(answer(q, qid, name, "192.0.2.66"), peer)
    s.sendto(answer(q, qid ^ 0x5a5a, name, "192.0.2.67"), peer)
    s.sendto(answer(q, qid, b"\x05other\x04test\x00", "192.0.2.68"), peer)
    s.sendto(answer(q, qid, name, "192.0.2.7"), peer)
"#;

#[test]
fn only_the_upstream_answer_matching_the_query_reaches_the_client() {
    root_or_skip!();
    require_client_tools();
    require_tool("dig");
    require_tool("python3");
    let mut net = NetSpec::new("10.75.0.0/24", None, v4("10.75.0.2"));
    net.add_port(PortSpec::vm(v4("10.75.0.10")));
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let up = client(&net, "10.75.0.53");
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &up.ns,
            "python3",
            "-c",
            SPOOFING_UPSTREAM,
            "10.75.0.53",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("python3");
    let _up_child = ChildGuard::new(child, false);
    let c = client(&net, "10.75.0.99");
    let ini = format!(
        "{}\n[DEFAULT]\ndnsmasq_dns_servers = 10.75.0.53\n",
        test_ini()
    );
    let agent = Agent::start_serving(&ini, &[&net]);
    let server = "10.75.0.2";
    dig_ready(&c.ns, server, "host-10-75-0-10", "A");
    for name in [
        "one.upstream.test",
        "two.upstream.test",
        "Three.Upstream.Test",
    ] {
        assert_eq!(
            dig(&c.ns, server, name, "A", false),
            Dug::ok(&["a 192.0.2.7"]),
            "{name}"
        );
    }
    let log = agent.stop();
    assert!(log.contains("stopped DNS"), "{log}");
}

/// The hot path: a query for a local name (A by short name and FQDN, PTR) or one refused takes
/// no allocation once the reply buffer exists (names up to 32 octets, no EDNS options).
#[test]
fn a_local_answer_allocates_nothing() {
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::{Name, RecordType};
    use neutron_dhcp::dns::answer::{respond, Answered, Outcome, Transport};
    use neutron_dhcp::view::names::DnsNames;

    let mut net = NetSpec::new("10.79.0.0/24", None, v4("10.79.0.2"));
    for i in 10..200u8 {
        let p = PortSpec::vm(Ipv4Addr::new(10, 79, 0, i));
        net.add_port(if i % 2 == 0 {
            p.with_hostname(&format!("vm-{i}"))
        } else {
            p
        });
    }
    let network = neutron_dhcp::model::Network::from_json(&net.to_json()).expect("parses");
    let names = DnsNames::build(&network, DNS_DOMAIN);
    let query = |name: &str, t: RecordType| {
        let mut m = Message::query();
        m.add_query(Query::query(Name::from_ascii(name).expect("name"), t));
        m.to_vec().expect("encode")
    };
    let cases = [
        (
            query("vm-10", RecordType::A),
            Outcome::Reply(Answered::Local),
        ),
        (
            query(&format!("VM-20.{DNS_DOMAIN}"), RecordType::A),
            Outcome::Reply(Answered::Local),
        ),
        (
            query("host-10-79-0-11", RecordType::A),
            Outcome::Reply(Answered::Local),
        ),
        (
            query("11.0.79.10.in-addr.arpa", RecordType::PTR),
            Outcome::Reply(Answered::Local),
        ),
        (
            query("example.com", RecordType::A),
            Outcome::Reply(Answered::Refused),
        ),
    ];
    let mut out = Vec::with_capacity(4096);
    for (q, expected) in &cases {
        assert_eq!(
            respond(q, &names, false, Transport::Udp, &mut out),
            *expected
        );
    }
    let before = alloc_count::allocations();
    for _ in 0..100 {
        for (q, _) in &cases {
            respond(q, &names, false, Transport::Udp, &mut out);
        }
    }
    assert_eq!(
        alloc_count::allocations() - before,
        0,
        "allocations per 500 queries"
    );
}
