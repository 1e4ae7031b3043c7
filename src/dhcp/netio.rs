//! Sockets of one served namespace, and the IPv4/UDP framing of replies sent at layer 2.
//!
//! A DHCP client without an address (dhclient never sets the broadcast flag) can only receive a
//! unicast reply if it reaches its MAC directly. dnsmasq injects an ARP entry with an extra
//! ioctl per reply; we instead send the finished IPv4/UDP datagram through an `AF_PACKET`
//! socket to the client's MAC: one syscall, no ARP-table side effects, and the source address is
//! exactly the server-id of the subnet the client is on (the kernel would pick the device's
//! primary address). Broadcast replies use the same path with the broadcast MAC. Relayed replies
//! go through the UDP socket to the relay, as any router-crossing datagram must.
//!
//! DHCPv6 needs no layer-2 sending: every client has a link-local address, so replies go through
//! a UDP socket on `[::]:547` (joined to `ff02::1:2` on the DHCP interface) back to the client's
//! source address, and the kernel picks our link-local address as source. What DHCPv6 lacks is
//! the client's MAC: a Solicit names the client only by DUID, and Neutron reserves addresses by
//! MAC. dnsmasq asks the neighbour table (soliciting the client first, since a multicast request
//! creates no entry). We instead listen with a filtered `AF_PACKET` socket that copies the
//! headers of each DHCPv6 datagram arriving on the interface, so the source MAC of the very frame
//! being answered is known without any wait or extra traffic ([`sniff`]; the same socket
//! sends the DHCPv4 replies). The frame's MAC is what Neutron's port security vouches for, so
//! it, not a MAC written inside the message, says who a client is; the same listener also
//! copies the headers of relayed DHCPv4 requests (`giaddr` set), whose relay must not be a VM.
//!
//! All sockets are created by the caller on a thread that has entered the namespace; this module
//! only configures them.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use socket2::{Domain, Protocol, SockFilter, Socket, Type};

pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;
const IPV4_HEADER: usize = 20;
const UDP_HEADER: usize = 8;
/// Room for the IPv4 and UDP headers in front of the DHCP payload.
pub const FRAME_OVERHEAD: usize = IPV4_HEADER + UDP_HEADER;

/// Where a DHCPv4 reply goes, and so by which socket: UDP through the kernel for relays and
/// addressed clients, a finished IPv4 frame at layer 2 ([`build_udp4_frame`], [`send_l2`])
/// for clients that have no address yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    Udp(SocketAddrV4),
    Frame { mac: [u8; 6], ip: Ipv4Addr },
}

impl From<crate::dhcp::v4::Delivery> for Destination {
    fn from(d: crate::dhcp::v4::Delivery) -> Self {
        use crate::dhcp::v4::Delivery;
        match d {
            Delivery::Relay { giaddr } => Destination::Udp(SocketAddrV4::new(giaddr, SERVER_PORT)),
            Delivery::Ciaddr { ip } => Destination::Udp(SocketAddrV4::new(ip, CLIENT_PORT)),
            Delivery::Broadcast => Destination::Frame {
                mac: [0xff; 6],
                ip: Ipv4Addr::BROADCAST,
            },
            Delivery::Unicast { mac, ip } => Destination::Frame { mac, ip },
        }
    }
}

/// UDP socket on `0.0.0.0:67` bound to the DHCP interface. Must be called inside the namespace.
pub fn bind_udp4(ifname: &str) -> io::Result<std::net::UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_broadcast(true)?;
    // Several namespaces' servers live in one process; binding to the device keeps a socket from
    // ever seeing another interface's packets if the namespace later gains more devices.
    s.bind_device(Some(ifname.as_bytes()))?;
    s.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, SERVER_PORT).into())?;
    s.set_nonblocking(true)?;
    enlarge_recv_buffer(&s);
    Ok(s.into())
}

/// Index of the device called `ifname` in the calling thread's namespace.
pub fn ifindex(ifname: &str) -> io::Result<u32> {
    let name = std::ffi::CString::new(ifname)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "device name contains NUL"))?;
    // SAFETY: `name` is a valid NUL-terminated string.
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => Err(io::Error::last_os_error()),
        i => Ok(i),
    }
}

