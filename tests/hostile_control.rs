//! Hostile input on the control side (issue 18): what an operator's typo, a script gone wrong or
//! a hostile networks file can do to the agent in standalone mode, end to end with the agent
//! binary, real namespaces and real DHCP clients.
//!
//! - ids with `.`, `..` and `/` are refused, nothing outside `state_path` is touched and the
//!   state path survives;
//! - a malformed file at start stops the start, on reload keeps the running state;
//! - a FIFO as networks file is refused at start and on reload, and SIGTERM is honoured;
//! - MTU 1279 on an IPv4-only and on a dual-stack network is served (IPv4);
//! - fixed IPs outside their subnet (VM port, DHCP port) are refused, at start and on reload;
//! - a change that fails half way is rolled back, and reverting the file repairs the host;
//! - a network that failed to configure leaves nothing behind, on removal and on exit;
//! - a same-size replacement with the old mtime is noticed without SIGHUP;
//! - in RPC mode, a network neutron-server sends with an id that is not a UUID, and a VM port
//!   outside its subnet, are refused while the rest is served.
//!
//! Needs root. Every name is unique to the test, addresses are private (10.17x, fd00:17x::).

#[path = "common/broker.rs"]
mod broker;
mod common;

use std::fs;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::*;

fn v4(s: &str) -> Ipv4Addr {
    s.parse().expect("IPv4 literal")
}

fn text(nets: &[Value]) -> String {
    serde_json::to_string_pretty(nets).expect("json")
}

/// `net` with an IPv6 subnet `fd00:<tag>::/64` (DHCPv6 stateful, gateway `v6_gateway`) and
/// the DHCP port's address `fd00:<tag>::2` on it.
fn dual_stack(net: &NetSpec, tag: u16, v6_gateway: &str) -> Value {
    let mut v = net.to_json();
    let subnet = random_uuid();
    v["subnets"].as_array_mut().expect("subnets").push(json!({
        "id": subnet, "ip_version": 6, "cidr": format!("fd00:{tag}::/64"),
        "gateway_ip": v6_gateway, "enable_dhcp": true, "dns_nameservers": [], "host_routes": [],
        "ipv6_ra_mode": null, "ipv6_address_mode": "dhcpv6-stateful",
    }));
    let ports = v["ports"].as_array_mut().expect("ports");
    let dhcp = ports
        .iter_mut()
        .find(|p| p["device_owner"] == "network:dhcp")
        .expect("DHCP port");
    dhcp["fixed_ips"]
        .as_array_mut()
        .expect("fixed_ips")
        .push(json!({"subnet_id": subnet, "ip_address": format!("fd00:{tag}::2")}));
    v
}

/// The agent's device for `net` inside its namespace.
fn ns_dev(net: &NetSpec) -> String {
    format!("ns-{}", &net.dhcp_port.id[..11])
}

fn link_mtu(ns: &str, dev: &str) -> u32 {
    let out = ip(&format!("-n {ns} -o link show dev {dev}"));
    out.split_whitespace()
        .skip_while(|w| *w != "mtu")
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("no mtu in {out}"))
}

fn default_route(ns: &str, family: &str) -> String {
    ip(&format!("-n {ns} {family} route show default"))
}

