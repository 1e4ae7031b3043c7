//! Hostile packets against the real agent (issue 18, the packet side): datagrams longer than an
//! Ethernet frame, options carried in `file`/`sname`, client identities claimed inside the
//! message (a DUID-LL naming another port's MAC, relayed messages sent by a VM), and a flood of
//! DHCPRELEASEs that used to write one log line each.
//!
//! The agent runs in standalone mode; the packets are written by hand and sent from client
//! namespaces on the network's bridge through ordinary UDP sockets (the kernel fragments the
//! long ones, as it would for any sender). Every wait is bounded; "no answer" is only asserted
//! after the same server has answered a control request, so a slow start cannot pass for it.
//! Needs root and IPv6: skips without root (one line for the suite); as root, fails (never
//! skips) without IPv6.

mod common;
#[path = "common/v6.rs"]
mod v6;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::*;
use neutron_dhcp::dhcp::loglimit;
use socket2::{Domain, Protocol, Socket, Type};
use v6::*;

/// How long a request is retried while the agent may still be starting (DHCPv6 replies wait
/// for duplicate address detection on the agent's link-local address).
const ANSWER_WITHIN: Duration = Duration::from_secs(20);
/// How long a request that must not be answered is watched (sent three times).
const SILENCE: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------------------------------------
// Namespaces and sockets

/// Runs `f` on a thread inside the network namespace `ns`; sockets it opens stay in `ns`.
fn in_ns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = std::fs::File::open(format!("/run/netns/{ns}")).expect("open netns");
            // SAFETY: a valid namespace fd; setns only affects this thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("namespace thread")
    })
}

fn udp_in(ns: &str, ifname: &str, bind: SocketAddr) -> (UdpSocket, u32) {
    in_ns(ns, || {
        let domain = match bind {
            SocketAddr::V4(_) => Domain::IPV4,
            SocketAddr::V6(_) => Domain::IPV6,
        };
        let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
        s.set_reuse_address(true).unwrap();
        if bind.is_ipv4() {
            s.set_broadcast(true).unwrap();
        } else {
            s.set_only_v6(true).unwrap();
        }
        s.bind_device(Some(ifname.as_bytes()))
            .expect("bind to device");
        s.bind(&bind.into()).expect("bind");
        s.set_read_timeout(Some(Duration::from_millis(250)))
            .unwrap();
        let name = std::ffi::CString::new(ifname).unwrap();
        // SAFETY: a NUL-terminated name.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        assert_ne!(index, 0, "{ifname} in {ns}");
        (s.into(), index)
    })
}

fn mac_bytes(mac: &str) -> [u8; 6] {
    let v: Vec<u8> = mac
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).expect("hex"))
        .collect();
    v.try_into().expect("six bytes")
}

