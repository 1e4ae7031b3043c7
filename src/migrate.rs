//! Taking a network over from the Python agent in place, and leaving it so the Python agent can
//! take it back.
//!
//! Distributions' units stop only `neutron-dhcp-agent`: its dnsmasq (DHCP and DNS) and haproxy
//! (isolated metadata) go on running in `qdhcp-<net>`. Once our own server answers in that
//! namespace (the agent calls [`take_over`] right after a network starts serving), they are
//! stopped, so the client never sees a gap: for a moment both answer, alike, from the same
//! Neutron data. A haproxy is stopped in the same step: the metadata proxy that replaces it
//! must bind `169.254.169.254:80` after it (see [`stop_metadata_proxy`]).
//!
//! Which processes are the Python agent's is decided as Neutron's `ProcessManager.active`
//! decides it, plus the namespace:
//! - `$state_path/dhcp/<net>/pid` names dnsmasq and `$state_path/external/pids/<net>.pid.haproxy`
//!   (`<net>.pid` before Neutron named pid files per service) names haproxy, each valid only while `/proc/<pid>/cmdline` is that program with the
//!   network id among its arguments (a recycled pid is never signalled);
//! - any dnsmasq or haproxy whose network namespace is `qdhcp-<net>` (one whose pid file was
//!   lost, or a second copy), unless this agent started it.
//!
//! The signal goes through a pidfd opened before the command line is checked, so the process
//! signalled is the one checked. SIGTERM, then SIGKILL after [`GRACE`] (Neutron's
//! `SIGTERM_TIMEOUT`).
//!
//! dnsmasq keeps its DHCPv6 server DUID as the `duid` line of its lease file; a client's Renew
//! names that DUID, so the agent takes it as its own ([`dnsmasq_server_duid`]). Going back,
//! Neutron keeps the `duid` line of `leases` when it writes the file for the next dnsmasq, so
//! [`keep_duid_for_dnsmasq`] writes ours there and a rolled-back dnsmasq answers the Renews of
//! clients we served.

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, Signal};

use crate::view::v6::ServerDuid;

/// How long a process gets to exit after SIGTERM before SIGKILL (Neutron's `SIGTERM_TIMEOUT`
/// for both dnsmasq and haproxy).
pub const GRACE: Duration = Duration::from_secs(5);

/// How long to wait for a SIGKILLed process to be gone before reporting it.
const KILL_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("{kind} pid {pid}: {op}: {source}")]
    Signal {
        kind: Kind,
        pid: i32,
        op: &'static str,
        source: io::Error,
    },
    #[error("{kind} pid {pid} is still running {waited:?} after SIGKILL")]
    Unkillable {
        kind: Kind,
        pid: i32,
        waited: Duration,
    },
    #[error("{path}: {source}")]
    File { path: PathBuf, source: io::Error },
}

/// The Python agent's per-network helpers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Dnsmasq,
    Haproxy,
}

impl Kind {
    fn program(self) -> &'static str {
        match self {
            Kind::Dnsmasq => "dnsmasq",
            Kind::Haproxy => "haproxy",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.program())
    }
}

/// A process the Python agent left for a network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leftover {
    pub kind: Kind,
    pub pid: i32,
    /// The network namespace (device, inode) it was found in, when found by namespace rather
    /// than by a pid file naming the network: checked again before the signal.
    pub netns: Option<(u64, u64)>,
}

/// How a leftover went away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// Exited on SIGTERM within the grace period.
    Terminated,
    /// Needed SIGKILL.
    Killed,
    /// Was gone, or the pid now belongs to another program, by the time we looked again.
    Gone,
}

/// Where the Python agent keeps its per-network files.
#[derive(Clone, Debug)]
pub struct StatePaths {
    /// `$state_path/dhcp` (Neutron's `dhcp_confs`).
    pub dhcp: PathBuf,
    /// `$state_path/external/pids` (Neutron's `external_pids` default).
    pub external_pids: PathBuf,
}