fn addresses(ns: &str, dev: &str) -> String {
    ip(&format!("-n {ns} -o addr show dev {dev}"))
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// Ids with `.`, `..` and `/` are refused with an error naming the file and the id; the valid
/// network beside them is served; nothing is written outside `state_path`, no namespace is
/// made for them, and neither a reload nor the exit removes anything but the valid network's
/// own record (the old agent's teardown of `..` emptied the whole state path).
#[test]
fn ids_that_are_not_uuids_touch_nothing_outside_their_network() {
    root_or_skip!();
    let top = tempfile::tempdir().expect("tempdir");
    // `x/../../../y` from `<state>/dhcp` lands in `outer`: still inside this test's tempdir.
    let outer = top.path().join("outer");
    let state = outer.join("state");
    fs::create_dir_all(state.join("dhcp").join("lost+found")).expect("state dirs");
    fs::write(state.join("canary"), "neutron's").expect("canary");
    fs::write(state.join("dhcp").join("lost+found").join("f"), "x").expect("lost+found");
    let ini = format!(
        "{}\n[DEFAULT]\nstate_path = {}\n",
        test_ini(),
        state.display()
    );

    let good = NetSpec::new("10.170.0.0/24", Some(v4("10.170.0.1")), v4("10.170.0.2"));
    let bad_ids = ["..", ".", "x/../../../y"];
    let bad: Vec<Value> = bad_ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let n = NetSpec::new(
                &format!("10.170.{}.0/24", i + 1),
                None,
                Ipv4Addr::new(10, 170, i as u8 + 1, 2),
            );
            let mut v = n.to_json();
            v["id"] = json!(id);
            v
        })
        .collect();
    let mut all = vec![good.to_json()];
    all.extend(bad.iter().cloned());
    let agent = Agent::start(&ini, &text(&all));
    agent.wait_serving(&good.id);
    agent.wait_for_log("initial networks applied", AGENT_TIMEOUT);
    for id in bad_ids {
        let quoted = format!("{id:?}");
        let line = agent
            .wait_for_line_since(0, &["network refused", &quoted], Duration::ZERO)
            .unwrap_or_else(|| panic!("no refusal naming {quoted}\n{}", agent.log_text()));
        assert!(line.contains("networks.json"), "{line}");
        assert!(!netns_exists(&format!("qdhcp-{id}")), "namespace for {id}");
    }
    assert!(
        !outer.join("y").exists(),
        "a file was written outside state_path"
    );
    assert!(state.join("dhcp").join(&good.id).is_dir());

    // A reload without them, and one with them again: the state path stays whole.
    agent.reload(&text(&all[..1]));
    agent.reload(&text(&all));
    assert!(state.join("canary").exists(), "state_path was emptied");
    agent.stop();
    assert!(
        state.join("canary").exists(),
        "state_path was emptied on exit"
    );
    assert!(
        state.join("dhcp").join("lost+found").join("f").exists(),
        "a directory that is no network's was removed"
    );
    assert!(!state.join("dhcp").join(&good.id).exists());
    assert!(!outer.join("y").exists());
}

/// Not JSON, not a list, null, empty, invalid UTF-8: at start the agent refuses to start and
/// says why; on reload it keeps serving what it served.
#[test]
fn malformed_files_stop_the_start_and_are_ignored_on_reload() {
    root_or_skip!();
    require_client_tools();
    for bad in ["{", "{}", "null", "", "\"x\""] {
        let (status, log) = Agent::run_expecting_exit(&test_ini(), bad, Duration::from_secs(20));
        assert!(!status.success(), "started on {bad:?}\n{log}");
        assert!(log.contains("networks file"), "{bad:?}: {log}");
    }
    let mut net = NetSpec::new("10.171.0.0/24", Some(v4("10.171.0.1")), v4("10.171.0.2"));
    let vm = net.add_port(PortSpec::vm(v4("10.171.0.10")));
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let client = ClientNs::new(&net.bridge_name(), &vm.mac);
    let agent = Agent::start_serving(&test_ini(), &[&net]);
    let path = agent.networks_path().to_owned();
    let bad: [&[u8]; 5] = [b"{", b"{}", b"null", b"[{\"id\": \"x\", ", b"[\xff\xfe]"];
    for contents in bad {
        let mark = agent.log_mark();
        let tmp = path.with_extension("tmp");
        fs::write(&tmp, contents).expect("write");
        fs::rename(&tmp, &path).expect("rename");
        agent.sighup();
        let line = agent.wait_for_line_since(mark, &["networks file not applied"], AGENT_TIMEOUT);
        assert!(line.is_some(), "{contents:?}\n{}", agent.log_text());
    }
    assert!(netns_exists(&net.namespace()));
    assert!(
        agent
            .wait_for_line_since(0, &["stopped network"], Duration::ZERO)
            .is_none(),
        "a malformed file stopped a network\n{}",
        agent.log_text()
    );
    assert_eq!(
        client
            .udhcpc(LEASE_TIMEOUT)
            .expect("lease after malformed files"),
        net.expected_lease(&vm)
    );
    agent.stop();
}