/// Sends `req` to `to` until a datagram that `answers` accepts comes back, for at most `within`
/// (one send per second). Returns it, or `None`.
fn exchange(
    sock: &UdpSocket,
    to: SocketAddr,
    req: &[u8],
    answers: impl Fn(&[u8]) -> bool,
    within: Duration,
) -> Option<Vec<u8>> {
    let deadline = Instant::now() + within;
    let mut buf = vec![0u8; 65536];
    while Instant::now() < deadline {
        sock.send_to(req, to).expect("send");
        let resend = Instant::now() + Duration::from_secs(1);
        while Instant::now() < resend.min(deadline) {
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                if answers(&buf[..n]) {
                    return Some(buf[..n].to_vec());
                }
            }
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// DHCPv4 messages

const BROADCAST_FLAG: u16 = 0x8000;

/// A BOOTREQUEST: header, cookie, `options` (ending with END), `file` and `sname` as given.
fn dhcp4(xid: u32, mac: [u8; 6], giaddr: Ipv4Addr, flags: u16, options: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 236];
    b[0] = 1;
    b[1] = 1;
    b[2] = 6;
    b[3] = u8::from(!giaddr.is_unspecified());
    b[4..8].copy_from_slice(&xid.to_be_bytes());
    b[10..12].copy_from_slice(&flags.to_be_bytes());
    b[24..28].copy_from_slice(&giaddr.octets());
    b[28..34].copy_from_slice(&mac);
    b.extend_from_slice(&[99, 130, 83, 99]);
    b.extend_from_slice(options);
    b
}

/// Whether `reply` is a BOOTREPLY for `xid` of message type `kind`, offering `yiaddr`.
fn is_reply4(reply: &[u8], xid: u32, kind: u8, yiaddr: Ipv4Addr) -> bool {
    use dhcproto::Decodable;
    let Ok(m) = dhcproto::v4::Message::from_bytes(reply) else {
        return false;
    };
    m.opcode() == dhcproto::v4::Opcode::BootReply
        && m.xid() == xid
        && m.yiaddr() == yiaddr
        && m.opts().msg_type().map(u8::from) == Some(kind)
}

const OFFER: u8 = 2;

/// A DISCOVER of 1,844 bytes whose option 53 starts past byte 1,536 (after six 250-byte
/// site-specific options), as the hostile run sent.
fn long_discover(xid: u32, mac: [u8; 6]) -> Vec<u8> {
    let mut opts = Vec::new();
    for _ in 0..6 {
        opts.extend_from_slice(&[224, 250]);
        opts.extend(std::iter::repeat_n(b'x', 250));
    }
    opts.extend_from_slice(&[53, 1, 1, 255]);
    let mut b = dhcp4(xid, mac, Ipv4Addr::UNSPECIFIED, BROADCAST_FLAG, &opts);
    assert!(b.iter().skip(1536).any(|&x| x == 53) && b[..1536].windows(3).all(|w| w != [53, 1, 1]));
    b.resize(1844, 0);
    b
}

/// A DISCOVER whose options are in `file` (message type) and `sname` (parameter list), named
/// by option 52 = 3 in the options field.
fn overloaded_discover(xid: u32, mac: [u8; 6]) -> Vec<u8> {
    let mut b = dhcp4(
        xid,
        mac,
        Ipv4Addr::UNSPECIFIED,
        BROADCAST_FLAG,
        &[52, 1, 3, 255],
    );
    b[108..112].copy_from_slice(&[53, 1, 1, 255]);
    b[44..49].copy_from_slice(&[55, 2, 1, 3, 255]);
    b
}

// ---------------------------------------------------------------------------------------------
// DHCPv6 messages

fn tlv6(code: u16, data: &[u8]) -> Vec<u8> {
    let mut v = code.to_be_bytes().to_vec();
    v.extend_from_slice(&(data.len() as u16).to_be_bytes());
    v.extend_from_slice(data);
    v
}

fn duid_ll(mac: [u8; 6]) -> Vec<u8> {
    [&[0u8, 3, 0, 1][..], &mac[..]].concat()
}

/// A Solicit (xid 3 bytes) with a client identifier, elapsed time, one IA_NA and `extra`.
fn solicit(xid: [u8; 3], duid: &[u8], extra: &[u8]) -> Vec<u8> {
    let mut m = vec![1, xid[0], xid[1], xid[2]];
    m.extend(tlv6(1, duid));
    m.extend(tlv6(8, &[0, 0]));
    m.extend(tlv6(3, &[0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0]));
    m.extend_from_slice(extra);
    m
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// An Advertise for `xid` that leases `addr`.
fn advertises(reply: &[u8], xid: [u8; 3], addr: Ipv6Addr) -> bool {
    reply.len() > 4 && reply[0] == 2 && reply[1..4] == xid && contains(reply, &addr.octets())
}

/// A Relay-Forward from a relay on `link` for a client at `peer` whose MAC the relay reports
/// in option 79 (RFC 6939).
fn relay_forward(link: Ipv6Addr, peer: Ipv6Addr, client_mac: [u8; 6], inner: &[u8]) -> Vec<u8> {
    let mut m = vec![12, 0];
    m.extend_from_slice(&link.octets());
    m.extend_from_slice(&peer.octets());
    m.extend(tlv6(79, &[&[0u8, 1][..], &client_mac[..]].concat()));
    m.extend(tlv6(9, inner));
    m
}

/// A Relay-Reply around an Advertise of `addr`.
fn relay_reply_advertising(reply: &[u8], addr: Ipv6Addr) -> bool {
    reply.first() == Some(&13) && contains(reply, &addr.octets())
}

fn all_dhcp_agents(scope: u32) -> SocketAddr {
    SocketAddr::V6(SocketAddrV6::new(
        "ff02::1:2".parse().unwrap(),
        547,
        0,
        scope,
    ))
}

// ---------------------------------------------------------------------------------------------
// Tests

/// One agent serving one network with VM ports A and B (both families when `v4` is given),
/// on a bridge of the test's own.
struct Served {
    net: Net6,
    a: Port6,
    b: Port6,
    agent: Agent,
    _bridge: LinkGuard,
}

fn serve(prefix: &str, v4: Option<&str>) -> Served {
    require_v6_env();
    let mut net = Net6::new(prefix, Some("dhcpv6-stateful"), v4);
    let a = net.add_port(Port6::vm(&[net.addr(0x11)], net.v4_addr(11)));
    let b = net.add_port(Port6::vm(&[net.addr(0x12)], net.v4_addr(12)));
    let bridge = LinkGuard::bridge(&net.bridge_name());
    let agent = Agent::start(&test_ini(), &networks_json6(&[&net]));
    agent.wait_serving(&net.id);
    Served {
        net,
        a,
        b,
        agent,
        _bridge: bridge,
    }
}

/// A DHCPv4 client namespace for `mac` with `addr`, its link MTU below the agent's so that
/// long datagrams go out as IP fragments the agent's device takes; a socket on `port`.
fn client4(s: &Served, mac: &str, addr: Ipv4Addr, port: u16) -> (ClientNs, UdpSocket) {
    let c = ClientNs::new(&s.net.bridge_name(), mac);
    ip(&format!("-n {} link set dev {} mtu 1400", c.ns, c.ifname));
    ip(&format!("-n {} addr add {addr}/24 dev {}", c.ns, c.ifname));
    let bind = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port));
    let (sock, _) = udp_in(&c.ns, &c.ifname, bind);
    (c, sock)
}

