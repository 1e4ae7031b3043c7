//! Differential tests: real dnsmasq, configured exactly as Neutron's Dnsmasq driver configures
//! it (`neutron_dhcp::dnsmasq`), is the oracle for what our agent must answer.
//!
//! For each fixture network the same clients run twice on the same layout:
//!
//! ```text
//!  dnsmasq phase:  <ndq…>: ns-<port11> (DHCP port MAC + IPs)  ──veth──  <ndt…> ─┐
//!                                                                              ├─ brq<net11>
//!  agent phase:    qdhcp-<net>: ns-<port11>  ──veth──  tap<port11> ───────────┤   (root ns)
//!  clients:        <ndc…>: <ndc…>c (case MAC)  ──veth──  <ndc…>r ─────────────┘
//! ```
//!
//! First dnsmasq runs in a namespace holding the agent's DHCP port (MAC, addresses, MTU,
//! metadata address) with Neutron's rendered command line and files; every client case runs
//! ISC dhclient with `scripts/dhcp-dump-hook.sh`, which records every option received. Then
//! dnsmasq and its namespace go away, our agent (tests/common `Agent`) serves the same network
//! on the same bridge, and the same clients run again. The address and the full option sets must
//! be identical; the only normalisations are named in [`normalise`].
//!
//! The fixtures together exercise every option rule of reference §9.6: explicit / empty /
//! `0.0.0.0` DNS (and the several-DHCP-ports DNS list), no gateway, host routes (including a
//! default host route standing in for a missing gateway), isolated and non-isolated metadata
//! (`enable_isolated_metadata`, `force_metadata`), several subnets on one segment (on-link
//! routes, also to a DHCP-disabled subnet), MTU, lease -1, T1/T2, extra_dhcp_opts by name and
//! by number, empty values, `tag:ipxe`, client-id ports, excluded device owners, unknown MACs.
//!
//! Needs root, `dnsmasq` (Debian package `dnsmasq-base`) and `dhclient` (`isc-dhcp-client`);
//! without them the test fails naming the package. Fixtures run in parallel threads and the
//! cases of a fixture run in parallel, so the suite takes well under a minute.

mod common;
#[path = "common/dhclient.rs"]
mod dhclient;
#[path = "common/dnsmasq.rs"]
mod oracle;

use std::collections::BTreeMap;
use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::*;
use neutron_dhcp::config::ServeConfig;
use neutron_dhcp::model::Network;
use oracle::DnsmasqServer;

/// The dump-everything hook.
const DUMP_HOOK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/dhcp-dump-hook.sh");
/// How long a client that should get an answer may take.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a client that should get no answer keeps asking (dhclient retries every ~1-2 s).
const SILENCE: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// Preconditions
// ---------------------------------------------------------------------------------------------

fn require_tool_from(tool: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .chain(["/usr/sbin".into(), "/sbin".into()])
                .any(|d| d.join(tool).is_file())
        })
        .unwrap_or(false);
    assert!(
        found,
        "`{tool}` is not installed: the differential tests need the Debian package `{package}` \
         (apt-get install {package}, or run scripts/install-deps.sh as root)"
    );
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// What one client does and what it must get.
#[derive(Clone, Debug)]
struct Case {
    name: &'static str,
    mac: String,
    /// dhclient `send dhcp-client-identifier "<id>"`.
    client_id: Option<String>,
    /// Sends option 175 (iPXE), which sets dnsmasq's `ipxe` tag.
    ipxe: bool,
    /// `Some(ip)`: dnsmasq leases exactly this address (and so must we); `None`: neither may
    /// answer.
    expect: Option<Ipv4Addr>,
    /// A difference we know about, checked exactly instead of "identical".
    known: Option<Known>,
}

/// A known difference between our agent and dnsmasq for one case. `check` gets our record and
/// dnsmasq's and must confirm that they differ in exactly the documented way, so that a
/// difference that changes (or disappears) still fails the test.
#[derive(Clone, Debug)]
struct Known {
    /// Deliberate (ours is the intended behaviour) or a bug in our server.
    bug: bool,
    why: &'static str,
    check: fn(ours: &Record, dnsmasq: &Record) -> Result<(), String>,
}

