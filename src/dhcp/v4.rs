//! The DHCPv4 responder: a pure function from a request datagram and a `NetworkView` to a reply.
//!
//! It reproduces what Neutron's dnsmasq (static ranges, not authoritative, pre-seeded leases)
//! answers (dnsmasq `rfc2131.c`, reference §9): only configured hosts get addresses, a REQUEST
//! for another server is ignored and never NAKed, option selection follows the client's
//! parameter request list with dnsmasq's always-sent and forced options. No I/O, no clock, no
//! allocation when `out` already has room for 1500 bytes, and no panic on any input.

use std::fmt;
use std::net::Ipv4Addr;

use crate::codec::options::code;
use crate::dhcp::link::Link;
use crate::dhcp::packet::{msg, PacketError, Request, BOOTREPLY, HEADER_LEN, MAGIC_COOKIE};
use crate::model::MacAddr;
use crate::view::{Binding, NetworkView, OptionSet, SubnetView, INFINITE};

/// Where the shell must send a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// L2 broadcast to ff:ff:ff:ff:ff:ff, IP 255.255.255.255:68.
    Broadcast,
    /// L2 unicast to `mac`, IP `ip`:68: the new address of a client that has none yet.
    Unicast { mac: [u8; 6], ip: Ipv4Addr },
    /// UDP unicast to `ciaddr`:68 through the kernel's routing: a client that already has an
    /// address (renewing, INFORM) may sit behind a router, where its MAC is unreachable.
    Ciaddr { ip: Ipv4Addr },
    /// UDP unicast to the relay `giaddr`:67.
    Relay { giaddr: Ipv4Addr },
}

/// A valid request we deliberately do not answer, with what the shell may want to log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ignore {
    /// A BOOTREPLY (some server's answer) seen on the wire.
    BootReply,
    /// OFFER/ACK/NAK in a request, or a type we do not serve (e.g. lease query).
    UnsupportedMessageType(u8),
    /// No port on this network has this MAC / client-id (static-only service).
    UnknownClient { mac: MacAddr },
    /// Known client, but it has no address on the subnet the request is for.
    NoBinding { mac: MacAddr },
    /// Relayed (or subnet-selected) for a subnet we do not serve.
    UnservedSubnet { link: Ipv4Addr },
    /// A REQUEST/RELEASE/DECLINE addressed to another DHCP server (not authoritative).
    OtherServer { server_id: Ipv4Addr },
    /// RENEWING/REBINDING or INFORM for an address outside our subnets.
    ForeignAddress { mac: MacAddr, ip: Ipv4Addr },
    /// REQUEST with neither a requested address nor ciaddr.
    NoAddress { mac: MacAddr },
    /// DHCPINFORM without ciaddr.
    InformWithoutAddress { mac: MacAddr },
    /// The client gives its address back (static bindings stay).
    Release { mac: MacAddr, ip: Ipv4Addr },
    /// The client found its address in use (e.g. a duplicate IP on the segment).
    Decline { mac: MacAddr, ip: Ipv4Addr },
    /// Relayed (`giaddr` set) by a VM port of this network: VMs are clients, not relays.
    RelayFromPort { mac: MacAddr },
    /// Relayed, but the shell did not see the relay's frame: it cannot be vouched for.
    UnverifiedRelay { giaddr: Ipv4Addr },
}

impl fmt::Display for Ignore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ignore::BootReply => write!(f, "BOOTREPLY"),
            Ignore::UnsupportedMessageType(t) => write!(f, "unsupported message type {t}"),
            Ignore::UnknownClient { mac } => write!(f, "unknown client {mac}"),
            Ignore::NoBinding { mac } => write!(f, "client {mac} has no address on this subnet"),
            Ignore::UnservedSubnet { link } => write!(f, "no served subnet contains {link}"),
            Ignore::OtherServer { server_id } => write!(f, "for server {server_id}"),
            Ignore::ForeignAddress { mac, ip } => write!(f, "client {mac}: {ip} is not ours"),
            Ignore::NoAddress { mac } => write!(f, "REQUEST from {mac} without address"),
            Ignore::InformWithoutAddress { mac } => write!(f, "INFORM from {mac} without ciaddr"),
            Ignore::Release { mac, ip } => write!(f, "DHCPRELEASE {ip} from {mac}"),
            Ignore::Decline { mac, ip } => write!(f, "DHCPDECLINE {ip} from {mac}"),
            Ignore::RelayFromPort { mac } => {
                write!(f, "relayed from {mac}, a VM port of this network")
            }
            Ignore::UnverifiedRelay { giaddr } => {
                write!(f, "relayed via {giaddr}, from a frame not seen")
            }
        }
    }
}

