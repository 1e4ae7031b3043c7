//! `/v1/explain?...&family=v6`: the DHCPv6 reply this agent would send a client right now, from
//! the real responder ([`crate::dhcp::v6::respond`]) on the network's current view: a Solicit
//! is synthesized (the client's DUID, by default the DUID-LL of its MAC, one IA_NA, no Option
//! Request option so that everything configured is sent, from the client's EUI-64 link-local
//! address with its MAC seen at layer 2), then the Request for the advertised addresses; the
//! Reply is decoded option by option with where each value comes from.

use std::net::Ipv6Addr;

use serde_json::{json, Value};

use crate::dhcp::packet6::{msg, opt};
use crate::dhcp::v6::{self, Outcome, Source};
use crate::model::{IpVersion, MacAddr, Network, Port};

use super::Status;

const XID: [u8; 3] = [0x65, 0x78, 0x70];

/// The explanation document (also for a client that would get no answer).
pub fn explain(status: &Status, network_id: &str, mac: MacAddr, duid: Option<&[u8]>) -> Value {
    let ll_duid: Vec<u8> = [0, 3, 0, 1].iter().chain(mac.0.iter()).copied().collect();
    let duid = duid.unwrap_or(&ll_duid);
    let mut doc = json!({
        "network": network_id,
        "family": "v6",
        "mac": mac.to_string(),
        "duid": hex(duid),
    });
    let Some((view, net)) = super::networks::served_view(status, network_id, mac, &mut doc) else {
        return doc;
    };
    let src = Source {
        addr: link_local(mac),
        link: crate::dhcp::link::Link::Seen(mac),
    };
    let current = view.load();
    let mut reply = Vec::with_capacity(1500);
    let solicit = message(msg::SOLICIT, duid, None, &[]);
    let advertise = match v6::respond(&solicit, &src, current.v6(), &mut reply) {
        Outcome::Reply { .. } => reply.clone(),
        other => return not_answered(doc, "Solicit", other),
    };
    let server_id = options(&advertise[4..])
        .into_iter()
        .find(|(c, _)| *c == opt::SERVER_ID)
        .map(|(_, v)| v.to_vec());
    let addresses = ia_addresses(&advertise);
    let request = message(msg::REQUEST, duid, server_id.as_deref(), &addresses);
    let outcome = v6::respond(&request, &src, current.v6(), &mut reply);
    drop(current);
    if !matches!(outcome, Outcome::Reply { .. }) {
        return not_answered(doc, "Request", outcome);
    }
    let port = net.ports.iter().find(|p| p.mac_address == mac);
    doc["answered"] = json!(true);
    doc["port"] = json!(port.map(|p| p.id.clone()));
    doc["reply"] = json!({
        "message": "Reply (after Solicit/Advertise and Request)",
        "addresses": ia_addresses(&reply).iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "options": options(reply.get(4..).unwrap_or(&[]))
            .into_iter()
            .map(|(c, v)| json!({
                "code": c,
                "name": name(c),
                "value": value_text(c, v),
                "hex": hex(v),
                "source": source(c, &net, port.map(|p| &**p)),
            }))
            .collect::<Vec<_>>(),
        "bytes": reply.len(),
    });
    doc
}

fn not_answered(mut doc: Value, what: &str, outcome: Outcome) -> Value {
    doc["answered"] = json!(false);
    doc["reason"] = json!(match outcome {
        Outcome::Ignored(i) => format!("{what} not answered: {i}"),
        Outcome::Malformed(why) => format!("{what} malformed: {why}"),
        Outcome::Reply { .. } => format!("{what} answered"),
    });
    doc
}

/// fe80::/64 with the MAC's modified EUI-64 interface id.
fn link_local(mac: MacAddr) -> Ipv6Addr {
    let m = mac.0;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        m[0] ^ 2,
        m[1],
        m[2],
        0xff,
        0xfe,
        m[3],
        m[4],
        m[5],
    ])
}

fn tlv(out: &mut Vec<u8>, code: u16, data: &[u8]) {
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

/// A client message with one IA_NA (IAID 1), asking for `addresses` when given.
fn message(kind: u8, duid: &[u8], server: Option<&[u8]>, addresses: &[Ipv6Addr]) -> Vec<u8> {
    let mut m = vec![kind, XID[0], XID[1], XID[2]];
    tlv(&mut m, opt::CLIENT_ID, duid);
    if let Some(s) = server {
        tlv(&mut m, opt::SERVER_ID, s);
    }
    let mut ia = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    for a in addresses {
        let mut addr = a.octets().to_vec();
        addr.extend_from_slice(&[0; 8]);
        tlv(&mut ia, opt::IAADDR, &addr);
    }
    tlv(&mut m, opt::IA_NA, &ia);
    tlv(&mut m, 8, &[0, 0]); // elapsed time
    m
}

/// TLVs (code, data) of an options area.
fn options(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let code = u16::from_be_bytes([b[0], b[1]]);
        let len = u16::from_be_bytes([b[2], b[3]]) as usize;
        let Some(data) = b.get(4..4 + len) else { break };
        out.push((code, data));
        b = &b[4 + len..];
    }
    out
}

