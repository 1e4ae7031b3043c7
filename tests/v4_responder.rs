//! End-to-end tests of the DHCPv4 responder: Neutron-shaped networks in, client requests built
//! with dhcproto, replies decoded with dhcproto (an independent decoder) and checked against
//! what Neutron's dnsmasq would send. Expected option values come from Neutron's
//! `neutron/tests/unit/agent/linux/test_dhcp.py` opts-file expectations.

use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, OptionCode};
use dhcproto::{Decodable, Encodable};
use neutron_dhcp::config::ServeConfig;
use neutron_dhcp::dhcp::link::Link;
use neutron_dhcp::dhcp::v4::{respond, respond_from, Delivery, Ignore, Outcome};
use neutron_dhcp::model::{MacAddr, Network};
use neutron_dhcp::view::NetworkView;
use serde_json::{json, Value};

// Allocation counter (the test binary's global allocator): proves respond() does not
// allocate with a pre-sized buffer.
#[path = "common/alloc_count.rs"]
mod alloc_count;
use alloc_count::allocations;
#[path = "common/rng.rs"]
mod rng;
use rng::XorShift;

// ---------------------------------------------------------------------------------------------
// Neutron fixtures (shapes and values of test_dhcp.py's fakes).

const NET: &str = "cccccccc-cccc-cccc-cccc-cccccccccccc";
const SUB_D: &str = "dddddddd-dddd-dddd-dddd-dddddddddddd"; // 192.168.0.0/24
const SUB_C: &str = "cccccccc-cccc-cccc-cccc-cccccccccccc"; // 192.168.1.0/24
const SUB_E: &str = "eeeeeeee-eeee-eeee-eeee-eeeeeeeeeeee"; // 192.168.1.0/24 variants
const SUB_I: &str = "iiiiiiii-iiii-iiii-iiii-iiiiiiiiiiii"; // 192.168.2.0/24, segment 1
const SUB_J: &str = "jjjjjjjj-jjjj-jjjj-jjjj-jjjjjjjjjjjj"; // 192.168.0.0/24, segment 2
const SUB_F: &str = "ffffffff-ffff-ffff-ffff-ffffffffffff"; // IPv6
const OWN: &str = "own-dhcp-port";
const MAC1: [u8; 6] = [0x00, 0x00, 0x80, 0xaa, 0xbb, 0xcc]; // FakePort1
const MAC2: [u8; 6] = [0x00, 0x00, 0xf3, 0xaa, 0xbb, 0xcc]; // FakePort2
const MAC3: [u8; 6] = [0x00, 0x00, 0x0f, 0xaa, 0xbb, 0xcc]; // FakePort3
const UNKNOWN_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x99];
/// The MAC relayed requests come from in these tests: no port's (a relay off the segment's
/// ports, as a router is).
const RELAY_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn mac_str(m: [u8; 6]) -> String {
    MacAddr(m).to_string()
}

#[allow(clippy::too_many_arguments)]
fn subnet4(
    id: &str,
    cidr: &str,
    gw: Option<&str>,
    dns: &[&str],
    routes: &[(&str, &str)],
    segment: Option<&str>,
    dhcp: bool,
) -> Value {
    json!({
        "id": id, "ip_version": 4, "cidr": cidr, "gateway_ip": gw, "enable_dhcp": dhcp,
        "dns_nameservers": dns,
        "host_routes": routes.iter().map(|(d, n)| json!({"destination": d, "nexthop": n})).collect::<Vec<_>>(),
        "segment_id": segment,
    })
}

/// FakeV4Subnet: 192.168.0.0/24, gateway .1, host route 20.0.0.1/24 via 20.0.0.1, DNS 8.8.8.8.
fn fake_v4_subnet() -> Value {
    subnet4(
        SUB_D,
        "192.168.0.0/24",
        Some("192.168.0.1"),
        &["8.8.8.8"],
        &[("20.0.0.1/24", "20.0.0.1")],
        None,
        true,
    )
}

fn fake_v6_subnet() -> Value {
    json!({"id": SUB_F, "ip_version": 6, "cidr": "fdca:3ba5:a17a:4ba3::/64",
           "gateway_ip": "fdca:3ba5:a17a:4ba3::1", "enable_dhcp": true,
           "dns_nameservers": ["2001:0200:feed:7ac0::1"], "ipv6_address_mode": "dhcpv6-stateful"})
}

fn port(id: &str, mac: [u8; 6], owner: &str, ips: &[(&str, &str)]) -> Value {
    json!({
        "id": id, "mac_address": mac_str(mac), "device_owner": owner, "device_id": format!("dev-{id}"),
        "fixed_ips": ips.iter().map(|(s, a)| json!({"subnet_id": s, "ip_address": a})).collect::<Vec<_>>(),
    })
}

fn with_opts(mut p: Value, opts: &[(&str, Option<&str>)]) -> Value {
    p["extra_dhcp_opts"] = opts
        .iter()
        .map(|(n, v)| json!({"opt_name": n, "opt_value": v, "ip_version": 4}))
        .collect::<Vec<_>>()
        .into();
    p
}

fn own_port(ips: &[(&str, &str)]) -> Value {
    port(
        OWN,
        [0x00, 0x00, 0x80, 0xaa, 0xbb, 0xee],
        "network:dhcp",
        ips,
    )
}

fn router_port(id: &str, owner: &str, subnet: &str, addr: &str) -> Value {
    port(
        id,
        [0x00, 0x00, 0x0f, 0x11, 0x11, 0x11],
        owner,
        &[(subnet, addr)],
    )
}

fn network(subnets: Vec<Value>, non_local: Vec<Value>, ports: Vec<Value>, mtu: u32) -> Network {
    Network::from_json(&json!({
        "id": NET, "mtu": mtu, "subnets": subnets, "non_local_subnets": non_local, "ports": ports,
    }))
    .unwrap()
}