/// Result of `respond`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `out` now holds the encoded DHCP payload (padded to >= 300 bytes), to be sent from `server_ip`.
    Reply {
        delivery: Delivery,
        server_ip: Ipv4Addr,
    },
    /// Valid packet we deliberately do not answer (unknown MAC, other server-id, RELEASE/DECLINE, BOOTREPLY...).
    Ignored(Ignore),
    /// Malformed input: dropped and counted by the shell.
    Malformed(&'static str),
}

/// dnsmasq's `MIN_PACKETSZ`: the Linux in-kernel DHCP client ignores shorter replies.
const MIN_REPLY: usize = 300;
/// Default reply size limit without option 57 (576 - IP/UDP headers), like dnsmasq.
const DEFAULT_MAX_REPLY: usize = 548;
/// Our ceiling: an Ethernet frame's UDP payload, and within the shell's 1500-byte buffer.
const MAX_REPLY: usize = 1472;
const BROADCAST_FLAG: u16 = 0x8000;

/// Hot path: validate + parse `req` (raw UDP payload), look up the client in `view`, write the reply into `out`
/// (cleared first). Must not allocate when `out` already has capacity >= 1500 (the shell reuses one buffer),
/// must never panic on any input. The sender's frame is taken as unseen ([`Link::Unknown`]):
/// relayed requests are not answered (see [`respond_from`]).
pub fn respond(req: &[u8], view: &NetworkView, out: &mut Vec<u8>) -> Outcome {
    respond_from(req, Link::Unknown, view, out)
}

/// [`respond`], knowing what the shell saw of the frame of a relayed request (`giaddr` set;
/// see [`crate::dhcp::packet::is_relayed`]). A relayed request is answered only when its
/// frame was seen and came from a MAC that is no VM port's of this network: a VM can set
/// `giaddr` and `chaddr` to anything, and would otherwise get any port's lease and options.
/// Other requests are answered by `chaddr`, like dnsmasq (`link` is not looked at).
pub fn respond_from(req: &[u8], link: Link, view: &NetworkView, out: &mut Vec<u8>) -> Outcome {
    out.clear();
    let r = match Request::parse(req) {
        Ok(r) => r,
        Err(PacketError::BootReply) => return Outcome::Ignored(Ignore::BootReply),
        Err(e) => return Outcome::Malformed(e.reason()),
    };
    if let Some(giaddr) = nonzero(r.giaddr()) {
        match link {
            Link::Seen(mac) if view.is_vm_port(&mac) => {
                return Outcome::Ignored(Ignore::RelayFromPort { mac })
            }
            Link::Seen(_) => {}
            Link::Missed | Link::Unknown => {
                return Outcome::Ignored(Ignore::UnverifiedRelay { giaddr })
            }
        }
    }
    let client = Client::of(&r);
    let result = match r.msg_type() {
        msg::DISCOVER => discover(&r, &client, view, out),
        msg::REQUEST => request(&r, &client, view, out),
        msg::INFORM => inform(&r, &client, view, out),
        msg::RELEASE => release(&r, &client, view),
        msg::DECLINE => decline(&r, &client, view),
        t => Err(Ignore::UnsupportedMessageType(t)),
    };
    result.unwrap_or_else(|ignore| {
        out.clear();
        Outcome::Ignored(ignore)
    })
}

/// Who is asking: the MAC (6-byte hardware addresses only) and option 61.
struct Client<'a> {
    mac: Option<MacAddr>,
    id: Option<&'a [u8]>,
    log_mac: MacAddr,
}

impl<'a> Client<'a> {
    fn of(r: &Request<'a>) -> Self {
        Client {
            mac: r.mac().map(MacAddr),
            id: r.client_id(),
            log_mac: MacAddr(r.mac_for_log()),
        }
    }

