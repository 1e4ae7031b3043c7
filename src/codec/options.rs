//! dnsmasq's DHCPv4 option vocabulary: the option-name table, Neutron `extra_dhcp_opts` parsing
//! (`[tag:<t>,...]<name|number>` plus a value) and dnsmasq's value encodings.
//!
//! Neutron writes `extra_dhcp_opts` verbatim into dnsmasq's opts file, so what an operator can
//! type is whatever dnsmasq's `parse_dhcp_opt` accepts, and the bytes on the wire are whatever
//! it produces. This module reproduces that parser's behaviour (not its code): the typed options
//! of its `opttab`, and for untyped/numeric options its guessing rules (IP list, `xx:xx` hex,
//! decimal, else string). Everything here runs when a `NetworkView` is built, never per packet.

use std::net::Ipv4Addr;

/// How dnsmasq types an option's value (its `OT_*` flags in `opttab`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// No declared type: the value's shape decides (IPs, hex, decimal or string).
    Untyped,
    /// Fixed-size integer (1, 2 or 4 bytes) when the value is decimal.
    Size(u8),
    /// List of IPv4 addresses (`OT_ADDR_LIST`); anything else is an error.
    AddrList,
    /// Plain string (`OT_NAME`).
    Name,
    /// Time in seconds with optional `s/m/h/d/w` suffix, 4 bytes (`OT_TIME`).
    Time,
}

/// One row of dnsmasq's DHCPv4 option table.
#[derive(Clone, Copy, Debug)]
pub struct OptDef {
    pub name: &'static str,
    pub code: u8,
    pub kind: Kind,
    /// `OT_INTERNAL`: dnsmasq refuses these by name (`option:<name>`); they are set by the server.
    pub internal: bool,
}

const fn def(name: &'static str, code: u8, kind: Kind) -> OptDef {
    OptDef {
        name,
        code,
        kind,
        internal: false,
    }
}

const fn internal(name: &'static str, code: u8, kind: Kind) -> OptDef {
    OptDef {
        name,
        code,
        kind,
        internal: true,
    }
}

/// dnsmasq's `opttab` (DHCPv4), including the internal rows: those matter for the value type of
/// numeric options (e.g. `12` is a string) even though they cannot be named.
pub static OPTION_TABLE: &[OptDef] = &[
    def("netmask", 1, Kind::AddrList),
    def("time-offset", 2, Kind::Size(4)),
    def("router", 3, Kind::AddrList),
    def("dns-server", 6, Kind::AddrList),
    def("log-server", 7, Kind::AddrList),
    def("lpr-server", 9, Kind::AddrList),
    internal("hostname", 12, Kind::Name),
    def("boot-file-size", 13, Kind::Size(2)),
    def("domain-name", 15, Kind::Name),
    def("swap-server", 16, Kind::AddrList),
    def("root-path", 17, Kind::Name),
    def("extension-path", 18, Kind::Name),
    def("ip-forward-enable", 19, Kind::Size(1)),
    def("non-local-source-routing", 20, Kind::Size(1)),
    def("policy-filter", 21, Kind::AddrList),
    def("max-datagram-reassembly", 22, Kind::Size(2)),
    def("default-ttl", 23, Kind::Size(1)),
    def("mtu", 26, Kind::Size(2)),
    def("all-subnets-local", 27, Kind::Size(1)),
    internal("broadcast", 28, Kind::AddrList),
    def("router-discovery", 31, Kind::Size(1)),
    def("router-solicitation", 32, Kind::AddrList),
    def("static-route", 33, Kind::AddrList),
    def("trailer-encapsulation", 34, Kind::Size(1)),
    def("arp-timeout", 35, Kind::Size(4)),
    def("ethernet-encap", 36, Kind::Size(1)),
    def("tcp-ttl", 37, Kind::Size(1)),
    def("tcp-keepalive", 38, Kind::Size(4)),
    def("nis-domain", 40, Kind::Name),
    def("nis-server", 41, Kind::AddrList),
    def("ntp-server", 42, Kind::AddrList),
    internal("vendor-encap", 43, Kind::Untyped),
    def("netbios-ns", 44, Kind::AddrList),
    def("netbios-dd", 45, Kind::AddrList),
    def("netbios-nodetype", 46, Kind::Size(1)),
    def("netbios-scope", 47, Kind::Untyped),
    def("x-windows-fs", 48, Kind::AddrList),
    def("x-windows-dm", 49, Kind::AddrList),
    internal("requested-address", 50, Kind::AddrList),
    internal("lease-time", 51, Kind::Time),
    internal("option-overload", 52, Kind::Untyped),
    internal("message-type", 53, Kind::Untyped),
    internal("server-identifier", 54, Kind::AddrList),
    internal("parameter-request", 55, Kind::Untyped),
    internal("message", 56, Kind::Untyped),
    internal("max-message-size", 57, Kind::Untyped),
    def("T1", 58, Kind::Time),
    def("T2", 59, Kind::Time),
    def("vendor-class", 60, Kind::Untyped),
    internal("client-id", 61, Kind::Untyped),
    def("nis+-domain", 64, Kind::Name),
    def("nis+-server", 65, Kind::AddrList),
    def("tftp-server", 66, Kind::Name),
    def("bootfile-name", 67, Kind::Name),
    def("mobile-ip-home", 68, Kind::AddrList),
    def("smtp-server", 69, Kind::AddrList),
    def("pop3-server", 70, Kind::AddrList),
    def("nntp-server", 71, Kind::AddrList),
    def("irc-server", 74, Kind::AddrList),
    def("user-class", 77, Kind::Untyped),
    def("rapid-commit", 80, Kind::Untyped),
    internal("FQDN", 81, Kind::Untyped),
    internal("agent-id", 82, Kind::Untyped),
    def("client-arch", 93, Kind::Size(2)),
    def("client-interface-id", 94, Kind::Untyped),
    def("client-machine-id", 97, Kind::Untyped),
    def("posix-timezone", 100, Kind::Name),
    def("tzdb-timezone", 101, Kind::Name),
    def("ipv6-only", 108, Kind::Size(4)),
    internal("subnet-select", 118, Kind::Untyped),
    // dnsmasq: OT_RFC1035_NAME; its v4 encoder special-cases 119 and 120 by code (see `encode`).
    def("domain-search", 119, Kind::Untyped),
    def("sip-server", 120, Kind::Untyped),
    def("classless-static-route", 121, Kind::Untyped),
    def("vendor-id-encap", 125, Kind::Untyped),
    def("tftp-server-address", 150, Kind::AddrList),
    // Pseudo-option: sets the BOOTP `siaddr` header field, never sent as an option.
    def("server-ip-address", 255, Kind::AddrList),
];

