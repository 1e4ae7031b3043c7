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

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use crate::model::{Network, Port};

/// dnsmasq's `local-ttl` default (Neutron sets none): local answers are not cached.
pub const LOCAL_TTL: u32 = 0;

/// Beyond this many changed ports a full build costs about the same as a patched copy.
const MAX_CHANGED: usize = 64;

/// One answer record, encoded once: its owner name is a pointer to the question's name (the
/// only name a reply to one question carries before its answers), so the record is valid in
/// any reply to a query for this name. Shared, so that copying a table copies no record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedRr {
    pub rtype: RecordType,
    pub bytes: Arc<[u8]>,
}

/// A network's DNS names. Immutable once built; shared by every view of the network until its
/// ports change, and then patched on a copy whose entries are shared with this one
/// ([`DnsNames::update`]).
#[derive(Clone, Debug, Default)]
pub struct DnsNames {
    /// Lower-case name without the root dot -> its A/AAAA records (A first), in `addn_hosts`
    /// order.
    forward: HashMap<Arc<[u8]>, Arc<[EncodedRr]>>,
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

/// Names being added to, before their record lists are frozen.
#[derive(Default)]
struct Staged(HashMap<Arc<[u8]>, Vec<EncodedRr>>);

impl DnsNames {
    /// The table for `net` under `dns_domain` (the agent's `[DEFAULT] dns_domain`; empty: the
    /// generated names have no domain).
    pub fn build(net: &Network, dns_domain: &str) -> DnsNames {
        let mut names = DnsNames::default();
        let mut staged = Staged::default();
        for (ip, fqdn, hostname) in entries(net, dns_domain) {
            names.add(&mut staged, ip, &fqdn, &hostname);
        }
        names.freeze(staged);
        names
    }

    /// The table of `new`, made from this one (the table of `old`, whose unchanged ports
    /// `new` shares: ports are compared by pointer, as the view's update does) by taking out
    /// the names of the ports that left and adding those of the ports that came. `None` when
    /// only a full build answers right: other subnets, too many changed ports, or an address
    /// of a changed port that another port also has (then the file order decides its PTR).
    pub fn update(&self, old: &Network, new: &Network, dns_domain: &str) -> Option<DnsNames> {
        if old.subnets != new.subnets || old.non_local_subnets != new.non_local_subnets {
            return None;
        }
        // The ports between the common head and tail of the two lists (a reload or an event
        // shares the unchanged `Arc<Port>`s): a port in that window that did not change is
        // taken out and put back, which leaves its names as they were.
        let (o, n) = (&old.ports, &new.ports);
        let head = o
            .iter()
            .zip(n)
            .take_while(|(a, b)| Arc::ptr_eq(a, b))
            .count();
        let tail = o
            .iter()
            .rev()
            .zip(n.iter().rev())
            .take(o.len().min(n.len()) - head)
            .take_while(|(a, b)| Arc::ptr_eq(a, b))
            .count();
        let removed: Vec<&Port> = o[head..o.len() - tail]
            .iter()
            .filter(|p| p.wants_dhcp())
            .map(|p| &**p)
            .collect();
        let added: Vec<&Port> = n[head..n.len() - tail]
            .iter()
            .filter(|p| p.wants_dhcp())
            .map(|p| &**p)
            .collect();
        if removed.len() + added.len() > MAX_CHANGED {
            return None;
        }
        let changed: HashSet<*const Port> = removed
            .iter()
            .chain(&added)
            .map(|p| *p as *const Port)
            .collect();
        let shared_address = |net: &Network, ip: IpAddr| {
            net.ports.iter().any(|p| {
                p.wants_dhcp()
                    && !changed.contains(&Arc::as_ptr(p))
                    && p.fixed_ips.iter().any(|f| f.ip_address == ip)
            })
        };
        let mut names = self.clone();
        let mut staged = Staged::default();
        for port in removed {
            for (ip, fqdn, hostname) in port_entries(old, port, dns_domain) {
                if shared_address(old, ip) {
                    return None;
                }
                let rr = address_rr(ip)?;
                for name in [&fqdn, &hostname] {
                    let Some(key) = key_of_text(name) else {
                        continue;
                    };
                    let records = names.staged(&mut staged, key);
                    if let Some(i) = records.iter().position(|r| *r == rr) {
                        records.remove(i);
                    }
                }
                names.reverse.remove(&ip);
            }
        }
        for port in added {
            for (ip, fqdn, hostname) in port_entries(new, port, dns_domain) {
                if shared_address(new, ip) {
                    return None;
                }
                names.add(&mut staged, ip, &fqdn, &hostname);
            }
        }
        names.freeze(staged);
        Some(names)
    }

