//! Fuzz target: arbitrary bytes into the DHCPv4 responder must never panic, and every reply
//! must be a well-formed, padded BOOTREPLY within the buffer the shell provides. The input is
//! the whole datagram (up to the 64 KiB the shell receives), so options in `file`/`sname`
//! (option 52) are explored too; what the shell saw of the frame (which decides relayed
//! requests) is picked from the input's length, leaving the datagram itself untouched.
//!
//! Run with `cargo +nightly fuzz run respond_v4` from the crate root.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use neutron_dhcp::config::ServeConfig;
use neutron_dhcp::dhcp::link::Link;
use neutron_dhcp::dhcp::v4::{respond_from, Outcome};
use neutron_dhcp::model::{MacAddr, Network};
use neutron_dhcp::view::NetworkView;
use serde_json::json;

/// A network exercising every responder path: direct and relay-only subnets, client-id and
/// iPXE-tagged port options, a router interface, two DHCP agents.
fn view() -> &'static NetworkView {
    static VIEW: OnceLock<NetworkView> = OnceLock::new();
    VIEW.get_or_init(|| {
        let net = Network::from_json(&json!({
            "id": "fuzz-net", "mtu": 1450,
            "subnets": [{"id": "s1", "ip_version": 4, "cidr": "192.168.0.0/24",
                         "gateway_ip": "192.168.0.1", "dns_nameservers": [],
                         "host_routes": [{"destination": "20.0.0.0/24", "nexthop": "192.168.0.254"}]}],
            "non_local_subnets": [{"id": "s2", "ip_version": 4, "cidr": "10.2.0.0/24",
                                   "gateway_ip": "10.2.0.1", "segment_id": "seg2"}],
            "ports": [
                {"id": "p1", "mac_address": "00:00:80:aa:bb:cc", "device_owner": "compute:nova",
                 "fixed_ips": [{"subnet_id": "s1", "ip_address": "192.168.0.2"}]},
                {"id": "p2", "mac_address": "00:00:80:aa:bb:cd", "device_owner": "baremetal:none",
                 "fixed_ips": [{"subnet_id": "s1", "ip_address": "192.168.0.3"},
                               {"subnet_id": "s2", "ip_address": "10.2.0.3"}],
                 "extra_dhcp_opts": [
                     {"opt_name": "client-id", "opt_value": "cid"},
                     {"opt_name": "tag:ipxe,bootfile-name", "opt_value": "http://x/boot.ipxe"},
                     {"opt_name": "bootfile-name", "opt_value": "undionly.kpxe"},
                     {"opt_name": "server-ip-address", "opt_value": "192.168.0.9"},
                     {"opt_name": "dns-server", "opt_value": "0.0.0.0,8.8.8.8"}]},
                {"id": "r", "mac_address": "00:00:80:aa:bb:01", "device_owner": "network:router_interface",
                 "fixed_ips": [{"subnet_id": "s1", "ip_address": "192.168.0.1"}]},
                {"id": "dhcp1", "mac_address": "00:00:80:aa:bb:02", "device_owner": "network:dhcp",
                 "fixed_ips": [{"subnet_id": "s1", "ip_address": "192.168.0.10"}]},
                {"id": "dhcp2", "mac_address": "00:00:80:aa:bb:03", "device_owner": "network:dhcp",
                 "fixed_ips": [{"subnet_id": "s1", "ip_address": "192.168.0.11"}]}
            ]
        }))
        .expect("fixed fuzz network is valid");
        NetworkView::build(&net, "dhcp1", &ServeConfig::default())
    })
}

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::with_capacity(1500);
    let capacity = out.capacity();
    let link = match data.len() % 4 {
        0 => Link::Unknown,
        1 => Link::Missed,
        2 => Link::Seen(MacAddr([0, 0, 0x80, 0xaa, 0xbb, 0x01])), // the router
        _ => Link::Seen(MacAddr([0, 0, 0x80, 0xaa, 0xbb, 0xcc])), // a VM
    };
    match respond_from(data, link, view(), &mut out) {
        Outcome::Reply { .. } => {
            assert!(out.len() >= 300 && out.len() <= 1472);
            assert_eq!(out[0], 2);
            assert_eq!(out.capacity(), capacity, "no reallocation");
        }
        Outcome::Ignored(_) | Outcome::Malformed(_) => assert!(out.is_empty()),
    }
});
