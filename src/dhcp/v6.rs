//! The DHCPv6 responder: a pure function from a request datagram (and what the shell knows of
//! its sender) and a `NetworkView6` to a reply.
//!
//! It reproduces what Neutron's dnsmasq (static ranges, not authoritative) answers, read from
//! dnsmasq's `rfc3315.c`, with one deliberate change: bindings are static, keyed by MAC, so a
//! port's addresses are always "leased" to whichever DUID asks with that MAC (dnsmasq ties a
//! lease to DUID+IAID and refuses a second DUID until the first lease expires). Hence a Renew
//! after an agent restart is answered, and a client that changes its DUID keeps its address.
//!
//! | message | answer |
//! |---|---|
//! | Solicit | Advertise (Reply + Rapid Commit when asked) with all of the port's addresses on the link in the first IA_NA; unknown clients and clients without addresses are ignored |
//! | Request | Reply with the port's addresses; NotOnLink for an IA naming an address off our link; NoAddrsAvail for unknown clients |
//! | Renew / Rebind | Reply refreshing the port's addresses, other listed addresses with zero lifetimes; NoBinding (Renew) for unknown clients, silence (Rebind) |
//! | Confirm | Success or NotOnLink for the listed addresses |
//! | Release / Decline | Reply with status (static bindings stay; reported to the shell) |
//! | Information-Request | Reply with options only (and `information-refresh-time`) |
//!
//! Clients are identified as dnsmasq's `find_config` does: by the DUID when a port reserves it
//! (`client-id`), else by MAC. Which MACs count depends on what the shell saw ([`Link`]):
//! - a message straight from a client whose frame was seen: that frame's source MAC alone, and
//!   a reserved DUID only if it is that port's (port security vouches for the frame's MAC, not
//!   for a MAC written in a DUID; trusting the DUID let a host with an unknown MAC take another
//!   port's address);
//! - a relayed message: only from a relay whose frame was seen and whose MAC is no VM port's of
//!   this network (else any VM could name any port in option 79); the client is then known
//!   by, in turn, the MAC in a DUID-LL/DUID-LLT, the relay's RFC 6939 option 79, and the MAC in
//!   an EUI-64 link-local peer address;
//! - a message whose frame the shell could not watch: the DUID's MAC, then the EUI-64 source's.
//!
//! The first MAC that names a port wins.
//!
//! No I/O, no clock, no allocation when `out` already has room for 1500 bytes, and no panic on
//! any input.

use std::fmt;
use std::net::Ipv6Addr;

use crate::dhcp::link::Link;
use crate::dhcp::packet6::{
    duid_mac, eui64_mac, msg, opt, status, Ia, IaKind, PacketError6, RelayChain, Request6,
};
use crate::model::MacAddr;
use crate::view::v6::{renewal_times, requested_lifetimes, Binding6, Client6, NetworkView6};

/// What the shell knows about the sender of a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Source {
    /// IPv6 source address (a client's link-local address, or a relay's address).
    pub addr: Ipv6Addr,
    /// The frame's link-layer source, as far as the shell saw it.
    pub link: Link,
}

/// Where the shell sends a reply: always back to the source address, on the client port (546)
/// or, for a Relay-Reply, the server/relay port (547).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    Client,
    Relay,
}

impl Delivery {
    pub fn port(self) -> u16 {
        match self {
            Delivery::Client => 546,
            Delivery::Relay => 547,
        }
    }
}

/// A valid message we deliberately do not answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ignore {
    /// The network has no served DHCPv6 subnet (or we do not know our own port).
    NotServed,
    /// Advertise/Reply/Reconfigure/Relay-Reply: another server's message.
    ServerMessage(u8),
    /// A client message type we do not serve (e.g. lease query).
    UnsupportedMessageType(u8),
    /// No client identifier where RFC 8415 requires one.
    NoClientId { msg: u8 },
    /// Solicit/Confirm/Rebind carrying a server identifier (RFC 8415 §16).
    UnexpectedServerId { msg: u8 },
    /// Addressed to another server's DUID.
    OtherServer { msg: u8 },
    /// No port has this DUID or MAC (static-only service).
    UnknownClient { msg: u8, mac: Option<MacAddr> },
    /// The port has no address on a stateful subnet of this link.
    NoAddresses { msg: u8, mac: MacAddr },
    /// Solicit without any IA_NA/IA_TA (e.g. prefix delegation only).
    NoIa,
    /// Information-Request carrying an IA (RFC 8415 §16.12).
    InformationRequestWithIa,
    /// Relayed from a link we do not serve.
    UnservedLink { link: Ipv6Addr },
    /// Confirm listing no address (RFC 8415 §18.3.3: no reply).
    ConfirmWithoutAddresses,
    /// The shell watches the link but did not see this message's frame: its sender is unknown.
    UnseenSender,
    /// A Relay-Forward sent from a VM port's MAC: VMs are clients, not relays.
    RelayFromPort { mac: MacAddr },
    /// A Relay-Forward whose frame the shell did not see: the relay cannot be vouched for.
    UnverifiedRelay,
}

