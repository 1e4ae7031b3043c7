//! A zero-copy, bounds-checked view of a BOOTP/DHCPv4 request (RFC 2131 §2, RFC 2132).
//!
//! `dhcproto` panics or silently drops options on some malformed inputs and allocates per
//! option, so the hot path validates and reads requests with this module instead. `Request::parse`
//! walks the options exactly once, checking every TLV, and remembers where the few options the
//! responder needs are; accessors then only slice. Nothing here allocates or panics.

use std::net::Ipv4Addr;

use crate::codec::options::code;

/// Fixed BOOTP header (236 bytes) plus the magic cookie.
pub const HEADER_LEN: usize = 236;
pub const OPTIONS_OFFSET: usize = HEADER_LEN + 4;
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
pub const BOOTREQUEST: u8 = 1;
pub const BOOTREPLY: u8 = 2;
/// `htype` for Ethernet (ARP hardware type 1).
pub const HTYPE_ETHERNET: u8 = 1;
/// The `sname` and `file` header fields, which carry options when option 52 says so.
const SNAME: std::ops::Range<usize> = 44..108;
const FILE: std::ops::Range<usize> = 108..236;
/// Option 52's values (RFC 2132 §9.3): which header fields hold options.
const OVERLOAD_FILE: u8 = 1;
const OVERLOAD_SNAME: u8 = 2;

/// DHCP message types (RFC 2132 §9.6).
pub mod msg {
    pub const DISCOVER: u8 = 1;
    pub const OFFER: u8 = 2;
    pub const REQUEST: u8 = 3;
    pub const DECLINE: u8 = 4;
    pub const ACK: u8 = 5;
    pub const NAK: u8 = 6;
    pub const RELEASE: u8 = 7;
    pub const INFORM: u8 = 8;
}

/// Why a datagram is not a usable DHCP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("shorter than the 240-byte BOOTP header and cookie")]
    TooShort,
    /// A BOOTREPLY (another server's answer seen on the wire): valid, just not for us.
    #[error("BOOTREPLY")]
    BootReply,
    #[error("op is neither BOOTREQUEST nor BOOTREPLY")]
    BadOp,
    #[error("hlen greater than 16")]
    BadHlen,
    #[error("hlen inconsistent with htype")]
    BadHtype,
    #[error("bad magic cookie")]
    BadCookie,
    #[error("truncated option")]
    TruncatedOption,
    #[error("no DHCP message type (BOOTP is not served)")]
    NoMessageType,
    #[error("invalid DHCP message type 0")]
    BadMessageType,
}

impl PacketError {
    /// A static reason for `Outcome::Malformed` (counted and logged by the shell).
    pub fn reason(self) -> &'static str {
        match self {
            PacketError::TooShort => "shorter than 240 bytes",
            PacketError::BootReply => "BOOTREPLY",
            PacketError::BadOp => "bad op",
            PacketError::BadHlen => "hlen > 16",
            PacketError::BadHtype => "hlen does not match htype",
            PacketError::BadCookie => "bad magic cookie",
            PacketError::TruncatedOption => "truncated option",
            PacketError::NoMessageType => "no message type (BOOTP)",
            PacketError::BadMessageType => "message type 0",
        }
    }
}

/// Where an option's data lies in the datagram.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Span {
    start: usize,
    len: usize,
}

/// First occurrence of each option the responder reads. Like dnsmasq's `option_find`, an
/// occurrence shorter than the option's minimum size is skipped, not an error.
#[derive(Clone, Copy, Debug, Default)]
struct Found {
    msg_type: Option<Span>,
    requested_ip: Option<Span>,
    lease_time: Option<Span>,
    server_id: Option<Span>,
    prl: Option<Span>,
    max_size: Option<Span>,
    client_id: Option<Span>,
    hostname: Option<Span>,
    fqdn: Option<Span>,
    relay_agent: Option<Span>,
    subnet_select: Option<Span>,
    overload: Option<Span>,
    ipxe: bool,
}

