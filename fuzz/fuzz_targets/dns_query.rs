//! Fuzz target: arbitrary bytes into the DNS service's query path must never panic; a reply
//! must parse as a DNS response to the query (same id), within the transport's size limit.
//!
//! Run with `cargo +nightly fuzz run dns_query` from the crate root.
#![no_main]

use std::sync::OnceLock;

use hickory_proto::op::{Message, MessageType};
use libfuzzer_sys::fuzz_target;
use neutron_dhcp::dns::answer::{respond, Outcome, Transport, EDNS_PAYLOAD, TCP_MAX};
use neutron_dhcp::view::names::DnsNames;
use neutron_dhcp::model::Network;
use serde_json::json;

/// Names of every kind: dns_assignment (another domain), generated v4 and v6 names, a port
/// with many addresses (truncation), excluded ports.
fn names() -> &'static DnsNames {
    static NAMES: OnceLock<DnsNames> = OnceLock::new();
    NAMES.get_or_init(|| {
        let many: Vec<_> = (10..90)
            .map(|i| json!({"subnet_id": "s4", "ip_address": format!("10.0.0.{i}")}))
            .collect();
        let assignment: Vec<_> = (10..90)
            .map(|i| json!({"ip_address": format!("10.0.0.{i}"), "hostname": "big",
                            "fqdn": "big.example.org."}))
            .collect();
        let net = Network::from_json(&json!({
            "id": "fuzz-net",
            "subnets": [
                {"id": "s4", "ip_version": 4, "cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.1"},
                {"id": "s6", "ip_version": 6, "cidr": "fd00::/64",
                 "ipv6_address_mode": "dhcpv6-stateful", "ipv6_ra_mode": "dhcpv6-stateful"}],
            "ports": [
                {"id": "dhcp", "mac_address": "fa:16:3e:00:00:01", "device_owner": "network:dhcp",
                 "fixed_ips": [{"subnet_id": "s4", "ip_address": "10.0.0.2"}]},
                {"id": "vm1", "mac_address": "fa:16:3e:00:00:0a", "device_owner": "compute:nova",
                 "fixed_ips": [{"subnet_id": "s4", "ip_address": "10.0.0.5"},
                               {"subnet_id": "s6", "ip_address": "fd00::5"}],
                 "dns_assignment": [
                    {"ip_address": "10.0.0.5", "hostname": "web", "fqdn": "web.example.org."}]},
                {"id": "vm2", "mac_address": "fa:16:3e:00:00:0b", "device_owner": "compute:nova",
                 "fixed_ips": [{"subnet_id": "s6", "ip_address": "fd00::6"}]},
                {"id": "big", "mac_address": "fa:16:3e:00:00:0c", "device_owner": "compute:nova",
                 "fixed_ips": many, "dns_assignment": assignment}
            ]
        }))
        .expect("fixed fuzz network is valid");
        DnsNames::build(&net, "openstacklocal")
    })
}

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::with_capacity(4096);
    for (transport, limit) in [(Transport::Udp, EDNS_PAYLOAD as usize), (Transport::Tcp, TCP_MAX)] {
        for forwarding in [false, true] {
            match respond(data, names(), forwarding, transport, &mut out) {
                Outcome::Reply(_) => {
                    assert!(out.len() >= 12 && out.len() <= limit);
                    assert_eq!(out[..2], data[..2], "the query's id");
                    let reply = Message::from_vec(&out).expect("our reply parses");
                    assert_eq!(reply.metadata.message_type, MessageType::Response);
                }
                Outcome::Forward => assert!(forwarding),
                Outcome::Malformed(_) => {}
            }
        }
    }
});
