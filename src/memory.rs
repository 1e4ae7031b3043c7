//! How the agent uses glibc's allocator: resident memory proportional to what it serves, and
//! reloads that do not fault their memory back in.
//!
//! - glibc gives every thread that allocates an arena of its own (up to 8 per core), and an
//!   arena keeps what it once held resident. Our threads that allocate are few and mostly busy
//!   at start-up (tokio workers, namespace workers, blocking-pool threads); the DHCP threads do
//!   not allocate at all. Extra arenas only cost memory: ~2.5 MB at 200 networks, as much as 25
//!   networks' worth.
//! - A reload copies and frees views and file buffers of hundreds of KB. By default glibc hands
//!   such memory back to the kernel at once (`munmap`, heap trimming) and the next reload faults
//!   it back in page by page: several 0.1 ms inside the SIGHUP → servable window on a VM. Up to
//!   [`TRIM_THRESHOLD`] of freed memory therefore stays in the process for the next reload.
//! - A start-up or a full sync parses every network and frees a great many small blocks; those
//!   pages are returned explicitly once it is done ([`release_free_memory`]).

/// Two arenas: start-up allocations still rarely wait for one another.
const MAX_ARENAS: libc::c_int = 2;
/// Blocks up to this size come from the heap, so a freed one is reused by the next reload.
const MMAP_THRESHOLD: libc::c_int = 32 << 20;
/// Free memory at the top of the heap kept for reuse: more than a 1,000-port reload churns.
const TRIM_THRESHOLD: libc::c_int = 8 << 20;

/// Sets the allocator up as described in the module comment; call before any thread starts.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tunables; no other thread exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, MAX_ARENAS);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

/// Returns free heap pages to the kernel, after work that freed much (a full apply or sync).
/// Takes a few milliseconds on a large heap, so never on a latency path.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// This process's resident set size in bytes (`/proc/self/statm`), for the footprint tools;
/// 0 if it cannot be read.
pub fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * rustix::param::page_size() as u64
}
