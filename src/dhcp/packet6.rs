//! A zero-copy, bounds-checked view of a DHCPv6 client message or relay chain (RFC 8415 §8, §9,
//! §21).
//!
//! `dhcproto` panics in debug builds on some short options (13, 16, 17), silently desynchronises
//! on others (7) and allocates per option, so the responder never hands it untrusted bytes.
//! `Request6::parse` walks every option once (and the options nested in IA_NA/IA_TA), checking
//! each TLV against the buffer, and remembers where the few options the responder reads are.
//! Accessors then only slice. Nothing here allocates or panics.

use std::net::Ipv6Addr;

/// DHCPv6 message types (RFC 8415 §7.3).
pub mod msg {
    pub const SOLICIT: u8 = 1;
    pub const ADVERTISE: u8 = 2;
    pub const REQUEST: u8 = 3;
    pub const CONFIRM: u8 = 4;
    pub const RENEW: u8 = 5;
    pub const REBIND: u8 = 6;
    pub const REPLY: u8 = 7;
    pub const RELEASE: u8 = 8;
    pub const DECLINE: u8 = 9;
    pub const RECONFIGURE: u8 = 10;
    pub const INFORMATION_REQUEST: u8 = 11;
    pub const RELAY_FORW: u8 = 12;
    pub const RELAY_REPL: u8 = 13;
}

/// DHCPv6 option codes the responder reads or writes (RFC 8415 §21, RFC 3646, RFC 4704,
/// RFC 6939).
pub mod opt {
    pub const CLIENT_ID: u16 = 1;
    pub const SERVER_ID: u16 = 2;
    pub const IA_NA: u16 = 3;
    pub const IA_TA: u16 = 4;
    pub const IAADDR: u16 = 5;
    pub const ORO: u16 = 6;
    pub const PREFERENCE: u16 = 7;
    pub const RELAY_MSG: u16 = 9;
    pub const STATUS_CODE: u16 = 13;
    pub const RAPID_COMMIT: u16 = 14;
    pub const USER_CLASS: u16 = 15;
    pub const INTERFACE_ID: u16 = 18;
    pub const DNS_SERVERS: u16 = 23;
    pub const DOMAIN_LIST: u16 = 24;
    pub const REFRESH_TIME: u16 = 32;
    pub const CLIENT_FQDN: u16 = 39;
    pub const CLIENT_LINKLAYER_ADDR: u16 = 79;
}

/// Status codes (RFC 8415 §21.13).
pub mod status {
    pub const SUCCESS: u16 = 0;
    pub const NO_ADDRS_AVAIL: u16 = 2;
    pub const NO_BINDING: u16 = 3;
    pub const NOT_ON_LINK: u16 = 4;
}

/// Fixed header of a client/server message: type and transaction id.
pub const HEADER_LEN: usize = 4;
/// Fixed header of a relay message: type, hop count, link and peer address.
pub const RELAY_HEADER_LEN: usize = 34;
/// RFC 8415 §11.1: a DUID is at most 128 octets plus its 2-octet type.
pub const MAX_DUID_LEN: usize = 130;
/// RFC 8415 §7.6 `HOP_COUNT_LIMIT`: a chain deeper than this is never legitimate.
pub const MAX_RELAY_DEPTH: usize = 8;
/// Bytes of a relay level's own options we echo in the reply (Interface-ID and friends);
/// a relay adding more is not one we serve.
pub const MAX_RELAY_ECHO: usize = 256;

/// Why a datagram is not a usable DHCPv6 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketError6 {
    #[error("shorter than the 4-byte header")]
    TooShort,
    #[error("truncated option")]
    TruncatedOption,
    #[error("truncated option inside an IA")]
    TruncatedIaOption,
    #[error("client or server identifier longer than 130 bytes")]
    DuidTooLong,
    #[error("relay message shorter than 34 bytes")]
    RelayTooShort,
    #[error("relay message without a Relay Message option")]
    RelayWithoutMessage,
    #[error("more than 8 nested relay messages")]
    RelayTooDeep,
    #[error("relay options too long to echo")]
    RelayOptionsTooLong,
}

