//! dnsmasq's DHCPv6 option vocabulary: the `option6:` name table, Neutron `extra_dhcp_opts` with
//! `ip_version: 6`, and dnsmasq's DHCPv6 value encodings.
//!
//! Neutron writes every IPv6 extra option as `tag:port-<id>[,<extra tag>],option6:<name|number>,
//! <value>` (reference §9.6), and dnsmasq's `parse_dhcp_opt` turns the value into bytes. This module
//! reproduces that parser's IPv6 behaviour (not its code): the typed options of its `opttab6`, and
//! for untyped or numeric options its guessing rules (hex with colons, decimal, bracketed IPv6
//! list, else string). Unlike DHCPv4, an empty value is not a suppression: dnsmasq sends the
//! option with length zero. Everything here runs when a view is built, never per packet.

use std::net::Ipv6Addr;

use crate::codec::options::{
    canonical_domain, first_line, parse_hex_fixed, split_tags, write_domain_labels, TagRef,
};

/// How dnsmasq types a DHCPv6 option's value (its `OT_*` flags in `opttab6`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind6 {
    /// No declared type: the value's shape decides.
    Untyped,
    /// List of IPv6 addresses, each optionally bracketed (`OT_ADDR_LIST`).
    AddrList,
    /// Plain string (`OT_NAME`).
    Name,
    /// List of domain names in RFC 1035 wire format, uncompressed (`OT_RFC1035_NAME`).
    Rfc1035,
    /// List of strings, each with a two-byte length (`OT_CSTRING`).
    CString,
    /// Seconds with optional `s/m/h/d/w` suffix, 4 bytes (`OT_TIME`).
    Time,
    /// Decimal of the given size in bytes (`OT_DEC`).
    Dec(u8),
}

/// One row of dnsmasq's DHCPv6 option table.
#[derive(Clone, Copy, Debug)]
pub struct OptDef6 {
    pub name: &'static str,
    pub code: u16,
    pub kind: Kind6,
    /// `OT_INTERNAL`: not nameable in `option6:<name>`.
    pub internal: bool,
}

const fn def(name: &'static str, code: u16, kind: Kind6) -> OptDef6 {
    OptDef6 {
        name,
        code,
        kind,
        internal: false,
    }
}

const fn internal(name: &'static str, code: u16, kind: Kind6) -> OptDef6 {
    OptDef6 {
        name,
        code,
        kind,
        internal: true,
    }
}

/// dnsmasq 2.90's `opttab6`, internal rows included (they type numeric options).
pub static OPTION_TABLE6: &[OptDef6] = &[
    internal("client-id", 1, Kind6::Untyped),
    internal("server-id", 2, Kind6::Untyped),
    internal("ia-na", 3, Kind6::Untyped),
    internal("ia-ta", 4, Kind6::Untyped),
    internal("iaaddr", 5, Kind6::Untyped),
    internal("oro", 6, Kind6::Untyped),
    internal("preference", 7, Kind6::Dec(1)),
    internal("unicast", 12, Kind6::Untyped),
    internal("status", 13, Kind6::Untyped),
    internal("rapid-commit", 14, Kind6::Untyped),
    internal("user-class", 15, Kind6::CString),
    internal("vendor-class", 16, Kind6::CString),
    internal("vendor-opts", 17, Kind6::Untyped),
    def("sip-server-domain", 21, Kind6::Rfc1035),
    def("sip-server", 22, Kind6::AddrList),
    def("dns-server", 23, Kind6::AddrList),
    def("domain-search", 24, Kind6::Rfc1035),
    def("nis-server", 27, Kind6::AddrList),
    def("nis+-server", 28, Kind6::AddrList),
    def("nis-domain", 29, Kind6::Rfc1035),
    def("nis+-domain", 30, Kind6::Rfc1035),
    def("sntp-server", 31, Kind6::AddrList),
    def("information-refresh-time", 32, Kind6::Time),
    internal("FQDN", 39, Kind6::Rfc1035),
    def("posix-timezone", 41, Kind6::Name),
    def("tzdb-timezone", 42, Kind6::Name),
    // Untyped in the table; the encoder picks addresses (sub-option 1/2) or names (3).
    def("ntp-server", 56, Kind6::Untyped),
    def("bootfile-url", 59, Kind6::Name),
    def("bootfile-param", 60, Kind6::CString),
];

