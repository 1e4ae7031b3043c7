//! The two kernel objects a DHCP thread sleeps on, as safe types: an `epoll` instance watching
//! the DHCP sockets of its networks, and an `eventfd` the control plane writes to wake it for a
//! command. Nothing else: no timers, no write interest, no registry of its own (the DHCP thread
//! keeps that, [`crate::serve::threads`]).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A level-triggered `epoll` instance. Level-triggered because a loop that leaves datagrams
/// queued (to be fair to the other networks of its thread) is then simply told again, and no
/// edge can be lost between a receive and the next wait.
pub struct Epoll(OwnedFd);

/// A ready source: the token it was added with.
pub type Token = u64;

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 has no preconditions; the fd it returns is owned here.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: fd was just returned open and nothing else owns it.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Watches `fd` for input; its readiness is reported with `token`. `fd` must stay open
    /// until [`Epoll::delete`]: the kernel keys the watch by descriptor and open file.
    pub fn add(&self, fd: RawFd, token: Token) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: both descriptors are open (the caller's promise for `fd`); ev is valid.
        cvt(unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) })
            .map(drop)
    }

    /// Stops watching `fd`.
    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: as in `add`; the event argument is ignored for a delete but must be valid
        // on old kernels.
        cvt(unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, &mut ev) })
            .map(drop)
    }

    /// Sleeps until a source is ready (or `timeout_ms`, -1 for never) and returns how many of
    /// `events` it filled; an interrupted wait returns 0.
    pub fn wait(&self, events: &mut [libc::epoll_event], timeout_ms: i32) -> io::Result<usize> {
        let max = events.len().min(i32::MAX as usize) as i32;
        // SAFETY: `events` is valid for `max` entries, as passed.
        let n =
            unsafe { libc::epoll_wait(self.0.as_raw_fd(), events.as_mut_ptr(), max, timeout_ms) };
        match cvt(n) {
            Ok(n) => Ok(n as usize),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }
}

/// An empty event buffer for [`Epoll::wait`].
pub const NO_EVENT: libc::epoll_event = libc::epoll_event { events: 0, u64: 0 };

/// The token of a ready event (copied out: `epoll_event` is packed on x86-64).
pub fn token(ev: &libc::epoll_event) -> Token {
    ev.u64
}

/// A non-blocking `eventfd`: [`Waker::wake`] makes it readable until [`Waker::reset`].
pub struct Waker(OwnedFd);

impl Waker {
    pub fn new() -> io::Result<Waker> {
        // SAFETY: eventfd has no preconditions; the fd it returns is owned here.
        let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        // SAFETY: fd was just returned open and nothing else owns it.
        Ok(Waker(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    pub fn wake(&self) -> io::Result<()> {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live 8-byte buffer to an open eventfd.
        let n = unsafe { libc::write(self.0.as_raw_fd(), one.as_ptr().cast(), one.len()) };
        match cvt(n as libc::c_int) {
            Ok(_) => Ok(()),
            // The counter is at its maximum: it is readable, which is all a wake needs.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Makes it unreadable again (before the woken thread looks at what it was woken for, so
    /// a wake after the look is not lost).
    pub fn reset(&self) {
        let mut buf = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a live 8-byte buffer from an open eventfd. The
        // only failure is EAGAIN (not woken), which leaves it as wanted.
        unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    }
}

impl AsRawFd for Waker {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn reports_ready_sockets_by_token_until_drained_or_deleted() {
        let epoll = Epoll::new().unwrap();
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        epoll.add(rx.as_raw_fd(), 42).unwrap();
        let mut events = [NO_EVENT; 4];
        assert_eq!(epoll.wait(&mut events, 0).unwrap(), 0, "nothing queued yet");
        tx.send_to(b"x", rx.local_addr().unwrap()).unwrap();
        assert_eq!(epoll.wait(&mut events, 1000).unwrap(), 1);
        assert_eq!(token(&events[0]), 42);
        // Level-triggered: still queued, so still reported.
        assert_eq!(epoll.wait(&mut events, 0).unwrap(), 1);
        epoll.delete(rx.as_raw_fd()).unwrap();
        assert_eq!(epoll.wait(&mut events, 0).unwrap(), 0, "deleted");
        assert!(
            epoll.delete(rx.as_raw_fd()).is_err(),
            "not watched any more"
        );
    }

    #[test]
    fn a_wake_is_reported_once_until_reset_and_again_after() {
        let epoll = Epoll::new().unwrap();
        let waker = Waker::new().unwrap();
        epoll.add(waker.as_raw_fd(), 7).unwrap();
        let mut events = [NO_EVENT; 2];
        waker.wake().unwrap();
        waker.wake().unwrap();
        assert_eq!(epoll.wait(&mut events, 1000).unwrap(), 1);
        assert_eq!(token(&events[0]), 7);
        waker.reset();
        assert_eq!(epoll.wait(&mut events, 0).unwrap(), 0, "reset");
        waker.reset();
        waker.wake().unwrap();
        assert_eq!(epoll.wait(&mut events, 1000).unwrap(), 1);
    }
}