impl Found {
    fn note(&mut self, code: u8, span: Span) {
        let slot = match code {
            code::MESSAGE_TYPE => (&mut self.msg_type, 1),
            code::REQUESTED_IP => (&mut self.requested_ip, 4),
            code::LEASE_TIME => (&mut self.lease_time, 4),
            code::SERVER_ID => (&mut self.server_id, 4),
            code::PRL => (&mut self.prl, 0),
            code::MAX_MESSAGE_SIZE => (&mut self.max_size, 2),
            code::CLIENT_ID => (&mut self.client_id, 1),
            code::HOSTNAME => (&mut self.hostname, 1),
            code::CLIENT_FQDN => (&mut self.fqdn, 3),
            code::RELAY_AGENT => (&mut self.relay_agent, 1),
            code::SUBNET_SELECT => (&mut self.subnet_select, 4),
            code::OVERLOAD => (&mut self.overload, 1),
            code::IPXE_ENCAP => {
                self.ipxe |= span.len >= 1;
                return;
            }
            _ => return,
        };
        if slot.0.is_none() && span.len >= slot.1 {
            *slot.0 = Some(span);
        }
    }
}

/// Iterator over the TLVs of an option area: skips pads, stops at END or at the end of the
/// area, and yields `Err` once (then stops) when an option runs past the end.
pub struct OptionIter<'a> {
    buf: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> OptionIter<'a> {
    pub fn new(area: &'a [u8]) -> Self {
        OptionIter {
            buf: area,
            pos: 0,
            done: false,
        }
    }
}

impl<'a> Iterator for OptionIter<'a> {
    /// `(code, offset of the data within the area, data)`.
    type Item = Result<(u8, usize, &'a [u8]), PacketError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let Some(&code) = self.buf.get(self.pos) else {
                self.done = true;
                return None;
            };
            match code {
                0 => self.pos += 1,
                255 => self.done = true,
                _ => {
                    let start = self.pos + 2;
                    let Some(&len) = self.buf.get(self.pos + 1) else {
                        self.done = true;
                        return Some(Err(PacketError::TruncatedOption));
                    };
                    let end = start + usize::from(len);
                    let Some(data) = self.buf.get(start..end) else {
                        self.done = true;
                        return Some(Err(PacketError::TruncatedOption));
                    };
                    self.pos = end;
                    return Some(Ok((code, start, data)));
                }
            }
        }
        None
    }
}

/// Whether a datagram is a relayed request (`giaddr` set), read before any parsing: the shell
/// then looks up the frame it came in.
pub fn is_relayed(buf: &[u8]) -> bool {
    buf.get(24..28).is_some_and(|giaddr| giaddr != [0; 4])
}

/// Notes the options of the option area `area` of `buf` (spans are kept relative to `buf`).
fn note_area(
    found: &mut Found,
    buf: &[u8],
    area: std::ops::Range<usize>,
) -> Result<(), PacketError> {
    let offset = area.start;
    let Some(bytes) = buf.get(area) else {
        return Ok(());
    };
    for item in OptionIter::new(bytes) {
        let (code, start, data) = item?;
        found.note(
            code,
            Span {
                start: offset + start,
                len: data.len(),
            },
        );
    }
    Ok(())
}

/// A validated DHCP request borrowing the received datagram.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    buf: &'a [u8],
    found: Found,
    msg_type: u8,
}

fn ip_at(buf: &[u8], at: usize) -> Ipv4Addr {
    match buf.get(at..at + 4) {
        Some(&[a, b, c, d]) => Ipv4Addr::new(a, b, c, d),
        _ => Ipv4Addr::UNSPECIFIED,
    }
}

impl<'a> Request<'a> {
    /// Validates `buf` as a DHCP request (BOOTREQUEST with a message type) and indexes its
    /// options. BOOTP requests (no option 53) are rejected: Neutron never serves BOOTP.
    pub fn parse(buf: &'a [u8]) -> Result<Request<'a>, PacketError> {
        if buf.len() < OPTIONS_OFFSET {
            return Err(PacketError::TooShort);
        }
        match buf[0] {
            BOOTREQUEST => {}
            BOOTREPLY => return Err(PacketError::BootReply),
            _ => return Err(PacketError::BadOp),
        }
        let (htype, hlen) = (buf[1], buf[2]);
        if hlen > 16 {
            return Err(PacketError::BadHlen);
        }
        if (htype == HTYPE_ETHERNET && hlen != 6) || (htype == 0 && hlen != 0) {
            return Err(PacketError::BadHtype);
        }
        if buf[HEADER_LEN..OPTIONS_OFFSET] != MAGIC_COOKIE {
            return Err(PacketError::BadCookie);
        }
        let mut found = Found::default();
        note_area(&mut found, buf, OPTIONS_OFFSET..buf.len())?;
        // RFC 2131 §4.1: the options field first, then `file`, then `sname`, when option 52
        // (only read in the options field) says they hold options. An option present in more
        // than one place counts where it is met first, as any repeated option does.
        let overload = found
            .overload
            .and_then(|s| buf.get(s.start).copied())
            .unwrap_or(0);
        if overload & OVERLOAD_FILE != 0 {
            note_area(&mut found, buf, FILE)?;
        }
        if overload & OVERLOAD_SNAME != 0 {
            note_area(&mut found, buf, SNAME)?;
        }
        let span = found.msg_type.ok_or(PacketError::NoMessageType)?;
        let msg_type = buf.get(span.start).copied().unwrap_or(0);
        if msg_type == 0 {
            return Err(PacketError::BadMessageType);
        }
        Ok(Request {
            buf,
            found,
            msg_type,
        })
    }

    fn data(&self, span: Option<Span>) -> Option<&'a [u8]> {
        span.and_then(|s| self.buf.get(s.start..s.start + s.len))
    }

