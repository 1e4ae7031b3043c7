//! Differential test of the DNS service: real dnsmasq, run with Neutron's command line and
//! files (`neutron_dhcp::dnsmasq`) for a network, is the oracle for what our agent answers on
//! port 53 for the same network (the `tests/differential.rs` pattern).
//!
//! ```text
//!  dnsmasq phase:  <ndq…>: ns-<port11> (DHCP port MAC + IPs)  ──veth──  <ndt…> ─┐
//!                                                                              ├─ brq<net11>
//!  agent phase:    qdhcp-<net>: ns-<port11>  ──veth──  tap<port11> ───────────┤   (root ns)
//!  client:         <ndc…>: 10.76.0.99, fd76::99  ──veth──  <ndc…>r ───────────┘
//! ```
//!
//! The same table of queries (FQDNs, short names, mixed case, A and AAAA, PTR v4 and v6,
//! unknown names, excluded ports, other types) is asked with `dig` over UDP (IPv4 and IPv6)
//! and TCP in both phases; the RCODE and the answer set (type and data) must be the same.
//! Needs root, `dnsmasq` (dnsmasq-base) and `dig` (bind9-dnsutils).

mod common;
#[path = "common/dns.rs"]
mod dnstools;
#[path = "common/dnsmasq.rs"]
mod oracle;

use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::*;
use dnstools::{arpa, dig, Dug};
use neutron_dhcp::config::ServeConfig;
use neutron_dhcp::model::Network;
use oracle::DnsmasqServer;

const V4: &str = "10.76.0.2";
const V6: &str = "fd76::2";

/// The fixture: IPv4 and stateful DHCPv6 subnets and a DHCP-disabled one; ports with and
/// without `dns_assignment` (one in another domain), with two addresses, a router interface,
/// and the ports Neutron leaves out of `addn_hosts` (DHCP, floating IP).
fn fixture() -> (Value, String) {
    let id = random_uuid();
    let (s4, s6, off) = (random_uuid(), random_uuid(), random_uuid());
    let dhcp_port = random_uuid();
    let port = |owner: &str, ips: &[(&str, &str)], names: Option<(&str, &str)>| {
        let fixed: Vec<Value> = ips
            .iter()
            .map(|(s, ip)| json!({"subnet_id": s, "ip_address": ip}))
            .collect();
        let mut p = json!({
            "id": random_uuid(), "mac_address": random_mac(), "device_owner": owner,
            "device_id": random_uuid(), "fixed_ips": fixed, "extra_dhcp_opts": [],
        });
        if let Some((host, fqdn)) = names {
            p["dns_assignment"] = ips
                .iter()
                .map(|(_, ip)| json!({"ip_address": ip, "hostname": host, "fqdn": fqdn}))
                .collect();
        }
        p
    };
    let mut dhcp = port("network:dhcp", &[(&s4, V4), (&s6, V6)], None);
    dhcp["id"] = json!(dhcp_port);
    let web = format!("web-1.{DNS_DOMAIN}.");
    let net = json!({
        "id": id, "admin_state_up": true, "mtu": 1450,
        "subnets": [
            {"id": s4, "ip_version": 4, "cidr": "10.76.0.0/24", "gateway_ip": "10.76.0.1",
             "enable_dhcp": true, "dns_nameservers": [], "host_routes": []},
            {"id": s6, "ip_version": 6, "cidr": "fd76::/64", "gateway_ip": "fd76::1",
             "enable_dhcp": true, "dns_nameservers": [], "host_routes": [],
             "ipv6_address_mode": "dhcpv6-stateful", "ipv6_ra_mode": "dhcpv6-stateful"},
            {"id": off, "ip_version": 4, "cidr": "10.77.0.0/24", "gateway_ip": null,
             "enable_dhcp": false, "dns_nameservers": [], "host_routes": []}
        ],
        "ports": [
            dhcp,
            port("compute:nova", &[(&s4, "10.76.0.10"), (&s6, "fd76::10")], Some(("web-1", &web))),
            port("compute:nova", &[(&s4, "10.76.0.11")], Some(("db-1", "db-1.example.org."))),
            port("compute:nova", &[(&s4, "10.76.0.12")], None),
            port("compute:nova", &[(&s6, "fd76::13")], None),
            port("compute:nova", &[(&off, "10.77.0.5")], None),
            port("network:router_interface", &[(&s4, "10.76.0.1")], None),
            port("network:floatingip", &[(&s4, "10.76.0.20")], None),
        ]
    });
    (net, dhcp_port)
}

