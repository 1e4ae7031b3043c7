//! An updated view must answer exactly like a view built afresh: random port change sequences,
//! both compared through everything a responder can look up.

use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use super::*;
use crate::model::{DnsAssignment, ExtraDhcpOpt, FixedIp, Ipv6Mode};

use crate::testrng::Rng;

const MACS: usize = 14;
const CLIENT_IDS: [&str; 3] = [
    "00:02:00:00:ab:11:de:ad:be:ef",
    "01:aa:bb:cc:dd:ee:ff",
    "host-x",
];

fn mac(i: usize) -> MacAddr {
    MacAddr([0xfa, 0x16, 0x3e, 0, 0, i as u8])
}

fn subnet(id: &str, cidr: &str, v6_mode: Option<Ipv6Mode>) -> Subnet {
    let cidr: IpNetwork = cidr.parse().unwrap();
    Subnet {
        id: id.into(),
        ip_version: if cidr.is_ipv4() {
            IpVersion::V4
        } else {
            IpVersion::V6
        },
        cidr,
        gateway_ip: None,
        enable_dhcp: true,
        dns_nameservers: vec![],
        host_routes: vec![],
        ipv6_ra_mode: None,
        ipv6_address_mode: v6_mode,
        subnetpool_id: None,
        segment_id: None,
    }
}

fn fixed(subnet: &str, ip: IpAddr) -> FixedIp {
    FixedIp {
        subnet_id: subnet.into(),
        ip_address: ip,
    }
}

fn opt(name: &str, value: &str, v6: bool) -> ExtraDhcpOpt {
    ExtraDhcpOpt {
        opt_name: name.into(),
        opt_value: Some(value.into()),
        ip_version: if v6 { IpVersion::V6 } else { IpVersion::V4 },
    }
}

fn random_port(rng: &mut Rng, serial: usize) -> Arc<Port> {
    let mut fixed_ips = Vec::new();
    for _ in 0..1 + rng.below(2) {
        fixed_ips.push(match rng.below(4) {
            0 | 1 => fixed(
                "s4",
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 10 + rng.below(10) as u8)),
            ),
            2 => fixed(
                "s6",
                IpAddr::V6(Ipv6Addr::new(
                    0xfd00,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    10 + rng.below(8) as u16,
                )),
            ),
            _ => fixed(
                "s6l",
                IpAddr::V6(Ipv6Addr::new(
                    0xfd01,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    10 + rng.below(8) as u16,
                )),
            ),
        });
    }
    let mut extra_dhcp_opts = Vec::new();
    if rng.chance(25) {
        extra_dhcp_opts.push(opt("bootfile-name", "pxe.0", false));
    }
    if rng.chance(15) {
        extra_dhcp_opts.push(opt("tag:ipxe,bootfile-name", "http://boot/ipxe", false));
    }
    if rng.chance(15) {
        extra_dhcp_opts.push(opt("dns-server", "[fd00::53]", true));
    }
    if rng.chance(20) {
        extra_dhcp_opts.push(opt("client-id", CLIENT_IDS[rng.below(3)], rng.chance(50)));
    }
    let dns_assignment = if rng.chance(30) {
        fixed_ips
            .iter()
            .map(|f| DnsAssignment {
                ip_address: f.ip_address,
                hostname: format!("vm{serial}"),
                fqdn: format!("vm{serial}.example."),
            })
            .collect()
    } else {
        vec![]
    };
    let device_owner = match rng.below(20) {
        0 => "network:router_interface",
        1 => "network:floatingip",
        _ => "compute:nova",
    };
    Arc::new(Port {
        id: format!("p{serial}"),
        mac_address: mac(rng.below(MACS)),
        device_id: String::new(),
        device_owner: device_owner.into(),
        admin_state_up: true,
        fixed_ips,
        extra_dhcp_opts,
        dns_assignment,
        binding_host_id: String::new(),
        revision_number: None,
    })
}

