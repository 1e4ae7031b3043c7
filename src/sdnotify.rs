//! systemd's service notification protocol (`sd_notify(3)`), for a `Type=notify` unit.
//!
//! systemd passes `NOTIFY_SOCKET` (a datagram socket path, or `@name` for the abstract
//! namespace) and, with `WatchdogSec=`, `WATCHDOG_USEC` (and `WATCHDOG_PID`). The agent says
//! `READY=1` once the first full sync has plumbed every network, pings `WATCHDOG=1` from its
//! main loop, and says `STOPPING=1` when it begins to exit. Without `NOTIFY_SOCKET` (not under
//! systemd) every call is a no-op, so the agent behaves the same outside a unit.
//!
//! The protocol is one datagram per message, so a small hand-written client is all it takes
//! (no libsystemd link, no extra crate).

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("NOTIFY_SOCKET={value:?}: not an absolute path or @abstract name")]
    BadSocket { value: String },
    #[error("cannot send {message:?} to NOTIFY_SOCKET {socket}: {source}")]
    Send {
        message: String,
        socket: String,
        source: io::Error,
    },
}

/// The notification channel to the service manager, if there is one.
#[derive(Debug)]
pub struct Notifier {
    target: Option<Target>,
    watchdog: Option<Duration>,
}

#[derive(Debug)]
struct Target {
    name: String,
    addr: SocketAddr,
    socket: UnixDatagram,
}

impl Notifier {
    /// From the environment systemd sets. The variables are removed afterwards (as
    /// `sd_notify(unset_environment=1)` does), so the processes the agent starts (none today)
    /// cannot talk to systemd in its name.
    pub fn from_env() -> Result<Notifier, NotifyError> {
        let socket = std::env::var("NOTIFY_SOCKET").ok();
        let watchdog_usec = std::env::var("WATCHDOG_USEC").ok();
        let watchdog_pid = std::env::var("WATCHDOG_PID").ok();
        let notifier = Notifier::new(
            socket.as_deref(),
            watchdog_usec.as_deref(),
            watchdog_pid.as_deref(),
            std::process::id(),
        );
        for var in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
            // Called from main before any other thread exists, so nothing reads the
            // environment concurrently.
            std::env::remove_var(var);
        }
        notifier
    }

    /// `socket`, `watchdog_usec` and `watchdog_pid` as systemd passes them; `pid` is ours.
    pub fn new(
        socket: Option<&str>,
        watchdog_usec: Option<&str>,
        watchdog_pid: Option<&str>,
        pid: u32,
    ) -> Result<Notifier, NotifyError> {
        let target = match socket.filter(|s| !s.is_empty()) {
            None => None,
            Some(name) => Some(Target::open(name)?),
        };
        // The watchdog is ours only if no PID is named or ours is.
        let for_us = watchdog_pid.is_none_or(|p| p.trim().parse::<u32>() == Ok(pid));
        let watchdog = watchdog_usec
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&us| us > 0 && for_us && target.is_some())
            .map(Duration::from_micros);
        Ok(Notifier { target, watchdog })
    }

    /// A notifier that sends nothing (not under systemd; tests).
    pub fn disabled() -> Notifier {
        Notifier {
            target: None,
            watchdog: None,
        }
    }

    /// Whether a service manager listens.
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// How often to send `WATCHDOG=1`: half the configured timeout, as `sd_watchdog_enabled(3)`
    /// recommends. `None` when no watchdog is configured for this process.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|t| t / 2)
    }

    /// `READY=1` with a human-readable status line.
    pub fn ready(&self, status: &str) -> Result<(), NotifyError> {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)))
    }

    /// `STATUS=...` only.
    pub fn status(&self, status: &str) -> Result<(), NotifyError> {
        self.send(&format!("STATUS={}", one_line(status)))
    }

    /// `WATCHDOG=1`.
    pub fn watchdog(&self) -> Result<(), NotifyError> {
        if self.watchdog.is_none() {
            return Ok(());
        }
        self.send("WATCHDOG=1")
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) -> Result<(), NotifyError> {
        self.send("STOPPING=1\nSTATUS=stopping")
    }

    /// `RELOADING=1` is not sent: a networks-file reload or resync never stops service, and
    /// systemd would otherwise wait for a `READY=1` that a reload does not owe it.
    fn send(&self, message: &str) -> Result<(), NotifyError> {
        let Some(t) = &self.target else {
            return Ok(());
        };
        t.socket
            .send_to_addr(message.as_bytes(), &t.addr)
            .map(drop)
            .map_err(|source| NotifyError::Send {
                message: message.to_owned(),
                socket: t.name.clone(),
                source,
            })
    }
}