impl StatePaths {
    pub fn new(state_path: &Path) -> StatePaths {
        StatePaths {
            dhcp: state_path.join("dhcp"),
            external_pids: state_path.join("external").join("pids"),
        }
    }
}

/// Whether `cmdline` (`/proc/<pid>/cmdline`: NUL-separated arguments) is `kind`'s program
/// serving `network_id`: the program's file name, and the network id inside some argument
/// (dnsmasq's `--pid-file=.../<net>/pid`, haproxy's `-f .../<net>.conf`), as Neutron checks
/// `uuid in cmdline`.
pub fn is_helper_of(cmdline: &[u8], kind: Kind, network_id: &str) -> bool {
    let mut args = cmdline.split(|b| *b == 0).filter(|a| !a.is_empty());
    let Some(argv0) = args.next() else {
        return false;
    };
    program_name(argv0) == kind.program().as_bytes()
        && args.any(|a| {
            a.windows(network_id.len())
                .any(|w| w == network_id.as_bytes())
        })
}

/// `kind` of a command line whatever network it serves, for processes found by namespace.
fn helper_kind(cmdline: &[u8]) -> Option<Kind> {
    let argv0 = cmdline.split(|b| *b == 0).next()?;
    [Kind::Dnsmasq, Kind::Haproxy]
        .into_iter()
        .find(|k| program_name(argv0) == k.program().as_bytes())
}

fn program_name(argv0: &[u8]) -> &[u8] {
    argv0.rsplit(|b| *b == b'/').next().unwrap_or(argv0)
}

/// A pid file's content: a positive decimal pid and optional trailing whitespace.
pub fn parse_pid(text: &str) -> Option<i32> {
    text.trim().parse::<i32>().ok().filter(|p| *p > 1)
}

/// The server DUID in a dnsmasq lease file: its `duid xx:xx:...` line (one per file).
pub fn dnsmasq_duid_line(leases: &str) -> Option<Result<ServerDuid, crate::view::v6::DuidError>> {
    leases
        .lines()
        .find_map(|l| l.strip_prefix("duid "))
        .map(str::parse)
}

/// The DHCPv6 server DUID dnsmasq used for the network whose state directory is `dir`, if its
/// lease file holds one. A malformed one is reported and not used.
pub fn dnsmasq_server_duid(dir: &Path) -> Option<ServerDuid> {
    let path = dir.join("leases");
    let text = fs::read_to_string(&path).ok()?;
    match dnsmasq_duid_line(&text)? {
        Ok(duid) => Some(duid),
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "ignoring dnsmasq's server DUID");
            None
        }
    }
}

/// `leases` with its `duid` line set to `duid` (first, where dnsmasq writes it), the lease
/// lines kept; `None` when it already says so.
pub fn with_duid_line(leases: &str, duid: ServerDuid) -> Option<String> {
    let line = format!("duid {duid}");
    if leases.lines().any(|l| l == line) {
        return None;
    }
    let mut out = line + "\n";
    for l in leases.lines().filter(|l| !l.starts_with("duid ")) {
        out.push_str(l);
        out.push('\n');
    }
    Some(out)
}

/// Makes `dir/leases` carry `duid`, so a dnsmasq the Python agent starts there after a
/// rollback answers with the DUID our clients know. Written through a temporary file and a
/// rename: Neutron or dnsmasq never reads half a file.
pub fn keep_duid_for_dnsmasq(dir: &Path, duid: ServerDuid) -> Result<(), MigrateError> {
    let path = dir.join("leases");
    let current = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(source) => return Err(MigrateError::File { path, source }),
    };
    let Some(text) = with_duid_line(&current, duid) else {
        return Ok(());
    };
    let tmp = dir.join(".leases.tmp");
    fs::write(&tmp, text)
        .and_then(|()| fs::rename(&tmp, &path))
        .map_err(|source| MigrateError::File { path, source })
}

