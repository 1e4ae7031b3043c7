//! The names a network's DNS service answers for: exactly what dnsmasq loads from the
//! `addn_hosts` file Neutron writes for the network (reference §9.4), already encoded as answer
//! records so that a query costs a hash lookup and a copy.
//!
//! - Every port Neutron gives host entries (§9.2: not the DHCP, floating-IP, HA-router or
//!   distributed ports) and **every** fixed IP of it, also on subnets without DHCP.
//! - Per address, the FQDN and the host name from the port's `dns_assignment` for that
//!   address, else `host-<ip with . and : as ->` and that name in `dns_domain` (§9.5).
//! - Both names resolve to the address (A or AAAA); the address resolves (PTR) to the FQDN,
//!   the first name of its `addn_hosts` line, as dnsmasq answers reverse lookups from it.
//! - Names are looked up case-insensitively and without the root dot (dnsmasq's canonical form).

use std::collections::HashMap;
use std::net::IpAddr;

use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use crate::model::Network;

/// dnsmasq's `local-ttl` default (Neutron sets none): local answers are not cached.
pub const LOCAL_TTL: u32 = 0;

/// One answer record, encoded once: its owner name is a pointer to the question's name (the
/// only name a reply to one question carries before its answers), so the record is valid in
/// any reply to a query for this name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedRr {
    pub rtype: RecordType,
    pub bytes: Box<[u8]>,
}

/// A network's DNS names. Immutable once built; shared by every view of the network until its
/// ports change.
#[derive(Clone, Debug, Default)]
pub struct DnsNames {
    /// Lower-case name without the root dot -> its A/AAAA records, in `addn_hosts` order.
    forward: HashMap<Box<[u8]>, Vec<EncodedRr>>,
    /// Address -> its PTR record.
    reverse: HashMap<IpAddr, EncodedRr>,
}

/// What a name table says about a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// The name is one of the network's and has records of the asked type: these.
    Local(&'a [EncodedRr]),
    /// Not a local name.
    Unknown,
}

impl DnsNames {
    /// The table for `net` under `dns_domain` (the agent's `[DEFAULT] dns_domain`; empty: the
    /// generated names have no domain).
    pub fn build(net: &Network, dns_domain: &str) -> DnsNames {
        let mut names = DnsNames::default();
        for (ip, fqdn, hostname) in entries(net, dns_domain) {
            names.add(ip, &fqdn, &hostname);
        }
        for records in names.forward.values_mut() {
            // Stable: addresses of one family keep the file's order.
            records.sort_by_key(|rr| u16::from(rr.rtype));
        }
        names
    }

    /// Number of distinct names; for logs and tests.
    pub fn name_count(&self) -> usize {
        self.forward.len()
    }

    fn add(&mut self, ip: IpAddr, fqdn: &str, hostname: &str) {
        let rdata = match ip {
            IpAddr::V4(v4) => RData::A(A(v4)),
            IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
        };
        let Some(rr) = encode(rdata) else {
            return;
        };
        for name in [fqdn, hostname] {
            let Some(key) = key_of_text(name) else {
                tracing::warn!(name, %ip, "not a valid DNS name; not answered");
                continue;
            };
            let records = self.forward.entry(key).or_default();
            if !records.contains(&rr) {
                records.push(rr.clone());
            }
        }
        // The first line naming an address gives its PTR answer, as in dnsmasq.
        if let std::collections::hash_map::Entry::Vacant(slot) = self.reverse.entry(ip) {
            let target = fqdn.trim_end_matches('.');
            match Name::from_ascii(target).map(|mut n| {
                n.set_fqdn(true);
                n
            }) {
                Ok(name) => {
                    if let Some(rr) = encode(RData::PTR(PTR(name))) {
                        slot.insert(rr);
                    }
                }
                Err(e) => tracing::warn!(name = target, %ip, error = %e, "no PTR answer"),
            }
        }
    }

