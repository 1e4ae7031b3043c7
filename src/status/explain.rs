//! `/v1/explain`: the exact DHCPv4 reply this agent would send a client right now, decoded
//! option by option, with where each value comes from; or why it would not answer.
//!
//! The reply is the real responder's ([`crate::dhcp::v4::respond`] on the network's current
//! view), never a second implementation: a DISCOVER is synthesized for the client (its MAC, its
//! client id if given, a parameter request list naming every option so that nothing
//! configured is left out, and room for a full-size reply), then the REQUEST a client sends
//! for that offer; the ACK is what is shown. Only the annotations ("source") are worked out
//! here, from the network's Neutron data, to say which Neutron field or rule produced a value.

use std::net::Ipv4Addr;

use hyper::StatusCode;
use serde_json::{json, Value};

use crate::codec::options::{self, code, Kind};
use crate::dhcp::packet::{msg, HEADER_LEN, MAGIC_COOKIE};
use crate::dhcp::v4::{self, Outcome};
use crate::model::{IpVersion, MacAddr, Network, Port, Subnet};

use super::query::Query;
use super::Status;

/// The transaction id of synthesized requests (any value: the reply echoes it).
const XID: [u8; 4] = *b"expl";
/// Option 57 of synthesized requests: the largest reply the responder builds.
const MAX_MESSAGE_SIZE: u16 = 1472;