/// DHCPv6 option codes the server treats specially.
pub mod code6 {
    pub const DNS: u16 = 23;
    pub const DOMAIN_SEARCH: u16 = 24;
    pub const REFRESH_TIME: u16 = 32;
    pub const NTP_SERVER: u16 = 56;
}

/// NTP server sub-options (RFC 5908).
const NTP_SUBOPTION_SRV_ADDR: u16 = 1;
const NTP_SUBOPTION_MC_ADDR: u16 = 2;
const NTP_SUBOPTION_SRV_FQDN: u16 = 3;

/// Codes an extra option may not set: they structure the message (identifiers, IAs, status,
/// relay options) and are always computed by the server.
const MANAGED_BY_SERVER: [u16; 19] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 18, 19, 20, 39, 79,
];

/// Longest encoded value we accept: anything longer could never fit a reply beside the IAs.
pub const MAX_VALUE_LEN: usize = 1024;

/// Looks an option up by its dnsmasq name, case-insensitively.
pub fn lookup_name6(name: &str) -> Option<&'static OptDef6> {
    OPTION_TABLE6
        .iter()
        .find(|d| d.name.eq_ignore_ascii_case(name))
}

/// Looks an option up by code (types the value of numeric options).
pub fn lookup_code6(code: u16) -> Option<&'static OptDef6> {
    OPTION_TABLE6.iter().find(|d| d.code == code)
}

/// Why an IPv6 `extra_dhcp_opt` cannot be served. Logged (with network and port) and skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Opt6Error {
    #[error("empty option name")]
    EmptyName,
    #[error("unknown DHCPv6 option name {0:?}")]
    UnknownName(String),
    #[error("DHCPv6 option {0:?} is internal to the DHCP server and cannot be set")]
    Internal(String),
    #[error("DHCPv6 option code {0} is managed by the DHCP server and cannot be set")]
    ManagedByServer(u16),
    #[error("DHCPv6 option code {0:?} is out of range 1..=65535")]
    CodeOutOfRange(String),
    #[error("unsupported option qualifier {0:?} (only tag:<name> is supported)")]
    UnsupportedQualifier(String),
    #[error("DHCPv4 option syntax {0:?} in an IPv6 option")]
    V4Syntax(String),
    #[error("bad IPv6 address in {0:?}")]
    BadAddress(String),
    #[error("bad domain name {0:?}")]
    BadDomain(String),
    #[error("encoded value is {0} bytes, more than {MAX_VALUE_LEN}")]
    TooLong(usize),
}

/// The encoded value of a DHCPv6 option in dnsmasq's wire format.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Encoded6 {
    pub data: Vec<u8>,
    /// dnsmasq `DHOPT_ADDR6`: a list of 16-byte addresses in which `::` means "this server".
    pub addrs: bool,
}

impl Encoded6 {
    /// The bytes to send on a subnet where the server's address is `server`: each `::` of an
    /// address list becomes `server` (dropped when there is none), and NTP server addresses are
    /// wrapped in their RFC 5908 sub-options.
    pub fn resolve(&self, code: u16, server: Option<Ipv6Addr>) -> Vec<u8> {
        if !self.addrs {
            return self.data.clone();
        }
        let mut out = Vec::with_capacity(self.data.len() + 4 * (self.data.len() / 16));
        for chunk in self.data.chunks_exact(16) {
            let mut a = [0u8; 16];
            a.copy_from_slice(chunk);
            let addr = match Ipv6Addr::from(a) {
                a if a.is_unspecified() => match server {
                    Some(s) => s,
                    None => continue,
                },
                a => a,
            };
            if code == code6::NTP_SERVER {
                let sub = if addr.is_multicast() {
                    NTP_SUBOPTION_MC_ADDR
                } else {
                    NTP_SUBOPTION_SRV_ADDR
                };
                out.extend_from_slice(&sub.to_be_bytes());
                out.extend_from_slice(&16u16.to_be_bytes());
            }
            out.extend_from_slice(&addr.octets());
        }
        out
    }
}

/// A parsed IPv6 `extra_dhcp_opt`: code, tag conditions and value (possibly empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedOpt6 {
    pub code: u16,
    pub tags: Vec<TagRef>,
    pub value: Encoded6,
}