/// Finds what the Python agent left running for `network_id` (see the module doc), each
/// process once. `namespace` is the network's `/run/netns` entry.
pub fn find_leftovers(paths: &StatePaths, network_id: &str, namespace: &Path) -> Vec<Leftover> {
    let mut found = Vec::new();
    // haproxy's pid file is `<net>.pid.haproxy` since Neutron named pid files per service;
    // older releases wrote `<net>.pid`.
    let by_file = [
        (Kind::Dnsmasq, paths.dhcp.join(network_id).join("pid")),
        (
            Kind::Haproxy,
            paths
                .external_pids
                .join(format!("{network_id}.pid.haproxy")),
        ),
        (
            Kind::Haproxy,
            paths.external_pids.join(format!("{network_id}.pid")),
        ),
    ];
    for (kind, file) in by_file {
        let Some(pid) = fs::read_to_string(&file)
            .ok()
            .as_deref()
            .and_then(parse_pid)
        else {
            continue;
        };
        if found.iter().any(|f: &Leftover| f.pid == pid) {
            continue;
        }
        if read_cmdline(pid).is_some_and(|c| is_helper_of(&c, kind, network_id)) {
            found.push(Leftover {
                kind,
                pid,
                netns: None,
            });
        } else {
            tracing::debug!(file = %file.display(), pid, "pid file names no running {kind} of this network");
        }
    }
    if let Ok(meta) = fs::metadata(namespace) {
        let ns = (meta.dev(), meta.ino());
        for c in helpers_snapshot().iter().filter(|c| c.netns == ns) {
            if !found.iter().any(|f| f.pid == c.pid) {
                found.push(Leftover {
                    kind: c.kind,
                    pid: c.pid,
                    netns: Some(ns),
                });
            }
        }
    }
    found
}

/// A dnsmasq or haproxy seen when the agent first looked (not one of our children).
struct Candidate {
    kind: Kind,
    pid: i32,
    netns: (u64, u64),
}

/// All dnsmasq and haproxy processes, read from `/proc` once per agent run: the Python agent
/// is stopped before we start, so nothing of its kind appears later, and one scan serves every
/// network of a start with hundreds. The same scan warns about another DHCP agent still
/// running on this host: a Python agent would respawn the dnsmasq we stop.
fn helpers_snapshot() -> &'static [Candidate] {
    static SNAPSHOT: OnceLock<Vec<Candidate>> = OnceLock::new();
    SNAPSHOT.get_or_init(|| {
        let me = std::process::id();
        let Ok(dir) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        let mut agents = Vec::new();
        let helpers = dir
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter_map(|pid| {
                let cmdline = read_cmdline(pid)?;
                if is_dhcp_agent(&cmdline) && u32::try_from(pid).ok() != Some(me) {
                    agents.push(pid);
                }
                let kind = helper_kind(&cmdline)?;
                if parent_of(pid) == Some(me) {
                    return None;
                }
                Some(Candidate {
                    kind,
                    pid,
                    netns: netns_of(pid)?,
                })
            })
            .collect();
        if !agents.is_empty() {
            tracing::warn!(
                pids = ?agents,
                "another neutron-dhcp-agent is running on this host: stop it (a Python agent \
                 restarts the dnsmasq and haproxy this agent stops when taking a network over)"
            );
        }
        helpers
    })
}

/// Whether a command line is a `neutron-dhcp-agent`: the program itself (ours, or the Python
/// console script run directly, whose workers are retitled `neutron-dhcp-agent: ...`), or a
/// Python interpreter running that script.
fn is_dhcp_agent(cmdline: &[u8]) -> bool {
    const NAME: &[u8] = b"neutron-dhcp-agent";
    let mut args = cmdline.split(|b| *b == 0);
    let Some(argv0) = args.next() else {
        return false;
    };
    let prog = program_name(argv0);
    prog.starts_with(NAME)
        || (prog.starts_with(b"python") && args.next().is_some_and(|a| program_name(a) == NAME))
}