struct Fixture {
    name: &'static str,
    network: Value,
    dhcp_port_id: String,
    serve: ServeConfig,
    cases: Vec<Case>,
}

fn ipv4(s: &str) -> Ipv4Addr {
    s.parse().expect("IPv4 literal")
}

fn subnet(
    id: &str,
    cidr: &str,
    gateway: Option<&str>,
    dns: &[&str],
    routes: &[(&str, &str)],
) -> Value {
    json!({
        "id": id, "name": "", "ip_version": 4, "cidr": cidr, "gateway_ip": gateway,
        "enable_dhcp": true, "dns_nameservers": dns,
        "host_routes": routes.iter().map(|(d, n)| json!({"destination": d, "nexthop": n})).collect::<Vec<_>>(),
        "allocation_pools": [], "ipv6_ra_mode": null, "ipv6_address_mode": null,
        "subnetpool_id": null, "segment_id": null,
    })
}

struct PortB {
    v: Value,
}

fn port(owner: &str, mac: &str, ips: &[(&str, &str)]) -> PortB {
    PortB {
        v: json!({
            "id": random_uuid(), "name": "", "mac_address": mac, "admin_state_up": true,
            "status": "ACTIVE", "device_id": random_uuid(), "device_owner": owner,
            "fixed_ips": ips.iter().map(|(s, ip)| json!({"subnet_id": s, "ip_address": ip})).collect::<Vec<_>>(),
            "extra_dhcp_opts": [], "dns_name": "", "binding:host_id": "ndrs-test-host",
            "revision_number": 1,
        }),
    }
}

impl PortB {
    fn opts(mut self, opts: &[(&str, &str)]) -> PortB {
        self.v["extra_dhcp_opts"] = opts
            .iter()
            .map(|(n, v)| json!({"opt_name": n, "opt_value": v, "ip_version": 4}))
            .collect();
        self
    }
    fn hostname(mut self, name: &str, domain: &str) -> PortB {
        let ip = self.v["fixed_ips"][0]["ip_address"].clone();
        self.v["dns_assignment"] =
            json!([{"ip_address": ip, "hostname": name, "fqdn": format!("{name}.{domain}.")}]);
        self
    }
    fn id(&self) -> String {
        self.v["id"].as_str().unwrap().to_string()
    }
}

fn network(id: &str, mtu: u32, subnets: Vec<Value>, ports: Vec<&PortB>) -> Value {
    json!({
        "id": id, "name": "difftest", "admin_state_up": true, "status": "ACTIVE", "mtu": mtu,
        "subnets": subnets, "non_local_subnets": [],
        "ports": ports.iter().map(|p| p.v.clone()).collect::<Vec<_>>(),
    })
}

fn case(name: &'static str, mac: &str, expect: Option<&str>) -> Case {
    Case {
        name,
        mac: mac.to_string(),
        client_id: None,
        ipxe: false,
        expect: expect.map(ipv4),
        known: None,
    }
}