impl fmt::Display for Ignore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ignore::NotServed => write!(f, "no DHCPv6 subnet served on this network"),
            Ignore::ServerMessage(t) => write!(f, "server message type {t}"),
            Ignore::UnsupportedMessageType(t) => write!(f, "unsupported message type {t}"),
            Ignore::NoClientId { msg } => write!(f, "{} without client identifier", name(*msg)),
            Ignore::UnexpectedServerId { msg } => {
                write!(f, "{} with a server identifier", name(*msg))
            }
            Ignore::OtherServer { msg } => write!(f, "{} for another server", name(*msg)),
            Ignore::UnknownClient { msg, mac: Some(m) } => {
                write!(f, "{} from unknown client {m}", name(*msg))
            }
            Ignore::UnknownClient { msg, mac: None } => {
                write!(f, "{} from unknown client (no MAC found)", name(*msg))
            }
            Ignore::NoAddresses { msg, mac } => {
                write!(
                    f,
                    "{} from {mac}: no address on a stateful subnet",
                    name(*msg)
                )
            }
            Ignore::NoIa => write!(f, "SOLICIT without IA_NA or IA_TA"),
            Ignore::InformationRequestWithIa => write!(f, "INFORMATION-REQUEST with an IA"),
            Ignore::UnservedLink { link } => write!(f, "relayed from unserved link {link}"),
            Ignore::ConfirmWithoutAddresses => write!(f, "CONFIRM without addresses"),
            Ignore::UnseenSender => write!(f, "frame not seen: sender unknown"),
            Ignore::RelayFromPort { mac } => {
                write!(f, "RELAY-FORW from {mac}, a VM port of this network")
            }
            Ignore::UnverifiedRelay => write!(f, "RELAY-FORW whose frame was not seen"),
        }
    }
}

/// Result of `respond`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `out` holds the reply (a Relay-Reply when the request was relayed).
    Reply {
        delivery: Delivery,
        /// Type of the client's message and of our answer (innermost when relayed).
        request: u8,
        reply: u8,
        /// The port the client was recognised as, if any (for logs).
        client: Option<MacAddr>,
    },
    /// Valid message we deliberately do not answer.
    Ignored(Ignore),
    /// Malformed input: dropped and counted by the shell.
    Malformed(&'static str),
}

/// Name of a message type for logs.
pub fn name(t: u8) -> &'static str {
    match t {
        msg::SOLICIT => "SOLICIT",
        msg::ADVERTISE => "ADVERTISE",
        msg::REQUEST => "REQUEST",
        msg::CONFIRM => "CONFIRM",
        msg::RENEW => "RENEW",
        msg::REBIND => "REBIND",
        msg::REPLY => "REPLY",
        msg::RELEASE => "RELEASE",
        msg::DECLINE => "DECLINE",
        msg::RECONFIGURE => "RECONFIGURE",
        msg::INFORMATION_REQUEST => "INFORMATION-REQUEST",
        msg::RELAY_FORW => "RELAY-FORW",
        msg::RELAY_REPL => "RELAY-REPL",
        _ => "message",
    }
}

/// Largest reply: a 1500-byte MTU minus the IPv6 and UDP headers; within the shell's buffer.
pub const MAX_REPLY: usize = 1452;
/// Default DNS servers in one reply (one per subnet with an address in the reply).
const MAX_DEFAULT_DNS: usize = 4;
/// MAC candidates: DUID, link layer (or relay option 79), EUI-64 source.
const MAX_MACS: usize = 3;