/// The queries: (name, type).
fn queries() -> Vec<(String, &'static str)> {
    let d = DNS_DOMAIN;
    let mut q: Vec<(String, &'static str)> = Vec::new();
    for name in [
        format!("web-1.{d}"),
        "web-1".into(),
        format!("WEB-1.{}", d.to_uppercase()),
        "Web-1".into(),
        "db-1.example.org".into(),
        "db-1".into(),
        format!("db-1.{d}"),
        format!("host-10-76-0-12.{d}"),
        "host-10-76-0-12".into(),
        format!("host-fd76--13.{d}"),
        "host-fd76--13".into(),
        format!("host-10-77-0-5.{d}"),
        format!("host-10-76-0-1.{d}"),
        // Not named: the DHCP port, the floating IP, unknown hosts, the domain itself.
        format!("host-10-76-0-2.{d}"),
        format!("host-10-76-0-20.{d}"),
        format!("nobody.{d}"),
        d.into(),
        "example.com".into(),
    ] {
        q.push((name.clone(), "A"));
        q.push((name, "AAAA"));
    }
    for name in [format!("web-1.{d}"), "web-1".into()] {
        q.push((name.clone(), "TXT"));
        q.push((name, "MX"));
    }
    for ip in [
        "10.76.0.10",
        "fd76::10",
        "10.76.0.11",
        "10.76.0.12",
        "fd76::13",
        "10.77.0.5",
        "10.76.0.1",
        "10.76.0.2",
        "fd76::2",
        "10.76.0.20",
        "10.76.0.99",
    ] {
        q.push((arpa(ip), "PTR"));
    }
    q.push(("76.10.in-addr.arpa".into(), "PTR"));
    q
}

/// Every query over UDP/IPv4, TCP/IPv4 and UDP/IPv6; `(label, answer)` in table order.
fn ask_all(ns: &str) -> Vec<(String, Dug)> {
    let mut out = Vec::new();
    for (server, tcp, via) in [(V4, false, "udp4"), (V4, true, "tcp4"), (V6, false, "udp6")] {
        for (name, qtype) in queries() {
            out.push((
                format!("{via} {name} {qtype}"),
                dig(ns, server, &name, qtype, tcp),
            ));
        }
    }
    out
}

/// Waits until `server` answers on port 53 (a fresh namespace's addresses settle first).
fn wait_answering(ns: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    for server in [V4, V6] {
        while dig(ns, server, "web-1", "A", false).status == "TIMEOUT" {
            assert!(Instant::now() < deadline, "{server} never answered");
            thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Turns IPv6 on for `ifname` in `ns` (the harness's namespaces start with it off).
fn enable_v6(ns: &str, ifname: &str) {
    for key in [
        "net.ipv6.conf.all.disable_ipv6=0".to_string(),
        format!("net.ipv6.conf.{ifname}.disable_ipv6=0"),
    ] {
        run("ip", &["netns", "exec", ns, "sysctl", "-qw", &key]);
    }
}

/// Neutron's dnsmasq for the fixture, its DHCP port on [`V4`] and [`V6`].
fn start_dnsmasq(net: &Network, own_id: &str, serve: &ServeConfig, bridge: &str) -> DnsmasqServer {
    let own = net.port(own_id).expect("DHCP port");
    DnsmasqServer::start(net, own, serve, bridge, 0, |p| {
        enable_v6(p.ns, p.ifname);
        for (addr, plen) in [(V4, 24), (V6, 64)] {
            ip(&format!(
                "-n {} addr add {addr}/{plen} dev {} nodad",
                p.ns, p.ifname
            ));
        }
    })
}

#[test]
fn dns_answers_are_those_of_neutrons_dnsmasq() {
    root_or_skip!();
    require_client_tools();
    require_tool("dig");
    require_tool("dnsmasq");
    let (net_json, own_id) = fixture();
    let net = Network::from_json(&net_json).expect("fixture parses");
    let serve = ServeConfig {
        dns_domain: DNS_DOMAIN.into(),
        ..ServeConfig::default()
    };
    let bridge = format!("brq{}", &net.id[..11]);
    let _bridge = LinkGuard::bridge(&bridge);
    let client = ClientNs::new(&bridge, &random_mac());
    ip(&format!(
        "-n {} addr add 10.76.0.99/24 dev {}",
        client.ns, client.ifname
    ));
    enable_v6(&client.ns, &client.ifname);
    ip(&format!(
        "-n {} addr add fd76::99/64 dev {} nodad",
        client.ns, client.ifname
    ));

    let dnsmasq = start_dnsmasq(&net, &own_id, &serve, &bridge);
    wait_answering(&client.ns);
    let theirs = ask_all(&client.ns);
    dnsmasq.stop();

    let networks = serde_json::to_string_pretty(&json!([net_json])).unwrap();
    let agent = Agent::start(&test_ini(), &networks);
    agent.wait_serving(&net.id);
    wait_answering(&client.ns);
    let ours = ask_all(&client.ns);
    agent.stop();

    let mut table = String::new();
    let mut differ = 0;
    for ((label, o), (_, d)) in ours.iter().zip(&theirs) {
        let same = o == d;
        differ += usize::from(!same);
        table.push_str(&format!(
            "{} {label}: ours {} {:?} | dnsmasq {} {:?}\n",
            if same { "  " } else { "!!" },
            o.status,
            o.answers,
            d.status,
            d.answers
        ));
    }
    note(&table);
    assert!(
        theirs
            .iter()
            .any(|(_, d)| d.status == "NOERROR" && !d.answers.is_empty()),
        "dnsmasq answered nothing: the comparison would prove nothing\n{table}"
    );
    assert_eq!(
        differ, 0,
        "{differ} answers differ from dnsmasq's:\n{table}"
    );
}