impl PacketError6 {
    /// A static reason for `Outcome::Malformed` (counted and logged by the shell).
    pub fn reason(self) -> &'static str {
        match self {
            PacketError6::TooShort => "shorter than 4 bytes",
            PacketError6::TruncatedOption => "truncated option",
            PacketError6::TruncatedIaOption => "truncated option inside an IA",
            PacketError6::DuidTooLong => "DUID longer than 130 bytes",
            PacketError6::RelayTooShort => "relay message shorter than 34 bytes",
            PacketError6::RelayWithoutMessage => "relay message without Relay Message option",
            PacketError6::RelayTooDeep => "more than 8 nested relay messages",
            PacketError6::RelayOptionsTooLong => "relay options too long",
        }
    }
}

/// Iterator over DHCPv6 TLVs (2-byte code, 2-byte length; no padding). Yields `Err` once (then
/// stops) when an option runs past the end.
#[derive(Clone)]
pub struct OptionIter6<'a> {
    buf: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> OptionIter6<'a> {
    pub fn new(area: &'a [u8]) -> Self {
        OptionIter6 {
            buf: area,
            pos: 0,
            done: false,
        }
    }
}

impl<'a> Iterator for OptionIter6<'a> {
    type Item = Result<(u16, &'a [u8]), PacketError6>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.pos >= self.buf.len() {
            self.done = true;
            return None;
        }
        let head = self.buf.get(self.pos..self.pos + 4).and_then(|h| {
            let code = u16::from_be_bytes([h[0], h[1]]);
            let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
            let data = self.buf.get(self.pos + 4..self.pos + 4 + len)?;
            Some((code, data))
        });
        match head {
            Some((code, data)) => {
                self.pos += 4 + data.len();
                Some(Ok((code, data)))
            }
            None => {
                self.done = true;
                Some(Err(PacketError6::TruncatedOption))
            }
        }
    }
}

/// Walks a validated option area, skipping nothing (it was validated, so no errors remain).
fn options(area: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    OptionIter6::new(area).map_while(Result::ok)
}

fn be32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
        _ => 0,
    }
}

fn addr_at(b: &[u8], at: usize) -> Ipv6Addr {
    let mut a = [0u8; 16];
    if let Some(s) = b.get(at..at + 16) {
        a.copy_from_slice(s);
    }
    Ipv6Addr::from(a)
}

/// IA_NA or IA_TA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IaKind {
    Na,
    Ta,
}

impl IaKind {
    pub fn code(self) -> u16 {
        match self {
            IaKind::Na => opt::IA_NA,
            IaKind::Ta => opt::IA_TA,
        }
    }
}

/// One identity association of a request.
#[derive(Clone, Copy, Debug)]
pub struct Ia<'a> {
    pub kind: IaKind,
    pub iaid: [u8; 4],
    /// The IA's own options (IAADDRs, status).
    body: &'a [u8],
}

/// One IAADDR the client lists in an IA, with the lifetimes it asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IaAddr {
    pub addr: Ipv6Addr,
    pub preferred: u32,
    pub valid: u32,
}

impl<'a> Ia<'a> {
    /// The IAADDR options of this IA (those of at least 24 bytes, like dnsmasq's `opt6_find`).
    pub fn addresses(&self) -> impl Iterator<Item = IaAddr> + 'a {
        options(self.body)
            .filter(|&(code, data)| code == opt::IAADDR && data.len() >= 24)
            .map(|(_, d)| IaAddr {
                addr: addr_at(d, 0),
                preferred: be32(d, 16),
                valid: be32(d, 20),
            })
    }

    /// The lifetimes the client asks for `addr`, when it lists it.
    pub fn requested(&self, addr: Ipv6Addr) -> Option<IaAddr> {
        self.addresses().find(|a| a.addr == addr)
    }
}