/// Hot path: validate + parse `req` (raw UDP payload from `src`), identify the client, write the
/// reply into `out` (cleared first). Must not allocate when `out` already has capacity >= 1500,
/// and must never panic on any input.
pub fn respond(req: &[u8], src: &Source, view: &NetworkView6, out: &mut Vec<u8>) -> Outcome {
    out.clear();
    let outcome = respond_inner(req, src, view, out);
    if !matches!(outcome, Outcome::Reply { .. }) {
        out.clear();
    }
    outcome
}

fn respond_inner(req: &[u8], src: &Source, view: &NetworkView6, out: &mut Vec<u8>) -> Outcome {
    let Some(&first) = req.first() else {
        return Outcome::Malformed(PacketError6::TooShort.reason());
    };
    if !view.is_served() {
        return Outcome::Ignored(Ignore::NotServed);
    }
    if first != msg::RELAY_FORW {
        let who = match src.link {
            Link::Seen(mac) => Who::Frame(mac),
            Link::Missed => return Outcome::Ignored(Ignore::UnseenSender),
            Link::Unknown => Who::Guess([None, eui64_mac(src.addr).map(MacAddr)]),
        };
        return answer(req, view, Scope::Direct, who, out, Delivery::Client);
    }
    match src.link {
        Link::Seen(mac) if view.is_vm_port(&mac) => {
            return Outcome::Ignored(Ignore::RelayFromPort { mac })
        }
        Link::Seen(_) => {}
        Link::Missed | Link::Unknown => return Outcome::Ignored(Ignore::UnverifiedRelay),
    }
    let chain = match RelayChain::parse(req) {
        Ok(c) => c,
        Err(e) => return Outcome::Malformed(e.reason()),
    };
    let scope = match chain.link_address() {
        None => Scope::Direct,
        Some(link) => match view.subnet_containing(link) {
            Some(s) if !is_link_local_or_special(link) => Scope::Subnet(s),
            _ => return Outcome::Ignored(Ignore::UnservedLink { link }),
        },
    };
    let inner = chain.innermost();
    let who = Who::Guess([
        inner.and_then(|l| l.client_mac()).map(MacAddr),
        inner.and_then(|l| eui64_mac(l.peer)).map(MacAddr),
    ]);
    // Relay-Reply headers, outermost first, each ending in a Relay Message option whose length
    // is patched once the inner reply is written.
    let mut patch = [0usize; crate::dhcp::packet6::MAX_RELAY_DEPTH];
    let mut depth = 0;
    {
        let mut w = Writer::new(out);
        for level in chain.levels() {
            if !w.room(34) {
                return Outcome::Malformed("relay headers do not fit a reply");
            }
            w.out.push(msg::RELAY_REPL);
            w.out.push(level.hop_count);
            w.out.extend_from_slice(&level.link.octets());
            w.out.extend_from_slice(&level.peer.octets());
            for (code, data) in level.echoed() {
                if !w.put(code, data) {
                    return Outcome::Malformed("relay headers do not fit a reply");
                }
            }
            match w.begin(opt::RELAY_MSG) {
                Some(pos) if depth < patch.len() => {
                    patch[depth] = pos;
                    depth += 1;
                }
                _ => return Outcome::Malformed("relay headers do not fit a reply"),
            }
        }
    }
    let outcome = answer(chain.inner, view, scope, who, out, Delivery::Relay);
    if matches!(outcome, Outcome::Reply { .. }) {
        let end = out.len();
        for &pos in patch[..depth].iter().rev() {
            let len = (end - pos - 4) as u16;
            out[pos + 2..pos + 4].copy_from_slice(&len.to_be_bytes());
        }
    }
    outcome
}

fn is_link_local_or_special(a: Ipv6Addr) -> bool {
    a.is_loopback() || a.is_multicast() || (a.segments()[0] & 0xffc0) == 0xfe80
}

/// Which subnets a message may be answered for: those on our link, or exactly the one a relay
/// names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    Direct,
    Subnet(u32),
}

/// Who the client may be.
#[derive(Clone, Copy)]
enum Who {
    /// The port whose MAC the frame came from, and no other.
    Frame(MacAddr),
    /// The port a DUID reserves, else the first port named by the DUID's MAC or by one of
    /// these.
    Guess([Option<MacAddr>; 2]),
}