/// Receive buffer for a boot storm: every drop measured under load (BENCHMARKS.md) was a UDP
/// receive-buffer overflow with the default ~208 KiB. 4 MiB holds ~10k requests.
const RECV_BUFFER: usize = 4 << 20;

/// Raises the receive buffer past `net.core.rmem_max` when we may (root: `SO_RCVBUFFORCE`),
/// else as far as the sysctl allows. A smaller buffer only costs drops under load, so failure
/// is not an error.
fn enlarge_recv_buffer(s: &Socket) {
    let size = RECV_BUFFER as libc::c_int;
    // SAFETY: setsockopt reads exactly size_of::<c_int>() bytes from a live local.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(s),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        let _ = s.set_recv_buffer_size(RECV_BUFFER);
    }
}

/// DHCPv6 server port (RFC 8415 §7.2).
pub const SERVER_PORT6: u16 = 547;
/// `All_DHCP_Relay_Agents_and_Servers` (RFC 8415 §7.1).
pub const ALL_DHCP_AGENTS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);

/// UDP socket on `[::]:547` bound to the DHCP interface and joined to `ff02::1:2` on it. Must be
/// called inside the namespace; fails when IPv6 is disabled there or on the interface.
pub fn bind_udp6(ifname: &str, ifindex: u32) -> io::Result<std::net::UdpSocket> {
    let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_only_v6(true)?;
    s.set_reuse_address(true)?;
    s.bind_device(Some(ifname.as_bytes()))?;
    s.bind(&SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, SERVER_PORT6, 0, 0).into())?;
    s.join_multicast_v6(&ALL_DHCP_AGENTS, ifindex)?;
    s.set_multicast_loop_v6(false)?;
    s.set_nonblocking(true)?;
    enlarge_recv_buffer(&s);
    Ok(s.into())
}

/// `ld [SKF_AD_OFF + SKF_AD_PROTOCOL]`: the frame's EtherType, in host order.
const LD_PROTOCOL: u32 = (libc::SKF_AD_OFF + libc::SKF_AD_PROTOCOL) as u32;

/// Classic BPF over a frame's network header (an `AF_PACKET`/`SOCK_DGRAM` socket sees packets
/// from there), keeping the headers of:
/// - DHCPv6 datagrams to port 547: UDP right after the IPv6 header, or after a fragment header
///   (the first fragment of a long message);
/// - relayed DHCPv4 requests: UDP to port 67 with a non-zero `giaddr`, first fragment only;
///   plain requests are left alone, so the DHCPv4 hot path queues nothing here.
///
/// Other extension headers are not followed; DHCPv6 clients and relays do not send them.
const SNIFF_FILTER: [SockFilter; 27] = [
    SockFilter::new(0x20, 0, 0, LD_PROTOCOL), //  0 ld proto
    SockFilter::new(0x15, 0, 12, 0x86dd),     //  1 jeq IPv6, -, 14
    SockFilter::new(0x30, 0, 0, 6),           //  2 ldb [6]          next header
    SockFilter::new(0x15, 0, 3, 17),          //  3 jeq UDP, -, 7
    SockFilter::new(0x28, 0, 0, 42),          //  4 ldh [42]         UDP destination port
    SockFilter::new(0x15, 0, 19, 547),        //  5 jeq 547, -, drop
    SockFilter::new(0x06, 0, 0, 64),          //  6 ret #64
    SockFilter::new(0x15, 0, 17, 44),         //  7 jeq fragment header, -, drop
    SockFilter::new(0x30, 0, 0, 40),          //  8 ldb [40]         its next header
    SockFilter::new(0x15, 0, 15, 17),         //  9 jeq UDP, -, drop
    SockFilter::new(0x28, 0, 0, 42),          // 10 ldh [42]         fragment offset
    SockFilter::new(0x45, 13, 0, 0xfff8),     // 11 jset, drop (not the first fragment)
    SockFilter::new(0x28, 0, 0, 50),          // 12 ldh [50]         UDP destination port
    SockFilter::new(0x15, 12, 11, 547),       // 13 jeq 547, accept 64, drop
    SockFilter::new(0x15, 0, 10, 0x0800),     // 14 jeq IPv4, -, drop
    SockFilter::new(0x30, 0, 0, 9),           // 15 ldb [9]          protocol
    SockFilter::new(0x15, 0, 8, 17),          // 16 jeq UDP, -, drop
    SockFilter::new(0x28, 0, 0, 6),           // 17 ldh [6]          flags, fragment offset
    SockFilter::new(0x45, 6, 0, 0x1fff),      // 18 jset, drop (not the first fragment)
    SockFilter::new(0xb1, 0, 0, 0),           // 19 ldxb 4*([0]&0xf) header length
    SockFilter::new(0x48, 0, 0, 2),           // 20 ldh [x+2]        UDP destination port
    SockFilter::new(0x15, 0, 3, 67),          // 21 jeq 67, -, drop
    SockFilter::new(0x40, 0, 0, 32),          // 22 ld [x+32]        giaddr
    SockFilter::new(0x15, 1, 0, 0),           // 23 jeq 0, drop, -
    SockFilter::new(0x06, 0, 0, 128),         // 24 ret #128 (IPv4 options may be 40 bytes)
    SockFilter::new(0x06, 0, 0, 0),           // 25 drop
    SockFilter::new(0x06, 0, 0, 64),          // 26 ret #64
];