/// Parses a Neutron `extra_dhcp_opt` with `ip_version: 6` the way Neutron + dnsmasq would:
/// Neutron cuts at the first newline, splits a leading `tag:...,` list off the name and prefixes
/// the rest with `option6:`; dnsmasq resolves the name or number and encodes the value.
pub fn parse_extra_opt6(opt_name: &str, opt_value: Option<&str>) -> Result<ParsedOpt6, Opt6Error> {
    let name = first_line(opt_name).trim();
    let (tags, option) = split_tags(name).map_err(Opt6Error::UnsupportedQualifier)?;
    let code = resolve_code6(option)?;
    let value = match opt_value.map(|v| first_line(v).trim()) {
        None | Some("") => Encoded6::default(),
        Some(v) => encode6(code, v)?,
    };
    Ok(ParsedOpt6 { code, tags, value })
}

/// Resolves `<number>`, `<name>` or `option6:<name|number>` to a DHCPv6 option code.
fn resolve_code6(option: &str) -> Result<u16, Opt6Error> {
    if option.is_empty() {
        return Err(Opt6Error::EmptyName);
    }
    if option.starts_with("option:") {
        return Err(Opt6Error::V4Syntax(option.to_owned()));
    }
    let bare = option.strip_prefix("option6:").unwrap_or(option);
    if bare.is_empty() {
        return Err(Opt6Error::EmptyName);
    }
    let code = if bare.bytes().all(|b| b.is_ascii_digit()) {
        bare.parse::<u16>()
            .map_err(|_| Opt6Error::CodeOutOfRange(bare.to_owned()))?
    } else {
        if bare.contains(':') {
            return Err(Opt6Error::UnsupportedQualifier(option.to_owned()));
        }
        let def = lookup_name6(bare).ok_or_else(|| Opt6Error::UnknownName(bare.to_owned()))?;
        if def.internal {
            return Err(Opt6Error::Internal(bare.to_owned()));
        }
        def.code
    };
    if MANAGED_BY_SERVER.contains(&code) {
        return Err(Opt6Error::ManagedByServer(code));
    }
    Ok(code)
}

/// Shape of a value string as dnsmasq's parser characterises it (IPv6 flavour).
#[derive(Debug)]
struct Shape {
    is_addr6: bool,
    is_hex: bool,
    is_dec: bool,
    is_string: bool,
    digs: usize,
    found_dig: bool,
    /// `b`/`s`/`i` suffix forcing a 1/2/4-byte decimal.
    lenchar: Option<u8>,
}

fn characterise(v: &[u8]) -> Shape {
    let mut s = Shape {
        is_addr6: true,
        is_hex: true,
        is_dec: true,
        is_string: true,
        digs: 1,
        found_dig: false,
        lenchar: None,
    };
    let mut found_colon = false;
    for (i, &c) in v.iter().enumerate() {
        match c {
            b',' => (s.is_dec, s.is_hex) = (false, false),
            b':' => {
                s.digs += 1;
                s.is_dec = false;
                found_colon = true;
            }
            b'/' => (s.is_addr6, s.is_dec, s.is_hex) = (false, false, false),
            b'.' => (s.is_dec, s.is_hex) = (false, false),
            b'-' => (s.is_hex, s.is_addr6) = (false, false),
            b' ' => (s.is_dec, s.is_hex) = (false, false),
            b'0'..=b'9' => s.found_dig = true,
            _ => {
                if i + 1 == v.len() && s.is_dec && matches!(c, b'b' | b's' | b'i') {
                    s.lenchar = Some(c);
                } else {
                    s.is_dec = false;
                }
                if !c.is_ascii_hexdigit() {
                    s.is_hex = false;
                    if c != b'[' && c != b']' {
                        s.is_addr6 = false;
                    }
                }
            }
        }
    }
    if !s.found_dig {
        s.is_dec = false;
    }
    if !found_colon {
        s.is_addr6 = false;
    }
    s
}