/// Everything the per-message handlers need.
struct Ctx<'r, 'v> {
    r: Request6<'r>,
    view: &'v NetworkView6,
    scope: Scope,
    macs: [MacAddr; MAX_MACS],
    nmacs: usize,
    /// The frame's MAC, when it alone may name the client.
    pinned: Option<MacAddr>,
    ipxe6: bool,
}

impl Ctx<'_, '_> {
    fn macs(&self) -> &[MacAddr] {
        &self.macs[..self.nmacs]
    }

    fn in_scope(&self, subnet: u32) -> bool {
        match self.scope {
            Scope::Direct => self.view.subnet(subnet).direct,
            Scope::Subnet(s) => s == subnet,
        }
    }

    /// Whether `addr` belongs to a served subnet of the client's link.
    fn on_link(&self, addr: Ipv6Addr) -> bool {
        self.view
            .subnets()
            .iter()
            .enumerate()
            .any(|(i, s)| s.contains(addr) && self.in_scope(i as u32))
    }

    fn find(&self, accept: impl Fn(&Client6) -> bool) -> Option<&Client6> {
        self.find_index(accept).map(|i| self.view.client(i))
    }

    /// The client's index; a pinned MAC rules out every port but its own, whatever the DUID.
    fn find_index(&self, accept: impl Fn(&Client6) -> bool) -> Option<u32> {
        let pinned = |c: &Client6| self.pinned.is_none_or(|m| c.mac == m);
        self.view
            .find_client(self.r.client_id(), self.macs(), |c| pinned(c) && accept(c))
    }

    /// A client with at least one address on a stateful subnet of this link.
    fn find_leasable(&self) -> Option<&Client6> {
        self.find(|c| {
            self.view
                .bindings_of(c)
                .iter()
                .any(|b| self.in_scope(b.subnet))
        })
    }

    fn first_mac(&self) -> Option<MacAddr> {
        self.macs().first().copied()
    }

    fn unknown_or_unleasable(&self) -> Ignore {
        let msg = self.r.msg_type();
        match self.find_index(|_| true) {
            Some(c) => Ignore::NoAddresses {
                msg,
                mac: self.view.client(c).mac,
            },
            None => Ignore::UnknownClient {
                msg,
                mac: self.first_mac(),
            },
        }
    }
}

/// Answers one client message (the innermost of a relay chain), appending to `out`.
fn answer(
    req: &[u8],
    view: &NetworkView6,
    scope: Scope,
    who: Who,
    out: &mut Vec<u8>,
    delivery: Delivery,
) -> Outcome {
    let r = match Request6::parse(req) {
        Ok(r) => r,
        Err(e) => return Outcome::Malformed(e.reason()),
    };
    let t = r.msg_type();
    let ours = view.server_duid().unwrap_or(&[]);
    let server_id = r.server_id();
    let checked = match t {
        msg::ADVERTISE | msg::REPLY | msg::RECONFIGURE | msg::RELAY_REPL | msg::RELAY_FORW => {
            Err(Ignore::ServerMessage(t))
        }
        msg::SOLICIT | msg::CONFIRM | msg::REBIND if server_id.is_some() => {
            Err(Ignore::UnexpectedServerId { msg: t })
        }
        msg::SOLICIT | msg::CONFIRM | msg::REBIND => Ok(()),
        msg::REQUEST | msg::RENEW | msg::RELEASE | msg::DECLINE if server_id != Some(ours) => {
            Err(Ignore::OtherServer { msg: t })
        }
        msg::REQUEST | msg::RENEW | msg::RELEASE | msg::DECLINE => Ok(()),
        msg::INFORMATION_REQUEST if server_id.is_some_and(|s| s != ours) => {
            Err(Ignore::OtherServer { msg: t })
        }
        msg::INFORMATION_REQUEST if r.has_ia() => Err(Ignore::InformationRequestWithIa),
        msg::INFORMATION_REQUEST => Ok(()),
        _ => Err(Ignore::UnsupportedMessageType(t)),
    };
    if let Err(i) = checked {
        return Outcome::Ignored(i);
    }
    if r.client_id().is_none() && t != msg::INFORMATION_REQUEST {
        return Outcome::Ignored(Ignore::NoClientId { msg: t });
    }
    let mut ctx = Ctx {
        r,
        view,
        scope,
        macs: [MacAddr([0; 6]); MAX_MACS],
        nmacs: 0,
        pinned: None,
        ipxe6: r.is_ipxe6(),
    };
    let candidates = match who {
        Who::Frame(mac) => {
            ctx.pinned = Some(mac);
            [Some(mac), None, None]
        }
        Who::Guess([a, b]) => [r.client_id().and_then(duid_mac).map(MacAddr), a, b],
    };
    for m in candidates.into_iter().flatten() {
        if !ctx.macs().contains(&m) && ctx.nmacs < MAX_MACS {
            ctx.macs[ctx.nmacs] = m;
            ctx.nmacs += 1;
        }
    }
    let start = out.len();
    let result = match t {
        msg::SOLICIT => solicit(&ctx, out),
        msg::REQUEST => request(&ctx, out),
        msg::RENEW | msg::REBIND => renew(&ctx, out),
        msg::CONFIRM => confirm(&ctx, out),
        msg::RELEASE | msg::DECLINE => release(&ctx, out),
        _ => information(&ctx, out),
    };
    match result {
        Ok((reply, client)) => {
            if let Some(b) = out.get_mut(start) {
                *b = reply;
            }
            Outcome::Reply {
                delivery,
                request: t,
                reply,
                client,
            }
        }
        Err(i) => Outcome::Ignored(i),
    }
}