/// Well-known codes the responder treats specially.
pub mod code {
    pub const NETMASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DNS: u8 = 6;
    pub const HOSTNAME: u8 = 12;
    pub const DOMAIN_NAME: u8 = 15;
    pub const MTU: u8 = 26;
    pub const BROADCAST: u8 = 28;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const OVERLOAD: u8 = 52;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PRL: u8 = 55;
    pub const MESSAGE: u8 = 56;
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    pub const T1: u8 = 58;
    pub const T2: u8 = 59;
    pub const CLIENT_ID: u8 = 61;
    pub const TFTP_SERVER: u8 = 66;
    pub const BOOTFILE: u8 = 67;
    pub const CLIENT_FQDN: u8 = 81;
    pub const RELAY_AGENT: u8 = 82;
    pub const SUBNET_SELECT: u8 = 118;
    pub const DOMAIN_SEARCH: u8 = 119;
    pub const SIP_SERVER: u8 = 120;
    pub const CLASSLESS_ROUTE: u8 = 121;
    pub const IPXE_ENCAP: u8 = 175;
    pub const MS_CLASSLESS_ROUTE: u8 = 249;
    /// `server-ip-address`: dnsmasq's internal code for "set siaddr".
    pub const SIADDR: u8 = 255;
}

/// Codes an extra option may not set: the server computes them (or, like 61, they are not
/// options at all in Neutron's model). dnsmasq itself refuses 0/52/57/81 and would emit
/// duplicates of the rest, which clients reject.
const MANAGED_BY_SERVER: [u8; 12] = [0, 50, 51, 52, 53, 54, 55, 56, 57, 61, 81, 82];

/// Looks an option up by its dnsmasq name, case-insensitively like dnsmasq's `strcasecmp`.
pub fn lookup_name(name: &str) -> Option<&'static OptDef> {
    OPTION_TABLE
        .iter()
        .find(|d| d.name.eq_ignore_ascii_case(name))
}

/// Looks an option up by code (used to type the value of numeric options).
pub fn lookup_code(code: u8) -> Option<&'static OptDef> {
    OPTION_TABLE.iter().find(|d| d.code == code)
}

