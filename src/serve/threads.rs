//! The threads that answer DHCP: each one a plain `epoll` loop over the sockets of the networks
//! it serves, with nothing between the wait and the receive.
//!
//! - **Why threads of their own:** on the control plane's multi-threaded runtime every request
//!   woke a worker that then often woke a second one to look for more work (~1.3 context
//!   switches per packet, most of the CPU a DHCP exchange cost at low rates). Here the thread
//!   that waits is the one that answers, and control-plane work (reloads, RPC, plumbing) never
//!   shares a queue with packets.
//! - **Why not a tokio runtime per thread** (what these were until the floor was measured,
//!   BENCHMARKS.md): a request then went through the reactor's readiness slab, a task wake-up,
//!   the scheduler's run queue and the task's future before it reached the receive, a cost
//!   several times our whole per-request work (`dhcp-floor --epoll`, BENCHMARKS.md). Here a
//!   ready socket's token names its network, and the loop calls it: `epoll_wait`, one map
//!   lookup, the network's `recvfrom` and `sendto`.
//! - **Commands** (serve, stop) come through a queue and an `eventfd`; a network's sockets are
//!   added to the thread's `epoll` by the caller, under the queue's lock, so the thread finds
//!   the network the moment its first request is reported.
//!
//! Networks are spread over the threads round-robin; a network's DHCPv4 and DHCPv6 sockets are
//! served by one.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::oneshot;

use crate::serve::poller::{self, Epoll, Waker};

/// More threads than cores only adds wake-ups; fewer than two would let one busy network delay
/// all others on a multi-core host.
pub const MAX_THREADS: usize = 4;

/// Sockets one job may watch (a network: DHCPv4 and DHCPv6).
pub const MAX_SOURCES: usize = 2;

/// What a DHCP thread runs: one network's serving loop, called when one of its sockets has
/// input.
pub trait Job: Send + 'static {
    /// The non-blocking sockets to watch (at most [`MAX_SOURCES`]), owned by the job so that
    /// they stay open as long as it is served; the same ones every time.
    fn sources(&self) -> Vec<BorrowedFd<'_>>;

    /// Socket `source` (its index in [`Job::sources`]) is readable. Called on the DHCP
    /// thread; must not block (the thread's other networks wait meanwhile). `rx` is the
    /// thread's receive buffer, [`RECV_BUF`] bytes. Returns when the job wants [`Job::due`]
    /// called, if it does.
    fn ready(&mut self, source: usize, rx: &mut [u8]) -> Option<Instant>;

    /// Called on the DHCP thread once the time [`Job::ready`] or the previous `due` returned
    /// has come (e.g. to write the summary of log lines a rate limit held back); returns the
    /// next such time, if any.
    fn due(&mut self, _now: Instant) -> Option<Instant> {
        None
    }
}

/// The receive buffer of a DHCP thread: room for the largest UDP payload (65,507 bytes over
/// IPv4, 65,527 over IPv6), so that no datagram is ever cut short and then parsed as if whole
/// (a valid request may well be longer than an Ethernet frame: IP fragments, or option
/// overload with a big parameter list). One per thread, not per network: a thread receives
/// one datagram at a time, and 1,000 networks would otherwise hold 64 MiB of buffers.
pub const RECV_BUF: usize = 1 << 16;

/// Events taken per wait; more ready sockets are reported by the next.
const EVENTS: usize = 64;

/// The token of the waker; jobs' tokens are `id * MAX_SOURCES + source`, far below it.
const WAKE: poller::Token = u64::MAX;

/// A fixed set of DHCP threads (started on first use) serving jobs of type `J`.
pub struct Pool<J: Job> {
    name: &'static str,
    threads: std::sync::OnceLock<Result<Vec<Arc<Shared<J>>>, String>>,
    next: AtomicUsize,
    ids: AtomicU64,
}

/// What the control plane and one DHCP thread share.
struct Shared<J> {
    epoll: Epoll,
    waker: Waker,
    commands: Mutex<Vec<Command<J>>>,
}

enum Command<J> {
    Serve {
        id: u64,
        job: J,
    },
    /// The job goes back through `reply`, or is dropped off the thread if nobody waits for it
    /// (a handle dropped without [`Served::stop`]).
    Stop {
        id: u64,
        reply: oneshot::Sender<J>,
    },
}

/// A job being served; dropping it stops the job and drops it off the DHCP thread.
pub struct Served<J: Job> {
    thread: Arc<Shared<J>>,
    id: u64,
    stopped: bool,
}

impl<J: Job> Pool<J> {
    pub const fn new(name: &'static str) -> Self {
        Pool {
            name,
            threads: std::sync::OnceLock::new(),
            next: AtomicUsize::new(0),
            ids: AtomicU64::new(0),
        }
    }