type Answer = Result<(u8, Option<MacAddr>), Ignore>;

/// Message header (type patched later), echoed client identifier, our server identifier.
fn write_header(ctx: &Ctx<'_, '_>, w: &mut Writer<'_>) {
    w.out.push(0);
    w.out.extend_from_slice(&ctx.r.xid());
    if let Some(id) = ctx.r.client_id() {
        w.put(opt::CLIENT_ID, id);
    }
    w.put(opt::SERVER_ID, ctx.view.server_duid().unwrap_or(&[]));
}

fn solicit(ctx: &Ctx<'_, '_>, out: &mut Vec<u8>) -> Answer {
    if ctx.r.ias().next().is_none() {
        return Err(Ignore::NoIa);
    }
    let client = ctx
        .find_leasable()
        .ok_or_else(|| ctx.unknown_or_unleasable())?;
    let mut w = Writer::new(out);
    write_header(ctx, &mut w);
    let reply = if ctx.r.rapid_commit() {
        w.put(opt::RAPID_COMMIT, &[]);
        msg::REPLY
    } else {
        msg::ADVERTISE
    };
    let lease = write_ias(ctx, &mut w, Some(client), IaMode::Offer);
    w.put_status(status::SUCCESS, "success");
    w.put(opt::PREFERENCE, &[0]);
    write_options(ctx, &mut w, Some(client), &lease, false);
    Ok((reply, Some(client.mac)))
}

fn request(ctx: &Ctx<'_, '_>, out: &mut Vec<u8>) -> Answer {
    let client = ctx.find_leasable();
    let mut w = Writer::new(out);
    write_header(ctx, &mut w);
    let lease = write_ias(ctx, &mut w, client, IaMode::Offer);
    if lease.assigned() {
        w.put_status(status::SUCCESS, "success");
        write_options(ctx, &mut w, client, &lease, false);
    } else {
        w.put_status(status::NO_ADDRS_AVAIL, "no addresses available");
    }
    Ok((msg::REPLY, client.map(|c| c.mac).or(ctx.first_mac())))
}

fn renew(ctx: &Ctx<'_, '_>, out: &mut Vec<u8>) -> Answer {
    let client = ctx.find_leasable();
    if client.is_none() && ctx.r.msg_type() == msg::REBIND {
        // Not authoritative: another server may hold the binding (RFC 8415 §18.3.5).
        return Err(ctx.unknown_or_unleasable());
    }
    let mut w = Writer::new(out);
    write_header(ctx, &mut w);
    let lease = write_ias(ctx, &mut w, client, IaMode::Extend);
    if lease.assigned() {
        write_options(ctx, &mut w, client, &lease, false);
    }
    Ok((msg::REPLY, client.map(|c| c.mac).or(ctx.first_mac())))
}

fn confirm(ctx: &Ctx<'_, '_>, out: &mut Vec<u8>) -> Answer {
    let (mut good, mut bad) = (false, false);
    for ia in ctx.r.ias() {
        for a in ia.addresses() {
            if ctx.on_link(a.addr) {
                good = true;
            } else {
                bad = true;
            }
        }
    }
    if !good && !bad {
        return Err(Ignore::ConfirmWithoutAddresses);
    }
    let mut w = Writer::new(out);
    write_header(ctx, &mut w);
    if bad {
        w.put_status(status::NOT_ON_LINK, "confirm failed");
    } else {
        w.put_status(status::SUCCESS, "all addresses still on link");
    }
    Ok((msg::REPLY, ctx.first_mac()))
}