/// Every key equal except `keys`, where ours must lack the value dnsmasq has.
fn only_missing_in_ours(ours: &Record, dnsmasq: &Record, keys: &[&str]) -> Result<(), String> {
    let (o, d) = (normalise(ours.clone()), normalise(dnsmasq.clone()));
    for k in keys {
        if o.contains_key(*k) || !d.contains_key(*k) {
            return Err(format!(
                "expected {k} from dnsmasq only; ours {:?}, dnsmasq {:?}",
                o.get(*k),
                d.get(*k)
            ));
        }
    }
    let strip = |r: &Record| -> Record {
        r.iter()
            .filter(|(k, _)| !keys.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    if strip(&o) != strip(&d) {
        return Err(format!(
            "other options differ too: ours {:?}, dnsmasq {:?}",
            strip(&o),
            strip(&d)
        ));
    }
    Ok(())
}

/// A routed network: a router port holds the gateway (metadata via the gateway), explicit DNS,
/// host routes, MTU, configured T1/T2, and ports with every kind of extra DHCP option.
fn fixture_routed() -> Fixture {
    let sid = random_uuid();
    let s = sid.as_str();
    let mac = |last: u8| format!("fa:16:3e:51:00:{last:02x}");
    let dhcp = port("network:dhcp", &mac(2), &[(s, "10.51.0.2")]);
    let router = port("network:router_interface", &mac(1), &[(s, "10.51.0.1")]);
    let plain =
        port("compute:nova", &mac(10), &[(s, "10.51.0.10")]).hostname("vm-plain", "ndrs.test");
    let pxe = port("compute:nova", &mac(11), &[(s, "10.51.0.11")]).opts(&[
        ("bootfile-name", "pxelinux.0"),
        ("tftp-server", "10.51.0.5"),
        ("server-ip-address", "10.51.0.5"),
        ("42", "10.51.0.6"),
        ("99", "hello-99"),
        ("dns-server", "10.51.0.53"),
    ]);
    let ipxe = port("baremetal:none", &mac(12), &[(s, "10.51.0.12")]).opts(&[
        ("tag:ipxe,bootfile-name", "http://10.51.0.5/boot.ipxe"),
        ("bootfile-name", "undionly.kpxe"),
    ]);
    let suppress = port("compute:nova", &mac(13), &[(s, "10.51.0.13")]).opts(&[
        ("router", ""),
        ("classless-static-route", ""),
        ("mtu", "1400"),
    ]);
    // Every case gets a port of its own (own MAC, own client-id): two clients with one MAC on
    // one bridge, or one client-id from two MACs at once, would race in dnsmasq's lease
    // database (and in the bridge's forwarding table) and make the oracle flaky.
    let ipxe2 = port("baremetal:none", &mac(19), &[(s, "10.51.0.19")]).opts(&[
        ("tag:ipxe,bootfile-name", "http://10.51.0.5/boot.ipxe"),
        ("bootfile-name", "undionly.kpxe"),
    ]);
    let cid_only =
        port("compute:nova", &mac(14), &[(s, "10.51.0.14")]).opts(&[("client-id", "cid-only")]);
    let cid_unsent =
        port("compute:nova", &mac(18), &[(s, "10.51.0.18")]).opts(&[("client-id", "cid-unsent")]);
    let cid_moved =
        port("compute:nova", &mac(17), &[(s, "10.51.0.17")]).opts(&[("client-id", "cid-moved")]);
    let cid_opts = port("compute:nova", &mac(15), &[(s, "10.51.0.15")]).opts(&[
        ("61", "cid-opts"),
        ("domain-name", "example.org"),
        ("28", "10.51.0.127"),
    ]);
    let ha = port(
        "network:router_ha_interface",
        &mac(20),
        &[(s, "10.51.0.20")],
    );
    let fip = port("network:floatingip", &mac(21), &[(s, "10.51.0.21")]);
    let net = network(
        &random_uuid(),
        1450,
        vec![subnet(
            s,
            "10.51.0.0/24",
            Some("10.51.0.1"),
            &["10.51.0.53", "10.51.0.54"],
            &[
                ("192.168.51.0/24", "10.51.0.254"),
                ("172.16.0.0/12", "10.51.0.253"),
            ],
        )],
        vec![
            &dhcp,
            &router,
            &plain,
            &pxe,
            &ipxe,
            &ipxe2,
            &suppress,
            &cid_only,
            &cid_unsent,
            &cid_moved,
            &cid_opts,
            &ha,
            &fip,
        ],
    );
    let cases = vec![
        case(
            "plain port with dns_assignment",
            &mac(10),
            Some("10.51.0.10"),
        ),
        case("router interface port", &mac(1), Some("10.51.0.1")),
        case(
            "PXE options by name and number",
            &mac(11),
            Some("10.51.0.11"),
        ),
        case(
            "tag:ipxe port, client without iPXE",
            &mac(12),
            Some("10.51.0.12"),
        ),
        Case {
            ipxe: true,
            ..case(
                "tag:ipxe port, iPXE client (option 175)",
                &mac(19),
                Some("10.51.0.19"),
            )
        },
        Case {
            // Neutron lets `router` and `classless-static-route` be blank
            // (VALID_BLANK_EXTRA_DHCP_OPTS) to suppress them and writes
            // `tag:port-<id>,option:router,`. dnsmasq 2.90 rejects that line ("bad IP
            // address"; see `dnsmasq --test --dhcp-option=tag:x,option:router,`) and keeps
            // sending the subnet's router. We suppress the router, as Neutron intends. The
            // blank classless-static-route is sent by dnsmasq as a zero-length option 121,
            // which RFC 3442 forbids and dhclient discards; we send none: the client sees the
            // same (no option 121).
            known: Some(Known {
                bug: false,
                why: "blank `router` port option: we suppress the router as Neutron intends; \
                      dnsmasq rejects the `option:router,` line and sends the subnet's router",
                check: |o, d| only_missing_in_ours(o, d, &["new_routers"]),
            }),
            ..case(
                "blank router / classless-static-route, mtu override",
                &mac(13),
                Some("10.51.0.13"),
            )
        },
        Case {
            client_id: Some("cid-only".into()),
            ..case(
                "client-id only port, client sends it",
                &mac(14),
                Some("10.51.0.14"),
            )
        },
        case(
            "client-id only port, client sends none",
            &mac(18),
            Some("10.51.0.18"),
        ),
        Case {
            client_id: Some("cid-moved".into()),
            ..case(
                "client-id only port, another MAC sends it",
                &mac(16),
                Some("10.51.0.17"),
            )
        },
        Case {
            client_id: Some("cid-opts".into()),
            ..case(
                "client-id (61) port with options",
                &mac(15),
                Some("10.51.0.15"),
            )
        },
        case("excluded owner router_ha_interface", &mac(20), None),
        case("excluded owner floatingip", &mac(21), None),
        // (network:dhcp exclusion: the multi-subnet fixture's other agent's port. Our own
        // port's MAC is on the server's interface on this bridge; a client with it would
        // confuse the bridge.)
        case("unknown MAC", &mac(99), None),
    ];
    let serve = ServeConfig {
        dhcp_lease_duration: 600,
        dns_domain: "ndrs.test".into(),
        dhcp_renewal_time: 100,
        dhcp_rebinding_time: 200,
        ..ServeConfig::default()
    };
    Fixture {
        name: "routed",
        network: net,
        dhcp_port_id: dhcp.id(),
        serve,
        cases,
    }
}

/// An isolated network with isolated metadata on: no gateway, no DNS servers (the DHCP port's
/// address is the DNS server), infinite leases, no T1/T2, no domain.
fn fixture_isolated() -> Fixture {
    let sid = random_uuid();
    let s = sid.as_str();
    let mac = |last: u8| format!("fa:16:3e:52:00:{last:02x}");
    let dhcp = port("network:dhcp", &mac(2), &[(s, "10.52.0.3")]);
    let a = port("compute:nova", &mac(10), &[(s, "10.52.0.10")]);
    let b = port("", &mac(11), &[(s, "10.52.0.11")]).opts(&[("ntp-server", "10.52.0.123")]);
    let net = network(
        &random_uuid(),
        9000,
        vec![subnet(s, "10.52.0.0/25", None, &[], &[])],
        vec![&dhcp, &a, &b],
    );
    Fixture {
        name: "isolated",
        network: net,
        dhcp_port_id: dhcp.id(),
        serve: ServeConfig {
            dhcp_lease_duration: -1,
            dns_domain: String::new(),
            enable_isolated_metadata: true,
            ..ServeConfig::default()
        },
        cases: vec![
            case(
                "isolated subnet, no gateway, infinite lease",
                &mac(10),
                Some("10.52.0.10"),
            ),
            case(
                "port without device_owner, ntp-server by name",
                &mac(11),
                Some("10.52.0.11"),
            ),
            case("unknown MAC", &mac(99), None),
        ],
    }
}

/// Several subnets on one segment with forced metadata: on-link routes (also to a DHCP-disabled
/// subnet), two DHCP ports (DNS list), `0.0.0.0` DNS, a default host route instead of a
/// gateway, a port on both subnets, no MTU, default lease and T1/T2.
fn fixture_multi() -> Fixture {
    let (sa, sb, sc) = (random_uuid(), random_uuid(), random_uuid());
    let mac = |last: u8| format!("fa:16:3e:53:00:{last:02x}");
    let dhcp = port(
        "network:dhcp",
        &mac(2),
        &[(&sa, "10.53.0.2"), (&sb, "10.53.1.2")],
    );
    let other_agent = port("network:dhcp", &mac(3), &[(&sa, "10.53.0.3")]);
    let on_a = port("compute:nova", &mac(10), &[(&sa, "10.53.0.10")]);
    let on_b = port("compute:nova", &mac(11), &[(&sb, "10.53.1.11")]).hostname("vm-b", "ndrs.test");
    let on_both = port(
        "compute:nova",
        &mac(12),
        &[(&sa, "10.53.0.12"), (&sb, "10.53.1.12")],
    );
    let on_both_rev = port(
        "compute:nova",
        &mac(14),
        &[(&sb, "10.53.1.14"), (&sa, "10.53.0.14")],
    );
    let on_c = port("compute:nova", &mac(13), &[(&sc, "10.53.2.13")]);
    let mut c = subnet(&sc, "10.53.2.0/24", Some("10.53.2.1"), &[], &[]);
    c["enable_dhcp"] = json!(false);
    let net = network(
        &random_uuid(),
        0,
        vec![
            subnet(&sa, "10.53.0.0/24", Some("10.53.0.1"), &[], &[]),
            subnet(
                &sb,
                "10.53.1.0/24",
                None,
                &["0.0.0.0"],
                &[("0.0.0.0/0", "10.53.1.1"), ("10.99.0.0/16", "10.53.1.254")],
            ),
            c,
        ],
        vec![
            &dhcp,
            &other_agent,
            &on_a,
            &on_b,
            &on_both,
            &on_both_rev,
            &on_c,
        ],
    );
    Fixture {
        name: "multi-subnet",
        network: net,
        dhcp_port_id: dhcp.id(),
        serve: ServeConfig {
            dns_domain: "ndrs.test".into(),
            force_metadata: true,
            ..ServeConfig::default()
        },
        cases: vec![
            case(
                "subnet A: two DHCP ports, empty DNS",
                &mac(10),
                Some("10.53.0.10"),
            ),
            case(
                "subnet B: 0.0.0.0 DNS, default host route",
                &mac(11),
                Some("10.53.1.11"),
            ),
            // dnsmasq offers the port's last fixed IP on the segment; so do we.
            case(
                "port with addresses on A and B",
                &mac(12),
                Some("10.53.1.12"),
            ),
            case(
                "port with addresses on B and A",
                &mac(14),
                Some("10.53.0.14"),
            ),
            case("port only on the DHCP-disabled subnet", &mac(13), None),
            case("other agent's DHCP port", &mac(3), None),
        ],
    }
}

// ---------------------------------------------------------------------------------------------
// dhclient with the dump hook
// ---------------------------------------------------------------------------------------------

/// One hook record: `reason` and every `new_*` variable.
type Record = BTreeMap<String, String>;

fn parse_records(text: &str) -> Vec<Record> {
    let mut out = Vec::new();
    let mut cur: Option<Record> = None;
    for line in text.lines() {
        match line {
            "DHCP-DUMP-BEGIN" => cur = Some(Record::new()),
            "DHCP-DUMP-END" => out.extend(cur.take()),
            _ => {
                if let (Some(r), Some((k, v))) = (cur.as_mut(), line.split_once('=')) {
                    r.insert(k.to_string(), v.to_string());
                }
            }
        }
    }
    out
}

fn bound(r: &Record) -> bool {
    matches!(
        r.get("reason").map(String::as_str),
        Some("BOUND" | "REBOOT" | "RENEW" | "REBIND")
    ) && r.contains_key("new_ip_address")
}

/// dhclient.conf asking for (nearly) every option code ([`dhclient::request_all_conf`]), and
/// sending the case's client id and iPXE tag.
fn dhclient_conf(case: &Case, timeout: Duration) -> String {
    let mut conf = dhclient::request_all_conf(timeout.as_secs().max(2));
    if let Some(id) = &case.client_id {
        conf.push_str(&format!("send dhcp-client-identifier \"{id}\";\n"));
    }
    if case.ipxe {
        conf.push_str("option ipxe-encap code 175 = string;\nsend ipxe-encap \"ipxe\";\n");
    }
    conf
}

struct ClientResult {
    lease: Option<Record>,
    log: String,
    elapsed: Duration,
}

/// Runs dhclient once in `ns` on `ifname` and returns its BOUND record, if any.
fn run_dhclient(ns: &str, ifname: &str, case: &Case, dir: &Path, tag: &str) -> ClientResult {
    let wait = if case.expect.is_some() {
        ANSWER_TIMEOUT
    } else {
        SILENCE
    };
    let conf = dir.join(format!("{tag}.conf"));
    let out = dir.join(format!("{tag}.records"));
    let log = dir.join(format!("{tag}.log"));
    fs::write(&conf, dhclient_conf(case, wait)).expect("write dhclient.conf");
    let wrapper = dir.join(format!("{tag}-hook.sh"));
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nDHCP_HOOK_OUT='{}' exec /bin/sh '{DUMP_HOOK}' \"$@\"\n",
            out.display()
        ),
    )
    .expect("write hook wrapper");
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).expect("chmod");
    let logf = fs::File::create(&log).expect("client log");
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        ns,
        &tool_path("dhclient"),
        "-4",
        "-1",
        "-d",
        "-v",
    ])
    .arg("-cf")
    .arg(&conf)
    .arg("-sf")
    .arg(&wrapper)
    .arg("-lf")
    .arg(dir.join(format!("{tag}.leases")))
    .arg("-pf")
    .arg(dir.join(format!("{tag}.pid")))
    .arg(ifname)
    .stdin(Stdio::null())
    .stdout(logf.try_clone().expect("dup"))
    .stderr(logf)
    .process_group(0);
    // SAFETY: prctl only; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            );
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child = ChildGuard::new(cmd.spawn().expect("start dhclient"), true);
    let deadline = started + wait + Duration::from_secs(3);
    loop {
        if child.wait_timeout(Duration::from_millis(50)).is_some() || Instant::now() >= deadline {
            break;
        }
        let text = fs::read_to_string(&out).unwrap_or_default();
        if parse_records(&text).iter().any(bound) {
            break;
        }
        if case.expect.is_none() && Instant::now() >= started + wait {
            break;
        }
    }
    child.terminate(Duration::from_secs(1));
    let text = fs::read_to_string(&out).unwrap_or_default();
    ClientResult {
        lease: parse_records(&text).into_iter().rev().find(bound),
        log: format!(
            "{}\n--- records ---\n{text}",
            fs::read_to_string(&log).unwrap_or_default()
        ),
        elapsed: started.elapsed(),
    }
}