/// The fixed part of an IA: 12 bytes for IA_NA (IAID, T1, T2), 4 for IA_TA (IAID). Shorter
/// ones are ignored, as dnsmasq's `check_ia` does.
fn ia_of(code: u16, data: &[u8]) -> Option<Ia<'_>> {
    let (kind, fixed) = match code {
        opt::IA_NA => (IaKind::Na, 12),
        opt::IA_TA => (IaKind::Ta, 4),
        _ => return None,
    };
    let body = data.get(fixed..)?;
    let iaid = [data[0], data[1], data[2], data[3]];
    Some(Ia { kind, iaid, body })
}

/// A validated client message (not a relay message) borrowing the received bytes.
#[derive(Clone, Copy, Debug)]
pub struct Request6<'a> {
    buf: &'a [u8],
    client_id: Option<&'a [u8]>,
    server_id: Option<&'a [u8]>,
    oro: Option<&'a [u8]>,
    rapid_commit: bool,
    user_class: Option<&'a [u8]>,
    fqdn: Option<&'a [u8]>,
    has_ia: bool,
}

impl<'a> Request6<'a> {
    /// Validates `buf` as a DHCPv6 message and indexes its options: every option (and every
    /// option inside an IA) must lie within the buffer. Like dnsmasq's `opt6_find`, the first
    /// occurrence long enough to be usable counts.
    pub fn parse(buf: &'a [u8]) -> Result<Request6<'a>, PacketError6> {
        if buf.len() < HEADER_LEN {
            return Err(PacketError6::TooShort);
        }
        let mut r = Request6 {
            buf,
            client_id: None,
            server_id: None,
            oro: None,
            rapid_commit: false,
            user_class: None,
            fqdn: None,
            has_ia: false,
        };
        for item in OptionIter6::new(&buf[HEADER_LEN..]) {
            let (code, data) = item?;
            match code {
                opt::CLIENT_ID | opt::SERVER_ID if data.len() > MAX_DUID_LEN => {
                    return Err(PacketError6::DuidTooLong)
                }
                opt::CLIENT_ID if r.client_id.is_none() && !data.is_empty() => {
                    r.client_id = Some(data)
                }
                opt::SERVER_ID if r.server_id.is_none() && !data.is_empty() => {
                    r.server_id = Some(data)
                }
                opt::ORO if r.oro.is_none() => r.oro = Some(data),
                opt::RAPID_COMMIT => r.rapid_commit = true,
                opt::USER_CLASS if r.user_class.is_none() && data.len() >= 2 => {
                    r.user_class = Some(data)
                }
                opt::CLIENT_FQDN if r.fqdn.is_none() && !data.is_empty() => r.fqdn = Some(data),
                opt::IA_NA | opt::IA_TA => {
                    r.has_ia = true;
                    if let Some(ia) = ia_of(code, data) {
                        if OptionIter6::new(ia.body).any(|o| o.is_err()) {
                            return Err(PacketError6::TruncatedIaOption);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(r)
    }

    pub fn msg_type(&self) -> u8 {
        self.buf[0]
    }

    /// The 3-byte transaction id.
    pub fn xid(&self) -> [u8; 3] {
        [self.buf[1], self.buf[2], self.buf[3]]
    }

    /// The client's DUID (option 1).
    pub fn client_id(&self) -> Option<&'a [u8]> {
        self.client_id
    }

    /// The server DUID the message is addressed to (option 2).
    pub fn server_id(&self) -> Option<&'a [u8]> {
        self.server_id
    }

    pub fn rapid_commit(&self) -> bool {
        self.rapid_commit
    }

    /// Whether the message carries any IA_NA or IA_TA (even a short one).
    pub fn has_ia(&self) -> bool {
        self.has_ia
    }

    /// The client FQDN option (39): flags byte then name.
    pub fn fqdn(&self) -> Option<&'a [u8]> {
        self.fqdn
    }

    /// The usable IA_NA and IA_TA options, in message order.
    pub fn ias(&self) -> impl Iterator<Item = Ia<'a>> + 'a {
        options(&self.buf[HEADER_LEN..]).filter_map(|(code, data)| ia_of(code, data))
    }

    /// Whether the client asks for `code`: everything when it sent no ORO (dnsmasq), else only
    /// the listed codes.
    pub fn wants(&self, code: u16) -> bool {
        match self.oro {
            None => true,
            Some(list) => list
                .chunks_exact(2)
                .any(|c| u16::from_be_bytes([c[0], c[1]]) == code),
        }
    }

    /// dnsmasq's `--dhcp-userclass=set:ipxe6,iPXE`: one of the user classes contains `iPXE`.
    pub fn is_ipxe6(&self) -> bool {
        let Some(mut rest) = self.user_class else {
            return false;
        };
        while let Some(len) = rest
            .get(..2)
            .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
        {
            let Some(class) = rest.get(2..2 + len) else {
                return false;
            };
            if class.windows(4).any(|w| w == b"iPXE") {
                return true;
            }
            rest = &rest[2 + len..];
        }
        false
    }
}

/// The MAC address in a DUID-LLT (type 1) or DUID-LL (type 3) with hardware type Ethernet.
pub fn duid_mac(duid: &[u8]) -> Option<[u8; 6]> {
    let lladdr = match duid {
        [0, 1, 0, 1, _, _, _, _, rest @ ..] => rest,
        [0, 3, 0, 1, rest @ ..] => rest,
        _ => return None,
    };
    <[u8; 6]>::try_from(lladdr).ok()
}

/// The MAC of a modified EUI-64 link-local address (`fe80::xxff:fexx:xxxx`, RFC 4291 App. A).
pub fn eui64_mac(addr: Ipv6Addr) -> Option<[u8; 6]> {
    let o = addr.octets();
    let link_local = o[..8] == [0xfe, 0x80, 0, 0, 0, 0, 0, 0];
    (link_local && o[11] == 0xff && o[12] == 0xfe).then_some([
        o[8] ^ 0x02,
        o[9],
        o[10],
        o[13],
        o[14],
        o[15],
    ])
}

/// One Relay-Forward level of a relayed message.
#[derive(Clone, Copy, Debug)]
pub struct RelayLevel<'a> {
    pub hop_count: u8,
    pub link: Ipv6Addr,
    pub peer: Ipv6Addr,
    /// The relay's options (validated), Relay Message included.
    options: &'a [u8],
}

impl<'a> RelayLevel<'a> {
    /// The options to echo in the Relay-Reply: all but the Relay Message and the client
    /// link-layer address (dnsmasq does not echo 79).
    pub fn echoed(&self) -> impl Iterator<Item = (u16, &'a [u8])> + 'a {
        options(self.options)
            .filter(|&(c, _)| c != opt::RELAY_MSG && c != opt::CLIENT_LINKLAYER_ADDR)
    }

    /// RFC 6939 client link-layer address with link-layer type Ethernet.
    pub fn client_mac(&self) -> Option<[u8; 6]> {
        options(self.options)
            .find(|&(c, d)| c == opt::CLIENT_LINKLAYER_ADDR && d.len() >= 3)
            .and_then(|(_, d)| match d {
                [0, 1, mac @ ..] => <[u8; 6]>::try_from(mac).ok(),
                _ => None,
            })
    }
}

/// A chain of Relay-Forward messages around a client message, outermost first.
#[derive(Clone, Copy, Debug)]
pub struct RelayChain<'a> {
    levels: [Option<RelayLevel<'a>>; MAX_RELAY_DEPTH],
    depth: usize,
    /// The client message inside the innermost relay.
    pub inner: &'a [u8],
}

impl<'a> RelayChain<'a> {
    /// Unwraps nested Relay-Forward messages (`buf` starts with one), validating each level.
    pub fn parse(buf: &'a [u8]) -> Result<RelayChain<'a>, PacketError6> {
        let mut chain = RelayChain {
            levels: [None; MAX_RELAY_DEPTH],
            depth: 0,
            inner: buf,
        };
        let mut cur = buf;
        while cur.first() == Some(&msg::RELAY_FORW) {
            if chain.depth == MAX_RELAY_DEPTH {
                return Err(PacketError6::RelayTooDeep);
            }
            if cur.len() < RELAY_HEADER_LEN {
                return Err(PacketError6::RelayTooShort);
            }
            let opts = &cur[RELAY_HEADER_LEN..];
            let mut inner = None;
            let mut echo = 0;
            for item in OptionIter6::new(opts) {
                let (code, data) = item?;
                match code {
                    opt::RELAY_MSG if inner.is_none() => inner = Some(data),
                    opt::RELAY_MSG | opt::CLIENT_LINKLAYER_ADDR => {}
                    _ => echo += 4 + data.len(),
                }
            }
            if echo > MAX_RELAY_ECHO {
                return Err(PacketError6::RelayOptionsTooLong);
            }
            chain.levels[chain.depth] = Some(RelayLevel {
                hop_count: cur[1],
                link: addr_at(cur, 2),
                peer: addr_at(cur, 18),
                options: opts,
            });
            chain.depth += 1;
            cur = inner.ok_or(PacketError6::RelayWithoutMessage)?;
        }
        chain.inner = cur;
        Ok(chain)
    }

    /// The levels, outermost first.
    pub fn levels(&self) -> impl DoubleEndedIterator<Item = &RelayLevel<'a>> + '_ {
        self.levels[..self.depth].iter().flatten()
    }

    /// The relay next to the client (innermost level).
    pub fn innermost(&self) -> Option<&RelayLevel<'a>> {
        self.levels().next_back()
    }

    /// RFC 6221: the innermost non-zero link address names the client's link; `None` when all
    /// are `::` (a lightweight relay on our own link).
    pub fn link_address(&self) -> Option<Ipv6Addr> {
        self.levels()
            .rev()
            .map(|l| l.link)
            .find(|a| !a.is_unspecified())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlv(code: u16, data: &[u8]) -> Vec<u8> {
        let mut v = code.to_be_bytes().to_vec();
        v.extend_from_slice(&(data.len() as u16).to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn parses_and_indexes() {
        let mut m = vec![msg::SOLICIT, 1, 2, 3];
        m.extend(tlv(opt::CLIENT_ID, &[0, 3, 0, 1, 1, 2, 3, 4, 5, 6]));
        m.extend(tlv(opt::ORO, &[0, 23, 0, 24]));
        m.extend(tlv(opt::RAPID_COMMIT, &[]));
        let mut ia = vec![0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut addr = "fd00::5".parse::<Ipv6Addr>().unwrap().octets().to_vec();
        addr.extend_from_slice(&[0, 0, 1, 0, 0, 0, 2, 0]);
        ia.extend(tlv(opt::IAADDR, &addr));
        m.extend(tlv(opt::IA_NA, &ia));
        m.extend(tlv(opt::USER_CLASS, b"\x00\x04iPXE"));
        let r = Request6::parse(&m).unwrap();
        assert_eq!(r.msg_type(), msg::SOLICIT);
        assert_eq!(r.xid(), [1, 2, 3]);
        assert_eq!(duid_mac(r.client_id().unwrap()), Some([1, 2, 3, 4, 5, 6]));
        assert!(r.rapid_commit() && r.wants(23) && !r.wants(22) && r.is_ipxe6());
        let ias: Vec<Ia> = r.ias().collect();
        assert_eq!(ias.len(), 1);
        assert_eq!(ias[0].iaid, [0, 0, 0, 9]);
        let a: Vec<IaAddr> = ias[0].addresses().collect();
        assert_eq!(
            a,
            vec![IaAddr {
                addr: "fd00::5".parse().unwrap(),
                preferred: 256,
                valid: 512
            }]
        );
    }

    #[test]
    fn rejects_truncation_everywhere() {
        assert_eq!(
            Request6::parse(&[1, 2]).unwrap_err(),
            PacketError6::TooShort
        );
        let mut m = vec![msg::SOLICIT, 1, 2, 3, 0, 1, 0, 9, 1];
        assert_eq!(
            Request6::parse(&m).unwrap_err(),
            PacketError6::TruncatedOption
        );
        m.truncate(4);
        m.extend(tlv(
            opt::IA_NA,
            &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 30],
        ));
        assert_eq!(
            Request6::parse(&m).unwrap_err(),
            PacketError6::TruncatedIaOption
        );
        // A short IA is ignored, not an error (dnsmasq's check_ia).
        let mut m = vec![msg::SOLICIT, 1, 2, 3];
        m.extend(tlv(opt::IA_NA, &[0, 0, 0, 1]));
        let r = Request6::parse(&m).unwrap();
        assert!(r.has_ia() && r.ias().next().is_none());
    }

    #[test]
    fn duid_and_eui64_macs() {
        assert_eq!(
            duid_mac(&[0, 1, 0, 1, 9, 9, 9, 9, 0xfa, 0x16, 0x3e, 1, 2, 3]),
            Some([0xfa, 0x16, 0x3e, 1, 2, 3])
        );
        assert_eq!(duid_mac(&[0, 2, 0, 0, 0, 9, 1, 2]), None);
        assert_eq!(duid_mac(&[0, 3, 0, 6, 1, 2, 3, 4, 5, 6]), None);
        let ll: Ipv6Addr = "fe80::f816:3eff:fe01:0203".parse().unwrap();
        assert_eq!(eui64_mac(ll), Some([0xfa, 0x16, 0x3e, 1, 2, 3]));
        assert_eq!(
            eui64_mac("fe80::1234:5678:9abc:def0".parse().unwrap()),
            None
        );
        assert_eq!(eui64_mac("fd00::f816:3eff:fe01:203".parse().unwrap()), None);
    }

    #[test]
    fn relay_chains() {
        let mut inner = vec![msg::SOLICIT, 1, 2, 3];
        inner.extend(tlv(opt::CLIENT_ID, &[0, 4, 1]));
        let wrap = |link: &str, body: &[u8], extra: &[u8]| {
            let mut m = vec![msg::RELAY_FORW, 0];
            m.extend(link.parse::<Ipv6Addr>().unwrap().octets());
            m.extend("fe80::1".parse::<Ipv6Addr>().unwrap().octets());
            m.extend_from_slice(extra);
            m.extend(tlv(opt::RELAY_MSG, body));
            m
        };
        let level1 = wrap(
            "2001:db8::1",
            &inner,
            &tlv(opt::CLIENT_LINKLAYER_ADDR, &[0, 1, 1, 2, 3, 4, 5, 6]),
        );
        let level0 = wrap("::", &level1, &tlv(opt::INTERFACE_ID, b"eth0"));
        let c = RelayChain::parse(&level0).unwrap();
        assert_eq!(c.inner, &inner[..]);
        assert_eq!(c.levels().count(), 2);
        assert_eq!(c.link_address(), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(
            c.innermost().unwrap().client_mac(),
            Some([1, 2, 3, 4, 5, 6])
        );
        let echoed: Vec<_> = c.levels().next().unwrap().echoed().collect();
        assert_eq!(echoed, vec![(opt::INTERFACE_ID, &b"eth0"[..])]);
        let mut deep = inner.clone();
        for _ in 0..=MAX_RELAY_DEPTH {
            deep = wrap("::", &deep, &[]);
        }
        assert_eq!(
            RelayChain::parse(&deep).unwrap_err(),
            PacketError6::RelayTooDeep
        );
        assert_eq!(
            RelayChain::parse(&level0[..20]).unwrap_err(),
            PacketError6::RelayTooShort
        );
    }
}