/// Why an `extra_dhcp_opt` cannot be served. Logged (with network and port) and skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptError {
    #[error("empty option name")]
    EmptyName,
    #[error("unknown option name {0:?}")]
    UnknownName(String),
    #[error("option {0:?} is internal to the DHCP server and cannot be set")]
    Internal(String),
    #[error("option code {0} is managed by the DHCP server and cannot be set")]
    ManagedByServer(u8),
    #[error("option code {0} is out of range 1..=255")]
    CodeOutOfRange(String),
    #[error("unsupported option qualifier {0:?} (only tag:<name> is supported)")]
    UnsupportedQualifier(String),
    #[error("DHCPv6 option syntax {0:?} in an IPv4 option")]
    V6Syntax(String),
    #[error("bad IPv4 address in {0:?}")]
    BadAddress(String),
    #[error("bad domain name {0:?}")]
    BadDomain(String),
    #[error("decimal value {0:?} not allowed for this option")]
    BadDecimal(String),
    #[error("encoded value is {0} bytes, more than 255")]
    TooLong(usize),
}

/// One `tag:` condition of an option line; `negated` is dnsmasq's `tag:!name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagRef {
    pub name: String,
    pub negated: bool,
}

/// The encoded value of an option, in dnsmasq's wire format.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Encoded {
    pub data: Vec<u8>,
    /// dnsmasq `DHOPT_STRING`: gets a trailing NUL for clients whose own hostname ended in NUL.
    pub string: bool,
    /// dnsmasq `DHOPT_ADDR`: a plain address list in which `0.0.0.0` means "this server".
    pub addr_self: bool,
}

impl Encoded {
    /// Replaces each `0.0.0.0` with `server` when dnsmasq would ("zero means self").
    pub fn with_self(&self, server: Ipv4Addr) -> Vec<u8> {
        let mut data = self.data.clone();
        if self.addr_self {
            for chunk in data.chunks_exact_mut(4) {
                if chunk == [0, 0, 0, 0] {
                    chunk.copy_from_slice(&server.octets());
                }
            }
        }
        data
    }
}

/// A parsed `extra_dhcp_opt`: its code, its tag conditions and its value (`None` = empty value,
/// which suppresses the option, including the subnet's value for the same code).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedOpt {
    pub code: u8,
    pub tags: Vec<TagRef>,
    pub value: Option<Encoded>,
}

/// Whether a Neutron extra option names the client identifier (reference §9.3: `client-id`,
/// `61`): it is then a host match key, not an option.
pub fn is_client_id_name(opt_name: &str) -> bool {
    opt_name == "client-id" || opt_name == "61"
}

/// Parses a Neutron `extra_dhcp_opt` (IPv4) the way Neutron + dnsmasq would.
///
/// Neutron cuts values at the first newline and splits a leading `tag:...,` list off the name
/// (greedy, up to the last comma); dnsmasq then resolves the name or number and encodes the value.
pub fn parse_extra_opt(opt_name: &str, opt_value: Option<&str>) -> Result<ParsedOpt, OptError> {
    let name = first_line(opt_name).trim();
    let (tags, option) = split_tags(name).map_err(OptError::UnsupportedQualifier)?;
    let code = resolve_code(option)?;
    let value = match opt_value.map(|v| first_line(v).trim()) {
        None | Some("") => None,
        Some(v) => Some(encode(code, v)?),
    };
    Ok(ParsedOpt { code, tags, value })
}

/// The text before the first newline (Neutron drops the rest).
pub(crate) fn first_line(s: &str) -> &str {
    s.split('\n').next().unwrap_or("")
}

/// Splits `tag:a,tag:!b,<option>` into tag conditions and the option part (shared by IPv4 and
/// IPv6 options). The error is the tag piece that is not a plain tag (see [`parse_tag`]).
pub(crate) fn split_tags(name: &str) -> Result<(Vec<TagRef>, &str), String> {
    if !name.starts_with("tag:") {
        return Ok((Vec::new(), name));
    }
    let Some(last_comma) = name.rfind(',') else {
        return Ok((Vec::new(), name));
    };
    let (list, option) = (&name[..last_comma], &name[last_comma + 1..]);
    let mut tags = Vec::new();
    for piece in list.split(',').map(str::trim) {
        tags.push(parse_tag(piece)?);
    }
    Ok((tags, option.trim()))
}