// ---------------------------------------------------------------------------------------------
// The two servers
// ---------------------------------------------------------------------------------------------

/// Neutron's dnsmasq for a fixture: the DHCP port's MTU, its addresses on DHCP-enabled subnets
/// and, with isolated or forced metadata, the metadata address, as the device manager sets them.
fn start_dnsmasq(f: &Fixture, net: &Network, bridge: &str) -> DnsmasqServer {
    let own = net
        .port(&f.dhcp_port_id)
        .expect("fixture has its DHCP port");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    DnsmasqServer::start(net, own, &f.serve, bridge, now, |p| {
        let (ns, tap, ifname) = (p.ns, p.tap, p.ifname);
        if let Some(mtu) = net.mtu {
            ip(&format!("link set {tap} mtu {mtu}"));
            ip(&format!("-n {ns} link set {ifname} mtu {mtu}"));
        }
        for fip in &own.fixed_ips {
            if let Some(s) = net
                .subnets
                .iter()
                .find(|s| s.id == fip.subnet_id && s.enable_dhcp)
            {
                ip(&format!(
                    "-n {ns} addr add {}/{} dev {ifname}",
                    fip.ip_address,
                    s.cidr.prefix()
                ));
            }
        }
        if f.serve.enable_isolated_metadata || f.serve.force_metadata {
            ip(&format!("-n {ns} addr add 169.254.169.254/32 dev {ifname}"));
        }
    })
}