/// Release and Decline: static bindings stay; addresses that are not the client's are reported
/// back with NoBinding, as dnsmasq does for addresses it has no lease for.
fn release(ctx: &Ctx<'_, '_>, out: &mut Vec<u8>) -> Answer {
    let client = ctx.find(|c| !ctx.view.bindings_of(c).is_empty());
    let owned =
        |a: Ipv6Addr| client.is_some_and(|c| ctx.view.bindings_of(c).iter().any(|b| b.ip == a));
    let mut w = Writer::new(out);
    write_header(ctx, &mut w);
    for ia in ctx.r.ias() {
        if ia.addresses().all(|a| owned(a.addr)) {
            continue;
        }
        let Some(pos) = w.begin_ia(&ia) else { break };
        for a in ia.addresses().filter(|a| !owned(a.addr)) {
            w.put_iaaddr(a.addr, 0, 0);
        }
        w.put_status(status::NO_BINDING, "no binding found");
        w.end(pos);
    }
    if ctx.r.msg_type() == msg::RELEASE {
        w.put_status(status::SUCCESS, "release received");
    } else {
        w.put_status(status::SUCCESS, "success");
    }
    Ok((msg::REPLY, client.map(|c| c.mac).or(ctx.first_mac())))
}

fn information(ctx: &Ctx<'_, '_>, out: &mut Vec<u8>) -> Answer {
    let view = ctx.view;
    let client = ctx.find(|c| view.subnets_of(c).iter().any(|s| ctx.in_scope(s.subnet)));
    let mut w = Writer::new(out);
    write_header(ctx, &mut w);
    let lease = Lease::default();
    write_options(ctx, &mut w, client, &lease, true);
    Ok((msg::REPLY, client.map(|c| c.mac)))
}

/// How IAs are answered: Solicit/Request offer addresses; Renew/Rebind extend bindings.
#[derive(Clone, Copy, PartialEq, Eq)]
enum IaMode {
    Offer,
    Extend,
}

/// What the IAs of a reply gave the client: the first binding (its subnet selects the option
/// set, its name the FQDN) and our addresses on the subnets of the given addresses.
#[derive(Default)]
struct Lease<'v> {
    first: Option<&'v Binding6>,
    dns: [Option<Ipv6Addr>; MAX_DEFAULT_DNS],
}

impl Lease<'_> {
    fn assigned(&self) -> bool {
        self.first.is_some()
    }
}

/// Writes one IA per IA_NA/IA_TA of the request. The port's addresses on the link all go into
/// the first IA_NA that can take them (dnsmasq: a configured address once per prefix); other
/// addresses the client lists get zero lifetimes; an IA naming an address off our link gets
/// NotOnLink (Request).
fn write_ias<'v>(
    ctx: &Ctx<'_, 'v>,
    w: &mut Writer<'_>,
    client: Option<&'v Client6>,
    mode: IaMode,
) -> Lease<'v> {
    let view = ctx.view;
    let mut lease = Lease::default();
    let bindings: &'v [Binding6] = client.map_or(&[], |c| view.bindings_of(c));
    let ours = |a: Ipv6Addr| bindings.iter().any(|b| b.ip == a && ctx.in_scope(b.subnet));
    for ia in ctx.r.ias() {
        let Some(pos) = w.begin_ia(&ia) else { break };
        if ia.kind == IaKind::Ta {
            match mode {
                IaMode::Offer => w.put_status(status::NO_ADDRS_AVAIL, "address unavailable"),
                IaMode::Extend => w.put_status(status::NO_BINDING, "no binding found"),
            }
            w.end(pos);
            continue;
        }
        let request = ctx.r.msg_type() == msg::REQUEST;
        if request && ia.addresses().any(|a| !ctx.on_link(a.addr)) {
            w.put_status(status::NOT_ON_LINK, "not on link");
            w.end(pos);
            continue;
        }
        let mut min_time = u32::MAX;
        let mut given = 0;
        if !lease.assigned() {
            for b in bindings.iter().filter(|b| ctx.in_scope(b.subnet)) {
                let (pref, valid) = match ia.requested(b.ip) {
                    Some(req) => requested_lifetimes(view.lease_secs(), req.preferred, req.valid),
                    None => (view.lease_secs(), view.lease_secs()),
                };
                if !w.put_iaaddr(b.ip, pref, valid) {
                    break;
                }
                for t in [pref, valid] {
                    if t != 0 {
                        min_time = min_time.min(t);
                    }
                }
                given += 1;
                lease.first.get_or_insert(b);
                let dns = view.subnet(b.subnet).server_ip;
                if !lease.dns.contains(&dns) {
                    if let Some(slot) = lease.dns.iter_mut().find(|s| s.is_none()) {
                        *slot = dns;
                    }
                }
            }
        }
        if given > 0 {
            // Other addresses the client still holds: tell it to stop using them (not in an
            // Advertise, where they are mere hints).
            if ctx.r.msg_type() != msg::SOLICIT {
                for a in ia.addresses().filter(|a| !ours(a.addr)) {
                    if !w.put_iaaddr(a.addr, 0, 0) {
                        break;
                    }
                }
            }
            let (t1, t2) = renewal_times(min_time, view.configured_t1_t2());
            w.set_t1_t2(pos, t1, t2);
        } else if mode == IaMode::Offer {
            w.put_status(status::NO_ADDRS_AVAIL, "address unavailable");
        } else {
            w.put_status(status::NO_BINDING, "no binding found");
        }
        w.end(pos);
    }
    lease
}

