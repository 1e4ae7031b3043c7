//! Isolated metadata end to end: the agent (standalone mode) serves 169.254.169.254:80 in each
//! network's namespace and forwards to a stand-in metadata agent on a UNIX socket; VMs are
//! client namespaces on the network's bridge that run `curl`.
//!
//! Needs root. Every test has its own agent, networks (random ids), bridge, namespaces and
//! socket, so the tests run in parallel.

mod common;
#[path = "common/metadata.rs"]
mod mdhelp;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use common::*;
use mdhelp::*;

const URL: &str = "http://169.254.169.254";

fn ip4(s: &str) -> Ipv4Addr {
    s.parse().expect("IPv4 literal")
}

/// A network on `10.77.<octet>.0/24` with gateway .1, DHCP port .2 and one VM port .10.
fn network(octet: u8) -> (NetSpec, PortSpec) {
    let p = |last: u8| Ipv4Addr::new(10, 77, octet, last);
    let mut net = NetSpec::new(&format!("10.77.{octet}.0/24"), Some(p(1)), p(2));
    let vm = net.add_port(PortSpec::vm(p(10)));
    (net, vm)
}

/// Starts the fake metadata agent and an agent serving `net` with `extra` config.
fn setup(net: &NetSpec, extra: &str) -> (tempfile::TempDir, Option<FakeMetadataAgent>, Agent) {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("metadata_proxy");
    let fake = FakeMetadataAgent::start(&socket);
    let agent = Agent::start_serving(&metadata_ini(&socket, extra), &[net]);
    agent.wait_for_log("metadata proxy listening", AGENT_TIMEOUT);
    (dir, Some(fake), agent)
}

#[test]
fn forwards_requests_with_neutrons_headers_and_passes_everything_else() {
    root_or_skip!();
    require_client_tools();
    let (net, port) = network(1);
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let (_dir, _fake, agent) = setup(&net, "");
    let vm = Vm::new(&net, &port);

    // GET with a query string; the client tries to pose as another VM and network/router.
    let (code, body) = vm.curl_until_answer(
        &format!("{URL}/openstack/latest/meta_data.json?a=1&b=two"),
        &[
            "-H",
            "X-Forwarded-For: 10.77.1.99",
            "-H",
            "X-Neutron-Router-ID: spoofed-router",
            "-H",
            "X-Neutron-Network-ID: spoofed-network",
        ],
    );
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let echo: serde_json::Value = serde_json::from_slice(&body).expect("JSON echo");
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["uri"], "/openstack/latest/meta_data.json?a=1&b=two");
    assert_eq!(echoed(&echo, "x-forwarded-for"), [vm.ip.to_string()]);
    assert_eq!(echoed(&echo, "x-neutron-network-id"), [net.id.as_str()]);
    assert!(echoed(&echo, "x-neutron-router-id").is_empty(), "{echo}");
    assert_eq!(echoed(&echo, "host"), ["169.254.169.254"]);

    // POST body and another method pass unchanged.
    let payload = "x".repeat(100_000) + "end";
    let (code, echo) = vm.curl_json(
        &format!("{URL}/openstack/latest/password"),
        &["-X", "POST", "--data-binary", &payload],
    );
    assert_eq!(code, 200);
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["body"], payload.as_str());
    let (code, echo) = vm.curl_json(&format!("{URL}/x"), &["-X", "DELETE"]);
    assert_eq!((code, echo["method"].as_str()), (200, Some("DELETE")));

    // The metadata agent's status codes pass through.
    let (code, _) = vm.curl(&format!("{URL}/status/404"), &[]);
    assert_eq!(code, 404);
    let (code, _) = vm.curl(&format!("{URL}/status/418"), &[]);
    assert_eq!(code, 418);

    // A 1 MiB answer arrives byte for byte.
    let (code, body) = vm.curl(&format!("{URL}/big"), &[]);
    assert_eq!(code, 200);
    assert!(
        body == big_body(),
        "1 MiB answer differs ({} bytes)",
        body.len()
    );

    // A request hyper cannot parse gets 400 and is counted.
    let reply = vm.inside(|| {
        let mut s = TcpStream::connect(("169.254.169.254", 80)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /\x01bad HTTP/1.1\r\nHost x\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    });
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply:?}");
    let log = agent.stop();
    assert!(
        log.contains("bad metadata request"),
        "no log line for the bad request\n{log}"
    );
    assert!(log.contains("bad requests 1,"), "{log}");
}

