//! The threads that run the DHCP tasks: each one a single-threaded tokio runtime of its own.
//!
//! On the control plane's multi-threaded runtime every request woke a worker that then often
//! woke a second one to look for more work: ~1.3 context switches per packet, most of the CPU a
//! DHCP exchange costs at low rates (BENCHMARKS.md). Here the thread that waits in `epoll`
//! is the one that answers, so a request costs one wake-up, and control-plane work (reloads,
//! RPC, plumbing) never shares a queue with packets. Networks are spread over the threads
//! round-robin; a network's DHCPv4 and DHCPv6 tasks share one.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use tokio::runtime::Handle;

/// More threads than cores only adds wake-ups; fewer than two would let one busy network delay
/// all others on a multi-core host.
const MAX_THREADS: usize = 4;

static THREADS: OnceLock<Result<Vec<Handle>, String>> = OnceLock::new();
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The runtime the next network's DHCP tasks should run on (threads start on first use).
pub fn next() -> io::Result<Handle> {
    let handles = THREADS
        .get_or_init(start)
        .as_ref()
        .map_err(|e| io::Error::other(e.clone()))?;
    let i = NEXT.fetch_add(1, Ordering::Relaxed) % handles.len();
    Ok(handles[i].clone())
}

fn start() -> Result<Vec<Handle>, String> {
    let n = crate::par::threads(MAX_THREADS);
    (0..n)
        .map(|i| {
            // I/O only: nothing on these threads waits for time, and a timer would read the
            // clock at every wake-up.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
                .map_err(|e| format!("cannot build DHCP runtime: {e}"))?;
            let handle = rt.handle().clone();
            std::thread::Builder::new()
                .name(format!("dhcp-io-{i}"))
                // The runtime only drives its tasks inside `block_on`; this thread never leaves it.
                .spawn(move || rt.block_on(std::future::pending::<()>()))
                .map_err(|e| format!("cannot start DHCP thread: {e}"))?;
            Ok(handle)
        })
        .collect()
}