    fn find(&self, view: &NetworkView, accept: impl Fn(&Binding) -> bool) -> Option<u32> {
        view.find_binding(self.mac.as_ref(), self.id, accept)
    }

    fn is_known(&self, view: &NetworkView) -> bool {
        view.is_known(self.mac.as_ref(), self.id)
    }

    fn unknown_or_unbound(&self, view: &NetworkView) -> Ignore {
        if self.is_known(view) {
            Ignore::NoBinding { mac: self.log_mac }
        } else {
            Ignore::UnknownClient { mac: self.log_mac }
        }
    }
}

/// Which subnets a request may be answered for (dnsmasq's context): those we have an address
/// on for a client on our link, or exactly the one a relay (giaddr) or subnet selector names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    Direct,
    Subnet(u32),
}

fn nonzero(ip: Ipv4Addr) -> Option<Ipv4Addr> {
    (!ip.is_unspecified()).then_some(ip)
}

fn scope(r: &Request<'_>, view: &NetworkView) -> Result<Scope, Ignore> {
    match r.subnet_selector().or_else(|| nonzero(r.giaddr())) {
        None => Ok(Scope::Direct),
        Some(link) => view
            .subnet_containing(link)
            .map(Scope::Subnet)
            .ok_or(Ignore::UnservedSubnet { link }),
    }
}

fn in_scope(view: &NetworkView, scope: Scope, b: &Binding) -> bool {
    match scope {
        Scope::Direct => view.subnet(b.subnet).direct,
        Scope::Subnet(s) => b.subnet == s,
    }
}

/// DISCOVER: offer the client's address on the link (its first binding there).
fn discover(
    r: &Request<'_>,
    c: &Client<'_>,
    view: &NetworkView,
    out: &mut Vec<u8>,
) -> Result<Outcome, Ignore> {
    let scope = scope(r, view)?;
    let b = c
        .find(view, |b| in_scope(view, scope, b))
        .ok_or_else(|| c.unknown_or_unbound(view))?;
    Ok(write_reply(
        r,
        view,
        out,
        Reply::lease(msg::OFFER, view, b, r, Ipv4Addr::UNSPECIFIED),
    ))
}

/// REQUEST in its three RFC 2131 §4.3.2 states.
fn request(
    r: &Request<'_>,
    c: &Client<'_>,
    view: &NetworkView,
    out: &mut Vec<u8>,
) -> Result<Outcome, Ignore> {
    let scope = scope(r, view)?;
    // dnsmasq clears ciaddr when option 50 is present: buggy clients set both.
    if let Some(wanted) = r.requested_ip() {
        let own = c.find(view, |b| b.ip == wanted && in_scope(view, scope, b));
        return match r.server_id() {
            // SELECTING: answer only if we are the chosen server.
            Some(sid) if !view.is_server_id(sid) => Err(Ignore::OtherServer { server_id: sid }),
            Some(sid) => Ok(match own {
                Some(b) => write_reply(
                    r,
                    view,
                    out,
                    Reply::lease(msg::ACK, view, b, r, Ipv4Addr::UNSPECIFIED),
                ),
                None => write_nak(r, out, sid, "wrong address"),
            }),
            // INIT-REBOOT: dnsmasq has a (pre-seeded) lease for every known host and NAKs any
            // other address; unknown clients are not ours to judge.
            None if !c.is_known(view) => Err(Ignore::UnknownClient { mac: c.log_mac }),
            None => Ok(match own {
                Some(b) => write_reply(
                    r,
                    view,
                    out,
                    Reply::lease(msg::ACK, view, b, r, Ipv4Addr::UNSPECIFIED),
                ),
                None => write_nak(r, out, nak_server_id(view, scope, wanted), "wrong address"),
            }),
        };
    }
    let ciaddr = nonzero(r.ciaddr()).ok_or(Ignore::NoAddress { mac: c.log_mac })?;
    // RENEWING (unicast) / REBINDING (broadcast or relayed): the client's own address is
    // ACKed; another address in one of our subnets is NAKed so the client starts over.
    let own = c.find(view, |b| {
        b.ip == ciaddr && (scope == Scope::Direct || in_scope(view, scope, b))
    });
    if let Some(b) = own {
        return Ok(write_reply(
            r,
            view,
            out,
            Reply::lease(msg::ACK, view, b, r, ciaddr),
        ));
    }
    match view.subnet_containing(ciaddr) {
        Some(_) if c.is_known(view) => Ok(write_nak(
            r,
            out,
            nak_server_id(view, scope, ciaddr),
            "lease not found",
        )),
        Some(_) => Err(Ignore::UnknownClient { mac: c.log_mac }),
        None => Err(Ignore::ForeignAddress {
            mac: c.log_mac,
            ip: ciaddr,
        }),
    }
}