fn network(ports: Vec<Arc<Port>>) -> Network {
    let own = Arc::new(Port {
        id: "dhcp".into(),
        mac_address: MacAddr([0xfa, 0x16, 0x3e, 0xff, 0, 2]),
        device_id: String::new(),
        device_owner: OWNER_DHCP.into(),
        admin_state_up: true,
        fixed_ips: vec![
            fixed("s4", "10.0.0.2".parse().unwrap()),
            fixed("s6", "fd00::2".parse().unwrap()),
            fixed("s6l", "fd01::2".parse().unwrap()),
        ],
        extra_dhcp_opts: vec![],
        dns_assignment: vec![],
        binding_host_id: String::new(),
        revision_number: None,
    });
    let mut all = vec![own];
    all.extend(ports);
    Network {
        id: "n".into(),
        admin_state_up: true,
        mtu: Some(1450),
        subnets: vec![
            subnet("s4", "10.0.0.0/24", None),
            subnet("s6", "fd00::/64", Some(Ipv6Mode::Dhcpv6Stateful)),
            subnet("s6l", "fd01::/64", Some(Ipv6Mode::Dhcpv6Stateless)),
        ],
        non_local_subnets: vec![],
        ports: all,
    }
}

fn set4(v: &NetworkView, idx: u32) -> String {
    let s = v.set(idx);
    let entries: Vec<(u8, bool, bool, &[u8])> = v
        .entries(s)
        .iter()
        .map(|e| (e.code, e.forced, e.string, v.data(e)))
        .collect();
    format!(
        "{entries:?} {:?} {:?} {:?} {}",
        s.siaddr, s.t1, s.t2, s.hostname_configured
    )
}

fn binding4(v: &NetworkView, idx: u32) -> String {
    let b = v.binding(idx);
    format!(
        "{} {} {:?} [{}] [{}]",
        b.ip,
        v.subnet(b.subnet).id,
        v.hostname(b),
        set4(v, b.sets[0]),
        set4(v, b.sets[1])
    )
}

/// Every lookup a responder can make, with everything it would read, in lookup order.
fn dump(v: &NetworkView) -> String {
    let mut out = String::new();
    let list = |out: &mut String, ids: &[u32]| {
        for &i in ids {
            let _ = write!(out, "\n    {}", binding4(v, i));
        }
    };
    let mut macs: Vec<_> = v.by_mac.iter().collect();
    macs.sort();
    for (m, ids) in macs {
        let _ = write!(out, "\nmac {m}");
        list(&mut out, ids);
    }
    let mut cids: Vec<_> = v.by_client_id.iter().collect();
    cids.sort();
    for (c, ids) in cids {
        let _ = write!(out, "\nclient-id {c:?}");
        list(&mut out, ids);
    }
    let mut ips: Vec<_> = v.by_ip.iter().collect();
    ips.sort();
    for (ip, ids) in ips {
        let _ = write!(out, "\nip {ip}");
        list(&mut out, ids);
    }
    let _ = write!(out, "\nv4 bindings {}", v.v4_binding_count());
    let v6 = v.v6();
    let _ = write!(
        out,
        "\nv6 bindings {} subnets {} served {} duid {:?}",
        v6.binding_count(),
        v6.subnet_count(),
        v6.is_served(),
        v6.server_duid()
    );
    let client6 = |c: u32| {
        let c = v6.client(c);
        let bindings: Vec<String> = v6
            .bindings_of(c)
            .iter()
            .map(|b| format!("{} {} {:?}", b.ip, v6.subnet(b.subnet).id, v6.hostname(b)))
            .collect();
        let subnets: Vec<String> = v6
            .subnets_of(c)
            .iter()
            .map(|cs| {
                let sets = cs.sets.map(|s| {
                    v6.entries(v6.set(s))
                        .iter()
                        .map(|e| (e.code, v6.data(e).to_vec()))
                        .collect::<Vec<_>>()
                });
                format!("{} {sets:?}", v6.subnet(cs.subnet).id)
            })
            .collect();
        format!("{} {bindings:?} {subnets:?}", c.mac)
    };
    // The whole candidate list, in lookup order: ask again, refusing what was found.
    let all = |duid: Option<&[u8]>, macs: &[MacAddr]| {
        let mut seen = Vec::new();
        while let Some(c) = v6.find_client(duid, macs, |c| {
            !seen.iter().any(|s: &Client6Ref| std::ptr::eq(s.0, c))
        }) {
            seen.push(Client6Ref(v6.client(c)));
            let _ = c;
        }
        seen.iter()
            .map(|s| client6(index_of(v6, s.0)))
            .collect::<Vec<_>>()
    };
    for m in 0..MACS {
        let _ = write!(out, "\nv6 mac {}: {:?}", mac(m), all(None, &[mac(m)]));
    }
    for id in CLIENT_IDS {
        let duid = crate::codec::options::parse_client_id(id).unwrap().unwrap();
        let _ = write!(out, "\nv6 duid {id}: {:?}", all(Some(&duid), &[]));
    }
    out
}