/// The (device, inode) identity of a process's network namespace, comparable with a
/// `/run/netns` entry's.
fn netns_of(pid: i32) -> Option<(u64, u64)> {
    let meta = fs::metadata(format!("/proc/{pid}/ns/net")).ok()?;
    Some((meta.dev(), meta.ino()))
}

fn read_cmdline(pid: i32) -> Option<Vec<u8>> {
    fs::read(format!("/proc/{pid}/cmdline")).ok()
}

/// The parent pid from `/proc/<pid>/stat` (the field after the parenthesised command name,
/// which may itself contain spaces and parentheses).
fn parent_of(pid: i32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_ppid(&stat)
}

fn parse_ppid(stat: &str) -> Option<u32> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Stops one leftover: SIGTERM, SIGKILL after `grace`. The process is pinned by a pidfd and its
/// command line checked again first, so a pid that was recycled since it was found is left
/// alone.
pub fn stop(
    leftover: Leftover,
    network_id: &str,
    grace: Duration,
) -> Result<Stopped, MigrateError> {
    let Leftover { kind, pid, netns } = leftover;
    let err = |op, source| MigrateError::Signal {
        kind,
        pid,
        op,
        source,
    };
    let pidfd = match pidfd_open(pid) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(Stopped::Gone),
        Err(e) => return Err(err("pidfd_open", e)),
    };
    // Checked after the pidfd pins the process, and the process still alive after the check:
    // what was read was that process's.
    let still_ours = read_cmdline(pid).is_some_and(|c| match netns {
        None => is_helper_of(&c, kind, network_id),
        Some(ns) => helper_kind(&c) == Some(kind) && netns_of(pid) == Some(ns),
    });
    if !still_ours || exited(&pidfd, Duration::ZERO).map_err(|e| err("poll", e))? {
        return Ok(Stopped::Gone);
    }
    match pidfd_send_signal(&pidfd, Signal::TERM) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(Stopped::Gone),
        Err(e) => return Err(err("SIGTERM", e)),
    }
    if exited(&pidfd, grace).map_err(|e| err("poll", e))? {
        return Ok(Stopped::Terminated);
    }
    tracing::warn!(%kind, pid, ?grace, "still running after SIGTERM; sending SIGKILL");
    match pidfd_send_signal(&pidfd, Signal::KILL) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(Stopped::Killed),
        Err(e) => return Err(err("SIGKILL", e)),
    }
    if exited(&pidfd, KILL_WAIT).map_err(|e| err("poll", e))? {
        Ok(Stopped::Killed)
    } else {
        Err(MigrateError::Unkillable {
            kind,
            pid,
            waited: KILL_WAIT,
        })
    }
}

/// The agent's hook, called once a network is served by us: stops the Python agent's dnsmasq
/// and haproxy for it, then records our DHCPv6 server DUID where a rolled-back dnsmasq finds
/// it. Blocking (up to [`GRACE`] per stubborn process): run it off the async workers.
pub fn take_over(state_path: &Path, network_id: &str) {
    let paths = StatePaths::new(state_path);
    let namespace = Path::new("/run/netns").join(format!("qdhcp-{network_id}"));
    for leftover in find_leftovers(&paths, network_id, &namespace) {
        report(leftover, stop(leftover, network_id, GRACE));
    }
    let dir = paths.dhcp.join(network_id);
    let ours = fs::read_to_string(dir.join(DUID_FILE))
        .ok()
        .and_then(|t| t.trim().parse::<ServerDuid>().ok());
    if let Some(duid) = ours {
        if let Err(e) = keep_duid_for_dnsmasq(&dir, duid) {
            tracing::warn!(error = %e, "cannot record the DHCPv6 server DUID for a rollback to dnsmasq");
        }
    }
}

