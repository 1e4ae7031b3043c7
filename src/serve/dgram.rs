//! Sending on the DHCP threads: straight away, one `send` per reply. The sockets are never
//! watched for writability: an `EPOLLOUT` watch would wake the thread every time the kernel
//! frees a sent datagram. A send that finds the socket's buffer full waits for it to drain, but
//! only briefly: the thread's other networks wait meanwhile, and a DHCP client asks again.

use std::io;
use std::os::fd::AsFd;

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use std::time::Duration;

/// How long a send that finds a full buffer waits for it to drain, once.
const SEND_WAIT: Duration = Duration::from_millis(10);

/// Runs `send` (a non-blocking send on `socket`) now; if the socket's buffer is full, waits up
/// to [`SEND_WAIT`] for room and runs it once more, whose result is final.
pub fn send_now<T>(socket: &impl AsFd, mut send: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    match send() {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            let wait = Timespec {
                tv_sec: 0,
                tv_nsec: SEND_WAIT.as_nanos() as i64,
            };
            // Its result does not matter: the send below says whether there is room now.
            let _ = poll(&mut [PollFd::new(socket, PollFlags::OUT)], Some(&wait));
            send()
        }
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // The room comes from a thread that drains one datagram 2 ms after the send began. A
        // stall of this busy machine can put the drain after the wait, or before the first
        // try; such a round proves nothing either way and is repeated.
        for _ in 0..5 {
            let (tx, rx, queued) = full();
            let began = std::time::Instant::now();
            let drain = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(2));
                let mut buf = [0u8; 8];
                rx.recv(&mut buf).unwrap();
                (rx, began.elapsed())
            });
            let mut tries = 0;
            let sent = send_now(&tx, || {
                tries += 1;
                tx.send(b"last")
            });
            let (rx, drained_after) = drain.join().unwrap();
            let drained_first = sent.is_ok() && tries == 1;
            if drained_first || (sent.is_err() && drained_after >= SEND_WAIT) {
                continue;
            }
            assert_eq!(
                sent.unwrap(),
                4,
                "room {drained_after:?} after the send began"
            );
            let mut buf = [0u8; 8];
            for _ in 1..queued {
                assert_eq!(rx.recv(&mut buf).unwrap(), 1);
            }
            assert_eq!(rx.recv(&mut buf).unwrap(), 4);
            assert_eq!(&buf[..4], b"last");
            return;
        }
        panic!("in 5 rounds the drain never came within {SEND_WAIT:?}");
    }

    #[test]
    fn a_send_into_a_buffer_that_stays_full_gives_up() {
        let (tx, _rx, _) = full();
        let started = std::time::Instant::now();
        let e = send_now(&tx, || tx.send(b"last")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(started.elapsed() >= SEND_WAIT, "waited for room first");
    }
}
