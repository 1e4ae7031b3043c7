//! Datagram I/O on the DHCP threads with the fewest syscalls: one receive and one send per
//! request.
//!
//! - **Receive:** up to two datagrams with one `recvmmsg(2)`, without blocking. Getting fewer
//!   than two says the queue is empty, with no third call that fails with EAGAIN; under load
//!   the second slot also halves the receives.
//! - **Send:** straight away; the sockets are never watched for writability (an `EPOLLOUT`
//!   watch would wake the thread every time the kernel frees a sent datagram). A send that
//!   finds the socket's buffer full waits for it to drain, but only briefly: the thread's other
//!   networks wait meanwhile, and a DHCP client asks again.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

/// Datagrams one receive can return.
pub const SLOTS: usize = 2;

/// The receive buffers of one served network, allocated once.
pub struct Datagrams {
    bufs: [Vec<u8>; SLOTS],
    lens: [usize; SLOTS],
    peers: [Option<SocketAddr>; SLOTS],
    addrs: [libc::sockaddr_storage; SLOTS],
}

impl Datagrams {
    /// `capacity`: the longest datagram kept; longer ones are truncated to it.
    pub fn new(capacity: usize) -> Self {
        Datagrams {
            bufs: [vec![0; capacity], vec![0; capacity]],
            lens: [0; SLOTS],
            peers: [None; SLOTS],
            // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
            addrs: unsafe { mem::zeroed() },
        }
    }

    /// Datagram `i` of the last receive and its sender (`None` for an address family other
    /// than IPv4/IPv6, which a UDP socket never reports).
    pub fn get(&self, i: usize) -> (&[u8], Option<SocketAddr>) {
        (&self.bufs[i][..self.lens[i]], self.peers[i])
    }

    /// Receives up to two datagrams from `fd` without waiting; returns how many (fewer than
    /// two: the queue is now empty), or `WouldBlock` if none was queued.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        // SAFETY: plain old data; all-zero is a valid value for both.
        let mut iov: [libc::iovec; SLOTS] = unsafe { mem::zeroed() };
        let mut msgs: [libc::mmsghdr; SLOTS] = unsafe { mem::zeroed() };
        for (i, (msg, buf)) in msgs.iter_mut().zip(self.bufs.iter_mut()).enumerate() {
            iov[i].iov_base = buf.as_mut_ptr().cast();
            iov[i].iov_len = buf.len();
            msg.msg_hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            msg.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            msg.msg_hdr.msg_iov = &mut iov[i];
            msg.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every header points at a buffer, an iovec and an address slot that live
        // until the call returns, with their true lengths; the fd is open.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                SLOTS as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for (i, msg) in msgs.iter().enumerate().take(n) {
            self.lens[i] = (msg.msg_len as usize).min(self.bufs[i].len());
            self.peers[i] = socket_addr(&self.addrs[i]);
        }
        Ok(n)
    }
}

/// How long a send that finds a full buffer waits for it to drain, once.
const SEND_WAIT: Duration = Duration::from_millis(10);

/// Runs `send` (a non-blocking send on `socket`) now; if the socket's buffer is full, waits up
/// to [`SEND_WAIT`] for room and runs it once more, whose result is final.
pub fn send_now<T>(
    socket: &impl AsRawFd,
    mut send: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    match send() {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            let mut pfd = libc::pollfd {
                fd: socket.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            };
            // SAFETY: one valid pollfd, as passed. Its result does not matter: the send below
            // says whether there is room now.
            unsafe { libc::poll(&mut pfd, 1, SEND_WAIT.as_millis() as libc::c_int) };
            send()
        }
        r => r,
    }
}

/// The sender's address as the kernel wrote it.
fn socket_addr(a: &libc::sockaddr_storage) -> Option<SocketAddr> {
    let p = (a as *const libc::sockaddr_storage).cast::<u8>();
    match libc::c_int::from(a.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in (family AF_INET); sockaddr_storage is
            // large and aligned enough for it.
            let v4 = unsafe { &*p.cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr)),
                u16::from_be(v4.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6 (family AF_INET6).
            let v6 = unsafe { &*p.cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(v6.sin6_addr.s6_addr),
                u16::from_be(v6.sin6_port),
                u32::from_be(v6.sin6_flowinfo),
                v6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    fn pair(v6: bool) -> (UdpSocket, UdpSocket) {
        let any = if v6 { "[::1]:0" } else { "127.0.0.1:0" };
        let rx = UdpSocket::bind(any).unwrap();
        let tx = UdpSocket::bind(any).unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        (rx, tx)
    }

    #[test]
    fn one_datagram_then_two_then_one_then_none() {
        let (rx, tx) = pair(false);
        let fd = rx.as_raw_fd();
        let mut d = Datagrams::new(1536);
        tx.send(b"first").unwrap();
        assert_eq!(d.recv(fd).unwrap(), 1);
        assert_eq!(d.get(0), (&b"first"[..], Some(tx.local_addr().unwrap())));

        tx.send(b"a").unwrap();
        tx.send(b"bb").unwrap();
        tx.send(b"ccc").unwrap();
        assert_eq!(d.recv(fd).unwrap(), 2);
        assert_eq!((d.get(0).0, d.get(1).0), (&b"a"[..], &b"bb"[..]));
        assert_eq!(d.recv(fd).unwrap(), 1);
        assert_eq!(d.get(0).0, b"ccc");
        // Without waiting, on a blocking socket too.
        let empty = d.recv(fd).unwrap_err();
        assert_eq!(empty.kind(), io::ErrorKind::WouldBlock);
    }

    /// A datagram socket pair whose sender's buffer is full.
    fn full() -> (
        std::os::unix::net::UnixDatagram,
        std::os::unix::net::UnixDatagram,
        usize,
    ) {
        let (tx, rx) = std::os::unix::net::UnixDatagram::pair().unwrap();
        tx.set_nonblocking(true).unwrap();
        let mut queued = 0;
        while tx.send(b"x").is_ok() {
            queued += 1;
        }
        (tx, rx, queued)
    }

    #[test]
    fn a_send_that_finds_the_buffer_full_waits_briefly_for_room() {
        let (tx, rx, queued) = full();
        let drain = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(2));
            let mut buf = [0u8; 8];
            rx.recv(&mut buf).unwrap();
            (rx, queued)
        });
        assert_eq!(send_now(&tx, || tx.send(b"last")).unwrap(), 4);
        let (rx, queued) = drain.join().unwrap();
        let mut buf = [0u8; 8];
        for _ in 1..queued {
            assert_eq!(rx.recv(&mut buf).unwrap(), 1);
        }
        assert_eq!(rx.recv(&mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], b"last");
    }

    #[test]
    fn a_send_into_a_buffer_that_stays_full_gives_up() {
        let (tx, _rx, _) = full();
        let started = std::time::Instant::now();
        let e = send_now(&tx, || tx.send(b"last")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(started.elapsed() >= SEND_WAIT, "waited for room first");
    }

    #[test]
    fn ipv6_senders_and_truncation_to_the_capacity() {
        let (rx, tx) = pair(true);
        let mut d = Datagrams::new(4);
        tx.send(b"longer than four").unwrap();
        assert_eq!(d.recv(rx.as_raw_fd()).unwrap(), 1);
        assert_eq!(d.get(0), (&b"long"[..], Some(tx.local_addr().unwrap())));
    }
}