/// `PACKET_IGNORE_OUTGOING` (linux/if_packet.h; not in `libc`): the socket is not handed the
/// frames the namespace sends, so a listener costs the send path nothing.
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

/// Makes the namespace's [`packet_socket`] also receive the headers of the DHCPv6 datagrams and
/// relayed DHCPv4 requests that arrive on `ifindex`, to learn the MAC each was sent from (see
/// the module comment); sending through it is unaffected. One `AF_PACKET` socket per namespace
/// instead of two halves what closing them costs (each close waits for an RCU grace period in
/// the kernel). Read it with [`recv_sniffed`]. Must be called inside the namespace.
///
/// Bound to every protocol rather than to IPv6 alone, because the kernel hands a frame to such
/// listeners *before* the IP stack: a frame is queued here before its datagram reaches the UDP
/// socket, so the DHCP thread always finds it (a listener bound to one protocol is handed the
/// frame after the IP stack, and the thread could look before it arrived).
pub fn sniff(fd: &OwnedFd, ifindex: u32) -> io::Result<()> {
    // The socket was created with protocol 0: nothing is queued until the filter is in place
    // and the socket is bound to the device.
    let s = socket2::SockRef::from(fd);
    s.attach_filter(&SNIFF_FILTER)?;
    // As deep as the UDP sockets' queues: a frame dropped here is a request not answered.
    enlarge_recv_buffer(&s);
    let one: libc::c_int = 1;
    // SAFETY: setsockopt reads exactly size_of::<c_int>() bytes from a live local.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            PACKET_IGNORE_OUTGOING,
            (&one as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        // Kernels before 4.20: our own frames are then copied here too, and dropped when read
        // ([`recv_sniffed`] skips them); a cost on sends, not an error.
        tracing::debug!(
            error = %io::Error::last_os_error(),
            "PACKET_IGNORE_OUTGOING unavailable: the listener sees our own frames too"
        );
    }
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid starting value.
    let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    addr.sll_ifindex = ifindex as i32;
    // SAFETY: addr is valid for the length passed; the fd is open.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `PACKET_OUTGOING`: a copy of a frame we sent.
const PACKET_OUTGOING: u8 = 4;

/// One frame a [`sniff`] socket saw: who sent which datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sniffed {
    /// The IP source address (an IPv4 one mapped into IPv6).
    pub src: Ipv6Addr,
    /// The datagram's [`tag`].
    pub tag: [u8; 4],
    /// The frame's link-layer source address.
    pub mac: [u8; 6],
}

