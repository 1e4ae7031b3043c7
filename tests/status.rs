//! The status endpoint end to end (`[agent] status_listen`): `/metrics` scraped and parsed
//! with the real Prometheus client library's OpenMetrics parser (the project venv's
//! `prometheus_client`), `/healthz`, `/readyz`, `/v1/networks`, `/v1/explain`, and the CLI
//! (`neutron-dhcp-agent status|networks|explain`), against an agent serving real clients in
//! namespaces.
//!
//! Needs root (namespaces, bridges), dhclient and python3 (the venv from `scripts/py-venv.sh`).

#[path = "common/broker.rs"]
mod broker;
mod common;
#[path = "common/dhclient.rs"]
mod dhclient;
#[path = "common/dns.rs"]
mod dnstools;
#[path = "common/metadata.rs"]
mod mdhelp;
#[path = "common/v6.rs"]
mod v6;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use broker::{OwnBroker, Peer};
use common::*;

const DUMP_HOOK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/dhcp-dump-hook.sh");

fn ip4(s: &str) -> Ipv4Addr {
    s.parse().expect("IPv4 literal")
}

/// A free loopback port for the endpoint.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// One HTTP GET with `Connection: close`: (status code, body).
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read response");
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP response");
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    // Bodies are small and sent with Content-Length (no chunking).
    (code, body.to_string())
}

/// `/metrics` parsed by `prometheus_client.openmetrics.parser` (strict OpenMetrics):
/// sample name -> [(labels, value)].
type Samples = BTreeMap<String, Vec<(BTreeMap<String, String>, f64)>>;