/// Server identifier of a NAK that is not a reply to our own offer.
fn nak_server_id(view: &NetworkView, scope: Scope, addr: Ipv4Addr) -> Ipv4Addr {
    let subnet = match scope {
        Scope::Subnet(s) => Some(s),
        Scope::Direct => view.subnet_containing(addr),
    };
    subnet.map_or_else(|| view.fallback_server_id(), |s| view.subnet(s).server_ip)
}

/// INFORM: configuration only, for the subnet of ciaddr. Like dnsmasq, also answered for
/// clients without a host entry (they get the subnet's options).
fn inform(
    r: &Request<'_>,
    c: &Client<'_>,
    view: &NetworkView,
    out: &mut Vec<u8>,
) -> Result<Outcome, Ignore> {
    let ciaddr = nonzero(r.ciaddr()).ok_or(Ignore::InformWithoutAddress { mac: c.log_mac })?;
    let subnet = view
        .subnet_containing(ciaddr)
        .ok_or(Ignore::ForeignAddress {
            mac: c.log_mac,
            ip: ciaddr,
        })?;
    let reply = match c.find(view, |b| b.subnet == subnet) {
        Some(b) => {
            let b = view.binding(b);
            Reply {
                kind: msg::ACK,
                subnet: b.subnet,
                set: b.sets[usize::from(r.is_ipxe())],
                yiaddr: Ipv4Addr::UNSPECIFIED,
                ciaddr,
                hostname: view.hostname(b),
                lease: false,
            }
        }
        None => Reply {
            kind: msg::ACK,
            subnet,
            set: view.subnet(subnet).set,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            ciaddr,
            hostname: view.binding_by_ip(ciaddr).and_then(|b| view.hostname(b)),
            lease: false,
        },
    };
    Ok(write_reply(r, view, out, reply))
}

fn release(r: &Request<'_>, c: &Client<'_>, view: &NetworkView) -> Result<Outcome, Ignore> {
    let sid = r.server_id().unwrap_or(Ipv4Addr::UNSPECIFIED);
    if !view.is_server_id(sid) {
        return Err(Ignore::OtherServer { server_id: sid });
    }
    Err(Ignore::Release {
        mac: c.log_mac,
        ip: r.ciaddr(),
    })
}

fn decline(r: &Request<'_>, c: &Client<'_>, view: &NetworkView) -> Result<Outcome, Ignore> {
    let sid = r.server_id().unwrap_or(Ipv4Addr::UNSPECIFIED);
    if !view.is_server_id(sid) {
        return Err(Ignore::OtherServer { server_id: sid });
    }
    let ip = r.requested_ip().unwrap_or(Ipv4Addr::UNSPECIFIED);
    Err(Ignore::Decline { mac: c.log_mac, ip })
}

/// What an OFFER/ACK carries.
struct Reply<'v> {
    kind: u8,
    subnet: u32,
    set: u32,
    yiaddr: Ipv4Addr,
    ciaddr: Ipv4Addr,
    hostname: Option<&'v [u8]>,
    /// Lease time and T1/T2 (not in INFORM replies).
    lease: bool,
}

impl<'v> Reply<'v> {
    /// OFFER/ACK of binding `b`, with the option set for the client's class (iPXE or not).
    fn lease(
        kind: u8,
        view: &'v NetworkView,
        b: u32,
        r: &Request<'_>,
        ciaddr: Ipv4Addr,
    ) -> Reply<'v> {
        let b = view.binding(b);
        Reply {
            kind,
            subnet: b.subnet,
            set: b.sets[usize::from(r.is_ipxe())],
            yiaddr: b.ip,
            ciaddr,
            hostname: view.hostname(b),
            lease: true,
        }
    }
}