/// Handles `GET /v1/explain?network=<id>&mac=<mac>[&client_id=<hex>][&prl=1,3,6]`, and with
/// `family=v6[&duid=<hex>]` the DHCPv6 equivalent ([`super::explain6`]).
pub fn http(status: &Status, q: &Query) -> (StatusCode, Value) {
    let bad = |e: String| (StatusCode::BAD_REQUEST, json!({ "error": e }));
    let Some(network_id) = q.get("network") else {
        return bad("network=<id> is required".into());
    };
    let Some(mac) = q.get("mac") else {
        return bad("mac=<MAC address> is required".into());
    };
    let Ok(mac) = mac.parse::<MacAddr>() else {
        return bad(format!("mac={mac:?} is not a MAC address"));
    };
    let client_id = match q.get("client_id").map(parse_hex) {
        None => None,
        Some(Some(id)) if !id.is_empty() && id.len() <= 255 => Some(id),
        Some(_) => return bad("client_id must be hex bytes, e.g. 01fa163e000001".into()),
    };
    let prl = match q.get("prl").map(parse_prl) {
        None => None,
        Some(Some(p)) => Some(p),
        Some(None) => return bad("prl must be option codes 1-254, e.g. 1,3,6,15".into()),
    };
    let doc = match q.get("family") {
        None | Some("v4") => explain(
            status,
            network_id,
            mac,
            client_id.as_deref(),
            prl.as_deref(),
        ),
        Some("v6") => {
            let duid = match q.get("duid").map(parse_hex) {
                None => None,
                Some(Some(d)) if (3..=130).contains(&d.len()) => Some(d),
                Some(_) => return bad("duid must be 3 to 130 hex bytes".into()),
            };
            super::explain6::explain(status, network_id, mac, duid.as_deref())
        }
        Some(f) => return bad(format!("family={f:?}: expected v4 or v6")),
    };
    let code = if doc["answered"] == Value::Bool(true) {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    (code, doc)
}

/// The explanation document (also for a client that would get no answer).
pub fn explain(
    status: &Status,
    network_id: &str,
    mac: MacAddr,
    client_id: Option<&[u8]>,
    prl: Option<&[u8]>,
) -> Value {
    let base = json!({
        "network": network_id,
        "mac": mac.to_string(),
        "client_id": client_id.map(hex),
    });
    let mut doc = base;
    let Some((view, net)) = super::networks::served_view(status, network_id, mac, &mut doc) else {
        return doc;
    };
    let all: Vec<u8> = (1..=254).collect();
    let prl = prl.unwrap_or(&all);
    let current = view.load();
    let mut reply = Vec::with_capacity(1500);
    let discover = request(msg::DISCOVER, mac, client_id, prl, None);
    let outcome = v4::respond(&discover, &current, &mut reply);
    let offer = match outcome {
        Outcome::Reply { .. } => reply.clone(),
        other => return not_answered(doc, "DHCPDISCOVER", other, status, network_id, mac),
    };
    let yiaddr = ip_at(&offer, 16);
    let server_id = find_option(&offer, code::SERVER_ID)
        .filter(|v| v.len() == 4)
        .map(|v| Ipv4Addr::new(v[0], v[1], v[2], v[3]));
    let req = request(msg::REQUEST, mac, client_id, prl, Some((yiaddr, server_id)));
    let outcome = v4::respond(&req, &current, &mut reply);
    drop(current);
    let delivery = match outcome {
        Outcome::Reply { delivery, .. } => delivery,
        other => return not_answered(doc, "DHCPREQUEST", other, status, network_id, mac),
    };
    let port = net.ports.iter().find(|p| p.mac_address == mac);
    let subnet = net
        .subnets
        .iter()
        .find(|s| s.ip_version == IpVersion::V4 && s.cidr.contains(yiaddr.into()));
    let ctx = Sources {
        net: &net,
        port: port.map(|p| &**p),
        subnet,
    };
    doc["answered"] = json!(true);
    doc["port"] = json!(port.map(|p| p.id.clone()));
    doc["subnet"] = json!(subnet.map(|s| s.id.clone()));
    doc["reply"] = json!({
        "message": "DHCPACK (after DHCPDISCOVER/DHCPOFFER and DHCPREQUEST)",
        "delivery": delivery_text(delivery),
        "yiaddr": yiaddr.to_string(),
        "yiaddr_source": ctx.address_source(yiaddr),
        "siaddr": ip_at(&reply, 20).to_string(),
        "siaddr_source": "server-ip-address in the port's extra_dhcp_opts, else the DHCP port's address on the subnet",
        "options": decode_options(&reply, &ctx),
        "bytes": reply.len(),
    });
    doc
}

/// How the reply is sent, for people.
fn delivery_text(d: v4::Delivery) -> String {
    match d {
        v4::Delivery::Broadcast => "broadcast".into(),
        v4::Delivery::Unicast { mac, ip } => format!("unicast to {} at {ip}", MacAddr(mac)),
        v4::Delivery::Ciaddr { ip } => format!("unicast to the client's address {ip}"),
        v4::Delivery::Relay { giaddr } => format!("to the relay {giaddr}"),
    }
}

fn not_answered(
    mut doc: Value,
    what: &str,
    outcome: Outcome,
    status: &Status,
    network_id: &str,
    mac: MacAddr,
) -> Value {
    doc["answered"] = json!(false);
    let reason = match outcome {
        Outcome::Ignored(v4::Ignore::UnknownClient { .. }) => format!(
            "no port of network {network_id} has MAC {mac} (or the client id): the server is \
             static-only, like Neutron's dnsmasq, and does not answer unknown clients"
        ),
        Outcome::Ignored(i) => format!("{what} not answered: {i}"),
        Outcome::Malformed(why) => format!("{what} malformed: {why}"),
        Outcome::Reply { .. } => format!("{what} answered"),
    };
    doc["reason"] = json!(reason);
    // The most common mistake: the VM's port is on another network than the one asked about.
    let elsewhere: Vec<String> = status
        .agent()
        .served_networks()
        .into_iter()
        .filter(|s| s.network_id != network_id)
        .filter(|s| {
            let cache = status.agent().cache();
            cache
                .view(&s.network_id)
                .is_some_and(|v| v.load().serves_mac(&mac))
        })
        .map(|s| s.network_id)
        .collect();
    if !elsewhere.is_empty() {
        doc["mac_served_on_networks"] = json!(elsewhere);
    }
    doc
}

/// A BOOTREQUEST from `mac` of type `kind`; a REQUEST also names the offered address and the
/// server (RFC 2131 SELECTING).
fn request(
    kind: u8,
    mac: MacAddr,
    client_id: Option<&[u8]>,
    prl: &[u8],
    selecting: Option<(Ipv4Addr, Option<Ipv4Addr>)>,
) -> Vec<u8> {
    let mut p = vec![0u8; HEADER_LEN];
    p[0] = 1; // BOOTREQUEST
    p[1] = 1; // Ethernet
    p[2] = 6;
    p[4..8].copy_from_slice(&XID);
    p[28..34].copy_from_slice(&mac.0);
    p.extend_from_slice(&MAGIC_COOKIE);
    p.extend_from_slice(&[code::MESSAGE_TYPE, 1, kind]);
    if let Some(id) = client_id {
        p.extend_from_slice(&[code::CLIENT_ID, id.len() as u8]);
        p.extend_from_slice(id);
    }
    if let Some((ip, server)) = selecting {
        p.extend_from_slice(&[code::REQUESTED_IP, 4]);
        p.extend_from_slice(&ip.octets());
        if let Some(s) = server {
            p.extend_from_slice(&[code::SERVER_ID, 4]);
            p.extend_from_slice(&s.octets());
        }
    }
    p.extend_from_slice(&[code::MAX_MESSAGE_SIZE, 2]);
    p.extend_from_slice(&MAX_MESSAGE_SIZE.to_be_bytes());
    p.extend_from_slice(&[code::PRL, prl.len() as u8]);
    p.extend_from_slice(prl);
    p.push(255);
    p
}

fn ip_at(b: &[u8], at: usize) -> Ipv4Addr {
    match b.get(at..at + 4) {
        Some(v) => Ipv4Addr::new(v[0], v[1], v[2], v[3]),
        None => Ipv4Addr::UNSPECIFIED,
    }
}

/// The reply's options in order: (code, value bytes).
fn options_of(reply: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    let mut i = HEADER_LEN + 4;
    while let Some(&c) = reply.get(i) {
        match c {
            0 => i += 1,
            255 => break,
            _ => {
                let Some(&len) = reply.get(i + 1) else { break };
                let Some(v) = reply.get(i + 2..i + 2 + len as usize) else {
                    break;
                };
                out.push((c, v));
                i += 2 + len as usize;
            }
        }
    }
    out
}

fn find_option(reply: &[u8], want: u8) -> Option<&[u8]> {
    options_of(reply)
        .into_iter()
        .find(|(c, _)| *c == want)
        .map(|(_, v)| v)
}

/// What the explanation knows about the client, to say where values come from.
struct Sources<'a> {
    net: &'a Network,
    port: Option<&'a Port>,
    subnet: Option<&'a Subnet>,
}

