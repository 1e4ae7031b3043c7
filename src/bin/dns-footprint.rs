//! `dns-footprint`: the memory the DNS service adds per network, as `scripts/bench-dns.sh`
//! reports it: the heap its name table takes (built with each view) and the heap a running
//! service takes (UDP jobs on the DNS threads, TCP accept tasks, forwarder, counters), counted
//! by a counting allocator, plus the process's RSS growth.
//!
//! It runs in a network namespace of its own (root needed), each network's service listening
//! on a loopback address there: the sockets are real, the kernel's share of them is not
//! counted (nor is dnsmasq's in its RSS).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

use clap::Parser;
use serde_json::json;

use neutron_dhcp::config::ServeConfig;
use neutron_dhcp::dns::server::{DnsService, DnsSockets, Listen};
use neutron_dhcp::model::Network;
use neutron_dhcp::view::cache::NetworkCache;
use neutron_dhcp::view::names::DnsNames;

/// The system allocator, counting the bytes it has out.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: as the caller's contract for `alloc`.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: as the caller's contract for `dealloc`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: as the caller's contract for `realloc`.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[derive(Parser, Debug)]
#[command(name = "dns-footprint")]
struct Cli {
    #[arg(long, default_value_t = 200)]
    networks: usize,
    #[arg(long, default_value_t = 10)]
    ports: usize,
}

fn network(i: usize, ports: usize) -> Network {
    let mut list = vec![json!({"id": "dhcp", "mac_address": "fa:16:3e:00:00:01",
        "device_owner": "network:dhcp",
        "fixed_ips": [{"subnet_id": "s", "ip_address": "10.0.0.2"}]})];
    for p in 0..ports {
        let ip = format!("10.0.{}.{}", 1 + p / 250, 1 + p % 250);
        let host = format!("host-{}", ip.replace('.', "-"));
        list.push(json!({
            "id": format!("p{i}-{p}"), "mac_address": format!("fa:16:3e:00:{:02x}:{:02x}", p >> 8, p & 0xff),
            "device_owner": "compute:nova",
            "fixed_ips": [{"subnet_id": "s", "ip_address": ip}],
            "dns_assignment": [{"ip_address": ip, "hostname": host, "fqdn": format!("{host}.openstacklocal.")}],
        }));
    }
    Network::from_json(&json!({
        "id": format!("net-{i}"),
        "subnets": [{"id": "s", "ip_version": 4, "cidr": "10.0.0.0/16", "gateway_ip": "10.0.0.1"}],
        "ports": list,
    }))
    .expect("generated network parses")
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // SAFETY: unshare has no memory-safety preconditions; single-threaded so far.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        anyhow::bail!(
            "unshare(CLONE_NEWNET): {} (run as root)",
            std::io::Error::last_os_error()
        );
    }
    let up = std::process::Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()?;
    anyhow::ensure!(up.success(), "ip link set lo up failed");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let nets: Vec<Network> = (0..cli.networks).map(|i| network(i, cli.ports)).collect();
    let cache = NetworkCache::new(ServeConfig::default());

    // Warm-up: the DNS threads, the runtime's first tasks, hickory's statics.
    let warm = cache.upsert(network(usize::MAX, 1), "dhcp");
    let sockets = DnsSockets::open_here("self", Listen::of(&["127.1.0.1/8".parse()?]))?;
    let warm = DnsService::serve("warm", sockets, warm, Arc::new([]), rt.handle())?;

    let heap0 = LIVE.load(Ordering::Relaxed);
    let started = std::time::Instant::now();
    let names: Vec<DnsNames> = nets
        .iter()
        .map(|n| DnsNames::build(n, "openstacklocal"))
        .collect();
    let build_us = started.elapsed().as_secs_f64() * 1e6 / cli.networks.max(1) as f64;
    let heap1 = LIVE.load(Ordering::Relaxed);
    // A port event: one port replaced by another, patched on the event path.
    let mut update_us = 0.0;
    if let (Some(old), Some(names0)) = (nets.first(), names.first()) {
        let mut new = old.clone();
        let extra = network(usize::MAX - 1, cli.ports + 1);
        if let (Some(_), Some(added)) = (new.ports.pop(), extra.ports.last()) {
            new.ports.push(added.clone());
        }
        let started = std::time::Instant::now();
        let patched = names0.update(old, &new, "openstacklocal");
        update_us = started.elapsed().as_secs_f64() * 1e6;
        anyhow::ensure!(patched.is_some(), "a one-port change is patched");
    }
    let views: Vec<_> = nets
        .iter()
        .map(|n| cache.upsert(n.clone(), "dhcp"))
        .collect();
    let rss0 = neutron_dhcp::memory::resident_bytes();
    let heap2 = LIVE.load(Ordering::Relaxed);
    let mut services = Vec::with_capacity(nets.len());
    for (i, view) in views.into_iter().enumerate() {
        let addr = format!("127.2.{}.{}/8", i / 250, 1 + i % 250).parse()?;
        let sockets = DnsSockets::open_here("self", Listen::of(&[addr]))?;
        let upstream: Arc<[std::net::SocketAddr]> = Arc::new(["192.0.2.1:53".parse()?]);
        services.push(DnsService::serve(
            &format!("net-{i}"),
            sockets,
            view,
            upstream,
            rt.handle(),
        )?);
    }
    // Let the DNS threads and the runtime take their commands.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let heap3 = LIVE.load(Ordering::Relaxed);
    let rss1 = neutron_dhcp::memory::resident_bytes();
    let n = cli.networks.max(1) as f64;
    let names_b = (heap1 - heap0) as f64 / n;
    let service_b = (heap3 - heap2) as f64 / n;
    println!(
        "{}",
        json!({
            "networks": cli.networks,
            "ports_per_network": cli.ports,
            "names_build_us_per_network": build_us,
            "names_update_us_one_port": update_us,
            "names_heap_bytes_per_network": names_b,
            "service_heap_bytes_per_network": service_b,
            "added_heap_bytes_per_network": names_b + service_b,
            "service_rss_bytes_per_network": rss1.saturating_sub(rss0) as f64 / n,
            "names_built": names.len(),
        })
    );
    rt.block_on(async {
        for s in services {
            s.stop().await;
        }
        warm.stop().await;
    });
    Ok(())
}