/// The client's parameter request list as a bitmap; no list means "send everything"
/// (dnsmasq `in_list(NULL, ...)`).
struct Prl {
    bits: [u64; 4],
    present: bool,
}

impl Prl {
    fn of(r: &Request<'_>) -> Prl {
        let mut bits = [0u64; 4];
        let list = r.prl();
        for &c in list.unwrap_or(&[]) {
            bits[usize::from(c >> 6)] |= 1 << (c & 63);
        }
        Prl {
            bits,
            present: list.is_some(),
        }
    }

    fn wants(&self, code: u8) -> bool {
        !self.present || self.bits[usize::from(code >> 6)] & (1 << (code & 63)) != 0
    }

    fn explicitly(&self, code: u8) -> bool {
        self.present && self.wants(code)
    }
}

/// Bounded option writer over the reply buffer (never grows past `limit`).
struct Writer<'o> {
    out: &'o mut Vec<u8>,
    limit: usize,
}

impl Writer<'_> {
    fn room(&self, len: usize) -> bool {
        self.out.len() + 2 + len <= self.limit
    }

    fn put(&mut self, opt: u8, data: &[u8]) -> bool {
        if data.len() > 255 || !self.room(data.len()) {
            return false;
        }
        self.out.extend_from_slice(&[opt, data.len() as u8]);
        self.out.extend_from_slice(data);
        true
    }

    /// A string option, with a trailing NUL for clients that sent one (dnsmasq `null_term`).
    fn put_str(&mut self, opt: u8, data: &[u8], nul: bool) {
        let nul = nul && data.len() < 255;
        let len = data.len() + usize::from(nul);
        if len > 255 || !self.room(len) {
            return;
        }
        self.out.extend_from_slice(&[opt, len as u8]);
        self.out.extend_from_slice(data);
        if nul {
            self.out.push(0);
        }
    }

    fn put_u32(&mut self, opt: u8, v: u32) {
        self.put(opt, &v.to_be_bytes());
    }
}

/// The reply size limit: option 57 minus IP/UDP headers, within dnsmasq's floor and our MTU.
fn size_limit(r: &Request<'_>) -> usize {
    match r.max_message_size() {
        Some(v) if v >= 28 => (usize::from(v) - 28).clamp(DEFAULT_MAX_REPLY, MAX_REPLY),
        Some(_) => MAX_REPLY,
        None => DEFAULT_MAX_REPLY,
    }
}

/// Whether the client NUL-terminates its own name (Windows): dnsmasq then NUL-terminates the
/// strings it sends.
fn null_term(r: &Request<'_>) -> bool {
    if let Some(f) = r.client_fqdn() {
        return f[0] & 0x04 == 0 && f.len() > 3 && f.last() == Some(&0);
    }
    r.hostname().is_some_and(|h| h.last() == Some(&0))
}

/// dnsmasq offers its hostname only if the client did not propose a different one (unless it
/// uses option 81), so an OFFER never contradicts the DISCOVER.
fn offer_may_name(r: &Request<'_>, ours: &[u8]) -> bool {
    if r.client_fqdn().is_some() {
        return true;
    }
    let Some(theirs) = r.hostname() else {
        return true;
    };
    let theirs = theirs.split(|&b| b == 0).next().unwrap_or(&[]);
    !legal_hostname(theirs) || theirs.eq_ignore_ascii_case(ours)
}

/// dnsmasq's `legal_hostname` on the first label: letters and digits, `-`/`_` not first.
fn legal_hostname(name: &[u8]) -> bool {
    name.iter()
        .take_while(|&&b| b != b'.')
        .enumerate()
        .all(|(i, &b)| b.is_ascii_alphanumeric() || (i > 0 && (b == b'-' || b == b'_')))
}