/// Configured options of the client's class filtered by its ORO, then dnsmasq's defaults: our
/// address as DNS server unless an option 23 went out, `information-refresh-time` for
/// Information-Request, and the client FQDN when the client sent one and the port has a name.
fn write_options(
    ctx: &Ctx<'_, '_>,
    w: &mut Writer<'_>,
    client: Option<&Client6>,
    lease: &Lease<'_>,
    refresh: bool,
) {
    let view = ctx.view;
    let ipxe = usize::from(ctx.ipxe6);
    // The option set: the port's on the subnet of its first address, else the port's on its
    // first subnet of this link, else that subnet's own.
    let subnet = match lease.first {
        Some(b) => Some(b.subnet),
        None => client
            .and_then(|c| {
                view.subnets_of(c)
                    .iter()
                    .find(|s| ctx.in_scope(s.subnet))
                    .map(|s| s.subnet)
            })
            .or_else(|| (0..view.subnets().len() as u32).find(|&s| ctx.in_scope(s))),
    };
    let Some(subnet) = subnet else { return };
    let set = client
        .and_then(|c| view.subnets_of(c).iter().find(|s| s.subnet == subnet))
        .map_or(view.subnet(subnet).set, |cs| cs.sets[ipxe]);
    let mut sent_dns = false;
    let mut sent_refresh = false;
    for e in view.entries(view.set(set)) {
        if ctx.r.wants(e.code) {
            w.put(e.code, view.data(e));
            sent_dns |= e.code == opt::DNS_SERVERS;
            sent_refresh |= e.code == opt::REFRESH_TIME;
        }
    }
    if !sent_dns {
        let mut dns = lease.dns;
        if dns.iter().all(Option::is_none) {
            dns[0] = view.subnet(subnet).server_ip.or(view.fallback_ip());
        }
        let n = dns.iter().flatten().count();
        if n > 0 {
            if let Some(pos) = w.begin_sized(opt::DNS_SERVERS, 16 * n) {
                for a in dns.iter().flatten() {
                    w.out.extend_from_slice(&a.octets());
                }
                w.end(pos);
            }
        }
    }
    if refresh && !sent_refresh {
        w.put(opt::REFRESH_TIME, &view.refresh_secs().to_be_bytes());
    }
    let named = lease.first.or_else(|| {
        client.and_then(|c| view.bindings_of(c).iter().find(|b| ctx.in_scope(b.subnet)))
    });
    if let (Some(fqdn), Some(host)) = (ctx.r.fqdn(), named.and_then(|b| view.hostname(b))) {
        write_fqdn(w, fqdn[0], host, view.domain());
    }
}