#[test]
fn router_interface_takes_the_listener_away_and_brings_it_back() {
    root_or_skip!();
    require_client_tools();
    let (mut net, port) = network(2);
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let (_dir, _fake, agent) = setup(&net, "");
    let vm = Vm::new(&net, &port);
    let (code, _) = vm.curl_until_answer(&format!("{URL}/"), &[]);
    assert_eq!(code, 200);

    // A router interface on the gateway: the subnet is no longer isolated.
    let router = net.add_port(router_port(&net));
    let mark = agent.log_mark();
    agent.reload(&networks_json(&[&net]));
    agent
        .wait_for_line_since(mark, &["metadata proxy stopped", &net.id], AGENT_TIMEOUT)
        .expect("proxy stopped after the router interface was added");
    let (code, err) = vm.curl(&format!("{URL}/"), &[]);
    // Connection refused (curl exit 7): the address is still there, nothing listens.
    assert_eq!(
        (code, String::from_utf8_lossy(&err).into_owned()),
        (0, "curl exit Some(7)".into())
    );

    // The router interface goes: metadata is back.
    net.remove_port(&router.id);
    let mark = agent.log_mark();
    agent.reload(&networks_json(&[&net]));
    agent
        .wait_for_line_since(mark, &["metadata proxy listening", &net.id], AGENT_TIMEOUT)
        .expect("proxy back after the router interface was removed");
    let (code, _) = vm.curl_until_answer(&format!("{URL}/"), &[]);
    assert_eq!(code, 200);
    agent.stop();
}

#[test]
fn routed_network_gets_no_listener_unless_forced() {
    root_or_skip!();
    require_client_tools();
    let (mut net, port) = network(3);
    net.add_port(router_port(&net));
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("metadata_proxy");
    let _fake = FakeMetadataAgent::start(&socket);

    let agent = Agent::start_serving(&metadata_ini(&socket, ""), &[&net]);
    agent.wait_for_log("initial networks applied", AGENT_TIMEOUT);
    // The VM is plugged after the agent made the bridge (each agent removes it on exit).
    let vm = Vm::new(&net, &port);
    let (code, err) = vm.curl(&format!("{URL}/"), &[]);
    assert_eq!(code, 0, "a routed network must not get a metadata proxy");
    assert_eq!(String::from_utf8_lossy(&err), "curl exit Some(7)");
    let log = agent.stop();
    assert!(!log.contains("metadata proxy listening"), "{log}");
    drop(vm);

    // force_metadata serves it anyway.
    let forced =
        metadata_ini(&socket, "").replace("force_metadata = false", "force_metadata = true");
    let agent = Agent::start_serving(&forced, &[&net]);
    let vm = Vm::new(&net, &port);
    let (code, body) = vm.curl_until_answer(&format!("{URL}/"), &[]);
    assert_eq!(code, 200);
    let echo: serde_json::Value = serde_json::from_slice(&body).expect("JSON echo");
    assert_eq!(echoed(&echo, "x-neutron-network-id"), [net.id.as_str()]);
    agent.stop();
}

#[test]
fn metadata_agent_down_gives_503_slow_gives_504_and_it_recovers() {
    root_or_skip!();
    require_client_tools();
    let (net, port) = network(4);
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let (dir, mut fake, agent) = setup(&net, "\n[metadata_haproxy]\ntimeout_server = 1\n");
    let vm = Vm::new(&net, &port);
    let (code, _) = vm.curl_until_answer(&format!("{URL}/"), &[]);
    assert_eq!(code, 200);

    // Slower than timeout_server: 504, not a hang.
    let (code, body) = vm.curl(&format!("{URL}/slow"), &[]);
    assert_eq!(code, 504, "{}", String::from_utf8_lossy(&body));
    // Stalled in the middle of an answer for timeout_server: the client's connection is cut
    // (curl: 18, partial file), it does not wait for its own timeout (28).
    assert_eq!(vm.curl_exit(&format!("{URL}/stall")), Some(18));

    // The metadata agent goes away: 503.
    drop(fake.take());
    let (code, body) = vm.curl(&format!("{URL}/"), &[]);
    assert_eq!(code, 503, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("503 Service Unavailable"));

    // It comes back while a request waits (haproxy's retries, 1 s apart): that request is
    // served, and so are the next ones; nothing restarted.
    let (code, echo) = std::thread::scope(|s| {
        let waiting = s.spawn(|| vm.curl_json(&format!("{URL}/again"), &[]));
        std::thread::sleep(Duration::from_millis(300));
        fake = Some(FakeMetadataAgent::start(&dir.path().join("metadata_proxy")));
        waiting.join().expect("curl thread")
    });
    assert_eq!(code, 200);
    assert_eq!(echo["uri"], "/again");
    let (code, _) = vm.curl_json(&format!("{URL}/next"), &[]);
    assert_eq!(code, 200);
    drop(fake);
    let log = agent.stop();
    assert!(log.contains("agent unavailable 1,"), "{log}");
    assert!(log.contains("agent timeouts 1,"), "{log}");
}

