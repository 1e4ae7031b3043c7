//! The expected strings of Neutron's `neutron/tests/unit/agent/linux/test_dhcp.py`
//! (`TestDnsmasq`), with its fake networks rebuilt as `get_network_info` JSON.
//!
//! Adaptations, all forced by parsing at the edge (see the module docs): the fake router
//! port's MAC `00:00:0f:rr:rr:rr` is not hexadecimal and becomes `00:00:0f:99:99:99`;
//! `00:16:3E:C2:77:1D` is printed in lower case; IPv6 addresses are printed in RFC 5952 form
//! (`2001:0200:feed:7ac0::1` → `2001:200:feed:7ac0::1`); integer `segment_id`s are strings.

use super::*;
use serde_json::{json, Value};

const RR_MAC: &str = "00:00:0f:99:99:99";
const SUB_D: &str = "dddddddd-dddd-dddd-dddd-dddddddddddd";
const SUB_F: &str = "ffffffff-ffff-ffff-ffff-ffffffffffff";
const SUB_E: &str = "eeeeeeee-eeee-eeee-eeee-eeeeeeeeeeee";
const SUB_C: &str = "cccccccc-cccc-cccc-cccc-cccccccccccc";
const SUB_I: &str = "iiiiiiii-iiii-iiii-iiii-iiiiiiiiiiii";
const SUB_J: &str = "jjjjjjjj-jjjj-jjjj-jjjj-jjjjjjjjjjjj";

// ---- fake subnets ----------------------------------------------------------------------------

fn v4_subnet() -> Value {
    json!({"id": SUB_D, "ip_version": 4, "cidr": "192.168.0.0/24", "gateway_ip": "192.168.0.1",
           "enable_dhcp": true, "dns_nameservers": ["8.8.8.8"],
           "host_routes": [{"destination": "20.0.0.1/24", "nexthop": "20.0.0.1"}],
           "subnetpool_id": "kkkkkkkk-kkkk-kkkk-kkkk-kkkkkkkkkkkk"})
}