/// Four bytes that tell datagrams from one source apart: DHCPv6's message type and
/// transaction id (a Relay-Forward's hop count and link address), DHCPv4's `xid`. Empty
/// (zeros) for a datagram too short to have them.
pub fn tag(payload: &[u8], v4: bool) -> [u8; 4] {
    let at = if v4 { 4 } else { 0 };
    match payload.get(at..at + 4) {
        Some(&[a, b, c, d]) => [a, b, c, d],
        _ => [0; 4],
    }
}

/// Reads one queued frame from a [`sniff`] socket without blocking: `Ok(Some(_))` for a
/// datagram the filter keeps, received from an Ethernet neighbour, `Ok(None)` for anything
/// else, `Err(WouldBlock)` when the queue is empty.
pub fn recv_sniffed(fd: &OwnedFd) -> io::Result<Option<Sniffed>> {
    let mut buf = [0u8; 128];
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid starting value.
    let mut from: libc::sockaddr_ll = unsafe { mem::zeroed() };
    let mut from_len = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: buf and from are valid for the lengths passed; the fd is open.
    let n = unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
            (&mut from as *mut libc::sockaddr_ll).cast(),
            &mut from_len,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(parse_sniffed(&buf[..n as usize], &from))
}

/// Checks again what the filter checked (the filter is the kernel's business; this is ours).
fn parse_sniffed(pkt: &[u8], from: &libc::sockaddr_ll) -> Option<Sniffed> {
    if from.sll_pkttype == PACKET_OUTGOING || from.sll_halen != 6 {
        return None;
    }
    let u16_at = |at: usize| {
        pkt.get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    let (src, udp, v4) = match pkt.first()? >> 4 {
        6 => {
            let src: [u8; 16] = pkt.get(8..24)?.try_into().ok()?;
            let udp = match *pkt.get(6)? {
                17 => 40,
                // A fragment header: the first fragment of a UDP datagram.
                44 if *pkt.get(40)? == 17 && u16_at(42)? & 0xfff8 == 0 => 48,
                _ => return None,
            };
            (Ipv6Addr::from(src), udp, false)
        }
        4 => {
            let header = usize::from(pkt[0] & 0x0f) * 4;
            if header < 20 || *pkt.get(9)? != 17 || u16_at(6)? & 0x1fff != 0 {
                return None;
            }
            let src: [u8; 4] = pkt.get(12..16)?.try_into().ok()?;
            (Ipv4Addr::from(src).to_ipv6_mapped(), header, true)
        }
        _ => return None,
    };
    let port = if v4 { SERVER_PORT } else { SERVER_PORT6 };
    if u16_at(udp + 2)? != port {
        return None;
    }
    let payload = pkt.get(udp + 8..)?;
    if v4 && payload.get(24..28).is_none_or(|giaddr| giaddr == [0; 4]) {
        return None;
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&from.sll_addr[..6]);
    Some(Sniffed {
        src,
        tag: tag(payload, v4),
        mac,
    })
}

/// `AF_PACKET`/`SOCK_DGRAM` socket for sending: the kernel adds the Ethernet header. Protocol 0
/// means it receives nothing (until [`sniff`] binds it), so it costs nothing on the
/// receive path.
pub fn packet_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the returned fd is checked and owned immediately.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sends one IPv4 datagram (`frame`, starting at the IP header) to `dst_mac` on `ifindex`.
pub fn send_l2(fd: &OwnedFd, ifindex: u32, dst_mac: [u8; 6], frame: &[u8]) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid starting value.
    let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = (libc::ETH_P_IP as u16).to_be();
    addr.sll_ifindex = ifindex as i32;
    addr.sll_halen = 6;
    addr.sll_addr[..6].copy_from_slice(&dst_mac);
    // SAFETY: frame and addr are valid for the lengths passed; the fd is open.
    let rc = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&addr as *const libc::sockaddr_ll).cast(),
            mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Writes IPv4 + UDP headers (server port 67 → client port 68) for `payload` into `frame`,
