//! `dhcp-loadgen`: a DHCPv4 load generator and probe for benchmarking DHCP servers.
//!
//! It talks to servers the way `perfdhcp -l <iface>` does: as a relay agent. Requests leave from
//! UDP port 67 with `giaddr` set to the generator's own address (which selects the subnet on the
//! server) and go to the server's address (or the broadcast address) on port 67; the server
//! answers to `giaddr:67`. Every DISCOVER and REQUEST is built once per MAC before the run; at
//! run time only the transaction id (and, for REQUESTs, the offered address and server id) are
//! patched in. Packets go out with `sendmmsg` and come back with `recvmmsg`, in batches.
//!
//! Modes (all bounded in count and time; results are one JSON object on stdout):
//! - `rate`:  open loop, a fixed rate of DORA exchanges per second for a fixed duration; reports
//!   completed exchanges, drops and latency percentiles, and, with `--server-pid`, the server's
//!   CPU time per completed DORA (from `/proc/<pid>/stat` utime+stime).
//! - `flood`: closed loop with a fixed number of exchanges in flight: the server's ceiling.
//! - `probe`: DISCOVERs for one MAC every `--interval-us` until an OFFER comes back; with
//!   `--hup-pid` it first sends SIGHUP to that process and reports the time from the signal to
//!   the OFFER (event → servable latency).
//! - `wait-all`: DISCOVERs to many (server, giaddr, MAC) targets until every one has answered
//!   (restart → serving); reports the Unix time of each first answer.
//!
//! Only for use on addresses inside network namespaces you created.

use std::collections::HashMap;
use std::io;
use std::mem;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use serde_json::json;

const SERVER_PORT: u16 = 67;
const BATCH: usize = 64;
const BUF: usize = 1536;
/// BOOTP fixed header (236) + magic cookie.
const OPTS_START: usize = 240;
const MIN_PACKET: usize = 300;
const OFFER: u8 = 2;
const ACK: u8 = 5;
const NAK: u8 = 6;

#[derive(Parser, Debug)]
#[command(
    name = "dhcp-loadgen",
    about = "Relay-style DHCPv4 load generator and probe"
)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Open loop: `--rate` DORA/s for `--duration` seconds.
    Rate(RateArgs),
    /// Closed loop: `--window` exchanges in flight for `--duration` seconds.
    Flood(FloodArgs),
    /// Time until one MAC gets an OFFER (optionally after SIGHUP to a process).
    Probe(ProbeArgs),
    /// Time until every target answers a DISCOVER.
    WaitAll(WaitAllArgs),
}

#[derive(Args, Debug, Clone)]
struct Target {
    /// Server address (unicast) the requests are sent to.
    #[arg(long)]
    server: Ipv4Addr,
    /// Our address on the server's subnet (relay agent address).
    #[arg(long)]
    giaddr: Ipv4Addr,
    /// Send to 255.255.255.255 instead of the server address (as perfdhcp does).
    #[arg(long)]
    broadcast: bool,
}

#[derive(Args, Debug)]
struct LoadArgs {
    #[command(flatten)]
    target: Target,
    /// File with one MAC address per line; exchanges cycle through it.
    #[arg(long)]
    macs: PathBuf,
    /// Seconds of sending (the run then waits up to `--timeout-ms` for late replies).
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// An exchange without its OFFER/ACK after this long counts as dropped.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// Hard cap on the number of exchanges started.
    #[arg(long, default_value_t = 10_000_000)]
    max_exchanges: u64,
    /// Process(es) whose CPU time (utime+stime) over the run is reported.
    #[arg(long)]
    server_pid: Vec<i32>,
}

#[derive(Args, Debug)]
struct RateArgs {
    #[command(flatten)]
    load: LoadArgs,
    /// DORA exchanges started per second.
    #[arg(long)]
    rate: f64,
}

#[derive(Args, Debug)]
struct FloodArgs {
    #[command(flatten)]
    load: LoadArgs,
    /// Exchanges in flight.
    #[arg(long, default_value_t = 256)]
    window: usize,
}