/// Neutron's unit tests run with `enable_isolated_metadata = True`.
fn neutron_test_cfg() -> ServeConfig {
    ServeConfig {
        enable_isolated_metadata: true,
        ..ServeConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Client side: requests with dhcproto, replies decoded with dhcproto.

const FULL_PRL: [u8; 12] = [1, 3, 6, 12, 15, 26, 28, 42, 66, 67, 121, 249];

fn base(mac: [u8; 6], ty: MessageType) -> Message {
    let z = Ipv4Addr::UNSPECIFIED;
    let mut m = Message::new_with_id(0x1234_5678, z, z, z, z, &mac);
    m.opts_mut().insert(DhcpOption::MessageType(ty));
    m
}

fn prl(m: &mut Message, codes: &[u8]) {
    m.opts_mut().insert(DhcpOption::ParameterRequestList(
        codes.iter().map(|&c| OptionCode::from(c)).collect(),
    ));
}

fn encode(m: &Message) -> Vec<u8> {
    m.to_vec().unwrap()
}

/// Appends raw TLVs before END (for options dhcproto cannot build the way a test needs).
fn with_raw(mut bytes: Vec<u8>, raw: &[u8]) -> Vec<u8> {
    assert_eq!(bytes.pop(), Some(255));
    bytes.extend_from_slice(raw);
    bytes.push(255);
    bytes
}

fn discover(mac: [u8; 6], codes: Option<&[u8]>) -> Vec<u8> {
    let mut m = base(mac, MessageType::Discover);
    if let Some(c) = codes {
        prl(&mut m, c);
    }
    encode(&m)
}

fn selecting(mac: [u8; 6], server: &str, want: &str) -> Vec<u8> {
    let mut m = base(mac, MessageType::Request);
    m.opts_mut()
        .insert(DhcpOption::ServerIdentifier(ip(server)));
    m.opts_mut()
        .insert(DhcpOption::RequestedIpAddress(ip(want)));
    prl(&mut m, &FULL_PRL);
    encode(&m)
}

fn init_reboot(mac: [u8; 6], want: &str) -> Vec<u8> {
    let mut m = base(mac, MessageType::Request);
    m.opts_mut()
        .insert(DhcpOption::RequestedIpAddress(ip(want)));
    encode(&m)
}

fn renewing(mac: [u8; 6], ciaddr: &str) -> Vec<u8> {
    let mut m = base(mac, MessageType::Request);
    m.set_ciaddr(ip(ciaddr));
    encode(&m)
}

/// The request answered as the shell does, its frame seen from [`RELAY_MAC`] (which only
/// counts for relayed requests).
fn answer(view: &NetworkView, req: &[u8]) -> (Outcome, Vec<u8>) {
    answer_from(view, req, Link::Seen(MacAddr(RELAY_MAC)))
}

fn answer_from(view: &NetworkView, req: &[u8], link: Link) -> (Outcome, Vec<u8>) {
    let mut out = Vec::with_capacity(1500);
    let o = respond_from(req, link, view, &mut out);
    (o, out)
}

/// Runs the request and decodes the reply with dhcproto.
fn reply(view: &NetworkView, req: &[u8]) -> (Delivery, Ipv4Addr, Message, Vec<u8>) {
    let (o, out) = answer(view, req);
    match o {
        Outcome::Reply {
            delivery,
            server_ip,
        } => {
            let msg = Message::from_bytes(&out).expect("dhcproto decodes our reply");
            (delivery, server_ip, msg, out)
        }
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn ignored(view: &NetworkView, req: &[u8]) -> Ignore {
    match answer(view, req).0 {
        Outcome::Ignored(i) => i,
        other => panic!("expected Ignored, got {other:?}"),
    }
}

fn msg_type(m: &Message) -> MessageType {
    m.opts().msg_type().unwrap()
}

/// Raw data of option `code` in an encoded reply, read with a scanner independent of ours.
fn raw_opt(reply: &[u8], code: u8) -> Option<Vec<u8>> {
    let mut i = 240;
    while i < reply.len() {
        match reply[i] {
            0 => i += 1,
            255 => return None,
            c => {
                let len = reply[i + 1] as usize;
                if c == code {
                    return Some(reply[i + 2..i + 2 + len].to_vec());
                }
                i += 2 + len;
            }
        }
    }
    None
}

fn routes(m: &Message) -> Option<String> {
    match m.opts().get(OptionCode::ClasslessStaticRoute)? {
        DhcpOption::ClasslessStaticRoute(r) => Some(
            r.iter()
                .map(|(n, g)| format!("{n},{g}"))
                .collect::<Vec<_>>()
                .join(","),
        ),
        other => panic!("unexpected {other:?}"),
    }
}

fn addrs(m: &Message, code: OptionCode) -> Option<Vec<Ipv4Addr>> {
    match m.opts().get(code)? {
        DhcpOption::DomainNameServer(v) | DhcpOption::Router(v) => Some(v.clone()),
        other => panic!("unexpected {other:?}"),
    }
}

fn text(m: &Message, code: OptionCode) -> Option<String> {
    match m.opts().get(code)? {
        DhcpOption::Hostname(s) | DhcpOption::DomainName(s) | DhcpOption::Message(s) => {
            Some(s.clone())
        }
        DhcpOption::BootfileName(b) | DhcpOption::TFTPServerName(b) => {
            Some(String::from_utf8(b.clone()).unwrap())
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn u32_opt(m: &Message, code: OptionCode) -> Option<u32> {
    match m.opts().get(code)? {
        DhcpOption::AddressLeaseTime(v) | DhcpOption::Renewal(v) | DhcpOption::Rebinding(v) => {
            Some(*v)
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn server_id(m: &Message) -> Ipv4Addr {
    match m.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(a)) => *a,
        other => panic!("no server id: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Neutron opts-file expectations, checked on the wire.

struct OptsCase {
    name: &'static str,
    net: Network,
    cfg: ServeConfig,
    client: [u8; 6],
    /// giaddr for relayed clients.
    relay: Option<&'static str>,
    yiaddr: &'static str,
    /// Option 121 (and 249) as decoded (`net/len,gw,...`; host bits beyond the prefix octets
    /// cannot travel in RFC 3442), `None` = not sent.
    routes: Option<&'static str>,
    /// Option 6, `None` = not sent even though requested.
    dns: Option<&'static [&'static str]>,
    router: Option<&'static str>,
    server: &'static str,
}

fn opts_cases() -> Vec<OptsCase> {
    let port1 = || port("port1", MAC1, "foo1", &[(SUB_D, "192.168.0.2")]);
    let router = || router_port("router", "network:router_interface", SUB_D, "192.168.0.1");
    let v4_subnet_no_extras = |dns: &[&str]| {
        subnet4(
            SUB_D,
            "192.168.0.0/24",
            Some("192.168.0.1"),
            dns,
            &[],
            None,
            true,
        )
    };
    vec![
        // test_output_opts_file (FakeDualNetwork): host route, router interface on the gateway.
        OptsCase {
            name: "dual network",
            net: network(
                vec![fake_v4_subnet(), fake_v6_subnet()],
                vec![],
                vec![
                    port1(),
                    port("v6port", MAC2, "foo3", &[(SUB_F, "fdca:3ba5:a17a:4ba3::2")]),
                    port("dual", MAC3, "foo3", &[(SUB_D, "192.168.0.3"), (SUB_F, "fdca:3ba5:a17a:4ba3::3")]),
                    port("ha", [0, 0, 0x0f, 0xaa, 0xaa, 0xaa], "network:router_ha_interface", &[(SUB_D, "169.254.169.20")]),
                    router(),
                    own_port(&[(SUB_D, "192.168.0.10")]),
                ],
                1450,
            ),
            cfg: neutron_test_cfg(),
            client: MAC3,
            relay: None,
            yiaddr: "192.168.0.3",
            routes: Some("20.0.0.0/24,20.0.0.1,169.254.169.254/32,192.168.0.1,0.0.0.0/0,192.168.0.1"),
            dns: Some(&["8.8.8.8"]),
            router: Some("192.168.0.1"),
            server: "192.168.0.10",
        },
        // test_output_opts_file_gateway_route: a 0.0.0.0/0 host route is dropped when the
        // subnet has a gateway.
        OptsCase {
            name: "gateway route",
            net: network(
                vec![subnet4(SUB_D, "192.168.0.0/24", Some("192.168.0.1"), &["8.8.8.8"], &[("0.0.0.0/0", "10.0.0.1")], None, true)],
                vec![],
                vec![port1(), router(), own_port(&[(SUB_D, "192.168.0.10")])],
                1450,
            ),
            cfg: neutron_test_cfg(),
            client: MAC1,
            relay: None,
            yiaddr: "192.168.0.2",
            routes: Some("169.254.169.254/32,192.168.0.1,0.0.0.0/0,192.168.0.1"),
            dns: Some(&["8.8.8.8"]),
            router: Some("192.168.0.1"),
            server: "192.168.0.10",
        },
        // A 0.0.0.0/0 host route provides the gateway when the subnet has none.
        OptsCase {
            name: "gateway from host route",
            net: network(
                vec![subnet4(SUB_D, "192.168.0.0/24", None, &["8.8.8.8"], &[("0.0.0.0/0", "192.168.0.254")], None, true)],
                vec![],
                vec![port1(), own_port(&[(SUB_D, "192.168.0.10")])],
                1450,
            ),
            cfg: ServeConfig::default(),
            client: MAC1,
            relay: None,
            yiaddr: "192.168.0.2",
            routes: None,
            dns: Some(&["8.8.8.8"]),
            router: Some("192.168.0.254"),
            server: "192.168.0.10",
        },
        // test_output_opts_file_multiple_agents_without_dns_provided.
        OptsCase {
            name: "multiple agents without dns",
            net: network(
                vec![v4_subnet_no_extras(&[])],
                vec![],
                vec![
                    port1(),
                    router(),
                    port(OWN, [0, 0, 0x0f, 0xdd, 0xdd, 0xdd], "network:dhcp", &[(SUB_D, "192.168.0.5")]),
                    port("agent2", [0, 0, 0x0f, 0xee, 0xee, 0xee], "network:dhcp", &[(SUB_D, "192.168.0.6")]),
                ],
                1450,
            ),
            cfg: neutron_test_cfg(),
            client: MAC1,
            relay: None,
            yiaddr: "192.168.0.2",
            routes: Some("169.254.169.254/32,192.168.0.1,0.0.0.0/0,192.168.0.1"),
            dns: Some(&["192.168.0.5", "192.168.0.6"]),
            router: Some("192.168.0.1"),
            server: "192.168.0.5",
        },
        // test_output_opts_file_agent_dns_provided: one agent, no DNS => dnsmasq's own address.
        OptsCase {
            name: "single agent without dns",
            net: network(
                vec![v4_subnet_no_extras(&[])],
                vec![],
                vec![port1(), router(), own_port(&[(SUB_D, "192.168.0.5")])],
                1450,
            ),
            cfg: neutron_test_cfg(),
            client: MAC1,
            relay: None,
            yiaddr: "192.168.0.2",
            routes: Some("169.254.169.254/32,192.168.0.1,0.0.0.0/0,192.168.0.1"),
            dns: Some(&["192.168.0.5"]),
            router: Some("192.168.0.1"),
            server: "192.168.0.5",
        },
        // test_output_opts_file_agent_with_many_dns_provided: order preserved.
        OptsCase {
            name: "many dns",
            net: network(
                vec![v4_subnet_no_extras(&["2.2.2.2", "9.9.9.9", "1.1.1.1", "3.3.3.3"])],
                vec![],
                vec![port1(), router(), own_port(&[(SUB_D, "192.168.0.5")])],
                1450,
            ),
            cfg: neutron_test_cfg(),
            client: MAC1,
            relay: None,
            yiaddr: "192.168.0.2",
            routes: Some("169.254.169.254/32,192.168.0.1,0.0.0.0/0,192.168.0.1"),
            dns: Some(&["2.2.2.2", "9.9.9.9", "1.1.1.1", "3.3.3.3"]),
            router: Some("192.168.0.1"),
            server: "192.168.0.5",
        },
        // test_output_opts_file_agent_with_no_dns_provided: ["0.0.0.0"] => no option 6 at all.
        OptsCase {
            name: "dns 0.0.0.0",
            net: network(
                vec![v4_subnet_no_extras(&["0.0.0.0"])],
                vec![],
                vec![port1(), router(), own_port(&[(SUB_D, "192.168.0.5")])],
                1450,
            ),
            cfg: neutron_test_cfg(),
            client: MAC1,
            relay: None,
            yiaddr: "192.168.0.2",
            routes: Some("169.254.169.254/32,192.168.0.1,0.0.0.0/0,192.168.0.1"),
            dns: None,
            router: Some("192.168.0.1"),
            server: "192.168.0.5",
        },
        // test_output_opts_file_single_dhcp: on-link route for a DHCP-disabled subnet too.
        OptsCase {
            name: "single dhcp subnet",
            net: network(
                vec![fake_v4_subnet(), subnet4(SUB_E, "192.168.1.0/24", Some("192.168.1.1"), &[], &[], None, false)],
                vec![],
                vec![port1(), router(), own_port(&[(SUB_D, "192.168.0.10")])],
                1450,
            ),
            cfg: neutron_test_cfg(),
            client: MAC1,
            relay: None,
            yiaddr: "192.168.0.2",
            routes: Some("192.168.1.0/24,0.0.0.0,20.0.0.0/24,20.0.0.1,169.254.169.254/32,192.168.0.1,0.0.0.0/0,192.168.0.1"),
            dns: Some(&["8.8.8.8"]),
            router: Some("192.168.0.1"),
            server: "192.168.0.10",
        },
        // test_output_opts_file_dual_dhcp_rfc3442, subnet cccc.
        OptsCase {
            name: "dual dhcp rfc3442",
            net: network(
                vec![fake_v4_subnet(), subnet4(SUB_C, "192.168.1.0/24", Some("192.168.1.1"), &["8.8.8.8"], &[], None, true)],
                vec![],
                vec![
                    port1(),
                    port("port3", MAC3, "foo3", &[(SUB_C, "192.168.1.2")]),
                    router(),
                    router_port("router2", "network:router_interface", SUB_C, "192.168.1.1"),
                    own_port(&[(SUB_D, "192.168.0.10"), (SUB_C, "192.168.1.10")]),
                ],
                1450,
            ),
            cfg: neutron_test_cfg(),
            client: MAC3,
            relay: None,
            yiaddr: "192.168.1.2",
            routes: Some("192.168.0.0/24,0.0.0.0,169.254.169.254/32,192.168.1.1,0.0.0.0/0,192.168.1.1"),
            dns: Some(&["8.8.8.8"]),
            router: Some("192.168.1.1"),
            server: "192.168.1.10",
        },
        // ... and subnet dddd of the same network.
        OptsCase {
            name: "dual dhcp rfc3442 other subnet",
            net: network(
                vec![fake_v4_subnet(), subnet4(SUB_C, "192.168.1.0/24", Some("192.168.1.1"), &["8.8.8.8"], &[], None, true)],
                vec![],
                vec![
                    port1(),
                    router(),
                    router_port("router2", "network:router_interface", SUB_C, "192.168.1.1"),
                    own_port(&[(SUB_D, "192.168.0.10"), (SUB_C, "192.168.1.10")]),
                ],
                1450,
            ),
            cfg: neutron_test_cfg(),
            client: MAC1,
            relay: None,
            yiaddr: "192.168.0.2",
            routes: Some("192.168.1.0/24,0.0.0.0,20.0.0.0/24,20.0.0.1,169.254.169.254/32,192.168.0.1,0.0.0.0/0,192.168.0.1"),
            dns: Some(&["8.8.8.8"]),
            router: Some("192.168.0.1"),
            server: "192.168.0.10",
        },
        // test_output_opts_file_dual_dhcp_rfc3442_no_on_link_subnet_routes: other segment.
        OptsCase {
            name: "no on-link route across segments",
            net: network(
                vec![fake_v4_subnet(), subnet4(SUB_I, "192.168.2.0/24", Some("192.168.2.1"), &["8.8.8.8"], &[], Some("1"), true)],
                vec![],
                vec![
                    port1(),
                    port("port3", MAC3, "foo3", &[(SUB_I, "192.168.2.2")]),
                    router(),
                    router_port("router3", "network:router_interface", SUB_I, "192.168.2.1"),
                    own_port(&[(SUB_D, "192.168.0.10"), (SUB_I, "192.168.2.10")]),
                ],
                1450,
            ),
            cfg: neutron_test_cfg(),
            client: MAC3,
            relay: None,
            yiaddr: "192.168.2.2",
            routes: Some("169.254.169.254/32,192.168.2.1,0.0.0.0/0,192.168.2.1"),
            dns: Some(&["8.8.8.8"]),
            router: Some("192.168.2.1"),
            server: "192.168.2.10",
        },
        // test_output_opts_file_dual_dhcp_rfc3442_one_on_link_subnet_route, subnet dddd.
        OptsCase {
            name: "three subnets, one on-link route",
            net: network(
                vec![
                    fake_v4_subnet(),
                    subnet4(SUB_C, "192.168.1.0/24", Some("192.168.1.1"), &["8.8.8.8"], &[], None, true),
                    subnet4(SUB_I, "192.168.2.0/24", Some("192.168.2.1"), &["8.8.8.8"], &[], Some("1"), true),
                ],
                vec![],
                vec![
                    port1(),
                    router(),
                    router_port("router2", "network:router_interface", SUB_C, "192.168.1.1"),
                    router_port("router3", "network:router_interface", SUB_I, "192.168.2.1"),
                    own_port(&[(SUB_D, "192.168.0.10"), (SUB_C, "192.168.1.10"), (SUB_I, "192.168.2.10")]),
                ],
                1450,
            ),
            cfg: neutron_test_cfg(),
            client: MAC1,
            relay: None,
            yiaddr: "192.168.0.2",
            routes: Some("192.168.1.0/24,0.0.0.0,20.0.0.0/24,20.0.0.1,169.254.169.254/32,192.168.0.1,0.0.0.0/0,192.168.0.1"),
            dns: Some(&["8.8.8.8"]),
            router: Some("192.168.0.1"),
            server: "192.168.0.10",
        },
        // test_output_opts_file_no_gateway: isolated, metadata via our address, no router.
        OptsCase {
            name: "no gateway",
            net: network(
                vec![subnet4(SUB_E, "192.168.1.0/24", None, &[], &[], None, true)],
                vec![],
                vec![port("port1", MAC1, "foo1", &[(SUB_E, "192.168.1.2")]), own_port(&[(SUB_E, "192.168.1.1")])],
                1450,
            ),
            cfg: neutron_test_cfg(),
            client: MAC1,
            relay: None,
            yiaddr: "192.168.1.2",
            routes: Some("169.254.169.254/32,192.168.1.1"),
            dns: Some(&["192.168.1.1"]),
            router: None,
            server: "192.168.1.1",
        },
        // test_output_opts_file_no_neutron_router_on_subnet: isolated with a gateway.
        OptsCase {
            name: "no neutron router on subnet",
            net: network(
                vec![subnet4(SUB_E, "192.168.1.0/24", Some("192.168.1.1"), &[], &[], None, true)],
                vec![],
                vec![port("port1", MAC1, "foo1", &[(SUB_E, "192.168.1.3")]), own_port(&[(SUB_E, "192.168.1.2")])],
                1450,
            ),
            cfg: neutron_test_cfg(),
            client: MAC1,
            relay: None,
            yiaddr: "192.168.1.3",
            routes: Some("169.254.169.254/32,192.168.1.2,0.0.0.0/0,192.168.1.1"),
            dns: Some(&["192.168.1.2"]),
            router: Some("192.168.1.1"),
            server: "192.168.1.2",
        },
        // Isolated but enable_isolated_metadata off: no metadata route (test_output_opts_file_pxe_port).
        OptsCase {
            name: "isolated without isolated metadata",
            net: network(vec![fake_v4_subnet()], vec![], vec![port1(), own_port(&[(SUB_D, "192.168.0.10")])], 1450),
            cfg: ServeConfig::default(),
            client: MAC1,
            relay: None,
            yiaddr: "192.168.0.2",
            routes: Some("20.0.0.0/24,20.0.0.1,0.0.0.0/0,192.168.0.1"),
            dns: Some(&["8.8.8.8"]),
            router: Some("192.168.0.1"),
            server: "192.168.0.10",
        },
        // force_metadata: via our address even with a router on the subnet.
        OptsCase {
            name: "force metadata",
            net: network(vec![fake_v4_subnet()], vec![], vec![port1(), router(), own_port(&[(SUB_D, "192.168.0.10")])], 1450),
            cfg: ServeConfig { force_metadata: true, ..ServeConfig::default() },
            client: MAC1,
            relay: None,
            yiaddr: "192.168.0.2",
            routes: Some("20.0.0.0/24,20.0.0.1,169.254.169.254/32,192.168.0.10,0.0.0.0/0,192.168.0.1"),
            dns: Some(&["8.8.8.8"]),
            router: Some("192.168.0.1"),
            server: "192.168.0.10",
        },
        // test_output_opts_file_dist_neutron_router_on_subnet: DVR interface counts as router.
        OptsCase {
            name: "distributed router",
            net: network(
                vec![fake_v4_subnet()],
                vec![],
                vec![port1(), router_port("dvr", "network:router_interface_distributed", SUB_D, "192.168.0.1"), own_port(&[(SUB_D, "192.168.0.10")])],
                1450,
            ),
            cfg: neutron_test_cfg(),
            client: MAC1,
            relay: None,
            yiaddr: "192.168.0.2",
            routes: Some("20.0.0.0/24,20.0.0.1,169.254.169.254/32,192.168.0.1,0.0.0.0/0,192.168.0.1"),
            dns: Some(&["8.8.8.8"]),
            router: Some("192.168.0.1"),
            server: "192.168.0.10",
        },
        // OVN metadata port on the subnet wins (reference §9.6).
        OptsCase {
            name: "ovn metadata port",
            net: network(
                vec![fake_v4_subnet()],
                vec![],
                vec![
                    port1(),
                    {
                        let mut p = port("meta", [0, 0, 0x80, 0xaa, 0xbb, 0xef], "network:distributed", &[(SUB_D, "192.168.0.20")]);
                        p["device_id"] = json!("ovnmeta-aaaa");
                        p
                    },
                    own_port(&[(SUB_D, "192.168.0.10")]),
                ],
                1450,
            ),
            cfg: neutron_test_cfg(),
            client: MAC1,
            relay: None,
            yiaddr: "192.168.0.2",
            routes: Some("20.0.0.0/24,20.0.0.1,169.254.169.254/32,192.168.0.20,0.0.0.0/0,192.168.0.1"),
            dns: Some(&["8.8.8.8"]),
            router: Some("192.168.0.1"),
            server: "192.168.0.10",
        },
        // test_non_local_subnets, local subnet jjjj (isolated: the router port is on dddd).
        OptsCase {
            name: "non-local: local subnet",
            net: non_local_net(),
            cfg: neutron_test_cfg(),
            client: MAC1,
            relay: None,
            yiaddr: "192.168.0.2",
            routes: Some("169.254.169.254/32,192.168.0.1,0.0.0.0/0,192.168.0.1"),
            dns: Some(&["8.8.8.8"]),
            router: Some("192.168.0.1"),
            server: "192.168.0.1",
        },
        // test_non_local_subnets, non-local subnet iiii, reached through a relay.
        OptsCase {
            name: "non-local: relayed subnet",
            net: non_local_net(),
            cfg: neutron_test_cfg(),
            client: MAC3,
            relay: Some("192.168.2.1"),
            yiaddr: "192.168.2.5",
            routes: Some("169.254.169.254/32,192.168.2.1,0.0.0.0/0,192.168.2.1"),
            dns: Some(&["8.8.8.8"]),
            router: Some("192.168.2.1"),
            server: "192.168.0.1",
        },
    ]
}

/// FakeNonLocalSubnets: local jjjj (segment 2), non-local iiii (segment 1).
fn non_local_net() -> Network {
    network(
        vec![subnet4(
            SUB_J,
            "192.168.0.0/24",
            Some("192.168.0.1"),
            &["8.8.8.8"],
            &[],
            Some("2"),
            true,
        )],
        vec![subnet4(
            SUB_I,
            "192.168.2.0/24",
            Some("192.168.2.1"),
            &["8.8.8.8"],
            &[],
            Some("1"),
            true,
        )],
        vec![
            port("port1", MAC1, "foo1", &[(SUB_J, "192.168.0.2")]),
            port("remote", MAC3, "compute:nova", &[(SUB_I, "192.168.2.5")]),
            router_port("router", "network:router_interface", SUB_D, "192.168.0.1"),
            router_port("router3", "network:router_interface", SUB_I, "192.168.2.1"),
            own_port(&[(SUB_J, "192.168.0.1")]),
        ],
        1450,
    )
}

#[test]
fn neutron_opts_files_on_the_wire() {
    for case in opts_cases() {
        let view = NetworkView::build(&case.net, OWN, &case.cfg);
        let mut m = base(case.client, MessageType::Discover);
        prl(&mut m, &FULL_PRL);
        if let Some(g) = case.relay {
            m.set_giaddr(ip(g));
        }
        let (_, server, offer, raw) = reply(&view, &encode(&m));
        let n = case.name;
        assert_eq!(msg_type(&offer), MessageType::Offer, "{n}");
        assert_eq!(offer.yiaddr(), ip(case.yiaddr), "{n}");
        assert_eq!(server, ip(case.server), "{n}");
        assert_eq!(server_id(&offer), ip(case.server), "{n}");
        assert_eq!(routes(&offer).as_deref(), case.routes, "{n}: option 121");
        assert_eq!(
            raw_opt(&raw, 249),
            raw_opt(&raw, 121),
            "{n}: option 249 mirrors 121"
        );
        let dns = case
            .dns
            .map(|d| d.iter().map(|a| ip(a)).collect::<Vec<_>>());
        assert_eq!(
            addrs(&offer, OptionCode::DomainNameServer),
            dns,
            "{n}: option 6"
        );
        assert_eq!(
            addrs(&offer, OptionCode::Router),
            case.router.map(|r| vec![ip(r)]),
            "{n}: option 3"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A standard network for protocol behaviour.

fn std_net_with(ports: Vec<Value>, mtu: u32) -> Network {
    let mut all = vec![
        port("port1", MAC1, "compute:nova", &[(SUB_D, "192.168.0.2")]),
        {
            let mut p = port("port2", MAC2, "compute:nova", &[(SUB_D, "192.168.0.3")]);
            p["dns_assignment"] = json!([{"ip_address": "192.168.0.3", "hostname": "myvm", "fqdn": "myvm.openstacklocal."}]);
            p
        },
        router_port("router", "network:router_interface", SUB_D, "192.168.0.1"),
        own_port(&[(SUB_D, "192.168.0.10")]),
    ];
    all.extend(ports);
    network(vec![fake_v4_subnet()], vec![], all, mtu)
}

fn std_view() -> NetworkView {
    NetworkView::build(&std_net_with(vec![], 1450), OWN, &ServeConfig::default())
}

#[test]
fn offer_carries_address_lease_and_always_sent_options() {
    let view = std_view();
    let (delivery, server, offer, raw) = reply(&view, &discover(MAC1, Some(&[3])));
    assert_eq!(
        delivery,
        Delivery::Unicast {
            mac: MAC1,
            ip: ip("192.168.0.2")
        }
    );
    assert_eq!(server, ip("192.168.0.10"));
    assert_eq!(offer.opcode(), dhcproto::v4::Opcode::BootReply);
    assert_eq!(offer.xid(), 0x1234_5678);
    assert_eq!(offer.yiaddr(), ip("192.168.0.2"));
    assert_eq!(offer.ciaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(
        offer.siaddr(),
        ip("192.168.0.10"),
        "dnsmasq puts its address in siaddr"
    );
    assert_eq!(offer.chaddr(), &MAC1);
    assert_eq!(u32_opt(&offer, OptionCode::AddressLeaseTime), Some(86400));
    assert_eq!(u32_opt(&offer, OptionCode::Renewal), Some(43200));
    assert_eq!(u32_opt(&offer, OptionCode::Rebinding), Some(75600));
    assert_eq!(
        offer.opts().get(OptionCode::SubnetMask),
        Some(&DhcpOption::SubnetMask(ip("255.255.255.0")))
    );
    assert_eq!(
        offer.opts().get(OptionCode::BroadcastAddr),
        Some(&DhcpOption::BroadcastAddr(ip("192.168.0.255")))
    );
    assert_eq!(
        offer.opts().get(OptionCode::InterfaceMtu),
        Some(&DhcpOption::InterfaceMtu(1450)),
        "MTU is forced"
    );
    assert_eq!(
        addrs(&offer, OptionCode::Router),
        Some(vec![ip("192.168.0.1")])
    );
    // Not requested: not sent.
    for code in [
        OptionCode::DomainNameServer,
        OptionCode::ClasslessStaticRoute,
        OptionCode::DomainName,
        OptionCode::Hostname,
    ] {
        assert!(offer.opts().get(code).is_none(), "{code:?}");
    }
    assert!(raw_opt(&raw, 249).is_none());
    assert!(raw.len() >= 300, "padded to the BOOTP minimum");
}

#[test]
fn no_parameter_request_list_means_everything() {
    let view = std_view();
    let (_, _, offer, raw) = reply(&view, &discover(MAC2, None));
    assert_eq!(
        addrs(&offer, OptionCode::DomainNameServer),
        Some(vec![ip("8.8.8.8")])
    );
    assert!(routes(&offer).is_some());
    assert!(raw_opt(&raw, 249).is_some());
    assert_eq!(
        text(&offer, OptionCode::DomainName).as_deref(),
        Some("openstacklocal")
    );
    assert_eq!(text(&offer, OptionCode::Hostname).as_deref(), Some("myvm"));
}

#[test]
fn empty_parameter_request_list_means_only_the_always_sent_ones() {
    let view = std_view();
    // dhcproto drops an empty option 55, so add it raw.
    let (_, _, offer, _) = reply(&view, &with_raw(discover(MAC1, None), &[55, 0]));
    let mut codes: Vec<u8> = offer.opts().iter().map(|(c, _)| u8::from(*c)).collect();
    codes.sort();
    assert_eq!(codes, vec![1, 26, 28, 51, 53, 54, 58, 59]);
}

#[test]
fn hostname_and_domain_when_requested() {
    let view = std_view();
    let (_, _, offer, _) = reply(&view, &discover(MAC1, Some(&[12, 15])));
    assert_eq!(
        text(&offer, OptionCode::Hostname).as_deref(),
        Some("host-192-168-0-2")
    );
    assert_eq!(
        text(&offer, OptionCode::DomainName).as_deref(),
        Some("openstacklocal")
    );
    let (_, _, offer, _) = reply(&view, &discover(MAC2, Some(&[12])));
    assert_eq!(
        text(&offer, OptionCode::Hostname).as_deref(),
        Some("myvm"),
        "from dns_assignment"
    );
    // Empty dns_domain: no option 15.
    let cfg = ServeConfig {
        dns_domain: String::new(),
        ..ServeConfig::default()
    };
    let view = NetworkView::build(&std_net_with(vec![], 1450), OWN, &cfg);
    let (_, _, offer, _) = reply(&view, &discover(MAC1, Some(&[12, 15])));
    assert!(offer.opts().get(OptionCode::DomainName).is_none());
    assert_eq!(
        text(&offer, OptionCode::Hostname).as_deref(),
        Some("host-192-168-0-2")
    );
}

#[test]
fn offer_does_not_contradict_the_clients_own_hostname() {
    let view = std_view();
    let mut m = base(MAC2, MessageType::Discover);
    prl(&mut m, &[12]);
    m.opts_mut()
        .insert(DhcpOption::Hostname("other-name".into()));
    let (_, _, offer, _) = reply(&view, &encode(&m));
    assert!(
        offer.opts().get(OptionCode::Hostname).is_none(),
        "dnsmasq: no option 12 in that OFFER"
    );
    m.opts_mut().insert(DhcpOption::Hostname("MYVM".into()));
    let (_, _, offer, _) = reply(&view, &encode(&m));
    assert_eq!(text(&offer, OptionCode::Hostname).as_deref(), Some("myvm"));
    // The ACK always names the host.
    let mut r = base(MAC2, MessageType::Request);
    prl(&mut r, &[12]);
    r.opts_mut()
        .insert(DhcpOption::Hostname("other-name".into()));
    r.opts_mut()
        .insert(DhcpOption::RequestedIpAddress(ip("192.168.0.3")));
    let (_, _, ack, _) = reply(&view, &encode(&r));
    assert_eq!(text(&ack, OptionCode::Hostname).as_deref(), Some("myvm"));
}

#[test]
fn client_fqdn_is_answered() {
    let view = std_view();
    // Flags 0 (client wants the server to update A), ASCII name.
    let req = with_raw(discover(MAC2, Some(&[1])), &[81, 3, 0, 0, 0]);
    let (_, _, _, raw) = reply(&view, &req);
    let fqdn = raw_opt(&raw, 81).unwrap();
    assert_eq!(
        fqdn,
        [&[0x03u8, 255, 255][..], b"myvm.openstacklocal"].concat()
    );
    // E flag: wire-format name.
    let req = with_raw(discover(MAC2, Some(&[1])), &[81, 3, 0x05, 0, 0]);
    let (_, _, _, raw) = reply(&view, &req);
    let fqdn = raw_opt(&raw, 81).unwrap();
    assert_eq!(
        fqdn,
        [&[0x05u8, 255, 255][..], b"\x04myvm\x0eopenstacklocal\x00"].concat()
    );
}

#[test]
fn unknown_and_excluded_clients_get_nothing() {
    let extra = vec![
        port(
            "fip",
            [0, 0, 1, 1, 1, 1],
            "network:floatingip",
            &[(SUB_D, "192.168.0.50")],
        ),
        port(
            "ha",
            [0, 0, 1, 1, 1, 2],
            "network:router_ha_interface",
            &[(SUB_D, "192.168.0.51")],
        ),
        port(
            "dist",
            [0, 0, 1, 1, 1, 3],
            "network:distributed",
            &[(SUB_D, "192.168.0.52")],
        ),
        port(
            "agent2",
            [0, 0, 1, 1, 1, 4],
            "network:dhcp",
            &[(SUB_D, "192.168.0.53")],
        ),
    ];
    let view = NetworkView::build(&std_net_with(extra, 1450), OWN, &ServeConfig::default());
    for mac in [
        UNKNOWN_MAC,
        [0, 0, 1, 1, 1, 1],
        [0, 0, 1, 1, 1, 2],
        [0, 0, 1, 1, 1, 3],
        [0, 0, 1, 1, 1, 4],
    ] {
        assert_eq!(
            ignored(&view, &discover(mac, None)),
            Ignore::UnknownClient { mac: MacAddr(mac) }
        );
        assert!(!view.serves_mac(&MacAddr(mac)));
    }
    assert!(view.serves_mac(&MacAddr(MAC1)));
    // Router interfaces are served (dnsmasq had host entries for them).
    assert!(view.serves_mac(&MacAddr([0x00, 0x00, 0x0f, 0x11, 0x11, 0x11])));
    assert_eq!(view.v4_binding_count(), 3);
    assert_eq!(view.network_id(), NET);
}

#[test]
fn client_id_matching_like_dnsmasq() {
    let ports = vec![
        with_opts(
            port(
                "p5",
                [0, 0, 0x0f, 0xaa, 0xbb, 0x55],
                "foo5",
                &[(SUB_D, "192.168.0.5")],
            ),
            &[("client-id", Some("test5"))],
        ),
        with_opts(
            port(
                "p6",
                [0, 0, 0x0f, 0xaa, 0xbb, 0x66],
                "foo6",
                &[(SUB_D, "192.168.0.6")],
            ),
            &[
                ("client-id", Some("test6")),
                ("dns-server", Some("123.123.123.45")),
            ],
        ),
        with_opts(
            port(
                "p7",
                [0, 0, 0x0f, 0xaa, 0xbb, 0x77],
                "foo7",
                &[(SUB_D, "192.168.0.7")],
            ),
            &[("61", Some("01:02:03"))],
        ),
    ];
    let view = NetworkView::build(&std_net_with(ports, 1450), OWN, &ServeConfig::default());
    let with_id = |mac: [u8; 6], id: &[u8]| {
        let mut m = base(mac, MessageType::Discover);
        prl(&mut m, &[6]);
        m.opts_mut()
            .insert(DhcpOption::ClientIdentifier(id.to_vec()));
        encode(&m)
    };
    // The client-id wins over the MAC, whatever the MAC is.
    let (_, _, o, _) = reply(&view, &with_id(UNKNOWN_MAC, b"test5"));
    assert_eq!(o.yiaddr(), ip("192.168.0.5"));
    let (_, _, o, _) = reply(&view, &with_id(MAC1, b"test6"));
    assert_eq!(o.yiaddr(), ip("192.168.0.6"));
    assert_eq!(
        addrs(&o, OptionCode::DomainNameServer),
        Some(vec![ip("123.123.123.45")]),
        "port options follow the match"
    );
    // dhcpcd's zero-prefixed ASCII client-id.
    let (_, _, o, _) = reply(&view, &with_id(UNKNOWN_MAC, b"\x00test5"));
    assert_eq!(o.yiaddr(), ip("192.168.0.5"));
    // Hex client-id by number.
    let (_, _, o, _) = reply(&view, &with_id(UNKNOWN_MAC, &[1, 2, 3]));
    assert_eq!(o.yiaddr(), ip("192.168.0.7"));
    // The port's MAC still matches with another client-id or none.
    let (_, _, o, _) = reply(
        &view,
        &with_id([0, 0, 0x0f, 0xaa, 0xbb, 0x55], b"something-else"),
    );
    assert_eq!(o.yiaddr(), ip("192.168.0.5"));
    let (_, _, o, _) = reply(&view, &discover([0, 0, 0x0f, 0xaa, 0xbb, 0x55], None));
    assert_eq!(o.yiaddr(), ip("192.168.0.5"));
    // Unknown id and unknown MAC: nothing.
    assert!(matches!(
        ignored(&view, &with_id(UNKNOWN_MAC, b"nope")),
        Ignore::UnknownClient { .. }
    ));
}

#[test]
fn request_selecting() {
    let view = std_view();
    // Our offer accepted.
    let (delivery, server, ack, _) = reply(&view, &selecting(MAC1, "192.168.0.10", "192.168.0.2"));
    assert_eq!(msg_type(&ack), MessageType::Ack);
    assert_eq!(
        (ack.yiaddr(), ack.ciaddr()),
        (ip("192.168.0.2"), Ipv4Addr::UNSPECIFIED)
    );
    assert_eq!(server, ip("192.168.0.10"));
    assert_eq!(
        delivery,
        Delivery::Unicast {
            mac: MAC1,
            ip: ip("192.168.0.2")
        }
    );
    assert!(routes(&ack).is_some());
    // Another server chosen: silently ignored, never NAKed (not authoritative).
    assert_eq!(
        ignored(&view, &selecting(MAC1, "192.168.0.99", "192.168.0.2")),
        Ignore::OtherServer {
            server_id: ip("192.168.0.99")
        }
    );
    // Us, but an address that is not the client's: NAK.
    let (delivery, server, nak, raw) =
        reply(&view, &selecting(MAC1, "192.168.0.10", "192.168.0.3"));
    assert_nak(&nak, &raw, "192.168.0.10");
    assert_eq!(
        (delivery, server),
        (Delivery::Broadcast, ip("192.168.0.10"))
    );
    // A client we do not know selecting us (e.g. its port was deleted): NAK, like dnsmasq.
    let (_, _, nak, raw) = reply(
        &view,
        &selecting(UNKNOWN_MAC, "192.168.0.10", "192.168.0.2"),
    );
    assert_nak(&nak, &raw, "192.168.0.10");
}

fn assert_nak(nak: &Message, raw: &[u8], server: &str) {
    assert_eq!(msg_type(nak), MessageType::Nak);
    assert_eq!(server_id(nak), ip(server));
    assert!(text(nak, OptionCode::Message).is_some());
    assert_eq!(
        (nak.yiaddr(), nak.ciaddr(), nak.siaddr()),
        (
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED
        )
    );
    assert!(nak.flags().broadcast());
    assert!(
        raw_opt(raw, 51).is_none() && raw_opt(raw, 1).is_none(),
        "a NAK carries no configuration"
    );
    assert!(raw.len() >= 300);
}

#[test]
fn request_init_reboot() {
    let view = std_view();
    let (_, _, ack, _) = reply(&view, &init_reboot(MAC1, "192.168.0.2"));
    assert_eq!(
        (msg_type(&ack), ack.yiaddr()),
        (MessageType::Ack, ip("192.168.0.2"))
    );
    // Wrong address in our subnet: NAK.
    let (_, _, nak, raw) = reply(&view, &init_reboot(MAC1, "192.168.0.77"));
    assert_nak(&nak, &raw, "192.168.0.10");
    assert_eq!(
        text(&nak, OptionCode::Message).as_deref(),
        Some("wrong address")
    );
    // Known client back from another network (e.g. a snapshot's stale lease): dnsmasq NAKs
    // too, so the client restarts discovery at once instead of timing out.
    let (_, _, nak, raw) = reply(&view, &init_reboot(MAC1, "10.9.9.9"));
    assert_nak(&nak, &raw, "192.168.0.10");
    // Unknown client: not ours to judge.
    assert_eq!(
        ignored(&view, &init_reboot(UNKNOWN_MAC, "192.168.0.2")),
        Ignore::UnknownClient {
            mac: MacAddr(UNKNOWN_MAC)
        }
    );
}

#[test]
fn request_renewing_and_rebinding() {
    let view = std_view();
    let (delivery, _, ack, _) = reply(&view, &renewing(MAC1, "192.168.0.2"));
    assert_eq!(msg_type(&ack), MessageType::Ack);
    assert_eq!(
        (ack.ciaddr(), ack.yiaddr()),
        (ip("192.168.0.2"), ip("192.168.0.2"))
    );
    assert_eq!(
        delivery,
        Delivery::Ciaddr {
            ip: ip("192.168.0.2")
        }
    );
    assert_eq!(u32_opt(&ack, OptionCode::AddressLeaseTime), Some(86400));
    // Renewing an address in our subnet that is no longer its own: NAK.
    let (delivery, _, nak, raw) = reply(&view, &renewing(MAC1, "192.168.0.3"));
    assert_nak(&nak, &raw, "192.168.0.10");
    assert_eq!(delivery, Delivery::Broadcast);
    // An address we know nothing about: ignore (another server's lease).
    assert_eq!(
        ignored(&view, &renewing(MAC1, "10.0.0.5")),
        Ignore::ForeignAddress {
            mac: MacAddr(MAC1),
            ip: ip("10.0.0.5")
        }
    );
    assert!(matches!(
        ignored(&view, &renewing(UNKNOWN_MAC, "192.168.0.2")),
        Ignore::UnknownClient { .. }
    ));
    // Neither option 50 nor ciaddr.
    let m = base(MAC1, MessageType::Request);
    assert_eq!(
        ignored(&view, &encode(&m)),
        Ignore::NoAddress { mac: MacAddr(MAC1) }
    );
}

#[test]
fn inform_gets_configuration_without_lease() {
    let view = std_view();
    let mut m = base(MAC1, MessageType::Inform);
    m.set_ciaddr(ip("192.168.0.2"));
    prl(&mut m, &[3, 6, 121]);
    let (delivery, _, ack, raw) = reply(&view, &encode(&m));
    assert_eq!(msg_type(&ack), MessageType::Ack);
    assert_eq!(
        (ack.ciaddr(), ack.yiaddr()),
        (ip("192.168.0.2"), Ipv4Addr::UNSPECIFIED)
    );
    assert_eq!(
        delivery,
        Delivery::Ciaddr {
            ip: ip("192.168.0.2")
        }
    );
    for c in [51, 58, 59] {
        assert!(raw_opt(&raw, c).is_none(), "option {c} in INFORM reply");
    }
    assert_eq!(
        addrs(&ack, OptionCode::DomainNameServer),
        Some(vec![ip("8.8.8.8")])
    );
    assert!(routes(&ack).is_some());
    // Unknown clients are answered too (dnsmasq), with the subnet's options.
    let mut m = base(UNKNOWN_MAC, MessageType::Inform);
    m.set_ciaddr(ip("192.168.0.200"));
    let (_, _, ack, _) = reply(&view, &encode(&m));
    assert_eq!(msg_type(&ack), MessageType::Ack);
    // Without ciaddr, or outside our subnets: ignored.
    let m = base(MAC1, MessageType::Inform);
    assert_eq!(
        ignored(&view, &encode(&m)),
        Ignore::InformWithoutAddress { mac: MacAddr(MAC1) }
    );
    let mut m = base(MAC1, MessageType::Inform);
    m.set_ciaddr(ip("10.1.1.1"));
    assert!(matches!(
        ignored(&view, &encode(&m)),
        Ignore::ForeignAddress { .. }
    ));
}

#[test]
fn release_and_decline_are_reported() {
    let view = std_view();
    let mut m = base(MAC1, MessageType::Release);
    m.set_ciaddr(ip("192.168.0.2"));
    m.opts_mut()
        .insert(DhcpOption::ServerIdentifier(ip("192.168.0.10")));
    assert_eq!(
        ignored(&view, &encode(&m)),
        Ignore::Release {
            mac: MacAddr(MAC1),
            ip: ip("192.168.0.2")
        }
    );
    m.opts_mut()
        .insert(DhcpOption::ServerIdentifier(ip("192.168.0.11")));
    assert_eq!(
        ignored(&view, &encode(&m)),
        Ignore::OtherServer {
            server_id: ip("192.168.0.11")
        }
    );
    let mut m = base(MAC1, MessageType::Decline);
    m.opts_mut()
        .insert(DhcpOption::ServerIdentifier(ip("192.168.0.10")));
    m.opts_mut()
        .insert(DhcpOption::RequestedIpAddress(ip("192.168.0.2")));
    let ign = ignored(&view, &encode(&m));
    assert_eq!(
        ign,
        Ignore::Decline {
            mac: MacAddr(MAC1),
            ip: ip("192.168.0.2")
        }
    );
    assert_eq!(
        ign.to_string(),
        "DHCPDECLINE 192.168.0.2 from 00:00:80:aa:bb:cc"
    );
}

#[test]
fn bootreply_and_unsupported_types_are_ignored() {
    let view = std_view();
    let mut b = discover(MAC1, None);
    b[0] = 2;
    assert_eq!(ignored(&view, &b), Ignore::BootReply);
    let m = base(MAC1, MessageType::Offer);
    assert_eq!(
        ignored(&view, &encode(&m)),
        Ignore::UnsupportedMessageType(2)
    );
    let (o, out) = answer(&view, &b[..100]);
    assert!(matches!(o, Outcome::Malformed(_)) && out.is_empty());
}

#[test]
fn relayed_requests() {
    let view = std_view();
    let mut m = base(MAC1, MessageType::Discover);
    m.set_giaddr(ip("192.168.0.1"));
    m.set_hops(1);
    m.set_flags(Flags::default().set_broadcast());
    prl(&mut m, &[1]);
    let agent = [82u8, 6, 1, 4, b'p', b'o', b'r', b't'];
    let req = with_raw(encode(&m), &agent);
    let (delivery, _, offer, raw) = reply(&view, &req);
    assert_eq!(
        delivery,
        Delivery::Relay {
            giaddr: ip("192.168.0.1")
        }
    );
    assert_eq!((offer.giaddr(), offer.hops()), (ip("192.168.0.1"), 1));
    assert!(offer.flags().broadcast(), "flags copied");
    // Option 82 echoed verbatim, as the last option.
    let end = raw.iter().rposition(|&b| b == 255).unwrap();
    let agent_at = raw.windows(agent.len()).position(|w| w == agent).unwrap();
    assert_eq!(agent_at + agent.len(), end, "option 82 right before END");
    assert!(raw[end + 1..].iter().all(|&b| b == 0));
    // A relay from a subnet we do not serve.
    m.set_giaddr(ip("10.5.5.1"));
    assert_eq!(
        ignored(&view, &encode(&m)),
        Ignore::UnservedSubnet {
            link: ip("10.5.5.1")
        }
    );
    // A relayed NAK goes back through the relay.
    let mut r = base(MAC1, MessageType::Request);
    r.set_giaddr(ip("192.168.0.1"));
    r.opts_mut()
        .insert(DhcpOption::RequestedIpAddress(ip("192.168.0.99")));
    let (delivery, _, nak, _) = reply(&view, &encode(&r));
    assert_eq!(msg_type(&nak), MessageType::Nak);
    assert_eq!(
        delivery,
        Delivery::Relay {
            giaddr: ip("192.168.0.1")
        }
    );
}

#[test]
fn relays_are_answered_only_from_macs_that_are_no_vm_port() {
    let view = std_view();
    let mut m = base(MAC1, MessageType::Discover);
    m.set_giaddr(ip("192.168.0.1"));
    let req = encode(&m);
    // A VM on the segment sets giaddr and names another port's MAC in chaddr.
    assert_eq!(
        answer_from(&view, &req, Link::Seen(MacAddr(MAC2))).0,
        Outcome::Ignored(Ignore::RelayFromPort { mac: MacAddr(MAC2) })
    );
    // A relayed request whose frame was not seen (or with `respond`, which sees none).
    for link in [Link::Missed, Link::Unknown] {
        assert_eq!(
            answer_from(&view, &req, link).0,
            Outcome::Ignored(Ignore::UnverifiedRelay {
                giaddr: ip("192.168.0.1")
            })
        );
    }
    let mut out = Vec::new();
    assert!(matches!(
        respond(&req, &view, &mut out),
        Outcome::Ignored(Ignore::UnverifiedRelay { .. })
    ));
    // The router's port relays (network:router_interface is no VM's), and so does a relay
    // that is no port at all.
    let router = [0x00, 0x00, 0x0f, 0x11, 0x11, 0x11];
    for relay in [router, RELAY_MAC] {
        let (o, _) = answer_from(&view, &req, Link::Seen(MacAddr(relay)));
        assert!(matches!(o, Outcome::Reply { .. }), "{o:?}");
    }
    // Not relayed: answered by chaddr, whatever the shell saw (it does not look).
    for link in [Link::Unknown, Link::Seen(MacAddr(MAC2))] {
        let (o, _) = answer_from(&view, &discover(MAC1, None), link);
        assert!(matches!(o, Outcome::Reply { .. }), "{o:?}");
    }
}

#[test]
fn option_overload_and_long_requests() {
    let view = std_view();
    // Option 53 only in `file` (option 52 = 1), the parameter list in `sname` (52 = 3).
    let mut b = discover(MAC1, None);
    let opts = b.iter().skip(240).position(|&x| x == 53).unwrap() + 240;
    b[opts..opts + 3].copy_from_slice(&[52, 1, 3]);
    b[108..111].copy_from_slice(&[53, 1, 1]);
    b[111] = 255;
    b[44..49].copy_from_slice(&[55, 2, 1, 3, 255]);
    let (_, _, offer, _) = reply(&view, &b);
    assert_eq!(msg_type(&offer), MessageType::Offer);
    assert_eq!(offer.yiaddr(), ip("192.168.0.2"));
    // A DISCOVER longer than an Ethernet frame, option 53 past byte 1,536.
    let mut long = base(MAC1, MessageType::Discover);
    long.opts_mut().remove(OptionCode::MessageType);
    let mut raw = encode(&long);
    raw.truncate(240); // header and cookie
    for _ in 0..6 {
        raw.extend_from_slice(&[224, 250]);
        raw.extend(std::iter::repeat_n(b'x', 250));
    }
    raw.extend_from_slice(&[53, 1, 1, 255]);
    assert!(raw.len() > 1536 && raw.len() < 2000, "{}", raw.len());
    let (_, _, offer, _) = reply(&view, &raw);
    assert_eq!(msg_type(&offer), MessageType::Offer);
}

#[test]
fn non_local_subnets_only_through_relays() {
    let view = NetworkView::build(&non_local_net(), OWN, &neutron_test_cfg());
    // Directly on our link, the non-local client has no address here.
    assert_eq!(
        ignored(&view, &discover(MAC3, None)),
        Ignore::NoBinding { mac: MacAddr(MAC3) }
    );
    // Renewing directly (after a restart) is fine.
    let (_, server, ack, _) = reply(&view, &renewing(MAC3, "192.168.2.5"));
    assert_eq!(
        (msg_type(&ack), server),
        (MessageType::Ack, ip("192.168.0.1"))
    );
}

#[test]
fn delivery_rules() {
    let view = std_view();
    let mut m = base(MAC1, MessageType::Discover);
    m.set_flags(Flags::default().set_broadcast());
    let (delivery, _, _, _) = reply(&view, &encode(&m));
    assert_eq!(delivery, Delivery::Broadcast);
    let cfg = ServeConfig {
        dhcp_broadcast_reply: true,
        ..ServeConfig::default()
    };
    let view = NetworkView::build(&std_net_with(vec![], 1450), OWN, &cfg);
    let (delivery, _, offer, _) = reply(&view, &discover(MAC1, None));
    assert_eq!(delivery, Delivery::Broadcast);
    assert!(
        offer.flags().broadcast(),
        "dnsmasq --dhcp-broadcast sets the flag"
    );
    // ciaddr wins over the broadcast flag (RFC 2131 §4.1, dnsmasq).
    let (delivery, _, _, _) = reply(&view, &renewing(MAC1, "192.168.0.2"));
    assert_eq!(
        delivery,
        Delivery::Ciaddr {
            ip: ip("192.168.0.2")
        }
    );
}

#[test]
fn lease_time_rules() {
    let view = std_view();
    let mut m = base(MAC1, MessageType::Discover);
    m.opts_mut().insert(DhcpOption::AddressLeaseTime(600));
    let (_, _, o, _) = reply(&view, &encode(&m));
    assert_eq!(
        u32_opt(&o, OptionCode::AddressLeaseTime),
        Some(600),
        "shorter request honoured"
    );
    assert_eq!(u32_opt(&o, OptionCode::Renewal), Some(300));
    assert_eq!(u32_opt(&o, OptionCode::Rebinding), Some(525));
    m.opts_mut().insert(DhcpOption::AddressLeaseTime(30));
    let (_, _, o, _) = reply(&view, &encode(&m));
    assert_eq!(
        u32_opt(&o, OptionCode::AddressLeaseTime),
        Some(120),
        "120 s floor"
    );
    m.opts_mut().insert(DhcpOption::AddressLeaseTime(999_999));
    let (_, _, o, _) = reply(&view, &encode(&m));
    assert_eq!(
        u32_opt(&o, OptionCode::AddressLeaseTime),
        Some(86400),
        "longer request ignored"
    );

    let cfg = ServeConfig {
        dhcp_lease_duration: -1,
        ..ServeConfig::default()
    };
    let view = NetworkView::build(&std_net_with(vec![], 1450), OWN, &cfg);
    let (_, _, o, raw) = reply(&view, &discover(MAC1, None));
    assert_eq!(u32_opt(&o, OptionCode::AddressLeaseTime), Some(0xffff_ffff));
    assert!(
        raw_opt(&raw, 58).is_none() && raw_opt(&raw, 59).is_none(),
        "no T1/T2 for infinite leases"
    );

    let cfg = ServeConfig {
        dhcp_renewal_time: 100,
        dhcp_rebinding_time: 200,
        ..ServeConfig::default()
    };
    let view = NetworkView::build(&std_net_with(vec![], 1450), OWN, &cfg);
    let (_, _, o, _) = reply(&view, &discover(MAC1, Some(&[])));
    assert_eq!(u32_opt(&o, OptionCode::Renewal), Some(100));
    assert_eq!(u32_opt(&o, OptionCode::Rebinding), Some(200));
    // Configured times longer than the lease are ignored (dnsmasq sanity check).
    let cfg = ServeConfig {
        dhcp_lease_duration: 150,
        dhcp_renewal_time: 1000,
        ..ServeConfig::default()
    };
    let view = NetworkView::build(&std_net_with(vec![], 1450), OWN, &cfg);
    let (_, _, o, _) = reply(&view, &discover(MAC1, None));
    assert_eq!(u32_opt(&o, OptionCode::Renewal), Some(75));
}

#[test]
fn no_mtu_option_without_network_mtu() {
    let net = Network::from_json(&json!({
        "id": NET, "mtu": 0, "subnets": [fake_v4_subnet()],
        "ports": [port("port1", MAC1, "x", &[(SUB_D, "192.168.0.2")]), own_port(&[(SUB_D, "192.168.0.10")])],
    }))
    .unwrap();
    let view = NetworkView::build(&net, OWN, &ServeConfig::default());
    let (_, _, o, _) = reply(&view, &discover(MAC1, None));
    assert!(o.opts().get(OptionCode::InterfaceMtu).is_none());
}

// ---------------------------------------------------------------------------------------------
// Port extra options.

fn pxe_view(opts: &[(&str, Option<&str>)]) -> NetworkView {
    let p = with_opts(
        port("pxe", MAC3, "baremetal:none", &[(SUB_D, "192.168.0.4")]),
        opts,
    );
    NetworkView::build(&std_net_with(vec![p], 1450), OWN, &ServeConfig::default())
}

#[test]
fn pxe_options_from_test_output_opts_file_pxe_port() {
    // FakeV4NetworkPxePort: tftp-server, server-ip-address, nd98 (not a dnsmasq name: dropped
    // with a warning), 99 (numeric, string value), bootfile-name.
    let view = pxe_view(&[
        ("tftp-server", Some("192.168.0.3")),
        ("server-ip-address", Some("192.168.0.2")),
        ("nd98", Some("option-nondigit-98")),
        ("99", Some("option-99")),
        ("bootfile-name", Some("pxelinux.0")),
    ]);
    let mut m = base(MAC3, MessageType::Discover);
    prl(&mut m, &[1, 3, 66, 67, 99]);
    let (_, _, offer, raw) = reply(&view, &encode(&m));
    assert_eq!(
        offer.siaddr(),
        ip("192.168.0.2"),
        "server-ip-address sets siaddr"
    );
    assert_eq!(
        raw_opt(&raw, 66).unwrap(),
        b"192.168.0.3\0",
        "PXE names are NUL-terminated"
    );
    assert_eq!(raw_opt(&raw, 67).unwrap(), b"pxelinux.0\0");
    assert_eq!(raw_opt(&raw, 99).unwrap(), b"option-99");
    assert!(raw_opt(&raw, 98).is_none());
    assert!(
        raw_opt(&raw, 255).is_none(),
        "server-ip-address is not an option"
    );
    // Not in the request list: the boot file and server go into the BOOTP header (dnsmasq).
    let (_, _, offer, raw) = reply(&view, &discover(MAC3, Some(&[1, 3])));
    assert_eq!(&raw[108..119], b"pxelinux.0\0", "file field");
    assert_eq!(&raw[44..56], b"192.168.0.3\0", "sname field");
    assert!(offer.fname().is_some() && offer.sname().is_some());
    assert!(raw_opt(&raw, 66).is_none() && raw_opt(&raw, 67).is_none());
    // Other ports are unaffected.
    let (_, _, offer, _) = reply(&view, &discover(MAC1, Some(&[66, 67])));
    assert_eq!(offer.siaddr(), ip("192.168.0.10"));
    assert!(offer.opts().get(OptionCode::BootfileName).is_none());
}

#[test]
fn ipxe_tagged_options_only_for_ipxe_clients() {
    // FakeV4NetworkMultipleTags: tag:ipxe,bootfile-name.
    let view = pxe_view(&[
        ("bootfile-name", Some("undionly.kpxe")),
        ("tag:ipxe,bootfile-name", Some("http://10.0.0.1/boot.ipxe")),
    ]);
    let (_, _, o, _) = reply(&view, &discover(MAC3, Some(&[67])));
    assert_eq!(
        text(&o, OptionCode::BootfileName).as_deref(),
        Some("undionly.kpxe\0")
    );
    let req = with_raw(discover(MAC3, Some(&[67])), &[175, 3, 1, 1, 1]);
    let (_, _, o, _) = reply(&view, &req);
    assert_eq!(
        text(&o, OptionCode::BootfileName).as_deref(),
        Some("http://10.0.0.1/boot.ipxe\0")
    );
    // Unknown tags never match; negated ones do.
    let view = pxe_view(&[
        ("tag:foo,bootfile-name", Some("a")),
        ("tag:!foo,tftp-server", Some("tftp-b")),
    ]);
    let (_, _, _, raw) = reply(&view, &discover(MAC3, Some(&[66, 67])));
    assert!(raw_opt(&raw, 67).is_none());
    assert_eq!(raw_opt(&raw, 66).unwrap(), b"tftp-b\0");
}

#[test]
fn port_options_override_and_suppress_subnet_options() {
    let view = pxe_view(&[
        ("dns-server", Some("1.1.1.1,0.0.0.0")),
        ("router", Some("")),
        ("classless-static-route", None),
        ("mtu", Some("9000")),
        ("ntp-server", Some("10.0.0.123")),
        ("domain-search", Some("example.com,sub.example.com")),
        ("19", Some("1")),
        ("option:T1", Some("1000s")),
        ("bogus-name", Some("x")),
        ("router", Some("not-an-ip")),
    ]);
    let (_, _, o, raw) = reply(
        &view,
        &discover(MAC3, Some(&[3, 6, 19, 26, 42, 119, 121, 249])),
    );
    // 0.0.0.0 in an address list means "this server" (dnsmasq).
    assert_eq!(
        addrs(&o, OptionCode::DomainNameServer),
        Some(vec![ip("1.1.1.1"), ip("192.168.0.10")])
    );
    assert!(
        o.opts().get(OptionCode::Router).is_none(),
        "empty router suppresses option 3"
    );
    assert!(
        routes(&o).is_none(),
        "empty classless-static-route suppresses 121"
    );
    assert!(raw_opt(&raw, 249).is_some(), "249 is a separate option");
    assert_eq!(
        raw_opt(&raw, 26).unwrap(),
        [0x23, 0x28],
        "port MTU overrides the network's"
    );
    assert_eq!(raw_opt(&raw, 42).unwrap(), [10, 0, 0, 123]);
    assert_eq!(raw_opt(&raw, 19).unwrap(), [1]);
    assert_eq!(
        raw_opt(&raw, 119).unwrap(),
        b"\x07example\x03com\x00\x03sub\xc0\x00".to_vec(),
        "RFC 1035 names with compression"
    );
    assert_eq!(u32_opt(&o, OptionCode::Renewal), Some(1000));
    // Forced MTU overridden by a port option is no longer forced.
    let (_, _, _, raw) = reply(&view, &discover(MAC3, Some(&[1])));
    assert!(raw_opt(&raw, 26).is_none());
}

#[test]
fn hostname_option_override() {
    let view = pxe_view(&[("12", Some("custom"))]);
    let (_, _, o, _) = reply(&view, &discover(MAC3, Some(&[12])));
    assert_eq!(text(&o, OptionCode::Hostname).as_deref(), Some("custom"));
    let view = pxe_view(&[("12", Some(""))]);
    let (_, _, o, _) = reply(&view, &discover(MAC3, Some(&[12])));
    assert!(o.opts().get(OptionCode::Hostname).is_none());
}

#[test]
fn multi_subnet_port() {
    // FakePort3: addresses on two DHCP subnets.
    let net = network(
        vec![
            fake_v4_subnet(),
            subnet4(
                SUB_E,
                "192.168.1.0/24",
                Some("192.168.1.1"),
                &[],
                &[],
                None,
                true,
            ),
        ],
        vec![],
        vec![
            port(
                "port3",
                MAC3,
                "foo3",
                &[(SUB_D, "192.168.0.4"), (SUB_E, "192.168.1.2")],
            ),
            own_port(&[(SUB_D, "192.168.0.10"), (SUB_E, "192.168.1.10")]),
        ],
        1450,
    );
    let view = NetworkView::build(&net, OWN, &ServeConfig::default());
    assert_eq!(view.v4_binding_count(), 2);
    let (_, _, o, _) = reply(&view, &discover(MAC3, None));
    // dnsmasq matches host-file lines last-first: the port's last fixed IP on the link wins
    // (checked against real dnsmasq in tests/differential.rs).
    assert_eq!(o.yiaddr(), ip("192.168.1.2"), "last binding on the link");
    // Either of its addresses is ACKed.
    let (_, server, ack, _) = reply(&view, &selecting(MAC3, "192.168.1.10", "192.168.1.2"));
    assert_eq!(
        (msg_type(&ack), server),
        (MessageType::Ack, ip("192.168.1.10"))
    );
    // A relay on the second subnet gets the second address.
    let mut m = base(MAC3, MessageType::Discover);
    m.set_giaddr(ip("192.168.1.1"));
    let (_, _, o, _) = reply(&view, &encode(&m));
    assert_eq!(o.yiaddr(), ip("192.168.1.2"));
}

#[test]
fn max_message_size_bounds_the_reply() {
    let long = "x".repeat(250);
    let names: Vec<String> = (200..220).map(|c| c.to_string()).collect();
    let opts: Vec<(&str, Option<&str>)> = names
        .iter()
        .map(|n| (n.as_str(), Some(long.as_str())))
        .collect();
    let view = pxe_view(&opts);
    let (_, _, _, raw) = reply(&view, &discover(MAC3, None));
    assert!(raw.len() <= 548, "default limit is 576 - 28");
    let mut m = base(MAC3, MessageType::Discover);
    m.opts_mut().insert(DhcpOption::MaxMessageSize(1500));
    let (_, _, _, raw) = reply(&view, &encode(&m));
    assert!(raw.len() > 548 && raw.len() <= 1472);
    assert_eq!(
        raw_opt(&raw, 53),
        Some(vec![2]),
        "mandatory options always fit"
    );
}

#[test]
fn respond_does_not_allocate() {
    let view = std_view();
    let reqs = [
        discover(MAC1, Some(&FULL_PRL)),
        discover(MAC2, None),
        selecting(MAC1, "192.168.0.10", "192.168.0.2"),
        selecting(MAC1, "192.168.0.10", "192.168.0.3"),
        init_reboot(MAC1, "192.168.0.2"),
        renewing(MAC1, "192.168.0.2"),
        discover(UNKNOWN_MAC, None),
        with_raw(discover(MAC2, Some(&[12])), &[81, 3, 5, 0, 0, 82, 2, 1, 0]),
    ];
    let mut out = Vec::with_capacity(1500);
    let before = allocations();
    for r in &reqs {
        let _ = respond(r, &view, &mut out);
    }
    assert_eq!(allocations() - before, 0);
}

// ---------------------------------------------------------------------------------------------
// Robustness: bounded random and mutated inputs (the cargo-fuzz target runs the same property
// without bounds).

/// Checks a reply's structure with a scanner independent of the responder.
fn check_reply(out: &[u8]) {
    assert!(
        out.len() >= 300 && out.len() <= 1472,
        "reply size {}",
        out.len()
    );
    assert_eq!(out[0], 2);
    assert_eq!(&out[236..240], &[99, 130, 83, 99]);
    let mut i = 240;
    loop {
        let c = out[i];
        if c == 255 {
            assert!(
                out[i + 1..].iter().all(|&b| b == 0),
                "only padding after END"
            );
            return;
        }
        assert_ne!(c, 0, "no pads inside our options");
        i += 2 + out[i + 1] as usize;
        assert!(i < out.len(), "option runs past the end");
    }
}

fn mutate(rng: &mut XorShift, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..1 + rng.below(8) {
        match rng.below(7) {
            0 => {
                let i = rng.below(b.len().max(1));
                if let Some(x) = b.get_mut(i) {
                    *x = rng.byte();
                }
            }
            1 => b.truncate(rng.below(b.len() + 1)),
            2 => b.extend((0..rng.below(64)).map(|_| rng.byte())),
            3 => {
                // Corrupt an option length or code in the options area.
                let i = 240 + rng.below(b.len().saturating_sub(240).max(1));
                if let Some(x) = b.get_mut(i) {
                    *x = rng.byte();
                }
            }
            4 => {
                // Insert a random option at the start of the options area.
                let code = rng.byte();
                let len = rng.below(20);
                let mut opt = vec![code, len as u8];
                opt.extend((0..len).map(|_| rng.byte()));
                let at = 240.min(b.len());
                b.splice(at..at, opt);
            }
            5 => {
                // Header fields: hlen, htype, op, flags, giaddr, ciaddr.
                let i = [0, 1, 2, 3, 10, 12, 15, 24, 27][rng.below(9)];
                if let Some(x) = b.get_mut(i) {
                    *x = rng.byte();
                }
            }
            _ => {
                let i = rng.below(b.len().max(1));
                if i < b.len() {
                    b[i] ^= 1 << rng.below(8);
                }
            }
        }
    }
    b
}

#[test]
fn random_and_mutated_inputs_never_panic() {
    let ports = vec![with_opts(
        port("pxe", MAC3, "baremetal:none", &[(SUB_D, "192.168.0.4")]),
        &[
            ("tag:ipxe,bootfile-name", Some("x")),
            ("client-id", Some("cid")),
            ("dns-server", Some("0.0.0.0")),
        ],
    )];
    let view = NetworkView::build(&std_net_with(ports, 1450), OWN, &ServeConfig::default());
    let mut relayed = base(MAC1, MessageType::Request);
    relayed.set_giaddr(ip("192.168.0.1"));
    relayed
        .opts_mut()
        .insert(DhcpOption::RequestedIpAddress(ip("192.168.0.2")));
    let mut inform = base(MAC3, MessageType::Inform);
    inform.set_ciaddr(ip("192.168.0.4"));
    // Options in `file` and `sname` (option 52 = 3).
    let mut overloaded = with_raw(encode(&base(MAC1, MessageType::Request)), &[52, 1, 3]);
    overloaded[108..117].copy_from_slice(&[50, 4, 192, 168, 0, 2, 12, 1, b'a']);
    overloaded[44..48].copy_from_slice(&[55, 2, 1, 3]);
    let seeds = [
        discover(MAC1, Some(&FULL_PRL)),
        with_raw(
            discover(MAC3, None),
            &[
                175, 1, 1, 61, 3, b'c', b'i', b'd', 81, 3, 4, 0, 0, 12, 2, b'a', 0,
            ],
        ),
        selecting(MAC1, "192.168.0.10", "192.168.0.2"),
        init_reboot(MAC2, "192.168.0.9"),
        renewing(MAC1, "192.168.0.2"),
        with_raw(
            encode(&relayed),
            &[
                82, 6, 5, 4, 192, 168, 0, 0, 118, 4, 192, 168, 0, 0, 57, 2, 5, 220,
            ],
        ),
        encode(&inform),
        overloaded,
    ];
    let mut rng = XorShift::new(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::with_capacity(1500);
    let (mut replies, mut malformed) = (0, 0);
    for n in 0..200_000 {
        let input = if n % 10 == 0 {
            (0..rng.below(600)).map(|_| rng.byte()).collect()
        } else {
            let seed = &seeds[rng.below(seeds.len())];
            mutate(&mut rng, seed)
        };
        let link = match n % 3 {
            0 => Link::Seen(MacAddr(RELAY_MAC)),
            1 => Link::Seen(MacAddr(MAC1)),
            _ => Link::Unknown,
        };
        match respond_from(&input, link, &view, &mut out) {
            Outcome::Reply { .. } => {
                check_reply(&out);
                replies += 1;
            }
            Outcome::Malformed(_) => {
                assert!(out.is_empty());
                malformed += 1;
            }
            Outcome::Ignored(_) => assert!(out.is_empty()),
        }
    }
    assert!(
        replies > 10_000 && malformed > 10_000,
        "replies {replies}, malformed {malformed}"
    );
}