/// followed by the payload. `frame` is cleared first; it does not reallocate when it already has
/// room for `FRAME_OVERHEAD + payload.len()` bytes.
pub fn build_udp4_frame(src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8], frame: &mut Vec<u8>) {
    let udp_len = (UDP_HEADER + payload.len()) as u16;
    let total_len = IPV4_HEADER as u16 + udp_len;
    frame.clear();
    frame.extend_from_slice(&[0x45, 0x00]);
    frame.extend_from_slice(&total_len.to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0]); // id, flags, fragment offset
    frame.extend_from_slice(&[64, 17, 0, 0]); // ttl, proto UDP, checksum placeholder
    frame.extend_from_slice(&src.octets());
    frame.extend_from_slice(&dst.octets());
    let ip_sum = checksum_finish(checksum_add(0, &frame[..IPV4_HEADER]));
    frame[10..12].copy_from_slice(&ip_sum.to_be_bytes());

    frame.extend_from_slice(&SERVER_PORT.to_be_bytes());
    frame.extend_from_slice(&CLIENT_PORT.to_be_bytes());
    frame.extend_from_slice(&udp_len.to_be_bytes());
    frame.extend_from_slice(&[0, 0]);
    frame.extend_from_slice(payload);
    let mut sum = checksum_add(0, &src.octets());
    sum = checksum_add(sum, &dst.octets());
    sum = checksum_add(sum, &[0, 17]);
    sum = checksum_add(sum, &udp_len.to_be_bytes());
    sum = checksum_add(sum, &frame[IPV4_HEADER..]);
    // RFC 768: a computed checksum of zero is transmitted as all ones.
    let udp_sum = match checksum_finish(sum) {
        0 => 0xffff,
        s => s,
    };
    frame[IPV4_HEADER + 6..IPV4_HEADER + 8].copy_from_slice(&udp_sum.to_be_bytes());
}