#[derive(Args, Debug)]
struct ProbeArgs {
    #[command(flatten)]
    target: Target,
    #[arg(long)]
    mac: String,
    /// Send SIGHUP to this process right before the first DISCOVER; latency counts from there.
    #[arg(long)]
    hup_pid: Option<i32>,
    /// `SRC:DST`: rename(2) SRC to DST right before the signal (repeatable), so that a new
    /// configuration appears atomically at the start of the measurement and not earlier.
    #[arg(long = "rename", value_name = "SRC:DST")]
    renames: Vec<String>,
    #[arg(long, default_value_t = 50)]
    interval_us: u64,
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
}

#[derive(Args, Debug)]
struct WaitAllArgs {
    /// Lines `server_ip giaddr mac`.
    #[arg(long)]
    targets: PathBuf,
    #[arg(long, default_value_t = 20)]
    interval_ms: u64,
    #[arg(long, default_value_t = 120)]
    timeout_s: u64,
    /// Start probing (and the clock) only once a line arrives on standard input, so that a
    /// benchmark can start this process ahead of the moment it measures from.
    #[arg(long)]
    go_on_stdin: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let out = match cli.mode {
        Mode::Rate(a) => run_load(&a.load, Pace::Rate(a.rate))?,
        Mode::Flood(a) => run_load(&a.load, Pace::Window(a.window.max(1)))?,
        Mode::Probe(a) => probe(&a)?,
        Mode::WaitAll(a) => wait_all(&a)?,
    };
    println!("{out}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Packets
// ---------------------------------------------------------------------------------------------

fn parse_mac(s: &str) -> anyhow::Result<[u8; 6]> {
    let mut out = [0u8; 6];
    let parts: Vec<&str> = s.trim().split([':', '-']).collect();
    if parts.len() != 6 {
        bail!("invalid MAC {s:?}");
    }
    for (b, p) in out.iter_mut().zip(parts) {
        *b = u8::from_str_radix(p, 16).with_context(|| format!("invalid MAC {s:?}"))?;
    }
    Ok(out)
}

fn read_macs(path: &PathBuf) -> anyhow::Result<Vec<[u8; 6]>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read MAC list {}", path.display()))?;
    let macs: Vec<[u8; 6]> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(parse_mac)
        .collect::<Result<_, _>>()?;
    if macs.is_empty() {
        bail!("MAC list {} is empty", path.display());
    }
    Ok(macs)
}

/// Offsets patched at run time.
const XID: usize = 4;
/// REQUEST: option 50 value and option 54 value.
const REQ_IP: usize = OPTS_START + 3 + 2;
const REQ_SERVER: usize = REQ_IP + 4 + 2;

/// A relayed BOOTREQUEST for `mac` with message type `kind` (1 DISCOVER, 3 REQUEST).
fn build_request(kind: u8, mac: [u8; 6], giaddr: Ipv4Addr) -> Vec<u8> {
    let mut p = vec![0u8; MIN_PACKET];
    p[0] = 1; // BOOTREQUEST
    p[1] = 1; // Ethernet
    p[2] = 6;
    p[3] = 1; // hops: one relay
    p[24..28].copy_from_slice(&giaddr.octets());
    p[28..34].copy_from_slice(&mac);
    p[236..240].copy_from_slice(&[99, 130, 83, 99]);
    let mut o = OPTS_START;
    let mut put = |bytes: &[u8]| {
        p[o..o + bytes.len()].copy_from_slice(bytes);
        o += bytes.len();
    };
    put(&[53, 1, kind]);
    if kind == 3 {
        put(&[50, 4, 0, 0, 0, 0]);
        put(&[54, 4, 0, 0, 0, 0]);
    }
    // Parameter request list: what a typical VM asks for.
    put(&[55, 9, 1, 3, 6, 12, 15, 26, 28, 121, 42]);
    put(&[255]);
    debug_assert!(o <= MIN_PACKET);
    p
}

/// What we need from a reply: xid, message type, yiaddr and server id.
struct Reply {
    xid: u32,
    kind: u8,
    yiaddr: [u8; 4],
    server_id: [u8; 4],
}

fn parse_reply(b: &[u8]) -> Option<Reply> {
    if b.len() < OPTS_START || b[0] != 2 || b[236..240] != [99, 130, 83, 99] {
        return None;
    }
    let xid = u32::from_be_bytes(b[4..8].try_into().ok()?);
    let yiaddr: [u8; 4] = b[16..20].try_into().ok()?;
    let mut kind = 0;
    let mut server_id = [0u8; 4];
    let mut i = OPTS_START;
    while i < b.len() {
        let code = b[i];
        if code == 255 {
            break;
        }
        if code == 0 {
            i += 1;
            continue;
        }
        let len = *b.get(i + 1)? as usize;
        let v = b.get(i + 2..i + 2 + len)?;
        match code {
            53 if len == 1 => kind = v[0],
            54 if len == 4 => server_id.copy_from_slice(v),
            _ => {}
        }
        i += 2 + len;
    }
    Some(Reply {
        xid,
        kind,
        yiaddr,
        server_id,
    })
}

// ---------------------------------------------------------------------------------------------
// Socket and batched I/O
// ---------------------------------------------------------------------------------------------

fn check(rc: libc::c_int, what: &str) -> anyhow::Result<libc::c_int> {
    if rc < 0 {
        return Err(io::Error::last_os_error()).with_context(|| what.to_string());
    }
    Ok(rc)
}

fn setsockopt_int(fd: &OwnedFd, level: i32, name: i32, v: i32) -> libc::c_int {
    // SAFETY: passes a pointer to a live i32 with its exact size.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&v as *const i32).cast(),
            mem::size_of::<i32>() as libc::socklen_t,
        )
    }
}