    /// The records of `key` to change: staged already, or copied from the table.
    fn staged<'s>(&self, staged: &'s mut Staged, key: Arc<[u8]>) -> &'s mut Vec<EncodedRr> {
        let current = self.forward.get(&key);
        staged
            .0
            .entry(key)
            .or_insert_with(|| current.map(|r| r.to_vec()).unwrap_or_default())
    }

    /// Puts the staged names into the table (an emptied name leaves it).
    fn freeze(&mut self, staged: Staged) {
        for (key, mut records) in staged.0 {
            if records.is_empty() {
                self.forward.remove(&key);
                continue;
            }
            // Stable: addresses of one family keep the file's order.
            records.sort_by_key(|rr| u16::from(rr.rtype));
            self.forward.insert(key, records.into());
        }
    }

    /// Number of distinct names; for logs and tests.
    pub fn name_count(&self) -> usize {
        self.forward.len()
    }

    fn add(&mut self, staged: &mut Staged, ip: IpAddr, fqdn: &str, hostname: &str) {
        let Some(rr) = address_rr(ip) else {
            return;
        };
        for name in [fqdn, hostname] {
            let Some(key) = key_of_text(name) else {
                tracing::warn!(name, %ip, "not a valid DNS name; not answered");
                continue;
            };
            let records = self.staged(staged, key);
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

/// The A or AAAA record of an address.
fn address_rr(ip: IpAddr) -> Option<EncodedRr> {
    encode(match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    })
}

/// `(address, fqdn, hostname)` per line of Neutron's `addn_hosts` for `net` (reference §9.4,
/// §9.5), in file order.
pub fn entries(net: &Network, dns_domain: &str) -> Vec<(IpAddr, String, String)> {
    net.ports
        .iter()
        .filter(|p| p.wants_dhcp())
        .flat_map(|p| port_entries(net, p, dns_domain))
        .collect()
}

/// The `addn_hosts` lines of one port of `net`.
fn port_entries(net: &Network, port: &Port, dns_domain: &str) -> Vec<(IpAddr, String, String)> {
    let stateless = |subnet_id: &str| {
        net.subnets.iter().chain(&net.non_local_subnets).any(|s| {
            s.id == subnet_id
                && s.ip_version == crate::model::IpVersion::V6
                && s.ipv6_address_mode == Some(crate::model::Ipv6Mode::Dhcpv6Stateless)
        })
    };
    // `_iter_hosts` lists stateless IPv6 allocations first (a stable sort).
    let mut fixed: Vec<_> = port.fixed_ips.iter().collect();
    fixed.sort_by_key(|f| !stateless(&f.subnet_id));
    fixed
        .into_iter()
        .map(|f| {
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
            (ip, fqdn, hostname)
        })
        .collect()
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
fn key_of_text(text: &str) -> Option<Arc<[u8]>> {
    let name = Name::from_ascii(text.trim_end_matches('.')).ok()?;
    if name.is_root() {
        return None;
    }
    let mut buf = [0; MAX_KEY];
    key_of(&name, &mut buf).map(Arc::from)
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
        bytes: bytes.into(),
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
        key_of_text(name).unwrap().to_vec()
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

    /// Every answer of a table, for comparing two tables.
    fn answers(names: &DnsNames) -> Vec<(Vec<u8>, Vec<EncodedRr>)> {
        let mut all: Vec<(Vec<u8>, Vec<EncodedRr>)> = names
            .forward
            .iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        for (ip, rr) in &names.reverse {
            all.push((ip.to_string().into_bytes(), vec![rr.clone()]));
        }
        for (_, v) in &mut all {
            v.sort_by(|a, b| (u16::from(a.rtype), &a.bytes).cmp(&(u16::from(b.rtype), &b.bytes)));
        }
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    #[test]
    fn a_patched_table_answers_like_a_full_build() {
        let base = network();
        let mut names = DnsNames::build(&base, "d");
        let mut net = base.clone();
        // A sequence of edits: remove a port, add new ones, rename one, remove the rest.
        let vm = |i: u8, name: Option<&str>| {
            let mut p = json!({"id": format!("x{i}"), "mac_address": format!("fa:16:3e:00:01:{i:02x}"),
                "device_owner": "compute:nova",
                "fixed_ips": [{"subnet_id": "s4", "ip_address": format!("10.0.0.{}", 100 + i)},
                              {"subnet_id": "s6", "ip_address": format!("fd00::{}", 100 + i)}]});
            if let Some(n) = name {
                p["dns_assignment"] = json!([{"ip_address": format!("10.0.0.{}", 100 + i),
                    "hostname": n, "fqdn": format!("{n}.example.org.")}]);
            }
            std::sync::Arc::new(serde_json::from_value::<Port>(p).unwrap())
        };
        type Step = Box<dyn Fn(&mut Network)>;
        let steps: Vec<Step> = vec![
            Box::new(|n| n.ports.retain(|p| p.id != "vm1")),
            Box::new(move |n| n.ports.push(vm(1, Some("app")))),
            Box::new(move |n| n.ports.insert(1, vm(2, None))),
            Box::new(move |n| {
                n.ports.retain(|p| p.id != "x1");
                n.ports.push(vm(1, Some("app-renamed")));
            }),
            Box::new(|n| n.ports.retain(|p| p.device_owner == "network:dhcp")),
        ];
        for (i, step) in steps.iter().enumerate() {
            let old = net.clone();
            step(&mut net);
            let patched = names.update(&old, &net, "d").expect("patchable");
            assert_eq!(
                answers(&patched),
                answers(&DnsNames::build(&net, "d")),
                "step {i}"
            );
            names = patched;
        }
        assert_eq!(names.name_count(), 0);
        // Another subnet list: only a full build.
        let mut other = net.clone();
        other.subnets.pop();
        assert!(names.update(&net, &other, "d").is_none());
    }
}