fn with(mut v: Value, patch: Value) -> Value {
    for (k, x) in patch.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

fn v4_subnet2() -> Value {
    with(
        v4_subnet(),
        json!({"id": SUB_C, "cidr": "192.168.1.0/24", "gateway_ip": "192.168.1.1", "host_routes": []}),
    )
}

fn v4_subnet_segment() -> Value {
    with(
        v4_subnet(),
        json!({"id": SUB_I, "cidr": "192.168.2.0/24", "gateway_ip": "192.168.2.1",
               "host_routes": [], "segment_id": "1"}),
    )
}

fn v4_subnet_segment2() -> Value {
    with(
        v4_subnet(),
        json!({"id": SUB_J, "host_routes": [], "segment_id": "2"}),
    )
}

fn v6_subnet_stateful() -> Value {
    json!({"id": SUB_F, "ip_version": 6, "cidr": "fdca:3ba5:a17a:4ba3::/64",
           "gateway_ip": "fdca:3ba5:a17a:4ba3::1", "enable_dhcp": true,
           "host_routes": [{"destination": "2001:0200:feed:7ac0::/64", "nexthop": "2001:0200:feed:7ac0::1"}],
           "dns_nameservers": ["2001:0200:feed:7ac0::1"],
           "ipv6_ra_mode": null, "ipv6_address_mode": "dhcpv6-stateful"})
}

fn v6_subnet_unset() -> Value {
    with(v6_subnet_stateful(), json!({"ipv6_address_mode": null}))
}

fn v6_subnet_slaac() -> Value {
    json!({"id": SUB_E, "ip_version": 6, "cidr": "ffda:3ba5:a17a:4ba3::/64",
           "gateway_ip": "ffda:3ba5:a17a:4ba3::1", "enable_dhcp": true,
           "host_routes": [{"destination": "2001:0200:feed:7ac0::/64", "nexthop": "2001:0200:feed:7ac0::1"}],
           "ipv6_address_mode": "slaac", "ipv6_ra_mode": null})
}

fn v6_subnet_stateless() -> Value {
    json!({"id": SUB_E, "ip_version": 6, "cidr": "ffea:3ba5:a17a:4ba3::/64",
           "gateway_ip": "ffea:3ba5:a17a:4ba3::1", "enable_dhcp": true, "dns_nameservers": [],
           "host_routes": [], "ipv6_address_mode": "dhcpv6-stateless", "ipv6_ra_mode": null})
}

fn v4_subnet_no_dhcp() -> Value {
    json!({"id": SUB_E, "ip_version": 4, "cidr": "192.168.1.0/24", "gateway_ip": "192.168.1.1",
           "enable_dhcp": false, "host_routes": [], "dns_nameservers": []})
}

// ---- fake ports ------------------------------------------------------------------------------

fn dns(ip: &str, domain: &str) -> Value {
    let host = format!("host-{}", ip.replace(['.', ':'], "-"));
    let fqdn = if domain.is_empty() {
        host.clone()
    } else {
        format!("{host}.{domain}.")
    };
    json!({"ip_address": ip, "hostname": host, "fqdn": fqdn})
}

/// A port: `ips` are `(address, subnet id)`; every address gets a dns_assignment in `domain`
/// unless `domain` is `None`.
fn port(id: &str, mac: &str, owner: &str, ips: &[(&str, &str)], domain: Option<&str>) -> Value {
    let fixed: Vec<Value> = ips
        .iter()
        .map(|(ip, s)| json!({"ip_address": ip, "subnet_id": s}))
        .collect();
    let mut p = json!({"id": id, "mac_address": mac, "device_owner": owner,
                       "admin_state_up": true, "fixed_ips": fixed, "extra_dhcp_opts": []});
    if let Some(d) = domain {
        p["dns_assignment"] = Value::Array(ips.iter().map(|(ip, _)| dns(ip, d)).collect());
    }
    p
}

fn opt(name: &str, value: &str, version: u8) -> Value {
    json!({"opt_name": name, "opt_value": value, "ip_version": version})
}

fn with_opts(mut p: Value, opts: Vec<Value>) -> Value {
    p["extra_dhcp_opts"] = Value::Array(opts);
    p
}

fn port1_in(domain: &str) -> Value {
    port(
        "eeeeeeee-eeee-eeee-eeee-eeeeeeeeeeee",
        "00:00:80:aa:bb:cc",
        "foo1",
        &[("192.168.0.2", SUB_D)],
        Some(domain),
    )
}
fn port1() -> Value {
    port1_in("openstacklocal")
}
fn port2() -> Value {
    port(
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
        "00:00:f3:aa:bb:cc",
        "foo2",
        &[("192.168.0.3", SUB_D)],
        Some("openstacklocal"),
    )
}
fn port3() -> Value {
    port(
        "44444444-4444-4444-4444-444444444444",
        "00:00:0f:aa:bb:cc",
        "foo3",
        &[("192.168.0.4", SUB_D), ("192.168.1.2", SUB_E)],
        Some("openstacklocal"),
    )
}
fn port4() -> Value {
    port(
        "gggggggg-gggg-gggg-gggg-gggggggggggg",
        "00:16:3E:C2:77:1D",
        "foo3",
        &[
            ("192.168.0.4", SUB_D),
            ("ffda:3ba5:a17a:4ba3:216:3eff:fec2:771d", SUB_E),
        ],
        Some("openstacklocal"),
    )
}
fn port5() -> Value {
    with_opts(
        port(
            "eeeeeeee-eeee-eeee-eeee-eeeeeeeeeee",
            "00:00:0f:aa:bb:55",
            "foo5",
            &[("192.168.0.5", SUB_D)],
            Some("openstacklocal"),
        ),
        vec![opt("client-id", "test5", 4)],
    )
}
fn port6() -> Value {
    with_opts(
        port(
            "ccccccccc-cccc-cccc-cccc-ccccccccc",
            "00:00:0f:aa:bb:66",
            "foo6",
            &[("192.168.0.6", SUB_D)],
            Some("openstacklocal"),
        ),
        vec![
            opt("client-id", "test6", 4),
            opt("dns-server", "123.123.123.45", 4),
        ],
    )
}
fn v6_port_in(domain: &str) -> Value {
    port(
        "hhhhhhhh-hhhh-hhhh-hhhh-hhhhhhhhhhhh",
        "00:00:f3:aa:bb:cc",
        "foo3",
        &[("fdca:3ba5:a17a:4ba3::2", SUB_F)],
        Some(domain),
    )
}
fn v6_port() -> Value {
    v6_port_in("openstacklocal")
}
fn v6_port_extra_opt() -> Value {
    with_opts(
        port(
            "hhhhhhhh-hhhh-hhhh-hhhh-hhhhhhhhhhhh",
            "00:16:3e:c2:77:1d",
            "foo3",
            &[("ffea:3ba5:a17a:4ba3:216:3eff:fec2:771d", SUB_E)],
            Some("openstacklocal"),
        ),
        vec![
            opt("dns-server", "ffea:3ba5:a17a:4ba3::100", 6),
            opt("malicious-option\nwith-new-line", "aaa\nbbb.ccc\n", 6),
        ],
    )
}
fn dual_port_in(domain: &str) -> Value {
    port(
        "hhhhhhhh-hhhh-hhhh-hhhh-hhhhhhhhhhhh",
        "00:00:0f:aa:bb:cc",
        "foo3",
        &[("192.168.0.3", SUB_D), ("fdca:3ba5:a17a:4ba3::3", SUB_F)],
        Some(domain),
    )
}
fn dual_port_with_v6_opt() -> Value {
    with_opts(
        port(
            "hhhhhhhh-hhhh-hhhh-hhhh-hhhhhhhhhhhh",
            "00:16:3e:c2:77:1d",
            "foo3",
            &[
                ("192.168.0.3", SUB_D),
                ("ffea:3ba5:a17a:4ba3:216:3eff:fec2:771d", SUB_E),
            ],
            Some("openstacklocal"),
        ),
        vec![opt("dns-server", "ffea:3ba5:a17a:4ba3::100", 6)],
    )
}
fn router_port_in(owner: &str, ip: &str, domain: &str) -> Value {
    port(
        "rrrrrrrr-rrrr-rrrr-rrrr-rrrrrrrrrrrr",
        RR_MAC,
        owner,
        &[(ip, SUB_D)],
        Some(domain),
    )
}
fn router_port() -> Value {
    router_port_in("network:router_interface", "192.168.0.1", "openstacklocal")
}
fn router_ha_port() -> Value {
    port(
        "hahahaha-haha-haha-haha-hahahahahaha",
        "00:00:0f:aa:aa:aa",
        "network:router_ha_interface",
        &[("169.254.169.20", SUB_D)],
        None,
    )
}
fn router_port2() -> Value {
    port(
        "rrrrrrrr-rrrr-rrrr-rrrr-rrrrrrrrrrrr",
        "00:00:0f:99:99:92",
        "network:router_interface",
        &[("192.168.1.1", SUB_C)],
        Some("openstacklocal"),
    )
}
fn router_port_segment() -> Value {
    port(
        "qqqqqqqq-qqqq-qqqq-qqqq-qqqqqqqqqqqq",
        "00:00:0f:99:99:93",
        "network:router_interface",
        &[("192.168.2.1", SUB_I)],
        Some("openstacklocal"),
    )
}
fn multi_agent1() -> Value {
    port(
        "rrrrrrrr-rrrr-rrrr-rrrr-rrrrrrrrrrrr",
        "00:00:0f:dd:dd:dd",
        "network:dhcp",
        &[("192.168.0.5", SUB_D)],
        Some("openstacklocal"),
    )
}
fn multi_agent2() -> Value {
    port(
        "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa",
        "00:00:0f:ee:ee:ee",
        "network:dhcp",
        &[("192.168.0.6", SUB_D)],
        Some("openstacklocal"),
    )
}
fn dhcp_port() -> Value {
    port(
        "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaa",
        "00:00:80:aa:bb:ee",
        "network:dhcp",
        &[("192.168.0.1", SUB_D)],
        None,
    )
}

fn net(id: &str, subnets: Vec<Value>, ports: Vec<Value>) -> Network {
    Network::from_json(&json!({"id": id, "subnets": subnets, "ports": ports})).unwrap()
}

fn net_nonlocal(id: &str, subnets: Vec<Value>, nonlocal: Vec<Value>, ports: Vec<Value>) -> Network {
    Network::from_json(
        &json!({"id": id, "subnets": subnets, "non_local_subnets": nonlocal, "ports": ports}),
    )
    .unwrap()
}

const NET_C: &str = "cccccccc-cccc-cccc-cccc-cccccccccccc";
const NET_A: &str = "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa";
const NET_B: &str = "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb";
const NET_D: &str = "dddddddd-dddd-dddd-dddd-dddddddddddd";
const NET_E: &str = "eeeeeeee-eeee-eeee-eeee-eeeeeeeeeeee";
const NET_F: &str = "ffffffff-ffff-ffff-ffff-ffffffffffff";

fn dual_network_in(domain: &str) -> Network {
    net(
        NET_C,
        vec![v4_subnet(), v6_subnet_stateful()],
        vec![
            port1_in(domain),
            v6_port_in(domain),
            dual_port_in(domain),
            router_ha_port(),
            router_port_in("network:router_interface", "192.168.0.1", domain),
        ],
    )
}
fn dual_network() -> Network {
    dual_network_in("openstacklocal")
}

/// Neutron's `TestBase` configuration: isolated metadata on, default domain and lease.
fn serve() -> ServeConfig {
    ServeConfig {
        enable_isolated_metadata: true,
        ..ServeConfig::default()
    }
}

struct Fixture {
    net: Network,
    serve: ServeConfig,
    cfg: DnsmasqConfig,
    /// The port whose fixed IPs are the interface's addresses (`_make_subnet_interface_ip_map`).
    iface_port: Option<Port>,
}

impl Fixture {
    fn new(net: Network) -> Fixture {
        Fixture {
            net,
            serve: serve(),
            cfg: DnsmasqConfig::default(),
            iface_port: None,
        }
    }
    fn iface(mut self, subnet: &str, ip: &str) -> Fixture {
        let p = port(
            "iface",
            "00:00:00:00:00:01",
            "network:dhcp",
            &[(ip, subnet)],
            None,
        );
        self.iface_port = Some(serde_json::from_value(p).unwrap());
        self
    }
    fn dm(&self) -> Dnsmasq<'_> {
        let dir = PathBuf::from(format!("/dhcp/{}", self.net.id));
        Dnsmasq::new(
            &self.net,
            &self.serve,
            &self.cfg,
            &dir,
            "tap0",
            self.iface_port.as_ref(),
        )
    }
}