/// Stops the Python agent's haproxy for a network, for a metadata proxy that is about to bind
/// `169.254.169.254:80` in its namespace (a haproxy still there would hold the port).
pub fn stop_metadata_proxy(state_path: &Path, network_id: &str) {
    let paths = StatePaths::new(state_path);
    let namespace = Path::new("/run/netns").join(format!("qdhcp-{network_id}"));
    for leftover in find_leftovers(&paths, network_id, &namespace)
        .into_iter()
        .filter(|l| l.kind == Kind::Haproxy)
    {
        report(leftover, stop(leftover, network_id, GRACE));
    }
}

fn report(l: Leftover, r: Result<Stopped, MigrateError>) {
    match r {
        Ok(Stopped::Gone) => {}
        Ok(how) => tracing::info!(
            kind = %l.kind,
            pid = l.pid,
            how = ?how,
            "stopped the process the Python agent left for this network"
        ),
        Err(e) => {
            tracing::error!(error = %e, "cannot stop the process the Python agent left for this network")
        }
    }
}

/// Our persisted DHCPv6 server DUID (`$state_path/dhcp/<net>/duid`), written by the agent.
pub const DUID_FILE: &str = "duid";

fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    let pid = Pid::from_raw(pid).ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))?;
    Ok(rustix::process::pidfd_open(pid, PidfdFlags::empty())?)
}

fn pidfd_send_signal(fd: &OwnedFd, sig: Signal) -> io::Result<()> {
    Ok(rustix::process::pidfd_send_signal(fd, sig)?)
}