/// RFC 4704 answer as dnsmasq builds it: the server does the updates (S and O set unless the
/// client asked to do them), N cleared; the name is the host's labels plus the domain.
fn write_fqdn(w: &mut Writer<'_>, client_flags: u8, host: &[u8], domain: Option<&[u8]>) {
    let mut flags = client_flags & 0x07;
    if flags & 0x01 == 0 {
        flags |= 0x03;
    }
    flags &= !0x04;
    let len = 1 + 1 + host.len() + domain.map_or(0, |d| d.len() + 2);
    let Some(pos) = w.begin_sized(opt::CLIENT_FQDN, len) else {
        return;
    };
    w.out.push(flags);
    put_labels(w.out, host);
    if let Some(d) = domain {
        put_labels(w.out, d);
        w.out.push(0);
    }
    w.end(pos);
}

/// Length-prefixed labels (RFC 1035) without the root label. Names in the view are validated
/// (labels of 1..=63 bytes).
fn put_labels(out: &mut Vec<u8>, name: &[u8]) {
    for label in name.split(|&b| b == b'.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label);
    }
}

/// Bounded DHCPv6 option writer over the reply buffer: never grows it past [`MAX_REPLY`], so a
/// buffer with that capacity is never reallocated. Every write either fits whole or is skipped.
struct Writer<'o> {
    out: &'o mut Vec<u8>,
}

impl<'o> Writer<'o> {
    fn new(out: &'o mut Vec<u8>) -> Self {
        Writer { out }
    }

    fn room(&self, len: usize) -> bool {
        self.out.len() + len <= MAX_REPLY
    }

    fn put(&mut self, code: u16, data: &[u8]) -> bool {
        if data.len() > usize::from(u16::MAX) || !self.room(4 + data.len()) {
            return false;
        }
        self.out.extend_from_slice(&code.to_be_bytes());
        self.out
            .extend_from_slice(&(data.len() as u16).to_be_bytes());
        self.out.extend_from_slice(data);
        true
    }

    /// Opens an option whose length is patched by [`Writer::end`].
    fn begin(&mut self, code: u16) -> Option<usize> {
        self.begin_sized(code, 0)
    }

    /// Opens an option if `body` more bytes will fit after its header.
    fn begin_sized(&mut self, code: u16, body: usize) -> Option<usize> {
        if !self.room(4 + body) {
            return None;
        }
        let pos = self.out.len();
        self.out.extend_from_slice(&code.to_be_bytes());
        self.out.extend_from_slice(&[0, 0]);
        Some(pos)
    }

    fn end(&mut self, pos: usize) {
        let len = self
            .out
            .len()
            .saturating_sub(pos + 4)
            .min(usize::from(u16::MAX)) as u16;
        if let Some(field) = self.out.get_mut(pos + 2..pos + 4) {
            field.copy_from_slice(&len.to_be_bytes());
        }
    }

    /// IA_NA (IAID, T1 = T2 = 0 until set) or IA_TA (IAID), with room for a status after it.
    fn begin_ia(&mut self, ia: &Ia<'_>) -> Option<usize> {
        let fixed = match ia.kind {
            IaKind::Na => 12,
            IaKind::Ta => 4,
        };
        let pos = self.begin_sized(ia.kind.code(), fixed + 32)?;
        self.out.extend_from_slice(&ia.iaid);
        if ia.kind == IaKind::Na {
            self.out.extend_from_slice(&[0; 8]);
        }
        Some(pos)
    }

    fn set_t1_t2(&mut self, ia_pos: usize, t1: u32, t2: u32) {
        if let Some(f) = self.out.get_mut(ia_pos + 8..ia_pos + 16) {
            f[..4].copy_from_slice(&t1.to_be_bytes());
            f[4..].copy_from_slice(&t2.to_be_bytes());
        }
    }

    fn put_iaaddr(&mut self, addr: Ipv6Addr, preferred: u32, valid: u32) -> bool {
        let mut data = [0u8; 24];
        data[..16].copy_from_slice(&addr.octets());
        data[16..20].copy_from_slice(&preferred.to_be_bytes());
        data[20..].copy_from_slice(&valid.to_be_bytes());
        self.put(opt::IAADDR, &data)
    }

    fn put_status(&mut self, code: u16, text: &str) {
        let Some(pos) = self.begin_sized(opt::STATUS_CODE, 2 + text.len()) else {
            return;
        };
        self.out.extend_from_slice(&code.to_be_bytes());
        self.out.extend_from_slice(text.as_bytes());
        self.end(pos);
    }
}