fn sockaddr(ip: Ipv4Addr, port: u16) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain old data; all-zero is valid.
    let mut a: libc::sockaddr_in = unsafe { mem::zeroed() };
    a.sin_family = libc::AF_INET as libc::sa_family_t;
    a.sin_port = port.to_be();
    a.sin_addr.s_addr = u32::from(ip).to_be();
    a
}

/// Non-blocking UDP socket on `0.0.0.0:67` (where relayed replies arrive), with large buffers.
fn relay_socket() -> anyhow::Result<OwnedFd> {
    // SAFETY: plain socket(2); checked and owned immediately.
    let raw = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    check(raw, "socket")?;
    // SAFETY: raw is a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    setsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1);
    check(
        setsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_BROADCAST, 1),
        "SO_BROADCAST",
    )?;
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        if setsockopt_int(&fd, libc::SOL_SOCKET, force, 8 << 20) < 0 {
            setsockopt_int(&fd, libc::SOL_SOCKET, plain, 8 << 20);
        }
    }
    let addr = sockaddr(Ipv4Addr::UNSPECIFIED, SERVER_PORT);
    // SAFETY: addr is a valid sockaddr_in of the given size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_in).cast(),
            mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    check(
        rc,
        "bind 0.0.0.0:67 (is another relay or server using port 67 here?)",
    )?;
    Ok(fd)
}

