//! Room for the agent's file descriptors: three sockets per served network (DHCPv4, DHCPv6 and
//! an `AF_PACKET` one), so a node's networks need thousands of descriptors.
//!
//! - Service managers start daemons with a soft limit of 1,024 open files and a much higher
//!   hard one (systemd: `LimitNOFILE=1024:524288`); the soft limit only protects programs that
//!   use `select(2)`. Kept, it would stop the agent at about 330 networks, so [`prepare`]
//!   raises it to the hard limit, which stays the operator's ceiling.
//! - The kernel grows a process's descriptor table by doubling it, and when several threads
//!   share the table each growth waits for an RCU grace period (8–16 ms here) in the thread
//!   whose new descriptor does not fit. A restart that serves 200 networks again crossed 256
//!   and 512 descriptors that way: two such waits, a third of its time. The table is therefore
//!   grown once, before any thread exists, to [`TABLE`] entries (64 KiB of kernel memory).

use std::io;

use rustix::io::fcntl_dupfd_cloexec;
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Descriptor table entries reserved at start: about 2,500 networks' sockets.
pub const TABLE: u64 = 8192;

/// What [`prepare`] found and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Room {
    /// The soft `RLIMIT_NOFILE` the agent was started with.
    pub soft_before: u64,
    /// The soft limit now (the hard limit, unless raising it failed).
    pub soft: u64,
    /// Entries the descriptor table was grown to.
    pub table: u64,
}

/// Raises the soft open-files limit to the hard one and grows the descriptor table; call
/// before any thread starts (see the module comment). Fails only if the limit cannot be read.
pub fn prepare() -> io::Result<Room> {
    let lim = getrlimit(Resource::Nofile);
    // `None` is RLIM_INFINITY.
    let hard = lim.maximum.unwrap_or(u64::MAX);
    let soft_before = lim.current.unwrap_or(u64::MAX);
    let mut soft = soft_before;
    if soft < hard {
        let raised = Rlimit {
            current: lim.maximum,
            maximum: lim.maximum,
        };
        // Raising the soft limit up to the hard one needs no privilege.
        if setrlimit(Resource::Nofile, raised).is_ok() {
            soft = hard;
        }
    }
    let table = TABLE.min(soft);
    let grown = table > 0 && grow_table(table).is_ok();
    Ok(Room {
        soft_before,
        soft,
        table: if grown { table } else { 0 },
    })
}

/// Makes the descriptor table hold at least `entries` by opening (and closing again) the
/// descriptor `entries - 1`: the table never shrinks.
fn grow_table(entries: u64) -> io::Result<()> {
    let highest = i32::try_from(entries - 1)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "table too large"))?;
    let null = std::fs::File::open("/dev/null")?;
    // The duplicate lands on the lowest free number at or above `highest`, and is closed
    // again when dropped here.
    drop(fcntl_dupfd_cloexec(&null, highest)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raises_the_soft_limit_and_reserves_the_table() {
        let room = prepare().unwrap();
        let lim = getrlimit(Resource::Nofile);
        let (cur, max) = (
            lim.current.unwrap_or(u64::MAX),
            lim.maximum.unwrap_or(u64::MAX),
        );
        assert_eq!(room.soft, cur);
        assert_eq!(cur, max, "soft limit raised to the hard one");
        assert!(room.soft >= room.soft_before);
        assert_eq!(room.table, TABLE.min(room.soft));
        // The kernel reports the table's size as FDSize.
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let size: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("FDSize:"))
            .map(|v| v.trim().parse().unwrap())
            .unwrap();
        assert!(size >= room.table, "FDSize {size} < {}", room.table);
    }
}