/// The agent's config for a fixture: veth driver on the per-network bridge, plus the fixture's
/// serving options.
fn agent_ini(s: &ServeConfig) -> String {
    format!(
        "[DEFAULT]\ninterface_driver = veth\ndhcp_lease_duration = {}\ndns_domain = {}\n\
         enable_isolated_metadata = {}\nforce_metadata = {}\ndhcp_broadcast_reply = {}\n\
         dhcp_renewal_time = {}\ndhcp_rebinding_time = {}\n\n[veth]\nbridge = brq{{network_id}}\n",
        s.dhcp_lease_duration,
        s.dns_domain,
        s.enable_isolated_metadata,
        s.force_metadata,
        s.dhcp_broadcast_reply,
        s.dhcp_renewal_time,
        s.dhcp_rebinding_time
    )
}

// ---------------------------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------------------------

/// Removes what legitimately differs between two runs and are not server behaviour:
/// - `new_expiry`: dhclient's absolute expiry time (wall clock at the ACK).
///
/// T1/T2 (`new_dhcp_renewal_time`, `new_dhcp_rebinding_time`) are compared separately by
/// [`compare`]: dnsmasq subtracts a small random fuzz (at most lease/16) from its default T1/T2
/// on some replies so that clients do not renew in lockstep; we send the exact defaults
/// (lease/2, lease*7/8). Option order is not compared: the hook sorts the variables, and DHCP
/// does not give the order of options any meaning.
fn normalise(mut r: Record) -> Record {
    r.remove("new_expiry");
    r.remove("reason");
    r
}