/// A FIFO as networks file: refused at start with a clear error instead of hanging in open(2)
/// with SIGTERM blocked.
#[test]
fn a_fifo_as_networks_file_is_refused_at_start() {
    root_or_skip!();
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("networks.json");
    mkfifo(&fifo);
    let state = dir.path().join("state");
    fs::create_dir_all(&state).expect("state");
    let harness = dir.path().join("harness.ini");
    fs::write(
        &harness,
        format!(
            "[DEFAULT]\nstate_path = {}\nhost = {}\n",
            state.display(),
            unique_name("host")
        ),
    )
    .expect("ini");
    let agent_ini = dir.path().join("agent.ini");
    fs::write(&agent_ini, test_ini()).expect("ini");
    let stderr = dir.path().join("stderr");
    let child = Command::new(AGENT_BIN)
        .arg("--config-file")
        .arg(&harness)
        .arg("--config-file")
        .arg(&agent_ini)
        .arg("--networks-file")
        .arg(&fifo)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&stderr).expect("stderr file"))
        .spawn()
        .expect("spawn agent");
    let mut guard = ChildGuard::new(child, false);
    let status = guard.wait_timeout(Duration::from_secs(20));
    let status = status.unwrap_or_else(|| {
        guard.terminate(Duration::from_secs(2));
        panic!("the agent hangs on a FIFO as networks file");
    });
    let log = fs::read_to_string(&stderr).unwrap_or_default();
    assert!(!status.success(), "{log}");
    assert!(
        log.contains("a FIFO, not a regular file") && log.contains("networks.json"),
        "the error should say the networks file is a FIFO: {log}"
    );
}

/// A FIFO put in place of the networks file: the reload is refused with a clear error, the
/// network stays served, and SIGTERM ends the agent (which used to wait for a writer with
/// SIGTERM and SIGHUP ignored).
#[test]
fn a_fifo_on_reload_is_refused_and_sigterm_is_honoured() {
    root_or_skip!();
    let net = NetSpec::new("10.172.0.0/24", Some(v4("10.172.0.1")), v4("10.172.0.2"));
    let agent = Agent::start_serving(&test_ini(), &[&net]);
    let path = agent.networks_path().to_owned();
    let mark = agent.log_mark();
    fs::remove_file(&path).expect("rm networks file");
    mkfifo(&path);
    agent.sighup();
    let line = agent.wait_for_line_since(mark, &["not a regular file"], AGENT_TIMEOUT);
    assert!(line.is_some(), "{}", agent.log_text());
    assert!(netns_exists(&net.namespace()));
    // A second SIGHUP is handled too, then SIGTERM; `stop` asserts a clean, prompt exit.
    let mark = agent.log_mark();
    agent.sighup();
    assert!(agent
        .wait_for_line_since(mark, &["not a regular file"], AGENT_TIMEOUT)
        .is_some());
    agent.stop();
}