#[test]
fn rate_limiting_answers_429_per_client() {
    root_or_skip!();
    require_client_tools();
    let (mut net, port) = network(5);
    let other = net.add_port(PortSpec::vm(ip4("10.77.5.11")));
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let (_dir, _fake, agent) = setup(
        &net,
        "\n[metadata_rate_limiting]\nrate_limit_enabled = true\n\
         base_window_duration = 600\nbase_query_rate_limit = 3\n\
         burst_window_duration = 600\nburst_query_rate_limit = 100\n",
    );
    let vm = Vm::new(&net, &port);
    let (code, _) = vm.curl_until_answer(&format!("{URL}/"), &[]);
    assert_eq!(code, 200);
    assert_eq!(vm.curl(&format!("{URL}/"), &[]).0, 200);
    assert_eq!(vm.curl(&format!("{URL}/"), &[]).0, 200);
    let (code, body) = vm.curl(&format!("{URL}/"), &[]);
    assert_eq!(code, 429, "{}", String::from_utf8_lossy(&body));
    // Another VM has its own budget.
    let vm2 = Vm::new(&net, &other);
    assert_eq!(vm2.curl(&format!("{URL}/"), &[]).0, 200);
    let log = agent.stop();
    assert!(log.contains("rate limited 1,"), "{log}");
}

#[test]
fn slow_clients_are_cut_and_connections_capped_per_network() {
    root_or_skip!();
    require_client_tools();
    let (net, port) = network(6);
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let (_dir, _fake, agent) = setup(
        &net,
        "\n[metadata_haproxy]\ntimeout_http_request = 2\n\
         [metadata_proxy]\nmax_connections_per_network = 2\n",
    );
    let vm = Vm::new(&net, &port);
    let (code, _) = vm.curl_until_answer(&format!("{URL}/"), &[]);
    assert_eq!(code, 200);

    // Two clients that never finish their request head hold both slots; a third client is
    // not served meanwhile; the proxy cuts the slow ones (timeout_http_request), and the
    // waiting client is served after all.
    let results = vm.inside(|| {
        let addr: SocketAddr = "169.254.169.254:80".parse().unwrap();
        let mut slow = Vec::new();
        for _ in 0..2 {
            let mut s = TcpStream::connect(addr).expect("connect");
            s.write_all(b"GET / HTTP/1.1\r\nHost: 169.254.169.254\r\n")
                .unwrap();
            slow.push(s);
        }
        let mut waiting = TcpStream::connect(addr).expect("connect (kernel backlog)");
        waiting
            .write_all(
                b"GET /waited HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n\r\n",
            )
            .unwrap();
        // Not served while both slots are held (the slow clients are cut after 2 s).
        waiting
            .set_read_timeout(Some(Duration::from_millis(700)))
            .unwrap();
        let mut first = [0u8; 1];
        let served_early = matches!(waiting.read(&mut first), Ok(n) if n > 0);
        // The slow clients are cut: EOF (or a reset), not an endless wait.
        let mut cut = Vec::new();
        for mut s in slow {
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let mut buf = Vec::new();
            let r = s.read_to_end(&mut buf);
            cut.push(
                r.is_ok() || r.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            );
        }
        waiting
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut reply = String::new();
        let _ = waiting.read_to_string(&mut reply);
        (served_early, cut, reply)
    });
    let (served_early, cut, reply) = results;
    assert!(
        !served_early,
        "a third connection was served beyond the cap of 2"
    );
    assert_eq!(cut, [true, true], "slow clients not cut");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply:?}");
    assert!(reply.contains("/waited"), "{reply:?}");
    agent.stop();
}