    fn ip_option(&self, span: Option<Span>) -> Option<Ipv4Addr> {
        span.map(|s| ip_at(self.buf, s.start))
    }

    /// The raw datagram this request was parsed from.
    pub fn bytes(&self) -> &'a [u8] {
        self.buf
    }

    pub fn msg_type(&self) -> u8 {
        self.msg_type
    }

    pub fn htype(&self) -> u8 {
        self.buf[1]
    }

    pub fn hlen(&self) -> u8 {
        self.buf[2]
    }

    pub fn hops(&self) -> u8 {
        self.buf[3]
    }

    /// Transaction id, as the four wire bytes (echoed verbatim).
    pub fn xid_bytes(&self) -> [u8; 4] {
        [self.buf[4], self.buf[5], self.buf[6], self.buf[7]]
    }

    pub fn xid(&self) -> u32 {
        u32::from_be_bytes(self.xid_bytes())
    }

    pub fn secs(&self) -> u16 {
        u16::from_be_bytes([self.buf[8], self.buf[9]])
    }

    pub fn flags(&self) -> u16 {
        u16::from_be_bytes([self.buf[10], self.buf[11]])
    }

    pub fn broadcast_flag(&self) -> bool {
        self.flags() & 0x8000 != 0
    }

    pub fn ciaddr(&self) -> Ipv4Addr {
        ip_at(self.buf, 12)
    }

    pub fn yiaddr(&self) -> Ipv4Addr {
        ip_at(self.buf, 16)
    }

    pub fn siaddr(&self) -> Ipv4Addr {
        ip_at(self.buf, 20)
    }

    pub fn giaddr(&self) -> Ipv4Addr {
        ip_at(self.buf, 24)
    }

    /// The full 16-byte `chaddr` field, echoed verbatim in replies.
    pub fn chaddr_field(&self) -> &'a [u8] {
        &self.buf[28..44]
    }

    /// The hardware address (`hlen` bytes of `chaddr`).
    pub fn chaddr(&self) -> &'a [u8] {
        &self.buf[28..28 + usize::from(self.hlen())]
    }

    /// The client's MAC when it has a 6-byte hardware address (what Neutron hosts are keyed by).
    pub fn mac(&self) -> Option<[u8; 6]> {
        match self.chaddr() {
            &[a, b, c, d, e, f] => Some([a, b, c, d, e, f]),
            _ => None,
        }
    }

    /// First six bytes of `chaddr`, for logs even when `hlen` is not 6.
    pub fn mac_for_log(&self) -> [u8; 6] {
        let c = &self.buf[28..34];
        [c[0], c[1], c[2], c[3], c[4], c[5]]
    }

    /// Option 50 (first occurrence with at least 4 bytes).
    pub fn requested_ip(&self) -> Option<Ipv4Addr> {
        self.ip_option(self.found.requested_ip)
    }

    /// Option 54.
    pub fn server_id(&self) -> Option<Ipv4Addr> {
        self.ip_option(self.found.server_id)
    }

    /// Option 51, the lease time the client asks for.
    pub fn lease_time(&self) -> Option<u32> {
        self.found
            .lease_time
            .map(|s| u32::from(ip_at(self.buf, s.start)))
    }

    /// Option 55. `Some(&[])` for an empty list, which is not the same as no list.
    pub fn prl(&self) -> Option<&'a [u8]> {
        self.data(self.found.prl)
    }

    /// Option 57.
    pub fn max_message_size(&self) -> Option<u16> {
        self.data(self.found.max_size)
            .and_then(|d| d.get(..2))
            .map(|d| u16::from_be_bytes([d[0], d[1]]))
    }

    /// Option 61.
    pub fn client_id(&self) -> Option<&'a [u8]> {
        self.data(self.found.client_id)
    }

    /// Option 12 as the client sent it.
    pub fn hostname(&self) -> Option<&'a [u8]> {
        self.data(self.found.hostname)
    }

    /// Option 81 (at least flags and the two RCODE bytes).
    pub fn client_fqdn(&self) -> Option<&'a [u8]> {
        self.data(self.found.fqdn)
    }

    /// Option 82 as a whole TLV (code, length, data), to be echoed verbatim.
    pub fn relay_agent_tlv(&self) -> Option<&'a [u8]> {
        self.found
            .relay_agent
            .and_then(|s| self.buf.get(s.start - 2..s.start + s.len))
    }

    /// RFC 3527 link selection (option 82 sub-option 5), else RFC 3011 option 118: the subnet
    /// a relay asks us to allocate from, taking precedence over `giaddr`.
    pub fn subnet_selector(&self) -> Option<Ipv4Addr> {
        let link = self.data(self.found.relay_agent).and_then(|agent| {
            OptionIter::new(agent)
                .map_while(Result::ok)
                .find(|(code, _, data)| *code == 5 && data.len() >= 4)
                .map(|(_, _, d)| Ipv4Addr::new(d[0], d[1], d[2], d[3]))
        });
        link.or_else(|| self.ip_option(self.found.subnet_select))
    }

    /// Whether the client sent option 175 (dnsmasq `--dhcp-match=set:ipxe,175`).
    pub fn is_ipxe(&self) -> bool {
        self.found.ipxe
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(options: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN];
        b[0] = BOOTREQUEST;
        b[1] = 1;
        b[2] = 6;
        b[4..8].copy_from_slice(&[1, 2, 3, 4]);
        b[28..34].copy_from_slice(&[0xfa, 0x16, 0x3e, 0, 0, 1]);
        b.extend_from_slice(&MAGIC_COOKIE);
        b.extend_from_slice(options);
        b
    }

    #[test]
    fn parses_minimal_discover() {
        let b = base(&[53, 1, 1, 0, 0, 55, 2, 1, 3, 255, 9, 9]);
        let r = Request::parse(&b).unwrap();
        assert_eq!(r.msg_type(), msg::DISCOVER);
        assert_eq!(r.xid(), 0x01020304);
        assert_eq!(r.mac(), Some([0xfa, 0x16, 0x3e, 0, 0, 1]));
        assert_eq!(r.prl(), Some(&[1u8, 3][..]));
        assert_eq!(r.requested_ip(), None);
    }

    #[test]
    fn rejects_malformed_headers() {
        assert_eq!(
            Request::parse(&[0u8; 239]).unwrap_err(),
            PacketError::TooShort
        );
        let mut b = base(&[53, 1, 1, 255]);
        b[0] = 2;
        assert_eq!(Request::parse(&b).unwrap_err(), PacketError::BootReply);
        b[0] = 3;
        assert_eq!(Request::parse(&b).unwrap_err(), PacketError::BadOp);
        b[0] = 1;
        b[2] = 17;
        assert_eq!(Request::parse(&b).unwrap_err(), PacketError::BadHlen);
        b[2] = 7;
        assert_eq!(Request::parse(&b).unwrap_err(), PacketError::BadHtype);
        b[2] = 6;
        b[236] = 0;
        assert_eq!(Request::parse(&b).unwrap_err(), PacketError::BadCookie);
    }

    #[test]
    fn rejects_bad_options() {
        let b = base(&[53, 1, 1, 12, 5, b'a']);
        assert_eq!(
            Request::parse(&b).unwrap_err(),
            PacketError::TruncatedOption
        );
        let b = base(&[53]);
        assert_eq!(
            Request::parse(&b).unwrap_err(),
            PacketError::TruncatedOption
        );
        let b = base(&[12, 1, b'a', 255]);
        assert_eq!(Request::parse(&b).unwrap_err(), PacketError::NoMessageType);
        let b = base(&[53, 0, 255]);
        assert_eq!(Request::parse(&b).unwrap_err(), PacketError::NoMessageType);
        let b = base(&[53, 1, 0, 255]);
        assert_eq!(Request::parse(&b).unwrap_err(), PacketError::BadMessageType);
    }

    #[test]
    fn short_occurrences_are_skipped_like_dnsmasq() {
        let b = base(&[53, 1, 3, 50, 2, 1, 2, 50, 4, 10, 0, 0, 5, 255]);
        let r = Request::parse(&b).unwrap();
        assert_eq!(r.requested_ip(), Some(Ipv4Addr::new(10, 0, 0, 5)));
    }

    #[test]
    fn relay_agent_and_link_selection() {
        let b = base(&[
            53, 1, 1, 118, 4, 10, 1, 0, 0, 82, 8, 1, 0, 5, 4, 10, 2, 0, 0, 255,
        ]);
        let r = Request::parse(&b).unwrap();
        assert_eq!(
            r.relay_agent_tlv(),
            Some(&[82u8, 8, 1, 0, 5, 4, 10, 2, 0, 0][..])
        );
        assert_eq!(r.subnet_selector(), Some(Ipv4Addr::new(10, 2, 0, 0)));
        let b = base(&[53, 1, 1, 118, 4, 10, 1, 0, 0, 175, 1, 1, 255]);
        let r = Request::parse(&b).unwrap();
        assert_eq!(r.subnet_selector(), Some(Ipv4Addr::new(10, 1, 0, 0)));
        assert!(r.is_ipxe());
    }

    /// `base` with `file` (and `sname`) holding options, as option 52 says.
    fn overloaded(options: &[u8], file: &[u8], sname: &[u8]) -> Vec<u8> {
        let mut b = base(options);
        b[FILE][..file.len()].copy_from_slice(file);
        b[SNAME][..sname.len()].copy_from_slice(sname);
        b
    }

    #[test]
    fn options_in_file_and_sname_are_read_when_overloaded() {
        // RFC 2132 §9.3: the message type only in `file`.
        let b = overloaded(&[52, 1, 1, 255], &[53, 1, 1, 255], &[]);
        let r = Request::parse(&b).unwrap();
        assert_eq!(r.msg_type(), msg::DISCOVER);
        // In `sname`, with the parameter list in `file`.
        let b = overloaded(
            &[52, 1, 3, 255],
            &[55, 2, 1, 3, 255],
            &[53, 1, 3, 50, 4, 10, 0, 0, 9],
        );
        let r = Request::parse(&b).unwrap();
        assert_eq!(r.msg_type(), msg::REQUEST);
        assert_eq!(r.prl(), Some(&[1u8, 3][..]));
        assert_eq!(r.requested_ip(), Some(Ipv4Addr::new(10, 0, 0, 9)));
        // The options field is read first, then `file`, then `sname`.
        let b = overloaded(&[52, 1, 3, 53, 1, 1, 255], &[53, 1, 3], &[53, 1, 8]);
        assert_eq!(Request::parse(&b).unwrap().msg_type(), msg::DISCOVER);
        let b = overloaded(&[52, 1, 3, 255], &[53, 1, 3], &[53, 1, 8]);
        assert_eq!(Request::parse(&b).unwrap().msg_type(), msg::REQUEST);
    }

    #[test]
    fn file_and_sname_are_not_options_without_overload() {
        // A boot file name that happens to look like option 53 is only a name.
        let b = overloaded(&[255], &[53, 1, 1, 255], &[53, 1, 1, 255]);
        assert_eq!(Request::parse(&b).unwrap_err(), PacketError::NoMessageType);
        // Only the field option 52 names is read.
        let b = overloaded(&[52, 1, 2, 255], &[53, 1, 1, 255], &[]);
        assert_eq!(Request::parse(&b).unwrap_err(), PacketError::NoMessageType);
        // Option 52 in an overloaded field is not followed.
        let b = overloaded(&[52, 1, 1, 255], &[52, 1, 2, 255], &[53, 1, 1, 255]);
        assert_eq!(Request::parse(&b).unwrap_err(), PacketError::NoMessageType);
    }

    #[test]
    fn a_truncated_option_in_an_overloaded_field_is_malformed() {
        let b = overloaded(&[53, 1, 1, 52, 1, 1, 255], &[12, 200, b'a'], &[]);
        // `file` is 128 bytes: an option claiming 200 runs past its end.
        assert_eq!(
            Request::parse(&b).unwrap_err(),
            PacketError::TruncatedOption
        );
    }

    #[test]
    fn missing_end_is_accepted() {
        let b = base(&[53, 1, 8]);
        assert_eq!(Request::parse(&b).unwrap().msg_type(), msg::INFORM);
    }
}