/// Neutron allows MTUs down to 68 for IPv4. An IPv4-only network with MTU 1279 is served (the
/// old agent failed on the device's accept_ra sysctl, which the kernel removes below 1280,
/// and retried forever); a dual-stack one is served for IPv4 with a warning.
#[test]
fn mtu_below_1280_is_served_for_ipv4() {
    root_or_skip!();
    require_client_tools();
    let mut v4net = NetSpec::new("10.173.0.0/24", Some(v4("10.173.0.1")), v4("10.173.0.2"));
    v4net.mtu = 1279;
    let vm4 = v4net.add_port(PortSpec::vm(v4("10.173.0.10")));
    let mut dual = NetSpec::new("10.174.0.0/24", Some(v4("10.174.0.1")), v4("10.174.0.2"));
    dual.mtu = 1279;
    let vmd = dual.add_port(PortSpec::vm(v4("10.174.0.10")));
    let _b1 = LinkGuard::bridge(&v4net.bridge_name());
    let _b2 = LinkGuard::bridge(&dual.bridge_name());
    let c4 = ClientNs::new(&v4net.bridge_name(), &vm4.mac);
    let cd = ClientNs::new(&dual.bridge_name(), &vmd.mac);
    let agent = Agent::start(
        &test_ini(),
        &text(&[v4net.to_json(), dual_stack(&dual, 174, "fd00:174::1")]),
    );
    agent.wait_serving(&v4net.id);
    agent.wait_serving(&dual.id);
    let warning = agent
        .wait_for_line_since(0, &["MTU below 1280", &dual.namespace()], Duration::ZERO)
        .unwrap_or_else(|| panic!("no IPv4-only warning\n{}", agent.log_text()));
    assert!(warning.contains("WARN"), "{warning}");
    assert_eq!(link_mtu(&v4net.namespace(), &ns_dev(&v4net)), 1279);
    let (l4, ld) = thread::scope(|s| {
        let a = s.spawn(|| c4.udhcpc(LEASE_TIMEOUT));
        let b = s.spawn(|| cd.udhcpc(LEASE_TIMEOUT));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(l4.expect("IPv4-only lease"), v4net.expected_lease(&vm4));
    assert_eq!(ld.expect("dual-stack lease"), dual.expected_lease(&vmd));
    agent.stop();
}

/// A VM port whose fixed IP lies outside its subnet gets nothing (it was offered the address
/// with an unreachable router); a DHCP port outside its subnet refuses its network, at start
/// and on reload (where it used to be applied, stale default route and all) — the other
/// ports and networks are served.
#[test]
fn fixed_ips_outside_their_subnet_are_refused() {
    root_or_skip!();
    require_client_tools();
    let mut net = NetSpec::new("10.175.0.0/24", Some(v4("10.175.0.1")), v4("10.175.0.2"));
    let good = net.add_port(PortSpec::vm(v4("10.175.0.10")));
    let outside = net.add_port(PortSpec::vm(v4("10.198.5.5")));
    let refused = NetSpec::new("10.176.0.0/24", Some(v4("10.176.0.1")), v4("10.177.0.2"));
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let c_good = ClientNs::new(&net.bridge_name(), &good.mac);
    let c_out = ClientNs::new(&net.bridge_name(), &outside.mac);
    let agent = Agent::start(&test_ini(), &networks_json(&[&net, &refused]));
    agent.wait_serving(&net.id);
    agent.wait_for_log("initial networks applied", AGENT_TIMEOUT);
    let log = agent.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains(&outside.id) && l.contains("outside its subnet")),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("network refused") && l.contains(&refused.id)),
        "{log}"
    );
    assert!(!netns_exists(&refused.namespace()));
    let (l_good, l_out) = thread::scope(|s| {
        let a = s.spawn(|| c_good.run_client(Client::Udhcpc, LEASE_TIMEOUT));
        let b = s.spawn(|| c_out.run_client(Client::Udhcpc, NO_LEASE_TIMEOUT));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(
        l_good.expect_lease("port inside"),
        net.expected_lease(&good)
    );
    l_out.expect_no_lease("port outside its subnet");

    // The DHCP port moved out of its subnet on reload: refused, the network keeps its
    // running configuration (address and default route untouched).
    let mut moved = net.clone();
    moved.dhcp_port.ip = v4("10.199.0.2");
    let mark = agent.log_mark();
    agent.reload(&networks_json(&[&moved, &refused]));
    assert!(agent
        .wait_for_line_since(mark, &["network refused", &net.id], Duration::ZERO)
        .is_some());
    let addrs = addresses(&net.namespace(), &ns_dev(&net));
    assert!(
        addrs.contains("10.175.0.2/24") && !addrs.contains("10.199.0.2"),
        "{addrs}"
    );
    assert!(default_route(&net.namespace(), "-4").contains("10.175.0.1"));
    assert!(agent
        .wait_for_line_since(mark, &["stopped network"], Duration::ZERO)
        .is_none());
    agent.stop();
}

/// A change that fails half way (MTU changed, then the kernel refuses the new IPv6 default
/// route: the gateway is the DHCP port's own address) is rolled back: the device is back at
/// its old MTU and routes, still served; writing the old file back re-applies the network in
/// full (the old agent left MTU 1400 in place and called the revert `unchanged`).
#[test]
fn a_failed_change_is_rolled_back_and_a_revert_repairs_the_host() {
    root_or_skip!();
    require_client_tools();
    let mut net = NetSpec::new("10.178.0.0/24", Some(v4("10.178.0.1")), v4("10.178.0.2"));
    let vm = net.add_port(PortSpec::vm(v4("10.178.0.10")));
    let good = dual_stack(&net, 178, "fd00:178::1");
    let mut bad = good.clone();
    bad["mtu"] = json!(1400);
    for s in bad["subnets"].as_array_mut().expect("subnets") {
        if s["ip_version"] == 6 {
            s["gateway_ip"] = json!("fd00:178::2");
        }
    }
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let client = ClientNs::new(&net.bridge_name(), &vm.mac);
    let agent = Agent::start(&test_ini(), &text(std::slice::from_ref(&good)));
    agent.wait_serving(&net.id);
    let (ns, dev) = (net.namespace(), ns_dev(&net));
    assert_eq!(link_mtu(&ns, &dev), 1450);

    let line = agent.reload(&text(&[bad]));
    assert!(
        line.contains("rolled_back=1"),
        "{line}\n{}",
        agent.log_text()
    );
    assert_eq!(
        link_mtu(&ns, &dev),
        1450,
        "the MTU change was not rolled back"
    );
    assert!(default_route(&ns, "-4").contains("10.178.0.1"));
    assert!(default_route(&ns, "-6").contains("fd00:178::1"));
    assert!(netns_exists(&ns));

    let line = agent.reload(&text(&[good]));
    assert!(
        line.contains("changed=1") && line.contains("rolled_back=0"),
        "the revert was not re-applied: {line}"
    );
    assert_eq!(link_mtu(&ns, &dev), 1450);
    assert!(addresses(&ns, &dev).contains("fd00:178::2/64"));
    assert!(default_route(&ns, "-6").contains("fd00:178::1"));
    assert_eq!(
        client
            .udhcpc(LEASE_TIMEOUT)
            .expect("lease after the revert"),
        net.expected_lease(&vm)
    );
    agent.stop();
}

/// A network that fails to configure leaves no plumbing: not after the failure, not once it
/// is removed from the file, not on exit with --teardown-on-exit (the old agent leaked its
/// namespace and devices in all three).
#[test]
fn a_network_that_failed_to_configure_leaves_nothing_behind() {
    root_or_skip!();
    let ok = NetSpec::new("10.179.0.0/24", Some(v4("10.179.0.1")), v4("10.179.0.2"));
    let failing = NetSpec::new("10.179.1.0/24", Some(v4("10.179.1.1")), v4("10.179.1.2"));
    // The kernel refuses an IPv6 default route via one of the device's own addresses.
    let failing_json = dual_stack(&failing, 179, "fd00:179::2");
    let agent = Agent::start(&test_ini(), &text(&[ok.to_json(), failing_json]));
    agent.wait_serving(&ok.id);
    let applied = agent.wait_for_log("initial networks applied", AGENT_TIMEOUT);
    assert!(applied.contains(&failing.id), "{applied}");
    let gone = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while netns_exists(&failing.namespace()) || link_exists(&failing.dhcp_port.tap_name()) {
            assert!(
                Instant::now() < deadline,
                "{what}: the failed network's plumbing is still there\n{}",
                agent.log_text()
            );
            thread::sleep(Duration::from_millis(50));
        }
    };
    gone("after the failure");
    agent.reload(&text(&[ok.to_json()]));
    gone("after its removal");
    // `stop` checks that nothing of either network is left.
    agent.stop();
}