impl Target {
    fn open(name: &str) -> Result<Target, NotifyError> {
        let bad = || NotifyError::BadSocket {
            value: name.to_owned(),
        };
        let addr = if let Some(abstract_name) = name.strip_prefix('@') {
            SocketAddr::from_abstract_name(abstract_name.as_bytes()).map_err(|_| bad())?
        } else if name.starts_with('/') {
            SocketAddr::from_pathname(name).map_err(|_| bad())?
        } else {
            return Err(bad());
        };
        let socket = UnixDatagram::unbound().map_err(|source| NotifyError::Send {
            message: String::new(),
            socket: name.to_owned(),
            source,
        })?;
        Ok(Target {
            name: name.to_owned(),
            addr,
            socket,
        })
    }
}

/// A status is one line in the protocol's `KEY=value` framing.
fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener() -> (tempfile::TempDir, String, UnixDatagram) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (dir, path.display().to_string(), sock)
    }

    fn recv(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn ready_watchdog_and_stopping_reach_the_socket() {
        let (_dir, path, sock) = listener();
        let n = Notifier::new(Some(&path), Some("4000000"), None, 42).unwrap();
        assert!(n.is_enabled());
        assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(2)));
        n.ready("serving 2 networks\nsecond line").unwrap();
        assert_eq!(
            recv(&sock),
            "READY=1\nSTATUS=serving 2 networks second line"
        );
        n.watchdog().unwrap();
        assert_eq!(recv(&sock), "WATCHDOG=1");
        n.stopping().unwrap();
        assert_eq!(recv(&sock), "STOPPING=1\nSTATUS=stopping");
    }

    #[test]
    fn abstract_socket_names_work() {
        let name = format!("ndrs-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = Notifier::new(Some(&format!("@{name}")), None, None, 1).unwrap();
        n.ready("up").unwrap();
        assert_eq!(recv(&sock), "READY=1\nSTATUS=up");
    }

    #[test]
    fn a_watchdog_meant_for_another_process_is_not_ours() {
        let (_dir, path, _sock) = listener();
        let n = Notifier::new(Some(&path), Some("1000000"), Some("7"), 42).unwrap();
        assert_eq!(n.watchdog_interval(), None);
        let n = Notifier::new(Some(&path), Some("1000000"), Some("42"), 42).unwrap();
        assert_eq!(n.watchdog_interval(), Some(Duration::from_millis(500)));
    }

    #[test]
    fn without_a_socket_nothing_is_sent_and_nothing_fails() {
        let n = Notifier::new(None, Some("1000000"), None, 1).unwrap();
        assert!(!n.is_enabled());
        assert_eq!(n.watchdog_interval(), None);
        n.ready("x").unwrap();
        n.watchdog().unwrap();
        n.stopping().unwrap();
    }

    #[test]
    fn a_relative_socket_path_is_refused() {
        let e = Notifier::new(Some("notify.sock"), None, None, 1).unwrap_err();
        assert!(e.to_string().contains("notify.sock"), "{e}");
    }

    #[test]
    fn a_vanished_listener_is_an_error_not_a_panic() {
        let (dir, path, sock) = listener();
        drop(sock);
        drop(dir);
        let n = Notifier::new(Some(&path), None, None, 1).unwrap();
        assert!(n.ready("x").is_err());
    }
}
