//! Keeping the agent's resident memory proportional to what it serves.
//!
//! glibc gives every thread that allocates an arena of its own (up to 8 per core), and an arena
//! keeps what it once held resident. Our threads that allocate are few and mostly busy at
//! start-up (tokio workers, namespace workers, blocking-pool threads), and the DHCP threads do
//! not allocate at all, so extra arenas only cost memory: ~2.5 MB at 200 networks, as much as
//! 25 networks' worth. Parsing a networks file or a sync also frees large numbers of small
//! blocks that glibc keeps on its free lists unless asked to give whole pages back.

/// Two arenas: start-up allocations still rarely wait for one another.
const MAX_ARENAS: libc::c_int = 2;

/// Caps the number of malloc arenas; call before any thread starts.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tunables; no other thread exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, MAX_ARENAS);
    }
}

/// Returns free heap pages to the kernel, after work that freed much (a full apply). Takes a
/// few milliseconds on a large heap, so never on a latency path.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}
