//! SIGHUP, SIGTERM and SIGINT read from a `signalfd`: on the tokio reactor ([`Signals`], RPC
//! mode) or by a thread that waits for them itself ([`BlockingSignals`], standalone mode).
//!
//! With signal handlers (tokio's default), the kernel interrupts whichever thread it picks,
//! whose handler writes to a pipe that wakes the reactor thread: two thread wake-ups before a
//! reload starts, each 0.1 ms and more on a busy host, in the SIGHUP -> servable path. With the
//! signals blocked and a `signalfd`, the waiting thread is woken once, directly.
//!
//! The signals must be blocked in every thread, so [`block`] runs before any thread is
//! started. Child processes do not inherit the mask (std resets it when spawning).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// The signals the agent acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Hangup,
    Terminate,
    Interrupt,
}

const SIGNALS: [(libc::c_int, Signal); 3] = [
    (libc::SIGHUP, Signal::Hangup),
    (libc::SIGTERM, Signal::Terminate),
    (libc::SIGINT, Signal::Interrupt),
];

fn set() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set; sigaddset only writes into it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for (sig, _) in SIGNALS {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// Blocks the signals in the calling thread and the threads it starts from now on; until a
/// [`Signals`] reads them they stay pending (a SIGTERM during start-up ends the agent once it
/// is up).
pub fn block() -> io::Result<()> {
    let set = set();
    // SAFETY: pthread_sigmask with a valid set, changing only this thread's mask.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Opens a non-blocking `signalfd` for [`SIGNALS`].
fn open_fd() -> io::Result<OwnedFd> {
    let set = set();
    // SAFETY: signalfd with a new fd (-1) and a valid set; the result is checked.
    let raw = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Reads one pending signal: `Ok(None)` when none is pending (or it is not one of ours).
fn read_one(fd: &OwnedFd) -> io::Result<Option<Signal>> {
    // SAFETY: an all-zero signalfd_siginfo is valid; read writes at most its size.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: the buffer is `size` bytes of `info`.
    let n = unsafe {
        libc::read(
            fd.as_raw_fd(),
            (&mut info as *mut libc::signalfd_siginfo).cast(),
            size,
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
            _ => Err(e),
        };
    }
    Ok(SIGNALS
        .iter()
        .find(|(s, _)| *s as u32 == info.ssi_signo)
        .map(|&(_, sig)| sig))
}

/// The signals, as the reactor sees them. Needs the tokio runtime.
pub struct Signals {
    fd: AsyncFd<OwnedFd>,
}

impl Signals {
    pub fn open() -> io::Result<Signals> {
        let fd = open_fd()?;
        // SAFETY: an OwnedFd stays open and refers to the same signalfd until the AsyncFd drops it.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(Signals { fd })
    }

    /// The next signal.
    pub async fn recv(&self) -> io::Result<Signal> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| match read_one(fd.get_ref())? {
                Some(sig) => Ok(sig),
                None => Err(io::ErrorKind::WouldBlock.into()),
            }) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }
}

/// The signals for a thread that waits for them itself (the standalone control loop): a
/// signal wakes that thread directly, one wake-up fewer than through the reactor, which on a
/// 2-vCPU VM is ~70 µs of the SIGHUP -> servable time.
pub struct BlockingSignals {
    fd: OwnedFd,
}

impl BlockingSignals {
    pub fn open() -> io::Result<BlockingSignals> {
        Ok(BlockingSignals { fd: open_fd()? })
    }

    /// Waits up to `timeout` for the next signal; `Ok(None)` when the time is up first.
    pub fn wait(&self, timeout: std::time::Duration) -> io::Result<Option<Signal>> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(sig) = read_one(&self.fd)? {
                return Ok(Some(sig));
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // Rounded up: a wait never ends before its deadline.
            let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut pfd, 1, ms) } < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocking_wait_ends_at_its_timeout_without_a_signal() {
        let signals = BlockingSignals::open().unwrap();
        let started = std::time::Instant::now();
        let got = signals.wait(std::time::Duration::from_millis(20)).unwrap();
        assert_eq!(got, None);
        assert!(started.elapsed() >= std::time::Duration::from_millis(20));
    }

    #[test]
    fn a_blocking_wait_returns_the_signal() {
        // Blocked and sent on this test thread only: no other thread of the test process sees
        // it, and nothing runs SIGHUP's default action.
        std::thread::spawn(|| {
            block().unwrap();
            let signals = BlockingSignals::open().unwrap();
            // SAFETY: sends SIGHUP to this very thread, which blocks it.
            let rc = unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGHUP) };
            assert_eq!(rc, 0);
            let got = signals.wait(std::time::Duration::from_secs(5)).unwrap();
            assert_eq!(got, Some(Signal::Hangup));
            assert_eq!(signals.wait(std::time::Duration::ZERO).unwrap(), None);
        })
        .join()
        .unwrap();
    }
}
