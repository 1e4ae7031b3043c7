//! Tests of the DHCPv6 responder: Neutron-shaped networks in, client messages built byte by byte
//! (so hostile and unusual shapes are easy), replies decoded with dhcproto (an independent
//! decoder) and checked against what Neutron's dnsmasq sends (reference §9.3, §9.6, §9.7 and
//! dnsmasq's `rfc3315.c`), with static, MAC-keyed bindings.

use std::net::Ipv6Addr;

use dhcproto::v6::{DhcpOption, Message, MessageType, Status, IANA};
use dhcproto::Decodable;
use neutron_dhcp::config::ServeConfig;
use neutron_dhcp::dhcp::link::Link;
use neutron_dhcp::dhcp::v6::{respond, Delivery, Ignore, Outcome, Source, MAX_REPLY};
use neutron_dhcp::model::{MacAddr, Network};
use neutron_dhcp::view::v6::NetworkView6;
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
// Fixture: one network with every kind of IPv6 subnet and port.

const S_FUL: &str = "aaaaaaaa-0000-0000-0000-000000000001"; // fd00:1::/64 stateful
const S_LESS: &str = "aaaaaaaa-0000-0000-0000-000000000002"; // fd00:2::/64 stateless
const S_SLAAC: &str = "aaaaaaaa-0000-0000-0000-000000000003"; // fd00:3::/64 slaac
const S_48: &str = "aaaaaaaa-0000-0000-0000-000000000004"; // fd00:4::/48 stateful (too short)
const S_V4: &str = "aaaaaaaa-0000-0000-0000-000000000005"; // 10.0.0.0/24
const OWN: &str = "own-dhcp-port";
const MAC_OWN: [u8; 6] = [0xfa, 0x16, 0x3e, 0, 0, 0x02];
const MAC1: [u8; 6] = [0xfa, 0x16, 0x3e, 0, 0, 0x11]; // two stateful + one stateless address
const MAC2: [u8; 6] = [0xfa, 0x16, 0x3e, 0, 0, 0x12]; // client-id reservation
const MAC3: [u8; 6] = [0xfa, 0x16, 0x3e, 0, 0, 0x13]; // IPv6 extra options
const MAC4: [u8; 6] = [0xfa, 0x16, 0x3e, 0, 0, 0x14]; // stateless only, with options
const MAC5: [u8; 6] = [0xfa, 0x16, 0x3e, 0, 0, 0x15]; // SLAAC and /48 only
const UNKNOWN: [u8; 6] = [0x02, 0, 0, 0, 0, 0x99];
/// P2's reserved DUID (a DUID-EN: no MAC in it).
const P2_DUID: [u8; 10] = [0, 2, 0, 0, 0xab, 0x11, 0xde, 0xad, 0xbe, 0xef];

