//! Integration tests of the device manager with the veth driver against the real kernel.
//!
//! They need root (network namespaces, veth, bridges, mounts under /var/run/netns); without
//! it they skip, with one line for the suite (`common::root_or_skip!`). Every test uses its
//! own random network and port ids, so its namespace (`qdhcp-<id>`), taps and bridges never
//! collide with parallel tests or other runs, and a guard deletes them even when an assertion
//! fails. The kernel state is inspected with `ip`, independently of the code under test.

mod common;

use std::collections::hash_map::RandomState;
use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher};
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use ipnetwork::IpNetwork;
use neutron_dhcp::device::{
    in_netns, list_managed_namespaces, namespace_name, ns_ifname, on_batch_threads, tap_name,
    DefaultRoute, DeviceConfig, DeviceManager, PlumbPlan,
};
use neutron_dhcp::model::{MacAddr, Network};
use serde_json::{json, Value};

use common::root_or_skip;

/// Random-looking ids whose first 11 characters are unique per test and per run.
fn ids() -> (String, String) {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut h = RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u32(n);
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    let r = h.finish();
    let net = format!("{:08x}-{:02x}ee-4e7e-8000-00000000000a", r as u32, n as u8);
    let port = format!(
        "{:08x}-{:02x}ff-4a0a-8000-00000000000b",
        (r >> 32) as u32,
        n as u8
    );
    (net, port)
}

/// Deletes what a test may have created, whatever happened.
struct Cleanup {
    namespace: String,
    links: Vec<String>,
}

impl Cleanup {
    fn new(network_id: &str, port_id: &str) -> Self {
        Cleanup {
            namespace: namespace_name(network_id),
            links: vec![tap_name(port_id)],
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for l in &self.links {
            let _ = Command::new("ip").args(["link", "del", l]).output();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.namespace])
            .output();
    }
}