fn scrape(addr: SocketAddr) -> Samples {
    let (code, text) = get(addr, "/metrics");
    assert_eq!(code, 200, "{text}");
    let py = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/py-venv.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("scripts/py-venv.sh");
    assert!(py.status.success(), "py-venv.sh failed");
    let python = String::from_utf8_lossy(&py.stdout)
        .lines()
        .last()
        .expect("venv python")
        .to_string();
    let script = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        out.append([s.name, s.labels, s.value])
print(json.dumps(out))
"#;
    let mut child = Command::new(&python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("python output");
    assert!(
        out.status.success(),
        "the OpenMetrics parser rejects /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<(String, BTreeMap<String, String>, f64)> =
        serde_json::from_slice(&out.stdout).expect("parser output");
    let mut samples = Samples::new();
    for (name, labels, value) in rows {
        samples.entry(name).or_default().push((labels, value));
    }
    samples
}

/// The value of the sample `name` whose labels include all of `want` (0 when absent).
fn value(s: &Samples, name: &str, want: &[(&str, &str)]) -> f64 {
    let matching: Vec<f64> = s
        .get(name)
        .into_iter()
        .flatten()
        .filter(|(labels, _)| {
            want.iter()
                .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, v)| *v)
        .collect();
    assert!(matching.len() <= 1, "{name} {want:?}: several samples");
    matching.first().copied().unwrap_or(0.0)
}

fn has_series(s: &Samples, name: &str, want: &[(&str, &str)]) -> bool {
    s.get(name).into_iter().flatten().any(|(labels, _)| {
        want.iter()
            .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
    })
}

/// A network with DNS servers, a host route and a non-default MTU.
fn network(third: u8) -> NetSpec {
    let p = |last: u8| Ipv4Addr::new(10, 63, third, last);
    let mut net = NetSpec::new(&format!("10.63.{third}.0/24"), Some(p(1)), p(2));
    net.dns = vec![p(53)];
    net.host_routes = vec![("192.168.63.0/24".into(), p(254))];
    net.mtu = 1400;
    net
}

fn ini(port: u16) -> String {
    format!(
        "{}\n[agent]\nstatus_listen = 127.0.0.1:{port}\n",
        test_ini()
    )
}

/// Sends `payload` as one UDP datagram from the client namespace to `server`:67, from a
/// temporary address on the client's interface.
fn send_udp(client: &ClientNs, from: &str, server: Ipv4Addr, payload: &[u8]) {
    let _ = run_quiet(
        "ip",
        &["-n", &client.ns, "addr", "add", from, "dev", &client.ifname],
    );
    let hex: String = payload.iter().map(|b| format!("{b:02x}")).collect();
    let script = format!(
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.bind(('{}', 68))\ns.sendto(bytes.fromhex('{hex}'), ('{server}', 67))\n",
        from.split('/').next().unwrap()
    );
    run(
        "ip",
        &["netns", "exec", &client.ns, "python3", "-c", &script],
    );
}

/// A DHCPDISCOVER from `mac` (no client id).
fn discover(mac: [u8; 6]) -> Vec<u8> {
    let mut p = vec![0u8; 236];
    p[0] = 1;
    p[1] = 1;
    p[2] = 6;
    p[4..8].copy_from_slice(&[1, 2, 3, 4]);
    p[28..34].copy_from_slice(&mac);
    p.extend_from_slice(&[99, 130, 83, 99, 53, 1, 1, 55, 3, 1, 3, 6, 255]);
    p
}

/// Polls until `f` holds (the counters are read as the DHCP thread bumps them).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn agent_cli(config: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(AGENT_BIN)
        .args(args)
        .arg("--config-file")
        .arg(config)
        .output()
        .expect("run the agent binary");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The counters move exactly: a real lease, one DISCOVER from an unknown MAC, one malformed
/// datagram; a SIGHUP that removes the network drops its series and leaves the totals as they
/// were. `/healthz`, `/readyz` and `/v1/networks` say what is served; the CLI shows the same.
#[test]
fn metrics_count_exactly_and_survive_a_reload() {
    root_or_skip!();
    require_client_tools();
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut net = network(1);
    let vm = net.add_port(PortSpec::vm(ip4("10.63.1.10")).with_hostname("vm-one"));
    let other = network(2);
    let _b1 = LinkGuard::bridge(&net.bridge_name());
    let _b2 = LinkGuard::bridge(&other.bridge_name());
    let client = ClientNs::new(&net.bridge_name(), &vm.mac);
    let agent = Agent::start_serving(&ini(port), &[&net, &other]);

    assert_eq!(get(addr, "/healthz"), (200, "ok\n".into()));
    // Ready once the initial apply is done (just after the networks are served).
    assert_eq!(readyz_becomes(addr, 200, AGENT_TIMEOUT), "ready\n");
    let before = scrape(addr);
    let net_id = net.id.clone();
    let id = net_id.as_str();
    let v4 = [("network", id), ("family", "v4")];
    assert_eq!(
        value(
            &before,
            "neutron_dhcp_agent_networks",
            &[("state", "served")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &before,
            "neutron_dhcp_agent_networks",
            &[("state", "failed")]
        ),
        0.0
    );
    assert_eq!(
        value(
            &before,
            "neutron_dhcp_agent_network_ports",
            &[("network", id)]
        ),
        2.0
    );
    assert_eq!(
        value(
            &before,
            "neutron_dhcp_agent_network_ports_bound",
            &[("network", id)]
        ),
        1.0
    );
    assert_eq!(value(&before, "neutron_dhcp_agent_ready", &[]), 1.0);
    assert!(has_series(
        &before,
        "neutron_dhcp_agent_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))]
    ));
    assert_eq!(
        value(&before, "neutron_dhcp_agent_dhcp_received_total", &v4),
        0.0
    );

    // A real lease: every request received is replied to.
    let lease = client
        .run_client(Client::Dhclient, LEASE_TIMEOUT)
        .expect_lease("VM port");
    assert_eq!(lease, net.expected_lease(&vm));
    let leased = scrape(addr);
    let received = value(&leased, "neutron_dhcp_agent_dhcp_received_total", &v4);
    assert!(received >= 2.0, "DISCOVER and REQUEST at least: {received}");
    assert_eq!(
        value(&leased, "neutron_dhcp_agent_dhcp_replied_total", &v4),
        received
    );
    for reason in ["malformed", "unknown_mac", "other_server", "ignored"] {
        let r = [("network", id), ("family", "v4"), ("reason", reason)];
        assert_eq!(
            value(&leased, "neutron_dhcp_agent_dhcp_dropped_total", &r),
            0.0,
            "{reason}"
        );
    }

    // Exactly one DISCOVER from a MAC that is no port, exactly one malformed datagram.
    let server = ip4("10.63.1.2");
    send_udp(
        &client,
        "10.63.1.200/24",
        server,
        &discover([0x02, 0, 0, 0x63, 0, 1]),
    );
    let unknown = [("network", id), ("family", "v4"), ("reason", "unknown_mac")];
    eventually("the unknown MAC counted", || {
        value(
            &scrape(addr),
            "neutron_dhcp_agent_dhcp_dropped_total",
            &unknown,
        ) == 1.0
    });
    send_udp(&client, "10.63.1.200/24", server, b"not a DHCP packet");
    let malformed = [("network", id), ("family", "v4"), ("reason", "malformed")];
    eventually("the malformed packet counted", || {
        value(
            &scrape(addr),
            "neutron_dhcp_agent_dhcp_dropped_total",
            &malformed,
        ) == 1.0
    });
    let after = scrape(addr);
    assert_eq!(
        value(&after, "neutron_dhcp_agent_dhcp_received_total", &v4),
        received + 2.0
    );
    assert_eq!(
        value(&after, "neutron_dhcp_agent_dhcp_replied_total", &v4),
        received
    );
    assert_eq!(
        value(&after, "neutron_dhcp_agent_dhcp_dropped_total", &unknown),
        1.0
    );
    // By message type: the malformed datagram has none ("other"); the rest add up.
    let by_type = |t: &str| {
        let l = [("network", id), ("family", "v4"), ("type", t)];
        value(&after, "neutron_dhcp_agent_dhcp_requests_total", &l)
    };
    assert_eq!(by_type("other"), 1.0);
    assert!(by_type("discover") >= 2.0, "dhclient's and the stranger's");
    assert!(by_type("request") >= 1.0);
    assert_eq!(
        by_type("discover") + by_type("request") + by_type("other"),
        received + 2.0
    );
    let all = [("family", "v4")];
    let total_received = value(
        &after,
        "neutron_dhcp_agent_dhcp_received_all_networks_total",
        &all,
    );
    assert_eq!(
        total_received,
        received + 2.0,
        "only this network saw DHCPv4"
    );

    // The JSON and the CLI show the same network and counts.
    let (code, body) = get(addr, &format!("/v1/networks/{id}"));
    assert_eq!(code, 200, "{body}");
    let doc: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(doc["namespace"], format!("qdhcp-{id}"));
    assert_eq!(doc["addresses"], serde_json::json!(["10.63.1.2"]));
    assert_eq!(doc["dhcp"]["v4"]["unknown_mac"], 1);
    assert_eq!(doc["dhcp"]["v4"]["malformed"], 1);
    assert_eq!(doc["dhcp"]["v4"]["received"].as_f64(), Some(received + 2.0));
    assert_eq!(get(addr, "/v1/networks/no-such-network").0, 404);
    // The last clients seen: the unknown MAC's DISCOVER (newest; the malformed datagram has
    // no client), the VM's REQUEST answered.
    let seen = doc["last_seen"].as_array().expect("last_seen");
    assert_eq!(seen[0]["mac"], "02:00:00:63:00:01", "{body}");
    assert_eq!(seen[0]["message"], "DHCPDISCOVER");
    assert_eq!(seen[0]["result"], "not answered: unknown MAC (no port)");
    assert!(
        seen.iter().any(|e| e["mac"] == vm.mac.as_str()
            && e["message"] == "DHCPREQUEST"
            && e["result"] == "answered"),
        "{body}"
    );
    assert!(doc["last_packet_unix"].as_f64().is_some(), "{body}");
    let cli_dir = tempfile::tempdir().unwrap();
    let cfg = cli_dir.path().join("status-cli.ini");
    fs::write(&cfg, ini(port)).unwrap();
    let (ok, text) = agent_cli(&cfg, &["networks"]);
    assert!(ok, "{text}");
    assert!(text.contains(id) && text.contains(&other.id), "{text}");
    assert!(text.contains("10.63.1.2"), "{text}");
    let (ok, text) = agent_cli(&cfg, &["networks", "--json"]);
    assert!(ok, "{text}");
    let list: Value = serde_json::from_str(&text).expect("--json is JSON");
    assert_eq!(list.as_array().map(Vec::len), Some(2));
    let (ok, text) = agent_cli(&cfg, &["status"]);
    assert!(ok, "{text}");
    assert!(text.contains("ready             yes"), "{text}");
    assert!(text.contains("networks served   2"), "{text}");

    // A port added on reload is a view swap, timed.
    let swaps = |s: &Samples| {
        let kind = [("kind", "view_swap")];
        value(
            s,
            "neutron_dhcp_agent_network_configure_seconds_count",
            &kind,
        )
    };
    let plumbing = [("kind", "plumbing")];
    let plumbed = value(
        &after,
        "neutron_dhcp_agent_network_configure_seconds_count",
        &plumbing,
    );
    assert_eq!(plumbed, 2.0);
    assert_eq!(swaps(&after), 0.0);
    let file_events = |s: &Samples| {
        value(
            s,
            "neutron_dhcp_agent_event_to_served_seconds_count",
            &[("source", "file")],
        )
    };
    assert_eq!(file_events(&after), 0.0, "the initial apply is no event");
    net.add_port(PortSpec::vm(ip4("10.63.1.11")));
    agent.reload(&networks_json(&[&net, &other]));
    let swapped = scrape(addr);
    assert_eq!(swaps(&swapped), 1.0);
    // The reload is one event, from the change being noticed to the new view served.
    assert_eq!(file_events(&swapped), 1.0);

    // SIGHUP with the network removed: its series go, the totals stay.
    agent.reload(&networks_json(&[&other]));
    let reloaded = scrape(addr);
    assert!(!has_series(
        &reloaded,
        "neutron_dhcp_agent_dhcp_received_total",
        &v4
    ));
    assert_eq!(
        value(
            &reloaded,
            "neutron_dhcp_agent_networks",
            &[("state", "served")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &reloaded,
            "neutron_dhcp_agent_dhcp_received_all_networks_total",
            &all
        ),
        total_received
    );
    let all_unknown = [("family", "v4"), ("reason", "unknown_mac")];
    assert_eq!(
        value(
            &reloaded,
            "neutron_dhcp_agent_dhcp_dropped_all_networks_total",
            &all_unknown
        ),
        1.0
    );
    agent.stop();
    // No agent: the CLI says so instead of printing nothing.
    let (ok, text) = agent_cli(&cfg, &["status"]);
    assert!(!ok && text.contains("cannot reach"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// explain vs. what dhclient received
// ---------------------------------------------------------------------------------------------

/// Runs dhclient with the dump hook; its BOUND record (`new_*` variables).
fn dhclient_dump(client: &ClientNs, dir: &Path) -> BTreeMap<String, String> {
    let conf = dhclient::request_all_conf(20);
    let conf_path = dir.join("dhclient.conf");
    fs::write(&conf_path, conf).unwrap();
    let out = dir.join("records");
    let hook = dir.join("hook.sh");
    fs::write(
        &hook,
        format!(
            "#!/bin/sh\nDHCP_HOOK_OUT='{}' exec /bin/sh '{DUMP_HOOK}' \"$@\"\n",
            out.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&hook, fs::Permissions::from_mode(0o755)).unwrap();
    let status = Command::new("ip")
        .args(["netns", "exec", &client.ns, "dhclient", "-4", "-1", "-cf"])
        .arg(&conf_path)
        .arg("-sf")
        .arg(&hook)
        .arg("-lf")
        .arg(dir.join("leases"))
        .arg("-pf")
        .arg(dir.join("pid"))
        .arg(&client.ifname)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("dhclient");
    // -1: dhclient exits after the lease (daemonizing); stop the daemon it left.
    if let Ok(pid) = fs::read_to_string(dir.join("pid")) {
        if let Ok(pid) = pid.trim().parse::<i32>() {
            // SAFETY: kill(2) on the dhclient this test started.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
    }
    assert!(status.success(), "dhclient got no lease");
    let text = fs::read_to_string(&out).expect("hook records");
    let mut record = BTreeMap::new();
    let mut cur: Option<BTreeMap<String, String>> = None;
    for line in text.lines() {
        match line {
            "DHCP-DUMP-BEGIN" => cur = Some(BTreeMap::new()),
            "DHCP-DUMP-END" => {
                if let Some(r) = cur.take() {
                    if r.contains_key("new_ip_address") {
                        record = r;
                    }
                }
            }
            _ => {
                if let (Some(r), Some((k, v))) = (cur.as_mut(), line.split_once('=')) {
                    r.insert(k.to_string(), v.to_string());
                }
            }
        }
    }
    assert!(!record.is_empty(), "no BOUND record\n{text}");
    record
}

/// `explain` for a port equals what dhclient received, option by option (same codes, same
/// values); for a MAC that is no port it says there is no answer, and why.
#[test]
fn explain_equals_what_dhclient_received() {
    root_or_skip!();
    require_client_tools();
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut net = network(3);
    let vm = net.add_port(PortSpec::vm(ip4("10.63.3.10")).with_hostname("vm-three"));
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let client = ClientNs::new(&net.bridge_name(), &vm.mac);
    let agent = Agent::start_serving(&ini(port), &[&net]);
    let dir = tempfile::tempdir().unwrap();
    let got = dhclient_dump(&client, dir.path());

    let prl: Vec<String> = dhclient::requested().iter().map(u8::to_string).collect();
    let (code, body) = get(
        addr,
        &format!(
            "/v1/explain?network={}&mac={}&prl={}",
            net.id,
            vm.mac,
            prl.join(",")
        ),
    );
    assert_eq!(code, 200, "{body}");
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["answered"], true);
    assert_eq!(
        doc["reply"]["yiaddr"].as_str(),
        got.get("new_ip_address").map(String::as_str)
    );
    let mut explained = BTreeMap::new();
    for o in doc["reply"]["options"].as_array().unwrap() {
        let code = o["code"].as_u64().unwrap() as u8;
        let var = dhclient::var(code);
        let value = if var.starts_with("new_raw") || code == 53 {
            // dhclient prints a uint8 array (and the message type) as decimals.
            let hex = o["hex"].as_str().unwrap();
            (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap().to_string())
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            o["value"].as_str().unwrap().to_string()
        };
        explained.insert(var, value);
        assert!(o["source"].as_str().is_some_and(|s| !s.is_empty()), "{o}");
    }
    // The BOOTP header's next-server (siaddr), which dhclient also hands over.
    explained.insert(
        "new_next_server".into(),
        doc["reply"]["siaddr"].as_str().unwrap().to_string(),
    );
    // Every option dhclient got, and nothing more (its own derived variables aside).
    let derived = [
        "reason",
        "new_ip_address",
        "new_network_number",
        "new_expiry",
    ];
    let received: BTreeMap<String, String> = got
        .iter()
        .filter(|(k, _)| !derived.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(explained, received, "explain vs dhclient\n{body}");
    // The Neutron rules named: DNS from the subnet, host name from the port's dns_assignment.
    assert!(body.contains("dns_nameservers"), "{body}");
    assert!(
        body.contains("port dns_assignment hostname (vm-three)"),
        "{body}"
    );

    // The CLI prints the same reply as a table.
    let cfg = dir.path().join("cli.ini");
    fs::write(&cfg, ini(port)).unwrap();
    let (ok, text) = agent_cli(&cfg, &["explain", "--network", &net.id, "--mac", &vm.mac]);
    assert!(ok, "{text}");
    assert!(
        text.contains("10.63.3.10") && text.contains("vm-three"),
        "{text}"
    );
    assert!(text.contains("domain-name"), "{text}");
    assert!(text.contains("v4 DHCPREQUEST: answered"), "{text}");

    // A MAC that is no port: no answer, and the reason.
    let stranger = "02:00:00:63:03:99";
    let (code, body) = get(
        addr,
        &format!("/v1/explain?network={}&mac={stranger}", net.id),
    );
    assert_eq!(code, 404, "{body}");
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["answered"], false);
    assert!(
        doc["reason"].as_str().unwrap().contains("no port"),
        "{body}"
    );
    let (ok, text) = agent_cli(&cfg, &["explain", "--network", &net.id, "--mac", stranger]);
    assert!(ok, "{text}");
    assert!(text.contains("answer   none"), "{text}");
    agent.stop();
}

// ---------------------------------------------------------------------------------------------
// RPC mode readiness
// ---------------------------------------------------------------------------------------------

/// Polls `/readyz` until it answers `code`; returns the body.
fn readyz_becomes(addr: SocketAddr, code: u16, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let (c, body) = get(addr, "/readyz");
        if c == code {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still {c} ({body:?}), waited for {code}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `/readyz` in RPC mode: 503 while the first full sync is still fetching, 200 once it is
/// applied, 503 while the broker is down (with `amqp_connected` 0), 200 again after the
/// reconnect; `/healthz` stays 200 throughout (the process is alive and its loop ticks).
#[test]
fn readyz_follows_the_first_sync_and_the_broker() {
    root_or_skip!();
    require_client_tools();
    let broker = OwnBroker::start();
    let peer = Peer::start(&format!(
        "{}?rabbit_retry_interval=1&rabbit_retry_backoff=0",
        broker.url()
    ));
    let mut net = network(4);
    net.add_port(PortSpec::vm(ip4("10.63.4.10")));
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let mut v = net.to_json();
    if let Some(s) = v["subnets"][0].as_object_mut() {
        s.remove("allocation_pools");
    }
    if let Some(ports) = v["ports"].as_array_mut() {
        ports.retain(|p| p["id"] != json!(net.dhcp_port.id));
    }
    peer.cmd(json!({"cmd": "set_networks", "networks": [v]}));
    // The first sync's fetch takes 3 s.
    peer.cmd(
        json!({"cmd": "inject", "method": "get_active_networks_info", "delay": 3, "count": 1}),
    );
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let host = unique_name("rsts");
    let ini = format!(
        "{}\n[DEFAULT]\nhost = {}\ntransport_url = {}\nrpc_response_timeout = 10\n\
         resync_interval = 2\n\n[AGENT]\nreport_interval = 1\nstatus_listen = 127.0.0.1:{port}\n\n\
         [oslo_messaging_rabbit]\nrabbit_retry_interval = 1\nrabbit_retry_backoff = 0\n\
         kombu_reconnect_delay = 0.5\n",
        test_ini(),
        host,
        broker.url(),
    );
    let mark = peer.mark();
    let agent = Agent::start(&ini, "[]");
    peer.expect_call(
        mark,
        "get_active_networks_info",
        Duration::from_secs(10),
        |_| true,
    );
    let (code, body) = get(addr, "/readyz");
    assert_eq!(
        (code, body.as_str()),
        (
            503,
            "not ready: the first full sync with neutron-server is not done yet\n"
        )
    );
    assert_eq!(get(addr, "/healthz").0, 200);
    readyz_becomes(addr, 200, AGENT_TIMEOUT);
    assert!(
        agent.log_text().contains("serving network"),
        "served when ready"
    );
    assert_eq!(
        value(&scrape(addr), "neutron_dhcp_agent_amqp_connected", &[]),
        1.0
    );

    let ready = scrape(addr);
    let calls = |m: &str| {
        value(
            &ready,
            "neutron_dhcp_agent_rpc_calls_total",
            &[("method", m)],
        )
    };
    assert!(calls("get_active_networks_info") >= 1.0);
    assert!(calls("report_state") >= 1.0);
    // The heartbeat's age: report_state succeeds every second here.
    let heartbeat = [("method", "report_state")];
    assert!(
        value(
            &ready,
            "neutron_dhcp_agent_rpc_last_success_age_seconds",
            &heartbeat
        ) < 10.0
    );
    assert!(has_series(
        &ready,
        "neutron_dhcp_agent_rpc_last_success_age_seconds",
        &heartbeat
    ));
    // The first fetch took the 3 s the peer was told to delay it.
    let fetch = [("method", "get_active_networks_info")];
    assert!(value(&ready, "neutron_dhcp_agent_rpc_call_seconds_sum", &fetch) >= 3.0);
    let resyncs = |m: &Samples, reason: &str| {
        value(m, "neutron_dhcp_agent_resyncs_total", &[("reason", reason)])
    };
    assert_eq!(resyncs(&ready, "initial"), 1.0);
    assert_eq!(resyncs(&ready, "broker_reconnected"), 0.0);

    // A port_create_end cast is one RPC event, timed from its receipt to the view serving it.
    let rpc_events = |m: &Samples| {
        value(
            m,
            "neutron_dhcp_agent_event_to_served_seconds_count",
            &[("source", "rpc")],
        )
    };
    assert_eq!(rpc_events(&ready), 0.0, "syncs are no events");
    let added = net.add_port(PortSpec::vm(ip4("10.63.4.11")));
    let port_json = net.to_json()["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["id"] == json!(added.id))
        .cloned()
        .expect("the added port");
    peer.cast(&host, "port_create_end", json!({"port": port_json}));
    eventually("the port event served and timed", || {
        rpc_events(&scrape(addr)) == 1.0
    });

    assert!(broker.stop(), "own broker did not stop");
    let body = readyz_becomes(addr, 503, Duration::from_secs(20));
    assert_eq!(body, "not ready: not connected to the message broker\n");
    assert_eq!(
        get(addr, "/healthz").0,
        200,
        "alive while the broker is down"
    );
    assert_eq!(
        value(&scrape(addr), "neutron_dhcp_agent_amqp_connected", &[]),
        0.0
    );

    broker.boot();
    readyz_becomes(addr, 200, Duration::from_secs(60));
    let back = scrape(addr);
    assert_eq!(value(&back, "neutron_dhcp_agent_amqp_connected", &[]), 1.0);
    // Casts may have been lost while the broker was down: a full sync was scheduled.
    assert!(resyncs(&back, "broker_reconnected") >= 1.0);
    assert_eq!(resyncs(&back, "initial"), 1.0);
    agent.stop();
    drop(peer);
}

/// `explain --v6` for a port on a DHCPv6-stateful subnet equals what `dhclient -6` received:
/// its addresses, DNS server and search list.
#[test]
fn explain_v6_equals_what_dhclient6_received() {
    use v6::*;
    root_or_skip!();
    require_v6_env();
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut net = Net6::new("fd00:63:5::", Some("dhcpv6-stateful"), None);
    let vm = net.add_port(Port6::vm(&[net.addr(0x10), net.addr(0x11)], None));
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let client = ClientNs6::new(&net.bridge_name(), &vm.mac);
    let agent = Agent::start(&ini(port), &networks_json6(&[&net]));
    agent.wait_serving(&net.id);
    let lease = client
        .run(Client6::DhclientDuidLl, LEASE_TIMEOUT)
        .expect_lease("stateful DHCPv6");

    let (code, body) = get(
        addr,
        &format!("/v1/explain?network={}&mac={}&family=v6", net.id, vm.mac),
    );
    assert_eq!(code, 200, "{body}");
    let doc: Value = serde_json::from_str(&body).unwrap();
    let mut addresses: Vec<std::net::Ipv6Addr> = doc["reply"]["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().parse().unwrap())
        .collect();
    addresses.sort();
    let option = |code: u64| {
        doc["reply"]["options"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["code"] == code)
            .map(|o| o["value"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let dns: Vec<std::net::Ipv6Addr> = option(23)
        .split_whitespace()
        .map(|a| a.parse().unwrap())
        .collect();
    let search: Vec<String> = option(24).split_whitespace().map(String::from).collect();
    assert_eq!(
        Lease6 {
            addresses,
            dns,
            search
        },
        lease,
        "{body}"
    );
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("cli.ini");
    fs::write(&cfg, ini(port)).unwrap();
    let (ok, text) = agent_cli(
        &cfg,
        &["explain", "--v6", "--network", &net.id, "--mac", &vm.mac],
    );
    assert!(ok, "{text}");
    assert!(text.contains(&net.addr(0x10).to_string()), "{text}");
    assert!(text.contains("dns-server"), "{text}");
    agent.stop();
}

/// The DNS service's and the metadata proxy's counters per network: one local DNS answer,
/// one malformed query, one proxied metadata request and one bad HTTP request move exactly
/// their series.
#[test]
fn dns_and_metadata_metrics_count_per_network() {
    root_or_skip!();
    require_client_tools();
    require_tool("dig");
    require_tool("curl");
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut net = network(9);
    let vm_port = net.add_port(PortSpec::vm(ip4("10.63.9.10")).with_hostname("vm-nine"));
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("metadata_proxy");
    let _metadata_agent = mdhelp::FakeMetadataAgent::start(&socket);
    let config = mdhelp::metadata_ini(
        &socket,
        &format!("\n[agent]\nstatus_listen = 127.0.0.1:{port}\n"),
    );
    let agent = Agent::start_serving(&config, &[&net]);
    assert_eq!(readyz_becomes(addr, 200, AGENT_TIMEOUT), "ready\n");
    let vm = mdhelp::Vm::new(&net, &vm_port);
    let id = net.id.clone();
    let id = id.as_str();

    // One metadata request answered by the metadata agent, one request hyper cannot parse.
    let (code, _) = vm.curl_until_answer(
        "http://169.254.169.254/openstack/latest/meta_data.json",
        &[],
    );
    assert_eq!(code, 200);
    let bad = vm.inside(|| {
        let mut s = TcpStream::connect("169.254.169.254:80").expect("connect to the proxy");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"NOT HTTP AT ALL\r\n\r\n").unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer
    });
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad:?}");

    // One local name answered, one malformed query dropped.
    let server = net.dhcp_port.ip.to_string();
    let dug = dnstools::dig(
        &vm.ns.ns,
        &server,
        &format!("vm-nine.{DNS_DOMAIN}"),
        "A",
        false,
    );
    assert_eq!(dug, dnstools::Dug::ok(&["a 10.63.9.10"]));
    let dhcp_ip = net.dhcp_port.ip;
    vm.inside(move || {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").expect("udp socket");
        s.send_to(b"\x12", (dhcp_ip, 53))
            .expect("send a malformed query");
    });

    let dns = |s: &Samples, outcome: &str| {
        value(
            s,
            "neutron_dhcp_agent_dns_queries_total",
            &[("network", id), ("outcome", outcome)],
        )
    };
    let mut m = scrape(addr);
    eventually("the malformed query counted", || {
        m = scrape(addr);
        dns(&m, "malformed") == 1.0
    });
    assert_eq!(dns(&m, "local"), 1.0);
    assert_eq!(dns(&m, "forwarded"), 0.0);
    assert_eq!(dns(&m, "not_local_client"), 0.0);
    assert_eq!(
        value(
            &m,
            "neutron_dhcp_agent_metadata_requests_total",
            &[("network", id)]
        ),
        1.0,
        "the answered request (one hyper cannot parse counts as a 400 only)"
    );
    let md = |status: &str| {
        value(
            &m,
            "neutron_dhcp_agent_metadata_errors_total",
            &[("network", id), ("status", status)],
        )
    };
    assert_eq!(md("400"), 1.0);
    let answers = |class: &str| {
        value(
            &m,
            "neutron_dhcp_agent_metadata_answers_total",
            &[("network", id), ("class", class)],
        )
    };
    assert_eq!(answers("2xx"), 1.0, "the metadata agent's 200");
    assert_eq!(answers("4xx") + answers("5xx"), 0.0);
    assert_eq!(md("503") + md("504") + md("502") + md("429"), 0.0);
    assert_eq!(
        value(
            &m,
            "neutron_dhcp_agent_dns_forward_failures_total",
            &[("network", id), ("reason", "timeout")]
        ),
        0.0
    );
    agent.stop();
}