impl Sources<'_> {
    fn address_source(&self, ip: Ipv4Addr) -> String {
        match (self.port, self.subnet) {
            (Some(p), Some(s)) => {
                format!(
                    "port {} fixed_ips: {ip} on subnet {} ({})",
                    p.id, s.id, s.cidr
                )
            }
            _ => "a port of this network with the client's client id".into(),
        }
    }

    /// The port's IPv4 `extra_dhcp_opts` entry that sets `code`, as `name=value`.
    fn port_option(&self, code: u8) -> Option<String> {
        let port = self.port?;
        port.extra_dhcp_opts
            .iter()
            .filter(|o| o.ip_version == IpVersion::V4)
            .find(|o| {
                options::parse_extra_opt(&o.opt_name, o.opt_value.as_deref())
                    .is_ok_and(|p| p.code == code)
            })
            .map(|o| format!("{}={}", o.opt_name, o.opt_value.as_deref().unwrap_or("")))
    }

    fn source(&self, c: u8) -> String {
        if let Some(o) = self.port_option(c) {
            return format!("port extra_dhcp_opts ({o})");
        }
        let cidr = self
            .subnet
            .map_or_else(|| "the subnet".to_owned(), |s| format!("subnet {}", s.cidr));
        match c {
            code::NETMASK => format!("{cidr}: its prefix length"),
            code::BROADCAST => format!("{cidr}: its broadcast address"),
            code::ROUTER => match self.subnet.and_then(|s| s.gateway_ip) {
                Some(g) => format!("{cidr} gateway_ip ({g})"),
                None => format!("{cidr} has no gateway_ip"),
            },
            code::DNS => match self.subnet {
                Some(s) if !s.dns_nameservers.is_empty() => {
                    format!("{cidr} dns_nameservers")
                }
                _ => format!(
                    "the DHCP port's address on {cidr}, because the subnet lists no \
                     dns_nameservers (Neutron's rule; [DEFAULT] dnsmasq_dns_servers and \
                     dnsmasq_local_resolv change it)"
                ),
            },
            code::HOSTNAME => match self.port.and_then(|p| p.dns_assignment.first()) {
                Some(d) => format!("port dns_assignment hostname ({})", d.hostname),
                None => "generated by Neutron's rule host-<address with dashes> (the port has \
                         no dns_assignment)"
                    .into(),
            },
            code::DOMAIN_NAME => "[DEFAULT] dns_domain".into(),
            code::MTU => match self.net.mtu {
                Some(m) => format!("network mtu ({m})"),
                None => "network mtu".into(),
            },
            code::LEASE_TIME => "[DEFAULT] dhcp_lease_duration".into(),
            code::T1 => "[DEFAULT] dhcp_renewal_time, else half the lease (dnsmasq)".into(),
            code::T2 => {
                "[DEFAULT] dhcp_rebinding_time, else seven eighths of the lease (dnsmasq)".into()
            }
            code::MESSAGE_TYPE => "the DHCP exchange".into(),
            code::SERVER_ID => format!("the DHCP port's address on {cidr}"),
            code::CLASSLESS_ROUTE | code::MS_CLASSLESS_ROUTE => format!(
                "{cidr} host_routes, the default route via gateway_ip, and the metadata route \
                 (169.254.169.254 via the DHCP port) when isolated metadata is served"
            ),
            code::DOMAIN_SEARCH => "port extra_dhcp_opts or [DEFAULT] dns_domain".into(),
            _ => "the agent's defaults".into(),
        }
    }
}