/// Runs `ip` (or anything) and returns stdout; panics with stderr on failure.
fn run(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn try_json(args: &[&str]) -> Option<Value> {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// `ip -d -j link show dev <dev>` in `ns` (`None`: root namespace); `None` if missing.
fn link(ns: Option<&str>, dev: &str) -> Option<Value> {
    let mut args = vec!["ip"];
    if let Some(ns) = ns {
        args.extend(["-n", ns]);
    }
    args.extend(["-d", "-j", "link", "show", "dev", dev]);
    try_json(&args).map(|v| v[0].clone())
}

fn flags(l: &Value) -> Vec<String> {
    l["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_owned())
        .collect()
}

/// Addresses of the device as `ip/prefix`, kernel IPv6 link-local ones left out.
fn addrs(ns: &str, dev: &str) -> BTreeSet<String> {
    let v: Value =
        serde_json::from_str(&run(&["ip", "-n", ns, "-j", "addr", "show", "dev", dev])).unwrap();
    v[0]["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .filter(|a| !a.starts_with("fe80:") || a.starts_with("fe80::a9fe:a9fe/"))
        .collect()
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Default routes as `(gateway, dev)`.
fn defaults(ns: &str, v6: bool) -> Vec<(String, String)> {
    let fam = if v6 { "-6" } else { "-4" };
    let v: Value = serde_json::from_str(&run(&[
        "ip", "-n", ns, "-j", fam, "route", "show", "default",
    ]))
    .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["gateway"].as_str().unwrap_or("").to_owned(),
                r["dev"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// Routes to exactly `dst` (a host route) in the main table.
fn host_routes(ns: &str, dst: &str) -> Vec<Value> {
    let fam = if dst.contains(':') { "-6" } else { "-4" };
    let v: Value = serde_json::from_str(&run(&[
        "ip", "-n", ns, "-j", fam, "route", "show", "exact", dst,
    ]))
    .unwrap();
    v.as_array().unwrap().clone()
}

fn ns_cat(ns: &str, path: &str) -> String {
    run(&["ip", "netns", "exec", ns, "cat", path])
        .trim()
        .to_owned()
}

fn root_sysctl(key: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/{key}"))
        .unwrap()
        .trim()
        .to_owned()
}

fn ns_exists(ns: &str) -> bool {
    std::path::Path::new("/var/run/netns").join(ns).exists()
}

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

fn nets(v: &[&str]) -> Vec<IpNetwork> {
    v.iter().map(|s| s.parse().unwrap()).collect()
}

fn gw(ip: &str, onlink: bool) -> Option<DefaultRoute> {
    Some(DefaultRoute {
        gateway: ip.parse().unwrap(),
        onlink_host_route: onlink,
    })
}

fn dual_stack_network(net_id: &str, port_id: &str) -> Network {
    Network::from_json(&json!({
        "id": net_id, "mtu": 1450, "admin_state_up": true,
        "subnets": [
            {"id": "s1-v4", "ip_version": 4, "cidr": "10.77.0.0/24", "gateway_ip": "10.77.0.1",
             "enable_dhcp": true},
            {"id": "s2-v6", "ip_version": 6, "cidr": "fd77::/64", "gateway_ip": "fd77::1",
             "enable_dhcp": true, "ipv6_address_mode": "dhcpv6-stateful",
             "ipv6_ra_mode": "dhcpv6-stateful"},
        ],
        "ports": [{
            "id": port_id, "mac_address": "fa:16:3e:aa:bb:cc", "device_owner": "network:dhcp",
            "device_id": "dhcp-test",
            "fixed_ips": [{"subnet_id": "s1-v4", "ip_address": "10.77.0.2"},
                          {"subnet_id": "s2-v6", "ip_address": "fd77::2"}],
        }],
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_plumbs_namespace_device_addresses_and_routes_then_teardown_removes_them() {
    root_or_skip!();
    let (net_id, port_id) = ids();
    let _cleanup = Cleanup::new(&net_id, &port_id);
    let ns = namespace_name(&net_id);
    let tap = tap_name(&port_id);
    let nsif = ns_ifname(&port_id);

    let cfg = DeviceConfig {
        enable_isolated_metadata: true,
        ..DeviceConfig::default()
    };
    let net = dual_stack_network(&net_id, &port_id);
    let plan = PlumbPlan::for_network(&net, &net.ports[0], &cfg);
    let dm = DeviceManager::new(cfg);
    let root_accept_ra = root_sysctl("net/ipv6/conf/default/accept_ra");
    let root_nonlocal = root_sysctl("net/ipv4/ip_nonlocal_bind");
    let plugged = dm.setup(&plan).await.unwrap();

    assert_eq!(plugged.namespace, ns);
    assert_eq!(plugged.ifname, nsif);
    assert_eq!(plugged.mac, mac("fa:16:3e:aa:bb:cc"));
    assert!(ns_exists(&ns));
    assert!(list_managed_namespaces().await.unwrap().contains(&ns));

    let lo = link(Some(&ns), "lo").unwrap();
    assert!(flags(&lo).contains(&"UP".into()), "lo: {lo}");

    let dev = link(Some(&ns), &nsif).expect("namespace end exists");
    assert_eq!(dev["ifindex"].as_u64().unwrap(), u64::from(plugged.ifindex));
    assert_eq!(dev["address"], "fa:16:3e:aa:bb:cc");
    assert_eq!(dev["mtu"], 1450);
    assert_eq!(dev["linkinfo"]["info_kind"], "veth");
    assert!(flags(&dev).contains(&"UP".into()), "{dev}");

    let root_end = link(None, &tap).expect("tap exists in the root namespace");
    assert_eq!(root_end["mtu"], 1450);
    assert_eq!(root_end["linkinfo"]["info_kind"], "veth");
    assert!(flags(&root_end).contains(&"UP".into()), "{root_end}");
    assert!(
        root_end.get("master").is_none(),
        "no bridge configured: {root_end}"
    );
    assert!(
        link(None, &nsif).is_none(),
        "ns end must not be in the root namespace"
    );

    assert_eq!(
        addrs(&ns, &nsif),
        set(&[
            "10.77.0.2/24",
            "169.254.169.254/32",
            "fd77::2/64",
            "fe80::a9fe:a9fe/128"
        ])
    );
    assert_eq!(
        defaults(&ns, false),
        vec![("10.77.0.1".into(), nsif.clone())]
    );
    assert_eq!(defaults(&ns, true), vec![("fd77::1".into(), nsif.clone())]);

    assert_eq!(ns_cat(&ns, "/proc/sys/net/ipv4/ip_nonlocal_bind"), "1");
    assert_eq!(
        ns_cat(&ns, "/proc/sys/net/ipv6/conf/default/accept_ra"),
        "0"
    );
    assert_eq!(
        ns_cat(&ns, &format!("/proc/sys/net/ipv6/conf/{nsif}/accept_ra")),
        "0"
    );
    // The sysctls were written inside the namespace, not in the root namespace.
    assert_eq!(
        root_accept_ra,
        root_sysctl("net/ipv6/conf/default/accept_ra")
    );
    assert_eq!(root_nonlocal, root_sysctl("net/ipv4/ip_nonlocal_bind"));

    dm.teardown(&net_id, &port_id).await.unwrap();
    assert!(!ns_exists(&ns), "namespace removed");
    assert!(!list_managed_namespaces().await.unwrap().contains(&ns));
    assert!(link(None, &tap).is_none(), "tap removed");
    // Idempotent.
    dm.teardown(&net_id, &port_id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_again_keeps_the_device_and_converges_a_changed_plan() {
    root_or_skip!();
    let (net_id, port_id) = ids();
    let _cleanup = Cleanup::new(&net_id, &port_id);
    let ns = namespace_name(&net_id);
    let tap = tap_name(&port_id);
    let nsif = ns_ifname(&port_id);
    let dm = DeviceManager::new(DeviceConfig::default());

    let mut plan = PlumbPlan {
        network_id: net_id.clone(),
        port_id: port_id.clone(),
        mac: mac("fa:16:3e:00:00:01"),
        mtu: Some(1500),
        addresses: nets(&["10.78.0.2/24", "10.78.0.3/24", "fd78::2/64"]),
        default_v4: gw("10.78.0.1", false),
        default_v6: gw("fd78::1", false),
    };
    let first = dm.setup(&plan).await.unwrap();
    let tap_index = link(None, &tap).unwrap()["ifindex"].clone();
    let carrier = |ns: &str| ns_cat(ns, &format!("/sys/class/net/{nsif}/carrier_changes"));
    let carrier_before = carrier(&ns);

    // Same plan again: nothing is recreated, nothing flaps.
    let again = dm.setup(&plan).await.unwrap();
    assert_eq!(again, first);
    assert_eq!(link(None, &tap).unwrap()["ifindex"], tap_index);
    assert_eq!(
        carrier(&ns),
        carrier_before,
        "link flapped on a no-op setup"
    );
    assert_eq!(
        addrs(&ns, &nsif),
        set(&["10.78.0.2/24", "10.78.0.3/24", "fd78::2/64"])
    );

    // Changed plan: the primary address goes (its secondary must survive), a new one comes,
    // MTU and MAC change, the gateways move (v4 off-subnet: on-link host route).
    plan.addresses = nets(&["10.78.0.3/24", "10.79.0.2/24", "fd78::3/64"]);
    plan.mtu = Some(1400);
    plan.mac = mac("fa:16:3e:00:00:02");
    plan.default_v4 = gw("10.50.0.1", true);
    plan.default_v6 = gw("fd78::fe", false);
    let changed = dm.setup(&plan).await.unwrap();
    assert_eq!(changed.ifindex, first.ifindex, "device recreated");
    assert_eq!(link(None, &tap).unwrap()["ifindex"], tap_index);
    assert_eq!(
        addrs(&ns, &nsif),
        set(&["10.78.0.3/24", "10.79.0.2/24", "fd78::3/64"])
    );
    let dev = link(Some(&ns), &nsif).unwrap();
    assert_eq!(dev["mtu"], 1400);
    assert_eq!(dev["address"], "fa:16:3e:00:00:02");
    assert!(flags(&dev).contains(&"UP".into()), "{dev}");
    assert_eq!(link(None, &tap).unwrap()["mtu"], 1400);
    assert_eq!(
        defaults(&ns, false),
        vec![("10.50.0.1".into(), nsif.clone())]
    );
    let onlink = host_routes(&ns, "10.50.0.1");
    assert_eq!(onlink.len(), 1, "{onlink:?}");
    assert_eq!(onlink[0]["scope"], "link", "{onlink:?}");
    assert_eq!(defaults(&ns, true), vec![("fd78::fe".into(), nsif.clone())]);

    // Converged plan applied again is a no-op too.
    let carrier_before = carrier(&ns);
    dm.setup(&plan).await.unwrap();
    assert_eq!(
        carrier(&ns),
        carrier_before,
        "link flapped on a no-op setup"
    );

    // Gateway moves back inside the subnet: the old on-link route goes with the old gateway.
    plan.default_v4 = gw("10.78.0.1", false);
    dm.setup(&plan).await.unwrap();
    assert_eq!(
        defaults(&ns, false),
        vec![("10.78.0.1".into(), nsif.clone())]
    );
    assert!(host_routes(&ns, "10.50.0.1").is_empty());

    // No qualifying subnet: default routes are removed.
    plan.default_v4 = None;
    plan.default_v6 = None;
    let last = dm.setup(&plan).await.unwrap();
    assert!(defaults(&ns, false).is_empty());
    assert!(defaults(&ns, true).is_empty());
    assert_eq!(last.ifindex, first.ifindex);

    dm.teardown(&net_id, &port_id).await.unwrap();
    assert!(!ns_exists(&ns));
    assert!(link(None, &tap).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_template_attaches_tap_and_teardown_deletes_the_empty_bridge() {
    root_or_skip!();
    let (net_id, port_id) = ids();
    let mut cleanup = Cleanup::new(&net_id, &port_id);
    let ns = namespace_name(&net_id);
    let tap = tap_name(&port_id);
    let bridge = format!("brq{}", &net_id[..11]);
    cleanup.links.push(bridge.clone());

    let dm = DeviceManager::new(DeviceConfig {
        veth_bridge: Some("brq{network_id}".into()),
        ..DeviceConfig::default()
    });
    let plan = PlumbPlan {
        network_id: net_id.clone(),
        port_id: port_id.clone(),
        mac: mac("fa:16:3e:00:01:01"),
        mtu: Some(1450),
        addresses: nets(&["10.80.0.2/24"]),
        default_v4: None,
        default_v6: None,
    };
    let first = dm.setup(&plan).await.unwrap();

    let br = link(None, &bridge).expect("bridge created");
    assert_eq!(br["linkinfo"]["info_kind"], "bridge");
    assert!(flags(&br).contains(&"UP".into()), "{br}");
    let t = link(None, &tap).unwrap();
    assert_eq!(t["master"], bridge.as_str(), "{t}");
    assert_eq!(t["mtu"], 1450);

    let again = dm.setup(&plan).await.unwrap();
    assert_eq!(again, first);
    assert_eq!(link(None, &tap).unwrap()["master"], bridge.as_str());

    dm.teardown(&net_id, &port_id).await.unwrap();
    assert!(link(None, &tap).is_none());
    assert!(
        link(None, &bridge).is_none(),
        "empty per-network bridge deleted"
    );
    assert!(!ns_exists(&ns));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_bridge_name_is_shared_and_kept_on_teardown() {
    root_or_skip!();
    let (net_id, port_id) = ids();
    let mut cleanup = Cleanup::new(&net_id, &port_id);
    let bridge = format!("tbr{}", &port_id[..8]);
    cleanup.links.push(bridge.clone());
    // A pre-existing, down bridge is used and set up.
    run(&["ip", "link", "add", &bridge, "type", "bridge"]);

    let dm = DeviceManager::new(DeviceConfig {
        veth_bridge: Some(bridge.clone()),
        ..DeviceConfig::default()
    });
    let plan = PlumbPlan {
        network_id: net_id.clone(),
        port_id: port_id.clone(),
        mac: mac("fa:16:3e:00:02:01"),
        mtu: None,
        addresses: vec![],
        default_v4: None,
        default_v6: None,
    };
    dm.setup(&plan).await.unwrap();
    assert_eq!(
        link(None, &tap_name(&port_id)).unwrap()["master"],
        bridge.as_str()
    );
    assert!(flags(&link(None, &bridge).unwrap()).contains(&"UP".into()));

    dm.teardown(&net_id, &port_id).await.unwrap();
    assert!(link(None, &bridge).is_some(), "shared bridge kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_replaces_a_stale_tap_in_an_existing_namespace() {
    root_or_skip!();
    let (net_id, port_id) = ids();
    let mut cleanup = Cleanup::new(&net_id, &port_id);
    let ns = namespace_name(&net_id);
    let tap = tap_name(&port_id);
    // Left over from a crash: the namespace exists, and a tap whose peer is not in it.
    let stray_peer = format!("stl{}", &port_id[..8]);
    cleanup.links.push(stray_peer.clone());
    run(&["ip", "netns", "add", &ns]);
    run(&[
        "ip",
        "link",
        "add",
        &tap,
        "type",
        "veth",
        "peer",
        "name",
        &stray_peer,
    ]);
    let stale_index = link(None, &tap).unwrap()["ifindex"].clone();

    let dm = DeviceManager::new(DeviceConfig::default());
    let plan = PlumbPlan {
        network_id: net_id.clone(),
        port_id: port_id.clone(),
        mac: mac("fa:16:3e:00:03:01"),
        mtu: None,
        addresses: nets(&["10.81.0.2/24"]),
        default_v4: gw("10.81.0.1", false),
        default_v6: None,
    };
    dm.setup(&plan).await.unwrap();
    assert_ne!(
        link(None, &tap).unwrap()["ifindex"],
        stale_index,
        "stale tap replaced"
    );
    assert!(link(None, &stray_peer).is_none());
    assert!(link(Some(&ns), &ns_ifname(&port_id)).is_some());
    assert_eq!(addrs(&ns, &ns_ifname(&port_id)), set(&["10.81.0.2/24"]));
    dm.teardown(&net_id, &port_id).await.unwrap();
    assert!(!ns_exists(&ns));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_netns_runs_the_closure_inside_the_namespace() {
    root_or_skip!();
    let (net_id, _) = ids();
    let ns = namespace_name(&net_id);
    let _cleanup = Cleanup {
        namespace: ns.clone(),
        links: vec![],
    };
    run(&["ip", "netns", "add", &ns]);

    let inside = in_netns(&ns, || {
        std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino()
    })
    .await
    .unwrap();
    let expected = std::fs::metadata(format!("/var/run/netns/{ns}"))
        .unwrap()
        .ino();
    assert_eq!(inside, expected);
    // The caller's thread did not move.
    let here = std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino();
    assert_ne!(here, expected);

    let missing = format!("{ns}-missing");
    let err = in_netns(&missing, || ()).await.unwrap_err().to_string();
    assert!(err.contains(&missing), "{err}");

    // A panicking job is reported, and the worker pool keeps working.
    let err = in_netns(&ns, || -> () { panic!("job panics") })
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("panicked"), "{err}");
    let again = in_netns(&ns, || {
        std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino()
    })
    .await
    .unwrap();
    assert_eq!(again, expected);

    // The workers went back home after their jobs: no thread of ours keeps the namespace (and
    // whatever devices are in it) alive once it is deleted. (Only this test's namespace is
    // looked for: the other tests of this binary run at the same time, and their threads may
    // be in namespaces of their own.)
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let path = task.unwrap().path().join("ns/net");
        if let Ok(m) = std::fs::metadata(&path) {
            assert_ne!(m.ino(), expected, "{} is still in {ns}", path.display());
        }
    }
}

#[test]
fn batch_threads_run_each_job_in_the_namespace_it_enters() {
    root_or_skip!();
    let names: Vec<String> = (0..3).map(|_| namespace_name(&ids().0)).collect();
    let _cleanup: Vec<Cleanup> = names
        .iter()
        .map(|ns| Cleanup {
            namespace: ns.clone(),
            links: vec![],
        })
        .collect();
    for ns in &names {
        run(&["ip", "netns", "add", ns]);
    }
    let inode = |path: &str| std::fs::metadata(path).unwrap().ino();
    let home = inode("/proc/self/ns/net");
    // Each namespace several times, a missing one and a panicking job among them: more jobs
    // than threads, so threads step from namespace to namespace.
    let missing = format!("{}-missing", names[0]);
    let mut items: Vec<String> = (0..4).flat_map(|_| names.clone()).collect();
    items.insert(5, missing.clone());
    items.insert(7, "panic".into());
    let results = on_batch_threads(items.clone(), 2, |thread, ns: String| {
        if ns == "panic" {
            panic!("job panics");
        }
        thread
            .enter(&ns)
            .map(|()| inode("/proc/thread-self/ns/net"))
    });
    assert_eq!(results.len(), items.len());
    for (ns, r) in items.iter().zip(&results) {
        match (ns.as_str(), r) {
            ("panic", Err(e)) => assert!(e.to_string().contains("panicked"), "{e}"),
            (ns, Ok(Err(e))) if ns == missing => assert!(e.to_string().contains(ns), "{e}"),
            (ns, Ok(Ok(inside))) => assert_eq!(*inside, inode(&format!("/var/run/netns/{ns}"))),
            (ns, other) => panic!("{ns}: unexpected {other:?}", other = other.is_ok()),
        }
    }
    // The caller never moved, and no batch thread outlived the call (so none can keep a
    // namespace). Other threads are not looked at: the namespace pool's workers of the tests
    // running beside this one may be inside their own namespaces at this moment.
    assert_eq!(inode("/proc/thread-self/ns/net"), home);
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let comm = std::fs::read_to_string(task.unwrap().path().join("comm")).unwrap_or_default();
        assert_ne!(
            comm.trim(),
            "netns-batch",
            "a batch thread outlived the call"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_namespace_device_and_operation() {
    root_or_skip!();
    let (net_id, port_id) = ids();
    let _cleanup = Cleanup::new(&net_id, &port_id);
    let dm = DeviceManager::new(DeviceConfig::default());
    let plan = PlumbPlan {
        network_id: net_id.clone(),
        port_id: port_id.clone(),
        mac: mac("fa:16:3e:00:04:01"),
        // Below the minimum MTU of Ethernet devices: the kernel refuses it.
        mtu: Some(60),
        addresses: vec![],
        default_v4: None,
        default_v6: None,
    };
    let err = dm.setup(&plan).await.unwrap_err().to_string();
    assert!(err.contains(&tap_name(&port_id)), "{err}");
    assert!(err.contains("create veth pair"), "{err}");
    assert!(err.contains(&namespace_name(&net_id)), "{err}");

    let bad = DeviceManager::new(DeviceConfig {
        veth_bridge: Some("much-too-long-bridge-{network_id}".into()),
        ..DeviceConfig::default()
    });
    let plan = PlumbPlan { mtu: None, ..plan };
    let err = bad.setup(&plan).await.unwrap_err().to_string();
    assert!(err.contains("much-too-long-bridge-"), "{err}");
    dm.teardown(&net_id, &port_id).await.unwrap();
    assert!(!ns_exists(&namespace_name(&net_id)));
}