/// A DHCPv6 client (or relay, `port` 547) namespace for `mac`; a socket on `port` and the
/// interface index to send to `ff02::1:2` on.
fn client6(s: &Served, mac: &str, port: u16) -> (ClientNs6, UdpSocket, u32) {
    let c = ClientNs6::new(&s.net.bridge_name(), mac);
    ip(&format!("-n {} link set dev {} mtu 1280", c.ns, c.ifname));
    let bind = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0));
    let (sock, scope) = udp_in(&c.ns, &c.ifname, bind);
    (c, sock, scope)
}

const EVERYONE: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::BROADCAST, 67));

fn xid_is(reply: &[u8], xid: u32) -> bool {
    reply.get(4..8) == Some(&xid.to_be_bytes()[..])
}

/// Issue 18 item 7 (DHCPv4): a valid 1,844-byte DISCOVER whose option 53 lies past byte
/// 1,536 (sent in IP fragments) is answered, not cut short and dropped.
#[test]
fn dhcpv4_discover_longer_than_a_frame_is_answered() {
    root_or_skip!();
    let s = serve("fd00:218:41::", Some("10.218.41.0"));
    let (_c, sock) = client4(&s, &s.a.mac, Ipv4Addr::new(10, 218, 41, 200), 68);
    let a_ip = s.a.v4.unwrap();
    let long = long_discover(0x1844, mac_bytes(&s.a.mac));
    assert_eq!(long.len(), 1844);
    let offer = exchange(
        &sock,
        EVERYONE,
        &long,
        |r| is_reply4(r, 0x1844, OFFER, a_ip),
        ANSWER_WITHIN,
    );
    assert!(
        offer.is_some(),
        "1,844-byte DISCOVER not answered\n{}",
        s.agent.log_text()
    );
    s.agent.stop();
}

/// Issue 18 item 8: option 53 carried in `file` (with the parameter list in `sname`), as
/// option 52 says, is read (RFC 2132 §9.3).
#[test]
fn dhcpv4_options_in_file_and_sname_are_read() {
    root_or_skip!();
    let s = serve("fd00:218:42::", Some("10.218.42.0"));
    let (_c, sock) = client4(&s, &s.a.mac, Ipv4Addr::new(10, 218, 42, 200), 68);
    let a_ip = s.a.v4.unwrap();
    let over = overloaded_discover(0x5200, mac_bytes(&s.a.mac));
    let offer = exchange(
        &sock,
        EVERYONE,
        &over,
        |r| is_reply4(r, 0x5200, OFFER, a_ip),
        ANSWER_WITHIN,
    );
    assert!(
        offer.is_some(),
        "DISCOVER with option 53 in `file` not answered\n{}",
        s.agent.log_text()
    );
    s.agent.stop();
}