/// One piece of the tag list. dnsmasq treats any non-option word as a tag (`tag:` and `set:`
/// prefixes optional); `vendor:`/`encap:` select encapsulated options, which we do not support.
fn parse_tag(piece: &str) -> Result<TagRef, String> {
    let bare = piece
        .strip_prefix("tag:")
        .or_else(|| piece.strip_prefix("net:"))
        .or_else(|| piece.strip_prefix("set:"))
        .unwrap_or(piece);
    let qualifier = ["vendor:", "encap:", "vi-encap:", "option:", "option6:"]
        .iter()
        .any(|q| piece.starts_with(q));
    if qualifier || bare.is_empty() || bare.bytes().all(|b| b.is_ascii_digit()) {
        return Err(piece.to_owned());
    }
    let (negated, name) = match bare.strip_prefix(['!', '#']) {
        Some(rest) => (true, rest),
        None => (false, bare),
    };
    Ok(TagRef {
        name: name.to_owned(),
        negated,
    })
}

/// Resolves `<number>`, `<name>` or `option:<name>` to an option code.
fn resolve_code(option: &str) -> Result<u8, OptError> {
    if option.is_empty() {
        return Err(OptError::EmptyName);
    }
    if option.starts_with("option6:") {
        return Err(OptError::V6Syntax(option.to_owned()));
    }
    let code = if option.bytes().all(|b| b.is_ascii_digit()) {
        option
            .parse::<u8>()
            .map_err(|_| OptError::CodeOutOfRange(option.to_owned()))?
    } else {
        let name = option.strip_prefix("option:").unwrap_or(option);
        if name.contains(':') {
            return Err(OptError::UnsupportedQualifier(option.to_owned()));
        }
        let def = lookup_name(name).ok_or_else(|| OptError::UnknownName(name.to_owned()))?;
        if def.internal {
            return Err(OptError::Internal(name.to_owned()));
        }
        def.code
    };
    if MANAGED_BY_SERVER.contains(&code) {
        return Err(OptError::ManagedByServer(code));
    }
    Ok(code)
}

/// Shape of a value string as dnsmasq's parser characterises it.
#[derive(Debug)]
struct Shape {
    is_addr: bool,
    is_hex: bool,
    is_dec: bool,
    is_string: bool,
    hex_bytes: usize,
    dots: usize,
    found_dig: bool,
    /// `b`/`s`/`i` suffix forcing a 1/2/4-byte decimal.
    lenchar: Option<u8>,
}

fn characterise(v: &[u8]) -> Shape {
    let mut s = Shape {
        is_addr: true,
        is_hex: true,
        is_dec: true,
        is_string: true,
        hex_bytes: 1,
        dots: 0,
        found_dig: false,
        lenchar: None,
    };
    for (i, &c) in v.iter().enumerate() {
        match c {
            b',' => (s.is_dec, s.is_hex) = (false, false),
            b':' => {
                s.hex_bytes += 1;
                (s.is_dec, s.is_addr) = (false, false);
            }
            b'/' => {
                (s.is_dec, s.is_hex) = (false, false);
                if i == 0 {
                    s.is_addr = false; // a leading '/' is a path
                }
            }
            b'.' => {
                (s.is_dec, s.is_hex) = (false, false);
                s.dots += 1;
            }
            b'-' => (s.is_hex, s.is_addr) = (false, false),
            b' ' => (s.is_dec, s.is_hex) = (false, false),
            b'0'..=b'9' => s.found_dig = true,
            _ => {
                s.is_addr = false;
                if i + 1 == v.len() && s.is_dec && matches!(c, b'b' | b's' | b'i') {
                    s.lenchar = Some(c);
                } else {
                    s.is_dec = false;
                }
                if !c.is_ascii_hexdigit() {
                    s.is_hex = false;
                }
            }
        }
    }
    if !s.found_dig {
        (s.is_dec, s.is_addr) = (false, false);
    }
    s
}

/// Encodes `value` for option `code` exactly as dnsmasq would put it on the wire.
pub fn encode(code: u8, value: &str) -> Result<Encoded, OptError> {
    let def = lookup_code(code);
    let kind = def.map_or(Kind::Untyped, |d| d.kind);
    let mut shape = characterise(value.as_bytes());
    match kind {
        Kind::AddrList => {
            (shape.is_string, shape.is_dec, shape.is_hex) = (false, false, false);
            if !shape.is_addr || shape.dots == 0 {
                return Err(OptError::BadAddress(value.to_owned()));
            }
        }
        Kind::Name => (shape.is_addr, shape.is_dec, shape.is_hex) = (false, false, false),
        _ => {}
    }
    // dnsmasq strips a `b`/`s`/`i` length suffix while scanning, before it knows the value is
    // not a number after all: `"s"` or `"123s"` then travel as `""` / `"123"`. Kept as is.
    let value = match shape.lenchar {
        Some(_) => &value[..value.len() - 1],
        None => value,
    };
    let enc = if shape.found_dig && kind == Kind::Time {
        Encoded {
            data: encode_time(value).to_vec(),
            ..Default::default()
        }
    } else if shape.is_hex && shape.hex_bytes > 1 {
        Encoded {
            data: parse_hex_fixed(value, shape.hex_bytes),
            ..Default::default()
        }
    } else if shape.is_dec {
        encode_decimal(def, value, shape.lenchar)?
    } else if shape.is_addr {
        encode_addresses(code, value)?
    } else if shape.is_string {
        encode_string(code, value)?
    } else {
        Encoded::default()
    };
    if enc.data.len() > 255 {
        return Err(OptError::TooLong(enc.data.len()));
    }
    Ok(enc)
}

