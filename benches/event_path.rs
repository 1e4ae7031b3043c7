//! Cost of the pure part of the event path: a Neutron `port_update_end` cast as it arrives from
//! the broker (the oslo envelope) until the network's view is swapped, on a network of 1,000
//! ports. That is the envelope decode, the cast parse, the port put into the network and the
//! cache patching the view. The host plumbing a new network needs is not part of it (a port
//! update touches no device). The port's address alternates between two values so every
//! iteration really changes the view.

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{criterion_group, criterion_main, Criterion};
use neutron_dhcp::config::ServeConfig;
use neutron_dhcp::model::{MacAddr, Network};
use serde_json::{json, Value};

const PORTS: u32 = 1000;
const NET: &str = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";
const SUBNET: &str = "dddddddd-dddd-4ddd-8ddd-dddddddddddd";

fn port_json(i: u32, ip: Ipv4Addr) -> Value {
    let b = i.to_be_bytes();
    json!({
        "id": format!("eeeeeeee-eeee-4eee-8eee-{i:012x}"),
        "network_id": NET,
        "mac_address": MacAddr([0xfa, 0x16, 0x3e, b[1], b[2], b[3]]).to_string(),
        "device_owner": "compute:nova",
        "admin_state_up": true,
        "fixed_ips": [{"subnet_id": SUBNET, "ip_address": ip.to_string()}],
        "dns_assignment": [{"ip_address": ip.to_string(), "hostname": format!("vm-{i}"),
                            "fqdn": format!("vm-{i}.openstacklocal.")}],
    })
}

fn addr(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)) + 10 + i)
}

fn network() -> Network {
    let mut ports: Vec<Value> = (0..PORTS).map(|i| port_json(i, addr(i))).collect();
    ports.push(
        json!({"id": "ffffffff-ffff-4fff-8fff-000000000002", "mac_address": "fa:16:3e:ff:ff:02",
        "device_owner": "network:dhcp",
        "fixed_ips": [{"subnet_id": SUBNET, "ip_address": "10.0.0.2"}]}),
    );
    Network::from_json(&json!({
        "id": NET, "mtu": 1450,
        "subnets": [{"id": SUBNET, "ip_version": 4, "cidr": "10.0.0.0/22",
                     "gateway_ip": "10.0.0.1", "dns_nameservers": ["8.8.8.8"]}],
        "ports": ports,
    }))
    .expect("valid network")
}

/// The body neutron-server publishes for `port_update_end` (oslo envelope 2.0).
fn cast_body(port: Value) -> Vec<u8> {
    let msg = json!({
        "method": "port_update_end",
        "args": {"payload": {"port": port}},
        "version": "1.0",
        "_unique_id": "0123456789abcdef0123456789abcdef",
        "_context_request_id": "req-00000000-0000-4000-8000-000000000000",
        "_context_is_admin": true,
        "_context_roles": ["admin"],
    });
    serde_json::to_vec(&json!({"oslo.version": "2.0", "oslo.message": msg.to_string()}))
        .expect("encodable")
}

fn bench(c: &mut Criterion) {
    let cache = neutron_dhcp::view::cache::NetworkCache::new(ServeConfig::default());
    let own = "ffffffff-ffff-4fff-8fff-000000000002";
    let mut net = network();
    cache.upsert_borrowed(&net, own);
    // Port 500 moves between its own address and a free one (ports hold 10.0.0.10-10.0.3.241).
    let bodies = [
        cast_body(port_json(500, Ipv4Addr::new(10, 0, 3, 250))),
        cast_body(port_json(500, addr(500))),
    ];
    let mut i = 0;
    c.bench_function("port_update_cast_to_view_1000_ports", |b| {
        b.iter(|| {
            i ^= 1;
            let msg = neutron_dhcp::rpc::oslo::decode(black_box(&bodies[i])).expect("decodes");
            let neutron_dhcp::rpc::oslo::Message::Request(req) = msg else {
                panic!("not a request")
            };
            let cast =
                neutron_dhcp::neutron::events::parse_cast(&req.method, &req.args).expect("parses");
            let neutron_dhcp::neutron::events::Event::PortUpdate(ev) = cast.event else {
                panic!("not a port update")
            };
            net.put_port(ev.port);
            black_box(cache.upsert_borrowed(&net, own));
            cache.release_replaced();
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
