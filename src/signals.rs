//! SIGHUP, SIGTERM and SIGINT read from a `signalfd` on the tokio reactor.
//!
//! With signal handlers (tokio's default), the kernel interrupts whichever thread it picks,
//! whose handler writes to a pipe that wakes the reactor thread: two thread wake-ups before a
//! reload starts, each 0.1 ms and more on a busy host, in the SIGHUP -> servable path. With the
//! signals blocked and a `signalfd`, the reactor thread is woken once, directly.
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

/// The signals, as the reactor sees them. Needs the tokio runtime.
pub struct Signals {
    fd: AsyncFd<OwnedFd>,
}

impl Signals {
    pub fn open() -> io::Result<Signals> {
        let set = set();
        // SAFETY: signalfd with a new fd (-1) and a valid set; the result is checked.
        let raw = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a new fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: an OwnedFd stays open and refers to the same signalfd until the AsyncFd drops it.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(Signals { fd })
    }

    /// The next signal.
    pub async fn recv(&self) -> io::Result<Signal> {
        loop {
            let mut guard = self.fd.readable().await?;
            let got = guard.try_io(|fd| {
                // SAFETY: an all-zero signalfd_siginfo is valid; read writes at most its size.
                let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
                let size = std::mem::size_of::<libc::signalfd_siginfo>();
                // SAFETY: the buffer is `size` bytes of `info`.
                let n = unsafe {
                    libc::read(
                        fd.get_ref().as_raw_fd(),
                        (&mut info as *mut libc::signalfd_siginfo).cast(),
                        size,
                    )
                };
                if n < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(info.ssi_signo)
            });
            let Ok(result) = got else { continue };
            let signo = result?;
            if let Some(&(_, sig)) = SIGNALS.iter().find(|(s, _)| *s as u32 == signo) {
                return Ok(sig);
            }
        }
    }
}