/// C `atoi`: optional leading spaces and sign, then digits up to the first non-digit; wraps
/// like a 32-bit int instead of being undefined on overflow.
fn atoi(s: &str) -> i32 {
    let s = s.trim_start();
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut v: i32 = 0;
    for b in digits.bytes().take_while(u8::is_ascii_digit) {
        v = v.wrapping_mul(10).wrapping_add(i32::from(b - b'0'));
    }
    if neg {
        v.wrapping_neg()
    } else {
        v
    }
}

/// `OT_TIME`: seconds, with an optional `s`, `m`, `h`, `d` or `w` suffix.
fn encode_time(value: &str) -> [u8; 4] {
    let factor: i32 = match value.as_bytes().last() {
        Some(b'w' | b'W') => 7 * 24 * 3600,
        Some(b'd' | b'D') => 24 * 3600,
        Some(b'h' | b'H') => 3600,
        Some(b'm' | b'M') => 60,
        _ => 1,
    };
    let digits = match value.as_bytes().last() {
        Some(c) if b"wWdDhHmMsS".contains(c) => &value[..value.len() - 1],
        _ => value,
    };
    atoi(digits).wrapping_mul(factor).to_be_bytes()
}

/// Decimal: the option's declared size, else the smallest of 1/2/4 bytes that holds it.
fn encode_decimal(
    def: Option<&OptDef>,
    value: &str,
    lenchar: Option<u8>,
) -> Result<Encoded, OptError> {
    let val = atoi(value);
    let declared = match def.map(|d| (d.kind, d.internal)) {
        Some((Kind::Size(n), _)) => Some(usize::from(n)),
        // dnsmasq would use the flag bits as a length and fail with "too long".
        Some((_, true)) => return Err(OptError::BadDecimal(value.to_owned())),
        _ => None,
    };
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
    let len = match lenchar {
        Some(b'b') => 1,
        Some(b's') => 2,
        Some(b'i') => 4,
        _ => declared.unwrap_or_else(by_magnitude),
    };
    let data = (0..len)
        .map(|i| (i64::from(val) >> ((len - i - 1) * 8)) as u8)
        .collect();
    Ok(Encoded {
        data,
        ..Default::default()
    })
}

/// Comma-separated IPv4 addresses; `a.b.c.d/n` items use the RFC 3442 destination descriptor
/// (prefix length, then only the significant octets), which is how dnsmasq builds option 121.
fn encode_addresses(code: u8, value: &str) -> Result<Encoded, OptError> {
    let mut data = Vec::with_capacity(value.len());
    let mut addr_self = true;
    if code == code::SIP_SERVER {
        data.push(1); // RFC 3361 encoding byte: addresses
        addr_self = false;
    }
    for item in value.split(',').map(str::trim) {
        let (addr, prefix) = match item.split_once('/') {
            Some((a, p)) => (a.trim(), Some(p.trim())),
            None => (item, None),
        };
        let ip: Ipv4Addr = addr
            .parse()
            .map_err(|_| OptError::BadAddress(item.to_owned()))?;
        match prefix {
            None => data.extend_from_slice(&ip.octets()),
            Some(p) => {
                let len = atoi(p);
                data.push(len as u8);
                let significant = [0, 8, 16, 24].iter().filter(|&&b| len > b).count();
                data.extend_from_slice(&ip.octets()[..significant]);
                addr_self = false; // descriptors cannot be rewritten
            }
        }
    }
    Ok(Encoded {
        data,
        string: false,
        addr_self,
    })
}

fn encode_string(code: u8, value: &str) -> Result<Encoded, OptError> {
    match code {
        code::DOMAIN_SEARCH => Ok(Encoded {
            data: encode_name_list(value, 0)?,
            ..Default::default()
        }),
        code::SIP_SERVER => {
            // RFC 3361: encoding byte 0 = names.
            Ok(Encoded {
                data: encode_name_list(value, 1)?,
                ..Default::default()
            })
        }
        _ => Ok(Encoded {
            data: value.as_bytes().to_vec(),
            string: true,
            addr_self: false,
        }),
    }
}

