//! Receiving and sending DNS datagrams in batches: one `recvmmsg` takes every query queued on
//! a socket (up to [`BATCH`]), one `sendmmsg` sends all their replies. At a query per wake-up
//! that is the same three system calls as `recvfrom`/`sendto` (plus the `epoll_wait`); under
//! load the calls are shared by the whole batch. The buffers belong to a DNS thread, never to a
//! network. All of this module's `unsafe` is the two calls and the addresses they fill.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Datagrams taken per `recvmmsg`.
pub const BATCH: usize = 32;
/// Largest query taken over UDP (EDNS allows up to 64 KiB; no query needs a tenth of that).
pub const RECV_BUF: usize = 4096;
/// Replies over UDP are at most this long ([`super::answer::EDNS_PAYLOAD`]).
const REPLY_CAPACITY: usize = super::answer::EDNS_PAYLOAD as usize;

/// One thread's datagram buffers.
pub struct Batch {
    rx: Vec<u8>,
    lens: [usize; BATCH],
    addrs: [libc::sockaddr_storage; BATCH],
    addr_lens: [libc::socklen_t; BATCH],
    /// The reply to query `i`, if there is one to send.
    pub replies: Vec<Vec<u8>>,
}

impl Default for Batch {
    fn default() -> Self {
        Batch::new()
    }
}

impl Batch {
    pub fn new() -> Batch {
        Batch {
            rx: vec![0; BATCH * RECV_BUF],
            lens: [0; BATCH],
            // SAFETY: sockaddr_storage is plain data; all zeroes is a valid (AF_UNSPEC) value.
            addrs: unsafe { mem::zeroed() },
            addr_lens: [0; BATCH],
            replies: (0..BATCH)
                .map(|_| Vec::with_capacity(REPLY_CAPACITY))
                .collect(),
        }
    }

    /// Takes the datagrams queued on `fd` (non-blocking); returns how many (0 if none).
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        // SAFETY: iovec is plain data; zeroes are valid before being filled in.
        let mut iov: [libc::iovec; BATCH] = unsafe { mem::zeroed() };
        // SAFETY: mmsghdr is plain data; zeroes are valid before being filled in.
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { mem::zeroed() };
        for (i, (v, h)) in iov.iter_mut().zip(hdrs.iter_mut()).enumerate() {
            v.iov_base = self.rx[i * RECV_BUF..].as_mut_ptr().cast();
            v.iov_len = RECV_BUF;
            h.msg_hdr.msg_iov = v;
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        }
        // SAFETY: every header points at a buffer of RECV_BUF bytes inside `self.rx` and at an
        // address slot of `self.addrs`, all alive and exclusively borrowed for the call.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        let n = n as usize;
        for (i, h) in hdrs[..n].iter().enumerate() {
            // A datagram longer than the buffer is cut (MSG_TRUNC): it is no query of ours,
            // and the parser sees the cut.
            self.lens[i] = (h.msg_len as usize).min(RECV_BUF);
            self.addr_lens[i] = h.msg_hdr.msg_namelen;
        }
        Ok(n)
    }

    /// Query `i` of the last [`Batch::recv`], its sender, and the buffer for its reply.
    pub fn query(&mut self, i: usize) -> (&[u8], Option<SocketAddr>, &mut Vec<u8>) {
        let peer = self.peer(i);
        let q = &self.rx[i * RECV_BUF..i * RECV_BUF + self.lens[i]];
        (q, peer, &mut self.replies[i])
    }

    fn peer(&self, i: usize) -> Option<SocketAddr> {
        let storage = &self.addrs[i];
        let len = self.addr_lens[i] as usize;
        match i32::from(storage.ss_family) {
            libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
                // SAFETY: the kernel wrote a sockaddr_in here (family and length say so);
                // sockaddr_storage is aligned for every address type.
                let a = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                    u16::from_be(a.sin_port),
                )))
            }
            libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
                // SAFETY: as above, for a sockaddr_in6.
                let a = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(a.sin6_addr.s6_addr),
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    /// Sends the replies of the queries listed in `which` (indices of the last receive) to
    /// their senders, with as few `sendmmsg` calls as the socket takes; returns how many
    /// were not sent, with the last error.
    pub fn send(&mut self, fd: RawFd, which: &[usize]) -> (usize, Option<io::Error>) {
        // SAFETY: iovec is plain data, filled in below.
        let mut iov: [libc::iovec; BATCH] = unsafe { mem::zeroed() };
        // SAFETY: mmsghdr is plain data, filled in below.
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { mem::zeroed() };
        let count = which.len().min(BATCH);
        for (k, &i) in which[..count].iter().enumerate() {
            iov[k].iov_base = self.replies[i].as_mut_ptr().cast();
            iov[k].iov_len = self.replies[i].len();
            hdrs[k].msg_hdr.msg_iov = &mut iov[k];
            hdrs[k].msg_hdr.msg_iovlen = 1;
            hdrs[k].msg_hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            hdrs[k].msg_hdr.msg_namelen = self.addr_lens[i];
        }
        let (mut sent, mut failed, mut last) = (0, 0, None);
        let mut waited = false;
        while sent < count {
            // SAFETY: headers `sent..count` point at live reply buffers and address slots.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    hdrs[sent..].as_mut_ptr(),
                    (count - sent) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if n > 0 {
                sent += n as usize;
                continue;
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => {}
                // A full buffer: wait for room once, briefly, as the DHCP sends do.
                io::ErrorKind::WouldBlock if !waited => {
                    waited = true;
                    let mut pfd = libc::pollfd {
                        fd,
                        events: libc::POLLOUT,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd.
                    unsafe { libc::poll(&mut pfd, 1, 10) };
                }
                io::ErrorKind::WouldBlock => {
                    failed += count - sent;
                    last = Some(e);
                    break;
                }
                // This reply cannot go (say, to an unreachable sender): skip it.
                _ => {
                    sent += 1;
                    failed += 1;
                    last = Some(e);
                }
            }
        }
        (failed, last)
    }
}
