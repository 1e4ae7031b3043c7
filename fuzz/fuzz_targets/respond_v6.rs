//! Fuzz target: arbitrary bytes into the DHCPv6 responder must never panic, and every reply
//! must be well-formed DHCPv6 (options tile the message) within the buffer the shell provides.
//! The first byte selects what the shell knows about the sender (no MAC, a port's MAC, an
//! EUI-64 source), the rest is the datagram.
//!
//! Run with `cargo +nightly fuzz run respond_v6` from the crate root.
#![no_main]

use std::net::Ipv6Addr;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use neutron_dhcp::config::ServeConfig;
use neutron_dhcp::dhcp::link::Link;
use neutron_dhcp::dhcp::v6::{respond, Outcome, Source, MAX_REPLY};
use neutron_dhcp::model::{MacAddr, Network};
use neutron_dhcp::view::v6::NetworkView6;
use serde_json::json;

/// A network exercising every responder path: stateful and stateless subnets, a relay-only
/// (non-local) subnet, a client-id reservation, iPXE-tagged and NTP port options.
fn view() -> &'static NetworkView6 {
    static VIEW: OnceLock<NetworkView6> = OnceLock::new();
    VIEW.get_or_init(|| {
        let net = Network::from_json(&json!({
            "id": "fuzz-net6", "mtu": 1450,
            "subnets": [
                {"id": "s1", "ip_version": 6, "cidr": "fd00:1::/64", "dns_nameservers": [],
                 "ipv6_address_mode": "dhcpv6-stateful", "ipv6_ra_mode": "dhcpv6-stateful"},
                {"id": "s2", "ip_version": 6, "cidr": "fd00:2::/64", "dns_nameservers": ["2001:db8::53"],
                 "ipv6_address_mode": "dhcpv6-stateless", "ipv6_ra_mode": "dhcpv6-stateless"}],
            "non_local_subnets": [
                {"id": "s3", "ip_version": 6, "cidr": "fd00:3::/64", "segment_id": "seg3"}],
            "ports": [
                {"id": "dhcp", "mac_address": "fa:16:3e:00:00:02", "device_owner": "network:dhcp",
                 "fixed_ips": [{"subnet_id": "s1", "ip_address": "fd00:1::2"},
                               {"subnet_id": "s2", "ip_address": "fd00:2::2"}]},
                {"id": "p1", "mac_address": "fa:16:3e:00:00:11", "device_owner": "compute:nova",
                 "fixed_ips": [{"subnet_id": "s1", "ip_address": "fd00:1::10"},
                               {"subnet_id": "s1", "ip_address": "fd00:1::11"},
                               {"subnet_id": "s2", "ip_address": "fd00:2::10"},
                               {"subnet_id": "s3", "ip_address": "fd00:3::10"}]},
                {"id": "p2", "mac_address": "fa:16:3e:00:00:12", "device_owner": "baremetal:none",
                 "fixed_ips": [{"subnet_id": "s1", "ip_address": "fd00:1::20"}],
                 "extra_dhcp_opts": [
                     {"opt_name": "client-id", "opt_value": "00:02:00:00:ab:11:01", "ip_version": 6},
                     {"opt_name": "tag:ipxe6,bootfile-url", "opt_value": "http://x/ipxe.efi", "ip_version": 6},
                     {"opt_name": "bootfile-url", "opt_value": "tftp://x/boot.efi", "ip_version": 6},
                     {"opt_name": "ntp-server", "opt_value": "[::],[2001:db8::123]", "ip_version": 6}]}
            ]
        }))
        .expect("fixed fuzz network is valid");
        NetworkView6::build(&net, "dhcp", &ServeConfig::default())
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, req)) = data.split_first() else {
        return;
    };
    let mac = [0xfa, 0x16, 0x3e, 0, 0, 0x10 | (sel >> 4)];
    let src = match sel & 3 {
        0 => Source {
            addr: Ipv6Addr::new(0xfe80, 0, 0, 0, 1, 2, 3, 4),
            link: Link::Unknown,
        },
        1 => Source {
            addr: Ipv6Addr::new(0xfe80, 0, 0, 0, 1, 2, 3, 4),
            link: Link::Seen(MacAddr(mac)),
        },
        2 => Source {
            addr: Ipv6Addr::new(0xfe80, 0, 0, 0, 0xf816, 0x3eff, 0xfe00, 0x11),
            link: Link::Missed,
        },
        _ => Source {
            addr: Ipv6Addr::new(0xfe80, 0, 0, 0, 0xf816, 0x3eff, 0xfe00, 0x11),
            link: Link::Unknown,
        },
    };
    let mut out = Vec::with_capacity(1500);
    let capacity = out.capacity();
    match respond(req, &src, view(), &mut out) {
        Outcome::Reply { .. } => {
            assert!(out.len() >= 4 && out.len() <= MAX_REPLY);
            assert!(matches!(out[0], 2 | 7 | 13));
            assert_eq!(out.capacity(), capacity, "no reallocation");
            check(&out);
        }
        Outcome::Ignored(_) | Outcome::Malformed(_) => assert!(out.is_empty()),
    }
});

/// Options (and Relay Message contents) tile the message exactly.
fn check(msg: &[u8]) {
    let mut area = if msg[0] == 13 { &msg[34..] } else { &msg[4..] };
    while !area.is_empty() {
        assert!(area.len() >= 4);
        let code = u16::from_be_bytes([area[0], area[1]]);
        let len = usize::from(u16::from_be_bytes([area[2], area[3]]));
        assert!(area.len() >= 4 + len);
        if msg[0] == 13 && code == 9 {
            check(&area[4..4 + len]);
        }
        area = &area[4 + len..];
    }
}