    /// Serves `job` on the next thread, calling it whenever one of its sources is readable.
    pub fn serve(&self, job: J) -> io::Result<Served<J>> {
        let fds = job.sources();
        if fds.len() > MAX_SOURCES {
            return Err(io::Error::other("too many sockets for one DHCP job"));
        }
        let threads = self
            .threads
            .get_or_init(|| start(self.name))
            .as_ref()
            .map_err(|e| io::Error::other(e.clone()))?;
        let thread = &threads[self.next.fetch_add(1, Ordering::Relaxed) % threads.len()];
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let mut commands = thread
            .commands
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (i, &fd) in fds.iter().enumerate() {
            if let Err(e) = thread.epoll.add(fd, id * MAX_SOURCES as u64 + i as u64) {
                for &added in &fds[..i] {
                    let _ = thread.epoll.delete(added);
                }
                return Err(e);
            }
        }
        // The thread can see the sockets' events from here on; it takes the queue's lock to
        // learn whose they are, so it finds this command first.
        commands.push(Command::Serve { id, job });
        drop(commands);
        // Not woken: the job is found when its first event is.
        Ok(Served {
            thread: thread.clone(),
            id,
            stopped: false,
        })
    }
}

impl<J: Job> Served<J> {
    /// Stops the job and hands it back once its thread no longer runs it; `None` if the
    /// thread is gone (it then dropped the job).
    pub async fn stop(mut self) -> Option<J> {
        self.stopped = true;
        let (reply, handed_back) = oneshot::channel();
        self.thread.send(Command::Stop { id: self.id, reply });
        handed_back.await.ok()
    }
}

impl<J: Job> Drop for Served<J> {
    fn drop(&mut self) {
        if !self.stopped {
            // Nobody waits for the job: the thread drops it elsewhere.
            let (reply, _) = oneshot::channel();
            self.thread.send(Command::Stop { id: self.id, reply });
        }
    }
}

impl<J> Shared<J> {
    fn send(&self, command: Command<J>) {
        self.commands
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(command);
        if let Err(e) = self.waker.wake() {
            // Cannot happen for an open eventfd; the command then waits for the next event.
            tracing::error!(error = %e, "cannot wake a DHCP thread");
        }
    }
}

fn start<J: Job>(name: &str) -> Result<Vec<Arc<Shared<J>>>, String> {
    (0..crate::par::threads(MAX_THREADS))
        .map(|i| {
            let shared = Arc::new(Shared {
                epoll: Epoll::new().map_err(|e| format!("cannot create epoll: {e}"))?,
                waker: Waker::new().map_err(|e| format!("cannot create eventfd: {e}"))?,
                commands: Mutex::new(Vec::new()),
            });
            shared
                .epoll
                .add(shared.waker.as_fd(), WAKE)
                .map_err(|e| format!("cannot watch the eventfd: {e}"))?;
            let theirs = shared.clone();
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || run(&theirs))
                .map_err(|e| format!("cannot start DHCP thread: {e}"))?;
            Ok(shared)
        })
        .collect()
}

/// Job ids are unique counters, so one multiplication hashes them: it spreads consecutive ids
/// over the high bits the map also uses, at a fraction of SipHash's cost per request.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64((self.0 << 8) | u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        // 2^64 / golden ratio (Fibonacci hashing).
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type Jobs<J> = HashMap<u64, J, BuildHasherDefault<IdHasher>>;

/// The thread's loop; never returns.
fn run<J: Job>(shared: &Shared<J>) {
    let mut jobs: Jobs<J> = HashMap::default();
    let mut events = [poller::NO_EVENT; EVENTS];
    let mut rx = vec![0u8; RECV_BUF].into_boxed_slice();
    // Jobs that asked for a [`Job::due`] call, and when; empty unless a job is busy enough to
    // be rate-limited, so the wait below usually has no timeout to compute.
    let mut timers: Vec<(u64, Instant)> = Vec::new();
    loop {
        let n = match shared.epoll.wait(&mut events, wait_timeout(&timers)) {
            Ok(n) => n,
            Err(e) => {
                // Only a broken epoll fd fails here; do not spin on it.
                tracing::error!(error = %e, "DHCP thread cannot wait for requests");
                std::thread::sleep(std::time::Duration::from_millis(100));
                continue;
            }
        };
        let mut commands = false;
        for ev in &events[..n] {
            let token = poller::token(ev);
            if token == WAKE {
                commands = true;
                continue;
            }
            let (id, source) = (
                token / MAX_SOURCES as u64,
                (token % MAX_SOURCES as u64) as usize,
            );
            match jobs.get_mut(&id) {
                Some(job) => {
                    // The jobs catch their responders' panics per packet; this is for
                    // anything else, so that one network's bug never stops the others'.
                    let ready = AssertUnwindSafe(|| job.ready(source, &mut rx));
                    match std::panic::catch_unwind(ready) {
                        Ok(None) => {}
                        Ok(Some(at)) => schedule(&mut timers, id, at),
                        Err(_) => {
                            tracing::error!("DHCP job panicked; its pending request is dropped")
                        }
                    }
                }
                // Added a moment ago: its command is in the queue.
                None => commands = true,
            }
        }
        if commands {
            // Before taking the queue, so that a command queued after the take wakes us again.
            shared.waker.reset();
            let queued = std::mem::take(
                &mut *shared
                    .commands
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            );
            for command in queued {
                apply(shared, &mut jobs, command);
            }
        }
        if !timers.is_empty() {
            run_timers(&mut jobs, &mut timers);
        }
    }
}

