//! Cost of the pure DHCPv4 responder per packet, on a network of 1,000 ports (one /22 subnet,
//! a router interface, realistic PRLs): DISCOVER→OFFER and REQUEST→ACK through `respond()`,
//! plus the one-off cost of building the view. Likewise for DHCPv6 on 1,000 ports of a
//! stateful /64: Solicit→Advertise and Request→Reply (clients with DUID-LL, dhclient's ORO).

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{criterion_group, criterion_main, Criterion};
use dhcproto::v4::{DhcpOption, Message, MessageType, OptionCode};
use dhcproto::Encodable;
use neutron_dhcp::config::ServeConfig;
use neutron_dhcp::dhcp::v4::{respond, Outcome};
use neutron_dhcp::dhcp::v6;
use neutron_dhcp::model::Network;
use neutron_dhcp::view::v6::NetworkView6;
use neutron_dhcp::view::NetworkView;
use serde_json::json;
use std::net::Ipv6Addr;

const PORTS: u32 = 1000;
const SUBNET: &str = "dddddddd-dddd-dddd-dddd-dddddddddddd";
/// dhclient's default parameter request list.
const PRL: [u8; 13] = [1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121, 42];

fn mac(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0xfa, 0x16, 0x3e, b[1], b[2], b[3]]
}

fn addr(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)) + 10 + i)
}

fn network() -> Network {
    let mut ports: Vec<_> = (0..PORTS)
        .map(|i| {
            json!({
                "id": format!("port-{i}"),
                "mac_address": neutron_dhcp::model::MacAddr(mac(i)).to_string(),
                "device_owner": "compute:nova",
                "fixed_ips": [{"subnet_id": SUBNET, "ip_address": addr(i).to_string()}],
                "dns_assignment": [{"ip_address": addr(i).to_string(),
                                    "hostname": format!("vm-{i}"),
                                    "fqdn": format!("vm-{i}.openstacklocal.")}],
            })
        })
        .collect();
    ports.push(json!({"id": "router", "mac_address": "fa:16:3e:ff:ff:01",
        "device_owner": "network:router_interface",
        "fixed_ips": [{"subnet_id": SUBNET, "ip_address": "10.0.0.1"}]}));
    ports.push(json!({"id": "dhcp", "mac_address": "fa:16:3e:ff:ff:02",
        "device_owner": "network:dhcp",
        "fixed_ips": [{"subnet_id": SUBNET, "ip_address": "10.0.0.2"}]}));
    Network::from_json(&json!({
        "id": "bench-net", "mtu": 1450,
        "subnets": [{"id": SUBNET, "ip_version": 4, "cidr": "10.0.0.0/22",
                     "gateway_ip": "10.0.0.1", "dns_nameservers": ["8.8.8.8", "8.8.4.4"],
                     "host_routes": [{"destination": "172.16.0.0/16", "nexthop": "10.0.0.254"}]}],
        "ports": ports,
    }))
    .expect("valid network")
}

fn request(i: u32, ty: MessageType) -> Vec<u8> {
    let z = Ipv4Addr::UNSPECIFIED;
    let mut m = Message::new_with_id(0xdead_0000 + i, z, z, z, z, &mac(i));
    m.opts_mut().insert(DhcpOption::MessageType(ty));
    m.opts_mut().insert(DhcpOption::ParameterRequestList(
        PRL.iter().map(|&c| OptionCode::from(c)).collect(),
    ));
    m.opts_mut().insert(DhcpOption::Hostname(format!("vm-{i}")));
    if ty == MessageType::Request {
        m.opts_mut()
            .insert(DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 0, 0, 2)));
        m.opts_mut().insert(DhcpOption::RequestedIpAddress(addr(i)));
    }
    m.to_vec().expect("encodable")
}

fn bench(c: &mut Criterion) {
    let net = network();
    let cfg = ServeConfig::default();
    let view = NetworkView::build(&net, "dhcp", &cfg);
    assert_eq!(view.v4_binding_count(), PORTS as usize + 1);
    let discovers: Vec<Vec<u8>> = (0..PORTS)
        .map(|i| request(i, MessageType::Discover))
        .collect();
    let requests: Vec<Vec<u8>> = (0..PORTS)
        .map(|i| request(i, MessageType::Request))
        .collect();
    let mut out = Vec::with_capacity(1500);
    for r in discovers.iter().chain(&requests) {
        assert!(matches!(respond(r, &view, &mut out), Outcome::Reply { .. }));
    }

    let mut i = 0;
    c.bench_function("discover_offer_1000_ports", |b| {
        b.iter(|| {
            i = (i + 1) % discovers.len();
            black_box(respond(black_box(&discovers[i]), &view, &mut out))
        })
    });
    c.bench_function("request_ack_1000_ports", |b| {
        b.iter(|| {
            i = (i + 1) % requests.len();
            black_box(respond(black_box(&requests[i]), &view, &mut out))
        })
    });
    c.bench_function("build_view_1000_ports", |b| {
        b.iter(|| black_box(NetworkView::build(black_box(&net), "dhcp", &cfg)))
    });
}

