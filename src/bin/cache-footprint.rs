//! `cache-footprint`: memory and build time of the agent's cache alone (no namespaces, no
//! sockets) for N networks × P ports, as `scripts/bench-dnsmasq.sh` reports it.
//!
//! Each network is built the way the agent gets it: a `get_network_info` JSON dict (one IPv4
//! /20 subnet with DNS servers and a host route, a router port, the agent's DHCP port and P VM
//! ports with `dns_assignment`) is parsed into a `Network` and inserted into a `NetworkCache`,
//! which precomputes its `NetworkView`. The process's resident set size is read from
//! `/proc/self/statm` before and after; the JSON is dropped as soon as it is parsed, so the
//! difference is what the cache (networks + views) keeps.

use std::time::Instant;

use clap::Parser;
use serde_json::json;

use neutron_dhcp::config::ServeConfig;
use neutron_dhcp::model::Network;
use neutron_dhcp::view::cache::NetworkCache;

#[derive(Parser, Debug)]
#[command(name = "cache-footprint")]
struct Cli {
    #[arg(long, default_value_t = 10_000)]
    networks: usize,
    #[arg(long, default_value_t = 10)]
    ports: usize,
}

fn uuid(kind: u32, n: usize) -> String {
    format!("{kind:08x}-0000-4000-8000-{n:012x}")
}

fn network(i: usize, ports: usize) -> serde_json::Value {
    let (a, b) = ((i >> 4) & 0xff, (i & 0xf) << 4);
    let base = format!("10.{a}.{b}");
    let sid = uuid(1, i);
    let mut list = vec![
        json!({"id": uuid(2, i), "mac_address": format!("fa:16:3e:00:{:02x}:{:02x}", (i >> 8) & 0xff, i & 0xff),
               "device_owner": "network:dhcp", "device_id": format!("dhcp-{i}"),
               "fixed_ips": [{"subnet_id": sid, "ip_address": format!("{base}.2")}],
               "binding:host_id": "bench", "revision_number": 1}),
        json!({"id": uuid(3, i), "mac_address": format!("fa:16:3e:01:{:02x}:{:02x}", (i >> 8) & 0xff, i & 0xff),
               "device_owner": "network:router_interface", "device_id": "router",
               "fixed_ips": [{"subnet_id": sid, "ip_address": format!("{base}.1")}]}),
    ];
    for p in 0..ports {
        let ip = format!("10.{a}.{}.{}", b + 1 + p / 250, 1 + p % 250);
        let host = format!("host-{}", ip.replace('.', "-"));
        list.push(json!({
            "id": format!("{:08x}-{:04x}-4000-8000-000000000000", i, p),
            "mac_address": format!("fa:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff, (p >> 8) & 0xff, p & 0xff),
            "device_owner": "compute:nova", "device_id": format!("vm-{i}-{p}"),
            "fixed_ips": [{"subnet_id": sid, "ip_address": ip}],
            "extra_dhcp_opts": [],
            "dns_assignment": [{"ip_address": ip, "hostname": host, "fqdn": format!("{host}.openstacklocal.")}],
            "binding:host_id": "compute", "revision_number": 3,
        }));
    }
    json!({
        "id": uuid(4, i), "mtu": 1450, "admin_state_up": true,
        "subnets": [{"id": sid, "ip_version": 4, "cidr": format!("10.{a}.{b}.0/20"),
                     "gateway_ip": format!("{base}.1"), "enable_dhcp": true,
                     "dns_nameservers": ["8.8.8.8", "8.8.4.4"],
                     "host_routes": [{"destination": "192.168.0.0/16", "nexthop": format!("{base}.254")}]}],
        "ports": list,
    })
}

fn main() {
    let cli = Cli::parse();
    let cache = NetworkCache::new(ServeConfig::default());
    let rss0 = neutron_dhcp::memory::resident_bytes();
    let started = Instant::now();
    for i in 0..cli.networks {
        let net = Network::from_json(&network(i, cli.ports)).expect("generated network parses");
        cache.upsert(net, &uuid(2, i));
    }
    let elapsed = started.elapsed();
    let rss1 = neutron_dhcp::memory::resident_bytes();
    let delta = rss1.saturating_sub(rss0);
    let networks = cli.networks.max(1) as f64;
    println!(
        "{}",
        json!({
            "networks": cli.networks,
            "ports_per_network": cli.ports,
            "build_s": elapsed.as_secs_f64(),
            "build_us_per_network": elapsed.as_secs_f64() * 1e6 / networks,
            "rss_before_bytes": rss0,
            "rss_after_bytes": rss1,
            "rss_delta_bytes": delta,
            "bytes_per_network": delta as f64 / networks,
            "bytes_per_port": delta as f64 / (networks * (cli.ports + 2) as f64),
            "cached_networks": cache.network_ids().len(),
        })
    );
}