/// Issue 18 item 11 (DHCPv4): a relayed DISCOVER (giaddr set, chaddr port A's MAC) is answered
/// through a relay whose MAC is no port's, and not when VM port B sends it (for A's MAC or
/// its own).
#[test]
fn dhcpv4_relayed_requests_from_a_vm_port_are_not_answered() {
    root_or_skip!();
    let s = serve("fd00:218:43::", Some("10.218.43.0"));
    let (a_ip, mac_a, mac_b) = (s.a.v4.unwrap(), mac_bytes(&s.a.mac), mac_bytes(&s.b.mac));
    let server = SocketAddr::V4(SocketAddrV4::new(s.net.v4_addr(2).unwrap(), 67));
    let giaddr = Ipv4Addr::new(10, 218, 43, 250);
    let (_relay, rsock) = client4(&s, &random_mac(), giaddr, 67);
    let relayed = dhcp4(0x6701, mac_a, giaddr, 0, &[53, 1, 1, 255]);
    let offer = exchange(
        &rsock,
        server,
        &relayed,
        |r| is_reply4(r, 0x6701, OFFER, a_ip),
        ANSWER_WITHIN,
    );
    assert!(
        offer.is_some(),
        "relayed DISCOVER from a non-port MAC not answered\n{}",
        s.agent.log_text()
    );

    let giaddr = Ipv4Addr::new(10, 218, 43, 251);
    let (_vm, vsock) = client4(&s, &s.b.mac, giaddr, 67);
    for (xid, chaddr) in [(0x6702, mac_a), (0x6703, mac_b)] {
        let spoofed = dhcp4(xid, chaddr, giaddr, 0, &[53, 1, 1, 255]);
        let answer = exchange(&vsock, server, &spoofed, |r| xid_is(r, xid), SILENCE);
        assert!(
            answer.is_none(),
            "relayed DISCOVER from VM port {} answered",
            s.b.mac
        );
    }
    s.agent.stop();
}

/// Issue 18 item 7 (DHCPv6): a 1,844-byte Solicit (IPv6 fragments) is answered.
#[test]
fn dhcpv6_solicit_longer_than_a_frame_is_answered() {
    root_or_skip!();
    let s = serve("fd00:218:61::", None);
    let (_c, sock, scope) = client6(&s, &s.a.mac, 546);
    let padding = tlv6(0x7777, &[0x5a; 1800]);
    let xid = [0x18, 0x44, 0x01];
    let long = solicit(xid, &duid_ll(mac_bytes(&s.a.mac)), &padding);
    assert_eq!(long.len(), 1844);
    let adv = exchange(
        &sock,
        all_dhcp_agents(scope),
        &long,
        |r| advertises(r, xid, s.a.v6[0]),
        ANSWER_WITHIN,
    );
    assert!(
        adv.is_some(),
        "1,844-byte Solicit not answered\n{}",
        s.agent.log_text()
    );
    s.agent.stop();
}

/// Issue 18 item 11 (DHCPv6): a host with an unknown MAC whose DUID-LL names port A's MAC gets
/// nothing; port A itself, with the same message, gets its address.
#[test]
fn dhcpv6_duid_naming_another_port_is_not_answered() {
    root_or_skip!();
    let s = serve("fd00:218:62::", None);
    let duid = duid_ll(mac_bytes(&s.a.mac));
    let (_a, sock, scope) = client6(&s, &s.a.mac, 546);
    let xid = [0xa0, 0x0a, 0x01];
    let adv = exchange(
        &sock,
        all_dhcp_agents(scope),
        &solicit(xid, &duid, &[]),
        |r| advertises(r, xid, s.a.v6[0]),
        ANSWER_WITHIN,
    );
    assert!(
        adv.is_some(),
        "port A's own Solicit not answered\n{}",
        s.agent.log_text()
    );
    let (_x, ssock, sscope) = client6(&s, &random_mac(), 546);
    let xid = [0xd0, 0x1d, 0x01];
    let adv = exchange(
        &ssock,
        all_dhcp_agents(sscope),
        &solicit(xid, &duid, &[]),
        |r| r.get(1..4) == Some(&xid[..]),
        SILENCE,
    );
    assert!(
        adv.is_none(),
        "a DUID-LL naming {} won from an unknown MAC",
        s.a.mac
    );
    s.agent.stop();
}