/// Sends `packets` (each with its destination) with as few `sendmmsg` calls as possible.
/// Returns how many went out; ENOBUFS/EAGAIN stop the batch early (counted as not sent).
fn send_batch(fd: &OwnedFd, packets: &[(&[u8], libc::sockaddr_in)]) -> usize {
    let mut sent = 0;
    while sent < packets.len() {
        let chunk = &packets[sent..packets.len().min(sent + BATCH)];
        let mut iov: Vec<libc::iovec> = chunk
            .iter()
            .map(|(p, _)| libc::iovec {
                iov_base: p.as_ptr() as *mut libc::c_void,
                iov_len: p.len(),
            })
            .collect();
        let mut hdrs: Vec<libc::mmsghdr> = chunk
            .iter()
            .zip(iov.iter_mut())
            .map(|((_, addr), iov)| {
                // SAFETY: msghdr is plain old data; all-zero is valid.
                let mut h: libc::mmsghdr = unsafe { mem::zeroed() };
                h.msg_hdr.msg_name = (addr as *const libc::sockaddr_in) as *mut libc::c_void;
                h.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
                h.msg_hdr.msg_iov = iov;
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        // SAFETY: every header points at live buffers/addresses owned by this frame.
        let n = unsafe {
            libc::sendmmsg(
                fd.as_raw_fd(),
                hdrs.as_mut_ptr(),
                hdrs.len() as libc::c_uint,
                0,
            )
        };
        if n <= 0 {
            break;
        }
        sent += n as usize;
        if (n as usize) < chunk.len() {
            break;
        }
    }
    sent
}

/// Receive buffers for `recvmmsg`.
struct RecvBatch {
    bufs: Vec<[u8; BUF]>,
    lens: Vec<usize>,
}

impl RecvBatch {
    fn new() -> Self {
        RecvBatch {
            bufs: vec![[0u8; BUF]; BATCH],
            lens: vec![0; BATCH],
        }
    }

    /// One non-blocking `recvmmsg`; returns the number of datagrams.
    fn recv(&mut self, fd: &OwnedFd) -> usize {
        let mut iov: Vec<libc::iovec> = self
            .bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: BUF,
            })
            .collect();
        let mut hdrs: Vec<libc::mmsghdr> = iov
            .iter_mut()
            .map(|iov| {
                // SAFETY: plain old data; all-zero is valid.
                let mut h: libc::mmsghdr = unsafe { mem::zeroed() };
                h.msg_hdr.msg_iov = iov;
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        // SAFETY: headers point at our buffers, valid for BUF bytes each.
        let n = unsafe {
            libc::recvmmsg(
                fd.as_raw_fd(),
                hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n <= 0 {
            return 0;
        }
        for (i, h) in hdrs.iter().take(n as usize).enumerate() {
            self.lens[i] = h.msg_len as usize;
        }
        n as usize
    }

    fn get(&self, i: usize) -> &[u8] {
        &self.bufs[i][..self.lens[i]]
    }
}

/// Waits until the socket is readable or `timeout` passes (microsecond precision).
fn wait_readable(fd: &OwnedFd, timeout: Duration) {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: one valid pollfd, a valid timespec, no signal mask.
    unsafe {
        libc::ppoll(&mut pfd, 1, &ts, std::ptr::null());
    }
}

/// utime + stime of a process in microseconds.
fn cpu_us(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some((utime + stime) * 1_000_000 / hz)
}

fn self_cpu_us() -> u64 {
    // SAFETY: rusage is plain old data; getrusage fills it.
    let mut ru: libc::rusage = unsafe { mem::zeroed() };
    // SAFETY: valid pointer to a rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn unix_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn percentiles(mut v: Vec<u32>) -> serde_json::Value {
    if v.is_empty() {
        return json!(null);
    }
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    json!({"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": v[v.len() - 1],
           "count": v.len()})
}

// ---------------------------------------------------------------------------------------------
// rate / flood
// ---------------------------------------------------------------------------------------------

enum Pace {
    Rate(f64),
    Window(usize),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Free,
    Discover,
    Request,
}

#[derive(Clone, Copy)]
struct Exchange {
    seq: u32,
    phase: Phase,
    mac: u32,
    t_discover: Instant,
    t_request: Instant,
    /// From the OFFER: the address to request and the server that offered it.
    yiaddr: [u8; 4],
    server_id: [u8; 4],
}

const RING: usize = 1 << 18;

fn run_load(a: &LoadArgs, pace: Pace) -> anyhow::Result<serde_json::Value> {
    let macs = read_macs(&a.macs)?;
    let fd = relay_socket()?;
    let giaddr = a.target.giaddr;
    let dst = sockaddr(
        if a.target.broadcast {
            Ipv4Addr::BROADCAST
        } else {
            a.target.server
        },
        SERVER_PORT,
    );
    // Pre-built packets, one DISCOVER and one REQUEST per MAC.
    let discovers: Vec<Vec<u8>> = macs.iter().map(|m| build_request(1, *m, giaddr)).collect();
    let requests: Vec<Vec<u8>> = macs.iter().map(|m| build_request(3, *m, giaddr)).collect();
    // Per-exchange copies of the templates with the xid (and offer) patched in.
    let mut out_bufs: Vec<Vec<u8>> = Vec::with_capacity(BATCH * 8);
    let mut req_queue: Vec<usize> = Vec::with_capacity(BATCH * 4);
    let now0 = Instant::now();
    let mut ring = vec![
        Exchange {
            seq: 0,
            phase: Phase::Free,
            mac: 0,
            t_discover: now0,
            t_request: now0,
            yiaddr: [0; 4],
            server_id: [0; 4],
        };
        RING
    ];
    let timeout = Duration::from_millis(a.timeout_ms);
    let duration = Duration::from_secs_f64(a.duration);
    let mut rb = RecvBatch::new();
    let (mut started, mut discovers_sent, mut requests_sent) = (0u64, 0u64, 0u64);
    let (mut offers, mut acks, mut naks, mut send_fail, mut stale) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut in_flight: usize = 0;
    let mut dora_lat: Vec<u32> = Vec::with_capacity(1 << 20);
    let mut offer_lat: Vec<u32> = Vec::with_capacity(1 << 20);
    let mut expired_discover = 0u64;
    let mut expired_request = 0u64;
    // Timeout sweep cursor over sequence numbers (exchanges start in seq order).
    let mut sweep: u64 = 0;
    let cpu0: Vec<Option<u64>> = a.server_pid.iter().map(|&p| cpu_us(p)).collect();
    let self0 = self_cpu_us();
    let start = Instant::now();
    let mut last_ack = start;
    loop {
        let now = Instant::now();
        let elapsed = now - start;
        let sending = elapsed < duration && started < a.max_exchanges;
        if !sending && in_flight == 0 {
            break;
        }
        if !sending && elapsed > duration + timeout {
            break;
        }
        // Expire old exchanges.
        while sweep < started {
            let e = &mut ring[(sweep as usize) & (RING - 1)];
            if e.seq != sweep as u32 || e.phase == Phase::Free {
                sweep += 1;
                continue;
            }
            if now.duration_since(e.t_discover) < timeout {
                break;
            }
            match e.phase {
                Phase::Discover => expired_discover += 1,
                Phase::Request => expired_request += 1,
                Phase::Free => {}
            }
            e.phase = Phase::Free;
            in_flight -= 1;
            sweep += 1;
        }
        // New exchanges due.
        let due: u64 = if !sending {
            0
        } else {
            match pace {
                Pace::Rate(r) => {
                    let target = (elapsed.as_secs_f64() * r) as u64 + 1;
                    target.saturating_sub(started).min(BATCH as u64)
                }
                Pace::Window(w) => (w.saturating_sub(in_flight) as u64).min(BATCH as u64),
            }
        }
        .min(a.max_exchanges - started);
        out_bufs.clear();
        let first_new = started;
        for k in 0..due {
            let seq = first_new + k;
            let mac = (seq % macs.len() as u64) as usize;
            let mut p = discovers[mac].clone();
            p[XID..XID + 4].copy_from_slice(&(seq as u32).to_be_bytes());
            out_bufs.push(p);
        }
        // REQUESTs answering OFFERs received in the previous round.
        let req_first = out_bufs.len();
        for &slot in &req_queue {
            let e = &ring[slot];
            let mut p = requests[e.mac as usize].clone();
            p[XID..XID + 4].copy_from_slice(&e.seq.to_be_bytes());
            p[REQ_IP..REQ_IP + 4].copy_from_slice(&e.yiaddr);
            p[REQ_SERVER..REQ_SERVER + 4].copy_from_slice(&e.server_id);
            out_bufs.push(p);
        }
        let dests: Vec<(&[u8], libc::sockaddr_in)> =
            out_bufs.iter().map(|p| (p.as_slice(), dst)).collect();
        let sent = send_batch(&fd, &dests);
        let now = Instant::now();
        let new_sent = sent.min(req_first);
        for k in 0..new_sent as u64 {
            let seq = first_new + k;
            let slot = (seq as usize) & (RING - 1);
            if ring[slot].phase != Phase::Free {
                // Ring wrapped over a live exchange: count it lost.
                stale += 1;
                in_flight -= 1;
            }
            ring[slot] = Exchange {
                seq: seq as u32,
                phase: Phase::Discover,
                mac: (seq % macs.len() as u64) as u32,
                t_discover: now,
                t_request: now,
                yiaddr: [0; 4],
                server_id: [0; 4],
            };
            in_flight += 1;
        }
        started += new_sent as u64;
        discovers_sent += new_sent as u64;
        if (new_sent as u64) < due {
            send_fail += due - new_sent as u64;
            // Unsent exchanges are simply not started (retried next round).
        }
        let req_sent = sent.saturating_sub(req_first);
        for &slot in req_queue.iter().take(req_sent) {
            ring[slot].phase = Phase::Request;
            ring[slot].t_request = now;
        }
        requests_sent += req_sent as u64;
        req_queue.drain(..req_sent);

        // Replies.
        let wait = match pace {
            Pace::Rate(r) if sending => {
                let next = Duration::from_secs_f64((started as f64) / r);
                next.saturating_sub(start.elapsed())
                    .min(Duration::from_millis(1))
            }
            _ => Duration::from_millis(1),
        };
        if req_queue.is_empty() {
            wait_readable(&fd, wait);
        }
        loop {
            let n = rb.recv(&fd);
            if n == 0 {
                break;
            }
            let now = Instant::now();
            for i in 0..n {
                let Some(r) = parse_reply(rb.get(i)) else {
                    continue;
                };
                let slot = (r.xid as usize) & (RING - 1);
                let e = &mut ring[slot];
                if e.seq != r.xid || e.phase == Phase::Free {
                    continue;
                }
                match (e.phase, r.kind) {
                    (Phase::Discover, OFFER) => {
                        offers += 1;
                        offer_lat.push(now.duration_since(e.t_discover).as_micros() as u32);
                        e.yiaddr = r.yiaddr;
                        e.server_id = r.server_id;
                        // Mark as "request pending" so a duplicate OFFER is ignored.
                        e.phase = Phase::Request;
                        e.t_request = now;
                        req_queue.push(slot);
                    }
                    (Phase::Request, ACK) => {
                        acks += 1;
                        dora_lat.push(now.duration_since(e.t_discover).as_micros() as u32);
                        e.phase = Phase::Free;
                        in_flight -= 1;
                        last_ack = now;
                    }
                    (Phase::Request, NAK) => {
                        naks += 1;
                        e.phase = Phase::Free;
                        in_flight -= 1;
                    }
                    _ => {}
                }
            }
            if n < BATCH {
                break;
            }
        }
    }
    let send_window = start.elapsed().min(duration).as_secs_f64().max(1e-9);
    let active = last_ack.duration_since(start).as_secs_f64().max(1e-9);
    let cpu: Vec<Option<u64>> = a
        .server_pid
        .iter()
        .zip(&cpu0)
        .map(|(&p, c0)| Some(cpu_us(p)? - (*c0)?))
        .collect();
    let server_cpu: Option<u64> = if cpu.is_empty() || cpu.iter().any(Option::is_none) {
        None
    } else {
        Some(cpu.iter().flatten().sum())
    };
    let drops_d = discovers_sent.saturating_sub(offers);
    let drops_r = requests_sent.saturating_sub(acks + naks);
    let drop_pct = if discovers_sent == 0 {
        0.0
    } else {
        100.0 * (discovers_sent - acks.min(discovers_sent)) as f64 / discovers_sent as f64
    };
    let mode = match pace {
        Pace::Rate(r) => json!({"mode": "rate", "target_rate": r}),
        Pace::Window(w) => json!({"mode": "flood", "window": w}),
    };
    let mut out = json!({
        "macs": macs.len(),
        "duration_s": a.duration,
        "discovers_sent": discovers_sent,
        "offers": offers,
        "requests_sent": requests_sent,
        "acks": acks,
        "naks": naks,
        "drops_discover": drops_d,
        "drops_request": drops_r,
        "expired_discover": expired_discover,
        "expired_request": expired_request,
        "ring_overwrites": stale,
        "send_backpressure": send_fail,
        "drop_pct": drop_pct,
        "dora_per_s": acks as f64 / send_window,
        "dora_per_s_active": acks as f64 / active,
        "dora_latency_us": percentiles(dora_lat),
        "offer_latency_us": percentiles(offer_lat),
        "loadgen_cpu_us": self_cpu_us() - self0,
        "server_cpu_us": server_cpu,
        "server_cpu_us_per_dora": server_cpu.map(|c| if acks > 0 { c as f64 / acks as f64 } else { 0.0 }),
        "mac_reuse_overlap": matches!(pace, Pace::Window(w) if w > macs.len()),
    });
    if let (Some(o), Some(m)) = (out.as_object_mut(), mode.as_object()) {
        for (k, v) in m {
            o.insert(k.clone(), v.clone());
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// probe / wait-all
// ---------------------------------------------------------------------------------------------

fn probe(a: &ProbeArgs) -> anyhow::Result<serde_json::Value> {
    let mac = parse_mac(&a.mac)?;
    let fd = relay_socket()?;
    let dst = sockaddr(
        if a.target.broadcast {
            Ipv4Addr::BROADCAST
        } else {
            a.target.server
        },
        SERVER_PORT,
    );
    let mut pkt = build_request(1, mac, a.target.giaddr);
    let xid: u32 = 0x5052_0000 ^ std::process::id();
    pkt[XID..XID + 4].copy_from_slice(&xid.to_be_bytes());
    let mut rb = RecvBatch::new();
    // Drain anything stale.
    while rb.recv(&fd) > 0 {}
    let renames: Vec<(&str, &str)> = a
        .renames
        .iter()
        .map(|r| r.split_once(':').context("--rename wants SRC:DST"))
        .collect::<Result<_, _>>()?;
    let renaming = Instant::now();
    for (src, dst) in renames {
        std::fs::rename(src, dst).with_context(|| format!("rename {src} -> {dst}"))?;
    }
    let rename_us = renaming.elapsed().as_micros() as u64;
    // The clock starts at the signal: the renames only put in place what the writer had
    // prepared (their cost is the writer's, reported apart as `rename_us`).
    let t0 = Instant::now();
    if let Some(pid) = a.hup_pid {
        // SAFETY: kill(2) with a pid given by the operator.
        let rc = unsafe { libc::kill(pid, libc::SIGHUP) };
        check(rc, "kill -HUP")?;
    }
    let interval = Duration::from_micros(a.interval_us.max(1));
    let deadline = t0 + Duration::from_millis(a.timeout_ms);
    let mut sent = 0u64;
    let mut next = t0;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(json!({"answered": false, "discovers": sent,
                             "timeout_ms": a.timeout_ms}));
        }
        if now >= next {
            if send_batch(&fd, &[(pkt.as_slice(), dst)]) == 1 {
                sent += 1;
            }
            next = now + interval;
        }
        wait_readable(&fd, next.saturating_duration_since(Instant::now()));
        let n = rb.recv(&fd);
        for i in 0..n {
            if let Some(r) = parse_reply(rb.get(i)) {
                if r.xid == xid && r.kind == OFFER && rb.get(i)[28..34] == mac {
                    let lat = t0.elapsed();
                    return Ok(json!({
                        "answered": true,
                        "latency_us": lat.as_micros() as u64,
                        "discovers": sent,
                        "yiaddr": Ipv4Addr::from(r.yiaddr).to_string(),
                        "rename_us": rename_us,
                    }));
                }
            }
        }
    }
}

fn wait_all(a: &WaitAllArgs) -> anyhow::Result<serde_json::Value> {
    let text = std::fs::read_to_string(&a.targets)
        .with_context(|| format!("cannot read {}", a.targets.display()))?;
    let mut targets: Vec<(libc::sockaddr_in, Vec<u8>)> = Vec::new();
    for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 3 {
            bail!(
                "{}: line {}: expected `server giaddr mac`",
                a.targets.display(),
                i + 1
            );
        }
        let server: Ipv4Addr = f[0].parse().context("server address")?;
        let giaddr: Ipv4Addr = f[1].parse().context("giaddr")?;
        let mut p = build_request(1, parse_mac(f[2])?, giaddr);
        p[XID..XID + 4].copy_from_slice(&(0x7700_0000u32 | i as u32).to_be_bytes());
        targets.push((sockaddr(server, SERVER_PORT), p));
    }
    let fd = relay_socket()?;
    let mut rb = RecvBatch::new();
    if a.go_on_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("waiting for the go line on standard input")?;
        // Anything that arrived before the go (an old server's answer) does not count.
        while rb.recv(&fd) > 0 {}
    }
    let start_ns = unix_ns();
    let start = Instant::now();
    let mut answered: Vec<Option<u128>> = vec![None; targets.len()];
    let mut by_xid: HashMap<u32, usize> = HashMap::new();
    for i in 0..targets.len() {
        by_xid.insert(0x7700_0000u32 | i as u32, i);
    }
    let interval = Duration::from_millis(a.interval_ms.max(1));
    let deadline = start + Duration::from_secs(a.timeout_s);
    let mut rounds = 0u64;
    let mut left = targets.len();
    while left > 0 && Instant::now() < deadline {
        let pending: Vec<(&[u8], libc::sockaddr_in)> = targets
            .iter()
            .zip(&answered)
            .filter(|(_, a)| a.is_none())
            .map(|((addr, p), _)| (p.as_slice(), *addr))
            .collect();
        send_batch(&fd, &pending);
        rounds += 1;
        let round_end = Instant::now() + interval;
        while Instant::now() < round_end && left > 0 {
            wait_readable(&fd, round_end.saturating_duration_since(Instant::now()));
            loop {
                let n = rb.recv(&fd);
                for i in 0..n {
                    if let Some(r) = parse_reply(rb.get(i)) {
                        if r.kind != OFFER {
                            continue;
                        }
                        if let Some(&t) = by_xid.get(&r.xid) {
                            if answered[t].is_none() {
                                answered[t] = Some(unix_ns());
                                left -= 1;
                            }
                        }
                    }
                }
                if n < BATCH {
                    break;
                }
            }
        }
    }
    let times: Vec<u128> = answered.iter().flatten().copied().collect();
    Ok(json!({
        "total": targets.len(),
        "answered": times.len(),
        "rounds": rounds,
        "start_unix_ns": start_ns.to_string(),
        "first_unix_ns": times.iter().min().map(|t| t.to_string()),
        "last_unix_ns": times.iter().max().map(|t| t.to_string()),
        "elapsed_ms": start.elapsed().as_secs_f64() * 1000.0,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_template_layout() {
        let mac = [0xfa, 0x16, 0x3e, 1, 2, 3];
        let d = build_request(1, mac, Ipv4Addr::new(10, 0, 0, 250));
        assert_eq!(d.len(), MIN_PACKET);
        assert_eq!(&d[24..28], &[10, 0, 0, 250]);
        assert_eq!(&d[OPTS_START..OPTS_START + 3], &[53, 1, 1]);
        let r = build_request(3, mac, Ipv4Addr::new(10, 0, 0, 250));
        assert_eq!(&r[REQ_IP - 2..REQ_IP], &[50, 4]);
        assert_eq!(&r[REQ_SERVER - 2..REQ_SERVER], &[54, 4]);
    }

    #[test]
    fn parses_replies_and_rejects_garbage() {
        let mut p = build_request(1, [1; 6], Ipv4Addr::LOCALHOST);
        p[0] = 2;
        p[4..8].copy_from_slice(&7u32.to_be_bytes());
        p[16..20].copy_from_slice(&[10, 0, 0, 5]);
        p[OPTS_START + 2] = OFFER;
        let r = parse_reply(&p).unwrap();
        assert_eq!((r.xid, r.kind, r.yiaddr), (7, OFFER, [10, 0, 0, 5]));
        assert!(parse_reply(&p[..100]).is_none());
        let mut bad = p.clone();
        bad[OPTS_START + 4] = 200; // option length past the end
        let _ = parse_reply(&bad);
    }
}