fn compare(f: &Fixture, ours: &Record, theirs: &Record) -> Vec<String> {
    let (mut ours, mut theirs) = (normalise(ours.clone()), normalise(theirs.clone()));
    let mut diffs = Vec::new();
    let configured = [f.serve.dhcp_renewal_time, f.serve.dhcp_rebinding_time];
    for (i, key) in ["new_dhcp_renewal_time", "new_dhcp_rebinding_time"]
        .into_iter()
        .enumerate()
    {
        let (a, b) = (ours.remove(key), theirs.remove(key));
        if a == b {
            continue;
        }
        let lease: u64 = f.serve.dhcp_lease_duration.max(0) as u64;
        let parse = |v: &Option<String>| v.as_deref().and_then(|s| s.parse::<u64>().ok());
        let fuzz_ok = configured[i] == 0
            && match (parse(&a), parse(&b)) {
                (Some(x), Some(y)) => y <= x && x - y <= lease / 16,
                _ => false,
            };
        if !fuzz_ok {
            diffs.push(format!("{key}: ours {a:?}, dnsmasq {b:?}"));
        }
    }
    for key in ours
        .keys()
        .chain(theirs.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (a, b) = (ours.get(key), theirs.get(key));
        if a != b {
            diffs.push(format!("{key}: ours {a:?}, dnsmasq {b:?}"));
        }
    }
    diffs
}