const SUBNET6: &str = "ffffffff-ffff-ffff-ffff-ffffffffffff";

fn addr6(i: u32) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, (i >> 16) as u16, 0x10 + i as u16)
}

fn network6() -> Network {
    let mut ports: Vec<_> = (0..PORTS)
        .map(|i| {
            json!({
                "id": format!("port-{i}"),
                "mac_address": neutron_dhcp::model::MacAddr(mac(i)).to_string(),
                "device_owner": "compute:nova",
                "fixed_ips": [{"subnet_id": SUBNET6, "ip_address": addr6(i).to_string()}],
            })
        })
        .collect();
    ports.push(json!({"id": "dhcp", "mac_address": "fa:16:3e:ff:ff:02",
        "device_owner": "network:dhcp",
        "fixed_ips": [{"subnet_id": SUBNET6, "ip_address": "fd00::2"}]}));
    Network::from_json(&json!({
        "id": "bench-net6", "mtu": 1450,
        "subnets": [{"id": SUBNET6, "ip_version": 6, "cidr": "fd00::/64",
                     "gateway_ip": "fd00::1", "dns_nameservers": ["2001:db8::53"],
                     "ipv6_address_mode": "dhcpv6-stateful", "ipv6_ra_mode": "dhcpv6-stateful"}],
        "ports": ports,
    }))
    .expect("valid network")
}

fn tlv(out: &mut Vec<u8>, code: u16, data: &[u8]) {
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

/// A dhclient-like Solicit or Request: client id (DUID-LL), elapsed time, ORO, one IA_NA
/// (with the address in a Request).
fn request6(i: u32, ty: u8, server: &[u8]) -> Vec<u8> {
    let mut m = vec![ty, (i >> 16) as u8, (i >> 8) as u8, i as u8];
    let mut duid = vec![0, 3, 0, 1];
    duid.extend_from_slice(&mac(i));
    tlv(&mut m, 1, &duid);
    if ty == 3 {
        tlv(&mut m, 2, server);
    }
    tlv(&mut m, 8, &[0, 0]);
    tlv(&mut m, 6, &[0, 23, 0, 24]);
    let mut ia = i.to_be_bytes().to_vec();
    ia.extend_from_slice(&[0; 8]);
    if ty == 3 {
        let mut a = addr6(i).octets().to_vec();
        a.extend_from_slice(&7200u32.to_be_bytes());
        a.extend_from_slice(&7500u32.to_be_bytes());
        tlv(&mut ia, 5, &a);
    }
    tlv(&mut m, 3, &ia);
    m
}

fn bench6(c: &mut Criterion) {
    let net = network6();
    let cfg = ServeConfig::default();
    let view = NetworkView6::build(&net, "dhcp", &cfg);
    assert_eq!(view.binding_count(), PORTS as usize);
    let server = view.server_duid().expect("server DUID").to_vec();
    let solicits: Vec<Vec<u8>> = (0..PORTS).map(|i| request6(i, 1, &server)).collect();
    let requests: Vec<Vec<u8>> = (0..PORTS).map(|i| request6(i, 3, &server)).collect();
    let src = v6::Source {
        addr: "fe80::1234:5678:9abc:def0".parse().expect("address"),
        // Identified by DUID, as before the frame's MAC was used: the same work per request.
        link: neutron_dhcp::dhcp::link::Link::Unknown,
    };
    let mut out = Vec::with_capacity(1500);
    for r in solicits.iter().chain(&requests) {
        assert!(matches!(
            v6::respond(r, &src, &view, &mut out),
            v6::Outcome::Reply { .. }
        ));
    }
    let mut i = 0;
    c.bench_function("solicit_advertise_1000_ports", |b| {
        b.iter(|| {
            i = (i + 1) % solicits.len();
            black_box(v6::respond(black_box(&solicits[i]), &src, &view, &mut out))
        })
    });
    c.bench_function("request_reply_1000_ports", |b| {
        b.iter(|| {
            i = (i + 1) % requests.len();
            black_box(v6::respond(black_box(&requests[i]), &src, &view, &mut out))
        })
    });
    c.bench_function("build_view6_1000_ports", |b| {
        b.iter(|| black_box(NetworkView6::build(black_box(&net), "dhcp", &cfg)))
    });
}

criterion_group!(benches, bench, bench6);
criterion_main!(benches);