fn decode_options(reply: &[u8], ctx: &Sources<'_>) -> Vec<Value> {
    options_of(reply)
        .into_iter()
        .map(|(c, v)| {
            let name = match options::lookup_code(c) {
                Some(d) => d.name,
                None if c == code::MS_CLASSLESS_ROUTE => "ms-classless-static-route",
                None => "",
            };
            json!({
                "code": c,
                "name": name,
                "value": value_text(c, v),
                "hex": hex(v),
                "source": ctx.source(c),
            })
        })
        .collect()
}

/// An option's value in the form an operator reads (and dhclient prints).
pub fn value_text(c: u8, v: &[u8]) -> String {
    let ips = |v: &[u8]| {
        v.chunks_exact(4)
            .map(|b| Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let kind = options::lookup_code(c).map(|d| d.kind);
    match c {
        code::MESSAGE_TYPE => match v.first() {
            Some(&msg::OFFER) => "DHCPOFFER".into(),
            Some(&msg::ACK) => "DHCPACK".into(),
            Some(&msg::NAK) => "DHCPNAK".into(),
            Some(t) => t.to_string(),
            None => String::new(),
        },
        code::CLASSLESS_ROUTE | code::MS_CLASSLESS_ROUTE => classless_routes(v),
        code::LEASE_TIME | code::T1 | code::T2 if v.len() == 4 => {
            u32::from_be_bytes([v[0], v[1], v[2], v[3]]).to_string()
        }
        _ => match kind {
            Some(Kind::AddrList) if v.len() % 4 == 0 && !v.is_empty() => ips(v),
            Some(Kind::Size(_)) | Some(Kind::Time) => match v.len() {
                1 => v[0].to_string(),
                2 => u16::from_be_bytes([v[0], v[1]]).to_string(),
                4 => u32::from_be_bytes([v[0], v[1], v[2], v[3]]).to_string(),
                _ => hex(v),
            },
            _ => {
                let text = v.strip_suffix(&[0]).unwrap_or(v);
                if !text.is_empty() && text.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
                    String::from_utf8_lossy(text).into_owned()
                } else {
                    hex(v)
                }
            }
        },
    }
}

/// RFC 3442 routes as `destination/len via gateway`, comma separated.
fn classless_routes(v: &[u8]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&len) = v.get(i) {
        let octets = (len as usize).div_ceil(8);
        let (Some(dst), Some(gw)) = (
            v.get(i + 1..i + 1 + octets),
            v.get(i + 1 + octets..i + 5 + octets),
        ) else {
            return hex(v);
        };
        let mut d = [0u8; 4];
        d[..octets.min(4)].copy_from_slice(&dst[..octets.min(4)]);
        out.push(format!(
            "{}/{len} via {}",
            Ipv4Addr::from(d),
            Ipv4Addr::new(gw[0], gw[1], gw[2], gw[3])
        ));
        i += 5 + octets;
    }
    out.join(", ")
}