struct Client6Ref<'a>(&'a crate::view::v6::Client6);

fn index_of(v6: &NetworkView6, c: &crate::view::v6::Client6) -> u32 {
    (0..)
        .find(|&i| std::ptr::eq(v6.client(i), c))
        .expect("client of this view")
}

#[test]
fn updated_views_answer_like_fresh_ones() {
    let cfg = ServeConfig {
        dns_domain: "example.org".into(),
        ..ServeConfig::default()
    };
    let (mut patched, mut rebuilt) = (0, 0);
    for seed in 1..=40u64 {
        let mut rng = Rng::star(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut serial = 0;
        let initial: Vec<Arc<Port>> = (0..rng.below(8))
            .map(|_| {
                serial += 1;
                random_port(&mut rng, serial)
            })
            .collect();
        let mut net = network(initial);
        let mut view = NetworkView::build(&net, "dhcp", &cfg);
        for _ in 0..60 {
            serial += 1;
            let mut ports = net.ports.clone();
            let n = ports.len();
            match rng.below(6) {
                0 | 1 => ports.push(random_port(&mut rng, serial)),
                2 => ports.insert(1 + rng.below(n), random_port(&mut rng, serial)),
                3 if n > 1 => {
                    ports.remove(1 + rng.below(n - 1));
                }
                4 if n > 1 => {
                    // A changed port keeps its id.
                    let at = 1 + rng.below(n - 1);
                    let mut p = random_port(&mut rng, serial);
                    Arc::make_mut(&mut p).id = ports[at].id.clone();
                    ports[at] = p;
                }
                _ => {
                    for _ in 0..2 {
                        ports.push(random_port(&mut rng, serial));
                        serial += 1;
                    }
                }
            }
            let next = Network {
                ports,
                ..net.clone()
            };
            let fresh = NetworkView::build(&next, "dhcp", &cfg);
            view = match view.update(&net, &next, &cfg) {
                Some(v) => {
                    patched += 1;
                    v
                }
                None => {
                    rebuilt += 1;
                    NetworkView::build(&next, "dhcp", &cfg)
                }
            };
            assert_eq!(dump(&view), dump(&fresh), "seed {seed}");
            net = next;
        }
    }
    assert!(
        patched > 1000 && rebuilt > 100,
        "patched {patched}, rebuilt {rebuilt}"
    );
}

#[test]
fn network_level_changes_are_never_patched() {
    let cfg = ServeConfig::default();
    let mut rng = Rng::star(3);
    let net = network(vec![random_port(&mut rng, 1)]);
    let view = NetworkView::build(&net, "dhcp", &cfg);
    let mtu = Network {
        mtu: Some(1400),
        ..net.clone()
    };
    assert!(view.update(&net, &mtu, &cfg).is_none());
    let mut ports = net.ports.clone();
    let mut own = (*ports[0]).clone();
    own.fixed_ips.pop();
    ports[0] = Arc::new(own);
    let own_changed = Network {
        ports,
        ..net.clone()
    };
    assert!(view.update(&net, &own_changed, &cfg).is_none());
}