/// The addresses in a reply's IA_NA options.
fn ia_addresses(reply: &[u8]) -> Vec<Ipv6Addr> {
    let mut out = Vec::new();
    for (c, v) in options(reply.get(4..).unwrap_or(&[])) {
        if c == opt::IA_NA && v.len() >= 12 {
            for (s, a) in options(&v[12..]) {
                if s == opt::IAADDR && a.len() >= 16 {
                    let mut o = [0u8; 16];
                    o.copy_from_slice(&a[..16]);
                    out.push(Ipv6Addr::from(o));
                }
            }
        }
    }
    out
}

fn name(c: u16) -> &'static str {
    match c {
        opt::CLIENT_ID => "client-id",
        opt::SERVER_ID => "server-id",
        opt::IA_NA => "ia-na",
        opt::PREFERENCE => "preference",
        opt::STATUS_CODE => "status-code",
        opt::RAPID_COMMIT => "rapid-commit",
        opt::DNS_SERVERS => "dns-server",
        opt::DOMAIN_LIST => "domain-search",
        opt::REFRESH_TIME => "information-refresh-time",
        opt::CLIENT_FQDN => "client-fqdn",
        _ => "",
    }
}

fn value_text(c: u16, v: &[u8]) -> String {
    match c {
        opt::DNS_SERVERS => v
            .chunks_exact(16)
            .map(|a| {
                let mut o = [0u8; 16];
                o.copy_from_slice(a);
                Ipv6Addr::from(o).to_string()
            })
            .collect::<Vec<_>>()
            .join(" "),
        opt::DOMAIN_LIST => domains(v),
        opt::IA_NA if v.len() >= 12 => {
            let t = |i: usize| u32::from_be_bytes([v[i], v[i + 1], v[i + 2], v[i + 3]]);
            let mut parts = vec![format!("iaid {} T1 {} T2 {}", t(0), t(4), t(8))];
            for (s, a) in options(&v[12..]) {
                if s == opt::IAADDR && a.len() >= 24 {
                    let mut o = [0u8; 16];
                    o.copy_from_slice(&a[..16]);
                    let l = |i: usize| u32::from_be_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]]);
                    parts.push(format!(
                        "{} preferred {} valid {}",
                        Ipv6Addr::from(o),
                        l(16),
                        l(20)
                    ));
                } else if s == opt::STATUS_CODE && a.len() >= 2 {
                    parts.push(format!(
                        "status {} {}",
                        u16::from_be_bytes([a[0], a[1]]),
                        String::from_utf8_lossy(&a[2..])
                    ));
                }
            }
            parts.join(", ")
        }
        opt::PREFERENCE if v.len() == 1 => v[0].to_string(),
        opt::REFRESH_TIME if v.len() == 4 => {
            u32::from_be_bytes([v[0], v[1], v[2], v[3]]).to_string()
        }
        _ => hex(v),
    }
}

/// RFC 1035 names (uncompressed, as DHCPv6 carries them), space separated.
fn domains(v: &[u8]) -> String {
    let mut names = Vec::new();
    let mut labels = Vec::new();
    let mut i = 0;
    while let Some(&len) = v.get(i) {
        if len == 0 {
            names.push(labels.join("."));
            labels.clear();
            i += 1;
            continue;
        }
        let Some(l) = v.get(i + 1..i + 1 + len as usize) else {
            return hex(v);
        };
        labels.push(String::from_utf8_lossy(l).into_owned());
        i += 1 + len as usize;
    }
    names.join(" ")
}

fn source(c: u16, net: &Network, port: Option<&Port>) -> String {
    let v6_subnets = || net.subnets.iter().filter(|s| s.ip_version == IpVersion::V6);
    match c {
        opt::IA_NA => match port {
            Some(p) => format!(
                "port {} fixed_ips on the network's DHCPv6-stateful subnets; lifetimes from \
                 [DEFAULT] dhcp_lease_duration",
                p.id
            ),
            None => "a port whose DUID matches".into(),
        },
        opt::CLIENT_ID => "the client's DUID, echoed".into(),
        opt::SERVER_ID => {
            "the server DUID (DUID-LL of the DHCP port's MAC, or the one taken over from dnsmasq)"
                .into()
        }
        opt::DNS_SERVERS => {
            if v6_subnets().any(|s| !s.dns_nameservers.is_empty()) {
                "subnet dns_nameservers".into()
            } else {
                "the DHCP port's address on the subnet, because the subnet lists no \
                 dns_nameservers (Neutron's rule)"
                    .into()
            }
        }
        opt::DOMAIN_LIST => "[DEFAULT] dns_domain".into(),
        _ => "port extra_dhcp_opts (ip_version 6) or the agent's defaults".into(),
    }
}

fn hex(v: &[u8]) -> String {
    v.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eui64_link_local_and_domains() {
        let mac = MacAddr([0xfa, 0x16, 0x3e, 0, 0, 1]);
        assert_eq!(
            link_local(mac),
            "fe80::f816:3eff:fe00:1".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(domains(b"\x04ndrs\x04test\x00"), "ndrs.test");
    }
}
