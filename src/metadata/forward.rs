//! What the proxy changes in a request and a response, and nothing else: the headers
//! Neutron's haproxy config sets and removes, and the hop-by-hop headers that belong to one
//! connection. Methods, paths, query strings, bodies and status codes pass as they are.
//!
//! Pure: header maps in, header maps out.

use std::net::IpAddr;

use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION};

use super::decision::Keyed;

pub const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const NETWORK_ID: HeaderName = HeaderName::from_static("x-neutron-network-id");
pub const ROUTER_ID: HeaderName = HeaderName::from_static("x-neutron-router-id");

/// Headers of one hop (RFC 9110 §7.6.1), never forwarded: each side of the proxy frames its
/// own connection (hyper writes `Content-Length` or chunked framing itself).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

/// The identity header a network's proxy sets, prepared once per proxy.
#[derive(Clone, Debug)]
pub struct KeyHeader {
    set: HeaderName,
    remove: HeaderName,
    value: HeaderValue,
}

impl KeyHeader {
    /// `None` only for an id that cannot be a header value (Neutron ids are UUIDs).
    pub fn new(keyed: &Keyed) -> Option<KeyHeader> {
        let (set, remove, id) = match keyed {
            Keyed::Network(id) => (NETWORK_ID, ROUTER_ID, id),
            Keyed::Router(id) => (ROUTER_ID, NETWORK_ID, id),
        };
        Some(KeyHeader {
            set,
            remove,
            value: HeaderValue::from_str(id).ok()?,
        })
    }
}

/// The request as the metadata agent must see it: `X-Forwarded-For` is the client's address
/// (any value the client sent is replaced: the metadata agent trusts it to find the
/// instance), the network (or router) id is ours, the other id header is removed, and the
/// client's hop-by-hop headers stay behind.
pub fn to_upstream(h: &mut HeaderMap, client: IpAddr, key: &KeyHeader) {
    strip_hop_by_hop(h);
    h.remove(&key.remove);
    h.insert(key.set.clone(), key.value.clone());
    let ip = HeaderValue::from_str(&client.to_string());
    match ip {
        Ok(v) => {
            h.insert(FORWARDED_FOR, v);
        }
        // An IpAddr always formats to a valid header value; never forward a client's own.
        Err(_) => {
            h.remove(FORWARDED_FOR);
        }
    }
}

/// The metadata agent's response headers as the client gets them.
pub fn to_client(h: &mut HeaderMap) {
    strip_hop_by_hop(h);
}

fn strip_hop_by_hop(h: &mut HeaderMap) {
    // Headers the Connection header names are hop-by-hop too.
    let named: Vec<HeaderName> = h
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in HOP_BY_HOP {
        h.remove(n);
    }
    // Upgrade is hop-by-hop as well; the metadata API has no use for protocol switches.
    h.remove(hyper::header::UPGRADE);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn values(h: &HeaderMap, name: &str) -> Vec<String> {
        h.get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn network_keyed_request() {
        let key = KeyHeader::new(&Keyed::Network("net-1".into())).unwrap();
        let mut h = headers(&[
            ("host", "169.254.169.254"),
            ("x-forwarded-for", "10.9.9.9"),
            ("x-forwarded-for", "10.8.8.8"),
            ("x-neutron-router-id", "evil-router"),
            ("x-neutron-network-id", "evil-net"),
            ("accept", "application/json"),
        ]);
        to_upstream(&mut h, "10.0.0.5".parse().unwrap(), &key);
        assert_eq!(values(&h, "x-forwarded-for"), ["10.0.0.5"]);
        assert_eq!(values(&h, "x-neutron-network-id"), ["net-1"]);
        assert!(h.get("x-neutron-router-id").is_none());
        assert_eq!(values(&h, "host"), ["169.254.169.254"]);
        assert_eq!(values(&h, "accept"), ["application/json"]);
    }

    #[test]
    fn router_keyed_request() {
        let key = KeyHeader::new(&Keyed::Router("router-1".into())).unwrap();
        let mut h = headers(&[("x-neutron-network-id", "evil-net")]);
        to_upstream(&mut h, "fe80::5".parse().unwrap(), &key);
        assert_eq!(values(&h, "x-neutron-router-id"), ["router-1"]);
        assert!(h.get("x-neutron-network-id").is_none());
        assert_eq!(values(&h, "x-forwarded-for"), ["fe80::5"]);
    }

    #[test]
    fn hop_by_hop_headers_stay_behind() {
        let key = KeyHeader::new(&Keyed::Network("n".into())).unwrap();
        let mut h = headers(&[
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("x-private", "1"),
            ("transfer-encoding", "chunked"),
            ("content-type", "text/plain"),
        ]);
        to_upstream(&mut h, "10.0.0.5".parse().unwrap(), &key);
        for gone in ["connection", "keep-alive", "x-private", "transfer-encoding"] {
            assert!(h.get(gone).is_none(), "{gone}");
        }
        assert_eq!(values(&h, "content-type"), ["text/plain"]);
        let mut r = headers(&[("connection", "close"), ("content-length", "3")]);
        to_client(&mut r);
        assert!(r.get("connection").is_none());
        assert_eq!(values(&r, "content-length"), ["3"]);
    }
}