/// Encodes a (non-empty, first-line, trimmed) value for DHCPv6 option `code` like dnsmasq.
pub fn encode6(code: u16, value: &str) -> Result<Encoded6, Opt6Error> {
    let mut kind = lookup_code6(code).map_or(Kind6::Untyped, |d| d.kind);
    let mut shape = characterise(value.as_bytes());
    // dnsmasq: the NTP server option takes hex, addresses or names.
    let mut ntp_names = false;
    if code == code6::NTP_SERVER && !shape.is_hex {
        if shape.is_addr6 {
            kind = Kind6::AddrList;
        } else {
            kind = Kind6::Rfc1035;
            ntp_names = true;
        }
    }
    match kind {
        Kind6::AddrList => {
            (shape.is_string, shape.is_dec, shape.is_hex) = (false, false, false);
            if !shape.is_addr6 {
                return Err(Opt6Error::BadAddress(value.to_owned()));
            }
        }
        Kind6::Name | Kind6::Rfc1035 | Kind6::CString => {
            (shape.is_addr6, shape.is_dec, shape.is_hex) = (false, false, false);
        }
        _ => {}
    }
    let enc = if shape.found_dig && kind == Kind6::Time {
        encode_time(value)
    } else if shape.is_hex && shape.digs > 1 {
        Encoded6 {
            data: parse_hex_fixed(value, shape.digs),
            addrs: false,
        }
    } else if shape.is_dec {
        encode_decimal(value, kind, shape.lenchar)
    } else if shape.is_addr6 {
        encode_addresses(value)?
    } else if shape.is_string {
        match kind {
            Kind6::CString => encode_cstrings(value),
            Kind6::Rfc1035 => encode_names(value, ntp_names)?,
            _ => Encoded6 {
                data: value.as_bytes().to_vec(),
                addrs: false,
            },
        }
    } else {
        Encoded6::default()
    };
    if enc.data.len() > MAX_VALUE_LEN {
        return Err(Opt6Error::TooLong(enc.data.len()));
    }
    Ok(enc)
}

/// C `atoi`: optional sign and leading digits; anything else stops it.
fn atoi(s: &str) -> i64 {
    let s = s.trim_start();
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut v: i64 = 0;
    for b in digits.bytes().take_while(u8::is_ascii_digit) {
        v = v.saturating_mul(10).saturating_add(i64::from(b - b'0'));
    }
    if neg {
        -v
    } else {
        v
    }
}

fn encode_time(value: &str) -> Encoded6 {
    let (num, fac) = match value.as_bytes().last() {
        Some(b'w' | b'W') => (&value[..value.len() - 1], 7 * 24 * 3600),
        Some(b'd' | b'D') => (&value[..value.len() - 1], 24 * 3600),
        Some(b'h' | b'H') => (&value[..value.len() - 1], 3600),
        Some(b'm' | b'M') => (&value[..value.len() - 1], 60),
        Some(b's' | b'S') => (&value[..value.len() - 1], 1),
        _ => (value, 1),
    };
    // dnsmasq multiplies in a C int and stores it big-endian.
    let secs = (atoi(num) as i32).wrapping_mul(fac);
    Encoded6 {
        data: secs.to_be_bytes().to_vec(),
        addrs: false,
    }
}

fn encode_decimal(value: &str, kind: Kind6, lenchar: Option<u8>) -> Encoded6 {
    let digits = match lenchar {
        Some(_) => &value[..value.len() - 1],
        None => value,
    };
    let val = atoi(digits) as i32;
    let by_magnitude = || {
        let u = val as u32;
        if u & 0xffff_0000 != 0 {
            4
        } else if u & 0xff00 != 0 {
            2
        } else {
            1
        }
    };
    let len: usize = match (lenchar, kind) {
        (Some(b'b'), _) => 1,
        (Some(b's'), _) => 2,
        (Some(b'i'), _) => 4,
        (_, Kind6::Dec(n)) => usize::from(n),
        _ => by_magnitude(),
    };
    let data = (0..len)
        .map(|i| (i64::from(val) >> ((len - i - 1) * 8)) as u8)
        .collect();
    Encoded6 { data, addrs: false }
}

/// Comma-separated IPv6 addresses, each optionally in brackets (`[2001:db8::1]`).
fn encode_addresses(value: &str) -> Result<Encoded6, Opt6Error> {
    let mut data = Vec::with_capacity(16 * (value.matches(',').count() + 1));
    for item in value.split(',') {
        let item = item.trim();
        let inner = item.strip_prefix('[').unwrap_or(item);
        let inner = match inner.strip_suffix(']') {
            Some(i) if inner.len() > 1 => i,
            _ => inner,
        };
        let ip: Ipv6Addr = inner
            .parse()
            .map_err(|_| Opt6Error::BadAddress(item.to_owned()))?;
        data.extend_from_slice(&ip.octets());
    }
    Ok(Encoded6 { data, addrs: true })
}