    /// The records of `qtype` for `key` (a lower-case name without the root dot, as
    /// [`key_of`] makes it).
    pub fn lookup(&self, key: &[u8], qtype: RecordType) -> Lookup<'_> {
        if qtype == RecordType::PTR {
            if let Some(ip) = parse_arpa(key) {
                return match self.reverse.get(&ip) {
                    Some(rr) => Lookup::Local(std::slice::from_ref(rr)),
                    None => Lookup::Unknown,
                };
            }
        }
        let Some(records) = self.forward.get(key) else {
            return Lookup::Unknown;
        };
        if qtype == RecordType::ANY {
            return Lookup::Local(records);
        }
        // Sorted by type at build time: a type's records are consecutive.
        let start = records
            .iter()
            .position(|rr| rr.rtype == qtype)
            .unwrap_or(records.len());
        let len = records[start..]
            .iter()
            .take_while(|rr| rr.rtype == qtype)
            .count();
        if len == 0 {
            // dnsmasq (2.90, as Neutron runs it) answers a hosts name only for the types it
            // has: anything else about it goes upstream, or is REFUSED without one
            // (tests/dns_differential.rs).
            return Lookup::Unknown;
        }
        Lookup::Local(&records[start..start + len])
    }
}

/// Whether `new` has the names of `old` without building them: the same ports (the same
/// `Arc`s, as a reload or an event shares unchanged ports) on the same subnets.
pub fn same_names(old: &Network, new: &Network) -> bool {
    old.subnets == new.subnets
        && old.non_local_subnets == new.non_local_subnets
        && old.ports.len() == new.ports.len()
        && old
            .ports
            .iter()
            .zip(&new.ports)
            .all(|(a, b)| std::sync::Arc::ptr_eq(a, b))
}

/// `(address, fqdn, hostname)` per line of Neutron's `addn_hosts` for `net` (reference §9.4,
/// §9.5), in file order.
pub fn entries(net: &Network, dns_domain: &str) -> Vec<(IpAddr, String, String)> {
    let stateless = |subnet_id: &str| {
        net.subnets.iter().chain(&net.non_local_subnets).any(|s| {
            s.id == subnet_id
                && s.ip_version == crate::model::IpVersion::V6
                && s.ipv6_address_mode == Some(crate::model::Ipv6Mode::Dhcpv6Stateless)
        })
    };
    let mut out = Vec::new();
    for port in net.ports.iter().filter(|p| p.wants_dhcp()) {
        // `_iter_hosts` lists stateless IPv6 allocations first (a stable sort).
        let mut fixed: Vec<_> = port.fixed_ips.iter().collect();
        fixed.sort_by_key(|f| !stateless(&f.subnet_id));
        for f in fixed {
            let ip = f.ip_address;
            let (hostname, fqdn) = match port.dns_assignment.iter().find(|d| d.ip_address == ip) {
                Some(d) => (d.hostname.clone(), d.fqdn.clone()),
                None => {
                    let hostname = format!("host-{}", ip.to_string().replace(['.', ':'], "-"));
                    let fqdn = if dns_domain.is_empty() {
                        hostname.clone()
                    } else {
                        format!("{hostname}.{dns_domain}")
                    };
                    (hostname, fqdn)
                }
            };
            out.push((ip, fqdn, hostname));
        }
    }
    out
}

/// Most bytes a name's key can take (a DNS name is at most 255 octets on the wire).
pub const MAX_KEY: usize = 255;

/// Writes the lookup key of a name (its labels in lower case, dot-separated, no root dot) into
/// `buf`; `None` when the name does not fit (it cannot be one of ours).
pub fn key_of<'b>(name: &Name, buf: &'b mut [u8; MAX_KEY]) -> Option<&'b [u8]> {
    let mut len = 0;
    for label in name.iter() {
        let sep = usize::from(len > 0);
        if len + sep + label.len() > MAX_KEY {
            return None;
        }
        if sep == 1 {
            buf[len] = b'.';
            len += 1;
        }
        for (d, s) in buf[len..len + label.len()].iter_mut().zip(label) {
            *d = s.to_ascii_lowercase();
        }
        len += label.len();
    }
    Some(&buf[..len])
}

/// The key of a name given as text (a host name or FQDN from Neutron), checked by hickory's
/// parser.
fn key_of_text(text: &str) -> Option<Box<[u8]>> {
    let name = Name::from_ascii(text.trim_end_matches('.')).ok()?;
    if name.is_root() {
        return None;
    }
    let mut buf = [0; MAX_KEY];
    key_of(&name, &mut buf).map(Box::from)
}