/// Notes that job `id` wants [`Job::due`] at `at` (keeping an earlier time already noted).
fn schedule(timers: &mut Vec<(u64, Instant)>, id: u64, at: Instant) {
    match timers.iter_mut().find(|(i, _)| *i == id) {
        Some((_, t)) => *t = (*t).min(at),
        None => timers.push((id, at)),
    }
}

/// `epoll_wait`'s timeout: until the earliest timer (rounded up to whole milliseconds, so the
/// wake-up never comes early), or none.
fn wait_timeout(timers: &[(u64, Instant)]) -> i32 {
    let Some(next) = timers.iter().map(|&(_, t)| t).min() else {
        return -1;
    };
    let left = next.saturating_duration_since(Instant::now());
    i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
}

/// Calls [`Job::due`] on the jobs whose time has come; forgets timers of stopped jobs.
fn run_timers<J: Job>(jobs: &mut Jobs<J>, timers: &mut Vec<(u64, Instant)>) {
    let now = Instant::now();
    timers.retain_mut(|(id, at)| {
        if *at > now {
            return jobs.contains_key(id);
        }
        let Some(job) = jobs.get_mut(id) else {
            return false;
        };
        match std::panic::catch_unwind(AssertUnwindSafe(|| job.due(now))) {
            Ok(Some(next)) => {
                *at = next;
                true
            }
            Ok(None) => false,
            Err(_) => {
                tracing::error!("DHCP job panicked in its timer");
                false
            }
        }
    });
}

fn apply<J: Job>(shared: &Shared<J>, jobs: &mut Jobs<J>, command: Command<J>) {
    match command {
        Command::Serve { id, job } => {
            jobs.insert(id, job);
        }
        Command::Stop { id, reply } => {
            let Some(job) = jobs.remove(&id) else {
                return;
            };
            for fd in job.sources() {
                if let Err(e) = shared.epoll.delete(fd) {
                    tracing::warn!(error = %e, "cannot stop watching a DHCP socket");
                }
            }
            if let Err(job) = reply.send(job) {
                drop_elsewhere(job);
            }
        }
    }
}