fn checksum_add(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

fn checksum_finish(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_go_to_the_relay_the_address_or_the_link() {
        use crate::dhcp::v4::Delivery;
        let ip = Ipv4Addr::new(10, 0, 0, 7);
        let mac = [0xfa, 0x16, 0x3e, 0, 0, 7];
        assert_eq!(
            Destination::from(Delivery::Relay { giaddr: ip }),
            Destination::Udp(SocketAddrV4::new(ip, 67))
        );
        assert_eq!(
            Destination::from(Delivery::Ciaddr { ip }),
            Destination::Udp(SocketAddrV4::new(ip, 68))
        );
        assert_eq!(
            Destination::from(Delivery::Broadcast),
            Destination::Frame {
                mac: [0xff; 6],
                ip: Ipv4Addr::BROADCAST
            }
        );
        assert_eq!(
            Destination::from(Delivery::Unicast { mac, ip }),
            Destination::Frame { mac, ip }
        );
    }

    #[test]
    fn receive_buffer_is_enlarged() {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        let before = s.recv_buffer_size().unwrap();
        enlarge_recv_buffer(&s);
        let after = s.recv_buffer_size().unwrap();
        assert!(after >= before, "{after} < {before}");
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            assert!(
                after >= RECV_BUFFER,
                "root may force {RECV_BUFFER}, got {after}"
            );
        }
    }

    #[test]
    fn frame_checksums_verify() {
        let payload = vec![7u8; 301];
        let mut frame = Vec::new();
        let src = Ipv4Addr::new(10, 0, 0, 2);
        let dst = Ipv4Addr::new(10, 0, 0, 5);
        build_udp4_frame(src, dst, &payload, &mut frame);
        assert_eq!(frame.len(), FRAME_OVERHEAD + payload.len());
        // A correct header sums to 0xffff (checksum_finish gives 0).
        assert_eq!(checksum_finish(checksum_add(0, &frame[..IPV4_HEADER])), 0);
        let udp_len = (frame.len() - IPV4_HEADER) as u16;
        let mut sum = checksum_add(0, &src.octets());
        sum = checksum_add(sum, &dst.octets());
        sum = checksum_add(sum, &[0, 17]);
        sum = checksum_add(sum, &udp_len.to_be_bytes());
        sum = checksum_add(sum, &frame[IPV4_HEADER..]);
        assert_eq!(checksum_finish(sum), 0);
        assert_eq!(&frame[IPV4_HEADER..IPV4_HEADER + 2], &67u16.to_be_bytes());
        assert_eq!(&frame[FRAME_OVERHEAD..], &payload[..]);
    }

    const MAC: [u8; 6] = [0xfa, 0x16, 0x3e, 1, 2, 3];

    fn sender() -> libc::sockaddr_ll {
        // SAFETY: sockaddr_ll is plain old data; all-zero is valid.
        let mut from: libc::sockaddr_ll = unsafe { mem::zeroed() };
        from.sll_halen = 6;
        from.sll_addr[..6].copy_from_slice(&MAC);
        from
    }

    #[test]
    fn sniffed_dhcpv6_headers() {
        let mut from = sender();
        let mut pkt = vec![0u8; 52];
        pkt[0] = 0x60;
        pkt[6] = 17;
        let src: Ipv6Addr = "fe80::1".parse().unwrap();
        pkt[8..24].copy_from_slice(&src.octets());
        pkt[42..44].copy_from_slice(&547u16.to_be_bytes());
        pkt[48..52].copy_from_slice(&[1, 0xa, 0xb, 0xc]);
        let seen = Sniffed {
            src,
            tag: [1, 0xa, 0xb, 0xc],
            mac: MAC,
        };
        assert_eq!(parse_sniffed(&pkt, &from), Some(seen));
        assert_eq!(
            parse_sniffed(&pkt[..48], &from).map(|s| s.tag),
            Some([0; 4]),
            "no payload: no tag"
        );
        assert_eq!(parse_sniffed(&pkt[..47], &from), None);
        from.sll_pkttype = PACKET_OUTGOING;
        assert_eq!(parse_sniffed(&pkt, &from), None);
        from.sll_pkttype = 0;
        pkt[43] = 0x22;
        assert_eq!(parse_sniffed(&pkt, &from), None);
        // The first fragment of a long message.
        let mut frag = pkt[..40].to_vec();
        frag[6] = 44;
        frag.extend_from_slice(&[17, 0, 0, 1, 0, 0, 0, 9]); // offset 0, more fragments
        frag.extend_from_slice(&[0x02, 0x22, 0x02, 0x23, 0, 0, 0, 0, 1, 0xa, 0xb, 0xc]);
        assert_eq!(parse_sniffed(&frag, &from), Some(seen));
        frag[43] = 0x08; // offset 1: a later fragment
        assert_eq!(parse_sniffed(&frag, &from), None);
    }

    #[test]
    fn sniffed_relayed_dhcpv4_headers() {
        let from = sender();
        let mut pkt = vec![0u8; 28 + 60];
        pkt[0] = 0x45;
        pkt[9] = 17;
        pkt[12..16].copy_from_slice(&[10, 0, 0, 250]);
        pkt[22..24].copy_from_slice(&67u16.to_be_bytes());
        pkt[28 + 4..28 + 8].copy_from_slice(&[9, 8, 7, 6]); // xid
        pkt[28 + 24..28 + 28].copy_from_slice(&[10, 0, 0, 250]); // giaddr
        let src = Ipv4Addr::new(10, 0, 0, 250).to_ipv6_mapped();
        assert_eq!(
            parse_sniffed(&pkt, &from),
            Some(Sniffed {
                src,
                tag: [9, 8, 7, 6],
                mac: MAC
            })
        );
        // With IP options, the UDP header is further on.
        let mut opts = pkt.clone();
        opts[0] = 0x46;
        opts.splice(20..20, [1, 1, 1, 0]);
        assert_eq!(parse_sniffed(&opts, &from).map(|s| s.src), Some(src));
        // Not relayed, not to the server port, or a later fragment: not ours.
        let mut plain = pkt.clone();
        plain[28 + 24..28 + 28].fill(0);
        assert_eq!(parse_sniffed(&plain, &from), None);
        let mut other = pkt.clone();
        other[23] = 68;
        assert_eq!(parse_sniffed(&other, &from), None);
        let mut later = pkt.clone();
        later[7] = 1;
        assert_eq!(parse_sniffed(&later, &from), None);
    }

    #[test]
    fn odd_length_checksum_pads_with_zero() {
        assert_eq!(checksum_add(0, &[0x12]), 0x1200);
        assert_eq!(checksum_finish(0x1_fffe), 0);
    }
}