#[test]
fn ipv6_link_local_listener_on_the_dhcp_device() {
    root_or_skip!();
    require_client_tools();
    let (net, port) = network(7);
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    // The same network with a DHCPv6-stateful subnet, the DHCP port holding an address on it.
    let mut json = net.to_json();
    let v6_subnet = random_uuid();
    let mut s6 = json["subnets"][0].clone();
    s6["id"] = v6_subnet.clone().into();
    s6["ip_version"] = 6.into();
    s6["cidr"] = "fd77:7::/64".into();
    s6["gateway_ip"] = "fd77:7::1".into();
    s6["ipv6_address_mode"] = "dhcpv6-stateful".into();
    s6["ipv6_ra_mode"] = "dhcpv6-stateful".into();
    json["subnets"].as_array_mut().unwrap().push(s6);
    json["ports"][0]["fixed_ips"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"subnet_id": v6_subnet, "ip_address": "fd77:7::2"}));
    let networks = serde_json::to_string(&[json]).unwrap();

    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("metadata_proxy");
    let _fake = FakeMetadataAgent::start(&socket);
    let agent = Agent::start(&metadata_ini(&socket, ""), &networks);
    agent.wait_serving(&net.id);
    let line = agent.wait_for_log("metadata proxy listening", AGENT_TIMEOUT);
    assert!(line.contains("ipv6=true"), "{line}");
    let vm = Vm::new(&net, &port);
    vm.enable_ipv6();

    let url = format!("http://[fe80::a9fe:a9fe%25{}]/v6", vm.ns.ifname);
    let (code, body) = vm.curl_until_answer(&url, &["-6"]);
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let echo: serde_json::Value = serde_json::from_slice(&body).expect("JSON echo");
    let xff = echoed(&echo, "x-forwarded-for");
    assert_eq!(xff.len(), 1, "{echo}");
    assert!(
        xff[0].starts_with("fe80:"),
        "client's link-local address expected: {xff:?}"
    );
    assert_eq!(echoed(&echo, "x-neutron-network-id"), [net.id.as_str()]);
    agent.stop();
}

#[test]
fn restarted_agent_serves_metadata_again_on_the_plumbing_it_adopts() {
    root_or_skip!();
    require_client_tools();
    let (net, port) = network(8);
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("metadata_proxy");
    let _fake = FakeMetadataAgent::start(&socket);
    // Both runs share state_path and host, so the second finds the first one's records.
    let ini = metadata_ini(&socket, "")
        + &format!(
            "\n[DEFAULT]\nstate_path = {}\nhost = {}\n",
            dir.path().join("state").display(),
            unique_name("mdr")
        );
    let json = networks_json(&[&net]);
    let first = Agent::start_keeping_plumbing(&ini, &json);
    first.wait_serving(&net.id);
    first.wait_for_log("metadata proxy listening", AGENT_TIMEOUT);
    let vm = Vm::new(&net, &port);
    assert_eq!(vm.curl_until_answer(&format!("{URL}/"), &[]).0, 200);
    first.stop_keeping_plumbing();
    // The namespace and its addresses stay, but nothing listens while no agent runs.
    assert_eq!(vm.curl(&format!("{URL}/"), &[]).0, 0);

    let second = Agent::start(&ini, &json);
    second.wait_for_log("on the previous run's plumbing", AGENT_TIMEOUT);
    second.wait_for_log("metadata proxy listening", AGENT_TIMEOUT);
    let (code, echo) = vm.curl_json(&format!("{URL}/after-restart"), &[]);
    assert_eq!(code, 200);
    assert_eq!(echo["uri"], "/after-restart");
    second.stop();
}

#[test]
fn metadata_network_with_a_router_is_keyed_by_router() {
    root_or_skip!();
    require_client_tools();
    // enable_metadata_network: a 169.254/16 subnet with a router interface is served (though
    // routed), and the proxy names the router instead of the network.
    let p = |last: u8| Ipv4Addr::new(169, 254, 77, last);
    let mut net = NetSpec::new("169.254.77.0/24", Some(p(1)), p(2));
    let port = net.add_port(PortSpec::vm(p(10)));
    let router = net.add_port(router_port(&net));
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let (_dir, _fake, agent) = setup(&net, "\n[DEFAULT]\nenable_metadata_network = true\n");
    let vm = Vm::new(&net, &port);
    let (code, body) = vm.curl_until_answer(
        &format!("{URL}/latest/meta-data/"),
        &["-H", "X-Neutron-Network-ID: spoofed-network"],
    );
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let echo: serde_json::Value = serde_json::from_slice(&body).expect("JSON echo");
    assert_eq!(
        echoed(&echo, "x-neutron-router-id"),
        [router.device_id.as_str()]
    );
    assert!(echoed(&echo, "x-neutron-network-id").is_empty(), "{echo}");
    assert_eq!(echoed(&echo, "x-forwarded-for"), [vm.ip.to_string()]);
    agent.stop();
}