// ---- command line (test_spawn*) ---------------------------------------------------------------

/// `_test_spawn`'s expected list for a network, before the `extra_options`.
fn expected_cmd(net: &Network, no_resolv: &str, lease: &str, max_leases: u128) -> Vec<String> {
    let id = &net.id;
    let mut v: Vec<String> = vec![
        "dnsmasq".into(),
        "--no-hosts".into(),
        no_resolv.into(),
        format!("--pid-file=/dhcp/{id}/pid"),
        format!("--dhcp-hostsfile=/dhcp/{id}/host"),
        format!("--addn-hosts=/dhcp/{id}/addn_hosts"),
        format!("--dhcp-optsfile=/dhcp/{id}/opts"),
        format!("--dhcp-leasefile=/dhcp/{id}/leases"),
        "--dhcp-match=set:ipxe,175".into(),
        "--dhcp-userclass=set:ipxe6,iPXE".into(),
        "--local-service".into(),
        "--bind-dynamic".into(),
    ];
    let mut possible: u128 = 0;
    for s in &net.subnets {
        let stateful =
            s.ip_version == IpVersion::V4 || s.ipv6_address_mode == Some(Ipv6Mode::Dhcpv6Stateful);
        if !stateful {
            continue;
        }
        match s.cidr {
            IpNetwork::V4(c) => v.push(format!(
                "--dhcp-range=set:subnet-{},{},static,{},{lease}",
                s.id,
                c.ip(),
                c.mask()
            )),
            IpNetwork::V6(c) => v.push(format!(
                "--dhcp-range=set:subnet-{},{},static,{},{lease}",
                s.id,
                c.ip(),
                c.prefix()
            )),
        }
        possible += cidr_size(&s.cidr);
    }
    if let Some(mtu) = net.mtu {
        v.push(format!("--dhcp-option-force=option:mtu,{mtu}"));
    }
    v.push(format!("--dhcp-lease-max={}", possible.min(max_leases)));
    v
}