// ---------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------

struct Outcome {
    fixture: &'static str,
    case: String,
    status: String,
    failures: Vec<String>,
}

fn run_clients(clients: &[(Case, ClientNs)], dir: &Path, phase: &str) -> Vec<ClientResult> {
    thread::scope(|s| {
        let handles: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(i, (c, ns))| {
                let tag = format!("{phase}-{i}");
                s.spawn(move || run_dhclient(&ns.ns, &ns.ifname, c, dir, &tag))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    })
}

fn run_fixture(f: Fixture) -> Vec<Outcome> {
    let net = Network::from_json(&f.network).expect("fixture network parses");
    // Clients run in parallel on one bridge: a MAC used twice (or the server's own) would make
    // the bridge and dnsmasq's lease database race.
    let own_mac = net.port(&f.dhcp_port_id).map(|p| p.mac_address.to_string());
    let mut macs: Vec<&str> = f.cases.iter().map(|c| c.mac.as_str()).collect();
    macs.sort_unstable();
    macs.dedup();
    assert!(
        macs.len() == f.cases.len() && !macs.iter().any(|m| Some(m.to_string()) == own_mac),
        "fixture {}: every case needs its own MAC, not the DHCP port's",
        f.name
    );
    let bridge_name = format!("brq{}", &net.id[..11]);
    let _bridge = LinkGuard::bridge(&bridge_name);
    let dir = tempfile::Builder::new()
        .prefix("ndrs-diff-")
        .tempdir()
        .expect("tempdir");
    let clients: Vec<(Case, ClientNs)> = f
        .cases
        .iter()
        .map(|c| (c.clone(), ClientNs::new(&bridge_name, &c.mac)))
        .collect();

    let t = Instant::now();
    let dnsmasq = start_dnsmasq(&f, &net, &bridge_name);
    let theirs = run_clients(&clients, dir.path(), "dnsmasq");
    dnsmasq.stop();
    note(&format!("[{}] dnsmasq phase: {:.1?}", f.name, t.elapsed()));

    let t = Instant::now();
    let networks = serde_json::to_string_pretty(&json!([f.network])).unwrap();
    let agent = Agent::start(&agent_ini(&f.serve), &networks);
    agent.wait_serving(&net.id);
    let ours = run_clients(&clients, dir.path(), "agent");
    agent.stop();
    note(&format!("[{}] agent phase: {:.1?}", f.name, t.elapsed()));

    let mut outcomes = Vec::new();
    for (((c, _), o), d) in clients.iter().zip(&ours).zip(&theirs) {
        let mut failures = Vec::new();
        let mut status = "same";
        match (&o.lease, &d.lease, c.expect) {
            (None, None, None) => {}
            (Some(a), Some(b), Some(ip)) => {
                if b.get("new_ip_address").map(String::as_str) != Some(&ip.to_string()) {
                    failures.push(format!(
                        "dnsmasq leased {:?}, the fixture expects {ip}",
                        b.get("new_ip_address")
                    ));
                }
                match &c.known {
                    None => {
                        if a.get("new_ip_address") != b.get("new_ip_address") {
                            failures.push(format!(
                                "ours leased {:?}, dnsmasq {ip}",
                                a.get("new_ip_address")
                            ));
                        }
                        failures.extend(compare(&f, a, b));
                    }
                    Some(k) => {
                        status = if k.bug {
                            "KNOWN BUG"
                        } else {
                            "deliberate difference"
                        };
                        if let Err(e) = (k.check)(a, b) {
                            failures.push(format!(
                                "the known difference ({}) is not what it was: {e}",
                                k.why
                            ));
                        }
                    }
                }
            }
            _ => failures.push(format!(
                "expected {}; ours: {}, dnsmasq: {}",
                c.expect
                    .map(|ip| format!("a lease of {ip}"))
                    .unwrap_or_else(|| "no answer".into()),
                o.lease
                    .as_ref()
                    .map(|r| format!("{:?}", r.get("new_ip_address")))
                    .unwrap_or_else(|| "no answer".into()),
                d.lease
                    .as_ref()
                    .map(|r| format!("{:?}", r.get("new_ip_address")))
                    .unwrap_or_else(|| "no answer".into()),
            )),
        }
        if !failures.is_empty() {
            failures.push(format!(
                "--- dhclient against our agent ({:.1?}) ---\n{}\n--- dhclient against dnsmasq ({:.1?}) ---\n{}",
                o.elapsed, o.log, d.elapsed, d.log
            ));
        }
        outcomes.push(Outcome {
            fixture: f.name,
            case: format!("{} ({})", c.name, c.mac),
            status: match &c.known {
                Some(k) if failures.is_empty() => format!("{status}: {}", k.why),
                _ => status.to_string(),
            },
            failures,
        });
    }
    outcomes
}

#[test]
fn dhclient_sees_the_same_as_with_neutrons_dnsmasq() {
    root_or_skip!();
    require_tool_from("ip", "iproute2");
    require_tool_from("dnsmasq", "dnsmasq-base");
    require_tool_from("dhclient", "isc-dhcp-client");
    let started = Instant::now();
    let fixtures = vec![fixture_routed(), fixture_isolated(), fixture_multi()];
    let outcomes: Vec<Outcome> = thread::scope(|s| {
        let handles: Vec<_> = fixtures
            .into_iter()
            .map(|f| s.spawn(move || run_fixture(f)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("fixture thread panicked"))
            .collect()
    });
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| !o.failures.is_empty()).collect();
    note(&format!(
        "{} cases, {} differ, in {:.1?}",
        outcomes.len(),
        failed.len(),
        started.elapsed()
    ));
    for o in &outcomes {
        note(&format!(
            "  [{}] {}: {}",
            o.fixture,
            o.case,
            if o.failures.is_empty() {
                o.status.as_str()
            } else {
                "DIFFERENT"
            }
        ));
    }
    assert!(
        failed.is_empty(),
        "our agent and Neutron's dnsmasq answered differently:\n{}",
        failed
            .iter()
            .map(|o| format!(
                "\n[{}] {}:\n  {}",
                o.fixture,
                o.case,
                o.failures.join("\n  ")
            ))
            .collect::<String>()
    );
}