/// `OT_CSTRING`: each comma-separated string with a two-byte length, up to the first empty one.
fn encode_cstrings(value: &str) -> Encoded6 {
    let mut data = Vec::with_capacity(value.len() + 8);
    for item in value.split(',') {
        if item.is_empty() {
            break;
        }
        let bytes = &item.as_bytes()[..item.len().min(usize::from(u16::MAX))];
        data.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        data.extend_from_slice(bytes);
    }
    Encoded6 { data, addrs: false }
}

/// `OT_RFC1035_NAME`: each comma-separated name as labels plus root (no compression in v6), up
/// to the first empty one; NTP names are wrapped in sub-option 3.
fn encode_names(value: &str, ntp: bool) -> Result<Encoded6, Opt6Error> {
    let mut data = Vec::with_capacity(value.len() + 8);
    for item in value.split(',') {
        if item.is_empty() {
            break;
        }
        let name = canonical_domain(item.trim()).map_err(|_| Opt6Error::BadDomain(item.into()))?;
        let start = data.len();
        if ntp {
            data.extend_from_slice(&NTP_SUBOPTION_SRV_FQDN.to_be_bytes());
            data.extend_from_slice(&[0, 0]);
        }
        write_domain_labels(&mut data, name);
        data.push(0);
        if ntp {
            let len = (data.len() - start - 4) as u16;
            data[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
        }
    }
    Ok(Encoded6 { data, addrs: false })
}

/// The domain-search value (option 24) Neutron configures from `dns_domain`.
pub fn domain_search(dns_domain: &str) -> Result<Vec<u8>, Opt6Error> {
    encode_names(dns_domain, false).map(|e| e.data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(code: u16, v: &str) -> Vec<u8> {
        encode6(code, v).unwrap().data
    }

    /// `dnsmasq --help dhcp6` (2.90), saved in the reference as dnsmasq-dhcp6-option-names.txt.
    const DNSMASQ_HELP_DHCP6: &[(u16, &str)] = &[
        (21, "sip-server-domain"),
        (22, "sip-server"),
        (23, "dns-server"),
        (24, "domain-search"),
        (27, "nis-server"),
        (28, "nis+-server"),
        (29, "nis-domain"),
        (30, "nis+-domain"),
        (31, "sntp-server"),
        (32, "information-refresh-time"),
        (41, "posix-timezone"),
        (42, "tzdb-timezone"),
        (56, "ntp-server"),
        (59, "bootfile-url"),
        (60, "bootfile-param"),
    ];

    #[test]
    fn table_covers_every_name_dnsmasq_lists() {
        for &(num, name) in DNSMASQ_HELP_DHCP6 {
            let def = lookup_name6(name).unwrap_or_else(|| panic!("{name} missing"));
            assert_eq!(def.code, num, "{name}");
            assert!(!def.internal, "{name} must be nameable");
        }
        let nameable = OPTION_TABLE6.iter().filter(|d| !d.internal).count();
        assert_eq!(nameable, DNSMASQ_HELP_DHCP6.len());
    }

    #[test]
    fn names_numbers_prefixes_and_tags() {
        let cases: &[(&str, Result<u16, ()>)] = &[
            ("dns-server", Ok(23)),
            ("option6:dns-server", Ok(23)),
            ("option6:DNS-SERVER", Ok(23)),
            ("23", Ok(23)),
            ("option6:59", Ok(59)),
            ("bootfile-url", Ok(59)),
            ("option6:65535", Ok(65535)),
            ("option6:65536", Err(())),
            ("option:dns-server", Err(())),
            ("option6:client-id", Err(())),
            ("option6:FQDN", Err(())),
            ("2", Err(())),
            ("option6:79", Err(())),
            ("nope", Err(())),
            ("", Err(())),
            ("option6:", Err(())),
        ];
        for (name, want) in cases {
            let got = parse_extra_opt6(name, None).map(|p| p.code).map_err(|_| ());
            assert_eq!(&got, want, "{name}");
        }
        let p = parse_extra_opt6("tag:ipxe6,bootfile-url", Some("http://x/boot.ipxe")).unwrap();
        assert_eq!(p.code, 59);
        assert_eq!(
            p.tags,
            vec![TagRef {
                name: "ipxe6".into(),
                negated: false
            }]
        );
        assert_eq!(p.value.data, b"http://x/boot.ipxe");
        let p = parse_extra_opt6("tag:!ipxe6,option6:bootfile-url", Some("tftp://x/a")).unwrap();
        assert!(p.tags[0].negated);
        assert!(parse_extra_opt6("tag:x,vendor:y,23", Some("[::1]")).is_err());
    }

    #[test]
    fn empty_values_are_empty_options_not_suppressions() {
        for v in [None, Some(""), Some("\nfd00::1")] {
            let p = parse_extra_opt6("dns-server", v).unwrap();
            assert_eq!(p.value, Encoded6::default(), "{v:?}");
        }
    }

    #[test]
    fn address_lists_bracketed_or_not_and_self() {
        let e = encode6(23, "[2001:db8::1],fd00::2").unwrap();
        assert!(e.addrs);
        let mut want = "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets().to_vec();
        want.extend_from_slice(&"fd00::2".parse::<Ipv6Addr>().unwrap().octets());
        assert_eq!(e.data, want);
        assert!(encode6(23, "10.0.0.1").is_err());
        assert!(encode6(23, "[fd00::1/64]").is_err());
        assert!(encode6(23, "dns.example").is_err());
        let e = encode6(23, "[::],[2001:db8::1]").unwrap();
        let me: Ipv6Addr = "fd00::2".parse().unwrap();
        let r = e.resolve(23, Some(me));
        assert_eq!(&r[..16], &me.octets());
        assert_eq!(e.resolve(23, None).len(), 16);
    }

    #[test]
    fn ntp_server_addresses_and_names_use_suboptions() {
        let e = encode6(56, "[2001:db8::123]").unwrap();
        let r = e.resolve(56, None);
        assert_eq!(&r[..4], &[0, 1, 0, 16]);
        assert_eq!(r.len(), 20);
        let e = encode6(56, "[ff02::101]").unwrap();
        assert_eq!(&e.resolve(56, None)[..4], &[0, 2, 0, 16]);
        let e = encode6(56, "ntp.example.org").unwrap();
        assert_eq!(
            e.resolve(56, None),
            b"\x00\x03\x00\x11\x03ntp\x07example\x03org\x00"
        );
    }

    #[test]
    fn names_strings_and_cstrings() {
        assert_eq!(
            enc(24, "example.com,eng.example.com"),
            b"\x07example\x03com\x00\x03eng\x07example\x03com\x00"
        );
        assert!(encode6(24, "bad domain").is_err());
        assert_eq!(
            enc(59, "http://[2001:db8::1]/boot.ipxe"),
            b"http://[2001:db8::1]/boot.ipxe"
        );
        assert_eq!(enc(60, "a,bc"), b"\x00\x01a\x00\x02bc");
        assert_eq!(enc(41, "CET-1CEST"), b"CET-1CEST");
    }

    #[test]
    fn untyped_values_are_guessed_like_dnsmasq() {
        assert_eq!(enc(99, "7"), [7]);
        assert_eq!(enc(99, "300"), [1, 44]);
        assert_eq!(enc(99, "7i"), [0, 0, 0, 7]);
        assert_eq!(enc(99, "01:02:0a"), [1, 2, 10]);
        assert_eq!(
            enc(99, "[2001:db8::1]"),
            "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets()
        );
        assert_eq!(enc(99, "some text"), b"some text");
        // Unbracketed addresses look like hex to dnsmasq.
        assert_eq!(enc(99, "fd00::1"), [0xfd, 0x00, 0x01]);
    }

    #[test]
    fn refresh_time_accepts_suffixes() {
        assert_eq!(enc(32, "3600"), 3600u32.to_be_bytes());
        assert_eq!(enc(32, "2h"), 7200u32.to_be_bytes());
        assert_eq!(enc(32, "1d"), 86400u32.to_be_bytes());
    }

    #[test]
    fn too_long_is_refused() {
        let long = "a".repeat(MAX_VALUE_LEN + 1);
        assert_eq!(
            encode6(59, &long),
            Err(Opt6Error::TooLong(MAX_VALUE_LEN + 1))
        );
    }
}