fn extend(mut v: Vec<String>, extra: &[&str]) -> Vec<String> {
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

#[test]
fn spawn() {
    let f = Fixture::new(dual_network());
    let exp = expected_cmd(&f.net, "--no-resolv", "86400s", 1 << 24);
    assert_eq!(
        f.dm().cmdline(),
        extend(exp, &["--conf-file=/dev/null", "--domain=openstacklocal"])
    );
}

#[test]
fn spawn_not_bridged() {
    let mut f = Fixture::new(dual_network());
    f.cfg.bridged = false;
    let mut exp = expected_cmd(&f.net, "--no-resolv", "86400s", 1 << 24);
    exp.insert(12, "--bridge-interface=tap0,tap*".into());
    assert_eq!(
        f.dm().cmdline(),
        extend(exp, &["--conf-file=/dev/null", "--domain=openstacklocal"])
    );
}

#[test]
fn spawn_infinite_lease_duration() {
    let mut f = Fixture::new(dual_network());
    f.serve.dhcp_lease_duration = -1;
    let exp = expected_cmd(&f.net, "--no-resolv", "infinite", 1 << 24);
    assert_eq!(
        f.dm().cmdline(),
        extend(exp, &["--conf-file=/dev/null", "--domain=openstacklocal"])
    );
}

#[test]
fn spawn_cfg_config_file() {
    let mut f = Fixture::new(dual_network());
    f.cfg.dnsmasq_config_file = "/foo".into();
    let exp = expected_cmd(&f.net, "--no-resolv", "86400s", 1 << 24);
    assert_eq!(
        f.dm().cmdline(),
        extend(exp, &["--conf-file=/foo", "--domain=openstacklocal"])
    );
}

#[test]
fn spawn_no_dns_domain() {
    let mut f = Fixture::new(dual_network_in(""));
    f.serve.dns_domain = String::new();
    let exp = expected_cmd(&f.net, "--no-resolv", "86400s", 1 << 24);
    assert_eq!(f.dm().cmdline(), extend(exp, &["--conf-file=/dev/null"]));
}

#[test]
fn spawn_no_dhcp_range_slaac_and_short_v6_prefix() {
    let f = Fixture::new(net(NET_B, vec![v6_subnet_slaac()], vec![port2()]));
    let exp = expected_cmd(&f.net, "--no-resolv", "86400s", 1 << 24);
    assert_eq!(
        f.dm().cmdline(),
        extend(exp, &["--conf-file=/dev/null", "--domain=openstacklocal"])
    );
    let short = with(
        v6_subnet_stateless(),
        json!({"cidr": "ffeb:3ba5:a17a:4ba3::/56"}),
    );
    let f = Fixture::new(net(NET_B, vec![short], vec![v6_port_extra_opt()]));
    let cmd = f.dm().cmdline();
    assert!(
        !cmd.iter().any(|a| a.starts_with("--dhcp-range")),
        "{cmd:?}"
    );
    assert!(cmd.contains(&"--dhcp-lease-max=0".to_string()));
}

#[test]
fn spawn_cfg_dns_servers_and_local_resolv() {
    let mut f = Fixture::new(dual_network());
    f.cfg.dnsmasq_dns_servers = vec!["8.8.8.8".into(), "9.9.9.9".into()];
    let exp = expected_cmd(&f.net, "--no-resolv", "86400s", 1 << 24);
    assert_eq!(
        f.dm().cmdline(),
        extend(
            exp,
            &[
                "--conf-file=/dev/null",
                "--server=8.8.8.8",
                "--server=9.9.9.9",
                "--domain=openstacklocal"
            ]
        )
    );
    // Local resolution: the --no-resolv slot stays, empty.
    f.cfg.dnsmasq_dns_servers.clear();
    f.cfg.dnsmasq_local_resolv = true;
    let exp = expected_cmd(&f.net, "", "86400s", 1 << 24);
    assert_eq!(
        f.dm().cmdline(),
        extend(exp, &["--conf-file=/dev/null", "--domain=openstacklocal"])
    );
    // ... unless servers are configured.
    f.cfg.dnsmasq_dns_servers = vec!["8.8.8.8".into()];
    assert_eq!(f.dm().cmdline()[2], "--no-resolv");
}

#[test]
fn spawn_cfg_enable_dnsmasq_log() {
    let mut f = Fixture::new(net(NET_A, vec![v4_subnet()], vec![port1()]));
    f.cfg.dnsmasq_base_log_dir = Some("/tmp".into());
    let exp = expected_cmd(&f.net, "--no-resolv", "86400s", 1 << 24);
    assert_eq!(
        f.dm().cmdline(),
        extend(
            exp,
            &[
                "--conf-file=/dev/null",
                "--domain=openstacklocal",
                "--log-queries",
                "--log-dhcp",
                "--log-facility=/tmp/aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa/dhcp_dns_log"
            ]
        )
    );
}

#[test]
fn spawn_max_leases_mtu_broadcast_timers_txt() {
    let mut f = Fixture::new(net(NET_A, vec![v4_subnet()], vec![port1()]));
    f.net.mtu = Some(1500);
    f.serve.dhcp_broadcast_reply = true;
    f.serve.dhcp_renewal_time = 30;
    f.serve.dhcp_rebinding_time = 100;
    f.cfg.dnsmasq_txt_record = "a,b".into();
    let exp = expected_cmd(&f.net, "--no-resolv", "86400s", 256);
    assert!(exp.contains(&"--dhcp-lease-max=256".to_string()));
    assert!(exp.contains(&"--dhcp-option-force=option:mtu,1500".to_string()));
    assert_eq!(
        f.dm().cmdline(),
        extend(
            exp,
            &[
                "--dhcp-option-force=option:T1,30s",
                "--dhcp-option-force=option:T2,100s",
                "--txt-record=a,b",
                "--conf-file=/dev/null",
                "--domain=openstacklocal",
                "--dhcp-broadcast"
            ]
        )
    );
}

// ---- lease file (test_output_init_lease_file*) -------------------------------------------------

#[test]
fn output_init_lease_file() {
    let mut f = Fixture::new(dual_network());
    f.serve.dhcp_lease_duration = 500;
    let ts = 1_000_000 + 500;
    let expected = format!(
        "{ts} 00:00:80:aa:bb:cc 192.168.0.2 * *\n\
         {ts} 00:00:0f:aa:bb:cc 192.168.0.3 * *\n\
         {ts} {RR_MAC} 192.168.0.1 * *\n"
    );
    assert_eq!(f.dm().init_leases_file(1_000_000, None), expected);
    f.serve.dhcp_lease_duration = -1;
    assert_eq!(
        f.dm().init_leases_file(1_000_000, None),
        expected.replace(&ts.to_string(), "0")
    );
}

#[test]
fn output_init_lease_file_existing() {
    let mut f = Fixture::new(dual_network());
    f.serve.dhcp_lease_duration = 500;
    let duid = "duid 00:01:00:01:27:da:58:97:fa:16:3e:6c:ad:c1";
    let v6_lease = "1623083263 755752236 fdca:3ba5:a17a:4ba3::2 host-fdca-3ba5-a17a-4ba3--2 \
                    00:01:00:01:28:50:e8:31:5a:42:2d:0b:dd:2c";
    let existing = format!(
        "1623162161 00:00:80:aa:bb:cc 192.168.0.2 host-192-168-0-2 *\n\
         1623147425 00:00:0f:aa:bb:cc 192.168.0.3 host-192-168-0-3 ff:b5:5e:67:ff:00:02:00:00:ab:11:43:e5:86:52:f3:d7:2c:97\n\
         1623138717 {RR_MAC} 192.168.0.1 host-192-168-0-1 ff:b5:5e:67:ff:00:02:00:00:ab:11:f6:f2:aa:cb:94:c1:b4:86\n\
         {duid}\n{v6_lease}\n\
         1623143299 3042863103 2001:db8::45 host-2001-db8--45 00:02:00:00:ab:11:fa:c9:0e:0f:3d:90:73:f0\n\
         1623134168 3042863103 2001:db8::12 host-2001-db8--12 00:02:00:00:ab:11:f6:f2:aa:cb:94:c1:b4:86"
    );
    let ts = 1_000_500;
    let expected = format!(
        "{duid}\n\
         {ts} 00:00:80:aa:bb:cc 192.168.0.2 * *\n\
         {v6_lease}\n\
         {ts} 00:00:0f:aa:bb:cc 192.168.0.3 * *\n\
         {ts} {RR_MAC} 192.168.0.1 * *\n"
    );
    assert_eq!(
        f.dm().init_leases_file(1_000_000, Some(&existing)),
        expected
    );
}

// ---- opts file (test_output_opts_file*) ------------------------------------------------------

fn d(line: &str) -> String {
    format!("tag:subnet-{SUB_D},{line}")
}
fn opts(lines: &[String]) -> String {
    lines.join("\n")
}
const META_GW0: &str = "169.254.169.254/32,192.168.0.1,0.0.0.0/0,192.168.0.1";

#[test]
fn output_opts_file() {
    let expected = opts(&[
        d("option:dns-server,8.8.8.8"),
        d(&format!(
            "option:classless-static-route,20.0.0.1/24,20.0.0.1,{META_GW0}"
        )),
        d(&format!("249,20.0.0.1/24,20.0.0.1,{META_GW0}")),
        d("option:router,192.168.0.1"),
        format!("tag:subnet-{SUB_F},option6:dns-server,[2001:200:feed:7ac0::1]"),
        format!("tag:subnet-{SUB_F},option6:domain-search,openstacklocal"),
    ]);
    assert_eq!(Fixture::new(dual_network()).dm().opts_file(), expected);
}

#[test]
fn output_opts_file_gateway_route() {
    let subnet = with(
        v4_subnet(),
        json!({"host_routes": [{"destination": "0.0.0.0/0", "nexthop": "10.0.0.1"}]}),
    );
    let n = net(
        NET_C,
        vec![subnet, v6_subnet_stateful()],
        vec![port1(), port2(), port3(), router_port()],
    );
    let expected = opts(&[
        d("option:dns-server,8.8.8.8"),
        d(&format!("option:classless-static-route,{META_GW0}")),
        d(&format!("249,{META_GW0}")),
        d("option:router,192.168.0.1"),
        format!("tag:subnet-{SUB_F},option6:dns-server,[2001:200:feed:7ac0::1]"),
        format!("tag:subnet-{SUB_F},option6:domain-search,openstacklocal"),
    ]);
    assert_eq!(Fixture::new(n).dm().opts_file(), expected);
}

fn dns_variant(dns: Value, ports: Vec<Value>) -> Network {
    let s = with(
        v4_subnet(),
        json!({"dns_nameservers": dns, "host_routes": []}),
    );
    net(NET_F, vec![s], ports)
}

fn agent_ports(two_agents: bool) -> Vec<Value> {
    let mut p = vec![port1(), port2(), port3(), router_port(), multi_agent1()];
    if two_agents {
        p.push(multi_agent2());
    }
    p
}

#[test]
fn output_opts_file_dns_variants() {
    let tail = [
        d(&format!("option:classless-static-route,{META_GW0}")),
        d(&format!("249,{META_GW0}")),
        d("option:router,192.168.0.1"),
    ];
    // Two DHCP ports, no DNS servers: every DHCP port address, after all other lines.
    let mut exp: Vec<String> = tail.to_vec();
    exp.push(d("option:dns-server,192.168.0.5,192.168.0.6"));
    assert_eq!(
        Fixture::new(dns_variant(json!([]), agent_ports(true)))
            .dm()
            .opts_file(),
        opts(&exp)
    );
    // One DHCP port, no DNS servers: no line (dnsmasq sends its own address).
    assert_eq!(
        Fixture::new(dns_variant(json!([]), agent_ports(false)))
            .dm()
            .opts_file(),
        opts(&tail)
    );
    // Several servers, in the given order.
    let mut exp = vec![d("option:dns-server,2.2.2.2,9.9.9.9,1.1.1.1,3.3.3.3")];
    exp.extend(tail.iter().cloned());
    assert_eq!(
        Fixture::new(dns_variant(
            json!(["2.2.2.2", "9.9.9.9", "1.1.1.1", "3.3.3.3"]),
            agent_ports(false)
        ))
        .dm()
        .opts_file(),
        opts(&exp)
    );
    // 0.0.0.0: an empty dns-server option (no DNS sent).
    let mut exp = vec![d("option:dns-server")];
    exp.extend(tail.iter().cloned());
    assert_eq!(
        Fixture::new(dns_variant(json!(["0.0.0.0"]), agent_ports(false)))
            .dm()
            .opts_file(),
        opts(&exp)
    );
    // Two DHCP ports but servers given: only the servers.
    let mut exp = vec![d("option:dns-server,8.8.8.8")];
    exp.extend(tail.iter().cloned());
    assert_eq!(
        Fixture::new(dns_variant(json!(["8.8.8.8"]), agent_ports(true)))
            .dm()
            .opts_file(),
        opts(&exp)
    );
}

#[test]
fn output_opts_file_single_dhcp_on_link_route_to_dhcp_disabled_subnet() {
    let n = net(
        NET_C,
        vec![v4_subnet(), v4_subnet_no_dhcp()],
        vec![port1(), port2(), port3(), router_port()],
    );
    let routes = format!("192.168.1.0/24,0.0.0.0,20.0.0.1/24,20.0.0.1,{META_GW0}");
    let expected = opts(&[
        d("option:dns-server,8.8.8.8"),
        d(&format!("option:classless-static-route,{routes}")),
        d(&format!("249,{routes}")),
        d("option:router,192.168.0.1"),
    ]);
    assert_eq!(Fixture::new(n).dm().opts_file(), expected);
}

fn c(line: &str) -> String {
    format!("tag:subnet-{SUB_C},{line}")
}
fn i(line: &str) -> String {
    format!("tag:subnet-{SUB_I},{line}")
}

#[test]
fn output_opts_file_dual_dhcp_rfc3442_and_segments() {
    let d_routes = format!("192.168.1.0/24,0.0.0.0,20.0.0.1/24,20.0.0.1,{META_GW0}");
    let c_routes = "192.168.0.0/24,0.0.0.0,169.254.169.254/32,192.168.1.1,0.0.0.0/0,192.168.1.1";
    let i_routes = "169.254.169.254/32,192.168.2.1,0.0.0.0/0,192.168.2.1";
    let d_lines = |routes: &str| {
        vec![
            d("option:dns-server,8.8.8.8"),
            d(&format!("option:classless-static-route,{routes}")),
            d(&format!("249,{routes}")),
            d("option:router,192.168.0.1"),
        ]
    };
    let c_lines = vec![
        c("option:dns-server,8.8.8.8"),
        c(&format!("option:classless-static-route,{c_routes}")),
        c(&format!("249,{c_routes}")),
        c("option:router,192.168.1.1"),
    ];
    let i_lines = vec![
        i("option:dns-server,8.8.8.8"),
        i(&format!("option:classless-static-route,{i_routes}")),
        i(&format!("249,{i_routes}")),
        i("option:router,192.168.2.1"),
    ];
    // FakeDualNetworkDualDHCP
    let n = net(
        NET_C,
        vec![v4_subnet(), v4_subnet2()],
        vec![port1(), router_port(), router_port2()],
    );
    // Subnets arrive sorted by id: cccc before dddd.
    let mut exp = c_lines.clone();
    exp.extend(d_lines(&d_routes));
    assert_eq!(Fixture::new(n).dm().opts_file(), opts(&exp));
    // FakeDualNetworkDualDHCPOnLinkSubnetRoutesDisabled: other segment, no on-link route.
    let n = net(
        NET_C,
        vec![v4_subnet(), v4_subnet_segment()],
        vec![port1(), router_port(), router_port_segment()],
    );
    let mut exp = d_lines(&format!("20.0.0.1/24,20.0.0.1,{META_GW0}"));
    exp.extend(i_lines.clone());
    assert_eq!(Fixture::new(n).dm().opts_file(), opts(&exp));
    // FakeDualNetworkTriDHCPOneOnLinkSubnetRoute (subnets sorted by id: c, d, i).
    let n = net(
        NET_C,
        vec![v4_subnet(), v4_subnet2(), v4_subnet_segment()],
        vec![
            port1(),
            router_port(),
            router_port2(),
            router_port_segment(),
        ],
    );
    let mut exp = c_lines;
    exp.extend(d_lines(&d_routes));
    exp.extend(i_lines);
    assert_eq!(Fixture::new(n).dm().opts_file(), opts(&exp));
}

#[test]
fn output_opts_file_no_gateway_isolated_metadata_via_interface() {
    let s = with(
        v4_subnet(),
        json!({"id": SUB_E, "cidr": "192.168.1.0/24", "gateway_ip": null,
               "host_routes": [], "dns_nameservers": []}),
    );
    let n = net(NET_C, vec![s], vec![port1()]);
    let e = |l: &str| format!("tag:subnet-{SUB_E},{l}");
    let expected = opts(&[
        e("option:classless-static-route,169.254.169.254/32,192.168.1.1"),
        e("249,169.254.169.254/32,192.168.1.1"),
        e("option:router"),
    ]);
    assert_eq!(
        Fixture::new(n).iface(SUB_E, "192.168.1.1").dm().opts_file(),
        expected
    );
}

#[test]
fn output_opts_file_no_neutron_router_on_subnet() {
    let s = with(
        v4_subnet(),
        json!({"id": SUB_E, "cidr": "192.168.1.0/24", "gateway_ip": "192.168.1.1",
               "host_routes": [], "dns_nameservers": []}),
    );
    let n = net(NET_C, vec![s], vec![port1()]);
    let e = |l: &str| format!("tag:subnet-{SUB_E},{l}");
    let r = "169.254.169.254/32,192.168.1.2,0.0.0.0/0,192.168.1.1";
    let expected = opts(&[
        e(&format!("option:classless-static-route,{r}")),
        e(&format!("249,{r}")),
        e("option:router,192.168.1.1"),
    ]);
    assert_eq!(
        Fixture::new(n).iface(SUB_E, "192.168.1.2").dm().opts_file(),
        expected
    );
}

#[test]
fn output_opts_file_dist_router_and_non_local_subnets() {
    let n = net(
        NET_C,
        vec![v4_subnet()],
        vec![
            port1(),
            router_port_in(
                "network:router_interface_distributed",
                "192.168.0.1",
                "openstacklocal",
            ),
        ],
    );
    let routes = format!("20.0.0.1/24,20.0.0.1,{META_GW0}");
    let expected = opts(&[
        d("option:dns-server,8.8.8.8"),
        d(&format!("option:classless-static-route,{routes}")),
        d(&format!("249,{routes}")),
        d("option:router,192.168.0.1"),
    ]);
    assert_eq!(
        Fixture::new(n).iface(SUB_D, "192.168.0.1").dm().opts_file(),
        expected
    );

    // test_non_local_subnets
    let n = net_nonlocal(
        NET_C,
        vec![v4_subnet_segment2()],
        vec![v4_subnet_segment()],
        vec![port1(), router_port(), router_port_segment()],
    );
    let j = |l: &str| format!("tag:subnet-{SUB_J},{l}");
    let i_routes = "169.254.169.254/32,192.168.2.1,0.0.0.0/0,192.168.2.1";
    let expected = opts(&[
        j("option:dns-server,8.8.8.8"),
        j(&format!("option:classless-static-route,{META_GW0}")),
        j(&format!("249,{META_GW0}")),
        j("option:router,192.168.0.1"),
        i("option:dns-server,8.8.8.8"),
        i(&format!("option:classless-static-route,{i_routes}")),
        i(&format!("249,{i_routes}")),
        i("option:router,192.168.2.1"),
    ]);
    assert_eq!(
        Fixture::new(n).iface(SUB_J, "192.168.0.1").dm().opts_file(),
        expected
    );
}

#[test]
fn output_opts_file_pxe_ports() {
    let pxe = |p: Value, tftp: &str, sia: &str, boot: &str| {
        with_opts(
            p,
            vec![
                opt("tftp-server", tftp, 4),
                opt("server-ip-address", sia, 4),
                opt("bootfile-name", boot, 4),
            ],
        )
    };
    let n = net(
        NET_D,
        vec![v4_subnet()],
        vec![
            pxe(port1(), "192.168.0.3", "192.168.0.2", "pxelinux.0"),
            pxe(port2(), "192.168.0.5", "192.168.0.5", "pxelinux.0"),
            router_port(),
        ],
    );
    let routes = format!("20.0.0.1/24,20.0.0.1,{META_GW0}");
    let p1 = |l: &str| format!("tag:port-eeeeeeee-eeee-eeee-eeee-eeeeeeeeeeee,{l}");
    let p2 = |l: &str| format!("tag:port-ffffffff-ffff-ffff-ffff-ffffffffffff,{l}");
    let expected = opts(&[
        d("option:dns-server,8.8.8.8"),
        d(&format!("option:classless-static-route,{routes}")),
        d(&format!("249,{routes}")),
        d("option:router,192.168.0.1"),
        p1("option:tftp-server,192.168.0.3"),
        p1("option:server-ip-address,192.168.0.2"),
        p1("option:bootfile-name,pxelinux.0"),
        p2("option:tftp-server,192.168.0.5"),
        p2("option:server-ip-address,192.168.0.5"),
        p2("option:bootfile-name,pxelinux.0"),
    ]);
    assert_eq!(Fixture::new(n).dm().opts_file(), expected);

    // test_output_opts_file_pxe_port: numeric and non-digit names; no router port, isolated
    // subnet, no interface address: no metadata route.
    let n = net(
        NET_D,
        vec![v4_subnet()],
        vec![with_opts(
            port1(),
            vec![
                opt("tftp-server", "192.168.0.3", 4),
                opt("server-ip-address", "192.168.0.2", 4),
                opt("nd98", "option-nondigit-98", 4),
                opt("99", "option-99", 4),
                opt("bootfile-name", "pxelinux.0", 4),
            ],
        )],
    );
    let routes = "20.0.0.1/24,20.0.0.1,0.0.0.0/0,192.168.0.1";
    let expected = opts(&[
        d("option:dns-server,8.8.8.8"),
        d(&format!("option:classless-static-route,{routes}")),
        d(&format!("249,{routes}")),
        d("option:router,192.168.0.1"),
        p1("option:tftp-server,192.168.0.3"),
        p1("option:server-ip-address,192.168.0.2"),
        p1("option:nd98,option-nondigit-98"),
        p1("99,option-99"),
        p1("option:bootfile-name,pxelinux.0"),
    ]);
    assert_eq!(Fixture::new(n).dm().opts_file(), expected);
}

#[test]
fn output_opts_file_multiple_tags() {
    let n = net(
        NET_D,
        vec![v4_subnet()],
        vec![
            with_opts(
                port1(),
                vec![opt("tag:ipxe,bootfile-name", "pxelinux.0", 4)],
            ),
            router_port(),
        ],
    );
    let routes = format!("20.0.0.1/24,20.0.0.1,{META_GW0}");
    let expected = opts(&[
        d("option:dns-server,8.8.8.8"),
        d(&format!("option:classless-static-route,{routes}")),
        d(&format!("249,{routes}")),
        d("option:router,192.168.0.1"),
        "tag:port-eeeeeeee-eeee-eeee-eeee-eeeeeeeeeeee,tag:ipxe,option:bootfile-name,pxelinux.0"
            .into(),
    ]);
    assert_eq!(Fixture::new(n).dm().opts_file(), expected);
}

#[test]
fn output_opts_file_ipv6() {
    let h = |l: &str| format!("tag:port-hhhhhhhh-hhhh-hhhh-hhhh-hhhhhhhhhhhh,{l}");
    let f = |l: &str| format!("tag:subnet-{SUB_F},{l}");
    // test_output_opts_file_pxe_ipv6_port_with_ipv6_opt
    let n = net(
        NET_D,
        vec![v6_subnet_stateful()],
        vec![with_opts(
            v6_port(),
            vec![
                opt("tftp-server", "2001:192:168::1", 6),
                opt("nd98", "option-nondigit-98", 6),
                opt("99", "option-99", 6),
                opt("bootfile-name", "pxelinux.0", 6),
            ],
        )],
    );
    let expected = opts(&[
        f("option6:dns-server,[2001:200:feed:7ac0::1]"),
        f("option6:domain-search,openstacklocal"),
        h("option6:tftp-server,2001:192:168::1"),
        h("option6:nd98,option-nondigit-98"),
        h("option6:99,option-99"),
        h("option6:bootfile-name,pxelinux.0"),
    ]);
    assert_eq!(Fixture::new(n).dm().opts_file(), expected);
    // ..._with_ipv4_opt: the IPv4 option of an IPv6-only port is skipped.
    let n = net(
        NET_D,
        vec![v6_subnet_stateful()],
        vec![with_opts(
            v6_port(),
            vec![
                opt("tftp-server", "192.168.0.7", 4),
                opt("bootfile-name", "pxelinux.0", 6),
            ],
        )],
    );
    let expected = opts(&[
        f("option6:dns-server,[2001:200:feed:7ac0::1]"),
        f("option6:domain-search,openstacklocal"),
        h("option6:bootfile-name,pxelinux.0"),
    ]);
    assert_eq!(Fixture::new(n).dm().opts_file(), expected);
    // test_output_opts_file_ipv6_address_mode_unset, and with force_metadata (no v4 routes).
    let n = net(NET_B, vec![v6_subnet_unset()], vec![port2()]);
    let expected = opts(&[
        f("option6:dns-server,[2001:200:feed:7ac0::1]"),
        f("option6:domain-search,openstacklocal"),
    ]);
    let mut fx = Fixture::new(n);
    assert_eq!(fx.dm().opts_file(), expected);
    fx.serve.force_metadata = true;
    assert_eq!(fx.dm().opts_file(), expected);
}

// ---- host and addn_hosts files -----------------------------------------------------------------

fn reload_allocation_data(tag: &str, dom: &str) -> (String, String) {
    let name = |h: &str| {
        if dom.is_empty() {
            h.to_string()
        } else {
            format!("{h}.{dom}.")
        }
    };
    let host = format!(
        "00:00:80:aa:bb:cc,{},192.168.0.2\n\
         00:00:f3:aa:bb:cc,{tag}{},[fdca:3ba5:a17a:4ba3::2]\n\
         00:00:0f:aa:bb:cc,{},192.168.0.3\n\
         00:00:0f:aa:bb:cc,{tag}{},[fdca:3ba5:a17a:4ba3::3]\n\
         {RR_MAC},{},192.168.0.1\n",
        name("host-192-168-0-2"),
        name("host-fdca-3ba5-a17a-4ba3--2"),
        name("host-192-168-0-3"),
        name("host-fdca-3ba5-a17a-4ba3--3"),
        name("host-192-168-0-1"),
    );
    let addn = format!(
        "192.168.0.2\t{} host-192-168-0-2\n\
         fdca:3ba5:a17a:4ba3::2\t{} host-fdca-3ba5-a17a-4ba3--2\n\
         192.168.0.3\t{} host-192-168-0-3\n\
         fdca:3ba5:a17a:4ba3::3\t{} host-fdca-3ba5-a17a-4ba3--3\n\
         192.168.0.1\t{} host-192-168-0-1\n",
        name("host-192-168-0-2"),
        name("host-fdca-3ba5-a17a-4ba3--2"),
        name("host-192-168-0-3"),
        name("host-fdca-3ba5-a17a-4ba3--3"),
        name("host-192-168-0-1"),
    );
    (host, addn)
}

#[test]
fn reload_allocations_host_and_addn_hosts() {
    let mut f = Fixture::new(dual_network());
    f.cfg.host_tag_support = false;
    let (host, addn) = reload_allocation_data("", "openstacklocal");
    assert_eq!(f.dm().hosts_file(), host);
    assert_eq!(f.dm().addn_hosts_file(), addn);
    f.cfg.host_tag_support = true;
    let (host, addn) = reload_allocation_data("tag:dhcpv6,", "openstacklocal");
    assert_eq!(f.dm().hosts_file(), host);
    assert_eq!(f.dm().addn_hosts_file(), addn);
}

#[test]
fn no_dns_domain_alloc_data() {
    let mut f = Fixture::new(dual_network_in(""));
    f.serve.dns_domain = String::new();
    for (support, tag) in [(false, ""), (true, "tag:dhcpv6,")] {
        f.cfg.host_tag_support = support;
        let (host, addn) = reload_allocation_data(tag, "");
        assert_eq!(f.dm().hosts_file(), host);
        assert_eq!(f.dm().addn_hosts_file(), addn);
    }
}

#[test]
fn local_names_without_dns_assignment() {
    let mut p = port1();
    p.as_object_mut().unwrap().remove("dns_assignment");
    let mut f = Fixture::new(net(NET_A, vec![v4_subnet()], vec![p]));
    assert_eq!(
        f.dm().hosts_file(),
        "00:00:80:aa:bb:cc,host-192-168-0-2.openstacklocal,192.168.0.2\n"
    );
    assert_eq!(
        f.dm().addn_hosts_file(),
        "192.168.0.2\thost-192-168-0-2.openstacklocal host-192-168-0-2\n"
    );
    f.serve.dns_domain = String::new();
    assert_eq!(
        f.dm().hosts_file(),
        "00:00:80:aa:bb:cc,host-192-168-0-2,192.168.0.2\n"
    );
}

#[test]
fn only_populates_dhcp_enabled_subnets() {
    // FakeDualStackNetworkSingleDHCP: the SLAAC address gets no host line.
    let n = net(
        NET_E,
        vec![v4_subnet(), v6_subnet_slaac()],
        vec![port1(), port4(), router_port()],
    );
    let expected = format!(
        "00:00:80:aa:bb:cc,host-192-168-0-2.openstacklocal.,192.168.0.2\n\
         00:16:3e:c2:77:1d,host-192-168-0-4.openstacklocal.,192.168.0.4\n\
         {RR_MAC},host-192-168-0-1.openstacklocal.,192.168.0.1\n"
    );
    assert_eq!(Fixture::new(n).dm().hosts_file(), expected);
    // FakeDualNetworkSingleDHCP: the address on the DHCP-disabled subnet gets none either.
    let n = net(
        NET_C,
        vec![v4_subnet(), v4_subnet_no_dhcp()],
        vec![port1(), port2(), port3(), router_port()],
    );
    let expected = format!(
        "00:00:80:aa:bb:cc,host-192-168-0-2.openstacklocal.,192.168.0.2\n\
         00:00:f3:aa:bb:cc,host-192-168-0-3.openstacklocal.,192.168.0.3\n\
         00:00:0f:aa:bb:cc,host-192-168-0-4.openstacklocal.,192.168.0.4\n\
         {RR_MAC},host-192-168-0-1.openstacklocal.,192.168.0.1\n"
    );
    let f = Fixture::new(n);
    assert_eq!(f.dm().hosts_file(), expected);
    // ... but addn_hosts lists every address (DNS).
    assert!(f
        .dm()
        .addn_hosts_file()
        .contains("192.168.1.2\thost-192-168-1-2.openstacklocal. host-192-168-1-2\n"));
}

#[test]
fn only_populates_dhcp_client_id() {
    let n = net(NET_A, vec![v4_subnet()], vec![port1(), port5(), port6()]);
    let expected = "00:00:80:aa:bb:cc,host-192-168-0-2.openstacklocal.,192.168.0.2\n\
                    00:00:0f:aa:bb:55,id:test5,host-192-168-0-5.openstacklocal.,192.168.0.5\n\
                    00:00:0f:aa:bb:66,id:test6,host-192-168-0-6.openstacklocal.,192.168.0.6,\
                    set:port-ccccccccc-cccc-cccc-cccc-ccccccccc\n";
    let f = Fixture::new(n);
    assert_eq!(f.dm().hosts_file(), expected);
    // The client-id is never an option line; the other option is.
    let o = f.dm().opts_file();
    assert!(!o.contains("client-id") && !o.contains("test5"), "{o}");
    assert!(
        o.ends_with("tag:port-ccccccccc-cccc-cccc-cccc-ccccccccc,option:dns-server,123.123.123.45")
    );
    // Client-id given as option number 61.
    let p = with_opts(port1(), vec![opt("61", "test_client_id_num", 4)]);
    let f = Fixture::new(net(NET_A, vec![v4_subnet()], vec![p]));
    assert_eq!(
        f.dm().hosts_file(),
        "00:00:80:aa:bb:cc,id:test_client_id_num,host-192-168-0-2.openstacklocal.,192.168.0.2\n"
    );
}

#[test]
fn host_and_opts_file_on_stateless_dhcpv6_network() {
    let n = net(
        NET_B,
        vec![v6_subnet_stateless()],
        vec![v6_port_extra_opt()],
    );
    let mut f = Fixture::new(n);
    f.cfg.host_tag_support = false;
    let e = |l: &str| format!("tag:subnet-{SUB_E},{l}");
    let h = |l: &str| format!("tag:port-hhhhhhhh-hhhh-hhhh-hhhh-hhhhhhhhhhhh,{l}");
    let expected_opts = opts(&[
        e("option6:domain-search,openstacklocal"),
        h("option6:dns-server,ffea:3ba5:a17a:4ba3::100"),
        h("option6:malicious-option,aaa"),
    ]);
    assert_eq!(
        f.dm().hosts_file(),
        "00:16:3e:c2:77:1d,set:port-hhhhhhhh-hhhh-hhhh-hhhh-hhhhhhhhhhhh\n"
    );
    assert_eq!(f.dm().opts_file(), expected_opts);
    f.cfg.host_tag_support = true;
    assert_eq!(
        f.dm().hosts_file(),
        "00:16:3e:c2:77:1d,tag:dhcpv6,set:port-hhhhhhhh-hhhh-hhhh-hhhh-hhhhhhhhhhhh\n"
    );
    // ..._no_dns: `::` means an empty dns-server option; a port without options: no host line.
    let s = with(v6_subnet_stateless(), json!({"dns_nameservers": ["::"]}));
    let f = Fixture::new(net(NET_B, vec![s], vec![v6_port()]));
    assert_eq!(f.dm().hosts_file(), "");
    assert_eq!(
        f.dm().opts_file(),
        opts(&[
            e("option6:dns-server"),
            e("option6:domain-search,openstacklocal")
        ])
    );
}

#[test]
fn host_and_opts_file_on_stateful_dhcpv6_same_subnet_fixed_ips() {
    let p = port(
        "hhhhhhhh-hhhh-hhhh-hhhh-hhhhhhhhhhhh",
        "00:00:f3:aa:bb:cc",
        "foo3",
        &[
            ("fdca:3ba5:a17a:4ba3::2", SUB_F),
            ("fdca:3ba5:a17a:4ba3::4", SUB_F),
        ],
        Some("openstacklocal"),
    );
    let mut f = Fixture::new(net(NET_B, vec![v6_subnet_stateful()], vec![p]));
    f.cfg.dnsmasq_enable_addr6_list = true;
    f.cfg.host_tag_support = false;
    assert_eq!(
        f.dm().hosts_file(),
        "00:00:f3:aa:bb:cc,host-fdca-3ba5-a17a-4ba3--2.openstacklocal.,\
         [fdca:3ba5:a17a:4ba3::2],[fdca:3ba5:a17a:4ba3::4]\n"
    );
    f.cfg.host_tag_support = true;
    assert_eq!(
        f.dm().hosts_file(),
        "00:00:f3:aa:bb:cc,tag:dhcpv6,host-fdca-3ba5-a17a-4ba3--2.openstacklocal.,\
         [fdca:3ba5:a17a:4ba3::2],[fdca:3ba5:a17a:4ba3::4]\n"
    );
    // The lease file is written without merging: the first address's lease survives.
    let existing = "1 2 fdca:3ba5:a17a:4ba3::2 h x\n1 2 fdca:3ba5:a17a:4ba3::9 h y\n";
    assert_eq!(
        f.dm().init_leases_file(0, Some(existing)),
        "1 2 fdca:3ba5:a17a:4ba3::2 h x\n"
    );
}

#[test]
fn host_file_on_net_with_v6_slaac_and_v4() {
    let tagged = |p: Value| with_opts(p, vec![opt("tag:ipxe,bootfile-name", "pxelinux.0", 4)]);
    let n = net(
        NET_E,
        vec![v4_subnet(), v6_subnet_slaac()],
        vec![tagged(port1()), tagged(port4()), tagged(router_port())],
    );
    let expected = format!(
        "00:00:80:aa:bb:cc,host-192-168-0-2.openstacklocal.,192.168.0.2,\
         set:port-eeeeeeee-eeee-eeee-eeee-eeeeeeeeeeee\n\
         00:16:3e:c2:77:1d,host-192-168-0-4.openstacklocal.,192.168.0.4,\
         set:port-gggggggg-gggg-gggg-gggg-gggggggggggg\n\
         {RR_MAC},host-192-168-0-1.openstacklocal.,192.168.0.1,\
         set:port-rrrrrrrr-rrrr-rrrr-rrrr-rrrrrrrrrrrr\n"
    );
    assert_eq!(Fixture::new(n).dm().hosts_file(), expected);
}

#[test]
fn host_and_opts_file_on_net_with_v6_stateless_and_v4_subnets() {
    let n = net(
        NET_B,
        vec![v6_subnet_stateless(), v4_subnet()],
        vec![dual_port_with_v6_opt(), router_port()],
    );
    let mut f = Fixture::new(n);
    f.cfg.host_tag_support = false;
    let expected_host = format!(
        "00:16:3e:c2:77:1d,set:port-hhhhhhhh-hhhh-hhhh-hhhh-hhhhhhhhhhhh\n\
         00:16:3e:c2:77:1d,host-192-168-0-3.openstacklocal.,192.168.0.3,\
         set:port-hhhhhhhh-hhhh-hhhh-hhhh-hhhhhhhhhhhh\n\
         {RR_MAC},host-192-168-0-1.openstacklocal.,192.168.0.1\n"
    );
    // Subnets arrive sorted by id: dddd (v4) before eeee (v6).
    let routes = format!("20.0.0.1/24,20.0.0.1,{META_GW0}");
    let expected_opts = opts(&[
        d("option:dns-server,8.8.8.8"),
        d(&format!("option:classless-static-route,{routes}")),
        d(&format!("249,{routes}")),
        d("option:router,192.168.0.1"),
        format!("tag:subnet-{SUB_E},option6:domain-search,openstacklocal"),
        "tag:port-hhhhhhhh-hhhh-hhhh-hhhh-hhhhhhhhhhhh,option6:dns-server,ffea:3ba5:a17a:4ba3::100"
            .into(),
    ]);
    assert_eq!(f.dm().hosts_file(), expected_host);
    assert_eq!(f.dm().opts_file(), expected_opts);
    f.cfg.host_tag_support = true;
    assert_eq!(
        f.dm().hosts_file(),
        expected_host.replacen(",set:port-hhhh", ",tag:dhcpv6,set:port-hhhh", 1)
    );
}

// ---- metadata route sources (test__generate_opts_per_subnet_*) ---------------------------------

#[test]
fn metadata_route_sources() {
    let has_meta = |serve: ServeConfig, ports: Vec<Value>| {
        let n = net(NET_A, vec![v4_subnet()], ports);
        let mut f = Fixture::new(n).iface(SUB_D, "192.168.0.1");
        f.serve = serve;
        f.dm().opts_file().contains("169.254.169.254/32")
    };
    let off = ServeConfig::default();
    let isolated = ServeConfig {
        enable_isolated_metadata: true,
        ..ServeConfig::default()
    };
    let forced = ServeConfig {
        force_metadata: true,
        ..ServeConfig::default()
    };
    assert!(!has_meta(off.clone(), vec![port1(), dhcp_port()]));
    assert!(has_meta(isolated, vec![port1(), dhcp_port()]));
    assert!(has_meta(forced, vec![port1(), dhcp_port()]));
    // The OVN metadata port wins even with metadata off.
    let mut ovn = port(
        "ovn",
        "00:00:80:aa:bb:ef",
        "network:distributed",
        &[("192.168.0.10", SUB_D)],
        None,
    );
    ovn["device_id"] = json!(format!("ovnmeta-{NET_A}"));
    let n = net(NET_A, vec![v4_subnet()], vec![port1(), dhcp_port(), ovn]);
    let f = Fixture::new(n);
    let o = f.dm().opts_file();
    assert!(o.contains("169.254.169.254/32,192.168.0.10"), "{o}");
    // The OVN metadata port is a `network:distributed` port: no host entry.
    assert!(!f.dm().hosts_file().contains("192.168.0.10"));
}

#[test]
fn format_option_forms() {
    let v4 = IpVersion::V4;
    assert_eq!(format_option(v4, "t", "router", &[]), "tag:t,option:router");
    assert_eq!(format_option(v4, "t", "249", &["x"]), "tag:t,249,x");
    assert_eq!(
        format_option(v4, "t", "tag:a,tag:b,mtu", &["1"]),
        "tag:t,tag:a,tag:b,option:mtu,1"
    );
    assert_eq!(
        format_option(v4, "t", "tag:x", &["1"]),
        "tag:t,option:tag:x,1"
    );
    assert_eq!(
        format_option(IpVersion::V6, "t", "tag:ipxe6,bootfile-url", &["u"]),
        "tag:t,tag:ipxe6,option6:bootfile-url,u"
    );
    assert_eq!(interface_name("0123456789abcdef", true), "ns-0123456789a");
    assert_eq!(interface_name("0123456789abcdef", false), "tap0123456789a");
}
