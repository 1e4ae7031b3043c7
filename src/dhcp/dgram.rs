//! Datagram I/O on the DHCP threads with the fewest syscalls and wake-ups: one receive and one
//! send per request, one wake-up per request that arrives while the thread sleeps.
//!
//! - **Receive:** up to two datagrams with one `recvmmsg(2)`. tokio learns that an
//!   edge-triggered socket is drained only from a receive that fails with EAGAIN; at low rates
//!   every request woke the thread to find one datagram, so that failing receive was a third
//!   syscall per request. Asking for two and getting one says the same for free; under load the
//!   second slot also halves the receives.
//! - **Send:** straight away, without write readiness. A socket registered for writability
//!   raises an `EPOLLOUT` edge every time the kernel frees a sent datagram, which woke the
//!   thread a second time for every reply. Only a send that finds the socket's buffer full waits
//!   for writability, on a registration made for that wait alone.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Datagrams one receive can return.
const SLOTS: usize = 2;

/// The receive buffers of one serving task, allocated once.
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

    /// Waits until `socket` has datagrams and receives up to two; returns how many.
    ///
    /// Readiness is cleared whenever fewer than two came: the queue was empty then, and a
    /// datagram arriving later raises a new edge. tokio only clears readiness that no event
    /// has renewed since it was observed, so one arriving in between is not missed.
    pub async fn recv<S: AsRawFd>(&mut self, socket: &AsyncFd<S>) -> io::Result<usize> {
        loop {
            let mut ready = socket.readable().await?;
            match self.recv_now(socket.get_ref().as_raw_fd()) {
                Ok(n) => {
                    if n < SLOTS {
                        ready.clear_ready();
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => ready.clear_ready(),
                Err(e) => return Err(e),
            }
        }
    }

    /// Datagram `i` of the last receive and its sender (`None` for an address family other
    /// than IPv4/IPv6, which a UDP socket never reports).
    pub fn get(&self, i: usize) -> (&[u8], Option<SocketAddr>) {
        (&self.bufs[i][..self.lens[i]], self.peers[i])
    }

    fn recv_now(&mut self, fd: std::os::fd::RawFd) -> io::Result<usize> {
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

/// Runs `send` (a non-blocking send on `socket`) now; if the socket's buffer is full, waits
/// until it drains and runs it again.
pub async fn send_now<T>(
    socket: impl AsFd,
    mut send: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    loop {
        match send() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let dup = socket.as_fd().try_clone_to_owned()?;
                // SAFETY: an OwnedFd owns its descriptor and always reports that same one.
                let writable = unsafe { AsyncFd::register_with_interest(dup, Interest::WRITABLE) }
                    .map_err(io::Error::from)?;
                drop(writable.writable().await?);
            }
            r => return r,
        }
    }
}

/// Registers a socket for read readiness only (see the module comment on write readiness).
pub fn readable(socket: UdpSocket) -> io::Result<AsyncFd<UdpSocket>> {
    // SAFETY: a std socket owns its descriptor and always reports that same one.
    unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }.map_err(io::Error::from)
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

    fn pair(v6: bool) -> (AsyncFd<UdpSocket>, UdpSocket) {
        let any = if v6 { "[::1]:0" } else { "127.0.0.1:0" };
        let rx = UdpSocket::bind(any).unwrap();
        rx.set_nonblocking(true).unwrap();
        let tx = UdpSocket::bind(any).unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        (readable(rx).unwrap(), tx)
    }

    #[tokio::test]
    async fn one_datagram_then_two_then_one_arriving_after_the_queue_drained() {
        let (rx, tx) = pair(false);
        let mut d = Datagrams::new(1536);
        tx.send(b"first").unwrap();
        assert_eq!(d.recv(&rx).await.unwrap(), 1);
        assert_eq!(d.get(0), (&b"first"[..], Some(tx.local_addr().unwrap())));

        tx.send(b"a").unwrap();
        tx.send(b"bb").unwrap();
        tx.send(b"ccc").unwrap();
        assert_eq!(d.recv(&rx).await.unwrap(), 2);
        assert_eq!((d.get(0).0, d.get(1).0), (&b"a"[..], &b"bb"[..]));
        // Two came, so readiness was kept: the third is received without a new edge.
        assert_eq!(d.recv(&rx).await.unwrap(), 1);
        assert_eq!(d.get(0).0, b"ccc");

        // Drained and readiness cleared: a datagram sent later still wakes the receive.
        let late = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            tx.send(b"late").unwrap();
            tx
        });
        assert_eq!(d.recv(&rx).await.unwrap(), 1);
        assert_eq!(d.get(0).0, b"late");
        drop(late.await.unwrap());
    }

    #[tokio::test]
    async fn a_send_that_finds_the_buffer_full_waits_until_it_drains() {
        let (tx, rx) = std::os::unix::net::UnixDatagram::pair().unwrap();
        tx.set_nonblocking(true).unwrap();
        let mut queued = 0;
        while tx.send(b"x").is_ok() {
            queued += 1;
        }
        let tx = std::sync::Arc::new(tx);
        let sender = tx.clone();
        let sending =
            tokio::spawn(async move { send_now(&*sender, || sender.send(b"last")).await });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!sending.is_finished(), "sent into a full buffer");
        let mut buf = [0u8; 8];
        for _ in 0..queued {
            assert_eq!(rx.recv(&mut buf).unwrap(), 1);
        }
        assert_eq!(sending.await.unwrap().unwrap(), 4);
        assert_eq!(rx.recv(&mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], b"last");
    }

    #[tokio::test]
    async fn ipv6_senders_and_truncation_to_the_capacity() {
        let (rx, tx) = pair(true);
        let mut d = Datagrams::new(4);
        tx.send(b"longer than four").unwrap();
        assert_eq!(d.recv(&rx).await.unwrap(), 1);
        assert_eq!(d.get(0), (&b"long"[..], Some(tx.local_addr().unwrap())));
    }
}