/// A replacement of the same size carrying the old mtime (`cp -p`, `rsync -t`), by rename or
/// written in place, is noticed without SIGHUP (the old agent compared size and mtime only).
#[test]
fn a_same_size_replacement_with_the_old_mtime_is_noticed() {
    root_or_skip!();
    let net = NetSpec::new("10.180.0.0/24", Some(v4("10.180.0.1")), v4("10.180.0.2"));
    let agent = Agent::start_serving(&test_ini(), &[&net]);
    let path = agent.networks_path().to_owned();
    let (ns, dev) = (net.namespace(), ns_dev(&net));
    assert_eq!(link_mtu(&ns, &dev), 1450);
    let original = fs::read_to_string(&path).expect("read");
    let mtime = fs::metadata(&path)
        .expect("stat")
        .modified()
        .expect("mtime");
    // Long enough apart for any file system's timestamp granularity.
    thread::sleep(Duration::from_millis(1100));

    // By rename (`rsync -t`): a new inode with the old size and mtime.
    let renamed = original.replacen("\"mtu\": 1450", "\"mtu\": 1400", 1);
    assert_eq!(renamed.len(), original.len());
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, &renamed).expect("write");
    fs::File::options()
        .write(true)
        .open(&tmp)
        .and_then(|f| f.set_modified(mtime))
        .expect("set mtime");
    let mark = agent.log_mark();
    fs::rename(&tmp, &path).expect("rename");
    let line = agent.wait_for_line_since(
        mark,
        &["reloaded networks file", "file changed"],
        Duration::from_secs(10),
    );
    assert!(line.is_some(), "rename not noticed\n{}", agent.log_text());
    assert_eq!(link_mtu(&ns, &dev), 1400);

    // In place (`cp -p` onto the file): same inode, size and mtime; only ctime moves.
    thread::sleep(Duration::from_millis(1100));
    let mtime = fs::metadata(&path)
        .expect("stat")
        .modified()
        .expect("mtime");
    let in_place = original.replacen("\"mtu\": 1450", "\"mtu\": 1300", 1);
    let mark = agent.log_mark();
    let mut f = fs::File::options().write(true).open(&path).expect("open");
    f.write_all(in_place.as_bytes()).expect("write");
    f.set_modified(mtime).expect("set mtime");
    drop(f);
    let line = agent.wait_for_line_since(
        mark,
        &["reloaded networks file", "file changed"],
        Duration::from_secs(10),
    );
    assert!(
        line.is_some(),
        "in-place write not noticed\n{}",
        agent.log_text()
    );
    assert_eq!(link_mtu(&ns, &dev), 1300);
    agent.stop();
}