/// Issue 18 item 11 (DHCPv6): a Relay-Forward naming port A's MAC in option 79 (the client
/// itself known by a DUID-EN only) is answered from a relay whose MAC is no port's, and not
/// when VM port B sends it.
#[test]
fn dhcpv6_relay_forward_from_a_vm_port_is_not_answered() {
    root_or_skip!();
    let s = serve("fd00:218:63::", None);
    let inner = solicit([0x79, 0, 1], &[0, 2, 0, 0, 0x7f, 0xff, 1, 2, 3, 4], &[]);
    let peer = "fe80::abcd".parse().unwrap();
    let fwd = relay_forward(s.net.addr(0x250), peer, mac_bytes(&s.a.mac), &inner);
    let (_relay, rsock, rscope) = client6(&s, &random_mac(), 547);
    let rep = exchange(
        &rsock,
        all_dhcp_agents(rscope),
        &fwd,
        |r| relay_reply_advertising(r, s.a.v6[0]),
        ANSWER_WITHIN,
    );
    assert!(
        rep.is_some(),
        "Relay-Forward from a non-port MAC not answered\n{}",
        s.agent.log_text()
    );
    let (_vm, vsock, vscope) = client6(&s, &s.b.mac, 547);
    let rep = exchange(
        &vsock,
        all_dhcp_agents(vscope),
        &fwd,
        |r| r.first() == Some(&13),
        SILENCE,
    );
    assert!(
        rep.is_none(),
        "Relay-Forward from VM port {} answered",
        s.b.mac
    );
    s.agent.stop();
}

/// Issue 18 item 10: 20,000 DHCPRELEASEs from one client write at most
/// [`loglimit::BURST`] lines per window; every other one is counted in a summary line (which
/// comes when the window ends, though nothing else arrives), and lines written plus lines
/// counted are exactly the RELEASEs the agent received (its stop line's `ignored`).
#[test]
fn a_release_flood_writes_a_bounded_number_of_lines() {
    root_or_skip!();
    let (gw, dhcp) = (Ipv4Addr::new(10, 218, 10, 1), Ipv4Addr::new(10, 218, 10, 2));
    let mut net = NetSpec::new("10.218.10.0/24", Some(gw), dhcp);
    let port = net.add_port(PortSpec::vm(Ipv4Addr::new(10, 218, 10, 11)));
    let agent = Agent::start_serving(&test_ini(), &[&net]);
    let client = ClientNs::new(&net.bridge_name(), &port.mac);
    ip(&format!(
        "-n {} addr add {}/24 dev {}",
        client.ns, port.ip, client.ifname
    ));
    let bind = SocketAddr::V4(SocketAddrV4::new(port.ip, 68));
    let (sock, _) = udp_in(&client.ns, &client.ifname, bind);
    let server = SocketAddr::V4(SocketAddrV4::new(dhcp, 67));
    let mut options = vec![53, 1, 7, 54, 4];
    options.extend_from_slice(&dhcp.octets());
    options.push(255);
    let mut release = dhcp4(
        0x7e1e,
        mac_bytes(&port.mac),
        Ipv4Addr::UNSPECIFIED,
        0,
        &options,
    );
    release[12..16].copy_from_slice(&port.ip.octets());

    let mark = agent.log_mark();
    let sent = (0..20_000)
        .filter(|_| sock.send_to(&release, server).is_ok())
        .count();
    assert!(sent > 19_000, "only {sent} RELEASEs went out");
    agent
        .wait_for_line_since(mark, &["not written"], loglimit::INTERVAL * 4)
        .unwrap_or_else(|| panic!("no summary line after the flood\n{}", agent.log_text()));
    let log = agent.stop();
    let written = log.lines().filter(|l| l.contains("DHCPRELEASE")).count() as u64;
    let summaries: Vec<u64> = log
        .lines()
        .filter(|l| l.contains("not written"))
        .map(|l| {
            l.split("suppressed=")
                .nth(1)
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no count in: {l}"))
        })
        .collect();
    let held: u64 = summaries.iter().sum();
    let stop = log
        .lines()
        .find(|l| l.contains("stopped network") && l.contains(&net.id))
        .unwrap_or_else(|| panic!("no stop line\n{log}"));
    let ignored: u64 = stop
        .split("DHCPv4 ")
        .nth(1)
        .and_then(|v4| {
            v4.split(", ")
                .find_map(|kv| kv.strip_prefix("ignored ")?.parse().ok())
        })
        .unwrap_or_else(|| panic!("no DHCPv4 ignored count in: {stop}"));
    note(&format!(
        "release flood: {sent} sent, {ignored} received, {written} lines written, \
         {held} counted in {} summaries",
        summaries.len()
    ));
    assert!(ignored > 1000, "the flood hardly arrived: {stop}");
    assert_eq!(
        written + held,
        ignored,
        "every RELEASE is written or counted"
    );
    // A window that held lines back wrote BURST; at most one more (the last) did not.
    assert!(
        written <= u64::from(loglimit::BURST) * (summaries.len() as u64 + 1),
        "{written} lines for {} summaries",
        summaries.len()
    );
}