/// An answer record for the question's name, encoded with hickory: the record is written with
/// the root as owner (one zero octet), which is then replaced by a pointer to offset 12, where
/// every reply's single question starts (RFC 1035 §4.1.4).
fn encode(rdata: RData) -> Option<EncodedRr> {
    let rtype = rdata.record_type();
    let record = Record::from_rdata(Name::root(), LOCAL_TTL, rdata);
    let mut buf = Vec::with_capacity(32);
    let mut enc = BinEncoder::new(&mut buf);
    // Names inside the record (a PTR target) must not point into this scratch buffer.
    enc.set_name_encoding(NameEncoding::Uncompressed);
    if let Err(e) = record.emit(&mut enc) {
        tracing::warn!(error = %e, "cannot encode a DNS record");
        return None;
    }
    let mut bytes = Vec::with_capacity(buf.len() + 1);
    bytes.extend_from_slice(&QUESTION_NAME_POINTER);
    bytes.extend_from_slice(&buf[1..]);
    Some(EncodedRr {
        rtype,
        bytes: bytes.into_boxed_slice(),
    })
}

/// A compressed name pointing at offset 12: the question's name in a reply.
const QUESTION_NAME_POINTER: [u8; 2] = [0xc0, 0x0c];

/// The address a reverse-lookup name (`d.c.b.a.in-addr.arpa`, 32 nibbles + `ip6.arpa`)
/// stands for, from its key; `None` for anything else (a partial name is a zone, not a host).
pub fn parse_arpa(key: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(key).ok()?;
    if let Some(rest) = text.strip_suffix(".in-addr.arpa") {
        let mut octets = [0u8; 4];
        let mut n = 0;
        for part in rest.split('.') {
            if n == 4
                || part.is_empty()
                || part.len() > 3
                || (part.len() > 1 && part.starts_with('0'))
            {
                return None;
            }
            octets[3 - n] = part.parse().ok()?;
            n += 1;
        }
        return (n == 4).then(|| IpAddr::from(octets));
    }
    let rest = text.strip_suffix(".ip6.arpa")?;
    let mut bytes = [0u8; 16];
    let mut n = 0;
    for part in rest.split('.') {
        if n == 32 || part.len() != 1 {
            return None;
        }
        let nibble = u8::from_str_radix(part, 16).ok()?;
        // The first label is the lowest nibble of the address.
        let pos = 31 - n;
        bytes[pos / 2] |= if pos % 2 == 0 { nibble << 4 } else { nibble };
        n += 1;
    }
    (n == 32).then(|| IpAddr::from(bytes))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn network() -> Network {
        Network::from_json(&json!({
            "id": "n1",
            "subnets": [
                {"id": "s4", "ip_version": 4, "cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.1"},
                {"id": "s6", "ip_version": 6, "cidr": "fd00::/64",
                 "ipv6_address_mode": "dhcpv6-stateful", "ipv6_ra_mode": "dhcpv6-stateful"},
                {"id": "off", "ip_version": 4, "cidr": "10.1.0.0/24", "enable_dhcp": false}
            ],
            "ports": [
                {"id": "dhcp", "mac_address": "fa:16:3e:00:00:01", "device_owner": "network:dhcp",
                 "fixed_ips": [{"subnet_id": "s4", "ip_address": "10.0.0.2"}]},
                {"id": "fip", "mac_address": "fa:16:3e:00:00:02",
                 "device_owner": "network:floatingip",
                 "fixed_ips": [{"subnet_id": "s4", "ip_address": "10.0.0.3"}]},
                {"id": "vm1", "mac_address": "fa:16:3e:00:00:0a", "device_owner": "compute:nova",
                 "fixed_ips": [{"subnet_id": "s4", "ip_address": "10.0.0.10"},
                               {"subnet_id": "s6", "ip_address": "fd00::a"}],
                 "dns_assignment": [
                    {"ip_address": "10.0.0.10", "hostname": "web-1", "fqdn": "web-1.example.org."},
                    {"ip_address": "fd00::a", "hostname": "web-1", "fqdn": "web-1.example.org."}]},
                {"id": "vm2", "mac_address": "fa:16:3e:00:00:0b", "device_owner": "compute:nova",
                 "fixed_ips": [{"subnet_id": "off", "ip_address": "10.1.0.5"}]},
                {"id": "rtr", "mac_address": "fa:16:3e:00:00:0c",
                 "device_owner": "network:router_interface",
                 "fixed_ips": [{"subnet_id": "s4", "ip_address": "10.0.0.1"}]}
            ]
        }))
        .unwrap()
    }

    fn key(name: &str) -> Vec<u8> {
        key_of_text(name).unwrap().into()
    }

    fn rtypes(l: Lookup<'_>) -> Option<Vec<RecordType>> {
        match l {
            Lookup::Local(rrs) => Some(rrs.iter().map(|r| r.rtype).collect()),
            Lookup::Unknown => None,
        }
    }

    #[test]
    fn the_names_are_those_of_neutrons_addn_hosts_file() {
        let net = network();
        let serve = crate::config::ServeConfig::default();
        let cfg = crate::dnsmasq::DnsmasqConfig::default();
        let own = net.port("dhcp");
        let oracle = crate::dnsmasq::Dnsmasq::new(
            &net,
            &serve,
            &cfg,
            std::path::Path::new("/x"),
            "ns-x",
            own,
        )
        .addn_hosts_file();
        let ours: String = entries(&net, &serve.dns_domain)
            .iter()
            .map(|(ip, fqdn, host)| format!("{ip}\t{fqdn} {host}\n"))
            .collect();
        assert_eq!(ours, oracle);
    }

    #[test]
    fn both_names_resolve_and_addresses_resolve_back_to_the_fqdn() {
        let names = DnsNames::build(&network(), "openstacklocal");
        for n in ["web-1", "web-1.example.org", "WEB-1.Example.ORG."] {
            assert_eq!(
                rtypes(names.lookup(&key(n), RecordType::A)),
                Some(vec![RecordType::A]),
                "{n}"
            );
            assert_eq!(
                rtypes(names.lookup(&key(n), RecordType::AAAA)),
                Some(vec![RecordType::AAAA])
            );
        }
        for n in [
            "host-10-1-0-5",
            "host-10-1-0-5.openstacklocal",
            "host-10-0-0-1",
        ] {
            assert_eq!(
                rtypes(names.lookup(&key(n), RecordType::A)),
                Some(vec![RecordType::A]),
                "{n}"
            );
            assert_eq!(
                rtypes(names.lookup(&key(n), RecordType::AAAA)),
                None,
                "{n}: no AAAA, so not answered here (as dnsmasq)"
            );
        }
        // The DHCP port and the floating IP are not named.
        for n in [
            "host-10-0-0-2",
            "host-10-0-0-3.openstacklocal",
            "web-2",
            "openstacklocal",
        ] {
            assert_eq!(rtypes(names.lookup(&key(n), RecordType::A)), None, "{n}");
        }
        let ptr = |n: &str| names.lookup(&key(n), RecordType::PTR);
        assert_eq!(
            rtypes(ptr("10.0.0.10.in-addr.arpa")),
            Some(vec![RecordType::PTR])
        );
        assert_eq!(
            rtypes(ptr(
                "a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa"
            )),
            Some(vec![RecordType::PTR])
        );
        assert_eq!(rtypes(ptr("2.0.0.10.in-addr.arpa")), None);
    }

    #[test]
    fn reverse_names_parse_only_whole_addresses() {
        assert_eq!(
            parse_arpa(b"5.0.0.10.in-addr.arpa"),
            Some("10.0.0.5".parse().unwrap())
        );
        assert_eq!(parse_arpa(b"0.0.10.in-addr.arpa"), None);
        assert_eq!(parse_arpa(b"5.0.0.0.10.in-addr.arpa"), None);
        assert_eq!(parse_arpa(b"256.0.0.10.in-addr.arpa"), None);
        assert_eq!(parse_arpa(b"05.0.0.10.in-addr.arpa"), None);
        let v6 = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa";
        assert_eq!(
            parse_arpa(v6.as_bytes()),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(parse_arpa(b"1.0.ip6.arpa"), None);
        assert_eq!(parse_arpa(b"example.org"), None);
    }
}