fn ip(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn mac_str(m: [u8; 6]) -> String {
    MacAddr(m).to_string()
}

fn subnet6(id: &str, cidr: &str, mode: Option<&str>, dns: &[&str]) -> Value {
    json!({"id": id, "ip_version": 6, "cidr": cidr, "gateway_ip": null, "enable_dhcp": true,
           "dns_nameservers": dns, "ipv6_address_mode": mode, "ipv6_ra_mode": mode})
}

fn port(id: &str, mac: [u8; 6], owner: &str, ips: &[(&str, &str)]) -> Value {
    json!({
        "id": id, "mac_address": mac_str(mac), "device_owner": owner, "device_id": format!("dev-{id}"),
        "fixed_ips": ips.iter().map(|(s, a)| json!({"subnet_id": s, "ip_address": a})).collect::<Vec<_>>(),
    })
}

fn with_opts(mut p: Value, opts: &[(&str, Option<&str>, u8)]) -> Value {
    p["extra_dhcp_opts"] = opts
        .iter()
        .map(|(n, v, ver)| json!({"opt_name": n, "opt_value": v, "ip_version": ver}))
        .collect::<Vec<_>>()
        .into();
    p
}

fn network_with(subnets: Vec<Value>, ports: Vec<Value>) -> Network {
    Network::from_json(&json!({"id": "net-v6", "mtu": 1450, "subnets": subnets, "ports": ports}))
        .unwrap()
}

fn own_port() -> Value {
    port(
        OWN,
        MAC_OWN,
        "network:dhcp",
        &[
            (S_FUL, "fd00:1::2"),
            (S_LESS, "fd00:2::2"),
            (S_SLAAC, "fd00:3::2"),
            (S_V4, "10.0.0.2"),
        ],
    )
}

fn std_subnets() -> Vec<Value> {
    vec![
        subnet6(S_FUL, "fd00:1::/64", Some("dhcpv6-stateful"), &[]),
        subnet6(
            S_LESS,
            "fd00:2::/64",
            Some("dhcpv6-stateless"),
            &["2001:db8::53"],
        ),
        subnet6(S_SLAAC, "fd00:3::/64", Some("slaac"), &[]),
        subnet6(S_48, "fd00:4::/48", Some("dhcpv6-stateful"), &[]),
        json!({"id": S_V4, "ip_version": 4, "cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.1"}),
    ]
}

fn std_ports() -> Vec<Value> {
    let mut p1 = port(
        "p1",
        MAC1,
        "compute:nova",
        &[
            (S_FUL, "fd00:1::10"),
            (S_FUL, "fd00:1::11"),
            (S_LESS, "fd00:2::10"),
            (S_V4, "10.0.0.11"),
        ],
    );
    p1["dns_assignment"] = json!([{"ip_address": "fd00:1::10", "hostname": "vm-one",
                                   "fqdn": "vm-one.openstacklocal."}]);
    vec![
        own_port(),
        p1,
        with_opts(
            port("p2", MAC2, "compute:nova", &[(S_FUL, "fd00:1::20")]),
            &[("client-id", Some("00:02:00:00:ab:11:de:ad:be:ef"), 4)],
        ),
        with_opts(
            port("p3", MAC3, "baremetal:none", &[(S_FUL, "fd00:1::30")]),
            &[
                ("bootfile-url", Some("http://boot/plain.efi"), 6),
                ("tag:ipxe6,bootfile-url", Some("http://boot/ipxe.efi"), 6),
                ("dns-server", Some("[2001:db8::99]"), 6),
                ("ntp-server", Some("[2001:db8::123]"), 6),
                ("bootfile-name", Some("pxelinux.0"), 4),
                ("option6:client-id", Some("x"), 6),
            ],
        ),
        with_opts(
            port("p4", MAC4, "compute:nova", &[(S_LESS, "fd00:2::40")]),
            &[("posix-timezone", Some("CET-1CEST"), 6)],
        ),
        port(
            "p5",
            MAC5,
            "compute:nova",
            &[(S_SLAAC, "fd00:3::50"), (S_48, "fd00:4::50")],
        ),
        port(
            "p-fip",
            [0xfa, 0x16, 0x3e, 0, 0, 0x77],
            "network:floatingip",
            &[(S_FUL, "fd00:1::77")],
        ),
    ]
}

fn cfg() -> ServeConfig {
    ServeConfig {
        dhcp_lease_duration: 600,
        dns_domain: "openstacklocal".into(),
        ..ServeConfig::default()
    }
}

fn build(net: &Network, cfg: &ServeConfig) -> NetworkView6 {
    let view = NetworkView::build(net, OWN, cfg);
    // The v6 view is what NetworkView carries; build it standalone too and compare sizes.
    let alone = NetworkView6::build(net, OWN, cfg);
    assert_eq!(view.v6().binding_count(), alone.binding_count());
    alone
}

fn std_view() -> NetworkView6 {
    build(&network_with(std_subnets(), std_ports()), &cfg())
}

// ---------------------------------------------------------------------------------------------
// Client messages, byte by byte.

fn tlv(code: u16, data: &[u8]) -> Vec<u8> {
    let mut v = code.to_be_bytes().to_vec();
    v.extend_from_slice(&(data.len() as u16).to_be_bytes());
    v.extend_from_slice(data);
    v
}

fn duid_ll(mac: [u8; 6]) -> Vec<u8> {
    let mut d = vec![0, 3, 0, 1];
    d.extend_from_slice(&mac);
    d
}

fn duid_llt(mac: [u8; 6]) -> Vec<u8> {
    let mut d = vec![0, 1, 0, 1, 0x2a, 0x2b, 0x2c, 0x2d];
    d.extend_from_slice(&mac);
    d
}

fn duid_en(n: u8) -> Vec<u8> {
    vec![0, 2, 0, 0, 0x12, 0x34, 0xee, n]
}

fn server_duid() -> Vec<u8> {
    duid_ll(MAC_OWN)
}

#[derive(Clone)]
struct Msg {
    bytes: Vec<u8>,
}

impl Msg {
    fn new(ty: u8) -> Msg {
        Msg {
            bytes: vec![ty, 0xab, 0xcd, 0xef],
        }
    }

    fn opt(mut self, code: u16, data: &[u8]) -> Msg {
        self.bytes.extend(tlv(code, data));
        self
    }

    fn client(self, duid: &[u8]) -> Msg {
        self.opt(1, duid)
    }

    fn server(self, duid: &[u8]) -> Msg {
        self.opt(2, duid)
    }

    fn oro(self, codes: &[u16]) -> Msg {
        let data: Vec<u8> = codes.iter().flat_map(|c| c.to_be_bytes()).collect();
        self.opt(6, &data)
    }

    fn elapsed(self) -> Msg {
        self.opt(8, &[0, 0])
    }

    fn ia_na(self, iaid: u32, addrs: &[(&str, u32, u32)]) -> Msg {
        let mut body = iaid.to_be_bytes().to_vec();
        body.extend_from_slice(&[0; 8]);
        for (a, p, v) in addrs {
            let mut d = ip(a).octets().to_vec();
            d.extend_from_slice(&p.to_be_bytes());
            d.extend_from_slice(&v.to_be_bytes());
            body.extend(tlv(5, &d));
        }
        self.opt(3, &body)
    }

    fn ia_ta(self, iaid: u32) -> Msg {
        self.opt(4, &iaid.to_be_bytes())
    }

    fn rapid(self) -> Msg {
        self.opt(14, &[])
    }

    fn bytes(&self) -> Vec<u8> {
        self.bytes.clone()
    }
}

const SOLICIT: u8 = 1;
const REQUEST: u8 = 3;
const CONFIRM: u8 = 4;
const RENEW: u8 = 5;
const REBIND: u8 = 6;
const RELEASE: u8 = 8;
const DECLINE: u8 = 9;
const INFO_REQ: u8 = 11;

/// dhclient's default ORO: DNS servers, domain list, (NTP, SNTP are not asked by default).
const ORO: &[u16] = &[23, 24];

fn solicit(duid: &[u8]) -> Msg {
    Msg::new(SOLICIT)
        .client(duid)
        .elapsed()
        .oro(ORO)
        .ia_na(0x0000_0011, &[])
}

/// A sender we cannot identify by link layer (the shell cannot watch frames, not an EUI-64
/// address).
fn anon() -> Source {
    Source {
        addr: ip("fe80::1234:5678:9abc:def0"),
        link: Link::Unknown,
    }
}

/// A sender whose frame the shell saw.
fn from_mac(mac: [u8; 6]) -> Source {
    Source {
        addr: ip("fe80::1234:5678:9abc:def0"),
        link: Link::Seen(MacAddr(mac)),
    }
}

fn eui64(mac: [u8; 6]) -> Source {
    let a = [
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        mac[0] ^ 2,
        mac[1],
        mac[2],
        0xff,
        0xfe,
        mac[3],
        mac[4],
        mac[5],
    ];
    Source {
        addr: Ipv6Addr::from(a),
        link: Link::Unknown,
    }
}

// ---------------------------------------------------------------------------------------------
// Reply inspection.

fn answer(view: &NetworkView6, req: &[u8], src: Source) -> (Outcome, Vec<u8>) {
    let mut out = Vec::with_capacity(1500);
    let o = respond(req, &src, view, &mut out);
    (o, out)
}

fn reply(view: &NetworkView6, req: &Msg, src: Source) -> (MessageType, Message, Vec<u8>) {
    let (o, out) = answer(view, &req.bytes(), src);
    let Outcome::Reply {
        delivery, reply, ..
    } = o
    else {
        panic!("expected a reply, got {o:?}");
    };
    assert_eq!(delivery, Delivery::Client);
    check_wellformed(&out);
    let m = Message::from_bytes(&out).expect("dhcproto decodes our reply");
    assert_eq!(u8::from(m.msg_type()), reply);
    assert_eq!(m.xid(), [0xab, 0xcd, 0xef]);
    (m.msg_type(), m, out)
}

fn ignored(view: &NetworkView6, req: &Msg, src: Source) -> Ignore {
    match answer(view, &req.bytes(), src) {
        (Outcome::Ignored(i), out) => {
            assert!(out.is_empty());
            i
        }
        (o, _) => panic!("expected to be ignored, got {o:?}"),
    }
}

/// Our own structural check: TLVs tile the message exactly, IAs too.
fn check_wellformed(out: &[u8]) {
    assert!(
        out.len() >= 4 && out.len() <= MAX_REPLY,
        "size {}",
        out.len()
    );
    if out[0] == 13 {
        check_relay_tlvs(&out[34..]);
    } else {
        check_tlvs(&out[4..]);
    }
}

/// A Relay-Reply's options are opaque (echoed) except the Relay Message.
fn check_relay_tlvs(mut area: &[u8]) {
    while !area.is_empty() {
        assert!(area.len() >= 4, "truncated relay option header");
        let code = u16::from_be_bytes([area[0], area[1]]);
        let len = usize::from(u16::from_be_bytes([area[2], area[3]]));
        assert!(
            area.len() >= 4 + len,
            "relay option {code} runs past the end"
        );
        if code == 9 {
            check_wellformed(&area[4..4 + len]);
        }
        area = &area[4 + len..];
    }
}

fn check_tlvs(mut area: &[u8]) {
    while !area.is_empty() {
        assert!(area.len() >= 4, "truncated option header");
        let code = u16::from_be_bytes([area[0], area[1]]);
        let len = usize::from(u16::from_be_bytes([area[2], area[3]]));
        assert!(area.len() >= 4 + len, "option {code} runs past the end");
        let data = &area[4..4 + len];
        match code {
            3 => check_tlvs(&data[12..]),
            4 => check_tlvs(&data[4..]),
            5 => check_tlvs(&data[24..]),
            13 => assert!(len >= 2),
            _ => {}
        }
        area = &area[4 + len..];
    }
}

/// Top-level options with this code, raw.
fn raw_opts(out: &[u8], code: u16) -> Vec<Vec<u8>> {
    let mut found = Vec::new();
    let mut area = &out[4..];
    while area.len() >= 4 {
        let c = u16::from_be_bytes([area[0], area[1]]);
        let len = usize::from(u16::from_be_bytes([area[2], area[3]]));
        if c == code {
            found.push(area[4..4 + len].to_vec());
        }
        area = &area[4 + len..];
    }
    found
}

fn raw_opt(out: &[u8], code: u16) -> Option<Vec<u8>> {
    raw_opts(out, code).into_iter().next()
}

fn ianas(m: &Message) -> Vec<IANA> {
    m.opts()
        .iter()
        .filter_map(|o| match o {
            DhcpOption::IANA(ia) => Some(ia.clone()),
            _ => None,
        })
        .collect()
}

fn ia_addrs(ia: &IANA) -> Vec<(Ipv6Addr, u32, u32)> {
    ia.opts
        .iter()
        .filter_map(|o| match o {
            DhcpOption::IAAddr(a) => Some((a.addr, a.preferred_life, a.valid_life)),
            _ => None,
        })
        .collect()
}

fn ia_status(ia: &IANA) -> Option<Status> {
    ia.opts.iter().find_map(|o| match o {
        DhcpOption::StatusCode(s) => Some(s.status),
        _ => None,
    })
}

fn status(m: &Message) -> Option<(Status, String)> {
    m.opts().iter().find_map(|o| match o {
        DhcpOption::StatusCode(s) => Some((s.status, s.msg.clone())),
        _ => None,
    })
}

fn dns(m: &Message) -> Option<Vec<Ipv6Addr>> {
    m.opts().iter().find_map(|o| match o {
        DhcpOption::DomainNameServers(v) => Some(v.clone()),
        _ => None,
    })
}

fn client_id(m: &Message) -> Option<Vec<u8>> {
    m.opts().iter().find_map(|o| match o {
        DhcpOption::ClientId(v) => Some(v.clone()),
        _ => None,
    })
}

fn server_id(m: &Message) -> Option<Vec<u8>> {
    m.opts().iter().find_map(|o| match o {
        DhcpOption::ServerId(v) => Some(v.clone()),
        _ => None,
    })
}

fn has(m: &Message, code: u16) -> bool {
    m.opts()
        .iter()
        .any(|o| u16::from(dhcproto::v6::OptionCode::from(o)) == code)
}

const LEASE: u32 = 600;
const T1: u32 = 300;
const T2: u32 = 525;
/// `openstacklocal` in RFC 1035 form, as option 24 carries it.
const SEARCH: &[u8] = b"\x0eopenstacklocal\x00";

// ---------------------------------------------------------------------------------------------
// Solicit

#[test]
fn solicit_advertises_every_port_address_on_the_link() {
    let view = std_view();
    let (ty, m, out) = reply(&view, &solicit(&duid_ll(MAC1)), anon());
    assert_eq!(ty, MessageType::Advertise);
    assert_eq!(client_id(&m), Some(duid_ll(MAC1)));
    assert_eq!(server_id(&m), Some(server_duid()));
    let ias = ianas(&m);
    assert_eq!(ias.len(), 1);
    assert_eq!(ias[0].id, 0x11);
    assert_eq!((ias[0].t1, ias[0].t2), (T1, T2));
    assert_eq!(
        ia_addrs(&ias[0]),
        vec![
            (ip("fd00:1::10"), LEASE, LEASE),
            (ip("fd00:1::11"), LEASE, LEASE)
        ],
        "both stateful addresses, not the stateless one"
    );
    assert_eq!(status(&m).map(|s| s.0), Some(Status::Success));
    assert_eq!(
        raw_opt(&out, 7),
        Some(vec![0]),
        "preference 0: not authoritative"
    );
    // Empty dns_nameservers and one DHCP port: our own address on the subnet.
    assert_eq!(dns(&m), Some(vec![ip("fd00:1::2")]));
    assert_eq!(raw_opt(&out, 24).as_deref(), Some(SEARCH));
    assert!(!has(&m, 14), "no rapid commit unless asked");
    assert!(!has(&m, 32), "refresh time only for Information-Request");
}

#[test]
fn rapid_commit_solicit_gets_a_reply() {
    let view = std_view();
    let (ty, m, _) = reply(&view, &solicit(&duid_llt(MAC1)).rapid(), anon());
    assert_eq!(ty, MessageType::Reply);
    assert!(has(&m, 14));
    assert_eq!(ia_addrs(&ianas(&m)[0]).len(), 2);
}

#[test]
fn clients_are_identified_by_duid_link_layer_or_eui64() {
    let view = std_view();
    let addrs =
        |m: &Message| -> Vec<Ipv6Addr> { ia_addrs(&ianas(m)[0]).iter().map(|a| a.0).collect() };
    let p1 = vec![ip("fd00:1::10"), ip("fd00:1::11")];
    // DUID-LL and DUID-LLT carry the MAC.
    for duid in [duid_ll(MAC1), duid_llt(MAC1)] {
        assert_eq!(addrs(&reply(&view, &solicit(&duid), anon()).1), p1);
    }
    // DUID-EN (networkd): the link-layer source the shell saw, else the EUI-64 address.
    assert_eq!(
        addrs(&reply(&view, &solicit(&duid_en(1)), from_mac(MAC1)).1),
        p1
    );
    assert_eq!(
        addrs(&reply(&view, &solicit(&duid_en(1)), eui64(MAC1)).1),
        p1
    );
    // A DUID naming another machine's MAC (a DUID-LLT made on another NIC): the link layer wins.
    assert_eq!(
        addrs(&reply(&view, &solicit(&duid_llt(UNKNOWN)), from_mac(MAC1)).1),
        p1
    );
    // The same MAC with a changed DUID keeps its addresses (static: they belong to the MAC).
    assert_eq!(addrs(&reply(&view, &solicit(&duid_ll(MAC1)), anon()).1), p1);
    assert_eq!(
        addrs(&reply(&view, &solicit(&duid_en(9)), from_mac(MAC1)).1),
        p1
    );
    // Nothing identifies the client: nothing is offered.
    assert_eq!(
        ignored(&view, &solicit(&duid_en(1)), anon()),
        Ignore::UnknownClient {
            msg: SOLICIT,
            mac: None
        }
    );
    assert_eq!(
        ignored(&view, &solicit(&duid_ll(UNKNOWN)), eui64(UNKNOWN)),
        Ignore::UnknownClient {
            msg: SOLICIT,
            mac: Some(MacAddr(UNKNOWN))
        }
    );
    // Excluded owners (floating IP ports) never get an address.
    let fip = [0xfa, 0x16, 0x3e, 0, 0, 0x77];
    assert!(matches!(
        ignored(&view, &solicit(&duid_ll(fip)), anon()),
        Ignore::UnknownClient { .. }
    ));
}

#[test]
fn client_id_reservations_match_the_whole_duid_then_the_mac() {
    let view = std_view();
    let p2 = vec![(ip("fd00:1::20"), LEASE, LEASE)];
    // The reserved DUID from a sender whose frame was not watched.
    let (_, m, _) = reply(&view, &solicit(&P2_DUID), anon());
    assert_eq!(ia_addrs(&ianas(&m)[0]), p2);
    // The reserved DUID from its own port's MAC.
    let (_, m, _) = reply(&view, &solicit(&P2_DUID), from_mac(MAC2));
    assert_eq!(ia_addrs(&ianas(&m)[0]), p2);
    // Like dnsmasq's find_config: a port with a client-id is still found by its MAC.
    let (_, m, _) = reply(&view, &solicit(&duid_ll(MAC2)), anon());
    assert_eq!(ia_addrs(&ianas(&m)[0]), p2);
    // The reservation wins over a MAC the message only suggests (its EUI-64 source).
    let (_, m, _) = reply(&view, &solicit(&P2_DUID), eui64(MAC1));
    assert_eq!(ia_addrs(&ianas(&m)[0]), p2);
}

#[test]
fn the_frame_mac_is_who_the_client_is() {
    let view = std_view();
    let p1 = vec![ip("fd00:1::10"), ip("fd00:1::11")];
    let addrs =
        |m: &Message| -> Vec<Ipv6Addr> { ia_addrs(&ianas(m)[0]).iter().map(|a| a.0).collect() };
    // A host with an unknown MAC naming a port's MAC in its DUID-LL/LLT gets nothing.
    for duid in [duid_ll(MAC1), duid_llt(MAC1)] {
        assert_eq!(
            ignored(&view, &solicit(&duid), from_mac(UNKNOWN)),
            Ignore::UnknownClient {
                msg: SOLICIT,
                mac: Some(MacAddr(UNKNOWN))
            }
        );
    }
    // Nor from an EUI-64 address of a port's MAC.
    let spoofed = Source {
        link: Link::Seen(MacAddr(UNKNOWN)),
        ..eui64(MAC1)
    };
    assert!(matches!(
        ignored(&view, &solicit(&duid_ll(MAC1)), spoofed),
        Ignore::UnknownClient { .. }
    ));
    // Nor with another port's reserved DUID: the reservation is port 2's.
    assert!(matches!(
        ignored(&view, &solicit(&P2_DUID), from_mac(UNKNOWN)),
        Ignore::UnknownClient { .. }
    ));
    // A port naming another port in its DUID gets its own addresses, nothing of the other's.
    let (_, m, _) = reply(&view, &solicit(&P2_DUID), from_mac(MAC1));
    assert_eq!(addrs(&m), p1);
    let (_, m, _) = reply(&view, &solicit(&duid_ll(MAC2)), from_mac(MAC1));
    assert_eq!(addrs(&m), p1);
    // A frame the shell watches for but did not see: not answered.
    let missed = Source {
        link: Link::Missed,
        ..from_mac(MAC1)
    };
    assert_eq!(
        ignored(&view, &solicit(&duid_ll(MAC1)), missed),
        Ignore::UnseenSender
    );
}

#[test]
fn ports_without_stateful_addresses_are_not_offered_any() {
    let view = std_view();
    assert_eq!(
        ignored(&view, &solicit(&duid_ll(MAC4)), anon()),
        Ignore::NoAddresses {
            msg: SOLICIT,
            mac: MacAddr(MAC4)
        }
    );
    // SLAAC and /48 subnets are not served at all.
    assert!(matches!(
        ignored(&view, &solicit(&duid_ll(MAC5)), anon()),
        Ignore::UnknownClient { .. }
    ));
    assert_eq!(
        ignored(&view, &Msg::new(SOLICIT).client(&duid_ll(MAC1)), anon()),
        Ignore::NoIa
    );
}

#[test]
fn solicit_with_several_ias_and_hints() {
    let view = std_view();
    let req = Msg::new(SOLICIT)
        .client(&duid_ll(MAC1))
        .ia_ta(7)
        .ia_na(1, &[("fd00:1::11", 7200, 7200), ("fd00:9::1", 0, 0)])
        .ia_na(2, &[]);
    let (_, m, out) = reply(&view, &req, anon());
    let ias = ianas(&m);
    assert_eq!(ias.len(), 2);
    // Requested lifetimes longer than the lease are cut to it; the off-link hint is ignored.
    assert_eq!(
        ia_addrs(&ias[0]),
        vec![
            (ip("fd00:1::10"), LEASE, LEASE),
            (ip("fd00:1::11"), LEASE, LEASE)
        ]
    );
    // A configured address is offered once per prefix: the second IA gets none.
    assert!(ia_addrs(&ias[1]).is_empty());
    assert_eq!(ia_status(&ias[1]), Some(Status::NoAddrsAvail));
    // Static only: no temporary addresses.
    let ta = raw_opt(&out, 4).unwrap();
    assert_eq!(&ta[..4], &7u32.to_be_bytes());
    assert_eq!(&ta[8..10], &2u16.to_be_bytes(), "IA_TA status NoAddrsAvail");
}

#[test]
fn shorter_requested_lifetimes_are_honoured() {
    let view = std_view();
    let req = Msg::new(SOLICIT)
        .client(&duid_ll(MAC1))
        .ia_na(1, &[("fd00:1::10", 200, 400)]);
    let (_, m, _) = reply(&view, &req, anon());
    let ia = &ianas(&m)[0];
    assert_eq!(
        ia_addrs(ia),
        vec![
            (ip("fd00:1::10"), 200, 400),
            (ip("fd00:1::11"), LEASE, LEASE)
        ]
    );
    assert_eq!(
        (ia.t1, ia.t2),
        (100, 175),
        "T1/T2 from the shortest lifetime"
    );
}

#[test]
fn server_identifier_rules() {
    let view = std_view();
    for ty in [SOLICIT, CONFIRM, REBIND] {
        let req = Msg::new(ty)
            .client(&duid_ll(MAC1))
            .server(&server_duid())
            .ia_na(1, &[("fd00:1::10", 0, 0)]);
        assert_eq!(
            ignored(&view, &req, anon()),
            Ignore::UnexpectedServerId { msg: ty }
        );
    }
    for ty in [REQUEST, RENEW, RELEASE, DECLINE] {
        let base = Msg::new(ty)
            .client(&duid_ll(MAC1))
            .ia_na(1, &[("fd00:1::10", 0, 0)]);
        assert_eq!(
            ignored(&view, &base, anon()),
            Ignore::OtherServer { msg: ty }
        );
        let other = base.clone().server(&duid_ll(UNKNOWN));
        assert_eq!(
            ignored(&view, &other, anon()),
            Ignore::OtherServer { msg: ty }
        );
        assert!(matches!(
            answer(&view, &base.server(&server_duid()).bytes(), anon()).0,
            Outcome::Reply { .. }
        ));
    }
    let info = Msg::new(INFO_REQ).server(&duid_ll(UNKNOWN));
    assert_eq!(
        ignored(&view, &info, anon()),
        Ignore::OtherServer { msg: INFO_REQ }
    );
    for ty in [SOLICIT, REQUEST, RENEW, REBIND, CONFIRM, RELEASE, DECLINE] {
        let req = Msg::new(ty).server(&server_duid()).ia_na(1, &[]);
        let i = ignored(&view, &req, anon());
        assert!(
            matches!(
                i,
                Ignore::NoClientId { .. } | Ignore::UnexpectedServerId { .. }
            ),
            "{ty}: {i:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Request, Renew, Rebind

fn request(duid: &[u8], addrs: &[(&str, u32, u32)]) -> Msg {
    Msg::new(REQUEST)
        .client(duid)
        .server(&server_duid())
        .oro(ORO)
        .ia_na(0x11, addrs)
}

#[test]
fn request_gets_the_port_addresses() {
    let view = std_view();
    let (ty, m, out) = reply(
        &view,
        &request(&duid_ll(MAC1), &[("fd00:1::10", 0, 0)]),
        anon(),
    );
    assert_eq!(ty, MessageType::Reply);
    let ia = &ianas(&m)[0];
    assert_eq!(
        ia_addrs(ia),
        vec![
            (ip("fd00:1::10"), LEASE, LEASE),
            (ip("fd00:1::11"), LEASE, LEASE)
        ]
    );
    assert_eq!((ia.t1, ia.t2), (T1, T2));
    assert_eq!(status(&m).map(|s| s.0), Some(Status::Success));
    assert_eq!(dns(&m), Some(vec![ip("fd00:1::2")]));
    assert_eq!(raw_opt(&out, 24).as_deref(), Some(SEARCH));
    assert!(!has(&m, 7), "no preference in a Reply to Request");
}

#[test]
fn request_for_addresses_that_are_not_the_clients() {
    let view = std_view();
    // Another port's address on our link: ours are given, that one gets zero lifetimes.
    let (_, m, _) = reply(
        &view,
        &request(&duid_ll(MAC1), &[("fd00:1::20", 0, 0)]),
        anon(),
    );
    assert_eq!(
        ia_addrs(&ianas(&m)[0]),
        vec![
            (ip("fd00:1::10"), LEASE, LEASE),
            (ip("fd00:1::11"), LEASE, LEASE),
            (ip("fd00:1::20"), 0, 0)
        ]
    );
    // An address off our link: NotOnLink for that IA (the client restarts with a Solicit).
    let (_, m, _) = reply(
        &view,
        &request(&duid_ll(MAC1), &[("2001:db8:9::5", 0, 0)]),
        anon(),
    );
    let ia = &ianas(&m)[0];
    assert!(ia_addrs(ia).is_empty());
    assert_eq!(ia_status(ia), Some(Status::NotOnLink));
    assert_eq!(status(&m).map(|s| s.0), Some(Status::NoAddrsAvail));
    // A client that is no port (or whose port went away) is told there is nothing for it.
    let (_, m, _) = reply(
        &view,
        &request(&duid_ll(UNKNOWN), &[("fd00:1::10", 0, 0)]),
        anon(),
    );
    let ia = &ianas(&m)[0];
    assert!(ia_addrs(ia).is_empty());
    assert_eq!(ia_status(ia), Some(Status::NoAddrsAvail));
    assert_eq!(status(&m).map(|s| s.0), Some(Status::NoAddrsAvail));
    assert!(dns(&m).is_none());
}

#[test]
fn renew_and_rebind_extend_the_static_binding() {
    let view = std_view();
    for (ty, with_server) in [(RENEW, true), (REBIND, false)] {
        let mut req = Msg::new(ty).client(&duid_en(3)).oro(ORO);
        if with_server {
            req = req.server(&server_duid());
        }
        // A DUID this server never saw (e.g. after an agent restart, or a new DUID): static.
        let req = req.ia_na(5, &[("fd00:1::10", 600, 600), ("fd00:1::99", 600, 600)]);
        let (ty_out, m, _) = reply(&view, &req, from_mac(MAC1));
        assert_eq!(ty_out, MessageType::Reply);
        let ia = &ianas(&m)[0];
        assert_eq!(ia.id, 5);
        assert_eq!(
            ia_addrs(ia),
            vec![
                (ip("fd00:1::10"), LEASE, LEASE),
                (ip("fd00:1::11"), LEASE, LEASE),
                (ip("fd00:1::99"), 0, 0)
            ],
            "{ty}"
        );
        assert_eq!(dns(&m), Some(vec![ip("fd00:1::2")]));
    }
}

#[test]
fn renew_from_unknown_clients() {
    let view = std_view();
    let renew = Msg::new(RENEW)
        .client(&duid_ll(UNKNOWN))
        .server(&server_duid())
        .ia_na(5, &[("fd00:1::10", 600, 600)])
        .ia_ta(6);
    let (_, m, out) = reply(&view, &renew, anon());
    let ia = &ianas(&m)[0];
    assert!(ia_addrs(ia).is_empty());
    assert_eq!(ia_status(ia), Some(Status::NoBinding));
    let ta = raw_opt(&out, 4).unwrap();
    assert_eq!(&ta[8..10], &3u16.to_be_bytes(), "IA_TA NoBinding");
    // Rebind: not authoritative, another server may know the client.
    let rebind = Msg::new(REBIND)
        .client(&duid_ll(UNKNOWN))
        .ia_na(5, &[("fd00:1::10", 600, 600)]);
    assert!(matches!(
        ignored(&view, &rebind, anon()),
        Ignore::UnknownClient { msg: REBIND, .. }
    ));
}

// ---------------------------------------------------------------------------------------------
// Confirm, Release, Decline

#[test]
fn confirm_checks_the_link_only() {
    let view = std_view();
    let confirm =
        |addrs: &[(&str, u32, u32)]| Msg::new(CONFIRM).client(&duid_en(1)).ia_na(1, addrs);
    let (_, m, _) = reply(
        &view,
        &confirm(&[("fd00:1::10", 0, 0), ("fd00:2::77", 0, 0)]),
        anon(),
    );
    assert_eq!(status(&m).map(|s| s.0), Some(Status::Success));
    assert!(ianas(&m).is_empty() && dns(&m).is_none());
    let (_, m, _) = reply(
        &view,
        &confirm(&[("fd00:1::10", 0, 0), ("fd00:3::1", 0, 0)]),
        anon(),
    );
    assert_eq!(status(&m).map(|s| s.0), Some(Status::NotOnLink));
    assert_eq!(
        ignored(&view, &confirm(&[]), anon()),
        Ignore::ConfirmWithoutAddresses
    );
}

#[test]
fn release_and_decline_are_acknowledged() {
    let view = std_view();
    for (ty, text) in [(RELEASE, "release received"), (DECLINE, "success")] {
        let req = Msg::new(ty)
            .client(&duid_ll(MAC1))
            .server(&server_duid())
            .ia_na(1, &[("fd00:1::10", 0, 0), ("fd00:1::11", 0, 0)])
            .ia_na(2, &[("fd00:1::20", 0, 0)]);
        let (o, out) = answer(&view, &req.bytes(), anon());
        assert_eq!(
            o,
            Outcome::Reply {
                delivery: Delivery::Client,
                request: ty,
                reply: 7,
                client: Some(MacAddr(MAC1)),
            }
        );
        let m = Message::from_bytes(&out).unwrap();
        assert_eq!(status(&m), Some((Status::Success, text.to_string())));
        // Only the IA naming an address that is not the client's comes back, with NoBinding.
        let ias = ianas(&m);
        assert_eq!(ias.len(), 1);
        assert_eq!(ias[0].id, 2);
        assert_eq!(ia_addrs(&ias[0]), vec![(ip("fd00:1::20"), 0, 0)]);
        assert_eq!(ia_status(&ias[0]), Some(Status::NoBinding));
    }
    // The binding is static: the next Solicit offers the same addresses.
    let (_, m, _) = reply(&view, &solicit(&duid_ll(MAC1)), anon());
    assert_eq!(ia_addrs(&ianas(&m)[0]).len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Information-Request (stateless) and options

fn info(duid: Option<&[u8]>, oro: &[u16]) -> Msg {
    let m = Msg::new(INFO_REQ).elapsed().oro(oro);
    match duid {
        Some(d) => m.client(d),
        None => m,
    }
}

#[test]
fn information_request_gets_options_only() {
    let view = std_view();
    // dhclient -S / dhcpcd --inform6 on the stateless subnet: port with an option of its own.
    let (ty, m, out) = reply(&view, &info(Some(&duid_ll(MAC4)), &[23, 24, 41]), anon());
    assert_eq!(ty, MessageType::Reply);
    assert!(ianas(&m).is_empty() && status(&m).is_none());
    assert_eq!(dns(&m), Some(vec![ip("2001:db8::53")]));
    assert_eq!(raw_opt(&out, 24).as_deref(), Some(SEARCH));
    assert_eq!(raw_opt(&out, 41).as_deref(), Some(&b"CET-1CEST"[..]));
    // information-refresh-time, sent unasked (dnsmasq): max(lease, 600).
    assert_eq!(raw_opt(&out, 32), Some(600u32.to_be_bytes().to_vec()));
    // Unknown clients (and clients without client identifier) get the subnet's options.
    for duid in [Some(&duid_ll(UNKNOWN)[..]), None] {
        let (_, m, out) = reply(&view, &info(duid, &[23, 24, 41]), anon());
        assert_eq!(
            dns(&m),
            Some(vec![ip("fd00:1::2")]),
            "first subnet: stateful, default DNS"
        );
        assert!(raw_opt(&out, 41).is_none());
        assert_eq!(client_id(&m), duid.map(<[u8]>::to_vec));
    }
    // Information-Request must not carry IAs.
    assert_eq!(
        ignored(
            &view,
            &info(Some(&duid_ll(MAC4)), ORO).ia_na(1, &[]),
            anon()
        ),
        Ignore::InformationRequestWithIa
    );
    // Addressed to us explicitly is fine.
    let (_, m, _) = reply(
        &view,
        &info(Some(&duid_ll(MAC4)), ORO).server(&server_duid()),
        anon(),
    );
    assert_eq!(dns(&m), Some(vec![ip("2001:db8::53")]));
}

#[test]
fn port_options_follow_the_oro_and_the_ipxe6_tag() {
    let view = std_view();
    let oro = &[23, 24, 56, 59];
    let (_, m, out) = reply(&view, &solicit(&duid_ll(MAC3)).oro(oro), anon());
    // First ORO wins (dnsmasq's opt6_find): solicit() carries [23, 24] first.
    assert!(raw_opt(&out, 59).is_none(), "59 not in the first ORO");
    assert_eq!(
        dns(&m),
        Some(vec![ip("2001:db8::99")]),
        "port dns-server overrides"
    );
    let req = Msg::new(SOLICIT)
        .client(&duid_ll(MAC3))
        .oro(oro)
        .ia_na(1, &[]);
    let (_, _, out) = reply(&view, &req, anon());
    assert_eq!(
        raw_opt(&out, 59).as_deref(),
        Some(&b"http://boot/plain.efi"[..])
    );
    let mut ntp = vec![0, 1, 0, 16];
    ntp.extend_from_slice(&ip("2001:db8::123").octets());
    assert_eq!(raw_opt(&out, 56), Some(ntp));
    // The IPv4 bootfile-name never shows up in DHCPv6.
    assert!(raw_opt(&out, 67).is_none());
    // iPXE (user class "iPXE"): the tag:ipxe6 value.
    let ipxe = req.clone().opt(15, b"\x00\x04iPXE");
    let (_, _, out) = reply(&view, &ipxe, anon());
    assert_eq!(
        raw_opt(&out, 59).as_deref(),
        Some(&b"http://boot/ipxe.efi"[..])
    );
    // No ORO at all: everything configured is sent.
    let bare = Msg::new(SOLICIT).client(&duid_ll(MAC3)).ia_na(1, &[]);
    let (_, _, out) = reply(&view, &bare, anon());
    for code in [23, 24, 56, 59] {
        assert!(raw_opt(&out, code).is_some(), "option {code}");
    }
    // An ORO without DNS: the configured DNS option is not sent, dnsmasq's default (our
    // address) is.
    let no_dns = Msg::new(SOLICIT)
        .client(&duid_ll(MAC3))
        .oro(&[59])
        .ia_na(1, &[]);
    let (_, m, out) = reply(&view, &no_dns, anon());
    assert_eq!(dns(&m), Some(vec![ip("fd00:1::2")]));
    assert!(raw_opt(&out, 24).is_none());
}

#[test]
fn dns_server_rules() {
    let dhcp2 = port(
        "dhcp-2",
        [0xfa, 0x16, 0x3e, 0, 0, 0x03],
        "network:dhcp",
        &[(S_FUL, "fd00:1::3")],
    );
    let net = |dns: &[&str], extra: Option<Value>| {
        let mut ports = std_ports();
        ports.extend(extra);
        network_with(
            vec![subnet6(S_FUL, "fd00:1::/64", Some("dhcpv6-stateful"), dns)],
            ports,
        )
    };
    let ask = |view: &NetworkView6| {
        let (_, m, out) = reply(view, &solicit(&duid_ll(MAC1)), anon());
        (dns(&m), raw_opt(&out, 23))
    };
    // Explicit list.
    let v = build(&net(&["2001:db8::1", "2001:db8::2"], None), &cfg());
    assert_eq!(ask(&v).0, Some(vec![ip("2001:db8::1"), ip("2001:db8::2")]));
    // ["::"]: an empty option 23, i.e. no DNS servers.
    let v = build(&net(&["::"], None), &cfg());
    assert_eq!(ask(&v).1, Some(vec![]));
    // Empty with two DHCP ports: both of them.
    let v = build(&net(&[], Some(dhcp2)), &cfg());
    assert_eq!(ask(&v).0, Some(vec![ip("fd00:1::2"), ip("fd00:1::3")]));
}

#[test]
fn client_fqdn_is_answered_when_asked() {
    let view = std_view();
    // Flags 0 (client would update AAAA itself): dnsmasq sets S and O.
    let req = solicit(&duid_ll(MAC1)).opt(39, b"\x00\x02vm\x00");
    let (_, _, out) = reply(&view, &req, anon());
    assert_eq!(
        raw_opt(&out, 39).as_deref(),
        Some(&b"\x03\x06vm-one\x0eopenstacklocal\x00"[..])
    );
    // Generated names for ports without dns_assignment.
    let req = solicit(&duid_ll(MAC2)).opt(39, b"\x01");
    let (_, _, out) = reply(&view, &req, anon());
    assert_eq!(
        raw_opt(&out, 39).as_deref(),
        Some(&b"\x01\x0fhost-fd00-1--20\x0eopenstacklocal\x00"[..])
    );
    let (_, _, out) = reply(&view, &solicit(&duid_ll(MAC1)), anon());
    assert!(
        raw_opt(&out, 39).is_none(),
        "not sent unless the client sends it"
    );
}

#[test]
fn lease_duration_and_configured_renewal_times() {
    let net = network_with(std_subnets(), std_ports());
    let infinite = build(
        &net,
        &ServeConfig {
            dhcp_lease_duration: -1,
            ..cfg()
        },
    );
    let (_, m, _) = reply(&infinite, &solicit(&duid_ll(MAC1)), anon());
    let ia = &ianas(&m)[0];
    assert_eq!((ia.t1, ia.t2), (u32::MAX, u32::MAX));
    assert_eq!(ia_addrs(ia)[0], (ip("fd00:1::10"), u32::MAX, u32::MAX));
    let configured = build(
        &net,
        &ServeConfig {
            dhcp_lease_duration: 3600,
            dhcp_renewal_time: 60,
            dhcp_rebinding_time: 120,
            ..cfg()
        },
    );
    let (_, m, _) = reply(&configured, &solicit(&duid_ll(MAC1)), anon());
    let ia = &ianas(&m)[0];
    assert_eq!((ia.t1, ia.t2), (60, 120));
    assert_eq!(ia_addrs(ia)[0], (ip("fd00:1::10"), 3600, 3600));
    let (_, _, out) = reply(&configured, &info(None, &[]), anon());
    assert_eq!(raw_opt(&out, 32), Some(3600u32.to_be_bytes().to_vec()));
}

#[test]
fn networks_without_dhcpv6_are_not_served() {
    let slaac_only = network_with(
        vec![subnet6(S_SLAAC, "fd00:3::/64", Some("slaac"), &[])],
        std_ports(),
    );
    let v = build(&slaac_only, &cfg());
    assert!(!v.is_served());
    assert_eq!(
        ignored(&v, &solicit(&duid_ll(MAC5)), anon()),
        Ignore::NotServed
    );
    assert_eq!(ignored(&v, &info(None, ORO), anon()), Ignore::NotServed);
    // Without our own port we have no DUID: nothing is answered.
    let net = network_with(std_subnets(), std_ports());
    let v = NetworkView6::build(&net, "not-our-port", &cfg());
    assert_eq!(
        ignored(&v, &solicit(&duid_ll(MAC1)), anon()),
        Ignore::NotServed
    );
}

#[test]
fn server_messages_and_unknown_types_are_ignored() {
    let view = std_view();
    for ty in [2u8, 7, 10, 13] {
        assert_eq!(
            ignored(&view, &Msg::new(ty).client(&duid_ll(MAC1)), anon()),
            Ignore::ServerMessage(ty)
        );
    }
    for ty in [0u8, 14, 15, 200] {
        assert_eq!(
            ignored(&view, &Msg::new(ty).client(&duid_ll(MAC1)), anon()),
            Ignore::UnsupportedMessageType(ty)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Relays

fn relay_forw(link: &str, peer: &str, inner: &[u8], extra: &[u8]) -> Vec<u8> {
    let mut m = vec![12, 0];
    m.extend(ip(link).octets());
    m.extend(ip(peer).octets());
    m.extend_from_slice(extra);
    m.extend(tlv(9, inner));
    m
}

/// Unwraps our Relay-Reply: (hop, link, peer, other options, inner message bytes).
/// Hop count, link and peer addresses, echoed options, inner message.
type RelayRepl = (u8, Ipv6Addr, Ipv6Addr, Vec<(u16, Vec<u8>)>, Vec<u8>);

fn relay_repl(out: &[u8]) -> RelayRepl {
    assert_eq!(out[0], 13);
    let mut link = [0u8; 16];
    link.copy_from_slice(&out[2..18]);
    let mut peer = [0u8; 16];
    peer.copy_from_slice(&out[18..34]);
    let mut others = Vec::new();
    let mut inner = Vec::new();
    let mut area = &out[34..];
    while area.len() >= 4 {
        let c = u16::from_be_bytes([area[0], area[1]]);
        let len = usize::from(u16::from_be_bytes([area[2], area[3]]));
        let data = area[4..4 + len].to_vec();
        if c == 9 {
            inner = data;
        } else {
            others.push((c, data));
        }
        area = &area[4 + len..];
    }
    (out[1], link.into(), peer.into(), others, inner)
}

#[test]
fn relayed_requests_are_answered_through_the_relay() {
    let view = std_view();
    let inner = solicit(&duid_en(4)).bytes();
    let mac79 = [&[0u8, 1][..], &MAC1[..]].concat();
    let req = relay_forw(
        "fd00:1::1",
        "fe80::abcd",
        &inner,
        &[tlv(18, b"ge-0/0/1"), tlv(79, &mac79)].concat(),
    );
    let src = from_mac(UNKNOWN); // the relay's MAC: never used for relayed clients
    let (o, out) = answer(&view, &req, src);
    assert!(
        matches!(
            o,
            Outcome::Reply {
                delivery: Delivery::Relay,
                request: 1,
                reply: 2,
                ..
            }
        ),
        "{o:?}"
    );
    check_wellformed(&out);
    let (hop, link, peer, others, inner_reply) = relay_repl(&out);
    assert_eq!((hop, link, peer), (0, ip("fd00:1::1"), ip("fe80::abcd")));
    assert_eq!(
        others,
        vec![(18, b"ge-0/0/1".to_vec())],
        "interface-id echoed, 79 not"
    );
    let m = Message::from_bytes(&inner_reply).unwrap();
    assert_eq!(ia_addrs(&ianas(&m)[0]).len(), 2);
    // Two levels, the inner one with a zero link address (RFC 6221): the outer link counts.
    let two = relay_forw(
        "fd00:1::1",
        "fe80::1",
        &relay_forw("::", "fe80::abcd", &inner, &tlv(79, &mac79)),
        &[],
    );
    let (o, out) = answer(&view, &two, src);
    assert!(
        matches!(
            o,
            Outcome::Reply {
                delivery: Delivery::Relay,
                ..
            }
        ),
        "{o:?}"
    );
    check_wellformed(&out);
    let (_, _, _, _, level2) = relay_repl(&out);
    let (_, _, _, _, inner_reply) = relay_repl(&level2);
    assert!(Message::from_bytes(&inner_reply).is_ok());
    // From a link we do not serve.
    let far = relay_forw("2001:db8:77::1", "fe80::abcd", &inner, &tlv(79, &mac79));
    assert_eq!(
        answer(&view, &far, src).0,
        Outcome::Ignored(Ignore::UnservedLink {
            link: ip("2001:db8:77::1")
        })
    );
    // No MAC anywhere (no option 79, peer not EUI-64): unknown.
    let anon_relay = relay_forw("fd00:1::1", "fe80::abcd", &inner, &[]);
    assert!(matches!(
        answer(&view, &anon_relay, src).0,
        Outcome::Ignored(Ignore::UnknownClient { .. })
    ));
    // Peer address in EUI-64 form.
    let eui = relay_forw("fd00:1::1", &eui64(MAC1).addr.to_string(), &inner, &[]);
    assert!(matches!(answer(&view, &eui, src).0, Outcome::Reply { .. }));
}

#[test]
fn relays_are_answered_only_from_macs_that_are_no_vm_port() {
    let view = std_view();
    let inner = solicit(&duid_en(4)).bytes();
    let mac79 = [&[0u8, 1][..], &MAC1[..]].concat();
    let req = relay_forw("fd00:1::1", "fe80::abcd", &inner, &tlv(79, &mac79));
    // A VM on the segment relaying for a known MAC: it would get that port's lease.
    assert_eq!(
        answer(&view, &req, from_mac(MAC2)).0,
        Outcome::Ignored(Ignore::RelayFromPort { mac: MacAddr(MAC2) })
    );
    // A relay whose frame was not seen cannot be told from a VM.
    for link in [Link::Missed, Link::Unknown] {
        let src = Source {
            link,
            ..from_mac(UNKNOWN)
        };
        assert_eq!(
            answer(&view, &req, src).0,
            Outcome::Ignored(Ignore::UnverifiedRelay)
        );
    }
    // A router's port is no VM's: it may relay.
    let router = [0xfa, 0x16, 0x3e, 0, 0, 0x01];
    let mut ports = std_ports();
    ports.push(port(
        "r1",
        router,
        "network:router_interface",
        &[(S_V4, "10.0.0.1")],
    ));
    let view = build(&network_with(std_subnets(), ports), &cfg());
    assert!(matches!(
        answer(&view, &req, from_mac(router)).0,
        Outcome::Reply { .. }
    ));
    assert!(matches!(
        answer(&view, &req, from_mac(MAC2)).0,
        Outcome::Ignored(Ignore::RelayFromPort { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Performance contract and robustness

#[test]
fn respond_does_not_allocate() {
    let view = std_view();
    let reqs = [
        solicit(&duid_ll(MAC1)).bytes(),
        solicit(&duid_ll(MAC3)).opt(15, b"\x00\x04iPXE").bytes(),
        request(&duid_en(3), &[("fd00:1::10", 0, 0)]).bytes(),
        info(Some(&duid_ll(MAC4)), &[23, 24, 41]).bytes(),
        relay_forw(
            "fd00:1::1",
            "fe80::abcd",
            &solicit(&duid_ll(MAC1)).bytes(),
            &tlv(18, b"x"),
        ),
        vec![0xff; 3],
    ];
    let mut out = Vec::with_capacity(1500);
    let src = from_mac(MAC1);
    for r in &reqs {
        respond(r, &src, &view, &mut out); // warm-up
    }
    let before = allocations();
    for _ in 0..100 {
        for r in &reqs {
            std::hint::black_box(respond(r, &src, &view, &mut out));
        }
    }
    assert_eq!(allocations(), before, "respond() allocated");
}

fn mutate(rng: &mut XorShift, seed: &[u8]) -> Vec<u8> {
    let mut m = seed.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(6) {
            0 if !m.is_empty() => {
                let i = rng.below(m.len());
                m[i] ^= 1 << rng.below(8);
            }
            1 if !m.is_empty() => {
                let i = rng.below(m.len());
                m[i] = rng.byte();
            }
            2 => m.truncate(rng.below(m.len() + 1)),
            3 => {
                // Corrupt an option length field near a random position.
                if m.len() > 6 {
                    let i = 4 + rng.below(m.len() - 6);
                    m[i] = rng.byte();
                    m[i + 1] = rng.byte();
                }
            }
            4 => {
                let code = [1u16, 2, 3, 4, 5, 6, 9, 13, 14, 15, 16, 17, 18, 39, 79][rng.below(15)];
                let len = rng.below(40);
                let data: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
                let at = if m.len() >= 4 {
                    4 + rng.below(m.len() - 3)
                } else {
                    m.len()
                };
                let at = at.min(m.len());
                let t = tlv(code, &data);
                m.splice(at..at, t);
            }
            _ => {
                let len = rng.below(8);
                m.extend((0..len).map(|_| rng.byte()));
            }
        }
    }
    m
}

#[test]
fn random_and_mutated_inputs_never_panic() {
    let view = std_view();
    let seeds: Vec<Vec<u8>> = vec![
        solicit(&duid_ll(MAC1))
            .rapid()
            .opt(39, b"\x00\x02vm\x00")
            .bytes(),
        request(
            &duid_ll(MAC1),
            &[("fd00:1::10", 0, 0), ("2001:db8::1", 1, 1)],
        )
        .bytes(),
        Msg::new(RENEW)
            .client(&duid_ll(MAC3))
            .server(&server_duid())
            .ia_na(1, &[("fd00:1::30", 9, 9)])
            .ia_ta(2)
            .bytes(),
        Msg::new(CONFIRM)
            .client(&duid_ll(MAC1))
            .ia_na(1, &[("fd00:1::10", 0, 0)])
            .bytes(),
        Msg::new(RELEASE)
            .client(&duid_ll(MAC1))
            .server(&server_duid())
            .ia_na(1, &[("fd00:9::1", 0, 0)])
            .bytes(),
        info(Some(&duid_ll(MAC4)), &[23, 24, 41, 32])
            .opt(15, b"\x00\x04iPXE")
            .bytes(),
        relay_forw(
            "fd00:1::1",
            "fe80::abcd",
            &relay_forw(
                "::",
                "fe80::1",
                &solicit(&duid_en(2)).bytes(),
                &tlv(79, &[0, 1, 0xfa, 0x16, 0x3e, 0, 0, 0x11]),
            ),
            &tlv(18, b"eth0"),
        ),
    ];
    let mut rng = XorShift::new(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::with_capacity(1500);
    let capacity = out.capacity();
    let (mut replies, mut ignored_n, mut malformed) = (0, 0, 0);
    let srcs = [anon(), from_mac(MAC1), eui64(MAC2)];
    for i in 0..60_000 {
        let input = if i % 3 == 0 {
            let len = rng.below(300);
            let mut v: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
            if !v.is_empty() && i % 2 == 0 {
                v[0] = (rng.below(14)) as u8; // valid-looking message types
            }
            v
        } else {
            let seed = rng.below(seeds.len());
            mutate(&mut rng, &seeds[seed])
        };
        let src = srcs[i % srcs.len()];
        match respond(&input, &src, &view, &mut out) {
            Outcome::Reply { .. } => {
                replies += 1;
                if std::panic::catch_unwind(|| check_wellformed(&out)).is_err() {
                    panic!("bad reply {out:02x?}\nto {input:02x?}");
                }
                assert_eq!(out.capacity(), capacity, "no reallocation");
            }
            Outcome::Ignored(_) => {
                ignored_n += 1;
                assert!(out.is_empty());
            }
            Outcome::Malformed(_) => {
                malformed += 1;
                assert!(out.is_empty());
            }
        }
    }
    // The corpus must exercise all three outcomes, or the test proves little.
    assert!(
        replies > 1000 && ignored_n > 1000 && malformed > 1000,
        "{replies} {ignored_n} {malformed}"
    );
}

#[test]
fn dhcproto_built_messages_are_understood() {
    // A client built with another library: dhcproto's encoder.
    use dhcproto::v6::{IAAddr, OptionCode, ORO as DhcprotoOro};
    use dhcproto::{Encodable, Encoder};
    let view = std_view();
    let mut m = Message::new_with_id(MessageType::Request, [1, 2, 3]);
    m.opts_mut().insert(DhcpOption::ClientId(duid_llt(MAC1)));
    m.opts_mut().insert(DhcpOption::ServerId(server_duid()));
    m.opts_mut().insert(DhcpOption::ORO(DhcprotoOro {
        opts: vec![OptionCode::DomainNameServers, OptionCode::DomainSearchList],
    }));
    let mut ia = IANA {
        id: 7,
        t1: 0,
        t2: 0,
        opts: Default::default(),
    };
    ia.opts.insert(DhcpOption::IAAddr(IAAddr {
        addr: ip("fd00:1::11"),
        preferred_life: 0,
        valid_life: 0,
        opts: Default::default(),
    }));
    m.opts_mut().insert(DhcpOption::IANA(ia));
    let mut bytes = Vec::new();
    m.encode(&mut Encoder::new(&mut bytes)).unwrap();
    let (o, out) = answer(&view, &bytes, anon());
    assert!(matches!(o, Outcome::Reply { reply: 7, .. }), "{o:?}");
    let r = Message::from_bytes(&out).unwrap();
    assert_eq!(r.xid(), [1, 2, 3]);
    assert_eq!(ia_addrs(&ianas(&r)[0]).len(), 2);
}