/// Whether the process exited within `wait` (a pidfd becomes readable when it does).
fn exited(fd: &OwnedFd, wait: Duration) -> io::Result<bool> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let timeout = Timespec {
            tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        match poll(&mut [PollFd::new(fd, PollFlags::IN)], Some(&timeout)) {
            Ok(n) => return Ok(n > 0),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET: &str = "6f1a5d2e-9c3b-4e7a-8d21-3b5c7e9f0a11";

    use std::os::unix::process::CommandExt;

    fn cmdline(args: &[&str]) -> Vec<u8> {
        let mut v = Vec::new();
        for a in args {
            v.extend_from_slice(a.as_bytes());
            v.push(0);
        }
        v
    }

    #[test]
    fn helper_command_lines() {
        let dnsmasq = cmdline(&[
            "dnsmasq",
            "--no-hosts",
            &format!("--pid-file=/var/lib/neutron/dhcp/{NET}/pid"),
        ]);
        assert!(is_helper_of(&dnsmasq, Kind::Dnsmasq, NET));
        assert!(!is_helper_of(&dnsmasq, Kind::Haproxy, NET));
        assert!(!is_helper_of(
            &dnsmasq,
            Kind::Dnsmasq,
            "9b2e7c4f-1111-2222-3333-444455556666"
        ));
        let haproxy = cmdline(&[
            "/usr/sbin/haproxy",
            "-f",
            &format!("/var/lib/neutron/ns-metadata-proxy/{NET}.conf"),
        ]);
        assert!(is_helper_of(&haproxy, Kind::Haproxy, NET));
        assert_eq!(helper_kind(&haproxy), Some(Kind::Haproxy));
        // A recycled pid: another program, even one naming the network.
        let other = cmdline(&["vim", &format!("/var/lib/neutron/dhcp/{NET}/pid")]);
        assert!(!is_helper_of(&other, Kind::Dnsmasq, NET));
        assert_eq!(helper_kind(&other), None);
        // A program whose name merely ends in "dnsmasq".
        let lookalike = cmdline(&["/opt/notdnsmasq", NET]);
        assert!(!is_helper_of(&lookalike, Kind::Dnsmasq, NET));
        assert!(!is_helper_of(b"", Kind::Dnsmasq, NET));
    }

    #[test]
    fn dhcp_agent_command_lines() {
        assert!(is_dhcp_agent(&cmdline(&[
            "/usr/bin/python3",
            "/usr/bin/neutron-dhcp-agent",
            "--config-file",
            "/etc/neutron/neutron.conf"
        ])));
        assert!(is_dhcp_agent(&cmdline(&["/usr/bin/neutron-dhcp-agent"])));
        assert!(is_dhcp_agent(
            b"neutron-dhcp-agent: master process [/usr/bin/neutron-dhcp-agent --config-file x]"
        ));
        assert!(!is_dhcp_agent(&cmdline(&[
            "/usr/bin/python3",
            "/usr/bin/neutron-l3-agent"
        ])));
        assert!(!is_dhcp_agent(&cmdline(&["vim", "neutron-dhcp-agent"])));
        assert!(!is_dhcp_agent(b""));
    }

    #[test]
    fn pid_files() {
        assert_eq!(parse_pid("1234\n"), Some(1234));
        assert_eq!(parse_pid(" 77 "), Some(77));
        assert_eq!(parse_pid(""), None);
        assert_eq!(parse_pid("1"), None);
        assert_eq!(parse_pid("-5"), None);
        assert_eq!(parse_pid("12ab"), None);
    }

    #[test]
    fn ppid_from_stat() {
        assert_eq!(parse_ppid("42 (dnsmasq) S 1 42 42 0 -1"), Some(1));
        assert_eq!(parse_ppid("42 (a) b) (c) S 977 42"), Some(977));
        assert_eq!(parse_ppid("garbage"), None);
    }

    #[test]
    fn duid_line_of_a_lease_file() {
        let leases = "0 fa:16:3e:0a:00:11 10.90.0.11 * *\n\
                      duid 00:01:00:01:27:da:58:97:fa:16:3e:6c:ad:c1\n\
                      1700000000 1234 fd00::11 * 00:01:00:01:aa:bb:cc:dd:fa:16:3e:00:00:11\n";
        let duid = dnsmasq_duid_line(leases).unwrap().unwrap();
        assert_eq!(
            duid.to_string(),
            "00:01:00:01:27:da:58:97:fa:16:3e:6c:ad:c1"
        );
        assert!(dnsmasq_duid_line("0 fa:16:3e:0a:00:11 10.90.0.11 * *\n").is_none());
        assert!(dnsmasq_duid_line("duid zz:01\n").unwrap().is_err());
    }

    #[test]
    fn duid_line_is_written_first_and_replaced() {
        let ours: ServerDuid = "00:03:00:01:fa:16:3e:00:00:02".parse().unwrap();
        assert_eq!(
            with_duid_line("", ours).unwrap(),
            "duid 00:03:00:01:fa:16:3e:00:00:02\n"
        );
        let leases =
            "0 fa:16:3e:0a:00:11 10.90.0.11 * *\nduid 00:01:00:01:27:da:58:97:fa:16:3e:6c:ad:c1\n";
        assert_eq!(
            with_duid_line(leases, ours).unwrap(),
            "duid 00:03:00:01:fa:16:3e:00:00:02\n0 fa:16:3e:0a:00:11 10.90.0.11 * *\n"
        );
        assert_eq!(
            with_duid_line("duid 00:03:00:01:fa:16:3e:00:00:02\n", ours),
            None
        );
    }

    #[test]
    fn leases_file_keeps_the_duid_for_dnsmasq() {
        let dir = tempfile::tempdir().unwrap();
        let ours: ServerDuid = "00:03:00:01:fa:16:3e:00:00:02".parse().unwrap();
        keep_duid_for_dnsmasq(dir.path(), ours).unwrap();
        assert_eq!(dnsmasq_server_duid(dir.path()), Some(ours));
        std::fs::write(
            dir.path().join("leases"),
            "duid 00:01\n0 fa:16:3e:0a:00:11 10.90.0.11 * *\n",
        )
        .unwrap();
        // Malformed: not taken over, and replaced by ours for the next dnsmasq.
        assert_eq!(dnsmasq_server_duid(dir.path()), None);
        keep_duid_for_dnsmasq(dir.path(), ours).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("leases")).unwrap(),
            "duid 00:03:00:01:fa:16:3e:00:00:02\n0 fa:16:3e:0a:00:11 10.90.0.11 * *\n"
        );
    }

    /// A real child named like a leftover: found through its pid file only while the pid is
    /// that program for that network, stopped with SIGTERM; one that ignores SIGTERM is
    /// killed after the grace period.
    #[test]
    fn stops_a_real_process_found_by_pid_file() {
        let dir = tempfile::tempdir().unwrap();
        let paths = StatePaths::new(dir.path());
        let net_dir = paths.dhcp.join(NET);
        std::fs::create_dir_all(&net_dir).unwrap();
        // argv[0] "dnsmasq" (what /proc/<pid>/cmdline shows); the network id is an argument.
        // A stubborn one starts with SIGTERM ignored (inherited through exec; bash cannot
        // undo it), so there is no window before a trap is set.
        let start = |ignore_term: bool| {
            let mut cmd = std::process::Command::new("bash");
            cmd.arg0("dnsmasq")
                .arg("-c")
                .arg("while :; do sleep 0.05; done")
                .arg(format!("--pid-file=/x/{NET}/pid"));
            if ignore_term {
                // SAFETY: only async-signal-safe signal(2) between fork and exec.
                unsafe {
                    cmd.pre_exec(|| {
                        libc::signal(libc::SIGTERM, libc::SIG_IGN);
                        Ok(())
                    });
                }
            }
            let child = Reaped(cmd.spawn().unwrap());
            // Until the exec, /proc/<pid>/cmdline is still this test's.
            let pid = child.0.id() as i32;
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !read_cmdline(pid).is_some_and(|c| c.starts_with(b"dnsmasq\0")) {
                assert!(std::time::Instant::now() < deadline, "bash did not start");
                std::thread::sleep(Duration::from_millis(10));
            }
            child
        };
        let mut child = start(false);
        std::fs::write(net_dir.join("pid"), format!("{}\n", child.0.id())).unwrap();
        let found = find_leftovers(&paths, NET, Path::new("/nonexistent"));
        let leftover = Leftover {
            kind: Kind::Dnsmasq,
            pid: child.0.id() as i32,
            netns: None,
        };
        assert_eq!(found, vec![leftover]);
        assert_eq!(
            stop(leftover, NET, Duration::from_secs(5)).unwrap(),
            Stopped::Terminated
        );
        child.0.wait().unwrap();
        // The pid file now names a dead (or recycled) pid: nothing is found.
        assert!(find_leftovers(&paths, NET, Path::new("/nonexistent")).is_empty());

        let mut stubborn = start(true);
        let leftover = Leftover {
            kind: Kind::Dnsmasq,
            pid: stubborn.0.id() as i32,
            netns: None,
        };
        assert_eq!(
            stop(leftover, NET, Duration::from_millis(300)).unwrap(),
            Stopped::Killed
        );
        stubborn.0.wait().unwrap();
        // A pid that is not that program is never signalled.
        let mut innocent = Reaped(
            std::process::Command::new("sleep")
                .arg("30")
                .spawn()
                .unwrap(),
        );
        let leftover = Leftover {
            kind: Kind::Dnsmasq,
            pid: innocent.0.id() as i32,
            netns: None,
        };
        assert_eq!(
            stop(leftover, NET, Duration::from_millis(100)).unwrap(),
            Stopped::Gone
        );
        // Nor is one found by namespace that is not (any more) in that namespace.
        let elsewhere = Leftover {
            netns: Some((0, 1)),
            ..leftover
        };
        assert_eq!(
            stop(elsewhere, NET, Duration::from_millis(100)).unwrap(),
            Stopped::Gone
        );
        assert!(innocent.0.try_wait().unwrap().is_none());
    }

    /// A child killed and reaped on drop, also when an assertion fails.
    struct Reaped(std::process::Child);

    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