/// RFC 1035 name list (RFC 3397), tail-compressed against earlier names like dnsmasq does.
/// `header` reserves that many leading zero bytes (option 120's encoding byte).
fn encode_name_list(value: &str, header: usize) -> Result<Vec<u8>, OptError> {
    let mut out = vec![0u8; header];
    for item in value.split(',').map(str::trim) {
        if item.is_empty() {
            break; // dnsmasq stops at the first empty element
        }
        let start = out.len();
        if item != "." {
            write_domain_labels(&mut out, canonical_domain(item)?);
        }
        out.push(0);
        compress_tail(&mut out, header, start);
    }
    Ok(out)
}

/// Validates a domain name for an option and strips one trailing dot.
pub fn canonical_domain(name: &str) -> Result<&str, OptError> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    let ok = !bare.is_empty()
        && bare.len() <= 253
        && bare.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(bare)
    } else {
        Err(OptError::BadDomain(name.to_owned()))
    }
}

/// Appends `name` as length-prefixed labels (no terminating zero).
pub fn write_domain_labels(out: &mut Vec<u8>, name: &str) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let bytes = &label.as_bytes()[..label.len().min(63)];
        out.push(bytes.len() as u8);
        out.extend_from_slice(bytes);
    }
}

/// Replaces the longest suffix of the name at `start` that also occurs, label-aligned, in the
/// names before it with a compression pointer (offsets relative to the list start), scanning
/// the earlier data the way dnsmasq does.
fn compress_tail(out: &mut Vec<u8>, base: usize, start: usize) {
    let mut tail = start;
    while tail < out.len() && out[tail] != 0 {
        let mut r = base;
        while r < start {
            if c_str(&out[r..]) == c_str(&out[tail..]) {
                let ptr = (0xc000 | (r - base)) as u16;
                out.truncate(tail);
                out.extend_from_slice(&ptr.to_be_bytes());
                return;
            }
            r += usize::from(out[r]) + 1;
        }
        tail += usize::from(out[tail]) + 1;
    }
}

/// Bytes up to (not including) the first NUL.
fn c_str(b: &[u8]) -> &[u8] {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    &b[..end]
}

/// dnsmasq's `parse_hex` into a buffer of exactly `len` bytes: colon-separated groups, each
/// group read two hex digits at a time from the left; missing bytes stay zero.
pub(crate) fn parse_hex_fixed(value: &str, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let mut i = 0;
    for group in value.split(':') {
        for chunk in group.as_bytes().chunks(2) {
            if i == len {
                return out;
            }
            let digits = std::str::from_utf8(chunk).unwrap_or("0");
            out[i] = u8::from_str_radix(digits, 16).unwrap_or(0);
            i += 1;
        }
    }
    out
}