/// RPC mode (the real broker and the Python oslo.messaging peer as neutron-server): among the
/// networks of the sync, one with id `..` is refused with an error, and so is a VM port of the
/// valid network whose fixed IP lies outside its subnet; the valid network is served and its
/// other port gets its lease.
#[test]
fn rpc_mode_refuses_bad_ids_and_ports_and_serves_the_rest() {
    root_or_skip!();
    require_client_tools();
    let vhost = broker::TestVhost::for_guest("hc");
    let peer = broker::Peer::start(&vhost.url());
    let host = unique_name("hch");
    let mut net = NetSpec::new("10.181.0.0/24", Some(v4("10.181.0.1")), v4("10.181.0.2"));
    let good = net.add_port(PortSpec::vm(v4("10.181.0.10")));
    let outside = net.add_port(PortSpec::vm(v4("10.198.5.5")));
    let evil = NetSpec::new("10.181.1.0/24", Some(v4("10.181.1.1")), v4("10.181.1.2"));
    let mut evil_json = evil.to_json();
    evil_json["id"] = json!("..");
    for mut v in [net.to_json(), evil_json] {
        // No DHCP port: the agent asks neutron-server for one.
        v["subnets"][0]
            .as_object_mut()
            .expect("subnet")
            .remove("allocation_pools");
        v["ports"]
            .as_array_mut()
            .expect("ports")
            .retain(|p| p["device_owner"] != "network:dhcp");
        peer.cmd(json!({"cmd": "upsert_network", "network": v}));
    }
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let c_good = ClientNs::new(&net.bridge_name(), &good.mac);
    let c_out = ClientNs::new(&net.bridge_name(), &outside.mac);
    let ini = format!(
        "{}\n[DEFAULT]\nhost = {host}\ntransport_url = {}\nrpc_response_timeout = 10\n",
        test_ini(),
        vhost.url()
    );
    let agent = Agent::start(&ini, "[]");
    agent.wait_serving(&net.id);
    let line = agent
        .wait_for_line_since(0, &["refusing a network", "\"..\""], AGENT_TIMEOUT)
        .unwrap_or_else(|| panic!("the `..` network was not refused\n{}", agent.log_text()));
    assert!(line.contains("not a UUID"), "{line}");
    let line = agent
        .wait_for_line_since(0, &["refusing a port", &outside.id], AGENT_TIMEOUT)
        .unwrap_or_else(|| panic!("the port outside was not refused\n{}", agent.log_text()));
    assert!(line.contains("outside its subnet"), "{line}");
    assert!(!netns_exists("qdhcp-.."));
    let (l_good, l_out) = thread::scope(|s| {
        let a = s.spawn(|| c_good.run_client(Client::Udhcpc, LEASE_TIMEOUT));
        let b = s.spawn(|| c_out.run_client(Client::Udhcpc, NO_LEASE_TIMEOUT));
        (a.join().unwrap(), b.join().unwrap())
    });
    let lease = l_good.expect_lease("port inside");
    assert_eq!(lease.ip, good.ip);
    l_out.expect_no_lease("port outside its subnet");
    agent.stop();
    drop(peer);
}