/// Writes the fixed BOOTP header of a reply, echoing the request's identification fields.
fn write_header(out: &mut Vec<u8>, r: &Request<'_>, flags: u16, addrs: [Ipv4Addr; 3]) {
    let [ciaddr, yiaddr, siaddr] = addrs;
    out.extend_from_slice(&[BOOTREPLY, r.htype(), r.hlen(), r.hops()]);
    out.extend_from_slice(&r.xid_bytes());
    out.extend_from_slice(&r.secs().to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    for a in [ciaddr, yiaddr, siaddr, r.giaddr()] {
        out.extend_from_slice(&a.octets());
    }
    out.extend_from_slice(r.chaddr_field());
    out.resize(HEADER_LEN, 0); // sname and file
    out.extend_from_slice(&MAGIC_COOKIE);
}

/// Ends the option area (relay agent information last, RFC 3046), pads to 300 bytes.
fn finish(out: &mut Vec<u8>, r: &Request<'_>) {
    if let Some(agent) = r.relay_agent_tlv() {
        out.extend_from_slice(agent);
    }
    out.push(255);
    if out.len() < MIN_REPLY {
        out.resize(MIN_REPLY, 0);
    }
}

fn reserve_tail(r: &Request<'_>) -> usize {
    1 + r.relay_agent_tlv().map_or(0, <[u8]>::len)
}

/// RFC 2131 §4.1 destination, in dnsmasq's order: relay, then ciaddr, then broadcast when the
/// client asks for it (or its hardware address cannot be unicast to), else its new address.
fn delivery(r: &Request<'_>, flags: u16, ciaddr: Ipv4Addr, yiaddr: Ipv4Addr) -> Delivery {
    if let Some(giaddr) = nonzero(r.giaddr()) {
        return Delivery::Relay { giaddr };
    }
    if !ciaddr.is_unspecified() {
        return Delivery::Ciaddr { ip: ciaddr };
    }
    match r.mac() {
        Some(mac) if flags & BROADCAST_FLAG == 0 && r.htype() != 0 => {
            Delivery::Unicast { mac, ip: yiaddr }
        }
        _ => Delivery::Broadcast,
    }
}

/// T1/T2 like dnsmasq's `do_options`: half and 7/8 of the lease unless configured shorter.
fn renewal_times(lease: u32, set: &OptionSet) -> (u32, u32) {
    let valid = |v: Option<u32>| v.filter(|&h| h < lease && h > 2);
    let mut t1 = valid(set.t1).unwrap_or(lease / 2);
    let t2 = valid(set.t2).unwrap_or((u64::from(lease) * 7 / 8) as u32);
    if t2 <= t1 {
        t1 = t2.saturating_sub(1);
    }
    (t1, t2)
}

/// dnsmasq's `calc_time`: the configured lease, or a shorter one the client asks for (never
/// under 120 s). With an infinite configured lease any client request wins.
fn lease_time(r: &Request<'_>, configured: u32) -> u32 {
    match r.lease_time() {
        Some(req) => {
            let req = req.max(120);
            if configured == INFINITE || (req != INFINITE && req < configured) {
                req
            } else {
                configured
            }
        }
        None => configured,
    }
}

/// OFFER / ACK / INFORM-ACK.
fn write_reply(
    r: &Request<'_>,
    view: &NetworkView,
    out: &mut Vec<u8>,
    reply: Reply<'_>,
) -> Outcome {
    let subnet: &SubnetView = view.subnet(reply.subnet);
    let set = view.set(reply.set);
    let prl = Prl::of(r);
    let server_ip = subnet.server_ip;
    let mut flags = r.flags();
    if view.broadcast_reply() {
        flags |= BROADCAST_FLAG; // dnsmasq --dhcp-broadcast
    }
    let siaddr = set.siaddr.unwrap_or(server_ip);
    write_header(out, r, flags, [reply.ciaddr, reply.yiaddr, siaddr]);
    let limit = size_limit(r) - reserve_tail(r);
    let nul = null_term(r);
    let mut w = Writer { out, limit };
    w.put(code::MESSAGE_TYPE, &[reply.kind]);
    w.put(code::SERVER_ID, &server_ip.octets());
    let lease = lease_time(r, view.lease_secs());
    if reply.lease {
        w.put_u32(code::LEASE_TIME, lease);
    }
    if let Some(sel) = r.subnet_selector() {
        w.put(code::SUBNET_SELECT, &sel.octets());
    }
    if reply.lease && lease != INFINITE {
        let (t1, t2) = renewal_times(lease, set);
        w.put_u32(code::T1, t1);
        w.put_u32(code::T2, t2);
    }
    if let Some(host) = reply.hostname {
        let may = reply.kind != msg::OFFER || offer_may_name(r, host);
        if may && !set.hostname_configured && prl.wants(code::HOSTNAME) {
            w.put_str(code::HOSTNAME, host, nul);
        }
        if let Some(fqdn) = r.client_fqdn() {
            if may {
                put_fqdn(&mut w, fqdn[0], host, view.domain(), nul);
            }
        }
    }
    put_configured(&mut w, view, set, &prl, nul);
    let ciaddr = reply.ciaddr;
    let yiaddr = reply.yiaddr;
    finish(out, r);
    Outcome::Reply {
        delivery: delivery(r, flags, ciaddr, yiaddr),
        server_ip,
    }
}

/// Configured options (subnet, port, global), filtered by the client's request list; options
/// 66/67 go into the `sname`/`file` header fields unless explicitly requested (dnsmasq).
fn put_configured(w: &mut Writer<'_>, view: &NetworkView, set: &OptionSet, prl: &Prl, nul: bool) {
    for e in view.entries(set) {
        let data = view.data(e);
        match e.code {
            code::TFTP_SERVER | code::BOOTFILE if !prl.explicitly(e.code) => {
                let (at, size) = if e.code == code::BOOTFILE {
                    (108, 128)
                } else {
                    (44, 64)
                };
                let n = data.len().min(size - 1);
                w.out[at..at + n].copy_from_slice(&data[..n]);
            }
            // PXE ROMs need NUL-terminated boot names (dnsmasq always terminates these two).
            code::TFTP_SERVER | code::BOOTFILE => w.put_str(e.code, data, true),
            c if e.forced || prl.wants(c) => {
                if e.string {
                    w.put_str(c, data, nul);
                } else {
                    w.put(c, data);
                }
            }
            _ => {}
        }
    }
}

/// Option 81 answer (RFC 4702) as dnsmasq builds it: flags with S/O set unless the client
/// does its own update, N cleared, RCODEs 255, and the name in wire or ASCII form per E.
fn put_fqdn(w: &mut Writer<'_>, client_flags: u8, host: &[u8], domain: Option<&[u8]>, nul: bool) {
    let mut flags = client_flags;
    if flags & 0x01 == 0 {
        flags |= 0x03;
    }
    flags &= !0x08;
    let encoded = flags & 0x04 != 0;
    let dom_len = domain.map_or(0, |d| d.len() + 1);
    let len = 3
        + host.len()
        + dom_len
        + if encoded {
            if domain.is_some() {
                2
            } else {
                1
            }
        } else {
            usize::from(nul)
        };
    if len > 255 || !w.room(len) {
        return;
    }
    w.out
        .extend_from_slice(&[code::CLIENT_FQDN, len as u8, flags & 0x0f, 255, 255]);
    if encoded {
        put_labels(w.out, host);
        if let Some(d) = domain {
            put_labels(w.out, d);
            w.out.push(0);
        }
    } else {
        w.out.extend_from_slice(host);
        if let Some(d) = domain {
            w.out.push(b'.');
            w.out.extend_from_slice(d);
        }
        if nul {
            w.out.push(0);
        }
    }
}

/// Length-prefixed labels (RFC 1035) without the root label. The view only holds validated
/// names (labels of 1..=63 bytes), so each dot becomes exactly one length byte.
fn put_labels(out: &mut Vec<u8>, name: &[u8]) {
    for label in name.split(|&b| b == b'.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label);
    }
}

/// DHCPNAK: message type, server id, message; broadcast unless relayed (RFC 2131 §4.3.2).
fn write_nak(r: &Request<'_>, out: &mut Vec<u8>, server_id: Ipv4Addr, text: &str) -> Outcome {
    let flags = r.flags() | BROADCAST_FLAG;
    let zero = Ipv4Addr::UNSPECIFIED;
    write_header(out, r, flags, [zero, zero, zero]);
    let limit = size_limit(r) - reserve_tail(r);
    let mut w = Writer { out, limit };
    w.put(code::MESSAGE_TYPE, &[msg::NAK]);
    w.put(code::SERVER_ID, &server_id.octets());
    w.put_str(code::MESSAGE, text.as_bytes(), null_term(r));
    finish(out, r);
    let delivery = match nonzero(r.giaddr()) {
        Some(giaddr) => Delivery::Relay { giaddr },
        None => Delivery::Broadcast,
    };
    Outcome::Reply {
        delivery,
        server_ip: server_id,
    }
}