/// The client identifier a Neutron `client-id` opt configures, as dnsmasq's `id:` parses it:
/// hex bytes if the value contains `:` (separators `:`, `-`, space), else the raw string.
/// `None` for an empty value or `*` (dnsmasq: ignore the client-id).
pub fn parse_client_id(value: &str) -> Result<Option<Vec<u8>>, OptError> {
    let value = first_line(value).trim();
    if value.is_empty() || value.starts_with('*') {
        return Ok(None);
    }
    if !value.contains(':') {
        return Ok(Some(value.as_bytes().to_vec()));
    }
    let mut out = Vec::new();
    for group in value.split([':', '-', ' ']).filter(|g| !g.is_empty()) {
        if !group.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(OptError::BadAddress(format!(
                "client-id {value:?} is not hex"
            )));
        }
        for chunk in group.as_bytes().chunks(2) {
            let digits = std::str::from_utf8(chunk).unwrap_or("0");
            out.push(u8::from_str_radix(digits, 16).unwrap_or(0));
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(code: u8, v: &str) -> Vec<u8> {
        encode(code, v).unwrap().data
    }

    /// `dnsmasq --help dhcp` (2.90): every name an operator may use in `extra_dhcp_opts`.
    const DNSMASQ_HELP_DHCP: &[(u8, &str)] = &[
        (1, "netmask"),
        (2, "time-offset"),
        (3, "router"),
        (6, "dns-server"),
        (7, "log-server"),
        (9, "lpr-server"),
        (13, "boot-file-size"),
        (15, "domain-name"),
        (16, "swap-server"),
        (17, "root-path"),
        (18, "extension-path"),
        (19, "ip-forward-enable"),
        (20, "non-local-source-routing"),
        (21, "policy-filter"),
        (22, "max-datagram-reassembly"),
        (23, "default-ttl"),
        (26, "mtu"),
        (27, "all-subnets-local"),
        (31, "router-discovery"),
        (32, "router-solicitation"),
        (33, "static-route"),
        (34, "trailer-encapsulation"),
        (35, "arp-timeout"),
        (36, "ethernet-encap"),
        (37, "tcp-ttl"),
        (38, "tcp-keepalive"),
        (40, "nis-domain"),
        (41, "nis-server"),
        (42, "ntp-server"),
        (44, "netbios-ns"),
        (45, "netbios-dd"),
        (46, "netbios-nodetype"),
        (47, "netbios-scope"),
        (48, "x-windows-fs"),
        (49, "x-windows-dm"),
        (58, "T1"),
        (59, "T2"),
        (60, "vendor-class"),
        (64, "nis+-domain"),
        (65, "nis+-server"),
        (66, "tftp-server"),
        (67, "bootfile-name"),
        (68, "mobile-ip-home"),
        (69, "smtp-server"),
        (70, "pop3-server"),
        (71, "nntp-server"),
        (74, "irc-server"),
        (77, "user-class"),
        (80, "rapid-commit"),
        (93, "client-arch"),
        (94, "client-interface-id"),
        (97, "client-machine-id"),
        (100, "posix-timezone"),
        (101, "tzdb-timezone"),
        (108, "ipv6-only"),
        (119, "domain-search"),
        (120, "sip-server"),
        (121, "classless-static-route"),
        (125, "vendor-id-encap"),
        (150, "tftp-server-address"),
        (255, "server-ip-address"),
    ];

    #[test]
    fn table_covers_every_name_dnsmasq_lists() {
        assert_eq!(DNSMASQ_HELP_DHCP.len(), 61);
        for &(num, name) in DNSMASQ_HELP_DHCP {
            let def = lookup_name(name).unwrap_or_else(|| panic!("{name} missing"));
            assert_eq!(def.code, num, "{name}");
            assert!(!def.internal, "{name} must be nameable");
        }
        let nameable = OPTION_TABLE.iter().filter(|d| !d.internal).count();
        assert_eq!(nameable, DNSMASQ_HELP_DHCP.len());
    }

    #[test]
    fn names_numbers_and_prefixes() {
        let p = parse_extra_opt("bootfile-name", Some("pxelinux.0")).unwrap();
        assert_eq!((p.code, p.tags.len()), (67, 0));
        assert_eq!(
            parse_extra_opt("option:BOOTFILE-NAME", Some("x"))
                .unwrap()
                .code,
            67
        );
        assert_eq!(parse_extra_opt("99", Some("option-99")).unwrap().code, 99);
        let p = parse_extra_opt("tag:ipxe,bootfile-name", Some("http://x/boot.ipxe")).unwrap();
        assert_eq!(
            p.tags,
            vec![TagRef {
                name: "ipxe".into(),
                negated: false
            }]
        );
        let p = parse_extra_opt("tag:!ipxe,tag:foo,67", Some("undionly.kpxe")).unwrap();
        assert_eq!(p.tags.len(), 2);
        assert!(p.tags[0].negated);
        assert!(matches!(
            parse_extra_opt("nd98", Some("x")),
            Err(OptError::UnknownName(_))
        ));
        assert!(matches!(
            parse_extra_opt("hostname", Some("x")),
            Err(OptError::Internal(_))
        ));
        assert!(matches!(
            parse_extra_opt("53", Some("1")),
            Err(OptError::ManagedByServer(53))
        ));
        assert!(matches!(
            parse_extra_opt("256", Some("1")),
            Err(OptError::CodeOutOfRange(_))
        ));
        assert!(parse_extra_opt("tag:ipxe,vendor:PXE,1", Some("1")).is_err());
    }

    #[test]
    fn empty_and_null_values_mean_suppress() {
        assert_eq!(parse_extra_opt("router", None).unwrap().value, None);
        assert_eq!(parse_extra_opt("router", Some("")).unwrap().value, None);
        assert_eq!(
            parse_extra_opt("router", Some("\n1.2.3.4")).unwrap().value,
            None
        );
    }

    #[test]
    fn address_lists_and_self() {
        let e = encode(6, "8.8.8.8, 0.0.0.0").unwrap();
        assert_eq!(e.data, [8, 8, 8, 8, 0, 0, 0, 0]);
        assert!(e.addr_self);
        assert_eq!(
            e.with_self(Ipv4Addr::new(10, 0, 0, 2)),
            [8, 8, 8, 8, 10, 0, 0, 2]
        );
        assert!(encode(6, "8.8.8").is_err());
        assert!(encode(6, "x").is_err());
        assert!(encode(3, "host.example").is_err());
        assert!(encode(3, "1").is_err());
    }

    #[test]
    fn classless_routes_use_rfc3442_descriptors() {
        let v = "20.0.0.1/24,20.0.0.1,169.254.169.254/32,192.168.0.1,0.0.0.0/0,192.168.0.1";
        let e = encode(121, v).unwrap();
        assert_eq!(
            e.data,
            [
                24, 20, 0, 0, 20, 0, 0, 1, 32, 169, 254, 169, 254, 192, 168, 0, 1, 0, 192, 168, 0,
                1
            ]
        );
        assert!(!e.addr_self);
        assert_eq!(
            enc(249, "192.168.1.0/24,0.0.0.0"),
            [24, 192, 168, 1, 0, 0, 0, 0]
        );
    }

    #[test]
    fn decimals_take_declared_or_minimal_size() {
        assert_eq!(enc(26, "1450"), [0x05, 0xaa]);
        assert_eq!(enc(23, "64"), [64]);
        assert_eq!(enc(2, "-1"), [0xff; 4]);
        assert_eq!(enc(200, "7"), [7]);
        assert_eq!(enc(200, "300"), [1, 44]);
        assert_eq!(enc(200, "70000"), [0, 1, 0x11, 0x70]);
        assert_eq!(enc(200, "7s"), [0, 7]);
        assert_eq!(enc(200, "7i"), [0, 0, 0, 7]);
        assert_eq!(enc(19, "1"), [1]);
    }

    #[test]
    fn times_accept_suffixes() {
        assert_eq!(enc(58, "100s"), 100u32.to_be_bytes());
        assert_eq!(enc(58, "2m"), 120u32.to_be_bytes());
        assert_eq!(enc(59, "1h"), 3600u32.to_be_bytes());
        assert_eq!(enc(59, "1d"), 86400u32.to_be_bytes());
        assert_eq!(enc(59, "1w"), 604800u32.to_be_bytes());
    }

    #[test]
    fn hex_strings_and_guessing() {
        assert_eq!(enc(43, "01:02:0a"), [1, 2, 10]);
        assert_eq!(enc(200, "ab:c"), [0xab, 0x0c]);
        assert_eq!(enc(200, "abc:1"), [0xab, 0x0c]);
        assert_eq!(enc(200, "10.0.0.1"), [10, 0, 0, 1]);
        let s = encode(200, "option-99").unwrap();
        assert_eq!((s.data.as_slice(), s.string), (&b"option-99"[..], true));
        // Typed as a name: an IP stays text.
        assert_eq!(enc(66, "192.168.0.3"), b"192.168.0.3");
        assert_eq!(enc(67, "pxelinux.0"), b"pxelinux.0");
        // Typed as a number but not decimal: dnsmasq sends the text.
        assert_eq!(enc(26, "abc"), b"abc");
    }

    #[test]
    fn domain_search_is_rfc1035_with_compression() {
        assert_eq!(
            enc(119, "eng.apple.com,marketing.apple.com"),
            [
                3, b'e', b'n', b'g', 5, b'a', b'p', b'p', b'l', b'e', 3, b'c', b'o', b'm', 0, 9,
                b'm', b'a', b'r', b'k', b'e', b't', b'i', b'n', b'g', 0xc0, 4
            ]
        );
        assert_eq!(enc(119, "example.com."), b"\x07example\x03com\x00");
        assert!(encode(119, "bad domain").is_err());
        assert_eq!(enc(120, "sip.example.com")[0], 0);
        assert_eq!(enc(120, "10.0.0.1"), [1, 10, 0, 0, 1]);
    }

    #[test]
    fn too_long_is_refused() {
        let long = "a".repeat(256);
        assert_eq!(encode(200, &long), Err(OptError::TooLong(256)));
    }

    #[test]
    fn client_ids() {
        assert_eq!(parse_client_id("test5").unwrap(), Some(b"test5".to_vec()));
        assert_eq!(
            parse_client_id("01:fa:16:3e:00:00:01").unwrap(),
            Some(vec![1, 0xfa, 0x16, 0x3e, 0, 0, 1])
        );
        assert_eq!(parse_client_id("").unwrap(), None);
        assert_eq!(parse_client_id("*").unwrap(), None);
        assert!(parse_client_id("zz:01").is_err());
    }
}