/// Drops a job off the DHCP thread: closing a network's `AF_PACKET` socket waits for an RCU
/// grace period in the kernel, which every network of the thread would wait for too.
fn drop_elsewhere<J: Job>(job: J) {
    // A thread that cannot start drops the job right here, with the closure.
    let spawned = std::thread::Builder::new()
        .name("dhcp-drop".into())
        .stack_size(64 << 10)
        .spawn(move || drop(job));
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "dropped a stopped DHCP job on its thread");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Echoes every datagram back, tagged with the socket it came in on.
    struct Echo {
        socks: Vec<UnixDatagram>,
        seen: mpsc::Sender<(usize, Vec<u8>)>,
        dues: u32,
    }

    impl Job for Echo {
        fn sources(&self) -> Vec<BorrowedFd<'_>> {
            self.socks.iter().map(|s| s.as_fd()).collect()
        }

        fn ready(&mut self, source: usize, rx: &mut [u8]) -> Option<Instant> {
            assert_eq!(rx.len(), RECV_BUF);
            while let Ok(n) = self.socks[source].recv(rx) {
                if &rx[..n] == b"panic" {
                    panic!("asked to");
                }
                if let Some(ms) = rx[..n].strip_prefix(b"due in ") {
                    let ms = std::str::from_utf8(ms).unwrap().parse().unwrap();
                    return Some(Instant::now() + Duration::from_millis(ms));
                }
                let _ = self.seen.send((source, rx[..n].to_vec()));
            }
            None
        }

        fn due(&mut self, now: Instant) -> Option<Instant> {
            let _ = self.seen.send((usize::MAX, b"due".to_vec()));
            self.dues += 1;
            // Asks once more, then is done.
            (self.dues == 1).then(|| now + Duration::from_millis(1))
        }
    }

    /// What an [`Echo`] job saw: (source, datagram).
    type Seen = mpsc::Receiver<(usize, Vec<u8>)>;

    fn echo(sources: usize) -> (Echo, Vec<UnixDatagram>, Seen) {
        let (seen, rx) = mpsc::channel();
        let (mut socks, mut peers) = (Vec::new(), Vec::new());
        for _ in 0..sources {
            let (a, b) = UnixDatagram::pair().unwrap();
            a.set_nonblocking(true).unwrap();
            socks.push(a);
            peers.push(b);
        }
        (
            Echo {
                socks,
                seen,
                dues: 0,
            },
            peers,
            rx,
        )
    }

    const WAIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn serves_each_source_stops_and_hands_the_job_back() {
        static POOL: Pool<Echo> = Pool::new("test-dhcp");
        let (job, peers, seen) = echo(2);
        let served = POOL.serve(job).unwrap();
        peers[1].send(b"six").unwrap();
        assert_eq!(seen.recv_timeout(WAIT).unwrap(), (1, b"six".to_vec()));
        peers[0].send(b"four").unwrap();
        assert_eq!(seen.recv_timeout(WAIT).unwrap(), (0, b"four".to_vec()));

        // A panic is contained: the job goes on serving.
        peers[0].send(b"panic").unwrap();
        peers[0].send(b"after").unwrap();
        // "after" was queued behind the panic: the level-triggered watch reports it again.
        assert_eq!(seen.recv_timeout(WAIT).unwrap(), (0, b"after".to_vec()));

        let job = served.stop().await.expect("job handed back");
        peers[0].send(b"late").unwrap();
        assert!(
            seen.recv_timeout(Duration::from_millis(100)).is_err(),
            "stopped job still called"
        );
        let mut buf = [0u8; 8];
        assert_eq!(
            job.socks[0].recv(&mut buf).unwrap(),
            4,
            "datagram left queued"
        );
    }

    #[tokio::test]
    async fn many_jobs_over_the_threads_and_a_dropped_handle_stops_its_job() {
        static POOL: Pool<Echo> = Pool::new("test-dhcp");
        let mut all = Vec::new();
        for _ in 0..20 {
            let (job, peers, seen) = echo(1);
            all.push((POOL.serve(job).unwrap(), peers, seen));
        }
        for (i, (_, peers, _)) in all.iter().enumerate() {
            peers[0].send(format!("{i}").as_bytes()).unwrap();
        }
        for (i, (_, _, seen)) in all.iter().enumerate() {
            assert_eq!(
                seen.recv_timeout(WAIT).unwrap().1,
                format!("{i}").into_bytes()
            );
        }
        let (served, peers, seen) = all.pop().unwrap();
        drop(served);
        // Dropped off the DHCP thread: its sender disconnects once the job is gone.
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let _ = peers[0].send(b"x");
            match seen.recv_timeout(Duration::from_millis(50)) {
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                _ => assert!(
                    std::time::Instant::now() < deadline,
                    "dropped job still runs"
                ),
            }
        }
        for (served, _, _) in all {
            assert!(served.stop().await.is_some());
        }
    }

    #[tokio::test]
    async fn a_job_is_called_back_when_it_asked_to_be() {
        static POOL: Pool<Echo> = Pool::new("test-dhcp");
        let (job, peers, seen) = echo(1);
        let served = POOL.serve(job).unwrap();
        // A datagram longer than any Ethernet frame arrives whole.
        let big = vec![7u8; 9000];
        peers[0].send(&big).unwrap();
        assert_eq!(seen.recv_timeout(WAIT).unwrap(), (0, big));
        peers[0].send(b"due in 20").unwrap();
        // Nothing else arrives, yet the job is called back, twice (it asks again once).
        assert_eq!(
            seen.recv_timeout(WAIT).unwrap(),
            (usize::MAX, b"due".to_vec())
        );
        assert_eq!(
            seen.recv_timeout(WAIT).unwrap(),
            (usize::MAX, b"due".to_vec())
        );
        assert!(seen.recv_timeout(Duration::from_millis(100)).is_err());
        assert_eq!(served.stop().await.expect("handed back").dues, 2);
    }

    #[test]
    fn too_many_sources_is_an_error() {
        static POOL: Pool<Echo> = Pool::new("test-dhcp");
        let (job, _peers, _seen) = echo(3);
        assert!(POOL.serve(job).is_err());
    }
}