fn hex(v: &[u8]) -> String {
    v.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex(s: &str) -> Option<Vec<u8>> {
    let s: String = s.chars().filter(|c| *c != ':' && *c != '-').collect();
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn parse_prl(s: &str) -> Option<Vec<u8>> {
    s.split(',')
        .map(|c| {
            c.trim()
                .parse::<u8>()
                .ok()
                .filter(|c| (1..=254).contains(c))
        })
        .collect()
}

/// Seconds since the epoch as `YYYY-MM-DD HH:MM:SS.mmm UTC`.
pub fn utc(t: f64) -> String {
    let ms = (t * 1000.0) as i64;
    let c = crate::utc::civil(ms.div_euclid(1000));
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03} UTC",
        c.year,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        ms.rem_euclid(1000)
    )
}

/// The CLI's table for an explanation.
pub fn render(doc: &Value) -> String {
    use std::fmt::Write as _;
    let s = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        o => o.to_string(),
    };
    let mut out = String::new();
    let _ = writeln!(out, "network  {}", s(&doc["network"]));
    let _ = writeln!(out, "client   {}", s(&doc["mac"]));
    let seen = doc["last_seen"].as_array().cloned().unwrap_or_default();
    match seen.first() {
        None => {
            let _ = writeln!(out, "seen     no request from this client lately");
        }
        Some(_) => {
            for e in seen.iter().take(5) {
                let _ = writeln!(
                    out,
                    "seen     {} {} {}: {}",
                    e["time_unix"].as_f64().map_or_else(|| "-".into(), utc),
                    s(&e["family"]),
                    s(&e["message"]),
                    s(&e["result"])
                );
            }
        }
    }
    if doc["answered"] != Value::Bool(true) {
        let _ = writeln!(out, "answer   none: {}", s(&doc["reason"]));
        if let Some(nets) = doc["mac_served_on_networks"].as_array() {
            let nets: Vec<String> = nets.iter().map(s).collect();
            let _ = writeln!(
                out,
                "note     this MAC is a port on network(s) {}",
                nets.join(", ")
            );
        }
        return out;
    }
    let r = &doc["reply"];
    let _ = writeln!(out, "port     {}", s(&doc["port"]));
    if doc["family"] == "v6" {
        let addrs: Vec<String> = r["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .map(s)
            .collect();
        let _ = writeln!(out, "answer   {}", s(&r["message"]));
        let _ = writeln!(out, "address  {}", addrs.join(" "));
    } else {
        let _ = writeln!(
            out,
            "answer   {}, sent {}",
            s(&r["message"]),
            s(&r["delivery"])
        );
        let _ = writeln!(
            out,
            "address  {}  ({})",
            s(&r["yiaddr"]),
            s(&r["yiaddr_source"])
        );
        let _ = writeln!(out, "siaddr   {}", s(&r["siaddr"]));
    }
    let mut rows = vec![vec![
        "CODE".to_owned(),
        "OPTION".to_owned(),
        "VALUE".to_owned(),
        "SOURCE".to_owned(),
    ]];
    for o in r["options"].as_array().into_iter().flatten() {
        rows.push(vec![
            s(&o["code"]),
            s(&o["name"]),
            s(&o["value"]),
            s(&o["source"]),
        ]);
    }
    let widths: Vec<usize> = (0..3)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let _ = writeln!(
            out,
            "{:<w0$}  {:<w1$}  {:<w2$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_values_decode() {
        // 192.168.61.0/24 via 10.0.0.254, 0.0.0.0/0 via 10.0.0.1
        let v = [24, 192, 168, 61, 10, 0, 0, 254, 0, 10, 0, 0, 1];
        assert_eq!(
            classless_routes(&v),
            "192.168.61.0/24 via 10.0.0.254, 0.0.0.0/0 via 10.0.0.1"
        );
        assert_eq!(
            value_text(code::DNS, &[10, 0, 0, 53, 10, 0, 0, 54]),
            "10.0.0.53 10.0.0.54"
        );
        assert_eq!(value_text(code::MTU, &[5, 120]), "1400");
        assert_eq!(value_text(code::HOSTNAME, b"web-1"), "web-1");
        assert_eq!(parse_hex("01:fa:16"), Some(vec![1, 0xfa, 0x16]));
        assert_eq!(utc(0.0), "1970-01-01 00:00:00.000 UTC");
        assert_eq!(utc(1_796_694_552.517), "2026-12-08 01:49:12.517 UTC");
        assert_eq!(parse_prl("1,3,6"), Some(vec![1, 3, 6]));
        assert_eq!(parse_prl("0"), None);
    }
}
